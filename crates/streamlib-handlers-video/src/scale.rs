//! `Scale`: resizes frames to one size, each plane at its own resolution, in fixed point.
//!
//! A separable filter (libswscale's and Pillow's design): per output column and row a
//! precomputed list of source taps with weights summing to 1, built once per input size. Each
//! output row is the vertical pass over its source rows into a scratch row (7 fractional
//! bits kept), then the horizontal pass into the frame. Nothing is allocated per frame.

use rayon::prelude::*;
use streamlib_ports::{
    Caps, Follow, FrameLayout, FramePool, HandlerError, InputPort, InputRef, MemoryCaps,
    OutputPort, OutputRef, PixelFormat, Ports, ProcessContext, StartContext, StreamHandler,
    VideoCaps, VideoFrame,
};

use crate::VideoError;

const HANDLER: &str = "scale";
const POOL_INITIAL: usize = 4;
const POOL_MAX: usize = 8;

/// Fractional bits of the filter weights.
const WEIGHT_BITS: u32 = 14;
/// Fractional bits kept between the vertical and the horizontal pass.
const MID_BITS: u32 = 7;

/// The pixel formats `Scale` resizes, most preferred first.
pub const SCALE_FORMATS: [PixelFormat; 6] = [
    PixelFormat::Rgba8,
    PixelFormat::Bgra8,
    PixelFormat::Gray8,
    PixelFormat::I420,
    PixelFormat::Nv12,
    PixelFormat::Uyvy,
];

/// How output pixels are computed from the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScaleMethod {
    /// The nearest source pixel: fast, blocky, no new values.
    Nearest,
    /// Linear between the two nearest source pixels on each axis (OpenCV's `INTER_LINEAR`:
    /// pixel centres aligned, two taps whatever the ratio, so strong downscales alias).
    #[default]
    Bilinear,
    /// The average of the source area each output pixel covers (OpenCV's `INTER_AREA`, a box
    /// filter): the right choice for downscaling; a 2× reduction averages 2×2 blocks exactly.
    Area,
    /// Lanczos with 3 lobes, widened by the ratio when downscaling (Pillow's `LANCZOS`):
    /// sharpest, slowest.
    Lanczos,
}

impl ScaleMethod {
    /// `"nearest"`, `"bilinear"`, `"area"` or `"lanczos"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ScaleMethod::Nearest => "nearest",
            ScaleMethod::Bilinear => "bilinear",
            ScaleMethod::Area => "area",
            ScaleMethod::Lanczos => "lanczos",
        }
    }

    /// The method named `name` (as [`as_str`](Self::as_str) writes it).
    pub fn from_name(name: &str) -> Option<Self> {
        [
            ScaleMethod::Nearest,
            ScaleMethod::Bilinear,
            ScaleMethod::Area,
            ScaleMethod::Lanczos,
        ]
        .into_iter()
        .find(|m| m.as_str() == name)
    }
}

/// What `Scale` produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleConfig {
    /// Output width in pixels.
    pub width: u32,
    /// Output height in pixels.
    pub height: u32,
    /// The filter.
    pub method: ScaleMethod,
}

impl ScaleConfig {
    /// `width`×`height` with the default method ([`ScaleMethod::Bilinear`]).
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            method: ScaleMethod::default(),
        }
    }
}

/// Source taps of every output position on one axis: `taps` weights per output, starting
/// at `starts[i]`, in [`WEIGHT_BITS`] fixed point summing to exactly `1 << WEIGHT_BITS`.
#[derive(Debug, Clone, Default)]
struct Taps {
    taps: usize,
    starts: Vec<usize>,
    weights: Vec<i32>,
}

/// The Lanczos-3 kernel at `x` source pixels from the centre, widened by `ratio` (source /
/// output) when downscaling.
fn lanczos3(x: f64, ratio: f64) -> f64 {
    let t = x / ratio.max(1.0);
    if t.abs() >= 3.0 {
        0.0
    } else if t == 0.0 {
        1.0
    } else {
        let p = std::f64::consts::PI * t;
        3.0 * p.sin() * (p / 3.0).sin() / (p * p)
    }
}

