//! C API of the corpus loader (`cllm_loader_*`): read every file of a corpus
//! once, tokenise it in parallel, cache it, and report what it did. The
//! batch iterators over a loaded corpus are in `loader_iter.rs`
//! (`cllm_loader_iter_*`). See the `corpus-loader` crate for the guarantees.
//!
//! Threads: a `cllm_loader` is read-only once created and may be used from
//! any thread at once. Iterators keep the loaded data alive: the loader may
//! be freed before them.

use crate::error::FfiError;
use crate::error::{UnknownValue, enum_arg};
use crate::guard::{Handle, ffi_status, ns, out_ptr, write_out};
use crate::status::cllm_status;
use crate::{free_handle, text_out, with_handle};
use corpus_loader::{
    CacheStatus, Corpus, DEFAULT_MAX_VOCAB, Error, Loader, LoaderConfig, Source, TokenizerKind,
    Tokens,
};
use sphere_pool::SpherePool;
use std::ffi::{CStr, c_char, c_int, c_void};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;

/// How text becomes tokens (`uint32_t`, one of `CLLM_TOKENIZER_*`), in
/// `cllm_loader_options.tokenizer`. Any other value is refused with
/// `CLLM_ERR_INVALID_ARGUMENT`.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct cllm_tokenizer(pub u32);

/// Words and punctuation (runs of letters, digits, `_` and non-ASCII
/// bytes; every other non-space character alone; white space dropped).
pub const CLLM_TOKENIZER_WORDS: cllm_tokenizer = cllm_tokenizer(0);
/// Every byte is a token (exact round trip, small vocabulary).
pub const CLLM_TOKENIZER_BYTES: cllm_tokenizer = cllm_tokenizer(1);

impl TryFrom<cllm_tokenizer> for TokenizerKind {
    type Error = UnknownValue;
    fn try_from(t: cllm_tokenizer) -> Result<TokenizerKind, UnknownValue> {
        match t {
            CLLM_TOKENIZER_WORDS => Ok(TokenizerKind::Words),
            CLLM_TOKENIZER_BYTES => Ok(TokenizerKind::Bytes),
            other => Err(UnknownValue {
                type_name: "cllm_tokenizer",
                value: i64::from(other.0),
                expected: "CLLM_TOKENIZER_WORDS 0, CLLM_TOKENIZER_BYTES 1",
            }),
        }
    }
}

impl From<TokenizerKind> for cllm_tokenizer {
    fn from(t: TokenizerKind) -> cllm_tokenizer {
        match t {
            TokenizerKind::Words => CLLM_TOKENIZER_WORDS,
            TokenizerKind::Bytes => CLLM_TOKENIZER_BYTES,
        }
    }
}

/// How a load used its cache (`uint32_t`, one of
/// `CLLM_LOADER_CACHE_STATUS_*`), in `cllm_loader_report.cache_status`.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct cllm_loader_cache_status(pub u32);

/// No cache path was given.
pub const CLLM_LOADER_CACHE_STATUS_DISABLED: cllm_loader_cache_status = cllm_loader_cache_status(0);
/// Loaded from the cache; no corpus file was opened.
pub const CLLM_LOADER_CACHE_STATUS_HIT: cllm_loader_cache_status = cllm_loader_cache_status(1);
/// Loaded from the cache after hashing files whose `stat` changed (or was
/// too recent to trust) and finding the same content; the cache was
/// rewritten with their new `stat`.
pub const CLLM_LOADER_CACHE_STATUS_REFRESHED: cllm_loader_cache_status =
    cllm_loader_cache_status(2);
/// No cache file yet: built and written.
pub const CLLM_LOADER_CACHE_STATUS_MISSING: cllm_loader_cache_status = cllm_loader_cache_status(3);
/// A file was added, removed or changed: rebuilt.
pub const CLLM_LOADER_CACHE_STATUS_STALE: cllm_loader_cache_status = cllm_loader_cache_status(4);
/// The cache failed a check (truncated, header, version, checksum): rebuilt.
pub const CLLM_LOADER_CACHE_STATUS_CORRUPT: cllm_loader_cache_status = cllm_loader_cache_status(5);
/// The cache was made with other options or from another source: rebuilt.
pub const CLLM_LOADER_CACHE_STATUS_OPTIONS_CHANGED: cllm_loader_cache_status =
    cllm_loader_cache_status(6);
