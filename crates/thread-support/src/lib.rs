//! # thread-support: what the threaded crates share
//!
//! The mechanisms every crate of the workspace needs once, written once,
//! below the engine: a crate that needs one of them depends on this crate,
//! not on `sphere-pool`. It depends on no workspace crate.
//!
//! - [`sync`]: the loom shim. Atomics, a poison-free mutex, a condition
//!   variable with parking_lot's API and an `UnsafeCell`, from parking_lot
//!   and std normally and from loom under `RUSTFLAGS="--cfg loom"`, so each
//!   crate's loom models check the code that ships.
//! - [`spin`]: the spin-then-park policy: a time-bounded, adaptive spin that
//!   learns from how its spins end, and the per-CPU seats that admit one
//!   spinner per CPU across every pool of every crate (one table needs one
//!   copy of the code).
//! - [`available_cores`] (read once per process), [`thread_cpu_time`],
//!   [`process_cpu_time`], [`duration_to_nanos`] (saturating),
//!   [`cpu_model_name`] (for benchmark reports).
//! - [`panic_message`], [`catch`] and [`Failure`]: a body's panic or error
//!   as a value each crate maps into its own error type.
//! - [`CountingAllocator`]: a global allocator that counts, for the tests
//!   of paths that promise not to allocate.
//! - [`Histogram`]: one lock-free, log-bucketed histogram of durations with
//!   the resolution as a parameter.
//! - [`StealPlan`]: the work-stealing plan of a parallel loop (the engine's
//!   `parallel_for` and a role pool's loops).
//! - [`CpuMask`]: a set of CPUs as the affinity calls see it (the idle
//!   check's process mask, a thread's mask, moving a thread).
//! - [`placement`]: where an oversubscribed pool's threads ran, and which
//!   one should move itself to spread them over the CPUs.
//! - [`tsan`]: ThreadSanitizer annotations, so that C programs built with
//!   `-fsanitize=thread` see the order our uninstrumented locks and
//!   hand-offs give (no-ops elsewhere).

mod counting_alloc;
mod cpu;
pub mod cpu_mask;
mod histogram;
mod panic;
#[cfg(not(loom))]
pub mod placement;
pub mod spin;
mod steal;
pub mod sync;
pub mod tsan;

pub use counting_alloc::CountingAllocator;
pub use cpu::{
    available_cores, cpu_model_name, duration_to_nanos, page_size, process_cpu_time,
    thread_cpu_time,
};
pub use cpu_mask::CpuMask;
pub use histogram::Histogram;
pub use panic::{Failure, catch, panic_message, take_panic_message};
pub use steal::StealPlan;
