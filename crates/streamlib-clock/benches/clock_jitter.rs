//! Wake-up lateness at 60 Hz: a bare `clock_nanosleep(TIMER_ABSTIME)` loop (the peer), then
//! `SoftwareClock` with default options and in precise mode.
//!
//! `cargo bench -p streamlib-clock --bench clock_jitter` runs each for
//! `STREAMLIB_JITTER_SECS` seconds (default 20). Smoke runs (`--test`, or no `--bench` and no
//! variable) take about 0.2 s each.

#![allow(
    clippy::print_stdout,
    reason = "a harness-less bench reports its table on stdout"
)]

use std::time::Duration;

use streamlib_clock::{Clock, ClockError, Rational, SoftwareClock, SoftwareClockOptions, TickWait};

const RATE: Rational = Rational::fps(60);
const SMOKE_SECS: f64 = 0.2;

fn run_seconds() -> f64 {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--test") {
        return SMOKE_SECS;
    }
    let from_env = std::env::var("STREAMLIB_JITTER_SECS")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0);
    match from_env {
        Some(secs) => secs,
        None if args.iter().any(|a| a == "--bench") => 20.0,
        None => SMOKE_SECS,
    }
}

/// The peer: what a hand-written realtime loop gets from the kernel, nothing in between.
#[cfg(target_os = "linux")]
fn bare_nanosleep(frames: u64) -> Vec<u64> {
    fn now_ns() -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }

    // SAFETY: PR_SET_TIMERSLACK takes one unsigned long and touches no memory of ours.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
    let origin = now_ns();
    let mut lateness = Vec::with_capacity(frames as usize);
    for n in 1..=frames {
        let deadline = origin + RATE.frame_time_ns(n);
        let ts = libc::timespec {
            tv_sec: (deadline / 1_000_000_000) as libc::time_t,
            tv_nsec: (deadline % 1_000_000_000) as libc::c_long,
        };
        // SAFETY: `ts` is a valid timespec; a null remainder is allowed with TIMER_ABSTIME.
        while unsafe {
            libc::clock_nanosleep(
                libc::CLOCK_MONOTONIC,
                libc::TIMER_ABSTIME,
                &ts,
                std::ptr::null_mut(),
            )
        } == libc::EINTR
        {}
        lateness.push(now_ns().saturating_sub(deadline));
    }
    lateness
}

/// The peer is Linux's `clock_nanosleep`; elsewhere there is nothing to compare against.
#[cfg(not(target_os = "linux"))]
fn bare_nanosleep(_frames: u64) -> Vec<u64> {
    Vec::new()
}

/// Lateness of each tick after the first (which is due at `start` and says nothing), plus the
/// number of ticks the clock had to skip.
fn software_clock(
    options: SoftwareClockOptions,
    frames: u64,
) -> Result<(Vec<u64>, u64), ClockError> {
    let mut clock = SoftwareClock::with_options(RATE, options);
    clock.start()?;
    clock.wait_tick(Duration::from_secs(1))?;
    let mut lateness = Vec::with_capacity(frames as usize);
    while (lateness.len() as u64) < frames {
        if let TickWait::Tick(_) = clock.wait_tick(Duration::from_secs(1))? {
            lateness.push(clock.stats().last_lateness_ns);
        }
    }
    Ok((lateness, clock.stats().missed))
}

struct Summary {
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
}

fn summarize(mut lateness: Vec<u64>) -> Summary {
    lateness.sort_unstable();
    let at = |q: usize| lateness[(lateness.len() - 1) * q / 100] as f64 / 1_000.0;
    Summary {
        p50_us: at(50),
        p99_us: at(99),
        max_us: at(100),
    }
}

fn row(name: &str, s: &Summary, missed: Option<u64>) {
    let missed = missed.map_or_else(|| "-".to_owned(), |m| m.to_string());
    println!(
        "{name:<28} {:>10.1} {:>10.1} {:>10.1} {missed:>8}",
        s.p50_us, s.p99_us, s.max_us
    );
}

fn main() -> Result<(), ClockError> {
    let secs = run_seconds();
    let frames = ((secs * RATE.as_f64()).round() as u64).max(1);
    // Interleave the three in rounds of about a second, so load that comes and goes on a
    // shared machine hits all of them alike instead of whichever ran at the time.
    let rounds = (secs.round() as u64).clamp(1, frames);
    let per_round = frames.div_ceil(rounds);
    println!(
        "clock_jitter: wake-up lateness at {RATE} Hz, {secs} s ({frames} wake-ups) per clock, \
         interleaved in {rounds} round(s)"
    );

    let precise = SoftwareClockOptions {
        precise: true,
        ..SoftwareClockOptions::default()
    };
    let mut peer_lateness = Vec::new();
    let (mut default_lateness, mut default_missed) = (Vec::new(), 0);
    let (mut precise_lateness, mut precise_missed) = (Vec::new(), 0);
    for _ in 0..rounds {
        peer_lateness.extend(bare_nanosleep(per_round));
        let (lateness, missed) = software_clock(SoftwareClockOptions::default(), per_round)?;
        default_lateness.extend(lateness);
        default_missed += missed;
        let (lateness, missed) = software_clock(precise, per_round)?;
        precise_lateness.extend(lateness);
        precise_missed += missed;
    }

    println!(
        "{:<28} {:>10} {:>10} {:>10} {:>8}",
        "clock", "p50 µs", "p99 µs", "max µs", "missed"
    );
    let peer = if peer_lateness.is_empty() {
        println!("{:<28} (Linux only)", "clock_nanosleep loop (peer)");
        None
    } else {
        let s = summarize(peer_lateness);
        row("clock_nanosleep loop (peer)", &s, None);
        Some(s)
    };
    let default = summarize(default_lateness);
    row("SoftwareClock default", &default, Some(default_missed));
    row(
        "SoftwareClock precise",
        &summarize(precise_lateness),
        Some(precise_missed),
    );
    if let Some(peer) = peer {
        // A zero p99 (impossible in practice) would make the ratio meaningless.
        let ratio = default.p99_us / peer.p99_us.max(0.001);
        println!("p99 ratio SoftwareClock default / peer: {ratio:.2}");
    }
    Ok(())
}
