//! The running graph: nodes, clock-driven scheduling, supervision.
//!
//! Each clock tick gets a sequence number. A node runs tick `s` once every non-terminal
//! upstream node has finished `s` (sources: once the clock issued it), so a frame produced on
//! tick N crosses the whole chain on tick N. A node that is still busy when newer ticks become
//! ready runs only the newest one when it frees up: ticks are skipped (counted), never queued.

use std::any::Any;
use std::cell::UnsafeCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::thread::Thread;
use std::time::{Duration, Instant};

use streamlib_clock::{ClockInfo, ClockSourceId, Pacing, Rational, TimedTick};
use streamlib_dispatch::{Activation, Dispatcher, WorkUnit};
use streamlib_ports::{AnyInputPort, AnyOutputPort, ProcessContext, StartContext, StreamHandler};

use crate::stats::{InputDrops, NodeCounters, StreamState, StreamStats, bump};
use crate::{RestartPolicy, RuntimeStats};

const TICK_RING: usize = 256;

const ST_RUNNING: u8 = 1;
const ST_RESTARTING: u8 = 2;
const ST_ENDED: u8 = 3;
const ST_FAILED: u8 = 4;
const ST_STOPPED: u8 = 5;

fn is_terminal(state: u8) -> bool {
    matches!(state, ST_ENDED | ST_FAILED | ST_STOPPED)
}

/// One stream of the running graph.
pub(crate) struct Node {
    pub(crate) id: String,
    pub(crate) type_name: &'static str,
    handler: UnsafeCell<Box<dyn StreamHandler>>,
    pub(crate) inputs: Vec<Arc<dyn AnyInputPort>>,
    pub(crate) outputs: Vec<Arc<dyn AnyOutputPort>>,
    pub(crate) upstream: Vec<usize>,
    pub(crate) downstream: Vec<usize>,
    pub(crate) dispatcher: Arc<dyn Dispatcher>,
    activation: OnceLock<Box<dyn Activation>>,
    policy: RestartPolicy,
    time_limit: Option<Duration>,
    concurrency_limit: usize,
    /// Held by whoever may touch `handler`: the run in flight, or start/stop.
    busy: AtomicBool,
    last_seq: AtomicU64,
    run_seq: AtomicU64,
    done_seq: AtomicU64,
    final_scheduled: AtomicBool,
    final_run: AtomicBool,
    state: AtomicU8,
    started: AtomicBool,
    needs_start: AtomicBool,
    restart_at_ns: AtomicU64,
    counters: NodeCounters,
}

impl Node {
    fn record_error(&self, message: &str) {
        *self
            .counters
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(message.to_owned());
    }

    /// Logs when the pools feeding its outputs ran dry: the first skip, then at powers of two,
    /// so a pool that stays dry does not flood the log.
    fn log_pool_skips(&self) {
        let skipped: u64 = self
            .outputs
            .iter()
            .map(|o| o.pool_counters().skipped_pool_empty)
            .sum();
        let logged = self.counters.skips_logged.load(Ordering::Relaxed);
        if skipped > logged && (logged == 0 || skipped >= 2 * logged) {
            self.counters.skips_logged.store(skipped, Ordering::Relaxed);
            let capacity: u64 = self
                .outputs
                .iter()
                .map(|o| o.pool_counters().capacity)
                .sum();
            let size = if capacity > 0 {
                format!("{capacity} buffers")
            } else {
                "size not reported".to_owned()
            };
            tracing::warn!(
                stream = %self.id,
                handler = self.type_name,
                "frame pool ran dry ({size}): {skipped} frames skipped so far; \
                 downstream holds frames longer than the graph declared"
            );
        }
    }
}

// SAFETY: `handler` (the only non-Sync field) is touched only by the thread that holds `busy`
// (set by a successful compare-exchange from false), which makes access exclusive; the
// handler itself is `Send`, so moving access between threads is sound.
unsafe impl Sync for Node {}

