//! [`SoftwareClock`]: ticks from the local monotonic timer.

use std::time::Duration;

use crate::clock::duration_ns;
use crate::{
    Clock, ClockError, ClockInfo, ClockSourceId, ClockStats, Pacing, Rational, TickWait, TimedTick,
    Timescale, monotonic,
};

/// How a [`SoftwareClock`] sleeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoftwareClockOptions {
    /// Sleep until `spin_margin` before each deadline, then spin until it: wake-ups land within
    /// microseconds at the price of a busy core for `spin_margin` per tick.
    pub precise: bool,
    /// How long before the deadline precise mode stops sleeping. Default 1 ms.
    pub spin_margin: Duration,
    /// Timer slack for the thread that calls [`Clock::start`] (Linux `PR_SET_TIMERSLACK`; the
    /// kernel default is 50 µs). `None` leaves it alone; `Some(0)` restores the default.
    /// Default `Some(1)`. Ignored on other systems.
    pub timer_slack_ns: Option<u64>,
}

impl Default for SoftwareClockOptions {
    fn default() -> Self {
        Self {
            precise: false,
            spin_margin: Duration::from_millis(1),
            timer_slack_ns: Some(1),
        }
    }
}

/// A clock that ticks on the local monotonic timer at a fixed [`Rational`] rate.
///
/// Tick N is due at `origin + fps.frame_time_ns(N)`: every deadline is computed from one origin,
/// so 30000/1001 stays exact over hours. Its timestamp is `fps.frame_time_ns(N)` (media time
/// since [`start`](Clock::start)) and its frame number is N.
///
/// When the consumer comes back after several deadlines passed, the clock skips to the newest
/// due tick and counts the skipped ones in [`ClockStats::missed`]: a late pipeline sees a jump
/// in frame numbers, never a burst of stale ticks.
///
/// On Linux it sleeps with `clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)`; elsewhere with
/// [`std::thread::sleep`]. Timer slack is per thread, so call `start` on the thread that will
/// call `wait_tick`.
#[derive(Debug)]
pub struct SoftwareClock {
    fps: Rational,
    options: SoftwareClockOptions,
    /// Monotonic ns of frame 0; `None` until started.
    origin_ns: Option<u64>,
    next_frame: u64,
    stats: ClockStats,
}

impl SoftwareClock {
    /// A clock at `fps` with default options (plain sleeps, timer slack 1 ns).
    pub fn new(fps: Rational) -> Self {
        Self::with_options(fps, SoftwareClockOptions::default())
    }

    /// A clock at `fps` with explicit options. The rate is checked by [`Clock::start`].
    pub fn with_options(fps: Rational, options: SoftwareClockOptions) -> Self {
        Self {
            fps,
            options,
            origin_ns: None,
            next_frame: 0,
            stats: ClockStats::default(),
        }
    }

    /// The options the clock was built with.
    pub fn options(&self) -> SoftwareClockOptions {
        self.options
    }

    fn name(&self) -> String {
        let mode = if self.options.precise { " precise" } else { "" };
        format!("software{mode} {} fps", self.fps)
    }

    fn os_error(&self, operation: &'static str, source: std::io::Error) -> ClockError {
        ClockError::Os {
            clock: self.name(),
            operation,
            source,
        }
    }
}

impl Clock for SoftwareClock {
    fn info(&self) -> ClockInfo {
        ClockInfo {
            name: self.name(),
            id: ClockSourceId::SOFTWARE,
            fps: self.fps,
            timescale: Timescale::Media,
            pacing: Pacing::Realtime,
        }
    }

    fn start(&mut self) -> Result<(), ClockError> {
        Rational::new(self.fps.num, self.fps.den)?;
        if let Some(slack) = self.options.timer_slack_ns {
            // Coarser wake-ups are not fatal: the clock still ticks, just with more jitter.
            if let Err(err) = monotonic::set_timer_slack_ns(slack) {
                tracing::warn!(clock = %self.name(), %err, slack, "could not set timer slack");
            }
        }
        self.origin_ns = Some(monotonic::now_ns());
        self.next_frame = 0;
        self.stats = ClockStats::default();
        Ok(())
    }

