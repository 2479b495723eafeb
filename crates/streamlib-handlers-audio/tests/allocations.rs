//! Steady state allocates nothing: source → volume (ramping) → loudness normalising to a
//! target → loudness → sink, counted by
//! a global allocator over a thousand ticks after warm-up.
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use common::{connect, run, sink, start, tick};
use streamlib_clock::Rational;
use streamlib_handlers_audio::{
    AudioTestSrc, AudioTestSrcConfig, Loudness, LoudnessTarget, Volume, Wave,
};
use streamlib_test_support::{CountingAllocator, allocations};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn steady_state_allocates_nothing_per_buffer() {
    for wave in [Wave::Sine, Wave::PinkNoise, Wave::Ticks, Wave::Sweep] {
        // 29.97 fps: two buffer sizes, so two pools in the source and in volume.
        let fps = Rational::FPS_29_97;
        let mut src = AudioTestSrc::new(AudioTestSrcConfig {
            wave,
            ..AudioTestSrcConfig::default()
        })
        .unwrap();
        let mut volume = Volume::new(0.5, false).unwrap();
        let mut norm = Loudness::new()
            .with_target(LoudnessTarget::new(-23.0))
            .unwrap();
        let mut meter = Loudness::new();
        let out = sink(64);
        connect(&src.output(), &volume.input());
        connect(&volume.output(), &norm.input());
        connect(&norm.output(), &meter.input());
        connect(&meter.output(), &out.handle());
        start(&mut src, fps);
        start(&mut volume, fps);
        start(&mut norm, fps);
        start(&mut meter, fps);
        let mut step = |n: u64, volume: &mut Volume| {
            let t = tick(fps, n);
            run(&mut src, t);
            run(volume, t);
            run(&mut norm, t);
            run(&mut meter, t);
            let mut frames = 0;
            while let Some(b) = out.recv() {
                frames += b.frames();
            }
            frames
        };
        for n in 0..120 {
            step(n, &mut volume);
        }
        let before = allocations();
        let mut frames = 0;
        for n in 120..1120 {
            match n {
                300 => volume.set_db(-12.0).unwrap(),
                600 => volume.set_mute(true),
                900 => volume.set_mute(false),
                _ => {}
            }
            frames += step(n, &mut volume);
        }
        let allocated = allocations() - before;
        assert!(frames > 1_600_000, "{frames} frames");
        assert_eq!(
            allocated, 0,
            "{wave:?}: {allocated} allocations in 1000 ticks"
        );
        assert!(meter.stats().snapshot().integrated_lufs.is_finite());
        if wave != Wave::Ticks {
            assert_ne!(
                norm.stats().snapshot().gain_db,
                0.0,
                "{wave:?}: the target steered"
            );
        }
    }
}
