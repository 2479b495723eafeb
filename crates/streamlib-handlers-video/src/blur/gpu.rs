//! `Blur`'s GPU path (feature `gpu`): the CPU blur's own fixed-point kernel
//! ([`GaussianKernel::gpu_weights`](super::GaussianKernel::gpu_weights)) run by
//! `streamlib-gpu`'s WGSL compute kernel, chosen by the memory the ports negotiated.

use std::fmt;
use std::sync::Arc;

use streamlib_gpu::{
    BlurKernel, FrameUploader, GpuContext, GpuError, GpuFramePool, ReadbackRing, blur_gpu_frame,
};
use streamlib_ports::{
    HandlerError, InputPort, MemoryCaps, MemorySpace, OutputPort, ProcessContext, VideoFrame,
};

use super::{Blur, BlurConfig, GaussianKernel};
use crate::VideoError;

/// Opens the GPU context of a blur built with [`Blur::with_gpu_on_demand`].
type GpuOpener = Arc<dyn Fn() -> Result<GpuContext, GpuError> + Send + Sync>;

/// What the GPU path keeps between frames.
pub(super) struct GpuPath {
    /// The context, once opened.
    ctx: Option<GpuContext>,
    /// Opens it (again, after a failure).
    open: GpuOpener,
    /// Compiled for the kernel in force; re-compiled when `set_config` changed it.
    kernel: Option<BlurKernel>,
    pool: Option<GpuFramePool>,
    /// CPU frames in, GPU frames out.
    uploader: FrameUploader,
    /// GPU frames in, CPU frames out (one frame, waited for).
    readback: ReadbackRing,
}

impl fmt::Debug for GpuPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GpuPath")
            .field("adapter", &self.ctx.as_ref().map(GpuContext::adapter_name))
            .field("kernel", &self.kernel)
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl GpuPath {
    fn new(ctx: Option<GpuContext>, open: GpuOpener) -> Self {
        Self {
            ctx,
            open,
            kernel: None,
            pool: None,
            uploader: FrameUploader::new("blur-upload", 4, 8),
            readback: ReadbackRing::new("blur-readback", 1),
        }
    }

    /// Opens the context if it was left for first use, and compiles the kernel if there is
    /// none yet or `kernel` changed since (`set_config`).
    fn prepare(&mut self, kernel: &GaussianKernel) -> Result<(), GpuError> {
        let ctx = match self.ctx.take() {
            Some(ctx) => ctx,
            None => (self.open)()?,
        };
        let ctx = self.ctx.insert(ctx);
        let stale = self
            .kernel
            .as_ref()
            .is_none_or(|k| k.weights().weights != kernel.fixed().weights);
        if stale {
            self.kernel = Some(BlurKernel::new(ctx, kernel.gpu_weights())?);
        }
        Ok(())
    }
}

impl Blur {
    /// A blur that runs on the GPU of `ctx` when its ports negotiate GPU memory: both ports
    /// are `[cpu, gpu]`, and each frame takes the path its memory says.
    ///
    /// - GPU frame in: blurred by a WGSL compute kernel that runs the CPU blur's fixed-point
    ///   arithmetic with the CPU kernel's own weights, so the result equals the CPU path's
    ///   exactly (edges clamped, alpha blurred, RGBA8 and BGRA8; `Gray8` and `I420` frames are
    ///   CPU-only).
    /// - CPU frame in: the CPU path, unchanged.
    /// - When the output negotiated the other memory (a CPU source feeding a GPU consumer, or
    ///   the reverse), the frame is uploaded before the GPU blur, or the GPU result read back
    ///   (waiting for it: an inserted `GpuToCpu` transfer pipelines that better).
    ///
    /// The shader is compiled at start when a port negotiated GPU memory (else on the first
    /// GPU frame); its errors (and any GPU error) are returned from `on_start` or `process`.
    pub fn with_gpu(config: BlurConfig, ctx: &GpuContext) -> Result<Self, VideoError> {
        Self::with_gpu_memory(config, MemoryCaps::CPU_GPU, ctx)
    }

