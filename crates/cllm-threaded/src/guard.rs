//! The panic boundary and argument checks that every C entry point goes through.
//!
//! Every `extern "C"` function body runs inside [`ffi_status`] or [`ffi_value`]:
//! a Rust panic never unwinds into C, and every failure leaves its message in
//! the thread's last error.
//!
//! Handles: a function whose first argument is a handle runs its body through
//! [`with_handle!`](macro@crate::with_handle) (status) or [`with_handle_value!`](macro@crate::with_handle_value) (a value), which do the
//! panic boundary, the NULL check (naming the argument) and the dereference;
//! the one SAFETY argument for every handle is on [`Handle`] and [`handle`].
//! A second handle argument is borrowed with [`handle!`](macro@crate::handle). Text outputs go
//! through [`text_out`] / [`write_text`] (the `buf, buf_len, out_len` shape).
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
use std::ffi::c_char;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;
use std::time::Duration;

use thread_support::take_panic_message;

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
            format!("internal panic: {}", take_panic_message(payload)),
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

/// A type handed to C as an opaque handle (`cllm_pool*`, `cllm_roles*`, ...).
///
/// # Safety
/// Implementing it promises the handle contract that [`handle`] relies on:
/// C gets a pointer to this type only from its `cllm_<handle>_create` (a
/// `Box::into_raw`), it stays valid until the matching `cllm_<handle>_free`,
/// and the type may be used through `&Self` from several threads at once
/// (`Sync`). Every `unsafe extern "C"` function that takes the handle states
/// the C side of the contract in its `# Safety` section: the pointer is NULL
/// or a live handle, and `_free` does not race with other calls on it.
pub unsafe trait Handle: Sync {}

/// Borrows the handle behind `ptr` for one call, or fails with
/// `CLLM_ERR_NULL` naming the argument.
///
/// # Safety
/// `ptr` is NULL or a live handle of its type (the `# Safety` section of the
/// calling entry point).
pub unsafe fn handle<'a, H: Handle>(ptr: *const H, name: &str) -> Result<&'a H, FfiError> {
    // SAFETY: the one argument for every handle dereference. `H: Handle`
    // means C only ever holds pointers made by `Box::into_raw` in `_create`,
    // live until `_free`; the caller's contract rules out a dangling pointer
    // and a `_free` racing this call, so a non-NULL `ptr` points to a live
    // `H` for the call. Only shared borrows are made, and `H: Sync` makes
    // them safe from several threads at once.
    unsafe { ptr.as_ref() }.ok_or_else(|| FfiError::null(name))
}

/// Runs `body` on the handle behind `ptr` inside the panic boundary; a NULL
/// `ptr` is `CLLM_ERR_NULL` naming `name`. Use it through [`with_handle!`](macro@crate::with_handle).
///
/// # Safety
/// As for [`handle`].
pub unsafe fn with_handle<H: Handle>(
    ptr: *const H,
    name: &str,
    body: impl FnOnce(&H) -> Result<(), FfiError>,
) -> cllm_status {
    // SAFETY: forwarded: the caller upholds `handle`'s contract.
    ffi_status(|| body(unsafe { handle(ptr, name) }?))
}

/// [`with_handle`] for functions that return a value: on failure records
/// the error and returns `on_error(&error)`. Use it through
/// [`with_handle_value!`](macro@crate::with_handle_value).
///
/// # Safety
/// As for [`handle`].
pub unsafe fn with_handle_value<H: Handle, T>(
    ptr: *const H,
    name: &str,
    on_error: impl FnOnce(&FfiError) -> T,
    body: impl FnOnce(&H) -> Result<T, FfiError>,
) -> T {
    // SAFETY: forwarded: the caller upholds `handle`'s contract.
    ffi_value(on_error, || body(unsafe { handle(ptr, name) }?))
}

/// Releases a handle made by `Box::into_raw` in its `_create`, inside the
/// panic boundary; NULL is a no-op. Use it through [`free_handle!`](macro@crate::free_handle).
///
/// # Safety
/// `ptr` is NULL or a live handle that no other call uses now or later.
pub unsafe fn free_handle<H: Handle>(ptr: *mut H) {
    if ptr.is_null() {
        return;
    }
    ffi_value(
        |_| (),
        || {
            // SAFETY: `H: Handle` (made by Box::into_raw) and the caller gives
            // the handle up, so the box is ours to drop, once.
            drop(unsafe { Box::from_raw(ptr) });
            Ok(())
        },
    )
}

/// Gives a macro's body closure the handle type of `ptr` (type inference
/// only; safe: nothing is dereferenced).
pub fn body_for<H, T, F: FnOnce(&H) -> Result<T, FfiError>>(_ptr: *const H, body: F) -> F {
    body
}

/// Keeps a macro's `on_error` closure general over the error's lifetime.
pub fn on_error_for<T, F: FnOnce(&FfiError) -> T>(on_error: F) -> F {
    on_error
}

