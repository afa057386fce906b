//! One sphere's slot: the job handed to it, its outcome, and the hand-off
//! protocol between the threads that dispatch and wait and the sphere itself.
//!
//! # The protocol
//! Everything hangs on one atomic word per slot: the state in the low bits and
//! three flags. Because every transition is a read-modify-write of that single
//! word, all of them are totally ordered, and no wake-up can be lost without
//! relying on sequentially consistent fences:
//!
//! ```text
//!            claim            publish          sphere takes     sphere completes
//!   EMPTY ----------> CLAIMED ---------> READY ------------> RUNNING ------------> DONE
//!     ^  \____release_claim___/                                                   |
//!     |                                 collect (by one waiter)                   |
//!     +-------------------------------- COLLECTING <------------------------------+
//! ```
//! - `WORKER_PARKED`: the sphere is (about to be) asleep on `work_ready`. It is
//!   set by the sphere while it holds the mutex; whoever publishes a job or
//!   shuts down and sees it takes the mutex and notifies.
//! - `WAITER_PARKED`: a waiter is (about to be) asleep on `work_done`; the
//!   sphere that completes the job and sees it takes the mutex and notifies.
//! - `SHUTDOWN`: no new claims; the sphere finishes a claimed or ready job and
//!   then exits.
//!
//! A published job that the sphere has not taken yet can be revoked
//! (READY -> CLAIMED -> EMPTY): `parallel_for` does this so that its caller
//! never waits for a sphere that was not scheduled in time to help.
//!
//! The flag is set under the mutex and re-checked in the same atomic step as
//! the state (a compare-exchange), and the waker takes the same mutex before
//! notifying, so the notification cannot fall between the sleeper's check and
//! its wait. The loom tests in `tests/loom.rs` check exactly this code.

use crate::error::Error;
use crate::sync::{AtomicU32, AtomicU64, Condvar, Mutex, Ordering, UnsafeCell};
use crossbeam_utils::CachePadded;
use std::time::{Duration, Instant};
use thread_support::duration_to_nanos;
use thread_support::spin::{AdaptiveSpin, spin_until};

const STATE_MASK: u32 = 0b111;
const EMPTY: u32 = 0;
const CLAIMED: u32 = 1;
const READY: u32 = 2;
const RUNNING: u32 = 3;
const DONE: u32 = 4;
const COLLECTING: u32 = 5;
const WORKER_PARKED: u32 = 1 << 3;
const WAITER_PARKED: u32 = 1 << 4;
const SHUTDOWN: u32 = 1 << 5;

fn state(word: u32) -> u32 {
    word & STATE_MASK
}

fn with_state(word: u32, new_state: u32) -> u32 {
    (word & !STATE_MASK) | new_state
}

/// What a job reports when it ends.
pub type Outcome = Result<(), Error>;

/// What a sphere found when it went to take its job.
enum Taken<J> {
    Job(J),
    Exit,
    Revoked,
}

/// The result of waiting on a slot.
#[derive(Debug, PartialEq)]
pub enum Waited {
    /// The job ended; this waiter collected its outcome.
    Collected(Outcome),
    /// There was no job to wait for (never dispatched, or already collected).
    Nothing,
    /// The deadline passed first; the job goes on and can be waited for again.
    TimedOut,
}

/// Per-slot counters, written by the sphere only (relaxed), read by anyone.
#[derive(Default)]
pub struct SlotCounters {
    pub jobs: AtomicU64,
    pub failures: AtomicU64,
    pub busy_ns: AtomicU64,
    pub idle_ns: AtomicU64,
    pub parks: AtomicU64,
    pub spin_hits: AtomicU64,
    pub revoked: AtomicU64,
}

/// The hand-off point of one sphere. `J` is the job type (generic so that the
/// loom tests can use a plain value).
///
/// Layout: what both sides touch on the fast path (the word, the job, the
/// outcome: an error is boxed to keep it small) shares the first cache line;
/// the counters, which the sphere writes after every job, sit on their own
/// line so that those writes never take the hand-off line from a waiter.
#[repr(C)]
pub struct Slot<J> {
    word: AtomicU32,
    job: UnsafeCell<Option<J>>,
    /// `None` for success.
    outcome: UnsafeCell<Option<Box<Error>>>,
    lock: Mutex<()>,
    work_ready: Condvar,
    work_done: Condvar,
    /// What the sphere did (for statistics).
    pub counters: CachePadded<SlotCounters>,
}

