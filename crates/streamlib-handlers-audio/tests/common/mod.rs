//! Driving handlers by hand, as a runtime would: wire, tick, collect.
#![allow(dead_code, reason = "each test binary uses part of it")]

use streamlib_clock::{ClockInfo, ClockSourceId, Pacing, Rational, TimedTick, Timescale};
use streamlib_ports::{
    AudioBuffer, InputPort, InputRef, MemoryCaps, OutputRef, ProcessContext, StartContext,
    StreamHandler,
};

pub fn tick(fps: Rational, n: u64) -> TimedTick {
    TimedTick {
        timestamp: fps.frame_time_ns(n),
        frame_number: n,
        clock_source_id: ClockSourceId::MANUAL,
        fps,
    }
}

pub fn clock(fps: Rational) -> ClockInfo {
    ClockInfo {
        name: "manual".to_owned(),
        id: ClockSourceId::MANUAL,
        fps,
        timescale: Timescale::Media,
        pacing: Pacing::Pipeline,
    }
}

pub fn connect(out: &OutputRef<AudioBuffer>, input: &InputRef<AudioBuffer>) {
    out.erased().connect_to(&*input.erased()).unwrap();
}

/// An ordered sink that holds up to `capacity` buffers.
pub fn sink(capacity: usize) -> InputPort<AudioBuffer> {
    InputPort::new("audio", MemoryCaps::CPU)
        .with_delivery(streamlib_ports::DeliveryMode::Ordered { capacity })
}

pub fn start(h: &mut dyn StreamHandler, fps: Rational) {
    let c = clock(fps);
    h.on_start(&StartContext::new("h", &c)).unwrap();
}

pub fn run(h: &mut dyn StreamHandler, t: TimedTick) {
    h.process(&mut ProcessContext::new("h", t)).unwrap();
}

/// Drains `sink` into interleaved samples; returns the buffers' (timestamp, frames).
pub fn drain(sink: &InputPort<AudioBuffer>, out: &mut Vec<f32>) -> Vec<(u64, usize)> {
    let mut seen = Vec::new();
    while let Some(b) = sink.recv() {
        seen.push((b.timestamp_ns(), b.frames()));
        out.extend_from_slice(b.samples());
    }
    seen
}
