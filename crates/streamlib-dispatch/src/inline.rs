//! [`InlineDispatcher`]: runs units on the thread that activates them.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::gate::{Begin, GatedUnit};
use crate::{Activation, DispatchError, Dispatcher, WorkUnit};

const KIND: &str = "inline";

/// Runs each activated unit right away, on the thread that called
/// [`activate`](Activation::activate).
///
/// Zero hand-off cost, so it suits light handlers (format conversions, routing, counters).
/// Heavy work here delays whoever activated it, usually the runtime's clock thread.
///
/// Activations never recurse: an activation made while this thread is already inside an inline
/// run (a handler whose output makes its downstream ready, say) is appended to a thread-local
/// backlog that the outermost `activate` drains in order, so a long chain of handlers costs no
/// stack depth. The backlog's storage grows once and is then reused.
#[derive(Debug, Default)]
pub struct InlineDispatcher {
    shut_down: AtomicBool,
}

impl InlineDispatcher {
    /// An inline dispatcher. It owns no threads.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Dispatcher for InlineDispatcher {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn attach(&self, unit: Arc<dyn WorkUnit>) -> Result<Box<dyn Activation>, DispatchError> {
        if self.shut_down.load(Ordering::Acquire) {
            return Err(DispatchError::ShutDown { dispatcher: KIND });
        }
        Ok(Box::new(InlineActivation {
            gated: Arc::new(GatedUnit::new(unit)),
        }))
    }

    fn shutdown(&self) {
        self.shut_down.store(true, Ordering::Release);
    }
}

struct InlineActivation {
    gated: Arc<GatedUnit>,
}

impl Activation for InlineActivation {
    fn activate(&self) {
        if self.gated.gate.activate() {
            run_or_defer(&self.gated);
        }
    }

    fn detach(&self) {
        self.gated.gate.detach();
    }
}

impl Drop for InlineActivation {
    fn drop(&mut self) {
        self.detach();
    }
}

thread_local! {
    /// Whether this thread is inside the outermost inline `activate`, draining.
    static DRAINING: Cell<bool> = const { Cell::new(false) };
    /// Units activated while draining, in activation order.
    static BACKLOG: RefCell<VecDeque<Arc<GatedUnit>>> = const { RefCell::new(VecDeque::new()) };
}

/// Clears [`DRAINING`] even if something unwinds past the drain loop.
struct DrainingGuard;

impl Drop for DrainingGuard {
    fn drop(&mut self) {
        DRAINING.with(|draining| draining.set(false));
    }
}

/// Runs `gated` now, or appends it to the backlog when this thread is already draining.
fn run_or_defer(gated: &Arc<GatedUnit>) {
    if DRAINING.with(|draining| draining.replace(true)) {
        defer(gated);
        return;
    }
    let _guard = DrainingGuard;
    run_queued(gated);
    while let Some(next) = pop_backlog() {
        run_queued(&next);
    }
}

fn defer(gated: &Arc<GatedUnit>) {
    let deferred = BACKLOG.try_with(|backlog| backlog.borrow_mut().push_back(Arc::clone(gated)));
    if let Err(error) = deferred {
        // Only reachable while this thread's locals are being destroyed (an activation from
        // another thread-local's destructor). Un-queue the unit so later activations still work.
        gated.gate.cancel_queued();
        tracing::warn!(
            unit = gated.unit.name(),
            %error,
            "inline backlog unavailable during thread exit; activation dropped"
        );
    }
}

fn pop_backlog() -> Option<Arc<GatedUnit>> {
    BACKLOG
        .try_with(|backlog| backlog.borrow_mut().pop_front())
        .ok()
        .flatten()
}

/// Serves the activation queued in `gated`'s gate.
fn run_queued(gated: &Arc<GatedUnit>) {
    if gated.gate.begin_run() != Begin::Run {
        return;
    }
    gated.run();
    if gated.gate.end_run() {
        // Activated again during its own run (by itself, or from another thread): serve it
        // after what is already waiting, keeping activation order.
        defer(gated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;
    use std::sync::atomic::AtomicUsize;

    thread_local! {
        static DEPTH: Cell<usize> = const { Cell::new(0) };
    }

    /// Re-activates itself from inside its run until it has run `limit` times.
    struct Chain {
        runs: AtomicUsize,
        max_depth: AtomicUsize,
        limit: usize,
        me: OnceLock<Box<dyn Activation>>,
    }

    impl WorkUnit for Chain {
        fn run(&self) {
            let depth = DEPTH.with(|d| {
                d.set(d.get() + 1);
                d.get()
            });
            self.max_depth.fetch_max(depth, Ordering::Relaxed);
            if self.runs.fetch_add(1, Ordering::Relaxed) + 1 < self.limit
                && let Some(me) = self.me.get()
            {
                me.activate();
            }
            DEPTH.with(|d| d.set(d.get() - 1));
        }
        fn name(&self) -> &str {
            "chain"
        }
    }

    #[test]
    fn self_activation_is_iterative_not_recursive() {
        let dispatcher = InlineDispatcher::new();
        let chain = Arc::new(Chain {
            runs: AtomicUsize::new(0),
            max_depth: AtomicUsize::new(0),
            limit: 200_000,
            me: OnceLock::new(),
        });
        let Ok(activation) = dispatcher.attach(chain.clone()) else {
            panic!("inline attach failed");
        };
        let activation = chain.me.get_or_init(|| activation);
        activation.activate();
        assert_eq!(chain.runs.load(Ordering::Relaxed), 200_000);
        assert_eq!(
            chain.max_depth.load(Ordering::Relaxed),
            1,
            "inline runs must never nest"
        );
        // The unit holds its own activation; detaching stops it (the test leaks the cycle).
        activation.detach();
        activation.activate();
        assert_eq!(chain.runs.load(Ordering::Relaxed), 200_000);
    }
}
