//! Round trips through real files: TestPattern → FileWriter, then FileReader back, compared
//! frame by frame: FFV1 must be pixel-identical, H.264 at least 40 dB PSNR.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::path::{Path, PathBuf};

use streamlib_clock::{FreeRunningClock, Rational};
use streamlib_handlers_file::{
    FileReader, FileWriter, ReaderConfig, ReaderPacing, VideoCodec, WriterConfig,
};
use streamlib_handlers_video::{FrameCapture, Pattern, TestPattern, TestPatternConfig};
use streamlib_ports::VideoFrame;
use streamlib_runtime::{Stream, StreamRuntime};

const FRAMES: u64 = 20;

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "streamlib-round-trip-{}-{}",
        std::process::id(),
        name
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Writes FRAMES test-pattern frames to `path`, returning the frames as sent.
fn write(path: &Path, codec: VideoCodec, crf: Option<u8>, pattern: Pattern) -> Vec<VideoFrame> {
    let mut rt = StreamRuntime::new(FreeRunningClock::new(Rational::fps(30)).with_limit(FRAMES));
    let pattern = TestPattern::new(TestPatternConfig {
        width: 320,
        height: 240,
        pattern,
        moving_box: true,
        ..TestPatternConfig::default()
    })
    .unwrap();
    let writer = FileWriter::new(WriterConfig {
        codec: Some(codec),
        crf,
        ..WriterConfig::new(path)
    })
    .unwrap();
    let sent = FrameCapture::new(0..FRAMES);
    let seen = sent.handle();
    let (out, w_in, c_in) = (pattern.output(), writer.input(), sent.input());
    rt.add_stream(Stream::new("pattern", pattern)).unwrap();
    rt.add_stream(Stream::new("writer", writer)).unwrap();
    rt.add_stream(Stream::new("sent", sent)).unwrap();
    rt.connect(&out, &w_in).unwrap();
    rt.connect(&out, &c_in).unwrap();
    rt.run().unwrap();
    seen.frames().into_iter().map(|(_, f)| f).collect()
}

/// Reads every frame of `path` back as RGBA.
fn read(path: &Path) -> Vec<VideoFrame> {
    let mut rt = StreamRuntime::new(FreeRunningClock::new(Rational::fps(30)));
    let reader = FileReader::new(ReaderConfig {
        pacing: ReaderPacing::AsFastAsPossible,
        force_format: true,
        ..ReaderConfig::new(path)
    })
    .unwrap();
    let got = FrameCapture::new(0..FRAMES);
    let seen = got.handle();
    let (out, input) = (reader.output(), got.input());
    rt.add_stream(Stream::new("reader", reader)).unwrap();
    rt.add_stream(Stream::new("got", got)).unwrap();
    rt.connect(&out, &input).unwrap();
    rt.run().unwrap();
    seen.frames().into_iter().map(|(_, f)| f).collect()
}

/// Rows of RGB bytes (alpha and stride padding left out).
fn rgb(frame: &VideoFrame) -> Vec<u8> {
    let bytes = frame.cpu_bytes().unwrap();
    let (w, stride) = (frame.width() as usize, frame.stride() as usize);
    bytes
        .chunks(stride)
        .take(frame.height() as usize)
        .flat_map(|row| row[..w * 4].chunks_exact(4).flat_map(|px| px[..3].to_vec()))
        .collect()
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let mse = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

#[test]
fn ffv1_round_trip_is_pixel_identical() {
    let path = temp_path("lossless.mkv");
    let sent = write(&path, VideoCodec::Ffv1, None, Pattern::SmpteBars);
    let back = read(&path);
    assert_eq!(sent.len(), FRAMES as usize);
    assert_eq!(back.len(), FRAMES as usize);
    for (i, (a, b)) in sent.iter().zip(&back).enumerate() {
        assert_eq!((b.width(), b.height()), (320, 240));
        assert!(
            rgb(a) == rgb(b),
            "frame {i} differs after an FFV1 round trip"
        );
    }
}

#[test]
fn h264_round_trip_keeps_40_db() {
    // A gray gradient with the moving box: 4:2:0 chroma subsampling cannot smear colour edges
    // here, so the figure measures the codec and the colour conversions, not the subsampling.
    let path = temp_path("lossy.mp4");
    let sent = write(&path, VideoCodec::H264, Some(18), Pattern::Gradient);
    let back = read(&path);
    assert_eq!(back.len(), FRAMES as usize);
    for (i, (a, b)) in sent.iter().zip(&back).enumerate() {
        let db = psnr(&rgb(a), &rgb(b));
        assert!(db >= 40.0, "frame {i}: PSNR {db:.1} dB < 40 dB");
    }
}

#[test]
fn h264_round_trip_keeps_the_bar_colours() {
    // The SMPTE bars through yuv420p H.264 and back: colour edges smear over a pixel or two
    // (4:2:0; about 30 dB over the whole frame), but each bar's centre keeps its colour, which
    // a matrix or range mismatch between writer and reader would shift.
    let path = temp_path("bars.mp4");
    let sent = write(&path, VideoCodec::H264, Some(18), Pattern::SmpteBars);
    let back = read(&path);
    let (a, b) = (&sent[0], &back[0]);
    let (ra, rb) = (rgb(a), rgb(b));
    let w = a.width() as usize;
    for bar in 0..7 {
        let x = (2 * bar + 1) * w / 14;
        let y = 20;
        let at = (y * w + x) * 3;
        for c in 0..3 {
            let (want, got) = (i32::from(ra[at + c]), i32::from(rb[at + c]));
            assert!(
                (want - got).abs() <= 4,
                "bar {bar} channel {c}: sent {want}, read back {got}"
            );
        }
    }
}
