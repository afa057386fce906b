//! # corpus-loader: read every file once, tokenise in parallel, cache, batch
//!
//! The CLLM data loader read each corpus file once per worker thread. This
//! crate reads each file exactly once, tokenises on the sphere pool, caches
//! the result, and hands batches to the spheres.
//!
//! - [`Loader`] (options: [`LoaderConfig`], input: [`Source`]) walks a
//!   directory recursively in a fixed order (names in byte order, depth
//!   first; directories listed in parallel) or takes a list of files, opens
//!   and reads each regular file once (through an injectable [`FileSystem`],
//!   which also counts opens), skips non-text files by their content (a NUL
//!   byte, or more than 5% invalid UTF-8) and says why in the
//!   [`LoadReport`], and tokenises on a
//!   [`SpherePool`](sphere_pool::SpherePool). A look-ahead thread opens the
//!   files a little ahead of the readers and calls
//!   `posix_fadvise(WILLNEED)`, so the disk works while the spheres tokenise
//!   (the reader then uses that descriptor: still one open per file).
//! - The result is a [`Corpus`]: a [`Vocab`] (PAD=0, UNK=1, BOS=2, EOS=3,
//!   then tokens by count, ties by byte string, at most `max_vocab`) and the
//!   token dataset, documents back to back, each wrapped in BOS ... EOS.
//!   Same corpus and options, same ids, whatever the number of spheres.
//! - The cache ([`LoaderConfig::cache_path`], format in [`cache`]) is one file:
//!   manifest, vocabulary and tokens with checksums. A warm load lists the
//!   directories, `stat`s the files, and opens only the cache, which is
//!   fully verified (header, version, checksums, ids in range) before use;
//!   any mismatch rebuilds it, written atomically (a temporary file renamed
//!   over it, never truncated in place). Its tokens are mapped under a read
//!   lease ([`LoaderConfig::map_cache`]; every process that loads the cache
//!   shares the page cache's copy) or, without a lease, read into memory.
//! - [`BatchPlan`] / [`BatchIter`] cut the dataset into batches with the
//!   `CLLMBatch` layout ([`Batch`]), in order or shuffled by a seeded
//!   generator, with `drop_last`, split into disjoint shards (one per
//!   sphere); [`Prefetcher`] builds the next batches on its own thread.
//!
//! ## Detecting an unchanged corpus without reading it
//! A file is taken as unchanged when its size, modification time, status
//! change time, inode and device all equal the manifest's. This is what
//! `make` and git do, and it misses a change only if all of those are equal
//! after an edit: the same size, and a time stamp that did not move. Two
//! cases make that possible, and both are handled:
//! - an edit within the file system's time-stamp granularity after the
//!   cache was built ("racy" files, as git calls them): a file whose time
//!   stamps are not older than the build's start (taken from the file
//!   system's clock) is marked in the manifest, and the next load hashes
//!   its content instead of trusting `stat`;
//! - a program that sets the modification time back (`touch -r`): the status
//!   change time still moves, and it cannot be set by a program.
//!
//! A file with a new `stat` but the same size is hashed (XXH3): same
//! content, the cache is used and rewritten with the new `stat`
//! ([`CacheStatus::Refreshed`]); a different size needs no hash to be a
//! change. What remains unprotected: a clock set backwards, and file systems
//! whose time stamps are coarser than the cache's file system.
//!
//! Guarantees: each corpus file is opened at most once per load (a warm hit
//! opens none); a damaged cache is never used; loads and batches are
//! deterministic. Another process truncating or rewriting the cache file in
//! place while a corpus is in use cannot crash it: a corpus either holds its
//! own copy of the tokens, or maps them under a read lease, which makes the
//! other process wait until the loader has copied them (and `fork` copies
//! them first: a child has no lease). The loader itself only ever replaces
//! the cache by rename.

#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(target_endian = "big")]
compile_error!("the cache format (ids read straight into memory) assumes a little-endian host");

// The two small protocols, model-checked by `tests/loom.rs` (`--cfg loom`).
mod ahead;
mod queue;
use thread_support::sync;

/// The protocols, exposed only for the loom model checks.
#[cfg(loom)]
pub mod loom_api {
    pub use crate::ahead::OnceSlots;
    pub use crate::queue::WorkQueue;
}

#[cfg(not(loom))]
mod batch;
#[cfg(not(loom))]
mod build;
#[cfg(not(loom))]
pub mod cache;
#[cfg(not(loom))]
mod config;
#[cfg(not(loom))]
mod corpus;
#[cfg(not(loom))]
mod error;
#[cfg(not(loom))]
mod fs;
#[cfg(not(loom))]
mod hash;
#[cfg(not(loom))]
mod leased_map;
#[cfg(not(loom))]
mod prefetch;
#[cfg(not(loom))]
mod reader;
#[cfg(not(loom))]
mod report;
#[cfg(not(loom))]
mod temp_name;
#[cfg(not(loom))]
mod text;
#[cfg(not(loom))]
mod tokenize;
#[cfg(all(test, not(loom)))]
mod tokenize_bench;
#[cfg(not(loom))]
mod tokens;
#[cfg(not(loom))]
mod vocab;
#[cfg(not(loom))]
mod walk;

#[cfg(not(loom))]
pub use batch::{
    Batch, BatchConfig, BatchIter, BatchPlan, MAX_BATCH_TOKENS, MAX_SHARDS, SplitMix64,
};
#[cfg(not(loom))]
pub use config::{
    BOS_ID, DEFAULT_MAX_VOCAB, EOS_ID, LoaderConfig, MAX_VOCAB_LIMIT, NUM_SPECIAL, PAD_ID, Source,
    TokenizerKind, UNK_ID,
};
#[cfg(not(loom))]
pub use corpus::{Corpus, Document, Loader};
#[cfg(not(loom))]
pub use error::Error;
#[cfg(not(loom))]
pub use fs::{FileSystem, OsFileSystem, StatSig};
#[cfg(not(loom))]
pub use hash::xxh64;
#[cfg(not(loom))]
pub use prefetch::Prefetcher;
#[cfg(not(loom))]
pub use report::{CacheStatus, LoadReport, SkippedFile, Timings};
#[cfg(not(loom))]
pub use text::MAX_INVALID_UTF8_FRACTION;
#[cfg(not(loom))]
pub use tokens::Tokens;
#[cfg(not(loom))]
pub use vocab::{SPECIAL_TOKENS, Vocab};
