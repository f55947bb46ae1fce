//! The bound on nesting: an issue may nest quotes, lists, emphasis and HTML elements only so
//! deep. Deeper levels are flattened (their tags dropped, their content kept in the level
//! above) with one warning, so that no input makes a recursive step downstream (the CSS
//! inliner of the email, the sanitizer, the text part) overflow its stack or take more than
//! linear time.

use std::collections::HashMap;

use crate::html::Tag;

/// The deepest nesting of Markdown containers, inline tags and HTML elements an issue keeps.
/// Real issues stay under 20; the templates add about 10 more around the body.
pub const MAX_DEPTH: usize = 64;

/// Elements that take no closing tag, so never nest.
const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];

/// Elements whose end tag may be left out: the next one closes them (`<li>`, `<p>`), so a run
/// of them does not nest.
const SELF_CLOSED_BY_NEXT: &[&str] = &[
    "li", "p", "dt", "dd", "option", "optgroup", "tr", "td", "th", "thead", "tbody", "tfoot", "rt",
    "rp", "colgroup",
];

/// Decides, tag by tag through one piece of raw HTML, which tags stay so that elements nest
/// at most `limit` deep.
#[derive(Debug)]
pub(super) struct Flattener {
    limit: usize,
    /// Names (lower case) of the elements open now, outermost first.
    open: Vec<String>,
    /// Start tags dropped per name, whose end tags go as well.
    dropped: HashMap<String, usize>,
    /// Whether any tag was dropped.
    pub(super) flattened: bool,
}

impl Flattener {
    pub(super) fn new(limit: usize) -> Flattener {
        Flattener {
            limit,
            open: Vec::new(),
            dropped: HashMap::new(),
            flattened: false,
        }
    }

    /// Whether `tag` stays.
    pub(super) fn keep(&mut self, tag: &Tag) -> bool {
        let name = tag.name.to_ascii_lowercase();
        if name.is_empty() || VOID.contains(&name.as_str()) {
            return true;
        }
        let nests = !SELF_CLOSED_BY_NEXT.contains(&name.as_str());
        if tag.closing {
            if let Some(n) = self.dropped.get_mut(&name).filter(|n| **n > 0) {
                *n -= 1;
                return false;
            }
            if let Some(pos) = self.open.iter().rposition(|o| *o == name) {
                self.open.truncate(pos);
            }
            return true;
        }
        let self_closing = tag.raw.trim_end_matches('>').trim_end().ends_with('/');
        if !nests || self_closing {
            return true;
        }
        if self.open.len() >= self.limit {
            *self.dropped.entry(name).or_default() += 1;
            self.flattened = true;
            return false;
        }
        self.open.push(name);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::html::{tokens, Token};

    fn flatten(h: &str, limit: usize) -> String {
        let mut f = Flattener::new(limit);
        let mut out = String::new();
        for (_, t) in tokens(h) {
            match t {
                Token::Tag(t) if !f.keep(&t) => {}
                t => out.push_str(t.raw()),
            }
        }
        out
    }

    #[test]
    fn deeper_elements_lose_their_tags_and_keep_their_content() {
        assert_eq!(
            flatten("<div><div><div><b>x</b></div></div></div><p>y</p>", 2),
            "<div><div>x</div></div><p>y</p>"
        );
        // Runs that do not nest, void and self-closing elements stay.
        let flat = "<ul><li>a<li>b<li>c</ul><p>1<p>2<br><img src=x><span/>";
        assert_eq!(flatten(flat, 1), flat);
        let deep = "<div>".repeat(100_000) + &"</div>".repeat(100_000);
        assert_eq!(
            flatten(&deep, MAX_DEPTH),
            "<div>".repeat(MAX_DEPTH) + &"</div>".repeat(MAX_DEPTH)
        );
    }
}
