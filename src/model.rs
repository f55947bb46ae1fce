//! The model every output is built from: plain data, no I/O.

use std::path::PathBuf;

use chrono::{DateTime, FixedOffset};

/// One issue of the newsletter, parsed and rendered once.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    /// The source file.
    pub path: PathBuf,
    /// The file name without extension (`2019-01`, `2019-01-CN`).
    pub slug: String,
    /// Stable entry id: front matter `id`, else `{site.id_prefix}/{slug}`, else `url`.
    pub id: String,
    /// Absolute URL of the issue's web page.
    pub url: String,
    /// Plain text, one line (no CR, LF or other control characters).
    pub title: String,
    /// Plain text, markup stripped; `None` when absent or empty.
    pub description: Option<String>,
    pub date: DateTime<FixedOffset>,
    /// Front matter `updated`, else `date`.
    pub updated: DateTime<FixedOffset>,
    /// `published: false` or `draft: true`.
    pub draft: bool,
    /// Front matter `lang`, if any.
    pub lang: Option<String>,
    pub tags: Vec<String>,
    pub number: Option<String>,
    /// The body as HTML: sanitized, absolute URLs, no component tags, no repeated H1.
    pub html: String,
    /// The body as the email and the web page show it: `html` with each item's title marked
    /// `class="item-title"` and its source line `class="source"`, so the design can set them
    /// apart. `None` when there is nothing to mark (the page shows `html`).
    pub page_html: Option<String>,
    /// The body as plain text, wrapped at 72 columns, links as numbered references; `None`
    /// when it was not rendered (only the email's text part reads it).
    pub text: Option<String>,
    /// What the feeds show of the body.
    pub feed: FeedBody,
    /// The articles of the digest; empty for a prose issue.
    pub items: Vec<Item>,
}

/// One article of a digest.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Plain text, one line.
    pub title: String,
    /// Unique within the issue; the `id` of the item's block on the web page.
    pub anchor: String,
    /// Source links, the article first.
    pub links: Vec<Link>,
    /// The notes as HTML (sanitized, absolute URLs), without the heading and source line.
    pub html: String,
    /// The notes as plain text; `None` when it was not rendered.
    pub text: Option<String>,
    /// What the feeds show of the notes.
    pub feed: FeedBody,
}

/// What the feeds show of a body, decided when the body is rendered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FeedBody {
    /// The HTML for feed readers when it differs from the body's own: links the page resolves
    /// (an empty or a bare `#` one) pointed at the page, anchors without `href` unwrapped,
    /// what XML forbids removed; for an empty body, a link to the page or the article.
    /// `None` means the body's `html` as it is.
    pub html: Option<String>,
    /// Plain text: the start of the body's text, cut at a word. Empty for an issue with a
    /// description, which the feeds show instead.
    pub summary: String,
}

/// A link: its text and absolute URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub text: String,
    pub url: String,
}

impl Issue {
    /// The body the email and the web page show.
    pub fn page_html(&self) -> &str {
        self.page_html.as_deref().unwrap_or(&self.html)
    }

    /// The body the feeds show.
    pub fn feed_html(&self) -> &str {
        self.feed.html.as_deref().unwrap_or(&self.html)
    }

    /// Whether the issue appears in outputs built at `now` (drafts and future issues do not).
    pub fn is_published(&self, now: DateTime<FixedOffset>) -> bool {
        !self.draft && self.date <= now
    }
}

impl Item {
    /// The URL a reader wants to open: the source article, else `None` (use the page anchor).
    pub fn main_link(&self) -> Option<&Link> {
        self.links.first()
    }

    /// The notes the feeds show.
    pub fn feed_html(&self) -> &str {
        self.feed.html.as_deref().unwrap_or(&self.html)
    }
}
