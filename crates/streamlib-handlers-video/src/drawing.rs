//! `Drawing`: a 2D canvas drawn by user code every tick, as a transparent overlay or over an
//! input frame, with text from a cached glyph rasteriser and variables set while running.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, TryLockError};

use streamlib_clock::TimedTick;
use streamlib_ports::{
    AlphaMode, Caps, DataMessage, Follow, FrameLayout, FramePool, HandlerError, InputPort,
    InputRef, MemoryCaps, OutputPort, OutputRef, PixelFormat, Ports, ProcessContext, StartContext,
    StreamHandler, VideoCaps, VideoFrame,
};
use tiny_skia::{Color, PixmapMut};

use crate::VideoError;

#[cfg(feature = "text")]
mod text;

/// Stand-in when the crate is built without the `text` feature: no font can be loaded.
#[cfg(not(feature = "text"))]
mod text {
    use tiny_skia::{Color, PixmapMut};

    use super::{FontSource, LineMetrics};
    use crate::VideoError;

    /// Never constructed.
    pub(crate) enum TextRenderer {}

    impl TextRenderer {
        #[allow(
            clippy::needless_pass_by_value,
            reason = "the same signature as the real loader, which consumes font bytes"
        )]
        pub(crate) fn load(source: FontSource) -> Result<Self, VideoError> {
            Err(VideoError::InvalidFont {
                origin: source.origin(),
                reason: "text support is not compiled in; enable the `text` feature of \
                         streamlib-handlers-video"
                    .to_owned(),
            })
        }
        pub(crate) fn line_metrics(&self, _size_px: f32) -> Option<LineMetrics> {
            match *self {}
        }
        pub(crate) fn measure(&self, _text: &str, _size_px: f32) -> f32 {
            match *self {}
        }
        pub(crate) fn draw(
            &mut self,
            _canvas: &mut PixmapMut<'_>,
            _text: &str,
            _x: f32,
            _y: f32,
            _size_px: f32,
            _color: Color,
        ) -> f32 {
            match *self {}
        }
    }
}

use text::TextRenderer;

const HANDLER: &str = "drawing";

/// Largest canvas side accepted, in pixels.
pub const MAX_DRAWING_SIDE: u32 = crate::error::MAX_FRAME_SIDE;

/// Output frames pre-allocated at construction, and the most the pool may grow to.
const POOL_INITIAL: usize = 4;
const POOL_MAX: usize = 8;

/// A variable's value, set through [`Drawing::vars`] or the `"vars"` input and read by the
/// draw callback through [`DrawContext`].
#[derive(Debug, Clone, PartialEq)]
pub enum VarValue {
    /// A number.
    Number(f64),
    /// Text.
    Text(String),
    /// A flag.
    Bool(bool),
}

impl VarValue {
    /// Parses a value as the `"vars"` input does: `true`/`false` become [`VarValue::Bool`], a
    /// finite number (`42`, `-1.5`, `1e3`) becomes [`VarValue::Number`], anything else
    /// (including `nan` and `inf`) stays [`VarValue::Text`]. Surrounding whitespace is trimmed.
    pub fn parse(value: &str) -> Self {
        let value = value.trim();
        match value {
            "true" => VarValue::Bool(true),
            "false" => VarValue::Bool(false),
            _ => match value.parse::<f64>() {
                Ok(n) if n.is_finite() => VarValue::Number(n),
                _ => VarValue::Text(value.to_owned()),
            },
        }
    }
}

impl fmt::Display for VarValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VarValue::Number(n) => fmt::Display::fmt(n, f),
            VarValue::Text(t) => f.write_str(t),
            VarValue::Bool(b) => fmt::Display::fmt(b, f),
        }
    }
}

impl From<f64> for VarValue {
    fn from(n: f64) -> Self {
        VarValue::Number(n)
    }
}

impl From<f32> for VarValue {
    fn from(n: f32) -> Self {
        VarValue::Number(f64::from(n))
    }
}

impl From<i32> for VarValue {
    fn from(n: i32) -> Self {
        VarValue::Number(f64::from(n))
    }
}

impl From<bool> for VarValue {
    fn from(b: bool) -> Self {
        VarValue::Bool(b)
    }
}

impl From<&str> for VarValue {
    fn from(t: &str) -> Self {
        VarValue::Text(t.to_owned())
    }
}

impl From<String> for VarValue {
    fn from(t: String) -> Self {
        VarValue::Text(t)
    }
}

