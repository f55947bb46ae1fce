//! Reading a folder of issues into the model.
//!
//! Each file is parsed on its own (in parallel); a problem in one file never stops the others,
//! so `check` reports every problem of a run. Decisions worth knowing:
//!
//! - The slug is the file name without extension; front matter `slug` replaces it (letters,
//!   digits, `-`, `_` and `.` only, as it becomes a file name and a URL).
//! - Titles and descriptions are one line of plain text: line breaks, tabs and other control
//!   characters are folded into single spaces (with a warning when a title had them inside).
//! - A leading H1 is dropped from the body when it repeats the title, the slug, or
//!   `{site.title} {slug}`.
//! - A site-path image (`/static/x.png`) is looked up as `static_dir/static/x.png`, and also as
//!   `static_dir/x.png` when the folder is named like the path's first segment. When
//!   `static_dir` is set but the folder does not exist, one warning says how many images went
//!   unchecked.
//! - Front matter keys are matched without case; an unknown key is ignored, with a warning
//!   when it is a likely misspelling of a known one (`pubished`), and a published issue that
//!   still holds the placeholder text of the `issue.md` template is warned about.

pub(crate) mod date;
mod files;
pub(crate) mod front_matter;
pub(crate) mod items;
pub mod placeholder;
mod stream;

use files::refusal;
pub use files::{is_issue_file, issue_files};
pub use stream::stream;
use stream::{Admission, Named};

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::config::Config;
use crate::diag::{line_col, Diagnostic};
use crate::model::{FeedBody, Issue, Item};
use crate::render::{fold_line, Anchors, Doc, ItemMark, Note, Settings};

use front_matter::{At, Field};

/// Every issue of a folder (drafts and future issues included) and every problem found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Sorted oldest first (by date, then slug).
    pub issues: Vec<Issue>,
    /// Errors and warnings, sorted by path, then position.
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// What [`load_all_with`] renders besides the HTML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    /// Render the plain text of each issue and item (`Issue::text`, `Item::text`). Only the
    /// email's text part reads it; without it both are `None`, and loading takes about half
    /// the time and memory.
    pub text: bool,
}

impl Default for LoadOptions {
    fn default() -> LoadOptions {
        LoadOptions { text: true }
    }
}

/// Parses every `*.md` and `*.markdown` file of `config.issues.dir`, plain text included.
pub fn load_all(config: &Config) -> anyhow::Result<Loaded> {
    load_all_with(config, LoadOptions::default())
}

/// Parses every `*.md` and `*.markdown` file of `config.issues.dir`, rendering what `opts` asks.
pub fn load_all_with(config: &Config, opts: LoadOptions) -> anyhow::Result<Loaded> {
    let paths = issue_files(&config.issues.dir)?;
    let statics = StaticDir::of(config);
    let real_dir = std::fs::canonicalize(&config.issues.dir).ok();
    let parsed: Vec<Parsed> = paths
        .par_iter()
        .map(|p| read_and_parse(config, &statics, opts, real_dir.as_deref(), p))
        .collect();

    let mut out = Loaded::default();
    let mut admit = Admission::default();
    let mut unchecked = 0;
    for p in parsed {
        out.diagnostics.extend(p.diagnostics);
        unchecked += p.unchecked_images;
        let Some(issue) = p.issue else { continue };
        let named = Named {
            path: issue.path.clone(),
            slug: issue.slug.clone(),
            id: issue.id.clone(),
            slug_at: p.slug_at,
            id_at: p.id_at,
        };
        if admit.admit(&mut out.diagnostics, named) {
            out.issues.push(issue);
        }
    }
    settle_diagnostics(config, &mut out.diagnostics, unchecked);
    out.issues
        .sort_by(|a, b| a.date.cmp(&b.date).then_with(|| a.slug.cmp(&b.slug)));
    Ok(out)
}

