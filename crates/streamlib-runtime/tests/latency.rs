//! A frame produced on tick N crosses a chain of handlers on tick N, on every dispatcher.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::sync::Arc;

use common::*;
use streamlib_clock::{ManualClock, Rational};
use streamlib_dispatch::{
    DedicatedThreadDispatcher, Dispatcher, InlineDispatcher, ThreadPoolDispatcher,
};
use streamlib_ports::MemoryCaps;
use streamlib_runtime::{Stream, StreamRuntime};

#[allow(
    clippy::needless_pass_by_value,
    reason = "callers build the dispatcher inline"
)]
fn chain_of_five(dispatcher: Option<Arc<dyn Dispatcher>>) {
    let dispatcher = dispatcher.as_ref();
    let (clock, ticks) = ManualClock::new(Rational::fps(30));
    let mut rt = StreamRuntime::new(clock);
    let source = FrameSource::new(16, 16, MemoryCaps::CPU);
    let mut prev = source.out.handle();
    let with = |s: Stream| match dispatcher {
        Some(d) => s.dispatcher(Arc::clone(d)),
        None => s,
    };
    rt.add_stream(with(Stream::new("source", source))).unwrap();
    for i in 0..5 {
        let p = PassThrough::new(MemoryCaps::CPU);
        let (input, out) = (p.input.handle(), p.out.handle());
        rt.add_stream(with(Stream::new(format!("pass{i}"), p)))
            .unwrap();
        rt.connect(&prev, &input).unwrap();
        prev = out;
    }
    let (sink, log) = FrameSink::new(MemoryCaps::CPU);
    let input = sink.input.handle();
    rt.add_stream(with(Stream::new("sink", sink))).unwrap();
    rt.connect(&prev, &input).unwrap();
    rt.start().unwrap();
    pump(&rt, &ticks, 0, 20);
    let stats = rt.stop().unwrap();
    let seen = log.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 20, "{seen:?}");
    for (tick, frame) in seen {
        assert_eq!(tick, frame, "frame {frame} reached the sink on tick {tick}");
    }
    for s in &stats.streams {
        assert_eq!(s.ticks, 20, "{}", s.id);
        assert_eq!(s.total_drops(), 0, "{}", s.id);
    }
}

#[test]
fn same_tick_on_default_pool() {
    chain_of_five(None);
}

#[test]
fn same_tick_inline() {
    chain_of_five(Some(Arc::new(InlineDispatcher::new())));
}

#[test]
fn same_tick_thread_pool_two_workers() {
    chain_of_five(Some(Arc::new(ThreadPoolDispatcher::new(2))));
}

#[test]
fn same_tick_dedicated_threads() {
    chain_of_five(Some(Arc::new(DedicatedThreadDispatcher::new())));
}

#[cfg(feature = "async")]
#[test]
fn same_tick_async() {
    let d = streamlib_dispatch::AsyncDispatcher::new(2).unwrap();
    chain_of_five(Some(Arc::new(d)));
}
