//! The `Compositor` handler: stacks up to 64 video layers, each placed, faded and ordered,
//! into one straight-alpha RGBA8 frame per tick.
//!
//! Layers are drawn in ascending `z` (ties in index order) over the background with
//! source-over, in exact integer arithmetic (see [`composite_over`] for the formulas). The
//! canvas is kept premultiplied while drawing and converted to straight alpha row by row at
//! the end; an opaque background keeps every pixel opaque, so that conversion is skipped.
//!
//! The frame is drawn a row at a time: the row is built in a scratch buffer that stays in L1
//! cache (background, then every layer's span of that row, then the straight-alpha
//! conversion), and streamed to the output frame once finished. Each layer is read from memory
//! once, and the output written once without being read. With a `concurrency_limit` of `n`
//! the rows are cut into `n` bands of consecutive rows drawn in parallel on rayon's global pool
//! (at most as many at once as that pool has threads). Steady state allocates nothing on one
//! band; on several, rayon's job injector allocates one small block per 63 frames.

mod blend;
mod controls;
#[cfg(feature = "gpu")]
mod gpu;

use std::fmt;
use std::sync::Arc;

use rayon::prelude::*;
use streamlib_ports::{
    AlphaMode, Caps, FrameLayout, FramePool, HandlerError, InputPort, InputRef, MemoryCaps,
    OutputPort, OutputRef, PixelFormat, Ports, ProcessContext, StartContext, StreamHandler,
    VideoCaps, VideoFrame,
};

use self::blend::{
    Blend, blend_span, fill_row, finish_streaming, premultiply_pixel, stream_row, unpremultiply_row,
};
pub use self::controls::{CompositorConfig, CompositorControls, LayerConfig, MissingLayer};
use self::controls::{MAX_LAYERS, SharedLayers};
use crate::VideoError;

const HANDLER: &str = "compositor";
const SUPPORTED: &str = "rgba8, bgra8";

/// One layer clipped to the canvas, ready to draw.
#[derive(Debug, Clone, Copy)]
struct DrawOp<'a> {
    pixels: &'a [u8],
    stride: usize,
    /// Canvas columns `x0..x1` and rows `y0..y1` covered.
    x0: usize,
    x1: usize,
    y0: usize,
    y1: usize,
    /// The layer's pixel drawn at canvas (`x0`, `y0`).
    src_x: usize,
    src_y: usize,
    blend: Blend,
}

impl DrawOp<'static> {
    const NONE: Self = Self {
        pixels: &[],
        stride: 0,
        x0: 0,
        x1: 0,
        y0: 0,
        y1: 0,
        src_x: 0,
        src_y: 0,
        blend: Blend {
            premultiplied: false,
            swap_rb: false,
            opacity: 0,
        },
    };
}

/// Checks that a layer frame can be drawn (RGBA8/BGRA8 in host memory, whole buffer) and
/// returns its bytes.
fn layer_bytes(frame: &VideoFrame) -> Result<&[u8], VideoError> {
    let format = frame.format();
    if !matches!(format, PixelFormat::Rgba8 | PixelFormat::Bgra8) {
        return Err(VideoError::UnsupportedFormat {
            handler: HANDLER,
            format,
            supported: SUPPORTED,
        });
    }
    let bytes = frame
        .cpu_bytes()
        .ok_or(VideoError::NotInCpuMemory { handler: HANDLER })?;
    frame
        .layout()
        .check_buffer(bytes.len())
        .map_err(|source| VideoError::Frame {
            handler: HANDLER,
            source,
        })?;
    Ok(bytes)
}

