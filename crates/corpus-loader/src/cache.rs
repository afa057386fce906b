//! The cache file: format, atomic writing, and verified reading.
//!
//! One file holds everything, so a warm load opens exactly one file:
//!
//! ```text
//! 0    header (128 bytes): magic "CLLMTOKC", version, file length,
//!      fingerprint of the options and source, token width (2 or 4),
//!      vocabulary size, token count, section offsets and lengths, the
//!      XXH3 of the metadata and of the block table, and its own XXH3
//! 128  metadata: build stamp, source, manifest (name, kind, size, mtime,
//!      ctime, inode, device, content hash, racy flag, tokens, skip reason),
//!      vocabulary (tokens and counts)
//!      padding to a multiple of 64
//!      tokens: little-endian ids
//!      block table: XXH3 of each 64 KiB block of the tokens (seeded with
//!      the block's index)
//! ```
//!
//! Reading checks, in order: the length against the header (truncation),
//! magic, version, header hash, the sections' bounds, the metadata hash,
//! then every token block's hash and that every id is inside the vocabulary
//! (blocks in parallel). Any failure makes the cache "corrupt": it is
//! rebuilt, never used. The token section is mapped only under a read lease
//! (`leased_map.rs`: another process truncating or rewriting the file in place
//! waits until this one has copied its tokens, so it cannot fault with
//! SIGBUS); without a lease it is read into memory of its own. The header,
//! metadata and block table are always read. Writing goes to a temporary file in the same directory,
//! optionally `fsync`ed, then renamed over the cache: readers see the old or
//! the new file, never a half-written one.

use crate::build::FileRecord;
use crate::config::{LoaderConfig, TokenizerKind};
use crate::fs::{Opener, StatSig};
use crate::hash::xxh3;
use crate::leased_map::LeasedMap;
use crate::reader::Reader;
use crate::temp_name::temp_name;
use crate::tokens::{TokenBuf, TokenStore, Tokens, try_zeroed};
use crate::vocab::Vocab;
use crate::walk::EntryKind;
use parking_lot::Mutex;
use sphere_pool::SpherePool;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The first eight bytes of every cache file.
pub const MAGIC: [u8; 8] = *b"CLLMTOKC";
/// The format version this code reads and writes. 2: every checksum (and
/// the files' content hashes in the manifest) is XXH3; version 1's were
/// XXH64, so a version 1 cache is rejected by its version and rebuilt.
pub const VERSION: u32 = 2;
const HEADER_LEN: usize = 128;
/// Tokens are checksummed in blocks of this size: small enough that the
/// range check after the hash reads the block from the core's own cache.
const BLOCK: usize = 64 << 10;

/// The fingerprint of everything besides the files that decides the tokens.
pub(crate) fn fingerprint(config: &LoaderConfig, description: &[u8]) -> u64 {
    let mut bytes = Vec::with_capacity(description.len() + 32);
    bytes.extend_from_slice(&VERSION.to_le_bytes());
    bytes.extend_from_slice(&config.tokenizer.code().to_le_bytes());
    bytes.extend_from_slice(&(config.max_vocab as u64).to_le_bytes());
    bytes.push(config.document_markers as u8);
    bytes.extend_from_slice(description);
    xxh3(&bytes, 0x636c_6c6d)
}

