//! What audiotestsrc and volume produce, checked on the samples.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::{connect, drain, run, sink, start, tick};
use streamlib_clock::Rational;
use streamlib_handlers_audio::{
    AudioTestSrc, AudioTestSrcConfig, TICK_SECONDS, Volume, Wave, sample_time_ns,
};
use streamlib_ports::StreamHandler;

/// Runs a source for `ticks` ticks at `fps`; returns interleaved samples and buffers seen.
fn generate(
    config: AudioTestSrcConfig,
    fps: Rational,
    ticks: u64,
) -> (Vec<f32>, Vec<(u64, usize)>) {
    let mut src = AudioTestSrc::new(config).unwrap();
    let out = sink(1024);
    connect(&src.output(), &out.handle());
    start(&mut src, fps);
    let (mut samples, mut seen) = (Vec::new(), Vec::new());
    for n in 0..ticks {
        run(&mut src, tick(fps, n));
        seen.extend(drain(&out, &mut samples));
    }
    (samples, seen)
}

fn channel(samples: &[f32], channels: usize, c: usize) -> Vec<f32> {
    samples.iter().skip(c).step_by(channels).copied().collect()
}

#[test]
fn sine_has_its_frequency_by_zero_crossings_and_dft() {
    let config = AudioTestSrcConfig {
        freq: 997.0,
        volume: 0.5,
        ..AudioTestSrcConfig::default()
    };
    let (samples, _) = generate(config, Rational::FPS_29_97, 300);
    let left = channel(&samples, 2, 0);
    assert_eq!(
        left,
        channel(&samples, 2, 1),
        "both channels carry the sine"
    );
    let seconds = left.len() as f64 / 48_000.0;
    // Rising zero crossings, interpolated.
    let mut crossings = Vec::new();
    for (i, w) in left.windows(2).enumerate() {
        if w[0] < 0.0 && w[1] >= 0.0 {
            crossings.push(i as f64 + f64::from(w[0] / (w[0] - w[1])));
        }
    }
    let span = crossings.last().unwrap() - crossings[0];
    let freq = (crossings.len() - 1) as f64 * 48_000.0 / span;
    assert!(
        (freq - 997.0).abs() < 0.01,
        "zero crossings give {freq} Hz over {seconds} s"
    );
    // Goertzel power at 997 Hz against 990 Hz on one second: the energy is in the bin.
    let goertzel = |f: f64| {
        let w = 2.0 * std::f64::consts::PI * f / 48_000.0;
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &x in &left[..48_000] {
            let s0 = f64::from(x) + 2.0 * w.cos() * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2
    };
    assert!(goertzel(997.0) > 1e4 * goertzel(990.0));
    let peak = left.iter().fold(0f32, |m, x| m.max(x.abs()));
    assert!((peak - 0.5).abs() < 1e-3, "amplitude {peak}");
}

#[test]
fn samples_follow_timestamps_without_drift_or_gaps() {
    // 29.97 fps at 44.1 kHz: 1471.47 samples a tick, so buffers alternate 1471 and 1472.
    let fps = Rational::FPS_29_97;
    let config = AudioTestSrcConfig {
        rate: 44_100,
        channels: 1,
        ..AudioTestSrcConfig::default()
    };
    let ticks = 30_000 * 2; // about 33 minutes of media time
    let mut src = AudioTestSrc::new(config).unwrap();
    let out = sink(16);
    connect(&src.output(), &out.handle());
    start(&mut src, fps);
    let mut expected_next = 0u64;
    let mut sizes = std::collections::BTreeSet::new();
    for n in 0..ticks {
        run(&mut src, tick(fps, n));
        while let Some(b) = out.recv() {
            assert_eq!(b.timestamp_ns(), sample_time_ns(expected_next, 44_100));
            expected_next += b.frames() as u64;
            sizes.insert(b.frames());
        }
    }
    // Exactly the samples due by the end of the last tick's span.
    let end_ns = fps.frame_time_ns(ticks);
    assert_eq!(
        expected_next,
        (u128::from(end_ns) * 44_100).div_ceil(1_000_000_000) as u64
    );
    assert_eq!(sizes.into_iter().collect::<Vec<_>>(), vec![1471, 1472]);
    assert_eq!(src.resyncs(), 0);
}

#[test]
fn sync_ticks_start_on_the_clock_second_boundaries() {
    // Mid-second at 25 fps (frame 17), so alignment cannot come from the start; and at
    // 29.97 fps on a TAI-like timeline (PTP timestamps are ns since 1970).
    sync_ticks(Rational::fps(25), 17);
    let tai = Rational::FPS_29_97.frame_at_ns(1_764_000_000_123_456_789);
    sync_ticks(Rational::FPS_29_97, tai);
}

fn sync_ticks(fps: Rational, first_frame: u64) {
    let config = AudioTestSrcConfig {
        wave: Wave::Ticks,
        freq: 1000.0,
        volume: 1.0,
        channels: 1,
        ..AudioTestSrcConfig::default()
    };
    let mut src = AudioTestSrc::new(config).unwrap();
    let out = sink(1024);
    connect(&src.output(), &out.handle());
    start(&mut src, fps);
    let mut samples = Vec::new();
    let mut first_ts = None;
    for n in first_frame..first_frame + 30 * 5 {
        run(&mut src, tick(fps, n));
        let seen = drain(&out, &mut samples);
        first_ts = first_ts.or(seen.first().map(|s| s.0));
    }
    let first = (first_ts.unwrap() as u128 * 48_000).div_ceil(1_000_000_000) as u64;
    // Onsets: the first sample above 1e-3 after a silence of at least 0.5 s.
    let mut onsets = Vec::new();
    let mut quiet = 0usize;
    for (i, x) in samples.iter().enumerate() {
        if x.abs() > 1e-3 {
            if quiet > 24_000 {
                onsets.push(first + i as u64);
            }
            quiet = 0;
        } else {
            quiet += 1;
        }
    }
    assert!(onsets.len() >= 4, "{onsets:?}");
    for onset in &onsets {
        // The beep starts at zero phase on the boundary sample: the next sample is the
        // first above threshold.
        assert_eq!(onset % 48_000, 1, "onset at sample {onset}");
        let t = sample_time_ns(onset - 1, 48_000);
        assert_eq!(t % 1_000_000_000, 0, "onset at {t} ns");
    }
    // The beep lasts TICK_SECONDS.
    let beep = samples[(onsets[0] - first) as usize..]
        .iter()
        .rposition(|x| x.abs() > 1e-3)
        .map(|_| ());
    assert!(beep.is_some());
    let loud = samples[(onsets[0] - first) as usize..(onsets[1] - first) as usize]
        .iter()
        .filter(|x| x.abs() > 1e-3)
        .count();
    assert!(
        (loud as f64 - TICK_SECONDS * 48_000.0).abs() < 300.0,
        "{loud} loud samples"
    );
}

#[test]
fn every_wave_is_bounded_and_noise_is_not_constant() {
    for &name in Wave::NAMES {
        let wave = Wave::from_name(name).unwrap();
        assert_eq!(wave.name(), name);
        let config = AudioTestSrcConfig {
            wave,
            volume: 0.7,
            ..AudioTestSrcConfig::default()
        };
        let (samples, _) = generate(config, Rational::fps(30), 30);
        assert_eq!(samples.len(), 48_000 * 2, "{name}");
        let peak = samples.iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!(peak <= 0.7 + 1e-6, "{name} peaks at {peak}");
        let rms = (samples.iter().map(|x| x * x).sum::<f32>() / samples.len() as f32).sqrt();
        match wave {
            Wave::Silence => assert_eq!(peak, 0.0),
            _ => assert!(rms > 0.01, "{name} rms {rms}"),
        }
    }
    // White noise differs between channels.
    let (noise, _) = generate(
        AudioTestSrcConfig {
            wave: Wave::WhiteNoise,
            ..AudioTestSrcConfig::default()
        },
        Rational::fps(30),
        3,
    );
    assert_ne!(channel(&noise, 2, 0), channel(&noise, 2, 1));
}

#[test]
fn bad_properties_are_errors_naming_handler_and_property() {
    let cases = [
        (
            AudioTestSrcConfig {
                rate: 0,
                ..Default::default()
            },
            "`rate`",
        ),
        (
            AudioTestSrcConfig {
                rate: 10_000_000,
                ..Default::default()
            },
            "`rate`",
        ),
        (
            AudioTestSrcConfig {
                channels: 0,
                ..Default::default()
            },
            "`channels`",
        ),
        (
            AudioTestSrcConfig {
                channels: 1000,
                ..Default::default()
            },
            "`channels`",
        ),
        (
            AudioTestSrcConfig {
                freq: f64::NAN,
                ..Default::default()
            },
            "`freq`",
        ),
        (
            AudioTestSrcConfig {
                freq: 30_000.0,
                ..Default::default()
            },
            "`freq`",
        ),
        (
            AudioTestSrcConfig {
                volume: 2.0,
                ..Default::default()
            },
            "`volume`",
        ),
        (
            AudioTestSrcConfig {
                samples_per_buffer: usize::MAX,
                ..Default::default()
            },
            "`samplesperbuffer`",
        ),
    ];
    for (config, property) in cases {
        let err = AudioTestSrc::new(config)
            .err()
            .expect("rejected")
            .to_string();
        assert!(
            err.starts_with("audiotestsrc: property ") && err.contains(property),
            "{err}"
        );
    }
    // A clock faster than the sample rate without samplesperbuffer.
    let mut src = AudioTestSrc::new(AudioTestSrcConfig {
        rate: 1_000,
        ..Default::default()
    })
    .unwrap();
    let clock = common::clock(Rational::fps(2_000));
    let err = src
        .on_start(&streamlib_ports::StartContext::new("a", &clock))
        .unwrap_err()
        .to_string();
    assert!(err.contains("samplesperbuffer"), "{err}");
    let err = Volume::new(-1.0, false).err().unwrap().to_string();
    assert!(err.starts_with("volume: property `volume`"), "{err}");
}

/// A volume change mid-stream: the gain moves in steps no larger than a 5 ms ramp's, with
/// no jump in the signal beyond what the sine itself does between samples.
#[test]
fn volume_changes_ramp_without_discontinuity() {
    let fps = Rational::fps(50);
    let mut src = AudioTestSrc::new(AudioTestSrcConfig {
        wave: Wave::Square,
        freq: 50.0,
        volume: 1.0,
        channels: 1,
        ..Default::default()
    })
    .unwrap();
    // A square's plateaus make the gain visible sample by sample.
    let mut volume = Volume::new(1.0, false).unwrap();
    let out = sink(1024);
    connect(&src.output(), &volume.input());
    connect(&volume.output(), &out.handle());
    start(&mut src, fps);
    start(&mut volume, fps);
    let mut samples = Vec::new();
    for n in 0..50 {
        match n {
            10 => volume.set_volume(0.25).unwrap(),
            20 => volume.set_mute(true),
            30 => volume.set_mute(false),
            40 => volume.set_db(0.0).unwrap(),
            _ => {}
        }
        run(&mut src, tick(fps, n));
        run(&mut volume, tick(fps, n));
        drain(&out, &mut samples);
    }
    assert_eq!(samples.len(), 48_000);
    let gains: Vec<f32> = samples.iter().map(|x| x.abs()).collect();
    // Largest step in gain from one sample to the next (the square's sign flips aside).
    let max_step = gains
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .fold(0f32, f32::max);
    let ramp = (0.005 * 48_000.0) as f32;
    assert!(max_step <= 1.0 / ramp + 1e-4, "gain stepped by {max_step}");
    // Each change settles on its target within the ramp.
    let at = |tick: usize, offset: usize| gains[tick * 960 + offset];
    assert!((at(9, 959) - 1.0).abs() < 1e-6, "{}", at(9, 959));
    assert!((at(10, 0) - 1.0).abs() < 0.01, "{}", at(10, 0));
    assert!((at(10, 240) - 0.25).abs() < 1e-4, "{}", at(10, 240));
    assert!(at(20, 240) < 1e-6 && (at(30, 240) - 0.25).abs() < 1e-4);
    assert!((at(49, 0) - 1.0).abs() < 1e-6);
    // Halfway through the first ramp the gain is halfway.
    assert!((at(10, 120) - 0.625).abs() < 0.01, "{}", at(10, 120));
}

#[test]
fn non_finite_samples_are_flushed_counted_and_never_metered() {
    use streamlib_buffers::PooledBuf;
    use streamlib_handlers_audio::Loudness;
    use streamlib_ports::{AudioBuffer, OutputPort};

    let fps = Rational::fps(10);
    let source = OutputPort::<AudioBuffer>::new("audio", streamlib_ports::MemoryCaps::CPU);
    let mut meter = Loudness::new();
    let out = sink(1024);
    connect(&source.handle(), &meter.input());
    connect(&meter.output(), &out.handle());
    let mut passed = Vec::new();
    for n in 0..50u64 {
        // A -20 dBFS 1 kHz sine in mono, one NaN, +inf and -inf in every buffer.
        let mut v: Vec<f32> = (0..4800)
            .map(|i| 0.1 * (std::f32::consts::TAU * 1000.0 * i as f32 / 48_000.0).sin())
            .collect();
        v[10] = f32::NAN;
        v[20] = f32::INFINITY;
        v[30] = f32::NEG_INFINITY;
        let b = AudioBuffer::new(PooledBuf::from_vec(v), 1, 48_000, fps.frame_time_ns(n)).unwrap();
        source.write(b);
        run(&mut meter, tick(fps, n));
        drain(&out, &mut passed);
    }
    let stats = meter.stats().snapshot();
    assert_eq!(stats.non_finite_samples, 150);
    assert!(passed.iter().all(|x| x.is_finite()) && passed.len() == 50 * 4800);
    assert_eq!((passed[10], passed[20], passed[30]), (0.0, 0.0, 0.0));
    // A mono -20 dBFS sine reads -23 LUFS (full scale in one channel is -3.01).
    assert!((stats.integrated_lufs + 23.0).abs() < 0.1, "{stats:?}");
    // The zeros where NaN and inf were are small clicks: a little intersample overshoot, but
    // no infinity reached the meter.
    assert!(
        stats.true_peak_dbtp > -20.1 && stats.true_peak_dbtp < -15.0,
        "{stats:?}"
    );
}
