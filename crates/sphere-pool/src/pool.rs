//! [`SpherePool`]: the persistent spheres, their creation and shutdown, and
//! the one-job hand-off (dispatch, wait). Fork-join rounds are in
//! `rounds.rs`, on top of this.

use crate::barrier::SphereBarrier;
use crate::config::PoolConfig;
use crate::doorbell::Doorbell;
use crate::error::{Error, Worker};
use crate::fork_join::{OnLines, RoundTask};
use crate::job::{Job, SmallJob, run_job};
use crate::nested::{current_sphere, inside_frame_of, set_current_sphere};
use crate::round_lines::{OPTIONAL, RoundLines, round_of};
use crate::slot::{Next, Slot, Waited, add};
use crate::stats::{PoolStats, SphereStats};
use crossbeam_utils::CachePadded;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use thread_support::available_cores;
use thread_support::spin::AdaptiveSpin;

pub(crate) struct Shared {
    pub(crate) slots: Box<[CachePadded<Slot<Job>>]>,
    /// Spheres that have started running (named and pinned).
    pub(crate) started: (parking_lot::Mutex<usize>, parking_lot::Condvar),
    pub(crate) config: PoolConfig,
    /// More participants than CPUs: spinning threads yield the CPU.
    pub(crate) yielding: bool,
    /// Set while a fork-join round runs. A sphere frees its slot as soon as
    /// its share is done, before the round returns; this flag keeps other
    /// jobs and rounds out until then, so "busy" does not depend on timing.
    /// Only callers touch it (its own cache line, not the spheres').
    pub(crate) round: CachePadded<AtomicBool>,
    /// Where `dispatch_any` starts looking, so that it spreads jobs over
    /// the spheres instead of always filling sphere 0 first.
    pub(crate) next_any: AtomicUsize,
    /// The fork-join rounds' barrier, armed for every participant between
    /// rounds (a round that used it re-arms it after its join). It lives
    /// here, not in a round's record on the caller's stack, because a share
    /// may still be waking waiters through it after its departure let the
    /// caller return. The join counts departures on the done word.
    pub(crate) barrier: SphereBarrier,
    /// `run_all`'s rounds: the go line, the done line and the doorbell
    /// (which every slot shares).
    pub(crate) lines: RoundLines<RoundTask>,
    /// The first failure of a go-line round's shares, and whether there is
    /// one (so that a round without failure does not lock the mutex).
    pub(crate) round_error: CachePadded<RoundError>,
    /// When and how often the round's caller looks at where the threads
    /// ran (`None`: the pool does not move its threads; see `placement`).
    pub(crate) placement: Option<CachePadded<Placement>>,
    /// Optional rounds opened (`parallel_for`'s): with each sphere's count
    /// of those it started, it gives the sphere's revoked shares. Written
    /// only by the thread holding the round flag.
    pub(crate) optional_rounds: CachePadded<AtomicU64>,
}

/// Rounds between two looks at where a pool's threads ran, at first and
/// after a look that found them spread.
const PLACEMENT_CHECK: u32 = 128;
/// The most rounds between two looks (after moves that kept being undone).
const PLACEMENT_CHECK_MAX: u32 = 1 << 16;

/// The caller's schedule for looking at where the threads ran: only the
/// thread holding the round flag touches it.
pub(crate) struct Placement {
    next_check: AtomicU32,
    interval: AtomicU32,
}

/// See [`Shared::round_error`].
#[derive(Default)]
pub(crate) struct RoundError {
    pub(crate) any: AtomicBool,
    pub(crate) first: parking_lot::Mutex<Option<Error>>,
}

impl Shared {
    /// The round's caller, after the join of round `epoch`: now and then,
    /// looks at where the participants ran and asks one sphere on the
    /// busiest CPU to move to the idlest (`thread_support::placement`).
    /// Looks less often while its moves keep being undone.
    pub(crate) fn check_placement(&self, epoch: u32) {
        #[cfg(not(loom))]
        if let Some(p) = &self.placement {
            use thread_support::{CpuMask, placement::plan_move};
            if (epoch.wrapping_sub(p.next_check.load(Ordering::Relaxed)) as i32) < 0 {
                return;
            }
            let Some(allowed) = CpuMask::of_this_thread() else {
                return;
            };
            let spheres = self.slots.len();
            let caller_cpu = thread_support::spin::current_cpu();
            let cpu_of = |i: usize| match self.slots.get(i) {
                None => caller_cpu,
                Some(slot) => match slot.counters.last_cpu.load(Ordering::Relaxed) {
                    0 => None,
                    cpu => Some(cpu as usize - 1),
                },
            };
            let interval = p.interval.load(Ordering::Relaxed);
            let interval = match plan_move(spheres + 1, cpu_of, &allowed) {
                Some(m) => {
                    self.slots[m.participant]
                        .counters
                        .move_to
                        .store(m.to_cpu as u32 + 1, Ordering::Relaxed);
                    interval.saturating_mul(2).min(PLACEMENT_CHECK_MAX)
                }
                None => (interval / 2).max(PLACEMENT_CHECK),
            };
            p.interval.store(interval, Ordering::Relaxed);
            p.next_check
                .store(epoch.wrapping_add(interval), Ordering::Relaxed);
        }
        #[cfg(loom)]
        let _ = epoch;
    }

