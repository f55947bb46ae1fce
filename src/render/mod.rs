//! The one pulldown-cmark pipeline: the document of an issue body ([`Doc`]) and everything
//! rendered from it (HTML, the text part, the feeds' bodies and summaries).
//!
//! An issue body is parsed once into a vector of events that every output shares. While the
//! events are collected, filters replace component tags, make URLs absolute and reduce raw
//! HTML to an allow-list; afterwards a repeated leading H1 is dropped and headings get ids.
//! HTML and plain text of the whole body or of any range of it (an item) are rendered from
//! that one vector, so the Markdown is never parsed twice.
//!
//! Only raw HTML goes through the sanitizer (ammonia): block HTML as one fragment per block,
//! inline HTML tag by tag with open tags closed at the end of their block. Markdown itself
//! cannot produce active content, so sanitizing whole documents would cost time for nothing.

mod build;
mod depth;
pub(crate) mod feed;
mod page;
mod sanitize;
pub(crate) mod summary;
pub mod text;
mod url;
mod wrap;

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;

use pulldown_cmark::{CowStr, Event, HeadingLevel, Options, Tag, TagEnd};

use crate::html::escape as escape_html;

pub use feed::FeedFixes;
pub(crate) use page::ItemMark;
pub(crate) use wrap::wrap_paragraph;

/// The Markdown extensions issues may use.
pub fn options() -> Options {
    Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
}

/// What the pipeline needs to know about the site and the page.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'c> {
    /// `site.base_url`, without a trailing slash.
    pub base_url: &'c str,
    /// The absolute URL of the issue's page, for relative paths and fragments.
    pub page_url: &'c str,
    /// Component tag name to replacement HTML (`""` strips the tag).
    pub components: &'c BTreeMap<String, String>,
}

/// Something found while rendering that `check` reports, at a byte offset of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// A component tag with no entry in `[components]`; it was stripped.
    UnknownComponent { offset: usize, name: String },
    /// An image with a site path (`/static/x.png`), to look for in `issues.static_dir`.
    SitePathImage { offset: usize, path: String },
    /// The first place nesting went deeper than [`MAX_DEPTH`]; deeper levels were flattened.
    TooDeep { offset: usize },
}

pub use depth::MAX_DEPTH;

/// One issue body as a vector of filtered events.
#[derive(Debug)]
pub struct Doc<'a> {
    pub events: Vec<Event<'a>>,
    /// The body's byte offset each event starts at.
    pub(crate) offsets: Vec<usize>,
    /// Paragraphs that carry an `id` (the `Start(Paragraph)` index and the id), sorted.
    pub(crate) para_ids: Vec<(usize, String)>,
    pub notes: Vec<Note>,
    /// Links the feeds must fix, decided while the links were filtered.
    pub(crate) fixes: FeedFixes,
}

/// An anchor from a title: lower case letters and digits joined by `-` (`section` if none).
pub(crate) fn slugify(s: &str) -> String {
    slugify_events(&[Event::Text(CowStr::Borrowed(s))])
}

/// [`slugify`] of the text of some events, without collecting the text first.
fn slugify_events(events: &[Event]) -> String {
    let mut out = String::new();
    let mut dash = false;
    for e in events {
        let t = match e {
            Event::Text(t) | Event::Code(t) => t,
            Event::SoftBreak | Event::HardBreak => {
                dash = true;
                continue;
            }
            _ => continue,
        };
        for c in t.chars() {
            if c.is_alphanumeric() {
                if dash && !out.is_empty() {
                    out.push('-');
                }
                dash = false;
                if c.is_ascii() {
                    out.push(c.to_ascii_lowercase());
                } else {
                    out.extend(c.to_lowercase());
                }
            } else if c.is_whitespace() || matches!(c, '-' | '_' | '.' | '/' | ':') {
                dash = true;
            }
        }
    }
    if out.is_empty() {
        out.push_str("section");
    }
    out
}

/// Hands out anchors unique within one issue: `name`, `name-2`, `name-3`, ...
#[derive(Debug, Default)]
pub(crate) struct Anchors(HashSet<String>);

