//! Small handlers shared by the runtime's integration tests.
#![allow(dead_code, reason = "each test binary uses a subset")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use streamlib_ports::*;

/// Writes one pooled frame per tick, stamped with the tick; optionally ends after `limit`.
pub struct FrameSource {
    pub out: OutputPort<VideoFrame>,
    pub pool: FramePool,
    pub limit: Option<u64>,
    pub produced: u64,
}

impl FrameSource {
    pub fn new(width: u32, height: u32, caps: MemoryCaps) -> Self {
        let layout = FrameLayout::new(width, height, PixelFormat::Rgba8).unwrap();
        Self {
            out: OutputPort::new("video", caps),
            pool: FramePool::new("source", layout, 8, 8).unwrap(),
            limit: None,
            produced: 0,
        }
    }
}

impl StreamHandler for FrameSource {
    fn ports(&self) -> Ports {
        Ports::new().output(&self.out)
    }
    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        let mut buf = self.pool.acquire()?;
        buf[0] = (ctx.tick().frame_number % 256) as u8;
        self.out.write(self.pool.frame(buf).with_tick(ctx.tick()));
        self.produced += 1;
        if self.limit.is_some_and(|l| self.produced >= l) {
            ctx.end_of_stream();
        }
        Ok(())
    }
}

/// Forwards the newest frame unchanged (a reference, no copy).
pub struct PassThrough {
    pub input: InputPort<VideoFrame>,
    pub out: OutputPort<VideoFrame>,
}

impl PassThrough {
    pub fn new(caps: MemoryCaps) -> Self {
        Self {
            input: InputPort::new("video", caps),
            out: OutputPort::new("video", caps),
        }
    }
}

impl StreamHandler for PassThrough {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input).output(&self.out)
    }
    fn process(&mut self, _ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        if let Some(frame) = self.input.recv() {
            self.out.write(frame);
        }
        Ok(())
    }
}

/// What a sink saw: (tick frame number, frame's frame number) per received frame.
#[derive(Default)]
pub struct SinkLog {
    pub seen: Mutex<Vec<(u64, u64)>>,
    pub stops: AtomicUsize,
    pub starts: AtomicUsize,
    pub final_calls: AtomicUsize,
    pub received: AtomicU64,
}

/// Records what arrives.
pub struct FrameSink {
    pub input: InputPort<VideoFrame>,
    pub log: Arc<SinkLog>,
    pub record: bool,
}

impl FrameSink {
    pub fn new(caps: MemoryCaps) -> (Self, Arc<SinkLog>) {
        let log = Arc::new(SinkLog::default());
        (
            Self {
                input: InputPort::new("video", caps),
                log: Arc::clone(&log),
                record: true,
            },
            log,
        )
    }
}

impl StreamHandler for FrameSink {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input)
    }
    fn on_start(&mut self, _ctx: &StartContext<'_>) -> Result<(), HandlerError> {
        self.log.starts.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        if let Some(frame) = self.input.recv() {
            self.log.received.fetch_add(1, Ordering::SeqCst);
            if self.record {
                self.log
                    .seen
                    .lock()
                    .unwrap()
                    .push((ctx.tick().frame_number, frame.frame_number()));
            }
        }
        if ctx.inputs_ended() {
            self.log.final_calls.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
    fn on_stop(&mut self) -> Result<(), HandlerError> {
        self.log.stops.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// A data source for tests that need ordered delivery.
pub struct DataSource {
    pub out: OutputPort<DataMessage>,
}

impl StreamHandler for DataSource {
    fn ports(&self) -> Ports {
        Ports::new().output(&self.out)
    }
    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        let n = ctx.tick().frame_number;
        self.out.write(DataMessage::text("n", &n.to_string(), 0));
        Ok(())
    }
}

/// Pumps `n` ticks through a manual clock and waits for them.
pub fn pump(
    runtime: &streamlib_runtime::StreamRuntime,
    ticks: &streamlib_clock::ManualClockHandle,
    from: u64,
    n: u64,
) {
    for k in 1..=n {
        ticks.tick();
        assert!(
            runtime.wait_for_ticks(from + k, std::time::Duration::from_secs(10)),
            "tick {} did not complete",
            from + k
        );
    }
}
