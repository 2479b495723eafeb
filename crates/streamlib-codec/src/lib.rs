//! Video and audio encoders and decoders for streamlib, through FFmpeg (ffmpeg-next).
//!
//! The one place FFmpeg's codecs are driven from: `hlssink` (H.264/HEVC + AAC), `webrtcsink`
//! (VP8/H.264 + Opus), `webrtcsrc` (their decoders) and the file writer's picture conversion.
//!
//! - [`encode`]: [`encode::VideoEncoder`] takes RGBA/BGRA (and YUV) [`VideoFrame`]s, converts
//!   them with swscale straight from the pooled bytes and returns packets; it takes a keyframe
//!   request and a new bitrate between frames. [`encode::AudioEncoder`] frames interleaved
//!   `f32` audio for AAC or Opus.
//! - [`decode`]: the decoders, into pooled RGBA frames and `f32` audio buffers.
//! - [`scale`]: the swscale converter of the encode side (a frame into an AVFrame).
//! - [`convert`]: the decode side's (a decoded AVFrame into a pooled frame of any format),
//!   which the decoders and the file reader share.
//!
//! [`VideoFrame`]: streamlib_ports::VideoFrame

pub mod convert;
pub mod decode;
pub mod encode;
pub mod scale;
