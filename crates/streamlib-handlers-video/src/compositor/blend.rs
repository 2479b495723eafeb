//! The blending kernels: exact integer source-over of RGBA8/BGRA8 rows onto a premultiplied
//! RGBA8 canvas, and the final conversion of that canvas to straight alpha.
//!
//! ## The arithmetic (what the tests recompute independently)
//! Every value is a byte, 0..=255. `div255(v)` is `v / 255` rounded to nearest, i.e.
//! `(v + 127) / 255` in integers; the kernels compute it as `(t + (t >> 8)) >> 8` with
//! `t = v + 128`, which is the same for every `v` they feed it (`v <= 65_152`; checked
//! exhaustively in the unit tests).
//!
//! A layer pixel `(c0, c1, c2, α)` drawn at opacity `o` (a byte: `round(opacity · 255)`) onto
//! a premultiplied canvas pixel `(d0, d1, d2, dα)`:
//! - `a = div255(α · o)`: the effective coverage (just `α` when `o = 255`).
//! - straight layer: `out_k = div255(c_k · a + d_k · (255 − a))` for the colours and
//!   `out_α = div255(255 · a + dα · (255 − a))` (premultiplying and blending in one rounding);
//! - premultiplied layer: `out_k = min(255, div255(c_k · o + d_k · (255 − a)))`, and the same
//!   for alpha with `α` as `c_k`. The `min` only matters for "additive" premultiplied pixels
//!   whose colour exceeds their alpha; valid ones never reach it.
//!
//! Consequences the handler relies on: an opaque pixel at `o = 255` is copied exactly; `o = 0`
//! (or `α = 0` in a straight layer, or an all-zero premultiplied pixel) leaves the canvas
//! exactly as it was; and a canvas that starts opaque stays opaque, so its premultiplied
//! colours are already the straight ones.
//!
//! The straight output is `out_k = min(255, (c_k · 255 + ⌊dα / 2⌋) / dα)` (0 where `dα = 0`),
//! computed with a table of reciprocals that is exact for every input (also checked
//! exhaustively).
//!
//! ## Speed
//! Rows are processed a cache line (16 pixels) at a time: a line of opaque pixels at full
//! opacity is copied, a line of transparent ones skipped, the rest blended by fixed-size loops
//! over the interleaved bytes that LLVM vectorises in 16-bit lanes (SSE2 on a default x86-64
//! build, NEON on ARM). On x86-64 CPUs with AVX2 (detected at run time) hand-written AVX2
//! kernels do the same arithmetic eight pixels per step; compiled for AVX2, the loops above
//! ran at half their speed (LLVM transposed the pixels into planes). Layers are prefetched
//! 4 KiB ahead: their rows are read in turn with the other layers' rows, which leaves the
//! hardware prefetcher behind.

/// Largest sum fed to [`div255`]: anything above already rounds to 255.
const MAX_SUM: u16 = 65_152;

/// Pixels per chunk: one 64-byte cache line.
const CHUNK_PX: usize = 16;
const CHUNK: usize = CHUNK_PX * 4;

/// Alpha bytes of two little-endian RGBA pixels read as a `u64`.
const ALPHA_MASK: u64 = 0xFF00_0000_FF00_0000;

/// How one layer's row is blended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Blend {
    /// The layer's colours are premultiplied by its alpha.
    pub premultiplied: bool,
    /// The layer is BGRA: swap R and B while reading it.
    pub swap_rb: bool,
    /// Global opacity, 1..=255 (0 is never drawn).
    pub opacity: u8,
}

/// How far ahead of the pixels being blended the layer is fetched into cache: past the end of
/// the span too, since rows usually follow each other in memory (and a prefetch cannot fault).
const PREFETCH: usize = 4096;

/// Asks for the cache line at `p` (any address: a prefetch never faults).
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of x86-64, and a prefetch reads nothing the program can observe.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// `v / 255` rounded to nearest, for `v <= MAX_SUM`.
#[inline(always)]
fn div255(v: u16) -> u16 {
    let t = v + 128;
    (t + (t >> 8)) >> 8
}

#[inline(always)]
fn blend_pixel<const PREMUL: bool, const FULL: bool, const SWAP: bool>(
    d: &mut [u8],
    s: &[u8],
    opacity: u16,
) {
    let o = if FULL { 255 } else { opacity };
    let alpha = u16::from(s[3]);
    let a = if FULL { alpha } else { div255(alpha * o) };
    let inv = 255 - a;
    let (c0, c2) = if SWAP { (s[2], s[0]) } else { (s[0], s[2]) };
    let src = [
        u16::from(c0),
        u16::from(s[1]),
        u16::from(c2),
        if PREMUL { alpha } else { 255 },
    ];
    let m = if PREMUL { o } else { a };
    for k in 0..4 {
        let dk = u16::from(d[k]) * inv;
        let sum = if PREMUL {
            (src[k] * m).saturating_add(dk).min(MAX_SUM)
        } else {
            src[k] * m + dk
        };
        d[k] = div255(sum) as u8;
    }
}

