//! The Tera templates of the email, the web archive and `serve`'s pages, and the `site` context
//! they are all rendered with.
//!
//! The binary embeds the default templates; a file of the same name in `[templates] dir`
//! replaces one, and any other `*.html` or `*.txt` file there is available to `{% include %}`.
//!
//! Every template gets the same context, `issue.text` and `item.text` (the plain text of the
//! email's text part) included. `build` renders that text only when a page may read it: the
//! built-in pages do not, and a user template whose tags name `text` (or dump a whole value with
//! `json_encode` or `__tera_context`) makes the build render it (see
//! [`crate::emit::web::pages_read_text`]).

use std::path::Path;

use anyhow::{bail, Context as _, Result};
use serde::Serialize;
use tera::{Context, Tera};

use crate::config::{Config, ExtraFeed};
pub use crate::layout::FeedLinks;
use crate::model::Issue;

/// The built-in templates, by file name: the site's and the email's, then `serve`'s.
pub const BUILTIN: [(&str, &str); 13] = [
    ("base.html", include_str!("../templates/base.html")),
    ("email.html", include_str!("../templates/email.html")),
    ("issue.html", include_str!("../templates/issue.html")),
    ("email.txt", include_str!("../templates/email.txt")),
    ("index.html", include_str!("../templates/index.html")),
    (
        "page_style.html",
        include_str!("../templates/page_style.html"),
    ),
    (
        "subscribe_box.html",
        include_str!("../templates/subscribe_box.html"),
    ),
    (
        "serve_layout.html",
        include_str!("../templates/serve_layout.html"),
    ),
    (
        "unsubscribe.html",
        include_str!("../templates/unsubscribe.html"),
    ),
    (
        "subscribe.html",
        include_str!("../templates/subscribe.html"),
    ),
    ("confirm.html", include_str!("../templates/confirm.html")),
    ("notice.html", include_str!("../templates/notice.html")),
    (
        "confirm_email.txt",
        include_str!("../templates/confirm_email.txt"),
    ),
];

/// The loaded set of templates, built-ins overridden by the user's.
pub struct Templates {
    tera: Tera,
}

impl Templates {
    /// The built-in templates overridden by the files in `config.templates.dir`.
    pub fn load(config: &Config) -> Result<Templates> {
        let mut sources: Vec<(String, String)> = BUILTIN
            .iter()
            .map(|(n, s)| (n.to_string(), s.to_string()))
            .collect();
        if let Some(dir) = &config.templates.dir {
            for (name, text) in read_dir(dir)? {
                match sources.iter_mut().find(|(n, _)| *n == name) {
                    Some(slot) => slot.1 = text,
                    None => sources.push((name, text)),
                }
            }
        }
        Self::from_sources(sources)
    }

    /// Only the built-in templates.
    pub fn builtin() -> Result<Templates> {
        Self::from_sources(
            BUILTIN
                .iter()
                .map(|(n, s)| (n.to_string(), s.to_string()))
                .collect(),
        )
    }

    fn from_sources(sources: Vec<(String, String)>) -> Result<Templates> {
        Ok(Templates {
            tera: new_tera(sources, "templates")?,
        })
    }

    /// Whether a template of that name is loaded (a built-in or one of `templates.dir`).
    pub fn has(&self, name: &str) -> bool {
        self.tera.get_template_names().any(|n| n == name)
    }

    /// Renders the template `name` with `ctx`.
    pub fn render(&self, name: &str, ctx: &Context) -> Result<String> {
        self.tera
            .render(name, ctx)
            .map_err(|e| anyhow::anyhow!("rendering template {name}: {}", chain(&e)))
    }
}

/// The built-in template of `techshack new`, used when `templates.dir` has no `issue.md`.
pub const ISSUE_MD: &str = include_str!("../templates/issue.md");

/// The text of `issue.md`, by the same override rule as the other templates: the user's in
/// `templates.dir`, else the built-in one. It renders once into a new issue file, so it is
/// not part of the set [`Templates`] holds.
pub fn issue_md(config: &Config) -> Result<String> {
    if let Some(dir) = &config.templates.dir {
        let p = dir.join("issue.md");
        if p.is_file() {
            return std::fs::read_to_string(&p)
                .with_context(|| format!("reading the template {}", p.display()));
        }
    }
    Ok(ISSUE_MD.to_string())
}

fn read_dir(dir: &Path) -> Result<Vec<(String, String)>> {
    if !dir.is_dir() {
        bail!(
            "templates.dir {} is not a folder: create it, or remove the key to use the built-in templates",
            dir.display()
        );
    }
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("reading templates folder {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("reading templates folder {}", dir.display()))?;
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !(name.ends_with(".html") || name.ends_with(".txt")) || !path.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading template {}", path.display()))?;
        out.push((name.to_string(), text));
    }
    out.sort();
    Ok(out)
}