/// Reads and parses one file; an unreadable file is one error.
/// Reads and parses one issue file, unless it is not a regular file inside the issues folder
/// (`real_dir`, resolved): then it is refused unread, with the reason as its error.
fn read_and_parse(
    config: &Config,
    statics: &StaticDir,
    opts: LoadOptions,
    real_dir: Option<&Path>,
    p: &Path,
) -> Parsed {
    if let Some(why) = refusal(p, real_dir) {
        return unread(p, why);
    }
    match std::fs::read(p) {
        Ok(bytes) => parse(config, statics, opts, p, &bytes),
        Err(e) => unread(p, format!("cannot read the file: {e}")),
    }
}

/// A file left unread, with the reason as its one error.
fn unread(p: &Path, msg: String) -> Parsed {
    Parsed {
        issue: None,
        diagnostics: vec![Diagnostic::error(p, None, msg)],
        unchecked_images: 0,
        slug_at: None,
        id_at: None,
    }
}

/// Adds the warning about an unchecked `static_dir` and sorts the diagnostics by file and
/// position.
fn settle_diagnostics(config: &Config, diagnostics: &mut Vec<Diagnostic>, unchecked: usize) {
    if unchecked > 0 {
        if let Some(dir) = &config.issues.static_dir {
            diagnostics.push(Diagnostic::warning(
                dir,
                None,
                format!(
                    "issues.static_dir does not exist, so {unchecked} site-path image(s) were not checked: create the folder or remove static_dir from the config"
                ),
            ));
        }
    }
    diagnostics.sort_by(|a, b| {
        a.path
            .cmp(&b.path)
            .then_with(|| a.pos.unwrap_or((0, 0)).cmp(&b.pos.unwrap_or((0, 0))))
    });
}

/// Parses one issue file's bytes.
pub fn parse_issue(config: &Config, path: &Path, bytes: &[u8]) -> (Option<Issue>, Vec<Diagnostic>) {
    let p = parse(
        config,
        &StaticDir::of(config),
        LoadOptions::default(),
        path,
        bytes,
    );
    (p.issue, p.diagnostics)
}

/// Where site-path images are looked for, if anywhere.
enum StaticDir {
    None,
    Missing,
    Dir(PathBuf),
}

impl StaticDir {
    fn of(config: &Config) -> StaticDir {
        match &config.issues.static_dir {
            None => StaticDir::None,
            Some(d) if d.is_dir() => StaticDir::Dir(d.clone()),
            Some(_) => StaticDir::Missing,
        }
    }

    /// Whether a site path such as `/static/images/x.png` names a file in the folder.
    fn has(dir: &Path, site_path: &str) -> bool {
        let path = site_path.split(['?', '#']).next().unwrap_or(site_path);
        let path = path.trim_start_matches('/');
        let decoded = percent_decode(path);
        if dir.join(&decoded).is_file() {
            return true;
        }
        let name = dir.file_name().and_then(|n| n.to_str());
        match (name, decoded.split_once('/')) {
            (Some(n), Some((first, rest))) if n == first => dir.join(rest).is_file(),
            _ => false,
        }
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(s.replace('+', "%2B").as_bytes())
        .next()
        .map(|(k, v)| {
            if v.is_empty() {
                k.into_owned()
            } else {
                format!("{k}={v}")
            }
        })
        .unwrap_or_else(|| s.to_string())
}

struct Parsed {
    issue: Option<Issue>,
    diagnostics: Vec<Diagnostic>,
    unchecked_images: usize,
    /// Where front matter set `slug` and `id`, for duplicate errors.
    slug_at: Option<(usize, usize)>,
    id_at: Option<(usize, usize)>,
}

/// A front matter date (`date` or `updated`, named by `which` in the error), or an error at it.
fn parse_date_field(
    d: &mut Diags,
    f: &Field<String>,
    which: &str,
    time: chrono::NaiveTime,
    tz: &crate::config::Timezone,
) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    let parsed = date::parse_date(&f.value, time, tz);
    if parsed.is_none() {
        d.error(
            Some(At::Offset(f.offset)),
            format!(
                "unknown date `{}`{which}: write it as {}",
                fold_line(&f.value),
                date::FORMS
            ),
        );
    }
    parsed
}

/// Diagnostics of one file, positioned in its text.
struct Diags<'t> {
    path: &'t Path,
    text: &'t str,
    list: Vec<Diagnostic>,
}

