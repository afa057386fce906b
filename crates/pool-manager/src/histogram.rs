//! [`Histogram`]: a fixed-memory, lock-free histogram of durations.
//!
//! Buckets are log-linear: exact below 8 ns, then 8 buckets per power of two
//! (each 1/8 of its octave wide), so a reported percentile (the bucket's
//! midpoint) is within about 6% of the true value. Recording is one
//! `leading_zeros` and three relaxed atomic adds: cheap enough to leave on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const SUB_BITS: u32 = 3;
const SUB: u64 = 1 << SUB_BITS;
/// Values are clamped to 2^47 ns (about 39 hours).
const MAX_MSB: u32 = 47;
const BUCKETS: usize = ((MAX_MSB - SUB_BITS + 2) as usize) * SUB as usize;

fn bucket_of(ns: u64) -> usize {
    if ns < SUB {
        return ns as usize;
    }
    let msb = (63 - ns.leading_zeros()).min(MAX_MSB);
    let ns = ns.min((1u64 << (MAX_MSB + 1)) - 1);
    let shift = msb - SUB_BITS;
    let sub = (ns >> shift) & (SUB - 1);
    ((msb - SUB_BITS + 1) as u64 * SUB + sub) as usize
}

/// The smallest and largest value that fall into `bucket`.
fn bucket_bounds(bucket: usize) -> (u64, u64) {
    let bucket = bucket as u64;
    if bucket < SUB {
        return (bucket, bucket);
    }
    let msb = bucket / SUB - 1 + SUB_BITS as u64;
    let sub = bucket % SUB;
    let shift = msb - SUB_BITS as u64;
    let low = (SUB + sub) << shift;
    (low, low + (1u64 << shift) - 1)
}

/// A histogram of durations; every method takes `&self`.
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_ns: AtomicU64,
    max_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count())
            .field("p50", &self.percentile(0.5))
            .field("p99", &self.percentile(0.99))
            .finish()
    }
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
        }
    }

    /// Records one duration.
    pub fn record(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
    }

    /// The number of recorded values.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The sum of the recorded values.
    pub fn sum(&self) -> Duration {
        Duration::from_nanos(self.sum_ns.load(Ordering::Relaxed))
    }

    /// The largest recorded value.
    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.max_ns.load(Ordering::Relaxed))
    }

    /// The `q`-quantile (`0.5` for the median), as the midpoint of its
    /// bucket; zero when the histogram is empty.
    pub fn percentile(&self, q: f64) -> Duration {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bucket, &c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (low, high) = bucket_bounds(bucket);
                let mid = low + (high - low) / 2;
                return Duration::from_nanos(mid.min(self.max_ns.load(Ordering::Relaxed).max(low)));
            }
        }
        self.max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_cover_every_value() {
        let mut expected_low = 0;
        for b in 0..BUCKETS {
            let (low, high) = bucket_bounds(b);
            assert_eq!(low, expected_low, "bucket {b}");
            assert!(high >= low);
            assert_eq!(bucket_of(low), b);
            assert_eq!(bucket_of(high), b);
            expected_low = high + 1;
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_are_within_the_bucket_error() {
        let h = Histogram::new();
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        let p50 = h.percentile(0.5).as_secs_f64() * 1e6;
        let p99 = h.percentile(0.99).as_secs_f64() * 1e6;
        assert!((p50 - 500.0).abs() / 500.0 < 0.07, "p50 {p50}");
        assert!((p99 - 990.0).abs() / 990.0 < 0.07, "p99 {p99}");
        assert_eq!(h.count(), 1000);
        assert_eq!(h.max(), Duration::from_micros(1000));
        assert_eq!(h.sum(), Duration::from_micros(500_500));
    }

    #[test]
    fn an_empty_histogram_reports_zero() {
        assert_eq!(Histogram::new().percentile(0.99), Duration::ZERO);
    }
}
