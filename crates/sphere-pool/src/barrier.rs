//! A reusable barrier for code running inside the spheres.
//!
//! Unlike `std::sync::Barrier` it cannot hang a fork-join round:
//! - a participant that is done for good [`leave`s](SphereBarrier::leave) it,
//!   and the others no longer wait for it (fork-join does this when a share
//!   returns);
//! - a participant that fails [`breaks`](SphereBarrier::break_barrier) it, and
//!   every current and later wait returns [`BarrierBroken`] (fork-join does
//!   this when a share panics).
//!
//! Arrival is one atomic add; the last arrival opens the next generation.
//! Waiters spin for a bounded time, then park on a condition variable.
//!
//! The party count doubles as the fork-join's join counter:
//! [`SphereBarrier::wait_departed`] returns once every participant has left.

use crate::sync::{AtomicU64, Condvar, Mutex, Ordering};
use std::fmt;
use std::time::Duration;
use thread_support::available_cores;
use thread_support::spin::spin_until;
use thread_support::tsan;

/// ThreadSanitizer keys in a barrier (`tsan::key`): 0 and 1 for the
/// arrivals of even and odd generations (a participant released from one
/// generation cannot take the arrivals of the next, which another may
/// already be making), 2 for the departures.
const TSAN_DEPARTED: usize = 2;

// The state word: generation (high 32 bits), BROKEN, arrived (15 bits),
// DEPART_WAITER, parties (15 bits).
const PARTIES_MASK: u64 = (1 << 15) - 1;
/// Set while a thread sleeps in `wait_departed`.
const DEPART_WAITER: u64 = 1 << 15;
const ARRIVED_ONE: u64 = 1 << 16;
/// Set in the arrived field's top bit once the barrier is broken.
const BROKEN: u64 = 1 << 31;

/// The most participants a barrier can have.
pub const MAX_BARRIER_PARTIES: usize = (1 << 15) - 1;

fn parties(word: u64) -> u64 {
    word & PARTIES_MASK
}
fn arrived(word: u64) -> u64 {
    (word >> 16) & 0x7fff
}
fn generation(word: u64) -> u64 {
    word >> 32
}

/// Returned by a wait on a barrier that a failed participant broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierBroken;

impl fmt::Display for BarrierBroken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("barrier broken: another participant failed")
    }
}

impl std::error::Error for BarrierBroken {}

/// A reusable, breakable barrier with departures. See the module docs.
pub struct SphereBarrier {
    word: AtomicU64,
    lock: Mutex<()>,
    opened: Condvar,
    spin: Duration,
    yielding: bool,
}

impl SphereBarrier {
    /// A barrier for `parties` participants (1 to [`MAX_BARRIER_PARTIES`]).
    ///
    /// # Panics
    /// If `parties` is 0 or above [`MAX_BARRIER_PARTIES`].
    pub fn new(parties: usize) -> Self {
        Self::with_spin(parties, Duration::from_micros(200))
    }

    /// As [`SphereBarrier::new`], spinning at most `spin` before parking.
    pub fn with_spin(parties: usize, spin: Duration) -> Self {
        assert!(
            (1..=MAX_BARRIER_PARTIES).contains(&parties),
            "a barrier needs 1 to {MAX_BARRIER_PARTIES} parties, not {parties}"
        );
        Self {
            word: AtomicU64::new(parties as u64),
            lock: Mutex::new(()),
            opened: Condvar::new(),
            spin,
            yielding: parties > available_cores(),
        }
    }

    /// The number of participants still taking part.
    pub fn parties(&self) -> usize {
        parties(self.word.load(Ordering::Acquire)) as usize
    }

    /// True once a participant broke the barrier.
    pub fn is_broken(&self) -> bool {
        self.word.load(Ordering::Acquire) & BROKEN != 0
    }

    /// Arms the barrier for a new round of `parties` participants: no
    /// arrival, not broken, no departure waiter, and the next generation (so
    /// that a late `open` of the last round cannot match the new word). Call
    /// only after [`wait_departed`](Self::wait_departed) returned, with no
    /// participant counted: a share of the last round may still be inside
    /// `leave`'s wake-up, which is harmless on a live barrier.
    // Public (hidden) only so that the loom models in tests/loom.rs reach it.
    #[doc(hidden)]
    pub fn rearm(&self, parties: usize) {
        assert!(
            (1..=MAX_BARRIER_PARTIES).contains(&parties),
            "a barrier needs 1 to {MAX_BARRIER_PARTIES} parties, not {parties}"
        );
        let w = self.word.load(Ordering::Acquire);
        debug_assert_eq!(self::parties(w), 0, "rearmed with participants left");
        self.word.store(
            ((generation(w) + 1) << 32) | parties as u64,
            Ordering::Release,
        );
    }

    /// Waits until every remaining participant has arrived. Returns
    /// `Ok(true)` for exactly one of them (the last to arrive), `Ok(false)`
    /// for the others, and `Err(BarrierBroken)` if the barrier is broken.
    pub fn wait(&self) -> Result<bool, BarrierBroken> {
        self.tsan_arrive();
        let prev = self.word.fetch_add(ARRIVED_ONE, Ordering::AcqRel);
        if prev & BROKEN != 0 {
            return Err(BarrierBroken);
        }
        let now = prev + ARRIVED_ONE;
        if arrived(now) >= parties(now) {
            self.open(now);
            tsan::acquire(self.tsan_generation_key(generation(prev)));
            return Ok(true);
        }
        let generation_seen = generation(prev);
        let moved_on = || {
            let w = self.word.load(Ordering::Acquire);
            generation(w) != generation_seen || w & BROKEN != 0
        };
        if !spin_until(self.spin, self.yielding, moved_on) {
            let mut guard = self.lock.lock();
            while !moved_on() {
                self.opened.wait(&mut guard);
            }
        }
        if generation(self.word.load(Ordering::Acquire)) != generation_seen {
            tsan::acquire(self.tsan_generation_key(generation_seen));
            Ok(false)
        } else {
            Err(BarrierBroken)
        }
    }

