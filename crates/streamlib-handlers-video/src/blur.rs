//! `Blur`: a Gaussian blur handler for 8-bit RGBA, BGRA and gray frames in host memory.
//!
//! The work happens in [`blur_frame`]: a separable blur in 16-bit fixed point, one row at a
//! time, bands of rows in parallel. The handler adds the frame plumbing: format checks, an
//! output pool sized on the first frame, and timing passed through. With the `gpu` feature
//! the same handler also runs on the GPU when its ports negotiate GPU memory
//! ([`Blur::with_gpu`]), with this kernel's weights: there is one blur, on either memory.

#[cfg(feature = "gpu")]
mod gpu;
mod kernel;
mod separable;
#[cfg(target_arch = "x86_64")]
mod simd;

pub use kernel::{GaussianKernel, MAX_RADIUS};
pub use separable::{BlurScratch, blur_frame};

use streamlib_ports::{
    Caps, Follow, FrameLayout, FramePool, HandlerError, InputPort, InputRef, MemoryCaps,
    OutputPort, OutputRef, PixelFormat, Ports, ProcessContext, StartContext, StreamHandler,
    VideoCaps, VideoFrame,
};

use crate::VideoError;

/// The handler's name in errors.
const HANDLER: &str = "blur";

/// Output buffers allocated with the pool: the output ring's 3 slots, one frame read
/// downstream, one being written, one spare.
const POOL_INITIAL: usize = 6;
/// The pool may grow to this many if downstream holds frames longer.
const POOL_MAX: usize = 12;

/// The pixel formats the CPU blur processes, most preferred first.
pub const BLUR_FORMATS: [PixelFormat; 4] = [
    PixelFormat::Rgba8,
    PixelFormat::Bgra8,
    PixelFormat::Gray8,
    PixelFormat::I420,
];

/// How to blur.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlurConfig {
    /// Standard deviation of the Gaussian, in pixels: finite and above zero.
    pub sigma: f32,
    /// Taps on each side of the centre, 1..=[`MAX_RADIUS`]; `None` derives `ceil(3σ)`.
    pub radius: Option<u32>,
}

impl Default for BlurConfig {
    /// σ = 2, radius derived (6, so 13 taps).
    fn default() -> Self {
        Self {
            sigma: 2.0,
            radius: None,
        }
    }
}

/// A Gaussian blur: reads frames on its `video` input, writes blurred frames on its `video`
/// output, both `[cpu]` ([`Blur::new`]), or, with the `gpu` feature, `[cpu, gpu]` or `[gpu]`
/// following the negotiated memory ([`Blur::with_gpu`], [`Blur::with_gpu_memory`],
/// [`Blur::with_gpu_on_demand`]).
///
/// - Formats: `Rgba8`, `Bgra8` (4 channels), `Gray8` and planar `I420` (each plane blurred at
///   its own resolution, as FFmpeg's `gblur` does); others fail with
///   [`VideoError::UnsupportedFormat`], GPU frames with [`VideoError::NotInCpuMemory`].
/// - Edges are clamped (replicate border). Alpha is blurred like the colour channels, as
///   FFmpeg's `gblur` and OpenCV's `GaussianBlur` do: exact for opaque and premultiplied
///   frames; on straight-alpha frames whose alpha varies, colour from transparent pixels bleeds
///   into their neighbours (premultiply first if that matters).
/// - The output has the input's size and format with a tight stride, its timing (timestamp,
///   frame number, clock) and its alpha mode.
/// - Output buffers come from the handler's own pool, created on the first frame and re-created
///   only when the size or format changes; nothing is allocated per frame. When the pool is
///   exhausted (downstream holds every buffer) the frame is skipped and counted
///   ([`frames_skipped`](Self::frames_skipped)).
/// - Each frame is split into [`ProcessContext::concurrency_limit`] bands of rows blurred in
///   parallel on rayon's global pool: give the stream `Stream::concurrency_limit(2)` to use 2
///   threads. With the default of 1 it runs on the dispatcher's thread alone.
#[derive(Debug)]
pub struct Blur {
    kernel: GaussianKernel,
    input: InputPort<VideoFrame>,
    output: OutputPort<VideoFrame>,
    pool: Option<FramePool>,
    scratch: BlurScratch,
    /// The GPU path, when built with `Blur::with_gpu` or its siblings.
    #[cfg(feature = "gpu")]
    gpu: Option<gpu::GpuPath>,
}

impl Blur {
    /// A blur with `config`; fails on an invalid sigma or radius.
    pub fn new(config: BlurConfig) -> Result<Self, VideoError> {
        let blur = Self {
            kernel: GaussianKernel::new(config.sigma, config.radius)?,
            input: InputPort::new("video", MemoryCaps::CPU),
            output: OutputPort::new("video", MemoryCaps::CPU),
            pool: None,
            scratch: BlurScratch::new(),
            #[cfg(feature = "gpu")]
            gpu: None,
        };
        blur.declare_caps();
        Ok(blur)
    }

    /// Declares the ports' format caps: [`BLUR_FORMATS`] in, the same frames out
    /// ([`Follow::ALL`]). Call again after replacing the ports.
    pub(crate) fn declare_caps(&self) {
        let formats = Caps::Video(VideoCaps::any().with_formats(&BLUR_FORMATS));
        self.input.set_format(formats.clone());
        self.output.set_format(formats);
        self.output.follows(&self.input, Follow::ALL);
    }

