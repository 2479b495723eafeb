//! [`AsyncDispatcher`]: each unit is one long-lived task on a tokio runtime.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::task::Poll;
use std::time::Duration;

use tokio::runtime::{Handle, Runtime, RuntimeFlavor};
use tokio::sync::Notify;

use crate::gate::{Begin, GatedUnit};
use crate::{Activation, DispatchError, Dispatcher, WorkUnit};

const KIND: &str = "async";

/// How long `shutdown` lets an owned runtime's threads wind down before leaving them behind.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs each attached unit as one long-lived task on a tokio runtime: the task awaits a
/// [`Notify`] (whose stored permit is what makes activations allocation-free and coalescing)
/// and calls `run()` when woken.
///
/// `run()` executes on a tokio worker thread, so handlers on this dispatcher should be I/O-bound
/// and brief: a long `run()` stalls every other task on that worker. CPU-heavy handlers belong
/// on the [`ThreadPoolDispatcher`](crate::ThreadPoolDispatcher).
///
/// The runtime is either owned ([`new`](Self::new): threads named `streamlib-async`, shut down
/// with the dispatcher) or borrowed ([`from_handle`](Self::from_handle): never shut down here).
///
/// A hand-off from outside the runtime goes through tokio's injection queue and wakes a worker
/// the way tokio does (its own lock included): cheaper dispatchers exist for hot paths.
pub struct AsyncDispatcher {
    handle: Handle,
    /// The owned runtime, until shutdown.
    runtime: Mutex<Option<Runtime>>,
    /// Every unit's task, so `shutdown` can stop those still attached.
    tasks: Mutex<Vec<Weak<UnitTask>>>,
    shut_down: AtomicBool,
}

impl AsyncDispatcher {
    /// Builds and owns a multi-thread tokio runtime with `worker_threads` workers (0: tokio's
    /// default, one per CPU), threads named `streamlib-async`, every driver tokio was compiled
    /// with enabled.
    ///
    /// # Errors
    ///
    /// [`DispatchError::Runtime`] when tokio cannot build the runtime.
    pub fn new(worker_threads: usize) -> Result<Self, DispatchError> {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.thread_name("streamlib-async").enable_all();
        if worker_threads > 0 {
            builder.worker_threads(worker_threads);
        }
        let runtime = builder.build().map_err(|error| DispatchError::Runtime {
            message: error.to_string(),
        })?;
        Ok(Self {
            handle: runtime.handle().clone(),
            runtime: Mutex::new(Some(runtime)),
            tasks: Mutex::new(Vec::new()),
            shut_down: AtomicBool::new(false),
        })
    }

    /// Runs units on a runtime the caller already has; [`shutdown`](Dispatcher::shutdown) stops
    /// this dispatcher's tasks but leaves the runtime running.
    ///
    /// With a current-thread runtime, units run only while that runtime is being driven, and
    /// `detach` cannot wait for the task itself to finish (it may need the very thread waiting);
    /// it still guarantees that no run starts after it returns.
    pub fn from_handle(handle: Handle) -> Self {
        Self {
            handle,
            runtime: Mutex::new(None),
            tasks: Mutex::new(Vec::new()),
            shut_down: AtomicBool::new(false),
        }
    }

    /// The runtime units run on.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Dispatcher for AsyncDispatcher {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn attach(&self, unit: Arc<dyn WorkUnit>) -> Result<Box<dyn Activation>, DispatchError> {
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        // Checked under the lock `shutdown` takes after setting the flag.
        if self.shut_down.load(Ordering::Acquire) {
            return Err(DispatchError::ShutDown { dispatcher: KIND });
        }
        tasks.retain(|task| task.strong_count() > 0);
        let task = Arc::new(UnitTask {
            gated: GatedUnit::new(unit),
            notify: Notify::new(),
            exited: Mutex::new(false),
            exited_signal: Condvar::new(),
            runtime_flavor: self.handle.runtime_flavor(),
        });
        tasks.push(Arc::downgrade(&task));
        // The JoinHandle is not needed: `ExitSignal` reports the end, even when the runtime
        // drops the task unpolled.
        drop(self.handle.spawn(serve(Arc::clone(&task))));
        Ok(Box::new(AsyncActivation { task }))
    }

    fn shutdown(&self) {
        self.shut_down.store(true, Ordering::Release);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        for task in tasks.iter().filter_map(Weak::upgrade) {
            task.stop();
        }
        let runtime = self
            .runtime
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(runtime) = runtime {
            if Handle::try_current().is_ok() {
                // Blocking on a runtime's shutdown from async context panics in tokio; let its
                // threads finish on their own instead.
                tracing::warn!(
                    "AsyncDispatcher shut down from inside a tokio runtime; its runtime's threads \
                     wind down in the background instead of being joined"
                );
                runtime.shutdown_background();
            } else {
                runtime.shutdown_timeout(SHUTDOWN_TIMEOUT);
            }
        }
    }
}

