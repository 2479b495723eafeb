//! `TestPattern`: a source of synthetic frames (SMPTE colour bars, a gradient, black, white, a
//! checkerboard, a flash on each clock second for lip sync) with an optional moving box that
//! makes motion and dropped frames visible.
//!
//! The static pattern is rendered once, at construction; each frame is one copy of it into a
//! pooled buffer plus the box, so a frame costs about one `memcpy` and allocates nothing.

use streamlib_clock::Rational;
use streamlib_ports::{
    AlphaMode, Caps, FrameLayout, FramePool, HandlerError, MemoryCaps, OutputPort, OutputRef,
    PixelFormat, Ports, ProcessContext, StartContext, StreamHandler, VideoCaps, VideoFrame,
};

use crate::VideoError;

const HANDLER: &str = "TestPattern";

/// Frames the pool holds from the start; it grows (up to [`POOL_MAX`]) when downstream handlers
/// keep frames longer (a display, a recorder).
const POOL_INITIAL: usize = 4;
const POOL_MAX: usize = 32;

type Rgb = [u8; 3];

// SMPTE EG 1 colours as full-range 8-bit RGB.
const WHITE_75: Rgb = [191, 191, 191];
const YELLOW_75: Rgb = [191, 191, 0];
const CYAN_75: Rgb = [0, 191, 191];
const GREEN_75: Rgb = [0, 191, 0];
const MAGENTA_75: Rgb = [191, 0, 191];
const RED_75: Rgb = [191, 0, 0];
const BLUE_75: Rgb = [0, 0, 191];
const BLACK: Rgb = [0, 0, 0];
const WHITE_100: Rgb = [255, 255, 255];
/// -I, in the usual full-range sRGB rendition of EG 1 (#00214C).
const MINUS_I: Rgb = [0, 33, 76];
/// +Q, in the same rendition (#32006A).
const PLUS_Q: Rgb = [50, 0, 106];
/// PLUGE's "-4 %" stripe: below black, which full-range RGB cannot hold, so it clips to black.
const PLUGE_SUB_BLACK: Rgb = [0, 0, 0];
/// PLUGE's "+4 %" stripe: 4 % of 255.
const PLUGE_PLUS_4: Rgb = [10, 10, 10];

/// The seven top bars, left to right.
const TOP_BARS: [Rgb; 7] = [
    WHITE_75, YELLOW_75, CYAN_75, GREEN_75, MAGENTA_75, RED_75, BLUE_75,
];
/// The reverse-blue castellations under them.
const CASTELLATIONS: [Rgb; 7] = [BLUE_75, BLACK, MAGENTA_75, BLACK, CYAN_75, BLACK, WHITE_75];
/// The bottom row: (right edge as a fraction `num/den` of the width, colour).
const BOTTOM_ROW: [(u64, u64, Rgb); 8] = [
    (5, 28, MINUS_I),
    (10, 28, WHITE_100),
    (15, 28, PLUS_Q),
    (5, 7, BLACK),
    (16, 21, PLUGE_SUB_BLACK),
    (17, 21, BLACK),
    (6, 7, PLUGE_PLUS_4),
    (1, 1, BLACK),
];

