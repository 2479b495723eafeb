//! `webrtcsrc` from pipeline text: aiortc publishes by WHIP into
//! `webrtcsrc whip-address=127.0.0.1:0 ! filewriter`, found through the element's report
//! (`whip_url`), and FFmpeg reads the file back (video size and frames, the audio track,
//! the quadrant colours); the property checks refuse what they must, naming the property.
#![cfg(all(feature = "webrtc", feature = "file"))]
#![allow(clippy::print_stderr, reason = "the test reports its figures")]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use streamlib_clock::{Rational, SoftwareClock};
use streamlib_launch::{Policy, Registry, build, parse, validate_with};
use streamlib_runtime::StreamRuntime;
use streamlib_test_support::media::{probe, probe_f64, temp_dir};

fn publisher() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../streamlib-webrtc/tests/whip_publish.py")
}

/// The RGB of the pixel at `x`,`y` of the frame at `at_s` seconds of `file`, by FFmpeg.
fn pixel(file: &Path, at_s: f64, x: u32, y: u32) -> [u8; 3] {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &at_s.to_string(), "-i"])
        .arg(file)
        .args([
            "-frames:v",
            "1",
            "-vf",
            &format!("format=rgb24,crop=1:1:{x}:{y}"),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ])
        .output()
        .unwrap_or_else(|e| panic!("ffmpeg: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    [out.stdout[0], out.stdout[1], out.stdout[2]]
}

#[test]
fn aiortc_publishes_into_a_file_that_ffprobe_reads() {
    let dir = temp_dir("launch-webrtc-src", "file");
    let file = dir.join("out.mkv");
    let text = format!(
        "webrtcsrc name=w whip-address=127.0.0.1:0 ! filewriter name=f location={} w.audio ! f.audio",
        file.display()
    );
    let desc = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let clock = SoftwareClock::new(Rational::fps(30));
    let mut built = build(&Registry::builtin(), &desc, StreamRuntime::new(clock))
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    built.runtime.start().unwrap_or_else(|e| panic!("{e}"));
    let report = || {
        built
            .controls
            .report("w")
            .unwrap_or_else(|| panic!("webrtcsrc has no report"))
    };
    let url = report()["whip_url"].as_str().unwrap_or_default().to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/whip"),
        "{url}"
    );
    let out = Command::new("python3")
        .arg(publisher())
        .args([url.as_str(), "5", "--codec", "h264"])
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("python3 (aiortc): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("\"post\": 201") && stdout.contains("\"delete\": 200"),
        "{stdout}"
    );
    let start = Instant::now();
    while report()["sessions_ended"] != 1 {
        assert!(start.elapsed() < Duration::from_secs(10), "{}", report());
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = report();
    built.runtime.stop().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r["video_codec"], "h264", "{r}");
    assert_eq!(r["video_size"], "320x240", "{r}");

    assert_eq!(probe(&file, "v:0", "stream=width"), ["320"]);
    assert_eq!(probe(&file, "v:0", "stream=height"), ["240"]);
    assert_eq!(probe(&file, "a:0", "stream=sample_rate"), ["48000"]);
    assert_eq!(probe(&file, "a:0", "stream=channels"), ["2"]);
    let frames = probe(&file, "v:0", "frame=pts_time").len() as u64;
    let audio_s = probe(&file, "a:0", "frame=pts_time").len() as f64 * 0.02;
    let duration = probe_f64(&file, "", "format=duration");
    let published = r["frames_published"].as_u64().unwrap_or(0);
    // 5 s sent at 30 fps: most of it must be in the file, whatever the machine's load.
    assert!(published >= 60, "{r}");
    assert!(
        frames + 2 >= published && frames > 0,
        "{frames} frames in the file, {published} published"
    );
    assert!(audio_s > 2.0, "{audio_s} s of audio frames in the file");
    eprintln!(
        "webrtcsrc: {published} frames published, {frames} in the file ({duration:.2} s): {r}"
    );
    for (x, y, colour) in [
        (80, 90, [230u8, 20, 20]),
        (240, 60, [20, 210, 20]),
        (80, 180, [20, 20, 230]),
        (240, 180, [235, 235, 235]),
    ] {
        let got = pixel(&file, 2.0, x, y);
        for c in 0..3 {
            assert!(
                (i32::from(got[c]) - i32::from(colour[c])).abs() <= 40,
                "{x},{y}: {got:?}, sent {colour:?}"
            );
        }
    }
}

#[test]
fn size_scales_every_picture_and_mono_audio_is_one_channel() {
    let dir = temp_dir("launch-webrtc-src", "size");
    let file = dir.join("small.mkv");
    let text = format!(
        "webrtcsrc name=w whip-address=127.0.0.1:0 size=160x120 audio-channels=1 ! \
         filewriter name=f location={} w.audio ! f.audio",
        file.display()
    );
    let desc = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let clock = SoftwareClock::new(Rational::fps(30));
    let mut built = build(&Registry::builtin(), &desc, StreamRuntime::new(clock))
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    // The size is negotiated before any publisher: the graph already says it.
    let video_edge = built
        .graph
        .edges
        .iter()
        .find(|e| e.caps.starts_with("video"));
    let caps = video_edge.map(|e| e.caps.clone()).unwrap_or_default();
    assert!(caps.contains("160x120"), "{caps}");
    built.runtime.start().unwrap_or_else(|e| panic!("{e}"));
    let report = || {
        built
            .controls
            .report("w")
            .unwrap_or_else(|| panic!("no report"))
    };
    let url = report()["whip_url"].as_str().unwrap_or_default().to_owned();
    let out = Command::new("python3")
        .arg(publisher())
        .args([url.as_str(), "3"])
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("python3 (aiortc): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\"delete\": 200"), "{stdout}");
    let start = Instant::now();
    while report()["sessions_ended"] != 1 {
        assert!(start.elapsed() < Duration::from_secs(10), "{}", report());
        std::thread::sleep(Duration::from_millis(50));
    }
    built.runtime.stop().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(probe(&file, "v:0", "stream=width"), ["160"]);
    assert_eq!(probe(&file, "v:0", "stream=height"), ["120"]);
    assert_eq!(probe(&file, "a:0", "stream=channels"), ["1"]);
    let got = pixel(&file, 1.5, 120, 90);
    for (c, sent) in [235i32, 235, 235].into_iter().enumerate() {
        assert!(
            (i32::from(got[c]) - sent).abs() <= 40,
            "white quadrant: {got:?}"
        );
    }
}

#[test]
fn properties_are_checked_naming_the_one_at_fault() {
    support::assert_refused_naming(&[
        ("webrtcsrc whip-address=nowhere ! null", "whip-address"),
        (
            "webrtcsrc whip-address=example.com:80 ! null",
            "whip-address",
        ),
        ("webrtcsrc size=0x10 ! null", "size"),
        ("webrtcsrc audio-channels=3 ! null", "audio-channels"),
    ]);
    // The agent's policy keeps it on loopback unless the network is allowed.
    let desc =
        parse("webrtcsrc whip-address=0.0.0.0:8890 ! null").unwrap_or_else(|e| panic!("{e}"));
    let err = validate_with(&Registry::builtin(), &desc, &Policy::confined())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("whip-address") && err.contains("loopback"),
        "{err}"
    );
}
