//! The loader benchmark (`make bench-loader`) and its fast check
//! (`make loader-check`, part of `make test`).
//!
//! Generates a deterministic corpus once (English-like text drawn from the
//! words of `data/corpus` with a Zipf law, a few big files, a few binary
//! files), then measures in the same process:
//! - `cat`: one thread opens each file in walk order and `read()`s it into one
//!   reused 256 KiB buffer until EOF (like `cat > /dev/null`);
//! - `cold`: a load without a cache (the cache file is deleted first), which
//!   reads, tokenises and writes the cache;
//! - `warm`: a load that finds the cache valid.
//!
//! Rates are corpus bytes (all regular files) divided by wall time. Each
//! figure is measured twice: with the OS page cache warm (the corpus and
//! cache files are in memory; the best of several runs, and on a `detail`
//! line their medians, with the load average before and after: on a shared
//! machine the two differ widely) and, when this
//! process may write `/proc/sys/vm/drop_caches` (root), with the page cache
//! dropped before each run (the files come from the disk). The last line is
//! `loader cold_mb_s=.. warm_mb_s=.. cat_mb_s=.. tokenize_mb_s_per_core=..
//! files_opened=.. files=..` with the page-cache-warm figures (the tokeniser's
//! rate is text bytes per second of its CPU time, in the fastest cold load); `files_opened` is the cold load's count
//! (the warm load's, which must be 1, is on the `detail` lines).
//!
//! Usage: `bench_loader [--dir D] [--mb N] [--files N] [--spheres N] [--runs N] [--check]
//! [--hot-only] [--warm-loop N] [--cold-loop N]` (`--hot-only` skips the
//! dropped-page-cache figures; the loops only repeat warm or cold loads, for
//! profiling).
//! `--check` uses a tiny corpus and fails unless a cold load opens every
//! file once and a warm load opens only the cache.

use corpus_loader::{CacheStatus, Corpus, Loader, LoaderConfig, Source, SplitMix64};
use sphere_pool::SpherePool;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Bumped whenever the generator changes, so an old corpus is regenerated.
const GENERATOR_VERSION: u32 = 1;

struct Options {
    dir: PathBuf,
    mb: usize,
    files: usize,
    spheres: usize,
    runs: usize,
    check: bool,
    /// Only run this many warm loads (for profiling).
    warm_loop: usize,
    /// Only run this many cold loads (for profiling).
    cold_loop: usize,
    /// Skip the figures with the page cache dropped (they drop the whole
    /// machine's page cache: not while others work on it).
    hot_only: bool,
}

fn parse_options() -> Options {
    let mut o = Options {
        dir: PathBuf::from("target/loader-bench"),
        mb: 200,
        files: 3000,
        spheres: 0,
        runs: 3,
        check: false,
        warm_loop: 0,
        cold_loop: 0,
        hot_only: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| die(&format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "--dir" => o.dir = PathBuf::from(value()),
            "--mb" => o.mb = number(&arg, value()),
            "--files" => o.files = number(&arg, value()),
            "--spheres" => o.spheres = number(&arg, value()),
            "--runs" => o.runs = number(&arg, value()),
            "--check" => o.check = true,
            "--hot-only" => o.hot_only = true,
            "--cold-loop" => o.cold_loop = number(&arg, value()),
            "--warm-loop" => o.warm_loop = number(&arg, value()),
            _ => die(&format!("unknown argument {arg}")),
        }
    }
    if o.check {
        o.mb = 2;
        o.files = 40;
        o.runs = 1;
        if o.dir == Path::new("target/loader-bench") {
            o.dir = PathBuf::from("target/loader-check");
        }
    }
    o
}

/// The value of option `arg` as a count, or exit saying it takes one.
fn number(arg: &str, value: String) -> usize {
    value
        .parse()
        .unwrap_or_else(|_| die(&format!("{arg} takes a number")))
}

fn die(msg: &str) -> ! {
    eprintln!("bench_loader: {msg}");
    std::process::exit(2)
}

