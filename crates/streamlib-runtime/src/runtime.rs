use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use streamlib_clock::{Clock, ClockInfo, Pacing, TickWait};
use streamlib_dispatch::{Dispatcher, ThreadPoolDispatcher};
use streamlib_ports::{
    AnyInputPort, AnyOutputPort, Caps, Follow, InputRef, MemorySpace, Message, OutputRef, PortId,
    Ports,
};

use crate::engine::{NodeSpec, Shared};
use crate::graph::topological_order;
use crate::{
    ConverterRegistry, RuntimeError, RuntimeStats, Stream, TransferHandler, TransferRegistry,
};

/// How long `stop` waits for a handler's `process` call in flight before giving up on it.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the driver returns from the clock to check for stop and due restarts.
const DRIVER_POLL: Duration = Duration::from_millis(20);

pub(crate) struct Added {
    pub(crate) stream: Stream,
    pub(crate) ports: Ports,
}

/// The input and output of an inserted transfer or converter.
pub(crate) type InsertedPorts = (Arc<dyn AnyInputPort>, Arc<dyn AnyOutputPort>);

/// One wire, recorded by `connect` and made when the runtime negotiates.
pub(crate) struct Link {
    pub(crate) output: Arc<dyn AnyOutputPort>,
    pub(crate) input: Arc<dyn AnyInputPort>,
    pub(crate) from: usize,
    pub(crate) to: usize,
    pub(crate) memory: MemorySpace,
}

/// What `connect` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// `stream.port` of the output.
    pub output: String,
    /// `stream.port` of the input.
    pub input: String,
    /// The memory space agreed (the input's side when a transfer was inserted).
    pub memory: MemorySpace,
    /// The id of a transfer stream inserted between them, if any.
    pub transfer: Option<String>,
    /// The format caps negotiated on the link (at the input), once negotiated
    /// ([`StreamRuntime::negotiate`]); `None` before.
    pub caps: Option<Caps>,
    /// Ids of the format converters negotiation inserted, in order.
    pub converters: Vec<String>,
}

/// Shared between the runtime, its handles and its threads.
struct Control {
    stop_requested: AtomicBool,
    lock: Mutex<Option<Arc<Shared>>>,
    cv: Condvar,
}

impl Control {
    fn notify(&self) {
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.cv.notify_all();
    }
}

/// A cheap, cloneable handle to a runtime: stop it or read its stats from another thread (a
/// control plane, a signal handler, a UI).
#[derive(Clone)]
pub struct RuntimeHandle {
    control: Arc<Control>,
    clock_name: String,
}

impl RuntimeHandle {
    /// Asks the runtime to stop; `run` returns soon after.
    pub fn stop(&self) {
        self.control.stop_requested.store(true, SeqCst);
        self.control.notify();
    }

    /// Current statistics, `None` before start.
    pub fn stats(&self) -> Option<RuntimeStats> {
        let shared = self
            .control
            .lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        shared.map(|s| s.stats(&self.clock_name))
    }

    /// Whether every sink has ended (end of stream reached everywhere).
    pub fn is_finished(&self) -> bool {
        self.control
            .lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|s| s.finished.load(SeqCst))
    }
}

enum Phase {
    Building,
    Running {
        shared: Arc<Shared>,
        driver: Option<JoinHandle<()>>,
        owned: Vec<Arc<dyn Dispatcher>>,
    },
    Stopped(RuntimeStats),
}

impl Phase {
    fn name(&self) -> &'static str {
        match self {
            Phase::Building => "not started",
            Phase::Running { .. } => "running",
            Phase::Stopped(_) => "stopped",
        }
    }
}

