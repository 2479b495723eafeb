//! The reader's audio: the file's best audio stream, demuxed by an FFmpeg input of its own,
//! decoded, resampled by swresample to interleaved f32 and cut into pooled, fixed-size
//! [`AudioBuffer`]s on one contiguous timeline.
//!
//! A second demuxer on the same file costs one more open, but it makes audio independent of
//! how the file interleaves its streams: no queue of video packets while audio catches up.

use std::time::Duration;

use ffmpeg::codec;
use ffmpeg::software::resampling;
use ffmpeg::{ChannelLayout, Error, format, frame, media};
use ffmpeg_next as ffmpeg;
use streamlib_buffers::{BufferPool, PooledBuf};
use streamlib_ports::{AudioBuffer, OutputPort};

use super::decode::{stream_duration, ts_to_ns};
use super::demux::{Demux, Medium, is_again};
use super::{AudioInfo, DecodeErrorPolicy, ReaderConfig, ReaderStats, add};
use crate::FileError;

const NS_PER_S: u128 = 1_000_000_000;
/// Gaps and overlaps between decoded frames below this are timestamp rounding (Matroska
/// stores milliseconds), not missing or repeated audio.
const JITTER_NS: u64 = 10_000_000;
/// Longer gaps are closed up rather than filled with silence: a broken timestamp, not a pause.
const MAX_FILL_NS: u64 = 10_000_000_000;
/// Buffers allocated up front, and the most the pool holds. Ordered inputs queue 64 by
/// default; past the maximum a buffer is allocated rather than audio dropped.
const POOL_INITIAL: usize = 16;
const POOL_MAX: usize = 256;

/// What the container says about its best audio stream, without opening a decoder.
pub(super) fn probe(input: &format::context::Input) -> Option<AudioInfo> {
    let stream = input.streams().best(media::Type::Audio)?;
    let parameters = stream.parameters();
    // SAFETY: `parameters` points at the stream's valid AVCodecParameters, alive while
    // `input` is; reading two plain fields.
    let (rate, channels) = unsafe {
        let p = parameters.as_ptr();
        ((*p).sample_rate, (*p).ch_layout.nb_channels)
    };
    let id = parameters.id();
    Some(AudioInfo {
        stream_index: stream.index(),
        codec: codec::decoder::find(id)
            .map_or_else(|| id.name().to_owned(), |c| c.name().to_owned()),
        sample_rate: u32::try_from(rate).unwrap_or(0),
        channels: u16::try_from(channels).unwrap_or(0),
        duration: stream_duration(&stream),
    })
}

/// The audio stream's decoder and the queue of converted samples not yet sent.
pub(crate) struct AudioDecoder {
    demux: Demux,
    decoder: codec::decoder::Audio,
    time_base: ffmpeg::Rational,
    frame: frame::Audio,
    /// Decoder and resampler drained: nothing more until the next seek.
    drained: bool,
    /// Built for the first frame's format; rebuilt if the stream changes format.
    resampler: Option<resampling::Context>,
    rate: u32,
    channels: u16,
    chunk_frames: usize,
    pool: BufferPool<f32>,
    /// Interleaved samples not yet sent, from `head` on. Its capacity is reused.
    fifo: Vec<f32>,
    head: usize,
    /// Media time of the first sample queued (the timeline's origin).
    anchor_ns: Option<u64>,
    /// Samples per channel sent since the anchor: buffer times are counted, not summed, so
    /// they cannot drift.
    sent: u64,
    /// Stream time (before the loop base) below which samples are cut: the start offset.
    floor_ns: u64,
    /// Added to stream times: the span of the loops completed so far.
    loop_base_ns: u64,
}

