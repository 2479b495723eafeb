//! The `Drawing` handler: exact pixels, text, variables from both sources, drawing over an
//! input, every configuration and run-time error, panic containment in a real runtime, and no
//! allocation per frame at steady state.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use streamlib_buffers::PooledBuf;
use streamlib_clock::{ClockSourceId, ManualClock, Rational, TimedTick};
use streamlib_handlers_video::{
    DrawContext, Drawing, DrawingConfig, FontSource, VarValue, VideoError,
};
use streamlib_ports::*;
use streamlib_runtime::{RestartPolicy, Stream, StreamRuntime, StreamState};
use tiny_skia::{
    Color, FillRule, Paint, PathBuilder, Pixmap, PixmapMut, PixmapPaint, Rect, Stroke, Transform,
};

// ---------------------------------------------------------------------------------------------
// Allocation counting: only on a thread that asked for it, so parallel tests do not interfere.

mod common;

#[global_allocator]
static GLOBAL: common::Counting = common::Counting;

/// Allocations `f` makes on this thread.
fn allocations_in(f: impl FnOnce()) -> u64 {
    let before = common::thread_allocations();
    common::set_counted(true);
    f();
    common::set_counted(false);
    common::thread_allocations() - before
}

// ---------------------------------------------------------------------------------------------
// Driving a Drawing by hand.

fn tick(n: u64) -> TimedTick {
    TimedTick {
        timestamp: Rational::fps(30).frame_time_ns(n),
        frame_number: n,
        clock_source_id: ClockSourceId::MANUAL,
        fps: Rational::fps(30),
    }
}

/// A drawing with a sink on its output.
struct Harness {
    drawing: Drawing,
    sink: InputPort<VideoFrame>,
    next: u64,
}

impl Harness {
    fn new(drawing: Drawing) -> Self {
        let sink = InputPort::new("video", MemoryCaps::CPU);
        drawing
            .output()
            .erased()
            .connect_to(&*sink.handle().erased())
            .unwrap();
        Self {
            drawing,
            sink,
            next: 0,
        }
    }

    /// Processes the next tick.
    fn try_frame(&mut self) -> Result<Option<VideoFrame>, HandlerError> {
        let mut ctx = ProcessContext::new("drawing", tick(self.next));
        self.next += 1;
        self.drawing.process(&mut ctx)?;
        Ok(self.sink.recv())
    }

    fn frame(&mut self) -> VideoFrame {
        self.try_frame().unwrap().expect("a frame per tick")
    }
}

fn drawing(
    config: DrawingConfig,
    draw: impl FnMut(&mut PixmapMut<'_>, &mut DrawContext<'_>) -> Result<(), HandlerError>
    + Send
    + 'static,
) -> Harness {
    Harness::new(Drawing::new(config, draw).unwrap())
}

fn pixel(frame: &VideoFrame, x: u32, y: u32) -> [u8; 4] {
    let i = (y * frame.stride() + x * 4) as usize;
    frame.cpu_bytes().unwrap()[i..i + 4].try_into().unwrap()
}

fn paint(r: u8, g: u8, b: u8, a: u8) -> Paint<'static> {
    let mut paint = Paint::default();
    paint.set_color_rgba8(r, g, b, a);
    paint
}

/// `config` with the system font, which must be installed (fonts-dejavu-core; `cargo xtask
/// setup` installs it).
#[cfg(feature = "text")]
fn system_font_or_fail(config: DrawingConfig) -> DrawingConfig {
    let config = config.with_font(FontSource::System);
    if let Err(VideoError::NoSystemFont { searched }) = Drawing::new(config.clone(), |_, _| Ok(()))
    {
        panic!(
            "these tests need DejaVu Sans (apt-get install fonts-dejavu-core); searched {searched}"
        );
    }
    config
}