impl Diags<'_> {
    fn pos(&self, at: At) -> (usize, usize) {
        match at {
            At::Offset(o) => line_col(self.text, o),
            At::LineCol(l, c) => (l, c),
        }
    }

    fn error(&mut self, at: Option<At>, msg: impl Into<String>) {
        let pos = at.map(|a| self.pos(a));
        self.list.push(Diagnostic::error(self.path, pos, msg));
    }

    fn warning(&mut self, at: Option<At>, msg: impl Into<String>) {
        let pos = at.map(|a| self.pos(a));
        self.list.push(Diagnostic::warning(self.path, pos, msg));
    }

    fn has_errors(&self) -> bool {
        self.list.iter().any(Diagnostic::is_error)
    }
}

/// Whether a slug can be a file name and a URL path segment as it is.
pub fn valid_slug(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Lower case, whitespace folded: how a heading is compared with the title.
fn comparable(s: &str) -> String {
    fold_line(s).to_lowercase()
}

/// A title or other one-line value: folded to one line, and whether it had line breaks or
/// control characters inside (not counting leading or trailing ones).
fn one_line(s: &str) -> (String, bool) {
    let inner = s.trim_matches(|c: char| c.is_whitespace() || c.is_control());
    let had = inner
        .chars()
        .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'));
    (fold_line(s), had)
}

/// Markdown in a description reduced to its text.
fn plain_description(s: &str) -> Option<String> {
    let events: Vec<_> = pulldown_cmark::Parser::new(s).collect();
    let t = crate::render::inline_text(&events);
    (!t.is_empty()).then_some(t)
}

/// The text of a file: UTF-8 without a BOM, or the error that says where it is not.
fn decode<'b>(path: &Path, bytes: &'b [u8]) -> Result<&'b str, Diagnostic> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| {
        let good = e.valid_up_to();
        // The prefix up to the bad byte is valid, so positions can be counted in it.
        let prefix = std::str::from_utf8(&bytes[..good]).unwrap_or_default();
        Diagnostic::error(
            path,
            Some(line_col(prefix, good)),
            format!(
                "the file is not UTF-8 (byte 0x{:02X} at offset {good}): save it as UTF-8",
                bytes[good]
            ),
        )
    })
}

/// The slug: front matter `slug`, else the file name without extension.
fn slug_of(d: &mut Diags, meta: &front_matter::FrontMatter, stem: &str) -> String {
    match &meta.slug {
        Some(Field { value, offset }) => {
            let v = value.trim().to_string();
            if !valid_slug(&v) {
                d.error(
                    Some(At::Offset(*offset)),
                    format!("slug `{}` may hold only letters, digits, `-`, `_` and `.`: it becomes the page's file name and URL", fold_line(&v)),
                );
            }
            v
        }
        None => {
            if !valid_slug(stem) {
                d.error(
                    None,
                    format!("the file name `{stem}` cannot be a slug (letters, digits, `-`, `_` and `.` only): rename the file or set `slug:` in the front matter"),
                );
            }
            stem.to_string()
        }
    }
}

type Date = chrono::DateTime<chrono::FixedOffset>;

/// `date` (front matter, else the file name) and `updated` (else `date`).
fn dates_of(
    d: &mut Diags,
    config: &Config,
    meta: &front_matter::FrontMatter,
    stem: &str,
) -> (Option<Date>, Option<Date>) {
    let tz = &config.site.timezone;
    let time = config.issues.time;
    let date = match &meta.date {
        Some(f) => parse_date_field(d, f, "", time, tz),
        None => {
            let parsed = date::from_file_name(stem, &config.issues.filename_date, time, tz);
            if parsed.is_none() {
                d.error(
                    None,
                    format!(
                        "no date: add `date: YYYY-MM-DD` to the front matter, or start the file name with a date in the form `{}` (issues.filename_date)",
                        config.issues.filename_date
                    ),
                );
            }
            parsed
        }
    };
    let updated = match &meta.updated {
        Some(f) => parse_date_field(d, f, " in `updated`", time, tz),
        None => date,
    };
    (date, updated)
}

