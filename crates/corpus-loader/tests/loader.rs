//! Behaviour of loads: each file read once, the cache and its invalidation,
//! determinism across sphere counts, skipped files, errors.

mod support;

use corpus_loader::{
    BOS_ID, CacheStatus, Corpus, EOS_ID, Error, Loader, LoaderConfig, NUM_SPECIAL, Source,
    TokenizerKind, UNK_ID,
};
use sphere_pool::SpherePool;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use support::{OpenWatch, RecordingFs, TempDir, settle, text};

fn pool(spheres: usize) -> SpherePool {
    SpherePool::new(spheres).expect("pool")
}

/// A corpus with nested directories, text of several sizes, and files that
/// must be skipped: binary (NUL), binary (invalid UTF-8), empty, white space
/// only, a symbolic link.
fn mixed_corpus(dir: &TempDir) {
    dir.write("a.txt", text(1, 400));
    dir.write("b/c.txt", text(2, 2000));
    dir.write("b/d/e.md", text(3, 50));
    dir.write("b/z.txt", "naïve café, déjà vu; 2024 — “quoted” text.\n");
    dir.write(
        "bin/image.png",
        [0x89, b'P', b'N', b'G', 0, 0, 0, 13, 1, 2, 3],
    );
    dir.write(
        "bin/latin.dat",
        (0..2000u32)
            .map(|i| 0x80 | (i * 7 % 120) as u8)
            .collect::<Vec<u8>>(),
    );
    dir.write("empty.txt", "");
    dir.write("spaces.txt", "  \n\t \r\n");
    std::os::unix::fs::symlink(dir.path().join("a.txt"), dir.path().join("link.txt"))
        .expect("symlink");
}

fn load(dir: &Path, config: LoaderConfig, spheres: usize) -> Result<Corpus, Error> {
    Loader::new(config).load(&Source::Directory(dir.to_owned()), &pool(spheres))
}

fn cached(cache: &Path) -> LoaderConfig {
    LoaderConfig {
        cache_path: Some(cache.to_owned()),
        ..LoaderConfig::default()
    }
}

#[test]
fn a_cold_load_opens_every_regular_file_exactly_once() {
    let dir = TempDir::new("once");
    mixed_corpus(&dir);
    for i in 0..30 {
        dir.write(&format!("many/f{i:02}.txt"), text(100 + i, 300));
    }
    let cache_dir = TempDir::new("once-cache");
    let fs = Arc::new(RecordingFs::default());
    let mut watch = OpenWatch::new(&OpenWatch::dirs_under(dir.path()));
    let corpus = Loader::new(cached(&cache_dir.path().join("c.cache")))
        .with_file_system(fs.clone())
        .load(&Source::Directory(dir.path().to_owned()), &pool(3))
        .expect("load");
    let kernel = watch.take();
    let recorded = fs.counts();
    let regular = 30 + 8; // mixed_corpus has 8 regular files and a link
    assert_eq!(corpus.report().regular_files, regular);
    assert_eq!(
        corpus.report().files_opened,
        regular,
        "no cache existed: only corpus files"
    );
    assert_eq!(kernel.len() as u64, regular, "the kernel saw {kernel:?}");
    assert!(
        kernel.values().all(|&n| n == 1),
        "each file opened once: {kernel:?}"
    );
    assert_eq!(recorded.len() as u64, regular);
    assert!(recorded.values().all(|&n| n == 1));
    assert!(
        !kernel.contains_key(&dir.path().join("link.txt")),
        "links are not followed"
    );
}

