//! WebRTC for streamlib on [str0m](https://docs.rs/str0m) (sans-IO, driven from the
//! handlers' own threads).
//!
//! - [`WebRtcSink`] (`webrtcsink`): a WHEP endpoint (RFC 9725) at `http://ADDR/whep`. Browsers
//!   and other WebRTC peers `POST` an SDP offer and watch the pipeline's video (VP8 or H.264)
//!   and audio (Opus); several at once, each with its own congestion control bounding the
//!   shared encoder's bitrate.
//! - `WebRtcSrc` (`webrtcsrc`): a WHIP endpoint at `http://ADDR/whip` through which a
//!   browser publishes its camera and microphone into a pipeline.
//!
//! Both listen on loopback unless told otherwise, offer host candidates of the address they
//! bind, refuse malformed offers with `400` and a message, and bound what a client can make
//! them hold (viewers, body sizes, queues).
//!
//! ```no_run
//! use streamlib_webrtc::{WebRtcSink, WebRtcSinkConfig};
//!
//! let sink = WebRtcSink::new(WebRtcSinkConfig::default())?;
//! // Connect `sink.video()` to a source in a StreamRuntime and start it: the endpoint is then
//! // at `sink.whep_url()`, http://127.0.0.1:8889/whep by default.
//! # let _ = sink;
//! # Ok::<(), streamlib_webrtc::WebRtcError>(())
//! ```

mod rtc;
mod whep;
mod whip;

/// The video codecs (`webrtcsink` sends VP8 or H.264), re-exported for its configuration.
pub use streamlib_codec::encode::VideoCodec;
pub use whep::*;
pub use whip::*;