/// The fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub file_len: u64,
    pub fingerprint: u64,
    pub token_width: u32,
    pub vocab_size: u32,
    pub n_tokens: u64,
    pub meta_len: u64,
    pub meta_hash: u64,
    pub tokens_off: u64,
    pub blocks_off: u64,
    pub block_count: u64,
    pub blocks_hash: u64,
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        let mut put = |at: usize, bytes: &[u8]| h[at..at + bytes.len()].copy_from_slice(bytes);
        put(0, &MAGIC);
        put(8, &VERSION.to_le_bytes());
        put(12, &(HEADER_LEN as u32).to_le_bytes());
        put(16, &self.file_len.to_le_bytes());
        put(24, &self.fingerprint.to_le_bytes());
        put(32, &self.token_width.to_le_bytes());
        put(36, &self.vocab_size.to_le_bytes());
        put(40, &self.n_tokens.to_le_bytes());
        put(48, &(HEADER_LEN as u64).to_le_bytes());
        put(56, &self.meta_len.to_le_bytes());
        put(64, &self.meta_hash.to_le_bytes());
        put(72, &self.tokens_off.to_le_bytes());
        put(80, &(self.n_tokens * self.token_width as u64).to_le_bytes());
        put(88, &self.blocks_off.to_le_bytes());
        put(96, &self.block_count.to_le_bytes());
        put(104, &(BLOCK as u32).to_le_bytes());
        put(112, &self.blocks_hash.to_le_bytes());
        let own = xxh3(&h[..120], 0);
        h[120..].copy_from_slice(&own.to_le_bytes());
        h
    }

    /// Parses and checks the header of a file of `actual_len` bytes.
    fn decode(data: &[u8], actual_len: u64) -> Result<Self, String> {
        if data.len() < HEADER_LEN {
            return Err(format!(
                "truncated: {} bytes, shorter than the header",
                data.len()
            ));
        }
        let mut r = Reader::new(&data[..HEADER_LEN]);
        let bad = || "malformed header".to_string();
        if r.bytes(8).ok_or_else(bad)? != MAGIC {
            return Err("not a cache file (bad magic)".into());
        }
        let version = r.u32().ok_or_else(bad)?;
        if version != VERSION {
            return Err(format!(
                "format version {version}, this loader reads version {VERSION}"
            ));
        }
        let stored = u64::from_le_bytes(data[120..128].try_into().expect("8 bytes"));
        if xxh3(&data[..120], 0) != stored {
            return Err("header checksum mismatch".into());
        }
        let header_len = r.u32().ok_or_else(bad)?;
        let file_len = r.u64().ok_or_else(bad)?;
        if file_len != actual_len {
            return Err(format!(
                "truncated or extended: {actual_len} bytes, the header says {file_len}"
            ));
        }
        let h = Header {
            file_len,
            fingerprint: r.u64().ok_or_else(bad)?,
            token_width: r.u32().ok_or_else(bad)?,
            vocab_size: r.u32().ok_or_else(bad)?,
            n_tokens: r.u64().ok_or_else(bad)?,
            meta_len: {
                let meta_off = r.u64().ok_or_else(bad)?;
                if meta_off != HEADER_LEN as u64 || header_len != HEADER_LEN as u32 {
                    return Err(bad());
                }
                r.u64().ok_or_else(bad)?
            },
            meta_hash: r.u64().ok_or_else(bad)?,
            tokens_off: r.u64().ok_or_else(bad)?,
            blocks_off: {
                let tokens_len = r.u64().ok_or_else(bad)?;
                let blocks_off = r.u64().ok_or_else(bad)?;
                let _ = tokens_len; // re-derived and checked below
                blocks_off
            },
            block_count: r.u64().ok_or_else(bad)?,
            blocks_hash: {
                let block_size = r.u32().ok_or_else(bad)?;
                let _reserved = r.u32().ok_or_else(bad)?;
                if block_size as usize != BLOCK {
                    return Err(bad());
                }
                r.u64().ok_or_else(bad)?
            },
        };
        let tokens_len = u64::from_le_bytes(data[80..88].try_into().expect("8 bytes"));
        let sane = (h.token_width == 2 || h.token_width == 4)
            && h.n_tokens.checked_mul(h.token_width as u64) == Some(tokens_len)
            && (HEADER_LEN as u64)
                .checked_add(h.meta_len)
                .is_some_and(|end| end <= h.tokens_off)
            && h.tokens_off % 64 == 0
            && h.tokens_off.checked_add(tokens_len) == Some(h.blocks_off)
            && h.block_count == tokens_len.div_ceil(BLOCK as u64)
            && h.block_count
                .checked_mul(8)
                .and_then(|b| b.checked_add(h.blocks_off))
                == Some(file_len);
        if !sane {
            return Err("inconsistent section table".into());
        }
        Ok(h)
    }
}

/// The metadata section.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    pub records: Vec<FileRecord>,
    pub vocab: Vocab,
    pub distinct: u64,
}

