//! `Convert`: pixel format conversion between RGB and the YCbCr formats video I/O carries
//! (UYVY for SMPTE ST 2110-20 4:2:2, I420 for codecs), BT.709 limited range.

use rayon::prelude::*;
use streamlib_ports::{
    Caps, Follow, FrameLayout, FramePool, HandlerError, InputPort, InputRef, MemoryCaps,
    OutputPort, OutputRef, PixelFormat, Ports, ProcessContext, StreamHandler, VideoCaps,
    VideoFrame,
};

use crate::VideoError;

mod simd;

use simd::YuvRow;

const HANDLER: &str = "convert";
const POOL_INITIAL: usize = 4;
const POOL_MAX: usize = 8;

/// Fixed-point precision of the matrix coefficients.
const SHIFT: u32 = 16;
const ONE: f64 = (1u32 << SHIFT) as f64;
/// The inverse matrix's products carry 6 fractional bits (they fit 16-bit lanes) ...
const Q6: f64 = 64.0;
/// ... from `x · w / 256` with `w` = weight · 64 · 256.
const Q6_WEIGHT: f64 = Q6 * 256.0;

/// BT.709 luma weights.
const KR: f64 = 0.2126;
const KB: f64 = 0.0722;
const KG: f64 = 1.0 - KR - KB;

/// RGB (full range) ↔ YCbCr (limited range) in 16.16 fixed point.
#[derive(Debug, Clone, Copy)]
struct Matrix {
    y: [i32; 3],
    cb: [i32; 3],
    cr: [i32; 3],
    /// YCbCr → RGB: weights `w` of `x · w / 256` taken as `((x << 8) · w) >> 16` (what AVX2's
    /// `vpmulhuw` does in 16-bit lanes), products with 6 fractional bits: Y (255/219), Cr in R,
    /// Cb and Cr in G, Cb in B.
    inverse: [u16; 5],
    /// Per channel the offset the weighted sums lose (the −16 of Y, the −128 of Cb and Cr) with
    /// the rounding of the final `>> 6`: subtracted for R and B, added for G.
    inverse_offset: [u16; 3],
}

fn q(x: f64) -> i32 {
    (x * ONE).round() as i32
}

impl Matrix {
    fn bt709() -> Self {
        let (ys, cs) = (219.0 / 255.0, 224.0 / 255.0);
        let (db, dr) = (2.0 * (1.0 - KB), 2.0 * (1.0 - KR));
        let y_scale = 255.0 / 219.0;
        let r_cr = 255.0 / 224.0 * dr;
        let (g_cb, g_cr) = (255.0 / 224.0 * db * KB / KG, 255.0 / 224.0 * dr * KR / KG);
        let b_cb = 255.0 / 224.0 * db;
        Self {
            y: [q(ys * KR), q(ys * KG), q(ys * KB)],
            cb: [q(-cs * KR / db), q(-cs * KG / db), q(cs * (1.0 - KB) / db)],
            cr: [q(cs * (1.0 - KR) / dr), q(-cs * KG / dr), q(-cs * KB / dr)],
            inverse: [y_scale, r_cr, g_cb, g_cr, b_cb].map(|w| (w * Q6_WEIGHT).round() as u16),
            inverse_offset: [
                (16.0 * y_scale + 128.0 * r_cr) * Q6 - 0.5 * Q6,
                (128.0 * (g_cb + g_cr) - 16.0 * y_scale) * Q6 + 0.5 * Q6,
                (16.0 * y_scale + 128.0 * b_cb) * Q6 - 0.5 * Q6,
            ]
            .map(|o| o.round() as u16),
        }
    }

    /// Y of one pixel, rounded.
    #[inline]
    fn luma(&self, [r, g, b]: [i32; 3]) -> u8 {
        let v = (16 << SHIFT) + self.y[0] * r + self.y[1] * g + self.y[2] * b + (1 << (SHIFT - 1));
        (v >> SHIFT).clamp(0, 255) as u8
    }

    /// Cb and Cr of the sum of `n` pixels (`n` = 2 or 4), each rounded.
    #[inline]
    fn chroma(&self, [r, g, b]: [i32; 3], n: i32) -> (u8, u8) {
        let round = (n << SHIFT) / 2;
        let cb = ((128 * n) << SHIFT) + self.cb[0] * r + self.cb[1] * g + self.cb[2] * b + round;
        let cr = ((128 * n) << SHIFT) + self.cr[0] * r + self.cr[1] * g + self.cr[2] * b + round;
        // Both sums are positive (the 128·n offset exceeds the largest negative term), so
        // a shift divides by n = 2 or 4 exactly as `/ n` after `>> SHIFT` would.
        let shift = SHIFT + n.trailing_zeros();
        (
            (cb >> shift).clamp(0, 255) as u8,
            (cr >> shift).clamp(0, 255) as u8,
        )
    }

