//! One participant of the cold load ([`Worker`]): phase 1 reads, hashes,
//! classifies and tokenises a file (or streams a large one past, finding
//! its chunk boundaries), phase 2 reads and tokenises a large file's chunk.
//! The phases themselves are run by `build.rs`.

use crate::config::TokenizerKind;
use crate::error::Error;
use crate::fs::{Opener, StatSig};
use crate::hash::{Xxh3, xxh3};
use crate::text::{Classifier, Content, classify};
use crate::tokenize::{
    MAX_UNITS_PER_BYTE, WordTable, is_word_byte, tokenize_bytes, tokenize_words,
};
use crate::walk::WalkEntry;
use std::fs::File;
use std::io::{self, Read, Seek};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};
use thread_support::thread_cpu_time;

/// Files up to this size are read whole and tokenised at once; larger ones
/// stream (see the module docs).
pub(crate) const BIG_FILE: u64 = 8 << 20;
/// A large file streams past in pieces of this size in phase 1 ...
const PIECE: usize = 1 << 20;
/// ... and is tokenised in chunks of about this size in phase 2.
const CHUNK: u64 = 2 << 20;
/// A chunk ends just after white space or punctuation (never inside a
/// token); a large file with a longer run of word bytes than this is
/// skipped, since such a token could not be read in bounded pieces.
pub(crate) const MAX_RUN: u64 = 64 << 20;

/// A run of local ids in a worker's output buffer.
#[derive(Debug, Clone, Copy)]
pub(super) struct Segment {
    pub(super) worker: usize,
    /// Where its units start in the worker's buffer, and how many.
    pub(super) start: usize,
    pub(super) units: usize,
    /// Its tokens.
    pub(super) len: usize,
}

pub(super) enum Outcome {
    Text {
        sig: StatSig,
        hash: u64,
        segments: Vec<Segment>,
    },
    Skip {
        sig: StatSig,
        hash: u64,
        reason: String,
    },
    Failed(Error),
}

/// A large text file, read again in chunks in phase 2.
pub(super) struct Deferred {
    /// Its index among the files.
    pub(super) k: usize,
    pub(super) file: File,
    pub(super) path: std::path::PathBuf,
    /// The end of each chunk; the last is the file's length.
    pub(super) ends: Vec<u64>,
}

/// Everything one participant owns during the load.
pub(super) struct Worker {
    pub(super) table: WordTable,
    pub(super) byte_counts: [u64; 256],
    /// Local ids, as 16-bit units (see `tokenize::ESCAPE`).
    pub(super) out: Vec<u16>,
    pub(super) buf: Vec<u8>,
    /// Large files streamed in phase 1, tokenised in phase 2.
    pub(super) deferred: Vec<Deferred>,
    pub(super) read: Duration,
    pub(super) check: Duration,
    pub(super) tokenize: Duration,
    pub(super) bytes_read: u64,
}

impl Worker {
    pub(super) fn new() -> Self {
        Self {
            table: WordTable::new(),
            byte_counts: [0; 256],
            out: Vec::new(),
            buf: Vec::new(),
            deferred: Vec::new(),
            read: Duration::ZERO,
            check: Duration::ZERO,
            tokenize: Duration::ZERO,
            bytes_read: 0,
        }
    }

    /// Tokenises `data` into this worker's buffer and returns the segment.
    fn tokenize(&mut self, me: usize, kind: TokenizerKind, data: &[u8]) -> Result<Segment, Error> {
        // At most one token per byte, three units per token: after this
        // reservation (address space; pages are used only as written) no
        // push reallocates.
        let most = data.len() * MAX_UNITS_PER_BYTE;
        self.out
            .try_reserve(most)
            .map_err(|_| Error::no_memory("token ids", (self.out.len() + most) as u64 * 2))?;
        let started = thread_cpu_time();
        let start = self.out.len();
        let tokens = match kind {
            TokenizerKind::Words => tokenize_words(data, &mut self.table, &mut self.out),
            TokenizerKind::Bytes => tokenize_bytes(data, &mut self.byte_counts, &mut self.out),
        };
        self.tokenize += thread_cpu_time().saturating_sub(started);
        Ok(Segment {
            worker: me,
            start,
            units: self.out.len() - start,
            len: tokens,
        })
    }

