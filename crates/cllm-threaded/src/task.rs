//! C API of role-pool tasks, `cllm_task_*`: the handle of a task submitted
//! with `cllm_roles_submit*`, waited for from any thread and freed once.

use crate::error::FfiError;
use crate::guard::{Handle, timeout_ns};
use crate::status::cllm_status;
use crate::{free_handle, with_handle};
use pool_manager::{TaskError, TaskHandle};
use std::sync::Mutex;
use std::time::Duration;

/// A submitted task. Wait for it with `cllm_task_wait` (any thread), then
/// release it with `cllm_task_free`.
pub struct cllm_task {
    handle: TaskHandle<()>,
    /// The final status once a wait has seen it, returned again by later waits.
    outcome: Mutex<Option<FfiError>>,
}

// SAFETY: made only by Box::into_raw in cllm_task::into_raw (the submit
// functions), freed only by cllm_task_free; TaskHandle and Mutex are Sync.
unsafe impl Handle for cllm_task {}

impl cllm_task {
    /// A new C handle for a submitted task.
    pub(crate) fn into_raw(handle: TaskHandle<()>) -> *mut cllm_task {
        Box::into_raw(Box::new(cllm_task {
            handle,
            outcome: Mutex::new(None),
        }))
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

fn wait_task(task: &cllm_task, timeout: Option<Duration>) -> Result<(), FfiError> {
    let mut outcome = task.outcome.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(done) = &*outcome {
        return if done.status == cllm_status::CLLM_OK {
            Ok(())
        } else {
            Err(done.clone())
        };
    }
    match task.handle.wait_timeout(timeout.unwrap_or(Duration::MAX)) {
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
/// `task` is NULL or a live handle from a `cllm_roles_submit*` call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_task_wait(task: *const cllm_task) -> cllm_status {
    with_handle!(task, |t| wait_task(t, None))
}

/// As `cllm_task_wait`, giving up after `timeout_ns` nanoseconds with
/// `CLLM_ERR_TIMEOUT` (the task goes on; wait again later);
/// `CLLM_WAIT_FOREVER` waits as `cllm_task_wait` does.
///
/// # Safety
/// As `cllm_task_wait`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_task_wait_timeout(
    task: *const cllm_task,
    timeout_ns: u64,
) -> cllm_status {
    with_handle!(task, |t| wait_task(t, self::timeout_ns(timeout_ns)))
}

/// Releases a task handle; NULL does nothing. A task still pending goes on
/// running (its `arg` must stay valid until it has run).
///
/// # Safety
/// `task` is NULL or a live handle, not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_task_free(task: *mut cllm_task) {
    free_handle!(task)
}
