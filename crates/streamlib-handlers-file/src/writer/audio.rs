//! The writer's audio track: [`AudioConfig`], the codecs and containers that go together, and
//! the encoder that converts incoming interleaved f32 with swresample straight into the
//! codec's frames of its own size and format.

use std::path::{Path, PathBuf};

use ffmpeg::software::resampling;
use ffmpeg::util::error::EAGAIN;
use ffmpeg::{ChannelLayout, Dictionary, Packet, codec, encoder, format, frame};
use ffmpeg_next as ffmpeg;
use streamlib_ports::AudioBuffer;

use super::Container;
use crate::FileError;

/// At most this many channels (FFmpeg's frames keep 8 plane pointers inline).
const MAX_CHANNELS: u16 = 8;
/// Frame size for codecs that accept any (the encoder reports 0).
const VARIABLE_FRAME_SIZE: usize = 1024;

/// An audio codec the writer can encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    /// AAC-LC through FFmpeg's native `aac` encoder (MP4, MOV, Matroska).
    Aac,
    /// Opus through libopus (WebM, Matroska); 48, 24, 16, 12 or 8 kHz.
    Opus,
    /// FLAC, lossless 16-bit, through FFmpeg's native encoder (Matroska): no encoder delay.
    Flac,
    /// Uncompressed 16-bit little-endian PCM (Matroska, MOV): no encoder delay.
    Pcm,
}

impl AudioCodec {
    /// FFmpeg's encoder name (`aac`, `libopus`, `flac`, `pcm_s16le`).
    pub fn encoder_name(self) -> &'static str {
        match self {
            Self::Aac => "aac",
            Self::Opus => "libopus",
            Self::Flac => "flac",
            Self::Pcm => "pcm_s16le",
        }
    }
}

/// The audio track of a [`FileWriter`](super::FileWriter): what the file will hold. Buffers
/// arriving in another rate or channel count are converted by swresample.
///
/// A rate or channel count of 0 is taken at `on_start` from the caps negotiated on the
/// writer's audio input ([`AudioConfig::negotiated`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioConfig {
    /// The codec; the container's [`default_audio_codec`](Container::default_audio_codec)
    /// when `None`.
    pub codec: Option<AudioCodec>,
    /// Samples per second per channel of the track; 0: the audio input's negotiated rate.
    pub sample_rate: u32,
    /// Channels of the track (1..=8, FFmpeg's default layout for the count); 0: the audio
    /// input's negotiated channel count.
    pub channels: u16,
    /// Bit rate in bits per second; 64 kbit/s per channel when `None`.
    pub bitrate: Option<u64>,
}

impl AudioConfig {
    /// A track of `sample_rate` and `channels` in the container's default codec.
    pub fn new(sample_rate: u32, channels: u16) -> Self {
        Self {
            codec: None,
            sample_rate,
            channels,
            bitrate: None,
        }
    }

    /// A track in the container's default codec whose rate and channels are those
    /// negotiated on the audio input (what a writer with [`WriterConfig::audio`](super::WriterConfig::audio)
    /// `None` and its audio input connected uses).
    pub fn negotiated() -> Self {
        Self::new(0, 0)
    }

    /// Whether rate and channels are both set (nothing left to negotiation).
    pub(super) fn is_complete(&self) -> bool {
        self.sample_rate != 0 && self.channels != 0
    }
}

impl Container {
    /// The audio codec used when [`AudioConfig::codec`] is `None`: AAC, Opus for WebM, and
    /// `None` for Y4M, which cannot hold audio.
    pub fn default_audio_codec(self) -> Option<AudioCodec> {
        match self {
            Self::Mp4 | Self::Mov | Self::Mkv => Some(AudioCodec::Aac),
            Self::Webm => Some(AudioCodec::Opus),
            Self::Y4m => None,
        }
    }

