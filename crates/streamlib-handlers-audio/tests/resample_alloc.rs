//! Steady state allocates nothing: a 44.1 kHz source through `audioresample` (fixed ratio,
//! and following drift) to 48 kHz and a sink, and `AsyncResampler` with its ratio moving,
//! counted by a global allocator over a thousand ticks after warm-up.
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use common::{connect, run, sink, start, tick};
use streamlib_clock::Rational;
use streamlib_handlers_audio::{
    AsyncResampler, AudioResample, AudioResampleConfig, AudioTestSrc, AudioTestSrcConfig, Wave,
};
use streamlib_test_support::{CountingAllocator, allocations};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// One test: the allocator's count is process-wide, and tests run on parallel threads.
#[test]
fn steady_state_allocates_nothing() {
    audioresample_allocates_nothing_per_buffer();
    async_resampler_allocates_nothing_after_the_first_call();
}

fn audioresample_allocates_nothing_per_buffer() {
    for drift in [false, true] {
        // 29.97 fps: two input sizes (1471 and 1472 frames), several output sizes.
        let fps = Rational::FPS_29_97;
        let mut src = AudioTestSrc::new(AudioTestSrcConfig {
            wave: Wave::PinkNoise,
            rate: 44_100,
            ..AudioTestSrcConfig::default()
        })
        .unwrap();
        let mut resample = AudioResample::new(AudioResampleConfig {
            rate: 48_000,
            drift,
            ..AudioResampleConfig::default()
        })
        .unwrap();
        let out = sink(64);
        connect(&src.output(), &resample.input());
        connect(&resample.output(), &out.handle());
        start(&mut src, fps);
        start(&mut resample, fps);
        let mut step = |n: u64| {
            let t = tick(fps, n);
            run(&mut src, t);
            run(&mut resample, t);
            let mut frames = 0;
            while let Some(b) = out.recv() {
                frames += b.frames();
            }
            frames
        };
        for n in 0..120 {
            step(n);
        }
        let before = allocations();
        let mut frames = 0;
        for n in 120..1120 {
            frames += step(n);
        }
        let allocated = allocations() - before;
        assert!(frames > 1_590_000, "{frames} frames");
        assert_eq!(
            allocated, 0,
            "drift {drift}: {allocated} allocations in 1000 ticks"
        );
        assert_eq!(resample.stats().snapshot().discontinuities, 0);
    }
}

fn async_resampler_allocates_nothing_after_the_first_call() {
    let mut r = AsyncResampler::new("audiosink", 2, 48_000, 44_100).unwrap();
    let input = vec![0.1f32; 2 * 1024];
    let mut output = vec![0f32; r.max_output_len(input.len())];
    r.process(&input, &mut output).unwrap();
    let before = allocations();
    for n in 0..2000 {
        // The ratio moves every call, as a sink's fill-level loop moves it.
        r.set_relative_ratio(1.0 + f64::from(n % 21 - 10) * 0.0005);
        let frames = [1024, 480, 7, 1000][n as usize % 4];
        r.process(&input[..frames * 2], &mut output).unwrap();
    }
    assert_eq!(allocations() - before, 0);
}
