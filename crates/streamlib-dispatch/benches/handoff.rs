//! Hand-off latency: `activate()` → `run()` on the dispatcher's thread → completion seen by the
//! activating thread.
//!
//! The bench thread activates a unit whose `run()` sets an atomic flag, then spins on that flag.
//! "hot" activates again as soon as the previous run is seen (a pool worker is still spinning);
//! "cold" sleeps 1 ms before each activation so the worker has gone to sleep and must be woken,
//! and times only the round trip (`iter_custom`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a bench that cannot set up should fail loudly"
)]

use std::hint::spin_loop;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use streamlib_dispatch::{
    Activation, DedicatedThreadDispatcher, Dispatcher, InlineDispatcher, ThreadPoolDispatcher,
    WorkUnit,
};

/// Sets `done` when it runs: the completion signal.
struct Signal {
    done: AtomicBool,
}

impl WorkUnit for Signal {
    fn run(&self) {
        self.done.store(true, Ordering::Release);
    }

    fn name(&self) -> &str {
        "signal"
    }
}

/// One activate → run → completion-seen round trip.
fn round_trip(activation: &dyn Activation, signal: &Signal) {
    signal.done.store(false, Ordering::Relaxed);
    activation.activate();
    let mut spins = 0_u32;
    while !signal.done.load(Ordering::Acquire) {
        // Yield once a wake-up is clearly under way: the kernel may have queued the woken
        // worker on this very CPU, and pure spinning would then measure a scheduler time slice.
        if spins < 200 {
            spins += 1;
            spin_loop();
        } else {
            thread::yield_now();
        }
    }
}

/// Long enough for any spinning worker to have gone to sleep.
const IDLE_GAP: Duration = Duration::from_millis(1);

/// Round trips after an idle gap, timing only the round trips.
fn cold_round_trips(iters: u64, activation: &dyn Activation, signal: &Signal) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        thread::sleep(IDLE_GAP);
        let start = Instant::now();
        round_trip(activation, signal);
        total += start.elapsed();
    }
    total
}

fn attach(dispatcher: &dyn Dispatcher) -> (Box<dyn Activation>, Arc<Signal>) {
    let signal = Arc::new(Signal {
        done: AtomicBool::new(false),
    });
    let activation = dispatcher.attach(signal.clone()).unwrap();
    // First run outside the measurement: spawns lazily started threads, warms caches.
    round_trip(&*activation, &signal);
    (activation, signal)
}

fn hot(c: &mut Criterion, name: &str, dispatcher: &dyn Dispatcher) {
    let (activation, signal) = attach(dispatcher);
    let mut group = c.benchmark_group("handoff");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    group.bench_function(format!("{name}_hot"), |b| {
        b.iter(|| round_trip(&*activation, &signal));
    });
    group.finish();
    activation.detach();
}

fn cold(c: &mut Criterion, name: &str, dispatcher: &dyn Dispatcher) {
    let (activation, signal) = attach(dispatcher);
    let mut group = c.benchmark_group("handoff");
    // Criterion budgets the *timed* part; each iteration also sleeps `IDLE_GAP`, so these small
    // budgets still take a few seconds of wall time.
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(20))
        .measurement_time(Duration::from_millis(50));
    group.bench_function(format!("{name}_cold"), |b| {
        b.iter_custom(|iters| cold_round_trips(iters, &*activation, &signal));
    });
    group.finish();
    activation.detach();
}

fn handoff(c: &mut Criterion) {
    hot(c, "inline", &InlineDispatcher::new());

    // One worker: the hand-off to a single thread, without competing workers on a small machine.
    let pool = ThreadPoolDispatcher::new(1);
    hot(c, "threadpool", &pool);
    cold(c, "threadpool", &pool);
    pool.shutdown();

    // No spin phase: the thread parks after every run, so "hot" measures unpark → wake-up.
    let dedicated = DedicatedThreadDispatcher::new();
    hot(c, "dedicated", &dedicated);
    cold(c, "dedicated", &dedicated);
    dedicated.shutdown();

    #[cfg(feature = "async")]
    {
        let runtime = streamlib_dispatch::AsyncDispatcher::new(1).unwrap();
        hot(c, "async", &runtime);
        cold(c, "async", &runtime);
        runtime.shutdown();
    }
}

criterion_group!(benches, handoff);
criterion_main!(benches);