    /// The `video` input, for connecting.
    pub fn input(&self) -> InputRef<VideoFrame> {
        self.input.handle()
    }

    /// The `video` output, for connecting.
    pub fn output(&self) -> OutputRef<VideoFrame> {
        self.output.handle()
    }

    /// The kernel in use.
    pub fn kernel(&self) -> &GaussianKernel {
        &self.kernel
    }

    /// Changes sigma and radius from the next frame on (a control plane calls this between
    /// two `process` calls). An invalid config is refused and the current kernel kept.
    pub fn set_config(&mut self, config: BlurConfig) -> Result<(), VideoError> {
        self.kernel = GaussianKernel::new(config.sigma, config.radius)?;
        Ok(())
    }

    /// Frames skipped because every output buffer was still held downstream.
    pub fn frames_skipped(&self) -> u64 {
        self.output.pool_counters().skipped_pool_empty
    }

    fn blur(&mut self, frame: &VideoFrame, bands: usize) -> Result<(), VideoError> {
        let src = frame
            .cpu_bytes()
            .ok_or(VideoError::NotInCpuMemory { handler: HANDLER })?;
        let format = frame.format();
        if !matches!(
            format,
            PixelFormat::Rgba8 | PixelFormat::Bgra8 | PixelFormat::Gray8 | PixelFormat::I420
        ) {
            return Err(VideoError::UnsupportedFormat {
                handler: HANDLER,
                format,
                supported: "rgba8, bgra8, gray8, i420",
            });
        }
        let (width, height) = (frame.width(), frame.height());
        let layout =
            FrameLayout::new(width, height, format).map_err(|source| VideoError::Frame {
                handler: HANDLER,
                source,
            })?;
        let pool = pool_for(&mut self.pool, layout, &self.output)?;
        // An empty pool skips this frame (counted in the stats); readers keep the last one.
        let Some(mut out) = pool.acquire_for(&self.output) else {
            return Ok(());
        };
        let (src_planes, dst_planes) = (
            planes(format, width, height, frame.stride()),
            planes(format, width, height, layout.stride()),
        );
        for (s, d) in src_planes
            .iter()
            .zip(&dst_planes)
            .filter(|(s, _)| s.rows > 0)
        {
            separable::blur_strided(
                &src[s.offset..],
                s.stride,
                &mut out[d.offset..],
                d.stride,
                s.width,
                s.rows,
                s.channels,
                &self.kernel,
                &mut self.scratch,
                bands,
            );
        }
        let blurred = pool
            .frame(out)
            .with_timing(
                frame.timestamp_ns(),
                frame.frame_number(),
                frame.clock_source_id(),
            )
            .with_alpha(frame.alpha());
        self.output.write(blurred);
        Ok(())
    }
}

/// One plane of a frame: where it starts, its size in samples and how its rows are laid out.
#[derive(Debug, Clone, Copy, Default)]
struct Plane {
    offset: usize,
    stride: usize,
    width: u32,
    rows: u32,
    channels: usize,
}

/// The planes blurred independently: one interleaved plane for RGBA/BGRA/Gray, three for
/// I420, whose chroma planes are blurred at their own resolution with the same kernel (as
/// FFmpeg's `gblur` does), so a YUV pipeline needs no conversion to RGBA and back. Unused
/// entries have no rows.
fn planes(format: PixelFormat, width: u32, height: u32, stride: u32) -> [Plane; 3] {
    let stride = stride as usize;
    let mut planes = [Plane::default(); 3];
    match format {
        PixelFormat::I420 => {
            let luma = stride * height as usize;
            let chroma_stride = stride.div_ceil(2);
            let chroma = chroma_stride * height.div_ceil(2) as usize;
            for (i, offset) in [0, luma, luma + chroma].into_iter().enumerate() {
                let (w, h, s) = if i == 0 {
                    (width, height, stride)
                } else {
                    (width.div_ceil(2), height.div_ceil(2), chroma_stride)
                };
                planes[i] = Plane {
                    offset,
                    stride: s,
                    width: w,
                    rows: h,
                    channels: 1,
                };
            }
        }
        _ => {
            planes[0] = Plane {
                offset: 0,
                stride,
                width,
                rows: height,
                channels: if format == PixelFormat::Gray8 { 1 } else { 4 },
            };
        }
    }
    planes
}

/// The output pool for `layout`, (re)created when the layout changes and sized from what
/// `output`'s readers can hold.
fn pool_for<'a>(
    slot: &'a mut Option<FramePool>,
    layout: FrameLayout,
    output: &OutputPort<VideoFrame>,
) -> Result<&'a FramePool, VideoError> {
    let pool = match slot.take() {
        Some(pool) if pool.layout() == layout => pool,
        _ => FramePool::for_output(HANDLER, layout, POOL_INITIAL, POOL_MAX, output).map_err(
            |source| VideoError::Pool {
                handler: HANDLER,
                source,
            },
        )?,
    };
    Ok(slot.insert(pool))
}

impl StreamHandler for Blur {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input).output(&self.output)
    }

    fn on_start(&mut self, _ctx: &StartContext<'_>) -> Result<(), HandlerError> {
        #[cfg(feature = "gpu")]
        gpu::start(self)?;
        Ok(())
    }

    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        let Some(frame) = self.input.recv() else {
            return Ok(());
        };
        #[cfg(feature = "gpu")]
        if self.gpu.is_some() {
            return gpu::process(self, &frame, ctx);
        }
        self.blur(&frame, ctx.concurrency_limit())?;
        Ok(())
    }
}
