//! How a counting lock is acquired, written once for every lock kind (a
//! mutex lock, a read, a write; see [`LockKind`]).
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
use crate::thread::{self, WaitMode};
use std::fmt;
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
pub(crate) trait LockKind {
    /// parking_lot's guard of this hold.
    type Guard;
    /// How the detector sees a thread waiting for this hold.
    const MODE: WaitMode;
    /// The counting lock type that takes this hold, for panic messages.
    const LOCK: &'static str;
    /// Takes the hold if it is free now.
    fn try_now(&self) -> Option<Self::Guard>;
    /// Takes the hold, waiting as long as needed.
    fn wait(&self) -> Self::Guard;
    /// Takes the hold, waiting until `until` at the latest.
    fn wait_until(&self, until: Instant) -> Option<Self::Guard>;
}

/// Declares each lock kind by the parking_lot calls that take it.
macro_rules! lock_kinds {
    ($($(#[$doc:meta])* $kind:ident($lock:ident) -> $guard:ident, $mode:ident, $name:literal:
        $try_now:ident, $wait:ident, $wait_until:ident;)*) => {$(
        $(#[$doc])*
        pub(crate) struct $kind<'a, T>(pub(crate) &'a parking_lot::$lock<T>);

        impl<'a, T> LockKind for $kind<'a, T> {
            type Guard = parking_lot::$guard<'a, T>;
            const MODE: WaitMode = WaitMode::$mode;
            const LOCK: &'static str = $name;
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
    MutexLock(Mutex) -> MutexGuard, Lock, "CountingMutex": try_lock, lock, try_lock_until;
    /// A shared hold of a read-write lock.
    Read(RwLock) -> RwLockReadGuard, Read, "CountingRwLock": try_read, read, try_read_until;
    /// The exclusive hold of a read-write lock.
    Write(RwLock) -> RwLockWriteGuard, Write, "CountingRwLock": try_write, write, try_write_until;
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

/// Withdraws what [`mark_held`] published, when a hold of `mode` ends.
/// Called by the guards' `Drop` before parking_lot's guard unlocks, so that
/// the detector never sees a hold that a new holder has already replaced.
#[inline]
pub(crate) fn mark_released(meta: &LockMeta, mode: WaitMode) {
    match mode {
        WaitMode::Read => {
            thread::with_current(|r| r.held_shared.remove(meta.id));
        }
        WaitMode::Lock | WaitMode::Write => meta.owner.store(0, Ordering::Relaxed),
    }
}

/// Takes `kind` if it is free now, and counts the acquisition. The fast path
/// of every lock kind: no clock read, no shared write.
#[inline]
pub(crate) fn try_acquire<K: LockKind>(meta: &LockMeta, kind: &K) -> Option<K::Guard> {
    let guard = kind.try_now()?;
    let index = mark_held(meta, K::MODE);
    meta.count(index, K::MODE != WaitMode::Read, None);
    Some(guard)
}

/// Takes `kind`, waiting as long as needed; a cycle found meanwhile is
/// reported and the wait goes on.
///
/// # Panics
/// If the calling thread blocks the hold itself (it would wait forever).
#[inline]
pub(crate) fn wait<K: LockKind>(meta: &LockMeta, kind: &K) -> K::Guard {
    acquire(meta, kind, None, OnCycle::Report)
        .unwrap_or_else(|e| panic!("{} {:?}: {e}", K::LOCK, meta.name))
}

/// Takes `kind`, waiting at most `timeout`; a cycle found meanwhile is
/// reported and the wait goes on.
#[inline]
pub(crate) fn wait_for<K: LockKind>(
    meta: &LockMeta,
    kind: &K,
    timeout: Duration,
) -> Option<K::Guard> {
    acquire(meta, kind, Some(deadline_after(timeout)), OnCycle::Report).ok()
}

/// Takes `kind`, waiting at most `timeout`, and gives up as soon as the
/// caller is found in a cycle.
#[inline]
pub(crate) fn wait_checked<K: LockKind>(
    meta: &LockMeta,
    kind: &K,
    timeout: Duration,
) -> Result<K::Guard, LockError> {
    acquire(meta, kind, Some(deadline_after(timeout)), OnCycle::GiveUp)
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
