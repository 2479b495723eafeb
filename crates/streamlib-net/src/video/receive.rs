//! `NetworkReceive`: a source that publishes the frames of an ST 2110-20 RTP stream.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use crossbeam_queue::ArrayQueue;
use streamlib_ports::{
    Caps, FramePool, HandlerError, MemoryCaps, OutputPort, OutputRef, Ports, ProcessContext,
    StartContext, StreamHandler, VideoCaps, VideoFrame,
};

use streamlib_clock::LatencyHistogram;

use super::jitter::{Delivered, JitterBuffer, JitterConfig, LineSpan, ReceiveCounters};
use super::sdp::SdpSession;
use crate::receive::ReceiveEndpoint;
use crate::rtp::{Malformed, rtp_time_ns};
use crate::socket::SocketConfig;
use crate::stats::{StatsHandle, StatsSource, add, load};
use crate::worker::{self, ReceivedStream, SocketCounters, Worker};
use crate::{NetError, VideoFormat};

const HANDLER: &str = "NetworkReceive";

/// Which time a [`NetworkReceive`] stamps on the frames it publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FrameTimestamps {
    /// The receiving runtime's tick that published the frame (default).
    #[default]
    Tick,
    /// The sender's media time, from the RTP timestamp: the time nearest the tick whose
    /// 90 kHz timestamp it is ([`rtp_time_ns`](crate::rtp_time_ns)). Meaningful when both
    /// runtimes run on one timescale (PTP / TAI, as ST 2110 requires): a frame then carries
    /// the same time on both machines (to one 90 kHz tick), and the frame number of that
    /// time on the tick's frame rate.
    Media,
}

/// How a [`NetworkReceive`] listens.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkReceiveConfig {
    /// Where it listens and which sender it accepts (address, group, source, SSRC).
    pub endpoint: ReceiveEndpoint,
    /// What the stream carries.
    pub format: VideoFormat,
    /// Reordering window, slots, incomplete-frame policy, payload type.
    pub jitter: JitterConfig,
    /// Socket options.
    pub socket: SocketConfig,
    /// Frames the output pool holds beyond the jitter buffer's slots (frames downstream
    /// handlers may keep). Default 8.
    pub extra_frames: usize,
    /// Asks the kernel for UDP GRO (Linux 5.0+): datagrams a GSO sender sent together
    /// arrive as one buffer, split here, which saves most of the per-datagram kernel work.
    /// Default true; ignored where the kernel refuses it.
    pub gro: bool,
    /// Which time published frames carry. Default [`FrameTimestamps::Tick`].
    pub timestamps: FrameTimestamps,
}

impl NetworkReceiveConfig {
    /// `format` on `bind`, unicast, default jitter and socket settings.
    pub fn new(bind: SocketAddr, format: VideoFormat) -> Self {
        Self::with_endpoint(ReceiveEndpoint::new(bind), format)
    }

    /// `format` on `endpoint`, default jitter and socket settings.
    pub fn with_endpoint(endpoint: ReceiveEndpoint, format: VideoFormat) -> Self {
        Self {
            endpoint,
            format,
            jitter: JitterConfig::default(),
            socket: SocketConfig::default(),
            extra_frames: 8,
            gro: true,
            timestamps: FrameTimestamps::Tick,
        }
    }

    /// What an SDP describes: its port, bound to its multicast group (joined) or to its
    /// unicast address when that address is this host's (else the unspecified address of its
    /// family), its format and payload type.
    pub fn from_sdp(sdp: &SdpSession) -> Self {
        let mut config = Self::with_endpoint(
            ReceiveEndpoint::for_destination(sdp.destination),
            sdp.format,
        );
        config.jitter.payload_type = Some(sdp.payload_type);
        config
    }
}

impl NetworkReceiveConfig {
    /// The caps of the frames it publishes: the sampling's frame format at the stream's
    /// size and frame rate, all fixed.
    pub fn output_caps(&self) -> Caps {
        let f = &self.format;
        Caps::Video(VideoCaps::fixed(f.sampling.pixel_format(), f.width, f.height).with_rate(f.fps))
    }
}

/// A snapshot of a [`NetworkReceive`]'s counters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceiveStats {
    /// The jitter buffer's counters (packets, malformed, duplicates, reordered, late, lost,
    /// frames complete / incomplete / dropped).
    pub counters: ReceiveCounters,
    /// Frames written to the output.
    pub frames_published: u64,
    /// Frames assembled but replaced by a newer one before a tick published them.
    pub frames_superseded: u64,
    /// Failed `recvmmsg` calls.
    pub recv_errors: u64,
    /// Datagrams not of this stream, dropped: from another address than the configured
    /// `source`, plus those of another SSRC (`counters.foreign_ssrc`).
    pub foreign_packets: u64,
    /// Assembly latency (first packet to frame ready), median, ns.
    pub assembly_p50_ns: u64,
    /// Assembly latency, 99th percentile, ns.
    pub assembly_p99_ns: u64,
    /// Frame ready to published on a tick, median, ns.
    pub publish_wait_p50_ns: u64,
    /// The publishing tick's time minus the frame's media time (its RTP timestamp, see
    /// [`FrameTimestamps::Media`]), median, ns: the end-to-end latency from capture to
    /// publication when both ends share a timescale (PTP); meaningless otherwise.
    pub media_latency_p50_ns: u64,
    /// The same, 99th percentile, ns.
    pub media_latency_p99_ns: u64,
    /// Frames whose media time was after the tick that published them: a clock that does
    /// not share the sender's timescale (or is not yet locked to it).
    pub frames_from_future: u64,
    /// Missing lines of the last incomplete frame delivered (policy `DeliverMarked`).
    pub last_missing: Vec<LineSpan>,
}

