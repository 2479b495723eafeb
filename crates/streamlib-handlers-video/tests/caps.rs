//! The video handlers' declared caps through a real runtime (no converters registered): what
//! a handler cannot process is refused at build, naming both ports; `Scale` gets its input's
//! format and its own size and allocates nothing per frame; `VideoRate` turns a 15 fps source
//! into one frame per 30 fps tick.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::time::Duration;

use streamlib_clock::{ManualClock, Rational};
use streamlib_handlers_video::{
    Blur, BlurConfig, FrameCapture, Pattern, Scale, ScaleConfig, ScaleMethod, TestPattern,
    TestPatternConfig, VideoRate,
};
use streamlib_ports::{
    Caps, FrameLayout, FramePool, HandlerError, MemoryCaps, OutputPort, PixelFormat, Ports,
    ProcessContext, StreamHandler, VideoCaps, VideoFrame,
};
use streamlib_runtime::{RuntimeError, Stream, StreamRuntime};
use streamlib_test_support::{CountingAllocator, allocations};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn pattern(width: u32, height: u32, format: PixelFormat) -> TestPattern {
    TestPattern::new(TestPatternConfig {
        format,
        ..TestPatternConfig::new(width, height, Pattern::SmpteBars)
    })
    .unwrap()
}

#[test]
fn blur_refuses_uyvy_at_build_naming_both_ports() {
    let (clock, _ticks) = ManualClock::new(Rational::fps(30));
    let mut rt = StreamRuntime::new(clock);
    let source = pattern(64, 48, PixelFormat::Uyvy);
    let blur = Blur::new(BlurConfig::default()).unwrap();
    let (out, input) = (source.output(), blur.input());
    rt.add_stream(Stream::new("pattern", source)).unwrap();
    rt.add_stream(Stream::new("blur", blur)).unwrap();
    rt.connect(&out, &input).unwrap();
    let Err(err) = rt.negotiate() else {
        panic!("uyvy into blur must not negotiate");
    };
    let RuntimeError::NotNegotiated {
        output,
        input,
        field,
        ..
    } = &err
    else {
        panic!("{err}");
    };
    assert_eq!(
        (output.as_str(), input.as_str(), field.as_str()),
        ("pattern.video", "blur.video", "format")
    );
}

#[test]
fn scale_takes_the_input_format_at_its_size_without_allocating() {
    let (clock, ticks) = ManualClock::new(Rational::fps(30));
    let mut rt = StreamRuntime::new(clock);
    let source = pattern(640, 360, PixelFormat::Uyvy);
    let scale = Scale::new(ScaleConfig {
        width: 320,
        height: 180,
        method: ScaleMethod::Area,
    })
    .unwrap();
    let capture = FrameCapture::new([0, 10]);
    let seen = capture.handle();
    let (p_out, s_in, s_out, c_in) = (
        source.output(),
        scale.input(),
        scale.output(),
        capture.input(),
    );
    rt.add_stream(Stream::new("pattern", source)).unwrap();
    rt.add_stream(Stream::new("scale", scale)).unwrap();
    rt.add_stream(Stream::new("capture", capture)).unwrap();
    rt.connect(&p_out, &s_in).unwrap();
    rt.connect(&s_out, &c_in).unwrap();
    let caps: Vec<String> = rt
        .negotiate()
        .unwrap()
        .iter()
        .map(|c| c.caps.as_ref().map(ToString::to_string).unwrap_or_default())
        .collect();
    assert_eq!(caps, ["video uyvy 640x360 30", "video uyvy 320x180 30"]);
    rt.start().unwrap();
    let pump = |from: u64, n: u64| {
        for k in 1..=n {
            ticks.tick();
            assert!(rt.wait_for_ticks(from + k, Duration::from_secs(20)));
        }
    };
    // The pool and the filters were made in on_start from the negotiated caps.
    pump(0, 20);
    let before = allocations();
    pump(20, 100);
    let allocated = allocations() - before;
    let stats = rt.stop().unwrap();
    for s in &stats.streams {
        assert_eq!(s.errors + s.panics, 0, "{}", s.id);
    }
    let frames = seen.frames();
    let (_, frame) = &frames[1];
    assert_eq!(
        (frame.width(), frame.height(), frame.format()),
        (320, 180, PixelFormat::Uyvy)
    );
    assert_eq!(frame.frame_number(), 10);
    assert_eq!(allocated, 0, "allocations over 100 scaled frames");
}

/// A 15 fps source on a 30 fps clock: a 4x4 gray frame on every other tick, its number the
/// tick's.
struct HalfRate {
    output: OutputPort<VideoFrame>,
    pool: FramePool,
}

impl StreamHandler for HalfRate {
    fn ports(&self) -> Ports {
        Ports::new().output(&self.output)
    }

    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        if ctx.tick().frame_number % 2 == 0 {
            let mut buf = self.pool.acquire().map_err(HandlerError::msg)?;
            buf.fill(ctx.tick().frame_number as u8);
            self.output
                .write(self.pool.frame(buf).with_tick(ctx.tick()));
        }
        Ok(())
    }
}

#[test]
fn videorate_sends_one_frame_per_tick_repeating_the_last() {
    let (clock, ticks) = ManualClock::new(Rational::fps(30));
    let mut rt = StreamRuntime::new(clock);
    let layout = FrameLayout::new(4, 4, PixelFormat::Gray8).unwrap();
    let source = HalfRate {
        output: OutputPort::new("video", MemoryCaps::CPU).with_format(Caps::Video(
            VideoCaps::fixed(PixelFormat::Gray8, 4, 4).with_rate(Rational::fps(15)),
        )),
        pool: FramePool::new("half", layout, 8, 8).unwrap(),
    };
    let rate = VideoRate::new();
    let counters = rate.stats();
    let capture = FrameCapture::new(0..8);
    let seen = capture.handle();
    let (p_out, r_in, r_out, c_in) = (
        source.output.handle(),
        rate.input(),
        rate.output(),
        capture.input(),
    );
    rt.add_stream(Stream::new("half", source)).unwrap();
    rt.add_stream(Stream::new("rate", rate)).unwrap();
    rt.add_stream(Stream::new("capture", capture)).unwrap();
    rt.connect(&p_out, &r_in).unwrap();
    rt.connect(&r_out, &c_in).unwrap();
    let caps: Vec<String> = rt
        .negotiate()
        .unwrap()
        .iter()
        .map(|c| c.caps.as_ref().map(ToString::to_string).unwrap_or_default())
        .collect();
    assert_eq!(caps, ["video gray8 4x4 15", "video gray8 4x4 30"]);
    rt.start().unwrap();
    for k in 1..=8 {
        ticks.tick();
        assert!(rt.wait_for_ticks(k, Duration::from_secs(20)));
    }
    rt.stop().unwrap();
    let frames = seen.frames();
    assert_eq!(frames.len(), 8);
    for (i, (_, frame)) in frames.iter().enumerate() {
        // Restamped with every tick; the pixels of the last even tick.
        assert_eq!(frame.frame_number(), i as u64);
        assert_eq!(frame.cpu_bytes().unwrap()[0], (i - i % 2) as u8);
    }
    assert_eq!(counters.duplicated(), 4);
    assert_eq!(counters.dropped(), 0);
}
