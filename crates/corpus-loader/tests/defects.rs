//! Regression tests of the loader defects found by adversarial use (issue
//! 13): honest statuses when the cache path is unusable or a file vanishes
//! mid-load.

mod support;

use corpus_loader::{CacheStatus, Corpus, Error, FileSystem, Loader, LoaderConfig, Source};
use sphere_pool::SpherePool;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use support::{TempDir, settle};

fn load_with(
    dir: &Path,
    config: LoaderConfig,
    fs: Option<Arc<dyn FileSystem>>,
) -> Result<Corpus, Error> {
    let mut loader = Loader::new(config);
    if let Some(fs) = fs {
        loader = loader.with_file_system(fs);
    }
    loader.load(
        &Source::Directory(dir.to_owned()),
        &SpherePool::new(2).expect("pool"),
    )
}

fn cached(cache: &Path) -> LoaderConfig {
    LoaderConfig {
        cache_path: Some(cache.to_owned()),
        ..LoaderConfig::default()
    }
}

fn small_corpus(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    dir.write("a.txt", "alpha beta gamma");
    dir.write("sub/b.txt", "delta epsilon");
    settle();
    dir
}

#[test]
fn a_cache_path_that_is_a_directory_is_inaccessible_not_corrupt() {
    let dir = small_corpus("cache-is-dir");
    let elsewhere = TempDir::new("cache-is-dir-c");
    let cache = elsewhere.path().join("corpus.cache");
    std::fs::create_dir(&cache).expect("mkdir");
    let corpus = load_with(dir.path(), cached(&cache), None).expect("the load itself succeeds");
    let r = corpus.report();
    assert_eq!(
        r.cache_status,
        CacheStatus::Inaccessible,
        "{}",
        r.cache_note
    );
    assert!(r.cache_note.contains("is a directory"), "{}", r.cache_note);
    assert!(!r.cache_written && r.cache_error.is_some(), "{r}");
    assert_eq!(r.files, 2);
}

#[test]
fn a_cache_path_under_a_file_is_inaccessible_not_corrupt() {
    let dir = small_corpus("cache-under-file");
    let elsewhere = TempDir::new("cache-under-file-c");
    let blocker = elsewhere.write("a-file", "x");
    let corpus = load_with(dir.path(), cached(&blocker.join("c.cache")), None).expect("load");
    let r = corpus.report();
    assert_eq!(
        r.cache_status,
        CacheStatus::Inaccessible,
        "{}",
        r.cache_note
    );
    assert!(r.cache_note.contains("ot a directory"), "{}", r.cache_note);
    assert!(r.cache_error.is_some());
}

#[test]
fn a_cache_that_may_not_be_opened_is_inaccessible_not_corrupt() {
    // Root may open anything, so the refusal comes from the file system
    // the loader opens through (the same error an unreadable file gives).
    struct Refuse(PathBuf);
    impl FileSystem for Refuse {
        fn open(&self, path: &Path) -> io::Result<File> {
            if path == self.0 {
                return Err(io::Error::from(io::ErrorKind::PermissionDenied));
            }
            File::open(path)
        }
    }
    let dir = small_corpus("cache-refused");
    let elsewhere = TempDir::new("cache-refused-c");
    let cache = elsewhere.path().join("corpus.cache");
    load_with(dir.path(), cached(&cache), None).expect("first load writes the cache");
    let corpus = load_with(
        dir.path(),
        cached(&cache),
        Some(Arc::new(Refuse(cache.clone()))),
    )
    .expect("load");
    let r = corpus.report();
    assert_eq!(
        r.cache_status,
        CacheStatus::Inaccessible,
        "{}",
        r.cache_note
    );
    assert!(
        r.cache_note.contains("ermission denied"),
        "{}",
        r.cache_note
    );
}

