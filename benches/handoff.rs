//! Fork-join rounds from Rust: the sphere pool's `run_all` beside rayon's
//! `broadcast` and `std::thread::scope`, each with N participants doing
//! nothing (hand-off cost) or 20 us of arithmetic each. After each criterion
//! group, a summary measured in the same process (medians of interleaved
//! batches, with their spread), and for N=4 a verdict: is the pool no slower
//! than rayon's broadcast, empty and with 20 us shares (issue 12)?

use cllm_benches::{cpu_line, interleaved, load_average, spread, time_batch};
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

/// Rounds of interleaved batches in a summary.
const REPS: usize = 15;
/// The pause before each batch: longer than the pool's spin (200 us) and
/// rayon's yielding before its workers sleep, so that neither method's idle
/// threads still run during the other's batch.
const PAUSE: Duration = Duration::from_millis(2);

/// Median round times (pool, rayon, scope) of interleaved batches; prints
/// them with their spread.
fn summary(m: &Methods, label: &str, iters: u64, rounds: u32) -> [Duration; 3] {
    let times = interleaved(
        REPS,
        PAUSE,
        &mut [
            &mut || time_batch(rounds, || m.pool_round(iters)),
            &mut || time_batch(rounds, || m.rayon_round(iters)),
            &mut || time_batch(rounds / 10, || m.scope_round(iters)),
        ],
    );
    let [pool, rayon, scope] = [0, 1, 2].map(|i| spread(times[i].clone()));
    println!(
        "summary N={} {label}: sphere_pool {:?} ({:?}..{:?}), rayon_broadcast {:?} ({:?}..{:?}, {:.2}x the pool), \
         thread_scope {:?} ({:.1}x the pool); medians of {REPS} interleaved batches (min..max)",
        m.n,
        pool.1,
        pool.0,
        pool.2,
        rayon.1,
        rayon.0,
        rayon.2,
        rayon.1.as_secs_f64() / pool.1.as_secs_f64(),
        scope.1,
        scope.1.as_secs_f64() / pool.1.as_secs_f64()
    );
    [pool.1, rayon.1, scope.1]
}

fn bench_rounds(c: &mut Criterion) {
    println!("{}; load average {}", cpu_line(), load_average());
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

        // Measured here, in one process, methods taking turns.
        let mut verdict = Vec::new();
        for (label, iters, rounds) in [("empty", 0, 2000), ("work_20us", iters_20us, 200)] {
            let [pool, rayon, _] = summary(&m, label, iters, rounds);
            let ok = if pool <= rayon { "yes" } else { "NO" };
            verdict.push(format!("{label} {ok} (pool {pool:?}, rayon {rayon:?})"));
        }
        if n == 4 {
            println!(
                "summary N=4 pool no slower than rayon_broadcast: {}",
                verdict.join(", ")
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
