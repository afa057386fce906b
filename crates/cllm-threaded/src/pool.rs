//! C API of sphere pools (`cllm_pool_*`): persistent worker threads with
//! asynchronous hand-off, fork-join and parallel-for. See the `sphere-pool`
//! crate for the engine and its guarantees.

use crate::error::FfiError;
use crate::guard::{self, Handle, arg_ref, ffi_status, ffi_value, ns, out_ptr, write_out};
use crate::status::cllm_status;
use crate::{free_handle, with_handle};
use sphere_pool::{Error, Participant, PoolConfig, SmallJob, SpherePool, SphereStats};
use std::ffi::{CStr, c_char, c_int, c_void};
use std::time::Duration;

impl From<Error> for FfiError {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::InvalidArgument(_) | Error::SphereOutOfRange { .. } => {
                cllm_status::CLLM_ERR_INVALID_ARGUMENT
            }
            Error::Busy { .. } | Error::NoIdleSphere { .. } | Error::RoundInProgress => {
                cllm_status::CLLM_ERR_BUSY
            }
            Error::Timeout { .. } => cllm_status::CLLM_ERR_TIMEOUT,
            Error::Shutdown => cllm_status::CLLM_ERR_SHUTDOWN,
            Error::Spawn { .. } => cllm_status::CLLM_ERR_SPAWN,
            Error::Panicked { .. } => cllm_status::CLLM_ERR_PANIC,
            Error::JobFailed { .. } => cllm_status::CLLM_ERR_JOB_FAILED,
        };
        FfiError::new(status, e.to_string())
    }
}

/// A pool of persistent worker threads ("spheres"), named `cllm-sphere-<i>`.
/// Every function may be called from any thread, except `cllm_pool_free`,
/// which must not race with other calls on the same pool.
pub struct cllm_pool {
    pool: SpherePool,
}

// SAFETY: made only by Box::into_raw in cllm_pool_create, freed only by
// cllm_pool_free (which refuses while the pool is in use by a round);
// SpherePool is Sync.
unsafe impl Handle for cllm_pool {}

/// How to build a pool; fill it with `cllm_pool_options_default()`.
///
/// The pool's size, first setting that applies: `num_threads > 0` (spheres),
/// `total_threads > 0` (threads with the caller), the environment variable
/// `CLLM_NUM_THREADS` (threads with the caller), else one sphere per CPU
/// minus one (at least one). Its CPUs: `cpus`, else `CLLM_CPUS`, else
/// `pin_threads`. Bad values (here or in the environment) make
/// `cllm_pool_create` fail with `CLLM_ERR_INVALID_ARGUMENT`, the message
/// naming the field or variable.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct cllm_pool_options {
    /// Number of spheres. `<= 0`: "auto" (see `total_threads`); the calling
    /// thread is the last participant of fork-join work. At most 4096.
    pub num_threads: c_int,
    /// Pin sphere i to CPU (i + 1) % CPUs. Unpinned, a pool with more
    /// threads than CPUs moves its own spheres now and then (an affinity
    /// change, then their mask back) to keep them spread over the CPUs.
    pub pin_threads: bool,
    /// Longest busy-wait, in nanoseconds, before a waiting thread sleeps
    /// (default 200000, 200 us; 0: sleep at once; at most 1000000000, 1 s).
    pub max_spin_ns: u64,
    /// Threads of the pool, the calling thread included (`OMP_NUM_THREADS`'s
    /// meaning), used when `num_threads <= 0`: 1 makes a pool without
    /// spheres that runs every fork-join and parallel-for serially on the
    /// caller, with the same results. `<= 0`: `CLLM_NUM_THREADS` if set,
    /// else one per CPU. At most 4097. Setting it with `num_threads > 0` is
    /// an error.
    pub total_threads: c_int,
    /// CPUs to pin the spheres to, as a list such as `"0-3,8"` (ranges
    /// inclusive, no spaces, no CPU twice): sphere i runs on the list's
    /// entry (i + 1) mod its length. Every CPU must be one the process may
    /// run on. NULL: `CLLM_CPUS` if set, else as `pin_threads` says. Read
    /// during `cllm_pool_create` only.
    pub cpus: *const c_char,
}

