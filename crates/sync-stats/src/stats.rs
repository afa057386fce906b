//! [`LockStats`]: acquisitions, contended acquisitions and wait time, per
//! lock and for the whole process.

use crate::sharded::ShardedCounter;
use std::sync::LazyLock;
use std::time::Duration;

/// Contention figures of one lock or of all counting locks of the process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LockStats {
    /// Successful acquisitions (each lock, read or write counts once).
    pub acquisitions: u64,
    /// Acquisitions that found the lock taken (the first `try_lock` failed)
    /// and had to wait.
    pub contended: u64,
    /// Total time spent waiting in contended acquisitions (failed timed
    /// attempts are not included).
    pub wait: Duration,
}

impl LockStats {
    /// `contended / acquisitions`, in `0.0..=1.0`; 0 when there was no
    /// acquisition. This is the monitoring row's `lock_contention_rate`.
    pub fn contention_rate(&self) -> f64 {
        if self.acquisitions == 0 {
            0.0
        } else {
            (self.contended as f64 / self.acquisitions as f64).min(1.0)
        }
    }

    /// The figures of the interval since `earlier` (a previous reading of
    /// the same counters); saturates at zero if `earlier` is not earlier.
    pub fn since(&self, earlier: &LockStats) -> LockStats {
        LockStats {
            acquisitions: self.acquisitions.saturating_sub(earlier.acquisitions),
            contended: self.contended.saturating_sub(earlier.contended),
            wait: self.wait.saturating_sub(earlier.wait),
        }
    }

    /// The mean wait of a contended acquisition (zero without any).
    pub fn mean_wait(&self) -> Duration {
        if self.contended == 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos((self.wait.as_nanos() / u128::from(self.contended)) as u64)
        }
    }
}

/// Process-wide counters, sharded so that locks used by different threads
/// do not share a cache line through them.
pub(crate) struct GlobalCounters {
    pub(crate) acquisitions: ShardedCounter,
    pub(crate) contended: ShardedCounter,
    pub(crate) wait_ns: ShardedCounter,
}

pub(crate) static GLOBAL: LazyLock<GlobalCounters> = LazyLock::new(|| GlobalCounters {
    acquisitions: ShardedCounter::new(),
    contended: ShardedCounter::new(),
    wait_ns: ShardedCounter::new(),
});

/// The sum over every counting lock ever created in this process, dropped
/// ones included. Read the contended count and the wait before the
/// acquisitions, so that a reading never shows more contended acquisitions
/// than acquisitions (each contended acquisition counts its acquisition
/// first).
pub fn global_lock_stats() -> LockStats {
    let global = &*GLOBAL;
    let contended = global.contended.sum();
    let wait = Duration::from_nanos(global.wait_ns.sum());
    let acquisitions = global.acquisitions.sum();
    LockStats {
        acquisitions,
        contended,
        wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contention_rate_is_zero_without_acquisitions_and_a_ratio_otherwise() {
        assert_eq!(LockStats::default().contention_rate(), 0.0);
        let s = LockStats {
            acquisitions: 8,
            contended: 2,
            wait: Duration::from_micros(10),
        };
        assert_eq!(s.contention_rate(), 0.25);
        assert_eq!(s.mean_wait(), Duration::from_micros(5));
    }

    #[test]
    fn since_gives_the_interval_and_saturates() {
        let a = LockStats {
            acquisitions: 10,
            contended: 1,
            wait: Duration::from_millis(1),
        };
        let b = LockStats {
            acquisitions: 30,
            contended: 6,
            wait: Duration::from_millis(4),
        };
        assert_eq!(
            b.since(&a),
            LockStats {
                acquisitions: 20,
                contended: 5,
                wait: Duration::from_millis(3)
            }
        );
        assert_eq!(a.since(&b), LockStats::default());
    }
}
