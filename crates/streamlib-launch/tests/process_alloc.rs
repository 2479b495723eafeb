//! The parent's side of `@process` allocates nothing per frame once warm: the proxy lends
//! each frame's slot, sends a fixed-size message, waits for the answer and publishes the same
//! slot, with no allocation on the way (a counting global allocator, as for the in-process
//! pipeline in `streamlib-runtime/tests/zero_alloc.rs`).
#![cfg(feature = "process")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod support;

use std::time::Duration;

use streamlib_clock::{ManualClock, Rational};
use streamlib_launch::{BuiltPipeline, Registry, build, parse};
use streamlib_runtime::StreamRuntime;
use streamlib_test_support::{CountingAllocator, allocations};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// The child's entry: does nothing unless this process was started as a worker.
#[test]
fn worker_entry() {
    support::serve_if_worker();
}

fn pump(runtime: &StreamRuntime, ticks: &streamlib_clock::ManualClockHandle, from: u64, n: u64) {
    for k in 1..=n {
        ticks.tick();
        assert!(
            runtime.wait_for_ticks(from + k, Duration::from_secs(10)),
            "tick {} did not complete",
            from + k
        );
    }
}

#[test]
fn the_parent_side_allocates_nothing_per_frame() {
    support::worker_options().install();
    let (clock, ticks) = ManualClock::new(Rational::fps(30));
    let BuiltPipeline { mut runtime, .. } = build(
        &Registry::builtin(),
        &parse("testpattern size=1920x1080 ! identity name=id @process ! null name=sink").unwrap(),
        StreamRuntime::new(clock),
    )
    .unwrap();
    runtime.start().unwrap();
    // Warm-up: the child spawns at the first tick, pools fill.
    pump(&runtime, &ticks, 0, 30);
    let before = allocations();
    pump(&runtime, &ticks, 30, 300);
    let allocated = allocations() - before;
    let stats = runtime.stop().unwrap();
    let id = stats.stream("id").unwrap();
    assert_eq!((id.errors, id.restarts), (0, 0), "{stats}");
    assert!(id.items_out >= 320, "{stats}");
    assert_eq!(allocated, 0, "allocations in 300 ticks through the child");
}
