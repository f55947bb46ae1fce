//! Atomic output: every file goes to a temporary file next to its final place, and all of them
//! are renamed into place only when every output of the build succeeded.
//!
//! The output folder is often shared with other tools (a static site's `public/`), so stale
//! outputs are found through a manifest of what the previous build wrote, never by listing the
//! folder: a file that no build listed is never removed. Each listed output carries the size
//! and SHA-256 of the bytes build wrote or confirmed, and a stale file is removed only while it
//! still holds exactly them: a file that changed since (the user's own page now at an old
//! output's path) is not build's any more. The manifest is thus a function of the input alone,
//! byte-identical between two builds into two folders.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

/// The file in the output folder that lists what the last successful build wrote: one output
/// per line, sorted, as `path<TAB>size<TAB>sha256:HEX`: the path relative to the folder,
/// `/`-separated, then the size in bytes and the SHA-256 (lowercase hex) of what build last
/// wrote or confirmed there. Lines of the previous version, `path<TAB>size<TAB>mtime_ns` with
/// the modification time in nanoseconds since the Unix epoch, are still read.
pub const MANIFEST: &str = ".techshack-outputs";

/// What an output's file looked like when build last wrote or confirmed it. The hash is taken
/// of the bytes build holds in memory anyway; only a stale file is ever read to check it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stamp {
    /// The size and SHA-256 of the contents, as this version writes them.
    Hash { size: u64, sha256: [u8; 32] },
    /// The size and modification time, as the previous version wrote them.
    Time { size: u64, mtime_ns: i128 },
}

impl Stamp {
    fn of_bytes(bytes: &[u8]) -> Stamp {
        use sha2::{Digest, Sha256};
        Stamp::Hash {
            size: bytes.len() as u64,
            sha256: Sha256::digest(bytes).into(),
        }
    }

    /// Whether the regular file at `path`, with metadata `meta`, is still what was recorded.
    fn matches(&self, path: &Path, meta: &fs::Metadata) -> bool {
        match *self {
            Stamp::Hash { size, .. } if size != meta.len() => false,
            Stamp::Hash { .. } => fs::read(path)
                .is_ok_and(|b| b.len() == meta.len() as usize && { Stamp::of_bytes(&b) == *self }),
            Stamp::Time { size, mtime_ns } => {
                meta.len() == size && mtime_of(meta) == Some(mtime_ns)
            }
        }
    }
}

/// Manifest entries: each path with its stamp, or `None` when the line had none (written by an
/// older version, or the time could not be read), which makes the path never pruned.
type Listed = BTreeMap<PathBuf, Option<Stamp>>;

/// What `Staging::commit` did.
#[derive(Debug, Default)]
pub struct Committed {
    /// Outputs of the build, the unchanged ones included and the manifest not.
    pub count: usize,
    /// Outputs that replaced a file of other bytes at their path, sorted: what a cache in
    /// front of the folder must drop. New paths and unchanged files are not listed.
    pub updated: Vec<PathBuf>,
    /// Files an earlier build wrote (listed in its manifest) that this one no longer writes,
    /// now removed, sorted.
    pub removed: Vec<PathBuf>,
    /// Stale files left in place because their contents changed since build wrote them:
    /// someone else's file now, sorted.
    pub changed: Vec<PathBuf>,
    /// Stale files left in place because the manifest line gave no size and time (written by
    /// an older version), sorted.
    pub unrecorded: Vec<PathBuf>,
    /// Why the manifest could not be read, when it could not: nothing was then pruned and the
    /// manifest was left as it was.
    pub manifest_unreadable: Option<String>,
}

/// The outputs of one build, staged under the output folder.
///
/// ```no_run
/// # fn main() -> anyhow::Result<()> {
/// use std::io::Write;
/// let staging = techshack::emit::Staging::new("public".as_ref())?;
/// staging.add("techshack.weekly/2019-01.html", |w| {
///     w.write_all(b"<!doctype html>")?;
///     Ok(())
/// })?;
/// staging.commit()?; // nothing is visible under `public/` before this
/// # Ok(()) }
/// ```
///
/// `add` may be called from several threads at once. Dropping a `Staging` without `commit`
/// (an error anywhere in the build) removes every temporary file and every folder it created,
/// so the previous outputs (and the manifest listing them) stay exactly as they were.
#[derive(Debug)]
pub struct Staging {
    root: PathBuf,
    state: Mutex<State>,
    counter: AtomicUsize,
}

#[derive(Debug, Default)]
struct State {
    /// Relative path of each staged file, and its temporary file.
    files: Vec<(PathBuf, PathBuf)>,
    paths: BTreeSet<PathBuf>,
    /// Folders this build created, parents first.
    created_dirs: Vec<PathBuf>,
    /// The stamp of each output's bytes, written or unchanged.
    stamps: BTreeMap<PathBuf, Stamp>,
    /// Outputs staged over a file that holds other bytes.
    updated: BTreeSet<PathBuf>,
    /// Folders known to exist: each is looked at once, not once per file in it.
    dirs: HashSet<PathBuf>,
    done: bool,
}

impl Staging {
    /// Stages outputs for the folder `out` (created, with its parents, if missing).
    pub fn new(out: &Path) -> Result<Staging> {
        let staging = Staging {
            root: out.to_path_buf(),
            state: Mutex::new(State::default()),
            counter: AtomicUsize::new(0),
        };
        staging.ensure_dir(out)?;
        Ok(staging)
    }

