//! HTTP Live Streaming for streamlib: [`HlsSink`] (`hlssink` in pipeline text) encodes the
//! frames (and audio) it receives, writes CMAF/fMP4 (or MPEG-TS) segments and a media
//! playlist into a folder, and can serve that folder itself over HTTP.
//!
//! - **Segments** start with an IDR the sink requests from its own encoder at every segment
//!   boundary, so every segment lasts exactly `target-duration` (rounded to whole frames)
//!   and starts decodable. fMP4 is the default: `init.mp4` (`ftyp`+`moov`) and
//!   `segN.m4s` (`moof`+`mdat` fragments); MPEG-TS (`segN.ts`) on request.
//! - **Playlists** (`index.m3u8`): `live` (a sliding window of `max-segments`, older segments
//!   deleted from disk), `event` (grows; `EXT-X-ENDLIST` at stop) or `vod` (the same,
//!   typed VOD). Every write is atomic (a temporary file renamed over the old one): a reader
//!   never sees half a playlist or half a segment.
//! - **Low-latency HLS** (`part-duration` > 0, fMP4 only): each segment is also written as
//!   parts (`segN.M.m4s`, one fragment each) listed with `EXT-X-PART`, the next one
//!   announced by `EXT-X-PRELOAD-HINT`, and the built-in server answers blocking playlist
//!   reloads (`_HLS_msn` / `_HLS_part`) and requests for the hinted part as soon as it
//!   exists (`EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=3×part`).
//! - **Serving** ([`HlsConfig::serve`]): `http://ADDR/index.m3u8` on streamlib's HTTP server
//!   (loopback unless told otherwise), with HLS MIME types, `no-cache` playlists, immutable
//!   segments and `Access-Control-Allow-Origin: *`.
//!
//! # Why FFmpeg's muxers and our own playlist writer
//! The fragments come from FFmpeg's `mp4` muxer (`movflags
//! frag_custom+empty_moov+default_base_moof`) and its `mpegts` muxer, through ffmpeg-next
//! and a custom in-memory AVIO context: they are the muxers every player is tested against
//! (avcC/hvcC and esds boxes, ADTS for TS, PCR and PAT/PMT), the encoders already come from
//! FFmpeg, and a fragment is cut exactly when the sink says (`av_write_frame(NULL)`), which is
//! what parts need. FFmpeg 5.1's own `hls` muxer is not used: it has no LL-HLS parts, no
//! blocking reload and no control over where a part ends. The playlist is ours (a small
//! writer, `playlist.rs`), so its tags follow RFC 8216 and the LL-HLS draft exactly.
//! `mp4-atom` would have meant writing every codec's sample entry by hand.
//!
//! ```no_run
//! use streamlib_hls::{HlsConfig, HlsSink};
//!
//! let mut config = HlsConfig::new("/tmp/live");
//! config.serve = Some("127.0.0.1:8080".parse().unwrap());
//! let sink = HlsSink::new(config)?;
//! // runtime.connect(&source.output(), &sink.input())?; … run …
//! # Ok::<(), streamlib_hls::HlsError>(())
//! ```

mod muxer;
mod playlist;
mod segmenter;
mod server;
mod sink;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use sink::{HlsSink, HlsStats};
/// Parses a `serve` address the way every streamlib server does (`HOST:PORT`, `:PORT` or
/// `PORT`, the last two on loopback).
pub use streamlib_http::parse_listen_addr;

/// The playlist's file name inside the folder.
pub const PLAYLIST_NAME: &str = "index.m3u8";
/// The fMP4 init segment's file name.
pub const INIT_NAME: &str = "init.mp4";

/// What the playlist lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlaylistKind {
    /// A sliding window of the last [`HlsConfig::max_segments`]; older segments are deleted.
    #[default]
    Live,
    /// Every segment from the start (`EXT-X-PLAYLIST-TYPE:EVENT`), `EXT-X-ENDLIST` at stop.
    Event,
    /// Every segment (`EXT-X-PLAYLIST-TYPE:VOD`), `EXT-X-ENDLIST` at stop.
    Vod,
}

impl PlaylistKind {
    /// Parses `live`, `event` or `vod`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "live" => Some(Self::Live),
            "event" => Some(Self::Event),
            "vod" => Some(Self::Vod),
            _ => None,
        }
    }
}

/// The segments' container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SegmentFormat {
    /// CMAF-style fragmented MP4: `init.mp4` + `segN.m4s`.
    #[default]
    Fmp4,
    /// MPEG-TS: `segN.ts` (no LL-HLS parts).
    Ts,
}

impl SegmentFormat {
    /// Parses `fmp4` or `ts`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "fmp4" => Some(Self::Fmp4),
            "ts" => Some(Self::Ts),
            _ => None,
        }
    }

    /// The segment files' extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Fmp4 => "m4s",
            Self::Ts => "ts",
        }
    }
}

/// The video codec of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HlsCodec {
    /// H.264 (libx264).
    #[default]
    H264,
    /// H.265 / HEVC (libx265, where this FFmpeg has it).
    H265,
}

