//! Ctrl-C finalizes files: a real SIGINT sent to a process running TestPattern → FileWriter on
//! the realtime clock leaves an MP4 that ffprobe reads completely and FFmpeg decodes without
//! an error.
//!
//! The test re-runs its own binary as the child (selected by an environment variable), so the
//! signal goes through the same `ctrlc` handler a user's program installs.
#![cfg(all(feature = "file", feature = "ctrlc", feature = "video"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "tests; the child reports to its parent on stdout"
)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use streamlib::file::{FileWriter, WriterConfig};
use streamlib::prelude::*;
use streamlib::video::{Pattern, TestPattern, TestPatternConfig};

const CHILD_ENV: &str = "STREAMLIB_CTRL_C_CHILD_OUTPUT";

/// The child: runs until Ctrl-C, then reports how many frames the writer finalized.
fn child(path: &Path) {
    let mut runtime = StreamRuntime::new(SoftwareClock::new(Rational::fps(30)));
    let pattern = TestPattern::new(TestPatternConfig {
        width: 320,
        height: 240,
        pattern: Pattern::SmpteBars,
        moving_box: true,
        ..TestPatternConfig::default()
    })
    .unwrap();
    let writer = FileWriter::new(WriterConfig::new(path)).unwrap();
    let written = writer.stats();
    let (out, input) = (pattern.output(), writer.input());
    runtime.add_stream(Stream::new("pattern", pattern)).unwrap();
    runtime.add_stream(Stream::new("writer", writer)).unwrap();
    runtime.connect(&out, &input).unwrap();
    println!("running");
    runtime.run().unwrap();
    println!(
        "stopped frames={} finalized={}",
        written.frames_written(),
        written.is_finalized()
    );
}

fn ffprobe_frames(path: &Path) -> u64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn sigint_finalizes_the_mp4() {
    if let Some(path) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&path));
        return;
    }
    let dir = std::env::temp_dir().join(format!("streamlib-ctrl-c-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("interrupted.mp4");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigint_finalizes_the_mp4",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Wait for the pipeline to run, let it write about a second of video, then interrupt.
    loop {
        let line = lines.next().expect("child printed 'running'").unwrap();
        if line.contains("running") {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(1200));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    let deadline = Instant::now() + Duration::from_secs(20);
    let report = loop {
        match lines.next() {
            Some(Ok(line)) if line.starts_with("stopped") => break line,
            Some(Ok(_)) => continue,
            _ => panic!("child ended without reporting; Ctrl-C did not stop run()"),
        }
    };
    let exit = child.wait().unwrap();
    assert!(Instant::now() < deadline, "stopping took too long");
    assert!(exit.success(), "child exited with {exit}");

    let frames: u64 = report
        .split_whitespace()
        .find_map(|w| w.strip_prefix("frames="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(report.contains("finalized=true"), "{report}");
    assert!(frames >= 15, "only {frames} frames in ~1.2 s at 30 fps");
    // Every frame the writer accepted is in the file, and the file is playable to its end.
    assert_eq!(ffprobe_frames(&path), frames, "{report}");
    let decode = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(decode.status.success());
    assert!(
        decode.stderr.is_empty(),
        "ffmpeg reported: {}",
        String::from_utf8_lossy(&decode.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
}
