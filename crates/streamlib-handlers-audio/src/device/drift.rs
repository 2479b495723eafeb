//! The sink's drift controller: a slow PI loop on the ring's fill level that steers the
//! asynchronous resampler by parts per million, so a pipeline clock and a device crystal that
//! disagree (by 100 ppm: 0.36 s an hour) neither under-run nor pile up latency.

/// Largest correction the controller asks for (±0.5 %, inside the resampler's ±1 %): crystals
/// are within ±100 ppm, a pipeline slaved to PTP or a file within less.
pub const MAX_DRIFT_CORRECTION: f64 = 0.005;
/// Proportional gain, per second: 10 ms too full asks for 500 ppm less output. With the
/// integral gain below the loop is critically damped with a time constant of 40 s: slow
/// enough that the pitch never moves audibly (500 ppm is under a cent) and that the saw tooth
/// of the level (a pipeline buffer at a time in, a device period at a time out, beating
/// slowly where the two are nearly the same size) averages out.
const KP: f64 = 0.05;
/// Integral gain, per second squared (`KP² / 4`: critical damping).
const KI: f64 = KP * KP / 4.0;
/// Time constant of the fill level's low-pass (the device drains in periods, so the level
/// seen between pushes is a saw tooth).
const SMOOTHING_S: f64 = 2.0;

/// The PI loop: fill level (seconds of audio queued) in, relative resampling ratio out.
#[derive(Debug, Clone)]
pub(crate) struct DriftController {
    target_s: f64,
    level_s: Option<f64>,
    integral: f64,
    ratio: f64,
}

impl DriftController {
    pub(crate) fn new(target_s: f64) -> Self {
        Self {
            target_s,
            level_s: None,
            integral: 0.0,
            ratio: 1.0,
        }
    }

    /// Starts over (after an under-run or a restart) from ratio `keep`, which holds the
    /// drift learned so far.
    pub(crate) fn reset(&mut self, keep: f64) {
        self.level_s = None;
        self.integral = (1.0 - keep) / KI;
        self.ratio = keep;
    }

    /// The last ratio asked for.
    pub(crate) fn ratio(&self) -> f64 {
        self.ratio
    }

    /// The smoothed fill level, seconds.
    pub(crate) fn level_s(&self) -> f64 {
        self.level_s.unwrap_or(0.0)
    }

    /// Takes a fill level `fill_s` seen `dt_s` of pipeline time after the last; returns the
    /// ratio to resample by (below 1 when the ring is too full).
    pub(crate) fn update(&mut self, fill_s: f64, dt_s: f64) -> f64 {
        if !(fill_s.is_finite() && dt_s.is_finite() && dt_s > 0.0) {
            return self.ratio;
        }
        let level = match self.level_s {
            None => fill_s,
            Some(level) => level + (fill_s - level) * (dt_s / (SMOOTHING_S + dt_s)),
        };
        self.level_s = Some(level);
        let error = level - self.target_s;
        // Anti wind-up: the integral alone never asks for more than the limit.
        let limit = MAX_DRIFT_CORRECTION / KI;
        self.integral = (self.integral + error * dt_s).clamp(-limit, limit);
        let correction = -(KP * error + KI * self.integral);
        self.ratio = 1.0 + correction.clamp(-MAX_DRIFT_CORRECTION, MAX_DRIFT_CORRECTION);
        self.ratio
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring filled `offset` faster than it drains, corrected by the controller, in steps
    /// of 10 ms.
    fn settle(offset: f64) -> (f64, f64) {
        let mut c = DriftController::new(0.05);
        let mut fill = 0.05;
        let mut worst: f64 = 0.0;
        for step in 0..60_000 {
            let ratio = c.update(fill, 0.01);
            fill += 0.01 * ((1.0 + offset) * ratio - 1.0);
            if step > 40_000 {
                worst = worst.max((fill - 0.05).abs());
            }
        }
        (c.ratio(), worst)
    }

    #[test]
    fn ratio_converges_on_the_offset_and_the_level_on_the_target() {
        for offset in [500e-6, -500e-6, 0.0, 0.003] {
            let (ratio, worst) = settle(offset);
            let want = 1.0 / (1.0 + offset);
            assert!(
                (ratio - want).abs() < 2e-6,
                "{offset}: ratio {ratio}, want {want}"
            );
            assert!(worst < 1e-3, "{offset}: level off by {worst} s");
        }
    }
}
