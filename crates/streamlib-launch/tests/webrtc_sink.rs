//! `testpattern ! webrtcsink whep-address=127.0.0.1:0` from pipeline text: the bound URL is in
//! the handler's report (`whep_url`), an aiortc viewer watches the bars through it, and the
//! registry refuses what the sink would (bad bitrates, a non-loopback address an agent's
//! policy forbids), naming the property.
#![cfg(all(feature = "webrtc", feature = "video"))]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use streamlib_clock::{Rational, SoftwareClock};
use streamlib_launch::{Policy, Registry, build, parse, validate_with};
use streamlib_runtime::StreamRuntime;

/// The aiortc viewer of streamlib-webrtc's tests.
const VIEWER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../streamlib-webrtc/tests/whep_client.py"
);

#[test]
fn webrtcsink_from_text_reports_its_url_and_serves_aiortc() {
    let text = "testpattern size=640x360 moving-box=false ! webrtcsink whep-address=127.0.0.1:0";
    let desc = parse(text).unwrap();
    let clock = SoftwareClock::new(Rational::fps(30));
    let mut built = build(&Registry::builtin(), &desc, StreamRuntime::new(clock)).unwrap();
    // Built, not started: nothing bound yet.
    assert_eq!(
        built.controls.report("webrtcsink0").unwrap()["whep_url"],
        serde_json::Value::Null
    );
    built.runtime.start().unwrap();
    let report = built.controls.report("webrtcsink0").unwrap();
    let url = report["whep_url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/whep"),
        "{url}"
    );
    assert!(!url.ends_with(":0/whep"), "the bound port, not 0: {url}");

    // max-bitrate is live: the target follows at once (the encoder within a second).
    built
        .controls
        .set("webrtcsink0", "max-bitrate", "1500000")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while built.controls.report("webrtcsink0").unwrap()["target_bitrate_bps"] != 1_500_000
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let report = built.controls.report("webrtcsink0").unwrap();
    assert_eq!(report["target_bitrate_bps"], 1_500_000, "{report}");

    let out = Command::new("python3")
        .args([VIEWER, &url, "--frames", "30", "--no-audio"])
        .output()
        .expect("python3 with aiortc (cargo xtask setup)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{e}: {stdout} {}", String::from_utf8_lossy(&out.stderr)));
    assert!(result["frames"].as_u64() >= Some(30), "{result}");
    assert_eq!(result["width"], 640, "{result}");
    // The white bar and the blue bar, within a lossy codec's error.
    let bars = &result["bars"];
    for (i, want) in [(0, [191, 191, 191]), (6, [0, 0, 191])] {
        for (c, want) in want.iter().enumerate() {
            let got = bars[i][c].as_i64().unwrap();
            assert!((got - want).abs() <= 24, "bar {i}: {bars}");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let report = loop {
        let report = built.controls.report("webrtcsink0").unwrap();
        if report["viewers"] == 0 || Instant::now() > deadline {
            break report;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(report["viewers"], 0, "{report}");
    assert!(report["frames_encoded"].as_u64().unwrap() >= 30, "{report}");
    assert!(report["frames_idle"].as_u64().unwrap() > 0, "{report}");
    let target = report["target_bitrate_bps"].as_u64().unwrap();
    assert!((300_000..=1_500_000).contains(&target), "{report}");
    built.runtime.stop().unwrap();
    assert_eq!(
        built.controls.report("webrtcsink0").unwrap()["whep_url"],
        serde_json::Value::Null,
        "a stopped sink serves nothing"
    );
}

#[test]
fn webrtcsink_properties_are_checked_by_name() {
    support::assert_refused_naming(&[
        (
            "testpattern ! webrtcsink whep-address=127.0.0.1:0 min-bitrate=5000000 max-bitrate=1000000",
            "min-bitrate",
        ),
        (
            "testpattern ! webrtcsink whep-address=127.0.0.1:0 bitrate=5000",
            "bitrate",
        ),
        (
            "testpattern ! webrtcsink whep-address=nowhere",
            "whep-address",
        ),
        ("testpattern ! webrtcsink codec=h265", "codec"),
        ("testpattern ! webrtcsink max-viewers=0", "max-viewers"),
    ]);
}

#[test]
fn an_agent_policy_keeps_webrtcsink_on_loopback() {
    let desc = parse("testpattern ! webrtcsink whep-address=0.0.0.0:8889").unwrap();
    match validate_with(&Registry::builtin(), &desc, &Policy::confined()) {
        Ok(()) => panic!("listening on every interface was accepted under a confined policy"),
        Err(e) => assert!(e.to_string().contains("whep-address"), "{e}"),
    }
    let desc = parse("testpattern ! webrtcsink whep-address=127.0.0.1:0").unwrap();
    validate_with(&Registry::builtin(), &desc, &Policy::confined()).unwrap();
}

/// Audio at 44.1 kHz: negotiation inserts `audioresample` before the sink's 48 kHz input, and
/// the viewer hears Opus at 48 kHz.
#[cfg(feature = "audio")]
#[test]
fn webrtcsink_audio_at_another_rate_is_resampled_by_negotiation() {
    let text = "webrtcsink name=w whep-address=127.0.0.1:0  \
                testpattern size=320x240 ! w.video  \
                audiotestsrc rate=44100 ! w.audio";
    let desc = parse(text).unwrap();
    let clock = SoftwareClock::new(Rational::fps(30));
    let mut built = build(&Registry::builtin(), &desc, StreamRuntime::new(clock)).unwrap();
    let edge = built
        .graph
        .edges
        .iter()
        .find(|e| e.to == "w.audio")
        .unwrap_or_else(|| panic!("{:?}", built.graph));
    assert!(
        edge.converters
            .iter()
            .any(|c| c.starts_with("audioresample")),
        "{:?}",
        built.graph
    );
    assert!(edge.caps.starts_with("audio 48000Hz"), "{}", edge.caps);
    built.runtime.start().unwrap();
    let url = built.controls.report("w").unwrap()["whep_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = Command::new("python3")
        .args([VIEWER, &url, "--frames", "30"])
        .output()
        .expect("python3 with aiortc (cargo xtask setup)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{e}: {stdout} {}", String::from_utf8_lossy(&out.stderr)));
    assert!(
        result["audio_frames"].as_u64().unwrap_or(0) > 10,
        "{result}"
    );
    assert_eq!(result["audio_rate"], 48000, "{result}");
    let report = built.controls.report("w").unwrap();
    assert!(report["audio_packets"].as_u64().unwrap() > 10, "{report}");
    built.runtime.stop().unwrap();
}