    /// RGB of one Y with its pixel's Cb, Cr, rounded (within 0.07 of the exact matrix before
    /// rounding; the AVX2 kernel computes the same integers).
    #[inline]
    fn rgb(&self, y: u8, cb: u8, cr: u8) -> [u8; 3] {
        let [wy, wr, wgb, wgr, wb] = self.inverse.map(u32::from);
        let [or, og, ob] = self.inverse_offset.map(i32::from);
        // The high half of a 16 × 16-bit product: below 2^16.
        let mul = |x: u8, w: u32| (((u32::from(x) << 8) * w) >> 16) as i32;
        let y = mul(y, wy);
        let clamp = |v: i32| (v >> 6).clamp(0, 255) as u8;
        [
            clamp(y + mul(cr, wr) - or),
            clamp(y + og - mul(cb, wgb) - mul(cr, wgr)),
            clamp(y + mul(cb, wb) - ob),
        ]
    }
}

/// The byte order of an RGB input or output.
fn rgb_order(format: PixelFormat) -> Option<[usize; 3]> {
    match format {
        PixelFormat::Rgba8 => Some([0, 1, 2]),
        PixelFormat::Bgra8 => Some([2, 1, 0]),
        _ => None,
    }
}

/// Converts frames to one pixel format: `Rgba8`/`Bgra8` to `Uyvy` (4:2:2, chroma from each pair
/// of pixels), `I420` (4:2:0, from each 2×2 block) or the other RGB order, and `Uyvy`/`I420`
/// back to `Rgba8`/`Bgra8` (alpha 255). YCbCr is BT.709 limited range (Y 16–235, Cb/Cr 16–240),
/// what SMPTE ST 2110-20's `colorimetry=BT709` and HD codecs expect; RGB is full range. Alpha is
/// not carried into YCbCr (straight colours are converted as they are).
///
/// A frame already in the target format is passed on by reference, not copied. Output frames
/// come from the handler's pool (re-created when the size changes); nothing is allocated per
/// frame. With a stream `concurrency_limit` of `n`, RGB↔UYVY and RGB↔RGB rows are converted
/// in `n` bands in parallel; the I420 paths run on one thread.
#[derive(Debug)]
pub struct Convert {
    target: PixelFormat,
    matrix: Matrix,
    input: InputPort<VideoFrame>,
    output: OutputPort<VideoFrame>,
    pool: Option<FramePool>,
}

impl Convert {
    /// A converter to `target` (`Rgba8`, `Bgra8`, `Uyvy` or `I420`).
    pub fn new(target: PixelFormat) -> Result<Self, VideoError> {
        if !matches!(
            target,
            PixelFormat::Rgba8 | PixelFormat::Bgra8 | PixelFormat::Uyvy | PixelFormat::I420
        ) {
            return Err(VideoError::UnsupportedFormat {
                handler: HANDLER,
                format: target,
                supported: "rgba8, bgra8, uyvy, i420 (as targets)",
            });
        }
        // Caps: what it converts from (and the target itself, passed on), to the target at
        // the input's size and rate.
        let input = InputPort::new("video", MemoryCaps::CPU).with_format(Caps::Video(
            VideoCaps::any().with_formats(Self::sources(target)),
        ));
        let output = OutputPort::new("video", MemoryCaps::CPU)
            .with_format(Caps::Video(VideoCaps::any().with_formats(&[target])));
        output.follows(&input, Follow::SIZE_RATE);
        // Frames already in the target format go through by reference: what holds them
        // downstream holds frames of the upstream pool.
        input.forwards_to(&output);
        Ok(Self {
            target,
            matrix: Matrix::bt709(),
            input,
            output,
            pool: None,
        })
    }

