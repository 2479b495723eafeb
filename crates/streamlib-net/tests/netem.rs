//! Two network namespaces joined by a veth pair, the sender's side impaired by netem (loss
//! 0.1 %, delay 5 ms ± 2 ms, reorder 5 %, duplicate 1 %): the jitter buffer delivers every
//! frame that fully arrived, byte-identical, counts the rest, and never crashes.
//!
//! The test re-runs this test binary inside each namespace (`ip netns exec`) in a helper
//! role chosen by an environment variable. Needs root; skipped loudly otherwise. The
//! namespaces (and with them the veth pair and the qdisc) are deleted by a drop guard.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    clippy::print_stdout,
    reason = "tests"
)]

mod common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use streamlib_net::*;
use streamlib_test_support::netns::{Namespaces, run};

const ROLE: &str = "STREAMLIB_NET_NETEM_ROLE";

/// Whether this process was started to play `role` (else the helper test does nothing).
fn playing(role: &str) -> bool {
    std::env::var(ROLE).as_deref() == Ok(role)
}
const IMPAIR: &str = "STREAMLIB_NET_NETEM_IMPAIR";
const FRAMES: u32 = 300;
const PORT: u16 = 5004;
/// The receiving namespace's address and port.
const RECEIVER: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, 231, 0, 2), PORT));

fn format() -> VideoFormat {
    common::format(Sampling::YCbCr422Depth8, 320, 240)
}

/// `ip ARGS…`, quiet; whether it succeeded.
fn ip(args: &[&str]) -> bool {
    run(&[&["ip"], args].concat())
}

fn skip(why: &str) {
    eprintln!("==================================================================");
    eprintln!("SKIPPED netem test: {why}");
    eprintln!("(needs root, iproute2 and the sch_netem qdisc)");
    eprintln!("==================================================================");
}

