//! A fork-join round on two pool-owned cache lines, the floor's protocol
//! (`benches/c/compare.c`): the *go line* (an epoch the caller bumps, and the
//! round's task, stored by value) and the *done line* (a monotonic count of
//! finished shares, which the caller waits for). Idle spheres watch the
//! epoch and sleep on the pool's [`Doorbell`].
//!
//! A share's last touch of anything the round's caller owns is its
//! [`depart`](RoundLines::depart) (the add on the done line): what it does
//! after that (wake the caller, leave the barrier) touches pool-owned words
//! only. The protocol, and why no wake-up is lost, is in `README.md`
//! ("Rounds on the go line and the done line").
//!
//! The barrier is armed lazily: a share departs by adding to the done count
//! only. A participant that calls the barrier first *engages* it: it sets
//! `USED` in the done word (one RMW, so it falls in one total order with the
//! departures) and leaves the barrier for every share that departed before;
//! a share that departs after sees `USED` in the value its add returns and
//! leaves the barrier itself. A round whose task never calls the barrier
//! touches no barrier line.

use crate::barrier::SphereBarrier;
use crate::doorbell::{ALL_BITS, Doorbell, FutexWord};
use crate::slot::Bell;
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crossbeam_utils::CachePadded;
use std::cell::Cell;
use std::time::Duration;
use thread_support::spin::spin_until;
use thread_support::tsan;

/// ThreadSanitizer keys in the round lines (`tsan::key`): the caller's
/// opening of a round, which every share's start follows, and the shares'
/// departures, which the caller's join follows.
const TSAN_OPENED: usize = 0;
const TSAN_DEPARTED: usize = 1;

/// The done word: the count of departed shares in bits 2..32 (wrapping),
/// `WAITING` (the caller sleeps, or is about to) in bit 1, and `USED` (the
/// barrier was engaged this round) in bit 0. One word, so that every
/// departure, the caller's going to sleep and the barrier's engagement are
/// totally ordered by its modifications, with no fence.
const USED: u32 = 1;
const WAITING: u32 = 2;
const ONE_DONE: u32 = 4;

fn count(done: u32) -> u32 {
    done >> 2
}

/// The done count's range: 30 bits (a power of two that divides the round
/// number's 2^31, so that round x participants gives the count).
const COUNT_MASK: u32 = u32::MAX >> 2;

/// The epoch word: the round's number in bits 0..31 (wrapping at 2^31, a
/// multiple of the done count's 2^30), and `OPTIONAL` in bit 31 for a round
/// whose shares are optional (see [`RoundLines::open_optional`]). A sphere
/// is at most one round behind a round of `run_all` (each waits for every
/// sphere), but may sleep through any number of optional rounds.
pub const OPTIONAL: u32 = 1 << 31;
const ROUND_MASK: u32 = !OPTIONAL;

/// The round number in an epoch word.
pub fn round_of(word: u32) -> u32 {
    word & ROUND_MASK
}

/// The start word of an optional round: the round's epoch word in bits
/// 32..64, `CLOSED` (the caller has finished its share: no sphere may
/// start any more) in bit 31, and the number of spheres that started in
/// bits 0..31 (closed before the first round). The caller resets it just
/// before each optional round's epoch bump; a sphere starts with one
/// `fetch_add` of 1, whose returned value says which round it joined, or
/// that the round was closed.
const CLOSED: u64 = 1 << 31;
const STARTED_MASK: u64 = CLOSED - 1;

/// The go line: what starts a round. Written by the caller, read by every
/// sphere (the epoch by the idle ones all the time).
struct GoLine<T> {
    /// The epoch word (see [`OPTIONAL`]): written once per round.
    epoch: AtomicU32,
    /// The done word of a pool of one sphere (see [`RoundLines::done_word`]).
    done: FutexWord,
    /// The start word of a pool of one sphere (see [`RoundLines::start_word`]).
    start: AtomicU64,
    /// The round's task: written before the epoch bump, and left there
    /// after the join (the round's caller drops what needs dropping
    /// itself): writing the line after the join would take it from the
    /// spinning spheres only to have them read it back, twice a round.
    task: TaskCell<Option<T>>,
}

