//! `NetworkAudioReceive`: a source that publishes the audio of an ST 2110-30 RTP stream.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use streamlib_buffers::{BufferPool, PoolBufMut};
use streamlib_ports::{
    AudioBuffer, AudioCaps, Caps, HandlerError, MemoryCaps, OutputPort, OutputRef, Ports,
    ProcessContext, StartContext, StreamHandler,
};

use crate::NetError;
use crate::audio::AudioFormat;
use crate::audio_jitter::{AudioChunk, AudioJitterBuffer, AudioJitterConfig, AudioReceiveCounters};
use crate::sdp_audio::AudioSdpSession;
use crate::socket::{RecvBatch, SocketConfig, source_receiver_socket};

const HANDLER: &str = "NetworkAudioReceive";

/// How often the receive thread wakes without traffic, to conceal overdue gaps and to notice
/// a stop.
const POLL: Duration = Duration::from_millis(1);

/// How a [`NetworkAudioReceive`] listens.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkAudioReceiveConfig {
    /// Local address and port.
    pub bind: SocketAddr,
    /// Multicast group to join (`None`: unicast). The socket is bound to the group, so only
    /// its datagrams arrive.
    pub multicast_group: Option<IpAddr>,
    /// The sender's address: datagrams from any other are dropped and counted
    /// (`foreign_packets`); with an IPv4 group the membership is source-specific
    /// (`IP_ADD_SOURCE_MEMBERSHIP`). `None`: any sender.
    pub source: Option<IpAddr>,
    /// The stream's SSRC (an SDP's `a=ssrc:`): packets of any other SSRC are dropped and
    /// counted, even after the stream went silent. `None`: the first valid packet's SSRC is
    /// locked, and another may take over only after 500 ms of silence (a sender restarted
    /// with a new SSRC).
    pub ssrc: Option<u32>,
    /// What the stream carries.
    pub format: AudioFormat,
    /// Payload type, reordering window, gap wait, longest concealment.
    pub jitter: AudioJitterConfig,
    /// Socket options.
    pub socket: SocketConfig,
    /// Packet times per output buffer (1: one [`AudioBuffer`] per packet, the lowest
    /// latency). Default 1.
    pub packets_per_buffer: usize,
    /// Output buffers in the pool (buffers waiting for a tick or held downstream). Default 256.
    pub pool_buffers: usize,
}

impl NetworkAudioReceiveConfig {
    /// `format` on `bind`, unicast, default jitter and socket settings.
    pub fn new(bind: SocketAddr, format: AudioFormat) -> Self {
        Self {
            bind,
            multicast_group: None,
            source: None,
            ssrc: None,
            format,
            jitter: AudioJitterConfig::default(),
            socket: SocketConfig {
                // Audio is 0.6 Mbit/s per stereo pair: no need for video's 8 MiB.
                buffer_bytes: 1 << 20,
                ..SocketConfig::default()
            },
            packets_per_buffer: 1,
            pool_buffers: 256,
        }
    }

    /// What an SDP describes: its port, bound to its multicast group (joined) or to its
    /// unicast address when that address is this host's (else the unspecified address of its
    /// family), its format and payload type.
    pub fn from_sdp(sdp: &AudioSdpSession) -> Self {
        let dest = sdp.destination;
        let any: IpAddr = if dest.is_ipv4() {
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
        };
        let local = crate::socket::is_local(dest.ip()).then_some(dest.ip());
        let mut config = Self::new(
            SocketAddr::new(local.unwrap_or(any), dest.port()),
            sdp.format,
        );
        config.multicast_group = dest.ip().is_multicast().then_some(dest.ip());
        config.jitter.payload_type = Some(sdp.payload_type);
        config
    }
}

