//! SMPTE ST 2110-30 (AES67) linear PCM audio: the stream format, the sample codec (f32 ↔ L16 /
//! L24 big-endian) and the packetizer.
//!
//! An ST 2110-30 packet is an RTP header followed by one packet time of interleaved samples,
//! big-endian, two (L16) or three (L24) bytes each; no payload header. Timestamps count
//! samples at the sampling rate (48 kHz), modulo 2^32.

use std::fmt;

use crate::NetError;
use crate::rtp::{RTP_HEADER_LEN, RtpHeader, check_dynamic_payload_type, check_packet_size};
use crate::udp_payload_for_mtu;

const FORMAT: &str = "AudioFormat";
const PACKETIZER: &str = "AudioPacketizer";

/// Sample encoding on the wire (RFC 3190 / RFC 3551): signed, big-endian, interleaved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AudioEncoding {
    /// 16-bit linear PCM (`L16`).
    L16,
    /// 24-bit linear PCM (`L24`), ST 2110-30's usual choice.
    #[default]
    L24,
}

impl AudioEncoding {
    /// Bytes per sample: 2 or 3.
    pub fn bytes_per_sample(self) -> usize {
        match self {
            AudioEncoding::L16 => 2,
            AudioEncoding::L24 => 3,
        }
    }

    /// The SDP `rtpmap` encoding name.
    pub fn sdp_name(self) -> &'static str {
        match self {
            AudioEncoding::L16 => "L16",
            AudioEncoding::L24 => "L24",
        }
    }

    /// The encoding an SDP names (case-insensitive), if supported.
    pub fn from_sdp(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("L16") {
            Some(AudioEncoding::L16)
        } else if name.eq_ignore_ascii_case("L24") {
            Some(AudioEncoding::L24)
        } else {
            None
        }
    }

    /// Writes `samples` (clamped to −1 ..= 1, rounded to the nearest step) into `out`, which
    /// must hold `samples.len() × bytes_per_sample()` bytes.
    pub fn encode(self, samples: &[f32], out: &mut [u8]) {
        match self {
            AudioEncoding::L16 => {
                for (s, o) in samples.iter().zip(out.chunks_exact_mut(2)) {
                    o.copy_from_slice(&(quantize(*s, 32_768.0) as i16).to_be_bytes());
                }
            }
            AudioEncoding::L24 => {
                for (s, o) in samples.iter().zip(out.chunks_exact_mut(3)) {
                    let v = quantize(*s, 8_388_608.0).to_be_bytes();
                    o.copy_from_slice(&v[1..]);
                }
            }
        }
    }

    /// Reads big-endian samples from `wire` into `out` as f32 in −1 .. 1.
    pub fn decode(self, wire: &[u8], out: &mut [f32]) {
        match self {
            AudioEncoding::L16 => {
                for (w, o) in wire.chunks_exact(2).zip(out.iter_mut()) {
                    *o = f32::from(i16::from_be_bytes([w[0], w[1]])) / 32_768.0;
                }
            }
            AudioEncoding::L24 => {
                for (w, o) in wire.chunks_exact(3).zip(out.iter_mut()) {
                    // Sign-extend from the top: the low byte is zero, then shift back.
                    let v = i32::from_be_bytes([w[0], w[1], w[2], 0]) >> 8;
                    *o = v as f32 / 8_388_608.0;
                }
            }
        }
    }
}

/// `x × full` rounded to the nearest integer and clamped to the signed range `-full ..
/// full - 1`; NaN becomes 0.
fn quantize(x: f32, full: f32) -> i32 {
    // Scaling by a power of two is exact in f32, so rounding sees the true value.
    (x * full).round().clamp(-full, full - 1.0) as i32
}

impl fmt::Display for AudioEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sdp_name())
    }
}

/// Packet time: how much audio each packet carries (ST 2110-30 / AES67).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PacketTime {
    /// 1 ms (48 samples per channel at 48 kHz): the ST 2110-30 and AES67 default.
    #[default]
    Ms1,
    /// 125 µs (6 samples per channel at 48 kHz): ST 2110-30 level C, low latency.
    Us125,
}

impl PacketTime {
    /// Duration in ns.
    pub fn ns(self) -> u64 {
        match self {
            PacketTime::Ms1 => 1_000_000,
            PacketTime::Us125 => 125_000,
        }
    }