/// The done line: written by each share once per round, read by the caller
/// (used by pools of more than one sphere).
struct DoneLine {
    done: FutexWord,
    /// The start word of a larger pool: spheres write it at the start of
    /// an optional round, as they write the done word at its end.
    start: AtomicU64,
}

/// The round lines of a pool of `participants` (the spheres and the caller).
pub struct RoundLines<T> {
    go: CachePadded<GoLine<T>>,
    done: CachePadded<DoneLine>,
    doorbell: Bell,
    participants: u32,
    /// The done word sits on the go line (one sphere) or on its own line.
    done_on_go_line: bool,
}

// SAFETY: the task cell is written only by the round's caller while no round
// is open (every share of the last round has departed), and read by shares
// only while their round is open (from the epoch they saw to their
// departure), with release/acquire on the epoch and on the done word in
// between; `T: Sync` lets shares on several threads read it at once.
unsafe impl<T: Sync> Sync for RoundLines<T> {}
// SAFETY: the lines only move a `T` between the caller's calls.
unsafe impl<T: Send> Send for RoundLines<T> {}

/// What a round's caller gets from [`RoundLines::open`].
#[derive(Debug, Clone, Copy)]
pub struct Opened {
    /// The round's number (see [`round_of`]).
    pub epoch: u32,
}

impl<T> RoundLines<T> {
    /// The lines of a pool of `participants` (the spheres and the caller),
    /// whose idle spheres sleep on `doorbell`.
    pub fn new(participants: usize, doorbell: Bell) -> Self {
        Self {
            go: CachePadded::new(GoLine {
                epoch: AtomicU32::new(0),
                done: FutexWord::new(0),
                start: AtomicU64::new(CLOSED),
                task: TaskCell::new(None),
            }),
            done: CachePadded::new(DoneLine {
                done: FutexWord::new(0),
                start: AtomicU64::new(CLOSED),
            }),
            doorbell,
            participants: participants as u32,
            done_on_go_line: participants <= 2,
        }
    }

    /// The done word. With one sphere it shares the go line: the caller's
    /// epoch bump and the sphere's departure then move one line back and
    /// forth, two transfers a round instead of four (a C ping-pong on this
    /// VM: 115-131 ns a round trip on one line, 245-297 ns on two;
    /// `docs/handoff-cost.md`). With more spheres every departure would
    /// take the line from the spheres spinning on the epoch, and each
    /// would read it back: there it has a line of its own.
    fn done_word(&self) -> &FutexWord {
        if self.done_on_go_line {
            &self.go.done
        } else {
            &self.done.done
        }
    }

    /// The start word of optional rounds, on the line of the done word.
    fn start_word(&self) -> &AtomicU64 {
        if self.done_on_go_line {
            &self.go.start
        } else {
            &self.done.start
        }
    }

    /// The doorbell idle spheres sleep on.
    pub fn doorbell(&self) -> &Doorbell {
        &self.doorbell
    }

    /// The current epoch word (sequentially consistent: a sleeper's
    /// re-check).
    pub fn epoch(&self) -> u32 {
        self.go.epoch.load(Ordering::SeqCst)
    }

    /// The done count that round `epoch` starts from: every round adds one
    /// per participant.
    fn base(&self, epoch: u32) -> u32 {
        self.target(epoch.wrapping_sub(1))
    }

    // ---- the caller -----------------------------------------------------

    /// Opens a round of `task`: stores it, bumps the epoch, and wakes every
    /// sleeping sphere with one wake call. The caller must hold the pool's
    /// round flag, and the last round must be joined.
    pub fn open(&self, task: T) -> Opened {
        self.open_as(task, 0)
    }

