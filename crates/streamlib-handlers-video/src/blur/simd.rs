//! The two passes in explicit x86-64 SIMD on `u16` lanes: SSE2 (always present on x86-64) or
//! AVX2 (picked at run time). Both compute exactly what `vertical_lane` and `horizontal_lane`
//! compute (`pmulhuw` is `mulhi`, adds wrap), so every path gives identical output.
//!
//! Why not plain loops: LLVM widens `(a as u32 * b as u32) >> 16` to 32-bit lanes and packs
//! back (`pmulld` or `pmovzxwd` + `pmulhuw` + `packusdw` + `vpermq`, 3x slower), and since std's
//! intrinsics are themselves generic vector code, it does the same to `_mm256_mulhi_epu16`
//! whenever it can prove an operand is a zero extension (`pmovzxbw`, a shifted byte, a lone
//! load). So the operands come from opaque or additive steps it leaves alone: bytes are paired
//! with `punpcklbw` and summed by `pmaddubsw` (AVX2) or unpacked with zero and added (SSE2),
//! the centre is the pair `k = 0` rather than a special case, and the horizontal pass adds two
//! loads before multiplying. Unpacking works within each 128-bit half of an AVX2 register,
//! which the vertical pass undoes when it stores. Check `vpmulhuw` sits between `vpmaddubsw`
//! or `vpaddw` and `vpaddw` in the disassembly after touching this.

use std::arch::x86_64::{
    __m128i, __m256i, _mm_add_epi16, _mm_loadu_si128, _mm_mulhi_epu16, _mm_packus_epi16,
    _mm_set1_epi16, _mm_setzero_si128, _mm_slli_epi16, _mm_srli_epi16, _mm_storeu_si128,
    _mm_unpackhi_epi8, _mm_unpacklo_epi8, _mm256_add_epi16, _mm256_loadu_si256,
    _mm256_maddubs_epi16, _mm256_mulhi_epu16, _mm256_packus_epi16, _mm256_permute2x128_si256,
    _mm256_permute4x64_epi64, _mm256_set1_epi8, _mm256_set1_epi16, _mm256_srli_epi16,
    _mm256_storeu_si256, _mm256_unpackhi_epi8, _mm256_unpacklo_epi8,
};

use super::kernel::FixedWeights;
use super::separable::{horizontal_lane, vertical_lane};

/// Vectors of `WIDTH` `u16` lanes and the operations the passes need. Bytes move in blocks of
/// `2 * WIDTH` (one full-width byte load or store), held as two vectors.
trait Lanes: Copy {
    /// A vector.
    type V: Copy;
    /// `u16` lanes per vector.
    const WIDTH: usize;
    fn splat(self, x: u16) -> Self::V;
    /// `(u + d) << 6` for the first `2 * WIDTH` bytes `u` of `above` and `d` of `below`,
    /// zero-extended, in the lane order [`store_words`](Self::store_words) undoes.
    fn load_pair_sums(self, above: &[u8], below: &[u8]) -> [Self::V; 2];
    /// Stores two vectors from [`load_pair_sums`](Self::load_pair_sums) order to the first
    /// `2 * WIDTH` words of `dst`, in memory order.
    fn store_words(self, v: [Self::V; 2], dst: &mut [u16]);
    /// `WIDTH` words from the start of `src`.
    fn load_words(self, src: &[u16]) -> Self::V;
    /// `v >> 8` (each lane at most 255 after the shift) to the first `2 * WIDTH` bytes of
    /// `dst`.
    fn store_high_bytes(self, v: [Self::V; 2], dst: &mut [u8]);
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    fn mulhi(self, a: Self::V, b: Self::V) -> Self::V;
}

/// SSE2, part of the x86-64 baseline, so always available.
#[derive(Clone, Copy)]
struct Sse2;

impl Lanes for Sse2 {
    type V = __m128i;
    const WIDTH: usize = 8;