fn encode_meta(stamp_ns: i64, description: &[u8], meta: &Meta) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + meta.records.len() * 80);
    out.extend_from_slice(&stamp_ns.to_le_bytes());
    out.extend_from_slice(&meta.distinct.to_le_bytes());
    out.extend_from_slice(&(description.len() as u32).to_le_bytes());
    out.extend_from_slice(description);
    out.extend_from_slice(&(meta.records.len() as u32).to_le_bytes());
    for r in &meta.records {
        out.push(r.kind.code());
        out.push(r.racy as u8 | (r.skip.is_some() as u8) << 1);
        out.extend_from_slice(&(r.name.len() as u32).to_le_bytes());
        out.extend_from_slice(&r.name);
        for v in [
            r.sig.size,
            r.sig.mtime_ns as u64,
            r.sig.ctime_ns as u64,
            r.sig.ino,
            r.sig.dev,
            r.hash,
            r.tokens,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        if let Some(reason) = &r.skip {
            out.extend_from_slice(&(reason.len() as u32).to_le_bytes());
            out.extend_from_slice(reason.as_bytes());
        }
    }
    out.extend_from_slice(&meta.vocab.kind().code().to_le_bytes());
    meta.vocab.encode(&mut out);
    out
}

fn decode_meta(data: &[u8]) -> Option<Meta> {
    let mut r = Reader::new(data);
    let _stamp = r.i64()?;
    let distinct = r.u64()?;
    let description_len = r.u32()? as usize;
    r.bytes(description_len)?;
    let n = r.u32()? as usize;
    let mut records = Vec::with_capacity(n.min(data.len() / 64));
    for _ in 0..n {
        let kind = EntryKind::from_code(r.u8()?)?;
        let flags = r.u8()?;
        let name_len = r.u32()? as usize;
        let name = r.bytes(name_len)?.to_vec();
        let sig = StatSig {
            size: r.u64()?,
            mtime_ns: r.i64()?,
            ctime_ns: r.i64()?,
            ino: r.u64()?,
            dev: r.u64()?,
        };
        let hash = r.u64()?;
        let tokens = r.u64()?;
        let skip = if flags & 2 != 0 {
            let len = r.u32()? as usize;
            Some(String::from_utf8(r.bytes(len)?.to_vec()).ok()?)
        } else {
            None
        };
        records.push(FileRecord {
            name,
            kind,
            sig,
            hash,
            racy: flags & 1 != 0,
            tokens,
            skip,
        });
    }
    let kind = TokenizerKind::from_code(r.u32()?)?;
    let vocab = Vocab::decode_from(kind, &mut r)?;
    r.at_end().then_some(Meta {
        records,
        vocab,
        distinct,
    })
}

/// A cache file that passed the header and metadata checks (read into
/// memory; only the token section may be mapped, under a lease).
pub(crate) struct CacheFile {
    file: File,
    pub header: Header,
    pub meta: Meta,
    pub path: PathBuf,
}

/// What opening the cache found.
pub(crate) enum Opened {
    Missing,
    /// The path cannot hold a cache (a directory, refused): why.
    Inaccessible(String),
    Corrupt(String),
    Valid(Box<CacheFile>),
}

/// The reason for a failed read of a cache section.
fn read_failure(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        "truncated while being read".into()
    } else {
        format!("cannot read: {e}")
    }
}

