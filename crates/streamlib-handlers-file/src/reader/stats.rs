//! [`ReaderStats`]: the reader's live counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) frames_decoded: AtomicU64,
    pub(super) frames_output: AtomicU64,
    pub(super) frames_dropped: AtomicU64,
    pub(super) decode_errors: AtomicU64,
    pub(super) loops: AtomicU64,
    pub(super) audio_buffers: AtomicU64,
    pub(super) audio_samples: AtomicU64,
    pub(super) frames_copied: AtomicU64,
    pub(super) frames_converted: AtomicU64,
}

/// Live counters of a [`FileReader`](super::FileReader); cloneable, readable from any thread.
#[derive(Debug, Clone, Default)]
pub struct ReaderStats {
    pub(super) counters: Arc<Counters>,
}

pub(super) fn bump(counter: &AtomicU64) {
    add(counter, 1);
}

pub(super) fn add(counter: &AtomicU64, n: u64) {
    // One writer (the reader's own thread): a load and a store suffice.
    counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

impl ReaderStats {
    /// Frames the decoder produced (including ones discarded before the start offset or
    /// dropped by realtime pacing).
    pub fn frames_decoded(&self) -> u64 {
        self.counters.frames_decoded.load(Ordering::Relaxed)
    }

    /// Frames written to the output (repeats under realtime pacing included).
    pub fn frames_output(&self) -> u64 {
        self.counters.frames_output.load(Ordering::Relaxed)
    }

    /// Decoded frames not shown: realtime pacing skipped them, or every pooled buffer was
    /// still held downstream.
    pub fn frames_dropped(&self) -> u64 {
        self.counters.frames_dropped.load(Ordering::Relaxed)
    }

    /// Damaged packets or frames FFmpeg reported.
    pub fn decode_errors(&self) -> u64 {
        self.counters.decode_errors.load(Ordering::Relaxed)
    }

    /// Times the file wrapped around (looping).
    pub fn loops(&self) -> u64 {
        self.counters.loops.load(Ordering::Relaxed)
    }

    /// [`AudioBuffer`](streamlib_ports::AudioBuffer)s written to the audio output.
    pub fn audio_buffers_output(&self) -> u64 {
        self.counters.audio_buffers.load(Ordering::Relaxed)
    }

    /// Samples per channel written to the audio output.
    pub fn audio_samples_output(&self) -> u64 {
        self.counters.audio_samples.load(Ordering::Relaxed)
    }

    /// Frames output in the decoder's own pixel format and size: copied plane by plane into
    /// a pooled frame, with no swscale pass.
    pub fn frames_copied(&self) -> u64 {
        self.counters.frames_copied.load(Ordering::Relaxed)
    }

    /// Frames output through swscale (another pixel format or size than the decoder's).
    pub fn frames_converted(&self) -> u64 {
        self.counters.frames_converted.load(Ordering::Relaxed)
    }

    pub(super) fn add_decoded(&self) {
        bump(&self.counters.frames_decoded);
    }

    pub(super) fn add_error(&self) {
        bump(&self.counters.decode_errors);
    }
}
