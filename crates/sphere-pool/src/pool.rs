//! [`SpherePool`]: the persistent spheres and the operations on them.

use crate::barrier::SphereBarrier;
use crate::env::{MAX_THREADS, check_cpus_available, env_cpus, env_num_threads};
use crate::error::{Error, Worker, panic_message};
use crate::slot::{Outcome, Slot, Waited};
use crate::stats::{PoolStats, SphereStats};
use crossbeam_utils::CachePadded;
use std::ffi::{c_int, c_void};
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use thread_support::available_cores;
use thread_support::spin::AdaptiveSpin;

thread_local! {
    /// On a sphere thread: (its pool's address, its index).
    static CURRENT_SPHERE: std::cell::Cell<Option<(usize, usize)>> = const { std::cell::Cell::new(None) };
    /// The innermost call of a pool that this thread is running work of, as
    /// a chain of frames on its stack (a thread may be inside several pools).
    static INSIDE: std::cell::Cell<*const Inside> = const { std::cell::Cell::new(std::ptr::null()) };
}

/// One link of [`INSIDE`]: this thread runs work of `pool` as `participant`.
struct Inside {
    pool: usize,
    participant: usize,
    outer: *const Inside,
}

/// Runs `f` with `(pool, participant)` pushed on this thread's [`INSIDE`]
/// chain, popped again however `f` ends.
fn inside<R>(pool: usize, participant: usize, f: impl FnOnce() -> R) -> R {
    struct Pop(*const Inside);
    impl Drop for Pop {
        fn drop(&mut self) {
            INSIDE.set(self.0);
        }
    }
    let frame = Inside {
        pool,
        participant,
        outer: INSIDE.get(),
    };
    INSIDE.set(&frame);
    let _pop = Pop(frame.outer);
    f()
}

/// The participant this thread runs for `pool` in an [`inside`] frame.
fn inside_frame_of(pool: usize) -> Option<usize> {
    let mut frame = INSIDE.get();
    // SAFETY: every frame of the chain lives on this thread's stack below
    // the current call (`inside` pops it before its stack frame ends).
    while let Some(f) = unsafe { frame.as_ref() } {
        if f.pool == pool {
            return Some(f.participant);
        }
        frame = f.outer;
    }
    None
}

/// The most spheres a pool may have. Larger requests are an error.
pub const MAX_SPHERES: usize = 4096;

/// The longest range [`SpherePool::parallel_for`] takes (`usize::MAX / 2 -
/// 4096` items); longer ones are an error. The limit keeps the work-stealing
/// cursors from wrapping around.
pub const MAX_RANGE_LEN: usize = usize::MAX / 2 - MAX_SPHERES;

/// The default number of spheres when nothing is set: one per CPU minus one
/// for the calling thread (which takes a share of fork-join work), and at
/// least one.
pub fn default_spheres() -> usize {
    available_cores().saturating_sub(1).max(1)
}

/// The spheres of a pool created with "auto": `CLLM_NUM_THREADS` minus the
/// caller if the variable is set (0 for `CLLM_NUM_THREADS=1`: no sphere),
/// else [`default_spheres`]. A bad value is an error naming the variable.
pub fn auto_spheres() -> Result<usize, Error> {
    Ok(env_num_threads()?.map_or_else(default_spheres, |threads| threads - 1))
}

/// Turns a C-style sphere request into a sphere count for APIs that need at
/// least one sphere (the loader, the drop-in): `<= 0` means "auto"
/// ([`auto_spheres`], at least one); above [`MAX_SPHERES`] is an error.
pub fn resolve_spheres(requested: i64) -> Result<usize, Error> {
    if requested <= 0 {
        Ok(auto_spheres()?.max(1))
    } else if requested as u64 > MAX_SPHERES as u64 {
        Err(Error::InvalidArgument(format!(
            "{requested} spheres requested; the limit is {MAX_SPHERES}"
        )))
    } else {
        Ok(requested as usize)
    }
}

