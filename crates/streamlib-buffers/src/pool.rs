//! Pre-allocated buffers that return to their pool when the last reference drops.
//!
//! # When the pool runs dry
//! [`BufferPool::acquire`] never blocks. While fewer than `max` buffers exist it allocates one
//! more (counted in [`BufferPool::grown`]: a warm-up cost, not a steady-state one). At `max` it
//! returns [`BuffersError::PoolExhausted`] at once; a realtime producer then skips that frame
//! and counts it, and its readers keep showing the previous frame (latest-read semantics).
//! Size a pool as: ring slots + one frame per reader in flight + one being written, plus margin.
//!
//! # Memory owned elsewhere
//! [`BufferPool::with_storage`] makes a pool whose buffers live in a [`PoolStorage`] instead of
//! the heap: a shared-memory mapping another process also sees (process isolation). Handles,
//! reference counts and the free queue work as for heap buffers; a buffer's address tells its
//! slot, so it can cross to the other process as an index, without copying. Both constructors
//! are `unsafe`: nothing in the pool can check that it is the only one writing that memory.

use std::fmt;
// Storage is shared with the outside world (other crates, other processes), never modelled by loom.
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::sync::Arc as StdArc;

use crate::BuffersError;
use crate::sync::{Arc, ArrayQueue, AtomicU64, AtomicUsize, Ordering, UnsafeCell, fence};

struct PoolSlot<T> {
    /// Live [`PooledBuf`] handles (0 while free or uniquely held by a [`PoolBufMut`]).
    refs: AtomicUsize,
    /// In a claim-only pool ([`BufferPool::with_claimed_storage`]): 1 while a handle to the
    /// slot exists, 0 when it is free to [`BufferPool::claim`]. Unused otherwise.
    held: AtomicUsize,
    /// In a claim-only pool: the length of the claim that holds the slot (set by the one
    /// claimer before its handle exists, read through handles only).
    len: AtomicUsize,
    data: UnsafeCell<Vec<T>>,
}

/// Memory for a pool's buffers that lives outside the Rust heap: a shared-memory mapping
/// (`streamlib-process`), device-visible host memory.
///
/// # Safety
/// For every `index < slots()`, `slot_ptr(index)` must return a pointer that is aligned for `T`,
/// valid for reads and writes of `slot_len()` initialized elements for as long as the storage
/// lives, and not overlapping any other slot. Within this process nothing but the pool built on
/// the storage may write a slot (another process that maps it follows its own protocol: the
/// pool's users decide when a slot is lent to it).
pub unsafe trait PoolStorage<T>: Send + Sync + 'static {
    /// How many slots it has.
    fn slots(&self) -> usize;
    /// Elements each slot holds.
    fn slot_len(&self) -> usize;
    /// Where slot `index` starts.
    fn slot_ptr(&self, index: usize) -> *mut T;
}

struct PoolShared<T> {
    name: String,
    /// `Some` for a pool over external memory: slot `i`'s data is the storage's slot `i`, and
    /// the slots' vectors stay empty.
    storage: Option<StdArc<dyn PoolStorage<T>>>,
    /// Slots are taken by index ([`BufferPool::claim`]), never from the free queue.
    claim_only: bool,
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
        if self.claim_only {
            self.slots[index].held.store(0, Ordering::Release);
            return;
        }
        // The free queue has room for every slot, so this cannot fail; ignore defensively.
        let _ = self.free.push(index);
    }
}

