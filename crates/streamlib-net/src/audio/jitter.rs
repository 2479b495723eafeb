//! The audio receive side: ST 2110-30 datagrams in, contiguous samples out.
//!
//! Packets are decoded into a ring of `reorder_window + 1` packet slots, keyed by their
//! (unwrapped 16-bit) sequence number, and leave strictly in sequence order:
//!
//! - The next expected packet leaves as soon as it is there; packets after a gap wait.
//! - A missing packet is declared **lost** once a packet `reorder_window` numbers later has
//!   arrived, or `max_wait` after the first packet behind the gap arrived, whichever comes
//!   first; it leaves as **silence of one packet time** (concealment), so the output timeline
//!   keeps its length.
//! - **Duplicates** are dropped (a 32768-packet window); a packet whose place already left
//!   (concealed) is dropped as **late**.
//! - A jump of more than `max_conceal` packets (a sender that restarted) is not filled with
//!   silence: what is held leaves, the gap is counted lost, and output restarts at the new
//!   packet (**resync**). So does a jump back: after [`AudioJitterBuffer::RESYNC_PACKETS`]
//!   packets in a row that are all late, duplicates or too old (a sender that restarted its
//!   numbering under the same SSRC), output follows the new numbering.
//!
//! Datagrams are never trusted: every length is checked before a byte is read, and the
//! payload must be exactly one packet time of the configured channels. Nothing is allocated
//! after construction.

use std::time::Duration;

use super::packetizer::AudioFormat;
use crate::NetError;
use crate::jitter::{Admission, SourceLock, StaleRun, placeable};
use crate::rtp::{RtpHeader, SeqVerdict, SequenceWindow};

const COMPONENT: &str = "AudioJitterBuffer";

/// Audio jitter buffer settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioJitterConfig {
    /// Accept only this payload type (`None`: any). Default 97.
    pub payload_type: Option<u8>,
    /// Packets a late packet may trail by and still be placed, 1 ..= 64. Default 8 (8 ms of
    /// 1 ms packets).
    pub reorder_window: usize,
    /// How long a gap is waited for once a packet behind it has arrived. Default 4 ms.
    pub max_wait: Duration,
    /// Longest gap, in packets, filled with silence; longer ones resync. Default 1000.
    pub max_conceal: u64,
}

impl Default for AudioJitterConfig {
    fn default() -> Self {
        Self {
            payload_type: Some(97),
            reorder_window: 8,
            max_wait: Duration::from_millis(4),
            max_conceal: 1000,
        }
    }
}

/// What the audio jitter buffer counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AudioReceiveCounters {
    /// Datagrams pushed.
    pub datagrams: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Packets accepted and delivered (or still held).
    pub packets: u64,
    /// Samples per channel delivered from received packets.
    pub samples: u64,
    /// Datagrams dropped as malformed: bad RTP, wrong payload type, or a payload that is not
    /// one packet time of the configured channels and encoding.
    pub malformed: u64,
    /// Datagrams from a second source (another SSRC) while the first one is live.
    pub foreign_ssrc: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Packets that arrived after a packet with a higher sequence number.
    pub reordered: u64,
    /// Packets dropped because their place had already left (concealed), or too old.
    pub late: u64,
    /// Packets never received in time (concealed, or skipped by a resync).
    pub lost: u64,
    /// Samples per channel of silence delivered in place of lost packets.
    pub concealed_samples: u64,
    /// Restarts after a jump longer than `max_conceal` (or a new source).
    pub resyncs: u64,
}

/// One packet time leaving the jitter buffer, in order.
#[derive(Debug, Clone, Copy)]
pub struct AudioChunk<'a> {
    /// RTP timestamp of the first sample.
    pub rtp_timestamp: u32,
    /// Interleaved samples, one packet time.
    pub samples: &'a [f32],
    /// Whether this is silence standing in for a lost packet.
    pub concealed: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    filled: bool,
    seq: u64,
    timestamp: u32,
    arrived_ns: u64,
}

/// Reorders, de-duplicates and conceals an ST 2110-30 stream (see the module docs).
#[derive(Debug)]
pub struct AudioJitterBuffer {
    format: AudioFormat,
    config: AudioJitterConfig,
    window: SequenceWindow,
    slots: Box<[Slot]>,
    samples: Box<[f32]>,
    silence: Box<[f32]>,
    /// The next sequence number to leave.
    next_out: Option<u64>,
    /// RTP timestamp the next concealed packet gets.
    next_ts: u32,
    source: SourceLock,
    /// Consecutive packets dropped as late, duplicate or too old.
    stale: StaleRun,
    counters: AudioReceiveCounters,
}

impl AudioJitterBuffer {
    /// Consecutive unplaceable packets (late, duplicate, too old) after which the buffer
    /// follows the source's new numbering.
    pub const RESYNC_PACKETS: u32 = StaleRun::LIMIT;

