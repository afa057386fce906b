//! [`Crew`]: the worker threads of one pool, and the [`Budget`] they all
//! draw their threads from.
//!
//! A worker loops: beat its heartbeat; leave if the crew is above its target
//! or shutting down; join an open fork-join round; fire due periodic tasks;
//! run the next task of the pools it serves (its own first, then its
//! guests'); otherwise spin briefly on the parker's epoch and sleep on it
//! (until notified, the next timer, or the heartbeat interval).
//!
//! Threads and the budget: a thread is started only with a token from the
//! budget and gives it back as its last act, so the threads of all pools
//! never exceed the budget. A pool below its target (after a resize, a
//! balancer move or a retirement) gets a thread when a token frees up. A
//! worker whose task panicked leaves (its thread may hold broken
//! thread-local state) and its token starts a replacement at once.

use crate::config::Role;
use crate::core::PoolCore;
use crate::metrics::{CrewCounters, ns};
use crate::parker::Parker;
use crate::queue::Entry;
use crate::round::RoundSlot;
use crate::task::{BoxedJob, Outcome};
use parking_lot::{Condvar, Mutex, RwLock};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use thread_support::spin::{AdaptiveSpin, spin_until};
use thread_support::tsan;

/// `running_role` of a worker inside a fork-join round.
pub(crate) const ROUND_ROLE: usize = usize::MAX;

/// One worker thread's heartbeat and thread-time, written by the worker and
/// read by snapshots and health checks. `busy_ns` and `running_since` change
/// together under a sequence lock (single writer), so a reader never counts
/// a finished task twice or not at all.
pub(crate) struct WorkerRecord {
    pub(crate) name: String,
    started: Instant,
    seq: AtomicU64,
    busy_ns: AtomicU64,
    /// Nanoseconds since the crew's epoch plus one when the current task
    /// started; 0 while idle.
    running_since: AtomicU64,
    running_role: AtomicUsize,
    last_beat: AtomicU64,
    finished: AtomicBool,
}

/// What a worker record said at one instant.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WorkerReading {
    pub(crate) busy_ns: u64,
    /// The role index of the running task ([`ROUND_ROLE`] for a round share)
    /// and how long it has run.
    pub(crate) running: Option<(usize, u64)>,
    pub(crate) since_beat_ns: u64,
}

impl WorkerRecord {
    fn new(name: String, now_ns: u64) -> Self {
        Self {
            name,
            started: Instant::now(),
            seq: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            running_since: AtomicU64::new(0),
            running_role: AtomicUsize::new(0),
            last_beat: AtomicU64::new(now_ns),
            finished: AtomicBool::new(false),
        }
    }

    fn beat(&self, now_ns: u64) {
        self.last_beat.store(now_ns, Ordering::Relaxed);
    }

    fn write(&self, f: impl FnOnce()) {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        f();
        self.seq.store(s + 2, Ordering::Release);
    }

    fn begin_busy(&self, now_ns: u64, role: usize) {
        self.last_beat.store(now_ns, Ordering::Relaxed);
        self.write(|| {
            self.running_role.store(role, Ordering::Relaxed);
            self.running_since.store(now_ns + 1, Ordering::Relaxed);
        });
    }

    fn end_busy(&self, now_ns: u64) {
        self.last_beat.store(now_ns, Ordering::Relaxed);
        self.write(|| {
            let since = self.running_since.load(Ordering::Relaxed).saturating_sub(1);
            let busy = self.busy_ns.load(Ordering::Relaxed);
            self.busy_ns
                .store(busy + now_ns.saturating_sub(since), Ordering::Relaxed);
            self.running_since.store(0, Ordering::Relaxed);
        });
    }

    pub(crate) fn read(&self, now_ns: u64) -> WorkerReading {
        let mut tries = 0u32;
        loop {
            tries += 1;
            if tries % 64 == 0 {
                // The writer may have been preempted mid-update.
                std::thread::yield_now();
            }
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let busy = self.busy_ns.load(Ordering::Relaxed);
            let since = self.running_since.load(Ordering::Relaxed);
            let role = self.running_role.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) != s1 {
                continue;
            }
            let running = (since > 0).then(|| (role, now_ns.saturating_sub(since - 1)));
            let in_flight = running.map_or(0, |(_, d)| d);
            let since_beat_ns = now_ns.saturating_sub(self.last_beat.load(Ordering::Relaxed));
            return WorkerReading {
                busy_ns: busy + in_flight,
                running,
                since_beat_ns,
            };
        }
    }
}