/// The title: front matter `title`, else the first H1 of the body.
fn title_of(d: &mut Diags, meta: &front_matter::FrontMatter, doc: &Doc) -> String {
    let title = meta.title.as_ref().and_then(|f| {
        let (t, had) = one_line(&f.value);
        if had {
            d.warning(
                Some(At::Offset(f.offset)),
                "the title has line breaks or control characters: they were replaced by spaces",
            );
        }
        (!t.is_empty()).then_some(t)
    });
    match title.or_else(|| doc.first_h1().filter(|t| !t.is_empty())) {
        Some(t) => t,
        None => {
            d.error(
                None,
                "no title: add `title:` to the front matter or start the body with `# Title`",
            );
            String::new()
        }
    }
}

/// The entry id: front matter `id`, else the one the config makes of the slug.
fn id_of(d: &mut Diags, config: &Config, meta: &front_matter::FrontMatter, slug: &str) -> String {
    match &meta.id {
        Some(f) => {
            let (v, had) = one_line(&f.value);
            if had || v.contains(' ') {
                d.error(
                    Some(At::Offset(f.offset)),
                    "`id` must be one word with no spaces or line breaks (a URL or a tag: URI)",
                );
            }
            v
        }
        None => config.issue_id(slug),
    }
}

/// Warnings about what rendering the body found; returns the site-path images left unchecked.
fn check_body(
    d: &mut Diags,
    statics: &StaticDir,
    doc: &Doc,
    found: &[items::Found],
    body_offset: usize,
) -> usize {
    let mut unchecked = 0;
    for n in &doc.notes {
        match n {
            Note::UnknownComponent { offset, name } => d.warning(
                Some(At::Offset(body_offset + offset)),
                format!("unknown component `<{name}>` was stripped: map it in [components] (`{name} = \"\"` to strip it quietly)"),
            ),
            Note::TooDeep { offset } => d.warning(
                Some(At::Offset(body_offset + offset)),
                format!(
                    "nesting deeper than {} levels (quotes, lists, emphasis, HTML elements) was flattened from here on: the deeper levels keep their text but lose their markup",
                    crate::render::MAX_DEPTH
                ),
            ),
            Note::SitePathImage { offset, path: site_path } => match statics {
                StaticDir::None => {}
                StaticDir::Missing => unchecked += 1,
                StaticDir::Dir(dir) => {
                    if !StaticDir::has(dir, site_path) {
                        d.warning(
                            Some(At::Offset(body_offset + offset)),
                            format!(
                                "image `{site_path}` is not in issues.static_dir {}",
                                dir.display()
                            ),
                        );
                    }
                }
            },
        }
    }
    if doc.is_empty() {
        d.warning(None, "the issue is empty: it has front matter but no body");
    }
    for f in found {
        if f.links.is_empty() {
            d.warning(
                Some(At::Offset(body_offset + f.offset)),
                format!(
                    "item `{}` has no source link: put `[site](url)` on the line under the heading",
                    f.title
                ),
            );
        }
    }
    unchecked
}

/// The body rendered: HTML (and the page's marked HTML), plain text when asked, the items.
struct Rendered {
    html: String,
    page_html: Option<String>,
    text: Option<String>,
    items: Vec<Item>,
}

fn render_body(doc: &Doc, found: Vec<items::Found>, opts: LoadOptions) -> Rendered {
    let whole = 0..doc.events.len();
    let all = std::slice::from_ref(&whole);
    let text_of = |ranges: &[std::ops::Range<usize>]| opts.text.then(|| doc.text_of(ranges));
    let marks: Vec<ItemMark> = found
        .iter()
        .map(|f| ItemMark {
            title_at: f.title_at,
            source_url: f.links.first().map(|l| l.url.as_str()),
        })
        .collect();
    let notes: Vec<&[std::ops::Range<usize>]> = found.iter().map(|f| &f.notes[..]).collect();
    let (html, notes_html) = doc.html_and_parts(&notes);
    Rendered {
        html,
        page_html: (!marks.is_empty()).then(|| doc.page_html(&marks)),
        text: text_of(all),
        items: found
            .into_iter()
            .zip(notes_html)
            .map(|(f, html)| Item {
                html,
                text: text_of(&f.notes),
                feed: FeedBody::default(),
                title: f.title,
                anchor: f.anchor,
                links: f.links,
            })
            .collect(),
    }
}

