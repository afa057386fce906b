//! Gradient reduction bandwidth (crates/grad-reduce) beside two baselines
//! run in the same process on the same pool:
//! - `copy`: a parallel `copy_from_slice` of every source buffer into a
//!   scratch buffer, cut into the same pieces, on the same threads: what
//!   the memory system gives for moving the same data;
//! - `seed_locked`: the seed's approach, one thread summing every buffer
//!   into the destination under a lock.
//!
//! Bandwidth is bytes read + bytes written per second (STREAM's convention:
//! the write-allocate reads are not counted). A reduction of N sources of L
//! floats moves (N + 1) * L * 4 bytes (the seed's approach does the same job
//! and is credited with the same bytes); the copy moves 2 * N * L * 4.
//!
//! `cargo bench -p cllm-benches --bench grad_reduce` prints a summary table
//! (median of interleaved rounds) and then runs the criterion benches.

use cllm_benches::{cpu_line, load_average, median};
use criterion::{BenchmarkId, Criterion, Throughput};
use grad_reduce::{GradReducer, Weights};
use sphere_pool::{SpherePool, default_spheres};
use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One benchmark case: `sources` gradient sets of `floats` floats each, laid
/// out in a few buffers like a model's gradient list.
struct Case {
    name: &'static str,
    sources: usize,
    floats: usize,
}

const CASES: [Case; 2] = [
    // 4 x 16 MiB sources + a 16 MiB destination: far beyond the caches.
    Case {
        name: "4x4M_dram",
        sources: 4,
        floats: 4 << 20,
    },
    // 4 x 512 KiB: the working set fits in the last-level cache.
    Case {
        name: "4x128K_cache",
        sources: 4,
        floats: 128 << 10,
    },
];

/// A model-like layout: a big embedding, two matrices, two small biases.
fn layout(floats: usize) -> Vec<usize> {
    let bias = 512;
    let rest = floats - 2 * bias;
    vec![rest / 4, rest / 2, bias, rest - rest / 4 - rest / 2, bias]
}

struct Data {
    reducer: GradReducer,
    sources: Vec<Vec<Vec<f32>>>,
    dst: Vec<Vec<f32>>,
    scratch: Vec<Vec<Vec<f32>>>,
    chunk: usize,
}