    /// Opens a round whose spheres' shares are optional: a sphere runs its
    /// share only if it starts it (one `fetch_add` on the start word) before
    /// the caller [`close`](Self::close)s the round after its own share; the
    /// caller's share must take every piece of work that no sphere took
    /// (`parallel_for`'s steal plan does). The task must never call the
    /// barrier (a sphere that does not start never reaches it), except to
    /// break it on a failure. Then [`close`](Self::close) and
    /// [`join`](Self::join), as for [`open`](Self::open).
    pub fn open_optional(&self, task: T) -> Opened {
        self.open_as(task, OPTIONAL)
    }

    fn open_as(&self, task: T, kind: u32) -> Opened {
        // SAFETY: no round is open (the last one was joined), so no share
        // reads the cell; the epoch bump below publishes the write. The old
        // task is overwritten, not dropped (see `join`).
        self.go
            .task
            .with_mut(|cell| unsafe { cell.write(Some(task)) });
        tsan::release(tsan::key(self, TSAN_OPENED));
        // Only the round's caller writes the epoch word.
        let epoch = round_of(self.go.epoch.load(Ordering::Relaxed).wrapping_add(1));
        if kind == OPTIONAL {
            // Before the epoch word: a sphere that sees the new epoch word
            // finds this reset (or a later value) in the start word. It may
            // also find the reset first and read the older epoch word
            // afterwards: `join_round` keeps it from starting twice.
            // A swap, not a store: the spheres' late adds to the closed
            // word race with it, and every write of the word is then a
            // read-modify-write, totally ordered (loom models a plain store
            // racing an add less strictly).
            self.start_word()
                .swap(u64::from(epoch | OPTIONAL) << 32, Ordering::Release);
        }
        // A read-modify-write (the caller is the only writer): with the
        // sleepers' sequentially consistent re-check, no sleeper misses it.
        self.go.epoch.swap(epoch | kind, Ordering::SeqCst);
        self.doorbell.ring(ALL_BITS);
        Opened { epoch }
    }

    /// Ends the spheres' starts of the open optional round, after the
    /// caller's own share: a sphere that has not started by now never will.
    /// Counts one departure for each sphere that did not start (so the done
    /// count still reaches `epoch x participants`), leaving the barrier for
    /// them if a failure engaged it. Returns the number of spheres that
    /// started.
    pub fn close(&self, barrier: &SphereBarrier) -> u32 {
        let prev = self.start_word().fetch_or(CLOSED, Ordering::AcqRel);
        let started = (prev & STARTED_MASK) as u32;
        let spheres = self.participants - 1;
        let absent = spheres - started;
        if absent > 0 {
            let done = self.done_word().atomic();
            let prev = done.fetch_add(absent * ONE_DONE, Ordering::SeqCst);
            if prev & USED != 0 {
                barrier.leave_many(absent as usize);
            }
        }
        started
    }

    // ---- a sphere ---------------------------------------------------------

    /// The round a sphere that read the epoch word `word` runs a share of,
    /// as an epoch word: `word` itself for a round of every sphere; for an
    /// optional round, the round it started (`word`'s or a later one), or
    /// `None` if the round was closed first or the sphere already started
    /// it. `handled` is the sphere's own record of the last optional round
    /// it started or found closed (0 at first).
    ///
    /// Why `handled`: the start word is reset before the epoch word is
    /// bumped, so a sphere can start a round from the start word and then
    /// still read the older epoch word; reading the new one later, it must
    /// not start that round again. Start words only move forward, so a
    /// start word other than the handled one belongs to a newer round: the
    /// sphere adds to it only after checking that (one load), and its add
    /// then lands on that round or a newer one.
    pub fn join_round(&self, word: u32, handled: &mut u32) -> Option<u32> {
        if word & OPTIONAL == 0 {
            return Some(word);
        }
        let start = self.start_word();
        let now = start.load(Ordering::Acquire);
        if now & CLOSED != 0 || (now >> 32) as u32 == *handled {
            *handled = (now >> 32) as u32;
            return None;
        }
        // Acquire: the task of the round it starts was stored before the
        // reset that this add reads.
        let prev = start.fetch_add(1, Ordering::AcqRel);
        *handled = (prev >> 32) as u32;
        (prev & CLOSED == 0).then_some(*handled)
    }