impl Anchors {
    pub(crate) fn unique(&mut self, base: String) -> String {
        if self.0.insert(base.clone()) {
            return base;
        }
        let mut n = 2;
        loop {
            let c = format!("{base}-{n}");
            if self.0.insert(c.clone()) {
                return c;
            }
            n += 1;
        }
    }
}

/// The plain text of inline events: text and code, breaks as spaces, whitespace and control
/// characters folded to single spaces.
pub(crate) fn inline_text<'e, 'a: 'e>(events: impl IntoIterator<Item = &'e Event<'a>>) -> String {
    let mut raw = String::new();
    for e in events {
        match e {
            Event::Text(t) | Event::Code(t) => raw.push_str(t),
            Event::SoftBreak | Event::HardBreak => raw.push(' '),
            _ => {}
        }
    }
    fold_line(&raw)
}

/// Folds runs of whitespace and control characters to one space and trims.
pub(crate) fn fold_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if c.is_whitespace() || c.is_control() {
            space = true;
        } else {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(c);
        }
    }
    out
}

/// A top-level block: its kind's first event index and the index after its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Block {
    pub start: usize,
    pub end: usize,
}

impl<'a> Doc<'a> {
    /// The top-level blocks, in order.
    pub(crate) fn blocks(&self) -> Vec<Block> {
        let mut out = Vec::new();
        let mut depth = 0usize;
        let mut start = 0;
        for (i, e) in self.events.iter().enumerate() {
            match e {
                Event::Start(_) => {
                    if depth == 0 {
                        start = i;
                    }
                    depth += 1;
                }
                Event::End(_) => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        out.push(Block { start, end: i + 1 });
                    }
                }
                _ => {
                    if depth == 0 {
                        out.push(Block {
                            start: i,
                            end: i + 1,
                        });
                    }
                }
            }
        }
        out
    }

    /// The plain text of the events in `range`.
    pub(crate) fn range_text(&self, range: Range<usize>) -> String {
        inline_text(&self.events[range])
    }

    /// The text of the first H1 anywhere in the body.
    pub(crate) fn first_h1(&self) -> Option<String> {
        let blocks = self.blocks();
        blocks.iter().find_map(|b| match &self.events[b.start] {
            Event::Start(Tag::Heading {
                level: HeadingLevel::H1,
                ..
            }) => Some(self.range_text(b.start..b.end)),
            _ => None,
        })
    }

    /// Drops the leading H1 (the first block that is not raw HTML) when `repeats` says its
    /// text repeats the title.
    pub(crate) fn drop_leading_h1(&mut self, repeats: impl Fn(&str) -> bool) {
        let Some(b) = self.leading_block() else {
            return;
        };
        if let Event::Start(Tag::Heading {
            level: HeadingLevel::H1,
            ..
        }) = self.events[b.start]
        {
            if repeats(&self.range_text(b.start..b.end)) {
                self.events.drain(b.start..b.end);
                self.offsets.drain(b.start..b.end);
            }
        }
    }

    /// The first top-level block that is not raw HTML.
    fn leading_block(&self) -> Option<Block> {
        let mut i = 0;
        while i < self.events.len() {
            let end = match &self.events[i] {
                Event::Start(_) => {
                    let mut depth = 0usize;
                    let mut j = i;
                    loop {
                        match self.events.get(j) {
                            Some(Event::Start(_)) => depth += 1,
                            Some(Event::End(_)) => {
                                depth -= 1;
                                if depth == 0 {
                                    break j + 1;
                                }
                            }
                            Some(_) => {}
                            None => break j,
                        }
                        j += 1;
                    }
                }
                _ => i + 1,
            };
            if !matches!(self.events[i], Event::Start(Tag::HtmlBlock)) {
                return Some(Block { start: i, end });
            }
            i = end;
        }
        None
    }

    /// Gives every heading an `id` unique within the body.
    pub(crate) fn assign_heading_ids(&mut self, anchors: &mut Anchors) {
        let mut i = 0;
        while i < self.events.len() {
            if let Event::Start(Tag::Heading { .. }) = self.events[i] {
                let end = self.events[i..]
                    .iter()
                    .position(|e| matches!(e, Event::End(TagEnd::Heading(_))))
                    .map_or(self.events.len(), |p| i + p);
                let id = anchors.unique(slugify_events(&self.events[i..end]));
                if let Event::Start(Tag::Heading { id: slot, .. }) = &mut self.events[i] {
                    *slot = Some(CowStr::from(id));
                }
                i = end;
            }
            i += 1;
        }
    }

    /// The `id` of the heading starting at `i`, if it is one.
    pub(crate) fn heading_id(&self, i: usize) -> Option<&str> {
        match &self.events.get(i)? {
            Event::Start(Tag::Heading { id: Some(id), .. }) => Some(id),
            _ => None,
        }
    }

    /// Appends the HTML of the events in `range`.
    pub fn push_html(&self, range: Range<usize>, out: &mut String) {
        self.push_html_with(range, &[], out);
    }

    /// [`Doc::push_html`] with some events replaced: `overrides` holds (event index, the
    /// event to render there), sorted by index.
    fn push_html_with(
        &self,
        range: Range<usize>,
        overrides: &[(usize, Event<'a>)],
        out: &mut String,
    ) {
        let events = self.events[range.clone()].iter().cloned();
        self.write_html(range, overrides, events, out);
    }

    /// Writes the HTML of `events`, which are the events in `range` (or clones of them),
    /// with the paragraph ids and `overrides` put in.
    fn write_html<'e>(
        &'e self,
        range: Range<usize>,
        overrides: &'e [(usize, Event<'a>)],
        events: impl Iterator<Item = Event<'a>> + 'e,
        out: &mut impl std::fmt::Write,
    ) {
        let ids = &self.para_ids;
        let mut k = ids.partition_point(|(i, _)| *i < range.start);
        let mut o = overrides.partition_point(|(i, _)| *i < range.start);
        let start = range.start;
        let iter = events.enumerate().map(move |(j, e)| {
            let at = start + j;
            let id = (k < ids.len() && ids[k].0 == at).then(|| {
                k += 1;
                &ids[k - 1].1
            });
            if o < overrides.len() && overrides[o].0 == at {
                o += 1;
                return overrides[o - 1].1.clone();
            }
            match id {
                Some(id) => Event::Html(CowStr::from(format!("<p id=\"{}\">", escape_html(id)))),
                None => e,
            }
        });
        // Writing to a `String` cannot fail.
        let _ = pulldown_cmark::html::write_html_fmt(out, iter);
    }

    /// The HTML of the events in `range`.
    pub fn html(&self, range: Range<usize>) -> String {
        let mut s = String::with_capacity(range.len() * 24);
        self.push_html(range, &mut s);
        s
    }

    /// The HTML of several ranges, one after the other.
    pub fn html_of(&self, ranges: &[Range<usize>]) -> String {
        let mut s = String::with_capacity(ranges.iter().map(|r| r.len() * 24).sum());
        for r in ranges {
            self.push_html(r.clone(), &mut s);
        }
        // Every issue's HTML is kept until the outputs are written: no spare capacity.
        s.shrink_to_fit();
        s
    }

    /// The HTML of the whole body (as `html_of` the whole range) and the HTML of each of
    /// `parts` (as `html_of` each), rendering the events once where it can: a part whose
    /// ranges start and end between top-level blocks is cut out of the whole body's HTML,
    /// since the HTML writer starts such a block as it would start a fresh document. A body
    /// with footnotes (numbered across the whole body) renders every part on its own.
    pub fn html_and_parts(&self, parts: &[&[Range<usize>]]) -> (String, Vec<String>) {
        use std::cell::RefCell;
        struct Shared<'r>(&'r RefCell<String>);
        impl std::fmt::Write for Shared<'_> {
            fn write_str(&mut self, s: &str) -> std::fmt::Result {
                self.0.borrow_mut().push_str(s);
                Ok(())
            }
        }
        let n = self.events.len();
        let out = RefCell::new(String::with_capacity(n * 24));
        // Where the HTML of each event starts, and the end: the writer asks for event `i`
        // once everything before it is written.
        let mut starts = Vec::with_capacity(n + 1);
        let mut depth = 0usize;
        // Whether event `i` starts at the top level, between blocks.
        let mut top = Vec::with_capacity(n + 1);
        let mut footnotes = false;
        let events = self.events.iter().map(|e| {
            starts.push(out.borrow().len());
            top.push(depth == 0);
            match e {
                Event::Start(Tag::FootnoteDefinition(_)) | Event::FootnoteReference(_) => {
                    footnotes = true
                }
                _ => {}
            }
            match e {
                Event::Start(_) => depth += 1,
                Event::End(_) => depth = depth.saturating_sub(1),
                _ => {}
            }
            e.clone()
        });
        self.write_html(0..n, &[], events, &mut Shared(&out));
        let mut html = out.into_inner();
        starts.push(html.len());
        top.push(depth == 0);
        let cut = |ranges: &[Range<usize>]| -> Option<String> {
            if footnotes {
                return None;
            }
            let mut s = String::new();
            for r in ranges {
                // A block starting after output that does not end a line gets a newline
                // first in the whole body, never at the start of a document.
                let fresh = starts[r.start] == 0 || html[..starts[r.start]].ends_with('\n');
                if !(top[r.start] && top[r.end] && fresh) {
                    return None;
                }
                s.push_str(&html[starts[r.start]..starts[r.end]]);
            }
            s.shrink_to_fit();
            Some(s)
        };
        let parts = parts
            .iter()
            .map(|ranges| match cut(ranges) {
                Some(s) => {
                    debug_assert_eq!(s, self.html_of(ranges), "{ranges:?}");
                    s
                }
                None => self.html_of(ranges),
            })
            .collect();
        html.shrink_to_fit();
        (html, parts)
    }

    /// The plain text of several ranges, rendered as one run of events.
    pub fn text_of(&self, ranges: &[Range<usize>]) -> String {
        let events = ranges.iter().flat_map(|r| self.events[r.clone()].iter());
        // Raw HTML goes through as it is: the text renderer keeps its text and turns `<br>`
        // and block tags into line breaks.
        let mut text = text::render(events.cloned());
        text.shrink_to_fit();
        text
    }

    /// Whether the body has no content at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::url::absolutize;
    use super::*;

    fn render(md: &str) -> (String, Vec<Note>) {
        let mut comps = BTreeMap::new();
        comps.insert("TechshackHeader".to_string(), String::new());
        comps.insert(
            "Subscribe".to_string(),
            "<form action=\"/s\"></form>".to_string(),
        );
        let s = Settings {
            base_url: "https://example.com",
            page_url: "https://example.com/weekly/2019-01.html",
            components: &comps,
        };
        let d = Doc::parse(md, &s);
        (d.html(0..d.events.len()), d.notes)
    }

    #[test]
    fn parts_cut_from_the_whole_body_equal_their_own_rendering() {
        let comps = BTreeMap::new();
        let s = Settings {
            base_url: "https://example.com",
            page_url: "https://example.com/weekly/2019-01.html",
            components: &comps,
        };
        let bodies = [
            "# T\n\nOne *a*.\n\n<div>raw</div>\n\n- x\n- y\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n---\n\n> q\n",
            "<b>open\n\nText[^1].\n\n[^1]: Note.\n",
            "<span>inline</span> text\n\n```\ncode\n```\n\nLast.",
        ];
        for body in bodies {
            let d = Doc::parse(body, &s);
            let n = d.events.len();
            // Every range between two event indexes, and pairs of them.
            let mut parts: Vec<Vec<Range<usize>>> = Vec::new();
            for a in 0..=n {
                for b in a..=n {
                    parts.push(std::iter::once(a..b).collect());
                    if b + 1 < n {
                        parts.push(vec![a..b, b + 1..n]);
                    }
                }
            }
            let refs: Vec<&[Range<usize>]> = parts.iter().map(|p| &p[..]).collect();
            let (whole, cut) = d.html_and_parts(&refs);
            assert_eq!(whole, d.html(0..n), "{body}");
            for (p, h) in parts.iter().zip(&cut) {
                assert_eq!(*h, d.html_of(p), "{body} {p:?}");
            }
        }
    }

    #[test]
    fn urls_become_absolute() {
        let (h, notes) =
            render("[a](/x) [b](y.html) [c](#f) ![i](/static/i.png) [d](https://o.org/)");
        assert!(h.contains("href=\"https://example.com/x\""), "{h}");
        assert!(
            h.contains("href=\"https://example.com/weekly/y.html\""),
            "{h}"
        );
        assert!(
            h.contains("href=\"https://example.com/weekly/2019-01.html#f\""),
            "{h}"
        );
        assert!(
            h.contains("src=\"https://example.com/static/i.png\""),
            "{h}"
        );
        assert!(h.contains("href=\"https://o.org/\""), "{h}");
        assert_eq!(
            notes,
            vec![Note::SitePathImage {
                offset: 28,
                path: "/static/i.png".into()
            }]
        );
    }

    #[test]
    fn srcset_and_poster_become_absolute() {
        let (h, notes) = render(
            "<picture><source srcset=\"a.webp 1x, /b.webp 2x\" type=\"image/webp\">\
             <img src=\"a.png\" srcset=\"a.png, /s/b.png 640w,c.png 2x,data:image/png;base64,QQ== 3x, \
             javascript:x 4x\" sizes=\"50vw\"></picture>\n\n\
             <video poster=\"p.jpg\" src=\"/v.mp4\" controls autoplay></video>\n",
        );
        assert!(
            h.contains(
                "srcset=\"https://example.com/weekly/a.webp 1x, https://example.com/b.webp 2x\""
            ),
            "{h}"
        );
        assert!(
            h.contains(
                "srcset=\"https://example.com/weekly/a.png, https://example.com/s/b.png 640w, \
                 https://example.com/weekly/c.png 2x\""
            ),
            "{h}"
        );
        assert!(
            h.contains("poster=\"https://example.com/weekly/p.jpg\""),
            "{h}"
        );
        assert!(h.contains("src=\"https://example.com/v.mp4\""), "{h}");
        assert!(
            h.contains("sizes=\"50vw\"") && h.contains("controls"),
            "{h}"
        );
        assert!(
            !h.contains("autoplay") && !h.contains("data:") && !h.contains("javascript"),
            "{h}"
        );
        let paths: Vec<_> = notes
            .iter()
            .filter_map(|n| match n {
                Note::SitePathImage { path, .. } => Some(path.as_str()),
                _ => None,
            })
            .collect();
        assert!(
            paths.contains(&"/s/b.png") && paths.contains(&"/b.webp"),
            "{paths:?}"
        );
    }

    #[test]
    fn srcset_candidates_split_like_html() {
        use super::sanitize::srcset_candidates;
        assert_eq!(
            srcset_candidates(" a.png 1x,b.png,, c.png (x, y) 2x , d.png,"),
            vec![
                ("a.png", "1x"),
                ("b.png", ""),
                ("c.png", "(x, y) 2x"),
                ("d.png", "")
            ]
        );
        assert_eq!(
            srcset_candidates("data:i/p;base64,QQ== 1x"),
            vec![("data:i/p;base64,QQ==", "1x")]
        );
        assert!(srcset_candidates(" , ").is_empty());
    }

    #[test]
    fn javascript_links_are_dropped() {
        let (h, _) = render("[x](javascript:alert(1))");
        assert!(!h.contains("javascript"), "{h}");
        // Browsers drop tabs and line breaks inside URLs and controls around them.
        for md in [
            "[a](java&#x09;script:alert(1))",
            "[b](java&#10;script:alert(2))",
            "[c](javascript&#13;:alert(3))",
            "[d](&#1;javascript:alert(4))",
            "[e](&#32;JaVa&#9;Script:alert(5))",
            "[f][r]\n\n[r]: jav&#x09;ascript:alert(6)",
            "![g](java&#x09;script:alert(7))",
            "[h](&#x0B;vbscript:msgbox(8))",
        ] {
            let (h, _) = render(md);
            let lower = h.to_ascii_lowercase();
            assert!(
                !lower.contains("script:") && !lower.contains("alert("),
                "{md} gave {h}"
            );
        }
        assert_eq!(
            absolutize("java\tscript:x", "https://e.com", "https://e.com/p.html"),
            None
        );
        assert_eq!(
            absolutize(" rel\n/x.png ", "https://e.com", "https://e.com/w/p.html").as_deref(),
            Some("https://e.com/w/rel/x.png")
        );
        assert_eq!(
            absolutize("\tmailto:a@b.c", "https://e.com", "https://e.com/p.html").as_deref(),
            Some("mailto:a@b.c")
        );
    }

    #[test]
    fn components_are_replaced_or_stripped() {
        let (h, notes) = render("<TechshackHeader />\n\ntext\n\n<Subscribe />\n\n<Unknown />\n");
        assert_eq!(h, "<p>text</p>\n<form action=\"/s\"></form>");
        assert!(matches!(&notes[0], Note::UnknownComponent { name, .. } if name == "Unknown"));
    }

    #[test]
    fn raw_html_is_reduced_to_the_allow_list() {
        let (h, _) = render(
            "<div onclick=\"x()\"><script>alert(1)</script><iframe src=\"e\"></iframe>ok <img src=\"/a.png\" style=\"w\"></div>\n",
        );
        assert!(
            !h.contains("script") && !h.contains("iframe") && !h.contains("onclick"),
            "{h}"
        );
        assert!(h.contains("ok"), "{h}");
        assert!(h.contains("src=\"https://example.com/a.png\""), "{h}");
    }

    #[test]
    fn inline_html_is_balanced_and_clean() {
        let (h, _) = render("a <small>b <b onmouseover=\"x\">c\n\nnext");
        assert_eq!(h, "<p>a <small>b <b>c</b></small></p>\n<p>next</p>\n");
        let (h, _) = render("a <span/> b");
        assert_eq!(h, "<p>a <span> b</span></p>\n");
        let (h, _) = render("x </b> <br> <img src=\"i.png\" onerror=\"x\"> <script>y</script>");
        assert!(
            !h.contains("</b>") && !h.contains("onerror") && !h.contains("<script"),
            "{h}"
        );
        assert!(h.contains("<br>"), "{h}");
        assert!(
            h.contains("src=\"https://example.com/weekly/i.png\""),
            "{h}"
        );
    }

    #[test]
    fn mermaid_and_comments_do_not_leak() {
        let (h, _) = render("<mermaid>\ngraph LR\nA --> B<script>x</script>\n</mermaid>\n\n<!--\n\n* [hidden](/h)\n\n-->\n\nafter\n");
        assert!(
            !h.contains("<mermaid") && !h.contains("<script") && !h.contains("hidden"),
            "{h}"
        );
        assert!(h.contains("A --&gt; B"), "{h}");
        assert!(h.ends_with("<p>after</p>\n"), "{h}");
    }

    #[test]
    fn the_filters_say_which_links_the_feeds_fix() {
        let comps = BTreeMap::new();
        let s = Settings {
            base_url: "https://example.com",
            page_url: "https://example.com/w/1.html",
            components: &comps,
        };
        let fixes = |md: &str| Doc::parse(md, &s).fixes;
        assert_eq!(fixes("[a](/x) <b>b</b> ![i]()"), FeedFixes::default());
        assert!(fixes("[a]()").page_links);
        assert!(fixes("[a](javascript:x)").page_links);
        let f = fixes("FromIterator<A> and <a href=\"\">x</a>");
        assert!(f.bare_anchors && f.page_links, "{f:?}");
    }

    #[test]
    fn slugs_and_anchors() {
        assert_eq!(slugify("What is HTTP/3 ?"), "what-is-http-3");
        assert_eq!(
            slugify("Clojure’s stability: lessons"),
            "clojures-stability-lessons"
        );
        assert_eq!(slugify("!!!"), "section");
        let mut a = Anchors::default();
        assert_eq!(a.unique("x".into()), "x");
        assert_eq!(a.unique("x".into()), "x-2");
        assert_eq!(a.unique("x".into()), "x-3");
    }

    #[test]
    fn comments_are_removed_whole() {
        let (h, _) = render("<!-- <script>x</script> -->\n\n<!--\n* [a](b)\n\n-->\n<p>after</p>\n");
        assert_eq!(h, "<p>after</p>\n");
        let (h, _) = render("<div>a<!-- x -->b<!--c--><!-- open\n");
        assert_eq!(h, "<div>ab</div>");
    }
}
