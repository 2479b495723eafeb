//! Compositing four full-HD RGBA layers (an opaque background and three semi-transparent
//! overlays at partial opacity) into one frame, against the machine's memory bandwidth: a
//! plain loop reading four frames and writing their average, and a memcpy of one frame.
//!
//! With `COMPOSITOR_CPU_FRAMES=n` set it also prints the CPU time (user + system, every
//! thread) per frame over `n` frames for one and two bands, the figure
//! `benches/peers/compositor_peers.sh` compares with FFmpeg and GStreamer.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "bench")]
#![allow(clippy::print_stderr, reason = "the CPU-time report")]
#![allow(missing_docs, reason = "criterion macros")]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use streamlib_buffers::PooledBuf;
use streamlib_clock::{ClockSourceId, Rational, TimedTick};
use streamlib_handlers_video::{Compositor, CompositorConfig, LayerConfig};
use streamlib_ports::{
    AlphaMode, FrameLayout, InputPort, MemoryCaps, OutputPort, PixelFormat, ProcessContext,
    StreamHandler, VideoFrame,
};

const W: u32 = 1920;
const H: u32 = 1080;

/// A frame whose colours vary per pixel and whose alpha is `alpha(x, y)`.
fn pattern(seed: u32, alpha: impl Fn(u32, u32) -> u8, mode: AlphaMode) -> VideoFrame {
    let layout = FrameLayout::new(W, H, PixelFormat::Rgba8).unwrap();
    let mut data = vec![0u8; layout.buffer_len()];
    for (i, p) in data.chunks_exact_mut(4).enumerate() {
        let (x, y) = (i as u32 % W, i as u32 / W);
        let a = alpha(x, y);
        let c = |k: u32| ((x * (3 + k) + y * (5 + k) + seed * 41) % 256) as u8;
        let (r, g, b) = (c(0), c(1), c(2));
        let pm = |v: u8| (u16::from(v) * u16::from(a) / 255) as u8;
        p.copy_from_slice(&match mode {
            AlphaMode::Straight => [r, g, b, a],
            AlphaMode::Premultiplied => [pm(r), pm(g), pm(b), a],
        });
    }
    VideoFrame::cpu(layout, PooledBuf::from_vec(data))
        .unwrap()
        .with_alpha(mode)
}

/// The four layers: opaque; opaque at 50 %; varying straight alpha at 50 %; varying
/// premultiplied alpha at 25 %.
fn layers() -> Vec<(VideoFrame, f32)> {
    vec![
        (pattern(0, |_, _| 255, AlphaMode::Straight), 1.0),
        (pattern(1, |_, _| 255, AlphaMode::Straight), 0.5),
        (
            pattern(2, |x, y| ((x + y) % 256) as u8, AlphaMode::Straight),
            0.5,
        ),
        (
            pattern(3, |x, _| (x % 200 + 40) as u8, AlphaMode::Premultiplied),
            0.25,
        ),
    ]
}

struct Rig {
    compositor: Compositor,
    sources: Vec<OutputPort<VideoFrame>>,
    sink: InputPort<VideoFrame>,
    frames: Vec<VideoFrame>,
    frame_number: u64,
}

impl Rig {
    fn new() -> Self {
        let mut compositor = Compositor::new(CompositorConfig::default()).unwrap();
        let sink = InputPort::new("video", MemoryCaps::CPU);
        compositor
            .output()
            .erased()
            .connect_to(&*sink.handle().erased())
            .unwrap();
        let mut sources = Vec::new();
        let mut frames = Vec::new();
        for (i, (frame, opacity)) in layers().into_iter().enumerate() {
            let out = OutputPort::new("video", MemoryCaps::CPU);
            out.handle()
                .erased()
                .connect_to(&*compositor.layer_input(i).unwrap().erased())
                .unwrap();
            compositor
                .set_layer(
                    i,
                    LayerConfig {
                        opacity,
                        ..LayerConfig::default()
                    },
                )
                .unwrap();
            sources.push(out);
            frames.push(frame);
        }
        Self {
            compositor,
            sources,
            sink,
            frames,
            frame_number: 0,
        }
    }

    fn frame(&mut self, bands: usize) {
        for (out, frame) in self.sources.iter().zip(&self.frames) {
            out.write(frame.clone());
        }
        let tick = TimedTick {
            timestamp: self.frame_number * 33_333_333,
            frame_number: self.frame_number,
            clock_source_id: ClockSourceId::MANUAL,
            fps: Rational::fps(30),
        };
        self.frame_number += 1;
        let mut ctx = ProcessContext::new("compositor", tick).with_concurrency_limit(bands);
        self.compositor.process(&mut ctx).unwrap();
        black_box(self.sink.recv().unwrap());
    }
}

/// The bandwidth reference: read four frames, write their average.
fn average4(out: &mut [u8], a: &[u8], b: &[u8], c: &[u8], d: &[u8]) {
    for ((((o, a), b), c), d) in out.iter_mut().zip(a).zip(b).zip(c).zip(d) {
        let sum = u16::from(*a) + u16::from(*b) + u16::from(*c) + u16::from(*d);
        *o = ((sum + 2) >> 2) as u8;
    }
}

/// CPU seconds (user + system, all threads) used by this process so far, from `/proc`.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the parenthesised command name: field 3 (state) first; utime and stime are
    // fields 14 and 15, in USER_HZ ticks (100 per second on Linux).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn report_cpu_per_frame(rig: &mut Rig, frames: u64) {
    for bands in [1, 2] {
        for _ in 0..20 {
            rig.frame(bands);
        }
        let (Some(start), wall) = (process_cpu_seconds(), std::time::Instant::now()) else {
            return;
        };
        for _ in 0..frames {
            rig.frame(bands);
        }
        let wall = wall.elapsed().as_secs_f64();
        if let Some(end) = process_cpu_seconds() {
            let per_frame = |s: f64| s * 1000.0 / frames as f64;
            eprintln!(
                "streamlib compositor bands={bands}: {:.3} ms CPU per frame, {:.3} ms wall per frame ({frames} frames)",
                per_frame(end - start),
                per_frame(wall),
            );
        }
    }
}

fn compositor(c: &mut Criterion) {
    let mut group = c.benchmark_group("compositor_1080p_4_layers");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    let mut rig = Rig::new();
    if let Some(frames) = std::env::var("COMPOSITOR_CPU_FRAMES")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        report_cpu_per_frame(&mut rig, frames);
    }
    for bands in [1, 2] {
        group.bench_function(format!("compositor_bands_{bands}"), |b| {
            b.iter(|| rig.frame(bands));
        });
    }
    let bytes: Vec<&[u8]> = rig.frames.iter().map(|f| f.cpu_bytes().unwrap()).collect();
    let mut out = vec![0u8; bytes[0].len()];
    group.bench_function("reference_average_4_read_1_write", |b| {
        b.iter(|| average4(&mut out, bytes[0], bytes[1], bytes[2], bytes[3]));
    });
    group.bench_function("memcpy_one_frame", |b| {
        b.iter(|| out.copy_from_slice(black_box(bytes[0])));
    });
    group.finish();
}

criterion_group!(benches, compositor);
criterion_main!(benches);