    /// The formats it converts to `target` from, `target` included (passed on as it is):
    /// RGB to anything; UYVY, I420 and NV12 to RGB only.
    pub fn sources(target: PixelFormat) -> &'static [PixelFormat] {
        const ALL: [PixelFormat; 5] = [
            PixelFormat::Rgba8,
            PixelFormat::Bgra8,
            PixelFormat::Uyvy,
            PixelFormat::I420,
            PixelFormat::Nv12,
        ];
        match target {
            PixelFormat::Uyvy => &[PixelFormat::Rgba8, PixelFormat::Bgra8, PixelFormat::Uyvy],
            PixelFormat::I420 => &[PixelFormat::Rgba8, PixelFormat::Bgra8, PixelFormat::I420],
            _ => &ALL,
        }
    }

    /// The `video` input.
    pub fn input(&self) -> InputRef<VideoFrame> {
        self.input.handle()
    }

    /// The `video` output.
    pub fn output(&self) -> OutputRef<VideoFrame> {
        self.output.handle()
    }

    /// Frames skipped because every output buffer was still held downstream.
    pub fn frames_skipped(&self) -> u64 {
        self.output.pool_counters().skipped_pool_empty
    }

    /// Converts `frame` and writes the result.
    fn convert(&mut self, frame: &VideoFrame, bands: usize) -> Result<(), VideoError> {
        let from = frame.format();
        if from == self.target {
            self.output.write(frame.clone());
            return Ok(());
        }
        let src = frame
            .cpu_bytes()
            .ok_or(VideoError::NotInCpuMemory { handler: HANDLER })?;
        let unsupported = || VideoError::UnsupportedFormat {
            handler: HANDLER,
            format: from,
            supported: "rgba8, bgra8 (to any target); uyvy, i420, nv12 (to rgba8, bgra8)",
        };
        let (width, height) = (frame.width(), frame.height());
        let layout =
            FrameLayout::new(width, height, self.target).map_err(|source| VideoError::Frame {
                handler: HANDLER,
                source,
            })?;
        let pool = match self.pool.take() {
            Some(pool) if pool.layout() == layout => pool,
            // Sized from what the output's readers can hold.
            _ => FramePool::for_output(HANDLER, layout, POOL_INITIAL, POOL_MAX, &self.output)
                .map_err(|source| VideoError::Pool {
                    handler: HANDLER,
                    source,
                })?,
        };
        let pool = self.pool.insert(pool);
        // An empty pool skips this frame (counted in the stats); readers keep the last one.
        let Some(mut out) = pool.acquire_for(&self.output) else {
            return Ok(());
        };
        let geometry = Geometry {
            width: width as usize,
            height: height as usize,
            src_stride: frame.stride() as usize,
            dst_stride: layout.stride() as usize,
        };
        let m = self.matrix;
        let isa = Isa::detect();
        match (rgb_order(from), self.target) {
            (Some(order), PixelFormat::Uyvy) => {
                rows_in_bands(&mut out, geometry.dst_stride, height, 1, bands, |y, row| {
                    rgb_row_to_uyvy(
                        &m,
                        isa,
                        order,
                        &src[y * geometry.src_stride..],
                        row,
                        geometry.width,
                    );
                });
            }
            (Some(order), PixelFormat::I420) => {
                rgb_to_i420(&m, isa, order, src, &mut out, geometry);
            }
            (Some(from_order), target) => {
                let to = rgb_order(target).ok_or_else(unsupported)?;
                rows_in_bands(&mut out, geometry.dst_stride, height, 1, bands, |y, row| {
                    let s = &src[y * geometry.src_stride..];
                    for x in 0..geometry.width {
                        for c in 0..3 {
                            row[x * 4 + to[c]] = s[x * 4 + from_order[c]];
                        }
                        row[x * 4 + 3] = s[x * 4 + 3];
                    }
                });
            }
            (None, target) => {
                let to = rgb_order(target).ok_or_else(unsupported)?;
                match from {
                    PixelFormat::Uyvy => {
                        rows_in_bands(&mut out, geometry.dst_stride, height, 1, bands, |y, row| {
                            uyvy_row_to_rgb(
                                &m,
                                isa,
                                &src[y * geometry.src_stride..],
                                row,
                                to,
                                geometry.width,
                            );
                        });
                    }
                    PixelFormat::I420 => i420_to_rgb(&m, isa, src, &mut out, to, geometry),
                    // The UV plane shares the luma stride, which an odd width must exceed
                    // to hold its last U V pair.
                    PixelFormat::Nv12 if geometry.src_stride < geometry.width.div_ceil(2) * 2 => {
                        return Err(VideoError::InvalidSize {
                            handler: HANDLER,
                            width,
                            height,
                            reason: "an NV12 frame of odd width needs a stride of at least width + 1",
                        });
                    }
                    PixelFormat::Nv12 => nv12_to_rgb(&m, isa, src, &mut out, to, geometry),
                    _ => return Err(unsupported()),
                }
            }
        }
        let converted = pool
            .frame(out)
            .with_timing(
                frame.timestamp_ns(),
                frame.frame_number(),
                frame.clock_source_id(),
            )
            .with_alpha(frame.alpha());
        self.output.write(converted);
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
struct Geometry {
    width: usize,
    height: usize,
    src_stride: usize,
    dst_stride: usize,
}

/// Calls `row_fn(y, row)` for every output row, in `bands` parallel bands of whole rows
/// (`rows_per_unit` rows per unit of work kept together).
fn rows_in_bands(
    out: &mut [u8],
    stride: usize,
    height: u32,
    rows_per_unit: usize,
    bands: usize,
    row_fn: impl Fn(usize, &mut [u8]) + Sync,
) {
    let height = height as usize;
    let out = &mut out[..stride * height];
    if bands <= 1 || height < 2 {
        for (y, row) in out.chunks_mut(stride).enumerate() {
            row_fn(y, row);
        }
        return;
    }
    let per_band = height.div_ceil(bands).div_ceil(rows_per_unit) * rows_per_unit;
    out.par_chunks_mut(per_band * stride)
        .enumerate()
        .for_each(|(band, chunk)| {
            for (i, row) in chunk.chunks_mut(stride).enumerate() {
                row_fn(band * per_band + i, row);
            }
        });
}

#[inline]
fn pixel(src: &[u8], x: usize, order: [usize; 3]) -> [i32; 3] {
    let p = &src[x * 4..x * 4 + 4];
    [
        i32::from(p[order[0]]),
        i32::from(p[order[1]]),
        i32::from(p[order[2]]),
    ]
}

fn add(a: [i32; 3], b: [i32; 3]) -> [i32; 3] {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

/// Which kernels run: AVX2 where the CPU has it (checked at run time), else the scalar code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isa {
    /// Portable scalar code.
    Scalar,
    /// AVX2 (x86-64) for whole blocks of a row, the scalar code for the rest.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code, reason = "x86-64 only"))]
    Avx2,
}

impl Isa {
    /// What this CPU runs (`is_x86_feature_detected!` caches its answer).
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            return Isa::Avx2;
        }
        Isa::Scalar
    }
}

