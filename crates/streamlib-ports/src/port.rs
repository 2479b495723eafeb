//! Typed input and output ports, their handles, and the type-erased view the runtime uses.

use std::any::{Any, TypeId, type_name};
use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use streamlib_buffers::{LatestBuffer, LatestReader, OrderedQueue, OverflowPolicy};

use crate::caps::CapsState;
use crate::{Caps, Follow, MemoryCaps, MemorySpace, Message, PortError, PortKind, VideoInfo};

/// A port's identity, unique in the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(u64);

impl PortId {
    fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        PortId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// How an input receives items.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveryMode {
    /// The newest item only; older ones are dropped (counted) when the reader is slow.
    Latest,
    /// Every item in order, up to `capacity` waiting; overflow discards the oldest, counted.
    Ordered {
        /// Items that may wait.
        capacity: usize,
    },
}

impl fmt::Display for DeliveryMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeliveryMode::Latest => f.write_str("latest"),
            DeliveryMode::Ordered { capacity } => write!(f, "ordered({capacity})"),
        }
    }
}

fn load_space(cell: &AtomicU8) -> Option<MemorySpace> {
    MemorySpace::from_u8(cell.load(Ordering::Acquire))
}

struct OutputCore<T> {
    id: PortId,
    name: Cow<'static, str>,
    caps: MemoryCaps,
    negotiated: AtomicU8,
    latest: LatestBuffer<T>,
    /// Ordered subscribers while wiring; moved to `ordered` when the runtime starts so the
    /// write path takes no lock.
    ordered_setup: Mutex<Vec<Arc<OrderedQueue<T>>>>,
    ordered: OnceLock<Box<[Arc<OrderedQueue<T>>]>>,
    ended: Arc<AtomicBool>,
    connections: AtomicU64,
    /// Inputs reading in latest mode; the ring is skipped when there are none.
    latest_readers: AtomicU64,
    written: AtomicU64,
    /// Items the connected inputs can hold at once (see [`OutputPort::frames_held_downstream`]).
    held_downstream: AtomicU64,
    /// Outputs that connected inputs pass this output's items on to unchanged
    /// ([`InputPort::forwards_to`]): what their readers hold is held here too.
    forwarded: Mutex<Vec<Arc<dyn AnyOutputPort>>>,
    /// What the producer's pool did (see [`crate::PoolCounters`]).
    pool: crate::pool_output::PoolCells,
    /// Format caps: template, follow rule, negotiated (read at build and start only).
    format: Mutex<CapsState>,
}

fn lock_caps(cell: &Mutex<CapsState>) -> std::sync::MutexGuard<'_, CapsState> {
    cell.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Forwarding chains longer than this are not followed (a graph with a cycle would recurse).
const MAX_FORWARD_DEPTH: usize = 64;

impl<T: Message> OutputCore<T> {
    /// [`OutputPort::frames_held_downstream`], `depth` forwarding hops down.
    fn held(&self, depth: usize) -> usize {
        let own = self.held_downstream.load(Ordering::Relaxed) as usize;
        if depth >= MAX_FORWARD_DEPTH {
            return own;
        }
        let forwarded = self
            .forwarded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        own + forwarded
            .iter()
            .map(|out| out.frames_held_downstream_at(depth + 1))
            .sum::<usize>()
    }

    fn write(&self, item: T) {
        // One writer per output: a plain load and store count it.
        self.written
            .store(self.written.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        match self.ordered.get() {
            Some(queues) => queues.iter().for_each(|q| {
                q.push(item.clone());
            }),
            None => {
                let queues = self
                    .ordered_setup
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                queues.iter().for_each(|q| {
                    q.push(item.clone());
                });
            }
        }
        if self.latest_readers.load(Ordering::Relaxed) > 0 {
            self.latest.write(item);
        }
    }
}

/// An output port, owned by the handler that writes it.
pub struct OutputPort<T: Message> {
    core: Arc<OutputCore<T>>,
}

impl<T: Message> OutputPort<T> {
    /// An output named `name` offering `caps`.
    pub fn new(name: impl Into<Cow<'static, str>>, caps: MemoryCaps) -> Self {
        Self::build(name.into(), caps, LatestBuffer::new())
    }

