//! The receive side: datagrams in, whole frames out.
//!
//! Packets are written straight into a pooled frame buffer as they arrive, whatever their
//! order: RFC 4175 rows carry their own line and offset, so reordering inside a frame costs
//! nothing. The buffer holds up to `slots` frames being assembled, keyed by RTP timestamp.
//!
//! - A frame is **complete** when every pixel of every line has arrived; it is delivered at
//!   once (older frames still open are finalized first, so delivery stays in timestamp order).
//! - A frame that is not complete gets a **deadline** `window` after its marker packet, or
//!   after the first packet of a newer frame, whichever comes first (the reordering window,
//!   1–10 ms); also `frame_timeout` after its first packet. At its deadline it is finalized as
//!   **incomplete** and handled by the [`IncompletePolicy`].
//! - **Duplicates** (same extended sequence number) are dropped, using a 32768-packet window;
//!   packets of a frame already finalized are dropped as **late**.
//! - A source that **restarts** or whose clock **steps** (a sender restarted with the same
//!   SSRC, a PTP clock stepping at lock) sends packets that look older than everything seen:
//!   sequence numbers beyond the duplicate window, or timestamps more than a second behind.
//!   After [`JitterBuffer::RESYNC_PACKETS`] such packets in a row the buffer flushes and
//!   follows the new numbering ([`ReceiveCounters::resyncs`]); a few stray old packets do not
//!   trigger it.
//! - **Losses** are counted per frame from sequence-number gaps (inside the frame, and
//!   between the previous frame's last packet and this frame's first).
//!
//! Every datagram, however malformed, is counted and dropped, never trusted: lengths are
//! checked before any byte is read or written. No allocation per packet or per frame: frame
//! buffers come from a [`FramePool`] and all bookkeeping is sized at construction.

use std::time::Duration;

use streamlib_buffers::PoolBufMut;
use streamlib_ports::{FramePool, VideoFrame};

use streamlib_clock::LatencyHistogram;

use super::payload::{parse_payload, unpack_rows};
use crate::jitter::{Admission, SourceLock, StaleRun, placeable};
use crate::rtp::{Malformed, RtpHeader, SeqVerdict, SequenceWindow, extended_sequence};
use crate::{NetError, VideoFormat};

const COMPONENT: &str = "JitterBuffer";

/// What to do with a frame that is still incomplete at its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncompletePolicy {
    /// Drop it (counted). Downstream keeps showing the previous frame.
    #[default]
    Drop,
    /// Deliver it, with the lines that did not (fully) arrive listed; their pixels hold
    /// whatever the pooled buffer held before.
    DeliverMarked,
}

/// Jitter buffer settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// Reordering window, 1 ..= 10 ms.
    pub window: Duration,
    /// Frames assembled at once, 2 ..= 8.
    pub slots: usize,
    /// Incomplete frames.
    pub policy: IncompletePolicy,
    /// A frame is finalized this long after its first packet at the latest (a sender that
    /// stopped mid-frame).
    pub frame_timeout: Duration,
    /// Accept only this payload type (`None`: any).
    pub payload_type: Option<u8>,
}

impl Default for JitterConfig {
    /// 5 ms window, 3 slots, drop incomplete frames, 200 ms frame timeout, payload type 96.
    fn default() -> Self {
        Self {
            window: Duration::from_millis(5),
            slots: 3,
            policy: IncompletePolicy::Drop,
            frame_timeout: Duration::from_millis(200),
            payload_type: Some(96),
        }
    }
}

/// Lines `first .. first + count` of a frame did not (fully) arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineSpan {
    /// First missing line.
    pub first: u32,
    /// Missing lines from there.
    pub count: u32,
}

/// What the jitter buffer counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReceiveCounters {
    /// Datagrams pushed.
    pub datagrams: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Packets written into a frame.
    pub packets: u64,
    /// Datagrams dropped as malformed (see [`malformed_by`](Self::malformed_by)).
    pub malformed: u64,
    /// Per [`Malformed`] reason, in the order the enum declares them.
    pub malformed_by: [u64; 8],
    /// Datagrams from a second source (another SSRC) while the first one is live.
    pub foreign_ssrc: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Packets that arrived after a packet with a higher sequence number.
    pub reordered: u64,
    /// Packets dropped because their frame was already finalized, or too old to classify.
    pub late: u64,
    /// Packets never received (sequence gaps), summed over finalized frames.
    pub lost_packets: u64,
    /// Frames delivered complete.
    pub frames_complete: u64,
    /// Frames delivered incomplete ([`IncompletePolicy::DeliverMarked`]).
    pub frames_incomplete: u64,
    /// Incomplete frames dropped ([`IncompletePolicy::Drop`]).
    pub frames_dropped: u64,
    /// Packets dropped because no frame buffer was free (downstream holds them all).
    pub pool_exhausted: u64,
    /// Times the buffer followed a source that restarted or stepped its clock (see the
    /// module docs).
    pub resyncs: u64,
}

