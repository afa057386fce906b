//! The cold load: read every file once, classify, hash and tokenise it on the
//! sphere pool, then build the vocabulary and assemble the dataset.
//!
//! Phase 1 (parallel over files, dynamic: each participant takes the next
//! file): open, read, hash, classify, tokenise into the participant's own
//! table and output buffer. Files a little ahead of the one being read are
//! opened early and announced to the kernel (`posix_fadvise(WILLNEED)`), so
//! that the disk reads them while the participants tokenise; the reader then
//! uses that descriptor (still one open per file). A file up to [`BIG_FILE`]
//! bytes is read whole; a larger one is never held whole: in phase 1 it
//! streams past in pieces (hashed, classified, its chunk boundaries found;
//! a binary one stops being read at the first NUL), and in phase 2 its
//! chunks are read again from its descriptor and tokenised by all
//! participants, so one huge file neither exhausts memory nor serialises the
//! load. Every buffer whose size comes from the input is reserved fallibly:
//! a failure is [`Error::OutOfMemory`], never an abort.
//! Phase 3: each table's counts are brought up to date (in parallel), then
//! the other tables are merged into the largest and the vocabulary ranked
//! (sequential).
//! Phase 4 (parallel over documents): map local ids to global ids into the
//! final array.

mod worker;

pub(crate) use worker::BIG_FILE;
use worker::{Deferred, Outcome, Segment, Worker};

