//! Encoders: [`VideoEncoder`] (H.264 through libx264, HEVC through libx265, VP8 through
//! libvpx) and [`AudioEncoder`] (AAC through FFmpeg's native `aac`, Opus through libopus).
//!
//! A video encoder takes [`VideoFrame`](streamlib_ports::VideoFrame)s of any CPU layout,
//! converts them with swscale straight from the pooled bytes into its reused yuv420p picture
//! and hands every packet it produces to a callback, borrowed from its reused packet: the
//! steady state allocates nothing of its own. Between frames it takes a keyframe request (the
//! next frame is an IDR / key frame) and a new bitrate:
//!
//! - libx264 reconfigures on the next frame (FFmpeg's libx264 wrapper passes a changed
//!   `bit_rate` / `rc_max_rate` / `rc_buffer_size` to `x264_encoder_reconfig`; the encoder
//!   runs with a VBV so the change applies).
//! - libvpx (VP8) and libx265 are not reconfigured by FFmpeg 5.1's wrappers: the encoder is
//!   reopened with the new rate at the next keyframe (a requested one, or the next periodic
//!   one), so the stream stays decodable and the rate changes within one keyframe interval.
//!   [`VideoEncoder::bitrate_pending`] says when a change waits for it.
//!
//! ```
//! use streamlib_codec::encode::{VideoCodec, VideoEncoder, VideoEncoderConfig};
//! use streamlib_clock::Rational;
//! use streamlib_ports::{FrameLayout, PixelFormat};
//!
//! let config = VideoEncoderConfig::new(VideoCodec::H264, 320, 240, Rational::fps(30));
//! let input = FrameLayout::new(320, 240, PixelFormat::Rgba8).unwrap();
//! let encoder = VideoEncoder::new(&config, input).unwrap();
//! assert_eq!(encoder.config().width, 320);
//! ```

mod audio;
mod video;

pub use audio::AudioEncoder;
pub use video::VideoEncoder;

use streamlib_clock::Rational;
use streamlib_ports::PixelFormat;

/// A video codec the encoders (and `crate::decode`'s decoders) handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// H.264 / AVC through libx264.
    H264,
    /// H.265 / HEVC through libx265.
    H265,
    /// VP8 through libvpx.
    Vp8,
}

impl VideoCodec {
    /// FFmpeg's encoder name: `libx264`, `libx265`, `libvpx`.
    pub fn encoder_name(self) -> &'static str {
        match self {
            Self::H264 => "libx264",
            Self::H265 => "libx265",
            Self::Vp8 => "libvpx",
        }
    }

    /// Whether this FFmpeg build has the encoder.
    pub fn encoder_available(self) -> bool {
        ffmpeg_next::encoder::find_by_name(self.encoder_name()).is_some()
    }

    /// Whether FFmpeg's wrapper applies a new bitrate to the running encoder (libx264);
    /// the others are reopened at the next keyframe (see the module docs).
    pub fn reconfigures_live(self) -> bool {
        matches!(self, Self::H264)
    }
}

impl std::fmt::Display for VideoCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::H264 => "H.264",
            Self::H265 => "H.265",
            Self::Vp8 => "VP8",
        })
    }
}

/// What a [`VideoEncoder`] produces.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoEncoderConfig {
    /// The codec.
    pub codec: VideoCodec,
    /// Encoded width. H.264 and H.265 encode 4:2:0 and need even sizes: an odd value is
    /// rounded down (the input's last column is cropped), and [`VideoEncoder::config`]
    /// reports the size used.
    pub width: u32,
    /// Encoded height (rounded down to even for H.264 and H.265).
    pub height: u32,
    /// Frames per second: the time base of packet timestamps is `1/fps`.
    pub fps: Rational,
    /// Target bitrate in bits per second.
    pub bitrate_bps: u64,
    /// At most this many frames between keyframes; 0: keyframes only when requested
    /// (and the first frame).
    pub keyframe_interval: u32,
    /// Live latency over compression: no B-frames and no lookahead (x264/x265
    /// `tune=zerolatency`, H.264 constrained baseline profile), libvpx's realtime deadline
    /// with `lag-in-frames=0`, error resilience and constant bitrate.
    pub low_latency: bool,
    /// Parameter sets in [`VideoEncoder::extradata`] (what MP4 and other containers with a
    /// codec header want) instead of repeated in the stream before every keyframe.
    pub global_header: bool,
}

