//! Which node runs which tick, and the run itself.
//!
//! # One gate: the dispatcher's
//!
//! A node's runs are serialised by its dispatcher's gate (`streamlib_dispatch`'s contract: one
//! run at a time, an activation made while one waits coalesces with it, one made during a run
//! buys exactly one more run after it, none once `detach` returned). The runtime adds no gate of
//! its own: [`try_schedule`](RunningGraph::try_schedule) only decides that a node may have
//! something to do and activates it, and the run itself claims the newest ready tick (or does
//! nothing, when an earlier run already took it). So whatever a node's run reads, the upstream
//! completion or clock tick that activated it happened before: the activation's release and
//! the run's acquire in the gate order them, and an activation that arrives mid-run is served
//! by a run that begins after it.
//!
//! # Orderings
//!
//! Fields a run claims (`last_seq`, `run_seq`, `final_*`, `needs_start`, `started`,
//! `starting`) are touched by one run at a time and ordered by the gate: `Relaxed`. Reads of
//! them from a scheduler (`last_seq` in `try_schedule`) are hints: a stale value at worst
//! activates a run that finds nothing to do. `restart_at_ns` is published by the `Restarting`
//! store that follows it. `SeqCst` remains where two threads each write one location and read
//! the other (store buffering), which acquire/release cannot order: two sinks ending at once
//! (`state`, `all_sinks_done`), and a completion against `wait_for_ticks` (`done_seq`,
//! `scheduled`, `running` against `waiters`).

use std::any::Any;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use streamlib_clock::{Pacing, TimedTick};
use streamlib_dispatch::WorkUnit;
use streamlib_ports::{ProcessContext, StartContext};

use super::RunningGraph;
use super::supervise::panic_message;
use crate::node::{Node, NodeState};
use crate::stats::bump;

/// What a run found to do.
enum Claim {
    /// Process this tick.
    Tick(u64),
    /// End the source: the clock ended.
    EndSource,
}

/// What a dispatcher runs for one node: one `run_node`.
pub(super) struct NodeUnit {
    graph: Weak<RunningGraph>,
    index: usize,
    name: String,
}

impl NodeUnit {
    pub(super) fn new(graph: &Arc<RunningGraph>, index: usize, name: String) -> Self {
        Self {
            graph: Arc::downgrade(graph),
            index,
            name,
        }
    }
}

impl WorkUnit for NodeUnit {
    fn run(&self) {
        if let Some(graph) = self.graph.upgrade() {
            graph.run_node(self.index);
        }
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn panicked(&self, payload: &(dyn Any + Send)) {
        if let Some(graph) = self.graph.upgrade() {
            graph.recover_panic(self.index, payload);
        }
    }
}

impl RunningGraph {
    /// Gives every node a chance to run (restarts due, newly ready ticks).
    pub(crate) fn schedule_all(&self) {
        for i in 0..self.nodes.len() {
            self.try_schedule(i);
        }
    }

    /// Tick `seq`; the newest one when `seq`'s cell was reused (the node is that far behind).
    fn tick(&self, mut seq: u64) -> TimedTick {
        loop {
            if let Some(tick) = self.ticks.read(seq) {
                return tick;
            }
            // Acquire: pairs with the release half of `publish_tick`'s store.
            let newest = self.clock_seq.load(Ordering::Acquire);
            if newest == seq || newest == 0 {
                return self.ticks.empty();
            }
            seq = newest;
        }
    }

    /// Whether a restarting node is still waiting out its backoff.
    fn in_backoff(&self, node: &Node) -> bool {
        // Relaxed: published by the `Restarting` store the caller just read.
        self.now_ns() < node.restart_at_ns.load(Ordering::Relaxed)
    }

    /// The newest tick a node may run, and whether it owes a final run because every upstream
    /// has ended or failed.
    fn readiness(&self, node: &Node) -> (u64, bool) {
        // Acquire: pairs with `publish_tick`'s store, so the tick's cell is readable.
        let clock = self.clock_seq.load(Ordering::Acquire);
        if node.upstream.is_empty() {
            return (clock, false);
        }
        let mut ready = u64::MAX;
        let mut all_terminal = true;
        for &u in &node.upstream {
            let up = &self.nodes[u];
            match up.state.load() {
                s if s.is_terminal() => {}
                // Waiting out its backoff: do not hold the rest back. Once due, it runs
                // first again, so frames it forwards still arrive on their own tick.
                NodeState::Restarting if self.in_backoff(up) => {
                    all_terminal = false;
                }
                _ => {
                    all_terminal = false;
                    // Acquire: the upstream run's outputs are visible up to this tick.
                    ready = ready.min(up.done_seq.load(Ordering::Acquire));
                }
            }
        }
        if all_terminal {
            // Relaxed: written by a run; the check in `claim` is the one that counts.
            return (clock, !node.final_scheduled.load(Ordering::Relaxed));
        }
        (ready.min(clock), false)
    }

