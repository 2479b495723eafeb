//! `NetworkAudioReceive`: a source that publishes the audio of an ST 2110-30 RTP stream.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_queue::ArrayQueue;
use streamlib_buffers::{BufferPool, PoolBufMut};
use streamlib_ports::{
    AudioBuffer, AudioCaps, Caps, HandlerError, MemoryCaps, OutputPort, OutputRef, Ports,
    ProcessContext, StartContext, StreamHandler,
};

use super::jitter::{AudioChunk, AudioJitterBuffer, AudioJitterConfig, AudioReceiveCounters};
use super::packetizer::AudioFormat;
use super::sdp::AudioSdpSession;
use crate::NetError;
use crate::receive::ReceiveEndpoint;
use crate::socket::SocketConfig;
use crate::stats::{StatsHandle, StatsSource, add, load};
use crate::worker::{self, ReceivedStream, SocketCounters, Worker};

const HANDLER: &str = "NetworkAudioReceive";

/// How a [`NetworkAudioReceive`] listens.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkAudioReceiveConfig {
    /// Where it listens and which sender it accepts (address, group, source, SSRC).
    pub endpoint: ReceiveEndpoint,
    /// What the stream carries.
    pub format: AudioFormat,
    /// Payload type, reordering window, gap wait, longest concealment.
    pub jitter: AudioJitterConfig,
    /// Socket options. Default: those of [`SocketConfig::default`] with a 1 MiB buffer.
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
        Self::with_endpoint(ReceiveEndpoint::new(bind), format)
    }

    /// `format` on `endpoint`, default jitter and socket settings.
    pub fn with_endpoint(endpoint: ReceiveEndpoint, format: AudioFormat) -> Self {
        Self {
            endpoint,
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
        let mut config = Self::with_endpoint(
            ReceiveEndpoint::for_destination(sdp.destination),
            sdp.format,
        );
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
    socket: Arc<SocketCounters>,
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

impl StatsSource<AudioReceiveStats> for Shared {
    fn snapshot(&self) -> AudioReceiveStats {
        AudioReceiveStats {
            counters: AudioReceiveCounters {
                datagrams: load(&self.datagrams),
                bytes: load(&self.bytes),
                packets: load(&self.packets),
                samples: load(&self.samples),
                malformed: load(&self.malformed),
                foreign_ssrc: load(&self.foreign_ssrc),
                duplicates: load(&self.duplicates),
                reordered: load(&self.reordered),
                late: load(&self.late),
                lost: load(&self.lost),
                concealed_samples: load(&self.concealed_samples),
                resyncs: load(&self.resyncs),
            },
            buffers_published: load(&self.published),
            packets_dropped: load(&self.dropped),
            recv_errors: load(&self.socket.recv_errors),
            foreign_packets: load(&self.socket.foreign_source) + load(&self.foreign_ssrc),
        }
    }
}

/// Reads a [`NetworkAudioReceive`]'s counters from any thread.
pub type AudioReceiveStatsHandle = StatsHandle<AudioReceiveStats>;

/// A source with one output `"audio"` (`[cpu]`; downstream inputs use ordered delivery,
/// the default for audio): interleaved f32 [`AudioBuffer`]s of `packets_per_buffer` packet
/// times each, from a pre-allocated [`BufferPool`]. The output's caps are fixed to the
/// stream's sample rate and channel count (what the SDP says).
///
/// A receive thread it owns (started in `on_start`, joined in `on_stop`) reads datagrams in
/// batches into an [`AudioJitterBuffer`] and fills output buffers in sequence order, lost
/// packets concealed with silence; each `process` call writes every buffer completed since
/// the last tick, in order. A buffer's `timestamp_ns` is its first sample's RTP timestamp,
/// unwrapped past 2^32, in ns at the stream's rate, in the 2^32-sample epoch (24.9 h at
/// 48 kHz) nearest the receiving tick's timestamp: with PTP-locked senders and receivers,
/// the sender's TAI media time, as [`rtp_time_ns`](crate::rtp_time_ns) gives video's.
pub struct NetworkAudioReceive {
    config: NetworkAudioReceiveConfig,
    output: OutputPort<AudioBuffer>,
    pool: BufferPool<f32>,
    ready: Arc<ArrayQueue<AudioBuffer>>,
    shared: Arc<Shared>,
    worker: Option<Worker>,
    /// Whole RTP epochs (2^32 samples) added to the assembler's timestamps, chosen on the
    /// first buffer after start from the tick's time.
    epochs: Option<u64>,
}

/// The number of whole 2^32-sample RTP epochs to add to `media_ns` (a time within the first
/// epochs, at `rate`) to bring it nearest `near_ns`.
fn epochs_towards(media_ns: u64, rate: u32, near_ns: u64) -> u64 {
    let epoch_ns = (1u128 << 32) * 1_000_000_000 / u128::from(rate.max(1));
    let gap = u128::from(near_ns.saturating_sub(media_ns));
    ((gap + epoch_ns / 2) / epoch_ns) as u64
}

/// `media_ns` moved forward by `epochs` RTP epochs at `rate`, exactly in samples.
fn shift_epochs(media_ns: u64, rate: u32, epochs: u64) -> u64 {
    if epochs == 0 {
        return media_ns;
    }
    let rate = u128::from(rate.max(1));
    // The sample count media_ns was made from (it was floor(samples * 1e9 / rate)).
    let samples = (u128::from(media_ns) * rate).div_ceil(1_000_000_000);
    let whole = samples + (u128::from(epochs) << 32);
    u64::try_from(whole * 1_000_000_000 / rate).unwrap_or(u64::MAX)
}

impl NetworkAudioReceive {
    /// Checks the configuration and allocates the buffer pool.
    pub fn new(config: NetworkAudioReceiveConfig) -> Result<Self, NetError> {
        AudioJitterBuffer::new(config.format, config.jitter)?;
        if !(1..=1000).contains(&config.packets_per_buffer) || config.pool_buffers < 2 {
            return Err(NetError::config(
                HANDLER,
                "packets_per_buffer / pool_buffers",
                &format!("{} / {}", config.packets_per_buffer, config.pool_buffers),
                "packets_per_buffer must be 1 ..= 1000 and pool_buffers at least 2",
            ));
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
            epochs: None,
            config,
        })
    }

    /// The output (`"audio"`).
    pub fn output(&self) -> OutputRef<AudioBuffer> {
        self.output.handle()
    }

    /// A handle to read the counters.
    pub fn stats(&self) -> AudioReceiveStatsHandle {
        StatsHandle::new(self.shared.clone())
    }

    /// The buffer pool (for its counters).
    pub fn pool(&self) -> &BufferPool<f32> {
        &self.pool
    }
}

impl StreamHandler for NetworkAudioReceive {
    fn ports(&self) -> Ports {
        Ports::new().output(&self.output)
    }

    fn on_start(&mut self, _ctx: &StartContext<'_>) -> Result<(), HandlerError> {
        worker::stop(&mut self.worker)?;
        self.epochs = None;
        let c = &self.config;
        let jitter = AudioJitterBuffer::new(c.format, c.jitter)?;
        let assembler = Assembler {
            pool: self.pool.clone(),
            format: c.format,
            current: None,
            filled: 0,
            first_ns: 0,
            unwrapped: None,
        };
        let per_buffer = (self.pool.buffer_len() / c.format.samples_per_packet()) as u64;
        let stream = AudioStream {
            jitter,
            assembler,
            per_buffer,
            ready: Arc::clone(&self.ready),
            shared: Arc::clone(&self.shared),
        };
        let name = "streamlib-net-audio-recv";
        // No GRO: audio senders do not send GSO bursts.
        self.worker = Some(c.endpoint.start(HANDLER, name, &c.socket, false, stream)?);
        Ok(())
    }

    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        let near = ctx.tick().timestamp;
        while let Some(buffer) = self.ready.pop() {
            let (ts, rate) = (buffer.timestamp_ns(), buffer.sample_rate());
            let epochs = *self
                .epochs
                .get_or_insert_with(|| epochs_towards(ts, rate, near));
            let buffer = buffer.with_timestamp(shift_epochs(ts, rate, epochs));
            self.output.write(buffer);
            add(&self.shared.published, 1);
        }
        Ok(())
    }

    fn on_stop(&mut self) -> Result<(), HandlerError> {
        Ok(worker::stop_receiver(&mut self.worker, &self.ready)?)
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

/// The receive thread's state: the jitter buffer, the buffer being filled, the hand-over to
/// `process`.
struct AudioStream {
    jitter: AudioJitterBuffer,
    assembler: Assembler,
    /// Packet times per output buffer.
    per_buffer: u64,
    ready: Arc<ArrayQueue<AudioBuffer>>,
    shared: Arc<Shared>,
}

impl AudioStream {
    /// The sink the jitter buffer delivers packet times to: completed buffers are handed to
    /// `process`, what finds no room is counted as dropped.
    fn sink<'a>(
        assembler: &'a mut Assembler,
        ready: &'a ArrayQueue<AudioBuffer>,
        shared: &'a Shared,
        per_buffer: u64,
    ) -> impl FnMut(AudioChunk<'_>) + 'a {
        move |chunk| match assembler.add(chunk) {
            Ok(Some(buffer)) => {
                if ready.push(buffer).is_err() {
                    add(&shared.dropped, per_buffer);
                }
            }
            Ok(None) => {}
            Err(()) => add(&shared.dropped, 1),
        }
    }
}

impl ReceivedStream for AudioStream {
    fn datagram(&mut self, datagram: &[u8], now_ns: u64) {
        let mut sink = Self::sink(
            &mut self.assembler,
            &self.ready,
            &self.shared,
            self.per_buffer,
        );
        self.jitter.push(datagram, now_ns, &mut sink);
    }

    fn batch_done(&mut self, now_ns: u64, truncated: u64) {
        let mut sink = Self::sink(
            &mut self.assembler,
            &self.ready,
            &self.shared,
            self.per_buffer,
        );
        self.jitter.poll(now_ns, &mut sink);
        self.shared.store(self.jitter.counters(), truncated);
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

    /// What the assembler stamps for a first sample at `samples` (its u32 RTP timestamp).
    fn stamped(samples: u64, rate: u32) -> u64 {
        u64::from(samples as u32) * 1_000_000_000 / u64::from(rate)
    }

    /// The time of sample `samples`, ns.
    fn time(samples: u64, rate: u32) -> u64 {
        (u128::from(samples) * 1_000_000_000 / u128::from(rate)) as u64
    }

    #[test]
    fn media_time_comes_back_whole_near_the_receiving_tick() {
        for rate in [44_100u32, 48_000, 96_000] {
            // A TAI time in 2026, a sample boundary; received 3 ms later.
            let samples = 1_796_000_000u64 * u64::from(rate) + 12_345;
            let sent = time(samples, rate);
            let media = stamped(samples, rate);
            let epochs = epochs_towards(media, rate, sent + 3_000_000);
            assert_eq!(shift_epochs(media, rate, epochs), sent, "{rate} Hz");
            // A receiving clock 1 ms behind the sender's (two PTP slaves' offsets).
            let epochs = epochs_towards(media, rate, sent - 1_000_000);
            assert_eq!(shift_epochs(media, rate, epochs), sent, "{rate} Hz, behind");
            // Just across a wrap: the first sample before it, the tick after it.
            let wrap = (samples >> 32 << 32) + (1 << 32);
            let before = wrap - 7;
            let media = stamped(before, rate);
            let tick = time(wrap + 48, rate);
            let epochs = epochs_towards(media, rate, tick);
            assert_eq!(shift_epochs(media, rate, epochs), time(before, rate));
        }
        // Clocks that start near zero (software clocks) are left alone.
        assert_eq!(epochs_towards(5_000_000, 48_000, 9_000_000), 0);
        assert_eq!(shift_epochs(5_000_000, 48_000, 0), 5_000_000);
    }
}
