//! ST 2110-20 samplings and how their pixel groups map to streamlib frames.
//!
//! | sampling | depth | pgroup | frame side |
//! |---|---|---|---|
//! | YCbCr-4:2:2 | 8 | 4 bytes / 2 px: Cb Y0 Cr Y1 | [`PixelFormat::Uyvy`], bytes copied as they are |
//! | YCbCr-4:2:2 | 10 | 5 bytes / 2 px: four 10-bit samples, big-endian | [`PixelFormat::Uyvy`]: 8-bit samples sent as `v << 2`, received as `v >> 2` (truncated) |
//! | RGB | 8 | 3 bytes / 1 px: R G B | [`PixelFormat::Rgba8`]: alpha dropped on send, 255 on receive |
//!
//! 10-bit video is kept at the codec layer: streamlib frames have no 10-bit format, so a
//! 10-bit stream is carried to and from 8-bit UYVY frames. 8 → 10 → 8 is lossless; a 10-bit
//! source from elsewhere loses its two low bits.

use std::fmt;

use streamlib_clock::Rational;
use streamlib_ports::{FrameLayout, FrameLimits, PixelFormat};

use crate::NetError;

/// A sampling and bit depth of ST 2110-20 that streamlib carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sampling {
    /// YCbCr 4:2:2, 8 bits per sample.
    YCbCr422Depth8,
    /// YCbCr 4:2:2, 10 bits per sample.
    YCbCr422Depth10,
    /// RGB 4:4:4, 8 bits per sample.
    RgbDepth8,
}

impl Sampling {
    /// Every sampling.
    pub const ALL: [Sampling; 3] = [
        Sampling::YCbCr422Depth8,
        Sampling::YCbCr422Depth10,
        Sampling::RgbDepth8,
    ];

    /// Bytes of one pixel group on the wire.
    pub fn pgroup_bytes(self) -> usize {
        match self {
            Sampling::YCbCr422Depth8 => 4,
            Sampling::YCbCr422Depth10 => 5,
            Sampling::RgbDepth8 => 3,
        }
    }

    /// Pixels in one pixel group.
    pub fn pgroup_pixels(self) -> usize {
        match self {
            Sampling::YCbCr422Depth8 | Sampling::YCbCr422Depth10 => 2,
            Sampling::RgbDepth8 => 1,
        }
    }

    /// The frame format this sampling is sent from and received into.
    pub fn pixel_format(self) -> PixelFormat {
        match self {
            Sampling::YCbCr422Depth8 | Sampling::YCbCr422Depth10 => PixelFormat::Uyvy,
            Sampling::RgbDepth8 => PixelFormat::Rgba8,
        }
    }

    /// Bits per sample.
    pub fn depth(self) -> u8 {
        match self {
            Sampling::YCbCr422Depth8 | Sampling::RgbDepth8 => 8,
            Sampling::YCbCr422Depth10 => 10,
        }
    }

