//! The GPU Gaussian blur kernel: [`BlurKernel`] (two WGSL compute passes with workgroup-shared
//! tiles) running the fixed-point [`BlurWeights`] it is given, and [`blur_gpu_frame`], one
//! frame through it. The handler is `streamlib-handlers-video`'s `Blur`, whose GPU path hands
//! its own CPU kernel's weights to this one: the weights are derived in one place only.

use streamlib_ports::{FrameLayout, VideoFrame};

use crate::readback::check_format;
use crate::{GpuContext, GpuError, GpuFramePool, GpuTexture};

const SHADER: &str = include_str!("shaders/blur.wgsl");
/// The handler errors name: the GPU path of `Blur`.
const HANDLER: &str = "blur";

/// Largest supported radius, as the CPU blur's (129 taps): the shader's tiles are sized for it.
pub const MAX_BLUR_RADIUS: u32 = 64;

/// Workgroup sizes of the two passes (they match the shader).
const VERTICAL_TILE: (u32, u32) = (16, 16);
const HORIZONTAL_TILE: (u32, u32) = (64, 4);

/// A Gaussian kernel in the fixed point of `streamlib-handlers-video`'s CPU `Blur`, which
/// computes it (`GaussianKernel::gpu_weights`), so the GPU result is the CPU result bit for
/// bit. This crate derives no weights of its own.
///
/// `weights[k]` weighs the pair of taps at distance `k`: Q16 for the centre (the pair counts
/// it twice), Q17 for the others. Each pass starts from its bias (`(radius + 1) / 2` units,
/// centring the truncation of `mulhi`; the horizontal one adds 128 to round to bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlurWeights {
    /// Pair weights, `radius + 1` of them.
    pub weights: Vec<u16>,
    /// The vertical pass's starting value (Q7).
    pub vertical_bias: u16,
    /// The horizontal pass's starting value (Q8, including the rounding 128).
    pub horizontal_bias: u16,
}

impl BlurWeights {
    /// Taps on each side of the centre.
    pub fn radius(&self) -> u32 {
        self.weights.len().saturating_sub(1) as u32
    }

    fn check(&self) -> Result<(), GpuError> {
        let radius = self.radius();
        if self.weights.is_empty() || radius > MAX_BLUR_RADIUS {
            return Err(GpuError::Config {
                handler: HANDLER,
                reason: format!(
                    "{} weights: need 1..={} (radius up to {MAX_BLUR_RADIUS})",
                    self.weights.len(),
                    MAX_BLUR_RADIUS + 1
                ),
            });
        }
        Ok(())
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    width: u32,
    height: u32,
    radius: u32,
    vertical_bias: u32,
    horizontal_bias: u32,
    _pad: [u32; 3],
}

/// The compiled blur: two compute pipelines, the weights, and a Q7 intermediate buffer sized
/// for the last frame (re-created only when the size changes).
#[derive(Debug)]
pub struct BlurKernel {
    weights: BlurWeights,
    vertical: wgpu::ComputePipeline,
    horizontal: wgpu::ComputePipeline,
    weight_buffer: wgpu::Buffer,
    params: wgpu::Buffer,
    intermediate: Option<(wgpu::Buffer, u32, u32)>,
}

impl BlurKernel {
    /// Compiles the blur for `weights` on `ctx`.
    pub fn new(ctx: &GpuContext, weights: BlurWeights) -> Result<Self, GpuError> {
        weights.check()?;
        let vertical =
            ctx.compute_pipeline("streamlib blur (vertical)", SHADER, "vertical", None)?;
        let horizontal =
            ctx.compute_pipeline("streamlib blur (horizontal)", SHADER, "horizontal", None)?;
        let packed: Vec<u32> = weights.weights.iter().map(|&w| u32::from(w)).collect();
        let (weight_buffer, params) = ctx.scoped("create blur buffers", || {
            let weight_buffer = ctx.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some("streamlib blur weights"),
                size: (packed.len() * 4) as u64,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            ctx.queue()
                .write_buffer(&weight_buffer, 0, bytemuck::cast_slice(&packed));
            let params = ctx.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some("streamlib blur params"),
                size: size_of::<Params>() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            (weight_buffer, params)
        })?;
        Ok(Self {
            weights,
            vertical,
            horizontal,
            weight_buffer,
            params,
            intermediate: None,
        })
    }

    /// The weights in use.
    pub fn weights(&self) -> &BlurWeights {
        &self.weights
    }

