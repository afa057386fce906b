//! C API of the batch iterators over a loaded corpus (`cllm_loader_iter_*`,
//! and `cllm_loader_batch_free`): the batches of one shard, epoch after
//! epoch, in the host's `CLLMBatch` layout. The loader is in `loader.rs`.
//!
//! Threads: make one iterator per sphere, each over its own shard; they run
//! concurrently. One iterator is meant for one thread at a time (it may move
//! between threads); calls on it from several threads at once are
//! serialised, not undefined.

use crate::error::FfiError;
use crate::guard::{Handle, ffi_value, out_ptr, write_out};
use crate::loader::cllm_loader;
use crate::status::cllm_status;
use crate::{free_handle, with_handle};
use corpus_loader::{Batch, BatchConfig, BatchIter, Corpus, Prefetcher};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The most batches an iterator may prepare ahead.
pub const CLLM_LOADER_MAX_PREFETCH: u32 = 4096;

/// How to cut the corpus into batches (`cllm_loader_iter_create`); fill it
/// with `cllm_loader_iter_options_default()`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct cllm_loader_iter_options {
    /// Sequences per batch (at least 1; default 8).
    pub batch_size: u32,
    /// Tokens per sequence (at least 1, less than the corpus; default 64).
    /// `batch_size * seq_len` is at most 2^26.
    pub seq_len: u32,
    /// Shuffle the sequences every epoch, seeded by (`seed`, epoch)
    /// (default true); false: corpus order.
    pub shuffle: bool,
    /// Leave out the last incomplete batch and partial sequence (default
    /// false: they are padded with PAD ids and mask 0.0).
    pub drop_last: bool,
    /// Seed of the shuffle (default 0).
    pub seed: u64,
    /// Batches prepared ahead by a background thread of the iterator (0: none,
    /// batches are built by `cllm_loader_iter_next`; at most 4096). Set it to
    /// the number of spheres to prepare the next group while one trains.
    pub prefetch: u32,
}

/// The default iterator options: 8 x 64, shuffled with seed 0, padded last
/// batch, no prefetch.
#[unsafe(no_mangle)]
pub extern "C" fn cllm_loader_iter_options_default() -> cllm_loader_iter_options {
    let d = BatchConfig::default();
    cllm_loader_iter_options {
        batch_size: d.batch_size as u32,
        seq_len: d.seq_len as u32,
        shuffle: d.shuffle,
        drop_last: d.drop_last,
        seed: d.seed,
        prefetch: 0,
    }
}

/// One batch, with exactly the layout of the host's `CLLMBatch` (40 bytes on
/// x86-64): row-major `batch_size x seq_len` arrays. Targets are the inputs
/// shifted by one token; padding has id 0 and mask 0.0; `num_valid_tokens`
/// counts the mask's 1.0 entries. Free it with `cllm_loader_batch_free`
/// (a pointer to it may be passed where a `CLLMBatch*` is expected).
#[repr(C)]
#[derive(Debug)]
pub struct cllm_loader_batch {
    /// Input ids.
    pub input_ids: *mut u32,
    /// Target ids.
    pub target_ids: *mut u32,
    /// 1.0 for a real token, 0.0 for padding.
    pub attention_mask: *mut f32,
    /// Rows.
    pub batch_size: u32,
    /// Columns.
    pub seq_len: u32,
    /// Number of real (unmasked) tokens.
    pub num_valid_tokens: u32,
}

/// A batch and the vectors its pointers point into.
#[repr(C)]
struct BatchBox {
    /// First field: a `*mut cllm_loader_batch` is a `*mut BatchBox`.
    c: cllm_loader_batch,
    batch: Batch,
}

enum Batches {
    Direct(BatchIter),
    Prefetched(Prefetcher),
}

/// Where an iterator is: changed by `_next` and `_reset`.
struct IterState {
    batches: Batches,
}

/// The batches of one shard, epoch after epoch.
pub struct cllm_loader_iter {
    corpus: Arc<Corpus>,
    config: BatchConfig,
    shard: usize,
    num_shards: usize,
    prefetch: usize,
    per_epoch: usize,
    /// A lock so that the handle is shared like every other (`&self`); the
    /// one thread that uses an iterator always finds it free.
    state: Mutex<IterState>,
}

