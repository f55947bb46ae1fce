//! The web archive: one page per issue in the email's design, and the index of all issues.
//!
//! An issue's page goes to `out` + (`site.issue_path` less `feeds.path`); the index is
//! `index.html` in the folder of the pages (see [`crate::layout::Layout`]).

use anyhow::{bail, Result};
use chrono::{DateTime, Datelike, FixedOffset};
use rayon::prelude::*;
use serde::Serialize;
use tera::Context;

use super::nav::{language_name, Nav, NavLink, NavQueue, Placed};
use crate::config::Config;
use crate::model::Issue;
use crate::templates::{IssueCtx, SiteCtx, Templates};

/// The page templates, built in, that a build renders (`issue.html` extends `base.html`;
/// both pages include `subscribe_box.html` and `page_style.html`).
const PAGE_TEMPLATES: [&str; 5] = [
    "issue.html",
    "index.html",
    "base.html",
    "subscribe_box.html",
    "page_style.html",
];

/// Whether the web pages may read the plain text of an issue or item (`issue.text`,
/// `item.text`), so that a build must render it. The built-in page templates do not. A
/// template of the user's may: any `*.html` or `*.txt` file in `templates.dir` (a page can
/// include any of them) whose tags mention `text` or dump a whole value (`json_encode`,
/// `__tera_context`) keeps the text rendered. That rule also fires for `link.text`, which
/// only costs time. An unreadable folder also keeps it: the build reports that error itself.
pub fn pages_read_text(config: &Config) -> bool {
    let builtin = crate::templates::BUILTIN
        .iter()
        .filter(|(name, _)| PAGE_TEMPLATES.contains(name))
        .any(|(_, source)| tags_mention_text(source));
    if builtin {
        return true;
    }
    let Some(dir) = &config.templates.dir else {
        return false;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return true;
    };
    for entry in entries {
        let Ok(entry) = entry else { return true };
        let path = entry.path();
        let template = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e == "html" || e == "txt");
        if !template {
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(source) if !tags_mention_text(&source) => {}
            _ => return true,
        }
    }
    false
}

/// Whether a Tera source names `text`, `json_encode` or `__tera_context` inside a `{{ }}` or
/// `{% %}` tag (the text around tags, such as CSS `text-align`, is only output).
fn tags_mention_text(source: &str) -> bool {
    let mut rest = source;
    while let Some(open) = rest.find(['{']) {
        let after = &rest[open + 1..];
        let close = match after.as_bytes().first() {
            Some(b'{') => "}}",
            Some(b'%') => "%}",
            _ => {
                rest = after;
                continue;
            }
        };
        let body = &after[1..];
        let end = body.find(close).unwrap_or(body.len());
        let words = body[..end].split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
        if words
            .into_iter()
            .any(|w| matches!(w, "text" | "json_encode" | "__tera_context"))
        {
            return true;
        }
        rest = &body[end..];
    }
    false
}

/// The most characters of an index summary made of item titles or the body's start.
pub const SUMMARY_MAX: usize = 200;

/// The web page of one issue, with no links to other issues.
pub fn render_page(templates: &Templates, site: &SiteCtx, issue: &Issue) -> Result<String> {
    let nav = Nav {
        lang: page_lang(site, issue).to_string(),
        lang_label: language_name(page_lang(site, issue)),
        ..Nav::default()
    };
    render_page_with(templates, site, issue, issue.page_html(), &nav)
}

/// The web page of one issue showing `body`, with `nav`'s links.
fn render_page_with(
    templates: &Templates,
    site: &SiteCtx,
    issue: &Issue,
    body: &str,
    nav: &Nav,
) -> Result<String> {
    // The context of `issue_context`, with the issue's view made (and copied into the
    // context) once: the body shown is the one given, and the language the page's.
    let mut shown = IssueCtx::new(issue);
    shown.html = body;
    let mut ctx = Context::new();
    ctx.insert("site", site);
    ctx.insert("issue", &shown);
    ctx.insert("lang", &nav.lang);
    ctx.insert("nav", nav);
    templates.render("issue.html", &ctx)
}

/// The language of an issue's page: its own, else its feed's (`site` is the page's).
fn page_lang<'a>(site: &'a SiteCtx, issue: &'a Issue) -> &'a str {
    issue.lang.as_deref().unwrap_or(&site.language)
}

#[derive(Serialize)]
struct IndexEntry {
    title: String,
    url: String,
    date: String,
    date_display: String,
    description: Option<String>,
    /// The description, else the item titles, else the start of the body.
    summary: String,
    /// Only when the index is in several languages.
    #[serde(skip_serializing_if = "Option::is_none")]
    lang: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lang_label: Option<String>,
}

