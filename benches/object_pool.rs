//! Object-pool acquire/release against `Box::new`/drop of a ~3 KB object
//! (the plan's robot memory: 768 `f32`s), on 1 thread and on 2 threads at
//! once. Two pool variants: reuse as is (what a pool is for), and reset to
//! zeros on release (the same fresh object `Box::new` gives).
//!
//! Every variant touches the object once (one write, kept alive with
//! `black_box`), so that no variant is optimised away.
//!
//! `cargo bench -p cllm-benches --bench object_pool` first prints a summary
//! measured in this process (median of interleaved rounds) with the ratios,
//! then runs the criterion groups. Default run: about 20 s.

use cllm_benches::median;
use criterion::{Criterion, Throughput};
use object_pool::{ObjectPool, PoolConfig};
use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// The plan's per-robot memory: ~3 KB.
struct Robot {
    state: [f32; 768],
}

impl Robot {
    fn new() -> Self {
        Robot { state: [0.0; 768] }
    }
}

#[derive(Clone, Copy)]
enum Variant {
    Boxed,
    Pool,
    PoolReset,
}

const VARIANTS: [(Variant, &str); 3] = [
    (Variant::Boxed, "box_new_drop"),
    (Variant::Pool, "pool"),
    (Variant::PoolReset, "pool_reset_zero"),
];

struct Pools {
    plain: ObjectPool<Robot>,
    reset: ObjectPool<Robot>,
}

impl Pools {
    fn new() -> Self {
        let config = PoolConfig::default();
        Self {
            plain: ObjectPool::new(config, Robot::new).unwrap(),
            reset: ObjectPool::with_reset(config, Robot::new, |r| r.state.fill(0.0)).unwrap(),
        }
    }

    /// `iters` acquire/use/release rounds of one variant on this thread.
    #[inline(never)]
    fn rounds(&self, v: Variant, iters: u64) {
        for i in 0..iters {
            match v {
                Variant::Boxed => {
                    let mut r = Box::new(Robot::new());
                    r.state[(i % 768) as usize] += 1.0;
                    black_box(&mut r);
                }
                Variant::Pool => {
                    let mut r = self.plain.acquire().unwrap();
                    r.state[(i % 768) as usize] += 1.0;
                    black_box(&mut r);
                }
                Variant::PoolReset => {
                    let mut r = self.reset.acquire().unwrap();
                    r.state[(i % 768) as usize] += 1.0;
                    black_box(&mut r);
                }
            }
        }
    }
}

/// Wall time for `threads` threads doing `iters` rounds each, starting together.
fn run(pools: &Pools, v: Variant, threads: usize, iters: u64) -> Duration {
    if threads == 1 {
        let t = Instant::now();
        pools.rounds(v, iters);
        return t.elapsed();
    }
    let start = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    pools.rounds(v, iters);
                    Instant::now()
                })
            })
            .collect();
        start.wait();
        let t0 = Instant::now();
        let ends: Vec<Instant> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        ends.into_iter().max().unwrap() - t0
    })
}

fn summary(pools: &Pools) {
    let iters = 500_000;
    for threads in [1usize, 2] {
        let mut ns: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
        for _ in 0..5 {
            for (i, (v, _)) in VARIANTS.iter().enumerate() {
                let t = run(pools, *v, threads, iters);
                // Nanoseconds per round on each thread (threads run at once).
                ns[i].push(t.as_nanos() as f64 / iters as f64);
            }
        }
        let ns: Vec<f64> = ns.into_iter().map(median).collect();
        println!(
            "3 KB object, {threads} thread(s), {iters} rounds each, median of 5 interleaved rounds:"
        );
        for ((_, name), t) in VARIANTS.iter().zip(&ns) {
            println!("  {name:<16} {t:>7.1} ns per acquire+release");
        }
        println!(
            "  ratios: box/pool {:.1}x faster with the pool, box/pool_reset {:.1}x",
            ns[0] / ns[1],
            ns[0] / ns[2]
        );
    }
    let s = pools.plain.stats();
    println!(
        "pool stats: hits {} misses {} live {} (hit rate {:.6})",
        s.hits,
        s.misses,
        s.live,
        s.hit_rate()
    );
}

fn bench(c: &mut Criterion, pools: &Pools) {
    for threads in [1usize, 2] {
        let mut group = c.benchmark_group(format!("object_3KB_{threads}_threads"));
        group.throughput(Throughput::Elements(threads as u64));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        for (v, name) in VARIANTS {
            group.bench_function(name, |b| {
                b.iter_custom(|iters| run(pools, v, threads, iters))
            });
        }
        group.finish();
    }
}

fn main() {
    let pools = Pools::new();
    summary(&pools);
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, &pools);
    c.final_summary();
}
