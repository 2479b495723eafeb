//! `NetworkSend`: a sink that sends each frame it receives as an ST 2110-20 RTP stream.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use streamlib_ports::{
    HandlerError, InputPort, InputRef, MemoryCaps, Ports, ProcessContext, StartContext,
    StreamHandler, VideoFrame,
};

use streamlib_clock::{monotonic_now_ns, set_thread_timer_slack_ns, sleep_until_monotonic_ns};

use crate::pacing::Pacer;
use crate::rtp::rtp_timestamp_90k;
use crate::sdp::{RefClock, SdpSession};
use crate::socket::{SendBatch, SocketConfig, sender_socket};
use crate::stats::Histogram;
use crate::{NetError, Pacing, Packetizer, PacketizerConfig, VideoFormat};

const HANDLER: &str = "NetworkSend";

/// How a [`NetworkSend`] sends.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkSendConfig {
    /// Receiver or multicast group, and port.
    pub destination: SocketAddr,
    /// Local address to send from (`None`: any).
    pub bind: Option<SocketAddr>,
    /// What the stream carries; frames of another size or format are counted and skipped.
    pub format: VideoFormat,
    /// RTP settings and packet size.
    pub rtp: PacketizerConfig,
    /// ST 2110-21 sender type.
    pub pacing: Pacing,
    /// Share of the frame period the packets are spread over (ST 2110-21's RACTIVE;
    /// [`Pacer::ACTIVE_1080`] by default).
    pub active_ratio: f64,
    /// Socket options.
    pub socket: SocketConfig,
    /// Hands each burst to the kernel as one UDP GSO message where the kernel has it
    /// (Linux 4.18+; falls back to one datagram per message otherwise). Turns on the
    /// packetizer's [`uniform_length`](PacketizerConfig::uniform_length) padding so that
    /// bursts are runs of one length. Default true.
    pub gso: bool,
}

impl NetworkSendConfig {
    /// `format` to `destination`, narrow pacing, default RTP and socket settings.
    pub fn new(destination: SocketAddr, format: VideoFormat) -> Self {
        Self {
            destination,
            bind: None,
            format,
            rtp: PacketizerConfig::default(),
            pacing: Pacing::Narrow,
            active_ratio: Pacer::ACTIVE_1080,
            socket: SocketConfig::default(),
            gso: true,
        }
    }
}

/// A snapshot of a [`NetworkSend`]'s counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SendStats {
    /// Frames sent.
    pub frames: u64,
    /// Datagrams sent.
    pub packets: u64,
    /// Bytes sent (UDP payload).
    pub bytes: u64,
    /// Failed `sendmmsg` calls (their packets are lost).
    pub send_errors: u64,
    /// Frames replaced by a newer one before the sender got to them.
    pub frames_skipped: u64,
    /// Frames not matching the configured format (or not in CPU memory).
    pub frames_rejected: u64,
    /// Gaps between consecutive bursts of a frame (sends of [`SendStats::burst`] packets;
    /// single packets when the burst is 1), as sent: median, ns. Nominally
    /// [`SendStats::burst_interval_ns`].
    pub gap_p50_ns: u64,
    /// 99th percentile gap, ns.
    pub gap_p99_ns: u64,
    /// Largest gap, ns.
    pub gap_max_ns: u64,
    /// From a frame's first packet to its last, median, ns.
    pub frame_span_p50_ns: u64,
    /// Packets the pacer sends at each wake-up (see [`Pacer::new`]); 0 before the start.
    pub burst: u64,
    /// The nominal time between bursts (`burst × TRS`), ns; 0 before the start.
    pub burst_interval_ns: u64,
    /// Whether bursts go out as UDP GSO messages (false if disabled or the kernel refused).
    pub gso: bool,
}

#[derive(Default)]
struct Shared {
    frames: AtomicU64,
    packets: AtomicU64,
    bytes: AtomicU64,
    send_errors: AtomicU64,
    frames_skipped: AtomicU64,
    frames_rejected: AtomicU64,
    burst: AtomicU64,
    burst_interval: AtomicU64,
    gso: AtomicBool,
    gaps: Histogram,
    spans: Histogram,
}

/// Reads a [`NetworkSend`]'s counters from any thread.
#[derive(Clone)]
pub struct SendStatsHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SendStatsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.snapshot().fmt(f)
    }
}

