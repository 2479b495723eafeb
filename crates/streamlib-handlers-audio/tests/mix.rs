//! `audioconvert` and `audiomixer` on real signals: channel matrices applied to every
//! frame, two sines mixed (both in the output's spectrum), late inputs mixed as silence and
//! counted, and no allocation per buffer at steady state.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::{connect, drain, run, sink, start, tick};
use streamlib_clock::Rational;
use streamlib_handlers_audio::{
    AudioConvert, AudioMixer, AudioMixerConfig, AudioTestSrc, AudioTestSrcConfig, MINUS_3DB,
};
use streamlib_test_support::{CountingAllocator, allocations};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn sine(freq: f64, volume: f64, channels: u16) -> AudioTestSrc {
    AudioTestSrc::new(AudioTestSrcConfig {
        freq,
        volume,
        channels,
        ..AudioTestSrcConfig::default()
    })
    .unwrap()
}

/// Goertzel power of `x` (one channel at 48 kHz) at `f`.
fn power(x: &[f32], f: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * f / 48_000.0;
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        let s0 = f64::from(v) + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2) / (x.len() as f64).powi(2)
}

#[test]
fn convert_mono_to_stereo_and_back_keeps_the_signal() {
    let fps = Rational::fps(30);
    let mut src = sine(1000.0, 0.5, 1);
    let mut up = AudioConvert::new(2).unwrap();
    let mut down = AudioConvert::new(1).unwrap();
    let (stereo, mono) = (sink(64), sink(64));
    connect(&src.output(), &up.input());
    connect(&up.output(), &stereo.handle());
    start(&mut src, fps);
    let (mut s, mut m) = (Vec::new(), Vec::new());
    for n in 0..10 {
        run(&mut src, tick(fps, n));
        run(&mut up, tick(fps, n));
        drain(&stereo, &mut s);
    }
    assert_eq!(s.len(), 10 * 1600 * 2);
    assert!(s.chunks_exact(2).all(|f| f[0] == f[1]), "L = R = mono");
    // And back down: the average of two equal channels is the mono signal.
    let mut src = sine(1000.0, 0.5, 2);
    connect(&src.output(), &down.input());
    connect(&down.output(), &mono.handle());
    start(&mut src, fps);
    for n in 0..10 {
        run(&mut src, tick(fps, n));
        run(&mut down, tick(fps, n));
        drain(&mono, &mut m);
    }
    assert_eq!(m.len(), 10 * 1600);
    let stereo_left: Vec<f32> = s.iter().step_by(2).copied().collect();
    for (a, b) in m.iter().zip(&stereo_left) {
        assert!((a - b).abs() < 1e-6);
    }
}

#[test]
fn surround_downmix_weights_centre_and_drops_lfe() {
    // Six channels all carrying one sine: L' = (1 + 2 · 0.7071) · x, LFE not counted.
    let fps = Rational::fps(30);
    let mut src = sine(500.0, 0.25, 6);
    let mut conv = AudioConvert::new(2).unwrap();
    let out = sink(64);
    connect(&src.output(), &conv.input());
    connect(&conv.output(), &out.handle());
    start(&mut src, fps);
    let mut s = Vec::new();
    for n in 0..30 {
        run(&mut src, tick(fps, n));
        run(&mut conv, tick(fps, n));
        drain(&out, &mut s);
    }
    let peak = s.iter().fold(0f32, |p, x| p.max(x.abs()));
    let want = 0.25 * (1.0 + 2.0 * MINUS_3DB);
    assert!((peak - want).abs() < 1e-3, "peak {peak}, want {want}");
}

/// Mixes a 440 Hz and a 1 kHz source for `ticks`; input 1 runs only on ticks `keep` lets
/// through. Returns the mixed left channel and the mixer.
fn mix(ticks: u64, keep: impl Fn(u64) -> bool) -> (Vec<f32>, AudioMixer) {
    let fps = Rational::fps(30);
    let mut a = sine(440.0, 0.4, 2);
    let mut b = sine(1000.0, 0.4, 2);
    let mut mixer = AudioMixer::new(AudioMixerConfig::default()).unwrap();
    mixer.set_gain(1, 0.5).unwrap();
    let out = sink(64);
    connect(&a.output(), &mixer.input(0).unwrap());
    connect(&b.output(), &mixer.input(1).unwrap());
    connect(&mixer.output(), &out.handle());
    start(&mut a, fps);
    start(&mut b, fps);
    start(&mut mixer, fps);
    let mut s = Vec::new();
    for n in 0..ticks {
        run(&mut a, tick(fps, n));
        if keep(n) {
            run(&mut b, tick(fps, n));
        }
        run(&mut mixer, tick(fps, n));
        drain(&out, &mut s);
    }
    (s.iter().step_by(2).copied().collect(), mixer)
}