    /// Whether the container can hold `codec`: Matroska all, MP4 AAC, MOV AAC and PCM, WebM
    /// Opus, Y4M nothing.
    pub fn supports_audio(self, codec: AudioCodec) -> bool {
        match self {
            Self::Mkv => true,
            Self::Mp4 => codec == AudioCodec::Aac,
            Self::Mov => matches!(codec, AudioCodec::Aac | AudioCodec::Pcm),
            Self::Webm => codec == AudioCodec::Opus,
            Self::Y4m => false,
        }
    }
}

fn track_error(path: &Path, reason: String) -> FileError {
    FileError::AudioTrack {
        path: path.to_path_buf(),
        reason,
    }
}

/// Settles the codec for `config` in `container` and opens its encoder once, so every
/// mistake (a container without audio, a rate the codec refuses, a missing encoder) is
/// reported when the writer is created (or, for a rate or channel count left to
/// negotiation, at `on_start`).
pub(super) fn check(
    path: &Path,
    container: Container,
    config: &AudioConfig,
) -> Result<AudioCodec, FileError> {
    let codec = check_codec(path, container, config)?;
    if config.bitrate == Some(0) {
        return Err(FileError::OutOfRange {
            what: "audio bitrate",
            value: "0".to_owned(),
            range: "1..",
        });
    }
    if !config.is_complete() {
        return Ok(codec);
    }
    if !(1..=MAX_CHANNELS).contains(&config.channels) {
        return Err(track_error(
            path,
            format!(
                "{} Hz with {} channels: the rate must be positive and channels 1..={MAX_CHANNELS}",
                config.sample_rate, config.channels
            ),
        ));
    }
    open_encoder(path, codec, config, false)?;
    Ok(codec)
}

/// The codec `config` asks for (else the container's default), if the container holds it.
fn check_codec(
    path: &Path,
    container: Container,
    config: &AudioConfig,
) -> Result<AudioCodec, FileError> {
    let Some(codec) = config.codec.or(container.default_audio_codec()) else {
        return Err(track_error(
            path,
            format!(
                "the {} container cannot hold audio; write mkv, mp4, mov or webm",
                container.muxer()
            ),
        ));
    };
    if !container.supports_audio(codec) {
        return Err(track_error(
            path,
            format!(
                "the {} container cannot hold {}",
                container.muxer(),
                codec.encoder_name()
            ),
        ));
    }
    Ok(codec)
}

/// How far apart the first audio buffer and the first video frame may be stamped and still be
/// taken as one clock's times (see [`AudioEncoder::write`]); about what the writer buffers
/// before the first frame.
const MAX_ALIGNMENT_NS: u64 = 10_000_000_000;

