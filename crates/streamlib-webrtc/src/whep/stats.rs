//! What a [`WebRtcSink`](crate::WebRtcSink) counts, shared by its threads as atomics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The counters, written by the handler, encoder and session threads.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub whep_url: Mutex<Option<String>>,
    pub viewers: AtomicU64,
    pub viewers_connected: AtomicU64,
    pub viewers_total: AtomicU64,
    pub viewers_dropped: AtomicU64,
    pub offers_refused: AtomicU64,
    pub offers_over_limit: AtomicU64,
    pub frames_in: AtomicU64,
    pub frames_idle: AtomicU64,
    pub frames_skipped: AtomicU64,
    pub frames_encoded: AtomicU64,
    pub frames_rejected: AtomicU64,
    pub frames_sent: AtomicU64,
    pub frames_held_for_keyframe: AtomicU64,
    pub keyframes: AtomicU64,
    pub keyframe_requests: AtomicU64,
    pub video_bytes: AtomicU64,
    pub audio_buffers_in: AtomicU64,
    pub audio_packets: AtomicU64,
    pub encode_errors: AtomicU64,
    pub inbox_full: AtomicU64,
    pub target_bitrate_bps: AtomicU64,
    pub min_bitrate_bps: AtomicU64,
    pub max_bitrate_bps: AtomicU64,
    /// The lowest connected viewer's estimate, 0 while there is none.
    pub lowest_estimate_bps: AtomicU64,
    pub encoder_bitrate_bps: AtomicU64,
    pub bitrate_changes: AtomicU64,
    pub encode_ns_total: AtomicU64,
}

pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

pub(crate) fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl Shared {
    /// The target for the lowest estimate: within the bounds (the current target when no
    /// viewer has an estimate yet).
    pub fn retarget(&self) {
        let (min, max) = (get(&self.min_bitrate_bps), get(&self.max_bitrate_bps));
        let lowest = match get(&self.lowest_estimate_bps) {
            0 => get(&self.target_bitrate_bps),
            lowest => lowest,
        };
        self.target_bitrate_bps
            .store(lowest.clamp(min, max.max(min)), Ordering::Relaxed);
    }

    pub fn set_url(&self, url: Option<String>) {
        *self.whep_url.lock().unwrap_or_else(PoisonError::into_inner) = url;
    }

    pub fn url(&self) -> Option<String> {
        self.whep_url
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A handle to a sink's counters, for reports; cheap to clone, readable from any thread.
#[derive(Debug, Clone)]
pub struct WebRtcSinkStats(pub(crate) Arc<Shared>);

impl WebRtcSinkStats {
    /// The endpoint's URL (`http://ADDR/whep`, with the port bound for port 0) while the sink
    /// runs, `None` before its start and after its stop.
    pub fn whep_url(&self) -> Option<String> {
        self.0.url()
    }

    /// The counters now.
    pub fn snapshot(&self) -> WebRtcSinkSnapshot {
        let s = &self.0;
        let encoded = get(&s.frames_encoded);
        WebRtcSinkSnapshot {
            whep_url: s.url(),
            viewers: get(&s.viewers),
            viewers_connected: get(&s.viewers_connected),
            viewers_total: get(&s.viewers_total),
            viewers_dropped: get(&s.viewers_dropped),
            offers_refused: get(&s.offers_refused),
            offers_over_limit: get(&s.offers_over_limit),
            frames_in: get(&s.frames_in),
            frames_idle: get(&s.frames_idle),
            frames_skipped: get(&s.frames_skipped),
            frames_encoded: encoded,
            frames_rejected: get(&s.frames_rejected),
            frames_sent: get(&s.frames_sent),
            frames_held_for_keyframe: get(&s.frames_held_for_keyframe),
            keyframes: get(&s.keyframes),
            keyframe_requests: get(&s.keyframe_requests),
            video_bytes: get(&s.video_bytes),
            audio_buffers_in: get(&s.audio_buffers_in),
            audio_packets: get(&s.audio_packets),
            encode_errors: get(&s.encode_errors),
            inbox_full: get(&s.inbox_full),
            target_bitrate_bps: get(&s.target_bitrate_bps),
            encoder_bitrate_bps: get(&s.encoder_bitrate_bps),
            bitrate_changes: get(&s.bitrate_changes),
            encode_mean_ns: get(&s.encode_ns_total).checked_div(encoded).unwrap_or(0),
        }
    }
}

/// A sink's counters at one instant (see [`WebRtcSinkStats::snapshot`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebRtcSinkSnapshot {
    /// The WHEP endpoint's URL while running.
    pub whep_url: Option<String>,
    /// Sessions now (answered, connected or not yet).
    pub viewers: u64,
    /// Sessions whose media path (ICE + DTLS) is up: frames are encoded while this is > 0.
    pub viewers_connected: u64,
    /// Sessions answered since the start.
    pub viewers_total: u64,
    /// Sessions ended: DELETE, ICE timeout or failure, never connected.
    pub viewers_dropped: u64,
    /// Offers refused as malformed or unanswerable (`400`).
    pub offers_refused: u64,
    /// Offers refused because `max-viewers` sessions existed (`503`).
    pub offers_over_limit: u64,
    /// Frames received on the video input.
    pub frames_in: u64,
    /// Frames not encoded because no viewer was connected.
    pub frames_idle: u64,
    /// Frames replaced by a newer one before the encoder took them.
    pub frames_skipped: u64,
    /// Frames encoded (once for every viewer: the encoder is shared).
    pub frames_encoded: u64,
    /// Frames the encoder could not take (GPU memory, or the encoder failed to open).
    pub frames_rejected: u64,
    /// Frames written to viewers, summed over viewers.
    pub frames_sent: u64,
    /// Frames not sent to a viewer that waits for a keyframe to start decoding.
    pub frames_held_for_keyframe: u64,
    /// Keyframes encoded.
    pub keyframes: u64,
    /// Keyframe requests (PLI/FIR, new viewers).
    pub keyframe_requests: u64,
    /// Encoded video bytes.
    pub video_bytes: u64,
    /// Audio buffers received.
    pub audio_buffers_in: u64,
    /// Opus packets encoded.
    pub audio_packets: u64,
    /// Encoder errors (each logged).
    pub encode_errors: u64,
    /// Datagrams, offers or packets dropped because the session thread's inbox was full.
    pub inbox_full: u64,
    /// The bitrate congestion control asks for: the lowest connected viewer's estimate,
    /// within `min-bitrate` and `max-bitrate`.
    pub target_bitrate_bps: u64,
    /// The bitrate the encoder was last set to.
    pub encoder_bitrate_bps: u64,
    /// Times the encoder's bitrate was changed.
    pub bitrate_changes: u64,
    /// Mean time to convert and encode a frame, in ns.
    pub encode_mean_ns: u64,
}