impl<T: 'static> PoolShared<T> {
    /// Elements of buffer `index`: the claim's length in a claim-only pool, else the pool's.
    fn len_of(&self, index: usize) -> usize {
        if self.claim_only {
            self.slots[index].len.load(Ordering::Relaxed)
        } else {
            self.buffer_len
        }
    }

    fn slice(&self, index: usize) -> &[T] {
        if let Some(storage) = &self.storage {
            // SAFETY: `PoolStorage` promises `slot_len()` valid, initialized elements at this
            // slot for the storage's life, and `len_of` is at most that (checked at
            // construction or claim); the `Arc` held here outlives the borrow. The caller's
            // handle makes the access shared-only, as for heap slots below, and the
            // constructor's caller promised no other writer in this process.
            return unsafe {
                std::slice::from_raw_parts(storage.slot_ptr(index), self.len_of(index))
            };
        }
        // SAFETY: callers hold a handle to `index`, so no `PoolBufMut` for it exists elsewhere
        // and nothing mutates the vector while the returned borrow (tied to that handle) lives.
        self.slots[index]
            .data
            .with(|data| unsafe { (*data).as_slice() })
    }

    /// The slot's elements for the single writer holding it.
    ///
    /// # Safety
    /// The caller holds the only handle to `index` (a `PoolBufMut`) and ties the borrow to it.
    #[allow(
        clippy::mut_from_ref,
        reason = "exclusivity comes from the PoolBufMut, see above"
    )]
    unsafe fn slice_mut(&self, index: usize) -> &mut [T] {
        if let Some(storage) = &self.storage {
            // SAFETY: as in `slice`, and the caller's handle is the only one to this slot.
            return unsafe {
                std::slice::from_raw_parts_mut(storage.slot_ptr(index), self.len_of(index))
            };
        }
        // SAFETY: the caller's `PoolBufMut` is the only handle to its slot.
        self.slots[index]
            .data
            .with_mut(|data| unsafe { (*data).as_mut_slice() })
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
                held: AtomicUsize::new(0),
                len: AtomicUsize::new(buffer_len),
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
                storage: None,
                claim_only: false,
                buffer_len,
                slots,
                free,
                allocated: AtomicUsize::new(initial),
                grown: AtomicU64::new(0),
                exhausted: AtomicU64::new(0),
            }),
        })
    }

    /// A pool of `buffer_len`-element buffers in `storage`'s slots, one buffer per slot (all
    /// "allocated" from the start: the pool never grows). Errors if a slot is shorter than
    /// `buffer_len` or the storage has no slot.
    ///
    /// # Safety
    /// While this pool or any buffer from it lives, nothing else in this process may write
    /// `storage`'s slots or read them through anything but this pool's buffers: in
    /// particular no second pool may be built over the same storage (two pools would hand out
    /// two writers of one slot). Give each pool storage of its own (`ShmPool::reserve` makes
    /// new storage per call).
    pub unsafe fn with_storage(
        name: impl Into<String>,
        buffer_len: usize,
        storage: StdArc<dyn PoolStorage<T>>,
    ) -> Result<Self, BuffersError> {
        Self::on_storage(name.into(), buffer_len, storage, false)
    }

    /// A pool over `storage` whose buffers are taken by slot index and length with
    /// [`claim`](Self::claim), never by [`acquire`](Self::acquire) (which always finds it
    /// empty). For the side of a shared mapping that is told which slot to use: a child
    /// process wraps the slot its parent lent it as a frame, without copying.
    ///
    /// # Safety
    /// As for [`with_storage`](Self::with_storage): this pool is the only way this process
    /// touches `storage`'s slots while it or any of its buffers lives.
    pub unsafe fn with_claimed_storage(
        name: impl Into<String>,
        storage: StdArc<dyn PoolStorage<T>>,
    ) -> Result<Self, BuffersError> {
        let len = storage.slot_len();
        Self::on_storage(name.into(), len, storage, true)
    }

    fn on_storage(
        name: String,
        buffer_len: usize,
        storage: StdArc<dyn PoolStorage<T>>,
        claim_only: bool,
    ) -> Result<Self, BuffersError> {
        let slots = storage.slots();
        if buffer_len == 0 || slots == 0 || buffer_len > storage.slot_len() {
            return Err(BuffersError::StorageTooSmall {
                pool: name,
                buffer_len,
                slots,
                slot_len: storage.slot_len(),
            });
        }
        let free = ArrayQueue::new(slots);
        if !claim_only {
            for i in 0..slots {
                let _ = free.push(i);
            }
        }
        Ok(Self {
            shared: Arc::new(PoolShared {
                name,
                storage: Some(storage),
                claim_only,
                buffer_len,
                slots: (0..slots)
                    .map(|_| PoolSlot {
                        refs: AtomicUsize::new(0),
                        held: AtomicUsize::new(0),
                        len: AtomicUsize::new(buffer_len),
                        data: UnsafeCell::new(Vec::new()),
                    })
                    .collect(),
                free,
                allocated: AtomicUsize::new(slots),
                grown: AtomicU64::new(0),
                exhausted: AtomicU64::new(0),
            }),
        })
    }

    /// The first `len` elements of slot `index` of a claim-only pool
    /// ([`with_claimed_storage`](Self::with_claimed_storage)) for writing, if no handle to it
    /// is alive; `None` when it is still held (or `index` is out of range, `len` longer than a
    /// slot, or the pool is not claim-only). One slot has one claim at a time, whatever its
    /// length, so a slot can never be written while an earlier buffer of it is read.
    pub fn claim(&self, index: usize, len: usize) -> Option<PoolBufMut<T>> {
        let shared = &*self.shared;
        let slot = shared.slots.get(index)?;
        if !shared.claim_only
            || len > shared.buffer_len
            || slot
                .held
                .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return None;
        }
        // No handle to the slot exists (held was 0), so nothing reads `len` now; the handle
        // made below carries it to other threads through whatever hands the handle over.
        slot.len.store(len, Ordering::Relaxed);
        Some(PoolBufMut {
            shared: Arc::clone(&self.shared),
            index,
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

impl<T: 'static> Deref for PoolBufMut<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.shared.slice(self.index)
    }
}

