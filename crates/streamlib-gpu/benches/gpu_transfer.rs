//! GPU transfer figures a user cares about, at 1920×1080 RGBA (the blur kernel's bench is
//! `streamlib-handlers-video`'s `gpu_blur`, where the weights it runs come from):
//! - `gpu_transfer/upload_1080p`: host frame → texture (`queue.write_texture`), bytes/s;
//! - `gpu_transfer/readback_1080p`: texture → host frame through a mapped staging buffer,
//!   bytes/s.
//!
//! Samples are few and short so the benches also run on lavapipe (`cargo test --benches` runs
//! each once). The adapter comes from `WGPU_BACKEND` / `STREAMLIB_GPU_ADAPTER`; without one the
//! benches fail unless `STREAMLIB_ALLOW_NO_GPU=1`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use streamlib_buffers::PooledBuf;
use streamlib_gpu::{FrameUploader, GpuContext, ReadbackRing};
use streamlib_ports::{FrameLayout, PixelFormat, VideoFrame};

const WIDTH: u32 = 1920;
const HEIGHT: u32 = 1080;
const FRAME_BYTES: u64 = WIDTH as u64 * HEIGHT as u64 * 4;

fn context() -> Option<GpuContext> {
    match GpuContext::for_tests() {
        Ok(ctx) => ctx,
        Err(e) => panic!("no GPU for the benches: {e}"),
    }
}

/// A busy host frame (no constant runs).
fn host_frame() -> VideoFrame {
    let layout = match FrameLayout::new(WIDTH, HEIGHT, PixelFormat::Rgba8) {
        Ok(layout) => layout,
        Err(e) => panic!("{e}"),
    };
    let mut state = 0x9e37_79b9_u32;
    let data = (0..layout.buffer_len())
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect();
    match VideoFrame::cpu(layout, PooledBuf::from_vec(data)) {
        Ok(frame) => frame,
        Err(e) => panic!("{e}"),
    }
}

fn gpu_frame(ctx: &GpuContext, uploader: &mut FrameUploader) -> VideoFrame {
    match uploader.upload(ctx, &host_frame()) {
        Ok(Some(frame)) => frame,
        other => panic!("upload failed: {other:?}"),
    }
}

fn transfers(c: &mut Criterion) {
    let Some(ctx) = context() else { return };
    let host = host_frame();
    let mut uploader = FrameUploader::new("bench-upload", 2, 4);
    let mut group = c.benchmark_group("gpu_transfer");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Bytes(FRAME_BYTES));
    group.bench_function("upload_1080p", |b| {
        b.iter(|| {
            let frame = uploader
                .upload(&ctx, &host)
                .unwrap_or_else(|e| panic!("{e}"));
            ctx.wait_idle().unwrap_or_else(|e| panic!("{e}"));
            black_box(frame)
        });
    });
    let gpu = gpu_frame(&ctx, &mut uploader);
    let mut ring = ReadbackRing::new("bench-readback", 2);
    group.bench_function("readback_1080p", |b| {
        b.iter(|| {
            ring.submit(&ctx, &gpu).unwrap_or_else(|e| panic!("{e}"));
            black_box(ring.next(&ctx, true).unwrap_or_else(|e| panic!("{e}")))
        });
    });
    group.finish();
}

criterion_group!(benches, transfers);
criterion_main!(benches);
