//! The issues one at a time, oldest first, for a build whose memory must not grow with the
//! archive: each file is parsed, handed on and dropped, a few dozen at a time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use super::{
    dates_of, decode, front_matter, read_and_parse, settle_diagnostics, slug_of, Date, Diags,
    LoadOptions, StaticDir,
};
use crate::config::Config;
use crate::diag::Diagnostic;
use crate::model::Issue;

/// How many files are parsed at once: the next batch is parsed while the last is consumed.
const BATCH: usize = 32;

/// Parses every issue of `config.issues.dir`, as [`super::load_all_with`] does, and hands
/// each to `prepare` (on any thread, in any order) and what that returns to `consume` (on
/// this thread, oldest issue first: by date, then slug). Returns the diagnostics that
/// `load_all_with` would, in the same order.
///
/// Once a file has an error no more issues are handed on (the build fails anyway); the
/// remaining files are still parsed for their diagnostics. An issue whose slug or id another
/// file already has may be handed on before its error is known, at the end.
pub fn stream<T, P, C>(
    config: &Config,
    opts: LoadOptions,
    prepare: P,
    mut consume: C,
) -> anyhow::Result<Vec<Diagnostic>>
where
    T: Send,
    P: Fn(Issue) -> Option<T> + Sync,
    C: FnMut(T) + Send,
{
    let paths = super::issue_files(&config.issues.dir)?;
    let statics = StaticDir::of(config);
    let real_dir = std::fs::canonicalize(&config.issues.dir).ok();
    let real_dir = real_dir.as_deref();
    // The date order, from the front matter alone; files it cannot date come first, and
    // fail when parsed.
    let keys: Vec<Option<(Date, String)>> = paths
        .par_iter()
        .map(|p| order_key(config, real_dir, p))
        .collect();
    let mut order: Vec<usize> = (0..paths.len()).collect();
    order.sort_by(|&a, &b| keys[a].cmp(&keys[b]).then(a.cmp(&b)));
    drop(keys);

    let failed = AtomicBool::new(false);
    // What each file leaves behind, by its place in file name order.
    let mut left: Vec<Option<Left>> = (0..paths.len()).map(|_| None).collect();
    let parse_batch = |batch: &[usize]| -> Vec<(usize, Left, Option<T>)> {
        batch
            .par_iter()
            .map(|&k| {
                let mut p = read_and_parse(config, &statics, opts, real_dir, &paths[k]);
                if p.diagnostics.iter().any(Diagnostic::is_error) {
                    failed.store(true, Ordering::Relaxed);
                }
                let named = p.issue.as_ref().map(|i| Named {
                    path: i.path.clone(),
                    slug: i.slug.clone(),
                    id: i.id.clone(),
                    slug_at: p.slug_at,
                    id_at: p.id_at,
                });
                let t = match p.issue.take() {
                    Some(issue) if !failed.load(Ordering::Relaxed) => prepare(issue),
                    _ => None,
                };
                let rest = Left {
                    diagnostics: std::mem::take(&mut p.diagnostics),
                    unchecked_images: p.unchecked_images,
                    named,
                };
                (k, rest, t)
            })
            .collect()
    };
    let mut hand_on = |done: Vec<(usize, Left, Option<T>)>, left: &mut Vec<Option<Left>>| {
        for (k, rest, t) in done {
            left[k] = Some(rest);
            if let Some(t) = t {
                if !failed.load(Ordering::Relaxed) {
                    consume(t);
                }
            }
        }
    };
    let mut pending = Vec::new();
    for batch in order.chunks(BATCH) {
        let (done, ()) = rayon::join(
            || parse_batch(batch),
            || hand_on(std::mem::take(&mut pending), &mut left),
        );
        pending = done;
    }
    hand_on(pending, &mut left);

    let mut diagnostics = Vec::new();
    let mut admit = Admission::default();
    let mut unchecked = 0;
    for rest in left.into_iter().flatten() {
        diagnostics.extend(rest.diagnostics);
        unchecked += rest.unchecked_images;
        if let Some(named) = rest.named {
            admit.admit(&mut diagnostics, named);
        }
    }
    settle_diagnostics(config, &mut diagnostics, unchecked);
    Ok(diagnostics)
}