/// `with_handle!(ptr, |h| body)`: runs `body` (a `Result<(), FfiError>`) on
/// the handle argument `ptr` inside the panic boundary and returns the
/// `cllm_status`; NULL gives `CLLM_ERR_NULL` naming the argument. Only for
/// the body of an `unsafe extern "C" fn` whose `# Safety` section promises
/// that `ptr` is NULL or a live handle (the [`Handle`] contract).
#[macro_export]
macro_rules! with_handle {
    ($ptr:ident, |$h:ident| $body:expr) => {{
        // The caller's code stays outside the unsafe block.
        let ptr = $ptr;
        let body = $crate::guard::body_for(ptr, |$h| $body);
        // SAFETY: the Handle contract, promised by the entry point's caller.
        unsafe { $crate::guard::with_handle(ptr, stringify!($ptr), body) }
    }};
}

/// `with_handle_value!(ptr, on_error, |h| body)`: [`with_handle!`](macro@crate::with_handle) for a
/// function returning a value (`on_error(&FfiError)` on failure).
#[macro_export]
macro_rules! with_handle_value {
    ($ptr:ident, $on_error:expr, |$h:ident| $body:expr) => {{
        let (ptr, on_error) = ($ptr, $crate::guard::on_error_for($on_error));
        let body = $crate::guard::body_for(ptr, |$h| $body);
        // SAFETY: the Handle contract, promised by the entry point's caller.
        unsafe { $crate::guard::with_handle_value(ptr, stringify!($ptr), on_error, body) }
    }};
}

/// `handle!(ptr)`: borrows a second handle argument inside a body
/// (`Result<&H, FfiError>`), under the same contract as [`with_handle!`](macro@crate::with_handle).
#[macro_export]
macro_rules! handle {
    ($ptr:ident) => {{
        let ptr = $ptr;
        // SAFETY: the Handle contract, promised by the entry point's caller.
        unsafe { $crate::guard::handle(ptr, stringify!($ptr)) }
    }};
}

/// `free_handle!(ptr)`: the body of `cllm_<handle>_free` (NULL: no-op).
#[macro_export]
macro_rules! free_handle {
    ($ptr:ident) => {{
        let ptr = $ptr;
        // SAFETY: the caller of `_free` gives the live (or NULL) handle up.
        unsafe { $crate::guard::free_handle(ptr) }
    }};
}

/// A timeout of `uint64_t` nanoseconds that never expires (waits as long as
/// it takes), where a function documents it.
pub const CLLM_WAIT_FOREVER: u64 = u64::MAX;

/// A duration as C nanoseconds (saturating at `UINT64_MAX`, ~584 years).
pub fn ns(d: Duration) -> u64 {
    thread_support::duration_to_nanos(d)
}

/// A C timeout in nanoseconds: `None` for [`CLLM_WAIT_FOREVER`].
pub fn timeout_ns(timeout_ns: u64) -> Option<Duration> {
    (timeout_ns != CLLM_WAIT_FOREVER).then(|| Duration::from_nanos(timeout_ns))
}

/// `text_out!(buf, buf_len, out_len)`: [`text_out`] on an entry point's
/// text-output arguments (`Result<TextOut, FfiError>`), with the one SAFETY
/// argument for them here. Only for the body of an `unsafe extern "C" fn`
/// whose `# Safety` section promises that `buf` is NULL or writable for
/// `buf_len` bytes and `out_len` is NULL or writable.
#[macro_export]
macro_rules! text_out {
    ($buf:ident, $buf_len:ident, $out_len:ident) => {{
        let (buf, buf_len, out_len) = ($buf, $buf_len, $out_len);
        // SAFETY: the text-output contract, promised by the entry point's caller.
        unsafe { $crate::guard::text_out(buf, buf_len, out_len) }
    }};
}

/// A checked text output `(char *buf, size_t buf_len, size_t *out_len)`:
/// made by [`text_out`] before any work, written once by [`TextOut::write`].
#[derive(Debug)]
pub struct TextOut {
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
}

/// Checks a text output before any work: `out_len` must not be NULL, and
/// `buf` may be NULL only when `buf_len` is 0 (a size query).
///
/// # Safety
/// `buf` is NULL or writable for `buf_len` bytes, and `out_len` is NULL or
/// writable, until the returned [`TextOut`] is written.
pub unsafe fn text_out(
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> Result<TextOut, FfiError> {
    out_ptr(out_len, "out_len")?;
    if buf.is_null() && buf_len > 0 {
        return Err(FfiError::null("buf (with buf_len > 0)"));
    }
    Ok(TextOut {
        buf,
        buf_len,
        out_len,
    })
}

impl TextOut {
    /// Copies `text` and a NUL into the buffer and its length (without the
    /// NUL) to `*out_len`. If `buf_len <= text.len()`, writes nothing to the
    /// buffer, writes the length needed to `*out_len` (the documented
    /// exception to "outputs only on success") and fails with
    /// `CLLM_ERR_BUFFER_TOO_SMALL`.
    pub fn write(self, text: &str) -> Result<(), FfiError> {
        let len = text.len();
        if self.buf_len <= len {
            return self.too_small(len);
        }
        // SAFETY: `text_out` checked `out_len`; its caller promised it is
        // writable until now.
        unsafe { write_out(self.out_len, len) };
        // SAFETY: `buf` is non-NULL (buf_len > len >= 0) and writable for
        // buf_len > len bytes (the `text_out` contract); `text` is Rust
        // memory, so the two do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), self.buf.cast::<u8>(), len);
            self.buf.add(len).write(0);
        }
        Ok(())
    }
}

