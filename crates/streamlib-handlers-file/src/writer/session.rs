//! The FFmpeg side of the writer: one open output file with one video stream, its encoder,
//! the pixel converter and the reusable frame and packet, and the audio stream if configured.

use std::path::{Path, PathBuf};

use ffmpeg::util::error::EAGAIN;
use ffmpeg::{Dictionary, Packet, codec, encoder, format, frame};
use ffmpeg_next as ffmpeg;
use streamlib_clock::Rational;
use streamlib_codec::scale::Scaler;
use streamlib_ports::{AudioBuffer, FrameLayout, PixelFormat};

use crate::FileError;

use super::audio::{AudioCodec, AudioConfig, AudioEncoder};
use super::{Container, OutputCodec, WriterConfig};

/// What the session needs beyond the frame: settled by the handler at the first frame.
pub(super) struct SessionSpec<'a> {
    pub path: &'a Path,
    pub container: Container,
    pub codec: OutputCodec,
    pub config: &'a WriterConfig,
    pub fps: Rational,
    /// The audio track's codec and format, if the file has one.
    pub audio: Option<(AudioCodec, &'a AudioConfig)>,
    /// Write a layout that survives a crash (see [`muxer_options`]).
    pub fragmented: bool,
    /// The timestamp (ns) of the first frame: file time zero, where the audio is placed
    /// against.
    pub origin_ns: u64,
}

/// An output file being written.
pub(super) struct Session {
    path: PathBuf,
    output: format::context::Output,
    encoder: encoder::video::Encoder,
    scaler: Scaler,
    /// The converted picture handed to the encoder, reused for every frame.
    picture: frame::Video,
    /// Reused for every packet the encoder returns.
    packet: Packet,
    stream_index: usize,
    encoder_time_base: ffmpeg::Rational,
    stream_time_base: ffmpeg::Rational,
    /// The layout every input frame must have (the first frame's).
    input_layout: FrameLayout,
    packets: u64,
    audio: Option<AudioEncoder>,
}

