//! The plain-text summary the feeds derive from a body that has no description.

use crate::html::{self, Token};

/// The longest derived summary, in characters, before it is cut at a word.
pub const SUMMARY_CHARS: usize = 280;

/// Elements that separate words in a summary (a paragraph, a list item, a break).
const BREAKS: &[&str] = &[
    "p",
    "br",
    "li",
    "div",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "tr",
    "td",
    "th",
    "pre",
    "blockquote",
    "hr",
    "ul",
    "ol",
    "table",
];

/// Collects summary text: whitespace runs become one space between words.
struct Collector {
    out: String,
    chars: usize,
    pending_space: bool,
}

impl Collector {
    fn push(&mut self, c: char) {
        if c.is_whitespace() {
            self.pending_space = !self.out.is_empty();
            return;
        }
        if self.pending_space {
            self.out.push(' ');
            self.chars += 1;
            self.pending_space = false;
        }
        self.out.push(c);
        self.chars += 1;
    }

    /// Whether enough has been read to cut the summary.
    fn full(&self) -> bool {
        self.chars >= SUMMARY_CHARS + 40
    }
}

/// A plain-text summary of HTML: its text, whitespace collapsed, cut at a word after
/// `SUMMARY_CHARS` characters with an ellipsis. Only the start of the HTML is read. What XML
/// forbids is still in it (see [`super::feed::xml_clean`]).
pub fn derive_summary(html: &str) -> String {
    let mut c = Collector {
        out: String::new(),
        chars: 0,
        pending_space: false,
    };
    for (_, token) in html::tokens(html) {
        if c.full() {
            break;
        }
        match token {
            Token::Tag(t) => {
                if BREAKS.iter().any(|b| t.is(b)) {
                    c.pending_space = !c.out.is_empty();
                }
            }
            Token::Text(mut rest) => {
                while !rest.is_empty() && !c.full() {
                    if rest.starts_with('&') {
                        match html::entity_at(rest) {
                            Some((d, n)) => {
                                c.push(d);
                                rest = &rest[n..];
                            }
                            None => {
                                c.push('&');
                                rest = &rest[1..];
                            }
                        }
                        continue;
                    }
                    let Some(ch) = rest.chars().next() else { break };
                    c.push(ch);
                    rest = &rest[ch.len_utf8()..];
                }
            }
            Token::Comment { .. } | Token::Unclosed(_) => {}
        }
    }
    let mut out = c.out;
    if c.chars > SUMMARY_CHARS {
        let cut = out
            .char_indices()
            .nth(SUMMARY_CHARS)
            .map_or(out.len(), |(i, _)| i);
        let cut = out[..cut].rfind(' ').filter(|&i| i > 0).unwrap_or(cut);
        out.truncate(cut);
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_summaries_are_plain_text_cut_at_a_word() {
        assert_eq!(
            derive_summary("<p>A &amp; B</p><ul><li>one</li><li>two</li></ul>"),
            "A & B one two"
        );
        let long = format!("<p>{}</p>", "word ".repeat(100));
        let s = derive_summary(&long);
        assert!(s.ends_with('…'));
        assert!(s.chars().count() <= SUMMARY_CHARS + 1);
        assert!(!s.contains("wor…"));
    }
}