/// How an [`HlsSink`] encodes, segments, writes and serves.
#[derive(Debug, Clone, PartialEq)]
pub struct HlsConfig {
    /// The folder written: `index.m3u8`, `init.mp4`, the segments. Created (with its
    /// parents) if missing.
    pub location: PathBuf,
    /// Segment length in seconds (rounded to whole frames); `EXT-X-TARGETDURATION` is its
    /// ceiling.
    pub target_duration: f64,
    /// Segments a live playlist lists (and keeps on disk).
    pub max_segments: u32,
    /// Live window, event or VOD.
    pub playlist: PlaylistKind,
    /// fMP4 or MPEG-TS.
    pub segment_format: SegmentFormat,
    /// LL-HLS part length in seconds; 0 turns parts off. fMP4 only.
    pub part_duration: f64,
    /// H.264 or H.265.
    pub codec: HlsCodec,
    /// Video bitrate in bits per second.
    pub bitrate: u64,
    /// AAC bitrate in bits per second (when the audio input is connected).
    pub audio_bitrate: u64,
    /// Serve the folder over HTTP on this address (`http://ADDR{serve_path}/index.m3u8`).
    pub serve: Option<SocketAddr>,
    /// The URL prefix the folder is served under (`/x`); empty: the root.
    pub serve_path: String,
}

impl HlsConfig {
    /// Defaults for `location`: a live window of 5 two-second fMP4 segments of H.264 at
    /// 2 Mbit/s (AAC at 128 kbit/s), no parts, not served.
    pub fn new(location: impl Into<PathBuf>) -> Self {
        Self {
            location: location.into(),
            target_duration: 2.0,
            max_segments: 5,
            playlist: PlaylistKind::Live,
            segment_format: SegmentFormat::Fmp4,
            part_duration: 0.0,
            codec: HlsCodec::H264,
            bitrate: 2_000_000,
            audio_bitrate: 128_000,
            serve: None,
            serve_path: String::new(),
        }
    }

    /// Checks the values against each other; the errors name the field (as the pipeline
    /// property) at fault.
    pub fn check(&self) -> Result<(), HlsError> {
        let bad = |property: &'static str, value: String, reason: &str| HlsError::Config {
            property,
            value,
            reason: reason.to_owned(),
        };
        if !(0.1..=60.0).contains(&self.target_duration) {
            return Err(bad(
                "target-duration",
                self.target_duration.to_string(),
                "must be 0.1..=60 seconds",
            ));
        }
        if self.max_segments < 2 {
            return Err(bad(
                "max-segments",
                self.max_segments.to_string(),
                "a live window needs at least 2 segments",
            ));
        }
        if self.part_duration != 0.0 {
            if !(0.05..=self.target_duration).contains(&self.part_duration) {
                return Err(bad(
                    "part-duration",
                    self.part_duration.to_string(),
                    "must be 0 (off) or from 0.05 s up to target-duration",
                ));
            }
            if self.segment_format == SegmentFormat::Ts {
                return Err(bad(
                    "part-duration",
                    self.part_duration.to_string(),
                    "LL-HLS parts are written for segment-format=fmp4 only",
                ));
            }
        }
        if self.bitrate == 0 {
            return Err(bad("bitrate", "0".to_owned(), "must be positive"));
        }
        if self.audio_bitrate == 0 {
            return Err(bad("audio-bitrate", "0".to_owned(), "must be positive"));
        }
        if !self.serve_path.is_empty()
            && (!self.serve_path.starts_with('/')
                || self.serve_path.ends_with('/')
                || self.serve_path.contains("//")
                || self.serve_path.contains(['{', '}', '*', '?', '#']))
        {
            return Err(bad(
                "serve-path",
                self.serve_path.clone(),
                "must be empty or /name (no trailing slash)",
            ));
        }
        Ok(())
    }
}

/// What went wrong in an [`HlsSink`].
#[derive(Debug, thiserror::Error)]
pub enum HlsError {
    /// A configuration value is out of range or does not fit the others.
    #[error("hlssink: {property}={value}: {reason}")]
    Config {
        /// The property at fault, as pipeline text names it.
        property: &'static str,
        /// Its value.
        value: String,
        /// What it should be.
        reason: String,
    },
    /// The folder or a file in it could not be created or written.
    #[error("hlssink: cannot write {path}: {source}")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The encoder failed (see [`streamlib_codec::encode::EncodeError`]).
    #[error("hlssink: {0}")]
    Encode(#[from] streamlib_codec::encode::EncodeError),
    /// The muxer failed.
    #[error("hlssink: muxing {format:?} segments: {reason}")]
    Mux {
        /// The segment format.
        format: SegmentFormat,
        /// FFmpeg's reason.
        reason: String,
    },
    /// The HTTP server could not start (address in use, not local).
    #[error("hlssink: serve: {0}")]
    Serve(#[from] streamlib_http::HttpError),
    /// A frame cannot be streamed.
    #[error("hlssink: {0}")]
    BadFrame(String),
    /// The encoder thread stopped.
    #[error("hlssink: the encoder thread stopped: {0}")]
    Worker(String),
}
