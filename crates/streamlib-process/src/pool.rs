//! `ShmPool`: frames in a sealed `memfd` mapped by the parent and its children.
//!
//! Layout of the file: a header page (magic, version, shape, then one state word per slot, see
//! `slots.rs`), then the slots, each starting on a page boundary. The parent creates the file,
//! sizes it and seals it against shrinking and growing (`F_SEAL_SHRINK | F_SEAL_GROW`), so a
//! child cannot truncate it under the parent's mapping (which would turn the parent's next read
//! into a `SIGBUS`). The child maps the header read-only and the slots read-write
//! ([`PoolView`]).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use streamlib_buffers::PoolStorage;

use crate::ProcessError;
use crate::slots::{ChildId, SlotOwner, SlotStates};

const MAGIC: u64 = u64::from_le_bytes(*b"SLPOOL\0\x01");
const LAYOUT_VERSION: u32 = 1;
/// Offset of the first state word in the header.
const WORDS_OFFSET: usize = 64;
/// At most this many slots (the index crosses as a `u32`; the header stays small).
pub const MAX_SLOTS: usize = 4096;
/// At most this many bytes per slot (a 8K RGBA frame is 132 MiB).
pub const MAX_SLOT_SIZE: usize = 1 << 30;

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(page).unwrap_or(4096).max(4096)
}

fn round_up(value: usize, to: usize) -> Option<usize> {
    value.checked_add(to - 1).map(|v| v / to * to)
}

fn os_error(call: &'static str, what: &str) -> ProcessError {
    ProcessError::Os {
        call,
        what: what.to_owned(),
        source: std::io::Error::last_os_error(),
    }
}

/// One `mmap`ed range, unmapped on drop.
#[derive(Debug)]
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; who may touch which bytes is decided by the slot
// state machine (atomics) and by the `&mut` borrows handed out, not by the thread.
unsafe impl Send for Mapping {}
// SAFETY: as above; shared access goes through atomics or through a lease's exclusive borrow.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn map(
        fd: BorrowedFd<'_>,
        offset: usize,
        len: usize,
        writable: bool,
        what: &str,
    ) -> Result<Self, ProcessError> {
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        let offset = libc::off_t::try_from(offset).map_err(|_| ProcessError::PoolShape {
            name: what.to_owned(),
            slots: 0,
            slot_size: len,
            reason: "offset beyond off_t",
        })?;
        // SAFETY: a fresh mapping at an address the kernel picks; `fd` is open for the call.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                offset,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(os_error("mmap", what));
        }
        Ok(Self {
            ptr: ptr.cast(),
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned, unmapped once, here.
        unsafe {
            libc::munmap(self.ptr.cast(), self.len);
        }
    }
}

#[derive(Debug)]
struct PoolInner {
    name: String,
    fd: OwnedFd,
    map: Mapping,
    slots: usize,
    slot_size: usize,
    slot_stride: usize,
    data_offset: usize,
    hint: AtomicUsize,
    bytes_copied: AtomicU64,
    /// Per slot: managed by a parent-side `BufferPool` ([`ShmPool::reserve`]), so a reclaim
    /// gives it back to the parent, never to the free list. Parent memory only.
    reserved: Box<[AtomicBool]>,
}

impl PoolInner {
    fn is_reserved(&self, index: u32) -> bool {
        self.reserved
            .get(index as usize)
            .is_some_and(|r| r.load(Ordering::Acquire))
    }

    fn reclaim(&self, child: ChildId) -> usize {
        self.states().reclaim(child, |i| {
            self.reserved
                .get(i)
                .is_some_and(|r| r.load(Ordering::Acquire))
        })
    }

