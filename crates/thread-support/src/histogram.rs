//! A fixed-memory, log-bucketed histogram of durations (HDR-like), safe to
//! record into from many threads.
//!
//! Values are nanoseconds. Below `2^sub_bits` ns each value has a bucket;
//! above, every power of two is split into `2^sub_bits` equal buckets, so a
//! quantile (the bucket's midpoint, clamped to the exact min and max) is
//! within `1 / 2^(sub_bits + 1)` of a recorded value. The buckets cover all
//! of `u64`. The resolution is the one parameter: the frame guard keeps 32
//! buckets per power of two (1.6 %, 15 KiB), a role pool's per-task
//! metrics 8 (6 %, 4 KiB, recorded on every task).
//!
//! Recording is a few relaxed atomic operations (no lock), so a histogram
//! shared by threads needs no mutex; a reader sees each value's bucket,
//! count and sum possibly a moment apart.

use crate::cpu::duration_to_nanos;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// A histogram of durations with exact count, sum (saturating at
/// `u64::MAX` ns), min and max, and quantiles within the resolution. Every
/// method takes `&self`.
pub struct Histogram {
    sub_bits: u32,
    counts: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_ns: AtomicU64,
    min_ns: AtomicU64,
    max_ns: AtomicU64,
}

impl Histogram {
    /// The frame guard's resolution: 32 buckets per power of two.
    pub const FINE: u32 = 5;
    /// The resolution of cheap per-task metrics: 8 buckets per power of two.
    pub const COARSE: u32 = 3;

    /// An empty histogram of [`FINE`](Self::FINE) resolution.
    pub fn new() -> Self {
        Self::with_resolution(Self::FINE)
    }

    /// An empty histogram with `2^sub_bits` buckets per power of two
    /// (`sub_bits` is clamped to `0..=8`).
    pub fn with_resolution(sub_bits: u32) -> Self {
        let sub_bits = sub_bits.min(8);
        let buckets = (64 - sub_bits as usize + 1) << sub_bits;
        Self {
            sub_bits,
            counts: (0..buckets).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
            min_ns: AtomicU64::new(u64::MAX),
            max_ns: AtomicU64::new(0),
        }
    }

    /// The bucket of a value.
    fn bucket_of(&self, ns: u64) -> usize {
        let sub = 1u64 << self.sub_bits;
        if ns < sub {
            return ns as usize;
        }
        let msb = 63 - ns.leading_zeros();
        let shift = msb - self.sub_bits;
        let within = ((ns >> shift) & (sub - 1)) as usize;
        ((shift as usize + 1) << self.sub_bits) + within
    }

    /// The lowest value of a bucket and its width.
    fn bucket_range(&self, index: usize) -> (u64, u64) {
        let sub = 1usize << self.sub_bits;
        if index < sub {
            return (index as u64, 1);
        }
        let shift = (index / sub - 1) as u32;
        let within = (index % sub) as u64;
        (((sub as u64) + within) << shift, 1u64 << shift)
    }

    /// Records one value.
    pub fn record(&self, value: Duration) {
        let ns = duration_to_nanos(value);
        self.counts[self.bucket_of(ns)].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        let _ = self
            .sum_ns
            .fetch_update(Relaxed, Relaxed, |s| Some(s.saturating_add(ns)));
        // Most values move neither extreme: a load avoids a write.
        if ns < self.min_ns.load(Relaxed) {
            self.min_ns.fetch_min(ns, Relaxed);
        }
        if ns > self.max_ns.load(Relaxed) {
            self.max_ns.fetch_max(ns, Relaxed);
        }
    }

