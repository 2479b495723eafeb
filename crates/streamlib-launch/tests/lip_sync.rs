//! Lip sync through a file: `testpattern pattern=flash` (white on the first frame at or after
//! each clock second) beside `audiotestsrc wave=ticks` (a beep starting on each second),
//! written by `filewriter` for about 4 s, then decoded with the FFmpeg CLI. Video onsets (the
//! pts of each frame whose mean luma jumps to white) and audio onsets (the first sample over
//! a threshold after silence, placed with the audio stream's `start_time`) agree within 1 ms
//! (issue 15's bar), in each container and codec the writer offers: MP4 (AAC, its priming
//! hidden by the edit list), Matroska (AAC, the file shifted by the priming; FLAC and PCM,
//! without delay), WebM (Opus, its pre-skip in `CodecDelay`) and MOV (PCM).
#![cfg(all(feature = "file", feature = "video", feature = "audio"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "tests; measured offsets are printed for the record (--nocapture)"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use streamlib_clock::{FreeRunningClock, Rational};
use streamlib_launch::{Registry, build, parse};
use streamlib_runtime::StreamRuntime;

/// Issue 15's bar for audio against video onsets, in seconds.
const MAX_OFFSET_S: f64 = 0.001;
/// 4 s at 30 fps and a few frames more, so the flash and the beep at 4 s are both written.
const TICKS: u64 = 125;
const WIDTH: usize = 160;
const HEIGHT: usize = 120;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "streamlib-launch-lip-sync-{}-{name}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::canonicalize(&dir).unwrap()
}

fn output(program: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// ffprobe's value of `entry` (`stream=start_time`, `frame=pts_time`, …) for each stream or
/// frame of `stream` (`v:0`, `a:0`), one per line.
fn probe(path: &Path, stream: &str, entry: &str) -> Vec<String> {
    let text = output(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            stream,
            "-show_entries",
            entry,
            "-of",
            "csv=p=0",
            path.to_str().unwrap(),
        ],
    );
    String::from_utf8_lossy(&text)
        .lines()
        .map(|l| l.trim().trim_end_matches(',').to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

fn probe_f64(path: &Path, stream: &str, entry: &str) -> f64 {
    let values = probe(path, stream, entry);
    values[0]
        .parse()
        .unwrap_or_else(|_| panic!("{entry} of {stream}: {values:?}"))
}

/// The pts (s) of each frame whose mean luma crosses from dark to bright (the first frame
/// counts when bright).
fn video_onsets(path: &Path) -> Vec<f64> {
    let pts: Vec<f64> = probe(path, "v:0", "frame=pts_time")
        .iter()
        .map(|p| p.parse().unwrap())
        .collect();
    let luma = output(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-nostdin",
            "-i",
            path.to_str().unwrap(),
            "-map",
            "0:v:0",
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
            "-",
        ],
    );
    let frames: Vec<f64> = luma
        .chunks_exact(WIDTH * HEIGHT)
        .map(|f| f.iter().map(|&v| f64::from(v)).sum::<f64>() / f.len() as f64)
        .collect();
    assert_eq!(frames.len(), pts.len(), "decoded frames against ffprobe's");
    let mut onsets = Vec::new();
    let mut bright = false;
    for (mean, &t) in frames.iter().zip(&pts) {
        let now = *mean > 128.0;
        if now && !bright {
            onsets.push(t);
        }
        bright = now;
    }
    onsets
}

/// The time (s) of each first sample over a fifth of the peak after at least 100 ms under it
/// (the start counts as silence), counted from the first decoded audio frame's pts.
///
/// That pts, not the stream's `start_time`, is when the first decoded sample plays: a
/// decoder that drops the codec's delay (Opus's pre-skip from Matroska's `CodecDelay`) starts
/// its output after the first packet's time, which is what `start_time` reports. Where
/// nothing is dropped (MP4, whose edit list already hides the AAC priming; AAC in Matroska,
/// whose priming is decoded) the two agree, and the test checks that they do.
fn audio_onsets(path: &Path) -> Vec<f64> {
    let start = probe_f64(path, "a:0", "frame=pts_time");
    let stream_start = probe_f64(path, "a:0", "stream=start_time");
    let codec = probe(path, "a:0", "stream=codec_name");
    if codec[0] != "opus" {
        assert!(
            (start - stream_start).abs() < 1e-6,
            "{}: first audio frame at {start} s, stream start_time {stream_start} s",
            path.display()
        );
    }
    let rate = probe_f64(path, "a:0", "stream=sample_rate");
    let raw = output(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-nostdin",
            "-i",
            path.to_str().unwrap(),
            "-map",
            "0:a:0",
            "-f",
            "f32le",
            "-ac",
            "1",
            "-",
        ],
    );
    let samples: Vec<f32> = raw
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let peak = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    assert!(peak > 0.1, "no beep in {}: peak {peak}", path.display());
    let threshold = peak / 5.0;
    let quiet = (rate * 0.1) as usize;
    let mut onsets = Vec::new();
    let mut last_loud: Option<usize> = None;
    for (i, s) in samples.iter().enumerate() {
        if s.abs() <= threshold {
            continue;
        }
        if last_loud.is_none_or(|l| i - l > quiet) {
            onsets.push(start + i as f64 / rate);
        }
        last_loud = Some(i);
    }
    onsets
}

