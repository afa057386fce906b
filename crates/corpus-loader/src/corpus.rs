//! [`Loader`] and [`Corpus`]: a load from the cache if it is valid, else a
//! cold build (and a new cache).

use crate::build::BIG_FILE;
use crate::build::{Built, FileRecord, Preread, build};
use crate::cache::{self, CacheFile, Meta, Opened, TempCache, Verified};
use crate::config::{LoaderConfig, Source};
use crate::error::Error;
use crate::fs::{FileSystem, Opener, OsFileSystem, StatSig, hash_file};
use crate::report::{CacheStatus, LoadReport, SkippedFile, Timings};
use crate::tokens::{TokenStore, Tokens};
use crate::vocab::Vocab;
use crate::walk::{EntryKind, Walk, WalkEntry, walk};
use sphere_pool::SpherePool;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// One document of the dataset (a text file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// The file's name in the manifest.
    pub name: String,
    /// Index of its first token (its BOS with document markers).
    pub start: usize,
    /// Its number of tokens (markers included).
    pub len: usize,
}

/// A loaded corpus: the vocabulary, the token dataset, its documents and the
/// report of the load. Immutable and `Sync`: share it (in an `Arc`) with
/// every batch iterator and thread.
pub struct Corpus {
    vocab: Vocab,
    tokens: TokenStore,
    docs: Vec<Document>,
    report: LoadReport,
    wide: OnceLock<Vec<u32>>,
}

impl std::fmt::Debug for Corpus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Corpus")
            .field("tokens", &self.tokens().len())
            .field("vocab", &self.vocab.len())
            .field("documents", &self.docs.len())
            .finish()
    }
}

impl Corpus {
    /// Loads `source` with the default options and no cache.
    pub fn load(source: &Source, pool: &SpherePool) -> Result<Self, Error> {
        Loader::new(LoaderConfig::default()).load(source, pool)
    }

    /// The vocabulary.
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// The token dataset: the documents back to back, in walk order.
    pub fn tokens(&self) -> Tokens<'_> {
        self.tokens.view()
    }

    /// The tokens as 32-bit ids. Free if they are stored in 32 bits;
    /// otherwise the first call makes a widened copy, kept with the corpus.
    pub fn tokens_u32(&self) -> &[u32] {
        match self.tokens.view() {
            Tokens::U32(t) => t,
            Tokens::U16(_) => self.wide.get_or_init(|| self.tokens.view().to_vec()),
        }
    }

    /// The documents, in walk order.
    pub fn documents(&self) -> &[Document] {
        &self.docs
    }

    /// The report of the load.
    pub fn report(&self) -> &LoadReport {
        &self.report
    }

    fn new(
        vocab: Vocab,
        tokens: TokenStore,
        records: &[FileRecord],
        markers: bool,
        report: LoadReport,
    ) -> Self {
        let mut docs = Vec::new();
        let mut start = 0;
        for r in records.iter().filter(|r| r.is_document()) {
            let len = r.tokens as usize + if markers { 2 } else { 0 };
            docs.push(Document {
                name: String::from_utf8_lossy(&r.name).into_owned(),
                start,
                len,
            });
            start += len;
        }
        Self {
            vocab,
            tokens,
            docs,
            report,
            wide: OnceLock::new(),
        }
    }
}

/// Loads corpora with one configuration and one file system.
pub struct Loader {
    config: LoaderConfig,
    fs: Arc<dyn FileSystem>,
}

impl Loader {
    /// A loader with these options, on the real file system.
    pub fn new(config: LoaderConfig) -> Self {
        Self {
            config,
            fs: Arc::new(OsFileSystem),
        }
    }

    /// Opens files through `fs` instead (tests count or fail opens this way).
    pub fn with_file_system(mut self, fs: Arc<dyn FileSystem>) -> Self {
        self.fs = fs;
        self
    }

