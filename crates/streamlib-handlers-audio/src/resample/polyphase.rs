//! A polyphase FIR for rational ratios (44.1 ↔ 48 kHz: 160 or 147 phases): the windowed
//! sinc rubato designs (its cutoff for the length and window), one row of taps per phase,
//! each row stored once per channel interleaved so that one contiguous dot product over
//! the interleaved input serves every channel of a frame. Rubato's own loop reads and
//! writes each sample through a dynamic adapter; this one runs several times faster.

use rubato::{WindowFunction, calculate_cutoff};

/// Accumulator lanes: four 8-wide vectors in flight, enough to hide the adder's latency
/// (the channel count must divide 8).
const LANES: usize = 32;
/// Most table entries (phases × taps × channels) kept; beyond, rubato's interpolating
/// resampler is used.
pub(super) const MAX_TABLE: usize = 1 << 21;

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The window at `x` in `0 ..= 1`.
fn window(kind: WindowFunction, x: f64) -> f64 {
    use std::f64::consts::TAU;
    let c = |k: f64| (k * TAU * x).cos();
    let (w, squared) = match kind {
        WindowFunction::Blackman => (0.42 - 0.5 * c(1.0) + 0.08 * c(2.0), false),
        WindowFunction::Blackman2 => (0.42 - 0.5 * c(1.0) + 0.08 * c(2.0), true),
        WindowFunction::BlackmanHarris => (
            0.35875 - 0.48829 * c(1.0) + 0.14128 * c(2.0) - 0.01168 * c(3.0),
            false,
        ),
        WindowFunction::BlackmanHarris2 => (
            0.35875 - 0.48829 * c(1.0) + 0.14128 * c(2.0) - 0.01168 * c(3.0),
            true,
        ),
        WindowFunction::Hann => (0.5 - 0.5 * c(1.0), false),
        WindowFunction::Hann2 => (0.5 - 0.5 * c(1.0), true),
    };
    if squared { w * w } else { w }
}

/// The resampler for one `(channels, in, out)`: interleaved f32 in and out.
pub(super) struct Polyphase {
    channels: usize,
    taps: usize,
    /// Input frames per output frame, as `whole + frac/up`.
    up: usize,
    whole: usize,
    frac: usize,
    /// `up` rows of `taps × channels` coefficients.
    table: Vec<f32>,
    /// Input frames not yet used up, interleaved; starts with `taps/2 − 1` frames of
    /// silence so that output 0 is centred on input 0.
    history: Vec<f32>,
    /// The next output's centre: frame `at` of `history` plus `phase/up`.
    at: usize,
    phase: usize,
    fma: bool,
}

impl Polyphase {
    /// `None` where the table would be too large, or the channel count does not divide the
    /// lanes (then rubato's resampler serves).
    pub(super) fn new(
        channels: usize,
        in_rate: u32,
        out_rate: u32,
        taps: usize,
        kind: WindowFunction,
    ) -> Option<Self> {
        let g = gcd(in_rate, out_rate);
        let (up, down) = ((out_rate / g) as usize, (in_rate / g) as usize);
        if !8usize.is_multiple_of(channels) || up * taps * channels > MAX_TABLE {
            return None;
        }
        // Cutoff relative to the lower Nyquist, as rubato chooses it for this length.
        let cutoff = f64::from(calculate_cutoff::<f32>(taps, kind))
            * (f64::from(out_rate) / f64::from(in_rate)).min(1.0);
        let half = (taps / 2) as f64;
        let mut table = Vec::with_capacity(up * taps * channels);
        let mut row = vec![0f64; taps];
        for p in 0..up {
            let frac = p as f64 / up as f64;
            for (j, h) in row.iter_mut().enumerate() {
                // Tap j reads input frame (centre − taps/2 + 1 + j).
                let t = j as f64 - half + 1.0 - frac;
                let x = std::f64::consts::PI * cutoff * t;
                let sinc = if x.abs() < 1e-12 { 1.0 } else { x.sin() / x };
                *h = sinc * window(kind, (t + half) / (2.0 * half));
            }
            // Unity gain at DC for every phase.
            let sum: f64 = row.iter().sum();
            for h in &row {
                for _ in 0..channels {
                    table.push((h / sum) as f32);
                }
            }
        }
        let lead = taps / 2 - 1;
        let mut history = Vec::with_capacity((lead + 2 * taps) * channels);
        history.resize(lead * channels, 0.0);
        Some(Self {
            channels,
            taps,
            up,
            whole: down / up,
            frac: down % up,
            table,
            history,
            at: lead,
            phase: 0,
            fma: fma_available(),
        })
    }

