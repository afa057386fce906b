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
