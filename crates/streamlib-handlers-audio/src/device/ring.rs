//! A wait-free single-producer single-consumer ring of f32 samples between a pipeline thread
//! and a sound device's callback: no lock, no allocation after construction.
//!
//! Samples are stored as `AtomicU32` bits, so the ring needs no `unsafe`: on x86 and ARM a
//! relaxed atomic load or store of 32 bits is an ordinary move. The positions count samples
//! since the start (they never wrap in practice: 2^64 samples is three million years at
//! 192 kHz); the producer publishes its position with `Release` after writing, the consumer
//! reads it with `Acquire` before reading, and the other way round for the consumer's.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// The ring: `capacity` samples.
pub(crate) struct SampleRing {
    slots: Box<[AtomicU32]>,
    /// Samples written so far (the producer's position).
    written: AtomicU64,
    /// Samples read so far (the consumer's position).
    read: AtomicU64,
}

impl SampleRing {
    /// A ring holding `capacity` samples (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        let slots = (0..capacity.max(1)).map(|_| AtomicU32::new(0)).collect();
        Self {
            slots,
            written: AtomicU64::new(0),
            read: AtomicU64::new(0),
        }
    }

    /// Samples waiting to be read, as either side sees it.
    pub(crate) fn len(&self) -> usize {
        let written = self.written.load(Ordering::Acquire);
        let read = self.read.load(Ordering::Acquire);
        usize::try_from(written.saturating_sub(read)).unwrap_or(usize::MAX)
    }

    /// Producer: appends as many of `samples` as fit; returns how many did (the rest are
    /// the caller's over-run).
    pub(crate) fn push(&self, samples: impl ExactSizeIterator<Item = f32>) -> usize {
        let cap = self.slots.len() as u64;
        // Relaxed: only this side writes `written`.
        let written = self.written.load(Ordering::Relaxed);
        let read = self.read.load(Ordering::Acquire);
        let free = cap - written.saturating_sub(read).min(cap);
        let n = (samples.len() as u64).min(free);
        for (i, s) in samples.take(n as usize).enumerate() {
            let slot = ((written + i as u64) % cap) as usize;
            self.slots[slot].store(s.to_bits(), Ordering::Relaxed);
        }
        self.written.store(written + n, Ordering::Release);
        n as usize
    }

    /// Consumer: hands up to `max` samples, in order, to `each(index, sample)`; returns how
    /// many.
    pub(crate) fn pop_each(&self, max: usize, mut each: impl FnMut(usize, f32)) -> usize {
        let cap = self.slots.len() as u64;
        // Relaxed: only this side writes `read`.
        let read = self.read.load(Ordering::Relaxed);
        let written = self.written.load(Ordering::Acquire);
        let n = written.saturating_sub(read).min(max as u64);
        for i in 0..n {
            let slot = ((read + i) % cap) as usize;
            each(
                i as usize,
                f32::from_bits(self.slots[slot].load(Ordering::Relaxed)),
            );
        }
        self.read.store(read + n, Ordering::Release);
        n as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_kept_and_overflow_is_refused() {
        let ring = SampleRing::new(5);
        assert_eq!(ring.push([1.0, 2.0, 3.0].into_iter()), 3);
        assert_eq!(ring.push([4.0, 5.0, 6.0].into_iter()), 2);
        let mut got = [0.0; 4];
        assert_eq!(ring.pop_each(4, |i, s| got[i] = s), 4);
        assert_eq!(got, [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(ring.push([7.0, 8.0].into_iter()), 2);
        let mut rest = Vec::new();
        ring.pop_each(10, |_, s| rest.push(s));
        assert_eq!(rest, [5.0, 7.0, 8.0]);
        assert_eq!(ring.len(), 0);
    }

    #[test]
    fn two_threads_see_every_sample_in_order() {
        let ring = std::sync::Arc::new(SampleRing::new(257));
        let producer = {
            let ring = std::sync::Arc::clone(&ring);
            std::thread::spawn(move || {
                let mut next = 0u32;
                while next < 200_000 {
                    let chunk = (next..(next + 100).min(200_000)).map(|v| v as f32);
                    next += ring.push(chunk) as u32;
                    std::thread::yield_now();
                }
            })
        };
        let mut expect = 0u32;
        while expect < 200_000 {
            ring.pop_each(64, |_, s| {
                assert_eq!(s, expect as f32);
                expect += 1;
            });
            std::thread::yield_now();
        }
        assert!(producer.join().is_ok());
    }
}
