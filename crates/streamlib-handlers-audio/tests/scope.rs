//! `spectrum` and `audioscope` drawn from real audio (the test source, or buffers built
//! here), read back pixel by pixel.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::{run, start, tick};
use streamlib_buffers::PooledBuf;
use streamlib_clock::Rational;
use streamlib_handlers_audio::{
    AudioScope, AudioScopeConfig, AudioTestSrc, AudioTestSrcConfig, ScopeStyle, Spectrum,
    SpectrumConfig, Wave, level_row,
};
use streamlib_ports::{
    AlphaMode, AudioBuffer, InputPort, MemoryCaps, OutputPort, OutputRef, StreamHandler, VideoFrame,
};

const FPS: Rational = Rational::fps(30);
const W: usize = 640;
const H: usize = 360;

fn video_sink() -> InputPort<VideoFrame> {
    InputPort::new("video", MemoryCaps::CPU)
}

fn connect_video(out: &OutputRef<VideoFrame>, sink: &InputPort<VideoFrame>) {
    out.erased().connect_to(&*sink.handle().erased()).unwrap();
}

fn source(wave: Wave, freq: f64, volume: f64) -> AudioTestSrc {
    AudioTestSrc::new(AudioTestSrcConfig {
        wave,
        freq,
        volume,
        ..AudioTestSrcConfig::default()
    })
    .unwrap()
}

/// Runs `src` into `scope` for ticks `from..to`; the last frame.
fn run_ticks(
    src: &mut dyn StreamHandler,
    scope: &mut dyn StreamHandler,
    sink: &InputPort<VideoFrame>,
    ticks: std::ops::Range<u64>,
) -> VideoFrame {
    let mut last = None;
    for n in ticks {
        run(src, tick(FPS, n));
        run(scope, tick(FPS, n));
        if let Some(f) = sink.latest() {
            assert_eq!(
                f.timestamp_ns(),
                FPS.frame_time_ns(n),
                "stamped with the tick"
            );
            last = Some(f);
        }
    }
    last.expect("a frame per tick")
}

fn alpha(frame: &VideoFrame, x: usize, y: usize) -> u8 {
    frame.cpu_bytes().unwrap()[(y * frame.width() as usize + x) * 4 + 3]
}

fn pixel(frame: &VideoFrame, x: usize, y: usize) -> [u8; 4] {
    let i = (y * frame.width() as usize + x) * 4;
    frame.cpu_bytes().unwrap()[i..i + 4].try_into().unwrap()
}

/// Each band's bar height in pixels, measured at its left column.
fn bar_heights(frame: &VideoFrame, bands: usize) -> Vec<usize> {
    (0..bands)
        .map(|i| {
            let x = i * W / bands;
            (0..H).filter(|&y| alpha(frame, x, y) != 0).count()
        })
        .collect()
}

fn spectrum_rig(
    config: SpectrumConfig,
    src: &OutputRef<AudioBuffer>,
) -> (Spectrum, InputPort<VideoFrame>) {
    let mut spectrum = Spectrum::new(config).unwrap();
    let sink = video_sink();
    common::connect(src, &spectrum.input());
    connect_video(&spectrum.output(), &sink);
    start(&mut spectrum, FPS);
    (spectrum, sink)
}

fn band_of(spectrum: &Spectrum, hz: f64) -> usize {
    spectrum
        .band_edges(48_000)
        .iter()
        .position(|&(lo, hi)| (lo..hi).contains(&hz))
        .unwrap()
}

