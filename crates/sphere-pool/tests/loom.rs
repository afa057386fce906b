//! Loom model checks of the hand-off protocol (`src/slot.rs`) and the barrier.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p sphere-pool --release --test loom`
//! (`make loom`). Loom explores every interleaving of the threads below (up to
//! the preemption bound) and fails on a deadlock (a lost wake-up leaves a
//! thread parked for ever), a data race on the slot's cells, or an assertion.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use sphere_pool::loom_api::{Slot, Waited};
use sphere_pool::{Error, SphereBarrier, Worker};
use std::time::{Duration, Instant};
use thread_support::spin::AdaptiveSpin;

/// The sphere's loop: run jobs until the slot is shut down. Job value 0
/// fails, any other succeeds. Returns the number of jobs run.
fn sphere(slot: &Slot<u32>) -> usize {
    let mut spin = AdaptiveSpin::new(Duration::ZERO, false);
    let mut ran = 0;
    let mut idle_since = Instant::now();
    while let Some((job, started)) = slot.next_job(&mut spin, idle_since) {
        ran += 1;
        let outcome = if job == 0 {
            Err(Error::JobFailed {
                worker: Worker::Sphere(0),
                code: 7,
            })
        } else {
            Ok(())
        };
        idle_since = slot.complete(outcome, started);
    }
    ran
}

fn spawn_sphere(slot: &Arc<Slot<u32>>) -> thread::JoinHandle<usize> {
    let slot = slot.clone();
    thread::spawn(move || sphere(&slot))
}

fn wait(slot: &Slot<u32>) -> Waited {
    slot.wait(None, Duration::ZERO, false)
}

#[test]
fn dispatch_then_wait_delivers_the_outcome() {
    loom::model(|| {
        let slot = Arc::new(Slot::new());
        let worker = spawn_sphere(&slot);
        slot.dispatch(0, 1).unwrap();
        assert_eq!(wait(&slot), Waited::Collected(Ok(())));
        slot.shutdown();
        assert_eq!(worker.join().unwrap(), 1);
    });
}

#[test]
fn two_rounds_reuse_the_slot_and_report_each_outcome() {
    loom::model(|| {
        let slot = Arc::new(Slot::new());
        let worker = spawn_sphere(&slot);
        slot.dispatch(0, 0).unwrap();
        assert!(matches!(
            wait(&slot),
            Waited::Collected(Err(Error::JobFailed { code: 7, .. }))
        ));
        slot.dispatch(0, 1).unwrap();
        assert_eq!(wait(&slot), Waited::Collected(Ok(())));
        // Collected: a further wait returns at once.
        assert_eq!(wait(&slot), Waited::Nothing);
        slot.shutdown();
        assert_eq!(worker.join().unwrap(), 2);
    });
}

#[test]
fn shutdown_wakes_an_idle_sphere() {
    loom::model(|| {
        let slot = Arc::new(Slot::<u32>::new());
        let worker = spawn_sphere(&slot);
        slot.shutdown();
        assert_eq!(worker.join().unwrap(), 0);
    });
}

#[test]
fn a_job_dispatched_before_shutdown_still_runs_and_is_collected() {
    loom::model(|| {
        let slot = Arc::new(Slot::new());
        let worker = spawn_sphere(&slot);
        slot.dispatch(0, 1).unwrap();
        slot.shutdown();
        assert_eq!(slot.dispatch(0, 1), Err(Error::Shutdown));
        assert_eq!(wait(&slot), Waited::Collected(Ok(())));
        assert_eq!(worker.join().unwrap(), 1);
    });
}

#[test]
fn dispatch_racing_shutdown_either_runs_or_is_refused() {
    loom::model(|| {
        let slot = Arc::new(Slot::new());
        let worker = spawn_sphere(&slot);
        let stopper = {
            let slot = slot.clone();
            thread::spawn(move || slot.shutdown())
        };
        let accepted = slot.dispatch(0, 1);
        match &accepted {
            Ok(()) => assert_eq!(wait(&slot), Waited::Collected(Ok(()))),
            Err(e) => assert_eq!(*e, Error::Shutdown),
        }
        stopper.join().unwrap();
        assert_eq!(worker.join().unwrap(), usize::from(accepted.is_ok()));
    });
}

