//! [`LoadReport`]: what a load found, did and cost.

use std::fmt;
use std::time::Duration;

/// How the cache was used by a load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheStatus {
    /// No cache path was configured.
    Disabled,
    /// Loaded from the cache; no corpus file was opened.
    Hit,
    /// Loaded from the cache after re-hashing files whose `stat` changed
    /// (or was too recent to trust) and finding their content unchanged;
    /// the cache was rewritten with the new `stat` values.
    Refreshed,
    /// There was no cache yet: built and written.
    Missing,
    /// A file was added, removed or changed: rebuilt.
    Stale,
    /// The cache failed a check (truncated, bad header, version, checksum):
    /// rebuilt.
    Corrupt,
    /// The cache was made with other options or another source: rebuilt.
    OptionsChanged,
    /// The cache path cannot be used as a cache file (it is a directory or
    /// not a regular file, or opening it was refused, for example for lack
    /// of permission): the corpus was built without it; the note says why,
    /// and the attempt to write it is reported in `cache_error`.
    Inaccessible,
}

impl CacheStatus {
    /// True if the tokens came from the cache.
    pub fn from_cache(self) -> bool {
        matches!(self, CacheStatus::Hit | CacheStatus::Refreshed)
    }

    /// A short lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            CacheStatus::Disabled => "disabled",
            CacheStatus::Hit => "hit",
            CacheStatus::Refreshed => "refreshed",
            CacheStatus::Missing => "missing",
            CacheStatus::Stale => "stale",
            CacheStatus::Corrupt => "corrupt",
            CacheStatus::OptionsChanged => "options-changed",
            CacheStatus::Inaccessible => "inaccessible",
        }
    }
}

/// A file that is not in the dataset, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedFile {
    /// Its name in the manifest (relative to the corpus directory).
    pub name: String,
    /// Why: "empty file", "binary: NUL byte at offset 12", ...
    pub reason: String,
}

/// Where the time of a load went. The parallel phases are summed over all
/// participants: `read` as wall time (it waits for the disk), `check` and
/// `tokenize` as CPU time (so they do not depend on other load on the
/// machine). The others are wall-clock time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    /// Listing directories and `stat`ing entries.
    pub walk: Duration,
    /// Opening and reading corpus files (wall time, summed over threads).
    pub read: Duration,
    /// Hashing and classifying file contents (CPU time, summed over threads).
    pub check: Duration,
    /// Tokenising (CPU time, summed over threads).
    pub tokenize: Duration,
    /// Merging the tables and ranking the vocabulary.
    pub vocab: Duration,
    /// Mapping local ids to global ids into the dataset.
    pub assemble: Duration,
    /// Opening, reading and verifying the cache (warm loads; also the
    /// failed attempt before a rebuild).
    pub cache_read: Duration,
    /// Writing the cache (and `fsync` if durable).
    pub cache_write: Duration,
    /// The whole load.
    pub total: Duration,
}

/// The report of one load.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    /// Inputs found by the walk (regular files, links, special files).
    pub inputs: u64,
    /// Regular files found (a cold load opens each exactly once).
    pub regular_files: u64,
    /// Text files in the dataset.
    pub files: u64,
    /// Bytes of the text files in the dataset.
    pub bytes: u64,
    /// Inputs not in the dataset, with the reason.
    pub skipped: Vec<SkippedFile>,
    /// Files opened by this load: corpus files and the cache.
    pub files_opened: u64,
    /// Bytes read from corpus files by this load (0 on a cache hit).
    pub bytes_read: u64,
    /// Directories listed by the walk.
    pub dirs_listed: u64,
    /// Tokens in the dataset (document markers included).
    pub tokens: u64,
    /// Vocabulary size, special tokens included.
    pub vocab_size: u64,
    /// Distinct tokens in the corpus, before the vocabulary limit.
    pub distinct_tokens: u64,
    /// How the cache was used.
    pub cache_status: CacheStatus,
    /// Why the cache was or was not used ("file a.txt changed size", ...).
    pub cache_note: String,
    /// True if this load wrote the cache.
    pub cache_written: bool,
    /// Why writing the cache failed, if it did (the load still succeeds).
    pub cache_error: Option<String>,
    /// Size of the cache file, if there is one.
    pub cache_bytes: u64,
    /// True if the tokens are a leased mapping of the cache file (shared
    /// with other processes that load it), false if they are this load's own.
    pub cache_mapped: bool,
    /// Where the time went.
    pub timings: Timings,
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.timings;
        writeln!(
            f,
            "corpus: {} files, {} bytes, {} tokens, vocabulary {} ({} distinct); {} skipped",
            self.files,
            self.bytes,
            self.tokens,
            self.vocab_size,
            self.distinct_tokens,
            self.skipped.len()
        )?;
        for s in &self.skipped {
            writeln!(f, "  skipped {}: {}", s.name, s.reason)?;
        }
        writeln!(
            f,
            "cache: {} ({}){}{}{}",
            self.cache_status.name(),
            self.cache_note,
            if self.cache_mapped { ", mapped" } else { "" },
            if self.cache_written { ", written" } else { "" },
            self.cache_error
                .as_deref()
                .map(|e| format!(", write failed: {e}"))
                .unwrap_or_default()
        )?;
        write!(
            f,
            "io: {} files opened, {} bytes read, {} directories listed; time: walk {:.3}s, read {:.3}s, \
             check {:.3}s, tokenise {:.3}s (summed over threads), vocabulary {:.3}s, assemble {:.3}s, \
             cache read {:.3}s, cache write {:.3}s, total {:.3}s",
            self.files_opened,
            self.bytes_read,
            self.dirs_listed,
            t.walk.as_secs_f64(),
            t.read.as_secs_f64(),
            t.check.as_secs_f64(),
            t.tokenize.as_secs_f64(),
            t.vocab.as_secs_f64(),
            t.assemble.as_secs_f64(),
            t.cache_read.as_secs_f64(),
            t.cache_write.as_secs_f64(),
            t.total.as_secs_f64()
        )
    }
}
