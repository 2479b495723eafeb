//! ST 2110-21 pacing: when each packet of a frame leaves.

use std::time::{Duration, Instant};

/// How a sender spreads a frame's packets over the frame period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PacketPacing {
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

impl PacketPacing {
    /// The SDP `TP=` value.
    pub fn sdp_name(self) -> &'static str {
        match self {
            PacketPacing::Narrow => "2110TPN",
            PacketPacing::Wide | PacketPacing::Burst => "2110TPW",
        }
    }
}

/// The send schedule of one frame: packet `i` leaves `offset(i)` after the frame starts, in
/// bursts of [`Pacer::burst`] packets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacer {
    mode: PacketPacing,
    /// ns between consecutive packets (the drain period TRS of ST 2110-21).
    gap_ns: f64,
    /// Packets sent together at each wake-up.
    burst: usize,
}

impl Pacer {
    /// Smallest burst of a wide sender (ST 2110-21 CMAX for `TP=2110TPW` is at least 16).
    pub const WIDE_BURST: usize = 16;

    /// Shortest interval between wake-ups a narrow sender aims for: waking a thread costs a
    /// few µs, so at high packet rates packets leave in small bursts (never above CMAX).
    pub const MIN_WAKE_NS: f64 = 20_000.0;

    /// ST 2110-21's active ratio for 1080-line video (1080 of 1125 lines): `TRS = TFRAME ×
    /// RACTIVE / NPACKETS`.
    pub const ACTIVE_1080: f64 = 1080.0 / 1125.0;

    /// A schedule spreading `packets` over `active_ratio` of a frame of `period_ns`.
    ///
    /// The burst size follows ST 2110-21's network compatibility model, whose bucket holds
    /// `CMAX` packets and drains one per `TRS`:
    /// - narrow: `CMAX = max(4, ⌊NPACKETS / (43200 × RACTIVE × TFRAME)⌋)`; packets leave one
    ///   at a time when the gap is at least [`Pacer::MIN_WAKE_NS`], otherwise in bursts of
    ///   `⌈MIN_WAKE / TRS⌉` capped at `CMAX` (6 for 1080p59.94 10-bit: one wake-up per
    ///   22 µs instead of per 3.7 µs);
    /// - wide: `CMAX = max(16, ⌊NPACKETS / (21600 × TFRAME)⌋)`, every burst that size;
    /// - burst: the whole frame at once.
    pub fn new(mode: PacketPacing, period_ns: f64, active_ratio: f64, packets: usize) -> Self {
        let ratio = active_ratio.clamp(0.01, 1.0);
        let active = period_ns * ratio;
        let packets_f = packets.max(1) as f64;
        let gap_ns = active / packets_f;
        let frame_s = period_ns / 1e9;
        let burst = match mode {
            PacketPacing::Narrow => {
                let cmax = ((packets_f / (43_200.0 * ratio * frame_s)) as usize).max(4);
                ((Self::MIN_WAKE_NS / gap_ns).ceil() as usize).clamp(1, cmax)
            }
            PacketPacing::Wide => {
                ((packets_f / (21_600.0 * frame_s)) as usize).max(Self::WIDE_BURST)
            }
            PacketPacing::Burst => packets.max(1),
        };
        Self {
            mode,
            gap_ns,
            burst,
        }
    }

    /// The pacing mode.
    pub fn mode(&self) -> PacketPacing {
        self.mode
    }

    /// Nominal ns between packets (`TRS`).
    pub fn gap_ns(&self) -> f64 {
        self.gap_ns
    }

    /// Packets that leave together at each wake-up.
    pub fn burst(&self) -> usize {
        self.burst
    }

    /// When packet `i` is due, from the frame's start: the start of its burst.
    pub fn offset(&self, i: usize) -> Duration {
        Duration::from_nanos(self.offset_ns(i))
    }

    /// [`Pacer::offset`] in ns.
    pub fn offset_ns(&self, i: usize) -> u64 {
        if self.mode == PacketPacing::Burst {
            return 0;
        }
        let slot = i / self.burst * self.burst;
        (slot as f64 * self.gap_ns) as u64
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
        let p = Pacer::new(PacketPacing::Narrow, period, Pacer::ACTIVE_1080, 4320);
        assert!((p.gap_ns() - 3707.0).abs() < 1.0, "{}", p.gap_ns());
        // CMAX = max(4, ⌊4320 / (43200 × 0.96 × 0.01668)⌋) = 6; 20 µs / 3.7 µs rounds up to 6.
        assert_eq!(p.burst(), 6);
        assert_eq!(p.offset(0), Duration::ZERO);
        assert_eq!(p.offset(5), Duration::ZERO);
        assert_eq!(p.offset_ns(6), (6.0 * p.gap_ns()) as u64);
        assert!(p.offset(4319) < Duration::from_nanos((period * Pacer::ACTIVE_1080) as u64));
        // 640×360 at 30 fps: 399 packets, 80 µs apart, one at a time.
        let slow = Pacer::new(PacketPacing::Narrow, 1e9 / 30.0, Pacer::ACTIVE_1080, 399);
        assert_eq!(slow.burst(), 1);
        assert!(slow.offset(1) > Duration::from_micros(79));
        let w = Pacer::new(PacketPacing::Wide, period, Pacer::ACTIVE_1080, 4320);
        assert_eq!(w.burst(), 16);
        assert_eq!(w.offset(15), Duration::ZERO);
        assert_eq!(w.offset(16), w.offset(31));
        assert!(w.offset(16) > Duration::ZERO);
        let b = Pacer::new(PacketPacing::Burst, period, 1.0, 4320);
        assert_eq!(b.offset(4000), Duration::ZERO);
    }
}
