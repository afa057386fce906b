//! C API of the role pools, `cllm_roles_*`: the walker plan's five pools
//! (ai, physics, stats, background, evaluation) sharing one thread budget,
//! with bounded queues, metrics, health, resizing, balancing and a
//! parallel-for over agents. Tasks are in `task.rs` (`cllm_task_*`), the
//! periodic scheduler in `sched.rs` (`cllm_roles_sched_*`). See the
//! `pool-manager` crate for the engine and its guarantees.

use crate::error::FfiError;
use crate::error::{UnknownValue, enum_arg};
use crate::frame::cllm_frame_monitor_inputs;
use crate::guard::{CLLM_WAIT_FOREVER, Handle, ns, out_ptr, write_out};
use crate::status::cllm_status;
use crate::task::cllm_task;
use crate::{free_handle, with_handle};
use pool_manager::{
    Backpressure, DrainPolicy, Error, Partitioning, PoolSnapshot, Role, Runtime, RuntimeConfig,
    SubmitError, SubmitOptions,
};
use std::ffi::{c_char, c_int, c_void};
use std::time::Duration;

/// A role pool (`uint32_t`, one of `CLLM_ROLE_*`): also the index of
/// per-role arrays. Any other argument value is refused with
/// `CLLM_ERR_INVALID_ARGUMENT`.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct cllm_role(pub u32);

/// Role of the ai pool (agent thinking, neural networks).
pub const CLLM_ROLE_AI: cllm_role = cllm_role(0);
/// Role of the physics pool (physics helpers).
pub const CLLM_ROLE_PHYSICS: cllm_role = cllm_role(1);
/// Role of the stats pool (statistics).
pub const CLLM_ROLE_STATS: cllm_role = cllm_role(2);
/// Role of the background pool (periodic tasks, cleanup, monitoring).
pub const CLLM_ROLE_BACKGROUND: cllm_role = cllm_role(3);
/// Role of the evaluation pool.
pub const CLLM_ROLE_EVALUATION: cllm_role = cllm_role(4);
/// No role (in output fields only: a pool without a host, a free thread).
pub const CLLM_ROLE_NONE: cllm_role = cllm_role(u32::MAX);
/// The number of roles (the size of per-role arrays).
pub const CLLM_ROLE_COUNT: usize = 5;

impl TryFrom<cllm_role> for Role {
    type Error = UnknownValue;
    fn try_from(role: cllm_role) -> Result<Role, UnknownValue> {
        usize::try_from(role.0)
            .ok()
            .and_then(Role::from_index)
            .ok_or(UnknownValue {
                type_name: "cllm_role",
                value: i64::from(role.0),
                expected: "CLLM_ROLE_AI 0 .. CLLM_ROLE_EVALUATION 4",
            })
    }
}

impl From<Role> for cllm_role {
    fn from(role: Role) -> cllm_role {
        cllm_role(role.index() as u32)
    }
}

/// How `cllm_roles_parallel_for` cuts its range (`uint32_t`, one of
/// `CLLM_PARTITION_*`).
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct cllm_partition(pub u32);

/// The plan's `agents[i::k]`: `k` parts of items `p, p + k, ...` (k = the
/// pool's threads + the caller).
pub const CLLM_PARTITION_INTERLEAVED: cllm_partition = cllm_partition(0);
/// `k` contiguous blocks.
pub const CLLM_PARTITION_CONTIGUOUS: cllm_partition = cllm_partition(1);
/// Chunks of `grain` items, each participant starting on its own block and
/// then stealing from the others (balances uneven items).
pub const CLLM_PARTITION_DYNAMIC: cllm_partition = cllm_partition(2);

/// The partitionings without their grain (the grain is its own argument).
enum PartitionKind {
    Interleaved,
    Contiguous,
    Dynamic,
}

impl TryFrom<cllm_partition> for PartitionKind {
    type Error = UnknownValue;
    fn try_from(p: cllm_partition) -> Result<PartitionKind, UnknownValue> {
        match p {
            CLLM_PARTITION_INTERLEAVED => Ok(PartitionKind::Interleaved),
            CLLM_PARTITION_CONTIGUOUS => Ok(PartitionKind::Contiguous),
            CLLM_PARTITION_DYNAMIC => Ok(PartitionKind::Dynamic),
            other => Err(UnknownValue {
                type_name: "cllm_partition",
                value: i64::from(other.0),
                expected: "CLLM_PARTITION_INTERLEAVED 0, CONTIGUOUS 1, DYNAMIC 2",
            }),
        }
    }
}

