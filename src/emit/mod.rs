//! One file per output format, and what they share: the plan of every feed document
//! (`plan`), entries borrowed from the model (`Entry`), and atomic output (`Staging`).
//!
//! Every document is built from data borrowed from the issues, so memory grows with the
//! entries of one document, not with the corpus.

pub mod atom;
pub mod json;
pub mod nav;
pub mod rss;
mod sitemap;
mod staging;
mod stream;
pub mod web;

use std::borrow::Cow;
use std::collections::BTreeSet;

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, FixedOffset};

use crate::config::{Config, FeedContent};
use crate::markers;
use crate::model::{Issue, Item};
pub use crate::render::feed::xml_clean;

pub use staging::{Committed, Staging, MANIFEST};
pub use stream::FeedWriter;

/// The namespace of RFC 5005 feed history (`fh:archive`).
pub const FH_NAMESPACE: &str = "http://purl.org/syndication/history/1.0";

/// What one family of documents (a subscription document and its archives) says about itself.
#[derive(Debug, Clone)]
pub struct FeedMeta {
    pub title: String,
    pub description: String,
    pub language: String,
    /// The web page the feed stands for: the archive index of the issue pages.
    pub home_url: String,
    pub author_name: String,
    pub author_email: Option<String>,
    /// `feeds.content`.
    pub content: FeedContent,
}

/// One entry of a document, borrowed from an issue or one of its items.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// Stable: the issue's id, or `{issue.id}#{anchor}` for an item.
    pub id: Cow<'a, str>,
    /// Plain text without control characters.
    pub title: Cow<'a, str>,
    /// What a reader opens: the issue page, or an item's source article.
    pub link: Cow<'a, str>,
    /// An item's place on the issue page (`page#anchor`); `None` for an issue.
    pub related: Option<String>,
    /// Sanitized HTML with absolute URLs, without control characters.
    pub html: Cow<'a, str>,
    /// Plain text: the issue's description, else the start of the HTML's text.
    pub summary: Cow<'a, str>,
    /// Whether `summary` was written by the author (not derived from the body).
    pub has_description: bool,
    pub published: DateTime<FixedOffset>,
    /// Unique within every document this entry is written to (see `Document`).
    pub updated: DateTime<FixedOffset>,
    pub tags: &'a [String],
    /// The issue's own language when it differs from the feed's.
    pub lang: Option<&'a str>,
}

/// RFC 5005 links of one document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// An archive document (`fh:archive`), as opposed to the subscription document.
    pub archive: bool,
    /// The subscription document (`rel="current"`), on archive documents.
    pub current: Option<String>,
    pub prev_archive: Option<String>,
    pub next_archive: Option<String>,
}

/// One Atom or RSS document, or a JSON Feed: entries newest first.
#[derive(Debug)]
pub struct Document<'d, 'a> {
    pub meta: &'d FeedMeta,
    /// The stable id of the feed (the same for a subscription document and its archives).
    pub feed_id: &'d str,
    /// The absolute URL this document is served at (`rel="self"`).
    pub self_url: String,
    /// The newest entry's `updated`; for an empty feed, the newest published issue's.
    pub updated: DateTime<FixedOffset>,
    pub entries: Vec<Entry<'a>>,
    pub history: History,
}

/// The format of a document, and so the writer it goes to.
pub use crate::layout::FeedFormat as Format;

/// A document to write and the path under `--out` it goes to.
#[derive(Debug)]
pub struct Job<'d, 'a> {
    pub path: String,
    pub format: Format,
    pub doc: Document<'d, 'a>,
}

/// The issues of one family of feeds.
#[cfg(test)]
#[derive(Debug)]
pub struct FeedSet<'a> {
    /// File name stem: `""` for the main feeds, else the `[[feeds.extra]]` name.
    pub name: String,
    pub meta: FeedMeta,
    /// Oldest first.
    pub issues: Vec<&'a Issue>,
}

/// How many files a build wrote, for its summary line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub documents: usize,
    pub archives: usize,
    pub issues: usize,
    pub items: usize,
}

