//! streamlib's slave against a real ptp4l master (software timestamps), across a veth pair
//! between two network namespaces, next to a ptp4l slave (`--free_running 1`) for comparison.
//!
//! Needs root, `ip` and `/usr/sbin/ptp4l`; skips loudly without them unless
//! `STREAMLIB_REQUIRE_PTP=1`. The streamlib slave runs in its namespace by re-executing this
//! test binary under `ip netns exec` with `STREAMLIB_PTP_CHILD` set.

#![allow(
    clippy::print_stderr,
    clippy::print_stdout,
    reason = "the test reports its measurements"
)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use streamlib_clock::{Clock, LockState, Rational, TickWait};
use streamlib_test_support::netns::{
    Namespaces, PTP4L, Reaper, ptp4l_config, skip_or_fail, unavailable,
};

use streamlib_ptp::{
    ClockIdentity, Interface, PtpClock, PtpConfig, Transport, local_monotonic_ns, tai_frame_time_ns,
};

const CHILD_ENV: &str = "STREAMLIB_PTP_CHILD";
/// Seconds of offsets collected after lock.
const MEASURE_SECS: u64 = 10;

/// Namespaces and the veth pair; removed on drop (deleting a namespace deletes its veth end,
/// and with it the pair).
struct Netns {
    namespaces: Namespaces,
    master_ns: String,
    slave_ns: String,
    master_if: String,
    slave_if: String,
}

impl Netns {
    fn create() -> Option<Self> {
        let pid = std::process::id();
        let (master_ns, slave_ns) = (format!("slptp-m-{pid}"), format!("slptp-s-{pid}"));
        let namespaces = Namespaces::create(&[&master_ns, &slave_ns])?;
        let n = Self {
            namespaces,
            master_ns,
            slave_ns,
            master_if: format!("slpm{pid}"),
            slave_if: format!("slps{pid}"),
        };
        let ns = &n.namespaces;
        let ok = ns.veth((&n.master_ns, &n.master_if), (&n.slave_ns, &n.slave_if))
            && ns.address(&n.master_ns, &n.master_if, "10.203.0.1/24")
            && ns.address(&n.slave_ns, &n.slave_if, "10.203.0.2/24");
        ok.then_some(n)
    }
}

#[derive(Debug, Default)]
struct Stats {
    n: usize,
    mean: f64,
    stddev: f64,
    max_abs: i64,
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "n {} mean {:.0} ns stddev {:.0} ns max |offset| {} ns",
            self.n, self.mean, self.stddev, self.max_abs
        )
    }
}

fn stats(values: &[i64]) -> Stats {
    let n = values.len();
    if n == 0 {
        return Stats::default();
    }
    let mean = values.iter().sum::<i64>() as f64 / n as f64;
    let var = values
        .iter()
        .map(|v| (*v as f64 - mean).powi(2))
        .sum::<f64>()
        / n as f64;
    Stats {
        n,
        mean,
        stddev: var.sqrt(),
        max_abs: values.iter().map(|v| v.abs()).max().unwrap_or(0),
    }
}

#[test]
fn streamlib_slave_locks_to_ptp4l_master() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os(CHILD_ENV).is_some() {
        return Ok(()); // the child runs `child_slave` only
    }
    let test = "ptp4l peer test";
    if let Some(reason) = unavailable(&[PTP4L]) {
        skip_or_fail(test, "STREAMLIB_REQUIRE_PTP", &reason);
        return Ok(());
    }
    let Some(net) = Netns::create() else {
        skip_or_fail(
            test,
            "STREAMLIB_REQUIRE_PTP",
            "could not create namespaces / veth (ip netns add failed)",
        );
        return Ok(());
    };
    // Faster than the defaults, so that both slaves lock well within the test's minute.
    let cfg = ptp4l_config("slptp", "summary_interval -3\n")?;
    let cfg_s = cfg.to_string_lossy().into_owned();
    let started = Instant::now();
    let master = Reaper(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &net.master_ns,
                PTP4L,
                "-S",
                "-4",
                "-m",
                "-f",
                &cfg_s,
                "-i",
                &net.master_if,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?,
    );
    let mut ptp4l_slave = Reaper(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &net.slave_ns,
                PTP4L,
                "-S",
                "-4",
                "-s",
                "-m",
                "--free_running",
                "1",
                "-f",
                &cfg_s,
                "-i",
                &net.slave_if,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let exe = std::env::current_exe()?;
    let child = Command::new("ip")
        .args(["netns", "exec", &net.slave_ns])
        .arg(&exe)
        .args(["--exact", "child_slave", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &net.slave_if)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()?;
    let child_out = String::from_utf8_lossy(&child.stdout).into_owned();

    // ptp4l's slave: "master offset" lines once it is in state s2 (locked). It takes longer
    // than ours to lock, so keep reading until it has a window as long as ours, or 55 s.
    let want = (MEASURE_SECS * 8) as usize;
    let mut ptp4l_offsets = Vec::new();
    let mut ptp4l_log = Vec::new();
    let mut ptp4l_lock = None;
    let mut ptp4l_samples = 0usize;
    if let Some(out) = ptp4l_slave.0.stdout.take() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        while ptp4l_offsets.len() < want && started.elapsed() < Duration::from_secs(55) {
            let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
                continue;
            };
            if let Some(rest) = line.split("master offset").nth(1) {
                let mut words = rest.split_whitespace();
                let offset = words.next().and_then(|w| w.parse::<i64>().ok());
                // With --free_running the servo is bypassed, so ptp4l may never report s2:
                // take every measurement after its first 2 s of samples.
                let state = words.next().unwrap_or("?").to_owned();
                if let Some(o) = offset {
                    ptp4l_samples += 1;
                    if state == "s2" {
                        ptp4l_lock.get_or_insert_with(|| started.elapsed());
                    }
                    if ptp4l_samples > 16 {
                        ptp4l_offsets.push(o);
                    }
                }
            } else if ptp4l_log.len() < 20 {
                ptp4l_log.push(line);
            }
        }
    }
    let _ = ptp4l_slave.0.kill();
    drop(master);
    let _ = std::fs::remove_file(&cfg);
    let total = started.elapsed();
    println!("--- child (streamlib slave) ---\n{child_out}");
    let our_offsets: Vec<i64> = child_out
        .lines()
        .filter_map(|l| l.strip_prefix("OFFSET "))
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let ours = stats(&our_offsets);
    // ptp4l's last MEASURE_SECS·8 samples, a window comparable to ours.
    let theirs = stats(&ptp4l_offsets);
    if ptp4l_offsets.is_empty() {
        println!("ptp4l slave log:\n{}", ptp4l_log.join("\n"));
    }
    println!("streamlib slave vs ptp4l master: {ours}");
    println!(
        "ptp4l slave (-S -s --free_running 1) vs ptp4l master: {theirs}, s2 after {ptp4l_lock:?}"
    );
    println!("total test time {total:?}");
    assert!(
        child.status.success(),
        "streamlib slave child failed:\n{child_out}"
    );
    assert!(ours.n >= 40, "too few offsets: {ours:?}");
    // A locked slave stays within ±20 µs. On a loaded 2-core machine a sample now and then
    // is timestamped late by the scheduler (CI once saw one of 80 at 34.7 µs, counted by the
    // servo as a sync outlier): allow 5 % of samples beyond ±20 µs, none beyond ±1 ms.
    let beyond = our_offsets.iter().filter(|o| o.abs() >= 20_000).count();
    assert!(
        beyond * 20 <= ours.n,
        "{beyond} of {} offsets beyond ±20 µs after lock: {ours:?}",
        ours.n
    );
    assert!(
        ours.max_abs < 1_000_000,
        "offset beyond ±1 ms after lock: {ours:?}"
    );
    Ok(())
}

