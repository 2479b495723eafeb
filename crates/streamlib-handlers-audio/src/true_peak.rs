//! True peak (ITU-R BS.1770-4 Annex 2): the highest absolute value of the signal oversampled
//! 4× below 96 kHz, 2× below 192 kHz and not at all above, never below the sample peak.
//!
//! The interpolator is a polyphase FIR made once at construction: a sinc cut off at the input's
//! Nyquist frequency under a Kaiser window (β = 9) spanning 32 input samples per phase, each
//! phase scaled to unity gain at DC. That is the filter FFmpeg's `ebur128=peak=true` gets from
//! swresample's defaults when it upsamples 48 kHz to 192 kHz (4 phases) or 96 kHz (2), so the
//! two read the same true peak even on noise full to 24 kHz, where a shorter filter with an
//! earlier cut-off (libebur128's 49 taps over 4 phases) reads about 1 dB lower.
//!
//! Phase 0 of such a filter is the input sample itself, so only the other phases are computed
//! and the sample peak stands for phase 0. Each channel keeps the last 31 samples as history in
//! a line of fixed length; nothing is allocated after construction. On x86-64 with AVX2 and FMA
//! (detected at run time) the dot products run eight outputs at a time in 256-bit registers;
//! elsewhere a portable loop of the same shape, which the compiler vectorizes as it can.

/// Input samples each phase of the interpolator spans.
pub(crate) const TAPS: usize = 32;
/// Samples of history a channel keeps between calls.
const HISTORY: usize = TAPS - 1;
/// Where the interpolated interval starts within a phase's taps: phase `p` of the taps from
/// `n` gives the signal at `n + CENTER + p / factor`.
const CENTER: usize = (TAPS - 1) / 2;
/// New frames a channel line takes per pass.
const BLOCK: usize = 512;
/// Length of one channel's line: history, then up to a block of new samples.
const LINE: usize = HISTORY + BLOCK;
/// Kaiser window β (swresample's default).
const KAISER_BETA: f64 = 9.0;

/// Oversampling factor for a sample rate, as BS.1770-4 Annex 2 recommends: 4× for 44.1 and
/// 48 kHz (and lower rates), 2× for 88.2 and 96 kHz, none from 176.4 kHz up.
pub(crate) fn oversampling(rate: u32) -> usize {
    if rate < 88_200 {
        4
    } else if rate < 176_400 {
        2
    } else {
        1
    }
}

