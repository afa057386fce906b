//! Behaviour of `SpherePool`: hand-off, errors, fork-join, parallel-for,
//! shutdown, statistics, and stress under oversubscription.
#![cfg(not(loom))]

use sphere_pool::{
    Error, PoolConfig, SmallJob, SpherePool, Worker, default_spheres, resolve_spheres,
};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

/// A gate a job can block on until the test opens it.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, std::sync::Condvar)>);

impl Gate {
    fn wait(&self) {
        let (lock, cv) = &*self.0;
        let mut open = lock.lock().unwrap();
        while !*open {
            open = cv.wait(open).unwrap();
        }
    }
    fn open(&self) {
        let (lock, cv) = &*self.0;
        *lock.lock().unwrap() = true;
        cv.notify_all();
    }
}

#[test]
fn wait_on_idle_sphere_returns_at_once() {
    let pool = SpherePool::new(2).unwrap();
    let start = Instant::now();
    assert_eq!(pool.wait(0), Ok(()));
    assert_eq!(pool.wait_timeout(1, Duration::from_secs(10)), Ok(()));
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[test]
fn dispatch_then_wait_runs_the_job_on_that_sphere() {
    let pool = SpherePool::new(3).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    for sphere in 0..3 {
        let seen = seen.clone();
        pool.dispatch(sphere, move || {
            let name = std::thread::current().name().unwrap().to_owned();
            seen.lock().unwrap().push((sphere, name));
        })
        .unwrap();
    }
    for sphere in 0..3 {
        pool.wait(sphere).unwrap();
    }
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        (0..3)
            .map(|i| (i, format!("cllm-sphere-{i}")))
            .collect::<Vec<_>>()
    );
}

#[test]
fn dispatch_to_a_busy_sphere_is_refused_until_waited_for() {
    let pool = SpherePool::new(1).unwrap();
    let gate = Gate::default();
    let g = gate.clone();
    pool.dispatch(0, move || g.wait()).unwrap();
    assert_eq!(pool.dispatch(0, || {}), Err(Error::Busy { sphere: 0 }));
    assert_eq!(pool.is_busy(0), Ok(true));
    gate.open();
    // Finished but not collected: still busy, so no outcome is ever lost.
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(pool.dispatch(0, || {}), Err(Error::Busy { sphere: 0 }));
    pool.wait(0).unwrap();
    assert_eq!(pool.is_busy(0), Ok(false));
    pool.dispatch(0, || {}).unwrap();
    pool.wait(0).unwrap();
}

#[test]
fn a_sphere_index_out_of_range_is_an_error_everywhere() {
    let pool = SpherePool::new(2).unwrap();
    let err = Error::SphereOutOfRange {
        sphere: 2,
        spheres: 2,
    };
    assert_eq!(pool.dispatch(2, || {}), Err(err.clone()));
    assert_eq!(pool.wait(2), Err(err.clone()));
    assert_eq!(pool.wait_timeout(2, Duration::ZERO), Err(err.clone()));
    assert_eq!(pool.is_busy(2), Err(err));
}

#[test]
fn wait_timeout_on_a_blocked_job_times_out_and_a_later_wait_collects_it() {
    let pool = SpherePool::new(1).unwrap();
    let gate = Gate::default();
    let g = gate.clone();
    pool.dispatch(0, move || g.wait()).unwrap();
    let start = Instant::now();
    assert_eq!(
        pool.wait_timeout(0, Duration::from_millis(30)),
        Err(Error::Timeout { sphere: 0 })
    );
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(30) && took < Duration::from_secs(5),
        "took {took:?}"
    );
    gate.open();
    assert_eq!(pool.wait(0), Ok(()));
}

#[test]
fn a_panicking_job_is_reported_by_wait_and_the_sphere_keeps_serving() {
    let pool = SpherePool::new(1).unwrap();
    pool.dispatch(0, || panic!("bad batch {}", 3)).unwrap();
    match pool.wait(0) {
        Err(Error::Panicked {
            worker: Worker::Sphere(0),
            message,
        }) => assert_eq!(message, "bad batch 3"),
        other => panic!("expected a panic report, got {other:?}"),
    }
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    pool.dispatch(0, move || r.store(true, Ordering::SeqCst))
        .unwrap();
    pool.wait(0).unwrap();
    assert!(ran.load(Ordering::SeqCst));
    let stats = pool.stats();
    assert_eq!((stats.total.jobs, stats.total.failures), (2, 1));
}

static SMALL_JOB_COUNTER: AtomicUsize = AtomicUsize::new(0);

#[test]
fn small_jobs_carry_their_closure_and_report_their_error_code() {
    let pool = SpherePool::new(2).unwrap();
    for sphere in 0..2 {
        let step = 10;
        let job = SmallJob::new(move |sphere| {
            SMALL_JOB_COUNTER.fetch_add(step * (sphere + 1), Ordering::SeqCst);
            Ok(())
        });
        pool.dispatch_small(sphere, job).unwrap();
    }
    pool.wait(0).unwrap();
    pool.wait(1).unwrap();
    assert_eq!(SMALL_JOB_COUNTER.load(Ordering::SeqCst), 10 + 20);
    // Two words: a function pointer and its argument, as the C API stores.
    let (f, code): (fn(i32) -> i32, i32) = (|c| c + 2, 40);
    let sphere = pool
        .dispatch_any_small(SmallJob::new(move |_| Err(f(code))))
        .unwrap();
    assert_eq!(
        pool.wait(sphere),
        Err(Error::JobFailed {
            worker: Worker::Sphere(sphere),
            code: 42
        })
    );
    let sphere = pool
        .dispatch_any_small(SmallJob::new(|_| panic!("small and panicking")))
        .unwrap();
    assert!(
        matches!(pool.wait(sphere), Err(Error::Panicked { message, .. }) if message.contains("small and panicking"))
    );
}

