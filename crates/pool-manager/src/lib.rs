//! # pool-manager: the walker plan's role pools
//!
//! A [`Runtime`] owns five pools named by role ([`Role`]: ai, physics,
//! stats, background, evaluation), sized from the core count by the plan's
//! ratios or from [`RuntimeConfig`] (code or environment, one function:
//! [`RuntimeConfig::from_env_with`]), all drawing their threads from one
//! **thread budget**: the workers of all pools never exceed it (see
//! `config` for how it is shared; on a small machine some pools are
//! *guests* whose tasks the largest pool's idle threads run).
//!
//! Each [`RolePool`] offers:
//! - a bounded priority queue of tasks with back-pressure
//!   ([`RolePool::submit`] blocks, [`RolePool::try_submit`] fails with
//!   [`SubmitError::Full`], [`RolePool::submit_timeout`]) and a
//!   [`TaskHandle`] per task (wait, wait with timeout, value or
//!   [`TaskError`]);
//! - parallel loops for the frame loop with the caller taking part:
//!   [`RolePool::for_each_mut`] / [`RolePool::for_each_index`] with a
//!   [`Partitioning`] (the plan's interleaved `i::k`, contiguous, dynamic with
//!   stealing), and [`RolePool::map_reduce`], whose result does not depend
//!   on the thread count;
//! - metrics cheap enough to leave on ([`RolePool::snapshot`],
//!   [`Runtime::snapshot`]): threads, busy and alive thread-time, queue
//!   depth, wait and run time p50/p99, tasks done/failed/cancelled/rejected.
//!
//! Across pools: [`Runtime::health`] (heartbeats, tasks past their limit),
//! recovery (a worker whose task panicked is replaced; the handle gets the
//! panic), [`Runtime::resize`] and [`Runtime::rebalance`] (threads move from
//! idle pools to busy ones within the budget), [`Scheduler`] (periodic tasks
//! on the background pool that never stack up), and [`Runtime::shutdown`]
//! with a deadline and a [`DrainPolicy`], reporting what was dropped.
//!
//! A pool that is off runs its work inline on the caller with the same
//! results: the single-threaded fallback.
//!
//! Guarantees: every task's handle gets exactly one outcome (value, error,
//! panic or `Cancelled`); no lost wake-ups in the queue, parker, round and
//! task hand-offs (model-checked by `tests/loom.rs` under `--cfg loom`);
//! `map_reduce` results are bit-identical for any thread count.

#![deny(unsafe_op_in_unsafe_fn)]
// Under loom only the hand-off parts are built and checked.
#![cfg_attr(loom, allow(dead_code, unused_imports, missing_docs))]

mod config;
#[cfg(not(loom))]
mod core;
#[cfg(not(loom))]
mod crew;
mod error;
#[cfg(not(loom))]
mod health;
mod metrics;
#[cfg(not(loom))]
mod parallel;
mod parker;
#[cfg(not(loom))]
mod pool;
mod queue;
mod round;
#[cfg(not(loom))]
mod runtime;
#[cfg(not(loom))]
mod scheduler;
use thread_support::sync;
mod task;

#[cfg(not(loom))]
pub use config::{
    BalancerConfig, ConfigError, DEFAULT_QUEUE_CAPACITY, ENV_VARS, MAX_THREADS, PoolConfig, Role,
    RuntimeConfig, ThreadPlan,
};
#[cfg(not(loom))]
pub use error::{Error, SubmitError, TaskError};
#[cfg(not(loom))]
pub use health::{HealthReport, SilentWorker, StuckTask};
#[cfg(not(loom))]
pub use metrics::{PoolSnapshot, RuntimeSnapshot};
#[cfg(not(loom))]
pub use parallel::{DEFAULT_REDUCE_CHUNK, Partitioning};
#[cfg(not(loom))]
pub use pool::{Backpressure, RolePool, SubmitOptions};
#[cfg(not(loom))]
pub use runtime::{DrainPolicy, PoolShutdown, Runtime, ShutdownReport, ThreadMove};
#[cfg(not(loom))]
pub use scheduler::{
    CLEANUP_INTERVAL, EVALUATION_INTERVAL, MONITORING_INTERVAL, PRIORITY_HIGH, PRIORITY_LOW,
    PRIORITY_NORMAL, PeriodicId, PeriodicStats, Scheduler,
};
#[cfg(not(loom))]
pub use task::TaskHandle;
#[cfg(not(loom))]
pub use thread_support::Histogram;
pub use thread_support::available_cores;

/// The hand-off parts, exposed only for the loom model checks.
#[cfg(loom)]
pub mod loom_api {
    pub use crate::config::Role;
    pub use crate::error::TaskError;
    pub use crate::parker::Parker;
    pub use crate::queue::{Entry, PushError, TaskQueue, Wait};
    pub use crate::round::{Joined, RoundSlot};
    pub use crate::task::TaskCell;
}