/// Modified Bessel function of the first kind, order 0, by its power series (for the Kaiser
/// window; with x ≤ 9 the terms fall below 1e-17 of the sum well within 60 of them).
fn bessel_i0(x: f64) -> f64 {
    let quarter_x2 = x * x / 4.0;
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 1..60 {
        term *= quarter_x2 / (f64::from(k) * f64::from(k));
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

/// Taps of phase `phase` of `factor` (0 < phase < factor): the windowed sinc at offsets
/// `i - CENTER - phase / factor`, normalized to sum 1.
fn phase_taps(phase: usize, factor: usize) -> [f32; TAPS] {
    let frac = phase as f64 / factor as f64;
    let mut taps = [0.0f64; TAPS];
    for (i, tap) in taps.iter_mut().enumerate() {
        let offset = i as f64 - CENTER as f64 - frac;
        let x = std::f64::consts::PI * offset;
        let sinc = if x == 0.0 { 1.0 } else { x.sin() / x };
        let w = 2.0 * offset / TAPS as f64;
        *tap = sinc * bessel_i0(KAISER_BETA * (1.0 - w * w).max(0.0).sqrt());
    }
    let norm: f64 = taps.iter().sum();
    let mut out = [0.0f32; TAPS];
    for (o, t) in out.iter_mut().zip(taps) {
        *o = (t / norm) as f32;
    }
    out
}

/// The dot-product kernel: the highest `|y|` over `outputs` outputs of every phase in
/// `phases`, output `n` being `Σ taps[k] · line[n + k]`. `line` holds at least
/// `outputs + TAPS - 1` samples.
type Kernel = fn(&[f32], usize, &[[f32; TAPS]]) -> f32;

/// The largest magnitude among `peak` and the outputs `starts` of one phase, each computed
/// one at a time: the tail both kernels leave after their vector passes.
fn tail_peak(line: &[f32], taps: &[f32; TAPS], starts: std::ops::Range<usize>, peak: f32) -> f32 {
    starts.fold(peak, |peak, start| {
        let y: f32 = taps
            .iter()
            .zip(&line[start..start + TAPS])
            .map(|(c, s)| c * s)
            .sum();
        peak.max(y.abs())
    })
}

/// Portable kernel: eight outputs at a time in plain arrays, then the rest one by one.
fn kernel_portable(line: &[f32], outputs: usize, phases: &[[f32; TAPS]]) -> f32 {
    let outputs = outputs.min(line.len().saturating_sub(TAPS - 1));
    let mut peak = 0.0f32;
    for taps in phases {
        let mut n = 0;
        // 32 outputs per pass: each tap is loaded once for four vector registers' worth.
        while n + 32 <= outputs {
            let mut acc = [0.0f32; 32];
            for (k, &c) in taps.iter().enumerate() {
                let Some(x) = line.get(n + k..n + k + 32) else {
                    break;
                };
                for (a, &s) in acc.iter_mut().zip(x) {
                    *a += c * s;
                }
            }
            peak = acc.iter().fold(peak, |m, a| m.max(a.abs()));
            n += 32;
        }
        while n + 8 <= outputs {
            let mut acc = [0.0f32; 8];
            for (k, &c) in taps.iter().enumerate() {
                let x = &line[n + k..n + k + 8];
                for (a, &s) in acc.iter_mut().zip(x) {
                    *a += c * s;
                }
            }
            peak = acc.iter().fold(peak, |m, a| m.max(a.abs()));
            n += 8;
        }
        peak = tail_peak(line, taps, n..outputs, peak);
    }
    peak
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! The kernel in AVX2 + FMA intrinsics, chosen only where the CPU has both.
    use std::arch::x86_64::{
        _mm256_andnot_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_max_ps, _mm256_set1_ps,
        _mm256_setzero_ps, _mm256_storeu_ps,
    };

    use super::{TAPS, kernel_portable};

    /// Whether this CPU runs [`kernel`].
    pub(super) fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }

    /// [`super::kernel_portable`]'s contract, 32 then 8 outputs at a time.
    pub(super) fn kernel(line: &[f32], outputs: usize, phases: &[[f32; TAPS]]) -> f32 {
        if !available() {
            return kernel_portable(line, outputs, phases);
        }
        let outputs = outputs.min(line.len().saturating_sub(TAPS - 1));
        // SAFETY: the CPU has AVX2 and FMA (checked just above; the check is a cached
        // load), and `outputs + TAPS - 1 <= line.len()` (clamped just above), which is all
        // `kernel_avx2` reads.
        unsafe { kernel_avx2(line, outputs, phases) }
    }

    /// # Safety
    /// The CPU must have AVX2 and FMA, and `outputs + TAPS - 1 <= line.len()`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn kernel_avx2(line: &[f32], outputs: usize, phases: &[[f32; TAPS]]) -> f32 {
        let base = line.as_ptr();
        let sign = _mm256_set1_ps(-0.0);
        let mut peak8 = _mm256_setzero_ps();
        let mut tail_peak = 0.0f32;
        for taps in phases {
            let mut n = 0;
            while n + 32 <= outputs {
                let mut acc = [_mm256_setzero_ps(); 4];
                for (k, &c) in taps.iter().enumerate() {
                    let c = _mm256_set1_ps(c);
                    // SAFETY: the highest index read is n + 31 + k + 7 ≤ n + 31 + TAPS - 1 <
                    // outputs + TAPS - 1 ≤ line.len() (the caller's promise), and unaligned
                    // loads have no alignment requirement.
                    let x = unsafe {
                        let p = base.add(n + k);
                        [
                            _mm256_loadu_ps(p),
                            _mm256_loadu_ps(p.add(8)),
                            _mm256_loadu_ps(p.add(16)),
                            _mm256_loadu_ps(p.add(24)),
                        ]
                    };
                    for (a, x) in acc.iter_mut().zip(x) {
                        *a = _mm256_fmadd_ps(c, x, *a);
                    }
                }
                for a in acc {
                    peak8 = _mm256_max_ps(peak8, _mm256_andnot_ps(sign, a));
                }
                n += 32;
            }
            while n + 8 <= outputs {
                let mut acc = _mm256_setzero_ps();
                for (k, &c) in taps.iter().enumerate() {
                    // SAFETY: the highest index read is n + k + 7 < outputs + TAPS - 1 ≤
                    // line.len() (the caller's promise); the load is unaligned.
                    let x = unsafe { _mm256_loadu_ps(base.add(n + k)) };
                    acc = _mm256_fmadd_ps(_mm256_set1_ps(c), x, acc);
                }
                peak8 = _mm256_max_ps(peak8, _mm256_andnot_ps(sign, acc));
                n += 8;
            }
            tail_peak = super::tail_peak(line, taps, n..outputs, tail_peak);
        }
        let mut lanes = [0.0f32; 8];
        // SAFETY: `lanes` holds eight f32, what an unaligned 256-bit store writes.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), peak8) };
        lanes.iter().copied().fold(tail_peak, f32::max)
    }
}

