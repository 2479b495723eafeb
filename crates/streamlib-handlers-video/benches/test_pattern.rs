//! Time to produce one 1920×1080 SMPTE frame with the moving box: a pooled buffer, a copy of
//! the pre-rendered pattern, the box, and the hand-over to a connected input. One thread, so
//! ms here = CPU ms per frame; `benches/peers/pattern_peers.sh` compares it with FFmpeg's
//! `testsrc2` and GStreamer's `videotestsrc`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use streamlib_clock::{ClockSourceId, Rational, TimedTick};
use streamlib_handlers_video::{Pattern, TestPattern, TestPatternConfig};
use streamlib_ports::{InputPort, MemoryCaps, ProcessContext, StreamHandler, VideoFrame};

fn test_pattern(c: &mut Criterion) {
    let mut group = c.benchmark_group("test_pattern");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .throughput(Throughput::Elements(1));
    for (name, pattern, moving_box) in [
        ("smpte_1920x1080_box", Pattern::SmpteBars, true),
        ("smpte_1920x1080", Pattern::SmpteBars, false),
    ] {
        let mut source = match TestPattern::new(TestPatternConfig {
            width: 1920,
            height: 1080,
            pattern,
            moving_box,
            ..TestPatternConfig::default()
        }) {
            Ok(source) => source,
            Err(e) => panic!("1920x1080 is valid: {e}"),
        };
        let sink = InputPort::<VideoFrame>::new("video", MemoryCaps::CPU);
        if let Err(e) = source
            .output()
            .erased()
            .connect_to(&*sink.handle().erased())
        {
            panic!("wiring failed: {e}");
        }
        let mut n = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                let tick = TimedTick {
                    timestamp: n * 33_333_333,
                    frame_number: n,
                    clock_source_id: ClockSourceId::MANUAL,
                    fps: Rational::fps(30),
                };
                n += 1;
                if let Err(e) = source.process(&mut ProcessContext::new("pattern", tick)) {
                    panic!("process failed: {e}");
                }
                black_box(sink.recv());
            });
        });
    }
    group.finish();
}

criterion_group!(benches, test_pattern);
criterion_main!(benches);
