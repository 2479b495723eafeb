//! AVX2 versions of the conversion kernels, bit-exact with the scalar ones in `convert.rs`:
//! the same 16.16 fixed-point sums, computed exactly in 32-bit lanes.
//!
//! Each entry point converts the longest prefix of a row it handles in whole blocks and returns
//! how many pixels it did (0 where the CPU has no AVX2); the caller finishes the row with the
//! scalar code, which also covers the repeated edge pixels of odd sizes.
//!
//! RGB → YCbCr multiplies bytes by 16-bit coefficients with `vpmaddwd` (every coefficient fits
//! in an `i16`; the luma green weight is split in two halves that do), 8 pixels per vector;
//! YCbCr → RGB works in 16-bit lanes, 16 pixels per vector, with `vpmulhuw` (the scalar
//! `Matrix::rgb` computes the same integers). Saturating packs do the `clamp(0, 255)`.

use super::{Isa, Matrix};

/// RGB (byte offsets `order`) to UYVY: returns the pixels done, a multiple of 32.
pub(super) fn rgb_row_to_uyvy(
    isa: Isa,
    m: &Matrix,
    order: [usize; 3],
    src: &[u8],
    dst: &mut [u8],
    width: usize,
) -> usize {
    let n = width / 32 * 32;
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx2 && n > 0 && src.len() >= n * 4 && dst.len() >= n * 2 {
        // SAFETY: `Isa::Avx2` comes only from `Isa::detect`, which found AVX2 on this CPU.
        unsafe { avx2::rgb_to_uyvy(m, order, &src[..n * 4], &mut dst[..n * 2]) };
        return n;
    }
    let _ = (isa, m, order, src, dst);
    0
}

/// One row of RGB to Y: returns the pixels done, a multiple of 32.
pub(super) fn rgb_row_to_luma(
    isa: Isa,
    m: &Matrix,
    order: [usize; 3],
    src: &[u8],
    dst: &mut [u8],
    width: usize,
) -> usize {
    let n = width / 32 * 32;
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx2 && n > 0 && src.len() >= n * 4 && dst.len() >= n {
        // SAFETY: AVX2 was detected (see `rgb_row_to_uyvy`).
        unsafe { avx2::rgb_to_luma(m, order, &src[..n * 4], &mut dst[..n]) };
        return n;
    }
    let _ = (isa, m, order, src, dst);
    0
}

/// Two rows of RGB (`s0`, `s1`) to one row of Cb and Cr from 2×2 blocks: returns the source
/// pixels done, a multiple of 32 (half as many chroma samples).
pub(super) fn rgb_rows_to_chroma(
    isa: Isa,
    m: &Matrix,
    order: [usize; 3],
    [s0, s1]: [&[u8]; 2],
    [u, v]: [&mut [u8]; 2],
    width: usize,
) -> usize {
    let n = width / 32 * 32;
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx2
        && n > 0
        && s0.len() >= n * 4
        && s1.len() >= n * 4
        && u.len() >= n / 2
        && v.len() >= n / 2
    {
        // SAFETY: AVX2 was detected (see `rgb_row_to_uyvy`).
        unsafe {
            avx2::rgb_to_chroma(
                m,
                order,
                [&s0[..n * 4], &s1[..n * 4]],
                [&mut u[..n / 2], &mut v[..n / 2]],
            );
        }
        return n;
    }
    let _ = (isa, m, order, s0, s1, u, v);
    0
}

