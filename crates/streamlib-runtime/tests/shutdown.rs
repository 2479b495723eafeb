//! Shutdown: `on_stop` exactly once per handler, every thread joined, nothing leaked.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use streamlib_clock::{Rational, SoftwareClock};
use streamlib_dispatch::{DedicatedThreadDispatcher, ThreadPoolDispatcher};
use streamlib_ports::*;
use streamlib_runtime::{Stream, StreamRuntime};

/// Thread counts are process-wide: the tests of this file must not overlap.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn stop_joins_threads_calls_on_stop_once_and_releases_frames() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let before = thread_count();
    let mut rt = StreamRuntime::new(SoftwareClock::new(Rational::fps(120)));
    let src = FrameSource::new(64, 64, MemoryCaps::CPU);
    let pool = src.pool.clone();
    let pass = PassThrough::new(MemoryCaps::CPU);
    let (sink_a, log_a) = FrameSink::new(MemoryCaps::CPU);
    let (sink_b, log_b) = FrameSink::new(MemoryCaps::CPU);
    let (so, pi, po, ai, bi) = (
        src.out.handle(),
        pass.input.handle(),
        pass.out.handle(),
        sink_a.input.handle(),
        sink_b.input.handle(),
    );
    rt.add_stream(Stream::new("src", src)).unwrap();
    rt.add_stream(Stream::new("pass", pass).dispatcher(Arc::new(DedicatedThreadDispatcher::new())))
        .unwrap();
    rt.add_stream(Stream::new("a", sink_a).dispatcher(Arc::new(ThreadPoolDispatcher::new(2))))
        .unwrap();
    rt.add_stream(Stream::new("b", sink_b)).unwrap();
    rt.connect(&so, &pi).unwrap();
    rt.connect(&po, &ai).unwrap();
    rt.connect(&so, &bi).unwrap();
    rt.start().unwrap();
    assert!(thread_count() > before);
    std::thread::sleep(Duration::from_millis(200));
    let stats = rt.stop().unwrap();
    assert!(stats.stream("b").unwrap().ticks > 5, "{stats}");
    for log in [&log_a, &log_b] {
        assert_eq!(log.starts.load(Ordering::SeqCst), 1);
        assert_eq!(log.stops.load(Ordering::SeqCst), 1);
    }
    drop(rt);
    // Port handles keep their ring (and the frames in it) alive; let them go too.
    drop((so, pi, po, ai, bi));
    // The runtime's pool, the dedicated thread and the user's pool (dropped with the
    // runtime) are gone.
    let mut after = thread_count();
    for _ in 0..100 {
        if after <= before {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        after = thread_count();
    }
    assert!(after <= before, "threads before {before}, after {after}");
    // Every pooled frame came back: nothing holds a frame after the runtime is gone.
    assert_eq!(pool.pool().available(), pool.pool().allocated());
}

#[test]
fn handle_stops_run_from_another_thread() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut rt = StreamRuntime::new(SoftwareClock::new(Rational::fps(100)));
    let src = FrameSource::new(8, 8, MemoryCaps::CPU);
    let (sink, log) = FrameSink::new(MemoryCaps::CPU);
    let (o, i) = (src.out.handle(), sink.input.handle());
    rt.add_stream(Stream::new("src", src)).unwrap();
    rt.add_stream(Stream::new("sink", sink)).unwrap();
    rt.connect(&o, &i).unwrap();
    let handle = rt.handle();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(150));
        assert!(handle.stats().is_some());
        handle.stop();
    });
    let stats = rt.run().unwrap();
    stopper.join().unwrap();
    assert!(stats.clock_ticks >= 5, "{stats}");
    assert_eq!(log.stops.load(Ordering::SeqCst), 1);
}

/// Asks the runtime to stop on its fifth call, as a display does when its window closes.
struct StopAfterFive {
    input: InputPort<VideoFrame>,
    calls: u64,
}

impl StreamHandler for StopAfterFive {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input)
    }
    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        self.calls += 1;
        if self.calls == 5 {
            ctx.request_stop();
        }
        Ok(())
    }
}

#[test]
fn a_handler_can_stop_the_runtime() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut rt = StreamRuntime::new(SoftwareClock::new(Rational::fps(200)));
    let src = FrameSource::new(8, 8, MemoryCaps::CPU);
    let sink = StopAfterFive {
        input: InputPort::new("video", MemoryCaps::CPU),
        calls: 0,
    };
    let (o, i) = (src.out.handle(), sink.input.handle());
    rt.add_stream(Stream::new("src", src)).unwrap();
    rt.add_stream(Stream::new("sink", sink)).unwrap();
    rt.connect(&o, &i).unwrap();
    let started = std::time::Instant::now();
    let stats = rt.run().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    let ticks = stats.stream("sink").unwrap().ticks;
    assert!((5..=10).contains(&ticks), "{ticks}");
    // Tick-to-done latency is measured for every stream.
    assert!(stats.stream("sink").unwrap().latency_p99 > Duration::ZERO);
}
