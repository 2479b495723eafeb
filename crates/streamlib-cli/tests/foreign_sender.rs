//! The `source=` property of `streamlib launch`'s receivers: a stranger sending to the port
//! from another address is counted in `--json` (`foreign_packets`) and never reaches the
//! jitter buffer.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn a_stranger_is_counted_in_the_report_not_received() {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_streamlib"))
        .arg("launch")
        .arg(format!(
            "networkreceive bind=127.0.0.1:{port} source=127.0.0.1 size=64x16 ! null"
        ))
        .args(["--frames", "45", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the streamlib binary runs");
    // 127.0.0.2 is another address of the loopback interface; the bytes do not matter: they
    // are dropped for their sender before anything parses them. Sent all through the run, so
    // a slow start of the receiver only lowers the count.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&done);
    let stranger = std::thread::spawn(move || {
        let socket = UdpSocket::bind("127.0.0.2:0").unwrap();
        let mut sent = 0u64;
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            let rtp = [0x80, 96, 0, sent as u8, 0, 0, 0, 0, 0, 0, 0xBA, 0xD0];
            socket.send_to(&rtp, ("127.0.0.1", port)).unwrap();
            sent += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        sent
    });
    let out = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = stranger.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rx = stats["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "networkreceive0")
        .unwrap_or_else(|| panic!("no networkreceive0 in {stats}"));
    let report = &rx["report"];
    let foreign = report["foreign_packets"].as_u64().unwrap();
    assert!(
        foreign > 0 && foreign <= sent,
        "{foreign} of {sent}: {report}"
    );
    assert_eq!(report["datagrams"], 0, "{report}");
    assert_eq!(report["malformed"], 0, "{report}");
}
