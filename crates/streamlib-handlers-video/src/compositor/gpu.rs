//! The `Compositor`'s GPU path (feature `gpu`): the same exact integer source-over as a WGSL
//! kernel from `streamlib-gpu`, chosen by the memory the ports negotiated.

use streamlib_gpu::{
    CompositeKernel, FrameUploader, GpuContext, GpuError, GpuFramePool, GpuLayer, GpuTexture,
    ReadbackRing,
};
use streamlib_ports::{
    AlphaMode, FrameLayout, HandlerError, InputPort, MemoryCaps, MemorySpace, OutputPort,
    PixelFormat, ProcessContext, VideoFrame,
};

use super::blend::premultiply_pixel;
use super::controls::MAX_LAYERS;
use super::{Compositor, CompositorConfig, HANDLER, MissingLayer};
use crate::VideoError;

/// Output textures: the output ring's 3 slots, one read downstream, one being written.
const POOL_INITIAL: usize = 4;
const POOL_MAX: usize = 8;

/// What the GPU path keeps between frames.
#[derive(Debug)]
pub(super) struct GpuPath {
    ctx: GpuContext,
    /// Compiled on the first GPU frame.
    kernel: Option<CompositeKernel>,
    pool: Option<GpuFramePool>,
    /// One per layer: CPU layer frames are uploaded once, when they arrive.
    uploaders: Vec<FrameUploader>,
    /// GPU result, CPU consumer (one frame, waited for).
    readback: ReadbackRing,
}

impl Compositor {
    /// A compositor that draws on the GPU of `ctx` when its ports negotiate GPU memory: every
    /// layer input and the output are `[cpu, gpu]`.
    ///
    /// When the output, or any connected layer input, negotiated GPU memory, frames are
    /// composited by a WGSL kernel running the CPU path's exact integer arithmetic (the same
    /// bytes out); CPU layer frames are uploaded when they arrive, and a CPU output is read
    /// back (waiting for it: an inserted `GpuToCpu` transfer pipelines that better).
    /// Otherwise the CPU path runs, unchanged. The shaders are compiled on the first GPU
    /// frame; their errors, and any GPU error, are returned from `process`.
    pub fn with_gpu(config: CompositorConfig, ctx: &GpuContext) -> Result<Self, VideoError> {
        let mut compositor = Self::new(config)?;
        compositor.inputs = (0..config.layers)
            .map(|i| InputPort::new(format!("layer{i}"), MemoryCaps::CPU_GPU).optional())
            .collect();
        compositor.output = OutputPort::new("video", MemoryCaps::CPU_GPU);
        compositor.declare_caps();
        compositor.gpu = Some(GpuPath {
            ctx: ctx.clone(),
            kernel: None,
            pool: None,
            uploaders: (0..config.layers)
                .map(|_| FrameUploader::new("compositor-upload", 2, 6))
                .collect(),
            readback: ReadbackRing::new("compositor-readback", 1),
        });
        Ok(compositor)
    }

    /// The GPU output pool, once a GPU frame made it (for its counters).
    pub fn gpu_pool(&self) -> Option<&GpuFramePool> {
        self.gpu.as_ref().and_then(|g| g.pool.as_ref())
    }

    /// Whether this tick goes through the GPU path.
    pub(super) fn uses_gpu(&self) -> bool {
        self.gpu.is_some()
            && (self.output.negotiated_memory() == Some(MemorySpace::Gpu)
                || self
                    .inputs
                    .iter()
                    .any(|i| i.negotiated_memory() == Some(MemorySpace::Gpu)))
    }
}