/// Counters of one sphere (or their sum over the pool).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct cllm_sphere_stats {
    /// Jobs run, failed ones included.
    pub jobs: u64,
    /// Jobs that failed (non-zero return) or panicked.
    pub failures: u64,
    /// Nanoseconds spent running jobs.
    pub busy_ns: u64,
    /// Nanoseconds spent waiting for the jobs run so far.
    pub idle_ns: u64,
    /// Times the sphere went to sleep waiting for work.
    pub parks: u64,
    /// Jobs that found the sphere awake (no wake-up system call needed).
    pub spin_hits: u64,
    /// Parallel-for shares taken back because the sphere had not started
    /// them when the calling thread ran out of work.
    pub revoked: u64,
}

impl From<&SphereStats> for cllm_sphere_stats {
    fn from(s: &SphereStats) -> Self {
        Self {
            jobs: s.jobs,
            failures: s.failures,
            busy_ns: ns(s.busy),
            idle_ns: ns(s.idle),
            parks: s.parks,
            spin_hits: s.spin_hits,
            revoked: s.revoked,
        }
    }
}

/// A job for one sphere: `fn(arg, sphere)`; return 0 on success, any other
/// value is reported by the wait as `CLLM_ERR_JOB_FAILED`.
pub type cllm_job_fn = Option<unsafe extern "C" fn(arg: *mut c_void, sphere: usize) -> c_int>;

/// One participant of a fork-join (`cllm_pool_run_all`), valid only during
/// the call it is passed to.
#[repr(C)]
#[derive(Debug)]
pub struct cllm_participant {
    /// This participant: 0 .. count-1; the calling thread is count-1.
    pub index: usize,
    /// Participants: the spheres plus the calling thread.
    pub count: usize,
    /// Private to the library.
    pub internal_: *const c_void,
}

/// A fork-join share: `fn(arg, self)`; return 0 on success.
pub type cllm_task_fn =
    Option<unsafe extern "C" fn(arg: *mut c_void, participant: *const cllm_participant) -> c_int>;

/// A parallel-for body over `[begin, end)`, run by `participant`
/// (0 .. spheres); return 0 on success, non-zero stops the loop.
pub type cllm_range_fn = Option<
    unsafe extern "C" fn(arg: *mut c_void, begin: usize, end: usize, participant: usize) -> c_int,
>;

/// The C caller's `arg`, shared by every participant: the caller promised
/// (by passing it to a parallel call) that its function may use it from
/// several threads at once.
#[derive(Clone, Copy)]
struct SharedArg(*mut c_void);

impl SharedArg {
    /// The pointer; a method, so that closures capture the whole (Sync)
    /// wrapper rather than its raw-pointer field.
    fn get(self) -> *mut c_void {
        self.0
    }
}
// SAFETY: see above; the library itself never dereferences the pointer.
unsafe impl Send for SharedArg {}
// SAFETY: as above.
unsafe impl Sync for SharedArg {}

/// A C job as a [`SmallJob`]: the function and its argument travel in the
/// sphere's slot, so a dispatch allocates nothing.
fn c_job(job: unsafe extern "C" fn(*mut c_void, usize) -> c_int, arg: *mut c_void) -> SmallJob {
    let arg = SharedArg(arg);
    SmallJob::new(move |sphere| {
        // SAFETY: the caller of the dispatch promised that `job(arg,
        // sphere)` may run on a sphere, `arg` valid until the wait.
        match unsafe { job(arg.get(), sphere) } {
            0 => Ok(()),
            code => Err(code),
        }
    })
}

