//! A pipeline split across two network namespaces with both ends on PTP clocks locked to one
//! `ptp4l` grandmaster: the receiver's frames carry the sender's timestamps (ST 2110 media
//! time, from RTP), their pixels are the sender's, and the latency from the sender's frame
//! time to the receiver's publishing tick is small and positive: the two machines agree on
//! the time.
//!
//! Topology: namespace M holds a bridge and `ptp4l -S` (the grandmaster) on a veth into it; A
//! (sender) and B (receiver) each have a veth into the bridge. Needs root, `ip` and
//! `/usr/sbin/ptp4l`; skips loudly without them unless `STREAMLIB_REQUIRE_PTP=1`. Each end
//! runs by re-executing this test binary under `ip netns exec` with `STREAMLIB_SPLIT_ROLE`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    clippy::print_stdout,
    reason = "a test that reports what it measured"
)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{pattern, receiving, sending};
use streamlib_clock::{LockState, Rational};
use streamlib_net::{
    FrameTimestamps, NetworkReceive, NetworkReceiveConfig, NetworkSend, NetworkSendConfig,
    Sampling, VideoFormat,
};
use streamlib_ports::{
    FramePool, HandlerError, InputPort, MemoryCaps, OutputPort, Ports, ProcessContext,
    StreamHandler, VideoFrame,
};
use streamlib_ptp::{ClockIdentity, Interface, PtpClock, PtpConfig, Transport, tai_frame_at};
use streamlib_test_support::netns::{
    Namespaces, PTP4L, Reaper, ptp4l_config, skip_or_fail, unavailable,
};

const ROLE_ENV: &str = "STREAMLIB_SPLIT_ROLE";

/// Whether this process was started to play `role` (else the role test does nothing).
fn playing(role: &str) -> bool {
    std::env::var(ROLE_ENV).ok().as_deref() == Some(role)
}

/// Set to 1 where this test must run rather than skip.
const REQUIRE: &str = "STREAMLIB_REQUIRE_PTP";
const FPS: u32 = 50;
/// Frames the sender sends; the receiver needs `WANT` of them.
const SEND_FRAMES: u64 = 300;
const WANT: usize = 100;
const PORT: u16 = 5004;
const SENDER_IP: &str = "10.204.0.2";
const RECEIVER_IP: &str = "10.204.0.3";

fn fps() -> Rational {
    Rational::fps(FPS)
}

fn video() -> VideoFormat {
    VideoFormat::new(Sampling::YCbCr422Depth10, 320, 180, fps()).unwrap()
}

/// Three namespaces, a bridge in the first and a veth from each other one into it; all
/// removed on drop (deleting a namespace deletes its interfaces).
struct Topology {
    /// Deletes the namespaces on drop.
    namespaces: Namespaces,
    master: String,
    sender: String,
    receiver: String,
}

impl Topology {
    fn create() -> Option<Self> {
        let pid = std::process::id();
        let (master, sender, receiver) = (
            format!("slsplit-m-{pid}"),
            format!("slsplit-a-{pid}"),
            format!("slsplit-b-{pid}"),
        );
        let ns = Namespaces::create(&[&master, &sender, &receiver])?;
        let m = master.as_str();
        let bridge = |port: &str| {
            ns.exec(m, &["ip", "link", "set", port, "master", "br0"]) && ns.up(m, port)
        };
        let mut ok = ns.exec(m, &["ip", "link", "add", "br0", "type", "bridge"])
            && ns.exec(
                m,
                &["ip", "link", "set", "br0", "type", "bridge", "mcast_snooping", "0"],
            )
            && ns.up(m, "br0")
            // ptp4l needs an interface with software timestamping, which a bridge lacks: the
            // grandmaster gets a veth of its own into the bridge.
            && ns.veth((m, "gm"), (m, "togm"))
            && bridge("togm")
            && ns.address(m, "gm", "10.204.0.1/24");
        for (end, ip, port) in [
            (&sender, SENDER_IP, "tosender"),
            (&receiver, RECEIVER_IP, "toreceiver"),
        ] {
            ok = ok
                && ns.veth((m, port), (end, "eth0"))
                && bridge(port)
                && ns.address(end, "eth0", &format!("{ip}/24"));
        }
        ok.then_some(Self {
            namespaces: ns,
            master,
            sender,
            receiver,
        })
    }
}

/// Starts this test binary's `role` test inside namespace `ns`, its stdout piped.
fn spawn_role(ns: &str, role: &str) -> Reaper {
    let exe = std::env::current_exe().unwrap();
    Reaper(
        Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(&exe)
            .args(["--exact", role, "--nocapture", "--test-threads=1"])
            .env(ROLE_ENV, role)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    )
}

