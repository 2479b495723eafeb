//! What whole-graph format negotiation costs at build: a 100-handler chain (a source of
//! fixed RGBA 1920x1080 frames, 98 transforms that follow their input, a sink that takes
//! only UYVY, so one converter is planned and inserted), from `negotiate()` to wired ports.
//! Target: under 1 ms. Per frame it costs nothing: the negotiated caps are read once, at
//! start (the zero-allocation tests still pass with caps declared).
//!
//! Run: `cargo bench -p streamlib-benches --bench negotiation`
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark binary")]

use std::sync::Arc;

use criterion::{BatchSize, Criterion};
use streamlib::clock::{ManualClock, Rational};
use streamlib::ports::{
    Caps, Follow, HandlerError, InputPort, MemoryCaps, OutputPort, PixelFormat, Ports,
    ProcessContext, StreamHandler, VideoCaps, VideoFrame,
};
use streamlib::runtime::{Conversion, Stream, StreamRuntime, TransferHandler};

const HANDLERS: usize = 100;

struct Node {
    input: Option<InputPort<VideoFrame>>,
    output: Option<OutputPort<VideoFrame>>,
}

impl Node {
    fn new(accepts: Option<Caps>, produces: Option<(Caps, Option<Follow>)>) -> Self {
        let input = accepts.map(|c| InputPort::new("video", MemoryCaps::CPU).with_format(c));
        let output = produces.map(|(c, follow)| {
            let out = OutputPort::new("video", MemoryCaps::CPU).with_format(c);
            if let (Some(f), Some(i)) = (follow, &input) {
                out.follows(i, f);
            }
            out
        });
        Self { input, output }
    }
}

impl StreamHandler for Node {
    fn ports(&self) -> Ports {
        let mut ports = Ports::new();
        if let Some(i) = &self.input {
            ports = ports.input(i);
        }
        if let Some(o) = &self.output {
            ports = ports.output(o);
        }
        ports
    }
    fn process(&mut self, _: &mut ProcessContext<'_>) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn chain() -> StreamRuntime {
    let mut rt = StreamRuntime::new(ManualClock::new(Rational::fps(30)).0);
    rt.converters_mut().register(
        Conversion::Format,
        "convert",
        Caps::video(),
        Caps::video(),
        Arc::new(|target: &Caps| {
            let node = Node::new(
                Some(Caps::video()),
                Some((target.clone(), Some(Follow::SIZE_RATE))),
            );
            let input = node.input.as_ref().map(|i| i.handle().erased()).unwrap();
            let output = node.output.as_ref().map(|o| o.handle().erased()).unwrap();
            Ok(TransferHandler {
                handler: Box::new(node),
                input,
                output,
                dispatcher: None,
            })
        }),
    );
    let rgba = Caps::Video(VideoCaps::fixed(PixelFormat::Rgba8, 1920, 1080));
    let any = Caps::video();
    let mut previous = None;
    for n in 0..HANDLERS {
        let node = if n == 0 {
            Node::new(None, Some((rgba.clone(), None)))
        } else if n == HANDLERS - 1 {
            Node::new(
                Some(Caps::Video(
                    VideoCaps::any().with_formats(&[PixelFormat::Uyvy]),
                )),
                None,
            )
        } else {
            Node::new(Some(any.clone()), Some((any.clone(), Some(Follow::ALL))))
        };
        let (input, output) = (
            node.input.as_ref().map(|i| i.handle()),
            node.output.as_ref().map(|o| o.handle()),
        );
        rt.add_stream(Stream::new(format!("n{n}"), node)).unwrap();
        if let (Some(p), Some(i)) = (previous.take(), input) {
            rt.connect(&p, &i).unwrap();
        }
        previous = output;
    }
    rt
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    c.bench_function("negotiate/chain_100", |b| {
        b.iter_batched(
            chain,
            |mut rt| {
                let inserted = rt
                    .negotiate()
                    .unwrap()
                    .iter()
                    .map(|c| c.converters.len())
                    .sum::<usize>();
                assert_eq!(inserted, 1);
                rt
            },
            BatchSize::SmallInput,
        );
    });
    c.final_summary();
}
