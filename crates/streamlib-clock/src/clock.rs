//! The [`Clock`] trait and the values it hands to the runtime.

use std::fmt;
use std::time::Duration;

use crate::{ClockError, Rational};

/// Identifies the clock a tick came from (a PTP grandmaster's EUI-64 identity fits here).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClockSourceId(pub u64);

impl ClockSourceId {
    /// [`SoftwareClock`](crate::SoftwareClock): the local monotonic timer.
    pub const SOFTWARE: ClockSourceId = ClockSourceId(1);
    /// [`FreeRunningClock`](crate::FreeRunningClock): as fast as the pipeline goes.
    pub const FREE_RUNNING: ClockSourceId = ClockSourceId(2);
    /// [`ManualClock`](crate::ManualClock): ticks pushed by hand.
    pub const MANUAL: ClockSourceId = ClockSourceId(3);
    /// [`GenlockClock`](crate::GenlockClock): an external pulse.
    pub const GENLOCK: ClockSourceId = ClockSourceId(4);
}

impl fmt::Display for ClockSourceId {
    /// 16 hex digits, the way PTP tools print clock identities.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// What a clock's timestamps count from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timescale {
    /// ns since the clock started (media time).
    Media,
    /// TAI ns since the PTP epoch (1970-01-01 TAI), for PTP.
    Tai,
    /// ns of an external reference (genlock pulses carry their own time).
    External,
}

/// How the runtime paces ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pacing {
    /// Ticks follow real time; a pipeline that is late drops frames.
    Realtime,
    /// The next tick is issued only after the pipeline finished the previous one
    /// (free-running, manual).
    Pipeline,
}

/// One tick: the moment the runtime should produce a frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimedTick {
    /// When the frame is due, in ns of the clock's [`Timescale`].
    pub timestamp: u64,
    /// Index of the frame; it jumps when ticks were missed, so gaps stay visible.
    pub frame_number: u64,
    /// The clock that issued the tick.
    pub clock_source_id: ClockSourceId,
    /// The clock's nominal rate.
    pub fps: Rational,
}

/// What [`Clock::wait_tick`] saw.
#[derive(Clone, Debug, PartialEq)]
pub enum TickWait {
    /// The next tick.
    Tick(TimedTick),
    /// Nothing happened before the timeout.
    Timeout,
    /// The clock will never tick again (a manual clock whose handles are all dropped, a pulse
    /// source that ended).
    Ended,
}

/// How well a clock follows its reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LockState {
    /// No usable reference: pulses stopped or drifted out of tolerance.
    Unlocked,
    /// A reference is present but not yet stable.
    Locking,
    /// Following the reference (always the case for clocks that have none).
    #[default]
    Locked,
}

/// Static description of a clock, for logs and for the runtime's scheduling choices.
#[derive(Clone, Debug, PartialEq)]
pub struct ClockInfo {
    /// Human-readable name used in logs and errors, e.g. `software 30000/1001 fps`.
    pub name: String,
    /// Stamped into every tick.
    pub id: ClockSourceId,
    /// Nominal rate.
    pub fps: Rational,
    /// What tick timestamps count from.
    pub timescale: Timescale,
    /// Whether ticks follow real time or the pipeline.
    pub pacing: Pacing,
}

/// Counters since the last [`Clock::start`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClockStats {
    /// Ticks delivered.
    pub ticks: u64,
    /// Ticks (or pulses) that were due but skipped; `ticks + missed` is the number of frames
    /// that elapsed.
    pub missed: u64,
    /// Wake-up time minus deadline of the latest tick, ns (0 for clocks without deadlines).
    pub last_lateness_ns: u64,
    /// Largest `last_lateness_ns` seen.
    pub max_lateness_ns: u64,
}

impl ClockStats {
    /// Records one delivered tick that woke `lateness_ns` after its deadline.
    pub(crate) fn record_tick(&mut self, lateness_ns: u64) {
        self.ticks += 1;
        self.last_lateness_ns = lateness_ns;
        self.max_lateness_ns = self.max_lateness_ns.max(lateness_ns);
    }
}

/// One clock drives a whole runtime.
///
/// Implementations here: [`SoftwareClock`](crate::SoftwareClock),
/// [`FreeRunningClock`](crate::FreeRunningClock), [`ManualClock`](crate::ManualClock) and
/// [`GenlockClock`](crate::GenlockClock). A PTP clock (IEEE 1588, TAI) plugs in from another
/// crate through this same trait, which is why it says nothing about how a clock waits.
///
/// Every clock in this crate returns [`ClockError::NotStarted`] from `wait_tick` until
/// `start` has been called; none starts implicitly.
pub trait Clock: Send + 'static {
    /// Name, id, rate, timescale and pacing.
    fn info(&self) -> ClockInfo;

    /// Called once by the runtime before the first `wait_tick`; (re)sets the clock's origin to
    /// now, resets frame numbers and [`ClockStats`].
    ///
    /// # Errors
    /// [`ClockError::InvalidRate`] or [`ClockError::InvalidConfig`] when the clock was built
    /// with settings it cannot run.
    fn start(&mut self) -> Result<(), ClockError>;

    /// Blocks until the next tick or until `timeout` passes.
    ///
    /// The runtime calls it in a loop and checks for stop between calls, so it returns within
    /// about `timeout`.
    ///
    /// # Errors
    /// [`ClockError::NotStarted`] before `start`; source-specific errors after.
    fn wait_tick(&mut self, timeout: Duration) -> Result<TickWait, ClockError>;

    /// Current time in this clock's timescale, ns.
    fn now_ns(&self) -> u64;

    /// Counters since the last `start`.
    fn stats(&self) -> ClockStats;

    /// How well the clock follows its reference; clocks without one are always locked.
    fn lock_state(&self) -> LockState {
        LockState::Locked
    }
}

impl<C: Clock + ?Sized> Clock for Box<C> {
    fn info(&self) -> ClockInfo {
        (**self).info()
    }

    fn start(&mut self) -> Result<(), ClockError> {
        (**self).start()
    }

    fn wait_tick(&mut self, timeout: Duration) -> Result<TickWait, ClockError> {
        (**self).wait_tick(timeout)
    }

    fn now_ns(&self) -> u64 {
        (**self).now_ns()
    }

    fn stats(&self) -> ClockStats {
        (**self).stats()
    }

    fn lock_state(&self) -> LockState {
        (**self).lock_state()
    }
}

/// Saturating conversion for timeouts; `Duration::MAX` means "forever" (584 years).
pub(crate) fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_ids_are_distinct_and_print_as_hex() {
        let ids = [
            ClockSourceId::SOFTWARE,
            ClockSourceId::FREE_RUNNING,
            ClockSourceId::MANUAL,
            ClockSourceId::GENLOCK,
        ];
        for (i, a) in ids.iter().enumerate() {
            for b in &ids[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(ClockSourceId::GENLOCK.to_string(), "0000000000000004");
        assert_eq!(
            ClockSourceId(0x0011_22ff_fe33_4455).to_string(),
            "001122fffe334455"
        );
    }

    #[test]
    fn stats_track_the_maximum() {
        let mut stats = ClockStats::default();
        stats.record_tick(5);
        stats.record_tick(9);
        stats.record_tick(2);
        assert_eq!(stats.ticks, 3);
        assert_eq!(stats.last_lateness_ns, 2);
        assert_eq!(stats.max_lateness_ns, 9);
    }

    #[test]
    fn huge_timeouts_saturate() {
        assert_eq!(duration_ns(Duration::MAX), u64::MAX);
        assert_eq!(duration_ns(Duration::from_millis(3)), 3_000_000);
    }
}
