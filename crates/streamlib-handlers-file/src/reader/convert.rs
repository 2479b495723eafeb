//! Converting decoded frames with swscale straight into pooled frame buffers.

use std::os::raw::c_int;
use std::path::Path;

use ffmpeg::format::Pixel;
use ffmpeg::frame;
use ffmpeg::software::scaling;
use ffmpeg_next as ffmpeg;
use streamlib_ports::{FrameLayout, FramePool, OutputPort, PixelFormat, VideoFrame};

use crate::FileError;

/// Buffers the pool starts with, and the most it grows to when downstream holds frames.
const POOL_INITIAL: usize = 4;
const POOL_MAX: usize = 32;
/// Row strides are padded to this many bytes so swscale's SIMD paths apply.
const STRIDE_ALIGN: usize = 64;

/// The swscale pixel format for an output format.
pub(crate) fn sws_format(format: PixelFormat) -> Pixel {
    match format {
        PixelFormat::Rgba8 => Pixel::RGBA,
        PixelFormat::Bgra8 => Pixel::BGRA,
        PixelFormat::Gray8 => Pixel::GRAY8,
        PixelFormat::Nv12 => Pixel::NV12,
        PixelFormat::I420 => Pixel::YUV420P,
        PixelFormat::Uyvy => Pixel::UYVY422,
    }
}

/// What a scaler was built for; a change (resolution switch mid-stream) rebuilds it.
#[derive(Clone, Copy, PartialEq, Eq)]
struct SourceKey {
    format: Pixel,
    width: u32,
    height: u32,
    colorspace: c_int,
    full_range: bool,
}

/// A swscale context that may move between threads.
struct Scaler(scaling::Context);

// SAFETY: an SwsContext has no thread affinity; it is only touched through `&mut Converter`,
// so never from two threads at once. ffmpeg-next leaves it `!Send` only because it wraps a
// raw pointer.
unsafe impl Send for Scaler {}

/// Converts decoded frames into pooled frames of one output format and size (the first
/// frame's; later frames of another size are scaled to it).
pub(crate) struct Converter {
    format: PixelFormat,
    scaler: Option<(SourceKey, Scaler)>,
    pool: Option<FramePool>,
}

impl Converter {
    pub(crate) fn new(format: PixelFormat) -> Self {
        Self {
            format,
            scaler: None,
            pool: None,
        }
    }

    /// The pool, once the first frame fixed the size.
    pub(crate) fn pool(&self) -> Option<&FramePool> {
        self.pool.as_ref()
    }

    /// Converts `src` into a pooled frame (untimed) for `out`. `Ok(None)` when every pooled
    /// buffer is still held downstream: the skip is counted on `out`, and the caller counts
    /// the frame as dropped.
    pub(crate) fn convert(
        &mut self,
        src: &frame::Video,
        path: &Path,
        out: &OutputPort<VideoFrame>,
    ) -> Result<Option<VideoFrame>, FileError> {
        let bad = |reason: String| FileError::BadFrame {
            path: path.to_path_buf(),
            reason,
        };
        let pool = match &self.pool {
            Some(pool) => pool.clone(),
            None => {
                let layout = FrameLayout::new(src.width(), src.height(), self.format)
                    .and_then(|l| {
                        let stride = self
                            .format
                            .min_stride(src.width())
                            .next_multiple_of(STRIDE_ALIGN);
                        l.with_stride(u32::try_from(stride).unwrap_or(u32::MAX))
                    })
                    .map_err(|e| bad(e.to_string()))?;
                // Sized from what the output's readers can hold (at least POOL_MAX).
                let pool = FramePool::for_output(
                    format!("file-reader {}", path.display()),
                    layout,
                    POOL_INITIAL,
                    POOL_MAX,
                    out,
                )
                .map_err(|e| bad(e.to_string()))?;
                self.pool = Some(pool.clone());
                pool
            }
        };
        let layout = pool.layout();
        let key = source_key(src);
        if self.scaler.as_ref().is_none_or(|(k, _)| *k != key) {
            let mut context = scaling::Context::get(
                key.format,
                key.width,
                key.height,
                sws_format(self.format),
                layout.width(),
                layout.height(),
                scaling::Flags::BICUBIC,
            )
            .map_err(|e| {
                bad(format!(
                    "swscale cannot convert {:?} {}x{} to {}: {e}",
                    key.format, key.width, key.height, self.format
                ))
            })?;
            if self.format.has_alpha() && is_yuv(key.format) {
                set_colorspace(&mut context, key);
            }
            self.scaler = Some((key, Scaler(context)));
        }
        let Some((_, scaler)) = self.scaler.as_mut() else {
            return Ok(None);
        };
        let Some(mut buf) = pool.acquire_for(out) else {
            return Ok(None);
        };
        let (offsets, strides) = plane_layout(layout);
        let base = buf.as_mut_ptr();
        let len = buf.len();
        if offsets.iter().any(|&o| o != usize::MAX && o > len) || len < layout.buffer_len() {
            return Err(bad(format!(
                "pool buffer of {len} bytes is too small for {layout:?}"
            )));
        }
        let dst: [*mut u8; 4] = offsets.map(|o| {
            if o == usize::MAX {
                std::ptr::null_mut()
            } else {
                base.wrapping_add(o)
            }
        });
        let dst_stride: [c_int; 4] = strides.map(|s| c_int::try_from(s).unwrap_or(0));
        let src_height = c_int::try_from(src.height()).unwrap_or(0);
        // SAFETY: `scaler` was built for exactly `src`'s format and size (the key check above)
        // and `layout`'s format and size. The destination planes lie inside `buf` (its length
        // was checked against the layout, whose `buffer_len` covers every plane at these
        // strides), `buf` is uniquely borrowed for the call, and the source pointers and line
        // sizes come from a decoded AVFrame that FFmpeg keeps alive for the call.
        let rows = unsafe {
            let raw = src.as_ptr();
            ffmpeg::ffi::sws_scale(
                scaler.0.as_mut_ptr(),
                (*raw).data.as_ptr() as *const *const u8,
                (*raw).linesize.as_ptr(),
                0,
                src_height,
                dst.as_ptr(),
                dst_stride.as_ptr(),
            )
        };
        if rows <= 0 {
            return Err(bad(format!("swscale failed ({rows})")));
        }
        Ok(Some(pool.frame(buf)))
    }
}