    /// The SDP `a=ptime` value, in ms.
    pub fn sdp_value(self) -> &'static str {
        match self {
            PacketTime::Ms1 => "1",
            PacketTime::Us125 => "0.125",
        }
    }

    /// The packet time an `a=ptime` value (ms) names, if supported.
    pub fn from_sdp(value: &str) -> Option<Self> {
        match value.trim() {
            "1" | "1.0" | "1.00" => Some(PacketTime::Ms1),
            "0.125" | ".125" | "0.12" => Some(PacketTime::Us125),
            _ => None,
        }
    }
}

/// The RTP clock rate (and sampling rate) ST 2110-30 requires every receiver to support.
pub const AUDIO_CLOCK_RATE: u32 = 48_000;

/// Most channels a stream may carry (ST 2110-30 conformance levels A–C go to 8 at 1 ms).
pub const MAX_AUDIO_CHANNELS: u16 = 8;

/// What one ST 2110-30 stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AudioFormat {
    /// L16 or L24.
    pub encoding: AudioEncoding,
    /// Channels, 1 ..= [`MAX_AUDIO_CHANNELS`], interleaved.
    pub channels: u16,
    /// Samples per second per channel: 48 000 (or 96 000); also the RTP clock rate.
    pub sample_rate: u32,
    /// Audio per packet.
    pub packet_time: PacketTime,
}

impl AudioFormat {
    /// `channels` of `encoding` at 48 kHz, 1 ms packets.
    ///
    /// ```
    /// use streamlib_net::{AudioEncoding, AudioFormat};
    /// let f = AudioFormat::new(AudioEncoding::L24, 2)?;
    /// assert_eq!((f.frames_per_packet(), f.payload_len()), (48, 48 * 2 * 3));
    /// # Ok::<(), streamlib_net::NetError>(())
    /// ```
    pub fn new(encoding: AudioEncoding, channels: u16) -> Result<Self, NetError> {
        let format = Self {
            encoding,
            channels,
            sample_rate: AUDIO_CLOCK_RATE,
            packet_time: PacketTime::Ms1,
        };
        format.check()?;
        Ok(format)
    }

    /// The same format with another packet time.
    pub fn with_packet_time(self, packet_time: PacketTime) -> Self {
        Self {
            packet_time,
            ..self
        }
    }

    /// Checks channels and rate.
    pub fn check(&self) -> Result<(), NetError> {
        if !(1..=MAX_AUDIO_CHANNELS).contains(&self.channels) {
            return Err(NetError::config(
                FORMAT,
                "channels",
                &self.channels,
                "must be 1 ..= 8",
            ));
        }
        if self.sample_rate != 48_000 && self.sample_rate != 96_000 {
            return Err(NetError::config(
                FORMAT,
                "sample_rate",
                &self.sample_rate,
                "ST 2110-30 streams run at 48000 (or 96000) Hz",
            ));
        }
        Ok(())
    }

    /// Samples per channel in one packet (48 at 48 kHz, 1 ms).
    pub fn frames_per_packet(&self) -> usize {
        (u64::from(self.sample_rate) * self.packet_time.ns() / 1_000_000_000) as usize
    }

    /// Interleaved samples in one packet.
    pub fn samples_per_packet(&self) -> usize {
        self.frames_per_packet() * usize::from(self.channels)
    }

    /// RTP payload bytes of one packet.
    pub fn payload_len(&self) -> usize {
        self.samples_per_packet() * self.encoding.bytes_per_sample()
    }

    /// Datagram bytes of one packet (RTP header included).
    pub fn packet_len(&self) -> usize {
        RTP_HEADER_LEN + self.payload_len()
    }
}

/// The RTP timestamp of a sample taken at `ns`, at `rate` Hz: `ns × rate / 10^9 mod 2^32`.
///
/// ```
/// use streamlib_net::rtp_timestamp_audio;
/// assert_eq!(rtp_timestamp_audio(1_000_000_000, 48_000), 48_000);
/// assert_eq!(rtp_timestamp_audio(1_000_000, 48_000), 48);
/// ```
pub fn rtp_timestamp_audio(ns: u64, rate: u32) -> u32 {
    (u128::from(ns) * u128::from(rate) / 1_000_000_000) as u32
}