/// The cache path cannot hold a cache file (a directory, not a regular
/// file, or opening it was refused, e.g. no permission): the corpus was
/// built without it. The report text says why; `cache_write_failed` tells
/// whether writing it failed too.
pub const CLLM_LOADER_CACHE_STATUS_INACCESSIBLE: cllm_loader_cache_status =
    cllm_loader_cache_status(7);

impl From<CacheStatus> for cllm_loader_cache_status {
    fn from(s: CacheStatus) -> cllm_loader_cache_status {
        match s {
            CacheStatus::Disabled => CLLM_LOADER_CACHE_STATUS_DISABLED,
            CacheStatus::Hit => CLLM_LOADER_CACHE_STATUS_HIT,
            CacheStatus::Refreshed => CLLM_LOADER_CACHE_STATUS_REFRESHED,
            CacheStatus::Missing => CLLM_LOADER_CACHE_STATUS_MISSING,
            CacheStatus::Stale => CLLM_LOADER_CACHE_STATUS_STALE,
            CacheStatus::Corrupt => CLLM_LOADER_CACHE_STATUS_CORRUPT,
            CacheStatus::OptionsChanged => CLLM_LOADER_CACHE_STATUS_OPTIONS_CHANGED,
            CacheStatus::Inaccessible => CLLM_LOADER_CACHE_STATUS_INACCESSIBLE,
        }
    }
}

impl From<Error> for FfiError {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::NotFound { .. } => cllm_status::CLLM_ERR_NOT_FOUND,
            Error::Io { .. } => cllm_status::CLLM_ERR_IO,
            Error::Empty(_) => cllm_status::CLLM_ERR_EMPTY,
            Error::InvalidArgument(_) => cllm_status::CLLM_ERR_INVALID_ARGUMENT,
            Error::Spawn(_) => cllm_status::CLLM_ERR_SPAWN,
            Error::OutOfMemory { .. } => cllm_status::CLLM_ERR_OUT_OF_MEMORY,
            Error::Pool(p) => return FfiError::from(p.clone()),
        };
        FfiError::new(status, e.to_string())
    }
}

/// How to load a corpus; fill it with `cllm_loader_options_default()`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct cllm_loader_options {
    /// `CLLM_TOKENIZER_WORDS` (default) or `CLLM_TOKENIZER_BYTES`.
    pub tokenizer: cllm_tokenizer,
    /// Largest vocabulary, the four special ids (PAD=0, UNK=1, BOS=2,
    /// EOS=3) included: 5 .. 16777216, default 32768. The most frequent
    /// tokens are kept (ties: smaller byte string first); others become UNK.
    pub max_vocab: u32,
    /// Threads that tokenise (spheres; the calling thread works too).
    /// `<= 0`: one per CPU minus one, at least one. At most 4096. They exist
    /// only during `cllm_loader_create*`.
    pub num_threads: c_int,
    /// The cache file (its directory is created if needed), or NULL for no
    /// cache. Copied: the string need not outlive the call.
    pub cache_path: *const c_char,
    /// `fsync` the cache before it replaces the old one (default false: a
    /// cache damaged by a crash is detected by its checksums and rebuilt).
    pub durable_cache: bool,
    /// Wrap every document (file) in BOS ... EOS (default true).
    pub document_markers: bool,
    /// Let a load served from the cache map its tokens instead of copying
    /// them (default true): half the time of such a load, and one copy of
    /// the tokens for all processes that load the cache. Mapped only under a
    /// read lease (see `docs/loader.md`): a truncation or open for writing
    /// of the cache by another process waits while the loader copies the
    /// tokens (an open with `O_NONBLOCK` fails with `EAGAIN` meanwhile). A
    /// lease break is signalled with `SIGRTMAX - 3` to the loader's own
    /// thread; a program that uses that signal itself should set false.
    pub map_cache: bool,
}

