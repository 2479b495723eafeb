//! The sink's encoder thread: one video encoder and one Opus encoder shared by every
//! viewer. Frames wait in a one-slot queue (a newer frame replaces one not yet taken), audio
//! in a bounded one; packets go to the session thread, which writes them to each viewer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use str0m::media::{Frequency, MediaTime};
use streamlib_clock::Rational;
use streamlib_codec::encode::{
    AudioCodec, AudioEncoder, AudioEncoderConfig, EncodedPacket, VideoCodec, VideoEncoder,
    VideoEncoderConfig,
};
use streamlib_ports::{AudioBuffer, VideoFrame};

use super::stats::{Shared, add, get};

/// Forced keyframes are at least this far apart: a burst of PLIs (or of viewers joining)
/// costs one keyframe, not one each.
const KEYFRAME_MIN_GAP: Duration = Duration::from_millis(500);
/// The encoder's bitrate follows the target at most this often…
const BITRATE_MIN_GAP: Duration = Duration::from_secs(1);
/// …and only when the target moved by more than this fraction.
const BITRATE_HYSTERESIS: f64 = 0.05;
/// Audio arriving this long after the previous buffer restarts the Opus stream's timeline.
const AUDIO_GAP: Duration = Duration::from_millis(500);
/// Audio buffers queued for the encoder at most.
pub(crate) const AUDIO_QUEUE: usize = 64;
/// The Opus rate (RTP clock of Opus in WebRTC is always 48 kHz) and channel count.
const OPUS_RATE: u32 = 48_000;

/// One encoded unit for the session thread.
#[derive(Debug)]
pub(crate) struct Media {
    /// Video or audio.
    pub video: bool,
    /// The bitstream, shared by every viewer's packetizer.
    pub data: Arc<[u8]>,
    /// A keyframe (always true for audio).
    pub keyframe: bool,
    /// The RTP timestamp: 90 kHz for video, 48 kHz for Opus.
    pub rtp_time: MediaTime,
    /// The wall-clock instant of `rtp_time` (for RTCP sender reports).
    pub wallclock: Instant,
}

/// What the handler hands the encoder thread, and the flags it raises.
#[derive(Debug)]
pub(crate) struct Work {
    pub video: ArrayQueue<(VideoFrame, Instant)>,
    pub audio: ArrayQueue<(AudioBuffer, Instant)>,
    pub keyframe_wanted: AtomicBool,
    pub stop: AtomicBool,
}

impl Work {
    pub fn new() -> Self {
        Self {
            video: ArrayQueue::new(1),
            audio: ArrayQueue::new(AUDIO_QUEUE),
            keyframe_wanted: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        }
    }
}

/// How the encoders are set up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EncoderSettings {
    pub codec: VideoCodec,
    pub fps: Rational,
    pub start_bitrate_bps: u64,
    pub keyframe_interval: Duration,
    pub audio_bitrate_bps: u64,
    /// Time zero of every RTP timeline of this sink.
    pub epoch: Instant,
}

/// The encoder thread's state.
pub(crate) struct Encoders {
    settings: EncoderSettings,
    video: Option<VideoEncoder>,
    last_pts: i64,
    last_forced: Option<Instant>,
    last_bitrate_change: Option<Instant>,
    audio: Option<(AudioEncoder, u64)>,
    last_audio: Option<Instant>,
    failed_layout: Option<streamlib_ports::FrameLayout>,
}

impl Encoders {
    pub fn new(settings: EncoderSettings) -> Self {
        Self {
            settings,
            video: None,
            last_pts: -1,
            last_forced: None,
            last_bitrate_change: None,
            audio: None,
            last_audio: None,
            failed_layout: None,
        }
    }

    /// Runs until `work.stop`: takes what the handler queued, encodes it, and passes every
    /// packet to `out`. Woken by `unpark`; looks every 50 ms anyway.
    pub fn run(&mut self, work: &Work, shared: &Shared, out: &dyn Fn(Media)) {
        while !work.stop.load(Ordering::Relaxed) {
            let mut idle = true;
            while let Some((buffer, at)) = work.audio.pop() {
                idle = false;
                self.encode_audio(&buffer, at, shared, out);
            }
            if let Some((frame, at)) = work.video.pop() {
                idle = false;
                self.encode_video(&frame, at, work, shared, out);
            }
            if idle {
                std::thread::park_timeout(Duration::from_millis(50));
            }
        }
    }

    fn video_encoder(&mut self, frame: &VideoFrame, shared: &Shared) -> Option<&mut VideoEncoder> {
        if self.video.is_none() {
            if self.failed_layout == Some(frame.layout()) {
                return None;
            }
            let s = &self.settings;
            let mut config = VideoEncoderConfig::new(s.codec, frame.width(), frame.height(), s.fps);
            config.bitrate_bps = s.start_bitrate_bps;
            config.low_latency = true;
            config.global_header = false;
            let frames = s.keyframe_interval.as_secs_f64() * f64::from(s.fps.num)
                / f64::from(s.fps.den.max(1));
            config.keyframe_interval = (frames.round() as u32).max(1);
            match VideoEncoder::new(&config, frame.layout()) {
                Ok(encoder) => {
                    shared
                        .encoder_bitrate_bps
                        .store(config.bitrate_bps, Ordering::Relaxed);
                    self.video = Some(encoder);
                }
                Err(e) => {
                    tracing::error!("webrtcsink: cannot open the video encoder: {e}");
                    add(&shared.encode_errors, 1);
                    self.failed_layout = Some(frame.layout());
                    return None;
                }
            }
        }
        self.video.as_mut()
    }