/// What the runtime hands the engine for each stream, in topological order.
pub(crate) struct NodeSpec {
    pub(crate) id: String,
    pub(crate) handler: Box<dyn StreamHandler>,
    pub(crate) inputs: Vec<Arc<dyn AnyInputPort>>,
    pub(crate) outputs: Vec<Arc<dyn AnyOutputPort>>,
    pub(crate) upstream: Vec<usize>,
    pub(crate) downstream: Vec<usize>,
    pub(crate) dispatcher: Arc<dyn Dispatcher>,
    pub(crate) policy: RestartPolicy,
    pub(crate) time_limit: Option<Duration>,
    pub(crate) concurrency_limit: usize,
}

struct TickCell {
    seq: AtomicU64,
    timestamp: AtomicU64,
    frame_number: AtomicU64,
    /// When the runtime issued the tick, ns since start (for tick-to-done latency).
    issued_ns: AtomicU64,
}

/// Everything the runtime's threads share.
pub(crate) struct Shared {
    pub(crate) nodes: Box<[Node]>,
    sinks: Vec<usize>,
    ticks: Box<[TickCell]>,
    pub(crate) clock_seq: AtomicU64,
    pub(crate) clock_info: ClockInfo,
    fps: Rational,
    clock_source: ClockSourceId,
    pacing: Pacing,
    pub(crate) stopping: AtomicBool,
    pub(crate) finished: AtomicBool,
    driver: OnceLock<Thread>,
    started_at: Instant,
    pub(crate) clock_missed: AtomicU64,
    waiters: AtomicUsize,
    wait_lock: Mutex<()>,
    wait_cv: Condvar,
    /// Called once when every sink has ended or failed.
    on_finished: Box<dyn Fn() + Send + Sync>,
    /// Called when a handler asks the runtime to stop.
    on_stop_request: Box<dyn Fn() + Send + Sync>,
}

struct NodeUnit {
    shared: Weak<Shared>,
    index: usize,
    name: String,
}

impl WorkUnit for NodeUnit {
    fn run(&self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.run_node(self.index);
        }
    }
    fn name(&self) -> &str {
        &self.name
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_owned()
    }
}

fn catch<R>(f: impl FnOnce() -> Result<R, streamlib_ports::HandlerError>) -> Result<R, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(e.to_string()),
        Err(p) => Err(panic_message(&*p)),
    }
}

impl Shared {
    pub(crate) fn new(
        specs: Vec<NodeSpec>,
        clock_info: ClockInfo,
        on_finished: Box<dyn Fn() + Send + Sync>,
        on_stop_request: Box<dyn Fn() + Send + Sync>,
    ) -> Arc<Self> {
        let sinks = specs
            .iter()
            .enumerate()
            .filter(|(_, s)| s.downstream.is_empty())
            .map(|(i, _)| i)
            .collect();
        let nodes = specs
            .into_iter()
            .map(|s| Node {
                type_name: s.handler.type_name(),
                id: s.id,
                handler: UnsafeCell::new(s.handler),
                inputs: s.inputs,
                outputs: s.outputs,
                upstream: s.upstream,
                downstream: s.downstream,
                dispatcher: s.dispatcher,
                activation: OnceLock::new(),
                policy: s.policy,
                time_limit: s.time_limit,
                concurrency_limit: s.concurrency_limit,
                busy: AtomicBool::new(false),
                last_seq: AtomicU64::new(0),
                run_seq: AtomicU64::new(0),
                done_seq: AtomicU64::new(0),
                final_scheduled: AtomicBool::new(false),
                final_run: AtomicBool::new(false),
                state: AtomicU8::new(0),
                started: AtomicBool::new(false),
                needs_start: AtomicBool::new(false),
                restart_at_ns: AtomicU64::new(0),
                counters: NodeCounters::new(),
            })
            .collect();
        let ticks = (0..TICK_RING)
            .map(|_| TickCell {
                seq: AtomicU64::new(0),
                timestamp: AtomicU64::new(0),
                frame_number: AtomicU64::new(0),
                issued_ns: AtomicU64::new(0),
            })
            .collect();
        Arc::new(Self {
            nodes,
            sinks,
            ticks,
            clock_seq: AtomicU64::new(0),
            fps: clock_info.fps,
            clock_source: clock_info.id,
            pacing: clock_info.pacing,
            clock_info,
            stopping: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            driver: OnceLock::new(),
            started_at: Instant::now(),
            clock_missed: AtomicU64::new(0),
            waiters: AtomicUsize::new(0),
            wait_lock: Mutex::new(()),
            wait_cv: Condvar::new(),
            on_finished,
            on_stop_request,
        })
    }