    #[inline(always)]
    fn splat(self, x: u16) -> __m128i {
        // SAFETY: SSE2 is part of the x86-64 baseline.
        unsafe { _mm_set1_epi16(x as i16) }
    }
    #[inline(always)]
    fn load_pair_sums(self, above: &[u8], below: &[u8]) -> [__m128i; 2] {
        let (above, below) = (&above[..16], &below[..16]);
        // SAFETY: SSE2 is part of the x86-64 baseline; reads the 16 bytes of `above` and
        // `below`, unaligned allowed.
        unsafe {
            let u = _mm_loadu_si128(above.as_ptr().cast());
            let d = _mm_loadu_si128(below.as_ptr().cast());
            let zero = _mm_setzero_si128();
            let lo = _mm_add_epi16(_mm_unpacklo_epi8(u, zero), _mm_unpacklo_epi8(d, zero));
            let hi = _mm_add_epi16(_mm_unpackhi_epi8(u, zero), _mm_unpackhi_epi8(d, zero));
            [_mm_slli_epi16::<6>(lo), _mm_slli_epi16::<6>(hi)]
        }
    }
    #[inline(always)]
    fn store_words(self, v: [__m128i; 2], dst: &mut [u16]) {
        let dst = &mut dst[..16];
        // SAFETY: SSE2 is part of the x86-64 baseline; writes the 32 bytes of `dst`.
        unsafe {
            _mm_storeu_si128(dst.as_mut_ptr().cast(), v[0]);
            _mm_storeu_si128(dst[8..].as_mut_ptr().cast(), v[1]);
        }
    }
    #[inline(always)]
    fn load_words(self, src: &[u16]) -> __m128i {
        let src = &src[..8];
        // SAFETY: SSE2 is part of the x86-64 baseline; reads the 16 bytes of `src`, unaligned
        // allowed.
        unsafe { _mm_loadu_si128(src.as_ptr().cast()) }
    }
    #[inline(always)]
    fn store_high_bytes(self, v: [__m128i; 2], dst: &mut [u8]) {
        let dst = &mut dst[..16];
        // SAFETY: SSE2 is part of the x86-64 baseline; writes the 16 bytes of `dst`.
        unsafe {
            let bytes = _mm_packus_epi16(_mm_srli_epi16::<8>(v[0]), _mm_srli_epi16::<8>(v[1]));
            _mm_storeu_si128(dst.as_mut_ptr().cast(), bytes);
        }
    }
    #[inline(always)]
    fn add(self, a: __m128i, b: __m128i) -> __m128i {
        // SAFETY: SSE2 is part of the x86-64 baseline.
        unsafe { _mm_add_epi16(a, b) }
    }
    #[inline(always)]
    fn mulhi(self, a: __m128i, b: __m128i) -> __m128i {
        // SAFETY: SSE2 is part of the x86-64 baseline.
        unsafe { _mm_mulhi_epu16(a, b) }
    }
}

/// AVX2. A value of this type exists only once the CPU has been seen to support AVX2
/// ([`Avx2::detect`]), which is what makes its intrinsics sound to call.
#[derive(Clone, Copy)]
struct Avx2(());

impl Avx2 {
    fn detect() -> Option<Self> {
        std::arch::is_x86_feature_detected!("avx2").then_some(Avx2(()))
    }
}

impl Lanes for Avx2 {
    type V = __m256i;
    const WIDTH: usize = 16;

