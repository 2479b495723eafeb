//! RFC 4175 / ST 2110-20 packetizer, general packing mode (GPM).
//!
//! Lines are cut into packets of whole pixel groups, left to right, top to bottom. A packet is
//! filled as far as the size limit allows: when a line ends mid-packet the next line continues
//! in the same packet under a second sample row data header (the continuation bit set on the
//! first). The last packet of a frame carries the RTP marker bit.

use super::payload::{EXT_SEQ_LEN, MAX_ROWS, SRD_LEN, SampleRow, write_payload_header};
use crate::rtp::{RTP_HEADER_LEN, RtpHeader, check_dynamic_payload_type, check_packet_size};
use crate::{NetError, VideoFormat};

const COMPONENT: &str = "Packetizer";

/// Largest UDP payload for a link MTU: `mtu − IP header (20, or 40 for IPv6) − 8 (UDP)`.
///
/// ```
/// use streamlib_net::udp_payload_for_mtu;
/// assert_eq!(udp_payload_for_mtu(1500, false), 1472);
/// assert_eq!(udp_payload_for_mtu(1500, true), 1452);
/// ```
pub const fn udp_payload_for_mtu(mtu: usize, ipv6: bool) -> usize {
    let ip = if ipv6 { 40 } else { 20 };
    mtu.saturating_sub(ip + 8)
}

/// RTP settings of a sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketizerConfig {
    /// Dynamic payload type, 96 ..= 127.
    pub payload_type: u8,
    /// Synchronisation source identifier.
    pub ssrc: u32,
    /// First (32-bit extended) sequence number.
    pub initial_sequence: u32,
    /// Largest UDP payload (RTP header included): see [`udp_payload_for_mtu`]. Default 1472,
    /// a 1500-byte IPv4 MTU.
    pub max_udp_payload: usize,
    /// Pads every packet but a frame's last to one length with RTP padding (RFC 3550 §5.1:
    /// the P bit, the pad count in the last byte), so that a GSO sender can hand the kernel
    /// long runs of equal datagrams. A few bytes per packet (at most a pixel group and a
    /// sample row header); receivers strip it. Default false.
    pub uniform_length: bool,
}

impl Default for PacketizerConfig {
    fn default() -> Self {
        Self {
            payload_type: 96,
            ssrc: 0x5354_4c42, // "STLB"
            initial_sequence: 0,
            max_udp_payload: udp_payload_for_mtu(1500, false),
            uniform_length: false,
        }
    }
}

/// Cuts frames of one [`VideoFormat`] into RTP packets. Keeps the sequence number across
/// frames; allocates nothing per frame or packet.
#[derive(Debug, Clone)]
pub struct Packetizer {
    format: VideoFormat,
    config: PacketizerConfig,
    sequence: u32,
    packets_per_frame: usize,
    /// Length every packet but a frame's last is padded to (0: no padding).
    uniform_len: usize,
}

/// Where the next packet starts: a line and a pixel in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    line: usize,
    px: usize,
}

impl Packetizer {
    /// A packetizer for `format`. Fails if the packet size cannot hold one pixel group.
    pub fn new(format: VideoFormat, config: PacketizerConfig) -> Result<Self, NetError> {
        format.check()?;
        let min = RTP_HEADER_LEN + EXT_SEQ_LEN + SRD_LEN + format.sampling.pgroup_bytes();
        check_packet_size(
            COMPONENT,
            config.max_udp_payload,
            min,
            "must hold the RTP and RFC 4175 headers and one pixel group, and fit a UDP datagram (65507)",
        )?;
        check_dynamic_payload_type(COMPONENT, config.payload_type)?;
        let mut p = Self {
            format,
            config,
            sequence: config.initial_sequence,
            packets_per_frame: 0,
            uniform_len: 0,
        };
        let mut rows = [SampleRow::default(); MAX_ROWS];
        let mut cursor = Cursor { line: 0, px: 0 };
        let mut longest = 0;
        while cursor.line < format.height as usize {
            let (count, next) = p.plan(cursor, &mut rows);
            cursor = next;
            p.packets_per_frame += 1;
            if next.line < format.height as usize {
                longest = longest.max(packet_len(&rows[..count]));
            }
        }
        if config.uniform_length {
            p.uniform_len = longest;
        }
        Ok(p)
    }

