//! [`FreeRunningClock`]: ticks as fast as the pipeline asks for them.

use std::time::Duration;

use crate::{
    Clock, ClockError, ClockInfo, ClockSourceId, ClockStats, Pacing, Rational, TickWait, TimedTick,
    Timescale,
};

/// A clock that returns the next tick at once, for offline rendering and benchmarks.
///
/// Frame numbers run 0, 1, 2, … and timestamps are the nominal media time
/// `fps.frame_time_ns(n)`, so output is identical to a realtime run that never dropped a frame.
/// With [`with_limit`](Self::with_limit) it returns [`TickWait::Ended`] after that many ticks.
#[derive(Debug)]
pub struct FreeRunningClock {
    fps: Rational,
    limit: Option<u64>,
    started: bool,
    next_frame: u64,
    stats: ClockStats,
}

impl FreeRunningClock {
    /// An unlimited free-running clock at nominal rate `fps` (checked by [`Clock::start`]).
    pub fn new(fps: Rational) -> Self {
        Self {
            fps,
            limit: None,
            started: false,
            next_frame: 0,
            stats: ClockStats::default(),
        }
    }

    /// Ends after `frames` ticks (per [`start`](Clock::start)).
    #[must_use]
    pub fn with_limit(mut self, frames: u64) -> Self {
        self.limit = Some(frames);
        self
    }

    fn name(&self) -> String {
        format!("free-running {} fps", self.fps)
    }
}

impl Clock for FreeRunningClock {
    fn info(&self) -> ClockInfo {
        ClockInfo {
            name: self.name(),
            id: ClockSourceId::FREE_RUNNING,
            fps: self.fps,
            timescale: Timescale::Media,
            pacing: Pacing::Pipeline,
        }
    }

    fn start(&mut self) -> Result<(), ClockError> {
        Rational::new(self.fps.num, self.fps.den)?;
        self.started = true;
        self.next_frame = 0;
        self.stats = ClockStats::default();
        Ok(())
    }

    /// Never blocks: the timeout is irrelevant.
    fn wait_tick(&mut self, _timeout: Duration) -> Result<TickWait, ClockError> {
        if !self.started {
            return Err(ClockError::NotStarted { clock: self.name() });
        }
        if self.limit.is_some_and(|limit| self.next_frame >= limit) {
            return Ok(TickWait::Ended);
        }
        let frame = self.next_frame;
        self.next_frame += 1;
        self.stats.record_tick(0);
        Ok(TickWait::Tick(TimedTick {
            timestamp: self.fps.frame_time_ns(frame),
            frame_number: frame,
            clock_source_id: ClockSourceId::FREE_RUNNING,
            fps: self.fps,
        }))
    }

    /// Nominal media time of the latest tick, ns (0 before the first).
    fn now_ns(&self) -> u64 {
        self.fps.frame_time_ns(self.next_frame.saturating_sub(1))
    }

    fn stats(&self) -> ClockStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_immediately_with_nominal_timestamps() -> Result<(), ClockError> {
        let mut clock = FreeRunningClock::new(Rational::FPS_29_97);
        clock.start()?;
        for n in 0..100 {
            let TickWait::Tick(tick) = clock.wait_tick(Duration::ZERO)? else {
                panic!("free-running clock must always tick");
            };
            assert_eq!(tick.frame_number, n);
            assert_eq!(tick.timestamp, Rational::FPS_29_97.frame_time_ns(n));
            assert_eq!(clock.now_ns(), tick.timestamp);
        }
        assert_eq!(clock.stats().ticks, 100);
        assert_eq!(clock.stats().missed, 0);
        Ok(())
    }

    #[test]
    fn limit_ends_and_restart_rearms() -> Result<(), ClockError> {
        let mut clock = FreeRunningClock::new(Rational::fps(30)).with_limit(2);
        clock.start()?;
        assert!(matches!(
            clock.wait_tick(Duration::ZERO)?,
            TickWait::Tick(_)
        ));
        assert!(matches!(
            clock.wait_tick(Duration::ZERO)?,
            TickWait::Tick(_)
        ));
        assert_eq!(clock.wait_tick(Duration::ZERO)?, TickWait::Ended);
        assert_eq!(clock.wait_tick(Duration::ZERO)?, TickWait::Ended);
        clock.start()?;
        assert!(
            matches!(clock.wait_tick(Duration::ZERO)?, TickWait::Tick(t) if t.frame_number == 0)
        );
        Ok(())
    }

    #[test]
    fn not_started_and_invalid_rate() {
        let mut clock = FreeRunningClock::new(Rational::fps(30));
        assert!(matches!(
            clock.wait_tick(Duration::ZERO),
            Err(ClockError::NotStarted { .. })
        ));
        let mut clock = FreeRunningClock::new(Rational::fps(0));
        assert!(matches!(
            clock.start(),
            Err(ClockError::InvalidRate { num: 0, den: 1 })
        ));
    }
}