    #[inline(always)]
    fn splat(self, x: u16) -> __m256i {
        // SAFETY: `self` proves AVX2 is available.
        unsafe { _mm256_set1_epi16(x as i16) }
    }
    /// Interleaves the two rows' bytes and lets `pmaddubsw` compute `64 u + 64 d` (at most
    /// 32 640, so it never saturates): add and shift in one instruction. Lanes come out as
    /// bytes `[0..8, 16..24]` and `[8..16, 24..32]` (unpacking works within each 128-bit half).
    #[inline(always)]
    fn load_pair_sums(self, above: &[u8], below: &[u8]) -> [__m256i; 2] {
        let (above, below) = (&above[..32], &below[..32]);
        // SAFETY: `self` proves AVX2; reads the 32 bytes of `above` and `below`, unaligned
        // allowed.
        unsafe {
            let u = _mm256_loadu_si256(above.as_ptr().cast());
            let d = _mm256_loadu_si256(below.as_ptr().cast());
            let sixty_four = _mm256_set1_epi8(64);
            [
                _mm256_maddubs_epi16(_mm256_unpacklo_epi8(u, d), sixty_four),
                _mm256_maddubs_epi16(_mm256_unpackhi_epi8(u, d), sixty_four),
            ]
        }
    }
    #[inline(always)]
    fn store_words(self, v: [__m256i; 2], dst: &mut [u16]) {
        let dst = &mut dst[..32];
        // SAFETY: `self` proves AVX2; writes the 64 bytes of `dst`.
        unsafe {
            let first = _mm256_permute2x128_si256::<0x20>(v[0], v[1]);
            let second = _mm256_permute2x128_si256::<0x31>(v[0], v[1]);
            _mm256_storeu_si256(dst.as_mut_ptr().cast(), first);
            _mm256_storeu_si256(dst[16..].as_mut_ptr().cast(), second);
        }
    }
    #[inline(always)]
    fn load_words(self, src: &[u16]) -> __m256i {
        let src = &src[..16];
        // SAFETY: `self` proves AVX2; reads the 32 bytes of `src`, unaligned allowed.
        unsafe { _mm256_loadu_si256(src.as_ptr().cast()) }
    }
    #[inline(always)]
    fn store_high_bytes(self, v: [__m256i; 2], dst: &mut [u8]) {
        let dst = &mut dst[..32];
        // SAFETY: `self` proves AVX2; writes the 32 bytes of `dst`.
        unsafe {
            // Packing interleaves the 128-bit halves; the permute puts them back in order.
            let packed =
                _mm256_packus_epi16(_mm256_srli_epi16::<8>(v[0]), _mm256_srli_epi16::<8>(v[1]));
            let bytes = _mm256_permute4x64_epi64::<0b11_01_10_00>(packed);
            _mm256_storeu_si256(dst.as_mut_ptr().cast(), bytes);
        }
    }
    #[inline(always)]
    fn add(self, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: `self` proves AVX2 is available.
        unsafe { _mm256_add_epi16(a, b) }
    }
    #[inline(always)]
    fn mulhi(self, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: `self` proves AVX2 is available.
        unsafe { _mm256_mulhi_epu16(a, b) }
    }
}

/// Sums the taps (source rows, centre in the middle) into `out`, in Q7.
pub(super) fn vertical_pass(taps: &[&[u8]], w: &FixedWeights, out: &mut [u16]) {
    match Avx2::detect() {
        // SAFETY: `avx2` proves the CPU supports AVX2.
        Some(avx2) => unsafe { vertical_avx2(avx2, taps, w, out) },
        None => vertical(Sse2, taps, w, out),
    }
}

/// Writes `out[x] = sum_j w_j * row[x + j * channels]` rounded to bytes; `row` carries the
/// `radius * channels` margins on each side.
pub(super) fn horizontal_pass(row: &[u16], channels: usize, w: &FixedWeights, out: &mut [u8]) {
    match Avx2::detect() {
        // SAFETY: `avx2` proves the CPU supports AVX2.
        Some(avx2) => unsafe { horizontal_avx2(avx2, row, channels, w, out) },
        None => horizontal(Sse2, row, channels, w, out),
    }
}

/// [`vertical`] compiled for AVX2.
///
/// # Safety
/// The CPU must support AVX2 (an [`Avx2`] value proves it). An `unsafe fn` rather than a safe
/// `#[target_feature]` one, which needs Rust 1.86.
#[target_feature(enable = "avx2")]
unsafe fn vertical_avx2(l: Avx2, taps: &[&[u8]], w: &FixedWeights, out: &mut [u16]) {
    vertical(l, taps, w, out);
}