/// The words of the shipped demo corpus, the seed of the generated text.
fn seed_words() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/corpus");
    let mut words = std::collections::BTreeMap::<String, u64>::new();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| die(&format!("cannot list {}: {e}", dir.display())))
        .map(|e| e.expect("entry").path())
        .collect();
    names.sort();
    for path in names {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for w in text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            *words.entry(w.to_lowercase()).or_default() += 1;
        }
    }
    let mut by_count: Vec<(String, u64)> = words.into_iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    by_count.into_iter().map(|(w, _)| w).collect()
}

/// English-like text: Zipf-distributed words (the demo corpus's words by
/// frequency, then made-up words for a long tail), sentences, commas,
/// paragraphs, lines of about 72 characters.
struct TextGen {
    words: Vec<String>,
    cumulative: Vec<f64>,
    rng: SplitMix64,
}

impl TextGen {
    fn new(seed: u64) -> Self {
        let mut words = seed_words();
        let syllables = [
            "ka", "lo", "mi", "ne", "ru", "sa", "ti", "ver", "ion", "al", "con", "ed", "ing", "or",
            "un",
        ];
        let mut rng = SplitMix64::new(0xC0FFEE);
        while words.len() < 60_000 {
            let n = 2 + rng.below(3) as usize;
            let w: String = (0..n)
                .map(|_| syllables[rng.below(syllables.len() as u64) as usize])
                .collect();
            words.push(w);
        }
        let mut total = 0.0;
        let cumulative = (0..words.len())
            .map(|r| {
                total += 1.0 / ((r + 1) as f64).powf(1.05);
                total
            })
            .collect();
        Self {
            words,
            cumulative,
            rng: SplitMix64::new(seed),
        }
    }

    fn word(&mut self) -> &str {
        let total = *self.cumulative.last().expect("words");
        let x = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
        let i = self
            .cumulative
            .partition_point(|&c| c < x)
            .min(self.words.len() - 1);
        &self.words[i]
    }

    fn text(&mut self, bytes: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes + 200);
        let mut line = 0;
        while out.len() < bytes {
            let words = 5 + self.rng.below(20) as usize;
            for k in 0..words {
                let mut w = self.word().to_string();
                if k == 0 {
                    w[..1].make_ascii_uppercase();
                }
                if line + w.len() > 72 {
                    out.push(b'\n');
                    line = 0;
                } else if line > 0 {
                    out.push(b' ');
                    line += 1;
                }
                out.extend_from_slice(w.as_bytes());
                line += w.len();
                if k + 1 < words && self.rng.below(10) == 0 {
                    out.push(b',');
                    line += 1;
                }
            }
            out.push(if self.rng.below(8) == 0 { b'?' } else { b'.' });
            line += 1;
            if self.rng.below(6) == 0 {
                out.extend_from_slice(b"\n\n");
                line = 0;
            }
        }
        out.push(b'\n');
        out
    }
}

/// Writes the corpus (if it is not there yet). Returns true if it was made now.
fn generate(corpus: &Path, mb: usize, files: usize) -> bool {
    let marker = corpus.with_extension("done");
    let spec = format!("v{GENERATOR_VERSION} mb={mb} files={files}\n");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(spec.as_str()) {
        return false;
    }
    let _ = std::fs::remove_dir_all(corpus);
    let started = Instant::now();
    let mut text = TextGen::new(42);
    let mut rng = SplitMix64::new(7);
    let big_files = if files >= 100 { 2 } else { 0 };
    let binary_files = (files / 300).max(1);
    let total = mb << 20;
    let big_size = 12 << 20;
    let small_total = total.saturating_sub(big_files * big_size);
    let small_files = files - big_files - binary_files;
    let mean = small_total / small_files.max(1);
    for i in 0..files {
        let dir = corpus.join(format!("part-{:02}", i % 30));
        std::fs::create_dir_all(&dir).expect("create corpus dir");
        let (name, data) = if i < big_files {
            (format!("big-{i}.txt"), text.text(big_size))
        } else if i < big_files + binary_files {
            let data: Vec<u8> = (0..50_000).map(|_| rng.next_u64() as u8).collect();
            (format!("blob-{i}.bin"), data)
        } else {
            let size = mean / 4 + rng.below(mean as u64 * 3 / 2) as usize;
            (format!("doc-{i:05}.txt"), text.text(size))
        };
        File::create(dir.join(name))
            .and_then(|mut f| f.write_all(&data))
            .expect("write corpus file");
    }
    std::fs::write(&marker, spec).expect("write marker");
    println!(
        "generated {} in {:.1}s",
        corpus.display(),
        started.elapsed().as_secs_f64()
    );
    true
}