type VarMap = HashMap<String, VarValue>;

fn set_var(vars: &mut VarMap, name: &str, value: VarValue) {
    match vars.get_mut(name) {
        Some(slot) => *slot = value,
        None => {
            vars.insert(name.to_owned(), value);
        }
    }
}

/// Applies `name=value` lines; blank lines and lines starting with `#` are skipped, malformed
/// ones are logged and skipped.
fn apply_var_lines(text: &str, mut set: impl FnMut(&str, VarValue)) {
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((name, value)) if !name.trim().is_empty() => {
                set(name.trim(), VarValue::parse(value));
            }
            _ => tracing::warn!(
                line,
                "drawing: ignoring a vars line that is not `name=value`"
            ),
        }
    }
}

/// Updates waiting for the next frame.
#[derive(Default)]
struct VarsShared {
    pending: Mutex<Vec<(String, VarValue)>>,
    /// Set when `pending` has entries, so that frames without updates take no lock.
    dirty: AtomicBool,
}

/// A handle for setting a [`Drawing`]'s variables from anywhere (another thread, a control
/// plane). Cheap to clone; `Send + Sync`. Updates are applied between frames: the next frame
/// sees every update made before it started, and a frame never sees a partial batch.
#[derive(Clone)]
pub struct DrawingVars {
    shared: Arc<VarsShared>,
}

impl DrawingVars {
    /// Sets `name` to `value` for the next frame on.
    pub fn set(&self, name: impl Into<String>, value: impl Into<VarValue>) {
        let mut pending = self.lock();
        push_pending(&mut pending, name.into(), value.into());
        self.shared.dirty.store(true, Ordering::Release);
    }

    /// Sets several variables from `name=value` lines, parsed as the `"vars"` input does
    /// (see [`VarValue::parse`]); all of them reach the same frame.
    pub fn set_lines(&self, text: &str) {
        let mut pending = self.lock();
        apply_var_lines(text, |name, value| {
            push_pending(&mut pending, name.to_owned(), value);
        });
        self.shared.dirty.store(true, Ordering::Release);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, VarValue)>> {
        self.shared
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Keeps one pending entry per name: a value set twice between frames replaces itself.
fn push_pending(pending: &mut Vec<(String, VarValue)>, name: String, value: VarValue) {
    match pending.iter_mut().find(|(n, _)| *n == name) {
        Some(entry) => entry.1 = value,
        None => pending.push((name, value)),
    }
}

impl fmt::Debug for DrawingVars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DrawingVars")
            .field("pending", &*self.lock())
            .finish()
    }
}

/// Where the font for text comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FontSource {
    /// DejaVu Sans from the usual system locations (Debian/Ubuntu's `fonts-dejavu-core` at
    /// `/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf`, then the Arch, Fedora and BSD paths).
    System,
    /// A TrueType/OpenType file.
    Path(PathBuf),
    /// Font file contents already in memory (e.g. `include_bytes!`).
    Bytes(Vec<u8>),
}

impl FontSource {
    /// How errors name this source.
    #[cfg_attr(feature = "text", allow(dead_code, reason = "used without `text`"))]
    fn origin(&self) -> String {
        match self {
            FontSource::System => "system font".to_owned(),
            FontSource::Path(path) => path.display().to_string(),
            FontSource::Bytes(_) => "supplied bytes".to_owned(),
        }
    }
}

/// How a [`Drawing`] is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawingConfig {
    /// Canvas width in pixels (1..=[`MAX_DRAWING_SIDE`]).
    pub width: u32,
    /// Canvas height in pixels (1..=[`MAX_DRAWING_SIDE`]).
    pub height: u32,
    /// The font for [`DrawContext::draw_text`]; `None` draws no text.
    pub font: Option<FontSource>,
    /// Premultiplied RGBA the canvas is cleared to before each frame (when no background frame
    /// is drawn over). Each of R, G, B must not exceed A. Transparent by default.
    pub clear: [u8; 4],
}

impl DrawingConfig {
    /// A `width`×`height` transparent canvas without text.
    pub fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            font: None,
            clear: [0; 4],
        }
    }

    /// The same, with a font for text.
    pub fn with_font(mut self, font: FontSource) -> Self {
        self.font = Some(font);
        self
    }

    /// The same, cleared to `clear` (premultiplied RGBA) each frame.
    pub fn with_clear(mut self, clear: [u8; 4]) -> Self {
        self.clear = clear;
        self
    }
}

