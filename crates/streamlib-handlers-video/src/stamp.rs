//! A machine-readable stamp in the top rows of a frame: its frame number and the wall-clock
//! time it was drawn, so that a receiver (a browser's canvas, a decoded file, another
//! runtime) can measure glass-to-glass latency and count lost or repeated frames without any
//! side channel.
//!
//! The stamp is [`BITS`] blocks in a row from the top-left corner, each [`block_size`] pixels
//! square, black for 0 and white for 1, read at their centres (so codecs' ringing at the
//! edges does not matter):
//!
//! | bits | value |
//! |---|---|
//! | 0..32 | frame number (modulo 2³²), most significant bit first |
//! | 32..80 | UNIX time in milliseconds when the frame was drawn, most significant bit first |
//! | 80..88 | the XOR of the ten bytes above: a stamp that does not check is not a stamp |
//!
//! `testpattern stamp=true` draws it ([`TestPattern::with_stamp`](crate::TestPattern::with_stamp));
//! [`read`] reads it back from RGBA bytes, and `streamlib_test_support::stamp::DECODE_JS`
//! from a browser canvas.
//!
//! ```
//! use streamlib_handlers_video::stamp;
//!
//! let (width, height) = (320usize, 40usize);
//! let mut rgba = vec![0u8; width * height * 4];
//! stamp::draw_rgba(&mut rgba, width * 4, width as u32, 1234, 1_700_000_000_123);
//! assert_eq!(
//!     stamp::read(&rgba, width * 4, width as u32),
//!     Some(stamp::Stamp { frame: 1234, unix_ms: 1_700_000_000_123 })
//! );
//! ```

/// Blocks in a stamp: 32 bits of frame number, 48 of milliseconds, 8 of check.
pub const BITS: u32 = 88;

/// What a stamp says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The frame number, modulo 2³².
    pub frame: u32,
    /// UNIX time in milliseconds when the frame was drawn (48 bits).
    pub unix_ms: u64,
}

/// The side of one block for a frame `width` pixels wide: `width / 88`, from 2 to 16 pixels
/// (even, so 4:2:2 and 4:2:0 chroma pairs never straddle two blocks). A frame narrower than
/// 176 pixels cannot carry a stamp.
pub fn block_size(width: u32) -> Option<u32> {
    let side = (width / BITS).min(16) & !1;
    (side >= 2).then_some(side)
}

/// The 88 bits of a stamp, most significant first.
fn bits(frame: u32, unix_ms: u64) -> [bool; BITS as usize] {
    let mut bytes = [0u8; 11];
    bytes[..4].copy_from_slice(&frame.to_be_bytes());
    bytes[4..10].copy_from_slice(&unix_ms.to_be_bytes()[2..]);
    bytes[10] = bytes[..10].iter().fold(0, |a, b| a ^ b);
    let mut out = [false; BITS as usize];
    for (i, bit) in out.iter_mut().enumerate() {
        *bit = bytes[i / 8] & (0x80 >> (i % 8)) != 0;
    }
    out
}

/// Draws the stamp into RGBA (or BGRA) rows of `stride` bytes, `width` pixels wide. Does
/// nothing when the frame is too narrow ([`block_size`]) or too short for one block row.
pub fn draw_rgba(out: &mut [u8], stride: usize, width: u32, frame: u32, unix_ms: u64) {
    let Some(side) = block_size(width) else {
        return;
    };
    let side = side as usize;
    let bits = bits(frame, unix_ms);
    for row in out.chunks_exact_mut(stride).take(side) {
        for (i, bit) in bits.iter().enumerate() {
            let value = if *bit { 255 } else { 0 };
            let start = i * side * 4;
            if let Some(block) = row.get_mut(start..start + side * 4) {
                for px in block.chunks_exact_mut(4) {
                    px[..3].fill(value);
                    px[3] = 255;
                }
            }
        }
    }
}

