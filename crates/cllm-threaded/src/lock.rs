//! C API of the counting lock (`cllm_lock_*`): a mutex that counts
//! contention and takes part in deadlock detection, the process-wide
//! contention figures, and the deadlock check. See the `sync-stats` crate.
//!
//! Durations are `uint64_t` nanoseconds, like everywhere in the C API.
//!
//! A program built with ThreadSanitizer is told about each hold (acquired
//! after locking, released before unlocking, the handle as the key): the
//! lock itself is uninstrumented Rust, so TSan would otherwise report the
//! data it protects.

use crate::error::FfiError;
use crate::guard::{Handle, ffi_status, out_ptr, write_out};
use crate::status::cllm_status;
use crate::{free_handle, with_handle};
use std::ffi::{CStr, c_char};
use std::time::Duration;
use sync_stats::{CountingMutex, LockError, LockStats};
use thread_support::tsan;

/// A mutex with a name that counts acquisitions, contended acquisitions and
/// wait time, and that the deadlock detector sees. It is an error-checking
/// mutex: only the thread that locked it may unlock it, and a thread that
/// locks it again while holding it gets `CLLM_ERR_DEADLOCK` instead of
/// hanging. Any thread may use it; `cllm_lock_free` must not race with other
/// calls on the same lock.
pub struct cllm_lock {
    lock: CountingMutex<()>,
}

// SAFETY: made only by Box::into_raw in cllm_lock_create, freed only by
// cllm_lock_free; CountingMutex<()> is Sync.
unsafe impl Handle for cllm_lock {}

/// Contention figures of one lock (`cllm_lock_stats`) or of every counting
/// lock of the process, freed ones included (`cllm_lock_global_stats`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct cllm_lock_contention {
    /// Successful acquisitions.
    pub acquisitions: u64,
    /// Acquisitions that found the lock taken and had to wait.
    pub contended: u64,
    /// Nanoseconds spent waiting in contended acquisitions.
    pub wait_ns: u64,
    /// `contended / acquisitions` (0 without acquisitions): the monitoring
    /// column `lock_contention_rate`.
    pub contention_rate: f64,
}

impl From<LockStats> for cllm_lock_contention {
    fn from(s: LockStats) -> Self {
        Self {
            acquisitions: s.acquisitions,
            contended: s.contended,
            wait_ns: crate::guard::ns(s.wait),
            contention_rate: s.contention_rate(),
        }
    }
}

fn lock_error(lock: &cllm_lock, e: LockError) -> FfiError {
    match e {
        LockError::Timeout => FfiError::new(
            cllm_status::CLLM_ERR_TIMEOUT,
            format!("lock {:?}: timed out", lock.lock.name()),
        ),
        LockError::Deadlock(report) => {
            FfiError::new(cllm_status::CLLM_ERR_DEADLOCK, report.to_string())
        }
    }
}

/// Creates an unlocked counting mutex named `name` (copied; it appears in
/// deadlock reports) and stores it in `*out`.
///
/// Errors: `CLLM_ERR_NULL` if `name` or `out` is NULL.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_lock_create(
    name: *const c_char,
    out: *mut *mut cllm_lock,
) -> cllm_status {
    ffi_status(|| {
        let out = out_ptr(out, "out")?;
        if name.is_null() {
            return Err(FfiError::null("name"));
        }
        // SAFETY: not NULL (checked above) and NUL-terminated by this
        // function's contract; read only here (the name is copied).
        let name = unsafe { CStr::from_ptr(name) }
            .to_string_lossy()
            .into_owned();
        let lock = Box::new(cllm_lock {
            lock: CountingMutex::new(name, ()),
        });
        // SAFETY: checked by out_ptr.
        unsafe { write_out(out, Box::into_raw(lock)) };
        Ok(())
    })
}

/// Frees a lock made by `cllm_lock_create`. NULL does nothing. Freeing a
/// held lock ends the hold; no thread may wait for it or use it afterwards.
///
/// # Safety
/// `lock` must be NULL or a live lock, not used by any other call now or later.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_lock_free(lock: *mut cllm_lock) {
    free_handle!(lock)
}

