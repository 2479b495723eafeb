//! The RFC 4175 payload header: the extended sequence number and the sample row data headers
//! (SRDs) that say which part of which line each block of pixel data is.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   Extended Sequence Number    |            Length             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |F|          Line No            |C|           Offset            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |            Length             |F|          Line No            |  (C = 1: another SRD)
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |C|           Offset            |       pixel data of SRD 1 …   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use crate::rtp::Malformed;
use crate::{Sampling, VideoFormat};

/// Bytes of the extended sequence number.
pub const EXT_SEQ_LEN: usize = 2;
/// Bytes of one sample row data header.
pub const SRD_LEN: usize = 6;
/// Most SRDs one packet may carry (a 1500-byte MTU fits far fewer useful ones).
pub const MAX_ROWS: usize = 64;

/// One sample row data header: `length` bytes of line `line` from pixel `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SampleRow {
    /// Bytes of pixel data.
    pub length: u16,
    /// Field bit (interlaced second field).
    pub field: bool,
    /// Line number, 0-based.
    pub line: u16,
    /// Offset of the first pixel, 0-based.
    pub offset: u16,
}

/// The parsed payload header of one packet: up to [`MAX_ROWS`] rows, kept on the stack.
#[derive(Debug, Clone, Copy)]
pub struct RowList {
    /// High 16 bits of the sequence number.
    pub ext_seq: u16,
    rows: [SampleRow; MAX_ROWS],
    count: usize,
    data_start: usize,
}

impl RowList {
    /// The rows, in packet order.
    pub fn rows(&self) -> &[SampleRow] {
        &self.rows[..self.count]
    }

    /// Byte offset of the first row's pixel data in the payload.
    pub fn data_start(&self) -> usize {
        self.data_start
    }

    /// Checks every row against `format` (line and pixel range, whole pixel groups, no field
    /// bit); a packet with one bad row is dropped whole, before any of it is written.
    pub fn check(&self, format: &VideoFormat) -> Result<(), Malformed> {
        let pg_bytes = format.sampling.pgroup_bytes();
        let pg_px = format.sampling.pgroup_pixels();
        for row in self.rows() {
            if row.field {
                return Err(Malformed::Interlaced);
            }
            let len = usize::from(row.length);
            let offset = usize::from(row.offset);
            if u32::from(row.line) >= format.height
                || len % pg_bytes != 0
                || offset % pg_px != 0
                || offset + len / pg_bytes * pg_px > format.width as usize
            {
                return Err(Malformed::RowOutOfBounds);
            }
        }
        Ok(())
    }
}

/// Parses the RFC 4175 payload header of an RTP payload. Checks that the data the rows
/// announce is present; says nothing yet about whether the rows fit a frame
/// ([`RowList::check`] does).
pub fn parse_payload(payload: &[u8]) -> Result<RowList, Malformed> {
    let ext = payload.get(..EXT_SEQ_LEN).ok_or(Malformed::PayloadHeader)?;
    let mut list = RowList {
        ext_seq: u16::from_be_bytes([ext[0], ext[1]]),
        rows: [SampleRow::default(); MAX_ROWS],
        count: 0,
        data_start: 0,
    };
    let mut pos = EXT_SEQ_LEN;
    let mut total = 0usize;
    loop {
        let h = payload
            .get(pos..pos + SRD_LEN)
            .ok_or(Malformed::PayloadHeader)?;
        if list.count == MAX_ROWS {
            return Err(Malformed::TooManyRows);
        }
        let row = SampleRow {
            length: u16::from_be_bytes([h[0], h[1]]),
            field: h[2] & 0x80 != 0,
            line: u16::from_be_bytes([h[2] & 0x7f, h[3]]),
            offset: u16::from_be_bytes([h[4] & 0x7f, h[5]]),
        };
        total += usize::from(row.length);
        list.rows[list.count] = row;
        list.count += 1;
        pos += SRD_LEN;
        if h[4] & 0x80 == 0 {
            break;
        }
    }
    if pos + total > payload.len() {
        return Err(Malformed::PayloadHeader);
    }
    list.data_start = pos;
    Ok(list)
}

/// Writes a payload header for `rows` into `out`; returns its length.
pub(crate) fn write_payload_header(out: &mut [u8], ext_seq: u16, rows: &[SampleRow]) -> usize {
    out[..2].copy_from_slice(&ext_seq.to_be_bytes());
    let mut pos = EXT_SEQ_LEN;
    for (i, row) in rows.iter().enumerate() {
        let h = &mut out[pos..pos + SRD_LEN];
        h[..2].copy_from_slice(&row.length.to_be_bytes());
        let line = (row.line & 0x7fff) | if row.field { 0x8000 } else { 0 };
        h[2..4].copy_from_slice(&line.to_be_bytes());
        let more = if i + 1 < rows.len() { 0x8000 } else { 0 };
        h[4..6].copy_from_slice(&((row.offset & 0x7fff) | more).to_be_bytes());
        pos += SRD_LEN;
    }
    pos
}

/// Writes the pixel data of every row of `list` (from `payload`) into a frame buffer of
/// `stride` bytes per row, converting from the wire sampling. Rows must have passed
/// [`RowList::check`]; returns the pixels written per row through `each_row(line, pixels)`.
pub(crate) fn unpack_rows(
    list: &RowList,
    payload: &[u8],
    sampling: Sampling,
    frame: &mut [u8],
    stride: usize,
    mut each_row: impl FnMut(usize, usize),
) {
    let mut pos = list.data_start;
    for row in list.rows() {
        let len = usize::from(row.length);
        let line = usize::from(row.line);
        let (Some(wire), Some(dst)) = (
            payload.get(pos..pos + len),
            frame.get_mut(line * stride..(line + 1) * stride),
        ) else {
            return;
        };
        sampling.unpack(wire, dst, usize::from(row.offset));
        each_row(
            line,
            len / sampling.pgroup_bytes() * sampling.pgroup_pixels(),
        );
        pos += len;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn header_round_trip_with_continuation() {
        let rows = [
            SampleRow {
                length: 8,
                field: false,
                line: 5,
                offset: 100,
            },
            SampleRow {
                length: 4,
                field: false,
                line: 6,
                offset: 0,
            },
        ];
        let mut buf = [0u8; 2 + 12 + 12];
        let n = write_payload_header(&mut buf, 0xabcd, &rows);
        assert_eq!(n, 14);
        assert_eq!(buf[6] & 0x80, 0x80, "C bit on the first row");
        assert_eq!(buf[12] & 0x80, 0, "no C bit on the last row");
        let list = parse_payload(&buf).unwrap();
        assert_eq!(list.ext_seq, 0xabcd);
        assert_eq!(list.rows(), &rows);
        assert_eq!(list.data_start(), 14);
        // Announcing one byte more than present is refused.
        assert_eq!(
            parse_payload(&buf[..25]).unwrap_err(),
            Malformed::PayloadHeader
        );
    }

    #[test]
    fn endless_continuation_is_bounded() {
        let mut buf = vec![0u8; 2 + SRD_LEN * (MAX_ROWS + 1)];
        for h in buf[2..].chunks_exact_mut(SRD_LEN) {
            h[4] = 0x80;
        }
        assert_eq!(parse_payload(&buf).unwrap_err(), Malformed::TooManyRows);
        buf.truncate(2 + SRD_LEN * 3);
        assert_eq!(parse_payload(&buf).unwrap_err(), Malformed::PayloadHeader);
    }
}
