//! Probes and contract checks shared by the per-dispatcher test files.
#![allow(
    dead_code,
    reason = "each test binary uses a different subset of the helpers"
)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on unexpected errors"
)]

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use streamlib_dispatch::{Activation, Dispatcher, WorkUnit};

/// Generous: only reached when something is broken.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Long enough for a wrongly scheduled extra run to show up.
pub const SETTLE: Duration = Duration::from_millis(30);

type Body = Box<dyn Fn(usize) + Send + Sync>;

/// A unit that counts its runs and runs `body(run_number)` (1-based) in between.
pub struct Probe {
    name: String,
    started: AtomicUsize,
    finished: AtomicUsize,
    body: Body,
}

impl Probe {
    pub fn new(name: &str) -> Arc<Self> {
        Self::with_body(name, |_| {})
    }

    pub fn with_body(name: &str, body: impl Fn(usize) + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self {
            name: name.to_owned(),
            started: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
            body: Box::new(body),
        })
    }

    pub fn started(&self) -> usize {
        self.started.load(Ordering::Acquire)
    }

    pub fn finished(&self) -> usize {
        self.finished.load(Ordering::Acquire)
    }

    /// Waits until `runs` runs have finished (panicking ones included).
    pub fn wait_finished(&self, runs: usize) {
        assert!(
            wait_until(|| self.finished() >= runs),
            "{}: {} of {runs} runs finished before the timeout",
            self.name,
            self.finished()
        );
    }
}

impl WorkUnit for Probe {
    fn run(&self) {
        let run = self.started.fetch_add(1, Ordering::AcqRel) + 1;
        // Counted on drop so that a panicking body still counts as finished.
        let _finished = CountOnDrop(&self.finished);
        (self.body)(run);
    }

    fn name(&self) -> &str {
        &self.name
    }
}

struct CountOnDrop<'a>(&'a AtomicUsize);

impl Drop for CountOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

/// Polls `condition` until it holds or [`TIMEOUT`] passes.
pub fn wait_until(condition: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + TIMEOUT;
    while !condition() {
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_micros(100));
    }
    true
}

/// A gate a run can block on until the test opens it.
#[derive(Default)]
pub struct Latch {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Latch {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }

    pub fn wait(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
    }
}

/// Records which threads ran something and counts, through a thread-local's destructor, how
/// many of them have since exited.
#[derive(Default)]
pub struct ThreadWatch {
    names: Mutex<BTreeSet<String>>,
    exited: Arc<AtomicUsize>,
}

thread_local! {
    static EXIT_FLAG: RefCell<Option<ExitFlag>> = const { RefCell::new(None) };
}

struct ExitFlag(Arc<AtomicUsize>);

impl Drop for ExitFlag {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

impl ThreadWatch {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Call from inside a run.
    pub fn record(&self) {
        let name = thread::current().name().unwrap_or("<unnamed>").to_owned();
        if self.names.lock().unwrap().insert(name) {
            EXIT_FLAG.with(|flag| {
                *flag.borrow_mut() = Some(ExitFlag(Arc::clone(&self.exited)));
            });
        }
    }

    pub fn names(&self) -> BTreeSet<String> {
        self.names.lock().unwrap().clone()
    }

    pub fn exited(&self) -> usize {
        self.exited.load(Ordering::Acquire)
    }
}

/// Activations spaced by waiting for each run: exactly one run each.
pub fn check_runs_once_per_spaced_activation(dispatcher: &dyn Dispatcher) {
    let probe = Probe::new("spaced");
    let activation = dispatcher.attach(probe.clone()).unwrap();
    for expected in 1..=200 {
        activation.activate();
        probe.wait_finished(expected);
    }
    thread::sleep(SETTLE);
    assert_eq!(
        probe.started(),
        200,
        "{}: one run per activation",
        dispatcher.kind()
    );
    activation.detach();
}

/// Two activations during a run buy exactly one more run.
pub fn check_coalesces_while_pending(dispatcher: &dyn Dispatcher) {
    let latch = Latch::new();
    let body_latch = Arc::clone(&latch);
    let probe = Probe::with_body("coalesce", move |run| {
        if run == 1 {
            body_latch.wait();
        }
    });
    let activation = dispatcher.attach(probe.clone()).unwrap();
    thread::scope(|scope| {
        // From another thread: the inline dispatcher runs the unit inside this call.
        scope.spawn(|| activation.activate());
        assert!(wait_until(|| probe.started() == 1));
        activation.activate();
        activation.activate();
        latch.open();
    });
    probe.wait_finished(2);
    thread::sleep(SETTLE);
    assert_eq!(
        probe.started(),
        2,
        "{}: pending activations coalesce",
        dispatcher.kind()
    );
    activation.detach();
}

/// A panicking run neither kills the executor nor the unit.
pub fn check_survives_panicking_run(dispatcher: &dyn Dispatcher) {
    let probe = Probe::with_body("panicky", |run| {
        assert!(run % 2 == 0, "deliberate panic in run {run}");
    });
    let activation = dispatcher.attach(probe.clone()).unwrap();
    for expected in 1..=4 {
        activation.activate();
        probe.wait_finished(expected);
    }
    assert_eq!(
        probe.started(),
        4,
        "{}: runs continue after panics",
        dispatcher.kind()
    );

    // The executor is alive for other units too.
    let other = Probe::new("after-panic");
    let other_activation = dispatcher.attach(other.clone()).unwrap();
    other_activation.activate();
    other.wait_finished(1);
    activation.detach();
    other_activation.detach();
}

/// After detach, activations do nothing; detach waits for a run in progress.
pub fn check_detach_stops_runs(dispatcher: &dyn Dispatcher) {
    let probe = Probe::with_body("detach", |run| {
        if run == 2 {
            thread::sleep(Duration::from_millis(50));
        }
    });
    let activation = dispatcher.attach(probe.clone()).unwrap();
    activation.activate();
    probe.wait_finished(1);

    thread::scope(|scope| {
        scope.spawn(|| activation.activate());
        assert!(wait_until(|| probe.started() == 2));
        activation.detach();
        assert_eq!(
            probe.finished(),
            2,
            "{}: detach returned while a run was in progress",
            dispatcher.kind()
        );
    });

    activation.activate();
    activation.activate();
    activation.detach();
    thread::sleep(SETTLE);
    assert_eq!(
        probe.started(),
        2,
        "{}: no run after detach",
        dispatcher.kind()
    );
}

/// Detaching from inside the unit's own run returns (no self-deadlock) and ends the runs.
pub fn check_detach_from_own_run(dispatcher: &dyn Dispatcher) {
    // The unit reaches its own activation through this; the cycle it makes is leaked on purpose.
    let slot: Arc<OnceLock<Box<dyn Activation>>> = Arc::default();
    let body_slot = Arc::clone(&slot);
    let probe = Probe::with_body("self-detach", move |_| {
        if let Some(activation) = body_slot.get() {
            activation.detach();
        }
    });
    let activation = slot.get_or_init(|| dispatcher.attach(probe.clone()).unwrap());
    thread::scope(|scope| {
        scope.spawn(|| activation.activate());
    });
    probe.wait_finished(1);
    activation.activate();
    thread::sleep(SETTLE);
    assert_eq!(
        probe.started(),
        1,
        "{}: self-detach ends the runs",
        dispatcher.kind()
    );
    activation.detach();
}