/// Pixels that are not transparent, as (x, y).
fn covered(frame: &VideoFrame) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for y in 0..frame.height() {
        for x in 0..frame.width() {
            if pixel(frame, x, y)[3] != 0 {
                out.push((x, y));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Pixels.

#[test]
fn a_filled_rect_has_exact_premultiplied_pixels() {
    let mut h = drawing(DrawingConfig::new(16, 8), |canvas, _| {
        let rect = Rect::from_xywh(2.0, 1.0, 4.0, 3.0).unwrap();
        canvas.fill_rect(rect, &paint(255, 0, 0, 128), Transform::identity(), None);
        let opaque = Rect::from_xywh(10.0, 4.0, 2.0, 2.0).unwrap();
        canvas.fill_rect(opaque, &paint(10, 20, 30, 255), Transform::identity(), None);
        Ok(())
    });
    let frame = h.frame();
    assert_eq!(frame.format(), PixelFormat::Rgba8);
    assert_eq!(frame.alpha(), AlphaMode::Premultiplied);
    assert_eq!((frame.width(), frame.height()), (16, 8));
    assert_eq!((frame.frame_number(), frame.timestamp_ns()), (0, 0));
    for y in 0..8 {
        for x in 0..16 {
            let expected = if (2..6).contains(&x) && (1..4).contains(&y) {
                [128, 0, 0, 128]
            } else if (10..12).contains(&x) && (4..6).contains(&y) {
                [10, 20, 30, 255]
            } else {
                [0, 0, 0, 0]
            };
            assert_eq!(pixel(&frame, x, y), expected, "({x}, {y})");
        }
    }
    let second = h.frame();
    assert_eq!(second.frame_number(), 1);
    assert_eq!(second.timestamp_ns(), tick(1).timestamp);
}

#[test]
fn the_canvas_is_cleared_every_frame() {
    // Transparent by default, even though the pooled buffers still hold the last drawing.
    let mut h = drawing(DrawingConfig::new(8, 4), |canvas, ctx| {
        if ctx.frame_number() < 8 {
            canvas.fill(Color::WHITE);
        }
        Ok(())
    });
    for _ in 0..8 {
        assert!(h.frame().cpu_bytes().unwrap().iter().all(|&b| b == 255));
    }
    for _ in 0..8 {
        assert!(h.frame().cpu_bytes().unwrap().iter().all(|&b| b == 0));
    }

    let clear = [0, 0, 64, 128];
    let mut h = drawing(DrawingConfig::new(5, 3).with_clear(clear), |_, _| Ok(()));
    let frame = h.frame();
    for y in 0..3 {
        for x in 0..5 {
            assert_eq!(pixel(&frame, x, y), clear);
        }
    }
}

#[cfg(feature = "text")]
#[test]
fn text_renders_where_asked_and_measures_consistently() {
    let measured = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = Arc::clone(&measured);
    let config = system_font_or_fail(DrawingConfig::new(240, 80));
    let mut h = drawing(config, move |canvas, ctx| {
        assert!(ctx.has_font());
        let advance = ctx.draw_text(canvas, "Hello", 20.0, 50.0, 24.0, Color::WHITE);
        let metrics = ctx.line_metrics(24.0).unwrap();
        log.lock().unwrap().push((
            advance,
            ctx.measure_text("H", 24.0),
            ctx.measure_text("Hello", 24.0),
            ctx.measure_text("Hello, world", 24.0),
            ctx.measure_text("Hello", 48.0),
            metrics,
        ));
        Ok(())
    });
    let frame = h.frame();
    let (advance, one, five, twelve, double, metrics) = measured.lock().unwrap()[0];
    assert!(advance > 40.0 && advance < 90.0, "advance {advance}");
    assert_eq!(advance, five, "draw_text returns what measure_text says");
    assert!(
        one > 0.0 && one < five && five < twelve,
        "{one} {five} {twelve}"
    );
    assert!((double - 2.0 * five).abs() < 2.0, "{double} vs 2 x {five}");
    assert!(
        metrics.ascent > 15.0 && metrics.descent < 0.0,
        "{metrics:?}"
    );

    let pixels = covered(&frame);
    assert!(pixels.len() > 100, "only {} pixels covered", pixels.len());
    // Everything inside the text's box: from the pen to the advance, ascent above the
    // baseline to descent below (a pixel of slack for rounding).
    for &(x, y) in &pixels {
        assert!(
            (19..=(20.0 + advance) as u32 + 1).contains(&x) && (50 - 26..=50 + 7).contains(&y),
            "pixel ({x}, {y}) is outside the text box"
        );
        let [r, g, b, a] = pixel(&frame, x, y);
        assert!(
            r == a && g == a && b == a,
            "white premultiplied: {:?}",
            [r, g, b, a]
        );
    }
    // Every letter left a mark: coverage spans most of the advance.
    let (min_x, max_x) = pixels
        .iter()
        .fold((u32::MAX, 0), |(lo, hi), &(x, _)| (lo.min(x), hi.max(x)));
    assert!(
        min_x <= 23 && max_x as f32 >= 20.0 + advance - 6.0,
        "{min_x}..{max_x}"
    );
    // Some pixels are fully covered, and the same text draws the same pixels next frame.
    assert!(pixels.iter().any(|&(x, y)| pixel(&frame, x, y)[3] == 255));
    assert_eq!(
        h.frame().cpu_bytes().unwrap(),
        frame.cpu_bytes().unwrap(),
        "cached glyphs draw identically"
    );
}

#[cfg(feature = "text")]
#[test]
fn text_is_clipped_at_the_canvas_edges_and_bad_sizes_draw_nothing() {
    let config = system_font_or_fail(DrawingConfig::new(40, 20));
    let mut h = drawing(config, |canvas, ctx| {
        ctx.draw_text(canvas, "WWWWWWWW", -13.0, 10.0, 30.0, Color::BLACK);
        ctx.draw_text(canvas, "g", 30.0, 19.0, 30.0, Color::BLACK);
        assert_eq!(
            ctx.draw_text(canvas, "x", 0.0, 10.0, 0.0, Color::BLACK),
            0.0
        );
        assert_eq!(
            ctx.draw_text(canvas, "x", 0.0, 10.0, f32::NAN, Color::BLACK),
            0.0
        );
        assert_eq!(
            ctx.draw_text(canvas, "x", f32::INFINITY, 10.0, 9.0, Color::BLACK),
            0.0
        );
        Ok(())
    });
    assert!(!covered(&h.frame()).is_empty());
}

#[test]
fn without_a_font_text_draws_nothing() {
    let mut h = drawing(DrawingConfig::new(32, 16), |canvas, ctx| {
        assert!(!ctx.has_font());
        assert_eq!(ctx.measure_text("abc", 12.0), 0.0);
        assert!(ctx.line_metrics(12.0).is_none());
        assert_eq!(
            ctx.draw_text(canvas, "abc", 0.0, 12.0, 12.0, Color::WHITE),
            0.0
        );
        Ok(())
    });
    assert!(covered(&h.frame()).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Variables.

/// Draws a 2×2 square at x = `x` (default 0), hidden when `show` is false, and records `label`.
fn square_at_var(labels: Arc<std::sync::Mutex<Vec<String>>>) -> Harness {
    drawing(DrawingConfig::new(32, 4), move |canvas, ctx| {
        labels.lock().unwrap().push(
            ctx.var("label")
                .map(ToString::to_string)
                .unwrap_or_default(),
        );
        if ctx.flag("show", true) {
            let x = ctx.number("x", 0.0) as f32;
            let rect = Rect::from_xywh(x, 1.0, 2.0, 2.0).unwrap();
            canvas.fill_rect(rect, &paint(0, 255, 0, 255), Transform::identity(), None);
        }
        Ok(())
    })
}

fn square_x(frame: &VideoFrame) -> Option<u32> {
    covered(frame).first().map(|&(x, _)| x)
}

#[test]
fn vars_from_the_data_input_change_the_next_frame() {
    let labels = Arc::default();
    let mut h = square_at_var(Arc::clone(&labels));
    let vars = OutputPort::<DataMessage>::new("vars", MemoryCaps::CPU);
    vars.handle()
        .erased()
        .connect_to(&*h.drawing.vars_input().erased())
        .unwrap();

    assert_eq!(square_x(&h.frame()), Some(0));
    vars.write(DataMessage::text("vars", "x=10\nlabel=Camera 1", 0));
    assert_eq!(square_x(&h.frame()), Some(10));
    // Messages apply in order; the last value of a name wins.
    vars.write(DataMessage::text("vars", "x = 20", 0));
    vars.write(DataMessage::text(
        "anything",
        "x=25\n# comment\nbogus line",
        0,
    ));
    assert_eq!(square_x(&h.frame()), Some(25));
    vars.write(DataMessage::text("vars", "show=false", 0));
    assert_eq!(square_x(&h.frame()), None);
    vars.write(DataMessage::text("vars", "show=true\nlabel=42", 0));
    // Not UTF-8: ignored, the frame still draws.
    vars.write(DataMessage::new("vars", vec![0xff, 0xfe, b'=', 1], 0));
    assert_eq!(square_x(&h.frame()), Some(25));
    assert_eq!(
        *labels.lock().unwrap(),
        ["", "Camera 1", "Camera 1", "Camera 1", "42"]
    );
}

#[test]
fn vars_from_the_handle_change_the_next_frame() {
    let labels = Arc::default();
    let mut h = square_at_var(Arc::clone(&labels));
    let handle = h.drawing.vars();
    assert_eq!(square_x(&h.frame()), Some(0));

    // From another thread, as a control plane would.
    let remote = handle.clone();
    std::thread::spawn(move || {
        remote.set("x", 7);
        remote.set("label", "remote");
    })
    .join()
    .unwrap();
    assert_eq!(square_x(&h.frame()), Some(7));
    // Nothing pending: the values stay.
    assert_eq!(square_x(&h.frame()), Some(7));
    // Several updates between frames: the last per name wins; lines parse like the input.
    handle.set("x", 3.0);
    handle.set_lines("x=12\nshow=false");
    assert_eq!(square_x(&h.frame()), None);
    handle.set("show", VarValue::Bool(true));
    assert_eq!(square_x(&h.frame()), Some(12));
    assert_eq!(
        *labels.lock().unwrap(),
        ["", "remote", "remote", "remote", "remote"]
    );
    assert!(format!("{handle:?}").contains("DrawingVars"));
}

// ---------------------------------------------------------------------------------------------
// Drawing over an input frame.

fn background_port(h: &Harness) -> OutputPort<VideoFrame> {
    let port = OutputPort::new("video", MemoryCaps::CPU);
    port.handle()
        .erased()
        .connect_to(&*h.drawing.background_input().erased())
        .unwrap();
    port
}

fn solid_frame(width: u32, height: u32, rgba: [u8; 4], padding: u32) -> VideoFrame {
    let layout = FrameLayout::new(width, height, PixelFormat::Rgba8)
        .unwrap()
        .with_stride(width * 4 + padding)
        .unwrap();
    let mut bytes = vec![0xAA; layout.buffer_len()];
    for row in bytes.chunks_exact_mut(layout.stride() as usize) {
        for px in row[..width as usize * 4].chunks_exact_mut(4) {
            px.copy_from_slice(&rgba);
        }
    }
    VideoFrame::cpu(layout, PooledBuf::from_vec(bytes)).unwrap()
}

#[test]
fn drawing_over_an_input_frame_shows_it_where_nothing_is_drawn() {
    let mut h = drawing(
        DrawingConfig::new(8, 4).with_clear([0, 0, 0, 0]),
        |canvas, _| {
            let rect = Rect::from_xywh(0.0, 0.0, 2.0, 4.0).unwrap();
            canvas.fill_rect(rect, &paint(255, 0, 0, 255), Transform::identity(), None);
            let half = Rect::from_xywh(2.0, 0.0, 2.0, 4.0).unwrap();
            canvas.fill_rect(half, &paint(0, 0, 255, 128), Transform::identity(), None);
            Ok(())
        },
    );
    let input = background_port(&h);
    // Connected but nothing arrived yet: the clear colour.
    assert_eq!(pixel(&h.frame(), 6, 1), [0, 0, 0, 0]);

    // A straight, opaque input with padded rows.
    input.write(solid_frame(8, 4, [10, 200, 30, 255], 12));
    let frame = h.frame();
    assert_eq!(frame.alpha(), AlphaMode::Premultiplied);
    assert_eq!(
        pixel(&frame, 6, 2),
        [10, 200, 30, 255],
        "the input shows through"
    );
    assert_eq!(
        pixel(&frame, 0, 0),
        [255, 0, 0, 255],
        "opaque drawing covers it"
    );
    // Half-transparent blue over it: 128 + (1 - 128/255) * input.
    assert_eq!(pixel(&frame, 3, 3), [5, 100, 143, 255]);
    // The newest input stays the background while no new one arrives.
    assert_eq!(pixel(&h.frame(), 7, 3), [10, 200, 30, 255]);

    // Straight translucent input is premultiplied on the way in.
    input.write(solid_frame(8, 4, [200, 100, 0, 128], 0));
    assert_eq!(pixel(&h.frame(), 6, 0), [100, 50, 0, 128]);
    // Already premultiplied input is copied as is.
    input.write(solid_frame(8, 4, [100, 50, 0, 128], 0).with_alpha(AlphaMode::Premultiplied));
    assert_eq!(pixel(&h.frame(), 6, 0), [100, 50, 0, 128]);
}

// ---------------------------------------------------------------------------------------------
// Errors.

#[cfg(feature = "text")]
#[test]
fn a_missing_font_file_names_the_path() {
    let path = std::env::temp_dir().join("streamlib-drawing-test/no-such-font.ttf");
    let err = Drawing::new(
        DrawingConfig::new(8, 8).with_font(FontSource::Path(path.clone())),
        |_, _| Ok(()),
    )
    .unwrap_err();
    assert!(matches!(err, VideoError::FontIo { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

/// A FIFO (or `/dev/stdin`) would block the build forever and a huge file would be read into
/// memory: both are refused before a byte is read, naming the path.
#[cfg(feature = "text")]
#[test]
fn a_font_path_that_is_no_regular_file_or_too_big_is_refused() {
    let dir = std::env::temp_dir().join(format!("streamlib-font-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("font.fifo");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    // Sparse: 64 MiB long, no disk used.
    let big = dir.join("big.ttf");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    for (path, why) in [
        (fifo, "not a regular file"),
        (dir.clone(), "not a regular file"),
        (big, "over the 33554432-byte limit"),
    ] {
        let started = std::time::Instant::now();
        let err = Drawing::new(
            DrawingConfig::new(8, 8).with_font(FontSource::Path(path.clone())),
            |_, _| Ok(()),
        )
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(matches!(err, VideoError::FontIo { .. }), "{err:?}");
        let text = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains(why), "{text}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(feature = "text")]
#[test]
fn a_file_that_is_not_a_font_is_rejected() {
    let path = std::env::temp_dir().join(format!(
        "streamlib-drawing-not-a-font-{}.ttf",
        std::process::id()
    ));
    std::fs::write(
        &path,
        b"this is a text file, not a TrueType font".repeat(10),
    )
    .unwrap();
    let err = Drawing::new(
        DrawingConfig::new(8, 8).with_font(FontSource::Path(path.clone())),
        |_, _| Ok(()),
    )
    .unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(err, VideoError::InvalidFont { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );

    for bytes in [Vec::new(), vec![0; 64], b"\0\x01\0\0garbage".to_vec()] {
        let err = Drawing::new(
            DrawingConfig::new(8, 8).with_font(FontSource::Bytes(bytes)),
            |_, _| Ok(()),
        )
        .unwrap_err();
        assert!(matches!(err, VideoError::InvalidFont { .. }), "{err:?}");
        assert!(err.to_string().contains("supplied bytes"), "{err}");
    }
}

#[cfg(feature = "text")]
#[test]
fn font_bytes_load_like_a_path() {
    let bytes = [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
    ]
    .iter()
    .find_map(|path| std::fs::read(path).ok())
    .expect("DejaVu Sans at the Debian or Arch path (apt-get install fonts-dejavu-core)");
    let mut h = drawing(
        DrawingConfig::new(40, 30).with_font(FontSource::Bytes(bytes)),
        |canvas, ctx| {
            ctx.draw_text(canvas, "A", 5.0, 25.0, 20.0, Color::WHITE);
            Ok(())
        },
    );
    assert!(!covered(&h.frame()).is_empty());
}

#[cfg(not(feature = "text"))]
#[test]
fn without_the_text_feature_a_font_is_refused() {
    let err = Drawing::new(
        DrawingConfig::new(8, 8).with_font(FontSource::System),
        |_, _| Ok(()),
    )
    .unwrap_err();
    assert!(matches!(err, VideoError::InvalidFont { .. }), "{err:?}");
    assert!(err.to_string().contains("`text` feature"), "{err}");
}

#[test]
fn invalid_sizes_and_clear_colours_are_rejected() {
    for (w, h) in [(0, 10), (10, 0), (0, 0), (20_000, 10)] {
        let err = Drawing::new(DrawingConfig::new(w, h), |_, _| Ok(())).unwrap_err();
        assert!(matches!(err, VideoError::InvalidSize { .. }), "{err:?}");
        assert!(err.to_string().contains(&format!("{w}x{h}")), "{err}");
    }
    let err = Drawing::new(
        DrawingConfig::new(4, 4).with_clear([255, 0, 0, 128]),
        |_, _| Ok(()),
    )
    .unwrap_err();
    assert!(matches!(err, VideoError::OutOfRange { .. }), "{err:?}");
    assert!(err.to_string().contains("premultiplied"), "{err}");
}

#[test]
fn a_background_of_the_wrong_size_or_format_fails_the_tick() {
    let mut h = drawing(DrawingConfig::new(16, 8), |_, _| Ok(()));
    let input = background_port(&h);
    input.write(solid_frame(32, 16, [0, 0, 0, 255], 0));
    let err = h.try_frame().unwrap_err().to_string();
    assert!(err.contains("32x16") && err.contains("16x8"), "{err}");

    let layout = FrameLayout::new(16, 8, PixelFormat::Bgra8).unwrap();
    input.write(VideoFrame::cpu(layout, PooledBuf::from_vec(vec![0; 16 * 8 * 4])).unwrap());
    let err = h.try_frame().unwrap_err().to_string();
    assert!(err.contains("bgra8") && err.contains("rgba8"), "{err}");

    // A good frame again: the drawing recovers on the next tick.
    input.write(solid_frame(16, 8, [1, 2, 3, 255], 0));
    assert_eq!(pixel(&h.frame(), 0, 0), [1, 2, 3, 255]);
}

#[test]
fn a_callback_error_fails_the_tick() {
    let mut h = drawing(DrawingConfig::new(4, 4), |_, ctx| {
        if ctx.frame_number() == 1 {
            return Err(HandlerError::msg("overlay data went stale"));
        }
        Ok(())
    });
    assert!(h.try_frame().unwrap().is_some());
    let err = h.try_frame().unwrap_err();
    assert_eq!(err.to_string(), "overlay data went stale");
    assert!(h.try_frame().unwrap().is_some());
}

// ---------------------------------------------------------------------------------------------
// A panic in a real runtime.

struct CountingSink {
    input: InputPort<VideoFrame>,
    received: Arc<AtomicU64>,
}

impl CountingSink {
    fn new() -> (Self, Arc<AtomicU64>) {
        let received = Arc::new(AtomicU64::new(0));
        let sink = Self {
            input: InputPort::new("video", MemoryCaps::CPU),
            received: Arc::clone(&received),
        };
        (sink, received)
    }
}

impl StreamHandler for CountingSink {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input)
    }
    fn process(&mut self, _ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        if let Some(frame) = self.input.recv() {
            assert_eq!(frame.alpha(), AlphaMode::Premultiplied);
            self.received.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

#[test]
fn a_panicking_callback_is_contained_by_the_runtime() {
    let (clock, ticks) = ManualClock::new(Rational::fps(30));
    let mut rt = StreamRuntime::new(clock);
    let panicking = Drawing::new(DrawingConfig::new(64, 36), |canvas, ctx| {
        assert!(
            ctx.frame_number() != 2,
            "overlay bug on frame {}",
            ctx.frame_number()
        );
        canvas.fill(Color::WHITE);
        Ok(())
    })
    .unwrap();
    let healthy = Drawing::new(DrawingConfig::new(64, 36), |canvas, _| {
        canvas.fill(Color::BLACK);
        Ok(())
    })
    .unwrap();
    let (sink, received) = CountingSink::new();
    let (other_sink, other_received) = CountingSink::new();
    let (po, ho, si, oi) = (
        panicking.output(),
        healthy.output(),
        sink.input.handle(),
        other_sink.input.handle(),
    );
    rt.add_stream(Stream::new("overlay", panicking).restart_policy(RestartPolicy::Never))
        .unwrap();
    rt.add_stream(Stream::new("healthy", healthy)).unwrap();
    rt.add_stream(Stream::new("sink", sink)).unwrap();
    rt.add_stream(Stream::new("other", other_sink)).unwrap();
    rt.connect(&po, &si).unwrap();
    rt.connect(&ho, &oi).unwrap();
    rt.start().unwrap();
    for k in 1..=6 {
        ticks.tick();
        assert!(rt.wait_for_ticks(k, Duration::from_secs(10)), "tick {k}");
    }
    let stats = rt.stop().unwrap();
    let overlay = stats.stream("overlay").unwrap();
    assert_eq!(overlay.panics, 1, "{overlay:?}");
    assert_eq!(overlay.state, StreamState::Failed);
    assert_eq!(overlay.handler, "Drawing");
    let healthy = stats.stream("healthy").unwrap();
    assert_eq!((healthy.panics, healthy.errors, healthy.ticks), (0, 0, 6));
    assert_eq!(other_received.load(Ordering::SeqCst), 6);
    assert_eq!(received.load(Ordering::SeqCst), 2, "frames 0 and 1 only");
}

// ---------------------------------------------------------------------------------------------
// Allocation.

#[test]
fn steady_state_frames_allocate_nothing() {
    // Built once, outside the callback: a disc sprite (the path is rendered once), a hairline
    // path, paints, a label buffer.
    let disc = PathBuilder::from_circle(12.0, 12.0, 12.0).unwrap();
    let mut sprite = Pixmap::new(24, 24).unwrap();
    sprite.fill_path(
        &disc,
        &paint(250, 200, 0, 255),
        FillRule::Winding,
        Transform::identity(),
        None,
    );
    let mut zigzag = PathBuilder::new();
    zigzag.move_to(0.0, 100.0);
    for i in 1..20 {
        zigzag.line_to(i as f32 * 16.0, if i % 2 == 0 { 100.0 } else { 80.0 });
    }
    let zigzag = zigzag.finish().unwrap();
    let hairline = Stroke {
        width: 1.0,
        ..Stroke::default()
    };
    let (bar, line) = (paint(0, 0, 0, 160), paint(255, 255, 255, 255));
    let mut label = String::with_capacity(128);

    #[cfg(feature = "text")]
    let config = system_font_or_fail(DrawingConfig::new(320, 180));
    #[cfg(not(feature = "text"))]
    let config = DrawingConfig::new(320, 180);
    let mut h = drawing(config, move |canvas, ctx| {
        let t = ctx.frame_number();
        let x = (t * 3 % 296) as i32;
        canvas.draw_pixmap(
            x,
            40,
            sprite.as_ref(),
            &PixmapPaint::default(),
            Transform::identity(),
            None,
        );
        let shade = Rect::from_xywh(0.0, 140.0, 320.0, 40.0).unwrap();
        canvas.fill_rect(shade, &bar, Transform::identity(), None);
        let cursor = Rect::from_xywh(ctx.number("x", 0.0) as f32, 10.0, 4.0, 4.0).unwrap();
        canvas.fill_rect(cursor, &line, Transform::identity(), None);
        canvas.stroke_path(&zigzag, &line, &hairline, Transform::identity(), None);
        label.clear();
        let secs = ctx.time_s();
        write!(label, "fps {:.2}  frame {t}  {secs:.3}s", ctx.fps()).unwrap();
        let w = ctx.draw_text(canvas, &label, 8.0, 168.0, 20.0, Color::WHITE);
        assert_eq!(w > 0.0, ctx.has_font());
        assert_eq!(ctx.measure_text(&label, 20.0), w);
        Ok(())
    });
    let vars = OutputPort::<DataMessage>::new("vars", MemoryCaps::CPU);
    vars.handle()
        .erased()
        .connect_to(&*h.drawing.vars_input().erased())
        .unwrap();
    let background = background_port(&h);
    let input = solid_frame(320, 180, [20, 40, 60, 255], 0);
    let numeric = DataMessage::text("vars", "x=12", 0);
    let pool = h.drawing.pool().clone();

    // Warm-up: every digit drawn once, the variable created, the pool at its working size.
    vars.write(numeric.clone());
    for _ in 0..120 {
        h.frame();
    }
    let grown = pool.pool().grown();

    // Overlay on a transparent canvas, a numeric variable update every frame.
    let overlay = allocations_in(|| {
        for _ in 0..300 {
            vars.write(numeric.clone());
            let frame = h.try_frame().unwrap();
            assert!(frame.is_some());
        }
    });
    // Over an input frame.
    background.write(input.clone());
    h.frame();
    let over_input = allocations_in(|| {
        for _ in 0..300 {
            background.write(input.clone());
            let frame = h.try_frame().unwrap();
            assert!(frame.is_some());
        }
    });
    assert_eq!(
        (overlay, over_input),
        (0, 0),
        "allocations over 300 frames (overlay, over an input)"
    );
    assert_eq!(pool.pool().grown(), grown, "the frame pool did not grow");
    let last = h.frame();
    assert_eq!(pixel(&last, 319, 0), [20, 40, 60, 255]);
    assert_eq!(
        pixel(&last, 13, 11),
        [255, 255, 255, 255],
        "cursor at x = 12"
    );
}

#[test]
fn the_allocation_counter_sees_allocations() {
    // Guards the test above against a counter that counts nothing.
    let n = allocations_in(|| {
        let v: Vec<u8> = Vec::with_capacity(std::hint::black_box(64));
        std::hint::black_box(v);
    });
    assert_eq!(n, 1);
    // And a fill_path does allocate inside tiny-skia 0.12 (see the Drawing docs).
    let mut canvas = Pixmap::new(64, 64).unwrap();
    let circle = PathBuilder::from_circle(32.0, 32.0, 20.0).unwrap();
    let p = paint(1, 2, 3, 255);
    canvas.fill_path(&circle, &p, FillRule::Winding, Transform::identity(), None);
    let n = allocations_in(|| {
        canvas.fill_path(&circle, &p, FillRule::Winding, Transform::identity(), None);
    });
    assert!(n > 0, "fill_path allocated {n} times");
}