/// The default options: words, 32768 ids, automatic threads, no cache.
#[unsafe(no_mangle)]
pub extern "C" fn cllm_loader_options_default() -> cllm_loader_options {
    let defaults = LoaderConfig::default();
    cllm_loader_options {
        tokenizer: defaults.tokenizer.into(),
        max_vocab: DEFAULT_MAX_VOCAB as u32,
        num_threads: 0,
        cache_path: std::ptr::null(),
        durable_cache: defaults.durable_cache,
        document_markers: defaults.document_markers,
        map_cache: defaults.map_cache,
    }
}

/// A loaded corpus: vocabulary, tokens, report. Read-only; any thread.
pub struct cllm_loader {
    corpus: Arc<Corpus>,
    /// `cllm_loader_report_text`.
    text: String,
    /// `cllm_loader_skipped_file_name` / `_reason`: (name, reason).
    skipped: Vec<(String, String)>,
}

// SAFETY: made only by Box::into_raw in cllm_loader_create*, freed only by
// cllm_loader_free; read-only after creation (Arc<Corpus>, Strings: Sync).
unsafe impl Handle for cllm_loader {}

impl cllm_loader {
    /// The loaded corpus (for the iterators of `loader_iter.rs`).
    pub(crate) fn corpus(&self) -> &Arc<Corpus> {
        &self.corpus
    }
}

/// What a load found, did and cost (`cllm_loader_get_report`). Durations
/// are nanoseconds.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct cllm_loader_report {
    /// Inputs found (regular files, links, special files).
    pub inputs: u64,
    /// Regular files found; a load without a valid cache opens each once.
    pub regular_files: u64,
    /// Text files in the dataset.
    pub files: u64,
    /// Inputs not in the dataset (see `cllm_loader_skipped_file_name`).
    pub files_skipped: u64,
    /// Bytes of the text files in the dataset.
    pub bytes: u64,
    /// Files this load opened: corpus files and the cache (1 on a cache hit).
    pub files_opened: u64,
    /// Bytes read from corpus files by this load (0 on a cache hit).
    pub bytes_read: u64,
    /// Directories listed.
    pub dirs_listed: u64,
    /// Tokens in the dataset, document markers included.
    pub tokens: u64,
    /// Vocabulary size, special ids included.
    pub vocab_size: u64,
    /// Distinct tokens of the corpus before the `max_vocab` limit.
    pub distinct_tokens: u64,
    /// How the cache was used: one of `CLLM_LOADER_CACHE_STATUS_*`.
    pub cache_status: cllm_loader_cache_status,
    /// True if this load wrote the cache.
    pub cache_written: bool,
    /// True if writing the cache failed (the load still succeeded; the
    /// reason is in `cllm_loader_report_text`).
    pub cache_write_failed: bool,
    /// True if the tokens are a leased mapping of the cache file (shared
    /// with the other processes that load it), false if they are a copy.
    pub cache_mapped: bool,
    /// Size of the cache file, 0 if none.
    pub cache_bytes: u64,
    /// Listing directories and `stat`ing files.
    pub walk_ns: u64,
    /// Opening and reading files (wall time, summed over threads).
    pub read_ns: u64,
    /// Hashing and classifying contents (CPU time, summed over threads).
    pub check_ns: u64,
    /// Tokenising (CPU time, summed over threads).
    pub tokenize_ns: u64,
    /// Merging and ranking the vocabulary.
    pub vocab_ns: u64,
    /// Assembling the dataset.
    pub assemble_ns: u64,
    /// Opening, mapping and verifying the cache.
    pub cache_read_ns: u64,
    /// Writing the cache.
    pub cache_write_ns: u64,
    /// The whole load.
    pub total_ns: u64,
}

