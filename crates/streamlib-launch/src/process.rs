//! The `@process` dispatcher: an element's handler runs in a child process, so a segfault in
//! a C library, an `abort`, an out-of-memory kill or a loop that never ends takes down that
//! child only; the runtime counts the failure and restarts the element per its restart policy
//! (`identity abort-after=30 restart=always @process`).
//!
//! # How it works
//! At build time the real handler is built once in the parent, only to read its ports, and
//! dropped. In its place the runtime gets a proxy with the same ports (same names, format
//! caps, delivery, follow rules), CPU memory only: a GPU frame cannot cross into a child, so
//! negotiation inserts a GPU→CPU transfer in front of it (or refuses the link, naming it).
//! At its first tick — every upstream `on_start` has run by then — the proxy starts the child:
//! the same executable ([`std::env::current_exe`]) re-entered through [`run_worker`], with
//! the handler's name and its properties as text. The child builds the handler from its own
//! [`Registry`] by name (so handlers a user crate registers work too), starts it, and per tick
//! gets its input frames, runs `process`, and sends back what the handler wrote.
//!
//! # Frames cross as slot indices
//! Each `@process` element has a [`ShmPool`] (a sealed `memfd` both processes map). The
//! upstream outputs that feed it are given a [`PoolProvider`] over that pool, so a producer
//! that takes its pool from its output (`testpattern`, every `FramePool::for_output` user)
//! writes its frames straight into shared slots; such a frame crosses as a slot index and a
//! length. A frame that is not in a slot (a producer with its own buffers) is copied into one
//! and the copy counted (`bytes_copied` in the element's report). Coming back, an output
//! frame that *is* an input slot (a pass-through: `identity`) crosses back as that slot, with
//! no copy; a new frame the handler made is copied by the child into an empty slot the proxy
//! lent for that output (counted too).
//!
//! # The executable must answer as a worker
//! The child is this executable started again with an environment variable set. Its `main`
//! must hand over to [`run_worker`] first thing — before parsing arguments or printing
//! anything — with the registry the pipeline was built from:
//!
//! ```no_run
//! use std::process::ExitCode;
//! use streamlib_launch::Registry;
//!
//! fn registry() -> Registry {
//!     let registry = Registry::builtin();
//!     // registry.register(my_handler_spec());
//!     registry
//! }
//!
//! fn main() -> ExitCode {
//!     if streamlib_launch::process::is_worker() {
//!         return streamlib_launch::process::run_worker(&registry());
//!     }
//!     // … build and run pipelines as usual …
//!     ExitCode::SUCCESS
//! }
//! ```
//!
//! The `streamlib` command line does this. [`ProcessOptions`] (start and tick deadlines,
//! memory limit, CPU affinity, niceness, pool size, another executable) apply to the
//! `@process` elements built after [`ProcessOptions::install`].
//!
//! # Limits
//! Video and audio ports (data and event ports are refused at build, naming the port).
//! Live property changes reach the child (`SetProperty`) before its next tick; a restarted
//! child starts with the values in effect. A handler in a child should not keep input frames
//! past its tick beyond what it declares with `holding` (see docs/PROCESS.md). End of
//! stream, stop requests and the last tick's `inputs_ended` cross both ways.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use streamlib_clock::{ClockInfo, ClockSourceId, Pacing, Rational, TimedTick, Timescale};
use streamlib_ports::{
    AudioBuffer, DeliveryMode, FrameLayout, HandlerError, InputPort, MemoryCaps, MemorySpace,
    OutputPort, PixelFormat, PoolProvider, Ports, ProcessContext, StartContext, StreamHandler,
    VideoFrame,
};
use streamlib_process::{
    AudioSlot, BufferPool, Child, ChildId, ChildOptions, ChildStats, Crossing, FrameSlot,
    LEND_PORT, Message, PoolBufMut, PooledBuf, ProcessError, ShmPool, Worker,
};

use crate::desc::ElementDesc;
use crate::options::ChildLimits;
use crate::registry::{BuiltHandler, HandlerSpec, LiveHandle, Properties, Registry};
use crate::{LaunchError, validate_properties};

/// Property names the parent adds to the handshake (never a handler's: `@` is not allowed in
/// a property name).
const ELEMENT_KEY: &str = "@element";
const FPS_KEY: &str = "@fps";
const CLOCK_KEY: &str = "@clock";
/// The handler's inputs connected in the parent's graph, names separated by commas: the
/// child connects only these (a handler can act on what is connected, as `filereader` does
/// for its audio output).
const INPUTS_KEY: &str = "@inputs";
/// The same for its outputs.
const OUTPUTS_KEY: &str = "@outputs";

/// Ring slots of the output that feeds each of the child's handler inputs (latest delivery):
/// the frames of the last ticks that ring still holds. The parent keeps that many of each
/// input's frames alive, so their slots are not reused while the child may read them.
const FEEDER_SLOTS: usize = 3;

/// Audio buffers an audio input forwards per tick at most (the rest wait for the next).
const AUDIO_PER_TICK: usize = 8;

/// How `@process` children are started and watched.
#[derive(Debug, Clone)]
pub struct ProcessOptions {
    /// Shared-memory slots per element (frames in flight: upstream pool, copies, outputs).
    pub slots: usize,
    /// The smallest slot in bytes (a slot is at least one input frame; 1080p RGBA default).
    pub min_slot_size: usize,
    /// Time from spawn to the child's `Ready` before it is killed.
    pub start_timeout: Duration,
    /// Time from a tick's start to the child's `Done` before the watchdog kills it.
    pub tick_deadline: Duration,
    /// Time a stopping child gets to exit before it is killed.
    pub stop_timeout: Duration,
    /// Address-space limit of the child in bytes (`RLIMIT_AS`; the pool's mapping counts).
    pub memory_limit: Option<u64>,
    /// CPUs the child may run on.
    pub cpu_affinity: Option<Vec<usize>>,
    /// The child's niceness.
    pub nice: Option<i32>,
    /// The executable to start as the worker (default: this one).
    pub program: Option<PathBuf>,
    /// Arguments it is started with (none by default: the worker needs none; a test binary
    /// passes the name of its worker-entry test).
    pub args: Vec<String>,
}

impl Default for ProcessOptions {
    fn default() -> Self {
        Self {
            slots: 32,
            min_slot_size: 1920 * 1080 * 4,
            start_timeout: Duration::from_secs(10),
            tick_deadline: Duration::from_secs(1),
            stop_timeout: Duration::from_millis(500),
            memory_limit: None,
            cpu_affinity: None,
            nice: None,
            program: None,
            args: Vec::new(),
        }
    }
}

fn installed() -> &'static Mutex<ProcessOptions> {
    static OPTIONS: OnceLock<Mutex<ProcessOptions>> = OnceLock::new();
    OPTIONS.get_or_init(|| Mutex::new(ProcessOptions::default()))
}

impl ProcessOptions {
    /// Makes these the options of every `@process` element built from now on in this process.
    pub fn install(self) {
        *installed().lock().unwrap_or_else(PoisonError::into_inner) = self;
    }

    /// The options installed now.
    pub fn current() -> Self {
        installed()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Sets the tick deadline.
    pub fn tick_deadline(mut self, deadline: Duration) -> Self {
        self.tick_deadline = deadline;
        self
    }

    /// Sets the start timeout.
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Sets the memory limit.
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = Some(bytes);
        self
    }

    /// Sets the CPUs the child may run on.
    pub fn cpu_affinity(mut self, cpus: Vec<usize>) -> Self {
        self.cpu_affinity = Some(cpus);
        self
    }

    /// Sets the child's niceness.
    pub fn nice(mut self, nice: i32) -> Self {
        self.nice = Some(nice);
        self
    }

    /// Sets the executable started as the worker, and its arguments.
    pub fn program(mut self, program: impl Into<PathBuf>, args: &[&str]) -> Self {
        self.program = Some(program.into());
        self.args = args.iter().map(|&a| a.to_owned()).collect();
        self
    }
}

/// The dispatcher of a `@process` element's proxy: a thread of its own (the proxy waits on its
/// child), reported as `"process"` in the runtime's statistics.
#[derive(Debug, Default)]
pub struct ProcessDispatcher(streamlib_dispatch::DedicatedThreadDispatcher);

impl ProcessDispatcher {
    /// A dispatcher for one proxy.
    pub fn new() -> Self {
        Self::default()
    }
}

impl streamlib_dispatch::Dispatcher for ProcessDispatcher {
    fn kind(&self) -> &'static str {
        "process"
    }
    fn attach(
        &self,
        unit: Arc<dyn streamlib_dispatch::WorkUnit>,
    ) -> Result<Box<dyn streamlib_dispatch::Activation>, streamlib_dispatch::DispatchError> {
        self.0.attach(unit)
    }
    fn shutdown(&self) {
        self.0.shutdown();
    }
}