#[test]
fn a_file_that_vanishes_mid_load_is_an_io_error_naming_it() {
    // The walk lists the file; it is deleted just before the loader opens it.
    struct Vanish(PathBuf);
    impl FileSystem for Vanish {
        fn open(&self, path: &Path) -> io::Result<File> {
            if path == self.0 {
                let _ = std::fs::remove_file(path);
            }
            File::open(path)
        }
    }
    let dir = small_corpus("vanish");
    let victim = dir.path().join("sub/b.txt");
    let e = load_with(
        dir.path(),
        LoaderConfig::default(),
        Some(Arc::new(Vanish(victim))),
    )
    .unwrap_err();
    assert!(
        matches!(e, Error::Io { action: "open", .. }),
        "a vanished file is an I/O failure, not a missing corpus: {e:?}"
    );
    assert!(e.to_string().contains("sub/b.txt"), "{e}");
}

#[test]
fn truncating_the_cache_under_a_live_corpus_does_not_crash_it() {
    // A corpus served from the cache, then the cache truncated in place (as
    // another process rebuilding it carelessly, or a full disk, would): a
    // mapping without the lease faulted with SIGBUS on the next read of the
    // tokens; with it, the truncation waits for the loader's copy.
    let (dir, _elsewhere, cache, cold, warm) = mapped_corpus("truncate-live");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&cache)
        .and_then(|f| f.set_len(0))
        .expect("truncate in place");
    assert_eq!(warm.tokens().to_vec(), cold.tokens().to_vec());
    assert_eq!(warm.tokens_u32().len(), cold.tokens().len());
    // The next load finds the truncated cache, rebuilds it by rename (a
    // new file: the old inode is never written again), and the live corpus
    // still reads its copy.
    let ino = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let truncated_ino = ino(&cache);
    let again = load_with(dir.path(), cached(&cache), None).expect("reload");
    assert_eq!(again.report().cache_status, CacheStatus::Corrupt);
    assert_ne!(
        ino(&cache),
        truncated_ino,
        "a rebuilt cache replaces the file by rename"
    );
    assert_eq!(again.tokens().to_vec(), warm.tokens().to_vec());
}

/// True if the file system of `dir` grants read leases (ext4, xfs and tmpfs
/// do, NFS does not) and the break time is long enough: where it is so, a
/// warm load maps its cache, elsewhere it copies the tokens, and the tests
/// below check whichever happens.
fn leases_work(dir: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let probe = dir.join("lease-probe");
    std::fs::write(&probe, b"x").expect("probe file");
    let file = File::open(&probe).expect("probe file");
    // SAFETY: fcntl on a descriptor we own.
    let leased = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLEASE, libc::F_RDLCK) } == 0;
    drop(file);
    std::fs::remove_file(&probe).expect("probe file");
    let break_time = std::fs::read_to_string("/proc/sys/fs/lease-break-time")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    leased && break_time.is_some_and(|s| s >= 5)
}

/// A cold and a warm corpus (mapped where leases work) of four files, and
/// the cache path.
fn mapped_corpus(tag: &str) -> (TempDir, TempDir, PathBuf, Corpus, Corpus) {
    let dir = TempDir::new(tag);
    for i in 0..4 {
        dir.write(&format!("f{i}.txt"), support::text(i, 40_000));
    }
    settle();
    let elsewhere = TempDir::new(&format!("{tag}-c"));
    let cache = elsewhere.path().join("corpus.cache");
    let cold = load_with(dir.path(), cached(&cache), None).expect("cold");
    let expected = leases_work(elsewhere.path());
    // Up to three warm loads: a program that another test of this binary
    // spawns holds, between its fork and its exec, a copy of every
    // descriptor of this process, the writer of this test's cache
    // included; while it does, the lease is refused (the loader tries for
    // 21 ms, then copies).
    let mut tries = 0;
    let warm = loop {
        let warm = load_with(dir.path(), cached(&cache), None).expect("warm");
        assert_eq!(warm.report().cache_status, CacheStatus::Hit);
        tries += 1;
        if warm.report().cache_mapped == expected || tries == 3 {
            break warm;
        }
    };
    assert_eq!(warm.report().cache_mapped, expected, "{}", warm.report());
    (dir, elsewhere, cache, cold, warm)
}

