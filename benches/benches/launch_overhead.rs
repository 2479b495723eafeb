//! `streamlib launch` must add nothing measurable to a pipeline built in Rust: the same graph
//! (test pattern → blur σ=2 → null, 640×360, 30 frames on the free-running clock) built by
//! hand and built from its text description, timed end to end (build, run, stop).
#![allow(clippy::unwrap_used, reason = "benchmarks")]

use criterion::{Criterion, criterion_group, criterion_main};
use streamlib::launch::{Registry, build, parse};
use streamlib::prelude::*;
use streamlib::video::{Blur, BlurConfig, NullSink, Pattern, TestPattern, TestPatternConfig};

const FRAMES: u64 = 30;
const TEXT: &str = "testpattern size=640x360 ! blur sigma=2 ! null";

fn clock() -> FreeRunningClock {
    FreeRunningClock::new(Rational::fps(30)).with_limit(FRAMES)
}

fn by_hand() -> RuntimeStats {
    let mut runtime = StreamRuntime::new(clock());
    let pattern = TestPattern::new(TestPatternConfig::new(640, 360, Pattern::SmpteBars)).unwrap();
    let blur = Blur::new(BlurConfig::default()).unwrap();
    let sink = NullSink::new();
    let (p, bi, bo, s) = (pattern.output(), blur.input(), blur.output(), sink.input());
    runtime
        .add_stream(Stream::new("testpattern0", pattern))
        .unwrap();
    runtime.add_stream(Stream::new("blur0", blur)).unwrap();
    runtime.add_stream(Stream::new("null0", sink)).unwrap();
    runtime.connect(&p, &bi).unwrap();
    runtime.connect(&bo, &s).unwrap();
    runtime.run().unwrap()
}

fn from_text(registry: &Registry) -> RuntimeStats {
    let desc = parse(TEXT).unwrap();
    let mut built = build(registry, &desc, StreamRuntime::new(clock())).unwrap();
    built.runtime.run().unwrap()
}

fn launch_overhead(c: &mut Criterion) {
    let registry = Registry::builtin();
    let mut group = c.benchmark_group("launch_vs_rust_30_frames_640x360_blur");
    group.sample_size(10);
    group.bench_function("built_in_rust", |b| b.iter(by_hand));
    group.bench_function("from_text", |b| b.iter(|| from_text(&registry)));
    group.bench_function("parse_and_validate_only", |b| {
        b.iter(|| streamlib::launch::validate(&registry, &parse(TEXT).unwrap()).unwrap());
    });
    group.finish();
}

criterion_group!(benches, launch_overhead);
criterion_main!(benches);