/// Whether this process was started as a `@process` worker (call [`run_worker`] then).
pub fn is_worker() -> bool {
    Worker::is_worker()
}

// ---------------------------------------------------------------------------------------------
// The parent's side.

/// What an element's proxy and its pool providers share.
struct Shared {
    element: String,
    options: ProcessOptions,
    pool: Mutex<Option<ShmPool>>,
    /// Pools handed to upstream producers, by name and buffer length: a restarted producer
    /// asking again gets the same one back instead of more slots.
    provided: Mutex<Vec<(String, usize, BufferPool<u8>)>>,
}

impl Shared {
    /// The element's pool, created on first use with slots of at least `len` bytes.
    fn pool(&self, len: usize) -> Result<ShmPool, ProcessError> {
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(pool) = &*pool {
            return Ok(pool.clone());
        }
        let created = ShmPool::new(
            &self.element,
            self.options.slots,
            len.max(self.options.min_slot_size),
        )?;
        *pool = Some(created.clone());
        Ok(created)
    }

    /// Forgets the pool and the upstream pools over it (a larger one replaces it); buffers
    /// and children still using it keep its mapping alive until they let go.
    fn reset(&self) {
        *self.pool.lock().unwrap_or_else(PoisonError::into_inner) = None;
        self.provided
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn existing(&self) -> Option<ShmPool> {
        self.pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Gives the producers feeding a `@process` element their pools in its shared memory.
struct ShmProvider(Arc<Shared>);

impl PoolProvider for ShmProvider {
    fn pool(&self, name: &str, buffer_len: usize, max: usize) -> Option<BufferPool<u8>> {
        let mut provided = self
            .0
            .provided
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, _, pool)) = provided
            .iter()
            .find(|(n, len, pool)| n == name && *len == buffer_len && pool.capacity() >= max)
        {
            return Some(pool.clone());
        }
        let shm = self.0.pool(buffer_len).ok()?;
        if buffer_len > shm.slot_size() {
            return None;
        }
        let storage = match shm.reserve(max) {
            Ok(storage) => storage,
            Err(error) => {
                tracing::warn!(element = %self.0.element, %error, "no shared slots left for an upstream pool: its frames will be copied");
                return None;
            }
        };
        // SAFETY: `reserve` made this storage now, for this pool alone.
        let pool = unsafe { BufferPool::with_storage(name, buffer_len, storage) }.ok()?;
        // A producer asking again (a new layout, more buffers) lets go of its old pool: its
        // reserved slots go back when the last of its buffers drops.
        provided.retain(|(n, _, _)| n != name);
        provided.push((name.to_owned(), buffer_len, pool.clone()));
        Some(pool)
    }
}

/// Counters of one `@process` element, for its report.
#[derive(Default)]
struct Counters {
    spawns: AtomicU64,
    failures: AtomicU64,
    pid: AtomicU64,
    zero_copy: AtomicU64,
    copied: AtomicU64,
    bytes_copied: AtomicU64,
    /// Live property changes sent to a running child.
    properties_sent: AtomicU64,
    /// Input frames skipped because every shared slot was in use (the producer's rule).
    skipped: AtomicU64,
    /// Output frames the child dropped (no slot to write them to).
    outputs_dropped: AtomicU64,
    /// Audio bytes copied into and out of slots (audio always crosses as a copy).
    audio_bytes_copied: AtomicU64,
    /// Times a frame outgrew the slots and a larger pool replaced the old one.
    pool_rebuilds: AtomicU64,
    /// Spawn to `Ready` of the last child, in µs.
    spawn_us: AtomicU64,
    /// The last failure to the next child's `Ready` (restart backoff included), in µs.
    recovery_us: AtomicU64,
}

/// The proxy the runtime runs in place of a `@process` element's handler, and what wiring
/// needs of it.
pub(crate) struct Proxied {
    /// The proxy, with the live handle and report.
    pub(crate) built: BuiltHandler,
    /// Give it to every output that feeds the element.
    pub(crate) provider: Arc<dyn PoolProvider>,
}

/// Replaces `real` (the element's handler, built only to read its ports) by a proxy that runs
/// it in a child process.
pub(crate) fn proxy(
    element: &str,
    spec: &HandlerSpec,
    properties: &Properties,
    real: BuiltHandler,
    limits: &ChildLimits,
) -> Result<Proxied, LaunchError> {
    let refuse = |message: String| LaunchError::Handler {
        element: element.to_owned(),
        handler: spec.name.to_owned(),
        message,
    };
    let ports = real.handler.ports();
    let live = real.live.is_some();
    let type_name = real.handler.type_name();
    drop(real);
    let video = std::any::TypeId::of::<VideoFrame>();
    let audio = std::any::TypeId::of::<AudioBuffer>();
    let carried = |direction: &str, name: &str, kind: &dyn std::fmt::Display| {
        refuse(format!(
            "@process carries video and audio ports only; {direction} `{name}` carries {kind}"
        ))
    };
    let mut inputs = Vec::with_capacity(ports.inputs().len());
    let mut kept = Vec::with_capacity(ports.inputs().len());
    for port in ports.inputs() {
        let name = port.name().to_owned();
        let input = if port.message_type() == video {
            let mut input =
                InputPort::<VideoFrame>::new(name, MemoryCaps::CPU).with_delivery(port.delivery());
            // What the child may still hold of this input's past frames: its feeder's queue
            // and what the handler declares it keeps. The proxy keeps those frames alive;
            // upstream pools size for them with the proxy's own.
            let retained = match port.delivery() {
                DeliveryMode::Latest => FEEDER_SLOTS,
                DeliveryMode::Ordered { capacity } => capacity,
            } + port.holds();
            kept.push((retained, VecDeque::with_capacity(retained)));
            input = input.holding(port.holds() + retained);
            if !port.is_required() {
                input = input.optional();
            }
            input.set_format(port.format_caps());
            InPort::Video(input)
        } else if port.message_type() == audio {
            // The child copies audio out of its slot at once: nothing of it is kept there.
            kept.push((0, VecDeque::new()));
            let mut input = InputPort::<AudioBuffer>::new(name, MemoryCaps::CPU)
                .with_delivery(port.delivery())
                .holding(port.holds());
            if !port.is_required() {
                input = input.optional();
            }
            input.set_format(port.format_caps());
            InPort::Audio(input)
        } else {
            return Err(carried("input", port.name(), &port.kind()));
        };
        inputs.push(input);
    }
    let mut outputs = Vec::with_capacity(ports.outputs().len());
    for port in ports.outputs() {
        let name = port.name().to_owned();
        let output = if port.message_type() == video {
            OutPort::Video(
                OutputPort::<VideoFrame>::new(name, MemoryCaps::CPU)
                    .with_format(port.format_caps()),
            )
        } else if port.message_type() == audio {
            OutPort::Audio(
                OutputPort::<AudioBuffer>::new(name, MemoryCaps::CPU)
                    .with_format(port.format_caps()),
            )
        } else {
            return Err(carried("output", port.name(), &port.kind()));
        };
        if let Some((id, follow)) = port.follows()
            && let Some(index) = ports.inputs().iter().position(|i| i.id() == id)
        {
            match (&output, &inputs[index]) {
                (OutPort::Video(o), InPort::Video(i)) => o.follows(i, follow),
                (OutPort::Video(o), InPort::Audio(i)) => o.follows(i, follow),
                (OutPort::Audio(o), InPort::Video(i)) => o.follows(i, follow),
                (OutPort::Audio(o), InPort::Audio(i)) => o.follows(i, follow),
            }
        }
        outputs.push(output);
    }
    if let ([InPort::Video(input)], [OutPort::Video(output)]) = (&inputs[..], &outputs[..]) {
        // A pass-through hands its input slots on: the upstream pool covers what is held
        // downstream of it too.
        input.forwards_to(output);
    }
    let mut options = ProcessOptions::current();
    // What the element's text says (`tick-deadline-ms=`, …) over what was installed.
    if let Some(deadline) = limits.tick_deadline {
        options.tick_deadline = deadline;
    }
    if let Some(bytes) = limits.memory_limit {
        options.memory_limit = Some(bytes);
    }
    if let Some(cpus) = &limits.cpu_affinity {
        options.cpu_affinity = Some(cpus.clone());
    }
    if let Some(nice) = limits.nice {
        options.nice = Some(nice);
    }
    let shared = Arc::new(Shared {
        element: element.to_owned(),
        options: options.clone(),
        pool: Mutex::new(None),
        provided: Mutex::new(Vec::new()),
    });
    let counters = Arc::new(Counters::default());
    let n_out = outputs.len();
    let n_in = inputs.len();
    let proxy = Proxy {
        element: element.to_owned(),
        handler: spec.name.to_owned(),
        properties: properties
            .iter()
            .map(|(name, value)| (name.to_owned(), value.to_string()))
            .collect(),
        options,
        shared: Arc::clone(&shared),
        pool: None,
        child_stats: ChildStats::default(),
        kept,
        inputs,
        outputs,
        clock: (Rational::fps(30), ClockSourceId(0)),
        child: None,
        next_id: 0,
        pending: Vec::new(),
        own: None,
        held: Vec::new(),
        lent: (0..n_out).map(|_| None).collect(),
        audio_out: (0..n_out).map(|_| None).collect(),
        received: (0..n_in)
            .map(|_| Vec::with_capacity(AUDIO_PER_TICK))
            .collect(),
        returned: Vec::with_capacity(n_out * 2 + 2),
        counters: Arc::clone(&counters),
        failed_at: None,
        type_name,
    };
    let built = if live {
        BuiltHandler::live(proxy, |proxy: &mut Proxy, name: &str, value| {
            proxy.set_live(name, value.to_string());
            Ok(())
        })
    } else {
        BuiltHandler {
            handler: Box::new(proxy),
            live: None,
            report: None,
        }
    };
    let report_shared = Arc::clone(&shared);
    let built = built.with_report(move || {
        let pool = report_shared.existing();
        serde_json::json!({
            "dispatcher": "process",
            "pid": counters.pid.load(Ordering::Relaxed),
            "spawns": counters.spawns.load(Ordering::Relaxed),
            "child_failures": counters.failures.load(Ordering::Relaxed),
            "frames_zero_copy": counters.zero_copy.load(Ordering::Relaxed),
            "frames_copied": counters.copied.load(Ordering::Relaxed),
            "bytes_copied": counters.bytes_copied.load(Ordering::Relaxed),
            "frames_skipped": counters.skipped.load(Ordering::Relaxed),
            "audio_bytes_copied": counters.audio_bytes_copied.load(Ordering::Relaxed),
            "outputs_dropped": counters.outputs_dropped.load(Ordering::Relaxed),
            "pool_rebuilds": counters.pool_rebuilds.load(Ordering::Relaxed),
            "properties_sent": counters.properties_sent.load(Ordering::Relaxed),
            "spawn_us": counters.spawn_us.load(Ordering::Relaxed),
            "recovery_us": counters.recovery_us.load(Ordering::Relaxed),
            "pool_slots": pool.as_ref().map_or(0, ShmPool::slots),
            "pool_slot_bytes": pool.as_ref().map_or(0, ShmPool::slot_size),
        })
    });
    Ok(Proxied {
        built,
        provider: Arc::new(ShmProvider(shared)),
    })
}

/// A registered handler set up to run in a child process, for a [`Stream`] built by hand
/// (what `@process` does in pipeline text).
///
/// ```no_run
/// use std::sync::Arc;
/// use streamlib_launch::{Registry, process};
/// use streamlib_runtime::Stream;
///
/// let isolated = process::isolate(&Registry::builtin(), "blur0", "blur", &[("sigma", "2")])?;
/// let stream = Stream::boxed("blur0", isolated.handler.handler)
///     .dispatcher(Arc::new(process::ProcessDispatcher::new()));
/// // Give `isolated.provider` to the output that feeds it
/// // (`output.set_pool_provider(Some(provider))`), so its frames cross without a copy.
/// # drop((stream, isolated.provider));
/// # Ok::<(), streamlib_launch::LaunchError>(())
/// ```
///
/// [`Stream`]: streamlib_runtime::Stream
pub struct Isolated {
    /// The proxy (CPU-only copies of the handler's ports), its live handle and report.
    pub handler: BuiltHandler,
    /// The pool provider for the outputs that feed it.
    pub provider: Arc<dyn PoolProvider>,
}

impl std::fmt::Debug for Isolated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Isolated")
            .field("handler", &self.handler)
            .finish_non_exhaustive()
    }
}

