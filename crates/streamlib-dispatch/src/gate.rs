//! The per-unit state machine every dispatcher shares.
//!
//! One atomic byte decides, without locks or allocation, whether an activation must be handed
//! to the executor (or coalesces with one already waiting), whether the executor may start a
//! run, and when a detached unit has truly left the executor. Keeping it in one place means the
//! four dispatchers agree on the contract in `Activation`'s docs: one run per activation,
//! coalescing while pending, and no run starting (or still going on another thread) once
//! `detach` has returned.

use std::any::Any;
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
#[cfg(not(loom))]
use std::time::Duration;

// `cargo xtask loom` builds this file against loom's atomics and thread-locals and model-checks
// the state machine (`loom_models` below); the rest of the crate is not modelled.
#[cfg(loom)]
use loom::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use crate::WorkUnit;

/// An activation is waiting to be served.
const PENDING: u8 = 1 << 0;
/// The executor has been handed the unit (a queue entry exists, or the thread/task was woken)
/// and has not picked it up yet. Implies `PENDING`.
const QUEUED: u8 = 1 << 1;
/// `run()` is executing (or about to, or just finished and the state is being settled).
const RUNNING: u8 = 1 << 2;
/// `detach` was called: no run may start any more.
const DETACHED: u8 = 1 << 3;
/// The unit was detached, left the executor, and its capacity was given back (once).
const RELEASED: u8 = 1 << 4;

/// What the executor should do with a unit it was handed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Begin {
    /// Call [`RunGate::run_unit`], then [`RunGate::end_run`].
    Run,
    /// Nothing is queued (a spurious wake-up); wait for the next hand-off.
    Idle,
    /// The unit was detached; drop it.
    Detached,
}

/// A unit together with its gate: what executors pass around (behind an `Arc`).
pub(crate) struct GatedUnit {
    /// The user's work.
    pub(crate) unit: Arc<dyn WorkUnit>,
    /// Its scheduling state.
    pub(crate) gate: RunGate,
}

impl GatedUnit {
    pub(crate) fn new(unit: Arc<dyn WorkUnit>) -> Self {
        Self {
            unit,
            gate: RunGate::new(),
        }
    }

    /// Runs the unit once under its gate (panics caught).
    pub(crate) fn run(&self) {
        self.gate.run_unit(&*self.unit);
    }
}

/// The lock-free state of one attached unit.
pub(crate) struct RunGate {
    state: AtomicU8,
    /// [`thread_mark`] of the thread inside `run()`, or 0: lets `detach` called from inside the
    /// unit's own run (or a run nested in it) return instead of waiting for itself.
    runner: AtomicUsize,
}

