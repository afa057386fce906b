//! The monitoring CSV: header, rows (to a buffer or a file descriptor), the
//! baseline and the interval. The inputs are cumulative counters in ns.

use super::cllm_frame;
use crate::error::FfiError;
use crate::guard::{ffi_status, out_ptr, write_out};
use crate::status::cllm_status;
use crate::{text_out, with_handle};
use frame_guard::{CSV_HEADER, MonitorInputs, PoolCounters};
use std::ffi::{c_char, c_int};
use std::time::Duration;

/// The most bytes a `cllm_frame_monitor_row` row needs, its newline and NUL
/// included: a buffer this big always suffices.
pub const CLLM_FRAME_ROW_MAX: usize = 512;

/// Cumulative thread-time of one pool, in nanoseconds.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct cllm_frame_pool_counters {
    /// Sum over the pool's threads of the time spent running tasks.
    pub busy_ns: u64,
    /// Sum over the pool's threads of the time they were alive.
    pub alive_ns: u64,
}

/// A sample of cumulative counters; a monitoring row uses the difference
/// from the previous row's sample. Every field only grows. See
/// `cllm_frame_monitor_row` for the columns computed from them, and
/// `cllm_roles_monitor_inputs` to fill it from the role pools in one call.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct cllm_frame_monitor_inputs {
    /// The ai role pool.
    pub ai: cllm_frame_pool_counters,
    /// The physics role pool.
    pub physics: cllm_frame_pool_counters,
    /// The stats role pool.
    pub stats: cllm_frame_pool_counters,
    /// The background role pool.
    pub background: cllm_frame_pool_counters,
    /// The evaluation role pool.
    pub evaluation: cllm_frame_pool_counters,
    /// Lock acquisitions.
    pub lock_acquisitions: u64,
    /// Acquisitions that had to wait.
    pub lock_contended: u64,
    /// Summed work time of the participants of parallel sections, ns.
    pub parallel_work_ns: u64,
    /// Wall time of those sections, ns.
    pub parallel_wall_ns: u64,
}

impl From<&MonitorInputs> for cllm_frame_monitor_inputs {
    fn from(i: &MonitorInputs) -> Self {
        let ns = crate::guard::ns;
        let pool = |p: PoolCounters| cllm_frame_pool_counters {
            busy_ns: ns(p.busy),
            alive_ns: ns(p.alive),
        };
        cllm_frame_monitor_inputs {
            ai: pool(i.ai),
            physics: pool(i.physics),
            stats: pool(i.stats),
            background: pool(i.background),
            evaluation: pool(i.evaluation),
            lock_acquisitions: i.lock_acquisitions,
            lock_contended: i.lock_contended,
            parallel_work_ns: ns(i.parallel_work),
            parallel_wall_ns: ns(i.parallel_wall),
        }
    }
}

fn inputs_from(c: &cllm_frame_monitor_inputs) -> Result<MonitorInputs, FfiError> {
    let pool = |p: &cllm_frame_pool_counters| PoolCounters {
        busy: Duration::from_nanos(p.busy_ns),
        alive: Duration::from_nanos(p.alive_ns),
    };
    let inputs = MonitorInputs {
        ai: pool(&c.ai),
        physics: pool(&c.physics),
        stats: pool(&c.stats),
        background: pool(&c.background),
        evaluation: pool(&c.evaluation),
        lock_acquisitions: c.lock_acquisitions,
        lock_contended: c.lock_contended,
        parallel_work: Duration::from_nanos(c.parallel_work_ns),
        parallel_wall: Duration::from_nanos(c.parallel_wall_ns),
    };
    inputs
        .check()
        .map_err(|e| FfiError::invalid(format!("inputs: {e}")))?;
    Ok(inputs)
}

/// # Safety
/// `inputs` is NULL or points to a `cllm_frame_monitor_inputs`.
unsafe fn optional_inputs(
    inputs: *const cllm_frame_monitor_inputs,
) -> Result<Option<MonitorInputs>, FfiError> {
    // SAFETY: the entry points promise `inputs` is NULL or points to a
    // readable `cllm_frame_monitor_inputs` (their # Safety).
    match unsafe { inputs.as_ref() } {
        Some(c) => inputs_from(c).map(Some),
        None => Ok(None),
    }
}

impl cllm_frame {
    /// The next row, newline included; `inputs` NULL leaves the threading
    /// columns empty.
    fn next_row(&self, inputs: Option<&MonitorInputs>) -> String {
        let row = self.monitor().monitor.row(&self.guard, inputs);
        let mut line = row.to_csv();
        line.push('\n');
        line
    }
}