/// Validates `properties` for `handler` as pipeline text would, builds it once to read its
/// ports, and returns the proxy that runs it in a child process under `element`'s name, with
/// the [`ProcessOptions`] installed now. The executable must answer as a worker (see the
/// module docs) with a registry that has `handler`.
pub fn isolate(
    registry: &Registry,
    element: &str,
    handler: &str,
    properties: &[(&str, &str)],
) -> Result<Isolated, LaunchError> {
    let spec = registry
        .get(handler)
        .ok_or_else(|| LaunchError::UnknownHandler {
            name: handler.to_owned(),
            suggestion: crate::nearest(handler, registry.names()),
        })?;
    let desc = ElementDesc {
        name: element.to_owned(),
        handler: handler.to_owned(),
        properties: properties
            .iter()
            .map(|&(n, v)| (n.to_owned(), v.to_owned()))
            .collect(),
        dispatcher: None,
    };
    let props = validate_properties(&desc, spec)?;
    let real = (spec.factory)(&props).map_err(|e| LaunchError::Handler {
        element: element.to_owned(),
        handler: handler.to_owned(),
        message: e.to_string(),
    })?;
    let proxied = proxy(element, spec, &props, real, &ChildLimits::default())?;
    Ok(Isolated {
        handler: proxied.built,
        provider: proxied.provider,
    })
}

/// Runs a handler in a child process, tick by tick.
/// An input of a type that crosses into a child (the proxy's ports; the child's collectors).
enum InPort {
    Video(InputPort<VideoFrame>),
    Audio(InputPort<AudioBuffer>),
}

impl InPort {
    /// This tick's items into `items`: a video input's one frame, an audio input's queued
    /// buffers (up to [`AUDIO_PER_TICK`]; the rest wait for the next tick).
    fn recv_into(&self, items: &mut Vec<Item>) {
        items.clear();
        match self {
            InPort::Video(p) => items.extend(p.recv().map(Item::Video)),
            InPort::Audio(p) => {
                while items.len() < AUDIO_PER_TICK
                    && let Some(buf) = p.recv()
                {
                    items.push(Item::Audio(buf));
                }
            }
        }
    }
    fn name(&self) -> &str {
        match self {
            InPort::Video(p) => p.name(),
            InPort::Audio(p) => p.name(),
        }
    }
    fn is_connected(&self) -> bool {
        match self {
            InPort::Video(p) => p.is_connected(),
            InPort::Audio(p) => p.is_connected(),
        }
    }
}

/// An output of a type that crosses (the proxy's ports; the child's feeders).
enum OutPort {
    Video(OutputPort<VideoFrame>),
    Audio(OutputPort<AudioBuffer>),
}

impl OutPort {
    fn name(&self) -> &str {
        match self {
            OutPort::Video(p) => p.name(),
            OutPort::Audio(p) => p.name(),
        }
    }
    fn is_connected(&self) -> bool {
        match self {
            OutPort::Video(p) => p.is_connected(),
            OutPort::Audio(p) => p.is_connected(),
        }
    }
    /// Frames its readers hold at once (what the proxy's own slots are sized for).
    fn pool_capacity(&self) -> usize {
        match self {
            OutPort::Video(p) => p.pool_capacity(0),
            OutPort::Audio(p) => p.pool_capacity(0),
        }
    }
}

/// What crosses: a video frame or an audio buffer.
enum Item {
    Video(VideoFrame),
    Audio(AudioBuffer),
}

impl Item {
    /// Bytes it takes in a slot.
    fn slot_len(&self) -> Option<usize> {
        match self {
            Item::Video(frame) => frame.cpu_bytes().map(<[u8]>::len),
            Item::Audio(buf) => Some(size_of_val(buf.samples())),
        }
    }
}

/// What a slot lent to the child this tick stands for, kept alive until it answers.
enum Held {
    /// A video frame in the slot (the upstream's own, or a copy).
    Video(VideoFrame),
    /// An audio buffer copied into the slot (`_slot`), and the buffer itself, which goes on
    /// unchanged when the handler passes it through.
    Audio {
        original: AudioBuffer,
        _slot: PooledBuf<u8>,
    },
}