/// A frame leaving the jitter buffer.
#[derive(Debug)]
pub struct Delivered<'a> {
    /// The pixels (a pooled frame; its timing fields are left for the caller to stamp).
    pub frame: VideoFrame,
    /// Its RTP timestamp.
    pub rtp_timestamp: u32,
    /// Whether every line arrived.
    pub complete: bool,
    /// Lines that did not (empty when complete).
    pub missing: &'a [LineSpan],
    /// Packets of this frame never received.
    pub lost_packets: u64,
    /// From its first packet's arrival to delivery, ns.
    pub assembly_ns: u64,
}

struct Slot {
    active: bool,
    timestamp: u32,
    buf: Option<PoolBufMut<u8>>,
    line_px: Box<[u32]>,
    lines_done: u32,
    first_ns: u64,
    deadline_ns: u64,
    min_seq: u64,
    max_seq: u64,
    received: u64,
}

fn newer(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// Reassembles frames from RFC 4175 datagrams (see the module docs for the policy).
pub struct JitterBuffer {
    format: VideoFormat,
    stride: usize,
    pool: FramePool,
    config: JitterConfig,
    slots: Box<[Slot]>,
    sequence: SequenceWindow,
    counters: ReceiveCounters,
    missing: Vec<LineSpan>,
    last_timestamp: Option<u32>,
    last_max_seq: Option<u64>,
    source: SourceLock,
    /// Consecutive packets that looked far older than the stream (see `RESYNC_PACKETS`).
    stale: StaleRun,
    assembly: LatencyHistogram,
}

impl std::fmt::Debug for JitterBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JitterBuffer")
            .field("format", &self.format)
            .field("config", &self.config)
            .field("counters", &self.counters)
            .finish()
    }
}

impl JitterBuffer {
    /// Consecutive far-older packets after which the buffer follows the source's new
    /// numbering (see the module docs).
    pub const RESYNC_PACKETS: u32 = StaleRun::LIMIT;

    /// How far behind the newest timestamp (90 kHz ticks; 1 s) a packet must be to count
    /// towards a resync rather than as merely late.
    pub const RESYNC_TICKS: u32 = 90_000;

    /// A jitter buffer for `format`, taking frame buffers from `pool` (whose layout must be
    /// `format.layout()`, any stride).
    pub fn new(
        format: VideoFormat,
        pool: FramePool,
        config: JitterConfig,
    ) -> Result<Self, NetError> {
        format.check()?;
        let bad = |field, value: String, reason| NetError::Config {
            handler: COMPONENT,
            field,
            value,
            reason,
        };
        if !(Duration::from_millis(1)..=Duration::from_millis(10)).contains(&config.window) {
            return Err(bad(
                "window",
                format!("{:?}", config.window),
                "must be 1 ..= 10 ms",
            ));
        }
        if !(2..=8).contains(&config.slots) {
            return Err(bad("slots", config.slots.to_string(), "must be 2 ..= 8"));
        }
        let layout = pool.layout();
        if (layout.width(), layout.height(), layout.format())
            != (format.width, format.height, format.sampling.pixel_format())
        {
            return Err(bad(
                "pool layout",
                format!("{}x{} {}", layout.width(), layout.height(), layout.format()),
                "must match the stream's width, height and frame format",
            ));
        }
        let height = format.height as usize;
        let slots = (0..config.slots)
            .map(|_| Slot {
                active: false,
                timestamp: 0,
                buf: None,
                line_px: vec![0; height].into_boxed_slice(),
                lines_done: 0,
                first_ns: 0,
                deadline_ns: u64::MAX,
                min_seq: 0,
                max_seq: 0,
                received: 0,
            })
            .collect();
        Ok(Self {
            format,
            stride: layout.stride() as usize,
            pool,
            config,
            slots,
            sequence: SequenceWindow::new(),
            counters: ReceiveCounters::default(),
            missing: Vec::with_capacity(height),
            last_timestamp: None,
            last_max_seq: None,
            source: SourceLock::default(),
            stale: StaleRun::default(),
            assembly: LatencyHistogram::new(),
        })
    }

    /// The stream's format.
    pub fn format(&self) -> &VideoFormat {
        &self.format
    }