impl SendStatsHandle {
    /// The counters now.
    pub fn snapshot(&self) -> SendStats {
        let s = &*self.shared;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SendStats {
            frames: load(&s.frames),
            packets: load(&s.packets),
            bytes: load(&s.bytes),
            send_errors: load(&s.send_errors),
            frames_skipped: load(&s.frames_skipped),
            frames_rejected: load(&s.frames_rejected),
            gap_p50_ns: s.gaps.percentile(50.0),
            gap_p99_ns: s.gaps.percentile(99.0),
            gap_max_ns: s.gaps.max(),
            frame_span_p50_ns: s.spans.percentile(50.0),
            burst: load(&s.burst),
            burst_interval_ns: load(&s.burst_interval),
            gso: s.gso.load(Ordering::Relaxed),
        }
    }

    /// The histogram of gaps between bursts.
    pub fn gaps(&self) -> &Histogram {
        &self.shared.gaps
    }
}

struct Worker {
    thread: JoinHandle<Result<(), NetError>>,
    stop: Arc<AtomicBool>,
}

/// A sink with one input `"video"` (`[cpu]`): every frame it reads is packetized (RFC 4175,
/// GPM) and sent, paced over the frame period, by a send thread it owns (started in
/// `on_start`, joined in `on_stop`). `process` only hands the frame over (a reference): a
/// newer frame replaces one not yet started (counted as skipped).
pub struct NetworkSend {
    config: NetworkSendConfig,
    input: InputPort<VideoFrame>,
    queue: Arc<ArrayQueue<VideoFrame>>,
    shared: Arc<Shared>,
    worker: Option<Worker>,
}

impl NetworkSend {
    /// Checks the configuration (format, packet size, payload type).
    pub fn new(config: NetworkSendConfig) -> Result<Self, NetError> {
        Packetizer::new(config.format, config.rtp)?;
        if !(config.active_ratio > 0.0 && config.active_ratio <= 1.0) {
            return Err(NetError::Config {
                handler: HANDLER,
                field: "active_ratio",
                value: config.active_ratio.to_string(),
                reason: "must be in (0, 1]",
            });
        }
        Ok(Self {
            config,
            input: InputPort::new("video", MemoryCaps::CPU),
            queue: Arc::new(ArrayQueue::new(1)),
            shared: Arc::new(Shared::default()),
            worker: None,
        })
    }

    /// The input (`"video"`).
    pub fn input(&self) -> InputRef<VideoFrame> {
        self.input.handle()
    }

