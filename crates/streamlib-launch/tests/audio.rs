//! `audiotestsrc ! volume ! loudness` from pipeline text: the meter's report reads the
//! source's level minus the volume's dB, and live properties are checked like launch ones.
#![cfg(feature = "audio")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod support;

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
    support::assert_refused_naming(&[
        ("audiotestsrc rate=0", "rate"),
        ("audiotestsrc channels=100", "channels"),
        ("audiotestsrc wave=triangle", "wave"),
        ("audiotestsrc ! volume volume=11", "volume"),
    ]);
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

#[cfg(feature = "video")]
#[test]
fn audiomixer_mixes_two_sources_from_text() {
    // `latency` gives inputs on other threads a margin; sink_2 is left unconnected.
    let text = "audiomixer name=mix inputs=3 latency=100 sink_1.volume=0.5 ! loudness ! null  \
                audiotestsrc freq=440 volume=0.4 ! mix.sink_0  \
                audiotestsrc freq=1000 volume=0.4 ! mix.sink_1";
    let desc = parse(text).unwrap();
    let clock = FreeRunningClock::new(Rational::fps(30)).with_limit(60);
    let mut built = build(&Registry::builtin(), &desc, StreamRuntime::new(clock)).unwrap();
    assert!(built.controls.set("mix", "sink_1.volume", "20").is_err());
    let stats = built.runtime.run().unwrap();
    for stream in &stats.streams {
        assert_eq!(stream.errors, 0, "{}", stream.id);
    }
    let report = built.controls.report("mix").expect("a mixer report");
    let inputs = report["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 3, "{report}");
    for input in &inputs[..2] {
        assert!(input["mixed"].as_u64().unwrap() >= 50, "{report}");
    }
    assert_eq!(
        inputs[2]["silent"], 0,
        "an unconnected input is not counted: {report}"
    );
    let loudness = built.controls.report("loudness0").unwrap();
    assert!(
        loudness["integrated_lufs"].as_f64().unwrap() > -20.0,
        "{loudness}"
    );
}

#[cfg(feature = "video")]
#[test]
fn audioconvert_bridges_channel_counts_written_out() {
    let text = "audiotestsrc channels=1 ! audioconvert channels=2 ! audiomixer inputs=1 ! null";
    let (graph, streams) = run_text(text, 30);
    let into_mixer = graph
        .edges
        .iter()
        .find(|e| e.to == "audiomixer0.sink_0")
        .unwrap();
    assert_eq!(into_mixer.caps, "audio 48000Hz 2ch");
    assert_eq!(graph.edges[0].caps, "audio 48000Hz 1ch");
    for stream in &streams {
        assert_eq!(stream.errors, 0, "{}", stream.id);
    }
    // With auto-convert off, a sample-rate mismatch fails, saying where (with it on,
    // audioresample is inserted: tests/audio_resample.rs).
    let desc = parse("audiotestsrc rate=44100 ! audiomixer inputs=1 ! null").unwrap();
    let clock = FreeRunningClock::new(Rational::fps(30)).with_limit(1);
    let negotiation = streamlib_launch::Negotiation {
        auto_convert: false,
        ..streamlib_launch::Negotiation::default()
    };
    let err = streamlib_launch::build_negotiated(
        &Registry::builtin(),
        &desc,
        StreamRuntime::new(clock),
        &streamlib_launch::Policy::default(),
        &negotiation,
    )
    .expect_err("44.1 kHz into a 48 kHz mixer")
    .to_string();
    assert!(
        err.contains("audiomixer0.sink_0") && err.contains("44100"),
        "{err}"
    );
}

#[test]
fn bad_convert_and_mixer_properties_fail_naming_them() {
    support::assert_refused_naming(&[
        ("audiotestsrc ! audioconvert channels=65", "channels"),
        ("audiomixer inputs=0", "inputs"),
        ("audiomixer inputs=1000", "inputs"),
        ("audiomixer channels=0", "channels"),
        ("audiomixer sink_0.volume=11", "sink_0.volume"),
    ]);
}

#[cfg(feature = "video")]
#[test]
fn negotiation_inserts_audioconvert_where_channel_counts_differ() {
    let text = "audiotestsrc channels=1 ! loudness ! audiomixer inputs=1 ! null";
    let (graph, streams) = run_text(text, 30);
    let edge = graph
        .edges
        .iter()
        .find(|e| e.to == "audiomixer0.sink_0")
        .unwrap();
    assert_eq!(edge.converters.len(), 1, "{graph:?}");
    assert!(edge.converters[0].starts_with("audioconvert"), "{graph:?}");
    assert_eq!(edge.caps, "audio 48000Hz 2ch");
    let node = graph
        .nodes
        .iter()
        .find(|n| n.handler == "audioconvert")
        .unwrap();
    assert!(
        node.inserted.as_deref().unwrap().starts_with("channels"),
        "{node:?}"
    );
    for stream in &streams {
        assert_eq!(stream.errors, 0, "{}", stream.id);
    }
}

#[test]
fn loudness_target_normalises_from_text_and_a_second_meter_agrees() {
    // -20 dBFS sine in both channels reads -20 LUFS: target -23 takes 3 dB off, inside the
    // first 1.5 s at 3 dB/s; the second meter reads the output.
    let text =
        "audiotestsrc freq=997 volume=0.1 ! loudness target=-23 name=norm ! loudness name=after";
    let desc = parse(text).unwrap();
    let clock = FreeRunningClock::new(Rational::fps(30)).with_limit(300);
    let mut built = build(&Registry::builtin(), &desc, StreamRuntime::new(clock)).unwrap();
    assert!(built.controls.set("norm", "target", "3").is_err());
    assert!(built.controls.set("norm", "max-gain", "10").is_ok());
    built.runtime.run().unwrap();
    let norm = built.controls.report("norm").unwrap();
    let after = built.controls.report("after").unwrap();
    let gain = norm["gain_db"].as_f64().unwrap();
    assert!((gain + 3.0).abs() < 0.05, "{norm}");
    let short_term = after["short_term_lufs"].as_f64().unwrap();
    assert!((short_term + 23.0).abs() < 0.1, "{after}");
    // Without a target the meter passes audio at unity.
    assert_eq!(after["gain_db"], 0.0);
}
