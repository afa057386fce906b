//! [`Runtime`]: the five role pools, their shared thread budget, the
//! periodic scheduler, and the operations across pools: snapshot, health,
//! resize, rebalance, shutdown.

use crate::config::{Role, RuntimeConfig, ThreadPlan};
use crate::core::{PoolCore, Timers};
use crate::crew::{Budget, Crew, ROUND_ROLE, WorkerReading};
use crate::error::Error;
use crate::health::{HealthReport, SilentWorker, StuckTask};
use crate::metrics::{RuntimeSnapshot, ns};
use crate::pool::RolePool;
use crate::scheduler::{Scheduler, SchedulerCore};
use frame_guard::{MonitorInputs, PoolCounters, SpeedupMeter};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};
use thread_support::tsan;

/// What happens to queued tasks at shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainPolicy {
    /// Run every queued task before the workers stop (tasks still queued at
    /// the deadline are dropped).
    Finish,
    /// Drop queued tasks at once; running tasks finish.
    Drop,
}

/// What a shutdown did to one pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolShutdown {
    /// The pool.
    pub role: Role,
    /// Tasks that finished during the shutdown.
    pub finished: u64,
    /// Queued tasks dropped without running (their handles get
    /// [`TaskError::Cancelled`](crate::TaskError::Cancelled)).
    pub dropped: u64,
    /// Workers still running a task at the deadline: their names and how long
    /// the task had run. Their threads are detached and exit after the task.
    pub still_running: Vec<(String, Duration)>,
}

/// What [`Runtime::shutdown`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    /// The policy used.
    pub policy: DrainPolicy,
    /// Per pool, by role index.
    pub pools: Vec<PoolShutdown>,
    /// True if every worker stopped before the deadline.
    pub deadline_met: bool,
    /// How long the shutdown took.
    pub elapsed: Duration,
    /// True if the runtime was already shut down (nothing was done).
    pub already_shut_down: bool,
}

impl ShutdownReport {
    /// Queued tasks dropped in all pools.
    pub fn dropped(&self) -> u64 {
        self.pools.iter().map(|p| p.dropped).sum()
    }

    /// Tasks finished during the shutdown in all pools.
    pub fn finished(&self) -> u64 {
        self.pools.iter().map(|p| p.finished).sum()
    }

    /// Workers still running at the deadline in all pools.
    pub fn still_running(&self) -> usize {
        self.pools.iter().map(|p| p.still_running.len()).sum()
    }
}

/// A thread the balancer moved: from a pool (or the free budget) to a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadMove {
    /// The pool that gives a thread; `None`: a free token of the budget.
    pub from: Option<Role>,
    /// The pool that gets it.
    pub to: Role,
}

/// The walker plan's thread pool manager: five role pools sharing one thread
/// budget, a periodic scheduler on the background pool, metrics, health,
/// resizing, balancing and shutdown. `Send + Sync`; every method takes
/// `&self`. Dropping it shuts down with [`DrainPolicy::Finish`] and the
/// configured deadline.
///
/// ```
/// use pool_manager::{Partitioning, Role, Runtime, RuntimeConfig};
///
/// let rt = Runtime::new(RuntimeConfig::for_cores(2)).unwrap();
/// let squared = rt.pool(Role::Evaluation).submit(|| 7 * 7).unwrap();
/// assert_eq!(squared.wait().unwrap(), 49);
///
/// let mut agents = vec![0u64; 60];
/// rt.pool(Role::Ai).for_each_mut(&mut agents, Partitioning::DYNAMIC, |i, a| *a = i as u64 * 2).unwrap();
/// let sum = rt.pool(Role::Stats).map_reduce(agents.len(), 0, || 0u64, |i| agents[i], |a, b| a + b).unwrap();
/// assert_eq!(sum, 3540);
/// ```
pub struct Runtime {
    config: RuntimeConfig,
    plan: ThreadPlan,
    budget: Arc<Budget>,
    pools: [RolePool; Role::COUNT],
    scheduler: Scheduler,
    /// Serialises resizes and guest reassignment.
    /// Held by each resize; visible to ThreadSanitizer, as the resizes of
    /// several program threads hand the pools' server lists to each other.
    topology: tsan::Mutex<()>,
    /// Busy and alive nanoseconds per pool at the last rebalance.
    window: Mutex<[(u64, u64); Role::COUNT]>,
    shut_down: Mutex<bool>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("plan", &self.plan)
            .field("pools", &self.pools)
            .finish()
    }
}

