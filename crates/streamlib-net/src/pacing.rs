//! ST 2110-21 pacing: when each packet of a frame leaves.

use std::time::{Duration, Instant};

/// How a sender spreads a frame's packets over the frame period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pacing {
    /// ST 2110-21 narrow (`TP=2110TPN`): packets evenly spaced over the active part of the
    /// frame period, one at a time.
    #[default]
    Narrow,
    /// ST 2110-21 wide (`TP=2110TPW`): bursts of up to [`Pacer::WIDE_BURST`] packets, the
    /// bursts evenly spaced over the active period.
    Wide,
    /// No pacing: the whole frame as fast as the socket takes it (not ST 2110-21 compliant;
    /// for loopback tests and benchmarks). Advertised as `2110TPW`.
    Burst,
}

impl Pacing {
    /// The SDP `TP=` value.
    pub fn sdp_name(self) -> &'static str {
        match self {
            Pacing::Narrow => "2110TPN",
            Pacing::Wide | Pacing::Burst => "2110TPW",
        }
    }
}

/// The send schedule of one frame: packet `i` leaves `offset(i)` after the frame starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacer {
    mode: Pacing,
    /// ns between consecutive packets in narrow mode.
    gap_ns: f64,
}

impl Pacer {
    /// Packets per burst in wide mode.
    pub const WIDE_BURST: usize = 16;

    /// ST 2110-21's active ratio for 1080-line video (1080 of 1125 lines): `TRS = TFRAME ×
    /// RACTIVE / NPACKETS`.
    pub const ACTIVE_1080: f64 = 1080.0 / 1125.0;

    /// A schedule spreading `packets` over `active_ratio` of a frame of `period_ns`.
    pub fn new(mode: Pacing, period_ns: f64, active_ratio: f64, packets: usize) -> Self {
        let active = period_ns * active_ratio.clamp(0.01, 1.0);
        Self {
            mode,
            gap_ns: active / packets.max(1) as f64,
        }
    }

    /// The pacing mode.
    pub fn mode(&self) -> Pacing {
        self.mode
    }

    /// Nominal ns between packets (narrow), or between bursts divided by the burst size.
    pub fn gap_ns(&self) -> f64 {
        self.gap_ns
    }

    /// When packet `i` is due, from the frame's start.
    pub fn offset(&self, i: usize) -> Duration {
        let slot = match self.mode {
            Pacing::Narrow => i,
            Pacing::Wide => i / Self::WIDE_BURST * Self::WIDE_BURST,
            Pacing::Burst => 0,
        };
        Duration::from_nanos((slot as f64 * self.gap_ns) as u64)
    }
}

/// Waits until `deadline`: sleeps while it is far, then spins for the last ~100 µs (thread
/// sleeps on Linux overshoot by 50–100 µs, more than a packet gap).
pub fn wait_until(deadline: Instant) {
    const SPIN: Duration = Duration::from_micros(100);
    loop {
        let now = Instant::now();
        let Some(left) = deadline.checked_duration_since(now) else {
            return;
        };
        if left > SPIN {
            std::thread::sleep(left - SPIN);
        } else if left > Duration::from_micros(20) {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrow_is_even_wide_bursts_burst_is_zero() {
        // 1080p 10-bit at 59.94: 4320 packets over 16.68 ms × 1080/1125.
        let period = 1e9 * 1001.0 / 60_000.0;
        let p = Pacer::new(Pacing::Narrow, period, Pacer::ACTIVE_1080, 4320);
        assert!((p.gap_ns() - 3707.0).abs() < 1.0, "{}", p.gap_ns());
        assert_eq!(p.offset(0), Duration::ZERO);
        assert!(p.offset(4319) < Duration::from_nanos((period * Pacer::ACTIVE_1080) as u64));
        let w = Pacer::new(Pacing::Wide, period, Pacer::ACTIVE_1080, 4320);
        assert_eq!(w.offset(15), Duration::ZERO);
        assert_eq!(w.offset(16), w.offset(31));
        assert!(w.offset(16) > Duration::ZERO);
        let b = Pacer::new(Pacing::Burst, period, 1.0, 4320);
        assert_eq!(b.offset(4000), Duration::ZERO);
    }
}
