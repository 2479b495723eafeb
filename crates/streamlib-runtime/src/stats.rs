//! Per-handler statistics: lock-free counters and a log-linear latency histogram, readable
//! while running and summarised at stop.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use streamlib_clock::LatencyHistogram;

/// A histogram of durations in nanoseconds ([`LatencyHistogram`]: fixed buckets, 1/16
/// relative error), recorded by one thread at a time.
pub(crate) struct Histogram(LatencyHistogram);

impl Histogram {
    pub(crate) fn new() -> Self {
        Self(LatencyHistogram::new())
    }

    /// Records one value. Only the thread running the stream records (the dispatcher's run
    /// gate lets one thread at a time into a stream's unit), so plain loads and stores suffice; readers on other threads see counts
    /// that are at most one record behind.
    pub(crate) fn record(&self, ns: u64) {
        self.0.record_single_writer(ns);
    }

    pub(crate) fn max(&self) -> u64 {
        self.0.max()
    }

    /// The value below which `q` (0..=1) of the records fall, within one bucket.
    pub(crate) fn quantile(&self, q: f64) -> u64 {
        self.0.quantile(q)
    }
}

/// Adds `n` to a counter that has a single writer, without a read-modify-write instruction.
pub(crate) fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

/// Counters of one stream, updated without locks by whichever thread the dispatcher's run gate
/// let into the stream's unit (one at a time).
pub(crate) struct NodeCounters {
    pub(crate) ticks: AtomicU64,
    pub(crate) skipped_ticks: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) panics: AtomicU64,
    pub(crate) restarts: AtomicU64,
    pub(crate) deadline_misses: AtomicU64,
    /// Pool-empty skips already logged (the log line repeats at powers of two).
    pub(crate) skips_logged: AtomicU64,
    /// Written only on failure paths, so a lock costs nothing per frame.
    pub(crate) last_error: std::sync::Mutex<Option<String>>,
    pub(crate) process_time: Histogram,
    /// From the clock issuing a tick to this stream finishing it.
    pub(crate) latency: Histogram,
}

impl NodeCounters {
    pub(crate) fn new() -> Self {
        Self {
            ticks: AtomicU64::new(0),
            skipped_ticks: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            panics: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            deadline_misses: AtomicU64::new(0),
            skips_logged: AtomicU64::new(0),
            last_error: std::sync::Mutex::new(None),
            process_time: Histogram::new(),
            latency: Histogram::new(),
        }
    }
}

/// Items lost on one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputDrops {
    /// Port name.
    pub port: String,
    /// Items dropped (latest-read skips or ordered overflow).
    pub dropped: u64,
    /// Items the handler received and refused ([`streamlib_ports::InputPort::reject`]).
    pub rejected: u64,
}

/// Where a stream is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamState {
    /// Not started yet.
    Idle,
    /// Being called every tick.
    Running,
    /// Waiting out a restart backoff.
    Restarting,
    /// Ended its stream (end of stream reached and drained).
    Ended,
    /// Failed and not restarted.
    Failed,
    /// Stopped by the runtime.
    Stopped,
}

impl fmt::Display for StreamState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StreamState::Idle => "idle",
            StreamState::Running => "running",
            StreamState::Restarting => "restarting",
            StreamState::Ended => "ended",
            StreamState::Failed => "failed",
            StreamState::Stopped => "stopped",
        })
    }
}

/// A snapshot of one stream's statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamStats {
    /// Stream id.
    pub id: String,
    /// Handler type name.
    pub handler: &'static str,
    /// Dispatcher kind.
    pub dispatcher: &'static str,
    /// State at snapshot time.
    pub state: StreamState,
    /// `process` calls.
    pub ticks: u64,
    /// Clock ticks it did not process because it (or its upstream) was still busy.
    pub skipped_ticks: u64,
    /// Items written to its outputs.
    pub items_out: u64,
    /// Items its inputs delivered to it (for a sink: what it received).
    pub items_in: u64,
    /// Frames it did not produce because its pool was empty (skipped, counted, never an
    /// error; its readers kept the previous frame).
    pub skipped_pool_empty: u64,
    /// Buffers its pools allocated after creation because they were empty.
    pub pool_grown: u64,
    /// The most buffers its pools may hold, summed over its outputs (0 when it reports none).
    pub pool_capacity: u64,
    /// Per-input losses.
    pub drops: Vec<InputDrops>,
    /// `process` calls that returned an error.
    pub errors: u64,
    /// `process` calls that panicked.
    pub panics: u64,
    /// Restarts performed.
    pub restarts: u64,
    /// The last error or panic message of `process`, `on_start` or `on_stop`, if any.
    pub last_error: Option<String>,
    /// `process` calls that overran the stream's time limit.
    pub deadline_misses: u64,
    /// Median `process` time.
    pub p50: Duration,
    /// 99th percentile `process` time.
    pub p99: Duration,
    /// Longest `process` time.
    pub max: Duration,
    /// Median time from the clock issuing a tick to this stream finishing it: for a sink, the
    /// pipeline's latency.
    pub latency_p50: Duration,
    /// 99th percentile of that latency.
    pub latency_p99: Duration,
    /// Longest such latency.
    pub latency_max: Duration,
}

