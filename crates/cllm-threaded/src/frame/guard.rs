//! The guard itself: create and free, frames (begin/end, tick), the manual
//! clock, the stop rules' state and callback, cumulative statistics.

use super::options::{cllm_frame_options, cllm_frame_options_default, config_from};
use super::{MonitorState, checking_callback, cllm_frame, duration_ns, frame_error};
use crate::error::FfiError;
use crate::guard::{ffi_status, ns, out_ptr, write_out};
use crate::status::cllm_status;
use crate::{free_handle, with_handle};
use frame_guard::{FrameError, FrameGuard, FrameStats, ManualClock, Monitor, StopInfo, StopReason};
use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Size of `cllm_frame_stop.message`, NUL included.
pub const CLLM_FRAME_MESSAGE_MAX: usize = 192;

/// The rule that stopped the loop (`uint32_t`, one of
/// `CLLM_FRAME_STOP_REASON_*`).
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct cllm_frame_stop_reason(pub u32);

/// Not stopped.
pub const CLLM_FRAME_STOP_REASON_NONE: cllm_frame_stop_reason = cllm_frame_stop_reason(0);
/// K consecutive frames over the slow-frame limit.
pub const CLLM_FRAME_STOP_REASON_SLOW_FRAMES: cllm_frame_stop_reason = cllm_frame_stop_reason(1);
/// Too many slow samples in a row (the sampled rule).
pub const CLLM_FRAME_STOP_REASON_SLOW_SAMPLES: cllm_frame_stop_reason = cllm_frame_stop_reason(2);
/// Resident memory over the limit.
pub const CLLM_FRAME_STOP_REASON_MEMORY: cllm_frame_stop_reason = cllm_frame_stop_reason(3);

/// The stop state of a guard (`cllm_frame_stop_info`, and the argument of
/// the stop callback).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct cllm_frame_stop {
    /// Which rule fired; `CLLM_FRAME_STOP_REASON_NONE` if the guard is not
    /// stopped (then every other field is zero).
    pub reason: cllm_frame_stop_reason,
    /// Index (from 0) of the frame at which the rule fired: the K-th slow
    /// frame, or the frame in progress (or next to begin) at a sample or
    /// memory check.
    pub frame: u64,
    /// Guard-clock time of the firing, ns since the guard was created.
    pub at_ns: u64,
    /// The time that broke the limit: the K-th frame's duration (or its age
    /// if still in progress), or the sample's frame gap; 0 for memory.
    pub value_ns: u64,
    /// The limit of `value_ns`; 0 for memory.
    pub limit_ns: u64,
    /// The resident memory that broke the limit, bytes; 0 for the time rules.
    pub memory_bytes: u64,
    /// The memory limit, bytes; 0 for the time rules.
    pub memory_limit_bytes: u64,
    /// The rule's count (K, or slow samples); 0 for memory.
    pub count: u32,
    /// True if the K-th slow frame had not ended yet (a frozen loop, seen by
    /// the watchdog or `cllm_frame_poll`).
    pub in_progress: bool,
    /// A sentence describing the stop, NUL-terminated (empty if not stopped).
    pub message: [c_char; CLLM_FRAME_MESSAGE_MAX],
}

/// Cumulative figures of a guard. Frame times are 0 while `frames` is 0.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct cllm_frame_statistics {
    /// Frames recorded (ended or ticked).
    pub frames: u64,
    /// Median frame time, ns (within 1.6 %).
    pub p50_ns: u64,
    /// 99th-percentile frame time, ns (within 1.6 %).
    pub p99_ns: u64,
    /// Longest frame, ns (exact).
    pub max_ns: u64,
    /// Shortest frame, ns (exact).
    pub min_ns: u64,
    /// Mean frame time, ns.
    pub mean_ns: u64,
    /// Share of frames at most `budget_ns` (0 when no frame).
    pub under_budget_share: f64,
    /// The budget, ns.
    pub budget_ns: u64,
    /// Frames longer than the slow-frame limit.
    pub slow_frames: u64,
    /// Current run of consecutive slow frames.
    pub consecutive_slow: u32,
    /// Frames seen in progress past the slow-frame limit.
    pub stalled_frames: u64,
    /// Samples taken by the sampled rule.
    pub samples: u64,
    /// Samples that saw a frame gap over the limit.
    pub slow_samples: u64,
    /// Firings of the consecutive rule (the first one stops; rules go on
    /// counting afterwards).
    pub trips_consecutive: u64,
    /// Firings of the sampled rule.
    pub trips_sampled: u64,
    /// Firings of the memory rule.
    pub trips_memory: u64,
    /// Last resident-memory reading in bytes, 0 if the memory rule never
    /// read it.
    pub resident_bytes: u64,
    /// Index of the frame in progress, -1 if none.
    pub frame_in_progress: i64,
    /// Stop callbacks that returned non-zero.
    pub callback_failures: u64,
    /// Polls made by the watchdog thread.
    pub watchdog_polls: u64,
}

