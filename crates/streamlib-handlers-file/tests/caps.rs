//! Caps negotiation through the file handlers: the reader declares what it probed (size,
//! exact rate, native format first), the writer learns it at start and writes at the
//! source's rate with the frames' own numbering, so `filereader ! filewriter` keeps the
//! frame count, rate and duration, as FFmpeg does (checked with the real ffprobe).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "tests; what ffprobe reports is printed for the record (--nocapture)"
)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use streamlib_buffers::PooledBuf;
use streamlib_clock::{ClockSourceId, FreeRunningClock, Rational};
use streamlib_handlers_file::{
    FileReader, FileWriter, ReaderConfig, ReaderPacing, ReaderStats, VideoCodec, WriterConfig,
    WriterStats,
};
use streamlib_handlers_video::FrameCapture;
use streamlib_ports::{Caps, FrameLayout, PixelFormat, VideoFrame};
use streamlib_runtime::{Stream, StreamRuntime};

/// A fresh directory for one test's files.
fn temp_dir(name: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "streamlib-caps-{}-{}-{name}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `frames` frames of `testsrc2` at `size` and `rate` into `dir/name`, encoded with `codec`.
/// (`testsrc2` evens odd sizes of subsampled formats itself: it draws RGB here, and the
/// encoder's format conversion keeps the size.)
fn make(dir: &Path, name: &str, size: &str, rate: &str, frames: u32, codec: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let source = format!("testsrc2=size={size}:rate={rate},format=rgb24");
    let out = Command::new("ffmpeg")
        .args([
            "-v", "error", "-y", "-nostdin", "-f", "lavfi", "-i", &source,
        ])
        .args(["-frames:v", &frames.to_string()])
        .args(codec)
        .arg(&path)
        .output()
        .expect("ffmpeg CLI");
    assert!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// What ffprobe says about the first video stream (decoding every frame) and the file:
/// `nb_read_frames`, `r_frame_rate`, `avg_frame_rate`, `duration` (the stream's, else the
/// file's), `width`, `height`, `pix_fmt`.
fn probe(path: &Path) -> HashMap<String, String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_frames"])
        .args([
            "-show_entries",
            "stream=nb_read_frames,r_frame_rate,avg_frame_rate,duration,width,height,pix_fmt:\
             format=duration",
            "-of",
            "flat",
        ])
        .arg(path)
        .output()
        .expect("ffprobe CLI");
    assert!(out.status.success(), "ffprobe {}", path.display());
    let mut map = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim_matches('"').to_owned();
        let key = key.rsplit('.').next().unwrap_or(key);
        if line.starts_with("format.") {
            map.entry("duration".to_owned()).or_insert(value);
        } else if !(key == "duration" && value == "N/A") {
            map.insert(key.to_owned(), value);
        }
    }
    map
}

/// Asserts `path` has `frames` frames at `rate` (ffprobe's `a/b` spelling) lasting
/// `frames / rate` seconds (to the millisecond, as ffprobe prints it for Matroska).
fn assert_same_timing(path: &Path, frames: u64, rate: &str) {
    let p = probe(path);
    eprintln!("{}: {p:?}", path.display());
    assert_eq!(p["nb_read_frames"], frames.to_string(), "{p:?}");
    assert_eq!(p["r_frame_rate"], rate, "{p:?}");
    assert_eq!(p["avg_frame_rate"], rate, "{p:?}");
    let (num, den) = rate.split_once('/').unwrap();
    let expected = frames as f64 * den.parse::<f64>().unwrap() / num.parse::<f64>().unwrap();
    let duration: f64 = p["duration"].parse().unwrap();
    assert!(
        (duration - expected).abs() < 0.0015,
        "duration {duration} s, expected {expected} s: {p:?}"
    );
}

struct Transcode {
    reader: ReaderStats,
    writer: WriterStats,
    /// The caps negotiated on the reader → writer link.
    caps: Caps,
}

/// filereader ! filewriter through a real runtime on a free-running clock at `clock`;
/// `run()` must return on its own at end of stream.
fn transcode(reader: ReaderConfig, writer: WriterConfig, clock: Rational) -> Transcode {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let reader = FileReader::new(reader).unwrap();
        let writer = FileWriter::new(writer).unwrap();
        let (reader_stats, writer_stats) = (reader.stats(), writer.stats());
        let (out, input) = (reader.output(), writer.input());
        let mut rt = StreamRuntime::new(FreeRunningClock::new(clock));
        rt.add_stream(Stream::new("reader", reader)).unwrap();
        rt.add_stream(Stream::new("writer", writer)).unwrap();
        rt.connect(&out, &input).unwrap();
        let caps = rt.negotiate().unwrap()[0].caps.clone().unwrap();
        assert_eq!(rt.source_rates().len(), 1);
        rt.run().unwrap();
        let _ = tx.send(Transcode {
            reader: reader_stats,
            writer: writer_stats,
            caps,
        });
    });
    rx.recv_timeout(Duration::from_secs(120))
        .expect("runtime did not finish within 120 s (or panicked)")
}