/// Converts a whole RGBA8 image (`src_stride` bytes per row) to UYVY (`dst_stride`), as
/// [`Convert`] does: for sources that render once in RGBA and serve UYVY.
pub(crate) fn rgba_to_uyvy(
    src: &[u8],
    src_stride: usize,
    dst: &mut [u8],
    dst_stride: usize,
    width: u32,
) {
    let m = Matrix::bt709();
    let isa = Isa::detect();
    for (s, d) in src.chunks(src_stride).zip(dst.chunks_mut(dst_stride)) {
        rgb_row_to_uyvy(&m, isa, [0, 1, 2], s, d, width as usize);
    }
}

/// One row of RGB to U Y0 V Y1 pairs; an odd last pixel pairs with itself.
fn rgb_row_to_uyvy(
    m: &Matrix,
    isa: Isa,
    order: [usize; 3],
    src: &[u8],
    dst: &mut [u8],
    width: usize,
) {
    // Whole blocks of 32 pixels in AVX2 (an even count, so pairs stay aligned), the rest here.
    let done = simd::rgb_row_to_uyvy(isa, m, order, src, dst, width);
    let (src, dst, width) = (&src[done * 4..], &mut dst[done * 2..], width - done);
    if width == 0 {
        return;
    }
    // The byte order as constants lets the compiler drop the index arithmetic and bounds
    // checks of the inner loop (4× faster than indexing through `order`).
    match order {
        [0, 1, 2] => row_to_uyvy::<0, 1, 2>(m, src, dst, width),
        [2, 1, 0] => row_to_uyvy::<2, 1, 0>(m, src, dst, width),
        _ => {
            for pair in 0..width.div_ceil(2) {
                let x0 = pair * 2;
                let x1 = (x0 + 1).min(width - 1);
                let (p0, p1) = (pixel(src, x0, order), pixel(src, x1, order));
                write_uyvy(m, p0, p1, &mut dst[pair * 4..pair * 4 + 4]);
            }
        }
    }
}

#[inline(always)]
fn write_uyvy(m: &Matrix, p0: [i32; 3], p1: [i32; 3], d: &mut [u8]) {
    let (cb, cr) = m.chroma(add(p0, p1), 2);
    d[0] = cb;
    d[1] = m.luma(p0);
    d[2] = cr;
    d[3] = m.luma(p1);
}

#[inline(always)]
fn row_to_uyvy<const R: usize, const G: usize, const B: usize>(
    m: &Matrix,
    src: &[u8],
    dst: &mut [u8],
    width: usize,
) {
    let pairs = width / 2;
    let at = |p: &[u8], o: usize| {
        [
            i32::from(p[o + R]),
            i32::from(p[o + G]),
            i32::from(p[o + B]),
        ]
    };
    for (s, d) in src[..pairs * 8]
        .chunks_exact(8)
        .zip(dst[..pairs * 4].chunks_exact_mut(4))
    {
        write_uyvy(m, at(s, 0), at(s, 4), d);
    }
    if width % 2 == 1 {
        let last = at(&src[(width - 1) * 4..width * 4], 0);
        write_uyvy(m, last, last, &mut dst[pairs * 4..pairs * 4 + 4]);
    }
}

/// Writes one output pixel: `rgb` in the byte order `to`, alpha 255.
#[inline(always)]
fn put_rgb(d: &mut [u8], rgb: [u8; 3], to: [usize; 3]) {
    for c in 0..3 {
        d[to[c]] = rgb[c];
    }
    d[3] = 255;
}