impl Taps {
    /// The taps taking `src` samples to `dst` with `method`; edges replicate.
    fn new(src: usize, dst: usize, method: ScaleMethod) -> Self {
        let ratio = src as f64 / dst as f64;
        let last = src as isize - 1;
        // (clamped source index, weight) per output, before fixing the tap count.
        let mut raw: Vec<Vec<(usize, f64)>> = Vec::with_capacity(dst);
        for i in 0..dst {
            let mut taps = Vec::new();
            let clamp = |j: isize| j.clamp(0, last) as usize;
            match method {
                ScaleMethod::Nearest => {
                    let j = ((i as f64 + 0.5) * ratio).floor() as isize;
                    taps.push((clamp(j), 1.0));
                }
                ScaleMethod::Bilinear => {
                    let centre = (i as f64 + 0.5) * ratio - 0.5;
                    let j = centre.floor();
                    let frac = centre - j;
                    taps.push((clamp(j as isize), 1.0 - frac));
                    taps.push((clamp(j as isize + 1), frac));
                }
                ScaleMethod::Area => {
                    let (lo, hi) = (i as f64 * ratio, (i as f64 + 1.0) * ratio);
                    let mut j = lo.floor();
                    while j < hi {
                        let overlap = (j + 1.0).min(hi) - j.max(lo);
                        if overlap > 1e-12 {
                            taps.push((clamp(j as isize), overlap));
                        }
                        j += 1.0;
                    }
                }
                ScaleMethod::Lanczos => {
                    let centre = (i as f64 + 0.5) * ratio;
                    let support = 3.0 * ratio.max(1.0);
                    let lo = (centre - support).floor() as isize;
                    let hi = (centre + support).ceil() as isize;
                    for j in lo..=hi {
                        let w = lanczos3(j as f64 + 0.5 - centre, ratio);
                        if w != 0.0 {
                            taps.push((clamp(j), w));
                        }
                    }
                }
            }
            raw.push(taps);
        }
        let span = |t: &[(usize, f64)]| {
            let lo = t.iter().map(|p| p.0).min().unwrap_or(0);
            let hi = t.iter().map(|p| p.0).max().unwrap_or(0);
            (lo, hi - lo + 1)
        };
        let taps = raw.iter().map(|t| span(t).1).max().unwrap_or(1).min(src);
        let mut starts = Vec::with_capacity(dst);
        let mut weights = vec![0i32; dst * taps];
        let one = 1i64 << WEIGHT_BITS;
        for (i, t) in raw.iter().enumerate() {
            let (lo, _) = span(t);
            // Every window lies inside the source: a window running past the end moves left.
            let start = lo.min(src - taps);
            starts.push(start);
            let sum: f64 = t.iter().map(|p| p.1).sum();
            let w = &mut weights[i * taps..(i + 1) * taps];
            let mut float = vec![0.0f64; taps];
            for &(j, v) in t {
                float[j - start] += v / sum;
            }
            let mut total = 0i64;
            for (slot, f) in w.iter_mut().zip(&float) {
                *slot = (f * one as f64).round() as i32;
                total += i64::from(*slot);
            }
            // Rounding residue onto the largest weight: a flat image stays flat.
            if let Some(k) = (0..taps).max_by_key(|&k| w[k]) {
                w[k] += (one - total) as i32;
            }
        }
        Self {
            taps,
            starts,
            weights,
        }
    }

    fn of(&self, i: usize) -> (usize, &[i32]) {
        (
            self.starts[i],
            &self.weights[i * self.taps..(i + 1) * self.taps],
        )
    }
}

/// Where one plane's samples are: `base` is the plane's first byte in the buffer, `first`
/// the first sample's byte within a pixel; a pixel is `step` bytes, its channels `chan_step`
/// apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plane {
    base: usize,
    stride: usize,
    width: usize,
    rows: usize,
    channels: usize,
    first: usize,
    step: usize,
    chan_step: usize,
    /// Whether the row's last pixel is repeated into one more (UYVY at an odd width: the
    /// last pair's second luma).
    pad: bool,
}