// SAFETY: `job` and `outcome` are only accessed by the thread that owns the
// matching state of `word` (CLAIMED: the dispatcher writes `job`; RUNNING: the
// sphere takes `job` and writes `outcome`; COLLECTING: one waiter reads
// `outcome`), and ownership passes with release/acquire transitions of `word`.
unsafe impl<J: Send> Sync for Slot<J> {}
// SAFETY: as above; the slot only moves `J` values between threads.
unsafe impl<J: Send> Send for Slot<J> {}

impl<J> Slot<J> {
    /// An empty slot.
    pub fn new() -> Self {
        Self {
            word: AtomicU32::new(EMPTY),
            job: UnsafeCell::new(None),
            outcome: UnsafeCell::new(None),
            lock: Mutex::new(()),
            work_ready: Condvar::new(),
            work_done: Condvar::new(),
            counters: CachePadded::new(SlotCounters::default()),
        }
    }

    /// True while a job is claimed, ready, running, or done but not collected.
    pub fn is_busy(&self) -> bool {
        !matches!(state(self.word.load(Ordering::Acquire)), EMPTY)
    }

    /// Reserves the slot for a new job: EMPTY -> CLAIMED.
    pub fn claim(&self, sphere: usize) -> Result<(), Error> {
        let mut word = self.word.load(Ordering::Relaxed);
        loop {
            if word & SHUTDOWN != 0 {
                return Err(Error::Shutdown);
            }
            if state(word) != EMPTY {
                return Err(Error::Busy { sphere });
            }
            match self.word.compare_exchange_weak(
                word,
                with_state(word, CLAIMED),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(now) => word = now,
            }
        }
    }

    /// Gives back a claim that will not be published: CLAIMED -> EMPTY.
    /// A waiter parked on a revoked job is woken (it then finds nothing).
    pub fn release_claim(&self) {
        let prev = self.transition(|w| with_state(w, EMPTY) & !WAITER_PARKED, Ordering::Release);
        debug_assert_eq!(state(prev), CLAIMED);
        if prev & WAITER_PARKED != 0 {
            let _guard = self.lock.lock();
            self.work_done.notify_all();
        }
    }

    /// Hands `job` to the sphere: CLAIMED -> READY, waking it if it sleeps.
    /// The caller must hold the claim (a successful [`Slot::claim`]).
    pub fn publish(&self, job: J) {
        // SAFETY: in state CLAIMED only the claimant touches `job`; the sphere
        // reads it only after the release transition to READY below.
        self.job.with_mut(|cell| unsafe { *cell = Some(job) });
        let prev = self.transition(|w| with_state(w, READY) & !WORKER_PARKED, Ordering::AcqRel);
        debug_assert_eq!(state(prev), CLAIMED);
        if prev & WORKER_PARKED != 0 {
            let _guard = self.lock.lock();
            self.work_ready.notify_one();
        }
    }

    /// Claims and publishes in one step.
    pub fn dispatch(&self, sphere: usize, job: J) -> Result<(), Error> {
        self.claim(sphere)?;
        self.publish(job);
        Ok(())
    }

    /// Applies `f` to the word atomically; returns the previous word.
    fn transition(&self, f: impl Fn(u32) -> u32, order: Ordering) -> u32 {
        let mut word = self.word.load(Ordering::Relaxed);
        loop {
            match self
                .word
                .compare_exchange_weak(word, f(word), order, Ordering::Relaxed)
            {
                Ok(prev) => return prev,
                Err(now) => word = now,
            }
        }
    }

    // ---- the sphere's side ----------------------------------------------

