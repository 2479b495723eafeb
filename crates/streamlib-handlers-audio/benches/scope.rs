//! What one 1280 × 720 RGBA overlay frame costs: `spectrum` (1024-point FFT, 64 bands) and
//! `audioscope` (lines, dots, meter), each fed one 30 fps tick of stereo 48 kHz audio per
//! frame, against the memory-bandwidth floor of the same frame: `memset` (what a transparent
//! background costs) and a row copy (an opaque one) of the same 3.7 MB, over four buffers in
//! turn as the frame pool rotates them.
//!
//! `cargo bench -p streamlib-handlers-audio --bench scope` runs criterion, then (with
//! `--bench`, when `ffmpeg` is installed) draws 900 frames (30 s of a 1 kHz sine) with ours
//! and with FFmpeg's `showwaves` (`mode=point`, beside our dots) and `showfreqs` (`mode=bar
//! fscale=log win_size=1024`, beside our spectrum) at the same size and rate, FFmpeg's time
//! less the same command without the filter (start-up, the sine source), and prints the
//! ratios. `cargo test --benches` runs each once.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "a bench that cannot set up should fail loudly, and prints its peer table"
)]

use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use streamlib_clock::{ClockSourceId, Rational, TimedTick};
use streamlib_handlers_audio::{
    AudioScope, AudioScopeConfig, AudioTestSrc, AudioTestSrcConfig, ScopeStyle, Spectrum,
    SpectrumConfig, Wave,
};
use streamlib_ports::{
    AudioBuffer, InputPort, InputRef, MemoryCaps, OutputPort, OutputRef, ProcessContext,
    StreamHandler, VideoFrame,
};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 720;
const FPS: Rational = Rational::fps(30);

fn tick(n: u64) -> TimedTick {
    TimedTick {
        timestamp: FPS.frame_time_ns(n),
        frame_number: n,
        clock_source_id: ClockSourceId::MANUAL,
        fps: FPS,
    }
}

/// `ticks` buffers of one 30 fps tick each (1600 stereo frames) of `wave` at 1 kHz.
fn audio(wave: Wave, ticks: u64) -> Vec<AudioBuffer> {
    let mut src = AudioTestSrc::new(AudioTestSrcConfig {
        wave,
        freq: 1000.0,
        volume: 0.5,
        ..AudioTestSrcConfig::default()
    })
    .unwrap();
    let sink = InputPort::<AudioBuffer>::new("audio", MemoryCaps::CPU);
    src.output()
        .erased()
        .connect_to(&*sink.handle().erased())
        .unwrap();
    let mut out = Vec::new();
    for n in 0..ticks {
        src.process(&mut ProcessContext::new("src", tick(n)))
            .unwrap();
        while let Some(b) = sink.recv() {
            out.push(b);
        }
    }
    out
}

/// A scope wired between a hand-fed audio output and a video sink that keeps the latest
/// frame (as `compositor` does), frames dropped as the next arrives.
struct Rig {
    scope: Box<dyn StreamHandler>,
    source: OutputPort<AudioBuffer>,
    sink: InputPort<VideoFrame>,
    buffers: Vec<AudioBuffer>,
    n: u64,
}

impl Rig {
    fn new(
        mut scope: Box<dyn StreamHandler>,
        input: &InputRef<AudioBuffer>,
        output: &OutputRef<VideoFrame>,
        buffers: Vec<AudioBuffer>,
    ) -> Self {
        let source = OutputPort::new("audio", MemoryCaps::CPU);
        let sink = InputPort::new("video", MemoryCaps::CPU);
        source
            .handle()
            .erased()
            .connect_to(&*input.erased())
            .unwrap();
        output
            .erased()
            .connect_to(&*sink.handle().erased())
            .unwrap();
        let clock = streamlib_clock::ClockInfo {
            name: "manual".to_owned(),
            id: ClockSourceId::MANUAL,
            fps: FPS,
            timescale: streamlib_clock::Timescale::Media,
            pacing: streamlib_clock::Pacing::Pipeline,
        };
        scope
            .on_start(&streamlib_ports::StartContext::new("scope", &clock))
            .unwrap();
        Self {
            scope,
            source,
            sink,
            buffers,
            n: 0,
        }
    }

    fn spectrum(buffers: Vec<AudioBuffer>) -> Self {
        let s = Spectrum::new(SpectrumConfig {
            width: WIDTH,
            height: HEIGHT,
            bands: 64,
            fft_size: 1024,
            ..SpectrumConfig::default()
        })
        .unwrap();
        let (input, output) = (s.input(), s.output());
        Self::new(Box::new(s), &input, &output, buffers)
    }

    fn scope(style: ScopeStyle, buffers: Vec<AudioBuffer>) -> Self {
        let s = AudioScope::new(AudioScopeConfig {
            width: WIDTH,
            height: HEIGHT,
            style,
            ..AudioScopeConfig::default()
        })
        .unwrap();
        let (input, output) = (s.input(), s.output());
        Self::new(Box::new(s), &input, &output, buffers)
    }

