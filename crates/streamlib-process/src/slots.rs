//! The slot state machine: one 64-bit word per slot, changed only by compare-and-swap.
//!
//! A word packs the state (free, leased to the parent, leased to a child), the child's id and
//! a generation counter that grows on every acquire, so a slot index from an earlier lease (a
//! stale frame, a restarted child's leftovers) is told apart from the current one:
//!
//! ```text
//!  bits 0..8   kind: 0 free, 1 parent, 2 child
//!  bits 8..24  child id (kind 2 only)
//!  bits 32..64 generation
//! ```
//!
//! Transitions: free(g) → parent(g+1) (`acquire`), parent(g) → free(g) (`release`),
//! parent(g) → child(c, g) (`hand_to_child`), child(c, g) → parent(g) (`take_back`),
//! child(c, g) → free(g+1) (`reclaim`). Only the parent process writes the words; the child
//! maps them read-only to check that a slot it is told about is leased to it. No lock, no
//! allocation: a scan of at most `slots` words per acquire.

use crate::sync::{AtomicU64, AtomicUsize, Ordering};

const KIND_MASK: u64 = 0xff;
const KIND_FREE: u64 = 0;
const KIND_PARENT: u64 = 1;
const KIND_CHILD: u64 = 2;

/// Who holds a slot, as its state word says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotOwner {
    /// In the pool, ready to be acquired.
    Free,
    /// Leased to the parent (a [`SlotLease`](crate::SlotLease) is alive).
    Parent,
    /// Handed to the child with this id.
    Child(ChildId),
    /// A word no transition writes (only a corrupted header shows this).
    Invalid(u64),
}

/// The id a pool knows a child by (several children may share one pool).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChildId(pub u16);

impl std::fmt::Display for ChildId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "child #{}", self.0)
    }
}

fn pack(kind: u64, child: u16, generation: u32) -> u64 {
    kind | (u64::from(child) << 8) | (u64::from(generation) << 32)
}

/// The generation stored in a word.
pub(crate) fn generation(word: u64) -> u32 {
    (word >> 32) as u32
}

/// Decodes a state word.
pub(crate) fn owner(word: u64) -> SlotOwner {
    match word & KIND_MASK {
        KIND_FREE if word & 0xffff_ff00 == 0 => SlotOwner::Free,
        KIND_PARENT if word & 0xffff_ff00 == 0 => SlotOwner::Parent,
        KIND_CHILD if word & 0xff00_0000 == 0 => SlotOwner::Child(ChildId((word >> 8) as u16)),
        _ => SlotOwner::Invalid(word),
    }
}

/// The state words of a pool's slots and the parent's scan hint.
#[derive(Clone, Copy)]
pub(crate) struct SlotStates<'a> {
    pub(crate) words: &'a [AtomicU64],
    pub(crate) hint: &'a AtomicUsize,
}

