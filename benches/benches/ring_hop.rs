//! One hop through streamlib's latest-read ring (`streamlib::buffers::LatestBuffer`) against
//! the bare primitive, `crossbeam_queue::ArrayQueue`, moving the same item.
//!
//! - `same_thread/*`: `write` then `reader.read_new()` on one thread, beside `push` + `pop`.
//!   Items: an `Arc<u64>` (clone = one atomic increment) and a `VideoFrame` over a pooled
//!   buffer (clone = two atomic increments).
//! - `cross_thread/*`: a ping-pong between two threads (A writes seq n to ring 1; B spins on
//!   `read_new` of ring 1 and writes n to ring 2; A spins for it). Reported per hop = round
//!   trip / 2; the bare peer does the same with two `ArrayQueue`s.
//!
//! Target stated by the product: a framework hop within 2× of the bare hop. After the
//! criterion groups, a short interleaved re-measurement prints the framework/bare ratios.
//!
//! Run: `cargo bench -p streamlib-benches --bench ring_hop`
//! (`cargo test -p streamlib-benches --benches` runs each benchmark once, as a smoke test).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "benchmark binary"
)]

use std::hint::{black_box, spin_loop};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use crossbeam_queue::ArrayQueue;
use streamlib::buffers::{LatestBuffer, LatestReader};
use streamlib::ports::VideoFrame;
use streamlib_benches::{is_bench_run, median, pooled_frame, pretty};

/// Spins (yielding now and then, so a preempted peer can run on a busy machine) until `f`
/// returns something.
#[inline]
fn spin_until<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let mut spins = 0_u32;
    loop {
        if let Some(value) = f() {
            return value;
        }
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(1024) {
            std::thread::yield_now();
        } else {
            spin_loop();
        }
    }
}

/// Two one-way channels between thread A and thread B.
trait PingPong: Sync {
    fn send_a(&self, n: u64);
    fn recv_a(&self) -> Option<u64>;
    fn send_b(&self, n: u64);
    fn recv_b(&self) -> Option<u64>;
}

/// Keeps its content on cache lines of its own (128 bytes covers adjacent-line prefetch), so
/// the two threads' handles do not falsely share a line in the benchmark's own layout.
#[repr(align(128))]
struct Padded<T>(T);

/// Two latest-read rings: A writes ring 1, B reads it; B writes ring 2, A reads it. Each
/// handle is padded: in a pipeline the writer and the reader live in different port objects.
struct Rings {
    to_b: Padded<LatestBuffer<u64>>,
    at_b: Padded<LatestReader<u64>>,
    to_a: Padded<LatestBuffer<u64>>,
    at_a: Padded<LatestReader<u64>>,
}

impl Rings {
    fn new() -> Self {
        let to_b = LatestBuffer::new();
        let at_b = to_b.reader();
        let to_a = LatestBuffer::new();
        let at_a = to_a.reader();
        Self {
            to_b: Padded(to_b),
            at_b: Padded(at_b),
            to_a: Padded(to_a),
            at_a: Padded(at_a),
        }
    }
}

impl PingPong for Rings {
    fn send_a(&self, n: u64) {
        self.to_b.0.write(n);
    }
    fn recv_a(&self) -> Option<u64> {
        self.at_a.0.read_new()
    }
    fn send_b(&self, n: u64) {
        self.to_a.0.write(n);
    }
    fn recv_b(&self) -> Option<u64> {
        self.at_b.0.read_new()
    }
}

/// Two bare bounded queues.
struct Queues {
    to_b: Padded<ArrayQueue<u64>>,
    to_a: Padded<ArrayQueue<u64>>,
}

impl Queues {
    fn new() -> Self {
        Self {
            to_b: Padded(ArrayQueue::new(1)),
            to_a: Padded(ArrayQueue::new(1)),
        }
    }
}

impl PingPong for Queues {
    fn send_a(&self, n: u64) {
        self.to_b.0.force_push(n);
    }
    fn recv_a(&self) -> Option<u64> {
        self.to_a.0.pop()
    }
    fn send_b(&self, n: u64) {
        self.to_a.0.force_push(n);
    }
    fn recv_b(&self) -> Option<u64> {
        self.to_b.0.pop()
    }
}

/// `rounds` round trips A → B → A after a hand-shake; returns the time of the round trips.
fn ping_pong<P: PingPong>(channels: &P, rounds: u64) -> Duration {
    std::thread::scope(|scope| {
        scope.spawn(|| {
            // Hand-shake (0) plus the measured rounds.
            for _ in 0..=rounds {
                let n = spin_until(|| channels.recv_b());
                channels.send_b(n);
            }
        });
        channels.send_a(0);
        let echoed = spin_until(|| channels.recv_a());
        assert_eq!(echoed, 0);
        let start = Instant::now();
        for n in 1..=rounds {
            channels.send_a(n);
            let echoed = spin_until(|| channels.recv_a());
            debug_assert_eq!(echoed, n);
        }
        start.elapsed()
    })
}