impl TextOut {
    /// Fails with `CLLM_ERR_BUFFER_TOO_SMALL`, writing `needed` (a length
    /// without the NUL) to `*out_len` and nothing to the buffer: for a text
    /// whose exact length is not known yet, an upper bound.
    pub fn too_small(self, needed: usize) -> Result<(), FfiError> {
        // SAFETY: `text_out` checked `out_len`; its caller promised it is
        // writable until now.
        unsafe { write_out(self.out_len, needed) };
        Err(FfiError::new(
            cllm_status::CLLM_ERR_BUFFER_TOO_SMALL,
            format!(
                "buf_len {} is too small for {needed} bytes and the NUL (*out_len = {needed})",
                self.buf_len
            ),
        ))
    }
}

/// [`text_out`] and [`TextOut::write`] in one call, for text that is cheap
/// to make before the checks.
///
/// # Safety
/// As for [`text_out`].
pub unsafe fn write_text(
    text: &str,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> Result<(), FfiError> {
    // SAFETY: forwarded: the caller upholds `text_out`'s contract.
    unsafe { text_out(buf, buf_len, out_len) }?.write(text)
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

    struct Thing(u32);
    // SAFETY: the tests make `Thing` handles with Box::into_raw only.
    unsafe impl Handle for Thing {}

    #[test]
    fn with_handle_checks_null_and_catches_panics() {
        let thing: *const Thing = Box::into_raw(Box::new(Thing(7)));
        let none: *const Thing = std::ptr::null();
        assert_eq!(with_handle!(none, |_t| Ok(())), cllm_status::CLLM_ERR_NULL);
        assert_eq!(last_error_message(), "none is NULL");
        let mut seen = 0;
        assert_eq!(
            with_handle!(thing, |t| {
                seen = t.0;
                Ok(())
            }),
            cllm_status::CLLM_OK
        );
        assert_eq!(seen, 7);
        assert_eq!(
            with_handle!(thing, |_t| panic!("inside")),
            cllm_status::CLLM_ERR_PANIC
        );
        assert_eq!(with_handle_value!(none, |_| -1, |t| Ok(t.0 as i32)), -1);
        assert_eq!(with_handle_value!(thing, |_| -1, |t| Ok(t.0 as i32)), 7);
        let thing = thing.cast_mut();
        free_handle!(thing);
        let none = none.cast_mut();
        free_handle!(none);
    }

    fn text(s: &str, buf: &mut [u8], out_len: &mut usize) -> cllm_status {
        let (ptr, len) = (buf.as_mut_ptr().cast::<c_char>(), buf.len());
        // SAFETY: `buf` and `out_len` are live Rust memory.
        ffi_status(|| unsafe { write_text(s, ptr, len, out_len) })
    }

    #[test]
    fn text_fits_or_reports_the_length_needed() {
        let mut buf = [b'x'; 6];
        let mut len = 99;
        assert_eq!(text("hello", &mut buf, &mut len), cllm_status::CLLM_OK);
        assert_eq!((&buf, len), (b"hello\0", 5));
        // One byte short (no room for the NUL): nothing written, length needed.
        let mut small = [b'x'; 5];
        assert_eq!(
            text("hello", &mut small, &mut len),
            cllm_status::CLLM_ERR_BUFFER_TOO_SMALL
        );
        assert_eq!((&small, len), (b"xxxxx", 5));
        // Size query: NULL buffer of length 0.
        len = 0;
        // SAFETY: NULL buffer with length 0 is never written.
        let status = ffi_status(|| unsafe { write_text("abc", std::ptr::null_mut(), 0, &mut len) });
        assert_eq!((status, len), (cllm_status::CLLM_ERR_BUFFER_TOO_SMALL, 3));
        // SAFETY: NULL pointers are rejected before any write.
        let status = ffi_status(|| unsafe { write_text("abc", std::ptr::null_mut(), 4, &mut len) });
        assert_eq!(status, cllm_status::CLLM_ERR_NULL);
        // SAFETY: as above.
        let status = ffi_status(|| unsafe {
            write_text("abc", buf.as_mut_ptr().cast(), 6, std::ptr::null_mut())
        });
        assert_eq!(status, cllm_status::CLLM_ERR_NULL);
        assert_eq!(last_error_message(), "out_len is NULL");
    }
}