impl RunGate {
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Self {
            state: AtomicU8::new(0),
            runner: AtomicUsize::new(0),
        }
    }

    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        Self {
            state: AtomicU8::new(0),
            runner: AtomicUsize::new(0),
        }
    }

    /// Records an activation. Returns `true` when the caller must hand the unit to the
    /// executor; `false` when it coalesced with a waiting activation, when the running
    /// executor will pick it up after the current run, or when the unit is detached.
    pub(crate) fn activate(&self) -> bool {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            if state & (DETACHED | PENDING) != 0 {
                return false;
            }
            // While running, the executor itself re-queues the unit in `end_run`; handing it
            // over now could start a second, concurrent run.
            let hand_off = state & RUNNING == 0;
            let new = if hand_off {
                state | PENDING | QUEUED
            } else {
                state | PENDING
            };
            match self
                .state
                .compare_exchange_weak(state, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return hand_off,
                Err(actual) => state = actual,
            }
        }
    }

    /// Called by the executor that was handed the unit: claims the queued activation.
    pub(crate) fn begin_run(&self) -> Begin {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            let (new, outcome) = if state & DETACHED != 0 {
                (state & !(PENDING | QUEUED), Begin::Detached)
            } else if state & QUEUED == 0 {
                return Begin::Idle;
            } else {
                ((state & !(PENDING | QUEUED)) | RUNNING, Begin::Run)
            };
            match self
                .state
                .compare_exchange_weak(state, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return outcome,
                Err(actual) => state = actual,
            }
        }
    }

    /// Called after a run. Returns `true` when an activation arrived during the run: the unit is
    /// then queued again and the executor must hand it to itself (re-queue, loop, …).
    pub(crate) fn end_run(&self) -> bool {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            let again = state & PENDING != 0 && state & DETACHED == 0;
            let new = if again {
                (state & !RUNNING) | QUEUED
            } else {
                state & !(RUNNING | PENDING)
            };
            match self
                .state
                .compare_exchange_weak(state, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return again,
                Err(actual) => state = actual,
            }
        }
    }

    /// Runs `unit` once, catching a panic so that the executing thread survives it, and hands
    /// the panic to [`WorkUnit::panicked`]. Call only after [`begin_run`](Self::begin_run)
    /// returned [`Begin::Run`].
    ///
    /// This is the only `catch_unwind` an activation passes through: units (the runtime's
    /// included) react to their own panics in `panicked` instead of catching them again.
    pub(crate) fn run_unit(&self, unit: &dyn WorkUnit) {
        // Relaxed: only the same thread ever compares the mark with its own.
        self.runner.store(thread_mark(), Ordering::Relaxed);
        let outcome = catch_unwind(AssertUnwindSafe(|| unit.run()));
        if let Err(payload) = outcome {
            // Still marked as the runner: `panicked` may detach the unit, like `run` may. Only
            // a panic escaping `panicked` itself is caught here; that path is cold.
            let recovered = catch_unwind(AssertUnwindSafe(|| unit.panicked(&*payload)));
            if let Err(second) = recovered {
                log_panic(unit.name(), &*payload);
                tracing::error!(
                    unit = unit.name(),
                    panic = panic_message(&*second),
                    "the unit's panic handler panicked too"
                );
            }
        }
        self.runner.store(0, Ordering::Relaxed);
    }

    /// Marks the unit detached and waits until a run in progress on another thread has
    /// returned. Returns at once, with `true`, when called from inside the unit's own run: the
    /// caller must then not wait for the executor either.
    pub(crate) fn detach(&self) -> bool {
        self.state.fetch_or(DETACHED, Ordering::AcqRel);
        if self.runner.load(Ordering::Relaxed) == thread_mark() {
            return true;
        }
        let mut step = 0_u32;
        while self.state.load(Ordering::Acquire) & RUNNING != 0 {
            backoff(&mut step);
        }
        false
    }

    /// Whether `detach` has been called.
    pub(crate) fn is_detached(&self) -> bool {
        self.state.load(Ordering::Acquire) & DETACHED != 0
    }

    /// Returns `true` exactly once, when the unit is detached and no executor holds it any more
    /// (no queue entry, not running): the moment its capacity can be given back.
    pub(crate) fn try_release(&self) -> bool {
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            if state & DETACHED == 0 || state & (QUEUED | RUNNING | RELEASED) != 0 {
                return false;
            }
            match self.state.compare_exchange_weak(
                state,
                state | RELEASED,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => state = actual,
            }
        }
    }

    /// Undoes a hand-off the executor could not accept, so later activations are not lost.
    pub(crate) fn cancel_queued(&self) {
        self.state.fetch_and(!(PENDING | QUEUED), Ordering::AcqRel);
    }
}

#[cfg(not(loom))]
thread_local! {
    /// Its address identifies the current thread cheaply (no allocation, no syscall).
    static THREAD_MARK: Cell<u8> = const { Cell::new(0) };
}

// Loom runs its threads on one OS thread, so the mark must come from loom's own thread-locals.
#[cfg(loom)]
loom::thread_local! {
    static THREAD_MARK: Cell<u8> = Cell::new(0);
}

/// A non-zero number unique among live threads.
fn thread_mark() -> usize {
    THREAD_MARK.with(|mark| std::ptr::from_ref(mark) as usize)
}

/// Waits politely: spin first (a run is usually short), then yield, then sleep.
#[cfg(not(loom))]
pub(crate) fn backoff(step: &mut u32) {
    if *step < 64 {
        std::hint::spin_loop();
    } else if *step < 128 {
        std::thread::yield_now();
    } else {
        std::thread::sleep(Duration::from_micros(50));
    }
    *step = step.saturating_add(1);
}

/// Under loom every wait is a yield, so the model scheduler can run the thread waited for.
#[cfg(loom)]
pub(crate) fn backoff(step: &mut u32) {
    loom::thread::yield_now();
    *step = step.saturating_add(1);
}

/// What [`WorkUnit::panicked`] does unless a unit overrides it.
pub(crate) fn log_panic(unit: &str, payload: &(dyn Any + Send)) {
    tracing::error!(
        unit,
        panic = panic_message(payload),
        "work unit panicked; it stays attached and runs again on its next activation"
    );
}