/// A snapshot of a [`NetworkAudioReceive`]'s counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AudioReceiveStats {
    /// The jitter buffer's counters (packets, samples, lost, duplicates, reordered, late,
    /// malformed, concealed samples, resyncs).
    pub counters: AudioReceiveCounters,
    /// Buffers written to the output.
    pub buffers_published: u64,
    /// Packet times dropped because no output buffer was free or the hand-over queue was
    /// full (downstream is not keeping up).
    pub packets_dropped: u64,
    /// Failed `recvmmsg` calls.
    pub recv_errors: u64,
    /// Datagrams not of this stream, dropped: from another address than the configured
    /// `source`, plus those of another SSRC (`counters.foreign_ssrc`).
    pub foreign_packets: u64,
}

#[derive(Default)]
struct Shared {
    datagrams: AtomicU64,
    bytes: AtomicU64,
    packets: AtomicU64,
    samples: AtomicU64,
    malformed: AtomicU64,
    foreign_ssrc: AtomicU64,
    duplicates: AtomicU64,
    reordered: AtomicU64,
    late: AtomicU64,
    lost: AtomicU64,
    concealed_samples: AtomicU64,
    resyncs: AtomicU64,
    published: AtomicU64,
    dropped: AtomicU64,
    recv_errors: AtomicU64,
    /// Datagrams dropped because another address sent them.
    foreign_source: AtomicU64,
}

impl Shared {
    fn store(&self, c: &AudioReceiveCounters, truncated: u64) {
        let set = |a: &AtomicU64, v: u64| a.store(v, Ordering::Relaxed);
        set(&self.datagrams, c.datagrams + truncated);
        set(&self.bytes, c.bytes);
        set(&self.packets, c.packets);
        set(&self.samples, c.samples);
        set(&self.malformed, c.malformed + truncated);
        set(&self.foreign_ssrc, c.foreign_ssrc);
        set(&self.duplicates, c.duplicates);
        set(&self.reordered, c.reordered);
        set(&self.late, c.late);
        set(&self.lost, c.lost);
        set(&self.concealed_samples, c.concealed_samples);
        set(&self.resyncs, c.resyncs);
    }
}

/// Reads a [`NetworkAudioReceive`]'s counters from any thread.
#[derive(Clone)]
pub struct AudioReceiveStatsHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AudioReceiveStatsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.snapshot().fmt(f)
    }
}

impl AudioReceiveStatsHandle {
    /// The counters now (refreshed after every batch of datagrams).
    pub fn snapshot(&self) -> AudioReceiveStats {
        let s = &*self.shared;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        AudioReceiveStats {
            counters: AudioReceiveCounters {
                datagrams: load(&s.datagrams),
                bytes: load(&s.bytes),
                packets: load(&s.packets),
                samples: load(&s.samples),
                malformed: load(&s.malformed),
                foreign_ssrc: load(&s.foreign_ssrc),
                duplicates: load(&s.duplicates),
                reordered: load(&s.reordered),
                late: load(&s.late),
                lost: load(&s.lost),
                concealed_samples: load(&s.concealed_samples),
                resyncs: load(&s.resyncs),
            },
            buffers_published: load(&s.published),
            packets_dropped: load(&s.dropped),
            recv_errors: load(&s.recv_errors),
            foreign_packets: load(&s.foreign_source) + load(&s.foreign_ssrc),
        }
    }
}

struct Worker {
    thread: JoinHandle<()>,
    stop: Arc<AtomicBool>,
}

/// A source with one output `"audio"` (`[cpu]`; downstream inputs use ordered delivery,
/// the default for audio): interleaved f32 [`AudioBuffer`]s of `packets_per_buffer` packet
/// times each, from a pre-allocated [`BufferPool`]. The output's caps are fixed to the
/// stream's sample rate and channel count (what the SDP says).
///
/// A receive thread it owns (started in `on_start`, joined in `on_stop`) reads datagrams in
/// batches into an [`AudioJitterBuffer`] and fills output buffers in sequence order, lost
/// packets concealed with silence; each `process` call writes every buffer completed since
/// the last tick, in order. A buffer's `timestamp_ns` is its first sample's RTP timestamp,
/// unwrapped past 2^32, in ns at the stream's rate (media time; with PTP-locked senders,
/// TAI modulo the 2^32-tick RTP epoch).
pub struct NetworkAudioReceive {
    config: NetworkAudioReceiveConfig,
    output: OutputPort<AudioBuffer>,
    pool: BufferPool<f32>,
    ready: Arc<ArrayQueue<AudioBuffer>>,
    shared: Arc<Shared>,
    worker: Option<Worker>,
}