    /// One tick: one buffer in, one frame drawn and read.
    fn frame(&mut self) {
        let buffer = &self.buffers[(self.n as usize) % self.buffers.len()];
        self.source.write(buffer.clone());
        self.scope
            .process(&mut ProcessContext::new("scope", tick(self.n)))
            .unwrap();
        black_box(self.sink.latest());
        self.n += 1;
    }
}

/// Four frame-sized buffers, used in turn like the pool's.
struct Frames {
    bufs: Vec<Vec<u8>>,
    row: Vec<u8>,
    n: usize,
}

impl Frames {
    fn new() -> Self {
        let len = (WIDTH * HEIGHT * 4) as usize;
        Self {
            bufs: (0..4).map(|_| vec![1u8; len]).collect(),
            row: [0u8, 0, 0, 255].repeat(WIDTH as usize),
            n: 0,
        }
    }

    fn next(&mut self) -> &mut [u8] {
        self.n = (self.n + 1) % self.bufs.len();
        &mut self.bufs[self.n]
    }

    /// The next buffer, every row a copy of the opaque background row.
    fn fill_rows(&mut self) -> &[u8] {
        self.n = (self.n + 1) % self.bufs.len();
        let buf = &mut self.bufs[self.n];
        for r in buf.chunks_exact_mut(self.row.len()) {
            r.copy_from_slice(&self.row);
        }
        buf
    }
}

fn benches(c: &mut Criterion) {
    let noise = audio(Wave::PinkNoise, 30);
    let mut group = c.benchmark_group("scope_1280x720");
    group.throughput(Throughput::Elements(1));
    let mut frames = Frames::new();
    group.bench_function("peer: memset one frame", |b| {
        b.iter(|| black_box(frames.next()).fill(0));
    });
    group.bench_function("peer: copy a row into every row", |b| {
        b.iter(|| {
            black_box(frames.fill_rows());
        });
    });
    let mut rig = Rig::spectrum(noise.clone());
    group.bench_function("spectrum 1024-point 64 bands", |b| b.iter(|| rig.frame()));
    for style in [ScopeStyle::Lines, ScopeStyle::Dots, ScopeStyle::Meter] {
        let mut rig = Rig::scope(style, noise.clone());
        group.bench_function(format!("audioscope {style:?}"), |b| b.iter(|| rig.frame()));
    }
    group.finish();
}

/// Median wall time of `runs` runs of `f`.
fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

const PEER_FRAMES: u64 = 900;

/// Ours against FFmpeg's `showwaves` and `showfreqs` on 30 s of a 1 kHz sine (with `--bench`).
fn peer() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let ffmpeg = |filter: Option<&str>| {
        let mut cmd = Command::new("ffmpeg");
        cmd.args([
            "-hide_banner",
            "-nostats",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
        ])
        .args(["-i", "sine=frequency=1000:sample_rate=48000:duration=30"]);
        if let Some(filter) = filter {
            cmd.args([
                "-filter_complex",
                &format!("[0:a]aformat=channel_layouts=stereo,{filter}[v]"),
            ])
            .args(["-map", "[v]", "-frames:v", &PEER_FRAMES.to_string()]);
        }
        let status = cmd.args(["-f", "null", "-"]).status();
        status.is_ok_and(|s| s.success())
    };
    if !ffmpeg(None) {
        println!("peer: ffmpeg not found, no comparison");
        return;
    }
    let size = format!("s={WIDTH}x{HEIGHT}:rate=30");
    let base = median(5, || {
        ffmpeg(None);
    });
    let sine = audio(Wave::Sine, 30);
    let ours = |mut rig: Rig| {
        median(5, || {
            for _ in 0..PEER_FRAMES {
                rig.frame();
            }
        })
    };
    for (name, filter, rig) in [
        (
            "audioscope style=dots vs showwaves mode=point",
            format!("showwaves={size}:mode=point"),
            Rig::scope(ScopeStyle::Dots, sine.clone()),
        ),
        (
            "spectrum (1024 points, 64 bands) vs showfreqs mode=bar fscale=log win_size=1024",
            format!("showfreqs={size}:mode=bar:fscale=log:win_size=1024"),
            Rig::spectrum(sine.clone()),
        ),
    ] {
        assert!(ffmpeg(Some(&filter)), "ffmpeg {filter}");
        let theirs = median(5, || {
            ffmpeg(Some(&filter));
        })
        .saturating_sub(base);
        let ours = ours(rig);
        let per = |d: Duration| d.as_secs_f64() * 1e6 / PEER_FRAMES as f64;
        println!(
            "peer: {PEER_FRAMES} frames {WIDTH}x{HEIGHT}, {name}: streamlib {:.0} us/frame, \
             FFmpeg {:.0} us/frame (minus the bare sine run, {:.0} ms): FFmpeg / streamlib = {:.2}",
            per(ours),
            per(theirs),
            base.as_secs_f64() * 1e3,
            theirs.as_secs_f64() / ours.as_secs_f64(),
        );
    }
}

criterion_group!(scope, benches);

fn main() {
    scope();
    Criterion::default().configure_from_args().final_summary();
    peer();
}