    fn now_ns(&self) -> u64 {
        self.started_at.elapsed().as_nanos() as u64
    }

    /// Calls `on_start` on every handler in order; on failure stops those already started.
    pub(crate) fn start_handlers(&self) -> Result<(), (usize, String)> {
        for (i, node) in self.nodes.iter().enumerate() {
            let ctx = StartContext::new(&node.id, &self.clock_info);
            // SAFETY: no activation is attached yet, so no other thread can reach the handler.
            let handler = unsafe { &mut *node.handler.get() };
            if let Err(message) = catch(|| handler.on_start(&ctx)) {
                for earlier in &self.nodes[..i] {
                    self.stop_handler(earlier);
                }
                return Err((i, message));
            }
            node.started.store(true, SeqCst);
            node.state.store(ST_RUNNING, SeqCst);
        }
        Ok(())
    }

    /// Attaches every node to its dispatcher.
    pub(crate) fn attach(
        self: &Arc<Self>,
    ) -> Result<(), (usize, streamlib_dispatch::DispatchError)> {
        for (i, node) in self.nodes.iter().enumerate() {
            let unit = Arc::new(NodeUnit {
                shared: Arc::downgrade(self),
                index: i,
                name: node.id.clone(),
            });
            let activation = node.dispatcher.attach(unit).map_err(|e| (i, e))?;
            let _ = node.activation.set(activation);
        }
        Ok(())
    }

    pub(crate) fn set_driver(&self, thread: Thread) {
        let _ = self.driver.set(thread);
    }

    fn wake_driver(&self) {
        if let Some(driver) = self.driver.get() {
            driver.unpark();
        }
    }

    /// Publishes a tick from the clock and schedules what became ready.
    pub(crate) fn publish_tick(&self, tick: &TimedTick) -> u64 {
        let seq = self.clock_seq.load(SeqCst) + 1;
        let cell = &self.ticks[seq as usize % TICK_RING];
        cell.seq.store(0, SeqCst);
        cell.timestamp.store(tick.timestamp, SeqCst);
        cell.frame_number.store(tick.frame_number, SeqCst);
        cell.issued_ns.store(self.now_ns(), SeqCst);
        cell.seq.store(seq, SeqCst);
        self.clock_seq.store(seq, SeqCst);
        self.schedule_all();
        seq
    }

    /// Gives every node a chance to run (restarts due, newly ready ticks).
    pub(crate) fn schedule_all(&self) {
        for i in 0..self.nodes.len() {
            self.try_schedule(i);
        }
    }

    fn tick(&self, seq: u64) -> TimedTick {
        let cell = &self.ticks[seq as usize % TICK_RING];
        for _ in 0..4 {
            let s1 = cell.seq.load(SeqCst);
            let timestamp = cell.timestamp.load(SeqCst);
            let frame_number = cell.frame_number.load(SeqCst);
            if s1 == seq && cell.seq.load(SeqCst) == seq {
                return TimedTick {
                    timestamp,
                    frame_number,
                    clock_source_id: self.clock_source,
                    fps: self.fps,
                };
            }
            if s1 > seq {
                break;
            }
            std::hint::spin_loop();
        }
        // The cell was reused: this node is more than TICK_RING ticks behind. Use the newest.
        let newest = self.clock_seq.load(SeqCst);
        if newest != seq && newest > 0 {
            return self.tick(newest);
        }
        TimedTick {
            timestamp: 0,
            frame_number: 0,
            clock_source_id: self.clock_source,
            fps: self.fps,
        }
    }