struct Shared {
    counters: Mutex<ReceiveCounters>,
    last_missing: Mutex<Vec<LineSpan>>,
    published: AtomicU64,
    superseded: AtomicU64,
    socket: Arc<SocketCounters>,
    from_future: AtomicU64,
    assembly: LatencyHistogram,
    publish_wait: LatencyHistogram,
    media_latency: LatencyHistogram,
}

impl StatsSource<ReceiveStats> for Shared {
    fn snapshot(&self) -> ReceiveStats {
        let counters = *self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        ReceiveStats {
            counters,
            foreign_packets: load(&self.socket.foreign_source) + counters.foreign_ssrc,
            frames_published: load(&self.published),
            frames_superseded: load(&self.superseded),
            recv_errors: load(&self.socket.recv_errors),
            assembly_p50_ns: self.assembly.quantile(0.5),
            assembly_p99_ns: self.assembly.quantile(0.99),
            publish_wait_p50_ns: self.publish_wait.quantile(0.5),
            media_latency_p50_ns: self.media_latency.quantile(0.5),
            media_latency_p99_ns: self.media_latency.quantile(0.99),
            frames_from_future: load(&self.from_future),
            last_missing: self
                .last_missing
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }
}

/// Reads a [`NetworkReceive`]'s counters from any thread.
pub type ReceiveStatsHandle = StatsHandle<ReceiveStats>;

/// A source with one output `"video"` (`[cpu]`): frames of `format`'s frame pixel format
/// (UYVY for 4:2:2, RGBA8 for RGB) from a pre-allocated [`FramePool`]. The output's caps are
/// fixed to that format, size and frame rate ([`NetworkReceiveConfig::output_caps`]: what
/// the SDP says), so the graph negotiates from them before the first packet.
///
/// A receive thread it owns (started in `on_start`, joined in `on_stop`) reads datagrams in
/// batches and feeds a [`JitterBuffer`]; each `process` call publishes the newest frame
/// assembled since the last tick (older ones are counted as superseded), stamped with the
/// tick. No frame ready: nothing is written that tick.
pub struct NetworkReceive {
    config: NetworkReceiveConfig,
    output: OutputPort<VideoFrame>,
    pool: FramePool,
    ready: Arc<ArrayQueue<(VideoFrame, Instant, u32)>>,
    shared: Arc<Shared>,
    worker: Option<Worker>,
}

impl NetworkReceive {
    /// Checks the configuration and allocates the frame pool.
    pub fn new(config: NetworkReceiveConfig) -> Result<Self, NetError> {
        let layout = config.format.layout()?;
        let frames = config.jitter.slots + 2 + config.extra_frames;
        let pool = FramePool::new("network_receive", layout, frames, frames).map_err(|source| {
            NetError::Pool {
                handler: HANDLER,
                source,
            }
        })?;
        // Validates the jitter settings now rather than at start.
        JitterBuffer::new(config.format, pool.clone(), config.jitter)?;
        Ok(Self {
            output: OutputPort::new("video", MemoryCaps::CPU).with_format(config.output_caps()),
            config,
            pool,
            ready: Arc::new(ArrayQueue::new(2)),
            shared: Arc::new(Shared {
                counters: Mutex::new(ReceiveCounters::default()),
                last_missing: Mutex::new(Vec::new()),
                published: AtomicU64::new(0),
                superseded: AtomicU64::new(0),
                socket: Arc::default(),
                from_future: AtomicU64::new(0),
                assembly: LatencyHistogram::new(),
                publish_wait: LatencyHistogram::new(),
                media_latency: LatencyHistogram::new(),
            }),
            worker: None,
        })
    }

    /// The output (`"video"`).
    pub fn output(&self) -> OutputRef<VideoFrame> {
        self.output.handle()
    }

    /// A handle to read the counters.
    pub fn stats(&self) -> ReceiveStatsHandle {
        StatsHandle::new(self.shared.clone())
    }

    /// The frame pool (for its counters).
    pub fn pool(&self) -> &FramePool {
        &self.pool
    }
}

impl StreamHandler for NetworkReceive {
    fn ports(&self) -> Ports {
        Ports::new().output(&self.output)
    }

