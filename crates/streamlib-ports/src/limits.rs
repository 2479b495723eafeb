//! The largest frame anything read from outside (a stream description, a file header, a
//! pipeline property) may make streamlib allocate.

use crate::{FrameError, FrameLayout};

/// Caps on frame sizes taken from untrusted input, checked before a frame or a frame pool
/// is allocated.
///
/// Wire formats allow far more than a host can hold: RFC 4175 line numbers reach 32767, a
/// video header can claim 65535×65535. [`FrameLimits::DEFAULT`] (16384×16384, 2^28 pixels,
/// 1 GiB as RGBA) is what SDP parsing, the network receivers, the file reader's decoder,
/// the drawing and test pattern sources and `streamlib launch` enforce unless configured
/// otherwise.
///
/// ```
/// use streamlib_ports::FrameLimits;
///
/// let limits = FrameLimits::DEFAULT;
/// assert!(limits.check(1920, 1080).is_ok());
/// assert!(limits.check(32_767, 32_767).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameLimits {
    /// Widest frame, in pixels.
    pub max_width: u32,
    /// Tallest frame, in pixels.
    pub max_height: u32,
    /// Most pixels in one frame (width × height).
    pub max_pixels: u64,
}

impl FrameLimits {
    /// 16384×16384 and 2^28 pixels.
    pub const DEFAULT: Self = Self {
        max_width: 16_384,
        max_height: 16_384,
        max_pixels: 1 << 28,
    };

    /// Checks a `width`×`height` frame against the caps (a zero size is refused too).
    pub fn check(&self, width: u32, height: u32) -> Result<(), FrameError> {
        if width == 0 || height == 0 {
            return Err(FrameError::ZeroSize { width, height });
        }
        if width > self.max_width
            || height > self.max_height
            || u64::from(width) * u64::from(height) > self.max_pixels
        {
            return Err(FrameError::TooLarge {
                width,
                height,
                limits: *self,
            });
        }
        Ok(())
    }

    /// Checks a layout's size against the caps.
    pub fn check_layout(&self, layout: &FrameLayout) -> Result<(), FrameError> {
        self.check(layout.width(), layout.height())
    }
}

impl Default for FrameLimits {
    /// [`FrameLimits::DEFAULT`].
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn caps_each_side_and_the_area() {
        let l = FrameLimits::DEFAULT;
        assert_eq!(l.check(16_384, 16_384), Ok(()));
        assert!(l.check(16_385, 1).is_err());
        assert!(l.check(1, 16_385).is_err());
        assert!(l.check(0, 1).is_err());
        let tight = FrameLimits {
            max_pixels: 100,
            ..FrameLimits::DEFAULT
        };
        assert_eq!(tight.check(10, 10), Ok(()));
        let err = tight.check(10, 11).unwrap_err().to_string();
        assert_eq!(
            err,
            "a 10x11 frame is over the frame limits (16384x16384, 100 pixels)"
        );
    }
}
