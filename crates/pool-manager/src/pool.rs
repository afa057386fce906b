//! [`RolePool`]: one role's pool as its users see it: submit tasks, run
//! parallel loops (see `parallel`), read its metrics.

use crate::config::Role;
use crate::core::PoolCore;
use crate::crew::Crew;
use crate::error::SubmitError;
use crate::metrics::{PoolSnapshot, TaskCounters, load};
use crate::queue::{PushError, Wait};
use crate::task::{TaskHandle, TaskJob};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How a submission behaves when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backpressure {
    /// Wait until there is room (the default).
    Block,
    /// Wait at most this long, then fail with [`SubmitError::Timeout`].
    Timeout(Duration),
    /// Fail at once with [`SubmitError::Full`].
    Reject,
}

/// Options of [`RolePool::submit_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubmitOptions {
    /// Higher runs first; equal priorities run in submission order.
    pub priority: i32,
    /// What to do when the queue is full.
    pub backpressure: Backpressure,
}

impl Default for SubmitOptions {
    fn default() -> Self {
        Self {
            priority: 0,
            backpressure: Backpressure::Block,
        }
    }
}

const NO_HOST: usize = usize::MAX;

/// One role's pool: a bounded queue of tasks run by the pool's own worker
/// threads, and parallel loops over agents run by those threads with the
/// caller taking part. Made by [`Runtime`](crate::Runtime); every method
/// takes `&self` and may be called from any thread.
///
/// A pool that is off (or left without any thread to serve it) runs tasks
/// inline on the submitter and loops on the caller alone, with the same
/// results.
pub struct RolePool {
    pub(crate) core: Arc<PoolCore>,
    pub(crate) crew: Arc<Crew>,
    enabled: bool,
    host: AtomicUsize,
}

impl std::fmt::Debug for RolePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RolePool")
            .field("role", &self.role())
            .field("enabled", &self.enabled)
            .field("threads", &self.threads())
            .finish()
    }
}

impl RolePool {
    pub(crate) fn new(core: Arc<PoolCore>, crew: Arc<Crew>, enabled: bool) -> Self {
        Self {
            core,
            crew,
            enabled,
            host: AtomicUsize::new(NO_HOST),
        }
    }

    pub(crate) fn set_host(&self, host: Option<Role>) {
        self.host
            .store(host.map_or(NO_HOST, Role::index), Ordering::Relaxed);
    }

    /// The pool whose idle threads run this pool's tasks while it has no
    /// thread of its own.
    pub fn host(&self) -> Option<Role> {
        Role::from_index(self.host.load(Ordering::Relaxed))
    }

    /// The pool's role.
    pub fn role(&self) -> Role {
        self.core.role
    }

    /// False if the pool is off (its work runs inline).
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Worker threads of its own, alive now.
    pub fn threads(&self) -> usize {
        if self.enabled { self.crew.live() } else { 0 }
    }

    /// The threads a parallel loop runs on now: the pool's own and the caller.
    pub fn participants(&self) -> usize {
        self.threads() + 1
    }

    /// Tasks queued now.
    pub fn queue_depth(&self) -> usize {
        self.core.queue.len()
    }

