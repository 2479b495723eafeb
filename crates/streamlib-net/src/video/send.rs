//! `NetworkSend`: a sink that sends each frame it receives as an ST 2110-20 RTP stream.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use streamlib_ports::{
    Caps, HandlerError, InputPort, InputRef, MemoryCaps, PixelFormat, Ports, ProcessContext,
    StartContext, StreamHandler, VideoCaps, VideoFrame,
};

use streamlib_clock::{
    LatencyHistogram, monotonic_now_ns, set_thread_timer_slack_ns, sleep_until_monotonic_ns,
};

use super::sdp::SdpSession;
use crate::pacing::Pacer;
use crate::rtp::rtp_timestamp_90k;
use crate::sdp::RefClock;
use crate::socket::{SendBatch, SocketConfig, sender_socket};
use crate::stats::{StatsHandle, StatsSource, add, load};
use crate::worker::{self, Worker};
use crate::{NetError, PacketPacing, Packetizer, PacketizerConfig, Sampling, VideoFormat};

const HANDLER: &str = "NetworkSend";

/// Why a negotiated odd width cannot be sent as 4:2:2, and the fix.
const ODD_WIDTH: &str = "4:2:2 needs an even width; set size= to one (a scaler is then inserted)";

/// How a [`NetworkSend`] sends.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkSendConfig {
    /// Receiver or multicast group, and port.
    pub destination: SocketAddr,
    /// Local address to send from (`None`: any).
    pub bind: Option<SocketAddr>,
    /// What the stream carries. Its sampling always applies (the input accepts that
    /// sampling's frame format: UYVY for 4:2:2, RGBA8 for RGB); its size and rate only where
    /// [`fix_size`](Self::fix_size) / [`fix_rate`](Self::fix_rate) say so, or where the
    /// input's caps leave them open (an upstream that declares no size, a handler driven
    /// without a runtime). Frames of another size or format are counted and skipped.
    pub format: VideoFormat,
    /// Whether the input requires `format`'s size (negotiation then scales to it); false:
    /// the size negotiated on the input at start is sent.
    pub fix_size: bool,
    /// Whether the input requires `format`'s frame rate; false: the negotiated rate (the
    /// graph's) is sent and paced.
    pub fix_rate: bool,
    /// RTP settings and packet size.
    pub rtp: PacketizerConfig,
    /// ST 2110-21 sender type.
    pub pacing: PacketPacing,
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
    /// Where to write the stream's SDP at start, once the size and rate are known (`None`:
    /// nothing is written). Its origin is the address this host sends to `destination` from
    /// ([`sdp_origin`]).
    pub sdp_file: Option<PathBuf>,
    /// The reference clock the SDP file names (default: PTP, traceable).
    pub ref_clock: RefClock,
}

impl NetworkSendConfig {
    /// Exactly `format` (size and rate fixed) to `destination`, narrow pacing, default RTP
    /// and socket settings, no SDP file.
    pub fn new(destination: SocketAddr, format: VideoFormat) -> Self {
        Self {
            destination,
            bind: None,
            format,
            fix_size: true,
            fix_rate: true,
            rtp: PacketizerConfig::default(),
            pacing: PacketPacing::Narrow,
            active_ratio: Pacer::ACTIVE_1080,
            socket: SocketConfig::default(),
            gso: true,
            sdp_file: None,
            ref_clock: RefClock::Ptp { grandmaster: None },
        }
    }

    /// `sampling` at whatever size and rate the input negotiates (1920×1080 at 30 fps when
    /// it negotiates none), otherwise as [`new`](Self::new).
    pub fn following_input(destination: SocketAddr, sampling: Sampling) -> Self {
        let format = VideoFormat {
            sampling,
            width: 1920,
            height: 1080,
            fps: streamlib_clock::Rational::fps(30),
        };
        Self {
            fix_size: false,
            fix_rate: false,
            ..Self::new(destination, format)
        }
    }

    /// The caps the input accepts: the sampling's frame format, at the fixed size and rate.
    pub fn input_caps(&self) -> Caps {
        let f = &self.format;
        let mut caps = VideoCaps::any().with_formats(&[f.sampling.pixel_format()]);
        if self.fix_size {
            caps = caps.with_size(f.width, f.height);
        }
        if self.fix_rate {
            caps = caps.with_rate(f.fps);
        }
        Caps::Video(caps)
    }
}

