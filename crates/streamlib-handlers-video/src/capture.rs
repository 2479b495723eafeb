//! `FrameCapture`: a sink that keeps chosen frames by reference, for snapshots and tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use streamlib_ports::{
    HandlerError, InputPort, InputRef, MemoryCaps, Ports, ProcessContext, StreamHandler, VideoFrame,
};

#[derive(Default)]
struct Shared {
    received: AtomicU64,
    captured: Mutex<Vec<(u64, VideoFrame)>>,
    latest: Mutex<Option<VideoFrame>>,
}

/// What a [`FrameCapture`] has seen; cloneable, readable from any thread.
#[derive(Clone, Default)]
pub struct CaptureHandle {
    shared: Arc<Shared>,
}

impl CaptureHandle {
    /// Frames received so far.
    pub fn received(&self) -> u64 {
        self.shared.received.load(Ordering::Relaxed)
    }

    /// The captured frames with the index (0-based count of frames received) each had.
    pub fn frames(&self) -> Vec<(u64, VideoFrame)> {
        self.shared
            .captured
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The last frame received, if `keep_latest` was set.
    pub fn latest(&self) -> Option<VideoFrame> {
        self.shared
            .latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A sink that counts frames and keeps the ones whose arrival index is in a list (e.g. first,
/// middle and last of a run), as references to the pooled frames: nothing is copied, and the
/// lock is taken only for a kept frame. With `keep_latest`, it also keeps the newest frame
/// (one lock per frame; for snapshots, not for benchmarks).
pub struct FrameCapture {
    input: InputPort<VideoFrame>,
    indices: Vec<u64>,
    keep_latest: bool,
    handle: CaptureHandle,
}

impl FrameCapture {
    /// Keeps the frames that arrive at the given 0-based indices.
    pub fn new(indices: impl IntoIterator<Item = u64>) -> Self {
        let mut indices: Vec<u64> = indices.into_iter().collect();
        indices.sort_unstable();
        indices.dedup();
        // Room for every kept frame up front: capturing one must not allocate mid-run.
        let handle = CaptureHandle::default();
        handle
            .shared
            .captured
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .reserve(indices.len());
        // It keeps the captured frames, the latest (if asked) and the one in hand: upstream
        // pools are sized for that.
        let held = indices.len() + 2;
        Self {
            input: InputPort::new("video", MemoryCaps::CPU).holding(held),
            indices,
            keep_latest: false,
            handle,
        }
    }

    /// Also keep the newest frame.
    pub fn keep_latest(mut self) -> Self {
        self.keep_latest = true;
        self
    }

    /// The input ("video").
    pub fn input(&self) -> InputRef<VideoFrame> {
        self.input.handle()
    }

    /// A handle to read what was captured.
    pub fn handle(&self) -> CaptureHandle {
        self.handle.clone()
    }
}

impl StreamHandler for FrameCapture {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input)
    }

    fn process(&mut self, _ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        let Some(frame) = self.input.recv() else {
            return Ok(());
        };
        let shared = &self.handle.shared;
        let index = shared.received.load(Ordering::Relaxed);
        shared.received.store(index + 1, Ordering::Relaxed);
        if self.indices.binary_search(&index).is_ok() {
            shared
                .captured
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((index, frame.clone()));
        }
        if self.keep_latest {
            *shared.latest.lock().unwrap_or_else(PoisonError::into_inner) = Some(frame);
        }
        Ok(())
    }
}
