//! Text for the `Drawing` handler: fontdue rasterises each glyph once per size, the coverage
//! bitmap is cached, and drawing blends cached coverage onto the premultiplied canvas with
//! exact integer maths. After warm-up, drawing text allocates nothing.

use std::collections::HashMap;
use std::path::Path;

use fontdue::{Font, FontSettings};
use tiny_skia::{Color, PixmapMut};

use super::{FontSource, LineMetrics};
use crate::VideoError;

/// Where [`FontSource::System`] looks, in order: the DejaVu Sans locations of the common Linux
/// and BSD distributions (Debian/Ubuntu's `fonts-dejavu-core` first).
const SYSTEM_FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/DejaVuSans.ttf",
    "/usr/local/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/local/share/fonts/DejaVuSans.ttf",
];

/// Text sizes accepted, in pixels; outside it nothing is drawn.
const MAX_SIZE_PX: f32 = 4096.0;

/// Bound on cached glyphs: text whose size changes every frame would otherwise grow the cache
/// without end. When reached, the cache is emptied and refilled.
const MAX_CACHED_GLYPHS: usize = 4096;

/// The largest font file read: real fonts are a few MiB at most (Noto CJK about 20), and a
/// path from a pipeline must not make the process read a huge file into memory.
pub(crate) const MAX_FONT_BYTES: u64 = 32 << 20;

/// Reads a font file: a regular file (no FIFO, device or `/dev/stdin` that would block or never
/// end) of at most [`MAX_FONT_BYTES`], read with that bound even if it grows meanwhile.
fn read_font_file(path: &Path) -> Result<Vec<u8>, VideoError> {
    use std::io::Read as _;
    let io = |source| VideoError::FontIo {
        path: path.display().to_string(),
        source,
    };
    let refuse = |why: String| io(std::io::Error::new(std::io::ErrorKind::InvalidInput, why));
    // `metadata` follows symlinks: a link to a regular file is fine, a link to a FIFO is not.
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(refuse("not a regular file".to_owned()));
    }
    if meta.len() > MAX_FONT_BYTES {
        return Err(refuse(format!(
            "{} bytes, over the {MAX_FONT_BYTES}-byte limit for a font",
            meta.len()
        )));
    }
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_FONT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_FONT_BYTES {
        return Err(refuse(format!(
            "over the {MAX_FONT_BYTES}-byte limit for a font"
        )));
    }
    Ok(bytes)
}

fn load_font(source: FontSource) -> Result<Font, VideoError> {
    match source {
        FontSource::Bytes(bytes) => parse(bytes, "supplied bytes"),
        FontSource::Path(path) => {
            let bytes = read_font_file(&path)?;
            parse(bytes, &path.display().to_string())
        }
        FontSource::System => {
            for candidate in SYSTEM_FONT_PATHS {
                // A missing or unreadable candidate is not an error: the next one may exist.
                if let Ok(bytes) = read_font_file(Path::new(candidate)) {
                    return parse(bytes, candidate);
                }
            }
            Err(VideoError::NoSystemFont {
                searched: SYSTEM_FONT_PATHS.join(", "),
            })
        }
    }
}

fn parse(bytes: Vec<u8>, origin: &str) -> Result<Font, VideoError> {
    let invalid = |reason: &str| VideoError::InvalidFont {
        origin: origin.to_owned(),
        reason: reason.to_owned(),
    };
    let font = Font::from_bytes(bytes, FontSettings::default()).map_err(invalid)?;
    if font.glyph_count() == 0 {
        return Err(invalid("the font has no glyphs"));
    }
    Ok(font)
}

/// A rasterised glyph: fontdue's metrics and its coverage bitmap (row-major, top row first).
struct CachedGlyph {
    xmin: i32,
    ymin: i32,
    width: usize,
    height: usize,
    advance: f32,
    coverage: Box<[u8]>,
}

/// Cache key: the character and the size in half pixels.
type GlyphKey = (char, u32);

