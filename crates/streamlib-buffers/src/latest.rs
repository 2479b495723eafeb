//! The latest-read ring buffer: one writer, any number of readers, each reader sees the newest
//! item; older items are dropped, never queued.
//!
//! # The slot protocol
//! Each slot has a 32-bit `state`: bit 31 (`WRITING`) is set while the writer owns the slot,
//! bits 0..31 count readers *pinning* it. Every transition is a single atomic operation:
//!
//! | who    | operation                          | when                                        |
//! |--------|------------------------------------|---------------------------------------------|
//! | writer | `CAS(0 -> WRITING)`, Acquire       | claims a slot nobody pins, not the newest    |
//! | writer | `fetch_and(!WRITING)`, Release     | releases it after storing value and seq      |
//! | reader | `fetch_add(1)`, Acquire            | pins the slot `latest` names                 |
//! | reader | `fetch_sub(1)`, Release            | unpins it (a drop guard: also if clone panics) |
//!
//! A reader's `fetch_add` can land while the writer holds the slot (it loaded `latest` just
//! before the writer re-claimed that slot). It then sees `WRITING` in the value its own
//! `fetch_add` returned, does not touch the value, and undoes its pin. The writer's release
//! must therefore clear only its own bit: an earlier version stored `0`, which erased such a
//! pin, so the reader's later `fetch_sub` wrapped the state to `0xFFFF_FFFF`. That slot could
//! never be claimed again (the writer hung once two slots were lost), and a third reader could
//! pin the slot while the state read 0, letting the writer overwrite a value being cloned.
//! `tests/loom.rs` checks the protocol under loom; `tests/ring_buffer.rs` stresses it.

use crate::BuffersError;
use crate::sync::{Arc, AtomicU32, AtomicU64, Ordering, UnsafeCell, backoff};

/// Slots a latest-read buffer has unless told otherwise: one being written, one holding the
/// newest item, one spare for a reader that is still cloning the previous newest item.
pub const DEFAULT_SLOTS: usize = 3;
/// The most slots a buffer may have (the slot index is packed into 8 bits).
pub const MAX_SLOTS: usize = 64;

/// Set in a slot's state while the writer owns it; the low bits count readers pinning it.
const WRITING: u32 = 1 << 31;
const IDX_BITS: u64 = 8;
const IDX_MASK: u64 = (1 << IDX_BITS) - 1;

/// Each slot on its own cache line, so readers pinning one slot do not contend with the writer
/// filling another.
#[repr(align(64))]
struct Slot<T> {
    /// `WRITING` while written, plus the number of readers pinning the slot right now (see the
    /// module docs: readers may pin, and immediately unpin, while `WRITING` is set).
    state: AtomicU32,
    /// Sequence number of the item in `value` (0 = never written).
    seq: AtomicU64,
    value: UnsafeCell<Option<T>>,
}

/// An atomic on its own cache line.
#[repr(align(64))]
struct Padded<A>(A);

impl<A> std::ops::Deref for Padded<A> {
    type Target = A;
    fn deref(&self) -> &A {
        &self.0
    }
}

struct Shared<T> {
    slots: Box<[Slot<T>]>,
    /// `seq << 8 | slot index` of the newest published item; 0 before the first write.
    latest: Padded<AtomicU64>,
    /// Items written so far (owned by the writer).
    next_seq: Padded<AtomicU64>,
}

// SAFETY: a slot's value is only written by the thread that moved its state from 0 to WRITING
// (exclusive: no pin, no other writer), and only cloned through `&T` by readers whose own
// increment found WRITING clear (shared; the writer's CAS from 0 fails while any pin is
// counted, and no release erases a pin), so the usual `Send + Sync` bounds of `T` make sharing
// sound.
unsafe impl<T: Send + Sync> Sync for Shared<T> {}
// SAFETY: as above; values move between threads, hence `T: Send`.
unsafe impl<T: Send + Sync> Send for Shared<T> {}

fn unpack(packed: u64) -> (u64, usize) {
    (packed >> IDX_BITS, (packed & IDX_MASK) as usize)
}

