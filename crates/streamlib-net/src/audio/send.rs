//! `NetworkAudioSend`: a sink that sends the audio it receives as an ST 2110-30 RTP stream.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use streamlib_ports::{
    AudioBuffer, AudioCaps, Caps, DeliveryMode, HandlerError, InputPort, InputRef, MemoryCaps,
    Ports, ProcessContext, StartContext, StreamHandler,
};

use streamlib_clock::LatencyHistogram;

use super::packetizer::{AudioFormat, AudioPacketizer, AudioPacketizerConfig, rtp_timestamp_audio};
use super::sdp::AudioSdpSession;
use crate::NetError;
use crate::pacing::wait_until;
use crate::sdp::RefClock;
use crate::socket::{SocketConfig, sender_socket};
use crate::stats::{StatsHandle, StatsSource, add, load};
use crate::worker::{self, Worker};

const HANDLER: &str = "NetworkAudioSend";

/// A sender this far behind its schedule (the input ran dry, or the thread was starved)
/// restarts its schedule at the next packet instead of bursting to catch up.
const RESYNC_BEHIND: Duration = Duration::from_millis(20);

/// How a [`NetworkAudioSend`] sends.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkAudioSendConfig {
    /// Receiver or multicast group, and port.
    pub destination: SocketAddr,
    /// Local address to send from (`None`: any).
    pub bind: Option<SocketAddr>,
    /// What the stream carries; buffers with another channel count or rate are counted and
    /// skipped.
    pub format: AudioFormat,
    /// RTP settings.
    pub rtp: AudioPacketizerConfig,
    /// Socket options.
    pub socket: SocketConfig,
    /// Buffers queued between `process` and the send thread. Default 256.
    pub queue_buffers: usize,
    /// Capacity of the ordered input queue. Default 64.
    pub input_capacity: usize,
}

impl NetworkAudioSendConfig {
    /// `format` to `destination`, default RTP (payload type 97) and socket settings.
    pub fn new(destination: SocketAddr, format: AudioFormat) -> Self {
        Self {
            destination,
            bind: None,
            format,
            rtp: AudioPacketizerConfig::default(),
            socket: SocketConfig::default(),
            queue_buffers: 256,
            input_capacity: 64,
        }
    }
}

/// A snapshot of a [`NetworkAudioSend`]'s counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AudioSendStats {
    /// Datagrams sent.
    pub packets: u64,
    /// Samples per channel sent.
    pub samples: u64,
    /// Bytes sent (UDP payload).
    pub bytes: u64,
    /// Failed sends (their packets are lost).
    pub send_errors: u64,
    /// Buffers whose channel count or rate does not match the stream.
    pub buffers_rejected: u64,
    /// Buffers dropped because the send queue was full.
    pub buffers_dropped: u64,
    /// Times the pacing schedule restarted (input ran dry, or timestamps jumped).
    pub resyncs: u64,
    /// How late packets left against their schedule: median, ns.
    pub lateness_p50_ns: u64,
    /// 99th percentile lateness, ns.
    pub lateness_p99_ns: u64,
}

#[derive(Default)]
struct Shared {
    packets: AtomicU64,
    samples: AtomicU64,
    bytes: AtomicU64,
    send_errors: AtomicU64,
    buffers_rejected: AtomicU64,
    buffers_dropped: AtomicU64,
    resyncs: AtomicU64,
    lateness: LatencyHistogram,
}

impl StatsSource<AudioSendStats> for Shared {
    fn snapshot(&self) -> AudioSendStats {
        AudioSendStats {
            packets: load(&self.packets),
            samples: load(&self.samples),
            bytes: load(&self.bytes),
            send_errors: load(&self.send_errors),
            buffers_rejected: load(&self.buffers_rejected),
            buffers_dropped: load(&self.buffers_dropped),
            resyncs: load(&self.resyncs),
            lateness_p50_ns: self.lateness.quantile(0.5),
            lateness_p99_ns: self.lateness.quantile(0.99),
        }
    }
}

/// Reads a [`NetworkAudioSend`]'s counters from any thread.
pub type AudioSendStatsHandle = StatsHandle<AudioSendStats>;

