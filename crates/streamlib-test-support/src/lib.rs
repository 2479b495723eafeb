//! Test-only helpers shared by streamlib's crates (a dev-dependency, never a dependency).
//!
//! [`netns`] sets up network namespaces for tests that need several hosts; [`pulse`] runs a
//! private PulseAudio server with a null sink for sound-device tests; [`FuzzInput`] reads
//! a fuzz target's bytes as a sequence of choices.
//!
//! [`CountingAllocator`] counts every allocation and reallocation in the process, on every
//! thread, so a test can prove that steady-state processing allocates nothing:
//!
//! ```
//! use streamlib_test_support::{CountingAllocator, allocations};
//!
//! #[global_allocator]
//! static GLOBAL: CountingAllocator = CountingAllocator;
//!
//! let before = allocations();
//! let v: Vec<u8> = Vec::with_capacity(16);
//! assert!(allocations() > before);
//! # drop(v);
//! ```

pub mod browser;
mod fuzz_input;
pub mod media;
pub mod netns;
pub mod pulse;
pub mod stamp;

pub use fuzz_input::FuzzInput;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// A global allocator that forwards to the system allocator and counts allocations and
/// reallocations (frees are not counted). Install it with `#[global_allocator]` in a test
/// binary of its own: it counts the whole process.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAllocator;

// SAFETY: every call forwards to the system allocator with the caller's arguments unchanged;
// the only addition is an atomic counter, which does not allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the caller upholds `alloc`'s contract, which is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, i.e. from the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: `ptr` came from the system allocator; the caller upholds the rest.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations and reallocations counted so far in this process (all threads).
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::SeqCst)
}
