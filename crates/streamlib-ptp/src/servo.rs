//! The model of the master's time and the PI servo that steers it.
//!
//! The system clock is never touched: the servo only adjusts
//! `master_time(local) = base + (local − local_base) × (1 + freq_ppb·1e-9)`, a function of
//! the local monotonic clock.

use std::collections::VecDeque;

use streamlib_clock::LockState;

use crate::ServoConfig;

/// The master's time as a function of the local monotonic clock.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Model {
    /// Master time at `local_base`, ns.
    pub(crate) base_ns: u64,
    /// Local monotonic ns where the model was last rebased.
    pub(crate) local_base_ns: u64,
    /// Master rate relative to the local clock, parts per billion.
    pub(crate) freq_ppb: f64,
}

impl Model {
    /// Master time at local monotonic time `local`, signed and unbounded.
    pub(crate) fn at_i128(&self, local: u64) -> i128 {
        let dl = i128::from(local) - i128::from(self.local_base_ns);
        // `dl` is seconds to hours in ns and `freq` at most 1e6 ppb: the product is exact
        // enough in f64 (an error below 1 ns per hour).
        let adjust = (dl as f64 * self.freq_ppb * 1e-9).round() as i128;
        i128::from(self.base_ns) + dl + adjust
    }

    /// Master time at local monotonic time `local`, ns, clamped to `u64`.
    pub(crate) fn at(&self, local: u64) -> u64 {
        u64::try_from(self.at_i128(local).max(0)).unwrap_or(u64::MAX)
    }

    /// The local monotonic time at which the model reaches master time `master`, rounded up.
    pub(crate) fn local_at(&self, master: u64) -> u64 {
        let dm = i128::from(master) - i128::from(self.base_ns);
        let dl = (dm as f64 / (1.0 + self.freq_ppb * 1e-9)).ceil() as i128;
        let local = i128::from(self.local_base_ns) + dl;
        u64::try_from(local.max(0)).unwrap_or(u64::MAX)
    }

    /// The same line with a new frequency from `local` on (continuous at `local`).
    fn rebased(&self, local: u64, freq_ppb: f64) -> Model {
        Model {
            base_ns: self.at(local),
            local_base_ns: local,
            freq_ppb,
        }
    }
}

/// What one sync sample did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Sample {
    /// Model minus master at the sample, ns (before the correction it triggered).
    pub(crate) offset_ns: i64,
    /// The model was stepped rather than slewed.
    pub(crate) stepped: bool,
    /// The sample was set aside as an outlier; the model did not change.
    pub(crate) outlier: bool,
}

/// The PI servo and the path delay filter.
#[derive(Debug)]
pub(crate) struct Servo {
    config: ServoConfig,
    model: Option<Model>,
    /// The sample the model was first stepped to, until a second gives the frequency.
    first: Option<(u64, i128)>,
    drift_ppb: f64,
    last_local: u64,
    in_threshold: u32,
    out_of_threshold: u32,
    state: LockState,
    delays: VecDeque<i64>,
    delay_ns: Option<i64>,
    /// Moving average of |offset| of accepted samples, ns.
    abs_offset_avg: f64,
    /// Consecutive samples set aside as outliers.
    outliers: u32,
    /// Locked at least once since the last step or reset: outlier rejection is active.
    settled: bool,
}

impl Servo {
    pub(crate) fn new(config: ServoConfig) -> Self {
        Self {
            config,
            model: None,
            first: None,
            drift_ppb: 0.0,
            last_local: 0,
            in_threshold: 0,
            out_of_threshold: 0,
            state: LockState::Locking,
            delays: VecDeque::with_capacity(config.delay_filter_len),
            delay_ns: None,
            abs_offset_avg: 0.0,
            outliers: 0,
            settled: false,
        }
    }

    /// Forgets the master (a new one was chosen); the next sample steps the model.
    pub(crate) fn reset(&mut self) {
        *self = Self::new(self.config);
    }

    pub(crate) fn model(&self) -> Option<Model> {
        self.model
    }

    pub(crate) fn state(&self) -> LockState {
        self.state
    }

    /// The long-term frequency estimate (the integral term), ppb: what the master's rate
    /// is believed to be, without the proportional correction of the moment.
    pub(crate) fn frequency_ppb(&self) -> f64 {
        self.drift_ppb
    }

    /// The filtered mean path delay, once one was measured.
    pub(crate) fn delay_ns(&self) -> Option<i64> {
        self.delay_ns
    }

