//! The values and records of the `cllm_roles_*` functions: the C enums
//! (`cllm_role`, `cllm_partition`, `cllm_drain`) with their conversions to
//! the engine's types, the option and report structs, and the callback types.
//! The functions themselves are in `roles.rs`.

use crate::error::UnknownValue;
use crate::guard::ns;
use pool_manager::{DrainPolicy, PoolSnapshot, Role};
use std::ffi::{c_char, c_int, c_void};

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
pub(super) enum PartitionKind {
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