/// The default options: automatic thread count, no pinning, 200 us spin.
#[unsafe(no_mangle)]
pub extern "C" fn cllm_pool_options_default() -> cllm_pool_options {
    let defaults = PoolConfig::default();
    cllm_pool_options {
        num_threads: 0,
        pin_threads: defaults.pin,
        max_spin_ns: ns(defaults.max_spin),
        total_threads: 0,
        cpus: std::ptr::null(),
    }
}

/// The longest spin a pool may be given: 1 s.
const MAX_SPIN_NS: u64 = 1_000_000_000;

/// # Safety
/// `options.cpus` is NULL or a NUL-terminated string.
unsafe fn config_from(options: &cllm_pool_options) -> Result<PoolConfig, FfiError> {
    if options.num_threads > 0 && options.total_threads > 0 {
        return Err(FfiError::invalid(format!(
            "num_threads {} (spheres) and total_threads {} (threads with the caller) are both \
             set; set one",
            options.num_threads, options.total_threads
        )));
    }
    let spheres = if options.num_threads > 0 {
        sphere_pool::resolve_spheres(i64::from(options.num_threads))?
    } else {
        0 // "auto": resolved by the engine from total_threads or the environment
    };
    if options.max_spin_ns > MAX_SPIN_NS {
        return Err(FfiError::invalid(format!(
            "max_spin_ns {} is above the limit of {MAX_SPIN_NS} (1 s)",
            options.max_spin_ns
        )));
    }
    // SAFETY: promised by the caller.
    let cpus = match unsafe { options.cpus.as_ref() } {
        None => None,
        Some(_) => {
            // SAFETY: a non-NULL `cpus` is a NUL-terminated string.
            let text = unsafe { CStr::from_ptr(options.cpus) }
                .to_str()
                .map_err(|_| FfiError::invalid("cpus is not valid UTF-8".to_owned()))?;
            Some(
                sphere_pool::env::parse_cpu_list(text)
                    .map_err(|why| FfiError::invalid(format!("cpus {text:?}: {why}")))?,
            )
        }
    };
    Ok(PoolConfig {
        spheres,
        threads: usize::try_from(options.total_threads).unwrap_or(0),
        pin: options.pin_threads,
        cpus,
        max_spin: Duration::from_nanos(options.max_spin_ns),
        ..PoolConfig::default()
    })
}

/// Creates a pool and starts its threads; `*out` receives it on success.
/// `options` may be NULL for the defaults (which read `CLLM_NUM_THREADS`
/// and `CLLM_CPUS`). Errors: `CLLM_ERR_NULL` (out),
/// `CLLM_ERR_INVALID_ARGUMENT` (more than 4096 spheres, spin too long, a
/// bad CPU list or thread count in the options or the environment),
/// `CLLM_ERR_SPAWN` (the system refused a thread; nothing is leaked).
///
/// # Safety
/// `options` is NULL or points to a `cllm_pool_options` whose `cpus` is
/// NULL or a NUL-terminated string; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_pool_create(
    options: *const cllm_pool_options,
    out: *mut *mut cllm_pool,
) -> cllm_status {
    ffi_status(|| {
        let out = out_ptr(out, "out")?;
        // SAFETY: the caller passes NULL or valid options.
        let options = unsafe { options.as_ref() }
            .copied()
            .unwrap_or_else(|| cllm_pool_options_default());
        // SAFETY: the caller passes options whose `cpus` is NULL or a string.
        let pool = SpherePool::with_config(unsafe { config_from(&options) }?)?;
        // SAFETY: `out` was checked and is writable.
        unsafe { write_out(out, Box::into_raw(Box::new(cllm_pool { pool }))) };
        Ok(())
    })
}