/// [`horizontal`] compiled for AVX2.
///
/// # Safety
/// The CPU must support AVX2 (an [`Avx2`] value proves it).
#[target_feature(enable = "avx2")]
unsafe fn horizontal_avx2(l: Avx2, row: &[u16], channels: usize, w: &FixedWeights, out: &mut [u8]) {
    horizontal(l, row, channels, w, out);
}

/// Byte blocks (of `2 * WIDTH` lanes) per chunk: eight accumulators kept in registers across
/// the tap loop (of AVX2's 16), which amortises the per-tap address arithmetic; 2 and 3 blocks
/// measured slower on Zen 1.
const BLOCKS: usize = 4;

/// Start positions of runs of `size` lanes covering `0..n` (`n >= size`), the last one
/// overlapping its predecessor rather than running past `n`: lanes are independent, so
/// computing some twice is harmless.
#[inline(always)]
fn run_starts(n: usize, size: usize) -> impl Iterator<Item = usize> {
    let last = (!n.is_multiple_of(size)).then(|| n - size);
    (0..n / size).map(move |i| i * size).chain(last)
}

#[inline(always)]
fn vertical<L: Lanes>(l: L, taps: &[&[u8]], w: &FixedWeights, out: &mut [u16]) {
    let (n, block) = (out.len(), 2 * L::WIDTH);
    if n >= BLOCKS * block {
        for x in run_starts(n, BLOCKS * block) {
            vertical_blocks::<L, BLOCKS>(l, taps, w, x, out);
        }
    } else if n >= block {
        for x in run_starts(n, block) {
            vertical_blocks::<L, 1>(l, taps, w, x, out);
        }
    } else {
        for (x, o) in out.iter_mut().enumerate() {
            *o = vertical_lane(taps, w, x);
        }
    }
}

/// `B` blocks of output lanes from byte `x` of each tap.
#[inline(always)]
fn vertical_blocks<L: Lanes, const B: usize>(
    l: L,
    taps: &[&[u8]],
    w: &FixedWeights,
    x: usize,
    out: &mut [u16],
) {
    let radius = w.radius();
    let block = 2 * L::WIDTH;
    let span = x..x + B * block;
    let mut acc = [[l.splat(w.vertical_bias); 2]; B];
    // k = 0 is the centre row paired with itself.
    for (k, &q) in w.weights.iter().enumerate() {
        let q = l.splat(q);
        let above = &taps[radius - k][span.clone()];
        let below = &taps[radius + k][span.clone()];
        for (b, acc) in acc.iter_mut().enumerate() {
            let sums = l.load_pair_sums(&above[b * block..], &below[b * block..]);
            for (a, sum) in acc.iter_mut().zip(sums) {
                *a = l.add(*a, l.mulhi(sum, q));
            }
        }
    }
    let out = &mut out[span];
    for (b, acc) in acc.into_iter().enumerate() {
        l.store_words(acc, &mut out[b * block..]);
    }
}

#[inline(always)]
fn horizontal<L: Lanes>(l: L, row: &[u16], channels: usize, w: &FixedWeights, out: &mut [u8]) {
    let (n, block) = (out.len(), 2 * L::WIDTH);
    if n >= BLOCKS * block {
        for x in run_starts(n, BLOCKS * block) {
            horizontal_blocks::<L, BLOCKS>(l, row, channels, w, x, out);
        }
    } else if n >= block {
        for x in run_starts(n, block) {
            horizontal_blocks::<L, 1>(l, row, channels, w, x, out);
        }
    } else {
        for (x, o) in out.iter_mut().enumerate() {
            *o = horizontal_lane(row, channels, w, x);
        }
    }
}

