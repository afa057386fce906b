//! The deterministic list of inputs: a recursive directory walk (names in
//! byte order at each level, depth first) or an explicit list of files.

use crate::config::Source;
use crate::error::Error;
use crate::fs::StatSig;
use crate::queue::WorkQueue;
use parking_lot::Mutex;
use sphere_pool::SpherePool;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// What a walked entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind {
    /// A regular file: read and, if it is text, tokenised.
    File,
    /// A symbolic link: not followed (no cycles, no reading outside the tree).
    Symlink,
    /// A FIFO, socket or device: never read.
    Special,
}

impl EntryKind {
    pub(crate) fn code(self) -> u8 {
        match self {
            EntryKind::File => 0,
            EntryKind::Symlink => 1,
            EntryKind::Special => 2,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(EntryKind::File),
            1 => Some(EntryKind::Symlink),
            2 => Some(EntryKind::Special),
            _ => None,
        }
    }
}

/// One input as the walk found it.
#[derive(Debug, Clone)]
pub(crate) struct WalkEntry {
    /// The name recorded in the manifest: relative to the root for a
    /// directory source, the path as given for a file list.
    pub name: Vec<u8>,
    /// The path to open.
    pub path: PathBuf,
    pub kind: EntryKind,
    /// `stat` of a regular file (zero for the other kinds).
    pub sig: StatSig,
}

/// The result of a walk.
pub(crate) struct Walk {
    pub entries: Vec<WalkEntry>,
    pub dirs_listed: u64,
    /// The canonical description of the source, part of the cache's
    /// fingerprint.
    pub description: Vec<u8>,
}

/// Lists the inputs of `source`, leaving out the cache file `exclude` and
/// its temporary files. Directories are listed (and their files `stat`ed)
/// in parallel on `pool`: on a cold inode cache each may wait for the disk.
pub(crate) fn walk(
    source: &Source,
    exclude: Option<&Path>,
    pool: &SpherePool,
) -> Result<Walk, Error> {
    match source {
        Source::Directory(root) => walk_directory(root, exclude, pool),
        Source::Files(paths) => list_files(paths),
    }
}

fn walk_directory(root: &Path, exclude: Option<&Path>, pool: &SpherePool) -> Result<Walk, Error> {
    let meta = std::fs::metadata(root).map_err(|e| Error::named(root, "inspect", e))?;
    if !meta.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "{} is not a directory",
            root.display()
        )));
    }
    let canonical = std::fs::canonicalize(root).map_err(|e| Error::named(root, "resolve", e))?;
    let exclusion = exclude.and_then(Exclusion::new);
    let mut listings = list_all(&canonical, exclusion.as_ref(), pool)?;
    let mut walk = Walk {
        entries: Vec::new(),
        dirs_listed: listings.len() as u64,
        description: [b"dir:".as_slice(), canonical.as_os_str().as_bytes()].concat(),
    };
    emit(&canonical, Vec::new(), &mut listings, &mut walk);
    Ok(walk)
}

/// A directory's entries, sorted by name; regular files with their `stat`.
struct Listing {
    children: Vec<(Vec<u8>, Child)>,
}

enum Child {
    Dir,
    File(StatSig),
    Other(EntryKind),
}

/// Lists one directory and `stat`s its regular files relative to it (no
/// walk of the whole path per file).
fn list_one(dir: &Path, exclusion: Option<&Exclusion>) -> Result<Listing, Error> {
    let reader = std::fs::read_dir(dir).map_err(|e| Error::io(dir, "list", e))?;
    let mut children = Vec::new();
    for entry in reader {
        let entry = entry.map_err(|e| Error::io(dir, "list", e))?;
        let name = entry.file_name().into_vec();
        if exclusion.is_some_and(|x| x.matches(dir, &name)) {
            continue;
        }
        let file_type = entry
            .file_type()
            .map_err(|e| Error::io(&entry.path(), "inspect", e))?;
        let child = if file_type.is_dir() {
            Child::Dir
        } else if file_type.is_file() {
            Child::File(StatSig::of(
                &entry
                    .metadata()
                    .map_err(|e| Error::io(&entry.path(), "inspect", e))?,
            ))
        } else if file_type.is_symlink() {
            Child::Other(EntryKind::Symlink)
        } else {
            Child::Other(EntryKind::Special)
        };
        children.push((name, child));
    }
    children.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Listing { children })
}