/// The text of a panic payload, when it has one.
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&'static str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "<non-string panic payload>"
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn activation_coalesces_until_run_begins() {
        let gate = RunGate::new();
        assert!(gate.activate());
        assert!(
            !gate.activate(),
            "second activation while queued must coalesce"
        );
        assert_eq!(gate.begin_run(), Begin::Run);
        assert!(!gate.end_run());
        assert_eq!(gate.begin_run(), Begin::Idle);
        assert!(gate.activate(), "idle again: a new activation hands off");
    }

    #[test]
    fn activation_during_run_requeues_once() {
        let gate = RunGate::new();
        assert!(gate.activate());
        assert_eq!(gate.begin_run(), Begin::Run);
        assert!(
            !gate.activate(),
            "the running executor re-queues, the caller must not"
        );
        assert!(!gate.activate());
        assert!(gate.end_run(), "one more run is owed");
        assert_eq!(gate.begin_run(), Begin::Run);
        assert!(!gate.end_run());
    }

    #[test]
    fn detached_unit_is_skipped_and_released_once() {
        let gate = RunGate::new();
        assert!(gate.activate());
        assert!(!gate.detach());
        assert!(gate.is_detached());
        assert!(!gate.try_release(), "still queued: the executor holds it");
        assert_eq!(gate.begin_run(), Begin::Detached);
        assert!(gate.try_release());
        assert!(!gate.try_release(), "released exactly once");
        assert!(!gate.activate(), "detached units ignore activations");
    }

    #[test]
    fn detach_from_inside_run_does_not_wait_for_itself() {
        struct SelfDetach {
            gated: Arc<GatedUnit>,
            saw_own_run: std::sync::atomic::AtomicBool,
        }
        impl WorkUnit for SelfDetach {
            fn run(&self) {
                let own = self.gated.gate.detach();
                self.saw_own_run.store(own, Ordering::Relaxed);
            }
            fn name(&self) -> &str {
                "self-detach"
            }
        }

        let gated = Arc::new(GatedUnit::new(Arc::new(Noop)));
        let probe = SelfDetach {
            gated: Arc::clone(&gated),
            saw_own_run: std::sync::atomic::AtomicBool::new(false),
        };
        assert!(gated.gate.activate());
        assert_eq!(gated.gate.begin_run(), Begin::Run);
        gated.gate.run_unit(&probe);
        assert!(probe.saw_own_run.load(Ordering::Relaxed));
        assert!(!gated.gate.end_run());
        assert!(gated.gate.is_detached());
        assert!(
            !gated.gate.detach(),
            "outside the run, detach is an ordinary one"
        );
    }

    #[test]
    fn panicking_run_is_contained() {
        struct Boom;
        impl WorkUnit for Boom {
            fn run(&self) {
                panic!("boom");
            }
            fn name(&self) -> &str {
                "boom"
            }
        }
        let gate = RunGate::new();
        assert!(gate.activate());
        assert_eq!(gate.begin_run(), Begin::Run);
        gate.run_unit(&Boom);
        assert!(!gate.end_run());
        assert!(gate.activate());
    }

    #[test]
    fn a_panic_reaches_the_units_own_handler_once() {
        struct Reports {
            seen: std::sync::Mutex<Vec<String>>,
        }
        impl WorkUnit for Reports {
            fn run(&self) {
                panic!("frame 7");
            }
            fn name(&self) -> &str {
                "reports"
            }
            fn panicked(&self, payload: &(dyn Any + Send)) {
                self.seen
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(panic_message(payload).to_owned());
                panic!("and the handler too");
            }
        }
        let unit = Reports {
            seen: std::sync::Mutex::new(Vec::new()),
        };
        let gate = RunGate::new();
        assert!(gate.activate());
        assert_eq!(gate.begin_run(), Begin::Run);
        gate.run_unit(&unit);
        assert!(!gate.end_run());
        let seen = unit
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        assert_eq!(seen, ["frame 7"]);
        assert_eq!(
            gate.runner.load(Ordering::Relaxed),
            0,
            "runner mark cleared"
        );
        assert!(gate.activate(), "still attached after both panics");
    }

    struct Noop;
    impl WorkUnit for Noop {
        fn run(&self) {}
        fn name(&self) -> &str {
            "noop"
        }
    }
}

/// Model checks of the gate's contract under loom: `cargo xtask loom`.
#[cfg(all(test, loom))]
mod loom_models {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use loom::thread;

    use super::*;

    /// A unit that checks runs never overlap and never start after `detach` returned.
    struct Probe {
        running: AtomicBool,
        runs: AtomicUsize,
        detached: AtomicBool,
        /// A logical clock shared by activators and runs.
        clock: AtomicUsize,
        /// The clock when the latest run began.
        last_start: AtomicUsize,
    }

