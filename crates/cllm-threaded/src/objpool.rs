//! C API of the object pool (`cllm_objpool_*`): a pool of fixed-size memory
//! blocks with per-thread caches, a cap and statistics. See the
//! `object-pool` crate.
//!
//! Every block handed out is recorded in a table sharded by address, so
//! that `cllm_objpool_release` can tell a block of this pool from any other
//! pointer, and a released block from one in use, without reading the
//! memory it is given.

use crate::error::FfiError;
use crate::error::{UnknownValue, enum_arg};
use crate::guard::{Handle, ffi_status, out_ptr, write_out};
use crate::status::cllm_status;
use crate::{free_handle, with_handle};
use object_pool::{ObjectPool, PoolConfig, PoolError, ShardChoice};
use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::collections::HashMap;
use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::ptr::NonNull;
use std::sync::{Mutex, MutexGuard, PoisonError};
use thread_support::tsan;

/// Alignment of every block: a cache line, so that blocks used by different
/// threads never share one.
pub const CLLM_OBJPOOL_BLOCK_ALIGN: usize = 64;

/// Which shard an acquire or release starts from (`uint32_t`, one of
/// `CLLM_OBJPOOL_SHARD_CHOICE_*`), in `cllm_objpool_options.shard_choice`.
/// Any other value is refused with `CLLM_ERR_INVALID_ARGUMENT`.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct cllm_objpool_shard_choice(pub u32);

/// Shards in turn (the default).
pub const CLLM_OBJPOOL_SHARD_CHOICE_ROUND_ROBIN: cllm_objpool_shard_choice =
    cllm_objpool_shard_choice(0);
/// The shard of the calling thread.
pub const CLLM_OBJPOOL_SHARD_CHOICE_THREAD_AFFINE: cllm_objpool_shard_choice =
    cllm_objpool_shard_choice(1);

impl TryFrom<cllm_objpool_shard_choice> for ShardChoice {
    type Error = UnknownValue;
    fn try_from(c: cllm_objpool_shard_choice) -> Result<ShardChoice, UnknownValue> {
        match c {
            CLLM_OBJPOOL_SHARD_CHOICE_ROUND_ROBIN => Ok(ShardChoice::RoundRobin),
            CLLM_OBJPOOL_SHARD_CHOICE_THREAD_AFFINE => Ok(ShardChoice::ThreadAffine),
            other => Err(UnknownValue {
                type_name: "cllm_objpool_shard_choice",
                value: i64::from(other.0),
                expected: "CLLM_OBJPOOL_SHARD_CHOICE_ROUND_ROBIN 0, _THREAD_AFFINE 1",
            }),
        }
    }
}

/// Shards of the table of handed-out blocks.
const TABLE_SHARDS: usize = 64;

/// One heap block of the pool's size, zeroed when made.
struct Block {
    ptr: NonNull<u8>,
    layout: Layout,
}

/// The panic payload of a block that could not be allocated: the pool's
/// factory cannot return an error, so `cllm_objpool_acquire` catches this
/// one and returns `CLLM_ERR_OUT_OF_MEMORY` (the pool undoes its count).
struct BlockOutOfMemory(usize);

impl Block {
    fn new(layout: Layout) -> Self {
        // SAFETY: `layout` has a non-zero size (checked at pool creation).
        let ptr = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr)
            .unwrap_or_else(|| std::panic::panic_any(BlockOutOfMemory(layout.size())));
        Self { ptr, layout }
    }
}

