//! A timing harness for the word tokeniser alone (not a test: `#[ignore]`).
//!
//! ```text
//! make bench-loader   # once: generates target/loader-bench/corpus
//! cargo test --release -p corpus-loader --lib tokenize_bench -- --ignored --nocapture
//! ```
//!
//! It tokenises one file of the bench corpus (`TOKENIZE_BENCH_FILE`, default
//! the 12.6 MB `part-00/big-0.txt`) in pieces of about 70 kB (the corpus's
//! file size) into one fresh table per run, as a worker does, and prints the
//! best and median thread CPU time of `TOKENIZE_BENCH_RUNS` runs (default
//! 15) as ns per token and MB/s. Thread CPU time leaves out the time other
//! processes take from this thread, not their effect on the caches.

use crate::tokenize::{MAX_UNITS_PER_BYTE, WordTable, is_word_byte, tokenize_words};
use std::path::PathBuf;

/// Seconds of CPU time this thread has used.
fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// `data` cut into pieces of about `size` bytes, each ending after a
/// non-word byte (so no token is split).
fn pieces(data: &[u8], size: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let mut end = size.min(rest.len());
        while end < rest.len() && is_word_byte(rest[end - 1]) {
            end += 1;
        }
        let (piece, tail) = rest.split_at(end);
        out.push(piece);
        rest = tail;
    }
    out
}

/// One run over all pieces: (CPU seconds, tokens, distinct tokens).
fn run(pieces: &[&[u8]], out: &mut Vec<u16>) -> (f64, usize, usize) {
    out.clear();
    let mut table = WordTable::new();
    let t0 = thread_cpu_s();
    let mut tokens = 0;
    for piece in pieces {
        tokens += tokenize_words(piece, &mut table, out);
    }
    let t = thread_cpu_s() - t0;
    (t, tokens, table.len())
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
#[ignore = "a timing harness: needs the make bench-loader corpus"]
fn tokenize_bench() {
    let path = std::env::var_os("TOKENIZE_BENCH_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/loader-bench/corpus/part-00/big-0.txt")
        });
    let data = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run make bench-loader once, or set TOKENIZE_BENCH_FILE)",
            path.display()
        )
    });
    let runs: usize = env_or("TOKENIZE_BENCH_RUNS", 15);
    let pieces = pieces(&data, env_or("TOKENIZE_BENCH_PIECE", 70_000));
    // Written once before timing (not zeroes: calloc's pages would stay
    // unmapped), so no run pays the buffer's page faults.
    let mut out = vec![1u16; MAX_UNITS_PER_BYTE * data.len()];
    let mut times = Vec::new();
    let mut counts = None;
    for _ in 0..runs {
        let (t, tokens, distinct) = run(&pieces, &mut out);
        assert!(counts.is_none_or(|c| c == (tokens, distinct)));
        counts = Some((tokens, distinct));
        times.push(t);
    }
    times.sort_by(f64::total_cmp);
    let (tokens, distinct) = counts.expect("at least one run");
    let cpu = thread_support::cpu_model_name().unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("{cpu}");
    println!(
        "file {} ({} bytes, {} pieces, {tokens} tokens, {distinct} distinct), {runs} runs, load {}",
        path.display(),
        data.len(),
        pieces.len(),
        load.trim()
    );
    for (name, t) in [("best", times[0]), ("median", times[runs / 2])] {
        println!(
            "tokenize_words {name}: {:.2} ns/token, {:.0} MB/s ({:.1} ms)",
            t * 1e9 / tokens as f64,
            data.len() as f64 / t / 1e6,
            t * 1e3
        );
    }
}
