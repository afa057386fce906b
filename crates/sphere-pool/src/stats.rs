//! Counters of each sphere and their pool-wide sum.

use crate::slot::SlotCounters;
use crate::sync::Ordering;
use std::time::Duration;

/// What one sphere did since the pool started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SphereStats {
    /// Jobs run (including failed ones).
    pub jobs: u64,
    /// Jobs that panicked or returned an error code.
    pub failures: u64,
    /// Time spent running jobs (and the short waits between them, below).
    pub busy: Duration,
    /// Time spent waiting for the jobs run so far (the current wait is
    /// counted when its job arrives). A wait that ended within a few
    /// microseconds (64 checks of the spin) is not timed: the sphere reads
    /// the clock once per job, and such a wait counts as busy time.
    pub idle: Duration,
    /// Times the sphere went to sleep (on the pool's doorbell).
    pub parks: u64,
    /// Jobs that found the sphere still spinning (no wake-up needed).
    pub spin_hits: u64,
    /// Parallel-for shares this sphere did not run because it had not
    /// started them when the calling thread ran out of work (the round
    /// closed without it).
    pub revoked: u64,
}

impl SphereStats {
    /// The counters of a sphere of a pool that opened `optional_rounds`.
    pub(crate) fn read(c: &SlotCounters, optional_rounds: &std::sync::atomic::AtomicU64) -> Self {
        // A snapshot during a round may see a start before the opening it
        // belongs to: the difference saturates at zero.
        let started = c.optional_started.load(Ordering::Relaxed);
        let opened = optional_rounds.load(Ordering::Relaxed);
        Self {
            jobs: c.jobs.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            busy: Duration::from_nanos(c.busy_ns.load(Ordering::Relaxed)),
            idle: Duration::from_nanos(c.idle_ns.load(Ordering::Relaxed)),
            parks: c.parks.load(Ordering::Relaxed),
            spin_hits: c.spin_hits.load(Ordering::Relaxed),
            revoked: opened.saturating_sub(started),
        }
    }

    /// The share of busy time in busy + idle time (0 when both are zero).
    pub fn busy_fraction(&self) -> f64 {
        let total = (self.busy + self.idle).as_secs_f64();
        if total > 0.0 {
            self.busy.as_secs_f64() / total
        } else {
            0.0
        }
    }

    fn add(&mut self, other: &SphereStats) {
        self.jobs += other.jobs;
        self.failures += other.failures;
        self.busy += other.busy;
        self.idle += other.idle;
        self.parks += other.parks;
        self.spin_hits += other.spin_hits;
        self.revoked += other.revoked;
    }
}

/// A snapshot of every sphere's counters and their sum.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// One entry per sphere, by index.
    pub spheres: Vec<SphereStats>,
    /// The sum over all spheres.
    pub total: SphereStats,
    /// Wake system calls made to wake sleeping spheres (by rounds, which
    /// wake them all with one, by dispatches and by shutdown). A thread
    /// that finds no sphere asleep makes none.
    pub wake_calls: u64,
}

impl PoolStats {
    pub(crate) fn from_spheres(spheres: Vec<SphereStats>, wake_calls: u64) -> Self {
        let mut total = SphereStats::default();
        spheres.iter().for_each(|s| total.add(s));
        Self {
            spheres,
            total,
            wake_calls,
        }
    }
}