    /// Blocks the sphere until a job is ready (returns it, now RUNNING, and
    /// the time it started) or the slot is shut down with nothing left to run
    /// (returns `None`). Spins for the adaptive budget before parking.
    /// `idle_since` is when the sphere finished its last job.
    pub fn next_job(&self, spin: &mut AdaptiveSpin, idle_since: Instant) -> Option<(J, Instant)> {
        let job = loop {
            let hit = spin_until(spin.budget(), spin.yielding(), || {
                let w = self.word.load(Ordering::Acquire);
                state(w) == READY || Self::worker_may_exit(w)
            });
            if hit {
                self.counters.spin_hits.fetch_add(1, Ordering::Relaxed);
            } else {
                self.park_worker();
            }
            match self.take_job() {
                Taken::Job(job) => break job,
                Taken::Exit => return None,
                // The job was revoked before this sphere took it: wait again.
                Taken::Revoked => continue,
            }
        };
        // The idle gap decides whether spinning pays off next time.
        let started = Instant::now();
        let idle = started - idle_since;
        spin.record_gap(idle);
        self.counters
            .idle_ns
            .fetch_add(duration_to_nanos(idle), Ordering::Relaxed);
        Some((job, started))
    }

    /// A shut-down sphere exits once it holds no claimed or ready job.
    fn worker_may_exit(word: u32) -> bool {
        word & SHUTDOWN != 0 && !matches!(state(word), CLAIMED | READY)
    }

    fn park_worker(&self) {
        let mut guard = self.lock.lock();
        loop {
            let w = self.word.load(Ordering::Acquire);
            if state(w) == READY || Self::worker_may_exit(w) {
                return;
            }
            if w & WORKER_PARKED == 0
                && self
                    .word
                    .compare_exchange(w, w | WORKER_PARKED, Ordering::AcqRel, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            self.counters.parks.fetch_add(1, Ordering::Relaxed);
            self.work_ready.wait(&mut guard);
        }
    }

    /// READY -> RUNNING and the job; or the sphere should exit; or the job
    /// it saw was revoked in the meantime.
    fn take_job(&self) -> Taken<J> {
        let prev = self.transition(
            |w| {
                if state(w) == READY {
                    with_state(w, RUNNING)
                } else {
                    w
                }
            },
            Ordering::AcqRel,
        );
        if state(prev) != READY {
            return if Self::worker_may_exit(prev) {
                Taken::Exit
            } else {
                Taken::Revoked
            };
        }
        // SAFETY: the acquire transition READY -> RUNNING made this thread the
        // only one that may touch `job` until it publishes DONE.
        let job = self.job.with_mut(|cell| unsafe { (*cell).take() });
        Taken::Job(job.expect("READY slot without a job"))
    }

    /// Takes back a published job that the sphere has not started:
    /// READY -> CLAIMED -> EMPTY. Returns the job, or `None` if the sphere
    /// took it first (then wait for it as usual).
    pub fn revoke(&self) -> Option<J> {
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            if state(word) != READY {
                return None;
            }
            match self.word.compare_exchange_weak(
                word,
                with_state(word, CLAIMED),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => word = now,
            }
        }
        // SAFETY: the acquire transition READY -> CLAIMED gives this thread
        // the job cell back (the sphere takes it only from READY).
        let job = self.job.with_mut(|cell| unsafe { (*cell).take() });
        self.release_claim();
        self.counters.revoked.fetch_add(1, Ordering::Relaxed);
        job
    }

    /// Stores the outcome of the running job: RUNNING -> DONE, waking waiters;
    /// returns when it ended.
    /// Job counts are visible to whoever collects the outcome; the busy time
    /// is added just after the hand-off, to keep the clock off its path.
    pub fn complete(&self, outcome: Outcome, started: Instant) -> Instant {
        let failed = outcome.is_err();
        // SAFETY: in state RUNNING only the sphere touches `outcome`; waiters
        // read it only after the release transition to DONE in `finish`.
        self.outcome
            .with_mut(|cell| unsafe { *cell = outcome.err().map(Box::new) });
        self.finish(DONE, Ordering::AcqRel, failed, started)
    }

    /// Ends a fork-join share without an outcome to collect (the fork-join
    /// record carries it): RUNNING -> EMPTY, so that the next fork-join can
    /// claim the slot at once; wakes anyone parked on the slot. Returns when
    /// the share ended.
    pub fn release(&self, failed: bool, started: Instant) -> Instant {
        self.finish(EMPTY, Ordering::Release, failed, started)
    }

