//! Zero-copy buffer primitives for streamlib: the pieces every port is built from.
//!
//! - [`LatestBuffer`] / [`LatestReader`]: a lock-free ring of 3 slots (by default) with
//!   latest-read semantics. One writer fans out to any number of readers; each reader gets the
//!   newest item, can tell whether it is new, and counts what it missed. Nothing queues.
//! - [`OrderedQueue`]: bounded in-order delivery for audio, data and events, with overflow
//!   counted, never silent.
//! - [`BufferPool`]: pre-allocated buffers handed out as [`PoolBufMut`], shared as
//!   [`PooledBuf`], and returned to the pool when the last reference drops, so steady-state
//!   processing allocates nothing.
//!
//! This crate depends on nothing heavier than `crossbeam-queue`: no async runtime, no GPU, no
//! codec library.
//!
//! ```
//! use streamlib_buffers::{BufferPool, LatestBuffer};
//!
//! let pool = BufferPool::<u8>::new("frames", 640 * 480 * 4, 4, 8)?;
//! let ring = LatestBuffer::new();
//! let display = ring.reader();
//! let recorder = ring.reader();
//!
//! let mut frame = pool.acquire()?;
//! frame.fill(0x80);
//! ring.write(frame.freeze());
//!
//! let shown = display.read_new().expect("a new frame");
//! let recorded = recorder.read_new().expect("a new frame");
//! assert!(shown.ptr_eq(&recorded)); // both readers hold the same memory, no copy
//! assert!(display.read_new().is_none()); // nothing is returned twice
//! # Ok::<(), streamlib_buffers::BuffersError>(())
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod latest;
mod ordered;
mod pool;
mod sync;

pub use error::BuffersError;
pub use latest::{DEFAULT_SLOTS, Latest, LatestBuffer, LatestReader, MAX_SLOTS};
pub use ordered::{OrderedQueue, OverflowPolicy, PushOutcome};
pub use pool::{BufferPool, PoolBufMut, PoolStorage, PooledBuf};

/// The names most users of this crate need, for `use streamlib_buffers::prelude::*`
/// (`streamlib::prelude` includes it).
pub mod prelude {
    pub use crate::{BufferPool, PoolBufMut, PooledBuf};
}
