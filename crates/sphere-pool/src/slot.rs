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
//! - The sphere sleeps on the pool's [`Doorbell`] (shared with the round
//!   lines): whoever publishes a job or shuts down rings it with the
//!   sphere's bit after changing the word (`SeqCst`), and the sphere
//!   re-checks the word (`SeqCst`) after counting itself as a sleeper.
//! - `WAITER_PARKED`: a waiter is (about to be) asleep on `work_done`; the
//!   sphere that completes the job and sees it takes the mutex and notifies.
//! - `SHUTDOWN`: no new claims; the sphere finishes a claimed or ready job and
//!   then exits.
//!
//! The waiter's flag is set under the mutex and re-checked in the same
//! atomic step as the state (a compare-exchange), and the waker takes the
//! same mutex before notifying, so the notification cannot fall between the
//! waiter's check and its wait. The loom tests in `tests/loom.rs` check
//! exactly this code.

use crate::doorbell::{Doorbell, sphere_bit};
use crate::error::Error;
use crate::sync::{Arc, AtomicBool, AtomicU32, AtomicU64, Condvar, Mutex, Ordering, UnsafeCell};
use crossbeam_utils::CachePadded;
use std::cell::Cell;
use std::time::{Duration, Instant};
use thread_support::duration_to_nanos;
use thread_support::spin::{AdaptiveSpin, spin_until};
use thread_support::tsan;

const STATE_MASK: u32 = 0b111;
const EMPTY: u32 = 0;
const CLAIMED: u32 = 1;
const READY: u32 = 2;
const RUNNING: u32 = 3;
const DONE: u32 = 4;
const COLLECTING: u32 = 5;
const WAITER_PARKED: u32 = 1 << 4;
const SHUTDOWN: u32 = 1 << 5;

/// A wait that ends within this many checks took less than a few
/// microseconds (about what `spin_until` checks before it first reads the
/// clock): the job's start is then taken as the end of the last one, and
/// the sphere reads the clock once per job.
const QUICK_CHECKS: u32 = 64;

/// The pool's doorbell, shared by its slots and its round lines.
pub type Bell = Arc<CachePadded<Doorbell>>;

/// Adds `n` to a counter that only one thread writes: a plain load and
/// store (a `fetch_add` is a locked instruction even when relaxed).
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

fn state(word: u32) -> u32 {
    word & STATE_MASK
}

fn with_state(word: u32, new_state: u32) -> u32 {
    (word & !STATE_MASK) | new_state
}

/// What a job reports when it ends.
pub type Outcome = Result<(), Error>;

/// What a sphere found when it stopped waiting.
pub enum Next<J> {
    /// A job, now RUNNING, and when it started.
    Job(J, Instant),
    /// The other thing it waited for (a round), and when that started.
    Other(Instant),
    /// Shut down with nothing left to run.
    Exit,
}

/// What a sphere found when it went to take its job.
enum Taken<J> {
    Job(J),
    Exit,
    Gone,
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

/// Per-slot counters, written by the sphere only (plain relaxed stores),
/// read by anyone.
#[derive(Default)]
pub struct SlotCounters {
    pub jobs: AtomicU64,
    pub failures: AtomicU64,
    pub busy_ns: AtomicU64,
    pub idle_ns: AtomicU64,
    pub parks: AtomicU64,
    pub spin_hits: AtomicU64,
    /// Optional rounds (`parallel_for`'s on the go line) whose share this
    /// sphere started; the others count as revoked (`SphereStats`).
    pub optional_started: AtomicU64,
    /// The CPU, plus one (0: unknown), that the sphere's last go-line share
    /// ran on; written only in pools that keep their threads spread
    /// (`Shared::placement`).
    pub last_cpu: AtomicU32,
    /// A CPU, plus one (0: none), that the round's caller asks the sphere to
    /// move itself to; the sphere takes it after its next departure.
    pub move_to: AtomicU32,
    /// How many times the sphere moved itself so.
    pub moves: AtomicU64,
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
    work_done: Condvar,
    /// What the sphere sleeps on when idle, and its bit there.
    bell: Bell,
    bit: u32,
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

#[cfg(loom)]
impl<J> Default for Slot<J> {
    fn default() -> Self {
        Self::new()
    }
}

impl<J> Slot<J> {
    /// An empty slot with a doorbell of its own (the loom models' slot).
    #[cfg_attr(not(loom), allow(dead_code))]
    pub fn new() -> Self {
        Self::with_doorbell(Arc::new(CachePadded::new(Doorbell::new())), 0)
    }

