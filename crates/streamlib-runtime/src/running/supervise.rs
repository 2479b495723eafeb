//! Supervision: starting handlers, containing their failures and panics, restarts with
//! backoff, end of stream, and shutdown.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;

use streamlib_ports::{HandlerError, StartContext, StreamHandler};

use super::RunningGraph;
use crate::node::{Node, NodeState};
use crate::stats::bump;
use crate::{Backoff, RestartPolicy};

/// What a handler's panic is recorded as: `panicked: <its message>`.
pub(super) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_owned()
    }
}

/// Calls a lifecycle method outside a run (`on_start` before the graph is attached, `on_stop`);
/// an error or a panic becomes its message. Runs themselves are not caught here: see
/// `schedule.rs`'s `run_node`.
fn catch(f: impl FnOnce() -> Result<(), HandlerError>) -> Result<(), String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(payload) => Err(panic_message(&*payload)),
    }
}

impl RunningGraph {
    /// Calls `on_start` on every handler in order; on failure stops those already started.
    pub(crate) fn start_handlers(&self) -> Result<(), (usize, String)> {
        for (i, node) in self.nodes.iter().enumerate() {
            let ctx = StartContext::new(&node.id, &self.clock_info);
            // SAFETY: no activation is attached yet, so no other thread can reach the handler.
            let handler = unsafe { node.handler() };
            if let Err(message) = catch(|| handler.on_start(&ctx)) {
                for earlier in &self.nodes[..i] {
                    self.stop_handler(earlier);
                }
                return Err((i, message));
            }
            // Relaxed: `attach` (and the threads it hands the node to) comes after.
            node.started.store(true, Ordering::Relaxed);
            node.state.store(NodeState::Running);
        }
        Ok(())
    }

    /// A run ended the node's stream (or was its final run, `drained`).
    pub(super) fn end_node(
        &self,
        node: &Node,
        handler: &mut Box<dyn StreamHandler>,
        drained: bool,
    ) {
        if let (RestartPolicy::Always(backoff), false) = (&node.policy, drained) {
            // A source that ended its stream by itself is started again.
            self.schedule_restart(node, handler, backoff, "ended its stream");
            return;
        }
        node.state.store(NodeState::Ended);
        for output in &node.outputs {
            output.set_ended(true);
        }
        tracing::debug!(stream = %node.id, "end of stream");
    }

    /// A run (or a restart's `on_start`) failed with `message`: restart or leave it failed.
    pub(super) fn fail(&self, node: &Node, handler: &mut Box<dyn StreamHandler>, message: &str) {
        node.record_error(message);
        match node.policy.backoff() {
            Some(backoff) => self.schedule_restart(node, handler, backoff, message),
            None => {
                tracing::error!(stream = %node.id, handler = node.type_name, "failed: {message}; restart policy is never, leaving it stopped");
                self.stop_started(node, handler);
                node.state.store(NodeState::Failed);
            }
        }
    }

    fn schedule_restart(
        &self,
        node: &Node,
        handler: &mut Box<dyn StreamHandler>,
        backoff: &Backoff,
        why: &str,
    ) {
        // Relaxed: one run at a time touches the streak and `up_since_ns`.
        let now = self.now_ns();
        let up_for = now.saturating_sub(node.up_since_ns.load(Ordering::Relaxed));
        let mut done = node.streak.load(Ordering::Relaxed);
        // A restart whose `on_start` failed was never up (the time since the last good start
        // is backoff, not health): only a failure after a good start may clear the streak.
        let was_up = !node.needs_start.load(Ordering::Relaxed);
        if was_up && u128::from(up_for) >= backoff.reset_after.as_nanos() {
            // It stayed up: this failure is not part of a crash loop.
            done = 0;
        }
        self.stop_started(node, handler);
        if backoff
            .max_restarts
            .is_some_and(|cap| done >= u64::from(cap))
        {
            tracing::error!(stream = %node.id, handler = node.type_name, "{why}; gave up after {done} restarts in a row");
            node.state.store(NodeState::Failed);
            return;
        }
        node.streak.store(done + 1, Ordering::Relaxed);
        let delay = backoff.delay(u32::try_from(done + 1).unwrap_or(u32::MAX));
        tracing::warn!(stream = %node.id, handler = node.type_name, "{why}; restarting in {delay:?}");
        // Relaxed: `restart_at_ns` is published by the `Restarting` store below, and
        // `needs_start` is read only by the node's next run.
        node.restart_at_ns
            .store(now + delay.as_nanos() as u64, Ordering::Relaxed);
        node.needs_start.store(true, Ordering::Relaxed);
        node.state.store(NodeState::Restarting);
    }

    /// Calls `on_stop` if `on_start` succeeded and no `on_stop` followed yet.
    fn stop_started(&self, node: &Node, handler: &mut Box<dyn StreamHandler>) {
        // Relaxed: one run (or start-up, or shutdown) at a time touches `started`.
        if node.started.swap(false, Ordering::Relaxed)
            && let Err(message) = catch(|| handler.on_stop())
        {
            bump(&node.counters.errors, 1);
            node.record_error(&format!("on_stop failed: {message}"));
            tracing::error!(stream = %node.id, "on_stop failed: {message}");
        }
    }

    /// Calls `on_stop` on a node that cannot run (start-up rollback and shutdown).
    fn stop_handler(&self, node: &Node) {
        // SAFETY: callers run before any activation exists or after every one was detached,
        // so no run can reach the handler.
        let handler = unsafe { node.handler() };
        self.stop_started(node, handler);
    }

    /// Ends every source (the clock will not tick again): each source's next run ends it,
    /// after the run in flight if there is one.
    pub(crate) fn end_sources(&self) {
        // Release: pairs with the acquire in `source_owes_end`; the activations below carry it
        // to the runs anyway.
        self.clock_ended.store(true, Ordering::Release);
        for (i, node) in self.nodes.iter().enumerate() {
            if node.upstream.is_empty() {
                self.try_schedule(i);
            }
        }
    }

    /// Stops scheduling, detaches every activation (which waits for a run in flight and lets
    /// none start after), then calls `on_stop` once per started handler.
    pub(crate) fn shutdown(&self) {
        self.request_stop();
        self.wake_driver();
        for node in self.nodes.iter() {
            if let Some(activation) = node.activation.get() {
                activation.detach();
            }
        }
        for node in self.nodes.iter() {
            self.stop_handler(node);
            if !node.state.load().is_terminal() {
                node.state.store(NodeState::Stopped);
            }
        }
    }
}