    /// Writes one output, `rel` being its path relative to the output folder (`/`-separated,
    /// no `..`). `write` gets a writer on the output's bytes. Two outputs at one path are an
    /// error.
    pub fn add<F>(&self, rel: impl AsRef<Path>, write: F) -> Result<()>
    where
        F: FnOnce(&mut dyn Write) -> Result<()>,
    {
        let rel = rel.as_ref();
        let dest = self.claim(rel)?;
        // In memory first, to compare with the file in place (documents are at most a few MB).
        let mut bytes = Vec::new();
        write(&mut bytes)?;
        self.stage(rel, &dest, &bytes)
    }

    /// Writes one output from bytes.
    pub fn add_bytes(&self, rel: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
        let rel = rel.as_ref();
        let dest = self.claim(rel)?;
        self.stage(rel, &dest, bytes)
    }

    /// Checks `rel` and reserves it; returns its final path.
    fn claim(&self, rel: &Path) -> Result<PathBuf> {
        let safe = rel.components().all(|c| matches!(c, Component::Normal(_)))
            && rel.file_name().is_some();
        if !safe {
            bail!(
                "output path `{}` must be relative, without `..`",
                rel.display()
            );
        }
        if rel == Path::new(MANIFEST) {
            bail!("output path `{MANIFEST}` is where build lists its outputs");
        }
        let mut st = self.lock();
        if !st.paths.insert(rel.to_path_buf()) {
            bail!("two outputs would be written to `{}`", rel.display());
        }
        Ok(self.root.join(rel))
    }

    /// Writes `bytes` to a temporary file beside `dest`, unless `dest` already holds exactly
    /// them: an unchanged output keeps its file and time stamp, and the file system is spared
    /// replacing it (on ext4, renaming over a file starts writing the new one out at once).
    fn stage(&self, rel: &Path, dest: &Path, bytes: &[u8]) -> Result<()> {
        let dir = dest.parent().unwrap_or(&self.root).to_path_buf();
        self.ensure_dir(&dir)?;
        let stamp = Stamp::of_bytes(bytes);
        self.lock().stamps.insert(rel.to_path_buf(), stamp);
        if let Ok(meta) = fs::symlink_metadata(dest) {
            if holds(dest, &meta, bytes) {
                return Ok(());
            }
            self.lock().updated.insert(rel.to_path_buf());
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.{}-{n}.tmp", std::process::id()));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        // Registered before writing, so a failed write is cleaned up too.
        self.lock().files.push((rel.to_path_buf(), tmp.clone()));
        file.write_all(bytes)
            .with_context(|| format!("writing {}", tmp.display()))?;
        Ok(())
    }

    /// Relative paths of the outputs staged so far, sorted.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.lock().paths.iter().cloned().collect()
    }

    /// Renames every staged file into place, deepest folders first (archives and pages before
    /// the documents linking to them), then removes the stale outputs: those the manifest of
    /// the previous build lists and this build did not write, if their files still have the
    /// size and time listed, and the folders they leave empty. The manifest is rewritten with
    /// every output only once all are in place: a failed rename keeps the old entries (adding
    /// the outputs already moved) and removes nothing, and so does a manifest that cannot be
    /// read, which is then left as it is (see `Committed::manifest_unreadable`).
    pub fn commit(self) -> Result<Committed> {
        self.commit_with(&|p| fs::remove_file(p))
    }

    /// `commit`, removing stale files with `remove`.
    fn commit_with(self, remove: &dyn Fn(&Path) -> io::Result<()>) -> Result<Committed> {
        let old = read_manifest(&self.root);
        let count = self.lock().paths.len();
        let mut files = std::mem::take(&mut self.lock().files);
        files.sort_by(|a, b| {
            let depth = |p: &Path| p.components().count();
            depth(&b.0).cmp(&depth(&a.0)).then_with(|| a.0.cmp(&b.0))
        });
        let mut renamed = Vec::new();
        let mut iter = files.into_iter();
        while let Some((rel, tmp)) = iter.next() {
            let dest = self.root.join(&rel);
            if let Err(e) = fs::rename(&tmp, &dest) {
                let _ = fs::remove_file(&tmp);
                for (_, t) in iter {
                    let _ = fs::remove_file(t);
                }
                self.lock().done = true;
                // The old entries stay listed, with the outputs already in place: the next
                // build still knows every file it may have to remove.
                if let Ok(mut listed) = old {
                    for r in renamed {
                        let stamp = self.lock().stamps.get(&r).copied();
                        listed.insert(r, stamp);
                    }
                    let _ = self.write_manifest(&listed);
                }
                return Err(e)
                    .with_context(|| format!("moving the new {} into place", dest.display()));
            }
            renamed.push(rel);
        }
        self.lock().done = true;
        let outputs = std::mem::take(&mut self.lock().paths);
        let stamps = std::mem::take(&mut self.lock().stamps);
        let updated: Vec<PathBuf> = std::mem::take(&mut self.lock().updated)
            .into_iter()
            .collect();
        let old = match old {
            Ok(old) => old,
            Err(e) => {
                // Overwriting it would lose the old list for good: keep it, remove nothing.
                return Ok(Committed {
                    count,
                    updated,
                    manifest_unreadable: Some(format!(
                        "could not read {}: {e}; no stale output was removed and the file was \
                         left as it is (fix or remove it)",
                        self.root.join(MANIFEST).display()
                    )),
                    ..Committed::default()
                });
            }
        };
        let current: Listed = outputs
            .iter()
            .map(|rel| (rel.clone(), stamps.get(rel).copied()))
            .collect();
        let stale: Listed = old
            .into_iter()
            .filter(|(p, _)| !outputs.contains(p))
            .collect();
        if stale.is_empty() {
            self.write_manifest(&current)?;
            return Ok(Committed {
                count,
                updated,
                ..Committed::default()
            });
        }
        // Listed before any is removed: should the removal stop half-way, the next build still
        // knows them.
        let mut listed = current.clone();
        listed.extend(stale.iter().map(|(p, s)| (p.clone(), *s)));
        self.write_manifest(&listed)?;
        let pruned = prune(&self.root, &stale, &outputs, remove);
        let mut listed = current;
        for (rel, _) in &pruned.failed {
            listed.insert(rel.clone(), stale.get(rel).copied().flatten());
        }
        self.write_manifest(&listed)?;
        if let Some((rel, e)) = pruned.failed.first() {
            let more = match pruned.failed.len() - 1 {
                0 => String::new(),
                n => format!(" (and {n} more)"),
            };
            bail!(
                "the new outputs are in place, but the stale {} could not be removed: {e}{more}; \
                 it stays listed in {} and the next build removes it once that is fixed",
                self.root.join(rel).display(),
                self.root.join(MANIFEST).display()
            );
        }
        Ok(Committed {
            count,
            updated,
            removed: pruned.removed,
            changed: pruned.changed,
            unrecorded: pruned.unrecorded,
            manifest_unreadable: None,
        })
    }

