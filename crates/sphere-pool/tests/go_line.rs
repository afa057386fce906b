//! The go-line round (`run_all`, `try_run_all`) at its edges: the task
//! stored by value (drop exactly once per call however the round ends, its
//! alignment, zero-sized tasks), panics whose payload panics when dropped,
//! and dispatchers racing rounds from other threads.
#![cfg(not(loom))]

use sphere_pool::{Error, Participant, SpherePool};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread::ThreadId;
use std::time::Duration;

/// Runs `f` on a thread of its own and fails if it does not end within
/// `secs` (a hang becomes a failure, not a stuck test run).
fn within<R: Send + 'static>(secs: u64, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    let runner = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(r) => r,
        // `f` panicked: report its panic.
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            std::panic::resume_unwind(runner.join().expect_err("ended without a result"))
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("did not end within {secs} s: hung"),
    }
}

/// A panic payload whose destructor panics too.
struct PanickyPayload;
impl Drop for PanickyPayload {
    fn drop(&mut self) {
        panic!("the payload's drop panicked");
    }
}

/// A round in which the share `panics` picks panics with a payload whose
/// drop panics too: the round reports the panic, and the pool's next round
/// runs every share.
fn a_round_with_a_panicky_payload_then_a_normal_round(panics: fn(&Participant<'_>) -> bool) {
    within(20, move || {
        let pool = SpherePool::new(2).unwrap();
        let r = pool.run_all(|p| {
            if panics(p) {
                std::panic::panic_any(PanickyPayload);
            }
        });
        assert!(matches!(r, Err(Error::Panicked { .. })), "{r:?}");
        let ran = AtomicUsize::new(0);
        pool.run_all(|_| {
            ran.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 3);
    });
}

#[test]
fn a_sphere_share_whose_panic_payload_panics_on_drop_does_not_kill_the_sphere() {
    a_round_with_a_panicky_payload_then_a_normal_round(|p| p.index() == 0);
}

#[test]
fn the_callers_share_whose_panic_payload_panics_on_drop_does_not_hang_the_round() {
    a_round_with_a_panicky_payload_then_a_normal_round(|p| p.is_caller());
}

#[test]
fn a_dispatched_job_whose_panic_payload_panics_on_drop_is_reported_by_wait() {
    within(20, || {
        let pool = SpherePool::new(1).unwrap();
        pool.dispatch(0, || std::panic::panic_any(PanickyPayload))
            .unwrap();
        let r = pool.wait(0);
        assert!(matches!(r, Err(Error::Panicked { .. })), "{r:?}");
        pool.dispatch(0, || {}).unwrap();
        pool.wait(0).unwrap();
    });
}

/// A captured value that counts its drops and remembers the thread of the
/// last one.
struct Tracked {
    drops: Arc<AtomicUsize>,
    dropped_on: Arc<std::sync::Mutex<Option<ThreadId>>>,
}

impl Tracked {
    fn new() -> Self {
        Self {
            drops: Arc::default(),
            dropped_on: Arc::default(),
        }
    }
    fn probe(&self) -> (Arc<AtomicUsize>, Arc<std::sync::Mutex<Option<ThreadId>>>) {
        (self.drops.clone(), self.dropped_on.clone())
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
        *self.dropped_on.lock().unwrap() = Some(std::thread::current().id());
    }
}

/// How a round of a task capturing a `Tracked` is made to end.
#[derive(Debug, Clone, Copy)]
enum Ending {
    Normal,
    SpherePanics,
    CallerPanics,
    SphereFails,
    BarrierThenPanic,
}

/// What a share of a round ending as `ending` does at its end.
fn end_share(p: &Participant<'_>, ending: Ending) -> Result<(), i32> {
    match ending {
        Ending::SpherePanics if p.index() == 0 => panic!("sphere share"),
        Ending::CallerPanics if p.is_caller() => panic!("caller share"),
        Ending::SphereFails if p.index() == 0 => Err(5),
        Ending::BarrierThenPanic => {
            if p.index() == 0 {
                panic!("before the barrier");
            }
            let _ = p.try_barrier();
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Runs one round of a task that owns `tracked` (and, if `big`, six more
/// words: too big for the go line, which then holds a reference) ending as
/// `ending`; returns how many shares ran and the round's result.
fn round_with(
    pool: &SpherePool,
    tracked: Tracked,
    big: bool,
    ending: Ending,
) -> (usize, Result<(), Error>) {
    let ran = AtomicUsize::new(0);
    let ran_ref = &ran;
    let r = if big {
        let pad = [7u64; 6];
        let task = move |p: &Participant<'_>| {
            let _keep = &tracked;
            assert_eq!(pad.iter().sum::<u64>(), 42);
            ran_ref.fetch_add(1, Ordering::SeqCst);
            end_share(p, ending)
        };
        assert!(size_of_val(&task) > 4 * size_of::<usize>());
        pool.try_run_all(task)
    } else {
        let task = move |p: &Participant<'_>| {
            let _keep = &tracked;
            ran_ref.fetch_add(1, Ordering::SeqCst);
            end_share(p, ending)
        };
        assert!(size_of_val(&task) <= 4 * size_of::<usize>());
        pool.try_run_all(task)
    };
    (ran.load(Ordering::SeqCst), r)
}

#[test]
fn the_round_task_is_dropped_once_on_the_callers_thread_however_the_round_ends() {
    let pool = SpherePool::new(3).unwrap();
    for big in [false, true] {
        for ending in [
            Ending::Normal,
            Ending::SpherePanics,
            Ending::CallerPanics,
            Ending::SphereFails,
            Ending::BarrierThenPanic,
        ] {
            let tracked = Tracked::new();
            let (drops, on) = tracked.probe();
            let (ran, r) = round_with(&pool, tracked, big, ending);
            assert_eq!(ran, 4, "{ending:?} big={big}");
            assert_eq!(
                r.is_ok(),
                matches!(ending, Ending::Normal),
                "{ending:?}: {r:?}"
            );
            assert_eq!(
                drops.load(Ordering::SeqCst),
                1,
                "{ending:?} big={big}: drops"
            );
            assert_eq!(*on.lock().unwrap(), Some(std::thread::current().id()));
        }
    }
    // The last round's task is not dropped again with the pool.
    let tracked = Tracked::new();
    let (drops, _) = tracked.probe();
    round_with(&pool, tracked, false, Ending::Normal).1.unwrap();
    drop(pool);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "dropped again with the pool"
    );
}

#[test]
fn a_refused_or_nested_round_drops_its_task_once_without_running_it_on_spheres() {
    let pool = SpherePool::new(2).unwrap();
    // Busy: a sphere holds a job not waited for.
    let gate = Arc::new(Barrier::new(2));
    let g = gate.clone();
    pool.dispatch(1, move || {
        g.wait();
    })
    .unwrap();
    let tracked = Tracked::new();
    let (drops, _) = tracked.probe();
    let (ran, r) = round_with(&pool, tracked, false, Ending::Normal);
    assert!(matches!(r, Err(Error::Busy { sphere: 1 })), "{r:?}");
    assert_eq!((ran, drops.load(Ordering::SeqCst)), (0, 1));
    gate.wait();
    pool.wait(1).unwrap();

    // RoundInProgress: another thread's round is running.
    let inside = Barrier::new(2);
    let release = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            pool.run_all(|p| {
                if p.is_caller() {
                    inside.wait();
                    while !release.load(Ordering::SeqCst) {
                        std::thread::yield_now();
                    }
                }
            })
            .unwrap();
        });
        inside.wait();
        for big in [false, true] {
            let tracked = Tracked::new();
            let (drops, _) = tracked.probe();
            let (ran, r) = round_with(&pool, tracked, big, Ending::Normal);
            assert!(matches!(r, Err(Error::RoundInProgress)), "{r:?}");
            assert_eq!((ran, drops.load(Ordering::SeqCst)), (0, 1), "big={big}");
        }
        release.store(true, Ordering::SeqCst);
    });

    // Nested: runs inline once, dropped once, inside every share.
    let nested_drops = AtomicUsize::new(0);
    pool.run_all(|_| {
        let tracked = Tracked::new();
        let (drops, _) = tracked.probe();
        let (ran, r) = round_with(&pool, tracked, false, Ending::Normal);
        r.unwrap();
        assert_eq!(ran, 1);
        nested_drops.fetch_add(drops.load(Ordering::SeqCst), Ordering::SeqCst);
    })
    .unwrap();
    assert_eq!(nested_drops.load(Ordering::SeqCst), 3);
}