impl StreamStats {
    /// Items its inputs received and its handler refused.
    pub fn rejected(&self) -> u64 {
        self.drops.iter().map(|d| d.rejected).sum()
    }

    /// Sum of drops over inputs.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().map(|d| d.dropped).sum()
    }

    /// Whether it failed and was left failed (restart policy `never`, or restarts exhausted).
    pub fn has_failed(&self) -> bool {
        self.state == StreamState::Failed
    }
}

/// A snapshot of every stream and the clock.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeStats {
    /// Clock name.
    pub clock: String,
    /// Ticks issued.
    pub clock_ticks: u64,
    /// Ticks the clock skipped because the driver woke late.
    pub clock_missed: u64,
    /// Wall time since start.
    pub elapsed: Duration,
    /// Per stream, in topological order.
    pub streams: Vec<StreamStats>,
}

impl RuntimeStats {
    /// The stream with this id.
    pub fn stream(&self, id: &str) -> Option<&StreamStats> {
        self.streams.iter().find(|s| s.id == id)
    }

    /// Streams left failed, each with its handler and last error: the run did not do what it
    /// was asked, and callers should exit non-zero.
    pub fn failed(&self) -> impl Iterator<Item = &StreamStats> {
        self.streams.iter().filter(|s| s.has_failed())
    }

    /// Streams that rejected items they received (a format they could not follow).
    pub fn rejecting(&self) -> impl Iterator<Item = &StreamStats> {
        self.streams.iter().filter(|s| s.rejected() > 0)
    }

    /// Ticks per second achieved.
    pub fn tick_rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.clock_ticks as f64 / secs
        } else {
            0.0
        }
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

impl fmt::Display for RuntimeStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "clock {}: {} ticks in {:.2} s ({:.1}/s), {} missed",
            self.clock,
            self.clock_ticks,
            self.elapsed.as_secs_f64(),
            self.tick_rate(),
            self.clock_missed
        )?;
        writeln!(
            f,
            "{:<16} {:<14} {:<10} {:>8} {:>7} {:>7} {:>7} {:>7} {:>6} {:>9} {:>9} {:>9} {:>9} state",
            "stream",
            "handler",
            "dispatch",
            "ticks",
            "skip",
            "in",
            "out",
            "drops",
            "errors",
            "p50 µs",
            "p99 µs",
            "max µs",
            "lat99 µs"
        )?;
        for s in &self.streams {
            writeln!(
                f,
                "{:<16} {:<14} {:<10} {:>8} {:>7} {:>7} {:>7} {:>7} {:>6} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {}{}",
                s.id,
                s.handler,
                s.dispatcher,
                s.ticks,
                s.skipped_ticks,
                s.items_in,
                s.items_out,
                s.total_drops(),
                s.errors + s.panics,
                micros(s.p50),
                micros(s.p99),
                micros(s.max),
                micros(s.latency_p99),
                s.state,
                if s.restarts > 0 {
                    format!(" ({} restarts)", s.restarts)
                } else {
                    String::new()
                }
            )?;
        }
        for s in &self.streams {
            // A skip is reported even when the producer could not say how large its pool is
            // (GPU transfers): a frame not produced must show in the summary.
            if s.skipped_pool_empty > 0 || (s.pool_capacity > 0 && s.pool_grown > 0) {
                let capacity = if s.pool_capacity > 0 {
                    format!("{} buffers at most", s.pool_capacity)
                } else {
                    "size not reported".to_owned()
                };
                writeln!(
                    f,
                    "pool of {}: {capacity}, grew by {}, ran dry {} times (frames skipped)",
                    s.id, s.pool_grown, s.skipped_pool_empty
                )?;
            }
        }
        for s in self.failed() {
            writeln!(
                f,
                "{} ({}) failed: {}",
                s.id,
                s.handler,
                s.last_error.as_deref().unwrap_or("no message")
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_a_bucket() {
        let h = Histogram::new();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5);
        let p99 = h.quantile(0.99);
        assert!((500_000..=570_000).contains(&p50), "{p50}");
        assert!((990_000..=1_000_000).contains(&p99), "{p99}");
        assert_eq!(h.max(), 1_000_000);
        assert_eq!(h.quantile(1.0), 1_000_000);
    }
}
