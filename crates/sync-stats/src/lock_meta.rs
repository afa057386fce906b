//! [`LockMeta`]: what the statistics and the deadlock detector know about
//! one counting lock. It has a module of its own because the lock kinds,
//! the thread registry (whose wait records point to it) and the detector all
//! read it, and none of them should have to import another for it.

use crate::stats::{GLOBAL, LockStats};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use thread_support::duration_to_nanos;

static NEXT_LOCK_ID: AtomicU64 = AtomicU64::new(1);

/// What the detector and the statistics know about one lock.
pub(crate) struct LockMeta {
    pub(crate) id: u64,
    pub(crate) name: Box<str>,
    /// Thread id of the exclusive holder (mutex, or writer of a read-write
    /// lock); 0 when nobody holds it exclusively.
    pub(crate) owner: AtomicU64,
    acquisitions: AtomicU64,
    contended: AtomicU64,
    wait_ns: AtomicU64,
}

impl LockMeta {
    pub(crate) fn new(name: String) -> Self {
        Self {
            id: NEXT_LOCK_ID.fetch_add(1, Ordering::Relaxed),
            name: name.into_boxed_str(),
            owner: AtomicU64::new(0),
            acquisitions: AtomicU64::new(0),
            contended: AtomicU64::new(0),
            wait_ns: AtomicU64::new(0),
        }
    }

    /// Counts an acquisition made while holding the lock. `exclusive`: the
    /// caller is the only holder, so a plain load and store is enough (every
    /// earlier holder's update happened before this hold).
    #[inline]
    pub(crate) fn count(&self, index: Option<usize>, exclusive: bool, waited: Option<Duration>) {
        if exclusive {
            let n = self.acquisitions.load(Ordering::Relaxed);
            self.acquisitions.store(n + 1, Ordering::Relaxed);
        } else {
            self.acquisitions.fetch_add(1, Ordering::Relaxed);
        }
        let shard = index.unwrap_or(0);
        // Acquisition first, then contention: see `global_lock_stats`.
        GLOBAL.acquisitions.add_at(shard, 1);
        if let Some(waited) = waited {
            let ns = duration_to_nanos(waited);
            self.contended.fetch_add(1, Ordering::Relaxed);
            self.wait_ns.fetch_add(ns, Ordering::Relaxed);
            GLOBAL.wait_ns.add_at(shard, ns);
            GLOBAL.contended.add_at(shard, 1);
        }
    }

    pub(crate) fn stats(&self) -> LockStats {
        let contended = self.contended.load(Ordering::Relaxed);
        let wait = Duration::from_nanos(self.wait_ns.load(Ordering::Relaxed));
        let acquisitions = self.acquisitions.load(Ordering::Relaxed);
        LockStats {
            acquisitions: acquisitions.max(contended),
            contended,
            wait,
        }
    }

    /// The `Debug` output of the lock type `type_name` that holds this.
    pub(crate) fn fmt_lock(&self, f: &mut fmt::Formatter<'_>, type_name: &str) -> fmt::Result {
        f.debug_struct(type_name)
            .field("name", &self.name)
            .field("id", &self.id)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