impl Plane {
    fn packed(base: usize, stride: usize, width: usize, rows: usize, channels: usize) -> Self {
        Self {
            base,
            stride,
            width,
            rows,
            channels,
            first: 0,
            step: channels,
            chan_step: 1,
            pad: false,
        }
    }

    /// Whether a row's samples are contiguous.
    fn contiguous(&self) -> bool {
        self.first == 0 && self.step == self.channels && self.chan_step == 1
    }

    /// Byte of channel `c` of pixel `x` in a row.
    #[inline]
    fn at(&self, x: usize, c: usize) -> usize {
        self.first + x * self.step + c * self.chan_step
    }
}

/// The planes of a `layout` frame, scaled one by one.
fn planes(layout: FrameLayout) -> Vec<Plane> {
    let (w, h, s) = (
        layout.width() as usize,
        layout.height() as usize,
        layout.stride() as usize,
    );
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    match layout.format() {
        PixelFormat::Rgba8 | PixelFormat::Bgra8 => vec![Plane::packed(0, s, w, h, 4)],
        PixelFormat::Gray8 => vec![Plane::packed(0, s, w, h, 1)],
        PixelFormat::I420 => {
            let cs = s.div_ceil(2);
            vec![
                Plane::packed(0, s, w, h, 1),
                Plane::packed(s * h, cs, cw, ch, 1),
                Plane::packed(s * h + cs * ch, cs, cw, ch, 1),
            ]
        }
        PixelFormat::Nv12 => vec![
            Plane::packed(0, s, w, h, 1),
            Plane::packed(s * h, s, cw, ch, 2),
        ],
        // U Y0 V Y1: luma every 2 bytes from byte 1, chroma (U, V two bytes apart) every 4.
        PixelFormat::Uyvy => vec![
            Plane {
                base: 0,
                stride: s,
                width: w,
                rows: h,
                channels: 1,
                first: 1,
                step: 2,
                chan_step: 1,
                pad: w % 2 == 1,
            },
            Plane {
                base: 0,
                stride: s,
                width: cw,
                rows: h,
                channels: 2,
                first: 0,
                step: 4,
                chan_step: 2,
                pad: false,
            },
        ],
    }
}

/// Refuses layouts whose planes do not fit their rows: NV12 at an odd width with a tight
/// stride (its UV row is one byte longer than the stride).
fn check_layout(layout: FrameLayout) -> Result<(), VideoError> {
    let fits = planes(layout)
        .iter()
        .all(|p| p.width == 0 || p.at(p.width - 1, p.channels - 1) < p.stride);
    if fits {
        return Ok(());
    }
    Err(VideoError::InvalidSize {
        handler: HANDLER,
        width: layout.width(),
        height: layout.height(),
        reason: "nv12 rows this wide do not fit the stride (use an even width)",
    })
}

/// One plane's geometry and filters.
#[derive(Debug, Clone)]
struct PlanePlan {
    src: Plane,
    dst: Plane,
    horizontal: Taps,
    vertical: Taps,
}

/// Everything built once per (input layout, output layout, method).
#[derive(Debug, Clone)]
struct Plan {
    src: FrameLayout,
    dst: FrameLayout,
    planes: Vec<PlanePlan>,
    /// The longest scratch row a plane needs (source samples per row).
    row_len: usize,
}

impl Plan {
    fn new(src: FrameLayout, dst: FrameLayout, method: ScaleMethod) -> Self {
        let planes: Vec<PlanePlan> = planes(src)
            .into_iter()
            .zip(planes(dst))
            .map(|(s, d)| PlanePlan {
                src: s,
                dst: d,
                horizontal: Taps::new(s.width, d.width, method),
                vertical: Taps::new(s.rows, d.rows, method),
            })
            .collect();
        let row_len = planes
            .iter()
            .map(|p| p.src.width * p.src.channels)
            .max()
            .unwrap_or(0);
        Self {
            src,
            dst,
            planes,
            row_len,
        }
    }
}