use crate::ahead::OnceSlots;
use crate::config::{BOS_ID, EOS_ID, LoaderConfig, NUM_SPECIAL, TokenizerKind, UNK_ID};
use crate::error::Error;
use crate::fs::{Opener, StatSig};
use crate::tokenize::{Candidate, WordTable, decode_ids, rank};
use crate::tokens::{TokenBuf, TokenInt, TokenStore, try_zeroed};
use crate::vocab::Vocab;
use crate::walk::{EntryKind, WalkEntry};
use parking_lot::Mutex;
use sphere_pool::SpherePool;
use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One input of the manifest: what was found, what it was, what came of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileRecord {
    pub name: Vec<u8>,
    pub kind: EntryKind,
    pub sig: StatSig,
    /// XXH3 of the content (regular files; 0 for a skipped file larger
    /// than [`BIG_FILE`], which is not read to its end).
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

/// Files opened ahead of the reads, at most this many files...
const AHEAD_FILES: usize = 128;
/// ... and this many bytes past the file being read.
const AHEAD_BYTES: u64 = 128 << 20;

/// Files opened before the build (by the cache check, which hashed them),
/// by entry index: the build reads them through these descriptors instead
/// of opening them again.
pub(crate) type Preread = HashMap<usize, File>;

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
        let _library = thread_support::tsan::library_code();
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
            .spawn_scoped(scope, || {
                // Under ThreadSanitizer, the loader's own thread is out of view.
                let _library = thread_support::tsan::library_thread();
                look_ahead.run(opener)
            });
        let phase1 = for_each_dynamic(pool, files.len(), |me, k| {
            let pre = preread.lock().remove(&files[k]);
            let early = pre.or(look_ahead.take(k));
            let mut worker = workers[me].lock();
            let outcome = worker.load_file(me, k, &entries[files[k]], kind, opener, early);
            *outcomes[k].lock() = Some(outcome);
        });
        look_ahead.stop.store(true, Ordering::Relaxed);
        if let Ok(thread) = ahead {
            let _ = thread.join();
        }
        phase1
    })?;
    drop(look_ahead);

    // Phase 2: large files, in chunks read from their descriptors.
    let mut deferred: Vec<Deferred> = workers
        .iter()
        .flat_map(|w| std::mem::take(&mut w.lock().deferred))
        .collect();
    deferred.sort_by_key(|d| d.k);
    let mut chunks: Vec<(usize, u64, u64)> = Vec::new(); // (deferred index, start, end)
    for (d, def) in deferred.iter().enumerate() {
        let mut start = 0;
        for &end in &def.ends {
            chunks.push((d, start, end));
            start = end;
        }
    }
    let chunk_segments: Vec<Mutex<Option<Result<Segment, Error>>>> =
        chunks.iter().map(|_| Mutex::new(None)).collect();
    for_each_dynamic(pool, chunks.len(), |me, c| {
        let (d, start, end) = chunks[c];
        let segment = workers[me].lock().chunk(me, kind, &deferred[d], start, end);
        *chunk_segments[c].lock() = Some(segment);
    })?;
    for (c, &(d, _, _)) in chunks.iter().enumerate() {
        let segment = chunk_segments[c].lock().take().expect("every chunk ran");
        let mut outcome = outcomes[deferred[d].k].lock();
        match segment {
            Ok(segment) => {
                if let Some(Outcome::Text { segments, .. }) = outcome.as_mut() {
                    segments.push(segment);
                }
            }
            Err(e) => {
                if !matches!(*outcome, Some(Outcome::Failed(_))) {
                    *outcome = Some(Outcome::Failed(e));
                }
            }
        }
    }
    drop(deferred);

    // The manifest, in walk order; the first failure (in walk order) wins.
    let mut records = Vec::with_capacity(entries.len());
    let mut docs: Vec<Vec<Segment>> = Vec::new();
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
                        docs.push(segments);
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
    if docs.is_empty() {
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
        TokenizerKind::Words => {
            // The hits counted in the tables' slots go to their counts (a
            // pass over a table of megabytes each), in parallel.
            let tables: Vec<Mutex<&mut WordTable>> = workers
                .iter_mut()
                .map(|w| Mutex::new(&mut w.table))
                .collect();
            for_each_dynamic(pool, tables.len(), |_, t| tables[t].lock().flush_hits())?;
            drop(tables);
            words_vocabulary(&mut workers, keep)
        }
        TokenizerKind::Bytes => bytes_vocabulary(&workers, keep),
    };
    times.vocab = started.elapsed();

    // Phase 4: the dataset.
    let started = Instant::now();
    let markers = config.document_markers;
    let tokens = if vocab.len() <= 1 << 16 {
        assemble(pool, &workers, &remaps, &docs, markers, TokenStore::U16)?
    } else {
        assemble(pool, &workers, &remaps, &docs, markers, TokenStore::U32)?
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
/// ids to global ids. The largest table (its hits already flushed) becomes
/// the merged one, so only the other workers' words are added to it: the
/// merge's random probes into a table of megabytes were most of this
/// sequential phase. The ranking is a total order on the words, so which
/// table numbers them first does not change any id.
fn words_vocabulary(workers: &mut [Worker], keep: usize) -> (Vocab, Vec<Vec<u32>>, u64) {
    let base = (0..workers.len())
        .max_by_key(|&w| workers[w].table.len())
        .expect("at least one participant");
    let mut global = std::mem::replace(&mut workers[base].table, WordTable::new());
    let to_global: Vec<Vec<u32>> = workers
        .iter()
        .enumerate()
        .map(|(w, worker)| {
            if w == base {
                (0..global.len() as u32).collect()
            } else {
                (0..worker.table.len() as u32)
                    .map(|e| global.add(worker.table.word(e), worker.table.count(e)))
                    .collect()
            }
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
/// array, documents in parallel; `store` wraps it as the width it was built in.
fn assemble<T: TokenInt>(
    pool: &SpherePool,
    workers: &[Worker],
    remaps: &[Vec<u32>],
    docs: &[Vec<Segment>],
    markers: bool,
    store: fn(TokenBuf<T>) -> TokenStore,
) -> Result<TokenStore, Error> {
    let extra = if markers { 2 } else { 0 };
    let lens: Vec<usize> = docs
        .iter()
        .map(|segs| segs.iter().map(|s| s.len).sum::<usize>() + extra)
        .collect();
    let total = lens.iter().try_fold(0usize, |a, &l| a.checked_add(l));
    let bytes = total.map_or(u64::MAX, |t| {
        (t as u64).saturating_mul(size_of::<T>() as u64)
    });
    let mut tokens = total
        .and_then(try_zeroed::<T>)
        .ok_or_else(|| Error::no_memory("the token dataset", bytes))?;
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
            let local = &workers[s.worker].out[s.start..s.start + s.units];
            if s.units == s.len {
                // No escaped id (the usual case): one unit per token.
                for (dst, &l) in out[pos..pos + s.len].iter_mut().zip(local) {
                    *dst = T::from_id(remap[l as usize]);
                }
            } else {
                for (dst, l) in out[pos..pos + s.len].iter_mut().zip(decode_ids(local)) {
                    *dst = T::from_id(remap[l as usize]);
                }
            }
            pos += s.len;
        }
        if markers {
            out[pos] = T::from_id(EOS_ID);
        }
    })?;
    drop(slices);
    Ok(store(tokens))
}
