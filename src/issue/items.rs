//! Splitting an issue into items, the articles of the digest.
//!
//! Two forms make items; anything else is prose and has none:
//!
//! - **Sections**: `##` headings. An issue is in this form when at least half of its `##`
//!   sections name a source: a link in the heading itself, or a *source line* among the first
//!   two paragraphs under it (a paragraph of links with little else: `[domain](url) |
//!   [name](url) |`, `✨ [site](url) ✨`, `Part I: [a](url) | Part II: [b](url)`, or parts
//!   split by ` | ` that each hold a link). Then every
//!   `##` section is an item; one with no source gets a warning. Sections of newsletters that
//!   use `##` only for topics (This Week in Rust: "Updates from Rust Community", "Crate of the
//!   Week") rarely start with a source line, so those issues have no items.
//! - **Link paragraphs**: `---` breaks split the body, and a part that starts with a paragraph
//!   holding nothing but one link (`[Title](url)`) is an item. An issue is in this form when it
//!   has at least one break and two such parts.

use std::ops::Range;

use pulldown_cmark::{Event, HeadingLevel, Tag, TagEnd};

use crate::model::Link;
use crate::render::{slugify, Anchors, Block, Doc};

/// An item found in a body: everything but its rendered notes.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub title: String,
    pub anchor: String,
    pub links: Vec<Link>,
    /// Event ranges of the notes (the item less its heading and source line).
    pub notes: Vec<Range<usize>>,
    /// Byte offset of the item's first line in the body.
    pub offset: usize,
    /// The event index of the block carrying the anchor (the heading or the link paragraph).
    pub title_at: usize,
}

fn is_heading(doc: &Doc, b: &Block, max: HeadingLevel) -> Option<HeadingLevel> {
    match &doc.events[b.start] {
        Event::Start(Tag::Heading { level, .. }) if *level <= max => Some(*level),
        _ => None,
    }
}

fn is_paragraph(doc: &Doc, b: &Block) -> bool {
    matches!(doc.events[b.start], Event::Start(Tag::Paragraph))
}

/// The links in a range: their text and URL.
fn links_in(doc: &Doc, range: Range<usize>) -> Vec<Link> {
    let mut out = Vec::new();
    let mut i = range.start;
    while i < range.end {
        if let Event::Start(Tag::Link { dest_url, .. }) = &doc.events[i] {
            let end = doc.events[i..range.end]
                .iter()
                .position(|e| matches!(e, Event::End(TagEnd::Link)))
                .map_or(range.end, |p| i + p);
            let url = dest_url.to_string();
            if !url.is_empty() && url != "#" {
                out.push(Link {
                    text: doc.range_text(i + 1..end),
                    url,
                });
            }
            i = end;
        }
        i += 1;
    }
    out
}

/// Letters and digits inside links and outside them, and the number of links.
fn link_balance(doc: &Doc, b: &Block) -> (usize, usize, usize) {
    let (mut inside, mut outside, mut links, mut depth) = (0, 0, 0, 0usize);
    for e in &doc.events[b.start..b.end] {
        match e {
            Event::Start(Tag::Link { .. }) => {
                depth += 1;
                links += 1;
            }
            Event::End(TagEnd::Link) => depth = depth.saturating_sub(1),
            Event::Text(t) | Event::Code(t) => {
                let n = t.chars().filter(|c| c.is_alphanumeric()).count();
                if depth > 0 {
                    inside += n;
                } else {
                    outside += n;
                }
            }
            _ => {}
        }
    }
    (inside, outside, links)
}

/// A paragraph that names sources: links, separators and short labels.
fn is_source_line(doc: &Doc, b: &Block) -> bool {
    if !is_paragraph(doc, b) {
        return false;
    }
    let (inside, outside, links) = link_balance(doc, b);
    links > 0 && (outside <= inside.max(8) || every_part_links(doc, b))
}

/// Whether each ` | `-separated part of a paragraph holds a link (or no words at all), as in
/// `[a.org](url) | Longer label of the second source: [b.org](url)`.
fn every_part_links(doc: &Doc, b: &Block) -> bool {
    let (mut parts, mut depth) = (1, 0usize);
    let (mut link, mut words) = (false, false);
    let part_ok = |link: bool, words: bool| link || !words;
    for e in &doc.events[b.start..b.end] {
        match e {
            Event::Start(Tag::Link { .. }) => {
                depth += 1;
                link = true;
            }
            Event::End(TagEnd::Link) => depth = depth.saturating_sub(1),
            Event::Text(t) if depth == 0 => {
                for (k, piece) in t.split('|').enumerate() {
                    if k > 0 {
                        if !part_ok(link, words) {
                            return false;
                        }
                        parts += 1;
                        link = false;
                        words = false;
                    }
                    words |= piece.chars().any(char::is_alphanumeric);
                }
            }
            _ => {}
        }
    }
    parts > 1 && part_ok(link, words)
}

