//! `NullSink`: discards frames, audio and data and counts them, for measuring a pipeline's
//! throughput or ending a branch nobody reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use streamlib_ports::{
    AudioBuffer, Caps, DataMessage, HandlerError, InputPort, InputRef, MemoryCaps, Ports,
    ProcessContext, StreamHandler, VideoFrame,
};

/// A sink that drops everything it receives and counts it: the `null` of a shell pipeline
/// (`ffmpeg … -f null -`). It has three optional inputs, one per kind, so any branch can end
/// in it: `video` (CPU and GPU frames alike, `[cpu, gpu]`, so it never makes the runtime
/// insert a transfer), `audio` and `data` (`[cpu]`, read in order, drained every call). It
/// accepts any format and touches no sample.
#[derive(Debug)]
pub struct NullSink {
    video: InputPort<VideoFrame>,
    audio: InputPort<AudioBuffer>,
    data: InputPort<DataMessage>,
    received: Arc<AtomicU64>,
}

impl NullSink {
    /// A sink with optional `video`, `audio` and `data` inputs.
    pub fn new() -> Self {
        Self {
            // Any format, without narrowing anything: what arrives is what was produced.
            video: InputPort::new("video", MemoryCaps::CPU_GPU)
                .with_format(Caps::video())
                .optional(),
            audio: InputPort::new("audio", MemoryCaps::CPU)
                .with_format(Caps::audio())
                .optional(),
            data: InputPort::new("data", MemoryCaps::CPU).optional(),
            received: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The `video` input, for connecting.
    pub fn input(&self) -> InputRef<VideoFrame> {
        self.video.handle()
    }

    /// The `audio` input, for connecting.
    pub fn audio_input(&self) -> InputRef<AudioBuffer> {
        self.audio.handle()
    }

    /// The `data` input, for connecting.
    pub fn data_input(&self) -> InputRef<DataMessage> {
        self.data.handle()
    }

    /// A counter of everything received (frames, audio buffers, data messages), readable
    /// from any thread.
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
        Ports::new()
            .input(&self.video)
            .input(&self.audio)
            .input(&self.data)
    }

    fn process(&mut self, _ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        let mut n = u64::from(self.video.recv().is_some());
        // Ordered inputs: drain them, or their queues fill and the producer is held back.
        while self.audio.recv().is_some() {
            n += 1;
        }
        while self.data.recv().is_some() {
            n += 1;
        }
        if n > 0 {
            self.received.fetch_add(n, Ordering::Relaxed);
        }
        Ok(())
    }
}
