//! `audioresample` and `AsyncResampler` on signals made here: a 1 kHz sine keeps its
//! frequency, level and timing through 44.1 → 48 kHz, what lies above the new Nyquist is
//! rejected, stamps count samples, drift is followed, bad samples are flushed and counted.
#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(
    clippy::print_stderr,
    reason = "the measured figures go in the test log"
)]

mod common;

use std::f64::consts::TAU;

use common::{connect, run, sink, tick};
use streamlib_buffers::PooledBuf;
use streamlib_clock::Rational;
use streamlib_handlers_audio::{
    AsyncResampler, AudioResample, AudioResampleConfig, ResampleQuality, sample_time_ns,
};
use streamlib_ports::{AudioBuffer, MemoryCaps, OutputPort};

/// `seconds` of a sine at `freq` Hz and `amplitude`, `channels` channels at `rate`.
fn sine(freq: f64, amplitude: f64, rate: u32, channels: usize, seconds: f64) -> Vec<f32> {
    let frames = (seconds * f64::from(rate)) as usize;
    (0..frames)
        .flat_map(|n| {
            let v = (amplitude * (TAU * freq * n as f64 / f64::from(rate)).sin()) as f32;
            std::iter::repeat_n(v, channels)
        })
        .collect()
}

/// Runs `input` through an `audioresample` in buffers of `frames` frames, buffer `k`
/// stamped by `stamp(first_frame_of_k)`; returns the output samples, each output buffer's
/// (timestamp, frames), and the handler's stats.
fn resample(
    input: &[f32],
    channels: u16,
    rate: u32,
    frames: usize,
    config: AudioResampleConfig,
    stamp: impl Fn(u64) -> u64,
) -> (
    Vec<f32>,
    Vec<(u64, usize)>,
    streamlib_handlers_audio::ResampleStats,
) {
    let mut handler = AudioResample::new(config).unwrap();
    let source = OutputPort::<AudioBuffer>::new("audio", MemoryCaps::CPU);
    let out = sink(1024);
    connect(&source.handle(), &handler.input());
    connect(&handler.output(), &out.handle());
    let (mut samples, mut seen) = (Vec::new(), Vec::new());
    let fps = Rational::fps(30);
    for (n, chunk) in input.chunks(frames * usize::from(channels)).enumerate() {
        let first = (n * frames) as u64;
        let buffer = AudioBuffer::new(
            PooledBuf::from_vec(chunk.to_vec()),
            channels,
            rate,
            stamp(first),
        )
        .unwrap();
        source.write(buffer);
        run(&mut handler, tick(fps, n as u64));
        seen.extend(common::drain(&out, &mut samples));
    }
    (samples, seen, handler.stats().snapshot())
}

fn exact(rate: u32) -> impl Fn(u64) -> u64 {
    move |n| 1_000_000_000 + sample_time_ns(n, rate)
}

/// Least-squares fit of `a·sin(ωt) + b·cos(ωt)` to channel 0 of `samples[from..to]` (frames
/// counted from the stream's start at `rate`): amplitude, phase (rad) and residual RMS.
fn fit(
    samples: &[f32],
    channels: usize,
    rate: u32,
    freq: f64,
    from: usize,
    to: usize,
) -> (f64, f64, f64) {
    let w = TAU * freq / f64::from(rate);
    let (mut ss, mut cc, mut sc, mut ys, mut yc) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for n in from..to {
        let (s, c) = (w * n as f64).sin_cos();
        let y = f64::from(samples[n * channels]);
        ss += s * s;
        cc += c * c;
        sc += s * c;
        ys += y * s;
        yc += y * c;
    }
    let det = ss * cc - sc * sc;
    let a = (ys * cc - yc * sc) / det;
    let b = (yc * ss - ys * sc) / det;
    let mut residual = 0.0;
    for n in from..to {
        let (s, c) = (w * n as f64).sin_cos();
        let e = f64::from(samples[n * channels]) - a * s - b * c;
        residual += e * e;
    }
    (
        a.hypot(b),
        b.atan2(a),
        (residual / (to - from) as f64).sqrt(),
    )
}