#[test]
fn a_task_capturing_an_over_aligned_value_sees_it_aligned() {
    // Each task captures one value and nothing else, so that its size fits
    // the go line's four words and only its alignment decides.
    #[repr(align(16))]
    struct Pair(u8);
    #[repr(align(32))]
    struct Half(u8);
    #[repr(align(64))]
    struct Line(u8);
    static MISALIGNED: AtomicUsize = AtomicUsize::new(0);
    static RAN: AtomicUsize = AtomicUsize::new(0);
    fn check<T>(at: &T) {
        if (at as *const T as usize) % align_of::<T>() != 0 {
            MISALIGNED.fetch_add(1, Ordering::SeqCst);
        }
        RAN.fetch_add(1, Ordering::SeqCst);
    }
    let pool = SpherePool::new(3).unwrap();
    for _ in 0..20 {
        let pair = Pair(1);
        pool.run_all(move |_| {
            check(&pair);
            assert_eq!(pair.0, 1);
        })
        .unwrap();
        let half = Half(2);
        pool.run_all(move |_| {
            check(&half);
            assert_eq!(half.0, 2);
        })
        .unwrap();
        let line = Line(3);
        pool.run_all(move |_| {
            check(&line);
            assert_eq!(line.0, 3);
        })
        .unwrap();
        let wide = 4u128;
        pool.run_all(move |_| check(&wide)).unwrap();
    }
    assert_eq!(RAN.load(Ordering::SeqCst), 20 * 4 * 4);
    assert_eq!(
        MISALIGNED.load(Ordering::SeqCst),
        0,
        "shares saw a misaligned capture"
    );
}