/// Scales `src` (laid out as `plan.src`) into `dst` (`plan.dst`), in `scratch.len()` bands
/// of output rows in parallel (each scratch row at least `plan.row_len` long).
fn scale_planes(plan: &Plan, src: &[u8], dst: &mut [u8], scratch: &mut [Vec<i32>]) {
    for p in &plan.planes {
        let region = &mut dst[p.dst.base..p.dst.base + p.dst.stride * p.dst.rows];
        let bands = scratch.len().clamp(1, p.dst.rows.max(1));
        if bands <= 1 {
            let row = scratch[0].as_mut_slice();
            for (y, out) in region.chunks_mut(p.dst.stride).enumerate() {
                scale_row(p, src, y, out, row);
            }
            continue;
        }
        let per_band = p.dst.rows.div_ceil(bands);
        region
            .par_chunks_mut(per_band * p.dst.stride)
            .zip(scratch.par_iter_mut())
            .enumerate()
            .for_each(|(band, (rows, row))| {
                for (i, out) in rows.chunks_mut(p.dst.stride).enumerate() {
                    scale_row(p, src, band * per_band + i, out, row);
                }
            });
    }
}

/// Rounding and shift of the horizontal pass: weights times the vertical pass's fraction.
const ROUND: i32 = 1 << (WEIGHT_BITS + MID_BITS - 1);
const SHIFT: u32 = WEIGHT_BITS + MID_BITS;

/// The horizontal pass for `CH` contiguous channels (the channel count as a constant lets
/// the compiler keep the accumulators in registers and drop the bounds checks).
#[inline]
fn horizontal<const CH: usize>(p: &PlanePlan, mid: &[i32], out: &mut [u8]) {
    let taps = p.horizontal.taps;
    let out = &mut out[..p.dst.width * CH];
    for ((px, &start), weights) in out
        .chunks_exact_mut(CH)
        .zip(&p.horizontal.starts)
        .zip(p.horizontal.weights.chunks_exact(taps))
    {
        let mut acc = [ROUND; CH];
        let src = &mid[start * CH..(start + taps) * CH];
        for (sample, &w) in src.chunks_exact(CH).zip(weights) {
            for c in 0..CH {
                acc[c] += sample[c] * w;
            }
        }
        for c in 0..CH {
            px[c] = (acc[c] >> SHIFT).clamp(0, 255) as u8;
        }
    }
}

/// Output row `y` of plane `p`: vertical pass into `mid`, horizontal pass into `out`.
#[inline]
fn scale_row(p: &PlanePlan, src: &[u8], y: usize, out: &mut [u8], mid: &mut [i32]) {
    let s = &p.src;
    let samples = s.width * s.channels;
    let mid = &mut mid[..samples];
    let (start, weights) = p.vertical.of(y);
    let half = 1i32 << (WEIGHT_BITS - MID_BITS - 1);
    let shift = WEIGHT_BITS - MID_BITS;
    let row_of = |k: usize| &src[s.base + (start + k) * s.stride..][..samples];
    let mut live = weights.iter().enumerate().filter(|(_, w)| **w != 0);
    // One or two source rows (every ratio above 1/2 with bilinear, 2x area, nearest): one
    // fused pass instead of fill, accumulate and shift.
    if s.contiguous() && weights.iter().filter(|w| **w != 0).count() <= 2 {
        match (live.next(), live.next()) {
            (Some((k0, &w0)), Some((k1, &w1))) => {
                let (a, b) = (row_of(k0), row_of(k1));
                for ((m, &x), &y) in mid.iter_mut().zip(a).zip(b) {
                    *m = (half + i32::from(x) * w0 + i32::from(y) * w1) >> shift;
                }
            }
            (Some((k0, &w0)), None) => {
                for (m, &x) in mid.iter_mut().zip(row_of(k0)) {
                    *m = (half + i32::from(x) * w0) >> shift;
                }
            }
            _ => mid.fill(0),
        }
        return horizontal_pass(p, mid, out);
    }
    mid.fill(half);
    for (k, &w) in weights.iter().enumerate() {
        if w == 0 {
            continue;
        }
        let row = &src[s.base + (start + k) * s.stride..];
        if s.contiguous() {
            for (m, &v) in mid.iter_mut().zip(&row[..samples]) {
                *m += i32::from(v) * w;
            }
        } else {
            for (x, px) in mid.chunks_exact_mut(s.channels).enumerate() {
                for (c, m) in px.iter_mut().enumerate() {
                    *m += i32::from(row[s.at(x, c)]) * w;
                }
            }
        }
    }
    for m in mid.iter_mut() {
        *m >>= shift;
    }
    horizontal_pass(p, mid, out);
}