/// One row of U Y0 V Y1 pairs to RGB with alpha 255 in the byte order `to`.
fn uyvy_row_to_rgb(m: &Matrix, isa: Isa, src: &[u8], dst: &mut [u8], to: [usize; 3], width: usize) {
    // A multiple of 8 pixels (whole pairs) in AVX2, the rest here.
    let done = simd::yuv_row_to_rgb(isa, m, YuvRow::Uyvy(src), dst, to, width);
    let (src, dst) = (&src[done * 2..], &mut dst[done * 4..]);
    for x in 0..width - done {
        let pair = &src[(x / 2) * 4..(x / 2) * 4 + 4];
        let y = if x % 2 == 0 { pair[1] } else { pair[3] };
        put_rgb(&mut dst[x * 4..x * 4 + 4], m.rgb(y, pair[0], pair[2]), to);
    }
}

/// RGB to I420: Y per pixel, Cb/Cr per 2×2 block (edge pixels repeat at odd sizes).
fn rgb_to_i420(m: &Matrix, isa: Isa, order: [usize; 3], src: &[u8], out: &mut [u8], g: Geometry) {
    let (cw, ch, cs) = (
        g.width.div_ceil(2),
        g.height.div_ceil(2),
        g.dst_stride.div_ceil(2),
    );
    let (luma, rest) = out.split_at_mut(g.dst_stride * g.height);
    let (u, v) = rest.split_at_mut(cs * ch);
    for y in 0..g.height {
        let s = &src[y * g.src_stride..];
        let row = &mut luma[y * g.dst_stride..y * g.dst_stride + g.width];
        let done = simd::rgb_row_to_luma(isa, m, order, s, row, g.width);
        for (x, out) in row.iter_mut().enumerate().skip(done) {
            *out = m.luma(pixel(s, x, order));
        }
    }
    for cy in 0..ch {
        let (y0, y1) = (cy * 2, (cy * 2 + 1).min(g.height - 1));
        let (s0, s1) = (&src[y0 * g.src_stride..], &src[y1 * g.src_stride..]);
        let u = &mut u[cy * cs..cy * cs + cw];
        let v = &mut v[cy * cs..cy * cs + cw];
        // Whole blocks of 32 source columns (16 chroma samples) in AVX2, the rest here.
        let done = simd::rgb_rows_to_chroma(isa, m, order, [s0, s1], [&mut *u, &mut *v], g.width);
        for cx in done / 2..cw {
            let (x0, x1) = (cx * 2, (cx * 2 + 1).min(g.width - 1));
            let sum = add(
                add(pixel(s0, x0, order), pixel(s0, x1, order)),
                add(pixel(s1, x0, order), pixel(s1, x1, order)),
            );
            (u[cx], v[cx]) = m.chroma(sum, 4);
        }
    }
}

/// I420 to RGB with alpha 255.
fn i420_to_rgb(m: &Matrix, isa: Isa, src: &[u8], out: &mut [u8], to: [usize; 3], g: Geometry) {
    let (cs, ch) = (g.src_stride.div_ceil(2), g.height.div_ceil(2));
    let luma = &src[..g.src_stride * g.height];
    let u = &src[g.src_stride * g.height..];
    let v = &u[cs * ch..];
    for y in 0..g.height {
        let row = &mut out[y * g.dst_stride..];
        let (ys, cy) = (&luma[y * g.src_stride..], (y / 2) * cs);
        let planes = YuvRow::Planar(ys, &u[cy..], &v[cy..]);
        let done = simd::yuv_row_to_rgb(isa, m, planes, row, to, g.width);
        for x in done..g.width {
            let c = cy + x / 2;
            put_rgb(&mut row[x * 4..x * 4 + 4], m.rgb(ys[x], u[c], v[c]), to);
        }
    }
}

/// NV12 (a Y plane, then one interleaved UV plane with the luma stride) to RGB with alpha 255.
fn nv12_to_rgb(m: &Matrix, isa: Isa, src: &[u8], out: &mut [u8], to: [usize; 3], g: Geometry) {
    let (luma, uv) = src.split_at(g.src_stride * g.height);
    for y in 0..g.height {
        let row = &mut out[y * g.dst_stride..];
        let (ys, uvs) = (&luma[y * g.src_stride..], &uv[(y / 2) * g.src_stride..]);
        let done = simd::yuv_row_to_rgb(isa, m, YuvRow::SemiPlanar(ys, uvs), row, to, g.width);
        for x in done..g.width {
            let c = (x / 2) * 2;
            put_rgb(
                &mut row[x * 4..x * 4 + 4],
                m.rgb(ys[x], uvs[c], uvs[c + 1]),
                to,
            );
        }
    }
}

