//! Bounded, in-order delivery for audio, data and events: nothing is dropped silently.

use crate::BuffersError;
use crate::sync::{ArrayQueue, AtomicU64, Ordering};

/// What an [`OrderedQueue`] does when a push finds it full. Either way the loss is counted in
/// [`OrderedQueue::overflowed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverflowPolicy {
    /// Discard the oldest queued item to make room (keeps the stream current; the default).
    #[default]
    DropOldest,
    /// Refuse the new item.
    DropNewest,
}

/// What happened to a pushed item.
#[derive(Debug, PartialEq, Eq)]
pub enum PushOutcome<T> {
    /// Queued without loss.
    Queued,
    /// Queued, and this oldest item was discarded to make room.
    DisplacedOldest(T),
    /// Not queued: the queue was full and the policy is [`OverflowPolicy::DropNewest`].
    Rejected(T),
}

/// A bounded multi-producer multi-consumer FIFO (a lock-free `crossbeam` array queue) that
/// counts everything it had to discard.
#[derive(Debug)]
pub struct OrderedQueue<T> {
    queue: ArrayQueue<T>,
    policy: OverflowPolicy,
    pushed: AtomicU64,
    popped: AtomicU64,
    overflowed: AtomicU64,
}

impl<T> OrderedQueue<T> {
    /// A queue holding up to `capacity` items.
    pub fn new(capacity: usize, policy: OverflowPolicy) -> Result<Self, BuffersError> {
        if capacity == 0 {
            return Err(BuffersError::InvalidQueueCapacity {
                requested: capacity,
            });
        }
        Ok(Self {
            queue: ArrayQueue::new(capacity),
            policy,
            pushed: AtomicU64::new(0),
            popped: AtomicU64::new(0),
            overflowed: AtomicU64::new(0),
        })
    }

    /// Appends `item`, applying the overflow policy when full.
    pub fn push(&self, item: T) -> PushOutcome<T> {
        self.pushed.fetch_add(1, Ordering::Relaxed);
        match self.policy {
            OverflowPolicy::DropOldest => match self.queue.force_push(item) {
                None => PushOutcome::Queued,
                Some(old) => {
                    self.overflowed.fetch_add(1, Ordering::Relaxed);
                    PushOutcome::DisplacedOldest(old)
                }
            },
            OverflowPolicy::DropNewest => match self.queue.push(item) {
                Ok(()) => PushOutcome::Queued,
                Err(item) => {
                    self.overflowed.fetch_add(1, Ordering::Relaxed);
                    PushOutcome::Rejected(item)
                }
            },
        }
    }

    /// Takes the oldest item.
    pub fn pop(&self) -> Option<T> {
        let item = self.queue.pop();
        if item.is_some() {
            self.popped.fetch_add(1, Ordering::Relaxed);
        }
        item
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Maximum items held.
    pub fn capacity(&self) -> usize {
        self.queue.capacity()
    }

    /// The overflow policy.
    pub fn policy(&self) -> OverflowPolicy {
        self.policy
    }

    /// Items pushed, including those later discarded.
    pub fn pushed(&self) -> u64 {
        self.pushed.load(Ordering::Relaxed)
    }

    /// Items taken by consumers.
    pub fn popped(&self) -> u64 {
        self.popped.load(Ordering::Relaxed)
    }

    /// Items discarded because the queue was full.
    pub fn overflowed(&self) -> u64 {
        self.overflowed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn drop_oldest_keeps_order_and_counts() {
        let q = OrderedQueue::new(2, OverflowPolicy::DropOldest).unwrap();
        assert_eq!(q.push(1), PushOutcome::Queued);
        assert_eq!(q.push(2), PushOutcome::Queued);
        assert_eq!(q.push(3), PushOutcome::DisplacedOldest(1));
        assert_eq!((q.pop(), q.pop(), q.pop()), (Some(2), Some(3), None));
        assert_eq!((q.pushed(), q.popped(), q.overflowed()), (3, 2, 1));
    }

    #[test]
    fn drop_newest_rejects() {
        let q = OrderedQueue::new(1, OverflowPolicy::DropNewest).unwrap();
        q.push('a');
        assert_eq!(q.push('b'), PushOutcome::Rejected('b'));
        assert_eq!(q.pop(), Some('a'));
        assert_eq!(q.overflowed(), 1);
    }

    #[test]
    fn zero_capacity_is_an_error() {
        assert!(OrderedQueue::<u8>::new(0, OverflowPolicy::DropOldest).is_err());
    }
}
