//! The atomics of the per-thread cache, with one API over std and loom so
//! that `tests/loom.rs` checks the code that ships (see sync-stats' shim).

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