/// Lines of `child`'s stdout, read on a thread, until `until` matches one or `timeout`.
fn read_until(
    lines: &std::sync::mpsc::Receiver<String>,
    out: &mut Vec<String>,
    timeout: Duration,
    until: impl Fn(&str) -> bool,
) -> bool {
    let end = Instant::now() + timeout;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) => {
                let done = until(&line);
                out.push(line);
                if done {
                    return true;
                }
            }
            Err(_) => return false,
        }
    }
    false
}

fn line_reader(child: &mut Reaper) -> std::sync::mpsc::Receiver<String> {
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The numbers after `tag` on every line that starts with it.
fn values(lines: &[String], tag: &str) -> Vec<Vec<u64>> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix(tag))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .collect()
}

#[test]
fn a_split_pipeline_on_ptp_keeps_the_senders_timestamps() {
    if std::env::var_os(ROLE_ENV).is_some() {
        return; // a child runs only its role
    }
    let test = "PTP split pipeline test";
    if let Some(reason) = unavailable(&[PTP4L]) {
        return skip_or_fail(test, REQUIRE, &reason);
    }
    let Some(net) = Topology::create() else {
        return skip_or_fail(
            test,
            REQUIRE,
            "could not create the namespaces, bridge and veths",
        );
    };
    let cfg = ptp4l_config("slsplit", "").unwrap();
    let _master = net
        .namespaces
        .ptp4l_grandmaster(&net.master, "gm", &cfg)
        .unwrap();

    // The receiver first: it reports READY once locked and listening.
    let mut receiver = spawn_role(&net.receiver, "role_receive");
    let rx_lines = line_reader(&mut receiver);
    let mut rx_out = Vec::new();
    let ready = read_until(&rx_lines, &mut rx_out, Duration::from_secs(45), |l| {
        l.starts_with("READY")
    });
    assert!(ready, "receiver never locked: {rx_out:#?}");
    let mut sender = spawn_role(&net.sender, "role_send");
    let tx_lines = line_reader(&mut sender);
    let mut tx_out = Vec::new();
    let sent_all = read_until(&tx_lines, &mut tx_out, Duration::from_secs(60), |l| {
        l.starts_with("SEND_STATS")
    });
    let got_all = read_until(&rx_lines, &mut rx_out, Duration::from_secs(30), |l| {
        l.starts_with("RECV_STATS")
    });
    std::fs::remove_file(&cfg).ok();
    assert!(sent_all, "sender did not finish: {tx_out:#?}");
    assert!(got_all, "receiver did not finish: {rx_out:#?}");
    assert!(sender.0.wait().unwrap().success(), "{tx_out:#?}");
    assert!(receiver.0.wait().unwrap().success(), "{rx_out:#?}");
    for line in tx_out
        .iter()
        .chain(&rx_out)
        .filter(|l| !l.starts_with("SENT ") && !l.starts_with("RECV "))
    {
        println!("{line}");
    }

    // Every sent frame time is a frame boundary of the PTP (TAI) timeline.
    let sent: Vec<u64> = values(&tx_out, "SENT ").iter().map(|v| v[0]).collect();
    assert_eq!(sent.len() as u64, SEND_FRAMES);
    for &t in &sent {
        let n = tai_frame_at(fps(), t);
        assert_eq!(
            streamlib_ptp::tai_frame_time_ns(fps(), n),
            t,
            "{t} is off the frame grid"
        );
    }
    // Every received frame: (media time, frame number, publishing tick time, pixels ok).
    let received = values(&rx_out, "RECV ");
    assert!(received.len() >= WANT, "{} frames received", received.len());
    let mut latencies = Vec::new();
    for r in &received {
        let (media, number, tick, pixels_ok) = (r[0], r[1], r[2], r[3]);
        let nearest = sent.iter().min_by_key(|&&s| s.abs_diff(media)).unwrap();
        assert!(
            nearest.abs_diff(media) <= 11_112,
            "media time {media} is no sent frame's time (nearest {nearest})"
        );
        assert_eq!(
            number,
            tai_frame_at(fps(), *nearest),
            "frame number of {media}"
        );
        assert_eq!(
            pixels_ok, 1,
            "frame {number}: pixels differ from the sender's"
        );
        latencies.push(i128::from(tick) - i128::from(media));
    }
    latencies.sort_unstable();
    let median = latencies[latencies.len() / 2];
    let (min, max) = (latencies[0], latencies[latencies.len() - 1]);
    println!(
        "sender frame time -> receiver publishing tick, {} frames: min {:.2} ms, median {:.2} ms, max {:.2} ms",
        latencies.len(),
        min as f64 / 1e6,
        median as f64 / 1e6,
        max as f64 / 1e6
    );
    // The sender spreads a frame over its period (20 ms) and the receiver publishes on its
    // next tick: one to three periods. Clocks that disagreed would put this anywhere.
    let period = 1_000_000_000 / i128::from(FPS);
    assert!(
        min > 0,
        "a frame was published before the sender made it: {min} ns"
    );
    assert!(median <= 3 * period, "median latency {median} ns");
    assert!(max <= 10 * period, "max latency {max} ns");
}

