//! The `streamlib` binary for real: every shipped handler in a `launch` run, JSON stats,
//! `inspect` and `graph` output, and errors with their exit code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "tests; a skipped check says so on stderr"
)]

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::{stats, stderr, stdout, stream, streamlib};

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr(out));
    stats(out)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("streamlib-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn video_handlers_run_from_the_shell() {
    let out = streamlib(&[
        "launch",
        "compositor name=mix size=160x90 layers=2 layer1.opacity=0.5 ! blur sigma=1.5 @threadpool ! null  \
         testpattern size=160x90 ! mix.layer0  \
         drawing size=160x90 text=\"frame {frame}\" font-size=18 ! mix.layer1",
        "--clock",
        "free",
        "--frames",
        "12",
        "--json",
    ]);
    let stats = json(&out);
    assert_eq!(stats["clock_ticks"], 12);
    for id in ["mix", "blur0", "null0", "testpattern0", "drawing0"] {
        let s = stream(&stats, id);
        assert_eq!(s["errors"], 0, "{id}: {s}");
        assert!(s["ticks"].as_u64().unwrap() >= 12, "{id}: {s}");
    }
    assert_eq!(stream(&stats, "blur0")["dispatcher"], "threadpool");
    assert!(stream(&stats, "blur0")["items_out"].as_u64().unwrap() >= 12);
}