/// [`blend_pixel`] on a whole chunk, written lane by lane over the interleaved bytes (the
/// alpha "broadcast" is an index, `i | 3`) so that LLVM vectorises it without transposing
/// pixels into planes.
#[inline(always)]
fn blend_chunk<const PREMUL: bool, const FULL: bool, const SWAP: bool>(
    d: &mut [u8],
    s: &[u8],
    opacity: u16,
) {
    let (Ok(d), Ok(s)) = (<&mut [u8; CHUNK]>::try_from(d), <&[u8; CHUNK]>::try_from(s)) else {
        return;
    };
    let o = if FULL { 255 } else { opacity };
    let mut src = [0u16; CHUNK];
    for (i, v) in src.iter_mut().enumerate() {
        // BGRA: read R from byte 2 and B from byte 0.
        let j = if SWAP && i & 1 == 0 { i ^ 2 } else { i };
        *v = u16::from(s[j]);
    }
    let mut out = [0u8; CHUNK];
    for (i, out) in out.iter_mut().enumerate() {
        let alpha = src[i | 3];
        let a = if FULL { alpha } else { div255(alpha * o) };
        let x = if !PREMUL && i & 3 == 3 { 255 } else { src[i] };
        let m = if PREMUL { o } else { a };
        let dk = u16::from(d[i]) * (255 - a);
        let sum = if PREMUL {
            (x * m).saturating_add(dk).min(MAX_SUM)
        } else {
            x * m + dk
        };
        *out = div255(sum) as u8;
    }
    *d = out;
}

#[inline(always)]
fn word(b: &[u8]) -> u64 {
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

#[inline(always)]
fn span<const PREMUL: bool, const FULL: bool, const SWAP: bool>(
    dst: &mut [u8],
    src: &[u8],
    opacity: u16,
) {
    let mut dst_chunks = dst.chunks_exact_mut(CHUNK);
    let mut src_chunks = src.chunks_exact(CHUNK);
    for (d, s) in (&mut dst_chunks).zip(&mut src_chunks) {
        prefetch(s.as_ptr().wrapping_add(PREFETCH));
        let (mut all, mut any) = (u64::MAX, 0u64);
        for w in s.chunks_exact(8) {
            let w = word(w);
            all &= w;
            any |= if PREMUL { w } else { w & ALPHA_MASK };
        }
        if any == 0 {
            // Fully transparent: out = d exactly.
            continue;
        }
        if FULL && !SWAP && all & ALPHA_MASK == ALPHA_MASK {
            // Fully opaque at full opacity: out = s exactly.
            d.copy_from_slice(s);
            continue;
        }
        blend_chunk::<PREMUL, FULL, SWAP>(d, s, opacity);
    }
    let rest = dst_chunks.into_remainder();
    for (dp, sp) in rest
        .chunks_exact_mut(4)
        .zip(src_chunks.remainder().chunks_exact(4))
    {
        blend_pixel::<PREMUL, FULL, SWAP>(dp, sp, opacity);
    }
}

#[inline(always)]
fn blend_span_any(dst: &mut [u8], src: &[u8], blend: Blend) {
    let o = u16::from(blend.opacity);
    match (blend.premultiplied, blend.opacity == 255, blend.swap_rb) {
        (false, false, false) => span::<false, false, false>(dst, src, o),
        (false, false, true) => span::<false, false, true>(dst, src, o),
        (false, true, false) => span::<false, true, false>(dst, src, o),
        (false, true, true) => span::<false, true, true>(dst, src, o),
        (true, false, false) => span::<true, false, false>(dst, src, o),
        (true, false, true) => span::<true, false, true>(dst, src, o),
        (true, true, false) => span::<true, true, false>(dst, src, o),
        (true, true, true) => span::<true, true, true>(dst, src, o),
    }
}

/// Blends `src` (a layer's visible part of one row) onto `dst` (the canvas pixels under it).
/// Both are whole pixels and the same length.
pub(crate) fn blend_span(dst: &mut [u8], src: &[u8], blend: Blend) {
    debug_assert_eq!(dst.len(), src.len());
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked on the line above).
        unsafe { avx2::blend_span(dst, src, blend) };
        return;
    }
    blend_span_portable(dst, src, blend);
}

