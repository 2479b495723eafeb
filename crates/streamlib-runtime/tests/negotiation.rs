//! Capability negotiation on connect: overlap, transfers from the registry, auto-transfer off,
//! and the errors of wiring by name.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::sync::Arc;

use common::*;
use streamlib_clock::{ManualClock, Rational};
use streamlib_ports::*;
use streamlib_runtime::{RuntimeError, Stream, StreamRuntime, TransferHandler};

fn runtime() -> (StreamRuntime, streamlib_clock::ManualClockHandle) {
    let (clock, ticks) = ManualClock::new(Rational::fps(30));
    (StreamRuntime::new(clock), ticks)
}

#[test]
fn overlapping_caps_prefer_the_outputs_first_choice() {
    let (mut rt, _t) = runtime();
    let src = FrameSource::new(4, 4, MemoryCaps::GPU_CPU);
    let (sink, _) = FrameSink::new(MemoryCaps::CPU_GPU);
    let (o, i) = (src.out.handle(), sink.input.handle());
    rt.add_stream(Stream::new("src", src)).unwrap();
    rt.add_stream(Stream::new("sink", sink)).unwrap();
    let c = rt.connect(&o, &i).unwrap();
    assert_eq!(c.memory, MemorySpace::Gpu);
    assert_eq!(c.transfer, None);
    assert_eq!(o.erased().negotiated(), Some(MemorySpace::Gpu));
    assert_eq!(i.erased().negotiated(), Some(MemorySpace::Gpu));
}

#[test]
fn fan_out_keeps_the_outputs_negotiated_space() {
    let (mut rt, _t) = runtime();
    let src = FrameSource::new(4, 4, MemoryCaps::CPU_GPU);
    let (a, _) = FrameSink::new(MemoryCaps::GPU_CPU);
    let (b, _) = FrameSink::new(MemoryCaps::CPU);
    let (o, ia, ib) = (src.out.handle(), a.input.handle(), b.input.handle());
    rt.add_stream(Stream::new("src", src)).unwrap();
    rt.add_stream(Stream::new("a", a)).unwrap();
    rt.add_stream(Stream::new("b", b)).unwrap();
    assert_eq!(rt.connect(&o, &ia).unwrap().memory, MemorySpace::Cpu);
    assert_eq!(rt.connect(&o, &ib).unwrap().memory, MemorySpace::Cpu);
}

/// A stand-in CPU→GPU transfer for tests: copies frames through unchanged and counts them.
struct TestTransfer {
    input: InputPort<VideoFrame>,
    out: OutputPort<VideoFrame>,
}

impl StreamHandler for TestTransfer {
    fn ports(&self) -> Ports {
        Ports::new().input(&self.input).output(&self.out)
    }
    fn process(&mut self, _: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        if let Some(f) = self.input.recv() {
            self.out.write(f);
        }
        Ok(())
    }
}

fn register_test_transfer(rt: &mut StreamRuntime) {
    rt.transfers_mut().register(
        PortKind::Video,
        MemorySpace::Cpu,
        MemorySpace::Gpu,
        "TestUpload",
        Arc::new(|| {
            let t = TestTransfer {
                input: InputPort::new("in", MemoryCaps::CPU),
                out: OutputPort::new("out", MemoryCaps::GPU),
            };
            let (input, output) = (t.input.handle().erased(), t.out.handle().erased());
            Ok(TransferHandler {
                handler: Box::new(t),
                input,
                output,
                dispatcher: None,
            })
        }),
    );
}

#[test]
fn disjoint_caps_insert_a_registered_transfer_and_frames_flow() {
    let (mut rt, ticks) = runtime();
    register_test_transfer(&mut rt);
    let src = FrameSource::new(4, 4, MemoryCaps::CPU);
    let (sink, log) = FrameSink::new(MemoryCaps::GPU);
    let (o, i) = (src.out.handle(), sink.input.handle());
    rt.add_stream(Stream::new("src", src)).unwrap();
    rt.add_stream(Stream::new("sink", sink)).unwrap();
    let c = rt.connect(&o, &i).unwrap();
    let id = c.transfer.clone().expect("a transfer");
    assert!(id.starts_with("TestUpload"), "{id}");
    assert_eq!(rt.stream_ids(), ["src", "sink", id.as_str()]);
    assert_eq!(o.erased().negotiated(), Some(MemorySpace::Cpu));
    assert_eq!(i.erased().negotiated(), Some(MemorySpace::Gpu));
    rt.start().unwrap();
    pump(&rt, &ticks, 0, 3);
    let stats = rt.stop().unwrap();
    // Inserted transfers run on the same tick as everything else.
    assert_eq!(*log.seen.lock().unwrap(), [(0, 0), (1, 1), (2, 2)]);
    assert_eq!(stats.stream(&id).unwrap().ticks, 3);
}

