//! FileReader against real files made by the FFmpeg CLI: codecs, containers, sizes, pixel
//! formats, end of stream, errors, looping, start offset and realtime pacing.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use streamlib_clock::{FreeRunningClock, Rational};
use streamlib_handlers_file::{
    DecodeErrorPolicy, FileError, FileReader, MediaInfo, ReaderConfig, ReaderPacing, ReaderStats,
};
use streamlib_handlers_video::{CaptureHandle, FrameCapture};
use streamlib_ports::{FrameLimits, PixelFormat, VideoFrame};
use streamlib_runtime::{Stream, StreamRuntime};

/// A fresh directory for one test's files.
fn temp_dir(name: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "streamlib-reader-{}-{}-{name}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the ffmpeg CLI (quiet, overwrite) and insists it succeeds.
fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-nostdin"])
        .args(args)
        .output()
        .expect("ffmpeg CLI");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes `name` in `dir` from a lavfi test source with the given encoder arguments.
fn make(dir: &Path, name: &str, source: &str, frames: u32, codec: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let frames = frames.to_string();
    let mut args = vec!["-f", "lavfi", "-i", source, "-frames:v", &frames];
    args.extend_from_slice(codec);
    args.push(path.to_str().unwrap());
    ffmpeg(&args);
    path
}

/// Frames ffprobe decodes from the first video stream.
fn probe_frames(path: &Path) -> u64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_frames"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_end_matches(',')
        .parse()
        .unwrap_or_else(|e| panic!("ffprobe count for {}: {e} ({out:?})", path.display()))
}

/// Every frame decoded by the CLI as tightly packed `pix_fmt` bytes.
fn reference(path: &Path, pix_fmt: &str) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args([
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            pix_fmt,
            "-",
        ])
        .output()
        .expect("ffmpeg CLI");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The frame's rows without stride padding.
fn packed(frame: &VideoFrame) -> Vec<u8> {
    let row = frame.format().min_stride(frame.width());
    let bytes = frame.cpu_bytes().unwrap();
    (0..frame.height() as usize)
        .flat_map(|y| {
            let start = y * frame.stride() as usize;
            bytes[start..start + row].iter().copied()
        })
        .collect()
}

/// Largest per-byte difference.
fn max_diff(a: &[u8], b: &[u8]) -> u8 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0)
}

struct Run {
    capture: CaptureHandle,
    stats: ReaderStats,
    info: MediaInfo,
}

/// FileReader → FrameCapture through a real runtime on a free-running clock; `run()` must
/// return on its own (bounded by a timeout) at end of stream or after `limit` ticks.
fn run_reader(config: ReaderConfig, keep: Vec<u64>, fps: u32, limit: Option<u64>) -> Run {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let reader = FileReader::new(config).unwrap();
        let (stats, info, out) = (reader.stats(), reader.info().clone(), reader.output());
        let capture = FrameCapture::new(keep);
        let (input, handle) = (capture.input(), capture.handle());
        let clock = FreeRunningClock::new(Rational::fps(fps));
        let clock = match limit {
            Some(n) => clock.with_limit(n),
            None => clock,
        };
        let mut rt = StreamRuntime::new(clock);
        rt.add_stream(Stream::new("reader", reader)).unwrap();
        rt.add_stream(Stream::new("capture", capture)).unwrap();
        rt.connect(&out, &input).unwrap();
        rt.run().unwrap();
        let _ = tx.send(Run {
            capture: handle,
            stats,
            info,
        });
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("runtime did not finish within 60 s (or panicked)")
}

/// One frame per tick, always RGBA (the CLI references are RGBA).
fn fast(path: &Path) -> ReaderConfig {
    ReaderConfig {
        pacing: ReaderPacing::AsFastAsPossible,
        force_format: true,
        ..ReaderConfig::new(path)
    }
}

