//! The advanced demo: TestPattern → Blur → Compositor → Display, with two Drawing overlays
//! composited on top — a moving shape, and text showing the measured frame rate and a
//! timecode. 1920×1080 at 30 fps by default.
//!
//! ```text
//! pattern ─► blur ─► compositor.layer0 ─┐
//!           shapes ─► compositor.layer1 ├─► compositor ─► display | capture
//!              hud ─► compositor.layer2 ┘
//! ```
//!
//! With a display it opens a window (Esc or closing it stops). Without one, or with
//! `--headless`, it writes PNG snapshots of the first, middle and last frame and a stats
//! summary to `--out` (default `out/demo_advanced`) and exits 0 only when the pipeline held
//! its frame rate (no tick missed or skipped, no frame dropped).
//!
//! Run: `cargo xtask demo` (or `cargo run --release --example demo_advanced -- --help`).
#![allow(clippy::print_stdout, reason = "a demo reports where its output went")]

mod support;

use std::fmt::Write as _;
use std::time::Instant;

use streamlib::prelude::*;
use streamlib::video::tiny_skia::{self, Color, FillRule, Paint, PathBuilder, Transform};
use streamlib::video::{
    Blur, BlurConfig, Compositor, CompositorConfig, Drawing, DrawingConfig, FontSource,
    LayerConfig, MissingLayer, Pattern, TestPattern, TestPatternConfig,
};
use support::{DemoOptions, init_logging, run_to_sink};

/// Height of the strip the moving shape travels along.
const SHAPE_STRIP: u32 = 160;

fn shapes(width: u32) -> anyhow::Result<Drawing> {
    let radius = SHAPE_STRIP as f32 * 0.4;
    let side = (2.0 * radius).ceil() as u32 + 2;
    // Rendered once into a sprite: tiny-skia allocates inside every `fill_path`, while drawing
    // a pixmap at a whole-pixel position does not, so each frame allocates nothing.
    let mut sprite = tiny_skia::Pixmap::new(side, side)
        .ok_or_else(|| anyhow::anyhow!("cannot allocate the shape sprite"))?;
    let circle = PathBuilder::from_circle(side as f32 / 2.0, side as f32 / 2.0, radius)
        .ok_or_else(|| anyhow::anyhow!("cannot build the circle path"))?;
    let mut paint = Paint {
        anti_alias: true,
        ..Paint::default()
    };
    paint.set_color(Color::from_rgba8(255, 200, 0, 220));
    sprite.fill_path(
        &circle,
        &paint,
        FillRule::Winding,
        Transform::identity(),
        None,
    );
    let config = DrawingConfig {
        width,
        height: SHAPE_STRIP,
        font: None,
        clear: [0, 0, 0, 0],
    };
    Ok(Drawing::new(config, move |canvas, ctx| {
        let travel = (ctx.width() as f32 - side as f32).max(1.0);
        let phase = (ctx.time_s() * 0.25).fract() as f32;
        let x = travel * (1.0 - (2.0 * phase - 1.0).abs());
        let y = (SHAPE_STRIP as f32 - side as f32) / 2.0;
        canvas.draw_pixmap(
            x as i32,
            y as i32,
            sprite.as_ref(),
            &tiny_skia::PixmapPaint::default(),
            Transform::identity(),
            None,
        );
        Ok(())
    })?)
}

fn hud(fps: u32) -> anyhow::Result<Drawing> {
    let mut text = String::with_capacity(96);
    let mut last: Option<Instant> = None;
    let mut measured = f64::from(fps);
    let background = tiny_skia::Rect::from_xywh(0.0, 0.0, 760.0, 84.0)
        .ok_or_else(|| anyhow::anyhow!("bad HUD rectangle"))?;
    let config = DrawingConfig {
        width: 760,
        height: 84,
        font: Some(FontSource::System),
        clear: [0, 0, 0, 0],
    };
    Ok(Drawing::new(config, move |canvas, ctx| {
        let now = Instant::now();
        if let Some(prev) = last {
            let dt = now.duration_since(prev).as_secs_f64();
            if dt > 0.0 {
                measured = 0.9 * measured + 0.1 / dt;
            }
        }
        last = Some(now);
        let frame = ctx.frame_number();
        let rate = ctx.fps().max(1.0).round() as u64;
        let (ff, secs) = (frame % rate, frame / rate);
        text.clear();
        let _ = write!(
            text,
            "{measured:5.2} fps  {:02}:{:02}:{:02}:{ff:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        );
        let mut shade = Paint::default();
        shade.set_color(Color::from_rgba8(0, 0, 0, 160));
        canvas.fill_rect(background, &shade, Transform::identity(), None);
        ctx.draw_text(canvas, &text, 16.0, 60.0, 48.0, Color::WHITE);
        Ok(())
    })?)
}

fn main() -> anyhow::Result<()> {
    init_logging();
    let options = DemoOptions::from_args((1920, 1080), "out/demo_advanced")?;
    let (width, height) = (options.width, options.height);
    let mut runtime = StreamRuntime::new(options.clock());

    let pattern = TestPattern::new(TestPatternConfig {
        width,
        height,
        pattern: Pattern::SmpteBars,
        moving_box: true,
        ..TestPatternConfig::default()
    })?;
    let blur = Blur::new(BlurConfig {
        sigma: 2.0,
        radius: None,
    })?;
    let mut compositor = Compositor::new(CompositorConfig {
        width,
        height,
        layers: 3,
        background: [0, 0, 0, 255],
        missing: MissingLayer::ReuseLast,
    })?;
    let shapes = shapes(width)?;
    let hud = hud(options.fps)?;
    compositor.set_layer(0, LayerConfig::default())?;
    compositor.set_layer(
        1,
        LayerConfig {
            y: height as i32 - SHAPE_STRIP as i32 - 40,
            opacity: 0.85,
            z: 1,
            ..LayerConfig::default()
        },
    )?;
    compositor.set_layer(
        2,
        LayerConfig {
            x: 32,
            y: 32,
            z: 2,
            ..LayerConfig::default()
        },
    )?;

    let (pattern_out, blur_in, blur_out) = (pattern.output(), blur.input(), blur.output());
    let (shapes_out, hud_out) = (shapes.output(), hud.output());
    let layers = [
        compositor.layer_input(0)?,
        compositor.layer_input(1)?,
        compositor.layer_input(2)?,
    ];
    let mixed = compositor.output();
    runtime.add_stream(Stream::new("pattern", pattern))?;
    // Two row bands in parallel: the machine this demo targets has two cores.
    runtime.add_stream(Stream::new("blur", blur).concurrency_limit(2))?;
    runtime.add_stream(Stream::new("shapes", shapes))?;
    runtime.add_stream(Stream::new("hud", hud))?;
    runtime.add_stream(Stream::new("compositor", compositor).concurrency_limit(2))?;
    runtime.connect(&pattern_out, &blur_in)?;
    runtime.connect(&blur_out, &layers[0])?;
    runtime.connect(&shapes_out, &layers[1])?;
    runtime.connect(&hud_out, &layers[2])?;

    run_to_sink(runtime, &mixed, &options, "demo_advanced")
}
