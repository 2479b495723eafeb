//! `filereader location=X ! filewriter location=Y` from text, with no format repeated: the
//! output keeps the source's frame count, rate and duration (ffprobe), as FFmpeg's and
//! GStreamer's do. The clock is built here at the file's rate (the launch layer takes it from
//! the sources' caps), and also left at 30 fps, where the reader repeats frames on the faster
//! clock and the writer still writes each once at the file's rate.
#![cfg(feature = "file")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use streamlib_clock::{FreeRunningClock, Rational};
use streamlib_launch::{Registry, build, parse};
use streamlib_runtime::StreamRuntime;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "streamlib-launch-caps-file-{}-{name}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::canonicalize(&dir).unwrap()
}

/// The clip: `testsrc2` 322x182 at 25 fps, 50 frames, yuv420p in MOV.
fn clip(dir: &Path) -> PathBuf {
    let path = dir.join("clip.mov");
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-nostdin", "-f", "lavfi"])
        .args(["-i", "testsrc2=size=322x182:rate=25", "-frames:v", "50"])
        .args(["-pix_fmt", "yuv420p"])
        .arg(&path)
        .output()
        .expect("ffmpeg CLI");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// ffprobe's `nb_read_frames`, `r_frame_rate`, `avg_frame_rate` and `duration` of the first
/// video stream.
fn probe(path: &Path) -> HashMap<String, String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_frames"])
        .args([
            "-show_entries",
            "stream=nb_read_frames,r_frame_rate,avg_frame_rate,duration",
            "-of",
            "default=nw=1",
        ])
        .arg(path)
        .output()
        .expect("ffprobe CLI");
    assert!(out.status.success(), "ffprobe {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Builds and runs `text` on a free-running clock at `fps`; returns the negotiated caps of
/// the reader → writer link.
fn run(text: &str, fps: u32) -> String {
    let desc = parse(text).unwrap();
    let clock = FreeRunningClock::new(Rational::fps(fps));
    let mut built = build(&Registry::builtin(), &desc, StreamRuntime::new(clock)).unwrap();
    let caps = built.graph.edges[0].caps.clone();
    let stats = built.runtime.run().unwrap();
    for stream in &stats.streams {
        assert_eq!(stream.errors, 0, "{}", stream.id);
    }
    caps
}

#[test]
fn a_file_copy_keeps_frames_rate_and_duration() {
    let dir = temp_dir("copy");
    let clip = clip(&dir);
    for (props, fps, name, caps) in [
        ("", 25, "realtime.mp4", "video i420 322x182 25"),
        ("pacing=fast", 25, "fast.mp4", "video i420 322x182 25"),
        // The defect as reported: 60 frames at 30 fps, and 50 at 30 with pacing=fast.
        ("", 30, "realtime-30.mp4", "video i420 322x182 25"),
        ("pacing=fast", 30, "fast-30.mp4", "video i420 322x182 25"),
        // `format=` forces the reader's format; the writer takes it as it comes.
        ("format=uyvy", 25, "uyvy.mkv", "video uyvy 322x182 25"),
    ] {
        let out = dir.join(name);
        let text = format!(
            "filereader location={} {props} ! filewriter location={}",
            clip.display(),
            out.display()
        );
        assert_eq!(run(&text, fps), caps, "{text}");
        let p = probe(&out);
        assert_eq!(p["nb_read_frames"], "50", "{text}: {p:?}");
        assert_eq!(p["r_frame_rate"], "25/1", "{text}: {p:?}");
        assert_eq!(p["avg_frame_rate"], "25/1", "{text}: {p:?}");
        if p["duration"] != "N/A" {
            assert_eq!(p["duration"], "2.000000", "{text}: {p:?}");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