/// Owns a pipeline: streams, wiring, one clock, dispatchers; starts, supervises and stops it.
///
/// A runtime is built (`add_stream`, `connect`), started once, and stopped once; build a new
/// one to run again.
pub struct StreamRuntime {
    clock: Option<Box<dyn Clock>>,
    pub(crate) clock_info: ClockInfo,
    pub(crate) added: Vec<Added>,
    port_owner: HashMap<PortId, usize>,
    pub(crate) links: Vec<Link>,
    pub(crate) connections: Vec<Connection>,
    transfers: TransferRegistry,
    pub(crate) converters: ConverterRegistry,
    auto_transfer: bool,
    pub(crate) auto_convert: bool,
    pub(crate) negotiated: bool,
    /// A negotiation failed: ports and links may be half rewritten, so nothing more is
    /// negotiated, connected or started on this runtime.
    pub(crate) negotiation_failed: bool,
    default_dispatcher: Option<Arc<dyn Dispatcher>>,
    control: Arc<Control>,
    phase: Phase,
}

impl StreamRuntime {
    /// A runtime driven by `clock`.
    pub fn new(clock: impl Clock) -> Self {
        let clock_info = clock.info();
        Self {
            clock: Some(Box::new(clock)),
            clock_info,
            added: Vec::new(),
            port_owner: HashMap::new(),
            links: Vec::new(),
            connections: Vec::new(),
            transfers: TransferRegistry::new(),
            converters: ConverterRegistry::new(),
            auto_transfer: true,
            auto_convert: true,
            negotiated: false,
            negotiation_failed: false,
            default_dispatcher: None,
            control: Arc::new(Control {
                stop_requested: AtomicBool::new(false),
                lock: Mutex::new(None),
                cv: Condvar::new(),
            }),
            phase: Phase::Building,
        }
    }

    /// Whether `connect` may insert transfer handlers (default: yes, with a warning).
    pub fn set_auto_transfer(&mut self, enabled: bool) -> &mut Self {
        self.auto_transfer = enabled;
        self
    }

    /// Whether negotiation may insert format converters (default: yes, with a warning). Off,
    /// every link whose caps do not intersect is a build error naming both sides and the fix.
    pub fn set_auto_convert(&mut self, enabled: bool) -> &mut Self {
        self.auto_convert = enabled;
        self
    }

    /// The format converters negotiation may insert.
    pub fn converters_mut(&mut self) -> &mut ConverterRegistry {
        &mut self.converters
    }

    /// Replaces the clock before the runtime negotiates or starts: the caller learnt the
    /// rate from the sources' caps ([`source_rates`](Self::source_rates)).
    pub fn set_clock(&mut self, clock: impl Clock) -> Result<(), RuntimeError> {
        self.ensure_building("replace the clock")?;
        self.ensure_not_negotiated("replace the clock")?;
        self.clock_info = clock.info();
        self.clock = Some(Box::new(clock));
        Ok(())
    }

    /// The dispatcher for streams that name none (default: a thread pool with one worker per
    /// CPU, created at start and shut down at stop).
    pub fn set_default_dispatcher(&mut self, dispatcher: Arc<dyn Dispatcher>) -> &mut Self {
        self.default_dispatcher = Some(dispatcher);
        self
    }

    /// The transfer handlers `connect` may insert.
    pub fn transfers_mut(&mut self) -> &mut TransferRegistry {
        &mut self.transfers
    }

    /// The clock's description.
    pub fn clock_info(&self) -> &ClockInfo {
        &self.clock_info
    }

    /// A handle for stopping and reading stats from elsewhere.
    pub fn handle(&self) -> RuntimeHandle {
        RuntimeHandle {
            control: Arc::clone(&self.control),
            clock_name: self.clock_info.name.clone(),
        }
    }

    /// Connections made so far, transfers included.
    pub fn connections(&self) -> &[Connection] {
        &self.connections
    }

    /// Ids of the streams added so far (inserted transfers included), in insertion order.
    pub fn stream_ids(&self) -> Vec<&str> {
        self.added.iter().map(|a| a.stream.id.as_str()).collect()
    }

    /// Refuses what would change the graph once it was negotiated (or failed to be).
    pub(crate) fn ensure_not_negotiated(&self, action: &'static str) -> Result<(), RuntimeError> {
        if self.negotiated {
            return Err(RuntimeError::InvalidState {
                action,
                state: "negotiated",
            });
        }
        if self.negotiation_failed {
            return Err(RuntimeError::InvalidState {
                action,
                state: "after a failed negotiation (build a new runtime)",
            });
        }
        Ok(())
    }

