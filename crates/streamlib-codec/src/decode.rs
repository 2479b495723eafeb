//! Decoders: VP8 / H.264 / HEVC packets into pooled RGBA [`VideoFrame`]s, Opus packets into
//! interleaved `f32` [`AudioBuffer`](streamlib_ports::AudioBuffer)s.
//!
//! Both take one compressed packet at a time (what a WebRTC depacketizer or a demuxer hands
//! over) and call `out` for every picture or buffer it completes. A damaged packet is an
//! error the caller may shrug off (count it, ask the sender for a keyframe) and keep
//! decoding: the decoder stays usable.
//!
//! ```no_run
//! use streamlib_codec::decode::VideoDecoder;
//! use streamlib_codec::encode::VideoCodec;
//!
//! let mut decoder = VideoDecoder::new(VideoCodec::Vp8)?;
//! # let packet: &[u8] = &[];
//! decoder.decode(packet, 0, &mut |frame| {
//!     println!("{}x{} {}", frame.width(), frame.height(), frame.format());
//! })?;
//! # Ok::<(), streamlib_codec::decode::DecodeError>(())
//! ```

mod audio;

use ffmpeg::codec;
use ffmpeg::{Error, frame};
use ffmpeg_next as ffmpeg;
use streamlib_ports::{FrameLimits, FramePool, PixelFormat, VideoFrame};

pub use audio::{AudioDecoder, OPUS_SAMPLE_RATE};

use crate::convert::FrameConverter;
use crate::encode::VideoCodec;

/// Why a packet could not be decoded, or a decoder not opened.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// FFmpeg has no decoder for the codec, or it would not open.
    #[error("the {codec} decoder could not be opened: {reason}")]
    Open {
        /// The codec (`vp8`, `h264`, `opus`, …).
        codec: &'static str,
        /// FFmpeg's reason.
        reason: String,
    },
    /// A packet was refused or its picture could not be decoded (damaged, or missing the
    /// keyframe it depends on). The decoder stays usable: feed it the next packet, ideally
    /// after asking the sender for a keyframe.
    #[error("the {codec} decoder could not decode a packet of {bytes} bytes: {reason}")]
    Packet {
        /// The codec.
        codec: &'static str,
        /// The packet's size.
        bytes: usize,
        /// FFmpeg's reason.
        reason: String,
    },
    /// A decoded picture is larger than the limits allow (a hostile or broken stream).
    #[error("the {codec} stream's picture is {width}x{height}, over the frame limits: {reason}")]
    TooLarge {
        /// The codec.
        codec: &'static str,
        /// The picture's width.
        width: u32,
        /// The picture's height.
        height: u32,
        /// Which limit.
        reason: String,
    },
    /// A decoded picture or buffer could not be converted to the output format.
    #[error("the {codec} decoder's output could not be converted: {reason}")]
    Convert {
        /// The codec.
        codec: &'static str,
        /// What failed.
        reason: String,
    },
}

/// Counters of one decoder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Packets fed.
    pub packets: u64,
    /// Pictures (or audio buffers) handed to `out`.
    pub decoded: u64,
    /// Packets or pictures the decoder refused as damaged.
    pub errors: u64,
    /// Pictures decoded but not handed out because every pooled buffer was still held
    /// downstream.
    pub pool_exhausted: u64,
    /// Pictures whose size differed from the output's, scaled to it.
    pub rescaled: u64,
}

/// FFmpeg's short name of a video codec.
pub(crate) fn video_codec_name(codec: VideoCodec) -> &'static str {
    match codec {
        VideoCodec::H264 => "h264",
        VideoCodec::H265 => "hevc",
        VideoCodec::Vp8 => "vp8",
    }
}

fn video_codec_id(codec: VideoCodec) -> codec::Id {
    match codec {
        VideoCodec::H264 => codec::Id::H264,
        VideoCodec::H265 => codec::Id::HEVC,
        VideoCodec::Vp8 => codec::Id::VP8,
    }
}

