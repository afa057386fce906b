//! The batches of an epoch: [`Batch`], a host batch that the system owns
//! until it is dropped (then the host frees it), and [`Feed`], which fetches
//! at most `cllm_batch_iterator_num_batches` of them and skips (and frees)
//! the padding-only ones.

use crate::error::Error;
use crate::host::{CLLMBatch, CLLMBatchIterator, Host, HostPtr};

/// A batch owned by the system, given back to the host when dropped.
pub(crate) struct Batch<H: Host> {
    ptr: HostPtr<CLLMBatch>,
    host: H,
}

impl<H: Host> Batch<H> {
    pub(crate) fn get(&self) -> &CLLMBatch {
        // SAFETY: the host returned a valid batch that lives until we free it.
        unsafe { &*self.ptr.get() }
    }
}

impl<H: Host> Drop for Batch<H> {
    fn drop(&mut self) {
        // SAFETY: the batch came from the host's iterator and is freed once;
        // batches are independent heap objects, free from any thread.
        unsafe { self.host.free_batch(self.ptr.get()) }
    }
}

/// The batches of one epoch, at most `limit` of them, skipping (and
/// freeing) padding-only batches.
pub(crate) struct Feed<'h, H: Host> {
    host: &'h H,
    iter: HostPtr<CLLMBatchIterator>,
    fetched: usize,
    limit: usize,
    skipped: u64,
}

impl<'h, H: Host> Feed<'h, H> {
    /// At most `limit` batches from `iter`.
    ///
    /// # Safety
    /// `iter` is the host's live iterator, used only by the calling thread
    /// while the feed lives.
    pub(crate) unsafe fn new(host: &'h H, iter: HostPtr<CLLMBatchIterator>, limit: usize) -> Self {
        Self {
            host,
            iter,
            fetched: 0,
            limit,
            skipped: 0,
        }
    }

    /// Padding-only batches skipped so far.
    pub(crate) fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The next batch with a valid token; `None` at the iterator's end or
    /// after `limit` batches.
    pub(crate) fn next(&mut self) -> Result<Option<Batch<H>>, Error> {
        while self.fetched < self.limit {
            self.fetched += 1;
            // SAFETY: the iterator is live and only this thread uses it
            // (the contract of `new`).
            let ptr = unsafe { self.host.next(self.iter.get()) };
            if ptr.is_null() {
                self.fetched = self.limit;
                return Ok(None);
            }
            let batch = Batch {
                ptr: HostPtr(ptr),
                host: self.host.clone(),
            };
            if batch.get().num_valid_tokens == 0 {
                self.skipped += 1;
                continue;
            }
            return Ok(Some(batch));
        }
        Ok(None)
    }
}