/// Draws the stamp into UYVY (4:2:2, limited range) rows: Y 16 or 235, chroma neutral.
pub fn draw_uyvy(out: &mut [u8], stride: usize, width: u32, frame: u32, unix_ms: u64) {
    let Some(side) = block_size(width) else {
        return;
    };
    let side = side as usize;
    let bits = bits(frame, unix_ms);
    for row in out.chunks_exact_mut(stride).take(side) {
        for (i, bit) in bits.iter().enumerate() {
            let y = if *bit { 235 } else { 16 };
            // `side` is even: a block is side / 2 whole pixel pairs of 4 bytes.
            let start = i * side * 2;
            if let Some(block) = row.get_mut(start..start + side * 2) {
                for pair in block.chunks_exact_mut(4) {
                    pair.copy_from_slice(&[128, y, 128, y]);
                }
            }
        }
    }
}

/// Reads a stamp from RGBA (or BGRA) rows: `None` when the frame is too narrow or short, or
/// the check byte does not match (no stamp, or one damaged beyond reading).
pub fn read(rgba: &[u8], stride: usize, width: u32) -> Option<Stamp> {
    let side = block_size(width)? as usize;
    let centre = side / 2;
    let row = rgba.get(centre * stride..(centre + 1) * stride)?;
    let mut bytes = [0u8; 11];
    for i in 0..BITS as usize {
        let x = i * side + centre;
        let px = row.get(x * 4..x * 4 + 3)?;
        let luma = (u32::from(px[0]) + u32::from(px[1]) + u32::from(px[2])) / 3;
        if luma >= 128 {
            bytes[i / 8] |= 0x80 >> (i % 8);
        }
    }
    if bytes[..10].iter().fold(0, |a, b| a ^ b) != bytes[10] {
        return None;
    }
    let frame = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let mut ms = [0u8; 8];
    ms[2..].copy_from_slice(&bytes[4..10]);
    Some(Stamp {
        frame,
        unix_ms: u64::from_be_bytes(ms),
    })
}

/// The wall clock now, in UNIX milliseconds (0 if the clock is before 1970).
pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_survive_noise_at_their_edges_and_fail_their_check_when_damaged() {
        let (width, height) = (1280usize, 32usize);
        let mut rgba = vec![90u8; width * height * 4];
        draw_rgba(&mut rgba, width * 4, width as u32, u32::MAX, (1 << 48) - 1);
        // Blur-like damage on every block edge: the centres still read.
        let side = block_size(width as u32).unwrap_or(2) as usize;
        for row in rgba.chunks_exact_mut(width * 4) {
            for i in 0..BITS as usize {
                let px = i * side * 4;
                row[px..px + 3].fill(128);
            }
        }
        let stamp = read(&rgba, width * 4, width as u32);
        assert_eq!(
            stamp,
            Some(Stamp {
                frame: u32::MAX,
                unix_ms: (1 << 48) - 1
            })
        );
        // Flip one data block's centre: the check byte no longer matches.
        let centre = side / 2;
        let x = 5 * side + centre;
        let at = centre * width * 4 + x * 4;
        for v in &mut rgba[at..at + 3] {
            *v = 255 - *v;
        }
        assert_eq!(read(&rgba, width * 4, width as u32), None);
    }

    #[test]
    fn narrow_frames_carry_no_stamp() {
        assert_eq!(block_size(175), None);
        assert_eq!(block_size(176), Some(2));
        assert_eq!(block_size(1280), Some(14));
        assert_eq!(block_size(3840), Some(16));
        let mut small = vec![7u8; 100 * 4 * 4];
        draw_rgba(&mut small, 400, 100, 1, 2);
        assert!(small.iter().all(|&v| v == 7));
    }

    #[test]
    fn uyvy_stamps_read_back_after_conversion() {
        let (width, height) = (640u32, 16u32);
        let mut uyvy = vec![0u8; (width * 2 * height) as usize];
        draw_uyvy(&mut uyvy, width as usize * 2, width, 77, 123_456_789);
        // Y to grey RGBA, what any YUV->RGB conversion does with neutral chroma.
        let rgba: Vec<u8> = uyvy
            .chunks_exact(2)
            .flat_map(|p| {
                let v = ((f32::from(p[1]) - 16.0) * 255.0 / 219.0).clamp(0.0, 255.0) as u8;
                [v, v, v, 255]
            })
            .collect();
        assert_eq!(
            read(&rgba, width as usize * 4, width),
            Some(Stamp {
                frame: 77,
                unix_ms: 123_456_789
            })
        );
    }
}
