//! File access: the injectable opener (every open of a corpus or cache file
//! goes through it and is counted), stat signatures, and read-only mappings.

use std::fs::{File, Metadata};
use std::io::{self, Read};
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

/// Reads the whole of `file` into `buf` (cleared first), reusing its capacity.
pub(crate) fn read_all(mut file: &File, size_hint: u64, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    // One byte more than the size lets the final read see EOF without growing.
    buf.reserve(usize::try_from(size_hint).unwrap_or(0).saturating_add(1));
    file.read_to_end(buf)?;
    Ok(())
}

/// A read-only, private memory mapping of a whole file.
///
/// The mapping stays valid after the file is renamed over or deleted. It is
/// *not* protected against the file being truncated in place by another
/// program (the loader itself only ever replaces caches by rename).
pub(crate) struct Mapped {
    ptr: *mut libc::c_void,
    len: usize,
}

// SAFETY: the mapping is read-only and owned; sharing &[u8] views of it
// between threads is as safe as sharing any immutable byte slice.
unsafe impl Send for Mapped {}
// SAFETY: see `Send`; nothing mutates the mapping.
unsafe impl Sync for Mapped {}

impl Mapped {
    /// Maps the first `len` bytes of `file` (`len > 0`).
    pub(crate) fn map(file: &File, len: usize) -> io::Result<Self> {
        use std::os::fd::AsRawFd;
        assert!(len > 0, "cannot map an empty file");
        // SAFETY: a fresh read-only private mapping of an open descriptor; the
        // kernel picks the address; failure is reported as MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: advice on our own mapping; failure only loses the hint.
        unsafe { libc::madvise(ptr, len, libc::MADV_WILLNEED) };
        Ok(Self { ptr, len })
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes until `self` is dropped.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in `map`, once.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}
