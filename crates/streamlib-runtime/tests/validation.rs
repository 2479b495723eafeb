//! Validation before start: every bad graph is a clear error.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::*;
use streamlib_clock::{ManualClock, Rational};
use streamlib_ports::*;
use streamlib_runtime::{RuntimeError, Stream, StreamRuntime};

fn runtime() -> StreamRuntime {
    StreamRuntime::new(ManualClock::new(Rational::fps(30)).0)
}

#[test]
fn empty_runtime() {
    assert!(matches!(runtime().start(), Err(RuntimeError::Empty)));
}

#[test]
fn duplicate_and_invalid_ids() {
    let mut rt = runtime();
    rt.add_stream(Stream::new("a", FrameSource::new(4, 4, MemoryCaps::CPU)))
        .unwrap();
    let err = rt
        .add_stream(Stream::new("a", FrameSource::new(4, 4, MemoryCaps::CPU)))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "a stream with id 'a' was already added; stream ids must be unique"
    );
    let err = rt
        .add_stream(Stream::new("a.b", FrameSource::new(4, 4, MemoryCaps::CPU)))
        .unwrap_err();
    assert!(matches!(err, RuntimeError::InvalidStreamId { .. }));
}

#[test]
fn unconnected_required_input() {
    let mut rt = runtime();
    let (sink, _) = FrameSink::new(MemoryCaps::CPU);
    rt.add_stream(Stream::new("sink", sink)).unwrap();
    assert_eq!(
        rt.start().unwrap_err().to_string(),
        "input 'video' of stream 'sink' is not connected (mark it optional or connect it)"
    );
}

#[test]
fn optional_input_may_stay_unconnected() {
    let mut rt = runtime();
    let (mut sink, _) = FrameSink::new(MemoryCaps::CPU);
    sink.input = InputPort::new("video", MemoryCaps::CPU).optional();
    rt.add_stream(Stream::new("sink", sink)).unwrap();
    rt.start().unwrap();
    rt.stop().unwrap();
}

#[test]
fn cycles_are_named() {
    let mut rt = runtime();
    let src = FrameSource::new(4, 4, MemoryCaps::CPU);
    let a = PassThrough::new(MemoryCaps::CPU);
    let b = PassThrough::new(MemoryCaps::CPU);
    // a's input takes b's output, b's input takes a's output: a loop beside the source.
    let (ai, ao, bi, bo) = (
        a.input.handle(),
        a.out.handle(),
        b.input.handle(),
        b.out.handle(),
    );
    rt.add_stream(Stream::new("src", src)).unwrap();
    rt.add_stream(Stream::new("a", a)).unwrap();
    rt.add_stream(Stream::new("b", b)).unwrap();
    rt.connect(&ao, &bi).unwrap();
    rt.connect(&bo, &ai).unwrap();
    assert_eq!(
        rt.start().unwrap_err().to_string(),
        "the pipeline has a cycle through streams: a, b"
    );
}

#[test]
fn lifecycle_misuse_is_an_error() {
    let mut rt = runtime();
    assert!(matches!(rt.stop(), Err(RuntimeError::InvalidState { .. })));
    rt.add_stream(Stream::new("src", FrameSource::new(4, 4, MemoryCaps::CPU)))
        .unwrap();
    rt.start().unwrap();
    assert!(matches!(rt.start(), Err(RuntimeError::InvalidState { .. })));
    let err = rt
        .add_stream(Stream::new("late", FrameSource::new(4, 4, MemoryCaps::CPU)))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot add a stream: the runtime is running"
    );
    rt.stop().unwrap();
    // Stopping twice returns the same final stats.
    rt.stop().unwrap();
}

struct FailsToStart;
impl StreamHandler for FailsToStart {
    fn ports(&self) -> Ports {
        Ports::new()
    }
    fn on_start(&mut self, _: &StartContext<'_>) -> Result<(), HandlerError> {
        Err(HandlerError::msg("camera /dev/video9 not found"))
    }
    fn process(&mut self, _: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        Ok(())
    }
}

#[test]
fn failing_on_start_names_the_stream_and_rolls_back() {
    let mut rt = runtime();
    let (mut sink, log) = FrameSink::new(MemoryCaps::CPU);
    sink.input = InputPort::new("video", MemoryCaps::CPU).optional();
    rt.add_stream(Stream::new("sink", sink)).unwrap();
    rt.add_stream(Stream::new("camera", FailsToStart)).unwrap();
    let err = rt.start().unwrap_err().to_string();
    assert_eq!(
        err,
        "stream 'camera' (FailsToStart) failed to start: camera /dev/video9 not found"
    );
    // The sink had started; it was stopped again.
    assert_eq!(log.starts.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(log.stops.load(std::sync::atomic::Ordering::SeqCst), 1);
}
