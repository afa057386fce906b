//! [`RoundSlot`]: the fork-join hand-off of a crew.
//!
//! A round is *help wanted*, not *everyone report*: the caller opens it and
//! starts working at once; idle workers of the crew join while it is open and
//! take work from the same plan; the caller then closes it and waits only for
//! the workers that did join. A worker busy with a long task simply does not
//! join, so a round never waits for a thread that is not helping.
//!
//! One atomic word holds everything, so every transition is totally ordered:
//!
//! ```text
//!   bits 0..32   active: workers inside the round
//!   bit  32      OPEN: workers may join
//!   bit  33      WAITER: the caller sleeps until active == 0
//!   bits 34..64  generation: a worker joins each round at most once
//! ```
//! - open (caller, with no round in progress): store the job pointer, then
//!   the word `(gen + 1) | OPEN` with release.
//! - join (worker): compare-exchange `w -> w + 1` while OPEN is set and the
//!   generation is one it has not joined; the acquire makes the job pointer
//!   visible. The job stays alive while `active > 0`.
//! - leave (worker): `fetch_sub(1)`; the worker that brings `active` to zero
//!   with WAITER set takes the mutex and wakes the caller.
//! - close (caller): `fetch_and(!OPEN)`; then wait (spin, then sleep with
//!   WAITER set under the mutex) until `active == 0`. After that no worker
//!   holds the job and the caller may free it.

use crate::sync::{AtomicPtr, AtomicU64, Condvar, Mutex, Ordering};
use std::time::Duration;
use thread_support::spin::spin_until;
use thread_support::tsan;

/// ThreadSanitizer keys in a round slot (`tsan::key`): the opening, which a
/// joining worker follows, and the workers' leaving, which the caller's
/// `close` follows (see `thread_support::tsan`).
const TSAN_OPENED: usize = 0;
const TSAN_LEFT: usize = 1;

const ACTIVE_MASK: u64 = (1 << 32) - 1;
const OPEN: u64 = 1 << 32;
const WAITER: u64 = 1 << 33;
const GEN_SHIFT: u32 = 34;

fn generation(word: u64) -> u64 {
    word >> GEN_SHIFT
}

fn active(word: u64) -> u64 {
    word & ACTIVE_MASK
}

/// The round of one crew. `J` is the job every participant runs.
pub struct RoundSlot<J> {
    word: AtomicU64,
    job: AtomicPtr<J>,
    lock: Mutex<()>,
    done: Condvar,
}

// SAFETY: the slot only hands out `&J` (to joined workers) while the caller
// keeps the job alive; `J: Sync` makes sharing it across threads sound.
unsafe impl<J: Sync> Sync for RoundSlot<J> {}
// SAFETY: as above; the slot owns no `J`, only a pointer to the caller's.
unsafe impl<J: Sync> Send for RoundSlot<J> {}

/// A worker's membership of an open round; leaving on drop.
pub struct Joined<'a, J> {
    slot: &'a RoundSlot<J>,
    job: *const J,
}

impl<J> Joined<'_, J> {
    /// The round's job, alive while this membership is.
    pub fn job(&self) -> &J {
        // SAFETY: the caller that opened the round keeps the job alive until
        // `active` is zero (see `close`), and this membership counts in it.
        unsafe { &*self.job }
    }
}

impl<J> Drop for Joined<'_, J> {
    fn drop(&mut self) {
        tsan::release(tsan::key(self.slot, TSAN_LEFT));
        let prev = self.slot.word.fetch_sub(1, Ordering::AcqRel);
        debug_assert!(active(prev) > 0);
        if active(prev) == 1 && prev & WAITER != 0 {
            let _guard = self.slot.lock.lock();
            self.slot.done.notify_all();
        }
    }
}

impl<J> RoundSlot<J> {
    pub fn new() -> Self {
        Self {
            word: AtomicU64::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            lock: Mutex::new(()),
            done: Condvar::new(),
        }
    }

    /// Opens a round on `job`. The caller must be the only one opening
    /// rounds on this slot, must have closed the previous one, and must call
    /// [`close`](Self::close) before `job` goes away (even when unwinding).
    pub fn open(&self, job: *const J) {
        self.job.store(job.cast_mut(), Ordering::Relaxed);
        let w = self.word.load(Ordering::Relaxed);
        debug_assert!(w & OPEN == 0 && active(w) == 0, "previous round not closed");
        // No worker touches the word while it is closed with nobody inside,
        // so a plain store is enough; release publishes the job pointer.
        tsan::release(tsan::key(self, TSAN_OPENED));
        self.word
            .store(((generation(w) + 1) << GEN_SHIFT) | OPEN, Ordering::Release);
    }

    /// Joins the open round unless it is a generation this worker already
    /// joined (`last_gen`, updated on success).
    pub fn try_join(&self, last_gen: &mut u64) -> Option<Joined<'_, J>> {
        let mut w = self.word.load(Ordering::Acquire);
        loop {
            if w & OPEN == 0 || generation(w) == *last_gen {
                return None;
            }
            match self
                .word
                .compare_exchange_weak(w, w + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    *last_gen = generation(w);
                    tsan::acquire(tsan::key(self, TSAN_OPENED));
                    let job = self.job.load(Ordering::Relaxed);
                    return Some(Joined { slot: self, job });
                }
                Err(now) => w = now,
            }
        }
    }

    /// Closes the round and waits until every worker that joined has left.
    pub fn close(&self, spin: Duration) {
        self.close_and_wait(spin);
        tsan::acquire(tsan::key(self, TSAN_LEFT));
    }

    fn close_and_wait(&self, spin: Duration) {
        let prev = self.word.fetch_and(!OPEN, Ordering::AcqRel);
        if active(prev) == 0 {
            return;
        }
        if spin_until(spin, false, || {
            active(self.word.load(Ordering::Acquire)) == 0
        }) {
            return;
        }
        let mut guard = self.lock.lock();
        loop {
            let w = self.word.load(Ordering::Acquire);
            if active(w) == 0 {
                if w & WAITER != 0 {
                    // Nobody else writes the word now: closed, nobody inside.
                    self.word.fetch_and(!WAITER, Ordering::Relaxed);
                }
                return;
            }
            if w & WAITER == 0
                && self
                    .word
                    .compare_exchange(w, w | WAITER, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
            {
                continue;
            }
            self.done.wait(&mut guard);
        }
    }
}
