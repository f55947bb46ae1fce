//! Atomic output: every file goes to a temporary file next to its final place, and all of them
//! are renamed into place only when every output of the build succeeded.
//!
//! The output folder is often shared with other tools (a static site's `public/`), so stale
//! outputs are found through a manifest of what the previous build wrote, never by listing the
//! folder: a file that no build listed is never removed.

use std::collections::{BTreeSet, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

/// The file in the output folder that lists what the last successful build wrote: one path
/// relative to the folder per line, `/`-separated, sorted.
pub const MANIFEST: &str = ".techshack-outputs";

/// What `Staging::commit` did.
#[derive(Debug, Default)]
pub struct Committed {
    /// Outputs of the build, the unchanged ones included and the manifest not.
    pub count: usize,
    /// Files an earlier build wrote (listed in its manifest) that this one no longer writes,
    /// now removed, sorted.
    pub removed: Vec<PathBuf>,
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

    /// The output folder.
    pub fn root(&self) -> &Path {
        &self.root
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
        if holds(dest, bytes) {
            return Ok(());
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
    /// the previous build lists and this build did not write, and the folders they leave
    /// empty. The manifest is rewritten only once every output is in place, so a failure
    /// before that keeps the old one and removes nothing.
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
        let mut iter = files.into_iter();
        while let Some((rel, tmp)) = iter.next() {
            let dest = self.root.join(&rel);
            if let Err(e) = fs::rename(&tmp, &dest) {
                let _ = fs::remove_file(&tmp);
                for (_, t) in iter {
                    let _ = fs::remove_file(t);
                }
                self.lock().done = true;
                return Err(e)
                    .with_context(|| format!("moving the new {} into place", dest.display()));
            }
        }
        self.lock().done = true;
        let outputs = std::mem::take(&mut self.lock().paths);
        let stale: Vec<PathBuf> = old.difference(&outputs).cloned().collect();
        if stale.is_empty() {
            self.write_manifest(outputs.iter())?;
            return Ok(Committed {
                count,
                removed: Vec::new(),
            });
        }
        // Listed before any is removed: should the removal stop half-way, the next build still
        // knows them.
        self.write_manifest(outputs.iter().chain(&stale))?;
        let pruned = prune(&self.root, &stale, &outputs, remove);
        let kept = pruned.failed.iter().map(|(p, _)| p);
        self.write_manifest(outputs.iter().chain(kept))?;
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
            removed: pruned.removed,
        })
    }

    /// Replaces the manifest with `paths` (sorted, without duplicates), through a temporary
    /// file like every output, unless it already lists exactly them.
    fn write_manifest<'a>(&self, paths: impl Iterator<Item = &'a PathBuf>) -> Result<()> {
        let paths: BTreeSet<&PathBuf> = paths.collect();
        let mut bytes = Vec::new();
        for p in paths {
            if let Some(line) = manifest_line(p) {
                bytes.extend_from_slice(line.as_bytes());
                bytes.push(b'\n');
            }
        }
        let dest = self.root.join(MANIFEST);
        if holds(&dest, &bytes) {
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
        if dir.is_dir() {
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

/// The manifest line of an output path, or `None` for a path that a line cannot hold (not
/// UTF-8, or with a line break in a name): such an output is simply never pruned.
fn manifest_line(rel: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str()?),
            _ => return None,
        }
    }
    let line = parts.join("/");
    let ok = !line.is_empty() && !line.contains(['\n', '\r']) && parse_line(&line).is_some();
    ok.then_some(line)
}

/// The paths the manifest in `out` lists. A missing, unreadable or linked manifest lists
/// nothing: nothing is pruned rather than something wrongly.
fn read_manifest(out: &Path) -> BTreeSet<PathBuf> {
    let path = out.join(MANIFEST);
    let is_file = fs::symlink_metadata(&path).is_ok_and(|m| m.is_file());
    match is_file.then(|| fs::read(&path)) {
        Some(Ok(bytes)) => parse_manifest(&bytes),
        _ => BTreeSet::new(),
    }
}

