//! What the runtime shares with its handles and threads: the stop request, the running graph
//! for stats, and the condition `run` waits on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use crate::RuntimeStats;
use crate::running::RunningGraph;

/// Shared between the runtime, its handles and its threads.
pub(crate) struct Control {
    /// Release/acquire: a flag that publishes nothing else; `run` also reads it under `lock`,
    /// after `notify` took the same lock, so the wake-up cannot be missed either way.
    stop_requested: AtomicBool,
    /// The running graph while there is one.
    pub(crate) lock: Mutex<Option<Arc<RunningGraph>>>,
    pub(crate) cv: Condvar,
}

impl Control {
    pub(crate) fn new() -> Self {
        Self {
            stop_requested: AtomicBool::new(false),
            lock: Mutex::new(None),
            cv: Condvar::new(),
        }
    }

    /// Wakes `run`.
    pub(crate) fn notify(&self) {
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.cv.notify_all();
    }

    /// Asks `run` to stop and wakes it.
    pub(crate) fn request_stop(&self) {
        self.stop_requested.store(true, Ordering::Release);
        self.notify();
    }

    pub(crate) fn stop_requested(&self) -> bool {
        self.stop_requested.load(Ordering::Acquire)
    }

    /// Replaces the running graph (`None` once stopped).
    pub(crate) fn set_graph(&self, graph: Option<Arc<RunningGraph>>) {
        *self.lock.lock().unwrap_or_else(PoisonError::into_inner) = graph;
    }

    fn graph(&self) -> Option<Arc<RunningGraph>> {
        self.lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A cheap, cloneable handle to a runtime: stop it or read its stats from another thread (a
/// control plane, a signal handler, a UI).
#[derive(Clone)]
pub struct RuntimeHandle {
    pub(crate) control: Arc<Control>,
    pub(crate) clock_name: String,
}

impl RuntimeHandle {
    /// Asks the runtime to stop; `run` returns soon after.
    pub fn stop(&self) {
        self.control.request_stop();
    }

    /// Current statistics, `None` before start.
    pub fn stats(&self) -> Option<RuntimeStats> {
        self.control.graph().map(|g| g.stats(&self.clock_name))
    }

    /// Whether every sink has ended (end of stream reached everywhere).
    pub fn is_finished(&self) -> bool {
        self.control.graph().is_some_and(|g| g.is_finished())
    }
}

/// The process-wide Ctrl-C flag, when a handler could be installed.
#[cfg(feature = "ctrlc")]
pub(crate) fn ctrl_c_flag() -> Option<&'static AtomicBool> {
    use std::sync::OnceLock;
    static FLAG: AtomicBool = AtomicBool::new(false);
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    // Relaxed: a flag polled by `run`, ordering nothing else.
    let installed = *INSTALLED.get_or_init(|| {
        match ctrlc::try_set_handler(|| FLAG.store(true, Ordering::Relaxed)) {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(
                    "could not install a Ctrl-C handler ({error}); stop the runtime through its handle"
                );
                false
            }
        }
    });
    installed.then_some(&FLAG)
}

/// Without the `ctrlc` feature there is no Ctrl-C flag.
#[cfg(not(feature = "ctrlc"))]
pub(crate) fn ctrl_c_flag() -> Option<&'static AtomicBool> {
    None
}