    /// The SDP `sampling=` value.
    pub fn sdp_name(self) -> &'static str {
        match self {
            Sampling::YCbCr422Depth8 | Sampling::YCbCr422Depth10 => "YCbCr-4:2:2",
            Sampling::RgbDepth8 => "RGB",
        }
    }

    /// The sampling named `name` in SDP at `depth` bits, if supported.
    pub fn from_sdp(name: &str, depth: u8) -> Option<Self> {
        match (name, depth) {
            ("YCbCr-4:2:2", 8) => Some(Sampling::YCbCr422Depth8),
            ("YCbCr-4:2:2", 10) => Some(Sampling::YCbCr422Depth10),
            ("RGB", 8) => Some(Sampling::RgbDepth8),
            _ => None,
        }
    }

    /// Bytes a frame pixel occupies in the frame (2 for UYVY, 4 for RGBA).
    fn frame_bytes_per_pixel(self) -> usize {
        match self {
            Sampling::YCbCr422Depth8 | Sampling::YCbCr422Depth10 => 2,
            Sampling::RgbDepth8 => 4,
        }
    }

    /// The bytes of a frame row that `wire_len` bytes of whole pixel groups cover, starting at
    /// pixel `first_px`.
    fn row_span(self, wire_len: usize, first_px: usize) -> std::ops::Range<usize> {
        let groups = wire_len / self.pgroup_bytes();
        let start = first_px * self.frame_bytes_per_pixel();
        start..start + groups * self.pgroup_pixels() * self.frame_bytes_per_pixel()
    }

    /// Converts `wire.len() / pgroup_bytes` pixel groups of a frame row, starting at pixel
    /// `first_px`, to wire bytes. `row` must hold them (callers check).
    pub(crate) fn pack(self, row: &[u8], first_px: usize, wire: &mut [u8]) {
        let Some(src) = row.get(self.row_span(wire.len(), first_px)) else {
            return;
        };
        match self {
            Sampling::YCbCr422Depth8 => wire.copy_from_slice(src),
            Sampling::YCbCr422Depth10 => {
                for (out, px) in wire.chunks_exact_mut(5).zip(src.chunks_exact(4)) {
                    let v = (u64::from(px[0]) << 32)
                        | (u64::from(px[1]) << 22)
                        | (u64::from(px[2]) << 12)
                        | (u64::from(px[3]) << 2);
                    out.copy_from_slice(&v.to_be_bytes()[3..]);
                }
            }
            Sampling::RgbDepth8 => {
                for (out, px) in wire.chunks_exact_mut(3).zip(src.chunks_exact(4)) {
                    out.copy_from_slice(&px[..3]);
                }
            }
        }
    }

    /// Converts wire pixel groups back into a frame row at pixel `first_px`.
    pub(crate) fn unpack(self, wire: &[u8], row: &mut [u8], first_px: usize) {
        let Some(dst) = row.get_mut(self.row_span(wire.len(), first_px)) else {
            return;
        };
        match self {
            Sampling::YCbCr422Depth8 => dst.copy_from_slice(&wire[..dst.len()]),
            Sampling::YCbCr422Depth10 => {
                for (px, w) in dst.chunks_exact_mut(4).zip(wire.chunks_exact(5)) {
                    let v = (u64::from(w[0]) << 32)
                        | (u64::from(w[1]) << 24)
                        | (u64::from(w[2]) << 16)
                        | (u64::from(w[3]) << 8)
                        | u64::from(w[4]);
                    // Four 10-bit samples; keep each one's 8 high bits.
                    px[0] = (v >> 32) as u8;
                    px[1] = (v >> 22) as u8;
                    px[2] = (v >> 12) as u8;
                    px[3] = (v >> 2) as u8;
                }
            }
            Sampling::RgbDepth8 => {
                for (px, w) in dst.chunks_exact_mut(4).zip(wire.chunks_exact(3)) {
                    px[..3].copy_from_slice(w);
                    px[3] = 255;
                }
            }
        }
    }
}

impl fmt::Display for Sampling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}-bit", self.sdp_name(), self.depth())
    }
}

/// What a video stream carries: sampling, size and frame rate (progressive only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VideoFormat {
    /// Sampling and depth.
    pub sampling: Sampling,
    /// Width in pixels (even for 4:2:2).
    pub width: u32,
    /// Height in lines.
    pub height: u32,
    /// Frame rate (`exactframerate`).
    pub fps: Rational,
}

impl VideoFormat {
    /// The largest width or height accepted (line numbers and offsets are 15-bit fields).
    pub const MAX_SIDE: u32 = 32_767;

    /// A format, checked: sizes 1 ..= 32767 (the wire's limit) and within
    /// [`FrameLimits::DEFAULT`] (what a receiver may allocate), even width for 4:2:2.
    pub fn new(
        sampling: Sampling,
        width: u32,
        height: u32,
        fps: Rational,
    ) -> Result<Self, NetError> {
        let format = Self {
            sampling,
            width,
            height,
            fps,
        };
        format.check()?;
        Ok(format)
    }

