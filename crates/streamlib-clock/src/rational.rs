//! Exact frame rates and the frame ↔ time arithmetic every clock shares.

use std::fmt;

use crate::ClockError;

const NS_PER_SEC: u128 = 1_000_000_000;

/// A frame rate as an exact rational: `num` frames every `den` seconds (30000/1001 for 29.97).
///
/// Clocks compute every deadline from the frame index with integer arithmetic
/// ([`frame_time_ns`](Self::frame_time_ns)), so fractional rates never accumulate drift.
///
/// The fields are public for pattern matching and literals; a value with a zero field is
/// rejected by [`Rational::new`] and by every clock's `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rational {
    /// Frames per `den` seconds.
    pub num: u32,
    /// Seconds per `num` frames.
    pub den: u32,
}

impl Rational {
    /// NTSC 29.97 fps, exactly 30000/1001.
    pub const FPS_29_97: Rational = Rational {
        num: 30_000,
        den: 1_001,
    };
    /// NTSC 59.94 fps, exactly 60000/1001.
    pub const FPS_59_94: Rational = Rational {
        num: 60_000,
        den: 1_001,
    };
    /// Film pulled down to NTSC, 23.976 fps, exactly 24000/1001.
    pub const FPS_23_976: Rational = Rational {
        num: 24_000,
        den: 1_001,
    };

    /// `num` frames every `den` seconds; both must be greater than zero.
    ///
    /// # Errors
    /// [`ClockError::InvalidRate`] when either is zero.
    pub fn new(num: u32, den: u32) -> Result<Self, ClockError> {
        if num == 0 || den == 0 {
            return Err(ClockError::InvalidRate { num, den });
        }
        Ok(Self { num, den })
    }

    /// A whole rate, `n`/1.
    ///
    /// The caller guarantees `n > 0`. This stays a `const fn` that cannot fail, so `fps(0)`
    /// yields 0/1, which clocks reject with [`ClockError::InvalidRate`] at `start`.
    pub const fn fps(n: u32) -> Self {
        Self { num: n, den: 1 }
    }

    /// The rate in frames per second, for display and tolerances (never for deadlines).
    pub fn as_f64(self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }

    /// The nominal frame period in nanoseconds (fractional: 33 366 666.67 for 29.97 fps).
    pub fn period_ns(self) -> f64 {
        f64::from(self.den) * 1e9 / f64::from(self.num)
    }

    /// Exact time of frame `n` from the start, in ns: `n * den * 1e9 / num`, rounded down.
    ///
    /// Computed in `u128`, so it is exact for every `n` and never drifts; a result beyond
    /// `u64::MAX` (centuries) saturates. A zero-`num` rate never reaches frame 1: it
    /// returns `u64::MAX` for every `n > 0`.
    pub fn frame_time_ns(self, n: u64) -> u64 {
        if self.num == 0 {
            return if n == 0 { 0 } else { u64::MAX };
        }
        let t = u128::from(n) * u128::from(self.den) * NS_PER_SEC / u128::from(self.num);
        u64::try_from(t).unwrap_or(u64::MAX)
    }

    /// Index of the last frame whose time is `<= t_ns`, the inverse of
    /// [`frame_time_ns`](Self::frame_time_ns): `frame_at_ns(frame_time_ns(n)) == n` whenever
    /// the period is at least 1 ns (rates up to 1 GHz).
    pub fn frame_at_ns(self, t_ns: u64) -> u64 {
        if self.num == 0 {
            return 0;
        }
        let ns_per_num_frames = u128::from(self.den) * NS_PER_SEC;
        if ns_per_num_frames == 0 {
            return u64::MAX;
        }
        // Frame n is due at floor(n·D/num) ≤ t  ⇔  n·D < (t+1)·num  ⇔  n ≤ ((t+1)·num − 1) / D.
        let n = ((u128::from(t_ns) + 1) * u128::from(self.num) - 1) / ns_per_num_frames;
        u64::try_from(n).unwrap_or(u64::MAX)
    }
}

impl fmt::Display for Rational {
    /// `30` for whole rates, `30000/1001` otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_rates_have_whole_periods() {
        let r = Rational::fps(100);
        assert_eq!(r.frame_time_ns(0), 0);
        assert_eq!(r.frame_time_ns(1), 10_000_000);
        assert_eq!(r.frame_time_ns(250), 2_500_000_000);
        assert_eq!(r.frame_at_ns(9_999_999), 0);
        assert_eq!(r.frame_at_ns(10_000_000), 1);
    }

    #[test]
    fn ntsc_rounds_down() {
        // 1001/30000 s = 33 366 666.66… ns.
        assert_eq!(Rational::FPS_29_97.frame_time_ns(1), 33_366_666);
        assert_eq!(Rational::FPS_29_97.frame_time_ns(3), 100_100_000);
        assert_eq!(Rational::FPS_29_97.frame_at_ns(33_366_665), 0);
        assert_eq!(Rational::FPS_29_97.frame_at_ns(33_366_666), 1);
    }

    #[test]
    fn display() {
        assert_eq!(Rational::fps(30).to_string(), "30");
        assert_eq!(Rational::FPS_29_97.to_string(), "30000/1001");
    }

    #[test]
    fn zero_fields_are_rejected() {
        assert!(matches!(
            Rational::new(0, 1),
            Err(ClockError::InvalidRate { num: 0, den: 1 })
        ));
        assert!(matches!(
            Rational::new(30, 0),
            Err(ClockError::InvalidRate { num: 30, den: 0 })
        ));
        let message = Rational::new(0, 1001).err().map(|e| e.to_string());
        assert!(message.is_some_and(|m| m.contains("0/1001")));
    }

    #[test]
    fn degenerate_rates_saturate_instead_of_panicking() {
        let zero_num = Rational { num: 0, den: 1 };
        assert_eq!(zero_num.frame_time_ns(0), 0);
        assert_eq!(zero_num.frame_time_ns(5), u64::MAX);
        assert_eq!(zero_num.frame_at_ns(1_000), 0);
        let zero_den = Rational { num: 30, den: 0 };
        assert_eq!(zero_den.frame_at_ns(1_000), u64::MAX);
        assert_eq!(Rational::fps(1).frame_time_ns(u64::MAX), u64::MAX);
        assert_eq!(Rational::fps(u32::MAX).frame_at_ns(u64::MAX), u64::MAX);
    }

    #[test]
    fn floating_views() {
        assert!((Rational::FPS_59_94.as_f64() - 59.94).abs() < 0.001);
        assert!((Rational::fps(50).period_ns() - 20_000_000.0).abs() < 1e-6);
    }
}