struct Proxy {
    element: String,
    handler: String,
    /// The properties in effect, as text (live changes included): what a new child gets.
    properties: Vec<(String, String)>,
    options: ProcessOptions,
    shared: Arc<Shared>,
    /// The element's pool once made (what `shared` holds, without its lock per tick).
    pool: Option<ShmPool>,
    /// The running child's counters as last added to the report.
    child_stats: ChildStats,
    /// Per input, the frames of its last ticks the child may still hold (its feeder's ring,
    /// the handler's declared holds), kept alive so their slots are not reused under it.
    /// Preallocated: pushing within capacity allocates nothing.
    kept: Vec<(usize, VecDeque<VideoFrame>)>,
    inputs: Vec<InPort>,
    outputs: Vec<OutPort>,
    /// Per audio output, the pool its buffers come back in (sized by the last one).
    audio_out: Vec<Option<BufferPool<f32>>>,
    clock: (Rational, ClockSourceId),
    child: Option<Child>,
    next_id: u16,
    /// Live changes not yet sent to the child.
    pending: Vec<(String, String)>,
    /// Slots for copies and output frames, a pool over reserved shared slots.
    own: Option<BufferPool<u8>>,
    /// The frame behind each pool slot lent to the child this tick (kept alive until it
    /// answers or dies, so the slot cannot be reused under it).
    held: Vec<Option<Held>>,
    /// The empty slot lent for each output this tick.
    lent: Vec<Option<(u32, PoolBufMut<u8>)>>,
    /// Each input's item this tick.
    received: Vec<Vec<Item>>,
    /// What the child answered, per output.
    returned: Vec<(usize, Item)>,
    counters: Arc<Counters>,
    /// When the last child failed (until the next one is ready).
    failed_at: Option<Instant>,
    /// The real handler's type name (what statistics show in process too).
    type_name: &'static str,
}

