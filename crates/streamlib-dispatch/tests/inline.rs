//! `InlineDispatcher`: runs on the caller's thread, never recursing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use std::sync::{Arc, Mutex, OnceLock};
use std::thread;

use common::Probe;
use streamlib_dispatch::{Activation, DispatchError, Dispatcher, InlineDispatcher};

#[test]
fn runs_once_per_spaced_activation() {
    common::check_runs_once_per_spaced_activation(&InlineDispatcher::new());
}

#[test]
fn coalesces_while_pending() {
    common::check_coalesces_while_pending(&InlineDispatcher::new());
}

#[test]
fn survives_panicking_run() {
    common::check_survives_panicking_run(&InlineDispatcher::new());
}

#[test]
fn detach_stops_runs() {
    common::check_detach_stops_runs(&InlineDispatcher::new());
}

#[test]
fn detach_from_own_run() {
    common::check_detach_from_own_run(&InlineDispatcher::new());
}

#[test]
fn runs_on_the_calling_thread_before_activate_returns() {
    let dispatcher = InlineDispatcher::new();
    let ran_on = Arc::new(Mutex::new(None));
    let body_ran_on = Arc::clone(&ran_on);
    let probe = Probe::with_body("caller", move |_| {
        *body_ran_on.lock().unwrap() = Some(thread::current().id());
    });
    let activation = dispatcher.attach(probe.clone()).unwrap();
    activation.activate();
    assert_eq!(probe.finished(), 1, "the run happens inside activate()");
    assert_eq!(*ran_on.lock().unwrap(), Some(thread::current().id()));
    assert_eq!(dispatcher.kind(), "inline");
}

#[test]
fn nested_activations_are_deferred_and_drained_in_order() {
    let dispatcher = InlineDispatcher::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    let downstream: Arc<OnceLock<[Box<dyn Activation>; 2]>> = Arc::default();

    let upstream = {
        let log = Arc::clone(&log);
        let downstream = Arc::clone(&downstream);
        Probe::with_body("upstream", move |_| {
            log.lock().unwrap().push("upstream begins");
            for activation in downstream.get().unwrap() {
                activation.activate();
            }
            log.lock().unwrap().push("upstream ends");
        })
    };
    let make = |name: &'static str| {
        let log = Arc::clone(&log);
        Probe::with_body(name, move |_| log.lock().unwrap().push(name))
    };
    let (left, right) = (make("left"), make("right"));
    let _ = downstream.set([
        dispatcher.attach(left.clone()).unwrap(),
        dispatcher.attach(right.clone()).unwrap(),
    ]);
    let upstream_activation = dispatcher.attach(upstream.clone()).unwrap();

    upstream_activation.activate();
    assert_eq!(
        *log.lock().unwrap(),
        ["upstream begins", "upstream ends", "left", "right"],
        "downstream runs after upstream returns, in activation order, within the same activate()"
    );
}

#[test]
fn attach_after_shutdown_is_refused() {
    let dispatcher = InlineDispatcher::default();
    dispatcher.shutdown();
    dispatcher.shutdown();
    let error = dispatcher.attach(Probe::new("late")).err().unwrap();
    assert!(matches!(
        error,
        DispatchError::ShutDown {
            dispatcher: "inline"
        }
    ));
}