    pub(crate) fn ensure_building(&self, action: &'static str) -> Result<(), RuntimeError> {
        match self.phase {
            Phase::Building => Ok(()),
            ref other => Err(RuntimeError::InvalidState {
                action,
                state: other.name(),
            }),
        }
    }

    /// Adds a stream. Its id must be unique and free of '.'.
    pub fn add_stream(&mut self, stream: Stream) -> Result<(), RuntimeError> {
        self.ensure_building("add a stream")?;
        self.ensure_not_negotiated("add a stream")?;
        if stream.id.is_empty() || stream.id.contains('.') {
            return Err(RuntimeError::InvalidStreamId { id: stream.id });
        }
        if self.added.iter().any(|a| a.stream.id == stream.id) {
            return Err(RuntimeError::DuplicateStream { id: stream.id });
        }
        let ports = stream.handler.ports();
        let index = self.added.len();
        for id in ports
            .inputs()
            .iter()
            .map(|p| p.id())
            .chain(ports.outputs().iter().map(|p| p.id()))
        {
            self.port_owner.insert(id, index);
        }
        self.added.push(Added { stream, ports });
        Ok(())
    }

    pub(crate) fn port_label(&self, owner: usize, port: &str) -> String {
        format!("{}.{}", self.added[owner].stream.id, port)
    }

    /// Connects two typed ports; a kind mismatch does not compile. Negotiates memory and
    /// inserts a transfer handler where the capabilities do not overlap.
    ///
    /// ```compile_fail
    /// # use streamlib_ports::*;
    /// # use streamlib_clock::{ManualClock, Rational};
    /// # let mut runtime = streamlib_runtime::StreamRuntime::new(ManualClock::new(Rational::fps(30)).0);
    /// let video = OutputPort::<VideoFrame>::new("video", MemoryCaps::CPU);
    /// let audio = InputPort::<AudioBuffer>::new("audio", MemoryCaps::CPU);
    /// runtime.connect(&video.handle(), &audio.handle()); // video into audio: a type error
    /// ```
    pub fn connect<T: Message>(
        &mut self,
        output: &OutputRef<T>,
        input: &InputRef<T>,
    ) -> Result<Connection, RuntimeError> {
        self.connect_ports(output.erased(), input.erased())
    }

    /// Connects ports named `stream.port`, e.g. `connect_by_name("pattern.video", "blur.video")`.
    pub fn connect_by_name(
        &mut self,
        output: &str,
        input: &str,
    ) -> Result<Connection, RuntimeError> {
        let out = self.find_port(output, true)?;
        let inp = self.find_port(input, false)?;
        match (out, inp) {
            (FoundPort::Output(o), FoundPort::Input(i)) => self.connect_ports(o, i),
            _ => Err(RuntimeError::MalformedPortName {
                name: format!("{output} -> {input}"),
            }),
        }
    }

    fn find_port(&self, name: &str, output: bool) -> Result<FoundPort, RuntimeError> {
        let (stream, port) = name
            .split_once('.')
            .filter(|(s, p)| !s.is_empty() && !p.is_empty())
            .ok_or_else(|| RuntimeError::MalformedPortName {
                name: name.to_owned(),
            })?;
        let added = self
            .added
            .iter()
            .find(|a| a.stream.id == stream)
            .ok_or_else(|| RuntimeError::UnknownStream {
                id: stream.to_owned(),
                available: list(self.added.iter().map(|a| a.stream.id.as_str())),
            })?;
        let missing = |names: Vec<&str>| RuntimeError::UnknownPortName {
            stream: stream.to_owned(),
            direction: if output { "output" } else { "input" },
            port: port.to_owned(),
            available: list(names.into_iter()),
        };
        if output {
            let outs = added.ports.outputs();
            outs.iter()
                .find(|p| p.name() == port)
                .map(|p| FoundPort::Output(Arc::clone(p)))
                .ok_or_else(|| missing(outs.iter().map(|p| p.name()).collect()))
        } else {
            let ins = added.ports.inputs();
            ins.iter()
                .find(|p| p.name() == port)
                .map(|p| FoundPort::Input(Arc::clone(p)))
                .ok_or_else(|| missing(ins.iter().map(|p| p.name()).collect()))
        }
    }

