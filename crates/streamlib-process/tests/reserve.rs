//! Reserved slots: a parent-side `BufferPool` over part of a `ShmPool` (what `@process` gives
//! the producers feeding a child). Its buffers are found by address, lent to a child, and a
//! reclaim returns them to the parent, never to the free list another acquire could take.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use streamlib_process::{BufferPool, ChildId, ProcessError, ShmPool, SlotOwner};

#[test]
fn a_pool_over_reserved_slots_lends_its_buffers_and_gets_them_back() {
    let shm = ShmPool::new("reserve", 4, 4096).unwrap();
    let storage = shm.reserve(2).unwrap();
    assert_eq!(shm.available(), 2);
    // SAFETY: fresh storage from `reserve`, this pool its only user.
    let frames = unsafe { BufferPool::with_storage("frames", 1000, storage) }.unwrap();
    let mut buf = frames.acquire().unwrap();
    buf[0] = 42;
    let buf = buf.freeze();
    let slot = shm
        .slot_of(buf.as_ptr())
        .expect("a buffer of the pool is a slot");
    assert_eq!(shm.slot_of(buf[1..].as_ptr()), None, "not a slot's start");
    let lease = shm.lend(slot).unwrap();
    assert_eq!(lease.as_slice()[0], 42, "the same memory");
    let child = ChildId(3);
    let (index, generation) = lease.hand_to(child).unwrap();
    assert_eq!(
        shm.owner(index),
        Some((SlotOwner::Child(child), generation))
    );
    // The child died: the slot comes back to the parent (its pool still manages it).
    assert_eq!(shm.reclaim(child), 1);
    assert_eq!(shm.owner(index), Some((SlotOwner::Parent, generation + 1)));
    assert_eq!(
        shm.available(),
        2,
        "a kept slot never reaches the free list"
    );
    // Lent again at the new generation; the old one is refused.
    let again = shm.lend(slot).unwrap();
    assert_eq!(again.generation(), generation + 1);
    drop(again);
    assert!(matches!(
        shm.take_back(child, index, generation),
        Err(ProcessError::SlotNotHeld { .. })
    ));
    drop(buf);
    // A slot nobody reserved cannot be lent.
    let free = shm.acquire().unwrap();
    let index = free.index();
    drop(free);
    assert!(shm.lend(index).is_err());
}

#[test]
fn dropping_the_storage_frees_its_slots() {
    let shm = ShmPool::new("reserve-drop", 4, 4096).unwrap();
    let storage = shm.reserve(3).unwrap();
    assert_eq!(shm.available(), 1);
    // SAFETY: fresh storage from `reserve`, this pool its only user.
    let frames = unsafe { BufferPool::with_storage("frames", 100, storage) }.unwrap();
    let buf = frames.acquire().unwrap().freeze();
    drop(frames);
    assert_eq!(shm.available(), 1, "a buffer still holds the storage");
    drop(buf);
    assert_eq!(shm.available(), 4, "every reserved slot is free again");
    assert!(shm.reserve(4).is_ok());
}

#[test]
fn reserving_more_than_is_free_takes_nothing() {
    let shm = ShmPool::new("reserve-all", 2, 4096).unwrap();
    assert!(matches!(
        shm.reserve(3),
        Err(ProcessError::PoolExhausted { .. })
    ));
    assert_eq!(shm.available(), 2);
}
