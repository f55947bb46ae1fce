//! What the feeds need of a rendered body: text cleaned of what XML and feed readers
//! cannot take, and the fixes for links that only make sense on the issue's own page.

use std::borrow::Cow;

use super::summary::derive_summary;
use crate::html::{self, escape as escape_html, Token};
use crate::markers;
use crate::model::{FeedBody, Issue};

/// Removes what XML 1.0 forbids (C0 controls but tab, LF and CR; U+FFFE, U+FFFF), the C1
/// controls feed readers choke on, and the characters of [`markers::body`]. Borrows when there
/// is nothing to remove.
pub fn xml_clean(s: &str) -> Cow<'_, str> {
    if !has_forbidden(s.as_bytes()) {
        return Cow::Borrowed(s);
    }
    let bad = |c: char| {
        (c < '\u{20}' && !matches!(c, '\t' | '\n' | '\r'))
            || ('\u{7f}'..='\u{9f}').contains(&c)
            || matches!(
                c,
                '\u{fffe}' | '\u{ffff}' | markers::body::OPEN | markers::body::CLOSE
            )
    };
    Cow::Owned(s.chars().filter(|&c| !bad(c)).collect())
}

/// Whether UTF-8 text holds a character `xml_clean` removes; only the 64-byte blocks with a
/// suspect byte are looked at closely.
fn has_forbidden(b: &[u8]) -> bool {
    let at = |j: usize| b.get(j).copied().unwrap_or(0);
    let mut i = 0;
    while let Some(k) = first_suspect_block(&b[i..]) {
        let start = i + k;
        let end = (start + 64).min(b.len());
        for (j, &x) in b.iter().enumerate().take(end).skip(start) {
            let bad = match x {
                x if x < 0x20 => !matches!(x, b'\t' | b'\n' | b'\r'),
                0x7f => true,
                0xC2 => (0x80..=0x9f).contains(&at(j + 1)),
                0xEE => at(j + 1) == 0x80 && matches!(at(j + 2), 0x80 | 0x81),
                0xEF => at(j + 1) == 0xBF && matches!(at(j + 2), 0xBE | 0xBF),
                _ => false,
            };
            if bad {
                return true;
            }
        }
        i = end;
    }
    false
}

/// Where `xml_clean` has something to look at (the start of the first 64-byte block holding
/// it): a C0 control (but tab, LF, CR), DEL, or the lead byte of a C1 control (0xC2), of
/// U+E000/U+E001 (0xEE) or of U+FFFE/U+FFFF (0xEF). Branch-free within a block, so the
/// compiler vectorizes it.
fn first_suspect_block(b: &[u8]) -> Option<usize> {
    let flag = |x: u8| {
        (x < 0x20) & (x != b'\t') & (x != b'\n') & (x != b'\r')
            | (x == 0x7f)
            | (x == 0xC2)
            | (x == 0xEE)
            | (x == 0xEF)
    };
    let mut chunks = b.chunks_exact(64);
    for (k, c) in (&mut chunks).enumerate() {
        if c.iter().fold(false, |acc, &x| acc | flag(x)) {
            return Some(k * 64);
        }
    }
    let tail = b.len() - chunks.remainder().len();
    chunks.remainder().iter().any(|&x| flag(x)).then_some(tail)
}

/// `<p><a href="URL">TEXT</a></p>`, both escaped.
pub fn link_paragraph(url: &str, text: &str) -> String {
    format!(
        "<p><a href=\"{}\">{}</a></p>",
        escape_html(url),
        escape_html(&xml_clean(text))
    )
}

/// What the filters left for the feeds to fix, so they look for it only where it can be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedFixes {
    /// A link points at the page itself: its URL was empty (`href=""`), or unsafe and so
    /// removed (`href="#"`). The page keeps the reference; the feeds make it absolute.
    pub page_links: bool,
    /// Raw HTML left an anchor without `href`, which the feeds unwrap.
    pub bare_anchors: bool,
}

impl FeedFixes {
    /// Every fix, for HTML that did not come from the filters.
    pub const ALL: FeedFixes = FeedFixes {
        page_links: true,
        bare_anchors: true,
    };

    /// What a fragment the sanitizer wrote (or a component's HTML) may need.
    pub(super) fn note_html(&mut self, h: &str) {
        self.page_links |= h.contains(" href=\"\"") || h.contains(" href=\"#\"");
        self.bare_anchors |= h.contains(BARE_ANCHOR) || h.contains("<a>");
    }
}

