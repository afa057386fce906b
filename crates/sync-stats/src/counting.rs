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
use crate::stats::{GLOBAL, LockStats};
use crate::thread::{self, WaitMode, current_ids};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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
    fn new(name: String) -> Self {
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
    fn count(&self, index: Option<usize>, exclusive: bool, waited: Option<Duration>) {
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
            let ns = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
            self.contended.fetch_add(1, Ordering::Relaxed);
            self.wait_ns.fetch_add(ns, Ordering::Relaxed);
            GLOBAL.wait_ns.add_at(shard, ns);
            GLOBAL.contended.add_at(shard, 1);
        }
    }

    fn stats(&self) -> LockStats {
        let contended = self.contended.load(Ordering::Relaxed);
        let wait = Duration::from_nanos(self.wait_ns.load(Ordering::Relaxed));
        let acquisitions = self.acquisitions.load(Ordering::Relaxed);
        LockStats {
            acquisitions: acquisitions.max(contended),
            contended,
            wait,
        }
    }

    /// True if waiting in `mode` by thread `me` can never end because `me`
    /// itself blocks it.
    fn waits_for_itself(&self, me: u64, mode: WaitMode) -> bool {
        if me == 0 {
            return false;
        }
        if self.owner.load(Ordering::Relaxed) == me {
            return true;
        }
        mode == WaitMode::Write
            && thread::with_current(|r| r.held_shared.snapshot().0.contains(&self.id))
                .unwrap_or(false)
    }
}

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

/// Spin rounds (of 1, 2, 4, ... pauses, a few microseconds in all) before a
/// contended acquisition publishes its wait.
const SPIN_ROUNDS: u32 = 7;

