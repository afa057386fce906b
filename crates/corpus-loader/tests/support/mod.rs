//! Helpers of the integration tests: temporary directories, an opener that
//! records (and can refuse) opens, and an independent count of opens by the
//! kernel (inotify).

#![allow(dead_code)]

use corpus_loader::{Corpus, FileSystem, Loader, LoaderConfig, Source};
use sphere_pool::SpherePool;
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A directory under the system's temporary directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "corpus-loader-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `data` to `rel` (creating directories).
    pub fn write(&self, rel: &str, data: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("create dirs");
        std::fs::write(&path, data).expect("write file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A corpus of `n` tokens exactly, and the directory it was loaded from:
/// numbered words in bytes mode would be one token per byte, so use words:
/// "w0 w1 ..." with markers off.
pub fn corpus_of(n: usize) -> (TempDir, Arc<Corpus>) {
    let dir = TempDir::new("words");
    let words: Vec<String> = (0..n).map(|i| format!("w{i}")).collect();
    dir.write("t.txt", words.join(" "));
    let config = LoaderConfig {
        document_markers: false,
        ..LoaderConfig::default()
    };
    let corpus = Loader::new(config)
        .load(
            &Source::Directory(dir.path().to_owned()),
            &SpherePool::new(1).expect("pool"),
        )
        .expect("load");
    assert_eq!(corpus.tokens().len(), n);
    (dir, Arc::new(corpus))
}

/// Waits until the file system's clock has moved past the files just
/// written, so that a cache built now does not see them as "racy" (modified
/// within the time-stamp granularity of the build).
pub fn settle() {
    std::thread::sleep(Duration::from_millis(30));
}

/// Opens through the OS, records every path opened, and refuses `deny`.
#[derive(Default)]
pub struct RecordingFs {
    pub opened: Mutex<Vec<PathBuf>>,
    pub deny: Option<PathBuf>,
}

impl FileSystem for RecordingFs {
    fn open(&self, path: &Path) -> io::Result<File> {
        if self.deny.as_deref() == Some(path) {
            return Err(io::Error::from(io::ErrorKind::PermissionDenied));
        }
        let file = File::open(path)?;
        self.opened.lock().unwrap().push(path.to_owned());
        Ok(file)
    }
}

impl RecordingFs {
    /// How often each path was opened.
    pub fn counts(&self) -> HashMap<PathBuf, usize> {
        let mut counts = HashMap::new();
        for p in self.opened.lock().unwrap().iter() {
            *counts.entry(p.clone()).or_default() += 1;
        }
        counts
    }
}

/// Counts the opens of files in some directories as the kernel reports them
/// (inotify `IN_OPEN`), whoever opens them: an independent check of the
/// loader's own counter.
pub struct OpenWatch {
    fd: i32,
    dirs: HashMap<i32, PathBuf>,
}

impl OpenWatch {
    /// Watches `dirs` (not recursively: list every directory).
    pub fn new(dirs: &[PathBuf]) -> Self {
        // SAFETY: plain system call; the result is checked.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        assert!(fd >= 0, "inotify_init1: {}", io::Error::last_os_error());
        let mut watch = Self {
            fd,
            dirs: HashMap::new(),
        };
        for dir in dirs {
            let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).expect("no NUL");
            // SAFETY: `c` is a valid NUL-terminated path for the call.
            let wd = unsafe { libc::inotify_add_watch(fd, c.as_ptr(), libc::IN_OPEN) };
            assert!(
                wd >= 0,
                "inotify_add_watch {}: {}",
                dir.display(),
                io::Error::last_os_error()
            );
            watch.dirs.insert(wd, dir.clone());
        }
        watch
    }

    /// Every directory under `root`, `root` included.
    pub fn dirs_under(root: &Path) -> Vec<PathBuf> {
        let mut dirs = vec![root.to_owned()];
        let mut i = 0;
        while i < dirs.len() {
            for e in std::fs::read_dir(&dirs[i]).expect("list") {
                let e = e.expect("entry");
                if e.file_type().expect("type").is_dir() {
                    dirs.push(e.path());
                }
            }
            i += 1;
        }
        dirs
    }

    /// The opens of regular files since the last call, by path.
    pub fn take(&mut self) -> HashMap<PathBuf, usize> {
        let mut counts = HashMap::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            // SAFETY: reads into a buffer we own, of the length given.
            let n = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            let mut at = 0;
            while at < n as usize {
                let wd = i32::from_ne_bytes(buf[at..at + 4].try_into().unwrap());
                let mask = u32::from_ne_bytes(buf[at + 4..at + 8].try_into().unwrap());
                let len = u32::from_ne_bytes(buf[at + 12..at + 16].try_into().unwrap()) as usize;
                let name = &buf[at + 16..at + 16 + len];
                let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(len)];
                assert_eq!(mask & libc::IN_Q_OVERFLOW, 0, "inotify queue overflow");
                if mask & libc::IN_OPEN != 0 && mask & libc::IN_ISDIR == 0 && !name.is_empty() {
                    let dir = &self.dirs[&wd];
                    let path = dir.join(std::ffi::OsStr::from_bytes(name));
                    *counts.entry(path).or_default() += 1;
                }
                at += 16 + len;
            }
        }
        counts
    }
}

impl Drop for OpenWatch {
    fn drop(&mut self) {
        // SAFETY: closes the descriptor this watch owns, once.
        unsafe { libc::close(self.fd) };
    }
}

/// English-like text of about `words` words from a small vocabulary, with
/// punctuation, deterministic in `seed`.
pub fn text(seed: u64, words: usize) -> String {
    const WORDS: [&str; 24] = [
        "the",
        "of",
        "and",
        "to",
        "a",
        "in",
        "license",
        "software",
        "you",
        "may",
        "copy",
        "work",
        "program",
        "terms",
        "conditions",
        "distribution",
        "modification",
        "free",
        "source",
        "code",
        "notice",
        "that",
        "this",
        "is",
    ];
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = String::new();
    for i in 0..words {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let w = WORDS[(x % WORDS.len() as u64) as usize];
        out.push_str(w);
        out.push(match (x >> 20) % 13 {
            0 => ',',
            1 if i % 7 == 0 => '.',
            2 => '\n',
            _ => ' ',
        });
        if (x >> 30) % 29 == 0 {
            out.push(' ');
        }
    }
    out
}
