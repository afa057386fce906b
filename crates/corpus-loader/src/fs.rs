//! File access: the injectable opener (every open of a corpus or cache file
//! goes through it and is counted) and stat signatures.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Opens files for reading. The loader opens every corpus file and the cache
/// through this trait, so a test can inject one that records or fails opens.
pub trait FileSystem: Send + Sync {
    /// Opens `path` for reading.
    fn open(&self, path: &Path) -> io::Result<File>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsFileSystem;

impl FileSystem for OsFileSystem {
    fn open(&self, path: &Path) -> io::Result<File> {
        File::open(path)
    }
}

/// The opener of one load: the file system and the count of files opened.
pub(crate) struct Opener {
    fs: Arc<dyn FileSystem>,
    opened: AtomicU64,
}

impl Opener {
    pub(crate) fn new(fs: Arc<dyn FileSystem>) -> Self {
        Self {
            fs,
            opened: AtomicU64::new(0),
        }
    }

    /// Opens `path` and counts it if it opened.
    pub(crate) fn open(&self, path: &Path) -> io::Result<File> {
        let file = self.fs.open(path)?;
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(file)
    }

    pub(crate) fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }
}

/// What `stat` says about a file, as far as change detection goes. Two equal
/// signatures are taken to mean the same content (see the crate docs for
/// when that is not safe and what the loader does about it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatSig {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Status change time, nanoseconds since the epoch (cannot be set back
    /// by a program, so it also catches an edit whose mtime was restored).
    pub ctime_ns: i64,
    /// Inode number.
    pub ino: u64,
    /// Device.
    pub dev: u64,
}

impl StatSig {
    pub(crate) fn of(meta: &Metadata) -> Self {
        Self {
            size: meta.size(),
            mtime_ns: meta
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.mtime_nsec()),
            ctime_ns: meta
                .ctime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.ctime_nsec()),
            ino: meta.ino(),
            dev: meta.dev(),
        }
    }

    /// The later of the two times.
    pub(crate) fn newest_ns(&self) -> i64 {
        self.mtime_ns.max(self.ctime_ns)
    }
}

/// The XXH3 of `file`'s content (read from its start, in pieces through
/// `buf`, never whole) and its length.
pub(crate) fn hash_file(file: &File, buf: &mut Vec<u8>) -> io::Result<(u64, u64)> {
    use std::os::unix::fs::FileExt;
    buf.resize(1 << 20, 0);
    let mut hasher = crate::hash::Xxh3::new(0);
    let mut offset = 0u64;
    loop {
        let n = match file.read_at(buf, offset) {
            Ok(0) => return Ok((hasher.finish(), offset)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        offset += n as u64;
    }
}