#[test]
fn concurrent_dispatchers_one_wins_the_other_sees_busy() {
    loom::model(|| {
        let slot = Arc::new(Slot::new());
        let worker = spawn_sphere(&slot);
        let other = {
            let slot = slot.clone();
            thread::spawn(move || slot.dispatch(0, 1))
        };
        let mine = slot.dispatch(0, 1);
        let theirs = other.join().unwrap();
        assert!(mine.is_ok() != theirs.is_ok(), "exactly one dispatch wins");
        let loser = if mine.is_ok() { theirs } else { mine };
        assert_eq!(loser, Err(Error::Busy { sphere: 0 }));
        assert_eq!(wait(&slot), Waited::Collected(Ok(())));
        slot.shutdown();
        assert_eq!(worker.join().unwrap(), 1);
    });
}

#[test]
fn two_waiters_exactly_one_collects() {
    loom::model(|| {
        let slot = Arc::new(Slot::new());
        let worker = spawn_sphere(&slot);
        slot.dispatch(0, 0).unwrap();
        let other = {
            let slot = slot.clone();
            thread::spawn(move || wait(&slot))
        };
        let mine = wait(&slot);
        let theirs = other.join().unwrap();
        let collected = [&mine, &theirs]
            .iter()
            .filter(|w| matches!(w, Waited::Collected(_)))
            .count();
        assert_eq!(collected, 1, "mine {mine:?} theirs {theirs:?}");
        assert!(
            [&mine, &theirs]
                .iter()
                .any(|w| matches!(w, Waited::Nothing))
        );
        slot.shutdown();
        worker.join().unwrap();
    });
}

#[test]
fn a_timed_out_wait_leaves_the_outcome_for_the_next_wait() {
    loom::model(|| {
        let slot = Arc::new(Slot::new());
        let worker = spawn_sphere(&slot);
        slot.dispatch(0, 1).unwrap();
        match slot.wait(Some(Instant::now()), Duration::ZERO, false) {
            Waited::Collected(outcome) => assert_eq!(outcome, Ok(())),
            Waited::TimedOut => assert_eq!(wait(&slot), Waited::Collected(Ok(()))),
            Waited::Nothing => panic!("the job was dispatched: there is something to wait for"),
        }
        slot.shutdown();
        assert_eq!(worker.join().unwrap(), 1);
    });
}

#[test]
fn a_released_claim_leaves_the_slot_free() {
    loom::model(|| {
        let slot = Arc::new(Slot::new());
        let worker = spawn_sphere(&slot);
        slot.claim(0).unwrap();
        slot.release_claim();
        slot.dispatch(0, 1).unwrap();
        assert_eq!(wait(&slot), Waited::Collected(Ok(())));
        slot.shutdown();
        assert_eq!(worker.join().unwrap(), 1);
    });
}

#[test]
fn wait_departed_returns_after_the_last_leave() {
    loom::model(|| {
        let barrier = Arc::new(SphereBarrier::with_spin(2, Duration::ZERO));
        let other = {
            let b = barrier.clone();
            thread::spawn(move || b.leave())
        };
        barrier.leave();
        barrier.wait_departed();
        assert_eq!(barrier.parties(), 0);
        other.join().unwrap();
    });
}

#[test]
fn a_departure_waiter_survives_a_generation_opening() {
    // One participant leaves and waits for the other to be gone; the other
    // then arrives at the barrier alone (which opens a generation: it is the
    // last of the remaining parties) and leaves. The sleeper must be woken,
    // whichever happened first.
    loom::model(|| {
        let barrier = Arc::new(SphereBarrier::with_spin(2, Duration::ZERO));
        let other = {
            let b = barrier.clone();
            thread::spawn(move || {
                assert!(b.wait().is_ok());
                b.leave();
            })
        };
        barrier.leave();
        barrier.wait_departed();
        other.join().unwrap();
    });
}