    /// An empty slot of sphere `index`, whose sphere sleeps on `bell`.
    pub fn with_doorbell(bell: Bell, index: usize) -> Self {
        Self {
            word: AtomicU32::new(EMPTY),
            job: UnsafeCell::new(None),
            outcome: UnsafeCell::new(None),
            lock: Mutex::new(()),
            work_done: Condvar::new(),
            bell,
            bit: sphere_bit(index),
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
            // SeqCst: a dispatcher's claim and its check of the round flag
            // after it are one side of the Dekker pair with a round's flag
            // and its check of the slots (`claim_outside_round`).
            match self.word.compare_exchange_weak(
                word,
                with_state(word, CLAIMED),
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(now) => word = now,
            }
        }
    }

    /// Gives back a claim that will not be published: CLAIMED -> EMPTY.
    /// A waiter parked on the slot is woken (it then finds nothing).
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
        // TSan: the job's start (`take_job`) follows what came before.
        tsan::release(self);
        // SeqCst before the doorbell's sleeper check (see `Doorbell::ring`).
        let prev = self.transition(|w| with_state(w, READY), Ordering::SeqCst);
        debug_assert_eq!(state(prev), CLAIMED);
        self.bell.ring(self.bit);
    }

    /// A dispatcher's claim, refused during a fork-join round: checks the
    /// pool's `round` flag, claims, and checks the flag again, so that a
    /// round that sets its flag (a swap) and then checks this slot
    /// ([`Slot::idle_for_round`]) and a claim racing it cannot both go on.
    /// The second check is a read-modify-write of the flag: if it comes
    /// after the round's swap, it sees the flag; if before, the swap reads
    /// from it, so the round's check of the slot sees the claim.
    pub fn claim_outside_round(&self, sphere: usize, round: &AtomicBool) -> Result<(), Error> {
        if round.load(Ordering::Acquire) {
            return Err(Error::RoundInProgress);
        }
        match self.claim(sphere) {
            Ok(()) if round.fetch_or(false, Ordering::SeqCst) => {
                self.release_claim();
                Err(Error::RoundInProgress)
            }
            Ok(()) => Ok(()),
            // A round is running: that, not the slot, refuses the dispatch.
            Err(Error::Busy { .. }) if round.load(Ordering::Acquire) => Err(Error::RoundInProgress),
            Err(e) => Err(e),
        }
    }

    /// For a round that has set the pool's round flag (`SeqCst`): `Ok` if
    /// the slot holds no job, [`Error::Busy`] if it holds one that was not
    /// waited for. A claim in flight (a dispatcher between its claim and its
    /// check of the flag) is waited out: it ends as a published job (busy)
    /// or a released claim (idle).
    pub fn idle_for_round(&self, sphere: usize) -> Result<(), Error> {
        loop {
            let w = self.word.load(Ordering::SeqCst);
            if w & SHUTDOWN != 0 {
                return Err(Error::Shutdown);
            }
            match state(w) {
                EMPTY => return Ok(()),
                CLAIMED => crate::sync::yield_now(),
                _ => return Err(Error::Busy { sphere }),
            }
        }
    }

    /// Claims and publishes in one step (the loom models' dispatcher).
    #[cfg_attr(not(loom), allow(dead_code))]
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
    /// (returns `None`). Spins for the adaptive budget before sleeping.
    /// `idle_since` is when the sphere finished its last job.
    #[cfg_attr(not(loom), allow(dead_code))]
    pub fn next_job(&self, spin: &mut AdaptiveSpin, idle_since: Instant) -> Option<(J, Instant)> {
        match self.next_job_or(spin, idle_since, || false) {
            Next::Job(job, started) => Some((job, started)),
            Next::Exit => None,
            Next::Other(_) => unreachable!("nothing else to wait for"),
        }
    }