/// # Safety
/// `ptr` is NULL or a NUL-terminated string.
unsafe fn path_arg(ptr: *const c_char, name: &str) -> Result<PathBuf, FfiError> {
    if ptr.is_null() {
        return Err(FfiError::null(name));
    }
    // SAFETY: non-NULL, so a NUL-terminated string (this function's contract).
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    if bytes.is_empty() {
        return Err(FfiError::invalid(format!("{name} is an empty string")));
    }
    Ok(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
}

/// Loads `source` with `options` into a new loader at `*out`.
///
/// # Safety
/// `options` is NULL or valid, and its `cache_path` NULL or a string; `out`
/// NULL or writable.
unsafe fn load(
    source: Source,
    options: *const cllm_loader_options,
    out: *mut *mut cllm_loader,
) -> Result<(), FfiError> {
    let out = out_ptr(out, "out")?;
    // SAFETY: NULL or valid options (this function's contract).
    let o = unsafe { options.as_ref() }
        .copied()
        .unwrap_or_else(|| cllm_loader_options_default());
    let tokenizer: TokenizerKind = enum_arg(o.tokenizer, "options.tokenizer")?;
    let cache_path = if o.cache_path.is_null() {
        None
    } else {
        // SAFETY: non-NULL, a string (this function's contract).
        Some(unsafe { path_arg(o.cache_path, "options.cache_path") }?)
    };
    let config = LoaderConfig {
        tokenizer,
        max_vocab: o.max_vocab as usize,
        cache_path,
        durable_cache: o.durable_cache,
        map_cache: o.map_cache,
        document_markers: o.document_markers,
    };
    config.validate()?;
    let spheres = sphere_pool::resolve_spheres(i64::from(o.num_threads))?;
    let pool = SpherePool::new(spheres)?;
    let corpus = Loader::new(config).load(&source, &pool)?;
    drop(pool);
    let report = corpus.report();
    // C strings end at the first NUL: show embedded ones.
    let c_text = |s: &str| s.replace('\0', "\\0");
    let loader = cllm_loader {
        text: c_text(&report.to_string()),
        skipped: report
            .skipped
            .iter()
            .map(|s| (c_text(&s.name), c_text(&s.reason)))
            .collect(),
        corpus: Arc::new(corpus),
    };
    // SAFETY: checked by out_ptr.
    unsafe { write_out(out, Box::into_raw(Box::new(loader))) };
    Ok(())
}

/// Loads every regular file under directory `dir` (recursively; names in
/// byte order at each level, depth first; symbolic links not followed),
/// skipping files that are not text (a NUL byte, or more than 5% invalid
/// UTF-8), empty, or only white space; `*out` receives the loader.
/// `options` may be NULL for the defaults.
///
/// With `options->cache_path`, a corpus that did not change since the cache
/// was written is loaded from the cache alone (the directories are listed
/// and the files `stat`ed, no file is opened); otherwise the cache is
/// rebuilt (atomically). A damaged cache is detected and rebuilt, never used.
/// The cache may be shared by processes: a load served from it maps its
/// tokens under a read lease (`map_cache`; the processes share one copy)
/// or reads them into its own memory. A cache file truncated or rewritten
/// in place by another program cannot crash a live loader: under a lease
/// the other program waits until the loader has copied its tokens, and a
/// `fork` copies them first (at worst the next load finds the file damaged
/// and rebuilds it). The loader itself replaces the cache by writing a
/// temporary file beside it and renaming it over the old one, never by
/// writing into the old file.
///
/// Errors: `CLLM_ERR_NULL` (dir, out), `CLLM_ERR_NOT_FOUND` (dir missing),
/// `CLLM_ERR_INVALID_ARGUMENT` (dir not a directory, tokenizer, max_vocab,
/// num_threads), `CLLM_ERR_IO` (a directory or file that cannot be read,
/// also one that vanished after the directory was listed: the message names
/// it), `CLLM_ERR_EMPTY` (no text file), `CLLM_ERR_SPAWN`,
/// `CLLM_ERR_OUT_OF_MEMORY` (not enough memory for the tokens: the message
/// says how much; never an abort). Files of any size are fine: a file above
/// 8 MiB is read in pieces and never held whole, and a binary one stops
/// being read at its first NUL byte; one with a run of more than 64 MiB
/// without white space or punctuation is skipped (see the report).
/// Failing to write the cache is not an error (see the report).
///
/// # Safety
/// `dir` is NULL or a NUL-terminated path; `options` NULL or valid; `out`
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_loader_create(
    dir: *const c_char,
    options: *const cllm_loader_options,
    out: *mut *mut cllm_loader,
) -> cllm_status {
    ffi_status(|| {
        // SAFETY: this function's contract covers `dir`, `options` and `out`.
        unsafe { load(Source::Directory(path_arg(dir, "dir")?), options, out) }
    })
}

/// As `cllm_loader_create`, for the `count` files of `paths`, in that order
/// (symbolic links followed; each must be a regular file, listed once).
/// Errors as `cllm_loader_create` (`CLLM_ERR_NOT_FOUND`: a listed file does
/// not exist), plus `CLLM_ERR_NULL` for a NULL `paths` (with `count > 0`) or
/// entry, and `CLLM_ERR_EMPTY` for `count == 0`.
///
/// # Safety
/// `paths` is NULL or points to `count` pointers, each NULL or a
/// NUL-terminated path; `options` NULL or valid; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_loader_create_from_files(
    paths: *const *const c_char,
    count: usize,
    options: *const cllm_loader_options,
    out: *mut *mut cllm_loader,
) -> cllm_status {
    ffi_status(|| {
        let list = if count == 0 {
            Vec::new()
        } else if paths.is_null() {
            return Err(FfiError::null("paths"));
        } else {
            (0..count)
                // SAFETY: `count` readable pointers, each NULL or a string
                // (this function's contract).
                .map(|i| unsafe { path_arg(*paths.add(i), &format!("paths[{i}]")) })
                .collect::<Result<Vec<_>, _>>()?
        };
        // SAFETY: this function's contract covers `options` and `out`.
        unsafe { load(Source::Files(list), options, out) }
    })
}