/// Takes a block from `pool`, with an allocation failure as an error.
fn take_block(pool: &ObjectPool<Block>) -> Result<Box<Block>, FfiError> {
    match catch_unwind(AssertUnwindSafe(|| pool.take())) {
        Ok(taken) => Ok(taken?),
        Err(payload) => match payload.downcast::<BlockOutOfMemory>() {
            Ok(oom) => Err(FfiError::new(
                cllm_status::CLLM_ERR_OUT_OF_MEMORY,
                format!("out of memory for a {} byte block", oom.0),
            )),
            Err(other) => resume_unwind(other),
        },
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout, freed once.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

// SAFETY: a block is plain memory owned by one `Block` value; the pool hands
// each to one user at a time.
unsafe impl Send for Block {}
// SAFETY: `Block` has no interior mutability; `&Block` only exposes the address.
unsafe impl Sync for Block {}

/// A block's entry in the table: `Some` while handed out, `None` once released.
type Entry = Option<Box<Block>>;

/// A pool of memory blocks of one size. Any thread may acquire and release;
/// `cllm_objpool_free` must not race with other calls on the same pool.
pub struct cllm_objpool {
    pool: ObjectPool<Block>,
    block_size: usize,
    handed_out: Box<[Mutex<HashMap<usize, Entry>>]>,
}

// SAFETY: made only by Box::into_raw in cllm_objpool_create, freed only by
// cllm_objpool_free; ObjectPool<Block> and the Mutex table are Sync.
unsafe impl Handle for cllm_objpool {}

impl cllm_objpool {
    /// The locked table shard of `address`, locked as ThreadSanitizer sees
    /// it (the program's threads grow and shrink the table in turn).
    fn table(&self, address: usize) -> tsan::Seen<MutexGuard<'_, HashMap<usize, Entry>>> {
        // Blocks are 64-byte aligned: mix the bits above the alignment.
        let h = (address >> 6).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let shard = &self.handed_out[(h >> 58) % TABLE_SHARDS];
        // A panic while holding a shard cannot leave a table entry half
        // written (insert and take are single operations): ignore poisoning.
        tsan::Seen::new(shard.lock().unwrap_or_else(PoisonError::into_inner), shard)
    }
}

/// How to build a block pool; fill it with `cllm_objpool_options_default()`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct cllm_objpool_options {
    /// The most blocks alive at once (in use or idle); 0 = no cap. At the
    /// cap, `cllm_objpool_acquire` fails with `CLLM_ERR_FULL` (it does not wait).
    pub max_blocks: usize,
    /// Number of shards (locked free lists), 1..=1024. Default 4.
    pub shards: usize,
    /// Idle blocks each thread keeps for itself, 0..=32 (0 = none). Default 8.
    pub thread_cache: usize,
    /// `CLLM_OBJPOOL_SHARD_CHOICE_ROUND_ROBIN` (default) or
    /// `CLLM_OBJPOOL_SHARD_CHOICE_THREAD_AFFINE`.
    pub shard_choice: cllm_objpool_shard_choice,
    /// Zero every released block before reuse, so that every acquired block
    /// reads as zeros. Default false: a reused block holds what its last
    /// user left (new blocks are always zeroed).
    pub zero_on_release: bool,
}

/// Usage figures of a block pool. Exact when no thread is using the pool.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct cllm_objpool_usage {
    /// Acquisitions served by a reused block.
    pub hits: u64,
    /// Acquisitions that allocated a new block.
    pub misses: u64,
    /// Blocks acquired and not yet released.
    pub in_use: u64,
    /// Blocks alive (in use plus idle).
    pub live: u64,
    /// Idle blocks in the shards.
    pub idle_in_shards: u64,
    /// Idle blocks in per-thread caches.
    pub idle_in_caches: u64,
    /// Number of shards.
    pub shards: u64,
    /// The cap (0 = none).
    pub max_blocks: u64,
    /// Size of each block in bytes.
    pub block_size: u64,
}

/// The default options: no cap, 4 shards, 8 cached blocks per thread,
/// round-robin, no zeroing on release.
#[unsafe(no_mangle)]
pub extern "C" fn cllm_objpool_options_default() -> cllm_objpool_options {
    let d = PoolConfig::default();
    cllm_objpool_options {
        max_blocks: 0,
        shards: d.shards,
        thread_cache: d.thread_cache,
        shard_choice: CLLM_OBJPOOL_SHARD_CHOICE_ROUND_ROBIN,
        zero_on_release: false,
    }
}

impl From<PoolError> for FfiError {
    fn from(e: PoolError) -> Self {
        let status = match e {
            PoolError::Exhausted { .. } => cllm_status::CLLM_ERR_FULL,
            PoolError::InvalidConfig(_) => cllm_status::CLLM_ERR_INVALID_ARGUMENT,
        };
        FfiError::new(status, e.to_string())
    }
}

/// Creates a pool of `block_size`-byte blocks (aligned to
/// `CLLM_OBJPOOL_BLOCK_ALIGN`) and stores it in `*out`. NULL `options` means
/// the defaults. Blocks are allocated on demand, not up front.
///
/// Errors: `CLLM_ERR_NULL` if `out` is NULL; `CLLM_ERR_INVALID_ARGUMENT` for
/// a zero or oversized `block_size`, or an option out of its range.
///
/// # Safety
/// `options` must be NULL or readable; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_objpool_create(
    block_size: usize,
    options: *const cllm_objpool_options,
    out: *mut *mut cllm_objpool,
) -> cllm_status {
    ffi_status(|| {
        let out = out_ptr(out, "out")?;
        // SAFETY: NULL or readable options (this function's contract).
        let options = unsafe { options.as_ref() }
            .copied()
            .unwrap_or_else(|| cllm_objpool_options_default());
        if block_size == 0 {
            return Err(FfiError::invalid("block_size is 0"));
        }
        let layout = Layout::from_size_align(block_size, CLLM_OBJPOOL_BLOCK_ALIGN)
            .map_err(|_| FfiError::invalid(format!("block_size {block_size} is too large")))?;
        let shard_choice = enum_arg(options.shard_choice, "options.shard_choice")?;
        let config = PoolConfig {
            shards: options.shards,
            shard_choice,
            max_live: (options.max_blocks > 0).then_some(options.max_blocks),
            thread_cache: options.thread_cache,
        };
        let factory = move || Block::new(layout);
        let pool = if options.zero_on_release {
            ObjectPool::with_reset(config, factory, |b: &mut Block| {
                // SAFETY: the block owns `layout.size()` writable bytes.
                unsafe { b.ptr.as_ptr().write_bytes(0, b.layout.size()) }
            })
        } else {
            ObjectPool::new(config, factory)
        }?;
        let handed_out = (0..TABLE_SHARDS)
            .map(|_| Mutex::new(HashMap::new()))
            .collect();
        let pool = Box::new(cllm_objpool {
            pool,
            block_size,
            handed_out,
        });
        // SAFETY: checked by out_ptr.
        unsafe { write_out(out, Box::into_raw(pool)) };
        Ok(())
    })
}

