//! The clock thread: takes ticks from the clock, publishes them to the running graph and, with
//! pipeline pacing, waits for each to cross the graph before taking the next.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering, fence};
use std::time::Duration;

use streamlib_clock::{Clock, ClockSourceId, Pacing, Rational, TickWait, TimedTick};

use crate::running::RunningGraph;

/// How often the driver returns from the clock to check for stop and due restarts.
const DRIVER_POLL: Duration = Duration::from_millis(20);
/// How many recent ticks stay readable; a node further behind reads the newest instead.
const TICK_RING: usize = 256;

/// The clock thread's body, until the graph stops.
pub(crate) fn drive(graph: &Arc<RunningGraph>, mut clock: Box<dyn Clock>) {
    let mut clock_ended = false;
    while !graph.is_stopping() {
        if clock_ended {
            std::thread::park_timeout(DRIVER_POLL);
            graph.schedule_all();
            continue;
        }
        match clock.wait_tick(DRIVER_POLL) {
            Ok(TickWait::Tick(tick)) => {
                let seq = graph.publish_tick(&tick);
                graph.set_clock_missed(clock.stats().missed);
                if graph.clock_info.pacing == Pacing::Pipeline {
                    graph.wait_wave(seq);
                }
            }
            Ok(TickWait::Timeout) => graph.schedule_all(),
            Ok(TickWait::Ended) => {
                tracing::info!(clock = %graph.clock_info.name, "clock ended: ending sources");
                clock_ended = true;
                graph.end_sources();
            }
            Err(error) => {
                tracing::error!(clock = %graph.clock_info.name, "clock error: {error}");
                std::thread::sleep(DRIVER_POLL);
            }
        }
    }
}

struct TickCell {
    /// The tick's sequence number once the cell is complete; 0 while it is being rewritten.
    seq: AtomicU64,
    timestamp: AtomicU64,
    frame_number: AtomicU64,
    /// When the runtime issued the tick, ns since start (for tick-to-done latency).
    issued_ns: AtomicU64,
}

/// The recent ticks, written by the clock thread alone and read by every run: a ring of
/// seqlocks, so a reader never blocks the clock and never sees a half-written tick.
pub(crate) struct TickRing {
    cells: Box<[TickCell]>,
    clock_source: ClockSourceId,
    fps: Rational,
}

impl TickRing {
    pub(crate) fn new(clock_source: ClockSourceId, fps: Rational) -> Self {
        let cells = (0..TICK_RING)
            .map(|_| TickCell {
                seq: AtomicU64::new(0),
                timestamp: AtomicU64::new(0),
                frame_number: AtomicU64::new(0),
                issued_ns: AtomicU64::new(0),
            })
            .collect();
        Self {
            cells,
            clock_source,
            fps,
        }
    }

    fn cell(&self, seq: u64) -> &TickCell {
        &self.cells[seq as usize % TICK_RING]
    }

    /// Stores tick `seq` (the clock thread only; one writer).
    pub(crate) fn write(&self, seq: u64, tick: &TimedTick, issued_ns: u64) {
        let cell = self.cell(seq);
        // Seqlock write: invalidate, then (after the release fence) the fields, then publish.
        cell.seq.store(0, Ordering::Relaxed);
        fence(Ordering::Release);
        cell.timestamp.store(tick.timestamp, Ordering::Relaxed);
        cell.frame_number
            .store(tick.frame_number, Ordering::Relaxed);
        cell.issued_ns.store(issued_ns, Ordering::Relaxed);
        // Release: a reader that sees `seq` sees the fields written above.
        cell.seq.store(seq, Ordering::Release);
    }

    /// Tick `seq`, or `None` when its cell was already reused (the reader is more than
    /// `TICK_RING` ticks behind).
    #[inline]
    pub(crate) fn read(&self, seq: u64) -> Option<TimedTick> {
        let cell = self.cell(seq);
        for _ in 0..4 {
            // Acquire: pairs with the release store of `seq` in `write`.
            let s1 = cell.seq.load(Ordering::Acquire);
            let timestamp = cell.timestamp.load(Ordering::Relaxed);
            let frame_number = cell.frame_number.load(Ordering::Relaxed);
            // Pairs with the release fence in `write`: if a rewrite began before the fields
            // were read, the second load of `seq` sees its 0 (or the newer number).
            fence(Ordering::Acquire);
            if s1 == seq && cell.seq.load(Ordering::Relaxed) == seq {
                return Some(self.timed(timestamp, frame_number));
            }
            if s1 > seq {
                break;
            }
            std::hint::spin_loop();
        }
        None
    }

    /// A tick with no timestamp (nothing readable was issued yet).
    pub(crate) fn empty(&self) -> TimedTick {
        self.timed(0, 0)
    }

    fn timed(&self, timestamp: u64, frame_number: u64) -> TimedTick {
        TimedTick {
            timestamp,
            frame_number,
            clock_source_id: self.clock_source,
            fps: self.fps,
        }
    }

    /// When tick `seq` was issued, ns since start; for latency statistics only (a reused cell
    /// gives a newer tick's time, which a node that far behind does not mind).
    #[inline]
    pub(crate) fn issued_ns(&self, seq: u64) -> u64 {
        self.cell(seq).issued_ns.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> TickRing {
        TickRing::new(ClockSourceId(7), Rational::fps(30))
    }

    fn tick(frame_number: u64) -> TimedTick {
        TimedTick {
            timestamp: frame_number * 1000,
            frame_number,
            clock_source_id: ClockSourceId(7),
            fps: Rational::fps(30),
        }
    }

    #[test]
    fn a_written_tick_reads_back_until_its_cell_is_reused() {
        let ring = ring();
        ring.write(1, &tick(10), 5);
        assert_eq!(ring.read(1).map(|t| t.frame_number), Some(10));
        assert_eq!(ring.issued_ns(1), 5);
        ring.write(1 + TICK_RING as u64, &tick(99), 6);
        assert!(ring.read(1).is_none(), "a reused cell is not the old tick");
        assert_eq!(
            ring.read(1 + TICK_RING as u64).map(|t| t.timestamp),
            Some(99_000)
        );
    }
}
