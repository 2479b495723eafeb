//! Reading and writing media files through FFmpeg.
//!
//! - [`FileReader`]: opens anything FFmpeg can (MP4, MKV, MOV, WebM, AVI, Y4M; H.264, H.265,
//!   VP9, AV1, ProRes, FFV1, raw…) and declares what it probed as its output caps (size, exact
//!   rate, the decoder's native format first); decodes with FFmpeg's threading into pooled
//!   frames of the negotiated format (the native one copied, others converted by swscale);
//!   realtime or as-fast-as-possible pacing, looping, start offset, end of stream when done.
//!   When its [`audio`](FileReader::audio) output is connected it
//!   also decodes the file's best audio stream into pooled, interleaved f32
//!   [`AudioBuffer`](streamlib_ports::AudioBuffer)s (swresample converts the format, and the
//!   rate and channels if asked), sent in step with the frames on one contiguous timeline.
//! - [`FileWriter`]: MP4, MKV, MOV, WebM, Y4M with H.264, H.265, VP9 or FFV1, at the rate
//!   negotiated on its input (a file reader's is its file's), timed by the frames' own
//!   numbers, a repeated frame written once; with [`WriterConfig::audio`] an AAC (MP4, MOV,
//!   MKV) or Opus (WebM, MKV) track
//!   from its [`audio_input`](FileWriter::audio_input). The file is finalized (encoders
//!   flushed, trailer written) at end of stream, on stop and on drop, so a graceful stop never
//!   leaves an unplayable file.
//!
//! Needs FFmpeg's development libraries at build time (`cargo xtask setup` installs them).
//!
//! ```no_run
//! use streamlib_clock::{FreeRunningClock, Rational};
//! use streamlib_handlers_file::{AudioConfig, FileReader, FileWriter, ReaderPacing, ReaderConfig, WriterConfig};
//! use streamlib_runtime::{Stream, StreamRuntime};
//!
//! // Transcode a file, picture and sound, as fast as FFmpeg goes.
//! let reader = FileReader::new(ReaderConfig {
//!     pacing: ReaderPacing::AsFastAsPossible,
//!     ..ReaderConfig::new("in.mp4")
//! })?;
//! let audio = reader.info().audio.clone().expect("the file has sound");
//! let writer = FileWriter::new(WriterConfig {
//!     audio: Some(AudioConfig::new(audio.sample_rate, audio.channels)),
//!     ..WriterConfig::new("out.mkv")
//! })?;
//! let mut rt = StreamRuntime::new(FreeRunningClock::new(Rational::fps(30)));
//! let (video, sound) = (reader.output(), reader.audio());
//! let (video_in, sound_in) = (writer.input(), writer.audio_input());
//! rt.add_stream(Stream::new("reader", reader))?;
//! rt.add_stream(Stream::new("writer", writer))?;
//! rt.connect(&video, &video_in)?;
//! rt.connect(&sound, &sound_in)?;
//! rt.run()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod reader;
mod writer;

pub use error::FileError;
pub use reader::{
    AudioInfo, DEFAULT_AUDIO_BUFFER_FRAMES, DEFAULT_FORMAT_WHITELIST, DecodeErrorPolicy,
    FileReader, MediaInfo, ReaderConfig, ReaderPacing, ReaderStats, StreamSelect,
};
pub use writer::{
    AudioCodec, AudioConfig, Container, DEFAULT_PRESET, FileWriter, VideoCodec, WriterConfig,
    WriterStats,
};

/// The file handlers and their configurations, for `use streamlib_handlers_file::prelude::*`
/// (`streamlib::prelude` includes it with the facade's `file` feature).
pub mod prelude {
    pub use crate::{FileReader, FileWriter, ReaderConfig, ReaderPacing, WriterConfig};
}