/// A Tera instance over `sources` (name, text), escaping HTML with the crate's escaper;
/// `what` names the set in a parse error.
fn new_tera(sources: Vec<(String, String)>, what: &str) -> Result<Tera> {
    let mut tera = Tera::default();
    tera.autoescape_on(vec![".html", ".htm", ".xml"]);
    // Tera's own escaper also rewrites `/`, which turns every URL in an attribute into
    // `https:&#x2F;&#x2F;...`: valid, but it bloats pages and confuses link checkers.
    tera.set_escape_fn(escape_html);
    tera.add_raw_templates(sources)
        .map_err(|e| anyhow::anyhow!("{what}: {}", chain(&e)))?;
    Ok(tera)
}

/// Tera's error with its causes, which hold the line and the reason.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The escape function of the Tera instances, over the one HTML escaper of the crate.
fn escape_html(s: &str) -> String {
    crate::html::escape(s).into_owned()
}

/// `site` in every template.
#[derive(Debug, Clone, Serialize)]
pub struct SiteCtx {
    pub title: String,
    pub description: String,
    pub base_url: String,
    pub language: String,
    /// The site's home page.
    pub home_url: String,
    /// The archive index written beside the issue pages (its folder's URL).
    pub index_url: String,
    /// The feeds the page belongs to: the main ones, or an extra feed's.
    pub feeds: FeedLinks,
    /// Where the web pages' sign-up form posts (`serve.public_url` + `/subscribe`); `None`
    /// without a usable `serve.public_url`.
    pub subscribe_url: Option<String>,
}

impl SiteCtx {
    pub fn new(config: &Config) -> SiteCtx {
        let layout = config.layout();
        SiteCtx {
            title: config.site.title.clone(),
            description: config.site.description.clone(),
            base_url: config.site.base_url.clone(),
            language: config.site.language.clone(),
            home_url: layout.home_url(),
            index_url: layout.index_url(),
            feeds: layout.feed_links(""),
            subscribe_url: config
                .serve
                .public_url()
                .ok()
                .map(|u| format!("{u}/subscribe")),
        }
    }

    /// The site as the pages of an extra feed's issues show it: that feed's links, and its
    /// title and language when it has its own.
    pub fn for_extra(&self, config: &Config, feed: &ExtraFeed) -> SiteCtx {
        let mut s = self.clone();
        s.feeds = config.layout().feed_links(&feed.name);
        if let Some(t) = &feed.title {
            s.title = t.clone();
        }
        if let Some(l) = &feed.language {
            s.language = l.clone();
        }
        s
    }
}

/// `issue` in the email and page templates.
#[derive(Debug, Clone, Serialize)]
pub struct IssueCtx<'a> {
    pub title: &'a str,
    pub slug: &'a str,
    /// RFC 3339.
    pub date: String,
    /// `31 December 2018`.
    pub date_display: String,
    pub description: Option<&'a str>,
    /// The description wrapped for the text part.
    pub description_wrapped: Option<String>,
    pub url: &'a str,
    /// The body with each item's title marked `class="item-title"` and its source line
    /// `class="source"`, so the design can set them apart.
    pub html: &'a str,
    pub text: &'a str,
    pub number: Option<&'a str>,
    pub tags: &'a [String],
    /// The hidden first line mail clients show after the subject.
    pub preheader: String,
    pub items: Vec<ItemCtx<'a>>,
}

/// One item of `issue.items`.
#[derive(Debug, Clone, Serialize)]
pub struct ItemCtx<'a> {
    pub title: &'a str,
    pub anchor: &'a str,
    /// The item on the issue page (`page#anchor`).
    pub url: String,
    /// The source article, else the item on the page.
    pub main_url: String,
    pub links: Vec<LinkCtx<'a>>,
    pub html: &'a str,
    pub text: &'a str,
}

#[derive(Debug, Clone, Serialize)]
pub struct LinkCtx<'a> {
    pub text: &'a str,
    pub url: &'a str,
}

