//! [`Parker`]: where a crew's idle workers sleep (an event count).
//!
//! A worker reads the epoch, looks for work (queues, round, timers), and if
//! it finds none parks *only if the epoch is unchanged*. Whoever makes work
//! available first publishes it (push, round open, resize), then bumps the
//! epoch under the parker's mutex and notifies. The epoch is bumped and
//! checked under the same mutex, so a notification can never fall between a
//! worker's last look and its sleep: no lost wake-ups, which `tests/loom.rs`
//! checks. Spinning workers watch the epoch without the lock.

use crate::sync::{AtomicU64, Condvar, Mutex, Ordering};
use std::time::{Duration, Instant};
use thread_support::duration_to_nanos;

pub struct Parker {
    epoch: AtomicU64,
    created: Instant,
    /// When a sleeper was last notified (ns since `created`, plus one; 0:
    /// never), so that a woken worker knows how long it really was idle.
    notified: AtomicU64,
    /// Workers asleep on `wake`.
    sleepers: Mutex<usize>,
    wake: Condvar,
}

impl Parker {
    pub fn new() -> Self {
        Self {
            epoch: AtomicU64::new(0),
            created: Instant::now(),
            notified: AtomicU64::new(0),
            sleepers: Mutex::new(0),
            wake: Condvar::new(),
        }
    }

    /// The current epoch; read it *before* looking for work.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Announces new work to one sleeping worker (and to every spinner).
    pub fn notify_one(&self) {
        let sleepers = self.sleepers.lock();
        self.epoch.fetch_add(1, Ordering::Release);
        if *sleepers > 0 {
            self.stamp();
            self.wake.notify_one();
        }
    }

    /// Announces new work or a change of state to every worker.
    pub fn notify_all(&self) {
        let sleepers = self.sleepers.lock();
        self.epoch.fetch_add(1, Ordering::Release);
        if *sleepers > 0 {
            self.stamp();
            self.wake.notify_all();
        }
    }

    fn stamp(&self) {
        // u64::MAX - 1 at most: 0 means "never", the stored value is ns + 1.
        let ns = duration_to_nanos(self.created.elapsed()).min(u64::MAX - 1);
        self.notified.store(ns + 1, Ordering::Relaxed);
    }

    /// When a sleeper was last woken by a notification, if ever.
    pub fn last_notified(&self) -> Option<Instant> {
        match self.notified.load(Ordering::Relaxed) {
            0 => None,
            n => Some(self.created + Duration::from_nanos(n - 1)),
        }
    }

    /// Sleeps unless the epoch moved past `seen`, until notified or until
    /// `deadline`. May return early (spuriously): callers look again.
    pub fn park(&self, seen: u64, deadline: Option<Instant>) {
        let mut sleepers = self.sleepers.lock();
        if self.epoch.load(Ordering::Acquire) != seen {
            return;
        }
        *sleepers += 1;
        match deadline {
            None => self.wake.wait(&mut sleepers),
            Some(d) => {
                self.wake.wait_until(&mut sleepers, d);
            }
        }
        *sleepers -= 1;
    }
}