/// How to build a [`SpherePool`].
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Number of spheres; 0 means "auto": `threads - 1` if `threads` is
    /// set, else [`auto_spheres`] (`CLLM_NUM_THREADS`, else one per CPU).
    pub spheres: usize,
    /// Threads of the pool, the calling thread included (`OMP_NUM_THREADS`'s
    /// meaning), used when `spheres` is 0: 1 makes a pool without spheres
    /// that runs everything serially on the caller; 0: "auto".
    pub threads: usize,
    /// Pin sphere `i` to CPU `(i + 1) % cpus` (the caller keeps CPU 0).
    pub pin: bool,
    /// CPUs to pin the spheres to (sphere `i` on `cpus[(i + 1) % len]`);
    /// `None`: `CLLM_CPUS` if set, else as `pin` says. Every CPU must be one
    /// the process may run on.
    pub cpus: Option<Vec<usize>>,
    /// The longest a sphere or a waiter spins before parking (0: never
    /// spin). The default, 200 us, is long enough that a thread the system
    /// descheduled for a moment does not make the other one sleep (waking a
    /// sleeping thread, on a virtual machine especially, costs tens of
    /// microseconds), and short enough that an idle pool costs nothing
    /// measurable; spins past 10 us yield the CPU between checks.
    pub max_spin: Duration,
    /// Thread names are `<prefix>-<index>` (Linux shows 15 bytes).
    pub name_prefix: String,
    /// Stack size of each sphere thread; `None` for the platform default.
    pub stack_size: Option<usize>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            spheres: 0,
            threads: 0,
            pin: false,
            cpus: None,
            max_spin: Duration::from_micros(200),
            name_prefix: "cllm-sphere".to_owned(),
            stack_size: None,
        }
    }
}

impl PoolConfig {
    /// Resolves "auto" (sphere count, CPU list) from the thread count and
    /// the environment, and checks the limits.
    fn resolve(mut self) -> Result<Self, Error> {
        if self.spheres == 0 {
            self.spheres = match self.threads {
                0 => auto_spheres()?,
                t if t > MAX_THREADS => {
                    return Err(Error::InvalidArgument(format!(
                        "{t} threads requested; the limit is {MAX_THREADS} (the calling thread included)"
                    )));
                }
                t => t - 1,
            };
        }
        if self.spheres > MAX_SPHERES {
            return Err(Error::InvalidArgument(format!(
                "{} spheres requested; the limit is {MAX_SPHERES}",
                self.spheres
            )));
        }
        self.threads = self.spheres + 1;
        match &self.cpus {
            Some(cpus) => check_cpus_available(cpus, "cpus (the CPU list of the pool)")?,
            None => self.cpus = env_cpus()?,
        }
        Ok(self)
    }
}

/// A job given to C: a function pointer and its argument. Running it calls
/// `func(arg, sphere)`; a non-zero return is reported as
/// [`Error::JobFailed`].
#[derive(Debug, Clone, Copy)]
pub struct RawJob {
    func: unsafe extern "C" fn(*mut c_void, usize) -> c_int,
    arg: *mut c_void,
}

impl RawJob {
    /// Wraps a C function and its argument.
    ///
    /// # Safety
    /// `func(arg, sphere)` must be safe to call once from another thread, and
    /// `arg` must stay valid until the job was waited for.
    pub unsafe fn new(
        func: unsafe extern "C" fn(*mut c_void, usize) -> c_int,
        arg: *mut c_void,
    ) -> Self {
        Self { func, arg }
    }
}

// SAFETY: the creator of a RawJob promised (in `RawJob::new`) that the call
// may run on another thread.
unsafe impl Send for RawJob {}

/// The context a fork-join share runs with.
pub struct Participant<'a> {
    index: usize,
    count: usize,
    barrier: &'a SphereBarrier,
}

impl Participant<'_> {
    /// This participant's index: `0..spheres` for the spheres, `spheres`
    /// (the last) for the calling thread.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The number of participants: the spheres plus the calling thread.
    pub fn count(&self) -> usize {
        self.count
    }

    /// True for the calling thread's share.
    pub fn is_caller(&self) -> bool {
        self.index + 1 == self.count
    }

    /// Waits for every other participant that has not returned yet.
    ///
    /// # Panics
    /// If another participant panicked (the barrier is broken): this share
    /// then ends too, and the fork-join reports the first panic.
    pub fn barrier(&self) -> bool {
        match self.barrier.wait() {
            Ok(leader) => leader,
            Err(broken) => panic!("{broken}"),
        }
    }

    /// As [`Participant::barrier`], returning the broken barrier as an error.
    pub fn try_barrier(&self) -> Result<bool, crate::BarrierBroken> {
        self.barrier.wait()
    }
}