/// Vertical metrics of the font at one size, in pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LineMetrics {
    /// How far glyphs reach above the baseline (positive).
    pub ascent: f32,
    /// How far glyphs reach below the baseline (negative).
    pub descent: f32,
    /// Baseline-to-baseline distance the font recommends.
    pub line_height: f32,
}

/// The font and whether its absence was already reported.
struct TextState {
    renderer: Option<TextRenderer>,
    warned_missing: bool,
}

/// What the draw callback sees each frame: timing, size, variables, and text drawing.
pub struct DrawContext<'a> {
    tick: &'a TimedTick,
    width: u32,
    height: u32,
    vars: &'a VarMap,
    text: &'a mut TextState,
}

impl DrawContext<'_> {
    /// The tick being drawn.
    pub fn tick(&self) -> &TimedTick {
        self.tick
    }

    /// The tick's timestamp in seconds (in the clock's timescale).
    pub fn time_s(&self) -> f64 {
        self.tick.timestamp as f64 / 1e9
    }

    /// The tick's frame number.
    pub fn frame_number(&self) -> u64 {
        self.tick.frame_number
    }

    /// The clock's nominal rate in frames per second (29.97… for 30000/1001).
    pub fn fps(&self) -> f64 {
        self.tick.fps.as_f64()
    }

    /// Canvas width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Canvas height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// A variable, if set.
    pub fn var(&self, name: &str) -> Option<&VarValue> {
        self.vars.get(name)
    }

    /// A numeric variable: a number as is, a flag as 1 or 0; `default` when unset or text.
    pub fn number(&self, name: &str, default: f64) -> f64 {
        match self.vars.get(name) {
            Some(VarValue::Number(n)) => *n,
            Some(VarValue::Bool(b)) => f64::from(u8::from(*b)),
            Some(VarValue::Text(_)) | None => default,
        }
    }

    /// A text variable; `None` when unset or not text (`"42"` from the `"vars"` input parses
    /// as a number: format [`var`](Self::var) to show any value).
    pub fn text(&self, name: &str) -> Option<&str> {
        match self.vars.get(name) {
            Some(VarValue::Text(t)) => Some(t),
            _ => None,
        }
    }

    /// A flag variable: a flag as is, a number as `!= 0`; `default` when unset or text.
    pub fn flag(&self, name: &str, default: bool) -> bool {
        match self.vars.get(name) {
            Some(VarValue::Bool(b)) => *b,
            Some(VarValue::Number(n)) => *n != 0.0,
            Some(VarValue::Text(_)) | None => default,
        }
    }

    /// Whether a font is loaded (text can be drawn).
    pub fn has_font(&self) -> bool {
        self.text.renderer.is_some()
    }

    /// Draws `text` in one line, its baseline starting at (`x`, `y_baseline`), `size_px`
    /// pixels per em, blended source-over in `color`; returns the advance width in pixels.
    ///
    /// Sizes round to half pixels; glyphs land on whole pixels. Each (character, size) is
    /// rasterised once and cached, so after the first frame that shows them, drawing the same
    /// characters allocates nothing. Sizes outside `(0, 4096]` and non-finite positions draw
    /// nothing. Without a font (see [`DrawingConfig::font`]) nothing is drawn and 0 returned.
    pub fn draw_text(
        &mut self,
        canvas: &mut PixmapMut<'_>,
        text: &str,
        x: f32,
        y_baseline: f32,
        size_px: f32,
        color: Color,
    ) -> f32 {
        match &mut self.text.renderer {
            Some(renderer) => renderer.draw(canvas, text, x, y_baseline, size_px, color),
            None => {
                if !self.text.warned_missing {
                    self.text.warned_missing = true;
                    tracing::warn!("drawing: draw_text called but no font is configured");
                }
                0.0
            }
        }
    }

    /// The advance width `text` would take at `size_px`, as [`draw_text`](Self::draw_text)
    /// returns it; 0 without a font.
    pub fn measure_text(&self, text: &str, size_px: f32) -> f32 {
        self.text
            .renderer
            .as_ref()
            .map_or(0.0, |r| r.measure(text, size_px))
    }

    /// The font's vertical metrics at `size_px`; `None` without a font.
    pub fn line_metrics(&self, size_px: f32) -> Option<LineMetrics> {
        self.text.renderer.as_ref()?.line_metrics(size_px)
    }
}

