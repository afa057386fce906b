//! C API of the corpus loader (`cllm_loader_*`): read every file of a corpus
//! once, tokenise it in parallel, cache it, and hand out batches in the
//! `CLLMBatch` layout. See the `corpus-loader` crate for the guarantees.
//!
//! Threads: a `cllm_loader` is read-only once created and may be used from
//! any thread at once. A `cllm_loader_iter` is used by one thread at a time
//! (it may move between threads); make one per sphere, each over its own
//! shard, and they run concurrently. Iterators keep the loaded data alive:
//! the loader may be freed before them.

use crate::error::FfiError;
use crate::guard::{arg_mut, arg_ref, ffi_status, out_ptr, write_out};
use crate::status::cllm_status;
use corpus_loader::{
    Batch, BatchConfig, BatchIter, CacheStatus, Corpus, DEFAULT_MAX_VOCAB, Error, Loader,
    LoaderConfig, Prefetcher, Source, TokenizerKind,
};
use sphere_pool::SpherePool;
use std::ffi::{CStr, CString, c_char, c_int};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;

/// Tokeniser of `cllm_loader_options.tokenizer`: words and punctuation
/// (runs of letters, digits, `_` and non-ASCII bytes; every other
/// non-space character alone; white space dropped).
pub const CLLM_TOKENIZER_WORDS: u32 = 0;
/// Tokeniser: every byte is a token (exact round trip, small vocabulary).
pub const CLLM_TOKENIZER_BYTES: u32 = 1;

/// `cllm_loader_report.cache_status`: no cache path was given.
pub const CLLM_LOADER_CACHE_DISABLED: u32 = 0;
/// Loaded from the cache; no corpus file was opened.
pub const CLLM_LOADER_CACHE_HIT: u32 = 1;
/// Loaded from the cache after hashing files whose `stat` changed (or was
/// too recent to trust) and finding the same content; the cache was
/// rewritten with their new `stat`.
pub const CLLM_LOADER_CACHE_REFRESHED: u32 = 2;
/// No cache file yet: built and written.
pub const CLLM_LOADER_CACHE_MISSING: u32 = 3;
/// A file was added, removed or changed: rebuilt.
pub const CLLM_LOADER_CACHE_STALE: u32 = 4;
/// The cache failed a check (truncated, header, version, checksum): rebuilt.
pub const CLLM_LOADER_CACHE_CORRUPT: u32 = 5;
/// The cache was made with other options or from another source: rebuilt.
pub const CLLM_LOADER_CACHE_OPTIONS_CHANGED: u32 = 6;
/// The cache path cannot hold a cache file (a directory, not a regular
/// file, or opening it was refused, e.g. no permission): the corpus was
/// built without it. The report text says why; `cache_write_failed` tells
/// whether writing it failed too.
pub const CLLM_LOADER_CACHE_INACCESSIBLE: u32 = 7;

/// The most batches an iterator may prepare ahead.
pub const CLLM_LOADER_MAX_PREFETCH: u32 = 4096;

impl From<Error> for FfiError {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::NotFound { .. } => cllm_status::CLLM_ERR_NOT_FOUND,
            Error::Io { .. } => cllm_status::CLLM_ERR_IO,
            Error::Empty(_) => cllm_status::CLLM_ERR_EMPTY,
            Error::InvalidArgument(_) => cllm_status::CLLM_ERR_INVALID_ARGUMENT,
            Error::Spawn(_) => cllm_status::CLLM_ERR_SPAWN,
            // Memory is the capacity that ran out; the message says how much.
            Error::OutOfMemory { .. } => cllm_status::CLLM_ERR_FULL,
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
    pub tokenizer: u32,
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
}

/// The default options: words, 32768 ids, automatic threads, no cache.
#[unsafe(no_mangle)]
pub extern "C" fn cllm_loader_options_default() -> cllm_loader_options {
    let defaults = LoaderConfig::default();
    cllm_loader_options {
        tokenizer: defaults.tokenizer.code(),
        max_vocab: DEFAULT_MAX_VOCAB as u32,
        num_threads: 0,
        cache_path: std::ptr::null(),
        durable_cache: defaults.durable_cache,
        document_markers: defaults.document_markers,
    }
}

