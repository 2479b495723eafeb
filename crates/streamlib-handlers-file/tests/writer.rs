//! FileWriter against real FFmpeg: files written through a runtime, checked with ffprobe.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use streamlib_buffers::PooledBuf;
use streamlib_clock::{FreeRunningClock, Rational, SoftwareClock};
use streamlib_handlers_file::{
    Container, FileError, FileWriter, VideoCodec, WriterConfig, WriterStats,
};
use streamlib_handlers_video::{Pattern, TestPattern, TestPatternConfig};
use streamlib_ports::*;
use streamlib_runtime::{Stream, StreamRuntime};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("streamlib-writer-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Passes frames on unchanged, keeping a copy of each frame's bytes.
struct Recorder {
    input: InputPort<VideoFrame>,
    out: OutputPort<VideoFrame>,
    frames: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl StreamHandler for Recorder {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input).output(&self.out)
    }
    fn process(&mut self, _ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        while let Some(frame) = self.input.recv() {
            self.frames
                .lock()
                .unwrap()
                .push(frame.cpu_bytes().unwrap().to_vec());
            self.out.write(frame);
        }
        Ok(())
    }
}

/// Runs `frames` TestPattern frames of `width` × `height` at 30 fps into `config`; returns
/// the writer's stats and, when `record`, the bytes of every frame sent.
fn write_pattern(
    config: WriterConfig,
    width: u32,
    height: u32,
    frames: u64,
    record: bool,
) -> (WriterStats, Vec<Vec<u8>>) {
    let source = TestPattern::new(TestPatternConfig {
        width,
        height,
        pattern: Pattern::SmpteBars,
        moving_box: true,
        ..TestPatternConfig::default()
    })
    .unwrap();
    let writer = FileWriter::new(config).unwrap();
    let stats = writer.stats();
    let mut runtime =
        StreamRuntime::new(FreeRunningClock::new(Rational::fps(30)).with_limit(frames));
    let (src_out, writer_in) = (source.output(), writer.input());
    runtime.add_stream(Stream::new("pattern", source)).unwrap();
    runtime.add_stream(Stream::new("writer", writer)).unwrap();
    let recorded = Arc::new(Mutex::new(Vec::new()));
    if record {
        let recorder = Recorder {
            input: InputPort::new("video", MemoryCaps::CPU)
                .with_delivery(DeliveryMode::Ordered { capacity: 8 }),
            out: OutputPort::new("video", MemoryCaps::CPU),
            frames: Arc::clone(&recorded),
        };
        let (rec_in, rec_out) = (recorder.input.handle(), recorder.out.handle());
        runtime
            .add_stream(Stream::new("recorder", recorder))
            .unwrap();
        runtime.connect(&src_out, &rec_in).unwrap();
        runtime.connect(&rec_out, &writer_in).unwrap();
    } else {
        runtime.connect(&src_out, &writer_in).unwrap();
    }
    runtime.run().unwrap();
    let recorded = std::mem::take(&mut *recorded.lock().unwrap());
    (stats, recorded)
}