impl AudioDecoder {
    /// Opens the file's best audio stream for `config`, starting at `config.start_offset`:
    /// samples before stream time `floor_ns` are cut and `loop_base_ns` is added to times.
    pub(crate) fn open(
        config: &ReaderConfig,
        floor_ns: u64,
        loop_base_ns: u64,
    ) -> Result<Self, FileError> {
        let path = config.path.clone();
        let mut input = super::open::open_input(
            &path,
            super::protocol_whitelist(config),
            super::format_whitelist(config),
        )?;
        let stream =
            input
                .streams()
                .best(media::Type::Audio)
                .ok_or_else(|| FileError::NoStream {
                    path: path.clone(),
                    kind: "audio",
                    detail: " for the connected audio output (MediaInfo::audio says whether a \
                         file has one)"
                        .to_owned(),
                })?;
        let stream_index = stream.index();
        let time_base = stream.time_base();
        let parameters = stream.parameters();
        let codec_id = parameters.id();
        let unsupported = |reason: String| FileError::UnsupportedCodec {
            path: path.clone(),
            codec: codec_id.name().to_owned(),
            reason,
        };
        let mut decoder = codec::context::Context::from_parameters(parameters)
            .map_err(|e| unsupported(e.to_string()))?
            .decoder();
        decoder.set_packet_time_base(time_base);
        let decoder = decoder.audio().map_err(|e| unsupported(e.to_string()))?;
        // The video has its own input: this one reads audio packets only.
        for index in (0..input.nb_streams() as usize).filter(|&i| i != stream_index) {
            if let Some(mut other) = input.stream_mut(index) {
                // SAFETY: `other` is a valid stream of the open `input`; the demuxer reads
                // `discard` before returning each packet.
                unsafe { (*other.as_mut_ptr()).discard = ffmpeg::ffi::AVDiscard::AVDISCARD_ALL };
            }
        }
        let rate = config.audio_sample_rate.unwrap_or(decoder.rate());
        let channels = config.audio_channels.unwrap_or(decoder.channels());
        if rate == 0 || channels == 0 {
            return Err(unsupported(format!(
                "the stream states {rate} Hz and {channels} channels; set \
                 ReaderConfig::audio_sample_rate and audio_channels"
            )));
        }
        let chunk_frames = config.audio_buffer_frames;
        let chunk_len = chunk_frames * usize::from(channels);
        let pool = BufferPool::new("file-reader-audio", chunk_len, POOL_INITIAL, POOL_MAX)
            .map_err(|e| unsupported(format!("audio buffer pool: {e}")))?;
        let mut this = Self {
            demux: Demux::new(path, input, stream_index, Medium::Audio),
            decoder,
            time_base,
            frame: frame::Audio::empty(),
            drained: false,
            resampler: None,
            rate,
            channels,
            chunk_frames,
            pool,
            // Room for a few buffers and a decoded frame: no growth in steady state.
            fifo: Vec::with_capacity(chunk_len * 8),
            head: 0,
            anchor_ns: None,
            sent: 0,
            floor_ns,
            loop_base_ns,
        };
        if !config.start_offset.is_zero() {
            this.seek(config.start_offset)?;
        }
        Ok(this)
    }

    /// Samples per channel queued and not yet sent.
    fn queued(&self) -> usize {
        (self.fifo.len() - self.head) / usize::from(self.channels)
    }

    fn frames_to_ns(&self, frames: u64) -> u64 {
        let ns = u128::from(frames) * NS_PER_S / u128::from(self.rate);
        u64::try_from(ns).unwrap_or(u64::MAX)
    }

    fn ns_to_frames(&self, ns: u64) -> usize {
        let frames = (u128::from(ns) * u128::from(self.rate) + NS_PER_S / 2) / NS_PER_S;
        usize::try_from(frames).unwrap_or(usize::MAX)
    }

    /// Media time of the next sample to send.
    fn start_ns(&self) -> Option<u64> {
        self.anchor_ns
            .map(|a| a.saturating_add(self.frames_to_ns(self.sent)))
    }

    /// Media time just after the last sample queued.
    fn end_ns(&self) -> Option<u64> {
        let frames = self.sent + self.queued() as u64;
        self.anchor_ns
            .map(|a| a.saturating_add(self.frames_to_ns(frames)))
    }

    /// Whether the stream has been decoded to its end and less than a buffer is left.
    pub(crate) fn is_exhausted(&self) -> bool {
        self.drained && self.queued() < self.chunk_frames
    }

    /// Sends every full buffer that begins before media time `limit_ns`, decoding as needed.
    pub(crate) fn emit_until(
        &mut self,
        limit_ns: u64,
        out: &OutputPort<AudioBuffer>,
        policy: DecodeErrorPolicy,
        stats: &ReaderStats,
    ) -> Result<(), FileError> {
        loop {
            if self.start_ns().is_some_and(|start| start >= limit_ns) {
                return Ok(());
            }
            if self.queued() >= self.chunk_frames {
                self.emit(self.chunk_frames, out, stats)?;
            } else if self.drained {
                return Ok(());
            } else {
                self.decode_more(policy, stats)?;
            }
        }
    }

