//! Model checks of the lock-free buffers under every interleaving loom reaches.
//!
//! Run with `cargo xtask loom` (that is, `RUSTFLAGS="--cfg loom" cargo test -p
//! streamlib-buffers --release --test loom`, in its own target directory). Built normally this
//! file is empty.
//!
//! Each model fails when the protocol it guards is broken: putting the ring's old release
//! (`state.store(0)` instead of clearing only `WRITING`) back makes `ring_*` fail, with a slot
//! left busy or a value cloned while it was written (loom reports the concurrent access).
#![cfg(loom)]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use loom::sync::Arc;
use loom::thread;
use streamlib_buffers::{BufferPool, LatestBuffer, OrderedQueue, OverflowPolicy, PushOutcome};

/// Explores interleavings with at most `preemptions` forced context switches (loom's bound;
/// every bug loom has found in practice needs few, and the unbounded space is too large for
/// three threads with retry loops).
fn model(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(preemptions);
    builder.check(f);
}

/// Reads twice and checks what it got: the item is the one published under its sequence
/// number (items carry their own number) and never older than what this reader saw before.
fn read_twice(reader: &streamlib_buffers::LatestReader<u64>) {
    let mut last = 0;
    for _ in 0..2 {
        if let Some(latest) = reader.read_latest() {
            assert_eq!(latest.item, latest.seq, "a value from another write");
            assert!(
                latest.seq >= last,
                "went back from {last} to {}",
                latest.seq
            );
            last = latest.seq;
        }
    }
}

/// After every thread finished: no slot is left pinned or claimed, and both a write and a
/// fresh reader complete.
fn assert_idle_and_usable(ring: &LatestBuffer<u64>, last_written: u64) {
    assert_eq!(
        ring.busy_slots(),
        0,
        "a slot's state did not return to idle"
    );
    assert_eq!(
        ring.reader().read_latest().map(|l| l.item),
        Some(last_written)
    );
    assert_eq!(ring.write(last_written + 1), last_written + 1);
    assert_eq!(ring.busy_slots(), 0);
}

/// The model: 3 slots, 1 writer, 2 readers.
#[test]
fn ring_three_slots_one_writer_two_readers() {
    model(3, || {
        let ring = Arc::new(LatestBuffer::<u64>::with_slots(3).unwrap());
        ring.write(1);
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let reader = ring.reader();
                thread::spawn(move || read_twice(&reader))
            })
            .collect();
        for seq in 2..=4 {
            assert_eq!(ring.write(seq), seq);
        }
        for reader in readers {
            reader.join().unwrap();
        }
        assert_idle_and_usable(&ring, 4);
    });
}

/// The smallest ring, where the writer re-claims a slot a reader just looked up after only
/// two more writes: the old release's lost pin shows here with one reader.
#[test]
fn ring_two_slots_one_writer_one_reader() {
    model(3, || {
        let ring = Arc::new(LatestBuffer::<u64>::with_slots(2).unwrap());
        ring.write(1);
        let reader = ring.reader();
        let handle = thread::spawn(move || read_twice(&reader));
        for seq in 2..=3 {
            ring.write(seq);
        }
        handle.join().unwrap();
        assert_idle_and_usable(&ring, 3);
    });
}

/// Two threads share a pool of two buffers: a buffer is never handed to both at once (each
/// marks its buffer and checks the mark after sharing it), and every buffer comes back.
#[test]
fn pool_never_hands_out_a_buffer_twice() {
    model(3, || {
        let pool = BufferPool::<u64>::new("loom", 1, 1, 2).unwrap();
        let threads: Vec<_> = (1..=2u64)
            .map(|mark| {
                let pool = pool.clone();
                thread::spawn(move || {
                    let Ok(mut buf) = pool.acquire() else {
                        return;
                    };
                    buf[0] = mark;
                    let shared = buf.freeze();
                    let other = shared.clone();
                    drop(shared);
                    assert_eq!(other[0], mark, "another thread wrote into our buffer");
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(pool.available(), pool.allocated());
        assert_eq!(pool.exhausted(), 0);
    });
}

/// Two producers and a consumer on a one-item drop-oldest queue: every item is popped,
/// displaced (and counted) or still queued, exactly once, and the counters agree.
#[test]
fn ordered_queue_accounts_for_every_item() {
    model(3, || {
        let queue = Arc::new(OrderedQueue::new(1, OverflowPolicy::DropOldest).unwrap());
        let producers: Vec<_> = (0..2u32)
            .map(|p| {
                let queue = Arc::clone(&queue);
                thread::spawn(move || {
                    let mut displaced = Vec::new();
                    for i in 0..2 {
                        if let PushOutcome::DisplacedOldest(old) = queue.push(p * 10 + i) {
                            displaced.push(old);
                        }
                    }
                    displaced
                })
            })
            .collect();
        let mut seen: Vec<u32> = queue.pop().into_iter().collect();
        for producer in producers {
            seen.extend(producer.join().unwrap());
        }
        seen.extend(std::iter::from_fn(|| queue.pop()));
        seen.sort_unstable();
        assert_eq!(seen, [0, 1, 10, 11], "an item was lost or delivered twice");
        assert_eq!(queue.pushed(), 4);
        assert_eq!(
            queue.pushed(),
            queue.popped() + queue.len() as u64 + queue.overflowed()
        );
    });
}