    /// What was counted so far.
    pub fn counters(&self) -> &ReceiveCounters {
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

    /// Assembly latency (first packet to delivery) of every finalized frame, ns.
    pub fn assembly_latency(&self) -> &LatencyHistogram {
        &self.assembly
    }

    /// Frames being assembled now.
    pub fn pending(&self) -> usize {
        self.slots.iter().filter(|s| s.active).count()
    }

    fn malformed(&mut self, why: Malformed) {
        self.counters.malformed += 1;
        self.counters.malformed_by[why as usize] += 1;
    }

    /// Takes one datagram received at `now_ns` (any monotonic ns origin), then finalizes
    /// what is due. Frames leave through `sink`, oldest first.
    pub fn push(&mut self, datagram: &[u8], now_ns: u64, sink: &mut impl FnMut(Delivered<'_>)) {
        self.accept(datagram, now_ns, sink);
        self.poll(now_ns, sink);
    }

    fn accept(&mut self, datagram: &[u8], now_ns: u64, sink: &mut impl FnMut(Delivered<'_>)) {
        self.counters.datagrams += 1;
        self.counters.bytes += datagram.len() as u64;
        let (header, payload) = match RtpHeader::parse(datagram) {
            Ok(parsed) => parsed,
            Err(why) => return self.malformed(why),
        };
        if self
            .config
            .payload_type
            .is_some_and(|pt| pt != header.payload_type)
        {
            return self.malformed(Malformed::PayloadType);
        }
        let rows = match parse_payload(payload).and_then(|r| r.check(&self.format).map(|()| r)) {
            Ok(rows) => rows,
            Err(why) => return self.malformed(why),
        };
        match self.source.admit(header.ssrc, now_ns) {
            Admission::Ours => {}
            Admission::Foreign => {
                self.counters.foreign_ssrc += 1;
                return;
            }
            Admission::TakeOver => self.reset_source(sink, now_ns),
        }
        let ext_seq = extended_sequence(rows.ext_seq, header.sequence);
        let ts = header.timestamp;
        // Far older than the stream, by sequence number or by time: a restart or a clock
        // step after enough of them in a row, otherwise late.
        let stale = self
            .last_timestamp
            .is_some_and(|last| !newer(ts, last) && last.wrapping_sub(ts) > Self::RESYNC_TICKS);
        let mut verdict = self.sequence.accept(ext_seq);
        if stale || verdict == SeqVerdict::TooOld {
            if !self.stale.stale() {
                self.counters.late += 1;
                return;
            }
            self.counters.resyncs += 1;
            self.reset_source(sink, now_ns);
            verdict = self.sequence.accept(ext_seq);
        }
        self.stale.placed();
        let c = &mut self.counters;
        let Some(seq) = placeable(verdict, &mut c.reordered, &mut c.duplicates, &mut c.late) else {
            return;
        };
        if self.last_timestamp.is_some_and(|last| !newer(ts, last)) {
            self.counters.late += 1;
            return;
        }
        let Some(i) = self.slot_for(ts, now_ns, sink) else {
            self.counters.pool_exhausted += 1;
            return;
        };
        let (sampling, stride, width) = (self.format.sampling, self.stride, self.format.width);
        let window = self.window_ns();
        let slot = &mut self.slots[i];
        let Some(buf) = slot.buf.as_deref_mut() else {
            return;
        };
        let (line_px, lines_done) = (&mut slot.line_px, &mut slot.lines_done);
        unpack_rows(&rows, payload, sampling, buf, stride, |line, px| {
            let before = line_px[line];
            let after = before.saturating_add(px as u32);
            line_px[line] = after;
            if before < width && after >= width {
                *lines_done += 1;
            }
        });
        self.counters.packets += 1;
        slot.received += 1;
        slot.min_seq = slot.min_seq.min(seq);
        slot.max_seq = slot.max_seq.max(seq);
        if header.marker {
            slot.deadline_ns = slot.deadline_ns.min(now_ns + window);
        }
        if slot.lines_done >= self.format.height {
            self.finalize_through(ts, now_ns, sink);
        }
    }

    fn window_ns(&self) -> u64 {
        self.config.window.as_nanos() as u64
    }

    /// The slot assembling `ts`, opening one (finalizing the oldest if all are busy).
    fn slot_for(
        &mut self,
        ts: u32,
        now_ns: u64,
        sink: &mut impl FnMut(Delivered<'_>),
    ) -> Option<usize> {
        if let Some(i) = self
            .slots
            .iter()
            .position(|s| s.active && s.timestamp == ts)
        {
            return Some(i);
        }
        if self.slots.iter().all(|s| s.active) {
            let oldest = self.oldest(|_| true)?;
            self.finalize(oldest, now_ns, sink);
        }
        let buf = self.pool.acquire().ok()?;
        // Frames older than this one should be done within the window.
        let deadline = now_ns + self.window_ns();
        let mut newest_other = None;
        for s in self.slots.iter_mut().filter(|s| s.active) {
            if newer(ts, s.timestamp) {
                s.deadline_ns = s.deadline_ns.min(deadline);
            } else {
                newest_other = Some(s.timestamp);
            }
        }
        let i = self.slots.iter().position(|s| !s.active)?;
        let slot = &mut self.slots[i];
        slot.active = true;
        slot.timestamp = ts;
        slot.buf = Some(buf);
        slot.line_px.fill(0);
        slot.lines_done = 0;
        slot.first_ns = now_ns;
        // A frame older than one already open arrives late: it gets the window only.
        slot.deadline_ns = if newest_other.is_some() {
            deadline
        } else {
            u64::MAX
        };
        slot.min_seq = u64::MAX;
        slot.max_seq = 0;
        slot.received = 0;
        Some(i)
    }

    /// The active slot with the oldest timestamp among those `pred` accepts.
    fn oldest(&self, pred: impl Fn(&Slot) -> bool) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, s) in self.slots.iter().enumerate() {
            if s.active
                && pred(s)
                && best.is_none_or(|b| newer(self.slots[b].timestamp, s.timestamp))
            {
                best = Some(i);
            }
        }
        best
    }

    /// Finalizes every open frame not newer than `ts`, oldest first.
    fn finalize_through(&mut self, ts: u32, now_ns: u64, sink: &mut impl FnMut(Delivered<'_>)) {
        while let Some(i) = self.oldest(|s| !newer(s.timestamp, ts)) {
            self.finalize(i, now_ns, sink);
        }
    }

    /// Finalizes frames whose deadline has passed (and every older one). Call it regularly
    /// even when no datagram arrives.
    pub fn poll(&mut self, now_ns: u64, sink: &mut impl FnMut(Delivered<'_>)) {
        let timeout = self.config.frame_timeout.as_nanos() as u64;
        loop {
            let due =
                |s: &Slot| s.deadline_ns <= now_ns || now_ns.saturating_sub(s.first_ns) >= timeout;
            // The newest due frame: finalizing through it keeps delivery in order.
            let mut newest_due: Option<u32> = None;
            for s in self.slots.iter().filter(|s| s.active && due(s)) {
                if newest_due.is_none_or(|t| newer(s.timestamp, t)) {
                    newest_due = Some(s.timestamp);
                }
            }
            let Some(ts) = newest_due else { return };
            self.finalize_through(ts, now_ns, sink);
        }
    }

    /// Finalizes every open frame (end of stream, shutdown).
    pub fn flush(&mut self, now_ns: u64, sink: &mut impl FnMut(Delivered<'_>)) {
        while let Some(i) = self.oldest(|_| true) {
            self.finalize(i, now_ns, sink);
        }
    }

    /// Forgets the stream's numbering (a new source, or one that restarted), after letting
    /// out what is held.
    fn reset_source(&mut self, sink: &mut impl FnMut(Delivered<'_>), now_ns: u64) {
        self.flush(now_ns, sink);
        self.sequence.reset();
        self.last_timestamp = None;
        self.last_max_seq = None;
        self.stale.placed();
    }

    fn finalize(&mut self, i: usize, now_ns: u64, sink: &mut impl FnMut(Delivered<'_>)) {
        let height = self.format.height;
        let width = self.format.width;
        let slot = &mut self.slots[i];
        slot.active = false;
        let Some(buf) = slot.buf.take() else { return };
        let ts = slot.timestamp;
        let mut lost = (slot.max_seq + 1)
            .saturating_sub(slot.min_seq)
            .saturating_sub(slot.received);
        if let Some(prev) = self.last_max_seq
            && slot.min_seq > prev + 1
        {
            lost += slot.min_seq - prev - 1;
        }
        self.counters.lost_packets += lost;
        if self.last_timestamp.is_none_or(|last| newer(ts, last)) {
            self.last_timestamp = Some(ts);
            self.last_max_seq = Some(slot.max_seq.max(self.last_max_seq.unwrap_or(0)));
        }
        let assembly_ns = now_ns.saturating_sub(slot.first_ns);
        self.assembly.record(assembly_ns);
        let complete = slot.lines_done >= height;
        self.missing.clear();
        if !complete {
            if self.config.policy == IncompletePolicy::Drop {
                self.counters.frames_dropped += 1;
                return;
            }
            for (line, &px) in slot.line_px.iter().enumerate() {
                if px >= width {
                    continue;
                }
                match self.missing.last_mut() {
                    Some(span) if span.first + span.count == line as u32 => span.count += 1,
                    // Within the capacity reserved at construction (one span per line).
                    _ => self.missing.push(LineSpan {
                        first: line as u32,
                        count: 1,
                    }),
                }
            }
            self.counters.frames_incomplete += 1;
        } else {
            self.counters.frames_complete += 1;
        }
        sink(Delivered {
            frame: self.pool.frame(buf),
            rtp_timestamp: ts,
            complete,
            missing: &self.missing,
            lost_packets: lost,
            assembly_ns,
        });
    }
}