/// Splits the published issues (oldest first) into the main feeds and every
/// `[[feeds.extra]]` subset, by the rule of [`crate::config::Feeds::extras_of`]: an issue
/// matched by an extra feed leaves the main feeds, and is in every extra feed it matches.
#[cfg(test)]
pub(crate) fn feed_sets<'a>(config: &Config, published: &[&'a Issue]) -> Vec<FeedSet<'a>> {
    let base = base_meta(config);
    let mut main = FeedSet {
        name: String::new(),
        meta: base.clone(),
        issues: Vec::new(),
    };
    let mut extras: Vec<FeedSet<'a>> = config
        .feeds
        .extra
        .iter()
        .map(|x| FeedSet {
            name: x.name.clone(),
            meta: extra_meta(config, &base, x),
            issues: Vec::new(),
        })
        .collect();
    for &issue in published {
        let mut matched = false;
        for (x, set) in config.feeds.extra.iter().zip(extras.iter_mut()) {
            if x.matches(&issue.path) {
                set.issues.push(issue);
                matched = true;
            }
        }
        if !matched {
            main.issues.push(issue);
        }
    }
    let mut sets = vec![main];
    sets.append(&mut extras);
    sets
}

/// The metadata of a `[[feeds.extra]]` family: its own title, description and language where
/// it gives them, the site's otherwise.
fn extra_meta(config: &Config, base: &FeedMeta, x: &crate::config::ExtraFeed) -> FeedMeta {
    FeedMeta {
        title: x
            .title
            .clone()
            .unwrap_or_else(|| format!("{} ({})", config.site.title, x.name)),
        description: x
            .description
            .clone()
            .unwrap_or_else(|| base.description.clone()),
        language: x.language.clone().unwrap_or_else(|| base.language.clone()),
        ..base.clone()
    }
}

fn base_meta(config: &Config) -> FeedMeta {
    let site = &config.site;
    let description = if site.description.trim().is_empty() {
        site.title.clone()
    } else {
        site.description.clone()
    };
    FeedMeta {
        title: xml_clean(&site.title).into_owned(),
        description: xml_clean(&description).into_owned(),
        language: site.language.clone(),
        // The archive index that `build` writes, which exists whatever the rest of the site has.
        home_url: config.layout().index_url(),
        author_name: site
            .author
            .as_ref()
            .map(|a| a.name.clone())
            .unwrap_or_else(|| site.title.clone()),
        author_email: site.author.as_ref().and_then(|a| a.email.clone()),
        content: config.feeds.content,
    }
}

/// The entry of one issue.
pub fn issue_entry<'a>(issue: &'a Issue, feed_lang: &str) -> Entry<'a> {
    let (summary, has_description) = match issue.description.as_deref() {
        Some(d) if !d.trim().is_empty() => (xml_clean(d), true),
        _ => (Cow::Borrowed(issue.feed.summary.as_str()), false),
    };
    Entry {
        id: xml_clean(&issue.id),
        title: xml_clean(&issue.title),
        link: Cow::Borrowed(&issue.url),
        related: None,
        html: Cow::Borrowed(issue.feed_html()),
        summary,
        has_description,
        published: issue.date.min(issue.updated),
        updated: issue.updated,
        tags: &issue.tags,
        lang: issue.lang.as_deref().filter(|l| *l != feed_lang),
    }
}

