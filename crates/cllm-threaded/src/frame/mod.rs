//! C API of the frame guard (`cllm_frame_*`): frame timing, the emergency-stop
//! rules, the optional watchdog thread, phases and the monitoring CSV rows.
//! See the `frame-guard` crate for the rules and the column definitions.
//!
//! Files: `options.rs` (`cllm_frame_options`), `guard.rs` (create, frames,
//! stop state, statistics), `monitor.rs` (CSV rows), `phase.rs` (phases).
//! Every time is `uint64_t` nanoseconds.

use crate::error::FfiError;
use crate::guard::Handle;
use crate::status::cllm_status;
use frame_guard::{FrameError, FrameGuard, ManualClock, Monitor};
use std::cell::Cell;
use std::ffi::c_int;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub mod options;

pub mod guard;

pub mod monitor;

pub mod phase;

pub use guard::*;
pub use monitor::*;
pub use options::*;
pub use phase::*;

/// A frame guard: the frame clock, its statistics, the stop rules and the
/// monitoring rows of one frame loop. The loop thread calls begin/end or
/// tick; any thread may query it. `cllm_frame_free` must not race with other
/// calls on the same guard.
pub struct cllm_frame {
    guard: FrameGuard,
    manual: Option<ManualClock>,
    monitor: Mutex<MonitorState>,
    callback_failures: Arc<AtomicU64>,
}

// SAFETY: made only by Box::into_raw in cllm_frame_create, freed only by
// cllm_frame_free; FrameGuard, ManualClock, Mutex and the atomic are Sync.
unsafe impl Handle for cllm_frame {}

struct MonitorState {
    monitor: Monitor,
    header_written: bool,
}

impl cllm_frame {
    fn monitor(&self) -> MutexGuard<'_, MonitorState> {
        // A panic while holding the lock leaves a consistent monitor.
        self.monitor.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The largest time accepted anywhere in this API: 1e18 ns (31 years), so
/// that clock arithmetic on it cannot overflow.
const MAX_NS: u64 = 1_000_000_000_000_000_000;

/// A time argument or option in nanoseconds, at most [`MAX_NS`].
fn duration_ns(name: &str, ns: u64) -> Result<Duration, FfiError> {
    if ns > MAX_NS {
        return Err(FfiError::invalid(format!(
            "{name} is {ns} ns, over {MAX_NS} (31 years)"
        )));
    }
    Ok(Duration::from_nanos(ns))
}

fn frame_error(e: FrameError) -> FfiError {
    match e {
        FrameError::InProgress { .. } => FfiError::new(cllm_status::CLLM_ERR_BUSY, e.to_string()),
        FrameError::NotInProgress => FfiError::invalid(e.to_string()),
    }
}

thread_local! {
    /// The last non-zero return of a stop callback run on this thread, taken
    /// by the entry point that fired it.
    static CALLBACK_RC: Cell<c_int> = const { Cell::new(0) };
}

/// Runs `body`, then fails with `CLLM_ERR_JOB_FAILED` if a stop callback it
/// fired on this thread returned non-zero.
fn checking_callback(body: impl FnOnce() -> Result<(), FfiError>) -> Result<(), FfiError> {
    CALLBACK_RC.with(|rc| rc.set(0));
    body()?;
    let rc = CALLBACK_RC.with(|rc| rc.replace(0));
    if rc != 0 {
        return Err(FfiError::new(
            cllm_status::CLLM_ERR_JOB_FAILED,
            format!(
                "the stop callback returned {rc} (the frame was recorded; the guard is stopped)"
            ),
        ));
    }
    Ok(())
}