impl fmt::Debug for DrawContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DrawContext")
            .field("tick", self.tick)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("vars", self.vars)
            .field("has_font", &self.has_font())
            .finish()
    }
}

type DrawFn =
    dyn FnMut(&mut PixmapMut<'_>, &mut DrawContext<'_>) -> Result<(), HandlerError> + Send;

/// A 2D canvas drawn by your callback every tick, with [tiny-skia] shapes and cached text.
///
/// Each tick it takes a frame from a pool made at construction, wraps it as a
/// [`tiny_skia::PixmapMut`] (no copy), clears it to [`DrawingConfig::clear`] — or, when the
/// optional `"video"` input is connected, copies the newest input frame in — calls the
/// callback, and writes the frame (`Rgba8`, [`AlphaMode::Premultiplied`], stamped with the
/// tick) to its `"video"` output.
///
/// # Ports
/// - output `"video"`: `Rgba8` premultiplied frames of the configured size, `[cpu]`.
/// - input `"video"` ([`background_input`](Self::background_input)), optional: draw over this
///   stream. It must be `Rgba8`, in CPU memory and of the configured size; straight-alpha frames
///   are premultiplied on the way in. Until the first frame arrives the canvas is cleared.
/// - input `"vars"` ([`vars_input`](Self::vars_input)), optional, ordered: each message's
///   UTF-8 payload is `name=value` lines applied before the frame is drawn (see
///   [`VarValue::parse`]; blank and `#` lines are skipped). The topic is not checked.
///
/// # Errors and panics
/// A callback error fails the tick with that error (the stream's restart policy applies). A
/// callback panic unwinds into the runtime, which contains it like any handler panic.
///
/// # Allocation
/// The handler allocates nothing per frame at steady state (new variable names and text values
/// are stored as `String`s when they arrive; numbers and flags for known names are not). Whether
/// a frame allocates is up to the callback, and tiny-skia 0.12 allocates inside some calls
/// (measured):
///
/// | call | allocations per call |
/// | --- | --- |
/// | `fill_rect` with an identity transform | 0 |
/// | `draw_pixmap` at integer `x`, `y`, identity transform | 0 |
/// | `stroke_path`, hairline (width ≤ 1 px after transform) | 0 |
/// | `fill_path` (anti-aliased, identity transform) | 3 (edge list, coverage runs) |
/// | `fill_path` / `fill_rect` / `draw_pixmap` with another transform | 5–7 (path copy) |
/// | `stroke_path`, width > 1 px | 7 |
/// | building a `Path` | several |
///
/// So: build paths once, outside the callback. For shapes that only move, render them once
/// into a [`tiny_skia::Pixmap`] (a sprite) and `draw_pixmap` it at whole-pixel positions each
/// frame: that allocates nothing. Moving a prebuilt path with a `Transform` is convenient and
/// fast but costs a path copy per call. Text from [`DrawContext::draw_text`] allocates only the
/// first time a character is drawn at a size; format changing text into a reused `String`.
///
/// The example needs the `text` feature and DejaVu Sans installed.
#[cfg_attr(feature = "text", doc = "```")]
#[cfg_attr(not(feature = "text"), doc = "```ignore")]
/// use std::fmt::Write as _;
/// use streamlib_handlers_video::{Drawing, DrawingConfig, FontSource};
/// use streamlib_handlers_video::tiny_skia::{
///     Color, FillRule, Paint, PathBuilder, Pixmap, PixmapPaint, Rect, Transform,
/// };
///
/// // Built once: a red disc rendered into a sprite, a paint, a reusable label buffer.
/// let disc = PathBuilder::from_circle(20.0, 20.0, 20.0).ok_or("circle")?;
/// let mut sprite = Pixmap::new(40, 40).ok_or("sprite")?;
/// let mut red = Paint::default();
/// red.set_color_rgba8(220, 30, 30, 255);
/// sprite.fill_path(&disc, &red, FillRule::Winding, Transform::identity(), None);
/// let mut label = String::with_capacity(64);
///
/// let config = DrawingConfig::new(640, 360).with_font(FontSource::System);
/// let drawing = Drawing::new(config, move |canvas, ctx| {
///     let x = (ctx.time_s() * 100.0) as i32 % 600;
///     canvas.draw_pixmap(x, 160, sprite.as_ref(), &PixmapPaint::default(), Transform::identity(), None);
///     if let Some(bar) = Rect::from_xywh(0.0, 330.0, 640.0, 30.0) {
///         let mut shade = Paint::default();
///         shade.set_color_rgba8(0, 0, 0, 160);
///         canvas.fill_rect(bar, &shade, Transform::identity(), None);
///     }
///     label.clear();
///     let _ = write!(label, "frame {}  {}", ctx.frame_number(), ctx.text("title").unwrap_or(""));
///     ctx.draw_text(canvas, &label, 8.0, 352.0, 20.0, Color::WHITE);
///     Ok(())
/// })?;
/// drawing.vars().set("title", "camera 1");
/// // Wire it: runtime.connect(&drawing.output(), &display_input), optionally
/// // runtime.connect(&camera_output, &drawing.background_input()).
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [tiny-skia]: https://docs.rs/tiny-skia
pub struct Drawing {
    layout: FrameLayout,
    clear: [u8; 4],
    output: OutputPort<VideoFrame>,
    background: InputPort<VideoFrame>,
    vars_in: InputPort<DataMessage>,
    pool: FramePool,
    draw: Box<DrawFn>,
    text: TextState,
    vars: VarMap,
    shared: Arc<VarsShared>,
}