/// Called once when a rule first stops the loop, with the stop state (valid
/// during the call only). It runs on the thread whose call fired the rule:
/// the loop's (`cllm_frame_end`, `cllm_frame_tick`, `cllm_frame_poll`...) or
/// the watchdog thread, so `arg` must be usable from there. Return 0; a
/// non-zero value makes the call that fired it return `CLLM_ERR_JOB_FAILED`
/// (the frame is still recorded and the guard stopped) and is counted in
/// `callback_failures`.
pub type cllm_frame_stop_fn =
    Option<unsafe extern "C" fn(arg: *mut c_void, info: *const cllm_frame_stop) -> c_int>;

/// The C caller's callback argument: by registering it, the caller promised
/// it may be used from the thread that fires the stop.
#[derive(Clone, Copy)]
struct CallbackArg(*mut c_void);
// SAFETY: see above; the library never dereferences the pointer.
unsafe impl Send for CallbackArg {}
// SAFETY: as above.
unsafe impl Sync for CallbackArg {}

impl CallbackArg {
    /// The pointer. A method, so that a closure captures the whole `Send`
    /// wrapper rather than its raw-pointer field.
    fn get(self) -> *mut c_void {
        self.0
    }
}

fn empty_stop() -> cllm_frame_stop {
    cllm_frame_stop {
        reason: CLLM_FRAME_STOP_REASON_NONE,
        frame: 0,
        at_ns: 0,
        value_ns: 0,
        limit_ns: 0,
        memory_bytes: 0,
        memory_limit_bytes: 0,
        count: 0,
        in_progress: false,
        message: [0; CLLM_FRAME_MESSAGE_MAX],
    }
}

fn stop_to_c(info: &StopInfo) -> cllm_frame_stop {
    let mut out = empty_stop();
    out.frame = info.frame;
    out.at_ns = ns(info.at);
    match &info.reason {
        StopReason::SlowFrames {
            count,
            limit,
            last,
            in_progress,
        } => {
            out.reason = CLLM_FRAME_STOP_REASON_SLOW_FRAMES;
            (out.value_ns, out.limit_ns, out.count, out.in_progress) =
                (ns(*last), ns(*limit), *count, *in_progress);
        }
        StopReason::SlowSamples {
            count,
            gap_limit,
            last_gap,
        } => {
            out.reason = CLLM_FRAME_STOP_REASON_SLOW_SAMPLES;
            (out.value_ns, out.limit_ns, out.count) = (ns(*last_gap), ns(*gap_limit), *count);
        }
        StopReason::Memory {
            resident_bytes,
            limit_bytes,
        } => {
            out.reason = CLLM_FRAME_STOP_REASON_MEMORY;
            (out.memory_bytes, out.memory_limit_bytes) = (*resident_bytes, *limit_bytes);
        }
    }
    let text = info.to_string();
    let bytes = &text.as_bytes()[..text.len().min(CLLM_FRAME_MESSAGE_MAX - 1)];
    for (slot, &b) in out.message.iter_mut().zip(bytes) {
        *slot = b as c_char;
    }
    out
}

