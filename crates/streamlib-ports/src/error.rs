use thiserror::Error;

use crate::PixelFormat;

/// Errors building frames and audio buffers.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// A frame must be at least 1×1.
    #[error("a video frame must be at least 1x1, got {width}x{height}")]
    ZeroSize {
        /// Requested width.
        width: u32,
        /// Requested height.
        height: u32,
    },
    /// The row stride cannot hold one row of the format.
    #[error(
        "stride {stride} is too small for a {width}-pixel-wide {format} row (needs at least {min})"
    )]
    StrideTooSmall {
        /// Pixel format.
        format: PixelFormat,
        /// Width in pixels.
        width: u32,
        /// Stride given, in bytes.
        stride: u32,
        /// Smallest valid stride, in bytes.
        min: usize,
    },
    /// The pixel buffer is smaller than the size and format need.
    #[error(
        "buffer of {actual} bytes is too small for a {width}x{height} {format} frame with stride \
         {stride}: {required} bytes are needed"
    )]
    BufferTooSmall {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Pixel format.
        format: PixelFormat,
        /// Row stride in bytes.
        stride: u32,
        /// Bytes needed.
        required: usize,
        /// Bytes given.
        actual: usize,
    },
    /// A frame size from input is over the [`FrameLimits`](crate::FrameLimits) in force.
    #[error(
        "a {width}x{height} frame is over the frame limits ({}x{}, {} pixels)",
        limits.max_width,
        limits.max_height,
        limits.max_pixels
    )]
    TooLarge {
        /// Width asked for.
        width: u32,
        /// Height asked for.
        height: u32,
        /// The caps it broke.
        limits: crate::FrameLimits,
    },
    /// Audio needs at least one channel, a sample rate, and whole frames of samples.
    #[error(
        "invalid audio buffer: {samples} samples for {channels} channels at {sample_rate} Hz \
         (need channels > 0, sample rate > 0, and samples a multiple of channels)"
    )]
    InvalidAudio {
        /// Interleaved samples given.
        samples: usize,
        /// Channels.
        channels: u16,
        /// Sample rate in Hz.
        sample_rate: u32,
    },
}

/// Errors wiring ports together.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PortError {
    /// The two ports carry different message types.
    #[error(
        "cannot connect output '{output}' ({output_type}) to input '{input}' ({input_type}): \
         the message types differ"
    )]
    TypeMismatch {
        /// Output port name.
        output: String,
        /// Its message type.
        output_type: &'static str,
        /// Input port name.
        input: String,
        /// Its message type.
        input_type: &'static str,
    },
    /// An input takes exactly one upstream output.
    #[error("input '{input}' is already connected; an input takes one upstream output")]
    AlreadyConnected {
        /// Input port name.
        input: String,
    },
    /// Wiring is fixed once the runtime has started.
    #[error("output '{output}' is already running; connect ports before starting the runtime")]
    Frozen {
        /// Output port name.
        output: String,
    },
    /// A buffer could not be configured.
    #[error("port '{port}': {source}")]
    Buffer {
        /// Port name.
        port: String,
        /// What the buffer layer said.
        #[source]
        source: streamlib_buffers::BuffersError,
    },
}
