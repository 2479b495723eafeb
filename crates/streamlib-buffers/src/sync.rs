//! The synchronisation primitives the buffers are built on, swappable for `loom`'s.
//!
//! Built normally this is `std` (and `crossbeam-queue` for the bounded queue). Built with
//! `RUSTFLAGS="--cfg loom"` (`cargo xtask loom`) every atomic, cell, `Arc`, spin hint and yield
//! comes from `loom`, which runs the model tests in `tests/loom.rs` under every interleaving
//! its scheduler can reach. The crossbeam queue is not instrumented by loom, so under loom it is
//! replaced by a mutex-guarded queue with the same interface: the models then check our own
//! protocols (slot pinning, reference counts, the overflow accounting) around a linearizable
//! queue, which is what crossbeam's own model tests establish for theirs.

#[cfg(not(loom))]
pub(crate) use std::sync::Arc;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};

#[cfg(loom)]
pub(crate) use loom::sync::Arc;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};

#[cfg(not(loom))]
pub(crate) use crossbeam_queue::ArrayQueue;
#[cfg(loom)]
pub(crate) use loom_queue::ArrayQueue;

/// A busy-wait step: a CPU spin hint for the first few rounds, then a yield to the scheduler.
pub(crate) fn backoff(spins: &mut u32) {
    *spins += 1;
    #[cfg(not(loom))]
    {
        if *spins < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
    // Under loom a spin must yield, or the model would explore the same busy loop forever.
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// `std::cell::UnsafeCell` with loom's closure-based access, so that the same code compiles
/// against both and loom can see every access.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    /// Calls `f` with a pointer for reading.
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Calls `f` with a pointer for writing.
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

#[cfg(loom)]
mod loom_queue {
    use std::collections::VecDeque;

    use loom::sync::Mutex;

    /// The subset of `crossbeam_queue::ArrayQueue` the crate uses, behind a loom mutex.
    #[derive(Debug)]
    pub(crate) struct ArrayQueue<T> {
        items: Mutex<VecDeque<T>>,
        capacity: usize,
    }

    impl<T> ArrayQueue<T> {
        pub(crate) fn new(capacity: usize) -> Self {
            Self {
                items: Mutex::new(VecDeque::with_capacity(capacity)),
                capacity,
            }
        }

        fn items(&self) -> loom::sync::MutexGuard<'_, VecDeque<T>> {
            // A model thread that panicked fails the model anyway; keep the queue usable.
            self.items
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        }

        pub(crate) fn push(&self, item: T) -> Result<(), T> {
            let mut items = self.items();
            if items.len() == self.capacity {
                return Err(item);
            }
            items.push_back(item);
            Ok(())
        }

        pub(crate) fn force_push(&self, item: T) -> Option<T> {
            let mut items = self.items();
            let displaced = if items.len() == self.capacity {
                items.pop_front()
            } else {
                None
            };
            items.push_back(item);
            displaced
        }

        pub(crate) fn pop(&self) -> Option<T> {
            self.items().pop_front()
        }

        pub(crate) fn len(&self) -> usize {
            self.items().len()
        }

        pub(crate) fn is_empty(&self) -> bool {
            self.items().is_empty()
        }

        pub(crate) fn capacity(&self) -> usize {
            self.capacity
        }
    }
}
