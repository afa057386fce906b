//! A fixed-memory, log-bucketed histogram of durations (HDR-like).
//!
//! Values are nanoseconds. Values below 64 ns have a bucket each; above that,
//! every power of two is split into 32 equal buckets, so a bucket is at most
//! 1/32 of its lower bound wide and a quantile (the bucket's midpoint,
//! clamped to the exact min and max) is within 1/64 (1.6 %) of a recorded
//! value. 1920 buckets cover all of `u64`: 15 KiB, allocated once.

use crate::clock::duration_to_nanos;
use std::time::Duration;

const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB;

/// A histogram of durations with exact count, sum, min and max, and
/// quantiles within 1.6 %.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    count: u64,
    sum_ns: u128,
    min_ns: u64,
    max_ns: u64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count)
            .field("min", &self.min())
            .field("max", &self.max())
            .finish_non_exhaustive()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

/// The bucket of a value.
fn bucket_of(ns: u64) -> usize {
    if ns < SUB as u64 {
        return ns as usize;
    }
    let msb = 63 - ns.leading_zeros();
    let shift = msb - SUB_BITS;
    let sub = ((ns >> shift) as usize) & (SUB - 1);
    (shift as usize + 1) * SUB + sub
}

/// The lowest value of a bucket and its width.
fn bucket_range(index: usize) -> (u64, u64) {
    if index < SUB {
        return (index as u64, 1);
    }
    let shift = (index / SUB - 1) as u32;
    let sub = (index % SUB) as u64;
    ((SUB as u64 + sub) << shift, 1u64 << shift)
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            count: 0,
            sum_ns: 0,
            min_ns: u64::MAX,
            max_ns: 0,
        }
    }

    /// Records one value.
    pub fn record(&mut self, value: Duration) {
        let ns = duration_to_nanos(value);
        self.counts[bucket_of(ns)] += 1;
        self.count += 1;
        self.sum_ns += u128::from(ns);
        self.min_ns = self.min_ns.min(ns);
        self.max_ns = self.max_ns.max(ns);
    }

    /// Forgets every value (keeps the memory).
    pub fn clear(&mut self) {
        self.counts.fill(0);
        self.count = 0;
        self.sum_ns = 0;
        self.min_ns = u64::MAX;
        self.max_ns = 0;
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The smallest value (zero when empty).
    pub fn min(&self) -> Duration {
        if self.count == 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos(self.min_ns)
        }
    }

    /// The largest value, exact (zero when empty).
    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.max_ns)
    }

    /// The exact sum of the values.
    pub fn sum(&self) -> Duration {
        let ns = self.sum_ns;
        let secs = u64::try_from(ns / 1_000_000_000).unwrap_or(u64::MAX);
        Duration::new(secs, (ns % 1_000_000_000) as u32)
    }

    /// The exact mean (zero when empty).
    pub fn mean(&self) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(
            u64::try_from(self.sum_ns / u128::from(self.count)).unwrap_or(u64::MAX),
        )
    }

    /// The `q`-quantile (`q` in `[0, 1]`, clamped; NaN is read as 0.5): the
    /// smallest recorded value `v` such that at least `ceil(q * count)`
    /// values are `<= v`, to within the bucket precision (exact for the first
    /// and last rank). Zero when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let q = if q.is_nan() { 0.5 } else { q.clamp(0.0, 1.0) };
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        // The extremes are known exactly.
        if rank == 1 {
            return self.min();
        }
        if rank == self.count {
            return self.max();
        }
        let mut seen = 0u64;
        for (index, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let (low, width) = bucket_range(index);
                let mid = low.saturating_add(width / 2);
                return Duration::from_nanos(mid.clamp(self.min_ns, self.max_ns));
            }
        }
        self.max()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_cover_every_value() {
        let mut expected_low = 0u64;
        for index in 0..BUCKETS {
            let (low, width) = bucket_range(index);
            assert_eq!(low, expected_low, "bucket {index}");
            assert_eq!(bucket_of(low), index);
            assert_eq!(bucket_of(low + (width - 1)), index);
            expected_low = low.wrapping_add(width);
        }
        assert_eq!(expected_low, 0, "the last bucket ends at 2^64");
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_are_within_the_stated_precision() {
        let mut h = Histogram::new();
        for ms in 1..=1000u64 {
            h.record(Duration::from_micros(ms * 1000));
        }
        for (q, exact_ms) in [(0.5, 500.0), (0.99, 990.0), (0.01, 10.0)] {
            let got = h.quantile(q).as_secs_f64() * 1e3;
            assert!(
                (got - exact_ms).abs() / exact_ms <= 1.0 / 64.0,
                "q{q}: {got} vs {exact_ms}"
            );
        }
        assert_eq!(
            h.quantile(1.0),
            Duration::from_secs(1),
            "q1 is the exact max"
        );
        assert_eq!(
            h.quantile(0.0),
            Duration::from_millis(1),
            "q0 is the exact min"
        );
        assert_eq!(h.count(), 1000);
        assert_eq!(h.max(), Duration::from_secs(1));
        assert_eq!(h.mean(), Duration::from_micros(500_500));
        assert_eq!(h.sum(), Duration::from_micros(500_500_000));
    }

    #[test]
    fn one_slow_value_among_many_fast_shows_in_p99_only_when_it_is_over_one_percent() {
        let mut h = Histogram::new();
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
    fn empty_and_cleared_histograms_report_zero() {
        let mut h = Histogram::new();
        assert_eq!(
            (h.count(), h.quantile(0.5), h.max(), h.mean(), h.min()),
            (
                0,
                Duration::ZERO,
                Duration::ZERO,
                Duration::ZERO,
                Duration::ZERO
            )
        );
        h.record(Duration::from_secs(1));
        h.clear();
        assert_eq!(
            (h.count(), h.quantile(0.99), h.max()),
            (0, Duration::ZERO, Duration::ZERO)
        );
    }
}
