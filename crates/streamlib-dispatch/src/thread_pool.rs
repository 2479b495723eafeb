//! [`ThreadPoolDispatcher`]: N worker threads sharing one bounded lock-free run queue.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;

use crate::gate::{Begin, GatedUnit};
use crate::{Activation, DispatchError, Dispatcher, WorkUnit};

const KIND: &str = "threadpool";

/// How long an idle worker spins (yielding now and then) before it sleeps, unless told otherwise.
/// Long enough to catch the next activation of a busy graph without a wake-up syscall, short
/// enough that an idle pool costs next to nothing.
const DEFAULT_SPIN: Duration = Duration::from_micros(20);

/// Runs activated units on a fixed set of worker threads named `streamlib-pool-{i}`.
///
/// Activated units go through one bounded lock-free queue: each unit is queued at most once (an
/// activation that arrives while it waits coalesces), so `max_units` bounds the queue exactly and
/// `activate` never allocates. An idle worker spins briefly, then sleeps on a condition variable;
/// `activate` touches the lock only when the sleeper count says a worker sleeps.
///
/// Worker threads start with the first [`attach`](Dispatcher::attach) (so building a pool cannot
/// fail), and are joined by [`shutdown`](Dispatcher::shutdown) or on drop.
///
/// Linux shows at most 15 bytes of a thread name, so tools like `top -H` show every worker as
/// `streamlib-pool-`; Rust's own name (panic messages, `thread::current().name()`) keeps the
/// index.
pub struct ThreadPoolDispatcher {
    shared: Arc<PoolShared>,
    workers: usize,
    handles: Mutex<Vec<JoinHandle<()>>>,
}

impl ThreadPoolDispatcher {
    /// How many units [`new`](Self::new) makes room for.
    pub const DEFAULT_MAX_UNITS: usize = 1024;

    /// A pool of `workers` threads (0: one per CPU) holding up to
    /// [`DEFAULT_MAX_UNITS`](Self::DEFAULT_MAX_UNITS) units.
    pub fn new(workers: usize) -> Self {
        Self::with_capacity(workers, Self::DEFAULT_MAX_UNITS)
    }

    /// A pool of `workers` threads (0: one per CPU) holding up to `max_units` units at once;
    /// attaching more fails with [`DispatchError::CapacityExceeded`].
    pub fn with_capacity(workers: usize, max_units: usize) -> Self {
        let workers = if workers == 0 {
            thread::available_parallelism().map_or(1, NonZeroUsize::get)
        } else {
            workers
        };
        Self {
            shared: Arc::new(PoolShared {
                // ArrayQueue rejects a zero capacity; with `max_units == 0` no unit can attach,
                // so the one slot is never used.
                queue: ArrayQueue::new(max_units.max(1)),
                capacity: max_units,
                attached: AtomicUsize::new(0),
                sleepers: AtomicUsize::new(0),
                sleep_lock: Mutex::new(()),
                wake: Condvar::new(),
                shut_down: AtomicBool::new(false),
                spin_nanos: AtomicU64::new(duration_nanos(DEFAULT_SPIN)),
            }),
            workers,
            handles: Mutex::new(Vec::new()),
        }
    }

    /// Sets how long an idle worker spins before sleeping (default 20 µs). Longer spins shave
    /// the wake-up latency off activations that arrive in bursts, at the cost of CPU while idle;
    /// zero makes idle workers sleep at once. Takes effect at each worker's next idle period.
    #[must_use]
    pub fn with_spin(self, spin: Duration) -> Self {
        self.shared
            .spin_nanos
            .store(duration_nanos(spin), Ordering::Relaxed);
        self
    }