#[derive(Serialize)]
struct YearGroup {
    year: i32,
    issues: Vec<IndexEntry>,
}

/// One feed set on the index: its title, language and links.
#[derive(Serialize)]
struct FeedSet {
    title: String,
    lang: String,
    lang_label: String,
    feeds: crate::templates::FeedLinks,
}

/// What the index, the sitemap and the other pages' links show of one issue.
#[derive(Debug, Clone)]
pub struct IndexRow {
    title: String,
    url: String,
    slug: String,
    date: DateTime<FixedOffset>,
    updated: DateTime<FixedOffset>,
    description: Option<String>,
    summary: String,
    /// 0 for the main feeds, else 1 + the index of the first extra feed the issue is in.
    set: usize,
    lang: String,
}

impl IndexRow {
    pub fn of(config: &Config, issue: &Issue) -> IndexRow {
        let set = config
            .feeds
            .extra
            .iter()
            .position(|x| x.matches(&issue.path))
            .map_or(0, |k| k + 1);
        let set_lang = match set {
            0 => None,
            k => config.feeds.extra[k - 1].language.as_deref(),
        };
        let lang = issue
            .lang
            .as_deref()
            .or(set_lang)
            .unwrap_or(&config.site.language);
        let description = issue.description.clone().filter(|d| !d.trim().is_empty());
        IndexRow {
            title: issue.title.clone(),
            url: issue.url.clone(),
            slug: issue.slug.clone(),
            date: issue.date,
            updated: issue.updated,
            summary: summary(issue, description.as_deref()),
            description,
            set,
            lang: lang.to_string(),
        }
    }

    /// Where the issue goes among the links between pages.
    pub fn placed(&self) -> Placed {
        Placed {
            set: self.set,
            day: self.date.date_naive(),
            lang: self.lang.clone(),
            link: NavLink {
                title: self.title.clone(),
                url: self.url.clone(),
                date_display: display_date(self.date),
            },
        }
    }
}

fn display_date(d: DateTime<FixedOffset>) -> String {
    d.format("%-d %B %Y").to_string()
}

/// What the index says an issue holds: its description, else its item titles
/// (`A · B · C`), else the titles of the links that make up its first list items (a digest
/// of link lists, like This Week in Rust), else the start of its body; at most
/// [`SUMMARY_MAX`] characters, cut between titles or words.
fn summary(issue: &Issue, description: Option<&str>) -> String {
    if let Some(d) = description {
        return d.to_string();
    }
    if !issue.items.is_empty() {
        return join_titles(issue.items.iter().map(|i| i.title.as_str()));
    }
    let links = list_links(&issue.html, SUMMARY_MAX);
    if links.len() >= 2 {
        return join_titles(links.iter().map(String::as_str));
    }
    cut_at_word(&issue.feed.summary, SUMMARY_MAX)
}

/// `A · B · C`, as many titles as fit in [`SUMMARY_MAX`] characters, then ` · …`.
fn join_titles<'a>(titles: impl Iterator<Item = &'a str>) -> String {
    let mut s = String::new();
    let mut len = 0;
    for (k, title) in titles.enumerate() {
        let sep = if k == 0 { "" } else { " · " };
        let add = sep.chars().count() + title.chars().count();
        if len + add > SUMMARY_MAX {
            if k == 0 {
                return cut_at_word(title, SUMMARY_MAX);
            }
            s.push_str(" · …");
            return s;
        }
        s.push_str(sep);
        s.push_str(title);
        len += add;
    }
    s
}

/// The texts of the links that open list items (`<li><a>Title</a>`), in order, until they
/// hold `max` characters: what a digest made of link lists is about.
fn list_links(html: &str, max: usize) -> Vec<String> {
    use crate::html::{decode_entities_into, tokens, Token};
    let mut out = Vec::new();
    let mut total = 0;
    // After `<li>` (and `<p>` in it) until the first other content; then inside its `<a>`.
    let mut opening = false;
    let mut text: Option<String> = None;
    for (_, t) in tokens(html) {
        match (&t, text.as_mut()) {
            (Token::Tag(tag), Some(_)) if tag.is("a") && tag.closing => {
                let title = text.take().unwrap_or_default();
                let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
                if !title.is_empty() {
                    total += title.chars().count() + 3;
                    out.push(title);
                    if total > max {
                        break;
                    }
                }
            }
            (Token::Text(t), Some(buf)) => decode_entities_into(t, buf, |c| !c.is_control()),
            (Token::Tag(_), Some(_)) | (Token::Comment { .. }, _) => {}
            (Token::Tag(tag), None) if tag.is("li") && !tag.closing => opening = true,
            (Token::Tag(tag), None) if opening && tag.is("p") && !tag.closing => {}
            (Token::Tag(tag), None) if opening && tag.is("a") && !tag.closing => {
                opening = false;
                text = Some(String::new());
            }
            (Token::Text(t), None) if t.trim().is_empty() => {}
            _ => opening = false,
        }
    }
    out
}