fn stats_to_c(
    s: &FrameStats,
    callback_failures: u64,
    watchdog_polls: u64,
) -> cllm_frame_statistics {
    cllm_frame_statistics {
        frames: s.frames,
        p50_ns: ns(s.p50),
        p99_ns: ns(s.p99),
        max_ns: ns(s.max),
        min_ns: ns(s.min),
        mean_ns: ns(s.mean),
        under_budget_share: s.under_budget_share,
        budget_ns: ns(s.budget),
        slow_frames: s.slow_frames,
        consecutive_slow: s.consecutive_slow,
        stalled_frames: s.stalled_frames,
        samples: s.samples,
        slow_samples: s.slow_samples,
        trips_consecutive: s.trips.consecutive,
        trips_sampled: s.trips.sampled,
        trips_memory: s.trips.memory,
        resident_bytes: s.resident_bytes.unwrap_or(0),
        frame_in_progress: s
            .frame_in_progress
            .map_or(-1, |i| i64::try_from(i).unwrap_or(i64::MAX)),
        callback_failures,
        watchdog_polls,
    }
}

/// Creates a frame guard; `*out` receives it on success. `options` may be
/// NULL for the defaults. Errors: `CLLM_ERR_NULL` (out),
/// `CLLM_ERR_INVALID_ARGUMENT` (unknown rule bits, a time over 1e18 ns, a
/// zero count, budget or limit, an interval under 1 ms, a zero memory limit
/// with the memory rule on), `CLLM_ERR_SPAWN` (the watchdog thread could
/// not start).
///
/// # Safety
/// `options` is NULL or points to a `cllm_frame_options`; `out` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_create(
    options: *const cllm_frame_options,
    out: *mut *mut cllm_frame,
) -> cllm_status {
    ffi_status(|| {
        let out = out_ptr(out, "out")?;
        // SAFETY: the caller passes NULL or valid options.
        let options = unsafe { options.as_ref() }
            .copied()
            .unwrap_or_else(|| cllm_frame_options_default());
        let config = config_from(&options)?;
        let manual = options.manual_clock.then(ManualClock::new);
        let mut builder = FrameGuard::builder(config);
        if let Some(clock) = &manual {
            builder = builder.clock(clock.clone());
        }
        let guard = builder.build().map_err(|e| match e {
            frame_guard::BuildError::Config(c) => FfiError::invalid(c.to_string()),
            frame_guard::BuildError::Spawn(s) => {
                FfiError::new(cllm_status::CLLM_ERR_SPAWN, format!("watchdog thread: {s}"))
            }
        })?;
        let monitor = Mutex::new(MonitorState {
            monitor: Monitor::new(&guard),
            header_written: false,
        });
        let frame = cllm_frame {
            guard,
            manual,
            monitor,
            callback_failures: Arc::new(AtomicU64::new(0)),
        };
        // SAFETY: `out` was checked and is writable.
        unsafe { write_out(out, Box::into_raw(Box::new(frame))) };
        Ok(())
    })
}

/// Frees a guard (stopping and joining its watchdog thread, after any stop
/// callback it is running). NULL is a no-op.
///
/// # Safety
/// `frame` is NULL or a guard from `cllm_frame_create`, not used after this
/// call, and not freed from inside its own stop callback.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_free(frame: *mut cllm_frame) {
    free_handle!(frame)
}

/// Begins a frame. Also runs the sampled and memory checks that are due.
/// Errors: `CLLM_ERR_NULL`, `CLLM_ERR_BUSY` (a frame is already in
/// progress), `CLLM_ERR_JOB_FAILED` (a stop callback fired here returned
/// non-zero; the frame has begun).
///
/// # Safety
/// `frame` is NULL or a live guard.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_begin(frame: *mut cllm_frame) -> cllm_status {
    with_handle!(frame, |f| checking_callback(|| {
        f.guard.begin_frame().map(|_| ()).map_err(frame_error)
    }))
}

/// Ends the frame in progress, records its duration and applies the rules.
/// Errors: `CLLM_ERR_NULL`, `CLLM_ERR_INVALID_ARGUMENT` (no frame in
/// progress), `CLLM_ERR_JOB_FAILED` (the stop callback returned non-zero;
/// the frame is recorded).
///
/// # Safety
/// `frame` is NULL or a live guard.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_end(frame: *mut cllm_frame) -> cllm_status {
    with_handle!(frame, |f| checking_callback(|| {
        f.guard.end_frame().map(|_| ()).map_err(frame_error)
    }))
}

