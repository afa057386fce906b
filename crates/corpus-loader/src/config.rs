//! [`LoaderConfig`]: every option of a load, with its defaults, in one place.

use crate::error::Error;
use std::path::PathBuf;

/// Padding: input and target of masked positions.
pub const PAD_ID: u32 = 0;
/// A word that did not make it into the vocabulary.
pub const UNK_ID: u32 = 1;
/// Begin of a document.
pub const BOS_ID: u32 = 2;
/// End of a document.
pub const EOS_ID: u32 = 3;
/// Number of special ids; corpus tokens start at this id.
pub const NUM_SPECIAL: u32 = 4;
/// The default vocabulary limit (special tokens included).
pub const DEFAULT_MAX_VOCAB: usize = 32_768;
/// The largest vocabulary limit accepted.
pub const MAX_VOCAB_LIMIT: usize = 1 << 24;

/// How text becomes tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenizerKind {
    /// Runs of letters, digits, `_` and non-ASCII bytes are words; every other
    /// non-space ASCII character is a token of its own; white space separates
    /// tokens and is dropped. Case is kept.
    Words,
    /// Every byte is a token (exact round trip, small vocabulary).
    Bytes,
}

impl TokenizerKind {
    /// The code stored in caches and used by the C API.
    pub fn code(self) -> u32 {
        match self {
            TokenizerKind::Words => 0,
            TokenizerKind::Bytes => 1,
        }
    }

    /// The kind with this code.
    pub fn from_code(code: u32) -> Option<Self> {
        match code {
            0 => Some(TokenizerKind::Words),
            1 => Some(TokenizerKind::Bytes),
            _ => None,
        }
    }
}

/// The options of a load. `Default` gives the documented defaults; the C
/// API's `cllm_loader_options_default()` is filled from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoaderConfig {
    /// Words (default) or bytes.
    pub tokenizer: TokenizerKind,
    /// Largest vocabulary, the four special tokens included (at least 5).
    /// The most frequent tokens are kept (ties: smaller byte string first);
    /// the others become [`UNK_ID`].
    pub max_vocab: usize,
    /// Where the token cache lives; `None` disables caching. Parent
    /// directories are created. If it lies inside the corpus, the walk skips
    /// it (and its temporary files).
    pub cache_path: Option<PathBuf>,
    /// `fsync` the cache before renaming it into place, and its directory
    /// after, so that it survives a power failure. Off by default: the
    /// rename alone already makes readers see the old or the new file, never
    /// a half-written one, and a cache damaged by a crash fails its checksums
    /// on the next load and is rebuilt; `fsync` only saves that rebuild, at
    /// the price of waiting for the disk on every cold load.
    pub durable_cache: bool,
    /// Let a warm load map the cache's tokens instead of copying them (on by
    /// default): half the cost of a warm load, and one copy of the tokens
    /// for every process that loads the same cache. The mapping is taken
    /// only under a read lease, which keeps another process from truncating
    /// the file under it (the truncation waits while the loader copies the
    /// tokens, and then goes on); without a lease (another user's file, a
    /// file system without leases) the tokens are copied. The lease break
    /// is signalled with `SIGRTMAX - 3`, to the loader's own thread only: a
    /// program that uses that signal for itself should turn this off.
    pub map_cache: bool,
    /// Wrap every document in [`BOS_ID`] ... [`EOS_ID`].
    pub document_markers: bool,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self {
            tokenizer: TokenizerKind::Words,
            max_vocab: DEFAULT_MAX_VOCAB,
            cache_path: None,
            durable_cache: false,
            map_cache: true,
            document_markers: true,
        }
    }
}

impl LoaderConfig {
    /// Checks every value; the error names the bad one.
    pub fn validate(&self) -> Result<(), Error> {
        if self.max_vocab <= NUM_SPECIAL as usize || self.max_vocab > MAX_VOCAB_LIMIT {
            return Err(Error::InvalidArgument(format!(
                "max_vocab {} is out of range: it must be between {} and {MAX_VOCAB_LIMIT}",
                self.max_vocab,
                NUM_SPECIAL + 1
            )));
        }
        Ok(())
    }
}

/// What to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Every regular file under this directory, recursively, in byte order
    /// of the names at each level (depth first).
    Directory(PathBuf),
    /// These files, in this order.
    Files(Vec<PathBuf>),
}