/// Round 2 on the re-armed barrier, while round 1's straggler may still be
/// inside `leave`: the caller and a fresh participant each wait once and
/// leave, and the caller joins. Both waits pass with exactly one leader, and
/// the join returns only once both have left.
fn round_two(barrier: &Arc<SphereBarrier>) {
    barrier.rearm(2);
    let other = {
        let b = barrier.clone();
        thread::spawn(move || {
            let led = b.wait();
            b.leave();
            led
        })
    };
    let mine = barrier.wait();
    barrier.leave();
    barrier.wait_departed();
    assert_eq!(
        barrier.parties(),
        0,
        "the join returned before the last leave"
    );
    let theirs = other.join().unwrap();
    assert!(
        matches!(
            (mine, theirs),
            (Ok(true), Ok(false)) | (Ok(false), Ok(true))
        ),
        "round 2: mine {mine:?} theirs {theirs:?}, want both Ok and one leader"
    );
}

#[test]
fn a_last_leaver_still_waking_the_join_cannot_disturb_the_next_round() {
    // Round 1: the straggler's leave may be the last departure, and its
    // lock and notify of the departure waiter may come after the caller's
    // join returned and round 2 began on the same (re-armed) barrier.
    loom::model(|| {
        let barrier = Arc::new(SphereBarrier::with_spin(2, Duration::ZERO));
        let straggler = {
            let b = barrier.clone();
            thread::spawn(move || b.leave())
        };
        barrier.leave();
        barrier.wait_departed();
        round_two(&barrier);
        straggler.join().unwrap();
    });
}

#[test]
fn a_late_generation_opening_cannot_disturb_the_next_round() {
    // Round 1: the caller waits at the barrier; the straggler's leave may
    // release it by opening the generation, and its lock and notify of the
    // generation's waiters may come after the caller left, joined and began
    // round 2 on the same (re-armed) barrier.
    loom::model(|| {
        let barrier = Arc::new(SphereBarrier::with_spin(2, Duration::ZERO));
        let straggler = {
            let b = barrier.clone();
            thread::spawn(move || b.leave())
        };
        assert!(barrier.wait().is_ok());
        barrier.leave();
        barrier.wait_departed();
        round_two(&barrier);
        straggler.join().unwrap();
    });
}

#[test]
fn barrier_releases_both_parties_with_one_leader() {
    loom::model(|| {
        let barrier = Arc::new(SphereBarrier::with_spin(2, Duration::ZERO));
        let other = {
            let b = barrier.clone();
            thread::spawn(move || b.wait())
        };
        let mine = barrier.wait().unwrap();
        let theirs = other.join().unwrap().unwrap();
        assert!(mine != theirs, "exactly one leader");
    });
}

#[test]
fn barrier_leave_releases_a_waiter() {
    loom::model(|| {
        let barrier = Arc::new(SphereBarrier::with_spin(2, Duration::ZERO));
        let other = {
            let b = barrier.clone();
            thread::spawn(move || b.wait())
        };
        barrier.leave();
        assert!(other.join().unwrap().is_ok());
    });
}

#[test]
fn barrier_break_releases_a_waiter_with_an_error() {
    loom::model(|| {
        let barrier = Arc::new(SphereBarrier::with_spin(2, Duration::ZERO));
        let other = {
            let b = barrier.clone();
            thread::spawn(move || b.wait())
        };
        barrier.break_barrier();
        assert!(other.join().unwrap().is_err());
    });
}

// ---- rounds on the go line and the done line (src/round_lines.rs) --------

use sphere_pool::loom_api::{Bell, Doorbell, Next, RoundLines, round_of};