impl Data {
    fn new(case: &Case) -> Self {
        let lens = layout(case.floats);
        let sources = (0..case.sources)
            .map(|i| {
                lens.iter()
                    .map(|&len| {
                        (0..len)
                            .map(|k| ((k * 7 + i) % 113) as f32 * 1e-3)
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let dst = lens.iter().map(|&len| vec![0.0; len]).collect();
        let scratch = (0..case.sources)
            .map(|_| lens.iter().map(|&len| vec![0.0; len]).collect())
            .collect();
        let reducer = GradReducer::new(&lens);
        let chunk = reducer.config().chunk_len;
        Self {
            reducer,
            sources,
            dst,
            scratch,
            chunk,
        }
    }

    fn reduce(&mut self, pool: Option<&SpherePool>) {
        let sources: Vec<Vec<&[f32]>> = self
            .sources
            .iter()
            .map(|s| s.iter().map(Vec::as_slice).collect())
            .collect();
        let mut dst: Vec<&mut [f32]> = self.dst.iter_mut().map(Vec::as_mut_slice).collect();
        let summary = self
            .reducer
            .reduce(pool, &sources, Weights::Mean, &mut dst, None)
            .unwrap();
        black_box(summary);
    }

    /// Every source buffer copied into scratch, in the reducer's piece size,
    /// spread over the pool with the same `parallel_for` (`None`: the
    /// calling thread alone).
    fn copy(&mut self, pool: Option<&SpherePool>) {
        let chunk = self.chunk;
        let jobs: Vec<Mutex<(&mut [f32], &[f32])>> = self
            .scratch
            .iter_mut()
            .flatten()
            .zip(self.sources.iter().flatten())
            .flat_map(|(to, from)| to.chunks_mut(chunk).zip(from.chunks(chunk)))
            .map(Mutex::new)
            .collect();
        let run = |range: std::ops::Range<usize>| {
            for job in &jobs[range] {
                let mut job = job.lock().unwrap();
                let (to, from) = &mut *job;
                to.copy_from_slice(from);
            }
        };
        match pool {
            Some(pool) => pool.parallel_for(0..jobs.len(), 0, run).unwrap(),
            None => run(0..jobs.len()),
        }
        black_box(&self.scratch);
    }

    /// The seed's approach: one thread zeroes the destination and adds every
    /// source into it, buffer by buffer, holding one lock.
    fn seed_locked(&mut self, lock: &Mutex<()>) {
        let _guard = lock.lock().unwrap();
        let scale = 1.0 / self.sources.len() as f32;
        self.dst.iter_mut().for_each(|b| b.fill(0.0));
        for source in &self.sources {
            for (to, from) in self.dst.iter_mut().zip(source) {
                for (d, s) in to.iter_mut().zip(from) {
                    *d += scale * *s;
                }
            }
        }
        black_box(&self.dst);
    }
}

fn reduce_bytes(case: &Case) -> u64 {
    ((case.sources + 1) * case.floats * 4) as u64
}

fn copy_bytes(case: &Case) -> u64 {
    (2 * case.sources * case.floats * 4) as u64
}

fn gbps(bytes: u64, t: Duration) -> f64 {
    bytes as f64 / t.as_secs_f64() / 1e9
}

/// The summary: interleaved rounds of every variant, medians, ratios.
fn print_summary(pool: &SpherePool) {
    let threads = pool.participants();
    println!(
        "grad_reduce summary: {threads} threads = {} spheres + caller; medians of interleaved rounds; \
         {}; load average before: {}",
        pool.spheres(),
        cpu_line(),
        load_average()
    );
    println!(
        "{:<13} {:>7} {:>11} {:>10} {:>11} {:>10} {:>12}",
        "case", "threads", "reduce GB/s", "copy GB/s", "reduce/copy", "seed GB/s", "reduce/seed"
    );
    let lock = Mutex::new(());
    for case in &CASES {
        let mut data = Data::new(case);
        let rounds = if case.floats >= 1 << 22 { 15 } else { 200 };
        // [reduce N, reduce 1, copy N, copy 1, seed]
        let mut times: [Vec<Duration>; 5] = Default::default();
        for round in 0..rounds + 2 {
            let mut timed = |slot: usize, f: &mut dyn FnMut()| {
                let t = Instant::now();
                f();
                // The first two rounds warm the caches and the page tables.
                if round >= 2 {
                    times[slot].push(t.elapsed());
                }
            };
            timed(0, &mut || data.reduce(Some(pool)));
            timed(1, &mut || data.reduce(None));
            timed(2, &mut || data.copy(Some(pool)));
            timed(3, &mut || data.copy(None));
            timed(4, &mut || data.seed_locked(&lock));
        }
        let [reduce_n, reduce_1, copy_n, copy_1, seed] = times.map(median);
        let seed = gbps(reduce_bytes(case), seed);
        for (n, reduce, copy) in [(threads, reduce_n, copy_n), (1, reduce_1, copy_1)] {
            let r = gbps(reduce_bytes(case), reduce);
            let c = gbps(copy_bytes(case), copy);
            println!(
                "{:<13} {:>7} {:>11.2} {:>10.2} {:>10.0}% {:>10.2} {:>11.2}x",
                case.name,
                n,
                r,
                c,
                100.0 * r / c,
                seed,
                r / seed
            );
        }
    }
}

fn bench(c: &mut Criterion) {
    let pool = SpherePool::new(default_spheres()).unwrap();
    print_summary(&pool);
    let lock = Mutex::new(());
    for case in &CASES {
        let mut data = Data::new(case);
        let mut group = c.benchmark_group(format!("grad_reduce/{}", case.name));
        group.throughput(Throughput::Bytes(reduce_bytes(case)));
        group.bench_function(BenchmarkId::new("reduce", pool.participants()), |b| {
            b.iter(|| data.reduce(Some(&pool)))
        });
        group.bench_function(BenchmarkId::new("reduce", 1), |b| {
            b.iter(|| data.reduce(None))
        });
        group.bench_function("seed_locked", |b| b.iter(|| data.seed_locked(&lock)));
        group.throughput(Throughput::Bytes(copy_bytes(case)));
        group.bench_function(BenchmarkId::new("copy", pool.participants()), |b| {
            b.iter(|| data.copy(Some(&pool)))
        });
        group.finish();
    }
}

fn main() {
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1500))
        .configure_from_args();
    bench(&mut criterion);
    criterion.final_summary();
}
