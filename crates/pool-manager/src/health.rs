//! What [`Runtime::health`](crate::Runtime::health) reports: tasks running
//! past their pool's limit, and workers whose heartbeat stopped.

use crate::config::Role;
use std::time::Duration;

/// A task (or a parallel-loop share) running longer than its pool's
/// `stuck_after` limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StuckTask {
    /// The pool of the task (for a loop share, the pool running the loop).
    pub role: Role,
    /// The pool the worker thread belongs to (differs for a guest's task).
    pub worker_pool: Role,
    /// The worker thread's name (`cllm-bg-0`).
    pub worker: String,
    /// How long it has been running.
    pub running_for: Duration,
    /// The limit it passed.
    pub limit: Duration,
    /// True for a share of a parallel loop, false for a queued task.
    pub in_parallel_loop: bool,
}

/// An idle worker that missed its heartbeats (more than three intervals):
/// its thread is not being scheduled or is blocked outside a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SilentWorker {
    /// The worker's pool.
    pub role: Role,
    /// The worker thread's name.
    pub worker: String,
    /// Time since its last heartbeat.
    pub silent_for: Duration,
}

/// The health of every worker of a runtime at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HealthReport {
    /// Worker threads checked.
    pub workers: usize,
    /// Tasks running past their limit.
    pub stuck: Vec<StuckTask>,
    /// Workers whose heartbeat stopped.
    pub silent: Vec<SilentWorker>,
}

impl HealthReport {
    /// True if no task is stuck and no worker is silent.
    pub fn is_healthy(&self) -> bool {
        self.stuck.is_empty() && self.silent.is_empty()
    }
}
