//! Time to blur one frame with σ = 2 (radius 6, 13 taps), the figure to compare with OpenCV's
//! `GaussianBlur(img, (0, 0), 2)` and FFmpeg's `gblur=sigma=2`
//! (`benches/peers/blur_peers.sh` runs all three).
//!
//! `bands = 1` is one thread's work per frame (ms here = CPU ms per frame); `bands = 2` splits
//! each frame across two rayon threads.
//!
//! With `--features gpu`, `blur_sigma2_gpu` times the same blur on the GPU, for a 1080p RGBA
//! frame already there, submitted and waited for: `kernel` is `streamlib-gpu`'s compute kernel
//! with this kernel's weights alone, `handler` is `Blur` following GPU memory (the kernel plus
//! its texture pool and frame plumbing). The adapter comes from `WGPU_BACKEND` /
//! `STREAMLIB_GPU_ADAPTER` (lavapipe where there is no GPU; `STREAMLIB_ALLOW_NO_GPU=1` skips).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use streamlib_handlers_video::{BlurScratch, GaussianKernel, blur_frame};

/// A deterministic, busy test image (no constant runs for the blur to coast over).
fn image(width: u32, height: u32, channels: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_u32;
    (0..width as usize * height as usize * channels)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect()
}

fn blur(c: &mut Criterion) {
    let kernel = match GaussianKernel::new(2.0, None) {
        Ok(kernel) => kernel,
        Err(e) => panic!("sigma 2 is valid: {e}"),
    };
    let mut group = c.benchmark_group("blur_sigma2");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    let cases = [
        ("1920x1080_rgba", 1920, 1080, 4, 1),
        ("1920x1080_rgba", 1920, 1080, 4, 2),
        ("640x480_rgba", 640, 480, 4, 1),
        ("1920x1080_gray", 1920, 1080, 1, 1),
    ];
    for (name, width, height, channels, bands) in cases {
        let src = image(width, height, channels);
        let mut dst = vec![0; src.len()];
        let mut scratch = BlurScratch::new();
        let stride = width as usize * channels;
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("{name}/bands{bands}"), |b| {
            b.iter(|| {
                blur_frame(
                    black_box(&src),
                    &mut dst,
                    width,
                    height,
                    stride,
                    channels,
                    &kernel,
                    &mut scratch,
                    bands,
                );
                black_box(&dst);
            });
        });
    }
    group.finish();
}

#[cfg(feature = "gpu")]
fn blur_gpu(c: &mut Criterion) {
    use streamlib_buffers::PooledBuf;
    use streamlib_clock::{ClockSourceId, Rational, TimedTick};
    use streamlib_gpu::wgpu::CommandEncoderDescriptor;
    use streamlib_gpu::{BlurKernel, FrameUploader, GpuContext, GpuFramePool, GpuTexture};
    use streamlib_handlers_video::{Blur, BlurConfig};
    use streamlib_ports::{
        FrameLayout, InputPort, MemoryCaps, MemorySpace, OutputPort, PixelFormat, ProcessContext,
        StreamHandler, VideoFrame,
    };

    fn or_panic<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }
    let Some(ctx) = or_panic(GpuContext::for_tests()) else {
        return;
    };
    let (width, height) = (1920, 1080);
    let layout = or_panic(FrameLayout::new(width, height, PixelFormat::Rgba8));
    let host = or_panic(VideoFrame::cpu(
        layout,
        PooledBuf::from_vec(image(width, height, 4)),
    ));
    let mut uploader = FrameUploader::new("bench-upload", 2, 4);
    let Some(src) = or_panic(uploader.upload(&ctx, &host)) else {
        panic!("no texture for the upload")
    };
    let config = BlurConfig::default();
    let kernel = or_panic(GaussianKernel::new(config.sigma, config.radius));
    let mut group = c.benchmark_group("blur_sigma2_gpu");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10)
        .throughput(Throughput::Elements(1));

    let mut gpu_kernel = or_panic(BlurKernel::new(&ctx, kernel.gpu_weights()));
    let pool = or_panic(GpuFramePool::new(&ctx, "bench-out", width, height, 1, 1));
    let lease = or_panic(pool.acquire());
    let Some(src_texture) = src.gpu_frame().and_then(|g| g.downcast_ref::<GpuTexture>()) else {
        panic!("not a GPU frame")
    };
    group.bench_function("1920x1080_rgba/kernel", |b| {
        b.iter(|| {
            let mut encoder = ctx
                .device()
                .create_command_encoder(&CommandEncoderDescriptor::default());
            or_panic(gpu_kernel.encode(&ctx, &mut encoder, src_texture, lease.texture()));
            or_panic(ctx.submit("bench blur", [encoder.finish()]));
            or_panic(ctx.wait_idle());
        });
    });

    let mut blur = or_panic(Blur::with_gpu(config, &ctx));
    let feed = OutputPort::new("feed", MemoryCaps::GPU);
    or_panic(feed.handle().erased().connect_to(&*blur.input().erased()));
    let drain = InputPort::<VideoFrame>::new("drain", MemoryCaps::GPU);
    or_panic(blur.output().erased().connect_to(&*drain.handle().erased()));
    blur.input().erased().set_negotiated(MemorySpace::Gpu);
    blur.output().erased().set_negotiated(MemorySpace::Gpu);
    let mut n = 0;
    group.bench_function("1920x1080_rgba/handler", |b| {
        b.iter(|| {
            feed.write(src.clone());
            let tick = TimedTick {
                timestamp: n,
                frame_number: n,
                clock_source_id: ClockSourceId::MANUAL,
                fps: Rational::fps(30),
            };
            n += 1;
            or_panic(blur.process(&mut ProcessContext::new("bench", tick)));
            or_panic(ctx.wait_idle());
            black_box(drain.recv());
        });
    });
    assert_eq!(blur.frames_skipped(), 0, "the handler skipped frames");
    group.finish();
}

#[cfg(feature = "gpu")]
criterion_group!(benches, blur, blur_gpu);
#[cfg(not(feature = "gpu"))]
criterion_group!(benches, blur);
criterion_main!(benches);