/// Writes the flash and the ticks to `path` and returns (video onset, audio − video) for
/// each second.
fn record_and_measure(path: &Path, extra: &str) -> Vec<(f64, f64)> {
    let text = format!(
        "testpattern pattern=flash moving-box=false size={WIDTH}x{HEIGHT} ! \
         filewriter location={} name=w {extra}  audiotestsrc wave=ticks freq=1000 ! w.audio",
        path.display()
    );
    let desc = parse(&text).unwrap();
    let clock = FreeRunningClock::new(Rational::fps(30)).with_limit(TICKS);
    let mut built = build(&Registry::builtin(), &desc, StreamRuntime::new(clock))
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    let stats = built
        .runtime
        .run()
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    for stream in &stats.streams {
        assert_eq!(stream.errors, 0, "{text}: {}", stream.id);
    }
    let (video, audio) = (video_onsets(path), audio_onsets(path));
    eprintln!(
        "{}: start_time video {} s, audio {} s; onsets video {video:?}, audio {audio:?}",
        path.display(),
        probe_f64(path, "v:0", "stream=start_time"),
        probe_f64(path, "a:0", "stream=start_time"),
    );
    assert_eq!(video.len(), 5, "one flash per second, 0 ..= 4 s: {video:?}");
    assert_eq!(audio.len(), video.len(), "one beep per flash: {audio:?}");
    video
        .iter()
        .zip(&audio)
        .map(|(&v, &a)| (v, a - v))
        .collect()
}

/// Records `name` with the writer's `extra` properties, checks its audio is in `codec`, and
/// every beep within the bar of its flash.
fn assert_in_sync(name: &str, extra: &str, codec: &str) {
    let dir = temp_dir(name);
    let path = dir.join(name);
    let offsets = record_and_measure(&path, extra);
    assert_eq!(probe(&path, "a:0", "stream=codec_name"), [codec], "{name}");
    for &(video, offset) in &offsets {
        eprintln!(
            "{name}: flash at {video:.6} s, beep {:+.3} ms",
            offset * 1e3
        );
    }
    for (second, &(video, offset)) in offsets.iter().enumerate() {
        // Every flash on its second (the file's time zero is the first frame, at 0).
        assert!(
            (video - second as f64).abs() < 0.03,
            "{name}: flash {second} at {video} s"
        );
        assert!(
            offset.abs() < MAX_OFFSET_S,
            "{name}: beep {second} is {:+.3} ms from its flash",
            offset * 1e3
        );
    }
}

#[test]
fn flash_and_tick_stay_together_in_mp4_aac() {
    assert_in_sync("sync.mp4", "", "aac");
}

#[test]
fn flash_and_tick_stay_together_in_matroska_aac() {
    assert_in_sync("sync.mkv", "", "aac");
}

#[test]
fn flash_and_tick_stay_together_in_webm_opus() {
    assert_in_sync("sync.webm", "", "opus");
}

#[test]
fn flash_and_tick_stay_together_in_matroska_flac_and_pcm() {
    assert_in_sync("flac.mkv", "audio-codec=flac", "flac");
    assert_in_sync("pcm.mkv", "audio-codec=pcm", "pcm_s16le");
}

#[test]
fn flash_and_tick_stay_together_in_mov_pcm() {
    assert_in_sync("pcm.mov", "audio-codec=pcm", "pcm_s16le");
}
