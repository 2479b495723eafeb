//! The crate's error type.

use std::time::Duration;

use crate::{ChildEnd, ProtocolError, SlotOwner};

/// Everything that can go wrong in the pool, the control channel or a child.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// A system call failed.
    #[error("{call} failed for {what}: {source}")]
    Os {
        /// The call (`memfd_create`, `mmap`, `socketpair`, …).
        call: &'static str,
        /// What it was for (the pool's or the handler's name).
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A pool of this shape cannot be made.
    #[error(
        "shared-memory pool `{name}`: {slots} slots of {slot_size} bytes is not allowed ({reason})"
    )]
    PoolShape {
        /// The pool's name.
        name: String,
        /// Requested slots.
        slots: usize,
        /// Requested slot size.
        slot_size: usize,
        /// Why.
        reason: &'static str,
    },
    /// The pool a child was given does not look like one (wrong fd, another build, truncated).
    #[error("shared-memory pool on fd {fd} is invalid: {reason}")]
    PoolInvalid {
        /// The descriptor.
        fd: i32,
        /// What did not match.
        reason: String,
    },
    /// Every slot is leased.
    #[error("shared-memory pool `{name}` has no free slot (all {slots} leased)")]
    PoolExhausted {
        /// The pool's name.
        name: String,
        /// Its size.
        slots: usize,
    },
    /// A frame named a slot that is not leased to whoever named it (a stale or forged index).
    #[error(
        "slot {slot} generation {generation} is not held by {holder} (it is {found:?}, generation {found_generation})"
    )]
    SlotNotHeld {
        /// The slot index.
        slot: u32,
        /// The generation named.
        generation: u32,
        /// Who claimed it (`"child #0"`, `"the parent"`).
        holder: String,
        /// Its real owner.
        found: SlotOwner,
        /// Its real generation.
        found_generation: u32,
    },
    /// A frame longer than its slot.
    #[error("frame of {len} bytes does not fit slot {slot} of {slot_size} bytes")]
    FrameTooLong {
        /// The slot.
        slot: u32,
        /// Bytes claimed.
        len: u32,
        /// The slot's size.
        slot_size: usize,
    },
    /// A message could not be encoded, or one received was malformed.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The child process could not be started.
    #[error("could not start the child for handler `{handler}`: {source}")]
    Spawn {
        /// The handler it was to run.
        handler: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The child did not answer `Ready` in time; it was killed.
    #[error("child for handler `{handler}` (pid {pid}) did not start within {timeout:?}: killed")]
    StartTimeout {
        /// The handler.
        handler: String,
        /// Its process id.
        pid: u32,
        /// The start timeout.
        timeout: Duration,
    },
    /// The child process ended.
    #[error("child for handler `{handler}` (pid {pid}) {end}; {reclaimed} pool slots reclaimed")]
    ChildDied {
        /// The handler.
        handler: String,
        /// Its process id.
        pid: u32,
        /// How it ended.
        end: ChildEnd,
        /// Slots it held, returned to the pool.
        reclaimed: usize,
    },
    /// The child overran its per-tick deadline; the watchdog killed it.
    #[error(
        "child for handler `{handler}` (pid {pid}) overran its {deadline:?} deadline on frame {frame}: killed by the watchdog; {reclaimed} pool slots reclaimed"
    )]
    Overran {
        /// The handler.
        handler: String,
        /// Its process id.
        pid: u32,
        /// The tick it was processing.
        frame: u64,
        /// The deadline.
        deadline: Duration,
        /// Slots it held, returned to the pool.
        reclaimed: usize,
    },
    /// The child broke the protocol (garbage, a forged slot, an unexpected message); killed.
    #[error(
        "child for handler `{handler}` (pid {pid}) broke the control protocol: {reason}; killed; {reclaimed} pool slots reclaimed"
    )]
    Misbehaved {
        /// The handler.
        handler: String,
        /// Its process id.
        pid: u32,
        /// What it sent.
        reason: String,
        /// Slots it held, returned to the pool.
        reclaimed: usize,
    },
    /// The child's handler reported an error for a tick (the child is still running).
    #[error("handler `{handler}` in child pid {pid} failed: {message}")]
    Handler {
        /// The handler.
        handler: String,
        /// Its process id.
        pid: u32,
        /// Its message.
        message: String,
    },
    /// In a child: the environment the parent sets is missing or malformed.
    #[error("not started as a streamlib worker: {0}")]
    NotAWorker(String),
    /// In a child: the parent closed the control channel.
    #[error("the parent closed the control channel")]
    ParentGone,
}