/// Stops the pool: each sphere finishes the job it holds, then every thread
/// is joined. NULL is a no-op. Called from a job given with
/// `cllm_pool_dispatch`, it joins the other threads and lets the calling one
/// end after its job.
///
/// Freeing is REFUSED while a fork-join round of the pool runs (from a
/// `cllm_pool_run_all` share, a `cllm_pool_parallel_for` body, or any
/// thread during a round) and from inside a nested call of the pool: the
/// round's caller still uses the pool when the round ends. A refused free
/// does nothing (the pool stays valid, free it after the round returns) and
/// leaves the reason in `cllm_last_error()`.
///
/// # Safety
/// `pool` is NULL or a pool from `cllm_pool_create`, not used after a free
/// that was not refused.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_pool_free(pool: *mut cllm_pool) {
    if pool.is_null() {
        return;
    }
    let refused = with_handle!(pool, |p| {
        p.pool.check_drop().map_err(|_| {
            FfiError::new(
                cllm_status::CLLM_ERR_BUSY,
                "cllm_pool_free refused: a fork-join round of this pool is running \
                 (run_all or parallel_for; free it after the round returns); the pool is unchanged"
                    .to_owned(),
            )
        })
    }) != cllm_status::CLLM_OK;
    if !refused {
        free_handle!(pool);
    }
}

/// Writes the number of spheres to `*out`: 0 for a pool of one thread
/// (everything runs on the caller; no sphere index is valid).
///
/// # Safety
/// `pool` is NULL or a live pool; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_pool_num_spheres(
    pool: *const cllm_pool,
    out: *mut usize,
) -> cllm_status {
    with_handle!(pool, |h| {
        let out = out_ptr(out, "out")?;
        let spheres = h.pool.spheres();
        // SAFETY: checked above.
        unsafe { write_out(out, spheres) };
        Ok(())
    })
}

/// Hands `job(arg, sphere)` to `sphere` and returns at once. Errors:
/// `CLLM_ERR_BUSY` if the sphere's last job was not waited for or a
/// fork-join round is running on the pool (also from inside the round),
/// `CLLM_ERR_INVALID_ARGUMENT` for a sphere out of range, `CLLM_ERR_NULL`.
/// No allocation or system call when the sphere is awake.
///
/// # Safety
/// `pool` is NULL or a live pool; `job(arg, sphere)` must be safe to run on
/// the sphere's thread, and `arg` valid until the job was waited for.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_pool_dispatch(
    pool: *const cllm_pool,
    sphere: usize,
    job: cllm_job_fn,
    arg: *mut c_void,
) -> cllm_status {
    with_handle!(pool, |h| {
        let pool = &h.pool;
        let job = job.ok_or_else(|| FfiError::null("job"))?;
        pool.dispatch_small(sphere, c_job(job, arg))?;
        Ok(())
    })
}

/// Hands `job(arg, sphere)` to an idle sphere and returns at once, writing
/// its index to `*out_sphere` (wait for the job with `cllm_pool_wait` on
/// that index). Never blocks: `CLLM_ERR_BUSY` if every sphere holds a job
/// that was not waited for, or a fork-join round is running (nothing is
/// dispatched; wait for one and try again). The search starts after the
/// sphere picked last, so jobs spread over the pool. Errors also:
/// `CLLM_ERR_NULL` (pool, job, out_sphere), `CLLM_ERR_INVALID_ARGUMENT` for a
/// pool without spheres (one thread), `CLLM_ERR_SHUTDOWN`.
///
/// # Safety
/// `pool` is NULL or a live pool; `job(arg, sphere)` must be safe to run on
/// a sphere's thread, and `arg` valid until the job was waited for;
/// `out_sphere` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_pool_dispatch_any(
    pool: *const cllm_pool,
    job: cllm_job_fn,
    arg: *mut c_void,
    out_sphere: *mut usize,
) -> cllm_status {
    with_handle!(pool, |h| {
        let out = out_ptr(out_sphere, "out_sphere")?;
        let pool = &h.pool;
        let job = job.ok_or_else(|| FfiError::null("job"))?;
        let sphere = pool.dispatch_any_small(c_job(job, arg))?;
        // SAFETY: checked above.
        unsafe { write_out(out, sphere) };
        Ok(())
    })
}

