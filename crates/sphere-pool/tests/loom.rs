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
fn revoke_races_the_sphere_and_exactly_one_of_them_gets_the_job() {
    loom::model(|| {
        let slot = Arc::new(Slot::new());
        let worker = spawn_sphere(&slot);
        slot.dispatch(0, 1).unwrap();
        let revoked = slot.revoke();
        match revoked {
            Some(job) => {
                assert_eq!(job, 1);
                assert_eq!(wait(&slot), Waited::Nothing);
            }
            None => assert_eq!(wait(&slot), Waited::Collected(Ok(()))),
        }
        // The slot is free again either way.
        slot.dispatch(0, 1).unwrap();
        assert_eq!(wait(&slot), Waited::Collected(Ok(())));
        slot.shutdown();
        let ran = worker.join().unwrap();
        assert_eq!(ran, if revoked.is_some() { 1 } else { 2 });
    });
}

#[test]
fn revoking_wakes_another_thread_parked_on_the_job() {
    loom::model(|| {
        let slot = Arc::new(Slot::<u32>::new());
        // No sphere: the job stays READY until it is revoked.
        slot.dispatch(0, 1).unwrap();
        let waiter = {
            let slot = slot.clone();
            thread::spawn(move || wait(&slot))
        };
        assert_eq!(slot.revoke(), Some(1));
        assert_eq!(waiter.join().unwrap(), Waited::Nothing);
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
fn a_share_frees_its_slot_before_it_leaves_so_the_next_fork_join_can_claim_it() {
    // The fork-join protocol on one slot: the sphere takes the share, frees
    // the slot, then leaves the barrier; the caller runs its own share,
    // leaves, and waits for every departure: the slot is free by then.
    loom::model(|| {
        let slot = Arc::new(Slot::<u32>::new());
        let barrier = Arc::new(SphereBarrier::with_spin(2, Duration::ZERO));
        let sphere = {
            let (slot, barrier) = (slot.clone(), barrier.clone());
            thread::spawn(move || {
                let mut spin = AdaptiveSpin::new(Duration::ZERO, false);
                let mut idle_since = Instant::now();
                while let Some((share, started)) = slot.next_job(&mut spin, idle_since) {
                    idle_since = slot.release(false, started);
                    // Only the first job is a share of this fork-join.
                    if share == 7 {
                        barrier.leave();
                    }
                }
            })
        };
        slot.dispatch(0, 7).unwrap();
        barrier.leave();
        barrier.wait_departed();
        assert_eq!(
            slot.dispatch(0, 8),
            Ok(()),
            "the slot is free after the join"
        );
        // The second job is either taken back or freed by the sphere.
        assert!(slot.revoke().is_some() || wait(&slot) == Waited::Nothing);
        slot.shutdown();
        sphere.join().unwrap();
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

use sphere_pool::loom_api::{Bell, Doorbell, Next, RoundLines};

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
/// wait for a job or a new epoch (spinning once, then sleeping on the
/// doorbell), run the round's share (`share(epoch, task)`), depart. Runs
/// until its slot is shut down; returns the shares it ran.
fn round_sphere(
    index: usize,
    bell: &Bell,
    lines: &Arc<RoundLines<u32>>,
    barrier: &Arc<SphereBarrier>,
    share: impl Fn(u32, u32) + Send + 'static,
) -> (Arc<Slot<u32>>, thread::JoinHandle<usize>) {
    let slot = Arc::new(Slot::with_doorbell(bell.clone(), index));
    let handle = {
        let (slot, lines, barrier) = (slot.clone(), lines.clone(), barrier.clone());
        // Before any round opens, as in the pool (its constructor waits
        // until every sphere has read the epoch).
        let mut seen = lines.epoch();
        thread::spawn(move || {
            let mut spin = AdaptiveSpin::new(Duration::ZERO, false);
            let mut ran = 0;
            loop {
                match slot.next_job_or(&mut spin, Instant::now(), || lines.epoch() != seen) {
                    Next::Other(_) => {
                        seen = lines.epoch();
                        // SAFETY: the round is open until this share departs.
                        let task = unsafe { lines.task(|t| *t) };
                        share(seen, task);
                        ran += 1;
                        lines.depart(seen, &barrier);
                    }
                    Next::Job(..) => panic!("no job is dispatched in these models"),
                    Next::Exit => return ran,
                }
            }
        })
    };
    (slot, handle)
}

#[test]
fn a_round_reaches_a_sleeping_sphere_and_the_join_sees_its_share_done() {
    // Two rounds of caller + one sphere. The sphere writes the task it read
    // into the caller's record; the caller reads it after the join (loom
    // reports a race if the share's write is not ordered before the join,
    // e.g. if the share touched the record after its departure), and the
    // second round's task must not be the first's.
    loom::model(|| {
        let (bell, lines, barrier) = round_parts(2);
        let record = record();
        let (slot, sphere) = {
            let record = record.clone();
            round_sphere(0, &bell, &lines, &barrier, move |_, task| {
                record.set(0, task);
            })
        };
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