#[test]
fn a_zero_sized_task_with_a_destructor_runs_everywhere_and_drops_once() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    struct Zst;
    impl Drop for Zst {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }
    let pool = SpherePool::new(2).unwrap();
    for round in 1..=3 {
        static RAN: AtomicUsize = AtomicUsize::new(0);
        let z = Zst;
        pool.run_all(move |_| {
            let _keep = &z;
            RAN.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        assert_eq!(RAN.load(Ordering::SeqCst), 3 * round);
        assert_eq!(DROPS.load(Ordering::SeqCst), round);
    }
}

/// A small xorshift generator, seeded per thread.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// What the racing threads count.
#[derive(Default)]
struct Counts {
    /// Round shares running now: a job that sees one overlaps a round.
    active_shares: AtomicUsize,
    overlaps: AtomicUsize,
    accepted: AtomicUsize,
    ran: AtomicUsize,
    rounds_run: AtomicUsize,
    rounds_refused: AtomicUsize,
}

#[test]
fn dispatchers_and_rounds_from_several_threads_lose_no_job_and_never_overlap() {
    const SECONDS: u64 = 3;
    within(SECONDS + 30, || {
        let pool = SpherePool::new(3).unwrap();
        let participants = pool.participants();
        let stop = AtomicBool::new(false);
        let counts = Arc::new(Counts::default());
        std::thread::scope(|s| {
            for t in 0..2u64 {
                let (pool, stop, c) = (&pool, &stop, &*counts);
                s.spawn(move || {
                    let mut rng = Rng(0x9e37_79b9 + t);
                    while !stop.load(Ordering::Relaxed) {
                        let shares = AtomicUsize::new(0);
                        let mode = rng.next() % 6;
                        if mode >= 4 {
                            // An optional round (parallel_for) in the mix.
                            parallel_for_among_others(pool, c, &mut rng);
                            continue;
                        }
                        let pad = [1u64; 6];
                        let share = |p: &Participant<'_>| {
                            c.active_shares.fetch_add(1, Ordering::SeqCst);
                            shares.fetch_add(1, Ordering::SeqCst);
                            let r = match mode {
                                // Too big for the go line: held by reference.
                                0 if pad.iter().sum::<u64>() != 6 => Err(1),
                                1 => p.try_barrier().map(|_| ()).map_err(|_| 9),
                                2 if p.index() == 1 => Err(3),
                                _ => Ok(()),
                            };
                            c.active_shares.fetch_sub(1, Ordering::SeqCst);
                            r
                        };
                        let r = pool.try_run_all(share);
                        let shares = shares.load(Ordering::SeqCst);
                        match r {
                            Ok(()) | Err(Error::JobFailed { code: 3, .. }) => {
                                assert_eq!(shares, participants, "{r:?}");
                                c.rounds_run.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(Error::Busy { .. } | Error::RoundInProgress) => {
                                assert_eq!(shares, 0, "a refused round ran shares: {r:?}");
                                c.rounds_refused.fetch_add(1, Ordering::Relaxed);
                                // Let the dispatchers in (two cores, seven threads).
                                std::thread::sleep(Duration::from_micros(rng.next() % 200));
                            }
                            Err(e) => panic!("round (mode {mode}): {e:?}"),
                        }
                    }
                });
            }
            for t in 0..3u64 {
                let (pool, stop, counts) = (&pool, &stop, &counts);
                s.spawn(move || {
                    let mut rng = Rng(0x1234_5678 + t);
                    while !stop.load(Ordering::Relaxed) {
                        let c = counts.clone();
                        let job = move || {
                            if c.active_shares.load(Ordering::SeqCst) != 0 {
                                c.overlaps.fetch_add(1, Ordering::SeqCst);
                            }
                            c.ran.fetch_add(1, Ordering::SeqCst);
                        };
                        let to = if t == 2 {
                            pool.dispatch_any(job).ok()
                        } else {
                            let sphere = (rng.next() % 3) as usize;
                            pool.dispatch(sphere, job).ok().map(|()| sphere)
                        };
                        if let Some(sphere) = to {
                            counts.accepted.fetch_add(1, Ordering::SeqCst);
                            // Another thread may collect it first: either
                            // way the job has ended when this returns.
                            pool.wait(sphere).unwrap();
                        } else {
                            std::thread::sleep(Duration::from_micros(rng.next() % 100));
                        }
                    }
                });
            }
            std::thread::sleep(Duration::from_secs(SECONDS));
            stop.store(true, Ordering::Relaxed);
        });
        let c = &*counts;
        eprintln!(
            "rounds run {}, refused {}, jobs {}",
            c.rounds_run.load(Ordering::SeqCst),
            c.rounds_refused.load(Ordering::SeqCst),
            c.accepted.load(Ordering::SeqCst)
        );
        assert_eq!(
            c.overlaps.load(Ordering::SeqCst),
            0,
            "a job ran during a round"
        );
        assert_eq!(
            c.accepted.load(Ordering::SeqCst),
            c.ran.load(Ordering::SeqCst)
        );
        assert!(c.rounds_run.load(Ordering::SeqCst) > 0);
        assert!(c.accepted.load(Ordering::SeqCst) > 0);
    });
}

#[test]
fn forty_seven_spheres_on_few_cores_mix_parallel_for_and_run_all_rounds() {
    // Heavily oversubscribed: most spheres sleep through most optional
    // rounds (parallel_for's), and every run_all round must still reach
    // each of them; every index runs once, and each sphere either ran or
    // was revoked in every optional round.
    within(60, || {
        let pool = SpherePool::new(47).unwrap();
        let spheres = pool.spheres() as u64;
        let (mut loops, mut alls) = (0u64, 0u64);
        for round in 0..300 {
            if round % 5 == 4 {
                let seen = AtomicUsize::new(0);
                pool.run_all(|_| {
                    seen.fetch_add(1, Ordering::Relaxed);
                })
                .unwrap();
                assert_eq!(seen.into_inner(), 48, "round {round}");
                alls += 1;
            } else {
                let len = 1 + round * 7 % 300;
                let marks: Vec<AtomicUsize> = (0..len).map(|_| AtomicUsize::new(0)).collect();
                pool.parallel_for(0..len, 1, |r| {
                    for i in r {
                        marks[i].fetch_add(1, Ordering::Relaxed);
                    }
                })
                .unwrap();
                assert!(
                    marks.iter().all(|m| m.load(Ordering::Relaxed) == 1),
                    "round {round}"
                );
                loops += 1;
            }
        }
        let stats = pool.stats().total;
        assert_eq!(
            stats.jobs + stats.revoked,
            (loops + alls) * spheres,
            "each sphere ran or was revoked in every loop, and ran every run_all: {stats:?}"
        );
    });
}

/// One `try_parallel_for` over a random range and grain, among the other
/// threads' rounds and dispatches: every index exactly once if it runs, none
/// if it is refused; a body failure stops it with that code.
fn parallel_for_among_others(pool: &SpherePool, c: &Counts, rng: &mut Rng) {
    let len = 1 + (rng.next() % 200) as usize;
    let grain = (rng.next() % 8) as usize;
    let fail_at = (rng.next() % 4 == 0).then(|| (rng.next() as usize) % len);
    let marks: Vec<AtomicUsize> = (0..len).map(|_| AtomicUsize::new(0)).collect();
    let r = pool.try_parallel_for(0..len, grain, |range| {
        c.active_shares.fetch_add(1, Ordering::SeqCst);
        let mut failed = Ok(());
        for i in range {
            marks[i].fetch_add(1, Ordering::SeqCst);
            if Some(i) == fail_at {
                failed = Err(7);
            }
        }
        c.active_shares.fetch_sub(1, Ordering::SeqCst);
        failed
    });
    let marks: Vec<usize> = marks.iter().map(|m| m.load(Ordering::SeqCst)).collect();
    match r {
        Ok(()) => {
            assert_eq!(fail_at, None);
            assert!(
                marks.iter().all(|&m| m == 1),
                "an index not run once: {marks:?}"
            );
            c.rounds_run.fetch_add(1, Ordering::Relaxed);
        }
        Err(Error::JobFailed { code: 7, .. }) => {
            assert!(fail_at.is_some());
            assert!(
                marks.iter().all(|&m| m <= 1),
                "an index run twice: {marks:?}"
            );
            c.rounds_run.fetch_add(1, Ordering::Relaxed);
        }
        Err(Error::Busy { .. } | Error::RoundInProgress) => {
            assert!(marks.iter().all(|&m| m == 0), "a refused loop ran");
            c.rounds_refused.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_micros(rng.next() % 200));
        }
        Err(e) => panic!("parallel_for: {e:?}"),
    }
}