    /// An output backed by a ring of `slots` slots instead of the default 3.
    pub fn with_slots(
        name: impl Into<Cow<'static, str>>,
        caps: MemoryCaps,
        slots: usize,
    ) -> Result<Self, PortError> {
        let name = name.into();
        let ring = LatestBuffer::with_slots(slots).map_err(|source| PortError::Buffer {
            port: name.to_string(),
            source,
        })?;
        Ok(Self::build(name, caps, ring))
    }

    fn build(name: Cow<'static, str>, caps: MemoryCaps, latest: LatestBuffer<T>) -> Self {
        Self {
            core: Arc::new(OutputCore {
                id: PortId::next(),
                name,
                caps,
                negotiated: AtomicU8::new(0),
                latest,
                ordered_setup: Mutex::new(Vec::new()),
                ordered: OnceLock::new(),
                ended: Arc::new(AtomicBool::new(false)),
                connections: AtomicU64::new(0),
                latest_readers: AtomicU64::new(0),
                written: AtomicU64::new(0),
                held_downstream: AtomicU64::new(0),
                forwarded: Mutex::new(Vec::new()),
                pool: crate::pool_output::PoolCells::default(),
                format: Mutex::new(CapsState::default()),
            }),
        }
    }

    /// The same output declaring the format caps it produces (see [`Caps`]): fixed caps for
    /// a source, a template for a transform (with [`follows`](Self::follows)).
    pub fn with_format(self, caps: Caps) -> Self {
        self.set_format(caps);
        self
    }

    /// Declares the format caps it produces (before the runtime negotiates).
    pub fn set_format(&self, caps: Caps) {
        lock_caps(&self.core.format).template = caps;
    }

    /// Declares that the fields `follow` names of what this output produces are those
    /// negotiated on `input` (blur: all of them; a format converter: size and rate).
    pub fn follows<U: Message>(&self, input: &InputPort<U>, follow: Follow) {
        lock_caps(&self.core.format).follows = Some((input.core.id, follow));
    }

    /// The declared format caps.
    pub fn format(&self) -> Caps {
        lock_caps(&self.core.format).template.clone()
    }

    /// The caps negotiated on this output's links, once the runtime negotiated them.
    pub fn negotiated_format(&self) -> Option<Caps> {
        lock_caps(&self.core.format).negotiated.clone()
    }

    /// The negotiated video format, when format and size were fixed.
    pub fn negotiated_video(&self) -> Option<VideoInfo> {
        self.negotiated_format().and_then(|c| c.video_info())
    }

    /// Publishes `item` to every connected input: the ring for latest readers, each queue for
    /// ordered readers. Lock-free once the runtime has started.
    pub fn write(&self, item: T) {
        self.core.write(item);
    }

    /// A handle for wiring (`runtime.connect(out.handle(), …)`).
    pub fn handle(&self) -> OutputRef<T> {
        OutputRef {
            core: Arc::clone(&self.core),
        }
    }

    /// The port's name.
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// What the port can produce.
    pub fn caps(&self) -> MemoryCaps {
        self.core.caps
    }

    /// The memory space agreed with its inputs; `None` while unconnected.
    pub fn negotiated_memory(&self) -> Option<MemorySpace> {
        load_space(&self.core.negotiated)
    }

    /// Whether any input is connected (a handler may skip work for nobody).
    pub fn is_connected(&self) -> bool {
        self.core.connections.load(Ordering::Relaxed) > 0
    }

    /// Items written so far.
    pub fn written(&self) -> u64 {
        self.core.written.load(Ordering::Relaxed)
    }

    /// How many items the connected inputs can hold at once: the ring's slots when any input
    /// reads in latest mode, each ordered input's queue, what each input's handler declared
    /// it keeps beyond its queue ([`InputPort::holding`]), and, through inputs that pass items
    /// on unchanged ([`InputPort::forwards_to`]), what the outputs they forward to hold. Known
    /// once the whole graph is connected; a producer sizes its pool from it (see
    /// [`OutputPort::pool_capacity`]).
    pub fn frames_held_downstream(&self) -> usize {
        self.core.held(0)
    }

