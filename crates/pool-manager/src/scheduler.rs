//! [`Scheduler`]: periodic tasks at fixed intervals, run on the background
//! pool (the plan's cleanup every 5 s, evaluation every 10 s, monitoring
//! every 1 s).
//!
//! - **No timer thread**: the workers serving the background pool fire due
//!   tasks between their own tasks and sleep no longer than the next due
//!   time. Firing queues the task on the background pool with its priority
//!   (higher first, ahead of ordinary tasks of lower priority).
//! - **No stacking, skip policy**: a periodic task is queued or running at
//!   most once. Its runs stay on the grid `start + k * interval` (the first
//!   one interval after it was added); when a run ends after later grid
//!   points have passed (slow task, or busy workers), those points are
//!   skipped and counted in [`PeriodicStats::skipped`], never run late in a
//!   burst. If the queue is full at a due time, that run is skipped too.
//! - **Never on the caller**: the frame loop only adds and removes tasks.
//!   When background processing is off, nothing runs by itself: the loop
//!   calls [`Scheduler::run_due`], which runs due tasks inline (the
//!   single-threaded fallback of the original system).

use crate::core::{PoolCore, Timers};
use crate::error::Error;
use crate::metrics::ns;
use crate::queue::Wait;
use crate::task::{Job, Outcome, RunContext};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use thread_support::tsan;

/// The plan's memory cleanup interval.
pub const CLEANUP_INTERVAL: Duration = Duration::from_secs(5);
/// The plan's evaluation interval.
pub const EVALUATION_INTERVAL: Duration = Duration::from_secs(10);
/// The plan's performance monitoring interval.
pub const MONITORING_INTERVAL: Duration = Duration::from_secs(1);
/// Priority of the monitoring task of [`Scheduler::add_plan_schedule`].
pub const PRIORITY_HIGH: i32 = 10;
/// Priority of the cleanup task, and of ordinary tasks.
pub const PRIORITY_NORMAL: i32 = 0;
/// Priority of the evaluation task.
pub const PRIORITY_LOW: i32 = -10;

/// The identity of a periodic task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeriodicId(pub u64);

/// What a periodic task did so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodicStats {
    /// Its id.
    pub id: PeriodicId,
    /// Its name.
    pub name: String,
    /// Its interval.
    pub interval: Duration,
    /// Its priority.
    pub priority: i32,
    /// Runs so far (including failed ones).
    pub runs: u64,
    /// Grid points skipped because a run was late or still going.
    pub skipped: u64,
    /// Runs that failed or panicked.
    pub failures: u64,
    /// True while queued or running.
    pub pending: bool,
    /// Duration of the last run.
    pub last_run: Duration,
    /// Duration of the longest run.
    pub max_run: Duration,
}

type PeriodicFn = Box<dyn FnMut() -> Result<(), String> + Send>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Pending,
}

struct Periodic {
    stats: PeriodicStats,
    anchor: Instant,
    /// The grid point to run next (or running now).
    tick: u64,
    phase: Phase,
    f: Arc<tsan::Mutex<PeriodicFn>>,
}

impl Periodic {
    fn due(&self, tick: u64) -> Instant {
        let offset = self
            .stats
            .interval
            .saturating_mul(u32::try_from(tick).unwrap_or(u32::MAX));
        self.anchor
            .checked_add(offset)
            .unwrap_or(self.anchor + Duration::from_secs(1 << 40))
    }

    /// The first grid point after `now`.
    fn tick_after(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.anchor).as_nanos();
        (elapsed / self.stats.interval.as_nanos().max(1)) as u64 + 1
    }
}

struct State {
    tasks: Vec<Periodic>,
    next_id: u64,
}

/// The periodic tasks of a runtime, shared with the workers that fire them.
pub(crate) struct SchedulerCore {
    epoch: Instant,
    /// Nanoseconds since `epoch` of the earliest idle task's due time
    /// (`u64::MAX`: none), so that workers check without the lock.
    next_due_ns: AtomicU64,
    /// Locked by program threads adding and removing tasks one after
    /// another: visible to ThreadSanitizer (its task list grows).
    state: tsan::Mutex<State>,
    stopped: AtomicBool,
}

