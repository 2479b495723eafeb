//! `audiotestsrc ! volume ! loudness` from pipeline text: the meter's report reads the
//! source's level minus the volume's dB, and live properties are checked like launch ones.
#![cfg(feature = "audio")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use streamlib_clock::{FreeRunningClock, Rational};
use streamlib_launch::{Registry, build, parse};
use streamlib_runtime::StreamRuntime;

#[test]
fn audio_pipeline_from_text_meters_the_gain() {
    let text = "audiotestsrc wave=sine freq=997 volume=0.5 ! volume db=-6 ! loudness";
    let desc = parse(text).unwrap();
    let clock = FreeRunningClock::new(Rational::fps(30)).with_limit(90);
    let mut built = build(&Registry::builtin(), &desc, StreamRuntime::new(clock)).unwrap();
    assert_eq!(built.graph.edges[0].caps, "audio 48000Hz 2ch");
    // Live properties are range-checked like launch-time ones.
    assert!(built.controls.set("audiotestsrc0", "freq", "1e9").is_err());
    assert!(built.controls.set("volume0", "db", "40").is_err());
    assert!(built.controls.set("audiotestsrc0", "wave", "ticks").is_ok());
    built.controls.set("audiotestsrc0", "wave", "sine").unwrap();
    let stats = built.runtime.run().unwrap();
    for stream in &stats.streams {
        assert_eq!(stream.errors, 0, "{}", stream.id);
    }
    let report = built
        .controls
        .report("loudness0")
        .expect("a loudness report");
    // -6 dBFS in both channels reads -6 LUFS; volume takes 6 dB more.
    let integrated = report["integrated_lufs"].as_f64().unwrap();
    assert!((integrated + 12.02).abs() < 0.1, "{report}");
    assert_eq!(report["non_finite_samples"], 0);
    assert!(report["true_peak_dbtp"].as_f64().unwrap() < -11.9);
}

#[test]
fn bad_audio_properties_fail_at_build_naming_them() {
    for (text, property) in [
        ("audiotestsrc rate=0", "rate"),
        ("audiotestsrc channels=100", "channels"),
        ("audiotestsrc wave=triangle", "wave"),
        ("audiotestsrc ! volume volume=11", "volume"),
    ] {
        let desc = parse(text).unwrap();
        let clock = FreeRunningClock::new(Rational::fps(30)).with_limit(1);
        let err = build(&Registry::builtin(), &desc, StreamRuntime::new(clock))
            .expect_err("refused")
            .to_string();
        assert!(err.contains(property), "{text}: {err}");
    }
}

/// Runs `text` for `ticks` ticks at 30 fps; the runtime's per-stream stats.
#[cfg(feature = "video")]
fn run_text(
    text: &str,
    ticks: u64,
) -> (streamlib_launch::Graph, Vec<streamlib_runtime::StreamStats>) {
    let desc = parse(text).unwrap();
    let clock = FreeRunningClock::new(Rational::fps(30)).with_limit(ticks);
    let mut built = build(&Registry::builtin(), &desc, StreamRuntime::new(clock)).unwrap();
    let stats = built.runtime.run().unwrap();
    (built.graph, stats.streams)
}

#[cfg(feature = "video")]
#[test]
fn null_ends_audio_and_video_branches() {
    for (text, port) in [
        ("audiotestsrc ! null", "null0.audio"),
        ("testpattern size=64x48 ! null", "null0.video"),
        ("audiotestsrc ! volume ! null", "null0.audio"),
    ] {
        let (graph, streams) = run_text(text, 30);
        assert_eq!(graph.edges.last().unwrap().to, port, "{text}");
        let null = streams.iter().find(|s| s.id == "null0").unwrap();
        assert_eq!(null.errors, 0, "{text}");
        // One buffer per tick (audio) or one frame per tick (video), none lost.
        assert!(null.items_in >= 29, "{text}: {null:?}");
    }
}