/// Records a frame of `duration_ns` measured by the caller (or injected).
/// With the system clock the frame ends now; with `manual_clock` the clock
/// first moves forward by `duration_ns`, so frames are back to back.
/// Errors: `CLLM_ERR_NULL`, `CLLM_ERR_INVALID_ARGUMENT` (over 1e18 ns),
/// `CLLM_ERR_BUSY` (a frame begun with `cllm_frame_begin` is in progress),
/// `CLLM_ERR_JOB_FAILED` (the stop callback returned non-zero; the frame is
/// recorded).
///
/// # Safety
/// `frame` is NULL or a live guard.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_tick(frame: *mut cllm_frame, duration_ns: u64) -> cllm_status {
    with_handle!(frame, |f| {
        let duration = super::duration_ns("duration_ns", duration_ns)?;
        // Checked before the manual clock moves, so a refused tick changes nothing.
        if let Some(p) = f.guard.frame_in_progress() {
            return Err(frame_error(FrameError::InProgress { frame: p }));
        }
        if let Some(clock) = &f.manual {
            clock.advance(duration);
        }
        checking_callback(|| {
            f.guard
                .record_frame(duration)
                .map(|_| ())
                .map_err(frame_error)
        })
    })
}

/// Moves a manual clock forward by `by_ns` without recording a frame (time
/// passing inside a frame, or between frames); then call `cllm_frame_poll`
/// or end the frame to apply the rules. Errors: `CLLM_ERR_NULL`,
/// `CLLM_ERR_INVALID_ARGUMENT` (over 1e18 ns, or the guard uses the system
/// clock).
///
/// # Safety
/// `frame` is NULL or a live guard.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_advance(frame: *mut cllm_frame, by_ns: u64) -> cllm_status {
    with_handle!(frame, |f| {
        let by = duration_ns("by_ns", by_ns)?;
        let clock = f.manual.as_ref().ok_or_else(|| {
            FfiError::invalid(
                "this guard runs on the system clock; only a manual_clock guard can be advanced",
            )
        })?;
        clock.advance(by);
        Ok(())
    })
}

/// Runs the time-based checks now: samples that are due, the memory check,
/// and a frame in progress past the slow-frame limit (flagged as stalled; if
/// it is the K-th slow frame in a row, the stop fires now). The watchdog
/// thread does this periodically. Errors: `CLLM_ERR_NULL`,
/// `CLLM_ERR_JOB_FAILED` (the stop callback returned non-zero).
///
/// # Safety
/// `frame` is NULL or a live guard.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_poll(frame: *mut cllm_frame) -> cllm_status {
    with_handle!(frame, |f| checking_callback(|| {
        f.guard.poll();
        Ok(())
    }))
}

/// Writes true to `*out` if a rule has stopped the loop, false if not. One
/// atomic load: cheap enough for every frame. Errors: `CLLM_ERR_NULL`
/// (frame, out).
///
/// # Safety
/// `frame` is NULL or a live guard; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_is_stopped(
    frame: *const cllm_frame,
    out: *mut bool,
) -> cllm_status {
    with_handle!(frame, |f| {
        let out = out_ptr(out, "out")?;
        // SAFETY: checked by out_ptr.
        unsafe { write_out(out, f.guard.is_stopped()) };
        Ok(())
    })
}

/// Writes the stop state to `*out` (reason `CLLM_FRAME_STOP_REASON_NONE` if
/// the guard is not stopped). Errors: `CLLM_ERR_NULL` (frame, out).
///
/// # Safety
/// `frame` is NULL or a live guard; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_stop_info(
    frame: *const cllm_frame,
    out: *mut cllm_frame_stop,
) -> cllm_status {
    with_handle!(frame, |f| {
        let out = out_ptr(out, "out")?;
        let info = f
            .guard
            .stop_info()
            .map_or_else(empty_stop, |i| stop_to_c(&i));
        // SAFETY: `out` was checked and is writable.
        unsafe { write_out(out, info) };
        Ok(())
    })
}