/// Decodes one video stream into pooled RGBA frames.
///
/// The output size is the first picture's, or the one [`set_output_size`] fixed; later
/// pictures of another size (a sender adapting its resolution) are scaled to it with
/// swscale, so whatever is downstream (an encoder, a file) keeps one size. YUV pictures are
/// converted with the matrix and range they state (BT.601 limited when they state none).
/// Frames come from a pool of at most [`set_pool_max`] buffers; when every one is still held
/// downstream, the picture is dropped and counted in [`DecodeStats::pool_exhausted`].
///
/// The decoder runs single-threaded, without frame reordering delay: one packet in, its
/// picture out (WebRTC senders use no B-frames).
///
/// [`set_output_size`]: Self::set_output_size
/// [`set_pool_max`]: Self::set_pool_max
pub struct VideoDecoder {
    codec: VideoCodec,
    decoder: codec::decoder::Video,
    picture: frame::Video,
    packet: ffmpeg::Packet,
    converter: FrameConverter,
    limits: FrameLimits,
    stats: DecodeStats,
}

// SAFETY: the decoder context, frame and packet are owned by this value and only touched
// through `&mut self`; FFmpeg's codec contexts have no thread affinity. ffmpeg-next leaves
// them `!Send` only because they wrap raw pointers.
unsafe impl Send for VideoDecoder {}

impl VideoDecoder {
    /// Opens FFmpeg's decoder for `codec` (libavcodec's native VP8, H.264 and HEVC decoders)
    /// with the default [`FrameLimits`].
    pub fn new(codec: VideoCodec) -> Result<Self, DecodeError> {
        Self::with_limits(codec, FrameLimits::DEFAULT)
    }

    /// Opens the decoder; pictures over `limits` are refused ([`DecodeError::TooLarge`])
    /// before any buffer of their size is allocated.
    pub fn with_limits(codec: VideoCodec, limits: FrameLimits) -> Result<Self, DecodeError> {
        let name = video_codec_name(codec);
        let open = |reason: String| DecodeError::Open {
            codec: name,
            reason,
        };
        ffmpeg::init().map_err(|e| open(format!("FFmpeg failed to initialise: {e}")))?;
        let found = codec::decoder::find(video_codec_id(codec))
            .ok_or_else(|| open("this FFmpeg has no decoder for it".to_owned()))?;
        let mut context = codec::context::Context::new_with_codec(found);
        // SAFETY: `context` owns a valid AVCodecContext that is not opened yet; FFmpeg reads
        // these fields when it opens.
        unsafe {
            let raw = context.as_mut_ptr();
            (*raw).thread_count = 1;
            (*raw).max_pixels = i64::try_from(limits.max_pixels).unwrap_or(i64::MAX);
            // No reordering delay: a picture leaves with its packet.
            (*raw).flags |= ffmpeg::ffi::AV_CODEC_FLAG_LOW_DELAY as i32;
        }
        let decoder = context
            .decoder()
            .open_as(found)
            .and_then(|d| d.video())
            .map_err(|e| open(e.to_string()))?;
        Ok(Self {
            codec,
            decoder,
            picture: frame::Video::empty(),
            packet: ffmpeg::Packet::empty(),
            converter: FrameConverter::new(format!("{name} decoder"), PixelFormat::Rgba8)
                .bilinear(),
            limits,
            stats: DecodeStats::default(),
        })
    }

    /// The codec.
    pub fn codec(&self) -> VideoCodec {
        self.codec
    }

    /// Scales every picture to `width`x`height` from now on (`None`: the first picture's
    /// size, kept from then on).
    pub fn set_output_size(&mut self, size: Option<(u32, u32)>) {
        self.converter.set_target(PixelFormat::Rgba8, size);
    }

    /// The output size, once fixed (by [`set_output_size`](Self::set_output_size) or the
    /// first picture).
    pub fn output_size(&self) -> Option<(u32, u32)> {
        self.converter.size()
    }

    /// The most frames held downstream at once before pictures are dropped (default 32).
    pub fn set_pool_max(&mut self, max: usize) {
        self.converter.set_pool_max(max);
    }