/// The streamlib side, run inside the slave namespace by the test above.
#[test]
fn child_slave() -> Result<(), Box<dyn std::error::Error>> {
    let Some(interface) = std::env::var_os(CHILD_ENV) else {
        return Ok(());
    };
    let interface = interface.to_string_lossy().into_owned();
    let mut config = PtpConfig::new(Transport::multicast(Interface::Name(interface.clone())));
    config.clock_identity = Some(ClockIdentity([0x02, 0x5e, 0x1b, 0xff, 0xfe, 0, 0, 0x01]));
    let fps = Rational::fps(50);
    let mut clock = PtpClock::new(fps, config)?;
    let status = clock.status();
    let t0 = Instant::now();
    while status.lock_state() != LockState::Locked && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let snap = status.snapshot();
    println!("LOCK_MS {}", t0.elapsed().as_millis());
    println!(
        "MASTER {:?} GRANDMASTER {:?}",
        snap.master.map(|m| m.to_string()),
        snap.grandmaster.map(|g| g.to_string())
    );
    assert_eq!(
        snap.lock_state,
        LockState::Locked,
        "no lock in 30 s: {snap:#?}"
    );
    // ptp4l derives its identity from the interface's MAC: the peer's is not ours.
    let gm = snap.grandmaster.ok_or("no grandmaster")?;
    assert_ne!(gm, snap.port_identity.clock);
    assert_eq!(
        gm.0[3..5],
        [0xff, 0xfe],
        "not a MAC-derived (ptp4l) identity: {gm}"
    );

    // Tick a few frames: timestamps on 20 ms TAI boundaries, from the grandmaster.
    clock.start()?;
    for _ in 0..5 {
        if let TickWait::Tick(tick) = clock.wait_tick(Duration::from_secs(1))? {
            assert_eq!(tick.timestamp, tai_frame_time_ns(fps, tick.frame_number));
            assert_eq!(tick.clock_source_id.0, gm.to_u64());
        }
    }

    let mut last = status.snapshot().counters.samples;
    let end = Instant::now() + Duration::from_secs(MEASURE_SECS);
    let mut worst_system = 0i128;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
        let snap = status.snapshot();
        if snap.counters.samples != last {
            last = snap.counters.samples;
            println!("OFFSET {}", snap.offset_ns);
        }
        // ptp4l -S serves the system clock; both namespaces share it, so the model can be
        // compared with it directly (whatever UTC offset ptp4l applies, reported below).
        let mono = local_monotonic_ns();
        if let Some(model) = status.master_time_at(mono) {
            let real = i128::from(streamlib_ptp::system_tai_ns())
                - i128::from(streamlib_ptp::TAI_UTC_OFFSET_NS);
            let diff = i128::from(model) - real;
            let diff = diff - (diff as f64 / 1e9).round() as i128 * 1_000_000_000;
            worst_system = worst_system.max(diff.abs());
        }
    }
    let snap = status.snapshot();
    println!(
        "PATH_DELAY {:?} FREQ {:.0} UTC_OFFSET {:?} PTP_TIMESCALE {}",
        snap.mean_path_delay_ns, snap.frequency_ppb, snap.current_utc_offset, snap.ptp_timescale
    );
    println!("MODEL_VS_SYSTEM_MAX_NS {worst_system}");
    println!("COUNTERS {:?}", snap.counters);
    assert_eq!(snap.lock_state, LockState::Locked);
    Ok(())
}
