use std::path::PathBuf;

use thiserror::Error;

/// Errors from reading and writing media files.
#[derive(Debug, Error)]
pub enum FileError {
    /// The file does not exist.
    #[error("{path}: no such file")]
    NotFound {
        /// The path.
        path: PathBuf,
    },
    /// FFmpeg could not open it as media.
    #[error("{path}: not a media file FFmpeg can read ({reason})")]
    NotMedia {
        /// The path.
        path: PathBuf,
        /// What FFmpeg said.
        reason: String,
    },
    /// The file's container format is not on the reader's format whitelist (a playlist,
    /// manifest, concat script or image sequence, which would open other paths).
    #[error(
        "{path}: container format '{format}' is refused (allowed: {allowed}; \
         see ReaderConfig::format_whitelist)"
    )]
    FormatRefused {
        /// The path.
        path: PathBuf,
        /// The demuxer FFmpeg probed for it.
        format: String,
        /// The whitelist it is not on.
        allowed: String,
    },
    /// The file has no stream of the kind asked for.
    #[error("{path}: no {kind} stream{detail}")]
    NoStream {
        /// The path.
        path: PathBuf,
        /// "video" or "audio".
        kind: &'static str,
        /// More detail (e.g. the index asked for and how many streams exist).
        detail: String,
    },
    /// A codec FFmpeg has no decoder or encoder for here.
    #[error("{path}: codec {codec} is not available ({reason})")]
    UnsupportedCodec {
        /// The path.
        path: PathBuf,
        /// The codec.
        codec: String,
        /// Why.
        reason: String,
    },
    /// A container that cannot be written (or an unknown extension).
    #[error("{path}: unsupported container '{container}' (supported: mp4, mkv, mov, webm, y4m)")]
    UnsupportedContainer {
        /// The path.
        path: PathBuf,
        /// The container or extension.
        container: String,
    },
    /// The output cannot be created.
    #[error("{path}: cannot write ({reason})")]
    Unwritable {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Decoding failed beyond the stated policy.
    #[error("{path}: decode error at packet {packet}: {reason}")]
    Decode {
        /// The path.
        path: PathBuf,
        /// Packet index.
        packet: u64,
        /// What FFmpeg said.
        reason: String,
    },
    /// The audio track cannot be written as configured (a container without audio, a codec
    /// or rate it cannot hold, an audio input without a configured track or the reverse).
    #[error("{path}: cannot write an audio track ({reason})")]
    AudioTrack {
        /// The path.
        path: PathBuf,
        /// Why, and what to change.
        reason: String,
    },
    /// Encoding or muxing failed.
    #[error("{path}: encode error: {reason}")]
    Encode {
        /// The path.
        path: PathBuf,
        /// What FFmpeg said.
        reason: String,
    },
    /// A frame that does not fit the writer (size changed mid-stream, GPU memory, format).
    #[error("{path}: {reason}")]
    BadFrame {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// An invalid option value.
    #[error("{what} = {value} is out of range {range}")]
    OutOfRange {
        /// The option.
        what: &'static str,
        /// The value given.
        value: String,
        /// The valid range.
        range: &'static str,
    },
    /// The file's pictures are larger than the reader's frame limits.
    #[error("{path}: {source}; raise ReaderConfig::limits to read it")]
    FrameTooLarge {
        /// The path.
        path: PathBuf,
        /// The size and the limits.
        source: streamlib_ports::FrameError,
    },
}
