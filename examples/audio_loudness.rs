//! Audio through the runtime: `AudioTestSrc` (pink noise, 48 kHz stereo) → `Volume` (−12 dB)
//! → `Loudness` (EBU R128), ten seconds of audio as fast as the pipeline goes, then the
//! meter's figures: momentary, short-term and integrated loudness, loudness range and true
//! peak, as FFmpeg's `ebur128=peak=true` reports them.
//!
//! In pipeline text the same is
//! `streamlib launch "audiotestsrc wave=pink-noise ! volume db=-12 ! loudness" --clock free --frames 300 --json`.
//!
//! Run: `cargo run --example audio_loudness --features audio`
#![allow(clippy::print_stdout, reason = "an example prints its results")]

use streamlib::audio::{AudioTestSrc, AudioTestSrcConfig, Loudness, Volume, Wave};
use streamlib::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 300 ticks at 30 per second: ten seconds of audio, each tick's samples stamped by the
    // clock, run as fast as the machine goes.
    let mut runtime = StreamRuntime::new(FreeRunningClock::new(Rational::fps(30)).with_limit(300));
    let source = AudioTestSrc::new(AudioTestSrcConfig {
        wave: Wave::PinkNoise,
        volume: 0.5,
        ..AudioTestSrcConfig::default()
    })?;
    let mut volume = Volume::new(1.0, false)?;
    volume.set_db(-12.0)?;
    let meter = Loudness::new();
    let stats = meter.stats();
    let wires = [
        (source.output(), volume.input()),
        (volume.output(), meter.input()),
    ];
    runtime.add_stream(Stream::new("source", source))?;
    runtime.add_stream(Stream::new("volume", volume))?;
    runtime.add_stream(Stream::new("loudness", meter))?;
    for (out, input) in &wires {
        runtime.connect(out, input)?;
    }
    let run = runtime.run()?;
    let figures = stats.snapshot();
    println!(
        "{} frames metered in {:.2} s",
        figures.frames,
        run.elapsed.as_secs_f64()
    );
    println!(
        "momentary {:.1} LUFS, short-term {:.1} LUFS, integrated {:.1} LUFS, range {:.1} LU, true peak {:.1} dBTP",
        figures.momentary_lufs,
        figures.short_term_lufs,
        figures.integrated_lufs,
        figures.lra_lu,
        figures.true_peak_dbtp
    );
    Ok(())
}
