//! C API of the role pools, `cllm_roles_*`: the walker plan's five pools
//! (ai, physics, stats, background, evaluation) sharing one thread budget,
//! with bounded queues, metrics, health, resizing, balancing and a
//! parallel-for over agents. Tasks are in `task.rs` (`cllm_task_*`), the
//! periodic scheduler in `sched.rs` (`cllm_roles_sched_*`). See the
//! `pool-manager` crate for the engine and its guarantees. The C enums and
//! structs are in `roles/types.rs`.

mod types;

use types::PartitionKind;
pub use types::{
    CLLM_DRAIN_DROP, CLLM_DRAIN_FINISH, CLLM_PARTITION_CONTIGUOUS, CLLM_PARTITION_DYNAMIC,
    CLLM_PARTITION_INTERLEAVED, CLLM_ROLE_AI, CLLM_ROLE_BACKGROUND, CLLM_ROLE_COUNT,
    CLLM_ROLE_EVALUATION, CLLM_ROLE_NONE, CLLM_ROLE_PHYSICS, CLLM_ROLE_STATS, cllm_drain,
    cllm_index_fn, cllm_partition, cllm_role, cllm_role_metrics, cllm_role_task_fn,
    cllm_roles_options, cllm_shutdown_report, cllm_stuck_task, cllm_thread_move,
};

use crate::error::FfiError;
use crate::error::enum_arg;
use crate::frame::cllm_frame_monitor_inputs;
use crate::guard::{CLLM_WAIT_FOREVER, Handle, ns, out_ptr, write_out};
use crate::status::cllm_status;
use crate::task::cllm_task;
use crate::{free_handle, with_handle};
use pool_manager::{
    Backpressure, DrainPolicy, Error, Partitioning, Role, Runtime, RuntimeConfig, SubmitError,
    SubmitOptions,
};
use std::ffi::{c_char, c_void};
use std::time::Duration;

/// The five role pools of the walker plan and their periodic scheduler.
/// Every function may be called from any thread, except `cllm_roles_free`,
/// which must not race with other calls on the same handle.
pub struct cllm_roles {
    rt: Runtime,
}

// SAFETY: made only by Box::into_raw in cllm_roles_create*, freed only by
// cllm_roles_free; Runtime is Sync.
unsafe impl Handle for cllm_roles {}

impl cllm_roles {
    /// The role pools (for the other files' entry points and glue).
    pub(crate) fn runtime(&self) -> &Runtime {
        &self.rt
    }
}

/// The C caller's `arg`: the caller promised (by passing it) that its
/// function may use it from another thread, or several at once for a loop.
#[derive(Clone, Copy)]
pub(crate) struct SharedArg(pub(crate) *mut c_void);
// SAFETY: see above; the library itself never dereferences the pointer.
unsafe impl Send for SharedArg {}
// SAFETY: as above.
unsafe impl Sync for SharedArg {}

impl SharedArg {
    /// The pointer (a method, so closures capture the whole `SharedArg`).
    pub(crate) fn get(self) -> *mut c_void {
        self.0
    }
}

/// A nanosecond option: 0 keeps the default.
fn ns_option(value: u64) -> Option<Duration> {
    (value > 0).then(|| Duration::from_nanos(value))
}

impl From<Error> for FfiError {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::Config(_) => cllm_status::CLLM_ERR_CONFIG,
            Error::InvalidArgument(_) => cllm_status::CLLM_ERR_INVALID_ARGUMENT,
            Error::Spawn(_) => cllm_status::CLLM_ERR_SPAWN,
            Error::Shutdown => cllm_status::CLLM_ERR_SHUTDOWN,
        };
        let message = match e {
            Error::Config(c) => c.to_string(),
            other => other.to_string(),
        };
        FfiError::new(status, message)
    }
}

impl From<SubmitError> for FfiError {
    fn from(e: SubmitError) -> Self {
        let status = match &e {
            SubmitError::Full { .. } => cllm_status::CLLM_ERR_FULL,
            SubmitError::Timeout { .. } => cllm_status::CLLM_ERR_TIMEOUT,
            SubmitError::Shutdown { .. } => cllm_status::CLLM_ERR_SHUTDOWN,
        };
        FfiError::new(status, e.to_string())
    }
}

