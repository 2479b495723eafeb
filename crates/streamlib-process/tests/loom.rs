//! Model checks of the slot state machine (`slots.rs`) under every interleaving loom reaches:
//! the same compare-and-swap code the shared-memory pool runs, over words in ordinary memory
//! (loom cannot instrument a mapping).
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p streamlib-process --release --test loom`
//! (in its own target directory, as `cargo xtask loom` does for the other crates). Built
//! normally this file is empty.
//!
//! What it guards: two acquires never get the same slot; a slot is taken back from a child
//! either by its `take_back` or by a reclaim, never both; a reclaimed slot's generation moves
//! on, so the dead child's stale index is refused; a slot a parent-side pool keeps comes back
//! to the parent, not the free list. Making `reclaim` store without the compare-and-swap, or
//! `acquire` not bump the generation, makes these fail.
#![cfg(loom)]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use loom::sync::Arc;
use loom::thread;
use streamlib_process::{ChildId, LoomSlots, SlotOwner};

const CHILD: ChildId = ChildId(7);

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(f);
}

/// Two threads acquire at once from two free slots: each gets its own, and both release.
#[test]
fn concurrent_acquires_get_distinct_slots() {
    model(|| {
        let slots = Arc::new(LoomSlots::new(2));
        let other = Arc::clone(&slots);
        let t = thread::spawn(move || other.acquire());
        let mine = slots.acquire();
        let theirs = t.join().unwrap();
        let (a, ga) = mine.expect("a slot for the first");
        let (b, gb) = theirs.expect("a slot for the second");
        assert_ne!(a, b, "the same slot twice");
        assert!(slots.release(a, ga));
        assert!(slots.release(b, gb));
        assert_eq!(slots.owner(a), Some((SlotOwner::Free, 1)));
        assert_eq!(slots.owner(b), Some((SlotOwner::Free, 1)));
    });
}

/// The child answers (take_back) while the parent reclaims after noticing its death: exactly
/// one of them gets the slot.
#[test]
fn take_back_and_reclaim_race_for_one_slot() {
    model(|| {
        let slots = Arc::new(LoomSlots::new(1));
        let (index, generation) = slots.acquire().unwrap();
        assert!(slots.hand_to_child(index, generation, CHILD));
        let other = Arc::clone(&slots);
        let t = thread::spawn(move || other.reclaim(CHILD));
        let taken = slots.take_back(index, generation, CHILD);
        let reclaimed = t.join().unwrap();
        assert_eq!(
            usize::from(!taken),
            reclaimed,
            "both or neither got the slot"
        );
        match slots.owner(index).unwrap() {
            (SlotOwner::Parent, g) => {
                assert!(taken);
                assert_eq!(g, generation);
            }
            (SlotOwner::Free, g) => {
                assert!(!taken);
                assert_eq!(g, generation + 1, "a reclaim bumps the generation");
            }
            other => panic!("slot left {other:?}"),
        }
    });
}

/// A producer acquires while the parent reclaims a dead child's slot: the acquire never gets
/// a slot still marked as the child's, and the child's old index is refused afterwards.
#[test]
fn acquire_during_a_reclaim_never_sees_the_childs_slot() {
    model(|| {
        let slots = Arc::new(LoomSlots::new(2));
        let (held, generation) = slots.acquire().unwrap();
        assert!(slots.hand_to_child(held, generation, CHILD));
        let other = Arc::clone(&slots);
        let t = thread::spawn(move || other.reclaim(CHILD));
        let got = slots.acquire().expect("the free slot at least");
        assert_eq!(t.join().unwrap(), 1);
        assert!(
            matches!(slots.owner(got.0), Some((SlotOwner::Parent, g)) if g == got.1),
            "acquired a slot not leased to the parent"
        );
        assert!(
            !slots.take_back(held, generation, CHILD),
            "a stale index was taken back"
        );
    });
}

/// A slot a parent-side pool keeps: reclaimed into a parent lease, never onto the free list
/// where a concurrent acquire could take it.
#[test]
fn a_kept_slot_goes_back_to_the_parent() {
    model(|| {
        let slots = Arc::new(LoomSlots::new(1));
        let (index, generation) = slots.acquire().unwrap();
        assert!(slots.hand_to_child(index, generation, CHILD));
        let other = Arc::clone(&slots);
        let t = thread::spawn(move || other.acquire());
        assert_eq!(slots.reclaim_kept(CHILD), 1);
        assert_eq!(t.join().unwrap(), None, "a kept slot reached the free list");
        assert_eq!(
            slots.owner(index),
            Some((SlotOwner::Parent, generation + 1))
        );
    });
}
