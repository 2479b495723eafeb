//! The README's split pipeline, as printed there: two `streamlib launch` processes on
//! `--clock ptp`, joined by multicast ST 2110-20 and an SDP file, in a network namespace
//! whose grandmaster is `ptp4l` in another. The sender starts before its clock locks (so its
//! clock steps mid-stream, as a real one does); the receiver must still follow it, stamp
//! frames with the sender's media time, and see them arrive within a few frame periods.
//!
//! Needs root, `ip` and `/usr/sbin/ptp4l`; skips loudly without them unless
//! `STREAMLIB_REQUIRE_PTP=1`.
#![cfg(all(feature = "net", feature = "ptp"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "a test that reports what it measured"
)]

use std::process::{Command, Stdio};
use std::time::Duration;

use streamlib_test_support::netns::{
    Namespaces, PTP4L, Reaper, ptp4l_config, skip_or_fail, unavailable,
};

const REQUIRE: &str = "STREAMLIB_REQUIRE_PTP";

#[test]
fn the_readme_split_pipeline_runs_on_ptp() {
    let test = "PTP launch test";
    if let Some(reason) = unavailable(&[PTP4L]) {
        return skip_or_fail(test, REQUIRE, &reason);
    }
    let pid = std::process::id();
    let (gm_ns, host_ns) = (format!("slcli-m-{pid}"), format!("slcli-b-{pid}"));
    let Some(ns) = Namespaces::create(&[&gm_ns, &host_ns]) else {
        return skip_or_fail(test, REQUIRE, "ip netns add failed");
    };
    let ok = ns.veth((&gm_ns, "gm"), (&host_ns, "eth0"))
        && ns.address(&gm_ns, "gm", "10.206.0.1/24")
        && ns.address(&host_ns, "eth0", "10.206.0.2/24")
        && ns.exec(
            &host_ns,
            &["ip", "route", "add", "224.0.0.0/4", "dev", "eth0"],
        );
    if !ok {
        return skip_or_fail(test, REQUIRE, "could not set up the veth pair");
    }
    let dir = std::env::temp_dir().join(format!("streamlib-cli-ptp-{pid}"));
    std::fs::create_dir_all(&dir).unwrap();
    let sdp = dir.join("stream.sdp");
    let cfg = ptp4l_config("slcli", "").unwrap();
    let _grandmaster = ns.ptp4l_grandmaster(&gm_ns, "gm", &cfg).unwrap();
    let exe = env!("CARGO_BIN_EXE_streamlib");
    let clock = ["--fps", "30", "--clock", "ptp", "--ptp-interface", "eth0"];
    let mut sender = Reaper(
        Command::new("ip")
            .args(["netns", "exec", &host_ns, exe, "launch"])
            .current_dir(&dir)
            .arg(format!(
                "testpattern size=320x180 format=uyvy ! networksend \
                 destination=239.10.0.1:5004 size=320x180 fps=30 sdp={}",
                sdp.display()
            ))
            .args(clock)
            .args(["--frames", "300", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    for _ in 0..100 {
        if std::fs::metadata(&sdp).is_ok_and(|m| m.len() > 0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = Command::new("ip")
        .args(["netns", "exec", &host_ns, exe, "launch"])
        .current_dir(&dir)
        .arg(format!(
            "networkreceive sdp={} timestamps=media ! null",
            sdp.display()
        ))
        .args(clock)
        .args(["--frames", "150", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sent = sender.0.wait().unwrap();
    assert!(sent.success());
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_file(&cfg).ok();
    let receiver = stats["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["handler"] == "NetworkReceive")
        .unwrap();
    let report = &receiver["report"];
    println!("receiver: {report}");
    assert!(
        stats["clock"].as_str().unwrap().starts_with("ptp"),
        "{stats}"
    );
    // 150 ticks at 30 fps while the sender streams: most publish a frame, whatever the
    // clocks did while locking (a step makes the receiver resync once, not go deaf).
    let published = report["frames_published"].as_u64().unwrap();
    assert!(published >= 100, "{published} of 150 ticks: {report}");
    assert_eq!(report["malformed"], 0, "{report}");
    assert!(report["resyncs"].as_u64().unwrap() <= 2, "{report}");
    // Both on the grandmaster's time: the sender's frame time is a frame or two before the
    // receiver's tick that publishes it.
    let latency = report["media_latency_p50_ns"].as_u64().unwrap();
    assert!(
        latency > 0 && latency <= 3 * 33_333_334,
        "median media latency {latency} ns: {report}"
    );
}