/// `text` whole when it has at most `max` characters, else cut after the last sentence end
/// or space in its second half (or at `max` for text without either) and ended with `…`.
fn cut_at_word(text: &str, max: usize) -> String {
    let text = text.trim().trim_end_matches('…').trim_end();
    if text.chars().count() <= max {
        return text.to_string();
    }
    let end = text
        .char_indices()
        .nth(max - 1)
        .map_or(text.len(), |(i, _)| i);
    let head = &text[..end];
    let sentence = head
        .char_indices()
        .filter(|&(_, c)| matches!(c, '。' | '！' | '？' | '；'))
        .map(|(i, c)| i + c.len_utf8())
        .next_back();
    let head = match (sentence, head.rfind(' ')) {
        (Some(i), _) if i > end / 2 => &head[..i],
        (_, Some(i)) if i > end / 2 => &head[..i],
        _ => head,
    };
    format!("{}…", head.trim_end_matches([' ', ',', ';', ':', '·']))
}

/// The index page listing `issues` newest first.
pub fn render_index(
    config: &Config,
    templates: &Templates,
    site: &SiteCtx,
    issues: &[&Issue],
) -> Result<String> {
    let rows = issues.iter().map(|i| IndexRow::of(config, i)).collect();
    render_index_rows(config, templates, site, rows)
}

/// The index page listing the issues of `rows` newest first, grouped by year.
pub fn render_index_rows(
    config: &Config,
    templates: &Templates,
    site: &SiteCtx,
    mut rows: Vec<IndexRow>,
) -> Result<String> {
    sort_newest_first(&mut rows);
    let mut langs: Vec<&str> = rows.iter().map(|r| r.lang.as_str()).collect();
    langs.sort_unstable();
    langs.dedup();
    let multilingual = langs.len() > 1;
    // The rows' strings move into the entries, which the context copies: only one copy of
    // the archive is held besides the page being rendered.
    let mut years: Vec<YearGroup> = Vec::new();
    for i in rows {
        let year = i.date.year();
        if years.last().map_or(true, |g| g.year != year) {
            years.push(YearGroup {
                year,
                issues: Vec::new(),
            });
        }
        let (lang, lang_label) = if multilingual {
            let label = language_name(&i.lang);
            (Some(i.lang), Some(label))
        } else {
            (None, None)
        };
        if let Some(g) = years.last_mut() {
            g.issues.push(IndexEntry {
                title: i.title,
                url: i.url,
                date: i.date.to_rfc3339(),
                date_display: display_date(i.date),
                description: i.description,
                summary: i.summary,
                lang,
                lang_label,
            });
        }
    }
    let layout = config.layout();
    let mut sets = vec![FeedSet {
        title: site.title.clone(),
        lang: site.language.clone(),
        lang_label: language_name(&site.language),
        feeds: site.feeds.clone(),
    }];
    for x in &config.feeds.extra {
        let lang = x.language.clone().unwrap_or_else(|| site.language.clone());
        sets.push(FeedSet {
            title: x.title.clone().unwrap_or_else(|| site.title.clone()),
            lang_label: language_name(&lang),
            lang,
            feeds: layout.feed_links(&x.name),
        });
    }
    let mut ctx = Context::new();
    ctx.insert("site", site);
    ctx.insert("lang", &site.language);
    ctx.insert("years", &years);
    drop(years);
    ctx.insert("feed_sets", &sets);
    ctx.insert("multilingual", &multilingual);
    templates.render("index.html", &ctx)
}

fn sort_newest_first(rows: &mut [IndexRow]) {
    rows.sort_by(|a, b| b.date.cmp(&a.date).then_with(|| b.slug.cmp(&a.slug)));
}

/// The web pages of a build, written one issue at a time, then the index.
pub struct Pages<'c> {
    config: &'c Config,
    templates: &'c Templates,
    site: SiteCtx,
    /// The index's path under `out`.
    index_rel: String,
}

