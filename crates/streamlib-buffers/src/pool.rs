//! Pre-allocated buffers that return to their pool when the last reference drops.
//!
//! # When the pool runs dry
//! [`BufferPool::acquire`] never blocks. While fewer than `max` buffers exist it allocates one
//! more (counted in [`BufferPool::grown`]: a warm-up cost, not a steady-state one). At `max` it
//! returns [`BuffersError::PoolExhausted`] at once; a realtime producer then skips that frame
//! and counts it, and its readers keep showing the previous frame (latest-read semantics).
//! Size a pool as: ring slots + one frame per reader in flight + one being written, plus margin.

use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};

use crate::BuffersError;
use crate::sync::{Arc, ArrayQueue, AtomicU64, AtomicUsize, Ordering, UnsafeCell, fence};

struct PoolSlot<T> {
    /// Live [`PooledBuf`] handles (0 while free or uniquely held by a [`PoolBufMut`]).
    refs: AtomicUsize,
    data: UnsafeCell<Vec<T>>,
}

struct PoolShared<T> {
    name: String,
    buffer_len: usize,
    slots: Box<[PoolSlot<T>]>,
    free: ArrayQueue<usize>,
    allocated: AtomicUsize,
    grown: AtomicU64,
    exhausted: AtomicU64,
}

// SAFETY: a slot's data is mutated only through a `PoolBufMut`, which exists only for an index
// taken out of the free queue (or freshly claimed through `allocated`), so exactly one thread
// holds it; `PooledBuf` hands out only shared references. Elements are `Send + Sync`.
unsafe impl<T: Send + Sync> Sync for PoolShared<T> {}
// SAFETY: see above.
unsafe impl<T: Send + Sync> Send for PoolShared<T> {}

impl<T> PoolShared<T> {
    fn release(&self, index: usize) {
        // The free queue has room for every slot, so this cannot fail; ignore defensively.
        let _ = self.free.push(index);
    }

    fn slice(&self, index: usize) -> &[T] {
        // SAFETY: callers hold a handle to `index`, so no `PoolBufMut` for it exists elsewhere
        // and nothing mutates the vector while the returned borrow (tied to that handle) lives.
        self.slots[index]
            .data
            .with(|data| unsafe { (*data).as_slice() })
    }
}

/// A pool of equally sized buffers of `T` (bytes for video, `f32` samples for audio).
pub struct BufferPool<T> {
    shared: Arc<PoolShared<T>>,
}

impl<T> Clone for BufferPool<T> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T: Copy + Default + Send + Sync + 'static> BufferPool<T> {
    /// A pool named `name` (used in errors) with `initial` buffers of `buffer_len` elements
    /// allocated now, allowed to grow to `max`.
    pub fn new(
        name: impl Into<String>,
        buffer_len: usize,
        initial: usize,
        max: usize,
    ) -> Result<Self, BuffersError> {
        let name = name.into();
        if buffer_len == 0 || initial == 0 || initial > max {
            return Err(BuffersError::InvalidPoolConfig {
                pool: name,
                initial,
                max,
                buffer_len,
            });
        }
        let slots = (0..max)
            .map(|i| PoolSlot {
                refs: AtomicUsize::new(0),
                data: UnsafeCell::new(if i < initial {
                    vec![T::default(); buffer_len]
                } else {
                    Vec::new()
                }),
            })
            .collect();
        let free = ArrayQueue::new(max);
        for i in 0..initial {
            let _ = free.push(i);
        }
        Ok(Self {
            shared: Arc::new(PoolShared {
                name,
                buffer_len,
                slots,
                free,
                allocated: AtomicUsize::new(initial),
                grown: AtomicU64::new(0),
                exhausted: AtomicU64::new(0),
            }),
        })
    }

    /// A free buffer for writing, without blocking. Its previous contents are left as they
    /// were (it is not cleared: writers overwrite whole frames).
    pub fn acquire(&self) -> Result<PoolBufMut<T>, BuffersError> {
        let shared = &*self.shared;
        if let Some(index) = shared.free.pop() {
            return Ok(PoolBufMut {
                shared: Arc::clone(&self.shared),
                index,
            });
        }
        let max = shared.slots.len();
        let mut count = shared.allocated.load(Ordering::Relaxed);
        loop {
            if count >= max {
                shared.exhausted.fetch_add(1, Ordering::Relaxed);
                return Err(BuffersError::PoolExhausted {
                    pool: shared.name.clone(),
                    capacity: max,
                    buffer_len: shared.buffer_len,
                });
            }
            match shared.allocated.compare_exchange_weak(
                count,
                count + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => count = actual,
            }
        }
        let index = count;
        // SAFETY: the CAS above claimed slot `index` for this thread alone: it was never
        // allocated, so it is neither in the free queue nor referenced by any handle.
        shared.slots[index]
            .data
            .with_mut(|data| unsafe { *data = vec![T::default(); shared.buffer_len] });
        shared.grown.fetch_add(1, Ordering::Relaxed);
        Ok(PoolBufMut {
            shared: Arc::clone(&self.shared),
            index,
        })
    }
}

