//! Atomic output: every file goes to a temporary file next to its final place, and all of them
//! are renamed into place only when every output of the build succeeded.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

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
/// so the previous outputs stay exactly as they were.
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
    /// the documents linking to them); returns how many outputs the build has (the unchanged
    /// ones included).
    pub fn commit(self) -> Result<usize> {
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
        Ok(count)
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
        assert_eq!(s.commit().unwrap(), 2);
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
        assert_eq!(s.commit().unwrap(), 3);
        let inode = |n: &str| fs::metadata(out.join(n)).unwrap().ino();
        let before = [inode("same.xml"), inode("grows.xml"), inode("edited.xml")];
        let s = Staging::new(&out).unwrap();
        s.add("same.xml", |w| Ok(w.write_all(b"same")?)).unwrap();
        s.add_bytes("grows.xml", b"abcd").unwrap();
        s.add_bytes("edited.xml", b"abd").unwrap();
        s.add_bytes("new.xml", b"new").unwrap();
        assert!(!out.join("new.xml").exists());
        assert_eq!(s.commit().unwrap(), 4, "the unchanged output is counted");
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
}