/// The defaults: budget = cores, sizes from the plan's ratios, queues of
/// 1024, stuck after 5 s, heartbeat 1 s, shutdown deadline 5 s.
#[unsafe(no_mangle)]
pub extern "C" fn cllm_roles_options_default() -> cllm_roles_options {
    cllm_roles_options {
        thread_budget: 0,
        threads: [-1; CLLM_ROLE_COUNT],
        queue_capacity: 0,
        stuck_task_ns: 0,
        heartbeat_ns: 0,
        shutdown_deadline_ns: 0,
        cpus: [std::ptr::null(); CLLM_ROLE_COUNT],
    }
}

/// A pool's CPU list from its C string (NULL: not pinned).
///
/// # Safety
/// `text` is NULL or a NUL-terminated string.
unsafe fn cpus_from(text: *const c_char, role: Role) -> Result<Option<Vec<usize>>, FfiError> {
    if text.is_null() {
        return Ok(None);
    }
    let field = format!("cpus[CLLM_ROLE_{}]", role.name().to_ascii_uppercase());
    // SAFETY: promised by the caller; not NULL.
    let text = unsafe { std::ffi::CStr::from_ptr(text) }
        .to_str()
        .map_err(|_| FfiError::invalid(format!("{field} is not valid UTF-8")))?;
    sphere_pool::env::parse_cpu_list(text)
        .map(Some)
        .map_err(|why| FfiError::invalid(format!("{field} {text:?}: {why}")))
}

/// # Safety
/// Each of `o.cpus` is NULL or a NUL-terminated string.
unsafe fn config_from(o: &cllm_roles_options) -> Result<RuntimeConfig, FfiError> {
    let mut c = RuntimeConfig::default();
    if o.thread_budget > 0 {
        c.thread_budget = Some(o.thread_budget as usize);
    }
    for role in Role::ALL {
        let n = o.threads[role.index()];
        c.pool_mut(role).threads = (n >= 0).then_some(n as usize);
        if o.queue_capacity > 0 {
            c.pool_mut(role).queue_capacity = o.queue_capacity as usize;
        }
        if let Some(d) = ns_option(o.stuck_task_ns) {
            c.pool_mut(role).stuck_after = d;
        }
        // SAFETY: promised by the caller.
        c.pool_mut(role).cpus = unsafe { cpus_from(o.cpus[role.index()], role) }?;
    }
    if let Some(d) = ns_option(o.heartbeat_ns) {
        c.heartbeat = d;
    }
    if let Some(d) = ns_option(o.shutdown_deadline_ns) {
        c.shutdown_deadline = d;
    }
    // Config errors from options are argument errors; from the environment
    // they are CLLM_ERR_CONFIG.
    c.validate().map_err(|e| FfiError::invalid(e.to_string()))?;
    Ok(c)
}

fn create(config: RuntimeConfig, out: *mut *mut cllm_roles) -> Result<(), FfiError> {
    let rt = Runtime::new(config)?;
    // SAFETY: `out` was checked by out_ptr.
    unsafe { write_out(out, Box::into_raw(Box::new(cllm_roles { rt }))) };
    Ok(())
}

/// Starts the role pools as `options` say (NULL: the defaults) and writes
/// the handle to `*out`. Errors: `CLLM_ERR_NULL` (out),
/// `CLLM_ERR_INVALID_ARGUMENT` (a size above 4096, a time too large, a bad
/// CPU list: the message names the field), `CLLM_ERR_SPAWN`.
///
/// # Safety
/// `options` is NULL or points to a `cllm_roles_options` whose `cpus` are
/// NULL or NUL-terminated strings; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_roles_create(
    options: *const cllm_roles_options,
    out: *mut *mut cllm_roles,
) -> cllm_status {
    crate::guard::ffi_status(|| {
        let out = out_ptr(out, "out")?;
        // SAFETY: the caller promises `options` is NULL or valid.
        let options = unsafe { options.as_ref() }
            .copied()
            .unwrap_or_else(|| cllm_roles_options_default());
        // SAFETY: the caller promises the `cpus` strings are NULL or valid.
        create(unsafe { config_from(&options) }?, out)
    })
}

