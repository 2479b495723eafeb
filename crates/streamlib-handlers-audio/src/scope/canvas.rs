//! Drawing into a tightly packed RGBA8 frame: clear to a background row, spans, pixels.

/// An RGBA8 colour, straight alpha.
pub(crate) type Rgba = [u8; 4];

/// A frame's pixels, `width * 4` bytes per row, and the background they start from.
pub(crate) struct Canvas<'a> {
    px: &'a mut [u8],
    width: usize,
    height: usize,
    /// One row of the background (`width * 4` bytes).
    background: &'a [u8],
    /// Whether the background is all zero (a memset).
    transparent: bool,
}

impl<'a> Canvas<'a> {
    /// `px` holds `width * height` pixels (a shorter buffer draws only the rows it holds);
    /// `background` is one row of the background.
    pub(crate) fn new(
        px: &'a mut [u8],
        width: usize,
        height: usize,
        background: &'a [u8],
        transparent: bool,
    ) -> Self {
        let height = height.min(px.len() / (width * 4).max(1));
        Self {
            px,
            width,
            height,
            background,
            transparent,
        }
    }

    /// Every row set to the background: a copy per row, as fast as memcpy; a transparent
    /// one is a memset.
    pub(crate) fn clear(&mut self) {
        let rows = &mut self.px[..self.width * self.height * 4];
        if self.transparent {
            rows.fill(0);
            return;
        }
        for r in rows.chunks_exact_mut(self.width * 4) {
            r.copy_from_slice(self.background);
        }
    }

    /// Row `y` set to the background. Drawing a frame row by row, each row cleared just
    /// before its spans, touches memory once instead of twice (clear, then draw).
    pub(crate) fn clear_row(&mut self, y: usize) {
        if y >= self.height {
            return;
        }
        let row = &mut self.px[y * self.width * 4..(y + 1) * self.width * 4];
        if self.transparent {
            row.fill(0);
        } else {
            row.copy_from_slice(self.background);
        }
    }

    /// Pixels `x0..x1` of row `y` set to `color` (clipped).
    pub(crate) fn span(&mut self, y: usize, x0: usize, x1: usize, color: Rgba) {
        if y >= self.height {
            return;
        }
        let x1 = x1.min(self.width);
        if x0 >= x1 {
            return;
        }
        let start = (y * self.width + x0) * 4;
        let end = (y * self.width + x1) * 4;
        // Sixteen pixels a store where the span allows, then one at a time (doubling with
        // `copy_within` ran 2.5x slower on 20-pixel bars: a call per step).
        let mut block = [0u8; 64];
        for p in block.chunks_exact_mut(4) {
            p.copy_from_slice(&color);
        }
        let mut blocks = self.px[start..end].chunks_exact_mut(64);
        for b in &mut blocks {
            b.copy_from_slice(&block);
        }
        for p in blocks.into_remainder().chunks_exact_mut(4) {
            p.copy_from_slice(&color);
        }
    }

    /// Column `x`, rows `y0..=y1` (either order), set to `color`.
    pub(crate) fn vline(&mut self, x: usize, y0: usize, y1: usize, color: Rgba) {
        let (a, b) = if y0 <= y1 { (y0, y1) } else { (y1, y0) };
        if x >= self.width {
            return;
        }
        for y in a..=b.min(self.height.saturating_sub(1)) {
            let i = (y * self.width + x) * 4;
            self.px[i..i + 4].copy_from_slice(&color);
        }
    }

    /// One pixel (clipped).
    pub(crate) fn put(&mut self, x: usize, y: usize, color: Rgba) {
        if x < self.width && y < self.height {
            let i = (y * self.width + x) * 4;
            self.px[i..i + 4].copy_from_slice(&color);
        }
    }
}

/// The colour of a level `db` dBFS on a meter or a bar: green below -18, yellow to -6, red
/// above (the usual broadcast meter zones), opaque.
pub(crate) fn level_color(db: f64) -> Rgba {
    if db > -6.0 {
        [230, 40, 40, 255]
    } else if db > -18.0 {
        [230, 200, 40, 255]
    } else {
        [40, 200, 80, 255]
    }
}

/// Colour per row of a `height`-row scale from 0 dBFS (row 0) to `threshold` (the last row).
pub(crate) fn level_rows(height: usize, threshold: f64) -> Vec<Rgba> {
    (0..height)
        .map(|y| level_color(row_db(y, height, threshold)))
        .collect()
}

/// The level at row `y` of such a scale.
pub(crate) fn row_db(y: usize, height: usize, threshold: f64) -> f64 {
    if height <= 1 {
        return 0.0;
    }
    threshold * y as f64 / (height - 1) as f64
}

/// The row of level `db` on such a scale (clamped to it).
pub fn level_row(db: f64, height: u32, threshold: f64) -> u32 {
    if height <= 1 || db >= 0.0 {
        return 0;
    }
    let last = f64::from(height - 1);
    if db.is_nan() || db <= threshold {
        return height - 1;
    }
    (db / threshold * last).round() as u32
}
