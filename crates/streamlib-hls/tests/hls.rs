//! `HlsSink` driven by hand with real frames: FFmpeg reads what it writes (from disk and over
//! its own HTTP server), the playlists have the structure RFC 8216 and LL-HLS ask for, a
//! live window keeps disk and playlist in step, and blocking reloads block.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use streamlib_buffers::PooledBuf;
use streamlib_clock::{ClockSourceId, Rational};
use streamlib_hls::{HlsConfig, HlsSink, PlaylistKind, SegmentFormat};
use streamlib_ports::{AudioBuffer, FrameLayout, PixelFormat, VideoFrame};
use streamlib_test_support::media::{output, temp_dir};

const FPS: u32 = 30;

fn frame(n: u64) -> VideoFrame {
    let layout = FrameLayout::new(320, 180, PixelFormat::Rgba8).unwrap_or_else(|e| panic!("{e}"));
    let mut bytes = vec![0u8; layout.buffer_len()];
    for (i, px) in bytes.chunks_exact_mut(4).enumerate() {
        let x = (i % 320) as u64;
        let bar = (((x + n * 3) / 40) % 4) as u8 * 70;
        px.copy_from_slice(&[bar, 255 - bar, 128, 255]);
    }
    VideoFrame::cpu(layout, PooledBuf::from_vec(bytes))
        .unwrap_or_else(|e| panic!("{e}"))
        .with_timing(
            n * 1_000_000_000 / u64::from(FPS),
            n,
            ClockSourceId::SOFTWARE,
        )
}

/// The audio of frame `n`'s period: 1600 samples of stereo 48 kHz.
fn audio(n: u64) -> AudioBuffer {
    let samples: Vec<f32> = (0..1600 * 2)
        .map(|i| ((n * 1600 + i / 2) as f32 * 0.0576).sin() * 0.3)
        .collect();
    AudioBuffer::new(
        PooledBuf::from_vec(samples),
        2,
        48_000,
        n * 1_000_000_000 / u64::from(FPS),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn sink(config: HlsConfig, with_audio: bool) -> HlsSink {
    let mut sink = HlsSink::new(config).unwrap_or_else(|e| panic!("{e}"));
    sink.set_format(Rational::fps(FPS), with_audio.then_some((48_000, 2)));
    sink.serve().unwrap_or_else(|e| panic!("{e}"));
    sink
}

fn push(sink: &mut HlsSink, frames: std::ops::Range<u64>, with_audio: bool) {
    for n in frames {
        sink.push_frame(&frame(n)).unwrap_or_else(|e| panic!("{e}"));
        if with_audio {
            sink.push_audio(&audio(n)).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

fn config(name: &str) -> HlsConfig {
    let mut config = HlsConfig::new(temp_dir("hls", name));
    config.target_duration = 1.0;
    config.bitrate = 500_000;
    config
}

fn loopback() -> Option<std::net::SocketAddr> {
    Some("127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")))
}

/// One HTTP/1.1 GET of `path` (sent as given, not normalised): status, headers, body.
fn get(addr: &str, path: &str) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap_or_else(|e| panic!("{e}"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("{path}: no header end"));
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{path}: {head}"));
    let mut body = response[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = unchunk(&body);
    }
    (status, head, body)
}

fn unchunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 4 + size..];
    }
}

fn host(sink: &HlsSink) -> String {
    let url = sink.url().unwrap_or_else(|| panic!("not serving"));
    url.trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn files(dir: &Path, ext: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(ext) && !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

/// ffprobe's frame count and duration of the first video stream of `input`, and the
/// codec names of every stream.
fn probe(input: &str) -> (u64, f64, String) {
    let text = output(
        "ffprobe",
        &[
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,nb_read_frames:format=duration",
            "-of",
            "default=nw=1",
            input,
        ],
    );
    let text = String::from_utf8_lossy(&text).into_owned();
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("{key} in {text}"))
    };
    // ffprobe lists an HLS stream's streams under its program too: each codec once.
    let mut codecs: Vec<&str> = Vec::new();
    for codec in text.lines().filter_map(|l| l.strip_prefix("codec_name=")) {
        if !codecs.contains(&codec) {
            codecs.push(codec);
        }
    }
    (
        value("nb_read_frames=").parse().unwrap_or(0),
        value("duration=").parse().unwrap_or(0.0),
        codecs.join(","),
    )
}