    /// Replaces the manifest with `listed`, through a temporary file like every output, unless
    /// it already holds exactly that.
    fn write_manifest(&self, listed: &Listed) -> Result<()> {
        let mut bytes = Vec::new();
        for (p, stamp) in listed {
            if let Some(line) = manifest_line(p, *stamp) {
                bytes.extend_from_slice(line.as_bytes());
                bytes.push(b'\n');
            }
        }
        let dest = self.root.join(MANIFEST);
        if fs::symlink_metadata(&dest).is_ok_and(|m| holds(&dest, &m, &bytes)) {
            return Ok(());
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .root
            .join(format!("{MANIFEST}.{}-{n}.tmp", std::process::id()));
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .and_then(|mut f| f.write_all(&bytes))
            .and_then(|()| fs::rename(&tmp, &dest));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e).with_context(|| {
                format!(
                    "writing {}, the list of what build wrote (check that the folder is writable)",
                    dest.display()
                )
            });
        }
        Ok(())
    }

    fn ensure_dir(&self, dir: &Path) -> Result<()> {
        if self.lock().dirs.contains(dir) {
            return Ok(());
        }
        if dir.is_dir() {
            self.lock().dirs.insert(dir.to_path_buf());
            return Ok(());
        }
        let mut missing = Vec::new();
        let mut d = Some(dir);
        while let Some(p) = d {
            if p.as_os_str().is_empty() || p.is_dir() {
                break;
            }
            missing.push(p.to_path_buf());
            d = p.parent();
        }
        fs::create_dir_all(dir).with_context(|| format!("creating folder {}", dir.display()))?;
        let mut st = self.lock();
        st.dirs.insert(dir.to_path_buf());
        for p in missing.into_iter().rev() {
            if !st.created_dirs.contains(&p) {
                st.created_dirs.push(p);
            }
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: still usable for cleanup.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The manifest line of an output, or `None` for a path that a line cannot hold (not UTF-8,
/// or with a line break or tab in a name): such an output is simply never pruned.
fn manifest_line(rel: &Path, stamp: Option<Stamp>) -> Option<String> {
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str()?),
            _ => return None,
        }
    }
    let path = parts.join("/");
    let ok = !path.is_empty() && !path.contains(['\n', '\r', '\t']) && parse_path(&path).is_some();
    if !ok {
        return None;
    }
    Some(match stamp {
        Some(Stamp::Hash { size, sha256 }) => {
            format!("{path}\t{size}\tsha256:{}", crate::token::hex(&sha256))
        }
        Some(Stamp::Time { size, mtime_ns }) => format!("{path}\t{size}\t{mtime_ns}"),
        None => path,
    })
}

/// The modification time of a file in nanoseconds since the Unix epoch.
fn mtime_of(meta: &fs::Metadata) -> Option<i128> {
    let mtime = meta.modified().ok()?;
    match mtime.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i128::try_from(d.as_nanos()).ok(),
        Err(e) => i128::try_from(e.duration().as_nanos()).ok().map(|n| -n),
    }
}

/// `sha256:` and 64 lowercase hex digits, as bytes.
fn parse_sha256(field: &str) -> Option<[u8; 32]> {
    let hex = field.strip_prefix("sha256:")?.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// The entries of the manifest in `out`. A missing manifest lists nothing, and so does a link
/// (it could point at any list of names; the next write replaces it with a file). Any other
/// failure to read it is an error: the old list must then be kept, not overwritten.
fn read_manifest(out: &Path) -> io::Result<Listed> {
    let path = out.join(MANIFEST);
    let meta = match fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Listed::new()),
        Err(e) => return Err(e),
    };
    if meta.is_symlink() {
        return Ok(Listed::new());
    }
    if meta.is_dir() {
        return Err(io::Error::other("it is a folder, not a file"));
    }
    if !meta.is_file() {
        return Err(io::Error::other("it is not a regular file"));
    }
    Ok(parse_manifest(&fs::read(&path)?))
}

/// The valid lines of a manifest. The file sits in a folder others write to, so each line is
/// checked as untrusted: a line that is not a plain relative path, alone or followed by a
/// size and a time, is ignored.
fn parse_manifest(bytes: &[u8]) -> Listed {
    bytes
        .split(|&b| b == b'\n')
        .filter_map(|line| std::str::from_utf8(line).ok())
        .filter_map(|line| parse_line(line.strip_suffix('\r').unwrap_or(line)))
        .collect()
}

