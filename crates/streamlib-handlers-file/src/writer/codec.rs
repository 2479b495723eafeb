//! The video codecs and containers the writer knows, and which go together.

use std::path::Path;

/// A video codec the writer can encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// H.264 through libx264, 4:2:0.
    H264,
    /// H.265 through libx265, 4:2:0.
    H265,
    /// VP9 through libvpx-vp9, 4:2:0, realtime speed.
    Vp9,
    /// FFV1 (lossless), in the input's own colour family: RGBA and BGRA frames are stored
    /// as bgra, so decoding gives back identical pixels.
    Ffv1,
}

impl VideoCodec {
    /// FFmpeg's encoder name (`libx264`, …).
    pub fn encoder_name(self) -> &'static str {
        OutputCodec::from(self).encoder_name()
    }
}

/// A container the writer can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Container {
    /// MP4 (`.mp4`): H.264, H.265, VP9.
    Mp4,
    /// Matroska (`.mkv`): every codec.
    Mkv,
    /// QuickTime (`.mov`): H.264, H.265, FFV1.
    Mov,
    /// WebM (`.webm`): VP9.
    Webm,
    /// YUV4MPEG (`.y4m`): uncompressed yuv420p, no codec choice.
    Y4m,
}

impl Container {
    /// The container for a file extension (case-insensitive), `None` for any other.
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "mp4" | "m4v" => Some(Self::Mp4),
            "mkv" => Some(Self::Mkv),
            "mov" => Some(Self::Mov),
            "webm" => Some(Self::Webm),
            "y4m" => Some(Self::Y4m),
            _ => None,
        }
    }

    /// FFmpeg's muxer name.
    pub fn muxer(self) -> &'static str {
        match self {
            Self::Mp4 => "mp4",
            Self::Mkv => "matroska",
            Self::Mov => "mov",
            Self::Webm => "webm",
            Self::Y4m => "yuv4mpegpipe",
        }
    }

    /// The codec used when [`WriterConfig::codec`](super::WriterConfig::codec) is `None`: H.264, VP9 for WebM, and
    /// `None` for Y4M (uncompressed).
    pub fn default_codec(self) -> Option<VideoCodec> {
        match self {
            Self::Mp4 | Self::Mkv | Self::Mov => Some(VideoCodec::H264),
            Self::Webm => Some(VideoCodec::Vp9),
            Self::Y4m => None,
        }
    }

    /// Whether the container can hold `codec`.
    pub fn supports(self, codec: VideoCodec) -> bool {
        use VideoCodec::*;
        match self {
            Self::Mkv => true,
            Self::Mp4 => matches!(codec, H264 | H265 | Vp9),
            Self::Mov => matches!(codec, H264 | H265 | Ffv1),
            Self::Webm => codec == Vp9,
            Self::Y4m => false,
        }
    }
}

/// The encoder actually used: a [`VideoCodec`] or uncompressed video for Y4M.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OutputCodec {
    H264,
    H265,
    Vp9,
    Ffv1,
    RawVideo,
}

impl From<VideoCodec> for OutputCodec {
    fn from(codec: VideoCodec) -> Self {
        match codec {
            VideoCodec::H264 => Self::H264,
            VideoCodec::H265 => Self::H265,
            VideoCodec::Vp9 => Self::Vp9,
            VideoCodec::Ffv1 => Self::Ffv1,
        }
    }
}

impl OutputCodec {
    pub(super) fn encoder_name(self) -> &'static str {
        match self {
            Self::H264 => "libx264",
            Self::H265 => "libx265",
            Self::Vp9 => "libvpx-vp9",
            Self::Ffv1 => "ffv1",
            Self::RawVideo => "wrapped_avframe",
        }
    }
}
