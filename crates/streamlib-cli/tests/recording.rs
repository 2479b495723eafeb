//! Recordings survive a crash: `streamlib launch` recording a live test pattern is killed with
//! SIGKILL, and FFmpeg still reads the file up to its last fragment. The classic layout, asked
//! for, still gives a complete file with a duration when the run ends normally.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "tests; the figures measured go to stderr"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Rate of the runtime clock in these runs (the launch default).
const FPS: f64 = 30.0;

fn temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("streamlib-recording-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn name(file: &Path) -> String {
    file.file_name().unwrap().to_string_lossy().into_owned()
}

/// ffprobe's count of decodable video frames and the format's duration (if it has one).
fn probe(path: &Path) -> (u64, Option<f64>) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames:format=duration"])
        .args(["-of", "default=nw=1"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ffprobe cannot read {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_owned)
    };
    let frames = value("nb_read_frames")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let duration = value("duration").and_then(|v| v.parse().ok());
    (frames, duration)
}

/// Records a realtime test pattern into `file` for `seconds` after the file appears (its
/// header is written with the first frame), then SIGKILLs the process; returns how long it
/// recorded.
fn record_and_kill(file: &Path, seconds: f64) -> Duration {
    let mut child = Command::new(env!("CARGO_BIN_EXE_streamlib"))
        .arg("launch")
        .arg(format!(
            "testpattern size=320x240 ! filewriter location={}",
            name(file)
        ))
        // The launch policy lets a pipeline write under the current directory only.
        .current_dir(file.parent().unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the streamlib binary runs");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::metadata(file).is_ok_and(|m| m.len() > 0) {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            file.display()
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "streamlib launch ended early"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let opened = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let recorded = opened.elapsed();
    child.kill().unwrap(); // SIGKILL: no trailer, no flush
    child.wait().unwrap();
    recorded
}

/// The presentation time of the last video packet FFmpeg can read, in seconds: the writer's
/// timeline follows the clock's frame numbers, so ticks a loaded machine skipped do not count
/// as lost.
fn last_pts(path: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "packet=pts_time", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse::<f64>().ok())
        .fold(0.0, f64::max)
}

/// After a `kill -9`, FFmpeg reads what was recorded except the last fragment (0.5 s) and the
/// frames still inside the pipeline and the encoder (x264's lookahead and frame threads; more
/// on a loaded machine): at most [`LOSS_S`].
fn assert_survives_kill(name: &str) {
    let dir = temp_dir(name);
    let file = dir.join(name);
    let recorded = record_and_kill(&file, 3.0).as_secs_f64();
    let (frames, _) = probe(&file);
    let readable = last_pts(&file) + 1.0 / FPS;
    eprintln!(
        "{name}: {frames} frames, {readable:.2} s readable after kill -9 of a {recorded:.2} s \
         recording"
    );
    assert!(
        readable >= recorded - LOSS_S,
        "{name}: only {readable:.2} s ({frames} frames) readable of {recorded:.2} s recorded"
    );
    assert!(frames >= 30, "{name}: {frames} frames");
    let _ = std::fs::remove_dir_all(&dir);
}

/// What a kill may lose: one 0.5 s fragment plus what the pipeline and encoder still hold.
const LOSS_S: f64 = 1.5;

// One test for both containers: two realtime encoders at once on a small machine would each
// fall behind and measure the machine, not the file layout.
#[test]
fn a_killed_recording_is_readable_up_to_its_last_fragment() {
    assert_survives_kill("live.mp4");
    assert_survives_kill("live.mkv");
}

#[test]
fn the_classic_layout_is_complete_when_asked_for() {
    let dir = temp_dir("classic");
    for (name, fragmented) in [("classic.mp4", "false"), ("fragmented.mp4", "true")] {
        let file = dir.join(name);
        let out = Command::new(env!("CARGO_BIN_EXE_streamlib"))
            .arg("launch")
            .arg(format!(
                "testpattern size=160x120 ! filewriter location={name} fragmented={fragmented}"
            ))
            .current_dir(&dir)
            .args(["--clock", "free", "--frames", "30"])
            .output()
            .expect("the streamlib binary runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (frames, duration) = probe(&file);
        assert_eq!(frames, 30, "{name}");
        let duration = duration.unwrap_or_else(|| panic!("{name} has no duration"));
        assert!((duration - 1.0).abs() < 0.05, "{name}: {duration} s");
        // Fragmented MP4 opens with an empty `moov` followed by `moof` fragments; the classic
        // layout has none.
        let bytes = std::fs::read(&file).unwrap();
        let has_moof = bytes.windows(4).any(|w| w == b"moof");
        assert_eq!(has_moof, fragmented == "true", "{name}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