/// The name of a stop reason (`"CLLM_FRAME_STOP_REASON_MEMORY"`), or
/// `"CLLM_FRAME_STOP_REASON_UNKNOWN"` for any other value. Static; never
/// free it.
#[unsafe(no_mangle)]
pub extern "C" fn cllm_frame_stop_reason_str(reason: cllm_frame_stop_reason) -> *const c_char {
    match reason {
        CLLM_FRAME_STOP_REASON_NONE => c"CLLM_FRAME_STOP_REASON_NONE",
        CLLM_FRAME_STOP_REASON_SLOW_FRAMES => c"CLLM_FRAME_STOP_REASON_SLOW_FRAMES",
        CLLM_FRAME_STOP_REASON_SLOW_SAMPLES => c"CLLM_FRAME_STOP_REASON_SLOW_SAMPLES",
        CLLM_FRAME_STOP_REASON_MEMORY => c"CLLM_FRAME_STOP_REASON_MEMORY",
        _ => c"CLLM_FRAME_STOP_REASON_UNKNOWN",
    }
    .as_ptr()
}

/// Writes the cumulative figures to `*out`. Errors: `CLLM_ERR_NULL`.
///
/// # Safety
/// `frame` is NULL or a live guard; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_stats(
    frame: *const cllm_frame,
    out: *mut cllm_frame_statistics,
) -> cllm_status {
    with_handle!(frame, |f| {
        let out = out_ptr(out, "out")?;
        let stats = stats_to_c(
            &f.guard.stats(),
            f.callback_failures.load(Ordering::Relaxed),
            f.guard.watchdog_polls(),
        );
        // SAFETY: `out` was checked and is writable.
        unsafe { write_out(out, stats) };
        Ok(())
    })
}

/// Sets the function called once when a rule first stops the loop (see
/// `cllm_frame_stop_fn`); `callback` NULL removes it. Not called for a stop that
/// already happened. Errors: `CLLM_ERR_NULL` (frame).
///
/// # Safety
/// `frame` is NULL or a live guard; `callback`, if set, may be called with `arg`
/// from the loop thread or the watchdog thread until it is replaced or the
/// guard is freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_set_stop_callback(
    frame: *mut cllm_frame,
    callback: cllm_frame_stop_fn,
    arg: *mut c_void,
) -> cllm_status {
    with_handle!(frame, |f| {
        let Some(callback) = callback else {
            f.guard.clear_on_stop();
            return Ok(());
        };
        let arg = CallbackArg(arg);
        let failures = Arc::clone(&f.callback_failures);
        f.guard.set_on_stop(move |info| {
            let c_info = stop_to_c(info);
            // SAFETY: the caller registered `callback` for `arg` and promised
            // it may run on this thread; `c_info` outlives the call.
            let rc = unsafe { callback(arg.get(), &c_info) };
            if rc != 0 {
                failures.fetch_add(1, Ordering::Relaxed);
                super::CALLBACK_RC.with(|slot| slot.set(rc));
            }
        });
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::last_error_message;
    use std::time::Duration;

    #[test]
    fn a_long_stop_message_is_truncated_and_nul_terminated() {
        let info = StopInfo {
            reason: StopReason::Memory {
                resident_bytes: u64::MAX,
                limit_bytes: 1,
            },
            frame: u64::MAX,
            at: Duration::MAX,
        };
        let c = stop_to_c(&info);
        assert_eq!(c.message[CLLM_FRAME_MESSAGE_MAX - 1], 0);
        assert!(c.message[0] != 0);
        assert_eq!(
            (c.memory_bytes, c.memory_limit_bytes, c.value_ns),
            (u64::MAX, 1, 0)
        );
        assert_eq!(c.at_ns, u64::MAX, "saturated");
    }

    #[test]
    fn null_frame_is_named() {
        // SAFETY: NULL is a valid argument.
        let status = unsafe { cllm_frame_begin(std::ptr::null_mut()) };
        assert_eq!(status, cllm_status::CLLM_ERR_NULL);
        assert_eq!(last_error_message(), "frame is NULL");
    }
}