#[test]
fn files_round_trip_through_launch() {
    let dir = temp_dir("files");
    let file = dir.join("pattern.mkv");
    let location = format!("location={}", file.display());
    let out = streamlib(&[
        "launch",
        &format!("testpattern size=96x64 ! filewriter codec=ffv1 {location}"),
        "--clock",
        "free",
        "--frames",
        "15",
        "--json",
    ]);
    assert_eq!(stream(&json(&out), "filewriter0")["errors"], 0);
    let out = streamlib(&[
        "launch",
        &format!("filereader pacing=fast {location} ! blur ! null"),
        "--clock",
        "free",
        "--json",
    ]);
    // Runs to the end of the file by itself: 15 frames, no frame limit needed.
    let stats = json(&out);
    assert_eq!(stream(&stats, "filereader0")["items_out"], 15);
    assert_eq!(stream(&stats, "filereader0")["state"], "ended");
    let out = streamlib(&["launch", "filereader location=/nonexistent.mp4 ! null"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/nonexistent.mp4"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `launch` writes only inside its current folder and the --allow-write ones.
#[cfg(feature = "file")]
#[test]
fn launch_writes_only_where_allowed() {
    let dir = temp_dir("allowed");
    let outside = std::env::temp_dir()
        .parent()
        .map_or("/".into(), |p| p.join("streamlib-x.mkv"));
    let pipeline = format!(
        "testpattern size=32x32 ! filewriter codec=ffv1 location={}",
        outside.display()
    );
    let out = streamlib(&["launch", &pipeline, "--clock", "free", "--frames", "1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is outside the write allow-list (--allow-write DIR)"),
        "{}",
        stderr(&out)
    );
    let file = dir.join("allowed.mkv");
    let pipeline = format!(
        "testpattern size=32x32 ! filewriter codec=ffv1 location={}",
        file.display()
    );
    let folder = dir.to_str().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_streamlib"))
        .args(["launch", &pipeline, "--clock", "free", "--frames", "1"])
        .args(["--allow-write", folder])
        .current_dir("/")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(file.exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn display_opens_a_window_under_xvfb() {
    let have = Command::new("xvfb-run").arg("--help").output().is_ok();
    if !have {
        assert!(
            std::env::var_os("STREAMLIB_ALLOW_SKIP_DISPLAY").is_some(),
            "xvfb-run is missing (apt install xvfb xauth); set STREAMLIB_ALLOW_SKIP_DISPLAY=1 to skip"
        );
        eprintln!("!!! SKIPPED: display through the CLI (no xvfb-run)");
        return;
    }
    let out = Command::new("xvfb-run")
        .args([
            "-a",
            "-s",
            "-screen 0 640x480x24",
            env!("CARGO_BIN_EXE_streamlib"),
        ])
        .args([
            "launch",
            "testpattern size=160x90 ! display title=cli",
            "--frames",
            "10",
            "--json",
        ])
        .output()
        .unwrap();
    let stats = json(&out);
    assert_eq!(stream(&stats, "display0")["errors"], 0);
    assert!(stream(&stats, "display0")["ticks"].as_u64().unwrap() >= 10);
}

#[test]
fn inspect_and_graph() {
    let list = stdout(&streamlib(&["inspect"]));
    for name in [
        "testpattern",
        "blur",
        "compositor",
        "drawing",
        "display",
        "null",
        "filereader",
        "filewriter",
    ] {
        assert!(list.contains(name), "{name} missing from\n{list}");
    }
    let blur = json(&streamlib(&["inspect", "blur", "--json"]));
    assert_eq!(blur["properties"][0]["name"], "sigma");
    assert_eq!(blur["properties"][0]["ty"]["type"], "float");
    assert_eq!(blur["properties"][0]["live"], true);
    let out = streamlib(&["inspect", "blurr"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("did you mean `blur`"));

    let graph = json(&streamlib(&[
        "graph",
        "testpattern ! blur ! null",
        "--json",
    ]));
    assert_eq!(graph["edges"].as_array().unwrap().len(), 2);
    assert_eq!(graph["edges"][0]["memory"], "cpu");
    let dot = stdout(&streamlib(&["graph", "testpattern ! blur ! null", "--dot"]));
    assert!(
        dot.starts_with("digraph pipeline {") && dot.contains("\"blur0\" -> \"null0\""),
        "{dot}"
    );
    // Text -> JSON -> the same graph.
    let desc = stdout(&streamlib(&[
        "graph",
        "testpattern name=src ! blur sigma=3 ! null",
        "--desc-json",
    ]));
    let again = stdout(&streamlib(&["graph", &desc, "--from-json"]));
    assert!(
        again.starts_with("testpattern name=src ! blur sigma=3 ! null"),
        "{again}"
    );
}

#[test]
fn errors_exit_2_with_the_column() {
    let out = streamlib(&["launch", "testpattern ! ! null"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("found another `!` at column 15"), "{err}");
    assert!(err.contains("              ^"), "{err}");
    let out = streamlib(&["launch", "testpattern ! blur sigma=99 ! null"]);
    assert!(stderr(&out).contains("out of range: a number in 0.01..=21"));
}

/// A handler that fails with restart policy `never` (the default) makes the run fail: exit 1,
/// the handler and its error named on stderr, and `--json` says which stream failed and why.
#[test]
fn a_failed_handler_exits_1_naming_it() {
    // A handler that fails at run time (formats no longer can: negotiation bridges them or
    // refuses the build): `identity error-after=3` passes three frames, then errors.
    let pipeline = "testpattern size=64x48 ! identity error-after=3 ! null";
    let out = streamlib(&["launch", pipeline, "--clock", "free", "--frames", "10"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("error: handler 'identity0' (Identity) failed: identity: error-after=3"),
        "{err}"
    );
    let out = streamlib(&[
        "launch", pipeline, "--clock", "free", "--frames", "10", "--json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let identity = stream(&stats, "identity0");
    assert_eq!(identity["state"], "failed", "{identity}");
    assert!(
        identity["error"]
            .as_str()
            .unwrap_or("")
            .contains("error-after"),
        "{identity}"
    );
    // The sink got what passed before the failure, and says so: its upstream failed, so it
    // ended.
    let sink = stream(&stats, "null0");
    assert_eq!(sink["items_in"], 3, "{sink}");
    assert_eq!(sink["state"], "ended", "{sink}");
}

#[cfg(feature = "gpu")]
#[test]
fn gpu_pipelines_get_their_transfers_inserted() {
    let out = streamlib(&[
        "graph",
        "testpattern size=64x36 ! blur memory=gpu ! blur ! null",
        "--json",
    ]);
    if !out.status.success() && std::env::var_os("STREAMLIB_ALLOW_NO_GPU").is_some() {
        eprintln!("!!! SKIPPED: no GPU adapter: {}", stderr(&out));
        return;
    }
    let graph = json(&out);
    let transfers: Vec<&str> = graph["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["transfer"].as_str())
        .collect();
    assert_eq!(transfers.len(), 2, "{graph}");
    assert!(transfers[0].starts_with("CpuToGpu") && transfers[1].starts_with("GpuToCpu"));
    // blur -> null needs none: null takes CPU and GPU frames alike.
    assert_eq!(graph["edges"][2]["transfer"], serde_json::Value::Null);
    let stats = json(&streamlib(&[
        "launch",
        "testpattern size=64x36 ! blur memory=gpu sigma=1 ! blur ! null",
        "--clock",
        "free",
        "--frames",
        "5",
        "--json",
    ]));
    for s in stats["streams"].as_array().unwrap() {
        assert_eq!(s["errors"], 0, "{s}");
    }
    assert_eq!(stream(&stats, "blur0")["items_out"], 5);
    assert_eq!(stream(&stats, "blur1")["items_out"], 5);
}

/// Starts `streamlib launch PIPELINE --frames N` (a sender that writes `sdp`) and waits until
/// the SDP file is there.
#[cfg(all(feature = "net", feature = "file"))]
fn start_sender(pipeline: &str, sdp: &std::path::Path, frames: u32) -> std::process::Child {
    let sender = Command::new(env!("CARGO_BIN_EXE_streamlib"))
        .args(["launch", pipeline, "--frames", &frames.to_string()])
        .current_dir(std::env::temp_dir())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if std::fs::metadata(sdp).is_ok_and(|m| m.len() > 0) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    sender
}

/// A pipeline split in two `streamlib launch` processes joined by RTP and an SDP file: the
/// sender writes the SDP, the receiver configures itself from it, and a lossless recording on
/// the far side holds the sender's exact pixels.
#[cfg(all(feature = "net", feature = "file"))]
#[test]
fn a_pipeline_split_across_processes_by_sdp() {
    let dir = temp_dir("split");
    let sdp = dir.join("stream.sdp");
    let (received, reference) = (dir.join("received.mkv"), dir.join("reference.mkv"));
    let port = 20_000 + (std::process::id() % 20_000) as u16;
    let source = "testpattern size=320x180 moving-box=false";
    let out = streamlib(&[
        "launch",
        &format!(
            "{source} ! filewriter codec=ffv1 location={}",
            reference.display()
        ),
        "--clock",
        "free",
        "--frames",
        "1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut sender = start_sender(
        &format!(
            "{source} ! networksend destination=127.0.0.1:{port} sampling=rgb8 size=320x180 \
             pacing=wide sdp={}",
            sdp.display()
        ),
        &sdp,
        150,
    );
    let text = std::fs::read_to_string(&sdp).unwrap();
    assert!(
        text.contains("sampling=RGB") && text.contains("width=320"),
        "{text}"
    );
    let out = streamlib(&[
        "launch",
        &format!(
            "networkreceive sdp={} ! filewriter codec=ffv1 location={}",
            sdp.display(),
            received.display()
        ),
        "--frames",
        "30",
        "--json",
    ]);
    let stats = json(&out);
    assert!(sender.wait().unwrap().success());
    assert!(stream(&stats, "filewriter0")["ticks"].as_u64().unwrap() >= 30);
    // The receiver's own counters come with the stats: whole frames, nothing malformed.
    let report = &stream(&stats, "networkreceive0")["report"];
    assert!(report["frames_complete"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(report["malformed"], 0, "{report}");
    assert!(
        report["packets"].as_u64().unwrap() >= report["frames_complete"].as_u64().unwrap(),
        "{report}"
    );
    // The first received frame equals the sender's pattern, byte for byte.
    let first = |path: &std::path::Path| {
        let out = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(path)
            .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        out.stdout
    };
    let (got, want) = (first(&received), first(&reference));
    assert_eq!(got.len(), 320 * 180 * 3);
    assert!(got == want, "received pixels differ from the sender's");
    std::fs::remove_dir_all(&dir).ok();
}

/// FFmpeg opens the SDP streamlib writes and receives its ST 2110-20 stream: every complete
/// frame it decodes equals the sender's UYVY pattern byte for byte (its first frame may be
/// partial: it joins mid-stream).
#[cfg(all(feature = "net", feature = "file"))]
#[test]
fn ffmpeg_receives_what_the_sdp_describes() {
    let dir = temp_dir("ffmpeg-sdp");
    let (sdp, reference) = (dir.join("stream.sdp"), dir.join("reference.mkv"));
    let port = 40_000 + (std::process::id() % 20_000) as u16;
    let source = "testpattern size=320x180 moving-box=false ! convert format=uyvy";
    let out = streamlib(&[
        "launch",
        &format!(
            "{source} ! filewriter codec=ffv1 location={}",
            reference.display()
        ),
        "--clock",
        "free",
        "--frames",
        "1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut sender = start_sender(
        &format!(
            "{source} ! networksend destination=127.0.0.1:{port} sampling=ycbcr422-8 \
             size=320x180 pacing=wide sdp={}",
            sdp.display()
        ),
        &sdp,
        300,
    );
    let raw = |args: &[&str]| {
        let out = Command::new("ffmpeg")
            .args(["-v", "error", "-protocol_whitelist", "file,udp,rtp"])
            .args(args)
            .args(["-f", "rawvideo", "-pix_fmt", "uyvy422", "-"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        out.stdout
    };
    let received = raw(&["-i", sdp.to_str().unwrap(), "-frames:v", "8"]);
    sender.kill().ok();
    sender.wait().ok();
    let want = raw(&["-i", reference.to_str().unwrap(), "-frames:v", "1"]);
    let size = 320 * 180 * 2;
    assert_eq!((want.len(), received.len()), (size, 8 * size));
    let equal = received.chunks(size).skip(1).filter(|f| *f == want).count();
    assert_eq!(
        equal, 7,
        "frames 1..8 from FFmpeg should equal the sender's"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A clip made by FFmpeg: `frames` frames of `size` at `rate`, in `pix_fmt`.
#[cfg(feature = "file")]
fn clip(path: &std::path::Path, size: &str, rate: &str, frames: u32, pix_fmt: &str) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={size}:rate={rate}"))
        .args(["-frames:v", &frames.to_string(), "-pix_fmt", pix_fmt])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Sources that fix different rates need a chosen one; with `--fps` the same pipeline runs.
#[cfg(feature = "file")]
#[test]
fn sources_at_different_rates_need_a_chosen_rate() {
    let dir = temp_dir("rates");
    let (a, b) = (dir.join("a.mov"), dir.join("b.mov"));
    clip(&a, "64x48", "25", 10, "yuv420p");
    clip(&b, "64x48", "30000/1001", 10, "yuv420p");
    let pipeline = format!(
        "compositor name=mix size=64x48 layers=2 ! null  filereader location={} ! mix.layer0  \
         filereader location={} ! mix.layer1",
        a.display(),
        b.display()
    );
    let out = streamlib(&["launch", &pipeline, "--clock", "free", "--frames", "5"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    for part in [
        "different rates",
        "filereader0.video 25",
        "filereader1.video 30000/1001",
        "--fps",
    ] {
        assert!(err.contains(part), "{part:?} missing from: {err}");
    }
    let out = streamlib(&[
        "launch", &pipeline, "--fps", "30", "--clock", "free", "--frames", "5",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::remove_dir_all(&dir).ok();
}

/// `streamlib graph` prints each link's negotiated caps and the converter it needed.
#[test]
fn graph_shows_negotiated_caps_and_what_was_inserted() {
    let out = streamlib(&["graph", "testpattern size=64x48 format=uyvy ! blur ! null"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("testpattern0.video -> blur0.video [cpu] video rgba8 64x48 30 via convert-"),
        "{text}"
    );
    assert!(
        text.contains("inserted convert-testpattern0-video (convert): format"),
        "{text}"
    );
    // With auto-convert off, the same pipeline is an error that names the cure.
    let out = streamlib(&[
        "graph",
        "testpattern size=64x48 format=uyvy ! blur ! null",
        "--auto-convert",
        "false",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("auto-convert is off"),
        "{}",
        stderr(&out)
    );
}

/// A file of an odd size shown in a window sized from the negotiated caps, under Xvfb.
#[cfg(feature = "file")]
#[test]
fn a_file_plays_in_a_window_under_xvfb() {
    if Command::new("xvfb-run").arg("--help").output().is_err() {
        assert!(
            std::env::var_os("STREAMLIB_ALLOW_SKIP_DISPLAY").is_some(),
            "xvfb-run is missing (apt install xvfb xauth); set STREAMLIB_ALLOW_SKIP_DISPLAY=1 to skip"
        );
        eprintln!("!!! SKIPPED: filereader ! display (no xvfb-run)");
        return;
    }
    let dir = temp_dir("file-display");
    let path = dir.join("odd.mov");
    clip(&path, "322x182", "25", 20, "yuv420p");
    let out = Command::new("xvfb-run")
        .args([
            "-a",
            "-s",
            "-screen 0 640x480x24",
            env!("CARGO_BIN_EXE_streamlib"),
        ])
        .args([
            "launch",
            &format!(
                "filereader location={} ! display title=file",
                path.display()
            ),
            "--json",
        ])
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let stats = json(&out);
    let display = stream(&stats, "display0");
    assert_eq!(display["errors"], 0, "{display}");
    assert_eq!(display["items_in"], 20, "{display}");
    assert_eq!(stats["clock"], "software 25 fps", "{stats}");
    std::fs::remove_dir_all(&dir).ok();
}
