//! End of stream propagates downstream; `run` returns once every sink has drained.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use streamlib_clock::{FreeRunningClock, Limited, ManualClock, Rational, SoftwareClock};
use streamlib_ports::*;
use streamlib_runtime::{Stream, StreamRuntime, StreamState};

#[test]
fn source_end_drains_and_run_returns() {
    let mut rt = StreamRuntime::new(FreeRunningClock::new(Rational::fps(30)));
    let mut src = FrameSource::new(8, 8, MemoryCaps::CPU);
    src.limit = Some(50);
    let pass = PassThrough::new(MemoryCaps::CPU);
    let (sink, log) = FrameSink::new(MemoryCaps::CPU);
    let (so, pi, po, si) = (
        src.out.handle(),
        pass.input.handle(),
        pass.out.handle(),
        sink.input.handle(),
    );
    rt.add_stream(Stream::new("src", src)).unwrap();
    rt.add_stream(Stream::new("pass", pass)).unwrap();
    rt.add_stream(Stream::new("sink", sink)).unwrap();
    rt.connect(&so, &pi).unwrap();
    rt.connect(&po, &si).unwrap();
    let started = Instant::now();
    let stats = rt.run().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    // Free-running pacing waits for each tick to cross the graph: nothing is dropped.
    assert_eq!(log.received.load(Ordering::SeqCst), 50);
    assert_eq!(
        log.final_calls.load(Ordering::SeqCst),
        1,
        "one final, draining call"
    );
    for id in ["src", "pass", "sink"] {
        assert_eq!(stats.stream(id).unwrap().state, StreamState::Ended, "{id}");
    }
    assert_eq!(stats.stream("sink").unwrap().total_drops(), 0);
    assert_eq!(log.stops.load(Ordering::SeqCst), 1);
}

#[test]
fn a_clock_that_ends_ends_the_sources() {
    let (clock, ticks) = ManualClock::new(Rational::fps(30));
    let mut rt = StreamRuntime::new(clock);
    let src = FrameSource::new(8, 8, MemoryCaps::CPU);
    let (sink, log) = FrameSink::new(MemoryCaps::CPU);
    let (o, i) = (src.out.handle(), sink.input.handle());
    rt.add_stream(Stream::new("src", src)).unwrap();
    rt.add_stream(Stream::new("sink", sink)).unwrap();
    rt.connect(&o, &i).unwrap();
    rt.start().unwrap();
    ticks.tick_n(3);
    ticks.end();
    let stats = rt.run().unwrap();
    assert_eq!(log.received.load(Ordering::SeqCst), 3);
    assert_eq!(stats.stream("sink").unwrap().state, StreamState::Ended);
}

/// A tick the clock delivered just before it ended is produced or counted as skipped, never
/// lost: the end must not overtake it while the source is busy (`--frames 90` made 89).
#[test]
fn the_last_tick_before_the_end_is_not_lost() {
    struct Slow(FrameSource);
    impl StreamHandler for Slow {
        fn ports(&self) -> Ports {
            self.0.ports()
        }
        fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
            // Longer than a tick: the next tick, and the end, arrive while it works.
            std::thread::sleep(Duration::from_millis(15));
            self.0.process(ctx)
        }
    }
    for _ in 0..3 {
        let clock = Limited::new(SoftwareClock::new(Rational::fps(100)), 4);
        let mut rt = StreamRuntime::new(clock);
        let src = Slow(FrameSource::new(8, 8, MemoryCaps::CPU));
        let (sink, _log) = FrameSink::new(MemoryCaps::CPU);
        let (o, i) = (src.0.out.handle(), sink.input.handle());
        rt.add_stream(Stream::new("src", src)).unwrap();
        rt.add_stream(Stream::new("sink", sink)).unwrap();
        rt.connect(&o, &i).unwrap();
        let stats = rt.run().unwrap();
        let src = stats.stream("src").unwrap();
        // Each of the 4 ticks is produced, or skipped and counted while it was late.
        assert_eq!(src.items_out + src.skipped_ticks, 4, "{stats}");
    }
}

#[test]
fn ordered_data_is_drained_in_order_at_the_end() {
    struct Collect {
        input: InputPort<DataMessage>,
        got: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    }
    impl StreamHandler for Collect {
        fn ports(&self) -> Ports {
            Ports::new().input(&self.input)
        }
        fn process(&mut self, _: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
            while let Some(m) = self.input.recv() {
                self.got
                    .lock()
                    .unwrap()
                    .push(m.as_text().unwrap().to_owned());
            }
            Ok(())
        }
    }
    let mut rt = StreamRuntime::new(FreeRunningClock::new(Rational::fps(30)).with_limit(100));
    let src = DataSource {
        out: OutputPort::new("data", MemoryCaps::CPU),
    };
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let collect = Collect {
        input: InputPort::new("data", MemoryCaps::CPU),
        got: got.clone(),
    };
    assert_eq!(
        collect.input.delivery(),
        DeliveryMode::Ordered { capacity: 64 }
    );
    let (o, i) = (src.out.handle(), collect.input.handle());
    rt.add_stream(Stream::new("src", src)).unwrap();
    rt.add_stream(Stream::new("collect", collect)).unwrap();
    rt.connect(&o, &i).unwrap();
    rt.run().unwrap();
    let expected: Vec<String> = (0..100).map(|n| n.to_string()).collect();
    assert_eq!(*got.lock().unwrap(), expected);
}
