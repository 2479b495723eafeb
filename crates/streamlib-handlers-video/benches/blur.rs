//! Time to blur one frame with σ = 2 (radius 6, 13 taps), the figure to compare with OpenCV's
//! `GaussianBlur(img, (0, 0), 2)` and FFmpeg's `gblur=sigma=2`
//! (`benches/peers/blur_peers.sh` runs all three).
//!
//! `bands = 1` is one thread's work per frame (ms here = CPU ms per frame); `bands = 2` splits
//! each frame across two rayon threads.

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

criterion_group!(benches, blur);
criterion_main!(benches);
