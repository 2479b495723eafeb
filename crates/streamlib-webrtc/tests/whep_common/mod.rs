//! What the WHEP tests share: a running pipeline (test pattern, optional tone, the sink),
//! the aiortc viewer script, and a raw HTTP client for requests no client library sends.
#![allow(dead_code, reason = "each test binary uses part of it")]

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use streamlib_clock::{Rational, SoftwareClock};
use streamlib_handlers_audio::{AudioTestSrc, AudioTestSrcConfig};
use streamlib_handlers_video::{Pattern, TestPattern, TestPatternConfig};
use streamlib_runtime::{Stream, StreamRuntime};
use streamlib_webrtc::{WebRtcSink, WebRtcSinkConfig, WebRtcSinkStats};

/// The SMPTE top bars at 75 %, left to right (test_pattern.rs).
pub const BARS: [[u8; 3]; 7] = [
    [191, 191, 191],
    [191, 191, 0],
    [0, 191, 191],
    [0, 191, 0],
    [191, 0, 191],
    [191, 0, 0],
    [0, 0, 191],
];

/// A running pipeline serving WHEP.
pub struct Served {
    pub rt: StreamRuntime,
    pub stats: WebRtcSinkStats,
    pub url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.rt.stop();
    }
}

/// `testpattern` (SMPTE bars, no moving box) at `width`x`height`, `fps`, into a sink made of
/// `config` (loopback, port 0 unless set), with a 48 kHz tone on its audio input when
/// `audio`.
pub fn serve(width: u32, height: u32, fps: u32, config: WebRtcSinkConfig, audio: bool) -> Served {
    serve_stamped(width, height, fps, config, audio, false)
}