impl StreamHandler for Convert {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input).output(&self.output)
    }

    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        if let Some(frame) = self.input.recv() {
            self.convert(&frame, ctx.concurrency_limit())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    /// BT.709 limited range in f64, the reference the fixed-point matrix must meet.
    fn reference(r: f64, g: f64, b: f64) -> (f64, f64, f64) {
        let y = KR * r + KG * g + KB * b;
        (
            16.0 + 219.0 * y / 255.0,
            128.0 + 224.0 * (b - y) / (255.0 * 2.0 * (1.0 - KB)),
            128.0 + 224.0 * (r - y) / (255.0 * 2.0 * (1.0 - KR)),
        )
    }

    #[test]
    fn forward_is_within_half_a_step_of_the_exact_matrix() {
        let m = Matrix::bt709();
        for r in (0..=255).step_by(15) {
            for g in (0..=255).step_by(15) {
                for b in (0..=255).step_by(15) {
                    let (y, cb, cr) = reference(f64::from(r), f64::from(g), f64::from(b));
                    let p = [r, g, b];
                    assert!((f64::from(m.luma(p)) - y).abs() <= 0.5 + 1e-3, "{p:?}");
                    let (got_cb, got_cr) = m.chroma(add(p, p), 2);
                    assert!((f64::from(got_cb) - cb).abs() <= 0.5 + 1e-3, "{p:?} cb");
                    assert!((f64::from(got_cr) - cr).abs() <= 0.5 + 1e-3, "{p:?} cr");
                }
            }
        }
        // Black, white and grey land exactly on the limited-range levels.
        assert_eq!((m.luma([0, 0, 0]), m.luma([255, 255, 255])), (16, 235));
        assert_eq!(m.chroma([256, 256, 256], 2), (128, 128));
    }

    #[test]
    fn round_trip_through_yuv_is_within_two() {
        let m = Matrix::bt709();
        for r in (0..=255).step_by(5) {
            for g in (0..=255).step_by(17) {
                for b in (0..=255).step_by(51) {
                    let p = [r, g, b];
                    let (cb, cr) = m.chroma(add(p, p), 2);
                    let back = m.rgb(m.luma(p), cb, cr);
                    for c in 0..3 {
                        let d = (i32::from(back[c]) - p[c]).abs();
                        assert!(d <= 2, "{p:?} -> {back:?}");
                    }
                }
            }
        }
    }

    /// The 6-fractional-bit inverse (16-bit lanes in AVX2) is within 1 of the 16.16 one it
    /// replaced and rounds the exact BT.709 inverse correctly but for values within 0.07 of a
    /// half, for every Y, Cb, Cr.
    #[test]
    #[allow(
        clippy::print_stdout,
        reason = "how often the rounding moved, with --nocapture"
    )]
    fn inverse_is_within_one_of_the_exact_matrix_rounded() {
        let m = Matrix::bt709();
        let (db, dr) = (2.0 * (1.0 - KB), 2.0 * (1.0 - KR));
        let (mut changed, mut off_by_one) = (0u32, 0u32);
        for y in 0..=255u8 {
            for cb in 0..=255u8 {
                for cr in 0..=255u8 {
                    let got = m.rgb(y, cb, cr);
                    let yy = (f64::from(y) - 16.0) * 255.0 / 219.0;
                    let (u, v) = (
                        (f64::from(cb) - 128.0) * 255.0 / 224.0,
                        (f64::from(cr) - 128.0) * 255.0 / 224.0,
                    );
                    let exact = [
                        yy + dr * v,
                        yy - (db * KB * u + dr * KR * v) / KG,
                        yy + db * u,
                    ];
                    for c in 0..3 {
                        let e = exact[c].clamp(0.0, 255.0);
                        let d = (f64::from(got[c]) - e).abs();
                        assert!(d <= 0.5 + 0.07, "{y} {cb} {cr}: {got:?} vs {exact:?}");
                        off_by_one += u32::from(d > 0.5);
                    }
                    // The 16.16 formula this replaced.
                    let q16 = |x: f64| (x * 65536.0).round() as i32;
                    let y16 = q16(255.0 / 219.0) * (i32::from(y) - 16) + (1 << 15);
                    let (u16, v16) = (i32::from(cb) - 128, i32::from(cr) - 128);
                    let old = [
                        y16 + q16(255.0 / 224.0 * dr) * v16,
                        y16 - q16(255.0 / 224.0 * db * KB / KG) * u16
                            - q16(255.0 / 224.0 * dr * KR / KG) * v16,
                        y16 + q16(255.0 / 224.0 * db) * u16,
                    ]
                    .map(|v| (v >> 16).clamp(0, 255));
                    for c in 0..3 {
                        let d = (i32::from(got[c]) - old[c]).abs();
                        assert!(d <= 1, "{y} {cb} {cr}: {got:?} vs 16.16 {old:?}");
                        changed += u32::from(d != 0);
                    }
                }
            }
        }
        // Reported with --nocapture: how often the rounding moved.
        println!(
            "{changed} of {} values differ by 1 from 16.16, {off_by_one} round the wrong way",
            3 << 24
        );
    }

    /// This thread's CPU time so far, in ns: `clock_gettime(CLOCK_THREAD_CPUTIME_ID)` (Linux;
    /// exact, where `/proc/thread-self/schedstat` moves only at scheduler ticks).
    #[cfg(target_os = "linux")]
    fn thread_cpu_ns() -> u64 {
        #[repr(C)]
        struct Timespec {
            sec: i64,
            nsec: i64,
        }
        unsafe extern "C" {
            fn clock_gettime(clock: i32, time: *mut Timespec) -> i32;
        }
        const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
        let mut t = Timespec { sec: 0, nsec: 0 };
        // SAFETY: libc's clock_gettime writes one timespec (two i64 on 64-bit Linux) to `t`.
        let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut t) };
        assert_eq!(rc, 0);
        t.sec as u64 * 1_000_000_000 + t.nsec as u64
    }

    /// The kernels alone at 1920×1080 (AVX2 where the CPU has it), for
    /// `benches/peers/convert_peers.sh`: CPU ms per frame, the median of 5 runs of 40 frames,
    /// writing into 1 output picture and rotating through 4 (as `Convert`'s pool does).
    /// `cargo test --release -p streamlib-handlers-video --lib kernel_cpu_per_frame --
    /// --ignored --nocapture`
    #[test]
    #[cfg(target_os = "linux")]
    #[ignore = "a measurement, not a test"]
    #[allow(clippy::print_stdout, reason = "its report")]
    fn kernel_cpu_per_frame() {
        let m = Matrix::bt709();
        let isa = Isa::detect();
        let (w, h) = (1920usize, 1080usize);
        let src = noise(3, w * h * 4);
        let rgb = geometry(w, h, w * 4, w);
        let yuv = geometry(w, h, w, w * 4);
        type Kernel<'a> = (&'static str, &'a dyn Fn(&mut [u8]));
        let kernels: [Kernel<'_>; 5] = [
            ("rgba8_to_uyvy", &|out| {
                for (s, d) in src.chunks(w * 4).zip(out.chunks_mut(w * 2)) {
                    rgb_row_to_uyvy(&m, isa, [0, 1, 2], s, d, w);
                }
            }),
            ("rgba8_to_i420", &|out| {
                rgb_to_i420(&m, isa, [0, 1, 2], &src, out, rgb);
            }),
            ("uyvy_to_rgba8", &|out| {
                for (s, d) in src.chunks(w * 2).zip(out.chunks_mut(w * 4)) {
                    uyvy_row_to_rgb(&m, isa, s, d, [0, 1, 2], w);
                }
            }),
            ("i420_to_rgba8", &|out| {
                i420_to_rgb(&m, isa, &src, out, [0, 1, 2], yuv);
            }),
            ("nv12_to_rgba8", &|out| {
                nv12_to_rgb(&m, isa, &src, out, [0, 1, 2], yuv);
            }),
        ];
        println!("kernels ({isa:?}): name, CPU ms per frame with 1 and 4 output pictures");
        for (name, kernel) in kernels {
            let per_frame = |buffers: usize| {
                let mut outs = vec![vec![0u8; w * h * 4]; buffers];
                let mut runs: Vec<f64> = (0..5)
                    .map(|_| {
                        let start = thread_cpu_ns();
                        for i in 0..40 {
                            kernel(&mut outs[i % buffers]);
                        }
                        (thread_cpu_ns() - start) as f64 / 1e6 / 40.0
                    })
                    .collect();
                runs.sort_by(f64::total_cmp);
                runs[2]
            };
            println!("kernel {name} {:.3} {:.3}", per_frame(1), per_frame(4));
        }
    }

    /// Deterministic noise (xorshift64) so a failing case is reproducible from its seed.
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    /// Runs `kernel` on a copy of the same (noise-filled) output with each ISA: the two
    /// outputs, including bytes the kernel must leave alone.
    fn scalar_and_simd(seed: u64, out_len: usize, kernel: impl Fn(Isa, &mut [u8])) -> [Vec<u8>; 2] {
        [Isa::Scalar, Isa::detect()].map(|isa| {
            let mut out = noise(seed ^ 0x5eed, out_len);
            kernel(isa, &mut out);
            out
        })
    }

    fn geometry(width: usize, height: usize, src_stride: usize, dst_stride: usize) -> Geometry {
        Geometry {
            width,
            height,
            src_stride,
            dst_stride,
        }
    }

    const ORDERS: [[usize; 3]; 2] = [[0, 1, 2], [2, 1, 0]];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// The AVX2 kernels give the scalar kernels' bytes exactly, at any size (odd widths and
        /// heights, widths around the 8- and 32-pixel blocks) and row padding. Where the CPU has
        /// no AVX2 both sides are scalar and this compares the scalar code with itself.
        #[test]
        fn simd_matches_scalar(
            width in 1usize..200,
            height in 1usize..7,
            pad in 0usize..9,
            order in 0usize..2,
            seed in proptest::prelude::any::<u64>(),
        ) {
            let m = Matrix::bt709();
            let order = ORDERS[order];
            let (rgb_stride, uyvy_stride) = (width * 4 + pad, width.div_ceil(2) * 4 + pad);
            let luma_stride = width + pad;
            let i420_len = PixelFormat::I420.buffer_len(height as u32, luma_stride as u32);
            let rgb = noise(seed, rgb_stride * height);
            let to_uyvy = scalar_and_simd(seed, uyvy_stride * height, |isa, out| {
                for y in 0..height {
                    let (s, d) = (&rgb[y * rgb_stride..], &mut out[y * uyvy_stride..]);
                    rgb_row_to_uyvy(&m, isa, order, s, d, width);
                }
            });
            proptest::prop_assert_eq!(&to_uyvy[0], &to_uyvy[1], "rgb -> uyvy");
            let g = geometry(width, height, rgb_stride, luma_stride);
            let to_i420 = scalar_and_simd(seed, i420_len, |isa, out| {
                rgb_to_i420(&m, isa, order, &rgb, out, g);
            });
            proptest::prop_assert_eq!(&to_i420[0], &to_i420[1], "rgb -> i420");

            let uyvy = noise(seed, uyvy_stride * height);
            let from_uyvy = scalar_and_simd(seed, rgb_stride * height, |isa, out| {
                for y in 0..height {
                    let (s, d) = (&uyvy[y * uyvy_stride..], &mut out[y * rgb_stride..]);
                    uyvy_row_to_rgb(&m, isa, s, d, order, width);
                }
            });
            proptest::prop_assert_eq!(&from_uyvy[0], &from_uyvy[1], "uyvy -> rgb");
            let g = geometry(width, height, luma_stride, rgb_stride);
            let i420 = noise(seed, i420_len);
            let from_i420 = scalar_and_simd(seed, rgb_stride * height, |isa, out| {
                i420_to_rgb(&m, isa, &i420, out, order, g);
            });
            proptest::prop_assert_eq!(&from_i420[0], &from_i420[1], "i420 -> rgb");
            // NV12's UV rows share the luma stride: an odd width needs one byte of padding.
            let nv12_stride = width.div_ceil(2) * 2 + pad;
            let nv12_len = PixelFormat::Nv12.buffer_len(height as u32, nv12_stride as u32);
            let nv12 = noise(seed, nv12_len);
            let g = geometry(width, height, nv12_stride, rgb_stride);
            let from_nv12 = scalar_and_simd(seed, rgb_stride * height, |isa, out| {
                nv12_to_rgb(&m, isa, &nv12, out, order, g);
            });
            proptest::prop_assert_eq!(&from_nv12[0], &from_nv12[1], "nv12 -> rgb");
        }
    }

    /// NV12 is I420 with U and V interleaved: the same picture gives the same RGB.
    #[test]
    fn nv12_converts_as_the_same_i420_does() {
        let m = Matrix::bt709();
        for (width, height) in [(1920, 1080), (33, 7), (1, 1), (10, 2)] {
            let stride = width + 3;
            let i420 = noise(
                u64::from(width),
                PixelFormat::I420.buffer_len(height, stride),
            );
            let (width, height, stride) = (width as usize, height as usize, stride as usize);
            let (cs, ch) = (stride.div_ceil(2), height.div_ceil(2));
            let (luma, chroma) = i420.split_at(stride * height);
            let (u, v) = chroma.split_at(cs * ch);
            let mut nv12 = luma.to_vec();
            nv12.resize(
                PixelFormat::Nv12.buffer_len(height as u32, stride as u32),
                0,
            );
            for cy in 0..ch {
                for cx in 0..width.div_ceil(2) {
                    let at = stride * height + cy * stride + cx * 2;
                    nv12[at] = u[cy * cs + cx];
                    nv12[at + 1] = v[cy * cs + cx];
                }
            }
            let g = geometry(width, height, stride, width * 4);
            let (mut a, mut b) = (vec![0; width * 4 * height], vec![1; width * 4 * height]);
            i420_to_rgb(&m, Isa::detect(), &i420, &mut a, [0, 1, 2], g);
            nv12_to_rgb(&m, Isa::detect(), &nv12, &mut b, [0, 1, 2], g);
            assert!(a == b, "{width}x{height}");
        }
    }
}