impl Proxy {
    fn set_live(&mut self, name: &str, value: String) {
        match self.properties.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => v.clone_from(&value),
            None => self.properties.push((name.to_owned(), value.clone())),
        }
        self.pending.push((name.to_owned(), value));
    }

    /// `error` as the stream's failure: names the element and handler; the child is gone
    /// and its slots are back with their pools.
    fn fail(&mut self, error: impl std::fmt::Display) -> HandlerError {
        self.counters.failures.fetch_add(1, Ordering::Relaxed);
        self.failed_at = Some(Instant::now());
        self.child = None;
        self.clear();
        HandlerError::msg(format!(
            "element `{}` (@process, handler `{}`): {error}",
            self.element, self.handler
        ))
    }

    fn clear(&mut self) {
        self.kept.iter_mut().for_each(|(_, frames)| frames.clear());
        self.held.iter_mut().for_each(|h| *h = None);
        self.lent.iter_mut().for_each(|l| *l = None);
        self.received.iter_mut().for_each(Vec::clear);
        self.returned.clear();
    }

    /// The pool, and the proxy's own slots in it. Made on first use with slots for this
    /// tick's largest frame, else the negotiated frame size; made again, larger, when a frame
    /// outgrows its slots (the child restarts on the new one). `None` while an element with
    /// inputs has neither a frame nor a fixed size yet: the tick is skipped, so a slot size
    /// is never guessed.
    fn ensure_pool(&mut self) -> Result<Option<ShmPool>, ProcessError> {
        let largest = self
            .received
            .iter()
            .flatten()
            .filter_map(Item::slot_len)
            .max()
            .unwrap_or(0);
        if let Some(pool) = &self.pool {
            if largest <= pool.slot_size() {
                return Ok(Some(pool.clone()));
            }
            self.replace_pool();
        }
        let wanted = largest.max(self.negotiated_len());
        if wanted == 0 && !self.inputs.is_empty() {
            return Ok(None);
        }
        let mut pool = self.shared.pool(wanted)?;
        if pool.slot_size() < wanted {
            // An upstream made it for smaller frames than this tick's.
            self.replace_pool();
            pool = self.shared.pool(wanted)?;
        }
        self.held = (0..pool.slots()).map(|_| None).collect();
        let wanted_own: usize = self
            .outputs
            .iter()
            .map(OutPort::pool_capacity)
            .sum::<usize>()
            + self
                .inputs
                .iter()
                .map(|i| match i {
                    InPort::Video(_) => 2,
                    InPort::Audio(_) => AUDIO_PER_TICK,
                })
                .sum::<usize>()
            + 1;
        let count = wanted_own.min(pool.available());
        if count > 0 {
            let storage = pool.reserve(count)?;
            // SAFETY: `reserve` made this storage now, for this pool alone.
            self.own = unsafe {
                BufferPool::with_storage(
                    format!("{}-process", self.element),
                    pool.slot_size(),
                    storage,
                )
            }
            .ok();
        }
        self.pool = Some(pool.clone());
        Ok(Some(pool))
    }

    /// The largest frame the negotiated caps of the ports fix, in bytes (0 when none).
    fn negotiated_len(&self) -> usize {
        let inputs = self.inputs.iter().filter_map(|i| match i {
            InPort::Video(p) => p.negotiated_video(),
            InPort::Audio(_) => None,
        });
        let outputs = self.outputs.iter().filter_map(|o| match o {
            OutPort::Video(p) => p.negotiated_video(),
            OutPort::Audio(_) => None,
        });
        inputs
            .chain(outputs)
            .filter_map(|v| FrameLayout::new(v.width, v.height, v.format).ok())
            .map(|layout| layout.buffer_len())
            .max()
            .unwrap_or(0)
    }

    /// Stops the child and forgets the pool, for a larger one.
    fn replace_pool(&mut self) {
        if let Some(child) = self.child.take() {
            child.stop(self.options.stop_timeout);
        }
        self.clear();
        self.own = None;
        self.pool = None;
        self.shared.reset();
        self.counters.pool_rebuilds.fetch_add(1, Ordering::Relaxed);
    }

    fn spawn(&mut self, pool: &ShmPool) -> Result<(), ProcessError> {
        let program = match &self.options.program {
            Some(program) => program.clone(),
            None => std::env::current_exe()
                .map_err(|e| ProcessError::NotAWorker(format!("no current executable: {e}")))?,
        };
        let mut command = Command::new(program);
        command.args(&self.options.args);
        command.stdin(Stdio::null()).stdout(Stdio::null());
        let fps = format!("{}/{}", self.clock.0.num, self.clock.0.den);
        let clock = self.clock.1.0.to_string();
        let connected = |names: &mut dyn Iterator<Item = (&str, bool)>| {
            names
                .filter(|(_, connected)| *connected)
                .map(|(name, _)| name)
                .collect::<Vec<_>>()
                .join(",")
        };
        let inputs = connected(&mut self.inputs.iter().map(|i| (i.name(), i.is_connected())));
        let outputs = connected(&mut self.outputs.iter().map(|o| (o.name(), o.is_connected())));
        let mut properties: Vec<(&str, &str)> = vec![
            (ELEMENT_KEY, &self.element),
            (FPS_KEY, &fps),
            (CLOCK_KEY, &clock),
            (INPUTS_KEY, &inputs),
            (OUTPUTS_KEY, &outputs),
        ];
        properties.extend(
            self.properties
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str())),
        );
        let options = ChildOptions {
            id: ChildId(self.next_id),
            start_timeout: self.options.start_timeout,
            tick_deadline: self.options.tick_deadline,
            memory_limit: self.options.memory_limit,
            cpu_affinity: self.options.cpu_affinity.clone(),
            nice: self.options.nice,
        };
        // A new id per child: a dead child's slot indices can never match a live one's.
        self.next_id = self.next_id.wrapping_add(1);
        let started = Instant::now();
        let child = Child::spawn(command, &self.handler, &properties, pool, options)?;
        let micros = |since: Instant| since.elapsed().as_micros() as u64;
        self.counters
            .spawn_us
            .store(micros(started), Ordering::Relaxed);
        if let Some(failed) = self.failed_at.take() {
            self.counters
                .recovery_us
                .store(micros(failed), Ordering::Relaxed);
        }
        self.counters.spawns.fetch_add(1, Ordering::Relaxed);
        self.counters
            .pid
            .store(u64::from(child.pid()), Ordering::Relaxed);
        self.pending.clear();
        self.child_stats = ChildStats::default();
        self.child = Some(child);
        Ok(())
    }

    /// Hands input `port`'s item to the child: a frame's own slot when it is in the pool,
    /// else a copy in one of the proxy's slots (audio is always copied: a few KB).
    fn send_input(&mut self, pool: &ShmPool, port: usize) -> Result<(), ProcessError> {
        let mut items = std::mem::take(&mut self.received[port]);
        let mut sent = Ok(());
        for item in items.drain(..) {
            sent = match item {
                Item::Video(frame) => self.send_frame(pool, port, frame),
                Item::Audio(buf) => self.send_audio(pool, port, buf),
            };
            if sent.is_err() {
                break;
            }
        }
        items.clear();
        // Back in place, with its capacity: no allocation next tick.
        self.received[port] = items;
        sent
    }

    fn send_audio(
        &mut self,
        pool: &ShmPool,
        port: usize,
        buf: AudioBuffer,
    ) -> Result<(), ProcessError> {
        let samples = buf.samples();
        let len = size_of_val(samples);
        let Some(mut slot_buf) = self.own.as_ref().and_then(|own| own.acquire().ok()) else {
            self.counters.skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        };
        let Some(dst) = slot_buf.get_mut(..len) else {
            return Err(ProcessError::FrameTooLong {
                slot: 0,
                len: u32::try_from(len).unwrap_or(u32::MAX),
                slot_size: pool.slot_size(),
            });
        };
        for (dst, sample) in dst.chunks_exact_mut(4).zip(samples) {
            dst.copy_from_slice(&sample.to_le_bytes());
        }
        self.counters
            .audio_bytes_copied
            .fetch_add(len as u64, Ordering::Relaxed);
        let slot_buf = slot_buf.freeze();
        let slot = pool
            .slot_of(slot_buf.as_ptr())
            .ok_or_else(|| ProcessError::PoolExhausted {
                name: pool.name().to_owned(),
                slots: pool.slots(),
            })?;
        let message = AudioSlot {
            port: port as u16,
            slot,
            generation: 0,
            len: u32::try_from(len).unwrap_or(u32::MAX),
            channels: buf.channels(),
            sample_rate: buf.sample_rate(),
            timestamp_ns: buf.timestamp_ns(),
        };
        self.held[slot as usize] = Some(Held::Audio {
            original: buf,
            _slot: slot_buf,
        });
        let lease = pool.lend(slot)?;
        match &mut self.child {
            Some(child) => child.send(lease, Crossing::Audio(message)),
            None => Ok(()),
        }
    }

    fn send_frame(
        &mut self,
        pool: &ShmPool,
        port: usize,
        frame: VideoFrame,
    ) -> Result<(), ProcessError> {
        let Some(bytes) = frame.cpu_bytes() else {
            return Err(ProcessError::NotAWorker(format!(
                "input `{}` got a GPU frame, which cannot cross into a child (negotiation should have inserted a transfer)",
                self.inputs[port].name()
            )));
        };
        let len = bytes.len();
        let in_pool = pool
            .slot_of(bytes.as_ptr())
            .filter(|&slot| self.held.get(slot as usize).is_some_and(Option::is_none));
        let (slot, frame) = match in_pool {
            Some(slot) => {
                self.counters.zero_copy.fetch_add(1, Ordering::Relaxed);
                (slot, frame)
            }
            None => {
                let too_long = ProcessError::FrameTooLong {
                    slot: 0,
                    len: u32::try_from(len).unwrap_or(u32::MAX),
                    slot_size: pool.slot_size(),
                };
                let Some(mut buf) = self.own.as_ref().and_then(|own| own.acquire().ok()) else {
                    // Every slot is in use: skip this frame, as a producer does when its
                    // pool is dry (the handler sees the previous one), and count it.
                    self.counters.skipped.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                };
                buf.get_mut(..len).ok_or(too_long)?.copy_from_slice(bytes);
                pool.count_copied(len as u64);
                self.counters.copied.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .bytes_copied
                    .fetch_add(len as u64, Ordering::Relaxed);
                let slot =
                    pool.slot_of(buf.as_ptr())
                        .ok_or_else(|| ProcessError::PoolExhausted {
                            name: pool.name().to_owned(),
                            slots: pool.slots(),
                        })?;
                let copy = VideoFrame::cpu(frame.layout(), buf.freeze())
                    .map_err(|e| ProcessError::NotAWorker(e.to_string()))?
                    .with_timing(
                        frame.timestamp_ns(),
                        frame.frame_number(),
                        frame.clock_source_id(),
                    )
                    .with_alpha(frame.alpha());
                (slot, copy)
            }
        };
        let layout = frame.layout();
        let message = FrameSlot {
            port: port as u16,
            slot,
            generation: 0,
            len: u32::try_from(len).unwrap_or(u32::MAX),
            width: layout.width(),
            height: layout.height(),
            format: layout.format(),
            stride: layout.stride(),
        };
        let (retained, kept) = &mut self.kept[port];
        if kept.len() >= *retained {
            kept.pop_front();
        }
        if *retained > 0 {
            kept.push_back(frame.clone());
        }
        self.held[slot as usize] = Some(Held::Video(frame));
        let lease = pool.lend(slot)?;
        match &mut self.child {
            Some(child) => child.send_frame(lease, message),
            None => Ok(()),
        }
    }

    /// Lends output `port` an empty slot, for a frame the handler makes.
    fn lend_output(&mut self, pool: &ShmPool, port: usize) -> Result<(), ProcessError> {
        let Some(buf) = self.own.as_ref().and_then(|own| own.acquire().ok()) else {
            return Ok(());
        };
        let Some(slot) = pool.slot_of(buf.as_ptr()) else {
            return Ok(());
        };
        let len = u32::try_from(pool.slot_size()).unwrap_or(u32::MAX);
        let message = match &self.outputs[port] {
            OutPort::Video(_) => Crossing::Video(FrameSlot {
                port: LEND_PORT | port as u16,
                slot,
                generation: 0,
                len,
                width: 1,
                height: 1,
                format: PixelFormat::Rgba8,
                stride: 4,
            }),
            OutPort::Audio(_) => Crossing::Audio(AudioSlot {
                port: LEND_PORT | port as u16,
                slot,
                generation: 0,
                len,
                channels: 1,
                sample_rate: 1,
                timestamp_ns: 0,
            }),
        };
        let lease = pool.lend(slot)?;
        self.lent[port] = Some((slot, buf));
        match &mut self.child {
            Some(child) => child.send(lease, message),
            None => Ok(()),
        }
    }

    /// One tick through the child: what its handler said of the stream's end.
    fn tick(&mut self, tick: &TimedTick, inputs_ended: bool) -> Result<Ending, ProcessError> {
        let Some(pool) = self.ensure_pool()? else {
            return Ok(Ending::default());
        };
        if self.child.is_none() {
            self.spawn(&pool)?;
        }
        if let Some(child) = &mut self.child {
            for (name, value) in self.pending.drain(..) {
                child.set_property(&name, &value)?;
                self.counters
                    .properties_sent
                    .fetch_add(1, Ordering::Relaxed);
            }
            child.start_tick(tick.frame_number, tick.timestamp)?;
            if inputs_ended {
                child.inputs_ended()?;
            }
        }
        for port in 0..self.inputs.len() {
            self.send_input(&pool, port)?;
        }
        for port in 0..self.outputs.len() {
            self.lend_output(&pool, port)?;
        }
        let Proxy {
            child,
            held,
            lent,
            returned,
            counters,
            outputs,
            child_stats,
            audio_out,
            ..
        } = self;
        let Some(child) = child else {
            return Ok(Ending::default());
        };
        let n_out = outputs.len();
        let done = child.finish_tick(|_lease, slot| {
            let port = usize::from(slot.port());
            if port >= n_out {
                return;
            }
            let item = match slot {
                Crossing::Video(slot) => video_answer(held, lent, counters, port, &slot, tick),
                Crossing::Audio(slot) => audio_answer(held, lent, audio_out, counters, port, &slot),
            };
            match item {
                Some(item) => returned.push((port, item)),
                None => {
                    counters.outputs_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        })?;
        // What the child copied or dropped since it last said.
        let stats = child.stats();
        let seen = std::mem::replace(child_stats, stats);
        let grew = |now: u64, then: u64| now.saturating_sub(then);
        counters.copied.fetch_add(
            grew(stats.frames_copied, seen.frames_copied),
            Ordering::Relaxed,
        );
        counters.bytes_copied.fetch_add(
            grew(stats.bytes_copied, seen.bytes_copied),
            Ordering::Relaxed,
        );
        counters.outputs_dropped.fetch_add(
            grew(stats.outputs_dropped, seen.outputs_dropped),
            Ordering::Relaxed,
        );
        Ok(Ending {
            stream: done.end_of_stream,
            pipeline: done.stop_requested,
        })
    }
}

/// What the child's handler said of the stream's end in a tick.
#[derive(Debug, Default, Clone, Copy)]
struct Ending {
    /// It called `end_of_stream`.
    stream: bool,
    /// It called `request_stop`.
    pipeline: bool,
}

/// The frame the child answered on output `port`: a pass-through of an input's own slot (no
/// byte copied) or the frame it copied into the slot lent for `port`.
fn video_answer(
    held: &[Option<Held>],
    lent: &mut [Option<(u32, PoolBufMut<u8>)>],
    counters: &Counters,
    port: usize,
    slot: &FrameSlot,
    tick: &TimedTick,
) -> Option<Item> {
    let layout = slot.layout().ok()?;
    match held.get(slot.slot as usize) {
        Some(Some(Held::Video(frame))) => {
            // A pass-through: the input's own buffer goes on, not a byte copied.
            if frame.layout() == layout {
                return Some(Item::Video(frame.clone()));
            }
            let buf = frame.cpu_buffer()?.clone();
            let relaid = VideoFrame::cpu(layout, buf).ok()?.with_timing(
                frame.timestamp_ns(),
                frame.frame_number(),
                frame.clock_source_id(),
            );
            return Some(Item::Video(relaid));
        }
        Some(Some(Held::Audio { .. })) => return None,
        _ => {}
    }
    let entry = lent.get_mut(port)?;
    if entry.as_ref().is_none_or(|(s, _)| *s != slot.slot) {
        return None;
    }
    let (_, buf) = entry.take()?;
    let frame = VideoFrame::cpu(layout, buf.freeze()).ok()?;
    counters.copied.fetch_add(1, Ordering::Relaxed);
    counters
        .bytes_copied
        .fetch_add(u64::from(slot.len), Ordering::Relaxed);
    Some(Item::Video(frame.with_tick(tick)))
}

/// The audio buffer the child answered on output `port`: an input passed through (the
/// original buffer goes on) or samples it wrote into the slot lent for `port`, read into
/// that output's pool.
fn audio_answer(
    held: &[Option<Held>],
    lent: &mut [Option<(u32, PoolBufMut<u8>)>],
    audio_out: &mut [Option<BufferPool<f32>>],
    counters: &Counters,
    port: usize,
    slot: &AudioSlot,
) -> Option<Item> {
    if let Some(Some(Held::Audio { original, .. })) = held.get(slot.slot as usize) {
        return Some(Item::Audio(original.clone()));
    }
    let entry = lent.get_mut(port)?;
    if entry.as_ref().is_none_or(|(s, _)| *s != slot.slot) {
        return None;
    }
    let (_, bytes) = entry.take()?;
    let bytes = bytes.get(..slot.len as usize)?;
    let samples = bytes.len() / 4;
    let pool = audio_out.get_mut(port)?;
    if pool.as_ref().is_none_or(|p| p.buffer_len() != samples) {
        *pool = BufferPool::new("process-audio", samples, 2, 8).ok();
    }
    let mut buf = pool.as_ref()?.acquire().ok()?;
    for (dst, src) in buf.iter_mut().zip(bytes.chunks_exact(4)) {
        *dst = f32::from_le_bytes([src[0], src[1], src[2], src[3]]);
    }
    counters
        .audio_bytes_copied
        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
    AudioBuffer::new(
        buf.freeze(),
        slot.channels,
        slot.sample_rate,
        slot.timestamp_ns,
    )
    .ok()
    .map(Item::Audio)
}

impl StreamHandler for Proxy {
    fn ports(&self) -> Ports {
        let mut ports = Ports::new();
        for input in &self.inputs {
            ports = match input {
                InPort::Video(p) => ports.input(p),
                InPort::Audio(p) => ports.input(p),
            };
        }
        for output in &self.outputs {
            ports = match output {
                OutPort::Video(p) => ports.output(p),
                OutPort::Audio(p) => ports.output(p),
            };
        }
        ports
    }

    fn on_start(&mut self, ctx: &StartContext<'_>) -> Result<(), HandlerError> {
        // The child starts at the first tick, once every upstream on_start has run.
        self.clock = (ctx.clock().fps, ctx.clock().id);
        self.clear();
        Ok(())
    }

    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        for (items, input) in self.received.iter_mut().zip(&self.inputs) {
            input.recv_into(items);
        }
        let tick = *ctx.tick();
        let ending = match self.tick(&tick, ctx.inputs_ended()) {
            Ok(ending) => ending,
            Err(error) => {
                if let Some(pool) = &self.pool
                    && let Some(child) = &self.child
                {
                    // The tick failed before the child could answer: its slots come back now.
                    pool.reclaim(child.id());
                }
                return Err(self.fail(error));
            }
        };
        if ending.stream {
            ctx.end_of_stream();
        }
        if ending.pipeline {
            ctx.request_stop();
        }
        for (port, item) in self.returned.drain(..) {
            match (self.outputs.get(port), item) {
                (Some(OutPort::Video(output)), Item::Video(frame)) => output.write(frame),
                (Some(OutPort::Audio(output)), Item::Audio(buf)) => output.write(buf),
                _ => {
                    self.counters
                        .outputs_dropped
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.held.iter_mut().for_each(|h| *h = None);
        self.lent.iter_mut().for_each(|l| *l = None);
        let error = self.child.as_mut().and_then(Child::take_error);
        if let Some(message) = error {
            let pid = self.child.as_ref().map_or(0, Child::pid);
            return Err(self.fail(format_args!(
                "the handler failed in child pid {pid}: {message}"
            )));
        }
        Ok(())
    }

    fn on_stop(&mut self) -> Result<(), HandlerError> {
        if let Some(child) = self.child.take() {
            child.stop(self.options.stop_timeout);
        }
        self.clear();
        Ok(())
    }

    fn type_name(&self) -> &'static str {
        self.type_name
    }
}

// ---------------------------------------------------------------------------------------------
// The child's side.

/// The worker's entry point: when this process was started as a `@process` worker
/// ([`is_worker`]), builds the handler the parent names from `registry`, runs it tick by tick
/// until the parent stops it or goes away, and returns the exit code to exit with. Call it at
/// the very top of `main` (see the module docs).
pub fn run_worker(registry: &Registry) -> ExitCode {
    match worker_main(registry) {
        Ok(()) | Err(ProcessError::ParentGone) => ExitCode::SUCCESS,
        Err(error) => {
            #[allow(
                clippy::print_stderr,
                reason = "a worker's last word, on the stderr it shares with its parent"
            )]
            {
                eprintln!("streamlib @process worker: {error}");
            }
            ExitCode::from(3)
        }
    }
}

