//! What the runtime costs per tick and per handler, with handlers that do nothing.
//!
//! Pipelines: a source writing a small `DataMessage` (two `Arc` clones, no allocation) per
//! tick → K pass-through handlers → a counting sink, driven by a `ManualClock`: each sample
//! queues N ticks at once (`tick_n`) and times until the sink has received the N-th item (the
//! sink records that instant itself, so the measuring thread never polls the pipeline). The
//! clock paces the pipeline (each tick crosses the graph before the next is issued), so
//! "per tick" is the latency of one tick through the whole graph, clock thread included.
//!
//! - `tick/inline_k0`, `tick/inline_k10`: every handler on `InlineDispatcher` (runs on the
//!   clock thread), K = 0 and K = 10.
//! - `per_hop/inline`: (t(K=10) − t(K=0)) / 10 per tick, both measured in every sample: the
//!   cost one more no-op element adds to each buffer. For scale, GStreamer measured on this
//!   machine kind: 0.36 µs per element per buffer (`fakesrc ! identity×N ! fakesink`; GStreamer
//!   is not installed here, the figure is quoted).
//! - `tick/dedicated_k0`, `tick/threadpool2_k0`: source and sink on different threads
//!   (`DedicatedThreadDispatcher`: one thread each; `ThreadPoolDispatcher::new(2)`).
//! - `handoff/dedicated`, `handoff/threadpool2`: their per-tick time minus the inline K = 0
//!   time, measured in the same sample: the thread hand-offs and wake-ups a tick pays
//!   (clock thread → source thread → sink thread → clock thread). Target: < 5 µs.
//!
//! After the criterion groups, an interleaved re-measurement prints all figures in one table,
//! with a bare reference for the hand-offs: a `thread::park`/`unpark` ping-pong (per hop).
//!
//! Run: `cargo bench -p streamlib-benches --bench runtime_overhead`
//! (`cargo test -p streamlib-benches --benches` runs each benchmark once, as a smoke test).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "benchmark binary"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use streamlib::clock::{ManualClock, ManualClockHandle, Rational};
use streamlib::dispatch::{
    DedicatedThreadDispatcher, Dispatcher, InlineDispatcher, ThreadPoolDispatcher,
};
use streamlib::runtime::StreamRuntime;
use streamlib_benches::{
    Placement, Progress, add_chain, is_bench_run, median, pretty, small_message,
};

/// GStreamer's cost per element per buffer, measured on this machine kind (quoted).
const GSTREAMER_PER_ELEMENT: Duration = Duration::from_nanos(360);
/// Longest a batch of ticks may take before the benchmark gives up.
const BATCH_TIMEOUT: Duration = Duration::from_secs(120);

/// A running chain driven by a manual clock.
struct Pipeline {
    runtime: StreamRuntime,
    ticks: ManualClockHandle,
    progress: Arc<Progress>,
    dispatchers: Vec<Arc<dyn Dispatcher>>,
}

impl Pipeline {
    /// Source → `k` pass-throughs → sink, each role on the dispatcher `placement` names.
    fn chain(k: usize, placement: &Placement, dispatchers: Vec<Arc<dyn Dispatcher>>) -> Self {
        let (clock, ticks) = ManualClock::new(Rational::fps(1000));
        let mut runtime = StreamRuntime::new(clock);
        // Nothing uses the default, but the runtime would otherwise start a thread pool.
        runtime.set_default_dispatcher(Arc::new(InlineDispatcher::new()));
        let progress =
            add_chain(&mut runtime, "c", small_message(), k, placement).expect("build the chain");
        runtime.start().expect("start the runtime");
        let pipeline = Self {
            runtime,
            ticks,
            progress,
            dispatchers,
        };
        // Warm up: threads started, queues and histograms touched.
        pipeline.run(100);
        pipeline
    }

    fn inline(k: usize) -> Self {
        let inline: Arc<dyn Dispatcher> = Arc::new(InlineDispatcher::new());
        Self::chain(k, &Placement::all(&inline), vec![inline])
    }

    fn dedicated() -> Self {
        // One dispatcher, one thread per attached unit: source and sink get a thread each.
        let dedicated: Arc<dyn Dispatcher> = Arc::new(DedicatedThreadDispatcher::new());
        Self::chain(0, &Placement::all(&dedicated), vec![dedicated])
    }

    fn thread_pool() -> Self {
        let pool: Arc<dyn Dispatcher> = Arc::new(ThreadPoolDispatcher::new(2));
        Self::chain(0, &Placement::all(&pool), vec![pool])
    }

    /// Issues `n` ticks and returns the time until the sink received the `n`-th item.
    fn run(&self, n: u64) -> Duration {
        self.progress.arm(n);
        let start = Instant::now();
        self.ticks.tick_n(n);
        let reached = self
            .progress
            .wait(BATCH_TIMEOUT)
            .expect("the pipeline stalled: the sink did not receive every tick's item");
        reached.saturating_duration_since(start)
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        let _ = self.runtime.stop();
        for dispatcher in &self.dispatchers {
            dispatcher.shutdown();
        }
    }
}

/// `(a − b) × iters / (scale × m)`, at least 1 ns (criterion needs positive times).
fn difference(a: Duration, b: Duration, iters: u64, scale: u64, m: u64) -> Duration {
    let ns = a.saturating_sub(b).as_nanos() as f64 * iters as f64 / (scale * m) as f64;
    Duration::from_nanos((ns as u64).max(1))
}