/// A round whose shares meet at the barrier twice, counting each phase:
/// every participant must see every other's first phase before its second.
fn two_phase_round(pool: &SpherePool) {
    let n = pool.participants();
    let (first, late) = (AtomicUsize::new(0), AtomicUsize::new(0));
    pool.run_all(|p| {
        first.fetch_add(1, Ordering::SeqCst);
        p.barrier();
        if first.load(Ordering::SeqCst) != n {
            late.fetch_add(1, Ordering::SeqCst);
        }
        p.barrier();
    })
    .unwrap();
    assert_eq!((first.into_inner(), late.into_inner()), (n, 0));
}

#[test]
fn a_panic_before_at_or_after_the_barrier_fails_that_round_only() {
    within(30, || {
        let pool = SpherePool::new(3).unwrap();
        // (who panics, after how many barrier passes)
        for (who, passes) in [(3, 0), (3, 1), (0, 0), (0, 1), (2, 2)] {
            // Shares that found the barrier broken where the panic was.
            let broken = AtomicUsize::new(0);
            let r = pool.run_all(|p| {
                for pass in 0..3 {
                    if p.index() == who && pass == passes {
                        panic!("share {who} after {passes} barriers");
                    }
                    // Ends this share once the barrier is broken.
                    if p.try_barrier().is_err() {
                        if pass == passes {
                            broken.fetch_add(1, Ordering::SeqCst);
                        }
                        return;
                    }
                }
            });
            assert_eq!(
                broken.into_inner(),
                pool.participants() - 1,
                "({who}, {passes})"
            );
            match r {
                Err(Error::Panicked { message, .. }) => {
                    assert_eq!(message, format!("share {who} after {passes} barriers"));
                }
                other => panic!("({who}, {passes}): {other:?}"),
            }
            two_phase_round(&pool);
        }
    });
}

