//! Contended counter increments from every CPU: the plan's locked counter
//! (`parking_lot::Mutex<u64>`), the same behind our `CountingMutex`, one
//! shared `AtomicU64`, and `sync_stats::ShardedCounter`; plus the cost of an
//! uncontended lock/unlock with and without contention counting.
//!
//! `cargo bench -p cllm-benches --bench contention` first prints a summary
//! measured in this process (median of interleaved rounds, each checked for
//! the exact final count) with the throughput ratios, then runs the
//! criterion groups. Default run: about 20 s.

use cllm_benches::median;
use criterion::{Criterion, Throughput};
use parking_lot::Mutex;
use std::hint::black_box;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use sync_stats::{CountingMutex, ShardedCounter};

/// One way of counting from many threads.
#[derive(Clone, Copy)]
enum Variant {
    Mutex,
    CountingMutex,
    Atomic,
    Sharded,
}

const VARIANTS: [(Variant, &str); 4] = [
    (Variant::Mutex, "mutex"),
    (Variant::CountingMutex, "counting_mutex"),
    (Variant::Atomic, "atomic"),
    (Variant::Sharded, "sharded"),
];

struct Counters {
    mutex: Mutex<u64>,
    counting: CountingMutex<u64>,
    atomic: AtomicU64,
    sharded: ShardedCounter,
}

impl Counters {
    fn new() -> Self {
        Self {
            mutex: Mutex::new(0),
            counting: CountingMutex::new("bench", 0),
            atomic: AtomicU64::new(0),
            sharded: ShardedCounter::new(),
        }
    }

    #[inline]
    fn increment(&self, v: Variant) {
        match v {
            Variant::Mutex => *self.mutex.lock() += 1,
            Variant::CountingMutex => *self.counting.lock() += 1,
            Variant::Atomic => {
                self.atomic.fetch_add(1, Ordering::Relaxed);
            }
            Variant::Sharded => self.sharded.inc(),
        }
    }

    fn total(&self, v: Variant) -> u64 {
        match v {
            Variant::Mutex => *self.mutex.lock(),
            Variant::CountingMutex => *self.counting.lock(),
            Variant::Atomic => self.atomic.load(Ordering::Relaxed),
            Variant::Sharded => self.sharded.sum(),
        }
    }
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Wall time for `threads` threads to do `per_thread` increments each, all
/// starting together; checks the final count.
fn run(v: Variant, threads: usize, per_thread: u64) -> Duration {
    let counters = Counters::new();
    let start = Barrier::new(threads + 1);
    let elapsed = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    for _ in 0..per_thread {
                        counters.increment(v);
                    }
                    Instant::now()
                })
            })
            .collect();
        start.wait();
        let t0 = Instant::now();
        let ends: Vec<Instant> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        ends.into_iter().max().unwrap() - t0
    });
    assert_eq!(
        counters.total(v),
        threads as u64 * per_thread,
        "lost increments"
    );
    elapsed
}

/// Nanoseconds per uncontended lock/unlock of a plain and a counting mutex.
fn uncontended_ns(rounds: u64) -> (f64, f64) {
    let plain = Mutex::new(0u64);
    let counting = CountingMutex::new("uncontended", 0u64);
    let mut p = Vec::new();
    let mut c = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..rounds {
            *black_box(&plain).lock() += 1;
        }
        p.push(t.elapsed().as_nanos() as f64 / rounds as f64);
        let t = Instant::now();
        for _ in 0..rounds {
            *black_box(&counting).lock() += 1;
        }
        c.push(t.elapsed().as_nanos() as f64 / rounds as f64);
    }
    (median(p), median(c))
}

fn summary() {
    let n = threads();
    let per_thread = 5_000_000;
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    for _ in 0..5 {
        // Interleaved rounds: a slow moment of the machine hits every variant.
        for (i, (v, _)) in VARIANTS.iter().enumerate() {
            let t = run(*v, n, per_thread);
            rates[i].push((n as u64 * per_thread) as f64 / t.as_secs_f64());
        }
    }
    let rate: Vec<f64> = rates.into_iter().map(median).collect();
    println!(
        "contended increments, {n} threads x {per_thread} each, median of 5 interleaved rounds:"
    );
    for ((_, name), r) in VARIANTS.iter().zip(&rate) {
        println!("  {name:<15} {:>8.1} M increments/s", r / 1e6);
    }
    let (mutex, counting, atomic, sharded) = (rate[0], rate[1], rate[2], rate[3]);
    println!(
        "  ratios: sharded/atomic {:.1}x, sharded/mutex {:.1}x, atomic/mutex {:.1}x, counting_mutex/mutex {:.2}x",
        sharded / atomic,
        sharded / mutex,
        atomic / mutex,
        counting / mutex
    );
    let (plain_ns, counting_ns) = uncontended_ns(2_000_000);
    println!(
        "uncontended lock+unlock, 1 thread: parking_lot {plain_ns:.1} ns, CountingMutex {counting_ns:.1} ns ({:+.1} ns for counting)",
        counting_ns - plain_ns
    );
}

fn bench(c: &mut Criterion) {
    let n = threads();
    let mut group = c.benchmark_group(format!("contended_increment_{n}_threads"));
    group.throughput(Throughput::Elements(n as u64));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for (v, name) in VARIANTS {
        // One criterion iteration = one increment by each thread.
        group.bench_function(name, |b| b.iter_custom(|iters| run(v, n, iters)));
    }
    group.finish();

    let mut group = c.benchmark_group("uncontended_lock_unlock");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    let plain = Mutex::new(0u64);
    group.bench_function("parking_lot", |b| b.iter(|| *black_box(&plain).lock() += 1));
    let counting = CountingMutex::new("uncontended", 0u64);
    group.bench_function("counting_mutex", |b| {
        b.iter(|| *black_box(&counting).lock() += 1)
    });
    group.finish();
}

fn main() {
    summary();
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