/// The closure of a fork-join, as every share sees it.
type ShareFn<'a> = dyn Fn(&Participant<'_>) -> Result<(), i32> + Sync + 'a;

/// What a C fork-join share receives: its index, the number of
/// participants, and an opaque pointer to its [`Participant`] (for the
/// barrier). `repr(C)`: the C API passes it on as is.
#[repr(C)]
#[derive(Debug)]
pub struct RawParticipant {
    /// This participant, `0..count`; the calling thread is `count - 1`.
    pub index: usize,
    /// Participants: the spheres and the calling thread.
    pub count: usize,
    /// The share's `Participant`, valid during the call.
    pub internal: *const c_void,
}

impl RawParticipant {
    /// The participant behind a `RawParticipant` a raw task was given.
    ///
    /// # Safety
    /// `self` is the value passed to a running raw task, used during the call.
    pub unsafe fn participant(&self) -> Option<&Participant<'_>> {
        // SAFETY: promised by the caller: `internal` points to the share's
        // live Participant (or is NULL if forged).
        unsafe { self.internal.cast::<Participant<'_>>().as_ref() }
    }
}

/// A fork-join task given to C: `func(arg, &participant)` on every
/// participant; a non-zero return is reported as [`Error::JobFailed`]. The
/// function and argument travel inside the fork-join record itself, so a
/// sphere reads no other memory of the caller's to start it.
#[derive(Debug, Clone, Copy)]
pub struct RawTask {
    func: unsafe extern "C" fn(*mut c_void, *const RawParticipant) -> c_int,
    arg: *mut c_void,
}

impl RawTask {
    /// Wraps a C function and its argument.
    ///
    /// # Safety
    /// `func(arg, participant)` must be safe to call from every participant
    /// at once, and `arg` valid during the fork-join.
    pub unsafe fn new(
        func: unsafe extern "C" fn(*mut c_void, *const RawParticipant) -> c_int,
        arg: *mut c_void,
    ) -> Self {
        Self { func, arg }
    }
}

/// The task of a fork-join: a Rust closure or a C function.
#[derive(Clone, Copy)]
enum Task<'a> {
    Closure(&'a ShareFn<'a>),
    Raw(RawTask),
}

/// One fork-join, living on the caller's stack while the spheres run it.
/// Every share leaves the barrier when it ends (its last touch of the
/// record), so the barrier's party count is also the join counter.
struct ForkJoin<'a> {
    task: Task<'a>,
    participants: usize,
    barrier: SphereBarrier,
    /// The first failure of any share.
    first_error: parking_lot::Mutex<Option<Error>>,
}

impl ForkJoin<'_> {
    /// Records a share's failure and breaks the barrier, so that no other
    /// share waits at it for ever.
    fn fail(&self, error: Error) {
        self.first_error.lock().get_or_insert(error);
        self.barrier.break_barrier();
    }
}

/// A pointer to a fork-join and the share to run.
struct Share {
    fork_join: *const ForkJoin<'static>,
    index: usize,
}

// SAFETY: the fork-join is Sync (its closure is Sync, the barrier is Sync, a
// raw task is promised callable from every participant), and `fork_join`
// waits for every share before its stack frame ends.
unsafe impl Send for Share {}

/// What a sphere runs.
enum Job {
    Boxed(Box<dyn FnOnce() + Send>),
    Raw(RawJob),
    Share(Share),
}

struct Shared {
    slots: Box<[CachePadded<Slot<Job>>]>,
    /// Spheres that have started running (named and pinned).
    started: (parking_lot::Mutex<usize>, parking_lot::Condvar),
    config: PoolConfig,
    /// More participants than CPUs: spinning threads yield the CPU.
    yielding: bool,
    /// Set while a fork-join round runs. A sphere frees its slot as soon as
    /// its share is done, before the round returns; this flag keeps other
    /// jobs and rounds out until then, so "busy" does not depend on timing.
    /// Only callers touch it (its own cache line, not the spheres').
    round: CachePadded<AtomicBool>,
    /// Where `dispatch_any` starts looking, so that it spreads jobs over
    /// the spheres instead of always filling sphere 0 first.
    next_any: AtomicUsize,
}

