//! [`GenlockClock`]: ticks on an external pulse, tracking whether it is locked to it.

use std::time::Duration;

use crate::{
    Clock, ClockError, ClockInfo, ClockSourceId, ClockStats, LockState, Pacing, Rational, TickWait,
    TimedTick, Timescale, monotonic,
};

/// What [`PulseSource::wait_pulse`] saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PulseWait {
    /// A pulse, stamped in the source's own timescale.
    Pulse {
        /// When the pulse happened, ns of the source's reference.
        timestamp_ns: u64,
    },
    /// No pulse before the timeout.
    Timeout,
    /// The source will never pulse again.
    Ended,
}

/// A reference pulse: a genlock input, a vsync, a PPS line, or [`SoftwarePulse`](crate::SoftwarePulse).
pub trait PulseSource: Send + 'static {
    /// Name for logs and errors.
    fn name(&self) -> &str;

    /// Blocks until the next pulse or until `timeout` passes. A source that cannot keep every
    /// pulse reports the newest one; the genlock clock sees the gap in the timestamps.
    ///
    /// # Errors
    /// [`ClockError::Pulse`] when the source fails.
    fn wait_pulse(&mut self, timeout: Duration) -> Result<PulseWait, ClockError>;
}

impl<P: PulseSource + ?Sized> PulseSource for Box<P> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn wait_pulse(&mut self, timeout: Duration) -> Result<PulseWait, ClockError> {
        (**self).wait_pulse(timeout)
    }
}

/// How strict a [`GenlockClock`] is about its pulse.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GenlockOptions {
    /// Accepted deviation of a pulse interval from a whole number of nominal periods, as a
    /// fraction of the period, in `(0, 0.5)`. Default 0.10 (±10 %).
    pub tolerance: f64,
    /// Consecutive in-tolerance one-period intervals needed to go from
    /// [`LockState::Locking`] to [`LockState::Locked`]. Default 3.
    pub lock_after: u32,
    /// Lock is lost when no pulse arrives for more than this many nominal periods: measured
    /// on the local clock since the latest pulse was received (by `wait_tick` timeouts and
    /// `lock_state`), and in the pulse timestamps when pulses resume. At least 1. Default 2.
    pub unlock_after_periods: f64,
}