#[test]
fn a_1khz_sine_lights_the_band_holding_1khz_at_its_level() {
    let mut src = source(Wave::Sine, 1000.0, 0.5);
    let (mut spectrum, sink) = spectrum_rig(SpectrumConfig::default(), &src.output());
    start(&mut src, FPS);
    let frame = run_ticks(&mut src, &mut spectrum, &sink, 0..10);
    assert_eq!((frame.width(), frame.height()), (W as u32, H as u32));
    assert_eq!(frame.alpha(), AlphaMode::Straight);
    let heights = bar_heights(&frame, 64);
    let brightest = (0..64).max_by_key(|&i| heights[i]).unwrap();
    let expected = band_of(&spectrum, 1000.0);
    assert_eq!(brightest, expected, "{heights:?}");
    // -6 dBFS, less Hann's scalloping for 1 kHz a third of a bin off centre (< 1.5 dB).
    let level = f64::from(spectrum.band_levels()[expected]);
    assert!((-7.5..=-5.9).contains(&level), "{level}");
    let bar = ((level + 60.0) / 60.0 * H as f64).round() as usize;
    assert_eq!(heights[expected], bar);
    // Far from the tone, nothing; above the bars, the transparent background.
    assert_eq!(heights[band_of(&spectrum, 8000.0)], 0, "{heights:?}");
    assert_eq!(pixel(&frame, 0, 0), [0; 4]);
}

/// Feeds hand-made buffers: `frames` stereo frames per tick of `f(t)`.
struct HandSource {
    out: OutputPort<AudioBuffer>,
    t: u64,
}

impl HandSource {
    fn new() -> Self {
        Self {
            out: OutputPort::new("audio", MemoryCaps::CPU),
            t: 0,
        }
    }

    fn send(&mut self, frames: usize, f: impl Fn(f64) -> f32) {
        let mut samples = Vec::with_capacity(frames * 2);
        for i in 0..frames as u64 {
            let v = f((self.t + i) as f64 / 48_000.0);
            samples.extend([v, v]);
        }
        self.send_samples(samples);
    }

    fn send_samples(&mut self, samples: Vec<f32>) {
        let frames = samples.len() as u64 / 2;
        let ts = self.t * 1_000_000_000 / 48_000;
        let buffer = AudioBuffer::new(PooledBuf::from_vec(samples), 2, 48_000, ts).unwrap();
        self.out.write(buffer);
        self.t += frames;
    }
}

#[test]
fn two_tones_make_two_peaks_and_silence_no_bars() {
    let mut hand = HandSource::new();
    let (mut spectrum, sink) = spectrum_rig(SpectrumConfig::default(), &hand.out.handle());
    use std::f64::consts::TAU;
    hand.send(4800, |t| {
        (0.3 * (TAU * 1500.0 * t).sin() + 0.3 * (TAU * 6000.0 * t).sin()) as f32
    });
    run(&mut spectrum, tick(FPS, 0));
    let frame = sink.latest().unwrap();
    let heights = bar_heights(&frame, 64);
    let (a, b) = (band_of(&spectrum, 1500.0), band_of(&spectrum, 6000.0));
    for peak in [a, b] {
        let near = peak.saturating_sub(4)..(peak + 5).min(64);
        assert!(
            near.clone().all(|i| heights[i] <= heights[peak]),
            "band {peak} is a peak: {heights:?}"
        );
        assert!(heights[peak] > H / 2, "{heights:?}");
    }
    let valley = (a + 1..b).map(|i| heights[i]).min().unwrap();
    assert!(valley < H / 8, "a valley between the tones: {heights:?}");

    hand.send(4800, |_| 0.0);
    run(&mut spectrum, tick(FPS, 1));
    let frame = sink.latest().unwrap();
    assert!(
        frame.cpu_bytes().unwrap().iter().all(|&b| b == 0),
        "silence draws nothing on the transparent background"
    );
}

/// The rows lit (alpha ≠ 0) in rows `top..top + lane`, with how many pixels each.
fn lit_rows(frame: &VideoFrame, top: usize, lane: usize) -> Vec<(usize, usize)> {
    (top..top + lane)
        .map(|y| (y, (0..W).filter(|&x| alpha(frame, x, y) != 0).count()))
        .filter(|&(_, n)| n > 0)
        .collect()
}

