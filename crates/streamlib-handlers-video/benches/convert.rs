//! Time to convert one 1920×1080 frame: RGBA8 ↔ UYVY (what ST 2110-20 4:2:2 sends and a
//! received stream becomes), RGBA8 ↔ I420 (what encoders take and decoders give) and NV12 →
//! RGBA8 (what hardware decoders give), one thread (and two bands where the handler splits
//! rows), through the handler (pooled output, hand-over to a connected input). The kernels run
//! in AVX2 where the CPU has it.
//!
//! `benches/peers/convert_peers.sh` runs this beside swscale. With `CONVERT_CPU_FRAMES=N` set,
//! the bench instead converts N frames per conversion on one thread and prints the thread's CPU
//! time per frame (`CLOCK_THREAD_CPUTIME_ID`, 64-bit Linux), as the swscale peer measures
//! itself: on a machine shared with other work, CPU time is steadier than wall time.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group};
use streamlib_buffers::PooledBuf;
use streamlib_clock::{ClockSourceId, Rational, TimedTick};
use streamlib_handlers_video::Convert;
use streamlib_ports::{
    FrameLayout, InputPort, MemoryCaps, OutputPort, PixelFormat, ProcessContext, StreamHandler,
    VideoFrame,
};

/// The conversions measured, with the band counts (the planar paths run on one thread).
const CASES: [(PixelFormat, PixelFormat, &[usize]); 5] = [
    (PixelFormat::Rgba8, PixelFormat::Uyvy, &[1, 2]),
    (PixelFormat::Rgba8, PixelFormat::I420, &[1]),
    (PixelFormat::Uyvy, PixelFormat::Rgba8, &[1, 2]),
    (PixelFormat::I420, PixelFormat::Rgba8, &[1]),
    (PixelFormat::Nv12, PixelFormat::Rgba8, &[1]),
];

fn frame(format: PixelFormat) -> VideoFrame {
    let layout = match FrameLayout::new(1920, 1080, format) {
        Ok(layout) => layout,
        Err(e) => panic!("valid layout: {e}"),
    };
    let bytes: Vec<u8> = (0..layout.buffer_len())
        .map(|i| (i * 31 % 256) as u8)
        .collect();
    match VideoFrame::cpu(layout, PooledBuf::from_vec(bytes)) {
        Ok(frame) => frame,
        Err(e) => panic!("valid frame: {e}"),
    }
}

/// A converter to `to` between a source and a sink, and a frame in `from` to feed it.
struct Wired {
    handler: Convert,
    source: OutputPort<VideoFrame>,
    sink: InputPort<VideoFrame>,
    input: VideoFrame,
}

impl Wired {
    fn new(from: PixelFormat, to: PixelFormat) -> Self {
        let handler = match Convert::new(to) {
            Ok(handler) => handler,
            Err(e) => panic!("valid target: {e}"),
        };
        let source = OutputPort::<VideoFrame>::new("video", MemoryCaps::CPU);
        let sink = InputPort::<VideoFrame>::new("video", MemoryCaps::CPU);
        let wired = source
            .handle()
            .erased()
            .connect_to(&*handler.input().erased())
            .and_then(|()| {
                handler
                    .output()
                    .erased()
                    .connect_to(&*sink.handle().erased())
            });
        if let Err(e) = wired {
            panic!("wiring failed: {e}");
        }
        Self {
            handler,
            source,
            sink,
            input: frame(from),
        }
    }

    /// One frame in, converted, and taken by the sink.
    fn convert(&mut self, bands: usize) {
        self.source.write(self.input.clone());
        let tick = TimedTick {
            timestamp: 0,
            frame_number: 0,
            clock_source_id: ClockSourceId::MANUAL,
            fps: Rational::fps(30),
        };
        let mut ctx = ProcessContext::new("convert", tick).with_concurrency_limit(bands);
        if let Err(e) = self.handler.process(&mut ctx) {
            panic!("process failed: {e}");
        }
        black_box(self.sink.recv());
    }
}

fn convert(c: &mut Criterion) {
    let mut group = c.benchmark_group("convert_1920x1080");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
        .throughput(Throughput::Bytes(1920 * 1080 * 4));
    for (from, to, band_counts) in CASES {
        for &bands in band_counts {
            let mut wired = Wired::new(from, to);
            group.bench_function(format!("{from}_to_{to}_{bands}_bands"), |b| {
                b.iter(|| wired.convert(bands));
            });
        }
    }
    group.finish();
}

/// This thread's CPU time so far, in ns: `clock_gettime(CLOCK_THREAD_CPUTIME_ID)` (Linux;
/// exact, where `/proc/thread-self/schedstat` moves only at scheduler ticks).
fn thread_cpu_ns() -> u64 {
    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }
    unsafe extern "C" {
        fn clock_gettime(clock: i32, time: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut t = Timespec { sec: 0, nsec: 0 };
    // SAFETY: libc's clock_gettime writes one timespec (two i64 on 64-bit Linux) to `t`.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut t) };
    if rc != 0 {
        panic!("CONVERT_CPU_FRAMES needs clock_gettime(CLOCK_THREAD_CPUTIME_ID) (Linux)");
    }
    t.sec as u64 * 1_000_000_000 + t.nsec as u64
}

/// Prints `<from>_to_<to> <ms of CPU per frame>`, one band, the median of 5 runs of `frames`.
#[allow(clippy::print_stdout, reason = "the bench's report")]
fn cpu_per_frame(frames: u32) {
    for (from, to, _) in CASES {
        let mut wired = Wired::new(from, to);
        for _ in 0..10 {
            wired.convert(1);
        }
        let mut runs: Vec<f64> = (0..5)
            .map(|_| {
                let start = thread_cpu_ns();
                for _ in 0..frames {
                    wired.convert(1);
                }
                (thread_cpu_ns() - start) as f64 / 1e6 / f64::from(frames)
            })
            .collect();
        runs.sort_by(f64::total_cmp);
        println!("{from}_to_{to} {:.3}", runs[runs.len() / 2]);
    }
}

criterion_group!(benches, convert);

fn main() {
    if let Some(frames) = std::env::var("CONVERT_CPU_FRAMES")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        cpu_per_frame(frames);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