    fn states(&self) -> SlotStates<'_> {
        // SAFETY: the header holds `slots` 8-byte aligned words from WORDS_OFFSET (checked at
        // creation: data_offset >= WORDS_OFFSET + 8 * slots); `AtomicU64` has u64's layout and
        // the words are only ever accessed atomically, in this process and in the children.
        let words = unsafe {
            std::slice::from_raw_parts(
                self.map.ptr.add(WORDS_OFFSET).cast::<AtomicU64>(),
                self.slots,
            )
        };
        SlotStates {
            words,
            hint: &self.hint,
        }
    }

    fn slot_ptr(&self, index: u32) -> *mut u8 {
        // SAFETY: `index < slots` (every caller holds a lease on it), so the offset is inside
        // the mapping, whose size covers data_offset + slots * slot_stride.
        unsafe {
            self.map
                .ptr
                .add(self.data_offset + index as usize * self.slot_stride)
        }
    }
}

/// Header fields, written by the parent and checked by the child.
struct Header {
    slot_size: usize,
    slot_stride: usize,
    data_offset: usize,
}

impl Header {
    fn shape(name: &str, slots: usize, slot_size: usize) -> Result<(Self, usize), ProcessError> {
        let refuse = |reason| ProcessError::PoolShape {
            name: name.to_owned(),
            slots,
            slot_size,
            reason,
        };
        if slots == 0 || slots > MAX_SLOTS {
            return Err(refuse("slots must be 1..=4096"));
        }
        if slot_size == 0 || slot_size > MAX_SLOT_SIZE {
            return Err(refuse("slot size must be 1 byte..=1 GiB"));
        }
        let page = page_size();
        let data_offset =
            round_up(WORDS_OFFSET + 8 * slots, page).ok_or_else(|| refuse("overflow"))?;
        let slot_stride = round_up(slot_size, page).ok_or_else(|| refuse("overflow"))?;
        let total = slot_stride
            .checked_mul(slots)
            .and_then(|s| s.checked_add(data_offset))
            .ok_or_else(|| refuse("total size overflows"))?;
        Ok((
            Self {
                slot_size,
                slot_stride,
                data_offset,
            },
            total,
        ))
    }
}

/// A pool of `slots` shared-memory slots of `slot_size` bytes, for frames crossing into child
/// processes. Cheap to clone (one `Arc`); every clone is the same pool.
///
/// ```
/// use streamlib_process::ShmPool;
///
/// let pool = ShmPool::new("example", 2, 1024)?;
/// let mut lease = pool.acquire()?;
/// lease.as_mut_slice()[0] = 7;
/// assert_eq!(pool.available(), 1);
/// drop(lease);
/// assert_eq!(pool.available(), 2);
/// # Ok::<(), streamlib_process::ProcessError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ShmPool {
    inner: Arc<PoolInner>,
}

