//! The one error type of the crate.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Everything that can make a load or a batch request fail. A damaged or
/// stale cache is not an error: it is rebuilt (and said so in the report).
#[derive(Debug)]
pub enum Error {
    /// A path the caller named (the corpus directory, a listed file) does
    /// not exist. A file that the walk found and that vanished before it
    /// was read is an [`Error::Io`] instead.
    NotFound {
        /// The missing path.
        path: PathBuf,
    },
    /// An I/O operation failed (for example a file that cannot be read).
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done: "open", "read", "list", ...
        action: &'static str,
        /// The operating system's error.
        source: io::Error,
    },
    /// No text to train on: no file, or every file was skipped.
    Empty(String),
    /// A bad option or request (vocabulary size, batch size, sequence
    /// length, shard, ...).
    InvalidArgument(String),
    /// The sphere pool failed (a panic inside a task, or a busy pool).
    Pool(sphere_pool::Error),
    /// A thread (the prefetcher) could not be created.
    Spawn(String),
    /// Memory for a buffer whose size comes from the input (file sizes,
    /// token counts, cache headers) could not be allocated: the load stops
    /// with this error instead of aborting the process.
    OutOfMemory {
        /// What the memory was for.
        what: &'static str,
        /// How much was asked for.
        bytes: u64,
    },
}

impl Error {
    /// An I/O error on `path` (also when it no longer exists: a file found
    /// by the walk that vanished mid-load is an I/O failure, not a bad name).
    pub(crate) fn io(path: &Path, action: &'static str, source: io::Error) -> Self {
        Error::Io {
            path: path.to_owned(),
            action,
            source,
        }
    }

    /// Memory for `what` (`bytes` of it) could not be had.
    pub(crate) fn no_memory(what: &'static str, bytes: u64) -> Self {
        Error::OutOfMemory { what, bytes }
    }

    /// An I/O error on a path the caller named: a missing one becomes
    /// [`Error::NotFound`].
    pub(crate) fn named(path: &Path, action: &'static str, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::NotFound {
            Error::NotFound {
                path: path.to_owned(),
            }
        } else {
            Error::io(path, action, source)
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotFound { path } => write!(f, "{} does not exist", path.display()),
            Error::Io {
                path,
                action,
                source,
            } => {
                write!(f, "cannot {action} {}: {source}", path.display())
            }
            Error::Empty(msg) => write!(f, "empty corpus: {msg}"),
            Error::InvalidArgument(msg) => write!(f, "invalid argument: {msg}"),
            Error::Pool(e) => write!(f, "sphere pool: {e}"),
            Error::Spawn(msg) => write!(f, "cannot start a thread: {msg}"),
            Error::OutOfMemory { what, bytes } => {
                write!(
                    f,
                    "not enough memory: cannot allocate {bytes} bytes for {what}"
                )
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Pool(e) => Some(e),
            _ => None,
        }
    }
}

impl From<sphere_pool::Error> for Error {
    fn from(e: sphere_pool::Error) -> Self {
        Error::Pool(e)
    }
}
