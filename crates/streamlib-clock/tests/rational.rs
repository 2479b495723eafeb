//! Frame ↔ time arithmetic: exact, monotonic, invertible, drift-free.

use proptest::prelude::*;
use streamlib_clock::Rational;

const NS_PER_SEC: u64 = 1_000_000_000;

/// Any rate up to 1 MHz (so a period is at least 1 ns and frame times are distinct),
/// down to one frame per 100 000 s.
fn rate() -> impl Strategy<Value = Rational> {
    (1u32..=1_000_000, 1u32..=100_000).prop_map(|(num, den)| Rational { num, den })
}

/// A rate and a frame index within 10 hours of it.
fn rate_and_frame() -> impl Strategy<Value = (Rational, u64)> {
    (rate(), any::<u64>()).prop_map(|(rate, x)| {
        let frames_in_10h = 36_000 * u64::from(rate.num) / u64::from(rate.den);
        (rate, x % (frames_in_10h + 1))
    })
}

proptest! {
    #[test]
    fn frame_times_strictly_increase((rate, n) in rate_and_frame()) {
        prop_assert!(rate.frame_time_ns(n) < rate.frame_time_ns(n + 1));
    }

    #[test]
    fn frame_at_inverts_frame_time((rate, n) in rate_and_frame()) {
        let t = rate.frame_time_ns(n);
        prop_assert_eq!(rate.frame_at_ns(t), n);
        // Just before the next frame is due, it is still frame n.
        prop_assert_eq!(rate.frame_at_ns(rate.frame_time_ns(n + 1) - 1), n);
    }

    #[test]
    fn any_time_falls_in_its_frame(rate in rate(), t in 0u64..36_000 * NS_PER_SEC) {
        let n = rate.frame_at_ns(t);
        prop_assert!(rate.frame_time_ns(n) <= t);
        prop_assert!(t < rate.frame_time_ns(n + 1));
    }

    #[test]
    fn frame_time_matches_the_exact_rational((rate, n) in rate_and_frame()) {
        // floor(n·den·1e9 / num), recomputed independently in u128.
        let exact = u128::from(n) * u128::from(rate.den) * u128::from(NS_PER_SEC)
            / u128::from(rate.num);
        prop_assert_eq!(u128::from(rate.frame_time_ns(n)), exact);
    }
}

#[test]
fn one_hour_of_ntsc_is_exact() {
    // 107 892 frames at 30000/1001 fps are 107 892 × 1001 / 30000 s = 3599.9964 s exactly:
    // the frame count of one hour of drop-frame timecode, 3.6 ms short of a wall-clock hour.
    let r = Rational::FPS_29_97;
    assert_eq!(r.frame_time_ns(107_892), 3_599_996_400_000);
    assert_eq!(r.frame_at_ns(3_600 * NS_PER_SEC), 107_892);
    // Ten hours: still exact to the nanosecond, no accumulated rounding.
    assert_eq!(r.frame_time_ns(1_078_920), 35_999_964_000_000);
    assert_eq!(
        Rational::FPS_59_94.frame_time_ns(215_784),
        3_599_996_400_000
    );
}

#[test]
fn accumulated_float_periods_would_drift() {
    // Why deadlines are computed from the frame index: summing the f64 period frame by frame
    // lands away from the exact value, while frame_time_ns does not.
    let r = Rational::FPS_29_97;
    let mut t = 0.0f64;
    for _ in 0..107_892 {
        t += r.period_ns().floor();
    }
    assert_ne!(t as u64, r.frame_time_ns(107_892));
}