#[test]
fn a_warm_load_opens_only_the_cache_and_gives_the_same_corpus() {
    let dir = TempDir::new("warm");
    mixed_corpus(&dir);
    let cache_dir = TempDir::new("warm-cache");
    let cache = cache_dir.path().join("sub/corpus.cache"); // parent created on demand
    settle();
    let cold = load(dir.path(), cached(&cache), 2).expect("cold");
    assert_eq!(cold.report().cache_status, CacheStatus::Missing);
    assert!(cold.report().cache_written);

    let mut corpus_watch = OpenWatch::new(&OpenWatch::dirs_under(dir.path()));
    let mut cache_watch = OpenWatch::new(&[cache.parent().unwrap().to_owned()]);
    let warm = load(dir.path(), cached(&cache), 2).expect("warm");
    assert_eq!(
        warm.report().cache_status,
        CacheStatus::Hit,
        "{}",
        warm.report().cache_note
    );
    assert_eq!(warm.report().files_opened, 1);
    assert_eq!(warm.report().bytes_read, 0);
    assert!(corpus_watch.take().is_empty(), "no corpus file opened");
    assert_eq!(
        cache_watch.take(),
        HashMap::from([(cache.clone(), 1)]),
        "the cache opened once, nothing written"
    );

    assert_eq!(warm.tokens().to_vec(), cold.tokens().to_vec());
    assert_eq!(warm.vocab(), cold.vocab());
    assert_eq!(warm.documents(), cold.documents());
    let (a, b) = (warm.report(), cold.report());
    assert_eq!(
        (a.files, a.bytes, a.tokens, a.vocab_size, &a.skipped),
        (b.files, b.bytes, b.tokens, b.vocab_size, &b.skipped)
    );
}