#[test]
fn run_all_barrier_orders_phases() {
    let pool = SpherePool::new(3).unwrap();
    let phase1 = AtomicUsize::new(0);
    let leaders = AtomicUsize::new(0);
    for _ in 0..200 {
        phase1.store(0, Ordering::SeqCst);
        pool.run_all(|p| {
            phase1.fetch_add(1, Ordering::SeqCst);
            if p.barrier() {
                leaders.fetch_add(1, Ordering::SeqCst);
            }
            // Nobody passes the barrier before everyone finished phase 1.
            assert_eq!(phase1.load(Ordering::SeqCst), p.count());
        })
        .unwrap();
    }
    assert_eq!(leaders.load(Ordering::SeqCst), 200);
}

#[test]
fn run_all_on_a_busy_pool_is_refused_and_runs_nothing() {
    let pool = SpherePool::new(2).unwrap();
    let gate = Gate::default();
    let g = gate.clone();
    pool.dispatch(1, move || g.wait()).unwrap();
    let ran = AtomicUsize::new(0);
    assert_eq!(
        pool.run_all(|_| {
            ran.fetch_add(1, Ordering::SeqCst);
        }),
        Err(Error::Busy { sphere: 1 })
    );
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    // Sphere 0's claim was given back: it still takes work.
    pool.dispatch(0, || {}).unwrap();
    pool.wait(0).unwrap();
    gate.open();
    pool.wait(1).unwrap();
    pool.run_all(|_| {
        ran.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 3);
}

#[test]
fn a_panicking_share_breaks_the_barrier_instead_of_hanging_the_others() {
    let pool = SpherePool::new(3).unwrap();
    let result = pool.run_all(|p| {
        if p.index() == 1 {
            panic!("share 1 failed");
        }
        p.barrier();
    });
    match result {
        Err(Error::Panicked { message, .. }) => {
            assert!(message.contains("share 1 failed") || message.contains("barrier broken"))
        }
        other => panic!("expected a panic report, got {other:?}"),
    }
    // The pool is whole again.
    pool.run_all(|p| {
        p.barrier();
    })
    .unwrap();
}

#[test]
fn a_share_that_returns_early_does_not_hold_up_the_barrier() {
    let pool = SpherePool::new(3).unwrap();
    let passed = AtomicUsize::new(0);
    pool.run_all(|p| {
        if p.index() == 0 {
            return;
        }
        p.barrier();
        p.barrier();
        passed.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    assert_eq!(passed.load(Ordering::SeqCst), 3);
}

#[test]
fn a_caller_panic_waits_for_the_spheres_before_returning() {
    let pool = SpherePool::new(2).unwrap();
    let finished = AtomicUsize::new(0);
    let result = pool.run_all(|p| {
        if p.is_caller() {
            panic!("caller share failed");
        }
        std::thread::sleep(Duration::from_millis(20));
        finished.fetch_add(1, Ordering::SeqCst);
    });
    assert_eq!(
        result,
        Err(Error::Panicked {
            worker: Worker::Caller,
            message: "caller share failed".into()
        })
    );
    assert_eq!(
        finished.load(Ordering::SeqCst),
        2,
        "returned before the spheres finished"
    );
}

fn check_cover(pool: &SpherePool, start: usize, end: usize, grain: usize) {
    let hits: Vec<AtomicUsize> = (start..end).map(|_| AtomicUsize::new(0)).collect();
    pool.parallel_for(start..end, grain, |r| {
        assert!(
            r.start < r.end && r.start >= start && r.end <= end,
            "bad chunk {r:?}"
        );
        for i in r {
            hits[i - start].fetch_add(1, Ordering::Relaxed);
        }
    })
    .unwrap();
    for (i, h) in hits.iter().enumerate() {
        assert_eq!(
            h.load(Ordering::Relaxed),
            1,
            "index {} of {start}..{end} grain {grain}",
            start + i
        );
    }
}

#[test]
fn parallel_for_covers_every_index_exactly_once() {
    let pool = SpherePool::new(3).unwrap();
    for (start, end) in [(0, 0), (0, 1), (5, 8), (0, 100), (17, 10_017), (0, 4)] {
        for grain in [0, 1, 3, 64, 1_000_000, usize::MAX] {
            check_cover(&pool, start, end, grain);
        }
    }
}

#[test]
fn a_job_waiting_for_its_own_sphere_gets_an_error_not_a_deadlock() {
    let pool = Arc::new(SpherePool::new(2).unwrap());
    let inner = Arc::downgrade(&pool);
    let seen = Arc::new(Mutex::new(None));
    let s = seen.clone();
    pool.dispatch(1, move || {
        let pool = inner.upgrade().unwrap();
        *s.lock().unwrap() = Some((pool.wait(1), pool.wait(0)));
    })
    .unwrap();
    pool.wait(1).unwrap();
    let (own, other) = seen.lock().unwrap().take().unwrap();
    assert!(matches!(own, Err(Error::InvalidArgument(_))), "{own:?}");
    assert_eq!(other, Ok(()));
}

#[test]
fn parallel_for_with_tells_each_chunk_its_participant() {
    let pool = SpherePool::new(3).unwrap();
    let per_participant: Vec<AtomicUsize> = (0..4).map(|_| AtomicUsize::new(0)).collect();
    pool.parallel_for_with(0..10_000, 10, |r, p| {
        per_participant[p].fetch_add(r.len(), Ordering::Relaxed);
        Ok(())
    })
    .unwrap();
    let total: usize = per_participant
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum();
    assert_eq!(total, 10_000);
}

#[test]
fn parallel_for_rejects_a_reversed_range() {
    let pool = SpherePool::new(1).unwrap();
    #[allow(clippy::reversed_empty_ranges)]
    let result = pool.parallel_for(10..5, 1, |_| {});
    assert!(matches!(result, Err(Error::InvalidArgument(_))));
}

#[test]
fn parallel_for_steals_from_a_participant_whose_block_is_slow() {
    // Items of the first block are slow; the others finish early and must
    // take chunks of it.
    let pool = SpherePool::new(3).unwrap();
    let who = Mutex::new(std::collections::HashSet::new());
    pool.parallel_for(0..400, 1, |r| {
        if r.start < 100 {
            std::thread::sleep(Duration::from_micros(500));
            who.lock().unwrap().insert(std::thread::current().id());
        }
    })
    .unwrap();
    assert!(
        who.into_inner().unwrap().len() >= 2,
        "nobody stole from the slow block"
    );
}

#[test]
fn parallel_for_does_not_wait_for_spheres_that_never_started() {
    // Spheres that sleep at once need a wake-up; a tiny loop is over before
    // they run, and their shares are taken back instead of waited for.
    let config = PoolConfig {
        spheres: 3,
        max_spin: Duration::ZERO,
        ..PoolConfig::default()
    };
    let pool = SpherePool::with_config(config).unwrap();
    let total = AtomicUsize::new(0);
    for _ in 0..200 {
        pool.parallel_for(0..4, 1, |r| {
            total.fetch_add(r.len(), Ordering::Relaxed);
        })
        .unwrap();
    }
    assert_eq!(
        total.load(Ordering::Relaxed),
        800,
        "every index exactly once"
    );
    let stats = pool.stats().total;
    assert!(stats.revoked > 0, "no share was ever revoked: {stats:?}");
    assert_eq!(
        stats.jobs + stats.revoked,
        600,
        "each share either ran or was revoked"
    );
    // The pool is consistent afterwards: run_all still reaches every sphere.
    let seen = AtomicUsize::new(0);
    pool.run_all(|_| {
        seen.fetch_add(1, Ordering::Relaxed);
    })
    .unwrap();
    assert_eq!(seen.load(Ordering::Relaxed), 4);
}

#[test]
fn try_parallel_for_stops_at_the_first_error() {
    let pool = SpherePool::new(2).unwrap();
    let done = AtomicUsize::new(0);
    let result = pool.try_parallel_for(0..100_000, 1, |r| {
        if r.start == 500 {
            return Err(9);
        }
        done.fetch_add(1, Ordering::Relaxed);
        Ok(())
    });
    assert!(
        matches!(result, Err(Error::JobFailed { code: 9, .. })),
        "{result:?}"
    );
    assert!(done.load(Ordering::Relaxed) < 100_000);
}

#[test]
fn a_panic_in_a_parallel_for_body_is_returned_with_its_text_and_stops_the_loop() {
    let pool = SpherePool::new(2).unwrap();
    let done = AtomicUsize::new(0);
    let result = pool.parallel_for(0..100_000, 1, |r| {
        assert!(r.start != 500, "chunk {} refused", r.start);
        done.fetch_add(1, Ordering::Relaxed);
    });
    match result {
        Err(Error::Panicked { message, .. }) => assert_eq!(message, "chunk 500 refused"),
        other => panic!("{other:?}"),
    }
    assert!(done.load(Ordering::Relaxed) < 100_000);
    // The pool still serves.
    let n = AtomicUsize::new(0);
    pool.parallel_for(0..1000, 0, |r| {
        n.fetch_add(r.len(), Ordering::Relaxed);
    })
    .unwrap();
    assert_eq!(n.load(Ordering::Relaxed), 1000);
}

#[test]
fn dropping_the_pool_finishes_work_in_flight_and_joins_every_thread() {
    let finished = Arc::new(AtomicUsize::new(0));
    let pool = SpherePool::new(3).unwrap();
    for sphere in 0..3 {
        let f = finished.clone();
        pool.dispatch(sphere, move || {
            std::thread::sleep(Duration::from_millis(30));
            f.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    drop(pool);
    assert_eq!(finished.load(Ordering::SeqCst), 3);
    // The jobs' closures (holding clones of the Arc) are gone with the threads.
    assert_eq!(Arc::strong_count(&finished), 1);
}

#[test]
fn dropping_the_pool_from_inside_its_own_job_does_not_deadlock() {
    let config = PoolConfig {
        spheres: 2,
        name_prefix: "sp-test-self".into(),
        ..PoolConfig::default()
    };
    let pool = SpherePool::with_config(config).unwrap();
    let holder = Arc::new(Mutex::new(None::<SpherePool>));
    let (h, done) = (holder.clone(), Arc::new(AtomicBool::new(false)));
    let d = done.clone();
    // The job takes the pool's only owner out of the mutex and drops it;
    // the mutex is held until the pool is in it.
    let mut slot = holder.lock().unwrap();
    pool.dispatch(0, move || {
        let pool = h.lock().unwrap().take().unwrap();
        drop(pool);
        d.store(true, Ordering::SeqCst);
    })
    .unwrap();
    *slot = Some(pool);
    drop(slot);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "self-drop deadlocked");
        std::thread::sleep(Duration::from_millis(1));
    }
    while sphere_threads_alive("sp-test-self") > 0 {
        assert!(
            Instant::now() < deadline,
            "a sphere thread outlived its pool"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The CPUs the calling thread may run on.
fn my_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the call fills it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        assert_eq!(
            libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set),
            0
        );
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

#[test]
fn pinned_spheres_run_on_their_own_core() {
    let allowed = my_cpus();
    let pool = SpherePool::with_config(PoolConfig {
        spheres: 3,
        pin: true,
        ..PoolConfig::default()
    })
    .unwrap();
    assert_spheres_pinned_in_turn(&pool, &allowed, &allowed);
}

/// Sphere i runs on exactly `list[(i + 1) % list.len()]`, and the calling
/// thread, never pinned by the pool, still on `allowed`.
fn assert_spheres_pinned_in_turn(pool: &SpherePool, list: &[usize], allowed: &[usize]) {
    let seen = Mutex::new(vec![Vec::new(); pool.spheres()]);
    pool.run_all(|p| {
        if !p.is_caller() {
            seen.lock().unwrap()[p.index()] = my_cpus();
        }
    })
    .unwrap();
    for (i, cpus) in seen.into_inner().unwrap().into_iter().enumerate() {
        assert_eq!(cpus, vec![list[(i + 1) % list.len()]], "sphere {i}");
    }
    assert_eq!(my_cpus(), allowed);
}

fn sphere_threads_alive(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end().starts_with(prefix))
        .count()
}

/// Asserts that no thread named `prefix...` is left within a second. A joined
/// thread can still be listed in /proc for a moment: the kernel wakes the
/// joiner (it clears the thread's tid) before it removes the task, and on a
/// loaded machine that gap has been seen to last past the join (CI, and 2 of
/// 36 parallel runs here). A thread that never exits stays listed.
fn assert_no_thread_left(prefix: &str) {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let alive = sphere_threads_alive(prefix);
        if alive == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{alive} thread(s) named {prefix}* still alive 1 s after the pool was shut down"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn threads_are_named_and_gone_after_shutdown() {
    let config = PoolConfig {
        spheres: 4,
        name_prefix: "sp-test-named".into(),
        ..PoolConfig::default()
    };
    let pool = SpherePool::with_config(config).unwrap();
    // Linux keeps 15 bytes of a thread name.
    assert_eq!(sphere_threads_alive("sp-test-named-"), 4);
    pool.shutdown();
    assert_no_thread_left("sp-test-named");
}

#[test]
fn a_failed_thread_creation_is_an_error_and_leaves_no_thread_behind() {
    let config = PoolConfig {
        spheres: 3,
        name_prefix: "sp-test-spawn".into(),
        // No machine can map a stack this large.
        stack_size: Some(1 << 60),
        ..PoolConfig::default()
    };
    match SpherePool::with_config(config) {
        Err(Error::Spawn { sphere: 0, .. }) => {}
        other => panic!("expected a spawn error, got {other:?}"),
    }
    assert_no_thread_left("sp-test-spawn");
}

#[test]
fn sphere_counts_resolve_like_the_c_api() {
    assert_eq!(resolve_spheres(0), Ok(default_spheres()));
    assert_eq!(resolve_spheres(-5), Ok(default_spheres()));
    assert_eq!(resolve_spheres(7), Ok(7));
    assert!(matches!(
        resolve_spheres(4097),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        resolve_spheres(i64::MAX),
        Err(Error::InvalidArgument(_))
    ));
    assert!(default_spheres() >= 1);
    assert!(matches!(
        SpherePool::new(100_000),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(SpherePool::new(0).unwrap().spheres(), default_spheres());
}

/// CPU time (user + system, seconds) of this process's threads whose name
/// starts with `prefix`, from /proc (other tests run in parallel in the same
/// process, so the whole process's time would not do).
fn threads_cpu_seconds(prefix: &str) -> f64 {
    let mut ticks = 0.0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let Ok(comm) = std::fs::read_to_string(task.path().join("comm")) else {
            continue;
        };
        if !comm.starts_with(prefix) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        // utime and stime are fields 14 and 15 of stat: 11 and 12 after ")".
        ticks += fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    }
    ticks / 100.0
}

#[test]
fn an_idle_pool_parks_and_burns_no_cpu() {
    let config = PoolConfig {
        spheres: 3,
        name_prefix: "sp-test-idle".into(),
        ..PoolConfig::default()
    };
    let pool = SpherePool::with_config(config).unwrap();
    for _ in 0..1000 {
        pool.run_all(|_| {}).unwrap();
    }
    std::thread::sleep(Duration::from_millis(50));
    let parks_before = pool.stats().total.parks;
    let cpu_before = threads_cpu_seconds("sp-test-idle");
    std::thread::sleep(Duration::from_millis(500));
    let cpu = threads_cpu_seconds("sp-test-idle") - cpu_before;
    // Three spinning threads would burn up to 1.5 s of CPU here.
    assert!(cpu < 0.05, "idle pool used {cpu} s of CPU in 0.5 s");
    assert!(parks_before >= 3, "spheres did not park: {parks_before}");
    pool.run_all(|_| {}).unwrap();
}

#[test]
fn stats_count_jobs_busy_time_and_parks() {
    let pool = SpherePool::new(2).unwrap();
    for _ in 0..10 {
        pool.dispatch(0, || std::thread::sleep(Duration::from_millis(2)))
            .unwrap();
        pool.wait(0).unwrap();
    }
    // Job counts are final when `wait` returns; the last job's busy time is
    // added just after its hand-off (slot.rs), so it may come a moment later
    // on a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(5);
    let stats = loop {
        let stats = pool.stats();
        if stats.spheres[0].busy >= Duration::from_millis(20) || Instant::now() > deadline {
            break stats;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    assert_eq!(stats.spheres[0].jobs, 10);
    assert_eq!(stats.spheres[1].jobs, 0);
    assert!(
        stats.spheres[0].busy >= Duration::from_millis(20),
        "{:?}",
        stats.spheres[0]
    );
    assert_eq!(stats.total.jobs, 10);
    assert!(stats.spheres[0].busy_fraction() > 0.0);
}

/// A tiny deterministic generator for the stress test.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn stress_mixed_operations_with_random_delays_oversubscribed() {
    // Eight spheres on a small machine: more threads than cores.
    let pool = Arc::new(SpherePool::new(8).unwrap());
    let total = Arc::new(AtomicU64::new(0));
    let mut expected = 0u64;
    let mut rng = XorShift(0x9e3779b97f4a7c15);
    let deadline = Instant::now() + Duration::from_secs(60);
    for round in 0..1500u64 {
        assert!(
            Instant::now() < deadline,
            "stress test too slow at round {round}"
        );
        match rng.next() % 4 {
            0 => {
                let k = (rng.next() % 8) as usize;
                for sphere in 0..=k {
                    let t = total.clone();
                    let spin = rng.next() % 2000;
                    pool.dispatch(sphere, move || {
                        for _ in 0..spin {
                            std::hint::spin_loop();
                        }
                        t.fetch_add(1, Ordering::Relaxed);
                    })
                    .unwrap();
                    expected += 1;
                }
                for sphere in (0..=k).rev() {
                    pool.wait(sphere).unwrap();
                }
            }
            1 => {
                pool.run_all(|p| {
                    if p.index() % 3 == 0 {
                        std::thread::yield_now();
                    }
                    total.fetch_add(1, Ordering::Relaxed);
                    p.barrier();
                })
                .unwrap();
                expected += 9;
            }
            2 => {
                let n = rng.next() % 5000;
                pool.parallel_for(0..n as usize, (rng.next() % 64) as usize, |r| {
                    total.fetch_add(r.len() as u64, Ordering::Relaxed);
                })
                .unwrap();
                expected += n;
            }
            _ => {
                let sphere = (rng.next() % 8) as usize;
                let t = total.clone();
                pool.dispatch(sphere, move || {
                    std::thread::sleep(Duration::from_micros(200));
                    t.fetch_add(1, Ordering::Relaxed);
                })
                .unwrap();
                expected += 1;
                while pool
                    .wait_timeout(sphere, Duration::from_micros(50))
                    .is_err()
                {}
            }
        }
        assert_eq!(total.load(Ordering::Relaxed), expected, "round {round}");
    }
}

#[test]
fn many_threads_dispatching_to_their_own_spheres_concurrently() {
    let pool = Arc::new(SpherePool::new(4).unwrap());
    let start = Arc::new(Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|sphere| {
            let (pool, start) = (pool.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let count = Arc::new(AtomicUsize::new(0));
                for _ in 0..2000 {
                    let c = count.clone();
                    pool.dispatch(sphere, move || {
                        c.fetch_add(1, Ordering::Relaxed);
                    })
                    .unwrap();
                    pool.wait(sphere).unwrap();
                }
                count.load(Ordering::Relaxed)
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 2000);
    }
}

#[test]
fn a_round_keeps_out_other_jobs_and_rounds_until_it_returns_even_after_shares_end() {
    let pool = SpherePool::new(1).unwrap();
    let sphere_done = AtomicBool::new(false);
    let busy_seen = AtomicBool::new(false);
    let mut seen = Vec::new();
    let seen_ref = std::sync::Mutex::new(&mut seen);
    pool.run_all(|p| {
        if p.is_caller() {
            // Wait until sphere 0's share has ended (its slot is then free),
            // and a little more, so the check below is not racing with it.
            while !sphere_done.load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
            std::thread::sleep(Duration::from_millis(5));
            // Another thread: from this one, nested rounds run inline.
            std::thread::scope(|scope| {
                scope.spawn(|| {
                    let mut seen = seen_ref.lock().unwrap();
                    seen.push(pool.dispatch(0, || {}));
                    seen.push(pool.run_all(|_| {}));
                    seen.push(pool.parallel_for(0..10, 1, |_| {}));
                    busy_seen.store(pool.is_busy(0).unwrap(), Ordering::Relaxed);
                });
            });
        } else {
            sphere_done.store(true, Ordering::Release);
        }
    })
    .unwrap();
    assert_eq!(seen[0], Err(Error::RoundInProgress));
    assert_eq!(seen[1], Err(Error::RoundInProgress));
    assert_eq!(seen[2], Err(Error::RoundInProgress));
    assert!(
        busy_seen.load(Ordering::Relaxed),
        "is_busy is true during a round"
    );
    // After the round, the pool takes work again.
    assert!(!pool.is_busy(0).unwrap());
    pool.dispatch(0, || {}).unwrap();
    pool.wait(0).unwrap();
    pool.run_all(|_| {}).unwrap();
}

#[test]
fn dropping_is_refused_during_a_round_and_allowed_after_it() {
    let pool = SpherePool::new(2).unwrap();
    let during = Mutex::new(Vec::new());
    pool.run_all(|_| during.lock().unwrap().push(pool.check_drop()))
        .unwrap();
    let during = during.into_inner().unwrap();
    assert_eq!(during.len(), 3);
    assert!(during.iter().all(|r| *r == Err(Error::RoundInProgress)));
    pool.parallel_for(0..100, 1, |_| {
        assert_eq!(pool.check_drop(), Err(Error::RoundInProgress));
    })
    .unwrap();
    assert_eq!(pool.check_drop(), Ok(()));
}

/// The thread's name, to tell where a nested call ran.
fn thread_name() -> String {
    std::thread::current().name().unwrap_or("?").to_owned()
}

#[test]
fn nested_run_all_runs_inline_as_the_only_participant_on_every_participant() {
    let pool = SpherePool::new(2).unwrap();
    let seen = Mutex::new(Vec::new());
    pool.run_all(|outer| {
        let here = thread_name();
        pool.run_all(|inner| {
            assert_eq!(thread_name(), here, "a nested share ran on another thread");
            // Its barrier passes at once (a team of one).
            assert_eq!(inner.try_barrier(), Ok(true));
            seen.lock().unwrap().push((
                outer.index(),
                inner.index(),
                inner.count(),
                inner.is_caller(),
            ));
        })
        .unwrap();
    })
    .unwrap();
    let mut seen = seen.into_inner().unwrap();
    seen.sort();
    assert_eq!(
        seen,
        vec![(0, 0, 1, true), (1, 0, 1, true), (2, 0, 1, true)]
    );
    // The pool takes a round as usual afterwards.
    let count = AtomicUsize::new(0);
    pool.run_all(|_| {
        count.fetch_add(1, Ordering::Relaxed);
    })
    .unwrap();
    assert_eq!(count.into_inner(), 3);
}

#[test]
fn nested_parallel_for_covers_its_range_in_order_with_the_callers_participant_index() {
    let pool = SpherePool::new(2).unwrap();
    let calls = Mutex::new(Vec::new());
    pool.parallel_for_with(0..3, 1, |outer, me| {
        let here = thread_name();
        pool.parallel_for_with(10..20, 4, |inner, p| {
            assert_eq!(thread_name(), here);
            calls.lock().unwrap().push((outer.start, me, p, inner));
            Ok(())
        })
        .unwrap();
        Ok(())
    })
    .unwrap();
    let calls = calls.into_inner().unwrap();
    for o in 0..3 {
        let mine: Vec<_> = calls.iter().filter(|c| c.0 == o).collect();
        // In order, in chunks of the grain, with the outer participant's index.
        let ranges: Vec<_> = mine.iter().map(|c| c.3.clone()).collect();
        assert_eq!(ranges, vec![10..14, 14..18, 18..20], "outer {o}");
        assert!(mine.iter().all(|c| c.1 == c.2));
    }
}

#[test]
fn nested_calls_from_a_dispatched_job_run_inline_and_report_failures() {
    let pool = Arc::new(SpherePool::new(2).unwrap());
    let p = pool.clone();
    let out = Arc::new(Mutex::new(Vec::new()));
    let o = out.clone();
    pool.dispatch(1, move || {
        let mut out = o.lock().unwrap();
        out.push(format!("{:?}", p.run_all(|q| assert_eq!(q.count(), 1))));
        out.push(format!(
            "{:?}",
            p.parallel_for_with(0..10, 0, |r, me| {
                assert_eq!((r, me), (0..10, 1));
                Ok(())
            })
        ));
        out.push(format!(
            "{:?}",
            p.try_parallel_for(0..10, 2, |r| if r.start == 4 { Err(9) } else { Ok(()) })
        ));
        out.push(format!("{:?}", p.run_all(|_| panic!("nested boom"))));
        // A dispatch to another sphere is real concurrency, not nesting.
        out.push(format!("{:?}", p.dispatch(0, || {})));
        out.push(format!("{:?}", p.wait(0)));
    })
    .unwrap();
    pool.wait(1).unwrap();
    let out = out.lock().unwrap();
    assert_eq!(out[0], "Ok(())");
    assert_eq!(out[1], "Ok(())");
    assert_eq!(
        out[2],
        format!(
            "{:?}",
            Err::<(), _>(Error::JobFailed {
                worker: Worker::Sphere(1),
                code: 9
            })
        )
    );
    assert!(
        out[3].contains("nested boom") && out[3].contains("Sphere(1)"),
        "{}",
        out[3]
    );
    assert_eq!(out[4], "Ok(())");
    assert_eq!(out[5], "Ok(())");
}

#[test]
fn a_round_of_another_pool_inside_a_share_runs_in_parallel() {
    let outer = SpherePool::new(1).unwrap();
    let inner = SpherePool::new(2).unwrap();
    outer
        .run_all(|p| {
            if p.is_caller() {
                let names = Mutex::new(std::collections::BTreeSet::new());
                inner
                    .run_all(|q| {
                        names.lock().unwrap().insert(thread_name());
                        assert_eq!(q.count(), 3);
                    })
                    .unwrap();
                assert_eq!(names.into_inner().unwrap().len(), 3);
            }
        })
        .unwrap();
}

#[test]
fn dispatch_any_picks_idle_spheres_and_says_when_none_is_idle() {
    let pool = SpherePool::new(2).unwrap();
    let gate = Gate::default();
    let (g0, g1) = (gate.clone(), gate.clone());
    let a = pool.dispatch_any(move || g0.wait()).unwrap();
    let b = pool.dispatch_any(move || g1.wait()).unwrap();
    assert_ne!(a, b, "two jobs on one sphere");
    assert!(a < 2 && b < 2);
    // Both busy: refused at once, nothing dispatched.
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    assert_eq!(
        pool.dispatch_any(move || r.store(true, Ordering::SeqCst)),
        Err(Error::NoIdleSphere { spheres: 2 })
    );
    gate.open();
    pool.wait(a).unwrap();
    // Only `a` is free again (b's job done but not waited for): it is picked.
    assert_eq!(pool.dispatch_any(|| {}), Ok(a));
    pool.wait(a).unwrap();
    pool.wait(b).unwrap();
    assert!(!ran.load(Ordering::SeqCst));
    // Successive picks spread over the spheres.
    let x = pool.dispatch_any(|| {}).unwrap();
    pool.wait(x).unwrap();
    let y = pool.dispatch_any(|| {}).unwrap();
    pool.wait(y).unwrap();
    assert_ne!(x, y);
}

#[test]
fn dispatch_any_during_a_round_is_refused_and_a_job_may_use_it_for_another_sphere() {
    let pool = Arc::new(SpherePool::new(2).unwrap());
    pool.run_all(|_| assert_eq!(pool.dispatch_any(|| {}), Err(Error::RoundInProgress)))
        .unwrap();
    let p = pool.clone();
    let picked = Arc::new(Mutex::new(None));
    let k = picked.clone();
    let me = pool
        .dispatch_any(move || {
            let other = p.dispatch_any(|| {}).unwrap();
            p.wait(other).unwrap();
            *k.lock().unwrap() = Some(other);
        })
        .unwrap();
    pool.wait(me).unwrap();
    let other = picked.lock().unwrap().unwrap();
    assert_ne!(other, me, "a job's own sphere is not idle");
}

#[test]
fn spheres_pinned_by_a_cpu_list_run_on_its_cpus_in_turn() {
    let allowed = my_cpus();
    // The allowed CPUs, last first: a list different from the default map.
    let list: Vec<usize> = allowed.iter().rev().copied().collect();
    let pool = SpherePool::with_config(PoolConfig {
        spheres: 3,
        cpus: Some(list.clone()),
        ..PoolConfig::default()
    })
    .unwrap();
    assert_spheres_pinned_in_turn(&pool, &list, &allowed);
    // A CPU the process may not run on, or an empty list, is refused.
    for bad in [vec![], vec![allowed[0], 1023]] {
        let e = SpherePool::with_config(PoolConfig {
            spheres: 1,
            cpus: Some(bad),
            ..PoolConfig::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("CPU list"), "{e}");
    }
}

#[test]
fn a_pool_of_one_thread_has_no_sphere_and_runs_everything_on_the_caller() {
    let pool = SpherePool::with_threads(1).unwrap();
    assert_eq!(pool.spheres(), 0);
    assert_eq!(pool.participants(), 1);
    assert_eq!(pool.config().threads, 1);
    let me = thread_name();
    let shares = Mutex::new(Vec::new());
    pool.run_all(|p| {
        assert_eq!(thread_name(), me);
        assert!(p.barrier());
        shares
            .lock()
            .unwrap()
            .push((p.index(), p.count(), p.is_caller()));
    })
    .unwrap();
    assert_eq!(shares.into_inner().unwrap(), vec![(0, 1, true)]);
    // The same cover as any pool, on the caller, participant 0.
    check_cover(&pool, 3, 10_003, 7);
    check_cover(&pool, 0, 100, usize::MAX);
    pool.parallel_for_with(0..100, 0, |_, p| {
        assert_eq!((p, thread_name()), (0, me.clone()));
        Ok(())
    })
    .unwrap();
    // Nested calls still run inline, failures are still reported.
    pool.run_all(|_| pool.parallel_for(0..10, 3, |_| {}).unwrap())
        .unwrap();
    assert_eq!(
        pool.try_parallel_for(0..10, 1, |r| if r.start == 5 { Err(4) } else { Ok(()) }),
        Err(Error::JobFailed {
            worker: Worker::Caller,
            code: 4
        })
    );
    // There is no sphere to give a job to.
    assert_eq!(
        pool.dispatch(0, || {}),
        Err(Error::SphereOutOfRange {
            sphere: 0,
            spheres: 0
        })
    );
    assert!(matches!(
        pool.dispatch_any(|| {}),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(pool.stats().spheres.len(), 0);
    // A config built from it makes the same kind of pool.
    let again = SpherePool::with_config(pool.config().clone()).unwrap();
    assert_eq!(again.spheres(), 0);
}

#[test]
fn thread_counts_include_the_caller() {
    assert_eq!(SpherePool::with_threads(3).unwrap().spheres(), 2);
    let e = SpherePool::with_threads(4098).unwrap_err();
    assert!(e.to_string().contains("4097"), "{e}");
    // An explicit sphere count wins over a thread count.
    let pool = SpherePool::with_config(PoolConfig {
        spheres: 2,
        threads: 1,
        ..PoolConfig::default()
    })
    .unwrap();
    assert_eq!((pool.spheres(), pool.config().threads), (2, 3));
}

#[test]
fn threads_racing_on_dispatch_any_run_every_job_once_and_never_share_a_sphere() {
    let pool = Arc::new(SpherePool::new(3).unwrap());
    let ran = Arc::new(AtomicUsize::new(0));
    let running: Arc<Vec<AtomicUsize>> = Arc::new((0..3).map(|_| AtomicUsize::new(0)).collect());
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (pool, ran, running) = (pool.clone(), ran.clone(), running.clone());
            std::thread::spawn(move || {
                let mut done = 0;
                while done < 500 {
                    let (r, n) = (ran.clone(), running.clone());
                    let job = move || {
                        let name = thread_name();
                        let sphere: usize = name.rsplit('-').next().unwrap().parse().unwrap();
                        // Two jobs on one sphere at once would show here.
                        assert_eq!(n[sphere].fetch_add(1, Ordering::SeqCst), 0);
                        r.fetch_add(1, Ordering::SeqCst);
                        n[sphere].fetch_sub(1, Ordering::SeqCst);
                    };
                    match pool.dispatch_any(job) {
                        Ok(sphere) => {
                            pool.wait(sphere).unwrap();
                            done += 1;
                        }
                        Err(Error::NoIdleSphere { .. }) => std::thread::yield_now(),
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(ran.load(Ordering::SeqCst), 2000);
}

#[test]
fn the_callers_early_return_does_not_hold_up_the_spheres_barrier() {
    // The go line's barrier is armed lazily: the caller departs before any
    // sphere reaches the barrier (or after), and must count as gone.
    let pool = SpherePool::new(3).unwrap();
    let passed = AtomicUsize::new(0);
    for _ in 0..100 {
        pool.run_all(|p| {
            if p.is_caller() {
                return;
            }
            p.barrier();
            p.barrier();
            passed.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    assert_eq!(passed.load(Ordering::SeqCst), 300);
    // The barrier is re-armed for all four: a round where everyone waits.
    let leaders = AtomicUsize::new(0);
    pool.run_all(|p| {
        if p.barrier() {
            leaders.fetch_add(1, Ordering::SeqCst);
        }
    })
    .unwrap();
    assert_eq!(leaders.load(Ordering::SeqCst), 1);
}

#[test]
fn a_round_task_too_big_for_the_go_line_and_one_with_a_drop_run_and_drop_once() {
    // Five captured words do not fit the go line (the round then runs the
    // task by reference); a captured value with a destructor is dropped
    // once per round, after every share has run.
    let pool = SpherePool::new(2).unwrap();
    let sum = AtomicUsize::new(0);
    let (a, b, c, d, e) = (1usize, 2usize, 3usize, 4usize, 5usize);
    pool.run_all(|_| {
        sum.fetch_add(a + b + c + d + e, Ordering::SeqCst);
    })
    .unwrap();
    assert_eq!(sum.load(Ordering::SeqCst), 3 * 15);

    static DROPS: AtomicUsize = AtomicUsize::new(0);
    struct Counted;
    impl Drop for Counted {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }
    for round in 1..=3 {
        let counted = Counted;
        let ran = AtomicUsize::new(0);
        pool.run_all(move |_| {
            let _keep = &counted;
            ran.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        assert_eq!(
            DROPS.load(Ordering::SeqCst),
            round,
            "dropped once per round"
        );
    }
}