impl Runtime {
    /// Starts the pools as `config` says.
    pub fn new(config: RuntimeConfig) -> Result<Self, Error> {
        let plan = config.thread_plan()?;
        let epoch = Instant::now();
        let budget = Budget::new(plan.budget);
        let scheduler_core = SchedulerCore::new();
        let pools: [RolePool; Role::COUNT] = Role::ALL.map(|role| {
            let pc = config.pool(role);
            let timers = (role == Role::Background)
                .then(|| Box::new(scheduler_core.clone()) as Box<dyn Timers>);
            let core = Arc::new(PoolCore::new(role, pc.queue_capacity, timers));
            let crew = Crew::new(
                role,
                epoch,
                budget.clone(),
                core.clone(),
                pc.spin,
                config.heartbeat,
                pc.cpus.clone().unwrap_or_default(),
            );
            RolePool::new(core, crew, pc.is_active())
        });
        let background = &pools[Role::Background.index()];
        let scheduler = Scheduler {
            core: scheduler_core,
            pool: background.core.clone(),
            background_enabled: background.is_enabled(),
        };
        let runtime = Runtime {
            config,
            plan,
            budget,
            pools,
            scheduler,
            topology: tsan::Mutex::new(()),
            window: Mutex::new([(0, 0); Role::COUNT]),
            shut_down: Mutex::new(false),
        };
        {
            let _topology = runtime.topology.lock();
            for role in Role::ALL {
                let pool = runtime.pool(role);
                if let Err(e) = runtime
                    .budget
                    .set_target(&pool.crew, runtime.plan.assigned[role.index()])
                {
                    drop(_topology);
                    runtime.shutdown(DrainPolicy::Drop, Duration::from_secs(1));
                    return Err(Error::Spawn(e));
                }
            }
            runtime.assign_guests();
        }
        Ok(runtime)
    }

    /// Starts the pools with the defaults and the process environment (see
    /// [`RuntimeConfig::from_env`]).
    pub fn from_env() -> Result<Self, Error> {
        Self::new(RuntimeConfig::from_env()?)
    }

    /// The configuration it was started with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// How the budget was shared at start.
    pub fn plan(&self) -> &ThreadPlan {
        &self.plan
    }

    /// The thread budget.
    pub fn budget(&self) -> usize {
        self.budget.limit()
    }

    /// Worker threads alive in all pools now.
    pub fn threads(&self) -> usize {
        self.pools.iter().map(RolePool::threads).sum()
    }

    /// One role's pool.
    pub fn pool(&self, role: Role) -> &RolePool {
        &self.pools[role.index()]
    }

    /// The periodic tasks, run on the background pool.
    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// Every pool's metrics at one instant.
    pub fn snapshot(&self) -> RuntimeSnapshot {
        let pools = Role::ALL.map(|r| self.pool(r).snapshot());
        RuntimeSnapshot {
            taken_at: Instant::now(),
            budget: self.budget(),
            threads: pools.iter().map(|p| p.threads).sum(),
            pools,
        }
    }