/// Makes rendered HTML safe for every feed reader and validator, on top of `xml_clean`:
///
/// - U+FFFD (text that talks about replacement characters) is written `&#xFFFD;`, which shows
///   the same, where a raw one reads as a decoding error;
/// - an empty `href` or a bare `#` (a link whose URL was empty or removed) points at the
///   issue page, as an empty reference means, instead of staying relative;
/// - an anchor without `href` (raw HTML like `FromIterator<A>` taken for an `<a>` tag) is
///   unwrapped to its text, since inside a link it would nest anchors.
///
/// Each is rare, so the HTML is only searched for it and borrowed when clean.
///
/// `fixes` says which of the last two the body may need, as the renderer saw it.
pub fn html_clean<'h>(html: &'h str, page_url: &str, fixes: FeedFixes) -> Cow<'h, str> {
    use memchr::memmem;
    let mut out = xml_clean(html);
    let b = out.as_bytes();
    let fffd = memmem::find(b, "\u{FFFD}".as_bytes()).is_some();
    let empty = fixes.page_links
        && (memmem::find(b, b" href=\"\"").is_some() || memmem::find(b, b" href=\"#\"").is_some());
    let bare = fixes.bare_anchors
        && (memmem::find(b, BARE_ANCHOR.as_bytes()).is_some() || memmem::find(b, b"<a>").is_some());
    if fffd {
        out = Cow::Owned(out.replace('\u{FFFD}', "&#xFFFD;"));
    }
    if empty {
        let page = escape_html(page_url);
        out = Cow::Owned(
            out.replace(" href=\"\"", &format!(" href=\"{page}\""))
                .replace(" href=\"#\"", &format!(" href=\"{page}#\"")),
        );
    }
    if bare {
        out = Cow::Owned(unwrap_bare_anchors(&out));
    }
    out
}

/// What the sanitizer makes of a raw `<a>` without `href`.
const BARE_ANCHOR: &str = "<a rel=\"noopener noreferrer\">";

/// Removes every anchor start tag without attributes but `rel` (see `html_clean`) and the end
/// tag that closes it, keeping what is between.
fn unwrap_bare_anchors(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    // End tags still to drop: one per open bare anchor, the next `</a>` closing the innermost.
    let mut open_bare = 0usize;
    for (_, token) in html::tokens(html) {
        match token {
            Token::Tag(t) if !t.closing && (t.raw == BARE_ANCHOR || t.raw == "<a>") => {
                open_bare += 1;
            }
            Token::Tag(t) if t.closing && open_bare > 0 && t.raw == "</a>" => open_bare -= 1,
            t => out.push_str(t.raw()),
        }
    }
    out
}

/// Decides what the feeds show of an issue and of each of its items, from their HTML: the
/// issue parser calls it once the bodies are rendered, so the feed writers only read it.
/// `fixes` is what the renderer saw the body may need ([`FeedFixes::ALL`] when unknown).
pub fn settle(issue: &mut Issue, fixes: FeedFixes) {
    let summarize = issue
        .description
        .as_deref()
        .map_or(true, |d| d.trim().is_empty());
    let page = issue.url.as_str();
    issue.feed = feed_body(&issue.html, page, page, &issue.title, summarize, fixes);
    for item in &mut issue.items {
        // An item without notes still gets content: the link to its article, so no reader
        // shows an empty entry.
        let target = item
            .main_link()
            .map_or(issue.url.as_str(), |l| l.url.as_str());
        item.feed = feed_body(&item.html, page, target, &item.title, true, fixes);
    }
}

/// The feed body of `html` on the page `page_url`; an empty one links `link_to` by `title`.
fn feed_body(
    html: &str,
    page_url: &str,
    link_to: &str,
    title: &str,
    summarize: bool,
    fixes: FeedFixes,
) -> FeedBody {
    let feed_html = match html_clean(html, page_url, fixes) {
        h if h.trim().is_empty() => Some(link_paragraph(link_to, title)),
        Cow::Owned(h) => Some(h),
        Cow::Borrowed(_) => None,
    };
    let summary = if summarize {
        xml_clean(&derive_summary(feed_html.as_deref().unwrap_or(html))).into_owned()
    } else {
        String::new()
    };
    FeedBody {
        html: feed_html,
        summary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_clean_fixes_what_readers_and_validators_trip_on() {
        let page = "https://e.com/w/1.html";
        assert!(matches!(
            html_clean(
                "<p>fine <a href=\"https://x\">x</a></p>",
                page,
                FeedFixes::ALL
            ),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            html_clean("<p>a \u{FFFD} b\u{1}</p>", page, FeedFixes::ALL),
            "<p>a &#xFFFD; b</p>"
        );
        assert_eq!(
            html_clean("<a href=\"\">r/rust</a> <a href=\"#\">meetup</a>", page, FeedFixes::ALL),
            "<a href=\"https://e.com/w/1.html\">r/rust</a> <a href=\"https://e.com/w/1.html#\">meetup</a>"
        );
        assert_eq!(
            html_clean(
                "<a href=\"https://g/1\">add FromIterator<a rel=\"noopener noreferrer\"> to Box</a></a>. <a>x</a> <a href=\"https://g/2\">y</a>",
                page,
                FeedFixes::ALL
            ),
            "<a href=\"https://g/1\">add FromIterator to Box</a>. x <a href=\"https://g/2\">y</a>"
        );
    }
}