/// The valid lines of a manifest. The file sits in a folder others write to, so each line is
/// checked as untrusted: a line that is not a plain relative path is ignored.
fn parse_manifest(bytes: &[u8]) -> BTreeSet<PathBuf> {
    bytes
        .split(|&b| b == b'\n')
        .filter_map(|line| std::str::from_utf8(line).ok())
        .filter_map(|line| parse_line(line.strip_suffix('\r').unwrap_or(line)))
        .collect()
}

/// `line` as a relative path of normal names (no `.`, `..`, empty name, root or NUL), other
/// than the manifest itself.
fn parse_line(line: &str) -> Option<PathBuf> {
    let plain =
        |name: &str| !name.is_empty() && name != "." && name != ".." && !name.contains('\0');
    if !line.split('/').all(plain) || line == MANIFEST {
        return None;
    }
    Some(PathBuf::from(line))
}

#[derive(Debug, Default)]
struct Pruned {
    removed: Vec<PathBuf>,
    failed: Vec<(PathBuf, io::Error)>,
}

/// Removes the `stale` files under `root`, then the folders that this left empty, never
/// `root` itself. A stale path is left alone when its folder resolves outside `root` (a
/// link), when it is no longer a regular file (a folder, a link), or when it is one of the
/// `outputs` under another name (a file system that ignores case).
fn prune(
    root: &Path,
    stale: &[PathBuf],
    outputs: &BTreeSet<PathBuf>,
    remove: &dyn Fn(&Path) -> io::Result<()>,
) -> Pruned {
    let mut pruned = Pruned::default();
    let Ok(real_root) = fs::canonicalize(root) else {
        return pruned;
    };
    let mut output_ids: Option<HashSet<(u64, u64)>> = None;
    let mut emptied: BTreeSet<PathBuf> = BTreeSet::new();
    for rel in stale {
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

/// Whether `path` is a regular file (not a link) whose bytes are `bytes`.
fn holds(path: &Path, bytes: &[u8]) -> bool {
    use std::io::Read;
    let same_size =
        fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.len() == bytes.len() as u64);
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

    fn lines(set: &BTreeSet<PathBuf>) -> Vec<String> {
        set.iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect()
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
        assert_eq!(
            manifest_line(Path::new("weekly/2019-01.html")).as_deref(),
            Some("weekly/2019-01.html")
        );
        // A line break in a name would make two lines of one path.
        assert_eq!(manifest_line(Path::new("weekly/a\nindex.html")), None);
        assert_eq!(manifest_line(Path::new("a\r")), None);
        assert_eq!(manifest_line(Path::new(MANIFEST)), None);
        for p in ["weekly/x.html", "a.xml", "archive/items.rss-3.xml"] {
            let line = manifest_line(Path::new(p)).unwrap();
            assert_eq!(lines(&parse_manifest(line.as_bytes())), [p], "round trip");
        }
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
        build(dir.path(), &["b.xml", "archive/a.xml", "a.xml"]);
        assert_eq!(
            fs::read_to_string(dir.path().join(MANIFEST)).unwrap(),
            "a.xml\narchive/a.xml\nb.xml\n"
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
        assert_eq!(
            fs::read_to_string(out.join(MANIFEST)).unwrap(),
            "a.xml\nw/p.html\n"
        );
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
                "../outside.txt\n{}\nlink/x.html\nlink/../y.html\nlink\na.xml\n",
                abs.display()
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
        fs::write(
            out.join(MANIFEST),
            "alias/old.html\nalias/new.html\nreal/new.html\n",
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
        assert_eq!(fs::read_to_string(out.join(MANIFEST)).unwrap(), "a.xml\n");
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
        assert_eq!(
            fs::read_to_string(out.join(MANIFEST)).unwrap(),
            "a.xml\nstuck.xml\n"
        );
        // Once it can be removed, the next build does.
        assert_eq!(build(out, &["a.xml"]).removed, [PathBuf::from("stuck.xml")]);
        assert_eq!(fs::read_to_string(out.join(MANIFEST)).unwrap(), "a.xml\n");
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
}
