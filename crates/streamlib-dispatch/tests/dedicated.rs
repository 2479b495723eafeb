//! `DedicatedThreadDispatcher`: one thread per unit, pinning and priority as best effort.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on unexpected errors"
)]

mod common;

use std::sync::{Arc, Mutex};

use common::{Probe, ThreadWatch};
use streamlib_dispatch::{Activation, DedicatedThreadDispatcher, DispatchError, Dispatcher};

#[test]
fn runs_once_per_spaced_activation() {
    common::check_runs_once_per_spaced_activation(&DedicatedThreadDispatcher::new());
}

#[test]
fn coalesces_while_pending() {
    common::check_coalesces_while_pending(&DedicatedThreadDispatcher::new());
}

#[test]
fn survives_panicking_run() {
    common::check_survives_panicking_run(&DedicatedThreadDispatcher::new());
}

#[test]
fn detach_stops_runs() {
    common::check_detach_stops_runs(&DedicatedThreadDispatcher::new());
}

#[test]
fn detach_from_own_run() {
    common::check_detach_from_own_run(&DedicatedThreadDispatcher::new());
}

#[test]
fn thread_is_named_after_the_unit_and_joined_on_detach() {
    let dispatcher = DedicatedThreadDispatcher::new();
    assert_eq!(dispatcher.kind(), "dedicated");
    let watch = ThreadWatch::new();
    let os_name = Arc::new(Mutex::new(String::new()));
    let probe = {
        let (watch, os_name) = (Arc::clone(&watch), Arc::clone(&os_name));
        Probe::with_body("camera-front-left", move |_| {
            watch.record();
            *os_name.lock().unwrap() = current_os_thread_name();
        })
    };
    let activation = dispatcher.attach_dedicated(probe.clone()).unwrap();
    assert_eq!(activation.status().thread_name, "streamlib-camer");
    activation.activate();
    probe.wait_finished(1);

    assert_eq!(
        watch.names().into_iter().collect::<Vec<_>>(),
        ["streamlib-camer"]
    );
    if cfg!(target_os = "linux") {
        assert_eq!(*os_name.lock().unwrap(), "streamlib-camer");
    }
    activation.detach();
    assert_eq!(watch.exited(), 1, "detach joined the unit's thread");
    activation.detach();
}

#[test]
fn each_unit_gets_its_own_thread_and_shutdown_joins_the_attached_ones() {
    let dispatcher = DedicatedThreadDispatcher::new();
    let watch = ThreadWatch::new();
    let probes: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|name| {
            let watch = Arc::clone(&watch);
            Probe::with_body(name, move |_| watch.record())
        })
        .collect();
    let activations: Vec<Box<dyn Activation>> = probes
        .iter()
        .map(|probe| dispatcher.attach(probe.clone()).unwrap())
        .collect();
    for (activation, probe) in activations.iter().zip(&probes) {
        activation.activate();
        probe.wait_finished(1);
    }
    assert_eq!(watch.names().len(), 3);

    // Still attached: shutdown stops and joins them.
    dispatcher.shutdown();
    assert_eq!(watch.exited(), 3);
    activations[0].activate();
    assert_eq!(probes[0].started(), 1);
    let error = dispatcher.attach(Probe::new("late")).err().unwrap();
    assert!(matches!(
        error,
        DispatchError::ShutDown {
            dispatcher: "dedicated"
        }
    ));
}

#[test]
fn dropping_the_dispatcher_joins_its_threads() {
    let watch = ThreadWatch::new();
    let probe = {
        let watch = Arc::clone(&watch);
        Probe::with_body("dropped", move |_| watch.record())
    };
    let dispatcher = DedicatedThreadDispatcher::new();
    let activation = dispatcher.attach(probe.clone()).unwrap();
    activation.activate();
    probe.wait_finished(1);
    drop(dispatcher);
    assert_eq!(watch.exited(), 1);
    drop(activation);
}

