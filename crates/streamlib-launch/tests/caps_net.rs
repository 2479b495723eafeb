//! `testpattern size=640x480 ! networksend destination=… sdp=…` with no format repeated: the
//! RGBA test pattern is converted to the sender's UYVY by negotiation, the sender takes
//! 640x480 and the clock's rate at start and writes them to its SDP, and FFmpeg reading that
//! SDP receives 640x480 frames.
#![cfg(all(feature = "net", feature = "video"))]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use streamlib_clock::{Rational, SoftwareClock};
use streamlib_launch::{Registry, build, parse};
use streamlib_runtime::StreamRuntime;

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("streamlib-caps-net-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `ffprobe`'s `stream=KEY` values of the video in `path`, in the order asked.
fn probe(path: &Path, keys: &str) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_frames"])
        .args(["-show_entries", &format!("stream={keys}")])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn ffmpeg_receives_a_testpattern_sent_with_no_format_repeated() {
    let dir = temp_dir("ffmpeg");
    let (sdp, received) = (dir.join("stream.sdp"), dir.join("received.mkv"));
    let port = free_port();
    let text = format!(
        "testpattern size=640x480 ! networksend destination=127.0.0.1:{port} sdp={}",
        sdp.display()
    );
    let desc = parse(&text).unwrap();
    let clock = SoftwareClock::new(Rational::fps(30));
    let mut built = build(&Registry::builtin(), &desc, StreamRuntime::new(clock))
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    // The RGBA pattern reaches the sender's UYVY input through an inserted converter, and
    // the link into the sender carries 640x480 at the clock's rate.
    let edge = built
        .graph
        .edges
        .iter()
        .find(|e| e.to == "networksend0.video")
        .unwrap_or_else(|| panic!("no edge into networksend0: {:?}", built.graph.edges));
    assert!(!edge.converters.is_empty(), "{edge:?}");
    assert_eq!(edge.caps, "video uyvy 640x480 30", "{edge:?}");
    // The SDP is written at start, from the negotiated caps; nothing before.
    assert!(!sdp.exists(), "the SDP was written before negotiation");
    built.runtime.start().unwrap();
    let sdp_text = std::fs::read_to_string(&sdp).unwrap();
    assert!(
        sdp_text.contains("width=640") && sdp_text.contains("height=480"),
        "{sdp_text}"
    );
    assert!(sdp_text.contains("exactframerate=30"), "{sdp_text}");

    let mut ffmpeg = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-protocol_whitelist", "file,udp,rtp"])
        .arg("-i")
        .arg(&sdp)
        .args(["-frames:v", "10", "-c:v", "ffv1"])
        .arg(&received)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = ffmpeg.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > end {
            ffmpeg.kill().ok();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let report = built.controls.report("networksend0");
    built.runtime.stop().unwrap();
    let stderr = ffmpeg
        .wait_with_output()
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .unwrap_or_default();
    assert!(
        status.is_some_and(|s| s.success()),
        "ffmpeg got no 10 frames in 20 s ({status:?}): {stderr}\nsender: {report:?}"
    );
    let report = report.unwrap();
    assert_eq!(report["frames_rejected"], 0, "{report}");
    assert!(report["frames"].as_u64().unwrap() >= 10, "{report}");
    assert_eq!(
        probe(&received, "width,height,nb_read_frames"),
        "640,480,10"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `networkreceive sdp=…` publishes what the SDP fixes, so what follows negotiates from it:
/// here `blur` (RGBA) gets a converter from the stream's UYVY, and frames flow.
#[test]
fn a_receiver_negotiates_from_its_sdp() {
    let dir = temp_dir("receive");
    let sdp = dir.join("stream.sdp");
    let port = free_port();
    let send = format!(
        "testpattern size=320x180 ! networksend destination=127.0.0.1:{port} sdp={}",
        sdp.display()
    );
    let registry = Registry::builtin();
    let clock = SoftwareClock::new(Rational::fps(30));
    let mut sender = build(&registry, &parse(&send).unwrap(), StreamRuntime::new(clock)).unwrap();
    sender.runtime.start().unwrap();

    let receive = format!("networkreceive sdp={} ! blur sigma=1 ! null", sdp.display());
    let clock = SoftwareClock::new(Rational::fps(60));
    let mut receiver = build(
        &registry,
        &parse(&receive).unwrap(),
        StreamRuntime::new(clock),
    )
    .unwrap();
    let edge = receiver
        .graph
        .edges
        .iter()
        .find(|e| e.from == "networkreceive0.video")
        .unwrap_or_else(|| panic!("{:?}", receiver.graph.edges));
    assert!(edge.caps.ends_with("320x180 30"), "{edge:?}");
    assert!(!edge.converters.is_empty(), "{edge:?}");
    receiver.runtime.start().unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    let published = || {
        receiver
            .controls
            .report("networkreceive0")
            .and_then(|r| r["frames_published"].as_u64())
            .unwrap_or(0)
    };
    while published() < 5 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    let got = published();
    sender.runtime.stop().unwrap();
    let stats = receiver.runtime.stop().unwrap();
    assert!(
        got >= 5,
        "{:?}",
        receiver.controls.report("networkreceive0")
    );
    for stream in &stats.streams {
        assert_eq!(stream.errors, 0, "{}", stream.id);
    }
    std::fs::remove_dir_all(&dir).ok();
}