    /// Activates node `i` if it may have a newer tick to run (or owes its final run, or, a
    /// source, its end). The run decides; see the module docs.
    pub(crate) fn try_schedule(&self, i: usize) {
        let node = &self.nodes[i];
        if self.is_stopping() {
            return;
        }
        let state = node.state.load();
        if state.is_terminal() || state == NodeState::Idle {
            return;
        }
        if !self.source_owes_end(node) {
            if state == NodeState::Restarting && self.in_backoff(node) {
                return;
            }
            let (ready, force) = self.readiness(node);
            // Relaxed: a hint (see the module docs).
            if ready <= node.last_seq.load(Ordering::Relaxed) && !force {
                return;
            }
        }
        if let Some(activation) = node.activation.get() {
            // SeqCst: read by `wave_done` (see the module docs).
            node.scheduled.store(true, Ordering::SeqCst);
            activation.activate();
        }
    }

    /// Whether `node` is a live source and the clock has ended: its next run ends it.
    fn source_owes_end(&self, node: &Node) -> bool {
        // Acquire: pairs with the release in `end_sources` (nothing else rides on it).
        node.upstream.is_empty() && self.clock_ended.load(Ordering::Acquire)
    }

    /// One `process` call (plus a pending restart's `on_start`), on the dispatcher's thread.
    ///
    /// A panic in either is not caught here: it unwinds to the dispatcher, whose one
    /// `catch_unwind` hands it back through [`NodeUnit::panicked`] to `recover_panic`.
    fn run_node(&self, i: usize) {
        let node = &self.nodes[i];
        // Running before no longer scheduled, so `wave_done` never sees neither while the run
        // is owed. SeqCst: read by `wave_done` (see the module docs).
        node.running.store(true, Ordering::SeqCst);
        node.scheduled.store(false, Ordering::SeqCst);
        let seq = match self.claim(node) {
            Some(Claim::Tick(seq)) => seq,
            Some(Claim::EndSource) => {
                // The clock ended: the source ends without processing again (after the run
                // that was in flight, if any: this one's predecessor).
                node.state.store(NodeState::Ended);
                node.outputs.iter().for_each(|o| o.set_ended(true));
                self.complete(i, node.done_seq.load(Ordering::Relaxed));
                return;
            }
            None => {
                node.running.store(false, Ordering::SeqCst);
                return;
            }
        };
        // SAFETY: the dispatcher runs this node's unit once at a time and never after
        // `detach`; start-up calls the handler before `attach` and shutdown after `detach`. So
        // this run has exclusive access to the handler.
        let handler = unsafe { node.handler() };
        // Relaxed, here and for the run's other fields: one run at a time (see the module docs).
        if node.needs_start.load(Ordering::Relaxed) {
            let ctx = StartContext::new(&node.id, &self.clock_info);
            node.starting.store(true, Ordering::Relaxed);
            let started = handler.on_start(&ctx);
            node.starting.store(false, Ordering::Relaxed);
            match started {
                Ok(()) => {
                    node.needs_start.store(false, Ordering::Relaxed);
                    node.started.store(true, Ordering::Relaxed);
                    node.state.store(NodeState::Running);
                    node.up_since_ns.store(self.now_ns(), Ordering::Relaxed);
                    bump(&node.counters.restarts, 1);
                    tracing::info!(stream = %node.id, "restarted");
                }
                Err(error) => {
                    bump(&node.counters.errors, 1);
                    self.fail(node, handler, &error.to_string());
                    self.complete(i, seq);
                    return;
                }
            }
        }
        let final_run = node.final_run.load(Ordering::Relaxed);
        let started_ns = self.now_ns();
        node.process_started_ns.store(started_ns, Ordering::Relaxed);
        let deadline = node
            .time_limit
            .map(|limit| self.started_at + Duration::from_nanos(started_ns) + limit);
        let mut ctx = ProcessContext::new(&node.id, self.tick(seq))
            .with_deadline(deadline)
            .with_concurrency_limit(node.concurrency_limit)
            .with_inputs_ended(final_run);
        let result = handler.process(&mut ctx);
        self.record_run(node, seq, started_ns);
        match result {
            Ok(()) => {
                if ctx.stop_requested() {
                    tracing::info!(stream = %node.id, "asked the runtime to stop");
                    (self.on_stop_request)();
                }
                if ctx.end_requested() || final_run {
                    self.end_node(node, handler, final_run);
                }
            }
            Err(error) => {
                bump(&node.counters.errors, 1);
                self.fail(node, handler, &error.to_string());
            }
        }
        self.complete(i, seq);
    }

    /// The statistics of one `process` call that began at `started_ns`. Inlined (as are
    /// `now_ns`, the tick ring's reads and `log_pool_skips`): out of line, the split of the
    /// old engine into files cost 5 % more instructions per node run (callgrind,
    /// `runtime_overhead` tick/inline/k10); inlined, 3 %.
    #[inline]
    fn record_run(&self, node: &Node, seq: u64, started_ns: u64) {
        let finished_ns = self.now_ns();
        let elapsed = finished_ns.saturating_sub(started_ns);
        let counters = &node.counters;
        bump(&counters.ticks, 1);
        counters.process_time.record(elapsed);
        counters
            .latency
            .record(finished_ns.saturating_sub(self.ticks.issued_ns(seq)));
        if node
            .time_limit
            .is_some_and(|limit| Duration::from_nanos(elapsed) > limit)
        {
            bump(&counters.deadline_misses, 1);
        }
        node.log_pool_skips();
    }