    /// The options.
    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// Loads `source`, tokenising on `pool` (its spheres and the calling
    /// thread). With a cache path: uses the cache if it is intact and the
    /// corpus unchanged, else builds and writes a new one.
    pub fn load(&self, source: &Source, pool: &SpherePool) -> Result<Corpus, Error> {
        let started = Instant::now();
        self.config.validate()?;
        let opener = Opener::new(self.fs.clone());
        let walk = walk(source, self.config.cache_path.as_deref(), pool)?;
        let walk_time = started.elapsed();
        let mut load = Load {
            config: &self.config,
            opener: &opener,
            pool,
            walk: &walk,
            bytes_read: 0,
            timings: Timings::default(),
        };
        load.timings.walk = walk_time;
        let mut corpus = load.run()?;
        corpus.report.files_opened = opener.opened();
        corpus.report.timings.total = started.elapsed();
        Ok(corpus)
    }
}

/// What `compare` found between the manifest and the walk.
enum Diff {
    /// Different: the reason.
    Changed(String),
    /// Same list; these records' `stat` changed (same size) or was racy:
    /// their content must be hashed to decide.
    Same { suspects: Vec<usize> },
}

fn compare(records: &[FileRecord], entries: &[WalkEntry]) -> Diff {
    let shown = |name: &[u8]| String::from_utf8_lossy(name).into_owned();
    let mut suspects = Vec::new();
    for i in 0..records.len().max(entries.len()) {
        match (records.get(i), entries.get(i)) {
            (Some(r), Some(e)) if r.name == e.name => {
                if r.kind != e.kind {
                    return Diff::Changed(format!("{} changed type", shown(&e.name)));
                }
                if e.kind == EntryKind::File {
                    if r.sig.size != e.sig.size {
                        return Diff::Changed(format!(
                            "{} changed size ({} -> {} bytes)",
                            shown(&e.name),
                            r.sig.size,
                            e.sig.size
                        ));
                    }
                    if (r.sig != e.sig || r.racy) && r.skip.is_some() && r.sig.size > BIG_FILE {
                        // Not read to its end when it was skipped: no hash to compare.
                        return Diff::Changed(format!(
                            "{} (skipped, too large to check by content) has a new stat",
                            shown(&e.name)
                        ));
                    }
                    if r.sig != e.sig || r.racy {
                        suspects.push(i);
                    }
                }
            }
            (r, e) => {
                // Names are in walk order: the smaller name is the one the
                // other list lacks.
                let added = match (r, e) {
                    (Some(r), Some(e)) => e.name < r.name,
                    (None, _) => true,
                    (_, None) => false,
                };
                return Diff::Changed(if added {
                    format!("{} was added", shown(&e.expect("an entry").name))
                } else {
                    format!("{} was removed", shown(&r.expect("a record").name))
                });
            }
        }
    }
    Diff::Same { suspects }
}

/// One load in progress.
struct Load<'a> {
    config: &'a LoaderConfig,
    opener: &'a Opener,
    pool: &'a SpherePool,
    walk: &'a Walk,
    timings: Timings,
    /// Bytes of corpus files read by the cache check.
    bytes_read: u64,
}