/// Frees a loader. NULL is a no-op. Iterators made from it stay valid (they
/// keep the data alive); the pointer from `cllm_loader_tokens` does not.
///
/// # Safety
/// `loader` is NULL or from `cllm_loader_create*`, not used after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_loader_free(loader: *mut cllm_loader) {
    free_handle!(loader)
}

/// Writes the report of the load to `*out`.
///
/// # Safety
/// `loader` is NULL or live; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_loader_get_report(
    loader: *const cllm_loader,
    out: *mut cllm_loader_report,
) -> cllm_status {
    with_handle!(loader, |l| {
        let out = out_ptr(out, "out")?;
        let r = l.corpus.report();
        let t = &r.timings;
        let report = cllm_loader_report {
            inputs: r.inputs,
            regular_files: r.regular_files,
            files: r.files,
            files_skipped: r.skipped.len() as u64,
            bytes: r.bytes,
            files_opened: r.files_opened,
            bytes_read: r.bytes_read,
            dirs_listed: r.dirs_listed,
            tokens: r.tokens,
            vocab_size: r.vocab_size,
            distinct_tokens: r.distinct_tokens,
            cache_status: r.cache_status.into(),
            cache_written: r.cache_written,
            cache_write_failed: r.cache_error.is_some(),
            cache_bytes: r.cache_bytes,
            cache_mapped: r.cache_mapped,
            walk_ns: ns(t.walk),
            read_ns: ns(t.read),
            check_ns: ns(t.check),
            tokenize_ns: ns(t.tokenize),
            vocab_ns: ns(t.vocab),
            assemble_ns: ns(t.assemble),
            cache_read_ns: ns(t.cache_read),
            cache_write_ns: ns(t.cache_write),
            total_ns: ns(t.total),
        };
        // SAFETY: checked by out_ptr.
        unsafe { write_out(out, report) };
        Ok(())
    })
}

