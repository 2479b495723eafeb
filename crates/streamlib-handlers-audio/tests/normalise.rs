//! `loudness target=…`: the output is steered to the target loudness, measured by a second
//! meter downstream, without clicks, and silence is not boosted.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::{connect, drain, run, sink, start, tick};
use streamlib_clock::Rational;
use streamlib_handlers_audio::{
    AudioTestSrc, AudioTestSrcConfig, Loudness, LoudnessMeter, LoudnessTarget,
    TARGET_SLEW_DB_PER_S, TargetWindow, Wave,
};

const FPS: Rational = Rational::fps(30);

/// Pink noise at `volume` through a normalising meter for `seconds`; returns the output's
/// samples and the meter's last reported gain.
fn normalise(volume: f64, wave: Wave, target: LoudnessTarget, seconds: u64) -> (Vec<f32>, f64) {
    let mut src = AudioTestSrc::new(AudioTestSrcConfig {
        wave,
        volume,
        ..AudioTestSrcConfig::default()
    })
    .unwrap();
    let mut meter = Loudness::new().with_target(target).unwrap();
    let out = sink(1024);
    connect(&src.output(), &meter.input());
    connect(&meter.output(), &out.handle());
    start(&mut src, FPS);
    start(&mut meter, FPS);
    let mut samples = Vec::new();
    for n in 0..seconds * 30 {
        run(&mut src, tick(FPS, n));
        run(&mut meter, tick(FPS, n));
        drain(&out, &mut samples);
    }
    (samples, meter.stats().snapshot().gain_db)
}

fn measure(samples: &[f32]) -> f64 {
    let mut m = LoudnessMeter::new(2, 48_000).unwrap();
    m.add(samples).unwrap();
    m.stats().integrated_lufs
}

#[test]
fn a_quiet_programme_is_raised_to_the_target_and_a_loud_one_lowered() {
    for (volume, target) in [(0.05, -23.0), (0.9, -23.0), (0.1, -16.0)] {
        let (out, gain) = normalise(volume, Wave::PinkNoise, LoudnessTarget::new(target), 20);
        // After the gain settled (at most 20 dB at 3 dB/s: 7 s), the output is on target.
        let settled = &out[2 * 48_000 * 10..];
        let lufs = measure(settled);
        assert!(
            (lufs - target).abs() < 0.5,
            "volume {volume}, target {target}: output {lufs:.2} LUFS, gain {gain:.2} dB"
        );
        let input = measure(
            &normalise(
                volume,
                Wave::PinkNoise,
                LoudnessTarget {
                    max_gain_db: 0.0,
                    ..LoudnessTarget::new(target)
                },
                5,
            )
            .0,
        );
        assert!(
            (input + gain - target).abs() < 0.5,
            "gain {gain:.2} dB takes {input:.2} LUFS to {target}"
        );
    }
}

#[test]
fn the_gain_moves_no_faster_than_its_slew_and_without_steps() {
    let (out, _) = normalise(0.02, Wave::Sine, LoudnessTarget::new(-14.0), 4);
    // A -34 dBFS sine wants about +17 dB; after 1 s the gain may have moved 3 dB at most.
    let left: Vec<f32> = out.iter().step_by(2).copied().collect();
    let peak = |from: usize| {
        left[from..from + 4_800]
            .iter()
            .fold(0f32, |m, x| m.max(x.abs()))
    };
    let (early, one_second) = (peak(4_800), peak(48_000));
    let moved_db = 20.0 * f64::from(one_second / early).log10();
    assert!(
        moved_db <= TARGET_SLEW_DB_PER_S * 0.95 + 0.2 && moved_db > 1.0,
        "the gain moved {moved_db:.2} dB in 0.9 s"
    );
    // No click: sample to sample, the sine's slope never exceeds its own maximum.
    let max_step = left
        .windows(2)
        .fold(0f32, |m, w| m.max((w[1] - w[0]).abs()));
    let amplitude = left.iter().fold(0f32, |m, x| m.max(x.abs()));
    let slope = amplitude * (2.0 * std::f32::consts::PI * 440.0 / 48_000.0);
    assert!(max_step <= slope * 1.05, "step {max_step} vs slope {slope}");
}

#[test]
fn the_gain_stops_at_max_gain() {
    // Pink noise at 0.05 is about -37.6 LUFS: -16 wants +21.6 dB, 20 is the default limit.
    let (_, gain) = normalise(0.05, Wave::PinkNoise, LoudnessTarget::new(-16.0), 10);
    assert_eq!(gain, 20.0);
}

#[test]
fn silence_is_not_boosted() {
    let (out, gain) = normalise(0.5, Wave::Silence, LoudnessTarget::new(-23.0), 3);
    assert_eq!(gain, 0.0, "gain on silence");
    assert!(out.iter().all(|&x| x == 0.0));
}

#[test]
fn integrated_window_and_bad_targets() {
    let target = LoudnessTarget {
        window: TargetWindow::Integrated,
        ..LoudnessTarget::new(-23.0)
    };
    let (out, _) = normalise(0.1, Wave::PinkNoise, target, 16);
    let lufs = measure(&out[2 * 48_000 * 8..]);
    assert!((lufs + 23.0).abs() < 0.5, "integrated target: {lufs:.2}");
    for bad in [f64::NAN, 5.0, -90.0] {
        let err = Loudness::new()
            .with_target(LoudnessTarget::new(bad))
            .err()
            .expect("rejected");
        assert!(
            err.to_string().contains("loudness") && err.to_string().contains("target"),
            "{err}"
        );
    }
}
