//! [`VideoEncoder`]: libx264, libx265 or libvpx behind one push API.

use ffmpeg::util::error::EAGAIN;
use ffmpeg::{Dictionary, Packet, codec, encoder, format, frame, picture};
use ffmpeg_next as ffmpeg;
use streamlib_ports::{FrameLayout, VideoFrame};

use super::{EncodeError, EncodedPacket, VideoCodec, VideoEncoderConfig, to_i32, to_usize};
use crate::scale::Scaler;

/// Keyframe distance standing for "only on request" (`keyframe_interval` 0): an hour at
/// 30 fps, far beyond any stream's natural keyframe distance, inside every encoder's range.
const ON_REQUEST_GOP: u32 = 108_000;

/// A video encoder: converts frames and encodes them, one packet callback at a time.
pub struct VideoEncoder {
    config: VideoEncoderConfig,
    encoder: encoder::video::Encoder,
    scaler: Scaler,
    /// The converted picture handed to the encoder, reused for every frame.
    picture: frame::Video,
    /// Reused for every packet the encoder returns.
    packet: Packet,
    /// A bitrate waiting for the next keyframe (encoders FFmpeg does not reconfigure).
    pending_bitrate: Option<u64>,
    /// Frames since the last keyframe was sent, to know when the encoder's own comes.
    since_keyframe: u64,
    /// Copied from the opened encoder.
    extradata: Option<Vec<u8>>,
    flushed: bool,
}

impl std::fmt::Debug for VideoEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoEncoder")
            .field("config", &self.config)
            .field("input", &self.scaler.input_layout())
            .field("pending_bitrate", &self.pending_bitrate)
            .finish_non_exhaustive()
    }
}

impl VideoEncoder {
    /// Opens the encoder for `config`, reading frames of `input` (any CPU layout swscale
    /// reads; frames of another layout later rebuild the converter).
    pub fn new(config: &VideoEncoderConfig, input: FrameLayout) -> Result<Self, EncodeError> {
        let mut config = config.clone();
        if matches!(config.codec, VideoCodec::H264 | VideoCodec::H265) {
            config.width &= !1;
            config.height &= !1;
        }
        check(&config)?;
        let encoder = open(&config)?;
        let scaler = scaler(&config, input)?;
        let picture = scaler.picture();
        // SAFETY: `picture` owns a valid AVFrame; reading its first data pointer.
        if unsafe { picture.is_empty() } {
            return Err(EncodeError::Encode {
                codec: config.codec.to_string(),
                what: "allocate the picture",
                reason: "out of memory".to_owned(),
            });
        }
        let extradata = extradata_of(&encoder);
        Ok(Self {
            config,
            encoder,
            scaler,
            picture,
            packet: Packet::empty(),
            pending_bitrate: None,
            since_keyframe: 0,
            extradata,
            flushed: false,
        })
    }

    /// The configuration in use (the size as encoded, the current bitrate).
    pub fn config(&self) -> &VideoEncoderConfig {
        &self.config
    }

    /// The codec header (`global_header`): H.264/H.265 parameter sets in Annex B, as
    /// libx264/libx265 write them; `None` without `global_header` or for VP8.
    pub fn extradata(&self) -> Option<&[u8]> {
        self.extradata.as_deref()
    }

    /// The stream's codec parameters, for a muxer's stream (`add_stream` +
    /// `set_parameters`).
    pub fn parameters(&self) -> codec::Parameters {
        codec::Parameters::from(&*self.encoder)
    }

    /// The timestamps' time base, `1/fps`.
    pub fn time_base(&self) -> ffmpeg::Rational {
        ffmpeg::Rational::new(to_i32(self.config.fps.den), to_i32(self.config.fps.num))
    }

    /// A bitrate set with [`VideoEncoder::set_bitrate`] that waits for the next keyframe
    /// (VP8, H.265), if any.
    pub fn bitrate_pending(&self) -> Option<u64> {
        self.pending_bitrate
    }

