//! What several launch test files check the same way.
#![allow(dead_code, reason = "each test binary uses part of it")]

use streamlib_clock::{FreeRunningClock, Rational};
use streamlib_launch::{Registry, build, parse};
use streamlib_runtime::StreamRuntime;

/// Each pipeline `text` is refused when built, its error naming `property`.
pub fn assert_refused_naming(cases: &[(&str, &str)]) {
    for (text, property) in cases {
        let desc = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let clock = FreeRunningClock::new(Rational::fps(30)).with_limit(1);
        let err = match build(&Registry::builtin(), &desc, StreamRuntime::new(clock)) {
            Ok(_) => panic!("{text}: built, but should be refused naming `{property}`"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(property), "{text}: {err}");
    }
}

/// Frames the test's `capture` handler kept, one handle per pipeline that built it.
#[cfg(feature = "video")]
pub type Captures = std::sync::Arc<std::sync::Mutex<Vec<streamlib_handlers_video::CaptureHandle>>>;

/// The built-ins plus `capture`, a video sink made by `make` (which frames it keeps), whose
/// handles land in the returned list.
#[cfg(feature = "video")]
pub fn with_capture(
    summary: &'static str,
    make: impl Fn() -> streamlib_handlers_video::FrameCapture + Send + Sync + 'static,
) -> (Registry, Captures) {
    use streamlib_launch::{BuiltHandler, Direction, HandlerSpec, port};
    use streamlib_ports::{DeliveryMode, MemoryCaps, PortKind};
    let handles = Captures::default();
    let mut registry = Registry::builtin();
    let seen = std::sync::Arc::clone(&handles);
    registry.register(HandlerSpec {
        name: "capture",
        summary,
        ports: vec![port(
            "video",
            Direction::Input,
            PortKind::Video,
            MemoryCaps::CPU,
            DeliveryMode::Latest,
            "frames",
        )],
        properties: vec![],
        factory: std::sync::Arc::new(move |_| {
            let capture = make();
            seen.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(capture.handle());
            Ok(BuiltHandler::fixed(capture))
        }),
    });
    (registry, handles)
}

/// Builds `text` on the free clock (stopping after `ticks` when given, else when its sources
/// end), runs it and checks no stream failed; returns the negotiated graph.
pub fn run_free(text: &str, ticks: Option<u64>) -> streamlib_launch::Graph {
    let desc = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    let clock = FreeRunningClock::new(Rational::fps(30));
    let clock = match ticks {
        Some(n) => clock.with_limit(n),
        None => clock,
    };
    let mut built = build(&Registry::builtin(), &desc, StreamRuntime::new(clock))
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    let stats = built
        .runtime
        .run()
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    for stream in &stats.streams {
        assert_eq!(stream.errors, 0, "{text}: {}", stream.id);
    }
    built.graph
}

/// The `@process` child's side in a test binary: a `#[test] fn worker_entry` calls this; it
/// does nothing unless this process was started as a worker, and then serves and exits.
#[cfg(feature = "process")]
pub fn serve_if_worker() {
    use streamlib_launch::process::{is_worker, run_worker};
    if is_worker() {
        let code = run_worker(&process_registry());
        std::process::exit(if code == std::process::ExitCode::SUCCESS {
            0
        } else {
            3
        });
    }
}

/// Options whose child is this test binary re-entered at its `worker_entry` test.
#[cfg(feature = "process")]
pub fn worker_options() -> streamlib_launch::process::ProcessOptions {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("the test binary's path: {e}"));
    streamlib_launch::process::ProcessOptions::default().program(
        exe,
        &["worker_entry", "--exact", "--nocapture", "--test-threads=1"],
    )
}

/// The built-ins plus two handlers that stretch `@process`'s slot rules, registered on both
/// sides (the child serves this registry too):
/// - `tee2`: one input, outputs `a` and `b`, each given the input frame itself (one slot
///   answered twice);
/// - `hoard`: passes frames through and keeps the last frames past its tick, more than the one
///   it declares, 24 (slots come back to it while it still reads them).
#[cfg(feature = "process")]
pub fn process_registry() -> Registry {
    use std::collections::VecDeque;
    use std::sync::Arc;
    use streamlib_launch::{BuiltHandler, Direction, HandlerSpec, port};
    use streamlib_ports::{
        DeliveryMode, HandlerError, InputPort, MemoryCaps, OutputPort, PortKind, Ports,
        ProcessContext, StreamHandler, VideoFrame,
    };

    struct Tee2 {
        input: InputPort<VideoFrame>,
        a: OutputPort<VideoFrame>,
        b: OutputPort<VideoFrame>,
    }
    impl StreamHandler for Tee2 {
        fn ports(&self) -> Ports {
            Ports::new()
                .input(&self.input)
                .output(&self.a)
                .output(&self.b)
        }
        fn process(&mut self, _ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
            if let Some(frame) = self.input.recv() {
                self.a.write(frame.clone());
                self.b.write(frame);
            }
            Ok(())
        }
    }

    struct Hoard {
        input: InputPort<VideoFrame>,
        output: OutputPort<VideoFrame>,
        kept: VecDeque<VideoFrame>,
    }
    impl StreamHandler for Hoard {
        fn ports(&self) -> Ports {
            Ports::new().input(&self.input).output(&self.output)
        }
        fn process(&mut self, _ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
            if let Some(frame) = self.input.recv() {
                if self.kept.len() == 24 {
                    self.kept.pop_front();
                }
                self.kept.push_back(frame.clone());
                self.output.write(frame);
            }
            Ok(())
        }
    }

    let video = |name, direction| {
        port(
            name,
            direction,
            PortKind::Video,
            MemoryCaps::CPU,
            DeliveryMode::Latest,
            "frames",
        )
    };
    let mut registry = Registry::builtin();
    registry.register(HandlerSpec {
        name: "tee2",
        summary: "test: the input frame itself on outputs a and b",
        ports: vec![
            video("video", Direction::Input),
            video("a", Direction::Output),
            video("b", Direction::Output),
        ],
        properties: vec![],
        factory: Arc::new(|_| {
            Ok(BuiltHandler::fixed(Tee2 {
                input: InputPort::new("video", MemoryCaps::CPU),
                a: OutputPort::new("a", MemoryCaps::CPU),
                b: OutputPort::new("b", MemoryCaps::CPU),
            }))
        }),
    });
    registry.register(HandlerSpec {
        name: "hoard",
        summary: "test: passes frames through, keeps the last 24",
        ports: vec![
            video("video", Direction::Input),
            video("video", Direction::Output),
        ],
        properties: vec![],
        factory: Arc::new(|_| {
            Ok(BuiltHandler::fixed(Hoard {
                input: InputPort::new("video", MemoryCaps::CPU),
                output: OutputPort::new("video", MemoryCaps::CPU),
                kept: VecDeque::with_capacity(24),
            }))
        }),
    });
    registry
}
