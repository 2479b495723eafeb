//! Shared helpers for the workspace benchmarks.
//!
//! The bench targets in `benches/benches/` build their pipelines from the handlers here:
//!
//! - [`TickSource`] writes a clone of a prototype message on every tick (for [`DataMessage`]
//!   and [`VideoFrame`] that is reference-count increments, no allocation);
//! - [`PassThrough`] forwards everything it receives, unchanged;
//! - [`CountingSink`] drains one or more inputs and reports the items to a shared [`Progress`],
//!   which records the instant a chosen item count is reached (so a benchmark can time "N ticks
//!   crossed the pipeline" without polling the pipeline or slowing it down).
//!
//! [`add_chain`] wires source → K pass-throughs → sink, [`cpu_time`] reads the process CPU
//! time, and [`is_bench_run`] tells a custom `main` whether `cargo bench` (rather than
//! `cargo test --benches`) started it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use streamlib::buffers::BuffersError;
use streamlib::dispatch::Dispatcher;
use streamlib::ports::{
    DataMessage, FrameLayout, FramePool, HandlerError, InputPort, MemoryCaps, Message, OutputPort,
    PixelFormat, Ports, ProcessContext, StreamHandler, VideoFrame,
};
use streamlib::runtime::{RuntimeError, Stream, StreamRuntime};

/// Whether the binary was started by `cargo bench` (which passes `--bench`), as opposed to
/// `cargo test --benches`, where a benchmark should only check that it runs.
pub fn is_bench_run() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

/// A small data message (topic and an 8-byte payload); cloning it is two `Arc` increments.
pub fn small_message() -> DataMessage {
    DataMessage::new("bench/seq", [0_u8; 8].as_slice(), 0)
}

/// A 64×64 gray video frame over a buffer from a pool (returned too, so it outlives the frame).
/// Cloning the frame is two atomic increments; the pixels are never copied.
pub fn pooled_frame() -> Result<(FramePool, VideoFrame), BuffersError> {
    let layout = match FrameLayout::new(64, 64, PixelFormat::Gray8) {
        Ok(layout) => layout,
        Err(error) => unreachable!("64x64 gray8 is a valid layout: {error}"),
    };
    let pool = FramePool::new("bench", layout, 2, 4)?;
    let frame = pool.frame(pool.acquire()?);
    Ok((pool, frame))
}

/// Counts items arriving at sinks and records when a target count is reached.
///
/// The hot path ([`record`](Self::record)) is one `fetch_add` and one load; the lock is taken
/// once per target, by the sink that reaches it.
#[derive(Debug)]
pub struct Progress {
    items: AtomicU64,
    /// The count to watch for; `u64::MAX` when none is armed.
    target: AtomicU64,
    reached: Mutex<Option<Instant>>,
    cv: Condvar,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            items: AtomicU64::new(0),
            target: AtomicU64::new(u64::MAX),
            reached: Mutex::new(None),
            cv: Condvar::new(),
        }
    }
}

impl Progress {
    /// A counter at zero with no target.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Items counted so far.
    pub fn items(&self) -> u64 {
        self.items.load(Ordering::Acquire)
    }

    /// Adds `n` items; when that reaches the armed target, records the instant and wakes the
    /// waiter.
    pub fn record(&self, n: u64) {
        let total = self.items.fetch_add(n, Ordering::AcqRel) + n;
        let target = self.target.load(Ordering::Acquire);
        if total >= target
            && self
                .target
                .compare_exchange(target, u64::MAX, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            let now = Instant::now();
            let mut reached = self.reached.lock().unwrap_or_else(PoisonError::into_inner);
            *reached = Some(now);
            self.cv.notify_all();
        }
    }

    /// Arms a target `more` items beyond the current count and returns it. Call before
    /// issuing the ticks that produce those items.
    pub fn arm(&self, more: u64) -> u64 {
        *self.reached.lock().unwrap_or_else(PoisonError::into_inner) = None;
        let target = self.items() + more;
        self.target.store(target, Ordering::Release);
        // Already there (nothing more was asked for): record it now.
        self.record(0);
        target
    }

    /// Waits until the armed target is reached and returns the instant it was; `None` after
    /// `timeout`.
    pub fn wait(&self, timeout: Duration) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        let mut reached = self.reached.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(at) = *reached {
                return Some(at);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            reached = match self.cv.wait_timeout(reached, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

/// A source: writes a clone of `proto` on every tick.
#[derive(Debug)]
pub struct TickSource<T: Message> {
    /// Where the messages go.
    pub out: OutputPort<T>,
    proto: T,
}

impl<T: Message> TickSource<T> {
    /// A source of clones of `proto` on an output named `out`.
    pub fn new(proto: T) -> Self {
        Self {
            out: OutputPort::new("out", MemoryCaps::CPU),
            proto,
        }
    }
}

impl<T: Message> StreamHandler for TickSource<T> {
    fn ports(&self) -> Ports {
        Ports::new().output(&self.out)
    }

    fn process(&mut self, _ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        self.out.write(self.proto.clone());
        Ok(())
    }
}

/// Forwards every item from `input` to `out`, unchanged (a no-op element).
#[derive(Debug)]
pub struct PassThrough<T: Message> {
    /// Where items come from.
    pub input: InputPort<T>,
    /// Where they go.
    pub out: OutputPort<T>,
}

impl<T: Message> PassThrough<T> {
    /// A pass-through with ports `in` and `out`, in the message type's default delivery mode.
    pub fn new() -> Self {
        Self {
            input: InputPort::new("in", MemoryCaps::CPU),
            out: OutputPort::new("out", MemoryCaps::CPU),
        }
    }
}

impl<T: Message> Default for PassThrough<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Message> StreamHandler for PassThrough<T> {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input).output(&self.out)
    }

    fn process(&mut self, _ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        while let Some(item) = self.input.recv() {
            self.out.write(item);
        }
        Ok(())
    }
}

/// Drains its inputs and counts the items into a shared [`Progress`].
#[derive(Debug)]
pub struct CountingSink<T: Message> {
    /// The inputs, named `in0`, `in1`, …
    pub inputs: Vec<InputPort<T>>,
    progress: Arc<Progress>,
}

impl<T: Message> CountingSink<T> {
    /// A sink with `inputs` inputs (at least one) reporting to `progress`.
    pub fn new(inputs: usize, progress: Arc<Progress>) -> Self {
        Self {
            inputs: (0..inputs.max(1))
                .map(|i| InputPort::new(format!("in{i}"), MemoryCaps::CPU))
                .collect(),
            progress,
        }
    }
}

impl<T: Message> StreamHandler for CountingSink<T> {
    fn ports(&self) -> Ports {
        self.inputs
            .iter()
            .fold(Ports::new(), |ports, input| ports.input(input))
    }