/// Starts the role pools with the defaults and the environment variables
/// `ENABLE_PARALLEL_AI`, `ENABLE_PARALLEL_STATS`,
/// `ENABLE_BACKGROUND_PROCESSING` (true/false/1/0/yes/no), `MAX_AI_THREADS`,
/// `MAX_STATS_THREADS`, `CLLM_PHYSICS_THREADS`, `CLLM_BACKGROUND_THREADS`,
/// `CLLM_EVALUATION_THREADS` (sizes, 0 = off), `CLLM_THREAD_BUDGET`,
/// `CLLM_QUEUE_CAPACITY`, `CLLM_STUCK_TASK_MS`. A bad value fails with
/// `CLLM_ERR_CONFIG`; `cllm_last_error()` names the variable and the value.
///
/// # Safety
/// `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_roles_create_from_env(out: *mut *mut cllm_roles) -> cllm_status {
    crate::guard::ffi_status(|| {
        let out = out_ptr(out, "out")?;
        let config = RuntimeConfig::from_env()
            .map_err(|e| FfiError::new(cllm_status::CLLM_ERR_CONFIG, e.to_string()))?;
        create(config, out)
    })
}

/// Shuts the pools down (queued tasks run until the configured deadline;
/// see `cllm_roles_shutdown`), joins the threads and frees the handle. NULL
/// does nothing. Task handles stay valid (free them separately); tasks that
/// were never run report `CLLM_ERR_CANCELLED`.
///
/// # Safety
/// `roles` is NULL or a handle from `cllm_roles_create*`, not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_roles_free(roles: *mut cllm_roles) {
    free_handle!(roles)
}

/// Writes the thread budget and the worker threads alive in all pools now.
///
/// # Safety
/// `roles` is NULL or a live handle; the outputs are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_roles_threads(
    roles: *const cllm_roles,
    out_budget: *mut usize,
    out_threads: *mut usize,
) -> cllm_status {
    with_handle!(roles, |r| {
        let (b, t) = (
            out_ptr(out_budget, "out_budget")?,
            out_ptr(out_threads, "out_threads")?,
        );
        // SAFETY: checked above.
        unsafe {
            write_out(b, r.rt.budget());
            write_out(t, r.rt.threads());
        }
        Ok(())
    })
}

/// Submits `func(arg)` to `role`'s pool with a priority (higher runs first)
/// and a back-pressure choice: `timeout_ns` 0 fails at once with
/// `CLLM_ERR_FULL` when the queue is full, `CLLM_WAIT_FOREVER` waits while it
/// is full, any other value waits that long, then fails with
/// `CLLM_ERR_TIMEOUT`. On success writes a task handle to `*out`. On a pool
/// that is off, `func` runs now on this thread. Other errors:
/// `CLLM_ERR_NULL`, `CLLM_ERR_INVALID_ARGUMENT` (unknown role),
/// `CLLM_ERR_SHUTDOWN`. `arg` must stay valid until the task has run (or
/// the pools were freed).
///
/// # Safety
/// `roles` is NULL or a live handle; `func(arg)` may be called once from a
/// worker thread; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_roles_submit_ex(
    roles: *const cllm_roles,
    role: cllm_role,
    priority: i32,
    timeout_ns: u64,
    func: cllm_role_task_fn,
    arg: *mut c_void,
    out: *mut *mut cllm_task,
) -> cllm_status {
    let backpressure = Ok(match timeout_ns {
        CLLM_WAIT_FOREVER => Backpressure::Block,
        0 => Backpressure::Reject,
        t => Backpressure::Timeout(Duration::from_nanos(t)),
    });
    // SAFETY: the caller's contract, passed on.
    unsafe { submit(roles, role, priority, backpressure, func, arg, out) }
}

