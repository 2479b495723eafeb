//! RTP (RFC 3550) fixed header, the 90 kHz media clock, and extended sequence numbers.

use std::fmt;

/// Bytes of the fixed RTP header (no CSRCs, no extension), which is what we send.
pub const RTP_HEADER_LEN: usize = 12;

/// The RTP clock rate of video (RFC 4175, ST 2110-10).
pub const VIDEO_CLOCK_RATE: u32 = 90_000;

/// The RTP timestamp of a frame presented at `ns`: `ns * 9 / 100_000 mod 2^32` (90 kHz).
///
/// ```
/// use streamlib_net::rtp_timestamp_90k;
/// assert_eq!(rtp_timestamp_90k(1_000_000_000), 90_000);
/// // 1001/30000 s, one frame at 29.97 fps, is 3003 ticks.
/// assert_eq!(rtp_timestamp_90k(33_366_667), 3003);
/// ```
pub fn rtp_timestamp_90k(ns: u64) -> u32 {
    // u128: TAI ns since 1970 times 9 would overflow u64 in 2034. Rounded to the nearest
    // tick: frame times on a 1/60 s grid are whole ns rounded down (16_666_666 for frame 1),
    // and must still give the exact 1500 ticks per frame that ST 2110 receivers expect.
    ((u128::from(ns) * 9 + 50_000) / 100_000) as u32
}

/// The time, in ns, that a 90 kHz RTP timestamp stands for: of all the times whose
/// [`rtp_timestamp_90k`] is `rtp` (the 32-bit timestamp wraps every 13.3 hours), the one
/// nearest to `near_ns` (the receiver's own clock). With both ends on one timescale (PTP, as
/// ST 2110 requires) it is the sender's media time to within one tick (11.1 µs).
///
/// ```
/// use streamlib_net::{rtp_timestamp_90k, rtp_time_ns};
/// let sent = 1_800_000_000_016_666_666; // frame time on a 60 fps TAI grid
/// let rtp = rtp_timestamp_90k(sent);
/// // Received 40 ms later, or across the 32-bit wrap: the same time comes back (±1 ns).
/// assert!(rtp_time_ns(rtp, sent + 40_000_000).abs_diff(sent) <= 1);
/// ```
pub fn rtp_time_ns(rtp: u32, near_ns: u64) -> u64 {
    const WRAP: i128 = 1 << 32;
    let near = (i128::from(near_ns) * 9 + 50_000) / 100_000;
    let mut ticks = (near & !(WRAP - 1)) + i128::from(rtp);
    if ticks - near > WRAP / 2 {
        ticks -= WRAP;
    } else if near - ticks > WRAP / 2 {
        ticks += WRAP;
    }
    u64::try_from((ticks.max(0) * 100_000 + 4) / 9).unwrap_or(u64::MAX)
}

/// The 32-bit extended sequence number of RFC 4175: the RTP header's 16 bits are the low
/// half, the payload header's "extended sequence number" the high half.
pub fn extended_sequence(high: u16, low: u16) -> u32 {
    (u32::from(high) << 16) | u32::from(low)
}

/// Checks a sender's `max_udp_payload`: at least `min` (one packet of the stream), at most
/// what a UDP datagram holds (65 507 bytes); `reason` says both to the user.
pub(crate) fn check_packet_size(
    component: &'static str,
    max_udp_payload: usize,
    min: usize,
    reason: &'static str,
) -> Result<(), crate::NetError> {
    if (min..=65_507).contains(&max_udp_payload) {
        return Ok(());
    }
    Err(crate::NetError::config(
        component,
        "max_udp_payload",
        &max_udp_payload,
        reason,
    ))
}

/// Checks that a sender's payload type is a dynamic one (96 ..= 127), as ST 2110 uses.
pub(crate) fn check_dynamic_payload_type(
    component: &'static str,
    payload_type: u8,
) -> Result<(), crate::NetError> {
    if (96..=127).contains(&payload_type) {
        return Ok(());
    }
    Err(crate::NetError::config(
        component,
        "payload_type",
        &payload_type,
        "must be a dynamic payload type, 96 ..= 127",
    ))
}