#[test]
fn ffprobe_reads_a_vod_stream_over_http_frame_for_frame() {
    let mut config = config("vod-http");
    config.playlist = PlaylistKind::Vod;
    config.serve = loopback();
    let mut sink = sink(config, true);
    push(&mut sink, 0..90, true);
    sink.finish().unwrap_or_else(|e| panic!("{e}"));
    let url = sink.url().unwrap_or_else(|| panic!("not serving"));
    let (frames, duration, codecs) = probe(&url);
    assert_eq!(frames, 90, "3 s at 30 fps");
    assert!((2.9..3.2).contains(&duration), "duration {duration}");
    assert_eq!(codecs, "h264,aac");
    let stats = sink.stats();
    assert_eq!(stats.segments_written(), 3);
    assert!(
        stats.audio_packets() > 130,
        "{} AAC packets",
        stats.audio_packets()
    );
    // Headers: MIME types, cache classes, CORS.
    let host = host(&sink);
    let (status, head, body) = get(&host, "/index.m3u8");
    assert_eq!(status, 200);
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("content-type: application/vnd.apple.mpegurl"),
        "{head}"
    );
    assert!(head.contains("no-store"), "{head}");
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{text}");
    assert!(text.ends_with("#EXT-X-ENDLIST\n"), "{text}");
    assert_eq!(text.matches("#EXTINF:1.00000,").count(), 3, "{text}");
    let (status, head, _) = get(&host, "/seg1.m4s");
    assert_eq!(status, 200);
    let head = head.to_ascii_lowercase();
    assert!(head.contains("content-type: video/iso.segment"), "{head}");
    assert!(head.contains("immutable"), "{head}");
}

#[test]
fn hevc_segments_play_from_disk() {
    let mut config = config("hevc");
    config.playlist = PlaylistKind::Vod;
    config.codec = streamlib_hls::HlsCodec::H265;
    let dir = config.location.clone();
    let mut sink = sink(config, true);
    push(&mut sink, 0..45, true);
    sink.finish().unwrap_or_else(|e| panic!("{e}"));
    let (frames, duration, codecs) = probe(&dir.join("index.m3u8").to_string_lossy());
    assert_eq!(frames, 45);
    assert!((1.4..1.7).contains(&duration), "duration {duration}");
    assert_eq!(codecs, "hevc,aac");
}

#[test]
fn mpeg_ts_segments_play_from_disk() {
    let mut config = config("ts");
    config.playlist = PlaylistKind::Event;
    config.segment_format = SegmentFormat::Ts;
    let dir = config.location.clone();
    let mut sink = sink(config, true);
    push(&mut sink, 0..60, true);
    sink.finish().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(files(&dir, ".ts"), ["seg0.ts", "seg1.ts"]);
    let playlist = dir.join("index.m3u8");
    let (frames, _, codecs) = probe(&playlist.to_string_lossy());
    assert_eq!(frames, 60);
    assert_eq!(codecs, "h264,aac");
    // Each segment decodes on its own (starts with PAT/PMT and an IDR).
    let (frames, _, _) = probe(&dir.join("seg1.ts").to_string_lossy());
    assert_eq!(frames, 30);
}