#[test]
fn a_square_wave_draws_on_its_two_rows_in_each_channel_lane() {
    for style in [ScopeStyle::Dots, ScopeStyle::Lines] {
        let mut src = source(Wave::Square, 100.0, 0.5);
        let mut scope = AudioScope::new(AudioScopeConfig {
            style,
            ..AudioScopeConfig::default()
        })
        .unwrap();
        let sink = video_sink();
        common::connect(&src.output(), &scope.input());
        connect_video(&scope.output(), &sink);
        start(&mut src, FPS);
        start(&mut scope, FPS);
        let frame = run_ticks(&mut src, &mut scope, &sink, 0..5);
        let lane = H / 2;
        for top in [0, lane] {
            // v = ±0.5 at row top + round((1 - v) / 2 * (lane - 1)).
            let high = top + (0.25 * (lane - 1) as f64).round() as usize;
            let low = top + (0.75 * (lane - 1) as f64).round() as usize;
            let rows = lit_rows(&frame, top, lane);
            match style {
                ScopeStyle::Dots => {
                    let ys: Vec<usize> = rows.iter().map(|r| r.0).collect();
                    assert_eq!(ys, [high, low], "{style:?}: {rows:?}");
                }
                _ => {
                    // The two levels fill half the width each; between them only the edges
                    // (a 20 ms window of 100 Hz: four of them).
                    for y in [high, low] {
                        let n = rows.iter().find(|r| r.0 == y).map_or(0, |r| r.1);
                        assert!(n > W * 2 / 5, "{style:?} row {y}: {rows:?}");
                    }
                    assert!(rows.iter().all(|&(y, n)| y == high || y == low || n <= 5));
                    assert!(rows.iter().all(|&(y, _)| (high..=low).contains(&y)));
                }
            }
        }
    }
}

/// The topmost row of the white peak marker in column `x`.
fn marker_row(frame: &VideoFrame, x: usize) -> Option<usize> {
    (0..H).find(|&y| pixel(frame, x, y) == [255, 255, 255, 255])
}

#[test]
fn the_meter_holds_the_peak_of_a_sine_then_lets_it_fall() {
    // 750 Hz: 64 samples a period, so every buffer's sample peak is the amplitude.
    let mut src = source(Wave::Sine, 750.0, 0.5);
    let mut scope = AudioScope::new(AudioScopeConfig {
        style: ScopeStyle::Meter,
        ..AudioScopeConfig::default()
    })
    .unwrap();
    let sink = video_sink();
    common::connect(&src.output(), &scope.input());
    connect_video(&scope.output(), &sink);
    start(&mut src, FPS);
    start(&mut scope, FPS);
    let db = 20.0 * 0.5f64.log10();
    let row = level_row(db, H as u32, -60.0) as usize;
    assert_eq!(row, 36);
    // Left channel's lane is x in 0..320, the bar inset by 40.
    let x = W / 4;
    let frame = run_ticks(&mut src, &mut scope, &sink, 0..30);
    assert_eq!(marker_row(&frame, x), Some(row));
    assert_eq!(marker_row(&frame, 3 * W / 4), Some(row), "right channel");
    assert_eq!(alpha(&frame, x, row - 1), 0, "nothing above the peak");
    assert_ne!(alpha(&frame, x, H - 1), 0, "the bar below it");
    assert_eq!(alpha(&frame, 10, H - 1), 0, "the inset");

    src.set_wave(Wave::Silence);
    let last_sine_ns = FPS.frame_time_ns(29);
    // Held for a second: the marker stays, the bar is gone.
    let frame = run_ticks(&mut src, &mut scope, &sink, 30..55);
    assert_eq!(marker_row(&frame, x), Some(row));
    assert_eq!(alpha(&frame, x, H - 1), 0, "silence: no bar");
    // Then it falls 20 dB/s.
    let frame = run_ticks(&mut src, &mut scope, &sink, 55..75);
    let after = (FPS.frame_time_ns(74) - last_sine_ns) as f64 / 1e9;
    let held = db - 20.0 * (after - 1.0);
    let expected = level_row(held, H as u32, -60.0) as usize;
    let got = marker_row(&frame, x).unwrap();
    assert!(
        got.abs_diff(expected) <= 1,
        "marker at {got}, expected {expected} ({held} dB)"
    );
    assert!(got > row + 40, "{got}");
    let peaks: Vec<f64> = scope.held_peaks().collect();
    assert!((peaks[0] - held).abs() < 0.8, "{peaks:?} vs {held}");
}