impl SchedulerCore {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            next_due_ns: AtomicU64::new(u64::MAX),
            state: tsan::Mutex::new(State {
                tasks: Vec::new(),
                next_id: 1,
            }),
            stopped: AtomicBool::new(false),
        })
    }

    /// When the next idle task is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        match self.next_due_ns.load(Ordering::Relaxed) {
            u64::MAX => None,
            n => self.epoch.checked_add(Duration::from_nanos(n)),
        }
    }

    fn update_next_due(&self, st: &State) {
        let next = st
            .tasks
            .iter()
            .filter(|t| t.phase == Phase::Idle)
            .map(|t| ns(t.due(t.tick).saturating_duration_since(self.epoch)))
            .min()
            .unwrap_or(u64::MAX);
        self.next_due_ns.store(next, Ordering::Relaxed);
    }

    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        self.next_due_ns.store(u64::MAX, Ordering::Relaxed);
    }

    /// The due idle tasks, highest priority first, marked pending.
    fn take_due(
        &self,
        st: &mut State,
        now: Instant,
    ) -> Vec<(i32, u64, Arc<tsan::Mutex<PeriodicFn>>)> {
        let mut due: Vec<_> = st
            .tasks
            .iter_mut()
            .filter(|t| t.phase == Phase::Idle && t.due(t.tick) <= now)
            .map(|t| {
                t.phase = Phase::Pending;
                (t.stats.priority, t.stats.id.0, t.f.clone())
            })
            .collect();
        due.sort_by_key(|(priority, id, _)| (std::cmp::Reverse(*priority), *id));
        due
    }

    /// Queues every due task on `pool` (a worker of a crew serving it calls
    /// this between tasks, through [`Timers`]).
    pub(crate) fn fire_due(self: &Arc<Self>, now: Instant, pool: &PoolCore) {
        if self.stopped.load(Ordering::Relaxed)
            || ns(now.saturating_duration_since(self.epoch))
                < self.next_due_ns.load(Ordering::Relaxed)
        {
            return;
        }
        let mut st = self.state.lock();
        let mut refused = Vec::new();
        for (priority, id, f) in self.take_due(&mut st, now) {
            let job = Box::new(PeriodicJob {
                core: self.clone(),
                id,
                f,
                armed: true,
            });
            if let Err((_, job)) = pool.push(priority, job, Wait::No) {
                // Queue full or closed: skip this grid point.
                if let Some(t) = st.tasks.iter_mut().find(|t| t.stats.id.0 == id) {
                    let next = t.tick_after(now);
                    t.stats.skipped += next - t.tick;
                    t.tick = next;
                }
                refused.push(job);
            }
        }
        self.update_next_due(&st);
        drop(st);
        // Dropping a refused job takes the lock to set its task idle again.
        drop(refused);
    }

    /// Runs one periodic task now (on a worker, or inline).
    fn run(&self, id: u64, f: &tsan::Mutex<PeriodicFn>) -> Outcome {
        if self.stopped.load(Ordering::Relaxed)
            || !self.state.lock().tasks.iter().any(|t| t.stats.id.0 == id)
        {
            return Outcome::Ok;
        }
        let start = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| {
            let mut f = f.lock();
            thread_support::tsan::user_code(&mut *f)
        }));
        let took = start.elapsed();
        let outcome = match result {
            Ok(Ok(())) => Outcome::Ok,
            Ok(Err(_)) => Outcome::Failed,
            Err(payload) => {
                // Dropped where a panicking destructor cannot end the
                // scheduler's thread.
                thread_support::take_panic_message(payload);
                Outcome::Panicked
            }
        };
        let now = Instant::now();
        let mut st = self.state.lock();
        if let Some(t) = st.tasks.iter_mut().find(|t| t.stats.id.0 == id) {
            t.stats.runs += 1;
            if outcome != Outcome::Ok {
                t.stats.failures += 1;
            }
            t.stats.last_run = took;
            t.stats.max_run = t.stats.max_run.max(took);
            let next = t.tick_after(now).max(t.tick + 1);
            t.stats.skipped += next - t.tick - 1;
            t.tick = next;
            t.phase = Phase::Idle;
        }
        self.update_next_due(&st);
        outcome
    }

    /// A pending task that will not run: back to idle (at shutdown).
    fn release(&self, id: u64) {
        let mut st = self.state.lock();
        if let Some(t) = st.tasks.iter_mut().find(|t| t.stats.id.0 == id) {
            t.phase = Phase::Idle;
        }
        self.update_next_due(&st);
    }
}

/// The background pool's timers: its workers fire due tasks through this.
impl Timers for Arc<SchedulerCore> {
    fn fire_due(&self, now: Instant, pool: &PoolCore) -> Option<Instant> {
        SchedulerCore::fire_due(self, now, pool);
        self.next_due()
    }
}

/// A fired periodic task in the background pool's queue.
struct PeriodicJob {
    core: Arc<SchedulerCore>,
    id: u64,
    f: Arc<tsan::Mutex<PeriodicFn>>,
    armed: bool,
}

impl Job for PeriodicJob {
    fn run(mut self: Box<Self>, ctx: &RunContext<'_>) -> Outcome {
        self.armed = false;
        let outcome = self.core.run(self.id, &self.f);
        ctx.finish(outcome);
        outcome
    }
}

impl Drop for PeriodicJob {
    fn drop(&mut self) {
        if self.armed {
            self.core.release(self.id);
        }
    }
}