/// The horizontal pass of one row: `mid` (the vertical pass's samples) into `out`.
#[inline]
fn horizontal_pass(p: &PlanePlan, mid: &[i32], out: &mut [u8]) {
    let (s, d) = (&p.src, &p.dst);
    let ch = s.channels;
    match (d.contiguous(), ch) {
        (true, 1) => horizontal::<1>(p, mid, out),
        (true, 2) => horizontal::<2>(p, mid, out),
        (true, 4) => horizontal::<4>(p, mid, out),
        _ => {
            for x in 0..d.width {
                let (start, weights) = p.horizontal.of(x);
                for c in 0..ch {
                    let mut acc = ROUND;
                    for (k, &w) in weights.iter().enumerate() {
                        acc += mid[(start + k) * ch + c] * w;
                    }
                    out[d.at(x, c)] = (acc >> SHIFT).clamp(0, 255) as u8;
                }
            }
        }
    }
    if d.pad && d.width > 0 {
        for c in 0..ch {
            out[d.at(d.width, c)] = out[d.at(d.width - 1, c)];
        }
    }
}

/// Resizes frames to one size: `Rgba8`, `Bgra8`, `Gray8`, `I420`, `Nv12` and `Uyvy` (each
/// plane at its own resolution, chroma included; UYVY's luma and chroma separately), with the
/// [`ScaleMethod`] of its config.
///
/// - Caps: input any of those formats at any size; output the input's format and rate at the
///   configured size ([`Follow::FORMAT_RATE`]). The runtime inserts it where a link's sizes
///   differ (`Conversion::Size`).
/// - A frame already at the output size is passed on by reference, not copied.
/// - Output frames come from the handler's pool (created in `on_start` from the negotiated
///   format, or on the first frame; re-created when the input changes), with the input's
///   timing and alpha mode; when the pool is empty the frame is skipped and counted. Nothing
///   is allocated per frame.
/// - With a stream `concurrency_limit` of `n`, each plane is scaled in `n` bands of rows in
///   parallel on rayon's global pool.
#[derive(Debug)]
pub struct Scale {
    config: ScaleConfig,
    input: InputPort<VideoFrame>,
    output: OutputPort<VideoFrame>,
    pool: Option<FramePool>,
    plan: Option<Plan>,
    scratch: Vec<Vec<i32>>,
}