impl SlotStates<'_> {
    /// Leases a free slot to the parent: its index and new generation.
    pub(crate) fn acquire(self) -> Option<(u32, u32)> {
        let n = self.words.len();
        let start = self.hint.load(Ordering::Relaxed);
        for step in 0..n {
            let index = (start + step) % n;
            let word = &self.words[index];
            let current = word.load(Ordering::Relaxed);
            if owner(current) != SlotOwner::Free {
                continue;
            }
            let next_generation = generation(current).wrapping_add(1);
            let next = pack(KIND_PARENT, 0, next_generation);
            // Acquire: what the slot's last holder wrote is visible to the new one.
            if word
                .compare_exchange(current, next, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                self.hint.store((index + 1) % n, Ordering::Relaxed);
                return Some((index as u32, next_generation));
            }
        }
        None
    }

    /// One transition by compare-and-swap: `Err` carries the word actually found.
    fn swap(self, index: u32, from: u64, to: u64) -> Result<(), u64> {
        let Some(word) = self.words.get(index as usize) else {
            return Err(u64::MAX);
        };
        word.compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
    }

    /// Returns a parent lease to the pool.
    pub(crate) fn release(self, index: u32, generation: u32) -> Result<(), u64> {
        self.swap(
            index,
            pack(KIND_PARENT, 0, generation),
            pack(KIND_FREE, 0, generation),
        )
    }

    /// Marks a parent lease as handed to `child`.
    pub(crate) fn hand_to_child(
        self,
        index: u32,
        generation: u32,
        child: ChildId,
    ) -> Result<(), u64> {
        self.swap(
            index,
            pack(KIND_PARENT, 0, generation),
            pack(KIND_CHILD, child.0, generation),
        )
    }

    /// Takes a slot `child` answered with back into a parent lease.
    pub(crate) fn take_back(self, index: u32, generation: u32, child: ChildId) -> Result<(), u64> {
        self.swap(
            index,
            pack(KIND_CHILD, child.0, generation),
            pack(KIND_PARENT, 0, generation),
        )
    }

    /// Takes every slot `child` holds away from it, bumping their generations: how many. A
    /// slot `keep` says the parent keeps (one a parent-side pool manages, see
    /// `ShmPool::reserve`) becomes the parent's, every other one free.
    pub(crate) fn reclaim(self, child: ChildId, keep: impl Fn(usize) -> bool) -> usize {
        let mut reclaimed = 0;
        for (index, word) in self.words.iter().enumerate() {
            let mut current = word.load(Ordering::Acquire);
            while owner(current) == SlotOwner::Child(child) {
                let kind = if keep(index) { KIND_PARENT } else { KIND_FREE };
                let next = pack(kind, 0, generation(current).wrapping_add(1));
                match word.compare_exchange(current, next, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => {
                        reclaimed += 1;
                        break;
                    }
                    Err(found) => current = found,
                }
            }
        }
        reclaimed
    }

    /// The owner of slot `index` now.
    pub(crate) fn owner(self, index: u32) -> Option<(SlotOwner, u32)> {
        let word = self.words.get(index as usize)?.load(Ordering::Acquire);
        Some((owner(word), generation(word)))
    }
}

/// The slot state machine over words in ordinary memory, for the loom model (`tests/loom.rs`):
/// the same code the shared-memory pool runs, without the mapping loom cannot instrument.
#[cfg(loom)]
#[derive(Debug)]
pub struct LoomSlots {
    words: Vec<AtomicU64>,
    hint: AtomicUsize,
}

#[cfg(loom)]
impl LoomSlots {
    /// `slots` free slots.
    pub fn new(slots: usize) -> Self {
        Self {
            words: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            hint: AtomicUsize::new(0),
        }
    }

    fn states(&self) -> SlotStates<'_> {
        SlotStates {
            words: &self.words,
            hint: &self.hint,
        }
    }

    /// See the pool's `acquire`: index and generation.
    pub fn acquire(&self) -> Option<(u32, u32)> {
        self.states().acquire()
    }

    /// Parent lease back to the pool.
    pub fn release(&self, index: u32, generation: u32) -> bool {
        self.states().release(index, generation).is_ok()
    }

    /// Parent lease to `child`.
    pub fn hand_to_child(&self, index: u32, generation: u32, child: ChildId) -> bool {
        self.states()
            .hand_to_child(index, generation, child)
            .is_ok()
    }

    /// Child's slot back to the parent.
    pub fn take_back(&self, index: u32, generation: u32, child: ChildId) -> bool {
        self.states().take_back(index, generation, child).is_ok()
    }

    /// Frees what `child` holds.
    pub fn reclaim(&self, child: ChildId) -> usize {
        self.states().reclaim(child, |_| false)
    }

    /// Takes back what `child` holds into parent leases (slots a parent-side pool manages).
    pub fn reclaim_kept(&self, child: ChildId) -> usize {
        self.states().reclaim(child, |_| true)
    }

    /// Owner and generation of `index`.
    pub fn owner(&self, index: u32) -> Option<(SlotOwner, u32)> {
        self.states().owner(index)
    }
}