/// A loaded corpus: vocabulary, tokens, report. Read-only; any thread.
pub struct cllm_loader {
    corpus: Arc<Corpus>,
    /// `cllm_loader_report_text`.
    text: CString,
    /// `cllm_loader_skipped_file`: (name, reason).
    skipped: Vec<(CString, CString)>,
}

/// What a load found, did and cost (`cllm_loader_get_report`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct cllm_loader_report {
    /// Inputs found (regular files, links, special files).
    pub inputs: u64,
    /// Regular files found; a load without a valid cache opens each once.
    pub regular_files: u64,
    /// Text files in the dataset.
    pub files: u64,
    /// Inputs not in the dataset (see `cllm_loader_skipped_file`).
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
    /// One of `CLLM_LOADER_CACHE_*`.
    pub cache_status: u32,
    /// True if this load wrote the cache.
    pub cache_written: bool,
    /// True if writing the cache failed (the load still succeeded; the
    /// reason is in `cllm_loader_report_text`).
    pub cache_write_failed: bool,
    /// Size of the cache file, 0 if none.
    pub cache_bytes: u64,
    /// Seconds listing directories and `stat`ing files.
    pub walk_seconds: f64,
    /// Seconds opening and reading files (wall time, summed over threads).
    pub read_seconds: f64,
    /// Seconds hashing and classifying contents (CPU time, summed over threads).
    pub check_seconds: f64,
    /// Seconds tokenising (CPU time, summed over threads).
    pub tokenize_seconds: f64,
    /// Seconds merging and ranking the vocabulary.
    pub vocab_seconds: f64,
    /// Seconds assembling the dataset.
    pub assemble_seconds: f64,
    /// Seconds opening, mapping and verifying the cache.
    pub cache_read_seconds: f64,
    /// Seconds writing the cache.
    pub cache_write_seconds: f64,
    /// Seconds of the whole load.
    pub total_seconds: f64,
}