/// The portable kernels (what non-AVX2 machines run, and the reference for the AVX2 ones).
pub(crate) fn blend_span_portable(dst: &mut [u8], src: &[u8], blend: Blend) {
    blend_span_any(dst, src, blend);
}

/// Hand-written AVX2 kernels: the same arithmetic on eight pixels per step, in 16-bit lanes
/// that keep the pixels interleaved (no transposes).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{Blend, PREFETCH, blend_pixel, prefetch};

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn blend_span(dst: &mut [u8], src: &[u8], blend: Blend) {
        let o = blend.opacity;
        // SAFETY: every arm calls an AVX2 kernel, and our caller guarantees AVX2.
        unsafe {
            match (blend.premultiplied, o == 255, blend.swap_rb) {
                (false, false, false) => span::<false, false, false>(dst, src, o),
                (false, false, true) => span::<false, false, true>(dst, src, o),
                (false, true, false) => span::<false, true, false>(dst, src, o),
                (false, true, true) => span::<false, true, true>(dst, src, o),
                (true, false, false) => span::<true, false, false>(dst, src, o),
                (true, false, true) => span::<true, false, true>(dst, src, o),
                (true, true, false) => span::<true, true, false>(dst, src, o),
                (true, true, true) => span::<true, true, true>(dst, src, o),
            }
        }
    }

    /// A 32-byte pattern: `lane` for the first 16 bytes, repeated for the second.
    #[inline(always)]
    fn lanes(lane: [i8; 16]) -> [i8; 32] {
        let mut out = [0; 32];
        out[..16].copy_from_slice(&lane);
        out[16..].copy_from_slice(&lane);
        out
    }

    /// Shuffle that spreads byte `k` of pixels `first` and `first + 1` (of each 128-bit
    /// lane) over the four 16-bit lanes of each pixel.
    #[inline(always)]
    fn broadcast(first: i8, k: i8) -> [i8; 32] {
        let (p, q) = (first * 4 + k, first * 4 + 4 + k);
        lanes([p, -1, p, -1, p, -1, p, -1, q, -1, q, -1, q, -1, q, -1])
    }

    /// `div255(x · m + d · (255 − a))` in 16-bit lanes (saturating for premultiplied layers).
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[inline]
    #[target_feature(enable = "avx2")]
    #[allow(
        unused_unsafe,
        reason = "value intrinsics are unsafe before Rust 1.87 (MSRV 1.85), safe after"
    )]
    unsafe fn lerp<const PREMUL: bool>(x: __m256i, m: __m256i, d: __m256i, a: __m256i) -> __m256i {
        // SAFETY: AVX2 is available (our contract); these intrinsics only compute.
        unsafe {
            let c128 = _mm256_set1_epi16(128);
            let c255 = _mm256_set1_epi16(255);
            let c257 = _mm256_set1_epi16(257);
            let src_part = _mm256_mullo_epi16(x, m);
            let dst_part = _mm256_mullo_epi16(d, _mm256_sub_epi16(c255, a));
            let sum = if PREMUL {
                _mm256_adds_epu16(_mm256_adds_epu16(src_part, dst_part), c128)
            } else {
                _mm256_add_epi16(_mm256_add_epi16(src_part, dst_part), c128)
            };
            // (t · 257) >> 16 == (t + (t >> 8)) >> 8: div255 of the sum.
            _mm256_mulhi_epu16(sum, c257)
        }
    }

    /// # Safety
    /// The CPU must support AVX2.
    #[inline]
    #[target_feature(enable = "avx2")]
    #[allow(
        unused_unsafe,
        reason = "value intrinsics are unsafe before Rust 1.87 (MSRV 1.85), safe after"
    )]
    unsafe fn span<const PREMUL: bool, const FULL: bool, const SWAP: bool>(
        dst: &mut [u8],
        src: &[u8],
        opacity: u8,
    ) {
        let len = dst.len().min(src.len());
        let vectors = len / 32;
        // SAFETY: AVX2 is available (our contract); every load and store below covers bytes
        // `32 * i..32 * i + 32` with `i < vectors`, inside both slices; unaligned access is
        // what loadu/storeu are for.
        unsafe {
            let load = |b: [i8; 32]| _mm256_loadu_si256(b.as_ptr().cast());
            let zero = _mm256_setzero_si256();
            let alpha_bytes = _mm256_set1_epi32(0xFF00_0000_u32 as i32);
            let c128 = _mm256_set1_epi16(128);
            let c257 = _mm256_set1_epi16(257);
            let o16 = _mm256_set1_epi16(i16::from(opacity));
            let o32 = _mm256_set1_epi32(i32::from(opacity));
            let swap = load(lanes([
                2, 1, 0, 3, 6, 5, 4, 7, 10, 9, 8, 11, 14, 13, 12, 15,
            ]));
            // Where each pixel's coverage byte sits: alpha (byte 3) at full opacity, else
            // the low byte of the 32-bit lane holding div255(α·o).
            let k = if FULL { 3 } else { 0 };
            let spread_lo = load(broadcast(0, k));
            let spread_hi = load(broadcast(2, k));
            for i in 0..vectors {
                let sp = src.as_ptr().add(32 * i).cast::<__m256i>();
                let dp = dst.as_mut_ptr().add(32 * i).cast::<__m256i>();
                if i % 2 == 0 {
                    prefetch(src.as_ptr().wrapping_add(32 * i + PREFETCH));
                }
                let mut s = _mm256_loadu_si256(sp);
                let clear = if PREMUL {
                    _mm256_testz_si256(s, s)
                } else {
                    _mm256_testz_si256(s, alpha_bytes)
                };
                if clear != 0 {
                    continue;
                }
                if SWAP {
                    s = _mm256_shuffle_epi8(s, swap);
                }
                if FULL && _mm256_testc_si256(s, alpha_bytes) != 0 {
                    _mm256_storeu_si256(dp, s);
                    continue;
                }
                let d = _mm256_loadu_si256(dp);
                let coverage = if FULL {
                    s
                } else {
                    // div255(α·o) in the low 16 bits of each pixel's 32-bit lane (the high
                    // halves compute div255(0·0) = 0).
                    let t = _mm256_mullo_epi16(_mm256_srli_epi32(s, 24), o32);
                    _mm256_mulhi_epu16(_mm256_add_epi16(t, c128), c257)
                };
                let a_lo = _mm256_shuffle_epi8(coverage, spread_lo);
                let a_hi = _mm256_shuffle_epi8(coverage, spread_hi);
                let x = if PREMUL {
                    s
                } else {
                    _mm256_or_si256(s, alpha_bytes)
                };
                let (m_lo, m_hi) = if PREMUL { (o16, o16) } else { (a_lo, a_hi) };
                let lo = lerp::<PREMUL>(
                    _mm256_unpacklo_epi8(x, zero),
                    m_lo,
                    _mm256_unpacklo_epi8(d, zero),
                    a_lo,
                );
                let hi = lerp::<PREMUL>(
                    _mm256_unpackhi_epi8(x, zero),
                    m_hi,
                    _mm256_unpackhi_epi8(d, zero),
                    a_hi,
                );
                // Saturating pack: a premultiplied sum past 65_407 reads 256 here, 255 out.
                _mm256_storeu_si256(dp, _mm256_packus_epi16(lo, hi));
            }
        }
        let done = vectors * 32;
        for (d, s) in dst[done..len]
            .chunks_exact_mut(4)
            .zip(src[done..len].chunks_exact(4))
        {
            blend_pixel::<PREMUL, FULL, SWAP>(d, s, u16::from(opacity));
        }
    }
}