impl VideoEncoderConfig {
    /// `codec` at `width`x`height` and `fps`: 2 Mbit/s, a keyframe every two seconds, not
    /// low-latency, parameter sets in the stream.
    pub fn new(codec: VideoCodec, width: u32, height: u32, fps: Rational) -> Self {
        let interval = (u64::from(fps.num) * 2 / u64::from(fps.den.max(1))).max(1);
        Self {
            codec,
            width,
            height,
            fps,
            bitrate_bps: 2_000_000,
            keyframe_interval: u32::try_from(interval).unwrap_or(u32::MAX),
            low_latency: false,
            global_header: false,
        }
    }
}

/// One encoded packet, borrowed from the encoder until the callback returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodedPacket<'a> {
    /// The bitstream: H.264/H.265 in Annex B (start codes), VP8 frames, raw AAC or Opus
    /// packets (no ADTS).
    pub data: &'a [u8],
    /// Presentation time: in frames (`1/fps`) for video, in samples of the encoder's rate
    /// for audio.
    pub pts: i64,
    /// Decode time in the same unit; below `pts` when the encoder reorders (B-frames), and
    /// negative for the first frames then.
    pub dts: i64,
    /// Whether the packet starts a point a decoder can start from (an IDR for H.264/H.265,
    /// a key frame for VP8; every audio packet).
    pub keyframe: bool,
    /// Duration in the same unit (1 frame for video; the samples coded, for audio).
    pub duration: i64,
}

/// What an [`AudioEncoder`] produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioEncoderConfig {
    /// The codec.
    pub codec: AudioCodec,
    /// Samples per second per channel of the encoded stream (Opus: 48000, 24000, 16000,
    /// 12000 or 8000). Buffers of another rate are resampled.
    pub sample_rate: u32,
    /// Channels of the encoded stream (1..=8). Buffers of another count are remixed.
    pub channels: u16,
    /// Target bitrate in bits per second.
    pub bitrate_bps: u64,
}

/// An audio codec the encoders handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    /// AAC-LC through FFmpeg's native `aac` encoder.
    Aac,
    /// Opus through libopus.
    Opus,
}

impl AudioCodec {
    /// FFmpeg's encoder name: `aac`, `libopus`.
    pub fn encoder_name(self) -> &'static str {
        match self {
            Self::Aac => "aac",
            Self::Opus => "libopus",
        }
    }
}

impl std::fmt::Display for AudioCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Aac => "AAC",
            Self::Opus => "Opus",
        })
    }
}

/// Why an encoder could not be opened or could not encode.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// This FFmpeg build lacks the encoder.
    #[error("{codec}: this FFmpeg build has no {encoder} encoder")]
    NoEncoder {
        /// The codec asked for.
        codec: String,
        /// FFmpeg's encoder name.
        encoder: &'static str,
    },
    /// The encoder refused the configuration.
    #[error("{codec}: cannot open {encoder} for {what}: {reason}")]
    Open {
        /// The codec.
        codec: String,
        /// FFmpeg's encoder name.
        encoder: &'static str,
        /// The configuration refused (size, rate, channels).
        what: String,
        /// FFmpeg's reason.
        reason: String,
    },
    /// A configuration value is out of range.
    #[error("{codec}: {field} = {value} is out of range ({range})")]
    OutOfRange {
        /// The codec.
        codec: String,
        /// The field at fault.
        field: &'static str,
        /// Its value.
        value: String,
        /// What it may be.
        range: &'static str,
    },
    /// The frame is on the GPU: encoders read CPU frames (insert a `GpuToCpu` transfer).
    #[error("{codec}: the frame is a GPU frame; the encoder reads CPU frames")]
    GpuFrame {
        /// The codec.
        codec: String,
    },
    /// swscale cannot convert the frame (see [`crate::scale::ScaleError`]).
    #[error("{codec}: converting {format} {width}x{height} frames: {source}")]
    Convert {
        /// The codec.
        codec: String,
        /// The frame's pixel format.
        format: PixelFormat,
        /// The frame's width.
        width: u32,
        /// The frame's height.
        height: u32,
        /// What swscale said.
        source: crate::scale::ScaleError,
    },
    /// The audio buffer cannot be converted to the encoder's format.
    #[error("{codec}: cannot convert {sample_rate} Hz, {channels} channel audio: {reason}")]
    AudioFormat {
        /// The codec.
        codec: String,
        /// The buffer's rate.
        sample_rate: u32,
        /// The buffer's channels.
        channels: u16,
        /// FFmpeg's reason.
        reason: String,
    },
    /// FFmpeg failed while encoding.
    #[error("{codec}: {what}: {reason}")]
    Encode {
        /// The codec.
        codec: String,
        /// The step that failed.
        what: &'static str,
        /// FFmpeg's reason.
        reason: String,
    },
    /// The encoder was flushed and takes no more input.
    #[error("{codec}: the encoder was flushed; open a new one")]
    Flushed {
        /// The codec.
        codec: String,
    },
}

fn to_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}
