//! The cold load: read every file once, classify, hash and tokenise it on the
//! sphere pool, then build the vocabulary and assemble the dataset.
//!
//! Phase 1 (parallel over files, dynamic: each participant takes the next
//! file): open, read whole, hash, classify, tokenise into the participant's
//! own table and output buffer. Files a little ahead of the one being read
//! are opened early and announced to the kernel (`posix_fadvise(WILLNEED)`),
//! so that the disk reads them while the participants tokenise; the reader
//! then uses that descriptor (still one open per file). A file above [`BIG_FILE`] is only read in
//! phase 1 and tokenised in phase 2, split at white space into chunks that
//! all participants share, so one huge file does not serialise the load.
//! Phase 3 (sequential): merge the tables and rank the vocabulary.
//! Phase 4 (parallel over documents): map local ids to global ids into the
//! final array.

use crate::ahead::OnceSlots;
use crate::config::{BOS_ID, EOS_ID, LoaderConfig, NUM_SPECIAL, TokenizerKind, UNK_ID};
use crate::error::Error;
use crate::fs::{Opener, StatSig, read_all};
use crate::hash::xxh64;
use crate::text::{Content, classify};
use crate::tokenize::{Candidate, WordTable, rank, split_point, tokenize_bytes, tokenize_words};
use crate::tokens::{TokenInt, TokenStore};
use crate::vocab::Vocab;
use crate::walk::{EntryKind, WalkEntry};
use parking_lot::Mutex;
use sphere_pool::SpherePool;
use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Files larger than this are tokenised in chunks shared by all participants.
pub(crate) const BIG_FILE: usize = 8 << 20;
/// Target chunk size for big files.
const CHUNK: usize = 2 << 20;

/// One input of the manifest: what was found, what it was, what came of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileRecord {
    pub name: Vec<u8>,
    pub kind: EntryKind,
    pub sig: StatSig,
    /// XXH64 of the content (regular files).
    pub hash: u64,
    /// Modified too close to the build to trust its stat signature: the next
    /// load checks its content hash.
    pub racy: bool,
    /// Tokens of the file (markers excluded); 0 if skipped.
    pub tokens: u64,
    /// Why the file is not in the dataset, if it is not.
    pub skip: Option<String>,
}

impl FileRecord {
    pub(crate) fn is_document(&self) -> bool {
        self.kind == EntryKind::File && self.skip.is_none()
    }
}

/// Thread-time totals of the parallel phases.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PhaseTimes {
    pub read: Duration,
    pub check: Duration,
    pub tokenize: Duration,
    pub vocab: Duration,
    pub assemble: Duration,
}

/// The result of a cold load.
pub(crate) struct Built {
    pub records: Vec<FileRecord>,
    pub vocab: Vocab,
    pub tokens: TokenStore,
    /// Distinct tokens seen, before the vocabulary limit.
    pub distinct: u64,
    pub bytes_read: u64,
    pub times: PhaseTimes,
}

/// A run of local ids in a worker's output buffer.
#[derive(Debug, Clone, Copy)]
struct Segment {
    worker: usize,
    start: usize,
    len: usize,
}