/// What a [`TestPattern`] draws under its moving box.
///
/// Every pattern is opaque RGBA with full-range 8-bit values (black is 0, white is 255).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Pattern {
    /// SMPTE EG 1 colour bars, with the row proportions GStreamer's and FFmpeg's generators
    /// use. Column edges are `floor(width * num / den)`; row edges `floor(2h/3)` and `floor(3h/4)`.
    ///
    /// - Rows `0 .. 2h/3`: seven bars, bar `i` spanning `i*w/7 .. (i+1)*w/7`, at 75 %: white
    ///   (191,191,191), yellow (191,191,0), cyan (0,191,191), green (0,191,0),
    ///   magenta (191,0,191), red (191,0,0), blue (0,0,191).
    /// - Rows `2h/3 .. 3h/4`: the reverse-blue castellations, same columns: blue, black,
    ///   magenta, black, cyan, black, white (75 %).
    /// - Rows `3h/4 .. h`, left to right: -I (0,33,76) to `5w/28`, 100 % white to `10w/28`,
    ///   +Q (50,0,106) to `15w/28`, black to `5w/7`, then the PLUGE under the red bar in three
    ///   stripes of `w/21`: "-4 %" (clipped to black, 0: full-range RGB has nothing below
    ///   black), black (0), "+4 %" (10,10,10); black from `6w/7` to the right edge.
    ///
    /// GStreamer's `pattern=smpte` uses 100 % bars (its `smpte75` the 75 % ones) and puts
    /// noise instead of black at the bottom right; FFmpeg's `smptebars` matches this layout.
    #[default]
    SmpteBars,
    /// A horizontal grey ramp: column `x` is `round(255 * x / (w - 1))` in R, G and B (0 at the
    /// left edge, 255 at the right; a one-pixel-wide frame is black).
    Gradient,
    /// Black (0,0,0).
    Black,
    /// White (255,255,255).
    White,
    /// Squares of `cell` × `cell` pixels, white (255) where `x / cell + y / cell` is even
    /// (the top-left square), black (0) elsewhere.
    Checkerboard {
        /// Square size in pixels, 1 ..= 16384.
        cell: u32,
    },
    /// A flash on each second of the clock, for lip sync against `audiotestsrc wave=ticks`
    /// (whose beep starts on each second boundary): white (255,255,255) on the first frame
    /// stamped at or after each second boundary, black (0,0,0) on every other frame. Exactly:
    /// the frame stamped `t` ns is white when a multiple of 1 s lies in `(t_prev, t]`,
    /// `t_prev` being the previous frame's timestamp (for the first frame, `t` minus the
    /// clock's period; see [`TestPattern::flashes`]). On a clock whose frames fall on the
    /// second (30 fps, 25, 60, …) the white frame is the one stamped on the boundary itself,
    /// and the first frame of a clock starting at 0 is white; a dropped tick moves the flash
    /// to the next frame shown, never skips it.
    Flash,
}

/// How a [`TestPattern`] is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestPatternConfig {
    /// Frame width in pixels, 1 ..= [`TestPattern::MAX_DIMENSION`].
    pub width: u32,
    /// Frame height in pixels, 1 ..= [`TestPattern::MAX_DIMENSION`].
    pub height: u32,
    /// What to draw.
    pub pattern: Pattern,
    /// Whether to draw the moving box (see [`TestPattern::moving_box`]).
    pub moving_box: bool,
    /// The frames' pixel format: [`PixelFormat::Rgba8`] (default) or [`PixelFormat::Uyvy`]
    /// (4:2:2, BT.709 limited range, as `Convert` makes it: what ST 2110-20 4:2:2 sends,
    /// without a conversion per frame).
    pub format: PixelFormat,
}

impl TestPatternConfig {
    /// `pattern` at `width` × `height`, with the moving box.
    pub fn new(width: u32, height: u32, pattern: Pattern) -> Self {
        Self {
            width,
            height,
            pattern,
            moving_box: true,
            format: PixelFormat::Rgba8,
        }
    }
}

impl Default for TestPatternConfig {
    /// 1280 × 720 SMPTE bars with the moving box.
    fn default() -> Self {
        Self::new(1280, 720, Pattern::SmpteBars)
    }
}

/// Where the moving box is on one frame: a square whose pixels are the pattern's inverse
/// (`255 - v` in R, G and B; alpha stays 255), so it shows on every pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MovingBox {
    /// Left edge in pixels.
    pub x: u32,
    /// Top edge in pixels.
    pub y: u32,
    /// Side length in pixels.
    pub size: u32,
}

/// The box's geometry for one frame size; its position is a pure function of the frame number.
#[derive(Debug, Clone, Copy)]
struct BoxPath {
    size: u32,
    step: u64,
    /// The largest `x` the box reaches.
    range: u64,
    y: u32,
}

impl BoxPath {
    fn new(width: u32, height: u32) -> Self {
        let size = (width.min(height) / 8).max(1);
        Self {
            size,
            step: u64::from((size / 4).max(1)),
            range: u64::from(width - size),
            y: (height - size) / 2,
        }
    }

