//! The swscale picture converter: reads a frame's pooled bytes in place (no copy into an
//! `AVFrame`) and writes an FFmpeg picture of another pixel format and, optionally, size.
//!
//! The encoders ([`crate::encode`]) and the file writer use it: RGBA/BGRA, gray, NV12, I420
//! or UYVY in, yuv420p (or any format swscale writes) out, with BT.601 limited-range
//! coefficients for RGB to YUV.

use ffmpeg::format;
use ffmpeg::frame;
use ffmpeg_next as ffmpeg;
use streamlib_ports::{FrameLayout, PixelFormat};

/// Why a conversion could not be set up or run.
#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    /// swscale has no conversion between the two formats or sizes.
    #[error(
        "swscale cannot convert {from} {from_width}x{from_height} to {to:?} {to_width}x{to_height}"
    )]
    Unsupported {
        /// The input frames' pixel format.
        from: PixelFormat,
        /// The input width.
        from_width: u32,
        /// The input height.
        from_height: u32,
        /// The output pixel format.
        to: format::Pixel,
        /// The output width.
        to_width: u32,
        /// The output height.
        to_height: u32,
    },
    /// The frame's bytes are shorter than its layout needs.
    #[error("frame buffer has {actual} bytes, its layout needs {needed}")]
    ShortBuffer {
        /// Bytes the frame has.
        actual: usize,
        /// Bytes its layout needs.
        needed: usize,
    },
    /// The destination picture is not of the converter's output format and size.
    #[error(
        "destination picture is {actual_width}x{actual_height} {actual:?}, the converter writes {width}x{height} {expected:?}"
    )]
    WrongPicture {
        /// The converter's output format.
        expected: format::Pixel,
        /// The converter's output width.
        width: u32,
        /// The converter's output height.
        height: u32,
        /// The picture's format.
        actual: format::Pixel,
        /// The picture's width.
        actual_width: u32,
        /// The picture's height.
        actual_height: u32,
    },
    /// `sws_scale` returned an error.
    #[error("swscale failed ({0})")]
    Failed(i32),
}

/// FFmpeg's pixel format for a streamlib one.
pub fn ffmpeg_pixel(format: PixelFormat) -> format::Pixel {
    match format {
        PixelFormat::Rgba8 => format::Pixel::RGBA,
        PixelFormat::Bgra8 => format::Pixel::BGRA,
        PixelFormat::Gray8 => format::Pixel::GRAY8,
        PixelFormat::Nv12 => format::Pixel::NV12,
        PixelFormat::I420 => format::Pixel::YUV420P,
        PixelFormat::Uyvy => format::Pixel::UYVY422,
    }
}

/// A swscale context converting frames of one [`FrameLayout`] into pictures of one FFmpeg
/// format and size, reading straight from the frame's bytes.
///
/// An output one pixel narrower or shorter than the input (what 4:2:0 encoders need for odd
/// sizes) crops the last column or row instead of scaling; any other size scales
/// (bilinear).
pub struct Scaler {
    ctx: *mut ffmpeg::ffi::SwsContext,
    layout: FrameLayout,
    width: u32,
    height: u32,
    pixel: format::Pixel,
    /// Source rows read: the output height when cropping, else the input height.
    rows: u32,
}

// SAFETY: the SwsContext is owned by this value alone and used only through `&mut self`;
// swscale keeps no thread-local state, so moving it to another thread is sound.
unsafe impl Send for Scaler {}

impl std::fmt::Debug for Scaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scaler")
            .field("layout", &self.layout)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("pixel", &self.pixel)
            .finish()
    }
}

fn to_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

impl Scaler {
    /// A converter from frames of `layout` to `width`x`height` pictures of `pixel`.
    pub fn new(
        layout: FrameLayout,
        width: u32,
        height: u32,
        pixel: format::Pixel,
    ) -> Result<Self, ScaleError> {
        let crops = |input: u32, output: u32| output == input || output + 1 == input;
        let cropping = crops(layout.width(), width) && crops(layout.height(), height);
        let (src_w, src_h) = if cropping {
            (width, height)
        } else {
            (layout.width(), layout.height())
        };
        let flags = ffmpeg::ffi::SWS_BILINEAR | ffmpeg::ffi::SWS_ACCURATE_RND;
        let ctx = if width == 0 || height == 0 {
            std::ptr::null_mut()
        } else {
            // SAFETY: plain constructor call with valid formats and sizes; a null result is
            // handled below.
            unsafe {
                ffmpeg::ffi::sws_getContext(
                    to_i32(src_w),
                    to_i32(src_h),
                    ffmpeg_pixel(layout.format()).into(),
                    to_i32(width),
                    to_i32(height),
                    pixel.into(),
                    flags,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    std::ptr::null(),
                )
            }
        };
        if ctx.is_null() {
            return Err(ScaleError::Unsupported {
                from: layout.format(),
                from_width: layout.width(),
                from_height: layout.height(),
                to: pixel,
                to_width: width,
                to_height: height,
            });
        }
        Ok(Self {
            ctx,
            layout,
            width,
            height,
            pixel,
            rows: src_h,
        })
    }

    /// The layout of the frames it reads.
    pub fn input_layout(&self) -> FrameLayout {
        self.layout
    }

    /// The output format and size.
    pub fn output(&self) -> (format::Pixel, u32, u32) {
        (self.pixel, self.width, self.height)
    }

    /// A picture of the output format and size, for [`Scaler::run`] to write into.
    pub fn picture(&self) -> frame::Video {
        frame::Video::new(self.pixel, self.width, self.height)
    }