/// Frequency from positive-going zero crossings of channel 0, interpolated.
fn zero_crossing_freq(samples: &[f32], channels: usize, rate: u32) -> f64 {
    let x: Vec<f64> = samples
        .iter()
        .step_by(channels)
        .map(|&v| f64::from(v))
        .collect();
    let crossings: Vec<f64> = x
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] < 0.0 && w[1] >= 0.0)
        .map(|(i, w)| i as f64 + w[0] / (w[0] - w[1]))
        .collect();
    let (first, last) = (crossings[1], crossings[crossings.len() - 2]);
    (crossings.len() - 3) as f64 * f64::from(rate) / (last - first)
}

fn db(x: f64) -> f64 {
    20.0 * x.log10()
}

#[test]
fn a_1khz_sine_keeps_frequency_level_timing_and_duration_through_44k1_to_48k() {
    let input = sine(1000.0, 0.5, 44_100, 2, 3.0);
    for quality in [
        ResampleQuality::Fast,
        ResampleQuality::Default,
        ResampleQuality::Best,
    ] {
        let config = AudioResampleConfig {
            rate: 48_000,
            quality,
            drift: false,
        };
        let (out, seen, stats) = resample(&input, 2, 44_100, 1470, config, exact(44_100));
        let frames = out.len() / 2;
        // Duration: the input's, less the filter's delay still inside (under 1 ms here).
        let nominal = (input.len() / 2) as f64 * 48_000.0 / 44_100.0;
        let short = nominal - frames as f64;
        assert!(
            (0.0..145.0).contains(&short),
            "{quality:?}: {frames} of {nominal}"
        );
        let f = zero_crossing_freq(&out[4800 * 2..], 2, 48_000);
        assert!((f - 1000.0).abs() < 0.01, "{quality:?}: {f} Hz");
        let (amplitude, phase, residual) = fit(&out, 2, 48_000, 1000.0, 4800, frames - 4800);
        let level = db(amplitude / 0.5);
        let thd_n = db(residual / (amplitude / 2f64.sqrt()));
        // Timing: the sine's phase says how far output sample n is from input time n/48000.
        let offset_us = phase / (TAU * 1000.0) * 1e6;
        eprintln!(
            "{quality:?}: level {level:+.4} dB, THD+N {thd_n:.1} dB, offset {offset_us:+.2} us, \
             {short:.1} frames short"
        );
        assert!(level.abs() < 0.1, "{quality:?}: level {level} dB");
        let floor = if quality == ResampleQuality::Fast {
            -60.0
        } else {
            -90.0
        };
        assert!(thd_n < floor, "{quality:?}: THD+N {thd_n} dB");
        assert!(offset_us.abs() < 1.0, "{quality:?}: {offset_us} us off");
        // Stamps: the first input's, plus the samples produced before, at 48 kHz.
        let mut count = 0u64;
        for &(ts, n) in &seen {
            assert_eq!(ts, 1_000_000_000 + sample_time_ns(count, 48_000));
            count += n as u64;
        }
        assert_eq!(stats.non_finite_samples, 0);
    }
}

#[test]
fn what_lies_above_the_new_nyquist_is_rejected_going_down() {
    // 48 → 44.1 kHz: a 23 kHz tone has no place below 22.05 kHz and must not fold back.
    let input = sine(23_000.0, 0.5, 48_000, 1, 2.0);
    let config = AudioResampleConfig {
        rate: 44_100,
        ..AudioResampleConfig::default()
    };
    let (out, _, _) = resample(&input, 1, 48_000, 1600, config, exact(48_000));
    let steady = &out[4410..out.len() - 4410];
    let rms =
        (steady.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / steady.len() as f64).sqrt();
    let rejection = db(rms / (0.5 / 2f64.sqrt()));
    eprintln!("23 kHz at 48 -> 44.1 kHz: {rejection:.1} dB");
    assert!(rejection < -60.0, "{rejection} dB");
    // While the band below passes: flat (0.1 dB) to 16 kHz, about -4 dB at 19.5 kHz.
    for (freq, lo, hi) in [(16_000.0, -0.1, 0.1), (19_500.0, -8.0, -2.0)] {
        let input = sine(freq, 0.5, 48_000, 1, 1.0);
        let (out, _, _) = resample(&input, 1, 48_000, 1600, config, exact(48_000));
        let (amplitude, _, _) = fit(&out, 1, 44_100, freq, 4410, out.len() - 4410);
        let level = db(amplitude / 0.5);
        eprintln!("{freq} Hz at 48 -> 44.1 kHz: {level:+.2} dB");
        assert!((lo..hi).contains(&level), "{freq} Hz: {level} dB");
    }
}