    /// Bounces between the left and right edges, `step` pixels per frame number.
    fn at(&self, frame_number: u64) -> MovingBox {
        let x = if self.range == 0 {
            0
        } else {
            let period = 2 * self.range;
            let p = (frame_number % period) * self.step % period;
            if p <= self.range { p } else { period - p }
        };
        MovingBox {
            // `x <= range < width <= u32::MAX`.
            x: u32::try_from(x).unwrap_or(0),
            y: self.y,
            size: self.size,
        }
    }
}

/// A source of test frames: one pooled `Rgba8` (or `Uyvy`, see
/// [`TestPatternConfig::format`]) frame per tick on its output `"video"` (`[cpu]`), opaque and
/// marked [`AlphaMode::Straight`], stamped with the tick.
///
/// ```
/// use streamlib_handlers_video::{Pattern, TestPattern, TestPatternConfig};
///
/// let source = TestPattern::new(TestPatternConfig::new(640, 480, Pattern::SmpteBars))?;
/// // Frame 10 shows the box here; a receiver that sees it elsewhere got another frame.
/// let b = source.moving_box(10).expect("the box is on by default");
/// assert_eq!((b.y, b.size), ((480 - 60) / 2, 60));
/// # Ok::<(), streamlib_handlers_video::VideoError>(())
/// ```
pub struct TestPattern {
    config: TestPatternConfig,
    output: OutputPort<VideoFrame>,
    pool: FramePool,
    /// The static pattern, rendered once; every frame starts as a copy of it.
    pattern: Box<[u8]>,
    /// [`Pattern::Flash`]'s white frame (`pattern` holds its black one).
    flash: Option<Box<[u8]>>,
    /// The previous frame's timestamp, for [`Pattern::Flash`].
    last_timestamp: Option<u64>,
    path: Option<BoxPath>,
    /// Draw the frame stamp ([`crate::stamp`]) over the top rows.
    stamp: bool,
}

impl TestPattern {
    /// The largest width or height accepted.
    pub const MAX_DIMENSION: u32 = crate::error::MAX_FRAME_SIDE;

    /// Checks the configuration, renders the pattern and allocates the frame pool.
    ///
    /// Fails with [`VideoError::InvalidSize`] for a zero or too large size,
    /// [`VideoError::OutOfRange`] for a checkerboard cell of 0 or above
    /// [`MAX_DIMENSION`](Self::MAX_DIMENSION), and [`VideoError::Pool`] if the pool cannot be
    /// created.
    pub fn new(config: TestPatternConfig) -> Result<Self, VideoError> {
        let (width, height) = (config.width, config.height);
        VideoError::check_size(HANDLER, width, height)?;
        if let Pattern::Checkerboard { cell } = config.pattern
            && !(1..=Self::MAX_DIMENSION).contains(&cell)
        {
            return Err(VideoError::OutOfRange {
                handler: HANDLER,
                what: "checkerboard cell",
                value: cell.to_string(),
                range: "1..=16384",
            });
        }
        if !matches!(config.format, PixelFormat::Rgba8 | PixelFormat::Uyvy) {
            return Err(VideoError::UnsupportedFormat {
                handler: HANDLER,
                format: config.format,
                supported: "rgba8, uyvy",
            });
        }
        let layout =
            FrameLayout::new(width, height, config.format).map_err(|source| VideoError::Frame {
                handler: HANDLER,
                source,
            })?;
        let pool =
            FramePool::new("test_pattern", layout, POOL_INITIAL, POOL_MAX).map_err(|source| {
                VideoError::Pool {
                    handler: HANDLER,
                    source,
                }
            })?;
        let in_format = |rgba: Vec<u8>| -> Box<[u8]> {
            match config.format {
                PixelFormat::Uyvy => {
                    let stride = layout.stride() as usize;
                    let mut uyvy = vec![0; layout.buffer_len()];
                    crate::convert::rgba_to_uyvy(
                        &rgba,
                        width as usize * 4,
                        &mut uyvy,
                        stride,
                        width,
                    );
                    uyvy
                }
                _ => rgba,
            }
            .into_boxed_slice()
        };
        let pattern = in_format(render(width, height, config.pattern));
        let flash = (config.pattern == Pattern::Flash)
            .then(|| in_format(render(width, height, Pattern::White)));
        let path = config.moving_box.then(|| BoxPath::new(width, height));
        // Its format and size; the rate left open is the clock's.
        let output = OutputPort::new("video", MemoryCaps::CPU).with_format(Caps::Video(
            VideoCaps::fixed(config.format, width, height).with_alpha(AlphaMode::Straight),
        ));
        Ok(Self {
            config,
            output,
            pool,
            pattern,
            flash,
            last_timestamp: None,
            path,
            stamp: false,
        })
    }