    /// Phase 1 for file number `k` (`early`: its descriptor, if it was
    /// opened ahead or by the cache check).
    pub(super) fn load_file(
        &mut self,
        me: usize,
        k: usize,
        entry: &WalkEntry,
        kind: TokenizerKind,
        opener: &Opener,
        early: Option<File>,
    ) -> Outcome {
        let started = Instant::now();
        let path = &entry.path;
        let opened = early
            .map_or_else(|| opener.open(path), Ok)
            .and_then(|file| {
                let sig = StatSig::of(&file.metadata()?);
                Ok((file, sig))
            });
        let (file, sig) = match opened {
            Ok(f) => f,
            Err(e) => return Outcome::Failed(Error::io(path, "open", e)),
        };
        if sig.size > BIG_FILE {
            return self.stream(k, path, file, sig, started);
        }
        if let Err(e) = self.read_small(&file, sig.size, path) {
            return Outcome::Failed(e);
        }
        if self.buf.len() as u64 > BIG_FILE {
            // It grew after `stat`: read it as the large file it now is.
            return self.stream(k, path, file, sig, started);
        }
        self.read += started.elapsed();
        self.bytes_read += self.buf.len() as u64;
        let check_started = thread_cpu_time();
        let hash = xxh3(&self.buf, 0);
        let content = classify(&self.buf);
        self.check += thread_cpu_time().saturating_sub(check_started);
        match content {
            Content::Empty => Outcome::Skip {
                sig,
                hash,
                reason: "empty file".into(),
            },
            Content::Binary(reason) => Outcome::Skip { sig, hash, reason },
            Content::Text => {
                let data = std::mem::take(&mut self.buf);
                let segment = self.tokenize(me, kind, &data);
                self.buf = data;
                match segment {
                    Ok(segment) => Outcome::Text {
                        sig,
                        hash,
                        segments: vec![segment],
                    },
                    Err(e) => Outcome::Failed(e),
                }
            }
        }
    }

    /// Reads a file of `size` bytes (by `stat`) whole into `self.buf`; stops
    /// past [`BIG_FILE`] if it grew meanwhile.
    fn read_small(&mut self, mut file: &File, size: u64, path: &Path) -> Result<(), Error> {
        self.buf.clear();
        // One byte more than the size lets the final read see EOF without growing.
        let want = size as usize + 1;
        self.buf
            .try_reserve(want)
            .map_err(|_| Error::no_memory("a file's bytes", want as u64))?;
        // From the start: a descriptor from the cache check was read already.
        file.rewind()
            .and_then(|()| file.take(BIG_FILE + 1).read_to_end(&mut self.buf))
            .map_err(|e| Error::io(path, "read", e))?;
        Ok(())
    }

    /// Phase 1 of a large file: reads it in pieces, hashing and classifying
    /// them and finding its chunk boundaries, without holding it whole.
    fn stream(
        &mut self,
        k: usize,
        path: &Path,
        file: File,
        sig: StatSig,
        started: Instant,
    ) -> Outcome {
        if let Err(e) = grow(&mut self.buf, PIECE + 4, "a read buffer") {
            return Outcome::Failed(e);
        }
        let mut hasher = Xxh3::new(0);
        let mut classifier = Classifier::new(sig.size);
        let mut bounds = Bounds::new();
        let mut too_long = None;
        let mut check = Duration::ZERO;
        // `carry`: the start of a UTF-8 sequence cut by the piece's end, kept
        // in front of the next piece.
        let (mut offset, mut carry) = (0u64, 0usize);
        let mut stopped = false;
        loop {
            let n = match read_at(&file, &mut self.buf[carry..carry + PIECE], offset) {
                Ok(n) => n,
                Err(e) => return Outcome::Failed(Error::io(path, "read", e)),
            };
            let check_started = thread_cpu_time();
            if n == 0 {
                classifier.feed(&self.buf[..carry], true);
                check += thread_cpu_time().saturating_sub(check_started);
                break;
            }
            let new = &self.buf[carry..carry + n];
            hasher.update(new);
            if let Err(why) = bounds.feed(new, offset) {
                too_long = Some(why);
            }
            offset += n as u64;
            let tail = classifier.feed(&self.buf[..carry + n], false);
            check += thread_cpu_time().saturating_sub(check_started);
            if classifier.decided() || too_long.is_some() {
                stopped = true;
                break;
            }
            self.buf.copy_within(carry + n - tail..carry + n, 0);
            carry = tail;
        }
        self.read += started.elapsed().saturating_sub(check);
        self.check += check;
        self.bytes_read += offset;
        let skip = |reason| Outcome::Skip {
            sig,
            hash: 0, // not read to the end (see `FileRecord::hash`)
            reason,
        };
        match classifier.verdict() {
            Content::Binary(reason) => skip(reason),
            Content::Empty => skip("empty file".into()),
            Content::Text if stopped => skip(too_long.unwrap_or_default()),
            Content::Text => {
                self.deferred.push(Deferred {
                    k,
                    file,
                    path: path.to_owned(),
                    ends: bounds.finish(offset),
                });
                Outcome::Text {
                    sig,
                    hash: hasher.finish(),
                    segments: Vec::new(),
                }
            }
        }
    }