    /// The format.
    pub fn format(&self) -> &VideoFormat {
        &self.format
    }

    /// The RTP settings.
    pub fn config(&self) -> &PacketizerConfig {
        &self.config
    }

    /// Packets every frame takes.
    pub fn packets_per_frame(&self) -> usize {
        self.packets_per_frame
    }

    /// Largest datagram it writes; buffers passed to [`FramePackets::next_into`] must be at
    /// least this long.
    pub fn max_packet_len(&self) -> usize {
        self.config.max_udp_payload
    }

    /// The extended sequence number the next packet gets.
    pub fn next_sequence(&self) -> u32 {
        self.sequence
    }

    /// Length every packet of a frame but the last has (0 unless
    /// [`PacketizerConfig::uniform_length`]).
    pub fn uniform_len(&self) -> usize {
        self.uniform_len
    }

    /// Rows of the packet that starts at `cursor`, and where the next one starts.
    fn plan(&self, mut cursor: Cursor, rows: &mut [SampleRow; MAX_ROWS]) -> (usize, Cursor) {
        let sampling = self.format.sampling;
        let (pg_bytes, pg_px) = (sampling.pgroup_bytes(), sampling.pgroup_pixels());
        let (width, height) = (self.format.width as usize, self.format.height as usize);
        let capacity = self.config.max_udp_payload - RTP_HEADER_LEN - EXT_SEQ_LEN;
        let mut used = 0;
        let mut count = 0;
        while cursor.line < height && count < MAX_ROWS && used + SRD_LEN < capacity {
            // SRD lengths are 16-bit: keep each row's data below 65536 bytes.
            let room = ((capacity - used - SRD_LEN) / pg_bytes).min(65_535 / pg_bytes);
            let groups = room.min((width - cursor.px) / pg_px);
            if groups == 0 {
                break;
            }
            rows[count] = SampleRow {
                length: (groups * pg_bytes) as u16,
                field: false,
                line: cursor.line as u16,
                offset: cursor.px as u16,
            };
            count += 1;
            used += SRD_LEN + groups * pg_bytes;
            cursor.px += groups * pg_px;
            if cursor.px == width {
                cursor = Cursor {
                    line: cursor.line + 1,
                    px: 0,
                };
            }
        }
        (count, cursor)
    }

    /// Starts a frame: `pixels` holds `height` rows of `stride` bytes in the format's frame
    /// pixel format (UYVY or RGBA8), the last row possibly without its padding.
    pub fn frame<'a>(
        &'a mut self,
        pixels: &'a [u8],
        stride: usize,
        rtp_timestamp: u32,
    ) -> Result<FramePackets<'a>, NetError> {
        let min_stride = self
            .format
            .sampling
            .pixel_format()
            .min_stride(self.format.width);
        let needed = stride * (self.format.height as usize - 1) + min_stride;
        if stride < min_stride || pixels.len() < needed {
            return Err(NetError::config(
                COMPONENT,
                "frame buffer",
                &format!("{} bytes, stride {stride}", pixels.len()),
                "too small for the stream's width and height",
            ));
        }
        Ok(FramePackets {
            packetizer: self,
            pixels,
            stride,
            timestamp: rtp_timestamp,
            cursor: Cursor { line: 0, px: 0 },
        })
    }
}

/// Bytes of a packet carrying `rows` (headers included, no padding).
fn packet_len(rows: &[SampleRow]) -> usize {
    RTP_HEADER_LEN
        + EXT_SEQ_LEN
        + rows
            .iter()
            .map(|r| SRD_LEN + usize::from(r.length))
            .sum::<usize>()
}

/// The packets of one frame, written one at a time into caller-owned buffers.
#[derive(Debug)]
pub struct FramePackets<'a> {
    packetizer: &'a mut Packetizer,
    pixels: &'a [u8],
    stride: usize,
    timestamp: u32,
    cursor: Cursor,
}