    /// Number of worker threads.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Most units attached at once.
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// Starts the workers that are not running yet (all of them on first use).
    fn ensure_workers(&self) -> Result<(), DispatchError> {
        let mut handles = self.handles.lock().unwrap_or_else(PoisonError::into_inner);
        // Checked under the lock that `shutdown` takes after setting the flag: a worker is
        // either refused here or joined there.
        if self.shared.shut_down.load(Ordering::Acquire) {
            return Err(DispatchError::ShutDown { dispatcher: KIND });
        }
        while handles.len() < self.workers {
            let name = format!("streamlib-pool-{}", handles.len());
            let shared = Arc::clone(&self.shared);
            let handle = thread::Builder::new()
                .name(name.clone())
                .spawn(move || shared.worker_loop())
                .map_err(|source| DispatchError::ThreadSpawn { name, source })?;
            handles.push(handle);
        }
        Ok(())
    }

    /// Counts one more attached unit, unless the pool is full.
    fn reserve_slot(&self) -> Result<(), DispatchError> {
        let capacity = self.shared.capacity;
        self.shared
            .attached
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |attached| {
                (attached < capacity).then_some(attached + 1)
            })
            .map(drop)
            .map_err(|_| DispatchError::CapacityExceeded {
                dispatcher: KIND,
                capacity,
            })
    }
}

impl Dispatcher for ThreadPoolDispatcher {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn attach(&self, unit: Arc<dyn WorkUnit>) -> Result<Box<dyn Activation>, DispatchError> {
        self.ensure_workers()?;
        self.reserve_slot()?;
        Ok(Box::new(PoolActivation {
            gated: Arc::new(GatedUnit::new(unit)),
            shared: Arc::clone(&self.shared),
        }))
    }

    fn shutdown(&self) {
        self.shared.shut_down.store(true, Ordering::SeqCst);
        {
            // Under the lock, so a worker between its last queue check and `wait` cannot miss it.
            let _sleepers = self
                .shared
                .sleep_lock
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            self.shared.wake.notify_all();
        }
        let handles =
            std::mem::take(&mut *self.handles.lock().unwrap_or_else(PoisonError::into_inner));
        let current = thread::current().id();
        for handle in handles {
            if handle.thread().id() == current {
                // Shut down from inside a unit running on this very worker: it exits once the
                // run returns; joining itself would deadlock.
                continue;
            }
            if handle.join().is_err() {
                tracing::error!(dispatcher = KIND, "a pool worker thread panicked");
            }
        }
    }
}

