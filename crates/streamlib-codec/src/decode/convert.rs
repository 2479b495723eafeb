//! Decoded pictures (any FFmpeg pixel format, any size) into pooled RGBA frames, through
//! swscale straight into the pool's buffer.
//!
//! The encode direction ([`crate::scale::Scaler`]) reads a streamlib frame into an AVFrame;
//! this is the other way round, so it writes into pool memory instead.

use std::os::raw::c_int;

use ffmpeg::format::Pixel;
use ffmpeg::frame;
use ffmpeg::software::scaling;
use ffmpeg_next as ffmpeg;
use streamlib_ports::{FrameLayout, FramePool, PixelFormat, VideoFrame};

use super::DecodeError;

/// Buffers the pool starts with, and the default most it grows to.
const POOL_INITIAL: usize = 4;
const POOL_MAX: usize = 32;
/// Row strides are padded to this many bytes so swscale's SIMD paths apply.
const STRIDE_ALIGN: usize = 64;

/// What a scaler was built for; any change (a new resolution, a new matrix) rebuilds it.
#[derive(Clone, Copy, PartialEq, Eq)]
struct SourceKey {
    format: Pixel,
    width: u32,
    height: u32,
    colorspace: c_int,
    full_range: bool,
}

/// Converts decoded pictures into RGBA frames of one size.
pub(super) struct RgbaConverter {
    codec: &'static str,
    size: Option<(u32, u32)>,
    pool_max: usize,
    pool: Option<FramePool>,
    scaler: Option<(SourceKey, scaling::Context)>,
}

impl RgbaConverter {
    pub(super) fn new(codec: &'static str) -> Self {
        Self {
            codec,
            size: None,
            pool_max: POOL_MAX,
            pool: None,
            scaler: None,
        }
    }

    pub(super) fn set_size(&mut self, size: Option<(u32, u32)>) {
        if size.is_some() && size != self.size() {
            self.pool = None;
            self.scaler = None;
        }
        self.size = size;
    }

    pub(super) fn size(&self) -> Option<(u32, u32)> {
        self.size.or_else(|| {
            self.pool
                .as_ref()
                .map(|p| (p.layout().width(), p.layout().height()))
        })
    }

    pub(super) fn set_pool_max(&mut self, max: usize) {
        let max = max.max(2);
        if max != self.pool_max {
            self.pool_max = max;
            self.pool = None;
        }
    }

    pub(super) fn pool(&self) -> Option<&FramePool> {
        self.pool.as_ref()
    }

    /// `src` as a pooled RGBA frame, and whether it had to be resized; `None` when every
    /// pooled buffer is still held downstream.
    pub(super) fn convert(
        &mut self,
        src: &frame::Video,
    ) -> Result<Option<(VideoFrame, bool)>, DecodeError> {
        let codec = self.codec;
        let bad = |reason: String| DecodeError::Convert { codec, reason };
        let pool = match &self.pool {
            Some(pool) => pool.clone(),
            None => {
                let (width, height) = self.size.unwrap_or((src.width(), src.height()));
                let format = PixelFormat::Rgba8;
                let stride = format.min_stride(width).next_multiple_of(STRIDE_ALIGN);
                let layout = FrameLayout::new(width, height, format)
                    .and_then(|l| l.with_stride(u32::try_from(stride).unwrap_or(u32::MAX)))
                    .map_err(|e| bad(e.to_string()))?;
                let pool = FramePool::new(
                    format!("{codec} decoder"),
                    layout,
                    POOL_INITIAL.min(self.pool_max),
                    self.pool_max,
                )
                .map_err(|e| bad(e.to_string()))?;
                self.pool = Some(pool.clone());
                pool
            }
        };
        let layout = pool.layout();
        let key = source_key(src);
        let rescaled = (key.width, key.height) != (layout.width(), layout.height());
        if self.scaler.as_ref().is_none_or(|(k, _)| *k != key) {
            let mut context = scaling::Context::get(
                key.format,
                key.width,
                key.height,
                Pixel::RGBA,
                layout.width(),
                layout.height(),
                scaling::Flags::BILINEAR,
            )
            .map_err(|e| {
                bad(format!(
                    "swscale cannot convert {:?} {}x{} to RGBA {}x{}: {e}",
                    key.format,
                    key.width,
                    key.height,
                    layout.width(),
                    layout.height()
                ))
            })?;
            set_colorspace(&mut context, key);
            self.scaler = Some((key, context));
        }
        let Some((_, scaler)) = self.scaler.as_mut() else {
            return Ok(None);
        };
        let Ok(mut buf) = pool.acquire() else {
            return Ok(None);
        };
        if buf.len() < layout.buffer_len() {
            return Err(bad(format!(
                "pool buffer of {} bytes is too small for {layout:?}",
                buf.len()
            )));
        }
        let dst: [*mut u8; 4] = [
            buf.as_mut_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        ];
        let dst_stride: [c_int; 4] = [c_int::try_from(layout.stride()).unwrap_or(0), 0, 0, 0];
        let src_height = c_int::try_from(src.height()).unwrap_or(0);
        // SAFETY: `scaler` was built for exactly `src`'s format and size (the key check above)
        // and for RGBA at `layout`'s size. The destination is one plane of `stride` × `height`
        // bytes inside `buf` (its length was checked against the layout), uniquely borrowed
        // for the call; the source planes and line sizes belong to a decoded AVFrame that
        // stays alive for the call.
        let rows = unsafe {
            let raw = src.as_ptr();
            ffmpeg::ffi::sws_scale(
                scaler.as_mut_ptr(),
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
        Ok(Some((pool.frame(buf), rescaled)))
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

/// Uses the picture's matrix (BT.709, …) and range instead of swscale's BT.601
/// limited-range default; full-range RGB out.
fn set_colorspace(context: &mut scaling::Context, key: SourceKey) {
    // SAFETY: `context` is a valid SwsContext; `sws_getCoefficients` returns a pointer into
    // swscale's static tables (the BT.601 table for unknown values).
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