/// Clips `layer` placed at (`x`, `y`) to a `width`×`height` canvas; `None` if nothing of it
/// is visible.
fn draw_op<'a>(
    layer: &'a VideoFrame,
    width: u32,
    height: u32,
    (x, y): (i32, i32),
    opacity: u8,
) -> Result<Option<DrawOp<'a>>, VideoError> {
    let pixels = layer_bytes(layer)?;
    // i64: no overflow for any i32 position plus a u32 size.
    let span = |pos: i32, len: u32, canvas: u32| {
        let start = i64::from(pos).max(0);
        let end = (i64::from(pos) + i64::from(len)).min(i64::from(canvas));
        (start < end).then(|| {
            // All three lie in 0..=canvas (≤ 16384) or 0..len: they fit a usize.
            (
                start as usize,
                end as usize,
                (start - i64::from(pos)) as usize,
            )
        })
    };
    let (Some((x0, x1, src_x)), Some((y0, y1, src_y))) = (
        span(x, layer.width(), width),
        span(y, layer.height(), height),
    ) else {
        return Ok(None);
    };
    Ok(Some(DrawOp {
        pixels,
        stride: layer.stride() as usize,
        x0,
        x1,
        y0,
        y1,
        src_x,
        src_y,
        blend: Blend {
            premultiplied: layer.alpha() == AlphaMode::Premultiplied,
            swap_rb: layer.format() == PixelFormat::Bgra8,
            opacity,
        },
    }))
}

/// How a band of canvas rows is drawn.
#[derive(Debug, Clone, Copy)]
struct RowPlan<'a> {
    stride: usize,
    width: usize,
    ops: &'a [DrawOp<'a>],
    /// Premultiplied fill drawn first, if any.
    background: Option<[u8; 4]>,
    /// Convert each row to straight alpha at the end.
    unpremultiply: bool,
}

/// Draws canvas rows `first_row..` (as many as `band` holds): optional background fill, every
/// op in order, optional conversion to straight alpha. With a `scratch` row the row is built
/// there (in L1 cache) and streamed to `band` once finished; without, it is drawn in place.
fn draw_rows(band: &mut [u8], first_row: usize, plan: RowPlan<'_>, mut scratch: Option<&mut [u8]>) {
    let row_len = plan.width * 4;
    for (i, out) in band.chunks_mut(plan.stride).enumerate() {
        let y = first_row + i;
        let out = &mut out[..row_len];
        let row = match scratch.as_deref_mut() {
            Some(scratch) => &mut scratch[..row_len],
            None => &mut *out,
        };
        if let Some(pixel) = plan.background {
            fill_row(row, pixel);
        }
        for op in plan.ops.iter().filter(|op| (op.y0..op.y1).contains(&y)) {
            let start = (op.src_y + y - op.y0) * op.stride + op.src_x * 4;
            let len = (op.x1 - op.x0) * 4;
            blend_span(
                &mut row[op.x0 * 4..op.x1 * 4],
                &op.pixels[start..start + len],
                op.blend,
            );
        }
        if plan.unpremultiply {
            unpremultiply_row(row);
        }
        if let Some(scratch) = scratch.as_deref() {
            stream_row(out, &scratch[..row_len]);
        }
    }
    if scratch.is_some() {
        finish_streaming();
    }
}

fn check_canvas(canvas: &[u8], layout: FrameLayout) -> Result<(), VideoError> {
    if layout.format() != PixelFormat::Rgba8 {
        return Err(VideoError::UnsupportedFormat {
            handler: HANDLER,
            format: layout.format(),
            supported: "rgba8 (canvas)",
        });
    }
    layout
        .check_buffer(canvas.len())
        .map_err(|source| VideoError::Frame {
            handler: HANDLER,
            source,
        })
}