    /// Draws a machine-readable [`stamp`](crate::stamp) of the frame number and the
    /// wall-clock time over the top rows of every frame: what glass-to-glass latency is
    /// measured with (`testpattern stamp=true`). Frames narrower than 176 pixels get none.
    pub fn with_stamp(mut self, on: bool) -> Self {
        self.stamp = on;
        self
    }

    /// Whether [`Pattern::Flash`] shows white on the frame stamped `timestamp_ns`, the
    /// previous frame having been stamped `previous_ns` (`None` for the first frame, which
    /// stands for `timestamp_ns` minus the period of `fps`): a multiple of 1 s lies in
    /// `(previous, timestamp_ns]`, so the frame is the first at or after a second boundary.
    pub fn flashes(timestamp_ns: u64, previous_ns: Option<u64>, fps: Rational) -> bool {
        const SECOND: u64 = 1_000_000_000;
        let previous = match previous_ns {
            Some(p) => p,
            None => {
                let period = fps.period_ns().round();
                let period = if period.is_finite() && period >= 1.0 {
                    period as u64
                } else {
                    1
                };
                match timestamp_ns.checked_sub(period) {
                    Some(p) => p,
                    // The boundary at 0 lies in (t - P, t] for every t < P.
                    None => return true,
                }
            }
        };
        previous < timestamp_ns && timestamp_ns / SECOND > previous / SECOND
    }

    /// The output (`"video"`).
    pub fn output(&self) -> OutputRef<VideoFrame> {
        self.output.handle()
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &TestPatternConfig {
        &self.config
    }

    /// The frames' layout (tightly packed `Rgba8`, or `Uyvy`).
    pub fn layout(&self) -> FrameLayout {
        self.pool.layout()
    }

    /// The frame pool, for its counters (`grown`, `exhausted`).
    pub fn pool(&self) -> &FramePool {
        &self.pool
    }

    /// Where the box is on the frame with this number (`None` when the box is off).
    ///
    /// The box is a square of side `max(1, min(width, height) / 8)`, vertically centred, that
    /// moves `max(1, side / 4)` pixels right per frame number and bounces between the left and
    /// right edges: a frame's box position tells which frame it is.
    pub fn moving_box(&self, frame_number: u64) -> Option<MovingBox> {
        self.path.map(|path| path.at(frame_number))
    }

    /// Writes one frame for `frame_number` into `out` (a buffer of the layout's length),
    /// `white` choosing [`Pattern::Flash`]'s white frame.
    fn draw(&self, out: &mut [u8], frame_number: u64, white: bool) {
        match (&self.flash, white) {
            (Some(flash), true) => out.copy_from_slice(flash),
            _ => out.copy_from_slice(&self.pattern),
        }
        let Some(b) = self.moving_box(frame_number) else {
            return;
        };
        let stride = self.pool.layout().stride() as usize;
        let (x, y, size) = (b.x as usize, b.y as usize, b.size as usize);
        if self.config.format == PixelFormat::Uyvy {
            // Whole pixel pairs: the box widens to even edges. Inverting RGB inverts Y about
            // the middle of 16..=235 and Cb, Cr about 128.
            let (first, last) = (x / 2, (x + size).div_ceil(2));
            for row in out.chunks_exact_mut(stride).skip(y).take(size) {
                for q in row[first * 4..last * 4].chunks_exact_mut(4) {
                    q[0] = 255u8.saturating_sub(q[0]).saturating_add(1);
                    q[1] = 251u8.saturating_sub(q[1]);
                    q[2] = 255u8.saturating_sub(q[2]).saturating_add(1);
                    q[3] = 251u8.saturating_sub(q[3]);
                }
            }
            return;
        }
        for row in out.chunks_exact_mut(stride).skip(y).take(size) {
            for px in row[x * 4..(x + size) * 4].chunks_exact_mut(4) {
                px[0] = !px[0];
                px[1] = !px[1];
                px[2] = !px[2];
            }
        }
    }
}

impl std::fmt::Debug for TestPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPattern")
            .field("config", &self.config)
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl StreamHandler for TestPattern {
    fn ports(&self) -> Ports {
        Ports::new().output(&self.output)
    }

    fn on_start(&mut self, _ctx: &StartContext<'_>) -> Result<(), HandlerError> {
        // Sized from the graph now that the output is connected.
        self.pool
            .fit_output(&self.output)
            .map_err(VideoError::pool(HANDLER))?;
        Ok(())
    }

    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        if !self.output.is_connected() {
            return Ok(());
        }
        // An empty pool skips this frame (counted in the stats); readers keep the last one.
        let Some(mut buf) = self.pool.acquire_for(&self.output) else {
            return Ok(());
        };
        let tick = *ctx.tick();
        let white =
            self.flash.is_some() && Self::flashes(tick.timestamp, self.last_timestamp, tick.fps);
        self.last_timestamp = Some(tick.timestamp);
        self.draw(&mut buf, tick.frame_number, white);
        if self.stamp {
            let layout = self.pool.layout();
            let (stride, width) = (layout.stride() as usize, layout.width());
            // The frame number modulo 2^32, as the stamp carries it.
            let frame = (tick.frame_number & u64::from(u32::MAX)) as u32;
            let now = crate::stamp::now_unix_ms();
            match self.config.format {
                PixelFormat::Uyvy => crate::stamp::draw_uyvy(&mut buf, stride, width, frame, now),
                _ => crate::stamp::draw_rgba(&mut buf, stride, width, frame, now),
            }
        }
        let frame = self
            .pool
            .frame(buf)
            .with_tick(ctx.tick())
            .with_alpha(AlphaMode::Straight);
        self.output.write(frame);
        Ok(())
    }
}

