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

use std::sync::Arc;
use std::time::Duration;

use streamlib::prelude::*;
use streamlib::video::{
    Display, DisplayConfig, FrameCapture, Pattern, TestPattern, TestPatternConfig,
};
use support::{DemoOptions, init_logging, verdict, write_snapshots, write_summary};

fn main() -> anyhow::Result<()> {
    init_logging();
    let options = DemoOptions::from_args((640, 480), "out/demo_basic")?;
    let mut runtime = StreamRuntime::new(SoftwareClock::new(Rational::fps(options.fps)));
    let pattern = TestPattern::new(TestPatternConfig {
        width: options.width,
        height: options.height,
        pattern: Pattern::SmpteBars,
        moving_box: true,
    })?;
    let source = pattern.output();
    runtime.add_stream(Stream::new("pattern", pattern))?;

    let handle = runtime.handle();
    let frames = options.frames;
    if options.headless {
        let capture = FrameCapture::new(options.snapshot_indices());
        let (input, seen) = (capture.input(), capture.handle());
        runtime.add_stream(Stream::new("sink", capture))?;
        runtime.connect(&source, &input)?;
        let watcher = seen.clone();
        let target = frames.unwrap_or(300);
        std::thread::spawn(move || {
            while watcher.received() < target {
                std::thread::sleep(Duration::from_millis(5));
            }
            handle.stop();
        });
        let stats = runtime.run()?;
        std::fs::create_dir_all(&options.out)?;
        let snapshots = write_snapshots(&options.out, &seen)?;
        let verdict = verdict(&stats, "sink", target, options.fps);
        let summary = write_summary(
            &options.out,
            "demo_basic",
            &options,
            &stats,
            &verdict,
            &snapshots,
        )?;
        println!("{summary}");
        println!("snapshots and stats in {}", options.out.display());
        if !verdict.held {
            std::process::exit(3);
        }
    } else {
        let display = Display::new(DisplayConfig {
            title: "streamlib demo_basic".to_owned(),
            ..DisplayConfig::default()
        });
        let input = display.input();
        let shown = display.stats();
        runtime.add_stream(
            Stream::new("sink", display).dispatcher(Arc::new(DedicatedThreadDispatcher::new())),
        )?;
        runtime.connect(&source, &input)?;
        if let Some(target) = frames {
            let watcher = shown.clone();
            std::thread::spawn(move || {
                while watcher.frames_received() < target {
                    std::thread::sleep(Duration::from_millis(5));
                }
                handle.stop();
            });
        }
        let stats = runtime.run()?;
        let verdict = verdict(
            &stats,
            "sink",
            stats.stream("sink").map_or(0, |s| s.ticks),
            options.fps,
        );
        println!("{stats}");
        println!(
            "{:.2} fps, {} lost: {}",
            verdict.fps,
            verdict.lost,
            if verdict.held {
                "held its frame rate"
            } else {
                "did not hold its frame rate"
            }
        );
    }
    Ok(())
}