/// RTP settings of an audio sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioPacketizerConfig {
    /// Dynamic payload type, 96 ..= 127. Default 97.
    pub payload_type: u8,
    /// Synchronisation source identifier.
    pub ssrc: u32,
    /// First sequence number.
    pub initial_sequence: u16,
    /// Largest UDP payload (RTP header included). Default 1472 (1500-byte IPv4 MTU).
    pub max_udp_payload: usize,
    /// Input timestamps are trusted only when they jump: while a buffer's timestamp lies
    /// within this many ticks of where the previous buffer ended, the stream continues sample
    /// by sample (timestamps from a ticking source jitter); beyond it, the packet being filled
    /// is padded with silence and sent, and the stream restarts at the new timestamp.
    /// Default 960 (20 ms at 48 kHz).
    pub resync_ticks: u32,
}

impl Default for AudioPacketizerConfig {
    fn default() -> Self {
        Self {
            payload_type: 97,
            ssrc: 0x5354_4c41, // "STLA"
            initial_sequence: 0,
            max_udp_payload: udp_payload_for_mtu(1500, false),
            resync_ticks: 960,
        }
    }
}

/// Cuts interleaved f32 audio into ST 2110-30 packets of one packet time each.
///
/// Buffers of any length go in through [`push`](Self::push); whole packets come out as they
/// fill. Keeps the sequence number and the sample count across buffers; allocates nothing
/// after construction.
///
/// ```
/// use streamlib_net::*;
/// let format = AudioFormat::new(AudioEncoding::L16, 2)?;
/// let mut p = AudioPacketizer::new(format, AudioPacketizerConfig::default())?;
/// let mut sizes = Vec::new();
/// // 2.5 ms of stereo: two packets now, the rest waits for more samples.
/// p.push(&[0.25; 120 * 2], 0, &mut |packet: &[u8]| sizes.push(packet.len()));
/// assert_eq!(sizes, [12 + 48 * 2 * 2; 2]);
/// assert_eq!(p.pending_frames(), 24);
/// # Ok::<(), streamlib_net::NetError>(())
/// ```
#[derive(Debug, Clone)]
pub struct AudioPacketizer {
    format: AudioFormat,
    config: AudioPacketizerConfig,
    sequence: u16,
    /// Samples of the packet being filled.
    staged: Box<[f32]>,
    filled: usize,
    /// RTP timestamp of `staged[0]`.
    staged_ts: u32,
    /// RTP timestamp the next sample pushed continues from (`None` before the first).
    next_ts: Option<u32>,
    packet: Box<[u8]>,
    packets: u64,
    resyncs: u64,
}

impl AudioPacketizer {
    /// A packetizer for `format`. Fails if a packet would not fit `max_udp_payload` or the
    /// payload type is not dynamic.
    pub fn new(format: AudioFormat, config: AudioPacketizerConfig) -> Result<Self, NetError> {
        format.check()?;
        check_packet_size(
            PACKETIZER,
            config.max_udp_payload,
            format.packet_len(),
            "must hold one packet time of every channel (RTP header + samples), and fit a UDP datagram (65507)",
        )?;
        check_dynamic_payload_type(PACKETIZER, config.payload_type)?;
        Ok(Self {
            format,
            config,
            sequence: config.initial_sequence,
            staged: vec![0.0; format.samples_per_packet()].into_boxed_slice(),
            filled: 0,
            staged_ts: 0,
            next_ts: None,
            packet: vec![0; format.packet_len()].into_boxed_slice(),
            packets: 0,
            resyncs: 0,
        })
    }

    /// The format.
    pub fn format(&self) -> &AudioFormat {
        &self.format
    }

    /// The RTP settings.
    pub fn config(&self) -> &AudioPacketizerConfig {
        &self.config
    }

    /// Bytes of every datagram it writes.
    pub fn packet_len(&self) -> usize {
        self.format.packet_len()
    }

    /// The sequence number the next packet gets.
    pub fn next_sequence(&self) -> u16 {
        self.sequence
    }

    /// Samples per channel waiting for the next packet to fill.
    pub fn pending_frames(&self) -> usize {
        self.filled / usize::from(self.format.channels)
    }