#[test]
fn nan_and_infinity_are_drawn_as_zero_and_counted() {
    let mut hand = HandSource::new();
    let (mut spectrum, spectrum_sink) = spectrum_rig(SpectrumConfig::default(), &hand.out.handle());
    let mut scope = AudioScope::new(AudioScopeConfig::default()).unwrap();
    let scope_sink = video_sink();
    common::connect(&hand.out.handle(), &scope.input());
    connect_video(&scope.output(), &scope_sink);
    start(&mut scope, FPS);
    let mut samples: Vec<f32> = (0..3200)
        .map(|i| (0.5 * (i as f64 * 0.13).sin()) as f32)
        .collect();
    samples[100] = f32::NAN;
    samples[2001] = f32::INFINITY;
    samples[3199] = f32::NEG_INFINITY;
    hand.send_samples(samples);
    run(&mut spectrum, tick(FPS, 0));
    run(&mut scope, tick(FPS, 0));
    for stats in [spectrum.stats().snapshot(), scope.stats().snapshot()] {
        assert_eq!(stats.non_finite_samples, 3, "{stats:?}");
        assert_eq!((stats.frames, stats.audio_frames), (1, 1600), "{stats:?}");
    }
    assert!(spectrum.band_levels().iter().all(|l| !l.is_nan()));
    assert!(spectrum.band_levels().iter().any(|l| l.is_finite()));
    assert!(spectrum_sink.latest().is_some() && scope_sink.latest().is_some());
}

#[test]
fn bad_properties_name_the_handler_and_the_property() {
    let err = |e: streamlib_handlers_audio::AudioError| e.to_string();
    let cases = [
        (
            err(Spectrum::new(SpectrumConfig {
                bands: 0,
                ..SpectrumConfig::default()
            })
            .unwrap_err()),
            "`bands`",
        ),
        (
            err(Spectrum::new(SpectrumConfig {
                fft_size: 1000,
                ..SpectrumConfig::default()
            })
            .unwrap_err()),
            "`fft-size`",
        ),
        (
            err(Spectrum::new(SpectrumConfig {
                threshold: f64::NAN,
                ..SpectrumConfig::default()
            })
            .unwrap_err()),
            "`threshold`",
        ),
        (
            err(Spectrum::new(SpectrumConfig {
                width: 0,
                ..SpectrumConfig::default()
            })
            .unwrap_err()),
            "`width`",
        ),
    ];
    for (message, property) in cases {
        assert!(
            message.starts_with("spectrum:") && message.contains(property),
            "{message}"
        );
    }
    let message = err(AudioScope::new(AudioScopeConfig {
        window_s: 0.0,
        ..AudioScopeConfig::default()
    })
    .unwrap_err());
    assert!(
        message.starts_with("audioscope:") && message.contains("`window`"),
        "{message}"
    );
}

#[test]
fn a_format_change_starts_over_and_a_background_fills_the_frame() {
    let out = OutputPort::<AudioBuffer>::new("audio", MemoryCaps::CPU);
    let (mut spectrum, sink) = spectrum_rig(
        SpectrumConfig {
            background: [10, 20, 30, 255],
            ..SpectrumConfig::default()
        },
        &out.handle(),
    );
    let stereo = AudioBuffer::new(PooledBuf::from_vec(vec![0.0; 3200]), 2, 48_000, 0).unwrap();
    out.write(stereo);
    run(&mut spectrum, tick(FPS, 0));
    let mono = AudioBuffer::new(PooledBuf::from_vec(vec![0.0; 1470]), 1, 44_100, 0).unwrap();
    out.write(mono);
    run(&mut spectrum, tick(FPS, 1));
    let stats = spectrum.stats().snapshot();
    assert_eq!((stats.restarts, stats.frames), (1, 2), "{stats:?}");
    let frame = sink.latest().unwrap();
    assert!(
        frame
            .cpu_bytes()
            .unwrap()
            .chunks_exact(4)
            .all(|p| p == [10, 20, 30, 255]),
        "silence on an opaque background: the background everywhere"
    );
}
