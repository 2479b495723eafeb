//! The GPU path of `Blur` at 1920×1080 RGBA: `gpu_blur/1080p_sigma2_resident` is one σ = 2
//! blur of a frame already on the GPU, submitted and waited for: the time a frame spends in
//! the kernel, run on the weights the CPU `GaussianKernel` computes (as `Blur` runs it). The
//! transfers' benches are `streamlib-gpu`'s `gpu_transfer`.
//!
//! Samples are few and short so the benches also run on lavapipe (`cargo test --benches` runs
//! each once). The adapter comes from `WGPU_BACKEND` / `STREAMLIB_GPU_ADAPTER`; without one the
//! benches fail unless `STREAMLIB_ALLOW_NO_GPU=1`.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use streamlib_buffers::PooledBuf;
use streamlib_gpu::wgpu::CommandEncoderDescriptor;
use streamlib_gpu::{BlurKernel, FrameUploader, GpuContext, GpuFramePool, GpuTexture};
use streamlib_handlers_video::GaussianKernel;
use streamlib_ports::{FrameLayout, PixelFormat, VideoFrame};

const WIDTH: u32 = 1920;
const HEIGHT: u32 = 1080;

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

fn blur(c: &mut Criterion) {
    let Some(ctx) = context() else { return };
    let mut uploader = FrameUploader::new("bench-upload", 2, 4);
    let src = gpu_frame(&ctx, &mut uploader);
    let weights = GaussianKernel::new(2.0, None)
        .unwrap_or_else(|e| panic!("{e}"))
        .gpu_weights();
    let mut kernel = BlurKernel::new(&ctx, weights).unwrap_or_else(|e| panic!("{e}"));
    let pool =
        GpuFramePool::new(&ctx, "bench-out", WIDTH, HEIGHT, 1, 1).unwrap_or_else(|e| panic!("{e}"));
    let lease = pool.acquire().unwrap_or_else(|e| panic!("{e}"));
    let Some(src_texture) = src.gpu_frame().and_then(|g| g.downcast_ref::<GpuTexture>()) else {
        panic!("not a GPU frame")
    };
    let mut group = c.benchmark_group("gpu_blur");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    group.bench_function("1080p_sigma2_resident", |b| {
        b.iter(|| {
            let mut encoder = ctx
                .device()
                .create_command_encoder(&CommandEncoderDescriptor::default());
            kernel
                .encode(&ctx, &mut encoder, src_texture, lease.texture())
                .unwrap_or_else(|e| panic!("{e}"));
            ctx.submit("bench blur", [encoder.finish()])
                .unwrap_or_else(|e| panic!("{e}"));
            ctx.wait_idle().unwrap_or_else(|e| panic!("{e}"));
        });
    });
    group.finish();
}

criterion_group!(benches, blur);
criterion_main!(benches);