impl Session {
    /// Opens the file, the encoder and the converter for frames of `layout`, and writes the
    /// header.
    pub(super) fn open(spec: &SessionSpec<'_>, layout: FrameLayout) -> Result<Self, FileError> {
        let path = spec.path.to_path_buf();
        let encode_err = |reason: String| FileError::Encode {
            path: path.clone(),
            reason,
        };
        let (width, height) = output_size(spec.codec, layout.width(), layout.height());
        let pixel = output_pixel(spec.codec, layout.format());

        // FFmpeg opens only what the whitelist names (`file` by default): never a network
        // output or a pipe, whatever the path says.
        let mut protocols = Dictionary::new();
        let whitelist = spec.config.protocol_whitelist.as_deref().unwrap_or("file");
        protocols.set("protocol_whitelist", whitelist);
        let mut output =
            format::output_as_with(&path, spec.container.muxer(), protocols).map_err(|e| {
                FileError::Unwritable {
                    path: path.clone(),
                    reason: e.to_string(),
                }
            })?;
        let global_header = output
            .format()
            .flags()
            .contains(format::flag::Flags::GLOBAL_HEADER);

        let codec_name = spec.codec.encoder_name();
        let codec =
            encoder::find_by_name(codec_name).ok_or_else(|| FileError::UnsupportedCodec {
                path: path.clone(),
                codec: codec_name.to_owned(),
                reason: "this FFmpeg build has no such encoder".to_owned(),
            })?;
        let mut video = codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(|e| encode_err(format!("encoder context: {e}")))?;
        let time_base = ffmpeg::Rational::new(to_i32(spec.fps.den), to_i32(spec.fps.num));
        let frame_rate = ffmpeg::Rational::new(to_i32(spec.fps.num), to_i32(spec.fps.den));
        video.set_width(width);
        video.set_height(height);
        video.set_format(pixel);
        video.set_time_base(time_base);
        video.set_frame_rate(Some(frame_rate));
        // FFmpeg's default is one thread, which makes libx264/libx265/libvpx encode serially
        // inside the pipeline's tick; 0 lets the encoder size its own pool, as the CLI does.
        video.set_threading(codec::threading::Config {
            kind: codec::threading::Type::Frame,
            ..Default::default()
        });
        if is_yuv(pixel) {
            // swscale converts RGB with BT.601 coefficients into limited range: say so.
            video.set_colorspace(ffmpeg::color::Space::SMPTE170M);
            video.set_color_range(ffmpeg::color::Range::MPEG);
        }
        if global_header {
            video.set_flags(codec::flag::Flags::GLOBAL_HEADER);
        }
        let options = encoder_options(spec, &mut video);
        let encoder = video
            .open_with(options)
            .map_err(|e| FileError::UnsupportedCodec {
                path: path.clone(),
                codec: codec_name.to_owned(),
                reason: format!("cannot open the encoder for {width}x{height} {pixel:?}: {e}"),
            })?;

        let stream_index = {
            let mut stream = output
                .add_stream(codec)
                .map_err(|e| encode_err(format!("add stream: {e}")))?;
            stream.set_parameters(&encoder);
            stream.set_time_base(time_base);
            stream.set_avg_frame_rate(frame_rate);
            stream.set_rate(frame_rate);
            stream.index()
        };
        let mut audio = match spec.audio {
            Some((codec, config)) => Some(AudioEncoder::add(
                &mut output,
                &path,
                spec.container,
                codec,
                config,
                spec.origin_ns,
            )?),
            None => None,
        };
        let mut options = muxer_options(spec.container, spec.fragmented);
        if let (Container::Mp4 | Container::Mov, Some((_, config))) = (spec.container, spec.audio) {
            // The edit lists that place the audio (its priming, a late start) are counted in
            // the movie's time scale, 1/1000 s by default: a late start would land up to a
            // millisecond off. In samples it lands exactly.
            options.set("movie_timescale", &config.sample_rate.to_string());
        }
        output
            .write_header_with(options)
            .map_err(|e| encode_err(format!("write header: {e}")))?;
        if let Some(audio) = &mut audio {
            audio.header_written(&output);
        }
        let stream_time_base = output
            .stream(stream_index)
            .map(|s| s.time_base())
            .unwrap_or(time_base);

        let scaler =
            Scaler::new(layout, width, height, pixel).map_err(|e| encode_err(e.to_string()))?;
        let picture = frame::Video::new(pixel, width, height);
        // SAFETY: `picture` owns a valid AVFrame; reading its first data pointer is a plain load.
        if unsafe { picture.is_empty() } {
            return Err(encode_err("cannot allocate the picture".to_owned()));
        }
        Ok(Self {
            path,
            output,
            encoder,
            scaler,
            picture,
            packet: Packet::empty(),
            stream_index,
            encoder_time_base: time_base,
            stream_time_base,
            input_layout: layout,
            packets: 0,
            audio,
        })
    }