/// A PTP clock on this namespace's `eth0`, locked (panics after 40 s without lock).
fn locked_clock(id: u8) -> PtpClock {
    let mut config = PtpConfig::new(Transport::multicast(Interface::Name("eth0".into())));
    config.clock_identity = Some(ClockIdentity([0x02, 0x5e, 0x1b, 0xff, 0xfe, 0, 0, id]));
    let clock = PtpClock::new(fps(), config).unwrap();
    let status = clock.status();
    let t0 = Instant::now();
    while status.lock_state() != LockState::Locked && t0.elapsed() < Duration::from_secs(40) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let snap = status.snapshot();
    assert_eq!(snap.lock_state, LockState::Locked, "no PTP lock: {snap:#?}");
    println!(
        "LOCKED after {} ms, offset {} ns, path delay {:?} ns",
        t0.elapsed().as_millis(),
        snap.offset_ns,
        snap.mean_path_delay_ns
    );
    clock
}

/// Sends `SEND_FRAMES` frames whose pixels are `pattern(frame number % 256)`, recording each
/// frame's time.
struct StampedSource {
    out: OutputPort<VideoFrame>,
    pool: FramePool,
    sent: Arc<Mutex<Vec<u64>>>,
}

impl StreamHandler for StampedSource {
    fn ports(&self) -> Ports {
        Ports::new().output(&self.out)
    }

    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        let tick = *ctx.tick();
        let mut buf = self.pool.acquire()?;
        buf.copy_from_slice(&pattern(&video(), (tick.frame_number % 256) as u32));
        self.out.write(self.pool.frame(buf).with_tick(&tick));
        let mut sent = self.sent.lock().unwrap();
        sent.push(tick.timestamp);
        if sent.len() as u64 >= SEND_FRAMES {
            ctx.end_of_stream();
        }
        Ok(())
    }
}

#[test]
fn role_send() {
    if !playing("role_send") {
        return;
    }
    let clock = locked_clock(0xa0);
    let dest: SocketAddr = format!("{RECEIVER_IP}:{PORT}").parse().unwrap();
    let send = NetworkSend::new(NetworkSendConfig::new(dest, video())).unwrap();
    let stats = send.stats();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let source = StampedSource {
        out: OutputPort::new("video", MemoryCaps::CPU),
        pool: FramePool::new("pattern", video().layout().unwrap(), 4, 8).unwrap(),
        sent: Arc::clone(&sent),
    };
    let mut rt = sending(clock, (source.out.handle(), source), (send.input(), send));
    rt.run().unwrap();
    for t in sent.lock().unwrap().iter() {
        println!("SENT {t}");
    }
    println!("SEND_STATS {:?}", stats.snapshot());
}

/// Records, per frame: media time, frame number, the tick's time, whether the pixels are the
/// pattern of that frame number.
struct Recorder {
    input: InputPort<VideoFrame>,
    got: Arc<Mutex<Vec<[u64; 4]>>>,
}

impl StreamHandler for Recorder {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input)
    }

    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        if let Some(frame) = self.input.recv() {
            let want = pattern(&video(), (frame.frame_number() % 256) as u32);
            let ok = frame.cpu_bytes().is_some_and(|b| b == want.as_slice());
            self.got.lock().unwrap().push([
                frame.timestamp_ns(),
                frame.frame_number(),
                ctx.tick().timestamp,
                u64::from(ok),
            ]);
        }
        Ok(())
    }
}

#[test]
fn role_receive() {
    if !playing("role_receive") {
        return;
    }
    let clock = locked_clock(0xb0);
    let mut config = NetworkReceiveConfig::new(format!("0.0.0.0:{PORT}").parse().unwrap(), video());
    config.timestamps = FrameTimestamps::Media;
    let receive = NetworkReceive::new(config).unwrap();
    let stats = receive.stats();
    let got = Arc::new(Mutex::new(Vec::new()));
    let recorder = Recorder {
        input: InputPort::new("video", MemoryCaps::CPU),
        got: Arc::clone(&got),
    };
    let mut rt = receiving(
        clock,
        (receive.output(), receive),
        (recorder.input.handle(), recorder),
    );
    rt.start().unwrap();
    println!("READY");
    let t0 = Instant::now();
    // Until the sender has come and gone: WANT frames, then 1 s without a new one.
    let mut last = (0, Instant::now());
    while t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
        let n = got.lock().unwrap().len();
        if n != last.0 {
            last = (n, Instant::now());
        } else if n >= WANT && last.1.elapsed() > Duration::from_secs(1) {
            break;
        }
    }
    rt.stop().unwrap();
    for r in got.lock().unwrap().iter() {
        println!("RECV {} {} {} {}", r[0], r[1], r[2], r[3]);
    }
    println!("RECV_STATS {:?}", stats.snapshot());
}