/// What `cllm_roles_shutdown` does with queued tasks (`uint32_t`, one of
/// `CLLM_DRAIN_*`).
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct cllm_drain(pub u32);

/// Run every queued task before stopping.
pub const CLLM_DRAIN_FINISH: cllm_drain = cllm_drain(0);
/// Drop queued tasks (their handles get `CLLM_ERR_CANCELLED`).
pub const CLLM_DRAIN_DROP: cllm_drain = cllm_drain(1);

impl TryFrom<cllm_drain> for DrainPolicy {
    type Error = UnknownValue;
    fn try_from(d: cllm_drain) -> Result<DrainPolicy, UnknownValue> {
        match d {
            CLLM_DRAIN_FINISH => Ok(DrainPolicy::Finish),
            CLLM_DRAIN_DROP => Ok(DrainPolicy::Drop),
            other => Err(UnknownValue {
                type_name: "cllm_drain",
                value: i64::from(other.0),
                expected: "CLLM_DRAIN_FINISH 0, CLLM_DRAIN_DROP 1",
            }),
        }
    }
}

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

/// How to build the role pools; fill it with `cllm_roles_options_default()`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct cllm_roles_options {
    /// Most worker threads of all pools together; 0: the core count.
    pub thread_budget: u32,
    /// Threads of each pool, indexed by `CLLM_ROLE_*`: negative: the plan's
    /// ratio of the cores (ai 1/3, physics 1/12, stats 1/6, background 1/4,
    /// evaluation 1/6, at least 1); 0: the pool is off and runs its work
    /// inline on the caller; positive: that many (at most 4096). When the
    /// sizes do not fit the budget, the budget is shared in proportion to
    /// them (largest remainder, at least one each when the budget allows);
    /// a pool left without a thread has its tasks run by the idle threads of
    /// the largest pool. On 2 cores the defaults give ai 1 and background 1.
    pub threads: [i32; CLLM_ROLE_COUNT],
    /// Capacity of each pool's queue; 0: 1024.
    pub queue_capacity: u32,
    /// A task running longer is reported by `cllm_roles_stuck_tasks`, in
    /// nanoseconds; 0: 5 s.
    pub stuck_task_ns: u64,
    /// Idle workers wake this often to beat their heartbeat, in
    /// nanoseconds; 0: 1 s.
    pub heartbeat_ns: u64,
    /// How long `cllm_roles_free` waits for queued and running tasks, in
    /// nanoseconds; 0: 5 s.
    pub shutdown_deadline_ns: u64,
    /// CPUs to pin each pool's threads to, indexed by `CLLM_ROLE_*`, as a
    /// list such as `"0-3,8"` (the syntax of `cllm_pool_options.cpus` and
    /// `CLLM_CPUS`): the pool's k-th thread started runs on the list's entry
    /// k mod its length. Every CPU must be one the process may run on.
    /// NULL: that pool is not pinned. Read during `cllm_roles_create` only.
    pub cpus: [*const c_char; CLLM_ROLE_COUNT],
}

/// Metrics of one role pool. Cumulative counters only grow.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct cllm_role_metrics {
    /// False if the pool is off (its work runs inline).
    pub enabled: bool,
    /// Worker threads of its own alive now.
    pub threads: u32,
    /// The size it is being brought to (resize, balancer).
    pub target_threads: u32,
    /// For a pool without threads: the role whose threads run its tasks;
    /// `CLLM_ROLE_NONE` if none.
    pub host_role: cllm_role,
    /// Nanoseconds its threads spent running tasks and loop shares.
    pub busy_ns: u64,
    /// Nanoseconds its threads were alive (thread-time).
    pub alive_ns: u64,
    /// Tasks queued now.
    pub queue_depth: u64,
    /// Queue capacity.
    pub queue_capacity: u64,
    /// Tasks accepted (queued or run inline).
    pub tasks_submitted: u64,
    /// Tasks that ran and succeeded.
    pub tasks_done: u64,
    /// Tasks that ran and failed (non-zero return) or panicked.
    pub tasks_failed: u64,
    /// Tasks dropped at shutdown without running.
    pub tasks_cancelled: u64,
    /// Submissions refused because the queue was full.
    pub tasks_rejected: u64,
    /// Tasks run inline on the submitter.
    pub tasks_inline: u64,
    /// Submit-to-start time, median, nanoseconds.
    pub wait_p50_ns: u64,
    /// Submit-to-start time, 99th percentile, nanoseconds.
    pub wait_p99_ns: u64,
    /// Run time, median, nanoseconds.
    pub run_p50_ns: u64,
    /// Run time, 99th percentile, nanoseconds.
    pub run_p99_ns: u64,
    /// Summed run time of its tasks, nanoseconds.
    pub run_total_ns: u64,
    /// Parallel loops run on the pool.
    pub rounds: u64,
    /// Summed work time of all participants of those loops, nanoseconds.
    pub round_work_ns: u64,
    /// Summed wall time of those loops, nanoseconds.
    pub round_wall_ns: u64,
    /// Workers replaced after a panic.
    pub workers_replaced: u64,
}