impl<T> BufferPool<T> {
    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Elements per buffer.
    pub fn buffer_len(&self) -> usize {
        self.shared.buffer_len
    }

    /// Most buffers the pool may hold.
    pub fn capacity(&self) -> usize {
        self.shared.slots.len()
    }

    /// Buffers allocated so far.
    pub fn allocated(&self) -> usize {
        self.shared.allocated.load(Ordering::Relaxed)
    }

    /// Buffers free right now.
    pub fn available(&self) -> usize {
        self.shared.free.len()
    }

    /// Buffers allocated after construction because the pool was empty.
    pub fn grown(&self) -> u64 {
        self.shared.grown.load(Ordering::Relaxed)
    }

    /// Acquisitions refused because the pool was at its maximum.
    pub fn exhausted(&self) -> u64 {
        self.shared.exhausted.load(Ordering::Relaxed)
    }
}

impl<T> fmt::Debug for BufferPool<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferPool")
            .field("name", &self.shared.name)
            .field("buffer_len", &self.shared.buffer_len)
            .field("allocated", &self.allocated())
            .field("available", &self.available())
            .field("capacity", &self.capacity())
            .finish()
    }
}

/// A pool buffer held by one writer. [`freeze`](Self::freeze) it to share it.
pub struct PoolBufMut<T> {
    shared: Arc<PoolShared<T>>,
    index: usize,
}

impl<T> PoolBufMut<T> {
    /// Makes the buffer shareable and read-only.
    pub fn freeze(self) -> PooledBuf<T> {
        let this = ManuallyDrop::new(self);
        this.shared.slots[this.index]
            .refs
            .store(1, Ordering::Release);
        PooledBuf {
            // SAFETY: `this` is never dropped, so the Arc is moved out exactly once.
            shared: unsafe { std::ptr::read(&this.shared) },
            index: this.index,
        }
    }
}

impl<T> Deref for PoolBufMut<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.shared.slice(self.index)
    }
}

impl<T> DerefMut for PoolBufMut<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: a `PoolBufMut` is the only handle to its slot (see `PoolShared`'s Sync), and
        // the borrow is tied to `&mut self`, so it is exclusive while it lives.
        self.shared.slots[self.index]
            .data
            .with_mut(|data| unsafe { (*data).as_mut_slice() })
    }
}

impl<T> Drop for PoolBufMut<T> {
    fn drop(&mut self) {
        self.shared.release(self.index);
    }
}

impl<T> fmt::Debug for PoolBufMut<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PoolBufMut({}#{}, {} elements)",
            self.shared.name,
            self.index,
            self.len()
        )
    }
}

/// A shared, read-only pool buffer. Cloning is two atomic increments; the buffer returns to
/// its pool when the last clone drops.
pub struct PooledBuf<T> {
    shared: Arc<PoolShared<T>>,
    index: usize,
}