impl Scale {
    /// A scaler to `config`'s size; fails on a size of 0 or above 16384.
    pub fn new(config: ScaleConfig) -> Result<Self, VideoError> {
        VideoError::check_size(HANDLER, config.width, config.height)?;
        let input = InputPort::new("video", MemoryCaps::CPU)
            .with_format(Caps::Video(VideoCaps::any().with_formats(&SCALE_FORMATS)));
        let output = OutputPort::new("video", MemoryCaps::CPU).with_format(Caps::Video(
            VideoCaps::any()
                .with_formats(&SCALE_FORMATS)
                .with_size(config.width, config.height),
        ));
        output.follows(&input, Follow::FORMAT_RATE);
        // Frames already at the size go through by reference.
        input.forwards_to(&output);
        Ok(Self {
            config,
            input,
            output,
            pool: None,
            plan: None,
            scratch: Vec::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ScaleConfig {
        &self.config
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

    /// Builds the pool and filters for `src` frames (no-op when they already fit).
    fn prepare(&mut self, src: FrameLayout, bands: usize) -> Result<(), VideoError> {
        let format = src.format();
        if !SCALE_FORMATS.contains(&format) {
            return Err(VideoError::UnsupportedFormat {
                handler: HANDLER,
                format,
                supported: "rgba8, bgra8, gray8, i420, nv12, uyvy",
            });
        }
        let dst =
            FrameLayout::new(self.config.width, self.config.height, format).map_err(|source| {
                VideoError::Frame {
                    handler: HANDLER,
                    source,
                }
            })?;
        if self
            .plan
            .as_ref()
            .is_none_or(|p| p.src != src || p.dst != dst)
        {
            // Checked once per input layout (listing the planes allocates).
            check_layout(src)?;
            check_layout(dst)?;
            self.plan = Some(Plan::new(src, dst, self.config.method));
        }
        if self.pool.as_ref().is_none_or(|p| p.layout() != dst) {
            self.pool = Some(
                FramePool::for_output(HANDLER, dst, POOL_INITIAL, POOL_MAX, &self.output)
                    .map_err(VideoError::pool(HANDLER))?,
            );
        }
        let row_len = self.plan.as_ref().map_or(0, |p| p.row_len);
        // Warm-up only: grows when the input or the concurrency limit grows.
        if self.scratch.len() != bands.max(1) || self.scratch.iter().any(|r| r.len() < row_len) {
            self.scratch = (0..bands.max(1)).map(|_| vec![0; row_len]).collect();
        }
        Ok(())
    }

    fn scale(&mut self, frame: &VideoFrame, bands: usize) -> Result<(), VideoError> {
        if (frame.width(), frame.height()) == (self.config.width, self.config.height) {
            self.output.write(frame.clone());
            return Ok(());
        }
        let src = frame
            .cpu_bytes()
            .ok_or(VideoError::NotInCpuMemory { handler: HANDLER })?;
        self.prepare(frame.layout(), bands)?;
        let (Some(pool), Some(plan)) = (&self.pool, &self.plan) else {
            return Ok(());
        };
        // An empty pool skips this frame (counted in the stats); readers keep the last one.
        let Some(mut out) = pool.acquire_for(&self.output) else {
            return Ok(());
        };
        scale_planes(plan, src, &mut out, &mut self.scratch);
        let scaled = pool
            .frame(out)
            .with_timing(
                frame.timestamp_ns(),
                frame.frame_number(),
                frame.clock_source_id(),
            )
            .with_alpha(frame.alpha());
        self.output.write(scaled);
        Ok(())
    }
}

impl StreamHandler for Scale {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input).output(&self.output)
    }

    fn on_start(&mut self, _ctx: &StartContext<'_>) -> Result<(), HandlerError> {
        // The negotiated input says what the first frame looks like: no warm-up on it.
        if let Some(info) = self.input.negotiated_video()
            && (info.width, info.height) != (self.config.width, self.config.height)
        {
            let layout =
                FrameLayout::new(info.width, info.height, info.format).map_err(|source| {
                    VideoError::Frame {
                        handler: HANDLER,
                        source,
                    }
                })?;
            self.prepare(layout, 1)?;
        }
        Ok(())
    }

    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        if let Some(frame) = self.input.recv() {
            self.scale(&frame, ctx.concurrency_limit())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn layout(w: u32, h: u32, f: PixelFormat) -> FrameLayout {
        FrameLayout::new(w, h, f).unwrap()
    }

    /// Scales `src` with `method` in `bands` bands.
    fn run(
        src: &[u8],
        from: FrameLayout,
        w: u32,
        h: u32,
        method: ScaleMethod,
        bands: usize,
    ) -> Vec<u8> {
        let to = layout(w, h, from.format());
        let plan = Plan::new(from, to, method);
        let mut dst = vec![0u8; to.buffer_len()];
        let mut scratch: Vec<Vec<i32>> = (0..bands).map(|_| vec![0; plan.row_len]).collect();
        scale_planes(&plan, src, &mut dst, &mut scratch);
        dst
    }

    const METHODS: [ScaleMethod; 4] = [
        ScaleMethod::Nearest,
        ScaleMethod::Bilinear,
        ScaleMethod::Area,
        ScaleMethod::Lanczos,
    ];

    #[test]
    fn area_halves_by_averaging_2x2_blocks_exactly() {
        // 4x2 gray: blocks (10, 20, 30, 41) -> 25.25 -> 25 and (0, 255, 255, 255) -> 191.25 -> 191.
        let src = [10, 20, 0, 255, 30, 41, 255, 255];
        let out = run(
            &src,
            layout(4, 2, PixelFormat::Gray8),
            2,
            1,
            ScaleMethod::Area,
            1,
        );
        assert_eq!(out, [25, 191]);
        // Rounding to nearest: (1 + 2 + 2 + 2) / 4 = 1.75 -> 2; (0 + 0 + 1 + 1) / 4 = 0.5 -> 1.
        let src = [1, 2, 0, 0, 2, 2, 1, 1];
        let out = run(
            &src,
            layout(4, 2, PixelFormat::Gray8),
            2,
            1,
            ScaleMethod::Area,
            1,
        );
        assert_eq!(out, [2, 1]);
    }

    #[test]
    fn area_halves_rgba_per_channel() {
        // 2x2 RGBA -> 1x1: each channel the mean of four.
        let src = [
            0, 100, 200, 255, 4, 104, 204, 255, //
            8, 108, 208, 255, 12, 112, 212, 251,
        ];
        let out = run(
            &src,
            layout(2, 2, PixelFormat::Rgba8),
            1,
            1,
            ScaleMethod::Area,
            1,
        );
        assert_eq!(out, [6, 106, 206, 254]);
    }

    #[test]
    fn every_method_is_the_identity_at_the_same_size() {
        let src: Vec<u8> = (0..7 * 5 * 4).map(|i| (i * 37 % 256) as u8).collect();
        for method in METHODS {
            let out = run(&src, layout(7, 5, PixelFormat::Rgba8), 7, 5, method, 2);
            assert_eq!(out, src, "{method:?}");
        }
    }

    #[test]
    fn bilinear_upscale_interpolates_between_centres() {
        // 2 -> 4: output centres at source 0.25 - 0.5 (clamped to 0), 0.25, 0.75, 1.25 (-> 1).
        let src = [0, 200];
        let out = run(
            &src,
            layout(2, 1, PixelFormat::Gray8),
            4,
            1,
            ScaleMethod::Bilinear,
            1,
        );
        assert_eq!(out, [0, 50, 150, 200]);
        let out = run(
            &src,
            layout(2, 1, PixelFormat::Gray8),
            4,
            1,
            ScaleMethod::Nearest,
            1,
        );
        assert_eq!(out, [0, 0, 200, 200]);
    }

    #[test]
    fn a_flat_image_stays_flat_at_odd_sizes() {
        for format in SCALE_FORMATS {
            for (sw, sh, dw, dh) in [
                (7, 5, 3, 2),
                (3, 3, 8, 7),
                (5, 9, 5, 4),
                (1, 1, 3, 3),
                (6, 4, 10, 2),
            ] {
                let from = layout(sw, sh, format);
                if check_layout(from).is_err() || check_layout(layout(dw, dh, format)).is_err() {
                    continue;
                }
                let src = vec![77u8; from.buffer_len()];
                for method in METHODS {
                    let out = run(&src, from, dw, dh, method, 3);
                    // An odd-width NV12 row is padded by one byte (its UV pairs need an even
                    // stride): the padding is not a pixel.
                    let to = layout(dw, dh, format);
                    let padding = |i: usize| {
                        format == PixelFormat::Nv12
                            && i < (to.stride() * dh) as usize
                            && i % to.stride() as usize >= dw as usize
                    };
                    assert!(
                        out.iter().enumerate().all(|(i, &v)| v == 77 || padding(i)),
                        "{format:?} {method:?} {sw}x{sh}->{dw}x{dh}: {out:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn odd_sizes_area_weights_partial_pixels() {
        // 3 -> 2: output 0 covers [0, 1.5): (a + b / 2) / 1.5; output 1 covers [1.5, 3).
        let src = [30, 60, 90];
        let out = run(
            &src,
            layout(3, 1, PixelFormat::Gray8),
            2,
            1,
            ScaleMethod::Area,
            1,
        );
        assert_eq!(out, [40, 80]);
    }

    #[test]
    fn planar_formats_scale_each_plane_at_its_resolution() {
        // I420 4x4: Y a gradient, U 10s, V 200s; to 2x2 (chroma 1x1) with area.
        let from = layout(4, 4, PixelFormat::I420);
        let mut src = vec![0u8; from.buffer_len()];
        for (i, y) in src[..16].iter_mut().enumerate() {
            *y = (i * 10) as u8;
        }
        src[16..20].copy_from_slice(&[10, 12, 14, 16]);
        src[20..24].copy_from_slice(&[200, 202, 204, 206]);
        let out = run(&src, from, 2, 2, ScaleMethod::Area, 2);
        // Y blocks: (0 + 10 + 40 + 50) / 4 = 25, 45, 105, 125.
        assert_eq!(&out[..4], &[25, 45, 105, 125]);
        assert_eq!(&out[4..6], &[13, 203]);

        // NV12 4x2 -> 2x1: U and V of the interleaved plane kept apart.
        let from = layout(4, 2, PixelFormat::Nv12);
        let src = [0, 4, 8, 12, 16, 20, 24, 28, 100, 50, 110, 60];
        let out = run(&src, from, 2, 1, ScaleMethod::Area, 1);
        assert_eq!(out, [10, 18, 105, 55]);
        // An odd width fits: its stride is rounded up to whole UV pairs.
        assert!(check_layout(layout(3, 2, PixelFormat::Nv12)).is_ok());
        assert!(check_layout(layout(3, 2, PixelFormat::I420)).is_ok());
    }

    #[test]
    fn uyvy_scales_luma_and_chroma_apart() {
        // 4x1 UYVY: pairs (U 10, Y 0, V 20, Y 40) (U 30, Y 80, V 40, Y 120) -> 2x1 area.
        let from = layout(4, 1, PixelFormat::Uyvy);
        let src = [10, 0, 20, 40, 30, 80, 40, 120];
        let out = run(&src, from, 2, 1, ScaleMethod::Area, 1);
        // Luma 20 and 100; chroma the mean of both pairs.
        assert_eq!(out, [20, 20, 30, 100]);
    }

    #[test]
    fn bands_change_nothing() {
        let from = layout(33, 17, PixelFormat::I420);
        let src: Vec<u8> = (0..from.buffer_len())
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        for method in METHODS {
            let one = run(&src, from, 20, 11, method, 1);
            let four = run(&src, from, 20, 11, method, 4);
            assert_eq!(one, four, "{method:?}");
        }
    }

    proptest::proptest! {
        /// Filters without negative lobes never leave the input's range, at any sizes.
        #[test]
        fn no_overshoot_without_negative_lobes(
            sw in 1u32..24, sh in 1u32..24, dw in 1u32..24, dh in 1u32..24,
            seed in 0u64..1000, method in 0usize..3,
        ) {
            let from = layout(sw, sh, PixelFormat::Gray8);
            let src: Vec<u8> = (0..from.buffer_len() as u64)
                .map(|i| ((i * 2654435761 + seed * 97) >> 7) as u8)
                .collect();
            let (lo, hi) = (*src.iter().min().unwrap(), *src.iter().max().unwrap());
            let out = run(&src, from, dw, dh, METHODS[method], 2);
            proptest::prop_assert!(out.iter().all(|v| (lo..=hi).contains(v)));
        }
    }

    #[test]
    fn method_names_round_trip() {
        for method in METHODS {
            assert_eq!(ScaleMethod::from_name(method.as_str()), Some(method));
        }
        assert_eq!(ScaleMethod::from_name("bicubic"), None);
    }
}
