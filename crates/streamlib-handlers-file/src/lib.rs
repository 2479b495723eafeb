//! Reading and writing media files through FFmpeg.
//!
//! - [`FileReader`]: opens anything FFmpeg can (MP4, MKV, MOV, WebM, AVI, Y4M; H.264, H.265,
//!   VP9, AV1, ProRes, FFV1, raw…), decodes with FFmpeg's threading and converts with swscale
//!   straight into pooled frames; realtime or as-fast-as-possible pacing, looping, start offset,
//!   end of stream when done.
//! - [`FileWriter`]: MP4, MKV, MOV, WebM, Y4M with H.264, H.265, VP9 or FFV1; timestamps from
//!   the ticks; the file is finalized (encoder flushed, trailer written) at end of stream, on
//!   stop and on drop, so a graceful stop never leaves an unplayable file.
//!
//! Needs FFmpeg's development libraries at build time (`cargo xtask setup` installs them).

mod error;
mod reader;
mod writer;

pub use error::FileError;
pub use reader::{
    DecodeErrorPolicy, FileReader, MediaInfo, Pacing, ReaderConfig, ReaderStats, StreamSelect,
};
pub use writer::{Container, DEFAULT_PRESET, FileWriter, VideoCodec, WriterConfig, WriterStats};