#[test]
fn disjoint_caps_without_auto_transfer_name_both_ports_and_sets() {
    let (mut rt, _t) = runtime();
    register_test_transfer(&mut rt);
    rt.set_auto_transfer(false);
    let src = FrameSource::new(4, 4, MemoryCaps::CPU);
    let (sink, _) = FrameSink::new(MemoryCaps::GPU);
    let (o, i) = (src.out.handle(), sink.input.handle());
    rt.add_stream(Stream::new("src", src)).unwrap();
    rt.add_stream(Stream::new("sink", sink)).unwrap();
    let err = rt.connect(&o, &i).unwrap_err();
    assert!(matches!(err, RuntimeError::NoCommonMemory { .. }));
    assert_eq!(
        err.to_string(),
        "cannot connect src.video [cpu] to sink.video [gpu]: no common memory space and \
         automatic transfers are disabled (insert a transfer handler or enable auto_transfer)"
    );
}

#[test]
fn disjoint_caps_with_no_registered_transfer_say_which_is_missing() {
    let (mut rt, _t) = runtime();
    let src = FrameSource::new(4, 4, MemoryCaps::GPU);
    let (sink, _) = FrameSink::new(MemoryCaps::CPU);
    let (o, i) = (src.out.handle(), sink.input.handle());
    rt.add_stream(Stream::new("src", src)).unwrap();
    rt.add_stream(Stream::new("sink", sink)).unwrap();
    let err = rt.connect(&o, &i).unwrap_err().to_string();
    assert!(
        err.contains("no video transfer from gpu to cpu is registered"),
        "{err}"
    );
}

#[test]
fn explicit_transfer_is_plain_wiring() {
    let (mut rt, _t) = runtime();
    let src = FrameSource::new(4, 4, MemoryCaps::CPU);
    let t = TestTransfer {
        input: InputPort::new("in", MemoryCaps::CPU),
        out: OutputPort::new("out", MemoryCaps::GPU),
    };
    let (sink, _) = FrameSink::new(MemoryCaps::GPU);
    let (o, ti, to, i) = (
        src.out.handle(),
        t.input.handle(),
        t.out.handle(),
        sink.input.handle(),
    );
    rt.add_stream(Stream::new("src", src)).unwrap();
    rt.add_stream(Stream::new("upload", t)).unwrap();
    rt.add_stream(Stream::new("sink", sink)).unwrap();
    assert_eq!(rt.connect(&o, &ti).unwrap().transfer, None);
    assert_eq!(rt.connect(&to, &i).unwrap().transfer, None);
}

#[test]
fn wiring_by_name_and_its_errors() {
    let (mut rt, _t) = runtime();
    let src = FrameSource::new(4, 4, MemoryCaps::CPU);
    let (sink, _) = FrameSink::new(MemoryCaps::CPU);
    let data = DataSource {
        out: OutputPort::new("data", MemoryCaps::CPU),
    };
    rt.add_stream(Stream::new("src", src)).unwrap();
    rt.add_stream(Stream::new("sink", sink)).unwrap();
    rt.add_stream(Stream::new("data", data)).unwrap();

    let err = rt
        .connect_by_name("nope.video", "sink.video")
        .unwrap_err()
        .to_string();
    assert_eq!(err, "no stream named 'nope'; streams: src, sink, data");
    let err = rt
        .connect_by_name("src.vid", "sink.video")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "stream 'src' has no output port 'vid'; its output ports: video"
    );
    let err = rt
        .connect_by_name("src.video", "sink.audio")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "stream 'sink' has no input port 'audio'; its input ports: video"
    );
    let err = rt
        .connect_by_name("srcvideo", "sink.video")
        .unwrap_err()
        .to_string();
    assert!(err.contains("write it as <stream>.<port>"), "{err}");
    let err = rt.connect_by_name("data.data", "sink.video").unwrap_err();
    assert!(matches!(err, RuntimeError::KindMismatch { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("cannot connect data.data (data, "),
        "{err}"
    );

    rt.connect_by_name("src.video", "sink.video").unwrap();
    let err = rt
        .connect_by_name("src.video", "sink.video")
        .unwrap_err()
        .to_string();
    assert!(err.contains("already connected"), "{err}");
}

#[test]
fn a_port_of_a_handler_not_added_is_rejected() {
    let (mut rt, _t) = runtime();
    let src = FrameSource::new(4, 4, MemoryCaps::CPU);
    let (sink, _) = FrameSink::new(MemoryCaps::CPU);
    let o = src.out.handle();
    rt.add_stream(Stream::new("src", src)).unwrap();
    let err = rt
        .connect(&o, &sink.input.handle())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "port 'video' belongs to no stream added to this runtime (add its handler first)"
    );
}