impl ShmPool {
    /// Creates, sizes, seals and maps a new `memfd`. The descriptor is close-on-exec: a
    /// [`Child`](crate::Child) passes it on explicitly, no other process inherits it.
    pub fn new(name: &str, slots: usize, slot_size: usize) -> Result<Self, ProcessError> {
        let (header, total) = Header::shape(name, slots, slot_size)?;
        let c_name = std::ffi::CString::new(format!("streamlib-{name}")).map_err(|_| {
            ProcessError::PoolShape {
                name: name.to_owned(),
                slots,
                slot_size,
                reason: "name contains a NUL byte",
            }
        })?;
        // SAFETY: `c_name` is a valid C string for the call.
        let raw = unsafe {
            libc::memfd_create(c_name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
        };
        if raw < 0 {
            return Err(os_error("memfd_create", name));
        }
        // SAFETY: `raw` is a descriptor memfd_create just returned, owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let size = libc::off_t::try_from(total).map_err(|_| ProcessError::PoolShape {
            name: name.to_owned(),
            slots,
            slot_size,
            reason: "total size beyond off_t",
        })?;
        // SAFETY: plain calls on a descriptor we own.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), size) } != 0 {
            return Err(os_error("ftruncate", name));
        }
        let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
            return Err(os_error("fcntl(F_ADD_SEALS)", name));
        }
        let map = Mapping::map(fd.as_fd(), 0, total, true, name)?;
        // SAFETY: the mapping is at least one page, page-aligned; nobody else has it yet. The
        // file is zero-filled, so every state word starts free at generation 0.
        unsafe {
            let h = map.ptr;
            h.cast::<u64>().write(MAGIC);
            h.add(8).cast::<u32>().write(LAYOUT_VERSION);
            h.add(12).cast::<u32>().write(slots as u32);
            h.add(16).cast::<u64>().write(header.slot_size as u64);
            h.add(24).cast::<u64>().write(header.slot_stride as u64);
            h.add(32).cast::<u64>().write(header.data_offset as u64);
        }
        Ok(Self {
            inner: Arc::new(PoolInner {
                name: name.to_owned(),
                fd,
                map,
                slots,
                slot_size: header.slot_size,
                slot_stride: header.slot_stride,
                data_offset: header.data_offset,
                hint: AtomicUsize::new(0),
                bytes_copied: AtomicU64::new(0),
                reserved: (0..slots).map(|_| AtomicBool::new(false)).collect(),
            }),
        })
    }

    /// Leases a free slot to the parent. Lock-free, allocation-free.
    pub fn acquire(&self) -> Result<SlotLease, ProcessError> {
        let (index, generation) =
            self.inner
                .states()
                .acquire()
                .ok_or_else(|| ProcessError::PoolExhausted {
                    name: self.inner.name.clone(),
                    slots: self.inner.slots,
                })?;
        Ok(SlotLease {
            pool: Arc::clone(&self.inner),
            index,
            generation,
            armed: true,
        })
    }

    /// Takes back a slot `child` answered with (a frame message's slot and generation).
    pub fn take_back(
        &self,
        child: ChildId,
        slot: u32,
        generation: u32,
    ) -> Result<SlotLease, ProcessError> {
        self.inner
            .states()
            .take_back(slot, generation, child)
            .map_err(|_| self.not_held(slot, generation, child.to_string()))?;
        Ok(SlotLease {
            pool: Arc::clone(&self.inner),
            index: slot,
            generation,
            // A reserved slot stays the parent's: its pool, not the lease, frees it.
            armed: !self.inner.is_reserved(slot),
        })
    }

    /// Takes `count` free slots for a parent-side pool: they stay leased to the parent for
    /// good (reclaim returns them to the parent, not the free list) and the returned storage
    /// is their memory, for [`BufferPool::with_storage`](streamlib_buffers::BufferPool::with_storage)
    /// (new storage per call, so each pool has its own; dropping it frees the slots).
    /// A buffer of that pool crosses to a child through [`ShmPool::lend`] with the index
    /// [`ShmPool::slot_of`] finds.
    pub fn reserve(&self, count: usize) -> Result<Arc<ShmStorage>, ProcessError> {
        let mut indices = Vec::with_capacity(count);
        for _ in 0..count {
            match self.inner.states().acquire() {
                Some((index, _)) => indices.push(index),
                None => {
                    for &index in &indices {
                        if let Some((SlotOwner::Parent, g)) = self.owner(index) {
                            let _ = self.inner.states().release(index, g);
                        }
                    }
                    return Err(ProcessError::PoolExhausted {
                        name: self.inner.name.clone(),
                        slots: self.inner.slots,
                    });
                }
            }
        }
        for &index in &indices {
            if let Some(flag) = self.inner.reserved.get(index as usize) {
                flag.store(true, Ordering::Release);
            }
        }
        Ok(Arc::new(ShmStorage {
            pool: Arc::clone(&self.inner),
            indices: indices.into_boxed_slice(),
        }))
    }

    /// A lease on reserved slot `index` (one [`ShmPool::reserve`] took) to hand to a child
    /// with [`Child::send_frame`](crate::Child::send_frame): the caller keeps the pool's buffer
    /// alive until the child returns the slot or dies. Dropping the lease does nothing.
    pub fn lend(&self, index: u32) -> Result<SlotLease, ProcessError> {
        match self.owner(index) {
            Some((SlotOwner::Parent, generation)) if self.inner.is_reserved(index) => {
                Ok(SlotLease {
                    pool: Arc::clone(&self.inner),
                    index,
                    generation,
                    armed: false,
                })
            }
            _ => Err(self.not_held(index, 0, "the parent (a reserved slot)".to_owned())),
        }
    }

    /// The slot whose first byte is at `ptr`, if `ptr` is the start of one of this pool's
    /// slots (a buffer of a pool over [`ShmPool::reserve`]d storage).
    pub fn slot_of(&self, ptr: *const u8) -> Option<u32> {
        slot_at(
            self.inner.slot_ptr(0).cast_const(),
            self.inner.slot_stride,
            self.inner.slots,
            ptr,
        )
    }

    /// Adds `bytes` to [`ShmPool::bytes_copied`] (a copy made outside [`SlotLease::copy_from`]).
    pub fn count_copied(&self, bytes: u64) {
        self.inner.bytes_copied.fetch_add(bytes, Ordering::Relaxed);
    }

    fn not_held(&self, slot: u32, generation: u32, holder: String) -> ProcessError {
        let (found, found_generation) = self
            .inner
            .states()
            .owner(slot)
            .unwrap_or((SlotOwner::Invalid(u64::MAX), 0));
        ProcessError::SlotNotHeld {
            slot,
            generation,
            holder,
            found,
            found_generation,
        }
    }

    /// Returns every slot `child` holds to the pool (bumping their generations, so the child's
    /// stale indices are refused): how many. For a child that died or was killed.
    pub fn reclaim(&self, child: ChildId) -> usize {
        self.inner.reclaim(child)
    }

    /// Who holds slot `index` now, and its generation (`None` past the end).
    pub fn owner(&self, index: u32) -> Option<(SlotOwner, u32)> {
        self.inner.states().owner(index)
    }

    /// Free slots now.
    pub fn available(&self) -> usize {
        (0..self.inner.slots as u32)
            .filter(|&i| matches!(self.owner(i), Some((SlotOwner::Free, _))))
            .count()
    }

    /// Number of slots.
    pub fn slots(&self) -> usize {
        self.inner.slots
    }

    /// Bytes per slot.
    pub fn slot_size(&self) -> usize {
        self.inner.slot_size
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Bytes copied into slots through [`SlotLease::copy_from`]: the pixel copies the crossing
    /// made (0 when producers write into slots directly).
    pub fn bytes_copied(&self) -> u64 {
        self.inner.bytes_copied.load(Ordering::Relaxed)
    }

    /// The `memfd`, to pass to a child (close-on-exec here; [`Child`](crate::Child) clears the
    /// flag in the child only).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.inner.fd.as_fd()
    }
}

