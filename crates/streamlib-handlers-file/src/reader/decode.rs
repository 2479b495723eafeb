//! Demuxing and decoding one video stream of a file with FFmpeg.

use std::path::Path;
use std::time::Duration;

use ffmpeg::codec;
use ffmpeg::{Error, format, frame, media};
use ffmpeg_next as ffmpeg;

use streamlib_ports::FrameLimits;

use super::demux::{Demux, Medium, is_again};
use super::{DecodeErrorPolicy, MediaInfo, ReaderStats, StreamSelect};
use crate::FileError;

/// What [`VideoDecoder::next_frame`] produced.
pub(crate) enum Decoded {
    /// A frame was written into the caller's frame.
    Frame,
    /// The stream has no more frames.
    End,
}

/// An open file, its chosen video stream and the decoder for it.
pub(crate) struct VideoDecoder {
    demux: Demux,
    decoder: codec::decoder::Video,
    time_base: ffmpeg::Rational,
    /// The largest picture accepted (the header's and every decoded frame's size).
    limits: FrameLimits,
}

/// A picture over `limits` is a [`FileError::FrameTooLarge`].
fn check_size(path: &Path, limits: FrameLimits, width: u32, height: u32) -> Result<(), FileError> {
    limits
        .check(width, height)
        .map_err(|source| FileError::FrameTooLarge {
            path: path.to_path_buf(),
            source,
        })
}

impl VideoDecoder {
    /// Opens `path` and the decoder for the selected stream, mapping every failure to the
    /// [`FileError`] variant that tells the user what to fix.
    pub(crate) fn open(
        path: &Path,
        select: StreamSelect,
        threads: usize,
        protocol_whitelist: &str,
        format_whitelist: &str,
        limits: FrameLimits,
    ) -> Result<(Self, MediaInfo), FileError> {
        let path_buf = path.to_path_buf();
        if !path.exists() {
            return Err(FileError::NotFound { path: path_buf });
        }
        ffmpeg::init().map_err(|e| FileError::NotMedia {
            path: path_buf.clone(),
            reason: format!("FFmpeg failed to initialise: {e}"),
        })?;
        let input = super::open::open_input(path, protocol_whitelist, format_whitelist)?;
        let stream = match select {
            StreamSelect::Best => {
                input
                    .streams()
                    .best(media::Type::Video)
                    .ok_or_else(|| FileError::NoStream {
                        path: path_buf.clone(),
                        kind: "video",
                        detail: format!(" (the file has {} streams)", input.nb_streams()),
                    })?
            }
            StreamSelect::Index(index) => {
                let count = input.nb_streams();
                let stream = input.stream(index).ok_or_else(|| FileError::NoStream {
                    path: path_buf.clone(),
                    kind: "video",
                    detail: format!(" at index {index} (the file has {count} streams)"),
                })?;
                let medium = stream.parameters().medium();
                if medium != media::Type::Video {
                    return Err(FileError::NoStream {
                        path: path_buf,
                        kind: "video",
                        detail: format!(" at index {index} (stream {index} is {medium:?})"),
                    });
                }
                stream
            }
        };
        let stream_index = stream.index();
        let time_base = stream.time_base();
        let parameters = stream.parameters();
        let codec_id = parameters.id();
        let unsupported = |reason: String| FileError::UnsupportedCodec {
            path: path_buf.clone(),
            codec: codec_id.name().to_owned(),
            reason,
        };
        if codec::decoder::find(codec_id).is_none() {
            return Err(unsupported("FFmpeg has no decoder for it".to_owned()));
        }
        let mut context = codec::context::Context::from_parameters(parameters)
            .map_err(|e| unsupported(e.to_string()))?;
        // SAFETY: `context` owns a valid, not yet opened AVCodecContext; FFmpeg reads the
        // fields set here when the decoder opens, and the size read was copied from the
        // stream's parameters. Frame and slice threading together is FFmpeg's
        // own default mask, which `set_threading` cannot express.
        let header_size = unsafe {
            let raw = context.as_mut_ptr();
            (*raw).thread_type = ffmpeg::ffi::FF_THREAD_FRAME | ffmpeg::ffi::FF_THREAD_SLICE;
            (*raw).thread_count = i32::try_from(threads).unwrap_or(0);
            (*raw).pkt_timebase = time_base.into();
            // FFmpeg refuses larger pictures itself before allocating them (its `max_pixels`
            // option), whatever a damaged or hostile header claims.
            (*raw).max_pixels = i64::try_from(limits.max_pixels).unwrap_or(i64::MAX);
            ((*raw).width, (*raw).height)
        };
        // The header's size, before the decoder opens (0 when the container does not say:
        // then the first frame's is checked).
        if let (Ok(width @ 1..), Ok(height @ 1..)) =
            (u32::try_from(header_size.0), u32::try_from(header_size.1))
        {
            check_size(&path_buf, limits, width, height)?;
        }
        let decoder = context
            .decoder()
            .video()
            .map_err(|e| unsupported(e.to_string()))?;
        let info = media_info(&input, stream_index, &decoder);
        Ok((
            Self {
                demux: Demux::new(path_buf, input, stream_index, Medium::Video),
                decoder,
                time_base,
                limits,
            },
            info,
        ))
    }