    /// Ends the caller's share of round `opened` and waits until every
    /// participant has departed (spins up to `spin`, then sleeps on the
    /// done word), then re-arms the barrier if a participant engaged it.
    /// The task stays in the go line (no share reads it any more), to be
    /// overwritten by the next `open` without being dropped: `T` must need
    /// no drop, or the caller drops it in place after the join.
    ///
    /// With the done word on its own line the caller departs first, as a
    /// sphere does. On the go line (one sphere) it does not: its add would
    /// take the line back from the sphere that is reading the round's task,
    /// once more per round. The count is then the spheres' alone, and the
    /// caller leaves the barrier itself when it sees `USED` (a participant
    /// engaged it: it may wait for the caller), which it checks before it
    /// sleeps and after every wake-up; `engage` wakes a sleeping caller.
    pub fn join(&self, opened: Opened, barrier: &SphereBarrier, spin: Duration, yielding: bool) {
        if !self.done_on_go_line {
            self.depart(opened.epoch, barrier);
        }
        let target = self.target(opened.epoch);
        let done = self.done_word().atomic();
        // Whether the caller still counts in the barrier (go line only).
        let in_barrier = Cell::new(self.done_on_go_line);
        let leave_if_engaged = |w: u32| {
            let leaves = in_barrier.get() && w & USED != 0;
            if leaves {
                in_barrier.set(false);
                barrier.leave();
            }
            leaves
        };
        let mut w;
        loop {
            let ends_the_spin = |w: u32| count(w) == target || (in_barrier.get() && w & USED != 0);
            let spun = spin_until(spin, yielding, || {
                ends_the_spin(done.load(Ordering::Acquire))
            });
            w = done.load(Ordering::Acquire);
            // Leaving lets a participant waiting at the barrier go on:
            // spin again for the departures.
            if !spun || !leave_if_engaged(w) {
                break;
            }
        }
        if count(w) != target {
            // A departure before this RMW is in its value; one after it
            // sees WAITING in the value its add returns, and wakes (the
            // last one), as does an engagement (go line only); and every
            // departure and engagement changes the word the futex compares.
            loop {
                w = done.fetch_or(WAITING, Ordering::SeqCst) | WAITING;
                leave_if_engaged(w);
                if count(w) == target {
                    break;
                }
                self.done_word().wait(w, ALL_BITS);
            }
            done.fetch_and(!WAITING, Ordering::Relaxed);
        }
        // The caller's own share may have engaged the barrier.
        leave_if_engaged(w);
        if w & USED != 0 {
            // Every share that departed after the barrier was engaged
            // leaves it after its departure: wait for those leaves, then
            // arm it for the next round.
            barrier.wait_departed();
            barrier.rearm(self.participants as usize);
            done.fetch_and(!USED, Ordering::Relaxed);
        }
        tsan::acquire(tsan::key(self, TSAN_DEPARTED));
    }

    // ---- every participant ------------------------------------------------

    /// A share of the open round starts: for ThreadSanitizer, what the
    /// caller did before opening it happens before the share (nothing
    /// else happens here).
    pub fn share_starts(&self) {
        tsan::acquire(tsan::key(self, TSAN_OPENED));
    }