    /// Most output samples `input_samples` more input can make.
    pub(super) fn max_output_len(&self, input_samples: usize) -> usize {
        let frames = input_samples / self.channels + self.taps;
        let step = self.whole as f64 + self.frac as f64 / self.up as f64;
        ((frames as f64 / step).ceil() as usize + 2) * self.channels
    }

    pub(super) fn reset(&mut self) {
        let lead = self.taps / 2 - 1;
        self.history.clear();
        self.history.resize(lead * self.channels, 0.0);
        self.at = lead;
        self.phase = 0;
    }

    /// Resamples `input` (whole frames) into `output` (at least
    /// [`max_output_len`](Self::max_output_len)); returns the samples written, or `None`
    /// when `output` is too short.
    pub(super) fn process(&mut self, input: &[f32], output: &mut [f32]) -> Option<usize> {
        let ch = self.channels;
        // Grows only while the largest buffer is first seen.
        self.history.extend_from_slice(input);
        let frames = self.history.len() / ch;
        let row = self.taps * ch;
        let mut written = 0;
        while self.at + self.taps / 2 < frames {
            let start = (self.at + 1 - self.taps / 2) * ch;
            let window = &self.history[start..start + row];
            let taps = &self.table[self.phase * row..(self.phase + 1) * row];
            let out = output.get_mut(written..written + ch)?;
            if self.fma {
                dot_fma(window, taps, out);
            } else {
                dot(window, taps, out);
            }
            written += ch;
            self.at += self.whole;
            self.phase += self.frac;
            if self.phase >= self.up {
                self.phase -= self.up;
                self.at += 1;
            }
        }
        // Keep what the next outputs still read.
        let keep_from = (self.at + 1).saturating_sub(self.taps / 2).min(frames);
        self.history.copy_within(keep_from * ch.., 0);
        self.history.truncate((frames - keep_from) * ch);
        self.at -= keep_from;
        Some(written)
    }
}

#[cfg(target_arch = "x86_64")]
fn fma_available() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

#[cfg(not(target_arch = "x86_64"))]
fn fma_available() -> bool {
    false
}

/// `out[c] = Σ window[k·C + c] · taps[k·C + c]`, C = `out.len()` dividing [`LANES`].
fn dot(window: &[f32], taps: &[f32], out: &mut [f32]) {
    let mut acc = [0f32; LANES];
    let mut w = window.chunks_exact(LANES);
    let mut t = taps.chunks_exact(LANES);
    for (w, t) in (&mut w).zip(&mut t) {
        for ((a, x), h) in acc.iter_mut().zip(w).zip(t) {
            *a += x * h;
        }
    }
    // The rest (fewer than LANES), lane positions kept so channels stay apart.
    for ((a, x), h) in acc.iter_mut().zip(w.remainder()).zip(t.remainder()) {
        *a += x * h;
    }
    // Fold the four vectors into one (lane i + 8k carries channel i mod C), then sum
    // that vector's lanes per channel.
    let mut folded = [0f32; 8];
    for (i, f) in folded.iter_mut().enumerate() {
        *f = (acc[i] + acc[i + 8]) + (acc[i + 16] + acc[i + 24]);
    }
    let ch = out.len();
    for (c, o) in out.iter_mut().enumerate() {
        *o = folded.iter().skip(c).step_by(ch).sum();
    }
}

#[cfg(target_arch = "x86_64")]
fn dot_fma(window: &[f32], taps: &[f32], out: &mut [f32]) {
    // SAFETY: `fma` is set only where the CPU reports AVX2 and FMA (`fma_available`).
    unsafe { dot_avx2(window, taps, out) }
}

