//! The Gaussian kernel: normalised `f64` weights, and the fixed-point form the passes use.

use crate::VideoError;

/// Largest supported radius (129 taps). Larger blurs are better served by downscaling first.
pub const MAX_RADIUS: u32 = 64;

// The GPU kernel's tiles are sized for the same widest kernel.
#[cfg(feature = "gpu")]
const _: () = assert!(MAX_RADIUS == streamlib_gpu::MAX_BLUR_RADIUS);

/// A normalised, symmetric 1-D Gaussian kernel of `2 * radius + 1` taps.
///
/// The weights are `exp(-k² / 2σ²)` for `k` in `-radius..=radius`, divided by their sum. Both
/// passes of [`blur_frame`](super::blur_frame) apply them in 16-bit fixed point (Q17 weights,
/// a Q7 intermediate, rounding errors centred), so results stay within ±1 of an exact `f64`
/// blur with these weights rounded once.
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianKernel {
    sigma: f32,
    radius: u32,
    weights: Vec<f64>,
    fixed: FixedWeights,
}

impl GaussianKernel {
    /// A kernel of standard deviation `sigma` (pixels). `radius` defaults to `ceil(3σ)`, as
    /// OpenCV's `GaussianBlur(img, (0, 0), σ)` derives it (σ = 2 gives radius 6, 13 taps).
    ///
    /// Fails with [`VideoError::InvalidSigma`] unless `sigma` is finite and above zero, and
    /// with [`VideoError::InvalidRadius`] if the radius (given or derived) is 0 or above
    /// [`MAX_RADIUS`].
    pub fn new(sigma: f32, radius: Option<u32>) -> Result<Self, VideoError> {
        if !sigma.is_finite() || sigma <= 0.0 {
            return Err(VideoError::InvalidSigma { sigma });
        }
        let sigma64 = f64::from(sigma);
        // `as` saturates; any sigma that large is rejected below anyway.
        let radius = radius.unwrap_or((3.0 * sigma64).ceil() as u32);
        if radius == 0 || radius > MAX_RADIUS {
            return Err(VideoError::InvalidRadius {
                radius,
                max: MAX_RADIUS,
            });
        }
        let r = radius as i64;
        let mut weights: Vec<f64> = (-r..=r)
            .map(|k| (-((k * k) as f64) / (2.0 * sigma64 * sigma64)).exp())
            .collect();
        let sum: f64 = weights.iter().sum();
        weights.iter_mut().for_each(|w| *w /= sum);
        let fixed = FixedWeights::new(&weights);
        Ok(Self {
            sigma,
            radius,
            weights,
            fixed,
        })
    }

    /// Standard deviation, in pixels.
    pub fn sigma(&self) -> f32 {
        self.sigma
    }

    /// Taps on each side of the centre.
    pub fn radius(&self) -> u32 {
        self.radius
    }

    /// The `2 * radius + 1` normalised weights (they sum to 1), from `-radius` to `+radius`.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    pub(crate) fn fixed(&self) -> &FixedWeights {
        &self.fixed
    }

    /// The fixed-point weights both CPU passes use, as `streamlib-gpu`'s blur kernel takes
    /// them: the GPU kernel derives nothing, so its result is the CPU result bit for bit.
    #[cfg(feature = "gpu")]
    pub fn gpu_weights(&self) -> streamlib_gpu::BlurWeights {
        streamlib_gpu::BlurWeights {
            weights: self.fixed.weights.clone(),
            vertical_bias: self.fixed.vertical_bias,
            horizontal_bias: self.fixed.horizontal_bias,
        }
    }
}

/// The kernel in the fixed point both passes use, all in `u16` lanes (`pmulhuw`:
/// `mulhi(a, b) = (a * b) >> 16`).
///
/// Both passes sum, for `k` in `0..=radius`, `mulhi(pair_k, weights[k])`, where `pair_k` adds
/// the two taps at distance `k` (for `k = 0`, the centre twice):
/// - The vertical pass reads bytes and writes Q7 (`value * 128`, at most 32 640):
///   `pair_k = (u + d) << 6`.
/// - The horizontal pass reads that Q7 row, so `pair_k = l + r` still fits `u16`, and
///   accumulates Q8, rounded to bytes at the end.
/// - `weights[0]` is the centre weight in Q16 (the pair counts it twice); the others are Q17,
///   which fits `u16` because a side weight is at most 1/3.
/// - `mulhi` truncates (half a unit per term on average), so each pass starts from a bias of
///   `(radius + 1) / 2` units, centring the error: at most ±(radius + 1)/256 of a level in the
///   vertical pass and ±(radius + 1)/512 in the horizontal one, plus the weight rounding
///   (±2⁻¹⁸ per side weight, under ±0.13 level per pass at radius 64). Both passes together
///   stay below one level from the exact value (±0.64 at radius 64, ±0.06 at σ = 2), hence
///   within ±1 of an `f64` blur rounded once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FixedWeights {
    /// Weight of the pair at distance `k`: Q16 for `k = 0` (capped at 65 535 for vanishing
    /// sigmas), Q17 for the others.
    pub(crate) weights: Vec<u16>,
    /// The vertical pass's starting value, Q7.
    pub(crate) vertical_bias: u16,
    /// The horizontal pass's starting value, Q8, including the 128 that rounds to nearest.
    pub(crate) horizontal_bias: u16,
}

impl FixedWeights {
    fn new(weights: &[f64]) -> Self {
        let radius = weights.len() / 2;
        // Float-to-int casts saturate, which caps a centre weight near 1.
        let fixed = weights[radius..]
            .iter()
            .enumerate()
            .map(|(k, w)| {
                let scale = if k == 0 { 65_536.0 } else { 131_072.0 };
                (w * scale).round() as u16
            })
            .collect();
        // Half a unit lost per term (radius + 1 of them) on average.
        let terms = radius + 1;
        let half_the_terms = (terms / 2) as u16;
        Self {
            weights: fixed,
            vertical_bias: half_the_terms,
            horizontal_bias: half_the_terms + 128,
        }
    }

    /// Taps on each side of the centre.
    pub(crate) fn radius(&self) -> usize {
        self.weights.len() - 1
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn sigma_two_has_thirteen_taps() {
        let k = GaussianKernel::new(2.0, None).unwrap();
        assert_eq!(k.radius(), 6);
        assert_eq!(k.weights().len(), 13);
        assert!((k.weights().iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(k.weights()[0], k.weights()[12]);
    }

    #[test]
    fn side_weights_fit_q17() {
        for sigma in [0.01_f32, 0.1, 0.3, 0.5, 1.0, 21.0] {
            let k = GaussianKernel::new(sigma, None).unwrap();
            let fixed = k.fixed();
            let max = k.weights()[k.radius() as usize + 1..]
                .iter()
                .fold(0.0_f64, |a, &b| a.max(b));
            assert!(max <= 1.0 / 3.0 + 1e-12, "sigma {sigma}: {max}");
            assert!(fixed.weights[1..].iter().all(|&q| q <= 43_691));
        }
    }
}