    /// [`with_gpu`](Self::with_gpu) with both ports declaring `memory` instead of
    /// `[cpu, gpu]`: `MemoryCaps::GPU` makes a GPU-only blur, which the runtime surrounds
    /// with `CpuToGpu` / `GpuToCpu` transfers where its neighbours are CPU handlers.
    pub fn with_gpu_memory(
        config: BlurConfig,
        memory: MemoryCaps,
        ctx: &GpuContext,
    ) -> Result<Self, VideoError> {
        let opened = ctx.clone();
        let open: GpuOpener = Arc::new(move || Ok(opened.clone()));
        Self::gpu(config, memory, Some(ctx.clone()), open)
    }

    /// [`with_gpu_memory`](Self::with_gpu_memory) with the context opened by `open` the first
    /// time the blur has GPU work (at start when a port negotiated GPU memory): a blur built
    /// this way costs nothing on the GPU while frames stay in host memory. An `open` that
    /// fails is tried again on the next GPU frame. A pipeline registry shares one context
    /// this way, and a CPU-only pipeline never opens the GPU.
    pub fn with_gpu_on_demand(
        config: BlurConfig,
        memory: MemoryCaps,
        open: impl Fn() -> Result<GpuContext, GpuError> + Send + Sync + 'static,
    ) -> Result<Self, VideoError> {
        Self::gpu(config, memory, None, Arc::new(open))
    }

    fn gpu(
        config: BlurConfig,
        memory: MemoryCaps,
        ctx: Option<GpuContext>,
        open: GpuOpener,
    ) -> Result<Self, VideoError> {
        let mut blur = Self::new(config)?;
        blur.input = InputPort::new("video", memory);
        blur.output = OutputPort::new("video", memory);
        blur.declare_caps();
        blur.gpu = Some(GpuPath::new(ctx, open));
        Ok(blur)
    }

    /// The GPU output pool, once a GPU frame made it (for its counters).
    pub fn gpu_pool(&self) -> Option<&GpuFramePool> {
        self.gpu.as_ref().and_then(|g| g.pool.as_ref())
    }
}

/// At start: when either port negotiated GPU memory, opens the context and compiles the
/// shader now rather than on the first frame.
pub(super) fn start(blur: &mut Blur) -> Result<(), HandlerError> {
    let on_gpu = [
        blur.input.negotiated_memory(),
        blur.output.negotiated_memory(),
    ]
    .contains(&Some(MemorySpace::Gpu));
    if let Some(path) = blur.gpu.as_mut().filter(|_| on_gpu) {
        path.prepare(&blur.kernel)?;
    }
    Ok(())
}

/// Processes one frame on a blur built with a GPU path.
pub(super) fn process(
    blur: &mut Blur,
    frame: &VideoFrame,
    ctx: &ProcessContext<'_>,
) -> Result<(), HandlerError> {
    let out_space = blur.output.negotiated_memory().unwrap_or(frame.memory());
    if frame.memory() == MemorySpace::Cpu && out_space == MemorySpace::Cpu {
        blur.blur(frame, ctx.concurrency_limit())?;
        return Ok(());
    }
    let Some(path) = blur.gpu.as_mut() else {
        return Ok(());
    };
    path.prepare(&blur.kernel)?;
    let (Some(gpu), Some(kernel)) = (&path.ctx, path.kernel.as_mut()) else {
        return Ok(());
    };
    let uploaded;
    let source = match frame.memory() {
        MemorySpace::Gpu => frame,
        MemorySpace::Cpu => match path.uploader.upload(gpu, frame)? {
            Some(frame) => {
                uploaded = frame;
                &uploaded
            }
            None => {
                // The upload pool is empty: skip (counted in the stats).
                let capacity = path.uploader.pool().map_or(0, |p| p.capacity());
                blur.output.skip_pool_empty(capacity);
                return Ok(());
            }
        },
    };
    let Some(blurred) = blur_gpu_frame(gpu, kernel, &mut path.pool, source)? else {
        // The texture pool is empty: skip (counted in the stats).
        let capacity = path.pool.as_ref().map_or(0, |p| p.capacity());
        blur.output.skip_pool_empty(capacity);
        return Ok(());
    };
    if out_space == MemorySpace::Gpu {
        blur.output.write(blurred);
        return Ok(());
    }
    path.readback.submit(gpu, &blurred)?;
    match path.readback.next(gpu, true)? {
        Some(host) => blur.output.write(host),
        // No host buffer free for the read-back: skip (counted in the stats).
        None => blur
            .output
            .skip_pool_empty(path.readback.host_pool().map_or(0, |p| p.pool().capacity())),
    }
    Ok(())
}