/// The periodic tasks of a [`Runtime`](crate::Runtime), run on its
/// background pool (see the module docs for the skip policy).
pub struct Scheduler {
    pub(crate) core: Arc<SchedulerCore>,
    pub(crate) pool: Arc<PoolCore>,
    pub(crate) background_enabled: bool,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("tasks", &self.list().len())
            .finish()
    }
}

impl Scheduler {
    /// Runs `f` every `interval` (first run one interval from now) with
    /// `priority` (higher first).
    pub fn add(
        &self,
        name: &str,
        interval: Duration,
        priority: i32,
        mut f: impl FnMut() + Send + 'static,
    ) -> Result<PeriodicId, Error> {
        self.add_fallible(name, interval, priority, move || {
            f();
            Ok(())
        })
    }

    /// As [`add`](Self::add) for a task that can fail (counted in
    /// [`PeriodicStats::failures`]).
    pub fn add_fallible(
        &self,
        name: &str,
        interval: Duration,
        priority: i32,
        f: impl FnMut() -> Result<(), String> + Send + 'static,
    ) -> Result<PeriodicId, Error> {
        if interval.is_zero() {
            return Err(Error::InvalidArgument(format!(
                "periodic task {name:?}: the interval must be positive"
            )));
        }
        if self.core.stopped.load(Ordering::Relaxed) {
            return Err(Error::Shutdown);
        }
        let mut st = self.core.state.lock();
        let id = PeriodicId(st.next_id);
        st.next_id += 1;
        st.tasks.push(Periodic {
            stats: PeriodicStats {
                id,
                name: name.to_owned(),
                interval,
                priority,
                runs: 0,
                skipped: 0,
                failures: 0,
                pending: false,
                last_run: Duration::ZERO,
                max_run: Duration::ZERO,
            },
            anchor: Instant::now(),
            tick: 1,
            phase: Phase::Idle,
            f: {
                let f = Arc::new(tsan::Mutex::new(Box::new(f) as PeriodicFn));
                // TSan: the task's runs follow what the caller did before
                // adding it (each run locks `f`).
                drop(f.lock());
                f
            },
        });
        self.core.update_next_due(&st);
        drop(st);
        // Sleeping workers recompute their deadline.
        self.pool.wake_all();
        Ok(id)
    }

    /// The plan's schedule: `monitoring` every 1 s (high priority), `cleanup`
    /// every 5 s (normal), `evaluation` every 10 s (low). Returns their ids
    /// in that order.
    pub fn add_plan_schedule(
        &self,
        monitoring: impl FnMut() + Send + 'static,
        cleanup: impl FnMut() + Send + 'static,
        evaluation: impl FnMut() + Send + 'static,
    ) -> Result<[PeriodicId; 3], Error> {
        Ok([
            self.add("monitoring", MONITORING_INTERVAL, PRIORITY_HIGH, monitoring)?,
            self.add("cleanup", CLEANUP_INTERVAL, PRIORITY_NORMAL, cleanup)?,
            self.add("evaluation", EVALUATION_INTERVAL, PRIORITY_LOW, evaluation)?,
        ])
    }

    /// Removes a task; a run in progress finishes. False if there is no such task.
    pub fn remove(&self, id: PeriodicId) -> bool {
        let mut st = self.core.state.lock();
        let before = st.tasks.len();
        st.tasks.retain(|t| t.stats.id != id);
        self.core.update_next_due(&st);
        st.tasks.len() != before
    }

    /// A task's statistics.
    pub fn stats(&self, id: PeriodicId) -> Option<PeriodicStats> {
        self.list().into_iter().find(|s| s.id == id)
    }

    /// Every task's statistics, in the order they were added.
    pub fn list(&self) -> Vec<PeriodicStats> {
        let st = self.core.state.lock();
        st.tasks
            .iter()
            .map(|t| PeriodicStats {
                pending: t.phase == Phase::Pending,
                ..t.stats.clone()
            })
            .collect()
    }

    /// True if due tasks run by themselves on the background pool's threads
    /// (or a host's); false if [`run_due`](Self::run_due) must run them.
    pub fn runs_by_itself(&self) -> bool {
        self.background_enabled && !self.pool.is_inline()
    }

    /// The single-threaded fallback: when background processing is off (or
    /// has no thread), runs every due task now on the calling thread,
    /// highest priority first, and returns how many ran. Otherwise does
    /// nothing and returns 0, so a frame loop may call it every frame.
    pub fn run_due(&self) -> usize {
        if self.runs_by_itself() || self.core.stopped.load(Ordering::Relaxed) {
            return 0;
        }
        let due = {
            let mut st = self.core.state.lock();
            let due = self.core.take_due(&mut st, Instant::now());
            self.core.update_next_due(&st);
            due
        };
        let ran = due.len();
        for (_, id, f) in due {
            self.pool.run_now(Box::new(PeriodicJob {
                core: self.core.clone(),
                id,
                f,
                armed: true,
            }));
        }
        ran
    }
}
