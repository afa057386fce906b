//! `cllm_status`, the one result type of every fallible C entry point, and
//! the pattern every C enumeration follows (docs/c-api.md, "Enumerations").
//!
//! The pattern: a C enum is a `#[repr(transparent)]` newtype over a fixed
//! integer (`i32` for `cllm_status`, `u32` for every other enum), which
//! cbindgen writes as `typedef int32_t cllm_status;`, and module-level
//! constants `CLLM_<NAME>_<VALUE>` of that type, written as `#define`s.
//! Functions take and return the newtype, so C passes any integer and Rust
//! never holds an out-of-range value in a Rust enum (that would be undefined
//! behaviour): an argument is turned into its Rust enum with a checked
//! `TryFrom` through [`enum_arg`](crate::error::enum_arg), which fails with
//! `CLLM_ERR_INVALID_ARGUMENT` naming the argument and the value. Rust code
//! may also use the constants as associated items (`cllm_status::CLLM_OK`);
//! those are hidden from cbindgen, which would otherwise prefix them.

use std::ffi::{CStr, c_char};
use std::fmt;

/// Result code of every fallible `cllm_*` function (`int32_t`). `CLLM_OK`
/// is zero; every other value names one kind of failure, and
/// `cllm_last_error()` gives the details of the most recent failure on the
/// calling thread.
///
/// Values are fixed forever: new codes are only ever appended.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct cllm_status(pub i32);

/// Success.
pub const CLLM_OK: cllm_status = cllm_status(0);
/// A required pointer argument was NULL.
pub const CLLM_ERR_NULL: cllm_status = cllm_status(1);
/// An argument was out of range or inconsistent with another.
pub const CLLM_ERR_INVALID_ARGUMENT: cllm_status = cllm_status(2);
/// The target has work in flight, or a result that was not yet collected.
pub const CLLM_ERR_BUSY: cllm_status = cllm_status(3);
/// The deadline passed before the work finished; the work goes on.
pub const CLLM_ERR_TIMEOUT: cllm_status = cllm_status(4);
/// A Rust panic was caught, in a job or inside the library.
pub const CLLM_ERR_PANIC: cllm_status = cllm_status(5);
/// The object is shutting down and takes no new work.
pub const CLLM_ERR_SHUTDOWN: cllm_status = cllm_status(6);
/// An operating-system thread could not be created.
pub const CLLM_ERR_SPAWN: cllm_status = cllm_status(7);
/// A C job or callback returned a non-zero code.
pub const CLLM_ERR_JOB_FAILED: cllm_status = cllm_status(8);
/// A file-system or other I/O operation failed.
pub const CLLM_ERR_IO: cllm_status = cllm_status(9);
/// A queue or pool is at its capacity.
pub const CLLM_ERR_FULL: cllm_status = cllm_status(10);
/// A NaN or infinite value was found where finite numbers are required.
pub const CLLM_ERR_NUMERIC: cllm_status = cllm_status(11);
/// Stored data failed its integrity check (header, version or checksum).
pub const CLLM_ERR_CORRUPT: cllm_status = cllm_status(12);
/// There was nothing to work on (for example an empty corpus).
pub const CLLM_ERR_EMPTY: cllm_status = cllm_status(13);
/// A bad configuration value (for example an environment variable).
pub const CLLM_ERR_CONFIG: cllm_status = cllm_status(14);
/// A file, directory or named item does not exist.
pub const CLLM_ERR_NOT_FOUND: cllm_status = cllm_status(15);
/// A lock-order cycle (deadlock) was detected.
pub const CLLM_ERR_DEADLOCK: cllm_status = cllm_status(16);
/// The operation was cancelled (for example dropped at shutdown).
pub const CLLM_ERR_CANCELLED: cllm_status = cllm_status(17);
/// A barrier was broken because another participant failed.
pub const CLLM_ERR_BARRIER_BROKEN: cllm_status = cllm_status(18);
/// A text output did not fit the caller's buffer; `*out_len` holds the
/// length needed (without the NUL) and nothing was written to the buffer.
pub const CLLM_ERR_BUFFER_TOO_SMALL: cllm_status = cllm_status(19);
/// Memory for the work could not be allocated; the message says how much.
/// Nothing was changed, and the process goes on.
pub const CLLM_ERR_OUT_OF_MEMORY: cllm_status = cllm_status(20);