/// Blends `layer` onto a **premultiplied** RGBA8 `canvas`, its top-left corner at canvas
/// position (`x`, `y`), clipped to the canvas, at `opacity` (0..=255) times its own alpha.
/// The layer is RGBA8 or BGRA8 in host memory, straight or premultiplied as its
/// [`AlphaMode`] says.
///
/// Exact integer arithmetic, with `div255(v) = (v + 127) / 255` (`v / 255` rounded to
/// nearest), for a layer pixel `(c0, c1, c2, α)` over a canvas pixel `(d0, d1, d2, dα)`:
/// - `a = div255(α · opacity)`;
/// - straight layer: `out_k = div255(c_k · a + d_k · (255 − a))`,
///   `out_α = div255(255 · a + dα · (255 − a))`;
/// - premultiplied layer: `out_k = min(255, div255(c_k · opacity + d_k · (255 − a)))` for the
///   three colours and for alpha (with `α` as `c_k`).
///
/// So an opaque pixel at opacity 255 is copied exactly, and opacity 0 leaves the canvas
/// untouched. [`unpremultiply`] turns the result into straight alpha.
pub fn composite_over(
    canvas: &mut [u8],
    canvas_layout: FrameLayout,
    layer: &VideoFrame,
    x: i32,
    y: i32,
    opacity: u8,
) -> Result<(), VideoError> {
    check_canvas(canvas, canvas_layout)?;
    let (width, height) = (canvas_layout.width(), canvas_layout.height());
    let Some(op) = draw_op(layer, width, height, (x, y), opacity)? else {
        return Ok(());
    };
    if opacity == 0 {
        return Ok(());
    }
    let plan = RowPlan {
        stride: canvas_layout.stride() as usize,
        width: width as usize,
        ops: &[op],
        background: None,
        unpremultiply: false,
    };
    let band = &mut canvas[op.y0 * plan.stride..op.y1 * plan.stride];
    draw_rows(band, op.y0, plan, None);
    Ok(())
}

/// Converts a premultiplied RGBA8 canvas to straight alpha in place:
/// `c_k = min(255, (c_k · 255 + ⌊α / 2⌋) / α)`, and 0 where `α = 0`; alpha is unchanged.
pub fn unpremultiply(canvas: &mut [u8], layout: FrameLayout) -> Result<(), VideoError> {
    check_canvas(canvas, layout)?;
    let width = layout.width() as usize * 4;
    for row in canvas.chunks_mut(layout.stride() as usize) {
        unpremultiply_row(&mut row[..width]);
    }
    Ok(())
}

/// A layer's most recent frame.
#[derive(Debug, Default)]
struct HeldFrame {
    frame: Option<VideoFrame>,
    /// Received on the current tick.
    fresh: bool,
}

/// Stacks video layers into one frame per tick.
///
/// Inputs `layer0`..`layer{N-1}` (optional: unconnected ones contribute nothing; `[cpu]`;
/// RGBA8 or BGRA8, either alpha mode, any size); output `video`: `width`×`height` RGBA8,
/// straight alpha, from the compositor's own pool, stamped with the tick. A layer with no new
/// frame on a tick reuses its last one or is skipped, per [`MissingLayer`]. A layer frame it
/// cannot draw (another pixel format, a GPU frame) makes that `process` call return the error;
/// the frame is dropped and the layer keeps its previous one.
///
/// With a stream `concurrency_limit` of `n`, each frame is drawn as `n` bands of rows in
/// parallel on rayon's global pool.
///
/// ```
/// use streamlib_handlers_video::{Compositor, CompositorConfig, LayerConfig};
///
/// let mut compositor = Compositor::new(CompositorConfig { width: 1280, height: 720, ..Default::default() })?;
/// // A picture-in-picture in the bottom-right corner, drawn on top at 80 %.
/// compositor.set_layer(1, LayerConfig { x: 900, y: 500, opacity: 0.8, z: 1, visible: true })?;
/// let controls = compositor.controls(); // fade it out later, from another thread
/// controls.set_opacity(1, 0.0)?;
/// # Ok::<(), streamlib_handlers_video::VideoError>(())
/// ```
pub struct Compositor {
    config: CompositorConfig,
    inputs: Vec<InputPort<VideoFrame>>,
    held: Vec<HeldFrame>,
    output: OutputPort<VideoFrame>,
    pool: FramePool,
    shared: Arc<SharedLayers>,
    /// The settings in force, copied from `shared` when its version moves.
    active: Vec<LayerConfig>,
    version: u64,
    /// Layer indices in drawing order.
    order: Vec<usize>,
    /// One row per band, where rows are built before being streamed to the output.
    scratch: Vec<Vec<u8>>,
    /// The GPU path, when built with `Compositor::with_gpu`.
    #[cfg(feature = "gpu")]
    gpu: Option<gpu::GpuPath>,
}

