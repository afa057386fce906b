//! [`Prefetcher`]: prepares the next batches on a thread of its own while the
//! current ones train.

use crate::batch::{Batch, BatchIter};
use crate::error::Error;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

/// Runs a [`BatchIter`] on a background thread (`cllm-prefetch`), keeping up
/// to `depth` batches ready, in the iterator's order. With `depth` equal to
/// the number of spheres, the next group of batches (one per sphere) is
/// built while the current group trains. Dropping it stops and joins the
/// thread.
pub struct Prefetcher {
    receiver: Option<Receiver<Batch>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Prefetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefetcher").finish_non_exhaustive()
    }
}

impl Prefetcher {
    /// Starts prefetching the batches of `iter`, at most `depth` ahead
    /// (`depth >= 1`).
    pub fn new(iter: BatchIter, depth: usize) -> Result<Self, Error> {
        if depth == 0 {
            return Err(Error::InvalidArgument(
                "prefetch depth 0: use the iterator directly".into(),
            ));
        }
        // The channel holds depth - 1 batches; the thread holds one more
        // while it waits to hand it over.
        let (sender, receiver) = sync_channel(depth - 1);
        let thread = std::thread::Builder::new()
            .name("cllm-prefetch".into())
            .spawn(move || {
                // Under ThreadSanitizer, the loader's own thread is out of view.
                // Made first, so that the captured channel end and iterator
                // are dropped inside it.
                let _library = thread_support::tsan::library_thread();
                let (mut iter, sender) = (iter, sender);
                for batch in iter.by_ref() {
                    if sender.send(batch).is_err() {
                        break; // the consumer is gone
                    }
                }
            })
            .map_err(|e| Error::Spawn(e.to_string()))?;
        Ok(Self {
            receiver: Some(receiver),
            thread: Some(thread),
        })
    }
}

impl Iterator for Prefetcher {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let batch = self.receiver.as_ref()?.recv().ok();
        if batch.is_none() {
            // The thread ended: the epoch is over, or it panicked.
            self.receiver = None;
            if let Some(Err(payload)) = self.thread.take().map(JoinHandle::join) {
                std::panic::resume_unwind(payload);
            }
        }
        batch
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        // Closing the channel first makes a blocked send fail, so the thread ends.
        self.receiver = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
