//! A fixed-size, lock-free log-linear histogram of durations (or any `u64`), shared by the
//! runtime's per-handler statistics and the network handlers' pacing and latency figures.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Sub-buckets per power of two (2^4 = 16).
const SUB_BITS: u32 = 4;
const SUB: u64 = 1 << SUB_BITS;
/// Values below `SUB` get a bucket each; every power of two above has `SUB` of them, up to
/// `u64::MAX`.
const BUCKETS: usize = (SUB as usize) * (64 - SUB_BITS as usize + 1);

/// Log-linear histogram of `u64` values (ns, usually): 16 buckets per power of two, so a
/// quantile is within [`LatencyHistogram::RELATIVE_ERROR`] (1/16, 6.25 %) of the true value,
/// over the whole `u64` range.
///
/// Fixed size, nothing allocated: [`new`](Self::new) is `const` (it can be a `static`) and
/// recording is a handful of relaxed atomic operations. Any thread may read while another
/// records; readers see counts that are at most a record or two behind.
///
/// ```
/// use streamlib_clock::LatencyHistogram;
/// let h = LatencyHistogram::new();
/// for us in 1..=100u64 {
///     h.record(us * 1_000);
/// }
/// let p50 = h.quantile(0.5);
/// assert!(p50 >= 50_000 && p50 as f64 <= 50_000.0 * (1.0 + LatencyHistogram::RELATIVE_ERROR));
/// assert_eq!((h.count(), h.max(), h.mean()), (100, 100_000, 50_500));
/// ```
pub struct LatencyHistogram {
    buckets: [AtomicU64; BUCKETS],
    count: AtomicU64,
    max: AtomicU64,
    sum: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("count", &self.count())
            .field("p50", &self.quantile(0.5))
            .field("p99", &self.quantile(0.99))
            .field("max", &self.max())
            .finish()
    }
}

/// The bucket of `v`.
fn index(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros();
    let sub = (v >> (exp - SUB_BITS)) & (SUB - 1);
    ((exp - SUB_BITS + 1) as usize) * SUB as usize + sub as usize
}

/// The largest value of bucket `i`.
fn upper_bound(i: usize) -> u64 {
    let (block, sub) = ((i / SUB as usize) as u32, (i % SUB as usize) as u64);
    if block == 0 {
        return sub;
    }
    let exp = block + SUB_BITS - 1;
    let width = 1u64 << (exp - SUB_BITS);
    ((1u64 << exp) | (sub << (exp - SUB_BITS))) + (width - 1)
}

impl LatencyHistogram {
    /// How far above the true value a [`quantile`](Self::quantile) may be, relative to it
    /// (it is never below): one sub-bucket, 1/16 of a power of two.
    pub const RELATIVE_ERROR: f64 = 1.0 / SUB as f64;

