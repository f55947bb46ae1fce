//! `send --dry-run DIR`: one `.eml` file per active subscriber, nothing sent or recorded.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::commands::{output, Ctx};
use crate::diag::{self, Exit};
use crate::mail::compose::{Composer, Recipient};
use crate::store::{Store, SubscriberStatus};

pub(super) fn dry_run(ctx: &Ctx, composer: &Composer, slug: &str, dir: &Path) -> Result<Exit> {
    if output::is_stdout(dir) {
        bail!("--dry-run takes a folder to write one .eml file per subscriber in; `-` is none");
    }
    let store = Store::open_config(&ctx.config.state)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let subs = store.subscribers(Some(SubscriberStatus::Active))?;
    let mut failed = 0;
    for s in &subs {
        let built = composer.wire(&Recipient {
            address: s.address.clone(),
            name: s.name.clone(),
        });
        match built {
            Ok((_, bytes)) => output::write(&dir.join(eml_name(slug, &s.address)), &bytes)?,
            Err(e) => {
                // One address the message cannot go to (an IP literal) is that row's problem.
                diag::error(format_args!("{slug}: {}: {e:#}", s.address.as_str()));
                failed += 1;
            }
        }
    }
    ctx.info(format!(
        "{slug}: wrote {} message(s) to {} (nothing sent, nothing recorded)",
        subs.len() - failed,
        dir.display()
    ));
    if failed > 0 {
        diag::error(format_args!(
            "{slug}: {failed} subscriber(s) could not be given a message (see above)"
        ));
        return Ok(Exit::Error);
    }
    Ok(Exit::Ok)
}

/// `2019-01-ann_example.org.eml`: one file per address, and the address can be read back.
/// Lowercase ASCII letters, digits, `.`, `-` and `+` stand for themselves and `_` for the
/// `@`; every other byte (an upper-case letter, so that names differ on a file system that
/// ignores case too; `_`, `%`, `=`, `&`, non-ASCII) is written `%XX`.
pub(super) fn eml_name(slug: &str, address: &str) -> PathBuf {
    let mut a = String::with_capacity(address.len());
    for b in address.bytes() {
        match b {
            b'@' => a.push('_'),
            b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'+' => a.push(char::from(b)),
            _ => a.push_str(&format!("%{b:02X}")),
        }
    }
    PathBuf::from(format!("{slug}-{a}.eml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The address a file name of [`eml_name`] stands for.
    fn address_of(slug: &str, name: &str) -> String {
        let enc = name
            .strip_prefix(&format!("{slug}-"))
            .and_then(|n| n.strip_suffix(".eml"))
            .unwrap();
        let mut out = Vec::new();
        let b = enc.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'_' => out.push(b'@'),
                b'%' => {
                    out.push(u8::from_str_radix(&enc[i + 1..i + 3], 16).unwrap());
                    i += 2;
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn dry_run_files_are_named_safely_and_reversibly_per_address() {
        assert_eq!(
            eml_name("2019-01", "ann+x@example.org"),
            PathBuf::from("2019-01-ann+x_example.org.eml")
        );
        assert_eq!(
            eml_name("2019-01", "o'brien@example.org"),
            PathBuf::from("2019-01-o%27brien_example.org.eml")
        );
        let addrs = [
            "a=b@x.org",
            "a_b@x.org",
            "a&b@x.org",
            "a%5Fb@x.org",
            "a@b@x.org",
            "A@x.org",
            "a@x.org",
            "josé@bücher.example",
            "jose@xn--bcher-kva.example",
            "用户@例子.广告",
            "a/b@x.org",
            "..@x.org",
        ];
        let mut names = std::collections::HashSet::new();
        for a in addrs {
            let n = eml_name("i", a).to_string_lossy().into_owned();
            assert!(
                n.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b".-+_%".contains(&c)),
                "{n}"
            );
            assert!(names.insert(n.to_ascii_lowercase()), "{a} collides: {n}");
            assert_eq!(address_of("i", &n), a);
        }
    }
}
