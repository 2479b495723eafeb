//! Time per frame of a 1920×1080 `Drawing` overlay: a moving filled circle and a line of text
//! at 48 px, as a live-production overlay would draw it.
#![allow(missing_docs, reason = "criterion macros generate undocumented items")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark setup")]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use streamlib_buffers::PooledBuf;
use streamlib_clock::{ClockSourceId, Rational, TimedTick};
use streamlib_handlers_video::{DrawContext, Drawing, DrawingConfig, FontSource};
use streamlib_ports::*;
use tiny_skia::{Color, FillRule, Paint, PathBuilder, Pixmap, PixmapMut, PixmapPaint, Transform};

const WIDTH: u32 = 1920;
const HEIGHT: u32 = 1080;
const LABEL: &str = "fps 29.97  00:01:23:12";
const RADIUS: f32 = 60.0;

fn paint() -> Paint<'static> {
    let mut paint = Paint::default();
    paint.set_color_rgba8(230, 40, 40, 230);
    paint
}

/// Where the circle is on frame `n`: sweeping across the frame.
fn circle_x(n: u64) -> f32 {
    ((n * 7) % u64::from(WIDTH - 2 * RADIUS as u32)) as f32
}

fn text(canvas: &mut PixmapMut<'_>, ctx: &mut DrawContext<'_>) {
    ctx.draw_text(canvas, LABEL, 64.0, 1000.0, 48.0, Color::WHITE);
}

/// The circle as a prebuilt path moved by a transform (tiny-skia copies the path per call).
fn path_transform() -> Drawing {
    let circle = PathBuilder::from_circle(RADIUS, RADIUS, RADIUS).unwrap();
    let paint = paint();
    let config = DrawingConfig::new(WIDTH, HEIGHT).with_font(FontSource::System);
    Drawing::new(config, move |canvas, ctx| {
        let at = Transform::from_translate(circle_x(ctx.frame_number()), 400.0);
        canvas.fill_path(&circle, &paint, FillRule::Winding, at, None);
        text(canvas, ctx);
        Ok(())
    })
    .expect("DejaVu Sans is needed (apt-get install fonts-dejavu-core)")
}

/// The circle rendered once into a sprite, drawn at whole pixels (allocation-free).
fn sprite() -> Drawing {
    let side = (2.0 * RADIUS) as u32;
    let mut sprite = Pixmap::new(side, side).unwrap();
    let circle = PathBuilder::from_circle(RADIUS, RADIUS, RADIUS).unwrap();
    sprite.fill_path(
        &circle,
        &paint(),
        FillRule::Winding,
        Transform::identity(),
        None,
    );
    let config = DrawingConfig::new(WIDTH, HEIGHT).with_font(FontSource::System);
    Drawing::new(config, move |canvas, ctx| {
        let x = circle_x(ctx.frame_number()) as i32;
        canvas.draw_pixmap(
            x,
            400,
            sprite.as_ref(),
            &PixmapPaint::default(),
            Transform::identity(),
            None,
        );
        text(canvas, ctx);
        Ok(())
    })
    .expect("DejaVu Sans is needed (apt-get install fonts-dejavu-core)")
}

/// Runs `drawing` for one tick per iteration; its frames go to a sink that drops them.
fn bench_drawing(
    c: &mut Criterion,
    name: &str,
    mut drawing: Drawing,
    background: Option<&VideoFrame>,
) {
    let sink = InputPort::<VideoFrame>::new("video", MemoryCaps::CPU);
    drawing
        .output()
        .erased()
        .connect_to(&*sink.handle().erased())
        .unwrap();
    let input = OutputPort::<VideoFrame>::new("video", MemoryCaps::CPU);
    if background.is_some() {
        input
            .handle()
            .erased()
            .connect_to(&*drawing.background_input().erased())
            .unwrap();
    }
    let mut n = 0u64;
    c.bench_function(name, |b| {
        b.iter(|| {
            if let Some(frame) = background {
                input.write(frame.clone());
            }
            let tick = TimedTick {
                timestamp: Rational::FPS_29_97.frame_time_ns(n),
                frame_number: n,
                clock_source_id: ClockSourceId::MANUAL,
                fps: Rational::FPS_29_97,
            };
            n += 1;
            drawing
                .process(&mut ProcessContext::new("drawing", tick))
                .unwrap();
            black_box(sink.recv())
        });
    });
}

fn opaque_input() -> VideoFrame {
    let layout = FrameLayout::new(WIDTH, HEIGHT, PixelFormat::Rgba8).unwrap();
    let bytes = [16, 96, 160, 255].repeat((WIDTH * HEIGHT) as usize);
    VideoFrame::cpu(layout, PooledBuf::from_vec(bytes)).unwrap()
}

fn drawing_1080p(c: &mut Criterion) {
    bench_drawing(
        c,
        "drawing_1080p/overlay_path_transform",
        path_transform(),
        None,
    );
    bench_drawing(c, "drawing_1080p/overlay_sprite", sprite(), None);
    bench_drawing(
        c,
        "drawing_1080p/over_opaque_input_sprite",
        sprite(),
        Some(&opaque_input()),
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = drawing_1080p
}
criterion_main!(benches);
