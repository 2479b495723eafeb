//! Steady-state activations allocate nothing, on every dispatcher.
//!
//! A counting global allocator sees every allocation in this process (worker threads and
//! tokio's included). libtest's own bookkeeping thread allocates while a test starts, so this
//! binary has no harness (`harness = false`): `main` measures the dispatchers one after another
//! with nothing else running, and panics (exit code 101) on any allocation.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on unexpected errors"
)]
#![allow(
    clippy::print_stdout,
    reason = "a harness-less test reports its result itself"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use streamlib_dispatch::{
    Activation, DedicatedThreadDispatcher, Dispatcher, InlineDispatcher, ThreadPoolDispatcher,
    WorkUnit,
};

struct CountingAllocator;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` unchanged; counting has no effect on the memory.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `alloc`; `ptr` came from this allocator, hence from `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, hence from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const WARM_UP: usize = 1_000;
const MEASURED: usize = 10_000;

/// A unit that does nothing but count, plus one that activates it from inside its own run (so
/// the inline dispatcher's deferral path is measured too).
struct Counter {
    runs: AtomicUsize,
}

impl WorkUnit for Counter {
    fn run(&self) {
        self.runs.fetch_add(1, Ordering::Release);
    }

    fn name(&self) -> &str {
        "counter"
    }
}

/// Activates `activation` `count` times, each time waiting for the run to finish.
fn activate_and_wait(activation: &dyn Activation, counter: &Counter, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    for _ in 0..count {
        let before = counter.runs.load(Ordering::Acquire);
        activation.activate();
        while counter.runs.load(Ordering::Acquire) == before {
            assert!(Instant::now() < deadline, "a run never happened");
            std::hint::spin_loop();
        }
    }
}

/// Allocations made by `MEASURED` activations after a warm-up.
fn steady_state_allocations(dispatcher: &dyn Dispatcher) -> usize {
    let counter = Arc::new(Counter {
        runs: AtomicUsize::new(0),
    });
    let activation = dispatcher.attach(counter.clone()).unwrap();
    activate_and_wait(&*activation, &counter, WARM_UP);

    let before = ALLOCATIONS.load(Ordering::SeqCst);
    activate_and_wait(&*activation, &counter, MEASURED);
    let after = ALLOCATIONS.load(Ordering::SeqCst);

    assert_eq!(counter.runs.load(Ordering::Acquire), WARM_UP + MEASURED);
    activation.detach();
    after - before
}

/// A unit whose run waits until every worker is inside one.
struct Rendezvous(Arc<Barrier>);

impl WorkUnit for Rendezvous {
    fn run(&self) {
        self.0.wait();
    }

    fn name(&self) -> &str {
        "rendezvous"
    }
}

/// Makes all `workers` threads of `dispatcher` run at once, so each has finished starting: a
/// thread's start-up allocates (std's stack-overflow handler), and on a busy machine a worker
/// can otherwise first get the CPU in the middle of the measurement.
fn start_every_worker(dispatcher: &dyn Dispatcher, workers: usize) {
    let barrier = Arc::new(Barrier::new(workers + 1));
    let activations: Vec<_> = (0..workers)
        .map(|_| {
            let activation = dispatcher
                .attach(Arc::new(Rendezvous(Arc::clone(&barrier))))
                .unwrap();
            activation.activate();
            activation
        })
        .collect();
    barrier.wait();
    for activation in activations {
        activation.detach();
    }
}

/// An upstream unit that activates a downstream one from inside its run: the inline
/// dispatcher's thread-local backlog path.
struct Upstream {
    downstream: std::sync::OnceLock<Box<dyn Activation>>,
}

impl WorkUnit for Upstream {
    fn run(&self) {
        if let Some(downstream) = self.downstream.get() {
            downstream.activate();
        }
    }

    fn name(&self) -> &str {
        "upstream"
    }
}

fn inline_backlog_allocations() -> usize {
    let dispatcher = InlineDispatcher::new();
    let counter = Arc::new(Counter {
        runs: AtomicUsize::new(0),
    });
    let upstream = Arc::new(Upstream {
        downstream: std::sync::OnceLock::new(),
    });
    let _ = upstream
        .downstream
        .set(dispatcher.attach(counter.clone()).unwrap());
    let activation = dispatcher.attach(upstream).unwrap();
    activate_and_wait(&*activation, &counter, WARM_UP);
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    activate_and_wait(&*activation, &counter, MEASURED);
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    activation.detach();
    after - before
}

#[cfg(feature = "async")]
fn async_allocations() -> Option<usize> {
    let dispatcher = streamlib_dispatch::AsyncDispatcher::new(2).unwrap();
    start_every_worker(&dispatcher, 2);
    Some(steady_state_allocations(&dispatcher))
}

#[cfg(not(feature = "async"))]
fn async_allocations() -> Option<usize> {
    None
}

fn main() {
    let inline = steady_state_allocations(&InlineDispatcher::new());
    let inline_backlog = inline_backlog_allocations();

    let pool = ThreadPoolDispatcher::new(2);
    start_every_worker(&pool, 2);
    let pool_hot = steady_state_allocations(&pool);
    // Every activation wakes a sleeping worker.
    let sleepy_pool = ThreadPoolDispatcher::new(2).with_spin(Duration::ZERO);
    start_every_worker(&sleepy_pool, 2);
    let pool_cold = steady_state_allocations(&sleepy_pool);

    // Its thread has started by the time attach returns (attach waits for its status report).
    let dedicated = steady_state_allocations(&DedicatedThreadDispatcher::new());

    let counts: Vec<(&str, usize)> = [
        ("inline", inline),
        ("inline backlog", inline_backlog),
        ("threadpool (spinning workers)", pool_hot),
        ("threadpool (sleeping workers)", pool_cold),
        ("dedicated", dedicated),
    ]
    .into_iter()
    .chain(async_allocations().map(|count| ("async", count)))
    .collect();

    assert!(
        counts.iter().all(|&(_, count)| count == 0),
        "allocations over {MEASURED} activations: {counts:?}"
    );
    println!("zero_alloc: {} passed, 0 failed", counts.len());
}