#[test]
fn jitter_buffer_under_netem() {
    if std::env::var_os(ROLE).is_some() {
        return; // a helper run: the helper tests below do the work
    }
    let id = std::process::id() % 100_000;
    let (a, b) = (format!("slnet-a-{id}"), format!("slnet-b-{id}"));
    let Some(namespaces) = Namespaces::create(&[&a, &b]) else {
        return skip("`ip netns add` failed");
    };
    let (va, vb) = (format!("sla{id}"), format!("slb{id}"));
    let steps: [&[&str]; 6] = [
        &[
            "link", "add", &va, "netns", &a, "type", "veth", "peer", "name", &vb, "netns", &b,
        ],
        &["-n", &a, "addr", "add", "10.231.0.1/30", "dev", &va],
        &["-n", &b, "addr", "add", "10.231.0.2/30", "dev", &vb],
        &["-n", &a, "link", "set", &va, "up"],
        &["-n", &b, "link", "set", &vb, "up"],
        &[
            "netns",
            "exec",
            &a,
            "tc",
            "qdisc",
            "add",
            "dev",
            &va,
            "root",
            "netem",
            "loss",
            "0.1%",
            "delay",
            "5ms",
            "2ms",
            "reorder",
            "5%",
            "duplicate",
            "1%",
        ],
    ];
    let (netem, setup) = steps.split_last().unwrap();
    for step in setup {
        if !ip(step) {
            return skip(&format!("`ip {}` failed", step.join(" ")));
        }
    }
    // Without sch_netem (a kernel without the module), the sender applies the same loss,
    // duplication and reordering itself, so the veth path and the jitter buffer still run.
    let impair_in_sender = !ip(netem);
    if impair_in_sender {
        eprintln!("==================================================================");
        eprintln!("sch_netem is not available: the sender emulates loss 0.1 %, reorder 5 %,");
        eprintln!("duplicate 1 % itself (no added delay) over the veth pair");
        eprintln!("==================================================================");
    }
    let exe = std::env::current_exe().unwrap();
    let helper = |ns: &str, role: &str, test: &str| {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(&exe)
            .args([
                "--exact",
                test,
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROLE, role)
            .env(IMPAIR, if impair_in_sender { "1" } else { "0" })
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap()
    };
    let receiver = helper(&b, "recv", "netem_receive_helper");
    std::thread::sleep(Duration::from_millis(500));
    let sender = helper(&a, "send", "netem_send_helper");
    let sent = sender.wait_with_output().unwrap();
    assert!(sent.status.success(), "sender failed");
    let out = receiver.wait_with_output().unwrap();
    assert!(out.status.success(), "receiver failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.find("RESULT ").map(|i| &l[i..]))
        .unwrap_or_else(|| panic!("receiver printed no RESULT: {text}"));
    eprintln!("netem: {line}");
    let value = |key: &str| -> u64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    let (complete, dropped, intact) = (value("complete"), value("dropped"), value("intact"));
    assert_eq!(
        value("corrupt"),
        0,
        "a complete frame differs from what was sent"
    );
    assert_eq!(intact, complete, "every complete frame is byte-identical");
    assert_eq!(value("malformed"), 0);
    // Every frame is accounted for: delivered whole, or counted incomplete.
    assert_eq!(complete + dropped, u64::from(FRAMES), "{line}");
    assert!(
        value("duplicates") > 0,
        "netem duplicated packets and they were dropped"
    );
    assert!(complete >= u64::from(FRAMES) * 3 / 4, "{line}");
    drop(namespaces);
}

#[test]
#[ignore = "run inside a namespace by jitter_buffer_under_netem"]
fn netem_send_helper() {
    if !playing("send") {
        return;
    }
    let f = format();
    let mut p = Packetizer::new(f, PacketizerConfig::default()).unwrap();
    let socket = sender_socket(RECEIVER, None, &SocketConfig::default()).unwrap();
    let impair = std::env::var(IMPAIR).as_deref() == Ok("1");
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut chance = |percent: f64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % 1_000_000) as f64 / 10_000.0 < percent
    };
    let mut buf = vec![0u8; p.max_packet_len()];
    let mut held: Vec<(usize, Vec<u8>)> = Vec::new();
    let send = |d: &[u8]| {
        socket.send(d).unwrap();
    };
    let start = Instant::now();
    for n in 0..FRAMES {
        let px = pattern(&f, n);
        let mut frame = p.frame(&px, 640, n * 3000).unwrap();
        let mut i = 0;
        while let Some(len) = frame.next_into(&mut buf) {
            let d = &buf[..len];
            i += 1;
            if impair {
                if chance(0.1) {
                    continue;
                }
                if chance(5.0) {
                    held.push((3, d.to_vec()));
                    continue;
                }
                send(d);
                if chance(1.0) {
                    send(d);
                }
                held.retain_mut(|(k, h)| {
                    *k -= 1;
                    if *k == 0 {
                        socket.send(h).unwrap();
                    }
                    *k > 0
                });
            } else {
                send(d);
            }
            if i % 8 == 0 {
                // Spread the frame a little (the netem qdisc holds 1000 packets).
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        // Held packets go out before the frame period ends (reordered, not delayed a frame).
        for (_, h) in held.drain(..) {
            socket.send(&h).unwrap();
        }
        let due = start + Duration::from_millis(u64::from(n + 1) * 1000 / 30);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

#[test]
#[ignore = "run inside a namespace by jitter_buffer_under_netem"]
fn netem_receive_helper() {
    if !playing("recv") {
        return;
    }
    let f = format();
    let socket = receiver_socket(
        RECEIVER,
        None,
        &SocketConfig::default(),
        Duration::from_millis(1),
    )
    .unwrap();
    let config = JitterConfig {
        window: Duration::from_millis(10),
        ..Default::default()
    };
    let mut jb = jitter(f, config);
    let mut batch = RecvBatch::new();
    let origin = Instant::now();
    let (mut intact, mut corrupt) = (0u64, 0u64);
    let mut check = |d: Delivered<'_>| {
        let n = d.rtp_timestamp / 3000;
        if d.frame.cpu_bytes().unwrap() == pattern(&f, n).as_slice() {
            intact += 1;
        } else {
            corrupt += 1;
        }
    };
    let mut last_packet = Instant::now();
    // Until 1.5 s without traffic (after the first packet), or 30 s in all.
    while origin.elapsed() < Duration::from_secs(30) {
        let n = batch.recv(&socket).unwrap();
        let now = origin.elapsed().as_nanos() as u64;
        for i in 0..n {
            jb.push(batch.get(i).unwrap().0, now, &mut check);
        }
        jb.poll(now, &mut check);
        if n > 0 {
            last_packet = Instant::now();
        } else if jb.counters().datagrams > 0 && last_packet.elapsed() > Duration::from_millis(1500)
        {
            break;
        }
    }
    jb.flush(origin.elapsed().as_nanos() as u64, &mut check);
    let c = *jb.counters();
    println!(
        "RESULT complete={} dropped={} intact={intact} corrupt={corrupt} lost={} duplicates={} reordered={} late={} malformed={} datagrams={} assembly_p50_us={} assembly_p99_us={}",
        c.frames_complete,
        c.frames_dropped,
        c.lost_packets,
        c.duplicates,
        c.reordered,
        c.late,
        c.malformed,
        c.datagrams,
        jb.assembly_latency().quantile(0.5) / 1000,
        jb.assembly_latency().quantile(0.99) / 1000,
    );
}
