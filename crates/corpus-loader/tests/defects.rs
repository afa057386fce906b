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