    /// Converts `bytes` (one frame of the input layout) into `picture`, which must be
    /// allocated, writable and of the output format and size.
    pub fn run(&mut self, bytes: &[u8], picture: &mut frame::Video) -> Result<(), ScaleError> {
        let layout = self.layout;
        let needed = layout.buffer_len();
        if bytes.len() < needed {
            return Err(ScaleError::ShortBuffer {
                actual: bytes.len(),
                needed,
            });
        }
        // SAFETY: reading the first data pointer of a valid AVFrame.
        let empty = unsafe { picture.is_empty() };
        if empty
            || picture.format() != self.pixel
            || picture.width() != self.width
            || picture.height() != self.height
        {
            return Err(ScaleError::WrongPicture {
                expected: self.pixel,
                width: self.width,
                height: self.height,
                actual: picture.format(),
                actual_width: picture.width(),
                actual_height: picture.height(),
            });
        }
        let stride = layout.stride() as usize;
        let rows = layout.height() as usize;
        let chroma_rows = rows.div_ceil(2);
        let base = bytes.as_ptr();
        let mut planes = [std::ptr::null::<u8>(); 4];
        let mut strides = [0i32; 4];
        let luma = stride * rows;
        // Offsets follow `PixelFormat::buffer_len`, checked above, so they stay inside `bytes`.
        let offsets: &[(usize, usize)] = match layout.format() {
            PixelFormat::Nv12 => &[(0, stride), (luma, stride)],
            PixelFormat::I420 => {
                let c = stride.div_ceil(2);
                &[(0, stride), (luma, c), (luma + c * chroma_rows, c)]
            }
            _ => &[(0, stride)],
        };
        for (i, &(offset, s)) in offsets.iter().enumerate() {
            // SAFETY: `offset` is within `bytes` (see above).
            planes[i] = unsafe { base.add(offset) };
            strides[i] = i32::try_from(s).unwrap_or(i32::MAX);
        }
        // SAFETY: `ctx` is a live SwsContext built for this layout and the output format and
        // size, which `picture` was checked to have; the source planes cover `rows` rows of
        // their strides inside `bytes`; the destination planes and line sizes come from the
        // allocated `picture`.
        let ret = unsafe {
            let dst = picture.as_mut_ptr();
            ffmpeg::ffi::sws_scale(
                self.ctx,
                planes.as_ptr(),
                strides.as_ptr(),
                0,
                to_i32(self.rows),
                (*dst).data.as_ptr(),
                (*dst).linesize.as_ptr(),
            )
        };
        if ret <= 0 {
            return Err(ScaleError::Failed(ret));
        }
        Ok(())
    }
}

impl Drop for Scaler {
    fn drop(&mut self) {
        // SAFETY: `ctx` came from sws_getContext and is freed exactly once, here.
        unsafe { ffmpeg::ffi::sws_freeContext(self.ctx) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rgba(width: u32, height: u32, rgba: [u8; 4]) -> (FrameLayout, Vec<u8>) {
        let layout = FrameLayout::new(width, height, PixelFormat::Rgba8)
            .unwrap_or_else(|e| panic!("layout: {e}"));
        let mut bytes = vec![0u8; layout.buffer_len()];
        for px in bytes.chunks_exact_mut(4) {
            px.copy_from_slice(&rgba);
        }
        (layout, bytes)
    }

    #[test]
    fn white_rgba_becomes_limited_range_white() {
        let (layout, bytes) = rgba(64, 48, [255, 255, 255, 255]);
        let mut scaler =
            Scaler::new(layout, 64, 48, format::Pixel::YUV420P).unwrap_or_else(|e| panic!("{e}"));
        let mut picture = scaler.picture();
        scaler
            .run(&bytes, &mut picture)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(picture.data(0).iter().take(64).all(|&y| y == 235));
        assert!(picture.data(1).iter().take(32).all(|&u| u == 128));
    }

    #[test]
    fn odd_size_crops_and_other_sizes_scale() {
        let (layout, bytes) = rgba(65, 49, [0, 0, 0, 255]);
        let mut crop =
            Scaler::new(layout, 64, 48, format::Pixel::YUV420P).unwrap_or_else(|e| panic!("{e}"));
        let mut picture = crop.picture();
        crop.run(&bytes, &mut picture)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(picture.data(0)[0], 16);
        let mut half =
            Scaler::new(layout, 32, 24, format::Pixel::YUV420P).unwrap_or_else(|e| panic!("{e}"));
        let mut small = half.picture();
        half.run(&bytes, &mut small)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(small.width(), 32);
    }

    #[test]
    fn short_buffer_and_wrong_picture_are_errors() {
        let (layout, bytes) = rgba(16, 16, [0, 0, 0, 255]);
        let mut scaler =
            Scaler::new(layout, 16, 16, format::Pixel::YUV420P).unwrap_or_else(|e| panic!("{e}"));
        let mut picture = scaler.picture();
        assert!(matches!(
            scaler.run(&bytes[..10], &mut picture),
            Err(ScaleError::ShortBuffer { .. })
        ));
        let mut wrong = frame::Video::new(format::Pixel::YUV420P, 8, 8);
        assert!(matches!(
            scaler.run(&bytes, &mut wrong),
            Err(ScaleError::WrongPicture { .. })
        ));
        assert!(Scaler::new(layout, 0, 16, format::Pixel::YUV420P).is_err());
    }
}