impl Default for GenlockOptions {
    fn default() -> Self {
        Self {
            tolerance: 0.10,
            lock_after: 3,
            unlock_after_periods: 2.0,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct LastPulse {
    timestamp_ns: u64,
    /// Local monotonic ns at which the clock received it.
    received_ns: u64,
    frame_number: u64,
}

/// A clock that ticks once per pulse of a [`PulseSource`].
///
/// Each pulse is one tick: the timestamp is the pulse's own ([`Timescale::External`]) and the
/// frame number counts nominal periods, so a gap of k periods between pulses advances it by
/// k and counts k − 1 [`missed`](ClockStats::missed) pulses.
///
/// Lock tracking: [`Unlocked`](LockState::Unlocked) until the first pulse,
/// [`Locking`](LockState::Locking) until [`GenlockOptions::lock_after`] consecutive intervals
/// are within [`tolerance`](GenlockOptions::tolerance) of one period,
/// [`Locked`](LockState::Locked) while that holds (a single missing pulse does not break
/// it). It drops to `Unlocked` when an interval is out of tolerance or pulses stop for more
/// than [`unlock_after_periods`](GenlockOptions::unlock_after_periods), and relocks the same
/// way. Lateness is not measured: pulse time and local time are different timescales.
pub struct GenlockClock {
    source: Box<dyn PulseSource>,
    fps: Rational,
    options: GenlockOptions,
    started: bool,
    last: Option<LastPulse>,
    good_intervals: u32,
    state: LockState,
    stats: ClockStats,
}

impl std::fmt::Debug for GenlockClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenlockClock")
            .field("source", &self.source.name())
            .field("fps", &self.fps)
            .field("options", &self.options)
            .field("state", &self.state)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// How one pulse interval relates to the nominal period.
enum Interval {
    /// Within tolerance of `periods` whole periods (at least 1).
    Periods(u64),
    /// Not near a whole number of periods, or not moving forward; still advance `periods`.
    OutOfTolerance(u64),
}

impl GenlockClock {
    /// A clock ticking on `source`, whose nominal rate is `fps`, with default
    /// [`GenlockOptions`]. Rate and options are checked by [`Clock::start`].
    pub fn new(source: impl PulseSource, fps: Rational) -> Self {
        Self::with_options(source, fps, GenlockOptions::default())
    }

    /// A clock ticking on `source` with explicit lock options.
    pub fn with_options(source: impl PulseSource, fps: Rational, options: GenlockOptions) -> Self {
        Self {
            source: Box::new(source),
            fps,
            options,
            started: false,
            last: None,
            good_intervals: 0,
            state: LockState::Unlocked,
            stats: ClockStats::default(),
        }
    }

    /// The options the clock was built with.
    pub fn options(&self) -> GenlockOptions {
        self.options
    }

    fn name(&self) -> String {
        format!("genlock {} fps ({})", self.fps, self.source.name())
    }

    fn validate(&self) -> Result<(), ClockError> {
        Rational::new(self.fps.num, self.fps.den)?;
        let GenlockOptions {
            tolerance,
            lock_after,
            unlock_after_periods,
        } = self.options;
        // Above 0.5 an interval would be near two whole period counts at once.
        if !(tolerance > 0.0 && tolerance < 0.5) {
            return Err(ClockError::InvalidConfig {
                what: format!("{}: tolerance {tolerance} is not in (0, 0.5)", self.name()),
            });
        }
        if lock_after == 0 {
            return Err(ClockError::InvalidConfig {
                what: format!("{}: lock_after must be at least 1", self.name()),
            });
        }
        if !(unlock_after_periods.is_finite() && unlock_after_periods >= 1.0) {
            return Err(ClockError::InvalidConfig {
                what: format!(
                    "{}: unlock_after_periods {unlock_after_periods} must be finite and at least 1",
                    self.name()
                ),
            });
        }
        Ok(())
    }

    /// True when no pulse has been received for longer than the unlock threshold.
    fn pulses_stopped(&self, now_ns: u64) -> bool {
        self.last.is_some_and(|last| {
            let silent = now_ns.saturating_sub(last.received_ns) as f64;
            silent > self.options.unlock_after_periods * self.fps.period_ns()
        })
    }

    fn classify(&self, previous_ns: u64, timestamp_ns: u64) -> Interval {
        if timestamp_ns <= previous_ns {
            return Interval::OutOfTolerance(1);
        }
        let periods = (timestamp_ns - previous_ns) as f64 / self.fps.period_ns();
        let whole = periods.round();
        // `as` saturates; `max(1)` keeps frame numbers strictly increasing for early pulses.
        let steps = (whole as u64).max(1);
        if whole >= 1.0 && (periods - whole).abs() <= self.options.tolerance {
            Interval::Periods(steps)
        } else {
            Interval::OutOfTolerance(steps)
        }
    }

    fn on_pulse(&mut self, timestamp_ns: u64) -> TimedTick {
        let received_ns = monotonic::now_ns();
        let frame_number = match self.last {
            None => {
                self.good_intervals = 0;
                self.state = LockState::Locking;
                0
            }
            Some(last) => {
                let steps = match self.classify(last.timestamp_ns, timestamp_ns) {
                    Interval::Periods(steps) => {
                        if steps as f64 > self.options.unlock_after_periods {
                            // The reference went away and came back: reacquire from scratch.
                            self.good_intervals = 0;
                            self.state = LockState::Locking;
                        } else if steps == 1 {
                            self.good_intervals = self.good_intervals.saturating_add(1);
                        }
                        if self.state != LockState::Locked {
                            self.state = if self.good_intervals >= self.options.lock_after {
                                LockState::Locked
                            } else {
                                LockState::Locking
                            };
                        }
                        steps
                    }
                    Interval::OutOfTolerance(steps) => {
                        if self.state != LockState::Unlocked {
                            tracing::debug!(
                                clock = %self.name(),
                                previous_ns = last.timestamp_ns,
                                timestamp_ns,
                                "pulse interval out of tolerance, lock lost"
                            );
                        }
                        self.good_intervals = 0;
                        self.state = LockState::Unlocked;
                        steps
                    }
                };
                self.stats.missed += steps - 1;
                last.frame_number.saturating_add(steps)
            }
        };
        self.last = Some(LastPulse {
            timestamp_ns,
            received_ns,
            frame_number,
        });
        self.stats.record_tick(0);
        TimedTick {
            timestamp: timestamp_ns,
            frame_number,
            clock_source_id: ClockSourceId::GENLOCK,
            fps: self.fps,
        }
    }
}

impl Clock for GenlockClock {
    fn info(&self) -> ClockInfo {
        ClockInfo {
            name: self.name(),
            id: ClockSourceId::GENLOCK,
            fps: self.fps,
            timescale: Timescale::External,
            pacing: Pacing::Realtime,
        }
    }

    fn start(&mut self) -> Result<(), ClockError> {
        self.validate()?;
        self.started = true;
        self.last = None;
        self.good_intervals = 0;
        self.state = LockState::Unlocked;
        self.stats = ClockStats::default();
        Ok(())
    }

    fn wait_tick(&mut self, timeout: Duration) -> Result<TickWait, ClockError> {
        if !self.started {
            return Err(ClockError::NotStarted { clock: self.name() });
        }
        match self.source.wait_pulse(timeout)? {
            PulseWait::Pulse { timestamp_ns } => Ok(TickWait::Tick(self.on_pulse(timestamp_ns))),
            PulseWait::Timeout => {
                if self.state != LockState::Unlocked && self.pulses_stopped(monotonic::now_ns()) {
                    tracing::debug!(clock = %self.name(), "pulses stopped, lock lost");
                    self.good_intervals = 0;
                    self.state = LockState::Unlocked;
                }
                Ok(TickWait::Timeout)
            }
            PulseWait::Ended => {
                self.state = LockState::Unlocked;
                Ok(TickWait::Ended)
            }
        }
    }

    /// The latest pulse's timestamp plus the local time elapsed since it arrived; 0 before
    /// the first pulse.
    fn now_ns(&self) -> u64 {
        self.last.map_or(0, |last| {
            let elapsed = monotonic::now_ns().saturating_sub(last.received_ns);
            last.timestamp_ns.saturating_add(elapsed)
        })
    }

    fn stats(&self) -> ClockStats {
        self.stats
    }

    /// Reports `Unlocked` as soon as pulses have stopped, even between `wait_tick` calls.
    fn lock_state(&self) -> LockState {
        if self.pulses_stopped(monotonic::now_ns()) {
            LockState::Unlocked
        } else {
            self.state
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Silent;

    impl PulseSource for Silent {
        fn name(&self) -> &str {
            "silent"
        }

        fn wait_pulse(&mut self, _timeout: Duration) -> Result<PulseWait, ClockError> {
            Ok(PulseWait::Timeout)
        }
    }

    #[test]
    fn options_are_validated_at_start() {
        let bad = [
            GenlockOptions {
                tolerance: 0.0,
                ..GenlockOptions::default()
            },
            GenlockOptions {
                tolerance: f64::NAN,
                ..GenlockOptions::default()
            },
            GenlockOptions {
                lock_after: 0,
                ..GenlockOptions::default()
            },
            GenlockOptions {
                unlock_after_periods: 0.5,
                ..GenlockOptions::default()
            },
        ];
        for options in bad {
            let mut clock = GenlockClock::with_options(Silent, Rational::fps(50), options);
            let err = clock.start();
            assert!(
                matches!(&err, Err(ClockError::InvalidConfig { what }) if what.contains("silent")),
                "{options:?} gave {err:?}"
            );
        }
        let mut clock = GenlockClock::new(Silent, Rational::fps(50));
        assert!(clock.start().is_ok());
    }

    #[test]
    fn unlocked_and_at_time_zero_before_any_pulse() -> Result<(), ClockError> {
        let mut clock = GenlockClock::new(Silent, Rational::fps(50));
        assert_eq!(clock.lock_state(), LockState::Unlocked);
        clock.start()?;
        assert_eq!(clock.wait_tick(Duration::ZERO)?, TickWait::Timeout);
        assert_eq!(clock.lock_state(), LockState::Unlocked);
        assert_eq!(clock.now_ns(), 0);
        let info = clock.info();
        assert_eq!(info.timescale, Timescale::External);
        assert_eq!(info.id, ClockSourceId::GENLOCK);
        Ok(())
    }
}