/// The fork-join job of a round, as every participant sees it.
pub(crate) struct RoundJob<'a> {
    /// Runs one participant's share; given the participant's index. Never
    /// unwinds (the parallel helpers catch panics inside).
    pub(crate) body: &'a (dyn Fn(usize) + Sync),
    next_worker: AtomicUsize,
    work_ns: AtomicU64,
}

/// What a crew said at one instant (for snapshots).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CrewReading {
    pub(crate) threads: usize,
    pub(crate) target: usize,
    pub(crate) busy_ns: u64,
    pub(crate) alive_ns: u64,
}

struct CrewState {
    target: usize,
    live: usize,
    workers: Vec<Arc<WorkerRecord>>,
    handles: Vec<(Arc<WorkerRecord>, JoinHandle<()>)>,
    closed_busy_ns: u64,
    closed_alive_ns: u64,
    next_id: usize,
}

/// The worker threads of one pool.
pub(crate) struct Crew {
    pub(crate) role: Role,
    epoch: Instant,
    budget: Arc<Budget>,
    pub(crate) parker: Arc<Parker>,
    round: RoundSlot<RoundJob<'static>>,
    round_lock: Mutex<()>,
    served: RwLock<Arc<[Arc<PoolCore>]>>,
    /// Bumped on every change of `served`, so workers re-read it only then.
    served_gen: AtomicU64,
    /// Visible to ThreadSanitizer: program threads resizing the crew and
    /// reading its workers take it in turn.
    state: tsan::Mutex<CrewState>,
    exited: Condvar,
    live: AtomicUsize,
    target: AtomicUsize,
    shutting_down: AtomicBool,
    spin_max: Duration,
    heartbeat: Duration,
    /// CPUs the workers are pinned to, round-robin by worker id (empty: none).
    cpus: Vec<usize>,
    pub(crate) counters: CrewCounters,
}

impl Crew {
    pub(crate) fn new(
        role: Role,
        epoch: Instant,
        budget: Arc<Budget>,
        own: Arc<PoolCore>,
        spin_max: Duration,
        heartbeat: Duration,
        cpus: Vec<usize>,
    ) -> Arc<Self> {
        let crew = Arc::new(Self {
            role,
            epoch,
            budget,
            parker: Arc::new(Parker::new()),
            round: RoundSlot::new(),
            round_lock: Mutex::new(()),
            served: RwLock::new(Arc::from(vec![own])),
            served_gen: AtomicU64::new(0),
            state: tsan::Mutex::new(CrewState {
                target: 0,
                live: 0,
                workers: Vec::new(),
                handles: Vec::new(),
                closed_busy_ns: 0,
                closed_alive_ns: 0,
                next_id: 0,
            }),
            exited: Condvar::new(),
            live: AtomicUsize::new(0),
            target: AtomicUsize::new(0),
            shutting_down: AtomicBool::new(false),
            spin_max,
            heartbeat,
            cpus,
            counters: CrewCounters::default(),
        });
        crew.budget.register(&crew);
        crew
    }

    fn ns(&self, t: Instant) -> u64 {
        ns(t.saturating_duration_since(self.epoch))
    }

    /// Worker threads alive now (a relaxed read).
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// The size the crew is being brought to.
    pub(crate) fn target(&self) -> usize {
        self.target.load(Ordering::Relaxed)
    }

    /// The pools whose queues this crew serves: its own first, then guests.
    pub(crate) fn set_served(&self, pools: Vec<Arc<PoolCore>>) {
        // Ordered for TSan by the runtime's topology lock (the only
        // writer); the workers' reads stay unannotated, as a pool's server
        // list does (`PoolCore::set_servers`).
        *self.served.write() = Arc::from(pools);
        self.served_gen.fetch_add(1, Ordering::Release);
        self.parker.notify_all();
    }

    fn served(&self) -> Arc<[Arc<PoolCore>]> {
        self.served.read().clone()
    }

