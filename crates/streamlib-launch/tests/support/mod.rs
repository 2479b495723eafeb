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
        let code = run_worker(&Registry::builtin());
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
