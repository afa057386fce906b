//! [`ShardedCounter`]: a counter that many threads increment without sharing
//! a cache line.

use crate::sync::{AtomicU64, Ordering};
use crossbeam_utils::CachePadded;

/// The most shards a counter may have.
pub const MAX_SHARDS: usize = 4096;

/// The default shard count: twice the CPUs, rounded up to a power of two
/// (at least 4), so that each thread of a fully used machine has its own.
pub fn default_shards() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cpus * 2).next_power_of_two().clamp(4, MAX_SHARDS)
}

/// A `u64` counter split into cache-padded shards, one per thread index
/// (see [`crate::current_thread_index`]; threads share a shard only when
/// there are more live threads than shards). [`add`](Self::add) touches only
/// the caller's shard; [`sum`](Self::sum) adds all shards up.
///
/// Arithmetic wraps at 2^64, like the atomics it is made of. A `sum` taken
/// while other threads add is a value the counter had at some moment during
/// the call only if the counter is monotonic; it is exact once the adders are
/// done (joined, or synchronised with the reader).
pub struct ShardedCounter {
    shards: Box<[CachePadded<AtomicU64>]>,
    mask: usize,
}

impl Default for ShardedCounter {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ShardedCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardedCounter")
            .field("shards", &self.shards.len())
            .field("sum", &self.sum())
            .finish()
    }
}

impl ShardedCounter {
    /// A counter at zero with [`default_shards`] shards.
    pub fn new() -> Self {
        Self::with_shards(default_shards())
    }

    /// A counter at zero with `shards` shards, rounded up to a power of two
    /// and clamped to `1..=MAX_SHARDS`.
    pub fn with_shards(shards: usize) -> Self {
        let n = shards.clamp(1, MAX_SHARDS).next_power_of_two();
        Self {
            shards: (0..n)
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect(),
            mask: n - 1,
        }
    }

    /// The number of shards.
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    /// Adds `delta` on the calling thread's shard.
    #[inline]
    pub fn add(&self, delta: u64) {
        #[cfg(not(loom))]
        let shard = crate::current_thread_index().unwrap_or(0);
        #[cfg(loom)]
        let shard = 0;
        self.add_at(shard, delta);
    }

    /// Adds 1 on the calling thread's shard.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `delta` on the shard of thread index `index` (`add` with an
    /// explicit index; any index is valid and correct, a distinct one per
    /// thread is fast).
    #[inline]
    pub fn add_at(&self, index: usize, delta: u64) {
        // Release pairs with the Acquire of `sum`: a reader that sees this
        // increment also sees what the adder did before it.
        self.shards[index & self.mask].fetch_add(delta, Ordering::Release);
    }

    /// The total of all shards.
    pub fn sum(&self) -> u64 {
        self.shards
            .iter()
            .fold(0u64, |acc, s| acc.wrapping_add(s.load(Ordering::Acquire)))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn shard_count_is_a_power_of_two_within_bounds() {
        assert_eq!(ShardedCounter::with_shards(0).shards(), 1);
        assert_eq!(ShardedCounter::with_shards(3).shards(), 4);
        assert_eq!(ShardedCounter::with_shards(1 << 20).shards(), MAX_SHARDS);
        assert!(default_shards().is_power_of_two() && default_shards() >= 4);
    }

    #[test]
    fn increments_from_many_threads_sum_exactly() {
        let counter = ShardedCounter::with_shards(2); // fewer shards than threads
        std::thread::scope(|s| {
            for _ in 0..6 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        counter.inc();
                    }
                    counter.add(5);
                });
            }
        });
        assert_eq!(counter.sum(), 6 * 10_005);
    }

    #[test]
    fn sum_wraps_like_the_atomics() {
        let counter = ShardedCounter::with_shards(2);
        counter.add_at(0, u64::MAX);
        counter.add_at(1, 2);
        assert_eq!(counter.sum(), 1);
    }
}
