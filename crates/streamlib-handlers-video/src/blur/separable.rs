//! The separable blur itself: a vertical pass into one `u16` row, then a horizontal pass out
//! of it, row by row, bands of rows in parallel.
//!
//! Per output row, the vertical pass sums `2r + 1` whole source rows (contiguous, so it
//! vectorises as is) into a Q7 row that has `r` pixels of margin on each side; the margins are
//! filled with the edge pixels (replicate border), and the horizontal pass then sums the row
//! shifted by `±k * channels` elements, again contiguous, with no edge cases. The intermediate
//! is a single row (15 KiB for 1920 RGBA pixels): it never leaves L1, and the `2r + 1` source
//! rows being read (100 KiB at σ = 2) stay in L2 as the window slides down.
//!
//! The passes are defined lane by lane here ([`vertical_lane`], [`horizontal_lane`]); on x86-64
//! `simd.rs` computes the same thing 8 (SSE2) or 16 (AVX2, detected at run time) lanes at a
//! time, bit for bit, and elsewhere the lane functions run as they are.

use std::fmt;
use std::ops::Range;

use rayon::prelude::*;

use super::kernel::{FixedWeights, GaussianKernel, MAX_RADIUS};

/// Taps of the largest kernel.
const MAX_TAPS: usize = 2 * MAX_RADIUS as usize + 1;

/// Reusable intermediate rows for [`blur_frame`]: one padded `u16` row per band.
///
/// Sized on first use for a frame width, channel count, radius and band count, and reused
/// while those stay the same or shrink, so steady-state blurring allocates nothing.
#[derive(Clone, Default)]
pub struct BlurScratch {
    rows: Vec<Vec<u16>>,
}

impl fmt::Debug for BlurScratch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlurScratch")
            .field("rows", &self.rows.len())
            .field("row_len", &self.rows.first().map_or(0, Vec::len))
            .finish()
    }
}

impl BlurScratch {
    /// Empty; grows on first use.
    pub fn new() -> Self {
        Self::default()
    }

    /// Allocates now what blurring `width`-pixel rows of `channels` channels with `kernel` in
    /// `bands` bands needs, so that the first frame does not.
    pub fn reserve(&mut self, width: u32, channels: usize, kernel: &GaussianKernel, bands: usize) {
        let len = padded_row_len(width as usize, channels, kernel.radius() as usize);
        self.rows_for(len, bands.max(1));
    }

    /// The first `bands` rows, each at least `len` long.
    fn rows_for(&mut self, len: usize, bands: usize) -> &mut [Vec<u16>] {
        if self.rows.len() < bands {
            self.rows.resize_with(bands, Vec::new);
        }
        let rows = &mut self.rows[..bands];
        for row in rows.iter_mut() {
            if row.len() < len {
                row.resize(len, 0);
            }
        }
        rows
    }
}

fn padded_row_len(width: usize, channels: usize, radius: usize) -> usize {
    (width + 2 * radius) * channels
}

/// The shape of one blur: sizes in elements, strides in bytes.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    /// Bytes of pixels per row (`width * channels`).
    row_bytes: usize,
    height: usize,
    channels: usize,
    src_stride: usize,
    dst_stride: usize,
}

/// Blurs `src` into `dst` with `kernel`: a separable Gaussian, edges clamped (replicate
/// border), every channel blurred alike (alpha included).
///
/// Both buffers hold `height` rows of `width` pixels of `channels` interleaved bytes, rows
/// `stride` bytes apart (the last row may omit its padding). `scratch` holds the intermediate
/// rows between calls. `bands` splits the rows into that many bands blurred in parallel on
/// rayon's current pool; 1 runs on the calling thread only.
///
/// The result is within ±1 of an exact `f64` blur with the same weights rounded once.
///
/// # Panics
/// If `channels` is 0, `stride` is shorter than `width * channels`, or either buffer is too
/// small for the geometry.
#[allow(
    clippy::too_many_arguments,
    reason = "the kernel entry point benches and tests call; a struct would only rename them"
)]
pub fn blur_frame(
    src: &[u8],
    dst: &mut [u8],
    width: u32,
    height: u32,
    stride: usize,
    channels: usize,
    kernel: &GaussianKernel,
    scratch: &mut BlurScratch,
    bands: usize,
) {
    blur_strided(
        src, stride, dst, stride, width, height, channels, kernel, scratch, bands,
    );
}