/// Opens the cache at `path` and reads and checks its header and metadata.
pub(crate) fn open(opener: &Opener, path: &Path) -> Opened {
    let file = match opener.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Opened::Missing,
        Err(e) => return Opened::Inaccessible(format!("cannot open {}: {e}", path.display())),
    };
    let len = match file.metadata() {
        Ok(m) if m.is_dir() => {
            return Opened::Inaccessible(format!("{} is a directory", path.display()));
        }
        Ok(m) if !m.is_file() => {
            return Opened::Inaccessible(format!("{} is not a regular file", path.display()));
        }
        Ok(m) => m.len(),
        Err(e) => {
            return Opened::Inaccessible(format!("cannot inspect {}: {e}", path.display()));
        }
    };
    if len < HEADER_LEN as u64 {
        return Opened::Corrupt(format!("truncated: {len} bytes, shorter than the header"));
    }
    let mut head = [0u8; HEADER_LEN];
    if let Err(e) = file.read_exact_at(&mut head, 0) {
        return Opened::Corrupt(read_failure(&e));
    }
    let header = match Header::decode(&head, len) {
        Ok(h) => h,
        Err(why) => return Opened::Corrupt(why),
    };
    // The section table was checked against the file's real length, so
    // this size is bounded by it; still, a failed allocation is a reason.
    let meta_len = header.meta_len as usize;
    let mut meta_bytes = Vec::new();
    if meta_bytes.try_reserve_exact(meta_len).is_err() {
        return Opened::Inaccessible(format!(
            "cannot allocate {meta_len} bytes to read its metadata"
        ));
    }
    meta_bytes.resize(meta_len, 0);
    if let Err(e) = file.read_exact_at(&mut meta_bytes, HEADER_LEN as u64) {
        return Opened::Corrupt(read_failure(&e));
    }
    if xxh3(&meta_bytes, 0) != header.meta_hash {
        return Opened::Corrupt("metadata checksum mismatch".into());
    }
    let Some(meta) = decode_meta(&meta_bytes) else {
        return Opened::Corrupt("malformed metadata".into());
    };
    if meta.vocab.len() != header.vocab_size as usize
        || (header.vocab_size > 1 << 16) != (header.token_width == 4)
    {
        return Opened::Corrupt("vocabulary does not match the header".into());
    }
    Opened::Valid(Box::new(CacheFile {
        file,
        header,
        meta,
        path: path.to_owned(),
    }))
}

/// The tokens of a cache, read and verified, and its block hashes.
pub(crate) struct Verified {
    pub tokens: TokenStore,
    pub blocks: Vec<u64>,
}

/// What the check of the token blocks found (blocks in any order).
struct BlockCheck<'a> {
    blocks: &'a [u64],
    width: usize,
    vocab: u32,
    first_bad: AtomicU64,
    out_of_range: AtomicBool,
    read_error: Mutex<Option<String>>,
}

impl<'a> BlockCheck<'a> {
    fn new(blocks: &'a [u64], h: &Header) -> Self {
        BlockCheck {
            blocks,
            width: h.token_width as usize,
            vocab: h.vocab_size,
            first_bad: AtomicU64::new(u64::MAX),
            out_of_range: AtomicBool::new(false),
            read_error: Mutex::new(None),
        }
    }

    /// Checks block `b`, whose bytes are `part`.
    fn check(&self, b: usize, part: &[u8]) {
        if xxh3(part, b as u64) != self.blocks[b] {
            self.first_bad.fetch_min(b as u64, Ordering::Relaxed);
        } else if max_id(part, self.width) >= self.vocab {
            self.out_of_range.store(true, Ordering::Relaxed);
        }
    }

    fn verdict(self) -> Result<(), String> {
        if let Some(why) = self.read_error.into_inner() {
            return Err(why);
        }
        match self.first_bad.load(Ordering::Relaxed) {
            u64::MAX if self.out_of_range.load(Ordering::Relaxed) => {
                Err("token id outside the vocabulary".into())
            }
            u64::MAX => Ok(()),
            b => Err(format!("token block {b} checksum mismatch")),
        }
    }
}