/// Where a row's chroma comes from for [`yuv_row_to_rgb`].
#[derive(Debug, Clone, Copy)]
#[cfg_attr(
    not(target_arch = "x86_64"),
    allow(dead_code, reason = "read by the x86-64 kernels")
)]
pub(super) enum YuvRow<'a> {
    /// Packed U Y0 V Y1.
    Uyvy(&'a [u8]),
    /// A luma row and its U and V rows (I420).
    Planar(&'a [u8], &'a [u8], &'a [u8]),
    /// A luma row and its interleaved UV row (NV12).
    SemiPlanar(&'a [u8], &'a [u8]),
}

/// One row of YCbCr to RGB (byte offsets `to`, alpha 255): returns the pixels done, a multiple
/// of 32.
pub(super) fn yuv_row_to_rgb(
    isa: Isa,
    m: &Matrix,
    src: YuvRow<'_>,
    dst: &mut [u8],
    to: [usize; 3],
    width: usize,
) -> usize {
    let n = width / 32 * 32;
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx2 && n > 0 && dst.len() >= n * 4 && matches!(to, [0, 1, 2] | [2, 1, 0]) {
        let (dst, bgr) = (&mut dst[..n * 4], to == [2, 1, 0]);
        match src {
            YuvRow::Uyvy(s) if s.len() >= n * 2 => {
                // SAFETY: AVX2 was detected (see `rgb_row_to_uyvy`).
                unsafe { avx2::uyvy_to_rgb(m, &s[..n * 2], dst, bgr) };
                return n;
            }
            YuvRow::Planar(y, u, v) if y.len() >= n && u.len() >= n / 2 && v.len() >= n / 2 => {
                // SAFETY: AVX2 was detected (see `rgb_row_to_uyvy`).
                unsafe { avx2::planar_to_rgb(m, [&y[..n], &u[..n / 2], &v[..n / 2]], dst, bgr) };
                return n;
            }
            YuvRow::SemiPlanar(y, uv) if y.len() >= n && uv.len() >= n => {
                // SAFETY: AVX2 was detected (see `rgb_row_to_uyvy`).
                unsafe { avx2::nv12_to_rgb(m, [&y[..n], &uv[..n]], dst, bgr) };
                return n;
            }
            _ => {}
        }
    }
    let _ = (isa, m, src, dst, to);
    0
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::super::{Matrix, SHIFT};

    /// Coefficients of the forward matrix as `vpmaddwd` operands.
    struct Forward {
        /// Per pixel `[r, g, g, b]` × `[y_r, y_g/2, y_g - y_g/2, y_b]`.
        luma: __m256i,
        /// Per pixel pair sum `[r, g, b, 0]` × `[cb_r, cb_g, cb_b, 0]`.
        cb: __m256i,
        cr: __m256i,
        /// `pshufb` masks: bytes `[r, g, g, b]` per pixel; `[r0, r1, g0, g1, b0, b1, 0, 0]` per
        /// pair.
        luma_bytes: __m256i,
        pair_bytes: __m256i,
    }

    /// `c` as four i16 repeated across the vector (every coefficient fits; the SIMD-against-
    /// scalar test would see one that did not).
    #[target_feature(enable = "avx2")]
    fn i16x4(c: [i32; 4]) -> __m256i {
        let w = |i: usize| u64::from(c[i] as i16 as u16) << (16 * i);
        _mm256_set1_epi64x((w(0) | w(1) | w(2) | w(3)) as i64)
    }

    #[target_feature(enable = "avx2")]
    fn forward(m: &Matrix, [r, g, b]: [usize; 3]) -> Forward {
        let half = m.y[1] / 2;
        let mut luma_bytes = [0u8; 32];
        let mut pair_bytes = [0x80u8; 32];
        for lane in 0..2 {
            for p in 0..4 {
                let at = lane * 16 + p * 4;
                let px = (p * 4) as u8;
                luma_bytes[at..at + 4].copy_from_slice(&[
                    px + r as u8,
                    px + g as u8,
                    px + g as u8,
                    px + b as u8,
                ]);
            }
            for q in 0..2 {
                let at = lane * 16 + q * 8;
                let px = (q * 8) as u8;
                for (k, c) in [r, g, b].into_iter().enumerate() {
                    pair_bytes[at + 2 * k] = px + c as u8;
                    pair_bytes[at + 2 * k + 1] = px + 4 + c as u8;
                }
            }
        }
        Forward {
            luma: i16x4([m.y[0], half, m.y[1] - half, m.y[2]]),
            cb: i16x4([m.cb[0], m.cb[1], m.cb[2], 0]),
            cr: i16x4([m.cr[0], m.cr[1], m.cr[2], 0]),
            luma_bytes: bytes(&luma_bytes),
            pair_bytes: bytes(&pair_bytes),
        }
    }

    #[target_feature(enable = "avx2")]
    fn bytes(b: &[u8; 32]) -> __m256i {
        // SAFETY: `b` is 32 readable bytes; the load is unaligned.
        unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
    }

    /// Loads 32 bytes from the start of `s` (at least 32 long).
    #[target_feature(enable = "avx2")]
    fn load(s: &[u8]) -> __m256i {
        assert!(s.len() >= 32);
        // SAFETY: 32 bytes are readable (checked above); the load is unaligned.
        unsafe { _mm256_loadu_si256(s.as_ptr().cast()) }
    }

    /// Stores 32 bytes at the start of `d` (at least 32 long).
    #[target_feature(enable = "avx2")]
    fn store(d: &mut [u8], v: __m256i) {
        assert!(d.len() >= 32);
        // SAFETY: 32 bytes are writable (checked above); the store is unaligned.
        unsafe { _mm256_storeu_si256(d.as_mut_ptr().cast(), v) }
    }

    /// Weighted luma sums (no offset) of the 8 pixels in `px`, in pixel order.
    #[target_feature(enable = "avx2")]
    fn luma8(f: &Forward, px: __m256i) -> __m256i {
        let s = _mm256_shuffle_epi8(px, f.luma_bytes);
        let zero = _mm256_setzero_si256();
        let lo = _mm256_madd_epi16(_mm256_unpacklo_epi8(s, zero), f.luma);
        let hi = _mm256_madd_epi16(_mm256_unpackhi_epi8(s, zero), f.luma);
        _mm256_hadd_epi32(lo, hi)
    }

    /// `[r, g, b, 0]` sums of the 4 horizontal pairs in `px`, as i16.
    #[target_feature(enable = "avx2")]
    fn pair_sums(f: &Forward, px: __m256i) -> __m256i {
        _mm256_maddubs_epi16(_mm256_shuffle_epi8(px, f.pair_bytes), _mm256_set1_epi8(1))
    }

    /// Cb, Cr of the 4 pair (or block) sums in `sums`: per 128-bit lane `[cb0, cb1, cr0, cr1]`,
    /// rounded and shifted by `shift`.
    #[target_feature(enable = "avx2")]
    fn chroma4(f: &Forward, sums: __m256i, offset: __m256i, shift: __m128i) -> __m256i {
        let cb = _mm256_madd_epi16(sums, f.cb);
        let cr = _mm256_madd_epi16(sums, f.cr);
        _mm256_sra_epi32(_mm256_add_epi32(_mm256_hadd_epi32(cb, cr), offset), shift)
    }

    /// Packs four vectors of 8 i32 (each in lane order) to 32 saturated bytes in order.
    #[target_feature(enable = "avx2")]
    fn pack32(a: __m256i, b: __m256i, c: __m256i, d: __m256i) -> __m256i {
        let bytes = _mm256_packus_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
        _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
    }

    /// 32 Y bytes of the 32 pixels at `s[..128]`.
    #[target_feature(enable = "avx2")]
    fn luma32(f: &Forward, s: &[u8]) -> __m256i {
        let offset = _mm256_set1_epi32((16 << SHIFT) + (1 << (SHIFT - 1)));
        let y = |i: usize| {
            _mm256_srai_epi32::<16>(_mm256_add_epi32(luma8(f, load(&s[i * 32..])), offset))
        };
        pack32(y(0), y(1), y(2), y(3))
    }

    /// Cb, Cr of 16 pair or block sums (4 vectors of 4): 32 bytes, each dword
    /// `[cb(2i), cb(2i+1), cr(2i), cr(2i+1)]`.
    #[target_feature(enable = "avx2")]
    fn chroma16(f: &Forward, sums: [__m256i; 4], n: i32) -> __m256i {
        let offset = _mm256_set1_epi32(((128 * n) << SHIFT) + ((n << SHIFT) / 2));
        let shift = _mm_cvtsi32_si128((SHIFT + n.trailing_zeros()) as i32);
        let c = |i: usize| chroma4(f, sums[i], offset, shift);
        pack32(c(0), c(1), c(2), c(3))
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn rgb_to_uyvy(m: &Matrix, order: [usize; 3], src: &[u8], dst: &mut [u8]) {
        let f = forward(m, order);
        let uv_order = _mm256_setr_epi8(
            0, 2, 1, 3, 4, 6, 5, 7, 8, 10, 9, 11, 12, 14, 13, 15, 0, 2, 1, 3, 4, 6, 5, 7, 8, 10, 9,
            11, 12, 14, 13, 15,
        );
        for (s, d) in src.chunks_exact(128).zip(dst.chunks_exact_mut(64)) {
            let y = luma32(&f, s);
            let sums = [
                pair_sums(&f, load(s)),
                pair_sums(&f, load(&s[32..])),
                pair_sums(&f, load(&s[64..])),
                pair_sums(&f, load(&s[96..])),
            ];
            let uv = _mm256_shuffle_epi8(chroma16(&f, sums, 2), uv_order);
            let lo = _mm256_unpacklo_epi8(uv, y);
            let hi = _mm256_unpackhi_epi8(uv, y);
            store(d, _mm256_permute2x128_si256::<0x20>(lo, hi));
            store(&mut d[32..], _mm256_permute2x128_si256::<0x31>(lo, hi));
        }
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn rgb_to_luma(m: &Matrix, order: [usize; 3], src: &[u8], dst: &mut [u8]) {
        let f = forward(m, order);
        for (s, d) in src.chunks_exact(128).zip(dst.chunks_exact_mut(32)) {
            store(d, luma32(&f, s));
        }
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn rgb_to_chroma(
        m: &Matrix,
        order: [usize; 3],
        [s0, s1]: [&[u8]; 2],
        [u, v]: [&mut [u8]; 2],
    ) {
        let f = forward(m, order);
        let split = _mm256_setr_epi8(
            0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15, 0, 1, 4, 5, 8, 9, 12, 13, 2, 3,
            6, 7, 10, 11, 14, 15,
        );
        let blocks = s0
            .chunks_exact(128)
            .zip(s1.chunks_exact(128))
            .zip(u.chunks_exact_mut(16).zip(v.chunks_exact_mut(16)));
        for ((a, b), (u, v)) in blocks {
            // No closures through `array::map`: that generic function is compiled without AVX2,
            // so the closure would not be inlined and every vector would go through memory.
            let block = |at: usize| {
                _mm256_add_epi16(pair_sums(&f, load(&a[at..])), pair_sums(&f, load(&b[at..])))
            };
            let sums = [block(0), block(32), block(64), block(96)];
            // Per lane: 8 Cb then 8 Cr; then U0–7, U8–15, V0–7, V8–15.
            let c = _mm256_shuffle_epi8(chroma16(&f, sums, 4), split);
            let c = _mm256_permute4x64_epi64::<0b11_01_10_00>(c);
            store16(u, _mm256_castsi256_si128(c));
            store16(v, _mm256_extracti128_si256::<1>(c));
        }
    }

    /// Stores 16 bytes at the start of `d` (at least 16 long).
    #[target_feature(enable = "avx2")]
    fn store16(d: &mut [u8], v: __m128i) {
        assert!(d.len() >= 16);
        // SAFETY: 16 bytes are writable (checked above); the store is unaligned.
        unsafe { _mm_storeu_si128(d.as_mut_ptr().cast(), v) }
    }

    /// The inverse matrix in 16-bit lanes (see `Matrix::rgb`, whose integers these are). The
    /// offsets are moved onto the chroma terms (computed once per pixel pair), so that each
    /// channel is one signed add per pixel whose sum fits an i16 (or saturates above 255 · 64,
    /// which clamps to 255 all the same).
    struct Inverse {
        y: __m256i,
        r_v: __m256i,
        g_u: __m256i,
        g_v: __m256i,
        b_u: __m256i,
        /// The offsets of R, G, B.
        r_k: __m256i,
        g_k: __m256i,
        b_k: __m256i,
        /// B G R output instead of R G B.
        bgr: bool,
    }

    #[target_feature(enable = "avx2")]
    fn inverse(m: &Matrix, bgr: bool) -> Inverse {
        let w = m.inverse.map(|w| _mm256_set1_epi16(w as i16));
        let [r_off, g_off, b_off] = m.inverse_offset.map(i32::from);
        let k = |v: i32| _mm256_set1_epi16(v as i16);
        Inverse {
            y: w[0],
            r_v: w[1],
            g_u: w[2],
            g_v: w[3],
            b_u: w[4],
            r_k: k(r_off),
            g_k: k(g_off),
            b_k: k(b_off),
            bgr,
        }
    }

    /// `vpmulhuw`: the high halves of the 16-bit products. Written as the instruction because
    /// LLVM lowers `_mm256_mulhi_epu16` here as a 32-bit multiply in two halves and a pack
    /// (1.5× slower for the whole kernel).
    #[target_feature(enable = "avx2")]
    fn mulhi(a: __m256i, b: __m256i) -> __m256i {
        let high: __m256i;
        // SAFETY: one AVX2 instruction (AVX2 is enabled here) on registers, no memory.
        unsafe {
            std::arch::asm!(
                "vpmulhuw {high}, {a}, {b}",
                high = lateout(ymm_reg) high,
                a = in(ymm_reg) a,
                b = in(ymm_reg) b,
                options(pure, nomem, nostack),
            );
        }
        high
    }

    /// The R, G and B chroma terms (offsets included) of Cb, Cr given as `x << 8`.
    #[target_feature(enable = "avx2")]
    fn chroma_terms(c: &Inverse, u: __m256i, v: __m256i) -> [__m256i; 3] {
        let g = _mm256_add_epi16(mulhi(u, c.g_u), mulhi(v, c.g_v));
        [
            _mm256_sub_epi16(mulhi(v, c.r_v), c.r_k),
            _mm256_sub_epi16(c.g_k, g),
            _mm256_sub_epi16(mulhi(u, c.b_u), c.b_k),
        ]
    }

    /// R, G, B (before the clamp) of 16 pixels from Y as `y << 8` and their chroma terms.
    #[target_feature(enable = "avx2")]
    fn channels(c: &Inverse, y: __m256i, terms: [__m256i; 3]) -> [__m256i; 3] {
        // At most 19 002: a positive i16.
        let y = mulhi(y, c.y);
        let channel = |t| _mm256_srai_epi16::<6>(_mm256_adds_epi16(y, t));
        [channel(terms[0]), channel(terms[1]), channel(terms[2])]
    }

    /// Writes 32 pixels to `d[..128]` from their R, G, B bytes, pixels 0–3, 8–11, 16–19, 24–27
    /// in lane 0 and 4–7, 12–15, 20–23, 28–31 in lane 1: the order in which interleaving
    /// within lanes leaves each 32-byte store 8 consecutive pixels.
    #[target_feature(enable = "avx2")]
    fn store_bytes(c: &Inverse, [r, g, bl]: [__m256i; 3], d: &mut [u8]) {
        let (c0, c2) = if c.bgr { (bl, r) } else { (r, bl) };
        let alpha = _mm256_set1_epi8(-1);
        let (lo01, hi01) = (_mm256_unpacklo_epi8(c0, g), _mm256_unpackhi_epi8(c0, g));
        let (lo2a, hi2a) = (
            _mm256_unpacklo_epi8(c2, alpha),
            _mm256_unpackhi_epi8(c2, alpha),
        );
        store(d, _mm256_unpacklo_epi16(lo01, lo2a));
        store(&mut d[32..], _mm256_unpackhi_epi16(lo01, lo2a));
        store(&mut d[64..], _mm256_unpacklo_epi16(hi01, hi2a));
        store(&mut d[96..], _mm256_unpackhi_epi16(hi01, hi2a));
    }

    /// The pixel pairs (and chroma samples) each 16-bit lane of `rgb32`'s inputs holds: pairs
    /// 0, 1, 4, 5, 8, 9, 12, 13 in lane 0, the others in lane 1 (see `store_bytes`).
    const PAIRS: [usize; 16] = [0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15];

    /// Regroups 32 bytes of pixel pairs (two bytes each) in `PAIRS` order.
    #[target_feature(enable = "avx2")]
    fn pairs_order(x: __m256i) -> __m256i {
        _mm256_permutevar8x32_epi32(x, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7))
    }

    /// 32 pixels from 32 Y bytes and their 16 Cb, Cr samples as `x << 8` in 16-bit lanes, all
    /// in `PAIRS` order, to 128 output bytes. Each 16-bit lane of the Y bytes is one pixel
    /// pair, lined up with its chroma: the even and the odd pixels are computed apart with the
    /// same chroma terms (computed once per pair, never repeated) and interleaved again as
    /// bytes.
    #[target_feature(enable = "avx2")]
    fn rgb32(c: &Inverse, y: __m256i, u: __m256i, v: __m256i, d: &mut [u8]) {
        let terms = chroma_terms(c, u, v);
        let even = channels(c, _mm256_slli_epi16::<8>(y), terms);
        let odd = channels(
            c,
            _mm256_and_si256(y, _mm256_set1_epi16(0xff00u16 as i16)),
            terms,
        );
        // Per lane [8 even, 8 odd] bytes of a channel, then in pixel order.
        let order = _mm256_setr_epi8(
            0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15, 0, 8, 1, 9, 2, 10, 3, 11, 4, 12,
            5, 13, 6, 14, 7, 15,
        );
        let pack = |i: usize| _mm256_shuffle_epi8(_mm256_packus_epi16(even[i], odd[i]), order);
        store_bytes(c, [pack(0), pack(1), pack(2)], d);
    }

    /// 16 bytes at the start of `s` (at least 16 long).
    #[target_feature(enable = "avx2")]
    fn load16(s: &[u8]) -> __m128i {
        assert!(s.len() >= 16);
        // SAFETY: 16 bytes are readable (checked above); the load is unaligned.
        unsafe { _mm_loadu_si128(s.as_ptr().cast()) }
    }

    /// A `pshufb` mask that puts byte `at(pixel)` of each lane's source into the high byte of
    /// pixel `pixel`'s 16-bit lane (pixels 0–7 in lane 0, 8–15 in lane 1) and zero below it.
    fn high_bytes(at: impl Fn(usize) -> usize) -> [u8; 32] {
        let mut mask = [0x80u8; 32];
        for pixel in 0..16 {
            mask[pixel * 2 + 1] = at(pixel) as u8;
        }
        mask
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn uyvy_to_rgb(m: &Matrix, src: &[u8], dst: &mut [u8], bgr: bool) {
        let c = inverse(m, bgr);
        // Each 16-bit lane of UYVY is [U or V, Y]: Y << 8 is the lane with its low byte cleared.
        let y_mask = _mm256_set1_epi16(0xff00u16 as i16);
        // Pixel p of a lane (4 pairs) takes U from byte 4·(p / 2) of the lane, V from the next
        // but one.
        let u_at = bytes(&high_bytes(|p| (p % 8) / 2 * 4));
        let v_at = bytes(&high_bytes(|p| (p % 8) / 2 * 4 + 2));
        for (s, d) in src.chunks_exact(32).zip(dst.chunks_exact_mut(64)) {
            let x = load(s);
            let (u, v) = (_mm256_shuffle_epi8(x, u_at), _mm256_shuffle_epi8(x, v_at));
            let [r, g, b] = channels(&c, _mm256_and_si256(x, y_mask), chroma_terms(&c, u, v));
            let (c0, c2) = if c.bgr { (b, r) } else { (r, b) };
            // Per lane [c0 × 8, g × 8] and [c2 × 8, 255 × 8] (the pack clamps to 0–255), then
            // interleaved to c0 g c2 255: pixels 0–3 | 8–11 and 4–7 | 12–15.
            let p01 = _mm256_packus_epi16(c0, g);
            let p2a = _mm256_packus_epi16(c2, _mm256_set1_epi16(255));
            let (s, t) = (
                _mm256_unpacklo_epi8(p01, p2a),
                _mm256_unpackhi_epi8(p01, p2a),
            );
            let (lo, hi) = (_mm256_unpacklo_epi8(s, t), _mm256_unpackhi_epi8(s, t));
            store(d, _mm256_permute2x128_si256::<0x20>(lo, hi));
            store(&mut d[32..], _mm256_permute2x128_si256::<0x31>(lo, hi));
        }
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn planar_to_rgb(m: &Matrix, [y, u, v]: [&[u8]; 3], dst: &mut [u8], bgr: bool) {
        let c = inverse(m, bgr);
        // 16 chroma bytes in both lanes, each to the high byte of its pair's lane.
        let at = bytes(&high_bytes(|lane| PAIRS[lane]));
        let chroma = |s: &[u8]| _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(load16(s)), at);
        let pixels = y
            .chunks_exact(32)
            .zip(u.chunks_exact(16).zip(v.chunks_exact(16)))
            .zip(dst.chunks_exact_mut(128));
        for ((y, (u, v)), d) in pixels {
            rgb32(&c, pairs_order(load(y)), chroma(u), chroma(v), d);
        }
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn nv12_to_rgb(m: &Matrix, [y, uv]: [&[u8]; 2], dst: &mut [u8], bgr: bool) {
        let c = inverse(m, bgr);
        // Each 16-bit lane of the UV row is [U, V]: V << 8 is the lane with its low byte
        // cleared, U << 8 the lane shifted.
        let v_mask = _mm256_set1_epi16(0xff00u16 as i16);
        let pixels = y
            .chunks_exact(32)
            .zip(uv.chunks_exact(32))
            .zip(dst.chunks_exact_mut(128));
        for ((y, uv), d) in pixels {
            let uv = pairs_order(load(uv));
            let (u, v) = (_mm256_slli_epi16::<8>(uv), _mm256_and_si256(uv, v_mask));
            rgb32(&c, pairs_order(load(y)), u, v, d);
        }
    }
}