fn slot_at(base: *const u8, stride: usize, slots: usize, ptr: *const u8) -> Option<u32> {
    let offset = (ptr as usize).checked_sub(base as usize)?;
    let index = offset / stride;
    (offset % stride == 0 && index < slots).then_some(index as u32)
}

/// Reserved slots of a [`ShmPool`] as memory for a parent-side
/// [`BufferPool`](streamlib_buffers::BufferPool) (see [`ShmPool::reserve`]).
#[derive(Debug)]
pub struct ShmStorage {
    pool: Arc<PoolInner>,
    indices: Box<[u32]>,
}

impl ShmStorage {
    /// The pool slot behind storage slot `index`.
    pub fn pool_slot(&self, index: usize) -> Option<u32> {
        self.indices.get(index).copied()
    }
}

// SAFETY: every index is a distinct slot of the mapping (`reserve` took each from the free
// list once), `slot_size` bytes long, page-aligned (so aligned for u8), inside a mapping the
// `Arc<PoolInner>` keeps alive; the slots stay leased to the parent, so in this process only
// the pool built on this storage writes them; a child writes one only while it is lent to it.
unsafe impl PoolStorage<u8> for ShmStorage {
    fn slots(&self) -> usize {
        self.indices.len()
    }
    fn slot_len(&self) -> usize {
        self.pool.slot_size
    }
    fn slot_ptr(&self, index: usize) -> *mut u8 {
        match self.indices.get(index) {
            Some(&slot) => self.pool.slot_ptr(slot),
            None => std::ptr::null_mut(),
        }
    }
}

