//! The transfer handlers the runtime inserts where capabilities do not overlap: [`CpuToGpu`]
//! and [`GpuToCpu`], each counting what it moved in a shared [`TransferStats`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use streamlib_ports::{
    HandlerError, InputPort, InputRef, MemoryCaps, OutputPort, OutputRef, Ports, ProcessContext,
    StreamHandler, VideoFrame,
};

use crate::{FrameUploader, GpuContext, ReadbackRing};

/// Textures an uploader starts with: the output ring's 3 slots, one read downstream, one
/// being written, one spare.
const UPLOAD_POOL_INITIAL: usize = 6;
/// The most it grows to.
const UPLOAD_POOL_MAX: usize = 12;
/// Staging buffers of a [`GpuToCpu`].
const READBACK_DEPTH: usize = 3;

#[derive(Debug, Default)]
struct Counters {
    bytes: AtomicU64,
    frames: AtomicU64,
    skipped: AtomicU64,
    handlers: AtomicU64,
}

/// What transfers moved: a shared handle (cloning shares the counters), readable from any
/// thread while the pipeline runs. One handle may be shared by several transfer handlers (the
/// facade's `register_transfers` gives every inserted upload one handle, every download
/// another) to total them.
#[derive(Debug, Clone, Default)]
pub struct TransferStats {
    counters: Arc<Counters>,
}

impl TransferStats {
    /// Fresh counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Pixel bytes moved (width × height × 4 per frame; row padding not counted).
    pub fn bytes(&self) -> u64 {
        self.counters.bytes.load(Ordering::Relaxed)
    }

    /// Frames moved.
    pub fn frames(&self) -> u64 {
        self.counters.frames.load(Ordering::Relaxed)
    }

    /// Frames dropped because a pool was exhausted.
    pub fn skipped(&self) -> u64 {
        self.counters.skipped.load(Ordering::Relaxed)
    }

    /// Transfer handlers created with this handle.
    pub fn handlers(&self) -> u64 {
        self.counters.handlers.load(Ordering::Relaxed)
    }

    fn moved(&self, frame: &VideoFrame) {
        let bytes = u64::from(frame.width()) * u64::from(frame.height()) * 4;
        self.counters.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.counters.frames.fetch_add(1, Ordering::Relaxed);
    }

    fn skip(&self) {
        self.counters.skipped.fetch_add(1, Ordering::Relaxed);
    }

    fn attach(self) -> Self {
        self.counters.handlers.fetch_add(1, Ordering::Relaxed);
        self
    }
}

/// Uploads host frames to the GPU: input `video` `[cpu]`, output `video` `[gpu]`.
///
/// RGBA8 and BGRA8 frames of any stride go into pooled RGBA8 textures through
/// `queue.write_texture` (one copy, straight from the frame's buffer); timing, frame number
/// and alpha mode are kept. The upload is flushed with a submission on the same tick, so the
/// frame crosses the hop on the tick it was produced. A full texture pool skips the frame
/// (counted in [`TransferStats::skipped`]).
#[derive(Debug)]
pub struct CpuToGpu {
    ctx: GpuContext,
    input: InputPort<VideoFrame>,
    output: OutputPort<VideoFrame>,
    uploader: FrameUploader,
    stats: TransferStats,
}

impl CpuToGpu {
    /// An upload with its own counters.
    pub fn new(ctx: &GpuContext) -> Self {
        Self::with_stats(ctx, TransferStats::new())
    }

    /// An upload counting into `stats`.
    pub fn with_stats(ctx: &GpuContext, stats: TransferStats) -> Self {
        Self {
            ctx: ctx.clone(),
            input: InputPort::new("video", MemoryCaps::CPU),
            output: OutputPort::new("video", MemoryCaps::GPU),
            uploader: FrameUploader::new("cpu-to-gpu", UPLOAD_POOL_INITIAL, UPLOAD_POOL_MAX),
            stats: stats.attach(),
        }
    }

    /// The `video` input.
    pub fn input(&self) -> InputRef<VideoFrame> {
        self.input.handle()
    }

    /// The `video` output.
    pub fn output(&self) -> OutputRef<VideoFrame> {
        self.output.handle()
    }