impl Drawing {
    /// A drawing of `config`'s size whose frames `draw` paints.
    ///
    /// The font is loaded and validated now: a missing or unreadable file is
    /// [`VideoError::FontIo`] (naming the path), bytes that are not a font are
    /// [`VideoError::InvalidFont`], [`FontSource::System`] with no font installed is
    /// [`VideoError::NoSystemFont`] (listing the paths searched). A side of 0 or above
    /// [`MAX_DRAWING_SIDE`] is [`VideoError::InvalidSize`]; a clear colour that is not
    /// premultiplied is [`VideoError::OutOfRange`].
    pub fn new(
        config: DrawingConfig,
        draw: impl FnMut(&mut PixmapMut<'_>, &mut DrawContext<'_>) -> Result<(), HandlerError>
        + Send
        + 'static,
    ) -> Result<Self, VideoError> {
        let DrawingConfig {
            width,
            height,
            font,
            clear,
        } = config;
        VideoError::check_size(HANDLER, width, height)?;
        if clear[..3].iter().any(|&c| c > clear[3]) {
            return Err(VideoError::OutOfRange {
                handler: HANDLER,
                what: "clear",
                value: format!("{clear:?}"),
                range: "premultiplied RGBA: each of R, G, B at most A",
            });
        }
        let renderer = match font {
            Some(source) => Some(TextRenderer::load(source)?),
            None => None,
        };
        let layout = FrameLayout::new(width, height, PixelFormat::Rgba8).map_err(|source| {
            VideoError::Frame {
                handler: HANDLER,
                source,
            }
        })?;
        let pool = FramePool::new(HANDLER, layout, POOL_INITIAL, POOL_MAX).map_err(|source| {
            VideoError::Pool {
                handler: HANDLER,
                source,
            }
        })?;
        // The background is copied in as it is: RGBA8 at the drawing's size (either alpha).
        // The output is always premultiplied RGBA8 at that size, at the background's rate
        // when there is one (the clock's otherwise).
        let background = InputPort::new("video", MemoryCaps::CPU)
            .optional()
            .with_format(Caps::Video(VideoCaps::fixed(
                PixelFormat::Rgba8,
                width,
                height,
            )));
        let output = OutputPort::new("video", MemoryCaps::CPU).with_format(Caps::Video(
            VideoCaps::fixed(PixelFormat::Rgba8, width, height)
                .with_alpha(AlphaMode::Premultiplied),
        ));
        output.follows(&background, Follow::RATE);
        Ok(Self {
            layout,
            clear,
            output,
            background,
            vars_in: InputPort::new("vars", MemoryCaps::CPU).optional(),
            pool,
            draw: Box::new(draw),
            text: TextState {
                renderer,
                warned_missing: false,
            },
            vars: VarMap::new(),
            shared: Arc::default(),
        })
    }

    /// The `"video"` output: `Rgba8`, premultiplied, `[cpu]`.
    pub fn output(&self) -> OutputRef<VideoFrame> {
        self.output.handle()
    }

    /// The optional `"video"` input to draw over (latest frame; see the type's docs).
    pub fn background_input(&self) -> InputRef<VideoFrame> {
        self.background.handle()
    }