    /// Checks sizes and rate (see [`new`](Self::new)).
    pub fn check(&self) -> Result<(), NetError> {
        let bad = |field, value: u32, reason| NetError::Config {
            handler: "VideoFormat",
            field,
            value: value.to_string(),
            reason,
        };
        if !(1..=Self::MAX_SIDE).contains(&self.width) {
            return Err(bad("width", self.width, "must be 1 ..= 32767"));
        }
        if !(1..=Self::MAX_SIDE).contains(&self.height) {
            return Err(bad("height", self.height, "must be 1 ..= 32767"));
        }
        // The wire allows 32767×32767 (4 GiB a frame as RGBA): cap what a peer's SDP can make
        // a receiver allocate.
        FrameLimits::DEFAULT
            .check(self.width, self.height)
            .map_err(|source| NetError::Frame {
                handler: "VideoFormat",
                source,
            })?;
        if !(self.width as usize).is_multiple_of(self.sampling.pgroup_pixels()) {
            return Err(bad("width", self.width, "must be even for 4:2:2"));
        }
        if self.fps.num == 0 || self.fps.den == 0 {
            return Err(bad(
                "fps",
                self.fps.num,
                "numerator and denominator must be > 0",
            ));
        }
        Ok(())
    }

    /// The frame layout frames of this stream have (tightly packed).
    pub fn layout(&self) -> Result<FrameLayout, NetError> {
        FrameLayout::new(self.width, self.height, self.sampling.pixel_format()).map_err(|source| {
            NetError::Frame {
                handler: "VideoFormat",
                source,
            }
        })
    }

    /// Wire bytes of one line.
    pub fn line_bytes(&self) -> usize {
        self.width as usize / self.sampling.pgroup_pixels() * self.sampling.pgroup_bytes()
    }

    /// Wire bytes of one frame (pixel data only).
    pub fn frame_bytes(&self) -> usize {
        self.line_bytes() * self.height as usize
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn ten_bit_pgroup_layout() {
        // Cb=0x80, Y0=0x10, Cr=0xf0, Y1=0xeb as 10-bit 0x200, 0x040, 0x3c0, 0x3ac.
        let mut wire = [0u8; 5];
        Sampling::YCbCr422Depth10.pack(&[0x80, 0x10, 0xf0, 0xeb], 0, &mut wire);
        let bits = (0x200u64 << 30) | (0x040 << 20) | (0x3c0 << 10) | 0x3ac;
        assert_eq!(wire, bits.to_be_bytes()[3..]);
        let mut row = [0u8; 4];
        Sampling::YCbCr422Depth10.unpack(&wire, &mut row, 0);
        assert_eq!(row, [0x80, 0x10, 0xf0, 0xeb]);
    }

    #[test]
    fn rgb_drops_and_restores_alpha() {
        let mut wire = [0u8; 6];
        Sampling::RgbDepth8.pack(&[0, 0, 0, 0, 1, 2, 3, 7, 4, 5, 6, 7], 1, &mut wire);
        assert_eq!(wire, [1, 2, 3, 4, 5, 6]);
        let mut row = [0u8; 8];
        Sampling::RgbDepth8.unpack(&wire, &mut row, 0);
        assert_eq!(row, [1, 2, 3, 255, 4, 5, 6, 255]);
    }

    #[test]
    fn sizes_over_the_frame_limits_are_refused() {
        let err = VideoFormat::new(Sampling::RgbDepth8, 32_767, 32_767, Rational::fps(30))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "VideoFormat: a 32767x32767 frame is over the frame limits (16384x16384, 268435456 pixels)"
        );
        assert!(VideoFormat::new(Sampling::RgbDepth8, 16_384, 16_384, Rational::fps(30)).is_ok());
    }

    #[test]
    fn odd_width_for_422_is_refused() {
        let err = VideoFormat::new(Sampling::YCbCr422Depth8, 3, 2, Rational::fps(30)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "VideoFormat: invalid width = 3: must be even for 4:2:2"
        );
        assert!(VideoFormat::new(Sampling::RgbDepth8, 3, 2, Rational::fps(30)).is_ok());
    }
}
