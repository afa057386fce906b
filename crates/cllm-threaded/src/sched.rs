//! C API of the periodic scheduler of the role pools, `cllm_roles_sched_*`
//! (it takes a `cllm_roles*`): tasks run every interval on the background
//! pool, or on the caller with `cllm_roles_sched_run_due` when that pool is
//! off.

use crate::error::FfiError;
use crate::guard::{ns, out_ptr, write_out};
use crate::roles::{SharedArg, cllm_role_task_fn, cllm_roles};
use crate::status::cllm_status;
use crate::with_handle;
use pool_manager::{PeriodicId, PeriodicStats};
use std::ffi::{CStr, c_char, c_void};
use std::time::Duration;

/// Statistics of a periodic task (see `cllm_roles_sched_stats`).
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

fn not_found(id: u64) -> FfiError {
    FfiError::new(
        cllm_status::CLLM_ERR_NOT_FOUND,
        format!("no periodic task {id}"),
    )
}

/// Runs `func(arg)` every `interval_ns` nanoseconds (the first run one
/// interval from now) on the background pool, with `priority` (higher
/// first; the plan: monitoring every 1 s high, cleanup 5 s, evaluation 10 s
/// low). A run never overlaps the previous one: late due times are skipped
/// (`cllm_periodic_stats.skipped`). Non-zero returns count as failures.
/// With the background pool off, due tasks run only in
/// `cllm_roles_sched_run_due`. Writes the task's id to `*out_id`. Errors:
/// `CLLM_ERR_NULL`, `CLLM_ERR_INVALID_ARGUMENT` (interval 0),
/// `CLLM_ERR_SHUTDOWN`. `arg` must stay valid until the task is removed or
/// the pools are freed.
///
/// # Safety
/// `roles` is NULL or a live handle; `name` is NULL or a NUL-terminated
/// string; `func(arg)` may be called from a worker thread; `out_id` is NULL
/// or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_roles_sched_add(
    roles: *const cllm_roles,
    name: *const c_char,
    interval_ns: u64,
    priority: i32,
    func: cllm_role_task_fn,
    arg: *mut c_void,
    out_id: *mut u64,
) -> cllm_status {
    with_handle!(roles, |r| {
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
        let interval = Duration::from_nanos(interval_ns);
        let id = r
            .runtime()
            .scheduler()
            .add_fallible(&name, interval, priority, move || {
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
/// `roles` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_roles_sched_remove(roles: *const cllm_roles, id: u64) -> cllm_status {
    with_handle!(roles, |r| {
        if r.runtime().scheduler().remove(PeriodicId(id)) {
            Ok(())
        } else {
            Err(not_found(id))
        }
    })
}

/// Writes a periodic task's statistics to `*out`; `CLLM_ERR_NOT_FOUND` if
/// there is no such task.
///
/// # Safety
/// `roles` is NULL or a live handle; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_roles_sched_stats(
    roles: *const cllm_roles,
    id: u64,
    out: *mut cllm_periodic_stats,
) -> cllm_status {
    with_handle!(roles, |r| {
        let out = out_ptr(out, "out")?;
        let s: PeriodicStats = r
            .runtime()
            .scheduler()
            .stats(PeriodicId(id))
            .ok_or_else(|| not_found(id))?;
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
/// `roles` is NULL or a live handle; `out_ran` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_roles_sched_run_due(
    roles: *const cllm_roles,
    out_ran: *mut usize,
) -> cllm_status {
    with_handle!(roles, |r| {
        let out = out_ptr(out_ran, "out_ran")?;
        let ran = r.runtime().scheduler().run_due();
        // SAFETY: checked by out_ptr.
        unsafe { write_out(out, ran) };
        Ok(())
    })
}
