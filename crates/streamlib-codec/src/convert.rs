//! Decoded pictures (any FFmpeg pixel format, any size) into pooled streamlib frames of one
//! format and size, through swscale straight into the pool's buffer, or by a plane copy when
//! the picture is already in that format and size.
//!
//! The one decode-side converter: the file reader (any negotiated format) and the video
//! decoders (RGBA) both use it. The encode direction is [`crate::scale::Scaler`].

use std::os::raw::c_int;

use ffmpeg::format::Pixel;
use ffmpeg::frame;
use ffmpeg::software::scaling;
use ffmpeg_next as ffmpeg;
use streamlib_ports::{FrameLayout, FramePool, OutputPort, PixelFormat, VideoFrame};

use crate::scale::ffmpeg_pixel;

/// Buffers the pool starts with, and the default most it grows to.
const POOL_INITIAL: usize = 4;
const POOL_MAX: usize = 32;
/// Row strides are padded to this many bytes so swscale's SIMD paths apply.
const STRIDE_ALIGN: usize = 64;

/// Why a picture could not be converted (the caller names the file or codec).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConvertError(pub String);

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

// SAFETY: an SwsContext has no thread affinity; it is only touched through `&mut
// FrameConverter`, so never from two threads at once. ffmpeg-next leaves it `!Send` only
// because it wraps a raw pointer.
unsafe impl Send for Scaler {}

/// How a decoded picture reached its pooled buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// The decoder's own format and size: copied plane by plane, no swscale pass.
    Copied,
    /// Converted (or scaled) by swscale.
    Scaled,
}

/// One converted picture.
#[derive(Debug)]
pub struct Converted {
    /// The pooled frame (untimed).
    pub frame: VideoFrame,
    /// How it got there.
    pub route: Route,
    /// Whether the picture's size differed from the output's (it was scaled to it).
    pub resized: bool,
}

/// Converts decoded pictures into pooled frames of one output format and size: the one set
/// with [`set_target`](Self::set_target), or the first picture's size when none is fixed
/// (later pictures of another size are scaled to it). A picture already in the output's
/// format and size is copied plane by plane instead: streamlib frames are one buffer with
/// one stride for every plane, while FFmpeg's decoders allocate each plane apart, so the
/// decoder's buffer cannot be wrapped.
pub struct FrameConverter {
    name: String,
    format: PixelFormat,
    /// The output size fixed by negotiation; `None`: the first picture's.
    size: Option<(u32, u32)>,
    pool_max: usize,
    flags: scaling::Flags,
    scaler: Option<(SourceKey, Scaler)>,
    pool: Option<FramePool>,
}

impl std::fmt::Debug for FrameConverter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameConverter")
            .field("name", &self.name)
            .field("format", &self.format)
            .field("size", &self.size())
            .finish()
    }
}

impl FrameConverter {
    /// Produces `format`, its pool named `name` (in pool errors and statistics), scaling
    /// bicubically.
    pub fn new(name: impl Into<String>, format: PixelFormat) -> Self {
        Self {
            name: name.into(),
            format,
            size: None,
            pool_max: POOL_MAX,
            flags: scaling::Flags::BICUBIC,
            scaler: None,
            pool: None,
        }
    }

    /// Scales bilinearly instead: cheaper, for live decoders where a picture of another size
    /// is the exception.
    pub fn bilinear(mut self) -> Self {
        self.flags = scaling::Flags::BILINEAR;
        self
    }

    /// Produces `format` at `size` (the first picture's when `None`) from now on; a change
    /// drops the pool and scaler built for the previous target.
    pub fn set_target(&mut self, format: PixelFormat, size: Option<(u32, u32)>) {
        let pool_size = self
            .pool
            .as_ref()
            .map(|p| (p.layout().width(), p.layout().height()));
        if format != self.format || (size.is_some() && size != pool_size) {
            self.pool = None;
            self.scaler = None;
        }
        self.format = format;
        self.size = size;
    }

    /// The most buffers its pool may hold when it has no output to size it from (at least
    /// 2; a change drops the pool).
    pub fn set_pool_max(&mut self, max: usize) {
        let max = max.max(2);
        if max != self.pool_max {
            self.pool_max = max;
            self.pool = None;
        }
    }

    /// The output format.
    pub fn format(&self) -> PixelFormat {
        self.format
    }

    /// The output size: the fixed one, or the first picture's once it came.
    pub fn size(&self) -> Option<(u32, u32)> {
        self.size.or_else(|| {
            self.pool
                .as_ref()
                .map(|p| (p.layout().width(), p.layout().height()))
        })
    }

    /// The pool, once the first picture fixed the size.
    pub fn pool(&self) -> Option<&FramePool> {
        self.pool.as_ref()
    }