fn same_thread_ring<T: Clone + Send + Sync>(item: &T, n: u64) -> Duration {
    let ring = LatestBuffer::new();
    let reader = ring.reader();
    let start = Instant::now();
    for _ in 0..n {
        ring.write(item.clone());
        black_box(reader.read_new());
    }
    start.elapsed()
}

fn same_thread_queue<T: Clone>(item: &T, n: u64) -> Duration {
    let queue = ArrayQueue::new(1);
    let start = Instant::now();
    for _ in 0..n {
        let _ = queue.push(item.clone());
        black_box(queue.pop());
    }
    start.elapsed()
}

fn bench_same_thread(c: &mut Criterion) {
    let (_pool, frame) = pooled_frame().expect("frame pool");
    let arc = Arc::new(7_u64);
    let mut group = c.benchmark_group("same_thread");
    group.bench_function(BenchmarkId::new("latest_ring", "arc_u64"), |b| {
        b.iter_custom(|iters| same_thread_ring(&arc, iters));
    });
    group.bench_function(BenchmarkId::new("array_queue", "arc_u64"), |b| {
        b.iter_custom(|iters| same_thread_queue(&arc, iters));
    });
    group.bench_function(BenchmarkId::new("latest_ring", "video_frame"), |b| {
        b.iter_custom(|iters| same_thread_ring::<VideoFrame>(&frame, iters));
    });
    group.bench_function(BenchmarkId::new("array_queue", "video_frame"), |b| {
        b.iter_custom(|iters| same_thread_queue::<VideoFrame>(&frame, iters));
    });
    group.finish();
}

fn bench_cross_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("cross_thread");
    group.bench_function(BenchmarkId::new("latest_ring", "hop_u64"), |b| {
        b.iter_custom(|iters| ping_pong(&Rings::new(), iters) / 2);
    });
    group.bench_function(BenchmarkId::new("array_queue", "hop_u64"), |b| {
        b.iter_custom(|iters| ping_pong(&Queues::new(), iters) / 2);
    });
    group.finish();
}

/// Interleaved re-measurement of each pair, so both sides see the same machine load; prints
/// medians and the framework/bare ratio.
fn summary(quick: bool) {
    let rounds = if quick { 3 } else { 9 };
    let (same_n, hop_n) = if quick {
        (10_000, 1_000)
    } else {
        (1_000_000, 100_000)
    };
    let (_pool, frame) = pooled_frame().expect("frame pool");
    let arc = Arc::new(7_u64);
    let per = |d: Duration, n: u64| d / u32::try_from(n).unwrap_or(u32::MAX);
    let mut rows: Vec<(&str, Vec<Duration>, Vec<Duration>)> = vec![
        ("same thread, Arc<u64>", Vec::new(), Vec::new()),
        ("same thread, VideoFrame", Vec::new(), Vec::new()),
        ("cross thread hop, u64", Vec::new(), Vec::new()),
    ];
    for _ in 0..rounds {
        rows[0].1.push(per(same_thread_ring(&arc, same_n), same_n));
        rows[0].2.push(per(same_thread_queue(&arc, same_n), same_n));
        rows[1]
            .1
            .push(per(same_thread_ring(&frame, same_n), same_n));
        rows[1]
            .2
            .push(per(same_thread_queue(&frame, same_n), same_n));
        rows[2]
            .1
            .push(per(ping_pong(&Rings::new(), hop_n), hop_n) / 2);
        rows[2]
            .2
            .push(per(ping_pong(&Queues::new(), hop_n), hop_n) / 2);
    }
    let note = if quick {
        " [smoke test: debug build, figures not meaningful]"
    } else {
        ""
    };
    println!();
    println!(
        "ring_hop summary (median of {rounds} interleaved rounds; target: framework ≤ 2× bare){note}"
    );
    println!(
        "{:<26} {:>14} {:>14} {:>8}",
        "case", "LatestBuffer", "ArrayQueue", "ratio"
    );
    for (name, ring, queue) in &mut rows {
        let (ring, queue) = (median(ring), median(queue));
        let ratio = ring.as_secs_f64() / queue.as_secs_f64().max(f64::MIN_POSITIVE);
        let verdict = if ratio <= 2.0 { "ok" } else { "OVER 2x" };
        println!(
            "{name:<26} {:>14} {:>14} {ratio:>7.2}x {verdict}",
            pretty(ring),
            pretty(queue)
        );
    }
}

fn main() {
    let bench = is_bench_run();
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    bench_same_thread(&mut criterion);
    bench_cross_thread(&mut criterion);
    criterion.final_summary();
    summary(!bench);
}
