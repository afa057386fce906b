//! The deterministic list of inputs: a recursive directory walk (names in
//! byte order at each level, depth first) or an explicit list of files.

use crate::config::Source;
use crate::error::Error;
use crate::fs::StatSig;
use parking_lot::Mutex;
use sphere_pool::SpherePool;
use std::ffi::OsString;
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
/// its temporary files. The regular files are `stat`ed in parallel on
/// `pool` (on a cold inode cache each `stat` may wait for the disk).
pub(crate) fn walk(
    source: &Source,
    exclude: Option<&Path>,
    pool: &SpherePool,
) -> Result<Walk, Error> {
    let mut walk = match source {
        Source::Directory(root) => walk_directory(root, exclude)?,
        Source::Files(paths) => return list_files(paths),
    };
    let files: Vec<usize> = (0..walk.entries.len())
        .filter(|&i| walk.entries[i].kind == EntryKind::File)
        .collect();
    let sigs: Vec<Mutex<Result<StatSig, Error>>> = files
        .iter()
        .map(|_| Mutex::new(Ok(StatSig::default())))
        .collect();
    pool.parallel_for(0..files.len(), 16, |range| {
        for k in range {
            let path = &walk.entries[files[k]].path;
            *sigs[k].lock() = std::fs::symlink_metadata(path)
                .map(|m| StatSig::of(&m))
                .map_err(|e| Error::io(path, "inspect", e));
        }
    })?;
    for (k, sig) in sigs.into_iter().enumerate() {
        walk.entries[files[k]].sig = sig.into_inner()?;
    }
    Ok(walk)
}

fn walk_directory(root: &Path, exclude: Option<&Path>) -> Result<Walk, Error> {
    let meta = std::fs::metadata(root).map_err(|e| Error::io(root, "inspect", e))?;
    if !meta.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "{} is not a directory",
            root.display()
        )));
    }
    let canonical = std::fs::canonicalize(root).map_err(|e| Error::io(root, "resolve", e))?;
    let exclusion = exclude.and_then(Exclusion::new);
    let mut walk = Walk {
        entries: Vec::new(),
        dirs_listed: 0,
        description: [b"dir:".as_slice(), canonical.as_os_str().as_bytes()].concat(),
    };
    visit(&canonical, Vec::new(), exclusion.as_ref(), &mut walk)?;
    Ok(walk)
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
            && (name == self.name.as_slice() || crate::cache::is_temp_name(&self.name, name))
    }
}

fn visit(
    dir: &Path,
    prefix: Vec<u8>,
    exclusion: Option<&Exclusion>,
    walk: &mut Walk,
) -> Result<(), Error> {
    let reader = std::fs::read_dir(dir).map_err(|e| Error::io(dir, "list", e))?;
    walk.dirs_listed += 1;
    let mut children = Vec::new();
    for entry in reader {
        let entry = entry.map_err(|e| Error::io(dir, "list", e))?;
        let file_type = entry
            .file_type()
            .map_err(|e| Error::io(&entry.path(), "inspect", e))?;
        children.push((entry.file_name().into_vec(), file_type));
    }
    children.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, file_type) in children {
        if exclusion.is_some_and(|x| x.matches(dir, &name)) {
            continue;
        }
        let path = dir.join(OsString::from_vec(name.clone()));
        let mut rel = prefix.clone();
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(&name);
        if file_type.is_dir() {
            visit(&path, rel, exclusion, walk)?;
        } else if file_type.is_file() {
            let meta =
                std::fs::symlink_metadata(&path).map_err(|e| Error::io(&path, "inspect", e))?;
            walk.entries.push(WalkEntry {
                name: rel,
                path,
                kind: EntryKind::File,
                sig: StatSig::of(&meta),
            });
        } else {
            let kind = if file_type.is_symlink() {
                EntryKind::Symlink
            } else {
                EntryKind::Special
            };
            walk.entries.push(WalkEntry {
                name: rel,
                path,
                kind,
                sig: StatSig::default(),
            });
        }
    }
    Ok(())
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
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, "inspect", e))?;
        if !meta.is_file() {
            return Err(Error::InvalidArgument(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        let canonical = std::fs::canonicalize(path).map_err(|e| Error::io(path, "resolve", e))?;
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