/// Decodes the whole file, checking count against ffprobe, size and increasing timestamps.
fn decode_all(path: &Path, width: u32, height: u32) -> Run {
    let expected = probe_frames(path);
    let keep: Vec<u64> = (0..expected).collect();
    let run = run_reader(fast(path), keep, 30, None);
    assert_eq!(
        run.capture.received(),
        expected,
        "{}: decoded {} output {} dropped {} errors {}",
        path.display(),
        run.stats.frames_decoded(),
        run.stats.frames_output(),
        run.stats.frames_dropped(),
        run.stats.decode_errors()
    );
    assert_eq!(run.stats.frames_decoded(), expected);
    assert_eq!(run.stats.decode_errors(), 0);
    let frames = run.capture.frames();
    let mut last = None;
    for (i, frame) in &frames {
        assert_eq!((frame.width(), frame.height()), (width, height));
        assert_eq!(frame.format(), PixelFormat::Rgba8);
        assert_eq!(frame.stride() % 64, 0, "padded stride");
        assert!(
            last < Some(frame.timestamp_ns()),
            "frame {i}: timestamps increase"
        );
        last = Some(frame.timestamp_ns());
    }
    assert_eq!((run.info.width, run.info.height), (width, height));
    run
}

/// Every captured frame matches the CLI's decode within `tolerance`.
fn compare_with_cli(run: &Run, path: &Path, pix_fmt: &str, tolerance: u8) {
    let reference = reference(path, pix_fmt);
    let frames = run.capture.frames();
    let size = packed(&frames[0].1).len();
    assert_eq!(
        reference.len(),
        size * frames.len(),
        "reference frame count"
    );
    for (i, frame) in &frames {
        let i = *i as usize;
        let diff = max_diff(&packed(frame), &reference[i * size..(i + 1) * size]);
        assert!(
            diff <= tolerance,
            "frame {i}: max difference {diff} > {tolerance}"
        );
    }
}

#[test]
fn h264_mp4() {
    let dir = temp_dir("h264");
    let src = "testsrc2=s=320x240:r=30";
    let path = make(
        &dir,
        "a.mp4",
        src,
        30,
        &["-c:v", "libx264", "-pix_fmt", "yuv420p"],
    );
    let run = decode_all(&path, 320, 240);
    assert_eq!(run.info.codec, "h264");
    assert_eq!(run.info.frames, Some(30));
    assert_eq!(run.info.fps, Some(Rational::fps(30)));
    assert_eq!(run.info.duration, Some(Duration::from_secs(1)));
    // First frame at pts 0, 30 fps spacing.
    let frames = run.capture.frames();
    assert_eq!(frames[0].1.timestamp_ns(), 0);
    assert_eq!(frames[3].1.timestamp_ns(), 100_000_000);
    assert_eq!(frames[5].1.frame_number(), 5, "media frame number");
    // Close to the CLI's decode (same swscale, same BT.601 matrix).
    compare_with_cli(&run, &path, "rgba", 3);
}

#[test]
fn vp9_webm() {
    let dir = temp_dir("vp9");
    let src = "testsrc2=s=160x120:r=30";
    let codec = [
        "-c:v",
        "libvpx-vp9",
        "-deadline",
        "realtime",
        "-cpu-used",
        "8",
    ];
    let path = make(&dir, "a.webm", src, 20, &codec);
    let run = decode_all(&path, 160, 120);
    assert_eq!(run.capture.received(), 20);
    assert!(run.info.codec.contains("vp9"), "{}", run.info.codec);
}

#[test]
fn hevc_mp4() {
    let dir = temp_dir("hevc");
    let src = "testsrc2=s=192x108:r=30";
    let codec = [
        "-c:v",
        "libx265",
        "-x265-params",
        "log-level=error",
        "-pix_fmt",
        "yuv420p",
    ];
    let path = make(&dir, "a.mp4", src, 20, &codec);
    let run = decode_all(&path, 192, 108);
    assert_eq!(run.info.codec, "hevc");
    assert_eq!(run.capture.received(), 20);
}