/// Renders the static pattern as tightly packed opaque RGBA.
fn render(width: u32, height: u32, pattern: Pattern) -> Vec<u8> {
    let (w, h) = (width as usize, height as usize);
    let mut out = vec![0u8; w * h * 4];
    let mut row = vec![0u8; w * 4];
    match pattern {
        Pattern::SmpteBars => {
            let bar_edges: Vec<(u64, u64)> = (1..=7).map(|i| (i, 7)).collect();
            let y1 = h * 2 / 3;
            let y2 = h * 3 / 4;
            let sections = [
                (0..y1, spans(&bar_edges, &TOP_BARS)),
                (y1..y2, spans(&bar_edges, &CASTELLATIONS)),
                (y2..h, BOTTOM_ROW.to_vec()),
            ];
            for (rows, row_spans) in sections {
                fill_spans(&mut row, &row_spans);
                for y in rows {
                    out[y * w * 4..(y + 1) * w * 4].copy_from_slice(&row);
                }
            }
        }
        Pattern::Gradient => {
            for (x, px) in row.chunks_exact_mut(4).enumerate() {
                let v = if w == 1 {
                    0
                } else {
                    (x * 255 + (w - 1) / 2) / (w - 1)
                };
                let v = u8::try_from(v).unwrap_or(u8::MAX);
                px.copy_from_slice(&[v, v, v, 255]);
            }
            out.chunks_exact_mut(w * 4)
                .for_each(|r| r.copy_from_slice(&row));
        }
        // Flash's black frame; its white one is rendered as White.
        Pattern::Black | Pattern::White | Pattern::Flash => {
            let v = if pattern == Pattern::White { 255 } else { 0 };
            for px in out.chunks_exact_mut(4) {
                px.copy_from_slice(&[v, v, v, 255]);
            }
        }
        Pattern::Checkerboard { cell } => {
            let cell = (cell as usize).max(1);
            for (y, r) in out.chunks_exact_mut(w * 4).enumerate() {
                for (x, px) in r.chunks_exact_mut(4).enumerate() {
                    let v = if (x / cell + y / cell).is_multiple_of(2) {
                        255
                    } else {
                        0
                    };
                    px.copy_from_slice(&[v, v, v, 255]);
                }
            }
        }
    }
    out
}