/// Receives this tick's layer frames, uploading CPU ones. A frame that cannot be used is
/// dropped and reported (the first error), after every input has been read.
fn receive(compositor: &mut Compositor) -> Result<(), HandlerError> {
    let Some(path) = compositor.gpu.as_mut() else {
        return Ok(());
    };
    let mut first_error: Option<HandlerError> = None;
    let layers = compositor.inputs.iter().zip(&mut compositor.held);
    for (index, (input, held)) in layers.enumerate() {
        held.fresh = false;
        let Some(frame) = input.recv() else { continue };
        let received = match frame.memory() {
            MemorySpace::Gpu => check_layer(&frame).map(|()| Some(frame)),
            MemorySpace::Cpu => match path.uploaders.get_mut(index) {
                Some(uploader) => uploader.upload(&path.ctx, &frame),
                None => Ok(None),
            },
        };
        match received {
            Ok(Some(frame)) => {
                held.frame = Some(frame);
                held.fresh = true;
            }
            // Upload pool exhausted: keep the previous frame.
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(layer = index, %error, "compositor: dropped a layer frame");
                first_error.get_or_insert(error.into());
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn check_layer(frame: &VideoFrame) -> Result<(), GpuError> {
    match frame.format() {
        PixelFormat::Rgba8 | PixelFormat::Bgra8 => GpuTexture::of(frame, HANDLER).map(drop),
        format => Err(GpuError::UnsupportedFrame {
            handler: HANDLER,
            reason: format!("{format} layers are not supported (supported: rgba8, bgra8)"),
        }),
    }
}

/// Clips a layer at (`x`, `y`) to the canvas: `(start, end, first source pixel)`.
fn span(pos: i32, len: u32, canvas: u32) -> Option<(u32, u32, u32)> {
    let start = i64::from(pos).max(0);
    let end = (i64::from(pos) + i64::from(len)).min(i64::from(canvas));
    // All three lie in 0..=canvas or 0..len: they fit a u32.
    (start < end).then(|| (start as u32, end as u32, (start - i64::from(pos)) as u32))
}

/// Composites one tick on the GPU.
pub(super) fn process(
    compositor: &mut Compositor,
    ctx: &ProcessContext<'_>,
) -> Result<(), HandlerError> {
    compositor.refresh_layers();
    receive(compositor)?;
    if !compositor.output.is_connected() || compositor.drained(ctx) {
        return Ok(());
    }
    let CompositorConfig {
        width,
        height,
        background,
        missing,
        ..
    } = compositor.config;
    let Some(path) = compositor.gpu.as_mut() else {
        return Ok(());
    };
    if path.kernel.is_none() {
        path.kernel = Some(CompositeKernel::new(&path.ctx)?);
    }
    let mut layers: Vec<GpuLayer<'_>> = Vec::with_capacity(MAX_LAYERS);
    for &index in &compositor.order {
        let (layer, held) = (&compositor.active[index], &compositor.held[index]);
        let opacity = layer.opacity_byte();
        let skipped = missing == MissingLayer::Skip && !held.fresh;
        let Some(frame) = held.frame.as_ref().filter(|_| !skipped) else {
            continue;
        };
        if !layer.visible || opacity == 0 {
            continue;
        }
        let texture = GpuTexture::of(frame, HANDLER)?;
        let (Some((x0, x1, src_x)), Some((y0, y1, src_y))) = (
            span(layer.x, frame.width(), width),
            span(layer.y, frame.height(), height),
        ) else {
            continue;
        };
        layers.push(GpuLayer {
            texture,
            x0,
            x1,
            y0,
            y1,
            src_x,
            src_y,
            premultiplied: frame.alpha() == AlphaMode::Premultiplied,
            swap_rb: frame.format() == PixelFormat::Bgra8,
            opacity,
        });
    }
    if path.pool.is_none() {
        // Created at the first frame, once the output is connected: sized from the graph.
        path.pool = Some(GpuFramePool::new(
            &path.ctx,
            HANDLER,
            width,
            height,
            POOL_INITIAL,
            compositor.output.pool_capacity(POOL_MAX),
        )?);
    }
    let (Some(pool), Some(kernel)) = (path.pool.as_ref(), path.kernel.as_mut()) else {
        return Ok(());
    };
    let lease = match pool.acquire() {
        Ok(lease) => lease,
        // An empty pool skips this frame (counted in the stats); readers keep the last one.
        Err(GpuError::PoolExhausted { capacity, .. }) => {
            compositor.output.skip_pool_empty(capacity);
            return Ok(());
        }
        Err(error) => return Err(error.into()),
    };
    let mut encoder =
        path.ctx
            .device()
            .create_command_encoder(&streamlib_gpu::wgpu::CommandEncoderDescriptor {
                label: Some(HANDLER),
            });
    kernel.encode(
        &path.ctx,
        &mut encoder,
        lease.texture(),
        premultiply_pixel(background),
        background[3] < 255,
        &layers,
    )?;
    path.ctx.submit("composite", [encoder.finish()])?;
    drop(layers);
    let layout = FrameLayout::new(width, height, PixelFormat::Rgba8).map_err(|source| {
        VideoError::Frame {
            handler: HANDLER,
            source,
        }
    })?;
    let frame = lease
        .into_frame(layout)
        .with_tick(ctx.tick())
        .with_alpha(AlphaMode::Straight);
    if compositor.output.negotiated_memory() == Some(MemorySpace::Cpu) {
        path.readback.submit(&path.ctx, &frame)?;
        if let Some(host) = path.readback.next(&path.ctx, true)? {
            compositor.output.write(host);
        }
        return Ok(());
    }
    compositor.output.write(frame);
    Ok(())
}
