//! # object-pool: reusable objects for many threads
//!
//! The walker plan's `ThreadSafeRobotMemoryPool` (section 3.3): instead of
//! allocating and initialising a large object for every use, threads take
//! one from an [`ObjectPool`] and give it back when done.
//!
//! - [`ObjectPool`]: N shards, each a small locked free list (the plan's
//!   "multiple pools to reduce contention"), chosen round-robin (the plan's)
//!   or by thread ([`ShardChoice`]); in front of them, a per-thread cache
//!   ([`ThreadCache`]) that serves most acquisitions and releases without a
//!   lock; an optional cap on live objects ([`PoolConfig::max_live`], beyond
//!   which `acquire` fails with [`PoolError::Exhausted`]); [`PoolStats`]
//!   (hits, misses, in use, idle per shard and in caches).
//! - [`Pooled`]: the guard that `acquire` returns; it borrows the pool,
//!   dereferences to the object and releases it on drop, from any thread.
//!   [`ObjectPool::take`] / [`ObjectPool::put`] do the same with plain boxes
//!   for owners that keep objects in their own structures (the C API).
//!
//! Guarantees: an object is never handed to two users at once (each one
//! leaves a cache or a shard by exactly one atomic swap or locked pop); every
//! object is freed exactly once, when the pool is dropped if it is idle then,
//! wherever it is cached, because the per-thread caches belong to the pool,
//! not to the threads; objects cached by exited threads are reclaimed before
//! new ones are made (see [`ObjectPool`]). The cache protocol is
//! model-checked with loom (`tests/loom.rs`, `RUSTFLAGS="--cfg loom"`).

#![deny(unsafe_op_in_unsafe_fn)]

mod cache;
#[cfg(not(loom))]
mod pool;
use thread_support::sync;

pub use cache::{MAX_THREAD_CACHE, ThreadCache};
#[cfg(not(loom))]
pub use pool::{MAX_SHARDS, ObjectPool, PoolConfig, PoolError, PoolStats, Pooled, ShardChoice};
