//! One stream of the running graph: its handler, wiring, scheduling state and counters.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use streamlib_dispatch::{Activation, Dispatcher};
use streamlib_ports::{AnyInputPort, AnyOutputPort, StreamHandler};

use crate::stats::NodeCounters;
use crate::{RestartPolicy, StreamState};

/// Where a node is in its life. Stored as a byte in [`AtomicNodeState`].
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeState {
    /// Built, `on_start` not called yet.
    Idle = 0,
    /// Started; runs when a tick is ready.
    Running = 1,
    /// Failed (or ended under `RestartPolicy::Always`); `on_start` again once the backoff is due.
    Restarting = 2,
    /// Reached end of stream.
    Ended = 3,
    /// Failed and left failed by its restart policy.
    Failed = 4,
    /// Stopped by the runtime's shutdown.
    Stopped = 5,
}

impl NodeState {
    /// The state a stored byte stands for; only [`AtomicNodeState`] stores them, so every byte
    /// read back is one of the discriminants.
    const fn from_u8(byte: u8) -> Self {
        match byte {
            1 => Self::Running,
            2 => Self::Restarting,
            3 => Self::Ended,
            4 => Self::Failed,
            5 => Self::Stopped,
            _ => Self::Idle,
        }
    }

    /// Whether the node will never run again.
    pub(crate) const fn is_terminal(self) -> bool {
        matches!(self, Self::Ended | Self::Failed | Self::Stopped)
    }
}

impl From<NodeState> for StreamState {
    fn from(state: NodeState) -> Self {
        match state {
            NodeState::Idle => StreamState::Idle,
            NodeState::Running => StreamState::Running,
            NodeState::Restarting => StreamState::Restarting,
            NodeState::Ended => StreamState::Ended,
            NodeState::Failed => StreamState::Failed,
            NodeState::Stopped => StreamState::Stopped,
        }
    }
}

/// A [`NodeState`] shared between threads.
///
/// `SeqCst`: two sinks ending at once each store their state and then read the other's
/// (`all_sinks_done`), and `wait_for_ticks` reads states against completions: store buffering,
/// which only a single total order rules out (with acquire/release both sinks could read the
/// other as live and the pipeline would never finish). Scheduling itself needs no more than the
/// gate's acquire/release (see `running/schedule.rs`).
pub(crate) struct AtomicNodeState(AtomicU8);

impl AtomicNodeState {
    pub(crate) const fn new(state: NodeState) -> Self {
        Self(AtomicU8::new(state as u8))
    }

    pub(crate) fn load(&self) -> NodeState {
        NodeState::from_u8(self.0.load(Ordering::SeqCst))
    }

    pub(crate) fn store(&self, state: NodeState) {
        self.0.store(state as u8, Ordering::SeqCst);
    }

    /// For statistics: a snapshot that orders nothing.
    pub(crate) fn load_relaxed(&self) -> NodeState {
        NodeState::from_u8(self.0.load(Ordering::Relaxed))
    }
}

/// What the runtime hands the running graph for each stream, in topological order.
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
    pub(crate) activation: OnceLock<Box<dyn Activation>>,
    pub(crate) policy: RestartPolicy,
    pub(crate) time_limit: Option<Duration>,
    pub(crate) concurrency_limit: usize,
    /// An activation was made and its run has not begun (for `wave_done`).
    pub(crate) scheduled: AtomicBool,
    /// A run is in progress (for `wave_done`).
    pub(crate) running: AtomicBool,
    /// The newest tick a run claimed (written by runs, one at a time).
    pub(crate) last_seq: AtomicU64,
    /// The tick the run in progress processes (written by runs, one at a time).
    pub(crate) run_seq: AtomicU64,
    /// The newest tick whose run has completed.
    pub(crate) done_seq: AtomicU64,
    /// Every upstream is terminal and the final run (inputs ended) was claimed.
    pub(crate) final_scheduled: AtomicBool,
    /// The activated run is the final one.
    pub(crate) final_run: AtomicBool,
    pub(crate) state: AtomicNodeState,
    /// `on_start` succeeded and `on_stop` is still owed (written by runs, one at a time).
    pub(crate) started: AtomicBool,
    /// A restart is pending: the next run calls `on_start` first (written by runs, one at a time).
    pub(crate) needs_start: AtomicBool,
    /// When a restarting node may start again, ns since the graph started.
    pub(crate) restart_at_ns: AtomicU64,
    /// When its last restart's `on_start` succeeded, ns since the graph started (written by
    /// runs, one at a time).
    pub(crate) up_since_ns: AtomicU64,
    /// Restarts in a row: since it last stayed up for its backoff's `reset_after` (written by
    /// runs, one at a time).
    pub(crate) streak: AtomicU64,
    /// The run in flight is inside a restart's `on_start` (written by runs, one at a time;
    /// tells a panic there from one in `process`).
    pub(crate) starting: AtomicBool,
    /// When the run in flight called `process`, ns since the graph started (written by runs,
    /// one at a time; the panic path records the run's time from it).
    pub(crate) process_started_ns: AtomicU64,
    pub(crate) counters: NodeCounters,
}