/// # Safety
/// `ptr` is NULL or a NUL-terminated string.
unsafe fn path_arg(ptr: *const c_char, name: &str) -> Result<PathBuf, FfiError> {
    // SAFETY: forwarded from the caller.
    let s = unsafe { arg_ref(ptr, name) }?;
    // SAFETY: a non-NULL pointer to a NUL-terminated string (caller's promise).
    let bytes = unsafe { CStr::from_ptr(s) }.to_bytes();
    if bytes.is_empty() {
        return Err(FfiError::invalid(format!("{name} is an empty string")));
    }
    Ok(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
}

/// # Safety
/// `options` is NULL or valid, and its `cache_path` NULL or a string.
unsafe fn load(
    source: Source,
    options: *const cllm_loader_options,
    out: *mut *mut cllm_loader,
) -> cllm_status {
    ffi_status(|| {
        let out = out_ptr(out, "out")?;
        // SAFETY: the caller passes NULL or valid options.
        let o = unsafe { options.as_ref() }
            .copied()
            .unwrap_or_else(|| cllm_loader_options_default());
        let tokenizer = TokenizerKind::from_code(o.tokenizer).ok_or_else(|| {
            FfiError::invalid(format!(
                "tokenizer {} is neither WORDS (0) nor BYTES (1)",
                o.tokenizer
            ))
        })?;
        let cache_path = if o.cache_path.is_null() {
            None
        } else {
            // SAFETY: non-NULL, a string by the caller's promise.
            Some(unsafe { path_arg(o.cache_path, "options.cache_path") }?)
        };
        let config = LoaderConfig {
            tokenizer,
            max_vocab: o.max_vocab as usize,
            cache_path,
            durable_cache: o.durable_cache,
            document_markers: o.document_markers,
        };
        config.validate()?;
        let spheres = sphere_pool::resolve_spheres(i64::from(o.num_threads))?;
        let pool = SpherePool::new(spheres)?;
        let corpus = Loader::new(config).load(&source, &pool)?;
        drop(pool);
        let report = corpus.report();
        let c_string = |s: &str| CString::new(s.replace('\0', "\\0")).unwrap_or_default();
        let loader = cllm_loader {
            text: c_string(&report.to_string()),
            skipped: report
                .skipped
                .iter()
                .map(|s| (c_string(&s.name), c_string(&s.reason)))
                .collect(),
            corpus: Arc::new(corpus),
        };
        // SAFETY: `out` was checked and is writable.
        unsafe { write_out(out, Box::into_raw(Box::new(loader))) };
        Ok(())
    })
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
/// The cache may be shared by processes: it is read into the loader's own
/// memory, never mapped, so a cache file truncated or rewritten in place by
/// another program cannot crash a live loader (at worst the next load finds
/// it damaged and rebuilds it); the loader itself replaces the cache by
/// writing a temporary file beside it and renaming it over the old one,
/// never by writing into the old file.
///
/// Errors: `CLLM_ERR_NULL` (dir, out), `CLLM_ERR_NOT_FOUND` (dir missing),
/// `CLLM_ERR_INVALID_ARGUMENT` (dir not a directory, tokenizer, max_vocab,
/// num_threads), `CLLM_ERR_IO` (a directory or file that cannot be read,
/// also one that vanished after the directory was listed: the message names
/// it), `CLLM_ERR_EMPTY` (no text file), `CLLM_ERR_SPAWN`, `CLLM_ERR_FULL`
/// (not enough memory for the tokens: the message says how much; never an
/// abort). Files of any size are fine: a file above 8 MiB is read in pieces
/// and never held whole, and a binary one stops being read at its first NUL
/// byte; one with a run of more than 64 MiB without white space or
/// punctuation is skipped (see the report).
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
    // SAFETY: forwarded from the caller.
    match unsafe { path_arg(dir, "dir") } {
        // SAFETY: forwarded from the caller.
        Ok(dir) => unsafe { load(Source::Directory(dir), options, out) },
        Err(e) => ffi_status(|| Err(e)),
    }
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
    let list = (|| {
        if count == 0 {
            return Ok(Vec::new());
        }
        if paths.is_null() {
            return Err(FfiError::null("paths"));
        }
        (0..count)
            // SAFETY: the caller promises `count` readable pointers.
            .map(|i| unsafe { path_arg(*paths.add(i), &format!("paths[{i}]")) })
            .collect::<Result<Vec<_>, _>>()
    })();
    match list {
        // SAFETY: forwarded from the caller.
        Ok(list) => unsafe { load(Source::Files(list), options, out) },
        Err(e) => ffi_status(|| Err(e)),
    }
}

/// Frees a loader. NULL is a no-op. Iterators made from it stay valid (they
/// keep the data alive); pointers from `cllm_loader_tokens`, `_report_text`
/// and `_skipped_file` do not.
///
/// # Safety
/// `loader` is NULL or from `cllm_loader_create*`, not used after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_loader_free(loader: *mut cllm_loader) {
    if loader.is_null() {
        return;
    }
    ffi_status(|| {
        // SAFETY: the caller gives up a loader made by `cllm_loader_create*`.
        drop(unsafe { Box::from_raw(loader) });
        Ok(())
    });
}

/// # Safety
/// `loader` is NULL or a live loader.
unsafe fn loader_ref<'a>(loader: *const cllm_loader) -> Result<&'a cllm_loader, FfiError> {
    // SAFETY: forwarded from the caller.
    unsafe { arg_ref(loader, "loader") }
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
    ffi_status(|| {
        let out = out_ptr(out, "out")?;
        // SAFETY: forwarded from the caller.
        let r = unsafe { loader_ref(loader) }?.corpus.report();
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
            cache_status: match r.cache_status {
                CacheStatus::Disabled => CLLM_LOADER_CACHE_DISABLED,
                CacheStatus::Hit => CLLM_LOADER_CACHE_HIT,
                CacheStatus::Refreshed => CLLM_LOADER_CACHE_REFRESHED,
                CacheStatus::Missing => CLLM_LOADER_CACHE_MISSING,
                CacheStatus::Stale => CLLM_LOADER_CACHE_STALE,
                CacheStatus::Corrupt => CLLM_LOADER_CACHE_CORRUPT,
                CacheStatus::OptionsChanged => CLLM_LOADER_CACHE_OPTIONS_CHANGED,
                CacheStatus::Inaccessible => CLLM_LOADER_CACHE_INACCESSIBLE,
            },
            cache_written: r.cache_written,
            cache_write_failed: r.cache_error.is_some(),
            cache_bytes: r.cache_bytes,
            walk_seconds: t.walk.as_secs_f64(),
            read_seconds: t.read.as_secs_f64(),
            check_seconds: t.check.as_secs_f64(),
            tokenize_seconds: t.tokenize.as_secs_f64(),
            vocab_seconds: t.vocab.as_secs_f64(),
            assemble_seconds: t.assemble.as_secs_f64(),
            cache_read_seconds: t.cache_read.as_secs_f64(),
            cache_write_seconds: t.cache_write.as_secs_f64(),
            total_seconds: t.total.as_secs_f64(),
        };
        // SAFETY: checked above.
        unsafe { write_out(out, report) };
        Ok(())
    })
}

