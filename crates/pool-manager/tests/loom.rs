//! Loom model checks of the hand-offs the role pools are built on: the
//! bounded queue with its back-pressure, the parker workers sleep on (no
//! lost wake-up between a push and a worker's sleep), the fork-join round
//! (the caller never frees the job while a worker is inside), and the task
//! cell a handle waits on.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p pool-manager --release --test loom`
//! (`make loom`). Loom explores the interleavings of the threads below (up to
//! the preemption bound) and fails on a deadlock (a lost wake-up leaves a
//! thread asleep for ever), a data race on a cell, or an assertion.
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::thread;
use pool_manager::loom_api::{
    Parker, PushError, Role, RoundSlot, TaskCell, TaskError, TaskQueue, Wait,
};

/// A worker as the crews run it: read the epoch, look for work, sleep only
/// if the epoch did not move. Returns the jobs it ran, in order.
fn worker(queue: &TaskQueue<u32>, parker: &Parker, done: &AtomicBool) -> Vec<u32> {
    let mut ran = Vec::new();
    loop {
        let seen = parker.epoch();
        if let Some(e) = queue.pop() {
            ran.push(e.job);
            continue;
        }
        if done.load(Ordering::Acquire) {
            while let Some(e) = queue.pop() {
                ran.push(e.job);
            }
            return ran;
        }
        parker.park(seen, None);
    }
}

/// A submitter as `PoolCore::push` does it: queue, then notify.
fn submit(queue: &TaskQueue<u32>, parker: &Parker, job: u32, wait: Wait) -> Result<(), PushError> {
    queue.push(0, job, wait).map_err(|(e, _)| e)?;
    parker.notify_one();
    Ok(())
}

#[test]
fn pushed_jobs_always_reach_a_sleeping_worker() {
    loom::model(|| {
        let queue = Arc::new(TaskQueue::new(4));
        let parker = Arc::new(Parker::new());
        let done = Arc::new(AtomicBool::new(false));
        let w = {
            let (q, p, d) = (queue.clone(), parker.clone(), done.clone());
            thread::spawn(move || worker(&q, &p, &d))
        };
        submit(&queue, &parker, 1, Wait::No).unwrap();
        submit(&queue, &parker, 2, Wait::No).unwrap();
        done.store(true, Ordering::Release);
        parker.notify_all();
        assert_eq!(w.join().unwrap(), vec![1, 2]);
    });
}

#[test]
fn a_full_queue_blocks_the_submitter_until_a_worker_takes_a_job() {
    loom::model(|| {
        let queue = Arc::new(TaskQueue::new(1));
        let parker = Arc::new(Parker::new());
        let done = Arc::new(AtomicBool::new(false));
        let w = {
            let (q, p, d) = (queue.clone(), parker.clone(), done.clone());
            thread::spawn(move || worker(&q, &p, &d))
        };
        submit(&queue, &parker, 1, Wait::Until(None)).unwrap();
        submit(&queue, &parker, 2, Wait::Until(None)).unwrap();
        done.store(true, Ordering::Release);
        parker.notify_all();
        assert_eq!(w.join().unwrap(), vec![1, 2]);
    });
}

#[test]
fn closing_the_queue_releases_a_blocked_submitter() {
    loom::model(|| {
        let queue = Arc::new(TaskQueue::new(1));
        queue.push(0, 1u32, Wait::No).unwrap();
        let s = {
            let q = queue.clone();
            thread::spawn(move || q.push(0, 2, Wait::Until(None)).map_err(|(e, _)| e))
        };
        queue.close();
        assert_eq!(s.join().unwrap(), Err(PushError::Closed));
        assert_eq!(queue.drain().len(), 1);
    });
}

/// A round's job: a value the caller changes once the round is closed.
struct Job {
    data: UnsafeCell<u32>,
    shares: AtomicUsize,
}

fn run_share(job: &Job) {
    // A read that races with the caller's write if `close` returned early.
    job.data.with(|d| assert_eq!(unsafe { *d }, 7));
    job.shares.fetch_add(1, Ordering::Relaxed);
}

#[test]
fn the_caller_frees_a_round_only_after_every_joined_worker_left() {
    loom::model(|| {
        let slot: Arc<RoundSlot<Job>> = Arc::new(RoundSlot::new());
        let joined = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (slot, joined) = (slot.clone(), joined.clone());
                thread::spawn(move || {
                    let mut last_gen = 0;
                    if let Some(j) = slot.try_join(&mut last_gen) {
                        run_share(j.job());
                        joined.fetch_add(1, Ordering::Relaxed);
                        // A worker joins each round once.
                        assert!(slot.try_join(&mut last_gen).is_none());
                    }
                })
            })
            .collect();
        let job = Box::new(Job {
            data: UnsafeCell::new(7),
            shares: AtomicUsize::new(0),
        });
        slot.open(&*job);
        run_share(&job);
        slot.close(std::time::Duration::ZERO);
        // Every worker that joined has finished its share.
        let shares = job.shares.load(Ordering::Relaxed);
        job.data.with_mut(|d| unsafe { *d = 0 });
        drop(job);
        workers.into_iter().for_each(|w| w.join().unwrap());
        assert_eq!(shares, 1 + joined.load(Ordering::Relaxed));
    });
}

#[test]
fn a_worker_can_join_each_of_two_rounds_but_never_a_closed_one() {
    loom::model(|| {
        let slot: Arc<RoundSlot<Job>> = Arc::new(RoundSlot::new());
        let w = {
            let slot = slot.clone();
            thread::spawn(move || {
                let mut last_gen = 0;
                let mut joined = 0;
                for _ in 0..3 {
                    if let Some(j) = slot.try_join(&mut last_gen) {
                        run_share(j.job());
                        joined += 1;
                    }
                    thread::yield_now();
                }
                joined
            })
        };
        for _ in 0..2 {
            let job = Job {
                data: UnsafeCell::new(7),
                shares: AtomicUsize::new(0),
            };
            slot.open(&job);
            slot.close(std::time::Duration::ZERO);
            job.data.with_mut(|d| unsafe { *d = 0 });
        }
        assert!(w.join().unwrap() <= 2);
    });
}

#[test]
fn a_task_cell_delivers_its_outcome_once() {
    loom::model(|| {
        let cell = Arc::new(TaskCell::new());
        let c = cell.clone();
        let t = thread::spawn(move || c.complete(Ok(5u32)));
        // A timed wait may time out (loom's timed waits can); then wait again.
        let first = cell.wait(Some(std::time::Instant::now()));
        let value = match first {
            Err(TaskError::Timeout) => cell.wait(None),
            other => other,
        };
        assert_eq!(value, Ok(5));
        assert_eq!(cell.wait(None), Err(TaskError::Collected));
        t.join().unwrap();
        // A second completion (e.g. a cancellation racing a run) is ignored.
        cell.complete(Err(TaskError::Cancelled { role: Role::Ai }));
        assert!(cell.is_finished());
    });
}