/// A paragraph of exactly one link and nothing else.
fn is_link_paragraph(doc: &Doc, b: &Block) -> bool {
    if !is_paragraph(doc, b) {
        return false;
    }
    let (_, outside, links) = link_balance(doc, b);
    if links != 1 || outside != 0 {
        return false;
    }
    // The link must span the paragraph: nothing but whitespace around it.
    matches!(doc.events[b.start + 1], Event::Start(Tag::Link { .. }))
        && matches!(doc.events[b.end - 2], Event::End(TagEnd::Link))
}

/// Finds the items of a body and returns them with paragraph ids to set.
pub fn find(doc: &Doc, anchors: &mut Anchors) -> (Vec<Found>, Vec<(usize, String)>) {
    let blocks = doc.blocks();
    if let Some(items) = sections(doc, &blocks) {
        return (items, Vec::new());
    }
    link_paragraphs(doc, &blocks, anchors).unwrap_or_default()
}

fn sections(doc: &Doc, blocks: &[Block]) -> Option<Vec<Found>> {
    let starts: Vec<usize> = blocks
        .iter()
        .enumerate()
        .filter(|(_, b)| is_heading(doc, b, HeadingLevel::H2) == Some(HeadingLevel::H2))
        .map(|(i, _)| i)
        .collect();
    if starts.is_empty() {
        return None;
    }
    let section_end = |s: usize| {
        blocks[s + 1..]
            .iter()
            .position(|b| is_heading(doc, b, HeadingLevel::H2).is_some())
            .map_or(blocks.len(), |p| s + 1 + p)
    };
    // Decide the form before building anything: most issues of topic newsletters are not in it.
    let cheap_sourced = starts
        .iter()
        .filter(|&&s| {
            let h = blocks[s];
            doc.events[h.start..h.end]
                .iter()
                .any(|e| matches!(e, Event::Start(Tag::Link { .. })))
                || blocks[s + 1..section_end(s)]
                    .iter()
                    .take(2)
                    .take_while(|b| is_paragraph(doc, b))
                    .any(|b| is_source_line(doc, b))
        })
        .count();
    if cheap_sourced * 2 < starts.len() {
        return None;
    }
    let mut items = Vec::with_capacity(starts.len());
    let mut sourced = 0;
    for &s in &starts {
        let end = section_end(s);
        let h = blocks[s];
        let mut links = links_in(doc, h.start..h.end);
        let mut skip: Option<usize> = None;
        for (k, b) in blocks[s + 1..end].iter().enumerate().take(2) {
            if !is_paragraph(doc, b) {
                break;
            }
            if is_source_line(doc, b) {
                links.extend(links_in(doc, b.start..b.end));
                skip = Some(s + 1 + k);
                break;
            }
        }
        if !links.is_empty() {
            sourced += 1;
        }
        let mut notes = Vec::new();
        let body_start = blocks.get(s + 1).map_or(h.end, |b| b.start);
        let body_end = if end > s + 1 {
            blocks[end - 1].end
        } else {
            h.end
        };
        match skip {
            Some(k) => {
                let src = blocks[k];
                if body_start < src.start {
                    notes.push(body_start..src.start);
                }
                if src.end < body_end {
                    notes.push(src.end..body_end);
                }
            }
            None if body_start < body_end => notes.push(body_start..body_end),
            None => {}
        }
        items.push(Found {
            title: doc.range_text(h.start..h.end),
            anchor: doc.heading_id(h.start).unwrap_or_default().to_string(),
            links,
            notes,
            offset: doc.offsets[h.start],
            title_at: h.start,
        });
    }
    (sourced * 2 >= starts.len()).then_some(items)
}

type Paragraphs = (Vec<Found>, Vec<(usize, String)>);

fn link_paragraphs(doc: &Doc, blocks: &[Block], anchors: &mut Anchors) -> Option<Paragraphs> {
    let rules: Vec<usize> = blocks
        .iter()
        .enumerate()
        .filter(|(_, b)| matches!(doc.events[b.start], Event::Rule))
        .map(|(i, _)| i)
        .collect();
    if rules.is_empty() {
        return None;
    }
    let mut parts = Vec::with_capacity(rules.len() + 1);
    let mut from = 0;
    for &r in &rules {
        parts.push(from..r);
        from = r + 1;
    }
    parts.push(from..blocks.len());
    let mut items = Vec::new();
    let mut ids = Vec::new();
    for part in parts {
        let Some(first) = blocks.get(part.start).filter(|_| !part.is_empty()) else {
            continue;
        };
        if !is_link_paragraph(doc, first) {
            continue;
        }
        let links = links_in(doc, first.start..first.end);
        let title = match doc.range_text(first.start + 1..first.end - 1) {
            t if t.is_empty() => links.first().map(|l| l.url.clone()).unwrap_or_default(),
            t => t,
        };
        let anchor = anchors.unique(slugify(&title));
        ids.push((first.start, anchor.clone()));
        let notes = if part.len() > 1 {
            std::iter::once(blocks[part.start + 1].start..blocks[part.end - 1].end).collect()
        } else {
            Vec::new()
        };
        items.push(Found {
            title,
            anchor,
            links,
            notes,
            offset: doc.offsets[first.start],
            title_at: first.start,
        });
    }
    (items.len() >= 2).then_some((items, ids))
}