/// [`blur_frame`] with separate source and destination strides (the handler reads padded
/// frames and writes tight ones).
#[allow(
    clippy::too_many_arguments,
    reason = "blur_frame's arguments plus the second stride"
)]
pub(crate) fn blur_strided(
    src: &[u8],
    src_stride: usize,
    dst: &mut [u8],
    dst_stride: usize,
    width: u32,
    height: u32,
    channels: usize,
    kernel: &GaussianKernel,
    scratch: &mut BlurScratch,
    bands: usize,
) {
    assert!(channels > 0, "blur: channels must be at least 1");
    let (width, height) = (width as usize, height as usize);
    if width == 0 || height == 0 {
        return;
    }
    let row_bytes = width * channels;
    let needed = |stride: usize| (height - 1) * stride + row_bytes;
    assert!(
        src_stride >= row_bytes && dst_stride >= row_bytes,
        "blur: strides {src_stride} and {dst_stride} are shorter than a row ({row_bytes} bytes)"
    );
    assert!(
        src.len() >= needed(src_stride) && dst.len() >= needed(dst_stride),
        "blur: buffers of {} and {} bytes are too small for {height} rows of {row_bytes} bytes \
         (strides {src_stride} and {dst_stride})",
        src.len(),
        dst.len()
    );
    let geometry = Geometry {
        row_bytes,
        height,
        channels,
        src_stride,
        dst_stride,
    };
    let radius = kernel.radius() as usize;
    let dst = &mut dst[..needed(dst_stride)];
    let rows_per_band = height.div_ceil(bands.clamp(1, height));
    let bands = height.div_ceil(rows_per_band);
    let rows = scratch.rows_for(padded_row_len(width, channels, radius), bands);
    let weights = kernel.fixed();
    if bands == 1 {
        blur_rows(src, geometry, weights, 0..height, dst, &mut rows[0]);
        return;
    }
    dst.par_chunks_mut(rows_per_band * dst_stride)
        .zip(rows.par_iter_mut())
        .enumerate()
        .for_each(|(band, (dst, row))| {
            let start = band * rows_per_band;
            let end = (start + rows_per_band).min(height);
            blur_rows(src, geometry, weights, start..end, dst, row);
        });
}

/// Blurs output rows `ys` into `dst` (which starts at row `ys.start`), using `row` as the
/// intermediate.
fn blur_rows(
    src: &[u8],
    g: Geometry,
    weights: &FixedWeights,
    ys: Range<usize>,
    dst: &mut [u8],
    row: &mut [u16],
) {
    let radius = weights.radius();
    let margin = radius * g.channels;
    let row = &mut row[..g.row_bytes + 2 * margin];
    let mut taps: [&[u8]; MAX_TAPS] = [&[]; MAX_TAPS];
    let first = ys.start;
    for y in ys {
        for (k, tap) in taps[..2 * radius + 1].iter_mut().enumerate() {
            let sy = (y + k).saturating_sub(radius).min(g.height - 1);
            let start = sy * g.src_stride;
            *tap = &src[start..start + g.row_bytes];
        }
        let (left, rest) = row.split_at_mut(margin);
        let (middle, right) = rest.split_at_mut(g.row_bytes);
        vertical_pass(&taps[..2 * radius + 1], weights, middle);
        // Replicate the edge pixels into the margins.
        let (first_px, last_px) = (&middle[..g.channels], &middle[g.row_bytes - g.channels..]);
        for px in left.chunks_exact_mut(g.channels) {
            px.copy_from_slice(first_px);
        }
        for px in right.chunks_exact_mut(g.channels) {
            px.copy_from_slice(last_px);
        }
        let out = (y - first) * g.dst_stride;
        horizontal_pass(row, g.channels, weights, &mut dst[out..out + g.row_bytes]);
    }
}

/// `(a * b) >> 16`: SSE2's `pmulhuw`.
#[inline(always)]
fn mulhi(a: u16, b: u16) -> u16 {
    ((u32::from(a) * u32::from(b)) >> 16) as u16
}

/// Sums the taps (source rows, centre in the middle) into `out`, in Q7.
fn vertical_pass(taps: &[&[u8]], w: &FixedWeights, out: &mut [u16]) {
    #[cfg(target_arch = "x86_64")]
    super::simd::vertical_pass(taps, w, out);
    #[cfg(not(target_arch = "x86_64"))]
    for (x, o) in out.iter_mut().enumerate() {
        *o = vertical_lane(taps, w, x);
    }
}

/// Writes `out[x] = sum_j w_j * row[x + j * channels]` rounded to bytes; `row` carries the
/// `radius * channels` margins on each side.
fn horizontal_pass(row: &[u16], channels: usize, w: &FixedWeights, out: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    super::simd::horizontal_pass(row, channels, w, out);
    #[cfg(not(target_arch = "x86_64"))]
    for (x, o) in out.iter_mut().enumerate() {
        *o = horizontal_lane(row, channels, w, x);
    }
}

/// One lane of the vertical pass: the Q7 weighted sum of byte `x` of every tap. The SIMD
/// passes compute exactly this, many lanes at a time.
#[inline]
pub(super) fn vertical_lane(taps: &[&[u8]], w: &FixedWeights, x: usize) -> u16 {
    let radius = w.radius();
    w.weights
        .iter()
        .enumerate()
        .fold(w.vertical_bias, |acc, (k, &q)| {
            let sum = u16::from(taps[radius - k][x]) + u16::from(taps[radius + k][x]);
            acc.wrapping_add(mulhi(sum << 6, q))
        })
}

/// One byte of the horizontal pass, at output position `x` of the Q7 `row`.
#[inline]
pub(super) fn horizontal_lane(row: &[u16], channels: usize, w: &FixedWeights, x: usize) -> u8 {
    let centre = x + w.radius() * channels;
    let acc = w
        .weights
        .iter()
        .enumerate()
        .fold(w.horizontal_bias, |acc, (k, &q)| {
            let offset = k * channels;
            let sum = row[centre - offset].wrapping_add(row[centre + offset]);
            acc.wrapping_add(mulhi(sum, q))
        });
    (acc >> 8) as u8
}