/// [`dot`] with four AVX accumulators and FMA, written out: left to the compiler, the
/// accumulators went through the stack on every call.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dot_avx2(window: &[f32], taps: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::{
        _mm_add_ps, _mm_add_ss, _mm_cvtss_f32, _mm_movehl_ps, _mm_shuffle_ps, _mm_storeu_ps,
        _mm256_add_ps, _mm256_castps256_ps128, _mm256_extractf128_ps, _mm256_fmadd_ps,
        _mm256_loadu_ps, _mm256_setzero_ps, _mm256_storeu_ps,
    };
    let len = window.len().min(taps.len());
    let whole = len / LANES * LANES;
    let (w, t) = (window.as_ptr(), taps.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i < whole {
        for (k, a) in acc.iter_mut().enumerate() {
            // SAFETY: i + 8k + 8 <= whole <= len, within both slices.
            let (x, h) = unsafe {
                (
                    _mm256_loadu_ps(w.add(i + 8 * k)),
                    _mm256_loadu_ps(t.add(i + 8 * k)),
                )
            };
            *a = _mm256_fmadd_ps(x, h, *a);
        }
        i += LANES;
    }
    let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    // Reduce in registers (through memory, the narrower loads stalled on the wide store):
    // lane j carries channel j mod C.
    let quad = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps::<1>(sum));
    let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
    match out {
        [o] => *o = _mm_cvtss_f32(_mm_add_ss(pair, _mm_shuffle_ps::<0x55>(pair, pair))),
        [l, r] => {
            *l = _mm_cvtss_f32(pair);
            *r = _mm_cvtss_f32(_mm_shuffle_ps::<0x55>(pair, pair));
        }
        [_, _, _, _] => {
            // SAFETY: `out` holds the 4 floats stored.
            unsafe { _mm_storeu_ps(out.as_mut_ptr(), quad) }
        }
        _ => {
            let mut lanes = [0f32; 8];
            // SAFETY: `lanes` holds the 8 floats stored.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sum) };
            let ch = out.len();
            for (c, o) in out.iter_mut().enumerate() {
                *o = lanes.iter().skip(c).step_by(ch).sum();
            }
        }
    }
    // The rest: position j is channel j mod C (C divides 8, `whole` is a multiple of 32).
    let ch = out.len();
    for j in whole..len {
        out[j % ch] += window[j] * taps[j];
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn dot_fma(window: &[f32], taps: &[f32], out: &mut [f32]) {
    dot(window, taps, out);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn an_impulse_comes_out_centred_and_dc_passes_at_unity() {
        let mut p = Polyphase::new(2, 48_000, 48_000, 64, WindowFunction::BlackmanHarris2).unwrap();
        let mut input = vec![0f32; 2 * 200];
        input[2 * 50] = 1.0;
        input[2 * 50 + 1] = -1.0;
        let mut out = vec![0f32; p.max_output_len(input.len())];
        let n = p.process(&input, &mut out).unwrap();
        // Same rate: output k is centred on input k, once the lookahead is in.
        assert_eq!(n, 2 * (200 - 32));
        let left: Vec<f32> = out[..n].iter().step_by(2).copied().collect();
        let peak = (0..left.len())
            .max_by(|&a, &b| left[a].total_cmp(&left[b]))
            .unwrap();
        assert_eq!(peak, 50);
        assert!(
            (left[49] - left[51]).abs() < 1e-6,
            "symmetric about the centre"
        );
        assert!((out[101] + out[100]).abs() < 1e-6, "channels kept apart");
        let mut p =
            Polyphase::new(1, 44_100, 48_000, 128, WindowFunction::BlackmanHarris2).unwrap();
        let input = vec![0.5f32; 4410];
        let mut out = vec![0f32; p.max_output_len(input.len())];
        let n = p.process(&input, &mut out).unwrap();
        assert!(out[200..n].iter().all(|v| (v - 0.5).abs() < 1e-5));
    }

    #[test]
    fn the_avx_kernel_and_the_portable_one_agree() {
        for (ch, len) in [(1, 64), (2, 256), (4, 96), (8, 200), (2, 40)] {
            let w: Vec<f32> = (0..len)
                .map(|i| ((i * 7919) % 97) as f32 / 97.0 - 0.5)
                .collect();
            let t: Vec<f32> = (0..len)
                .map(|i| ((i * 104_729) % 89) as f32 / 89.0)
                .collect();
            let (mut a, mut b) = (vec![0f32; ch], vec![0f32; ch]);
            dot(&w, &t, &mut a);
            if fma_available() {
                dot_fma(&w, &t, &mut b);
            } else {
                b.copy_from_slice(&a);
            }
            for c in 0..ch {
                let exact: f32 = (c..len).step_by(ch).map(|j| w[j] * t[j]).sum();
                assert!((a[c] - exact).abs() < 1e-4, "{ch} ch, channel {c}");
                assert!((b[c] - exact).abs() < 1e-4, "{ch} ch, channel {c}");
            }
        }
    }
}