#[test]
fn skipped_files_are_reported_with_their_reason() {
    let dir = TempDir::new("skip");
    mixed_corpus(&dir);
    let corpus = load(dir.path(), LoaderConfig::default(), 1).expect("load");
    let reasons: HashMap<&str, &str> = corpus
        .report()
        .skipped
        .iter()
        .map(|s| (s.name.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(reasons["bin/image.png"], "binary: NUL byte at offset 4");
    assert!(
        reasons["bin/latin.dat"].contains("not valid UTF-8"),
        "{}",
        reasons["bin/latin.dat"]
    );
    assert_eq!(reasons["empty.txt"], "empty file");
    assert_eq!(reasons["spaces.txt"], "no tokens (only white space)");
    assert_eq!(reasons["link.txt"], "symbolic link (not followed)");
    assert_eq!(reasons.len(), 5);
    let names: Vec<&str> = corpus.documents().iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        ["a.txt", "b/c.txt", "b/d/e.md", "b/z.txt"],
        "walk order: byte order, depth first"
    );
    assert_eq!(corpus.report().files, 4);
}

#[test]
fn tokens_vocabulary_and_batches_do_not_depend_on_the_number_of_spheres() {
    let dir = TempDir::new("spheres");
    for i in 0..40 {
        dir.write(
            &format!("d{}/f{i}.txt", i % 3),
            text(i, 50 + 37 * i as usize),
        );
    }
    // One file above the size at which files are tokenised in shared chunks.
    let big: String = (0..1_700_000).map(|i| format!("w{} ", i % 5000)).collect();
    dir.write("d9/big.txt", &big);
    let config = corpus_loader::BatchConfig {
        batch_size: 4,
        seq_len: 32,
        shuffle: true,
        seed: 7,
        drop_last: false,
    };
    let mut reference: Option<(Vec<u32>, Vec<Vec<u32>>)> = None;
    for spheres in [1, 2, 4] {
        let corpus = Arc::new(load(dir.path(), LoaderConfig::default(), spheres).expect("load"));
        let batches: Vec<Vec<u32>> = corpus_loader::BatchIter::new(corpus.clone(), &config, 0, 1)
            .expect("iter")
            .map(|b| b.input_ids)
            .collect();
        let tokens = corpus.tokens().to_vec();
        match &reference {
            None => reference = Some((tokens, batches)),
            Some((t, b)) => {
                assert!(t == &tokens, "tokens differ with {spheres} spheres");
                assert!(b == &batches, "batches differ with {spheres} spheres");
            }
        }
    }
    // The big file came out whole and in order.
    let corpus = load(dir.path(), LoaderConfig::default(), 4).expect("load");
    let doc = corpus
        .documents()
        .iter()
        .find(|d| d.name == "d9/big.txt")
        .expect("big doc");
    let ids: Vec<u32> = (doc.start..doc.start + doc.len)
        .map(|i| corpus.tokens().get(i).unwrap())
        .collect();
    assert_eq!(
        corpus.vocab().decode(&ids).unwrap(),
        format!("{}\n", big.trim_end())
    );
}

#[test]
fn the_vocabulary_is_ranked_by_count_then_bytes_and_capped() {
    let dir = TempDir::new("vocab");
    dir.write("t.txt", "b b b a a c c d e e e e . . .");
    let corpus = load(
        dir.path(),
        LoaderConfig {
            max_vocab: 7,
            ..LoaderConfig::default()
        },
        2,
    )
    .expect("load");
    let v = corpus.vocab();
    assert_eq!(v.len(), 7);
    let order: Vec<&[u8]> = (NUM_SPECIAL..7).map(|id| v.token(id).unwrap()).collect();
    assert_eq!(
        order,
        [b"e".as_slice(), b".", b"b"],
        "count desc, then bytes: '.' < 'b'"
    );
    let ids = corpus.tokens().to_vec();
    let (e, dot, b) = (NUM_SPECIAL, NUM_SPECIAL + 1, NUM_SPECIAL + 2);
    let u = UNK_ID;
    assert_eq!(
        ids,
        [
            BOS_ID, b, b, b, u, u, u, u, u, e, e, e, e, dot, dot, dot, EOS_ID
        ]
    );
    assert_eq!(corpus.report().distinct_tokens, 6);
    assert_eq!(v.count(e), Some(4));
}

#[test]
fn byte_tokens_round_trip_exactly() {
    let dir = TempDir::new("bytes");
    let original = "Größe: 42 — ok.\n\tnext line\n";
    dir.write("x.txt", original);
    let config = LoaderConfig {
        tokenizer: TokenizerKind::Bytes,
        ..LoaderConfig::default()
    };
    let corpus = load(dir.path(), config, 2).expect("load");
    let ids = corpus.tokens().to_vec();
    assert_eq!(ids.len(), original.len() + 2);
    assert_eq!(
        corpus.vocab().decode(&ids).unwrap(),
        format!("{original}\n")
    );
    let distinct: std::collections::HashSet<u8> = original.bytes().collect();
    assert_eq!(corpus.vocab().len(), NUM_SPECIAL as usize + distinct.len());
}

#[test]
fn every_document_is_wrapped_in_bos_and_eos_unless_disabled() {
    let dir = TempDir::new("markers");
    dir.write("1.txt", "one two");
    dir.write("2.txt", "three");
    let corpus = load(dir.path(), LoaderConfig::default(), 1).expect("load");
    let t = corpus.tokens().to_vec();
    assert_eq!(t.len(), 7);
    assert_eq!((t[0], t[3], t[4], t[6]), (BOS_ID, EOS_ID, BOS_ID, EOS_ID));
    assert_eq!(corpus.documents()[1].start, 4);
    let plain = load(
        dir.path(),
        LoaderConfig {
            document_markers: false,
            ..LoaderConfig::default()
        },
        1,
    )
    .unwrap();
    assert_eq!(plain.tokens().len(), 3);
}

/// Builds the cache of `dir`, applies `change`, and returns the next load.
fn after_change(dir: &TempDir, cache: &Path, change: impl FnOnce()) -> Corpus {
    settle();
    let first = load(dir.path(), cached(cache), 2).expect("first load");
    assert!(!first.report().cache_status.from_cache());
    assert_eq!(
        load(dir.path(), cached(cache), 2)
            .unwrap()
            .report()
            .cache_status,
        CacheStatus::Hit
    );
    change();
    load(dir.path(), cached(cache), 2).expect("load after change")
}

fn three_files(tag: &str) -> (TempDir, TempDir, PathBuf) {
    let dir = TempDir::new(tag);
    dir.write("one.txt", "alpha beta gamma");
    dir.write("sub/two.txt", "delta epsilon");
    dir.write("three.txt", "zeta eta theta");
    let cache_dir = TempDir::new(&format!("{tag}-cache"));
    let cache = cache_dir.path().join("c.cache");
    (dir, cache_dir, cache)
}

fn assert_rebuilt(corpus: &Corpus, dir: &TempDir, status: CacheStatus, note: &str) {
    let r = corpus.report();
    assert_eq!(r.cache_status, status, "{}", r.cache_note);
    assert!(
        r.cache_note.contains(note),
        "note {:?} should mention {note:?}",
        r.cache_note
    );
    assert!(r.cache_written);
    let fresh = load(dir.path(), LoaderConfig::default(), 1).expect("fresh load");
    assert_eq!(
        corpus.tokens().to_vec(),
        fresh.tokens().to_vec(),
        "rebuilt tokens equal a fresh load"
    );
}

#[test]
fn a_changed_file_of_the_same_size_is_detected_by_its_content_hash() {
    let (dir, _c, cache) = three_files("same-size");
    let mut watch = None;
    let corpus = after_change(&dir, &cache, || {
        dir.write("sub/two.txt", "delta EPSILON");
        watch = Some(OpenWatch::new(&OpenWatch::dirs_under(dir.path())));
    });
    let opened = watch.unwrap().take();
    assert_rebuilt(
        &corpus,
        &dir,
        CacheStatus::Stale,
        "content of sub/two.txt changed",
    );
    // The changed file was read to hash it, and its bytes reused by the
    // rebuild: every file opened once in this load.
    assert_eq!(corpus.report().files_opened, 1 + 3);
    assert_eq!(opened.len(), 3);
    assert!(opened.values().all(|&n| n == 1), "{opened:?}");
}

#[test]
fn a_file_of_another_size_is_detected_without_hashing() {
    let (dir, _c, cache) = three_files("size");
    let corpus = after_change(&dir, &cache, || {
        dir.write("one.txt", "alpha beta gamma delta");
    });
    assert_rebuilt(
        &corpus,
        &dir,
        CacheStatus::Stale,
        "one.txt changed size (16 -> 22 bytes)",
    );
    assert_eq!(
        corpus.report().files_opened,
        1 + 3,
        "the cache, then each file once"
    );
}

#[test]
fn an_added_file_is_detected() {
    let (dir, _c, cache) = three_files("added");
    let corpus = after_change(&dir, &cache, || {
        dir.write("sub/four.txt", "iota kappa");
    });
    assert_rebuilt(&corpus, &dir, CacheStatus::Stale, "sub/four.txt was added");
    assert_eq!(corpus.report().files, 4);
}

#[test]
fn a_removed_file_is_detected() {
    let (dir, _c, cache) = three_files("removed");
    let corpus = after_change(&dir, &cache, || {
        std::fs::remove_file(dir.path().join("three.txt")).unwrap();
    });
    assert_rebuilt(&corpus, &dir, CacheStatus::Stale, "three.txt was removed");
    assert_eq!(corpus.report().files, 2);
}

#[test]
fn a_touched_file_with_the_same_content_keeps_the_cache() {
    let (dir, _c, cache) = three_files("touched");
    let before = load(dir.path(), LoaderConfig::default(), 1)
        .unwrap()
        .tokens()
        .to_vec();
    let corpus = after_change(&dir, &cache, || {
        settle();
        dir.write("three.txt", "zeta eta theta"); // same bytes, new mtime and ctime
        settle(); // not "racy": older than the next build's time stamp
    });
    let r = corpus.report();
    assert_eq!(r.cache_status, CacheStatus::Refreshed, "{}", r.cache_note);
    assert_eq!(
        r.files_opened, 2,
        "the cache and the touched file, to hash it"
    );
    assert!(r.cache_written, "the manifest is updated with the new stat");
    assert_eq!(corpus.tokens().to_vec(), before);
    settle();
    let next = load(dir.path(), cached(&cache), 2).unwrap();
    assert_eq!(
        next.report().cache_status,
        CacheStatus::Hit,
        "{}",
        next.report().cache_note
    );
    assert_eq!(next.report().files_opened, 1);
}

#[test]
fn a_file_modified_too_recently_to_trust_its_stat_is_hashed_next_time() {
    let (dir, _c, cache) = three_files("racy");
    // A modification time in the future is "not older than the build": the
    // manifest marks the file, as it would one edited within the same tick.
    let future = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(dir.path().join("one.txt"))
        .unwrap()
        .set_modified(future)
        .unwrap();
    settle();
    let cold = load(dir.path(), cached(&cache), 2).unwrap();
    assert_eq!(cold.report().cache_status, CacheStatus::Missing);
    let next = load(dir.path(), cached(&cache), 2).unwrap();
    assert_eq!(
        next.report().cache_status,
        CacheStatus::Refreshed,
        "{}",
        next.report().cache_note
    );
    assert_eq!(next.report().files_opened, 2, "the cache and the racy file");
    // It stays racy while its time stamp is in the future: checked each time.
    let again = load(dir.path(), cached(&cache), 2).unwrap();
    assert_eq!(again.report().cache_status, CacheStatus::Refreshed);
}

#[test]
fn other_options_make_a_new_cache() {
    let (dir, _c, cache) = three_files("options");
    settle();
    load(dir.path(), cached(&cache), 1).unwrap();
    let other = LoaderConfig {
        max_vocab: 100,
        ..cached(&cache)
    };
    let corpus = load(dir.path(), other.clone(), 1).unwrap();
    assert_eq!(corpus.report().cache_status, CacheStatus::OptionsChanged);
    assert_eq!(
        load(dir.path(), other, 1).unwrap().report().cache_status,
        CacheStatus::Hit
    );
}

/// Applies `damage` to a valid cache file and checks the next load rebuilds.
fn check_damage(tag: &str, damage: impl Fn(&mut Vec<u8>)) {
    let (dir, _c, cache) = three_files(tag);
    settle();
    let good = load(dir.path(), cached(&cache), 2)
        .unwrap()
        .tokens()
        .to_vec();
    let mut bytes = std::fs::read(&cache).unwrap();
    damage(&mut bytes);
    std::fs::write(&cache, &bytes).unwrap();
    let corpus = load(dir.path(), cached(&cache), 2).unwrap();
    assert_eq!(
        corpus.report().cache_status,
        CacheStatus::Corrupt,
        "{tag}: {}",
        corpus.report().cache_note
    );
    assert_eq!(corpus.tokens().to_vec(), good, "{tag}");
    let next = load(dir.path(), cached(&cache), 2).unwrap();
    assert_eq!(
        next.report().cache_status,
        CacheStatus::Hit,
        "{tag}: rebuilt and valid again"
    );
}

#[test]
fn a_damaged_cache_is_detected_and_rebuilt() {
    check_damage("magic", |b| b[0] ^= 1);
    check_damage("version", |b| b[8] = 99);
    check_damage("header", |b| b[40] ^= 0x10);
    check_damage("metadata", |b| b[140] ^= 0x01);
    check_damage("tokens", |b| {
        let n = b.len();
        b[n - 8 - 3] ^= 0x04; // the last token bytes, before the block table
    });
    check_damage("block-table", |b| {
        let n = b.len();
        b[n - 1] ^= 0x80;
    });
    check_damage("appended", |b| b.push(0));
    check_damage("empty", |b| b.clear());
}

/// A cache of format version 1 (XXH64 checksums), `tests/data/cache-v1.bin`:
/// written by the loader of commit 8f2fb6c for a directory holding one
/// file, `a.txt`, with this text.
const V1_TEXT: &str = "The cat sat on the mat, and the cat slept.\n";

#[test]
fn a_cache_of_format_version_1_is_rejected_and_rebuilt() {
    let dir = TempDir::new("v1");
    dir.write("a.txt", V1_TEXT);
    let cache_dir = TempDir::new("v1-cache");
    let cache = cache_dir.path().join("c.cache");
    let old = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/cache-v1.bin"
    ))
    .expect("the version 1 cache");
    assert_eq!(&old[..12], b"CLLMTOKC\x01\0\0\0", "a version 1 cache");
    std::fs::write(&cache, &old).unwrap();
    settle();
    let corpus = load(dir.path(), cached(&cache), 2).unwrap();
    assert_rebuilt(
        &corpus,
        &dir,
        CacheStatus::Corrupt,
        "format version 1, this loader reads version 2",
    );
    // The ids the version 1 loader stored for this text.
    assert_eq!(
        corpus.tokens().to_vec(),
        [2, 8, 4, 12, 11, 5, 10, 6, 9, 5, 4, 13, 7, 3]
    );
    let next = load(dir.path(), cached(&cache), 2).unwrap();
    assert_eq!(next.report().cache_status, CacheStatus::Hit);
    assert_eq!(next.tokens().to_vec(), corpus.tokens().to_vec());
}

