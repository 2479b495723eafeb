//! A slave and an in-process master on loopback (unicast): they share one clock, so the
//! master's served time is known exactly and the slave's model can be checked against it.

#![allow(clippy::print_stderr, reason = "tests report their measurements")]

use std::net::{Ipv4Addr, UdpSocket};
use std::time::{Duration, Instant};

use streamlib_clock::{Clock, LockState, Rational, TickWait};
use streamlib_ptp::{
    ClockIdentity, MasterConfig, PtpClock, PtpConfig, PtpError, PtpMaster, PtpSlave, Transport,
    local_monotonic_ns, tai_frame_time_ns,
};

const LO: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// The timing tests run one at a time: on a small shared machine, parallel masters and
/// slaves in one process delay each other's packets by tens of microseconds.
static TIMING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn timing_guard() -> std::sync::MutexGuard<'static, ()> {
    TIMING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Two free UDP ports on loopback (released again; a tiny race other tests do not hit).
fn free_ports() -> std::io::Result<(u16, u16)> {
    let a = UdpSocket::bind((LO, 0))?;
    let b = UdpSocket::bind((LO, 0))?;
    Ok((a.local_addr()?.port(), b.local_addr()?.port()))
}

/// Starts a slave (its config from `tune`) and then a master pointing at it.
fn pair(
    slave_tune: impl FnOnce(&mut PtpConfig),
    master_tune: impl FnOnce(&mut MasterConfig),
) -> Result<(PtpSlave, PtpMaster), Box<dyn std::error::Error>> {
    let master_ports = free_ports()?;
    let mut slave_config = PtpConfig::new(Transport::unicast(LO, (0, 0), LO, master_ports));
    slave_tune(&mut slave_config);
    let slave = PtpSlave::spawn(slave_config)?;
    let (event, general) = slave.local_addrs();
    let mut config = MasterConfig::new(Transport::unicast(
        LO,
        master_ports,
        LO,
        (event.port(), general.port()),
    ));
    config.clock_identity = Some(ClockIdentity([0x02, 0, 0, 0xff, 0xfe, 0, 0, 0x42]));
    master_tune(&mut config);
    let master = PtpMaster::spawn(config)?;
    Ok((slave, master))
}