    /// Connects type-erased ports (what `connect` and `connect_by_name` use).
    pub fn connect_ports(
        &mut self,
        output: Arc<dyn AnyOutputPort>,
        input: Arc<dyn AnyInputPort>,
    ) -> Result<Connection, RuntimeError> {
        self.ensure_building("connect ports")?;
        self.ensure_not_negotiated("connect ports")?;
        let from = *self
            .port_owner
            .get(&output.id())
            .ok_or_else(|| RuntimeError::UnknownPort {
                port: output.name().to_owned(),
            })?;
        let to = *self
            .port_owner
            .get(&input.id())
            .ok_or_else(|| RuntimeError::UnknownPort {
                port: input.name().to_owned(),
            })?;
        let out_label = self.port_label(from, output.name());
        let in_label = self.port_label(to, input.name());
        if output.message_type() != input.message_type() {
            return Err(RuntimeError::KindMismatch {
                output: out_label,
                output_kind: output.kind(),
                output_type: output.message_type_name(),
                input: in_label,
                input_kind: input.kind(),
                input_type: input.message_type_name(),
            });
        }
        if input.is_connected() || self.links.iter().any(|l| l.input.id() == input.id()) {
            return Err(RuntimeError::Port {
                output: out_label,
                input: in_label.clone(),
                source: streamlib_ports::PortError::AlreadyConnected { input: in_label },
            });
        }
        let agreed = match output.negotiated() {
            Some(fixed) => input.caps().contains(fixed).then_some(fixed),
            None => output.caps().negotiate(&input.caps()),
        };
        if let Some(space) = agreed {
            // Wired when the runtime negotiates: a format converter may yet go between them.
            output.set_negotiated(space);
            input.set_negotiated(space);
            self.links.push(Link {
                output,
                input,
                from,
                to,
                memory: space,
            });
            let connection = Connection {
                output: out_label,
                input: in_label,
                memory: space,
                transfer: None,
                caps: None,
                converters: Vec::new(),
            };
            self.connections.push(connection.clone());
            return Ok(connection);
        }
        self.insert_transfer(output, input, out_label, in_label)
    }

    /// A free stream id for a handler named `name` inserted after `out_label`
    /// (`CpuToGpu-src-video`, then `-2`, `-3`, … on fan-out).
    pub(crate) fn inserted_id(&self, name: &str, out_label: &str) -> String {
        let base = format!("{name}-{}", out_label.replace('.', "-"));
        let mut id = base.clone();
        let mut n = 1;
        while self.added.iter().any(|a| a.stream.id == id) {
            n += 1;
            id = format!("{base}-{n}");
        }
        id
    }

    /// Adds an inserted transfer or converter as stream `id`; returns its two ports.
    pub(crate) fn add_inserted(
        &mut self,
        id: &str,
        inserted: TransferHandler,
    ) -> Result<InsertedPorts, RuntimeError> {
        let mut stream = Stream::boxed(id.to_owned(), inserted.handler);
        if let Some(d) = inserted.dispatcher {
            stream = stream.dispatcher(d);
        }
        self.add_stream(stream)?;
        Ok((inserted.input, inserted.output))
    }