#[test]
fn a_live_window_deletes_old_segments_and_disk_matches_the_playlist() {
    let mut config = config("live-window");
    config.target_duration = 0.5;
    config.max_segments = 3;
    let dir = config.location.clone();
    let mut sink = sink(config, false);
    push(&mut sink, 0..150, false);
    sink.finish().unwrap_or_else(|e| panic!("{e}"));
    let text = std::fs::read_to_string(dir.join("index.m3u8")).unwrap_or_else(|e| panic!("{e}"));
    let listed: Vec<&str> = text.lines().filter(|l| l.ends_with(".m4s")).collect();
    assert_eq!(listed, ["seg7.m4s", "seg8.m4s", "seg9.m4s"], "{text}");
    assert_eq!(files(&dir, ".m4s"), listed);
    assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:7\n"), "{text}");
    assert!(
        !text.contains("ENDLIST"),
        "a live playlist is not ended: {text}"
    );
    assert_eq!(sink.stats().segments_deleted(), 7);
    // Every segment of the window starts with a keyframe (decodes alone with the init).
    let mut joined = std::fs::read(dir.join("init.mp4")).unwrap_or_else(|e| panic!("{e}"));
    joined.extend(std::fs::read(dir.join("seg8.m4s")).unwrap_or_else(|e| panic!("{e}")));
    let one = dir.join("seg8-alone.mp4");
    std::fs::write(&one, joined).unwrap_or_else(|e| panic!("{e}"));
    let keys = streamlib_test_support::media::probe(&one, "v:0", "frame=key_frame");
    assert_eq!(keys.len(), 15);
    assert_eq!(
        keys[0], "1",
        "the segment starts with a key frame: {keys:?}"
    );
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ll_hls_parts_hints_and_blocking_reload() {
    let mut config = config("ll-hls");
    config.part_duration = 0.2;
    config.serve = loopback();
    let dir = config.location.clone();
    let mut sink = sink(config, false);
    let stats = sink.stats();
    // 45 frames: segment 0 (30 frames) complete, parts 0 and 1 of segment 1 (6 frames
    // each); frames 42..45 are in part 2, still open.
    push(&mut sink, 0..45, false);
    wait_until("two parts of segment 1", || stats.parts_written() >= 7);
    let host = host(&sink);
    let (status, _, body) = get(&host, "/index.m3u8");
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body).into_owned();
    for tag in [
        "#EXT-X-VERSION:9\n",
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600\n",
        "#EXT-X-PART-INF:PART-TARGET=0.200\n",
        "#EXT-X-PART:DURATION=0.20000,URI=\"seg0.0.m4s\",INDEPENDENT=YES\n",
        "#EXT-X-PART:DURATION=0.20000,URI=\"seg1.1.m4s\"\n",
        "#EXTINF:1.00000,\nseg0.m4s\n",
    ] {
        assert!(text.contains(tag), "{tag} in:\n{text}");
    }
    assert!(
        text.ends_with("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg1.2.m4s\"\n"),
        "{text}"
    );
    // Every part exists and segment 0 is its parts joined.
    let parts: Vec<u8> = (0..5)
        .flat_map(|i| std::fs::read(dir.join(format!("seg0.{i}.m4s"))).unwrap_or_default())
        .collect();
    assert_eq!(std::fs::read(dir.join("seg0.m4s")).ok(), Some(parts));

    // A reload for the next part and a request for the hinted part block until it exists.
    let reload = {
        let host = host.clone();
        std::thread::spawn(move || get(&host, "/index.m3u8?_HLS_msn=1&_HLS_part=2"))
    };
    let hinted = {
        let host = host.clone();
        std::thread::spawn(move || get(&host, "/seg1.2.m4s"))
    };
    std::thread::sleep(Duration::from_millis(500));
    assert!(!reload.is_finished(), "the reload waits for part 2");
    assert!(!hinted.is_finished(), "the hinted part waits to be written");
    push(&mut sink, 45..49, false);
    let (status, _, body) = reload.join().unwrap_or_else(|_| panic!("reload"));
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body).into_owned();
    assert!(text.contains("URI=\"seg1.2.m4s\""), "{text}");
    assert!(text.ends_with("URI=\"seg1.3.m4s\"\n"), "{text}");
    let (status, _, part) = hinted.join().unwrap_or_else(|_| panic!("hinted"));
    assert_eq!(status, 200);
    assert_eq!(std::fs::read(dir.join("seg1.2.m4s")).ok(), Some(part));

    // Too far ahead: 400 at once; not numbers: 400; outside the folder: 404.
    let start = Instant::now();
    assert_eq!(get(&host, "/index.m3u8?_HLS_msn=9").0, 400);
    assert_eq!(get(&host, "/index.m3u8?_HLS_msn=1&_HLS_part=99").0, 400);
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(get(&host, "/index.m3u8?_HLS_msn=x").0, 400);
    assert_eq!(get(&host, "/index.m3u8?_HLS_part=1").0, 400);
    for outside in [
        "/../Cargo.toml",
        "/..%2fCargo.toml",
        "/%2e%2e/x",
        "/.hidden",
        "/a/b",
    ] {
        assert_eq!(get(&host, outside).0, 404, "{outside}");
    }
    assert_eq!(get(&host, "/seg99.m4s").0, 404);
    sink.finish().unwrap_or_else(|e| panic!("{e}"));
    // After the end nothing blocks: the live playlist's last state comes at once.
    let start = Instant::now();
    assert_eq!(get(&host, "/index.m3u8?_HLS_msn=3").0, 200);
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_served_prefix_mounts_the_folder_under_it() {
    let mut config = config("prefix");
    config.serve = loopback();
    config.serve_path = "/cam".to_owned();
    let mut sink = sink(config, false);
    push(&mut sink, 0..31, false);
    wait_until("a segment", || sink.stats().segments_written() >= 1);
    let host = host(&sink);
    assert!(sink.url().is_some_and(|u| u.ends_with("/cam/index.m3u8")));
    assert_eq!(get(&host, "/cam/index.m3u8").0, 200);
    assert_eq!(get(&host, "/cam/init.mp4").0, 200);
    assert_eq!(get(&host, "/index.m3u8").0, 404);
}