    /// As [`Slot::next_job`], also returning when `other()` (which must read
    /// its words with `SeqCst`, and become true only with a ring of this
    /// slot's doorbell) is true; `other` comes first.
    ///
    /// The clock: a wait that ends within [`QUICK_CHECKS`] checks counts as
    /// no idle time (the job starts when the last one ended), so the sphere
    /// reads the clock once per job, when it ends; after a longer wait it
    /// reads it here too, where a clock read costs little next to the wait.
    pub fn next_job_or(
        &self,
        spin: &mut AdaptiveSpin,
        idle_since: Instant,
        other: impl Fn() -> bool,
    ) -> Next<J> {
        let ready = || self.has_work() || other();
        let checks = Cell::new(0u32);
        let mut waited_long = false;
        let job = loop {
            let hit = spin_until(spin.budget(), spin.yielding(), || {
                checks.set(checks.get().saturating_add(1));
                ready()
            });
            if hit {
                add(&self.counters.spin_hits, 1);
            } else {
                waited_long = true;
                while !ready() {
                    self.bell
                        .sleep(self.bit, ready, || add(&self.counters.parks, 1));
                }
            }
            if other() {
                break None;
            }
            match self.take_job() {
                Taken::Job(job) => break Some(job),
                Taken::Exit => return Next::Exit,
                // Not READY any more: wait again (defensive; only this
                // sphere moves a READY word on).
                Taken::Gone => continue,
            }
        };
        let started = if waited_long || checks.get() > QUICK_CHECKS {
            Instant::now()
        } else {
            idle_since
        };
        // The idle gap decides whether spinning pays off next time.
        let idle = started.saturating_duration_since(idle_since);
        spin.record_gap(idle);
        add(&self.counters.idle_ns, duration_to_nanos(idle));
        match job {
            Some(job) => Next::Job(job, started),
            None => Next::Other(started),
        }
    }

    /// A job to take, or the slot shut down with none: what an idle sphere
    /// waits for (`SeqCst`: a sleeper's re-check, see `Doorbell`).
    fn has_work(&self) -> bool {
        let w = self.word.load(Ordering::SeqCst);
        state(w) == READY || Self::worker_may_exit(w)
    }

    /// A shut-down sphere exits once it holds no claimed or ready job.
    fn worker_may_exit(word: u32) -> bool {
        word & SHUTDOWN != 0 && !matches!(state(word), CLAIMED | READY)
    }

    /// READY -> RUNNING and the job; or the sphere should exit; or the word
    /// is not READY any more.
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
                Taken::Gone
            };
        }
        // SAFETY: the acquire transition READY -> RUNNING made this thread the
        // only one that may touch `job` until it publishes DONE.
        let job = self.job.with_mut(|cell| unsafe { (*cell).take() });
        tsan::acquire(self);
        Taken::Job(job.expect("READY slot without a job"))
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
        // TSan: the collector (`try_collect`) follows the job.
        tsan::release(self);
        self.finish(DONE, Ordering::AcqRel, failed, started)
    }

    /// Counts a job that ended (a failure too if `failed`); the sphere's
    /// own counters, so that whoever learns of the job's end sees them.
    pub fn count_job(&self, failed: bool) {
        add(&self.counters.jobs, 1);
        if failed {
            add(&self.counters.failures, 1);
        }
    }

    /// Adds the busy time of a job that started at `started` and ended now;
    /// returns now (one clock read ends the job and starts the idle time).
    pub fn end_job(&self, started: Instant) -> Instant {
        let ended = Instant::now();
        add(&self.counters.busy_ns, duration_to_nanos(ended - started));
        ended
    }

    /// Counts the job, moves RUNNING -> `to`, wakes parked waiters, and adds
    /// the busy time.
    fn finish(&self, to: u32, order: Ordering, failed: bool, started: Instant) -> Instant {
        self.count_job(failed);
        let prev = self.transition(|w| with_state(w, to) & !WAITER_PARKED, order);
        debug_assert_eq!(state(prev), RUNNING);
        if prev & WAITER_PARKED != 0 {
            let _guard = self.lock.lock();
            self.work_done.notify_all();
        }
        self.end_job(started)
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
        tsan::acquire(self);
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
        self.transition(|w| w | SHUTDOWN, Ordering::SeqCst);
        self.bell.ring(self.bit);
    }
}