    fn insert_transfer(
        &mut self,
        output: Arc<dyn AnyOutputPort>,
        input: Arc<dyn AnyInputPort>,
        out_label: String,
        in_label: String,
    ) -> Result<Connection, RuntimeError> {
        if !self.auto_transfer {
            return Err(RuntimeError::NoCommonMemory {
                output: out_label,
                output_caps: output.caps(),
                input: in_label,
                input_caps: input.caps(),
            });
        }
        let from_space = output.negotiated().unwrap_or(output.caps().preferred());
        let to_space = input.caps().preferred();
        let kind = output.kind();
        let Some((name, factory)) = self.transfers.find(kind, from_space, to_space) else {
            return Err(RuntimeError::NoTransfer {
                output: out_label,
                output_caps: output.caps(),
                input: in_label,
                input_caps: input.caps(),
                kind,
                from: from_space,
                to: to_space,
            });
        };
        let name = name.to_owned();
        let transfer = factory().map_err(|e| RuntimeError::TransferFailed {
            transfer: name.clone(),
            output: out_label.clone(),
            input: in_label.clone(),
            message: e.to_string(),
        })?;
        let id = self.inserted_id(&name, &out_label);
        tracing::warn!(
            "{out_label} {} and {in_label} {} share no memory space: inserting transfer '{id}' \
             ({from_space} -> {to_space}); every frame is copied across",
            output.caps(),
            input.caps()
        );
        let (t_in, t_out) = self.add_inserted(&id, transfer)?;
        // A transfer moves frames, not formats: what comes out is what went in.
        t_out.set_follows(t_in.id(), Follow::ALL);
        self.connect_ports(output, t_in)?;
        self.connect_ports(t_out, input)?;
        // The two halves through the transfer are one connection of the user's.
        let through = format!("{id}.");
        self.connections.retain(|c| {
            !(c.output == out_label && c.input.starts_with(&through)
                || c.output.starts_with(&through) && c.input == in_label)
        });
        let connection = Connection {
            output: out_label,
            input: in_label,
            memory: to_space,
            transfer: Some(id),
            caps: None,
            converters: Vec::new(),
        };
        self.connections.push(connection.clone());
        Ok(connection)
    }

    /// Checks the graph: at least one stream, every required input connected, no cycle.
    /// Returns the streams in topological order.
    pub fn validate(&self) -> Result<Vec<usize>, RuntimeError> {
        if self.added.is_empty() {
            return Err(RuntimeError::Empty);
        }
        let linked: std::collections::HashSet<PortId> =
            self.links.iter().map(|l| l.input.id()).collect();
        for added in &self.added {
            if let Some(port) = added
                .ports
                .inputs()
                .iter()
                .find(|p| p.is_required() && !p.is_connected() && !linked.contains(&p.id()))
            {
                return Err(RuntimeError::UnconnectedInput {
                    stream: added.stream.id.clone(),
                    port: port.name().to_owned(),
                });
            }
        }
        topological_order(self.added.len(), &self.edges()).map_err(|on_cycle| RuntimeError::Cycle {
            streams: list(on_cycle.iter().map(|&i| self.added[i].stream.id.as_str())),
        })
    }

    pub(crate) fn edges(&self) -> Vec<(usize, usize)> {
        self.links.iter().map(|l| (l.from, l.to)).collect()
    }