/// Waits for `sphere`'s job to end and returns its status: `CLLM_OK`,
/// `CLLM_ERR_JOB_FAILED` (non-zero return, the code in the message) or
/// `CLLM_ERR_PANIC`. A sphere given nothing returns `CLLM_OK` at once.
///
/// # Safety
/// `pool` is NULL or a live pool.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_pool_wait(pool: *const cllm_pool, sphere: usize) -> cllm_status {
    with_handle!(pool, |h| {
        h.pool.wait(sphere)?;
        Ok(())
    })
}

/// As `cllm_pool_wait`, giving up after `timeout_ns` nanoseconds with
/// `CLLM_ERR_TIMEOUT`; the job goes on and can be waited for again.
/// `CLLM_WAIT_FOREVER` (`UINT64_MAX`) waits as `cllm_pool_wait` does.
///
/// # Safety
/// `pool` is NULL or a live pool.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_pool_wait_timeout(
    pool: *const cllm_pool,
    sphere: usize,
    timeout_ns: u64,
) -> cllm_status {
    with_handle!(pool, |h| {
        match guard::timeout_ns(timeout_ns) {
            Some(timeout) => h.pool.wait_timeout(sphere, timeout)?,
            None => h.pool.wait(sphere)?,
        }
        Ok(())
    })
}

/// Writes to `*out` whether `sphere` holds a job that was not waited for.
///
/// # Safety
/// `pool` is NULL or a live pool; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_pool_is_busy(
    pool: *const cllm_pool,
    sphere: usize,
    out: *mut bool,
) -> cllm_status {
    with_handle!(pool, |h| {
        let out = out_ptr(out, "out")?;
        let busy = h.pool.is_busy(sphere)?;
        // SAFETY: checked above.
        unsafe { write_out(out, busy) };
        Ok(())
    })
}

/// Runs `task(arg, participant)` once on every sphere and once on the calling
/// thread (the last participant), returning when all have finished. The
/// first failure is returned after all ended (`CLLM_ERR_JOB_FAILED`,
/// `CLLM_ERR_PANIC`); `CLLM_ERR_BUSY` (nothing run) if a sphere holds a job
/// that was not waited for or another thread's round is running on the
/// pool. Inside `task`, `cllm_participant_barrier` synchronises the
/// participants.
///
/// Nested calls run inline: called from work of the same pool (a share, a
/// parallel-for body, a dispatched job), `task` runs once, serially, on the
/// calling thread, with `index` 0 and `count` 1 (its barrier passes at
/// once), as OpenMP runs a nested parallel region.
///
/// # Safety
/// `pool` is NULL or a live pool; `task` must be safe to run concurrently on
/// every participant with the same `arg`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_pool_run_all(
    pool: *const cllm_pool,
    task: cllm_task_fn,
    arg: *mut c_void,
) -> cllm_status {
    with_handle!(pool, |h| {
        let pool = &h.pool;
        let task = task.ok_or_else(|| FfiError::null("task"))?;
        let arg = SharedArg(arg);
        // Two words (the function and its argument), stored in the round's
        // record: the spheres read nothing else of ours to start.
        pool.try_run_all(move |p: &Participant<'_>| {
            let me = cllm_participant {
                index: p.index(),
                count: p.count(),
                internal_: (p as *const Participant<'_>).cast(),
            };
            // SAFETY: the caller of `cllm_pool_run_all` promised that
            // `task` may run on every participant with `arg`.
            match unsafe { task(arg.get(), &me) } {
                0 => Ok(()),
                code => Err(code),
            }
        })?;
        Ok(())
    })
}