impl Drop for ThreadPoolDispatcher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for ThreadPoolDispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPoolDispatcher")
            .field("workers", &self.workers)
            .field("capacity", &self.shared.capacity)
            .field("attached", &self.shared.attached.load(Ordering::Relaxed))
            .field("shut_down", &self.shared.shut_down.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// What the dispatcher, its workers and its activations share.
struct PoolShared {
    /// Units with a waiting activation, each at most once.
    queue: ArrayQueue<Arc<GatedUnit>>,
    capacity: usize,
    /// Units attached, plus detached ones still sitting in the queue: never above `capacity`,
    /// which is what keeps `queue.push` from failing.
    attached: AtomicUsize,
    /// Workers registered as (about to be) asleep on `wake`.
    sleepers: AtomicUsize,
    sleep_lock: Mutex<()>,
    wake: Condvar,
    shut_down: AtomicBool,
    spin_nanos: AtomicU64,
}

impl PoolShared {
    fn worker_loop(&self) {
        while !self.shut_down.load(Ordering::Acquire) {
            if let Some(gated) = self.queue.pop() {
                self.execute(gated);
            } else if !self.spin_for_work() {
                self.sleep_until_work();
            }
        }
    }

    fn execute(&self, gated: Arc<GatedUnit>) {
        if gated.gate.begin_run() == Begin::Run {
            gated.run();
            if gated.gate.end_run() {
                // Activated during its run: back of the queue, so other units are not starved.
                self.enqueue(gated);
                return;
            }
        }
        self.release_if_detached(&gated);
    }

    /// Hands `gated` to the workers, waking one if any sleeps.
    fn enqueue(&self, gated: Arc<GatedUnit>) {
        if let Err(gated) = self.queue.push(gated) {
            // The capacity accounting makes this unreachable; if it is reached anyway, the
            // activation is lost, but un-queueing keeps later activations working.
            gated.gate.cancel_queued();
            tracing::error!(
                unit = gated.unit.name(),
                capacity = self.capacity,
                "thread pool queue full; activation dropped"
            );
            return;
        }
        // Pairs with the fence in `sleep_until_work`: either this load sees the sleeper, or the
        // sleeper's queue check sees the entry just pushed. No lost wake-up.
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            // A sleeper holds the lock from its last queue check until it is inside `wait`, so
            // taking the lock once guarantees the notification cannot fall in between. Notifying
            // after releasing it spares the woken worker from blocking on the lock again.
            drop(
                self.sleep_lock
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            self.wake.notify_one();
        }
    }

    fn release_if_detached(&self, gated: &GatedUnit) {
        if gated.gate.try_release() {
            self.attached.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Busy-waits up to the spin budget; `true` when there may be work (or a shutdown) to see.
    fn spin_for_work(&self) -> bool {
        let budget = Duration::from_nanos(self.spin_nanos.load(Ordering::Relaxed));
        if budget.is_zero() {
            return false;
        }
        let start = Instant::now();
        let mut rounds = 0_u32;
        loop {
            for _ in 0..32 {
                if !self.queue.is_empty() {
                    return true;
                }
                std::hint::spin_loop();
            }
            if self.shut_down.load(Ordering::Relaxed) {
                return true;
            }
            rounds = rounds.wrapping_add(1);
            // Yield now and then: on a machine with few cores the producer may need this CPU.
            if rounds.is_multiple_of(4) {
                thread::yield_now();
            }
            if start.elapsed() >= budget {
                return false;
            }
        }
    }

    fn sleep_until_work(&self) {
        let mut guard = self
            .sleep_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        // Pairs with the fence in `enqueue` (see there).
        fence(Ordering::SeqCst);
        while self.queue.is_empty() && !self.shut_down.load(Ordering::SeqCst) {
            guard = self
                .wake
                .wait(guard)
                .unwrap_or_else(PoisonError::into_inner);
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }
}

struct PoolActivation {
    gated: Arc<GatedUnit>,
    shared: Arc<PoolShared>,
}

impl Activation for PoolActivation {
    fn activate(&self) {
        if self.gated.gate.activate() {
            self.shared.enqueue(Arc::clone(&self.gated));
        }
    }

    fn detach(&self) {
        self.gated.gate.detach();
        // If still queued, the worker that pops it gives the capacity back instead.
        self.shared.release_if_detached(&self.gated);
    }
}

impl Drop for PoolActivation {
    fn drop(&mut self) {
        self.detach();
    }
}

fn duration_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Noop;
    impl WorkUnit for Noop {
        fn run(&self) {}
        fn name(&self) -> &str {
            "noop"
        }
    }

    #[test]
    fn zero_workers_means_one_per_cpu() {
        let pool = ThreadPoolDispatcher::new(0);
        let cpus = thread::available_parallelism().map_or(1, NonZeroUsize::get);
        assert_eq!(pool.workers(), cpus);
        assert_eq!(pool.capacity(), ThreadPoolDispatcher::DEFAULT_MAX_UNITS);
    }

    #[test]
    fn detached_unit_still_queued_keeps_its_capacity_until_popped() {
        let pool = ThreadPoolDispatcher::with_capacity(1, 1);
        // No worker runs yet: attach spawns them, so push by hand to model a busy pool.
        let gated = Arc::new(GatedUnit::new(Arc::new(Noop)));
        assert!(pool.reserve_slot().is_ok());
        let activation = PoolActivation {
            gated: Arc::clone(&gated),
            shared: Arc::clone(&pool.shared),
        };
        activation.activate();
        activation.detach();
        assert_eq!(pool.shared.attached.load(Ordering::Acquire), 1);
        assert!(matches!(
            pool.reserve_slot(),
            Err(DispatchError::CapacityExceeded { capacity: 1, .. })
        ));
        let popped = pool.shared.queue.pop();
        assert!(popped.is_some());
        if let Some(popped) = popped {
            pool.shared.execute(popped);
        }
        assert_eq!(pool.shared.attached.load(Ordering::Acquire), 0);
        assert!(pool.reserve_slot().is_ok());
    }
}