#[test]
fn a_truncated_cache_is_detected_at_every_length() {
    let (dir, _c, cache) = three_files("truncated");
    settle();
    load(dir.path(), cached(&cache), 1).unwrap();
    let full = std::fs::read(&cache).unwrap();
    for len in (0..full.len()).step_by(7).chain([full.len() - 1]) {
        std::fs::write(&cache, &full[..len]).unwrap();
        let corpus = load(dir.path(), cached(&cache), 1).unwrap();
        assert_eq!(
            corpus.report().cache_status,
            CacheStatus::Corrupt,
            "length {len}"
        );
    }
}

#[test]
fn a_cache_inside_the_corpus_is_not_part_of_it() {
    let (dir, _c, _) = three_files("inside");
    let cache = dir.path().join("sub/.corpus.cache");
    settle();
    let first = load(dir.path(), cached(&cache), 1).unwrap();
    assert_eq!(first.report().files, 3);
    settle();
    let second = load(dir.path(), cached(&cache), 1).unwrap();
    assert_eq!(
        second.report().cache_status,
        CacheStatus::Hit,
        "{}",
        second.report().cache_note
    );
    assert_eq!(
        second.report().inputs,
        3,
        "neither the cache nor its temporary files are inputs"
    );
}

#[test]
fn an_unwritable_cache_location_does_not_fail_the_load() {
    let (dir, _c, _) = three_files("unwritable");
    let blocker = dir.write("a-file", "x"); // a file where a directory is needed
    let corpus = load(dir.path(), cached(&blocker.join("c.cache")), 1).expect("load");
    assert!(!corpus.report().cache_written);
    assert!(corpus.report().cache_error.is_some());
    assert_eq!(corpus.report().files, 4);
}