    /// The newest tick a node may run, and whether it owes a final run because every upstream
    /// has ended or failed.
    fn readiness(&self, node: &Node) -> (u64, bool) {
        let clock = self.clock_seq.load(SeqCst);
        if node.upstream.is_empty() {
            return (clock, false);
        }
        let mut ready = u64::MAX;
        let mut all_terminal = true;
        for &u in &node.upstream {
            let up = &self.nodes[u];
            match up.state.load(SeqCst) {
                s if is_terminal(s) => {}
                // Waiting out its backoff: do not hold the rest back. Once due, it runs
                // first again, so frames it forwards still arrive on their own tick.
                ST_RESTARTING if self.now_ns() < up.restart_at_ns.load(SeqCst) => {
                    all_terminal = false;
                }
                _ => {
                    all_terminal = false;
                    ready = ready.min(up.done_seq.load(SeqCst));
                }
            }
        }
        if all_terminal {
            return (clock, !node.final_scheduled.load(SeqCst));
        }
        (ready.min(clock), false)
    }

    /// Activates node `i` if it has a newer tick to run and is idle.
    pub(crate) fn try_schedule(&self, i: usize) {
        let node = &self.nodes[i];
        loop {
            if self.stopping.load(SeqCst) {
                return;
            }
            let state = node.state.load(SeqCst);
            if is_terminal(state) || state == 0 {
                return;
            }
            if state == ST_RESTARTING && self.now_ns() < node.restart_at_ns.load(SeqCst) {
                return;
            }
            let (ready, force) = self.readiness(node);
            if ready <= node.last_seq.load(SeqCst) && !force {
                return;
            }
            if node
                .busy
                .compare_exchange(false, true, SeqCst, SeqCst)
                .is_err()
            {
                // It is running; it re-checks when it completes.
                return;
            }
            let (ready, force) = self.readiness(node);
            let last = node.last_seq.load(SeqCst);
            let state = node.state.load(SeqCst);
            if (ready <= last && !force) || self.stopping.load(SeqCst) || is_terminal(state) {
                node.busy.store(false, SeqCst);
                // Something may have become ready while we held `busy`: look again.
                continue;
            }
            if force {
                node.final_scheduled.store(true, SeqCst);
                node.final_run.store(true, SeqCst);
            }
            let run = ready.max(last);
            if last > 0 && run > last + 1 {
                bump(&node.counters.skipped_ticks, run - last - 1);
            }
            // Both are owned by whoever holds `busy`; the dispatcher's hand-off publishes them.
            node.last_seq.store(run, Ordering::Relaxed);
            node.run_seq.store(run, Ordering::Relaxed);
            match node.activation.get() {
                Some(activation) => activation.activate(),
                None => node.busy.store(false, SeqCst),
            }
            return;
        }
    }

