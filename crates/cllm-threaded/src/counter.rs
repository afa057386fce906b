//! C API of the sharded counter (`cllm_counter_*`): a `uint64_t` that many
//! threads add to without sharing a cache line. See `sync_stats::ShardedCounter`.
//!
//! Handles: a `cllm_counter *` is a `Box` leaked by `cllm_counter_create` and
//! reclaimed by `cllm_counter_free`, which must not run while any other call
//! uses the same handle (the type's contract). So a handle borrowed at the
//! start of a call stays valid until the call returns; `arg_ref` refuses
//! NULL.

use crate::error::FfiError;
use crate::guard::{arg_ref, ffi_status, out_ptr, write_out};
use crate::status::cllm_status;
use sync_stats::ShardedCounter;

/// A `uint64_t` counter that many threads add to without sharing a cache
/// line (one shard per thread). Sums wrap at 2^64. Any thread may use it;
/// `cllm_counter_free` must not race with other calls on it.
pub struct cllm_counter {
    counter: ShardedCounter,
}

/// Creates a counter at zero with `shards` shards (rounded up to a power of
/// two; 0 = the default, twice the CPUs) and stores it in `*out`.
///
/// Errors: `CLLM_ERR_NULL` if `out` is NULL; `CLLM_ERR_INVALID_ARGUMENT` if
/// `shards` is above 4096.
///
/// # Safety
/// `out` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_counter_create(
    shards: usize,
    out: *mut *mut cllm_counter,
) -> cllm_status {
    ffi_status(|| {
        let out = out_ptr(out, "out")?;
        if shards > sync_stats::MAX_SHARDS {
            return Err(FfiError::invalid(format!(
                "shards {shards} is above the limit of {}",
                sync_stats::MAX_SHARDS
            )));
        }
        let counter = if shards == 0 {
            ShardedCounter::new()
        } else {
            ShardedCounter::with_shards(shards)
        };
        // SAFETY: `out` is not NULL (`out_ptr` above) and is writable by
        // this function's contract.
        unsafe { write_out(out, Box::into_raw(Box::new(cllm_counter { counter }))) };
        Ok(())
    })
}

/// Adds `delta` (on the calling thread's shard).
///
/// Errors: `CLLM_ERR_NULL` if `counter` is NULL.
///
/// # Safety
/// `counter` must be NULL or a live counter.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_counter_add(counter: *const cllm_counter, delta: u64) -> cllm_status {
    ffi_status(|| {
        // SAFETY: NULL or a live counter that no call frees before this one
        // returns (see "Handles" above).
        unsafe { arg_ref(counter, "counter") }?.counter.add(delta);
        Ok(())
    })
}

/// Writes the total of all shards to `*out` (exact once the adding threads
/// are done or synchronised with the caller).
///
/// Errors: `CLLM_ERR_NULL` if `counter` or `out` is NULL.
///
/// # Safety
/// `counter` must be NULL or a live counter; `out` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_counter_sum(
    counter: *const cllm_counter,
    out: *mut u64,
) -> cllm_status {
    ffi_status(|| {
        let out = out_ptr(out, "out")?;
        // SAFETY: NULL or a live counter that no call frees before this one
        // returns (see "Handles" above).
        let counter = unsafe { arg_ref(counter, "counter") }?;
        // SAFETY: `out` is not NULL (`out_ptr` above) and is writable by
        // this function's contract.
        unsafe { write_out(out, counter.counter.sum()) };
        Ok(())
    })
}

/// Frees a counter made by `cllm_counter_create`. NULL does nothing.
///
/// # Safety
/// `counter` must be NULL or a live counter, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_counter_free(counter: *mut cllm_counter) {
    if !counter.is_null() {
        // SAFETY: not NULL, so a `Box` from `cllm_counter_create` that the
        // caller hands back once, with no other call on it (see "Handles").
        drop(unsafe { Box::from_raw(counter) });
    }
}
