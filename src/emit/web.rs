//! The web archive: one page per issue in the email's design, and the index of all issues.
//!
//! An issue's page goes to `out` + (`site.issue_path` less `feeds.path`); the index is
//! `index.html` in the folder of the pages (see [`crate::layout::Layout`]).

use anyhow::{bail, Result};
use chrono::{DateTime, FixedOffset};
use rayon::prelude::*;
use serde::Serialize;
use tera::Context;

use crate::config::Config;
use crate::model::Issue;
use crate::templates::{issue_context, SiteCtx, Templates};

/// The page templates, built in, that a build renders (`issue.html` extends `base.html`).
const PAGE_TEMPLATES: [&str; 3] = ["issue.html", "index.html", "base.html"];

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

/// The web page of one issue.
pub fn render_page(templates: &Templates, site: &SiteCtx, issue: &Issue) -> Result<String> {
    let ctx = issue_context(site, issue);
    templates.render("issue.html", &ctx)
}

#[derive(Serialize)]
struct IndexEntry<'a> {
    title: &'a str,
    url: &'a str,
    date: String,
    date_display: String,
    description: Option<&'a str>,
}

/// What the index shows of one issue.
#[derive(Debug, Clone)]
pub struct IndexRow {
    title: String,
    url: String,
    slug: String,
    date: DateTime<FixedOffset>,
    description: Option<String>,
}

impl IndexRow {
    pub fn of(issue: &Issue) -> IndexRow {
        IndexRow {
            title: issue.title.clone(),
            url: issue.url.clone(),
            slug: issue.slug.clone(),
            date: issue.date,
            description: issue.description.clone().filter(|d| !d.trim().is_empty()),
        }
    }
}

/// The index page listing `issues` newest first.
pub fn render_index(templates: &Templates, site: &SiteCtx, issues: &[&Issue]) -> Result<String> {
    let rows = issues.iter().map(|i| IndexRow::of(i)).collect();
    render_index_rows(templates, site, rows)
}

/// The index page listing the issues of `rows` newest first.
pub fn render_index_rows(
    templates: &Templates,
    site: &SiteCtx,
    mut rows: Vec<IndexRow>,
) -> Result<String> {
    rows.sort_by(|a, b| b.date.cmp(&a.date).then_with(|| b.slug.cmp(&a.slug)));
    let entries: Vec<IndexEntry<'_>> = rows
        .iter()
        .map(|i| IndexEntry {
            title: &i.title,
            url: &i.url,
            date: i.date.to_rfc3339(),
            date_display: i.date.format("%-d %B %Y").to_string(),
            description: i.description.as_deref(),
        })
        .collect();
    let mut ctx = Context::new();
    ctx.insert("site", site);
    ctx.insert("lang", &site.language);
    ctx.insert("issues", &entries);
    templates.render("index.html", &ctx)
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

    /// Writes the page of one issue through `sink(path under out, bytes)`.
    pub fn write_page<F>(&self, issue: &Issue, sink: F) -> Result<()>
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
        let page = render_page(self.templates, site, issue)
            .map_err(|e| anyhow::anyhow!("{}: {e:#}", issue.path.display()))?;
        sink(&rel, page.as_bytes())
            .map_err(|e| anyhow::anyhow!("{}: the page of this issue: {e:#}", issue.path.display()))
    }

    /// Writes the index of the issues of `rows` through `sink`.
    pub fn write_index<F>(&self, rows: Vec<IndexRow>, sink: F) -> Result<()>
    where
        F: FnOnce(&str, &[u8]) -> Result<()>,
    {
        let index = render_index_rows(self.templates, &self.site, rows)?;
        sink(&self.index_rel, index.as_bytes())
    }
}

/// Writes the page of every issue given and the index through `sink(path under out, bytes)`,
/// pages in parallel. Returns how many files were written.
pub fn write<F>(config: &Config, templates: &Templates, issues: &[&Issue], sink: F) -> Result<usize>
where
    F: Fn(&str, &[u8]) -> Result<()> + Sync,
{
    let pages = Pages::new(config, templates)?;
    issues
        .par_iter()
        .try_for_each(|issue| pages.write_page(issue, &sink))?;
    let rows = issues.iter().map(|i| IndexRow::of(i)).collect();
    pages.write_index(rows, &sink)?;
    Ok(issues.len() + 1)
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
        assert_eq!(files.len(), 3);
        files.sort();
        let names: Vec<_> = files.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "weekly/2019-01.html",
                "weekly/2019-02.html",
                "weekly/index.html"
            ]
        );
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