/// Writes the monitoring CSV header line (newline included) into the
/// caller's buffer (the text shape of docs/c-api.md: on success the text and
/// a NUL, `*out_len` = its length; `CLLM_ERR_BUFFER_TOO_SMALL` with the
/// length needed in `*out_len` if `buf_len` is not more than it). The
/// columns:
/// `timestamp,elapsed_s,interval_s,frames,fps,p50_ms,p99_ms,max_ms,mean_ms,under_budget_share,`
/// `thread_pool_utilization,ai_thread_efficiency,stats_thread_efficiency,background_thread_efficiency,`
/// `lock_contention_rate,parallel_speedup_ratio,physics_thread_efficiency,evaluation_thread_efficiency,emergency_stop`
/// (the file keeps the units its column names say). Errors also:
/// `CLLM_ERR_NULL` (out_len; buf with buf_len > 0).
///
/// # Safety
/// `buf` is NULL or writable for `buf_len` bytes; `out_len` is NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_monitor_header(
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> cllm_status {
    ffi_status(|| text_out!(buf, buf_len, out_len)?.write(&format!("{CSV_HEADER}\n")))
}

/// Ends the current monitoring interval and writes its CSV row (newline
/// included, in the header's order) into the caller's buffer: on success
/// the row and a NUL, `*out_len` = its length. A buffer of under
/// `CLLM_FRAME_ROW_MAX` bytes is refused before the interval ends, with
/// `CLLM_ERR_BUFFER_TOO_SMALL` and `*out_len = CLLM_FRAME_ROW_MAX - 1`
/// (the most a row needs). `inputs` are the cumulative counters now; the
/// row uses their difference from the previous row's (or the baseline, zero
/// by default). NULL `inputs` leaves the threading columns empty. Columns
/// (Δ = change over the interval; an empty cell when the denominator is 0):
/// - `thread_pool_utilization` = Σ Δbusy_ns / Σ Δalive_ns over the five pools;
/// - `ai_/stats_/background_/physics_/evaluation_thread_efficiency` =
///   Δbusy_ns / Δalive_ns of that pool;
/// - `lock_contention_rate` = Δlock_contended / Δlock_acquisitions;
/// - `parallel_speedup_ratio` = Δparallel_work_ns / Δparallel_wall_ns;
/// - `frames`, `fps`, `p50_ms`, `p99_ms`, `max_ms`, `mean_ms`,
///   `under_budget_share`: the frames recorded in the interval.
///
/// The utilisation, efficiency and contention columns are shares in
/// [0, 1]: an interval whose Δbusy exceeds its Δalive (samples taken a
/// moment apart) is written as 1.
///
/// Errors (checked before the interval is ended): `CLLM_ERR_NULL` (frame,
/// buf, out_len), `CLLM_ERR_BUFFER_TOO_SMALL`, `CLLM_ERR_INVALID_ARGUMENT`
/// (a pool with `busy_ns` > `alive_ns`, `lock_contended` >
/// `lock_acquisitions`).
///
/// # Safety
/// `frame` is NULL or a live guard; `inputs` is NULL or readable; `buf` is
/// NULL or writable for `buf_len` bytes; `out_len` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_monitor_row(
    frame: *mut cllm_frame,
    inputs: *const cllm_frame_monitor_inputs,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> cllm_status {
    with_handle!(frame, |f| {
        let out = text_out!(buf, buf_len, out_len)?;
        if buf_len < CLLM_FRAME_ROW_MAX {
            // Refused before the interval ends: the row is not made yet, so
            // the length reported is the most a row needs.
            return out.too_small(CLLM_FRAME_ROW_MAX - 1);
        }
        // SAFETY: the caller passes NULL or readable inputs.
        let inputs = unsafe { optional_inputs(inputs) }?;
        out.write(&f.next_row(inputs.as_ref()))
    })
}