/// Lists every directory under `root`, directories in parallel on `pool`
/// (each participant takes the next directory from a shared [`WorkQueue`]).
fn list_all(
    root: &Path,
    exclusion: Option<&Exclusion>,
    pool: &SpherePool,
) -> Result<HashMap<PathBuf, Listing>, Error> {
    let queue = WorkQueue::new(vec![root.to_owned()]);
    let listings = Mutex::new(HashMap::new());
    let errors = Mutex::new(Vec::new());
    pool.run_all(|_| {
        let _library = thread_support::tsan::library_code();
        queue.run(|dir: PathBuf| match list_one(&dir, exclusion) {
            Ok(listing) => {
                let subdirs = listing
                    .children
                    .iter()
                    .filter(|c| matches!(c.1, Child::Dir))
                    .map(|c| dir.join(OsStr::from_bytes(&c.0)))
                    .collect();
                listings.lock().insert(dir, listing);
                subdirs
            }
            Err(e) => {
                errors.lock().push((dir, e));
                Vec::new()
            }
        })
    })?;
    debug_assert!(queue.is_finished());
    // Several failures: report the first in path order, whatever the timing.
    if let Some((_, e)) = errors.into_inner().into_iter().min_by(|a, b| a.0.cmp(&b.0)) {
        return Err(e);
    }
    Ok(listings.into_inner())
}

/// Appends the entries under `dir` in walk order (depth first, names in
/// byte order).
fn emit(dir: &Path, prefix: Vec<u8>, listings: &mut HashMap<PathBuf, Listing>, walk: &mut Walk) {
    let listing = listings.remove(dir).expect("every directory was listed");
    for (name, child) in listing.children {
        let path = dir.join(OsStr::from_bytes(&name));
        let mut rel = prefix.clone();
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(&name);
        match child {
            Child::Dir => emit(&path, rel, listings, walk),
            Child::File(sig) => walk.entries.push(WalkEntry {
                name: rel,
                path,
                kind: EntryKind::File,
                sig,
            }),
            Child::Other(kind) => walk.entries.push(WalkEntry {
                name: rel,
                path,
                kind,
                sig: StatSig::default(),
            }),
        }
    }
}

/// The cache file and its temporary siblings, to be left out of the walk.
struct Exclusion {
    dir: PathBuf,
    name: Vec<u8>,
}

impl Exclusion {
    fn new(cache: &Path) -> Option<Self> {
        let name = cache.file_name()?.as_bytes().to_vec();
        let parent = cache
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        // A cache directory that does not exist yet cannot be inside the tree.
        let dir = std::fs::canonicalize(parent).ok()?;
        Some(Self { dir, name })
    }

    fn matches(&self, dir: &Path, name: &[u8]) -> bool {
        dir == self.dir
            && (name == self.name.as_slice() || crate::temp_name::is_temp_name(&self.name, name))
    }
}

fn list_files(paths: &[PathBuf]) -> Result<Walk, Error> {
    let mut walk = Walk {
        entries: Vec::with_capacity(paths.len()),
        dirs_listed: 0,
        description: b"files:".to_vec(),
    };
    let mut seen = std::collections::HashSet::new();
    for path in paths {
        // Follows symbolic links: the caller named this file explicitly.
        let meta = std::fs::metadata(path).map_err(|e| Error::named(path, "inspect", e))?;
        if !meta.is_file() {
            return Err(Error::InvalidArgument(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        let canonical =
            std::fs::canonicalize(path).map_err(|e| Error::named(path, "resolve", e))?;
        if !seen.insert(canonical.clone()) {
            return Err(Error::InvalidArgument(format!(
                "{} is listed twice",
                path.display()
            )));
        }
        let name = canonical.as_os_str().as_bytes().to_vec();
        walk.description.extend_from_slice(&name);
        walk.description.push(0);
        walk.entries.push(WalkEntry {
            name,
            path: canonical,
            kind: EntryKind::File,
            sig: StatSig::of(&meta),
        });
    }
    Ok(walk)
}