/// Clears [`Shared::round`] when a round ends, however it ends.
struct RoundGuard<'a>(&'a AtomicBool);

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
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl SpherePool {
    /// A pool of `spheres` spheres (0: [`default_spheres`]) with the default
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
        let yielding = n + 1 > available_cores();
        let shared = Arc::new(Shared {
            slots: (0..n).map(|_| CachePadded::new(Slot::new())).collect(),
            started: Default::default(),
            config,
            yielding,
            round: CachePadded::new(AtomicBool::new(false)),
            next_any: AtomicUsize::new(0),
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
            match builder.spawn(move || sphere_main(&shared, index, core)) {
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
    fn id(&self) -> usize {
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

    /// This thread's participant index if it is running work of this pool
    /// (a sphere's job or share, the caller's share, a nested call): a
    /// fork-join or parallel-for called here runs inline.
    fn nested_participant(&self) -> Option<usize> {
        match CURRENT_SPHERE.get() {
            Some((pool, sphere)) if pool == self.id() => Some(sphere),
            _ => inside_frame_of(self.id()),
        }
    }

    /// Who runs as `participant`, for error reports.
    fn worker(&self, participant: usize) -> Worker {
        if participant < self.spheres() {
            Worker::Sphere(participant)
        } else {
            Worker::Caller
        }
    }

    /// A nested fork-join: the task runs once, on this thread, as the only
    /// participant (index 0 of 1), as OpenMP runs a nested parallel region
    /// with a team of one. Its barrier passes at once.
    fn run_inline(&self, task: Task<'_>, me: usize) -> Result<(), Error> {
        let fork_join = ForkJoin {
            task,
            participants: 1,
            barrier: SphereBarrier::with_spin(1, self.shared.config.max_spin),
            first_error: parking_lot::Mutex::new(None),
        };
        inside(self.id(), me, || run_task(&fork_join, 0, self.worker(me)))
    }

    /// A nested parallel-for: the range runs on this thread, in order, in
    /// chunks of `grain` (0: one chunk), each given this thread's own
    /// participant index (so per-participant scratch space stays private).
    fn parallel_for_inline(
        &self,
        range: Range<usize>,
        grain: usize,
        me: usize,
        body: impl Fn(Range<usize>, usize) -> Result<(), i32>,
    ) -> Result<(), Error> {
        let len = range.end - range.start;
        let grain = if grain == 0 { len } else { grain.min(len) };
        let worker = self.worker(me);
        let run = || {
            let mut start = range.start;
            while start < range.end {
                // `grain <= range.end - start` until the last chunk: no overflow.
                let end = start + grain.min(range.end - start);
                body(start..end, me)?;
                start = end;
            }
            Ok(())
        };
        match inside(self.id(), me, || catch_unwind(AssertUnwindSafe(run))) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(code)) => Err(Error::JobFailed { worker, code }),
            Err(payload) => Err(Error::Panicked {
                worker,
                message: panic_message(payload.as_ref()),
            }),
        }
    }

    fn refuse_self_wait(&self, sphere: usize) -> Result<(), Error> {
        if CURRENT_SPHERE.get() == Some((self.id(), sphere)) {
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
    /// for, and with [`Error::RoundInProgress`] during a fork-join. Boxing the closure allocates; [`dispatch_raw`](Self::dispatch_raw)
    /// does not.
    pub fn dispatch(
        &self,
        sphere: usize,
        job: impl FnOnce() + Send + 'static,
    ) -> Result<(), Error> {
        let slot = self.slot(sphere)?;
        self.refuse_during_round()?;
        slot.dispatch(sphere, Job::Boxed(Box::new(job)))
    }

    /// Hands a C job to `sphere` without allocating.
    pub fn dispatch_raw(&self, sphere: usize, job: RawJob) -> Result<(), Error> {
        let slot = self.slot(sphere)?;
        self.refuse_during_round()?;
        slot.dispatch(sphere, Job::Raw(job))
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

    /// As [`dispatch_any`](Self::dispatch_any) for a C job, without
    /// allocating.
    pub fn dispatch_any_raw(&self, job: RawJob) -> Result<usize, Error> {
        self.dispatch_any_job(Job::Raw(job))
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
        self.refuse_during_round()?;
        let start = self.shared.next_any.load(Ordering::Relaxed);
        for k in 0..n {
            let sphere = (start + k) % n;
            match self.shared.slots[sphere].claim(sphere) {
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

    /// [`Error::RoundInProgress`] while a fork-join round runs.
    fn refuse_during_round(&self) -> Result<(), Error> {
        if self.shared.round.load(Ordering::Acquire) {
            return Err(Error::RoundInProgress);
        }
        Ok(())
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

    /// Runs `task` once on every sphere and once on the calling thread, and
    /// returns when all have finished (fork-join). Each call gets a
    /// [`Participant`] with its index and a barrier. Fails with
    /// [`Error::Busy`] (running nothing) if a sphere holds a job that was not
    /// waited for, or [`Error::RoundInProgress`] if another thread's round
    /// is running; a panic in any share is returned after all have ended.
    ///
    /// **Nested calls run inline.** Called from work of this same pool (a
    /// share, a parallel-for body, a dispatched job), the task runs once,
    /// serially, on the calling thread, as participant 0 of 1 (its barrier
    /// passes at once), as OpenMP runs a nested parallel region.
    pub fn run_all(&self, task: impl Fn(&Participant<'_>) + Sync) -> Result<(), Error> {
        self.fork_join(
            Task::Closure(&|p: &Participant<'_>| {
                task(p);
                Ok(())
            }),
            false,
        )
    }

    /// As [`run_all`](Self::run_all) for a task that reports failure with an
    /// error code, returned as [`Error::JobFailed`].
    pub fn try_run_all(
        &self,
        task: impl Fn(&Participant<'_>) -> Result<(), i32> + Sync,
    ) -> Result<(), Error> {
        self.fork_join(Task::Closure(&task), false)
    }

    /// As [`try_run_all`](Self::try_run_all) for a C function: no closure
    /// in between, the fastest fork-join from C.
    pub fn run_all_raw(&self, task: RawTask) -> Result<(), Error> {
        self.fork_join(Task::Raw(task), false)
    }

    /// Runs `task` on every sphere and the caller. With `optional` shares
    /// (parallel-for, where the caller's share takes whatever work is left),
    /// a share that no sphere has started when the caller is done is
    /// revoked instead of waited for.
    fn fork_join(&self, task: Task<'_>, optional: bool) -> Result<(), Error> {
        if let Some(me) = self.nested_participant() {
            return self.run_inline(task, me);
        }
        if self.shared.round.swap(true, Ordering::Acquire) {
            return Err(Error::RoundInProgress);
        }
        let _round = RoundGuard(&self.shared.round);
        let slots = &self.shared.slots;
        for (i, slot) in slots.iter().enumerate() {
            if let Err(e) = slot.claim(i) {
                slots[..i].iter().for_each(|s| s.release_claim());
                return Err(e);
            }
        }
        let fork_join = ForkJoin {
            task,
            participants: self.participants(),
            barrier: SphereBarrier::with_spin(self.participants(), self.shared.config.max_spin),
            first_error: parking_lot::Mutex::new(None),
        };
        let ptr = (&fork_join as *const ForkJoin<'_>).cast::<ForkJoin<'static>>();
        for (index, slot) in slots.iter().enumerate() {
            slot.publish(Job::Share(Share {
                fork_join: ptr,
                index,
            }));
        }
        // From here on, every share must have left before `fork_join` goes
        // out of scope, even if something below panics.
        let join = JoinAll(&fork_join.barrier);
        let caller = slots.len();
        if let Err(e) = inside(self.id(), caller, || {
            run_task(&fork_join, caller, Worker::Caller)
        }) {
            fork_join.fail(e);
        }
        fork_join.barrier.leave();
        if optional {
            for slot in slots.iter() {
                // A revoked share never touches `fork_join`: leave for it.
                if slot.revoke().is_some() {
                    fork_join.barrier.leave();
                }
            }
        }
        drop(join);
        fork_join.first_error.into_inner().map_or(Ok(()), Err)
    }

    /// Calls `body` on sub-ranges that together cover `range` exactly once,
    /// spread over the spheres and the calling thread. Each participant starts
    /// on its own contiguous block and, when done, steals chunks of `grain`
    /// items from the others, so uneven work stays balanced. `grain == 0`
    /// picks one that gives each participant about eight chunks; a grain
    /// larger than the range is one chunk per participant's block. A range
    /// longer than [`MAX_RANGE_LEN`] is an [`Error::InvalidArgument`].
    ///
    /// **Nested calls run inline.** Called from work of this same pool (a
    /// share, a parallel-for body, a dispatched job), the body runs on the
    /// calling thread over the whole range in order, in chunks of `grain`
    /// (0: one chunk), with the calling thread's own participant index.
    pub fn parallel_for(
        &self,
        range: Range<usize>,
        grain: usize,
        body: impl Fn(Range<usize>) + Sync,
    ) -> Result<(), Error> {
        self.try_parallel_for(range, grain, |r| {
            body(r);
            Ok(())
        })
    }

    /// As [`parallel_for`](Self::parallel_for) for a body that reports
    /// failure with an error code: the first failure (or panic) stops all
    /// participants from taking new chunks and is returned.
    pub fn try_parallel_for(
        &self,
        range: Range<usize>,
        grain: usize,
        body: impl Fn(Range<usize>) -> Result<(), i32> + Sync,
    ) -> Result<(), Error> {
        self.parallel_for_with(range, grain, |r, _| body(r))
    }

    /// The general form of [`parallel_for`](Self::parallel_for): the body
    /// also gets the index of the participant running it (`0..participants`,
    /// for per-thread scratch space) and may fail with an error code.
    pub fn parallel_for_with(
        &self,
        range: Range<usize>,
        grain: usize,
        body: impl Fn(Range<usize>, usize) -> Result<(), i32> + Sync,
    ) -> Result<(), Error> {
        if range.start > range.end {
            return Err(Error::InvalidArgument(format!(
                "range start {} is after its end {}",
                range.start, range.end
            )));
        }
        let len = range.end - range.start;
        if len == 0 {
            return Ok(());
        }
        if len > MAX_RANGE_LEN {
            return Err(Error::InvalidArgument(format!(
                "range of {len} items is too long: the limit is {MAX_RANGE_LEN} (usize::MAX / 2 - 4096)"
            )));
        }
        if let Some(me) = self.nested_participant() {
            return self.parallel_for_inline(range, grain, me, body);
        }
        let parts = self.participants();
        // A chunk never crosses its block's end, so a grain above the
        // longest block changes nothing; capping it there keeps every
        // cursor below 2 * len + parts (each participant moves a cursor past
        // its block's end at most once), which MAX_RANGE_LEN keeps from
        // wrapping around, whatever grain the caller passed.
        let longest_block = len.div_ceil(parts);
        let grain = if grain == 0 {
            (len / (parts * 8)).max(1)
        } else {
            grain.min(longest_block)
        };
        let plan = StealPlan::new(len, parts, grain);
        let stop = AtomicBool::new(false);
        let share = |p: &Participant<'_>| {
            let mut result = Ok(());
            plan.for_each_chunk(p.index(), &stop, |chunk| {
                let r = catch_unwind(AssertUnwindSafe(|| {
                    body(
                        range.start + chunk.start..range.start + chunk.end,
                        p.index(),
                    )
                }));
                match r {
                    Ok(Ok(())) => true,
                    Ok(Err(code)) => {
                        result = Err(code);
                        stop.store(true, Ordering::Relaxed);
                        false
                    }
                    Err(payload) => {
                        stop.store(true, Ordering::Relaxed);
                        std::panic::resume_unwind(payload)
                    }
                }
            });
            result
        };
        self.fork_join(Task::Closure(&share), true)
    }

    /// A snapshot of the per-sphere counters.
    pub fn stats(&self) -> PoolStats {
        PoolStats::from_spheres(
            self.shared
                .slots
                .iter()
                .map(|s| SphereStats::read(&s.counters))
                .collect(),
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

/// Waits until every share of a fork-join has left its barrier (the join),
/// when dropped: on the normal path and while unwinding alike.
struct JoinAll<'a>(&'a SphereBarrier);

impl Drop for JoinAll<'_> {
    fn drop(&mut self) {
        self.0.wait_departed();
    }
}

/// Runs one share's task, catching its panic.
fn run_task(fork_join: &ForkJoin<'_>, index: usize, worker: Worker) -> Outcome {
    let participant = Participant {
        index,
        count: fork_join.participants,
        barrier: &fork_join.barrier,
    };
    let run = || match fork_join.task {
        Task::Closure(f) => f(&participant),
        Task::Raw(raw) => {
            let me = RawParticipant {
                index,
                count: fork_join.participants,
                internal: (&participant as *const Participant<'_>).cast(),
            };
            // SAFETY: promised by the creator of the RawTask.
            match unsafe { (raw.func)(raw.arg, &me) } {
                0 => Ok(()),
                code => Err(code),
            }
        }
    };
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(code)) => Err(Error::JobFailed { worker, code }),
        Err(payload) => Err(Error::Panicked {
            worker,
            message: panic_message(payload.as_ref()),
        }),
    }
}

/// A sphere's share of a fork-join: run it, record a failure, free the slot
/// for the next fork-join, then leave (the last touch of the record, which
/// the caller may drop right after). Returns when the share ended.
fn run_share_on(slot: &Slot<Job>, share: Share, sphere: usize, started: Instant) -> Instant {
    // SAFETY: the fork-join waits until this share has left before its
    // record goes away (see `JoinAll`).
    let fork_join = unsafe { &*share.fork_join };
    let outcome = run_task(fork_join, share.index, Worker::Sphere(sphere));
    let failed = outcome.is_err();
    if let Err(e) = outcome {
        fork_join.fail(e);
    }
    let ended = slot.release(failed, started);
    fork_join.barrier.leave();
    ended
}

fn run_job(job: Job, sphere: usize) -> Outcome {
    let worker = Worker::Sphere(sphere);
    match job {
        Job::Share(_) => unreachable!("fork-join shares run in run_share_on"),
        Job::Boxed(f) => catch_unwind(AssertUnwindSafe(f)).map_err(|payload| Error::Panicked {
            worker,
            message: panic_message(payload.as_ref()),
        }),
        Job::Raw(raw) => {
            // SAFETY: promised by the creator of the RawJob.
            match catch_unwind(|| unsafe { (raw.func)(raw.arg, sphere) }) {
                Ok(0) => Ok(()),
                Ok(code) => Err(Error::JobFailed { worker, code }),
                Err(payload) => Err(Error::Panicked {
                    worker,
                    message: panic_message(payload.as_ref()),
                }),
            }
        }
    }
}

fn sphere_main(shared: &Shared, index: usize, core: Option<core_affinity::CoreId>) {
    if let Some(core) = core {
        // Pinning is a hint: a sphere that cannot be pinned still serves.
        let _ = core_affinity::set_for_current(core);
    }
    CURRENT_SPHERE.set(Some((shared as *const Shared as usize, index)));
    let (count, all_started) = &shared.started;
    *count.lock() += 1;
    all_started.notify_all();
    let slot = &shared.slots[index];
    let mut spin = AdaptiveSpin::new(shared.config.max_spin, shared.yielding);
    let mut idle_since = Instant::now();
    while let Some((job, started)) = slot.next_job(&mut spin, idle_since) {
        idle_since = match job {
            Job::Share(share) => run_share_on(slot, share, index, started),
            other => slot.complete(run_job(other, index), started),
        };
    }
}

/// The block of each participant in a `parallel_for` and the cursors that
/// hand out its chunks, to the owner first and then to thieves.
struct StealPlan {
    len: usize,
    parts: usize,
    grain: usize,
    cursors: Box<[CachePadded<AtomicUsize>]>,
}

impl StealPlan {
    fn new(len: usize, parts: usize, grain: usize) -> Self {
        let cursors = (0..parts)
            .map(|p| CachePadded::new(AtomicUsize::new(Self::block_start(len, parts, p))))
            .collect();
        Self {
            len,
            parts,
            grain,
            cursors,
        }
    }

    fn block_start(len: usize, parts: usize, p: usize) -> usize {
        // u128 avoids overflow of len * p for huge ranges.
        (len as u128 * p as u128 / parts as u128) as usize
    }

    /// Calls `chunk` on chunks of this participant's block, then on chunks
    /// stolen from the others, until everything is taken, `stop` is set, or
    /// `chunk` returns false.
    fn for_each_chunk(
        &self,
        me: usize,
        stop: &AtomicBool,
        mut chunk: impl FnMut(Range<usize>) -> bool,
    ) {
        for victim in (me..self.parts).chain(0..me) {
            let end = Self::block_start(self.len, self.parts, victim + 1);
            let cursor = &self.cursors[victim];
            loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                // Claims beyond `end` are empty (see the overflow note in
                // `parallel_for_with`).
                let start = cursor.fetch_add(self.grain, Ordering::Relaxed);
                if start >= end {
                    break;
                }
                if !chunk(start..end.min(start + self.grain)) {
                    return;
                }
            }
        }
    }
}