    /// An empty histogram.
    pub const fn new() -> Self {
        Self {
            buckets: [const { AtomicU64::new(0) }; BUCKETS],
            count: AtomicU64::new(0),
            max: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }

    /// Records one value; any number of threads may record at once.
    pub fn record(&self, v: u64) {
        self.buckets[index(v)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(v, Ordering::Relaxed);
        self.max.fetch_max(v, Ordering::Relaxed);
    }

    /// Records one value with plain loads and stores instead of read-modify-write
    /// instructions: cheaper, and exact as long as only one thread records at a time (a
    /// runtime's stream, recorded by the thread that holds it). Concurrent writers would
    /// lose counts, never corrupt anything.
    pub fn record_single_writer(&self, v: u64) {
        let add = |a: &AtomicU64, n: u64| {
            a.store(a.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
        };
        add(&self.buckets[index(v)], 1);
        add(&self.count, 1);
        add(&self.sum, v);
        if v > self.max.load(Ordering::Relaxed) {
            self.max.store(v, Ordering::Relaxed);
        }
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Largest value recorded (0 when empty).
    pub fn max(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }

    /// Mean of the values recorded (0 when empty).
    pub fn mean(&self) -> u64 {
        self.sum.load(Ordering::Relaxed) / self.count().max(1)
    }

    /// The value at or below which a share `q` (0 ..= 1) of the values lie: the top of the
    /// bucket holding that rank, capped at [`max`](Self::max), so never below the true value
    /// and at most [`RELATIVE_ERROR`](Self::RELATIVE_ERROR) above it. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        let count = self.count();
        if count == 0 {
            return 0;
        }
        let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
        let max = self.max();
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                return upper_bound(i).min(max);
            }
        }
        max
    }

    /// Forgets every value. Not atomic as a whole: values recorded meanwhile may be lost.
    pub fn reset(&self) {
        for b in &self.buckets {
            b.store(0, Ordering::Relaxed);
        }
        self.count.store(0, Ordering::Relaxed);
        self.max.store(0, Ordering::Relaxed);
        self.sum.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn buckets_are_ordered_and_cover_every_value() {
        let mut prev = 0;
        for v in [
            0u64,
            1,
            7,
            15,
            16,
            17,
            31,
            32,
            100,
            1000,
            12_345,
            1 << 40,
            u64::MAX,
        ] {
            let i = index(v);
            assert!(i >= prev && i < BUCKETS, "{v}");
            assert!(upper_bound(i) >= v, "{v}");
            if i > 0 {
                assert!(upper_bound(i - 1) < v, "{v}");
            }
            prev = i;
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
        assert_eq!(upper_bound(BUCKETS - 1), u64::MAX);
    }

    #[test]
    fn quantiles_are_within_a_bucket() {
        let h = LatencyHistogram::new();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5);
        assert!((500_000..=531_250).contains(&p50), "{p50}");
        let p99 = h.quantile(0.99);
        assert!((990_000..=1_000_000).contains(&p99), "{p99}");
        assert_eq!(h.quantile(1.0), 1_000_000);
        assert_eq!((h.max(), h.count(), h.mean()), (1_000_000, 1000, 500_500));
    }

    #[test]
    fn empty_and_reset() {
        let h = LatencyHistogram::new();
        assert_eq!(
            (h.quantile(0.5), h.max(), h.mean(), h.count()),
            (0, 0, 0, 0)
        );
        h.record(42);
        h.reset();
        assert_eq!(
            (h.quantile(0.5), h.max(), h.mean(), h.count()),
            (0, 0, 0, 0)
        );
    }

    #[test]
    fn single_writer_records_the_same() {
        let (a, b) = (LatencyHistogram::new(), LatencyHistogram::new());
        for v in [0u64, 3, 17, 900, 65_000, 1 << 33] {
            a.record(v);
            b.record_single_writer(v);
        }
        for q in [0.0, 0.25, 0.5, 0.9, 1.0] {
            assert_eq!(a.quantile(q), b.quantile(q), "{q}");
        }
        assert_eq!(
            (a.count(), a.max(), a.mean()),
            (b.count(), b.max(), b.mean())
        );
    }

    #[test]
    fn concurrent_records_are_all_counted() {
        let h = LatencyHistogram::new();
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let h = &h;
                s.spawn(move || (0..10_000).for_each(|i| h.record(t * 10_000 + i)));
            }
        });
        assert_eq!((h.count(), h.max()), (40_000, 39_999));
    }

    proptest! {
        /// Every quantile lies between the true value (the sorted sample at that rank) and
        /// RELATIVE_ERROR above it.
        #[test]
        fn quantiles_are_within_the_stated_error(
            values in prop::collection::vec(any::<u64>().prop_map(|v| v >> (v % 64)), 1..400),
            q in 0.0f64..=1.0,
        ) {
            let h = LatencyHistogram::new();
            for &v in &values {
                h.record(v);
            }
            let mut sorted = values.clone();
            sorted.sort_unstable();
            let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
            let truth = sorted[rank - 1];
            let got = h.quantile(q);
            prop_assert!(got >= truth, "{got} < {truth}");
            let limit = truth as f64 * (1.0 + LatencyHistogram::RELATIVE_ERROR);
            prop_assert!(got as f64 <= limit, "{got} > {limit} (truth {truth})");
        }
    }
}
