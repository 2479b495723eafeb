//! Local clocks: the monotonic timebase every local timestamp is expressed in, and the
//! system's idea of TAI used before a master is locked.

use std::io;

/// TAI − UTC since 2017-01-01, used when the kernel's TAI offset is not set.
pub const TAI_UTC_OFFSET_NS: u64 = 37_000_000_000;

const NS_PER_SEC: u64 = 1_000_000_000;

fn read(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec that outlives the call.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc != 0 {
        return 0;
    }
    timespec_ns(&ts)
}

/// A timespec as ns (0 for times before 1970).
pub(crate) fn timespec_ns(ts: &libc::timespec) -> u64 {
    u64::try_from(ts.tv_sec)
        .unwrap_or(0)
        .saturating_mul(NS_PER_SEC)
        .saturating_add(u64::try_from(ts.tv_nsec).unwrap_or(0))
}

/// Now on the local monotonic clock (`CLOCK_MONOTONIC`), ns.
///
/// Every local timestamp in this crate (receive and send times, the servo's model) is on this
/// timebase, so a step of the system clock never disturbs PTP.
pub fn local_monotonic_ns() -> u64 {
    streamlib_clock::monotonic_now_ns()
}

/// Now on `CLOCK_REALTIME`, ns since 1970 UTC (the timebase of kernel software timestamps).
pub(crate) fn realtime_ns() -> u64 {
    read(libc::CLOCK_REALTIME)
}

/// The system's TAI, ns since the PTP epoch: `CLOCK_TAI` when the kernel knows the TAI
/// offset, else `CLOCK_REALTIME` + 37 s.
pub fn system_tai_ns() -> u64 {
    let real = realtime_ns();
    let tai = read(libc::CLOCK_TAI);
    // An unset kernel offset makes CLOCK_TAI equal CLOCK_REALTIME.
    if tai >= real + NS_PER_SEC / 2 {
        tai
    } else {
        real + TAI_UTC_OFFSET_NS
    }
}

/// Maps a `CLOCK_REALTIME` timestamp taken by the kernel a moment ago onto the monotonic
/// timebase, by reading both clocks now.
pub(crate) fn realtime_to_monotonic(kernel_realtime_ns: u64) -> u64 {
    let mono = local_monotonic_ns();
    let real = realtime_ns();
    let age = real.saturating_sub(kernel_realtime_ns);
    mono.saturating_sub(age)
}

/// Sleeps until the monotonic clock reads at least `deadline_ns` (the clock crate's sleep, so
/// PTP ticks and the other clocks share one timebase).
pub(crate) fn sleep_until_monotonic_ns(deadline_ns: u64) -> io::Result<()> {
    streamlib_clock::sleep_until_monotonic_ns(deadline_ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_tai_is_ahead_of_utc() {
        let real = realtime_ns();
        let tai = system_tai_ns();
        assert!(tai >= real + 30 * NS_PER_SEC, "TAI {tai} vs UTC {real}");
        assert!(tai <= real + 40 * NS_PER_SEC, "TAI {tai} vs UTC {real}");
    }

    #[test]
    fn realtime_maps_onto_monotonic() {
        let before = local_monotonic_ns();
        let mapped = realtime_to_monotonic(realtime_ns());
        let after = local_monotonic_ns();
        assert!(
            mapped + 1_000_000 >= before && mapped <= after,
            "{before} {mapped} {after}"
        );
    }

    #[test]
    fn sleeping_reaches_the_deadline() -> io::Result<()> {
        let deadline = local_monotonic_ns() + 1_000_000;
        sleep_until_monotonic_ns(deadline)?;
        assert!(local_monotonic_ns() >= deadline);
        Ok(())
    }
}
