//! # sphere-pool: persistent worker spheres
//!
//! The engine of cllm-threaded. A [`SpherePool`] owns N persistent worker
//! threads, the *spheres* of the CLLM trainer (named `cllm-sphere-<i>`). Each
//! sphere has one slot, on its own cache line, through which a job is handed
//! to it and its outcome handed back:
//!
//! - [`SpherePool::dispatch`] gives a sphere a job and returns at once (the
//!   seed's *work ready*); [`SpherePool::wait`] / [`SpherePool::wait_timeout`]
//!   collect its outcome (*work done*).
//! - [`SpherePool::run_all`] runs a closure on every sphere and on the calling
//!   thread (fork-join), with a [`Participant`] context and a barrier.
//! - [`SpherePool::parallel_for`] covers a range with work stealing.
//! - [`SpherePool::reduce`] maps chunks of a range and combines the results
//!   in a fixed order: bitwise the same for any sphere count and timing.
//!
//! A pool of one thread ([`SpherePool::with_threads`]`(1)`) has no sphere and
//! runs everything on the caller; `CLLM_NUM_THREADS` and `CLLM_CPUS` set
//! pools created with "auto" ([`mod@env`]). Calls from inside a pool's own work
//! run inline on the calling thread.
//!
//! How the hand-off works (`slot`): one atomic word per slot holds the state
//! and the "a waiter sleeps" flag; fork-join rounds (`run_all`,
//! `parallel_for`, `reduce`) go through two pool-owned cache lines instead
//! (`round_lines`: an epoch and the task, a count of finished shares, and
//! for `parallel_for` a word where spheres claim their optional start). A thread that finds nothing to do spins for a
//! short, adaptive, time-bounded budget (`thread_support::spin`) and then
//! sleeps: an idle sphere on the pool's doorbell (a futex that a round rings
//! once for every sphere), a waiter on a parking_lot condition variable. A
//! hand-off to a spinning sphere costs no system call and no allocation
//! ([`SpherePool::dispatch_small`], `run_all`).
//!
//! Guarantees:
//! - Every thread is created in the constructor and joined on shutdown or
//!   drop, after finishing the job it holds.
//! - A job's panic is caught and returned by the wait that collects it; the
//!   sphere keeps serving. Fork-join shares that panic break the barrier so
//!   no other share hangs on it.
//! - No lost wake-ups: `tests/loom.rs` model-checks the hand-off, the
//!   timeout and the shutdown with loom (`RUSTFLAGS="--cfg loom"`); the
//!   [`protocol`] page has each actor's steps and the argument, claim by
//!   claim.
//! - Each outcome is delivered to exactly one waiter.

#![deny(unsafe_op_in_unsafe_fn)]

mod barrier;
#[cfg(not(loom))]
mod config;
mod doorbell;
#[cfg(not(loom))]
pub mod env;
mod error;
#[cfg(not(loom))]
mod fork_join;
#[cfg(not(loom))]
mod job;
#[cfg(not(loom))]
mod limits;
#[cfg(not(loom))]
mod nested;
#[cfg(not(loom))]
mod pool;
#[cfg(not(loom))]
mod reduce;
mod round_lines;
#[cfg(not(loom))]
mod rounds;
mod slot;
#[cfg(not(loom))]
mod stats;
use thread_support::sync;

pub use barrier::{BarrierBroken, MAX_BARRIER_PARTIES, SphereBarrier};
#[cfg(not(loom))]
pub use config::{PoolConfig, auto_spheres, default_spheres, resolve_spheres};
pub use error::{Error, Worker};
#[cfg(not(loom))]
pub use fork_join::Participant;
#[cfg(not(loom))]
pub use job::SmallJob;
#[cfg(not(loom))]
pub use limits::{MAX_RANGE_LEN, MAX_SPHERES};
#[cfg(not(loom))]
pub use pool::SpherePool;
#[cfg(not(loom))]
pub use reduce::REDUCE_CHUNK;
#[cfg(not(loom))]
pub use stats::{PoolStats, SphereStats};

/// The hand-off protocol, exposed only for the loom model checks.
#[cfg(loom)]
pub mod loom_api {
    pub use crate::doorbell::{ALL_BITS, Doorbell, sphere_bit};
    pub use crate::round_lines::{Opened, RoundLines, round_of};
    pub use crate::slot::{Bell, Next, Slot, Waited};
}

/// The hand-off protocol: word layouts, each actor's steps, the spin and
/// park rules, and why no wake-up is lost (`src/README.md`).
#[doc = include_str!("README.md")]
pub mod protocol {}

/// The README's Rust example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