enum Outcome {
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

/// Everything one participant owns during the load.
struct Worker {
    table: WordTable,
    byte_counts: [u64; 256],
    out: Vec<u32>,
    buf: Vec<u8>,
    /// Big files read in phase 1, tokenised in phase 2.
    deferred: Vec<(usize, Vec<u8>)>,
    read: Duration,
    check: Duration,
    tokenize: Duration,
    bytes_read: u64,
}

impl Worker {
    fn new() -> Self {
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
    fn tokenize(&mut self, me: usize, kind: TokenizerKind, data: &[u8]) -> Segment {
        let started = thread_cpu_time();
        let start = self.out.len();
        match kind {
            TokenizerKind::Words => tokenize_words(data, &mut self.table, &mut self.out),
            TokenizerKind::Bytes => tokenize_bytes(data, &mut self.byte_counts, &mut self.out),
        }
        self.tokenize += thread_cpu_time().saturating_sub(started);
        Segment {
            worker: me,
            start,
            len: self.out.len() - start,
        }
    }

    /// Phase 1 for file number `k`, opened ahead, read before, or not yet.
    fn load_file(
        &mut self,
        me: usize,
        k: usize,
        entry: &WalkEntry,
        kind: TokenizerKind,
        opener: &Opener,
        input: Input,
    ) -> Outcome {
        let started = Instant::now();
        let sig = match input {
            Input::Read(sig, data) => {
                self.buf = data;
                sig
            }
            Input::Open(early) => match self.read(entry, opener, early) {
                Ok(sig) => sig,
                Err(e) => return Outcome::Failed(e),
            },
        };
        self.read += started.elapsed();
        self.bytes_read += self.buf.len() as u64;
        let check_started = thread_cpu_time();
        let hash = xxh64(&self.buf, 0);
        let content = classify(&self.buf);
        self.check += thread_cpu_time().saturating_sub(check_started);
        match content {
            Content::Empty => Outcome::Skip {
                sig,
                hash,
                reason: "empty file".into(),
            },
            Content::Binary(reason) => Outcome::Skip { sig, hash, reason },
            Content::Text if self.buf.len() > BIG_FILE => {
                let data = std::mem::take(&mut self.buf);
                self.deferred.push((k, data));
                Outcome::Text {
                    sig,
                    hash,
                    segments: Vec::new(),
                }
            }
            Content::Text => {
                let data = std::mem::take(&mut self.buf);
                let segment = self.tokenize(me, kind, &data);
                self.buf = data;
                Outcome::Text {
                    sig,
                    hash,
                    segments: vec![segment],
                }
            }
        }
    }

    /// Opens (unless opened ahead) and reads a file into `self.buf`.
    fn read(
        &mut self,
        entry: &WalkEntry,
        opener: &Opener,
        early: Option<File>,
    ) -> Result<StatSig, Error> {
        let file = early
            .map_or_else(|| opener.open(&entry.path), Ok)
            .map_err(|e| Error::io(&entry.path, "open", e))?;
        let sig = StatSig::of(
            &file
                .metadata()
                .map_err(|e| Error::io(&entry.path, "inspect", e))?,
        );
        read_all(&file, sig.size, &mut self.buf).map_err(|e| Error::io(&entry.path, "read", e))?;
        Ok(sig)
    }
}

/// CPU time of the calling thread (not wall time: a participant that was
/// descheduled, as happens when other programs share the cores, is not
/// charged for the wait).
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Files opened ahead of the reads, at most this many files...
const AHEAD_FILES: usize = 128;
/// ... and this many bytes past the file being read.
const AHEAD_BYTES: u64 = 128 << 20;

/// How phase 1 gets a file's bytes.
enum Input {
    /// Open (unless this descriptor was opened ahead) and read.
    Open(Option<File>),
    /// Already read (by the cache check), with its `stat`.
    Read(StatSig, Vec<u8>),
}

/// Files read before the build (by the cache check), by entry index: the
/// build uses their bytes instead of opening them again.
pub(crate) type Preread = HashMap<usize, (StatSig, Vec<u8>)>;

/// Opens files ahead of the readers, on a thread of its own, and asks the
/// kernel to start reading them (`posix_fadvise(WILLNEED)`), so that disk
/// reads overlap tokenising and no tokenising thread waits in those calls.
/// Each file is opened once: by the look-ahead, or by its reader if the
/// look-ahead did not get there ([`OnceSlots`]).
struct LookAhead<'a> {
    paths: Vec<&'a std::path::Path>,
    /// `ends[i]`: bytes of files `0..=i` (from the walk's `stat`).
    ends: Vec<u64>,
    slots: OnceSlots<File>,
    /// One more than the highest file a reader took.
    progress: AtomicUsize,
    stop: AtomicBool,
}

impl<'a> LookAhead<'a> {
    fn new(files: &[&'a WalkEntry], skip: impl Fn(usize) -> bool) -> Self {
        let mut total = 0;
        Self {
            paths: files.iter().map(|e| e.path.as_path()).collect(),
            ends: files
                .iter()
                .map(|e| {
                    total += e.sig.size;
                    total
                })
                .collect(),
            slots: OnceSlots::new(files.len(), skip),
            progress: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        }
    }

    /// The reader of file `k`: its descriptor if it was opened ahead.
    fn take(&self, k: usize) -> Option<File> {
        self.progress.fetch_max(k + 1, Ordering::Relaxed);
        self.slots.take(k)
    }

    /// The look-ahead thread: opens files in order, at most `AHEAD_FILES`
    /// files and `AHEAD_BYTES` bytes past the readers, until all are open
    /// or `stop` is set.
    fn run(&self, opener: &Opener) {
        let mut j = 0;
        while j < self.paths.len() && !self.stop.load(Ordering::Relaxed) {
            let progress = self.progress.load(Ordering::Relaxed);
            j = j.max(progress); // files the readers reached are theirs
            if j >= self.paths.len() {
                break;
            }
            let window_end = progress.saturating_sub(1);
            if j > progress + AHEAD_FILES
                || self.ends[j].saturating_sub(self.ends[window_end]) > AHEAD_BYTES
            {
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
            self.slots.open_ahead(j, || {
                // A failed open is left to the reader, who reports it.
                let file = opener.open(self.paths[j]).ok()?;
                // SAFETY: advice on a descriptor we own; a failure only loses the hint.
                unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_WILLNEED) };
                Some(file)
            });
            j += 1;
        }
    }
}

/// Runs `task(participant, item)` for every item in `0..n`, each participant
/// taking the next item when it is free.
fn for_each_dynamic(
    pool: &SpherePool,
    n: usize,
    task: impl Fn(usize, usize) + Sync,
) -> Result<(), Error> {
    let next = AtomicUsize::new(0);
    pool.run_all(|p| {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                break;
            }
            task(p.index(), i);
        }
    })?;
    Ok(())
}