impl<'c> Pages<'c> {
    pub fn new(config: &'c Config, templates: &'c Templates) -> Result<Pages<'c>> {
        let layout = config.layout();
        Ok(Pages {
            config,
            templates,
            site: SiteCtx::new(config),
            index_rel: layout.out_path(&layout.index_site_path())?,
        })
    }

    /// A queue that holds pages until their links to other issues are known.
    pub fn queue<P>(&self) -> NavQueue<P> {
        NavQueue::new(self.config.feeds.extra.len())
    }

    /// Writes the page of one issue showing `body` (its `page_html()`, which the caller may
    /// have taken out) with `nav`'s links, through `sink(path under out, bytes)`.
    pub fn write_page<F>(&self, issue: &Issue, body: &str, nav: &Nav, sink: F) -> Result<()>
    where
        F: FnOnce(&str, &[u8]) -> Result<()>,
    {
        let config = self.config;
        let layout = config.layout();
        let rel = layout.out_path(&layout.issue_site_path(&issue.slug))?;
        let clash = if rel == "index.html" {
            Some("the site's home page")
        } else if rel == self.index_rel {
            Some("the archive index")
        } else if config.site.sitemap && (rel == "sitemap.xml" || rel == "robots.txt") {
            Some("the sitemap")
        } else {
            None
        };
        if let Some(what) = clash {
            bail!(
                "{}: the page of issue `{}` would replace {what} `{rel}` under the output folder: give the issue another slug (`slug:` in its front matter) or change site.issue_path",
                issue.path.display(),
                issue.slug
            );
        }
        // An issue of an extra feed advertises that feed: the first one it belongs to.
        let own;
        let site = match config.feeds.extras_of(&issue.path).next() {
            Some(x) => {
                own = self.site.for_extra(config, x);
                &own
            }
            None => &self.site,
        };
        let page = render_page_with(self.templates, site, issue, body, nav)
            .map_err(|e| anyhow::anyhow!("{}: {e:#}", issue.path.display()))?;
        sink(&rel, page.as_bytes())
            .map_err(|e| anyhow::anyhow!("{}: the page of this issue: {e:#}", issue.path.display()))
    }

    /// Writes the index of the issues of `rows` through `sink`, and `sitemap.xml` and
    /// `robots.txt` when `site.sitemap` is on. Returns how many files were written.
    pub fn write_index<F>(&self, mut rows: Vec<IndexRow>, sink: F) -> Result<usize>
    where
        F: Fn(&str, &[u8]) -> Result<()>,
    {
        sort_newest_first(&mut rows);
        let mut written = 1;
        if self.config.site.sitemap {
            let layout = self.config.layout();
            let pages: Vec<(&str, DateTime<FixedOffset>)> =
                rows.iter().map(|r| (r.url.as_str(), r.updated)).collect();
            let map = super::sitemap::sitemap(&self.site.index_url, &pages);
            sink("sitemap.xml", map.as_bytes())?;
            let robots = super::sitemap::robots(&layout.feed_url("sitemap.xml"));
            sink("robots.txt", robots.as_bytes())?;
            written += 2;
        }
        let index = render_index_rows(self.config, self.templates, &self.site, rows)?;
        sink(&self.index_rel, index.as_bytes())?;
        Ok(written)
    }
}

