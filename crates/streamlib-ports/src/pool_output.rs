//! A realtime producer's pool, seen from its output: sized from what the readers can hold,
//! and when it runs dry the frame is skipped and counted, never an error.
//!
//! # Sizing
//! A frame written to an output stays alive while anything downstream holds it: the ring's
//! slots (latest readers), each ordered input's queue, and what each reader's handler keeps
//! past its queue ([`InputPort::holding`](crate::InputPort::holding), e.g. an encoder
//! thread's jobs). Connecting adds that up in
//! [`OutputPort::frames_held_downstream`]; [`OutputPort::pool_capacity`] adds the frame being
//! written and [`POOL_MARGIN`]. Create the pool after the output is connected (in `on_start`
//! or at the first frame) so the graph is known.
//!
//! # Running dry
//! [`OutputPort::acquire_or_skip`] returns `None` when the pool is at its maximum: the
//! producer skips the frame (its readers keep the previous one) and the skip is counted on the
//! output, where the runtime's statistics read it ([`PoolCounters`]).
//!
//! # Memory someone else provides
//! Whoever wires the graph may give an output a [`PoolProvider`]
//! ([`OutputPort::set_pool_provider`]): [`FramePool::for_output`](crate::FramePool::for_output)
//! and [`FramePool::fit_output`](crate::FramePool::fit_output) then take the producer's pool
//! from it, so frames are written straight into that memory. Process isolation uses this to
//! put an upstream's frames in the shared memory its child process maps: the frame then
//! crosses as a slot index, not a copy.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use streamlib_buffers::{BufferPool, PoolBufMut};

use crate::{Message, OutputPort};

/// Buffers a pool keeps beyond what the graph can hold: scheduling jitter between a reader
/// releasing a frame and the producer's next acquire.
pub const POOL_MARGIN: usize = 2;

/// What a producer's pool did for one output, as the runtime's statistics report it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolCounters {
    /// Frames not produced because the pool was empty (skipped and counted; readers keep the
    /// previous frame).
    pub skipped_pool_empty: u64,
    /// Buffers allocated after the pool was created because it was empty (a warm-up cost).
    pub grown: u64,
    /// The most buffers the pool may hold (0 while the producer has reported no pool).
    pub capacity: u64,
}

/// Gives the producer of an output a pool in memory it supplies (see the module docs).
pub trait PoolProvider: Send + Sync + 'static {
    /// A pool named `name` of at least `max` buffers of `buffer_len` bytes, or `None` when it
    /// cannot supply one (the producer then makes its own pool, as without a provider).
    fn pool(&self, name: &str, buffer_len: usize, max: usize) -> Option<BufferPool<u8>>;
}

/// The counters behind [`PoolCounters`]; written only by the output's single writer. Also
/// where the output's [`PoolProvider`] is kept.
#[derive(Default)]
pub(crate) struct PoolCells {
    skipped: AtomicU64,
    grown: AtomicU64,
    capacity: AtomicU64,
    /// Read when the producer creates its pool (start), never per frame.
    provider: Mutex<Option<Arc<dyn PoolProvider>>>,
}

impl fmt::Debug for PoolCells {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolCells")
            .field("counters", &self.snapshot())
            .field("provider", &self.provider().is_some())
            .finish()
    }
}

impl PoolCells {
    pub(crate) fn set_provider(&self, provider: Option<Arc<dyn PoolProvider>>) {
        *self.provider.lock().unwrap_or_else(PoisonError::into_inner) = provider;
    }

    pub(crate) fn provider(&self) -> Option<Arc<dyn PoolProvider>> {
        self.provider
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn snapshot(&self) -> PoolCounters {
        PoolCounters {
            skipped_pool_empty: self.skipped.load(Ordering::Relaxed),
            grown: self.grown.load(Ordering::Relaxed),
            capacity: self.capacity.load(Ordering::Relaxed),
        }
    }
}

/// Adds `n` to a counter that has a single writer, without a read-modify-write instruction.
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

impl<T: Message> OutputPort<T> {
    /// Makes `provider` supply the pool of this output's producer (or, with `None`, lets the
    /// producer allocate its own again). Set it before the producer starts: producers ask when
    /// they create their pool.
    pub fn set_pool_provider(&self, provider: Option<Arc<dyn PoolProvider>>) {
        self.pool_cells().set_provider(provider);
    }

    /// The provider set with [`set_pool_provider`](Self::set_pool_provider), if any.
    pub fn pool_provider(&self) -> Option<Arc<dyn PoolProvider>> {
        self.pool_cells().provider()
    }

    /// How many buffers a pool feeding this output needs: what the connected inputs can hold
    /// ([`frames_held_downstream`](Self::frames_held_downstream)), one being written, and
    /// [`POOL_MARGIN`]; at least `at_least` (the producer's own floor, e.g. frames it keeps).
    pub fn pool_capacity(&self, at_least: usize) -> usize {
        (self.frames_held_downstream() + 1 + POOL_MARGIN).max(at_least)
    }

