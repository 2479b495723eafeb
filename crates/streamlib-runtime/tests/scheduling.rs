//! The runtime adds no gate of its own on top of the dispatcher's: a node's run claims the
//! newest ready tick, so a run with nothing new to do does nothing, however often the node was
//! activated and whether or not its dispatcher coalesces activations.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use streamlib_clock::{ManualClock, Rational};
use streamlib_dispatch::{Activation, DispatchError, Dispatcher, InlineDispatcher, WorkUnit};
use streamlib_ports::MemoryCaps;
use streamlib_runtime::{Stream, StreamRuntime};

/// Runs nothing by itself: counts activations, and the test runs the units (one run per call,
/// never coalescing — within the `Dispatcher` contract).
#[derive(Default)]
struct ManualDispatcher {
    units: Mutex<Vec<Arc<dyn WorkUnit>>>,
    activations: Arc<AtomicUsize>,
}

struct Counted(Arc<AtomicUsize>);

impl Activation for Counted {
    fn activate(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn detach(&self) {}
}

impl Dispatcher for ManualDispatcher {
    fn kind(&self) -> &'static str {
        "manual"
    }
    fn attach(&self, unit: Arc<dyn WorkUnit>) -> Result<Box<dyn Activation>, DispatchError> {
        self.units.lock().unwrap().push(unit);
        Ok(Box::new(Counted(Arc::clone(&self.activations))))
    }
    fn shutdown(&self) {}
}

impl ManualDispatcher {
    /// Waits until at least `n` activations were made.
    fn wait_for_activations(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.activations.load(Ordering::SeqCst) < n {
            assert!(
                Instant::now() < deadline,
                "only {self_n} activations",
                self_n = self.activations.load(Ordering::SeqCst)
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn run(&self, times: usize) {
        let unit = Arc::clone(&self.units.lock().unwrap()[0]);
        for _ in 0..times {
            unit.run();
        }
    }
}

#[test]
fn each_tick_runs_once_however_often_the_node_is_activated() {
    let (clock, ticks) = ManualClock::new(Rational::fps(30));
    let mut rt = StreamRuntime::new(clock);
    let manual = Arc::new(ManualDispatcher::default());
    let src = FrameSource::new(4, 4, MemoryCaps::CPU);
    let (sink, log) = FrameSink::new(MemoryCaps::CPU);
    let (o, i) = (src.out.handle(), sink.input.handle());
    rt.add_stream(Stream::new("src", src).dispatcher(Arc::new(InlineDispatcher::new())))
        .unwrap();
    rt.add_stream(Stream::new("sink", sink).dispatcher(manual.clone()))
        .unwrap();
    rt.connect(&o, &i).unwrap();
    rt.start().unwrap();

    ticks.tick();
    // Activated twice for one tick: by the source's completion, then by the clock thread
    // offering every node the new tick.
    manual.wait_for_activations(2);
    manual.run(5);
    let sink_ticks = |rt: &StreamRuntime| rt.stats().unwrap().stream("sink").unwrap().ticks;
    assert_eq!(
        sink_ticks(&rt),
        1,
        "five runs, one tick ready: one process call"
    );

    let before = manual.activations.load(Ordering::SeqCst);
    ticks.tick();
    manual.wait_for_activations(before + 1);
    manual.run(3);
    assert_eq!(sink_ticks(&rt), 2);
    // No activations for a tick already run: the clock thread's polls offer nothing new.
    let settled = manual.activations.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(60));
    assert_eq!(manual.activations.load(Ordering::SeqCst), settled);

    rt.stop().unwrap();
    let seen = log.seen.lock().unwrap().clone();
    assert_eq!(
        seen.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        [0, 1],
        "{seen:?}"
    );
}
