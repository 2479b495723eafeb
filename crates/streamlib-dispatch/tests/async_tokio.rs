//! `AsyncDispatcher`: owned and borrowed tokio runtimes.
#![cfg(feature = "async")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use std::sync::Arc;
use std::thread;

use common::{Probe, ThreadWatch};
use streamlib_dispatch::{AsyncDispatcher, DispatchError, Dispatcher};

fn owned() -> AsyncDispatcher {
    AsyncDispatcher::new(2).unwrap()
}

#[test]
fn runs_once_per_spaced_activation() {
    common::check_runs_once_per_spaced_activation(&owned());
}

#[test]
fn coalesces_while_pending() {
    common::check_coalesces_while_pending(&owned());
}

#[test]
fn survives_panicking_run() {
    common::check_survives_panicking_run(&owned());
}

#[test]
fn detach_stops_runs() {
    common::check_detach_stops_runs(&owned());
}

#[test]
fn detach_from_own_run() {
    common::check_detach_from_own_run(&owned());
}

#[test]
fn owned_runtime_runs_on_named_workers_and_shuts_down() {
    let dispatcher = AsyncDispatcher::new(0).unwrap();
    assert_eq!(dispatcher.kind(), "async");
    let watch = ThreadWatch::new();
    let probe = {
        let watch = Arc::clone(&watch);
        Probe::with_body("net-sink", move |_| watch.record())
    };
    let activation = dispatcher.attach(probe.clone()).unwrap();
    for expected in 1..=20 {
        activation.activate();
        probe.wait_finished(expected);
    }
    let names = watch.names();
    assert!(
        names.iter().all(|name| name == "streamlib-async"),
        "{names:?}"
    );

    activation.detach();
    dispatcher.shutdown();
    assert!(common::wait_until(|| watch.exited() == names.len()));
    dispatcher.shutdown();
    let error = dispatcher.attach(Probe::new("late")).err().unwrap();
    assert!(matches!(
        error,
        DispatchError::ShutDown {
            dispatcher: "async"
        }
    ));
}

#[test]
fn borrowed_runtime_is_left_running() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("user-runtime")
        .build()
        .unwrap();
    let dispatcher = AsyncDispatcher::from_handle(runtime.handle().clone());
    let watch = ThreadWatch::new();
    let probe = {
        let watch = Arc::clone(&watch);
        Probe::with_body("borrowed", move |_| watch.record())
    };
    let activation = dispatcher.attach(probe.clone()).unwrap();
    for expected in 1..=20 {
        activation.activate();
        probe.wait_finished(expected);
    }
    assert!(watch.names().iter().all(|name| name == "user-runtime"));

    // Detach from a plain thread (not a runtime worker).
    thread::scope(|scope| {
        scope.spawn(|| activation.detach());
    });
    activation.activate();
    dispatcher.shutdown();
    drop(dispatcher);
    assert_eq!(probe.started(), 20);

    // The user's runtime still works.
    assert_eq!(
        runtime.block_on(async { tokio::spawn(async { 7 }).await.unwrap() }),
        7
    );
    assert_eq!(watch.exited(), 0, "the user's workers were not shut down");
}

#[test]
fn detach_and_shutdown_from_inside_the_runtime_do_not_deadlock() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let dispatcher = AsyncDispatcher::from_handle(runtime.handle().clone());
    let probe = Probe::new("inside");
    let activation = dispatcher.attach(probe.clone()).unwrap();
    activation.activate();
    probe.wait_finished(1);

    // On the runtime's only worker: the unit's task needs that worker to end.
    runtime.block_on(async move {
        tokio::spawn(async move {
            activation.detach();
            activation.activate();
        })
        .await
        .unwrap();
    });
    // An owned runtime shut down from inside another runtime is left to wind down.
    let owned = owned();
    runtime.block_on(async move { owned.shutdown() });
    assert_eq!(probe.started(), 1);
}

#[test]
fn current_thread_runtime_runs_while_driven_and_detaches_without_deadlock() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let dispatcher = AsyncDispatcher::from_handle(runtime.handle().clone());
    let probe = Probe::new("current-thread");
    let activation = dispatcher.attach(probe.clone()).unwrap();

    activation.activate();
    runtime.block_on(async {
        while probe.finished() < 1 {
            tokio::task::yield_now().await;
        }
        // From the thread that drives the unit's task.
        activation.detach();
    });
    activation.activate();
    runtime.block_on(async {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    });
    assert_eq!(probe.started(), 1);
    drop(activation);
    dispatcher.shutdown();
}