    /// Validates, negotiates (if [`negotiate`](Self::negotiate) was not called), calls every
    /// handler's `on_start`, and starts the clock.
    pub fn start(&mut self) -> Result<(), RuntimeError> {
        self.ensure_building("start")?;
        self.negotiate()?;
        let order = self.validate()?;
        let mut clock = self.clock.take().ok_or(RuntimeError::InvalidState {
            action: "start",
            state: "without a clock",
        })?;
        let mut owned: Vec<Arc<dyn Dispatcher>> = Vec::new();
        let default = match &self.default_dispatcher {
            Some(d) => Arc::clone(d),
            None => {
                let pool: Arc<dyn Dispatcher> = Arc::new(ThreadPoolDispatcher::new(0));
                owned.push(Arc::clone(&pool));
                pool
            }
        };
        let mut position = vec![0; self.added.len()];
        for (pos, &i) in order.iter().enumerate() {
            position[i] = pos;
        }
        let mut upstream = vec![Vec::new(); order.len()];
        let mut downstream = vec![Vec::new(); order.len()];
        for (from, to) in self.edges() {
            let (f, t) = (position[from], position[to]);
            if !downstream[f].contains(&t) {
                downstream[f].push(t);
                upstream[t].push(f);
            }
        }
        let mut slots: Vec<Option<Added>> = std::mem::take(&mut self.added)
            .into_iter()
            .map(Some)
            .collect();
        let mut specs = Vec::with_capacity(order.len());
        for (pos, &i) in order.iter().enumerate() {
            let Some(added) = slots[i].take() else {
                continue;
            };
            for output in added.ports.outputs() {
                output.freeze();
            }
            let stream = added.stream;
            specs.push(NodeSpec {
                id: stream.id,
                handler: stream.handler,
                inputs: added.ports.inputs().to_vec(),
                outputs: added.ports.outputs().to_vec(),
                upstream: std::mem::take(&mut upstream[pos]),
                downstream: std::mem::take(&mut downstream[pos]),
                dispatcher: stream.dispatcher.unwrap_or_else(|| Arc::clone(&default)),
                policy: stream.restart_policy,
                time_limit: stream.time_limit,
                concurrency_limit: stream.concurrency_limit,
            });
        }
        clock.start().map_err(|source| RuntimeError::Clock {
            clock: self.clock_info.name.clone(),
            source,
        })?;
        let control = Arc::clone(&self.control);
        let stopper = Arc::clone(&self.control);
        let shared = Shared::new(
            specs,
            self.clock_info.clone(),
            Box::new(move || control.notify()),
            Box::new(move || {
                stopper.stop_requested.store(true, SeqCst);
                stopper.notify();
            }),
        );
        if let Err((i, message)) = shared.start_handlers() {
            let node = &shared.nodes[i];
            let err = RuntimeError::StartFailed {
                stream: node.id.clone(),
                handler: node.type_name,
                message,
            };
            owned.iter().for_each(|d| d.shutdown());
            self.phase = Phase::Stopped(shared.stats(&self.clock_info.name));
            return Err(err);
        }
        if let Err((i, source)) = shared.attach() {
            let node = &shared.nodes[i];
            let err = RuntimeError::Dispatch {
                stream: node.id.clone(),
                dispatcher: node.dispatcher.kind(),
                source,
            };
            shared.shutdown(STOP_TIMEOUT);
            owned.iter().for_each(|d| d.shutdown());
            self.phase = Phase::Stopped(shared.stats(&self.clock_info.name));
            return Err(err);
        }
        let driver_shared = Arc::clone(&shared);
        let driver = std::thread::Builder::new()
            .name("streamlib-clock".to_owned())
            .spawn(move || drive(&driver_shared, clock))
            .map_err(|source| RuntimeError::Thread {
                what: "clock",
                source,
            })?;
        shared.set_driver(driver.thread().clone());
        *self
            .control
            .lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&shared));
        tracing::info!(clock = %self.clock_info.name, fps = %self.clock_info.fps, streams = shared.nodes.len(), "runtime started");
        self.phase = Phase::Running {
            shared,
            driver: Some(driver),
            owned,
        };
        Ok(())
    }

    /// Statistics now (running) or at stop.
    pub fn stats(&self) -> Option<RuntimeStats> {
        match &self.phase {
            Phase::Building => None,
            Phase::Running { shared, .. } => Some(shared.stats(&self.clock_info.name)),
            Phase::Stopped(stats) => Some(stats.clone()),
        }
    }

    /// Waits until `ticks` clock ticks have been issued and every live stream has processed
    /// them (or the pipeline finished). For tests with a manual clock. `false` on timeout.
    pub fn wait_for_ticks(&self, ticks: u64, timeout: Duration) -> bool {
        match &self.phase {
            Phase::Running { shared, .. } => shared.wait_for_ticks(ticks, timeout),
            _ => false,
        }
    }

    /// Whether every sink has ended.
    pub fn is_finished(&self) -> bool {
        match &self.phase {
            Phase::Running { shared, .. } => shared.finished.load(SeqCst),
            Phase::Stopped(_) => true,
            Phase::Building => false,
        }
    }

    /// Stops the clock, waits for `process` calls in flight, calls `on_stop` once per started
    /// handler, joins every thread the runtime owns, and returns the final statistics.
    pub fn stop(&mut self) -> Result<RuntimeStats, RuntimeError> {
        let phase = std::mem::replace(&mut self.phase, Phase::Building);
        match phase {
            Phase::Running {
                shared,
                mut driver,
                owned,
            } => {
                shared.stopping.store(true, SeqCst);
                if let Some(driver) = driver.take()
                    && driver.join().is_err()
                {
                    tracing::error!("the clock thread panicked");
                }
                shared.shutdown(STOP_TIMEOUT);
                for dispatcher in &owned {
                    dispatcher.shutdown();
                }
                let stats = shared.stats(&self.clock_info.name);
                *self
                    .control
                    .lock
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = None;
                tracing::info!("runtime stopped");
                tracing::debug!("final statistics\n{stats}");
                self.phase = Phase::Stopped(stats.clone());
                Ok(stats)
            }
            Phase::Stopped(stats) => {
                self.phase = Phase::Stopped(stats.clone());
                Ok(stats)
            }
            Phase::Building => Err(RuntimeError::InvalidState {
                action: "stop",
                state: "not started",
            }),
        }
    }

    /// Starts (if needed) and runs until [`RuntimeHandle::stop`], Ctrl-C (with the `ctrlc`
    /// feature), or end of stream on every sink; then stops and returns the statistics.
    pub fn run(&mut self) -> Result<RuntimeStats, RuntimeError> {
        if matches!(self.phase, Phase::Building) {
            self.start()?;
        }
        let interrupted = ctrl_c_flag();
        let control = Arc::clone(&self.control);
        let mut guard = control.lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let finished = guard.as_ref().is_none_or(|s| s.finished.load(SeqCst));
            let ctrl_c = interrupted.is_some_and(|f| f.swap(false, SeqCst));
            if ctrl_c {
                tracing::info!("Ctrl-C: stopping");
            }
            if finished || ctrl_c || control.stop_requested.load(SeqCst) {
                break;
            }
            guard = match control.cv.wait_timeout(guard, Duration::from_millis(50)) {
                Ok((g, _)) => g,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        drop(guard);
        self.stop()
    }
}