    /// The optional `"vars"` input: `name=value` lines, every message in order.
    pub fn vars_input(&self) -> InputRef<DataMessage> {
        self.vars_in.handle()
    }

    /// A handle for setting variables from outside the pipeline.
    pub fn vars(&self) -> DrawingVars {
        DrawingVars {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The pool output frames come from (for its counters).
    pub fn pool(&self) -> &FramePool {
        &self.pool
    }

    /// Moves updates from [`DrawingVars`] handles into the frame's variables. Takes no lock
    /// when there are none, and skips (until the next frame) rather than wait for a setter.
    fn apply_pending_vars(&mut self) {
        if !self.shared.dirty.load(Ordering::Acquire) {
            return;
        }
        let mut pending = match self.shared.pending.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        self.shared.dirty.store(false, Ordering::Release);
        for (name, value) in pending.drain(..) {
            match self.vars.get_mut(&name) {
                Some(slot) => *slot = value,
                None => {
                    self.vars.insert(name, value);
                }
            }
        }
    }

    fn apply_var_messages(&mut self) {
        while let Some(message) = self.vars_in.recv() {
            match message.as_text() {
                Some(text) => apply_var_lines(text, |name, value| {
                    set_var(&mut self.vars, name, value);
                }),
                None => tracing::warn!(
                    topic = &*message.topic,
                    "drawing: ignoring a vars message whose payload is not UTF-8"
                ),
            }
        }
    }

    /// Fills the canvas bytes: the background frame if one is connected and has arrived, else
    /// the clear colour.
    fn prepare_canvas(&self, canvas: &mut [u8]) -> Result<(), HandlerError> {
        let background = if self.background.is_connected() {
            self.background.latest()
        } else {
            None
        };
        match background {
            Some(frame) => copy_background(&frame, self.layout, canvas),
            None => {
                fill_clear(canvas, self.clear);
                Ok(())
            }
        }
    }
}

fn fill_clear(canvas: &mut [u8], clear: [u8; 4]) {
    if clear.iter().all(|&c| c == clear[0]) {
        canvas.fill(clear[0]);
    } else {
        for px in canvas.chunks_exact_mut(4) {
            px.copy_from_slice(&clear);
        }
    }
}

/// Copies `frame` into the canvas, premultiplying straight alpha.
fn copy_background(
    frame: &VideoFrame,
    layout: FrameLayout,
    canvas: &mut [u8],
) -> Result<(), HandlerError> {
    if frame.format() != PixelFormat::Rgba8 {
        return Err(VideoError::UnsupportedFormat {
            handler: HANDLER,
            format: frame.format(),
            supported: "rgba8",
        }
        .into());
    }
    let src = frame
        .cpu_bytes()
        .ok_or(VideoError::NotInCpuMemory { handler: HANDLER })?;
    if (frame.width(), frame.height()) != (layout.width(), layout.height()) {
        return Err(HandlerError::msg(format_args!(
            "drawing: the background frame is {}x{} but the drawing is {}x{}; \
             scale the input or configure the drawing at the input's size",
            frame.width(),
            frame.height(),
            layout.width(),
            layout.height()
        )));
    }
    let row_len = layout.width() as usize * 4;
    let src_stride = frame.stride() as usize;
    let straight = frame.alpha() == AlphaMode::Straight;
    for (y, dst_row) in canvas.chunks_exact_mut(row_len).enumerate() {
        let start = y * src_stride;
        // The frame's layout was checked against its buffer when it was built.
        let Some(src_row) = src.get(start..start + row_len) else {
            return Err(HandlerError::msg(
                "drawing: background frame buffer is short",
            ));
        };
        dst_row.copy_from_slice(src_row);
        if straight {
            premultiply(dst_row);
        }
    }
    Ok(())
}

/// Straight to premultiplied alpha, in place, rounding to nearest.
fn premultiply(row: &mut [u8]) {
    // Opaque rows (the common case) need no change: a branch-free scan finds them fast.
    let all = row.chunks_exact(4).fold(u32::MAX, |all, px| {
        all & u32::from_le_bytes([px[0], px[1], px[2], px[3]])
    });
    if all >> 24 == 0xff {
        return;
    }
    for px in row.chunks_exact_mut(4) {
        let a = u32::from(px[3]);
        if a == 255 {
            continue;
        }
        for c in &mut px[..3] {
            *c = div255(u32::from(*c) * a) as u8;
        }
    }
}

/// `x / 255`, rounded to nearest, exact for `x` in `0..=255 * 255`.
#[inline]
fn div255(x: u32) -> u32 {
    let x = x + 128;
    (x + (x >> 8)) >> 8
}

impl StreamHandler for Drawing {
    fn ports(&self) -> Ports {
        Ports::new()
            .input(&self.background)
            .input(&self.vars_in)
            .output(&self.output)
    }

    fn on_start(&mut self, _ctx: &StartContext<'_>) -> Result<(), HandlerError> {
        // Sized from the graph now that the output is connected.
        self.pool
            .fit_output(&self.output)
            .map_err(VideoError::pool(HANDLER))?;
        Ok(())
    }

    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        self.apply_pending_vars();
        self.apply_var_messages();
        // An empty pool skips this frame (counted in the stats); readers keep the last one.
        let Some(mut buf) = self.pool.acquire_for(&self.output) else {
            return Ok(());
        };
        self.prepare_canvas(&mut buf)?;
        let (width, height) = (self.layout.width(), self.layout.height());
        let mut canvas =
            PixmapMut::from_bytes(&mut buf, width, height).ok_or(VideoError::InvalidSize {
                handler: HANDLER,
                width,
                height,
                reason: "tiny-skia refused the canvas",
            })?;
        let mut draw_ctx = DrawContext {
            tick: ctx.tick(),
            width,
            height,
            vars: &self.vars,
            text: &mut self.text,
        };
        (self.draw)(&mut canvas, &mut draw_ctx)?;
        let frame = self
            .pool
            .frame(buf)
            .with_tick(ctx.tick())
            .with_alpha(AlphaMode::Premultiplied);
        self.output.write(frame);
        Ok(())
    }
}

impl fmt::Debug for Drawing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drawing")
            .field("layout", &self.layout)
            .field("clear", &self.clear)
            .field("has_font", &self.text.renderer.is_some())
            .field("vars", &self.vars)
            .field("skipped", &self.output.pool_counters().skipped_pool_empty)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_as_documented() {
        assert_eq!(VarValue::parse(" 42 "), VarValue::Number(42.0));
        assert_eq!(VarValue::parse("-1.5e1"), VarValue::Number(-15.0));
        assert_eq!(VarValue::parse("true"), VarValue::Bool(true));
        assert_eq!(VarValue::parse("false"), VarValue::Bool(false));
        assert_eq!(VarValue::parse("nan"), VarValue::Text("nan".into()));
        assert_eq!(VarValue::parse("inf"), VarValue::Text("inf".into()));
        assert_eq!(
            VarValue::parse(" Camera 1 "),
            VarValue::Text("Camera 1".into())
        );
        assert_eq!(VarValue::parse(""), VarValue::Text(String::new()));
    }