impl<T: Copy + Default + Send + Sync + 'static> PooledBuf<T> {
    /// Wraps an existing vector (allocates a one-buffer pool: for tests and one-off frames, not
    /// for the hot path).
    pub fn from_vec(data: Vec<T>) -> Self {
        let free = ArrayQueue::new(1);
        let shared = Arc::new(PoolShared {
            name: "detached".to_owned(),
            buffer_len: data.len(),
            slots: vec![PoolSlot {
                refs: AtomicUsize::new(1),
                data: UnsafeCell::new(data),
            }]
            .into_boxed_slice(),
            free,
            allocated: AtomicUsize::new(1),
            grown: AtomicU64::new(0),
            exhausted: AtomicU64::new(0),
        });
        Self { shared, index: 0 }
    }
}

impl<T> PooledBuf<T> {
    /// Whether two handles share the same memory (proof of zero-copy hand-over).
    pub fn ptr_eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared) && self.index == other.index
    }

    /// Number of live handles to this buffer.
    pub fn ref_count(&self) -> usize {
        self.shared.slots[self.index].refs.load(Ordering::Acquire)
    }
}

impl<T> Clone for PooledBuf<T> {
    fn clone(&self) -> Self {
        self.shared.slots[self.index]
            .refs
            .fetch_add(1, Ordering::Relaxed);
        Self {
            shared: Arc::clone(&self.shared),
            index: self.index,
        }
    }
}

impl<T> Drop for PooledBuf<T> {
    fn drop(&mut self) {
        if self.shared.slots[self.index]
            .refs
            .fetch_sub(1, Ordering::Release)
            == 1
        {
            // Pairs with the Release above so every reader's last access happens before the
            // next writer's.
            fence(Ordering::Acquire);
            self.shared.release(self.index);
        }
    }
}

impl<T> Deref for PooledBuf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.shared.slice(self.index)
    }
}

impl<T> AsRef<[T]> for PooledBuf<T> {
    fn as_ref(&self) -> &[T] {
        self
    }
}

impl<T> fmt::Debug for PooledBuf<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PooledBuf({}#{}, {} elements, {} refs)",
            self.shared.name,
            self.index,
            self.len(),
            self.ref_count()
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn buffers_return_when_last_clone_drops() {
        let pool = BufferPool::<u8>::new("t", 16, 2, 2).unwrap();
        let mut a = pool.acquire().unwrap();
        a[0] = 7;
        let a = a.freeze();
        let a2 = a.clone();
        assert_eq!(pool.available(), 1);
        drop(a);
        assert_eq!(pool.available(), 1);
        assert_eq!(a2[0], 7);
        drop(a2);
        assert_eq!(pool.available(), 2);
    }

    #[test]
    fn grows_to_max_then_refuses_without_blocking() {
        let pool = BufferPool::<f32>::new("audio", 4, 1, 2).unwrap();
        let a = pool.acquire().unwrap();
        let b = pool.acquire().unwrap();
        assert_eq!(pool.grown(), 1);
        let err = pool.acquire().unwrap_err();
        assert!(
            err.to_string()
                .contains("'audio' is exhausted: all 2 buffers")
        );
        assert_eq!(pool.exhausted(), 1);
        drop((a, b));
        assert!(pool.acquire().is_ok());
    }

    #[test]
    fn bad_config_is_rejected() {
        assert!(BufferPool::<u8>::new("x", 0, 1, 1).is_err());
        assert!(BufferPool::<u8>::new("x", 1, 2, 1).is_err());
        assert!(BufferPool::<u8>::new("x", 1, 0, 1).is_err());
    }

    #[test]
    fn from_vec_shares() {
        let a = PooledBuf::from_vec(vec![1u8, 2, 3]);
        let b = a.clone();
        assert!(a.ptr_eq(&b));
        assert_eq!(&*b, &[1, 2, 3]);
        assert_eq!(a.ref_count(), 2);
    }
}
