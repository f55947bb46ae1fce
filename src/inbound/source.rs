//! Where returned mail is read from besides standard input: a Maildir (as fetchmail, getmail
//! or an MTA's `virtual` agent fill it) and an mbox file.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// The messages of a Maildir not yet handled: everything in `new/`, and the messages in `cur/`
/// without the seen flag, in name order (which is arrival order for the usual name scheme).
/// Only regular files are read: a link or a special file in a Maildir is skipped.
pub fn maildir_pending(dir: &Path) -> Result<Vec<PathBuf>> {
    for sub in ["new", "cur", "tmp"] {
        let p = dir.join(sub);
        if !p.is_dir() {
            bail!(
                "{} is not a Maildir: it has no {sub}/ folder",
                dir.display()
            );
        }
    }
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        let p = dir.join(sub);
        for e in std::fs::read_dir(&p).with_context(|| format!("cannot read {}", p.display()))? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !e.file_type()?.is_file() {
                continue;
            }
            if sub == "cur" && flags(&name).contains('S') {
                continue;
            }
            out.push(e.path());
        }
    }
    out.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(out)
}

/// The flags of a Maildir file name (`…:2,FS` → `FS`).
fn flags(name: &str) -> &str {
    name.rsplit_once(":2,").map(|(_, f)| f).unwrap_or("")
}

/// Moves a handled message to `cur/` with the seen flag added to the flags it had.
pub fn maildir_mark_seen(dir: &Path, message: &Path) -> Result<()> {
    let name = message
        .file_name()
        .context("a Maildir message has a file name")?
        .to_string_lossy()
        .into_owned();
    let (base, old) = match name.rsplit_once(":2,") {
        Some((b, f)) => (b.to_string(), f.to_string()),
        None => (name.clone(), String::new()),
    };
    let mut f: Vec<char> = old.chars().filter(|c| c.is_ascii_alphabetic()).collect();
    if !f.contains(&'S') {
        f.push('S');
    }
    f.sort_unstable();
    f.dedup();
    let target = dir
        .join("cur")
        .join(format!("{base}:2,{}", f.into_iter().collect::<String>()));
    std::fs::rename(message, &target)
        .with_context(|| format!("cannot move {} to {}", message.display(), target.display()))
}

/// Splits an mbox file into its messages. A message starts at a line beginning with `From `
/// at the start of the file or after an empty line; `>From ` lines (mboxrd quoting) lose one
/// `>`. The separator line itself is not part of the message.
pub fn mbox_messages(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut cur: Option<Vec<u8>> = None;
    let mut prev_blank = true;
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        if prev_blank && line.starts_with(b"From ") {
            if let Some(mut m) = cur.take() {
                trim_separator_blank(&mut m);
                out.push(m);
            }
            cur = Some(Vec::new());
            prev_blank = false;
            continue;
        }
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        prev_blank = content.is_empty();
        let Some(m) = cur.as_mut() else { continue };
        let unquoted = {
            let n = line.iter().take_while(|&&b| b == b'>').count();
            n > 0 && line[n..].starts_with(b"From ")
        };
        m.extend_from_slice(if unquoted { &line[1..] } else { line });
    }
    if let Some(mut m) = cur {
        trim_separator_blank(&mut m);
        out.push(m);
    }
    out.retain(|m| !m.is_empty());
    out
}

/// The empty line before the next `From ` belongs to the mbox format, not to the message.
fn trim_separator_blank(m: &mut Vec<u8>) {
    if m.ends_with(b"\r\n\r\n") {
        m.truncate(m.len() - 2);
    } else if m.ends_with(b"\n\n") {
        m.truncate(m.len() - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maildir(root: &Path) -> PathBuf {
        let d = root.join("Maildir");
        for s in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(d.join(s)).unwrap();
        }
        d
    }

    #[test]
    fn pending_messages_and_marking_them_seen() {
        let t = tempfile::tempdir().unwrap();
        let d = maildir(t.path());
        std::fs::write(d.join("new/2.b"), "b").unwrap();
        std::fs::write(d.join("new/1.a"), "a").unwrap();
        std::fs::write(d.join("cur/0.c:2,F"), "c").unwrap();
        std::fs::write(d.join("cur/0.d:2,RS"), "d").unwrap();
        std::fs::write(d.join("new/.hidden"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.join("new/3.link")).unwrap();
        let p = maildir_pending(&d).unwrap();
        let names: Vec<_> = p
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, ["0.c:2,F", "1.a", "2.b"]);
        for m in &p {
            maildir_mark_seen(&d, m).unwrap();
        }
        assert!(maildir_pending(&d).unwrap().is_empty());
        assert!(d.join("cur/0.c:2,FS").is_file());
        assert!(d.join("cur/1.a:2,S").is_file());
        assert!(
            d.join("new/3.link").is_symlink(),
            "a link is left where it is"
        );
    }

    #[test]
    fn a_folder_that_is_not_a_maildir_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        let e = maildir_pending(t.path()).unwrap_err().to_string();
        assert!(e.contains("is not a Maildir"), "{e}");
    }

    #[test]
    fn mbox_is_split_at_from_lines_after_blank_lines() {
        let mbox = b"From a@b Tue Dec  1 10:00:00 2026\nSubject: one\n\nbody\n>From here\n\
                     From inside a paragraph is text\n\n\
                     From c@d Tue Dec  1 11:00:00 2026\r\nSubject: two\r\n\r\nx\r\n";
        let m = mbox_messages(mbox);
        assert_eq!(m.len(), 2);
        assert_eq!(
            String::from_utf8_lossy(&m[0]),
            "Subject: one\n\nbody\nFrom here\nFrom inside a paragraph is text\n"
        );
        assert_eq!(String::from_utf8_lossy(&m[1]), "Subject: two\r\n\r\nx\r\n");
        assert!(mbox_messages(b"").is_empty());
        assert!(mbox_messages(b"no separator at all\n").is_empty());
    }
}