    /// Records a go-line share's failure and breaks the barrier (engaging
    /// it first), so that no other share waits at it for ever.
    pub(crate) fn fail_round(&self, error: Error, epoch: u32) {
        self.round_error.first.lock().get_or_insert(error);
        self.round_error.any.store(true, Ordering::Release);
        self.lines.engage(epoch, &self.barrier);
        self.barrier.break_barrier();
    }

    /// Runs participant `index`'s share of the go-line round `epoch` (the
    /// round is open) and records its failure; returns whether it failed.
    pub(crate) fn run_round_share(&self, index: usize, epoch: u32, worker: Worker) -> bool {
        let round = OnLines {
            lines: &self.lines,
            epoch,
        };
        self.lines.share_starts();
        let me = RoundTask::participant(index, self.slots.len() + 1, &self.barrier, round);
        // SAFETY: the round is open until this participant departs.
        let outcome = thread_support::tsan::user_code(|| unsafe {
            self.lines.task(|task| task.run(&me, worker))
        });
        match outcome {
            Ok(()) => false,
            Err(e) => {
                self.fail_round(e, epoch);
                true
            }
        }
    }
}

/// A sphere of a pool that spreads its threads, after its departure: notes
/// the CPU it ran on, and moves itself if the round's caller asked.
fn follow_placement(counters: &crate::slot::SlotCounters) {
    #[cfg(not(loom))]
    {
        use crate::sync::Ordering as O;
        if let Some(cpu) = thread_support::spin::current_cpu() {
            counters.last_cpu.store(cpu as u32 + 1, O::Relaxed);
        }
        if counters.move_to.load(O::Relaxed) != 0 {
            let to = counters.move_to.swap(0, O::Relaxed);
            if to != 0 && thread_support::placement::move_self_to(to as usize - 1) {
                crate::slot::add(&counters.moves, 1);
            }
        }
    }
    #[cfg(loom)]
    let _ = counters;
}

/// Clears [`Shared::round`] when a round ends, however it ends.
pub(crate) struct RoundGuard<'a>(pub(crate) &'a AtomicBool);