/// One manifest line: `path<TAB>size<TAB>sha256:HEX`, `path<TAB>size<TAB>mtime_ns` as the
/// previous version wrote it, or `path` alone as older versions did (no stamp: never pruned).
fn parse_line(line: &str) -> Option<(PathBuf, Option<Stamp>)> {
    let mut fields = line.split('\t');
    let path = parse_path(fields.next()?)?;
    let rest: Vec<&str> = fields.collect();
    match rest[..] {
        [] => Some((path, None)),
        [size, third] => {
            let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            if !digits(size) {
                return None;
            }
            let size = size.parse().ok()?;
            if third.starts_with("sha256:") {
                let sha256 = parse_sha256(third)?;
                return Some((path, Some(Stamp::Hash { size, sha256 })));
            }
            let negative = third.strip_prefix('-');
            if !digits(negative.unwrap_or(third)) {
                return None;
            }
            let mtime_ns = third.parse().ok()?;
            Some((path, Some(Stamp::Time { size, mtime_ns })))
        }
        _ => None,
    }
}

/// `text` as a relative path of normal names (no `.`, `..`, empty name, root or NUL), other
/// than the manifest itself.
fn parse_path(text: &str) -> Option<PathBuf> {
    let plain =
        |name: &str| !name.is_empty() && name != "." && name != ".." && !name.contains('\0');
    if !text.split('/').all(plain) || text == MANIFEST {
        return None;
    }
    Some(PathBuf::from(text))
}

#[derive(Debug, Default)]
struct Pruned {
    removed: Vec<PathBuf>,
    changed: Vec<PathBuf>,
    unrecorded: Vec<PathBuf>,
    failed: Vec<(PathBuf, io::Error)>,
}

/// Removes the `stale` files under `root`, then the folders that this left empty, never
/// `root` itself. A stale path is left alone when its folder resolves outside `root` (a
/// link), when it is no longer a regular file (a folder, a link), or when it is one of the
/// `outputs` under another name (a file system that ignores case), and kept when its size and
/// contents (or, for a line of the previous version, its size and modification time) are not
/// the ones `stale` recorded, or none was recorded.
fn prune(
    root: &Path,
    stale: &Listed,
    outputs: &BTreeSet<PathBuf>,
    remove: &dyn Fn(&Path) -> io::Result<()>,
) -> Pruned {
    let mut pruned = Pruned::default();
    let Ok(real_root) = fs::canonicalize(root) else {
        return pruned;
    };
    let mut output_ids: Option<HashSet<(u64, u64)>> = None;
    let mut emptied: BTreeSet<PathBuf> = BTreeSet::new();
    for (rel, recorded) in stale {
        let path = root.join(rel);
        let Some(parent) = path.parent() else {
            continue;
        };
        // Only a refused look is worth failing for; any other error (gone, a file where a
        // folder was, a name too long) means there is no file of ours to remove.
        let real_parent = match fs::canonicalize(parent) {
            Ok(p) => p,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                pruned.failed.push((rel.clone(), e));
                continue;
            }
            Err(_) => continue,
        };
        if !real_parent.starts_with(&real_root) {
            continue;
        }
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                pruned.failed.push((rel.clone(), e));
                continue;
            }
            Err(_) => continue,
        };
        // Build writes regular files only: a folder or link there now is someone else's.
        if !meta.is_file() {
            continue;
        }
        match recorded {
            None => {
                pruned.unrecorded.push(rel.clone());
                continue;
            }
            Some(s) if !s.matches(&path, &meta) => {
                pruned.changed.push(rel.clone());
                continue;
            }
            Some(_) => {}
        }
        let ids = output_ids.get_or_insert_with(|| file_ids(root, outputs));
        if file_id(&meta).is_some_and(|id| ids.contains(&id)) {
            continue;
        }
        match remove(&path) {
            Ok(()) => {
                pruned.removed.push(rel.clone());
                emptied.extend(rel.ancestors().skip(1).map(Path::to_path_buf));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => pruned.failed.push((rel.clone(), e)),
        }
    }
    // Deepest first, so a folder is tried after the folders in it. `remove_dir` removes only
    // an empty folder and never follows a link, so the user's own files keep their folders.
    let mut dirs: Vec<PathBuf> = emptied
        .into_iter()
        .filter(|d| !d.as_os_str().is_empty())
        .collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in dirs {
        let dir = root.join(&d);
        let inside = fs::canonicalize(&dir)
            .is_ok_and(|real| real != real_root && real.starts_with(&real_root));
        if inside {
            let _ = fs::remove_dir(&dir);
        }
    }
    pruned
}

/// The identities (device, inode) of the files at `outputs`.
fn file_ids(root: &Path, outputs: &BTreeSet<PathBuf>) -> HashSet<(u64, u64)> {
    outputs
        .iter()
        .filter_map(|rel| fs::symlink_metadata(root.join(rel)).ok())
        .filter_map(|m| file_id(&m))
        .collect()
}