    fn process(&mut self, _ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        let mut n = 0;
        for input in &self.inputs {
            while input.recv().is_some() {
                n += 1;
            }
        }
        if n > 0 {
            self.progress.record(n);
        }
        Ok(())
    }
}

/// Where each role of a chain runs; `None` means the runtime's default dispatcher.
#[derive(Clone, Default)]
pub struct Placement {
    /// The source's dispatcher.
    pub source: Option<Arc<dyn Dispatcher>>,
    /// Every pass-through's dispatcher.
    pub pass: Option<Arc<dyn Dispatcher>>,
    /// The sink's dispatcher.
    pub sink: Option<Arc<dyn Dispatcher>>,
}

impl Placement {
    /// Every role on `dispatcher`.
    pub fn all(dispatcher: &Arc<dyn Dispatcher>) -> Self {
        Self {
            source: Some(Arc::clone(dispatcher)),
            pass: Some(Arc::clone(dispatcher)),
            sink: Some(Arc::clone(dispatcher)),
        }
    }
}

impl std::fmt::Debug for Placement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = |d: &Option<Arc<dyn Dispatcher>>| d.as_ref().map_or("default", |d| d.kind());
        f.debug_struct("Placement")
            .field("source", &kind(&self.source))
            .field("pass", &kind(&self.pass))
            .field("sink", &kind(&self.sink))
            .finish()
    }
}

fn stream(id: String, handler: impl StreamHandler, on: Option<&Arc<dyn Dispatcher>>) -> Stream {
    let stream = Stream::new(id, handler);
    match on {
        Some(dispatcher) => stream.dispatcher(Arc::clone(dispatcher)),
        None => stream,
    }
}

/// Adds `{prefix}-src` → `{prefix}-pass0` … `{prefix}-pass{K-1}` → `{prefix}-sink` to
/// `runtime`, the source writing clones of `proto`, and returns the sink's [`Progress`]
/// (one item per tick once running).
pub fn add_chain<T: Message>(
    runtime: &mut StreamRuntime,
    prefix: &str,
    proto: T,
    pass_throughs: usize,
    placement: &Placement,
) -> Result<Arc<Progress>, Box<RuntimeError>> {
    let progress = Progress::new();
    let source = TickSource::new(proto);
    let mut upstream = source.out.handle();
    runtime.add_stream(stream(
        format!("{prefix}-src"),
        source,
        placement.source.as_ref(),
    ))?;
    for i in 0..pass_throughs {
        let pass = PassThrough::<T>::new();
        let (input, out) = (pass.input.handle(), pass.out.handle());
        runtime.add_stream(stream(
            format!("{prefix}-pass{i}"),
            pass,
            placement.pass.as_ref(),
        ))?;
        runtime.connect(&upstream, &input)?;
        upstream = out;
    }
    let sink = CountingSink::<T>::new(1, Arc::clone(&progress));
    let input = sink.inputs[0].handle();
    runtime.add_stream(stream(
        format!("{prefix}-sink"),
        sink,
        placement.sink.as_ref(),
    ))?;
    runtime.connect(&upstream, &input)?;
    Ok(progress)
}

/// CPU time (user + system) this process has used so far, all threads included
/// (`getrusage(RUSAGE_SELF)`).
pub fn cpu_time() -> Duration {
    // SAFETY: `rusage` is plain integers, for which all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a live, writable `rusage`; RUSAGE_SELF needs nothing else.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc != 0 {
        return Duration::ZERO;
    }
    let timeval = |tv: libc::timeval| {
        Duration::from_secs(u64::try_from(tv.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(tv.tv_usec).unwrap_or(0))
    };
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}

/// The median of `values` (sorted in place); zero when empty.
pub fn median(values: &mut [Duration]) -> Duration {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

/// Formats a duration in the unit that suits it (ns, µs or ms), for printed summaries.
pub fn pretty(d: Duration) -> String {
    let ns = d.as_secs_f64() * 1e9;
    if ns < 1e3 {
        format!("{ns:.1} ns")
    } else if ns < 1e6 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{:.2} ms", ns / 1e6)
    }
}
