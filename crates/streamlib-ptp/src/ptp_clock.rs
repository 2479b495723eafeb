//! [`PtpClock`]: a streamlib [`Clock`] ticking on frame boundaries of PTP time (TAI).

use std::time::Duration;

use streamlib_clock::{
    Clock, ClockError, ClockInfo, ClockSourceId, ClockStats, LockState, Pacing, Rational, TickWait,
    TimedTick, Timescale,
};

use crate::time::{local_monotonic_ns, sleep_until_monotonic_ns, system_tai_ns};
use crate::{PtpConfig, PtpError, PtpSlave, PtpStatus};

const NS_PER_SEC: u128 = 1_000_000_000;
/// A jump of the timescale larger than this (a first lock, a new master, a step) re-aligns
/// the frame count instead of counting the frames in between as missed.
const REALIGN_NS: u64 = 1_000_000_000;

/// TAI time of frame `n` of `fps` counted from the PTP epoch: `ceil(n · den / num)` s in ns,
/// exact (u128), saturating at `u64::MAX`.
pub fn tai_frame_time_ns(fps: Rational, n: u64) -> u64 {
    if fps.num == 0 {
        return if n == 0 { 0 } else { u64::MAX };
    }
    let num = u128::from(fps.num);
    let t = (u128::from(n) * u128::from(fps.den) * NS_PER_SEC).div_ceil(num);
    u64::try_from(t).unwrap_or(u64::MAX)
}

/// The last frame whose [`tai_frame_time_ns`] is `<= t_ns`: `floor(t · num / (den · 1e9))`.
pub fn tai_frame_at(fps: Rational, t_ns: u64) -> u64 {
    let per = u128::from(fps.den) * NS_PER_SEC;
    if per == 0 {
        return u64::MAX;
    }
    u64::try_from(u128::from(t_ns) * u128::from(fps.num) / per).unwrap_or(u64::MAX)
}

/// A [`Clock`] driven by a PTP master.
///
/// Frame `n` is due at TAI time `ceil(n · den / num)` s since the PTP epoch
/// ([`tai_frame_time_ns`]), so every machine locked to one grandmaster produces the same
/// frame numbers and timestamps. `wait_tick` sleeps on the local monotonic clock until the
/// model of the master's time reaches the next boundary; a boundary that passed while the
/// caller was busy is skipped and counted in [`ClockStats::missed`].
///
/// Until a master has been measured the clock ticks on the system's TAI
/// ([`system_tai_ns`](crate::system_tai_ns)) and reports [`LockState::Unlocked`] or
/// [`LockState::Locking`]; ticks carry [`PtpClock::UNLOCKED_SOURCE_ID`] until the clock is
/// [`LockState::Locked`], then the grandmaster's identity. When the timescale jumps by more
/// than a second (first measurement, a new master) the frame count re-aligns to it instead
/// of counting the jump as missed frames; smaller backward corrections hold the next tick
/// until its boundary, so timestamps never go backwards.
///
/// The PTP protocol runs on the thread of the [`PtpSlave`] the clock owns, started by
/// [`new`](Self::new) and joined on drop.
#[derive(Debug)]
pub struct PtpClock {
    fps: Rational,
    slave: PtpSlave,
    status: PtpStatus,
    name: String,
    started: bool,
    next_frame: Option<u64>,
    stats: ClockStats,
}

impl PtpClock {
    /// The [`ClockSourceId`] of ticks issued before lock: the all-ones identity, which no
    /// PTP clock may have.
    pub const UNLOCKED_SOURCE_ID: ClockSourceId = ClockSourceId(u64::MAX);

    /// Starts a PTP slave with `config` and builds a clock at `fps` on it.
    ///
    /// # Errors
    /// [`PtpError::InvalidConfig`] for a zero rate, and everything [`PtpSlave::spawn`]
    /// returns (a port in use, a missing interface, …).
    pub fn new(fps: Rational, config: PtpConfig) -> Result<Self, PtpError> {
        Rational::new(fps.num, fps.den).map_err(|err| PtpError::InvalidConfig {
            what: err.to_string(),
        })?;
        let name = format!("ptp {fps} fps ({})", config.transport);
        let slave = PtpSlave::spawn(config)?;
        let status = slave.status();
        Ok(Self {
            fps,
            slave,
            status,
            name,
            started: false,
            next_frame: None,
            stats: ClockStats::default(),
        })
    }

    /// A handle on the PTP state (offset, master, counters), cloneable and usable from any
    /// thread.
    pub fn status(&self) -> PtpStatus {
        self.status.clone()
    }

    /// The slave behind the clock.
    pub fn slave(&self) -> &PtpSlave {
        &self.slave
    }

    /// TAI now at local monotonic time `local`: the master's model, else the system's TAI.
    fn time_at(&self, local: u64) -> u64 {
        self.status.master_time_at(local).unwrap_or_else(|| {
            system_tai_ns().saturating_sub(local_monotonic_ns().saturating_sub(local))
        })
    }

