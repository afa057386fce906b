//! Files of any size (issue 13, defect 2): a huge sparse file made the
//! loader reserve its whole size and abort; large files were read whole
//! before being skipped. This binary counts every allocation (a global
//! allocator that records the largest request) to check that no file is
//! ever held whole.

mod support;

use corpus_loader::{CacheStatus, Corpus, Loader, LoaderConfig, Source};
use sphere_pool::SpherePool;
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use support::{TempDir, settle};

/// The system allocator, recording the largest single request.
struct Recording;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for Recording {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's layout, forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Recording = Recording;

/// The tests measure the largest allocation: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const MIB: u64 = 1 << 20;

fn load(dir: &Path, config: LoaderConfig) -> Corpus {
    Loader::new(config)
        .load(
            &Source::Directory(dir.to_owned()),
            &SpherePool::new(2).expect("pool"),
        )
        .expect("load")
}

fn sparse(dir: &TempDir, name: &str, size: u64) {
    std::fs::File::create(dir.path().join(name))
        .and_then(|f| f.set_len(size))
        .expect("sparse file");
}

#[test]
fn huge_sparse_files_are_skipped_without_being_read_or_allocated() {
    let _serial = SERIAL.lock().unwrap();
    let dir = TempDir::new("sparse");
    dir.write("a.txt", support::text(1, 2000));
    sparse(&dir, "huge.bin", 100 << 30); // 100 GiB: the loader aborted here
    sparse(&dir, "large.bin", 3 << 30); // 3 GiB: read whole, then skipped
    settle();
    let cache_dir = TempDir::new("sparse-c");
    let config = LoaderConfig {
        cache_path: Some(cache_dir.path().join("c.cache")),
        ..LoaderConfig::default()
    };
    LARGEST.store(0, Ordering::Relaxed);
    let corpus = load(dir.path(), config.clone());
    let largest = LARGEST.load(Ordering::Relaxed) as u64;
    eprintln!("largest allocation: {largest} bytes");
    let r = corpus.report();
    assert_eq!(r.files, 1, "{r}");
    for s in &r.skipped {
        assert_eq!(s.reason, "binary: NUL byte at offset 0", "{}", s.name);
    }
    assert_eq!(r.skipped.len(), 2);
    // Each big file stops at its first piece (1 MiB) and nothing near its
    // size is allocated.
    assert!(r.bytes_read < 4 * MIB, "read {} bytes", r.bytes_read);
    assert!(largest < 8 * MIB, "largest allocation {largest} bytes");

    // A warm load does not read them either; a new stat on one (it was not
    // hashed to its end) rebuilds, again without reading it.
    assert_eq!(
        load(dir.path(), config.clone()).report().cache_status,
        CacheStatus::Hit
    );
    sparse(&dir, "huge.bin", 100 << 30);
    std::fs::File::options()
        .write(true)
        .open(dir.path().join("huge.bin"))
        .and_then(|f| f.set_modified(std::time::SystemTime::UNIX_EPOCH))
        .expect("touch");
    let again = load(dir.path(), config);
    let r = again.report();
    assert_eq!(r.cache_status, CacheStatus::Stale, "{}", r.cache_note);
    assert!(
        r.cache_note.contains("too large to check by content"),
        "{}",
        r.cache_note
    );
    assert!(r.bytes_read < 4 * MIB, "read {} bytes", r.bytes_read);
}

/// About `bytes` of text of long words (few tokens per byte, so the token
/// buffers stay far below the file's size), with multi-byte UTF-8 in every
/// word, so sequences straddle the 1 MiB pieces.
fn long_word_text(bytes: usize) -> String {
    let words = [
        "internationalisation",
        "überdimensionalität",
        "electroencephalographic",
        "naïveté_of_the_café_crème",
        "déjà_vu_all_over_again",
        "counterrevolutionaries",
        "€uro_und_£ound_und_¥en",
        "😀smiling_faces_everywhere😀",
    ];
    let mut out = String::with_capacity(bytes + 64);
    let mut x = 7u64;
    while out.len() < bytes {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.push_str(words[(x >> 60) as usize % words.len()]);
        out.push_str(match (x >> 40) % 16 {
            0 => ", ",
            1 => ".\n",
            _ => " ",
        });
    }
    out
}

#[test]
fn a_large_text_file_streams_in_pieces_with_the_same_tokens_and_hash() {
    let _serial = SERIAL.lock().unwrap();
    let text = long_word_text(48 * MIB as usize);
    let big = TempDir::new("stream-big");
    big.write("big.txt", &text);
    // The same text in four files of the in-memory size, cut at spaces.
    let split = TempDir::new("stream-split");
    let mut start = 0;
    for i in 0..4 {
        let end = if i == 3 {
            text.len()
        } else {
            start + text[start + text.len() / 4..].find(' ').unwrap() + text.len() / 4 + 1
        };
        split.write(&format!("part-{i}.txt"), &text[start..end]);
        start = end;
    }
    settle();
    let cache_dir = TempDir::new("stream-c");
    let plain = LoaderConfig {
        document_markers: false,
        ..LoaderConfig::default()
    };
    let cached = LoaderConfig {
        cache_path: Some(cache_dir.path().join("c.cache")),
        ..plain.clone()
    };
    LARGEST.store(0, Ordering::Relaxed);
    let streamed = load(big.path(), cached.clone());
    let largest = LARGEST.load(Ordering::Relaxed) as u64;
    eprintln!("largest allocation: {largest} bytes");
    // The largest is the reserved room for token ids (worst case three
    // 16-bit units per byte of a 2 MiB chunk, doubled as the buffer grows).
    assert!(
        largest < 32 * MIB,
        "largest allocation {largest} bytes for a 48 MiB file: it was held whole"
    );
    let whole = load(split.path(), plain);
    assert_eq!(streamed.tokens().to_vec(), whole.tokens().to_vec());
    assert_eq!(streamed.vocab(), whole.vocab());
    assert_eq!(streamed.report().files, 1);

    // The streamed hash is the file's XXH3: a new stat with the same
    // content keeps the cache (the check hashes the file in pieces too).
    settle();
    std::fs::File::options()
        .write(true)
        .open(big.path().join("big.txt"))
        .and_then(|f| f.set_modified(std::time::SystemTime::now()))
        .expect("touch");
    settle();
    let refreshed = load(big.path(), cached);
    assert_eq!(
        refreshed.report().cache_status,
        CacheStatus::Refreshed,
        "{}",
        refreshed.report().cache_note
    );
    assert_eq!(refreshed.tokens().to_vec(), whole.tokens().to_vec());
}

#[test]
fn a_token_too_long_to_read_in_pieces_skips_its_file() {
    let _serial = SERIAL.lock().unwrap();
    let dir = TempDir::new("long-run");
    dir.write("a.txt", "some words");
    dir.write("run.txt", vec![b'a'; 70 * MIB as usize]);
    let corpus = load(dir.path(), LoaderConfig::default());
    let r = corpus.report();
    assert_eq!(r.files, 1);
    assert_eq!(r.skipped.len(), 1);
    assert!(
        r.skipped[0].reason.contains("without white space"),
        "{}",
        r.skipped[0].reason
    );
}
