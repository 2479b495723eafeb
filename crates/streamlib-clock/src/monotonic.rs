//! The local monotonic timebase and absolute-deadline sleeping.
//!
//! On Linux everything reads `CLOCK_MONOTONIC` through `clock_gettime` and sleeps with
//! `clock_nanosleep(TIMER_ABSTIME)`, so deadlines and readings share one timebase and a sleep
//! cut short by a signal resumes towards the same deadline. Elsewhere the timebase is
//! [`Instant`](std::time::Instant) since first use and sleeping is [`std::thread::sleep`].

use std::io;

#[cfg(target_os = "linux")]
mod imp {
    use std::io;

    const NS_PER_SEC: u64 = 1_000_000_000;

    pub(crate) fn now_ns() -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec that outlives the call.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        // CLOCK_MONOTONIC always exists on Linux and the pointer is valid, so this cannot fail.
        debug_assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC) failed");
        (ts.tv_sec as u64)
            .saturating_mul(NS_PER_SEC)
            .saturating_add(ts.tv_nsec as u64)
    }

    pub(crate) fn sleep_until_ns(deadline_ns: u64) -> io::Result<()> {
        let ts = libc::timespec {
            // Saturates only for deadlines centuries away, which then just sleep "forever".
            tv_sec: libc::time_t::try_from(deadline_ns / NS_PER_SEC).unwrap_or(libc::time_t::MAX),
            tv_nsec: (deadline_ns % NS_PER_SEC) as libc::c_long,
        };
        loop {
            // SAFETY: `ts` is a valid timespec; a null remainder is allowed with TIMER_ABSTIME.
            let rc = unsafe {
                libc::clock_nanosleep(
                    libc::CLOCK_MONOTONIC,
                    libc::TIMER_ABSTIME,
                    &ts,
                    std::ptr::null_mut(),
                )
            };
            match rc {
                0 => return Ok(()),
                // A signal interrupted us; the deadline is absolute, so just sleep again.
                libc::EINTR => {}
                err => return Err(io::Error::from_raw_os_error(err)),
            }
        }
    }

    pub(crate) fn set_timer_slack_ns(slack_ns: u64) -> io::Result<()> {
        let slack = libc::c_ulong::try_from(slack_ns).unwrap_or(libc::c_ulong::MAX);
        // SAFETY: PR_SET_TIMERSLACK takes one unsigned long and touches no memory of ours.
        let rc = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, slack, 0, 0, 0) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::io;
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    fn base() -> Instant {
        static BASE: OnceLock<Instant> = OnceLock::new();
        *BASE.get_or_init(Instant::now)
    }

    pub(crate) fn now_ns() -> u64 {
        u64::try_from(base().elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    pub(crate) fn sleep_until_ns(deadline_ns: u64) -> io::Result<()> {
        // std sleeps are relative; loop because they may return early on some platforms.
        loop {
            let now = now_ns();
            if now >= deadline_ns {
                return Ok(());
            }
            std::thread::sleep(Duration::from_nanos(deadline_ns - now));
        }
    }

    pub(crate) fn set_timer_slack_ns(_slack_ns: u64) -> io::Result<()> {
        // Timer slack is a Linux notion; elsewhere there is nothing to set.
        Ok(())
    }
}

/// Now on the local monotonic clock, ns (`CLOCK_MONOTONIC` on Linux): the timebase every
/// clock here sleeps on, public so that clocks in other crates (PTP) share it.
pub fn now_ns() -> u64 {
    imp::now_ns()
}

/// Sleeps until the monotonic clock reads at least `deadline_ns` (returns at once if it does);
/// a sleep cut short by a signal resumes towards the same deadline.
pub fn sleep_until_ns(deadline_ns: u64) -> io::Result<()> {
    imp::sleep_until_ns(deadline_ns)
}

/// Sleeps until `deadline_ns - spin_margin_ns`, then spins until `deadline_ns`: the timer
/// gets close, the spin removes the wake-up latency that remains.
pub(crate) fn sleep_until_precise_ns(deadline_ns: u64, spin_margin_ns: u64) -> io::Result<()> {
    sleep_until_ns(deadline_ns.saturating_sub(spin_margin_ns))?;
    while now_ns() < deadline_ns {
        std::hint::spin_loop();
    }
    Ok(())
}

/// Sets the calling thread's timer slack (Linux `PR_SET_TIMERSLACK`; 0 restores the default).
/// A no-op elsewhere.
pub fn set_timer_slack_ns(slack_ns: u64) -> io::Result<()> {
    imp::set_timer_slack_ns(slack_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_monotonic() {
        let a = now_ns();
        let b = now_ns();
        assert!(b >= a);
    }

    #[test]
    fn sleeping_reaches_the_deadline() -> io::Result<()> {
        let deadline = now_ns() + 2_000_000;
        sleep_until_ns(deadline)?;
        assert!(now_ns() >= deadline);
        let deadline = now_ns() + 2_000_000;
        sleep_until_precise_ns(deadline, 1_000_000)?;
        assert!(now_ns() >= deadline);
        // A deadline in the past returns at once.
        sleep_until_ns(0)
    }

    #[test]
    fn timer_slack_can_be_set() -> io::Result<()> {
        set_timer_slack_ns(1)
    }
}