/// A true-peak meter for interleaved f32 audio of a fixed channel count and rate.
pub(crate) struct TruePeak {
    channels: usize,
    /// Phases 1 .. factor of the interpolator (phase 0 is the sample itself).
    phases: Vec<[f32; TAPS]>,
    /// Per channel, `LINE` samples: `HISTORY` of history, then the block being measured.
    lines: Vec<f32>,
    /// Highest absolute value per channel so far, oversampled and sample peaks together.
    peaks: Vec<f32>,
    kernel: Kernel,
}

impl TruePeak {
    /// A meter for `channels` channels at `rate` Hz (both checked by the caller; a channel
    /// count of 0 measures nothing).
    pub(crate) fn new(channels: u16, rate: u32) -> Self {
        let channels = usize::from(channels);
        let factor = oversampling(rate);
        let phases = (1..factor).map(|p| phase_taps(p, factor)).collect();
        #[cfg(target_arch = "x86_64")]
        let kernel: Kernel = if avx2::available() {
            avx2::kernel
        } else {
            kernel_portable
        };
        #[cfg(not(target_arch = "x86_64"))]
        let kernel: Kernel = kernel_portable;
        Self {
            channels,
            phases,
            lines: vec![0.0; channels * LINE],
            peaks: vec![0.0; channels],
            kernel,
        }
    }

    /// Oversampling factor in use (1, 2 or 4).
    #[cfg(test)]
    pub(crate) fn factor(&self) -> usize {
        self.phases.len() + 1
    }

    /// Measures interleaved `samples` (finite; a trailing partial frame is ignored).
    pub(crate) fn add(&mut self, samples: &[f32]) {
        if self.channels == 0 {
            return;
        }
        for block in samples.chunks(BLOCK * self.channels) {
            let frames = block.len() / self.channels;
            if frames == 0 {
                break;
            }
            for (c, (line, peak)) in self
                .lines
                .chunks_exact_mut(LINE)
                .zip(&mut self.peaks)
                .enumerate()
            {
                let new = &mut line[HISTORY..HISTORY + frames];
                let mut sample_peak = *peak;
                for (dst, &s) in new.iter_mut().zip(block[c..].iter().step_by(self.channels)) {
                    *dst = s;
                    sample_peak = sample_peak.max(s.abs());
                }
                let filled = &line[..HISTORY + frames];
                *peak = sample_peak.max((self.kernel)(filled, frames, &self.phases));
                line.copy_within(frames..frames + HISTORY, 0);
            }
        }
    }

    /// Highest absolute value over all channels so far (linear; 0 before any signal).
    pub(crate) fn peak(&self) -> f32 {
        self.peaks.iter().copied().fold(0.0, f32::max)
    }

