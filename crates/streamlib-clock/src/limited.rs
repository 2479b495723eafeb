//! `Limited`: any clock, ended after a number of ticks.

use std::time::Duration;

use crate::{Clock, ClockError, ClockInfo, ClockStats, LockState, TickWait};

/// A clock that ends after `frames` ticks: the frame limit of realtime clocks, which have
/// none of their own (`streamlib launch --frames N`). Ending the clock ends the sources, so a
/// pipeline drains and finishes by itself, files finalized.
#[derive(Debug)]
pub struct Limited<C> {
    inner: C,
    left: u64,
}

impl<C: Clock> Limited<C> {
    /// `clock`, ended after `frames` ticks.
    pub fn new(clock: C, frames: u64) -> Self {
        Self {
            inner: clock,
            left: frames,
        }
    }

    /// Ticks still to come.
    pub fn left(&self) -> u64 {
        self.left
    }
}

impl<C: Clock> Clock for Limited<C> {
    fn info(&self) -> ClockInfo {
        self.inner.info()
    }
    fn start(&mut self) -> Result<(), ClockError> {
        self.inner.start()
    }
    fn wait_tick(&mut self, timeout: Duration) -> Result<TickWait, ClockError> {
        if self.left == 0 {
            return Ok(TickWait::Ended);
        }
        let wait = self.inner.wait_tick(timeout)?;
        if matches!(wait, TickWait::Tick(_)) {
            self.left -= 1;
        }
        Ok(wait)
    }
    fn now_ns(&self) -> u64 {
        self.inner.now_ns()
    }
    fn stats(&self) -> ClockStats {
        self.inner.stats()
    }
    fn lock_state(&self) -> LockState {
        self.inner.lock_state()
    }
}