/// Samples at `rate` in `ns` nanoseconds, rounded to the nearest.
fn samples_in(ns: u64, rate: u32) -> u64 {
    let n = (u128::from(ns) * u128::from(rate) + 500_000_000) / 1_000_000_000;
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Builds and opens the encoder for `config`.
fn open_encoder(
    path: &Path,
    codec: AudioCodec,
    config: &AudioConfig,
    global_header: bool,
) -> Result<(encoder::audio::Encoder, ffmpeg::Codec), FileError> {
    let name = codec.encoder_name();
    let unsupported = |reason: String| FileError::UnsupportedCodec {
        path: path.to_path_buf(),
        codec: name.to_owned(),
        reason,
    };
    let found = encoder::find_by_name(name)
        .ok_or_else(|| unsupported("this FFmpeg build has no such encoder".to_owned()))?;
    let audio = found
        .audio()
        .map_err(|e| unsupported(format!("not an audio encoder: {e}")))?;
    let rate = i32::try_from(config.sample_rate).unwrap_or(i32::MAX);
    if let Some(rates) = audio.rates() {
        let rates: Vec<i32> = rates.collect();
        if !rates.contains(&rate) {
            return Err(track_error(
                path,
                format!("{name} cannot encode {rate} Hz (it takes {rates:?} Hz)"),
            ));
        }
    }
    // Planar float if the encoder takes it (native AAC does), else packed float, else its
    // first format (swresample converts to any).
    let formats: Vec<format::Sample> = audio.formats().map(Iterator::collect).unwrap_or_default();
    let planar = format::Sample::F32(format::sample::Type::Planar);
    let packed = format::Sample::F32(format::sample::Type::Packed);
    let sample_format = [planar, packed]
        .into_iter()
        .find(|f| formats.contains(f))
        .or(formats.first().copied())
        .unwrap_or(planar);
    let mut context = codec::context::Context::new_with_codec(found)
        .encoder()
        .audio()
        .map_err(|e| unsupported(format!("encoder context: {e}")))?;
    context.set_rate(rate);
    context.set_format(sample_format);
    context.set_channel_layout(ChannelLayout::default(i32::from(config.channels)));
    context.set_channels(i32::from(config.channels));
    context.set_time_base(ffmpeg::Rational::new(1, rate));
    let bitrate = config
        .bitrate
        .unwrap_or(64_000 * u64::from(config.channels));
    context.set_bit_rate(usize::try_from(bitrate).unwrap_or(usize::MAX));
    if global_header {
        context.set_flags(codec::flag::Flags::GLOBAL_HEADER);
    }
    let encoder = context.open_with(Dictionary::new()).map_err(|e| {
        unsupported(format!(
            "cannot open the encoder for {} Hz, {} channels: {e}",
            config.sample_rate, config.channels
        ))
    })?;
    Ok((encoder, found))
}

/// The audio stream of an output file: its encoder, the converter into the encoder's frames
/// and the frame being filled.
pub(super) struct AudioEncoder {
    path: PathBuf,
    encoder: encoder::audio::Encoder,
    stream_index: usize,
    time_base: ffmpeg::Rational,
    stream_time_base: ffmpeg::Rational,
    sample_format: format::Sample,
    channels: u16,
    rate: u32,
    /// The frame handed to the encoder, reused; filled up to `filled` samples.
    frame: frame::Audio,
    frame_size: usize,
    filled: usize,
    /// The codec accepts a shorter last frame; otherwise it is padded with silence.
    small_last_frame: bool,
    /// From the incoming buffers' rate and channels; its internal buffer is the FIFO that
    /// holds samples until a whole frame is ready.
    resampler: Option<resampling::Context>,
    /// The clock time (ns) of the file's time zero: the first video frame's timestamp.
    origin_ns: u64,
    /// Whether the first buffer placed the track on the file's timeline.
    started: bool,
    /// The first buffer's stamp was too far from the first frame's to place it (two clocks).
    unaligned: bool,
    next_pts: i64,
    packet: Packet,
    packets: u64,
    samples: u64,
}

impl AudioEncoder {
    /// Opens the encoder and adds its stream to `output` (before the header is written).
    /// `origin_ns` is the timestamp that file time zero stands for (the first video
    /// frame's), against which the first buffer is placed.
    pub(super) fn add(
        output: &mut format::context::Output,
        path: &Path,
        container: Container,
        codec: AudioCodec,
        config: &AudioConfig,
        origin_ns: u64,
    ) -> Result<Self, FileError> {
        let global_header = output
            .format()
            .flags()
            .contains(format::flag::Flags::GLOBAL_HEADER);
        let (encoder, found) = open_encoder(path, codec, config, global_header)?;
        // The encoder stamps its first packet `initial_padding` samples early (the codec's
        // delay: AAC's priming, Opus's pre-skip), so that what decodes at the frame's time is
        // the first real sample. MP4 turns that into an edit list, and AAC in Matroska is
        // shifted with the whole file; but Matroska stores Opus's delay again as `CodecDelay`,
        // which the reader both subtracts from the timestamps and drops from the decoded
        // samples, so the early stamp would count twice and the audio play that much ahead
        // of the video. Stamping Opus's frames one delay later there cancels it.
        let pts_offset = match (container, codec) {
            (Container::Mkv | Container::Webm, AudioCodec::Opus) => {
                // SAFETY: `encoder` wraps a valid, opened AVCodecContext; reading a plain field.
                i64::from(unsafe { (*encoder.as_ptr()).initial_padding })
            }
            _ => 0,
        };
        let time_base = ffmpeg::Rational::new(1, i32::try_from(config.sample_rate).unwrap_or(1));
        let stream_index = {
            let mut stream = output
                .add_stream(found)
                .map_err(|e| track_error(path, format!("add stream: {e}")))?;
            stream.set_parameters(&encoder);
            stream.set_time_base(time_base);
            stream.index()
        };
        let frame_size = match encoder.frame_size() {
            0 => VARIABLE_FRAME_SIZE,
            n => n as usize,
        };
        let sample_format = encoder.format();
        let layout = ChannelLayout::default(i32::from(config.channels));
        let mut frame = frame::Audio::new(sample_format, frame_size, layout);
        frame.set_rate(config.sample_rate);
        // SAFETY: `frame` owns a valid AVFrame; reading its first data pointer.
        if unsafe { frame.is_empty() } {
            return Err(track_error(
                path,
                "cannot allocate the audio frame".to_owned(),
            ));
        }
        Ok(Self {
            path: path.to_path_buf(),
            small_last_frame: found.capabilities().intersects(
                codec::capabilities::Capabilities::SMALL_LAST_FRAME
                    | codec::capabilities::Capabilities::VARIABLE_FRAME_SIZE,
            ),
            encoder,
            stream_index,
            time_base,
            stream_time_base: time_base,
            sample_format,
            channels: config.channels,
            rate: config.sample_rate,
            frame,
            frame_size,
            filled: 0,
            resampler: None,
            origin_ns,
            started: false,
            unaligned: false,
            next_pts: pts_offset,
            packet: Packet::empty(),
            packets: 0,
            samples: 0,
        })
    }

    /// Reads the stream's time base, which the muxer may change when writing the header.
    pub(super) fn header_written(&mut self, output: &format::context::Output) {
        if let Some(stream) = output.stream(self.stream_index) {
            self.stream_time_base = stream.time_base();
        }
    }

    /// Packets written so far.
    pub(super) fn packets(&self) -> u64 {
        self.packets
    }

    /// Samples per channel accepted so far (before conversion).
    pub(super) fn unaligned(&self) -> bool {
        self.unaligned
    }

    pub(super) fn samples(&self) -> u64 {
        self.samples
    }

    /// Converts and queues `buffer`, encoding every frame that fills up.
    ///
    /// The first buffer places the track on the video's timeline: one stamped after the
    /// first video frame starts the track that much later (its first sample at
    /// `(timestamp - origin) × rate`, rounded to a sample), and samples stamped before the
    /// first frame are cut, so a sample and a frame of the same clock time play together.
    /// Stamps more than [`MAX_ALIGNMENT_NS`] apart are taken for two clocks: the track then
    /// starts with the first frame (and a warning). From then on the track is contiguous.
    pub(super) fn write(
        &mut self,
        output: &mut format::context::Output,
        buffer: &AudioBuffer,
    ) -> Result<(), FileError> {
        let mut samples = buffer.samples();
        if !self.started {
            let ts = buffer.timestamp_ns();
            let channels = usize::from(buffer.channels()).max(1);
            if ts.abs_diff(self.origin_ns) > MAX_ALIGNMENT_NS {
                self.unaligned = true;
                // Not one clock (a source stamping from 0 beside one on TAI, RTP media time
                // modulo its epoch): placing by timestamp would cut the whole track or start
                // it hours in. Start it with the first frame instead.
                tracing::warn!(
                    path = %self.path.display(),
                    audio_ns = ts,
                    video_ns = self.origin_ns,
                    "audio and video timestamps are more than {} s apart: not on one clock; \
                     the audio track starts with the first frame",
                    MAX_ALIGNMENT_NS / 1_000_000_000
                );
            } else if ts < self.origin_ns {
                let early = samples_in(self.origin_ns - ts, buffer.sample_rate());
                let early = usize::try_from(early).unwrap_or(usize::MAX);
                if early >= buffer.frames() {
                    return Ok(());
                }
                samples = &samples[early * channels..];
            } else {
                let late = samples_in(ts - self.origin_ns, self.rate);
                self.next_pts = self
                    .next_pts
                    .saturating_add(i64::try_from(late).unwrap_or(i64::MAX));
            }
            self.started = true;
        }
        let wanted = resampling::context::Definition {
            format: format::Sample::F32(format::sample::Type::Packed),
            channel_layout: ChannelLayout::default(i32::from(buffer.channels())),
            rate: buffer.sample_rate(),
        };
        let current = self.resampler.as_ref().map(|r| *r.input());
        if current != Some(wanted) {
            if current.is_some() {
                // The input changed format: encode what the old converter still holds.
                self.convert(output, None)?;
            } else if (buffer.sample_rate(), buffer.channels()) != (self.rate, self.channels) {
                tracing::debug!(
                    path = %self.path.display(),
                    from_rate = buffer.sample_rate(),
                    from_channels = buffer.channels(),
                    to_rate = self.rate,
                    to_channels = self.channels,
                    "converting audio to the track's format"
                );
            }
            let context = resampling::Context::get(
                wanted.format,
                wanted.channel_layout,
                wanted.rate,
                self.sample_format,
                ChannelLayout::default(i32::from(self.channels)),
                self.rate,
            )
            .map_err(|e| {
                track_error(
                    &self.path,
                    format!(
                        "cannot convert {} Hz, {} channels: {e}",
                        buffer.sample_rate(),
                        buffer.channels()
                    ),
                )
            })?;
            self.resampler = Some(context);
        }
        self.convert(output, Some(samples))?;
        self.samples += buffer.frames() as u64;
        Ok(())
    }

    /// Runs the converter on `input` (interleaved f32 of the converter's input format), or
    /// flushes it with `None`, filling the frame and encoding each full one.
    fn convert(
        &mut self,
        output: &mut format::context::Output,
        input: Option<&[f32]>,
    ) -> Result<(), FileError> {
        let Some(resampler) = self.resampler.as_mut() else {
            return Ok(());
        };
        let in_channels = resampler.input().channel_layout.channels().max(1);
        let mut in_planes = [input.map_or(std::ptr::null(), |s| s.as_ptr().cast::<u8>())];
        let mut in_count = input.map_or(0, |s| {
            i32::try_from(s.len() / in_channels as usize).unwrap_or(i32::MAX)
        });
        let in_arg = match input {
            Some(_) => in_planes.as_mut_ptr(),
            None => std::ptr::null_mut(),
        };
        let bytes = self.sample_format.bytes();
        let channels = usize::from(self.channels);
        loop {
            if self.filled == 0 {
                // The encoder may still hold the previous frame's buffer: make it ours
                // again (a copy only in that case).
                // SAFETY: `frame` owns a valid, allocated AVFrame.
                let ret = unsafe { ffmpeg::ffi::av_frame_make_writable(self.frame.as_mut_ptr()) };
                if ret < 0 {
                    return Err(self.encode_error("make the audio frame writable", ret.into()));
                }
            }
            let mut planes = [std::ptr::null_mut::<u8>(); MAX_CHANNELS as usize];
            // SAFETY: the frame holds `frame_size` samples of `channels` channels in
            // `sample_format`, and `filled < frame_size`, so each offset stays inside its
            // plane (one plane of interleaved samples when packed).
            unsafe {
                let data = (*self.frame.as_mut_ptr()).extended_data;
                if self.sample_format.is_planar() {
                    for (c, plane) in planes.iter_mut().enumerate().take(channels) {
                        *plane = (*data.add(c)).add(self.filled * bytes);
                    }
                } else {
                    planes[0] = (*data).add(self.filled * bytes * channels);
                }
            }
            let room = i32::try_from(self.frame_size - self.filled).unwrap_or(i32::MAX);
            let Some(resampler) = self.resampler.as_mut() else {
                return Ok(());
            };
            // SAFETY: the context converts from the buffers' packed f32 to the encoder's
            // format and channels; `planes` has `room` samples of space per channel (see
            // above); `in_arg` is null (flush) or points at one plane of `in_count`
            // interleaved samples that outlives the call. Input that does not fit is kept
            // inside the context and comes out on the next calls.
            let converted = unsafe {
                ffmpeg::ffi::swr_convert(
                    resampler.as_mut_ptr(),
                    planes.as_mut_ptr(),
                    room,
                    in_arg,
                    in_count,
                )
            };
            let Ok(converted) = usize::try_from(converted) else {
                return Err(self.encode_error("convert audio", converted.into()));
            };
            in_count = 0;
            self.filled += converted;
            if self.filled < self.frame_size {
                return Ok(());
            }
            self.send(output, self.frame_size)?;
        }
    }

    /// Encodes the frame's first `samples` samples.
    fn send(
        &mut self,
        output: &mut format::context::Output,
        samples: usize,
    ) -> Result<(), FileError> {
        self.frame.set_samples(samples);
        self.frame.set_pts(Some(self.next_pts));
        self.next_pts += samples as i64;
        let sent = self.encoder.send_frame(&self.frame);
        self.frame.set_samples(self.frame_size);
        self.filled = 0;
        sent.map_err(|e| self.encode_error("send audio frame", e))?;
        self.drain(output)
    }

    /// Encodes what is left (a shorter or silence-padded last frame) and flushes the
    /// encoder: the track is complete afterwards.
    pub(super) fn finish(&mut self, output: &mut format::context::Output) -> Result<(), FileError> {
        self.convert(output, None)?;
        self.resampler = None;
        if self.filled > 0 {
            if self.small_last_frame {
                self.send(output, self.filled)?;
            } else {
                let (filled, rest) = (self.filled, self.frame_size - self.filled);
                // SAFETY: the frame is writable (made so before filling) and holds
                // `frame_size` samples: silence goes into the `rest` after `filled`.
                unsafe {
                    ffmpeg::ffi::av_samples_set_silence(
                        (*self.frame.as_mut_ptr()).extended_data,
                        i32::try_from(filled).unwrap_or(i32::MAX),
                        i32::try_from(rest).unwrap_or(i32::MAX),
                        i32::from(self.channels),
                        self.sample_format.into(),
                    );
                }
                self.send(output, self.frame_size)?;
            }
        }
        self.encoder
            .send_eof()
            .map_err(|e| self.encode_error("flush audio", e))?;
        self.drain(output)
    }

    /// Moves every packet the encoder has ready into the file, interleaved with the video.
    fn drain(&mut self, output: &mut format::context::Output) -> Result<(), FileError> {
        loop {
            match self.encoder.receive_packet(&mut self.packet) {
                Ok(()) => {}
                Err(ffmpeg::Error::Eof) => return Ok(()),
                Err(ffmpeg::Error::Other { errno }) if errno == EAGAIN => return Ok(()),
                Err(e) => return Err(self.encode_error("receive audio packet", e)),
            }
            self.packet.set_stream(self.stream_index);
            // Durations come from the encoder, in samples.
            self.packet
                .rescale_ts(self.time_base, self.stream_time_base);
            self.packet
                .write_interleaved(output)
                .map_err(|e| self.encode_error("write audio packet", e))?;
            self.packets += 1;
        }
    }

    fn encode_error(&self, what: &str, e: ffmpeg::Error) -> FileError {
        FileError::Encode {
            path: self.path.clone(),
            reason: format!("{what}: {e}"),
        }
    }
}