impl<T: 'static> DerefMut for PoolBufMut<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: a `PoolBufMut` is the only handle to its slot (see `PoolShared`'s Sync), and
        // the borrow is tied to `&mut self`, so it is exclusive while it lives.
        unsafe { self.shared.slice_mut(self.index) }
    }
}

impl<T> Drop for PoolBufMut<T> {
    fn drop(&mut self) {
        self.shared.release(self.index);
    }
}

impl<T: 'static> fmt::Debug for PoolBufMut<T> {
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
            storage: None,
            claim_only: false,
            buffer_len: data.len(),
            slots: vec![PoolSlot {
                refs: AtomicUsize::new(1),
                held: AtomicUsize::new(0),
                len: AtomicUsize::new(0),
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

impl<T: 'static> Deref for PooledBuf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.shared.slice(self.index)
    }
}

impl<T: 'static> AsRef<[T]> for PooledBuf<T> {
    fn as_ref(&self) -> &[T] {
        self
    }
}

impl<T: 'static> fmt::Debug for PooledBuf<T> {
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

    /// Storage on the heap, standing in for a mapping: 3 slots of 8 bytes.
    struct Slots(Box<[std::cell::UnsafeCell<[u8; 8]>]>);
    // SAFETY: the pool built on it is the only writer, one handle per slot.
    unsafe impl Sync for Slots {}
    // SAFETY: as above.
    unsafe impl PoolStorage<u8> for Slots {
        fn slots(&self) -> usize {
            self.0.len()
        }
        fn slot_len(&self) -> usize {
            8
        }
        fn slot_ptr(&self, index: usize) -> *mut u8 {
            self.0[index].get().cast()
        }
    }

    #[test]
    fn a_pool_over_storage_writes_into_its_slots() {
        let storage = StdArc::new(Slots(
            (0..3).map(|_| std::cell::UnsafeCell::new([0; 8])).collect(),
        ));
        let dyn_storage: StdArc<dyn PoolStorage<u8>> = storage.clone();
        // SAFETY: the only pool over this storage; the test reads a slot only while no
        // buffer of it is written.
        let pool = unsafe { BufferPool::with_storage("shm", 6, dyn_storage) }.unwrap();
        assert_eq!((pool.capacity(), pool.available(), pool.grown()), (3, 3, 0));
        let mut a = pool.acquire().unwrap();
        let slot = (0..3)
            .find(|&i| storage.slot_ptr(i).cast_const() == a.as_ptr())
            .unwrap();
        a.copy_from_slice(&[1, 2, 3, 4, 5, 6]);
        let a = a.freeze();
        assert_eq!(a.len(), 6);
        // The bytes are in the storage's slot itself, not a copy.
        // SAFETY: read only, while nothing writes.
        let raw = unsafe { *storage.0[slot].get() };
        assert_eq!(&raw[..6], &[1, 2, 3, 4, 5, 6]);
        let b = pool.acquire().unwrap();
        let c = pool.acquire().unwrap();
        assert!(pool.acquire().is_err(), "never grows past the storage");
        drop((a, b, c));
        assert_eq!(pool.available(), 3);
    }

    #[test]
    fn a_claim_only_pool_hands_out_slots_by_index() {
        let storage: StdArc<dyn PoolStorage<u8>> = StdArc::new(Slots(
            (0..2).map(|_| std::cell::UnsafeCell::new([0; 8])).collect(),
        ));
        // SAFETY: the only pool over this storage.
        let pool = unsafe { BufferPool::with_claimed_storage("child", storage) }.unwrap();
        assert!(pool.acquire().is_err(), "claim-only");
        let one = pool.claim(1, 5).unwrap().freeze();
        assert_eq!(one.len(), 5, "the claim's length");
        let again = one.clone();
        assert!(pool.claim(1, 5).is_none(), "held");
        assert!(pool.claim(1, 3).is_none(), "held, whatever the length");
        assert!(pool.claim(2, 1).is_none(), "out of range");
        assert!(pool.claim(0, 9).is_none(), "longer than a slot");
        drop(one);
        assert!(pool.claim(1, 8).is_none(), "a clone still holds it");
        drop(again);
        let back = pool.claim(1, 8).unwrap();
        assert_eq!(back.len(), 8);
        assert!(pool.claim(0, 2).is_some());
        drop(back);
        assert_eq!(pool.available(), 0, "never in the free queue");
    }

    #[test]
    fn storage_too_small_is_an_error() {
        let storage: StdArc<dyn PoolStorage<u8>> = StdArc::new(Slots(
            (0..1).map(|_| std::cell::UnsafeCell::new([0; 8])).collect(),
        ));
        // SAFETY: the only pool over this storage.
        let err = unsafe { BufferPool::with_storage("shm", 9, storage) }.unwrap_err();
        assert!(err.to_string().contains("9 elements per buffer"), "{err}");
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
