//! Role pools from Rust: submit-to-start latency of a role pool's task
//! beside `std::thread::spawn` and rayon's `spawn` (each closure records how
//! long after the submit call it started), and the overhead of one parallel
//! loop round on 2 threads (the caller and one worker) beside sphere-pool's
//! `run_all` and rayon's `broadcast`. Medians and ratios are printed after
//! the criterion groups, measured in the same process.

use cllm_benches::{median, time_batch};
use criterion::{BenchmarkId, Criterion};
use pool_manager::{Partitioning, Role, Runtime, RuntimeConfig};
use sphere_pool::SpherePool;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A runtime with one evaluation thread (tasks) and one ai thread (loops).
fn runtime() -> Runtime {
    let mut c = RuntimeConfig::for_cores(2);
    for role in Role::ALL {
        c.pool_mut(role).threads = Some(0);
    }
    c.pool_mut(Role::Evaluation).threads = Some(1);
    c.pool_mut(Role::Ai).threads = Some(1);
    Runtime::new(c).unwrap()
}

/// A way to submit: returns the time from the submit call to the start of the task.
type Submit = fn(&Submitters) -> Duration;

/// One submission each way; returns the time from the submit call to the
/// start of the task.
struct Submitters {
    rt: Runtime,
    rayon: rayon::ThreadPool,
}

impl Submitters {
    fn role_pool(&self) -> Duration {
        let t0 = Instant::now();
        let h = self
            .rt
            .pool(Role::Evaluation)
            .submit(move || t0.elapsed())
            .unwrap();
        h.wait().unwrap()
    }

    fn thread_spawn(&self) -> Duration {
        let t0 = Instant::now();
        std::thread::spawn(move || t0.elapsed()).join().unwrap()
    }

    fn rayon_spawn(&self) -> Duration {
        let (tx, rx) = mpsc::sync_channel(1);
        let t0 = Instant::now();
        self.rayon.spawn(move || tx.send(t0.elapsed()).unwrap());
        rx.recv().unwrap()
    }
}

/// Median submit-to-start latency over `n` submissions.
fn latency(n: usize, f: impl Fn() -> Duration) -> Duration {
    median((0..n).map(|_| f()).collect())
}

/// Median time of one round over `reps` batches of `rounds`.
fn time_round(rounds: u32, reps: usize, mut f: impl FnMut()) -> Duration {
    median((0..reps).map(|_| time_batch(rounds, &mut f)).collect())
}

fn bench_submit(c: &mut Criterion) {
    let s = Submitters {
        rt: runtime(),
        rayon: rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap(),
    };
    let mut group = c.benchmark_group("submit_to_start");
    group
        .measurement_time(Duration::from_secs(1))
        .warm_up_time(Duration::from_millis(300))
        .sample_size(20);
    let cases: [(&str, Submit); 3] = [
        ("role_pool", Submitters::role_pool),
        ("rayon_spawn", Submitters::rayon_spawn),
        ("thread_spawn", Submitters::thread_spawn),
    ];
    for (name, f) in cases {
        group.bench_function(BenchmarkId::new(name, "latency"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| f(&s)).sum())
        });
    }
    group.finish();

    let pool = latency(3000, || s.role_pool());
    let rayon = latency(3000, || s.rayon_spawn());
    let spawn = latency(500, || s.thread_spawn());
    println!(
        "summary submit-to-start (median, back-to-back): role_pool {pool:?}, rayon_spawn {rayon:?} ({:.2}x the pool), thread_spawn {spawn:?} ({:.1}x the pool)",
        rayon.as_secs_f64() / pool.as_secs_f64(),
        spawn.as_secs_f64() / pool.as_secs_f64(),
    );
    // After an idle gap the worker sleeps: the latency of a cold start.
    let cold = latency(200, || {
        std::thread::sleep(Duration::from_millis(2));
        s.role_pool()
    });
    let cold_rayon = latency(200, || {
        std::thread::sleep(Duration::from_millis(2));
        s.rayon_spawn()
    });
    println!(
        "summary submit-to-start after 2 ms idle: role_pool {cold:?}, rayon_spawn {cold_rayon:?} ({:.2}x the pool)",
        cold_rayon.as_secs_f64() / cold.as_secs_f64()
    );
}

