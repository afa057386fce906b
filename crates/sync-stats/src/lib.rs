//! # sync-stats: lock contention, deadlocks, and counters that scale
//!
//! The lock tools of the walker plan (sections 1.3 and 3.2): measure how
//! much threads fight over locks, find them when they deadlock, and count
//! things from many threads without a shared cache line.
//!
//! - [`CountingMutex`] / [`CountingRwLock`]: parking_lot locks with a name
//!   that count acquisitions, contended acquisitions (the fast `try_lock`
//!   failed) and wait time ([`LockStats`]). The uncontended path reads no
//!   clock and writes no shared cache line.
//! - [`global_lock_stats`]: the sum over every counting lock the process
//!   ever created; `global_lock_stats().since(&earlier).contention_rate()` is
//!   the monitoring row's `lock_contention_rate`.
//! - Deadlock detection: a wait-for graph over the counting locks.
//!   [`detect_deadlocks`] reports each cycle with its threads and locks
//!   ([`DeadlockReport`]); a thread blocked longer than
//!   [`SyncConfig::deadlock_check`] runs it by itself and reports to the
//!   deadlock handler, and `lock_checked` / `read_checked` / `write_checked`
//!   give up with [`LockError::Deadlock`] so the caller can back off.
//! - [`ShardedCounter`]: a counter with one cache-padded shard per thread.
//! - [`PerThreadStats`]: per-thread statistics ([`SampleStats`]: count, sum,
//!   min, max; or any [`Mergeable`]) updated without locks and merged on
//!   read through a seqlock per thread.
//! - [`ThreadSlots`] and [`current_thread_index`]: lock-free per-thread
//!   storage keyed by a dense thread index (also used by `object-pool`).
//!
//! Guarantees: counts are exact once the counting threads are synchronised
//! with the reader; a reported deadlock was seen twice, unchanged, so a
//! passing wait is not reported; the lock-free parts (thread slots, seqlock
//! slots, shards) are model-checked with loom (`tests/loom.rs`, run with
//! `RUSTFLAGS="--cfg loom"`).

#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(not(loom))]
mod acquire;
#[cfg(not(loom))]
mod config;
#[cfg(not(loom))]
mod deadlock;
#[cfg(not(loom))]
mod lock_meta;
#[cfg(not(loom))]
mod mutex;
mod per_thread;
#[cfg(not(loom))]
mod rwlock;
mod seqlock;
mod sharded;
#[cfg(not(loom))]
mod stats;
use thread_support::sync;
#[cfg(not(loom))]
mod thread;
mod thread_slots;

#[cfg(not(loom))]
pub use acquire::LockError;
#[cfg(not(loom))]
pub use config::{
    ConfigError, DEFAULT_DEADLOCK_CHECK, ENV_DEADLOCK_CHECK_MS, SyncConfig, configure,
    current_config,
};
#[cfg(not(loom))]
pub use deadlock::{
    DeadlockReport, WaitEdge, clear_deadlock_handler, deadlocks_reported, detect_deadlocks,
    set_deadlock_handler,
};
#[cfg(not(loom))]
pub use mutex::{CountingMutex, CountingMutexGuard};
pub use per_thread::{Mergeable, PerThreadStats, SampleStats};
#[cfg(not(loom))]
pub use rwlock::{CountingReadGuard, CountingRwLock, CountingWriteGuard};
pub use seqlock::{MAX_WORDS, SeqSlot};
pub use sharded::{MAX_SHARDS, ShardedCounter, default_shards};
#[cfg(not(loom))]
pub use stats::{LockStats, global_lock_stats};
#[cfg(not(loom))]
pub use thread::{
    WaitMode, current_thread_id, current_thread_index, live_thread_indices, registered_threads,
    thread_exits,
};
pub use thread_slots::{MAX_THREAD_INDEX, ThreadSlots};