    /// The frame pool, once the first picture fixed its layout.
    pub fn pool(&self) -> Option<&FramePool> {
        self.converter.pool()
    }

    /// The counters so far.
    pub fn stats(&self) -> DecodeStats {
        self.stats
    }

    /// Decodes one packet (a whole encoded picture: a VP8 frame, an H.264 access unit in
    /// Annex B) and calls `out` with each RGBA frame it completes, untimed (the caller stamps
    /// it). `pts` is carried through to FFmpeg only. Returns how many frames `out` got.
    pub fn decode(
        &mut self,
        packet: &[u8],
        pts: i64,
        out: &mut dyn FnMut(VideoFrame),
    ) -> Result<usize, DecodeError> {
        self.stats.packets += 1;
        let name = video_codec_name(self.codec);
        let bad = |reason: String| DecodeError::Packet {
            codec: name,
            bytes: packet.len(),
            reason,
        };
        if packet.is_empty() {
            self.stats.errors += 1;
            return Err(bad("the packet is empty".to_owned()));
        }
        fill_packet(&mut self.packet, packet, pts);
        if let Err(e) = self.decoder.send_packet(&self.packet)
            && !is_again(&e)
        {
            self.stats.errors += 1;
            // Whatever the decoder has ready still comes out.
            self.receive(out)?;
            return Err(bad(e.to_string()));
        }
        self.receive(out)
    }

    /// Drains the pictures the decoder still holds (end of stream) and readies it for a new
    /// stream.
    pub fn flush(&mut self, out: &mut dyn FnMut(VideoFrame)) -> Result<usize, DecodeError> {
        let _ = self.decoder.send_eof();
        let n = self.receive(out);
        self.decoder.flush();
        n
    }

    fn receive(&mut self, out: &mut dyn FnMut(VideoFrame)) -> Result<usize, DecodeError> {
        let name = video_codec_name(self.codec);
        let mut count = 0;
        loop {
            match self.decoder.receive_frame(&mut self.picture) {
                Ok(()) => {}
                Err(Error::Eof) => return Ok(count),
                Err(e) if is_again(&e) => return Ok(count),
                Err(e) => {
                    self.stats.errors += 1;
                    return Err(DecodeError::Packet {
                        codec: name,
                        bytes: 0,
                        reason: e.to_string(),
                    });
                }
            }
            let (width, height) = (self.picture.width(), self.picture.height());
            self.limits
                .check(width, height)
                .map_err(|e| DecodeError::TooLarge {
                    codec: name,
                    width,
                    height,
                    reason: e.to_string(),
                })?;
            if self.picture.is_corrupt() {
                self.stats.errors += 1;
            }
            let converted =
                self.converter
                    .convert(&self.picture, None)
                    .map_err(|e| DecodeError::Convert {
                        codec: name,
                        reason: e.0,
                    })?;
            match converted {
                Some(converted) => {
                    let frame = converted.frame;
                    self.stats.decoded += 1;
                    self.stats.rescaled += u64::from(converted.resized);
                    count += 1;
                    out(frame);
                }
                None => self.stats.pool_exhausted += 1,
            }
        }
    }
}

/// The output format of [`VideoDecoder`].
pub const VIDEO_OUTPUT_FORMAT: PixelFormat = PixelFormat::Rgba8;

/// Puts `data` into `packet`: one copy into a buffer with the padding FFmpeg's parsers
/// read past the end (a borrowed slice has none).
fn fill_packet(packet: &mut ffmpeg::Packet, data: &[u8], pts: i64) {
    *packet = ffmpeg::Packet::copy(data);
    packet.set_pts(Some(pts));
    packet.set_dts(Some(pts));
}

/// FFmpeg's "try again" (EAGAIN): needs more input, or output to be taken first.
pub(crate) fn is_again(e: &Error) -> bool {
    matches!(e, Error::Other { errno } if *errno == ffmpeg::util::error::EAGAIN)
}