fn bench_rounds(c: &mut Criterion) {
    let rt = runtime();
    let ai = rt.pool(Role::Ai);
    assert_eq!(ai.participants(), 2);
    let spheres = SpherePool::new(1).unwrap();
    let rayon = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let hits = AtomicU64::new(0);
    let pool_round = || {
        ai.for_each_index(2, Partitioning::Contiguous, |i| {
            black_box(i);
        })
        .unwrap()
    };
    let sphere_round = || {
        spheres
            .run_all(|p| {
                black_box(p.index());
            })
            .unwrap()
    };
    let rayon_round = || {
        rayon.broadcast(|_| hits.fetch_add(1, Ordering::Relaxed));
    };
    let mut group = c.benchmark_group("loop_round_2_threads");
    group
        .measurement_time(Duration::from_secs(1))
        .warm_up_time(Duration::from_millis(300))
        .sample_size(20);
    group.bench_function("role_pool_for_each", |b| b.iter(pool_round));
    group.bench_function("sphere_pool_run_all", |b| b.iter(sphere_round));
    group.bench_function("rayon_broadcast", |b| b.iter(rayon_round));
    group.finish();

    let pool = time_round(2000, 9, pool_round);
    let sphere = time_round(2000, 9, sphere_round);
    let rayon_t = time_round(2000, 9, rayon_round);
    println!(
        "summary empty loop round, 2 threads: role_pool {pool:?}, sphere_pool run_all {sphere:?} ({:.2}x the pool), rayon broadcast {rayon_t:?} ({:.2}x the pool)",
        sphere.as_secs_f64() / pool.as_secs_f64(),
        rayon_t.as_secs_f64() / pool.as_secs_f64(),
    );

    // Rounds where the worker must help: two shares of 5 us each. Ideal
    // wall time 5 us; the caller alone would take 10 us.
    let busy = |us: u64| {
        let end = Instant::now() + Duration::from_micros(us);
        while Instant::now() < end {
            std::hint::spin_loop();
        }
    };
    let pool_work = time_round(500, 9, || {
        ai.for_each_index(2, Partitioning::Interleaved, |_| busy(5))
            .unwrap()
    });
    let sphere_work = time_round(500, 9, || spheres.run_all(|_| busy(5)).unwrap());
    let rayon_work = time_round(500, 9, || {
        rayon.broadcast(|_| busy(5));
    });
    println!(
        "summary loop round of 2 x 5 us, 2 threads (ideal 5 us, alone 10 us): role_pool {pool_work:?}, sphere_pool run_all {sphere_work:?} ({:.2}x the pool), rayon broadcast {rayon_work:?} ({:.2}x the pool)",
        sphere_work.as_secs_f64() / pool_work.as_secs_f64(),
        rayon_work.as_secs_f64() / pool_work.as_secs_f64(),
    );

    // Put the worker to sleep with long gaps (its spin budget drops to
    // zero), then see whether back-to-back loops bring it back.
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(2));
        ai.for_each_index(2, Partitioning::Interleaved, |_| busy(1))
            .unwrap();
    }
    // How often the worker actually joined a round (vs the caller doing it
    // alone), over rounds with some work.
    let worker_ran = AtomicBool::new(false);
    let mut joined = 0;
    for _ in 0..200 {
        worker_ran.store(false, Ordering::Relaxed);
        ai.for_each_index(64, Partitioning::DYNAMIC, |_| {
            if std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("cllm-ai"))
            {
                worker_ran.store(true, Ordering::Relaxed);
            }
            black_box((0..200).fold(0u64, |a, b| a ^ b));
        })
        .unwrap();
        joined += worker_ran.load(Ordering::Relaxed) as u32;
    }
    println!("summary the worker took part in {joined} of 200 loops of 64 small items");
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_submit(&mut c);
    bench_rounds(&mut c);
    c.final_summary();
}