/// A task running past its pool's limit (see `cllm_roles_stuck_tasks`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct cllm_stuck_task {
    /// The task's role.
    pub role: cllm_role,
    /// The role of the pool whose thread runs it.
    pub worker_role: cllm_role,
    /// How long it has run, nanoseconds.
    pub running_ns: u64,
    /// The limit it passed, nanoseconds.
    pub limit_ns: u64,
    /// True for a share of a parallel loop.
    pub in_parallel_loop: bool,
    /// The worker thread's name, NUL-terminated (truncated to 31 bytes).
    pub worker: [c_char; 32],
}

/// What `cllm_roles_shutdown` did.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct cllm_shutdown_report {
    /// Tasks that finished during the shutdown.
    pub finished: u64,
    /// Queued tasks dropped without running (all pools).
    pub dropped: u64,
    /// Dropped tasks per role, indexed by `CLLM_ROLE_*`.
    pub dropped_by_role: [u64; CLLM_ROLE_COUNT],
    /// Workers still inside a task at the deadline (detached; they exit
    /// after the task).
    pub still_running: u32,
    /// True if every worker stopped before the deadline.
    pub deadline_met: bool,
    /// True if the pools were already shut down (nothing was done).
    pub already_shut_down: bool,
    /// How long the shutdown took, nanoseconds.
    pub elapsed_ns: u64,
}

/// A thread moved by `cllm_roles_rebalance`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct cllm_thread_move {
    /// False if nothing needed to move (the roles are then `CLLM_ROLE_NONE`).
    pub moved: bool,
    /// The role that gave a thread; `CLLM_ROLE_NONE`: a free thread of the budget.
    pub from_role: cllm_role,
    /// The role that got it.
    pub to_role: cllm_role,
}

/// A task for a role pool: `func(arg)`; return 0 on success, any other value
/// is reported as `CLLM_ERR_JOB_FAILED` (the code is in `cllm_last_error()`).
pub type cllm_role_task_fn = Option<unsafe extern "C" fn(arg: *mut c_void) -> c_int>;

/// The body of `cllm_roles_parallel_for`: `func(arg, index)` for one item;
/// called from several threads at once; non-zero stops the loop.
pub type cllm_index_fn = Option<unsafe extern "C" fn(arg: *mut c_void, index: usize) -> c_int>;

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

impl From<&PoolSnapshot> for cllm_role_metrics {
    fn from(s: &PoolSnapshot) -> Self {
        Self {
            enabled: s.enabled,
            threads: s.threads as u32,
            target_threads: s.target_threads as u32,
            host_role: s.host.map_or(CLLM_ROLE_NONE, cllm_role::from),
            busy_ns: ns(s.busy),
            alive_ns: ns(s.alive),
            queue_depth: s.queue_depth as u64,
            queue_capacity: s.queue_capacity as u64,
            tasks_submitted: s.tasks_submitted,
            tasks_done: s.tasks_done,
            tasks_failed: s.tasks_failed,
            tasks_cancelled: s.tasks_cancelled,
            tasks_rejected: s.tasks_rejected,
            tasks_inline: s.tasks_inline,
            wait_p50_ns: ns(s.wait_p50),
            wait_p99_ns: ns(s.wait_p99),
            run_p50_ns: ns(s.run_p50),
            run_p99_ns: ns(s.run_p99),
            run_total_ns: ns(s.run_total),
            rounds: s.rounds,
            round_work_ns: ns(s.round_work),
            round_wall_ns: ns(s.round_wall),
            workers_replaced: s.workers_replaced,
        }
    }
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