/// The report as text (several lines: corpus, skipped files with reasons,
/// cache status and why, files opened and time per phase), for printing.
/// `*out` stays valid until the loader is freed; never free it.
///
/// # Safety
/// `loader` is NULL or live; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_loader_report_text(
    loader: *const cllm_loader,
    out: *mut *const c_char,
) -> cllm_status {
    ffi_status(|| {
        let out = out_ptr(out, "out")?;
        // SAFETY: forwarded from the caller.
        let text = unsafe { loader_ref(loader) }?.text.as_ptr();
        // SAFETY: checked above.
        unsafe { write_out(out, text) };
        Ok(())
    })
}

/// Skipped input number `index` (0 .. files_skipped-1): its name (relative
/// to the corpus directory) and the reason ("binary: NUL byte at offset 4",
/// "empty file", ...). The strings stay valid until the loader is freed.
/// `CLLM_ERR_INVALID_ARGUMENT` for an index out of range.
///
/// # Safety
/// `loader` is NULL or live; `name` and `reason` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_loader_skipped_file(
    loader: *const cllm_loader,
    index: usize,
    name: *mut *const c_char,
    reason: *mut *const c_char,
) -> cllm_status {
    ffi_status(|| {
        let name = out_ptr(name, "name")?;
        let reason = out_ptr(reason, "reason")?;
        // SAFETY: forwarded from the caller.
        let skipped = &unsafe { loader_ref(loader) }?.skipped;
        let (n, r) = skipped.get(index).ok_or_else(|| {
            FfiError::invalid(format!("skipped file {index} of {}", skipped.len()))
        })?;
        // SAFETY: both checked above.
        unsafe {
            write_out(name, n.as_ptr());
            write_out(reason, r.as_ptr());
        }
        Ok(())
    })
}

/// The token stream: every document's ids back to back (BOS ... EOS each,
/// unless disabled), as 32-bit ids below the vocabulary size; PAD (0) never
/// occurs. `*tokens` stays valid until the loader is freed; never free it.
/// This is what a host's own batch iterator over a token array takes. (If
/// the ids are stored in 16 bits, the first call makes a 32-bit copy.)
///
/// # Safety
/// `loader` is NULL or live; `tokens` and `count` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_loader_tokens(
    loader: *const cllm_loader,
    tokens: *mut *const u32,
    count: *mut usize,
) -> cllm_status {
    ffi_status(|| {
        let tokens = out_ptr(tokens, "tokens")?;
        let count = out_ptr(count, "count")?;
        // SAFETY: forwarded from the caller.
        let all = unsafe { loader_ref(loader) }?.corpus.tokens_u32();
        // SAFETY: both checked above.
        unsafe {
            write_out(tokens, all.as_ptr());
            write_out(count, all.len());
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
    ffi_status(|| {
        let out = out_ptr(out, "out")?;
        // SAFETY: forwarded from the caller.
        let n = unsafe { loader_ref(loader) }?.corpus.vocab().len();
        // SAFETY: checked above.
        unsafe { write_out(out, n) };
        Ok(())
    })
}

/// Text for `count` ids, for showing samples: words joined by spaces (none
/// before closing punctuation), bytes concatenated; BOS and PAD print
/// nothing, EOS a new line, UNK `<unk>`. Like `snprintf`: writes at most
/// `size - 1` bytes and a NUL to `buf` (nothing if `size` is 0, when `buf`
/// may be NULL) and the full length to `*length`.
/// `CLLM_ERR_INVALID_ARGUMENT` if an id is not in the vocabulary.
///
/// # Safety
/// `loader` is NULL or live; `ids` NULL or `count` readable ids; `buf` NULL
/// or `size` writable bytes; `length` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_loader_decode(
    loader: *const cllm_loader,
    ids: *const u32,
    count: usize,
    buf: *mut c_char,
    size: usize,
    length: *mut usize,
) -> cllm_status {
    ffi_status(|| {
        let length = out_ptr(length, "length")?;
        if size > 0 {
            out_ptr(buf, "buf")?;
        }
        // SAFETY: forwarded from the caller.
        let vocab = unsafe { loader_ref(loader) }?.corpus.vocab();
        let ids: &[u32] = if count == 0 {
            &[]
        } else {
            // SAFETY: non-NULL (checked) and `count` readable ids (caller's promise).
            unsafe { std::slice::from_raw_parts(arg_ref(ids, "ids")?, count) }
        };
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab.len()) {
            return Err(FfiError::invalid(format!(
                "id {bad} is not in the vocabulary of {} ids",
                vocab.len()
            )));
        }
        let text = vocab.decode(ids).expect("ids checked");
        if size > 0 {
            let n = text.len().min(size - 1);
            // SAFETY: `buf` holds `size` bytes (caller's promise); n + 1 <= size.
            unsafe {
                std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), n);
                *buf.add(n) = 0;
            }
        }
        // SAFETY: checked above.
        unsafe { write_out(length, text.len()) };
        Ok(())
    })
}