/// Locks, waiting as long as needed. A thread that waits longer than the
/// deadlock check period (`CLLM_DEADLOCK_CHECK_MS`, default 200) looks for a
/// wait-for cycle and prints it on standard error once; it keeps waiting
/// (use `cllm_lock_lock_timeout` to give up instead).
///
/// Errors: `CLLM_ERR_NULL`; `CLLM_ERR_DEADLOCK` if the calling thread
/// already holds the lock.
///
/// # Safety
/// `lock` must be NULL or a live lock.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_lock_lock(lock: *const cllm_lock) -> cllm_status {
    with_handle!(lock, |lock| {
        if lock.lock.is_held_by_current_thread() {
            return Err(FfiError::new(
                cllm_status::CLLM_ERR_DEADLOCK,
                format!(
                    "lock {:?} is already held by the calling thread",
                    lock.lock.name()
                ),
            ));
        }
        // Held across calls: the guard is forgotten and `cllm_lock_unlock`
        // ends the hold.
        std::mem::forget(lock.lock.lock());
        tsan::acquire(lock);
        Ok(())
    })
}

/// Locks if the lock is free now, without waiting.
///
/// Errors: `CLLM_ERR_NULL`; `CLLM_ERR_BUSY` if any thread (the caller
/// included) holds it.
///
/// # Safety
/// `lock` must be NULL or a live lock.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_lock_trylock(lock: *const cllm_lock) -> cllm_status {
    with_handle!(lock, |lock| {
        match lock.lock.try_lock() {
            Some(guard) => {
                std::mem::forget(guard);
                tsan::acquire(lock);
                Ok(())
            }
            None => Err(FfiError::new(
                cllm_status::CLLM_ERR_BUSY,
                format!("lock {:?} is held", lock.lock.name()),
            )),
        }
    })
}

/// Locks, waiting at most `timeout_ns` nanoseconds (`CLLM_WAIT_FOREVER`:
/// no time limit), and gives up as soon as the deadlock detector finds the
/// calling thread in a wait-for cycle (after the deadlock check period), so
/// that the caller can release what it holds and retry.
///
/// Errors: `CLLM_ERR_NULL`; `CLLM_ERR_TIMEOUT`; `CLLM_ERR_DEADLOCK` (the
/// last error names every thread and lock of the cycle; also at once if the
/// calling thread already holds the lock).
///
/// # Safety
/// `lock` must be NULL or a live lock.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_lock_lock_timeout(
    lock: *const cllm_lock,
    timeout_ns: u64,
) -> cllm_status {
    // Duration::MAX: the lock caps the deadline far in the future.
    let timeout = crate::guard::timeout_ns(timeout_ns).unwrap_or(Duration::MAX);
    with_handle!(lock, |lock| {
        match lock.lock.lock_checked(timeout) {
            Ok(guard) => {
                std::mem::forget(guard);
                tsan::acquire(lock);
                Ok(())
            }
            Err(e) => Err(lock_error(lock, e)),
        }
    })
}

/// Unlocks a lock held by the calling thread.
///
/// Errors: `CLLM_ERR_NULL`; `CLLM_ERR_INVALID_ARGUMENT` if the calling
/// thread does not hold the lock (unlocked, or held by another thread): the
/// lock is left as it was.
///
/// # Safety
/// `lock` must be NULL or a live lock.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_lock_unlock(lock: *const cllm_lock) -> cllm_status {
    with_handle!(lock, |lock| {
        if !lock.lock.is_held_by_current_thread() {
            return Err(FfiError::invalid(format!(
                "lock {:?} is not held by the calling thread",
                lock.lock.name()
            )));
        }
        tsan::release(lock);
        // SAFETY: this thread holds the lock through a guard forgotten by
        // `cllm_lock_lock` / `_trylock` / `_lock_timeout` (the C API never
        // keeps a live guard), as the owner check just proved.
        unsafe { lock.lock.force_unlock() };
        Ok(())
    })
}