/// The slow path shared by every lock kind. First a brief spin on
/// `try_now()`: most contended waits end within a lock hand-off, and they
/// need no publication. Then it publishes the wait, retries with
/// `attempt(until)` (`None` = block until acquired) and runs the detector
/// every `deadlock_check`.
fn wait_for<G>(
    meta: &LockMeta,
    mode: WaitMode,
    start: Instant,
    deadline: Option<Instant>,
    on_cycle: OnCycle,
    mut try_now: impl FnMut() -> Option<G>,
    mut attempt: impl FnMut(Option<Instant>) -> Option<G>,
) -> Result<G, LockError> {
    for round in 0..SPIN_ROUNDS {
        for _ in 0..1u32 << round {
            std::hint::spin_loop();
        }
        if let Some(guard) = try_now() {
            return Ok(guard);
        }
    }
    let record = thread::with_current(Arc::clone);
    let check = current_config().deadlock_check.filter(|_| record.is_some());
    if let Some(record) = &record {
        record.begin_wait(meta, mode, start);
    }
    let mut next_check = check.map(|period| start + period);
    let outcome = loop {
        let until = match (deadline, next_check) {
            (Some(d), Some(c)) => Some(d.min(c)),
            (d, c) => d.or(c),
        };
        if let Some(guard) = attempt(until) {
            break Ok(guard);
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
        let (me, index) = current_ids();
        if let Some(guard) = self.inner.try_lock() {
            return self.hold(guard, me, index, None);
        }
        match self.lock_slow(me, index, None, OnCycle::Report) {
            Ok(guard) => guard,
            Err(e) => panic!("CountingMutex {:?}: {e}", self.name()),
        }
    }

    /// Locks if the mutex is free now, without waiting.
    pub fn try_lock(&self) -> Option<CountingMutexGuard<'_, T>> {
        let (me, index) = current_ids();
        self.inner
            .try_lock()
            .map(|guard| self.hold(guard, me, index, None))
    }

    /// Locks, waiting at most `timeout`. `None` on timeout, or at once if the
    /// calling thread holds the mutex itself. Cycles found while waiting are
    /// reported as by [`lock`](Self::lock).
    pub fn try_lock_for(&self, timeout: Duration) -> Option<CountingMutexGuard<'_, T>> {
        let (me, index) = current_ids();
        if let Some(guard) = self.inner.try_lock() {
            return Some(self.hold(guard, me, index, None));
        }
        self.lock_slow(me, index, Some(deadline_after(timeout)), OnCycle::Report)
            .ok()
    }

    /// Locks, waiting at most `timeout`, and gives up with
    /// [`LockError::Deadlock`] as soon as the detector finds the calling
    /// thread in a wait-for cycle (after the deadlock check period; at once
    /// if the thread holds the mutex itself). Use it where the caller can
    /// back off: release what it holds and retry.
    pub fn lock_checked(&self, timeout: Duration) -> Result<CountingMutexGuard<'_, T>, LockError> {
        let (me, index) = current_ids();
        if let Some(guard) = self.inner.try_lock() {
            return Ok(self.hold(guard, me, index, None));
        }
        self.lock_slow(me, index, Some(deadline_after(timeout)), OnCycle::GiveUp)
    }

    #[inline]
    fn hold<'a>(
        &'a self,
        guard: parking_lot::MutexGuard<'a, T>,
        me: u64,
        index: Option<usize>,
        waited: Option<Duration>,
    ) -> CountingMutexGuard<'a, T> {
        self.meta.owner.store(me, Ordering::Relaxed);
        self.meta.count(index, true, waited);
        CountingMutexGuard {
            meta: &self.meta,
            guard,
        }
    }

    #[cold]
    fn lock_slow(
        &self,
        me: u64,
        index: Option<usize>,
        deadline: Option<Instant>,
        on_cycle: OnCycle,
    ) -> Result<CountingMutexGuard<'_, T>, LockError> {
        if self.meta.waits_for_itself(me, WaitMode::Lock) {
            return Err(LockError::Deadlock(deadlock::self_wait(
                &self.meta,
                me,
                WaitMode::Lock,
            )));
        }
        let start = Instant::now();
        let acquired = |guard| {
            // Published before the wait record is cleared (see `deadlock`).
            self.meta.owner.store(me, Ordering::Relaxed);
            guard
        };
        let guard = wait_for(
            &self.meta,
            WaitMode::Lock,
            start,
            deadline,
            on_cycle,
            || self.inner.try_lock().map(acquired),
            |until| {
                match until {
                    None => Some(self.inner.lock()),
                    Some(t) => self.inner.try_lock_until(t),
                }
                .map(acquired)
            },
        )?;
        Ok(self.hold(guard, me, index, Some(start.elapsed())))
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
        match self.read_inner(None, OnCycle::Report) {
            Ok(guard) => guard,
            Err(e) => panic!("CountingRwLock {:?}: {e}", self.name()),
        }
    }

    /// Shared access if available now.
    pub fn try_read(&self) -> Option<CountingReadGuard<'_, T>> {
        self.inner.try_read().map(|guard| self.hold_read(guard))
    }

    /// Shared access, waiting at most `timeout`.
    pub fn try_read_for(&self, timeout: Duration) -> Option<CountingReadGuard<'_, T>> {
        self.read_inner(Some(deadline_after(timeout)), OnCycle::Report)
            .ok()
    }

    /// Shared access, waiting at most `timeout`, giving up when the detector
    /// finds the caller in a cycle (see [`CountingMutex::lock_checked`]).
    pub fn read_checked(&self, timeout: Duration) -> Result<CountingReadGuard<'_, T>, LockError> {
        self.read_inner(Some(deadline_after(timeout)), OnCycle::GiveUp)
    }

    /// Exclusive access, waiting as long as needed.
    ///
    /// # Panics
    /// If the calling thread already holds this lock (read or write).
    pub fn write(&self) -> CountingWriteGuard<'_, T> {
        match self.write_inner(None, OnCycle::Report) {
            Ok(guard) => guard,
            Err(e) => panic!("CountingRwLock {:?}: {e}", self.name()),
        }
    }

    /// Exclusive access if available now.
    pub fn try_write(&self) -> Option<CountingWriteGuard<'_, T>> {
        let (me, index) = current_ids();
        self.inner
            .try_write()
            .map(|guard| self.hold_write(guard, me, index, None))
    }

    /// Exclusive access, waiting at most `timeout` (`None` at once if the
    /// calling thread holds the lock itself).
    pub fn try_write_for(&self, timeout: Duration) -> Option<CountingWriteGuard<'_, T>> {
        self.write_inner(Some(deadline_after(timeout)), OnCycle::Report)
            .ok()
    }

    /// Exclusive access, waiting at most `timeout`, giving up when the
    /// detector finds the caller in a cycle.
    pub fn write_checked(&self, timeout: Duration) -> Result<CountingWriteGuard<'_, T>, LockError> {
        self.write_inner(Some(deadline_after(timeout)), OnCycle::GiveUp)
    }

    fn read_inner(
        &self,
        deadline: Option<Instant>,
        on_cycle: OnCycle,
    ) -> Result<CountingReadGuard<'_, T>, LockError> {
        if let Some(guard) = self.inner.try_read() {
            return Ok(self.hold_read(guard));
        }
        self.read_slow(deadline, on_cycle)
    }

    #[cold]
    fn read_slow(
        &self,
        deadline: Option<Instant>,
        on_cycle: OnCycle,
    ) -> Result<CountingReadGuard<'_, T>, LockError> {
        let me = thread::current_thread_id();
        if self.meta.waits_for_itself(me, WaitMode::Read) {
            return Err(LockError::Deadlock(deadlock::self_wait(
                &self.meta,
                me,
                WaitMode::Read,
            )));
        }
        let start = Instant::now();
        let acquired = |guard| {
            thread::with_current(|r| r.held_shared.insert(self.meta.id));
            guard
        };
        let guard = wait_for(
            &self.meta,
            WaitMode::Read,
            start,
            deadline,
            on_cycle,
            || self.inner.try_read().map(acquired),
            |until| {
                match until {
                    None => Some(self.inner.read()),
                    Some(t) => self.inner.try_read_until(t),
                }
                .map(acquired)
            },
        )?;
        self.meta
            .count(thread::current_thread_index(), false, Some(start.elapsed()));
        Ok(CountingReadGuard {
            meta: &self.meta,
            guard,
        })
    }

    #[inline]
    /// Tracks and counts a read acquired at the first attempt.
    fn hold_read<'a>(
        &'a self,
        guard: parking_lot::RwLockReadGuard<'a, T>,
    ) -> CountingReadGuard<'a, T> {
        let index = thread::with_current(|r| {
            r.held_shared.insert(self.meta.id);
            r.index
        });
        self.meta.count(index, false, None);
        CountingReadGuard {
            meta: &self.meta,
            guard,
        }
    }

    fn write_inner(
        &self,
        deadline: Option<Instant>,
        on_cycle: OnCycle,
    ) -> Result<CountingWriteGuard<'_, T>, LockError> {
        let (me, index) = current_ids();
        if let Some(guard) = self.inner.try_write() {
            return Ok(self.hold_write(guard, me, index, None));
        }
        self.write_slow(me, index, deadline, on_cycle)
    }

    #[cold]
    fn write_slow(
        &self,
        me: u64,
        index: Option<usize>,
        deadline: Option<Instant>,
        on_cycle: OnCycle,
    ) -> Result<CountingWriteGuard<'_, T>, LockError> {
        if self.meta.waits_for_itself(me, WaitMode::Write) {
            return Err(LockError::Deadlock(deadlock::self_wait(
                &self.meta,
                me,
                WaitMode::Write,
            )));
        }
        let start = Instant::now();
        let acquired = |guard| {
            self.meta.owner.store(me, Ordering::Relaxed);
            guard
        };
        let guard = wait_for(
            &self.meta,
            WaitMode::Write,
            start,
            deadline,
            on_cycle,
            || self.inner.try_write().map(acquired),
            |until| {
                match until {
                    None => Some(self.inner.write()),
                    Some(t) => self.inner.try_write_until(t),
                }
                .map(acquired)
            },
        )?;
        Ok(self.hold_write(guard, me, index, Some(start.elapsed())))
    }

    #[inline]
    fn hold_write<'a>(
        &'a self,
        guard: parking_lot::RwLockWriteGuard<'a, T>,
        me: u64,
        index: Option<usize>,
        waited: Option<Duration>,
    ) -> CountingWriteGuard<'a, T> {
        self.meta.owner.store(me, Ordering::Relaxed);
        self.meta.count(index, true, waited);
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