    /// Forgets every value (keeps the memory). Values recorded while it
    /// runs may be kept in part.
    pub fn clear(&self) {
        for c in self.counts.iter() {
            c.store(0, Relaxed);
        }
        self.count.store(0, Relaxed);
        self.sum_ns.store(0, Relaxed);
        self.min_ns.store(u64::MAX, Relaxed);
        self.max_ns.store(0, Relaxed);
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// The smallest value (zero when empty).
    pub fn min(&self) -> Duration {
        match self.min_ns.load(Relaxed) {
            u64::MAX if self.count() == 0 => Duration::ZERO,
            ns => Duration::from_nanos(ns),
        }
    }

    /// The largest value, exact (zero when empty).
    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.max_ns.load(Relaxed))
    }

    /// The exact sum of the values (saturating at `u64::MAX` ns).
    pub fn sum(&self) -> Duration {
        Duration::from_nanos(self.sum_ns.load(Relaxed))
    }

    /// The mean (zero when empty).
    pub fn mean(&self) -> Duration {
        match self.count() {
            0 => Duration::ZERO,
            n => Duration::from_nanos(self.sum_ns.load(Relaxed) / n),
        }
    }

    /// The `q`-quantile (`q` in `[0, 1]`, clamped; NaN is read as 0.5): the
    /// smallest recorded value `v` such that at least `ceil(q * count)`
    /// values are `<= v`, to within the bucket precision (exact for the first
    /// and last rank). Zero when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        let counts: Vec<u64> = self.counts.iter().map(|c| c.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return Duration::ZERO;
        }
        let q = if q.is_nan() { 0.5 } else { q.clamp(0.0, 1.0) };
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        // The extremes are known exactly.
        if rank == 1 {
            return self.min();
        }
        if rank == total {
            return self.max();
        }
        let (min, max) = (self.min_ns.load(Relaxed), self.max_ns.load(Relaxed));
        let mut seen = 0u64;
        for (index, &n) in counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let (low, width) = self.bucket_range(index);
                let mid = low.saturating_add(width / 2);
                // max() first: a concurrent record may have bumped the
                // bucket before the extremes.
                return Duration::from_nanos(mid.min(max).max(min.min(max)));
            }
        }
        self.max()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Clone for Histogram {
    fn clone(&self) -> Self {
        let load = |a: &AtomicU64| AtomicU64::new(a.load(Relaxed));
        Self {
            sub_bits: self.sub_bits,
            counts: self.counts.iter().map(load).collect(),
            count: load(&self.count),
            sum_ns: load(&self.sum_ns),
            min_ns: load(&self.min_ns),
            max_ns: load(&self.max_ns),
        }
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count())
            .field("min", &self.min())
            .field("p50", &self.quantile(0.5))
            .field("p99", &self.quantile(0.99))
            .field("max", &self.max())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_cover_every_value_at_every_resolution() {
        for sub_bits in 0..=8 {
            let h = Histogram::with_resolution(sub_bits);
            let mut expected_low = 0u64;
            for index in 0..h.counts.len() {
                let (low, width) = h.bucket_range(index);
                assert_eq!(low, expected_low, "bucket {index} at {sub_bits}");
                assert_eq!(h.bucket_of(low), index);
                assert_eq!(h.bucket_of(low + (width - 1)), index);
                expected_low = low.wrapping_add(width);
            }
            assert_eq!(expected_low, 0, "the last bucket ends at 2^64");
            assert_eq!(h.bucket_of(u64::MAX), h.counts.len() - 1);
        }
    }

    #[test]
    fn quantiles_are_within_the_stated_precision() {
        for (sub_bits, error) in [
            (Histogram::FINE, 1.0 / 64.0),
            (Histogram::COARSE, 1.0 / 16.0),
        ] {
            let h = Histogram::with_resolution(sub_bits);
            for ms in 1..=1000u64 {
                h.record(Duration::from_micros(ms * 1000));
            }
            for (q, exact_ms) in [(0.5, 500.0), (0.99, 990.0), (0.01, 10.0)] {
                let got = h.quantile(q).as_secs_f64() * 1e3;
                assert!(
                    (got - exact_ms).abs() / exact_ms <= error,
                    "{sub_bits}: q{q}: {got} vs {exact_ms}"
                );
            }
            assert_eq!(h.quantile(1.0), Duration::from_secs(1), "q1 is the max");
            assert_eq!(h.quantile(0.0), Duration::from_millis(1), "q0 is the min");
            assert_eq!(h.count(), 1000);
            assert_eq!(h.max(), Duration::from_secs(1));
            assert_eq!(h.mean(), Duration::from_micros(500_500));
            assert_eq!(h.sum(), Duration::from_micros(500_500_000));
        }
    }

    #[test]
    fn one_slow_value_among_many_fast_shows_in_p99_only_when_it_is_over_one_percent() {
        let h = Histogram::new();
        for _ in 0..99 {
            h.record(Duration::from_millis(10));
        }
        h.record(Duration::from_secs(3));
        let p99 = h.quantile(0.99).as_secs_f64();
        assert!((p99 - 0.010).abs() < 0.010 / 64.0, "p99 {p99}");
        assert_eq!(h.max(), Duration::from_secs(3));
        h.record(Duration::from_secs(3));
        assert!(h.quantile(0.99) > Duration::from_secs(2));
    }

    #[test]
    fn empty_and_cleared_histograms_report_zero_and_huge_values_saturate() {
        let h = Histogram::new();
        let zeros = |h: &Histogram| (h.count(), h.quantile(0.5), h.max(), h.mean(), h.min());
        let z = Duration::ZERO;
        assert_eq!(zeros(&h), (0, z, z, z, z));
        h.record(Duration::MAX);
        h.record(Duration::MAX);
        assert_eq!(h.sum(), Duration::from_nanos(u64::MAX), "the sum saturates");
        h.clear();
        assert_eq!(zeros(&h), (0, z, z, z, z));
    }

    #[test]
    fn threads_recording_at_once_lose_no_value_and_clones_are_snapshots() {
        let h = Histogram::with_resolution(Histogram::COARSE);
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let h = &h;
                s.spawn(move || {
                    for i in 1..=10_000u64 {
                        h.record(Duration::from_nanos(i * 4 + t));
                    }
                });
            }
        });
        let snapshot = h.clone();
        h.record(Duration::from_secs(1));
        assert_eq!(snapshot.count(), 40_000);
        assert_eq!(snapshot.min(), Duration::from_nanos(4));
        assert_eq!(snapshot.max(), Duration::from_nanos(40_003));
        let sum: u64 = (0..4u64)
            .map(|t| (1..=10_000u64).map(|i| i * 4 + t).sum::<u64>())
            .sum();
        assert_eq!(snapshot.sum(), Duration::from_nanos(sum));
        assert_eq!(h.count(), 40_001);
    }
}