/// ffprobe's view of the first video stream and the format, as key → value.
fn probe(path: &Path) -> HashMap<String, String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=nb_read_frames,width,height,codec_name,r_frame_rate,pix_fmt",
        ])
        .args(["-show_entries", "format=duration"])
        .args(["-of", "default=nw=1"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Decodes the whole file; FFmpeg must have nothing to complain about.
fn assert_decodes_cleanly(path: &Path) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success(), "ffmpeg failed on {}", path.display());
    assert!(
        out.stderr.is_empty(),
        "ffmpeg complained about {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn check(
    path: &Path,
    frames: u64,
    codec: &str,
    (width, height): (u32, u32),
) -> HashMap<String, String> {
    let p = probe(path);
    assert_eq!(p["codec_name"], codec, "{p:?}");
    assert_eq!(p["nb_read_frames"], frames.to_string(), "{p:?}");
    assert_eq!(p["width"], width.to_string(), "{p:?}");
    assert_eq!(p["height"], height.to_string(), "{p:?}");
    assert_eq!(p["r_frame_rate"], "30/1", "{p:?}");
    let duration: f64 = p["duration"].parse().unwrap();
    let expected = frames as f64 / 30.0;
    assert!(
        (duration - expected).abs() <= 0.05,
        "duration {duration} s, expected {expected} s: {p:?}"
    );
    assert_decodes_cleanly(path);
    p
}

#[test]
fn h264_mp4_has_every_frame_and_the_right_duration() {
    let dir = TempDir::new("mp4");
    let path = dir.file("out.mp4");
    let (stats, _) = write_pattern(WriterConfig::new(&path), 320, 240, 30, false);
    assert_eq!(stats.frames_written(), 30);
    assert!(stats.is_finalized());
    let p = check(&path, 30, "h264", (320, 240));
    assert_eq!(p["pix_fmt"], "yuv420p");
}

#[test]
fn ffv1_mkv_round_trip_is_pixel_identical() {
    let dir = TempDir::new("mkv");
    let path = dir.file("out.mkv");
    let config = WriterConfig {
        codec: Some(VideoCodec::Ffv1),
        ..WriterConfig::new(&path)
    };
    let (stats, sent) = write_pattern(config, 320, 240, 30, true);
    assert_eq!(stats.frames_written(), 30);
    let p = check(&path, 30, "ffv1", (320, 240));
    assert_eq!(p["pix_fmt"], "bgra");
    let decoded = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "rawvideo", "-pix_fmt", "rgba", "-"])
        .output()
        .unwrap();
    assert!(decoded.status.success());
    assert_eq!(sent.len(), 30);
    let frame_len = 320 * 240 * 4;
    assert_eq!(decoded.stdout.len(), 30 * frame_len);
    for (i, (got, want)) in decoded.stdout.chunks(frame_len).zip(&sent).enumerate() {
        assert!(
            got == want.as_slice(),
            "frame {i} differs after the round trip"
        );
    }
}

#[test]
fn vp9_webm() {
    let dir = TempDir::new("webm");
    let path = dir.file("out.webm");
    let (stats, _) = write_pattern(WriterConfig::new(&path), 320, 240, 30, false);
    assert_eq!(stats.frames_written(), 30);
    check(&path, 30, "vp9", (320, 240));
}

#[test]
fn y4m_is_raw_yuv420p() {
    let dir = TempDir::new("y4m");
    let path = dir.file("out.y4m");
    let (stats, _) = write_pattern(WriterConfig::new(&path), 320, 240, 30, false);
    assert_eq!(stats.frames_written(), 30);
    let p = check(&path, 30, "rawvideo", (320, 240));
    assert_eq!(p["pix_fmt"], "yuv420p");
    // Header plus 30 frames of "FRAME\n" and 320×240×1.5 bytes.
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len > 30 * (6 + 320 * 240 * 3 / 2), "{len} bytes");
}

#[test]
fn h265_mov() {
    let dir = TempDir::new("mov");
    let path = dir.file("out.mov");
    let config = WriterConfig {
        codec: Some(VideoCodec::H265),
        crf: Some(30),
        preset: Some("ultrafast".to_owned()),
        ..WriterConfig::new(&path)
    };
    let (stats, _) = write_pattern(config, 320, 240, 30, false);
    assert_eq!(stats.frames_written(), 30);
    check(&path, 30, "hevc", (320, 240));
}

#[test]
fn odd_size_h264_drops_last_column_and_row() {
    let dir = TempDir::new("odd");
    let path = dir.file("odd.mp4");
    write_pattern(WriterConfig::new(&path), 321, 241, 30, false);
    check(&path, 30, "h264", (320, 240));
}

