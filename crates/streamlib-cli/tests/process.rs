//! `@process` from the shell, with the real `streamlib` binary (which re-enters itself as the
//! worker): a real-time pipeline whose child aborts every few frames keeps its source's rate,
//! and `--json` shows the element's restarts and its report (child pid, spawns, bytes copied).
#![cfg(feature = "process")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "tests; a failure names the output"
)]

mod common;

use std::process::Output;

use common::{stats, stream, streamlib};
use std::time::{Duration, Instant};

fn launch(pipeline: &str, extra: &[&str]) -> Output {
    let mut args = vec!["launch", pipeline, "--json"];
    args.extend_from_slice(extra);
    streamlib(&args)
}

/// 90 frames at 30 fps with a child that aborts every 30: three seconds, the source's 90
/// frames all produced, the element restarted, only its own frames lost.
#[test]
fn a_child_that_aborts_is_restarted_and_the_pipeline_keeps_its_rate() {
    let started = Instant::now();
    let out = launch(
        "testpattern size=320x180 ! identity abort-after=30 restart=always max-restarts=-1 \
         name=id @process ! null name=sink",
        &["--fps", "30", "--frames", "90"],
    );
    let elapsed = started.elapsed();
    let stats = stats(&out);
    let source = stream(&stats, "testpattern0");
    assert_eq!(source["items_out"], 90, "{source}");
    let id = stream(&stats, "id");
    assert!(id["restarts"].as_u64().unwrap() >= 2, "{id}");
    let error = id["error"].as_str().unwrap_or_default();
    assert!(error.contains("SIGABRT"), "{id}");
    let sink = stream(&stats, "sink");
    // The element's own frames are lost while its child restarts (two spawns of a debug
    // binary, some 100 ms each on a loaded machine); the rest flow.
    assert!(sink["items_in"].as_u64().unwrap() >= 60, "{sink}");
    assert!(elapsed < Duration::from_secs(6), "{elapsed:?}");
}

/// A GPU frame cannot cross into a child: the proxy's ports are CPU only, so negotiation puts
/// a GPU→CPU transfer in front of the `@process` element, and its frames are copied (counted).
#[cfg(feature = "gpu")]
#[test]
fn a_gpu_frame_reaches_a_child_through_a_transfer() {
    let pipeline =
        "testpattern size=64x36 ! blur memory=gpu sigma=1 ! identity name=id @process ! null";
    let graph = streamlib(&["graph", pipeline, "--json"]);
    if !graph.status.success() && std::env::var_os("STREAMLIB_ALLOW_NO_GPU").is_some() {
        eprintln!("!!! SKIPPED: no GPU adapter");
        return;
    }
    let graph = stats(&graph);
    let edge = graph["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["to"] == "id.video")
        .unwrap();
    assert_eq!(edge["memory"], "cpu", "{edge}");
    assert!(
        edge["transfer"]
            .as_str()
            .unwrap_or_default()
            .starts_with("GpuToCpu"),
        "{edge}"
    );
    let out = launch(pipeline, &["--clock", "free", "--frames", "10"]);
    let stats = stats(&out);
    let id = stream(&stats, "id");
    assert_eq!(id["errors"], 0, "{id}");
    assert_eq!(id["items_out"], 10, "{id}");
    assert_eq!(id["report"]["bytes_copied"], 10 * 64 * 36 * 4, "{id}");
}