    /// Packets written so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Times the input timestamps jumped and the stream restarted (see
    /// [`AudioPacketizerConfig::resync_ticks`]).
    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }

    /// Writes one packet of exactly [`AudioFormat::samples_per_packet`] interleaved samples,
    /// stamped `rtp_timestamp`, into `out`; returns its length. `None` (nothing written, no
    /// sequence number used) if `samples` or `out` has the wrong size.
    pub fn packet_into(
        &mut self,
        samples: &[f32],
        rtp_timestamp: u32,
        out: &mut [u8],
    ) -> Option<usize> {
        if samples.len() != self.format.samples_per_packet() {
            return None;
        }
        let len = write_packet(
            &self.format,
            &self.config,
            self.sequence,
            rtp_timestamp,
            samples,
            out,
        )?;
        self.sequence = self.sequence.wrapping_add(1);
        self.packets += 1;
        Some(len)
    }

    /// Adds interleaved `samples` whose first sample has RTP timestamp `rtp_timestamp`
    /// (see [`rtp_timestamp_audio`]); calls `emit` with every packet that fills. A trailing
    /// partial frame (fewer samples than channels) is ignored.
    pub fn push(&mut self, samples: &[f32], rtp_timestamp: u32, emit: &mut impl FnMut(&[u8])) {
        let channels = usize::from(self.format.channels);
        let samples = &samples[..samples.len() / channels * channels];
        if samples.is_empty() {
            return;
        }
        let next = match self.next_ts {
            Some(expected)
                if (rtp_timestamp.wrapping_sub(expected) as i32).unsigned_abs()
                    <= self.config.resync_ticks =>
            {
                expected
            }
            Some(_) => {
                self.flush(emit);
                self.resyncs += 1;
                rtp_timestamp
            }
            None => rtp_timestamp,
        };
        self.next_ts = Some(next);
        let mut pos = 0;
        while pos < samples.len() {
            if self.filled == 0 {
                self.staged_ts = self.next_ts.unwrap_or(next);
            }
            let n = (self.staged.len() - self.filled).min(samples.len() - pos);
            self.staged[self.filled..self.filled + n].copy_from_slice(&samples[pos..pos + n]);
            self.filled += n;
            pos += n;
            self.next_ts = self.next_ts.map(|t| t.wrapping_add((n / channels) as u32));
            if self.filled == self.staged.len() {
                self.emit_staged(emit);
            }
        }
    }

    /// Pads the packet being filled with silence and emits it (nothing if none is).
    pub fn flush(&mut self, emit: &mut impl FnMut(&[u8])) {
        if self.filled == 0 {
            return;
        }
        let pad = self.staged.len() - self.filled;
        self.staged[self.filled..].fill(0.0);
        self.next_ts = self
            .next_ts
            .map(|t| t.wrapping_add((pad / usize::from(self.format.channels)) as u32));
        self.emit_staged(emit);
    }

    fn emit_staged(&mut self, emit: &mut impl FnMut(&[u8])) {
        self.filled = 0;
        if let Some(len) = write_packet(
            &self.format,
            &self.config,
            self.sequence,
            self.staged_ts,
            &self.staged,
            &mut self.packet,
        ) {
            self.sequence = self.sequence.wrapping_add(1);
            self.packets += 1;
            emit(&self.packet[..len]);
        }
    }
}

