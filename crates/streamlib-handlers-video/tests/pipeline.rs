//! The video handlers together through a real runtime: TestPattern → Blur → Compositor (with a
//! Drawing overlay) → FrameCapture. Frames arrive on their own tick, and after warm-up the whole
//! pipeline allocates nothing per frame (a counting allocator over every thread).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::sync::Arc;
use std::time::Duration;
use streamlib_test_support::{CountingAllocator, allocations};

use streamlib_clock::{ManualClock, Rational};
use streamlib_dispatch::ThreadPoolDispatcher;
use streamlib_handlers_video::tiny_skia::{Color, Paint, Rect, Transform};
use streamlib_handlers_video::{
    Blur, BlurConfig, Compositor, CompositorConfig, Drawing, DrawingConfig, FrameCapture,
    LayerConfig, MissingLayer, Pattern, TestPattern, TestPatternConfig,
};
use streamlib_runtime::{Stream, StreamRuntime};
#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn pattern_blur_composite_capture_on_one_tick_without_allocating() {
    let (width, height) = (320, 180);
    let (clock, ticks) = ManualClock::new(Rational::fps(30));
    let mut rt = StreamRuntime::new(clock);
    rt.set_default_dispatcher(Arc::new(ThreadPoolDispatcher::new(2)));
    let pattern = TestPattern::new(TestPatternConfig {
        width,
        height,
        pattern: Pattern::SmpteBars,
        moving_box: true,
        ..TestPatternConfig::default()
    })
    .unwrap();
    let blur = Blur::new(BlurConfig {
        sigma: 2.0,
        radius: None,
    })
    .unwrap();
    let mut compositor = Compositor::new(CompositorConfig {
        width,
        height,
        layers: 2,
        background: [0, 0, 0, 255],
        missing: MissingLayer::ReuseLast,
    })
    .unwrap();
    compositor
        .set_layer(
            1,
            LayerConfig {
                x: 10,
                y: 10,
                opacity: 0.5,
                z: 1,
                ..LayerConfig::default()
            },
        )
        .unwrap();
    let rect = Rect::from_xywh(0.0, 0.0, 40.0, 20.0).unwrap();
    let overlay = Drawing::new(
        DrawingConfig {
            width: 64,
            height: 32,
            font: None,
            clear: [0, 0, 0, 0],
        },
        move |canvas, _ctx| {
            let mut paint = Paint::default();
            paint.set_color(Color::from_rgba8(255, 255, 255, 255));
            canvas.fill_rect(rect, &paint, Transform::identity(), None);
            Ok(())
        },
    )
    .unwrap();
    // Both kept frames arrive during warm-up: each one held grows the compositor's output pool
    // by a buffer (a one-off cost of a consumer that holds frames, not a per-frame one).
    let capture = FrameCapture::new([0, 50]);
    let seen = capture.handle();
    let (p_out, b_in, b_out, o_out) = (
        pattern.output(),
        blur.input(),
        blur.output(),
        overlay.output(),
    );
    let (l0, l1, c_out, cap_in) = (
        compositor.layer_input(0).unwrap(),
        compositor.layer_input(1).unwrap(),
        compositor.output(),
        capture.input(),
    );
    rt.add_stream(Stream::new("pattern", pattern)).unwrap();
    // One band: rayon's injector queue allocates a block per 63 jobs entering its pool from
    // outside (measured in tests/blur.rs), so the strict zero holds for single-band handlers.
    rt.add_stream(Stream::new("blur", blur)).unwrap();
    rt.add_stream(Stream::new("overlay", overlay)).unwrap();
    rt.add_stream(Stream::new("compositor", compositor))
        .unwrap();
    rt.add_stream(Stream::new("capture", capture)).unwrap();
    rt.connect(&p_out, &b_in).unwrap();
    rt.connect(&b_out, &l0).unwrap();
    rt.connect(&o_out, &l1).unwrap();
    rt.connect(&c_out, &cap_in).unwrap();
    rt.start().unwrap();

    let pump = |from: u64, n: u64| {
        for k in 1..=n {
            ticks.tick();
            assert!(rt.wait_for_ticks(from + k, Duration::from_secs(20)));
        }
    };
    pump(0, 100);
    let before = allocations();
    pump(100, 200);
    let allocated = allocations() - before;
    pump(300, 1);
    let stats = rt.stop().unwrap();

    assert_eq!(
        seen.received(),
        301,
        "every tick's frame reached the capture"
    );
    for s in &stats.streams {
        assert_eq!(s.total_drops(), 0, "{}", s.id);
        assert_eq!(s.errors + s.panics, 0, "{}", s.id);
    }
    let frames = seen.frames();
    assert_eq!(frames.len(), 2);
    let (_, last) = &frames[1];
    assert_eq!(last.frame_number(), 50, "captured on its own tick");
    assert_eq!((last.width(), last.height()), (width, height));
    assert_eq!(
        allocated, 0,
        "allocations over 200 ticks of the video pipeline"
    );
}