    /// Queues `f`, waiting while the queue is full (back-pressure). From a
    /// task of this same pool prefer [`try_submit`](Self::try_submit): if
    /// every worker blocks on a full queue, nobody is left to empty it.
    pub fn submit<T, F>(&self, f: F) -> Result<TaskHandle<T>, SubmitError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.submit_with(SubmitOptions::default(), move || Ok(f()))
    }

    /// Queues `f`, or fails with [`SubmitError::Full`] at once.
    pub fn try_submit<T, F>(&self, f: F) -> Result<TaskHandle<T>, SubmitError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let options = SubmitOptions {
            backpressure: Backpressure::Reject,
            ..SubmitOptions::default()
        };
        self.submit_with(options, move || Ok(f()))
    }

    /// Queues `f`, waiting at most `timeout` for room.
    pub fn submit_timeout<T, F>(
        &self,
        f: F,
        timeout: Duration,
    ) -> Result<TaskHandle<T>, SubmitError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let options = SubmitOptions {
            backpressure: Backpressure::Timeout(timeout),
            ..SubmitOptions::default()
        };
        self.submit_with(options, move || Ok(f()))
    }

    /// Queues a fallible task with a priority and a back-pressure choice. An
    /// `Err(message)` from `f` is the task's [`TaskError::Failed`](crate::TaskError::Failed)
    /// and counts as failed. On a pool that is off, `f` runs now, on this
    /// thread, and the handle is already complete.
    pub fn submit_with<T, F>(
        &self,
        options: SubmitOptions,
        f: F,
    ) -> Result<TaskHandle<T>, SubmitError>
    where
        F: FnOnce() -> Result<T, String> + Send + 'static,
        T: Send + 'static,
    {
        let role = self.role();
        if self.core.is_closed() {
            return Err(SubmitError::Shutdown { role });
        }
        let (job, handle) = TaskJob::new(role, f);
        TaskCounters::add(&self.core.counters.submitted, 1);
        if !self.enabled || self.core.is_inline() {
            self.core.run_now(job);
            return Ok(handle);
        }
        let wait = match options.backpressure {
            Backpressure::Block => Wait::Until(None),
            Backpressure::Timeout(t) => Wait::Until(Instant::now().checked_add(t)),
            Backpressure::Reject => Wait::No,
        };
        let started = Instant::now();
        match self.core.push(options.priority, job, wait) {
            Ok(()) => {
                // The pool may have gone inline (and its queue been run out)
                // between the check above and the push: then nobody else
                // will run this task. The queue's lock orders the two.
                if self.core.is_inline() {
                    self.core.run_queued_inline();
                }
                Ok(handle)
            }
            Err((why, job)) => {
                let c = &self.core.counters;
                c.submitted.fetch_sub(1, Ordering::Relaxed);
                // Nobody will wait on this handle: the caller gets the error.
                drop((job, handle));
                Err(match why {
                    PushError::Full => {
                        TaskCounters::add(&c.rejected, 1);
                        SubmitError::Full {
                            role,
                            capacity: self.core.queue.capacity(),
                        }
                    }
                    PushError::Timeout => {
                        TaskCounters::add(&c.rejected, 1);
                        SubmitError::Timeout {
                            role,
                            waited: started.elapsed(),
                        }
                    }
                    PushError::Closed => SubmitError::Shutdown { role },
                })
            }
        }
    }

    /// A snapshot of the pool's metrics.
    pub fn snapshot(&self) -> PoolSnapshot {
        let r = if self.enabled {
            self.crew.reading()
        } else {
            Default::default()
        };
        let c = &self.core.counters;
        let cc = &self.crew.counters;
        PoolSnapshot {
            role: self.role(),
            enabled: self.enabled,
            threads: r.threads,
            target_threads: r.target,
            host: self.host(),
            busy: Duration::from_nanos(r.busy_ns),
            alive: Duration::from_nanos(r.alive_ns),
            queue_depth: self.core.queue.len(),
            queue_capacity: self.core.queue.capacity(),
            tasks_submitted: load(&c.submitted),
            tasks_done: load(&c.succeeded),
            tasks_failed: load(&c.failed),
            tasks_cancelled: load(&c.cancelled),
            tasks_rejected: load(&c.rejected),
            tasks_inline: load(&c.inline),
            wait_p50: c.wait.quantile(0.5),
            wait_p99: c.wait.quantile(0.99),
            run_p50: c.run.quantile(0.5),
            run_p99: c.run.quantile(0.99),
            run_total: c.run.sum(),
            rounds: load(&cc.rounds),
            round_work: Duration::from_nanos(load(&cc.round_work_ns)),
            round_wall: Duration::from_nanos(load(&cc.round_wall_ns)),
            workers_replaced: load(&cc.replaced),
        }
    }
}