/// Why a datagram was not accepted. Every dropped datagram is counted under one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Malformed {
    /// Shorter than an RTP header, or than the header plus what it announces.
    Truncated,
    /// RTP version is not 2.
    Version,
    /// The padding count exceeds the payload.
    Padding,
    /// The payload type is not the one configured.
    PayloadType,
    /// The payload header is cut short or announces more data than the datagram holds.
    PayloadHeader,
    /// More sample row data headers than a packet can reasonably carry.
    TooManyRows,
    /// A row lies outside the frame, or is not a whole number of pixel groups.
    RowOutOfBounds,
    /// The field bit is set: interlaced video is not supported.
    Interlaced,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Malformed::Truncated => "truncated datagram",
            Malformed::Version => "RTP version is not 2",
            Malformed::Padding => "padding longer than the payload",
            Malformed::PayloadType => "unexpected payload type",
            Malformed::PayloadHeader => "bad RFC 4175 payload header",
            Malformed::TooManyRows => "too many sample row data headers",
            Malformed::RowOutOfBounds => "sample row outside the frame",
            Malformed::Interlaced => "interlaced (field bit set)",
        })
    }
}

/// The RTP fixed header fields streamlib uses (CSRCs and header extensions are skipped when
/// parsing and never sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RtpHeader {
    /// Set on the last packet of a frame.
    pub marker: bool,
    /// 7-bit payload type (96..=127 for dynamic ones, as ST 2110 uses).
    pub payload_type: u8,
    /// Low 16 bits of the sequence number.
    pub sequence: u16,
    /// Media time at 90 kHz.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
}

impl RtpHeader {
    /// Writes the 12-byte header at the start of `out`; returns the bytes written, or `None`
    /// if `out` is too short.
    pub fn write(&self, out: &mut [u8]) -> Option<usize> {
        let out = out.get_mut(..RTP_HEADER_LEN)?;
        out[0] = 0x80; // V=2, P=0, X=0, CC=0
        out[1] = (u8::from(self.marker) << 7) | (self.payload_type & 0x7f);
        out[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        out[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        Some(RTP_HEADER_LEN)
    }

    /// Parses a datagram: the header and the payload (after CSRCs and any header extension,
    /// before padding). Never reads out of bounds, whatever the lengths say.
    pub fn parse(datagram: &[u8]) -> Result<(RtpHeader, &[u8]), Malformed> {
        let fixed = datagram.get(..RTP_HEADER_LEN).ok_or(Malformed::Truncated)?;
        if fixed[0] >> 6 != 2 {
            return Err(Malformed::Version);
        }
        let padding = fixed[0] & 0x20 != 0;
        let extension = fixed[0] & 0x10 != 0;
        let csrc_count = usize::from(fixed[0] & 0x0f);
        let header = RtpHeader {
            marker: fixed[1] & 0x80 != 0,
            payload_type: fixed[1] & 0x7f,
            sequence: u16::from_be_bytes([fixed[2], fixed[3]]),
            timestamp: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
            ssrc: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
        };
        let mut start = RTP_HEADER_LEN + 4 * csrc_count;
        if extension {
            let ext = datagram.get(start..start + 4).ok_or(Malformed::Truncated)?;
            let words = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
            start += 4 + 4 * words;
        }
        let mut end = datagram.len();
        if start > end {
            return Err(Malformed::Truncated);
        }
        if padding {
            let count = usize::from(datagram[end - 1]);
            if count == 0 || count > end - start {
                return Err(Malformed::Padding);
            }
            end -= count;
        }
        Ok((header, &datagram[start..end]))
    }
}

/// Unwraps 32-bit extended sequence numbers into a monotonic 64-bit count, and tells new,
/// reordered, duplicate and too-old packets apart with a bitmap of the last
/// [`SequenceWindow::WINDOW`] numbers.
///
/// Numbers are unwrapped from their low 16 bits, as RFC 3550 receivers do, and the high half
/// decides only jumps of more than 32767 packets, once the sender has shown that it maintains
/// it (a non-zero high half, or one that followed a 16-bit wrap): some senders leave RFC 4175's
/// extended sequence number at zero.
#[derive(Clone)]
pub struct SequenceWindow {
    highest: Option<u64>,
    bits: Box<[u64; 1024]>,
    ext_reliable: bool,
}

/// What [`SequenceWindow::accept`] decided for one sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqVerdict {
    /// New and in order (the highest so far); carries the unwrapped number and how many
    /// numbers were skipped since the previous highest.
    InOrder {
        /// Unwrapped sequence number.
        seq: u64,
        /// Numbers skipped (lost, or still to arrive reordered).
        gap: u64,
    },
    /// New but older than the highest seen (it arrived late, within the window).
    Reordered {
        /// Unwrapped sequence number.
        seq: u64,
    },
    /// Seen already.
    Duplicate,
    /// Older than the window: cannot tell whether it is a duplicate.
    TooOld,
}

impl Default for SequenceWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SequenceWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SequenceWindow")
            .field("highest", &self.highest)
            .finish()
    }
}