/// Writes all of `bytes` to `fd` with SIGPIPE blocked on this thread, so a
/// pipe or socket whose reader is gone gives EPIPE (`CLLM_ERR_IO`) instead of
/// killing the process. The SIGPIPE the write raised is taken off the
/// thread's pending set (unless one was already pending before the call,
/// which stays for the caller), and the thread's signal mask is restored.
fn write_all_fd(fd: c_int, bytes: &[u8]) -> Result<(), FfiError> {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before use.
    let mut pipe_set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut old_mask: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut pending: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: every pointer is to a local sigset_t.
    let was_pending = unsafe {
        libc::sigemptyset(&mut pipe_set);
        libc::sigaddset(&mut pipe_set, libc::SIGPIPE);
        libc::sigpending(&mut pending);
        libc::sigismember(&pending, libc::SIGPIPE) == 1
    };
    // SAFETY: valid sigset pointers; only this thread's mask changes.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &pipe_set, &mut old_mask) };
    let result = write_all_fd_raw(fd, bytes);
    let broken_pipe = matches!(&result, Err(e) if e.raw_os_error() == Some(libc::EPIPE));
    if broken_pipe && !was_pending {
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid pointers; SIGPIPE is blocked, so a pending one is
        // taken without running a handler (EAGAIN if none is pending, as
        // when the process ignores SIGPIPE).
        unsafe { libc::sigtimedwait(&pipe_set, std::ptr::null_mut(), &zero) };
    }
    // SAFETY: restores the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old_mask, std::ptr::null_mut()) };
    result
        .map_err(|err| FfiError::new(cllm_status::CLLM_ERR_IO, format!("write to fd {fd}: {err}")))
}

/// Writes all of `bytes` to `fd`, retrying short writes and EINTR.
fn write_all_fd_raw(fd: c_int, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid readable slice; `write` reads at most
        // its length and does not keep the pointer.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                "write returned 0",
            ));
        }
        bytes = &bytes[n as usize..];
    }
    Ok(())
}

/// Like `cllm_frame_monitor_row`, but writes the row to the file descriptor
/// `fd`, preceded by the header line the first time this guard writes.
/// Errors: `CLLM_ERR_NULL` (frame), `CLLM_ERR_INVALID_ARGUMENT` (`fd` < 0, a
/// bad input), `CLLM_ERR_IO` (the write failed: the interval is then lost,
/// and the header is written again next time if it was not written).
///
/// A pipe or socket whose reader has gone gives `CLLM_ERR_IO` ("Broken
/// pipe"), never SIGPIPE: SIGPIPE is blocked on the calling thread during
/// the write, the one the write raised is consumed (`sigtimedwait`; a
/// SIGPIPE already pending before the call is left pending), and the
/// thread's signal mask is restored before returning.
///
/// # Safety
/// `frame` is NULL or a live guard; `inputs` is NULL or readable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_monitor_write(
    frame: *mut cllm_frame,
    inputs: *const cllm_frame_monitor_inputs,
    fd: c_int,
) -> cllm_status {
    with_handle!(frame, |f| {
        if fd < 0 {
            return Err(FfiError::invalid(format!("fd {fd} is negative")));
        }
        // SAFETY: the caller passes NULL or readable inputs.
        let inputs = unsafe { optional_inputs(inputs) }?;
        let mut state = f.monitor();
        let mut text = String::new();
        if !state.header_written {
            text.push_str(CSV_HEADER);
            text.push('\n');
        }
        let row = state.monitor.row(&f.guard, inputs.as_ref());
        text.push_str(&row.to_csv());
        text.push('\n');
        write_all_fd(fd, text.as_bytes())?;
        state.header_written = true;
        Ok(())
    })
}

/// Takes `inputs` as the starting point of the next row's differences (for
/// counters that started before the loop). Errors: `CLLM_ERR_NULL` (frame,
/// inputs), `CLLM_ERR_INVALID_ARGUMENT` (a bad input).
///
/// # Safety
/// `frame` is NULL or a live guard; `inputs` is NULL or readable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_monitor_baseline(
    frame: *mut cllm_frame,
    inputs: *const cllm_frame_monitor_inputs,
) -> cllm_status {
    with_handle!(frame, |f| {
        // SAFETY: `inputs` is NULL or readable (this function's # Safety).
        let inputs = unsafe { crate::guard::arg_ref(inputs, "inputs") }?;
        let inputs = inputs_from(inputs)?;
        f.monitor().monitor.set_baseline(&inputs);
        Ok(())
    })
}

/// Writes true to `*out` if `monitor_interval_ns` has passed since the last
/// row (or since creation), false if not. Errors: `CLLM_ERR_NULL` (frame,
/// out).
///
/// # Safety
/// `frame` is NULL or a live guard; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_frame_monitor_due(
    frame: *const cllm_frame,
    out: *mut bool,
) -> cllm_status {
    with_handle!(frame, |f| {
        let out = out_ptr(out, "out")?;
        let due = f.monitor().monitor.due(&f.guard);
        // SAFETY: checked by out_ptr.
        unsafe { write_out(out, due) };
        Ok(())
    })
}