#[cfg(unix)]
fn file_id(meta: &fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn file_id(_meta: &fs::Metadata) -> Option<(u64, u64)> {
    None
}

/// Whether `path` is a regular file (not a link) whose bytes are `bytes`, `meta` being its
/// metadata (not following a link).
fn holds(path: &Path, meta: &fs::Metadata, bytes: &[u8]) -> bool {
    use std::io::Read;
    let same_size = meta.is_file() && meta.len() == bytes.len() as u64;
    if !same_size {
        return false;
    }
    let Ok(file) = File::open(path) else {
        return false;
    };
    let mut old = Vec::with_capacity(bytes.len());
    // One byte more than expected reveals a file that grew since the size was read.
    match file.take(bytes.len() as u64 + 1).read_to_end(&mut old) {
        Ok(_) => old == bytes,
        Err(_) => false,
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let st = self.lock();
        if st.done {
            return;
        }
        for (_, tmp) in &st.files {
            let _ = fs::remove_file(tmp);
        }
        for d in st.created_dirs.iter().rev() {
            let _ = fs::remove_dir(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_visible_before_commit_and_all_after() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("public");
        let s = Staging::new(&out).unwrap();
        s.add_bytes("a.xml", b"A").unwrap();
        s.add_bytes("archive/b.xml", b"B").unwrap();
        assert!(!out.join("a.xml").exists());
        assert_eq!(s.paths().len(), 2);
        assert_eq!(s.commit().unwrap().count, 2);
        assert_eq!(fs::read(out.join("a.xml")).unwrap(), b"A");
        assert_eq!(fs::read(out.join("archive/b.xml")).unwrap(), b"B");
        let leftovers: Vec<_> = fs::read_dir(&out)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn a_failure_leaves_old_files_and_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().to_path_buf();
        fs::write(out.join("a.xml"), b"old").unwrap();
        {
            let s = Staging::new(&out).unwrap();
            s.add_bytes("a.xml", b"new").unwrap();
            let e = s
                .add("archive/b.xml", |w| {
                    w.write_all(b"half")?;
                    anyhow::bail!("disk on fire")
                })
                .unwrap_err();
            assert!(e.to_string().contains("disk on fire"));
        }
        assert_eq!(fs::read(out.join("a.xml")).unwrap(), b"old");
        let names: Vec<_> = fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            vec!["a.xml".to_string()],
            "temporaries or folders left behind"
        );
    }

    #[test]
    fn an_unchanged_output_keeps_its_file() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().to_path_buf();
        let s = Staging::new(&out).unwrap();
        s.add_bytes("same.xml", b"same").unwrap();
        s.add_bytes("grows.xml", b"abc").unwrap();
        s.add_bytes("edited.xml", b"abc").unwrap();
        assert_eq!(s.commit().unwrap().count, 3);
        let inode = |n: &str| fs::metadata(out.join(n)).unwrap().ino();
        let before = [inode("same.xml"), inode("grows.xml"), inode("edited.xml")];
        let s = Staging::new(&out).unwrap();
        s.add("same.xml", |w| Ok(w.write_all(b"same")?)).unwrap();
        s.add_bytes("grows.xml", b"abcd").unwrap();
        s.add_bytes("edited.xml", b"abd").unwrap();
        s.add_bytes("new.xml", b"new").unwrap();
        assert!(!out.join("new.xml").exists());
        assert_eq!(
            s.commit().unwrap().count,
            4,
            "the unchanged output is counted"
        );
        assert_eq!(
            inode("same.xml"),
            before[0],
            "an unchanged file was replaced"
        );
        assert_ne!(inode("grows.xml"), before[1]);
        assert_ne!(inode("edited.xml"), before[2]);
        assert_eq!(fs::read(out.join("same.xml")).unwrap(), b"same");
        assert_eq!(fs::read(out.join("grows.xml")).unwrap(), b"abcd");
        assert_eq!(fs::read(out.join("edited.xml")).unwrap(), b"abd");
        assert_eq!(fs::read(out.join("new.xml")).unwrap(), b"new");
    }

    #[test]
    fn a_link_in_place_of_an_output_is_replaced_by_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        fs::create_dir(&out).unwrap();
        fs::write(dir.path().join("elsewhere.xml"), b"same").unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere.xml"), out.join("a.xml")).unwrap();
        let s = Staging::new(&out).unwrap();
        s.add_bytes("a.xml", b"same").unwrap();
        s.commit().unwrap();
        let m = fs::symlink_metadata(out.join("a.xml")).unwrap();
        assert!(m.is_file(), "the output is still a link");
    }

    #[test]
    fn rejects_two_outputs_at_one_path_and_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let s = Staging::new(dir.path()).unwrap();
        s.add_bytes("x/a.xml", b"1").unwrap();
        assert!(s.add_bytes("x/a.xml", b"2").is_err());
        assert!(s.add_bytes("../evil.xml", b"3").is_err());
        assert!(s.add_bytes("/etc/evil.xml", b"3").is_err());
    }

    fn lines(listed: &Listed) -> Vec<String> {
        listed
            .keys()
            .map(|p| p.to_string_lossy().into_owned())
            .collect()
    }

    /// The paths the manifest in `out` lists, sorted.
    fn listed(out: &Path) -> Vec<String> {
        lines(&parse_manifest(&fs::read(out.join(MANIFEST)).unwrap()))
    }

    /// The manifest line build would write for the file at `rel` as it is now.
    fn line(out: &Path, rel: &str) -> String {
        let stamp = Stamp::of_bytes(&fs::read(out.join(rel)).unwrap());
        manifest_line(Path::new(rel), Some(stamp)).unwrap()
    }

    #[test]
    fn manifest_lines_that_are_not_plain_relative_paths_are_ignored() {
        let text = b"archive/atom-1.xml\n\
            ../outside.txt\n\
            /etc/passwd\n\
            \n\
            weekly/../../x.html\n\
            ./atom.xml\n\
            weekly//a.html\n\
            weekly/./a.html\n\
            weekly/\n\
            a\0b\n\
            .techshack-outputs\n\
            \xff\xfe.html\n\
            weekly/2019-01.html\r\n\
            .hidden/file\n\
            rss.xml";
        assert_eq!(
            lines(&parse_manifest(text)),
            [
                ".hidden/file",
                "archive/atom-1.xml",
                "rss.xml",
                "weekly/2019-01.html"
            ]
        );
        assert!(parse_manifest(b"").is_empty());
        assert!(parse_manifest(b"\n\n..\n.\n/\n").is_empty());
    }

    #[test]
    fn only_paths_a_line_can_hold_are_listed() {
        let stamp = Some(Stamp::Time {
            size: 12,
            mtime_ns: 1_546_300_800_123_456_789,
        });
        let hashed = Some(Stamp::of_bytes(b"abc"));
        assert_eq!(
            manifest_line(Path::new("a.xml"), hashed).as_deref(),
            Some(
                "a.xml\t3\tsha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
            )
        );
        assert_eq!(
            manifest_line(Path::new("weekly/2019-01.html"), stamp).as_deref(),
            Some("weekly/2019-01.html\t12\t1546300800123456789")
        );
        assert_eq!(
            manifest_line(Path::new("weekly/2019-01.html"), None).as_deref(),
            Some("weekly/2019-01.html")
        );
        // A line break in a name would make two lines of one path, a tab a line of other fields.
        assert_eq!(
            manifest_line(Path::new("weekly/a\nindex.html"), stamp),
            None
        );
        assert_eq!(manifest_line(Path::new("a\r"), stamp), None);
        assert_eq!(manifest_line(Path::new("a\t1\t2"), None), None);
        assert_eq!(manifest_line(Path::new(MANIFEST), stamp), None);
        for p in ["weekly/x.html", "a.xml", "archive/items.rss-3.xml"] {
            for s in [stamp, hashed, None] {
                let line = manifest_line(Path::new(p), s).unwrap();
                let parsed = parse_manifest(line.as_bytes());
                assert_eq!(lines(&parsed), [p], "round trip");
                assert_eq!(parsed[Path::new(p)], s, "round trip of the stamp");
            }
        }
    }

    #[test]
    fn manifest_lines_carry_a_size_and_time_or_nothing() {
        let text = b"a.xml\t12\t1546300800123456789\n\
            old-format.html\n\
            before-1970.xml\t3\t-5\n\
            crlf.xml\t4\t5\r\n\
            two-fields.xml\t12\n\
            four-fields.xml\t1\t2\t3\n\
            plus.xml\t+1\t2\n\
            minus-size.xml\t-1\t2\n\
            words.xml\tten\t2\n\
            empty.xml\t\t\n\
            spaced.xml\t 1\t2\n\
            huge.xml\t18446744073709551616\t2\n\
            ../escape.xml\t1\t2\n\
            \t1\t2\n\
            hashed.xml\t3\tsha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n\
            short-hash.xml\t3\tsha256:ba78\n\
            upper-hash.xml\t3\tsha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD\n\
            other-hash.xml\t3\tmd5:ba7816bf8f01cfea414140de5dae2223\n";
        let listed = parse_manifest(text);
        let stamp = |size, mtime_ns| Some(Stamp::Time { size, mtime_ns });
        let expected: Listed = [
            ("a.xml", stamp(12, 1_546_300_800_123_456_789)),
            ("before-1970.xml", stamp(3, -5)),
            ("crlf.xml", stamp(4, 5)),
            ("hashed.xml", Some(Stamp::of_bytes(b"abc"))),
            ("old-format.html", None),
        ]
        .into_iter()
        .map(|(p, s)| (PathBuf::from(p), s))
        .collect();
        assert_eq!(listed, expected);
    }

    fn build(out: &Path, files: &[&str]) -> Committed {
        let s = Staging::new(out).unwrap();
        for f in files {
            s.add_bytes(f, f.as_bytes()).unwrap();
        }
        s.commit().unwrap()
    }

    #[test]
    fn the_manifest_lists_every_output_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        build(out, &["b.xml", "archive/a.xml", "a.xml"]);
        let expected = ["a.xml", "archive/a.xml", "b.xml"]
            .iter()
            .map(|rel| line(out, rel) + "\n")
            .collect::<String>();
        assert_eq!(fs::read_to_string(out.join(MANIFEST)).unwrap(), expected);
        assert!(expected.starts_with("a.xml\t5\t"), "{expected}");
        // An unchanged output left in place is listed with its file as it is.
        fs::write(out.join("b.xml"), b"b.xml").unwrap();
        let before = line(out, "b.xml");
        build(out, &["b.xml"]);
        assert_eq!(
            fs::read_to_string(out.join(MANIFEST)).unwrap(),
            before + "\n"
        );
        assert!(Staging::new(dir.path())
            .unwrap()
            .add_bytes(MANIFEST, b"x")
            .is_err());
    }

    #[test]
    fn outputs_no_longer_written_are_removed_with_the_folders_they_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        let first = build(
            out,
            &["a.xml", "old.xml", "deep/er/x.html", "w/p.html", "w/q.html"],
        );
        assert!(
            first.removed.is_empty(),
            "no manifest yet: nothing to prune"
        );
        fs::write(out.join("CNAME"), b"mine").unwrap();
        let second = build(out, &["a.xml", "w/p.html"]);
        assert_eq!(
            second.removed,
            [
                PathBuf::from("deep/er/x.html"),
                PathBuf::from("old.xml"),
                PathBuf::from("w/q.html")
            ]
        );
        assert!(!out.join("old.xml").exists());
        assert!(!out.join("deep").exists(), "emptied folders stay behind");
        assert!(out.join("w/p.html").exists());
        assert_eq!(fs::read(out.join("CNAME")).unwrap(), b"mine");
        assert_eq!(listed(out), ["a.xml", "w/p.html"]);
        assert!(build(out, &["a.xml", "w/p.html"]).removed.is_empty());
    }

    #[test]
    fn a_folder_holding_anything_else_stays() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        build(out, &["a.xml", "w/x/p.html", "v/p.html"]);
        fs::write(out.join("w/custom.css"), b"mine").unwrap();
        fs::create_dir(out.join("v/empty")).unwrap();
        let c = build(out, &["a.xml"]);
        assert_eq!(c.removed.len(), 2);
        assert!(!out.join("w/x").exists());
        assert_eq!(fs::read(out.join("w/custom.css")).unwrap(), b"mine");
        assert!(
            out.join("v/empty").is_dir(),
            "a folder of the user's own went"
        );
    }

    #[test]
    fn without_a_manifest_nothing_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        fs::write(out.join("old.xml"), b"from an earlier version").unwrap();
        assert!(build(out, &["a.xml"]).removed.is_empty());
        assert!(out.join("old.xml").exists());
        // A manifest that is a link is not read: it could point at any list of names.
        fs::write(dir.path().join("list"), b"a.xml\n").unwrap();
        fs::remove_file(out.join(MANIFEST)).unwrap();
        std::os::unix::fs::symlink(out.join("list"), out.join(MANIFEST)).unwrap();
        assert!(build(out, &["b.xml"]).removed.is_empty());
        assert!(out.join("a.xml").exists());
        assert!(fs::symlink_metadata(out.join(MANIFEST)).unwrap().is_file());
    }

    #[test]
    fn a_tampered_manifest_removes_nothing_outside_the_output_folder() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("public");
        let outside = dir.path().join("elsewhere");
        fs::create_dir_all(&outside).unwrap();
        fs::write(dir.path().join("outside.txt"), b"keep").unwrap();
        fs::write(outside.join("x.html"), b"keep").unwrap();
        fs::write(outside.join("y.html"), b"keep").unwrap();
        build(&out, &["a.xml"]);
        std::os::unix::fs::symlink(&outside, out.join("link")).unwrap();
        let abs = dir.path().join("outside.txt");
        fs::write(
            out.join(MANIFEST),
            format!(
                "../outside.txt\t4\t0\n{}\nlink/x.html\nlink/../y.html\nlink\n{}\n",
                abs.display(),
                line(&out, "a.xml")
            ),
        )
        .unwrap();
        let c = build(&out, &["b.xml"]);
        assert_eq!(c.removed, [PathBuf::from("a.xml")]);
        assert_eq!(fs::read(dir.path().join("outside.txt")).unwrap(), b"keep");
        assert_eq!(fs::read(outside.join("x.html")).unwrap(), b"keep");
        assert_eq!(fs::read(outside.join("y.html")).unwrap(), b"keep");
        assert!(outside.is_dir());
        // The link itself was listed, but build never writes a link: it stays.
        assert!(fs::symlink_metadata(out.join("link")).is_ok_and(|m| m.is_symlink()));
    }

    #[test]
    fn a_link_to_a_folder_inside_is_followed_and_an_output_under_another_name_kept() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        build(out, &["real/old.html", "real/new.html"]);
        std::os::unix::fs::symlink(out.join("real"), out.join("alias")).unwrap();
        let new = line(out, "real/new.html");
        fs::write(
            out.join(MANIFEST),
            format!(
                "{}\n{}\n{new}\n",
                line(out, "real/old.html").replacen("real/", "alias/", 1),
                new.replacen("real/", "alias/", 1),
            ),
        )
        .unwrap();
        // `alias/new.html` is the output `real/new.html` by another name, as `A.html` and
        // `a.html` are on a file system that ignores case.
        let c = build(out, &["real/new.html"]);
        assert_eq!(c.removed, [PathBuf::from("alias/old.html")]);
        assert!(out.join("real/new.html").exists());
        assert!(!out.join("real/old.html").exists());
    }

    #[test]
    fn a_listed_path_already_gone_or_now_a_folder_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        build(out, &["gone.xml", "dir", "f/x.html"]);
        fs::remove_file(out.join("gone.xml")).unwrap();
        fs::remove_file(out.join("dir")).unwrap();
        fs::create_dir(out.join("dir")).unwrap();
        fs::write(out.join("dir/mine"), b"mine").unwrap();
        fs::remove_dir_all(out.join("f")).unwrap();
        let c = build(out, &["a.xml"]);
        assert!(c.removed.is_empty(), "{:?}", c.removed);
        assert_eq!(fs::read(out.join("dir/mine")).unwrap(), b"mine");
        assert_eq!(listed(out), ["a.xml"]);
    }

    #[test]
    fn a_stale_file_that_cannot_be_removed_fails_the_build_and_stays_listed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        build(out, &["a.xml", "old.xml", "stuck.xml"]);
        let s = Staging::new(out).unwrap();
        s.add_bytes("a.xml", b"new").unwrap();
        let e = s
            .commit_with(&|p| {
                if p.ends_with("stuck.xml") {
                    Err(io::Error::from(io::ErrorKind::PermissionDenied))
                } else {
                    fs::remove_file(p)
                }
            })
            .unwrap_err()
            .to_string();
        assert!(e.contains("stuck.xml") && e.contains("next build"), "{e}");
        assert_eq!(fs::read(out.join("a.xml")).unwrap(), b"new");
        assert!(!out.join("old.xml").exists());
        assert_eq!(listed(out), ["a.xml", "stuck.xml"]);
        // Once it can be removed, the next build does.
        assert_eq!(build(out, &["a.xml"]).removed, [PathBuf::from("stuck.xml")]);
        assert_eq!(listed(out), ["a.xml"]);
    }

    #[test]
    fn a_failed_build_keeps_the_stale_files_and_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        build(out, &["a.xml", "old.xml"]);
        let manifest = fs::read(out.join(MANIFEST)).unwrap();
        {
            let s = Staging::new(out).unwrap();
            s.add_bytes("a.xml", b"new").unwrap();
            assert!(s.add("b.xml", |_| anyhow::bail!("broken")).is_err());
        }
        assert!(out.join("old.xml").exists());
        assert_eq!(fs::read(out.join(MANIFEST)).unwrap(), manifest);
    }

    #[test]
    fn a_stale_path_holding_a_changed_or_unrecorded_file_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        build(
            out,
            &[
                "a.xml",
                "w/2019-02.html",
                "old.xml",
                "same-size.xml",
                "legacy.xml",
            ],
        );
        // The user's own page at a former output's path.
        fs::remove_file(out.join("w/2019-02.html")).unwrap();
        fs::write(out.join("w/2019-02.html"), b"<meta http-equiv=refresh>").unwrap();
        // Same size, other bytes: rewritten by someone else.
        fs::write(out.join("same-size.xml"), b"SAME-SIZE.XML").unwrap();
        // Same bytes, another time: still build's own file.
        let f = File::options()
            .write(true)
            .open(out.join("old.xml"))
            .unwrap();
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(86_400))
            .unwrap();
        drop(f);
        let text = fs::read_to_string(out.join(MANIFEST)).unwrap();
        let text = text.replace(&line(out, "legacy.xml"), "legacy.xml");
        fs::write(out.join(MANIFEST), text).unwrap();
        let c = build(out, &["a.xml"]);
        assert_eq!(c.removed, [PathBuf::from("old.xml")]);
        assert_eq!(
            c.changed,
            [
                PathBuf::from("same-size.xml"),
                PathBuf::from("w/2019-02.html")
            ]
        );
        assert_eq!(c.unrecorded, [PathBuf::from("legacy.xml")]);
        assert!(!out.join("old.xml").exists());
        assert_eq!(
            fs::read(out.join("w/2019-02.html")).unwrap(),
            b"<meta http-equiv=refresh>"
        );
        assert_eq!(
            fs::read(out.join("same-size.xml")).unwrap(),
            b"SAME-SIZE.XML"
        );
        assert!(out.join("legacy.xml").exists());
        // Not build's any more: no longer listed.
        assert_eq!(listed(out), ["a.xml"]);
    }

    #[test]
    fn a_manifest_of_the_previous_version_is_read_with_its_times() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        build(out, &["a.xml", "old.xml", "touched.xml"]);
        let time_line = |rel: &str, shift: i128| {
            let meta = fs::metadata(out.join(rel)).unwrap();
            let mtime_ns = mtime_of(&meta).unwrap() + shift;
            let stamp = Stamp::Time {
                size: meta.len(),
                mtime_ns,
            };
            manifest_line(Path::new(rel), Some(stamp)).unwrap()
        };
        let text = format!(
            "a.xml\n{}\n{}\n",
            time_line("old.xml", 0),
            time_line("touched.xml", 1)
        );
        fs::write(out.join(MANIFEST), text).unwrap();
        let c = build(out, &["a.xml"]);
        assert_eq!(c.removed, [PathBuf::from("old.xml")]);
        assert_eq!(c.changed, [PathBuf::from("touched.xml")]);
        assert!(out.join("touched.xml").exists());
        // Rewritten in the new form.
        assert_eq!(
            fs::read_to_string(out.join(MANIFEST)).unwrap(),
            format!("{}\n", line(out, "a.xml"))
        );
    }

    #[test]
    fn an_unreadable_manifest_is_kept_and_nothing_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        build(out, &["a.xml", "old.xml"]);
        fs::remove_file(out.join(MANIFEST)).unwrap();
        fs::create_dir(out.join(MANIFEST)).unwrap();
        fs::write(out.join(MANIFEST).join("inside"), b"kept").unwrap();
        let c = build(out, &["a.xml", "b.xml"]);
        let why = c.manifest_unreadable.expect("a reason");
        assert!(why.contains(MANIFEST) && why.contains("folder"), "{why}");
        assert!(c.removed.is_empty());
        assert_eq!(c.count, 2);
        assert_eq!(fs::read(out.join("b.xml")).unwrap(), b"b.xml");
        assert!(out.join("old.xml").exists());
        assert!(out.join(MANIFEST).is_dir(), "the manifest was replaced");
        assert_eq!(
            fs::read(out.join(MANIFEST).join("inside")).unwrap(),
            b"kept"
        );
    }

    #[test]
    fn a_rename_failing_half_way_keeps_the_old_entries_and_lists_what_moved() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        build(out, &["a.xml", "old.xml"]);
        let old_line = line(out, "old.xml");
        // A folder with a file in it where an output goes: renaming onto it fails.
        fs::create_dir(out.join("x.html")).unwrap();
        fs::write(out.join("x.html/mine"), b"mine").unwrap();
        let s = Staging::new(out).unwrap();
        s.add_bytes("a.xml", b"a.xml").unwrap();
        s.add_bytes("deep/d.html", b"d").unwrap();
        s.add_bytes("x.html", b"x").unwrap();
        let e = s.commit().unwrap_err().to_string();
        assert!(e.contains("x.html"), "{e}");
        assert_eq!(fs::read(out.join("deep/d.html")).unwrap(), b"d");
        assert!(out.join("old.xml").exists());
        assert_eq!(listed(out), ["a.xml", "deep/d.html", "old.xml"]);
        let text = fs::read_to_string(out.join(MANIFEST)).unwrap();
        assert!(text.contains(&format!("{old_line}\n")), "{text}");
        assert!(
            text.contains(&format!("{}\n", line(out, "deep/d.html"))),
            "{text}"
        );
        // Once the way is clear, the next build prunes what it no longer writes.
        fs::remove_dir_all(out.join("x.html")).unwrap();
        let c = build(out, &["a.xml"]);
        assert_eq!(
            c.removed,
            [PathBuf::from("deep/d.html"), PathBuf::from("old.xml")]
        );
    }
}
