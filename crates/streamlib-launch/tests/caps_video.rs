//! Caps negotiation over the shipped video handlers: the converters the launcher registers
//! (`convert`, `scale`, `videorate`) are inserted where two ports disagree and the frames
//! arrive as the input asked; with auto-convert off the same graph fails, naming both ports.
#![cfg(feature = "video")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::sync::{Arc, Mutex};

use streamlib_clock::{FreeRunningClock, ManualClock, Rational};
use streamlib_launch::{
    BuiltHandler, Direction, HandlerSpec, LaunchError, Negotiation, Policy, Registry, build,
    build_negotiated, parse, port,
};
use streamlib_ports::{
    Caps, DeliveryMode, FrameLayout, FramePool, HandlerError, InputPort, MemoryCaps, OutputPort,
    PixelFormat, PortKind, Ports, ProcessContext, StreamHandler, VideoCaps, VideoFrame,
};
use streamlib_runtime::{RuntimeError, StreamRuntime};

type Seen = Arc<Mutex<Vec<(u32, u32, PixelFormat)>>>;

/// A sink whose input accepts only 320x240 frames (any format), recording what it receives.
struct SizedSink {
    input: InputPort<VideoFrame>,
    seen: Seen,
}

impl StreamHandler for SizedSink {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input)
    }

    fn process(&mut self, _ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        if let Some(frame) = self.input.recv() {
            let mut seen = self.seen.lock().unwrap();
            seen.push((frame.width(), frame.height(), frame.format()));
        }
        Ok(())
    }
}

/// A 15 fps source: a 4x4 gray frame on every other tick of a 30 fps clock.
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
            let buf = self.pool.acquire().map_err(HandlerError::msg)?;
            self.output
                .write(self.pool.frame(buf).with_tick(ctx.tick()));
        }
        Ok(())
    }
}

/// The built-ins plus `sink320` (320x240 only), `sink30` (30 fps only) and `half15`.
fn registry() -> (Registry, Seen) {
    let seen: Seen = Arc::default();
    let mut registry = Registry::builtin();
    let shared = Arc::clone(&seen);
    registry.register(HandlerSpec {
        name: "sink320",
        summary: "accepts 320x240 frames only",
        ports: vec![port(
            "video",
            Direction::Input,
            PortKind::Video,
            MemoryCaps::CPU,
            DeliveryMode::Latest,
            "320x240 frames",
        )],
        properties: vec![],
        factory: Arc::new(move |_| {
            Ok(BuiltHandler::fixed(SizedSink {
                input: InputPort::new("video", MemoryCaps::CPU)
                    .with_format(Caps::Video(VideoCaps::any().with_size(320, 240))),
                seen: Arc::clone(&shared),
            }))
        }),
    });
    let shared = Arc::clone(&seen);
    registry.register(HandlerSpec {
        name: "sink30",
        summary: "accepts 30 fps frames only",
        ports: vec![port(
            "video",
            Direction::Input,
            PortKind::Video,
            MemoryCaps::CPU,
            DeliveryMode::Latest,
            "30 fps frames",
        )],
        properties: vec![],
        factory: Arc::new(move |_| {
            Ok(BuiltHandler::fixed(SizedSink {
                input: InputPort::new("video", MemoryCaps::CPU)
                    .with_format(Caps::Video(VideoCaps::any().with_rate(Rational::fps(30)))),
                seen: Arc::clone(&shared),
            }))
        }),
    });
    registry.register(HandlerSpec {
        name: "half15",
        summary: "4x4 gray frames at 15 fps",
        ports: vec![port(
            "video",
            Direction::Output,
            PortKind::Video,
            MemoryCaps::CPU,
            DeliveryMode::Latest,
            "15 fps frames",
        )],
        properties: vec![],
        factory: Arc::new(|_| {
            let layout = FrameLayout::new(4, 4, PixelFormat::Gray8)?;
            Ok(BuiltHandler::fixed(HalfRate {
                output: OutputPort::new("video", MemoryCaps::CPU).with_format(Caps::Video(
                    VideoCaps::fixed(PixelFormat::Gray8, 4, 4).with_rate(Rational::fps(15)),
                )),
                pool: FramePool::new("half15", layout, 8, 8).map_err(HandlerError::msg)?,
            }))
        }),
    });
    (registry, seen)
}

fn runtime(frames: u64) -> StreamRuntime {
    StreamRuntime::new(FreeRunningClock::new(Rational::fps(30)).with_limit(frames))
}