    fn wait_tick(&mut self, timeout: Duration) -> Result<TickWait, ClockError> {
        let Some(origin) = self.origin_ns else {
            return Err(ClockError::NotStarted { clock: self.name() });
        };
        let wait_limit = monotonic::now_ns().saturating_add(duration_ns(timeout));
        let deadline = origin.saturating_add(self.fps.frame_time_ns(self.next_frame));

        if deadline > wait_limit {
            // The timeout needs no precision: a plain sleep, and no tick unless one became due.
            monotonic::sleep_until_ns(wait_limit)
                .map_err(|err| self.os_error("clock_nanosleep", err))?;
            if monotonic::now_ns() < deadline {
                return Ok(TickWait::Timeout);
            }
        } else if self.options.precise {
            let margin = duration_ns(self.options.spin_margin);
            monotonic::sleep_until_precise_ns(deadline, margin)
                .map_err(|err| self.os_error("clock_nanosleep", err))?;
        } else {
            monotonic::sleep_until_ns(deadline)
                .map_err(|err| self.os_error("clock_nanosleep", err))?;
        }

        let woke = monotonic::now_ns();
        // Skip to the newest tick that is due; `max` guards against a reading below the
        // deadline, which a monotonic clock never gives but costs nothing to rule out.
        let frame = self
            .fps
            .frame_at_ns(woke.saturating_sub(origin))
            .max(self.next_frame);
        let skipped = frame - self.next_frame;
        if skipped > 0 {
            tracing::debug!(clock = %self.name(), skipped, frame, "late wake-up, skipping ticks");
        }
        let timestamp = self.fps.frame_time_ns(frame);
        self.stats.missed += skipped;
        self.stats
            .record_tick(woke.saturating_sub(origin.saturating_add(timestamp)));
        self.next_frame = frame.saturating_add(1);
        Ok(TickWait::Tick(TimedTick {
            timestamp,
            frame_number: frame,
            clock_source_id: ClockSourceId::SOFTWARE,
            fps: self.fps,
        }))
    }

    /// Media time since `start`, ns; 0 before.
    fn now_ns(&self) -> u64 {
        self.origin_ns
            .map_or(0, |origin| monotonic::now_ns().saturating_sub(origin))
    }

    fn stats(&self) -> ClockStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documentation() {
        let options = SoftwareClockOptions::default();
        assert!(!options.precise);
        assert_eq!(options.spin_margin, Duration::from_millis(1));
        assert_eq!(options.timer_slack_ns, Some(1));
    }

    #[test]
    fn info_describes_a_realtime_media_clock() {
        let info = SoftwareClock::new(Rational::FPS_29_97).info();
        assert_eq!(info.id, ClockSourceId::SOFTWARE);
        assert_eq!(info.timescale, Timescale::Media);
        assert_eq!(info.pacing, Pacing::Realtime);
        assert_eq!(info.name, "software 30000/1001 fps");
    }

    #[test]
    fn first_tick_is_frame_zero_at_time_zero() -> Result<(), ClockError> {
        // A slow rate, so a stalled test thread still wakes within frame 0.
        let mut clock = SoftwareClock::new(Rational::fps(10));
        clock.start()?;
        let TickWait::Tick(tick) = clock.wait_tick(Duration::from_secs(1))? else {
            panic!("expected the first tick to be due immediately");
        };
        assert_eq!(tick.frame_number, 0);
        assert_eq!(tick.timestamp, 0);
        Ok(())
    }

    #[test]
    fn restart_resets_frames_and_stats() -> Result<(), ClockError> {
        let mut clock = SoftwareClock::new(Rational::fps(10));
        clock.start()?;
        for _ in 0..2 {
            clock.wait_tick(Duration::from_secs(1))?;
        }
        assert_eq!(clock.stats().ticks, 2);
        clock.start()?;
        assert_eq!(clock.stats(), ClockStats::default());
        let first = clock.wait_tick(Duration::from_secs(1))?;
        assert!(matches!(first, TickWait::Tick(t) if t.frame_number == 0));
        Ok(())
    }
}