impl CacheFile {
    /// Verifies the token section and gives its tokens: mapped from the file
    /// under a read lease when `map` is set and a lease can be had
    /// ([`LeasedMap`]), else read into memory of their own. Either way every
    /// block's hash is checked and every id must be in the vocabulary;
    /// blocks are checked in parallel, each while it is in the core's cache.
    pub(crate) fn read_tokens(&self, pool: &SpherePool, map: bool) -> Result<Verified, String> {
        let h = &self.header;
        let table_len = (h.block_count * 8) as usize; // bounded by the file length
        let mut table = Vec::new();
        table
            .try_reserve_exact(table_len)
            .map_err(|_| format!("cannot allocate {table_len} bytes for its block table"))?;
        table.resize(table_len, 0);
        self.file
            .read_exact_at(&mut table, h.blocks_off)
            .map_err(|e| read_failure(&e))?;
        if xxh3(&table, 0) != h.blocks_hash {
            return Err("block table checksum mismatch".into());
        }
        let blocks: Vec<u64> = table
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        let tokens_len = (h.n_tokens * h.token_width as u64) as usize; // inside the file
        let leased = map
            .then(|| LeasedMap::new(&self.file, h.tokens_off, tokens_len, h.file_len))
            .flatten();
        let tokens = match leased {
            Some(leased) => self.check_mapped(pool, leased, &blocks)?,
            None => self.read_and_check(pool, &blocks)?,
        };
        Ok(Verified { tokens, blocks })
    }

    /// Checks the blocks of a mapped token section.
    fn check_mapped(
        &self,
        pool: &SpherePool,
        leased: LeasedMap,
        blocks: &[u64],
    ) -> Result<TokenStore, String> {
        let check = BlockCheck::new(blocks, &self.header);
        let bytes = leased.bytes();
        pool.parallel_for(0..blocks.len(), 16, |range| {
            let _library = thread_support::tsan::library_code();
            for b in range {
                let end = ((b + 1) * BLOCK).min(bytes.len());
                check.check(b, &bytes[b * BLOCK..end]);
            }
        })
        .map_err(|e| format!("verification failed: {e}"))?;
        check.verdict()?;
        let misaligned = || "the token section is not aligned for its ids".to_string();
        Ok(if self.header.token_width == 2 {
            TokenStore::U16(TokenBuf::from_leased(leased).ok_or_else(misaligned)?)
        } else {
            TokenStore::U32(TokenBuf::from_leased(leased).ok_or_else(misaligned)?)
        })
    }

    /// Reads the token section into fresh memory, checking each block as it
    /// is read.
    fn read_and_check(&self, pool: &SpherePool, blocks: &[u64]) -> Result<TokenStore, String> {
        let h = &self.header;
        let count = h.n_tokens as usize;
        let no_memory = || {
            format!(
                "cannot allocate {} bytes for its tokens",
                count.saturating_mul(h.token_width as usize)
            )
        };
        let mut tokens = if h.token_width == 2 {
            TokenStore::U16(try_zeroed(count).ok_or_else(no_memory)?)
        } else {
            TokenStore::U32(try_zeroed(count).ok_or_else(no_memory)?)
        };
        let check = BlockCheck::new(blocks, h);
        let parts: Vec<Mutex<&mut [u8]>> = tokens
            .bytes_mut()
            .chunks_mut(BLOCK)
            .map(Mutex::new)
            .collect();
        pool.parallel_for(0..parts.len(), 16, |range| {
            let _library = thread_support::tsan::library_code();
            for b in range {
                let mut part = parts[b].lock();
                let at = h.tokens_off + (b * BLOCK) as u64;
                match self.file.read_exact_at(&mut part, at) {
                    Ok(()) => check.check(b, &part),
                    Err(e) => {
                        check.read_error.lock().get_or_insert(read_failure(&e));
                    }
                }
            }
        })
        .map_err(|e| format!("verification failed: {e}"))?;
        drop(parts);
        check.verdict()?;
        Ok(tokens)
    }
}

/// The largest little-endian id in `data` (ids of `width` bytes).
fn max_id(data: &[u8], width: usize) -> u32 {
    // SAFETY: every bit pattern is a valid u16 and u32; `align_to` only
    // reinterprets the aligned middle of the slice.
    let (head16, mid16, _) = unsafe { data.align_to::<u16>() };
    // SAFETY: as above.
    let (head32, mid32, _) = unsafe { data.align_to::<u32>() };
    match width {
        // The cache's token section is aligned: the fast paths always apply.
        2 if head16.is_empty() => max_of(mid16) as u32,
        4 if head32.is_empty() => max_of(mid32),
        2 => data
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]) as u32)
            .max()
            .unwrap_or(0),
        _ => data
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .max()
            .unwrap_or(0),
    }
}

