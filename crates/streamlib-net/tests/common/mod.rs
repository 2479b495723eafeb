//! Helpers shared by the integration tests.
#![allow(dead_code, reason = "each test binary uses a subset")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use streamlib_clock::Rational;
use streamlib_net::*;
use streamlib_ports::FramePool;

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

use std::sync::{Arc, Mutex};
use streamlib_ports::*;

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
pub fn wait_for(timeout: std::time::Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    cond()
}
