//! Which files of the issues folder are issues, and which of those may be read: only regular
//! files that resolve inside the folder.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// Whether a file is an issue: `*.md` or `*.markdown`, not hidden (editors and macOS leave
/// `.#name.md` and `._name.md` files next to real ones), not a folder. Links and special files
/// with such a name are issues too, so that loading them is refused with an error
/// ([`refusal`]) rather than skipped without a word.
pub fn is_issue_file(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .and_then(|n| n.to_str())
        .map_or(true, |n| n.starts_with('.'));
    !hidden
        && !path.is_dir()
        && matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("md" | "markdown")
        )
}

/// The issue files of a folder, sorted by path.
pub fn issue_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).with_context(|| {
        format!(
            "reading the issues folder {}: check issues.dir in the config or pass --issues DIR",
            dir.display()
        )
    })?;
    let mut paths = Vec::new();
    for e in entries {
        let e = e.with_context(|| format!("reading the issues folder {}", dir.display()))?;
        let p = e.path();
        if is_issue_file(&p) {
            paths.push(p);
        }
    }
    paths.sort();
    Ok(paths)
}

/// Why the issue file at `path` is not read, if it is not: only a regular file that resolves
/// inside the issues folder (`real_dir`, canonical) is. A link out of the folder would publish
/// and mail whatever it points at (`../secrets.env`), and a FIFO would hang the command.
pub(super) fn refusal(path: &Path, real_dir: Option<&Path>) -> Option<String> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => return Some(format!("cannot read the file: {e}")),
    };
    if !meta.file_type().is_symlink() {
        return (!meta.is_file()).then(|| {
            format!(
                "is {}, not a regular file: only regular files are read as issues",
                special_kind(&meta)
            )
        });
    }
    let target = match std::fs::canonicalize(path) {
        Ok(t) => t,
        Err(e) => return Some(format!("is a link that cannot be followed: {e}")),
    };
    if real_dir.is_some_and(|dir| !target.starts_with(dir)) {
        return Some(format!(
            "is a link to {}, outside the issues folder: only files inside it are read (copy the \
             file into the folder instead)",
            target.display()
        ));
    }
    match std::fs::metadata(&target) {
        Ok(m) if m.is_file() => None,
        Ok(m) => Some(format!(
            "is a link to {}, not a regular file: only regular files are read as issues",
            special_kind(&m)
        )),
        Err(e) => Some(format!("cannot read the file: {e}")),
    }
}

/// What kind of file that is not a regular file `meta` describes, in words.
fn special_kind(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a named pipe (FIFO)";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
    }
    if meta.is_dir() {
        "a folder"
    } else {
        "a special file"
    }
}
