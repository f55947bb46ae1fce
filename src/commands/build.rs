//! `techshack build`: every feed, archive and web page, written atomically.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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

    let built = match stream_build(ctx, &config, &out, now, args.drafts)? {
        Some(built) => built,
        None => {
            ctx.info(format!(
                "no published issue in {}: no feed written to {}",
                config.issues.dir.display(),
                out.display()
            ));
            return Ok(Exit::Ok);
        }
    };
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
        built.pages - 1,
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

/// An issue whose page waits for its links to other issues, and the page's body.
type Page = (Arc<Issue>, Option<String>);

/// Pages rendered at once, in parallel, once their links are known.
const PAGES_AT_ONCE: usize = 8;

/// Writes the pages of `ready` (emptying it), keeping the first error.
fn write_pages(
    pages: Option<&emit::web::Pages<'_>>,
    staging: Option<&Staging>,
    ready: &mut Vec<emit::nav::Ready<Page>>,
    error: &mut Option<anyhow::Error>,
) {
    use rayon::prelude::*;
    let batch = std::mem::take(ready);
    let (Some(pages), Some(staging), None) = (pages, staging, &error) else {
        return;
    };
    let failed = batch.par_iter().find_map_first(|r| {
        let (issue, body) = &r.payload;
        let body = body.as_deref().unwrap_or(&issue.html);
        pages
            .write_page(issue, body, &r.nav, |rel, bytes| {
                staging.add_bytes(rel, bytes)
            })
            .err()
    });
    *error = failed;
}

/// Builds every output while the issues are parsed, oldest first (see
/// [`crate::issue::stream`]): each issue's page as soon as it is rendered, each archive page
/// as soon as it fills, the subscription documents and the index at the end; all of them
/// or, on any error, none. `None` when no issue is published (nothing is written).
fn stream_build(
    ctx: &Ctx,
    config: &Config,
    out: &Path,
    now: DateTime<FixedOffset>,
    drafts: bool,
) -> Result<Option<Built>> {
    // The plain text is for email; the pages skip it unless a user template reads it.
    let opts = crate::issue::LoadOptions {
        text: emit::web::pages_read_text(config),
    };
    // Their errors wait for the issues' own, which are told first.
    let templates = crate::templates::Templates::load(config);
    let setup = match &templates {
        Ok(t) => Staging::new(out).and_then(|s| Ok((s, emit::web::Pages::new(config, t)?))),
        Err(e) => Err(anyhow::anyhow!("{e:#}")),
    };
    let staging = setup.as_ref().ok().map(|(s, _)| s);
    let pages = setup.as_ref().ok().map(|(_, p)| p);
    let published = AtomicUsize::new(0);
    let mut page_error = None;
    let mut feed_error = None;
    let mut feeds = emit::FeedWriter::new(config);
    let mut rows = Vec::new();
    let mut queue = pages.map(|p| p.queue::<Page>());
    let mut ready = Vec::new();
    let prepare = |issue: Issue| -> Option<(emit::web::IndexRow, Issue)> {
        if !(drafts || issue.is_published(now)) {
            return None;
        }
        published.fetch_add(1, Ordering::Relaxed);
        Some((emit::web::IndexRow::of(config, &issue), issue))
    };
    let consume = |(row, mut issue): (emit::web::IndexRow, Issue)| {
        // The feeds read neither the page's body nor the plain text: the body waits in the
        // queue of pages, beside the issue, only until the page is written.
        let body = issue.page_html.take();
        if !opts.text {
            issue.text = None;
            for item in &mut issue.items {
                item.text = None;
            }
        }
        let issue = Arc::new(issue);
        if let (Some(staging), None) = (staging, &feed_error) {
            if let Err(e) = feeds.push(issue.clone(), staging) {
                feed_error = Some(e);
            }
        }
        if let Some(q) = &mut queue {
            ready.extend(q.push(row.placed(), (issue, body)));
            if ready.len() >= PAGES_AT_ONCE {
                write_pages(pages, staging, &mut ready, &mut page_error);
            }
        }
        rows.push(row);
    };
    let diagnostics = crate::issue::stream(config, opts, prepare, consume)?;
    if let Some(q) = queue {
        ready.extend(q.finish());
        write_pages(pages, staging, &mut ready, &mut page_error);
    }
    if diagnostics.iter().any(|d| d.is_error()) {
        return Err(Diagnostics(diagnostics).into());
    }
    if !ctx.quiet {
        for d in &diagnostics {
            eprintln!("{d}");
        }
    }
    if published.load(Ordering::Relaxed) == 0 {
        return Ok(None);
    }
    let (staging, pages) = setup?;
    if let Some(e) = feed_error {
        return Err(e);
    }
    let feeds = feeds.finish(&staging)?;
    if let Some(e) = page_error {
        return Err(e);
    }
    let count = rows.len();
    pages.write_index(rows, |rel, bytes| staging.add_bytes(rel, bytes))?;
    let committed = staging.commit()?;
    Ok(Some(Built {
        count: committed.count,
        feeds,
        pages: count + 1,
        updated: committed.updated,
        removed: committed.removed,
        changed: committed.changed,
        unrecorded: committed.unrecorded,
        manifest_unreadable: committed.manifest_unreadable,
    }))
}