    /// A jitter buffer for `format`.
    pub fn new(format: AudioFormat, config: AudioJitterConfig) -> Result<Self, NetError> {
        format.check()?;
        if !(1..=64).contains(&config.reorder_window) {
            return Err(NetError::config(
                COMPONENT,
                "reorder_window",
                &config.reorder_window,
                "must be 1 ..= 64 packets",
            ));
        }
        let slots = config.reorder_window + 1;
        let per_packet = format.samples_per_packet();
        Ok(Self {
            format,
            config,
            window: SequenceWindow::new(),
            slots: vec![Slot::default(); slots].into_boxed_slice(),
            samples: vec![0.0; slots * per_packet].into_boxed_slice(),
            silence: vec![0.0; per_packet].into_boxed_slice(),
            next_out: None,
            next_ts: 0,
            source: SourceLock::default(),
            stale: StaleRun::default(),
            counters: AudioReceiveCounters::default(),
        })
    }

    /// The format.
    pub fn format(&self) -> &AudioFormat {
        &self.format
    }

    /// The counters.
    pub fn counters(&self) -> &AudioReceiveCounters {
        &self.counters
    }

    /// Accepts only packets of `ssrc` (an SDP's `a=ssrc:`), for good: a packet of any other
    /// SSRC is counted in `foreign_ssrc` and dropped even after the stream went silent. Without
    /// it, the first valid packet's SSRC is locked and another may take over only after
    /// 500 ms of silence.
    pub fn lock_ssrc(&mut self, ssrc: u32) {
        self.source.pin(ssrc);
    }

    /// The SSRC the buffer is locked to, once it has one.
    pub fn ssrc(&self) -> Option<u32> {
        self.source.ssrc()
    }

    /// Packets held, waiting for a gap before them.
    pub fn held(&self) -> usize {
        self.slots.iter().filter(|s| s.filled).count()
    }

    fn index(&self, seq: u64) -> usize {
        (seq % self.slots.len() as u64) as usize
    }

