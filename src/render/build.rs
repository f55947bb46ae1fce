//! The event filters an issue body goes through while it is collected: component tags
//! replaced, URLs made absolute, raw HTML reduced to the allow-list and balanced.

use std::borrow::Cow;
use std::collections::HashSet;

use pulldown_cmark::{CowStr, Event, LinkType, Parser, Tag, TagEnd};

use super::depth::{Flattener, MAX_DEPTH};
use super::sanitize::Sanitizer;
use super::url::absolutize;
use super::{options, Doc, FeedFixes, Note, Settings};
use crate::html::{self, Tag as RawTag};
use crate::markers;

/// Elements that take no closing tag.
const VOID: &[&str] = &[
    "area", "br", "col", "embed", "hr", "img", "input", "source", "track", "wbr",
];

/// Inline tags without attributes that pass without asking the sanitizer.
const PLAIN_INLINE: &[&str] = &[
    "abbr", "b", "br", "cite", "code", "del", "dfn", "em", "i", "ins", "kbd", "mark", "q", "s",
    "samp", "small", "span", "strike", "strong", "sub", "sup", "tt", "u", "var", "wbr",
];

/// Elements whose content an HTML parser with scripting on reads as text (or never shows):
/// their fallback is what a feed reader or mail client, which runs no script, should show, so
/// the tags go and their content is sanitized as markup like any other.
const FALLBACK_WRAPPERS: &[&str] = &[
    "noscript", "noembed", "noframes", "xmp", "textarea", "title",
];

fn is_fallback_wrapper(name: &str) -> bool {
    FALLBACK_WRAPPERS
        .iter()
        .any(|w| w.eq_ignore_ascii_case(name))
}

/// Component tags are PascalCase (`TechshackHeader`); HTML tag names are not.
fn is_component_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_uppercase())
        && name.chars().any(|c| c.is_ascii_lowercase())
}

struct Builder<'a, 's> {
    settings: &'s Settings<'s>,
    events: Vec<Event<'a>>,
    offsets: Vec<usize>,
    notes: Vec<Note>,
    sanitizer: Option<Sanitizer>,
    /// Inline tags opened by raw HTML and the nesting depth they were opened at.
    open_inline: Vec<(String, usize)>,
    depth: usize,
    fixes: FeedFixes,
    /// Component and other non-element names the body closes somewhere (`</Name>`,
    /// `</mermaid>`): an unknown `<Name>` or `<word>` without one is a word in angle brackets
    /// (`Result<Option>`, `Vec<u8>`), kept as text.
    closed_names: HashSet<&'a str>,
    /// For each open Markdown container, whether its start event was kept (not flattened).
    kept: Vec<bool>,
    /// Whether nesting was flattened somewhere (noted once, at the first place).
    too_deep: bool,
}

impl<'a, 's> Builder<'a, 's> {
    fn sanitizer(&mut self) -> &Sanitizer {
        self.sanitizer
            .get_or_insert_with(|| Sanitizer::new(self.settings))
    }

    /// Whether a tag named `name` is a word in angle brackets (`Box<dyn Error>`, `Vec<T>`,
    /// `<i32>`), which is text: it names no element and the body never closes it. A browser
    /// would swallow it as an unknown tag. Paired unknown tags (`<mermaid>…</mermaid>`) stay
    /// markup, which the sanitizer unwraps.
    fn is_word_in_brackets(&self, name: &str) -> bool {
        !is_component_name(name)
            && !html::is_element_name(name)
            && !self.closed_names.contains(name)
    }

    fn note_too_deep(&mut self, offset: usize) {
        if !self.too_deep {
            self.too_deep = true;
            self.notes.push(Note::TooDeep { offset });
        }
    }

    fn push(&mut self, e: Event<'a>, offset: usize) {
        self.events.push(e);
        self.offsets.push(offset);
    }

    fn component_html(&mut self, tag: &RawTag, offset: usize) -> Option<String> {
        if tag.closing {
            return Some(String::new());
        }
        match self.settings.components.get(tag.name) {
            Some(h) => {
                self.fixes.note_html(h);
                Some(h.clone())
            }
            None => {
                self.notes.push(Note::UnknownComponent {
                    offset,
                    name: tag.name.to_string(),
                });
                None
            }
        }
    }

