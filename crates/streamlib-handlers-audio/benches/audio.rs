//! The loudness meter and volume on stereo 48 kHz pink noise in 1600-frame buffers (one
//! 30 fps tick each), and the meter against FFmpeg's `ebur128=peak=true` on the same samples.
//!
//! `cargo bench -p streamlib-handlers-audio --bench audio` runs criterion, then (with
//! `--bench`, when `ffmpeg` is installed) times 60 s of the same noise through our meter and
//! through `ffmpeg -f f32le … -af ebur128=peak=true -f null -`, minus the same command with
//! `-af anull` (process start, reading the file), and prints the ratio. `cargo test --benches`
//! runs each once.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "a bench that cannot set up should fail loudly, and prints its peer table"
)]

use std::hint::black_box;
use std::io::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use streamlib_buffers::PooledBuf;
use streamlib_clock::{ClockSourceId, Rational, TimedTick};
use streamlib_handlers_audio::{AudioTestSrc, AudioTestSrcConfig, LoudnessMeter, Volume, Wave};
use streamlib_ports::{
    AudioBuffer, InputPort, MemoryCaps, OutputPort, ProcessContext, StreamHandler,
};

const FRAMES: usize = 1600;

/// `seconds` of stereo pink noise from `AudioTestSrc`, interleaved.
fn pink(seconds: u64) -> Vec<f32> {
    let fps = Rational::fps(30);
    let mut src = AudioTestSrc::new(AudioTestSrcConfig {
        wave: Wave::PinkNoise,
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
    for n in 0..seconds * 30 {
        let tick = TimedTick {
            timestamp: fps.frame_time_ns(n),
            frame_number: n,
            clock_source_id: ClockSourceId::MANUAL,
            fps,
        };
        src.process(&mut ProcessContext::new("src", tick)).unwrap();
        while let Some(b) = sink.recv() {
            out.extend_from_slice(b.samples());
        }
    }
    out
}

/// Meters `samples` buffer by buffer, reading the figures after each as the handler does.
fn meter_all(samples: &[f32]) -> f64 {
    let mut meter = LoudnessMeter::new(2, 48_000).unwrap();
    let mut last = 0.0;
    for chunk in samples.chunks(FRAMES * 2) {
        meter.add(chunk).unwrap();
        last = meter.stats().integrated_lufs;
    }
    last
}

fn benches(c: &mut Criterion) {
    let samples = pink(10);
    let mut group = c.benchmark_group("audio");
    group.throughput(Throughput::Elements((samples.len() / 2) as u64));
    group.sample_size(10);
    group.bench_function("loudness_meter_10s_stereo", |b| {
        b.iter(|| black_box(meter_all(black_box(&samples))));
    });

    // Volume at a fixed non-unity gain, through its ports and pools.
    let VolumeRig {
        buffers,
        mut volume,
        source,
        sink,
        tick,
    } = VolumeRig::new(&samples);
    group.bench_function("volume_10s_stereo", |b| {
        b.iter(|| {
            for buffer in &buffers {
                source.write(buffer.clone());
                volume.process(&mut ProcessContext::new("v", tick)).unwrap();
                black_box(sink.recv());
            }
        });
    });
    group.finish();
}

/// A `Volume` at 0.5 wired between a source and a sink port, and `samples` cut into its
/// 1600-frame input buffers.
struct VolumeRig {
    buffers: Vec<AudioBuffer>,
    volume: Volume,
    source: OutputPort<AudioBuffer>,
    sink: InputPort<AudioBuffer>,
    tick: TimedTick,
}

impl VolumeRig {
    fn new(samples: &[f32]) -> Self {
        let buffers: Vec<AudioBuffer> = samples
            .chunks(FRAMES * 2)
            .map(|c| AudioBuffer::new(PooledBuf::from_vec(c.to_vec()), 2, 48_000, 0).unwrap())
            .collect();
        let volume = Volume::new(0.5, false).unwrap();
        let source = OutputPort::<AudioBuffer>::new("audio", MemoryCaps::CPU);
        let sink = InputPort::<AudioBuffer>::new("audio", MemoryCaps::CPU);
        source
            .handle()
            .erased()
            .connect_to(&*volume.input().erased())
            .unwrap();
        volume
            .output()
            .erased()
            .connect_to(&*sink.handle().erased())
            .unwrap();
        let tick = TimedTick {
            timestamp: 0,
            frame_number: 0,
            clock_source_id: ClockSourceId::MANUAL,
            fps: Rational::fps(30),
        };
        Self {
            buffers,
            volume,
            source,
            sink,
            tick,
        }
    }
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

/// Ours against FFmpeg on the same 60 s of noise (only with `--bench`).
fn peer() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let samples = pink(60);
    let path = std::env::temp_dir().join(format!("streamlib-bench-{}.raw", std::process::id()));
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&bytes)
        .unwrap();
    let ffmpeg = |filter: &str| {
        let status = Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-nostats",
                "-loglevel",
                "error",
                "-f",
                "f32le",
            ])
            .args(["-ar", "48000", "-ac", "2", "-i"])
            .arg(&path)
            .args(["-af", filter, "-f", "null", "-"])
            .status();
        status.is_ok_and(|s| s.success())
    };
    if !ffmpeg("anull") {
        println!("peer: ffmpeg not found, no comparison");
        return;
    }
    let base = median(5, || {
        ffmpeg("anull");
    });
    let theirs = median(5, || {
        ffmpeg("ebur128=peak=true");
    })
    .saturating_sub(base);
    let ours = median(5, || {
        black_box(meter_all(&samples));
    });
    let their_volume = median(5, || {
        ffmpeg("volume=0.5");
    })
    .saturating_sub(base);
    let mut volume_runs: Vec<Duration> = (0..5).map(|_| volume_all(&samples)).collect();
    volume_runs.sort();
    let our_volume = volume_runs[2];
    std::fs::remove_file(&path).ok();
    println!(
        "peer: 60 s stereo 48 kHz pink noise: streamlib LoudnessMeter {:.1} ms, FFmpeg ebur128=peak=true {:.1} ms (minus anull {:.1} ms): FFmpeg / streamlib = {:.2}",
        ours.as_secs_f64() * 1e3,
        theirs.as_secs_f64() * 1e3,
        base.as_secs_f64() * 1e3,
        theirs.as_secs_f64() / ours.as_secs_f64(),
    );
    // FFmpeg's volume on 60 s costs less than the spread of its own start-up and file read:
    // the difference is printed, but is no ratio to quote.
    println!(
        "peer: same input: streamlib Volume 0.5 {:.1} ms, FFmpeg volume=0.5 {:.1} ms over anull \
         (within the noise of FFmpeg's start-up, {:.0} ms)",
        our_volume.as_secs_f64() * 1e3,
        their_volume.as_secs_f64() * 1e3,
        base.as_secs_f64() * 1e3,
    );
}

/// `samples` through a `Volume` at 0.5 in 1600-frame buffers, through its ports and pools;
/// returns the time of the processing alone (wrapping the input is not timed, as FFmpeg's
/// reading of the file is subtracted).
fn volume_all(samples: &[f32]) -> Duration {
    let VolumeRig {
        buffers,
        mut volume,
        source,
        sink,
        tick,
    } = VolumeRig::new(samples);
    let start = Instant::now();
    for buffer in buffers {
        source.write(buffer);
        volume.process(&mut ProcessContext::new("v", tick)).unwrap();
        black_box(sink.recv());
    }
    start.elapsed()
}

criterion_group!(audio, benches);

fn main() {
    audio();
    Criterion::default().configure_from_args().final_summary();
    peer();
}