fn write_packet(
    format: &AudioFormat,
    config: &AudioPacketizerConfig,
    sequence: u16,
    timestamp: u32,
    samples: &[f32],
    out: &mut [u8],
) -> Option<usize> {
    let len = format.packet_len();
    let out = out.get_mut(..len)?;
    let header = RtpHeader {
        marker: false,
        payload_type: config.payload_type,
        sequence,
        timestamp,
        ssrc: config.ssrc,
    };
    let pos = header.write(out)?;
    format.encoding.encode(samples, &mut out[pos..]);
    Some(len)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn codec_rounds_and_clamps() {
        let mut wire = [0u8; 3 * 6];
        let input = [
            1000.4 / 8_388_608.0,
            1.0,
            -1.0,
            2.0,
            f32::NAN,
            -1000.6 / 8_388_608.0,
        ];
        AudioEncoding::L24.encode(&input, &mut wire);
        assert_eq!(&wire[3..6], &[0x7f, 0xff, 0xff], "1.0 clamps to full scale");
        assert_eq!(
            &wire[6..9],
            &[0x80, 0x00, 0x00],
            "-1.0 is the most negative"
        );
        assert_eq!(&wire[9..12], &[0x7f, 0xff, 0xff], "beyond 1 clamps");
        assert_eq!(&wire[12..15], &[0, 0, 0], "NaN is silence");
        assert_eq!(&wire[..3], &[0x00, 0x03, 0xe8], "1000.4 rounds to 1000");
        assert_eq!(
            &wire[15..18],
            &[0xff, 0xfc, 0x17],
            "-1000.6 rounds to -1001"
        );
        let mut back = [9.0f32; 6];
        AudioEncoding::L24.decode(&wire, &mut back);
        assert_eq!(back[2], -1.0);
        assert_eq!(back[0], 1000.0 / 8_388_608.0);
        assert_eq!(back[5], -1001.0 / 8_388_608.0);

        let mut wire = [0u8; 4];
        AudioEncoding::L16.encode(&[-0.5, 0.25 + 0.6 / 32_768.0], &mut wire);
        assert_eq!(wire, [0xc0, 0x00, 0x20, 0x01]);
        let mut back = [0f32; 2];
        AudioEncoding::L16.decode(&wire, &mut back);
        assert_eq!(back, [-0.5, 0.25 + 1.0 / 32_768.0]);
    }

    #[test]
    fn packets_follow_the_sample_count_not_jittery_timestamps() {
        let f = AudioFormat::new(AudioEncoding::L24, 2).unwrap();
        let mut p = AudioPacketizer::new(f, AudioPacketizerConfig::default()).unwrap();
        let headers = std::cell::RefCell::new(Vec::new());
        let mut emit = |d: &[u8]| {
            assert_eq!(d.len(), 12 + 48 * 2 * 3);
            headers.borrow_mut().push(RtpHeader::parse(d).unwrap().0);
        };
        // 10 ms buffers stamped 10 ms apart with ±0.2 ms jitter: timestamps follow samples.
        p.push(&[0.1; 480 * 2], 1000, &mut emit);
        p.push(&[0.1; 480 * 2], 1000 + 480 + 10, &mut emit);
        p.push(&[0.1; 100 * 2], 1000 + 960 - 7, &mut emit);
        let headers = || headers.borrow().clone();
        let seen = headers();
        assert_eq!(seen.len(), 22);
        for (i, h) in seen.iter().enumerate() {
            assert_eq!(h.sequence as usize, i);
            assert_eq!(h.timestamp, 1000 + 48 * i as u32);
            assert_eq!(h.payload_type, 97);
        }
        assert_eq!(p.pending_frames(), 1060 - 22 * 48);
        // A jump of a second: the partial packet goes out padded, the stream restarts.
        p.push(&[0.1; 48 * 2], 100_000, &mut emit);
        assert_eq!(p.resyncs(), 1);
        let seen = headers();
        assert_eq!(seen.len(), 24);
        assert_eq!(seen[22].timestamp, 1000 + 48 * 22);
        assert_eq!(seen[23].timestamp, 100_000);
    }

    #[test]
    fn configs_and_formats_are_checked() {
        assert!(AudioFormat::new(AudioEncoding::L24, 0).is_err());
        let err = AudioFormat::new(AudioEncoding::L24, 9)
            .unwrap_err()
            .to_string();
        assert!(err.contains("channels = 9"), "{err}");
        let f = AudioFormat::new(AudioEncoding::L24, 8).unwrap();
        assert_eq!(f.packet_len(), 12 + 48 * 8 * 3);
        let small = AudioPacketizerConfig {
            max_udp_payload: 1000,
            ..Default::default()
        };
        assert!(AudioPacketizer::new(f, small).is_err());
        let f = f.with_packet_time(PacketTime::Us125);
        assert_eq!(f.frames_per_packet(), 6);
        let bad_pt = AudioPacketizerConfig {
            payload_type: 10,
            ..Default::default()
        };
        let err = AudioPacketizer::new(f, bad_pt).unwrap_err().to_string();
        assert!(err.contains("payload_type = 10"), "{err}");
        let mut p = AudioPacketizer::new(f, AudioPacketizerConfig::default()).unwrap();
        let mut out = [0u8; 200];
        assert_eq!(p.packet_into(&[0.0; 5], 0, &mut out), None);
        assert_eq!(p.packet_into(&[0.0; 48], 0, &mut out), Some(12 + 48 * 3));
        assert_eq!(p.next_sequence(), 1);
    }
}