#[test]
fn uyvy_into_blur_gets_a_convert_and_runs() {
    let desc = parse(
        "testpattern size=64x48 format=uyvy ! blur sigma=1 ! compositor size=64x48 layers=1 ! null",
    )
    .unwrap();
    let mut built = build(&Registry::builtin(), &desc, runtime(4)).unwrap();
    let inserted: Vec<&String> = built
        .graph
        .edges
        .iter()
        .flat_map(|e| &e.converters)
        .collect();
    assert_eq!(inserted.len(), 1, "{:?}", built.graph.edges);
    assert!(inserted[0].starts_with("convert-"), "{inserted:?}");
    // Blur got what it asked for: the converter made RGBA8.
    let into_blur = built
        .graph
        .edges
        .iter()
        .find(|e| e.to.starts_with("blur0"))
        .unwrap();
    assert!(into_blur.caps.contains("rgba8"), "{}", into_blur.caps);
    let stats = built.runtime.run().unwrap();
    for stream in &stats.streams {
        assert_eq!(stream.errors, 0, "{}", stream.id);
    }
    assert!(stats.stream("null0").unwrap().items_in >= 4);
    assert!(stats.stream(inserted[0]).unwrap().items_out >= 4);
}

#[test]
fn a_size_mismatch_gets_a_scale_and_the_sink_sees_its_size() {
    let (registry, seen) = registry();
    let desc = parse("testpattern size=640x480 ! sink320 name=sink").unwrap();
    let mut built = build(&registry, &desc, runtime(3)).unwrap();
    let edge = &built.graph.edges[0];
    assert_eq!(edge.converters.len(), 1, "{edge:?}");
    assert!(edge.converters[0].starts_with("scale-"), "{edge:?}");
    let stats = built.runtime.run().unwrap();
    for stream in &stats.streams {
        assert_eq!(stream.errors, 0, "{}", stream.id);
    }
    let seen = seen.lock().unwrap();
    assert!(seen.len() >= 3, "{seen:?}");
    assert!(
        seen.iter().all(|&f| f == (320, 240, PixelFormat::Rgba8)),
        "{seen:?}"
    );
}

#[test]
fn a_format_and_size_mismatch_chains_convert_and_scale() {
    // UYVY 640x480 into blur (no UYVY) then a 320x240 input: convert, then scale.
    let (registry, seen) = registry();
    let desc = parse("testpattern size=640x480 format=uyvy ! blur sigma=1 ! sink320").unwrap();
    let mut built = build(&registry, &desc, runtime(2)).unwrap();
    let inserted: Vec<&String> = built
        .graph
        .edges
        .iter()
        .flat_map(|e| &e.converters)
        .collect();
    assert_eq!(inserted.len(), 2, "{:?}", built.graph.edges);
    assert!(inserted[0].starts_with("convert-"), "{inserted:?}");
    assert!(inserted[1].starts_with("scale-"), "{inserted:?}");
    let stats = built.runtime.run().unwrap();
    for stream in &stats.streams {
        assert_eq!(stream.errors, 0, "{}", stream.id);
    }
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|&f| f == (320, 240, PixelFormat::Rgba8)));
}

#[test]
fn without_auto_convert_the_mismatch_names_both_ports() {
    let (registry, _) = registry();
    let desc = parse("testpattern size=640x480 ! sink320 name=sink").unwrap();
    let negotiation = Negotiation {
        rate_from_sources: None,
        auto_convert: false,
    };
    let Err(err) = build_negotiated(
        &registry,
        &desc,
        StreamRuntime::new(ManualClock::new(Rational::fps(30)).0),
        &Policy::default(),
        &negotiation,
    ) else {
        panic!("the build must fail");
    };
    let LaunchError::Runtime(RuntimeError::NotNegotiated {
        output,
        input,
        field,
        fix,
        ..
    }) = &err
    else {
        panic!("not NotNegotiated: {err}");
    };
    assert_eq!(
        (output.as_str(), input.as_str(), field.as_str()),
        ("testpattern0.video", "sink.video", "size")
    );
    assert!(fix.contains("scale"), "{fix}");
    let text = err.to_string();
    assert!(
        text.contains("testpattern0.video") && text.contains("sink.video"),
        "{text}"
    );
}

#[test]
fn a_rate_mismatch_gets_a_videorate_and_every_tick_a_frame() {
    let (registry, seen) = registry();
    let desc = parse("half15 ! sink30 name=sink").unwrap();
    let mut built = build(&registry, &desc, runtime(6)).unwrap();
    let edge = &built.graph.edges[0];
    assert_eq!(edge.converters.len(), 1, "{edge:?}");
    assert!(edge.converters[0].starts_with("videorate-"), "{edge:?}");
    assert!(edge.caps.ends_with(" 30"), "{edge:?}");
    let stats = built.runtime.run().unwrap();
    for stream in &stats.streams {
        assert_eq!(stream.errors, 0, "{}", stream.id);
    }
    // Six ticks, three source frames: every tick still delivers one.
    assert!(
        seen.lock().unwrap().len() >= 6,
        "{:?}",
        seen.lock().unwrap()
    );
}
