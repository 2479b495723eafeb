use thiserror::Error;

use streamlib_ports::{FrameLimits, PixelFormat};

/// The largest width or height the video handlers accept: the frame limits' (16384; at that
/// size on both sides a frame also reaches their 2^28-pixel cap).
pub const MAX_FRAME_SIDE: u32 = FrameLimits::DEFAULT.max_width;

/// Errors from configuring and running the video handlers.
#[derive(Debug, Error)]
pub enum VideoError {
    /// A frame size was zero or too large.
    #[error("{handler}: invalid size {width}x{height} ({reason})")]
    InvalidSize {
        /// Handler type.
        handler: &'static str,
        /// Width asked for.
        width: u32,
        /// Height asked for.
        height: u32,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// A blur sigma must be a finite number above zero.
    #[error("blur: sigma must be a finite number > 0, got {sigma}")]
    InvalidSigma {
        /// The sigma given.
        sigma: f32,
    },
    /// A blur radius outside the supported range.
    #[error("blur: radius {radius} is out of range 1..={max}")]
    InvalidRadius {
        /// The radius given.
        radius: u32,
        /// The largest supported.
        max: u32,
    },
    /// A compositor layer index that does not exist.
    #[error("compositor: layer {index} does not exist (it has {layers} layers: 0..={last})", last = .layers.saturating_sub(1))]
    LayerOutOfRange {
        /// The index given.
        index: usize,
        /// Layers the compositor has.
        layers: usize,
    },
    /// A value outside its range (opacity, scale, rate…).
    #[error("{handler}: {what} = {value} is out of range {range}")]
    OutOfRange {
        /// Handler type.
        handler: &'static str,
        /// The setting.
        what: &'static str,
        /// The value given.
        value: String,
        /// The valid range.
        range: &'static str,
    },
    /// A frame in a pixel format the handler does not process.
    #[error("{handler}: {format} frames are not supported (supported: {supported})")]
    UnsupportedFormat {
        /// Handler type.
        handler: &'static str,
        /// The format received.
        format: PixelFormat,
        /// Formats it accepts.
        supported: &'static str,
    },
    /// A frame in GPU memory reached a CPU-only handler.
    #[error(
        "{handler}: received a GPU frame but runs on the CPU (connect through a GpuToCpu transfer)"
    )]
    NotInCpuMemory {
        /// Handler type.
        handler: &'static str,
    },
    /// A font file is missing or unreadable.
    #[error("font file {path}: {source}")]
    FontIo {
        /// The path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Font bytes that are not a font.
    #[error("font {origin} is not a usable TrueType/OpenType font: {reason}")]
    InvalidFont {
        /// Where the bytes came from (a path, or "supplied bytes").
        origin: String,
        /// What the parser said.
        reason: String,
    },
    /// No system font was found where one was expected.
    #[error(
        "no system font found (looked in: {searched}); install fonts-dejavu-core or supply font bytes"
    )]
    NoSystemFont {
        /// The paths searched.
        searched: String,
    },
    /// The display could not be opened.
    #[error("display '{title}': {reason}")]
    Display {
        /// Window title.
        title: String,
        /// What went wrong (e.g. no DISPLAY set, XOpenDisplay failed).
        reason: String,
    },
    /// A frame pool could not be created or ran dry.
    #[error("{handler}: {source}")]
    Pool {
        /// Handler type.
        handler: &'static str,
        /// The pool's error.
        #[source]
        source: streamlib_buffers::BuffersError,
    },
    /// A frame could not be built.
    #[error("{handler}: {source}")]
    Frame {
        /// Handler type.
        handler: &'static str,
        /// The frame error.
        #[source]
        source: streamlib_ports::FrameError,
    },
}

impl VideoError {
    /// Wraps a pool error of `handler`'s, for `map_err`.
    pub(crate) fn pool(handler: &'static str) -> impl Fn(streamlib_buffers::BuffersError) -> Self {
        move |source| Self::Pool { handler, source }
    }
}

impl VideoError {
    /// Checks a frame size every handler here shares: 1..=[`MAX_FRAME_SIDE`] on both sides.
    pub(crate) fn check_size(handler: &'static str, width: u32, height: u32) -> Result<(), Self> {
        let reason = if width == 0 || height == 0 {
            "width and height must be at least 1"
        } else if width > MAX_FRAME_SIDE || height > MAX_FRAME_SIDE {
            "width and height must be at most 16384"
        } else {
            return Ok(());
        };
        Err(Self::InvalidSize {
            handler,
            width,
            height,
            reason,
        })
    }
}