/// The title, and the body without a leading H1 that repeats it, its headings given ids and
/// its items found.
fn shape_body<'a>(
    d: &mut Diags,
    config: &Config,
    meta: &front_matter::FrontMatter,
    slug: &str,
    mut doc: Doc<'a>,
) -> (Doc<'a>, String, Vec<items::Found>) {
    let title = title_of(d, meta, &doc);
    let (t, s, st) = (
        comparable(&title),
        comparable(slug),
        comparable(&format!("{} {}", config.site.title, slug)),
    );
    doc.drop_leading_h1(|h| {
        let h = comparable(h);
        h == t || h == s || h == st
    });
    let mut anchors = Anchors::default();
    doc.assign_heading_ids(&mut anchors);
    let (found, para_ids) = items::find(&doc, &mut anchors);
    doc.para_ids = para_ids;
    (doc, title, found)
}

fn parse(
    config: &Config,
    statics: &StaticDir,
    opts: LoadOptions,
    path: &Path,
    bytes: &[u8],
) -> Parsed {
    let mut out = Parsed {
        issue: None,
        diagnostics: Vec::new(),
        unchecked_images: 0,
        slug_at: None,
        id_at: None,
    };
    let text = match decode(path, bytes) {
        Ok(t) => t,
        Err(e) => {
            out.diagnostics.push(e);
            return out;
        }
    };
    let mut d = Diags {
        path,
        text,
        list: Vec::new(),
    };
    let split = front_matter::split(text);
    for e in &split.errors {
        d.error(Some(e.at), e.message.clone());
    }
    for w in &split.warnings {
        d.warning(Some(w.at), w.message.clone());
    }
    if split.errors.iter().any(|e| e.fatal) {
        out.diagnostics = d.list;
        return out;
    }
    let meta = split.meta;
    out.slug_at = meta.slug.as_ref().map(|f| line_col(text, f.offset));
    out.id_at = meta.id.as_ref().map(|f| line_col(text, f.offset));
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let slug = slug_of(&mut d, &meta, stem);
    let (date, updated) = dates_of(&mut d, config, &meta, stem);

    let body_offset = split.body_offset;
    let page_url = config.issue_url(&slug);
    let settings = Settings {
        base_url: &config.site.base_url,
        page_url: &page_url,
        components: &config.components,
    };
    let doc = Doc::parse(&text[body_offset..], &settings);
    let (doc, title, found) = shape_body(&mut d, config, &meta, &slug, doc);
    out.unchecked_images = check_body(&mut d, statics, &doc, &found, body_offset);
    if meta.published.as_ref().map_or(true, |p| p.value) {
        if let Some((phrase, at)) = placeholder::find(&text[body_offset..]) {
            d.warning(
                Some(At::Offset(body_offset + at)),
                placeholder::message(phrase),
            );
        }
    }
    let id = id_of(&mut d, config, &meta, &slug);

    let (Some(date), Some(updated)) = (date, updated) else {
        out.diagnostics = d.list;
        return out;
    };
    if d.has_errors() {
        out.diagnostics = d.list;
        return out;
    }
    let body = render_body(&doc, found, opts);
    let mut issue = Issue {
        path: path.to_path_buf(),
        slug,
        id,
        url: page_url,
        title,
        description: meta
            .description
            .as_ref()
            .and_then(|f| plain_description(&f.value)),
        date,
        updated,
        draft: meta.published.as_ref().is_some_and(|p| !p.value),
        lang: meta
            .lang
            .clone()
            .map(|l| fold_line(&l))
            .filter(|l| !l.is_empty()),
        tags: meta.tags.iter().map(|t| fold_line(t)).collect(),
        number: meta.number.clone().map(|n| fold_line(&n)),
        html: body.html,
        page_html: body.page_html,
        text: body.text,
        feed: FeedBody::default(),
        items: body.items,
    };
    crate::render::feed::settle(&mut issue, doc.fixes);
    out.issue = Some(issue);
    out.diagnostics = d.list;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::parse(
            "[site]\ntitle = \"Shack\"\nbase_url = \"https://example.com\"\nissue_path = \"/w/{slug}.html\"\n[issues]\nfilename_date = \"%G-%V\"\ntime = \"09:00\"\n[components]\nHeader = \"\"\n",
            Path::new("c/t.toml"),
        )
        .unwrap()
    }

    fn one(name: &str, text: &str) -> (Option<Issue>, Vec<String>) {
        let (i, d) = parse_issue(&config(), Path::new(name), text.as_bytes());
        (i, d.iter().map(|d| d.to_string()).collect())
    }

    #[test]
    fn sections_with_source_lines() {
        let (i, d) = one(
            "2019-02.md",
            "---\ntitle: Shack 2019-02\n---\n\n# Shack 2019-02\n\n<Header />\n\n## First\n\n[a.com](https://a.com/x) | [GitHub](https://github.com/a) |\n\nNotes *here*.\n\n## Second [link](https://b.com)\n\nMore.\n\n## Third\n\nAka, a subtitle.\n\n✨ [c.org](/c) ✨\n\nText.\n",
        );
        assert!(d.is_empty(), "{d:?}");
        let i = i.unwrap();
        assert_eq!(i.date.to_rfc3339(), "2019-01-07T09:00:00+00:00");
        assert_eq!(i.title, "Shack 2019-02");
        assert!(!i.html.contains("<h1"), "{}", i.html);
        assert_eq!(i.items.len(), 3);
        assert_eq!(i.items[0].title, "First");
        assert_eq!(i.items[0].anchor, "first");
        assert_eq!(i.items[0].links.len(), 2);
        assert_eq!(i.items[0].links[1].text, "GitHub");
        assert_eq!(i.items[0].html, "<p>Notes <em>here</em>.</p>\n");
        assert_eq!(i.items[1].title, "Second link");
        assert_eq!(i.items[1].links[0].url, "https://b.com");
        assert_eq!(i.items[2].links[0].url, "https://example.com/c");
        assert_eq!(i.items[2].html, "<p>Aka, a subtitle.</p>\n<p>Text.</p>\n");
        assert!(i.html.contains("<h2 id=\"first\">"), "{}", i.html);
        assert_eq!(i.url, "https://example.com/w/2019-02.html");
    }

    #[test]
    fn link_paragraphs_between_breaks() {
        let (i, d) = one(
            "2019-12.md",
            "---\ntitle: T\n---\n\n# 2019-12\n\n[One](https://one.com)\n\nAbout one.\n\n---\n\n[Two](https://two.com)\n\n### More\n\n[x](https://x.com)\n\n---\n\n[](https://three.com/p.pdf)\n",
        );
        assert!(d.is_empty(), "{d:?}");
        let i = i.unwrap();
        assert_eq!(i.items.len(), 3);
        assert_eq!(i.items[0].anchor, "one");
        assert_eq!(i.items[0].html, "<p>About one.</p>\n");
        assert!(i.items[1].html.contains("More"));
        assert_eq!(i.items[2].title, "https://three.com/p.pdf");
        assert!(
            i.html
                .contains("<p id=\"one\"><a href=\"https://one.com\">One</a></p>"),
            "{}",
            i.html
        );
        assert!(!i.html.contains("2019-12</h1>"));
    }

    #[test]
    fn prose_has_no_items() {
        let (i, d) = one("2019-03-CN.md", "---\ntitle: T\n---\n\n本周推荐：[a](https://a.com) 和 [b](https://b.com)。\n\n## 小结\n\n很多文字。\n");
        assert!(d.is_empty(), "{d:?}");
        assert!(i.unwrap().items.is_empty());
    }

    #[test]
    fn title_with_line_breaks_is_folded() {
        let (i, d) = one("2019-04.md", "---\ntitle: \"A\\r\\nB\\u0007C\"\n---\nx\n");
        assert_eq!(i.unwrap().title, "A B C");
        assert_eq!(d, ["2019-04.md:2:1: warning: the title has line breaks or control characters: they were replaced by spaces"]);
    }

    #[test]
    fn errors_name_the_place() {
        let (i, d) = one("notes.md", "---\ntitle: T\n---\nx\n");
        assert!(i.is_none());
        assert_eq!(d, ["notes.md: error: no date: add `date: YYYY-MM-DD` to the front matter, or start the file name with a date in the form `%G-%V` (issues.filename_date)"]);
        let (_, d) = one("notes.md", "---\ntitle: T\ndate: soon\n---\nx\n");
        assert_eq!(d, ["notes.md:3:1: error: unknown date `soon`: write it as YYYY-MM-DD, YYYY-MM-DD HH:MM or RFC 3339 (2019-01-07T09:00:00+08:00)"]);
        let (_, d) = one("bad.md", "---\ntitle: T\n  x: [\n---\n");
        assert_eq!(d.len(), 1);
        assert!(d[0].starts_with("bad.md:3:"), "{d:?}");
        let (_, d) = parse_issue(
            &config(),
            Path::new("2019-01.md"),
            b"---\ntitle: \xff\n---\n",
        );
        assert_eq!(d[0].to_string(), "2019-01.md:2:8: error: the file is not UTF-8 (byte 0xFF at offset 11): save it as UTF-8");
    }

    #[test]
    fn bom_and_crlf_parse() {
        let (i, d) = one("2019-05.md", "\u{feff}---\r\ntitle: T\r\ndate: 2019-02-01\r\n---\r\n\r\n## A\r\n\r\n[a.com](https://a.com)\r\n\r\nNotes\r\n");
        assert!(d.is_empty(), "{d:?}");
        let i = i.unwrap();
        assert_eq!(i.title, "T");
        assert_eq!(i.items[0].links[0].url, "https://a.com");
    }

    #[test]
    fn description_is_plain_text() {
        let (i, _) = one(
            "2019-06.md",
            "---\ntitle: T\ndescription: \"**Bold** <b>x</b> [l](/u)\"\n---\nx\n",
        );
        assert_eq!(i.unwrap().description.as_deref(), Some("Bold x l"));
        let (i, _) = one("2019-06.md", "---\ntitle: T\ndescription:\n---\nx\n");
        assert_eq!(i.unwrap().description, None);
    }

    #[test]
    fn empty_issue_and_unknown_component_warn() {
        let (_, d) = one("2019-07.md", "---\ntitle: T\n---\n");
        assert_eq!(
            d,
            ["2019-07.md: warning: the issue is empty: it has front matter but no body"]
        );
        let (_, d) = one("2019-07.md", "---\ntitle: T\n---\n\n<Nope />\n\ntext\n");
        assert_eq!(d, ["2019-07.md:5:1: warning: unknown component `<Nope>` was stripped: map it in [components] (`Nope = \"\"` to strip it quietly)"]);
    }

    #[test]
    fn loading_without_text_changes_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("2019-02.md"),
            "---\ntitle: T\n---\n\nIntro [x](https://x.com).\n\n## First\n\n[a.com](https://a.com/x)\n\nNotes *here* [y](https://y.com).\n",
        )
        .unwrap();
        let mut c = config();
        c.issues.dir = dir.path().to_path_buf();
        let with = load_all(&c).unwrap();
        let without = load_all_with(&c, LoadOptions { text: false }).unwrap();
        assert_eq!(with.diagnostics, without.diagnostics);
        let mut a = with.issues;
        assert_eq!(a.len(), 1);
        let text = a[0].text.as_deref().unwrap_or_default();
        assert!(text.contains("https://y.com"), "{text}");
        let text = a[0].items[0].text.as_deref().unwrap_or_default();
        assert!(text.contains("Notes here"), "{text}");
        let b = without.issues;
        assert_eq!(b[0].text, None);
        assert_eq!(b[0].items[0].text, None);
        a[0].text = None;
        a[0].items[0].text = None;
        assert_eq!(a, b);
    }

    #[test]
    fn drafts() {
        let (i, _) = one("2019-08.md", "---\ntitle: T\npublished: false\n---\nx\n");
        assert!(i.unwrap().draft);
        let (i, _) = one("2019-08.md", "+++\ntitle = \"T\"\ndraft = true\n+++\nx\n");
        assert!(i.unwrap().draft);
        let (i, _) = one("2019-08.md", "---\ntitle: T\n---\nx\n");
        assert!(!i.unwrap().draft);
    }
}
