//! [`CountingMutex`] and [`CountingRwLock`]: parking_lot locks that count
//! acquisitions, contended acquisitions and wait time, and that take part in
//! deadlock detection.
//!
//! The uncontended path is the parking_lot `try_lock` plus a few stores on
//! cache lines the lock's holder owns anyway (owner, per-lock count, the
//! caller's shard of the global count): no clock read, no shared write
//! (measured: +2 to +4 ns over a bare parking_lot lock/unlock). Only when
//! `try_lock` fails does the lock read the clock twice (start and end of
//! the wait: about 35 ns each on the development VM, the main cost of a
//! contended acquisition), spin briefly, then publish what the thread waits
//! for and, past [`crate::SyncConfig::deadlock_check`], look for a wait-for
//! cycle.

use crate::config::current_config;
use crate::deadlock::{self, DeadlockReport};
use crate::lock_meta::LockMeta;
use crate::stats::LockStats;
use crate::thread::{self, WaitMode};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Why a timed or deadlock-checked acquisition failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockError {
    /// The timeout passed first.
    Timeout,
    /// The calling thread is part of a wait-for cycle; the report names the
    /// threads and locks. The caller should release what it holds and retry.
    Deadlock(DeadlockReport),
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Timeout => f.write_str("timed out waiting for the lock"),
            LockError::Deadlock(report) => report.fmt(f),
        }
    }
}

impl std::error::Error for LockError {}

/// What a waiting thread does when the detector finds it in a cycle.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnCycle {
    /// Report the cycle (once, to the deadlock handler) and keep waiting.
    Report,
    /// Stop waiting and return the report.
    GiveUp,
}

/// One kind of hold on a parking_lot lock (a mutex lock, a read, a write):
/// the three ways of taking it that lock_api's raw-lock traits give every
/// kind. Everything else (counting, the wait record, the deadlock check) is
/// the same for all kinds and written once, in [`acquire`] and
/// [`acquire_slow`].
trait LockKind {
    /// parking_lot's guard of this hold.
    type Guard;
    /// How the detector sees a thread waiting for this hold.
    const MODE: WaitMode;
    /// Takes the hold if it is free now.
    fn try_now(&self) -> Option<Self::Guard>;
    /// Takes the hold, waiting as long as needed.
    fn wait(&self) -> Self::Guard;
    /// Takes the hold, waiting until `until` at the latest.
    fn wait_until(&self, until: Instant) -> Option<Self::Guard>;
}