/// A handler built in the child, its ports wired to the proxy's frames.
struct Hosted {
    element: String,
    handler: Box<dyn StreamHandler>,
    live: Option<LiveHandle>,
    spec: HandlerSpec,
    /// Per handler input, what feeds it (`None`: not connected in the parent's graph).
    feeders: Vec<Option<OutPort>>,
    /// Per handler output, what collects it (`None`: not connected).
    collectors: Vec<Option<InPort>>,
    fps: Rational,
    clock: ClockSourceId,
}

fn host(
    registry: &Registry,
    handler: &str,
    properties: &[(String, String)],
) -> Result<Hosted, String> {
    let mut element = handler.to_owned();
    let mut fps = Rational::fps(30);
    let mut clock = ClockSourceId(0);
    let mut given = BTreeMap::new();
    let (mut inputs, mut outputs) = (None, None);
    for (name, value) in properties {
        match name.as_str() {
            ELEMENT_KEY => element.clone_from(value),
            INPUTS_KEY => inputs = Some(value.as_str()),
            OUTPUTS_KEY => outputs = Some(value.as_str()),
            FPS_KEY => {
                if let Some((num, den)) = value.split_once('/')
                    && let (Ok(num), Ok(den)) = (num.parse(), den.parse())
                {
                    fps = Rational { num, den };
                }
            }
            CLOCK_KEY => clock = ClockSourceId(value.parse().unwrap_or(0)),
            _ => {
                given.insert(name.clone(), value.clone());
            }
        }
    }
    let spec = registry
        .get(handler)
        .ok_or_else(|| format!("handler `{handler}` is not registered in the worker executable"))?;
    let desc = ElementDesc {
        name: element.clone(),
        handler: handler.to_owned(),
        properties: given,
        dispatcher: None,
    };
    let props = validate_properties(&desc, spec).map_err(|e| e.to_string())?;
    let built = (spec.factory)(&props).map_err(|e| format!("{element} ({handler}): {e}"))?;
    let ports = built.handler.ports();
    let video = std::any::TypeId::of::<VideoFrame>();
    let audio = std::any::TypeId::of::<AudioBuffer>();
    let mut feeders = Vec::new();
    // The parent names what its graph connected; an older parent that does not: all.
    let listed =
        |list: Option<&str>, name: &str| list.is_none_or(|l| l.split(',').any(|n| n == name));
    for input in ports.inputs() {
        if !listed(inputs, input.name()) {
            feeders.push(None);
            continue;
        }
        let name = input.name().to_owned();
        let failed = |e: &dyn std::fmt::Display| format!("input `{}`: {e}", input.name());
        let feeder = if input.message_type() == video {
            OutPort::Video(
                OutputPort::<VideoFrame>::with_slots(name, MemoryCaps::CPU, FEEDER_SLOTS)
                    .map_err(|e| failed(&e))?,
            )
        } else if input.message_type() == audio {
            OutPort::Audio(OutputPort::<AudioBuffer>::new(name, MemoryCaps::CPU))
        } else {
            return Err(failed(&"neither a video nor an audio port"));
        };
        let erased = match &feeder {
            OutPort::Video(p) => p.handle().erased(),
            OutPort::Audio(p) => p.handle().erased(),
        };
        erased.connect_to(&**input).map_err(|e| failed(&e))?;
        erased.set_negotiated(MemorySpace::Cpu);
        input.set_negotiated(MemorySpace::Cpu);
        erased.freeze();
        feeders.push(Some(feeder));
    }
    let mut collectors = Vec::new();
    for output in ports.outputs() {
        if !listed(outputs, output.name()) {
            collectors.push(None);
            continue;
        }
        let name = output.name().to_owned();
        let ordered = DeliveryMode::Ordered { capacity: 8 };
        let (collector, erased) = if output.message_type() == video {
            let port = InputPort::<VideoFrame>::new(name, MemoryCaps::CPU)
                .with_delivery(ordered)
                .optional();
            let erased = port.handle().erased();
            (InPort::Video(port), erased)
        } else if output.message_type() == audio {
            let port = InputPort::<AudioBuffer>::new(name, MemoryCaps::CPU)
                .with_delivery(ordered)
                .optional();
            let erased = port.handle().erased();
            (InPort::Audio(port), erased)
        } else {
            return Err(format!(
                "output `{}`: neither a video nor an audio port",
                output.name()
            ));
        };
        output
            .connect_to(&*erased)
            .map_err(|e| format!("output `{}`: {e}", output.name()))?;
        output.set_negotiated(MemorySpace::Cpu);
        erased.set_negotiated(MemorySpace::Cpu);
        output.freeze();
        collectors.push(Some(collector));
    }
    Ok(Hosted {
        element,
        handler: built.handler,
        live: built.live,
        spec: spec.clone(),
        feeders,
        collectors,
        fps,
        clock,
    })
}