/// Runs a program to its end (spawned without `fork`'s handlers, as a
/// shell or another tool would be).
fn run(program: &str, args: &[&str]) {
    let status = std::process::Command::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(status.success(), "{program} {args:?}: {status}");
}

#[test]
fn another_process_truncating_or_rewriting_a_mapped_cache_waits_for_its_copy() {
    // The lease makes the other process's truncate (or open for writing)
    // wait while the loader copies its tokens; a mapping without it would
    // fault with SIGBUS at the comparison below, a copy made after the
    // rewrite would hold zeros.
    let (_dir, _c, cache, cold, warm) = mapped_corpus("lease-truncate");
    let c = cache.to_str().expect("utf-8 path");
    run(
        "dd",
        &[
            "if=/dev/zero",
            &format!("of={c}"),
            "bs=4096",
            "count=64",
            "conv=notrunc",
            "status=none",
        ],
    );
    run("sh", &["-c", &format!(": > '{c}'")]);
    assert_eq!(std::fs::metadata(&cache).expect("cache").len(), 0);
    assert_eq!(warm.tokens().to_vec(), cold.tokens().to_vec());

    // `truncate(1)` opens without blocking: while the lease is being broken
    // the open fails with EAGAIN; once the loader has copied, it succeeds.
    let (_dir, _c, cache, cold, warm) = mapped_corpus("lease-truncate-2");
    let c = cache.to_str().expect("utf-8 path");
    let truncated = (0..500).any(|_| {
        let ok = std::process::Command::new("truncate")
            .args(["-s", "0", c])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok || {
            std::thread::sleep(std::time::Duration::from_millis(10));
            false
        }
    });
    assert!(truncated, "truncate(1) kept failing");
    assert_eq!(std::fs::metadata(&cache).expect("cache").len(), 0);
    assert_eq!(warm.tokens().to_vec(), cold.tokens().to_vec());
}

#[test]
fn a_truncation_waiting_on_a_mapped_cache_goes_on_when_the_corpus_drops() {
    // Whatever the keeper is doing, dropping the corpus releases the lease:
    // the other process never waits for the kernel's lease break time.
    for round in 0..8 {
        let (_dir, _c, cache, _cold, warm) = mapped_corpus(&format!("lease-drop-{round}"));
        let started = std::time::Instant::now();
        let c = cache.to_str().expect("utf-8 path");
        let mut truncate = std::process::Command::new("sh")
            .args(["-c", &format!(": > '{c}'")])
            .spawn()
            .expect("truncate");
        std::thread::sleep(std::time::Duration::from_millis(round * 2));
        drop(warm);
        assert!(truncate.wait().expect("wait").success());
        let waited = started.elapsed();
        assert!(
            waited.as_secs() < 5,
            "round {round}: the truncation waited {waited:?}"
        );
    }
}

#[test]
fn map_cache_off_copies_the_tokens() {
    let dir = TempDir::new("lease-off");
    dir.write("a.txt", support::text(1, 20_000));
    settle();
    let elsewhere = TempDir::new("lease-off-c");
    let config = LoaderConfig {
        map_cache: false,
        ..cached(&elsewhere.path().join("corpus.cache"))
    };
    let cold = load_with(dir.path(), config.clone(), None).expect("cold");
    let warm = load_with(dir.path(), config, None).expect("warm");
    assert_eq!(warm.report().cache_status, CacheStatus::Hit);
    assert!(!warm.report().cache_mapped, "{}", warm.report());
    assert!(!warm.report().to_string().contains("mapped"));
    assert_eq!(warm.tokens().to_vec(), cold.tokens().to_vec());
}