/// The address this host sends to `destination` from (what an SDP's origin names), or the
/// loopback address of its family when there is no route.
pub fn sdp_origin(destination: SocketAddr) -> IpAddr {
    // Connecting a UDP socket sends nothing: it only asks the routing table for the source.
    let route = || {
        let any: SocketAddr = match destination {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = std::net::UdpSocket::bind(any).ok()?;
        socket.connect(destination).ok()?;
        Some(socket.local_addr().ok()?.ip()).filter(|ip| !ip.is_unspecified())
    };
    route().unwrap_or(match destination {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
    })
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
    /// Frames not matching the stream's format (or not in CPU memory), each change of
    /// what arrives logged once as a warning.
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
    gaps: LatencyHistogram,
    spans: LatencyHistogram,
}

impl StatsSource<SendStats> for Shared {
    fn snapshot(&self) -> SendStats {
        SendStats {
            frames: load(&self.frames),
            packets: load(&self.packets),
            bytes: load(&self.bytes),
            send_errors: load(&self.send_errors),
            frames_skipped: load(&self.frames_skipped),
            frames_rejected: load(&self.frames_rejected),
            gap_p50_ns: self.gaps.quantile(0.5),
            gap_p99_ns: self.gaps.quantile(0.99),
            gap_max_ns: self.gaps.max(),
            frame_span_p50_ns: self.spans.quantile(0.5),
            burst: load(&self.burst),
            burst_interval_ns: load(&self.burst_interval),
            gso: self.gso.load(Ordering::Relaxed),
        }
    }

    fn histogram(&self) -> Option<&LatencyHistogram> {
        Some(&self.gaps)
    }
}

/// Reads a [`NetworkSend`]'s counters from any thread.
pub type SendStatsHandle = StatsHandle<SendStats>;

/// A sink with one input `"video"` (`[cpu]`): every frame it reads is packetized (RFC 4175,
/// GPM) and sent, paced over the frame period, by a send thread it owns (started in
/// `on_start`, joined in `on_stop`). `process` only hands the frame over (a reference): a
/// newer frame replaces one not yet started (counted as skipped).
///
/// The input's caps ([`NetworkSendConfig::input_caps`]) are the sampling's frame format at
/// any size and rate, unless the configuration fixes them; at start the stream takes the
/// size and rate negotiated on the input, and writes its SDP file if it has one. A frame
/// that still does not match (a size change mid-stream) is counted in `frames_rejected`,
/// with one warning per change of what arrives.
pub struct NetworkSend {
    config: NetworkSendConfig,
    /// What is sent: the configuration's format with the negotiated fields, from the start.
    format: VideoFormat,
    /// What the last rejected frame looked like (width, height, format; `None` for GPU
    /// memory), so that a warning is logged once per change and not per frame.
    rejected: Option<(u32, u32, Option<PixelFormat>)>,
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
            return Err(NetError::config(
                HANDLER,
                "active_ratio",
                &config.active_ratio,
                "must be in (0, 1]",
            ));
        }
        Ok(Self {
            format: config.format,
            rejected: None,
            input: InputPort::new("video", MemoryCaps::CPU).with_format(config.input_caps()),
            config,
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
        StatsHandle::new(self.shared.clone())
    }

    /// What the stream carries: the configured format before the start, the negotiated one
    /// after it.
    pub fn format(&self) -> VideoFormat {
        self.format
    }

    /// The SDP describing this stream ([`format`](Self::format)), sent from `origin`,
    /// timestamped against `ref_clock`.
    pub fn sdp(&self, origin: IpAddr, ref_clock: RefClock) -> SdpSession {
        SdpSession {
            ttl: u8::try_from(self.config.socket.multicast_ttl).unwrap_or(u8::MAX),
            payload_type: self.config.rtp.payload_type,
            pacing: self.config.pacing,
            ref_clock,
            ..SdpSession::new(origin, self.config.destination, self.format)
        }
    }

    fn matches(&self, frame: &VideoFrame) -> bool {
        let f = &self.format;
        frame.width() == f.width
            && frame.height() == f.height
            && frame.format() == f.sampling.pixel_format()
            && frame.cpu_bytes().is_some()
    }

    /// Counts a frame that does not match; warns when it differs from the last one
    /// rejected.
    fn reject(&mut self, frame: &VideoFrame) {
        self.shared.frames_rejected.fetch_add(1, Ordering::Relaxed);
        // Counted on the port too: the runtime's stats name every rejecting handler.
        self.input.reject();
        let cpu = frame.cpu_bytes().is_some();
        let seen = (frame.width(), frame.height(), cpu.then(|| frame.format()));
        if self.rejected == Some(seen) {
            return;
        }
        self.rejected = Some(seen);
        let f = &self.format;
        let mismatch = NetError::FrameMismatch {
            handler: HANDLER,
            width: f.width,
            height: f.height,
            sampling: f.sampling.to_string(),
            got_width: frame.width(),
            got_height: frame.height(),
            got_format: if cpu {
                frame.format().as_str().to_owned()
            } else {
                "gpu".to_owned()
            },
        };
        tracing::warn!(
            "{mismatch}: such frames are not sent (counted in frames_rejected) until they \
             match again"
        );
    }

    /// The format to send: the configured one with the fields the input negotiated.
    fn negotiated_format(&self) -> Result<VideoFormat, NetError> {
        let mut format = self.config.format;
        let info = self.input.negotiated_video();
        if let Some(info) = info {
            if info.format != format.sampling.pixel_format() {
                return Err(NetError::config(
                    HANDLER,
                    "negotiated format",
                    &info.format.as_str(),
                    "is not the frame format of the configured sampling",
                ));
            }
            if !self.config.fix_size {
                (format.width, format.height) = (info.width, info.height);
            }
        } else if !self.config.fix_size {
            tracing::warn!(
                "{HANDLER}: no size was negotiated on its input (its upstream declares none); \
                 sending {}x{}, frames of another size are rejected",
                format.width,
                format.height
            );
        }
        let rate = self
            .input
            .negotiated_format()
            .and_then(|caps| caps.as_video().and_then(|v| v.rate.fixed()));
        if let (false, Some(rate)) = (self.config.fix_rate, rate) {
            format.fps = rate.0;
        }
        format.check().map_err(|e| match e {
            NetError::Config {
                field: "width",
                value,
                ..
            } if !self.config.fix_size
                && format.width % 2 == 1
                && format.width <= VideoFormat::MAX_SIDE =>
            {
                NetError::Config {
                    handler: HANDLER,
                    field: "negotiated width",
                    value,
                    reason: ODD_WIDTH,
                }
            }
            NetError::Config {
                field,
                value,
                reason,
                ..
            } => NetError::Config {
                handler: HANDLER,
                field,
                value,
                reason,
            },
            NetError::Frame { source, .. } => NetError::Frame {
                handler: HANDLER,
                source,
            },
            other => other,
        })?;
        Ok(format)
    }

    /// Writes the SDP file, if configured.
    fn write_sdp(&self) -> Result<(), NetError> {
        let Some(path) = &self.config.sdp_file else {
            return Ok(());
        };
        let text = self
            .sdp(sdp_origin(self.config.destination), self.config.ref_clock)
            .to_sdp();
        std::fs::write(path, text).map_err(|source| NetError::SdpWrite {
            handler: HANDLER,
            path: path.clone(),
            source,
        })
    }
}

impl StreamHandler for NetworkSend {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input)
    }

    fn on_start(&mut self, _ctx: &StartContext<'_>) -> Result<(), HandlerError> {
        worker::stop(&mut self.worker)?;
        self.format = self.negotiated_format()?;
        self.rejected = None;
        let mut rtp = self.config.rtp;
        rtp.uniform_length |= self.config.gso;
        let packetizer = Packetizer::new(self.format, rtp)?;
        let socket = sender_socket(
            self.config.destination,
            self.config.bind,
            &self.config.socket,
        )?;
        self.write_sdp()?;
        let gso = self.config.gso;
        let (queue, shared) = (Arc::clone(&self.queue), Arc::clone(&self.shared));
        let (pacing, ratio) = (self.config.pacing, self.config.active_ratio);
        let worker = Worker::spawn(HANDLER, "send", "streamlib-net-send", move |stop| {
            let batch = if gso {
                SendBatch::with_gso(packetizer.max_packet_len())
            } else {
                SendBatch::new(packetizer.max_packet_len())
            };
            send_loop(
                &socket, packetizer, batch, pacing, ratio, &queue, &shared, stop,
            );
        })?;
        self.worker = Some(worker);
        Ok(())
    }

    fn process(&mut self, _ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        let Some(frame) = self.input.recv() else {
            return Ok(());
        };
        if !self.matches(&frame) {
            self.reject(&frame);
            return Ok(());
        }
        self.rejected = None;
        if self.queue.force_push(frame).is_some() {
            add(&self.shared.frames_skipped, 1);
        }
        if let Some(worker) = &self.worker {
            worker.wake();
        }
        Ok(())
    }

    fn on_stop(&mut self) -> Result<(), HandlerError> {
        Ok(worker::stop(&mut self.worker)?)
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
    pacing: PacketPacing,
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
    let interval = if pacing == PacketPacing::Burst {
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