/// The writing end of a latest-read ring buffer.
///
/// Writing never blocks on readers: readers hold a slot only while they clone the item (an
/// `Arc` increment for frames), never while they process it. The handle is not `Clone`: one
/// output port owns it; fan-out happens by creating several [`LatestReader`]s.
pub struct LatestBuffer<T> {
    shared: Arc<Shared<T>>,
    /// Rotates the slot search so writes spread over the slots.
    cursor: AtomicU32,
}

impl<T: Clone + Send + Sync> LatestBuffer<T> {
    /// A buffer with [`DEFAULT_SLOTS`] slots.
    pub fn new() -> Self {
        Self::build(DEFAULT_SLOTS)
    }

    /// A buffer with `slots` slots (2 ..= [`MAX_SLOTS`]).
    pub fn with_slots(slots: usize) -> Result<Self, BuffersError> {
        if !(2..=MAX_SLOTS).contains(&slots) {
            return Err(BuffersError::InvalidSlotCount {
                requested: slots,
                max: MAX_SLOTS,
            });
        }
        Ok(Self::build(slots))
    }

    fn build(slots: usize) -> Self {
        let slots = (0..slots)
            .map(|_| Slot {
                state: AtomicU32::new(0),
                seq: AtomicU64::new(0),
                value: UnsafeCell::new(None),
            })
            .collect();
        Self {
            shared: Arc::new(Shared {
                slots,
                latest: Padded(AtomicU64::new(0)),
                next_seq: Padded(AtomicU64::new(0)),
            }),
            cursor: AtomicU32::new(0),
        }
    }

    /// Number of slots.
    pub fn slots(&self) -> usize {
        self.shared.slots.len()
    }

    /// Publishes `item` as the newest one and returns its sequence number (1 for the first
    /// write). The item it displaces from its slot is dropped here, in the writer's thread.
    ///
    /// A buffer has one writer (the output port that owns it); its counters are updated with
    /// plain loads and stores rather than read-modify-write instructions. Writing from two
    /// threads at once stays memory-safe (slots are claimed by compare-and-swap) but may
    /// publish items out of order.
    pub fn write(&self, item: T) -> u64 {
        let shared = &*self.shared;
        let seq = shared.next_seq.load(Ordering::Relaxed) + 1;
        shared.next_seq.store(seq, Ordering::Relaxed);
        let n = shared.slots.len();
        let mut spins = 0u32;
        let idx = loop {
            let packed = shared.latest.load(Ordering::Acquire);
            let (_, latest_idx) = unpack(packed);
            let has_latest = packed != 0;
            let start = self.cursor.load(Ordering::Relaxed) as usize;
            self.cursor
                .store((start as u32).wrapping_add(1), Ordering::Relaxed);
            // The newest slot is skipped (readers must keep finding it); any other slot whose
            // state is exactly 0 has no writer and no pin. Acquire pairs with the Release of
            // the last reader's unpin, so its clone happened before we overwrite.
            let found = (0..n).map(|i| (start + i) % n).find(|&i| {
                (!has_latest || i != latest_idx)
                    && shared.slots[i]
                        .state
                        .compare_exchange(0, WRITING, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
            });
            if let Some(i) = found {
                break i;
            }
            // Every other slot is pinned by a reader that is cloning an item: that takes
            // nanoseconds, so spin, then yield.
            backoff(&mut spins);
        };
        let slot = &shared.slots[idx];
        // SAFETY: the CAS above moved this slot's state from 0 (no reader pinning it) to
        // WRITING. Until WRITING is cleared below, a reader's pin sees WRITING and backs off
        // without touching `value`, and no other CAS from 0 can succeed: we have exclusive
        // access.
        slot.value.with_mut(|value| unsafe { *value = Some(item) });
        slot.seq.store(seq, Ordering::Relaxed);
        // Clear only our bit: pins taken while we held the slot stay counted and are undone by
        // their readers' own `fetch_sub`. Release publishes `value` and `seq` to the next
        // reader whose pin reads this state.
        slot.state.fetch_and(!WRITING, Ordering::Release);
        shared
            .latest
            .store((seq << IDX_BITS) | idx as u64, Ordering::Release);
        seq
    }

    /// A new reader. It counts as having seen everything written so far, so the item that is
    /// newest right now is not "new" to it.
    pub fn reader(&self) -> LatestReader<T> {
        let (seen, _) = unpack(self.shared.latest.load(Ordering::Acquire));
        LatestReader {
            shared: Arc::clone(&self.shared),
            last_seq: AtomicU64::new(seen),
            read: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// Items written so far.
    pub fn written(&self) -> u64 {
        self.shared.next_seq.load(Ordering::Relaxed)
    }

    /// Slots whose state is not idle right now: pinned by a reader or being written. A
    /// diagnostic: when no read or write is in progress it must be 0 (a slot lost to a broken
    /// pin count would show here for good).
    pub fn busy_slots(&self) -> usize {
        self.shared
            .slots
            .iter()
            .filter(|slot| slot.state.load(Ordering::Acquire) != 0)
            .count()
    }
}

impl<T: Clone + Send + Sync> Default for LatestBuffer<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> std::fmt::Debug for LatestBuffer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatestBuffer")
            .field("slots", &self.shared.slots.len())
            .field("written", &self.shared.next_seq.load(Ordering::Relaxed))
            .finish()
    }
}

/// The newest item of a buffer, as one reader saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latest<T> {
    /// The item (a clone: for frames, a reference-count increment).
    pub item: T,
    /// Its sequence number (1-based write count).
    pub seq: u64,
    /// Whether this reader had not seen it before.
    pub is_new: bool,
}

