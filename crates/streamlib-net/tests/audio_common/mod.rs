//! Helpers shared by the audio integration tests: a sine source, a collecting sink, tone
//! analysis, GStreamer process handling.
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
use streamlib_ports::*;

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

/// Whether GStreamer and its raw-audio RTP elements are here; says so loudly when not.
pub fn gst_available() -> bool {
    let ok = ["rtpL24pay", "rtpL24depay", "audiotestsrc", "udpsrc"]
        .iter()
        .all(|e| {
            Command::new("gst-inspect-1.0")
                .arg(e)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
    if !ok {
        eprintln!("==================================================================");
        eprintln!("SKIPPED: gst-launch-1.0 / rtpL24pay / rtpL24depay not found");
        eprintln!("(apt-get install gstreamer1.0-tools gstreamer1.0-plugins-base");
        eprintln!(" gstreamer1.0-plugins-good)");
        eprintln!("==================================================================");
    }
    ok
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

/// A UDP port free right now on `ip`.
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