impl fmt::Debug for Compositor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compositor")
            .field("config", &self.config)
            .field("layers", &self.active)
            .field("order", &self.order)
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl Compositor {
    /// A compositor producing `config.width`×`config.height` frames from `config.layers`
    /// inputs. Fails on a size of 0 or above 16384 ([`VideoError::InvalidSize`]) and on a
    /// layer count of 0 or above 64 ([`VideoError::OutOfRange`]).
    pub fn new(config: CompositorConfig) -> Result<Self, VideoError> {
        config.validate()?;
        let layout = FrameLayout::new(config.width, config.height, PixelFormat::Rgba8).map_err(
            |source| VideoError::Frame {
                handler: HANDLER,
                source,
            },
        )?;
        // At least 8; `on_start` raises it to what the connected readers can hold.
        let pool = FramePool::new(HANDLER, layout, 4, 8).map_err(|source| VideoError::Pool {
            handler: HANDLER,
            source,
        })?;
        let inputs = (0..config.layers)
            .map(|i| InputPort::new(format!("layer{i}"), MemoryCaps::CPU).optional())
            .collect();
        let compositor = Self {
            inputs,
            held: (0..config.layers).map(|_| HeldFrame::default()).collect(),
            output: OutputPort::new("video", MemoryCaps::CPU),
            pool,
            shared: Arc::new(SharedLayers::new(config.layers)),
            active: vec![LayerConfig::default(); config.layers],
            version: 0,
            order: (0..config.layers).collect(),
            scratch: Vec::new(),
            #[cfg(feature = "gpu")]
            gpu: None,
            config,
        };
        compositor.declare_caps();
        Ok(compositor)
    }

    /// Declares the ports' format caps: each layer RGBA8 or BGRA8 at any size and rate; the
    /// output its own size in straight RGBA8, at the clock's rate. Call again after
    /// replacing the ports.
    pub(crate) fn declare_caps(&self) {
        let layer =
            Caps::Video(VideoCaps::any().with_formats(&[PixelFormat::Rgba8, PixelFormat::Bgra8]));
        for input in &self.inputs {
            input.set_format(layer.clone());
        }
        self.output.set_format(Caps::Video(
            VideoCaps::fixed(PixelFormat::Rgba8, self.config.width, self.config.height)
                .with_alpha(AlphaMode::Straight),
        ));
    }

    /// The settings it was built with.
    pub fn config(&self) -> &CompositorConfig {
        &self.config
    }

    /// The input for layer `index` (port `layer{index}`).
    pub fn layer_input(&self, index: usize) -> Result<InputRef<VideoFrame>, VideoError> {
        self.inputs
            .get(index)
            .map(InputPort::handle)
            .ok_or(VideoError::LayerOutOfRange {
                index,
                layers: self.inputs.len(),
            })
    }

    /// The composited output (port `video`).
    pub fn output(&self) -> OutputRef<VideoFrame> {
        self.output.handle()
    }

    /// Sets where and how layer `index` is drawn. Fails with
    /// [`VideoError::LayerOutOfRange`] for a layer that does not exist and
    /// [`VideoError::OutOfRange`] for an opacity outside 0.0..=1.0 (NaN included).
    pub fn set_layer(&mut self, index: usize, layer: LayerConfig) -> Result<(), VideoError> {
        self.controls().set_layer(index, layer)
    }

    /// A handle that changes layers while the compositor runs (from any thread).
    pub fn controls(&self) -> CompositorControls {
        CompositorControls {
            shared: Arc::clone(&self.shared),
            layers: self.config.layers,
        }
    }

    /// Takes new layer settings, if any, and re-sorts the drawing order.
    fn refresh_layers(&mut self) {
        let version = self.shared.refresh(self.version, &mut self.active);
        if version != self.version {
            self.version = version;
            let active = &self.active;
            // Unstable sort: allocation-free, and (z, index) keys are unique.
            self.order
                .sort_unstable_by_key(|&i| (active.get(i).map_or(0, |l| l.z), i));
        }
    }

    /// Whether this is the drain call after every input ended with nothing new: no frame then
    /// (a repeat of the last tick's would count as produced twice).
    fn drained(&self, ctx: &ProcessContext<'_>) -> bool {
        ctx.inputs_ended() && !self.held.iter().any(|h| h.fresh)
    }

    /// Receives this tick's layer frames. A frame that cannot be drawn is dropped and
    /// reported (the first such error), after every input has been read.
    fn receive(&mut self) -> Result<(), VideoError> {
        let mut first_error = None;
        for (index, (input, held)) in self.inputs.iter().zip(&mut self.held).enumerate() {
            held.fresh = false;
            let Some(frame) = input.recv() else { continue };
            match layer_bytes(&frame) {
                Ok(_) => {
                    held.frame = Some(frame);
                    held.fresh = true;
                }
                Err(error) => {
                    tracing::warn!(layer = index, %error, "compositor: dropped a layer frame");
                    first_error.get_or_insert(error);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl StreamHandler for Compositor {
    fn ports(&self) -> Ports {
        self.inputs
            .iter()
            .fold(Ports::new(), |ports, input| ports.input(input))
            .output(&self.output)
    }

    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        #[cfg(feature = "gpu")]
        if self.uses_gpu() {
            return gpu::process(self, ctx);
        }
        self.refresh_layers();
        self.receive()?;
        if !self.output.is_connected() || self.drained(ctx) {
            return Ok(());
        }
        let CompositorConfig {
            width,
            height,
            background,
            missing,
            ..
        } = self.config;

        let mut ops: [DrawOp<'_>; MAX_LAYERS] = [DrawOp::NONE; MAX_LAYERS];
        let mut count = 0;
        for &index in &self.order {
            let (layer, held) = (&self.active[index], &self.held[index]);
            let opacity = layer.opacity_byte();
            let skipped = missing == MissingLayer::Skip && !held.fresh;
            let Some(frame) = held.frame.as_ref().filter(|_| !skipped) else {
                continue;
            };
            if !layer.visible || opacity == 0 {
                continue;
            }
            if let Some(op) = draw_op(frame, width, height, (layer.x, layer.y), opacity)? {
                ops[count] = op;
                count += 1;
            }
        }
        let ops = &ops[..count];

        // An empty pool skips this frame (counted in the stats); readers keep the last one.
        let Some(mut buf) = self.pool.acquire_for(&self.output) else {
            return Ok(());
        };
        let plan = RowPlan {
            stride: self.pool.layout().stride() as usize,
            width: width as usize,
            ops,
            background: Some(premultiply_pixel(background)),
            unpremultiply: background[3] < 255,
        };
        let height = height as usize;
        let bands = ctx.concurrency_limit().min(height);
        // One scratch row per band, grown (warm-up only) when the concurrency limit grows.
        let row_len = plan.width * 4;
        if self.scratch.len() < bands {
            self.scratch.resize_with(bands, || vec![0; row_len]);
        }
        let canvas = &mut buf[..height * plan.stride];
        if bands <= 1 {
            draw_rows(
                canvas,
                0,
                plan,
                self.scratch.first_mut().map(Vec::as_mut_slice),
            );
        } else {
            let band_rows = height.div_ceil(bands);
            canvas
                .par_chunks_mut(band_rows * plan.stride)
                .zip(self.scratch.par_iter_mut())
                .enumerate()
                .for_each(|(band, (rows, scratch))| {
                    draw_rows(rows, band * band_rows, plan, Some(scratch));
                });
        }
        let frame = self
            .pool
            .frame(buf)
            .with_tick(ctx.tick())
            .with_alpha(AlphaMode::Straight);
        self.output.write(frame);
        Ok(())
    }

    fn on_start(&mut self, _ctx: &StartContext<'_>) -> Result<(), HandlerError> {
        // Sized from the graph now that the output is connected.
        self.pool
            .fit_output(&self.output)
            .map_err(VideoError::pool(HANDLER))?;
        Ok(())
    }

    fn on_stop(&mut self) -> Result<(), HandlerError> {
        // Give the upstream pools their buffers back.
        for held in &mut self.held {
            *held = HeldFrame::default();
        }
        Ok(())
    }
}
