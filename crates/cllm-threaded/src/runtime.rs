//! C API of the role pools (`cllm_roles_*`, `cllm_role_*`, `cllm_task_*`,
//! `cllm_sched_*`): the walker plan's five pools (ai, physics, stats,
//! background, evaluation) sharing one thread budget, with bounded queues,
//! task handles, metrics, health, resizing, balancing, periodic tasks and a
//! parallel-for over agents. See the `pool-manager` crate for the engine and
//! its guarantees.

use crate::error::FfiError;
use crate::guard::{arg_ref, ffi_status, out_ptr, write_out};
use crate::status::{UnknownValue, cllm_status, enum_arg};
use pool_manager::{
    Backpressure, DrainPolicy, Error, Partitioning, PeriodicId, PeriodicStats, PoolSnapshot, Role,
    Runtime, RuntimeConfig, SubmitError, SubmitOptions, TaskError, TaskHandle,
};
use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::Mutex;
use std::time::Duration;

/// A role pool (`uint32_t`, one of `CLLM_ROLE_*`): the index of per-role
/// arrays. Any other value is refused with `CLLM_ERR_INVALID_ARGUMENT`.
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

/// The checked conversion of a C role (see `status.rs` for the pattern).
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

/// The number of roles (the size of per-role arrays).
pub const CLLM_ROLE_COUNT: usize = 5;

/// Partitioning of `cllm_roles_parallel_for`: the plan's `agents[i::k]`, `k`
/// parts of items `p, p + k, ...` (k = the pool's threads + the caller).
pub const CLLM_PARTITION_INTERLEAVED: c_int = 0;
/// Partitioning: `k` contiguous blocks.
pub const CLLM_PARTITION_CONTIGUOUS: c_int = 1;
/// Partitioning: chunks of `grain` items, each participant starting on its
/// own block and then stealing from the others (balances uneven items).
pub const CLLM_PARTITION_DYNAMIC: c_int = 2;

/// Shutdown policy: run every queued task before stopping.
pub const CLLM_DRAIN_FINISH: c_int = 0;
/// Shutdown policy: drop queued tasks (their handles get `CLLM_ERR_CANCELLED`).
pub const CLLM_DRAIN_DROP: c_int = 1;

/// The five role pools of the walker plan and their periodic scheduler.
/// Every function may be called from any thread, except `cllm_roles_free`,
/// which must not race with other calls on the same handle.
pub struct cllm_roles {
    rt: Runtime,
}

impl cllm_roles {
    /// The role pools (for the other areas' glue, e.g. the frame monitor).
    pub(crate) fn runtime(&self) -> &Runtime {
        &self.rt
    }
}

/// A submitted task. Wait for it with `cllm_task_wait` (any thread), then
/// release it with `cllm_task_free`.
pub struct cllm_task {
    handle: TaskHandle<()>,
    /// The final status once a wait has seen it, returned again by later waits.
    outcome: Mutex<Option<FfiError>>,
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
    /// milliseconds; 0: 5000.
    pub stuck_task_ms: u32,
    /// Idle workers wake this often to beat their heartbeat, in milliseconds;
    /// 0: 1000.
    pub heartbeat_ms: u32,
    /// How long `cllm_roles_free` waits for queued and running tasks, in
    /// milliseconds; 0: 5000.
    pub shutdown_deadline_ms: u32,
}

/// Metrics of one role pool. Cumulative counters only grow.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct cllm_role_metrics {
    /// False if the pool is off (its work runs inline).
    pub enabled: bool,
    /// Worker threads of its own alive now.
    pub threads: u32,
    /// The size it is being brought to (resize, balancer).
    pub target_threads: u32,
    /// For a pool without threads: the role whose threads run its tasks; -1 if none.
    pub host_role: i32,
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
    pub role: i32,
    /// The role of the pool whose thread runs it.
    pub worker_role: i32,
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
#[derive(Debug, Clone, Copy, Default)]
pub struct cllm_thread_move {
    /// False if nothing needed to move (the other fields are then -1).
    pub moved: bool,
    /// The role that gave a thread; -1: a free thread of the budget.
    pub from_role: i32,
    /// The role that got it.
    pub to_role: i32,
}

