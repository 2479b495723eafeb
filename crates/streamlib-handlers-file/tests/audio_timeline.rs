//! The audio track is placed on the video's timeline by timestamps: audio that starts before
//! the first video frame is cut there, audio that starts later begins that much into the file,
//! so a beep and a flash stamped with the same clock time decode together (within 1 ms),
//! measured with the FFmpeg CLI. The writer is driven by hand with frames and buffers of
//! chosen timestamps (a pipeline starts both on the same tick and would not show it).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "tests; measured offsets are printed for the record (--nocapture)"
)]

use std::path::{Path, PathBuf};

use streamlib_buffers::PooledBuf;
use streamlib_clock::{ClockSourceId, Rational};
use streamlib_handlers_file::{AudioConfig, FileWriter, WriterConfig};
use streamlib_ports::{AudioBuffer, FrameLayout, PixelFormat, VideoFrame};
use streamlib_test_support::media;

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "streamlib-audio-timeline-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const RATE: u32 = 48_000;
const SECOND: u64 = 1_000_000_000;
const FPS: u64 = 30;
const WIDTH: u32 = 64;
const HEIGHT: u32 = 48;

/// A 1 kHz beep of 50 ms starting on each second of the clock, at `rate`, from sample `first`.
fn ticks(first: u64, frames: usize) -> Vec<f32> {
    (first..first + frames as u64)
        .map(|n| {
            let pos = n % u64::from(RATE);
            if pos < u64::from(RATE) / 20 {
                let t = pos as f64 / f64::from(RATE);
                (0.8 * (std::f64::consts::TAU * 1000.0 * t).sin()) as f32
            } else {
                0.0
            }
        })
        .collect()
}

/// Writes frames from clock time `video_from` and audio from `audio_from` (ns) until `until`
/// into `path`: a white frame on each second, black otherwise, and the ticks.
/// `video_clock_ns` is added to the frames' timestamps (not the buffers'): 0 for one clock.
fn write(path: &Path, video_from: u64, audio_from: u64, until: u64, video_clock_ns: u64) {
    let mut writer = FileWriter::new(WriterConfig {
        fps: Some(Rational::fps(30)),
        audio: Some(AudioConfig::new(RATE, 1)),
        ..WriterConfig::new(path)
    })
    .unwrap();
    let layout = FrameLayout::new(WIDTH, HEIGHT, PixelFormat::Gray8).unwrap();
    let per_tick = (u64::from(RATE) / FPS) as usize;
    for tick in 0..until * FPS / SECOND {
        let t = tick * SECOND / FPS;
        let sample = tick * u64::from(RATE) / FPS;
        if t >= audio_from {
            let buffer = AudioBuffer::new(
                PooledBuf::from_vec(ticks(sample, per_tick)),
                1,
                RATE,
                sample * SECOND / u64::from(RATE),
            )
            .unwrap();
            writer.write_audio(&buffer).unwrap();
        }
        if t >= video_from {
            let luma: u8 = if tick % FPS == 0 { 255 } else { 0 };
            let pixels = vec![luma; layout.buffer_len()];
            let frame = VideoFrame::cpu(layout, PooledBuf::from_vec(pixels))
                .unwrap()
                .with_timing(t + video_clock_ns, tick, ClockSourceId::SOFTWARE);
            if let Err(e) = writer.write_frame(&frame) {
                panic!("frame {tick}: {e}");
            }
        }
    }
    writer.finish().unwrap();
}

/// The flash pts and the beep times of `path`, in file seconds.
fn onsets(path: &Path) -> (Vec<f64>, Vec<f64>) {
    (
        media::flash_onsets(path, WIDTH as usize, HEIGHT as usize),
        media::beep_onsets(path),
    )
}

/// Writes `name` with video from `video_from` and audio from `audio_from` (clock ns) and checks
/// the flashes land at `expected_flashes` (file seconds from the video's start) and every beep
/// within `bar` seconds of its flash: 0.1 ms where the container counts in samples (MP4), 0.5
/// ms where it counts in milliseconds (Matroska, WebM).
fn assert_together(name: &str, video_from: u64, audio_from: u64, expected_flashes: &[f64]) {
    let bar = if name.ends_with(".mp4") { 1e-4 } else { 5e-4 };
    let dir = TempDir::new(name);
    let path = dir.0.join(name);
    write(&path, video_from, audio_from, 4 * SECOND + SECOND / 10, 0);
    let (video, audio) = onsets(&path);
    // Matroska shifts the whole file by the AAC priming: expected times count from the video.
    let start = media::probe_f64(&path, "v:0", "stream=start_time");
    eprintln!("{name}: flashes {video:?}, beeps {audio:?}");
    assert_eq!(video.len(), expected_flashes.len(), "{video:?}");
    for (v, e) in video.iter().zip(expected_flashes) {
        assert!(
            (v - start - e).abs() < 0.002,
            "{name}: flash at {v} s from a video start of {start} s, expected {e} s"
        );
    }
    // Every beep that was written after the first frame has its flash.
    let beeps: Vec<f64> = audio
        .iter()
        .copied()
        .filter(|&a| a >= video[0] - 0.01)
        .collect();
    assert!(!beeps.is_empty(), "{name}: {audio:?}");
    for a in beeps {
        let nearest = media::offset_from_nearest_flash(a, &video).unwrap();
        eprintln!(
            "{name}: beep at {a:.6} s, {:+.3} ms from its flash",
            nearest * 1e3
        );
        assert!(
            nearest.abs() < bar,
            "{name}: beep {:+.3} ms off",
            nearest * 1e3
        );
    }
}

#[test]
fn audio_from_before_the_first_frame_is_cut_there() {
    // Video from 0.5 s of the clock (file time zero), audio from 0: the flashes at 1, 2, 3, 4 s
    // of the clock are at 0.5, 1.5, 2.5, 3.5 s of the file, and so are the beeps.
    assert_together("early.mp4", SECOND / 2, 0, &[0.5, 1.5, 2.5, 3.5]);
    assert_together("early.mkv", SECOND / 2, 0, &[0.5, 1.5, 2.5, 3.5]);
}

#[test]
fn audio_from_after_the_first_frame_starts_later_in_the_file() {
    // Video from 0, audio from 1.2 s: the beeps at 2, 3, 4 s land on their flashes.
    assert_together(
        "late.mp4",
        0,
        SECOND + SECOND / 5,
        &[0.0, 1.0, 2.0, 3.0, 4.0],
    );
    assert_together(
        "late.webm",
        0,
        SECOND + SECOND / 5,
        &[0.0, 1.0, 2.0, 3.0, 4.0],
    );
}

#[test]
fn audio_on_another_clock_starts_with_the_first_frame() {
    // Frames stamped 100 s later than the buffers that go with them (two clocks): the track
    // is not cut away as "before the first frame" but starts with it.
    let dir = TempDir::new("other-clock.mp4");
    let path = dir.0.join("other-clock.mp4");
    write(&path, 0, 0, 2 * SECOND + SECOND / 10, 100 * SECOND);
    let (video, audio) = onsets(&path);
    eprintln!("other clock: flashes {video:?}, beeps {audio:?}");
    assert_eq!(audio.len(), 3, "{audio:?}");
}
