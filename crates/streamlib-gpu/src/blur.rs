//! The GPU Gaussian blur: [`BlurWeights`] (the CPU blur's fixed-point kernel), [`BlurKernel`]
//! (two WGSL compute passes with workgroup-shared tiles) and the [`BlurGpu`] handler.

use streamlib_ports::{
    Caps, Follow, FrameLayout, HandlerError, InputPort, InputRef, MemoryCaps, OutputPort,
    OutputRef, PixelFormat, Ports, ProcessContext, StreamHandler, VideoCaps, VideoFrame,
};

use crate::readback::check_format;
use crate::{GpuContext, GpuError, GpuFramePool, GpuTexture};

const SHADER: &str = include_str!("shaders/blur.wgsl");
const HANDLER: &str = "blur-gpu";

/// Largest supported radius, as the CPU blur's (129 taps): the shader's tiles are sized for it.
pub const MAX_BLUR_RADIUS: u32 = 64;

/// Workgroup sizes of the two passes (they match the shader).
const VERTICAL_TILE: (u32, u32) = (16, 16);
const HORIZONTAL_TILE: (u32, u32) = (64, 4);

/// A Gaussian kernel in the fixed point of `streamlib-handlers-video`'s CPU `Blur`, so the GPU
/// result is the CPU result bit for bit.
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
    /// The kernel of standard deviation `sigma` with `radius` taps per side (`ceil(3σ)` when
    /// `None`), computed as the CPU `GaussianKernel` computes it: `exp(-k² / 2σ²)` normalised
    /// in `f64`, then rounded once to Q16/Q17.
    pub fn gaussian(sigma: f32, radius: Option<u32>) -> Result<Self, GpuError> {
        if !sigma.is_finite() || sigma <= 0.0 {
            return Err(GpuError::Config {
                handler: HANDLER,
                reason: format!("sigma must be a finite number > 0, got {sigma}"),
            });
        }
        let sigma64 = f64::from(sigma);
        // `as` saturates; any sigma that large is rejected below.
        let radius = radius.unwrap_or((3.0 * sigma64).ceil() as u32);
        if radius == 0 || radius > MAX_BLUR_RADIUS {
            return Err(GpuError::Config {
                handler: HANDLER,
                reason: format!("radius {radius} is out of range 1..={MAX_BLUR_RADIUS}"),
            });
        }
        let r = i64::from(radius);
        let mut weights: Vec<f64> = (-r..=r)
            .map(|k| (-((k * k) as f64) / (2.0 * sigma64 * sigma64)).exp())
            .collect();
        let sum: f64 = weights.iter().sum();
        weights.iter_mut().for_each(|w| *w /= sum);
        let centre = radius as usize;
        let fixed = weights[centre..]
            .iter()
            .enumerate()
            .map(|(k, w)| {
                let scale = if k == 0 { 65_536.0 } else { 131_072.0 };
                (w * scale).round() as u16
            })
            .collect();
        // Half a unit lost per term (radius + 1 of them) on average.
        let terms = centre + 1;
        let half_the_terms = (terms / 2) as u16;
        Ok(Self {
            weights: fixed,
            vertical_bias: half_the_terms,
            horizontal_bias: half_the_terms + 128,
        })
    }

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

/// A GPU-only Gaussian blur: input `video` `[gpu]`, output `video` `[gpu]`.
///
/// The same result as the CPU `Blur` of `streamlib-handlers-video` with the same sigma and
/// radius, bit for bit: the shader runs the CPU's fixed-point arithmetic (edges clamped, alpha
/// blurred like the colours, RGBA8 or BGRA8). Output textures come from its own
/// [`GpuFramePool`]; when every one is held downstream the frame is skipped and counted.
#[derive(Debug)]
pub struct BlurGpu {
    ctx: GpuContext,
    kernel: BlurKernel,
    input: InputPort<VideoFrame>,
    output: OutputPort<VideoFrame>,
    pool: Option<GpuFramePool>,
    skipped: u64,
}

impl BlurGpu {
    /// A blur of standard deviation `sigma` (pixels) and `radius` taps per side (`ceil(3σ)`
    /// when `None`), compiled on `ctx`.
    pub fn new(ctx: &GpuContext, sigma: f32, radius: Option<u32>) -> Result<Self, GpuError> {
        Self::with_weights(ctx, BlurWeights::gaussian(sigma, radius)?)
    }

    /// What it blurs: RGBA8 or BGRA8 frames, out as they came in.
    fn caps() -> Caps {
        Caps::Video(VideoCaps::any().with_formats(&[PixelFormat::Rgba8, PixelFormat::Bgra8]))
    }

    /// A blur with explicit fixed-point weights.
    pub fn with_weights(ctx: &GpuContext, weights: BlurWeights) -> Result<Self, GpuError> {
        Ok(Self {
            ctx: ctx.clone(),
            kernel: BlurKernel::new(ctx, weights)?,
            input: InputPort::new("video", MemoryCaps::GPU).with_format(Self::caps()),
            output: OutputPort::new("video", MemoryCaps::GPU).with_format(Self::caps()),
            pool: None,
            skipped: 0,
        })
        .inspect(|blur| blur.output.follows(&blur.input, Follow::ALL))
    }

    /// The `video` input.
    pub fn input(&self) -> InputRef<VideoFrame> {
        self.input.handle()
    }

    /// The `video` output.
    pub fn output(&self) -> OutputRef<VideoFrame> {
        self.output.handle()
    }

    /// Frames skipped because every output texture was still held downstream.
    pub fn frames_skipped(&self) -> u64 {
        self.skipped
    }

    /// The output texture pool, once the first frame made it.
    pub fn pool(&self) -> Option<&GpuFramePool> {
        self.pool.as_ref()
    }
}

impl StreamHandler for BlurGpu {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input).output(&self.output)
    }

    fn process(&mut self, _ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        let Some(frame) = self.input.recv() else {
            return Ok(());
        };
        match blur_gpu_frame(&self.ctx, &mut self.kernel, &mut self.pool, &frame)? {
            Some(out) => self.output.write(out),
            None => {
                self.output
                    .skip_pool_empty(self.pool.as_ref().map_or(0, GpuFramePool::capacity));
                self.skipped += 1;
                tracing::debug!(
                    skipped = self.skipped,
                    "blur-gpu: pool exhausted, frame skipped"
                );
            }
        }
        Ok(())
    }
}