/// Waits inside `cllm_pool_run_all` until every participant that has not
/// returned yet arrives (a participant that returns no longer counts).
/// Writes to `*is_leader` (may be NULL) whether this caller arrived last.
/// `CLLM_ERR_BARRIER_BROKEN` if another participant failed: return then.
///
/// # Safety
/// `participant` is NULL or the pointer passed to the running task.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_participant_barrier(
    participant: *const cllm_participant,
    is_leader: *mut bool,
) -> cllm_status {
    ffi_status(|| {
        // SAFETY: the caller passes the participant it was given.
        let me = unsafe { arg_ref(participant, "participant") }?;
        if me.internal_.is_null() {
            return Err(FfiError::null("participant->internal_"));
        }
        // SAFETY: `internal_` points to the live `Participant` of this share.
        let p = unsafe { &*me.internal_.cast::<Participant<'_>>() };
        let leader = p.try_barrier().map_err(|broken| {
            FfiError::new(cllm_status::CLLM_ERR_BARRIER_BROKEN, broken.to_string())
        })?;
        if !is_leader.is_null() {
            // SAFETY: a non-NULL `is_leader` is writable.
            unsafe { write_out(is_leader, leader) };
        }
        Ok(())
    })
}

/// Calls `body(arg, b, e, participant)` on sub-ranges `[b, e)` that together
/// cover `[begin, end)` exactly once, spread over the spheres and the calling
/// thread with work stealing. `grain` is the largest chunk a participant
/// takes at once (0: automatic; any larger value, SIZE_MAX included, is
/// valid). A non-zero return stops the loop and is returned as
/// `CLLM_ERR_JOB_FAILED`. Errors: `CLLM_ERR_INVALID_ARGUMENT` if `begin >
/// end` or the range is longer than SIZE_MAX / 2 - 4096 items (the limit
/// keeps the work-stealing cursors from wrapping around).
///
/// Nested calls run inline: called from work of the same pool (a share, a
/// parallel-for body, a dispatched job), `body` runs on the calling thread
/// over the whole range in order, in chunks of `grain` (0: one chunk), with
/// the calling thread's own `participant` index.
///
/// # Safety
/// `pool` is NULL or a live pool; `body` must be safe to run concurrently with
/// the same `arg`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_pool_parallel_for(
    pool: *const cllm_pool,
    begin: usize,
    end: usize,
    grain: usize,
    body: cllm_range_fn,
    arg: *mut c_void,
) -> cllm_status {
    with_handle!(pool, |h| {
        let pool = &h.pool;
        let body = body.ok_or_else(|| FfiError::null("body"))?;
        if begin > end {
            return Err(FfiError::invalid(format!(
                "begin {begin} is after end {end}"
            )));
        }
        let arg = SharedArg(arg);
        pool.parallel_for_with(begin..end, grain, |r, participant| {
            // SAFETY: the caller promised `body` may run concurrently.
            match unsafe { body(arg.get(), r.start, r.end, participant) } {
                0 => Ok(()),
                code => Err(code),
            }
        })?;
        Ok(())
    })
}

/// Writes the counters of `sphere` to `*out`.
///
/// # Safety
/// `pool` is NULL or a live pool; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_pool_sphere_stats(
    pool: *const cllm_pool,
    sphere: usize,
    out: *mut cllm_sphere_stats,
) -> cllm_status {
    with_handle!(pool, |h| {
        let out = out_ptr(out, "out")?;
        let pool = &h.pool;
        let stats = pool.stats();
        let one = stats.spheres.get(sphere).ok_or_else(|| {
            FfiError::from(Error::SphereOutOfRange {
                sphere,
                spheres: pool.spheres(),
            })
        })?;
        // SAFETY: checked above.
        unsafe { write_out(out, one.into()) };
        Ok(())
    })
}

