//! `ThreadPoolDispatcher`: shared workers, bounded queue, sleeping and waking.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::{Latch, Probe, SETTLE, ThreadWatch};
use streamlib_dispatch::{DispatchError, Dispatcher, ThreadPoolDispatcher};

#[test]
fn runs_once_per_spaced_activation() {
    common::check_runs_once_per_spaced_activation(&ThreadPoolDispatcher::new(2));
}

#[test]
fn runs_once_per_spaced_activation_when_workers_sleep_at_once() {
    // No spinning: every activation has to wake a sleeping worker.
    let pool = ThreadPoolDispatcher::new(2).with_spin(Duration::ZERO);
    common::check_runs_once_per_spaced_activation(&pool);
}

#[test]
fn coalesces_while_pending() {
    common::check_coalesces_while_pending(&ThreadPoolDispatcher::new(2));
}

#[test]
fn coalesces_while_queued_behind_a_busy_worker() {
    let pool = ThreadPoolDispatcher::new(1);
    let latch = Latch::new();
    let body_latch = Arc::clone(&latch);
    let blocker = Probe::with_body("blocker", move |_| body_latch.wait());
    let target = Probe::new("target");
    let blocker_activation = pool.attach(blocker.clone()).unwrap();
    let target_activation = pool.attach(target.clone()).unwrap();

    blocker_activation.activate();
    assert!(common::wait_until(|| blocker.started() == 1));
    // The only worker is busy: these wait in the queue, as one entry.
    for _ in 0..3 {
        target_activation.activate();
    }
    latch.open();
    target.wait_finished(1);
    thread::sleep(SETTLE);
    assert_eq!(target.started(), 1);
}

#[test]
fn survives_panicking_run() {
    common::check_survives_panicking_run(&ThreadPoolDispatcher::new(1));
}

#[test]
fn detach_stops_runs() {
    common::check_detach_stops_runs(&ThreadPoolDispatcher::new(2));
}

#[test]
fn detach_from_own_run() {
    common::check_detach_from_own_run(&ThreadPoolDispatcher::new(2));
}

#[test]
fn eight_units_from_two_producers_all_run() {
    const ROUNDS: usize = 1000;
    let pool = ThreadPoolDispatcher::new(4);
    assert_eq!(pool.workers(), 4);
    assert_eq!(pool.kind(), "threadpool");
    let probes: Vec<_> = (0..8).map(|i| Probe::new(&format!("unit-{i}"))).collect();
    let activations: Vec<_> = probes
        .iter()
        .map(|probe| pool.attach(probe.clone()).unwrap())
        .collect();

    thread::scope(|scope| {
        for producer in 0..2 {
            let mine: Vec<_> = (producer * 4..producer * 4 + 4).collect();
            let (probes, activations) = (&probes, &activations);
            scope.spawn(move || {
                for round in 1..=ROUNDS {
                    // Four units in flight at once, each activated again only after its run.
                    for &unit in &mine {
                        activations[unit].activate();
                    }
                    for &unit in &mine {
                        probes[unit].wait_finished(round);
                    }
                }
            });
        }
    });

    thread::sleep(SETTLE);
    for probe in &probes {
        assert_eq!(probe.started(), ROUNDS, "every activation ran exactly once");
    }
}

#[test]
fn work_spreads_over_workers_and_shutdown_joins_them() {
    let pool = ThreadPoolDispatcher::new(4);
    let watch = ThreadWatch::new();
    let probes: Vec<_> = (0..4)
        .map(|i| {
            let watch = Arc::clone(&watch);
            Probe::with_body(&format!("slow-{i}"), move |_| {
                watch.record();
                // Long enough that one worker cannot serve all four in time.
                thread::sleep(Duration::from_millis(30));
            })
        })
        .collect();
    let activations: Vec<_> = probes
        .iter()
        .map(|probe| pool.attach(probe.clone()).unwrap())
        .collect();
    for activation in &activations {
        activation.activate();
    }
    for probe in &probes {
        probe.wait_finished(1);
    }

    let names = watch.names();
    assert!(names.len() > 1, "work ran on several workers: {names:?}");
    assert!(
        names.iter().all(|name| name.starts_with("streamlib-pool-")),
        "{names:?}"
    );

    for activation in &activations {
        activation.detach();
    }
    pool.shutdown();
    assert_eq!(
        watch.exited(),
        names.len(),
        "every worker that ran has exited and was joined"
    );
    pool.shutdown();
}

#[test]
fn dropping_the_pool_joins_its_workers() {
    let watch = ThreadWatch::new();
    let probe = {
        let watch = Arc::clone(&watch);
        Probe::with_body("dropped", move |_| watch.record())
    };
    let pool = ThreadPoolDispatcher::new(1);
    let activation = pool.attach(probe.clone()).unwrap();
    activation.activate();
    probe.wait_finished(1);
    drop(activation);
    drop(pool);
    assert_eq!(watch.exited(), 1);
}

#[test]
fn capacity_is_enforced_and_given_back_on_detach() {
    let pool = ThreadPoolDispatcher::with_capacity(1, 2);
    assert_eq!(pool.capacity(), 2);
    let first = pool.attach(Probe::new("a")).unwrap();
    let _second = pool.attach(Probe::new("b")).unwrap();
    let error = pool.attach(Probe::new("c")).err().unwrap();
    assert!(matches!(
        error,
        DispatchError::CapacityExceeded {
            dispatcher: "threadpool",
            capacity: 2
        }
    ));
    first.detach();
    first.detach();
    let third = Probe::new("c");
    let third_activation = pool.attach(third.clone()).unwrap();
    third_activation.activate();
    third.wait_finished(1);
}

#[test]
fn attach_after_shutdown_is_refused() {
    let pool = ThreadPoolDispatcher::new(1);
    pool.shutdown();
    let error = pool.attach(Probe::new("late")).err().unwrap();
    assert!(matches!(
        error,
        DispatchError::ShutDown {
            dispatcher: "threadpool"
        }
    ));
}