/// The cold load of `entries`. `stamp_ns` is the file-system time taken
/// before any file was read (for the racy check), if a cache will be written.
pub(crate) fn build(
    entries: &[WalkEntry],
    config: &LoaderConfig,
    opener: &Opener,
    pool: &SpherePool,
    stamp_ns: Option<i64>,
    preread: Preread,
) -> Result<Built, Error> {
    let kind = config.tokenizer;
    let files: Vec<usize> = (0..entries.len())
        .filter(|&i| entries[i].kind == EntryKind::File)
        .collect();
    let workers: Vec<Mutex<Worker>> = (0..pool.participants())
        .map(|_| Mutex::new(Worker::new()))
        .collect();
    let outcomes: Vec<Mutex<Option<Outcome>>> = files.iter().map(|_| Mutex::new(None)).collect();

    // Phase 1: read, hash, classify, tokenise (small files).
    let file_entries: Vec<&WalkEntry> = files.iter().map(|&i| &entries[i]).collect();
    let look_ahead = LookAhead::new(&file_entries, |k| preread.contains_key(&files[k]));
    let preread = Mutex::new(preread);
    std::thread::scope(|scope| {
        // Without the thread (the system refused it) readers open their files.
        let ahead = std::thread::Builder::new()
            .name("cllm-readahead".into())
            .spawn_scoped(scope, || look_ahead.run(opener));
        let phase1 = for_each_dynamic(pool, files.len(), |me, k| {
            let input = match preread.lock().remove(&files[k]) {
                Some((sig, data)) => Input::Read(sig, data),
                None => Input::Open(look_ahead.take(k)),
            };
            let mut worker = workers[me].lock();
            let outcome = worker.load_file(me, k, &entries[files[k]], kind, opener, input);
            *outcomes[k].lock() = Some(outcome);
        });
        look_ahead.stop.store(true, Ordering::Relaxed);
        if let Ok(thread) = ahead {
            let _ = thread.join();
        }
        phase1
    })?;
    drop(look_ahead);

    // Phase 2: big files, in chunks.
    let mut deferred: Vec<(usize, Vec<u8>)> = workers
        .iter()
        .flat_map(|w| std::mem::take(&mut w.lock().deferred))
        .collect();
    deferred.sort_by_key(|d| d.0);
    let mut chunks: Vec<(usize, usize, usize)> = Vec::new(); // (deferred index, start, end)
    for (d, (_, data)) in deferred.iter().enumerate() {
        let mut start = 0;
        while start < data.len() {
            let end = split_point(data, start + CHUNK);
            chunks.push((d, start, end));
            start = end;
        }
    }
    let chunk_segments: Vec<Mutex<Option<Segment>>> =
        chunks.iter().map(|_| Mutex::new(None)).collect();
    for_each_dynamic(pool, chunks.len(), |me, c| {
        let (d, start, end) = chunks[c];
        let segment = workers[me]
            .lock()
            .tokenize(me, kind, &deferred[d].1[start..end]);
        *chunk_segments[c].lock() = Some(segment);
    })?;
    for (c, &(d, _, _)) in chunks.iter().enumerate() {
        let segment = chunk_segments[c].lock().take().expect("every chunk ran");
        if let Some(Outcome::Text { segments, .. }) = outcomes[deferred[d].0].lock().as_mut() {
            segments.push(segment);
        }
    }
    drop(deferred);

    // The manifest, in walk order; the first failure (in walk order) wins.
    let mut records = Vec::with_capacity(entries.len());
    let mut doc_segments: Vec<Vec<Segment>> = Vec::new();
    let mut outcomes = outcomes
        .into_iter()
        .map(|o| o.into_inner().expect("every file ran"));
    for entry in entries {
        let mut record = FileRecord {
            name: entry.name.clone(),
            kind: entry.kind,
            sig: StatSig::default(),
            hash: 0,
            racy: false,
            tokens: 0,
            skip: None,
        };
        match entry.kind {
            EntryKind::Symlink => record.skip = Some("symbolic link (not followed)".into()),
            EntryKind::Special => record.skip = Some("not a regular file".into()),
            EntryKind::File => match outcomes.next().expect("one outcome per file") {
                Outcome::Failed(e) => return Err(e),
                Outcome::Skip { sig, hash, reason } => {
                    (record.sig, record.hash, record.skip) = (sig, hash, Some(reason));
                }
                Outcome::Text {
                    sig,
                    hash,
                    segments,
                } => {
                    (record.sig, record.hash) = (sig, hash);
                    record.tokens = segments.iter().map(|s| s.len as u64).sum();
                    if record.tokens == 0 {
                        record.skip = Some("no tokens (only white space)".into());
                    } else {
                        doc_segments.push(segments);
                    }
                }
            },
        }
        record.racy = record.kind == EntryKind::File
            && stamp_ns.is_some_and(|t0| record.sig.newest_ns() >= t0);
        records.push(record);
    }
    let mut workers: Vec<Worker> = workers.into_iter().map(Mutex::into_inner).collect();
    let mut times = PhaseTimes::default();
    for w in &workers {
        times.read += w.read;
        times.check += w.check;
        times.tokenize += w.tokenize;
    }
    let bytes_read = workers.iter().map(|w| w.bytes_read).sum();
    if doc_segments.is_empty() {
        let skipped = records.iter().filter(|r| r.skip.is_some()).count();
        return Err(Error::Empty(format!(
            "no text to tokenise: {} inputs found, {skipped} skipped (binary, empty or not regular files)",
            records.len()
        )));
    }

    // Phase 3: the vocabulary and the local -> global maps.
    let started = Instant::now();
    let keep = config.max_vocab - NUM_SPECIAL as usize;
    let (vocab, remaps, distinct) = match kind {
        TokenizerKind::Words => words_vocabulary(&mut workers, keep),
        TokenizerKind::Bytes => bytes_vocabulary(&workers, keep),
    };
    times.vocab = started.elapsed();

    // Phase 4: the dataset.
    let started = Instant::now();
    let markers = config.document_markers;
    let tokens = if vocab.len() <= 1 << 16 {
        TokenStore::U16(assemble::<u16>(
            pool,
            &workers,
            &remaps,
            &doc_segments,
            markers,
        )?)
    } else {
        TokenStore::U32(assemble::<u32>(
            pool,
            &workers,
            &remaps,
            &doc_segments,
            markers,
        )?)
    };
    times.assemble = started.elapsed();
    Ok(Built {
        records,
        vocab,
        tokens,
        distinct,
        bytes_read,
        times,
    })
}