#[test]
fn odd_size_ffv1_and_vp9_keep_their_size() {
    let dir = TempDir::new("odd-keep");
    let mkv = dir.file("odd.mkv");
    let config = WriterConfig {
        codec: Some(VideoCodec::Ffv1),
        ..WriterConfig::new(&mkv)
    };
    write_pattern(config, 321, 241, 10, false);
    let p = probe(&mkv);
    assert_eq!((p["width"].as_str(), p["height"].as_str()), ("321", "241"));
    assert_eq!(p["nb_read_frames"], "10");
    let webm = dir.file("odd.webm");
    write_pattern(WriterConfig::new(&webm), 321, 241, 10, false);
    let p = probe(&webm);
    assert_eq!((p["width"].as_str(), p["height"].as_str()), ("321", "241"));
    assert_eq!(p["nb_read_frames"], "10");
    assert_decodes_cleanly(&webm);
}

#[test]
fn stopping_mid_stream_leaves_a_complete_file() {
    let dir = TempDir::new("stop");
    let path = dir.file("stopped.mp4");
    let source = TestPattern::new(TestPatternConfig {
        width: 320,
        height: 240,
        pattern: Pattern::SmpteBars,
        moving_box: true,
        ..TestPatternConfig::default()
    })
    .unwrap();
    let writer = FileWriter::new(WriterConfig {
        fps: Some(Rational::fps(60)),
        ..WriterConfig::new(&path)
    })
    .unwrap();
    let stats = writer.stats();
    let mut runtime = StreamRuntime::new(SoftwareClock::new(Rational::fps(60)));
    let (src_out, writer_in) = (source.output(), writer.input());
    runtime.add_stream(Stream::new("pattern", source)).unwrap();
    runtime.add_stream(Stream::new("writer", writer)).unwrap();
    runtime.connect(&src_out, &writer_in).unwrap();
    let handle = runtime.handle();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        handle.stop();
    });
    runtime.run().unwrap();
    stopper.join().unwrap();
    assert!(stats.is_finalized());
    let written = stats.frames_written();
    assert!(
        (10..=40).contains(&written),
        "{written} frames in 0.5 s at 60 fps"
    );
    let p = probe(&path);
    assert_eq!(p["nb_read_frames"], written.to_string(), "{p:?}");
    assert_decodes_cleanly(&path);
}

fn frame(width: u32, height: u32, n: u64) -> VideoFrame {
    let layout = FrameLayout::new(width, height, PixelFormat::Rgba8).unwrap();
    let bytes = vec![(n * 8 % 256) as u8; layout.buffer_len()];
    VideoFrame::cpu(layout, PooledBuf::from_vec(bytes))
        .unwrap()
        .with_timing(0, n, streamlib_clock::ClockSourceId(0))
}

#[test]
fn dropping_the_writer_finalizes_the_file() {
    let dir = TempDir::new("drop");
    let path = dir.file("dropped.mkv");
    let mut writer = FileWriter::new(WriterConfig {
        fps: Some(Rational::fps(30)),
        ..WriterConfig::new(&path)
    })
    .unwrap();
    let stats = writer.stats();
    for n in 0..6 {
        writer.write_frame(&frame(64, 48, n)).unwrap();
    }
    drop(writer);
    assert!(stats.is_finalized());
    check(&path, 6, "h264", (64, 48));
}

#[test]
fn finish_is_idempotent_and_later_frames_are_refused() {
    let dir = TempDir::new("twice");
    let path = dir.file("twice.mp4");
    let mut writer = FileWriter::new(WriterConfig::new(&path)).unwrap();
    writer.finish().unwrap(); // no frame: nothing to do, no file
    assert!(!path.exists());
    writer.write_frame(&frame(64, 48, 0)).unwrap();
    writer.finish().unwrap();
    writer.finish().unwrap();
    StreamHandler::on_stop(&mut writer).unwrap();
    let err = writer.write_frame(&frame(64, 48, 1)).unwrap_err();
    assert!(matches!(err, FileError::Encode { .. }), "{err}");
    assert_eq!(probe(&path)["nb_read_frames"], "1");
}