// SAFETY: `handler` (the only non-Sync field) is touched only by the node's run, which its
// dispatcher's gate serialises (one run at a time, none after `detach`), by start-up before
// `attach`, and by shutdown after `detach`: access is exclusive. The handler itself is `Send`,
// so moving access between threads is sound.
unsafe impl Sync for Node {}

impl Node {
    pub(crate) fn new(spec: NodeSpec) -> Self {
        Self {
            type_name: spec.handler.type_name(),
            id: spec.id,
            handler: UnsafeCell::new(spec.handler),
            inputs: spec.inputs,
            outputs: spec.outputs,
            upstream: spec.upstream,
            downstream: spec.downstream,
            dispatcher: spec.dispatcher,
            activation: OnceLock::new(),
            policy: spec.policy,
            time_limit: spec.time_limit,
            concurrency_limit: spec.concurrency_limit,
            scheduled: AtomicBool::new(false),
            running: AtomicBool::new(false),
            last_seq: AtomicU64::new(0),
            run_seq: AtomicU64::new(0),
            done_seq: AtomicU64::new(0),
            final_scheduled: AtomicBool::new(false),
            final_run: AtomicBool::new(false),
            state: AtomicNodeState::new(NodeState::Idle),
            started: AtomicBool::new(false),
            needs_start: AtomicBool::new(false),
            restart_at_ns: AtomicU64::new(0),
            up_since_ns: AtomicU64::new(0),
            streak: AtomicU64::new(0),
            starting: AtomicBool::new(false),
            process_started_ns: AtomicU64::new(0),
            counters: NodeCounters::new(),
        }
    }

    /// The handler, exclusively.
    ///
    /// # Safety
    ///
    /// The caller is the node's run (serialised by the dispatcher), or no activation is
    /// attached yet (start-up) or any more (shutdown), so no other thread can reach the handler
    /// while the returned borrow lives.
    #[allow(
        clippy::mut_from_ref,
        reason = "exclusivity comes from the dispatcher's gate, not from the borrow"
    )]
    pub(crate) unsafe fn handler(&self) -> &mut Box<dyn StreamHandler> {
        // SAFETY: exclusive by the caller's contract above.
        unsafe { &mut *self.handler.get() }
    }

    pub(crate) fn record_error(&self, message: &str) {
        *self
            .counters
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(message.to_owned());
    }

    /// Logs when the pools feeding its outputs ran dry: the first skip, then at powers of two,
    /// so a pool that stays dry does not flood the log.
    #[inline]
    pub(crate) fn log_pool_skips(&self) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_round_trips_through_its_byte() {
        for state in [
            NodeState::Idle,
            NodeState::Running,
            NodeState::Restarting,
            NodeState::Ended,
            NodeState::Failed,
            NodeState::Stopped,
        ] {
            assert_eq!(NodeState::from_u8(state as u8), state);
            let cell = AtomicNodeState::new(state);
            assert_eq!(cell.load(), state);
        }
        assert!(NodeState::Ended.is_terminal() && NodeState::Failed.is_terminal());
        assert!(NodeState::Stopped.is_terminal());
        assert!(!NodeState::Running.is_terminal() && !NodeState::Restarting.is_terminal());
        assert!(!NodeState::Idle.is_terminal());
    }
}