/// The submit functions' body; `backpressure` is checked after the other
/// arguments, so that their errors come first as in every submit function.
///
/// # Safety
/// As `cllm_roles_submit_ex`.
unsafe fn submit(
    roles: *const cllm_roles,
    role: cllm_role,
    priority: i32,
    backpressure: Result<Backpressure, FfiError>,
    func: cllm_role_task_fn,
    arg: *mut c_void,
    out: *mut *mut cllm_task,
) -> cllm_status {
    with_handle!(roles, |r| {
        let func = func.ok_or_else(|| FfiError::null("func"))?;
        let out = out_ptr(out, "out")?;
        let role: Role = enum_arg(role, "role")?;
        let backpressure = backpressure?;
        let arg = SharedArg(arg);
        let handle = r.rt.pool(role).submit_with(
            SubmitOptions {
                priority,
                backpressure,
            },
            move || {
                // SAFETY: the submitter promised that fn(arg) may run on this thread.
                match unsafe { func(arg.get()) } {
                    0 => Ok(()),
                    code => Err(format!("C task returned {code}")),
                }
            },
        )?;
        // SAFETY: `out` was checked by out_ptr.
        unsafe { write_out(out, cllm_task::into_raw(handle)) };
        Ok(())
    })
}

/// `cllm_roles_submit_ex` with priority 0, waiting while the queue is full.
///
/// # Safety
/// As `cllm_roles_submit_ex`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_roles_submit(
    roles: *const cllm_roles,
    role: cllm_role,
    func: cllm_role_task_fn,
    arg: *mut c_void,
    out: *mut *mut cllm_task,
) -> cllm_status {
    // SAFETY: the same contract as cllm_roles_submit_ex.
    unsafe { cllm_roles_submit_ex(roles, role, 0, CLLM_WAIT_FOREVER, func, arg, out) }
}

/// `cllm_roles_submit_ex` with priority 0, failing with `CLLM_ERR_FULL` at
/// once when the queue is full.
///
/// # Safety
/// As `cllm_roles_submit_ex`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_roles_try_submit(
    roles: *const cllm_roles,
    role: cllm_role,
    func: cllm_role_task_fn,
    arg: *mut c_void,
    out: *mut *mut cllm_task,
) -> cllm_status {
    // SAFETY: the same contract as cllm_roles_submit_ex.
    unsafe { cllm_roles_submit_ex(roles, role, 0, 0, func, arg, out) }
}

/// `cllm_roles_submit_ex` with priority 0, waiting at most `timeout_ns` for
/// room, then failing with `CLLM_ERR_TIMEOUT`. `timeout_ns` must be at least
/// 1: 0 is refused with `CLLM_ERR_INVALID_ARGUMENT` (not to fail at once
/// when the queue is full: that is `cllm_roles_try_submit`).
///
/// # Safety
/// As `cllm_roles_submit_ex`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_roles_submit_timeout(
    roles: *const cllm_roles,
    role: cllm_role,
    func: cllm_role_task_fn,
    arg: *mut c_void,
    timeout_ns: u64,
    out: *mut *mut cllm_task,
) -> cllm_status {
    let backpressure = match timeout_ns {
        0 => Err(FfiError::invalid(
            "timeout_ns = 0; it must be at least 1 (cllm_roles_try_submit fails at once when the queue is full)",
        )),
        CLLM_WAIT_FOREVER => Ok(Backpressure::Block),
        t => Ok(Backpressure::Timeout(Duration::from_nanos(t))),
    };
    // SAFETY: the same contract as cllm_roles_submit_ex.
    unsafe { submit(roles, role, 0, backpressure, func, arg, out) }
}

/// Writes `role`'s metrics to `*out`. Errors: `CLLM_ERR_NULL`,
/// `CLLM_ERR_INVALID_ARGUMENT` (unknown role).
///
/// # Safety
/// `roles` is NULL or a live handle; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_roles_metrics(
    roles: *const cllm_roles,
    role: cllm_role,
    out: *mut cllm_role_metrics,
) -> cllm_status {
    with_handle!(roles, |r| {
        let out = out_ptr(out, "out")?;
        let role: Role = enum_arg(role, "role")?;
        let metrics = cllm_role_metrics::from(&r.rt.pool(role).snapshot());
        // SAFETY: checked by out_ptr.
        unsafe { write_out(out, metrics) };
        Ok(())
    })
}

