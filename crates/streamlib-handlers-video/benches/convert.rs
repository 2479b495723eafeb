//! Time to convert one 1920×1080 frame: RGBA8 → UYVY (what ST 2110-20 4:2:2 sends), RGBA8 →
//! I420 (what encoders take) and UYVY → RGBA8 (what a received stream becomes), one thread and
//! two bands, through the handler (pooled output, hand-over to a connected input).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use streamlib_buffers::PooledBuf;
use streamlib_clock::{ClockSourceId, Rational, TimedTick};
use streamlib_handlers_video::Convert;
use streamlib_ports::{
    FrameLayout, InputPort, MemoryCaps, OutputPort, PixelFormat, ProcessContext, StreamHandler,
    VideoFrame,
};

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

fn convert(c: &mut Criterion) {
    let mut group = c.benchmark_group("convert_1920x1080");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
        .throughput(Throughput::Bytes(1920 * 1080 * 4));
    for (from, to) in [
        (PixelFormat::Rgba8, PixelFormat::Uyvy),
        (PixelFormat::Rgba8, PixelFormat::I420),
        (PixelFormat::Uyvy, PixelFormat::Rgba8),
    ] {
        for bands in [1, 2] {
            let mut handler = match Convert::new(to) {
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
            let input = frame(from);
            group.bench_function(format!("{from}_to_{to}_{bands}_bands"), |b| {
                b.iter(|| {
                    source.write(input.clone());
                    let tick = TimedTick {
                        timestamp: 0,
                        frame_number: 0,
                        clock_source_id: ClockSourceId::MANUAL,
                        fps: Rational::fps(30),
                    };
                    let mut ctx =
                        ProcessContext::new("convert", tick).with_concurrency_limit(bands);
                    if let Err(e) = handler.process(&mut ctx) {
                        panic!("process failed: {e}");
                    }
                    black_box(sink.recv());
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, convert);
criterion_main!(benches);
