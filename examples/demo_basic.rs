//! The basic demo: TestPattern → Display, 640×480 at 30 fps.
//!
//! With a display it opens a window (Esc or closing it stops). Without one, or with
//! `--headless`, the same pipeline ends in a frame capture instead: PNG snapshots of the first,
//! middle and last frame and a stats summary go to `--out` (default `out/demo_basic`), and the
//! exit status is 0 only when every tick's frame arrived (nothing missed, skipped or dropped).
//!
//! Run: `cargo xtask demo basic` (or `cargo run --release --example demo_basic -- --help`).
#![allow(clippy::print_stdout, reason = "a demo reports where its output went")]

mod support;

use streamlib::prelude::*;
use streamlib::video::{Pattern, TestPattern, TestPatternConfig};
use support::{DemoOptions, init_logging, run_to_sink};

fn main() -> anyhow::Result<()> {
    init_logging();
    let options = DemoOptions::from_args((640, 480), "out/demo_basic")?;
    let mut runtime = StreamRuntime::new(options.clock());
    let pattern = TestPattern::new(TestPatternConfig {
        width: options.width,
        height: options.height,
        pattern: Pattern::SmpteBars,
        moving_box: true,
        ..TestPatternConfig::default()
    })?;
    let source = pattern.output();
    runtime.add_stream(Stream::new("pattern", pattern))?;

    run_to_sink(runtime, &source, &options, "demo_basic")
}