#[test]
fn bad_inputs_give_clear_errors() {
    let missing = Path::new("/nonexistent/corpus/dir");
    let e = load(missing, LoaderConfig::default(), 1).unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("/nonexistent/corpus/dir does not exist"),
        "{e}"
    );

    let dir = TempDir::new("bad");
    let file = dir.write("f.txt", "some text");
    let e = load(&file, LoaderConfig::default(), 1).unwrap_err();
    assert!(e.to_string().contains("is not a directory"), "{e}");

    let empty = TempDir::new("bad-empty");
    let e = load(empty.path(), LoaderConfig::default(), 1).unwrap_err();
    assert!(matches!(e, Error::Empty(_)), "{e}");
    empty.write("x.bin", [0u8, 1, 2]);
    let e = load(empty.path(), LoaderConfig::default(), 1).unwrap_err();
    assert!(e.to_string().contains("1 skipped"), "{e}");

    let e = load(
        dir.path(),
        LoaderConfig {
            max_vocab: 4,
            ..LoaderConfig::default()
        },
        1,
    )
    .unwrap_err();
    assert!(
        matches!(e, Error::InvalidArgument(_)) && e.to_string().contains("max_vocab 4"),
        "{e}"
    );

    // An unreadable file (refused by the file system) fails the load and is named.
    let denied = dir.write("sub/secret.txt", "private words");
    let fs = Arc::new(RecordingFs {
        deny: Some(denied.clone()),
        ..RecordingFs::default()
    });
    let e = Loader::new(LoaderConfig::default())
        .with_file_system(fs)
        .load(&Source::Directory(dir.path().to_owned()), &pool(2))
        .unwrap_err();
    assert!(matches!(e, Error::Io { action: "open", .. }), "{e}");
    assert!(
        e.to_string().contains("sub/secret.txt") && e.to_string().contains("ermission denied"),
        "{e}"
    );
}

#[test]
fn a_list_of_files_is_loaded_in_its_order_and_checked() {
    let dir = TempDir::new("list");
    let a = dir.write("a.txt", "first file");
    let b = dir.write("b.txt", "second file");
    let p = pool(1);
    let loader = Loader::new(LoaderConfig::default());
    let corpus = loader
        .load(&Source::Files(vec![b.clone(), a.clone()]), &p)
        .expect("load");
    assert_eq!(
        corpus.vocab().decode(&corpus.tokens().to_vec()).unwrap(),
        "second file\nfirst file\n"
    );
    let e = loader
        .load(
            &Source::Files(vec![a.clone(), dir.path().join("nope.txt")]),
            &p,
        )
        .unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    let e = loader
        .load(&Source::Files(vec![dir.path().to_owned()]), &p)
        .unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");
    let e = loader
        .load(&Source::Files(vec![a.clone(), a.clone()]), &p)
        .unwrap_err();
    assert!(e.to_string().contains("listed twice"), "{e}");
    let e = loader.load(&Source::Files(vec![]), &p).unwrap_err();
    assert!(matches!(e, Error::Empty(_)), "{e}");
}
