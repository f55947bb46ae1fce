//! The plain-text rendering of Markdown events: what the email's text part is written from.
//!
//! Paragraphs are wrapped at [`WIDTH`] display columns (East Asian wide characters count two
//! and a line may break between them, never inside one); headings are underlined; lists and
//! quotes keep their markers; code blocks are indented and never wrapped; links become numbered
//! references listed at the end; raw HTML keeps only its text.

use std::collections::VecDeque;
use std::iter::Peekable;

use pulldown_cmark::{Event, HeadingLevel, Tag, TagEnd};
use unicode_width::UnicodeWidthStr;

use super::wrap::{wrap, MIN_WIDTH, WIDTH};
use crate::html::{self, Token};
use crate::markers;

/// Renders Markdown events as plain text.
pub fn render<'a>(events: impl Iterator<Item = Event<'a>>) -> String {
    let mut r = Renderer::default();
    r.run(events.peekable());
    r.finish()
}

#[derive(Debug)]
enum Container {
    Quote,
    Item { marker: String, marker_shown: bool },
}

#[derive(Debug)]
struct ListState {
    next: Option<u64>,
    tight: bool,
    first: bool,
}

#[derive(Default)]
struct Renderer {
    out: String,
    /// Inline text of the block being built; `\n` is a hard break.
    buf: String,
    containers: Vec<Container>,
    lists: Vec<ListState>,
    need_sep: bool,
    links: Vec<String>,
    /// Number of each link destination, for reuse (issues hold hundreds of links).
    link_numbers: std::collections::HashMap<String, usize>,
    /// Destination of each open link, `None` when the link is shown inline.
    open_links: Vec<(String, usize)>,
    /// Alt text of an open image.
    image_depth: usize,
    heading: Option<HeadingLevel>,
    code: Option<String>,
    in_metadata: bool,
    html: HtmlText,
    table_row: Vec<String>,
    in_table_head: bool,
}