// SAFETY: made only by Box::into_raw in cllm_loader_iter_create, freed only
// by cllm_loader_iter_free; its mutable state is behind a Mutex (Sync).
unsafe impl Handle for cllm_loader_iter {}

impl cllm_loader_iter {
    fn state(&self) -> MutexGuard<'_, IterState> {
        // A panic inside `_next` or `_reset` leaves a whole iterator (at
        // worst at another position), so poisoning is ignored.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn start(
    corpus: &Arc<Corpus>,
    config: &BatchConfig,
    shard: usize,
    num_shards: usize,
    prefetch: usize,
    epoch: u64,
) -> Result<(Batches, usize), FfiError> {
    let mut iter = BatchIter::new(corpus.clone(), config, shard, num_shards)?;
    iter.reset(epoch);
    let per_epoch = iter.batches_per_epoch();
    let batches = if prefetch == 0 {
        Batches::Direct(iter)
    } else {
        Batches::Prefetched(Prefetcher::new(iter, prefetch)?)
    };
    Ok((batches, per_epoch))
}

/// Creates the iterator of shard `shard` of `num_shards` (0 of 1 for every
/// batch), at the start of epoch 0; `*out` receives it. Batch `b` of an
/// epoch belongs to shard `b % num_shards`: shards are disjoint and together
/// give every batch once. `options` may be NULL for the defaults.
///
/// Errors: `CLLM_ERR_NULL` (loader, out), `CLLM_ERR_INVALID_ARGUMENT`
/// (batch_size or seq_len 0, batch_size * seq_len above 2^26, seq_len not
/// shorter than the corpus, no full batch with drop_last, shard not below
/// num_shards, num_shards 0 or above 4096, prefetch above 4096),
/// `CLLM_ERR_SPAWN` (the prefetch thread).
///
/// # Safety
/// `loader` is NULL or live; `options` NULL or valid; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_loader_iter_create(
    loader: *const cllm_loader,
    options: *const cllm_loader_iter_options,
    shard: u32,
    num_shards: u32,
    out: *mut *mut cllm_loader_iter,
) -> cllm_status {
    with_handle!(loader, |l| {
        let out = out_ptr(out, "out")?;
        // SAFETY: NULL or valid options (this function's contract).
        let o = unsafe { options.as_ref() }
            .copied()
            .unwrap_or_else(|| cllm_loader_iter_options_default());
        if o.prefetch > CLLM_LOADER_MAX_PREFETCH {
            return Err(FfiError::invalid(format!(
                "prefetch {} is above the limit of {CLLM_LOADER_MAX_PREFETCH}",
                o.prefetch
            )));
        }
        let config = BatchConfig {
            batch_size: o.batch_size as usize,
            seq_len: o.seq_len as usize,
            shuffle: o.shuffle,
            seed: o.seed,
            drop_last: o.drop_last,
        };
        let (shard, num_shards, prefetch) =
            (shard as usize, num_shards as usize, o.prefetch as usize);
        let corpus = l.corpus().clone();
        let (batches, per_epoch) = start(&corpus, &config, shard, num_shards, prefetch, 0)?;
        let iter = cllm_loader_iter {
            corpus,
            config,
            shard,
            num_shards,
            prefetch,
            per_epoch,
            state: Mutex::new(IterState { batches }),
        };
        // SAFETY: checked by out_ptr.
        unsafe { write_out(out, Box::into_raw(Box::new(iter))) };
        Ok(())
    })
}