impl Drop for AsyncDispatcher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for AsyncDispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncDispatcher")
            .field("runtime_flavor", &self.handle.runtime_flavor())
            .field("shut_down", &self.shut_down.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// What one unit's task and its activation share.
struct UnitTask {
    gated: GatedUnit,
    notify: Notify,
    exited: Mutex<bool>,
    exited_signal: Condvar,
    runtime_flavor: RuntimeFlavor,
}

impl UnitTask {
    /// Detaches the unit, wakes its task so it ends, and waits for that where it is safe.
    fn stop(&self) {
        match wait_strategy(&self.runtime_flavor) {
            ExitWait::Block => self.detach_and_wait(true),
            // Moves this worker's other tasks elsewhere while it blocks, so the unit's own task
            // (possibly queued behind this one) can still run to its end.
            ExitWait::BlockInPlace => tokio::task::block_in_place(|| self.detach_and_wait(true)),
            ExitWait::Skip => self.detach_and_wait(false),
        }
    }

    fn detach_and_wait(&self, wait_for_exit: bool) {
        // Waits for a run in progress on another thread; after this no run can start.
        let from_own_run = self.gated.gate.detach();
        self.notify.notify_one();
        if !wait_for_exit || from_own_run {
            // From inside the unit's own run the task cannot end before this returns.
            return;
        }
        let mut exited = self.exited.lock().unwrap_or_else(PoisonError::into_inner);
        while !*exited {
            exited = self
                .exited_signal
                .wait(exited)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// How `stop` may wait, given the thread it is called on.
enum ExitWait {
    /// Block this thread until the task has ended.
    Block,
    /// Block inside `tokio::task::block_in_place`.
    BlockInPlace,
    /// Do not wait for the task's end.
    Skip,
}

fn wait_strategy(unit_runtime: &RuntimeFlavor) -> ExitWait {
    if *unit_runtime != RuntimeFlavor::MultiThread {
        // A current-thread runtime makes progress only while someone drives it, possibly the
        // caller itself: waiting for the task could hang forever.
        return ExitWait::Skip;
    }
    let Ok(current) = Handle::try_current() else {
        return ExitWait::Block;
    };
    match current.runtime_flavor() {
        RuntimeFlavor::MultiThread => ExitWait::BlockInPlace,
        // A current-thread context is not a worker of the unit's multi-thread runtime, so
        // blocking here cannot starve the unit's task.
        _ => ExitWait::Block,
    }
}

/// The task body: one run per hand-off until detached.
async fn serve(task: Arc<UnitTask>) {
    let _exit = ExitSignal(Arc::clone(&task));
    loop {
        match task.gated.gate.begin_run() {
            Begin::Run => {
                task.gated.run();
                if task.gated.gate.end_run() {
                    // Activated during the run: run again, but let the worker's other tasks go
                    // first.
                    yield_to_other_tasks().await;
                }
            }
            // A permit stored by `activate` makes this return at once; no lost wake-ups.
            Begin::Idle => task.notify.notified().await,
            Begin::Detached => return,
        }
    }
}

/// Goes to the back of the worker's run queue once.
///
/// Unlike `tokio::task::yield_now`, which parks the waker in a per-worker `Vec` that grows the
/// first time each worker yields, a self-wake reschedules the task through tokio's intrusive
/// queues: no allocation, whichever worker runs the unit.
async fn yield_to_other_tasks() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await;
}

/// Reports the task's end to `stop`, whether it returned or the runtime dropped it.
struct ExitSignal(Arc<UnitTask>);

impl Drop for ExitSignal {
    fn drop(&mut self) {
        *self.0.exited.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.0.exited_signal.notify_all();
    }
}

struct AsyncActivation {
    task: Arc<UnitTask>,
}

impl Activation for AsyncActivation {
    fn activate(&self) {
        if self.task.gated.gate.activate() {
            self.task.notify.notify_one();
        }
    }

    fn detach(&self) {
        self.task.stop();
    }
}

impl Drop for AsyncActivation {
    fn drop(&mut self) {
        self.task.stop();
    }
}