/// The entry of an issue's `index`-th item (0 is the first in the issue).
///
/// Every item of an issue shares its date, so the n-th item is stamped n seconds earlier:
/// the times are unique, keep the issue's order in readers that sort by date, and do not
/// depend on which document the item lands in.
pub fn item_entry<'a>(
    issue: &'a Issue,
    index: usize,
    item: &'a Item,
    feed_lang: &str,
) -> Entry<'a> {
    let page_anchor = format!("{}#{}", issue.url, item.anchor);
    let shift = Duration::seconds(i64::try_from(index).unwrap_or(i64::MAX / 2_000));
    let (link, related) = match item.main_link() {
        Some(l) => (Cow::Borrowed(l.url.as_str()), Some(page_anchor)),
        None => (Cow::Owned(page_anchor), None),
    };
    let updated = issue.updated - shift;
    Entry {
        id: Cow::Owned(xml_clean(&format!("{}#{}", issue.id, item.anchor)).into_owned()),
        title: xml_clean(&item.title),
        link,
        related,
        html: Cow::Borrowed(item.feed_html()),
        summary: Cow::Borrowed(item.feed.summary.as_str()),
        has_description: false,
        published: (issue.date - shift).min(updated),
        updated,
        tags: &issue.tags,
        lang: issue.lang.as_deref().filter(|l| *l != feed_lang),
    }
}

/// Makes the `updated` of every entry unique within one document: walking in document order,
/// an entry whose time is taken gets one second less until it is free. The result depends
/// only on the document's own entries, so a full archive page never changes.
pub fn unique_updated(entries: &mut [Entry<'_>]) {
    let mut used = BTreeSet::new();
    for e in entries.iter_mut() {
        while used.contains(&e.updated) {
            e.updated -= Duration::seconds(1);
        }
        used.insert(e.updated);
        if e.published > e.updated {
            e.published = e.updated;
        }
    }
}

/// What every document of one family shares: the jobs of its archive pages and of its
/// subscription documents, built one page at a time.
///
/// Archive page `N` holds entries `(N-1)*limit .. N*limit` counted from the oldest; only full
/// pages are written, so a written page never changes.
pub(crate) struct Family<'c, 'd> {
    pub config: &'c Config,
    pub meta: &'d FeedMeta,
    pub feed_id: &'d str,
    pub stem_name: &'c str,
    pub items: bool,
}

impl<'d> Family<'_, 'd> {
    /// The Atom and RSS archive documents of page `page` (from 1), `entries` oldest first.
    pub fn archive<'a>(&self, page: usize, entries: &[Entry<'a>]) -> Vec<Job<'d, 'a>> {
        let layout = self.config.layout();
        let feed_url = |file: &str| layout.feed_url(file);
        let mut jobs = Vec::new();
        for format in [Format::Atom, Format::Rss] {
            let file = layout.feed_file(self.stem_name, self.items, format);
            let archive_path = |p: usize| layout.archive_file(&file, p);
            let history = History {
                archive: true,
                current: Some(feed_url(&file)),
                prev_archive: (page > 1).then(|| feed_url(&archive_path(page - 1))),
                // The oldest page has no earlier one; pointing at the next page's fixed name
                // keeps it part of the chain without ever rewriting it.
                next_archive: (page == 1).then(|| feed_url(&archive_path(2))),
            };
            // The entries are dated, so the fallback date is never read.
            let fallback = entries.last().map_or_else(Default::default, |e| e.updated);
            jobs.push(Job {
                path: archive_path(page),
                format,
                doc: document(
                    self.meta,
                    self.feed_id,
                    feed_url(&archive_path(page)),
                    entries,
                    history,
                    fallback,
                ),
            });
        }
        jobs
    }

    /// The subscription documents (Atom, RSS, JSON) over the `newest` entries (oldest
    /// first), after `pages` full archive pages.
    pub fn current<'a>(
        &self,
        pages: usize,
        newest: &[Entry<'a>],
        fallback_updated: DateTime<FixedOffset>,
    ) -> Vec<Job<'d, 'a>> {
        let layout = self.config.layout();
        let feed_url = |file: &str| layout.feed_url(file);
        let mut jobs = Vec::new();
        for format in [Format::Atom, Format::Rss] {
            let file = layout.feed_file(self.stem_name, self.items, format);
            let history = History {
                archive: false,
                current: None,
                prev_archive: (pages > 0).then(|| feed_url(&layout.archive_file(&file, pages))),
                next_archive: None,
            };
            jobs.push(Job {
                path: file.clone(),
                format,
                doc: document(
                    self.meta,
                    self.feed_id,
                    feed_url(&file),
                    newest,
                    history,
                    fallback_updated,
                ),
            });
        }
        let file = layout.feed_file(self.stem_name, self.items, Format::Json);
        jobs.push(Job {
            path: file.clone(),
            format: Format::Json,
            doc: document(
                self.meta,
                self.feed_id,
                feed_url(&file),
                newest,
                History::default(),
                fallback_updated,
            ),
        });
        jobs
    }
}