impl Renderer {
    fn run<'a>(&mut self, mut events: Peekable<impl Iterator<Item = Event<'a>>>) {
        while let Some(e) = events.next() {
            if self.in_metadata {
                if let Event::End(TagEnd::MetadataBlock(_)) = e {
                    self.in_metadata = false;
                }
                continue;
            }
            if let Some(code) = self.code.as_mut() {
                match e {
                    Event::Text(t) => code.push_str(&t),
                    Event::End(TagEnd::CodeBlock) => self.end_code(),
                    _ => {}
                }
                continue;
            }
            match e {
                Event::Start(tag) => {
                    let next_is_para = matches!(events.peek(), Some(Event::Start(Tag::Paragraph)));
                    self.start(tag, next_is_para);
                }
                Event::End(tag) => self.end(tag),
                Event::Text(t) => self.text(&t),
                Event::Code(t) => {
                    self.buf.push('`');
                    self.text(&t);
                    self.buf.push('`');
                }
                Event::InlineMath(t) | Event::DisplayMath(t) => self.text(&t),
                Event::Html(h) | Event::InlineHtml(h) => {
                    let mut s = String::new();
                    self.html.feed(&h, &mut s);
                    let mut rest = s.as_str();
                    while let Some((i, marker)) = markers::text::find(rest) {
                        self.text(&rest[..i]);
                        match marker {
                            markers::text::BREAK => self.buf.push('\n'),
                            markers::text::LINK_OPEN => {
                                let dest = self.html.hrefs.pop_front().unwrap_or_default();
                                self.open_links.push((dest, self.buf.len()));
                            }
                            _ => self.end_link(false),
                        }
                        rest = &rest[i + marker.len_utf8()..];
                    }
                    self.text(rest);
                }
                Event::FootnoteReference(l) => {
                    self.buf.push_str("[^");
                    self.buf.push_str(&l);
                    self.buf.push(']');
                }
                Event::SoftBreak => self.buf.push(' '),
                Event::HardBreak => self.buf.push('\n'),
                Event::Rule => {
                    self.flush();
                    self.begin_block();
                    let p = self.prefix();
                    self.out.push_str(&p);
                    self.out.push_str("* * *\n");
                    self.need_sep = true;
                }
                Event::TaskListMarker(done) => {
                    self.buf.push_str(if done { "[x] " } else { "[ ] " })
                }
            }
        }
        self.flush();
    }

    fn start(&mut self, tag: Tag<'_>, next_is_para: bool) {
        match tag {
            Tag::Paragraph | Tag::HtmlBlock => self.flush(),
            Tag::Heading { level, .. } => {
                self.flush();
                self.heading = Some(level);
            }
            Tag::BlockQuote(_) => {
                self.flush();
                // The blank line before a quote belongs outside it.
                if self.need_sep && !self.out.is_empty() {
                    self.begin_block();
                }
                self.containers.push(Container::Quote);
            }
            Tag::CodeBlock(_) => {
                self.flush();
                self.code = Some(String::new());
            }
            Tag::List(start) => {
                let in_tight_item = self.lists.last().is_some_and(|l| l.tight)
                    && matches!(self.containers.last(), Some(Container::Item { .. }));
                self.flush();
                if in_tight_item {
                    self.need_sep = false;
                }
                self.lists.push(ListState {
                    next: start,
                    tight: true,
                    first: true,
                });
            }
            Tag::Item => {
                self.flush();
                let marker = match self.lists.last_mut() {
                    Some(l) => {
                        l.tight = !next_is_para;
                        if l.tight && !l.first {
                            self.need_sep = false;
                        }
                        l.first = false;
                        match l.next.as_mut() {
                            Some(n) => {
                                let m = format!("{n}. ");
                                *n += 1;
                                m
                            }
                            None => "* ".to_string(),
                        }
                    }
                    None => "* ".to_string(),
                };
                self.containers.push(Container::Item {
                    marker,
                    marker_shown: false,
                });
            }
            Tag::FootnoteDefinition(label) => {
                self.flush();
                self.buf.push_str("[^");
                self.buf.push_str(&label);
                self.buf.push_str("]: ");
            }
            Tag::Table(_) => self.flush(),
            Tag::TableHead => {
                self.in_table_head = true;
                self.table_row.clear();
            }
            Tag::TableRow => self.table_row.clear(),
            Tag::TableCell => self.buf.clear(),
            Tag::Link { dest_url, .. } => {
                self.open_links.push((dest_url.to_string(), self.buf.len()));
            }
            Tag::Image { dest_url, .. } => {
                self.image_depth += 1;
                self.buf.push_str("[image: ");
                self.open_links.push((dest_url.to_string(), self.buf.len()));
            }
            Tag::MetadataBlock(_) => self.in_metadata = true,
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Paragraph | TagEnd::HtmlBlock => {
                self.flush();
                // A new block tag resets what the HTML parser thought was open.
                self.html.reset_block();
            }
            TagEnd::Heading(_) => self.flush(),
            TagEnd::BlockQuote(_) => {
                self.flush();
                self.containers.pop();
            }
            TagEnd::List(_) => {
                self.flush();
                self.lists.pop();
                self.need_sep = true;
            }
            TagEnd::Item => {
                self.flush();
                self.containers.pop();
            }
            TagEnd::FootnoteDefinition => self.flush(),
            TagEnd::TableCell => {
                let cell = std::mem::take(&mut self.buf);
                self.table_row.push(collapse(&cell));
            }
            TagEnd::TableHead | TagEnd::TableRow => {
                let row = self.table_row.join(" | ");
                self.begin_block();
                self.need_sep = false;
                let p = self.prefix();
                self.out.push_str(&p);
                self.out.push_str(row.trim_end());
                self.out.push('\n');
                if self.in_table_head {
                    let p = self.prefix();
                    self.out.push_str(&p);
                    self.out.push_str(&"-".repeat(row.width().clamp(3, WIDTH)));
                    self.out.push('\n');
                    self.in_table_head = false;
                }
                self.table_row.clear();
            }
            TagEnd::Table => self.need_sep = true,
            TagEnd::Link => self.end_link(false),
            TagEnd::Image => self.end_link(true),
            _ => {}
        }
    }

    fn end_link(&mut self, image: bool) {
        let Some((dest, start)) = self.open_links.pop() else {
            return;
        };
        if image {
            self.image_depth = self.image_depth.saturating_sub(1);
            if self.buf.len() == start {
                // No alt text: say what it is.
                self.buf.truncate(start.saturating_sub("[image: ".len()));
                self.buf.push_str("[image");
            }
            self.buf.push(']');
        }
        let shown = self.buf.get(start..).unwrap_or("").trim();
        let bare = dest.strip_prefix("mailto:").unwrap_or(&dest);
        if dest.is_empty() || dest.starts_with('#') || shown == dest || shown == bare {
            return;
        }
        if self.image_depth > 0 {
            return;
        }
        let n = match self.link_numbers.get(&dest) {
            Some(&n) => n,
            None => {
                self.links.push(dest.clone());
                self.link_numbers.insert(dest, self.links.len());
                self.links.len()
            }
        };
        use std::fmt::Write as _;
        let _ = write!(self.buf, "[{n}]");
    }

    fn text(&mut self, t: &str) {
        for c in t.chars() {
            match c {
                '\r' => {}
                '\n' | '\t' => self.buf.push(' '),
                c if c.is_control() => {}
                c => self.buf.push(c),
            }
        }
    }

    fn end_code(&mut self) {
        let code = self.code.take().unwrap_or_default();
        self.begin_block();
        for line in code.trim_end_matches('\n').split('\n') {
            let p = self.prefix();
            self.out.push_str(&p);
            let line = line.trim_end_matches('\r');
            if !line.is_empty() {
                self.out.push_str("    ");
                self.out.push_str(line);
            }
            trim_line_end(&mut self.out);
            self.out.push('\n');
        }
        self.need_sep = true;
    }

    /// Writes the separating blank line a block needs before it.
    fn begin_block(&mut self) {
        if self.need_sep && !self.out.is_empty() {
            for c in &self.containers {
                if let Container::Quote = c {
                    self.out.push('>');
                }
            }
            self.out.push('\n');
        }
        self.need_sep = false;
    }

    /// The prefix of the next line; shows each list marker once.
    fn prefix(&mut self) -> String {
        let mut p = String::new();
        for c in self.containers.iter_mut() {
            match c {
                Container::Quote => p.push_str("> "),
                Container::Item {
                    marker,
                    marker_shown,
                } => {
                    if *marker_shown {
                        p.push_str(&" ".repeat(marker.width()));
                    } else {
                        p.push_str(marker);
                        *marker_shown = true;
                    }
                }
            }
        }
        p
    }

    fn prefix_width(&self) -> usize {
        self.containers
            .iter()
            .map(|c| match c {
                Container::Quote => 2,
                Container::Item { marker, .. } => marker.width(),
            })
            .sum()
    }

    /// Writes the inline text collected so far as a wrapped block.
    fn flush(&mut self) {
        let text = std::mem::take(&mut self.buf);
        let heading = self.heading.take();
        if text.trim().is_empty() {
            return;
        }
        self.begin_block();
        let avail = WIDTH.saturating_sub(self.prefix_width()).max(MIN_WIDTH);
        let mut widest = 0;
        for segment in text.split('\n') {
            let lines = wrap(segment, avail);
            for l in lines {
                widest = widest.max(l.width());
                let p = self.prefix();
                self.out.push_str(&p);
                self.out.push_str(&l);
                trim_line_end(&mut self.out);
                self.out.push('\n');
            }
        }
        if let Some(level) = heading {
            let rule = match level {
                HeadingLevel::H1 => Some('='),
                HeadingLevel::H2 => Some('-'),
                _ => None,
            };
            if let Some(ch) = rule {
                let p = self.prefix();
                self.out.push_str(&p);
                self.out.extend(std::iter::repeat(ch).take(widest.max(3)));
                self.out.push('\n');
            }
        }
        self.need_sep = true;
    }

    fn finish(mut self) -> String {
        self.flush();
        let mut out = self.out.trim_end().to_string();
        if !self.links.is_empty() {
            out.push_str("\n\n");
            for (i, l) in self.links.iter().enumerate() {
                out.push_str(&format!("[{}] {l}\n", i + 1));
            }
            while out.ends_with('\n') {
                out.pop();
            }
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out
    }
}

