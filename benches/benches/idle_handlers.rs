//! CPU cost of 100 handlers that do (almost) nothing, at 1000 ticks per second.
//!
//! Topology (100 handlers): one source writing a small `DataMessage` per tick, fanned out to 7
//! parallel chains of 14 pass-through handlers each (98), merging into one sink with 7 inputs.
//! Clock: `SoftwareClock` at 1000 fps (realtime pacing), for 5 s (0.3 s when not run by
//! `cargo bench`, e.g. under `cargo test -p streamlib-benches --benches`).
//!
//! Runs twice: on the runtime's default thread pool (one worker per CPU) and with every handler
//! on `InlineDispatcher` (all run on the clock thread). For each it prints the process CPU time
//! (`getrusage(RUSAGE_SELF)`, user + system, all threads) as % of one core and as µs per
//! handler per tick, plus ticks achieved vs expected, ticks the clock missed, and ticks the
//! handlers skipped (from the `RuntimeStats` that `stop` returns).
//!
//! Run: `cargo bench -p streamlib-benches --bench idle_handlers`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "benchmark binary"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use streamlib::clock::{Rational, SoftwareClock};
use streamlib::dispatch::{Dispatcher, InlineDispatcher};
use streamlib::ports::DataMessage;
use streamlib::runtime::{RuntimeStats, Stream, StreamRuntime};
use streamlib_benches::{
    CountingSink, PassThrough, TickSource, cpu_time, is_bench_run, small_message,
};

const FPS: u32 = 1000;
const CHAINS: usize = 7;
const PER_CHAIN: usize = 14;
const HANDLERS: usize = 1 + CHAINS * PER_CHAIN + 1;

/// Builds the 100-handler graph on `runtime` (every stream on the default dispatcher).
fn build(runtime: &mut StreamRuntime) {
    let source = TickSource::new(small_message());
    let source_out = source.out.handle();
    runtime
        .add_stream(Stream::new("src", source))
        .expect("add source");
    let sink = CountingSink::<DataMessage>::new(CHAINS, streamlib_benches::Progress::new());
    let sink_inputs: Vec<_> = sink.inputs.iter().map(|input| input.handle()).collect();
    runtime
        .add_stream(Stream::new("sink", sink))
        .expect("add sink");
    for (chain, sink_input) in sink_inputs.iter().enumerate() {
        let mut upstream = source_out.clone();
        for i in 0..PER_CHAIN {
            let pass = PassThrough::<DataMessage>::new();
            let (input, out) = (pass.input.handle(), pass.out.handle());
            runtime
                .add_stream(Stream::new(format!("c{chain}-p{i}"), pass))
                .expect("add pass-through");
            runtime.connect(&upstream, &input).expect("connect");
            upstream = out;
        }
        runtime
            .connect(&upstream, sink_input)
            .expect("connect sink");
    }
    assert_eq!(runtime.stream_ids().len(), HANDLERS);
}

struct Outcome {
    label: &'static str,
    wall: Duration,
    cpu: Duration,
    stats: RuntimeStats,
}

fn measure(
    label: &'static str,
    dispatcher: Option<Arc<dyn Dispatcher>>,
    run_for: Duration,
) -> Outcome {
    let mut runtime = StreamRuntime::new(SoftwareClock::new(Rational::fps(FPS)));
    if let Some(dispatcher) = &dispatcher {
        runtime.set_default_dispatcher(Arc::clone(dispatcher));
    }
    build(&mut runtime);
    runtime.start().expect("start");
    let (cpu0, wall0) = (cpu_time(), Instant::now());
    std::thread::sleep(run_for);
    let (cpu1, wall1) = (cpu_time(), Instant::now());
    let stats = runtime.stop().expect("stop");
    if let Some(dispatcher) = dispatcher {
        dispatcher.shutdown();
    }
    Outcome {
        label,
        wall: wall1 - wall0,
        cpu: cpu1.saturating_sub(cpu0),
        stats,
    }
}

fn report(outcome: &Outcome) {
    let Outcome {
        label,
        wall,
        cpu,
        stats,
    } = outcome;
    let ticks = stats.clock_ticks;
    let expected = stats.elapsed.as_secs_f64() * f64::from(FPS);
    let skipped: u64 = stats.streams.iter().map(|s| s.skipped_ticks).sum();
    let calls: u64 = stats.streams.iter().map(|s| s.ticks).sum();
    let drops: u64 = stats.streams.iter().map(|s| s.total_drops()).sum();
    let worst_p99 = stats
        .streams
        .iter()
        .map(|s| s.p99)
        .max()
        .unwrap_or_default();
    let core_pct = cpu.as_secs_f64() / wall.as_secs_f64() * 100.0;
    let per_handler_tick_us = cpu.as_secs_f64() * 1e6 / (HANDLERS as f64 * (ticks.max(1)) as f64);
    println!(
        "{label:<24} {core_pct:>7.1} % {per_handler_tick_us:>10.3} {ticks:>8} {expected:>9.0} {:>7} {skipped:>9} {calls:>9} {drops:>6} {:>9.1}",
        stats.clock_missed,
        worst_p99.as_secs_f64() * 1e6,
    );
}

fn main() {
    let run_for = if is_bench_run() {
        Duration::from_secs(5)
    } else {
        Duration::from_millis(300)
    };
    println!(
        "idle_handlers: {HANDLERS} no-op handlers (1 source -> {CHAINS} chains x {PER_CHAIN} pass-through -> 1 sink), \
         SoftwareClock {FPS} fps, {:.1} s each",
        run_for.as_secs_f64()
    );
    let outcomes = [
        measure("default thread pool", None, run_for),
        measure(
            "inline (clock thread)",
            Some(Arc::new(InlineDispatcher::new())),
            run_for,
        ),
    ];
    println!(
        "{:<24} {:>9} {:>10} {:>8} {:>9} {:>7} {:>9} {:>9} {:>6} {:>9}",
        "dispatcher",
        "CPU/core",
        "µs/h/tick",
        "ticks",
        "expected",
        "missed",
        "skipped",
        "calls",
        "drops",
        "p99 µs",
    );
    for outcome in &outcomes {
        report(outcome);
    }
    println!(
        "(CPU: getrusage user+sys of the whole process over the run; µs/h/tick = CPU / ({HANDLERS} handlers x ticks); \
         expected = elapsed x {FPS}; missed = clock ticks skipped for late wake-ups; skipped = per-handler ticks not \
         processed, summed; calls = process() calls, summed; p99 = worst handler's p99 process time)"
    );
}