    pub(crate) fn pool_cells(&self) -> &crate::pool_output::PoolCells {
        &self.core.pool
    }
}

impl<T: Message> fmt::Debug for OutputPort<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutputPort")
            .field("name", &self.core.name)
            .field("type", &type_name::<T>())
            .field("caps", &self.core.caps)
            .finish()
    }
}

/// A typed handle to an output, for connecting. Wiring a video output to an audio input does
/// not compile.
pub struct OutputRef<T: Message> {
    core: Arc<OutputCore<T>>,
}

impl<T: Message> Clone for OutputRef<T> {
    fn clone(&self) -> Self {
        Self {
            core: Arc::clone(&self.core),
        }
    }
}

impl<T: Message> OutputRef<T> {
    /// The port's id.
    pub fn id(&self) -> PortId {
        self.core.id
    }

    /// The port's name.
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// The type-erased view.
    pub fn erased(&self) -> Arc<dyn AnyOutputPort> {
        Arc::clone(&self.core) as Arc<dyn AnyOutputPort>
    }
}

enum InputSource<T> {
    Latest(LatestReader<T>),
    Ordered(Arc<OrderedQueue<T>>),
}

struct Connection<T> {
    source: InputSource<T>,
    /// The upstream output's end-of-stream flag.
    upstream_ended: Arc<AtomicBool>,
}

struct InputCore<T> {
    id: PortId,
    name: Cow<'static, str>,
    caps: MemoryCaps,
    mode: DeliveryMode,
    required: bool,
    holds: usize,
    negotiated: AtomicU8,
    connection: OnceLock<Connection<T>>,
    /// The output this input's items are passed on to unchanged, if any.
    forward: OnceLock<Arc<dyn AnyOutputPort>>,
    /// Format caps: template and negotiated (read at build and start only).
    format: Mutex<CapsState>,
    /// Items the handler received and refused ([`InputPort::reject`]).
    rejected: AtomicU64,
}

/// An input port, owned by the handler that reads it.
pub struct InputPort<T: Message> {
    core: Arc<InputCore<T>>,
}

impl<T: Message> InputPort<T> {
    /// A required input named `name` accepting `caps`, delivering in the message type's
    /// default mode (latest for video, ordered for the rest).
    pub fn new(name: impl Into<Cow<'static, str>>, caps: MemoryCaps) -> Self {
        Self::build(name.into(), caps, T::DEFAULT_DELIVERY, true, 1)
    }

    fn build(
        name: Cow<'static, str>,
        caps: MemoryCaps,
        mode: DeliveryMode,
        required: bool,
        holds: usize,
    ) -> Self {
        Self {
            core: Arc::new(InputCore {
                id: PortId::next(),
                name,
                caps,
                mode,
                required,
                holds,
                negotiated: AtomicU8::new(0),
                connection: OnceLock::new(),
                forward: OnceLock::new(),
                format: Mutex::new(CapsState::default()),
                rejected: AtomicU64::new(0),
            }),
        }
    }

    fn rebuild(self, mode: DeliveryMode, required: bool, holds: usize) -> Self {
        let core = &self.core;
        let rebuilt = Self::build(core.name.clone(), core.caps, mode, required, holds);
        rebuilt.set_format(self.format());
        rebuilt
    }

    /// The same input declaring the format caps it accepts (see [`Caps`]).
    pub fn with_format(self, caps: Caps) -> Self {
        self.set_format(caps);
        self
    }

    /// Declares the format caps it accepts (before the runtime negotiates).
    pub fn set_format(&self, caps: Caps) {
        lock_caps(&self.core.format).template = caps;
    }

    /// The declared format caps.
    pub fn format(&self) -> Caps {
        lock_caps(&self.core.format).template.clone()
    }