/// What the OS says about the calling thread's scheduling.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Observed {
    fifo_priority: Option<i32>,
    allowed_cpus: Vec<usize>,
}

#[cfg(target_os = "linux")]
fn observe_current_thread() -> Observed {
    // SAFETY: pid 0 is the calling thread; the param out-pointer is valid for the call.
    let (policy, priority) = unsafe {
        let mut param: libc::sched_param = std::mem::zeroed();
        let rc = libc::sched_getparam(0, &mut param);
        assert_eq!(rc, 0);
        (libc::sched_getscheduler(0), param.sched_priority)
    };
    // SAFETY: zeroed cpu_set_t is the empty set; the size passed is its own.
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let rc = libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set);
        assert_eq!(rc, 0);
        set
    };
    let allowed: Vec<usize> = (0..usize::try_from(libc::CPU_SETSIZE).unwrap())
        // SAFETY: every index is below CPU_SETSIZE.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect();
    Observed {
        fifo_priority: (policy == libc::SCHED_FIFO).then_some(priority),
        allowed_cpus: allowed,
    }
}

#[cfg(not(target_os = "linux"))]
fn observe_current_thread() -> Observed {
    Observed::default()
}

#[cfg(target_os = "linux")]
fn current_os_thread_name() -> String {
    std::fs::read_to_string("/proc/thread-self/comm")
        .unwrap()
        .trim_end()
        .to_owned()
}

#[cfg(not(target_os = "linux"))]
fn current_os_thread_name() -> String {
    String::new()
}

/// Attaches a unit that reports what the OS says about its thread, next to the status.
fn attach_and_observe(
    dispatcher: &DedicatedThreadDispatcher,
) -> (streamlib_dispatch::DedicatedThreadStatus, Observed) {
    let observed = Arc::new(Mutex::new(Observed::default()));
    let probe = {
        let observed = Arc::clone(&observed);
        Probe::with_body("rt-audio", move |_| {
            *observed.lock().unwrap() = observe_current_thread();
        })
    };
    let activation = dispatcher.attach_dedicated(probe.clone()).unwrap();
    activation.activate();
    probe.wait_finished(1);
    let status = activation.status().clone();
    activation.detach();
    let observed = observed.lock().unwrap().clone();
    (status, observed)
}

#[test]
fn pinning_and_priority_status_matches_what_the_os_applied() {
    // Whether SCHED_FIFO is permitted depends on the machine; either way attach succeeds and
    // the status must tell the truth.
    let dispatcher = DedicatedThreadDispatcher::new()
        .pin_to_core(0)
        .realtime_priority(10);
    let (status, observed) = attach_and_observe(&dispatcher);
    assert_eq!(
        status.realtime_priority, observed.fifo_priority,
        "{status:?} vs {observed:?}"
    );
    match status.pinned_core {
        Some(core) => assert_eq!(observed.allowed_cpus, [core], "{status:?} vs {observed:?}"),
        // Unpinned: the thread kept the affinity it inherited from this one.
        None => assert_eq!(observed.allowed_cpus, observe_current_thread().allowed_cpus),
    }
    if cfg!(target_os = "linux") && observe_current_thread().allowed_cpus.contains(&0) {
        assert_eq!(
            status.pinned_core,
            Some(0),
            "core 0 is allowed here, so pinning works"
        );
    }
}

#[test]
fn impossible_requests_fall_back_instead_of_failing() {
    // No machine has this core, and no Linux accepts this priority.
    let dispatcher = DedicatedThreadDispatcher::new()
        .pin_to_core(1 << 20)
        .realtime_priority(1000);
    let (status, observed) = attach_and_observe(&dispatcher);
    assert_eq!(status.pinned_core, None);
    assert_eq!(status.realtime_priority, None);
    assert_eq!(
        observed.fifo_priority, None,
        "the thread runs at normal priority"
    );
    assert_eq!(
        observed.allowed_cpus,
        observe_current_thread().allowed_cpus,
        "and unpinned"
    );
}
