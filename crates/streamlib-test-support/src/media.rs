//! Measuring written media files with the FFmpeg command-line tools, for the lip-sync tests:
//! when each flash shows and each beep sounds in a file, as its decoder plays it.
//!
//! The tests write a video that turns white on each second beside a beep starting on each
//! second, then check the two onsets agree. [`flash_onsets`] finds the pts of each frame whose
//! mean luma crosses to bright, [`beep_onsets`] the time of each first loud sample after
//! silence, and [`offset_from_nearest_flash`] / [`pair_flashes_with_beeps`] pair them. The
//! tools are run as child processes ([`output`], [`probe`]): `ffmpeg` and `ffprobe` must be on
//! `PATH`, and a helper that cannot run them, or reads something it cannot use, panics naming
//! the tool, its arguments and the file.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A directory `streamlib-<prefix>-<pid>-<name>` under the system temp dir, created (with its
/// parents) and canonicalised. It is not removed: a failed test leaves its files to look at.
pub fn temp_dir(prefix: &str, name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("streamlib-{prefix}-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    std::fs::canonicalize(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

/// Runs `program` with `args` and returns what it wrote to standard output; panics when it
/// cannot start or exits unsuccessfully, with its standard error.
pub fn output(program: &str, args: &[&str]) -> Vec<u8> {
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

/// `path` as a tool argument (the tests' paths are all UTF-8).
fn arg(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("{} is not UTF-8", path.display()))
}

/// ffprobe's value of `entry` (`stream=start_time`, `frame=pts_time`, …) for each stream or
/// frame of `stream` (`v:0`, `a:0`), one per line; empty lines left out.
pub fn probe(path: &Path, stream: &str, entry: &str) -> Vec<String> {
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
            arg(path),
        ],
    );
    String::from_utf8_lossy(&text)
        .lines()
        .map(|l| l.trim().trim_end_matches(',').to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

/// [`probe`]'s values as numbers; panics on one that is not.
pub fn probe_f64s(path: &Path, stream: &str, entry: &str) -> Vec<f64> {
    probe(path, stream, entry)
        .iter()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{entry} of {stream} in {}: {v:?}", path.display()))
        })
        .collect()
}

/// [`probe`]'s first value as a number (`stream=start_time`, the first `frame=pts_time`).
pub fn probe_f64(path: &Path, stream: &str, entry: &str) -> f64 {
    let values = probe(path, stream, entry);
    values
        .first()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{entry} of {stream} in {}: {values:?}", path.display()))
}

/// The first `stream` of `path` (`0:v:0`) decoded by ffmpeg into `format` (the output options
/// that pick the raw format), the bytes it writes.
fn decode(path: &Path, stream: &str, format: &[&str]) -> Vec<u8> {
    let mut args = vec!["-v", "error", "-nostdin", "-i", arg(path), "-map", stream];
    args.extend_from_slice(format);
    args.push("-");
    output("ffmpeg", &args)
}

/// The pts (s) of each frame of the first video stream whose mean luma crosses from dark to
/// bright (the first frame counts when bright); the frames are `width` × `height`.
pub fn flash_onsets(path: &Path, width: usize, height: usize) -> Vec<f64> {
    let pts = probe_f64s(path, "v:0", "frame=pts_time");
    let luma = decode(
        path,
        "0:v:0",
        &[
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "gray",
        ],
    );
    let frames: Vec<f64> = luma
        .chunks_exact(width * height)
        .map(|f| f.iter().map(|&v| f64::from(v)).sum::<f64>() / f.len() as f64)
        .collect();
    assert_eq!(
        frames.len(),
        pts.len(),
        "{}: decoded frames against ffprobe's",
        path.display()
    );
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

/// The time (s) of each first sample of the first audio stream (mixed to mono) over a fifth
/// of the peak after at least 100 ms under it (the start counts as silence), counted from the
/// first decoded audio frame's pts. Panics when the peak is under 0.1 (no beep).
///
/// That pts, not the stream's `start_time`, is when the first decoded sample plays: a decoder
/// that drops the codec's delay (Opus's pre-skip from Matroska's `CodecDelay`) starts its
/// output after the first packet's time, which is what `start_time` reports.
pub fn beep_onsets(path: &Path) -> Vec<f64> {
    let start = probe_f64(path, "a:0", "frame=pts_time");
    let rate = probe_f64(path, "a:0", "stream=sample_rate");
    let raw = decode(path, "0:a:0", &["-f", "f32le", "-ac", "1"]);
    let samples: Vec<f32> = raw
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let peak = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    assert!(peak > 0.1, "no beep in {}: peak {peak}", path.display());
    let threshold = peak / 5.0;
    let quiet = (rate / 10.0) as usize;
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

/// The offset (s) from `t` to the nearest of `times`, `time − t`; `None` when there are none.
fn nearest_offset(t: f64, times: &[f64]) -> Option<f64> {
    times
        .iter()
        .map(|x| x - t)
        .min_by(|x, y| x.abs().total_cmp(&y.abs()))
}

/// `beep − flash` (s) for the flash nearest `beep`: positive when the sound comes late;
/// `None` when there are no flashes.
pub fn offset_from_nearest_flash(beep: f64, flashes: &[f64]) -> Option<f64> {
    nearest_offset(beep, flashes).map(|o| -o)
}

/// Each flash with the beep nearest it, as (flash, beep − flash) in seconds, for the flashes
/// that have one no more than `within` seconds away (a flash whose beep was not written, at
/// either end of the audio track, is left out).
pub fn pair_flashes_with_beeps(flashes: &[f64], beeps: &[f64], within: f64) -> Vec<(f64, f64)> {
    flashes
        .iter()
        .filter_map(|&flash| {
            nearest_offset(flash, beeps)
                .filter(|o| o.abs() <= within)
                .map(|o| (flash, o))
        })
        .collect()
}
