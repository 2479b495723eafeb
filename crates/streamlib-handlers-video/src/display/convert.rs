//! Frame pixels to minifb's `0x00RRGGBB` buffer.

use streamlib_ports::{AlphaMode, FrameLayout, PixelFormat};

/// Converts one frame into `out` (`width * height` pixels, row-major, no padding).
///
/// `Rgba8` / `Bgra8` with straight alpha are composited over black (`c * a / 255`, rounded);
/// premultiplied colour over black is the colour itself. `Gray8` is repeated in R, G and B.
/// Other formats leave `out` untouched (the handler refuses them before they get here).
pub(super) fn to_0rgb(bytes: &[u8], layout: FrameLayout, alpha: AlphaMode, out: &mut [u32]) {
    let width = layout.width() as usize;
    let stride = layout.stride() as usize;
    let rows = bytes.chunks(stride).zip(out.chunks_exact_mut(width));
    match layout.format() {
        PixelFormat::Rgba8 => {
            rows.for_each(|(src, dst)| row_4(&src[..width * 4], dst, alpha, [0, 1, 2]));
        }
        PixelFormat::Bgra8 => {
            rows.for_each(|(src, dst)| row_4(&src[..width * 4], dst, alpha, [2, 1, 0]));
        }
        PixelFormat::Gray8 => rows.for_each(|(src, dst)| {
            for (d, &v) in dst.iter_mut().zip(&src[..width]) {
                let v = u32::from(v);
                *d = (v << 16) | (v << 8) | v;
            }
        }),
        PixelFormat::Nv12 | PixelFormat::I420 | PixelFormat::Uyvy => {}
    }
}

/// One row of 4-byte pixels; `order` gives the byte index of R, G and B.
fn row_4(src: &[u8], dst: &mut [u32], alpha: AlphaMode, [r, g, b]: [usize; 3]) {
    let straight = alpha == AlphaMode::Straight;
    for (d, px) in dst.iter_mut().zip(src.chunks_exact(4)) {
        let a = px[3];
        let channel = |i: usize| {
            let c = u32::from(px[i]);
            if straight && a != 255 {
                (c * u32::from(a) + 127) / 255
            } else {
                c
            }
        };
        *d = (channel(r) << 16) | (channel(g) << 8) | channel(b);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn convert(format: PixelFormat, alpha: AlphaMode, bytes: &[u8], w: u32, h: u32) -> Vec<u32> {
        let layout = FrameLayout::new(w, h, format).unwrap();
        let layout = layout
            .with_stride((bytes.len() / h as usize) as u32)
            .unwrap();
        let mut out = vec![0xdead_beef; (w * h) as usize];
        to_0rgb(bytes, layout, alpha, &mut out);
        out
    }

    #[test]
    fn rgba_and_bgra_opaque() {
        let px = [10, 20, 30, 255, 200, 100, 50, 255];
        assert_eq!(
            convert(PixelFormat::Rgba8, AlphaMode::Straight, &px, 2, 1),
            [0x0a141e, 0xc86432]
        );
        assert_eq!(
            convert(PixelFormat::Bgra8, AlphaMode::Straight, &px, 2, 1),
            [0x1e140a, 0x3264c8]
        );
    }

    #[test]
    fn alpha_composites_over_black() {
        let px = [255, 128, 0, 128];
        assert_eq!(
            convert(PixelFormat::Rgba8, AlphaMode::Straight, &px, 1, 1),
            [(128 << 16) | (64 << 8)]
        );
        let premultiplied = [128, 64, 0, 128];
        assert_eq!(
            convert(
                PixelFormat::Rgba8,
                AlphaMode::Premultiplied,
                &premultiplied,
                1,
                1
            ),
            [(128 << 16) | (64 << 8)]
        );
        let transparent = [255, 255, 255, 0];
        assert_eq!(
            convert(PixelFormat::Rgba8, AlphaMode::Straight, &transparent, 1, 1),
            [0]
        );
    }

    #[test]
    fn gray_and_padded_rows() {
        // 2x2 gray with a stride of 3 (one padding byte per row).
        let bytes = [1, 2, 99, 3, 4, 99];
        assert_eq!(
            convert(PixelFormat::Gray8, AlphaMode::Straight, &bytes, 2, 2),
            [0x010101, 0x020202, 0x030303, 0x040404]
        );
    }
}