    /// One `process` call (plus a pending restart's `on_start`), on the dispatcher's thread.
    fn run_node(&self, i: usize) {
        let node = &self.nodes[i];
        let seq = node.run_seq.load(Ordering::Relaxed);
        // SAFETY: `try_schedule` set `busy` before activating this run and only `complete`
        // below clears it, so this thread has exclusive access to the handler.
        let handler = unsafe { &mut *node.handler.get() };
        if node.needs_start.load(SeqCst) {
            let ctx = StartContext::new(&node.id, &self.clock_info);
            match catch(|| handler.on_start(&ctx)) {
                Ok(()) => {
                    node.needs_start.store(false, SeqCst);
                    node.started.store(true, SeqCst);
                    node.state.store(ST_RUNNING, SeqCst);
                    bump(&node.counters.restarts, 1);
                    tracing::info!(stream = %node.id, "restarted");
                }
                Err(message) => {
                    bump(&node.counters.errors, 1);
                    self.fail(node, handler, &message);
                    self.complete(i, seq);
                    return;
                }
            }
        }
        let final_run = node.final_run.load(SeqCst);
        let started = Instant::now();
        let mut ctx = ProcessContext::new(&node.id, self.tick(seq))
            .with_deadline(node.time_limit.map(|limit| started + limit))
            .with_concurrency_limit(node.concurrency_limit)
            .with_inputs_ended(final_run);
        let result = catch_unwind(AssertUnwindSafe(|| handler.process(&mut ctx)));
        let elapsed = started.elapsed();
        let counters = &node.counters;
        bump(&counters.ticks, 1);
        counters.process_time.record(elapsed.as_nanos() as u64);
        let cell = &self.ticks[seq as usize % TICK_RING];
        let finished_ns = (started - self.started_at + elapsed).as_nanos() as u64;
        counters
            .latency
            .record(finished_ns.saturating_sub(cell.issued_ns.load(Ordering::Relaxed)));
        if node.time_limit.is_some_and(|limit| elapsed > limit) {
            bump(&counters.deadline_misses, 1);
        }
        node.log_pool_skips();
        match result {
            Ok(Ok(())) => {
                if ctx.stop_requested() {
                    tracing::info!(stream = %node.id, "asked the runtime to stop");
                    (self.on_stop_request)();
                }
                if ctx.end_requested() || final_run {
                    self.end_node(node, handler, final_run);
                }
            }
            Ok(Err(error)) => {
                bump(&counters.errors, 1);
                self.fail(node, handler, &error.to_string());
            }
            Err(payload) => {
                bump(&counters.panics, 1);
                self.fail(node, handler, &panic_message(&*payload));
            }
        }
        self.complete(i, seq);
    }

    fn end_node(&self, node: &Node, handler: &mut Box<dyn StreamHandler>, drained: bool) {
        if let (RestartPolicy::Always(backoff), false) = (&node.policy, drained) {
            // A source that ended its stream by itself is started again.
            self.schedule_restart(node, handler, backoff, "ended its stream");
            return;
        }
        node.state.store(ST_ENDED, SeqCst);
        for output in &node.outputs {
            output.set_ended(true);
        }
        tracing::debug!(stream = %node.id, "end of stream");
    }

    fn fail(&self, node: &Node, handler: &mut Box<dyn StreamHandler>, message: &str) {
        node.record_error(message);
        match node.policy.backoff() {
            Some(backoff) => self.schedule_restart(node, handler, backoff, message),
            None => {
                tracing::error!(stream = %node.id, handler = node.type_name, "failed: {message}; restart policy is never, leaving it stopped");
                self.stop_started(node, handler);
                node.state.store(ST_FAILED, SeqCst);
            }
        }
    }

    fn schedule_restart(
        &self,
        node: &Node,
        handler: &mut Box<dyn StreamHandler>,
        backoff: &crate::Backoff,
        why: &str,
    ) {
        let done = node.counters.restarts.load(Ordering::Relaxed) as u32;
        self.stop_started(node, handler);
        if backoff.max_restarts.is_some_and(|cap| done >= cap) {
            tracing::error!(stream = %node.id, handler = node.type_name, "{why}; gave up after {done} restarts");
            node.state.store(ST_FAILED, SeqCst);
            return;
        }
        let delay = backoff.delay(done + 1);
        tracing::warn!(stream = %node.id, handler = node.type_name, "{why}; restarting in {delay:?}");
        node.restart_at_ns
            .store(self.now_ns() + delay.as_nanos() as u64, SeqCst);
        node.needs_start.store(true, SeqCst);
        node.state.store(ST_RESTARTING, SeqCst);
    }

