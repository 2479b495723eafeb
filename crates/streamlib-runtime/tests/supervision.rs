//! Failures are contained: errors and panics follow the restart policy, with backoff and a cap,
//! and the rest of the pipeline keeps running.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use streamlib_clock::{ManualClock, Rational, SoftwareClock};
use streamlib_ports::*;
use streamlib_runtime::{Backoff, RestartPolicy, Stream, StreamRuntime, StreamState};

/// Fails on chosen ticks, by error or by panic; counts its lifecycle calls.
struct Flaky {
    input: InputPort<VideoFrame>,
    out: OutputPort<VideoFrame>,
    fail_on: Vec<u64>,
    panic: bool,
    starts: Arc<AtomicUsize>,
    stops: Arc<AtomicUsize>,
}

impl StreamHandler for Flaky {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input).output(&self.out)
    }
    fn on_start(&mut self, _: &StartContext<'_>) -> Result<(), HandlerError> {
        self.starts.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        if self.fail_on.contains(&ctx.tick().frame_number) {
            if self.panic {
                panic!("boom on frame {}", ctx.tick().frame_number);
            }
            return Err(HandlerError::msg("decoder lost sync"));
        }
        if let Some(f) = self.input.recv() {
            self.out.write(f);
        }
        Ok(())
    }
    fn on_stop(&mut self) -> Result<(), HandlerError> {
        self.stops.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

struct Built {
    rt: StreamRuntime,
    starts: Arc<AtomicUsize>,
    stops: Arc<AtomicUsize>,
    log: Arc<SinkLog>,
    other: Arc<SinkLog>,
}

/// source → flaky → sink, plus source → other (a branch that must keep running).
fn build(
    clock: impl streamlib_clock::Clock,
    fail_on: Vec<u64>,
    panic: bool,
    policy: RestartPolicy,
) -> Built {
    let mut rt = StreamRuntime::new(clock);
    let src = FrameSource::new(8, 8, MemoryCaps::CPU);
    let starts = Arc::new(AtomicUsize::new(0));
    let stops = Arc::new(AtomicUsize::new(0));
    let flaky = Flaky {
        input: InputPort::new("video", MemoryCaps::CPU),
        out: OutputPort::new("video", MemoryCaps::CPU),
        fail_on,
        panic,
        starts: Arc::clone(&starts),
        stops: Arc::clone(&stops),
    };
    let (sink, log) = FrameSink::new(MemoryCaps::CPU);
    let (other, other_log) = FrameSink::new(MemoryCaps::CPU);
    let (so, fi, fo, si, oi) = (
        src.out.handle(),
        flaky.input.handle(),
        flaky.out.handle(),
        sink.input.handle(),
        other.input.handle(),
    );
    rt.add_stream(Stream::new("src", src)).unwrap();
    rt.add_stream(Stream::new("flaky", flaky).restart_policy(policy))
        .unwrap();
    rt.add_stream(Stream::new("sink", sink)).unwrap();
    rt.add_stream(Stream::new("other", other)).unwrap();
    rt.connect(&so, &fi).unwrap();
    rt.connect(&fo, &si).unwrap();
    rt.connect(&so, &oi).unwrap();
    Built {
        rt,
        starts,
        stops,
        log,
        other: other_log,
    }
}

#[test]
fn never_policy_leaves_it_failed_and_the_rest_running() {
    let (clock, ticks) = ManualClock::new(Rational::fps(30));
    let mut b = build(clock, vec![2], false, RestartPolicy::Never);
    b.rt.start().unwrap();
    pump(&b.rt, &ticks, 0, 6);
    let stats = b.rt.stop().unwrap();
    let flaky = stats.stream("flaky").unwrap();
    assert_eq!(flaky.state, StreamState::Failed);
    assert_eq!((flaky.errors, flaky.ticks), (1, 3));
    // The stats name what failed and why, so callers can exit non-zero saying so.
    let failed: Vec<_> = stats.failed().map(|s| s.id.as_str()).collect();
    assert_eq!(failed, ["flaky"]);
    assert_eq!(flaky.last_error.as_deref(), Some("decoder lost sync"));
    assert!(
        stats
            .to_string()
            .contains("flaky (Flaky) failed: decoder lost sync"),
        "{stats}"
    );
    assert_eq!(b.other.received.load(Ordering::SeqCst), 6);
    assert_eq!(b.log.received.load(Ordering::SeqCst), 2);
    // Stopped once, at the failure; not again at shutdown.
    assert_eq!(b.starts.load(Ordering::SeqCst), 1);
    assert_eq!(b.stops.load(Ordering::SeqCst), 1);
}

#[test]
fn a_panic_is_contained_and_restarted_on_failure() {
    let (clock, ticks) = ManualClock::new(Rational::fps(30));
    let backoff = Backoff {
        initial: Duration::ZERO,
        factor: 1.0,
        max: Duration::ZERO,
        max_restarts: Some(5),
        ..Backoff::default()
    };
    let mut b = build(clock, vec![1, 3], true, RestartPolicy::OnFailure(backoff));
    b.rt.start().unwrap();
    pump(&b.rt, &ticks, 0, 8);
    let stats = b.rt.stop().unwrap();
    let flaky = stats.stream("flaky").unwrap();
    assert_eq!(flaky.panics, 2);
    assert_eq!(flaky.restarts, 2);
    assert_eq!(flaky.state, StreamState::Stopped);
    assert_eq!(b.starts.load(Ordering::SeqCst), 3);
    assert_eq!(
        b.stops.load(Ordering::SeqCst),
        3,
        "on_stop pairs with every on_start"
    );
    assert_eq!(b.other.received.load(Ordering::SeqCst), 8);
    // The sink saw every frame the flaky stage forwarded, on the same tick.
    let seen = b.log.seen.lock().unwrap().clone();
    assert!(seen.iter().all(|(t, f)| t == f), "{seen:?}");
    assert!(seen.len() >= 4, "{seen:?}");
}

#[test]
fn restarts_back_off_and_stop_at_the_cap() {
    // A real clock so backoff delays play out in time: fails on every tick.
    let clock = SoftwareClock::new(Rational::fps(200));
    let backoff = Backoff {
        initial: Duration::from_millis(20),
        factor: 2.0,
        max: Duration::from_millis(80),
        max_restarts: Some(3),
        ..Backoff::default()
    };
    let mut b = build(
        clock,
        (0..100_000).collect(),
        false,
        RestartPolicy::OnFailure(backoff),
    );
    let started = Instant::now();
    b.rt.start().unwrap();
    let handle = b.rt.handle();
    while handle
        .stats()
        .and_then(|s| s.stream("flaky").map(|f| f.state))
        != Some(StreamState::Failed)
    {
        assert!(started.elapsed() < Duration::from_secs(10), "never gave up");
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = started.elapsed();
    let stats = b.rt.stop().unwrap();
    let flaky = stats.stream("flaky").unwrap();
    assert_eq!(flaky.restarts, 3);
    assert_eq!(
        flaky.errors, 4,
        "one failure per life: initial run plus three restarts"
    );
    // 20 + 40 + 80 ms of backoff at least.
    assert!(elapsed >= Duration::from_millis(140), "{elapsed:?}");
    assert!(b.other.received.load(Ordering::SeqCst) > 0);
}

#[test]
fn a_stream_that_stays_up_between_failures_is_restarted_past_the_cap_without_backing_off() {
    // Fails on every 40th tick at 200 fps: up some 180 ms each time (the 20 ms restart delay
    // skips 4 ticks), longer than `reset_after`, so no failure is part of a crash loop: the
    // cap of 2 restarts in a row is never reached and each restart waits only the initial
    // delay (a crash loop would wait 20, 200, 2000 ms).
    let clock = SoftwareClock::new(Rational::fps(200));
    let backoff = Backoff {
        initial: Duration::from_millis(20),
        factor: 10.0,
        max: Duration::from_secs(5),
        max_restarts: Some(2),
        reset_after: Duration::from_millis(60),
    };
    let fail_on = (1..100_000).map(|n| n * 40).collect();
    let mut b = build(clock, fail_on, false, RestartPolicy::OnFailure(backoff));
    let started = Instant::now();
    b.rt.start().unwrap();
    let handle = b.rt.handle();
    let restarts = || {
        handle
            .stats()
            .and_then(|s| s.stream("flaky").map(|f| (f.restarts, f.state)))
    };
    while restarts().is_none_or(|(n, _)| n < 5) {
        assert_ne!(
            restarts().map(|(_, state)| state),
            Some(StreamState::Failed),
            "gave up though it stayed up between failures"
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            restarts()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = started.elapsed();
    let stats = b.rt.stop().unwrap();
    let flaky = stats.stream("flaky").unwrap();
    assert!(flaky.restarts >= 5, "{flaky:?}");
    // Six lives of ~200 ms; had the delay grown (20 ms, 200 ms, 2 s, 5 s) this would take
    // over 7 s, and the cap would have ended it at the third failure.
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
}

/// A handler whose restarts fail in `on_start` is a crash loop however long the backoff
/// grows: the cap still ends it (the time spent waiting is not time up).
#[test]
fn failing_restarts_reach_the_cap_even_when_the_backoff_outgrows_reset_after() {
    struct FailsToRestart {
        input: InputPort<VideoFrame>,
        starts: u32,
    }
    impl StreamHandler for FailsToRestart {
        fn ports(&self) -> Ports {
            Ports::new().input(&self.input)
        }
        fn on_start(&mut self, _: &StartContext<'_>) -> Result<(), HandlerError> {
            self.starts += 1;
            if self.starts > 1 {
                return Err(HandlerError::msg("device gone"));
            }
            Ok(())
        }
        fn process(&mut self, _: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
            Err(HandlerError::msg("lost"))
        }
    }
    let clock = SoftwareClock::new(Rational::fps(200));
    let mut rt = StreamRuntime::new(clock);
    let src = FrameSource::new(8, 8, MemoryCaps::CPU);
    let sink = FailsToRestart {
        input: InputPort::new("video", MemoryCaps::CPU),
        starts: 0,
    };
    let (o, i) = (src.out.handle(), sink.input.handle());
    // Delays 20 ms, then 100 ms: each longer than `reset_after` (10 ms).
    let backoff = Backoff {
        initial: Duration::from_millis(20),
        factor: 5.0,
        max: Duration::from_secs(1),
        max_restarts: Some(2),
        reset_after: Duration::from_millis(10),
    };
    rt.add_stream(Stream::new("src", src)).unwrap();
    rt.add_stream(Stream::new("dev", sink).restart_policy(RestartPolicy::OnFailure(backoff)))
        .unwrap();
    rt.connect(&o, &i).unwrap();
    rt.start().unwrap();
    let handle = rt.handle();
    let started = Instant::now();
    while handle
        .stats()
        .and_then(|s| s.stream("dev").map(|f| f.state))
        != Some(StreamState::Failed)
    {
        assert!(started.elapsed() < Duration::from_secs(10), "never gave up");
        std::thread::sleep(Duration::from_millis(5));
    }
    rt.stop().unwrap();
}

#[test]
fn always_policy_restarts_a_source_that_ended() {
    let (clock, ticks) = ManualClock::new(Rational::fps(30));
    let mut rt = StreamRuntime::new(clock);
    let mut src = FrameSource::new(4, 4, MemoryCaps::CPU);
    src.limit = Some(2);
    let (sink, log) = FrameSink::new(MemoryCaps::CPU);
    let (o, i) = (src.out.handle(), sink.input.handle());
    let backoff = Backoff {
        initial: Duration::ZERO,
        factor: 1.0,
        max: Duration::ZERO,
        max_restarts: None,
        ..Backoff::default()
    };
    rt.add_stream(Stream::new("src", src).restart_policy(RestartPolicy::Always(backoff)))
        .unwrap();
    rt.add_stream(Stream::new("sink", sink)).unwrap();
    rt.connect(&o, &i).unwrap();
    rt.start().unwrap();
    pump(&rt, &ticks, 0, 6);
    let stats = rt.stop().unwrap();
    assert!(stats.stream("src").unwrap().restarts >= 1);
    assert!(!rt.is_finished() || stats.stream("sink").unwrap().state != StreamState::Ended);
    assert!(log.received.load(Ordering::SeqCst) >= 4);
}

/// Panics in `process` on frame 1, then in the `on_start` of its first restart.
struct PanicsThenRefusesRestart {
    input: InputPort<VideoFrame>,
    starts: Arc<AtomicUsize>,
    stops: Arc<AtomicUsize>,
}

impl StreamHandler for PanicsThenRefusesRestart {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input)
    }
    fn on_start(&mut self, _: &StartContext<'_>) -> Result<(), HandlerError> {
        if self.starts.fetch_add(1, Ordering::SeqCst) == 1 {
            panic!("restart refused");
        }
        Ok(())
    }
    fn process(&mut self, ctx: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        while self.input.recv().is_some() {}
        if ctx.tick().frame_number == 1 && self.starts.load(Ordering::SeqCst) == 1 {
            panic!("boom on frame 1");
        }
        Ok(())
    }
    fn on_stop(&mut self) -> Result<(), HandlerError> {
        self.stops.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// The dispatcher's one `catch_unwind` hands a run's panic back to the runtime, on every
/// dispatcher: a panic in `process` counts as a panic, one in a restart's `on_start` as an
/// error, both follow the restart policy, and `on_stop` pairs with every successful `on_start`.
#[test]
fn panics_in_process_and_restart_are_supervised_on_every_dispatcher() {
    use streamlib_dispatch::{
        DedicatedThreadDispatcher, Dispatcher, InlineDispatcher, ThreadPoolDispatcher,
    };
    let dispatchers: Vec<Arc<dyn Dispatcher>> = vec![
        Arc::new(InlineDispatcher::new()),
        Arc::new(ThreadPoolDispatcher::new(2)),
        Arc::new(DedicatedThreadDispatcher::new()),
    ];
    for dispatcher in dispatchers {
        let kind = dispatcher.kind();
        let (clock, ticks) = ManualClock::new(Rational::fps(30));
        let mut rt = StreamRuntime::new(clock);
        rt.set_default_dispatcher(Arc::clone(&dispatcher));
        let src = FrameSource::new(4, 4, MemoryCaps::CPU);
        let starts = Arc::new(AtomicUsize::new(0));
        let stops = Arc::new(AtomicUsize::new(0));
        let sink = PanicsThenRefusesRestart {
            input: InputPort::new("video", MemoryCaps::CPU),
            starts: Arc::clone(&starts),
            stops: Arc::clone(&stops),
        };
        let (o, i) = (src.out.handle(), sink.input.handle());
        let backoff = Backoff {
            initial: Duration::ZERO,
            factor: 1.0,
            max: Duration::ZERO,
            max_restarts: Some(5),
            ..Backoff::default()
        };
        rt.add_stream(Stream::new("src", src)).unwrap();
        rt.add_stream(Stream::new("sink", sink).restart_policy(RestartPolicy::OnFailure(backoff)))
            .unwrap();
        rt.connect(&o, &i).unwrap();
        rt.start().unwrap();
        pump(&rt, &ticks, 0, 3);
        // A restarting stream does not hold a tick's wave back, so its restart may lag the
        // clock on a threaded dispatcher: tick until it happened.
        let mut issued = 3;
        while rt.stats().unwrap().stream("sink").unwrap().restarts == 0 {
            assert!(issued < 500, "{kind}: never restarted");
            pump(&rt, &ticks, issued, 1);
            issued += 1;
        }
        let stats = rt.stop().unwrap();
        dispatcher.shutdown();
        let s = stats.stream("sink").unwrap();
        assert_eq!((s.panics, s.errors, s.restarts), (1, 1, 1), "{kind}: {s:?}");
        assert_eq!(
            s.last_error.as_deref(),
            Some("panicked: restart refused"),
            "{kind}"
        );
        assert_eq!(s.state, StreamState::Stopped, "{kind}");
        assert_eq!(starts.load(Ordering::SeqCst), 3, "{kind}");
        assert_eq!(
            stops.load(Ordering::SeqCst),
            2,
            "{kind}: on_stop after the panic and at stop"
        );
        assert_eq!(stats.stream("src").unwrap().ticks, issued, "{kind}");
    }
}
