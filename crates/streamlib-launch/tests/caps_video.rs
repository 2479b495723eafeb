//! Caps negotiation over the shipped video handlers: the converters the video crate registers
//! (`convert`, `scale`) are inserted where two ports disagree and the frames arrive as the
//! input asked; with auto-convert off the same graph fails, naming both ports.
#![cfg(feature = "video")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::sync::{Arc, Mutex};

use streamlib_clock::{FreeRunningClock, ManualClock, Rational};
use streamlib_launch::{
    BuiltHandler, Direction, HandlerSpec, LaunchError, Negotiation, Policy, Registry, build,
    build_negotiated, parse, port,
};
use streamlib_ports::{
    Caps, DeliveryMode, HandlerError, InputPort, MemoryCaps, PixelFormat, PortKind, Ports,
    ProcessContext, StreamHandler, VideoCaps, VideoFrame,
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

/// The built-ins plus `sink320`.
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
    let err = build_negotiated(
        &registry,
        &desc,
        StreamRuntime::new(ManualClock::new(Rational::fps(30)).0),
        &Policy::default(),
        &negotiation,
    )
    .err()
    .expect("the build must fail");
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