/// The report as text (several lines: corpus, skipped files with reasons,
/// cache status and why, files opened and time per phase), for printing:
/// copied with a NUL into `buf` (`buf_len` bytes), its length to
/// `*out_len`. If `buf_len <= length`: `CLLM_ERR_BUFFER_TOO_SMALL`, nothing
/// written to `buf`, the length needed (without the NUL) to `*out_len`
/// (`buf` may be NULL when `buf_len` is 0, to ask for the size).
///
/// # Safety
/// `loader` is NULL or live; `buf` NULL or writable for `buf_len` bytes;
/// `out_len` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_loader_report_text(
    loader: *const cllm_loader,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> cllm_status {
    with_handle!(loader, |l| text_out!(buf, buf_len, out_len)?.write(&l.text))
}

/// The skipped input number `index` of `loader`, checked.
fn skipped(l: &cllm_loader, index: usize) -> Result<&(String, String), FfiError> {
    l.skipped
        .get(index)
        .ok_or_else(|| FfiError::invalid(format!("skipped file {index} of {}", l.skipped.len())))
}

/// The name of skipped input number `index` (0 .. files_skipped-1),
/// relative to the corpus directory, copied into `buf` as
/// `cllm_loader_report_text` does. `CLLM_ERR_INVALID_ARGUMENT` for an index
/// out of range.
///
/// # Safety
/// `loader` is NULL or live; `buf` NULL or writable for `buf_len` bytes;
/// `out_len` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_loader_skipped_file_name(
    loader: *const cllm_loader,
    index: usize,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> cllm_status {
    with_handle!(loader, |l| {
        let out = text_out!(buf, buf_len, out_len)?;
        out.write(&skipped(l, index)?.0)
    })
}

/// Why input number `index` was skipped ("binary: NUL byte at offset 4",
/// "empty file", ...), copied into `buf` as `cllm_loader_report_text` does.
/// `CLLM_ERR_INVALID_ARGUMENT` for an index out of range.
///
/// # Safety
/// `loader` is NULL or live; `buf` NULL or writable for `buf_len` bytes;
/// `out_len` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_loader_skipped_file_reason(
    loader: *const cllm_loader,
    index: usize,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> cllm_status {
    with_handle!(loader, |l| {
        let out = text_out!(buf, buf_len, out_len)?;
        out.write(&skipped(l, index)?.1)
    })
}

/// The token stream: every document's ids back to back (BOS ... EOS each,
/// unless disabled), as 32-bit ids below the vocabulary size; PAD (0) never
/// occurs. `*tokens` stays valid until the loader is freed; never free it.
/// This is what a host's own batch iterator over a token array takes. (If
/// the ids are stored in 16 bits, the first call makes a 32-bit copy:
/// `cllm_loader_stored_tokens` gives them without one.)
///
/// # Safety
/// `loader` is NULL or live; `tokens` and `count` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_loader_tokens(
    loader: *const cllm_loader,
    tokens: *mut *const u32,
    count: *mut usize,
) -> cllm_status {
    with_handle!(loader, |l| {
        let tokens = out_ptr(tokens, "tokens")?;
        let count = out_ptr(count, "count")?;
        let all = l.corpus.tokens_u32();
        // SAFETY: both checked by out_ptr.
        unsafe {
            write_out(tokens, all.as_ptr());
            write_out(count, all.len());
        }
        Ok(())
    })
}

