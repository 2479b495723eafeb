//! Process isolation for streamlib handlers: frames in shared memory, a small control
//! protocol, supervised child processes.
//!
//! A handler that may crash — a C library that segfaults, an `abort`, an out-of-memory kill, a
//! loop that never ends — runs in a child process. The parent keeps a [`ShmPool`] of frame
//! slots in a sealed `memfd` mapped by both; a frame crossing the boundary is a slot index, a
//! generation and a length in a [`Message::Frame`], never a copy of its pixels. The
//! [`Child`] handle spawns the worker (the caller's `Command`, typically the same executable
//! re-entered through a hidden argument), applies resource limits, notices its death within
//! one tick, kills it when it overruns its deadline, and returns every slot it held to the
//! pool. The child's side is [`Worker`]. `streamlib-launch`'s `@process` dispatcher is built
//! on these (see `docs/PROCESS.md`): producers feeding a child write into
//! [`ShmPool::reserve`]d slots through a `BufferPool` over them, so their frames cross as
//! [`ShmPool::lend`]s of the slot [`ShmPool::slot_of`] finds, without a copy.
//!
//! ```no_run
//! use std::process::Command;
//! use streamlib_process::{Child, ChildOptions, FrameSlot, ShmPool};
//! use streamlib_ports::PixelFormat;
//!
//! let pool = ShmPool::new("blur", 4, 1920 * 1080 * 4)?;
//! let worker = Command::new(std::env::current_exe().map_err(|e| streamlib_process::ProcessError::NotAWorker(e.to_string()))?);
//! let mut child = Child::spawn(worker, "blur", &[("sigma", "2")], &pool, ChildOptions::default())?;
//! let mut lease = pool.acquire()?;
//! lease.as_mut_slice().fill(0x80); // a producer writes its frame straight into the slot
//! child.start_tick(1, 0)?;
//! let frame = FrameSlot { port: 0, slot: 0, generation: 0, len: 1920 * 1080 * 4,
//!     width: 1920, height: 1080, format: PixelFormat::Rgba8, stride: 1920 * 4 };
//! child.send_frame(lease, frame)?;
//! child.finish_tick(|output, slot| { /* the child's result, in a slot */ drop((output, slot)); })?;
//! # Ok::<(), streamlib_process::ProcessError>(())
//! ```
//!
//! # Why `memfd`, not iceoryx2
//!
//! iceoryx2 (0.10) is a good library for publish/subscribe between independent processes, but
//! it fits this job badly: it needs Rust 1.89 (the workspace's floor is 1.88); it brings about
//! twenty crates of its own plus serde, toml and flatbuffers, and its POSIX layer runs bindgen
//! (libclang) and cc at build time; its samples are loaned by a publisher and read-only for
//! subscribers, where a handler wants to transform a slot in place and hand it back; and its
//! crash recovery is a scan of node state in the file system (`Node::list`, then
//! `remove_stale_resources` of dead nodes), where our parent already knows exactly which child
//! died and which slots it held. Plain `memfd_create` + `mmap` through libc (already in the
//! workspace) costs nothing to build; the memory dies with the last descriptor, so a crash
//! leaves nothing in `/dev/shm`; seals stop a child from shrinking the file under the parent;
//! and `reclaim(child)` is one compare-and-swap per slot.
//!
//! # Descriptors
//!
//! The socket pair and the `memfd` are created close-on-exec, so no other process the parent
//! spawns inherits them. [`Child::spawn`] clears the flag on exactly these two descriptors in
//! the forked child (`pre_exec`), and names their numbers in [`WORKER_ENV`];
//! [`Worker::connect`] takes them and sets the flag again.

#[cfg(not(loom))]
mod channel;
#[cfg(not(loom))]
mod child;
#[cfg(not(loom))]
mod error;
#[cfg(not(loom))]
mod pool;
#[cfg(not(loom))]
mod protocol;
mod slots;
mod sync;
#[cfg(not(loom))]
mod worker;

#[cfg(not(loom))]
pub use channel::{ControlChannel, Received};
#[cfg(not(loom))]
pub use child::{Child, ChildEnd, ChildOptions, TickDone, WORKER_ENV, signal_name};
#[cfg(not(loom))]
pub use error::ProcessError;
#[cfg(not(loom))]
pub use pool::{MAX_SLOT_SIZE, MAX_SLOTS, PoolView, ShmPool, ShmStorage, SlotLease};
#[cfg(not(loom))]
pub use protocol::{
    AudioSlot, ChildStats, Crossing, FrameSlot, LEND_PORT, MAX_MESSAGE, Message, PROTOCOL_VERSION,
    ProtocolError, decode, truncate_str,
};
#[cfg(loom)]
pub use slots::LoomSlots;
pub use slots::{ChildId, SlotOwner};
/// The buffer types a pool over shared memory is made of (re-exported for crates that wire
/// `@process` without depending on `streamlib-buffers` themselves).
#[cfg(not(loom))]
pub use streamlib_buffers::{BufferPool, PoolBufMut, PoolStorage, PooledBuf};
#[cfg(not(loom))]
pub use worker::{Startup, Worker};