/// The child's side of the shared slots: one claim-only pool over the whole mapping (so a slot
/// is never wrapped twice, nor written while an earlier buffer of it is read), private
/// buffers for the rare input whose slot is still held here, and the counters the parent
/// adds to the element's report.
struct ChildSlots {
    shared: BufferPool<u8>,
    /// Private buffers by length, for inputs copied out of a slot still held here.
    copies: Vec<BufferPool<u8>>,
    /// Slots already answered this tick: a second output of the same input slot (a tee)
    /// is copied, since a slot can go back to the parent once.
    answered: Vec<u32>,
    /// Private buffers for audio read out of slots, by length.
    audio_pools: Vec<BufferPool<f32>>,
    /// This tick's audio inputs and the slots they came in, to find a pass-through.
    audio_in: Vec<(AudioBuffer, AudioSlot)>,
    stats: ChildStats,
    /// `stats` as last sent.
    sent: ChildStats,
}

impl ChildSlots {
    fn new(worker: &Worker, inputs: usize, outputs: usize) -> Result<Self, ProcessError> {
        // SAFETY: the only pool over this worker's mapping, kept for the worker's life; the
        // worker writes slots only through its claims (never `Worker::frame_mut`) and reads
        // them through its buffers or `Worker::frame`, which only shares.
        let shared = unsafe { BufferPool::with_claimed_storage("process-slots", worker.storage()) }
            .map_err(|e| ProcessError::NotAWorker(e.to_string()))?;
        Ok(Self {
            shared,
            copies: Vec::with_capacity(4),
            answered: Vec::with_capacity(outputs + 1),
            audio_pools: Vec::with_capacity(4),
            audio_in: Vec::with_capacity(inputs * AUDIO_PER_TICK + 1),
            stats: ChildStats::default(),
            sent: ChildStats::default(),
        })
    }

    /// Input `input` as a buffer: its slot itself, or a private copy when a buffer of that
    /// slot from an earlier tick is still alive here (a ring or the handler kept it).
    fn input(&mut self, worker: &Worker, input: &FrameSlot) -> Result<PooledBuf<u8>, String> {
        let len = input.len as usize;
        if let Some(buf) = self.shared.claim(input.slot as usize, len) {
            return Ok(buf.freeze());
        }
        let bytes = worker.frame(input).map_err(|e| e.to_string())?;
        let copy = match self.copies.iter().find(|p| p.buffer_len() == len) {
            Some(pool) => pool.acquire().ok(),
            None => {
                let pool =
                    BufferPool::new("process-copies", len, 1, 4).map_err(|e| e.to_string())?;
                if self.copies.len() == self.copies.capacity() {
                    self.copies.remove(0);
                }
                let buf = pool.acquire().ok();
                self.copies.push(pool);
                buf
            }
        };
        let buf = match copy {
            Some(mut buf) => {
                buf.copy_from_slice(bytes);
                buf.freeze()
            }
            // All four private buffers of this length are held too: a one-off.
            None => PooledBuf::from_vec(bytes.to_vec()),
        };
        self.stats.frames_copied += 1;
        self.stats.bytes_copied += len as u64;
        Ok(buf)
    }

    /// Sends `answer` (an output whose slot and generation are still to be filled) in the
    /// slot lent for output `port`, after `fill` wrote its `answer.len()` bytes there. The
    /// output is dropped and counted when no slot was lent for it this tick, or when the
    /// lent slot is still held here (an earlier buffer of it is read) and cannot be written.
    fn send_in_lent(
        &mut self,
        worker: &mut Worker,
        lends: &mut [Option<Crossing>],
        port: usize,
        answer: Crossing,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), ProcessError> {
        let Some(lend) = lends.get_mut(port).and_then(Option::take) else {
            // More outputs this tick than lent slots: the extra ones are dropped.
            self.stats.outputs_dropped += 1;
            return Ok(());
        };
        let answer = answer.in_slot(lend.slot(), lend.generation());
        if let Err(e) = worker.check(&answer) {
            return worker.send_error(&format!("output on port {port}: {e}"));
        }
        let Some(mut dst) = self
            .shared
            .claim(answer.slot() as usize, answer.len() as usize)
        else {
            self.stats.outputs_dropped += 1;
            return Ok(());
        };
        fill(&mut dst);
        drop(dst);
        worker.send(&answer.message())
    }

    /// Audio input `audio` read out of its slot into a buffer of the child's own (audio is
    /// small: a copy costs less than tracking who still reads the slot), remembered for this
    /// tick so a pass-through goes back as the slot.
    fn audio_input(&mut self, worker: &Worker, audio: &AudioSlot) -> Result<AudioBuffer, String> {
        let bytes = worker
            .bytes(&Crossing::Audio(*audio))
            .map_err(|e| e.to_string())?;
        if bytes.len() % 4 != 0 {
            return Err(format!(
                "{} bytes of audio is not whole f32 samples",
                bytes.len()
            ));
        }
        let samples = bytes.len() / 4;
        let pool = match self
            .audio_pools
            .iter()
            .position(|p| p.buffer_len() == samples)
        {
            Some(index) => &self.audio_pools[index],
            None => {
                let pool =
                    BufferPool::new("process-audio", samples, 2, 8).map_err(|e| e.to_string())?;
                if self.audio_pools.len() == self.audio_pools.capacity() {
                    self.audio_pools.remove(0);
                }
                self.audio_pools.push(pool);
                &self.audio_pools[self.audio_pools.len() - 1]
            }
        };
        let mut buf = pool.acquire().map_err(|e| e.to_string())?;
        for (dst, src) in buf.iter_mut().zip(bytes.chunks_exact(4)) {
            *dst = f32::from_le_bytes([src[0], src[1], src[2], src[3]]);
        }
        let buf = AudioBuffer::new(
            buf.freeze(),
            audio.channels,
            audio.sample_rate,
            audio.timestamp_ns,
        )
        .map_err(|e| e.to_string())?;
        if self.audio_in.len() < self.audio_in.capacity() {
            self.audio_in.push((buf.clone(), *audio));
        }
        Ok(buf)
    }
}