/// Declares each lock kind by the parking_lot calls that take it.
macro_rules! lock_kinds {
    ($($(#[$doc:meta])* $kind:ident($lock:ident) -> $guard:ident, $mode:ident:
        $try_now:ident, $wait:ident, $wait_until:ident;)*) => {$(
        $(#[$doc])*
        struct $kind<'a, T>(&'a parking_lot::$lock<T>);

        impl<'a, T> LockKind for $kind<'a, T> {
            type Guard = parking_lot::$guard<'a, T>;
            const MODE: WaitMode = WaitMode::$mode;
            #[inline]
            fn try_now(&self) -> Option<Self::Guard> {
                self.0.$try_now()
            }
            fn wait(&self) -> Self::Guard {
                self.0.$wait()
            }
            fn wait_until(&self, until: Instant) -> Option<Self::Guard> {
                self.0.$wait_until(until)
            }
        }
    )*};
}

lock_kinds! {
    /// The exclusive hold of a mutex.
    MutexLock(Mutex) -> MutexGuard, Lock: try_lock, lock, try_lock_until;
    /// A shared hold of a read-write lock.
    Read(RwLock) -> RwLockReadGuard, Read: try_read, read, try_read_until;
    /// The exclusive hold of a read-write lock.
    Write(RwLock) -> RwLockWriteGuard, Write: try_write, write, try_write_until;
}

/// Publishes a new hold for the detector (the holder's id for an exclusive
/// hold; the lock in the thread's read set for a read) and returns the
/// thread's index for the counters: one thread-local access. Called while
/// the lock is held, and before a wait record is cleared (see `deadlock`).
#[inline]
fn mark_held(meta: &LockMeta, mode: WaitMode) -> Option<usize> {
    thread::with_current(|r| {
        match mode {
            WaitMode::Read => r.held_shared.insert(meta.id),
            WaitMode::Lock | WaitMode::Write => meta.owner.store(r.id, Ordering::Relaxed),
        }
        r.index
    })
}

/// Takes `kind` if it is free now, and counts the acquisition. The fast path
/// of every lock kind: no clock read, no shared write.
#[inline]
fn try_acquire<K: LockKind>(meta: &LockMeta, kind: &K) -> Option<K::Guard> {
    let guard = kind.try_now()?;
    let index = mark_held(meta, K::MODE);
    meta.count(index, K::MODE != WaitMode::Read, None);
    Some(guard)
}

/// Takes `kind`, at once if it is free, else waiting until `deadline`
/// (`None`: as long as needed) through [`acquire_slow`].
#[inline]
fn acquire<K: LockKind>(
    meta: &LockMeta,
    kind: &K,
    deadline: Option<Instant>,
    on_cycle: OnCycle,
) -> Result<K::Guard, LockError> {
    match try_acquire(meta, kind) {
        Some(guard) => Ok(guard),
        None => acquire_slow(meta, kind, deadline, on_cycle),
    }
}

/// True if waiting in `mode` by thread `me` can never end because `me`
/// itself blocks it: it holds the lock exclusively, or wants to write while
/// holding a read.
fn waits_for_itself(meta: &LockMeta, me: u64, mode: WaitMode) -> bool {
    if me == 0 {
        return false;
    }
    if meta.owner.load(Ordering::Relaxed) == me {
        return true;
    }
    mode == WaitMode::Write
        && thread::with_current(|r| r.held_shared.snapshot().0.contains(&meta.id)).unwrap_or(false)
}

/// Spin rounds (of 1, 2, 4, ... pauses, a few microseconds in all) before a
/// contended acquisition publishes its wait.
const SPIN_ROUNDS: u32 = 7;

/// The slow path shared by every lock kind. A thread that blocks the lock
/// itself fails at once. Otherwise a brief spin on `try_now`: most
/// contended waits end within a lock hand-off, and they need no
/// publication. Then [`wait_published`]. The wait is counted from the first
/// failed attempt to the hold.
#[cold]
fn acquire_slow<K: LockKind>(
    meta: &LockMeta,
    kind: &K,
    deadline: Option<Instant>,
    on_cycle: OnCycle,
) -> Result<K::Guard, LockError> {
    let me = thread::current_thread_id();
    if waits_for_itself(meta, me, K::MODE) {
        return Err(LockError::Deadlock(deadlock::self_wait(meta, me, K::MODE)));
    }
    let start = Instant::now();
    let spun = (0..SPIN_ROUNDS).find_map(|round| {
        for _ in 0..1u32 << round {
            std::hint::spin_loop();
        }
        kind.try_now()
            .map(|guard| (guard, mark_held(meta, K::MODE)))
    });
    let (guard, index) = match spun {
        Some(held) => held,
        None => wait_published(meta, kind, start, deadline, on_cycle)?,
    };
    meta.count(index, K::MODE != WaitMode::Read, Some(start.elapsed()));
    Ok(guard)
}

/// Publishes what the thread waits for, retries with `wait_until` and runs
/// the detector every `deadlock_check`; returns the guard and the thread's
/// index (from [`mark_held`], done before the wait record is cleared).
fn wait_published<K: LockKind>(
    meta: &LockMeta,
    kind: &K,
    start: Instant,
    deadline: Option<Instant>,
    on_cycle: OnCycle,
) -> Result<(K::Guard, Option<usize>), LockError> {
    let record = thread::with_current(Arc::clone);
    let check = current_config().deadlock_check.filter(|_| record.is_some());
    if let Some(record) = &record {
        record.begin_wait(meta, K::MODE, start);
    }
    let mut next_check = check.map(|period| start + period);
    let outcome = loop {
        let until = match (deadline, next_check) {
            (Some(d), Some(c)) => Some(d.min(c)),
            (d, c) => d.or(c),
        };
        let acquired = match until {
            None => Some(kind.wait()),
            Some(t) => kind.wait_until(t),
        };
        if let Some(guard) = acquired {
            break Ok((guard, mark_held(meta, K::MODE)));
        }
        let now = Instant::now();
        if let (Some(due), Some(period), Some(record)) = (next_check, check, &record) {
            if now >= due {
                if let Some(report) = deadlock::cycle_through(record.id) {
                    match on_cycle {
                        OnCycle::GiveUp => break Err(LockError::Deadlock(report)),
                        OnCycle::Report => deadlock::report(report),
                    }
                }
                next_check = Some(now + period);
            }
        }
        if deadline.is_some_and(|d| now >= d) {
            break Err(LockError::Timeout);
        }
    };
    if let Some(record) = &record {
        record.end_wait();
    }
    outcome
}

fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or(now + Duration::from_secs(60 * 60 * 24 * 365))
}

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
        match self.acquire(None, OnCycle::Report) {
            Ok(guard) => guard,
            Err(e) => panic!("CountingMutex {:?}: {e}", self.name()),
        }
    }

    /// Locks if the mutex is free now, without waiting.
    pub fn try_lock(&self) -> Option<CountingMutexGuard<'_, T>> {
        try_acquire(&self.meta, &MutexLock(&self.inner)).map(|guard| self.guard(guard))
    }

    /// Locks, waiting at most `timeout`. `None` on timeout, or at once if the
    /// calling thread holds the mutex itself. Cycles found while waiting are
    /// reported as by [`lock`](Self::lock).
    pub fn try_lock_for(&self, timeout: Duration) -> Option<CountingMutexGuard<'_, T>> {
        self.acquire(Some(deadline_after(timeout)), OnCycle::Report)
            .ok()
    }

    /// Locks, waiting at most `timeout`, and gives up with
    /// [`LockError::Deadlock`] as soon as the detector finds the calling
    /// thread in a wait-for cycle (after the deadlock check period; at once
    /// if the thread holds the mutex itself). Use it where the caller can
    /// back off: release what it holds and retry.
    pub fn lock_checked(&self, timeout: Duration) -> Result<CountingMutexGuard<'_, T>, LockError> {
        self.acquire(Some(deadline_after(timeout)), OnCycle::GiveUp)
    }

    #[inline]
    fn acquire(
        &self,
        deadline: Option<Instant>,
        on_cycle: OnCycle,
    ) -> Result<CountingMutexGuard<'_, T>, LockError> {
        acquire(&self.meta, &MutexLock(&self.inner), deadline, on_cycle)
            .map(|guard| self.guard(guard))
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
        self.meta.owner.store(0, Ordering::Relaxed);
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
        f.debug_struct("CountingMutex")
            .field("name", &self.name())
            .field("id", &self.id())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
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
        // Cleared before the `guard` field unlocks.
        self.meta.owner.store(0, Ordering::Relaxed);
    }
}

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
    /// [`CountingMutex::lock`]).
    pub fn read(&self) -> CountingReadGuard<'_, T> {
        match self.read_until(None, OnCycle::Report) {
            Ok(guard) => guard,
            Err(e) => panic!("CountingRwLock {:?}: {e}", self.name()),
        }
    }

    /// Shared access if available now.
    pub fn try_read(&self) -> Option<CountingReadGuard<'_, T>> {
        try_acquire(&self.meta, &Read(&self.inner)).map(|guard| self.read_guard(guard))
    }

    /// Shared access, waiting at most `timeout`.
    pub fn try_read_for(&self, timeout: Duration) -> Option<CountingReadGuard<'_, T>> {
        self.read_until(Some(deadline_after(timeout)), OnCycle::Report)
            .ok()
    }

    /// Shared access, waiting at most `timeout`, giving up when the detector
    /// finds the caller in a cycle (see [`CountingMutex::lock_checked`]).
    pub fn read_checked(&self, timeout: Duration) -> Result<CountingReadGuard<'_, T>, LockError> {
        self.read_until(Some(deadline_after(timeout)), OnCycle::GiveUp)
    }

    /// Exclusive access, waiting as long as needed.
    ///
    /// # Panics
    /// If the calling thread already holds this lock (read or write).
    pub fn write(&self) -> CountingWriteGuard<'_, T> {
        match self.write_until(None, OnCycle::Report) {
            Ok(guard) => guard,
            Err(e) => panic!("CountingRwLock {:?}: {e}", self.name()),
        }
    }

    /// Exclusive access if available now.
    pub fn try_write(&self) -> Option<CountingWriteGuard<'_, T>> {
        try_acquire(&self.meta, &Write(&self.inner)).map(|guard| self.write_guard(guard))
    }

    /// Exclusive access, waiting at most `timeout` (`None` at once if the
    /// calling thread holds the lock itself).
    pub fn try_write_for(&self, timeout: Duration) -> Option<CountingWriteGuard<'_, T>> {
        self.write_until(Some(deadline_after(timeout)), OnCycle::Report)
            .ok()
    }

    /// Exclusive access, waiting at most `timeout`, giving up when the
    /// detector finds the caller in a cycle.
    pub fn write_checked(&self, timeout: Duration) -> Result<CountingWriteGuard<'_, T>, LockError> {
        self.write_until(Some(deadline_after(timeout)), OnCycle::GiveUp)
    }

    #[inline]
    fn read_until(
        &self,
        deadline: Option<Instant>,
        on_cycle: OnCycle,
    ) -> Result<CountingReadGuard<'_, T>, LockError> {
        acquire(&self.meta, &Read(&self.inner), deadline, on_cycle)
            .map(|guard| self.read_guard(guard))
    }

    #[inline]
    fn write_until(
        &self,
        deadline: Option<Instant>,
        on_cycle: OnCycle,
    ) -> Result<CountingWriteGuard<'_, T>, LockError> {
        acquire(&self.meta, &Write(&self.inner), deadline, on_cycle)
            .map(|guard| self.write_guard(guard))
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
        f.debug_struct("CountingRwLock")
            .field("name", &self.name())
            .field("id", &self.id())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
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
        thread::with_current(|r| r.held_shared.remove(self.meta.id));
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
        self.meta.owner.store(0, Ordering::Relaxed);
    }
}
