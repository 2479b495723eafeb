//! [`AudioEncoder`]: interleaved `f32` buffers into AAC or Opus packets, through
//! swresample straight into the codec's frames of its own size and format.

use ffmpeg::software::resampling;
use ffmpeg::util::error::EAGAIN;
use ffmpeg::{ChannelLayout, Dictionary, Packet, codec, encoder, format, frame};
use ffmpeg_next as ffmpeg;
use streamlib_ports::AudioBuffer;

use super::{AudioEncoderConfig, EncodeError, EncodedPacket, to_usize};

/// At most this many channels (FFmpeg's frames keep 8 plane pointers inline).
const MAX_CHANNELS: u16 = 8;
/// Frame size for codecs that accept any (the encoder reports 0).
const VARIABLE_FRAME_SIZE: usize = 1024;

/// An audio encoder: buffers of any rate and channel count in, packets of
/// [`AudioEncoder::frame_size`] samples out, timestamped in samples from the first.
pub struct AudioEncoder {
    config: AudioEncoderConfig,
    encoder: encoder::audio::Encoder,
    sample_format: format::Sample,
    /// The frame handed to the encoder, reused; filled up to `filled` samples.
    frame: frame::Audio,
    frame_size: usize,
    filled: usize,
    /// The codec accepts a shorter last frame; otherwise it is padded with silence.
    small_last_frame: bool,
    /// From the incoming buffers' rate and channels; its internal buffer is the FIFO that
    /// holds samples until a whole frame is ready.
    resampler: Option<resampling::Context>,
    next_pts: i64,
    packet: Packet,
    extradata: Option<Vec<u8>>,
    flushed: bool,
}

impl std::fmt::Debug for AudioEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioEncoder")
            .field("config", &self.config)
            .field("frame_size", &self.frame_size)
            .finish_non_exhaustive()
    }
}

// SAFETY: the encoder, resampler and frame are owned by this value alone and used only
// through `&mut self`; FFmpeg keeps no thread affinity for them.
unsafe impl Send for AudioEncoder {}