/// A pool's doorbell, its round lines for `participants`, and its barrier.
fn round_parts(participants: usize) -> (Bell, Arc<RoundLines<u32>>, Arc<SphereBarrier>) {
    let bell: Bell = Arc::new(crossbeam_utils::CachePadded::new(Doorbell::new()));
    let lines = Arc::new(RoundLines::new(participants, bell.clone()));
    let barrier = Arc::new(SphereBarrier::with_spin(participants, Duration::ZERO));
    (bell, lines, barrier)
}

/// What a round's caller owns and its shares write: one cell per
/// participant, on the caller's side (as the stack a task borrows).
struct Cells([loom::cell::UnsafeCell<u32>; 2]);
// SAFETY: loom checks every access to the cells (a race fails the model).
unsafe impl Sync for Cells {}
type Record = Arc<Cells>;

fn record() -> Record {
    Arc::new(Cells([0, 0].map(loom::cell::UnsafeCell::new)))
}

impl Cells {
    fn set(&self, i: usize, v: u32) {
        self.0[i].with_mut(|c| unsafe { *c = v });
    }
    fn get(&self, i: usize) -> u32 {
        self.0[i].with_mut(|c| unsafe { *c })
    }
}

/// The pool's sphere loop (`pool.rs`, `sphere_main`) over the round lines:
/// wait for a job or a new epoch word (spinning once, then sleeping on the
/// doorbell), join the round (an optional one only if it is still open),
/// run its share (`share(round, task)`), depart. Runs until its slot is
/// shut down; returns the shares it ran.
fn round_sphere(
    index: usize,
    bell: &Bell,
    lines: &Arc<RoundLines<u32>>,
    barrier: &Arc<SphereBarrier>,
    share: impl Fn(u32, u32) + Send + 'static,
) -> RoundSphere {
    let slot = Arc::new(Slot::with_doorbell(bell.clone(), index));
    let handle = {
        let (slot, lines, barrier) = (slot.clone(), lines.clone(), barrier.clone());
        // Before any round opens, as in the pool (its constructor waits
        // until every sphere has read the epoch).
        let mut seen = lines.epoch();
        thread::spawn(move || {
            let mut spin = AdaptiveSpin::new(Duration::ZERO, false);
            let mut ran = 0;
            let mut handled = 0;
            loop {
                match slot.next_job_or(&mut spin, Instant::now(), || lines.epoch() != seen) {
                    Next::Other(_) => {
                        seen = lines.epoch();
                        // None: an optional round closed, or already run.
                        if let Some(word) = lines.join_round(seen, &mut handled) {
                            let round = round_of(word);
                            // SAFETY: the round is open until this share departs.
                            let task = unsafe { lines.task(|t| *t) };
                            share(round, task);
                            ran += 1;
                            lines.depart(round, &barrier);
                        }
                    }
                    Next::Job(..) => panic!("no job is dispatched in these models"),
                    Next::Exit => return ran,
                }
            }
        })
    };
    (slot, handle)
}

/// A sphere's slot and its thread (which returns the shares it ran).
type RoundSphere = (Arc<Slot<u32>>, thread::JoinHandle<usize>);

/// A caller's round lines with one sphere (`round_sphere`) that writes the
/// task of each share it runs into the record's first cell.
fn one_recording_sphere() -> (
    Arc<RoundLines<u32>>,
    Arc<SphereBarrier>,
    Record,
    RoundSphere,
) {
    let (bell, lines, barrier) = round_parts(2);
    let record = record();
    let sphere = {
        let record = record.clone();
        round_sphere(0, &bell, &lines, &barrier, move |_, task| {
            record.set(0, task);
        })
    };
    (lines, barrier, record, sphere)
}

#[test]
fn a_round_reaches_a_sleeping_sphere_and_the_join_sees_its_share_done() {
    // Two rounds of caller + one sphere. The sphere writes the task it read
    // into the caller's record; the caller reads it after the join (loom
    // reports a race if the share's write is not ordered before the join,
    // e.g. if the share touched the record after its departure), and the
    // second round's task must not be the first's.
    loom::model(|| {
        let (lines, barrier, record, (slot, sphere)) = one_recording_sphere();
        for task in [7, 8] {
            let opened = lines.open(task);
            lines.join(opened, &barrier, Duration::ZERO, false);
            assert_eq!(record.get(0), task);
        }
        slot.shutdown();
        assert_eq!(sphere.join().unwrap(), 2);
    });
}