    /// The frame guard's monitoring inputs now, in one call: each pool's
    /// busy and alive thread-time (one snapshot), the counting locks' totals
    /// (every [`sync_stats`] counting lock of the process), and the parallel
    /// sections' work and wall time: from `parallel` if given (a
    /// [`SpeedupMeter`] counting task CPU time, as the column is defined),
    /// otherwise from this runtime's parallel loops (the time each
    /// participant spent in its share, on the wall clock, over the loops'
    /// wall time; a participant waiting for a CPU counts as working, so on
    /// a machine with other load this overstates the speed-up).
    ///
    /// ```
    /// use frame_guard::{FrameGuard, FrameGuardConfig, Monitor};
    /// use pool_manager::{Partitioning, Role, Runtime, RuntimeConfig};
    ///
    /// let rt = Runtime::new(RuntimeConfig::for_cores(2)).unwrap();
    /// let guard = FrameGuard::new(FrameGuardConfig::default()).unwrap();
    /// let mut monitor = Monitor::new(&guard);
    /// monitor.set_baseline(&rt.monitor_inputs(None));
    /// rt.pool(Role::Ai).for_each_index(1000, Partitioning::DYNAMIC, |_| ()).unwrap();
    /// let row = monitor.row(&guard, Some(&rt.monitor_inputs(None)));
    /// assert!(row.parallel_speedup_ratio >= 0.0);
    /// ```
    pub fn monitor_inputs(&self, parallel: Option<&SpeedupMeter>) -> MonitorInputs {
        let s = self.snapshot();
        let pool = |role: Role| PoolCounters {
            busy: s.pool(role).busy,
            alive: s.pool(role).alive,
        };
        let locks = sync_stats::global_lock_stats();
        let (parallel_work, parallel_wall) = match parallel {
            Some(meter) => meter.totals(),
            None => (s.parallel_work(), s.parallel_wall()),
        };
        MonitorInputs {
            ai: pool(Role::Ai),
            physics: pool(Role::Physics),
            stats: pool(Role::Stats),
            background: pool(Role::Background),
            evaluation: pool(Role::Evaluation),
            lock_acquisitions: locks.acquisitions,
            lock_contended: locks.contended,
            parallel_work,
            parallel_wall,
        }
    }

    /// Tasks running past their pool's `stuck_after`, and workers whose
    /// heartbeat stopped (silent for more than three heartbeat intervals).
    pub fn health(&self) -> HealthReport {
        let mut report = HealthReport::default();
        for pool in &self.pools {
            for (worker, reading) in pool.crew.workers() {
                report.workers += 1;
                check_worker(&self.config, pool.role(), worker, reading, &mut report);
            }
        }
        report
    }

    /// Brings `role`'s pool to `threads` threads while it runs. Shrinking:
    /// idle workers leave at once, busy ones after their task. Growing:
    /// threads start while the budget has free tokens; the rest start as
    /// other pools give threads back (the snapshot shows `threads` catching
    /// up with `target_threads`). A pool left without a thread of its own
    /// (set to 0, or grown while the other pools hold every token) becomes
    /// a guest of the pool with the most threads, whose idle threads run its
    /// tasks ([`RolePool::host`]); it stays one until a resize or rebalance
    /// after its own threads started. With no pool having a thread, its
    /// tasks run inline on the submitter. So queued work always has a thread
    /// to run it. Fails if the pool is off, `threads` exceeds its
    /// `max_threads` (default: the budget), or the runtime is shut down.
    /// A thread that cannot start ([`Error::Spawn`], e.g. `RLIMIT_NPROC`)
    /// leaves the pool as it was: the threads this call started leave
    /// before it returns, without having run anything, and the target is
    /// unchanged.
    pub fn resize(&self, role: Role, threads: usize) -> Result<(), Error> {
        if *self.shut_down.lock() {
            return Err(Error::Shutdown);
        }
        let pool = self.pool(role);
        if !pool.is_enabled() {
            return Err(Error::InvalidArgument(format!(
                "the {role} pool is off; it cannot be resized"
            )));
        }
        let max = self.config.pool(role).max_threads.unwrap_or(self.budget());
        if threads > max {
            return Err(Error::InvalidArgument(format!(
                "{threads} threads for the {role} pool; its maximum is {max}"
            )));
        }
        let _topology = self.topology.lock();
        let result = self
            .budget
            .set_target(&pool.crew, threads)
            .map_err(Error::Spawn);
        self.assign_guests();
        result
    }