    /// One HTML block, given as the text of all its lines.
    fn html_block(&mut self, raw: &str, offset: usize) {
        let mut replacements: Vec<String> = Vec::new();
        let mut pre = String::with_capacity(raw.len());
        let room = MAX_DEPTH.saturating_sub(self.depth + self.open_inline.len());
        let mut flat = Flattener::new(room.max(1));
        // Comments go here as well: most raw HTML in real issues is comments, which the
        // sanitizer would only remove.
        for (_, token) in html::tokens(raw) {
            match token {
                html::Token::Comment { .. } => {}
                html::Token::Tag(t) if is_fallback_wrapper(t.name) => {}
                // `<T>` or `<dyn Error>` on a line of its own: text, as it is inline.
                html::Token::Tag(t) if self.is_word_in_brackets(t.name) => {
                    pre.push_str(&html::escape(t.raw))
                }
                html::Token::Tag(t) if !flat.keep(&t) => {}
                html::Token::Tag(t) if is_component_name(t.name) => {
                    if let Some(h) = self.component_html(&t, offset) {
                        if !h.is_empty() {
                            markers::component::push(&mut pre, replacements.len());
                            replacements.push(h);
                        }
                    }
                }
                t => pre.push_str(t.raw()),
            }
        }
        if flat.flattened {
            self.note_too_deep(offset);
        }
        let out = if pre.trim().is_empty() {
            String::new()
        } else if !replacements.is_empty() && markers::component::only_marks(&pre) {
            replacements.concat()
        } else {
            let cleaned = self.sanitizer().clean(&pre);
            self.fixes.note_html(&cleaned);
            for p in self.sanitizer().take_site_paths() {
                self.notes.push(Note::SitePathImage { offset, path: p });
            }
            if replacements.is_empty() {
                cleaned
            } else {
                markers::component::restore(&cleaned, &replacements)
            }
        };
        if out.trim().is_empty() {
            return;
        }
        self.push(Event::Start(Tag::HtmlBlock), offset);
        self.push(Event::Html(CowStr::from(out)), offset);
        self.push(Event::End(TagEnd::HtmlBlock), offset);
    }

    /// One inline HTML tag (pulldown-cmark hands them out one by one).
    fn inline_html(&mut self, raw: &str, offset: usize) {
        let t = raw.trim();
        if t.starts_with("<!") || t.starts_with("<?") {
            return;
        }
        let Some(tag) = html::tag_at(t, 0).filter(|tag| tag.raw.len() == t.len()) else {
            return;
        };
        if is_component_name(tag.name) {
            let self_closing = t.trim_end_matches('>').trim_end().ends_with('/');
            let known = self.settings.components.contains_key(tag.name);
            if !known && !self_closing && !self.closed_names.contains(tag.name) {
                self.push(Event::Text(CowStr::from(t.to_string())), offset);
                return;
            }
            if let Some(h) = self.component_html(&tag, offset) {
                if !h.is_empty() {
                    self.push(Event::InlineHtml(CowStr::from(h)), offset);
                }
            }
            return;
        }
        if self.is_word_in_brackets(tag.name) {
            self.push(Event::Text(CowStr::from(t.to_string())), offset);
            return;
        }
        let name = tag.name.to_ascii_lowercase();
        if tag.closing {
            if let Some(pos) = self.open_inline.iter().rposition(|(n, _)| *n == name) {
                let closers = self.close_inline_from(pos);
                self.push(Event::InlineHtml(CowStr::from(closers)), offset);
            }
            return;
        }
        let simple = PLAIN_INLINE.contains(&name.as_str())
            && t[1 + tag.name.len()..]
                .trim_start_matches('/')
                .trim()
                .trim_end_matches('/')
                .trim()
                == ">";
        let open = if simple {
            format!("<{name}>")
        } else {
            let cleaned = self.sanitizer().clean(t);
            self.fixes.note_html(&cleaned);
            for p in self.sanitizer().take_site_paths() {
                self.notes.push(Note::SitePathImage { offset, path: p });
            }
            let prefix = format!("<{name}");
            if !cleaned.starts_with(&prefix) {
                return;
            }
            match html::tag_end(&cleaned, 0) {
                Some(end) => cleaned[..end].to_string(),
                None => return,
            }
        };
        // Browsers read `<span/>` as an open tag, so it is closed like one.
        if !VOID.contains(&name.as_str()) {
            if self.depth + self.open_inline.len() >= MAX_DEPTH {
                self.note_too_deep(offset);
                return;
            }
            self.open_inline.push((name, self.depth));
        }
        self.push(Event::InlineHtml(CowStr::from(open)), offset);
    }

    /// Closing tags for the open inline tags from `pos` up, innermost first.
    fn close_inline_from(&mut self, pos: usize) -> String {
        let mut s = String::new();
        for (n, _) in self.open_inline.drain(pos..).rev() {
            s.push_str("</");
            s.push_str(&n);
            s.push('>');
        }
        s
    }