#[test]
fn a_round_wakes_every_sleeping_sphere_with_one_wake_call() {
    // Two spheres that may be asleep when the round opens: the round makes
    // at most one wake call (waking them one by one would make two), and
    // both shares run.
    loom::model(|| {
        let (bell, lines, barrier) = round_parts(3);
        let record = record();
        let spheres: Vec<_> = (0..2)
            .map(|i| {
                let record = record.clone();
                round_sphere(i, &bell, &lines, &barrier, move |_, task| {
                    record.set(i, task);
                })
            })
            .collect();
        let before = bell.wake_calls();
        let opened = lines.open(5);
        let calls = bell.wake_calls() - before;
        lines.join(opened, &barrier, Duration::ZERO, false);
        assert!(calls <= 1, "the round made {calls} wake calls");
        assert_eq!([record.get(0), record.get(1)], [5, 5]);
        for (slot, sphere) in spheres {
            slot.shutdown();
            assert_eq!(sphere.join().unwrap(), 1);
        }
    });
}

#[test]
fn a_barrier_engaged_after_a_share_departed_does_not_wait_for_it() {
    // Round 1: the sphere's share calls the barrier; the caller's returns
    // at once. With one sphere the done word is on the go line and the
    // caller does not depart: its join (spin 0: it goes to sleep at once)
    // must leave the barrier when it sees it engaged, before or after it
    // sleeps, and `engage` must wake it (or the sphere waits for ever).
    // The join must re-arm the barrier: in round 2 both call it, and
    // exactly one of them leads.
    loom::model(|| {
        let (bell, lines, barrier) = round_parts(2);
        let leaders = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
        let (slot, sphere) = {
            let (lines2, barrier2, leaders) = (lines.clone(), barrier.clone(), leaders.clone());
            round_sphere(0, &bell, &lines, &barrier, move |epoch, task| {
                lines2.engage(epoch, &barrier2);
                // Round 1 may release it by the caller's departure (no
                // leader then); round 2's leader is counted.
                if barrier2.wait().expect("not broken") && task == 2 {
                    leaders.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            })
        };
        let opened = lines.open(1);
        lines.join(opened, &barrier, Duration::ZERO, false);
        assert_eq!(barrier.parties(), 2, "the join re-arms the barrier");
        let opened = lines.open(2);
        lines.engage(opened.epoch, &barrier);
        let mine = barrier.wait().expect("not broken");
        lines.join(opened, &barrier, Duration::ZERO, false);
        let round2 = leaders.load(std::sync::atomic::Ordering::SeqCst) + usize::from(mine);
        assert_eq!(round2, 1, "exactly one leader in round 2");
        slot.shutdown();
        assert_eq!(sphere.join().unwrap(), 2);
    });
}

#[test]
fn a_dispatch_racing_a_round_is_refused_or_makes_the_round_busy() {
    // The round sets its flag, then checks the slot; the dispatcher claims,
    // then checks the flag (all SeqCst). They cannot both go on: either the
    // dispatch is refused (RoundInProgress) or the round finds the job
    // (Busy), and a refused dispatch leaves the slot free.
    loom::model(|| {
        let slot = Arc::new(Slot::<u32>::new());
        let flag = Arc::new(loom::sync::atomic::AtomicBool::new(false));
        let dispatcher = {
            let (slot, flag) = (slot.clone(), flag.clone());
            thread::spawn(move || {
                let claimed = slot.claim_outside_round(0, &flag);
                if claimed.is_ok() {
                    slot.publish(1);
                }
                claimed
            })
        };
        flag.swap(true, std::sync::atomic::Ordering::SeqCst);
        let round = slot.idle_for_round(0);
        let dispatch = dispatcher.join().unwrap();
        assert!(
            dispatch.is_err() || round.is_err(),
            "both went on: dispatch {dispatch:?}, round {round:?}"
        );
        match dispatch {
            Ok(()) => assert_eq!(round, Err(Error::Busy { sphere: 0 })),
            Err(e) => {
                assert_eq!(e, Error::RoundInProgress);
                assert_eq!(round, Ok(()), "a refused dispatch leaves the slot free");
            }
        }
    });
}

// ---- optional rounds on the go line (parallel_for) ------------------------

/// Optional rounds (parallel_for's) of `tasks`, then a round of every sphere
/// (run_all's), with a caller and one sphere. The caller closes each
/// optional round after its own share and waits only for a sphere that
/// started; the sphere may sleep through any of them, or start one late
/// (even a later one than the epoch word it saw). A sphere that read a task
/// after the caller moved on would race its next write (loom reports it),
/// the join must see the share it waited for, and the last round must run
/// on the sphere whatever happened before.
fn optional_rounds_then_a_round_of_every_sphere(tasks: &'static [u32]) {
    loom::model(move || {
        let (lines, barrier, record, (slot, sphere)) = one_recording_sphere();
        let (mut started, mut last) = (0, 0);
        for &task in tasks {
            let opened = lines.open_optional(task);
            let now = lines.close(&barrier);
            lines.join(opened, &barrier, Duration::ZERO, false);
            if now == 1 {
                last = task;
            }
            assert_eq!(record.get(0), last);
            started += now;
        }
        let opened = lines.open(9);
        lines.join(opened, &barrier, Duration::ZERO, false);
        assert_eq!(record.get(0), 9);
        slot.shutdown();
        assert_eq!(sphere.join().unwrap(), 1 + started as usize);
    });
}

#[test]
fn an_optional_round_runs_or_skips_the_share_and_the_next_round_reaches_the_sphere() {
    optional_rounds_then_a_round_of_every_sphere(&[7]);
}

#[test]
fn a_sphere_late_for_two_optional_rounds_joins_at_most_the_open_one() {
    optional_rounds_then_a_round_of_every_sphere(&[5, 6]);
}

#[test]
fn a_sphere_that_starts_a_round_before_seeing_its_epoch_word_does_not_start_it_twice() {
    // The caller resets the start word before it bumps the epoch word, so a
    // sphere can start round 2 from the start word while it still reads
    // round 1's epoch word, and read round 2's word afterwards. A sphere
    // that then starts round 2 again would run its share twice and depart
    // twice (the caller's count of starts would exceed the spheres). The
    // sphere here polls the epoch a few times (no sleep, no shutdown: every
    // round is optional, so it may stop at any time).
    loom::model(|| {
        let (_bell, lines, barrier) = round_parts(2);
        let runs = Arc::new(loom::sync::atomic::AtomicU32::new(0));
        let sphere = {
            let (lines, barrier, runs) = (lines.clone(), barrier.clone(), runs.clone());
            thread::spawn(move || {
                let (mut seen, mut handled) = (0, 0);
                for _ in 0..4 {
                    let word = lines.epoch();
                    if word == seen {
                        loom::thread::yield_now();
                        continue;
                    }
                    seen = word;
                    if let Some(word) = lines.join_round(word, &mut handled) {
                        // SAFETY: the round is open until this share departs.
                        let task = unsafe { lines.task(|t| *t) };
                        runs.fetch_add(task, loom::sync::atomic::Ordering::Relaxed);
                        lines.depart(round_of(word), &barrier);
                    }
                }
            })
        };
        let mut expected = 0;
        for task in [1, 10] {
            let opened = lines.open_optional(task);
            let started = lines.close(&barrier);
            assert!(started <= 1, "the sphere started round {task} twice");
            lines.join(opened, &barrier, Duration::ZERO, false);
            expected += started * task;
        }
        sphere.join().unwrap();
        assert_eq!(runs.load(loom::sync::atomic::Ordering::Relaxed), expected);
    });
}