/// Fills a row with one (premultiplied) pixel.
pub(crate) fn fill_row(row: &mut [u8], pixel: [u8; 4]) {
    let word = u32::from_ne_bytes(pixel);
    for p in row.chunks_exact_mut(4) {
        p.copy_from_slice(&word.to_ne_bytes());
    }
}

/// Copies a finished row to the output frame. On x86-64 the bulk of it is written with
/// non-temporal stores: the frame is far larger than the caches and read by someone else, so
/// this skips reading the destination lines in before overwriting them. Call
/// [`finish_streaming`] before the frame is shared.
pub(crate) fn stream_row(dst: &mut [u8], src: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_stream_si128};
        let len = dst.len().min(src.len());
        let head = dst.as_ptr().align_offset(16).min(len);
        let body = (len - head) / 16 * 16;
        dst[..head].copy_from_slice(&src[..head]);
        for i in (head..head + body).step_by(16) {
            // SAFETY: SSE2 is part of x86-64; bytes i..i + 16 lie inside both slices
            // (i + 16 <= head + body <= len), and dst + i is 16-byte aligned as
            // _mm_stream_si128 requires (head aligned it, steps are 16).
            unsafe {
                let v = _mm_loadu_si128(src.as_ptr().add(i).cast::<__m128i>());
                _mm_stream_si128(dst.as_mut_ptr().add(i).cast::<__m128i>(), v);
            }
        }
        dst[head + body..len].copy_from_slice(&src[head + body..len]);
    }
    #[cfg(not(target_arch = "x86_64"))]
    dst.copy_from_slice(src);
}

