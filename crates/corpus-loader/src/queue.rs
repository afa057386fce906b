//! [`WorkQueue`]: items processed by several threads, where processing an
//! item may add new items (directories found while listing directories).

use crate::sync::{AtomicUsize, Mutex, Ordering, yield_now};

/// A shared queue of work that may grow while it is worked on. Every thread
/// calls [`run`](Self::run); each item is processed exactly once, and every
/// `run` returns once no item is queued or being processed.
pub struct WorkQueue<T> {
    items: Mutex<Vec<T>>,
    /// Items queued or being processed: 0 means all work is done. New items
    /// are counted before the item that found them is finished, so it never
    /// reaches 0 while work remains.
    pending: AtomicUsize,
}

impl<T> WorkQueue<T> {
    /// A queue holding `initial`.
    pub fn new(initial: Vec<T>) -> Self {
        let pending = AtomicUsize::new(initial.len());
        Self {
            items: Mutex::new(initial),
            pending,
        }
    }

    /// True once all work is done: no item queued or being processed (and
    /// so none can be added any more).
    pub fn is_finished(&self) -> bool {
        self.pending.load(Ordering::Acquire) == 0
    }

    /// Processes items with `work` (which returns the new items it found)
    /// until all work is done, waiting (yielding) while other threads may
    /// still add some. Returns only when [`is_finished`](Self::is_finished).
    pub fn run(&self, mut work: impl FnMut(T) -> Vec<T>) {
        loop {
            let next = self.items.lock().pop();
            let Some(item) = next else {
                if self.pending.load(Ordering::Acquire) == 0 {
                    return;
                }
                yield_now();
                continue;
            };
            let found = work(item);
            self.pending.fetch_add(found.len(), Ordering::AcqRel);
            self.items.lock().extend(found);
            self.pending.fetch_sub(1, Ordering::AcqRel);
        }
    }
}