/// A sink with one input `"audio"` (`[cpu]`, ordered delivery): every buffer it reads is cut
/// into packets of one packet time (L16 / L24, big-endian) and sent in real time by a send
/// thread it owns (started in `on_start`, joined in `on_stop`). The input's caps are the
/// stream's sample rate and channel count, fixed: a link from audio of another rate or
/// layout fails to negotiate at build instead of having every buffer rejected.
///
/// RTP timestamps come from the buffers' `timestamp_ns` at the stream's rate (mod 2^32),
/// continued sample by sample while they stay consistent. Packets leave one packet time
/// apart on the monotonic clock, scheduled from the first packet; a sender that falls more
/// than 20 ms behind (its input ran dry) restarts its schedule. On stop, what is queued is
/// sent, the last packet padded with silence.
pub struct NetworkAudioSend {
    config: NetworkAudioSendConfig,
    /// Channels and rate of the last rejected buffer: one warning per change, not per buffer.
    rejected: Option<(u16, u32)>,
    input: InputPort<AudioBuffer>,
    queue: Arc<ArrayQueue<AudioBuffer>>,
    shared: Arc<Shared>,
    worker: Option<Worker>,
}

impl NetworkAudioSend {
    /// Checks the configuration (format, packet size, payload type).
    pub fn new(config: NetworkAudioSendConfig) -> Result<Self, NetError> {
        AudioPacketizer::new(config.format, config.rtp)?;
        if config.queue_buffers == 0 || config.input_capacity == 0 {
            return Err(NetError::config(
                HANDLER,
                "queue_buffers / input_capacity",
                &format!("{} / {}", config.queue_buffers, config.input_capacity),
                "must be at least 1",
            ));
        }
        Ok(Self {
            rejected: None,
            input: InputPort::new("audio", MemoryCaps::CPU)
                .with_delivery(DeliveryMode::Ordered {
                    capacity: config.input_capacity,
                })
                .with_format(Caps::Audio(AudioCaps::fixed(
                    config.format.sample_rate,
                    u32::from(config.format.channels),
                ))),
            queue: Arc::new(ArrayQueue::new(config.queue_buffers)),
            shared: Arc::new(Shared::default()),
            worker: None,
            config,
        })
    }

    /// The input (`"audio"`).
    pub fn input(&self) -> InputRef<AudioBuffer> {
        self.input.handle()
    }

    /// A handle to read the counters.
    pub fn stats(&self) -> AudioSendStatsHandle {
        StatsHandle::new(self.shared.clone())
    }

    /// The SDP describing this stream, sent from `origin`, timestamped against `ref_clock`.
    pub fn sdp(&self, origin: std::net::IpAddr, ref_clock: RefClock) -> AudioSdpSession {
        let c = &self.config;
        AudioSdpSession {
            ttl: u8::try_from(c.socket.multicast_ttl).unwrap_or(u8::MAX),
            payload_type: c.rtp.payload_type,
            ref_clock,
            ..AudioSdpSession::new(origin, c.destination, c.format)
        }
    }
}

impl StreamHandler for NetworkAudioSend {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input)
    }

    fn on_start(&mut self, _ctx: &StartContext<'_>) -> Result<(), HandlerError> {
        worker::stop(&mut self.worker)?;
        let socket = sender_socket(
            self.config.destination,
            self.config.bind,
            &self.config.socket,
        )?;
        let packetizer = AudioPacketizer::new(self.config.format, self.config.rtp)?;
        let (queue, shared) = (Arc::clone(&self.queue), Arc::clone(&self.shared));
        let worker = Worker::spawn(HANDLER, "send", "streamlib-net-audio-send", move |stop| {
            send_loop(&socket, packetizer, &queue, &shared, stop);
        })?;
        self.worker = Some(worker);
        Ok(())
    }

    fn process(&mut self, _ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        let f = &self.config.format;
        let mut any = false;
        while let Some(buffer) = self.input.recv() {
            if buffer.channels() != f.channels || buffer.sample_rate() != f.sample_rate {
                add(&self.shared.buffers_rejected, 1);
                self.input.reject();
                let seen = (buffer.channels(), buffer.sample_rate());
                if self.rejected != Some(seen) {
                    self.rejected = Some(seen);
                    tracing::warn!(
                        "{HANDLER}: buffers of {} channels at {} Hz do not match the stream's \
                         {} channels at {} Hz: they are not sent (counted in \
                         buffers_rejected) until they match again",
                        seen.0,
                        seen.1,
                        f.channels,
                        f.sample_rate
                    );
                }
                continue;
            }
            self.rejected = None;
            if self.queue.push(buffer).is_err() {
                add(&self.shared.buffers_dropped, 1);
            }
            any = true;
        }
        if let (true, Some(worker)) = (any, &self.worker) {
            worker.wake();
        }
        Ok(())
    }

    fn on_stop(&mut self) -> Result<(), HandlerError> {
        Ok(worker::stop(&mut self.worker)?)
    }
}

