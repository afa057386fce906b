//! The panic boundary and argument checks that every C entry point goes through.
//!
//! Every `extern "C"` function body runs inside [`ffi_status`] or [`ffi_value`]:
//! a Rust panic never unwinds into C, and every failure leaves its message in
//! the thread's last error.
//!
//! Quiet panics: Rust's default panic hook prints "thread ... panicked at"
//! on stderr even for a panic that is caught, which for a C host is noise
//! from a library (the message already comes back as `CLLM_ERR_PANIC` and
//! `cllm_last_error()`, or in a task's error). The first entry point called
//! installs a hook that prints nothing for panics inside an entry point on
//! the calling thread or on the library's own threads (named `cllm-*`), and
//! hands every other panic to the hook that was installed before, so the
//! host's own panics print as they did. `CLLM_PANIC_MESSAGES=1` in the
//! environment keeps the library's messages too (for debugging).

use crate::error::{FfiError, set_last_error};
use crate::status::cllm_status;
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

pub use sphere_pool::panic_message;

/// Runs `body` inside the panic boundary and turns its outcome into a status.
pub fn ffi_status(body: impl FnOnce() -> Result<(), FfiError>) -> cllm_status {
    ffi_value(|e| e.status, || body().map(|()| cllm_status::CLLM_OK))
}

thread_local! {
    /// How many entry points the calling thread is inside (callbacks may
    /// call entry points again).
    static INSIDE_ENTRY: Cell<u32> = const { Cell::new(0) };
}

static QUIET_HOOK: Once = Once::new();

/// True if a panic now is one the library catches or owns.
fn panic_is_ours() -> bool {
    INSIDE_ENTRY.try_with(|d| d.get() > 0).unwrap_or(false)
        || std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("cllm-"))
}

/// Installs the quiet hook once (see the module docs).
pub fn install_quiet_panic_hook() {
    QUIET_HOOK.call_once(|| {
        if std::env::var_os("CLLM_PANIC_MESSAGES").is_some_and(|v| v == "1") {
            return;
        }
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !panic_is_ours() {
                previous(info);
            }
        }));
    });
}

/// Runs `body` inside the panic boundary; on failure records the error and
/// returns `on_error(&error)` instead (for functions that return a value).
pub fn ffi_value<T>(
    on_error: impl FnOnce(&FfiError) -> T,
    body: impl FnOnce() -> Result<T, FfiError>,
) -> T {
    install_quiet_panic_hook();
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            let _ = INSIDE_ENTRY.try_with(|d| d.set(d.get() - 1));
        }
    }
    let _ = INSIDE_ENTRY.try_with(|d| d.set(d.get() + 1));
    let leave = Leave;
    let outcome = catch_unwind(AssertUnwindSafe(body));
    drop(leave);
    let error = match outcome {
        Ok(Ok(value)) => return value,
        Ok(Err(error)) => error,
        Err(payload) => FfiError::new(
            cllm_status::CLLM_ERR_PANIC,
            format!("internal panic: {}", panic_message(payload.as_ref())),
        ),
    };
    set_last_error(&error.message);
    on_error(&error)
}

/// Borrows `*ptr`, or fails with `CLLM_ERR_NULL` naming the argument.
///
/// # Safety
/// A non-NULL `ptr` must point to a live `T` for the returned lifetime.
pub unsafe fn arg_ref<'a, T>(ptr: *const T, name: &str) -> Result<&'a T, FfiError> {
    // SAFETY: the caller promises that a non-NULL pointer is valid.
    unsafe { ptr.as_ref() }.ok_or_else(|| FfiError::null(name))
}

/// Borrows `*ptr` mutably, or fails with `CLLM_ERR_NULL` naming the argument.
///
/// # Safety
/// A non-NULL `ptr` must point to a live `T`, not aliased for the lifetime.
pub unsafe fn arg_mut<'a, T>(ptr: *mut T, name: &str) -> Result<&'a mut T, FfiError> {
    // SAFETY: the caller promises that a non-NULL pointer is valid and unique.
    unsafe { ptr.as_mut() }.ok_or_else(|| FfiError::null(name))
}

/// Checks that an output pointer is not NULL before any work is done, so that
/// outputs can be written only on success.
pub fn out_ptr<T>(ptr: *mut T, name: &str) -> Result<*mut T, FfiError> {
    if ptr.is_null() {
        Err(FfiError::null(name))
    } else {
        Ok(ptr)
    }
}

/// Writes `value` to a checked output pointer.
///
/// # Safety
/// `ptr` must have passed [`out_ptr`] and point to writable memory for a `T`.
pub unsafe fn write_out<T>(ptr: *mut T, value: T) {
    // SAFETY: the caller checked the pointer; `write` does not drop the old
    // (possibly uninitialised) contents.
    unsafe { ptr.write(value) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::last_error_message;

    #[test]
    fn a_panic_becomes_err_panic_with_its_message() {
        let status = ffi_status(|| panic!("boom at {}", 42));
        assert_eq!(status, cllm_status::CLLM_ERR_PANIC);
        assert!(last_error_message().contains("boom at 42"));
    }

    #[test]
    fn an_error_sets_the_last_error_and_success_returns_ok() {
        let status = ffi_status(|| Err(FfiError::invalid("sphere 9 of 2")));
        assert_eq!(status, cllm_status::CLLM_ERR_INVALID_ARGUMENT);
        assert_eq!(last_error_message(), "sphere 9 of 2");
        assert_eq!(ffi_status(|| Ok(())), cllm_status::CLLM_OK);
    }

    #[test]
    fn null_arguments_are_named() {
        // SAFETY: a NULL pointer is never dereferenced.
        let err = unsafe { arg_ref::<u8>(std::ptr::null(), "pool") }.unwrap_err();
        assert_eq!(err.status, cllm_status::CLLM_ERR_NULL);
        assert_eq!(err.message, "pool is NULL");
    }
}
