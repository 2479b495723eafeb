use thiserror::Error;

/// Errors raised by the buffer primitives.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum BuffersError {
    /// A latest-read ring buffer needs at least two slots (one being written, one holding the
    /// newest item) and at most [`crate::MAX_SLOTS`].
    #[error("a latest-read buffer needs between 2 and {max} slots, {requested} were requested")]
    InvalidSlotCount {
        /// Slots asked for.
        requested: usize,
        /// Largest supported count.
        max: usize,
    },
    /// An ordered queue needs room for at least one item.
    #[error("an ordered queue needs a capacity of at least 1, {requested} was requested")]
    InvalidQueueCapacity {
        /// Capacity asked for.
        requested: usize,
    },
    /// A pool was configured with impossible sizes.
    #[error(
        "buffer pool '{pool}' is misconfigured: initial {initial} buffers, max {max}, \
         {buffer_len} elements each (need 1 <= initial <= max and buffer_len > 0)"
    )]
    InvalidPoolConfig {
        /// Pool name.
        pool: String,
        /// Buffers allocated up front.
        initial: usize,
        /// Upper bound on buffers.
        max: usize,
        /// Elements per buffer.
        buffer_len: usize,
    },
    /// External storage cannot hold the pool's buffers.
    #[error(
        "buffer pool '{pool}' does not fit its storage: {buffer_len} elements per buffer, \
         the storage has {slots} slots of {slot_len} (need buffer_len <= slot_len, slots >= 1)"
    )]
    StorageTooSmall {
        /// Pool name.
        pool: String,
        /// Elements per buffer asked for.
        buffer_len: usize,
        /// Slots the storage has.
        slots: usize,
        /// Elements per slot of the storage.
        slot_len: usize,
    },
    /// Every buffer of the pool is in use and it may not grow further. A realtime producer
    /// should skip this frame (and count it) rather than wait.
    #[error(
        "buffer pool '{pool}' is exhausted: all {capacity} buffers of {buffer_len} elements are \
         in use; raise its max or release frames sooner"
    )]
    PoolExhausted {
        /// Pool name.
        pool: String,
        /// Buffers the pool may hold.
        capacity: usize,
        /// Elements per buffer.
        buffer_len: usize,
    },
}