    fn on_start(&mut self, _ctx: &StartContext<'_>) -> Result<(), HandlerError> {
        worker::stop(&mut self.worker)?;
        let c = &self.config;
        let jitter = JitterBuffer::new(c.format, self.pool.clone(), c.jitter)?;
        let stream = VideoStream {
            jitter,
            ready: Arc::clone(&self.ready),
            shared: Arc::clone(&self.shared),
        };
        let name = "streamlib-net-recv";
        self.worker = Some(c.endpoint.start(HANDLER, name, &c.socket, c.gro, stream)?);
        Ok(())
    }

    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        let mut newest = None;
        while let Some(item) = self.ready.pop() {
            if newest.replace(item).is_some() {
                add(&self.shared.superseded, 1);
            }
        }
        if let Some((frame, ready_at, rtp)) = newest {
            self.shared
                .publish_wait
                .record(ready_at.elapsed().as_nanos() as u64);
            let tick = ctx.tick();
            let media = rtp_time_ns(rtp, tick.timestamp);
            match tick.timestamp.checked_sub(media) {
                Some(latency) => self.shared.media_latency.record(latency),
                None => add(&self.shared.from_future, 1),
            }
            let frame = match self.config.timestamps {
                FrameTimestamps::Tick => frame.with_tick(tick),
                FrameTimestamps::Media => {
                    let number = media_frame_number(media, tick.fps);
                    frame.with_timing(media, number, tick.clock_source_id)
                }
            };
            self.output.write(frame);
            add(&self.shared.published, 1);
        }
        Ok(())
    }

    fn on_stop(&mut self) -> Result<(), HandlerError> {
        Ok(worker::stop_receiver(&mut self.worker, &self.ready)?)
    }
}

/// The number of the frame at `t_ns` on a grid of `fps` frames per second from time 0 (the
/// PTP epoch for TAI clocks), counting a time within 1 µs before a frame's start as that
/// frame (RTP timestamps carry frame times to 11 µs, rounded either way).
fn media_frame_number(t_ns: u64, fps: streamlib_clock::Rational) -> u64 {
    fps.frame_at_ns(t_ns.saturating_add(1_000))
}

/// The receive thread's state: the jitter buffer and the hand-over to `process`.
struct VideoStream {
    jitter: JitterBuffer,
    ready: Arc<ArrayQueue<(VideoFrame, Instant, u32)>>,
    shared: Arc<Shared>,
}

/// Hands an assembled frame to `process` (a newer one replaces one not yet published).
fn hand_over(ready: &ArrayQueue<(VideoFrame, Instant, u32)>, shared: &Shared, d: Delivered<'_>) {
    shared.assembly.record(d.assembly_ns);
    if !d.complete {
        let mut last = shared
            .last_missing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        last.clear();
        last.extend_from_slice(d.missing);
    }
    if ready
        .force_push((d.frame, Instant::now(), d.rtp_timestamp))
        .is_some()
    {
        add(&shared.superseded, 1);
    }
}

impl ReceivedStream for VideoStream {
    fn datagram(&mut self, datagram: &[u8], now_ns: u64) {
        let (ready, shared) = (&*self.ready, &*self.shared);
        self.jitter
            .push(datagram, now_ns, &mut |d| hand_over(ready, shared, d));
    }

    fn batch_done(&mut self, now_ns: u64, truncated: u64) {
        let (ready, shared) = (&*self.ready, &*self.shared);
        self.jitter
            .poll(now_ns, &mut |d| hand_over(ready, shared, d));
        let mut counters = *self.jitter.counters();
        counters.malformed += truncated;
        counters.malformed_by[Malformed::Truncated as usize] += truncated;
        counters.datagrams += truncated;
        *shared
            .counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = counters;
    }

    fn lock_ssrc(&mut self, ssrc: u32) {
        self.jitter.lock_ssrc(ssrc);
    }

    fn socket_counters(&self) -> Arc<SocketCounters> {
        Arc::clone(&self.shared.socket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamlib_clock::Rational;

    #[test]
    fn media_frame_numbers_count_from_the_epoch() {
        let fps = Rational::fps(60);
        assert_eq!(media_frame_number(0, fps), 0);
        // Frame 1 starts at 16_666_666.67 ns: its RTP-derived time may be a ns either side.
        assert_eq!(media_frame_number(16_666_666, fps), 1);
        assert_eq!(media_frame_number(16_666_667, fps), 1);
        assert_eq!(media_frame_number(33_000_000, fps), 1);
        let ntsc = Rational::FPS_29_97;
        // Frame 30 000 of 29.97 fps is at exactly 1001 s.
        assert_eq!(media_frame_number(1_001_000_000_000, ntsc), 30_000);
        assert_eq!(media_frame_number(1_000_999_999_500, ntsc), 30_000);
        assert_eq!(media_frame_number(1_000_990_000_000, ntsc), 29_999);
    }
}