fn worker_main(registry: &Registry) -> Result<(), ProcessError> {
    let (mut worker, startup) = Worker::connect()?;
    let mut hosted = match host(registry, &startup.handler, &startup.properties) {
        Ok(hosted) => hosted,
        Err(message) => {
            worker.send_error(&message)?;
            return Err(ProcessError::NotAWorker(message));
        }
    };
    let clock = ClockInfo {
        name: "the parent's clock".to_owned(),
        id: hosted.clock,
        fps: hosted.fps,
        timescale: Timescale::Media,
        pacing: Pacing::Realtime,
    };
    if let Err(e) = hosted
        .handler
        .on_start(&StartContext::new(&hosted.element, &clock))
    {
        let message = format!("on_start failed: {e}");
        worker.send_error(&message)?;
        return Err(ProcessError::NotAWorker(message));
    }
    worker.ready()?;
    let mut slots = ChildSlots::new(&worker, hosted.feeders.len(), hosted.collectors.len())?;
    let mut inputs_ended = false;
    let mut inputs: Vec<Crossing> = Vec::with_capacity(hosted.feeders.len() * AUDIO_PER_TICK + 1);
    let mut lends: Vec<Option<Crossing>> = vec![None; hosted.collectors.len()];
    let mut tick = TimedTick {
        timestamp: 0,
        frame_number: 0,
        clock_source_id: hosted.clock,
        fps: hosted.fps,
    };
    loop {
        let mut property = None;
        match worker.receive()? {
            Message::Tick {
                frame,
                timestamp_ns,
            } => {
                tick.frame_number = frame;
                tick.timestamp = timestamp_ns;
                inputs_ended = false;
                inputs.clear();
                lends.iter_mut().for_each(|l| *l = None);
            }
            message @ (Message::Frame(_) | Message::Audio(_)) => {
                let slot = match message {
                    Message::Frame(frame) => Crossing::Video(frame),
                    Message::Audio(audio) => Crossing::Audio(audio),
                    _ => continue,
                };
                if slot.port() & LEND_PORT != 0 {
                    if let Some(lend) = lends.get_mut(usize::from(slot.port() & !LEND_PORT)) {
                        *lend = Some(slot);
                    }
                } else if inputs.len() < inputs.capacity() {
                    inputs.push(slot);
                }
            }
            Message::SetProperty { name, value } => {
                property = Some((name.to_owned(), value.to_owned()));
            }
            Message::InputsEnded => inputs_ended = true,
            Message::TickEnd { frame } => {
                let started = Instant::now();
                run_tick(
                    &mut worker,
                    &mut hosted,
                    &mut slots,
                    &inputs,
                    &mut lends,
                    &tick,
                    inputs_ended,
                )?;
                let process_ns = started.elapsed().as_nanos() as u64;
                let stats = &mut slots.stats;
                stats.processed += 1;
                stats.max_process_ns = stats.max_process_ns.max(process_ns);
                let copied = (stats.bytes_copied, stats.outputs_dropped);
                if copied != (slots.sent.bytes_copied, slots.sent.outputs_dropped) {
                    // Only when a copy or a drop happened: the parent adds them to the report.
                    worker.send(&Message::Stats(*stats))?;
                    slots.sent = *stats;
                }
                worker.send(&Message::Done { frame, process_ns })?;
            }
            Message::Stop => {
                let _ = hosted.handler.on_stop();
                return Ok(());
            }
            _ => {}
        }
        if let Some((name, value)) = property
            && let Err(message) = apply_property(&hosted, &name, &value)
        {
            worker.send_error(&message)?;
        }
    }
}

/// Queues a live change the parent forwarded; one the child cannot take (the parent checked
/// it, so a build mismatch) is reported as the handler's error.
fn apply_property(hosted: &Hosted, name: &str, value: &str) -> Result<(), String> {
    let refused = || format!("live change {name}={value} refused in the child");
    let (Some(live), Some(prop)) = (&hosted.live, hosted.spec.property(name)) else {
        return Err(refused());
    };
    let value = prop.ty.parse(value).map_err(|_| refused())?;
    live.push(name, value);
    Ok(())
}

fn run_tick(
    worker: &mut Worker,
    hosted: &mut Hosted,
    slots: &mut ChildSlots,
    inputs: &[Crossing],
    lends: &mut [Option<Crossing>],
    tick: &TimedTick,
    inputs_ended: bool,
) -> Result<(), ProcessError> {
    slots.audio_in.clear();
    for input in inputs {
        let feeder = hosted
            .feeders
            .get(usize::from(input.port()))
            .and_then(Option::as_ref);
        let fed = worker
            .check(input)
            .map_err(|e| e.to_string())
            .and_then(|()| match (input, feeder) {
                (Crossing::Video(frame), Some(OutPort::Video(feeder))) => {
                    let layout = frame.layout().map_err(|e| e.to_string())?;
                    let buf = slots.input(worker, frame)?;
                    let frame = VideoFrame::cpu(layout, buf).map_err(|e| e.to_string())?;
                    feeder.write(frame.with_tick(tick));
                    Ok(())
                }
                (Crossing::Audio(audio), Some(OutPort::Audio(feeder))) => {
                    let buf = slots.audio_input(worker, audio)?;
                    feeder.write(buf);
                    Ok(())
                }
                (_, Some(_)) => Err("a frame of the wrong kind for its input".to_owned()),
                (_, None) => Err("a frame for an input the handler does not have".to_owned()),
            });
        if let Err(message) = fed {
            worker.send_error(&format!("input refused: {message}"))?;
        }
    }
    let mut ctx = ProcessContext::new(&hosted.element, *tick).with_inputs_ended(inputs_ended);
    if let Err(e) = hosted.handler.process(&mut ctx) {
        worker.send_error(&e.to_string())?;
    }
    if ctx.end_requested() || ctx.stop_requested() {
        worker.send(&Message::Ended {
            stream: ctx.end_requested(),
            pipeline: ctx.stop_requested(),
        })?;
    }
    slots.answered.clear();
    for (port, collector) in hosted.collectors.iter().enumerate() {
        let Some(collector) = collector else {
            continue;
        };
        match collector {
            InPort::Video(collector) => {
                while let Some(frame) = collector.recv() {
                    answer_frame(worker, slots, inputs, lends, port, &frame)?;
                }
            }
            InPort::Audio(collector) => {
                while let Some(buf) = collector.recv() {
                    answer_audio(worker, slots, lends, port, &buf)?;
                }
            }
        }
    }
    Ok(())
}

/// Sends output `port`'s frame back: as its input slot when it is one (the first time this
/// tick), else copied into the slot lent for the port.
fn answer_frame(
    worker: &mut Worker,
    slots: &mut ChildSlots,
    inputs: &[Crossing],
    lends: &mut [Option<Crossing>],
    port: usize,
    frame: &VideoFrame,
) -> Result<(), ProcessError> {
    let layout = frame.layout();
    let Some(bytes) = frame.cpu_bytes() else {
        return worker.send_error("the handler wrote a GPU frame, which cannot cross back");
    };
    let mut answer = FrameSlot {
        port: port as u16,
        slot: 0,
        generation: 0,
        len: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
        width: layout.width(),
        height: layout.height(),
        format: layout.format(),
        stride: layout.stride(),
    };
    if let Some(slot) = worker.slot_of(bytes.as_ptr())
        && !slots.answered.contains(&slot)
        && let Some(input) = inputs
            .iter()
            .find(|i| matches!(i, Crossing::Video(_)) && i.slot() == slot)
    {
        // Its own input slot, the first time this tick: send it back as it is.
        answer.slot = slot;
        answer.generation = input.generation();
        slots.answered.push(slot);
        return worker.send(&Message::Frame(answer));
    }
    slots.send_in_lent(worker, lends, port, Crossing::Video(answer), |dst| {
        dst.copy_from_slice(bytes);
    })
}

/// Sends output `port`'s audio back: as the input slot it was read from when the handler
/// passed an input buffer on unchanged, else its samples written into the slot lent for
/// the port.
fn answer_audio(
    worker: &mut Worker,
    slots: &mut ChildSlots,
    lends: &mut [Option<Crossing>],
    port: usize,
    buf: &AudioBuffer,
) -> Result<(), ProcessError> {
    let samples = buf.samples();
    let mut answer = AudioSlot {
        port: port as u16,
        slot: 0,
        generation: 0,
        len: u32::try_from(size_of_val(samples)).unwrap_or(u32::MAX),
        channels: buf.channels(),
        sample_rate: buf.sample_rate(),
        timestamp_ns: buf.timestamp_ns(),
    };
    if let Some(index) = slots
        .audio_in
        .iter()
        .position(|(input, _)| input.samples().as_ptr() == samples.as_ptr())
    {
        // An input buffer passed on: the parent sends its original on.
        let (_, from) = slots.audio_in.swap_remove(index);
        answer.slot = from.slot;
        answer.generation = from.generation;
        return worker.send(&Message::Audio(answer));
    }
    slots.send_in_lent(worker, lends, port, Crossing::Audio(answer), |dst| {
        for (dst, sample) in dst.chunks_exact_mut(4).zip(samples) {
            dst.copy_from_slice(&sample.to_le_bytes());
        }
    })
}
