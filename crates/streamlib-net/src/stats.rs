//! Statistics the handlers publish: counters their threads update without locks, read as a
//! snapshot from any thread through a [`StatsHandle`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use streamlib_clock::LatencyHistogram;

/// What a handler's shared counters give a [`StatsHandle`].
pub(crate) trait StatsSource<T>: Send + Sync {
    /// The counters now.
    fn snapshot(&self) -> T;

    /// The histogram a handler exposes whole, if it has one ([`StatsHandle::gaps`]).
    fn histogram(&self) -> Option<&LatencyHistogram> {
        None
    }
}

/// Reads a handler's counters from any thread: [`snapshot`](Self::snapshot) gives them as a
/// `T` ([`SendStats`](crate::SendStats), [`ReceiveStats`](crate::ReceiveStats),
/// [`AudioSendStats`](crate::AudioSendStats), [`AudioReceiveStats`](crate::AudioReceiveStats)).
pub struct StatsHandle<T> {
    shared: Arc<dyn StatsSource<T>>,
}

impl<T> StatsHandle<T> {
    pub(crate) fn new(shared: Arc<dyn StatsSource<T>>) -> Self {
        Self { shared }
    }

    /// The counters now (receivers refresh them after every batch of datagrams).
    pub fn snapshot(&self) -> T {
        self.shared.snapshot()
    }
}

impl<T> Clone for StatsHandle<T> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for StatsHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.snapshot().fmt(f)
    }
}

/// The histogram with nothing in it, for handles whose handler keeps none.
static NO_VALUES: LatencyHistogram = LatencyHistogram::new();

impl StatsHandle<crate::SendStats> {
    /// The histogram of gaps between bursts.
    pub fn gaps(&self) -> &LatencyHistogram {
        self.shared.histogram().unwrap_or(&NO_VALUES)
    }
}

/// Reads a relaxed counter.
pub(crate) fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// Adds `n` to a relaxed counter.
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}