    /// Counts one received item the handler could not use (a frame of a size it cannot
    /// follow): the runtime reports it, and `streamlib launch` warns and fails when a
    /// handler rejected everything it got. Nothing is rejected in silence.
    pub fn reject(&self) {
        self.core.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// Items rejected so far.
    pub fn rejected(&self) -> u64 {
        self.core.rejected.load(Ordering::Relaxed)
    }

    /// The caps negotiated on this input's link, once the runtime negotiated them: what
    /// every frame it receives looks like (until a renegotiation).
    pub fn negotiated_format(&self) -> Option<Caps> {
        lock_caps(&self.core.format).negotiated.clone()
    }

    /// The negotiated video format, when format and size were fixed.
    pub fn negotiated_video(&self) -> Option<VideoInfo> {
        self.negotiated_format().and_then(|c| c.video_info())
    }

    /// The same input with another delivery mode (call before handing out handles).
    pub fn with_delivery(self, mode: DeliveryMode) -> Self {
        let (required, holds) = (self.core.required, self.core.holds);
        self.rebuild(mode, required, holds)
    }

    /// The same input, but the runtime may start with it unconnected.
    pub fn optional(self) -> Self {
        let (mode, holds) = (self.core.mode, self.core.holds);
        self.rebuild(mode, false, holds)
    }

    /// The same input, declaring that its handler keeps up to `items` received items past
    /// its queue at once: the one it is processing, a last frame it reuses, the jobs of an
    /// encoder thread. Upstream producers size their pools from it when connected
    /// ([`OutputPort::frames_held_downstream`]). The default is 1, the item in hand.
    pub fn holding(self, items: usize) -> Self {
        let (mode, required) = (self.core.mode, self.core.required);
        self.rebuild(mode, required, items)
    }

    /// Declares that this input's handler may pass received items on through `output`
    /// unchanged (a conversion with nothing to convert): frames held downstream of `output`
    /// are then frames of this input's upstream pool, and upstream producers size their pools
    /// for them too ([`OutputPort::frames_held_downstream`]). Call it after the builder
    /// methods ([`holding`](Self::holding), [`optional`](Self::optional), …), which make a
    /// new port; a second call is ignored.
    pub fn forwards_to<U: Message>(&self, output: &OutputPort<U>) {
        let _ = self
            .core
            .forward
            .set(Arc::clone(&output.core) as Arc<dyn AnyOutputPort>);
    }

    /// The next item for this reader: in latest mode the newest unseen item (older unseen ones
    /// are dropped and counted), in ordered mode the oldest queued one.
    pub fn recv(&self) -> Option<T> {
        match &self.core.connection.get()?.source {
            InputSource::Latest(reader) => reader.read_new(),
            InputSource::Ordered(queue) => queue.pop(),
        }
    }

    /// The newest item even if already seen (latest mode); in ordered mode, same as
    /// [`recv`](Self::recv).
    pub fn latest(&self) -> Option<T> {
        match &self.core.connection.get()?.source {
            InputSource::Latest(reader) => reader.read_latest().map(|l| l.item),
            InputSource::Ordered(queue) => queue.pop(),
        }
    }

    /// Whether [`recv`](Self::recv) would return something.
    pub fn has_new(&self) -> bool {
        match self.core.connection.get().map(|c| &c.source) {
            Some(InputSource::Latest(reader)) => reader.has_new(),
            Some(InputSource::Ordered(queue)) => !queue.is_empty(),
            None => false,
        }
    }

    /// Whether the upstream output has ended its stream and nothing is left to read.
    pub fn upstream_ended(&self) -> bool {
        self.core.upstream_ended()
    }

    /// The port's name.
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// What the port accepts.
    pub fn caps(&self) -> MemoryCaps {
        self.core.caps
    }

    /// Delivery mode.
    pub fn delivery(&self) -> DeliveryMode {
        self.core.mode
    }

    /// The memory space agreed with the upstream output; `None` while unconnected. Flexible
    /// handlers pick their CPU or GPU path from it.
    pub fn negotiated_memory(&self) -> Option<MemorySpace> {
        load_space(&self.core.negotiated)
    }

    /// Whether an output is connected.
    pub fn is_connected(&self) -> bool {
        self.core.connection.get().is_some()
    }

    /// Items this input lost: skipped by latest-read, or discarded by a full ordered queue.
    pub fn dropped(&self) -> u64 {
        self.core.dropped()
    }

    /// Items this input delivered to its handler.
    pub fn received(&self) -> u64 {
        self.core.received()
    }

    /// A handle for wiring.
    pub fn handle(&self) -> InputRef<T> {
        InputRef {
            core: Arc::clone(&self.core),
        }
    }
}

impl<T: Message> fmt::Debug for InputPort<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InputPort")
            .field("name", &self.core.name)
            .field("type", &type_name::<T>())
            .field("caps", &self.core.caps)
            .field("mode", &self.core.mode)
            .finish()
    }
}