impl FramePackets<'_> {
    /// Whether every packet of the frame has been written.
    pub fn is_done(&self) -> bool {
        self.cursor.line >= self.packetizer.format.height as usize
    }

    /// Writes the next packet (RTP header included) into `out` and returns its length;
    /// `None` once the frame is done, or if `out` is shorter than
    /// [`Packetizer::max_packet_len`].
    pub fn next_into(&mut self, out: &mut [u8]) -> Option<usize> {
        if self.is_done() || out.len() < self.packetizer.max_packet_len() {
            return None;
        }
        let p = &mut *self.packetizer;
        let mut rows = [SampleRow::default(); MAX_ROWS];
        let (count, next) = p.plan(self.cursor, &mut rows);
        let rows = &rows[..count];
        let marker = next.line >= p.format.height as usize;
        let sequence = p.sequence;
        p.sequence = p.sequence.wrapping_add(1);
        let header = RtpHeader {
            marker,
            payload_type: p.config.payload_type,
            sequence: sequence as u16,
            timestamp: self.timestamp,
            ssrc: p.config.ssrc,
        };
        let mut pos = header.write(out)?;
        pos += write_payload_header(&mut out[pos..], (sequence >> 16) as u16, rows);
        let sampling = p.format.sampling;
        for row in rows {
            let len = usize::from(row.length);
            let start = usize::from(row.line) * self.stride;
            let line = self.pixels.get(start..).unwrap_or_default();
            sampling.pack(line, usize::from(row.offset), &mut out[pos..pos + len]);
            pos += len;
        }
        // RTP padding up to the uniform length: zeros, then the pad count.
        let pad = p.uniform_len.saturating_sub(pos);
        if !marker && (1..=255).contains(&pad) {
            out[pos..p.uniform_len - 1].fill(0);
            out[p.uniform_len - 1] = pad as u8;
            out[0] |= 0x20;
            pos = p.uniform_len;
        }
        self.cursor = next;
        Some(pos)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::super::payload::parse_payload;
    use super::*;
    use crate::Sampling;
    use streamlib_clock::Rational;

    fn format(sampling: Sampling, w: u32, h: u32) -> VideoFormat {
        VideoFormat::new(sampling, w, h, Rational::fps(30)).unwrap()
    }

    #[test]
    fn packets_fit_the_mtu_and_the_last_has_the_marker() {
        let f = format(Sampling::YCbCr422Depth10, 1920, 4);
        let mut p = Packetizer::new(f, PacketizerConfig::default()).unwrap();
        let pixels = vec![7u8; 1920 * 2 * 4];
        let expected = p.packets_per_frame();
        let mut frame = p.frame(&pixels, 1920 * 2, 1234).unwrap();
        let mut buf = [0u8; 1472];
        let mut n = 0;
        let mut data = 0;
        while let Some(len) = frame.next_into(&mut buf) {
            assert!(len <= 1472);
            let (h, payload) = RtpHeader::parse(&buf[..len]).unwrap();
            assert_eq!(h.timestamp, 1234);
            assert_eq!(h.sequence as usize, n);
            let rows = parse_payload(payload).unwrap();
            rows.check(&f).unwrap();
            data += rows
                .rows()
                .iter()
                .map(|r| usize::from(r.length))
                .sum::<usize>();
            n += 1;
            assert_eq!(h.marker, frame.is_done());
        }
        assert_eq!(n, expected);
        assert_eq!(data, f.frame_bytes());
        // 1472 − 12 − 2 − 6 = 1452 bytes: 290 pgroups (1450 bytes) per packet, 4800 bytes
        // per line → lines end mid-packet and continue under a second SRD.
        let at_least = (4 * 4800usize).div_ceil(1450);
        assert!((at_least..=at_least + 4).contains(&expected), "{expected}");
    }

    #[test]
    fn bad_configs_name_the_field() {
        let f = format(Sampling::RgbDepth8, 16, 16);
        let cfg = PacketizerConfig {
            max_udp_payload: 20,
            ..Default::default()
        };
        let err = Packetizer::new(f, cfg).unwrap_err().to_string();
        assert!(err.contains("max_udp_payload = 20"), "{err}");
        let cfg = PacketizerConfig {
            payload_type: 33,
            ..Default::default()
        };
        let err = Packetizer::new(f, cfg).unwrap_err().to_string();
        assert!(err.contains("payload_type = 33"), "{err}");
        let mut p = Packetizer::new(f, PacketizerConfig::default()).unwrap();
        assert!(p.frame(&[0; 10], 64, 0).is_err());
    }
}