    /// Refreshes a worker's copy of the served list if it changed.
    fn refresh_served(&self, cache: &mut (u64, Arc<[Arc<PoolCore>]>)) {
        let generation = self.served_gen.load(Ordering::Acquire);
        if generation != cache.0 {
            *cache = (generation, self.served());
        }
    }

    /// Threads missing to reach the target (0 while shutting down).
    fn deficit(&self) -> usize {
        if self.shutting_down.load(Ordering::Relaxed) {
            return 0;
        }
        let st = self.state.lock();
        st.target.saturating_sub(st.live)
    }

    /// Sets the target; the caller holds the budget's lock and grants tokens
    /// afterwards. Surplus idle workers are woken so that they retire.
    fn set_target_locked(&self, n: usize) {
        let mut st = self.state.lock();
        st.target = n;
        self.target.store(n, Ordering::Relaxed);
        if st.live > n {
            drop(st);
            self.parker.notify_all();
        }
    }

    /// Starts one worker; the caller holds the budget's lock and a token.
    /// With a `gate`, the worker waits at it before doing anything.
    fn spawn_worker(
        self: &Arc<Self>,
        gate: Option<Arc<Gate>>,
    ) -> Result<Arc<WorkerRecord>, String> {
        let mut st = self.state.lock();
        // Join threads that have finished (they hold no lock any more).
        let (done, running): (Vec<_>, Vec<_>) = std::mem::take(&mut st.handles)
            .into_iter()
            .partition(|(r, _)| r.finished.load(Ordering::Acquire));
        st.handles = running;
        for (_, handle) in done {
            let _ = handle.join();
        }
        let id = st.next_id;
        st.next_id += 1;
        let name = format!("{}-{id}", self.role.thread_prefix());
        let record = Arc::new(WorkerRecord::new(name.clone(), self.ns(Instant::now())));
        let (crew, rec) = (self.clone(), record.clone());
        let cpu = (!self.cpus.is_empty()).then(|| self.cpus[id % self.cpus.len()]);
        match std::thread::Builder::new().name(name).spawn(move || {
            // Under ThreadSanitizer, the crew's own work on this thread is
            // out of view; the tasks and loop bodies it runs are not
            // (`tsan::user_code`). Made first, so that what the closure
            // captured is dropped inside it.
            let _library = thread_support::tsan::library_thread();
            let (crew, rec, gate) = (crew, rec, gate);
            // The list was checked against the process's CPUs when the
            // runtime was configured; a refusal now (the affinity changed
            // since) leaves the worker unpinned but serving.
            if let Some(id) = cpu {
                let _ = core_affinity::set_for_current(core_affinity::CoreId { id });
            }
            worker_main(crew, rec, gate)
        }) {
            Ok(handle) => {
                st.live += 1;
                self.live.store(st.live, Ordering::Relaxed);
                st.workers.push(record.clone());
                st.handles.push((record.clone(), handle));
                self.counters.spawned.fetch_add(1, Ordering::Relaxed);
                Ok(record)
            }
            Err(e) => {
                self.counters.spawn_failures.fetch_add(1, Ordering::Relaxed);
                Err(format!("{} pool: {e}", self.role))
            }
        }
    }

    fn retire_wanted(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
            || self.live.load(Ordering::Relaxed) > self.target.load(Ordering::Relaxed)
    }

    /// Leaves the crew if it is above target, or shutting down with nothing
    /// left in the queues it serves. True if the worker must exit now.
    fn try_retire(&self, me: &WorkerRecord) -> bool {
        let mut st = self.state.lock();
        let leave = if self.shutting_down.load(Ordering::Relaxed) {
            self.served().iter().all(|p| p.queue.len() == 0)
        } else {
            st.live > st.target
        };
        if leave {
            self.unregister_locked(&mut st, me);
            self.counters.retired.fetch_add(1, Ordering::Relaxed);
        }
        leave
    }

    fn unregister_locked(&self, st: &mut CrewState, me: &WorkerRecord) {
        let now = Instant::now();
        st.live -= 1;
        self.live.store(st.live, Ordering::Relaxed);
        st.workers.retain(|w| !std::ptr::eq(&**w, me));
        st.closed_busy_ns += me.read(self.ns(now)).busy_ns;
        st.closed_alive_ns += ns(now.saturating_duration_since(me.started));
        self.exited.notify_all();
    }

