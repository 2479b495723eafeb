//! After warm-up, a 5-handler pipeline passing pooled 1920×1080 RGBA frames allocates nothing:
//! not in the ring buffers, not in scheduling, not in the dispatchers, not in the clock.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use streamlib_test_support::{CountingAllocator, allocations};

use common::*;
use streamlib_clock::{ManualClock, Rational};
use streamlib_dispatch::{Dispatcher, InlineDispatcher, ThreadPoolDispatcher};
use streamlib_ports::MemoryCaps;
use streamlib_runtime::{Stream, StreamRuntime};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations_over_1000_ticks(dispatcher: Arc<dyn Dispatcher>) -> u64 {
    let (clock, ticks) = ManualClock::new(Rational::fps(60));
    let mut rt = StreamRuntime::new(clock);
    rt.set_default_dispatcher(dispatcher);
    let src = FrameSource::new(1920, 1080, MemoryCaps::CPU);
    let pool = src.pool.clone();
    let mut prev = src.out.handle();
    rt.add_stream(Stream::new("source", src)).unwrap();
    for i in 0..3 {
        let p = PassThrough::new(MemoryCaps::CPU);
        let (input, out) = (p.input.handle(), p.out.handle());
        rt.add_stream(Stream::new(format!("pass{i}"), p)).unwrap();
        rt.connect(&prev, &input).unwrap();
        prev = out;
    }
    let (mut sink, log) = FrameSink::new(MemoryCaps::CPU);
    sink.record = false;
    let input = sink.input.handle();
    rt.add_stream(Stream::new("sink", sink)).unwrap();
    rt.connect(&prev, &input).unwrap();
    rt.start().unwrap();

    pump(&rt, &ticks, 0, 100);
    let before = allocations();
    pump(&rt, &ticks, 100, 1000);
    let allocated = allocations() - before;

    let stats = rt.stop().unwrap();
    assert_eq!(log.received.load(Ordering::SeqCst), 1100);
    assert_eq!(stats.stream("sink").unwrap().total_drops(), 0);
    assert_eq!(pool.pool().grown(), 0, "the frame pool never had to grow");
    allocated
}

#[test]
fn steady_state_allocates_nothing() {
    // One test function: the counter is process-wide, so the cases must not overlap.
    let pool = allocations_over_1000_ticks(Arc::new(ThreadPoolDispatcher::new(2)));
    let inline = allocations_over_1000_ticks(Arc::new(InlineDispatcher::new()));
    assert_eq!(
        (pool, inline),
        (0, 0),
        "allocations over 1000 ticks (threadpool, inline)"
    );
}