fn bench_ticks(c: &mut Criterion) {
    let mut group = c.benchmark_group("tick");
    for k in [0, 10] {
        let pipeline = Pipeline::inline(k);
        group.bench_function(BenchmarkId::new("inline", format!("k{k}")), |b| {
            b.iter_custom(|iters| pipeline.run(iters));
        });
    }
    let pipeline = Pipeline::dedicated();
    group.bench_function(BenchmarkId::new("dedicated", "k0"), |b| {
        b.iter_custom(|iters| pipeline.run(iters));
    });
    drop(pipeline);
    let pipeline = Pipeline::thread_pool();
    group.bench_function(BenchmarkId::new("threadpool2", "k0"), |b| {
        b.iter_custom(|iters| pipeline.run(iters));
    });
    drop(pipeline);
    group.finish();
}

fn bench_per_hop(c: &mut Criterion) {
    let (k0, k10) = (Pipeline::inline(0), Pipeline::inline(10));
    let mut group = c.benchmark_group("per_hop");
    group.bench_function("inline", |b| {
        // One iteration is one hop; m ticks through both chains cover 10 m hops.
        b.iter_custom(|iters| {
            let m = iters.div_ceil(10);
            let t0 = k0.run(m);
            let t10 = k10.run(m);
            difference(t10, t0, iters, 10, m)
        });
    });
    group.finish();
}

fn bench_handoff(c: &mut Criterion) {
    let inline = Pipeline::inline(0);
    let mut group = c.benchmark_group("handoff");
    for (name, pipeline) in [
        ("dedicated", Pipeline::dedicated()),
        ("threadpool2", Pipeline::thread_pool()),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let t_inline = inline.run(iters);
                let t_cross = pipeline.run(iters);
                difference(t_cross, t_inline, iters, 1, iters)
            });
        });
    }
    group.finish();
}

/// Bare reference for a thread hand-off: a `thread::park` / `unpark` ping-pong between two
/// threads (what a dispatcher pays at least to wake a sleeping thread). Returns time per hop.
fn park_unpark_hop(rounds: u64) -> Duration {
    let seq = AtomicU64::new(0);
    let ack = AtomicU64::new(0);
    let main = std::thread::current();
    std::thread::scope(|scope| {
        let peer = scope.spawn(|| {
            let mut last = 0;
            while last < rounds {
                let now = seq.load(Ordering::Acquire);
                if now == last {
                    std::thread::park();
                    continue;
                }
                last = now;
                ack.store(now, Ordering::Release);
                main.unpark();
            }
        });
        let start = Instant::now();
        for n in 1..=rounds {
            seq.store(n, Ordering::Release);
            peer.thread().unpark();
            while ack.load(Ordering::Acquire) != n {
                std::thread::park();
            }
        }
        start.elapsed() / u32::try_from(2 * rounds.max(1)).unwrap_or(u32::MAX)
    })
}

/// Interleaved re-measurement of every configuration; prints one table.
fn summary(quick: bool) {
    let (rounds, n) = if quick { (2, 200) } else { (9, 20_000) };
    let pipelines = [
        ("inline, K=0", Pipeline::inline(0)),
        ("inline, K=10", Pipeline::inline(10)),
        ("dedicated threads, K=0", Pipeline::dedicated()),
        ("thread pool (2), K=0", Pipeline::thread_pool()),
    ];
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); pipelines.len()];
    let mut hops = Vec::new();
    let mut handoffs = [Vec::new(), Vec::new()];
    let mut wakeups = Vec::new();
    let n32 = u32::try_from(n).unwrap_or(u32::MAX);
    for _ in 0..rounds {
        let per_tick: Vec<Duration> = pipelines.iter().map(|(_, p)| p.run(n) / n32).collect();
        hops.push(per_tick[1].saturating_sub(per_tick[0]) / 10);
        handoffs[0].push(per_tick[2].saturating_sub(per_tick[0]));
        handoffs[1].push(per_tick[3].saturating_sub(per_tick[0]));
        for (all, t) in samples.iter_mut().zip(per_tick) {
            all.push(t);
        }
        wakeups.push(park_unpark_hop(n / 10));
    }
    let note = if quick {
        " [smoke test: debug build, figures not meaningful]"
    } else {
        ""
    };
    println!();
    println!("runtime_overhead summary (median of {rounds} interleaved rounds of {n} ticks){note}");
    for ((name, _), all) in pipelines.iter().zip(&mut samples) {
        println!(
            "  {:<40} {:>10}",
            format!("per tick, {name}"),
            pretty(median(all))
        );
    }
    let hop = median(&mut hops);
    println!(
        "  {:<40} {:>10}   GStreamer: {} per element per buffer -> {:.2}x GStreamer",
        "per hop (one more no-op element), inline",
        pretty(hop),
        pretty(GSTREAMER_PER_ELEMENT),
        hop.as_secs_f64() / GSTREAMER_PER_ELEMENT.as_secs_f64()
    );
    for (name, all) in ["dedicated threads", "thread pool (2)"]
        .iter()
        .zip(&mut handoffs)
    {
        let handoff = median(all);
        let verdict = if handoff < Duration::from_micros(5) {
            "ok"
        } else {
            "OVER target"
        };
        println!(
            "  {:<40} {:>10}   per tick minus inline K=0; target < 5 µs: {verdict}",
            format!("hand-off + wake-ups, {name}"),
            pretty(handoff)
        );
    }
    println!(
        "  {:<40} {:>10}   bare reference: one thread waking another",
        "park/unpark ping-pong, per hop",
        pretty(median(&mut wakeups))
    );
}

fn main() {
    let bench = is_bench_run();
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    bench_ticks(&mut criterion);
    bench_per_hop(&mut criterion);
    bench_handoff(&mut criterion);
    criterion.final_summary();
    summary(!bench);
}
