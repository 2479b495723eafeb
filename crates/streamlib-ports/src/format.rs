use std::fmt;

use crate::FrameError;

/// Pixel formats frames can carry.
///
/// `stride` is always the byte length of one row of the first plane. Chroma planes of planar
/// formats are tightly derived from it: NV12's interleaved UV plane has the same stride and
/// `ceil(height / 2)` rows; I420's U and V planes each have stride `ceil(stride / 2)` and
/// `ceil(height / 2)` rows, following the luma plane in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// 8-bit R, G, B, A, interleaved.
    Rgba8,
    /// 8-bit B, G, R, A, interleaved.
    Bgra8,
    /// 8-bit luma only.
    Gray8,
    /// 8-bit 4:2:0: a Y plane, then one interleaved UV plane.
    Nv12,
    /// 8-bit 4:2:0: Y, U and V planes.
    I420,
    /// 8-bit 4:2:2 packed as U Y V Y (two pixels in four bytes).
    Uyvy,
}

impl PixelFormat {
    /// Every supported format.
    pub const ALL: [PixelFormat; 6] = [
        PixelFormat::Rgba8,
        PixelFormat::Bgra8,
        PixelFormat::Gray8,
        PixelFormat::Nv12,
        PixelFormat::I420,
        PixelFormat::Uyvy,
    ];

    /// Lower-case name (`"rgba8"`, `"nv12"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            PixelFormat::Rgba8 => "rgba8",
            PixelFormat::Bgra8 => "bgra8",
            PixelFormat::Gray8 => "gray8",
            PixelFormat::Nv12 => "nv12",
            PixelFormat::I420 => "i420",
            PixelFormat::Uyvy => "uyvy",
        }
    }

    /// Whether the format carries an alpha channel.
    pub fn has_alpha(self) -> bool {
        matches!(self, PixelFormat::Rgba8 | PixelFormat::Bgra8)
    }

    /// Smallest stride, in bytes, of a row `width` pixels wide.
    pub fn min_stride(self, width: u32) -> usize {
        let w = width as usize;
        match self {
            PixelFormat::Rgba8 | PixelFormat::Bgra8 => w * 4,
            PixelFormat::Gray8 | PixelFormat::I420 => w,
            // The interleaved UV plane holds ceil(w / 2) pairs: an odd width needs one more.
            PixelFormat::Nv12 => w.div_ceil(2) * 2,
            PixelFormat::Uyvy => w.div_ceil(2) * 4,
        }
    }

    /// Bytes a frame of `height` rows with `stride` needs, all planes included.
    pub fn buffer_len(self, height: u32, stride: u32) -> usize {
        let h = height as usize;
        let s = stride as usize;
        let chroma_rows = h.div_ceil(2);
        match self {
            PixelFormat::Rgba8 | PixelFormat::Bgra8 | PixelFormat::Gray8 | PixelFormat::Uyvy => {
                s * h
            }
            PixelFormat::Nv12 => s * h + s * chroma_rows,
            PixelFormat::I420 => s * h + 2 * s.div_ceil(2) * chroma_rows,
        }
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The geometry of a frame: size, format and row stride.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameLayout {
    width: u32,
    height: u32,
    format: PixelFormat,
    stride: u32,
}

impl FrameLayout {
    /// A tightly packed layout (stride = the format's minimum).
    pub fn new(width: u32, height: u32, format: PixelFormat) -> Result<Self, FrameError> {
        if width == 0 || height == 0 {
            return Err(FrameError::ZeroSize { width, height });
        }
        let stride =
            u32::try_from(format.min_stride(width)).map_err(|_| FrameError::StrideTooSmall {
                format,
                width,
                stride: u32::MAX,
                min: format.min_stride(width),
            })?;
        Ok(Self {
            width,
            height,
            format,
            stride,
        })
    }

    /// The same layout with a larger row stride (padding at the end of rows).
    pub fn with_stride(mut self, stride: u32) -> Result<Self, FrameError> {
        let min = self.format.min_stride(self.width);
        if (stride as usize) < min {
            return Err(FrameError::StrideTooSmall {
                format: self.format,
                width: self.width,
                stride,
                min,
            });
        }
        self.stride = stride;
        Ok(self)
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Pixel format.
    pub fn format(&self) -> PixelFormat {
        self.format
    }

    /// Bytes per row of the first plane.
    pub fn stride(&self) -> u32 {
        self.stride
    }

    /// Bytes a buffer for this layout needs.
    pub fn buffer_len(&self) -> usize {
        self.format.buffer_len(self.height, self.stride)
    }

    /// Checks that a buffer of `actual` bytes can hold a frame of this layout.
    pub fn check_buffer(&self, actual: usize) -> Result<(), FrameError> {
        let required = self.buffer_len();
        if actual < required {
            return Err(FrameError::BufferTooSmall {
                width: self.width,
                height: self.height,
                format: self.format,
                stride: self.stride,
                required,
                actual,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn buffer_lengths() {
        let l = |w, h, f| FrameLayout::new(w, h, f).unwrap().buffer_len();
        assert_eq!(l(1920, 1080, PixelFormat::Rgba8), 1920 * 1080 * 4);
        assert_eq!(l(1920, 1080, PixelFormat::Nv12), 1920 * 1080 * 3 / 2);
        assert_eq!(l(1920, 1080, PixelFormat::I420), 1920 * 1080 * 3 / 2);
        // Odd sizes round chroma up.
        assert_eq!(l(3, 3, PixelFormat::I420), 9 + 2 * 2 * 2);
        assert_eq!(l(3, 1, PixelFormat::Uyvy), 8);
        assert_eq!(l(5, 2, PixelFormat::Gray8), 10);
    }

    #[test]
    fn bad_layouts_state_the_numbers() {
        assert_eq!(
            FrameLayout::new(0, 10, PixelFormat::Rgba8).unwrap_err(),
            FrameError::ZeroSize {
                width: 0,
                height: 10
            }
        );
        let err = FrameLayout::new(10, 10, PixelFormat::Rgba8)
            .unwrap()
            .with_stride(39)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "stride 39 is too small for a 10-pixel-wide rgba8 row (needs at least 40)"
        );
        let err = FrameLayout::new(4, 4, PixelFormat::Rgba8)
            .unwrap()
            .check_buffer(10)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "buffer of 10 bytes is too small for a 4x4 rgba8 frame with stride 16: 64 bytes are needed"
        );
    }
}