    /// Takes one datagram that arrived at `now_ns` (any monotonic ns); `out` gets every
    /// packet time that can leave now, in order.
    pub fn push(&mut self, datagram: &[u8], now_ns: u64, out: &mut impl FnMut(AudioChunk<'_>)) {
        self.counters.datagrams += 1;
        self.counters.bytes += datagram.len() as u64;
        let Ok((header, payload)) = RtpHeader::parse(datagram) else {
            self.counters.malformed += 1;
            return;
        };
        if self
            .config
            .payload_type
            .is_some_and(|pt| pt != header.payload_type)
            || payload.len() != self.format.payload_len()
        {
            self.counters.malformed += 1;
            return;
        }
        match self.source.admit(header.ssrc, now_ns) {
            Admission::Ours => {}
            Admission::Foreign => {
                self.counters.foreign_ssrc += 1;
                return;
            }
            Admission::TakeOver => self.resync(out),
        }
        let mut verdict = self.window.accept(u32::from(header.sequence));
        let unplaceable = match verdict {
            SeqVerdict::InOrder { seq, .. } | SeqVerdict::Reordered { seq } => {
                self.next_out.is_some_and(|next| seq < next)
            }
            SeqVerdict::Duplicate | SeqVerdict::TooOld => true,
        };
        if !unplaceable {
            self.stale.placed();
        } else if self.stale.stale() {
            // The source started its numbering over: follow it.
            self.resync(out);
            verdict = self.window.accept(u32::from(header.sequence));
        }
        let c = &mut self.counters;
        let Some(seq) = placeable(verdict, &mut c.reordered, &mut c.duplicates, &mut c.late) else {
            return;
        };
        let next = *self.next_out.get_or_insert(seq);
        if seq < next {
            self.counters.late += 1;
            return;
        }
        let ring = self.slots.len() as u64;
        if seq - next > self.config.max_conceal + ring {
            // A restart, not a gap: deliver what is held, skip the rest.
            self.flush(out);
            let from = self.next_out.unwrap_or(seq);
            self.counters.lost += seq.saturating_sub(from);
            self.counters.resyncs += 1;
            self.next_out = Some(seq);
        } else {
            // Make room: whatever is more than the ring behind this packet leaves now.
            while self.next_out.is_some_and(|n| seq >= n + ring) {
                self.emit_next(out);
            }
        }
        let index = self.index(seq);
        let per_packet = self.format.samples_per_packet();
        self.format.encoding.decode(
            payload,
            &mut self.samples[index * per_packet..(index + 1) * per_packet],
        );
        self.slots[index] = Slot {
            filled: true,
            seq,
            timestamp: header.timestamp,
            arrived_ns: now_ns,
        };
        self.counters.packets += 1;
        self.drain(now_ns, out);
    }

    /// Lets out what is due at `now_ns` without a new datagram (gaps waited on for
    /// `max_wait`). Call it regularly (every millisecond or so).
    pub fn poll(&mut self, now_ns: u64, out: &mut impl FnMut(AudioChunk<'_>)) {
        self.drain(now_ns, out);
    }

    /// Lets out what is held and starts over at the next packet (a new source, or one that
    /// restarted its numbering).
    fn resync(&mut self, out: &mut impl FnMut(AudioChunk<'_>)) {
        self.flush(out);
        self.window.reset();
        self.next_out = None;
        self.stale.placed();
        self.counters.resyncs += 1;
    }

    /// Lets out everything held, concealing the gaps between (end of stream).
    pub fn flush(&mut self, out: &mut impl FnMut(AudioChunk<'_>)) {
        let Some(highest) = self.highest_held() else {
            return;
        };
        while self.next_out.is_some_and(|n| n <= highest) {
            self.emit_next(out);
        }
    }

    fn highest_held(&self) -> Option<u64> {
        self.slots.iter().filter(|s| s.filled).map(|s| s.seq).max()
    }

    fn drain(&mut self, now_ns: u64, out: &mut impl FnMut(AudioChunk<'_>)) {
        let wait_ns = self.config.max_wait.as_nanos() as u64;
        let window = self.config.reorder_window as u64;
        loop {
            let Some(next) = self.next_out else { return };
            let slot = self.slots[self.index(next)];
            if slot.filled && slot.seq == next {
                self.emit_next(out);
                continue;
            }
            // A gap, known since the first packet behind it arrived.
            let Some(noticed_ns) = self
                .slots
                .iter()
                .filter(|s| s.filled)
                .map(|s| s.arrived_ns)
                .min()
            else {
                return;
            };
            let too_far = self.highest_held().is_some_and(|h| h - next >= window);
            if too_far || now_ns.saturating_sub(noticed_ns) >= wait_ns {
                self.emit_next(out);
            } else {
                return;
            }
        }
    }

    /// Lets the next packet out: received, or silence in its place.
    fn emit_next(&mut self, out: &mut impl FnMut(AudioChunk<'_>)) {
        let Some(next) = self.next_out else { return };
        let index = self.index(next);
        let slot = self.slots[index];
        let frames = self.format.frames_per_packet();
        if slot.filled && slot.seq == next {
            let per_packet = self.format.samples_per_packet();
            self.slots[index].filled = false;
            self.counters.samples += frames as u64;
            self.next_ts = slot.timestamp.wrapping_add(frames as u32);
            out(AudioChunk {
                rtp_timestamp: slot.timestamp,
                samples: &self.samples[index * per_packet..(index + 1) * per_packet],
                concealed: false,
            });
        } else {
            self.counters.lost += 1;
            self.counters.concealed_samples += frames as u64;
            let ts = self.next_ts;
            self.next_ts = ts.wrapping_add(frames as u32);
            out(AudioChunk {
                rtp_timestamp: ts,
                samples: &self.silence,
                concealed: true,
            });
        }
        self.next_out = Some(next + 1);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::audio::{AudioEncoding, AudioPacketizer, AudioPacketizerConfig};

    /// Packets 0..n of a mono L16 stream, packet `i` holding the value `i / 1000`.
    fn packets(n: u16, first_seq: u16) -> Vec<Vec<u8>> {
        let f = AudioFormat::new(AudioEncoding::L16, 1).unwrap();
        let cfg = AudioPacketizerConfig {
            initial_sequence: first_seq,
            ..Default::default()
        };
        let mut p = AudioPacketizer::new(f, cfg).unwrap();
        let mut out = Vec::new();
        for i in 0..n {
            let v = f32::from(i) / 1000.0;
            p.push(&[v; 48], u32::from(i) * 48, &mut |d: &[u8]| {
                out.push(d.to_vec());
            });
        }
        out
    }

    fn buffer() -> AudioJitterBuffer {
        let f = AudioFormat::new(AudioEncoding::L16, 1).unwrap();
        AudioJitterBuffer::new(f, AudioJitterConfig::default()).unwrap()
    }

    /// (timestamp, first sample × 1000 rounded, concealed) of each chunk.
    type Got = Vec<(u32, i32, bool)>;

    fn sink(got: &mut Got) -> impl FnMut(AudioChunk<'_>) + '_ {
        |c: AudioChunk<'_>| {
            got.push((
                c.rtp_timestamp,
                (c.samples[0] * 1000.0).round() as i32,
                c.concealed,
            ));
        }
    }

    #[test]
    fn reorders_drops_duplicates_and_conceals() {
        let p = packets(30, 0xfff0); // wraps the 16-bit sequence number
        let mut jb = buffer();
        let mut got = Got::new();
        for i in [0, 1, 3, 2, 2, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15] {
            jb.push(&p[i], 0, &mut sink(&mut got));
        }
        // 5 is lost: declared so once 13 (5 + 8) arrived.
        let c = *jb.counters();
        assert_eq!((c.reordered, c.duplicates, c.lost), (1, 1, 1), "{c:?}");
        assert_eq!(got.len(), 16);
        for (i, g) in got.iter().enumerate() {
            assert_eq!(g.0, i as u32 * 48);
            assert_eq!(g.2, i == 5, "{i}");
            assert_eq!(g.1, if i == 5 { 0 } else { i as i32 });
        }
        // 5 arriving now is late.
        jb.push(&p[5], 0, &mut sink(&mut got));
        assert_eq!(jb.counters().late, 1);
        assert_eq!(got.len(), 16);
    }

    #[test]
    fn gaps_are_waited_for_then_concealed_by_time() {
        let p = packets(6, 100);
        let mut jb = buffer();
        let mut got = Got::new();
        jb.push(&p[0], 0, &mut sink(&mut got));
        jb.push(&p[3], 1_000_000, &mut sink(&mut got));
        jb.push(&p[2], 1_500_000, &mut sink(&mut got));
        assert_eq!(got.len(), 1);
        assert_eq!(jb.held(), 2);
        jb.poll(4_900_000, &mut sink(&mut got));
        assert_eq!(got.len(), 1, "4 ms not yet passed since 3 arrived");
        jb.poll(5_000_000, &mut sink(&mut got));
        assert_eq!(got.len(), 4);
        assert_eq!(got[1], (48, 0, true));
        assert_eq!(got[2], (96, 2, false));
        jb.push(&p[1], 5_100_000, &mut sink(&mut got));
        assert_eq!(jb.counters().late, 1);
        // The sender stops mid-gap: flush conceals up to the last one held.
        jb.push(&p[5], 6_000_000, &mut sink(&mut got));
        jb.flush(&mut sink(&mut got));
        assert_eq!(got.len(), 6);
        assert_eq!((got[4].0, got[4].2, got[5].1), (192, true, 5));
    }

    #[test]
    fn long_jumps_resync_instead_of_filling_silence() {
        let p = packets(3, 0);
        let mut jb = buffer();
        let mut got = Got::new();
        jb.push(&p[0], 0, &mut sink(&mut got));
        // The same stream 5000 packets later.
        let mut far = p[1].clone();
        far[2..4].copy_from_slice(&5001u16.to_be_bytes());
        jb.push(&far, 0, &mut sink(&mut got));
        assert_eq!(got.len(), 2);
        let c = jb.counters();
        assert_eq!((c.resyncs, c.lost, c.concealed_samples), (1, 5000, 0));
    }

    #[test]
    fn a_sender_restarting_its_numbering_is_followed() {
        let mut jb = buffer();
        let mut got = Got::new();
        for d in &packets(100, 1000) {
            jb.push(d, 0, &mut sink(&mut got));
        }
        assert_eq!(got.len(), 100);
        // Restarted under the same SSRC at sequence 10: behind everything delivered.
        let restarted = packets(40, 10);
        for d in &restarted {
            jb.push(d, 0, &mut sink(&mut got));
        }
        let c = jb.counters();
        let stale = AudioJitterBuffer::RESYNC_PACKETS as usize;
        assert_eq!((c.resyncs, c.late), (1, stale as u64 - 1), "{c:?}");
        // Everything from the packet that triggered the resync on.
        assert_eq!(got.len(), 100 + 40 - (stale - 1));
        // A single late packet in a live stream does not resync.
        jb.push(&restarted[3], 0, &mut sink(&mut got));
        assert_eq!(jb.counters().resyncs, 1);
    }

    #[test]
    fn hostile_datagrams_are_counted_not_trusted() {
        let p = packets(1, 0);
        let mut jb = buffer();
        let mut got = Got::new();
        jb.push(&p[0][..50], 0, &mut sink(&mut got)); // short payload
        jb.push(&[0x80; 3], 0, &mut sink(&mut got));
        let mut wrong_pt = p[0].clone();
        wrong_pt[1] = 96;
        jb.push(&wrong_pt, 0, &mut sink(&mut got));
        let mut longer = p[0].clone();
        longer.extend_from_slice(&[0, 0]);
        jb.push(&longer, 0, &mut sink(&mut got));
        assert_eq!(jb.counters().malformed, 4);
        assert!(got.is_empty());
        let err = AudioJitterBuffer::new(
            AudioFormat::new(AudioEncoding::L24, 2).unwrap(),
            AudioJitterConfig {
                reorder_window: 0,
                ..Default::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("reorder_window = 0"), "{err}");
    }
}