/// A typed handle to an input, for connecting.
pub struct InputRef<T: Message> {
    core: Arc<InputCore<T>>,
}

impl<T: Message> Clone for InputRef<T> {
    fn clone(&self) -> Self {
        Self {
            core: Arc::clone(&self.core),
        }
    }
}

impl<T: Message> InputRef<T> {
    /// The port's id.
    pub fn id(&self) -> PortId {
        self.core.id
    }

    /// The port's name.
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// The type-erased view.
    pub fn erased(&self) -> Arc<dyn AnyInputPort> {
        Arc::clone(&self.core) as Arc<dyn AnyInputPort>
    }
}

/// What the runtime needs of an output without knowing its message type.
pub trait AnyOutputPort: Send + Sync + 'static {
    /// Unique id.
    fn id(&self) -> PortId;
    /// Name.
    fn name(&self) -> &str;
    /// Kind of messages.
    fn kind(&self) -> PortKind;
    /// Message type, for exact matching.
    fn message_type(&self) -> TypeId;
    /// Message type name, for errors.
    fn message_type_name(&self) -> &'static str;
    /// Declared capabilities.
    fn caps(&self) -> MemoryCaps;
    /// Negotiated memory, once connected.
    fn negotiated(&self) -> Option<MemorySpace>;
    /// Records the negotiated memory.
    fn set_negotiated(&self, space: MemorySpace);
    /// Wires this output to `input` (same message type, input not yet connected).
    fn connect_to(&self, input: &dyn AnyInputPort) -> Result<(), PortError>;
    /// Fixes the wiring so writes take no lock. Called by the runtime at start.
    fn freeze(&self);
    /// Marks the stream as ended (or, after a restart, live again).
    fn set_ended(&self, ended: bool);
    /// Whether the stream has ended.
    fn is_ended(&self) -> bool;
    /// Items written.
    fn written(&self) -> u64;
    /// Inputs connected.
    fn connections(&self) -> u64;
    /// Items the connected inputs can hold at once ([`OutputPort::frames_held_downstream`]).
    fn frames_held_downstream(&self) -> usize {
        self.frames_held_downstream_at(0)
    }
    /// The same, asked `depth` forwarding hops down (bounds a cyclic graph's recursion).
    fn frames_held_downstream_at(&self, depth: usize) -> usize;
    /// What the producer's pool did for this output (zeros when it reports none).
    fn pool_counters(&self) -> crate::PoolCounters;
    /// Makes `provider` supply the producer's pool ([`OutputPort::set_pool_provider`]).
    fn set_pool_provider(&self, provider: Option<Arc<dyn crate::PoolProvider>>);
    /// Declared format caps ([`OutputPort::with_format`]).
    fn format_caps(&self) -> Caps;
    /// The input this output's caps follow, and which fields ([`OutputPort::follows`]).
    fn follows(&self) -> Option<(PortId, Follow)>;
    /// Declares a follow rule (the runtime marks the transfers it inserts as pass-through).
    fn set_follows(&self, input: PortId, follow: Follow);
    /// The negotiated caps, once negotiated.
    fn negotiated_format(&self) -> Option<Caps>;
    /// Records the negotiated caps.
    fn set_negotiated_format(&self, caps: Caps);
    /// For downcasting.
    fn as_any(&self) -> &dyn Any;
}

