//! The thread registry: every thread that touches this crate gets a record
//! with a unique id (never reused), a dense index (reused after the thread
//! exits, for [`crate::ThreadSlots`]), its name, and what the deadlock
//! detector needs: the read locks it holds and the lock it waits for.

use crate::lock_meta::LockMeta;
use parking_lot::Mutex;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use thread_support::tsan;

/// Shared (read) holds a thread tracks exactly; more are counted as overflow.
const HELD_SLOTS: usize = 8;

/// The ids of the read locks a thread holds. Only the owning thread writes
/// it; the detector reads it.
pub(crate) struct HeldSet {
    slots: [AtomicU64; HELD_SLOTS],
    /// Holds that did not fit in `slots`: the detector's view is incomplete.
    overflow: AtomicU64,
}

impl HeldSet {
    const fn new() -> Self {
        Self {
            slots: [const { AtomicU64::new(0) }; HELD_SLOTS],
            overflow: AtomicU64::new(0),
        }
    }

    pub(crate) fn insert(&self, lock_id: u64) {
        for slot in &self.slots {
            if slot.load(Ordering::Relaxed) == 0 {
                slot.store(lock_id, Ordering::Release);
                return;
            }
        }
        self.overflow
            .store(self.overflow.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    pub(crate) fn remove(&self, lock_id: u64) {
        for slot in &self.slots {
            if slot.load(Ordering::Relaxed) == lock_id {
                slot.store(0, Ordering::Release);
                return;
            }
        }
        let n = self.overflow.load(Ordering::Relaxed);
        self.overflow.store(n.saturating_sub(1), Ordering::Relaxed);
    }

    /// The lock ids held, and whether some holds were not tracked.
    pub(crate) fn snapshot(&self) -> (Vec<u64>, bool) {
        let ids = self
            .slots
            .iter()
            .map(|s| s.load(Ordering::Acquire))
            .filter(|&id| id != 0)
            .collect();
        (ids, self.overflow.load(Ordering::Relaxed) > 0)
    }
}

/// How a thread waits for a lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WaitMode {
    /// Exclusive lock of a mutex.
    Lock,
    /// Shared (read) lock of a read-write lock.
    Read,
    /// Exclusive (write) lock of a read-write lock.
    Write,
}

/// What a waiting thread waits for.
pub(crate) struct WaitRecord {
    /// The lock. Valid while this record is set: the waiter borrows the lock
    /// for the whole wait and clears the record (under the record's mutex)
    /// before it returns.
    pub(crate) lock: *const LockMeta,
    pub(crate) mode: WaitMode,
    /// Distinguishes successive waits of the same thread.
    pub(crate) seq: u64,
    pub(crate) since: Instant,
}

// SAFETY: the raw pointer is only dereferenced under the mutex that guards
// the record, while the waiting thread keeps the lock alive (see `lock`).
unsafe impl Send for WaitRecord {}

/// One registered thread.
pub(crate) struct ThreadRecord {
    pub(crate) id: u64,
    pub(crate) index: usize,
    pub(crate) name: String,
    pub(crate) held_shared: HeldSet,
    pub(crate) wait: Mutex<Option<WaitRecord>>,
    wait_seq: AtomicU64,
}

impl ThreadRecord {
    /// Marks the start of a wait for `lock`, returning its sequence number.
    pub(crate) fn begin_wait(&self, lock: &LockMeta, mode: WaitMode, since: Instant) -> u64 {
        let seq = self.wait_seq.load(Ordering::Relaxed) + 1;
        self.wait_seq.store(seq, Ordering::Relaxed);
        *self.wait.lock() = Some(WaitRecord {
            lock,
            mode,
            seq,
            since,
        });
        seq
    }

    /// Marks the end of the current wait (acquired, timed out, or gave up).
    pub(crate) fn end_wait(&self) {
        *self.wait.lock() = None;
    }
}

struct Registry {
    threads: Vec<Arc<ThreadRecord>>,
    free_indices: BinaryHeap<Reverse<usize>>,
    next_index: usize,
    next_id: u64,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    threads: Vec::new(),
    free_indices: BinaryHeap::new(),
    next_index: 0,
    next_id: 1,
});

/// The registry, locked as ThreadSanitizer sees it: a thread's record
/// (its name) is made on that thread and read on others (`tsan::Seen`).
fn registry() -> tsan::Seen<impl std::ops::DerefMut<Target = Registry>> {
    tsan::Seen::new(REGISTRY.lock(), &REGISTRY)
}

/// The calling thread's registration; unregisters when the thread exits.
/// The record is dropped by hand, inside `Drop`, so that ThreadSanitizer
/// does not see its last `free` (other threads read it under the registry's
/// lock and drop their references without a lock: the order is the `Arc`'s
/// count, which TSan does not see).
struct Registration(ManuallyDrop<Arc<ThreadRecord>>);

impl Registration {
    fn register() -> Self {
        let name = std::thread::current().name().map(str::to_owned);
        let mut registry = registry();
        let id = registry.next_id;
        registry.next_id += 1;
        // Reuse the smallest free index, so indices stay dense.
        let index = match registry.free_indices.pop() {
            Some(Reverse(i)) => i,
            None => {
                registry.next_index += 1;
                registry.next_index - 1
            }
        };
        let record = Arc::new(ThreadRecord {
            id,
            index,
            name: name.unwrap_or_else(|| format!("thread-{id}")),
            held_shared: HeldSet::new(),
            wait: Mutex::new(None),
            wait_seq: AtomicU64::new(0),
        });
        registry.threads.push(record.clone());
        Self(ManuallyDrop::new(record))
    }
}