    /// Moves at most one thread toward the pool that needs it most, looking
    /// at each pool's busy share since the previous call: a pool busier than
    /// `balancer.busy_above` (or with queued tasks and no thread) gets a
    /// free token if there is one, otherwise a thread of the idlest pool
    /// busy less than `balancer.idle_below` with more than one thread and no
    /// queue. Call it periodically (for example from the monitoring task) or
    /// on demand. Returns the move, if any.
    pub fn rebalance(&self) -> Option<ThreadMove> {
        if *self.shut_down.lock() {
            return None;
        }
        let _topology = self.topology.lock();
        let readings = Role::ALL.map(|r| self.pool(r).crew.reading());
        let utilisation: [f64; Role::COUNT] = {
            let mut window = self.window.lock();
            std::array::from_fn(|i| {
                let (busy, alive) = (readings[i].busy_ns, readings[i].alive_ns);
                let (b0, a0) = std::mem::replace(&mut window[i], (busy, alive));
                let d_alive = alive.saturating_sub(a0);
                if d_alive == 0 {
                    0.0
                } else {
                    busy.saturating_sub(b0) as f64 / d_alive as f64
                }
            })
        };
        let b = self.config.balancer;
        let max_of = |r: Role| self.config.pool(r).max_threads.unwrap_or(self.budget());
        let backlog = |r: Role| self.pool(r).queue_depth() > 0;
        let receiver = Role::ALL
            .into_iter()
            .filter(|&r| {
                let (pool, target) = (self.pool(r), readings[r.index()].target);
                pool.is_enabled()
                    && target < max_of(r)
                    && (utilisation[r.index()] >= b.busy_above || (target == 0 && backlog(r)))
            })
            .max_by(|&x, &y| {
                (backlog(x), utilisation[x.index()])
                    .partial_cmp(&(backlog(y), utilisation[y.index()]))
                    .unwrap_or(std::cmp::Ordering::Equal)
            })?;
        let targets_sum: usize = readings.iter().map(|r| r.target).sum();
        let from = if targets_sum < self.budget() {
            None
        } else {
            let donor = Role::ALL
                .into_iter()
                .filter(|&r| {
                    r != receiver
                        && self.pool(r).is_enabled()
                        && readings[r.index()].target >= 2
                        && utilisation[r.index()] <= b.idle_below
                        && !backlog(r)
                })
                .min_by(|&x, &y| {
                    utilisation[x.index()]
                        .partial_cmp(&utilisation[y.index()])
                        .unwrap_or(std::cmp::Ordering::Equal)
                        .then(readings[y.index()].target.cmp(&readings[x.index()].target))
                })?;
            // Shrinking starts no thread, so it cannot fail.
            let _ = self
                .budget
                .set_target(&self.pool(donor).crew, readings[donor.index()].target - 1);
            Some(donor)
        };
        let grown = self.budget.set_target(
            &self.pool(receiver).crew,
            readings[receiver.index()].target + 1,
        );
        if grown.is_err() {
            // No thread could start (counted in the pool's spawn failures):
            // the donor keeps its thread; nothing moved.
            if let Some(donor) = from {
                let _ = self
                    .budget
                    .set_target(&self.pool(donor).crew, readings[donor.index()].target);
            }
            self.assign_guests();
            return None;
        }
        self.assign_guests();
        Some(ThreadMove { from, to: receiver })
    }

