//! Helpers shared by the integration tests: video patterns, packetizing and collecting;
//! a pattern source and a copying sink; a sine source, a collecting audio sink and tone
//! analysis; GStreamer process handling; free ports and waiting.
#![allow(dead_code, reason = "each test binary uses a subset")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "tests"
)]

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use streamlib_buffers::BufferPool;
use streamlib_clock::Rational;
use streamlib_net::*;
use streamlib_ports::*;
use streamlib_runtime::{Stream, StreamRuntime};

/// A deterministic frame of `format`'s pixel format: bytes depend on position and `seed`.
pub fn pattern(format: &VideoFormat, seed: u32) -> Vec<u8> {
    let layout = format.layout().unwrap();
    let stride = layout.stride() as usize;
    let mut px = vec![0u8; layout.buffer_len()];
    for (y, row) in px.chunks_exact_mut(stride).enumerate() {
        for (x, b) in row.iter_mut().enumerate() {
            *b = (x as u32)
                .wrapping_mul(7)
                .wrapping_add(y as u32 * 13)
                .wrapping_add(seed.wrapping_mul(31)) as u8;
        }
        if format.sampling == Sampling::RgbDepth8 {
            for p in row.chunks_exact_mut(4) {
                p[3] = 255;
            }
        }
    }
    px
}

/// Every datagram of one frame.
pub fn packetize(p: &mut Packetizer, pixels: &[u8], stride: usize, ts: u32) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; p.max_packet_len()];
    let mut frame = p.frame(pixels, stride, ts).unwrap();
    while let Some(len) = frame.next_into(&mut buf) {
        out.push(buf[..len].to_vec());
    }
    out
}

pub fn format(sampling: Sampling, w: u32, h: u32) -> VideoFormat {
    VideoFormat::new(sampling, w, h, Rational::fps(30)).unwrap()
}

pub fn jitter(format: VideoFormat, config: JitterConfig) -> JitterBuffer {
    let pool = FramePool::new("test", format.layout().unwrap(), 8, 8).unwrap();
    JitterBuffer::new(format, pool, config).unwrap()
}

/// What a jitter buffer delivered: (rtp timestamp, complete, missing spans, pixels).
pub type Out = Vec<(u32, bool, Vec<LineSpan>, Vec<u8>)>;

pub fn collect(out: &mut Out) -> impl FnMut(Delivered<'_>) + '_ {
    |d: Delivered<'_>| {
        out.push((
            d.rtp_timestamp,
            d.complete,
            d.missing.to_vec(),
            d.frame.cpu_bytes().unwrap().to_vec(),
        ));
    }
}

/// Writes `limit` pooled frames of `format`'s pixel format, frame `n` being `pattern(n)`,
/// stamped with the tick; then ends its stream.
pub struct PatternSource {
    pub out: OutputPort<VideoFrame>,
    pool: FramePool,
    format: VideoFormat,
    pub limit: u32,
    produced: u32,
}

impl PatternSource {
    pub fn new(format: VideoFormat, limit: u32) -> Self {
        Self {
            out: OutputPort::new("video", MemoryCaps::CPU),
            pool: FramePool::new("pattern", format.layout().unwrap(), 4, 8).unwrap(),
            format,
            limit,
            produced: 0,
        }
    }
}

impl StreamHandler for PatternSource {
    fn ports(&self) -> Ports {
        Ports::new().output(&self.out)
    }
    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        let mut buf = self.pool.acquire()?;
        buf.copy_from_slice(&pattern(&self.format, self.produced));
        self.out.write(self.pool.frame(buf).with_tick(ctx.tick()));
        self.produced += 1;
        if self.produced >= self.limit {
            ctx.end_of_stream();
        }
        Ok(())
    }
}

/// Keeps a copy of every frame it receives.
pub struct CopySink {
    pub input: InputPort<VideoFrame>,
    pub frames: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl CopySink {
    pub fn new() -> Self {
        Self {
            input: InputPort::new("video", MemoryCaps::CPU),
            frames: Arc::default(),
        }
    }
}

impl StreamHandler for CopySink {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input)
    }
    fn process(&mut self, _ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        if let Some(frame) = self.input.recv() {
            self.frames
                .lock()
                .unwrap()
                .push(frame.cpu_bytes().unwrap().to_vec());
        }
        Ok(())
    }
}

/// A runtime on `clock` with two streams, `from` feeding `to` through `link` (its output
/// and its input; taken before the handlers move in): the graph most tests build. Not
/// started.
pub fn two_streams<T: Message>(
    clock: impl streamlib_clock::Clock,
    link: (OutputRef<T>, InputRef<T>),
    from: (&str, impl StreamHandler),
    to: (&str, impl StreamHandler),
) -> StreamRuntime {
    let mut rt = StreamRuntime::new(clock);
    rt.add_stream(Stream::new(from.0, from.1)).unwrap();
    rt.add_stream(Stream::new(to.0, to.1)).unwrap();
    let (output, input) = link;
    rt.connect(&output, &input).unwrap();
    rt
}

