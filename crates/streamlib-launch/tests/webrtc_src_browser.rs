//! A real browser publishes by WHIP: headless Chromium with its fake camera (a green-ish
//! picture with a moving pacman and a timer) and fake microphone (a beep) opens the page
//! `webrtcsrc` serves, which POSTs its offer to `/whip`; the pipeline
//! `webrtcsrc whip-address=127.0.0.1:0 ! filewriter location=….mp4` writes a file that
//! ffprobe reads with video and audio, and the picture moves between frames.
#![cfg(all(feature = "webrtc", feature = "file"))]
#![allow(clippy::print_stderr, reason = "the test reports its figures")]

use std::process::Command;
use std::time::{Duration, Instant};

use streamlib_clock::{Rational, SoftwareClock};
use streamlib_launch::{Registry, build, parse};
use streamlib_runtime::StreamRuntime;
use streamlib_test_support::browser::{Browser, skip};
use streamlib_test_support::media::{probe, temp_dir};

/// The file's frame at `at_s` seconds as RGB24 (`width`x`height`).
fn frame(file: &std::path::Path, at_s: f64) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &at_s.to_string(), "-i"])
        .arg(file)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap_or_else(|e| panic!("ffmpeg: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn chromium_publishes_its_fake_camera_into_an_mp4_that_ffprobe_reads() {
    if skip("chromium_publishes_its_fake_camera_into_an_mp4_that_ffprobe_reads") {
        return;
    }
    publish_and_check("vp8");
}

#[test]
fn chromium_publishes_h264_when_asked() {
    if skip("chromium_publishes_h264_when_asked") {
        return;
    }
    publish_and_check("h264");
}

/// Publishes Chromium's fake camera and microphone as `codec` for four seconds and checks the
/// file.
fn publish_and_check(codec: &str) {
    let dir = temp_dir("launch-webrtc-src", &format!("browser-{codec}"));
    let file = dir.join("camera.mp4");
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
            .unwrap_or_else(|| panic!("no report"))
    };
    let url = report()["whip_url"].as_str().unwrap_or_default().to_owned();
    let page = format!("{}?start&codec={codec}", url.trim_end_matches("whip"));

    let browser = Browser::start().unwrap_or_else(|e| panic!("{e}"));
    browser.goto(&page).unwrap_or_else(|e| panic!("{e}"));
    let state = browser.wait_for(
        "window.streamlibWhip && (window.streamlibWhip.state === 'publishing' || window.streamlibWhip.state === 'failed') && window.streamlibWhip.state",
        Duration::from_secs(30),
    );
    let state = state.unwrap_or_else(|e| panic!("{e}; {}", report()));
    assert_eq!(
        state,
        "publishing",
        "{:?}",
        browser.eval("return window.streamlibWhip.error")
    );
    // Four seconds of camera after the first frame.
    let start = Instant::now();
    while report()["frames_published"].as_u64().unwrap_or(0) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no frame: {}",
            report()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(4));
    // The page's Stop: DELETE of its session.
    browser
        .eval_async("const done = arguments[arguments.length - 1]; window.streamlibWhip.stop().then(() => done(true));")
        .unwrap_or_else(|e| panic!("{e}"));
    let start = Instant::now();
    while report()["sessions_ended"] != 1 {
        assert!(start.elapsed() < Duration::from_secs(10), "{}", report());
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = report();
    drop(browser);
    built.runtime.stop().unwrap_or_else(|e| panic!("{e}"));
    eprintln!("chromium published: {r}");
    let published = r["frames_published"].as_u64().unwrap_or(0);
    assert!(published >= 30, "{r}");
    assert_eq!(r["refused_bad"], 0, "{r}");
    assert_eq!(r["video_codec"], codec, "{r}");
    // Loopback loses nothing, but a loaded machine may drop a datagram now and then.
    assert!(r["decode_errors"].as_u64().unwrap_or(99) <= 3, "{r}");

    // Chromium's fake camera is 640x480 unless constrained; whatever it sent, the file has it.
    let size = r["video_size"].as_str().unwrap_or_default().to_owned();
    let (w, h) = size.split_once('x').unwrap_or_else(|| panic!("{r}"));
    assert_eq!(probe(&file, "v:0", "stream=width"), [w]);
    assert_eq!(probe(&file, "v:0", "stream=height"), [h]);
    let frames = probe(&file, "v:0", "frame=pts_time").len() as u64;
    assert!(
        frames >= 30 && frames + 2 >= published,
        "{frames} frames in the file of {published}"
    );
    assert_eq!(probe(&file, "a:0", "stream=sample_rate"), ["48000"]);
    assert!(
        !probe(&file, "a:0", "frame=pts_time").is_empty(),
        "no audio in the file"
    );
    // The pacman moves and the timer runs: two frames a second apart differ.
    let (a, b) = (frame(&file, 0.5), frame(&file, 1.5));
    assert_eq!(a.len(), b.len());
    let changed = a
        .iter()
        .zip(&b)
        .filter(|(x, y)| x.abs_diff(**y) > 40)
        .count();
    assert!(
        changed > a.len() / 500,
        "only {changed} of {} bytes changed in a second",
        a.len()
    );
    // The fake camera's picture is mostly green-ish: green leads on average.
    let mean = |c: usize| {
        a.iter()
            .skip(c)
            .step_by(3)
            .map(|&v| u64::from(v))
            .sum::<u64>()
            / (a.len() as u64 / 3)
    };
    assert!(
        mean(1) > mean(0) && mean(1) > mean(2),
        "mean rgb {} {} {}",
        mean(0),
        mean(1),
        mean(2)
    );
}