    /// Decides which crews serve which queues: a pool with threads serves
    /// its own; an enabled pool with none is a guest of the pool with the
    /// most threads; with no such pool at all, or when off, it runs inline.
    /// The caller holds the topology lock.
    ///
    /// "Threads" are the ones a pool keeps: `min(target, live)`. A pool whose
    /// target waits for tokens held by other pools has no thread yet and is
    /// a guest too (else its queue would have nobody to run it); one whose
    /// threads are leaving cannot host. Between two calls the count kept
    /// cannot fall (workers leave only while above target), so every queue
    /// keeps a thread serving it until the next call.
    fn assign_guests(&self) {
        let targets = Role::ALL.map(|r| {
            let pool = self.pool(r);
            if pool.is_enabled() {
                pool.crew.target().min(pool.crew.live())
            } else {
                0
            }
        });
        let host = Role::ALL
            .into_iter()
            .filter(|r| targets[r.index()] > 0)
            .max_by_key(|r| (targets[r.index()], std::cmp::Reverse(r.index())));
        let mut guests = Vec::new();
        for role in Role::ALL {
            let pool = self.pool(role);
            let own = pool.crew.parker.clone();
            let (servers, host_of) = match host {
                _ if !pool.is_enabled() => (Vec::new(), None),
                _ if targets[role.index()] > 0 => (vec![own], None),
                Some(h) => {
                    guests.push(pool.core.clone());
                    (vec![own, self.pool(h).crew.parker.clone()], Some(h))
                }
                None => (Vec::new(), None),
            };
            let now_inline = servers.is_empty();
            pool.core.set_servers(servers);
            pool.set_host(host_of);
            if now_inline {
                // Nobody will serve what is queued: run it here.
                pool.core.run_queued_inline();
            }
        }
        for role in Role::ALL {
            let pool = self.pool(role);
            let mut served = vec![pool.core.clone()];
            if Some(role) == host {
                served.extend(guests.iter().cloned());
            }
            pool.crew.set_served(served);
        }
    }

    /// Stops every pool: no new tasks (submit fails with
    /// [`SubmitError::Shutdown`](crate::SubmitError::Shutdown)), no more
    /// periodic runs; queued tasks run ([`DrainPolicy::Finish`]) or are
    /// dropped ([`DrainPolicy::Drop`]); waits for the workers until
    /// `deadline`, then drops what is still queued and detaches workers
    /// still inside a task. Idempotent: a second call does nothing.
    pub fn shutdown(&self, policy: DrainPolicy, deadline: Duration) -> ShutdownReport {
        let start = Instant::now();
        {
            let mut shut = self.shut_down.lock();
            if *shut {
                return ShutdownReport {
                    policy,
                    pools: Vec::new(),
                    deadline_met: true,
                    elapsed: Duration::ZERO,
                    already_shut_down: true,
                };
            }
            *shut = true;
        }
        let deadline_at = start
            .checked_add(deadline)
            .unwrap_or(start + Duration::from_secs(1 << 30));
        self.scheduler.core.stop();
        let ran = |p: &RolePool| {
            let c = &p.core.counters;
            crate::metrics::load(&c.succeeded) + crate::metrics::load(&c.failed)
        };
        let before = Role::ALL.map(|r| ran(self.pool(r)));
        let mut dropped = [0u64; Role::COUNT];
        for pool in &self.pools {
            pool.core.close();
            if policy == DrainPolicy::Drop {
                dropped[pool.role().index()] += pool.core.cancel_queued();
            }
        }
        self.budget.close();
        self.pools.iter().for_each(|p| p.crew.begin_shutdown());
        let mut deadline_met = true;
        for pool in &self.pools {
            deadline_met &= pool.crew.wait_exited(deadline_at);
        }
        if !deadline_met {
            for pool in &self.pools {
                dropped[pool.role().index()] += pool.core.cancel_queued();
                // Workers between two tasks see the empty queue and leave.
                pool.crew
                    .wait_exited(Instant::now() + Duration::from_millis(20));
            }
        }
        let pools = Role::ALL
            .map(|role| {
                let pool = self.pool(role);
                let running: Vec<(String, Duration)> = pool
                    .crew
                    .workers()
                    .into_iter()
                    .map(|(name, r)| (name, Duration::from_nanos(r.running.map_or(0, |(_, d)| d))))
                    .collect();
                let detached = pool.crew.join_or_detach();
                PoolShutdown {
                    role,
                    finished: ran(pool) - before[role.index()],
                    dropped: dropped[role.index()],
                    still_running: running
                        .into_iter()
                        .filter(|(n, _)| detached.contains(n))
                        .collect(),
                }
            })
            .to_vec();
        ShutdownReport {
            policy,
            pools,
            deadline_met,
            elapsed: start.elapsed(),
            already_shut_down: false,
        }
    }
}