    /// Phase 2: reads chunk `start..end` of a large file into `self.buf`
    /// and tokenises it.
    pub(super) fn chunk(
        &mut self,
        me: usize,
        kind: TokenizerKind,
        d: &Deferred,
        start: u64,
        end: u64,
    ) -> Result<Segment, Error> {
        let len = (end - start) as usize; // at most CHUNK + MAX_RUN + PIECE
        grow(&mut self.buf, len, "a chunk of a large file")?;
        let started = Instant::now();
        d.file
            .read_exact_at(&mut self.buf[..len], start)
            .map_err(|e| {
                let e = if e.kind() == io::ErrorKind::UnexpectedEof {
                    io::Error::new(e.kind(), "the file became shorter while it was loaded")
                } else {
                    e
                };
                Error::io(&d.path, "read", e)
            })?;
        self.read += started.elapsed();
        self.bytes_read += len as u64;
        let data = std::mem::take(&mut self.buf);
        let segment = self.tokenize(me, kind, &data[..len]);
        self.buf = data;
        segment
    }
}

/// Makes `buf` at least `len` bytes long, fallibly. Its bytes are
/// overwritten by reads: zeroing (a pass over the memory) happens only when
/// it grows, not for every chunk.
fn grow(buf: &mut Vec<u8>, len: usize, what: &'static str) -> Result<(), Error> {
    if buf.len() < len {
        buf.try_reserve_exact(len - buf.len())
            .map_err(|_| Error::no_memory(what, len as u64))?;
        buf.resize(len, 0);
    }
    Ok(())
}

/// `pread`, retried when a signal interrupts it.
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    loop {
        match file.read_at(buf, offset) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// The chunk boundaries of a large file, found as it streams past: the
/// first byte that is not a word byte at or after each multiple of about
/// [`CHUNK`] ends a chunk (no token straddles two).
struct Bounds {
    next: u64,
    ends: Vec<u64>,
}

impl Bounds {
    fn new() -> Self {
        Self {
            next: CHUNK,
            ends: Vec::new(),
        }
    }

    /// `data` is the file's bytes from offset `base` on.
    fn feed(&mut self, data: &[u8], base: u64) -> Result<(), String> {
        let end = base + data.len() as u64;
        while self.next < end {
            let from = (self.next.max(base) - base) as usize;
            match data[from..].iter().position(|&b| !is_word_byte(b)) {
                Some(p) => {
                    let cut = base + (from + p) as u64 + 1;
                    self.ends.push(cut);
                    self.next = cut + CHUNK;
                }
                None if end - self.next > MAX_RUN => {
                    return Err(format!(
                        "a run of more than {} MiB without white space or punctuation (a token too long to read in pieces)",
                        MAX_RUN >> 20
                    ));
                }
                None => break,
            }
        }
        Ok(())
    }

    /// The chunk ends of a file of `len` bytes.
    fn finish(mut self, len: u64) -> Vec<u64> {
        if self.ends.last() != Some(&len) {
            self.ends.push(len);
        }
        self.ends
    }
}