/// The largest of `ids` (0 if none), with AVX2 where the CPU has it: the
/// default x86-64 build has only SSE2, which lacks an unsigned 16-bit max
/// and handles half as many ids per instruction; a warm load checks every
/// id of the cache.
fn max_of<T: Copy + Ord + Default>(ids: &[T]) -> T {
    #[cfg(target_arch = "x86_64")]
    {
        /// # Safety
        /// Only on a CPU with AVX2.
        #[target_feature(enable = "avx2")]
        unsafe fn avx2<T: Copy + Ord + Default>(ids: &[T]) -> T {
            ids.iter().copied().max().unwrap_or_default()
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { avx2(ids) };
        }
    }
    ids.iter().copied().max().unwrap_or_default()
}

/// The block hashes of a token section, in parallel.
pub(crate) fn block_hashes(
    pool: &SpherePool,
    tokens: &[u8],
) -> Result<Vec<u64>, sphere_pool::Error> {
    let n = tokens.len().div_ceil(BLOCK);
    let hashes: Vec<Mutex<u64>> = (0..n).map(|_| Mutex::new(0)).collect();
    pool.parallel_for(0..n, 16, |blocks| {
        let _library = thread_support::tsan::library_code();
        for b in blocks {
            *hashes[b].lock() = xxh3(
                &tokens[b * BLOCK..tokens.len().min((b + 1) * BLOCK)],
                b as u64,
            );
        }
    })?;
    Ok(hashes.into_iter().map(Mutex::into_inner).collect())
}

/// A cache being written: a new temporary file beside the cache. Its
/// modification time is the build's time stamp (the file system's clock,
/// taken before any corpus file is read). Dropped without
/// [`persist`](Self::persist), it removes itself.
pub(crate) struct TempCache {
    path: PathBuf,
    file: Option<File>,
    pub stamp_ns: i64,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl TempCache {
    pub(crate) fn create(cache_path: &Path) -> io::Result<Self> {
        let name = cache_path.file_name().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "the cache path has no file name",
            )
        })?;
        let dir = cache_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let unique = format!(
            "{}-{}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = dir.join(std::ffi::OsStr::from_bytes(&temp_name(
            name.as_bytes(),
            &unique,
        )));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        let stamp_ns = StatSig::of(&file.metadata()?).mtime_ns;
        Ok(Self {
            path,
            file: Some(file),
            stamp_ns,
        })
    }

    /// Writes the cache and renames it over `cache_path`. Returns its size.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn persist(
        mut self,
        cache_path: &Path,
        fingerprint: u64,
        description: &[u8],
        meta: &Meta,
        tokens: Tokens<'_>,
        blocks: &[u64],
        durable: bool,
    ) -> io::Result<u64> {
        let meta_bytes = encode_meta(self.stamp_ns, description, meta);
        let tokens_off = (HEADER_LEN + meta_bytes.len()).next_multiple_of(64);
        let token_bytes = tokens.as_bytes();
        let blocks_off = tokens_off + token_bytes.len();
        let block_table: Vec<u8> = blocks.iter().flat_map(|h| h.to_le_bytes()).collect();
        let header = Header {
            file_len: (blocks_off + block_table.len()) as u64,
            fingerprint,
            token_width: tokens.width() as u32,
            vocab_size: meta.vocab.len() as u32,
            n_tokens: tokens.len() as u64,
            meta_len: meta_bytes.len() as u64,
            meta_hash: xxh3(&meta_bytes, 0),
            tokens_off: tokens_off as u64,
            blocks_off: blocks_off as u64,
            block_count: blocks.len() as u64,
            blocks_hash: xxh3(&block_table, 0),
        };
        let mut file = self.file.take().expect("a temp cache is persisted once");
        file.write_all(&header.encode())?;
        file.write_all(&meta_bytes)?;
        file.write_all(&vec![0u8; tokens_off - HEADER_LEN - meta_bytes.len()])?;
        file.write_all(token_bytes)?;
        file.write_all(&block_table)?;
        if durable {
            file.sync_data()?;
        }
        drop(file);
        std::fs::rename(&self.path, cache_path)?;
        if durable {
            let dir = cache_path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            File::open(dir)?.sync_all()?;
        }
        self.path.clear(); // persisted: nothing to remove
        Ok(header.file_len)
    }
}