    /// Adds a path delay measurement; the filter keeps the median of the latest ones, so a
    /// delayed packet (a busy host, a queue) does not pull the offset.
    pub(crate) fn add_delay(&mut self, delay_ns: i64) -> i64 {
        if self.delays.len() == self.config.delay_filter_len {
            self.delays.pop_front();
        }
        self.delays.push_back(delay_ns);
        let mut sorted: Vec<i64> = self.delays.iter().copied().collect();
        sorted.sort_unstable();
        let median = sorted[sorted.len() / 2];
        self.delay_ns = Some(median);
        median
    }

    /// One Sync: the master's time at local time `t2` was `master_at_t2` (origin + corrections
    /// + path delay). Steers the model and returns the offset it had.
    pub(crate) fn sample(&mut self, t2: u64, master_at_t2: i128, now: u64) -> Sample {
        let clamp = |ppb: f64| {
            ppb.clamp(
                -self.config.max_frequency_ppb,
                self.config.max_frequency_ppb,
            )
        };
        let master_u64 = u64::try_from(master_at_t2.max(0)).unwrap_or(u64::MAX);
        let step = |freq_ppb| Model {
            base_ns: master_u64,
            local_base_ns: t2,
            freq_ppb,
        };
        let Some(model) = self.model else {
            self.model = Some(step(self.drift_ppb));
            self.first = Some((t2, master_at_t2));
            self.last_local = t2;
            self.state = LockState::Locking;
            return Sample {
                offset_ns: 0,
                stepped: true,
                outlier: false,
            };
        };
        let offset = model.at_i128(t2) - master_at_t2;
        let offset_ns =
            i64::try_from(offset).unwrap_or(if offset < 0 { i64::MIN } else { i64::MAX });
        let dt_ns = t2.saturating_sub(self.last_local);
        self.last_local = t2;

        if let Some((l0, m0)) = self.first {
            if dt_ns < 10_000_000 {
                // Too close to estimate a rate; wait for a later sample.
                self.last_local = l0;
                return Sample {
                    offset_ns,
                    stepped: false,
                    outlier: false,
                };
            }
            // Second sample: the master's rate from two points, then step onto it.
            let dl = (i128::from(t2) - i128::from(l0)) as f64;
            let dm = (master_at_t2 - m0) as f64;
            self.drift_ppb = clamp((dm / dl - 1.0) * 1e9);
            self.model = Some(step(self.drift_ppb));
            self.first = None;
            return Sample {
                offset_ns,
                stepped: true,
                outlier: false,
            };
        }

        if offset_ns.unsigned_abs() > self.config.step_threshold_ns {
            self.model = Some(step(model.freq_ppb));
            self.state = LockState::Locking;
            self.in_threshold = 0;
            self.out_of_threshold = 0;
            self.settled = false;
            return Sample {
                offset_ns,
                stepped: true,
                outlier: false,
            };
        }

        // A sample far outside the recent spread is most likely a delayed packet (a busy host
        // stamping late): skip it, unless several in a row say the master really moved.
        let spread = self
            .abs_offset_avg
            .max(self.config.lock_threshold_ns as f64 / 4.0);
        if self.settled && (offset_ns.unsigned_abs() as f64) > 4.0 * spread && self.outliers < 3 {
            self.outliers += 1;
            self.last_local = t2 - dt_ns;
            return Sample {
                offset_ns,
                stepped: false,
                outlier: true,
            };
        }
        self.outliers = 0;
        self.abs_offset_avg += (offset_ns.unsigned_abs() as f64 - self.abs_offset_avg) / 8.0;

        // PI on the frequency: offset/dt is the rate error (ns per s = ppb) that produced it.
        let dt_s = (dt_ns as f64 * 1e-9).clamp(1e-3, 64.0);
        let rate_error = offset as f64 / dt_s;
        self.drift_ppb = clamp(self.drift_ppb - self.config.ki * rate_error);
        let freq = clamp(self.drift_ppb - self.config.kp * rate_error);
        self.model = Some(model.rebased(now.max(t2), freq));

        self.track_lock(offset_ns);
        Sample {
            offset_ns,
            stepped: false,
            outlier: false,
        }
    }

