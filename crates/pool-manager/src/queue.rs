//! [`TaskQueue`]: a pool's bounded submit queue, ordered by priority and then
//! by arrival.
//!
//! One mutex guards the entries; submitters that find the queue full wait on
//! the `not_full` condition variable (back-pressure) or get
//! [`PushError::Full`] at once. Workers never sleep on the queue: they sleep
//! on their crew's [`Parker`](crate::parker::Parker), which every push
//! notifies after the entry is in. A relaxed mirror of the length lets idle
//! workers look at an empty queue without taking its lock.

use crate::sync::{AtomicUsize, Condvar, Mutex, Ordering};
use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::time::Instant;

/// One queued job and when it was queued.
pub struct Entry<J> {
    pub priority: i32,
    seq: u64,
    pub enqueued: Instant,
    pub job: J,
}

impl<J> PartialEq for Entry<J> {
    fn eq(&self, other: &Self) -> bool {
        self.priority == other.priority && self.seq == other.seq
    }
}

impl<J> Eq for Entry<J> {}

impl<J> PartialOrd for Entry<J> {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl<J> Ord for Entry<J> {
    /// Higher priority first; within a priority, the earlier arrival first
    /// (the heap pops the greatest entry).
    fn cmp(&self, other: &Self) -> CmpOrdering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

/// How long a push may wait for room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Fail at once when full.
    No,
    /// Wait until there is room, or until the deadline (`None`: for ever).
    Until(Option<Instant>),
}

/// Why a push failed; the job is handed back with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The queue was full and the push could not wait.
    Full,
    /// The queue stayed full until the deadline.
    Timeout,
    /// The queue is closed (shutdown).
    Closed,
}

struct State<J> {
    heap: BinaryHeap<Entry<J>>,
    seq: u64,
    closed: bool,
    /// Submitters sleeping on `not_full`.
    blocked: usize,
}

/// A bounded priority queue of jobs with blocking and non-blocking push.
pub struct TaskQueue<J> {
    state: Mutex<State<J>>,
    not_full: Condvar,
    len: AtomicUsize,
    capacity: usize,
}

impl<J> TaskQueue<J> {
    /// An empty queue holding at most `capacity` (at least 1) entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State {
                heap: BinaryHeap::new(),
                seq: 0,
                closed: false,
                blocked: 0,
            }),
            not_full: Condvar::new(),
            len: AtomicUsize::new(0),
            capacity: capacity.max(1),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The number of queued entries (a relaxed read: exact only when no push
    /// or pop runs concurrently).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Queues `job`, waiting for room as `wait` allows.
    pub fn push(&self, priority: i32, job: J, wait: Wait) -> Result<(), (PushError, J)> {
        let mut state = self.state.lock();
        loop {
            if state.closed {
                return Err((PushError::Closed, job));
            }
            if state.heap.len() < self.capacity {
                let seq = state.seq;
                state.seq += 1;
                state.heap.push(Entry {
                    priority,
                    seq,
                    enqueued: Instant::now(),
                    job,
                });
                self.len.store(state.heap.len(), Ordering::Relaxed);
                return Ok(());
            }
            match wait {
                Wait::No => return Err((PushError::Full, job)),
                Wait::Until(deadline) => {
                    state.blocked += 1;
                    let timed_out = match deadline {
                        None => {
                            self.not_full.wait(&mut state);
                            false
                        }
                        Some(d) => self.not_full.wait_until(&mut state, d),
                    };
                    state.blocked -= 1;
                    if timed_out && !state.closed && state.heap.len() >= self.capacity {
                        return Err((PushError::Timeout, job));
                    }
                }
            }
        }
    }

    /// Takes the highest-priority entry, if any.
    pub fn pop(&self) -> Option<Entry<J>> {
        if self.len.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut state = self.state.lock();
        let entry = state.heap.pop();
        self.len.store(state.heap.len(), Ordering::Relaxed);
        if entry.is_some() && state.blocked > 0 {
            self.not_full.notify_one();
        }
        entry
    }

    /// Takes every entry (highest priority first), waking blocked submitters.
    pub fn drain(&self) -> Vec<Entry<J>> {
        let mut state = self.state.lock();
        let mut out = Vec::with_capacity(state.heap.len());
        while let Some(e) = state.heap.pop() {
            out.push(e);
        }
        self.len.store(0, Ordering::Relaxed);
        self.not_full.notify_all();
        out
    }

    /// Refuses every later push and wakes blocked submitters (they fail with
    /// [`PushError::Closed`]). Queued entries stay until popped or drained.
    pub fn close(&self) {
        let mut state = self.state.lock();
        state.closed = true;
        self.not_full.notify_all();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn higher_priority_first_then_arrival_order() {
        let q = TaskQueue::new(10);
        for (p, v) in [(0, 1), (5, 2), (0, 3), (5, 4), (-1, 5)] {
            q.push(p, v, Wait::No).unwrap();
        }
        let order: Vec<i32> = std::iter::from_fn(|| q.pop().map(|e| e.job)).collect();
        assert_eq!(order, vec![2, 4, 1, 3, 5]);
    }

    #[test]
    fn a_full_queue_rejects_a_push_that_cannot_wait() {
        let q = TaskQueue::new(2);
        q.push(0, 1, Wait::No).unwrap();
        q.push(0, 2, Wait::No).unwrap();
        assert_eq!(q.push(0, 3, Wait::No).unwrap_err(), (PushError::Full, 3));
        let deadline = Instant::now() + Duration::from_millis(20);
        assert_eq!(
            q.push(0, 3, Wait::Until(Some(deadline))).unwrap_err(),
            (PushError::Timeout, 3)
        );
        assert!(Instant::now() >= deadline);
    }

    #[test]
    fn a_blocked_push_proceeds_when_an_entry_is_taken() {
        let q = Arc::new(TaskQueue::new(1));
        q.push(0, 1, Wait::No).unwrap();
        let q2 = q.clone();
        let pusher = std::thread::spawn(move || q2.push(0, 2, Wait::Until(None)).map_err(|e| e.0));
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(q.pop().unwrap().job, 1);
        assert_eq!(pusher.join().unwrap(), Ok(()));
        assert_eq!(q.pop().unwrap().job, 2);
    }

    #[test]
    fn closing_wakes_blocked_pushers_with_closed() {
        let q = Arc::new(TaskQueue::new(1));
        q.push(0, 1, Wait::No).unwrap();
        let q2 = q.clone();
        let pusher = std::thread::spawn(move || q2.push(0, 2, Wait::Until(None)).map_err(|e| e.0));
        std::thread::sleep(Duration::from_millis(20));
        q.close();
        assert_eq!(pusher.join().unwrap(), Err(PushError::Closed));
        assert_eq!(q.drain().len(), 1);
        assert_eq!(q.len(), 0);
    }
}