impl<'a> IssueCtx<'a> {
    pub fn new(issue: &'a Issue) -> IssueCtx<'a> {
        let description = issue
            .description
            .as_deref()
            .filter(|d| !d.trim().is_empty());
        let preheader = description
            .map(str::to_string)
            .or_else(|| issue.items.first().map(|i| i.title.clone()))
            .unwrap_or_default();
        let items = issue
            .items
            .iter()
            .map(|it| {
                let url = format!("{}#{}", issue.url, it.anchor);
                ItemCtx {
                    title: &it.title,
                    anchor: &it.anchor,
                    main_url: it
                        .main_link()
                        .map(|l| l.url.clone())
                        .unwrap_or_else(|| url.clone()),
                    url,
                    links: it
                        .links
                        .iter()
                        .map(|l| LinkCtx {
                            text: &l.text,
                            url: &l.url,
                        })
                        .collect(),
                    html: &it.html,
                    text: it.text.as_deref().unwrap_or_default(),
                }
            })
            .collect();
        IssueCtx {
            title: &issue.title,
            slug: &issue.slug,
            date: issue.date.to_rfc3339(),
            date_display: issue.date.format("%-d %B %Y").to_string(),
            description,
            description_wrapped: description.map(|d| crate::render::wrap_paragraph(d, "")),
            url: &issue.url,
            html: issue.page_html(),
            text: issue.text.as_deref().unwrap_or_default(),
            number: issue.number.as_deref(),
            tags: &issue.tags,
            preheader,
            items,
        }
    }
}

/// The context of `email.html`, `email.txt` and `issue.html`; `recipient` is added for email.
pub fn issue_context(site: &SiteCtx, issue: &Issue) -> Context {
    let mut ctx = Context::new();
    ctx.insert("site", site);
    ctx.insert("lang", issue.lang.as_deref().unwrap_or(&site.language));
    ctx.insert("issue", &IssueCtx::new(issue));
    ctx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        Config::parse(
            &format!("[site]\ntitle = \"T\"\nbase_url = \"https://example.com\"\n{extra}"),
            Path::new("t.toml"),
        )
        .unwrap()
    }

    #[test]
    fn builtins_parse_and_extend_base() {
        let t = Templates::builtin().unwrap();
        for (name, _) in BUILTIN {
            assert!(t.tera.get_template(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn user_file_overrides_builtin_of_same_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("email.txt"), "custom {{ issue.title }}").unwrap();
        let mut c = config("");
        c.templates.dir = Some(dir.path().to_path_buf());
        let t = Templates::load(&c).unwrap();
        let mut ctx = Context::new();
        ctx.insert("issue", &serde_json::json!({"title": "X"}));
        assert_eq!(t.render("email.txt", &ctx).unwrap(), "custom X");
        // The others stay built in.
        assert!(t.tera.get_template("issue.html").is_ok());
    }

    #[test]
    fn broken_user_template_names_file_and_reason() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("email.html"), "{% if %}").unwrap();
        let mut c = config("");
        c.templates.dir = Some(dir.path().to_path_buf());
        let e = Templates::load(&c).err().unwrap().to_string();
        assert!(e.contains("email.html"), "{e}");
    }

    #[test]
    fn missing_template_dir_is_an_error() {
        let mut c = config("");
        c.templates.dir = Some("/nonexistent/templates".into());
        let e = Templates::load(&c).err().unwrap().to_string();
        assert!(e.contains("is not a folder"), "{e}");
    }

    #[test]
    fn items_get_title_and_source_classes() {
        let c = config("");
        let md = "---\ntitle: T\ndate: 2019-01-07\n---\n\nIntro\n\n## A\n\n[a.example](https://a.example/)\n\nnotes\n\n## B [b](https://b.example/)\n\nNot a source line.\n\n## C [c](https://c.example/)\n\n<p><a href=\"https://c.example/\">c</a></p>\n";
        let (i, _) = crate::issue::parse_issue(&c, Path::new("x.md"), md.as_bytes());
        let i = i.unwrap();
        assert_eq!(
            IssueCtx::new(&i).html,
            "<p>Intro</p>\n<h2 class=\"item-title\" id=\"a\">A</h2>\n<p class=\"source\"><a href=\"https://a.example/\">a.example</a></p>\n<p>notes</p>\n<h2 class=\"item-title\" id=\"b-b\">B <a href=\"https://b.example/\">b</a></h2>\n<p>Not a source line.</p>\n<h2 class=\"item-title\" id=\"c-c\">C <a href=\"https://c.example/\">c</a></h2>\n<p class=\"source\"><a href=\"https://c.example/\" rel=\"noopener noreferrer\">c</a></p>\n"
        );
        let md = "---\ntitle: T\ndate: 2019-01-07\n---\n\n[One](https://one.com)\n\n---\n\n[Two](https://two.com)\n";
        let (i, _) = crate::issue::parse_issue(&c, Path::new("x.md"), md.as_bytes());
        let i = i.unwrap();
        assert!(
            IssueCtx::new(&i).html.starts_with(
                "<p class=\"item-title\" id=\"one\"><a href=\"https://one.com\">One</a></p>"
            ),
            "{}",
            i.page_html()
        );
        assert!(!i.html.contains("class="), "{}", i.html);
    }

    #[test]
    fn escape_keeps_slashes() {
        assert_eq!(
            escape_html("https://a/b?x=1&y=\"<'>"),
            "https://a/b?x=1&amp;y=&quot;&lt;&#39;&gt;"
        );
    }
}
