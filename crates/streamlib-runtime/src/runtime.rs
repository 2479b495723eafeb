//! [`StreamRuntime`]: the public face of a pipeline. Building and wiring are in `wiring.rs`,
//! negotiation in `negotiate.rs`; once started, the graph runs in `running/` (scheduling and
//! supervision), driven by the clock thread in `drive.rs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use streamlib_clock::{Clock, ClockInfo};
use streamlib_dispatch::{Dispatcher, ThreadPoolDispatcher};
use streamlib_ports::PortId;

use crate::drive::drive;
use crate::handle::{Control, RuntimeHandle, ctrl_c_flag};
use crate::running::RunningGraph;
use crate::wiring::{Added, Connection, Link};
use crate::{ConverterRegistry, RuntimeError, RuntimeStats, TransferRegistry};

enum Phase {
    Building,
    Running {
        shared: Arc<RunningGraph>,
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
    pub(crate) port_owner: HashMap<PortId, usize>,
    pub(crate) links: Vec<Link>,
    pub(crate) connections: Vec<Connection>,
    pub(crate) transfers: TransferRegistry,
    pub(crate) converters: ConverterRegistry,
    pub(crate) auto_transfer: bool,
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
            control: Arc::new(Control::new()),
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
        let specs = self.take_node_specs(&order, &default);
        clock.start().map_err(|source| RuntimeError::Clock {
            clock: self.clock_info.name.clone(),
            source,
        })?;
        let control = Arc::clone(&self.control);
        let stopper = Arc::clone(&self.control);
        let shared = RunningGraph::new(
            specs,
            self.clock_info.clone(),
            Box::new(move || control.notify()),
            Box::new(move || stopper.request_stop()),
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
            shared.shutdown();
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
        self.control.set_graph(Some(Arc::clone(&shared)));
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
            Phase::Running { shared, .. } => shared.is_finished(),
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
                shared.request_stop();
                if let Some(driver) = driver.take()
                    && driver.join().is_err()
                {
                    tracing::error!("the clock thread panicked");
                }
                shared.shutdown();
                for dispatcher in &owned {
                    dispatcher.shutdown();
                }
                let stats = shared.stats(&self.clock_info.name);
                self.control.set_graph(None);
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
        let mut guard = control
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            let finished = guard.as_ref().is_none_or(|s| s.is_finished());
            // Relaxed: see `ctrl_c_flag`.
            let ctrl_c = interrupted.is_some_and(|f| f.swap(false, Ordering::Relaxed));
            if ctrl_c {
                tracing::info!("Ctrl-C: stopping");
            }
            if finished || ctrl_c || control.stop_requested() {
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