/// Writes the sum of every sphere's counters to `*out`.
///
/// # Safety
/// `pool` is NULL or a live pool; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_pool_total_stats(
    pool: *const cllm_pool,
    out: *mut cllm_sphere_stats,
) -> cllm_status {
    with_handle!(pool, |h| {
        let out = out_ptr(out, "out")?;
        let total = h.pool.stats().total;
        // SAFETY: checked above.
        unsafe { write_out(out, (&total).into()) };
        Ok(())
    })
}

/// The number of CPUs this process may run on (at least 1).
#[unsafe(no_mangle)]
pub extern "C" fn cllm_available_cores() -> usize {
    ffi_value(|_| 1, || Ok(thread_support::available_cores()))
}

/// The most bytes a partial value of `cllm_pool_reduce` may have.
pub const CLLM_REDUCE_MAX_PARTIAL: usize = 65536;

/// A map of `cllm_pool_reduce`: writes the partial value of the items
/// `[begin, end)` to `partial` (which holds a copy of the identity on
/// entry); return 0 on success, non-zero stops the reduction.
pub type cllm_reduce_map_fn = Option<
    unsafe extern "C" fn(arg: *mut c_void, begin: usize, end: usize, partial: *mut c_void) -> c_int,
>;

/// A combine of `cllm_pool_reduce`: folds `right` into `left` (`left =
/// left (+) right`, `left` covering the items before `right`'s); return 0
/// on success, non-zero stops the reduction.
pub type cllm_reduce_combine_fn = Option<
    unsafe extern "C" fn(arg: *mut c_void, left: *mut c_void, right: *const c_void) -> c_int,
>;

/// A partial value of a C reduction: `partial_size` bytes, 16-aligned.
struct Partial(Vec<Block>);

#[repr(C, align(16))]
#[derive(Clone, Copy)]
struct Block([u8; 16]);

impl Partial {
    /// A partial holding a copy of the `size` bytes at `identity`.
    ///
    /// # Safety
    /// `identity` points to `size` readable bytes.
    unsafe fn copy_of(identity: *const c_void, size: usize) -> Self {
        let mut blocks = vec![Block([0; 16]); size.div_ceil(16)];
        // SAFETY: promised by the caller; the blocks hold at least `size`
        // bytes and do not overlap the caller's memory.
        unsafe {
            std::ptr::copy_nonoverlapping(identity.cast::<u8>(), blocks.as_mut_ptr().cast(), size)
        };
        Self(blocks)
    }

    fn ptr(&mut self) -> *mut c_void {
        self.0.as_mut_ptr().cast()
    }
}