    fn encode_video(
        &mut self,
        frame: &VideoFrame,
        at: Instant,
        work: &Work,
        shared: &Shared,
        out: &dyn Fn(Media),
    ) {
        let (epoch, fps) = (self.settings.epoch, self.settings.fps);
        let now = Instant::now();
        let force = work.keyframe_wanted.load(Ordering::Relaxed)
            && self
                .last_forced
                .is_none_or(|t| now.duration_since(t) >= KEYFRAME_MIN_GAP);
        let bitrate_due = self
            .last_bitrate_change
            .is_none_or(|t| now.duration_since(t) >= BITRATE_MIN_GAP);
        // Presentation time in frames from the capture instant: skipped frames leave gaps
        // instead of slowing the stream down.
        let elapsed = at.saturating_duration_since(epoch).as_secs_f64();
        let pts = (elapsed * f64::from(fps.num) / f64::from(fps.den.max(1))).round() as i64;
        let pts = pts.max(self.last_pts + 1);
        let target = get(&shared.target_bitrate_bps);
        if force {
            work.keyframe_wanted.store(false, Ordering::Relaxed);
            self.last_forced = Some(now);
        }
        let mut changed_bitrate = false;
        let Some(encoder) = self.video_encoder(frame, shared) else {
            add(&shared.frames_rejected, 1);
            return;
        };
        if bitrate_due && target > 0 {
            let current = encoder
                .bitrate_pending()
                .unwrap_or(encoder.config().bitrate_bps);
            let moved = (target as f64 - current as f64).abs() / current.max(1) as f64;
            if moved > BITRATE_HYSTERESIS {
                match encoder.set_bitrate(target) {
                    Ok(()) => {
                        add(&shared.bitrate_changes, 1);
                        shared.encoder_bitrate_bps.store(target, Ordering::Relaxed);
                    }
                    Err(e) => tracing::warn!("webrtcsink: {e}"),
                }
                changed_bitrate = true;
            }
        }
        let started = Instant::now();
        let mut emit = |packet: EncodedPacket<'_>| {
            let rtp = rescale(packet.pts, u64::from(fps.den) * 90_000, u64::from(fps.num));
            add(&shared.video_bytes, packet.data.len() as u64);
            if packet.keyframe {
                add(&shared.keyframes, 1);
            }
            out(Media {
                video: true,
                data: Arc::from(packet.data),
                keyframe: packet.keyframe,
                rtp_time: MediaTime::new(rtp, Frequency::NINETY_KHZ),
                wallclock: epoch + Duration::from_nanos(rtp.saturating_mul(100_000) / 9),
            });
        };
        let encoded = encoder.encode(frame, pts, force, &mut emit);
        if changed_bitrate {
            self.last_bitrate_change = Some(now);
        }
        match encoded {
            Ok(()) => {
                self.last_pts = pts;
                add(&shared.frames_encoded, 1);
                add(&shared.encode_ns_total, started.elapsed().as_nanos() as u64);
            }
            Err(e) => {
                add(&shared.encode_errors, 1);
                add(&shared.frames_rejected, 1);
                tracing::warn!("webrtcsink: {e}");
            }
        }
    }

    fn encode_audio(
        &mut self,
        buffer: &AudioBuffer,
        at: Instant,
        shared: &Shared,
        out: &dyn Fn(Media),
    ) {
        let gap = self
            .last_audio
            .is_none_or(|t| at.saturating_duration_since(t) > AUDIO_GAP);
        self.last_audio = Some(at);
        if gap || self.audio.is_none() {
            let config = AudioEncoderConfig {
                codec: AudioCodec::Opus,
                sample_rate: OPUS_RATE,
                channels: 2,
                bitrate_bps: self.settings.audio_bitrate_bps,
            };
            match AudioEncoder::new(&config) {
                Ok(encoder) => {
                    let base = rescale(
                        at.saturating_duration_since(self.settings.epoch)
                            .as_micros() as i64,
                        u64::from(OPUS_RATE),
                        1_000_000,
                    );
                    self.audio = Some((encoder, base));
                }
                Err(e) => {
                    add(&shared.encode_errors, 1);
                    tracing::error!("webrtcsink: cannot open the Opus encoder: {e}");
                    self.audio = None;
                    return;
                }
            }
        }
        let Some((encoder, base)) = self.audio.as_mut() else {
            return;
        };
        let (base, epoch) = (*base, self.settings.epoch);
        let mut emit = |packet: EncodedPacket<'_>| {
            let rtp = base + u64::try_from(packet.pts.max(0)).unwrap_or(0);
            add(&shared.audio_packets, 1);
            out(Media {
                video: false,
                data: Arc::from(packet.data),
                keyframe: true,
                rtp_time: MediaTime::new(rtp, Frequency::FORTY_EIGHT_KHZ),
                wallclock: epoch + Duration::from_micros(rtp.saturating_mul(1_000) / 48),
            });
        };
        if let Err(e) = encoder.encode(buffer, &mut emit) {
            add(&shared.encode_errors, 1);
            tracing::warn!("webrtcsink: {e}");
        }
    }
}

/// `value * num / den` for non-negative `value`, in u64 (0 for negative values).
fn rescale(value: i64, num: u64, den: u64) -> u64 {
    let value = u128::from(u64::try_from(value).unwrap_or(0));
    u64::try_from(value * u128::from(num) / u128::from(den.max(1))).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rescale_maps_frames_to_90khz() {
        assert_eq!(super::rescale(30, 90_000, 30), 90_000);
        assert_eq!(super::rescale(-3, 90_000, 30), 0);
        assert_eq!(super::rescale(1, 1001 * 90_000, 30_000), 3003);
    }
}