    /// Counts the job, moves RUNNING -> `to`, wakes parked waiters, and adds
    /// the busy time.
    fn finish(&self, to: u32, order: Ordering, failed: bool, started: Instant) -> Instant {
        self.counters.jobs.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.counters.failures.fetch_add(1, Ordering::Relaxed);
        }
        let prev = self.transition(|w| with_state(w, to) & !WAITER_PARKED, order);
        debug_assert_eq!(state(prev), RUNNING);
        if prev & WAITER_PARKED != 0 {
            let _guard = self.lock.lock();
            self.work_done.notify_all();
        }
        // One clock read ends the job and starts the next idle period.
        let ended = Instant::now();
        self.counters
            .busy_ns
            .fetch_add(duration_to_nanos(ended - started), Ordering::Relaxed);
        ended
    }

    // ---- the waiter's side ----------------------------------------------

    /// Waits for the job to end and collects its outcome. `deadline: None`
    /// waits for ever. `spin` bounds the spin before parking.
    pub fn wait(&self, deadline: Option<Instant>, spin: Duration, yielding: bool) -> Waited {
        loop {
            let w = self.word.load(Ordering::Acquire);
            match state(w) {
                EMPTY | COLLECTING => return Waited::Nothing,
                DONE => {
                    if let Some(outcome) = self.try_collect(w) {
                        return Waited::Collected(outcome);
                    }
                    continue;
                }
                _ => {}
            }
            let spin = match deadline {
                Some(d) => spin.min(d.saturating_duration_since(Instant::now())),
                None => spin,
            };
            if spin_until(spin, yielding, || {
                !matches!(self.state(), CLAIMED | READY | RUNNING)
            }) {
                continue;
            }
            if self.park_waiter(deadline) {
                // Timed out; the job may have ended in the meantime.
                let w = self.word.load(Ordering::Acquire);
                if state(w) == DONE {
                    if let Some(outcome) = self.try_collect(w) {
                        return Waited::Collected(outcome);
                    }
                }
                return Waited::TimedOut;
            }
        }
    }

    fn state(&self) -> u32 {
        state(self.word.load(Ordering::Acquire))
    }

    /// DONE -> COLLECTING -> EMPTY, taking the outcome; `None` if another
    /// thread won the race to collect (or the word changed).
    fn try_collect(&self, seen: u32) -> Option<Outcome> {
        self.word
            .compare_exchange(
                seen,
                with_state(seen, COLLECTING),
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .ok()?;
        // SAFETY: the acquire transition DONE -> COLLECTING gives this thread
        // sole access to `outcome` until it releases the slot (EMPTY) below.
        let outcome = self.outcome.with_mut(|cell| unsafe { (*cell).take() });
        let prev = self.transition(|w| with_state(w, EMPTY), Ordering::Release);
        debug_assert_eq!(state(prev), COLLECTING);
        Some(outcome.map_or(Ok(()), |e| Err(*e)))
    }

    /// Sleeps until the job is no longer pending; true if the deadline passed.
    fn park_waiter(&self, deadline: Option<Instant>) -> bool {
        let mut guard = self.lock.lock();
        loop {
            let w = self.word.load(Ordering::Acquire);
            if !matches!(state(w), CLAIMED | READY | RUNNING) {
                return false;
            }
            if w & WAITER_PARKED == 0
                && self
                    .word
                    .compare_exchange(w, w | WAITER_PARKED, Ordering::AcqRel, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            match deadline {
                None => self.work_done.wait(&mut guard),
                Some(d) => {
                    if self.work_done.wait_until(&mut guard, d) {
                        return true;
                    }
                }
            }
        }
    }

    // ---- shutdown ----------------------------------------------------------

    /// Refuses new claims and wakes the sphere so that it finishes a pending
    /// job and exits.
    pub fn shutdown(&self) {
        let prev = self.transition(|w| (w | SHUTDOWN) & !WORKER_PARKED, Ordering::AcqRel);
        if prev & WORKER_PARKED != 0 {
            let _guard = self.lock.lock();
            self.work_ready.notify_one();
        }
    }
}