/// Map-reduce over `[begin, end)` with a fixed combination order: the
/// result has the same bits for any number of threads and any timing. The
/// range is cut into chunks of `chunk` items (0: 4096), independent of the
/// pool; `map(arg, b, e, partial)` computes each chunk's partial value (in
/// parallel), and the partials are combined with `combine(arg, left,
/// right)` as a fixed binary tree over the chunk indices (a node over
/// chunks `[lo, hi)` combines `[lo, mid)` and `[mid, hi)`, `mid = lo + (hi
/// - lo) / 2`). Partial values are `partial_size` bytes (1 to 65536,
/// 16-byte aligned, owned by the library); each starts as a copy of
/// `*identity`, and the result of an empty range is the identity. On
/// success the result is copied to `*out` (`partial_size` bytes).
///
/// Errors: `CLLM_ERR_NULL` (pool, identity, map, combine, out),
/// `CLLM_ERR_INVALID_ARGUMENT` (`begin > end`, a size of 0 or above
/// 65536), `CLLM_ERR_JOB_FAILED` (a non-zero return of `map` or
/// `combine`), `CLLM_ERR_BUSY` (another thread's round is running). Called
/// from work of the same pool, it runs inline on the calling thread with
/// the same result.
///
/// # Safety
/// `pool` is NULL or a live pool; `identity` and `out` are NULL or point to
/// `partial_size` bytes (readable, writable); `map` and `combine` must be
/// safe to run concurrently with the same `arg`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn cllm_pool_reduce(
    pool: *const cllm_pool,
    begin: usize,
    end: usize,
    chunk: usize,
    partial_size: usize,
    identity: *const c_void,
    map: cllm_reduce_map_fn,
    combine: cllm_reduce_combine_fn,
    arg: *mut c_void,
    out: *mut c_void,
) -> cllm_status {
    with_handle!(pool, |h| {
        let out = out_ptr(out, "out")?;
        let pool = &h.pool;
        if identity.is_null() {
            return Err(FfiError::null("identity"));
        }
        let map = map.ok_or_else(|| FfiError::null("map"))?;
        let combine = combine.ok_or_else(|| FfiError::null("combine"))?;
        if !(1..=CLLM_REDUCE_MAX_PARTIAL).contains(&partial_size) {
            return Err(FfiError::invalid(format!(
                "partial_size {partial_size} is not 1 to {CLLM_REDUCE_MAX_PARTIAL}"
            )));
        }
        if begin > end {
            return Err(FfiError::invalid(format!(
                "begin {begin} is after end {end}"
            )));
        }
        let (arg, identity) = (SharedArg(arg), SharedArg(identity.cast_mut()));
        // SAFETY: `identity` points to `partial_size` bytes (promised).
        let fresh = || unsafe { Partial::copy_of(identity.get(), partial_size) };
        let mut result = pool.try_reduce(
            begin..end,
            chunk,
            fresh(),
            |r| {
                let mut partial = fresh();
                // SAFETY: the caller promised `map` may run concurrently;
                // `partial` holds `partial_size` writable bytes.
                match unsafe { map(arg.get(), r.start, r.end, partial.ptr()) } {
                    0 => Ok(partial),
                    code => Err(code),
                }
            },
            |mut left, mut right| {
                // SAFETY: as above; both partials hold `partial_size` bytes.
                match unsafe { combine(arg.get(), left.ptr(), right.ptr()) } {
                    0 => Ok(left),
                    code => Err(code),
                }
            },
        )?;
        // SAFETY: `out` points to `partial_size` writable bytes (promised).
        unsafe {
            std::ptr::copy_nonoverlapping(result.ptr().cast::<u8>(), out.cast::<u8>(), partial_size)
        };
        Ok(())
    })
}

/// The sum of `data[0 .. n)` with a fixed order, written to `*out`: the
/// same bits for any number of threads and any timing (chunks of 4096
/// values, each summed in eight interleaved lanes, combined as a fixed
/// tree; see `cllm_pool_reduce`). It may differ in the last bits from a
/// plain left-to-right loop, as any reordering of floating-point additions
/// does. `data` may be NULL when `n` is 0. Errors: `CLLM_ERR_NULL`,
/// `CLLM_ERR_INVALID_ARGUMENT` (n above SIZE_MAX / 16), `CLLM_ERR_BUSY`.
///
/// # Safety
/// `pool` is NULL or a live pool; `data` points to `n` readable doubles that
/// nobody writes during the call; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_pool_reduce_sum_double(
    pool: *const cllm_pool,
    data: *const f64,
    n: usize,
    out: *mut f64,
) -> cllm_status {
    with_handle!(pool, |h| {
        let out = out_ptr(out, "out")?;
        let pool = &h.pool;
        let data: &[f64] = if n == 0 {
            &[]
        } else if data.is_null() {
            return Err(FfiError::null("data"));
        } else if n > usize::MAX / 16 {
            return Err(FfiError::invalid(format!(
                "n {n} is above SIZE_MAX / 16 doubles"
            )));
        } else {
            // SAFETY: `data` points to `n` doubles not written during the
            // call (promised); n * 8 fits in isize (checked above).
            unsafe { std::slice::from_raw_parts(data, n) }
        };
        let sum = pool.sum_f64(data)?;
        // SAFETY: checked above.
        unsafe { write_out(out, sum) };
        Ok(())
    })
}