    fn stop_started(&self, node: &Node, handler: &mut Box<dyn StreamHandler>) {
        if node.started.swap(false, SeqCst)
            && let Err(message) = catch(|| handler.on_stop())
        {
            bump(&node.counters.errors, 1);
            node.record_error(&format!("on_stop failed: {message}"));
            tracing::error!(stream = %node.id, "on_stop failed: {message}");
        }
    }

    /// Calls `on_stop` on a node that is not running (start-up rollback and shutdown).
    fn stop_handler(&self, node: &Node) {
        // SAFETY: callers hold `busy` or run before any activation exists.
        let handler = unsafe { &mut *node.handler.get() };
        self.stop_started(node, handler);
    }

    fn complete(&self, i: usize, seq: u64) {
        let node = &self.nodes[i];
        node.done_seq.store(seq, SeqCst);
        node.busy.store(false, SeqCst);
        if !self.stopping.load(SeqCst) {
            self.try_schedule(i);
            for &d in &node.downstream {
                self.try_schedule(d);
            }
            if node.downstream.is_empty()
                && !self.finished.load(SeqCst)
                && self.all_sinks_done()
                && !self.finished.swap(true, SeqCst)
            {
                tracing::info!("every sink has ended: pipeline finished");
                (self.on_finished)();
            }
        }
        if self.pacing == Pacing::Pipeline {
            self.wake_driver();
        }
        if self.waiters.load(SeqCst) > 0 {
            let _guard = self
                .wait_lock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.wait_cv.notify_all();
        }
    }

    fn all_sinks_done(&self) -> bool {
        self.sinks
            .iter()
            .all(|&s| is_terminal(self.nodes[s].state.load(SeqCst)))
    }

    /// Whether every live node has finished tick `seq`.
    pub(crate) fn wave_done(&self, seq: u64) -> bool {
        self.nodes.iter().all(|n| {
            let state = n.state.load(SeqCst);
            is_terminal(state)
                || state == ST_RESTARTING
                || (n.done_seq.load(SeqCst) >= seq && !n.busy.load(SeqCst))
        })
    }

    /// Blocks the driver until tick `seq` has crossed the graph (pipeline pacing).
    pub(crate) fn wait_wave(&self, seq: u64) {
        while !self.wave_done(seq) && !self.stopping.load(SeqCst) && !self.finished.load(SeqCst) {
            std::thread::park_timeout(Duration::from_millis(5));
        }
    }

    /// Waits until `ticks` ticks were issued and processed everywhere, or `timeout`.
    pub(crate) fn wait_for_ticks(&self, ticks: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        self.waiters.fetch_add(1, SeqCst);
        let mut guard = self
            .wait_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let done = loop {
            let ok = (self.clock_seq.load(SeqCst) >= ticks && self.wave_done(ticks))
                || self.finished.load(SeqCst);
            if ok {
                break true;
            }
            let now = Instant::now();
            if now >= deadline {
                break false;
            }
            let wait = (deadline - now).min(Duration::from_millis(5));
            guard = match self.wait_cv.wait_timeout(guard, wait) {
                Ok((g, _)) => g,
                Err(poisoned) => poisoned.into_inner().0,
            };
        };
        drop(guard);
        self.waiters.fetch_sub(1, SeqCst);
        done
    }

    /// Ends every source (the clock will not tick again).
    pub(crate) fn end_sources(&self) {
        for (i, node) in self.nodes.iter().enumerate() {
            if node.upstream.is_empty() && self.acquire(node, Duration::from_secs(5)) {
                if !is_terminal(node.state.load(SeqCst)) {
                    node.state.store(ST_ENDED, SeqCst);
                    node.outputs.iter().for_each(|o| o.set_ended(true));
                }
                node.busy.store(false, SeqCst);
                for &d in &node.downstream {
                    self.try_schedule(d);
                }
                let _ = i;
            }
        }
        if self
            .sinks
            .iter()
            .all(|&s| self.nodes[s].upstream.is_empty())
            && !self.finished.swap(true, SeqCst)
        {
            (self.on_finished)();
        }
    }