    /// The task of the open round.
    ///
    /// # Safety
    /// Only between seeing the round's epoch (or opening it) and departing.
    pub unsafe fn task<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        // SAFETY: promised by the caller: the round is open and the caller
        // writes the cell only when no round is open.
        self.go
            .task
            .with(|cell| f(unsafe { (*cell).as_ref() }.expect("an open round has a task")))
    }

    /// The task of the last round, for its caller to drop in place after
    /// the join.
    ///
    /// # Safety
    /// Only by the round's caller, after `join` and before the next `open`.
    pub unsafe fn task_mut<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // SAFETY: promised by the caller: no round is open.
        self.go
            .task
            .with_mut(|cell| f(unsafe { (*cell).as_mut() }.expect("a joined round has a task")))
    }

    /// Ends this participant's share of round `epoch`: one add on the done
    /// word, the share's last touch of anything the round's caller owns.
    /// Then, touching pool-owned words only: leaves the barrier if a
    /// participant engaged it, and, the last to depart, wakes the caller if
    /// it sleeps (an earlier departure changes the word, so a caller about
    /// to sleep on the old value does not, and it needs no wake).
    pub fn depart(&self, epoch: u32, barrier: &SphereBarrier) {
        let done = self.done_word().atomic();
        tsan::release(tsan::key(self, TSAN_DEPARTED));
        let prev = done.fetch_add(ONE_DONE, Ordering::SeqCst);
        if prev & USED != 0 {
            barrier.leave();
        }
        if prev & WAITING != 0 && count(prev.wrapping_add(ONE_DONE)) == self.target(epoch) {
            self.done_word().wake(ALL_BITS);
        }
    }

    /// The done count at the end of round `epoch`: every participant adds
    /// one per round, except the caller when the done word is on the go
    /// line (see `join`).
    fn target(&self, epoch: u32) -> u32 {
        let counted = self.participants - u32::from(self.done_on_go_line);
        epoch.wrapping_mul(counted) & COUNT_MASK
    }

    /// Arms the barrier for round `epoch` if no participant did yet: sets
    /// `USED` and leaves the barrier for every share that departed before.
    /// Call before every barrier wait or break of a round's participant.
    pub fn engage(&self, epoch: u32, barrier: &SphereBarrier) {
        let done = self.done_word().atomic();
        if done.load(Ordering::Relaxed) & USED != 0 {
            return;
        }
        let prev = done.fetch_or(USED, Ordering::SeqCst);
        if prev & USED == 0 {
            // TSan: the barrier's participants follow the shares that
            // departed before (this thread leaves for them).
            tsan::acquire(tsan::key(self, TSAN_DEPARTED));
            let departed = count(prev).wrapping_sub(self.base(epoch)) & COUNT_MASK;
            barrier.leave_many(departed as usize);
            if self.done_on_go_line && prev & WAITING != 0 {
                // The caller sleeps and has not left the barrier (see `join`).
                self.done_word().wake(ALL_BITS);
            }
        }
    }
}

/// An `UnsafeCell` with shared (`with`) and exclusive (`with_mut`) access:
/// loom's under loom, so that the models check every access.
#[cfg(loom)]
struct TaskCell<T>(loom::cell::UnsafeCell<T>);

#[cfg(loom)]
impl<T> TaskCell<T> {
    fn new(value: T) -> Self {
        Self(loom::cell::UnsafeCell::new(value))
    }
    fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        self.0.with(f)
    }
    fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        self.0.with_mut(f)
    }
}