impl Drop for TempCache {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::{Opener, OsFileSystem};
    use crate::tokens::Tokens;

    fn meta(vocab_words: &[&[u8]]) -> Meta {
        let record = FileRecord {
            name: b"a.txt".to_vec(),
            kind: EntryKind::File,
            sig: StatSig {
                size: 3,
                mtime_ns: 1,
                ctime_ns: 2,
                ino: 3,
                dev: 4,
            },
            hash: 5,
            racy: false,
            tokens: 4,
            skip: None,
        };
        let vocab = Vocab::new(TokenizerKind::Words, vocab_words.iter().map(|w| (*w, 1)));
        Meta {
            records: vec![record],
            vocab,
            distinct: vocab_words.len() as u64,
        }
    }

    fn write(dir: &Path, meta: &Meta, tokens: &[u16]) -> PathBuf {
        let path = dir.join("t.cache");
        let pool = SpherePool::new(1).unwrap();
        let bytes = Tokens::U16(tokens).as_bytes();
        let blocks = block_hashes(&pool, bytes).unwrap();
        let temp = TempCache::create(&path).unwrap();
        temp.persist(
            &path,
            42,
            b"dir:/x",
            meta,
            Tokens::U16(tokens),
            &blocks,
            false,
        )
        .unwrap();
        path
    }

    /// True if a read lease can be had in `dir` with a break time of at
    /// least 5 s, which is when a warm load maps its cache.
    fn leases_here(dir: &Path) -> bool {
        use std::os::fd::AsRawFd;
        let probe = dir.join("lease-probe");
        std::fs::write(&probe, b"x").unwrap();
        let file = File::open(&probe).unwrap();
        // SAFETY: fcntl on a descriptor we own.
        let leased = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLEASE, libc::F_RDLCK) } == 0;
        drop(file);
        std::fs::remove_file(&probe).unwrap();
        leased && crate::leased_map::MIN_BREAK_TIME_S <= lease_break_time_s()
    }

    fn lease_break_time_s() -> u64 {
        let text = std::fs::read_to_string("/proc/sys/fs/lease-break-time");
        text.ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0)
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("corpus-loader-cache-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_written_cache_reads_back_and_verifies() {
        let dir = temp_dir("roundtrip");
        let m = meta(&[b"x", b"y"]);
        let path = write(&dir, &m, &[2, 4, 5, 3]);
        let opener = Opener::new(std::sync::Arc::new(OsFileSystem));
        let Opened::Valid(file) = open(&opener, &path) else {
            panic!("valid cache")
        };
        assert_eq!(file.header.fingerprint, 42);
        assert_eq!(file.meta.records, m.records);
        assert_eq!(file.meta.vocab, m.vocab);
        for map in [false, true] {
            let verified = file.read_tokens(&SpherePool::new(2).unwrap(), map).unwrap();
            assert_eq!(verified.tokens.view().to_vec(), [2, 4, 5, 3]);
            let mapped = map && leases_here(&dir);
            assert_eq!(verified.tokens.is_file_backed(), mapped, "mapped as asked");
        }
        assert_eq!(opener.opened(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ids_outside_the_vocabulary_are_rejected_even_with_valid_checksums() {
        // A cache the loader never writes: checksums right, an id (6) past
        // the vocabulary (6 ids). Batches would hand it to a model's
        // embedding table, so it must not be trusted.
        let dir = temp_dir("range");
        let path = write(&dir, &meta(&[b"x", b"y"]), &[2, 4, 6, 3]);
        let opener = Opener::new(std::sync::Arc::new(OsFileSystem));
        let Opened::Valid(file) = open(&opener, &path) else {
            panic!("checksums are valid")
        };
        for map in [false, true] {
            let verdict = file.read_tokens(&SpherePool::new(1).unwrap(), map).err();
            assert_eq!(verdict.as_deref(), Some("token id outside the vocabulary"));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