    /// Sends what is left after the stream ended, as one shorter buffer.
    pub(crate) fn emit_rest(
        &mut self,
        out: &OutputPort<AudioBuffer>,
        stats: &ReaderStats,
    ) -> Result<(), FileError> {
        match self.queued() {
            0 => Ok(()),
            n => self.emit(n, out, stats),
        }
    }

    fn emit(
        &mut self,
        frames: usize,
        out: &OutputPort<AudioBuffer>,
        stats: &ReaderStats,
    ) -> Result<(), FileError> {
        let len = frames * usize::from(self.channels);
        let src = &self.fifo[self.head..self.head + len];
        let pooled = if frames == self.chunk_frames {
            self.pool.acquire().ok()
        } else {
            None
        };
        let samples = match pooled {
            Some(mut buf) => {
                buf.copy_from_slice(src);
                buf.freeze()
            }
            // The last, shorter buffer, or every pooled one still held downstream: allocate
            // rather than drop audio.
            None => PooledBuf::from_vec(src.to_vec()),
        };
        let timestamp = self.start_ns().unwrap_or(0);
        let buffer = AudioBuffer::new(samples, self.channels, self.rate, timestamp)
            .map_err(|e| self.demux.error(e.to_string()))?;
        out.write(buffer);
        self.head += len;
        self.sent += frames as u64;
        if self.head == self.fifo.len() {
            self.fifo.clear();
            self.head = 0;
        } else if self.head >= self.fifo.capacity() / 2 {
            // Move the rest to the front (no allocation) so the queue keeps its capacity.
            self.fifo.drain(..self.head);
            self.head = 0;
        }
        add(&stats.counters.audio_buffers, 1);
        add(&stats.counters.audio_samples, frames as u64);
        Ok(())
    }

    /// Decodes one more frame into the queue, or marks the stream drained.
    fn decode_more(
        &mut self,
        policy: DecodeErrorPolicy,
        stats: &ReaderStats,
    ) -> Result<(), FileError> {
        self.demux.begin();
        loop {
            match self.decoder.receive_frame(&mut self.frame) {
                Ok(()) => return self.push_frame(),
                Err(Error::Eof) => return self.drain_resampler(),
                Err(e) if is_again(&e) => {}
                Err(e) => self.demux.decode_error(e, policy, stats)?,
            }
            if self.demux.eof_sent() {
                return self.drain_resampler();
            }
            self.demux.feed(&mut self.decoder, policy, stats)?;
        }
    }

    /// Places the decoded frame on the timeline: cut before the start offset, overlaps
    /// trimmed, gaps filled with silence, then converted onto the end of the queue.
    fn push_frame(&mut self) -> Result<(), FileError> {
        if self.frame.samples() == 0 {
            return Ok(());
        }
        let stream_ns = self
            .frame
            .timestamp()
            .or(self.frame.pts())
            .map(|ts| ts_to_ns(ts, self.time_base));
        let mut skip = 0;
        let start = match stream_ns {
            Some(t) => {
                if t < self.floor_ns {
                    skip = self.ns_to_frames(self.floor_ns - t);
                }
                t.max(self.floor_ns).saturating_add(self.loop_base_ns)
            }
            // No timestamp: continue where the queue ends.
            None => self
                .end_ns()
                .unwrap_or(self.floor_ns.saturating_add(self.loop_base_ns)),
        };
        match self.end_ns() {
            None => {
                self.anchor_ns = Some(start);
                self.sent = 0;
            }
            Some(end) if start.saturating_add(JITTER_NS) < end => {
                skip += self.ns_to_frames(end - start);
            }
            Some(end) if start > end.saturating_add(JITTER_NS) => {
                let gap = start - end;
                if gap <= MAX_FILL_NS {
                    let fill = self.ns_to_frames(gap) * usize::from(self.channels);
                    self.fifo.resize(self.fifo.len() + fill, 0.0);
                } else {
                    tracing::debug!(path = %self.demux.path().display(), gap_ns = gap, "audio timestamp jump closed up");
                }
            }
            Some(_) => {}
        }
        let before = self.fifo.len();
        self.convert(false)?;
        let channels = usize::from(self.channels);
        let added = (self.fifo.len() - before) / channels;
        let cut = skip.min(added) * channels;
        if cut > 0 {
            self.fifo.copy_within(before + cut.., before);
            self.fifo.truncate(self.fifo.len() - cut);
        }
        Ok(())
    }

