//! `Blur`'s GPU path (feature `gpu`): the same fixed-point blur as a WGSL compute kernel from
//! `streamlib-gpu`, chosen by the memory the ports negotiated.

use streamlib_gpu::{
    BlurKernel, BlurWeights, FrameUploader, GpuContext, GpuFramePool, ReadbackRing, blur_gpu_frame,
};
use streamlib_ports::{
    HandlerError, InputPort, MemoryCaps, MemorySpace, OutputPort, ProcessContext, VideoFrame,
};

use super::{Blur, BlurConfig};
use crate::VideoError;

/// What the GPU path keeps between frames.
#[derive(Debug)]
pub(super) struct GpuPath {
    ctx: GpuContext,
    /// Compiled for the kernel in force; re-compiled when `set_config` changed it.
    kernel: Option<BlurKernel>,
    pool: Option<GpuFramePool>,
    /// CPU frames in, GPU frames out.
    uploader: FrameUploader,
    /// GPU frames in, CPU frames out (one frame, waited for).
    readback: ReadbackRing,
}

impl Blur {
    /// A blur that runs on the GPU of `ctx` when its ports negotiate GPU memory: both ports
    /// are `[cpu, gpu]`, and each frame takes the path its memory says.
    ///
    /// - GPU frame in: blurred by a WGSL compute kernel that runs the CPU blur's fixed-point
    ///   arithmetic, so the result equals the CPU path's exactly (edges clamped, alpha blurred,
    ///   RGBA8 and BGRA8; `Gray8` frames are CPU-only).
    /// - CPU frame in: the CPU path, unchanged.
    /// - When the output negotiated the other memory (a CPU source feeding a GPU consumer, or
    ///   the reverse), the frame is uploaded before the GPU blur, or the GPU result read back
    ///   (waiting for it: an inserted `GpuToCpu` transfer pipelines that better).
    ///
    /// The shader is compiled on the first GPU frame; its errors (and any GPU error) are
    /// returned from `process`.
    pub fn with_gpu(config: BlurConfig, ctx: &GpuContext) -> Result<Self, VideoError> {
        let mut blur = Self::new(config)?;
        blur.input = InputPort::new("video", MemoryCaps::CPU_GPU);
        blur.output = OutputPort::new("video", MemoryCaps::CPU_GPU);
        blur.declare_caps();
        blur.gpu = Some(GpuPath {
            ctx: ctx.clone(),
            kernel: None,
            pool: None,
            uploader: FrameUploader::new("blur-upload", 4, 8),
            readback: ReadbackRing::new("blur-readback", 1),
        });
        Ok(blur)
    }

    /// The GPU output pool, once a GPU frame made it (for its counters).
    pub fn gpu_pool(&self) -> Option<&GpuFramePool> {
        self.gpu.as_ref().and_then(|g| g.pool.as_ref())
    }
}

/// The kernel's fixed-point weights as the GPU kernel takes them.
fn weights_of(blur: &Blur) -> BlurWeights {
    let fixed = blur.kernel.fixed();
    BlurWeights {
        weights: fixed.weights.clone(),
        vertical_bias: fixed.vertical_bias,
        horizontal_bias: fixed.horizontal_bias,
    }
}

/// Processes one frame on a blur built with [`Blur::with_gpu`].
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
    let weights = {
        let fixed = blur.kernel.fixed();
        let current = blur
            .gpu
            .as_ref()
            .and_then(|g| g.kernel.as_ref())
            .map(BlurKernel::weights);
        (current.map(|w| &w.weights) != Some(&fixed.weights)).then(|| weights_of(blur))
    };
    let Some(path) = blur.gpu.as_mut() else {
        return Ok(());
    };
    if let Some(weights) = weights {
        path.kernel = Some(BlurKernel::new(&path.ctx, weights)?);
    }
    let Some(kernel) = path.kernel.as_mut() else {
        return Ok(());
    };
    let uploaded;
    let source = match frame.memory() {
        MemorySpace::Gpu => frame,
        MemorySpace::Cpu => match path.uploader.upload(&path.ctx, frame)? {
            Some(gpu) => {
                uploaded = gpu;
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
    let Some(blurred) = blur_gpu_frame(&path.ctx, kernel, &mut path.pool, source)? else {
        // The texture pool is empty: skip (counted in the stats).
        let capacity = path.pool.as_ref().map_or(0, |p| p.capacity());
        blur.output.skip_pool_empty(capacity);
        return Ok(());
    };
    if out_space == MemorySpace::Gpu {
        blur.output.write(blurred);
        return Ok(());
    }
    path.readback.submit(&path.ctx, &blurred)?;
    match path.readback.next(&path.ctx, true)? {
        Some(host) => blur.output.write(host),
        // No host buffer free for the read-back: skip (counted in the stats).
        None => blur
            .output
            .skip_pool_empty(path.readback.host_pool().map_or(0, |p| p.pool().capacity())),
    }
    Ok(())
}
