//! `spectrum` and `audioscope` from pipeline text: into `null`, and laid over a test pattern
//! through `compositor`, where their transparent background lets the picture through.
#![cfg(all(feature = "audio", feature = "video"))]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod support;

use streamlib_clock::{FreeRunningClock, Rational};
use streamlib_handlers_audio::{Spectrum, SpectrumConfig};
use streamlib_handlers_video::FrameCapture;
use streamlib_launch::{Registry, build, parse};
use streamlib_runtime::StreamRuntime;

/// The built-ins plus `capture`, which keeps the latest frame.
fn with_capture() -> (Registry, support::Captures) {
    support::with_capture("keeps the latest frame for the test", || {
        FrameCapture::new(0..0).keep_latest()
    })
}

#[test]
fn scopes_end_in_null_one_frame_per_tick() {
    for text in [
        "audiotestsrc freq=1000 ! spectrum ! null",
        "audiotestsrc ! spectrum size=1280x720 bands=32 fft-size=2048 background=000000ff ! null",
        "audiotestsrc wave=square ! audioscope ! null",
        "audiotestsrc channels=1 ! audioscope style=dots window=50 ! null",
        "audiotestsrc ! audioscope style=meter size=64x240 ! null",
    ] {
        let desc = parse(text).unwrap();
        let clock = FreeRunningClock::new(Rational::fps(30)).with_limit(30);
        let mut built = build(&Registry::builtin(), &desc, StreamRuntime::new(clock)).unwrap();
        let video = built.graph.edges.last().unwrap();
        assert_eq!(video.to, "null0.video", "{text}");
        assert!(
            video.caps.starts_with("video rgba8"),
            "{text}: {}",
            video.caps
        );
        let stats = built.runtime.run().unwrap();
        for stream in &stats.streams {
            assert_eq!(stream.errors, 0, "{text}: {}", stream.id);
        }
        let scope = if text.contains("spectrum") {
            "spectrum0"
        } else {
            "audioscope0"
        };
        let report = built.controls.report(scope).expect("a scope report");
        assert!(report["frames"].as_u64().unwrap() >= 29, "{text}: {report}");
        assert_eq!(report["non_finite_samples"], 0, "{text}");
        let null = stats.stream("null0").unwrap();
        assert!(null.items_in >= 29, "{text}: {null:?}");
    }
}

#[test]
fn a_spectrum_overlays_a_picture_through_the_compositor() {
    let text = "compositor name=c size=320x180 layers=2 ! capture  \
                testpattern size=320x180 pattern=black moving-box=false ! c.layer0  \
                audiotestsrc freq=1000 volume=0.5 ! spectrum size=320x180 ! c.layer1";
    let (registry, handles) = with_capture();
    let desc = parse(text).unwrap();
    let clock = FreeRunningClock::new(Rational::fps(30)).with_limit(15);
    let mut built = build(&registry, &desc, StreamRuntime::new(clock)).unwrap();
    let stats = built.runtime.run().unwrap();
    for stream in &stats.streams {
        assert_eq!(stream.errors, 0, "{}", stream.id);
    }
    let frame = handles.lock().unwrap()[0]
        .latest()
        .expect("a composited frame");
    let px = |x: usize, y: usize| {
        let i = (y * 320 + x) * 4;
        <[u8; 4]>::try_from(&frame.cpu_bytes().unwrap()[i..i + 4]).unwrap()
    };
    // The band holding 1 kHz: its bar shows at the bottom, green (the lowest zone).
    let spectrum = Spectrum::new(SpectrumConfig::default()).unwrap();
    let band = spectrum
        .band_edges(48_000)
        .iter()
        .position(|&(lo, hi)| (lo..hi).contains(&1000.0))
        .unwrap();
    let x = band * 320 / 64;
    assert_eq!(px(x, 179), [40, 200, 80, 255], "the bar at x = {x}");
    // Above the bars, and beside them far from the tone, the black picture shows through.
    assert_eq!(px(x, 0), [0, 0, 0, 255]);
    assert_eq!(px(300, 179), [0, 0, 0, 255]);
}

#[test]
fn scope_properties_are_checked_and_live_ones_apply() {
    support::assert_refused_naming(&[
        ("audiotestsrc ! spectrum bands=0 ! null", "bands"),
        ("audiotestsrc ! spectrum fft-size=1000 ! null", "fft-size"),
        ("audiotestsrc ! spectrum threshold=3 ! null", "threshold"),
        ("audiotestsrc ! audioscope style=bars ! null", "style"),
        ("audiotestsrc ! audioscope size=0x10 ! null", "size"),
    ]);
    let desc = parse("audiotestsrc ! spectrum ! null  audiotestsrc ! audioscope ! null").unwrap();
    let clock = FreeRunningClock::new(Rational::fps(30)).with_limit(10);
    let mut built = build(&Registry::builtin(), &desc, StreamRuntime::new(clock)).unwrap();
    assert!(built.controls.set("spectrum0", "threshold", "-90").is_ok());
    assert!(built.controls.set("spectrum0", "threshold", "5").is_err());
    assert!(built.controls.set("audioscope0", "style", "meter").is_ok());
    assert!(built.controls.set("audioscope0", "style", "bars").is_err());
    let stats = built.runtime.run().unwrap();
    for stream in &stats.streams {
        assert_eq!(stream.errors, 0, "{}", stream.id);
    }
}

#[test]
fn the_overlay_example_pipeline_runs() {
    // examples/audio_meter_overlay.rs's pipeline.
    let text = "compositor name=c size=1280x720 layers=3 layer1.y=360 layer2.x=1152 ! null  \
                testpattern size=1280x720 ! c.layer0  \
                audiotestsrc wave=sweep volume=0.5 ! spectrum size=1280x360 bands=64 ! c.layer1  \
                audiotestsrc wave=sine freq=1000 volume=0.5 ! audioscope style=meter size=128x360 ! c.layer2";
    let desc = parse(text).unwrap();
    let clock = FreeRunningClock::new(Rational::fps(30)).with_limit(10);
    let mut built = build(&Registry::builtin(), &desc, StreamRuntime::new(clock)).unwrap();
    let stats = built.runtime.run().unwrap();
    for stream in &stats.streams {
        assert_eq!(stream.errors, 0, "{}", stream.id);
    }
    for scope in ["spectrum0", "audioscope0"] {
        let report = built.controls.report(scope).unwrap();
        assert!(report["frames"].as_u64().unwrap() >= 9, "{scope}: {report}");
    }
}