/// [`serve`], with the frame stamp (frame number and UNIX ms) in the top rows when `stamp`.
pub fn serve_stamped(
    width: u32,
    height: u32,
    fps: u32,
    config: WebRtcSinkConfig,
    audio: bool,
    stamp: bool,
) -> Served {
    let mut rt = StreamRuntime::new(SoftwareClock::new(Rational::fps(fps)));
    let mut pattern = TestPatternConfig::new(width, height, Pattern::SmpteBars);
    pattern.moving_box = false;
    let source = TestPattern::new(pattern)
        .unwrap_or_else(|e| panic!("{e}"))
        .with_stamp(stamp);
    let sink = WebRtcSink::new(config).unwrap_or_else(|e| panic!("{e}"));
    let stats = sink.stats();
    let (out, video_in, audio_in) = (source.output(), sink.video(), sink.audio());
    rt.add_stream(Stream::new("pattern", source))
        .unwrap_or_else(|e| panic!("{e}"));
    if audio {
        let tone =
            AudioTestSrc::new(AudioTestSrcConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        let tone_out = tone.output();
        rt.add_stream(Stream::new("tone", tone))
            .unwrap_or_else(|e| panic!("{e}"));
        rt.add_stream(Stream::new("sink", sink))
            .unwrap_or_else(|e| panic!("{e}"));
        rt.connect(&tone_out, &audio_in)
            .unwrap_or_else(|e| panic!("{e}"));
    } else {
        rt.add_stream(Stream::new("sink", sink))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    rt.connect(&out, &video_in)
        .unwrap_or_else(|e| panic!("{e}"));
    rt.start().unwrap_or_else(|e| panic!("{e}"));
    let url = stats
        .whep_url()
        .unwrap_or_else(|| panic!("a started sink reports its WHEP URL"));
    Served { rt, stats, url }
}

/// A loopback sink on a free port.
pub fn loopback() -> WebRtcSinkConfig {
    WebRtcSinkConfig {
        whep_address: "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
        ..WebRtcSinkConfig::default()
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/whep_client.py")
}

/// Starts the aiortc viewer on `url` with `args`; its JSON comes from [`finish`].
pub fn spawn_viewer(url: &str, args: &[&str]) -> Child {
    Command::new("python3")
        .arg(script())
        .arg(url)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("python3 (aiortc; `cargo xtask setup` installs it): {e}"))
}

/// Waits for a viewer and parses what it printed.
pub fn finish(child: Child) -> serde_json::Value {
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("viewer: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or("");
    serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "viewer printed no JSON ({e}); stdout: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Runs one viewer to its end.
pub fn view(url: &str, args: &[&str]) -> serde_json::Value {
    finish(spawn_viewer(url, args))
}

/// Each sampled bar within `tolerance` of its colour (a lossy codec and a YUV round trip).
pub fn assert_bars(result: &serde_json::Value, tolerance: i64) {
    let bars = result["bars"]
        .as_array()
        .unwrap_or_else(|| panic!("no bars sampled: {result}"));
    assert_eq!(bars.len(), 7, "{result}");
    for (i, (got, want)) in bars.iter().zip(BARS).enumerate() {
        for c in 0..3 {
            let g = got[c].as_i64().unwrap_or(-1000);
            assert!(
                (g - i64::from(want[c])).abs() <= tolerance,
                "bar {i}: got {got}, want {want:?} (±{tolerance}); all: {bars:?}"
            );
        }
    }
}

/// One raw HTTP/1.1 request to the server of `url`; the status and body.
pub fn raw_request(
    url: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let (status, _, body) = raw_exchange(url, method, path, headers, body);
    (status, body)
}

/// [`raw_request`] with the response head (lower-cased) too.
pub fn raw_exchange(
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
        .unwrap_or("");
    let mut stream = TcpStream::connect(host).unwrap_or_else(|e| panic!("{host}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    // A server may answer (413) before reading a large body: a failed write is no error.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// A WHEP offer as a str0m peer makes one (recvonly video and audio), different each call.
pub fn str0m_offer() -> String {
    use str0m::media::{Direction, MediaKind};
    let mut rtc = str0m::Rtc::builder().build(Instant::now());
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, _pending) = change
        .apply()
        .unwrap_or_else(|| panic!("an offer with two media sections"));
    offer.to_sdp_string()
}

/// This process's resident memory in KiB (Linux).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Waits up to `timeout` for `condition`.
pub fn wait_for(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    condition()
}

/// A WHEP viewer on str0m that receives video without decoding it (cheap: for many viewers
/// at once). Counts the frames str0m depacketizes.
pub struct Str0mViewer {
    pub frames: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl Str0mViewer {
    /// Offers to `url` and receives on a thread until dropped.
    pub fn start(url: &str) -> Self {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicU64};
        let frames = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (url, f, s) = (url.to_owned(), Arc::clone(&frames), Arc::clone(&stop));
        let thread = std::thread::spawn(move || str0m_receive(&url, &f, &s));
        Self {
            frames,
            stop,
            thread: Some(thread),
        }
    }

    /// Frames received so far.
    pub fn count(&self) -> u64 {
        self.frames.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops and says how it ended.
    pub fn stop(mut self) -> Result<(), String> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread
            .take()
            .map(|t| t.join().unwrap_or_else(|_| Err("viewer panicked".into())))
            .unwrap_or(Ok(()))
    }
}

fn str0m_receive(
    url: &str,
    frames: &std::sync::atomic::AtomicU64,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<(), String> {
    use std::sync::atomic::Ordering;
    use str0m::change::SdpAnswer;
    use str0m::media::{Direction, MediaKind};
    use str0m::net::{Protocol, Receive};
    use str0m::{Candidate, Event, Input, Output, Rtc};
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    let mut rtc = Rtc::builder().build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp").map_err(|e| e.to_string())?);
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    let (offer, pending) = change.apply().ok_or("no offer")?;
    let (status, answer) = raw_request(
        url,
        "POST",
        "/whep",
        &[("Content-Type", "application/sdp")],
        offer.to_sdp_string().as_bytes(),
    );
    if status != 201 {
        return Err(format!("offer refused: {status} {answer}"));
    }
    let answer = SdpAnswer::from_sdp_string(&answer).map_err(|e| e.to_string())?;
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 2048];
    while !stop.load(Ordering::Relaxed) && rtc.is_alive() {
        let timeout = match rtc.poll_output().map_err(|e| e.to_string())? {
            Output::Timeout(t) => t,
            Output::Transmit(t) => {
                let _ = socket.send_to(&t.contents, t.destination);
                continue;
            }
            Output::Event(Event::MediaData(_)) => {
                frames.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Output::Event(_) => continue,
        };
        let wait = timeout
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(1), Duration::from_millis(100));
        socket
            .set_read_timeout(Some(wait))
            .map_err(|e| e.to_string())?;
        let input = match socket.recv_from(&mut buf) {
            Ok((n, source)) => match buf[..n].try_into() {
                Ok(contents) => Input::Receive(
                    Instant::now(),
                    Receive {
                        proto: Protocol::Udp,
                        source,
                        destination: local,
                        contents,
                    },
                ),
                Err(_) => continue,
            },
            Err(_) => Input::Timeout(Instant::now()),
        };
        rtc.handle_input(input).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// CPU time (user + system, in ms) of this process's threads whose name starts with `prefix`
/// (Linux `/proc/self/task/*/comm`, 15 characters at most).
pub fn thread_cpu_ms(prefix: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    let mut ticks = 0u64;
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.trim_end().starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the `(comm)`: state is the 3rd field, utime the 14th, stime the 15th.
        if let Some((_, rest)) = stat.rsplit_once(')') {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let n = |i: usize| {
                fields
                    .get(i)
                    .and_then(|f| f.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            ticks += n(11) + n(12);
        }
    }
    // USER_HZ is 100 on Linux.
    ticks * 10
}