    /// Runs one queued task of `pool` on worker `me`.
    fn run_task(
        &self,
        me: &WorkerRecord,
        pool: &PoolCore,
        entry: Entry<BoxedJob>,
    ) -> (Outcome, Instant) {
        let start = Instant::now();
        me.begin_busy(self.ns(start), pool.role.index());
        let (outcome, end) = pool.run_entry(entry, start, &me.name);
        me.end_busy(self.ns(end));
        (outcome, end)
    }

    /// Runs a fork-join round: `body(caller_index)` on the calling thread
    /// while idle workers join and run `body(i)` with `i` counting from 0.
    /// Returns false (running nothing) if another round is in progress on
    /// this crew, e.g. a nested or concurrent parallel loop.
    pub(crate) fn run_round(&self, body: &(dyn Fn(usize) + Sync), caller_index: usize) -> bool {
        let Some(_exclusive) = self.round_lock.try_lock() else {
            return false;
        };
        let start = Instant::now();
        let job = RoundJob {
            body,
            next_worker: AtomicUsize::new(0),
            work_ns: AtomicU64::new(0),
        };
        self.round
            .open((&job as *const RoundJob<'_>).cast::<RoundJob<'static>>());
        self.parker.notify_all();
        /// Closes the round (waiting for the workers inside) even when the
        /// caller's share unwinds: the job lives on this stack frame.
        struct CloseOnDrop<'a>(&'a RoundSlot<RoundJob<'static>>, Duration);
        impl Drop for CloseOnDrop<'_> {
            fn drop(&mut self) {
                self.0.close(self.1);
            }
        }
        let close = CloseOnDrop(&self.round, self.spin_max);
        body(caller_index);
        let caller_work = start.elapsed();
        drop(close);
        let wall = start.elapsed();
        let c = &self.counters;
        c.rounds.fetch_add(1, Ordering::Relaxed);
        c.round_wall_ns.fetch_add(ns(wall), Ordering::Relaxed);
        c.round_work_ns.fetch_add(
            ns(caller_work) + job.work_ns.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        true
    }

    /// Counts a loop that ran on the calling thread alone.
    pub(crate) fn record_inline_round(&self, took: Duration) {
        let c = &self.counters;
        c.rounds.fetch_add(1, Ordering::Relaxed);
        c.round_wall_ns.fetch_add(ns(took), Ordering::Relaxed);
        c.round_work_ns.fetch_add(ns(took), Ordering::Relaxed);
    }

    fn run_share(&self, me: &WorkerRecord, job: &RoundJob<'_>) {
        let index = job.next_worker.fetch_add(1, Ordering::Relaxed);
        let start = Instant::now();
        me.begin_busy(self.ns(start), ROUND_ROLE);
        thread_support::tsan::user_code(|| (job.body)(index));
        let end = Instant::now();
        me.end_busy(self.ns(end));
        job.work_ns.fetch_add(ns(end - start), Ordering::Relaxed);
    }

    /// Waits until the workers `records` have unregistered.
    fn wait_left(&self, records: &[Arc<WorkerRecord>]) {
        let mut st = self.state.lock();
        while st
            .workers
            .iter()
            .any(|w| records.iter().any(|r| Arc::ptr_eq(w, r)))
        {
            st.unlocked_in(|g| self.exited.wait(g));
        }
    }

    /// Thread counts and thread-time, now.
    pub(crate) fn reading(&self) -> CrewReading {
        let st = self.state.lock();
        let now = Instant::now();
        let now_ns = self.ns(now);
        let mut r = CrewReading {
            threads: st.workers.len(),
            target: st.target,
            busy_ns: st.closed_busy_ns,
            alive_ns: st.closed_alive_ns,
        };
        for w in &st.workers {
            r.busy_ns += w.read(now_ns).busy_ns;
            r.alive_ns += ns(now.saturating_duration_since(w.started));
        }
        r
    }

    /// Each live worker's name and state, now.
    pub(crate) fn workers(&self) -> Vec<(String, WorkerReading)> {
        let st = self.state.lock();
        let now_ns = self.ns(Instant::now());
        st.workers
            .iter()
            .map(|w| (w.name.clone(), w.read(now_ns)))
            .collect()
    }

    /// Tells every worker to leave once the queues it serves are empty (the
    /// caller drained them first to drop the queued work).
    pub(crate) fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
        self.parker.notify_all();
    }

