//! Counters kept while the pools run, and the snapshots read from them.
//!
//! Every counter is a relaxed atomic or a [`Histogram`]: recording a task
//! costs two clock reads and a handful of uncontended atomic adds, so the
//! metrics are always on. Thread-time (busy, alive) is kept per worker and
//! summed when a snapshot is taken.

use crate::config::Role;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use thread_support::Histogram;
pub(crate) use thread_support::duration_to_nanos as ns;

/// Per-pool task counters (wherever the pool's tasks run).
pub(crate) struct TaskCounters {
    pub(crate) submitted: AtomicU64,
    pub(crate) succeeded: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) inline: AtomicU64,
    pub(crate) wait: Histogram,
    pub(crate) run: Histogram,
}

impl Default for TaskCounters {
    fn default() -> Self {
        // 8 buckets per power of two (6 %): recorded on every task.
        let times = || Histogram::with_resolution(Histogram::COARSE);
        Self {
            submitted: AtomicU64::new(0),
            succeeded: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            inline: AtomicU64::new(0),
            wait: times(),
            run: times(),
        }
    }
}

impl TaskCounters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Per-crew (per pool's own threads) counters.
#[derive(Default)]
pub(crate) struct CrewCounters {
    pub(crate) rounds: AtomicU64,
    pub(crate) round_wall_ns: AtomicU64,
    pub(crate) round_work_ns: AtomicU64,
    pub(crate) replaced: AtomicU64,
    pub(crate) spawned: AtomicU64,
    pub(crate) retired: AtomicU64,
    pub(crate) spawn_failures: AtomicU64,
}

pub(crate) fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// A snapshot of one role pool. Cumulative fields only grow, so the
/// difference of two snapshots covers the time between them.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSnapshot {
    /// The pool.
    pub role: Role,
    /// False if the pool is off and runs its work inline.
    pub enabled: bool,
    /// Worker threads of its own, alive now.
    pub threads: usize,
    /// The size it is being brought to (resize, balancer).
    pub target_threads: usize,
    /// For a pool with no thread of its own: the pool whose idle threads run
    /// its queued tasks.
    pub host: Option<Role>,
    /// Cumulative time its threads spent running tasks and loop shares
    /// (tasks still running are counted up to now).
    pub busy: Duration,
    /// Cumulative time its threads were alive (thread-seconds).
    pub alive: Duration,
    /// Tasks queued now.
    pub queue_depth: usize,
    /// The queue's capacity.
    pub queue_capacity: usize,
    /// Tasks accepted (queued, or run inline).
    pub tasks_submitted: u64,
    /// Tasks that ran and succeeded.
    pub tasks_done: u64,
    /// Tasks that ran and failed or panicked.
    pub tasks_failed: u64,
    /// Tasks dropped at shutdown without running.
    pub tasks_cancelled: u64,
    /// Submissions refused because the queue was full.
    pub tasks_rejected: u64,
    /// Tasks run inline on the submitter (pool off or without threads).
    pub tasks_inline: u64,
    /// Time from submit to start: median.
    pub wait_p50: Duration,
    /// Time from submit to start: 99th percentile.
    pub wait_p99: Duration,
    /// Run time: median.
    pub run_p50: Duration,
    /// Run time: 99th percentile.
    pub run_p99: Duration,
    /// Summed run time of its tasks (wherever they ran).
    pub run_total: Duration,
    /// Parallel loops (rounds) run on the pool, the caller taking part.
    pub rounds: u64,
    /// Summed time every participant of those rounds spent working.
    pub round_work: Duration,
    /// Summed wall time of those rounds, as the caller saw it.
    pub round_wall: Duration,
    /// Workers replaced after a panic.
    pub workers_replaced: u64,
}

impl PoolSnapshot {
    /// Busy time over alive time of its threads (0 without threads).
    pub fn busy_fraction(&self) -> f64 {
        let alive = self.alive.as_secs_f64();
        if alive > 0.0 {
            self.busy.as_secs_f64() / alive
        } else {
            0.0
        }
    }
}

/// A snapshot of every pool of a runtime, taken at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeSnapshot {
    /// When it was taken.
    pub taken_at: Instant,
    /// The thread budget.
    pub budget: usize,
    /// Worker threads alive in all pools (at most the budget).
    pub threads: usize,
    /// The pools, indexed by [`Role::index`].
    pub pools: [PoolSnapshot; Role::COUNT],
}

impl RuntimeSnapshot {
    /// One pool's snapshot.
    pub fn pool(&self, role: Role) -> &PoolSnapshot {
        &self.pools[role.index()]
    }

    /// The summed work time of every pool's parallel loops.
    pub fn parallel_work(&self) -> Duration {
        self.pools.iter().map(|p| p.round_work).sum()
    }

    /// The summed wall time of every pool's parallel loops.
    pub fn parallel_wall(&self) -> Duration {
        self.pools.iter().map(|p| p.round_wall).sum()
    }
}