impl Drop for StreamRuntime {
    fn drop(&mut self) {
        if matches!(self.phase, Phase::Running { .. }) {
            let _ = self.stop();
        }
    }
}

impl std::fmt::Debug for StreamRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamRuntime")
            .field("clock", &self.clock_info.name)
            .field("phase", &self.phase.name())
            .field("connections", &self.connections)
            .finish()
    }
}

enum FoundPort {
    Output(Arc<dyn AnyOutputPort>),
    Input(Arc<dyn AnyInputPort>),
}

fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    if names.is_empty() {
        "(none)".to_owned()
    } else {
        names.join(", ")
    }
}

/// The clock thread: waits for ticks and schedules sources; with pipeline pacing, waits for
/// each tick to cross the graph before taking the next.
fn drive(shared: &Arc<Shared>, mut clock: Box<dyn Clock>) {
    let mut clock_ended = false;
    while !shared.stopping.load(SeqCst) {
        if clock_ended {
            std::thread::park_timeout(DRIVER_POLL);
            shared.schedule_all();
            continue;
        }
        match clock.wait_tick(DRIVER_POLL) {
            Ok(TickWait::Tick(tick)) => {
                let seq = shared.publish_tick(&tick);
                shared.clock_missed.store(clock.stats().missed, SeqCst);
                if shared.clock_info.pacing == Pacing::Pipeline {
                    shared.wait_wave(seq);
                }
            }
            Ok(TickWait::Timeout) => shared.schedule_all(),
            Ok(TickWait::Ended) => {
                tracing::info!(clock = %shared.clock_info.name, "clock ended: ending sources");
                clock_ended = true;
                shared.end_sources();
            }
            Err(error) => {
                tracing::error!(clock = %shared.clock_info.name, "clock error: {error}");
                std::thread::sleep(DRIVER_POLL);
            }
        }
    }
}

#[cfg(feature = "ctrlc")]
fn ctrl_c_flag() -> Option<&'static AtomicBool> {
    use std::sync::OnceLock;
    static FLAG: AtomicBool = AtomicBool::new(false);
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    let installed = *INSTALLED.get_or_init(|| match ctrlc::try_set_handler(|| FLAG.store(true, SeqCst)) {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!("could not install a Ctrl-C handler ({error}); stop the runtime through its handle");
            false
        }
    });
    installed.then_some(&FLAG)
}

#[cfg(not(feature = "ctrlc"))]
fn ctrl_c_flag() -> Option<&'static AtomicBool> {
    None
}