/// Statistics of a periodic task (see `cllm_sched_stats`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct cllm_periodic_stats {
    /// Runs so far (failed ones included).
    pub runs: u64,
    /// Due times skipped because a run was late or still going (runs never
    /// stack up).
    pub skipped: u64,
    /// Runs that returned non-zero.
    pub failures: u64,
    /// True while queued or running.
    pub pending: bool,
    /// Duration of the last run, nanoseconds.
    pub last_run_ns: u64,
    /// Duration of the longest run, nanoseconds.
    pub max_run_ns: u64,
    /// Its interval, nanoseconds.
    pub interval_ns: u64,
    /// Its priority (higher runs first).
    pub priority: i32,
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
struct SharedArg(*mut c_void);
// SAFETY: see above; the library itself never dereferences the pointer.
unsafe impl Send for SharedArg {}
// SAFETY: as above.
unsafe impl Sync for SharedArg {}

impl SharedArg {
    /// The pointer (a method, so closures capture the whole `SharedArg`).
    fn get(self) -> *mut c_void {
        self.0
    }
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn ms(value: u32) -> Duration {
    Duration::from_millis(u64::from(value))
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

impl From<TaskError> for FfiError {
    fn from(e: TaskError) -> Self {
        let status = match &e {
            TaskError::Panicked { .. } => cllm_status::CLLM_ERR_PANIC,
            TaskError::Failed { .. } => cllm_status::CLLM_ERR_JOB_FAILED,
            TaskError::Cancelled { .. } => cllm_status::CLLM_ERR_CANCELLED,
            TaskError::Timeout => cllm_status::CLLM_ERR_TIMEOUT,
            TaskError::Collected => cllm_status::CLLM_ERR_BUSY,
        };
        FfiError::new(status, e.to_string())
    }
}

fn role_of(role: cllm_role) -> Result<Role, FfiError> {
    enum_arg(role, "role")
}

fn role_code(role: Role) -> i32 {
    role.index() as i32
}

/// The defaults: budget = cores, sizes from the plan's ratios, queues of
/// 1024, stuck after 5 s, heartbeat 1 s, shutdown deadline 5 s.
#[unsafe(no_mangle)]
pub extern "C" fn cllm_roles_options_default() -> cllm_roles_options {
    cllm_roles_options {
        thread_budget: 0,
        threads: [-1; CLLM_ROLE_COUNT],
        queue_capacity: 0,
        stuck_task_ms: 0,
        heartbeat_ms: 0,
        shutdown_deadline_ms: 0,
    }
}

fn config_from(o: &cllm_roles_options) -> Result<RuntimeConfig, FfiError> {
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
        if o.stuck_task_ms > 0 {
            c.pool_mut(role).stuck_after = ms(o.stuck_task_ms);
        }
    }
    if o.heartbeat_ms > 0 {
        c.heartbeat = ms(o.heartbeat_ms);
    }
    if o.shutdown_deadline_ms > 0 {
        c.shutdown_deadline = ms(o.shutdown_deadline_ms);
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
/// `CLLM_ERR_INVALID_ARGUMENT` (a size above 4096), `CLLM_ERR_SPAWN`.
///
/// # Safety
/// `options` is NULL or points to a `cllm_roles_options`; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_roles_create(
    options: *const cllm_roles_options,
    out: *mut *mut cllm_roles,
) -> cllm_status {
    ffi_status(|| {
        let out = out_ptr(out, "out")?;
        // SAFETY: the caller promises `options` is NULL or valid.
        let options = unsafe { options.as_ref() }
            .copied()
            .unwrap_or_else(|| cllm_roles_options_default());
        create(config_from(&options)?, out)
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
    ffi_status(|| {
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
    if roles.is_null() {
        return;
    }
    let _ = ffi_status(|| {
        // SAFETY: the caller gives up the handle made by Box::into_raw.
        drop(unsafe { Box::from_raw(roles) });
        Ok(())
    });
}

/// Writes the thread budget and the worker threads alive in all pools now.
///
/// # Safety
/// `roles` is a live handle; the outputs are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_roles_threads(
    roles: *const cllm_roles,
    out_budget: *mut usize,
    out_threads: *mut usize,
) -> cllm_status {
    ffi_status(|| {
        // SAFETY: the caller promises a live handle or NULL.
        let r = unsafe { arg_ref(roles, "roles") }?;
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
/// and a back-pressure choice: `timeout_ms < 0` waits while the queue is
/// full, `0` fails at once with `CLLM_ERR_FULL`, `> 0` waits that long, then
/// fails with `CLLM_ERR_TIMEOUT`. On success writes a task handle to `*out`.
/// On a pool that is off, `func` runs now on this thread. Other errors:
/// `CLLM_ERR_NULL`, `CLLM_ERR_INVALID_ARGUMENT` (unknown role),
/// `CLLM_ERR_SHUTDOWN`. `arg` must stay valid until the task has run (or
/// the pools were freed).
///
/// # Safety
/// `roles` is a live handle; `func(arg)` may be called once from a worker
/// thread; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_role_submit_ex(
    roles: *const cllm_roles,
    role: cllm_role,
    priority: i32,
    timeout_ms: i64,
    func: cllm_role_task_fn,
    arg: *mut c_void,
    out: *mut *mut cllm_task,
) -> cllm_status {
    ffi_status(|| {
        // SAFETY: the caller promises a live handle or NULL.
        let r = unsafe { arg_ref(roles, "roles") }?;
        let func = func.ok_or_else(|| FfiError::null("func"))?;
        let out = out_ptr(out, "out")?;
        let role = role_of(role)?;
        let backpressure = match timeout_ms {
            t if t < 0 => Backpressure::Block,
            0 => Backpressure::Reject,
            t => Backpressure::Timeout(Duration::from_millis(t as u64)),
        };
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
        let task = Box::new(cllm_task {
            handle,
            outcome: Mutex::new(None),
        });
        // SAFETY: `out` was checked by out_ptr.
        unsafe { write_out(out, Box::into_raw(task)) };
        Ok(())
    })
}

/// `cllm_role_submit_ex` with priority 0, waiting while the queue is full.
///
/// # Safety
/// As `cllm_role_submit_ex`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_role_submit(
    roles: *const cllm_roles,
    role: cllm_role,
    func: cllm_role_task_fn,
    arg: *mut c_void,
    out: *mut *mut cllm_task,
) -> cllm_status {
    // SAFETY: same contract.
    unsafe { cllm_role_submit_ex(roles, role, 0, -1, func, arg, out) }
}

/// `cllm_role_submit_ex` with priority 0, failing with `CLLM_ERR_FULL` at
/// once when the queue is full.
///
/// # Safety
/// As `cllm_role_submit_ex`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_role_try_submit(
    roles: *const cllm_roles,
    role: cllm_role,
    func: cllm_role_task_fn,
    arg: *mut c_void,
    out: *mut *mut cllm_task,
) -> cllm_status {
    // SAFETY: same contract.
    unsafe { cllm_role_submit_ex(roles, role, 0, 0, func, arg, out) }
}

/// `cllm_role_submit_ex` with priority 0, waiting at most `timeout_ms` (at
/// least 1) for room, then failing with `CLLM_ERR_TIMEOUT`.
///
/// # Safety
/// As `cllm_role_submit_ex`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_role_submit_timeout(
    roles: *const cllm_roles,
    role: cllm_role,
    func: cllm_role_task_fn,
    arg: *mut c_void,
    timeout_ms: u32,
    out: *mut *mut cllm_task,
) -> cllm_status {
    // SAFETY: same contract.
    unsafe { cllm_role_submit_ex(roles, role, 0, i64::from(timeout_ms.max(1)), func, arg, out) }
}

fn wait_task(task: &cllm_task, timeout: Option<Duration>) -> Result<(), FfiError> {
    let mut outcome = task.outcome.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(done) = &*outcome {
        return if done.status == cllm_status::CLLM_OK {
            Ok(())
        } else {
            Err(done.clone())
        };
    }
    let result = match timeout {
        None => task.handle.wait_timeout(Duration::MAX),
        Some(t) => task.handle.wait_timeout(t),
    };
    match result {
        Ok(()) => {
            *outcome = Some(FfiError::new(cllm_status::CLLM_OK, ""));
            Ok(())
        }
        Err(TaskError::Timeout) => Err(FfiError::new(
            cllm_status::CLLM_ERR_TIMEOUT,
            "the task is still pending",
        )),
        Err(e) => {
            let e = FfiError::from(e);
            *outcome = Some(e.clone());
            Err(e)
        }
    }
}

/// Waits for the task and returns its outcome: `CLLM_OK`,
/// `CLLM_ERR_JOB_FAILED` (its function returned non-zero; the code is in
/// `cllm_last_error()`), `CLLM_ERR_CANCELLED` (dropped at shutdown). Later
/// waits return the same outcome. `CLLM_ERR_NULL` for a NULL task.
///
/// # Safety
/// `task` is NULL or a live handle from a `cllm_role_submit*` call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_task_wait(task: *const cllm_task) -> cllm_status {
    ffi_status(|| {
        // SAFETY: the caller promises a live handle or NULL.
        wait_task(unsafe { arg_ref(task, "task") }?, None)
    })
}

/// As `cllm_task_wait`, giving up after `timeout_ms` with `CLLM_ERR_TIMEOUT`
/// (the task goes on; wait again later).
///
/// # Safety
/// As `cllm_task_wait`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_task_wait_timeout(
    task: *const cllm_task,
    timeout_ms: u32,
) -> cllm_status {
    ffi_status(|| {
        // SAFETY: the caller promises a live handle or NULL.
        wait_task(unsafe { arg_ref(task, "task") }?, Some(ms(timeout_ms)))
    })
}

/// Releases a task handle; NULL does nothing. A task still pending goes on
/// running (its `arg` must stay valid until it has run).
///
/// # Safety
/// `task` is NULL or a live handle, not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_task_free(task: *mut cllm_task) {
    if !task.is_null() {
        let _ = ffi_status(|| {
            // SAFETY: the caller gives up the handle made by Box::into_raw.
            drop(unsafe { Box::from_raw(task) });
            Ok(())
        });
    }
}

impl From<&PoolSnapshot> for cllm_role_metrics {
    fn from(s: &PoolSnapshot) -> Self {
        Self {
            enabled: s.enabled,
            threads: s.threads as u32,
            target_threads: s.target_threads as u32,
            host_role: s.host.map_or(-1, role_code),
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
/// `roles` is a live handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_roles_metrics(
    roles: *const cllm_roles,
    role: cllm_role,
    out: *mut cllm_role_metrics,
) -> cllm_status {
    ffi_status(|| {
        // SAFETY: the caller promises a live handle or NULL.
        let r = unsafe { arg_ref(roles, "roles") }?;
        let out = out_ptr(out, "out")?;
        let role = role_of(role)?;
        let metrics = cllm_role_metrics::from(&r.rt.pool(role).snapshot());
        // SAFETY: checked by out_ptr.
        unsafe { write_out(out, metrics) };
        Ok(())
    })
}

/// Brings `role`'s pool to `threads` threads while it runs (idle workers
/// leave at once, busy ones after their task; new threads start as the
/// budget allows; 0 makes the pool a guest of the largest one). Errors:
/// `CLLM_ERR_INVALID_ARGUMENT` (unknown role, pool off, above the budget),
/// `CLLM_ERR_SHUTDOWN`, `CLLM_ERR_SPAWN` (a thread could not start, e.g.
/// under `RLIMIT_NPROC`: the pool is left as it was, with the threads this
/// call started gone before it returns and the target unchanged).
///
/// # Safety
/// `roles` is a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_roles_resize(
    roles: *const cllm_roles,
    role: cllm_role,
    threads: usize,
) -> cllm_status {
    ffi_status(|| {
        // SAFETY: the caller promises a live handle or NULL.
        let r = unsafe { arg_ref(roles, "roles") }?;
        Ok(r.rt.resize(role_of(role)?, threads)?)
    })
}

/// Moves at most one thread from an idle pool (or the free budget) to a
/// busy one, judging by each pool's busy share since the previous call;
/// writes what it did to `*out`. Call it periodically or on demand.
///
/// # Safety
/// `roles` is a live handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_roles_rebalance(
    roles: *const cllm_roles,
    out: *mut cllm_thread_move,
) -> cllm_status {
    ffi_status(|| {
        // SAFETY: the caller promises a live handle or NULL.
        let r = unsafe { arg_ref(roles, "roles") }?;
        let out = out_ptr(out, "out")?;
        let m = match r.rt.rebalance() {
            Some(m) => cllm_thread_move {
                moved: true,
                from_role: m.from.map_or(-1, role_code),
                to_role: role_code(m.to),
            },
            None => cllm_thread_move {
                moved: false,
                from_role: -1,
                to_role: -1,
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
/// `roles` is a live handle; `out` has room for `capacity` entries.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_roles_stuck_tasks(
    roles: *const cllm_roles,
    out: *mut cllm_stuck_task,
    capacity: usize,
    out_count: *mut usize,
) -> cllm_status {
    ffi_status(|| {
        // SAFETY: the caller promises a live handle or NULL.
        let r = unsafe { arg_ref(roles, "roles") }?;
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
                role: role_code(s.role),
                worker_role: role_code(s.worker_pool),
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
/// waits for the workers up to `deadline_ms`, then drops what is still
/// queued and detaches workers still inside a task. Writes what happened to
/// `*out`. A second call does nothing (`already_shut_down`). The handle must
/// still be freed with `cllm_roles_free`.
///
/// # Safety
/// `roles` is a live handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_roles_shutdown(
    roles: *const cllm_roles,
    policy: c_int,
    deadline_ms: u32,
    out: *mut cllm_shutdown_report,
) -> cllm_status {
    ffi_status(|| {
        // SAFETY: the caller promises a live handle or NULL.
        let r = unsafe { arg_ref(roles, "roles") }?;
        let out = out_ptr(out, "out")?;
        let policy = match policy {
            CLLM_DRAIN_FINISH => DrainPolicy::Finish,
            CLLM_DRAIN_DROP => DrainPolicy::Drop,
            other => {
                return Err(FfiError::invalid(format!(
                    "unknown drain policy {other} (CLLM_DRAIN_FINISH {CLLM_DRAIN_FINISH}, CLLM_DRAIN_DROP {CLLM_DRAIN_DROP})"
                )));
            }
        };
        let report = r.rt.shutdown(policy, ms(deadline_ms));
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

/// Runs `func(arg)` every `interval_ms` (the first run one interval from now)
/// on the background pool, with `priority` (higher first; the plan:
/// monitoring 1000 ms high, cleanup 5000 ms, evaluation 10000 ms low). A
/// run never overlaps the previous one: late due times are skipped
/// (`cllm_periodic_stats.skipped`). Non-zero returns count as failures.
/// With the background pool off, due tasks run only in `cllm_sched_run_due`.
/// Writes the task's id to `*out_id`. Errors: `CLLM_ERR_NULL`,
/// `CLLM_ERR_INVALID_ARGUMENT` (interval 0), `CLLM_ERR_SHUTDOWN`. `arg` must
/// stay valid until the task is removed or the pools are freed.
///
/// # Safety
/// `roles` is a live handle; `name` is a NUL-terminated string; `func(arg)`
/// may be called from a worker thread; `out_id` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_sched_add(
    roles: *const cllm_roles,
    name: *const c_char,
    interval_ms: u32,
    priority: i32,
    func: cllm_role_task_fn,
    arg: *mut c_void,
    out_id: *mut u64,
) -> cllm_status {
    ffi_status(|| {
        // SAFETY: the caller promises a live handle or NULL.
        let r = unsafe { arg_ref(roles, "roles") }?;
        if name.is_null() {
            return Err(FfiError::null("name"));
        }
        // SAFETY: the caller promises a NUL-terminated string.
        let name = unsafe { CStr::from_ptr(name) }
            .to_string_lossy()
            .into_owned();
        let func = func.ok_or_else(|| FfiError::null("func"))?;
        let out_id = out_ptr(out_id, "out_id")?;
        let arg = SharedArg(arg);
        let id =
            r.rt.scheduler()
                .add_fallible(&name, ms(interval_ms), priority, move || {
                    // SAFETY: the caller promised fn(arg) may run on a worker thread.
                    match unsafe { func(arg.get()) } {
                        0 => Ok(()),
                        code => Err(format!("periodic task returned {code}")),
                    }
                })?;
        // SAFETY: checked by out_ptr.
        unsafe { write_out(out_id, id.0) };
        Ok(())
    })
}

/// Removes a periodic task (a run in progress finishes). `CLLM_ERR_NOT_FOUND`
/// if there is no such task.
///
/// # Safety
/// `roles` is a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_sched_remove(roles: *const cllm_roles, id: u64) -> cllm_status {
    ffi_status(|| {
        // SAFETY: the caller promises a live handle or NULL.
        let r = unsafe { arg_ref(roles, "roles") }?;
        if r.rt.scheduler().remove(PeriodicId(id)) {
            Ok(())
        } else {
            Err(FfiError::new(
                cllm_status::CLLM_ERR_NOT_FOUND,
                format!("no periodic task {id}"),
            ))
        }
    })
}

/// Writes a periodic task's statistics to `*out`; `CLLM_ERR_NOT_FOUND` if
/// there is no such task.
///
/// # Safety
/// `roles` is a live handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_sched_stats(
    roles: *const cllm_roles,
    id: u64,
    out: *mut cllm_periodic_stats,
) -> cllm_status {
    ffi_status(|| {
        // SAFETY: the caller promises a live handle or NULL.
        let r = unsafe { arg_ref(roles, "roles") }?;
        let out = out_ptr(out, "out")?;
        let s: PeriodicStats = r.rt.scheduler().stats(PeriodicId(id)).ok_or_else(|| {
            FfiError::new(
                cllm_status::CLLM_ERR_NOT_FOUND,
                format!("no periodic task {id}"),
            )
        })?;
        let c = cllm_periodic_stats {
            runs: s.runs,
            skipped: s.skipped,
            failures: s.failures,
            pending: s.pending,
            last_run_ns: ns(s.last_run),
            max_run_ns: ns(s.max_run),
            interval_ns: ns(s.interval),
            priority: s.priority,
        };
        // SAFETY: checked by out_ptr.
        unsafe { write_out(out, c) };
        Ok(())
    })
}

/// The single-threaded fallback: with the background pool off, runs every
/// due periodic task now on this thread (highest priority first) and writes
/// how many ran to `*out_ran`; otherwise does nothing and writes 0, so a
/// frame loop may call it every frame.
///
/// # Safety
/// `roles` is a live handle; `out_ran` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_sched_run_due(
    roles: *const cllm_roles,
    out_ran: *mut usize,
) -> cllm_status {
    ffi_status(|| {
        // SAFETY: the caller promises a live handle or NULL.
        let r = unsafe { arg_ref(roles, "roles") }?;
        let out = out_ptr(out_ran, "out_ran")?;
        let ran = r.rt.scheduler().run_due();
        // SAFETY: checked by out_ptr.
        unsafe { write_out(out, ran) };
        Ok(())
    })
}

/// Calls `func(arg, i)` once for every `i` in `[0, n)` on `role`'s threads and
/// the calling thread, cut by `partitioning` (`CLLM_PARTITION_*`; `grain`:
/// the most items a participant takes at once for `CLLM_PARTITION_DYNAMIC`,
/// 0 = automatic, any larger value allowed (a grain of `n` or more is one
/// chunk); ignored otherwise). Returns when every call has returned. The first non-zero
/// return stops the loop: `CLLM_ERR_JOB_FAILED`. On a pool that is off the
/// loop runs on the caller alone, with the same calls. Errors also:
/// `CLLM_ERR_NULL`, `CLLM_ERR_INVALID_ARGUMENT` (role, partitioning).
///
/// # Safety
/// `roles` is a live handle; `func` may be called from several threads at
/// once with `arg`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_roles_parallel_for(
    roles: *const cllm_roles,
    role: cllm_role,
    n: usize,
    partitioning: c_int,
    grain: usize,
    func: cllm_index_fn,
    arg: *mut c_void,
) -> cllm_status {
    ffi_status(|| {
        // SAFETY: the caller promises a live handle or NULL.
        let r = unsafe { arg_ref(roles, "roles") }?;
        let func = func.ok_or_else(|| FfiError::null("func"))?;
        let role = role_of(role)?;
        let partitioning = match partitioning {
            CLLM_PARTITION_INTERLEAVED => Partitioning::Interleaved,
            CLLM_PARTITION_CONTIGUOUS => Partitioning::Contiguous,
            CLLM_PARTITION_DYNAMIC => Partitioning::Dynamic { grain },
            other => {
                return Err(FfiError::invalid(format!(
                    "unknown partitioning {other} (CLLM_PARTITION_INTERLEAVED 0, CONTIGUOUS 1, DYNAMIC 2)"
                )));
            }
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