impl Drop for RoundGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// A pool of persistent worker threads ("spheres").
///
/// Each sphere is a named OS thread (`cllm-sphere-<i>`) with one slot: give
/// it a job with [`dispatch`](Self::dispatch) and collect the outcome with
/// [`wait`](Self::wait). [`run_all`](Self::run_all) runs a closure on every
/// sphere and on the calling thread; [`parallel_for`](Self::parallel_for)
/// spreads a range over them with work stealing.
///
/// Threads are created in the constructor and joined by
/// [`shutdown`](Self::shutdown) or on drop, after they finish any job they
/// hold. A panicking job is reported by the wait that collects it; the sphere
/// goes on serving.
///
/// ```
/// use sphere_pool::SpherePool;
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// let pool = SpherePool::new(3).unwrap();
/// let sum = AtomicU64::new(0);
/// pool.parallel_for(0..1000, 0, |range| {
///     let part: u64 = range.map(|i| i as u64).sum();
///     sum.fetch_add(part, Ordering::Relaxed);
/// })
/// .unwrap();
/// assert_eq!(sum.into_inner(), 499_500);
/// ```
pub struct SpherePool {
    pub(crate) shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl SpherePool {
    /// A pool of `spheres` spheres (0: [`default_spheres`](crate::default_spheres)) with the default
    /// configuration.
    pub fn new(spheres: usize) -> Result<Self, Error> {
        Self::with_config(PoolConfig {
            spheres,
            ..PoolConfig::default()
        })
    }

    /// A pool of `threads` threads, the calling thread included (0:
    /// "auto"; 1: no sphere, everything runs serially on the caller).
    pub fn with_threads(threads: usize) -> Result<Self, Error> {
        Self::with_config(PoolConfig {
            threads,
            ..PoolConfig::default()
        })
    }

    /// A pool built as `config` says. "Auto" settings are resolved here,
    /// from the environment too (see [`PoolConfig`]); bad values are an
    /// [`Error::InvalidArgument`] that names the setting.
    pub fn with_config(config: PoolConfig) -> Result<Self, Error> {
        let config = config.resolve()?;
        let n = config.spheres;
        // Looks the ThreadSanitizer runtime up now, not in a first round.
        let _ = thread_support::tsan::active();
        let yielding = n + 1 > available_cores();
        let config_spin = config.max_spin;
        let spread = yielding
            && !config.pin
            && config.cpus.is_none()
            && cfg!(all(target_os = "linux", not(loom)));
        let bell = Arc::new(CachePadded::new(Doorbell::new()));
        let shared = Arc::new(Shared {
            slots: (0..n)
                .map(|i| CachePadded::new(Slot::with_doorbell(bell.clone(), i)))
                .collect(),
            started: Default::default(),
            config,
            yielding,
            round: CachePadded::new(AtomicBool::new(false)),
            next_any: AtomicUsize::new(0),
            barrier: SphereBarrier::with_spin(n + 1, config_spin),
            lines: RoundLines::new(n + 1, bell),
            round_error: Default::default(),
            optional_rounds: Default::default(),
            // Oversubscribed and not pinned: threads that spin between
            // rounds never leave their CPU, so the pool spreads them itself.
            placement: spread.then(|| {
                CachePadded::new(Placement {
                    next_check: AtomicU32::new(PLACEMENT_CHECK),
                    interval: AtomicU32::new(PLACEMENT_CHECK),
                })
            }),
        });
        let cores = match &shared.config.cpus {
            Some(cpus) => cpus
                .iter()
                .map(|&id| core_affinity::CoreId { id })
                .collect(),
            None if shared.config.pin => core_affinity::get_core_ids().unwrap_or_default(),
            None => Vec::new(),
        };
        let mut pool = SpherePool {
            shared,
            threads: Vec::with_capacity(n),
        };
        for index in 0..n {
            let shared = pool.shared.clone();
            let core = (!cores.is_empty()).then(|| cores[(index + 1) % cores.len()]);
            let mut builder =
                std::thread::Builder::new().name(format!("{}-{index}", shared.config.name_prefix));
            if let Some(size) = shared.config.stack_size {
                builder = builder.stack_size(size);
            }
            match builder.spawn(move || {
                // Under ThreadSanitizer, the pool's own work on this thread
                // is out of view; the shares and jobs it runs are not
                // (`tsan::user_code`). Made first, so that the captured
                // `Arc` is dropped inside it.
                let _library = thread_support::tsan::library_thread();
                let shared = shared;
                sphere_main(&shared, index, core)
            }) {
                Ok(handle) => pool.threads.push(handle),
                Err(e) => {
                    // Dropping the partial pool shuts down and joins what started.
                    drop(pool);
                    return Err(Error::Spawn {
                        sphere: index,
                        reason: e.to_string(),
                    });
                }
            }
        }
        // Return only once every sphere runs: its name is visible (ps -eLf)
        // and its pinning done.
        let (count, all_started) = &pool.shared.started;
        let mut started = count.lock();
        while *started < n {
            all_started.wait(&mut started);
        }
        drop(started);
        Ok(pool)
    }

    /// The number of spheres.
    pub fn spheres(&self) -> usize {
        self.shared.slots.len()
    }

    /// Whether this pool spreads its threads over the CPUs itself (more
    /// participants than CPUs, not pinned; `thread_support::placement`).
    #[doc(hidden)]
    pub fn spreads_its_threads(&self) -> bool {
        self.shared.placement.is_some()
    }

    /// How many times its spheres moved themselves to spread the pool.
    #[doc(hidden)]
    pub fn placement_moves(&self) -> u64 {
        (self.shared.slots.iter())
            .map(|s| s.counters.moves.load(Ordering::Relaxed))
            .sum()
    }

    /// The number of fork-join participants: the spheres and the caller.
    pub fn participants(&self) -> usize {
        self.spheres() + 1
    }

    /// The configuration the pool was built with, "auto" resolved
    /// (`spheres`, `threads`, and `cpus` from the environment).
    pub fn config(&self) -> &PoolConfig {
        &self.shared.config
    }

    /// The address that identifies this pool in thread-local records.
    pub(crate) fn id(&self) -> usize {
        Arc::as_ptr(&self.shared) as usize
    }

    /// Whether dropping the pool here and now is safe: not while a
    /// fork-join round runs (its caller still uses the pool when the round
    /// ends), nor from inside a nested call of this pool on this thread.
    /// Dropping from a dispatched job with no round running is fine. Safe
    /// Rust cannot drop a borrowed pool; this is for owners through raw
    /// pointers (the C API).
    pub fn check_drop(&self) -> Result<(), Error> {
        if self.shared.round.load(Ordering::Acquire) || inside_frame_of(self.id()).is_some() {
            return Err(Error::RoundInProgress);
        }
        Ok(())
    }

    fn refuse_self_wait(&self, sphere: usize) -> Result<(), Error> {
        if current_sphere() == Some((self.id(), sphere)) {
            return Err(Error::InvalidArgument(format!(
                "sphere {sphere} cannot wait for its own job from inside it"
            )));
        }
        Ok(())
    }

    fn slot(&self, sphere: usize) -> Result<&Slot<Job>, Error> {
        self.shared
            .slots
            .get(sphere)
            .map(|s| &**s)
            .ok_or(Error::SphereOutOfRange {
                sphere,
                spheres: self.spheres(),
            })
    }

    /// Hands `job` to `sphere` and returns at once (the seed's work-ready).
    /// Fails with [`Error::Busy`] if the sphere's previous job was not waited
    /// for, and with [`Error::RoundInProgress`] during a fork-join. Boxing the
    /// closure allocates; [`dispatch_small`](Self::dispatch_small) does not.
    pub fn dispatch(
        &self,
        sphere: usize,
        job: impl FnOnce() + Send + 'static,
    ) -> Result<(), Error> {
        let slot = self.slot(sphere)?;
        slot.claim_outside_round(sphere, &self.shared.round)?;
        slot.publish(Job::Boxed(Box::new(job)));
        Ok(())
    }

    /// As [`dispatch`](Self::dispatch) for a [`SmallJob`], which travels in
    /// the sphere's slot: no allocation, and no system call when the sphere
    /// is awake.
    pub fn dispatch_small(&self, sphere: usize, job: SmallJob) -> Result<(), Error> {
        let slot = self.slot(sphere)?;
        slot.claim_outside_round(sphere, &self.shared.round)?;
        slot.publish(Job::Small(job));
        Ok(())
    }

    /// Hands `job` to an idle sphere and returns at once with its index
    /// (wait for it with [`wait`](Self::wait) on that index). Never blocks:
    /// with every sphere holding a job that was not waited for, it fails
    /// with [`Error::NoIdleSphere`]; during a fork-join round, with
    /// [`Error::RoundInProgress`]; a pool without spheres (one thread) has
    /// nothing to dispatch to ([`Error::InvalidArgument`]). The search
    /// starts after the sphere picked last, so jobs spread over the pool.
    pub fn dispatch_any(&self, job: impl FnOnce() + Send + 'static) -> Result<usize, Error> {
        self.dispatch_any_job(Job::Boxed(Box::new(job)))
    }

    /// As [`dispatch_any`](Self::dispatch_any) for a [`SmallJob`], without
    /// allocating.
    pub fn dispatch_any_small(&self, job: SmallJob) -> Result<usize, Error> {
        self.dispatch_any_job(Job::Small(job))
    }

    fn dispatch_any_job(&self, job: Job) -> Result<usize, Error> {
        let n = self.spheres();
        if n == 0 {
            return Err(Error::InvalidArgument(
                "the pool has no sphere to dispatch to (a pool of one thread runs \
                 fork-join work on the caller)"
                    .to_owned(),
            ));
        }
        if self.shared.round.load(Ordering::SeqCst) {
            return Err(Error::RoundInProgress);
        }
        let start = self.shared.next_any.load(Ordering::Relaxed);
        for k in 0..n {
            let sphere = (start + k) % n;
            match self.shared.slots[sphere].claim_outside_round(sphere, &self.shared.round) {
                Ok(()) => {
                    self.shared.slots[sphere].publish(job);
                    self.shared.next_any.store(sphere + 1, Ordering::Relaxed);
                    return Ok(sphere);
                }
                Err(Error::Busy { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::NoIdleSphere { spheres: n })
    }

    /// True if `sphere` holds a job that was not waited for yet, or a
    /// fork-join round is in progress.
    pub fn is_busy(&self, sphere: usize) -> Result<bool, Error> {
        let slot = self.slot(sphere)?;
        Ok(self.shared.round.load(Ordering::Acquire) || slot.is_busy())
    }

    /// Waits for `sphere`'s job to end and returns its outcome (the seed's
    /// work-done). A sphere that was given nothing returns `Ok(())` at once.
    /// A job may not wait for its own sphere (that could never end): it gets
    /// [`Error::InvalidArgument`].
    pub fn wait(&self, sphere: usize) -> Result<(), Error> {
        self.refuse_self_wait(sphere)?;
        match self
            .slot(sphere)?
            .wait(None, self.shared.config.max_spin, self.shared.yielding)
        {
            Waited::Collected(outcome) => outcome,
            Waited::Nothing => Ok(()),
            Waited::TimedOut => unreachable!("a wait without deadline cannot time out"),
        }
    }

    /// As [`wait`](Self::wait), giving up after `timeout` with
    /// [`Error::Timeout`]; the job goes on and can be waited for again.
    pub fn wait_timeout(&self, sphere: usize, timeout: Duration) -> Result<(), Error> {
        self.refuse_self_wait(sphere)?;
        let slot = self.slot(sphere)?;
        // A timeout too large for the clock is a wait without deadline.
        let deadline = Instant::now().checked_add(timeout);
        match slot.wait(deadline, self.shared.config.max_spin, self.shared.yielding) {
            Waited::Collected(outcome) => outcome,
            Waited::Nothing => Ok(()),
            Waited::TimedOut => Err(Error::Timeout { sphere }),
        }
    }

    /// A snapshot of the per-sphere counters.
    pub fn stats(&self) -> PoolStats {
        PoolStats::from_spheres(
            self.shared
                .slots
                .iter()
                .map(|s| SphereStats::read(&s.counters, &self.shared.optional_rounds))
                .collect(),
            self.shared.lines.doorbell().wake_calls(),
        )
    }

    /// Stops the pool: spheres finish the job they hold, then exit, and every
    /// thread is joined. Dropping the pool does the same.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for SpherePool {
    fn drop(&mut self) {
        for slot in self.shared.slots.iter() {
            slot.shutdown();
        }
        let me = std::thread::current().id();
        for handle in self.threads.drain(..) {
            // Dropped from inside one of its own jobs: that thread cannot
            // join itself; it ends on its own once the job returns (it
            // holds its own reference to the shared state).
            if handle.thread().id() != me {
                // A sphere never unwinds: jobs run under catch_unwind.
                let _ = handle.join();
            }
        }
    }
}

impl std::fmt::Debug for SpherePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpherePool")
            .field("spheres", &self.spheres())
            .field("config", &self.shared.config)
            .finish()
    }
}

fn sphere_main(shared: &Shared, index: usize, core: Option<core_affinity::CoreId>) {
    if let Some(core) = core {
        // Pinning is a hint: a sphere that cannot be pinned still serves.
        let _ = core_affinity::set_for_current(core);
    }
    set_current_sphere(shared as *const Shared as usize, index);
    let (count, all_started) = &shared.started;
    let slot = &shared.slots[index];
    let lines = &shared.lines;
    let mut spin = AdaptiveSpin::new(shared.config.max_spin, shared.yielding);
    let mut idle_since = Instant::now();
    // No round can open before every sphere has started (the constructor
    // waits for them), so this is the epoch before the first round.
    let mut seen = lines.epoch();
    // The last optional round this sphere started or found closed.
    let mut handled = 0;
    *count.lock() += 1;
    all_started.notify_all();
    loop {
        idle_since = match slot.next_job_or(&mut spin, idle_since, || lines.epoch() != seen) {
            Next::Other(started) => {
                seen = lines.epoch();
                match lines.join_round(seen, &mut handled) {
                    // An optional round closed before this sphere could
                    // start, or already started: wait for the next word.
                    None => idle_since,
                    Some(word) => {
                        let round = round_of(word);
                        if word & OPTIONAL != 0 {
                            add(&slot.counters.optional_started, 1);
                        }
                        let failed = shared.run_round_share(index, round, Worker::Sphere(index));
                        // Counted before departing, so the round's caller sees it.
                        slot.count_job(failed);
                        lines.depart(round, &shared.barrier);
                        if shared.placement.is_some() {
                            follow_placement(&slot.counters);
                        }
                        slot.end_job(started)
                    }
                }
            }
            Next::Job(other, started) => slot.complete(
                thread_support::tsan::user_code(|| run_job(other, index)),
                started,
            ),
            Next::Exit => return,
        };
    }
}
