//! [`CountingMutex`]: a parking_lot mutex that counts acquisitions,
//! contended acquisitions and wait time, and takes part in deadlock
//! detection (the acquisition itself is in `acquire`).

use crate::acquire::{
    LockError, MutexLock, mark_released, try_acquire, wait, wait_checked, wait_for,
};
use crate::lock_meta::LockMeta;
use crate::stats::LockStats;
use crate::thread::{self, WaitMode};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// A [`parking_lot::Mutex`] with a name, contention counting and deadlock
/// detection. The uncontended `lock` costs the parking_lot `try_lock` plus a
/// few uncontended stores.
///
/// A thread that calls [`lock`](Self::lock) on a mutex it already holds
/// panics instead of hanging (the lock is not re-entrant).
pub struct CountingMutex<T> {
    meta: LockMeta,
    inner: parking_lot::Mutex<T>,
}

/// Holds a [`CountingMutex`]; unlocks on drop.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct CountingMutexGuard<'a, T> {
    meta: &'a LockMeta,
    guard: parking_lot::MutexGuard<'a, T>,
}

impl<T> CountingMutex<T> {
    /// A new unlocked mutex named `name` (the name appears in deadlock reports).
    pub fn new(name: impl Into<String>, value: T) -> Self {
        Self {
            meta: LockMeta::new(name.into()),
            inner: parking_lot::Mutex::new(value),
        }
    }

    /// The name given at creation.
    pub fn name(&self) -> &str {
        &self.meta.name
    }

    /// A process-unique id (appears in deadlock reports).
    pub fn id(&self) -> u64 {
        self.meta.id
    }

    /// This lock's figures since creation.
    pub fn stats(&self) -> LockStats {
        self.meta.stats()
    }

    /// Locks, waiting as long as needed. A thread that waits past the
    /// deadlock check period looks for a wait-for cycle and reports it to the
    /// deadlock handler (see [`crate::set_deadlock_handler`]), then keeps
    /// waiting.
    ///
    /// # Panics
    /// If the calling thread already holds this mutex.
    pub fn lock(&self) -> CountingMutexGuard<'_, T> {
        self.guard(wait(&self.meta, &self.kind()))
    }

    /// Locks if the mutex is free now, without waiting.
    pub fn try_lock(&self) -> Option<CountingMutexGuard<'_, T>> {
        try_acquire(&self.meta, &self.kind()).map(|guard| self.guard(guard))
    }

    /// Locks, waiting at most `timeout`. `None` on timeout, or at once if the
    /// calling thread holds the mutex itself. Cycles found while waiting are
    /// reported as by [`lock`](Self::lock).
    pub fn try_lock_for(&self, timeout: Duration) -> Option<CountingMutexGuard<'_, T>> {
        wait_for(&self.meta, &self.kind(), timeout).map(|guard| self.guard(guard))
    }

    /// Locks, waiting at most `timeout`, and gives up with
    /// [`LockError::Deadlock`] as soon as the detector finds the calling
    /// thread in a wait-for cycle (after the deadlock check period; at once
    /// if the thread holds the mutex itself). Use it where the caller can
    /// back off: release what it holds and retry.
    pub fn lock_checked(&self, timeout: Duration) -> Result<CountingMutexGuard<'_, T>, LockError> {
        wait_checked(&self.meta, &self.kind(), timeout).map(|guard| self.guard(guard))
    }

    #[inline]
    fn kind(&self) -> MutexLock<'_, T> {
        MutexLock(&self.inner)
    }

    #[inline]
    fn guard<'a>(&'a self, guard: parking_lot::MutexGuard<'a, T>) -> CountingMutexGuard<'a, T> {
        CountingMutexGuard {
            meta: &self.meta,
            guard,
        }
    }

    /// True if some thread holds the mutex.
    pub fn is_locked(&self) -> bool {
        self.inner.is_locked()
    }

    /// True if the calling thread holds the mutex.
    pub fn is_held_by_current_thread(&self) -> bool {
        let me = thread::current_thread_id();
        me != 0 && self.meta.owner.load(Ordering::Relaxed) == me
    }

    /// Unlocks a mutex whose guard was forgotten (`std::mem::forget`), as a C
    /// API does to hold a lock across calls.
    ///
    /// # Safety
    /// The mutex must be locked by the calling thread through a guard that was
    /// forgotten, and no guard of it may be alive.
    pub unsafe fn force_unlock(&self) {
        mark_released(&self.meta, WaitMode::Lock);
        // SAFETY: the caller guarantees that the mutex is locked by a
        // forgotten guard of this thread.
        unsafe { self.inner.force_unlock() }
    }

    /// Mutable access without locking (`&mut self` proves exclusivity).
    pub fn get_mut(&mut self) -> &mut T {
        self.inner.get_mut()
    }

    /// The protected value.
    pub fn into_inner(self) -> T {
        self.inner.into_inner()
    }
}

impl<T: Default> Default for CountingMutex<T> {
    fn default() -> Self {
        Self::new("unnamed", T::default())
    }
}

impl<T> fmt::Debug for CountingMutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.meta.fmt_lock(f, "CountingMutex")
    }
}

impl<T> Deref for CountingMutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for CountingMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T> Drop for CountingMutexGuard<'_, T> {
    fn drop(&mut self) {
        mark_released(self.meta, WaitMode::Lock);
    }
}