fn trim_line_end(out: &mut String) {
    while out.ends_with(' ') {
        out.pop();
    }
}

fn collapse(s: &str) -> String {
    s.split([' ', '\n'])
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reduces raw HTML, fed in pieces as pulldown-cmark hands it over, to its text:
/// tags and comments dropped, `script` and `style` bodies dropped, `<br>` as a line break,
/// character references decoded. What it finds besides text goes into the text as
/// [`markers::text`] marks.
#[derive(Default)]
struct HtmlText {
    /// The markup (a tag or a comment) the previous piece ended inside of.
    carry: String,
    skip: Option<&'static str>,
    /// The destinations of `<a>` tags opened and not yet taken by the renderer, in order.
    hrefs: VecDeque<String>,
    /// `<a>` tags open now, so a stray `</a>` closes nothing.
    open_anchors: usize,
}

impl HtmlText {
    fn reset_block(&mut self) {
        // A tag cut short ends with its block; a comment runs on.
        if !self.carry.starts_with("<!--") {
            self.carry.clear();
        }
    }

    fn feed(&mut self, piece: &str, out: &mut String) {
        // The marker characters mean something only when this reader puts them in; the same
        // characters in the HTML itself (from `&#2;` in an issue) are dropped.
        let piece = markers::text::strip(piece);
        let joined;
        let html: &str = if self.carry.is_empty() {
            &piece
        } else {
            self.carry.push_str(&piece);
            joined = std::mem::take(&mut self.carry);
            &joined
        };
        let mut text = String::new();
        for (_, token) in html::tokens(html) {
            match token {
                Token::Text(t) => {
                    if self.skip.is_none() {
                        text.push_str(t);
                    }
                }
                Token::Tag(tag) => self.tag(&tag, &mut text),
                Token::Comment { raw, closed: false } | Token::Unclosed(raw) => {
                    self.carry.push_str(raw)
                }
                Token::Comment { .. } => {}
            }
        }
        decode_entities(&text, out);
    }

    fn tag(&mut self, tag: &html::Tag, text: &mut String) {
        if let Some(skip) = self.skip {
            if tag.closing && tag.is(skip) {
                self.skip = None;
            }
            return;
        }
        let name = tag.name.to_ascii_lowercase();
        match name.as_str() {
            "script" if !tag.closing => self.skip = Some("script"),
            "style" if !tag.closing => self.skip = Some("style"),
            "br" => text.push(markers::text::BREAK),
            "a" if !tag.closing => {
                let mut href = String::new();
                decode_entities(tag.attr("href").unwrap_or("").trim(), &mut href);
                self.hrefs.push_back(href);
                self.open_anchors += 1;
                text.push(markers::text::LINK_OPEN);
            }
            "a" if self.open_anchors > 0 => {
                self.open_anchors -= 1;
                text.push(markers::text::LINK_CLOSE);
            }
            "img" if !tag.closing => {
                if let Some(alt) = tag.attr("alt").filter(|a| !a.trim().is_empty()) {
                    text.push_str("[image: ");
                    text.push_str(alt.trim());
                    text.push(']');
                }
            }
            "p" | "div" | "li" | "tr" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "table"
            | "ul" | "ol" | "blockquote" | "pre" | "section" | "details" | "summary" => {
                text.push(' ')
            }
            _ => {}
        }
    }
}

/// Decodes character references, dropping the control characters they stand for (but `\n`).
fn decode_entities(s: &str, out: &mut String) {
    html::decode_entities_into(s, out, |c| !c.is_control() || c == '\n');
}
#[cfg(test)]
mod tests {
    use super::*;
    use pulldown_cmark::{Options, Parser};

    fn md(s: &str) -> String {
        let opts = Options::ENABLE_TABLES
            | Options::ENABLE_STRIKETHROUGH
            | Options::ENABLE_TASKLISTS
            | Options::ENABLE_FOOTNOTES;
        render(Parser::new_ext(s, opts))
    }

    fn max_width(s: &str) -> usize {
        s.lines().map(|l| l.width()).max().unwrap_or(0)
    }

    #[test]
    fn headings_are_underlined_and_separated() {
        let t = md("# Title\n\nSome text.\n\n## Section\n\nMore.\n\n### Small\n\nEnd.");
        assert_eq!(
            t,
            "Title\n=====\n\nSome text.\n\nSection\n-------\n\nMore.\n\nSmall\n\nEnd.\n"
        );
    }

    #[test]
    fn links_become_numbered_references_listed_once() {
        let t = md(
            "Read [the post](https://a.example/x) and [again](https://a.example/x), \
                    then [other](https://b.example/) or <https://c.example/>.",
        );
        assert!(t.contains("the post[1]"), "{t}");
        assert!(t.contains("again[1]"), "{t}");
        assert!(t.contains("other[2]"), "{t}");
        assert!(
            t.contains("https://c.example/."),
            "autolink stays inline: {t}"
        );
        assert!(
            t.ends_with("\n\n[1] https://a.example/x\n[2] https://b.example/\n"),
            "{t}"
        );
    }

    #[test]
    fn raw_html_links_and_breaks_carry_over() {
        let t = md(
            "one<br>two <a href=\"https://a.example/?x=1&amp;y=2\">site</a> and \
                    [md](https://a.example/?x=1&y=2) </a> end\n\n\
                    <div>block <a href='https://b.example/'>b</a><br/>next</div>\n",
        );
        assert!(
            t.starts_with("one\ntwo site[1] and md[1] end\n\nblock b[2]\nnext"),
            "{t}"
        );
        assert!(
            t.ends_with("\n\n[1] https://a.example/?x=1&y=2\n[2] https://b.example/\n"),
            "{t}"
        );
    }

    #[test]
    fn marker_characters_in_the_html_change_no_link() {
        let t = md(
            "<div>Block \u{2}odd <a href=\"https://good2.example/\">good2</a> then \u{3}\u{1} \
                    <a href=\"https://good3.example/\">good3</a></div>\n",
        );
        assert!(t.starts_with("Block odd good2[1] then good3[2]"), "{t}");
        assert!(
            t.ends_with("[1] https://good2.example/\n[2] https://good3.example/\n"),
            "{t}"
        );
    }

    #[test]
    fn wraps_at_72_columns_and_keeps_long_urls_whole() {
        let long = "word ".repeat(60);
        let t = md(&format!("{long} https://example.com/{}", "x".repeat(100)));
        for l in t.lines() {
            assert!(
                l.width() <= WIDTH || !l.contains(' '),
                "line over 72 with a space: {l:?}"
            );
        }
        assert!(t.contains(&format!("https://example.com/{}", "x".repeat(100))));
    }

    #[test]
    fn cjk_wraps_between_characters_never_inside() {
        let zh = "容器编排系统负责在集群中调度应用，并在节点失败时重新启动它们。".repeat(6);
        let t = md(&zh);
        assert!(max_width(&t) <= WIDTH, "{t}");
        assert!(t.lines().count() > 2);
        // Joining the lines gives back the paragraph: no character lost or split.
        assert_eq!(t.lines().collect::<String>(), zh);
        // Closing punctuation never starts a line.
        for l in t.lines() {
            assert!(!l.starts_with('，') && !l.starts_with('。'), "{l}");
        }
    }

    #[test]
    fn mixed_cjk_and_latin_wraps_by_display_width() {
        let s = "使用 Kubernetes 部署服务，".repeat(10);
        let t = md(&s);
        assert!(max_width(&t) <= WIDTH, "{t}");
    }

    #[test]
    fn lists_nested_ordered_and_tight() {
        let t = md("Intro:\n\n* one\n* two\n  * inner\n* three\n\n3. c\n4. d\n");
        assert_eq!(
            t,
            "Intro:\n\n* one\n* two\n  * inner\n* three\n\n3. c\n4. d\n"
        );
    }

    #[test]
    fn list_item_continuation_lines_are_indented() {
        let t = md(&format!("* {}\n", "alpha ".repeat(20)));
        let lines: Vec<_> = t.lines().collect();
        assert!(lines[0].starts_with("* alpha"));
        assert!(lines[1].starts_with("  alpha"), "{t}");
        assert!(max_width(&t) <= WIDTH);
    }

    #[test]
    fn code_blocks_are_indented_and_not_wrapped() {
        let code = format!("let x = {};", "1 + ".repeat(40));
        let t = md(&format!(
            "Before.\n\n```rust\n{code}\n\n  indented\n```\n\nAfter."
        ));
        assert!(
            t.contains(&format!("\n    {code}\n\n      indented\n")),
            "{t}"
        );
        assert!(t.ends_with("\nAfter.\n"));
    }

    #[test]
    fn quotes_are_prefixed() {
        let t = md("> first para\n>\n> second para\n\nout");
        assert_eq!(t, "> first para\n>\n> second para\n\nout\n");
        let t = md("before\n\n> quoted\n\nafter");
        assert_eq!(t, "before\n\n> quoted\n\nafter\n");
    }

    #[test]
    fn raw_html_keeps_only_text() {
        let t = md("Hi <b>bold</b> &amp; <small>small</small><br>next\n\n<div onclick=\"x()\">\n<script>alert(1)</script>\n<p>kept &lt;text&gt;</p>\n</div>\n\n<!-- a\ncomment -->\n\nend");
        assert!(!t.contains('<') || t.contains("<text>"), "{t}");
        assert!(t.contains("Hi bold & small\nnext"), "{t}");
        assert!(!t.contains("alert"), "{t}");
        assert!(t.contains("kept <text>"), "{t}");
        assert!(!t.contains("comment"), "{t}");
        assert!(t.ends_with("end\n"));
    }

    #[test]
    fn markup_cut_across_pieces_is_read_whole() {
        // pulldown-cmark hands an HTML block over line by line.
        let t = md("<div><img\nalt=\"a > b\" src=\"/x.png\"> <!-- one\ntwo --> after</div>\n");
        assert_eq!(t, "[image: a > b] after\n");
    }

    #[test]
    fn images_show_alt_text() {
        let t = md("![a diagram](https://x.example/d.png)\n\n<img src=\"/y.png\" alt=\"raw pic\">");
        assert!(t.contains("[image: a diagram][1]"), "{t}");
        assert!(t.contains("[image: raw pic]"), "{t}");
    }

    #[test]
    fn tables_rows_and_rules() {
        let t = md("| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n");
        assert_eq!(t, "a | b\n-----\n1 | 2\n3 | 4\n");
    }

    #[test]
    fn rules_and_task_lists() {
        let t = md("one\n\n---\n\n- [x] done\n- [ ] todo\n");
        assert_eq!(t, "one\n\n* * *\n\n* [x] done\n* [ ] todo\n");
    }

    #[test]
    fn control_characters_never_reach_text() {
        let t = md("a\u{7}b\u{0}c");
        assert!(!t.chars().any(|c| c.is_control() && c != '\n'), "{t:?}");
    }

    #[test]
    fn nbsp_does_not_break() {
        let s = format!("{}a\u{a0}b", "x ".repeat(35));
        let t = md(&s);
        assert!(t.contains("a\u{a0}b"));
    }
}