/// How to cut the corpus into batches; fill it with
/// `cllm_batch_options_default()`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct cllm_batch_options {
    /// Sequences per batch (at least 1; default 8).
    pub batch_size: u32,
    /// Tokens per sequence (at least 1, less than the corpus; default 64).
    /// `batch_size * seq_len` is at most 2^26.
    pub seq_len: u32,
    /// Shuffle the sequences every epoch, seeded by (`seed`, epoch)
    /// (default true); false: corpus order.
    pub shuffle: bool,
    /// Leave out the last incomplete batch and partial sequence (default
    /// false: they are padded with PAD ids and mask 0.0).
    pub drop_last: bool,
    /// Seed of the shuffle (default 0).
    pub seed: u64,
    /// Batches prepared ahead by a background thread of the iterator (0: none,
    /// batches are built by `cllm_loader_iter_next`; at most 4096). Set it to
    /// the number of spheres to prepare the next group while one trains.
    pub prefetch: u32,
}

/// The default batch options: 8 x 64, shuffled with seed 0, padded last
/// batch, no prefetch.
#[unsafe(no_mangle)]
pub extern "C" fn cllm_batch_options_default() -> cllm_batch_options {
    let d = BatchConfig::default();
    cllm_batch_options {
        batch_size: d.batch_size as u32,
        seq_len: d.seq_len as u32,
        shuffle: d.shuffle,
        drop_last: d.drop_last,
        seed: d.seed,
        prefetch: 0,
    }
}

/// One batch, with exactly the layout of the host's `CLLMBatch` (40 bytes on
/// x86-64): row-major `batch_size x seq_len` arrays. Targets are the inputs
/// shifted by one token; padding has id 0 and mask 0.0; `num_valid_tokens`
/// counts the mask's 1.0 entries. Free it with `cllm_loader_batch_free`
/// (a pointer to it may be passed where a `CLLMBatch*` is expected).
#[repr(C)]
#[derive(Debug)]
pub struct cllm_loader_batch {
    /// Input ids.
    pub input_ids: *mut u32,
    /// Target ids.
    pub target_ids: *mut u32,
    /// 1.0 for a real token, 0.0 for padding.
    pub attention_mask: *mut f32,
    /// Rows.
    pub batch_size: u32,
    /// Columns.
    pub seq_len: u32,
    /// Number of real (unmasked) tokens.
    pub num_valid_tokens: u32,
}

/// A batch and the vectors its pointers point into.
#[repr(C)]
struct BatchBox {
    /// First field: a `*mut cllm_loader_batch` is a `*mut BatchBox`.
    c: cllm_loader_batch,
    batch: Batch,
}

enum Batches {
    Direct(BatchIter),
    Prefetched(Prefetcher),
}

/// The batches of one shard, epoch after epoch. One thread at a time.
pub struct cllm_loader_iter {
    corpus: Arc<Corpus>,
    config: BatchConfig,
    shard: usize,
    num_shards: usize,
    prefetch: usize,
    per_epoch: usize,
    batches: Batches,
}