#[test]
fn ffv1_rgb_is_exact_at_an_odd_size() {
    let dir = temp_dir("ffv1");
    // testsrc2 rounds sizes to even; testsrc keeps them odd.
    let src = "testsrc=s=321x241:r=30";
    let path = make(
        &dir,
        "a.mkv",
        src,
        12,
        &["-c:v", "ffv1", "-pix_fmt", "bgr0"],
    );
    let run = decode_all(&path, 321, 241);
    assert_eq!(run.capture.received(), 12);
    compare_with_cli(&run, &path, "rgba", 0);
}

#[test]
fn bgra_and_gray_outputs() {
    let dir = temp_dir("formats");
    let src = "testsrc2=s=160x90:r=30";
    let path = make(&dir, "a.mkv", src, 5, &["-c:v", "ffv1", "-pix_fmt", "bgr0"]);
    for (format, pix_fmt, tolerance) in [
        (PixelFormat::Bgra8, "bgra", 0),
        (PixelFormat::Gray8, "gray", 2),
    ] {
        let config = ReaderConfig {
            format,
            ..fast(&path)
        };
        let run = run_reader(config, (0..5).collect(), 30, None);
        let frames = run.capture.frames();
        assert_eq!(frames.len(), 5);
        assert!(frames.iter().all(|(_, f)| f.format() == format));
        compare_with_cli(&run, &path, pix_fmt, tolerance);
    }
}

#[test]
fn ten_bit_422_ffv1_and_prores() {
    let dir = temp_dir("10bit");
    let src = "testsrc2=s=256x144:r=30";
    let ffv1 = make(
        &dir,
        "a.mkv",
        src,
        8,
        &["-c:v", "ffv1", "-pix_fmt", "yuv422p10le"],
    );
    let run = decode_all(&ffv1, 256, 144);
    assert_eq!(run.capture.received(), 8);
    compare_with_cli(&run, &ffv1, "rgba", 3);
    let prores = make(
        &dir,
        "a.mov",
        src,
        8,
        &[
            "-c:v",
            "prores_ks",
            "-profile:v",
            "3",
            "-pix_fmt",
            "yuv422p10le",
        ],
    );
    let run = decode_all(&prores, 256, 144);
    assert_eq!(run.capture.received(), 8);
    assert!(run.info.codec.contains("prores"), "{}", run.info.codec);
}

#[test]
fn h264_444_odd_size() {
    let dir = temp_dir("odd");
    // testsrc2 rounds sizes to even; testsrc keeps them odd.
    let src = "testsrc=s=321x241:r=30";
    let codec = ["-c:v", "libx264", "-pix_fmt", "yuv444p"];
    let path = make(&dir, "a.mp4", src, 10, &codec);
    let run = decode_all(&path, 321, 241);
    assert_eq!(run.capture.received(), 10);
}

#[test]
fn broadcast_sizes_1366x768_and_1921x1081() {
    let dir = temp_dir("sizes");
    // 1366 is not a multiple of 16 (H.264 macroblocks, swscale's SIMD width); 1921×1081 is
    // odd both ways in 4:2:0, where the last chroma sample covers one luma column and row.
    let h264 = make(
        &dir,
        "wxga.mp4",
        "testsrc=s=1366x768:r=30",
        3,
        &["-c:v", "libx264", "-pix_fmt", "yuv420p"],
    );
    let run = decode_all(&h264, 1366, 768);
    assert_eq!(run.capture.received(), 3);
    compare_with_cli(&run, &h264, "rgba", 2);

    let ffv1 = make(
        &dir,
        "odd.mkv",
        "testsrc=s=1921x1081:r=30",
        3,
        &["-c:v", "ffv1", "-pix_fmt", "yuv420p"],
    );
    let run = decode_all(&ffv1, 1921, 1081);
    assert_eq!(run.capture.received(), 3);
    compare_with_cli(&run, &ffv1, "rgba", 2);
}

