//! The site's layout: every output's path under `--out`, its site path and its URL (issue
//! pages, the archive index, feeds and their RFC 5005 archives), and the ids built from them.

use anyhow::{bail, Result};
use serde::Serialize;

/// The format of a feed document, which names its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedFormat {
    Atom,
    Rss,
    Json,
}

impl FeedFormat {
    /// The subscription documents of a family, in the order they are written.
    pub const ALL: [FeedFormat; 3] = [FeedFormat::Atom, FeedFormat::Rss, FeedFormat::Json];
}

/// Absolute URLs of one family's subscription documents, for autodiscovery and footers.
#[derive(Debug, Clone, Serialize)]
pub struct FeedLinks {
    pub atom: String,
    pub rss: String,
    pub json: String,
}

/// A view of the config that answers where things go; cheap to make, so made on demand
/// (`Config::layout`). It holds only the settings it needs, so it depends on nothing else.
#[derive(Debug, Clone, Copy)]
pub struct Layout<'a> {
    base_url: &'a str,
    issue_path: &'a str,
    feeds_path: &'a str,
    id_prefix: Option<&'a str>,
}

impl<'a> Layout<'a> {
    /// `base_url` without its trailing slash, `site.issue_path` with `{slug}`, `feeds.path`, and
    /// `site.id_prefix`.
    pub(crate) fn new(
        base_url: &'a str,
        issue_path: &'a str,
        feeds_path: &'a str,
        id_prefix: Option<&'a str>,
    ) -> Layout<'a> {
        Layout {
            base_url,
            issue_path,
            feeds_path,
            id_prefix,
        }
    }

    /// The absolute URL of a site path such as `/techshack.weekly/2019-01.html`.
    pub fn url(&self, site_path: &str) -> String {
        format!("{}{}", self.base_url, site_path)
    }

    /// The site's home page.
    pub fn home_url(&self) -> String {
        format!("{}/", self.base_url)
    }

    /// The site path of an issue's web page.
    pub fn issue_site_path(&self, slug: &str) -> String {
        self.issue_path.replace("{slug}", slug)
    }

    /// The absolute URL of an issue's web page.
    pub fn issue_url(&self, slug: &str) -> String {
        self.url(&self.issue_site_path(slug))
    }

    /// The stable entry id of an issue without an `id` of its own.
    pub fn issue_id(&self, slug: &str) -> String {
        match self.id_prefix {
            Some(p) => format!("{}/{slug}", p.trim_end_matches('/')),
            None => self.issue_url(slug),
        }
    }

    /// The site path of the archive index: `index.html` in the folder of the issue pages, or
    /// `archive/index.html` there when that folder is the site's root (its home page is not
    /// ours).
    pub fn index_site_path(&self) -> String {
        let before_slug = self.issue_path.split("{slug}").next().unwrap_or("/");
        let folder = match before_slug.rfind('/') {
            Some(i) => &before_slug[..=i],
            None => "/",
        };
        if folder == "/" {
            "/archive/index.html".to_string()
        } else {
            format!("{folder}index.html")
        }
    }

    /// The URL of the archive index's folder, which every feed names as its home page.
    pub fn index_url(&self) -> String {
        let path = self.index_site_path();
        self.url(path.strip_suffix("index.html").unwrap_or("/"))
    }

    /// The path under `out` of a site path, which must lie under `feeds.path`.
    pub fn out_path(&self, site_path: &str) -> Result<String> {
        let Some(rel) = site_path.strip_prefix(self.feeds_path) else {
            bail!(
                "`{site_path}` is not under feeds.path `{}`: the page could not be written under the output folder",
                self.feeds_path
            );
        };
        let mut rel = rel.to_string();
        if rel.is_empty() || rel.ends_with('/') {
            rel.push_str("index.html");
        }
        if rel
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        {
            bail!("`{site_path}` does not make a usable file path under the output folder");
        }
        Ok(rel)
    }

    /// The file name of a subscription document: `atom.xml`, `items.rss.xml`, `zh.atom.xml`.
    /// `name` is `""` for the main feeds, else the `[[feeds.extra]]` name.
    pub fn feed_file(&self, name: &str, items: bool, format: FeedFormat) -> String {
        let kind = match format {
            FeedFormat::Atom => "atom",
            FeedFormat::Rss => "rss",
            FeedFormat::Json => "json",
        };
        match (name.is_empty(), items, format) {
            (true, false, FeedFormat::Json) => "feed.json".to_string(),
            (true, true, FeedFormat::Json) => "items.json".to_string(),
            (false, _, FeedFormat::Json) => format!("{name}.json"),
            (true, false, _) => format!("{kind}.xml"),
            (true, true, _) => format!("items.{kind}.xml"),
            (false, _, _) => format!("{name}.{kind}.xml"),
        }
    }

    /// The RFC 5005 archive page `page` of the subscription document `file`:
    /// `archive/atom-3.xml`.
    pub fn archive_file(&self, file: &str, page: usize) -> String {
        format!("archive/{}-{page}.xml", file.trim_end_matches(".xml"))
    }

    /// The absolute URL of a file written under `--out`.
    pub fn feed_url(&self, file: &str) -> String {
        self.url(&format!("{}{}", self.feeds_path, file))
    }

    /// The id of a feed: under `site.id_prefix` when set, else its subscription document's URL.
    pub fn feed_id(&self, file: &str) -> String {
        match self.id_prefix {
            Some(p) => format!("{}/{}", p.trim_end_matches('/'), file),
            None => self.feed_url(file),
        }
    }

    /// The subscription documents of the family `name` (`""` for the main feeds).
    pub fn feed_links(&self, name: &str) -> FeedLinks {
        let url = |f| self.feed_url(&self.feed_file(name, false, f));
        FeedLinks {
            atom: url(FeedFormat::Atom),
            rss: url(FeedFormat::Rss),
            json: url(FeedFormat::Json),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(extra: &str) -> crate::config::Config {
        crate::config::Config::parse(
            &format!("[site]\ntitle = \"T\"\nbase_url = \"https://example.com\"\n{extra}"),
            Path::new("t.toml"),
        )
        .unwrap()
    }

    #[test]
    fn index_beside_pages_never_at_site_root() {
        let c = config("issue_path = \"/techshack.weekly/{slug}.html\"\n");
        // `issue_path` belongs to [site]: the line above lands there.
        assert_eq!(c.layout().index_site_path(), "/techshack.weekly/index.html");
        assert_eq!(
            c.layout().index_url(),
            "https://example.com/techshack.weekly/"
        );
        let c = config("");
        assert_eq!(c.layout().index_site_path(), "/archive/index.html");
        let c = config("issue_path = \"/news/{slug}/index.html\"\n");
        assert_eq!(c.layout().index_site_path(), "/news/index.html");
    }

    #[test]
    fn feed_files_urls_and_ids() {
        let c = config("issue_path = \"/feeds/{slug}.html\"\n[feeds]\npath = \"/feeds\"\n");
        let l = c.layout();
        assert_eq!(l.feed_file("", false, FeedFormat::Json), "feed.json");
        assert_eq!(l.feed_file("", true, FeedFormat::Rss), "items.rss.xml");
        assert_eq!(l.feed_file("zh", true, FeedFormat::Atom), "zh.atom.xml");
        assert_eq!(l.feed_file("zh", false, FeedFormat::Json), "zh.json");
        assert_eq!(
            l.archive_file("items.atom.xml", 2),
            "archive/items.atom-2.xml"
        );
        assert_eq!(l.feed_url("atom.xml"), "https://example.com/feeds/atom.xml");
        assert_eq!(
            l.feed_links("zh").rss,
            "https://example.com/feeds/zh.rss.xml"
        );
        let c = config("id_prefix = \"tag:example.com,2019:\"\nissue_path = \"/feeds/{slug}.html\"\n[feeds]\npath = \"/feeds/\"\n");
        assert_eq!(
            c.layout().feed_id("atom.xml"),
            "tag:example.com,2019:/atom.xml"
        );
        assert_eq!(c.layout().issue_id("a"), "tag:example.com,2019:/a");
    }
}