/// cbindgen:ignore
#[allow(missing_docs)]
impl cllm_status {
    pub const CLLM_OK: cllm_status = CLLM_OK;
    pub const CLLM_ERR_NULL: cllm_status = CLLM_ERR_NULL;
    pub const CLLM_ERR_INVALID_ARGUMENT: cllm_status = CLLM_ERR_INVALID_ARGUMENT;
    pub const CLLM_ERR_BUSY: cllm_status = CLLM_ERR_BUSY;
    pub const CLLM_ERR_TIMEOUT: cllm_status = CLLM_ERR_TIMEOUT;
    pub const CLLM_ERR_PANIC: cllm_status = CLLM_ERR_PANIC;
    pub const CLLM_ERR_SHUTDOWN: cllm_status = CLLM_ERR_SHUTDOWN;
    pub const CLLM_ERR_SPAWN: cllm_status = CLLM_ERR_SPAWN;
    pub const CLLM_ERR_JOB_FAILED: cllm_status = CLLM_ERR_JOB_FAILED;
    pub const CLLM_ERR_IO: cllm_status = CLLM_ERR_IO;
    pub const CLLM_ERR_FULL: cllm_status = CLLM_ERR_FULL;
    pub const CLLM_ERR_NUMERIC: cllm_status = CLLM_ERR_NUMERIC;
    pub const CLLM_ERR_CORRUPT: cllm_status = CLLM_ERR_CORRUPT;
    pub const CLLM_ERR_EMPTY: cllm_status = CLLM_ERR_EMPTY;
    pub const CLLM_ERR_CONFIG: cllm_status = CLLM_ERR_CONFIG;
    pub const CLLM_ERR_NOT_FOUND: cllm_status = CLLM_ERR_NOT_FOUND;
    pub const CLLM_ERR_DEADLOCK: cllm_status = CLLM_ERR_DEADLOCK;
    pub const CLLM_ERR_CANCELLED: cllm_status = CLLM_ERR_CANCELLED;
    pub const CLLM_ERR_BARRIER_BROKEN: cllm_status = CLLM_ERR_BARRIER_BROKEN;
    pub const CLLM_ERR_BUFFER_TOO_SMALL: cllm_status = CLLM_ERR_BUFFER_TOO_SMALL;
    pub const CLLM_ERR_OUT_OF_MEMORY: cllm_status = CLLM_ERR_OUT_OF_MEMORY;
}

/// cbindgen:ignore
impl cllm_status {
    /// Every status, in numeric order.
    pub const ALL: [cllm_status; 21] = [
        CLLM_OK,
        CLLM_ERR_NULL,
        CLLM_ERR_INVALID_ARGUMENT,
        CLLM_ERR_BUSY,
        CLLM_ERR_TIMEOUT,
        CLLM_ERR_PANIC,
        CLLM_ERR_SHUTDOWN,
        CLLM_ERR_SPAWN,
        CLLM_ERR_JOB_FAILED,
        CLLM_ERR_IO,
        CLLM_ERR_FULL,
        CLLM_ERR_NUMERIC,
        CLLM_ERR_CORRUPT,
        CLLM_ERR_EMPTY,
        CLLM_ERR_CONFIG,
        CLLM_ERR_NOT_FOUND,
        CLLM_ERR_DEADLOCK,
        CLLM_ERR_CANCELLED,
        CLLM_ERR_BARRIER_BROKEN,
        CLLM_ERR_BUFFER_TOO_SMALL,
        CLLM_ERR_OUT_OF_MEMORY,
    ];

