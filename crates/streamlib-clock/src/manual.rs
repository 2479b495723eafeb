//! [`ManualClock`]: ticks pushed by hand through a [`ManualClockHandle`].

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::{
    Clock, ClockError, ClockInfo, ClockSourceId, ClockStats, Pacing, Rational, TickWait, TimedTick,
    Timescale,
};

/// Counters only, so a tick is an increment: no allocation, nothing to drop.
#[derive(Debug)]
struct ManualState {
    queued: u64,
    ended: bool,
    handles: usize,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<ManualState>,
    ticked: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, ManualState> {
        // The state is plain counters updated in single statements; a panic elsewhere while
        // the lock was held cannot have left them half-written.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A clock that ticks only when told to, for tests and step-by-step tools.
///
/// [`ManualClockHandle::tick`] queues one tick; `wait_tick` hands queued ticks out one at a time
/// with frame numbers 0, 1, 2, … and timestamps `fps.frame_time_ns(n)`. It returns
/// [`TickWait::Timeout`] when nothing is queued within the timeout, and [`TickWait::Ended`]
/// once the queue is empty and either [`ManualClockHandle::end`] was called or every handle
/// was dropped. Ticks queued before `end` are still delivered.
///
/// Ticks queued before [`start`](Clock::start) are kept; `start` resets frame numbers.
#[derive(Debug)]
pub struct ManualClock {
    fps: Rational,
    shared: Arc<Shared>,
    started: bool,
    next_frame: u64,
    stats: ClockStats,
}

/// Queues ticks for a [`ManualClock`]; cheap to clone and share between threads.
#[derive(Debug)]
pub struct ManualClockHandle {
    shared: Arc<Shared>,
}

impl ManualClock {
    /// A manual clock at nominal rate `fps` (checked by [`Clock::start`]) and its first handle.
    pub fn new(fps: Rational) -> (ManualClock, ManualClockHandle) {
        let shared = Arc::new(Shared {
            state: Mutex::new(ManualState {
                queued: 0,
                ended: false,
                handles: 1,
            }),
            ticked: Condvar::new(),
        });
        let clock = ManualClock {
            fps,
            shared: Arc::clone(&shared),
            started: false,
            next_frame: 0,
            stats: ClockStats::default(),
        };
        (clock, ManualClockHandle { shared })
    }

    fn name(&self) -> String {
        format!("manual {} fps", self.fps)
    }
}

impl Clock for ManualClock {
    fn info(&self) -> ClockInfo {
        ClockInfo {
            name: self.name(),
            id: ClockSourceId::MANUAL,
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

    fn wait_tick(&mut self, timeout: Duration) -> Result<TickWait, ClockError> {
        if !self.started {
            return Err(ClockError::NotStarted { clock: self.name() });
        }
        // `None` when the timeout is too large to represent: wait without a deadline.
        let deadline = Instant::now().checked_add(timeout);
        let mut state = self.shared.lock();
        loop {
            if state.queued > 0 {
                state.queued -= 1;
                break;
            }
            if state.ended || state.handles == 0 {
                return Ok(TickWait::Ended);
            }
            state = match deadline {
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Ok(TickWait::Timeout);
                    }
                    self.shared
                        .ticked
                        .wait_timeout(state, deadline - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => self
                    .shared
                    .ticked
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
            };
        }
        drop(state);

        let frame = self.next_frame;
        self.next_frame += 1;
        self.stats.record_tick(0);
        Ok(TickWait::Tick(TimedTick {
            timestamp: self.fps.frame_time_ns(frame),
            frame_number: frame,
            clock_source_id: ClockSourceId::MANUAL,
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

impl ManualClockHandle {
    /// Queues one tick.
    pub fn tick(&self) {
        self.tick_n(1);
    }

    /// Queues `n` ticks.
    pub fn tick_n(&self, n: u64) {
        if n == 0 {
            return;
        }
        let mut state = self.shared.lock();
        state.queued = state.queued.saturating_add(n);
        drop(state);
        self.shared.ticked.notify_one();
    }

    /// Ends the clock: once the queued ticks are delivered, `wait_tick` returns
    /// [`TickWait::Ended`]. Ticks queued afterwards are still delivered, then `Ended` again.
    pub fn end(&self) {
        self.shared.lock().ended = true;
        self.shared.ticked.notify_all();
    }

    /// Ticks queued and not yet delivered.
    pub fn pending(&self) -> u64 {
        self.shared.lock().queued
    }
}

impl Clone for ManualClockHandle {
    fn clone(&self) -> Self {
        self.shared.lock().handles += 1;
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for ManualClockHandle {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.handles -= 1;
        let last = state.handles == 0;
        drop(state);
        if last {
            self.shared.ticked.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn handle_is_send_and_sync() {
        assert_send_sync::<ManualClockHandle>();
    }

    #[test]
    fn pending_counts_queued_ticks() -> Result<(), ClockError> {
        let (mut clock, handle) = ManualClock::new(Rational::fps(25));
        handle.tick_n(3);
        handle.tick_n(0);
        assert_eq!(handle.pending(), 3);
        clock.start()?;
        clock.wait_tick(Duration::ZERO)?;
        assert_eq!(handle.pending(), 2);
        Ok(())
    }

    #[test]
    fn zero_timeout_with_nothing_queued_times_out() -> Result<(), ClockError> {
        let (mut clock, _handle) = ManualClock::new(Rational::fps(25));
        clock.start()?;
        assert_eq!(clock.wait_tick(Duration::ZERO)?, TickWait::Timeout);
        Ok(())
    }
}