    /// Leaves the barrier for good: later generations need one participant
    /// fewer, and if everyone else is already waiting, they are released.
    /// The last one to leave wakes [`wait_departed`](Self::wait_departed).
    pub fn leave(&self) {
        self.leave_many(1);
    }

    /// `count` participants leave at once (a round's barrier engaged late
    /// leaves for the shares that returned before, see `round_lines.rs`).
    pub(crate) fn leave_many(&self, count: usize) {
        if count == 0 {
            return;
        }
        let count = count as u64;
        if tsan::active() {
            self.tsan_arrive();
            tsan::release(tsan::key(self, TSAN_DEPARTED));
        }
        let prev = self.word.fetch_sub(count, Ordering::AcqRel);
        debug_assert!(parties(prev) >= count, "more leaves than parties");
        let next = prev - count;
        if parties(next) == 0 {
            if prev & DEPART_WAITER != 0 {
                let _guard = self.lock.lock();
                self.opened.notify_all();
            }
        } else if next & BROKEN == 0 && arrived(next) > 0 && arrived(next) >= parties(next) {
            self.open(next);
        }
    }

    /// Waits until every participant has left (spins briefly, then sleeps):
    /// the join of a fork-join whose participants all leave when done.
    pub fn wait_departed(&self) {
        self.wait_all_left();
        tsan::acquire(tsan::key(self, TSAN_DEPARTED));
    }

    /// TSan: this participant's accesses so far happen before those of
    /// every participant that this generation releases (a no-op elsewhere,
    /// without even the load).
    fn tsan_arrive(&self) {
        if tsan::active() {
            let generation = generation(self.word.load(Ordering::Relaxed));
            tsan::release(self.tsan_generation_key(generation));
        }
    }

    fn tsan_generation_key(&self, generation: u64) -> *const u8 {
        tsan::key(self, (generation & 1) as usize)
    }

    fn wait_all_left(&self) {
        let gone = || parties(self.word.load(Ordering::Acquire)) == 0;
        if spin_until(self.spin, self.yielding, gone) {
            return;
        }
        let mut guard = self.lock.lock();
        loop {
            let w = self.word.load(Ordering::Acquire);
            if parties(w) == 0 {
                return;
            }
            if w & DEPART_WAITER == 0
                && self
                    .word
                    .compare_exchange(w, w | DEPART_WAITER, Ordering::AcqRel, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            self.opened.wait(&mut guard);
        }
    }

    /// Breaks the barrier: every current and future wait returns
    /// [`BarrierBroken`].
    pub fn break_barrier(&self) {
        self.word.fetch_or(BROKEN, Ordering::AcqRel);
        let _guard = self.lock.lock();
        self.opened.notify_all();
    }

    /// Opens the generation that `seen` completes, if nobody opened it yet.
    fn open(&self, seen: u64) {
        let next = (generation(seen) + 1) << 32 | (seen & DEPART_WAITER) | parties(seen);
        if self
            .word
            .compare_exchange(seen, next, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            let _guard = self.lock.lock();
            self.opened.notify_all();
        }
    }
}

impl fmt::Debug for SphereBarrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.word.load(Ordering::Acquire);
        f.debug_struct("SphereBarrier")
            .field("generation", &generation(w))
            .field("arrived", &arrived(w))
            .field("parties", &parties(w))
            .field("broken", &(w & BROKEN != 0))
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn one_leader_per_generation_over_many_generations() {
        const THREADS: usize = 4;
        const ROUNDS: usize = 200;
        let barrier = Arc::new(SphereBarrier::new(THREADS));
        let leaders = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (b, l) = (barrier.clone(), leaders.clone());
                std::thread::spawn(move || {
                    for _ in 0..ROUNDS {
                        if b.wait().unwrap() {
                            l.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(leaders.load(std::sync::atomic::Ordering::Relaxed), ROUNDS);
    }

    #[test]
    fn a_leaving_participant_releases_those_already_waiting() {
        let barrier = Arc::new(SphereBarrier::new(2));
        let b = barrier.clone();
        let waiter = std::thread::spawn(move || b.wait());
        std::thread::sleep(Duration::from_millis(20));
        barrier.leave();
        // Released by the departure, not as the last arrival.
        assert_eq!(waiter.join().unwrap(), Ok(false));
        assert_eq!(barrier.parties(), 1);
        // Alone now: a wait passes straight through.
        assert_eq!(barrier.wait(), Ok(true));
    }

    #[test]
    fn breaking_releases_waiters_with_an_error() {
        let barrier = Arc::new(SphereBarrier::new(3));
        let b = barrier.clone();
        let waiter = std::thread::spawn(move || b.wait());
        std::thread::sleep(Duration::from_millis(20));
        barrier.break_barrier();
        assert_eq!(waiter.join().unwrap(), Err(BarrierBroken));
        assert_eq!(barrier.wait(), Err(BarrierBroken));
    }

    #[test]
    #[should_panic(expected = "parties")]
    fn zero_parties_is_refused() {
        let _ = SphereBarrier::new(0);
    }
}