/// Writes the lock's contention figures since creation to `*out`.
///
/// Errors: `CLLM_ERR_NULL` if `lock` or `out` is NULL.
///
/// # Safety
/// `lock` must be NULL or a live lock; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_lock_stats(
    lock: *const cllm_lock,
    out: *mut cllm_lock_contention,
) -> cllm_status {
    with_handle!(lock, |lock| {
        let out = out_ptr(out, "out")?;
        // SAFETY: checked by out_ptr.
        unsafe { write_out(out, lock.lock.stats().into()) };
        Ok(())
    })
}

/// Writes the sum over every counting lock the process ever created (C and
/// Rust, freed ones included) to `*out`. Two readings subtracted give an
/// interval's figures.
///
/// Errors: `CLLM_ERR_NULL` if `out` is NULL.
///
/// # Safety
/// `out` must be NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_lock_global_stats(out: *mut cllm_lock_contention) -> cllm_status {
    ffi_status(|| {
        let out = out_ptr(out, "out")?;
        // SAFETY: checked by out_ptr.
        unsafe { write_out(out, sync_stats::global_lock_stats().into()) };
        Ok(())
    })
}

/// Sets, for the whole process, how long a thread waits in a counting lock
/// before it looks for a deadlock (and again after each further period), in
/// nanoseconds; 0 turns the automatic check off (`cllm_lock_check_deadlocks`
/// still works). Overrides the environment variable `CLLM_DEADLOCK_CHECK_MS`
/// (milliseconds, default 200). Always returns `CLLM_OK`.
#[unsafe(no_mangle)]
pub extern "C" fn cllm_lock_set_deadlock_check_ns(period_ns: u64) -> cllm_status {
    ffi_status(|| {
        let period = (period_ns > 0).then(|| Duration::from_nanos(period_ns));
        sync_stats::configure(&sync_stats::SyncConfig {
            deadlock_check: period,
        });
        Ok(())
    })
}

/// Looks for a deadlock among the threads blocked in counting locks now.
///
/// Returns `CLLM_OK` if there is none, `CLLM_ERR_DEADLOCK` if there is: the
/// last error then describes every cycle (threads and locks by name).
#[unsafe(no_mangle)]
pub extern "C" fn cllm_lock_check_deadlocks() -> cllm_status {
    ffi_status(|| {
        let reports = sync_stats::detect_deadlocks();
        if reports.is_empty() {
            return Ok(());
        }
        let text: Vec<String> = reports.iter().map(ToString::to_string).collect();
        Err(FfiError::new(
            cllm_status::CLLM_ERR_DEADLOCK,
            text.join("\n"),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::last_error_message;
    use std::ptr;

    #[test]
    fn unlock_by_a_thread_that_does_not_hold_the_lock_is_an_error() {
        let mut lock = ptr::null_mut();
        // SAFETY: valid name and out pointer; the lock is freed at the end.
        unsafe {
            assert_eq!(
                cllm_lock_create(c"t".as_ptr(), &mut lock),
                cllm_status::CLLM_OK
            );
            assert_eq!(
                cllm_lock_unlock(lock),
                cllm_status::CLLM_ERR_INVALID_ARGUMENT
            );
            assert!(
                last_error_message().contains("not held"),
                "{}",
                last_error_message()
            );
            assert_eq!(cllm_lock_lock(lock), cllm_status::CLLM_OK);
            assert_eq!(cllm_lock_lock(lock), cllm_status::CLLM_ERR_DEADLOCK);
            let addr = lock as usize;
            let other = std::thread::spawn(move || cllm_lock_unlock(addr as *const cllm_lock))
                .join()
                .unwrap();
            assert_eq!(other, cllm_status::CLLM_ERR_INVALID_ARGUMENT);
            assert_eq!(cllm_lock_unlock(lock), cllm_status::CLLM_OK);
            cllm_lock_free(lock);
        }
    }
}