    /// Flushes the resampler's delayed samples onto the queue: the stream has ended.
    fn drain_resampler(&mut self) -> Result<(), FileError> {
        self.convert(true)?;
        self.resampler = None;
        self.drained = true;
        Ok(())
    }

    /// Converts the current frame (or, with `flush`, the resampler's remaining samples) to
    /// interleaved f32 at the output rate and channel count, appended to the queue.
    fn convert(&mut self, flush: bool) -> Result<(), FileError> {
        if !flush {
            let (format, rate) = (self.frame.format(), self.frame.rate());
            let rate = if rate == 0 { self.decoder.rate() } else { rate };
            let layout = match self.frame.channel_layout() {
                l if l.bits() == 0 => ChannelLayout::default(i32::from(self.frame.channels())),
                l => l,
            };
            let current = self.resampler.as_ref().map(|r| *r.input());
            let wanted = resampling::context::Definition {
                format,
                channel_layout: layout,
                rate,
            };
            if current != Some(wanted) {
                if current.is_some() {
                    // The stream changed format: keep what the old resampler holds.
                    self.convert(true)?;
                }
                let context = resampling::Context::get(
                    format,
                    layout,
                    rate,
                    format::Sample::F32(format::sample::Type::Packed),
                    ChannelLayout::default(i32::from(self.channels)),
                    self.rate,
                )
                .map_err(|e| self.resample_error(&format!("{format:?} {rate} Hz: {e}")))?;
                self.resampler = Some(context);
            }
        }
        let Some(resampler) = self.resampler.as_mut() else {
            return Ok(());
        };
        let in_count = if flush {
            0
        } else {
            i32::try_from(self.frame.samples()).unwrap_or(i32::MAX)
        };
        // SAFETY: the context is initialised; the call only computes a bound.
        let room = unsafe { ffmpeg::ffi::swr_get_out_samples(resampler.as_mut_ptr(), in_count) };
        let Ok(room_frames) = usize::try_from(room) else {
            return Err(self.resample_error(&format!("swr_get_out_samples failed ({room})")));
        };
        let channels = usize::from(self.channels);
        let start = self.fifo.len();
        self.fifo.resize(start + room_frames * channels, 0.0);
        let mut out = [self.fifo[start..].as_mut_ptr().cast::<u8>()];
        let input = if flush {
            std::ptr::null_mut()
        } else {
            // SAFETY: reading the data pointer array of the decoded frame, a valid AVFrame.
            unsafe { (*self.frame.as_ptr()).extended_data.cast::<*const u8>() }
        };
        // SAFETY: the context converts from the frame's format (checked above) to packed
        // f32 with `channels` channels; `out` points at `room` frames of space just reserved
        // in the queue; `input` is the frame's plane array holding `in_count` samples, or
        // null to flush.
        let written = unsafe {
            ffmpeg::ffi::swr_convert(
                resampler.as_mut_ptr(),
                out.as_mut_ptr(),
                room,
                input,
                in_count,
            )
        };
        let Ok(written) = usize::try_from(written) else {
            self.fifo.truncate(start);
            return Err(self.resample_error(&format!("swr_convert failed ({written})")));
        };
        self.fifo
            .truncate(start + written.min(room_frames) * channels);
        Ok(())
    }

    fn resample_error(&self, reason: &str) -> FileError {
        self.demux.error(format!("audio resampling: {reason}"))
    }

    /// Starts the next loop: audio past the video's end of pass (`pass_end_ns`, media time)
    /// is cut, later times get `loop_base_ns` added, and the stream seeks to `offset`.
    pub(crate) fn next_pass(
        &mut self,
        pass_end_ns: u64,
        loop_base_ns: u64,
        offset: Duration,
    ) -> Result<(), FileError> {
        if let (Some(start), Some(end)) = (self.start_ns(), self.end_ns())
            && end > pass_end_ns
        {
            let keep = self
                .ns_to_frames(pass_end_ns.saturating_sub(start))
                .min(self.queued());
            self.fifo
                .truncate(self.head + keep * usize::from(self.channels));
        }
        self.loop_base_ns = loop_base_ns;
        self.seek(offset)
    }

    /// Seeks to `offset` from the start and resets the decoder and resampler; frames before
    /// the floor are cut by timestamp as they arrive.
    fn seek(&mut self, offset: Duration) -> Result<(), FileError> {
        self.demux.seek(offset, &mut self.decoder)?;
        self.drained = false;
        self.resampler = None;
        Ok(())
    }
}