/// Writes the page of every issue given (oldest first) and the index through
/// `sink(path under out, bytes)`. Returns how many files were written.
pub fn write<F>(config: &Config, templates: &Templates, issues: &[&Issue], sink: F) -> Result<usize>
where
    F: Fn(&str, &[u8]) -> Result<()> + Sync,
{
    let pages = Pages::new(config, templates)?;
    let mut sorted: Vec<&Issue> = issues.to_vec();
    sorted.sort_by(|a, b| a.date.cmp(&b.date).then_with(|| a.path.cmp(&b.path)));
    let mut queue = pages.queue();
    let mut ready = Vec::new();
    let mut rows = Vec::new();
    for issue in sorted {
        let row = IndexRow::of(config, issue);
        ready.extend(queue.push(row.placed(), issue));
        rows.push(row);
    }
    ready.extend(queue.finish());
    ready
        .par_iter()
        .try_for_each(|r| pages.write_page(r.payload, r.payload.page_html(), &r.nav, &sink))?;
    let others = pages.write_index(rows, &sink)?;
    Ok(issues.len() + others)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Item;
    use chrono::DateTime;
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    fn config() -> Config {
        Config::parse(
            "[site]\ntitle = \"Weekly & <Co>\"\nbase_url = \"https://example.com\"\nissue_path = \"/weekly/{slug}.html\"\n",
            Path::new("t.toml"),
        )
        .unwrap()
    }

    fn issue(slug: &str, date: &str, title: &str) -> Issue {
        let date = DateTime::parse_from_rfc3339(date).unwrap();
        Issue {
            path: PathBuf::from(format!("issues/{slug}.md")),
            slug: slug.into(),
            id: format!("https://example.com/weekly/{slug}.html"),
            url: format!("https://example.com/weekly/{slug}.html"),
            title: title.into(),
            description: Some("About <things>".into()),
            date,
            updated: date,
            draft: false,
            lang: None,
            tags: vec![],
            number: None,
            html: "<h2 id=\"first-item\">First</h2><p>notes</p>".into(),
            page_html: None,
            text: None,
            feed: Default::default(),
            items: vec![Item {
                title: "First".into(),
                anchor: "first-item".into(),
                links: vec![],
                html: "<p>notes</p>".into(),
                text: Some("notes".into()),
                feed: Default::default(),
            }],
        }
    }

    /// Every file `write` writes: its path under `out` and its text.
    fn written(c: &Config, t: &Templates, issues: &[&Issue]) -> Vec<(String, String)> {
        let files = Mutex::new(Vec::new());
        let n = write(c, t, issues, |rel, bytes| {
            files
                .lock()
                .unwrap()
                .push((rel.to_string(), String::from_utf8(bytes.to_vec()).unwrap()));
            Ok(())
        })
        .unwrap();
        let files = files.into_inner().unwrap();
        assert_eq!(n, files.len());
        files
    }

    #[test]
    fn an_issue_never_replaces_the_site_home_page() {
        let mut c = config();
        c.site.issue_path = "/{slug}.html".into();
        let t = Templates::builtin().unwrap();
        let home = issue("index", "2018-12-31T09:00:00Z", "Home?");
        let written = Mutex::new(Vec::new());
        let err = write(&c, &t, &[&home], |rel, _| {
            written.lock().unwrap().push(rel.to_string());
            Ok(())
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with(
                "issues/index.md: the page of issue `index` would replace the site's home page"
            ),
            "{err}"
        );
        assert!(written.lock().unwrap().is_empty());
        // Nor the archive index beside the pages.
        c.site.issue_path = "/weekly/{slug}.html".into();
        let err = write(&c, &t, &[&home], |_, _| Ok(()))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("issues/index.md: the page of issue `index` would replace the archive index `weekly/index.html`"),
            "{err}"
        );
        // A clash with any other output names the issue too.
        let err = write(
            &c,
            &t,
            &[&issue("2019-01", "2018-12-31T09:00:00Z", "A")],
            |rel, _| {
                if rel == "weekly/2019-01.html" {
                    anyhow::bail!("two outputs would be written to `{rel}`")
                }
                Ok(())
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("issues/2019-01.md: the page of this issue: two outputs"),
            "{err}"
        );
    }

    #[test]
    fn pages_and_index_land_beside_each_other() {
        let c = config();
        let t = Templates::builtin().unwrap();
        let a = issue("2019-01", "2018-12-31T09:00:00Z", "One <script>");
        let b = issue("2019-02", "2019-01-07T09:00:00Z", "Two");
        let mut files = written(&c, &t, &[&a, &b]);
        assert_eq!(files.len(), 5);
        files.sort();
        let names: Vec<_> = files.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "robots.txt",
                "sitemap.xml",
                "weekly/2019-01.html",
                "weekly/2019-02.html",
                "weekly/index.html"
            ]
        );
        let files = files.split_off(2);
        let page = &files[0].1;
        assert!(page.contains("<title>One &lt;script&gt; · Weekly &amp; &lt;Co&gt;</title>"));
        assert!(page.contains(
            "<link rel=\"alternate\" type=\"application/atom+xml\" title=\"Weekly &amp; &lt;Co&gt; (Atom)\" href=\"https://example.com/atom.xml\">"
        ));
        assert!(page.contains("type=\"application/rss+xml\""));
        assert!(page.contains("href=\"https://example.com/feed.json\""));
        assert!(page.contains("id=\"first-item\""));
        assert!(page.contains("<style>"), "the page carries its stylesheet");
        let index = &files[2].1;
        let two = index.find("weekly/2019-02.html").unwrap();
        let one = index.find("weekly/2019-01.html").unwrap();
        assert!(two < one, "newest first");
        assert!(index.contains("About &lt;things&gt;"));
    }

    #[test]
    fn summary_is_the_description_else_the_item_titles_else_the_body_cut() {
        let mut i = issue("2019-01", "2018-12-31T09:00:00Z", "One");
        assert_eq!(summary(&i, Some("About it")), "About it");
        let item = i.items[0].clone();
        i.items = (0..30)
            .map(|k| Item {
                title: format!("Article number {k}"),
                ..item.clone()
            })
            .collect();
        let s = summary(&i, None);
        assert!(
            s.starts_with("Article number 0 · Article number 1 · "),
            "{s}"
        );
        assert!(s.ends_with(" · …"), "{s}");
        assert!(s.chars().count() <= SUMMARY_MAX + 4, "{s}");
        assert!(!s.contains("Article number 29"), "{s}");
        i.items.truncate(2);
        assert_eq!(summary(&i, None), "Article number 0 · Article number 1");
        i.items.clear();
        i.feed.summary = "word ".repeat(100);
        let s = summary(&i, None);
        assert!(
            s.ends_with("word…") && s.chars().count() <= SUMMARY_MAX,
            "{s}"
        );
        i.feed.summary = format!("{}。{}", "汉".repeat(150), "字".repeat(150));
        assert_eq!(summary(&i, None), format!("{}。…", "汉".repeat(150)));
        i.feed.summary = "短".into();
        assert_eq!(summary(&i, None), "短");
    }

    #[test]
    fn a_digest_of_link_lists_is_summed_up_by_its_first_list_links() {
        let mut i = issue("2019-01", "2018-12-31T09:00:00Z", "One");
        i.items.clear();
        i.feed.summary = "Hello and welcome.".into();
        i.html = "<p>Hello and <a href=\"https://r.example/\">welcome</a>.</p>\n<ul>\n<li><a href=\"https://a.example/\">Fast &amp; <em>safe</em></a></li>\n<li>[video] <a href=\"https://v.example/\">Not opening</a></li>\n<li>\n<p><a href=\"https://b.example/\">Loose   item</a> by someone</p>\n</li>\n</ul>".into();
        assert_eq!(summary(&i, None), "Fast & safe · Loose item");
        // One list link is not a digest: the body's start then.
        i.html = "<ul><li><a href=\"https://a.example/\">Only</a></li></ul>".into();
        assert_eq!(summary(&i, None), "Hello and welcome.");
        let many: String = (0..50)
            .map(|k| format!("<li><a href=\"https://a.example/{k}\">Link {k}</a></li>"))
            .collect();
        assert_eq!(list_links(&format!("<ul>{many}</ul>"), 30).len(), 4);
    }

    #[test]
    fn index_groups_by_year_and_labels_languages_only_when_there_are_two() {
        let c = Config::parse(
            "[site]\ntitle = \"W\"\nbase_url = \"https://example.com\"\nissue_path = \"/weekly/{slug}.html\"\n[serve]\npublic_url = \"https://example.com/list/\"\n[[feeds.extra]]\nname = \"zh\"\nmatch = \"*-CN.*\"\ntitle = \"W 中文\"\nlanguage = \"zh\"\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let t = Templates::builtin().unwrap();
        let mut cn = issue("2019-01-CN", "2019-01-07T09:00:00Z", "一");
        cn.path = PathBuf::from("issues/2019-01-CN.md");
        let en = issue("2019-01", "2019-01-07T09:00:00Z", "One");
        let old = issue("2018-50", "2018-12-10T09:00:00Z", "Older");
        let files = written(&c, &t, &[&cn, &en, &old]);
        let index = &files.iter().find(|f| f.0 == "weekly/index.html").unwrap().1;
        let at = |s: &str| index.find(s).unwrap_or_else(|| panic!("{s} in {index}"));
        assert!(at("<nav class=\"years\"") < at("id=\"y2019\""));
        assert!(at("href=\"#y2019\">2019</a><a href=\"#y2018\">2018</a>") > 0);
        assert!(at("id=\"y2019\"") < at("2019-01.html") && at("2019-01.html") < at("id=\"y2018\""));
        assert!(at("id=\"y2018\"") < at("2018-50.html"));
        assert!(at("<span class=\"lang\" lang=\"zh\">中文</span>") > 0);
        assert!(at("<span class=\"lang\" lang=\"en\">English</span>") > 0);
        // The sign-up form, and every feed set's links, come before the list.
        let form = at(
            "<form class=\"signup\" method=\"post\" action=\"https://example.com/list/subscribe\">",
        );
        assert!(form < at("id=\"y2019\""));
        assert!(
            at("name=\"email\"") > form
                && at("name=\"name\"") > form
                && at("name=\"website\"") > form
        );
        assert!(
            at("中文: <a href=\"https://example.com/zh.atom.xml\">Atom</a>") < at("id=\"y2019\"")
        );
        assert!(
            at("hreflang=\"zh\">\n") > 0
                || index.contains("href=\"https://example.com/zh.json\" hreflang=\"zh\"")
        );
        // One language: no labels, and no form without serve.public_url.
        let c = config();
        let files = written(&c, &t, &[&en, &old]);
        let index = &files.iter().find(|f| f.0 == "weekly/index.html").unwrap().1;
        assert!(!index.contains("class=\"lang\""), "{index}");
        assert!(!index.contains("<form"), "{index}");
        assert!(
            index.contains("Follow by feed: <a href=\"https://example.com/atom.xml\">Atom</a>"),
            "{index}"
        );
        let page = &files
            .iter()
            .find(|f| f.0 == "weekly/2019-01.html")
            .unwrap()
            .1;
        assert!(page.contains("id=\"ts-subscribe\""), "{page}");
        assert!(!page.contains("<form"), "{page}");
    }

    #[test]
    fn pages_link_their_twin_and_neighbours() {
        let c = Config::parse(
            "[site]\ntitle = \"W\"\nbase_url = \"https://example.com\"\nissue_path = \"/weekly/{slug}.html\"\n[[feeds.extra]]\nname = \"zh\"\nmatch = \"*-CN.*\"\nlanguage = \"zh\"\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let t = Templates::builtin().unwrap();
        let mut cn = issue("2019-01-CN", "2018-12-31T09:00:00Z", "一");
        cn.path = PathBuf::from("issues/2019-01-CN.md");
        let en = issue("2019-01", "2018-12-31T09:00:00Z", "One");
        let next = issue("2019-02", "2019-01-07T09:00:00Z", "Two");
        let files = written(&c, &t, &[&next, &cn, &en]);
        let page = |n: &str| &files.iter().find(|f| f.0 == n).unwrap().1;
        let one = page("weekly/2019-01.html");
        assert!(one.contains("<link rel=\"alternate\" hreflang=\"zh\" href=\"https://example.com/weekly/2019-01-CN.html\">"), "{one}");
        assert!(one.contains("<link rel=\"alternate\" hreflang=\"en\" href=\"https://example.com/weekly/2019-01.html\">"));
        assert!(one.contains("<span class=\"here\" lang=\"en\">English</span> / <a href=\"https://example.com/weekly/2019-01-CN.html\" hreflang=\"zh\" lang=\"zh\">中文</a>"));
        assert!(one.contains(
            "<a class=\"next\" rel=\"next\" href=\"https://example.com/weekly/2019-02.html\">"
        ));
        assert!(!one.contains("rel=\"prev\""));
        let zh = page("weekly/2019-01-CN.html");
        assert!(zh.contains(">English</a>"), "{zh}");
        assert!(
            !zh.contains("rel=\"next\""),
            "the next issue is in the other set: {zh}"
        );
        let two = page("weekly/2019-02.html");
        assert!(two.contains("<a class=\"prev\" rel=\"prev\" href=\"https://example.com/weekly/2019-01.html\"><small>← Older · 31 December 2018</small>One</a>"), "{two}");
        assert!(!two.contains("hreflang"), "no twin: {two}");
    }

    #[test]
    fn sitemap_can_be_turned_off_and_no_page_may_replace_it() {
        let mut c = config();
        let t = Templates::builtin().unwrap();
        let a = issue("2019-01", "2018-12-31T09:00:00Z", "One");
        c.site.sitemap = false;
        let files = written(&c, &t, &[&a]);
        assert!(files
            .iter()
            .all(|f| f.0 != "sitemap.xml" && f.0 != "robots.txt"));
        c.site.sitemap = true;
        c.site.issue_path = "/{slug}.xml".into();
        let mut s = issue("sitemap", "2018-12-31T09:00:00Z", "S");
        s.path = PathBuf::from("issues/sitemap.md");
        let err = write(&c, &t, &[&s], |_, _| Ok(())).unwrap_err().to_string();
        assert!(
            err.contains("would replace the sitemap `sitemap.xml`"),
            "{err}"
        );
    }

    #[test]
    fn issue_of_an_extra_feed_advertises_that_feed() {
        let c = Config::parse(
            "[site]\ntitle = \"W\"\nbase_url = \"https://example.com\"\nissue_path = \"/weekly/{slug}.html\"\n[[feeds.extra]]\nname = \"zh\"\nmatch = \"*-CN.*\"\ntitle = \"W 中文\"\nlanguage = \"zh\"\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let t = Templates::builtin().unwrap();
        let mut cn = issue("2019-01-CN", "2018-12-31T09:00:00Z", "一");
        cn.path = PathBuf::from("issues/2019-01-CN.md");
        let en = issue("2019-01", "2018-12-31T09:00:00Z", "One");
        let files = written(&c, &t, &[&cn, &en]);
        let page = |n: &str| &files.iter().find(|f| f.0 == n).unwrap().1;
        let zh = page("weekly/2019-01-CN.html");
        assert!(zh.contains("href=\"https://example.com/zh.atom.xml\""));
        assert!(zh.contains("href=\"https://example.com/zh.json\""));
        assert!(zh.contains("<html lang=\"zh\">"));
        let main = page("weekly/2019-01.html");
        assert!(main.contains("href=\"https://example.com/atom.xml\""));
    }

    #[test]
    fn an_issue_in_two_extra_feeds_is_in_both_and_its_page_advertises_the_first() {
        let c = Config::parse(
            "[site]\ntitle = \"W\"\nbase_url = \"https://example.com\"\nissue_path = \"/weekly/{slug}.html\"\n\
             [[feeds.extra]]\nname = \"zh\"\nmatch = \"*-CN.*\"\nlanguage = \"zh\"\n\
             [[feeds.extra]]\nname = \"jan\"\nmatch = \"2019-01*\"\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let mut cn = issue("2019-01-CN", "2018-12-31T09:00:00Z", "一");
        cn.path = PathBuf::from("issues/2019-01-CN.md");
        let en = issue("2019-02", "2019-01-07T09:00:00Z", "Two");
        let sets = crate::emit::feed_sets(&c, &[&cn, &en]);
        let slugs =
            |k: usize| -> Vec<&str> { sets[k].issues.iter().map(|i| i.slug.as_str()).collect() };
        assert_eq!(
            (sets[1].name.as_str(), sets[2].name.as_str()),
            ("zh", "jan")
        );
        assert_eq!(slugs(0), ["2019-02"], "the main feeds lose it");
        assert_eq!(slugs(1), ["2019-01-CN"]);
        assert_eq!(slugs(2), ["2019-01-CN"]);
        let t = Templates::builtin().unwrap();
        let files = written(&c, &t, &[&cn, &en]);
        let page = &files
            .iter()
            .find(|f| f.0 == "weekly/2019-01-CN.html")
            .unwrap()
            .1;
        assert!(
            page.contains("href=\"https://example.com/zh.atom.xml\""),
            "{page}"
        );
        assert!(!page.contains("jan.atom.xml"), "{page}");
        assert!(page.contains("<html lang=\"zh\">"));
    }

    #[test]
    fn only_templates_whose_tags_name_text_need_it() {
        assert!(tags_mention_text("<p>{{ issue.text }}</p>"));
        assert!(tags_mention_text(
            "{% for i in issue.items %}{{i.text|safe}}{% endfor %}"
        ));
        assert!(tags_mention_text("{{ issue[\"text\"] }}"));
        assert!(tags_mention_text("{% set t = issue | json_encode() %}"));
        assert!(tags_mention_text("{{ __tera_context }}"));
        assert!(!tags_mention_text(
            "<style>p { text-align: left }</style>{{ issue.title }} text {{ issue.texts }}"
        ));
        assert!(!tags_mention_text("{ text } {{ issue.html | safe }}"));
        assert!(!tags_mention_text("unclosed {{ issue.title"));
    }

    #[test]
    fn pages_read_text_only_for_a_user_template_that_names_it() {
        let mut c = config();
        assert!(
            !pages_read_text(&c),
            "the built-in pages never show the text"
        );
        let dir = tempfile::tempdir().unwrap();
        c.templates.dir = Some(dir.path().to_path_buf());
        std::fs::write(dir.path().join("notes.md"), "{{ issue.text }}").unwrap();
        std::fs::write(
            dir.path().join("issue.html"),
            "{% extends \"base.html\" %}{% block main %}{{ issue.title }}{% endblock main %}",
        )
        .unwrap();
        assert!(!pages_read_text(&c));
        std::fs::write(dir.path().join("extra.html"), "{{ item.text }}").unwrap();
        assert!(pages_read_text(&c));
        c.templates.dir = Some(dir.path().join("missing"));
        assert!(pages_read_text(&c));
    }

    #[test]
    fn builtin_pages_are_the_same_without_text() {
        let c = config();
        let t = Templates::builtin().unwrap();
        let site = SiteCtx::new(&c);
        let mut a = issue("2019-01", "2018-12-31T09:00:00Z", "One");
        a.text = Some("The plain text of the issue.".into());
        let with = render_page(&t, &site, &a).unwrap();
        a.text = None;
        a.items[0].text = None;
        assert_eq!(with, render_page(&t, &site, &a).unwrap());
        assert!(!with.contains("The plain text"));
    }

    #[test]
    fn out_path_strips_feeds_path_and_refuses_escapes() {
        let mut c = config();
        let out_path = |c: &Config, p: &str| c.layout().out_path(p);
        assert_eq!(out_path(&c, "/weekly/a.html").unwrap(), "weekly/a.html");
        assert_eq!(out_path(&c, "/weekly/a/").unwrap(), "weekly/a/index.html");
        assert!(out_path(&c, "/weekly/../x.html").is_err());
        c.feeds.path = "/news/".into();
        assert!(out_path(&c, "/weekly/a.html").is_err());
    }
}