fn wait_locked(slave: &PtpSlave, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if slave.status().lock_state() == LockState::Locked {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Lock, then for `secs` compare the slave's model with the master's served time.
fn run_and_check(two_step: bool) -> Result<(), Box<dyn std::error::Error>> {
    let _serial = timing_guard();
    // The master serves TAI + 1234.5 s, running 40 ppm fast: the slave must learn both.
    // A software one-step master reads its origin before the send system call: on a busy
    // host a preemption there shifts a Sync by tens of µs, so it gets a looser lock
    // threshold and bound. Two-step uses kernel send stamps and the standard 50 µs.
    let bound_ns: i64 = if two_step { 50_000 } else { 200_000 };
    let (slave, master) = pair(
        |c| {
            if !two_step {
                // The lock threshold is the bound this test holds it to: CI's parallel test
                // run put four syncs in a row at 100-135 µs, which unlocked a 100 µs
                // threshold while every offset stayed inside the 200 µs bound.
                c.servo.lock_threshold_ns = 200_000;
            }
        },
        |c| {
            c.two_step = two_step;
            c.time_offset_ns = 1_234_500_000_000;
            c.frequency_offset_ppb = 40_000.0;
        },
    )?;
    let status = slave.status();
    let lock_time = wait_locked(&slave, Duration::from_secs(10));
    let snap = status.snapshot();
    assert!(lock_time.is_some(), "no lock within 10 s: {snap:#?}");
    assert_eq!(snap.grandmaster, Some(master.identity().clock));
    assert_eq!(snap.master, Some(master.identity()));

    let mut worst_offset = 0i64;
    let mut worst_model = 0i128;
    let mut offsets = Vec::new();
    let mut frequencies = Vec::new();
    let mut last_samples = snap.counters.samples;
    let mut last_outliers = snap.counters.sync_outliers;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
        let snap = status.snapshot();
        assert_eq!(snap.lock_state, LockState::Locked, "lost lock: {snap:#?}");
        // Samples the servo set aside as outliers did not steer it: they are not its offset.
        let outlier = snap.counters.sync_outliers != last_outliers;
        last_outliers = snap.counters.sync_outliers;
        if snap.counters.samples != last_samples {
            last_samples = snap.counters.samples;
            if outlier {
                continue;
            }
            offsets.push(snap.offset_ns);
            frequencies.push(snap.frequency_ppb);
            worst_offset = worst_offset.max(snap.offset_ns.abs());
        }
        let now = local_monotonic_ns();
        let model = status.master_time_at(now).map_or(i128::MAX, i128::from);
        worst_model = worst_model.max((model - i128::from(master.time_at(now))).abs());
    }
    let snap = status.snapshot();
    let mean = offsets.iter().sum::<i64>() as f64 / offsets.len().max(1) as f64;
    let mean_freq = frequencies.iter().sum::<f64>() / frequencies.len().max(1) as f64;
    eprintln!(
        "loopback {}: locked after {:?}, {} samples, offset mean {mean:.0} ns, max |offset| {worst_offset} ns, \
         max |model − master| {worst_model} ns, path delay {:?} ns, freq {:.0} ppb (mean {mean_freq:.0}), counters {:?}",
        if two_step { "two-step" } else { "one-step" },
        lock_time.unwrap_or_default(),
        offsets.len(),
        snap.mean_path_delay_ns,
        snap.frequency_ppb,
        snap.counters,
    );
    assert!(offsets.len() >= 10, "too few samples: {}", offsets.len());
    assert!(worst_offset < bound_ns, "offset {worst_offset} ns");
    assert!(
        worst_model < i128::from(bound_ns),
        "model error {worst_model} ns"
    );
    // The frequency is the servo's integral term, which every sample moves by ki × offset / dt:
    // at 8 syncs/s a 30 µs jitter moves it by ~70 ppm, so one reading at the end is noise on a
    // busy host (one-step read 148 ppm once on CI with every offset within 93 µs). The mean over
    // the window is the rate the slave learned. Two-step (kernel stamps): within 10 ppm of the
    // true 40 ppm. A software one-step master stamps its Syncs before the send system call,
    // which adds microseconds of jitter: within 50 ppm.
    let freq_tolerance = if two_step { 10_000.0 } else { 50_000.0 };
    assert!(
        (mean_freq - 40_000.0).abs() < freq_tolerance,
        "mean freq {mean_freq} ppb over {} samples, last {}",
        frequencies.len(),
        snap.frequency_ppb
    );
    assert!(snap.mean_path_delay_ns.is_some_and(|d| d.abs() < 1_000_000));
    assert!(snap.counters.delay_responses > 0 && master.delay_responses_sent() > 0);
    assert_eq!(snap.counters.malformed, 0);
    Ok(())
}

#[test]
fn two_step_master_on_loopback_locks_within_50_us() -> Result<(), Box<dyn std::error::Error>> {
    run_and_check(true)
}

#[test]
fn one_step_master_on_loopback_locks_within_200_us() -> Result<(), Box<dyn std::error::Error>> {
    run_and_check(false)
}

#[test]
fn a_better_master_wins_and_a_silent_one_times_out() -> Result<(), Box<dyn std::error::Error>> {
    // Two masters send to one slave; the one with the lower priority1 must be chosen, and
    // when it stops the slave falls back to the other.
    let m1_ports = free_ports()?;
    let m2_ports = free_ports()?;
    let slave = PtpSlave::spawn(PtpConfig::new(Transport::unicast(LO, (0, 0), LO, m1_ports)))?;
    let (event, general) = slave.local_addrs();
    let slave_ports = (event.port(), general.port());
    let mut weak = MasterConfig::new(Transport::unicast(LO, m2_ports, LO, slave_ports));
    weak.clock_identity = Some(ClockIdentity([0x02, 0, 0, 0, 0, 0, 0, 0x01]));
    weak.priority1 = 200;
    let mut strong = MasterConfig::new(Transport::unicast(LO, m1_ports, LO, slave_ports));
    strong.clock_identity = Some(ClockIdentity([0x02, 0, 0, 0, 0, 0, 0, 0x99]));
    strong.priority1 = 100;
    let weak = PtpMaster::spawn(weak)?;
    let strong = PtpMaster::spawn(strong)?;
    let status = slave.status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while status.grandmaster() != Some(strong.identity().clock) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(status.grandmaster(), Some(strong.identity().clock));
    drop(strong);
    // Announce interval 250 ms × timeout 3: the weak master takes over within a second or so.
    let deadline = Instant::now() + Duration::from_secs(5);
    while status.grandmaster() != Some(weak.identity().clock) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let snap = status.snapshot();
    assert_eq!(snap.grandmaster, Some(weak.identity().clock), "{snap:#?}");
    assert!(snap.counters.announce_timeouts >= 1);
    assert!(snap.counters.master_changes >= 2);
    Ok(())
}

#[test]
fn garbage_is_counted_and_dropped() -> Result<(), Box<dyn std::error::Error>> {
    let slave = PtpSlave::spawn(PtpConfig::new(Transport::unicast(LO, (0, 0), LO, (9, 9))))?;
    let (event, general) = slave.local_addrs();
    let sender = UdpSocket::bind((LO, 0))?;
    let mut noise = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..200usize {
        let mut datagram = vec![0u8; i % 90];
        for byte in &mut datagram {
            noise ^= noise << 13;
            noise ^= noise >> 7;
            noise ^= noise << 17;
            *byte = noise as u8;
        }
        if datagram.len() > 1 {
            datagram[1] = 2; // mostly "version 2", so the deeper checks run too
        }
        sender.send_to(&datagram, if i % 2 == 0 { event } else { general })?;
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    let status = slave.status();
    while status.snapshot().counters.received < 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let c = status.snapshot().counters;
    assert_eq!(c.received, 200, "{c:?}");
    assert!(c.malformed > 100, "{c:?}");
    assert_eq!(
        c.malformed + c.unsupported + c.ignored + c.other_domain + c.announces,
        200 - c.syncs - c.follow_ups,
        "{c:?}"
    );
    assert_eq!(status.lock_state(), LockState::Unlocked);
    Ok(())
}

#[test]
fn ptp_clock_ticks_on_master_frame_boundaries() -> Result<(), Box<dyn std::error::Error>> {
    let _serial = timing_guard();
    let master_ports = free_ports()?;
    let fps = Rational::fps(100);
    let mut clock = PtpClock::new(
        fps,
        PtpConfig::new(Transport::unicast(LO, (0, 0), LO, master_ports)),
    )?;
    assert_eq!(clock.lock_state(), LockState::Unlocked);
    assert_eq!(clock.info().id, PtpClock::UNLOCKED_SOURCE_ID);
    assert_eq!(clock.info().timescale, streamlib_clock::Timescale::Tai);
    assert!(matches!(
        clock.wait_tick(Duration::ZERO),
        Err(streamlib_clock::ClockError::NotStarted { .. })
    ));
    let (event, general) = clock.slave().local_addrs();
    let mut config = MasterConfig::new(Transport::unicast(
        LO,
        master_ports,
        LO,
        (event.port(), general.port()),
    ));
    config.time_offset_ns = 77_777_777_777; // not a frame multiple, so alignment is tested
    let master = PtpMaster::spawn(config)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while clock.lock_state() != LockState::Locked && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(clock.lock_state(), LockState::Locked);
    assert_eq!(clock.info().id.0, master.identity().clock.to_u64());
    clock.start()?;
    let mut last = None;
    let mut lateness = Vec::with_capacity(20);
    for _ in 0..20 {
        let TickWait::Tick(tick) = clock.wait_tick(Duration::from_secs(1))? else {
            panic!("no tick within 1 s");
        };
        let woke = local_monotonic_ns();
        assert_eq!(tick.timestamp, tai_frame_time_ns(fps, tick.frame_number));
        assert_eq!(tick.timestamp % 10_000_000, 0);
        assert_eq!(tick.clock_source_id.0, master.identity().clock.to_u64());
        // Delivered at (not before) the master's boundary, and not much after.
        let master_now = master.time_at(woke);
        assert!(
            master_now + 50_000 >= tick.timestamp,
            "early: {master_now} < {}",
            tick.timestamp
        );
        // How late the wake-up was: a busy machine may preempt this thread for a tick or
        // two, so the typical lateness is what is held to 5 ms, and no tick to 100 ms.
        let late = master_now.saturating_sub(tick.timestamp);
        assert!(late < 100_000_000, "late by {late} ns");
        lateness.push(late);
        if let Some(prev) = last {
            assert!(tick.frame_number > prev);
        }
        last = Some(tick.frame_number);
    }
    lateness.sort_unstable();
    let median = lateness[lateness.len() / 2];
    assert!(
        median < 5_000_000,
        "ticks are late by {median} ns typically: {lateness:?}"
    );
    let stats = clock.stats();
    assert_eq!(stats.ticks, 20);
    let now = clock.now_ns();
    assert!(now.abs_diff(master.time_at(local_monotonic_ns())) < 100_000);
    Ok(())
}

#[test]
fn taken_ports_are_reported_with_a_hint() -> Result<(), Box<dyn std::error::Error>> {
    let holder = UdpSocket::bind((LO, 0))?;
    let port = holder.local_addr()?.port();
    let err = PtpSlave::spawn(PtpConfig::new(Transport::unicast(
        LO,
        (port, 0),
        LO,
        (9, 9),
    )));
    match err {
        Err(PtpError::Bind { role, addr, .. }) => {
            assert_eq!(role, "event");
            assert_eq!(addr.port(), port);
        }
        // SO_REUSEADDR lets UDP sockets share a port on some systems: that is fine too.
        Ok(_) => eprintln!("note: the kernel let two sockets share port {port}"),
        Err(other) => panic!("unexpected error: {other}"),
    }
    Ok(())
}