    /// The constant's name, as a static NUL-terminated string.
    pub fn name(self) -> &'static CStr {
        match self {
            CLLM_OK => c"CLLM_OK",
            CLLM_ERR_NULL => c"CLLM_ERR_NULL",
            CLLM_ERR_INVALID_ARGUMENT => c"CLLM_ERR_INVALID_ARGUMENT",
            CLLM_ERR_BUSY => c"CLLM_ERR_BUSY",
            CLLM_ERR_TIMEOUT => c"CLLM_ERR_TIMEOUT",
            CLLM_ERR_PANIC => c"CLLM_ERR_PANIC",
            CLLM_ERR_SHUTDOWN => c"CLLM_ERR_SHUTDOWN",
            CLLM_ERR_SPAWN => c"CLLM_ERR_SPAWN",
            CLLM_ERR_JOB_FAILED => c"CLLM_ERR_JOB_FAILED",
            CLLM_ERR_IO => c"CLLM_ERR_IO",
            CLLM_ERR_FULL => c"CLLM_ERR_FULL",
            CLLM_ERR_NUMERIC => c"CLLM_ERR_NUMERIC",
            CLLM_ERR_CORRUPT => c"CLLM_ERR_CORRUPT",
            CLLM_ERR_EMPTY => c"CLLM_ERR_EMPTY",
            CLLM_ERR_CONFIG => c"CLLM_ERR_CONFIG",
            CLLM_ERR_NOT_FOUND => c"CLLM_ERR_NOT_FOUND",
            CLLM_ERR_DEADLOCK => c"CLLM_ERR_DEADLOCK",
            CLLM_ERR_CANCELLED => c"CLLM_ERR_CANCELLED",
            CLLM_ERR_BARRIER_BROKEN => c"CLLM_ERR_BARRIER_BROKEN",
            CLLM_ERR_BUFFER_TOO_SMALL => c"CLLM_ERR_BUFFER_TOO_SMALL",
            CLLM_ERR_OUT_OF_MEMORY => c"CLLM_ERR_OUT_OF_MEMORY",
            _ => c"CLLM_UNKNOWN_STATUS",
        }
    }

    /// The status with this numeric value, if it is one of [`Self::ALL`].
    pub fn from_code(code: i32) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| s.0 == code)
    }
}

impl fmt::Debug for cllm_status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Self::from_code(self.0) {
            Some(s) => f.write_str(&s.name().to_string_lossy()),
            None => write!(f, "cllm_status({})", self.0),
        }
    }
}

/// The name of a status code (`"CLLM_ERR_BUSY"`), or `"CLLM_UNKNOWN_STATUS"`
/// for a value that is not one of the constants (any value is safe to pass).
/// The string is static: never free it.
#[unsafe(no_mangle)]
pub extern "C" fn cllm_status_str(status: cllm_status) -> *const c_char {
    status.name().as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_its_own_name_and_value() {
        for (i, s) in cllm_status::ALL.iter().enumerate() {
            assert_eq!(s.0 as usize, i, "values are dense and in order");
            assert!(s.name().to_str().unwrap().starts_with("CLLM_"));
            assert_ne!(s.name(), c"CLLM_UNKNOWN_STATUS");
        }
        let names: std::collections::HashSet<_> =
            cllm_status::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(names.len(), cllm_status::ALL.len());
        assert_eq!(cllm_status::CLLM_ERR_BUFFER_TOO_SMALL.0, 19);
        assert_eq!(cllm_status::CLLM_ERR_OUT_OF_MEMORY.0, 20, "appended last");
    }

    #[test]
    fn unknown_codes_get_a_safe_name() {
        for code in [-7, 21, i32::MAX, i32::MIN] {
            // SAFETY: cllm_status_str always returns a static NUL-terminated string.
            let name = unsafe { CStr::from_ptr(cllm_status_str(cllm_status(code))) };
            assert_eq!(name.to_str().unwrap(), "CLLM_UNKNOWN_STATUS");
        }
        assert_eq!(format!("{:?}", cllm_status(-7)), "cllm_status(-7)");
        assert_eq!(format!("{:?}", CLLM_ERR_BUSY), "CLLM_ERR_BUSY");
    }
}
