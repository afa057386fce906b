//! The atomics used by the lock-free parts (per-thread slots, the seqlock
//! slot, sharded counters), with one API over two implementations: std
//! normally, loom's models under `--cfg loom`, so that `tests/loom.rs`
//! checks the very code that ships.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering, fence};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicU64, Ordering, fence};

/// A pause inside a retry loop. Under loom it yields, so that the model
/// schedules the thread that the loop waits for.
#[inline]
pub(crate) fn spin_hint(round: u32) {
    #[cfg(loom)]
    {
        let _ = round;
        loom::thread::yield_now();
    }
    #[cfg(not(loom))]
    {
        // A writer descheduled in the middle of an update (oversubscription)
        // must get the CPU back: spin briefly, then yield.
        if round < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}
