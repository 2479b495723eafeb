//! `audioresample` from pipeline text, and inserted by negotiation where a link's sample
//! rates differ.
#![cfg(feature = "audio")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod support;

use streamlib_clock::{FreeRunningClock, Rational};
use streamlib_launch::{Registry, build, parse};
use streamlib_runtime::StreamRuntime;

fn built(text: &str, ticks: u64) -> streamlib_launch::BuiltPipeline {
    let desc = parse(text).unwrap();
    let clock = FreeRunningClock::new(Rational::fps(30)).with_limit(ticks);
    build(&Registry::builtin(), &desc, StreamRuntime::new(clock)).unwrap()
}

#[test]
fn audioresample_from_text_keeps_the_level_at_the_new_rate() {
    let text = "audiotestsrc rate=44100 freq=1000 volume=0.5 ! audioresample rate=48000 ! loudness";
    let mut built = built(text, 90);
    assert_eq!(built.graph.edges[0].caps, "audio 44100Hz 2ch");
    assert_eq!(built.graph.edges[1].caps, "audio 48000Hz 2ch");
    let stats = built.runtime.run().unwrap();
    for stream in &stats.streams {
        assert_eq!(stream.errors, 0, "{}", stream.id);
    }
    let report = built.controls.report("loudness0").unwrap();
    // -6 dBFS in both channels: -6 LUFS, as at 44.1 kHz.
    let integrated = report["integrated_lufs"].as_f64().unwrap();
    assert!((integrated + 6.0).abs() < 0.1, "{report}");
    // Three seconds at 48 kHz, less the filter's delay (under 2 ms).
    let frames = report["frames"].as_u64().unwrap();
    assert!((143_800..=144_000).contains(&frames), "{report}");
    let resample = built.controls.report("audioresample0").unwrap();
    assert_eq!(resample["non_finite_samples"], 0, "{resample}");
    assert_eq!(resample["discontinuities"], 0, "{resample}");
}

#[cfg(feature = "video")]
#[test]
fn negotiation_inserts_audioresample_where_sample_rates_differ() {
    // The resampler looks 64 input samples (1.5 ms) ahead: the mixer waits 20 ms for it.
    let text = "audiotestsrc rate=44100 ! audiomixer inputs=1 latency=20 ! null";
    let mut built = built(text, 30);
    let edge = built
        .graph
        .edges
        .iter()
        .find(|e| e.to == "audiomixer0.sink_0")
        .unwrap();
    assert_eq!(edge.converters.len(), 1, "{:?}", built.graph);
    assert!(
        edge.converters[0].starts_with("audioresample"),
        "{:?}",
        built.graph
    );
    assert_eq!(edge.caps, "audio 48000Hz 2ch");
    let node = built
        .graph
        .nodes
        .iter()
        .find(|n| n.handler == "audioresample")
        .unwrap();
    assert!(
        node.inserted.as_deref().unwrap().starts_with("sample rate"),
        "{node:?}"
    );
    let stats = built.runtime.run().unwrap();
    for stream in &stats.streams {
        assert_eq!(stream.errors, 0, "{}", stream.id);
    }
    let mixer = built.controls.report("audiomixer0").unwrap();
    assert!(
        mixer["inputs"][0]["mixed"].as_u64().unwrap() >= 20,
        "{mixer}"
    );
}

#[cfg(feature = "video")]
#[test]
fn rate_and_channels_differing_insert_both_converters() {
    let text = "audiotestsrc rate=44100 channels=1 ! audiomixer inputs=1 ! null";
    let built = built(text, 1);
    let edge = built
        .graph
        .edges
        .iter()
        .find(|e| e.to == "audiomixer0.sink_0")
        .unwrap();
    let mut handlers: Vec<_> = edge
        .converters
        .iter()
        .map(|c| c.split('-').next().unwrap())
        .collect();
    handlers.sort_unstable();
    assert_eq!(
        handlers,
        ["audioconvert", "audioresample"],
        "{:?}",
        built.graph
    );
    assert_eq!(edge.caps, "audio 48000Hz 2ch");
}

#[test]
fn bad_resample_properties_fail_at_build_naming_them() {
    support::assert_refused_naming(&[
        ("audiotestsrc ! audioresample rate=5", "rate"),
        ("audiotestsrc ! audioresample rate=-1", "rate"),
        ("audiotestsrc ! audioresample rate=10000000", "rate"),
        ("audiotestsrc ! audioresample quality=ultra", "quality"),
        ("audiotestsrc ! audioresample drift=maybe", "drift"),
    ]);
}
