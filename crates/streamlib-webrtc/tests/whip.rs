//! `WebRtcSrc` against real peers: aiortc (an independent WebRTC stack) publishes VP8 and
//! H.264 by WHIP into a running pipeline, whose frames keep the colours sent; and what a
//! publisher can do wrong (malformed offers, the wrong content type, a second publisher, an
//! unknown session, vanishing without a word) gets a clear answer and leaves the endpoint
//! usable.
#![allow(clippy::print_stderr, reason = "the test reports its figures")]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use streamlib_clock::{Rational, SoftwareClock};
use streamlib_handlers_video::{CaptureHandle, FrameCapture};
use streamlib_ports::VideoFrame;
use streamlib_runtime::{Stream, StreamRuntime};
use streamlib_webrtc::{WebRtcSrc, WebRtcSrcConfig, WhipStatsHandle};

/// The aiortc publisher next to this file.
fn publisher() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/whip_publish.py")
}

fn publish(url: &str, seconds: f64, extra: &[&str]) -> Child {
    Command::new("python3")
        .arg(publisher())
        .arg(url)
        .arg(seconds.to_string())
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("python3 (aiortc; `cargo xtask setup` installs it): {e}"))
}

fn finish(child: Child) -> String {
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("publisher: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "publisher failed ({}): {stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A started source (on a 30 fps software clock) feeding a capture that keeps the newest
/// frame.
struct Running {
    runtime: StreamRuntime,
    stats: WhipStatsHandle,
    capture: CaptureHandle,
    url: String,
}

fn start(config: WebRtcSrcConfig) -> Running {
    let source = WebRtcSrc::new(config).unwrap_or_else(|e| panic!("{e}"));
    let stats = source.stats();
    let capture = FrameCapture::new([]).keep_latest();
    let handle = capture.handle();
    let mut runtime = StreamRuntime::new(SoftwareClock::new(Rational::fps(30)));
    let (video, input) = (source.video_output(), capture.input());
    runtime
        .add_stream(Stream::new("whip", source))
        .unwrap_or_else(|e| panic!("{e}"));
    runtime
        .add_stream(Stream::new("capture", capture))
        .unwrap_or_else(|e| panic!("{e}"));
    runtime
        .connect(&video, &input)
        .unwrap_or_else(|e| panic!("{e}"));
    runtime.start().unwrap_or_else(|e| panic!("{e}"));
    let url = stats.whip_url();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/whip"),
        "{url}"
    );
    Running {
        runtime,
        stats,
        capture: handle,
        url,
    }
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP/1.1 request on a fresh connection: (status, headers, body).
fn request(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, String) {
    let host = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut stream = TcpStream::connect(&host).unwrap_or_else(|e| panic!("{host}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, head.to_ascii_lowercase(), body.to_owned())
}

const QUADRANTS: [[u8; 3]; 4] = [[230, 20, 20], [20, 210, 20], [20, 20, 230], [235, 235, 235]];

fn assert_quadrants(frame: &VideoFrame, what: &str) {
    let bytes = frame
        .cpu_bytes()
        .unwrap_or_else(|| panic!("{what}: not a CPU frame"));
    let (w, h, stride) = (frame.width(), frame.height(), frame.stride());
    let centres = [
        (w / 4, h / 2 - 30),
        (3 * w / 4, h / 4),
        (w / 4, 3 * h / 4),
        (3 * w / 4, 3 * h / 4),
    ];
    for (q, (x, y)) in centres.into_iter().enumerate() {
        let at = (y * stride + x * 4) as usize;
        let got = &bytes[at..at + 3];
        for c in 0..3 {
            let diff = i32::from(got[c]) - i32::from(QUADRANTS[q][c]);
            assert!(
                diff.abs() <= 40,
                "{what}: quadrant {q} at {x},{y} is {got:?}, sent {:?}",
                QUADRANTS[q]
            );
        }
    }
}

#[test]
fn aiortc_publishes_vp8_then_h264_and_the_pipeline_gets_its_colours() {
    let mut running = start(WebRtcSrcConfig::new(
        "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
    ));
    for (round, codec) in ["vp8", "h264"].into_iter().enumerate() {
        let before = running.stats.snapshot();
        let out = finish(publish(&running.url, 4.0, &["--codec", codec]));
        assert!(out.contains("\"post\": 201"), "{codec}: {out}");
        assert!(out.contains("\"location\": \"/whip/"), "{codec}: {out}");
        assert!(out.contains("\"delete\": 200"), "{codec}: {out}");
        let s = running.stats.snapshot();
        assert_eq!(s.video_codec, codec);
        let frames = s.frames_published - before.frames_published;
        // 4 s at 30 fps sent; on a loaded machine at least a third must arrive decoded.
        assert!(
            frames >= 40,
            "{codec}: {frames} frames published in 4 s ({s:?})"
        );
        assert!(
            s.audio_buffers > before.audio_buffers + 50,
            "{codec}: audio {s:?}"
        );
        assert_eq!(s.sessions, round as u64 + 1);
        wait_until(
            "the session to end after DELETE",
            Duration::from_secs(5),
            || running.stats.snapshot().sessions_ended == round as u64 + 1,
        );
        let frame = running
            .capture
            .latest()
            .unwrap_or_else(|| panic!("{codec}: no frame"));
        // The first publisher's size is kept.
        assert_eq!((frame.width(), frame.height()), (320, 240), "{codec}");
        assert_quadrants(&frame, codec);
    }
    let s = running.stats.snapshot();
    assert!(!s.live);
    assert_eq!(s.video_size, "320x240");
    assert!(s.keyframe_requests >= 1 || s.decode_errors == 0, "{s:?}");
    running.runtime.stop().unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn bad_requests_get_clear_refusals_and_a_vanished_publisher_frees_the_endpoint() {
    let mut config = WebRtcSrcConfig::new("127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")));
    config.connect_timeout = Duration::from_secs(6);
    let mut running = start(config);
    let url = running.url.clone();
    let sdp = [("Content-Type", "application/sdp")];

    // CORS preflight, as a browser page on another origin sends first.
    let (status, head, _) = request(
        &url,
        "OPTIONS",
        "/whip",
        &[
            ("Origin", "http://x"),
            ("Access-Control-Request-Method", "POST"),
        ],
        b"",
    );
    assert_eq!(status, 204);
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
    assert!(
        head.contains("access-control-allow-methods:")
            && head.contains("post")
            && head.contains("delete"),
        "{head}"
    );

    for (body, says) in [
        (&b"hello"[..], "v=0"),
        (b"v=0\r\n", "no media section"),
        (
            b"v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ice-ufrag:abcd\r\na=fingerprint:sha-256 00\r\na=rtpmap:96 AV1/90000\r\n",
            "no codec webrtcsrc decodes",
        ),
        (
            b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ice-ufrag:abcd\r\na=fingerprint:sha-256 00\r\na=rtpmap:96 VP8/90000\r\n\x01\x02",
            "not valid SDP",
        ),
    ] {
        let (status, head, text) = request(&url, "POST", "/whip", &sdp, body);
        assert_eq!(status, 400, "{text}");
        assert!(text.contains(says), "{says}: {text}");
        assert!(head.contains("access-control-allow-origin: *"), "{head}");
    }
    let (status, _, text) = request(
        &url,
        "POST",
        "/whip",
        &[("Content-Type", "text/plain")],
        b"v=0",
    );
    assert_eq!(status, 415, "{text}");
    assert!(text.contains("application/sdp"), "{text}");
    let (status, _, _) = request(&url, "POST", "/whip", &sdp, &[0xff, 0xfe, 0x00]);
    assert_eq!(status, 400);
    // Too large a body: refused before it is read whole.
    let (status, _, _) = request(&url, "POST", "/whip", &sdp, &vec![b'a'; 512 * 1024]);
    assert_eq!(status, 413);
    let (status, _, text) = request(&url, "DELETE", "/whip/0123456789abcdef", &[], b"");
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("no such WHIP session"), "{text}");

    // A publisher that vanishes; while it is live a second one gets 409.
    let vanishing = publish(&url, 5.0, &["--vanish", "--no-audio"]);
    wait_until(
        "the first publisher's frames",
        Duration::from_secs(20),
        || running.stats.snapshot().frames_published > 10,
    );
    // A hundred offers at once while it is live: each is refused (409, or 503 while the
    // session thread's inbox is full), none waits long, and the publisher keeps publishing.
    let offer = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ice-ufrag:abcd\r\n\
                 a=fingerprint:sha-256 00\r\na=rtpmap:96 VP8/90000\r\n";
    let before = running.stats.snapshot().frames_published;
    let flood = Instant::now();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..100)
            .map(|_| scope.spawn(|| request(&url, "POST", "/whip", &sdp, offer.as_bytes()).0))
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| panic!("a request thread panicked"))
            })
            .collect()
    });
    let flood = flood.elapsed();
    assert!(
        statuses.iter().all(|s| [409, 503].contains(s)),
        "{statuses:?}"
    );
    assert!(
        flood < Duration::from_secs(10),
        "100 refusals took {flood:?}"
    );
    wait_until("frames after the flood", Duration::from_secs(5), || {
        running.stats.snapshot().frames_published > before + 10
    });
    eprintln!(
        "100 simultaneous offers refused in {flood:?} ({} with 409)",
        statuses.iter().filter(|&&s| s == 409).count()
    );
    let second = finish(publish(&url, 0.5, &[]));
    assert!(second.contains("\"post\": 409"), "{second}");
    assert!(second.contains("one publisher at a time"), "{second}");
    let out = finish(vanishing);
    assert!(out.contains("\"delete\": null"), "{out}");
    let gone = Instant::now();
    wait_until(
        "the vanished session to end",
        Duration::from_secs(30),
        || running.stats.snapshot().sessions_ended == 1,
    );
    let took = gone.elapsed();
    let published = running.stats.snapshot().frames_published;
    // The endpoint is free again: the next publisher gets in.
    let next = finish(publish(&url, 3.0, &[]));
    assert!(next.contains("\"post\": 201"), "{next}");
    let s = running.stats.snapshot();
    assert!(s.frames_published > published + 20, "{s:?}");
    assert_eq!(s.sessions, 2, "{s:?}");
    assert!(s.refused_busy >= 1, "{s:?}");
    assert!(s.refused_bad >= 4, "{s:?}");
    eprintln!("a vanished publisher was noticed after {took:?}");
    running.runtime.stop().unwrap_or_else(|e| panic!("{e}"));
}