/// What the runtime needs of an input without knowing its message type.
pub trait AnyInputPort: Send + Sync + 'static {
    /// Unique id.
    fn id(&self) -> PortId;
    /// Name.
    fn name(&self) -> &str;
    /// Kind of messages.
    fn kind(&self) -> PortKind;
    /// Message type, for exact matching.
    fn message_type(&self) -> TypeId;
    /// Message type name, for errors.
    fn message_type_name(&self) -> &'static str;
    /// Declared capabilities.
    fn caps(&self) -> MemoryCaps;
    /// Negotiated memory, once connected.
    fn negotiated(&self) -> Option<MemorySpace>;
    /// Records the negotiated memory.
    fn set_negotiated(&self, space: MemorySpace);
    /// Delivery mode.
    fn delivery(&self) -> DeliveryMode;
    /// Whether the runtime refuses to start with it unconnected.
    fn is_required(&self) -> bool;
    /// Whether an output is connected.
    fn is_connected(&self) -> bool;
    /// Whether the upstream ended and nothing is left to read.
    fn upstream_ended(&self) -> bool;
    /// Items lost (latest-read skips or ordered overflow).
    fn dropped(&self) -> u64;
    /// Items delivered to the handler.
    fn received(&self) -> u64;
    /// Items the handler keeps past the queue at once ([`InputPort::holding`]).
    fn holds(&self) -> usize;
    /// Declared format caps ([`InputPort::with_format`]).
    fn format_caps(&self) -> Caps;
    /// The negotiated caps, once negotiated.
    fn negotiated_format(&self) -> Option<Caps>;
    /// Records the negotiated caps.
    fn set_negotiated_format(&self, caps: Caps);
    /// Items the handler rejected ([`InputPort::reject`]).
    fn rejected(&self) -> u64;
    /// For downcasting.
    fn as_any(&self) -> &dyn Any;
}