impl Load<'_> {
    fn run(&mut self) -> Result<Corpus, Error> {
        let Some(cache_path) = self.config.cache_path.clone() else {
            return self.rebuild(
                None,
                None,
                CacheStatus::Disabled,
                "no cache configured".into(),
                Preread::new(),
            );
        };
        let fingerprint = cache::fingerprint(self.config, &self.walk.description);
        let started = Instant::now();
        let (status, note, temp) = match cache::open(self.opener, &cache_path) {
            Opened::Missing => (CacheStatus::Missing, "no cache file yet".to_string(), None),
            Opened::Inaccessible(why) => (CacheStatus::Inaccessible, why, None),
            Opened::Corrupt(why) => (CacheStatus::Corrupt, why, None),
            Opened::Valid(file) if file.header.fingerprint != fingerprint => (
                CacheStatus::OptionsChanged,
                "made with other options or from another source".to_string(),
                None,
            ),
            Opened::Valid(file) => match compare(&file.meta.records, &self.walk.entries) {
                Diff::Changed(why) => (CacheStatus::Stale, why, None),
                Diff::Same { suspects } => match file.read_tokens(self.pool, self.config.map_cache)
                {
                    Err(why) => (CacheStatus::Corrupt, why, None),
                    Ok(verified) if suspects.is_empty() => {
                        self.timings.cache_read = started.elapsed();
                        return Ok(self.corpus_from_cache(
                            *file,
                            verified.tokens,
                            CacheStatus::Hit,
                            "corpus unchanged".into(),
                            None,
                        ));
                    }
                    Ok(verified) => {
                        self.timings.cache_read = started.elapsed();
                        return self.check_suspects(*file, verified, &suspects, fingerprint);
                    }
                },
            },
        };
        self.timings.cache_read = started.elapsed();
        self.rebuild(Some(&cache_path), temp, status, note, Preread::new())
    }

    /// Hashes the files whose `stat` changed; if their content is the same,
    /// serves the cache and rewrites it with their new `stat`.
    fn check_suspects(
        &mut self,
        file: CacheFile,
        verified: Verified,
        suspects: &[usize],
        fingerprint: u64,
    ) -> Result<Corpus, Error> {
        // The stamp of the refreshed cache must predate the reads below.
        let temp = TempCache::create(&file.path);
        let mut records = file.meta.records.clone();
        // Kept for a rebuild, so that no file is opened twice in one load.
        let mut preread = Preread::new();
        let mut buf = Vec::new();
        for &i in suspects {
            let entry = &self.walk.entries[i];
            let read = self.opener.open(&entry.path).and_then(|f| {
                let sig = StatSig::of(&f.metadata()?);
                let (hash, bytes) = hash_file(&f, &mut buf)?;
                Ok((f, sig, hash, bytes))
            });
            let Ok((opened, sig, hash, bytes)) = read else {
                // The rebuild reports the error (it opens the file again: it failed).
                let path = file.path.clone();
                let why = format!("{} could not be read", entry.path.display());
                return self.rebuild(Some(&path), temp.ok(), CacheStatus::Stale, why, preread);
            };
            let same = sig.size == records[i].sig.size && hash == records[i].hash;
            self.bytes_read += bytes;
            preread.insert(i, opened);
            if !same {
                let path = file.path.clone();
                let why = format!(
                    "content of {} changed",
                    String::from_utf8_lossy(&entry.name)
                );
                return self.rebuild(Some(&path), temp.ok(), CacheStatus::Stale, why, preread);
            }
            records[i].sig = sig;
        }
        let note = format!(
            "{} file(s) had a new or too recent stat, same content",
            suspects.len()
        );
        let written = match temp {
            Ok(temp) => {
                let started = Instant::now();
                for r in records.iter_mut().filter(|r| r.kind == EntryKind::File) {
                    r.racy = r.sig.newest_ns() >= temp.stamp_ns;
                }
                let meta = Meta {
                    records,
                    vocab: file.meta.vocab.clone(),
                    distinct: file.meta.distinct,
                };
                let result = temp.persist(
                    &file.path,
                    fingerprint,
                    &self.walk.description,
                    &meta,
                    verified.tokens.view(),
                    &verified.blocks,
                    self.config.durable_cache,
                );
                self.timings.cache_write = started.elapsed();
                result.map(|bytes| (bytes, meta.records))
            }
            Err(e) => Err(e),
        };
        Ok(match written {
            Ok((bytes, records)) => {
                let mut corpus = self.corpus_from_cache(
                    file,
                    verified.tokens,
                    CacheStatus::Refreshed,
                    note,
                    Some(records),
                );
                corpus.report.cache_written = true;
                corpus.report.cache_bytes = bytes;
                corpus
            }
            Err(e) => {
                let mut corpus = self.corpus_from_cache(
                    file,
                    verified.tokens,
                    CacheStatus::Refreshed,
                    note,
                    None,
                );
                corpus.report.cache_error = Some(e.to_string());
                corpus
            }
        })
    }

    fn corpus_from_cache(
        &self,
        file: CacheFile,
        tokens: TokenStore,
        status: CacheStatus,
        note: String,
        records: Option<Vec<FileRecord>>,
    ) -> Corpus {
        let records = records.unwrap_or(file.meta.records);
        let mut report = self.report(
            &records,
            &file.meta.vocab,
            file.meta.distinct,
            file.header.n_tokens,
        );
        report.cache_status = status;
        report.cache_note = note;
        report.cache_bytes = file.header.file_len;
        report.cache_mapped = tokens.is_file_backed();
        report.bytes_read = self.bytes_read;
        Corpus::new(
            file.meta.vocab,
            tokens,
            &records,
            self.config.document_markers,
            report,
        )
    }

    fn rebuild(
        &mut self,
        cache_path: Option<&Path>,
        temp: Option<TempCache>,
        status: CacheStatus,
        note: String,
        preread: Preread,
    ) -> Result<Corpus, Error> {
        let mut cache_error = None;
        let temp = match (cache_path, temp) {
            (Some(_), Some(t)) => Some(t),
            (Some(path), None) => TempCache::create(path)
                .map_err(|e| cache_error = Some(e.to_string()))
                .ok(),
            (None, _) => None,
        };
        let Built {
            records,
            vocab,
            tokens,
            distinct,
            bytes_read,
            times,
        } = build(
            &self.walk.entries,
            self.config,
            self.opener,
            self.pool,
            temp.as_ref().map(|t| t.stamp_ns),
            preread,
        )?;
        self.timings.read = times.read;
        self.timings.check = times.check;
        self.timings.tokenize = times.tokenize;
        self.timings.vocab = times.vocab;
        self.timings.assemble = times.assemble;
        let meta = Meta {
            records,
            vocab,
            distinct,
        };
        let mut cache_bytes = 0;
        if let (Some(path), Some(temp)) = (cache_path, temp) {
            let started = Instant::now();
            let fingerprint = cache::fingerprint(self.config, &self.walk.description);
            let written = cache::block_hashes(self.pool, tokens.view().as_bytes())
                .map_err(|e| std::io::Error::other(e.to_string()))
                .and_then(|blocks| {
                    temp.persist(
                        path,
                        fingerprint,
                        &self.walk.description,
                        &meta,
                        tokens.view(),
                        &blocks,
                        self.config.durable_cache,
                    )
                });
            match written {
                Ok(bytes) => cache_bytes = bytes,
                Err(e) => cache_error = Some(e.to_string()),
            }
            self.timings.cache_write = started.elapsed();
        }
        let mut report = self.report(
            &meta.records,
            &meta.vocab,
            distinct,
            tokens.view().len() as u64,
        );
        report.bytes_read = bytes_read;
        report.cache_status = status;
        report.cache_note = note;
        report.cache_written = cache_path.is_some() && cache_error.is_none();
        report.cache_error = cache_error;
        report.cache_bytes = cache_bytes;
        Ok(Corpus::new(
            meta.vocab,
            tokens,
            &meta.records,
            self.config.document_markers,
            report,
        ))
    }

    fn report(
        &self,
        records: &[FileRecord],
        vocab: &Vocab,
        distinct: u64,
        tokens: u64,
    ) -> LoadReport {
        let docs = records.iter().filter(|r| r.is_document());
        LoadReport {
            inputs: records.len() as u64,
            regular_files: records.iter().filter(|r| r.kind == EntryKind::File).count() as u64,
            files: docs.clone().count() as u64,
            bytes: docs.map(|r| r.sig.size).sum(),
            skipped: records
                .iter()
                .filter_map(|r| {
                    let reason = r.skip.clone()?;
                    Some(SkippedFile {
                        name: String::from_utf8_lossy(&r.name).into_owned(),
                        reason,
                    })
                })
                .collect(),
            files_opened: 0,
            bytes_read: 0,
            dirs_listed: self.walk.dirs_listed,
            tokens,
            vocab_size: vocab.len() as u64,
            distinct_tokens: distinct,
            cache_status: CacheStatus::Disabled,
            cache_note: String::new(),
            cache_written: false,
            cache_error: None,
            cache_bytes: 0,
            cache_mapped: false,
            timings: self.timings,
        }
    }
}