/// Orders the non-temporal stores of [`stream_row`] before whatever publishes the frame
/// (they are not ordered by the release that hands the frame over).
pub(crate) fn finish_streaming() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of x86-64; a fence has no other effect.
    unsafe {
        std::arch::x86_64::_mm_sfence();
    }
}

/// `⌈2³² / a⌉` for a = 1..=255 (index 0 unused): `(n · RECIP[a]) >> 32 == n / a` for every
/// `n <= 65_152`, since the rounding error times n stays below 2³².
const RECIP: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut a = 1;
    while a < 256 {
        table[a] = (1u64 << 32).div_ceil(a as u64);
        a += 1;
    }
    table
};

/// Converts a premultiplied RGBA8 row to straight alpha in place.
pub(crate) fn unpremultiply_row(row: &mut [u8]) {
    for p in row.chunks_exact_mut(4) {
        let a = p[3];
        if a == 255 {
            continue;
        }
        if a == 0 {
            p[..3].fill(0);
            continue;
        }
        let recip = RECIP[usize::from(a)];
        let half = u64::from(a / 2);
        for c in &mut p[..3] {
            let n = u64::from(*c) * 255 + half;
            *c = ((n * recip) >> 32).min(255) as u8;
        }
    }
}

/// Premultiplies a straight RGBA8 pixel (for the background).
pub(crate) fn premultiply_pixel(p: [u8; 4]) -> [u8; 4] {
    let a = u16::from(p[3]);
    let m = |c: u8| div255(u16::from(c) * a) as u8;
    [m(p[0]), m(p[1]), m(p[2]), p[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn div255_rounds_to_nearest_for_every_input_it_gets() {
        for v in 0..=MAX_SUM {
            assert_eq!(div255(v), (v as u32 + 127) as u16 / 255, "v = {v}");
        }
    }

    #[test]
    fn reciprocal_division_is_exact() {
        for a in 1..=255u64 {
            for n in 0..=u64::from(MAX_SUM) {
                assert_eq!((n * RECIP[a as usize]) >> 32, n / a, "{n} / {a}");
            }
        }
    }

    /// Every kernel (the dispatched one, which is AVX2 where the CPU has it, and the portable
    /// one) agrees with the per-pixel formula, over opaque, clear and mixed runs, every
    /// length up to 3 chunks, both alpha modes, both channel orders and several opacities.
    #[test]
    fn every_kernel_matches_the_per_pixel_formula() {
        let px = 3 * CHUNK_PX + 5;
        let mut src: Vec<u8> = (0..px * 4).map(|i| (i * 37 % 251) as u8).collect();
        let alphas = src.iter_mut().skip(3).step_by(4);
        for (i, a) in alphas.enumerate() {
            match i / 8 % 4 {
                0 => *a = 255,
                1 => *a = 0,
                _ => {}
            }
        }
        src[CHUNK..CHUNK + 32].fill(0); // an all-zero run for the premultiplied skip
        let canvas: Vec<u8> = (0..px * 4).map(|i| (i * 13 % 256) as u8).collect();
        type Kernel = fn(&mut [u8], &[u8], Blend);
        let kernels: [(&str, Kernel); 2] = [
            ("dispatched", blend_span),
            ("portable", blend_span_portable),
        ];
        for (name, kernel) in kernels {
            for n in 0..=px {
                for premultiplied in [false, true] {
                    for swap_rb in [false, true] {
                        for opacity in [1u8, 77, 128, 254, 255] {
                            let blend = Blend {
                                premultiplied,
                                swap_rb,
                                opacity,
                            };
                            let (src, canvas) = (&src[..n * 4], &canvas[..n * 4]);
                            let mut fast = canvas.to_vec();
                            kernel(&mut fast, src, blend);
                            let mut slow = canvas.to_vec();
                            let pixels = slow.chunks_exact_mut(4).zip(src.chunks_exact(4));
                            for (d, s) in pixels {
                                let o = u16::from(opacity);
                                match (premultiplied, swap_rb) {
                                    (false, false) => blend_pixel::<false, false, false>(d, s, o),
                                    (false, true) => blend_pixel::<false, false, true>(d, s, o),
                                    (true, false) => blend_pixel::<true, false, false>(d, s, o),
                                    (true, true) => blend_pixel::<true, false, true>(d, s, o),
                                }
                            }
                            assert_eq!(fast, slow, "{name} kernel, {n} pixels, {blend:?}");
                        }
                    }
                }
            }
        }
    }
}