    /// Sets the target bitrate for the following frames: libx264 from the next frame on;
    /// libvpx and libx265 are reopened at the next keyframe (see the module docs).
    pub fn set_bitrate(&mut self, bps: u64) -> Result<(), EncodeError> {
        if bps == 0 {
            return Err(EncodeError::OutOfRange {
                codec: self.config.codec.to_string(),
                field: "bitrate_bps",
                value: "0".to_owned(),
                range: "1..",
            });
        }
        if bps == self.config.bitrate_bps {
            self.pending_bitrate = None;
            return Ok(());
        }
        if self.config.codec.reconfigures_live() {
            self.config.bitrate_bps = bps;
            let (rate, max, buffer) = rates(&self.config);
            // SAFETY: `encoder` wraps a valid, opened AVCodecContext owned by `self`; these
            // are plain integer fields libx264's wrapper reads before each frame.
            unsafe {
                let ctx = self.encoder.as_mut_ptr();
                (*ctx).bit_rate = rate;
                (*ctx).rc_max_rate = max;
                (*ctx).rc_buffer_size = buffer;
            }
        } else {
            self.pending_bitrate = Some(bps);
        }
        Ok(())
    }

    /// Converts `frame` and encodes it with presentation time `pts` (in frames), a keyframe
    /// if `force_keyframe`; `out` is called for every packet ready (with B-frames or frame
    /// threads, packets come some frames later).
    pub fn encode(
        &mut self,
        frame: &VideoFrame,
        pts: i64,
        force_keyframe: bool,
        out: &mut dyn FnMut(EncodedPacket<'_>),
    ) -> Result<(), EncodeError> {
        if self.flushed {
            return Err(EncodeError::Flushed {
                codec: self.config.codec.to_string(),
            });
        }
        let Some(bytes) = frame.cpu_bytes() else {
            return Err(EncodeError::GpuFrame {
                codec: self.config.codec.to_string(),
            });
        };
        if frame.layout() != self.scaler.input_layout() {
            self.scaler = scaler(&self.config, frame.layout())?;
        }
        let mut keyframe = force_keyframe || self.since_keyframe == 0;
        let interval = u64::from(gop(&self.config));
        if self.since_keyframe >= interval {
            keyframe = true;
        }
        if let Some(bps) = self.pending_bitrate
            && keyframe
        {
            self.reopen(bps, out)?;
        }
        // The encoder may still reference the previous picture's buffer: make it ours again
        // (a copy only in that case).
        // SAFETY: `picture` owns a valid, allocated AVFrame.
        let ret = unsafe { ffmpeg::ffi::av_frame_make_writable(self.picture.as_mut_ptr()) };
        if ret < 0 {
            return Err(self.error("make the picture writable", ret.into()));
        }
        let layout = frame.layout();
        self.scaler
            .run(bytes, &mut self.picture)
            .map_err(|source| EncodeError::Convert {
                codec: self.config.codec.to_string(),
                format: layout.format(),
                width: layout.width(),
                height: layout.height(),
                source,
            })?;
        self.picture.set_pts(Some(pts));
        self.picture.set_kind(if force_keyframe {
            picture::Type::I
        } else {
            picture::Type::None
        });
        self.since_keyframe = if keyframe { 1 } else { self.since_keyframe + 1 };
        self.encoder
            .send_frame(&self.picture)
            .map_err(|e| self.error("send frame", e))?;
        self.drain(out)
    }

    /// Encodes what the encoder still holds and hands out its last packets; the encoder
    /// takes no frames afterwards.
    pub fn flush(&mut self, out: &mut dyn FnMut(EncodedPacket<'_>)) -> Result<(), EncodeError> {
        if self.flushed {
            return Ok(());
        }
        self.flushed = true;
        self.encoder
            .send_eof()
            .map_err(|e| self.error("flush", e))?;
        self.drain(out)
    }

    /// Flushes the running encoder into `out` and opens a new one at `bps`; the next
    /// frame is its first, a keyframe.
    fn reopen(
        &mut self,
        bps: u64,
        out: &mut dyn FnMut(EncodedPacket<'_>),
    ) -> Result<(), EncodeError> {
        self.encoder
            .send_eof()
            .map_err(|e| self.error("flush before reopening", e))?;
        self.drain(out)?;
        let mut config = self.config.clone();
        config.bitrate_bps = bps;
        self.encoder = open(&config)?;
        self.extradata = extradata_of(&self.encoder);
        self.config = config;
        self.pending_bitrate = None;
        tracing::debug!(codec = %self.config.codec, bps, "encoder reopened at a new bitrate");
        Ok(())
    }

    /// Hands every packet the encoder has ready to `out`.
    fn drain(&mut self, out: &mut dyn FnMut(EncodedPacket<'_>)) -> Result<(), EncodeError> {
        loop {
            match self.encoder.receive_packet(&mut self.packet) {
                Ok(()) => {}
                Err(ffmpeg::Error::Eof) => return Ok(()),
                Err(ffmpeg::Error::Other { errno }) if errno == EAGAIN => return Ok(()),
                Err(e) => return Err(self.error("receive packet", e)),
            }
            let Some(data) = self.packet.data() else {
                continue;
            };
            let pts = self.packet.pts().unwrap_or(0);
            out(EncodedPacket {
                data,
                pts,
                dts: self.packet.dts().unwrap_or(pts),
                keyframe: self.packet.is_key(),
                duration: 1,
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

fn check(config: &VideoEncoderConfig) -> Result<(), EncodeError> {
    let codec = config.codec.to_string();
    let range = |field: &'static str, value: String, range: &'static str| EncodeError::OutOfRange {
        codec: codec.clone(),
        field,
        value,
        range,
    };
    if config.width < 2 || config.height < 2 || config.width > 16384 || config.height > 16384 {
        return Err(range(
            "width x height",
            format!("{}x{}", config.width, config.height),
            "2..=16384 each",
        ));
    }
    if config.fps.num == 0 || config.fps.den == 0 {
        return Err(range(
            "fps",
            format!("{}/{}", config.fps.num, config.fps.den),
            "positive",
        ));
    }
    if config.bitrate_bps == 0 || config.bitrate_bps > 1_000_000_000 {
        return Err(range(
            "bitrate_bps",
            config.bitrate_bps.to_string(),
            "1..=1000000000",
        ));
    }
    Ok(())
}

fn scaler(config: &VideoEncoderConfig, input: FrameLayout) -> Result<Scaler, EncodeError> {
    Scaler::new(input, config.width, config.height, format::Pixel::YUV420P).map_err(|source| {
        EncodeError::Convert {
            codec: config.codec.to_string(),
            format: input.format(),
            width: input.width(),
            height: input.height(),
            source,
        }
    })
}

fn gop(config: &VideoEncoderConfig) -> u32 {
    match config.keyframe_interval {
        0 => ON_REQUEST_GOP,
        n => n.min(ON_REQUEST_GOP),
    }
}

/// Average rate, VBV maximum rate and VBV buffer (bits) for the configuration: a VBV of a
/// second (half a second when low-latency) caps the rate the way a live link needs, and
/// is what lets libx264 take a new rate mid-stream.
fn rates(config: &VideoEncoderConfig) -> (i64, i64, i32) {
    let rate = i64::try_from(config.bitrate_bps).unwrap_or(i64::MAX);
    let buffer = if config.low_latency { rate / 2 } else { rate };
    (rate, rate, i32::try_from(buffer).unwrap_or(i32::MAX))
}

fn open(config: &VideoEncoderConfig) -> Result<encoder::video::Encoder, EncodeError> {
    let name = config.codec.encoder_name();
    let codec_name = config.codec.to_string();
    let found = encoder::find_by_name(name).ok_or_else(|| EncodeError::NoEncoder {
        codec: codec_name.clone(),
        encoder: name,
    })?;
    let open_error = |reason: String| EncodeError::Open {
        codec: codec_name.clone(),
        encoder: name,
        what: format!(
            "{}x{} at {}/{} fps, {} bit/s",
            config.width, config.height, config.fps.num, config.fps.den, config.bitrate_bps
        ),
        reason,
    };
    let mut video = codec::context::Context::new_with_codec(found)
        .encoder()
        .video()
        .map_err(|e| open_error(format!("encoder context: {e}")))?;
    let time_base = ffmpeg::Rational::new(to_i32(config.fps.den), to_i32(config.fps.num));
    video.set_width(config.width);
    video.set_height(config.height);
    video.set_format(format::Pixel::YUV420P);
    video.set_time_base(time_base);
    video.set_frame_rate(Some(ffmpeg::Rational::new(
        to_i32(config.fps.num),
        to_i32(config.fps.den),
    )));
    // swscale converts RGB with BT.601 coefficients into limited range: say so.
    video.set_colorspace(ffmpeg::color::Space::SMPTE170M);
    video.set_color_range(ffmpeg::color::Range::MPEG);
    video.set_gop(gop(config));
    let (rate, max, buffer) = rates(config);
    video.set_bit_rate(to_usize(config.bitrate_bps));
    video.set_max_bit_rate(usize::try_from(max).unwrap_or(usize::MAX));
    // SAFETY: `video` wraps a valid, not yet opened AVCodecContext; plain integer fields.
    unsafe {
        let ctx = video.as_mut_ptr();
        (*ctx).rc_buffer_size = buffer;
        if config.low_latency && config.codec == VideoCodec::Vp8 {
            // minrate = maxrate = bitrate selects libvpx's constant bitrate mode.
            (*ctx).rc_min_rate = rate;
        }
    }
    if config.low_latency {
        video.set_max_b_frames(0);
    }
    // 0 lets the encoder size its thread pool. Frame threads hold a frame per thread
    // before its packet comes out; low latency takes slice threads, which hold none
    // (libx264 follows FFmpeg's thread type over its zerolatency tune).
    video.set_threading(codec::threading::Config {
        kind: if config.low_latency {
            codec::threading::Type::Slice
        } else {
            codec::threading::Type::Frame
        },
        ..Default::default()
    });
    if config.global_header {
        video.set_flags(codec::flag::Flags::GLOBAL_HEADER);
    }
    let mut options = Dictionary::new();
    match config.codec {
        VideoCodec::H264 => {
            options.set("preset", "veryfast");
            options.set("forced-idr", "1");
            if config.low_latency {
                options.set("tune", "zerolatency");
                options.set("profile", "baseline");
            }
        }
        VideoCodec::H265 => {
            options.set("preset", "ultrafast");
            options.set("forced-idr", "1");
            options.set("x265-params", "log-level=error:open-gop=0");
            if config.low_latency {
                options.set("tune", "zerolatency");
            }
        }
        VideoCodec::Vp8 => {
            options.set("deadline", "realtime");
            options.set("cpu-used", "8");
            if config.low_latency {
                options.set("lag-in-frames", "0");
                options.set("error-resilient", "default");
            }
        }
    }
    video
        .open_with(options)
        .map_err(|e| open_error(e.to_string()))
}

fn extradata_of(encoder: &encoder::video::Encoder) -> Option<Vec<u8>> {
    // SAFETY: `encoder` wraps a valid, opened AVCodecContext; `extradata` is null or points
    // at `extradata_size` bytes the context owns, copied here before any other call.
    unsafe {
        let ctx = encoder.as_ptr();
        let size = usize::try_from((*ctx).extradata_size).unwrap_or(0);
        if (*ctx).extradata.is_null() || size == 0 {
            None
        } else {
            Some(std::slice::from_raw_parts((*ctx).extradata, size).to_vec())
        }
    }
}