/// Byte offsets (`usize::MAX` = unused) and strides of each plane of a layout.
fn plane_layout(layout: FrameLayout) -> ([usize; 4], [usize; 4]) {
    let s = layout.stride() as usize;
    let h = layout.height() as usize;
    let none = usize::MAX;
    match layout.format() {
        PixelFormat::Nv12 => ([0, s * h, none, none], [s, s, 0, 0]),
        PixelFormat::I420 => {
            let cs = s.div_ceil(2);
            let ch = h.div_ceil(2);
            ([0, s * h, s * h + cs * ch, none], [s, cs, cs, 0])
        }
        _ => ([0, none, none, none], [s, 0, 0, 0]),
    }
}

fn source_key(src: &frame::Video) -> SourceKey {
    // SAFETY: `src` wraps a valid AVFrame; reading two enum fields.
    let (colorspace, range) = unsafe {
        let raw = src.as_ptr();
        ((*raw).colorspace as c_int, (*raw).color_range)
    };
    SourceKey {
        format: src.format(),
        width: src.width(),
        height: src.height(),
        colorspace,
        full_range: range == ffmpeg::ffi::AVColorRange::AVCOL_RANGE_JPEG,
    }
}

fn is_yuv(format: Pixel) -> bool {
    let Some(desc) = format.descriptor() else {
        return false;
    };
    // SAFETY: a descriptor from `av_pix_fmt_desc_get` points at FFmpeg's static table.
    let flags = unsafe { (*desc.as_ptr()).flags };
    desc.nb_components() >= 3 && flags & (ffmpeg::ffi::AV_PIX_FMT_FLAG_RGB as u64) == 0
}

/// Uses the frame's matrix (BT.709, BT.2020, … as FFmpeg's own scale filter does) and range
/// instead of swscale's BT.601 limited-range default.
fn set_colorspace(context: &mut scaling::Context, key: SourceKey) {
    // SAFETY: `context` is a valid SwsContext; `sws_getCoefficients` returns a pointer into
    // swscale's static tables (the default table for unknown values).
    unsafe {
        let coefficients = ffmpeg::ffi::sws_getCoefficients(key.colorspace);
        let default = ffmpeg::ffi::sws_getCoefficients(ffmpeg::ffi::SWS_CS_DEFAULT as c_int);
        ffmpeg::ffi::sws_setColorspaceDetails(
            context.as_mut_ptr(),
            coefficients,
            c_int::from(key.full_range),
            default,
            1,
            0,
            1 << 16,
            1 << 16,
        );
    }
}
