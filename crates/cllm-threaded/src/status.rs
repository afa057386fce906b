//! `cllm_status`: the one result type of every fallible C entry point.

use std::ffi::{CStr, c_char, c_int};

/// Result code of every fallible `cllm_*` function. `CLLM_OK` is zero; every
/// other value names one kind of failure, and `cllm_last_error()` gives the
/// details of the most recent failure on the calling thread.
///
/// Values are fixed forever: new codes are only ever appended.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum cllm_status {
    /// Success.
    CLLM_OK = 0,
    /// A required pointer argument was NULL.
    CLLM_ERR_NULL = 1,
    /// An argument was out of range or inconsistent with another.
    CLLM_ERR_INVALID_ARGUMENT = 2,
    /// The target has work in flight, or a result that was not yet collected.
    CLLM_ERR_BUSY = 3,
    /// The deadline passed before the work finished; the work goes on.
    CLLM_ERR_TIMEOUT = 4,
    /// A Rust panic was caught, in a job or inside the library.
    CLLM_ERR_PANIC = 5,
    /// The object is shutting down and takes no new work.
    CLLM_ERR_SHUTDOWN = 6,
    /// An operating-system thread could not be created.
    CLLM_ERR_SPAWN = 7,
    /// A C job or callback returned a non-zero code.
    CLLM_ERR_JOB_FAILED = 8,
    /// A file-system or other I/O operation failed.
    CLLM_ERR_IO = 9,
    /// A queue or pool is at its capacity.
    CLLM_ERR_FULL = 10,
    /// A NaN or infinite value was found where finite numbers are required.
    CLLM_ERR_NUMERIC = 11,
    /// Stored data failed its integrity check (header, version or checksum).
    CLLM_ERR_CORRUPT = 12,
    /// There was nothing to work on (for example an empty corpus).
    CLLM_ERR_EMPTY = 13,
    /// A bad configuration value (for example an environment variable).
    CLLM_ERR_CONFIG = 14,
    /// A file, directory or named item does not exist.
    CLLM_ERR_NOT_FOUND = 15,
    /// A lock-order cycle (deadlock) was detected.
    CLLM_ERR_DEADLOCK = 16,
    /// The operation was cancelled (for example dropped at shutdown).
    CLLM_ERR_CANCELLED = 17,
    /// A barrier was broken because another participant failed.
    CLLM_ERR_BARRIER_BROKEN = 18,
}

impl cllm_status {
    /// Every status, in numeric order.
    pub const ALL: [cllm_status; 19] = [
        Self::CLLM_OK,
        Self::CLLM_ERR_NULL,
        Self::CLLM_ERR_INVALID_ARGUMENT,
        Self::CLLM_ERR_BUSY,
        Self::CLLM_ERR_TIMEOUT,
        Self::CLLM_ERR_PANIC,
        Self::CLLM_ERR_SHUTDOWN,
        Self::CLLM_ERR_SPAWN,
        Self::CLLM_ERR_JOB_FAILED,
        Self::CLLM_ERR_IO,
        Self::CLLM_ERR_FULL,
        Self::CLLM_ERR_NUMERIC,
        Self::CLLM_ERR_CORRUPT,
        Self::CLLM_ERR_EMPTY,
        Self::CLLM_ERR_CONFIG,
        Self::CLLM_ERR_NOT_FOUND,
        Self::CLLM_ERR_DEADLOCK,
        Self::CLLM_ERR_CANCELLED,
        Self::CLLM_ERR_BARRIER_BROKEN,
    ];

    /// The constant's name, as a static NUL-terminated string.
    pub fn name(self) -> &'static CStr {
        match self {
            Self::CLLM_OK => c"CLLM_OK",
            Self::CLLM_ERR_NULL => c"CLLM_ERR_NULL",
            Self::CLLM_ERR_INVALID_ARGUMENT => c"CLLM_ERR_INVALID_ARGUMENT",
            Self::CLLM_ERR_BUSY => c"CLLM_ERR_BUSY",
            Self::CLLM_ERR_TIMEOUT => c"CLLM_ERR_TIMEOUT",
            Self::CLLM_ERR_PANIC => c"CLLM_ERR_PANIC",
            Self::CLLM_ERR_SHUTDOWN => c"CLLM_ERR_SHUTDOWN",
            Self::CLLM_ERR_SPAWN => c"CLLM_ERR_SPAWN",
            Self::CLLM_ERR_JOB_FAILED => c"CLLM_ERR_JOB_FAILED",
            Self::CLLM_ERR_IO => c"CLLM_ERR_IO",
            Self::CLLM_ERR_FULL => c"CLLM_ERR_FULL",
            Self::CLLM_ERR_NUMERIC => c"CLLM_ERR_NUMERIC",
            Self::CLLM_ERR_CORRUPT => c"CLLM_ERR_CORRUPT",
            Self::CLLM_ERR_EMPTY => c"CLLM_ERR_EMPTY",
            Self::CLLM_ERR_CONFIG => c"CLLM_ERR_CONFIG",
            Self::CLLM_ERR_NOT_FOUND => c"CLLM_ERR_NOT_FOUND",
            Self::CLLM_ERR_DEADLOCK => c"CLLM_ERR_DEADLOCK",
            Self::CLLM_ERR_CANCELLED => c"CLLM_ERR_CANCELLED",
            Self::CLLM_ERR_BARRIER_BROKEN => c"CLLM_ERR_BARRIER_BROKEN",
        }
    }

    /// The status with this numeric value, if there is one.
    pub fn from_code(code: c_int) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| *s as c_int == code)
    }
}

/// The name of a status code (`"CLLM_ERR_BUSY"`), or `"CLLM_UNKNOWN_STATUS"`
/// for a value that is not a `cllm_status`. Takes an `int` so that any value
/// is safe to pass. The string is static: never free it.
#[unsafe(no_mangle)]
pub extern "C" fn cllm_status_str(status: c_int) -> *const c_char {
    match cllm_status::from_code(status) {
        Some(s) => s.name().as_ptr(),
        None => c"CLLM_UNKNOWN_STATUS".as_ptr(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_its_own_name_and_value() {
        for (i, s) in cllm_status::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i, "values are dense and in order");
            assert!(s.name().to_str().unwrap().starts_with("CLLM_"));
        }
        let names: std::collections::HashSet<_> =
            cllm_status::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(names.len(), cllm_status::ALL.len());
    }

    #[test]
    fn unknown_codes_get_a_safe_name() {
        // SAFETY: cllm_status_str always returns a static NUL-terminated string.
        let name = unsafe { CStr::from_ptr(cllm_status_str(-7)) };
        assert_eq!(name.to_str().unwrap(), "CLLM_UNKNOWN_STATUS");
    }
}
