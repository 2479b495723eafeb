//! File I/O for streamlib through FFmpeg (in development; see issue 4).

mod error;

pub use error::FileError;