/// The token stream as it is stored, without a copy: `*count` ids of
/// `*width` bytes each (2: `uint16_t`, when the vocabulary has at most 65536
/// ids; 4: `uint32_t`), in the host's byte order, the same ids in the same
/// order as `cllm_loader_tokens`. When the report says `cache_mapped`, this
/// is the mapping of the cache, shared with the other processes that load
/// it, where `cllm_loader_tokens` on 16-bit ids makes a 32-bit copy of its
/// own. `*ids` stays valid until the loader is freed; never free it or
/// write through it (with `*count` 0 it must not be read).
///
/// # Safety
/// `loader` is NULL or live; `ids`, `count` and `width` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_loader_stored_tokens(
    loader: *const cllm_loader,
    ids: *mut *const c_void,
    count: *mut usize,
    width: *mut usize,
) -> cllm_status {
    with_handle!(loader, |l| {
        let ids = out_ptr(ids, "ids")?;
        let count = out_ptr(count, "count")?;
        let width = out_ptr(width, "width")?;
        let (ptr, n, w): (*const c_void, usize, usize) = match l.corpus.tokens() {
            Tokens::U16(t) => (t.as_ptr().cast(), t.len(), 2),
            Tokens::U32(t) => (t.as_ptr().cast(), t.len(), 4),
        };
        // SAFETY: all three checked by out_ptr.
        unsafe {
            write_out(ids, ptr);
            write_out(count, n);
            write_out(width, w);
        }
        Ok(())
    })
}

/// Writes the vocabulary size (special ids included) to `*out`: every id
/// of the corpus is below it.
///
/// # Safety
/// `loader` is NULL or live; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_loader_vocab_size(
    loader: *const cllm_loader,
    out: *mut usize,
) -> cllm_status {
    with_handle!(loader, |l| {
        let out = out_ptr(out, "out")?;
        // SAFETY: checked by out_ptr.
        unsafe { write_out(out, l.corpus.vocab().len()) };
        Ok(())
    })
}

/// Text for `count` ids, for showing samples: words joined by spaces (none
/// before closing punctuation), bytes concatenated; BOS and PAD print
/// nothing, EOS a new line, UNK `<unk>`. Copied with a NUL into `buf`
/// (`buf_len` bytes), its length to `*out_len`; if `buf_len <= length`:
/// `CLLM_ERR_BUFFER_TOO_SMALL`, nothing written to `buf`, the length needed
/// (without the NUL) to `*out_len` (`buf` may be NULL when `buf_len` is 0).
/// `CLLM_ERR_INVALID_ARGUMENT` if an id is not in the vocabulary.
///
/// # Safety
/// `loader` is NULL or live; `ids` NULL or `count` readable ids; `buf` NULL
/// or writable for `buf_len` bytes; `out_len` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_loader_decode(
    loader: *const cllm_loader,
    ids: *const u32,
    count: usize,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> cllm_status {
    with_handle!(loader, |l| {
        let out = text_out!(buf, buf_len, out_len)?;
        let vocab = l.corpus.vocab();
        let ids: &[u32] = if count == 0 {
            &[]
        } else if ids.is_null() {
            return Err(FfiError::null("ids"));
        } else {
            // SAFETY: non-NULL, so `count` readable ids (this function's contract).
            unsafe { std::slice::from_raw_parts(ids, count) }
        };
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab.len()) {
            return Err(FfiError::invalid(format!(
                "id {bad} is not in the vocabulary of {} ids",
                vocab.len()
            )));
        }
        out.write(&vocab.decode(ids).expect("ids checked"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_memory_has_its_own_status() {
        let e = FfiError::from(Error::OutOfMemory {
            what: "token ids",
            bytes: 1 << 40,
        });
        assert_eq!(e.status, cllm_status::CLLM_ERR_OUT_OF_MEMORY);
        assert!(e.message.contains("token ids"), "{}", e.message);
    }

    #[test]
    fn tokenizer_values_are_checked() {
        assert_eq!(
            TokenizerKind::try_from(CLLM_TOKENIZER_BYTES),
            Ok(TokenizerKind::Bytes)
        );
        let err = enum_arg::<_, TokenizerKind>(cllm_tokenizer(7), "options.tokenizer").unwrap_err();
        assert_eq!(err.status, cllm_status::CLLM_ERR_INVALID_ARGUMENT);
        assert!(
            err.message
                .starts_with("options.tokenizer = 7 is not a cllm_tokenizer")
        );
    }
}
