//! The files demo: FileReader → Blur → FileWriter, as fast as the pipeline goes.
//!
//! It first makes its input with streamlib itself (TestPattern → FileWriter, H.264 MP4), then
//! transcodes it through a Gaussian blur to a second MP4 on the free-running clock, and
//! reports frames, throughput and per-handler stats. Both files are in `--out`
//! (default `out/demo_files`). `--input FILE` transcodes that file instead.
//!
//! Run: `cargo xtask demo files` (or `cargo run --release --features file --example demo_files`).
#![allow(clippy::print_stdout, reason = "a demo reports where its output went")]

mod support;

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use streamlib::file::{FileReader, FileWriter, ReaderConfig, ReaderPacing, WriterConfig};
use streamlib::prelude::*;
use streamlib::video::{Blur, BlurConfig, Pattern, TestPattern, TestPatternConfig};
use support::{DemoOptions, init_logging};

/// TestPattern → FileWriter for `frames` frames.
fn make_input(path: &Path, options: &DemoOptions, frames: u64) -> anyhow::Result<()> {
    let clock = FreeRunningClock::new(Rational::fps(options.fps)).with_limit(frames);
    let mut runtime = StreamRuntime::new(clock);
    let pattern = TestPattern::new(TestPatternConfig {
        width: options.width,
        height: options.height,
        pattern: Pattern::SmpteBars,
        moving_box: true,
        ..TestPatternConfig::default()
    })?;
    let writer = FileWriter::new(WriterConfig::new(path))?;
    let (out, input) = (pattern.output(), writer.input());
    runtime.add_stream(Stream::new("pattern", pattern))?;
    runtime.add_stream(Stream::new("writer", writer))?;
    runtime.connect(&out, &input)?;
    runtime.run()?;
    Ok(())
}

/// FileReader → a counting sink, as fast as it goes (`STREAMLIB_DECODE_ONLY=1`): decode
/// throughput to compare with `ffmpeg -i FILE -f null -`. Frames stay I420 (copied into
/// pooled frames, not converted), as FFmpeg's null sink takes them.
fn decode_only(path: &Path, options: &DemoOptions) -> anyhow::Result<()> {
    let reader = FileReader::new(ReaderConfig {
        pacing: ReaderPacing::AsFastAsPossible,
        format: PixelFormat::I420,
        ..ReaderConfig::new(path)
    })?;
    let sink = FrameCapture::new([]);
    let seen = sink.handle();
    let (out, input) = (reader.output(), sink.input());
    let mut runtime = StreamRuntime::new(FreeRunningClock::new(Rational::fps(options.fps)));
    runtime.add_stream(Stream::new("reader", reader))?;
    runtime.add_stream(Stream::new("sink", sink))?;
    runtime.connect(&out, &input)?;
    let started = Instant::now();
    runtime.run()?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "decoded {} frames of {} in {secs:.2} s ({:.1} fps)",
        seen.received(),
        path.display(),
        seen.received() as f64 / secs
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    init_logging();
    let mut options = DemoOptions::from_args((1280, 720), "out/demo_files")?;
    options.headless = true;
    let frames = options.frames.unwrap_or(150);
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("cannot create {}", options.out.display()))?;
    let output_path = options.out.join("blurred.mp4");
    let input_path = match &options.input {
        Some(path) => path.clone(),
        None => {
            let path = options.out.join("input.mp4");
            make_input(&path, &options, frames)?;
            path
        }
    };

    if std::env::var_os("STREAMLIB_DECODE_ONLY").is_some() {
        return decode_only(&input_path, &options);
    }
    // The file is YUV 4:2:0 and so is the encoder's input: the blur works on the planes
    // directly, so no pixel is converted to RGBA and back.
    let reader = FileReader::new(ReaderConfig {
        pacing: ReaderPacing::AsFastAsPossible,
        format: PixelFormat::I420,
        ..ReaderConfig::new(&input_path)
    })?;
    let info = reader.info().clone();
    let blur = Blur::new(BlurConfig {
        sigma: 2.0,
        radius: None,
    })?;
    let writer = FileWriter::new(WriterConfig::new(&output_path))?;
    let written = writer.stats();
    let (r_out, b_in, b_out, w_in) = (reader.output(), blur.input(), blur.output(), writer.input());
    // As fast as the pipeline goes: the next tick starts when this one has crossed the graph.
    let mut runtime = StreamRuntime::new(FreeRunningClock::new(Rational::fps(options.fps)));
    runtime.add_stream(Stream::new("reader", reader))?;
    runtime.add_stream(Stream::new("blur", blur).concurrency_limit(2))?;
    runtime.add_stream(Stream::new("writer", writer))?;
    runtime.connect(&r_out, &b_in)?;
    runtime.connect(&b_out, &w_in)?;
    let started = Instant::now();
    let stats = runtime.run()?; // returns at the reader's end of stream, once the writer drained
    let secs = started.elapsed().as_secs_f64();
    let n = written.frames_written();
    println!(
        "{}: {}x{} {} ({:?} frames) → blur σ=2 → {}: {n} frames in {secs:.2} s ({:.1} fps)",
        input_path.display(),
        info.width,
        info.height,
        info.codec,
        info.frames,
        output_path.display(),
        n as f64 / secs
    );
    println!("{stats}");
    if options.input.is_none() {
        anyhow::ensure!(n == frames, "wrote {n} frames, expected {frames}");
    }
    Ok(())
}