    /// A handle to read the counters.
    pub fn stats(&self) -> SendStatsHandle {
        SendStatsHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The SDP describing this stream, sent from `origin`, timestamped against `ref_clock`.
    pub fn sdp(&self, origin: std::net::IpAddr, ref_clock: RefClock) -> SdpSession {
        SdpSession {
            name: "streamlib".into(),
            origin,
            destination: self.config.destination,
            ttl: u8::try_from(self.config.socket.multicast_ttl).unwrap_or(u8::MAX),
            payload_type: self.config.rtp.payload_type,
            format: self.config.format,
            pacing: self.config.pacing,
            ref_clock,
        }
    }

    fn matches(&self, frame: &VideoFrame) -> bool {
        let f = &self.config.format;
        frame.width() == f.width
            && frame.height() == f.height
            && frame.format() == f.sampling.pixel_format()
            && frame.cpu_bytes().is_some()
    }

    fn stop_worker(&mut self) -> Result<(), NetError> {
        let Some(worker) = self.worker.take() else {
            return Ok(());
        };
        worker.stop.store(true, Ordering::Release);
        worker.thread.thread().unpark();
        worker.thread.join().map_err(|_| NetError::ThreadPanicked {
            handler: HANDLER,
            what: "send",
        })?
    }
}

impl StreamHandler for NetworkSend {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input)
    }

    fn on_start(&mut self, _ctx: &StartContext<'_>) -> Result<(), HandlerError> {
        self.stop_worker()?;
        let socket = sender_socket(
            self.config.destination,
            self.config.bind,
            &self.config.socket,
        )?;
        let mut rtp = self.config.rtp;
        rtp.uniform_length |= self.config.gso;
        let packetizer = Packetizer::new(self.config.format, rtp)?;
        let gso = self.config.gso;
        let stop = Arc::new(AtomicBool::new(false));
        let (queue, shared, stop2) = (
            Arc::clone(&self.queue),
            Arc::clone(&self.shared),
            Arc::clone(&stop),
        );
        let (pacing, ratio) = (self.config.pacing, self.config.active_ratio);
        let thread = thread::Builder::new()
            .name("streamlib-net-send".into())
            .spawn(move || {
                let batch = if gso {
                    SendBatch::with_gso(packetizer.max_packet_len())
                } else {
                    SendBatch::new(packetizer.max_packet_len())
                };
                send_loop(
                    &socket, packetizer, batch, pacing, ratio, &queue, &shared, &stop2,
                );
                Ok(())
            })
            .map_err(|source| NetError::Thread {
                handler: HANDLER,
                what: "send",
                source,
            })?;
        self.worker = Some(Worker { thread, stop });
        Ok(())
    }

    fn process(&mut self, _ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        let Some(frame) = self.input.recv() else {
            return Ok(());
        };
        if !self.matches(&frame) {
            self.shared.frames_rejected.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        if self.queue.force_push(frame).is_some() {
            self.shared.frames_skipped.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(worker) = &self.worker {
            worker.thread.thread().unpark();
        }
        Ok(())
    }

    fn on_stop(&mut self) -> Result<(), HandlerError> {
        Ok(self.stop_worker()?)
    }
}

impl Drop for NetworkSend {
    fn drop(&mut self) {
        let _ = self.stop_worker();
    }
}

/// Sends queued frames until told to stop and the queue is empty.
#[allow(
    clippy::too_many_arguments,
    reason = "the send thread's whole state, passed once"
)]
fn send_loop(
    socket: &std::net::UdpSocket,
    mut packetizer: Packetizer,
    mut batch: SendBatch,
    pacing: Pacing,
    active_ratio: f64,
    queue: &ArrayQueue<VideoFrame>,
    shared: &Shared,
    stop: &AtomicBool,
) {
    let format = *packetizer.format();
    let pacer = Pacer::new(
        pacing,
        format.fps.period_ns(),
        active_ratio,
        packetizer.packets_per_frame(),
    );
    // Sleeps end within a µs or two of the deadline instead of the default 50 µs slack.
    if let Err(err) = set_thread_timer_slack_ns(1) {
        tracing::debug!(%err, "timer slack not set; pacing will be coarser");
    }
    let burst = pacer.burst().min(crate::socket::MAX_BATCH);
    shared.burst.store(burst as u64, Ordering::Relaxed);
    let interval = if pacing == Pacing::Burst {
        0
    } else {
        (pacer.gap_ns() * burst as f64) as u64
    };
    shared.burst_interval.store(interval, Ordering::Relaxed);
    shared.gso.store(batch.gso(), Ordering::Relaxed);
    loop {
        let Some(frame) = queue.pop() else {
            if stop.load(Ordering::Acquire) {
                return;
            }
            thread::park_timeout(Duration::from_millis(5));
            continue;
        };
        let Some(pixels) = frame.cpu_bytes() else {
            continue;
        };
        let ts = rtp_timestamp_90k(frame.timestamp_ns());
        let Ok(mut packets) = packetizer.frame(pixels, frame.stride() as usize, ts) else {
            shared.frames_rejected.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let start = monotonic_now_ns();
        let mut last_send: Option<u64> = None;
        let mut i = 0;
        while !packets.is_done() {
            // A sender that fell behind finds its next burst already due and sends it at
            // once: it catches up a burst at a time, never in one larger burst.
            let _ = sleep_until_monotonic_ns(start + pacer.offset_ns(i));
            while batch.len() < burst && !packets.is_done() {
                if !batch.push_with(|buf| packets.next_into(buf)) {
                    break;
                }
                i += 1;
            }
            let bytes = batch.bytes();
            let now = monotonic_now_ns();
            let (sent, err) = batch.send(socket);
            if let Some(prev) = last_send {
                shared.gaps.record(now.saturating_sub(prev));
            }
            last_send = Some(now);
            shared.packets.fetch_add(sent as u64, Ordering::Relaxed);
            if err.is_some() {
                shared.send_errors.fetch_add(1, Ordering::Relaxed);
            } else {
                shared.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
            }
        }
        if let Some(last) = last_send {
            shared.spans.record(last.saturating_sub(start));
        }
        shared.gso.store(batch.gso(), Ordering::Relaxed);
        shared.frames.fetch_add(1, Ordering::Relaxed);
    }
}