impl AudioEncoder {
    /// Opens the encoder for `config`.
    pub fn new(config: &AudioEncoderConfig) -> Result<Self, EncodeError> {
        let codec_name = config.codec.to_string();
        let name = config.codec.encoder_name();
        if !(1..=MAX_CHANNELS).contains(&config.channels) {
            return Err(EncodeError::OutOfRange {
                codec: codec_name,
                field: "channels",
                value: config.channels.to_string(),
                range: "1..=8",
            });
        }
        if config.bitrate_bps == 0 {
            return Err(EncodeError::OutOfRange {
                codec: codec_name,
                field: "bitrate_bps",
                value: "0".to_owned(),
                range: "1..",
            });
        }
        let found = encoder::find_by_name(name).ok_or_else(|| EncodeError::NoEncoder {
            codec: codec_name.clone(),
            encoder: name,
        })?;
        let open_error = |reason: String| EncodeError::Open {
            codec: codec_name.clone(),
            encoder: name,
            what: format!(
                "{} Hz, {} channels, {} bit/s",
                config.sample_rate, config.channels, config.bitrate_bps
            ),
            reason,
        };
        let audio = found
            .audio()
            .map_err(|e| open_error(format!("not an audio encoder: {e}")))?;
        let rate = i32::try_from(config.sample_rate).unwrap_or(i32::MAX);
        if let Some(rates) = audio.rates() {
            let rates: Vec<i32> = rates.collect();
            if !rates.contains(&rate) {
                return Err(open_error(format!("the encoder takes {rates:?} Hz")));
            }
        }
        // Planar float if the encoder takes it (native AAC does), else packed float, else
        // its first format (swresample converts to any).
        let formats: Vec<format::Sample> =
            audio.formats().map(Iterator::collect).unwrap_or_default();
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
            .map_err(|e| open_error(format!("encoder context: {e}")))?;
        let layout = ChannelLayout::default(i32::from(config.channels));
        context.set_rate(rate);
        context.set_format(sample_format);
        context.set_channel_layout(layout);
        context.set_channels(i32::from(config.channels));
        context.set_time_base(ffmpeg::Rational::new(1, rate));
        context.set_bit_rate(to_usize(config.bitrate_bps));
        // AAC's AudioSpecificConfig (and Opus's OpusHead) go in the extradata: what MP4,
        // MPEG-TS (which writes ADTS from it) and SDP need.
        context.set_flags(codec::flag::Flags::GLOBAL_HEADER);
        let encoder = context
            .open_with(Dictionary::new())
            .map_err(|e| open_error(e.to_string()))?;
        let frame_size = match encoder.frame_size() {
            0 => VARIABLE_FRAME_SIZE,
            n => n as usize,
        };
        let sample_format = encoder.format();
        let mut frame = frame::Audio::new(sample_format, frame_size, layout);
        frame.set_rate(config.sample_rate);
        // SAFETY: `frame` owns a valid AVFrame; reading its first data pointer.
        if unsafe { frame.is_empty() } {
            return Err(open_error("cannot allocate the audio frame".to_owned()));
        }
        // SAFETY: `encoder` wraps a valid, opened AVCodecContext; `extradata` is null or
        // points at `extradata_size` bytes it owns, copied here.
        let extradata = unsafe {
            let ctx = encoder.as_ptr();
            let size = usize::try_from((*ctx).extradata_size).unwrap_or(0);
            ((!(*ctx).extradata.is_null()) && size > 0)
                .then(|| std::slice::from_raw_parts((*ctx).extradata, size).to_vec())
        };
        Ok(Self {
            config: *config,
            small_last_frame: found.capabilities().intersects(
                codec::capabilities::Capabilities::SMALL_LAST_FRAME
                    | codec::capabilities::Capabilities::VARIABLE_FRAME_SIZE,
            ),
            encoder,
            sample_format,
            frame,
            frame_size,
            filled: 0,
            resampler: None,
            next_pts: 0,
            packet: Packet::empty(),
            extradata,
            flushed: false,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &AudioEncoderConfig {
        &self.config
    }

    /// Samples per channel in each packet (1024 for AAC, 960 for Opus at 48 kHz).
    pub fn frame_size(&self) -> usize {
        self.frame_size
    }

    /// The codec header: AAC's AudioSpecificConfig, Opus's `OpusHead`.
    pub fn extradata(&self) -> Option<&[u8]> {
        self.extradata.as_deref()
    }

    /// Samples the encoder stamps its first packet early by (AAC's priming, Opus's
    /// pre-skip): the first packet's pts is minus this.
    pub fn initial_padding(&self) -> i64 {
        // SAFETY: `encoder` wraps a valid, opened AVCodecContext; reading a plain field.
        i64::from(unsafe { (*self.encoder.as_ptr()).initial_padding })
    }

    /// The stream's codec parameters, for a muxer's stream.
    pub fn parameters(&self) -> codec::Parameters {
        codec::Parameters::from(&*self.encoder)
    }

    /// The timestamps' time base, `1/sample_rate`.
    pub fn time_base(&self) -> ffmpeg::Rational {
        ffmpeg::Rational::new(1, i32::try_from(self.config.sample_rate).unwrap_or(1))
    }

    /// Converts and queues `buffer`, encoding every frame that fills up; `out` gets each
    /// packet ready (pts in samples of the encoder's rate, from 0 at the first sample).
    pub fn encode(
        &mut self,
        buffer: &AudioBuffer,
        out: &mut dyn FnMut(EncodedPacket<'_>),
    ) -> Result<(), EncodeError> {
        if self.flushed {
            return Err(EncodeError::Flushed {
                codec: self.config.codec.to_string(),
            });
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
                self.convert(None, out)?;
            }
            let context = resampling::Context::get(
                wanted.format,
                wanted.channel_layout,
                wanted.rate,
                self.sample_format,
                ChannelLayout::default(i32::from(self.config.channels)),
                self.config.sample_rate,
            )
            .map_err(|e| EncodeError::AudioFormat {
                codec: self.config.codec.to_string(),
                sample_rate: buffer.sample_rate(),
                channels: buffer.channels(),
                reason: e.to_string(),
            })?;
            self.resampler = Some(context);
        }
        self.convert(Some(buffer.samples()), out)
    }

    /// Encodes what is left (a shorter or silence-padded last frame) and flushes the
    /// encoder: its last packets go to `out`, and it takes no more buffers.
    pub fn flush(&mut self, out: &mut dyn FnMut(EncodedPacket<'_>)) -> Result<(), EncodeError> {
        if self.flushed {
            return Ok(());
        }
        self.convert(None, out)?;
        self.resampler = None;
        if self.filled > 0 {
            if self.small_last_frame {
                self.send(self.filled, out)?;
            } else {
                let (filled, rest) = (self.filled, self.frame_size - self.filled);
                // SAFETY: the frame is writable (made so before filling) and holds
                // `frame_size` samples: silence goes into the `rest` after `filled`.
                unsafe {
                    ffmpeg::ffi::av_samples_set_silence(
                        (*self.frame.as_mut_ptr()).extended_data,
                        i32::try_from(filled).unwrap_or(i32::MAX),
                        i32::try_from(rest).unwrap_or(i32::MAX),
                        i32::from(self.config.channels),
                        self.sample_format.into(),
                    );
                }
                self.send(self.frame_size, out)?;
            }
        }
        self.flushed = true;
        self.encoder
            .send_eof()
            .map_err(|e| self.error("flush", e))?;
        self.drain(out)
    }

    /// Runs the converter on `input` (interleaved f32 of the converter's input format), or
    /// flushes it with `None`, filling the frame and encoding each full one.
    fn convert(
        &mut self,
        input: Option<&[f32]>,
        out: &mut dyn FnMut(EncodedPacket<'_>),
    ) -> Result<(), EncodeError> {
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
        let channels = usize::from(self.config.channels);
        loop {
            if self.filled == 0 {
                // The encoder may still hold the previous frame's buffer: make it ours
                // again (a copy only in that case).
                // SAFETY: `frame` owns a valid, allocated AVFrame.
                let ret = unsafe { ffmpeg::ffi::av_frame_make_writable(self.frame.as_mut_ptr()) };
                if ret < 0 {
                    return Err(self.error("make the audio frame writable", ret.into()));
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
                return Err(self.error("convert audio", converted.into()));
            };
            in_count = 0;
            self.filled += converted;
            if self.filled < self.frame_size {
                return Ok(());
            }
            self.send(self.frame_size, out)?;
        }
    }

    /// Encodes the frame's first `samples` samples.
    fn send(
        &mut self,
        samples: usize,
        out: &mut dyn FnMut(EncodedPacket<'_>),
    ) -> Result<(), EncodeError> {
        self.frame.set_samples(samples);
        self.frame.set_pts(Some(self.next_pts));
        self.next_pts += samples as i64;
        let sent = self.encoder.send_frame(&self.frame);
        self.frame.set_samples(self.frame_size);
        self.filled = 0;
        sent.map_err(|e| self.error("send audio frame", e))?;
        self.drain(out)
    }

    fn drain(&mut self, out: &mut dyn FnMut(EncodedPacket<'_>)) -> Result<(), EncodeError> {
        loop {
            match self.encoder.receive_packet(&mut self.packet) {
                Ok(()) => {}
                Err(ffmpeg::Error::Eof) => return Ok(()),
                Err(ffmpeg::Error::Other { errno }) if errno == EAGAIN => return Ok(()),
                Err(e) => return Err(self.error("receive audio packet", e)),
            }
            let Some(data) = self.packet.data() else {
                continue;
            };
            let pts = self.packet.pts().unwrap_or(0);
            out(EncodedPacket {
                data,
                pts,
                dts: self.packet.dts().unwrap_or(pts),
                keyframe: true,
                duration: self.packet.duration(),
            });
        }
    }

    fn error(&self, what: &'static str, e: ffmpeg::Error) -> EncodeError {
        EncodeError::Encode {
            codec: self.config.codec.to_string(),
            what,
            reason: e.to_string(),
        }
    }
}
