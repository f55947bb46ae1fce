//! `techshack build`: every feed, archive and web page, written atomically.

use std::path::Path;

use anyhow::Result;
use chrono::{DateTime, FixedOffset};

use super::Ctx;
use crate::config::Config;
use crate::diag::{self, Diagnostics, Exit};
use crate::emit::{self, Staging};
use crate::model::Issue;

/// A hidden clock for tests and reproducible builds (see [`crate::secrets::Clock`]).
pub use crate::secrets::NOW_ENV;

pub fn run(ctx: &Ctx, args: crate::cli::BuildArgs) -> Result<Exit> {
    let mut config = ctx.config.clone();
    // Before loading: URLs are made absolute while issues are parsed.
    if let Some(u) = &args.base_url {
        config.set_base_url(u)?;
    }
    let out = args.out.clone().unwrap_or_else(|| config.feeds.out.clone());
    let now = ctx.clock.now(&config.site.timezone)?;

    // The plain text is for email; the pages skip it unless a user template reads it.
    let opts = crate::issue::LoadOptions {
        text: emit::web::pages_read_text(&config),
    };
    let loaded = crate::issue::load_all_with(&config, opts)?;
    if loaded.diagnostics.iter().any(|d| d.is_error()) {
        return Err(Diagnostics(loaded.diagnostics).into());
    }
    if !ctx.quiet {
        for d in &loaded.diagnostics {
            eprintln!("{d}");
        }
    }

    let published = select(&loaded.issues, now, args.drafts);
    if published.is_empty() {
        ctx.info(format!(
            "no published issue in {}: no feed written to {}",
            config.issues.dir.display(),
            out.display()
        ));
        return Ok(Exit::Ok);
    }
    let built = write_all(&config, &published, &out)?;
    let removed = match built.removed.len() {
        0 => String::new(),
        1 => ", removed 1 stale file".to_string(),
        n => format!(", removed {n} stale files"),
    };
    ctx.info(format!(
        "wrote {} files to {}: {} feeds, {} archive pages, {} web pages ({} issues, {} articles in the main feeds){removed}",
        built.count,
        out.display(),
        built.feeds.documents,
        built.feeds.archives,
        built.pages,
        published.len(),
        built.feeds.items
    ));
    if let Some(why) = &built.manifest_unreadable {
        diag::warning(why);
    }
    if ctx.verbose && !ctx.quiet {
        for rel in &built.updated {
            eprintln!("updated {}", out.join(rel).display());
        }
        for rel in &built.removed {
            eprintln!("removed {}", out.join(rel).display());
        }
        for rel in &built.changed {
            eprintln!(
                "kept {}: it changed since build wrote it",
                out.join(rel).display()
            );
        }
        for rel in &built.unrecorded {
            eprintln!(
                "kept {}: listed by an older version without its size and time",
                out.join(rel).display()
            );
        }
    }
    Ok(Exit::Ok)
}

/// What a build wrote.
#[derive(Debug)]
pub struct Built {
    /// Files written in all.
    pub count: usize,
    pub feeds: emit::Written,
    /// Web pages: one per issue and the index.
    pub pages: usize,
    /// Outputs whose file at that path held other bytes before (relative to `out`), sorted.
    pub updated: Vec<std::path::PathBuf>,
    /// Stale files removed: written by the previous build, not by this one (relative to `out`).
    pub removed: Vec<std::path::PathBuf>,
    /// Stale files kept because they changed since build wrote them.
    pub changed: Vec<std::path::PathBuf>,
    /// Stale files kept because the manifest gave no size and time for them.
    pub unrecorded: Vec<std::path::PathBuf>,
    /// Why the manifest could not be read (nothing was pruned, the manifest was kept).
    pub manifest_unreadable: Option<String>,
}

/// Writes every output of the published issues (oldest first) under `out`: all of them or,
/// on any error, none (the previous files stay as they were). Once all are in place, the files
/// the previous build wrote, this one did not, and nobody changed since are removed (see
/// `emit::MANIFEST`).
pub fn write_all(config: &Config, published: &[&Issue], out: &Path) -> Result<Built> {
    // Templates first: a broken one fails the build before anything is staged.
    let templates = crate::templates::Templates::load(config)?;
    let staging = Staging::new(out)?;
    let feeds = emit::write_feeds(config, published, &staging)?;
    let pages = emit::web::write(config, &templates, published, |rel, bytes| {
        staging.add_bytes(rel, bytes)
    })?;
    let committed = staging.commit()?;
    Ok(Built {
        count: committed.count,
        feeds,
        pages,
        updated: committed.updated,
        removed: committed.removed,
        changed: committed.changed,
        unrecorded: committed.unrecorded,
        manifest_unreadable: committed.manifest_unreadable,
    })
}

/// The issues that appear in outputs: not drafts and not dated after `now`, unless `drafts`.
pub fn select(issues: &[Issue], now: DateTime<FixedOffset>, drafts: bool) -> Vec<&Issue> {
    issues
        .iter()
        .filter(|i| drafts || i.is_published(now))
        .collect()
}