/// `B` blocks of output bytes from `x`.
#[inline(always)]
fn horizontal_blocks<L: Lanes, const B: usize>(
    l: L,
    row: &[u16],
    channels: usize,
    w: &FixedWeights,
    x: usize,
    out: &mut [u8],
) {
    let block = 2 * L::WIDTH;
    let len = B * block;
    let centre = x + w.radius() * channels;
    let mut acc = [[l.splat(w.horizontal_bias); 2]; B];
    // k = 0 is the centre paired with itself.
    for (k, &q) in w.weights.iter().enumerate() {
        let q = l.splat(q);
        let offset = k * channels;
        let left = &row[centre - offset..centre - offset + len];
        let right = &row[centre + offset..centre + offset + len];
        for (b, acc) in acc.iter_mut().enumerate() {
            for (h, a) in acc.iter_mut().enumerate() {
                let at = b * block + h * L::WIDTH;
                let pair = l.add(l.load_words(&left[at..]), l.load_words(&right[at..]));
                *a = l.add(*a, l.mulhi(pair, q));
            }
        }
    }
    let out = &mut out[x..x + len];
    for (b, acc) in acc.into_iter().enumerate() {
        l.store_high_bytes(acc, &mut out[b * block..]);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::super::GaussianKernel;
    use super::*;

    fn noise(state: &mut u32) -> u8 {
        *state ^= *state << 13;
        *state ^= *state >> 17;
        *state ^= *state << 5;
        (*state >> 24) as u8
    }

    /// Both instruction sets, over every chunking path (double blocks, single blocks with
    /// overlap, scalar lanes), agree with the lane functions bit for bit.
    #[test]
    fn simd_matches_the_lane_functions() {
        let mut state = 12345_u32;
        let avx2 = Avx2::detect();
        for radius in [1_u32, 2, 6, 17, 64] {
            let kernel = GaussianKernel::new(radius as f32 / 3.0, Some(radius)).unwrap();
            let w = kernel.fixed();
            for n in [
                1, 7, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 400,
            ] {
                let rows: Vec<Vec<u8>> = (0..2 * radius + 1)
                    .map(|_| (0..n).map(|_| noise(&mut state)).collect())
                    .collect();
                let taps: Vec<&[u8]> = rows.iter().map(Vec::as_slice).collect();
                let lanes: Vec<u16> = (0..n).map(|x| vertical_lane(&taps, w, x)).collect();
                let mut sse2 = vec![0_u16; n];
                vertical(Sse2, &taps, w, &mut sse2);
                assert_eq!(sse2, lanes, "sse2 vertical r={radius} n={n}");
                if let Some(avx2) = avx2 {
                    let mut out = vec![0_u16; n];
                    // SAFETY: `avx2` proves the CPU supports AVX2.
                    unsafe { vertical_avx2(avx2, &taps, w, &mut out) };
                    assert_eq!(out, lanes, "avx2 vertical r={radius} n={n}");
                }

                for channels in [1, 4] {
                    let margin = radius as usize * channels;
                    let row: Vec<u16> = (0..n + 2 * margin)
                        .map(|_| {
                            (u16::from(noise(&mut state)) << 7 | u16::from(noise(&mut state)))
                                .min(32_700)
                        })
                        .collect();
                    let lanes: Vec<u8> = (0..n)
                        .map(|x| horizontal_lane(&row, channels, w, x))
                        .collect();
                    let mut sse2 = vec![0_u8; n];
                    horizontal(Sse2, &row, channels, w, &mut sse2);
                    assert_eq!(sse2, lanes, "sse2 horizontal r={radius} n={n} c={channels}");
                    if let Some(avx2) = avx2 {
                        let mut out = vec![0_u8; n];
                        // SAFETY: `avx2` proves the CPU supports AVX2.
                        unsafe { horizontal_avx2(avx2, &row, channels, w, &mut out) };
                        assert_eq!(out, lanes, "avx2 horizontal r={radius} n={n} c={channels}");
                    }
                }
            }
        }
    }
}