impl NetworkAudioReceive {
    /// Checks the configuration and allocates the buffer pool.
    pub fn new(config: NetworkAudioReceiveConfig) -> Result<Self, NetError> {
        AudioJitterBuffer::new(config.format, config.jitter)?;
        if !(1..=1000).contains(&config.packets_per_buffer) || config.pool_buffers < 2 {
            return Err(NetError::Config {
                handler: HANDLER,
                field: "packets_per_buffer / pool_buffers",
                value: format!("{} / {}", config.packets_per_buffer, config.pool_buffers),
                reason: "packets_per_buffer must be 1 ..= 1000 and pool_buffers at least 2",
            });
        }
        let len = config.format.samples_per_packet() * config.packets_per_buffer;
        let pool = BufferPool::new(
            "network_audio_receive",
            len,
            config.pool_buffers,
            config.pool_buffers,
        )
        .map_err(|source| NetError::Pool {
            handler: HANDLER,
            source,
        })?;
        Ok(Self {
            output: OutputPort::new("audio", MemoryCaps::CPU).with_format(Caps::Audio(
                AudioCaps::fixed(config.format.sample_rate, u32::from(config.format.channels)),
            )),
            pool,
            ready: Arc::new(ArrayQueue::new(config.pool_buffers)),
            shared: Arc::new(Shared::default()),
            worker: None,
            config,
        })
    }

    /// The output (`"audio"`).
    pub fn output(&self) -> OutputRef<AudioBuffer> {
        self.output.handle()
    }

    /// A handle to read the counters.
    pub fn stats(&self) -> AudioReceiveStatsHandle {
        AudioReceiveStatsHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// The buffer pool (for its counters).
    pub fn pool(&self) -> &BufferPool<f32> {
        &self.pool
    }

    fn stop_worker(&mut self) -> Result<(), NetError> {
        let Some(worker) = self.worker.take() else {
            return Ok(());
        };
        worker.stop.store(true, Ordering::Release);
        worker.thread.join().map_err(|_| NetError::ThreadPanicked {
            handler: HANDLER,
            what: "receive",
        })
    }
}

impl StreamHandler for NetworkAudioReceive {
    fn ports(&self) -> Ports {
        Ports::new().output(&self.output)
    }