    impl WorkUnit for Probe {
        fn run(&self) {
            assert!(
                !self.detached.load(Ordering::SeqCst),
                "a run started after detach returned"
            );
            assert!(
                !self.running.swap(true, Ordering::SeqCst),
                "two runs at once"
            );
            self.runs.fetch_add(1, Ordering::SeqCst);
            let now = self.clock.fetch_add(1, Ordering::SeqCst);
            self.last_start.fetch_max(now, Ordering::SeqCst);
            self.running.store(false, Ordering::SeqCst);
        }
        fn name(&self) -> &str {
            "probe"
        }
    }

    fn probe() -> Arc<Probe> {
        Arc::new(Probe {
            running: AtomicBool::new(false),
            runs: AtomicUsize::new(0),
            detached: AtomicBool::new(false),
            clock: AtomicUsize::new(1),
            last_start: AtomicUsize::new(0),
        })
    }

    /// What an executor does with one hand-off: begin, run, and run again while `end_run`
    /// says an activation arrived during the run.
    fn serve(gate: &RunGate, unit: &Probe) {
        if gate.begin_run() != Begin::Run {
            return;
        }
        loop {
            gate.run_unit(unit);
            if !gate.end_run() {
                return;
            }
            assert_eq!(gate.begin_run(), Begin::Run, "a re-queue that cannot run");
        }
    }

    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(3);
        builder.check(f);
    }

    /// Two activators race an executor: every hand-off is served, runs never overlap, and no
    /// activation is left unserved (each is followed by a run that began after it).
    #[test]
    fn activations_are_never_lost_and_runs_never_overlap() {
        model(|| {
            let gate = Arc::new(RunGate::new());
            let unit = probe();
            let handed = Arc::new(AtomicUsize::new(0));
            let finished = Arc::new(AtomicUsize::new(0));
            let last_activation = Arc::new(AtomicUsize::new(0));
            let activators: Vec<_> = (0..2)
                .map(|_| {
                    let gate = Arc::clone(&gate);
                    let handed = Arc::clone(&handed);
                    let finished = Arc::clone(&finished);
                    let unit = Arc::clone(&unit);
                    let last_activation = Arc::clone(&last_activation);
                    thread::spawn(move || {
                        let now = unit.clock.fetch_add(1, Ordering::SeqCst);
                        last_activation.fetch_max(now, Ordering::SeqCst);
                        if gate.activate() {
                            handed.fetch_add(1, Ordering::SeqCst);
                        }
                        finished.fetch_add(1, Ordering::SeqCst);
                    })
                })
                .collect();
            // The executor serves each hand-off once; an activation that coalesced with a
            // running unit is re-queued by `end_run`, not handed over again.
            let mut served = 0;
            let mut spins = 0;
            loop {
                let all_done = finished.load(Ordering::SeqCst) == activators.len();
                if handed.load(Ordering::SeqCst) > served {
                    served += 1;
                    serve(&gate, &unit);
                } else if all_done {
                    break;
                } else {
                    backoff(&mut spins);
                }
            }
            for activator in activators {
                activator.join().unwrap();
            }
            // Anything handed over after the last check is served now.
            while handed.load(Ordering::SeqCst) > served {
                served += 1;
                serve(&gate, &unit);
            }
            assert!(
                unit.last_start.load(Ordering::SeqCst) > last_activation.load(Ordering::SeqCst),
                "the last activation was coalesced into a run that had already begun"
            );
            assert_eq!(
                gate.state.load(Ordering::SeqCst) & (PENDING | QUEUED | RUNNING),
                0,
                "an activation was left unserved"
            );
        });
    }

    /// `detach` on one thread while the executor runs the unit on another: once `detach` has
    /// returned no run is in progress and none starts; the capacity is released exactly once.
    #[test]
    fn no_run_after_detach_returns() {
        model(|| {
            let gate = Arc::new(RunGate::new());
            let unit = probe();
            assert!(gate.activate());
            let executor = {
                let gate = Arc::clone(&gate);
                let unit = Arc::clone(&unit);
                thread::spawn(move || {
                    serve(&gate, &unit);
                    if gate.activate() {
                        serve(&gate, &unit);
                    }
                    gate.try_release()
                })
            };
            assert!(!gate.detach());
            unit.detached.store(true, Ordering::SeqCst);
            assert!(
                !unit.running.load(Ordering::SeqCst),
                "detach returned mid-run"
            );
            let released_by_executor = executor.join().unwrap();
            let released_here = gate.try_release();
            assert!(
                released_by_executor ^ released_here,
                "capacity released twice or never"
            );
        });
    }
}
