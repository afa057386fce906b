//! The Rust twin of `examples/c/dispatch_any.c`: two jobs dispatched to any
//! idle sphere and waited for with a timeout. With one sphere (2 CPUs, or
//! `CLLM_NUM_THREADS=2`) the second dispatch finds none idle, so the program
//! waits for the first job and dispatches again.
//! `cargo run --release -p sphere-pool --example dispatch_any`. Exits
//! non-zero if a check fails.

use sphere_pool::{Error, SpherePool};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let pool = match SpherePool::new(0) {
        Ok(pool) => pool,
        Err(e) => {
            eprintln!("pool: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{} sphere(s)", pool.spheres());
    let ranges = [0u64..50_000_000, 50_000_000..100_000_000];
    let sums: Vec<Arc<AtomicU64>> = ranges.iter().map(|_| Arc::default()).collect();
    let job = |k: usize| {
        let (range, out) = (ranges[k].clone(), sums[k].clone());
        move || out.store(range.sum(), Ordering::Relaxed)
    };
    let mut spheres = Vec::new();
    let mut waited = [false; 2];
    for k in 0..2 {
        let mut picked = pool.dispatch_any(job(k));
        if let (Err(e @ Error::NoIdleSphere { .. }), 1) = (&picked, k) {
            println!("job 1: {e}; waiting for job 0 first");
            if let Err(e) = pool.wait_timeout(spheres[0], TIMEOUT) {
                eprintln!("wait for job 0: {e}");
                return ExitCode::FAILURE;
            }
            waited[0] = true;
            picked = pool.dispatch_any(job(k));
        }
        match picked {
            Ok(sphere) => {
                println!("job {k} went to sphere {sphere}");
                spheres.push(sphere);
            }
            Err(e) => {
                eprintln!("dispatch job {k}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let mut failed = false;
    for k in 0..2 {
        if !waited[k] {
            if let Err(e) = pool.wait_timeout(spheres[k], TIMEOUT) {
                eprintln!("job {k}: {e}");
                failed = true;
            }
        }
    }
    for (k, range) in ranges.iter().enumerate() {
        let (a, b) = (range.start, range.end);
        let expected = (b - a) * (a + b - 1) / 2;
        let got = sums[k].load(Ordering::Relaxed);
        let ok = got == expected;
        failed |= !ok;
        println!("job {k}: sum {got} {}", if ok { "ok" } else { "WRONG" });
    }
    if failed {
        println!("FAILED");
        ExitCode::FAILURE
    } else {
        println!("both jobs done");
        ExitCode::SUCCESS
    }
}