/// A font and its glyph cache.
pub(crate) struct TextRenderer {
    font: Font,
    glyphs: HashMap<GlyphKey, CachedGlyph>,
}

/// The size actually rasterised (rounded to 0.5 px) and its cache key component, or `None`
/// for sizes that draw nothing.
fn quantize(size_px: f32) -> Option<(f32, u32)> {
    if !(size_px > 0.0 && size_px <= MAX_SIZE_PX) {
        return None;
    }
    let halves = (size_px * 2.0).round().max(1.0);
    // In range 1..=8192 after the check above, so the cast is exact.
    Some((halves / 2.0, halves as u32))
}

impl TextRenderer {
    /// Loads and validates the font now, so configuration errors surface at construction.
    pub(crate) fn load(source: FontSource) -> Result<Self, VideoError> {
        Ok(Self {
            font: load_font(source)?,
            glyphs: HashMap::new(),
        })
    }

    pub(crate) fn line_metrics(&self, size_px: f32) -> Option<LineMetrics> {
        let (px, _) = quantize(size_px)?;
        let m = self.font.horizontal_line_metrics(px)?;
        Some(LineMetrics {
            ascent: m.ascent,
            descent: m.descent,
            line_height: m.new_line_size,
        })
    }

    /// Advance width of `text` at `size_px`, kerning included. Reads the cache where it can;
    /// never rasterises.
    pub(crate) fn measure(&self, text: &str, size_px: f32) -> f32 {
        let Some((px, key)) = quantize(size_px) else {
            return 0.0;
        };
        let mut pen = 0.0;
        let mut prev = None;
        for c in text.chars() {
            pen += self.kern(prev, c, px);
            pen += match self.glyphs.get(&(c, key)) {
                Some(glyph) => glyph.advance,
                None => self.font.metrics(c, px).advance_width,
            };
            prev = Some(c);
        }
        pen
    }

    fn kern(&self, prev: Option<char>, c: char, px: f32) -> f32 {
        prev.and_then(|p| self.font.horizontal_kern(p, c, px))
            .unwrap_or(0.0)
    }

    fn glyph(&mut self, c: char, px: f32, key: u32) -> &CachedGlyph {
        if !self.glyphs.contains_key(&(c, key)) && self.glyphs.len() >= MAX_CACHED_GLYPHS {
            self.glyphs.clear();
        }
        let font = &self.font;
        self.glyphs.entry((c, key)).or_insert_with(|| {
            let (m, coverage) = font.rasterize(c, px);
            CachedGlyph {
                xmin: m.xmin,
                ymin: m.ymin,
                width: m.width,
                height: m.height,
                advance: m.advance_width,
                coverage: coverage.into_boxed_slice(),
            }
        })
    }

    /// Draws `text` with its baseline starting at (`x`, `y_baseline`); returns the advance.
    pub(crate) fn draw(
        &mut self,
        canvas: &mut PixmapMut<'_>,
        text: &str,
        x: f32,
        y_baseline: f32,
        size_px: f32,
        color: Color,
    ) -> f32 {
        let Some((px, key)) = quantize(size_px) else {
            return 0.0;
        };
        if !(x.is_finite() && y_baseline.is_finite()) {
            return 0.0;
        }
        let c = color.premultiply().to_color_u8();
        let src = [c.red(), c.green(), c.blue(), c.alpha()];
        let (width, height) = (canvas.width() as usize, canvas.height() as usize);
        let data = canvas.data_mut();
        // Glyphs sit on whole pixels: the pen is rounded, the bitmaps are not resampled.
        let baseline = y_baseline.round() as i64;
        let mut pen = 0.0;
        let mut prev = None;
        for ch in text.chars() {
            pen += self.kern(prev, ch, px);
            prev = Some(ch);
            let glyph = self.glyph(ch, px, key);
            let left = (x + pen).round() as i64 + i64::from(glyph.xmin);
            let top = baseline - i64::from(glyph.ymin) - glyph.height as i64;
            blit_coverage(data, width, height, glyph, left, top, src);
            pen += glyph.advance;
        }
        pen
    }
}