    /// The layout the first frame had.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn input_layout(&self) -> FrameLayout {
        self.input_layout
    }

    /// Video packets written to the file so far.
    pub(super) fn packets(&self) -> u64 {
        self.packets
    }

    /// Audio packets written and samples per channel accepted so far.
    pub(super) fn audio_counts(&self) -> (u64, u64) {
        self.audio
            .as_ref()
            .map_or((0, 0), |a| (a.packets(), a.samples()))
    }

    /// Whether the audio track could not be placed by timestamp (see
    /// [`WriterStats::audio_clock_mismatch`](super::WriterStats::audio_clock_mismatch)).
    pub(super) fn audio_unaligned(&self) -> bool {
        self.audio.as_ref().is_some_and(|a| a.unaligned())
    }

    /// Queues `buffer` on the audio track, encoding every frame it completes.
    pub(super) fn write_audio(&mut self, buffer: &AudioBuffer) -> Result<(), FileError> {
        match &mut self.audio {
            Some(audio) => audio.write(&mut self.output, buffer),
            None => Err(FileError::AudioTrack {
                path: self.path.clone(),
                reason: "audio arrived but WriterConfig::audio is None".to_owned(),
            }),
        }
    }

    /// Converts `bytes` (a frame of the input layout) and encodes it with presentation time
    /// `pts`, in frames.
    pub(super) fn write(&mut self, bytes: &[u8], pts: i64) -> Result<(), FileError> {
        // The encoder may still reference the previous picture's buffer: make it ours again
        // (a copy only in that case).
        // SAFETY: `picture` owns a valid, allocated AVFrame.
        let ret = unsafe { ffmpeg::ffi::av_frame_make_writable(self.picture.as_mut_ptr()) };
        if ret < 0 {
            return Err(self.encode_error("make the picture writable", ret.into()));
        }
        self.scaler
            .run(bytes, &mut self.picture)
            .map_err(|e| FileError::BadFrame {
                path: self.path.clone(),
                reason: e.to_string(),
            })?;
        self.picture.set_pts(Some(pts));
        self.encoder
            .send_frame(&self.picture)
            .map_err(|e| self.encode_error("send frame", e))?;
        self.drain()
    }

    /// Flushes the encoders and writes the trailer: the file is complete afterwards. The
    /// trailer is written even if a flush failed, so what was encoded stays playable.
    pub(super) fn finish(&mut self) -> Result<(), FileError> {
        let video = self
            .encoder
            .send_eof()
            .map_err(|e| self.encode_error("flush", e))
            .and_then(|()| self.drain());
        let audio = match &mut self.audio {
            Some(audio) => audio.finish(&mut self.output),
            None => Ok(()),
        };
        let trailer = self
            .output
            .write_trailer()
            .map_err(|e| self.encode_error("write trailer", e));
        video.and(audio).and(trailer)
    }

    /// Moves every packet the encoder has ready into the file.
    fn drain(&mut self) -> Result<(), FileError> {
        loop {
            match self.encoder.receive_packet(&mut self.packet) {
                Ok(()) => {}
                Err(ffmpeg::Error::Eof) => return Ok(()),
                Err(ffmpeg::Error::Other { errno }) if errno == EAGAIN => return Ok(()),
                Err(e) => return Err(self.encode_error("receive packet", e)),
            }
            self.packet.set_stream(self.stream_index);
            // One frame per packet, in the encoder's 1/fps time base; without it the MP4
            // muxer guesses durations and reports a wrong frame rate.
            self.packet.set_duration(1);
            self.packet
                .rescale_ts(self.encoder_time_base, self.stream_time_base);
            self.packet
                .write_interleaved(&mut self.output)
                .map_err(|e| self.encode_error("write packet", e))?;
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

/// How long a fragment (MP4, MOV) or cluster (Matroska, WebM) of a fragmented file lasts:
/// what a crash can lose, beside the frames still in the encoder.
pub(super) const FRAGMENT_MS: u32 = 500;

/// Muxer options for the file's layout.
///
/// Fragmented MP4 and MOV start with an empty `moov` and then write self-contained
/// `moof`+`mdat` fragments, cut at every keyframe and at least every [`FRAGMENT_MS`]; CMAF's
/// `default_base_moof` makes each fragment's offsets relative to itself. A process killed
/// mid-recording leaves every complete fragment readable, where the classic layout, whose
/// index (`moov`) is written by the trailer, leaves nothing. Matroska is written progressively
/// in both layouts (the segment starts with an unknown size that the trailer patches);
/// fragmented Matroska closes a cluster every [`FRAGMENT_MS`] instead of FFmpeg's 5 s. Both
/// flush FFmpeg's I/O buffer after every packet so what was muxed is in the file, not in
/// memory. Y4M has no index: nothing to set.
pub(super) fn muxer_options<'a>(container: Container, fragmented: bool) -> Dictionary<'a> {
    let mut options = Dictionary::new();
    if !fragmented {
        return options;
    }
    match container {
        Container::Mp4 | Container::Mov => {
            options.set("movflags", "+frag_keyframe+empty_moov+default_base_moof");
            options.set(
                "frag_duration",
                &(u64::from(FRAGMENT_MS) * 1000).to_string(),
            );
        }
        Container::Mkv | Container::Webm => {
            options.set("cluster_time_limit", &FRAGMENT_MS.to_string());
        }
        Container::Y4m => {}
    }
    options.set("flush_packets", "1");
    options
}

/// Encoder options for the codec: speed, quality, quiet logs.
fn encoder_options<'a>(
    spec: &SessionSpec<'_>,
    video: &mut encoder::video::Video,
) -> Dictionary<'a> {
    let config = spec.config;
    let mut options = Dictionary::new();
    let preset = config.preset.as_deref().unwrap_or(super::DEFAULT_PRESET);
    let crf = config.crf.map(|c| c.to_string());
    match spec.codec {
        OutputCodec::H264 | OutputCodec::H265 => {
            options.set("preset", preset);
            if spec.codec == OutputCodec::H265 {
                options.set("x265-params", "log-level=error");
            }
            match (&crf, config.bitrate) {
                (Some(crf), _) => options.set("crf", crf),
                (None, Some(bits)) => {
                    video.set_bit_rate(usize::try_from(bits).unwrap_or(usize::MAX));
                }
                (None, None) => {}
            }
        }
        OutputCodec::Vp9 => {
            // Realtime speed: a live pipeline cannot wait for libvpx's "good" deadline.
            options.set("deadline", "realtime");
            options.set("cpu-used", "8");
            options.set("row-mt", "1");
            match (&crf, config.bitrate) {
                (Some(crf), _) => {
                    options.set("crf", crf);
                    video.set_bit_rate(0);
                }
                (None, Some(bits)) => {
                    video.set_bit_rate(usize::try_from(bits).unwrap_or(usize::MAX));
                }
                (None, None) => {
                    options.set("crf", "32");
                    video.set_bit_rate(0);
                }
            }
        }
        OutputCodec::Ffv1 => {
            options.set("level", "3");
            options.set("slicecrc", "1");
        }
        OutputCodec::RawVideo => {}
    }
    options
}