impl<T: Message> AnyOutputPort for OutputCore<T> {
    fn id(&self) -> PortId {
        self.id
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> PortKind {
        T::KIND
    }
    fn message_type(&self) -> TypeId {
        TypeId::of::<T>()
    }
    fn message_type_name(&self) -> &'static str {
        type_name::<T>()
    }
    fn caps(&self) -> MemoryCaps {
        self.caps
    }
    fn negotiated(&self) -> Option<MemorySpace> {
        load_space(&self.negotiated)
    }
    fn set_negotiated(&self, space: MemorySpace) {
        self.negotiated.store(space.to_u8(), Ordering::Release);
    }
    fn connect_to(&self, input: &dyn AnyInputPort) -> Result<(), PortError> {
        let mismatch = || PortError::TypeMismatch {
            output: self.name.to_string(),
            output_type: type_name::<T>(),
            input: input.name().to_owned(),
            input_type: input.message_type_name(),
        };
        let core = input
            .as_any()
            .downcast_ref::<InputCore<T>>()
            .ok_or_else(mismatch)?;
        if core.connection.get().is_some() {
            return Err(PortError::AlreadyConnected {
                input: core.name.to_string(),
            });
        }
        if self.ordered.get().is_some() {
            return Err(PortError::Frozen {
                output: self.name.to_string(),
            });
        }
        let source = match core.mode {
            DeliveryMode::Latest => InputSource::Latest(self.latest.reader()),
            DeliveryMode::Ordered { capacity } => {
                let queue =
                    OrderedQueue::new(capacity, OverflowPolicy::DropOldest).map_err(|source| {
                        PortError::Buffer {
                            port: core.name.to_string(),
                            source,
                        }
                    })?;
                InputSource::Ordered(Arc::new(queue))
            }
        };
        // What this reader adds to the frames held at once: its queue (the ring, for the
        // first latest reader; later ones share it) plus what its handler keeps.
        let queued = match core.mode {
            DeliveryMode::Ordered { capacity } => capacity,
            DeliveryMode::Latest if self.latest_readers.load(Ordering::Relaxed) == 0 => {
                self.latest.slots()
            }
            DeliveryMode::Latest => 0,
        };
        let queue = match &source {
            InputSource::Ordered(queue) => Some(Arc::clone(queue)),
            InputSource::Latest(_) => {
                self.latest_readers.fetch_add(1, Ordering::Relaxed);
                None
            }
        };
        core.connection
            .set(Connection {
                source,
                upstream_ended: Arc::clone(&self.ended),
            })
            .map_err(|_| PortError::AlreadyConnected {
                input: core.name.to_string(),
            })?;
        if let Some(queue) = queue {
            self.ordered_setup
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(queue);
        }
        self.connections.fetch_add(1, Ordering::Relaxed);
        self.held_downstream
            .fetch_add((queued + core.holds) as u64, Ordering::Relaxed);
        if let Some(forward) = core.forward.get() {
            self.forwarded
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(Arc::clone(forward));
        }
        Ok(())
    }
    fn freeze(&self) {
        let queues: Box<[_]> = self
            .ordered_setup
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        let _ = self.ordered.set(queues);
    }
    fn set_ended(&self, ended: bool) {
        self.ended.store(ended, Ordering::Release);
    }
    fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }
    fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }
    fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
    fn frames_held_downstream_at(&self, depth: usize) -> usize {
        self.held(depth)
    }
    fn pool_counters(&self) -> crate::PoolCounters {
        self.pool.snapshot()
    }
    fn set_pool_provider(&self, provider: Option<Arc<dyn crate::PoolProvider>>) {
        self.pool.set_provider(provider);
    }
    fn format_caps(&self) -> Caps {
        lock_caps(&self.format).template.clone()
    }
    fn follows(&self) -> Option<(PortId, Follow)> {
        lock_caps(&self.format).follows
    }
    fn set_follows(&self, input: PortId, follow: Follow) {
        lock_caps(&self.format).follows = Some((input, follow));
    }
    fn negotiated_format(&self) -> Option<Caps> {
        lock_caps(&self.format).negotiated.clone()
    }
    fn set_negotiated_format(&self, caps: Caps) {
        lock_caps(&self.format).negotiated = Some(caps);
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl<T: Message> InputCore<T> {
    fn upstream_ended(&self) -> bool {
        let Some(conn) = self.connection.get() else {
            return false;
        };
        if !conn.upstream_ended.load(Ordering::Acquire) {
            return false;
        }
        match &conn.source {
            InputSource::Latest(reader) => !reader.has_new(),
            InputSource::Ordered(queue) => queue.is_empty(),
        }
    }

    fn dropped(&self) -> u64 {
        match self.connection.get().map(|c| &c.source) {
            Some(InputSource::Latest(reader)) => reader.dropped(),
            Some(InputSource::Ordered(queue)) => queue.overflowed(),
            None => 0,
        }
    }

    fn received(&self) -> u64 {
        match self.connection.get().map(|c| &c.source) {
            Some(InputSource::Latest(reader)) => reader.read_count(),
            Some(InputSource::Ordered(queue)) => queue.popped(),
            None => 0,
        }
    }
}

impl<T: Message> AnyInputPort for InputCore<T> {
    fn id(&self) -> PortId {
        self.id
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> PortKind {
        T::KIND
    }
    fn message_type(&self) -> TypeId {
        TypeId::of::<T>()
    }
    fn message_type_name(&self) -> &'static str {
        type_name::<T>()
    }
    fn caps(&self) -> MemoryCaps {
        self.caps
    }
    fn negotiated(&self) -> Option<MemorySpace> {
        load_space(&self.negotiated)
    }
    fn set_negotiated(&self, space: MemorySpace) {
        self.negotiated.store(space.to_u8(), Ordering::Release);
    }
    fn delivery(&self) -> DeliveryMode {
        self.mode
    }
    fn is_required(&self) -> bool {
        self.required
    }
    fn is_connected(&self) -> bool {
        self.connection.get().is_some()
    }
    fn upstream_ended(&self) -> bool {
        InputCore::upstream_ended(self)
    }
    fn dropped(&self) -> u64 {
        InputCore::dropped(self)
    }
    fn received(&self) -> u64 {
        InputCore::received(self)
    }
    fn holds(&self) -> usize {
        self.holds
    }
    fn format_caps(&self) -> Caps {
        lock_caps(&self.format).template.clone()
    }
    fn negotiated_format(&self) -> Option<Caps> {
        lock_caps(&self.format).negotiated.clone()
    }
    fn set_negotiated_format(&self, caps: Caps) {
        lock_caps(&self.format).negotiated = Some(caps);
    }
    fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