    /// A buffer from `pool` for the next frame on this output, or `None` when the pool is
    /// empty: the caller skips the frame (returns `Ok(())` without writing), and the skip is
    /// counted here. Never blocks; the pool growing is counted too.
    pub fn acquire_or_skip<U>(&self, pool: &BufferPool<U>) -> Option<PoolBufMut<U>>
    where
        U: Copy + Default + Send + Sync + 'static,
    {
        let grown = pool.grown();
        let result = pool.acquire();
        let cells = self.pool_cells();
        cells
            .capacity
            .store(pool.capacity() as u64, Ordering::Relaxed);
        match result {
            Ok(buf) => {
                let now = pool.grown();
                if now > grown {
                    bump(&cells.grown, now - grown);
                }
                Some(buf)
            }
            Err(_) => {
                bump(&cells.skipped, 1);
                None
            }
        }
    }

    /// Counts a frame skipped because a pool of `capacity` buffers was empty, for pools that
    /// [`acquire_or_skip`](Self::acquire_or_skip) cannot take (GPU texture pools). A
    /// `capacity` of 0 (unknown) leaves the recorded capacity as it was.
    pub fn skip_pool_empty(&self, capacity: usize) {
        let cells = self.pool_cells();
        if capacity > 0 {
            cells.capacity.store(capacity as u64, Ordering::Relaxed);
        }
        bump(&cells.skipped, 1);
    }

    /// Counts buffers a pool of `capacity` allocated because it was empty, for pools that
    /// [`acquire_or_skip`](Self::acquire_or_skip) cannot take.
    pub fn record_pool_grown(&self, grown: u64, capacity: usize) {
        let cells = self.pool_cells();
        cells.capacity.store(capacity as u64, Ordering::Relaxed);
        bump(&cells.grown, grown);
    }

    /// What the pool feeding this output did so far.
    pub fn pool_counters(&self) -> PoolCounters {
        self.pool_cells().snapshot()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::{DeliveryMode, InputPort, MemoryCaps, VideoFrame};

    #[test]
    fn capacity_adds_up_what_readers_hold() {
        let out = OutputPort::<VideoFrame>::new("video", MemoryCaps::CPU);
        assert_eq!(out.pool_capacity(0), 1 + POOL_MARGIN);
        let latest = InputPort::<VideoFrame>::new("a", MemoryCaps::CPU);
        let latest2 = InputPort::<VideoFrame>::new("b", MemoryCaps::CPU).holding(2);
        let ordered = InputPort::<VideoFrame>::new("c", MemoryCaps::CPU)
            .with_delivery(DeliveryMode::Ordered { capacity: 8 })
            .holding(5);
        for input in [&latest, &latest2, &ordered] {
            out.handle()
                .erased()
                .connect_to(&*input.handle().erased())
                .unwrap();
        }
        // Ring of 3 (shared by both latest readers) + 1 + 2 held, queue of 8 + 5 held.
        assert_eq!(out.frames_held_downstream(), 3 + 1 + 2 + 8 + 5);
        assert_eq!(out.pool_capacity(0), 19 + 1 + POOL_MARGIN);
        assert_eq!(out.pool_capacity(64), 64);
    }

    /// A pass-through handler (`source ! convert ! writer` where convert has nothing to do)
    /// forwards the source's frames: the source's pool must cover what the writer holds.
    #[test]
    fn capacity_follows_inputs_that_forward_their_items() {
        let connect = |out: &OutputPort<VideoFrame>, input: &InputPort<VideoFrame>| {
            out.handle()
                .erased()
                .connect_to(&*input.handle().erased())
                .unwrap();
        };
        let source = OutputPort::<VideoFrame>::new("video", MemoryCaps::CPU);
        let pass_in = InputPort::<VideoFrame>::new("video", MemoryCaps::CPU);
        let pass_out = OutputPort::<VideoFrame>::new("video", MemoryCaps::CPU);
        pass_in.forwards_to(&pass_out);
        let writer = InputPort::<VideoFrame>::new("video", MemoryCaps::CPU)
            .with_delivery(DeliveryMode::Ordered { capacity: 8 })
            .holding(6);
        // The upstream link first, as a chain is wired: the downstream part is counted when
        // the source sizes its pool, not when it connected.
        connect(&source, &pass_in);
        connect(&pass_out, &writer);
        // Ring of 3 + 1 held by the pass-through, then the writer's queue of 8 + 6.
        assert_eq!(source.frames_held_downstream(), 3 + 1 + 8 + 6);
        assert_eq!(pass_out.frames_held_downstream(), 8 + 6);
    }

    #[test]
    fn empty_pool_skips_and_counts() {
        let out = OutputPort::<VideoFrame>::new("video", MemoryCaps::CPU);
        let pool = BufferPool::<u8>::new("p", 4, 1, 2).unwrap();
        let a = out.acquire_or_skip(&pool).unwrap();
        let b = out.acquire_or_skip(&pool).unwrap();
        assert!(out.acquire_or_skip(&pool).is_none());
        assert_eq!(
            out.pool_counters(),
            PoolCounters {
                skipped_pool_empty: 1,
                grown: 1,
                capacity: 2
            }
        );
        drop((a, b));
        assert!(out.acquire_or_skip(&pool).is_some());
        assert_eq!(out.pool_counters().skipped_pool_empty, 1);
    }
}
