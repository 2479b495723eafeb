//! The atomics the slot state machine is built on, swappable for `loom`'s.
//!
//! Built normally this is `std`. Built with `RUSTFLAGS="--cfg loom"` the atomics come from
//! `loom`, which runs the model in `tests/loom.rs` under every interleaving its scheduler can
//! reach (as in streamlib-buffers).

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