    /// The local monotonic time at which the current timescale reaches `tai`.
    fn local_deadline(&self, tai: u64, now_local: u64, now_tai: u64) -> u64 {
        self.status
            .local_time_at(tai)
            .unwrap_or_else(|| now_local.saturating_add(tai.saturating_sub(now_tai)))
    }

    fn source_id(&self) -> ClockSourceId {
        match (self.status.lock_state(), self.status.grandmaster()) {
            (LockState::Locked, Some(gm)) => ClockSourceId(gm.to_u64()),
            _ => Self::UNLOCKED_SOURCE_ID,
        }
    }
}

impl Clock for PtpClock {
    fn info(&self) -> ClockInfo {
        ClockInfo {
            name: self.name.clone(),
            id: self.source_id(),
            fps: self.fps,
            timescale: Timescale::Tai,
            pacing: Pacing::Realtime,
        }
    }

    fn start(&mut self) -> Result<(), ClockError> {
        Rational::new(self.fps.num, self.fps.den)?;
        self.started = true;
        self.next_frame = None;
        self.stats = ClockStats::default();
        Ok(())
    }

    fn wait_tick(&mut self, timeout: Duration) -> Result<TickWait, ClockError> {
        if !self.started {
            return Err(ClockError::NotStarted {
                clock: self.name.clone(),
            });
        }
        let timeout_ns = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        let limit = local_monotonic_ns().saturating_add(timeout_ns);
        loop {
            let now_local = local_monotonic_ns();
            let now = self.time_at(now_local);
            let next = match self.next_frame {
                Some(next) => next,
                None => {
                    // First tick after start: the next boundary from now.
                    let n = tai_frame_at(self.fps, now).saturating_add(1);
                    self.next_frame = Some(n);
                    n
                }
            };
            let due = tai_frame_time_ns(self.fps, next);
            if now >= due {
                let frame = tai_frame_at(self.fps, now).max(next);
                if now - due > REALIGN_NS {
                    tracing::info!(clock = %self.name, from = next, to = frame, "timescale jumped forward; re-aligning frames");
                } else {
                    self.stats.missed += frame - next;
                }
                let timestamp = tai_frame_time_ns(self.fps, frame);
                let lateness = now.saturating_sub(timestamp);
                self.stats.ticks += 1;
                self.stats.last_lateness_ns = lateness;
                self.stats.max_lateness_ns = self.stats.max_lateness_ns.max(lateness);
                self.next_frame = Some(frame.saturating_add(1));
                return Ok(TickWait::Tick(TimedTick {
                    timestamp,
                    frame_number: frame,
                    clock_source_id: self.source_id(),
                    fps: self.fps,
                }));
            }
            if due - now > REALIGN_NS.saturating_add(tai_frame_time_ns(self.fps, 1)) {
                tracing::info!(clock = %self.name, "timescale jumped backward; re-aligning frames");
                self.next_frame = Some(tai_frame_at(self.fps, now).saturating_add(1));
                continue;
            }
            if now_local >= limit {
                return Ok(TickWait::Timeout);
            }
            let deadline = self.local_deadline(due, now_local, now).min(limit);
            sleep_until_monotonic_ns(deadline.max(now_local.saturating_add(1))).map_err(
                |source| ClockError::Os {
                    clock: self.name.clone(),
                    operation: "clock_nanosleep",
                    source,
                },
            )?;
        }
    }

    /// TAI ns now: the master's time once measured, the system's TAI before.
    fn now_ns(&self) -> u64 {
        self.time_at(local_monotonic_ns())
    }

    fn stats(&self) -> ClockStats {
        self.stats
    }

    fn lock_state(&self) -> LockState {
        self.status.lock_state()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn boundaries_are_exact_from_the_epoch() {
        let ntsc = Rational::FPS_29_97;
        // 1001/30000 s = 33 366 666.67 ns: frame 1 is due at the first ns at or after it.
        assert_eq!(tai_frame_time_ns(ntsc, 1), 33_366_667);
        assert_eq!(tai_frame_time_ns(ntsc, 3), 100_100_000);
        assert_eq!(tai_frame_at(ntsc, 33_366_666), 0);
        assert_eq!(tai_frame_at(ntsc, 33_366_667), 1);
        // A present-day TAI time at 50 fps: the boundary is a multiple of 20 ms.
        let t = 1_780_000_037_123_456_789u64;
        let n = tai_frame_at(Rational::fps(50), t);
        assert_eq!(n, 89_000_001_856);
        assert_eq!(
            tai_frame_time_ns(Rational::fps(50), n),
            1_780_000_037_120_000_000
        );
    }

    proptest! {
        #[test]
        fn frame_at_inverts_frame_time(num in 1u32..240_000, den in 1u32..1_002, t in 0u64..(u64::MAX / 2)) {
            let fps = Rational { num, den };
            let n = tai_frame_at(fps, t);
            prop_assert!(tai_frame_time_ns(fps, n) <= t);
            prop_assert!(tai_frame_time_ns(fps, n + 1) > t);
            prop_assert_eq!(tai_frame_at(fps, tai_frame_time_ns(fps, n)), n);
        }
    }
}