#[test]
fn a_lost_folder_is_counted_and_the_stream_goes_on() {
    let config = config("lost-folder");
    let dir: PathBuf = config.location.clone();
    let mut sink = sink(config, false);
    push(&mut sink, 0..31, false);
    wait_until("a segment", || sink.stats().segments_written() >= 1);
    std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    push(&mut sink, 31..61, false);
    wait_until("a write error", || sink.stats().write_errors() > 0);
    let error = sink.stats().last_error().unwrap_or_default();
    assert!(
        error.contains("cannot write") && error.contains(&*dir.to_string_lossy()),
        "{error}"
    );
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    push(&mut sink, 61..91, false);
    sink.finish().unwrap_or_else(|e| panic!("{e}"));
    assert!(dir.join("seg2.m4s").exists(), "writing resumed");
    assert!(dir.join("index.m3u8").exists());
}

#[test]
fn bad_configurations_name_the_property() {
    type Change = Box<dyn Fn(&mut HlsConfig)>;
    let cases: Vec<(&str, Change)> = vec![
        ("target-duration", Box::new(|c| c.target_duration = 0.0)),
        ("max-segments", Box::new(|c| c.max_segments = 1)),
        ("part-duration", Box::new(|c| c.part_duration = 5.0)),
        (
            "part-duration",
            Box::new(|c| {
                c.part_duration = 0.2;
                c.segment_format = SegmentFormat::Ts;
            }),
        ),
        ("bitrate", Box::new(|c| c.bitrate = 0)),
        ("serve-path", Box::new(|c| c.serve_path = "cam/".to_owned())),
    ];
    for (property, change) in cases {
        let mut config = config("bad");
        change(&mut config);
        let error = HlsSink::new(config)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains(property), "{property}: {error}");
    }
    let error = HlsSink::new(HlsConfig::new("/proc/streamlib-no/x"))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        error.contains("cannot write /proc/streamlib-no/x"),
        "{error}"
    );
}