    /// Takes `busy` of an idle node, waiting up to `timeout` for a run in flight.
    fn acquire(&self, node: &Node, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if node
                .busy
                .compare_exchange(false, true, SeqCst, SeqCst)
                .is_ok()
            {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Stops scheduling, waits for runs in flight, calls `on_stop` once per started handler,
    /// and detaches every activation.
    pub(crate) fn shutdown(&self, timeout: Duration) {
        self.stopping.store(true, SeqCst);
        self.wake_driver();
        for node in self.nodes.iter() {
            if self.acquire(node, timeout) {
                self.stop_handler(node);
                let state = node.state.load(SeqCst);
                if !is_terminal(state) {
                    node.state.store(ST_STOPPED, SeqCst);
                }
            } else {
                tracing::error!(stream = %node.id, "still running after {timeout:?}; on_stop skipped");
            }
        }
        for node in self.nodes.iter() {
            if let Some(activation) = node.activation.get() {
                activation.detach();
            }
        }
    }

    pub(crate) fn stats(&self, clock_name: &str) -> RuntimeStats {
        let streams = self
            .nodes
            .iter()
            .map(|n| {
                let c = &n.counters;
                let h = &c.process_time;
                let l = &c.latency;
                let pools: Vec<_> = n.outputs.iter().map(|o| o.pool_counters()).collect();
                StreamStats {
                    id: n.id.clone(),
                    handler: n.type_name,
                    dispatcher: n.dispatcher.kind(),
                    state: match n.state.load(SeqCst) {
                        ST_RUNNING => StreamState::Running,
                        ST_RESTARTING => StreamState::Restarting,
                        ST_ENDED => StreamState::Ended,
                        ST_FAILED => StreamState::Failed,
                        ST_STOPPED => StreamState::Stopped,
                        _ => StreamState::Idle,
                    },
                    ticks: c.ticks.load(Ordering::Relaxed),
                    skipped_ticks: c.skipped_ticks.load(Ordering::Relaxed),
                    items_out: n.outputs.iter().map(|o| o.written()).sum(),
                    items_in: n.inputs.iter().map(|p| p.received()).sum(),
                    skipped_pool_empty: pools.iter().map(|p| p.skipped_pool_empty).sum(),
                    pool_grown: pools.iter().map(|p| p.grown).sum(),
                    pool_capacity: pools.iter().map(|p| p.capacity).sum(),
                    drops: n
                        .inputs
                        .iter()
                        .map(|p| InputDrops {
                            port: p.name().to_owned(),
                            dropped: p.dropped(),
                            rejected: p.rejected(),
                        })
                        .collect(),
                    errors: c.errors.load(Ordering::Relaxed),
                    panics: c.panics.load(Ordering::Relaxed),
                    restarts: c.restarts.load(Ordering::Relaxed),
                    last_error: c
                        .last_error
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .clone(),
                    deadline_misses: c.deadline_misses.load(Ordering::Relaxed),
                    p50: Duration::from_nanos(h.quantile(0.5)),
                    p99: Duration::from_nanos(h.quantile(0.99)),
                    max: Duration::from_nanos(h.max()),
                    latency_p50: Duration::from_nanos(l.quantile(0.5)),
                    latency_p99: Duration::from_nanos(l.quantile(0.99)),
                    latency_max: Duration::from_nanos(l.max()),
                }
            })
            .collect();
        RuntimeStats {
            clock: clock_name.to_owned(),
            clock_ticks: self.clock_seq.load(SeqCst),
            clock_missed: self.clock_missed.load(SeqCst),
            elapsed: self.started_at.elapsed(),
            streams,
        }
    }
}