    #[test]
    fn var_lines_skip_comments_and_malformed_lines() {
        let mut vars = VarMap::new();
        apply_var_lines(
            "# header\n x = 3 \n\nlabel=a=b\nnonsense\n=5\nshow=true\r\n",
            |name, value| set_var(&mut vars, name, value),
        );
        assert_eq!(vars.len(), 3, "{vars:?}");
        assert_eq!(vars["x"], VarValue::Number(3.0));
        assert_eq!(vars["label"], VarValue::Text("a=b".into()));
        assert_eq!(vars["show"], VarValue::Bool(true));
    }

    #[test]
    fn pending_updates_coalesce_per_name() {
        let mut pending = Vec::new();
        push_pending(&mut pending, "a".into(), VarValue::Number(1.0));
        push_pending(&mut pending, "b".into(), VarValue::Number(2.0));
        push_pending(&mut pending, "a".into(), VarValue::Number(3.0));
        assert_eq!(
            pending,
            vec![
                ("a".to_owned(), VarValue::Number(3.0)),
                ("b".to_owned(), VarValue::Number(2.0))
            ]
        );
    }

    #[test]
    fn div255_is_exact_rounding() {
        for x in 0..=255 * 255 {
            let expected = ((f64::from(x) / 255.0) + 0.5).floor() as u32;
            assert_eq!(div255(x), expected, "x = {x}");
        }
    }

    #[test]
    fn premultiply_rounds_to_nearest() {
        let mut row = [200, 100, 0, 128, 10, 20, 30, 255, 255, 255, 255, 0];
        premultiply(&mut row);
        assert_eq!(row, [100, 50, 0, 128, 10, 20, 30, 255, 0, 0, 0, 0]);
    }
}