/// Registered threads that have exited.
static EXITS: AtomicU64 = AtomicU64::new(0);

impl Drop for Registration {
    fn drop(&mut self) {
        let _untracked = tsan::Untracked::begin();
        {
            let mut registry = registry();
            registry.threads.retain(|t| t.id != self.0.id);
            registry.free_indices.push(Reverse(self.0.index));
        }
        EXITS.fetch_add(1, Ordering::Release);
        // SAFETY: dropped once, here; the registration is never used again.
        unsafe { ManuallyDrop::drop(&mut self.0) };
    }
}

thread_local! {
    static CURRENT: Registration = Registration::register();
}

/// Runs `f` on the calling thread's record; `None` once the thread's
/// thread-local storage is being torn down.
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(&Arc<ThreadRecord>) -> R) -> Option<R> {
    CURRENT.try_with(|r| f(&r.0)).ok()
}

/// The calling thread's unique id (never reused in this process, never 0),
/// or 0 when called from a thread-local destructor after the registration
/// was dropped.
#[inline]
pub fn current_thread_id() -> u64 {
    with_current(|r| r.id).unwrap_or(0)
}

/// The calling thread's dense index: small, unique among live threads, and
/// reused after a thread exits (the smallest free one first). `None` when
/// called from a thread-local destructor after the registration was dropped.
#[inline]
pub fn current_thread_index() -> Option<usize> {
    with_current(|r| r.index)
}

/// Every registered thread, for the deadlock detector.
pub(crate) fn all_threads() -> Vec<Arc<ThreadRecord>> {
    registry().threads.clone()
}

/// How many registered threads have exited so far. Per-thread structures
/// compare it with an earlier reading to learn cheaply that some thread
/// index may have been freed (see [`live_thread_indices`]).
pub fn thread_exits() -> u64 {
    EXITS.load(Ordering::Acquire)
}

/// The indices of the threads registered now, sorted. An index not in the
/// list belongs to no live thread (until a new thread is given it).
pub fn live_thread_indices() -> Vec<usize> {
    let mut indices: Vec<usize> = registry().threads.iter().map(|t| t.index).collect();
    indices.sort_unstable();
    indices
}

/// The number of threads registered now (threads that used this crate and
/// have not exited).
pub fn registered_threads() -> usize {
    registry().threads.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_indices_are_unique_among_live_threads() {
        let (id, index) = (current_thread_id(), current_thread_index().unwrap());
        assert_ne!(id, 0);
        let (other_id, other_index) =
            std::thread::spawn(|| (current_thread_id(), current_thread_index().unwrap()))
                .join()
                .unwrap();
        assert_ne!(id, other_id);
        assert_ne!(index, other_index);
        assert_eq!(current_thread_id(), id, "the id is stable for a thread");
    }

    #[test]
    fn an_exited_threads_index_is_reused_but_its_id_is_not() {
        let first = std::thread::spawn(|| (current_thread_id(), current_thread_index().unwrap()))
            .join()
            .unwrap();
        // The smallest free index is handed out, and `first`'s is free now:
        // a new thread gets it or a smaller one. Not always exactly it: other
        // tests' threads come and go concurrently, and may free smaller ones
        // or take this one (2000 tries for exactly it failed with three test
        // processes on two CPUs). Indices that were never reused would only
        // grow.
        let mut reused = false;
        for _ in 0..2000 {
            let next =
                std::thread::spawn(|| (current_thread_id(), current_thread_index().unwrap()))
                    .join()
                    .unwrap();
            assert_ne!(next.0, first.0, "ids are never reused");
            if next.1 <= first.1 {
                reused = true;
                break;
            }
        }
        assert!(
            reused,
            "no later thread got the exited thread's index {} or a smaller one",
            first.1
        );
    }

    #[test]
    fn a_live_thread_is_in_the_live_set_and_its_exit_is_counted() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            tx.send(current_thread_index().unwrap()).unwrap();
            done_rx.recv().unwrap();
        });
        let index = rx.recv().unwrap();
        assert!(live_thread_indices().contains(&index));
        let mine = current_thread_index().unwrap(); // registers this thread
        assert!(live_thread_indices().contains(&mine));
        let before = thread_exits();
        done_tx.send(()).unwrap();
        t.join().unwrap();
        assert!(
            thread_exits() > before,
            "the exit is counted by the time join returns"
        );
    }

    #[test]
    fn held_set_tracks_overflow() {
        let set = HeldSet::new();
        for id in 1..=(HELD_SLOTS as u64 + 2) {
            set.insert(id);
        }
        let (ids, incomplete) = set.snapshot();
        assert_eq!(ids.len(), HELD_SLOTS);
        assert!(incomplete);
        for id in 1..=(HELD_SLOTS as u64 + 2) {
            set.remove(id);
        }
        assert_eq!(set.snapshot(), (vec![], false));
    }
}