fn start(
    corpus: &Arc<Corpus>,
    config: &BatchConfig,
    shard: usize,
    num_shards: usize,
    prefetch: usize,
    epoch: u64,
) -> Result<(Batches, usize), FfiError> {
    let mut iter = BatchIter::new(corpus.clone(), config, shard, num_shards)?;
    iter.reset(epoch);
    let per_epoch = iter.batches_per_epoch();
    let batches = if prefetch == 0 {
        Batches::Direct(iter)
    } else {
        Batches::Prefetched(Prefetcher::new(iter, prefetch)?)
    };
    Ok((batches, per_epoch))
}

/// Creates the iterator of shard `shard` of `num_shards` (0 of 1 for every
/// batch), at the start of epoch 0; `*out` receives it. Batch `b` of an
/// epoch belongs to shard `b % num_shards`: shards are disjoint and together
/// give every batch once. `options` may be NULL for the defaults.
///
/// Errors: `CLLM_ERR_NULL` (loader, out), `CLLM_ERR_INVALID_ARGUMENT`
/// (batch_size or seq_len 0, batch_size * seq_len above 2^26, seq_len not
/// shorter than the corpus, no full batch with drop_last, shard not below
/// num_shards, num_shards 0 or above 4096, prefetch above 4096),
/// `CLLM_ERR_SPAWN` (the prefetch thread).
///
/// # Safety
/// `loader` is NULL or live; `options` NULL or valid; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_loader_iter_create(
    loader: *const cllm_loader,
    options: *const cllm_batch_options,
    shard: u32,
    num_shards: u32,
    out: *mut *mut cllm_loader_iter,
) -> cllm_status {
    ffi_status(|| {
        let out = out_ptr(out, "out")?;
        // SAFETY: forwarded from the caller.
        let corpus = unsafe { loader_ref(loader) }?.corpus.clone();
        // SAFETY: the caller passes NULL or valid options.
        let o = unsafe { options.as_ref() }
            .copied()
            .unwrap_or_else(|| cllm_batch_options_default());
        if o.prefetch > CLLM_LOADER_MAX_PREFETCH {
            return Err(FfiError::invalid(format!(
                "prefetch {} is above the limit of {CLLM_LOADER_MAX_PREFETCH}",
                o.prefetch
            )));
        }
        let config = BatchConfig {
            batch_size: o.batch_size as usize,
            seq_len: o.seq_len as usize,
            shuffle: o.shuffle,
            seed: o.seed,
            drop_last: o.drop_last,
        };
        let (shard, num_shards, prefetch) =
            (shard as usize, num_shards as usize, o.prefetch as usize);
        let (batches, per_epoch) = start(&corpus, &config, shard, num_shards, prefetch, 0)?;
        let iter = cllm_loader_iter {
            corpus,
            config,
            shard,
            num_shards,
            prefetch,
            per_epoch,
            batches,
        };
        // SAFETY: checked above.
        unsafe { write_out(out, Box::into_raw(Box::new(iter))) };
        Ok(())
    })
}

/// The next batch of this shard in the current epoch: `*out` receives a new
/// batch (free it with `cllm_loader_batch_free`), or NULL when the epoch is
/// over (then call `cllm_loader_iter_reset`). Errors: `CLLM_ERR_NULL`.
///
/// # Safety
/// `iter` is NULL or live and not used by another thread meanwhile; `out`
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_loader_iter_next(
    iter: *mut cllm_loader_iter,
    out: *mut *mut cllm_loader_batch,
) -> cllm_status {
    ffi_status(|| {
        let out = out_ptr(out, "out")?;
        // SAFETY: forwarded from the caller.
        let iter = unsafe { arg_mut(iter, "iter") }?;
        let next = match &mut iter.batches {
            Batches::Direct(b) => b.next(),
            Batches::Prefetched(p) => p.next(),
        };
        let ptr = match next {
            None => std::ptr::null_mut(),
            Some(mut batch) => {
                let c = cllm_loader_batch {
                    input_ids: batch.input_ids.as_mut_ptr(),
                    target_ids: batch.target_ids.as_mut_ptr(),
                    attention_mask: batch.attention_mask.as_mut_ptr(),
                    batch_size: batch.batch_size,
                    seq_len: batch.seq_len,
                    num_valid_tokens: batch.num_valid_tokens,
                };
                // Moving `batch` into the box moves the Vec headers, not their
                // heap buffers: the pointers above stay valid.
                Box::into_raw(Box::new(BatchBox { c, batch })).cast::<cllm_loader_batch>()
            }
        };
        // SAFETY: checked above.
        unsafe { write_out(out, ptr) };
        Ok(())
    })
}