/// Merges the workers' tables, ranks the words, and maps each worker's local
/// ids to global ids.
fn words_vocabulary(workers: &mut [Worker], keep: usize) -> (Vocab, Vec<Vec<u32>>, u64) {
    for w in workers.iter_mut() {
        w.table.flush_hits();
    }
    let mut global = WordTable::new();
    let to_global: Vec<Vec<u32>> = workers
        .iter()
        .map(|w| {
            (0..w.table.len() as u32)
                .map(|e| global.add(w.table.word(e), w.table.count(e)))
                .collect()
        })
        .collect();
    global.flush_hits();
    let candidates: Vec<Candidate<'_>> = (0..global.len() as u32)
        .map(|g| (global.word(g), global.count(g), g))
        .collect();
    let ranked = rank(candidates, keep);
    let mut id_of = vec![UNK_ID; global.len()];
    for (r, c) in ranked.iter().enumerate() {
        id_of[c.2 as usize] = NUM_SPECIAL + r as u32;
    }
    let vocab = Vocab::new(TokenizerKind::Words, ranked.iter().map(|c| (c.0, c.1)));
    let remaps = to_global
        .iter()
        .map(|m| m.iter().map(|&g| id_of[g as usize]).collect())
        .collect();
    (vocab, remaps, global.len() as u64)
}