/// A runtime on `clock` in which a source feeds a sender: streams `"source"` and `"send"`.
pub fn sending<T: Message>(
    clock: impl streamlib_clock::Clock,
    source: (OutputRef<T>, impl StreamHandler),
    send: (InputRef<T>, impl StreamHandler),
) -> StreamRuntime {
    two_streams(
        clock,
        (source.0, send.0),
        ("source", source.1),
        ("send", send.1),
    )
}

/// A runtime on `clock` in which a receiver feeds a sink: streams `"receive"` and `"sink"`.
pub fn receiving<T: Message>(
    clock: impl streamlib_clock::Clock,
    receive: (OutputRef<T>, impl StreamHandler),
    sink: (InputRef<T>, impl StreamHandler),
) -> StreamRuntime {
    two_streams(
        clock,
        (receive.0, sink.0),
        ("receive", receive.1),
        ("sink", sink.1),
    )
}

/// What a receiving runtime's copying sink kept: every frame's bytes.
pub type Copies = Arc<Mutex<Vec<Vec<u8>>>>;

/// A started runtime on `clock` in which `receive` feeds a new [`CopySink`]; its counters
/// and the sink's copies come with it.
pub fn receive_video(
    clock: impl streamlib_clock::Clock,
    receive: NetworkReceive,
) -> (StreamRuntime, ReceiveStatsHandle, Copies) {
    let stats = receive.stats();
    let sink = CopySink::new();
    let copies = sink.frames.clone();
    let mut rt = receiving(
        clock,
        (receive.output(), receive),
        (sink.input.handle(), sink),
    );
    rt.start().unwrap();
    (rt, stats, copies)
}

/// What a receiving runtime's audio sink kept: every sample, and every buffer's timestamp.
pub type Received = (Arc<Mutex<Vec<f32>>>, Arc<Mutex<Vec<u64>>>);

/// A started runtime at 100 ticks a second in which a [`NetworkAudioReceive`] of `format` on
/// 127.0.0.1:`port` feeds a new [`AudioSink`]; its counters and what the sink keeps come
/// with it.
pub fn receive_audio(
    port: u16,
    format: AudioFormat,
) -> (StreamRuntime, AudioReceiveStatsHandle, Received) {
    let config = NetworkAudioReceiveConfig::new(localhost(port), format);
    let receive = NetworkAudioReceive::new(config).unwrap();
    let stats = receive.stats();
    let sink = AudioSink::new();
    let kept = (sink.samples.clone(), sink.timestamps.clone());
    let mut rt = receiving(
        at_100_hz(),
        (receive.output(), receive),
        (sink.input.handle(), sink),
    );
    rt.start().unwrap();
    (rt, stats, kept)
}

/// The software clock most tests tick on: 100 ticks a second (10 ms audio buffers).
pub fn at_100_hz() -> streamlib_clock::SoftwareClock {
    streamlib_clock::SoftwareClock::new(Rational::fps(100))
}

/// `port` on 127.0.0.1.
pub fn localhost(port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], port))
}

/// A fresh directory for one test's files, named `streamlib-net-<name>-<pid>` under the
/// system's temporary directory.
pub fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("streamlib-net-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A UDP port free right now on `ip` (bound and released: another process could take it, but
/// tests use distinct ones).
pub fn free_port(ip: &str) -> u16 {
    std::net::UdpSocket::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits up to `timeout` for `cond`.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

/// Samples per channel per buffer the source writes (10 ms at 48 kHz).
pub const CHUNK: usize = 480;

/// Sample `i` of channel `ch` of the test tone: `freq` Hz, amplitude 0.5 on channel 0,
/// 0.25 on channel 1, 0.5 / (ch + 1) beyond.
pub fn tone(freq: f64, i: usize, ch: usize) -> f32 {
    let amp = 0.5 / (ch as f64 + 1.0);
    (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / 48_000.0).sin()) as f32
}

/// Writes `buffers` pooled buffers of [`CHUNK`] frames of [`tone`], one per tick, stamped
/// `start_ns` plus their sample position; then ends its stream.
pub struct SineSource {
    pub out: OutputPort<AudioBuffer>,
    pool: BufferPool<f32>,
    freq: f64,
    channels: u16,
    start_ns: u64,
    pub buffers: usize,
    produced: usize,
}

impl SineSource {
    pub fn new(freq: f64, channels: u16, buffers: usize, start_ns: u64) -> Self {
        Self {
            out: OutputPort::new("audio", MemoryCaps::CPU),
            pool: BufferPool::new("sine", CHUNK * usize::from(channels), 16, 64).unwrap(),
            freq,
            channels,
            start_ns,
            buffers,
            produced: 0,
        }
    }
}

impl StreamHandler for SineSource {
    fn ports(&self) -> Ports {
        Ports::new().output(&self.out)
    }
    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        let mut buf = self.pool.acquire()?;
        let ch = usize::from(self.channels);
        let first = self.produced * CHUNK;
        for (i, frame) in buf.chunks_exact_mut(ch).enumerate() {
            for (c, s) in frame.iter_mut().enumerate() {
                *s = tone(self.freq, first + i, c);
            }
        }
        let ts = self.start_ns + first as u64 * 1_000_000_000 / 48_000;
        self.out
            .write(AudioBuffer::new(buf.freeze(), self.channels, 48_000, ts)?);
        self.produced += 1;
        if self.produced >= self.buffers {
            ctx.end_of_stream();
        }
        Ok(())
    }
}