/// Starts epoch `epoch` from this shard's first batch (shuffled for that
/// epoch). Resetting to the current epoch repeats it. Errors:
/// `CLLM_ERR_NULL`, `CLLM_ERR_SPAWN` (the prefetch thread).
///
/// # Safety
/// `iter` is NULL or live and not used by another thread meanwhile.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_loader_iter_reset(
    iter: *mut cllm_loader_iter,
    epoch: u64,
) -> cllm_status {
    ffi_status(|| {
        // SAFETY: forwarded from the caller.
        let iter = unsafe { arg_mut(iter, "iter") }?;
        match &mut iter.batches {
            Batches::Direct(b) => b.reset(epoch),
            Batches::Prefetched(_) => {
                // Stop the old thread before starting the new one.
                iter.batches = Batches::Direct(BatchIter::new(
                    iter.corpus.clone(),
                    &iter.config,
                    iter.shard,
                    iter.num_shards,
                )?);
                let (batches, _) = start(
                    &iter.corpus,
                    &iter.config,
                    iter.shard,
                    iter.num_shards,
                    iter.prefetch,
                    epoch,
                )?;
                iter.batches = batches;
            }
        }
        Ok(())
    })
}

/// Writes the number of batches this shard gives per epoch to `*out`.
///
/// # Safety
/// `iter` is NULL or live; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_loader_iter_num_batches(
    iter: *const cllm_loader_iter,
    out: *mut usize,
) -> cllm_status {
    ffi_status(|| {
        let out = out_ptr(out, "out")?;
        // SAFETY: forwarded from the caller.
        let n = unsafe { arg_ref(iter, "iter") }?.per_epoch;
        // SAFETY: checked above.
        unsafe { write_out(out, n) };
        Ok(())
    })
}

/// Frees an iterator (stopping its prefetch thread). NULL is a no-op.
/// Batches it returned stay valid.
///
/// # Safety
/// `iter` is NULL or from `cllm_loader_iter_create`, not used after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_loader_iter_free(iter: *mut cllm_loader_iter) {
    if iter.is_null() {
        return;
    }
    ffi_status(|| {
        // SAFETY: the caller gives up an iterator made by `cllm_loader_iter_create`.
        drop(unsafe { Box::from_raw(iter) });
        Ok(())
    });
}

/// Frees a batch from `cllm_loader_iter_next`. NULL is a no-op.
///
/// # Safety
/// `batch` is NULL or from `cllm_loader_iter_next`, not used after this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cllm_loader_batch_free(batch: *mut cllm_loader_batch) {
    if batch.is_null() {
        return;
    }
    ffi_status(|| {
        // SAFETY: the pointer came from `Box<BatchBox>::into_raw` (its first
        // field, same address) and is given up by the caller.
        drop(unsafe { Box::from_raw(batch.cast::<BatchBox>()) });
        Ok(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn the_batch_has_the_cllm_batch_layout() {
        assert_eq!(offset_of!(cllm_loader_batch, input_ids), 0);
        assert_eq!(
            offset_of!(cllm_loader_batch, target_ids),
            size_of::<usize>()
        );
        assert_eq!(
            offset_of!(cllm_loader_batch, attention_mask),
            2 * size_of::<usize>()
        );
        assert_eq!(
            offset_of!(cllm_loader_batch, batch_size),
            3 * size_of::<usize>()
        );
        assert_eq!(
            offset_of!(cllm_loader_batch, seq_len),
            3 * size_of::<usize>() + 4
        );
        assert_eq!(
            offset_of!(cllm_loader_batch, num_valid_tokens),
            3 * size_of::<usize>() + 8
        );
        #[cfg(target_pointer_width = "64")]
        assert_eq!(size_of::<cllm_loader_batch>(), 40);
    }
}