    fn track_lock(&mut self, offset_ns: i64) {
        let within =
            offset_ns.unsigned_abs() < self.config.lock_threshold_ns && self.delay_ns.is_some();
        if within {
            self.in_threshold = self.in_threshold.saturating_add(1);
            self.out_of_threshold = 0;
        } else {
            self.out_of_threshold = self.out_of_threshold.saturating_add(1);
            self.in_threshold = 0;
        }
        match self.state {
            LockState::Locked if self.out_of_threshold >= self.config.lock_after => {
                self.state = LockState::Locking;
            }
            LockState::Locking | LockState::Unlocked
                if self.in_threshold >= self.config.lock_after =>
            {
                self.state = LockState::Locked;
                self.settled = true;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::print_stderr, reason = "the simulation reports its figures")]
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn the_model_is_a_line_and_inverts() {
        let m = Model {
            base_ns: 1_000 * S,
            local_base_ns: 5 * S,
            freq_ppb: 100_000.0,
        };
        assert_eq!(m.at(5 * S), 1_000 * S);
        // One local second later the master advanced 1 s + 100 µs.
        assert_eq!(m.at(6 * S), 1_001 * S + 100_000);
        assert_eq!(m.local_at(1_001 * S + 100_000), 6 * S);
        assert_eq!(m.at(4 * S), 999 * S - 100_000);
        let r = m.rebased(6 * S, 0.0);
        assert_eq!(r.at(7 * S), 1_002 * S + 100_000);
    }

    #[test]
    fn the_delay_filter_is_a_median() {
        let mut servo = Servo::new(ServoConfig {
            delay_filter_len: 5,
            ..ServoConfig::default()
        });
        for d in [10, 12, 11, 5_000, 9] {
            servo.add_delay(d);
        }
        assert_eq!(servo.delay_ns(), Some(11));
        // The outlier leaves the window after five more.
        for d in [10, 10, 10, 10, 10] {
            servo.add_delay(d);
        }
        assert_eq!(servo.delay_ns(), Some(10));
    }

    /// A simulated master running 37 ppm fast and 1 s ahead, sampled every 125 ms with
    /// ±2 µs of measurement noise: the servo steps, learns the rate and locks.
    #[test]
    fn the_servo_follows_a_skewed_master_and_locks() {
        let mut servo = Servo::new(ServoConfig::default());
        servo.add_delay(0);
        let true_master = |local: u64| -> i128 {
            i128::from(S) + i128::from(local) + (local as f64 * 37e-6) as i128
        };
        let mut noise = 12345u64;
        let mut locked_at = None;
        let mut worst_after_lock = 0u64;
        for k in 1..200u64 {
            let t2 = 10 * S + k * S / 8;
            noise = noise
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let jitter = (noise >> 33) as i128 % 4_001 - 2_000;
            servo.sample(t2, true_master(t2) + jitter, t2 + 50_000);
            if servo.state() == LockState::Locked && locked_at.is_none() {
                locked_at = Some(k);
            }
            if let (Some(at), Some(model)) = (locked_at, servo.model())
                && k > at
            {
                let err = (model.at_i128(t2 + S / 16) - true_master(t2 + S / 16)).unsigned_abs();
                worst_after_lock = worst_after_lock.max(err as u64);
            }
        }
        let locked_at = locked_at.unwrap_or(u64::MAX);
        assert!(locked_at < 20, "locked after {locked_at} samples");
        assert!(
            worst_after_lock < 10_000,
            "model error after lock {worst_after_lock} ns"
        );
        assert!(
            (servo.frequency_ppb() - 37_000.0).abs() < 3_000.0,
            "{}",
            servo.frequency_ppb()
        );
        eprintln!(
            "simulated: locked after {locked_at} samples, worst model error {worst_after_lock} ns"
        );
    }

    #[test]
    fn a_large_offset_steps_and_unlocks() {
        let config = ServoConfig {
            lock_after: 1,
            ..ServoConfig::default()
        };
        let mut servo = Servo::new(config);
        servo.add_delay(0);
        for k in 0..10u64 {
            let t = S + k * S / 8;
            servo.sample(t, i128::from(t), t);
        }
        assert_eq!(servo.state(), LockState::Locked);
        let t = 3 * S;
        let sample = servo.sample(t, i128::from(t) + 5_000_000, t);
        assert!(sample.stepped);
        assert_eq!(sample.offset_ns, -5_000_000);
        assert_eq!(servo.state(), LockState::Locking);
        assert_eq!(servo.model().map(|m| m.at(t)), Some(t + 5_000_000));
    }
}
