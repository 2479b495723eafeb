//! The demuxing half shared by the reader's video and audio decoders: one FFmpeg input, the
//! stream taken from it, and the step that feeds that stream's decoder one more packet, with
//! the [`DecodeErrorPolicy`] accounting for demux and decode errors.
//!
//! Each decoder keeps its own receive loop (what a decoded frame means differs) and calls
//! [`Demux::feed`] whenever its decoder asks for more input.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ffmpeg::codec::{decoder, packet::Packet};
use ffmpeg::util::error::EAGAIN;
use ffmpeg::{Error, format};
use ffmpeg_next as ffmpeg;

use super::{DecodeErrorPolicy, ReaderStats};
use crate::FileError;

/// Demuxer errors in a row after which a damaged file is treated as ended: a demuxer that
/// cannot resync must not spin forever.
pub(super) const MAX_CONSECUTIVE_READ_ERRORS: u32 = 256;

/// Whether FFmpeg asks for more input (EAGAIN) rather than reporting a failure.
pub(super) fn is_again(error: &Error) -> bool {
    matches!(error, Error::Other { errno } if *errno == EAGAIN)
}

/// Which of the reader's streams a [`Demux`] serves; it words the logs and errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Medium {
    /// The picture stream: errors carry FFmpeg's reason as is.
    Video,
    /// The audio stream: reasons are prefixed `audio: ` (seeks `audio seek`).
    Audio,
}

/// An open input, the index of the stream decoded from it and the demux state.
pub(super) struct Demux {
    path: PathBuf,
    input: format::context::Input,
    stream_index: usize,
    medium: Medium,
    /// Microseconds of the container's start time, added to seek targets.
    container_start_us: i64,
    packet: Packet,
    packets_read: u64,
    eof_sent: bool,
    /// Demuxer errors since the last good packet of the stream, for
    /// [`MAX_CONSECUTIVE_READ_ERRORS`]; reset by every call that starts a decode.
    read_errors: u32,
}

impl Demux {
    /// Wraps `input` (opened from `path`) to feed stream `stream_index`.
    pub(super) fn new(
        path: PathBuf,
        input: format::context::Input,
        stream_index: usize,
        medium: Medium,
    ) -> Self {
        Self {
            container_start_us: container_start_us(&input),
            path,
            input,
            stream_index,
            medium,
            packet: Packet::empty(),
            packets_read: 0,
            eof_sent: false,
            read_errors: 0,
        }
    }

    /// The file.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The input, for reading stream headers.
    pub(super) fn input(&self) -> &format::context::Input {
        &self.input
    }

    /// The index of the stream fed to the decoder.
    pub(super) fn stream_index(&self) -> usize {
        self.stream_index
    }

    /// Whether end of input was sent to the decoder: once it has nothing left, it is drained.
    pub(super) fn eof_sent(&self) -> bool {
        self.eof_sent
    }

    /// Starts counting consecutive demuxer errors afresh: call once per frame sought.
    pub(super) fn begin(&mut self) {
        self.read_errors = 0;
    }

    /// Reads one packet and, if it belongs to the stream, sends it to `decoder`. End of
    /// input, a sticky demuxer error or [`MAX_CONSECUTIVE_READ_ERRORS`] damaged reads in a
    /// row send end of input instead. Errors go through [`Demux::decode_error`].
    pub(super) fn feed(
        &mut self,
        decoder: &mut decoder::Opened,
        policy: DecodeErrorPolicy,
        stats: &ReaderStats,
    ) -> Result<(), FileError> {
        match self.packet.read(&mut self.input) {
            Ok(()) => {
                if self.packet.stream() != self.stream_index {
                    return Ok(());
                }
                self.packets_read += 1;
                self.read_errors = 0;
                match decoder.send_packet(&self.packet) {
                    Ok(()) => Ok(()),
                    Err(e) if is_again(&e) => Ok(()),
                    Err(e) => self.decode_error(e, policy, stats),
                }
            }
            Err(Error::Eof) => {
                self.send_eof(decoder);
                Ok(())
            }
            Err(e @ Error::InvalidData) if self.read_errors < MAX_CONSECUTIVE_READ_ERRORS => {
                self.read_errors += 1;
                self.decode_error(e, policy, stats)
            }
            Err(e) => {
                // Other demuxer errors are sticky (FFmpeg latches I/O errors): end here.
                self.decode_error(e, policy, stats)?;
                self.send_eof(decoder);
                Ok(())
            }
        }
    }

    fn send_eof(&mut self, decoder: &mut decoder::Opened) {
        // Only fails if already draining, which `eof_sent` rules out.
        let _ = decoder.send_eof();
        self.eof_sent = true;
    }

    /// Counts a demux or decode error in `stats` and logs it; under
    /// [`DecodeErrorPolicy::Fail`] it becomes a [`FileError::Decode`] naming the file and
    /// packet.
    pub(super) fn decode_error(
        &self,
        error: Error,
        policy: DecodeErrorPolicy,
        stats: &ReaderStats,
    ) -> Result<(), FileError> {
        stats.add_error();
        let (path, packet) = (self.path.display(), self.packets_read);
        let reason = match self.medium {
            Medium::Video => {
                tracing::debug!(path = %path, packet, %error, "decode error");
                error.to_string()
            }
            Medium::Audio => {
                tracing::debug!(path = %path, packet, %error, "audio decode error");
                format!("audio: {error}")
            }
        };
        match policy {
            DecodeErrorPolicy::Skip => Ok(()),
            DecodeErrorPolicy::Fail => Err(self.error(reason)),
        }
    }

    /// A [`FileError::Decode`] at the current packet with `reason`.
    pub(super) fn error(&self, reason: String) -> FileError {
        FileError::Decode {
            path: self.path.clone(),
            packet: self.packets_read,
            reason,
        }
    }

    /// Seeks to the keyframe at or before `offset` from the start and flushes `decoder`.
    pub(super) fn seek(
        &mut self,
        offset: Duration,
        decoder: &mut decoder::Opened,
    ) -> Result<(), FileError> {
        let offset_us = i64::try_from(offset.as_micros()).unwrap_or(i64::MAX);
        let target = self.container_start_us.saturating_add(offset_us);
        if let Err(e) = self.input.seek(target, ..target) {
            let what = match self.medium {
                Medium::Video => "seek",
                Medium::Audio => "audio seek",
            };
            return Err(self.error(format!("{what} to {offset:?} failed: {e}")));
        }
        decoder.flush();
        self.eof_sent = false;
        Ok(())
    }
}

/// The container's start time in microseconds (0 when unknown), added to seek targets.
fn container_start_us(input: &format::context::Input) -> i64 {
    // SAFETY: `input` wraps a valid, opened AVFormatContext; reading one field.
    match unsafe { (*input.as_ptr()).start_time } {
        t if t == ffmpeg::ffi::AV_NOPTS_VALUE => 0,
        t => t,
    }
}
