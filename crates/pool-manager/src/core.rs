//! [`PoolCore`]: one pool's queue and task counters, shared by the
//! [`RolePool`](crate::RolePool) that users hold and by every crew that
//! serves the queue. It sits below both (and below the scheduler), so no
//! import runs back up.

use crate::config::Role;
use crate::metrics::TaskCounters;
use crate::parker::Parker;
use crate::queue::{Entry, PushError, TaskQueue, Wait};
use crate::task::{BoxedJob, Outcome, RunContext};
use parking_lot::RwLock;
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Work that comes due by the clock and is queued on a pool by the workers
/// serving it, between their tasks (the background pool's periodic tasks,
/// see `scheduler`). A trait so that the pool need not know the scheduler.
pub(crate) trait Timers: Send + Sync {
    /// Queues on `pool` what is due at `now`; returns when the next is due.
    fn fire_due(&self, now: Instant, pool: &PoolCore) -> Option<Instant>;
}

/// The queue and task counters of one pool; shared with the crews that
/// serve it (its own, and its host's when it is a guest).
pub(crate) struct PoolCore {
    pub(crate) role: Role,
    pub(crate) queue: TaskQueue<BoxedJob>,
    pub(crate) counters: TaskCounters,
    /// The periodic tasks (the background pool only).
    pub(crate) timers: Option<Box<dyn Timers>>,
    /// The parkers of the crews that serve this queue, woken on every push.
    parkers: RwLock<Vec<Arc<Parker>>>,
    /// No crew serves the queue: tasks run inline on the submitter.
    inline: AtomicBool,
    closed: AtomicBool,
}

impl PoolCore {
    pub(crate) fn new(role: Role, capacity: usize, timers: Option<Box<dyn Timers>>) -> Self {
        Self {
            role,
            queue: TaskQueue::new(capacity),
            counters: TaskCounters::default(),
            timers,
            parkers: RwLock::new(Vec::new()),
            inline: AtomicBool::new(true),
            closed: AtomicBool::new(false),
        }
    }

    /// Who serves the queue; no parker at all means inline.
    pub(crate) fn set_servers(&self, parkers: Vec<Arc<Parker>>) {
        self.inline.store(parkers.is_empty(), Ordering::Relaxed);
        // The writers (resizes) are ordered for TSan by the runtime's
        // topology lock; the readers (every submit) only read the list, in
        // Rust code that TSan does not see, and need no annotation on this
        // hot path.
        *self.parkers.write() = parkers;
    }

    pub(crate) fn is_inline(&self) -> bool {
        self.inline.load(Ordering::Relaxed)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Refuses new work from now on.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.queue.close();
    }

    /// Queues a job and wakes a worker of each crew that serves the queue.
    pub(crate) fn push(
        &self,
        priority: i32,
        job: BoxedJob,
        wait: Wait,
    ) -> Result<(), (PushError, BoxedJob)> {
        self.queue.push(priority, job, wait)?;
        for parker in self.parkers.read().iter() {
            parker.notify_one();
        }
        Ok(())
    }

    /// Wakes every worker serving the queue (they re-read timers and state).
    pub(crate) fn wake_all(&self) {
        for parker in self.parkers.read().iter() {
            parker.notify_all();
        }
    }

    /// Runs a queued entry on a worker; returns how it ended and when.
    pub(crate) fn run_entry(
        &self,
        entry: Entry<BoxedJob>,
        start: Instant,
        worker: &str,
    ) -> (Outcome, Instant) {
        self.counters
            .wait
            .record(start.saturating_duration_since(entry.enqueued));
        let ctx = RunContext {
            worker,
            counters: &self.counters,
            start,
            end: Cell::new(None),
        };
        let outcome = entry.job.run(&ctx);
        (outcome, ctx.end.get().unwrap_or_else(Instant::now))
    }

    /// Runs a job on the calling thread.
    pub(crate) fn run_now(&self, job: BoxedJob) -> Outcome {
        TaskCounters::add(&self.counters.inline, 1);
        self.counters.wait.record(Duration::ZERO);
        let name = std::thread::current()
            .name()
            .unwrap_or("the calling thread")
            .to_owned();
        job.run(&RunContext {
            worker: &name,
            counters: &self.counters,
            start: Instant::now(),
            end: Cell::new(None),
        })
    }

    /// Runs every queued job on the calling thread (the queue has nobody
    /// serving it any more).
    pub(crate) fn run_queued_inline(&self) {
        while let Some(entry) = self.queue.pop() {
            let name = std::thread::current()
                .name()
                .unwrap_or("the calling thread")
                .to_owned();
            self.run_entry(entry, Instant::now(), &name);
        }
    }

    /// Cancels every queued job; returns how many.
    pub(crate) fn cancel_queued(&self) -> u64 {
        let dropped = self.queue.drain().len() as u64;
        TaskCounters::add(&self.counters.cancelled, dropped);
        dropped
    }
}