    /// [`TruePeak::peak`] in dBTP (`-inf` before any signal).
    pub(crate) fn dbtp(&self) -> f64 {
        20.0 * f64::from(self.peak()).log10()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    /// Interleaved stereo: a sine of `amplitude` at `freq` Hz, starting at `phase` radians,
    /// the same in both channels, faded in over its first 10 ms (an abrupt start rings in
    /// any band-limited interpolator and reads a little over the steady crest).
    fn sine(rate: u32, freq: f64, amplitude: f64, phase: f64, frames: usize) -> Vec<f32> {
        let fade = f64::from(rate) / 100.0;
        (0..frames)
            .flat_map(|n| {
                let t = n as f64 / f64::from(rate);
                let ramp = (n as f64 / fade).min(1.0);
                let gain = 0.5 - 0.5 * (std::f64::consts::PI * ramp).cos();
                let s = (gain * amplitude * (2.0 * std::f64::consts::PI * freq * t + phase).sin())
                    as f32;
                [s, s]
            })
            .collect()
    }

    fn db(x: f32) -> f64 {
        20.0 * f64::from(x).log10()
    }

    #[test]
    fn factor_follows_the_rate() {
        for (rate, factor) in [
            (44_100, 4),
            (48_000, 4),
            (88_200, 2),
            (96_000, 2),
            (176_400, 1),
            (192_000, 1),
            (384_000, 1),
        ] {
            assert_eq!(TruePeak::new(2, rate).factor(), factor, "{rate} Hz");
        }
    }

    #[test]
    fn each_phase_has_unity_dc_gain() {
        for factor in [2, 4] {
            for p in 1..factor {
                let sum: f32 = phase_taps(p, factor).iter().sum();
                assert!((sum - 1.0).abs() < 1e-6, "phase {p}/{factor}: {sum}");
            }
        }
    }

    #[test]
    fn quarter_rate_sine_between_samples_reads_its_true_peak() {
        // A full-scale sine at fs/4 sampled at 45°: every sample is ±0.7071 (-3.01 dBFS),
        // the crests fall half-way between samples, where the 4× interpolator has a phase.
        let samples = sine(48_000, 12_000.0, 1.0, std::f64::consts::FRAC_PI_4, 48_000);
        let sample_peak = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        assert!((db(sample_peak) + 3.01).abs() < 0.01, "{}", db(sample_peak));
        let mut meter = TruePeak::new(2, 48_000);
        // Odd buffer lengths, so blocks and SIMD tails both get exercised.
        for chunk in samples.chunks(2 * 1001) {
            meter.add(chunk);
        }
        let dbtp = meter.dbtp();
        assert!(dbtp.abs() < 0.1, "true peak {dbtp:.3} dBTP, expected 0");
    }

    #[test]
    fn inter_sample_peak_at_96_khz() {
        // fs/4 at 96 kHz sampled at 45°: the crests fall on the 2× interpolator's phase.
        let samples = sine(96_000, 24_000.0, 0.5, std::f64::consts::FRAC_PI_4, 96_000);
        let mut meter = TruePeak::new(2, 96_000);
        meter.add(&samples);
        let dbtp = meter.dbtp();
        assert!((dbtp - db(0.5)).abs() < 0.1, "{dbtp:.3} dBTP");
    }

    #[test]
    fn without_oversampling_the_sample_peak() {
        let samples = sine(192_000, 48_000.0, 1.0, std::f64::consts::FRAC_PI_4, 19_200);
        let mut meter = TruePeak::new(2, 192_000);
        meter.add(&samples);
        assert!((meter.dbtp() + 3.01).abs() < 0.01, "{}", meter.dbtp());
    }

    #[test]
    fn never_below_the_sample_peak_and_silence_is_minus_infinity() {
        let mut meter = TruePeak::new(1, 48_000);
        meter.add(&[]);
        assert_eq!(meter.dbtp(), f64::NEG_INFINITY);
        // A lone impulse: the interpolator's phases read less than the sample itself.
        meter.add(&[0.0, 0.0, 0.8, 0.0, 0.0]);
        assert!((meter.peak() - 0.8).abs() < 1e-6, "{}", meter.peak());
        // A partial frame and odd channel counts do not panic.
        let mut three = TruePeak::new(3, 44_100);
        three.add(&[0.1, 0.2, 0.3, 0.4]);
        assert!((three.peak() - 0.3).abs() < 1e-6);
        let mut none = TruePeak::new(0, 48_000);
        none.add(&[1.0]);
        assert_eq!(none.peak(), 0.0);
    }

    #[test]
    fn buffer_boundaries_do_not_change_the_result() {
        let mut state = 1u32;
        let noise: Vec<f32> = (0..2 * 10_000)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 8) as f32 / (1 << 24) as f32 - 0.5
            })
            .collect();
        let mut whole = TruePeak::new(2, 48_000);
        whole.add(&noise);
        let mut pieces = TruePeak::new(2, 48_000);
        for chunk in noise.chunks(2 * 37) {
            pieces.add(chunk);
        }
        assert!((whole.peak() - pieces.peak()).abs() < 1e-6);
        assert!(whole.peak() > 0.5, "white noise has inter-sample overs");
    }

    #[test]
    fn kernels_agree() {
        let mut state = 7u32;
        let line: Vec<f32> = (0..HISTORY + 300)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 8) as f32 / (1 << 24) as f32 - 0.5
            })
            .collect();
        let phases: Vec<_> = (1..4).map(|p| phase_taps(p, 4)).collect();
        for outputs in [0, 1, 7, 8, 9, 31, 32, 33, 299, 300, 400] {
            let portable = kernel_portable(&line, outputs, &phases);
            #[cfg(target_arch = "x86_64")]
            {
                let simd = avx2::kernel(&line, outputs, &phases);
                assert!(
                    (portable - simd).abs() < 1e-5,
                    "{outputs}: {portable} {simd}"
                );
            }
            // The reference: each output summed in f64.
            let n = outputs.min(300);
            let reference = phases
                .iter()
                .flat_map(|taps| {
                    (0..n).map(|s| {
                        taps.iter()
                            .zip(&line[s..s + TAPS])
                            .map(|(&c, &x)| f64::from(c) * f64::from(x))
                            .sum::<f64>()
                            .abs()
                    })
                })
                .fold(0.0f64, f64::max);
            assert!((f64::from(portable) - reference).abs() < 1e-5, "{outputs}");
        }
    }
}