/// The regular files in walk order and their total size.
fn list(corpus: &Path) -> (Vec<PathBuf>, u64) {
    fn visit(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry"))
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let t = e.file_type().expect("type");
            if t.is_dir() {
                visit(&e.path(), out);
            } else if t.is_file() {
                out.push(e.path());
            }
        }
    }
    let mut files = Vec::new();
    visit(corpus, &mut files);
    let bytes = files
        .iter()
        .map(|p| std::fs::metadata(p).expect("stat").len())
        .sum();
    (files, bytes)
}

/// Plain sequential reads of every file, like `cat > /dev/null`.
fn cat(files: &[PathBuf]) -> (Duration, u64) {
    let mut buf = vec![0u8; 256 << 10];
    let started = Instant::now();
    let mut total = 0u64;
    for path in files {
        let mut f = File::open(path).expect("open");
        loop {
            let n = f.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            total += n as u64;
        }
    }
    (started.elapsed(), total)
}

/// The `model name` line of /proc/cpuinfo.
fn cpu_model() -> String {
    thread_support::cpu_model_name().unwrap_or_else(|| "unknown".into())
}

/// Drops the OS page cache (needs root). False if not allowed.
fn drop_page_cache() -> bool {
    // SAFETY: sync() has no preconditions.
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

fn load(loader: &Loader, corpus: &Path, pool: &SpherePool) -> (Duration, Corpus) {
    let started = Instant::now();
    let c = loader
        .load(&Source::Directory(corpus.to_owned()), pool)
        .unwrap_or_else(|e| die(&e.to_string()));
    (started.elapsed(), c)
}

struct Figures {
    cat: Duration,
    cold: Duration,
    warm: Duration,
    opened_cold: u64,
    opened_warm: u64,
    /// Text bytes per second of tokeniser CPU time (per core), in the
    /// fastest cold load.
    tokenize_core: f64,
    /// Every run's time, for the medians (the figures above are the best).
    all_cat: Vec<Duration>,
    all_cold: Vec<Duration>,
    all_warm: Vec<Duration>,
}

/// The median of some durations (the upper one of an even count).
fn median(mut d: Vec<Duration>) -> Duration {
    d.sort();
    d.get(d.len() / 2).copied().unwrap_or(Duration::MAX)
}

/// The 1-minute load average (other programs competing for the cores).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// Everything a measurement needs.
struct Bench {
    runs: usize,
    loader: Loader,
    corpus: PathBuf,
    cache: PathBuf,
    files: Vec<PathBuf>,
    pool: SpherePool,
}

fn measure(label: &str, drop_caches: bool, bench: &Bench) -> Figures {
    let Bench {
        loader,
        corpus,
        cache,
        files,
        pool,
        ..
    } = bench;
    let (corpus, cache) = (corpus.as_path(), cache.as_path());
    // With a warm page cache each figure is the best of several runs (the
    // cheap ones more often): that filters out moments when other programs
    // held the cores. With the page cache dropped, one run each.
    let (runs, cats, warms) = if drop_caches {
        (1, 1, 1)
    } else {
        (bench.runs, 3, 5)
    };
    // One timed load, from a dropped page cache if asked, that must find the
    // cache `expected`.
    let timed_load = |expected: CacheStatus, why: &str| {
        if drop_caches {
            drop_page_cache();
        }
        let (t, c) = load(loader, corpus, pool);
        let r = c.report();
        assert_eq!(r.cache_status, expected, "{why}: {}", r.cache_note);
        (t, c)
    };
    let mut f = Figures {
        cat: Duration::MAX,
        cold: Duration::MAX,
        warm: Duration::MAX,
        opened_cold: 0,
        opened_warm: 0,
        tokenize_core: 0.0,
        all_cat: Vec::new(),
        all_cold: Vec::new(),
        all_warm: Vec::new(),
    };
    for _ in 0..runs {
        for _ in 0..cats {
            if drop_caches {
                drop_page_cache();
            }
            let t = cat(files).0;
            f.cat = f.cat.min(t);
            f.all_cat.push(t);
        }
        let _ = std::fs::remove_file(cache);
        let (t, c) = timed_load(CacheStatus::Missing, "a cold load has no cache");
        let r = c.report();
        if t < f.cold {
            println!("{label} cold: {r}");
            f.tokenize_core = r.bytes as f64 / r.timings.tokenize.as_secs_f64();
        }
        f.cold = f.cold.min(t);
        f.all_cold.push(t);
        f.opened_cold = r.files_opened;
        drop(c);
        for _ in 0..warms {
            let (t, c) = timed_load(CacheStatus::Hit, "the second load hits the cache");
            let r = c.report();
            if t < f.warm {
                println!("{label} warm: {r}");
            }
            f.warm = f.warm.min(t);
            f.all_warm.push(t);
            f.opened_warm = r.files_opened;
        }
    }
    f
}

fn main() {
    let o = parse_options();
    let corpus = o.dir.join("corpus");
    let cache = o.dir.join("corpus.cache");
    std::fs::create_dir_all(&o.dir).expect("create bench dir");
    if generate(&corpus, o.mb, o.files) {
        // Files written within one time-stamp tick of a build are "racy" and
        // re-hashed by the next load; let the clock move on first.
        std::thread::sleep(Duration::from_millis(50));
    }
    let (files, bytes) = list(&corpus);
    let pool = SpherePool::new(if o.spheres == 0 {
        sphere_pool::default_spheres()
    } else {
        o.spheres
    })
    .unwrap_or_else(|e| die(&e.to_string()));
    let loader = Loader::new(LoaderConfig {
        cache_path: Some(cache.clone()),
        ..LoaderConfig::default()
    });
    let mb = bytes as f64 / 1e6;
    let spheres = pool.spheres();
    let bench = Bench {
        runs: o.runs,
        loader,
        corpus,
        cache,
        files,
        pool,
    };
    println!(
        "cpu model=\"{}\" cores={}",
        cpu_model(),
        thread_support::available_cores()
    );
    println!(
        "corpus: {} regular files, {:.1} MB; {} spheres + the calling thread; {} cores",
        bench.files.len(),
        mb,
        spheres,
        thread_support::available_cores()
    );
    if o.cold_loop > 0 {
        let (mut tokenize, mut bytes) = (Duration::ZERO, 0);
        // Wall time of each load and of its sequential phases.
        let (mut total, mut vocab, mut assemble, mut write) = (vec![], vec![], vec![], vec![]);
        for _ in 0..o.cold_loop {
            let _ = std::fs::remove_file(&bench.cache);
            let (t, c) = load(&bench.loader, &bench.corpus, &bench.pool);
            let r = c.report();
            total.push(t);
            vocab.push(r.timings.vocab);
            assemble.push(r.timings.assemble);
            write.push(r.timings.cache_write);
            tokenize += r.timings.tokenize;
            bytes += r.bytes;
        }
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{} cold loads: best {:.1} ms, median {:.1} ms, tokeniser {:.0} MB/s per core; medians: \
             vocabulary {:.1} ms, assemble {:.1} ms, cache write {:.1} ms; load average {}",
            o.cold_loop,
            ms(*total.iter().min().expect("a load")),
            ms(median(total)),
            bytes as f64 / 1e6 / tokenize.as_secs_f64(),
            ms(median(vocab)),
            ms(median(assemble)),
            ms(median(write)),
            load_average()
        );
        return;
    }
    if o.warm_loop > 0 {
        let started = Instant::now();
        let (mut walk, mut verify) = (Duration::ZERO, Duration::ZERO);
        // Each load's wall time, and its process CPU time (both threads,
        // dropping the corpus included): on a machine shared with other
        // programs, the best of many is what a quiet one gives.
        let (mut walls, mut cpus) = (Vec::new(), Vec::new());
        for _ in 0..o.warm_loop {
            let cpu0 = thread_support::process_cpu_time();
            let (t, c) = load(&bench.loader, &bench.corpus, &bench.pool);
            assert_eq!(c.report().cache_status, CacheStatus::Hit);
            walk += c.report().timings.walk;
            verify += c.report().timings.cache_read;
            drop(c);
            cpus.push(thread_support::process_cpu_time().saturating_sub(cpu0));
            walls.push(t);
        }
        let each = |d: Duration| d.as_secs_f64() * 1e3 / o.warm_loop as f64;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{} warm loads: {:.2} ms each (walk {:.2} ms, cache {:.2} ms); per load: wall best {:.2} \
             median {:.2} ms, CPU best {:.2} median {:.2} ms; load average {}",
            o.warm_loop,
            each(started.elapsed()),
            each(walk),
            each(verify),
            ms(*walls.iter().min().expect("a load")),
            ms(median(walls)),
            ms(*cpus.iter().min().expect("a load")),
            ms(median(cpus)),
            load_average()
        );
        return;
    }
    let load_start = load_average();
    // Warm the page cache with one pass first.
    cat(&bench.files);
    let hot = measure("page-cache-warm", false, &bench);
    let rate = |d: Duration| mb / d.as_secs_f64();
    println!(
        "detail page_cache=warm cat_mb_s={:.0} cold_mb_s={:.0} warm_mb_s={:.0} cold/cat={:.2} warm/cat={:.2} \
         files_opened_cold={} files_opened_warm={}",
        rate(hot.cat),
        rate(hot.cold),
        rate(hot.warm),
        hot.cat.as_secs_f64() / hot.cold.as_secs_f64(),
        hot.cat.as_secs_f64() / hot.warm.as_secs_f64(),
        hot.opened_cold,
        hot.opened_warm
    );
    let (cat_m, cold_m, warm_m) = (
        median(hot.all_cat.clone()),
        median(hot.all_cold.clone()),
        median(hot.all_warm.clone()),
    );
    println!(
        "detail page_cache=warm median of {} cat, {} cold, {} warm: cat_mb_s={:.0} cold_mb_s={:.0} warm_mb_s={:.0} \
         cold/cat={:.2} warm/cat={:.2}",
        hot.all_cat.len(),
        hot.all_cold.len(),
        hot.all_warm.len(),
        rate(cat_m),
        rate(cold_m),
        rate(warm_m),
        cat_m.as_secs_f64() / cold_m.as_secs_f64(),
        cat_m.as_secs_f64() / warm_m.as_secs_f64(),
    );
    println!(
        "detail load_average start={load_start} end={}",
        load_average()
    );
    if !o.check && !o.hot_only {
        if drop_page_cache() {
            let cold = measure("page-cache-dropped", true, &bench);
            println!(
                "detail page_cache=dropped cat_mb_s={:.0} cold_mb_s={:.0} warm_mb_s={:.0} cold/cat={:.2} \
                 warm/cat={:.2} files_opened_cold={} files_opened_warm={}",
                rate(cold.cat),
                rate(cold.cold),
                rate(cold.warm),
                cold.cat.as_secs_f64() / cold.cold.as_secs_f64(),
                cold.cat.as_secs_f64() / cold.warm.as_secs_f64(),
                cold.opened_cold,
                cold.opened_warm
            );
        } else {
            println!(
                "detail page_cache=dropped: not measured (cannot write /proc/sys/vm/drop_caches)"
            );
        }
    }
    println!(
        "loader cold_mb_s={:.0} warm_mb_s={:.0} cat_mb_s={:.0} tokenize_mb_s_per_core={:.0} files_opened={} files={}",
        rate(hot.cold),
        rate(hot.warm),
        rate(hot.cat),
        hot.tokenize_core / 1e6,
        hot.opened_cold,
        bench.files.len()
    );
    if o.check {
        let ok = hot.opened_cold == bench.files.len() as u64 && hot.opened_warm == 1;
        println!(
            "loader-check: {}",
            if ok {
                "1 passed, 0 failed"
            } else {
                "0 passed, 1 failed"
            }
        );
        if !ok {
            std::process::exit(1);
        }
    }
}