/// One reader of a [`LatestBuffer`], for one consumer (an input port). Its counters are
/// atomics so that statistics can be read from other threads while it reads.
pub struct LatestReader<T> {
    shared: Arc<Shared<T>>,
    last_seq: AtomicU64,
    read: AtomicU64,
    dropped: AtomicU64,
}

impl<T: Clone + Send + Sync> LatestReader<T> {
    /// The newest item, new or not; `None` before the first write.
    pub fn read_latest(&self) -> Option<Latest<T>> {
        let (item, seq) = self.load()?;
        // A reader belongs to one consumer: its own counters need no read-modify-write.
        let previous = self.last_seq.load(Ordering::Relaxed);
        let is_new = seq > previous;
        if is_new {
            self.last_seq.store(seq, Ordering::Relaxed);
            self.read
                .store(self.read.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            let skipped = seq - previous - 1;
            if skipped > 0 {
                self.dropped.store(
                    self.dropped.load(Ordering::Relaxed) + skipped,
                    Ordering::Relaxed,
                );
            }
        }
        Some(Latest { item, seq, is_new })
    }

    /// The newest item if this reader has not seen it yet. Never returns an item twice.
    pub fn read_new(&self) -> Option<T> {
        if !self.has_new() {
            return None;
        }
        let latest = self.read_latest()?;
        latest.is_new.then_some(latest.item)
    }

    /// Whether an item newer than the last one this reader saw has been published.
    pub fn has_new(&self) -> bool {
        let (seq, _) = unpack(self.shared.latest.load(Ordering::Acquire));
        seq > self.last_seq.load(Ordering::Relaxed)
    }

    /// Items this reader received as new.
    pub fn read_count(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// Items published that this reader never received because a newer one replaced them
    /// before it read.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Sequence number of the last item this reader saw.
    pub fn last_seq(&self) -> u64 {
        self.last_seq.load(Ordering::Relaxed)
    }

    fn load(&self) -> Option<(T, u64)> {
        let shared = &*self.shared;
        let mut spins = 0u32;
        loop {
            let packed = shared.latest.load(Ordering::Acquire);
            if packed == 0 {
                return None;
            }
            let (seq, idx) = unpack(packed);
            let slot = &shared.slots[idx];
            // Pin first, then look: Acquire pairs with the writer's Release of this slot. The
            // pin is undone when `pin` drops (Release), even if `T::clone` panics: a pin left
            // behind would lose the slot for good.
            let pin = Pin::new(&slot.state);
            if pin.found & WRITING == 0 && slot.seq.load(Ordering::Acquire) == seq {
                // SAFETY: our increment found WRITING clear, so no writer holds the slot and
                // none can claim it (its CAS needs the state to be 0) until `pin` drops; the
                // seq check says `value` holds the item published as `seq`.
                let item = slot.value.with(|value| unsafe { (*value).clone() });
                drop(pin);
                if let Some(item) = item {
                    return Some((item, seq));
                }
            } else {
                // The slot is being written, or was rewritten since we read `latest`: undo the
                // pin (the writer's release kept it counted) and read `latest` again.
                drop(pin);
            }
            backoff(&mut spins);
        }
    }
}

/// A reader's pin on a slot: `fetch_add(1)` when taken, `fetch_sub(1)` when dropped.
struct Pin<'a> {
    state: &'a AtomicU32,
    /// The state before our increment.
    found: u32,
}

impl<'a> Pin<'a> {
    fn new(state: &'a AtomicU32) -> Self {
        let found = state.fetch_add(1, Ordering::Acquire);
        Self { state, found }
    }
}

impl Drop for Pin<'_> {
    fn drop(&mut self) {
        // Release: our clone of the value happens before the writer's next claim of the slot.
        self.state.fetch_sub(1, Ordering::Release);
    }
}