    /// The file.
    pub(crate) fn path(&self) -> &Path {
        self.demux.path()
    }

    /// Nanoseconds of a timestamp in the stream's time base (negative ones clamp to 0).
    pub(crate) fn to_ns(&self, ts: i64) -> u64 {
        ts_to_ns(ts, self.time_base)
    }

    /// Decodes the next frame of the stream into `frame`, applying `policy` to decode errors.
    pub(crate) fn next_frame(
        &mut self,
        frame: &mut frame::Video,
        policy: DecodeErrorPolicy,
        stats: &ReaderStats,
    ) -> Result<Decoded, FileError> {
        self.demux.begin();
        loop {
            match self.decoder.receive_frame(frame) {
                Ok(()) => {
                    // A stream may change size mid-way: every frame is held to the limits.
                    check_size(self.path(), self.limits, frame.width(), frame.height())?;
                    stats.add_decoded();
                    if frame.is_corrupt() || frame.has_decode_errors() {
                        // FFmpeg concealed damage (H.264 does rather than fail): count it;
                        // under Skip the concealed frame is still shown.
                        self.demux.decode_error(Error::InvalidData, policy, stats)?;
                    }
                    return Ok(Decoded::Frame);
                }
                Err(Error::Eof) => return Ok(Decoded::End),
                Err(e) if is_again(&e) => {}
                // A damaged frame: fall through and feed more data.
                Err(e) => self.demux.decode_error(e, policy, stats)?,
            }
            if self.demux.eof_sent() {
                // Drained: a decoder that answers "again" after end of input has nothing left.
                return Ok(Decoded::End);
            }
            self.demux.feed(&mut self.decoder, policy, stats)?;
        }
    }

    /// Seeks to the keyframe at or before `offset` from the start and resets the decoder.
    /// Frames before `offset` still come out; the caller discards them by timestamp.
    pub(crate) fn seek(&mut self, offset: Duration) -> Result<(), FileError> {
        self.demux.seek(offset, &mut self.decoder)
    }

    /// The stream's first timestamp, in ns (0 when the container does not say).
    pub(crate) fn stream_start_ns(&self) -> u64 {
        self.demux
            .input()
            .stream(self.demux.stream_index())
            .map(|s| s.start_time())
            .filter(|&t| t != ffmpeg::ffi::AV_NOPTS_VALUE)
            .map_or(0, |t| self.to_ns(t))
    }
}

/// Nanoseconds of a timestamp in `time_base` (negative ones clamp to 0).
pub(super) fn ts_to_ns(ts: i64, time_base: ffmpeg::Rational) -> u64 {
    let num = i128::from(time_base.numerator());
    let den = i128::from(time_base.denominator()).max(1);
    let ns = i128::from(ts) * num * 1_000_000_000 / den;
    u64::try_from(ns.max(0)).unwrap_or(u64::MAX)
}

fn positive_rational(r: ffmpeg::Rational) -> Option<streamlib_clock::Rational> {
    let num = u32::try_from(r.numerator()).ok()?;
    let den = u32::try_from(r.denominator()).ok()?;
    streamlib_clock::Rational::new(num, den).ok()
}

fn media_info(
    input: &format::context::Input,
    stream_index: usize,
    decoder: &codec::decoder::Video,
) -> MediaInfo {
    let stream = input.stream(stream_index);
    let fps = stream.as_ref().and_then(|s| {
        positive_rational(s.avg_frame_rate()).or_else(|| positive_rational(s.rate()))
    });
    let duration = stream.as_ref().and_then(stream_duration).or_else(|| {
        let us = input.duration();
        (us > 0).then(|| Duration::from_micros(u64::try_from(us).unwrap_or(0)))
    });
    let codec = decoder
        .codec()
        .map_or_else(|| decoder.id().name().to_owned(), |c| c.name().to_owned());
    MediaInfo {
        width: decoder.width(),
        height: decoder.height(),
        fps,
        duration,
        codec,
        pixel_format: pixel_name(decoder.format()),
        native_format: streamlib_codec::convert::native_format(decoder.format()),
        nearest_format: streamlib_codec::convert::nearest_format(decoder.format()),
        frames: stream.and_then(|s| u64::try_from(s.frames()).ok().filter(|&n| n > 0)),
        audio: super::audio::probe(input),
    }
}

/// FFmpeg's name for a pixel format (`yuv420p`, `yuv422p10le`, …), `none` when unknown.
fn pixel_name(pixel: format::Pixel) -> String {
    pixel
        .descriptor()
        .map_or_else(|| "none".to_owned(), |d| d.name().to_owned())
}

/// The stream's own duration, when its header states one.
pub(super) fn stream_duration(stream: &format::stream::Stream<'_>) -> Option<Duration> {
    let tb = stream.time_base();
    let d = stream.duration();
    (d > 0 && tb.denominator() > 0 && tb.numerator() > 0).then(|| {
        let ns = i128::from(d) * i128::from(tb.numerator()) * 1_000_000_000
            / i128::from(tb.denominator());
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    })
}