/// When each packet leaves: one packet time apart from an anchor.
struct Schedule {
    period_ns: u64,
    anchor: Option<(Instant, u64)>,
}

impl Schedule {
    /// The departure time of the next packet; restarts the schedule when it is more than
    /// [`RESYNC_BEHIND`] in the past (returns whether it did).
    fn next_due(&mut self, now: Instant) -> (Instant, bool) {
        if let Some((start, n)) = self.anchor {
            let due = start + Duration::from_nanos(self.period_ns * n);
            if now.saturating_duration_since(due) <= RESYNC_BEHIND {
                self.anchor = Some((start, n + 1));
                return (due, false);
            }
        }
        let restarted = self.anchor.is_some();
        self.anchor = Some((now, 1));
        (now, restarted)
    }
}

/// Sends queued buffers until told to stop and the queue is empty.
fn send_loop(
    socket: &UdpSocket,
    mut packetizer: AudioPacketizer,
    queue: &ArrayQueue<AudioBuffer>,
    shared: &Shared,
    stop: &AtomicBool,
) {
    let format = *packetizer.format();
    let frames = format.frames_per_packet() as u64;
    let mut schedule = Schedule {
        period_ns: format.packet_time.ns(),
        anchor: None,
    };
    let mut send = |packet: &[u8]| {
        let (due, restarted) = schedule.next_due(Instant::now());
        if restarted {
            shared.resyncs.fetch_add(1, Ordering::Relaxed);
        }
        wait_until(due);
        shared
            .lateness
            .record(Instant::now().saturating_duration_since(due).as_nanos() as u64);
        match socket.send(packet) {
            Ok(n) => {
                shared.packets.fetch_add(1, Ordering::Relaxed);
                shared.samples.fetch_add(frames, Ordering::Relaxed);
                shared.bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(_) => {
                shared.send_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    };
    let mut resyncs = 0;
    loop {
        let Some(buffer) = queue.pop() else {
            if stop.load(Ordering::Acquire) {
                packetizer.flush(&mut send);
                return;
            }
            thread::park_timeout(Duration::from_millis(1));
            continue;
        };
        let ts = rtp_timestamp_audio(buffer.timestamp_ns(), format.sample_rate);
        packetizer.push(buffer.samples(), ts, &mut send);
        if packetizer.resyncs() != resyncs {
            shared
                .resyncs
                .fetch_add(packetizer.resyncs() - resyncs, Ordering::Relaxed);
            resyncs = packetizer.resyncs();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_periodic_and_restarts_when_far_behind() {
        let mut s = Schedule {
            period_ns: 1_000_000,
            anchor: None,
        };
        let t0 = Instant::now();
        assert_eq!(s.next_due(t0), (t0, false));
        assert_eq!(s.next_due(t0).0, t0 + Duration::from_millis(1));
        // 10 ms late: still on the schedule (catching up).
        let (due, restarted) = s.next_due(t0 + Duration::from_millis(12));
        assert_eq!((due, restarted), (t0 + Duration::from_millis(2), false));
        // 30 ms late: restart.
        let late = t0 + Duration::from_millis(33);
        assert_eq!(s.next_due(late), (late, true));
        assert_eq!(s.next_due(late).0, late + Duration::from_millis(1));
    }
}