#[test]
fn size_change_and_gpu_frames_are_bad_frames() {
    #[derive(Debug)]
    struct FakeTexture;
    impl GpuResource for FakeTexture {
        fn device_label(&self) -> &str {
            "fake"
        }
        fn byte_size(&self) -> usize {
            0
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    }
    let dir = TempDir::new("bad");
    let path = dir.file("bad.mkv");
    let mut writer = FileWriter::new(WriterConfig::new(&path)).unwrap();
    let layout = FrameLayout::new(64, 48, PixelFormat::Rgba8).unwrap();
    let gpu = VideoFrame::gpu(layout, GpuFrame::new(Arc::new(FakeTexture)));
    let err = writer.write_frame(&gpu).unwrap_err();
    assert!(matches!(err, FileError::BadFrame { .. }), "{err}");
    assert!(err.to_string().contains("bad.mkv"), "{err}");
    writer.write_frame(&frame(64, 48, 0)).unwrap();
    let err = writer.write_frame(&frame(80, 48, 1)).unwrap_err();
    assert!(matches!(err, FileError::BadFrame { .. }), "{err}");
    assert!(err.to_string().contains("80x48"), "{err}");
    writer.finish().unwrap();
    assert_eq!(probe(&path)["nb_read_frames"], "1");
}

#[test]
fn configuration_errors_name_the_path() {
    let dir = TempDir::new("errors");
    let unknown = dir.file("out.avi2");
    let err = FileWriter::new(WriterConfig::new(&unknown)).unwrap_err();
    assert!(
        matches!(err, FileError::UnsupportedContainer { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("out.avi2"), "{err}");

    let missing = dir.file("no/such/dir/out.mp4");
    let err = FileWriter::new(WriterConfig::new(&missing)).unwrap_err();
    assert!(matches!(err, FileError::Unwritable { .. }), "{err}");
    assert!(err.to_string().contains("no/such/dir"), "{err}");

    let mp4 = dir.file("ffv1.mp4");
    let err = FileWriter::new(WriterConfig {
        codec: Some(VideoCodec::Ffv1),
        ..WriterConfig::new(&mp4)
    })
    .unwrap_err();
    assert!(matches!(err, FileError::UnsupportedCodec { .. }), "{err}");
    assert!(err.to_string().contains("ffv1.mp4"), "{err}");

    let webm = dir.file("h264.webm");
    let err = FileWriter::new(WriterConfig {
        codec: Some(VideoCodec::H264),
        ..WriterConfig::new(&webm)
    })
    .unwrap_err();
    assert!(matches!(err, FileError::UnsupportedCodec { .. }), "{err}");

    let y4m = dir.file("vp9.y4m");
    let err = FileWriter::new(WriterConfig {
        codec: Some(VideoCodec::Vp9),
        ..WriterConfig::new(&y4m)
    })
    .unwrap_err();
    assert!(matches!(err, FileError::UnsupportedCodec { .. }), "{err}");

    let err = FileWriter::new(WriterConfig {
        crf: Some(60),
        ..WriterConfig::new(dir.file("crf.mp4"))
    })
    .unwrap_err();
    assert!(
        matches!(err, FileError::OutOfRange { what: "crf", .. }),
        "{err}"
    );

    let err = FileWriter::new(WriterConfig {
        preset: Some("warp".to_owned()),
        ..WriterConfig::new(dir.file("preset.mp4"))
    })
    .unwrap_err();
    assert!(
        matches!(err, FileError::OutOfRange { what: "preset", .. }),
        "{err}"
    );

    // `new` probes writability without leaving a file behind.
    let ok = dir.file("ok.mp4");
    let writer = FileWriter::new(WriterConfig::new(&ok)).unwrap();
    assert_eq!(writer.container(), Container::Mp4);
    assert_eq!(writer.codec(), Some(VideoCodec::H264));
    assert!(!ok.exists());
}

#[test]
fn container_from_extension() {
    let c = |p: &str| Container::from_path(Path::new(p));
    assert_eq!(c("a.MP4"), Some(Container::Mp4));
    assert_eq!(c("a.mkv"), Some(Container::Mkv));
    assert_eq!(c("a.mov"), Some(Container::Mov));
    assert_eq!(c("a.webm"), Some(Container::Webm));
    assert_eq!(c("a.y4m"), Some(Container::Y4m));
    assert_eq!(c("a.avi"), None);
    assert_eq!(c("noext"), None);
}
