//! [`CountingRwLock`]: a parking_lot read-write lock that counts
//! acquisitions (reads and writes together), contended acquisitions and wait
//! time, and takes part in deadlock detection, read holds included (the
//! acquisition itself is in `acquire`).

use crate::acquire::{
    LockError, Read, Write, mark_released, try_acquire, wait, wait_checked, wait_for,
};
use crate::lock_meta::LockMeta;
use crate::stats::LockStats;
use crate::thread::WaitMode;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

/// A [`parking_lot::RwLock`] with a name, contention counting (reads and
/// writes together) and deadlock detection, including cycles through read
/// holds: each thread tracks its read holds (up to 8 at a time exactly).
///
/// Not re-entrant: a thread that holds the lock and asks for it again
/// deadlocks with a waiting writer, as with parking_lot. A `write` by a
/// thread that already holds the lock panics instead of hanging.
pub struct CountingRwLock<T> {
    meta: LockMeta,
    inner: parking_lot::RwLock<T>,
}

/// Shared access to a [`CountingRwLock`]; released on drop.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct CountingReadGuard<'a, T> {
    meta: &'a LockMeta,
    guard: parking_lot::RwLockReadGuard<'a, T>,
}

/// Exclusive access to a [`CountingRwLock`]; released on drop.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct CountingWriteGuard<'a, T> {
    meta: &'a LockMeta,
    guard: parking_lot::RwLockWriteGuard<'a, T>,
}

impl<T> CountingRwLock<T> {
    /// A new unlocked read-write lock named `name`.
    pub fn new(name: impl Into<String>, value: T) -> Self {
        Self {
            meta: LockMeta::new(name.into()),
            inner: parking_lot::RwLock::new(value),
        }
    }

    /// The name given at creation.
    pub fn name(&self) -> &str {
        &self.meta.name
    }

    /// A process-unique id.
    pub fn id(&self) -> u64 {
        self.meta.id
    }

    /// This lock's figures since creation (reads and writes together).
    pub fn stats(&self) -> LockStats {
        self.meta.stats()
    }

    /// Shared access, waiting as long as needed (cycles reported as by
    /// [`CountingMutex::lock`](crate::CountingMutex::lock)).
    pub fn read(&self) -> CountingReadGuard<'_, T> {
        self.read_guard(wait(&self.meta, &Read(&self.inner)))
    }

    /// Shared access if available now.
    pub fn try_read(&self) -> Option<CountingReadGuard<'_, T>> {
        try_acquire(&self.meta, &Read(&self.inner)).map(|guard| self.read_guard(guard))
    }

    /// Shared access, waiting at most `timeout`.
    pub fn try_read_for(&self, timeout: Duration) -> Option<CountingReadGuard<'_, T>> {
        wait_for(&self.meta, &Read(&self.inner), timeout).map(|guard| self.read_guard(guard))
    }

    /// Shared access, waiting at most `timeout`, giving up when the detector
    /// finds the caller in a cycle (see
    /// [`CountingMutex::lock_checked`](crate::CountingMutex::lock_checked)).
    pub fn read_checked(&self, timeout: Duration) -> Result<CountingReadGuard<'_, T>, LockError> {
        wait_checked(&self.meta, &Read(&self.inner), timeout).map(|guard| self.read_guard(guard))
    }

    /// Exclusive access, waiting as long as needed.
    ///
    /// # Panics
    /// If the calling thread already holds this lock (read or write).
    pub fn write(&self) -> CountingWriteGuard<'_, T> {
        self.write_guard(wait(&self.meta, &Write(&self.inner)))
    }

    /// Exclusive access if available now.
    pub fn try_write(&self) -> Option<CountingWriteGuard<'_, T>> {
        try_acquire(&self.meta, &Write(&self.inner)).map(|guard| self.write_guard(guard))
    }

    /// Exclusive access, waiting at most `timeout` (`None` at once if the
    /// calling thread holds the lock itself).
    pub fn try_write_for(&self, timeout: Duration) -> Option<CountingWriteGuard<'_, T>> {
        wait_for(&self.meta, &Write(&self.inner), timeout).map(|guard| self.write_guard(guard))
    }

    /// Exclusive access, waiting at most `timeout`, giving up when the
    /// detector finds the caller in a cycle.
    pub fn write_checked(&self, timeout: Duration) -> Result<CountingWriteGuard<'_, T>, LockError> {
        wait_checked(&self.meta, &Write(&self.inner), timeout).map(|guard| self.write_guard(guard))
    }

    #[inline]
    fn read_guard<'a>(
        &'a self,
        guard: parking_lot::RwLockReadGuard<'a, T>,
    ) -> CountingReadGuard<'a, T> {
        CountingReadGuard {
            meta: &self.meta,
            guard,
        }
    }

    #[inline]
    fn write_guard<'a>(
        &'a self,
        guard: parking_lot::RwLockWriteGuard<'a, T>,
    ) -> CountingWriteGuard<'a, T> {
        CountingWriteGuard {
            meta: &self.meta,
            guard,
        }
    }

    /// Mutable access without locking.
    pub fn get_mut(&mut self) -> &mut T {
        self.inner.get_mut()
    }

    /// The protected value.
    pub fn into_inner(self) -> T {
        self.inner.into_inner()
    }
}

impl<T: Default> Default for CountingRwLock<T> {
    fn default() -> Self {
        Self::new("unnamed", T::default())
    }
}

impl<T> fmt::Debug for CountingRwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.meta.fmt_lock(f, "CountingRwLock")
    }
}

impl<T> Deref for CountingReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> Drop for CountingReadGuard<'_, T> {
    fn drop(&mut self) {
        mark_released(self.meta, WaitMode::Read);
    }
}

impl<T> Deref for CountingWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for CountingWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T> Drop for CountingWriteGuard<'_, T> {
    fn drop(&mut self) {
        mark_released(self.meta, WaitMode::Write);
    }
}