#[test]
fn mixer_sums_both_sines_with_their_gains() {
    let (left, mixer) = mix(60, |_| true);
    assert_eq!(left.len(), 60 * 1600);
    let second = &left[48_000..96_000];
    // Amplitude a gives power a²/4 in its bin: 0.4 at 440 Hz, 0.4 · 0.5 at 1 kHz.
    let (p440, p1k) = (power(second, 440.0), power(second, 1000.0));
    assert!((p440.sqrt() * 2.0 - 0.4).abs() < 0.01, "440 Hz: {p440}");
    assert!((p1k.sqrt() * 2.0 - 0.2).abs() < 0.01, "1 kHz: {p1k}");
    assert!(power(second, 700.0) < 1e-6 * p440);
    let stats = mixer.stats().snapshot();
    assert_eq!(stats[0].silent + stats[1].silent, 0, "{stats:?}");
    assert_eq!(stats[1].mixed, 60);
}

#[test]
fn late_input_is_mixed_as_silence_and_counted() {
    // Input 1 misses every tenth tick: the source then catches up, one tick late.
    let (left, mixer) = mix(100, |n| n % 10 != 5);
    assert_eq!(left.len(), 100 * 1600);
    let stats = mixer.stats().snapshot();
    assert_eq!(stats[0].silent, 0, "{stats:?}");
    assert_eq!(stats[1].silent, 10, "{stats:?}");
    // The catch-up buffer comes after its span was mixed: dropped and counted.
    assert_eq!(stats[1].late, 10, "{stats:?}");
    // On a missed tick only the 440 Hz sine is there (what 1 kHz reads there is the
    // 440 Hz sine's leakage over 1600 samples); the tick before has both.
    let (missed, before) = (&left[15 * 1600..16 * 1600], &left[14 * 1600..15 * 1600]);
    assert!(power(missed, 1000.0) < 1e-2 * power(before, 1000.0));
    assert!(power(missed, 440.0) > 0.5 * power(before, 440.0));
}

#[test]
fn convert_and_mixer_allocate_nothing_per_buffer() {
    let fps = Rational::FPS_29_97;
    let mut a = sine(440.0, 0.4, 1);
    let mut b = sine(1000.0, 0.4, 6);
    let (mut up, mut down) = (AudioConvert::new(2).unwrap(), AudioConvert::new(2).unwrap());
    let mut mixer = AudioMixer::new(AudioMixerConfig::default()).unwrap();
    let out = sink(64);
    connect(&a.output(), &up.input());
    connect(&b.output(), &down.input());
    connect(&up.output(), &mixer.input(0).unwrap());
    connect(&down.output(), &mixer.input(1).unwrap());
    connect(&mixer.output(), &out.handle());
    for h in [&mut a, &mut b] {
        start(h, fps);
    }
    start(&mut up, fps);
    start(&mut down, fps);
    start(&mut mixer, fps);
    let mut step = |n: u64| {
        let t = tick(fps, n);
        run(&mut a, t);
        run(&mut b, t);
        run(&mut up, t);
        run(&mut down, t);
        run(&mut mixer, t);
        let mut frames = 0;
        while let Some(buffer) = out.recv() {
            frames += buffer.frames();
        }
        frames
    };
    for n in 0..120 {
        step(n);
    }
    let before = allocations();
    let frames: usize = (120..1120).map(&mut step).sum();
    let allocated = allocations() - before;
    assert!(frames > 1_600_000, "{frames} frames");
    assert_eq!(allocated, 0, "{allocated} allocations in 1000 ticks");
    assert_eq!(mixer.stats().snapshot()[1].silent, 0);
}
