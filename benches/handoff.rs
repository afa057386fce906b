//! Fork-join rounds from Rust: the sphere pool's `run_all` beside rayon's
//! `broadcast` and `std::thread::scope`, each with N participants doing
//! nothing (hand-off cost) or 20 us of arithmetic each. The ratios against
//! the pool are printed after the criterion groups, measured in the same
//! process.

use criterion::{BenchmarkId, Criterion, criterion_group};
use sphere_pool::SpherePool;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// About `us` microseconds of dependent arithmetic (calibrated at start).
fn work(iters: u64) {
    let mut x = 1.0f64;
    for _ in 0..iters {
        x = x * 1.000_000_1 + 1e-9;
    }
    black_box(x);
}

fn iters_for(us: u64) -> u64 {
    let probe = 200_000;
    let start = Instant::now();
    work(probe);
    let ns_per_iter = start.elapsed().as_nanos() as f64 / probe as f64;
    (us as f64 * 1000.0 / ns_per_iter) as u64
}

struct Methods {
    pool: SpherePool,
    rayon: rayon::ThreadPool,
    n: usize,
}

impl Methods {
    fn new(n: usize) -> Self {
        Self {
            pool: SpherePool::new(n - 1).unwrap(),
            rayon: rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap(),
            n,
        }
    }
    fn pool_round(&self, iters: u64) {
        self.pool.run_all(|_| work(iters)).unwrap();
    }
    fn rayon_round(&self, iters: u64) {
        self.rayon.broadcast(|_| work(iters));
    }
    fn scope_round(&self, iters: u64) {
        std::thread::scope(|s| {
            for _ in 1..self.n {
                s.spawn(|| work(iters));
            }
            work(iters);
        });
    }
}

/// Median time of one round over `reps` batches of `rounds`.
fn time_round(rounds: u32, reps: usize, mut f: impl FnMut()) -> Duration {
    let mut v: Vec<Duration> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..rounds {
                f();
            }
            start.elapsed() / rounds
        })
        .collect();
    v.sort();
    v[reps / 2]
}

fn bench_rounds(c: &mut Criterion) {
    let iters_20us = iters_for(20);
    for n in [2usize, 4] {
        let m = Methods::new(n);
        let mut group = c.benchmark_group(format!("fork_join_N{n}"));
        group
            .measurement_time(Duration::from_secs(2))
            .warm_up_time(Duration::from_millis(300))
            .sample_size(30);
        for (label, iters) in [("empty", 0), ("work_20us", iters_20us)] {
            group.bench_function(BenchmarkId::new("sphere_pool", label), |b| {
                b.iter(|| m.pool_round(iters))
            });
            group.bench_function(BenchmarkId::new("rayon_broadcast", label), |b| {
                b.iter(|| m.rayon_round(iters))
            });
            group.bench_function(BenchmarkId::new("thread_scope", label), |b| {
                b.iter(|| m.scope_round(iters))
            });
        }
        group.finish();

        // Ratios measured here, in one process, methods taking turns.
        for (label, iters, rounds) in [("empty", 0, 2000), ("work_20us", iters_20us, 200)] {
            let pool = time_round(rounds, 9, || m.pool_round(iters));
            let rayon = time_round(rounds, 9, || m.rayon_round(iters));
            let scope = time_round(rounds / 10, 9, || m.scope_round(iters));
            println!(
                "summary N={n} {label}: sphere_pool {:?}, rayon_broadcast {:?} ({:.1}x the pool), thread_scope {:?} ({:.1}x the pool)",
                pool,
                rayon,
                rayon.as_secs_f64() / pool.as_secs_f64(),
                scope,
                scope.as_secs_f64() / pool.as_secs_f64()
            );
        }
    }
}

// The group function made by the macro has no doc comment of its own.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(benches, bench_rounds);
}
use group::benches;

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