/// Ranks the bytes that occur; every worker shares the same map.
fn bytes_vocabulary(workers: &[Worker], keep: usize) -> (Vocab, Vec<Vec<u32>>, u64) {
    let mut counts = [0u64; 256];
    for w in workers {
        for (total, c) in counts.iter_mut().zip(w.byte_counts) {
            *total += c;
        }
    }
    let bytes: Vec<[u8; 1]> = (0..=255u8).map(|b| [b]).collect();
    let candidates: Vec<Candidate<'_>> = (0..256)
        .filter(|&b| counts[b] > 0)
        .map(|b| (bytes[b].as_slice(), counts[b], b as u32))
        .collect();
    let distinct = candidates.len() as u64;
    let ranked = rank(candidates, keep);
    let mut id_of = vec![UNK_ID; 256];
    for (r, c) in ranked.iter().enumerate() {
        id_of[c.2 as usize] = NUM_SPECIAL + r as u32;
    }
    let vocab = Vocab::new(TokenizerKind::Bytes, ranked.iter().map(|c| (c.0, c.1)));
    (vocab, vec![id_of; workers.len()], distinct)
}

/// Writes every document (BOS, its tokens mapped to global ids, EOS) into one
/// array, documents in parallel.
fn assemble<T: TokenInt>(
    pool: &SpherePool,
    workers: &[Worker],
    remaps: &[Vec<u32>],
    docs: &[Vec<Segment>],
    markers: bool,
) -> Result<Vec<T>, Error> {
    let extra = if markers { 2 } else { 0 };
    let lens: Vec<usize> = docs
        .iter()
        .map(|segs| segs.iter().map(|s| s.len).sum::<usize>() + extra)
        .collect();
    let mut tokens = vec![T::default(); lens.iter().sum()];
    let mut rest: &mut [T] = &mut tokens;
    let mut slices = Vec::with_capacity(docs.len());
    for &len in &lens {
        let (doc, tail) = rest.split_at_mut(len);
        slices.push(Mutex::new(doc));
        rest = tail;
    }
    for_each_dynamic(pool, docs.len(), |_, d| {
        let mut guard = slices[d].lock();
        let out: &mut [T] = &mut guard;
        let mut pos = 0;
        if markers {
            out[0] = T::from_id(BOS_ID);
            pos = 1;
        }
        for s in &docs[d] {
            let remap = &remaps[s.worker];
            let local = &workers[s.worker].out[s.start..s.start + s.len];
            for (dst, &l) in out[pos..pos + s.len].iter_mut().zip(local) {
                *dst = T::from_id(remap[l as usize]);
            }
            pos += s.len;
        }
        if markers {
            out[pos] = T::from_id(EOS_ID);
        }
    })?;
    drop(slices);
    Ok(tokens)
}