/// Adds one worker's state to a health report: a task past its pool's
/// limit is stuck; an idle worker silent for three heartbeats is silent.
fn check_worker(
    config: &RuntimeConfig,
    worker_pool: Role,
    worker: String,
    reading: WorkerReading,
    report: &mut HealthReport,
) {
    match reading.running {
        Some((role_index, running_ns)) => {
            let in_parallel_loop = role_index == ROUND_ROLE;
            let role = if in_parallel_loop {
                worker_pool
            } else {
                Role::from_index(role_index).unwrap_or(worker_pool)
            };
            let limit = config.pool(role).stuck_after;
            let running_for = Duration::from_nanos(running_ns);
            if running_for > limit {
                report.stuck.push(StuckTask {
                    role,
                    worker_pool,
                    worker,
                    running_for,
                    limit,
                    in_parallel_loop,
                });
            }
        }
        None if reading.since_beat_ns > ns(config.heartbeat) * 3 => {
            report.silent.push(SilentWorker {
                role: worker_pool,
                worker,
                silent_for: Duration::from_nanos(reading.since_beat_ns),
            })
        }
        None => {}
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown(DrainPolicy::Finish, self.config.shutdown_deadline);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(running: Option<(usize, Duration)>, since_beat: Duration) -> WorkerReading {
        WorkerReading {
            busy_ns: 0,
            running: running.map(|(r, d)| (r, ns(d))),
            since_beat_ns: ns(since_beat),
        }
    }

    #[test]
    fn health_classifies_stuck_tasks_by_their_own_pool_and_silent_idle_workers() {
        let mut config = RuntimeConfig::for_cores(2);
        config.pool_mut(Role::Stats).stuck_after = Duration::from_millis(10);
        config.pool_mut(Role::Ai).stuck_after = Duration::from_secs(1);
        config.heartbeat = Duration::from_millis(100);
        let mut report = HealthReport::default();
        let ms = Duration::from_millis;
        // A guest's (stats) task on an ai thread: judged by the stats limit.
        check_worker(
            &config,
            Role::Ai,
            "a".into(),
            reading(Some((Role::Stats.index(), ms(20))), ms(1)),
            &mut report,
        );
        // A loop share on an ai thread: judged by the ai limit (not past it).
        check_worker(
            &config,
            Role::Ai,
            "b".into(),
            reading(Some((ROUND_ROLE, ms(500))), ms(1)),
            &mut report,
        );
        // Idle and beating: healthy. Idle and silent for 3+ heartbeats: silent.
        check_worker(
            &config,
            Role::Ai,
            "c".into(),
            reading(None, ms(250)),
            &mut report,
        );
        check_worker(
            &config,
            Role::Background,
            "d".into(),
            reading(None, ms(350)),
            &mut report,
        );
        // A running task is never "silent", however long since the beat.
        check_worker(
            &config,
            Role::Ai,
            "e".into(),
            reading(Some((Role::Ai.index(), ms(5))), ms(900)),
            &mut report,
        );
        assert_eq!(
            report.stuck,
            vec![StuckTask {
                role: Role::Stats,
                worker_pool: Role::Ai,
                worker: "a".into(),
                running_for: ms(20),
                limit: ms(10),
                in_parallel_loop: false,
            }]
        );
        assert_eq!(
            report.silent,
            vec![SilentWorker {
                role: Role::Background,
                worker: "d".into(),
                silent_for: ms(350)
            }]
        );
        assert!(!report.is_healthy());
    }
}
