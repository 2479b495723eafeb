//! `Convert`: pixel format conversion between RGB and the YCbCr formats video I/O carries
//! (UYVY for SMPTE ST 2110-20 4:2:2, I420 for codecs), BT.709 limited range.

use rayon::prelude::*;
use streamlib_ports::{
    Caps, Follow, FrameLayout, FramePool, HandlerError, InputPort, InputRef, MemoryCaps,
    OutputPort, OutputRef, PixelFormat, Ports, ProcessContext, StreamHandler, VideoCaps,
    VideoFrame,
};

use crate::VideoError;

const HANDLER: &str = "convert";
const POOL_INITIAL: usize = 4;
const POOL_MAX: usize = 8;

/// Fixed-point precision of the matrix coefficients.
const SHIFT: u32 = 16;
const ONE: f64 = (1u32 << SHIFT) as f64;

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
    /// 255/219: luma scale on the way back.
    y_scale: i32,
    r_cr: i32,
    g_cb: i32,
    g_cr: i32,
    b_cb: i32,
}

fn q(x: f64) -> i32 {
    (x * ONE).round() as i32
}

impl Matrix {
    fn bt709() -> Self {
        let (ys, cs) = (219.0 / 255.0, 224.0 / 255.0);
        let (db, dr) = (2.0 * (1.0 - KB), 2.0 * (1.0 - KR));
        Self {
            y: [q(ys * KR), q(ys * KG), q(ys * KB)],
            cb: [q(-cs * KR / db), q(-cs * KG / db), q(cs * (1.0 - KB) / db)],
            cr: [q(cs * (1.0 - KR) / dr), q(-cs * KG / dr), q(-cs * KB / dr)],
            y_scale: q(255.0 / 219.0),
            r_cr: q(255.0 / 224.0 * dr),
            g_cb: q(255.0 / 224.0 * db * KB / KG),
            g_cr: q(255.0 / 224.0 * dr * KR / KG),
            b_cb: q(255.0 / 224.0 * db),
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

    /// RGB of one Y with its pixel's Cb, Cr.
    #[inline]
    fn rgb(&self, y: u8, cb: u8, cr: u8) -> [u8; 3] {
        let y = self.y_scale * (i32::from(y) - 16) + (1 << (SHIFT - 1));
        let (cb, cr) = (i32::from(cb) - 128, i32::from(cr) - 128);
        let clamp = |v: i32| (v >> SHIFT).clamp(0, 255) as u8;
        [
            clamp(y + self.r_cr * cr),
            clamp(y - self.g_cb * cb - self.g_cr * cr),
            clamp(y + self.b_cb * cb),
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
    /// RGB to anything; UYVY and I420 to RGB only.
    pub fn sources(target: PixelFormat) -> &'static [PixelFormat] {
        const ALL: [PixelFormat; 4] = [
            PixelFormat::Rgba8,
            PixelFormat::Bgra8,
            PixelFormat::Uyvy,
            PixelFormat::I420,
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
            supported: "rgba8, bgra8 (to any target); uyvy, i420 (to rgba8, bgra8)",
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
        match (rgb_order(from), self.target) {
            (Some(order), PixelFormat::Uyvy) => {
                rows_in_bands(&mut out, geometry.dst_stride, height, 1, bands, |y, row| {
                    rgb_row_to_uyvy(
                        &m,
                        order,
                        &src[y * geometry.src_stride..],
                        row,
                        geometry.width,
                    );
                });
            }
            (Some(order), PixelFormat::I420) => rgb_to_i420(&m, order, src, &mut out, geometry),
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
                                &src[y * geometry.src_stride..],
                                row,
                                to,
                                geometry.width,
                            );
                        });
                    }
                    PixelFormat::I420 => i420_to_rgb(&m, src, &mut out, to, geometry),
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
    for (s, d) in src.chunks(src_stride).zip(dst.chunks_mut(dst_stride)) {
        rgb_row_to_uyvy(&m, [0, 1, 2], s, d, width as usize);
    }
}

/// One row of RGB to U Y0 V Y1 pairs; an odd last pixel pairs with itself.
fn rgb_row_to_uyvy(m: &Matrix, order: [usize; 3], src: &[u8], dst: &mut [u8], width: usize) {
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

/// One row of U Y0 V Y1 pairs to RGB with alpha 255 in the byte order `to`.
fn uyvy_row_to_rgb(m: &Matrix, src: &[u8], dst: &mut [u8], to: [usize; 3], width: usize) {
    for x in 0..width {
        let pair = &src[(x / 2) * 4..(x / 2) * 4 + 4];
        let y = if x % 2 == 0 { pair[1] } else { pair[3] };
        let rgb = m.rgb(y, pair[0], pair[2]);
        let d = &mut dst[x * 4..x * 4 + 4];
        for c in 0..3 {
            d[to[c]] = rgb[c];
        }
        d[3] = 255;
    }
}

/// RGB to I420: Y per pixel, Cb/Cr per 2×2 block (edge pixels repeat at odd sizes).
fn rgb_to_i420(m: &Matrix, order: [usize; 3], src: &[u8], out: &mut [u8], g: Geometry) {
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
        for (x, out) in row.iter_mut().enumerate() {
            *out = m.luma(pixel(s, x, order));
        }
    }
    for cy in 0..ch {
        let (y0, y1) = (cy * 2, (cy * 2 + 1).min(g.height - 1));
        let (s0, s1) = (&src[y0 * g.src_stride..], &src[y1 * g.src_stride..]);
        for cx in 0..cw {
            let (x0, x1) = (cx * 2, (cx * 2 + 1).min(g.width - 1));
            let sum = add(
                add(pixel(s0, x0, order), pixel(s0, x1, order)),
                add(pixel(s1, x0, order), pixel(s1, x1, order)),
            );
            let (cb, cr) = m.chroma(sum, 4);
            u[cy * cs + cx] = cb;
            v[cy * cs + cx] = cr;
        }
    }
}

/// I420 to RGB with alpha 255.
fn i420_to_rgb(m: &Matrix, src: &[u8], out: &mut [u8], to: [usize; 3], g: Geometry) {
    let (cs, ch) = (g.src_stride.div_ceil(2), g.height.div_ceil(2));
    let luma = &src[..g.src_stride * g.height];
    let u = &src[g.src_stride * g.height..];
    let v = &u[cs * ch..];
    for y in 0..g.height {
        let row = &mut out[y * g.dst_stride..];
        for x in 0..g.width {
            let c = (y / 2) * cs + x / 2;
            let rgb = m.rgb(luma[y * g.src_stride + x], u[c], v[c]);
            let d = &mut row[x * 4..x * 4 + 4];
            for k in 0..3 {
                d[to[k]] = rgb[k];
            }
            d[3] = 255;
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
}