/// The next batch of this shard in the current epoch: `*out` receives a new
/// batch (free it with `cllm_loader_batch_free`), or NULL when the epoch is
/// over (then call `cllm_loader_iter_reset`). Errors: `CLLM_ERR_NULL`.
///
/// # Safety
/// `iter` is NULL or live; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_loader_iter_next(
    iter: *const cllm_loader_iter,
    out: *mut *mut cllm_loader_batch,
) -> cllm_status {
    with_handle!(iter, |it| {
        let out = out_ptr(out, "out")?;
        let next = match &mut it.state().batches {
            Batches::Direct(b) => b.next(),
            Batches::Prefetched(p) => p.next(),
        };
        let ptr = match next {
            None => std::ptr::null_mut(),
            Some(mut batch) => {
                let c = cllm_loader_batch {
                    input_ids: batch.input_ids.as_mut_ptr(),
                    target_ids: batch.target_ids.as_mut_ptr(),
                    attention_mask: batch.attention_mask.as_mut_ptr(),
                    batch_size: batch.batch_size,
                    seq_len: batch.seq_len,
                    num_valid_tokens: batch.num_valid_tokens,
                };
                // Moving `batch` into the box moves the Vec headers, not their
                // heap buffers: the pointers above stay valid.
                Box::into_raw(Box::new(BatchBox { c, batch })).cast::<cllm_loader_batch>()
            }
        };
        // SAFETY: checked by out_ptr.
        unsafe { write_out(out, ptr) };
        Ok(())
    })
}

/// Starts epoch `epoch` from this shard's first batch (shuffled for that
/// epoch). Resetting to the current epoch repeats it. Errors:
/// `CLLM_ERR_NULL`, `CLLM_ERR_SPAWN` (the prefetch thread).
///
/// # Safety
/// `iter` is NULL or live.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_loader_iter_reset(
    iter: *const cllm_loader_iter,
    epoch: u64,
) -> cllm_status {
    with_handle!(iter, |it| {
        let mut state = it.state();
        match &mut state.batches {
            Batches::Direct(b) => b.reset(epoch),
            Batches::Prefetched(_) => {
                // Stop the old thread before starting the new one.
                state.batches = Batches::Direct(BatchIter::new(
                    it.corpus.clone(),
                    &it.config,
                    it.shard,
                    it.num_shards,
                )?);
                let (batches, _) = start(
                    &it.corpus,
                    &it.config,
                    it.shard,
                    it.num_shards,
                    it.prefetch,
                    epoch,
                )?;
                state.batches = batches;
            }
        }
        Ok(())
    })
}

/// Writes the number of batches this shard gives per epoch to `*out`.
///
/// # Safety
/// `iter` is NULL or live; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_loader_iter_num_batches(
    iter: *const cllm_loader_iter,
    out: *mut usize,
) -> cllm_status {
    with_handle!(iter, |it| {
        let out = out_ptr(out, "out")?;
        // SAFETY: checked by out_ptr.
        unsafe { write_out(out, it.per_epoch) };
        Ok(())
    })
}

/// Frees an iterator (stopping its prefetch thread). NULL is a no-op.
/// Batches it returned stay valid.
///
/// # Safety
/// `iter` is NULL or from `cllm_loader_iter_create`, not used after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_loader_iter_free(iter: *mut cllm_loader_iter) {
    free_handle!(iter)
}

/// Frees a batch from `cllm_loader_iter_next`. NULL is a no-op.
///
/// # Safety
/// `batch` is NULL or from `cllm_loader_iter_next`, not used after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_loader_batch_free(batch: *mut cllm_loader_batch) {
    if batch.is_null() {
        return;
    }
    ffi_value(
        |_| (),
        || {
            // SAFETY: the pointer came from `Box<BatchBox>::into_raw` in
            // `cllm_loader_iter_next` (its first field, same address) and
            // the caller gives it up.
            drop(unsafe { Box::from_raw(batch.cast::<BatchBox>()) });
            Ok(())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn the_batch_has_the_cllm_batch_layout() {
        assert_eq!(offset_of!(cllm_loader_batch, input_ids), 0);
        assert_eq!(
            offset_of!(cllm_loader_batch, target_ids),
            size_of::<usize>()
        );
        assert_eq!(
            offset_of!(cllm_loader_batch, attention_mask),
            2 * size_of::<usize>()
        );
        assert_eq!(
            offset_of!(cllm_loader_batch, batch_size),
            3 * size_of::<usize>()
        );
        assert_eq!(
            offset_of!(cllm_loader_batch, seq_len),
            3 * size_of::<usize>() + 4
        );
        assert_eq!(
            offset_of!(cllm_loader_batch, num_valid_tokens),
            3 * size_of::<usize>() + 8
        );
        #[cfg(target_pointer_width = "64")]
        assert_eq!(size_of::<cllm_loader_batch>(), 40);
    }
}
