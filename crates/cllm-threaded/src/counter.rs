//! C API of the sharded counter (`cllm_counter_*`): a `uint64_t` that many
//! threads add to without sharing a cache line. See `sync_stats::ShardedCounter`.

use crate::error::FfiError;
use crate::guard::{Handle, ffi_status, out_ptr, write_out};
use crate::status::cllm_status;
use crate::{free_handle, with_handle};
use sync_stats::ShardedCounter;

/// A `uint64_t` counter that many threads add to without sharing a cache
/// line (one shard per thread). Sums wrap at 2^64. Any thread may use it;
/// `cllm_counter_free` must not race with other calls on it.
pub struct cllm_counter {
    counter: ShardedCounter,
}

// SAFETY: made only by Box::into_raw in cllm_counter_create, freed only by
// cllm_counter_free; ShardedCounter is Sync.
unsafe impl Handle for cllm_counter {}

/// Creates a counter at zero with `shards` shards (rounded up to a power of
/// two; 0 = the default, twice the CPUs) and stores it in `*out`.
///
/// Errors: `CLLM_ERR_NULL` if `out` is NULL; `CLLM_ERR_INVALID_ARGUMENT` if
/// `shards` is above 4096.
///
/// # Safety
/// `out` is NULL or writable.
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
        // SAFETY: checked by out_ptr.
        unsafe { write_out(out, Box::into_raw(Box::new(cllm_counter { counter }))) };
        Ok(())
    })
}

/// Adds `delta` (on the calling thread's shard).
///
/// Errors: `CLLM_ERR_NULL` if `counter` is NULL.
///
/// # Safety
/// `counter` is NULL or a live counter.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_counter_add(counter: *const cllm_counter, delta: u64) -> cllm_status {
    with_handle!(counter, |c| {
        c.counter.add(delta);
        Ok(())
    })
}

/// Writes the total of all shards to `*out` (exact once the adding threads
/// are done or synchronised with the caller).
///
/// Errors: `CLLM_ERR_NULL` if `counter` or `out` is NULL.
///
/// # Safety
/// `counter` is NULL or a live counter; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_counter_sum(
    counter: *const cllm_counter,
    out: *mut u64,
) -> cllm_status {
    with_handle!(counter, |c| {
        let out = out_ptr(out, "out")?;
        // SAFETY: checked by out_ptr.
        unsafe { write_out(out, c.counter.sum()) };
        Ok(())
    })
}

/// Frees a counter made by `cllm_counter_create`. NULL does nothing.
///
/// # Safety
/// `counter` is NULL or a live counter, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_counter_free(counter: *mut cllm_counter) {
    free_handle!(counter)
}
