//! [`GpuDispatcher`]: the one thread where a context's GPU handlers encode and submit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use streamlib_dispatch::{Activation, DispatchError, Dispatcher, ThreadPoolDispatcher, WorkUnit};

/// Runs every GPU handler attached to it on a single submission thread, one activation at a
/// time, in activation order.
///
/// - **Ordering.** One thread per [`GpuContext`](crate::GpuContext)
///   ([`GpuContext::dispatcher`](crate::GpuContext::dispatcher)): a handler's submission for
///   tick N reaches the queue after its upstream's submission for tick N (the runtime activates
///   it only after the upstream returned), and two GPU handlers never race on the queue. wgpu
///   executes submissions in order, so a texture written by one handler is complete when the
///   next reads it: no CPU-side wait between GPU handlers.
/// - **Completion without busy-waiting.** Nothing on this thread waits for the GPU. The
///   context's poller thread sleeps (parked) until a submission wakes it, then blocks in
///   `device.poll(PollType::wait_indefinitely())` until that work is done, which fires the
///   `map_async` callbacks [`GpuToCpu`](crate::GpuToCpu) uses; then it sleeps again.
/// - Built on [`ThreadPoolDispatcher`] with one worker: same allocation-free activation,
///   coalescing and detach guarantees.
pub struct GpuDispatcher {
    pool: ThreadPoolDispatcher,
    shut_down: AtomicBool,
}

impl std::fmt::Debug for GpuDispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuDispatcher")
            .field("shut_down", &self.is_shut_down())
            .finish()
    }
}

impl Default for GpuDispatcher {
    fn default() -> Self {
        Self::new()
    }
}

impl GpuDispatcher {
    /// A dispatcher with its own submission thread (started on first attach). Prefer
    /// [`GpuContext::dispatcher`](crate::GpuContext::dispatcher), which shares one per
    /// context.
    pub fn new() -> Self {
        Self {
            pool: ThreadPoolDispatcher::new(1),
            shut_down: AtomicBool::new(false),
        }
    }

    /// Whether [`shutdown`](Dispatcher::shutdown) was called.
    pub fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Acquire)
    }

    /// As a `dyn Dispatcher` for `Stream::dispatcher`.
    pub fn as_dyn(self: &Arc<Self>) -> Arc<dyn Dispatcher> {
        Arc::clone(self) as Arc<dyn Dispatcher>
    }
}

impl Dispatcher for GpuDispatcher {
    fn kind(&self) -> &'static str {
        "gpu"
    }

    fn attach(&self, unit: Arc<dyn WorkUnit>) -> Result<Box<dyn Activation>, DispatchError> {
        self.pool.attach(unit)
    }

    fn shutdown(&self) {
        self.shut_down.store(true, Ordering::Release);
        self.pool.shutdown();
    }
}
