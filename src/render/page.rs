//! The web page's and the email's view of a body: each item's title marked
//! `class="item-title"` and its source line `class="source"`, decided from the events.

use pulldown_cmark::{CowStr, Event, Tag, TagEnd};

use super::Doc;
use crate::html::escape;

/// An item as the page marks it: the event index of the block carrying its anchor (a heading
/// or a link paragraph), and the URL a source line right under a heading must link.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ItemMark<'u> {
    pub title_at: usize,
    pub source_url: Option<&'u str>,
}

impl<'a> Doc<'a> {
    /// The HTML of the whole body with every item's title and source line marked.
    pub(crate) fn page_html(&self, marks: &[ItemMark]) -> String {
        let mut overrides: Vec<(usize, Event<'a>)> = Vec::new();
        for m in marks {
            if let Some(id) = self.para_id(m.title_at) {
                let open = format!("<p class=\"item-title\" id=\"{}\">", escape(id));
                overrides.push((m.title_at, Event::Html(CowStr::from(open))));
                continue;
            }
            let Some(Event::Start(Tag::Heading {
                level,
                id: Some(id),
                classes,
                attrs,
            })) = self.events.get(m.title_at)
            else {
                continue;
            };
            if !classes.is_empty() || !attrs.is_empty() {
                continue;
            }
            // The class goes before the id, as the page's design has always been written for.
            let heading = Tag::Heading {
                level: *level,
                id: None,
                classes: vec![CowStr::Borrowed("item-title")],
                attrs: vec![(CowStr::Borrowed("id"), Some(id.clone()))],
            };
            overrides.push((m.title_at, Event::Start(heading)));
            if let Some(url) = m.source_url {
                overrides.extend(self.source_line(m.title_at, url));
            }
        }
        overrides.sort_by_key(|(i, _)| *i);
        let mut s = String::with_capacity(self.events.len() * 24);
        self.push_html_with(0..self.events.len(), &overrides, &mut s);
        s.shrink_to_fit();
        s
    }

    fn para_id(&self, i: usize) -> Option<&str> {
        let k = self.para_ids.binary_search_by_key(&i, |(j, _)| *j).ok()?;
        Some(&self.para_ids[k].1)
    }

    /// The source line mark for the heading starting at `heading`: the block right after it,
    /// when it is a paragraph whose HTML links `url`.
    fn source_line(&self, heading: usize, url: &str) -> Option<(usize, Event<'a>)> {
        let next = heading
            + self.events[heading..]
                .iter()
                .position(|e| matches!(e, Event::End(TagEnd::Heading(_))))?
            + 1;
        let href = format!("href=\"{}\"", escape(url));
        match self.events.get(next)? {
            Event::Start(Tag::Paragraph) if self.para_id(next).is_none() => {
                let end = next
                    + self.events[next..]
                        .iter()
                        .position(|e| matches!(e, Event::End(TagEnd::Paragraph)))?;
                let para = self.html(next..end + 1);
                let inside = &para[..para.find("</p>")?];
                inside.contains(&href).then(|| {
                    let open = CowStr::Borrowed("<p class=\"source\">");
                    (next, Event::Html(open))
                })
            }
            Event::Start(Tag::HtmlBlock) => {
                let Some(Event::Html(h)) = self.events.get(next + 1) else {
                    return None;
                };
                let lead = h.len() - h.trim_start().len();
                let rest = &h[lead..];
                let inside = &rest[..rest.find("</p>")?];
                if !(rest.starts_with("<p>") && inside.contains(&href)) {
                    return None;
                }
                let marked = format!("{}<p class=\"source\"{}", &h[..lead], &rest[2..]);
                Some((next + 1, Event::Html(CowStr::from(marked))))
            }
            _ => None,
        }
    }
}