    /// Converts `src` into a pooled frame (untimed). With `out`, the pool is sized from
    /// what `out`'s readers can hold (and takes `out`'s pool provider) and an empty pool's
    /// skip is counted on `out`. `Ok(None)` when every pooled buffer is still held
    /// downstream: the caller counts the picture as dropped.
    pub fn convert(
        &mut self,
        src: &frame::Video,
        out: Option<&OutputPort<VideoFrame>>,
    ) -> Result<Option<Converted>, ConvertError> {
        let bad = ConvertError;
        let pool = match &self.pool {
            Some(pool) => pool.clone(),
            None => {
                let (width, height) = self.size.unwrap_or((src.width(), src.height()));
                let layout = FrameLayout::new(width, height, self.format)
                    .and_then(|l| {
                        let stride = self.format.min_stride(width).next_multiple_of(STRIDE_ALIGN);
                        l.with_stride(u32::try_from(stride).unwrap_or(u32::MAX))
                    })
                    .map_err(|e| bad(e.to_string()))?;
                let pool = match out {
                    // Sized from what the output's readers can hold (at least `pool_max`).
                    Some(out) => FramePool::for_output(
                        self.name.clone(),
                        layout,
                        POOL_INITIAL,
                        self.pool_max,
                        out,
                    ),
                    None => FramePool::new(
                        self.name.clone(),
                        layout,
                        POOL_INITIAL.min(self.pool_max),
                        self.pool_max,
                    ),
                }
                .map_err(|e| bad(e.to_string()))?;
                self.pool = Some(pool.clone());
                pool
            }
        };
        let layout = pool.layout();
        let key = source_key(src);
        let resized = (key.width, key.height) != (layout.width(), layout.height());
        let native = key.format == ffmpeg_pixel(self.format) && !resized && positive_strides(src);
        if !native && self.scaler.as_ref().is_none_or(|(k, _)| *k != key) {
            let mut context = scaling::Context::get(
                key.format,
                key.width,
                key.height,
                ffmpeg_pixel(self.format),
                layout.width(),
                layout.height(),
                self.flags,
            )
            .map_err(|e| {
                bad(format!(
                    "swscale cannot convert {:?} {}x{} to {} {}x{}: {e}",
                    key.format,
                    key.width,
                    key.height,
                    self.format,
                    layout.width(),
                    layout.height()
                ))
            })?;
            if self.format.has_alpha() && is_yuv(key.format) {
                set_colorspace(&mut context, key);
            }
            self.scaler = Some((key, Scaler(context)));
        }
        let buf = match out {
            Some(out) => pool.acquire_for(out),
            None => pool.acquire().ok(),
        };
        let Some(mut buf) = buf else {
            return Ok(None);
        };
        let (offsets, strides) = plane_layout(layout);
        let len = buf.len();
        if offsets.iter().any(|&o| o != usize::MAX && o > len) || len < layout.buffer_len() {
            return Err(bad(format!(
                "pool buffer of {len} bytes is too small for {layout:?}"
            )));
        }
        if native {
            copy_planes(src, layout, &mut buf).map_err(bad)?;
            return Ok(Some(Converted {
                frame: pool.frame(buf),
                route: Route::Copied,
                resized,
            }));
        }
        let Some((_, scaler)) = self.scaler.as_mut() else {
            return Ok(None);
        };
        let base = buf.as_mut_ptr();
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
        Ok(Some(Converted {
            frame: pool.frame(buf),
            route: Route::Scaled,
            resized,
        }))
    }
}

/// The streamlib format a decoder's pixel format is, if it is one.
pub fn native_format(pixel: Pixel) -> Option<PixelFormat> {
    PixelFormat::ALL
        .iter()
        .copied()
        .find(|&f| ffmpeg_pixel(f) == pixel)
}

/// The streamlib format closest to `pixel` (what to convert to when it is none of them):
/// 4:2:0 YUV to I420, 4:2:2 to UYVY, one component to Gray8, the rest (RGB, 4:4:4) to
/// RGBA, so no chroma resolution is lost that a cheaper format could keep.
pub fn nearest_format(pixel: Pixel) -> PixelFormat {
    if let Some(native) = native_format(pixel) {
        return native;
    }
    let Some(desc) = pixel.descriptor() else {
        return PixelFormat::Rgba8;
    };
    if desc.nb_components() <= 2 {
        return PixelFormat::Gray8;
    }
    if !is_yuv(pixel) {
        return PixelFormat::Rgba8;
    }
    match (desc.log2_chroma_w(), desc.log2_chroma_h()) {
        (1, 1) => PixelFormat::I420,
        (1, 0) => PixelFormat::Uyvy,
        _ => PixelFormat::Rgba8,
    }
}

/// Whether every plane of `src` has a positive line size (a bottom-up frame goes through
/// swscale instead of the plane copy).
fn positive_strides(src: &frame::Video) -> bool {
    // SAFETY: `src` wraps a valid AVFrame; reading its line sizes.
    let linesize = unsafe { (*src.as_ptr()).linesize };
    let planes = src.planes();
    planes > 0 && linesize.iter().take(planes).all(|&l| l > 0)
}

/// Copies the planes of `src` (in `layout`'s format and size) into `dst`, row by row.
fn copy_planes(src: &frame::Video, layout: FrameLayout, dst: &mut [u8]) -> Result<(), String> {
    let (offsets, strides) = plane_layout(layout);
    let (w, h) = (layout.width() as usize, layout.height() as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    // (bytes per row, rows) of each plane.
    let planes: &[(usize, usize)] = match layout.format() {
        PixelFormat::I420 => &[(w, h), (cw, ch), (cw, ch)],
        PixelFormat::Nv12 => &[(w, h), (2 * cw, ch)],
        format => &[(format.min_stride(layout.width()), h)],
    };
    if src.planes() < planes.len() {
        return Err(format!(
            "the decoded frame has {} planes, {} has {}",
            src.planes(),
            layout.format(),
            planes.len()
        ));
    }
    for (i, &(row, rows)) in planes.iter().enumerate() {
        let (data, line) = (src.data(i), src.stride(i));
        let (offset, stride) = (offsets[i], strides[i]);
        for r in 0..rows {
            let from = data.get(r * line..r * line + row);
            let to = dst.get_mut(offset + r * stride..offset + r * stride + row);
            match (from, to) {
                (Some(from), Some(to)) => to.copy_from_slice(from),
                _ => return Err(format!("plane {i} row {r} is outside the frame")),
            }
        }
    }
    Ok(())
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