impl Drop for ShmStorage {
    /// The slots go back to the pool's free list: the `BufferPool` built on this storage and
    /// every buffer of it are gone (each holds the storage), so nothing in this process uses
    /// them. A slot a child still holds stays the child's, and its reclaim frees it.
    fn drop(&mut self) {
        let states = self.pool.states();
        for &index in &*self.indices {
            if let Some(flag) = self.pool.reserved.get(index as usize) {
                flag.store(false, Ordering::Release);
            }
            if let Some((SlotOwner::Parent, generation)) = states.owner(index) {
                let _ = states.release(index, generation);
            }
        }
    }
}

/// The parent's exclusive lease on one slot; dropping it returns the slot to the pool.
#[derive(Debug)]
pub struct SlotLease {
    pool: Arc<PoolInner>,
    index: u32,
    generation: u32,
    armed: bool,
}

impl SlotLease {
    /// The slot's index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The generation this lease has (it changes on every acquire).
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The slot's bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the slot is leased to this process (the state word says parent, and only this
        // lease has its index and generation); it is `slot_size` bytes inside the mapping.
        unsafe { std::slice::from_raw_parts(self.pool.slot_ptr(self.index), self.pool.slot_size) }
    }

    /// The slot's bytes, to fill.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as `as_slice`, and `&mut self` makes the borrow exclusive in this process.
        unsafe {
            std::slice::from_raw_parts_mut(self.pool.slot_ptr(self.index), self.pool.slot_size)
        }
    }

    /// Copies `src` to the start of the slot and counts the bytes in
    /// [`ShmPool::bytes_copied`] (for producers that cannot write into the slot directly).
    pub fn copy_from(&mut self, src: &[u8]) -> Result<(), ProcessError> {
        let slot_size = self.pool.slot_size;
        let dst = self
            .as_mut_slice()
            .get_mut(..src.len())
            .ok_or(ProcessError::FrameTooLong {
                slot: 0,
                len: u32::try_from(src.len()).unwrap_or(u32::MAX),
                slot_size,
            })?;
        dst.copy_from_slice(src);
        self.pool
            .bytes_copied
            .fetch_add(src.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Hands the slot to `child`: from now on the child may write it, and the parent gets it back
    /// only through [`ShmPool::take_back`] or [`ShmPool::reclaim`].
    pub fn hand_to(mut self, child: ChildId) -> Result<(u32, u32), ProcessError> {
        self.pool
            .states()
            .hand_to_child(self.index, self.generation, child)
            .map_err(|_| ProcessError::SlotNotHeld {
                slot: self.index,
                generation: self.generation,
                holder: "the parent".to_owned(),
                found: SlotOwner::Invalid(0),
                found_generation: 0,
            })?;
        self.armed = false;
        Ok((self.index, self.generation))
    }
}

impl Drop for SlotLease {
    fn drop(&mut self) {
        if self.armed
            && self
                .pool
                .states()
                .release(self.index, self.generation)
                .is_err()
        {
            tracing::warn!(pool = %self.pool.name, slot = self.index, "slot lease was not held at release");
        }
    }
}

/// A child's slots as [`PoolStorage`] (see [`PoolView::storage`]).
struct ViewStorage {
    data: Arc<Mapping>,
    slots: usize,
    slot_size: usize,
    slot_stride: usize,
}

// SAFETY: slot `i` is `slot_size` bytes at `i * slot_stride` inside the mapping the `Arc`
// keeps alive; slots do not overlap (stride >= size) and are page-aligned. The child writes a
// slot only while the parent lent it (the protocol), and the pool built on this storage is
// claim-only, so only the slot the parent named is ever wrapped.
unsafe impl PoolStorage<u8> for ViewStorage {
    fn slots(&self) -> usize {
        self.slots
    }
    fn slot_len(&self) -> usize {
        self.slot_size
    }
    fn slot_ptr(&self, index: usize) -> *mut u8 {
        if index >= self.slots {
            return std::ptr::null_mut();
        }
        // SAFETY: index < slots: inside the mapping.
        unsafe { self.data.ptr.add(index * self.slot_stride) }
    }
}

/// A child's view of its parent's pool: the header read-only, the slots read-write.
#[derive(Debug)]
pub struct PoolView {
    _fd: OwnedFd,
    header: Mapping,
    data: Arc<Mapping>,
    slots: usize,
    slot_size: usize,
    slot_stride: usize,
}

impl PoolView {
    /// Maps the pool behind `fd` (the descriptor the parent passed) and checks its header.
    pub fn open(fd: OwnedFd) -> Result<Self, ProcessError> {
        let raw = fd.as_raw_fd();
        let invalid = |reason: String| ProcessError::PoolInvalid { fd: raw, reason };
        // SAFETY: fstat writes into the zeroed struct we pass.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `raw` is open (owned by `fd`), `stat` is valid for writes.
        if unsafe { libc::fstat(raw, &mut stat) } != 0 {
            return Err(os_error("fstat", "the pool descriptor"));
        }
        let size = usize::try_from(stat.st_size).map_err(|_| invalid("negative size".into()))?;
        let page = page_size();
        if size < page {
            return Err(invalid(format!("{size} bytes, smaller than its header")));
        }
        let first = Mapping::map(fd.as_fd(), 0, page, false, "pool header")?;
        // SAFETY: the page is mapped readable; the fields are at fixed aligned offsets.
        let (magic, version, slots, slot_size, slot_stride, data_offset) = unsafe {
            let h = first.ptr;
            (
                h.cast::<u64>().read(),
                h.add(8).cast::<u32>().read(),
                h.add(12).cast::<u32>().read() as usize,
                h.add(16).cast::<u64>().read() as usize,
                h.add(24).cast::<u64>().read() as usize,
                h.add(32).cast::<u64>().read() as usize,
            )
        };
        drop(first);
        if magic != MAGIC {
            return Err(invalid("not a streamlib pool (bad magic)".into()));
        }
        if version != LAYOUT_VERSION {
            return Err(invalid(format!(
                "layout version {version}, expected {LAYOUT_VERSION}"
            )));
        }
        let (expected, total) =
            Header::shape("view", slots, slot_size).map_err(|e| invalid(e.to_string()))?;
        if expected.slot_stride != slot_stride
            || expected.data_offset != data_offset
            || total != size
        {
            return Err(invalid(format!(
                "header says {slots} slots of {slot_size} bytes ({total} bytes), the file has {size}"
            )));
        }
        let header = Mapping::map(fd.as_fd(), 0, data_offset, false, "pool header")?;
        let data = Arc::new(Mapping::map(
            fd.as_fd(),
            data_offset,
            size - data_offset,
            true,
            "pool slots",
        )?);
        Ok(Self {
            _fd: fd,
            header,
            data,
            slots,
            slot_size,
            slot_stride,
        })
    }

    /// Number of slots.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Bytes per slot.
    pub fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// Who holds slot `index` and its generation, as the parent's header says.
    pub fn owner(&self, index: u32) -> Option<(SlotOwner, u32)> {
        if index as usize >= self.slots {
            return None;
        }
        // SAFETY: the word is inside the read-only header mapping (index < slots), aligned, and
        // only accessed atomically; a load never writes, so PROT_READ suffices.
        let word = unsafe {
            &*self
                .header
                .ptr
                .add(WORDS_OFFSET + 8 * index as usize)
                .cast::<AtomicU64>()
        };
        let word = word.load(Ordering::Acquire);
        Some((crate::slots::owner(word), crate::slots::generation(word)))
    }

    /// The first `len` bytes of slot `slot`, if the header says it is leased to `child` at
    /// `generation` (so a stale or forged index is refused before any byte is touched).
    pub fn slot_mut(
        &mut self,
        child: ChildId,
        slot: u32,
        generation: u32,
        len: u32,
    ) -> Result<&mut [u8], ProcessError> {
        self.check(child, slot, generation, len)?;
        // SAFETY: slot < slots (check passed), len <= slot_size; the parent does not
        // touch a slot leased to a child, and `&mut self` keeps this borrow exclusive here.
        Ok(unsafe {
            std::slice::from_raw_parts_mut(
                self.data.ptr.add(slot as usize * self.slot_stride),
                len as usize,
            )
        })
    }

    /// The first `len` bytes of slot `slot` to read, checked as for [`slot_mut`](Self::slot_mut).
    /// Shared: other readers of the slot (buffers of a pool over [`storage`](Self::storage))
    /// may exist, but no writer in this process may.
    pub fn slot(
        &self,
        child: ChildId,
        slot: u32,
        generation: u32,
        len: u32,
    ) -> Result<&[u8], ProcessError> {
        self.check(child, slot, generation, len)?;
        // SAFETY: slot < slots (check passed), len <= slot_size, inside the mapping `self`
        // keeps alive for the borrow; the parent does not write a slot leased to a child, and
        // in this process writes go through `&mut self` or a pool's exclusive claim, neither
        // of which can coexist with this shared borrow of a slot the caller reads.
        Ok(unsafe {
            std::slice::from_raw_parts(
                self.data.ptr.add(slot as usize * self.slot_stride),
                len as usize,
            )
        })
    }

    /// Checks that slot `slot` is leased to `child` at `generation` and `len` fits it, as the
    /// parent's header says (before any byte of it is touched).
    pub fn check(
        &self,
        child: ChildId,
        slot: u32,
        generation: u32,
        len: u32,
    ) -> Result<(), ProcessError> {
        match self.owner(slot) {
            Some((SlotOwner::Child(c), g)) if c == child && g == generation => {}
            found => {
                let (found, found_generation) = found.unwrap_or((SlotOwner::Invalid(u64::MAX), 0));
                return Err(ProcessError::SlotNotHeld {
                    slot,
                    generation,
                    holder: child.to_string(),
                    found,
                    found_generation,
                });
            }
        }
        if len as usize > self.slot_size {
            return Err(ProcessError::FrameTooLong {
                slot,
                len,
                slot_size: self.slot_size,
            });
        }
        Ok(())
    }

    /// The slots as memory for a claim-only
    /// [`BufferPool`](streamlib_buffers::BufferPool::with_claimed_storage): a slot the parent
    /// lent becomes a frame buffer without a copy. Build one pool over it, and while it lives
    /// write slots only through its claims, never through [`slot_mut`](Self::slot_mut).
    pub fn storage(&self) -> Arc<dyn PoolStorage<u8>> {
        Arc::new(ViewStorage {
            data: Arc::clone(&self.data),
            slots: self.slots,
            slot_size: self.slot_size,
            slot_stride: self.slot_stride,
        })
    }

    /// The slot whose first byte is at `ptr`, if it is the start of one.
    pub fn slot_of(&self, ptr: *const u8) -> Option<u32> {
        slot_at(
            self.data.ptr.cast_const(),
            self.slot_stride,
            self.slots,
            ptr,
        )
    }

    /// Makes the slots inaccessible while keeping the view (for tests of a child that
    /// unmapped its pool): any later access faults in the child, as if unmapped.
    #[doc(hidden)]
    pub fn unmap_slots_for_test(&mut self) {
        // SAFETY: replaces our own range with an inaccessible anonymous mapping (MAP_FIXED at
        // the same address and length); later accesses fault, which is the point of the test,
        // and drop unmaps the range as usual.
        unsafe {
            libc::mmap(
                self.data.ptr.cast(),
                self.data.len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            );
        }
    }

    /// Tries to shrink the pool's file to nothing (for tests of a hostile child): the parent's
    /// seals refuse it, so the parent's mapping stays whole.
    #[doc(hidden)]
    pub fn truncate_for_test(&self) -> std::io::Result<()> {
        // SAFETY: a plain call on a descriptor we own.
        if unsafe { libc::ftruncate(self._fd.as_raw_fd(), 0) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}