/// What the end of [`stream`] needs of a file once its issue has gone.
struct Left {
    diagnostics: Vec<Diagnostic>,
    unchecked_images: usize,
    named: Option<Named>,
}

/// How much of a file [`order_key`] reads first. Front matter almost always ends well within
/// it; only a file whose front matter does not is read whole.
const HEAD: usize = 4096;

/// Where a file's issue goes in the date order: its date and slug as [`super::parse`] reads
/// them, or `None` when it reads none (the file then has an error).
fn order_key(config: &Config, real_dir: Option<&Path>, path: &Path) -> Option<(Date, String)> {
    use std::io::Read;
    // A file that will be refused is never opened: it may be a FIFO, or lead out of the folder.
    if super::refusal(path, real_dir).is_some() {
        return None;
    }
    let mut file = std::fs::File::open(path).ok()?;
    let mut bytes = Vec::with_capacity(HEAD);
    (&mut file).take(HEAD as u64).read_to_end(&mut bytes).ok()?;
    if bytes.len() == HEAD {
        // Whole lines only: a line break never falls inside a UTF-8 sequence.
        if let Some(end) = memchr::memrchr(b'\n', &bytes) {
            if let Some(key) = key_of(config, path, &bytes[..=end], false) {
                return key;
            }
        }
        file.read_to_end(&mut bytes).ok()?;
    }
    key_of(config, path, &bytes, true).flatten()
}

/// The order key of a file from its first `bytes` (all of them when `whole`): `None` when
/// they are not the whole file and the front matter does not end before their end, so the
/// rest could change it.
fn key_of(
    config: &Config,
    path: &Path,
    bytes: &[u8],
    whole: bool,
) -> Option<Option<(Date, String)>> {
    // Bytes that are not UTF-8 are not in the whole file either.
    let Ok(text) = decode(path, bytes) else {
        return Some(None);
    };
    let split = front_matter::split(text);
    if !whole && split.body_offset >= text.len() {
        return None;
    }
    if split.errors.iter().any(|e| e.fatal) {
        return Some(None);
    }
    let mut d = Diags {
        path,
        text,
        list: Vec::new(),
    };
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let slug = slug_of(&mut d, &split.meta, stem);
    let (date, _) = dates_of(&mut d, config, &split.meta, stem);
    Some(date.map(|date| (date, slug)))
}

/// What makes an issue one of its own: its slug and id, and where they are written.
pub(super) struct Named {
    pub path: PathBuf,
    pub slug: String,
    pub id: String,
    pub slug_at: Option<(usize, usize)>,
    pub id_at: Option<(usize, usize)>,
}

/// The slugs and ids taken so far, by the issues in file name order.
#[derive(Default)]
pub(super) struct Admission {
    slugs: HashMap<String, PathBuf>,
    ids: HashMap<String, PathBuf>,
}