/// Keeps every sample and every buffer timestamp it receives.
pub struct AudioSink {
    pub input: InputPort<AudioBuffer>,
    pub samples: Arc<Mutex<Vec<f32>>>,
    pub timestamps: Arc<Mutex<Vec<u64>>>,
}

impl AudioSink {
    pub fn new() -> Self {
        Self {
            input: InputPort::new("audio", MemoryCaps::CPU)
                .with_delivery(DeliveryMode::Ordered { capacity: 1024 }),
            samples: Arc::default(),
            timestamps: Arc::default(),
        }
    }
}

impl StreamHandler for AudioSink {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input)
    }
    fn process(&mut self, _ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        while let Some(b) = self.input.recv() {
            self.samples.lock().unwrap().extend_from_slice(b.samples());
            self.timestamps.lock().unwrap().push(b.timestamp_ns());
        }
        Ok(())
    }
}

/// Frequency (from interpolated rising zero crossings) and RMS of one channel of
/// interleaved `samples`, skipping the first and last `skip` frames.
pub fn analyse(samples: &[f32], channels: usize, ch: usize, skip: usize) -> (f64, f64) {
    let x: Vec<f64> = samples
        .chunks_exact(channels)
        .map(|f| f64::from(f[ch]))
        .collect();
    let x = &x[skip.min(x.len())..x.len().saturating_sub(skip)];
    let rms = (x.iter().map(|v| v * v).sum::<f64>() / x.len().max(1) as f64).sqrt();
    let mut crossings = Vec::new();
    for i in 1..x.len() {
        if x[i - 1] < 0.0 && x[i] >= 0.0 {
            crossings.push(i as f64 - 1.0 + x[i - 1] / (x[i - 1] - x[i]));
        }
    }
    let freq = match (crossings.first(), crossings.last()) {
        (Some(a), Some(b)) if crossings.len() > 1 => {
            (crossings.len() - 1) as f64 * 48_000.0 / (b - a)
        }
        _ => 0.0,
    };
    (freq, rms)
}

/// Whether GStreamer and `elements` are here; says so loudly (and how to install them) when
/// not, and the test is then skipped.
pub fn gst_available(elements: &[&str]) -> bool {
    let missing: Vec<&str> = elements
        .iter()
        .copied()
        .filter(|e| {
            !Command::new("gst-inspect-1.0")
                .arg(e)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    if !missing.is_empty() {
        eprintln!("==================================================================");
        eprintln!(
            "SKIPPED: gst-launch-1.0 / {} not found",
            missing.join(" / ")
        );
        eprintln!("(apt-get install gstreamer1.0-tools gstreamer1.0-plugins-base");
        eprintln!(" gstreamer1.0-plugins-good)");
        eprintln!("==================================================================");
    }
    missing.is_empty()
}

/// For a test against GStreamer: a scratch directory `name` and a free port on 127.0.0.1, or
/// `None` where GStreamer or one of `elements` is missing (said loudly; the test then skips).
pub fn gst_scratch(elements: &[&str], name: &str) -> Option<(std::path::PathBuf, u16)> {
    gst_available(elements).then(|| (scratch_dir(name), free_port("127.0.0.1")))
}

/// Kills the GStreamer process when the test ends, however it ends.
pub struct Gst(pub Child);

impl Drop for Gst {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Gst {
    /// Sends SIGINT (with `-e`, GStreamer then sends EOS and closes files) and waits.
    pub fn interrupt(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let _ = wait_for(Duration::from_secs(3), || {
            self.0.try_wait().is_ok_and(|s| s.is_some())
        });
    }
}

/// `gst-launch-1.0 -q -e <pipeline>` (the pipeline split on whitespace).
pub fn gst(pipeline: &str) -> Gst {
    Gst(Command::new("gst-launch-1.0")
        .arg("-q")
        .arg("-e")
        .args(pipeline.split_whitespace())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap())
}