/// Pairs right edges with colours.
fn spans(edges: &[(u64, u64)], colours: &[Rgb]) -> Vec<(u64, u64, Rgb)> {
    edges
        .iter()
        .zip(colours)
        .map(|(&(num, den), &c)| (num, den, c))
        .collect()
}

/// Fills one RGBA row with colour spans; each span ends at `floor(width * num / den)`.
fn fill_spans(row: &mut [u8], spans: &[(u64, u64, Rgb)]) {
    let width = (row.len() / 4) as u64;
    let mut start = 0usize;
    for &(num, den, [r, g, b]) in spans {
        let end = usize::try_from(width * num / den).unwrap_or(usize::MAX);
        let end = end.clamp(start, row.len() / 4);
        for px in row[start * 4..end * 4].chunks_exact_mut(4) {
            px.copy_from_slice(&[r, g, b, 255]);
        }
        start = end;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn box_bounces_between_edges() {
        let path = BoxPath::new(100, 40);
        assert_eq!(path.size, 5);
        assert_eq!(path.step, 1);
        assert_eq!(path.at(0).x, 0);
        assert_eq!(path.at(95).x, 95);
        assert_eq!(path.at(96).x, 94);
        assert_eq!(path.at(190).x, 0);
        assert_eq!(path.at(191).x, 1);
        assert_eq!(path.at(u64::MAX).x, path.at(u64::MAX % 190).x);
        let tiny = BoxPath::new(1, 1);
        assert_eq!(
            tiny.at(12345),
            MovingBox {
                x: 0,
                y: 0,
                size: 1
            }
        );
    }

    #[test]
    fn flash_is_the_first_frame_at_or_after_each_second() {
        let at = |fps: Rational, n: u64| {
            let previous = n.checked_sub(1).map(|p| fps.frame_time_ns(p));
            TestPattern::flashes(fps.frame_time_ns(n), previous, fps)
        };
        let fps30 = Rational::fps(30);
        let white: Vec<u64> = (0..100).filter(|&n| at(fps30, n)).collect();
        assert_eq!(white, [0, 30, 60, 90]);
        // 29.97: frame 30 is at 1.001 s, the first after the boundary; one white per second.
        let ntsc = Rational::FPS_29_97;
        let white: Vec<u64> = (0..200).filter(|&n| at(ntsc, n)).collect();
        assert_eq!(white, [0, 30, 60, 90, 120, 150, 180]);
        // A first frame just past a boundary flashes; one just before it does not.
        let p = fps30.frame_time_ns(1);
        assert!(TestPattern::flashes(5_000_000_000 + p - 1, None, fps30));
        assert!(!TestPattern::flashes(5_000_000_000 - 1, None, fps30));
        assert!(TestPattern::flashes(5_000_000_000, None, fps30));
        // A dropped tick moves the flash to the next frame shown.
        assert!(TestPattern::flashes(
            fps30.frame_time_ns(31),
            Some(fps30.frame_time_ns(29)),
            fps30
        ));
        // A repeated timestamp never flashes twice.
        assert!(!TestPattern::flashes(
            5_000_000_000,
            Some(5_000_000_000),
            fps30
        ));
    }

    #[test]
    fn flash_pattern_draws_white_then_black() {
        let source = TestPattern::new(TestPatternConfig {
            moving_box: false,
            ..TestPatternConfig::new(8, 4, Pattern::Flash)
        })
        .unwrap();
        let mut out = vec![7u8; source.layout().buffer_len()];
        source.draw(&mut out, 0, true);
        assert!(out.chunks_exact(4).all(|px| px == [255, 255, 255, 255]));
        source.draw(&mut out, 1, false);
        assert!(out.chunks_exact(4).all(|px| px == [0, 0, 0, 255]));
    }

    #[test]
    fn smpte_spans_tile_the_row() {
        for w in 1..64usize {
            let mut row = vec![7u8; w * 4];
            fill_spans(&mut row, &BOTTOM_ROW);
            assert!(row.chunks_exact(4).all(|px| px[3] == 255), "width {w}");
        }
    }
}