/// Takes a block (reused if one is idle, else newly allocated and zeroed)
/// and stores its address in `*out_block`. The block belongs to the caller
/// until `cllm_objpool_release`; any thread may release it.
///
/// Errors: `CLLM_ERR_NULL` if `pool` or `out_block` is NULL; `CLLM_ERR_FULL`
/// if `max_blocks` blocks are in use; `CLLM_ERR_OUT_OF_MEMORY` if a new
/// block cannot be allocated.
///
/// # Safety
/// `pool` must be NULL or a live pool; `out_block` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_objpool_acquire(
    pool: *const cllm_objpool,
    out_block: *mut *mut c_void,
) -> cllm_status {
    with_handle!(pool, |pool| {
        let out_block = out_ptr(out_block, "out_block")?;
        let block = take_block(&pool.pool)?;
        let address = block.ptr.as_ptr() as usize;
        pool.table(address).insert(address, Some(block));
        // SAFETY: checked by out_ptr.
        unsafe { write_out(out_block, address as *mut c_void) };
        Ok(())
    })
}

/// Gives a block back to the pool. The pointer must not be used afterwards.
///
/// Errors: `CLLM_ERR_NULL` if `pool` or `block` is NULL;
/// `CLLM_ERR_INVALID_ARGUMENT` if `block` is not the start of a block of this
/// pool, or was released already (a double release): the pool is unchanged.
/// The pointer is only looked up, never read through.
///
/// # Safety
/// `pool` must be NULL or a live pool.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_objpool_release(
    pool: *const cllm_objpool,
    block: *mut c_void,
) -> cllm_status {
    with_handle!(pool, |pool| {
        if block.is_null() {
            return Err(FfiError::null("block"));
        }
        let address = block as usize;
        let taken = match pool.table(address).get_mut(&address) {
            None => {
                return Err(FfiError::invalid(format!(
                    "block {block:p} is not a block of this pool"
                )));
            }
            Some(entry) => entry.take(),
        };
        match taken {
            // Given back outside the table lock.
            Some(block) => {
                pool.pool.put(block);
                Ok(())
            }
            None => Err(FfiError::invalid(format!(
                "block {block:p} was already released (double release)"
            ))),
        }
    })
}

/// Writes the pool's usage figures to `*out`.
///
/// Errors: `CLLM_ERR_NULL` if `pool` or `out` is NULL.
///
/// # Safety
/// `pool` must be NULL or a live pool; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_objpool_stats(
    pool: *const cllm_objpool,
    out: *mut cllm_objpool_usage,
) -> cllm_status {
    with_handle!(pool, |pool| {
        let out = out_ptr(out, "out")?;
        let s = pool.pool.stats();
        let usage = cllm_objpool_usage {
            hits: s.hits,
            misses: s.misses,
            in_use: s.in_use,
            live: s.live as u64,
            idle_in_shards: s.idle_in_shards as u64,
            idle_in_caches: s.idle_in_caches as u64,
            shards: s.shard_sizes.len() as u64,
            max_blocks: s.max_live.unwrap_or(0) as u64,
            block_size: pool.block_size as u64,
        };
        // SAFETY: checked by out_ptr.
        unsafe { write_out(out, usage) };
        Ok(())
    })
}

/// Writes the number of idle blocks in shard `shard` to `*out`.
///
/// Errors: `CLLM_ERR_NULL` if `pool` or `out` is NULL;
/// `CLLM_ERR_INVALID_ARGUMENT` if `shard` is not below the shard count.
///
/// # Safety
/// `pool` must be NULL or a live pool; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_objpool_shard_idle(
    pool: *const cllm_objpool,
    shard: usize,
    out: *mut usize,
) -> cllm_status {
    with_handle!(pool, |pool| {
        let out = out_ptr(out, "out")?;
        let sizes = pool.pool.stats().shard_sizes;
        let idle = *sizes
            .get(shard)
            .ok_or_else(|| FfiError::invalid(format!("shard {shard} of {}", sizes.len())))?;
        // SAFETY: checked by out_ptr.
        unsafe { write_out(out, idle) };
        Ok(())
    })
}

/// Frees the pool and every block, including blocks still acquired (their
/// pointers become invalid). NULL does nothing.
///
/// # Safety
/// `pool` must be NULL or a live pool, not used by any other call now or later.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_objpool_free(pool: *mut cllm_objpool) {
    free_handle!(pool)
}