/// Blends a glyph's coverage at (`left`, `top`), clipped to the canvas.
fn blit_coverage(
    data: &mut [u8],
    width: usize,
    height: usize,
    glyph: &CachedGlyph,
    left: i64,
    top: i64,
    src: [u8; 4],
) {
    let (w, h) = (glyph.width as i64, glyph.height as i64);
    let col_start = (-left).clamp(0, w);
    let col_end = (width as i64 - left).clamp(col_start, w);
    let row_start = (-top).clamp(0, h);
    let row_end = (height as i64 - top).clamp(row_start, h);
    for row in row_start..row_end {
        // Non-negative and in range by the clamps above.
        let cov_row = &glyph.coverage[(row * w) as usize..((row + 1) * w) as usize];
        let y = (top + row) as usize;
        for col in col_start..col_end {
            let cov = cov_row[col as usize];
            if cov == 0 {
                continue;
            }
            let i = (y * width + (left + col) as usize) * 4;
            if let Some(px) = data.get_mut(i..i + 4) {
                blend_pixel(px, src, cov);
            }
        }
    }
}

/// Source-over of a premultiplied colour scaled by `coverage` onto a premultiplied pixel,
/// rounded once to nearest: `out = (src·cov·255 + dst·(255² − srcA·cov)) / 255²`.
#[inline]
pub(crate) fn blend_pixel(dst: &mut [u8], src: [u8; 4], coverage: u8) {
    const FULL: u32 = 255 * 255;
    let cov = u32::from(coverage);
    if cov == 255 && src[3] == 255 {
        dst.copy_from_slice(&src);
        return;
    }
    let inv = FULL - u32::from(src[3]) * cov;
    for (d, s) in dst.iter_mut().zip(src) {
        // At most 2 * 255³: fits u32.
        let num = u32::from(s) * cov * 255 + u32::from(*d) * inv;
        // Valid premultiplied inputs cannot exceed 255; the clamp guards arbitrary canvases.
        *d = ((num + FULL / 2) / FULL).min(255) as u8;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes_round_to_half_pixels() {
        assert_eq!(quantize(12.2), Some((12.0, 24)));
        assert_eq!(quantize(12.3), Some((12.5, 25)));
        assert_eq!(quantize(0.1), Some((0.5, 1)));
        assert_eq!(quantize(0.0), None);
        assert_eq!(quantize(-3.0), None);
        assert_eq!(quantize(f32::NAN), None);
        assert_eq!(quantize(5000.0), None);
    }

    fn premultiplied() -> impl Strategy<Value = [u8; 4]> {
        (0u8..=255).prop_flat_map(|a| (0..=a, 0..=a, 0..=a).prop_map(move |(r, g, b)| [r, g, b, a]))
    }

    proptest! {
        #[test]
        fn blend_matches_source_over(src in premultiplied(), dst in premultiplied(), cov in 0u8..=255) {
            let mut out = dst;
            blend_pixel(&mut out, src, cov);
            let k = f64::from(cov) / 255.0;
            let sa = f64::from(src[3]) * k;
            for i in 0..4 {
                let expected = f64::from(src[i]) * k + f64::from(dst[i]) * (1.0 - sa / 255.0);
                // Rounded once: within half a step of the exact value.
                prop_assert!((f64::from(out[i]) - expected).abs() <= 0.5 + 1e-9, "{out:?} vs {expected} ({i})");
                prop_assert!(out[i] <= out[3], "stays premultiplied: {out:?}");
            }
            if cov == 255 && src[3] == 255 {
                prop_assert_eq!(out, src);
            }
            if cov == 0 {
                prop_assert_eq!(out, dst);
            }
        }
    }
}