    fn link_url(&mut self, url: CowStr<'a>, image: bool, offset: usize) -> CowStr<'a> {
        let u: &str = &url;
        if image && u.starts_with('/') && !u.starts_with("//") {
            self.notes.push(Note::SitePathImage {
                offset,
                path: u.to_string(),
            });
        }
        let abs = absolutize(u, self.settings.base_url, self.settings.page_url);
        if !image && abs.as_deref().map_or(true, str::is_empty) {
            self.fixes.page_links = true;
        }
        let abs = match abs {
            Some(Cow::Borrowed(b)) if b.len() == u.len() => return url,
            Some(c) => c.into_owned(),
            // The one place a removed URL is decided: the link stays, pointing at the page.
            None => "#".to_string(),
        };
        CowStr::from(abs)
    }

    fn event(&mut self, e: Event<'a>, offset: usize) {
        match &e {
            Event::Start(_) if self.depth + self.open_inline.len() >= MAX_DEPTH => {
                self.kept.push(false);
                self.note_too_deep(offset);
                return;
            }
            Event::Start(_) => self.kept.push(true),
            Event::End(_) if self.kept.pop() == Some(false) => return,
            _ => {}
        }
        match e {
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => {
                // An email autolink (`<a@b.c>`) holds the bare address; the HTML writer would
                // add `mailto:` after the address was made a site URL. The scheme goes on here,
                // so the link is absolute and never joined to the site.
                let (link_type, dest_url) = if link_type == LinkType::Email {
                    let bare = dest_url.strip_prefix("mailto:").unwrap_or(&dest_url);
                    (LinkType::Autolink, CowStr::from(format!("mailto:{bare}")))
                } else {
                    (link_type, dest_url)
                };
                let dest_url = self.link_url(dest_url, false, offset);
                self.depth += 1;
                self.push(
                    Event::Start(Tag::Link {
                        link_type,
                        dest_url,
                        title,
                        id,
                    }),
                    offset,
                );
            }
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            }) => {
                let dest_url = self.link_url(dest_url, true, offset);
                self.depth += 1;
                self.push(
                    Event::Start(Tag::Image {
                        link_type,
                        dest_url,
                        title,
                        id,
                    }),
                    offset,
                );
            }
            Event::Start(t) => {
                self.depth += 1;
                self.push(Event::Start(t), offset);
            }
            Event::End(t) => {
                self.depth = self.depth.saturating_sub(1);
                if let Some(pos) = self.open_inline.iter().position(|(_, d)| *d > self.depth) {
                    let closers = self.close_inline_from(pos);
                    self.push(Event::InlineHtml(CowStr::from(closers)), offset);
                }
                self.push(Event::End(t), offset);
            }
            Event::InlineHtml(h) => self.inline_html(&h, offset),
            e => self.push(e, offset),
        }
    }
}

/// Every component or other non-element name that `body` has a closing tag of (`</Name>`).
fn closed_component_names(body: &str) -> HashSet<&str> {
    let mut names = HashSet::new();
    for i in memchr::memmem::find_iter(body.as_bytes(), b"</") {
        let rest = &body[i + 2..];
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
            .unwrap_or(rest.len());
        let name = &rest[..len];
        if !name.is_empty() && (is_component_name(name) || !html::is_element_name(name)) {
            names.insert(name);
        }
    }
    names
}

impl<'a> Doc<'a> {
    /// Parses and filters a body.
    pub fn parse(body: &'a str, settings: &Settings) -> Doc<'a> {
        let mut b = Builder {
            settings,
            events: Vec::with_capacity(body.len() / 16),
            offsets: Vec::with_capacity(body.len() / 16),
            notes: Vec::new(),
            sanitizer: None,
            open_inline: Vec::new(),
            depth: 0,
            fixes: FeedFixes::default(),
            closed_names: closed_component_names(body),
            kept: Vec::new(),
            too_deep: false,
        };
        let mut block: Option<(String, usize)> = None;
        for (e, range) in Parser::new_ext(body, options()).into_offset_iter() {
            match e {
                Event::Start(Tag::HtmlBlock) => block = Some((String::new(), range.start)),
                Event::Html(h) if block.is_some() => {
                    if let Some((s, _)) = block.as_mut() {
                        s.push_str(&h);
                    }
                }
                Event::End(TagEnd::HtmlBlock) => {
                    if let Some((s, off)) = block.take() {
                        b.html_block(&s, off);
                    }
                }
                Event::Html(h) => b.html_block(&h, range.start),
                e => b.event(e, range.start),
            }
        }
        if !b.open_inline.is_empty() {
            let closers = b.close_inline_from(0);
            b.push(Event::InlineHtml(CowStr::from(closers)), body.len());
        }
        Doc {
            events: b.events,
            offsets: b.offsets,
            para_ids: Vec::new(),
            notes: b.notes,
            fixes: b.fixes,
        }
    }
}