#[test]
fn pools_of_zero_to_two_hundred_spheres_run_rounds_awake_and_asleep_and_shut_down() {
    within(120, || {
        for spheres in [0, 1, 31, 32, 33, 64, 200] {
            let pool = SpherePool::with_config(sphere_pool::PoolConfig {
                threads: spheres + 1,
                max_spin: Duration::from_micros(20),
                ..Default::default()
            })
            .unwrap();
            assert_eq!(pool.spheres(), spheres);
            for _ in 0..3 {
                two_phase_round(&pool);
            }
            // Let the spheres fall asleep on the doorbell, then wake them
            // with a round, and with jobs to spheres sharing a bit (i, i + 32).
            std::thread::sleep(Duration::from_millis(20));
            two_phase_round(&pool);
            if spheres > 33 {
                std::thread::sleep(Duration::from_millis(20));
                let ran = Arc::new(AtomicUsize::new(0));
                for sphere in [1, 33] {
                    let ran = ran.clone();
                    pool.dispatch(sphere, move || {
                        ran.fetch_add(1, Ordering::SeqCst);
                    })
                    .unwrap();
                }
                pool.wait(1).unwrap();
                pool.wait(33).unwrap();
                assert_eq!(ran.load(Ordering::SeqCst), 2);
            }
            // Shut down right after a round, spheres still awake.
            two_phase_round(&pool);
            drop(pool);
        }
    });
}

#[test]
fn one_sphere_a_share_calls_the_barrier_long_after_the_other_returned() {
    // With one sphere the done word shares the go line and the caller does
    // not depart before its join: when the sphere's share engages the
    // barrier after the caller's returned (and its join went to sleep),
    // the caller must be woken to leave it, or the round hangs. The
    // other way round, the caller's share waits for a sphere that left.
    within(30, || {
        let pool = SpherePool::new(1).unwrap();
        for round in 0..16 {
            // The sphere is 0, the caller 1.
            let late = round % 2;
            let passed = AtomicUsize::new(0);
            pool.run_all(|p| {
                if p.index() == late {
                    if round % 4 < 2 {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    p.barrier();
                    p.barrier();
                    passed.fetch_add(1, Ordering::SeqCst);
                }
            })
            .unwrap();
            assert_eq!(passed.into_inner(), 1, "round {round}");
            two_phase_round(&pool);
        }
    });
}