    /// Records the blur of `src` into `dst` (same size) on `encoder`.
    pub fn encode(
        &mut self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        src: &GpuTexture,
        dst: &GpuTexture,
    ) -> Result<(), GpuError> {
        let (width, height) = (src.width(), src.height());
        if (dst.width(), dst.height()) != (width, height) {
            return Err(GpuError::UnsupportedFrame {
                handler: HANDLER,
                reason: format!(
                    "output texture {}x{} differs from input {width}x{height}",
                    dst.width(),
                    dst.height()
                ),
            });
        }
        let intermediate = self.intermediate_for(ctx, width, height)?;
        let vertical_group = self.vertical.get_bind_group_layout(0);
        let horizontal_group = self.horizontal.get_bind_group_layout(0);
        let (vertical_bind, horizontal_bind) = ctx.scoped("bind blur resources", || {
            let v = ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("streamlib blur (vertical)"),
                layout: &vertical_group,
                entries: &[
                    entry(0, wgpu::BindingResource::TextureView(src.view())),
                    entry(1, intermediate.as_entire_binding()),
                    entry(2, self.params.as_entire_binding()),
                    entry(3, self.weight_buffer.as_entire_binding()),
                ],
            });
            let h = ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("streamlib blur (horizontal)"),
                layout: &horizontal_group,
                entries: &[
                    entry(2, self.params.as_entire_binding()),
                    entry(3, self.weight_buffer.as_entire_binding()),
                    entry(4, intermediate.as_entire_binding()),
                    entry(5, wgpu::BindingResource::TextureView(dst.view())),
                ],
            });
            (v, h)
        })?;
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("streamlib blur (vertical)"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.vertical);
            pass.set_bind_group(0, &vertical_bind, &[]);
            pass.dispatch_workgroups(
                width.div_ceil(VERTICAL_TILE.0),
                height.div_ceil(VERTICAL_TILE.1),
                1,
            );
        }
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("streamlib blur (horizontal)"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.horizontal);
            pass.set_bind_group(0, &horizontal_bind, &[]);
            pass.dispatch_workgroups(
                width.div_ceil(HORIZONTAL_TILE.0),
                height.div_ceil(HORIZONTAL_TILE.1),
                1,
            );
        }
        Ok(())
    }

    /// The Q7 buffer for a frame size (and the params written for it).
    fn intermediate_for(
        &mut self,
        ctx: &GpuContext,
        width: u32,
        height: u32,
    ) -> Result<wgpu::Buffer, GpuError> {
        if let Some((buffer, w, h)) = &self.intermediate
            && (*w, *h) == (width, height)
        {
            return Ok(buffer.clone());
        }
        // Four u16 lanes per pixel.
        let bytes = u64::from(width) * u64::from(height) * 8;
        ctx.check_buffer_size("blur intermediate buffer", bytes, true)?;
        let params = Params {
            width,
            height,
            radius: self.weights.radius(),
            vertical_bias: u32::from(self.weights.vertical_bias),
            horizontal_bias: u32::from(self.weights.horizontal_bias),
            _pad: [0; 3],
        };
        let buffer = ctx.scoped("create the blur intermediate buffer", || {
            ctx.queue()
                .write_buffer(&self.params, 0, bytemuck::bytes_of(&params));
            ctx.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some("streamlib blur intermediate"),
                size: bytes,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            })
        })?;
        self.intermediate = Some((buffer.clone(), width, height));
        Ok(buffer)
    }
}

fn entry(binding: u32, resource: wgpu::BindingResource<'_>) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry { binding, resource }
}

/// Output textures a GPU handler starts with: the output ring's 3 slots, one read downstream,
/// one being written, one spare.
pub(crate) const POOL_INITIAL: usize = 6;
/// The most it grows to.
pub(crate) const POOL_MAX: usize = 12;

/// The output pool for a size, (re)created when the size changes.
pub(crate) fn pool_for<'a>(
    slot: &'a mut Option<GpuFramePool>,
    ctx: &GpuContext,
    name: &'static str,
    width: u32,
    height: u32,
) -> Result<&'a GpuFramePool, GpuError> {
    let pool = match slot.take() {
        Some(pool) if pool.width() == width && pool.height() == height => pool,
        _ => GpuFramePool::new(ctx, name, width, height, POOL_INITIAL, POOL_MAX)?,
    };
    Ok(slot.insert(pool))
}

/// Blurs one GPU frame into a texture from `pool_slot`; `Ok(None)` when the pool is exhausted
/// (the frame is skipped). The output keeps the input's format, timing and alpha mode.
pub fn blur_gpu_frame(
    ctx: &GpuContext,
    kernel: &mut BlurKernel,
    pool_slot: &mut Option<GpuFramePool>,
    frame: &VideoFrame,
) -> Result<Option<VideoFrame>, GpuError> {
    check_format(frame, HANDLER)?;
    let src = GpuTexture::of(frame, HANDLER)?;
    let pool = pool_for(pool_slot, ctx, HANDLER, src.width(), src.height())?;
    let lease = match pool.acquire() {
        Ok(lease) => lease,
        Err(GpuError::PoolExhausted { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut encoder = ctx
        .device()
        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some(HANDLER),
        });
    kernel.encode(ctx, &mut encoder, src, lease.texture())?;
    ctx.submit("blur", [encoder.finish()])?;
    let layout = FrameLayout::new(frame.width(), frame.height(), frame.format()).map_err(|e| {
        GpuError::UnsupportedFrame {
            handler: HANDLER,
            reason: e.to_string(),
        }
    })?;
    Ok(Some(
        lease
            .into_frame(layout)
            .with_timing(
                frame.timestamp_ns(),
                frame.frame_number(),
                frame.clock_source_id(),
            )
            .with_alpha(frame.alpha()),
    ))
}