/// The encoded size: libx264 and libx265 need even dimensions in 4:2:0, so odd sizes lose
/// their last column or row; every other codec keeps the frame's size.
pub(super) fn output_size(codec: OutputCodec, width: u32, height: u32) -> (u32, u32) {
    match codec {
        OutputCodec::H264 | OutputCodec::H265 => ((width & !1).max(2), (height & !1).max(2)),
        _ => (width, height),
    }
}

/// The encoder's pixel format. Lossy codecs get yuv420p; FFV1 keeps the input's own
/// format family (bgra for RGBA/BGRA, so the round trip is pixel-identical, alpha included).
pub(super) fn output_pixel(codec: OutputCodec, input: PixelFormat) -> format::Pixel {
    match codec {
        OutputCodec::Ffv1 => match input {
            PixelFormat::Rgba8 | PixelFormat::Bgra8 => format::Pixel::BGRA,
            PixelFormat::Gray8 => format::Pixel::GRAY8,
            PixelFormat::Nv12 | PixelFormat::I420 => format::Pixel::YUV420P,
            PixelFormat::Uyvy => format::Pixel::YUV422P,
        },
        _ => format::Pixel::YUV420P,
    }
}

fn is_yuv(pixel: format::Pixel) -> bool {
    matches!(pixel, format::Pixel::YUV420P | format::Pixel::YUV422P)
}

fn to_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}
