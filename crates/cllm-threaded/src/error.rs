//! The error carried to the C boundary, and the thread-local last-error message.

use crate::status::cllm_status;
use std::cell::RefCell;
use std::ffi::{CString, c_char};
use std::fmt;

/// An error on its way out through the C API: a status code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FfiError {
    /// The code returned to C.
    pub status: cllm_status,
    /// Human-readable details, returned by `cllm_last_error()`.
    pub message: String,
}

impl FfiError {
    /// An error with this status and message.
    pub fn new(status: cllm_status, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// `CLLM_ERR_NULL` for the named argument.
    pub fn null(argument: &str) -> Self {
        Self::new(cllm_status::CLLM_ERR_NULL, format!("{argument} is NULL"))
    }

    /// `CLLM_ERR_INVALID_ARGUMENT` with a message.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(cllm_status::CLLM_ERR_INVALID_ARGUMENT, message)
    }
}

impl fmt::Display for FfiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            self.status.name().to_string_lossy(),
            self.message
        )
    }
}

impl std::error::Error for FfiError {}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records `message` as the calling thread's last error.
pub fn set_last_error(message: &str) {
    // Interior NULs would truncate the C string; show them instead.
    let text = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    // The thread-local may already be gone while the thread exits; then
    // there is nobody left to read the message.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = text);
}

/// The calling thread's last error message, as Rust text (for tests).
pub fn last_error_message() -> String {
    LAST_ERROR
        .try_with(|slot| slot.borrow().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A description of the most recent failed `cllm_*` call on the calling
/// thread (an empty string if none failed yet). The pointer stays valid until
/// the next failing `cllm_*` call on the same thread; never free it.
///
/// An internal panic is caught and reported here (`CLLM_ERR_PANIC`, or the
/// task's error), not on stderr: the first `cllm_*` call installs a Rust
/// panic hook that prints nothing for panics inside `cllm_*` calls or on
/// the library's threads (named `cllm-*`) and passes any other panic to the
/// hook installed before it. `CLLM_PANIC_MESSAGES=1` keeps the messages.
#[unsafe(no_mangle)]
pub extern "C" fn cllm_last_error() -> *const c_char {
    LAST_ERROR
        .try_with(|slot| slot.borrow().as_ptr())
        .unwrap_or(c"".as_ptr())
}

/// A C enum value that names none of its type's constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownValue {
    /// The C type, e.g. `"cllm_role"`.
    pub type_name: &'static str,
    /// The value received.
    pub value: i64,
    /// The accepted values, for the message (e.g. `"CLLM_ROLE_AI 0 .. CLLM_ROLE_EVALUATION 4"`).
    pub expected: &'static str,
}

/// Converts the C enum argument `name` into its Rust enum with the type's
/// checked `TryFrom`, or fails with `CLLM_ERR_INVALID_ARGUMENT` naming the
/// argument, the value and the accepted values.
pub fn enum_arg<C, R: TryFrom<C, Error = UnknownValue>>(
    value: C,
    name: &str,
) -> Result<R, FfiError> {
    R::try_from(value).map_err(|e| {
        FfiError::invalid(format!(
            "{name} = {} is not a {} ({})",
            e.value, e.type_name, e.expected
        ))
    })
}