/// The clip: 50 frames, 25 fps, 322x182 yuv420p in MOV.
fn clip_25(dir: &Path) -> PathBuf {
    make(
        dir,
        "clip.mov",
        "322x182",
        "25",
        50,
        &["-pix_fmt", "yuv420p"],
    )
}

#[test]
fn the_reader_declares_what_it_probed() {
    let dir = temp_dir("declare");
    let clip = clip_25(&dir);
    let reader = FileReader::new(ReaderConfig::new(&clip)).unwrap();
    assert_eq!(reader.info().pixel_format, "yuv420p");
    assert_eq!(reader.info().native_format, Some(PixelFormat::I420));
    assert_eq!(reader.format(), PixelFormat::I420, "native first");
    let mut rt = StreamRuntime::new(FreeRunningClock::new(Rational::fps(30)));
    rt.add_stream(Stream::new("reader", reader)).unwrap();
    let rates = rt.source_rates();
    assert_eq!(rates.len(), 1, "{rates:?}");
    assert_eq!(rates[0].0, "reader.video");
    assert_eq!((rates[0].1.num, rates[0].1.den), (25, 1));

    // `format=` forces one format; otherwise the configured one follows the native one.
    let forced = FileReader::new(ReaderConfig {
        format: PixelFormat::Uyvy,
        force_format: true,
        ..ReaderConfig::new(&clip)
    })
    .unwrap();
    assert_eq!(forced.format(), PixelFormat::Uyvy);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The reported defect: a 50-frame 25 fps file came out as 60 frames at 30 fps (realtime
/// pacing on a 30 fps clock) or 50 frames at 30 fps (fast pacing). At the file's rate, in
/// both pacings, and even on a 30 fps clock, it stays 50 frames at 25 fps, 2.0 s.
#[test]
fn a_25_fps_file_stays_50_frames_at_25_fps() {
    let dir = temp_dir("25fps");
    let clip = clip_25(&dir);
    for (pacing, clock, name) in [
        (ReaderPacing::Realtime, Rational::fps(25), "realtime.mp4"),
        (
            ReaderPacing::AsFastAsPossible,
            Rational::fps(25),
            "fast.mp4",
        ),
        (
            ReaderPacing::AsFastAsPossible,
            Rational::fps(30),
            "fast-30.mp4",
        ),
        (ReaderPacing::Realtime, Rational::fps(30), "realtime-30.mp4"),
    ] {
        let out = dir.join(name);
        let run = transcode(
            ReaderConfig {
                pacing,
                ..ReaderConfig::new(&clip)
            },
            WriterConfig::new(&out),
            clock,
        );
        assert_eq!(run.caps.to_string(), "video i420 322x182 25", "{name}");
        assert_eq!(run.writer.frames_written(), 50, "{name}");
        assert_same_timing(&out, 50, "25/1");
        // The decoder's yuv420p went through as I420: copied, never converted.
        assert_eq!(run.reader.frames_copied(), 50, "{name}");
        assert_eq!(run.reader.frames_converted(), 0, "{name}");
        if clock.num == 30 && pacing == ReaderPacing::Realtime {
            // The reader repeated 10 frames on the faster clock; the writer skipped them.
            assert_eq!(run.reader.frames_output(), 60, "{name}");
            assert_eq!(run.writer.repeats_skipped(), 10, "{name}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_ntsc_rate_stays_exact() {
    let dir = temp_dir("ntsc");
    let clip = make(
        &dir,
        "clip.mov",
        "322x182",
        "30000/1001",
        50,
        &["-pix_fmt", "yuv420p"],
    );
    let rate = Rational::FPS_29_97;
    for (pacing, name) in [
        (ReaderPacing::Realtime, "realtime.mp4"),
        (ReaderPacing::AsFastAsPossible, "fast.mov"),
    ] {
        let out = dir.join(name);
        let run = transcode(
            ReaderConfig {
                pacing,
                ..ReaderConfig::new(&clip)
            },
            WriterConfig::new(&out),
            rate,
        );
        assert_eq!(run.caps.to_string(), "video i420 322x182 30000/1001");
        assert_eq!(run.writer.frames_written(), 50, "{name}");
        assert_same_timing(&out, 50, "30000/1001");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// An odd size, an odd rate and 10-bit 4:2:2 (ProRes in MOV, FFV1 in Matroska): 4:2:2
/// negotiates UYVY (no chroma resolution lost), the size stays the source's in FFV1, and
/// frame count, rate and duration are the source's.
#[test]
fn ten_bit_422_at_an_odd_size_and_rate_keeps_its_timing() {
    let dir = temp_dir("10bit");
    for (name, codec) in [
        (
            "clip.mov",
            &[
                "-c:v",
                "prores_ks",
                "-profile:v",
                "3",
                "-pix_fmt",
                "yuv422p10le",
            ][..],
        ),
        ("clip.mkv", &["-c:v", "ffv1", "-pix_fmt", "yuv422p10le"][..]),
    ] {
        let clip = make(&dir, name, "323x181", "30000/1001", 50, codec);
        let source = probe(&clip);
        assert_eq!(source["pix_fmt"], "yuv422p10le");
        assert_eq!(source["r_frame_rate"], "30000/1001");
        let size = format!("{}x{}", source["width"], source["height"]);
        assert_eq!(size, "323x181");
        let out = dir.join(format!("out-{name}"));
        let run = transcode(
            ReaderConfig::new(&clip),
            WriterConfig {
                codec: Some(VideoCodec::Ffv1),
                ..WriterConfig::new(&out)
            },
            Rational::FPS_29_97,
        );
        assert_eq!(
            run.caps.to_string(),
            format!("video uyvy {size} 30000/1001"),
            "{name}"
        );
        assert_eq!(run.reader.frames_converted(), 50, "{name}");
        assert_same_timing(&out, 50, "30000/1001");
        let p = probe(&out);
        assert_eq!(format!("{}x{}", p["width"], p["height"]), size, "{p:?}");
        assert_eq!(p["pix_fmt"], "yuv422p", "{p:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The packed bytes of an I420 frame (strides dropped): luma, then each chroma plane.
fn i420_bytes(frame: &VideoFrame) -> Vec<u8> {
    let bytes = frame.cpu_bytes().unwrap();
    let (w, h, s) = (
        frame.width() as usize,
        frame.height() as usize,
        frame.stride() as usize,
    );
    let (cw, ch, cs) = (w.div_ceil(2), h.div_ceil(2), s.div_ceil(2));
    let mut out = Vec::with_capacity(w * h + 2 * cw * ch);
    for r in 0..h {
        out.extend_from_slice(&bytes[r * s..r * s + w]);
    }
    for plane in 0..2 {
        let base = s * h + plane * cs * ch;
        for r in 0..ch {
            out.extend_from_slice(&bytes[base + r * cs..base + r * cs + cw]);
        }
    }
    out
}

/// The native pass-through copies the decoder's planes exactly, odd chroma sizes included:
/// byte-identical to `ffmpeg -f rawvideo` of the same file.
#[test]
fn native_frames_are_the_decoders_planes() {
    let dir = temp_dir("native");
    let clip = make(
        &dir,
        "clip.mkv",
        "323x181",
        "25",
        5,
        &["-c:v", "ffv1", "-pix_fmt", "yuv420p"],
    );
    let raw = dir.join("clip.yuv");
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-nostdin", "-i"])
        .arg(&clip)
        .args(["-f", "rawvideo", "-pix_fmt", "yuv420p"])
        .arg(&raw)
        .output()
        .unwrap();
    assert!(out.status.success());
    let reference = std::fs::read(&raw).unwrap();

    let reader = FileReader::new(ReaderConfig {
        pacing: ReaderPacing::AsFastAsPossible,
        ..ReaderConfig::new(&clip)
    })
    .unwrap();
    let stats = reader.stats();
    let capture = FrameCapture::new(0..5);
    let seen = capture.handle();
    let (output, input) = (reader.output(), capture.input());
    let mut rt = StreamRuntime::new(FreeRunningClock::new(Rational::fps(25)));
    rt.add_stream(Stream::new("reader", reader)).unwrap();
    rt.add_stream(Stream::new("capture", capture)).unwrap();
    rt.connect(&output, &input).unwrap();
    rt.run().unwrap();
    assert_eq!(stats.frames_copied(), 5);
    let frames = seen.frames();
    assert_eq!(frames.len(), 5);
    let size = reference.len() / 5;
    for (i, (_, frame)) in frames.iter().enumerate() {
        assert_eq!(frame.format(), PixelFormat::I420);
        assert_eq!(frame.frame_number(), i as u64, "media frame numbers from 0");
        assert_eq!(frame.timestamp_ns(), i as u64 * 40_000_000);
        assert!(
            i420_bytes(frame) == reference[i * size..(i + 1) * size],
            "frame {i} differs from the CLI's decode"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Driven by hand: a frame sent again (same number and timestamp) is written once.
#[test]
fn the_writer_writes_a_repeated_frame_once() {
    let dir = temp_dir("repeat");
    let path = dir.join("out.mkv");
    let mut writer = FileWriter::new(WriterConfig {
        fps: Some(Rational::fps(25)),
        ..WriterConfig::new(&path)
    })
    .unwrap();
    let layout = FrameLayout::new(64, 48, PixelFormat::I420).unwrap();
    for n in [0u64, 0, 1, 2, 2, 2, 3] {
        let frame = VideoFrame::cpu(
            layout,
            PooledBuf::from_vec(vec![n as u8 * 40; layout.buffer_len()]),
        )
        .unwrap()
        .with_timing(n * 40_000_000, n, ClockSourceId(0));
        writer.write_frame(&frame).unwrap();
    }
    assert_eq!(writer.stats().repeats_skipped(), 3);
    writer.finish().unwrap();
    assert_same_timing(&path, 4, "25/1");
    let _ = std::fs::remove_dir_all(&dir);
}