#[cfg(not(loom))]
struct TaskCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> TaskCell<T> {
    fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }
    fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }
    fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::Arc;

    /// Lines of `participants` whose counters stand as after `rounds`
    /// rounds (the round number wraps at 2^31, the done count at 2^30).
    fn lines_after(participants: usize, rounds: u64) -> RoundLines<u32> {
        let lines = RoundLines::new(participants, Arc::new(CachePadded::new(Doorbell::new())));
        lines
            .go
            .epoch
            .store(round_of(rounds as u32), Ordering::Relaxed);
        // The round number's 2^31 is a multiple of the count's 2^30.
        let count = lines.target(round_of(rounds as u32));
        lines
            .done_word()
            .atomic()
            .store(count << 2, Ordering::Relaxed);
        lines
    }

    /// Runs `rounds` rounds on this thread, every participant's share one
    /// after the other (the spheres', then the caller's, which `join`
    /// ends); in rounds with `engaged(round)` the caller engages the
    /// barrier after the spheres departed, so `engage`'s count of the
    /// departed is checked across the wraps too. Every third round is
    /// optional, and only its first `r % participants` spheres start it.
    fn run_rounds(
        lines: &RoundLines<u32>,
        participants: usize,
        rounds: u32,
        engaged: impl Fn(u32) -> bool,
    ) {
        let barrier = SphereBarrier::new(participants);
        let mut handled = vec![0; participants];
        for r in 0..rounds {
            let optional = r % 3 == 2;
            let opened = if optional {
                lines.open_optional(r)
            } else {
                lines.open(r)
            };
            let word = lines.epoch();
            let starting = if optional {
                r as usize % participants
            } else {
                participants - 1
            };
            for (sphere, handled) in handled.iter_mut().enumerate().take(starting) {
                let joined = lines.join_round(word, handled);
                assert_eq!(joined, Some(word), "round {r}: sphere {sphere} not started");
                assert_eq!(round_of(word), opened.epoch);
                // SAFETY: the round is open and this participant has not departed.
                assert_eq!(unsafe { lines.task(|t| *t) }, r);
                lines.depart(opened.epoch, &barrier);
            }
            if optional {
                assert_eq!(lines.close(&barrier), starting as u32);
                let absent = handled.iter_mut().enumerate().take(participants - 1);
                for (sphere, handled) in absent.skip(starting) {
                    let late = lines.join_round(word, handled);
                    assert_eq!(
                        late, None,
                        "round {r}: sphere {sphere} started after the close"
                    );
                }
            }
            // SAFETY: as above, for the caller.
            assert_eq!(unsafe { lines.task(|t| *t) }, r);
            if engaged(r) && !optional {
                lines.engage(opened.epoch, &barrier);
                assert_eq!(barrier.parties(), 1, "engage counted the departed wrongly");
                assert_eq!(barrier.wait(), Ok(true));
            }
            lines.join(opened, &barrier, Duration::ZERO, false);
            let done = lines.done_word().atomic().load(Ordering::SeqCst);
            assert_eq!(
                count(done),
                lines.target(opened.epoch),
                "round {r} (epoch {}): the count does not meet the target",
                opened.epoch
            );
            assert_eq!(barrier.parties(), participants);
        }
    }

    /// The 64-byte line an address falls in.
    fn line_of<U>(x: &U) -> usize {
        std::ptr::from_ref(x) as usize / 64
    }

    #[test]
    fn one_sphere_finds_the_done_word_on_the_go_line_more_spheres_on_a_line_of_their_own() {
        // The go line holds the epoch, the done word and the pool's real task
        // type on one 64-byte line.
        assert!(std::mem::size_of::<GoLine<crate::fork_join::RoundTask>>() <= 64);
        let bell = || Arc::new(CachePadded::new(Doorbell::new()));
        for participants in [1, 2] {
            let lines = RoundLines::<crate::fork_join::RoundTask>::new(participants, bell());
            assert_eq!(line_of(&lines.go.epoch), line_of(lines.done_word()));
            assert_eq!(line_of(&lines.go.epoch), line_of(&lines.go.task));
        }
        for participants in [3, 49] {
            let lines = RoundLines::<u32>::new(participants, bell());
            let done = line_of(lines.done_word());
            assert_ne!(line_of(&lines.go.epoch), done);
            assert_ne!(
                line_of(&lines.go.epoch) ^ 1,
                done,
                "adjacent lines: the pair prefetcher couples them"
            );
        }
    }

    #[test]
    fn the_done_count_meets_its_target_across_the_count_and_epoch_wraps() {
        for participants in [1, 2, 3, 5, 7, 64, 201] {
            // The count (30 bits) wraps within the next rounds.
            let before_count_wrap = (1u64 << 30) / participants as u64 - 4;
            // The round number (31 bits) wraps within the next rounds.
            let before_epoch_wrap = (1u64 << 31) - 4;
            for start in [before_count_wrap, before_epoch_wrap] {
                let lines = lines_after(participants, start);
                run_rounds(&lines, participants, 10, |_| true);
                run_rounds(&lines, participants, 10, |r| r % 2 == 1);
            }
        }
    }
}
