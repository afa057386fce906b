//! The Rust twin of `examples/c/parallel_sum.c`: the sum of 100 million
//! doubles with `SpherePool::sum_f64`, the same bits with 1, 2 and 4
//! threads. `cargo run --release -p sphere-pool --example parallel_sum [N]`.
//! Exits non-zero if a check fails.

use sphere_pool::SpherePool;
use std::process::ExitCode;
use std::time::Instant;
use thread_support::available_cores;

fn main() -> ExitCode {
    let n: usize = match std::env::args().nth(1).map(|a| a.parse()) {
        None => 100_000_000,
        Some(Ok(n)) if n > 0 => n,
        _ => {
            eprintln!("usage: parallel_sum [N > 0]");
            return ExitCode::from(2);
        }
    };
    // 1/(i+1) with alternating signs and magnitudes: the order matters.
    let data: Vec<f64> = (0..n)
        .map(|i| if i % 3 == 0 { -1e6 } else { 1.0 } / (i + 1) as f64)
        .collect();
    let forward: f64 = data.iter().sum();
    let backward: f64 = data.iter().rev().sum();
    if forward.to_bits() == backward.to_bits() {
        println!("note: this data sums to the same bits in both directions");
    }

    // The machine, so that the times printed can be read.
    let model = thread_support::cpu_model_name().unwrap_or_else(|| "?".to_owned());
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned());
    println!(
        "CPU: {model}, {} CPUs, load average {load}",
        available_cores()
    );
    println!("sum of {n} doubles");
    let mut failed = false;
    let mut first = None;
    for threads in [1, 2, 4] {
        let pool = match SpherePool::with_threads(threads) {
            Ok(pool) => pool,
            Err(e) => {
                eprintln!("pool of {threads} threads: {e}");
                return ExitCode::FAILURE;
            }
        };
        let mut sums = Vec::new();
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let start = Instant::now();
            match pool.sum_f64(&data) {
                Ok(s) => sums.push(s),
                Err(e) => {
                    eprintln!("sum_f64: {e}");
                    return ExitCode::FAILURE;
                }
            }
            best = best.min(start.elapsed().as_secs_f64());
        }
        if sums.iter().any(|s| s.to_bits() != sums[0].to_bits()) {
            eprintln!("FAIL: {threads} threads gave different bits from run to run");
            failed = true;
        }
        let sum = sums[0];
        let same = sum.to_bits() == *first.get_or_insert(sum.to_bits());
        failed |= !same;
        println!(
            "{threads} thread{}: sum {sum:.17e} (bits {:016x}) in {:.2} ms (best of 3){}",
            if threads == 1 { " " } else { "s" },
            sum.to_bits(),
            best * 1e3,
            if same { "" } else { "  DIFFERENT BITS" }
        );
    }
    println!("plain loop forwards {forward:.17e}, backwards {backward:.17e}");
    if failed {
        println!("FAILED");
        ExitCode::FAILURE
    } else {
        println!("same bits with 1, 2 and 4 threads");
        ExitCode::SUCCESS
    }
}