impl<T> std::fmt::Debug for LatestReader<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatestReader")
            .field("last_seq", &self.last_seq.load(Ordering::Relaxed))
            .field("read", &self.read.load(Ordering::Relaxed))
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn empty_buffer_reads_nothing() {
        let buffer = LatestBuffer::<u32>::new();
        let reader = buffer.reader();
        assert!(reader.read_latest().is_none());
        assert!(!reader.has_new());
    }

    #[test]
    fn reader_sees_newest_and_counts_drops() {
        let buffer = LatestBuffer::new();
        let reader = buffer.reader();
        for i in 1..=5u32 {
            buffer.write(i);
        }
        let latest = reader.read_latest().unwrap();
        assert_eq!((latest.item, latest.seq, latest.is_new), (5, 5, true));
        assert_eq!(reader.dropped(), 4);
        assert_eq!(reader.read_new(), None);
        let again = reader.read_latest().unwrap();
        assert!(!again.is_new);
        assert_eq!(reader.read_count(), 1);
    }

    #[test]
    fn slot_count_is_validated() {
        assert!(LatestBuffer::<u8>::with_slots(1).is_err());
        assert!(LatestBuffer::<u8>::with_slots(MAX_SLOTS + 1).is_err());
        assert_eq!(LatestBuffer::<u8>::with_slots(2).unwrap().slots(), 2);
    }

    /// A reader whose clone panics leaves no pin behind: the slot stays usable.
    #[test]
    fn a_panicking_clone_releases_its_pin() {
        #[derive(Debug)]
        struct Fragile(bool);
        impl Clone for Fragile {
            fn clone(&self) -> Self {
                assert!(!self.0, "clone refused");
                Self(self.0)
            }
        }
        let buffer = LatestBuffer::with_slots(2).unwrap();
        buffer.write(Fragile(true));
        let reader = buffer.reader();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            reader.read_latest();
        }));
        assert!(caught.is_err());
        assert_eq!(
            buffer.busy_slots(),
            0,
            "the panicking reader's pin was left"
        );
        // Both slots can still be written (the old newest one included).
        for _ in 0..3 {
            buffer.write(Fragile(false));
        }
        assert!(reader.read_latest().is_some());
    }

    #[test]
    fn displaced_items_are_dropped() {
        let buffer = LatestBuffer::new();
        let tracked = Arc::new(());
        for _ in 0..10 {
            buffer.write(Arc::clone(&tracked));
        }
        // Only the slots hold clones; the rest were dropped on overwrite.
        assert!(Arc::strong_count(&tracked) <= 1 + DEFAULT_SLOTS);
        drop(buffer);
        assert_eq!(Arc::strong_count(&tracked), 1);
    }
}