    /// Waits until every worker left, or until `deadline`; true if all left.
    pub(crate) fn wait_exited(&self, deadline: Instant) -> bool {
        let mut st = self.state.lock();
        while st.live > 0 {
            if st
                .unlocked_in(|g| self.exited.wait_until(g, deadline))
                .timed_out()
            {
                return st.live == 0;
            }
        }
        true
    }

    /// Joins every worker thread that has left; detaches the ones still
    /// running a task and returns their names.
    pub(crate) fn join_or_detach(&self) -> Vec<String> {
        let (handles, live): (Vec<_>, Vec<Arc<WorkerRecord>>) = {
            let mut st = self.state.lock();
            (std::mem::take(&mut st.handles), st.workers.clone())
        };
        let mut detached = Vec::new();
        for (record, handle) in handles {
            if live.iter().any(|w| Arc::ptr_eq(w, &record)) {
                detached.push(record.name.clone());
            } else {
                // Left the crew; at most returning its token now.
                let _ = handle.join();
            }
        }
        detached
    }
}

/// How a worker leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    /// Retired (above target or shutting down): already unregistered.
    Retired,
    /// Its task panicked: replace it.
    Replace,
    /// The loop itself unwound (a bug): replace it.
    Unexpected,
}

/// Unregisters an exiting worker and returns (or passes on) its token, also
/// when the worker loop unwinds.
struct ExitGuard<'a> {
    crew: &'a Arc<Crew>,
    me: &'a WorkerRecord,
    reason: Exit,
}

impl Drop for ExitGuard<'_> {
    fn drop(&mut self) {
        let replace = self.reason != Exit::Retired;
        if replace {
            let mut st = self.crew.state.lock();
            self.crew.unregister_locked(&mut st, self.me);
            drop(st);
            self.crew.counters.replaced.fetch_add(1, Ordering::Relaxed);
        }
        self.crew.budget.exit(self.crew, replace);
        self.me.finished.store(true, Ordering::Release);
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn worker_main(crew: Arc<Crew>, me: Arc<WorkerRecord>, gate: Option<Arc<Gate>>) {
    if let Some(gate) = gate {
        if !gate.wait() {
            // A resize that failed takes its threads back: leave without
            // having run anything; the resizer returns the token.
            let mut st = crew.state.lock();
            crew.unregister_locked(&mut st, &me);
            me.finished.store(true, Ordering::Release);
            return;
        }
    }
    let mut exit = ExitGuard {
        crew: &crew,
        me: &me,
        reason: Exit::Unexpected,
    };
    // The spin budget follows the idle gaps: from the end of the last piece
    // of work to the next announcement of work. A worker woken from sleep
    // uses the time of the notification, not of its (possibly slow) wake-up,
    // so that back-to-back rounds bring it back to spinning.
    let mut spin = AdaptiveSpin::new(crew.spin_max, false);
    let mut idle_since = Instant::now();
    let mut gap_recorded = false;
    let mut last_gen = 0;
    let mut served = (u64::MAX, crew.served());
    loop {
        let seen = crew.parker.epoch();
        let now = Instant::now();
        me.beat(crew.ns(now));
        if crew.retire_wanted() && crew.try_retire(&me) {
            exit.reason = Exit::Retired;
            return;
        }
        if let Some(joined) = crew.round.try_join(&mut last_gen) {
            if !gap_recorded {
                spin.record_gap(now - idle_since);
            }
            crew.run_share(&me, joined.job());
            drop(joined);
            idle_since = Instant::now();
            gap_recorded = false;
            continue;
        }
        crew.refresh_served(&mut served);
        let mut next_timer = None;
        for pool in served.1.iter() {
            if let Some(timers) = &pool.timers {
                next_timer = earliest(next_timer, timers.fire_due(now, pool));
            }
        }
        if let Some((pool, entry)) = served.1.iter().find_map(|p| p.queue.pop().map(|e| (p, e))) {
            if !gap_recorded {
                spin.record_gap(now - idle_since);
            }
            let (outcome, end) = crew.run_task(&me, pool, entry);
            idle_since = end;
            gap_recorded = false;
            if outcome == Outcome::Panicked {
                exit.reason = Exit::Replace;
                return;
            }
            continue;
        }
        if spin_until(spin.budget(), spin.yielding(), || {
            crew.parker.epoch() != seen
        }) {
            if !gap_recorded {
                spin.record_gap(idle_since.elapsed());
                gap_recorded = true;
            }
            continue;
        }
        let deadline = earliest(Some(now + crew.heartbeat), next_timer);
        crew.parker.park(seen, deadline);
        if let Some(at) = crew.parker.last_notified().filter(|at| *at > idle_since) {
            if !gap_recorded {
                spin.record_gap(at - idle_since);
                gap_recorded = true;
            }
        }
    }
}

/// Holds the threads a resize starts until all of them have started.
struct Gate {
    open: Mutex<Option<bool>>,
    changed: Condvar,
}

impl Gate {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            open: Mutex::new(None),
            changed: Condvar::new(),
        })
    }

    /// Lets the waiting threads go on (`true`) or leave (`false`).
    fn set(&self, go: bool) {
        *self.open.lock() = Some(go);
        self.changed.notify_all();
    }

    /// Waits until the gate is set; true: go on.
    fn wait(&self) -> bool {
        let mut open = self.open.lock();
        loop {
            if let Some(go) = *open {
                return go;
            }
            self.changed.wait(&mut open);
        }
    }
}