impl Admission {
    /// Whether the issue keeps its slug and id; if not, the error goes to `diagnostics`.
    pub(super) fn admit(&mut self, diagnostics: &mut Vec<Diagnostic>, n: Named) -> bool {
        if let Some(other) = self.slugs.get(&n.slug) {
            diagnostics.push(Diagnostic::error(
                &n.path,
                n.slug_at,
                format!(
                    "slug `{}` is also the slug of {}: rename one of the files or give one a `slug:` of its own",
                    n.slug,
                    other.display()
                ),
            ));
            return false;
        }
        if let Some(other) = self.ids.get(&n.id) {
            diagnostics.push(Diagnostic::error(
                &n.path,
                n.id_at,
                format!(
                    "id `{}` is also the id of {}: every issue needs an id of its own",
                    n.id,
                    other.display()
                ),
            ));
            return false;
        }
        self.slugs.insert(n.slug, n.path.clone());
        self.ids.insert(n.id, n.path);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_date_order_reads_past_the_first_bytes_only_when_the_front_matter_does() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::parse(
            &format!(
                "[site]\ntitle = \"S\"\nbase_url = \"https://example.com\"\n[issues]\ndir = {:?}\n",
                dir.path()
            ),
            Path::new("t.toml"),
        )
        .unwrap();
        let key = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            order_key(&config, None, &p).map(|(d, s)| (d.date_naive().to_string(), s))
        };
        let long = "x".repeat(2 * HEAD);
        let day = |d: &str, s: &str| Some((d.to_string(), s.to_string()));
        // The date comes after the first bytes: in YAML, TOML and Pelican front matter.
        assert_eq!(
            key(
                "2019-01-01-a.md",
                &format!("---\ndescription: {long}\ndate: 2019-03-04\n---\nBody\n")
            ),
            day("2019-03-04", "2019-01-01-a")
        );
        assert_eq!(
            key("2019-01-01-b.md", &format!("+++\ndescription = \"{long}\"\ndate = \"2019-03-05\"\nslug = \"b\"\n+++\nBody\n")),
            day("2019-03-05", "b")
        );
        assert_eq!(
            key(
                "2019-01-01-c.md",
                &format!("Title: C\nSummary: {long}\nDate: 2019-03-06\n\nBody\n")
            ),
            day("2019-03-06", "2019-01-01-c")
        );
        // Front matter that ends early decides, whatever the long body says.
        assert_eq!(
            key(
                "2019-01-01-d.md",
                &format!("---\ndate: 2019-03-07\n---\n{long}\n---\ndate: 2020-01-01\n---\n")
            ),
            day("2019-03-07", "2019-01-01-d")
        );
        // Never closed past the first bytes: no date, as when the whole file is read.
        assert_eq!(
            key(
                "2019-01-01-e.md",
                &format!("---\ndate: 2019-03-08\n{long}\n")
            ),
            None
        );
        // Not UTF-8 after the first bytes: dated still; the parse reports the error.
        let lines = "x\n".repeat(HEAD);
        let mut bad = format!("---\ndate: 2019-03-09\n---\n{lines}").into_bytes();
        bad.push(0xff);
        let p = dir.path().join("2019-01-01-f.md");
        std::fs::write(&p, &bad).unwrap();
        assert!(order_key(&config, None, &p).is_some());
    }

    #[test]
    fn issues_come_oldest_first_with_the_diagnostics_of_load_all() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        // File name order is not date order; the front matter's date wins.
        write("a.md", "---\ntitle: A\ndate: 2019-03-01\n---\nBody of a.\n");
        write(
            "b.md",
            "---\ntitle: B\ndate: 2019-01-01\n---\n## One\n\nNo link.\n",
        );
        write(
            "c.md",
            "---\ntitle: C\ndate: 2019-02-01\nslug: b\n---\nSame slug as b.\n",
        );
        write(
            "d.md",
            "---\ntitle: D\ndate: 2019-02-01\n---\nSame date as c.\n",
        );
        write("e.md", "---\ntitle: E\n---\nNo date.\n");
        let config = Config::parse(
            &format!(
                "[site]\ntitle = \"S\"\nbase_url = \"https://example.com\"\n[issues]\ndir = {:?}\n",
                dir.path()
            ),
            Path::new("t.toml"),
        )
        .unwrap();
        let mut seen = Vec::new();
        let diagnostics = stream(
            &config,
            LoadOptions::default(),
            |i| Some(i.slug),
            |slug| seen.push(slug),
        )
        .unwrap();
        let loaded = super::super::load_all(&config).unwrap();
        let text = |d: &[Diagnostic]| d.iter().map(|d| d.to_string()).collect::<Vec<_>>();
        assert_eq!(text(&diagnostics), text(&loaded.diagnostics));
        assert!(diagnostics.iter().any(|d| d.is_error()), "{diagnostics:?}");
        // The first error stops the handing on: `e.md` fails in the first batch.
        assert!(seen.is_empty(), "{seen:?}");

        std::fs::remove_file(dir.path().join("e.md")).unwrap();
        std::fs::remove_file(dir.path().join("c.md")).unwrap();
        let mut seen = Vec::new();
        let diagnostics = stream(
            &config,
            LoadOptions::default(),
            |i| Some(i.slug),
            |slug| seen.push(slug),
        )
        .unwrap();
        let loaded = super::super::load_all(&config).unwrap();
        assert_eq!(text(&diagnostics), text(&loaded.diagnostics));
        assert!(!diagnostics.iter().any(|d| d.is_error()), "{diagnostics:?}");
        let order: Vec<_> = loaded.issues.iter().map(|i| i.slug.clone()).collect();
        assert_eq!(seen, order);
        assert_eq!(seen, ["b", "d", "a"]);
    }
}