#[test]
fn non_finite_input_is_flushed_counted_and_never_propagated() {
    let mut input = sine(440.0, 0.5, 44_100, 2, 0.5);
    input[1000] = f32::NAN;
    input[5001] = f32::INFINITY;
    input[9000] = f32::NEG_INFINITY;
    let config = AudioResampleConfig {
        rate: 48_000,
        ..AudioResampleConfig::default()
    };
    let (out, _, stats) = resample(&input, 2, 44_100, 1470, config, exact(44_100));
    assert_eq!(stats.non_finite_samples, 3);
    assert!(out.iter().all(|v| v.is_finite()));
}

#[test]
fn a_jump_in_timestamps_restarts_the_stamps_there() {
    let input = sine(440.0, 0.5, 44_100, 2, 1.0);
    let config = AudioResampleConfig {
        rate: 48_000,
        ..AudioResampleConfig::default()
    };
    // Half a second in, the stamps jump 10 s ahead.
    let stamp = |n: u64| sample_time_ns(n, 44_100) + if n >= 22_050 { 10_000_000_000 } else { 0 };
    let (_, seen, stats) = resample(&input, 2, 44_100, 1470, config, stamp);
    assert_eq!(stats.discontinuities, 1);
    let after: Vec<_> = seen
        .iter()
        .filter(|(ts, _)| *ts >= 10_000_000_000)
        .collect();
    assert_eq!(after[0].0, 10_000_000_000 + sample_time_ns(22_050, 44_100));
}

#[test]
fn drift_mode_follows_timestamps_that_run_fast() {
    // A source whose samples come 0.05 % slower than nominal: its stamps (the pipeline's
    // clock) advance 1.0005 s per 44 100 samples.
    let input = sine(440.0, 0.5, 44_100, 2, 30.0);
    let config = AudioResampleConfig {
        rate: 48_000,
        drift: true,
        ..AudioResampleConfig::default()
    };
    let stamp = |n: u64| (sample_time_ns(n, 44_100) as f64 * 1.0005) as u64;
    let (out, seen, stats) = resample(&input, 2, 44_100, 1470, config, stamp);
    assert!((stats.relative_ratio - 1.0005).abs() < 0.0001, "{stats:?}");
    // The output's count keeps to the stamps: at their rate, 30.015 s of 48 kHz by the end
    // (less the filter's delay and the controller's lag of about 0.05 % of a second).
    let frames = (out.len() / 2) as f64;
    let due = 30.0 * 1.0005 * 48_000.0;
    assert!((due - frames).abs() < 100.0, "{frames} frames, {due} due");
    // Without drift the count would be the samples' nominal 1 440 000: 720 short.
    let last = seen.last().unwrap();
    let end_ns = last.0 + sample_time_ns(last.1 as u64, 48_000);
    let stamped = stamp((input.len() / 2) as u64);
    assert!(
        end_ns.abs_diff(stamped) < 3_000_000,
        "{end_ns} vs {stamped}"
    );
}

#[test]
fn async_resampler_with_relative_1_001_makes_0_1_percent_more() {
    for (from, to) in [(48_000, 48_000), (44_100, 48_000), (48_000, 44_100)] {
        let input = sine(440.0, 0.5, from, 2, 10.0);
        let count = |relative: f64| {
            let mut r = AsyncResampler::new("audiosink", 2, from, to).unwrap();
            r.set_relative_ratio(relative);
            let mut out = vec![0f32; r.max_output_len(960 * 2)];
            let mut made = 0;
            for chunk in input.chunks(960 * 2) {
                made += r.process(chunk, &mut out).unwrap();
            }
            assert!(out.iter().all(|v| v.is_finite()));
            made / 2
        };
        let (plain, faster) = (count(1.0) as f64, count(1.001) as f64);
        let nominal = (input.len() / 2) as f64 * f64::from(to) / f64::from(from);
        assert!(
            (nominal - plain).abs() < 64.0,
            "{from}->{to}: {plain} of {nominal}"
        );
        let gain = faster / plain - 1.0;
        assert!((gain - 0.001).abs() < 0.000_02, "{from}->{to}: {gain}");
    }
}