#[test]
fn variable_frame_rate() {
    let dir = temp_dir("vfr");
    // 10 frames 1/30 s apart, then 10 frames 1/10 s apart.
    let path = dir.join("vfr.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=160x120:r=30",
        "-frames:v",
        "20",
        "-vf",
        "setpts='if(lt(N,10),N/30,10/30+(N-10)/10)/TB'",
        "-fps_mode",
        "vfr",
        "-c:v",
        "ffv1",
        path.to_str().unwrap(),
    ]);
    let run = decode_all(&path, 160, 120);
    assert_eq!(run.capture.received(), 20);
    let frames = run.capture.frames();
    let gap = |i: usize| frames[i + 1].1.timestamp_ns() - frames[i].1.timestamp_ns();
    assert!((30_000_000..37_000_000).contains(&gap(2)), "{}", gap(2));
    // Matroska stores milliseconds, and the CLI jitters a little: a loose band.
    assert!((90_000_000..140_000_000).contains(&gap(12)), "{}", gap(12));
}

#[test]
fn missing_file_names_the_path() {
    let path = temp_dir("missing").join("nope.mp4");
    let err = FileReader::new(ReaderConfig::new(&path)).err().unwrap();
    assert!(matches!(err, FileError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("nope.mp4"), "{err}");
}

/// A picture over the frame limits is refused before a frame pool is made for it, naming the
/// file and the limits: by default (16384 wide at most), and with limits the caller lowered.
#[test]
fn pictures_over_the_frame_limits_are_refused() {
    let dir = temp_dir("limits");
    let wide = make(
        &dir,
        "wide.mkv",
        "color=c=red:s=16400x8:r=30",
        1,
        &["-c:v", "ffv1"],
    );
    let err = FileReader::new(fast(&wide)).err().unwrap();
    assert!(matches!(err, FileError::FrameTooLarge { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("wide.mkv"), "{text}");
    assert!(
        text.contains("16400x8 frame is over the frame limits (16384x16384"),
        "{text}"
    );

    let small = make(
        &dir,
        "small.mkv",
        "testsrc=s=64x36:r=30",
        2,
        &["-c:v", "ffv1"],
    );
    let tight = ReaderConfig {
        limits: FrameLimits {
            max_pixels: 1000,
            ..FrameLimits::DEFAULT
        },
        ..fast(&small)
    };
    let err = FileReader::new(tight).err().unwrap();
    assert!(err.to_string().contains("1000 pixels"), "{err}");
    assert!(FileReader::new(fast(&small)).is_ok());
}

#[test]
fn text_file_is_not_media() {
    let path = temp_dir("text").join("notes.mp4");
    std::fs::write(&path, "this is not a video, just some words\n".repeat(50)).unwrap();
    let err = FileReader::new(ReaderConfig::new(&path)).err().unwrap();
    assert!(matches!(err, FileError::NotMedia { .. }), "{err}");
    assert!(err.to_string().contains("notes.mp4"), "{err}");
}

/// A playlist, a concat script or an image pattern in a readable folder must not make FFmpeg
/// open the other files it names: `protocol_whitelist=file` allows any path, so the default
/// format whitelist refuses those demuxers, naming the file and the format.
#[test]
fn playlists_and_concat_scripts_are_refused() {
    let dir = temp_dir("playlist");
    let outside = temp_dir("playlist-outside");
    let secret = make(
        &outside,
        "secret.ts",
        "testsrc=s=64x36:r=30",
        3,
        &["-c:v", "mpeg2video"],
    );
    let playlist = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXTINF:0.1,\n{}\n#EXT-X-ENDLIST\n",
        secret.display()
    );
    let m3u8 = dir.join("list.m3u8");
    std::fs::write(&m3u8, &playlist).unwrap();
    // The same playlist under a media extension: FFmpeg probes it as HLS all the same.
    let disguised = dir.join("clip.mp4");
    std::fs::write(&disguised, &playlist).unwrap();
    make(
        &dir,
        "sibling.mkv",
        "testsrc=s=64x36:r=30",
        3,
        &["-c:v", "ffv1"],
    );
    let concat = dir.join("list.ffconcat");
    std::fs::write(&concat, "ffconcat version 1.0\nfile sibling.mkv\n").unwrap();

    for (path, format) in [(&m3u8, "hls"), (&disguised, "hls"), (&concat, "concat")] {
        let err = FileReader::new(fast(path)).err().unwrap();
        assert!(matches!(err, FileError::FormatRefused { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains(path.to_str().unwrap()), "{text}");
        assert!(text.contains(&format!("'{format}' is refused")), "{text}");
    }
    // The files themselves, and the playlist when the caller allows HLS, are read.
    assert!(FileReader::new(fast(&secret)).is_ok());
    assert!(FileReader::new(fast(&dir.join("sibling.mkv"))).is_ok());
    let allowed = ReaderConfig {
        format_whitelist: Some("hls,mpegts,mpegvideo".to_owned()),
        ..fast(&m3u8)
    };
    assert_eq!(FileReader::new(allowed).unwrap().info().width, 64);
}

#[test]
fn audio_only_and_bad_index_have_no_video_stream() {
    let dir = temp_dir("audio");
    let audio = make(&dir, "a.mka", "sine=d=0.2", 1, &["-c:a", "pcm_s16le"]);
    let err = FileReader::new(ReaderConfig::new(&audio)).err().unwrap();
    assert!(
        matches!(err, FileError::NoStream { kind: "video", .. }),
        "{err}"
    );
    let video = make(&dir, "v.mkv", "testsrc2=s=64x48", 2, &["-c:v", "ffv1"]);
    let config = ReaderConfig {
        stream: streamlib_handlers_file::StreamSelect::Index(3),
        ..ReaderConfig::new(&video)
    };
    let err = FileReader::new(config).err().unwrap();
    assert!(matches!(err, FileError::NoStream { .. }), "{err}");
    assert!(err.to_string().contains("index 3"), "{err}");
}

/// Writes the first `fraction` of `path` to `name`.
fn truncate(path: &Path, name: &str, fraction: f64) -> PathBuf {
    let bytes = std::fs::read(path).unwrap();
    let cut = path.with_file_name(name);
    std::fs::write(&cut, &bytes[..(bytes.len() as f64 * fraction) as usize]).unwrap();
    cut
}

#[test]
fn truncated_files_decode_what_they_can() {
    let dir = temp_dir("truncated");
    let src = "testsrc2=s=320x240:r=30";
    let mkv = make(
        &dir,
        "a.mkv",
        src,
        60,
        &["-c:v", "libx264", "-pix_fmt", "yuv420p"],
    );
    let cut = truncate(&mkv, "cut.mkv", 0.6);
    let run = run_reader(fast(&cut), vec![], 30, None);
    let got = run.capture.received();
    assert!(got > 0 && got < 60, "decoded {got} of 60");
    // Under Fail the same file either ends cleanly or stops with a Decode error: no hang.
    let config = ReaderConfig {
        on_decode_error: DecodeErrorPolicy::Fail,
        ..fast(&cut)
    };
    let _ = run_reader(config, vec![], 30, None);

    // An MP4 cut in half loses its index (moov at the end): a clear error at open, or a
    // clean, short decode.
    let mp4 = make(
        &dir,
        "a.mp4",
        src,
        60,
        &["-c:v", "libx264", "-pix_fmt", "yuv420p"],
    );
    let half = truncate(&mp4, "half.mp4", 0.5);
    match FileReader::new(fast(&half)) {
        Err(err) => {
            assert!(matches!(err, FileError::NotMedia { .. }), "{err}");
            assert!(err.to_string().contains("half.mp4"), "{err}");
        }
        Ok(_) => {
            let run = run_reader(fast(&half), vec![], 30, None);
            assert!(run.capture.received() <= 60);
        }
    }
    // Damaged bytes in the middle of an MPEG-TS: errors counted, decoding goes on.
    let ts = make(
        &dir,
        "a.ts",
        src,
        60,
        &["-c:v", "libx264", "-pix_fmt", "yuv420p"],
    );
    let mut bytes = std::fs::read(&ts).unwrap();
    let n = bytes.len();
    // Three damaged stretches: one alone can land where H.264 conceals it without a report.
    for start in [n / 4, n / 2, 3 * n / 4] {
        for b in &mut bytes[start..(start + 4000).min(n)] {
            *b ^= 0x5a;
        }
    }
    let damaged = dir.join("damaged.ts");
    std::fs::write(&damaged, bytes).unwrap();
    let run = run_reader(fast(&damaged), vec![], 30, None);
    assert!(run.capture.received() > 10, "{}", run.capture.received());
    assert!(run.stats.decode_errors() > 0, "damage is counted");
}

#[test]
fn looping_outlasts_the_file() {
    let dir = temp_dir("loop");
    let path = make(
        &dir,
        "a.mkv",
        "testsrc2=s=64x48:r=30",
        10,
        &["-c:v", "ffv1"],
    );
    let config = ReaderConfig {
        looping: true,
        ..fast(&path)
    };
    // Keep a few frames only: holding all 35 would exhaust the reader's pool (32 buffers).
    let run = run_reader(config, vec![0, 5, 9, 10, 20, 34], 30, Some(35));
    assert_eq!(run.capture.received(), 35);
    assert!(run.stats.loops() >= 3, "{}", run.stats.loops());
    let frames = run.capture.frames();
    for pair in frames.windows(2) {
        assert!(
            pair[0].1.timestamp_ns() < pair[1].1.timestamp_ns(),
            "times keep increasing"
        );
    }
    // Frame 10 is the file's first frame again: same pixels as frame 0.
    assert_eq!((frames[2].0, frames[3].0), (9, 10));
    assert_eq!(packed(&frames[0].1), packed(&frames[3].1));
}

#[test]
fn start_offset_skips_the_first_half_second() {
    let dir = temp_dir("offset");
    let src = "testsrc2=s=160x120:r=30";
    let path = make(&dir, "a.mp4", src, 30, &["-c:v", "libx264", "-g", "10"]);
    let config = ReaderConfig {
        start_offset: Duration::from_millis(500),
        ..fast(&path)
    };
    let run = run_reader(config, vec![0], 30, None);
    assert_eq!(run.capture.received(), 15);
    let first = &run.capture.frames()[0].1;
    assert_eq!(first.timestamp_ns(), 500_000_000);
}

#[test]
fn realtime_pacing_repeats_and_drops_to_match_the_clock() {
    let dir = temp_dir("pacing");
    let path = make(
        &dir,
        "a.mkv",
        "testsrc2=s=64x48:r=30",
        30,
        &["-c:v", "ffv1"],
    );
    // A 60 fps clock shows each 30 fps frame twice.
    let run = run_reader(ReaderConfig::new(&path), vec![], 60, None);
    assert!(
        (59..=61).contains(&run.capture.received()),
        "{}",
        run.capture.received()
    );
    assert_eq!(run.stats.frames_dropped(), 0);
    // A 15 fps clock shows every other frame.
    let run = run_reader(ReaderConfig::new(&path), vec![], 15, None);
    assert!(
        (15..=16).contains(&run.capture.received()),
        "{}",
        run.capture.received()
    );
    assert!(
        run.stats.frames_dropped() >= 14,
        "{}",
        run.stats.frames_dropped()
    );
}