struct BudgetState {
    used: usize,
    crews: Vec<Weak<Crew>>,
    closed: bool,
}

/// The thread tokens shared by every pool of a runtime.
pub(crate) struct Budget {
    limit: usize,
    state: Mutex<BudgetState>,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            state: Mutex::new(BudgetState {
                used: 0,
                crews: Vec::new(),
                closed: false,
            }),
        })
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    fn register(&self, crew: &Arc<Crew>) {
        self.state.lock().crews.push(Arc::downgrade(crew));
    }

    /// Sets a crew's target and starts its threads while tokens are free,
    /// then threads for the other pools below their targets. All or
    /// nothing for `crew`: its new threads wait at a gate until every one
    /// has started; if one cannot start, they leave without having run
    /// anything, the target goes back to what it was, and the spawn error
    /// is returned.
    pub(crate) fn set_target(&self, crew: &Arc<Crew>, n: usize) -> Result<(), String> {
        let mut b = self.state.lock();
        let old = crew.target();
        crew.set_target_locked(n);
        let gate = Gate::new();
        let mut started = Vec::new();
        while !b.closed && b.used < self.limit && crew.deficit() > 0 {
            match crew.spawn_worker(Some(gate.clone())) {
                Ok(record) => {
                    b.used += 1;
                    started.push(record);
                }
                Err(e) => {
                    // Until the gated threads left, live <= n: no existing
                    // worker sees a surplus and retires in their place.
                    gate.set(false);
                    crew.wait_left(&started);
                    b.used -= started.len();
                    crew.set_target_locked(old);
                    return Err(e);
                }
            }
        }
        gate.set(true);
        self.grant(&mut b, None);
        Ok(())
    }

    /// Gives free tokens to crews below target, `first` before the others.
    /// A spawn failure is counted (`spawn_failures`) and retried at the
    /// next grant.
    fn grant(&self, b: &mut BudgetState, first: Option<&Arc<Crew>>) {
        if b.closed {
            return;
        }
        let crews: Vec<Arc<Crew>> = first
            .cloned()
            .into_iter()
            .chain(b.crews.iter().filter_map(Weak::upgrade))
            .collect();
        for crew in crews {
            while b.used < self.limit && crew.deficit() > 0 {
                match crew.spawn_worker(None) {
                    Ok(_) => b.used += 1,
                    Err(_) => break,
                }
            }
        }
    }

    /// A worker of `crew` left: its token goes to a replacement first if
    /// `replace`, then to any pool below target.
    fn exit(&self, crew: &Arc<Crew>, replace: bool) {
        let mut b = self.state.lock();
        b.used -= 1;
        self.grant(&mut b, replace.then_some(crew));
    }

    /// No more threads: later exits only return their tokens.
    pub(crate) fn close(&self) {
        self.state.lock().closed = true;
    }
}