/// Brings `role`'s pool to `threads` threads while it runs (idle workers
/// leave at once, busy ones after their task; new threads start as the
/// budget allows, the rest as other pools give threads back). A pool left
/// without a thread of its own (0, or grown while the other pools hold the
/// whole budget) is a guest of the pool with the most threads: their idle
/// threads run its tasks (`host_role` in `cllm_roles_metrics`) until a
/// resize or rebalance after its own threads started; with no pool having
/// a thread its tasks run inline on the submitter. Queued work always has a
/// thread to run it. Errors:
/// `CLLM_ERR_INVALID_ARGUMENT` (unknown role, pool off, above the budget),
/// `CLLM_ERR_SHUTDOWN`, `CLLM_ERR_SPAWN` (a thread could not start, e.g.
/// under `RLIMIT_NPROC`: the pool is left as it was, with the threads this
/// call started gone before it returns and the target unchanged).
///
/// # Safety
/// `roles` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_roles_resize(
    roles: *const cllm_roles,
    role: cllm_role,
    threads: usize,
) -> cllm_status {
    with_handle!(roles, |r| Ok(r
        .rt
        .resize(enum_arg(role, "role")?, threads)?))
}

/// Moves at most one thread from an idle pool (or the free budget) to a
/// busy one, judging by each pool's busy share since the previous call;
/// writes what it did to `*out`. Call it periodically or on demand.
///
/// # Safety
/// `roles` is NULL or a live handle; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_roles_rebalance(
    roles: *const cllm_roles,
    out: *mut cllm_thread_move,
) -> cllm_status {
    with_handle!(roles, |r| {
        let out = out_ptr(out, "out")?;
        let m = match r.rt.rebalance() {
            Some(m) => cllm_thread_move {
                moved: true,
                from_role: m.from.map_or(CLLM_ROLE_NONE, cllm_role::from),
                to_role: m.to.into(),
            },
            None => cllm_thread_move {
                moved: false,
                from_role: CLLM_ROLE_NONE,
                to_role: CLLM_ROLE_NONE,
            },
        };
        // SAFETY: checked by out_ptr.
        unsafe { write_out(out, m) };
        Ok(())
    })
}

/// Writes up to `capacity` tasks running past their pool's limit to `out`
/// (which may be NULL when `capacity` is 0) and their total number to
/// `*out_count` (which may exceed `capacity`).
///
/// # Safety
/// `roles` is NULL or a live handle; `out` has room for `capacity` entries.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_roles_stuck_tasks(
    roles: *const cllm_roles,
    out: *mut cllm_stuck_task,
    capacity: usize,
    out_count: *mut usize,
) -> cllm_status {
    with_handle!(roles, |r| {
        let count = out_ptr(out_count, "out_count")?;
        if capacity > 0 {
            out_ptr(out, "out")?;
        }
        let report = r.rt.health();
        for (i, s) in report.stuck.iter().take(capacity).enumerate() {
            let mut worker = [0 as c_char; 32];
            for (dst, src) in worker.iter_mut().zip(s.worker.bytes().take(31)) {
                *dst = src as c_char;
            }
            let entry = cllm_stuck_task {
                role: s.role.into(),
                worker_role: s.worker_pool.into(),
                running_ns: ns(s.running_for),
                limit_ns: ns(s.limit),
                in_parallel_loop: s.in_parallel_loop,
                worker,
            };
            // SAFETY: `out` has room for `capacity` entries and i < capacity.
            unsafe { write_out(out.add(i), entry) };
        }
        // SAFETY: checked by out_ptr.
        unsafe { write_out(count, report.stuck.len()) };
        Ok(())
    })
}

/// Stops every pool: no new tasks (`CLLM_ERR_SHUTDOWN`), no periodic runs;
/// queued tasks run (`CLLM_DRAIN_FINISH`) or are dropped (`CLLM_DRAIN_DROP`);
/// waits for the workers up to `deadline_ns`, then drops what is still
/// queued and detaches workers still inside a task. Writes what happened to
/// `*out`. A second call does nothing (`already_shut_down`). The handle must
/// still be freed with `cllm_roles_free`.
///
/// # Safety
/// `roles` is NULL or a live handle; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_roles_shutdown(
    roles: *const cllm_roles,
    policy: cllm_drain,
    deadline_ns: u64,
    out: *mut cllm_shutdown_report,
) -> cllm_status {
    with_handle!(roles, |r| {
        let out = out_ptr(out, "out")?;
        let policy: DrainPolicy = enum_arg(policy, "policy")?;
        let report = r.rt.shutdown(policy, Duration::from_nanos(deadline_ns));
        let mut c = cllm_shutdown_report {
            finished: report.finished(),
            dropped: report.dropped(),
            still_running: report.still_running() as u32,
            deadline_met: report.deadline_met,
            already_shut_down: report.already_shut_down,
            elapsed_ns: ns(report.elapsed),
            ..Default::default()
        };
        for p in &report.pools {
            c.dropped_by_role[p.role.index()] = p.dropped;
        }
        // SAFETY: checked by out_ptr.
        unsafe { write_out(out, c) };
        Ok(())
    })
}