impl SequenceWindow {
    /// Sequence numbers remembered for duplicate detection.
    pub const WINDOW: u64 = 32_768;
    const BITS: u64 = 65_536;
    const PLAUSIBLE: i64 = 1 << 20;

    /// An empty window.
    pub fn new() -> Self {
        Self {
            highest: None,
            bits: Box::new([0; 1024]),
            ext_reliable: false,
        }
    }

    /// The highest unwrapped number accepted so far.
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }

    /// Forgets everything (a new source).
    pub fn reset(&mut self) {
        self.highest = None;
        self.bits.fill(0);
        self.ext_reliable = false;
    }

    fn bit(&mut self, seq: u64) -> (&mut u64, u64) {
        let i = seq % Self::BITS;
        (&mut self.bits[(i / 64) as usize], 1 << (i % 64))
    }

    /// Classifies the packet numbered `seq32` (high half from the payload header, low half
    /// from the RTP header) and records it.
    pub fn accept(&mut self, seq32: u32) -> SeqVerdict {
        let Some(highest) = self.highest else {
            // Start high enough that unwrapping backwards never goes below zero.
            let seq = (1u64 << 40) + u64::from(seq32);
            self.highest = Some(seq);
            self.ext_reliable = seq32 >> 16 != 0;
            let (word, mask) = self.bit(seq);
            *word |= mask;
            return SeqVerdict::InOrder { seq, gap: 0 };
        };
        let low_delta = i64::from((seq32 as u16).wrapping_sub(highest as u16) as i16);
        let by_low = highest.wrapping_add_signed(low_delta);
        let delta = if by_low as u32 == seq32 {
            if low_delta > 0 && (by_low >> 16) as u16 != (highest >> 16) as u16 {
                // The high half followed a 16-bit wrap forwards: the sender maintains it. (A
                // packet from before a wrap, arriving after it, matches a 16-bit sender's
                // zero high half too: backwards is no evidence.)
                self.ext_reliable = true;
            }
            low_delta
        } else {
            let delta32 = i64::from(seq32.wrapping_sub(highest as u32) as i32);
            if self.ext_reliable && delta32.abs() <= Self::PLAUSIBLE {
                delta32
            } else {
                low_delta
            }
        };
        let seq = highest.wrapping_add_signed(delta);
        if delta > 0 {
            let gap = (delta - 1) as u64;
            if gap + 1 >= Self::BITS {
                self.bits.fill(0);
            } else {
                for s in highest + 1..seq {
                    let (word, mask) = self.bit(s);
                    *word &= !mask;
                }
            }
            let (word, mask) = self.bit(seq);
            *word |= mask;
            self.highest = Some(seq);
            return SeqVerdict::InOrder { seq, gap };
        }
        if delta == 0 {
            return SeqVerdict::Duplicate;
        }
        if highest - seq >= Self::WINDOW {
            return SeqVerdict::TooOld;
        }
        let (word, mask) = self.bit(seq);
        if *word & mask != 0 {
            return SeqVerdict::Duplicate;
        }
        *word |= mask;
        SeqVerdict::Reordered { seq }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn a_packet_reordered_across_the_wrap_does_not_make_a_16_bit_sender_32_bit() {
        // A 16-bit sender (high half always 0): 65534, then 0 (one lost), then 65535 late
        // across the wrap, then 1. The late one used to be taken as proof that the sender
        // keeps a high half, and 1 then read as 65535 numbers back: too old, dropped.
        let mut w = SequenceWindow::new();
        let SeqVerdict::InOrder { seq: first, .. } = w.accept(65534) else {
            panic!("first")
        };
        assert_eq!(
            w.accept(0),
            SeqVerdict::InOrder {
                seq: first + 2,
                gap: 1
            }
        );
        assert_eq!(w.accept(65535), SeqVerdict::Reordered { seq: first + 1 });
        assert_eq!(
            w.accept(1),
            SeqVerdict::InOrder {
                seq: first + 3,
                gap: 0
            }
        );
    }

    #[test]
    fn rtp_times_unwrap_to_the_nearest_wrap() {
        // 60 fps frame times (whole ns, rounded up as PTP clocks tick) give exactly 1500
        // ticks a frame and come back within 1 ns, far from the epoch and on either side of
        // the 32-bit wrap (every 2^32 / 90 kHz ≈ 13.3 h).
        let wrap_ns = (1u64 << 32) * 100_000 / 9;
        for base in [0, 1_700_000_000_000_000_000, 5 * wrap_ns - 50_000_000] {
            let start = base.div_ceil(16_666_667) * 16_666_667;
            for n in 0..8u64 {
                let t = start + (n * 1_000_000_000).div_ceil(60);
                let rtp = rtp_timestamp_90k(t);
                assert_eq!(
                    rtp.wrapping_sub(rtp_timestamp_90k(start)),
                    1500 * n as u32,
                    "frame {n} at {t}"
                );
                for seen in [t, t + 40_000_000, t.saturating_sub(3_000_000)] {
                    assert!(
                        rtp_time_ns(rtp, seen).abs_diff(t) <= 6_000,
                        "{t} seen at {seen}"
                    );
                }
            }
        }
        // Half a wrap away is the limit.
        let t = 10 * wrap_ns;
        let later = t + wrap_ns / 2 - 1_000_000;
        assert!(rtp_time_ns(rtp_timestamp_90k(t), later).abs_diff(t) < 20_000);
    }

    #[test]
    fn header_round_trip() {
        let h = RtpHeader {
            marker: true,
            payload_type: 96,
            sequence: 0xfffe,
            timestamp: 0xdead_beef,
            ssrc: 42,
        };
        let mut buf = [0u8; 20];
        assert_eq!(h.write(&mut buf), Some(12));
        buf[12..].copy_from_slice(b"payload!");
        let (back, payload) = RtpHeader::parse(&buf).unwrap();
        assert_eq!(back, h);
        assert_eq!(payload, b"payload!");
        assert_eq!(h.write(&mut [0u8; 11]), None);
    }

    #[test]
    fn csrc_extension_and_padding_are_skipped() {
        let mut p = vec![0x80 | 0x20 | 0x10 | 1, 96, 0, 1, 0, 0, 0, 9, 0, 0, 0, 7];
        p.extend_from_slice(&[1, 2, 3, 4]); // one CSRC
        p.extend_from_slice(&[0xbe, 0xde, 0, 1, 9, 9, 9, 9]); // extension, one word
        p.extend_from_slice(b"data");
        p.extend_from_slice(&[0, 0, 3]); // 3 bytes of padding
        let (h, payload) = RtpHeader::parse(&p).unwrap();
        assert_eq!((h.sequence, h.timestamp, h.ssrc), (1, 9, 7));
        assert_eq!(payload, b"data");
    }

    #[test]
    fn lying_lengths_are_rejected() {
        assert_eq!(RtpHeader::parse(&[0x80; 5]), Err(Malformed::Truncated));
        assert_eq!(RtpHeader::parse(&[0x40; 12]), Err(Malformed::Version));
        // 15 CSRCs announced, none present.
        assert_eq!(
            RtpHeader::parse(&[0x8f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(Malformed::Truncated)
        );
        // Padding count larger than the payload.
        let mut p = vec![0xa0, 96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 200];
        assert_eq!(RtpHeader::parse(&p), Err(Malformed::Padding));
        p[13] = 0;
        assert_eq!(RtpHeader::parse(&p), Err(Malformed::Padding));
    }

    #[test]
    fn timestamps_follow_90khz() {
        assert_eq!(rtp_timestamp_90k(0), 0);
        // 1001/30000 s = 3003 ticks at 90 kHz.
        assert_eq!(rtp_timestamp_90k(33_366_667), 3003);
        // TAI in 2040 does not overflow.
        let ns_2040 = 2_208_988_800_000_000_000u64;
        let expected = (u128::from(ns_2040) * 9 / 100_000 % (1u128 << 32)) as u32;
        assert_eq!(rtp_timestamp_90k(ns_2040), expected);
    }

    #[test]
    fn sequence_window_wraps_16_and_32_bits() {
        let mut w = SequenceWindow::new();
        // 16-bit wrap with the extension incrementing.
        let a = extended_sequence(0, 0xffff);
        let b = extended_sequence(1, 0);
        assert!(matches!(w.accept(a), SeqVerdict::InOrder { gap: 0, .. }));
        assert!(matches!(w.accept(b), SeqVerdict::InOrder { gap: 0, .. }));
        // 32-bit wrap.
        let mut w = SequenceWindow::new();
        assert!(matches!(w.accept(u32::MAX - 1), SeqVerdict::InOrder { .. }));
        assert!(matches!(
            w.accept(u32::MAX),
            SeqVerdict::InOrder { gap: 0, .. }
        ));
        assert!(matches!(w.accept(1), SeqVerdict::InOrder { gap: 1, .. }));
        assert!(matches!(w.accept(0), SeqVerdict::Reordered { .. }));
        assert_eq!(w.accept(0), SeqVerdict::Duplicate);
        assert_eq!(w.accept(u32::MAX), SeqVerdict::Duplicate);
        // A sender that leaves the high half at zero: the 16-bit wrap still unwraps forward.
        let mut w = SequenceWindow::new();
        assert!(matches!(w.accept(0xfffe), SeqVerdict::InOrder { .. }));
        assert!(matches!(
            w.accept(0xffff),
            SeqVerdict::InOrder { gap: 0, .. }
        ));
        assert!(matches!(
            w.accept(0x0000),
            SeqVerdict::InOrder { gap: 0, .. }
        ));
    }

    #[test]
    fn too_old_and_big_jumps() {
        let base = 0x1_0000 + 10;
        let mut w = SequenceWindow::new();
        w.accept(base);
        assert!(matches!(
            w.accept(base + 40_000),
            SeqVerdict::InOrder { gap: 39_999, .. }
        ));
        assert_eq!(w.accept(base + 1), SeqVerdict::TooOld);
        // A jump past the whole bitmap clears it: the old number is not taken as a duplicate.
        assert!(matches!(
            w.accept(base + 200_000),
            SeqVerdict::InOrder { .. }
        ));
        assert!(matches!(
            w.accept(base + 199_999),
            SeqVerdict::Reordered { .. }
        ));
        // Without a maintained high half, a 40000-packet jump reads as 25536 back.
        let mut w = SequenceWindow::new();
        w.accept(10);
        assert!(matches!(
            w.accept(10 + 40_000),
            SeqVerdict::Reordered { .. }
        ));
    }
}
