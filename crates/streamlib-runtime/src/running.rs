//! The running graph: what the runtime's threads share once the graph has started.
//!
//! Each clock tick gets a sequence number. A node runs tick `s` once every non-terminal
//! upstream node has finished `s` (sources: once the clock issued it), so a frame produced on
//! tick N crosses the whole chain on tick N. A node that is still busy when newer ticks become
//! ready runs only the newest one when it frees up: ticks are skipped (counted), never queued.
//!
//! Scheduling (which node runs which tick, `schedule`) and supervision (start, failure,
//! restart, end of stream and shutdown, `supervise`) are the two halves of its behaviour; the
//! clock thread (`drive`) and the runtime see only the methods below.

mod schedule;
mod supervise;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use streamlib_clock::{ClockInfo, Pacing, TimedTick};

use crate::drive::TickRing;
use crate::node::{Node, NodeSpec};
use crate::stats::{InputDrops, StreamStats};
use crate::{RuntimeStats, StreamState};

/// Everything the runtime's threads share.
pub(crate) struct RunningGraph {
    pub(crate) nodes: Box<[Node]>,
    sinks: Vec<usize>,
    ticks: TickRing,
    /// The newest tick issued.
    clock_seq: AtomicU64,
    /// The clock ended: each source's next run ends it.
    clock_ended: AtomicBool,
    pub(crate) clock_info: ClockInfo,
    pacing: Pacing,
    stopping: AtomicBool,
    finished: AtomicBool,
    driver: OnceLock<Thread>,
    started_at: Instant,
    clock_missed: AtomicU64,
    /// Threads inside `wait_for_ticks`; completions notify only when there are some.
    waiters: AtomicUsize,
    wait_lock: Mutex<()>,
    wait_cv: Condvar,
    /// Called once when every sink has ended or failed.
    on_finished: Box<dyn Fn() + Send + Sync>,
    /// Called when a handler asks the runtime to stop.
    on_stop_request: Box<dyn Fn() + Send + Sync>,
}

impl RunningGraph {
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
        let nodes = specs.into_iter().map(Node::new).collect();
        Arc::new(Self {
            nodes,
            sinks,
            ticks: TickRing::new(clock_info.id, clock_info.fps),
            clock_seq: AtomicU64::new(0),
            clock_ended: AtomicBool::new(false),
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

    #[inline]
    fn now_ns(&self) -> u64 {
        self.started_at.elapsed().as_nanos() as u64
    }

    /// Whether stopping was asked for. `stopping` publishes nothing but itself (whoever reads it
    /// only skips work; shutdown's `detach` waits for runs anyway), so `Relaxed` would do; the
    /// acquire/release pair keeps its meaning obvious at no cost on x86.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Tells the driver and the schedulers to stop issuing work.
    pub(crate) fn request_stop(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// Whether every sink has ended. Acquire: pairs with the swap that set it.
    pub(crate) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// Sets `finished`; `true` for exactly one caller (the RMW decides), who must then call
    /// `on_finished`.
    fn mark_finished(&self) -> bool {
        !self.finished.swap(true, Ordering::AcqRel)
    }

    pub(crate) fn set_driver(&self, thread: Thread) {
        let _ = self.driver.set(thread);
    }

    fn wake_driver(&self) {
        if let Some(driver) = self.driver.get() {
            driver.unpark();
        }
    }

    /// Attaches every node to its dispatcher.
    pub(crate) fn attach(
        self: &Arc<Self>,
    ) -> Result<(), (usize, streamlib_dispatch::DispatchError)> {
        for (i, node) in self.nodes.iter().enumerate() {
            let unit = Arc::new(schedule::NodeUnit::new(self, i, node.id.clone()));
            let activation = node.dispatcher.attach(unit).map_err(|e| (i, e))?;
            let _ = node.activation.set(activation);
        }
        Ok(())
    }

    /// Publishes a tick from the clock and schedules what became ready.
    pub(crate) fn publish_tick(&self, tick: &TimedTick) -> u64 {
        // Only the clock thread stores `clock_seq`, so its own last store is what it reads.
        let seq = self.clock_seq.load(Ordering::Relaxed) + 1;
        self.ticks.write(seq, tick, self.now_ns());
        // Release: whoever reads this `seq` sees the tick written above; the activations in
        // `schedule_all` carry it to the sources' runs (see `schedule.rs`). SeqCst for
        // `wait_for_ticks`, which reads it against its own `waiters` increment.
        self.clock_seq.store(seq, Ordering::SeqCst);
        self.schedule_all();
        seq
    }

    /// The clock's count of missed ticks, for statistics.
    pub(crate) fn set_clock_missed(&self, missed: u64) {
        self.clock_missed.store(missed, Ordering::Relaxed);
    }

    /// Blocks the driver until tick `seq` has crossed the graph (pipeline pacing).
    pub(crate) fn wait_wave(&self, seq: u64) {
        while !self.wave_done(seq) && !self.is_stopping() && !self.is_finished() {
            std::thread::park_timeout(Duration::from_millis(5));
        }
    }

    /// A snapshot of every node's counters. Relaxed throughout: statistics order nothing.
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
                    state: StreamState::from(n.state.load_relaxed()),
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
            clock_ticks: self.clock_seq.load(Ordering::Relaxed),
            clock_missed: self.clock_missed.load(Ordering::Relaxed),
            elapsed: self.started_at.elapsed(),
            streams,
        }
    }
}
