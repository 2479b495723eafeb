//! A pre-planned radix-2 real FFT with a Hann window, for `spectrum`.
//!
//! An `n`-point real transform is one `n/2`-point complex transform of the even samples as
//! real parts and the odd samples as imaginary parts, untangled by one pass of twiddles.
//! Twiddles, the bit-reversal table, the window and the work buffer are made once, in
//! [`RealFft::new`]; [`RealFft::power`] allocates nothing.

use std::f64::consts::PI;

/// Smallest and largest transform sizes.
pub(crate) const MIN_FFT: usize = 16;
pub(crate) const MAX_FFT: usize = 1 << 16;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Complex {
    re: f32,
    im: f32,
}

impl Complex {
    fn mul(self, o: Self) -> Self {
        Self {
            re: self.re * o.re - self.im * o.im,
            im: self.re * o.im + self.im * o.re,
        }
    }
}

/// A real FFT of one size, planned.
pub(crate) struct RealFft {
    n: usize,
    /// `exp(-2πi j / (n/2))`, `j < n/4`: the complex transform's twiddles.
    twiddles: Vec<Complex>,
    /// `exp(-2πi k / n)`, `k <= n/2`: the untangling pass's.
    untangle: Vec<Complex>,
    /// Bit-reversed index of each of the `n/2` complex points.
    reversed: Vec<u32>,
    /// The Hann window, scaled so that a full-scale sine on a bin reads power 1.
    window: Vec<f32>,
    work: Vec<Complex>,
}

impl std::fmt::Debug for RealFft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealFft").field("n", &self.n).finish()
    }
}

impl RealFft {
    /// A plan for `n` points: a power of two in [`MIN_FFT`]`..=`[`MAX_FFT`] (the caller checks).
    pub(crate) fn new(n: usize) -> Self {
        let n = n.clamp(MIN_FFT, MAX_FFT).next_power_of_two();
        let m = n / 2;
        let twiddles = (0..m / 2)
            .map(|j| {
                let a = -2.0 * PI * j as f64 / m as f64;
                Complex {
                    re: a.cos() as f32,
                    im: a.sin() as f32,
                }
            })
            .collect();
        let untangle = (0..=m)
            .map(|k| {
                let a = -2.0 * PI * k as f64 / n as f64;
                Complex {
                    re: a.cos() as f32,
                    im: a.sin() as f32,
                }
            })
            .collect();
        let bits = m.trailing_zeros();
        let reversed = (0..m as u32)
            .map(|i| {
                if bits == 0 {
                    0
                } else {
                    i.reverse_bits() >> (32 - bits)
                }
            })
            .collect();
        // Hann: w = 0.5 - 0.5 cos(2πi/n), coherent gain 1/2. A sine of amplitude A on a bin
        // gives |X| = A n / 4; scaling samples by 2 / (n/2) makes that |X| = A.
        let scale = 4.0 / n as f64;
        let window = (0..n)
            .map(|i| ((0.5 - 0.5 * (2.0 * PI * i as f64 / n as f64).cos()) * scale) as f32)
            .collect();
        Self {
            n,
            twiddles,
            untangle,
            reversed,
            window,
            work: vec![Complex::default(); m],
        }
    }

    /// Points per transform.
    pub(crate) fn len(&self) -> usize {
        self.n
    }

    /// Windows `samples` (`n` of them, oldest first), transforms them and writes each bin's
    /// power `|X_k|²` (`k` in `0..=n/2`; a full-scale sine on a bin reads about 1) to `power`.
    pub(crate) fn power(&mut self, samples: &[f32], power: &mut [f32]) {
        let m = self.n / 2;
        if samples.len() < self.n || power.len() < m + 1 {
            return;
        }
        for ((&r, pair), w) in self
            .reversed
            .iter()
            .zip(samples.chunks_exact(2))
            .zip(self.window.chunks_exact(2))
        {
            self.work[r as usize] = Complex {
                re: pair[0] * w[0],
                im: pair[1] * w[1],
            };
        }
        self.butterflies();
        let z = &self.work;
        for (k, out) in power.iter_mut().enumerate().take(m + 1) {
            let a = z[k % m];
            let b = z[(m - k) % m];
            // E = (a + conj b) / 2, O = (a - conj b) / 2i, X = E + W^k O.
            let e = Complex {
                re: 0.5 * (a.re + b.re),
                im: 0.5 * (a.im - b.im),
            };
            let o = Complex {
                re: 0.5 * (a.im + b.im),
                im: -0.5 * (a.re - b.re),
            };
            let x = self.untangle[k].mul(o);
            let (re, im) = (e.re + x.re, e.im + x.im);
            *out = re * re + im * im;
        }
    }

    /// The in-place iterative radix-2 transform of `work` (already in bit-reversed order).
    fn butterflies(&mut self) {
        let m = self.work.len();
        let mut half = 1;
        while half < m {
            let stride = m / (2 * half);
            for start in (0..m).step_by(2 * half) {
                for j in 0..half {
                    let w = self.twiddles[j * stride];
                    let t = w.mul(self.work[start + j + half]);
                    let u = self.work[start + j];
                    self.work[start + j] = Complex {
                        re: u.re + t.re,
                        im: u.im + t.im,
                    };
                    self.work[start + j + half] = Complex {
                        re: u.re - t.re,
                        im: u.im - t.im,
                    };
                }
            }
            half *= 2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The windowed power by the definition of the DFT, in f64.
    fn naive(samples: &[f32], window: &[f32]) -> Vec<f64> {
        let n = samples.len();
        (0..=n / 2)
            .map(|k| {
                let (mut re, mut im) = (0.0f64, 0.0f64);
                for (i, (&s, &w)) in samples.iter().zip(window).enumerate() {
                    let a = -2.0 * PI * (k * i) as f64 / n as f64;
                    let v = f64::from(s) * f64::from(w);
                    re += v * a.cos();
                    im += v * a.sin();
                }
                re * re + im * im
            })
            .collect()
    }

    #[test]
    fn agrees_with_the_definition() {
        for n in [16, 64, 1024] {
            let mut fft = RealFft::new(n);
            // A deterministic pseudo-random signal.
            let mut state = 12345u32;
            let samples: Vec<f32> = (0..n)
                .map(|_| {
                    state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (state >> 8) as f32 / (1 << 24) as f32 - 0.5
                })
                .collect();
            let mut power = vec![0.0; n / 2 + 1];
            fft.power(&samples, &mut power);
            let expected = naive(&samples, &fft.window);
            let peak = expected.iter().copied().fold(0.0, f64::max);
            for (k, (&got, want)) in power.iter().zip(&expected).enumerate() {
                assert!(
                    (f64::from(got) - want).abs() < 1e-4 * peak,
                    "n={n} bin {k}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn a_full_scale_sine_on_a_bin_reads_one() {
        let n = 1024;
        let mut fft = RealFft::new(n);
        let bin = 37;
        let samples: Vec<f32> = (0..n)
            .map(|i| (2.0 * PI * (bin * i) as f64 / n as f64).sin() as f32)
            .collect();
        let mut power = vec![0.0; n / 2 + 1];
        fft.power(&samples, &mut power);
        assert!((power[bin] - 1.0).abs() < 1e-3, "{}", power[bin]);
        // Hann's main lobe: the neighbours read a quarter in amplitude, the rest nothing.
        assert!((power[bin + 1] - 0.25).abs() < 1e-3, "{}", power[bin + 1]);
        assert!(power[bin + 3] < 1e-8, "{}", power[bin + 3]);
    }
}