    /// The run of node `i` panicked (in a restart's `on_start` or in `process`) and the
    /// dispatcher caught it: count it, apply the restart policy, and end the run as
    /// `run_node` would have.
    fn recover_panic(&self, i: usize, payload: &(dyn Any + Send)) {
        let node = &self.nodes[i];
        let seq = node.run_seq.load(Ordering::Relaxed);
        // SAFETY: called on the thread whose run just panicked, before the dispatcher lets the
        // unit run again (see `run_node`), so this thread still has the handler to itself.
        let handler = unsafe { node.handler() };
        let message = panic_message(payload);
        if node.starting.swap(false, Ordering::Relaxed) {
            // As before the one-catch design: a failed restart is an error, not a panic count.
            bump(&node.counters.errors, 1);
        } else {
            self.record_run(node, seq, node.process_started_ns.load(Ordering::Relaxed));
            bump(&node.counters.panics, 1);
        }
        self.fail(node, handler, &message);
        self.complete(i, seq);
    }

    /// What this run processes: the newest ready tick, or `None` when there is nothing to do
    /// (an earlier run took it, the node is terminal, or its backoff is not over). Claims the
    /// final run when every upstream is terminal.
    fn claim(&self, node: &Node) -> Option<Claim> {
        let state = node.state.load();
        if state.is_terminal() || state == NodeState::Idle {
            return None;
        }
        let last = node.last_seq.load(Ordering::Relaxed);
        let backing_off = state == NodeState::Restarting && self.in_backoff(node);
        if self.source_owes_end(node) {
            // A tick the clock delivered before it ended is still produced (`--frames 90`
            // makes 90 frames, not 89 when the end overtakes the last tick's run); then the
            // next run ends the source.
            let (ready, _) = self.readiness(node);
            if backing_off || ready <= last {
                return Some(Claim::EndSource);
            }
        } else if backing_off {
            return None;
        }
        let (ready, force) = self.readiness(node);
        if ready <= last && !force {
            return None;
        }
        if force {
            node.final_scheduled.store(true, Ordering::Relaxed);
            node.final_run.store(true, Ordering::Relaxed);
        }
        let run = ready.max(last);
        if last > 0 && run > last + 1 {
            bump(&node.counters.skipped_ticks, run - last - 1);
        }
        node.last_seq.store(run, Ordering::Relaxed);
        node.run_seq.store(run, Ordering::Relaxed);
        Some(Claim::Tick(run))
    }

    /// Ends a run: publishes it, schedules what became ready, and tells waiters.
    fn complete(&self, i: usize, seq: u64) {
        let node = &self.nodes[i];
        // SeqCst: read by `wave_done` (see the module docs).
        node.done_seq.store(seq, Ordering::SeqCst);
        node.running.store(false, Ordering::SeqCst);
        if !self.is_stopping() {
            self.try_schedule(i);
            for &d in &node.downstream {
                self.try_schedule(d);
            }
            if node.downstream.is_empty()
                && !self.is_finished()
                && self.all_sinks_done()
                && self.mark_finished()
            {
                tracing::info!("every sink has ended: pipeline finished");
                (self.on_finished)();
            }
        }
        if self.pacing == Pacing::Pipeline {
            self.wake_driver();
        }
        // SeqCst: pairs with the increment in `wait_for_ticks` (store buffering against
        // `done_seq` and `running`), so a waiter is either seen here or sees the run.
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _guard = self
                .wait_lock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.wait_cv.notify_all();
        }
    }

    /// Whether every sink is terminal. Two sinks ending at once each store their state and
    /// read the other's (see the module docs): `SeqCst` makes at least one see both.
    pub(super) fn all_sinks_done(&self) -> bool {
        self.sinks
            .iter()
            .all(|&s| self.nodes[s].state.load().is_terminal())
    }

    /// Whether every live node has finished tick `seq`.
    pub(crate) fn wave_done(&self, seq: u64) -> bool {
        self.nodes.iter().all(|n| {
            let state = n.state.load();
            state.is_terminal()
                || state == NodeState::Restarting
                || (n.done_seq.load(Ordering::SeqCst) >= seq
                    && !n.scheduled.load(Ordering::SeqCst)
                    && !n.running.load(Ordering::SeqCst))
        })
    }

    /// Waits until `ticks` ticks were issued and processed everywhere, or `timeout`.
    pub(crate) fn wait_for_ticks(&self, ticks: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        // SeqCst: see `complete`.
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let mut guard = self
            .wait_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let done = loop {
            let ok = (self.clock_seq.load(Ordering::SeqCst) >= ticks && self.wave_done(ticks))
                || self.is_finished();
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
        // Relaxed: leaving costs at most one needless notification.
        self.waiters.fetch_sub(1, Ordering::Relaxed);
        done
    }
}