    /// Its counters.
    pub fn stats(&self) -> TransferStats {
        self.stats.clone()
    }

    /// The texture pool, once the first frame made it.
    pub fn pool(&self) -> Option<&crate::GpuFramePool> {
        self.uploader.pool()
    }
}

impl StreamHandler for CpuToGpu {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input).output(&self.output)
    }

    fn process(&mut self, _ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        let Some(frame) = self.input.recv() else {
            return Ok(());
        };
        match self.uploader.upload(&self.ctx, &frame)? {
            Some(gpu) => {
                self.stats.moved(&gpu);
                self.output.write(gpu);
            }
            None => {
                // The runtime's statistics read pool-empty skips from the output.
                self.output.skip_pool_empty(0);
                self.stats.skip();
            }
        }
        Ok(())
    }
}

/// Reads GPU frames back to host memory: input `video` `[gpu]`, output `video` `[cpu]`.
///
/// Pipelined through a [`ReadbackRing`] of three staging buffers: on each call it first emits
/// the frames submitted on earlier calls (mapped by then, since the poller thread drove their
/// maps while the rest of the pipeline ran; if one is not, it waits for that one only), then
/// copies this call's frame into a free staging buffer and asks for its map. **Latency: one
/// tick** — the frame of tick N leaves on tick N + 1, keeping its own timestamp and frame
/// number — and the readback of a frame never stalls the tick that produced it. On the last
/// call (`inputs_ended`) it flushes: the frame still in flight is waited for and emitted.
/// Output frames come from a host [`FramePool`](streamlib_ports::FramePool) with a tight
/// stride; a full pool drops the frame (counted in [`TransferStats::skipped`]).
#[derive(Debug)]
pub struct GpuToCpu {
    ctx: GpuContext,
    input: InputPort<VideoFrame>,
    output: OutputPort<VideoFrame>,
    ring: ReadbackRing,
    stats: TransferStats,
}

impl GpuToCpu {
    /// A readback with its own counters.
    pub fn new(ctx: &GpuContext) -> Self {
        Self::with_stats(ctx, TransferStats::new())
    }

    /// A readback counting into `stats`.
    pub fn with_stats(ctx: &GpuContext, stats: TransferStats) -> Self {
        Self {
            ctx: ctx.clone(),
            input: InputPort::new("video", MemoryCaps::GPU),
            output: OutputPort::new("video", MemoryCaps::CPU),
            ring: ReadbackRing::new("gpu-to-cpu", READBACK_DEPTH),
            stats: stats.attach(),
        }
    }

    /// The `video` input.
    pub fn input(&self) -> InputRef<VideoFrame> {
        self.input.handle()
    }

    /// The `video` output.
    pub fn output(&self) -> OutputRef<VideoFrame> {
        self.output.handle()
    }

    /// Its counters.
    pub fn stats(&self) -> TransferStats {
        self.stats.clone()
    }

    /// Emits the oldest frame in flight (waiting for it if `wait`).
    fn emit_one(&mut self, wait: bool) -> Result<bool, HandlerError> {
        if self.ring.pending() == 0 || (!wait && !self.ring.oldest_ready()) {
            return Ok(false);
        }
        match self.ring.next(&self.ctx, true)? {
            Some(frame) => {
                self.stats.moved(&frame);
                self.output.write(frame);
            }
            None => {
                // The runtime's statistics read pool-empty skips from the output.
                self.output.skip_pool_empty(0);
                self.stats.skip();
            }
        }
        Ok(true)
    }
}

impl StreamHandler for GpuToCpu {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input).output(&self.output)
    }

    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        // Frames from earlier calls first: they had a whole tick to complete.
        while self.emit_one(true)? {}
        if let Some(frame) = self.input.recv() {
            self.ring.submit(&self.ctx, &frame)?;
        }
        if ctx.inputs_ended() {
            while self.emit_one(true)? {}
        }
        Ok(())
    }

    fn on_stop(&mut self) -> Result<(), HandlerError> {
        // Nothing downstream reads any more: collect what is in flight so the staging buffers
        // are unmapped, and drop it.
        while self.ring.pending() > 0 {
            if self.ring.next(&self.ctx, true).is_err() {
                break;
            }
        }
        Ok(())
    }
}