/// Calls `func(arg, i)` once for every `i` in `[0, n)` on `role`'s threads and
/// the calling thread, cut by `partitioning` (`CLLM_PARTITION_*`; `grain`:
/// the most items a participant takes at once for `CLLM_PARTITION_DYNAMIC`,
/// 0 = automatic, any larger value allowed (a grain of `n` or more is one
/// chunk); ignored otherwise). Returns when every call has returned. The
/// first non-zero return stops the loop: `CLLM_ERR_JOB_FAILED`. On a pool
/// that is off the loop runs on the caller alone, with the same calls.
/// Errors also: `CLLM_ERR_NULL`, `CLLM_ERR_INVALID_ARGUMENT` (role,
/// partitioning, or `n` above SIZE_MAX / 2 - 4096, the limit of
/// `cllm_pool_parallel_for`: such a length is most likely a negative
/// number converted to `size_t`: 2^63 calls or more).
///
/// # Safety
/// `roles` is NULL or a live handle; `func` may be called from several
/// threads at once with `arg`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_roles_parallel_for(
    roles: *const cllm_roles,
    role: cllm_role,
    n: usize,
    partitioning: cllm_partition,
    grain: usize,
    func: cllm_index_fn,
    arg: *mut c_void,
) -> cllm_status {
    with_handle!(roles, |r| {
        let func = func.ok_or_else(|| FfiError::null("func"))?;
        let role: Role = enum_arg(role, "role")?;
        if n > sphere_pool::MAX_RANGE_LEN {
            return Err(FfiError::invalid(format!(
                "n = {n} items is too long: the limit is {} (SIZE_MAX / 2 - 4096)",
                sphere_pool::MAX_RANGE_LEN
            )));
        }
        let partitioning = match enum_arg(partitioning, "partitioning")? {
            PartitionKind::Interleaved => Partitioning::Interleaved,
            PartitionKind::Contiguous => Partitioning::Contiguous,
            PartitionKind::Dynamic => Partitioning::Dynamic { grain },
        };
        let arg = SharedArg(arg);
        r.rt.pool(role).try_for_each_index(n, partitioning, |i| {
            // SAFETY: the caller promised fn may run on several threads at once.
            match unsafe { func(arg.get(), i) } {
                0 => Ok(()),
                code => Err(format!("item {i} returned {code}")),
            }
        })?;
        Ok(())
    })
}

/// Fills `*out` with the monitoring inputs now, in one call, for
/// `cllm_frame_monitor_row`, `_write` and `_baseline`: each role pool's
/// `busy_ns` and `alive_ns` (one snapshot of every pool),
/// `lock_acquisitions` and `lock_contended` summed over every counting lock
/// of the process (`cllm_lock_*`), and `parallel_work_ns` /
/// `parallel_wall_ns` from the role pools' parallel loops
/// (`cllm_roles_parallel_for`): the time each participant spent in its
/// share, on the wall clock, over the loops' wall time. A participant that
/// waits for a CPU counts as working there, so on a machine with other load
/// `parallel_speedup_ratio` overstates the CPU work; a program that
/// measures task CPU time itself may overwrite the two fields. Errors:
/// `CLLM_ERR_NULL` (roles, out).
///
/// # Safety
/// `roles` is NULL or a live handle; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_roles_monitor_inputs(
    roles: *const cllm_roles,
    out: *mut cllm_frame_monitor_inputs,
) -> cllm_status {
    with_handle!(roles, |r| {
        let out = out_ptr(out, "out")?;
        let inputs = cllm_frame_monitor_inputs::from(&r.rt.monitor_inputs(None));
        // SAFETY: checked by out_ptr.
        unsafe { write_out(out, inputs) };
        Ok(())
    })
}