    fn on_start(&mut self, _ctx: &StartContext<'_>) -> Result<(), HandlerError> {
        self.stop_worker()?;
        let c = &self.config;
        let socket = source_receiver_socket(c.bind, c.multicast_group, c.source, &c.socket, POLL)?;
        let mut jitter = AudioJitterBuffer::new(c.format, c.jitter)?;
        if let Some(ssrc) = c.ssrc {
            jitter.lock_ssrc(ssrc);
        }
        let source = c.source;
        let assembler = Assembler {
            pool: self.pool.clone(),
            format: c.format,
            current: None,
            filled: 0,
            first_ns: 0,
            unwrapped: None,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let (ready, shared, stop2) = (
            Arc::clone(&self.ready),
            Arc::clone(&self.shared),
            Arc::clone(&stop),
        );
        let thread = thread::Builder::new()
            .name("streamlib-net-audio-recv".into())
            .spawn(move || {
                receive_loop(&socket, jitter, source, assembler, &ready, &shared, &stop2);
            })
            .map_err(|source| NetError::Thread {
                handler: HANDLER,
                what: "receive",
                source,
            })?;
        self.worker = Some(Worker { thread, stop });
        Ok(())
    }

    fn process(&mut self, _ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        while let Some(buffer) = self.ready.pop() {
            self.output.write(buffer);
            self.shared.published.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn on_stop(&mut self) -> Result<(), HandlerError> {
        let result = self.stop_worker();
        // Buffers not yet published go back to the pool.
        while self.ready.pop().is_some() {}
        Ok(result?)
    }
}

impl Drop for NetworkAudioReceive {
    fn drop(&mut self) {
        let _ = self.stop_worker();
    }
}

/// Fills pooled output buffers with packet times, in order.
struct Assembler {
    pool: BufferPool<f32>,
    format: AudioFormat,
    current: Option<PoolBufMut<f32>>,
    filled: usize,
    first_ns: u64,
    /// (last RTP timestamp, its unwrapped 64-bit value).
    unwrapped: Option<(u32, u64)>,
}

impl Assembler {
    /// Adds one packet time; returns a completed buffer, or `Err(())` when the packet had to
    /// be dropped (no free buffer).
    fn add(&mut self, chunk: AudioChunk<'_>) -> Result<Option<AudioBuffer>, ()> {
        let ext = match self.unwrapped {
            Some((last, ext)) => {
                ext.wrapping_add_signed(i64::from(chunk.rtp_timestamp.wrapping_sub(last) as i32))
            }
            None => u64::from(chunk.rtp_timestamp),
        };
        self.unwrapped = Some((chunk.rtp_timestamp, ext));
        if self.current.is_none() {
            self.current = Some(self.pool.acquire().map_err(|_| ())?);
            self.filled = 0;
            self.first_ns =
                (u128::from(ext) * 1_000_000_000 / u128::from(self.format.sample_rate)) as u64;
        }
        let Some(buf) = self.current.as_mut() else {
            return Err(());
        };
        let n = chunk.samples.len();
        buf[self.filled..self.filled + n].copy_from_slice(chunk.samples);
        self.filled += n;
        if self.filled < buf.len() {
            return Ok(None);
        }
        let Some(buf) = self.current.take() else {
            return Ok(None);
        };
        Ok(AudioBuffer::new(
            buf.freeze(),
            self.format.channels,
            self.format.sample_rate,
            self.first_ns,
        )
        .ok())
    }
}

fn receive_loop(
    socket: &UdpSocket,
    mut jitter: AudioJitterBuffer,
    source: Option<IpAddr>,
    mut assembler: Assembler,
    ready: &ArrayQueue<AudioBuffer>,
    shared: &Shared,
    stop: &AtomicBool,
) {
    let origin = Instant::now();
    let mut batch = RecvBatch::new();
    let mut truncated = 0u64;
    let per_buffer = (assembler.pool.buffer_len() / assembler.format.samples_per_packet()) as u64;
    let mut sink = |chunk: AudioChunk<'_>| match assembler.add(chunk) {
        Ok(Some(buffer)) => {
            if ready.push(buffer).is_err() {
                shared.dropped.fetch_add(per_buffer, Ordering::Relaxed);
            }
        }
        Ok(None) => {}
        Err(()) => {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    };
    while !stop.load(Ordering::Acquire) {
        let n = match batch.recv(socket) {
            Ok(n) => n,
            Err(_) => {
                shared.recv_errors.fetch_add(1, Ordering::Relaxed);
                thread::sleep(POLL);
                0
            }
        };
        let now = origin.elapsed().as_nanos() as u64;
        for i in 0..n {
            let Some((datagram, cut)) = batch.get(i) else {
                break;
            };
            if source.is_some_and(|want| batch.source(i) != Some(want)) {
                shared.foreign_source.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if cut {
                truncated += 1;
                continue;
            }
            jitter.push(datagram, now, &mut sink);
        }
        jitter.poll(now, &mut sink);
        shared.store(jitter.counters(), truncated);
    }
}