fn document<'d, 'a>(
    meta: &'d FeedMeta,
    feed_id: &'d str,
    self_url: String,
    oldest_first: &[Entry<'a>],
    history: History,
    fallback_updated: DateTime<FixedOffset>,
) -> Document<'d, 'a> {
    let mut entries: Vec<Entry<'a>> = oldest_first.iter().rev().cloned().collect();
    unique_updated(&mut entries);
    let updated = entries
        .iter()
        .map(|e| e.updated)
        .max()
        .unwrap_or(fallback_updated);
    Document {
        meta,
        feed_id,
        self_url,
        updated,
        entries,
        history,
    }
}

/// Writes one document in its format.
pub fn write_job(job: &Job<'_, '_>, out: &mut dyn std::io::Write) -> Result<()> {
    match job.format {
        Format::Atom => atom::write(&job.doc, out),
        Format::Rss => rss::write(&job.doc, out),
        Format::Json => json::write(&job.doc, out),
    }
    .with_context(|| format!("writing {}", job.path))
}

/// Writes every feed and archive of the published issues (oldest first) into `staging`.
///
/// With no published issue at all nothing is written (the caller says so).
pub fn write_feeds(config: &Config, published: &[&Issue], staging: &Staging) -> Result<Written> {
    let mut feeds = FeedWriter::new(config);
    for &issue in published {
        feeds.push(issue, staging)?;
    }
    feeds.finish(staging)
}

/// Marks where an entry's HTML goes in a document the crates wrote: `U+E000 n U+E001`.
///
/// The crates would copy every body into their structs and escape it character by character;
/// instead each body is written by `splice_bodies`, straight from the issue, as CDATA. The
/// marks cannot occur in any other text of a document: `xml_clean` removes both characters.
pub fn body_mark(n: usize) -> String {
    markers::body::mark(n)
}

/// Copies a document written with `body_mark`s to `out`, each mark replaced by
/// `bodies[n]` in CDATA: as a whole section when `wrap`, else as the inside of a section the
/// crate already opened (RSS `content:encoded`). `]]>` inside a body is split across two
/// sections, so it survives as text.
pub fn splice_bodies(
    doc: &[u8],
    bodies: &[&str],
    wrap: bool,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let broken = || std::io::Error::other("a body mark without its body");
    let mut rest = doc;
    while let Some((mark, n)) = markers::body::find(rest).map_err(|()| broken())? {
        let body = bodies.get(n).ok_or_else(broken)?;
        out.write_all(&rest[..mark.start])?;
        if wrap {
            out.write_all(b"<![CDATA[")?;
        }
        write_cdata_text(body.as_bytes(), out)?;
        if wrap {
            out.write_all(b"]]>")?;
        }
        rest = &rest[mark.end..];
    }
    out.write_all(rest)
}

/// Text inside a CDATA section, every `]]>` split as `]]` `]]><![CDATA[` `>`.
fn write_cdata_text(mut text: &[u8], out: &mut dyn std::io::Write) -> std::io::Result<()> {
    while let Some(i) = memchr::memmem::find(text, b"]]>") {
        out.write_all(&text[..i + 2])?;
        out.write_all(b"]]><![CDATA[")?;
        text = &text[i + 2..];
    }
    out.write_all(text)
}

/// RFC 822 (RFC 2822) date with a numeric offset, as RSS wants.
pub fn rfc822(d: &DateTime<FixedOffset>) -> String {
    d.format("%a, %d %b %Y %H:%M:%S %z").to_string()
}

#[cfg(test)]
pub(crate) mod tests;
