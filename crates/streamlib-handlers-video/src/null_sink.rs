//! `NullSink`: discards frames and counts them, for measuring a pipeline's throughput.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use streamlib_ports::{
    Caps, HandlerError, InputPort, InputRef, MemoryCaps, Ports, ProcessContext, StreamHandler,
    VideoFrame,
};

/// A sink that drops every frame it receives and counts them: the `null` of a shell pipeline
/// (`ffmpeg … -f null -`). It accepts CPU and GPU frames alike (`[cpu, gpu]`), so it never
/// makes the runtime insert a transfer, and it touches no pixel.
#[derive(Debug)]
pub struct NullSink {
    input: InputPort<VideoFrame>,
    received: Arc<AtomicU64>,
}

impl NullSink {
    /// A sink with a `video` input.
    pub fn new() -> Self {
        Self {
            // Any video, without narrowing anything: what arrives is what was produced.
            input: InputPort::new("video", MemoryCaps::CPU_GPU).with_format(Caps::video()),
            received: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The `video` input, for connecting.
    pub fn input(&self) -> InputRef<VideoFrame> {
        self.input.handle()
    }

    /// A counter of frames received, readable from any thread.
    pub fn counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.received)
    }
}

impl Default for NullSink {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamHandler for NullSink {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input)
    }

    fn process(&mut self, _ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        if self.input.recv().is_some() {
            self.received.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}
