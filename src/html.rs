//! The HTML toolkit every other module uses: escaping, character references, and the one tag
//! tokenizer that the sanitizer, the text part, the summary and the feed fixes read HTML with.
//! It imports nothing from the crate.

use std::borrow::Cow;

/// Escapes text for HTML element content and attribute values, quoted either way.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The character of an HTML entity's name (`amp`, `#39`, `#x1F600`), for the entities that
/// hand-written HTML in issues uses; `None` for any other name.
pub fn decode_entity(e: &str) -> Option<char> {
    Some(match e {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "mdash" => '—',
        "ndash" => '–',
        "hellip" => '…',
        "copy" => '©',
        _ => {
            let n = e.strip_prefix('#')?;
            let v = match n.strip_prefix(['x', 'X']) {
                Some(hex) if hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    u32::from_str_radix(hex, 16).ok()?
                }
                None if n.bytes().all(|b| b.is_ascii_digit()) => n.parse().ok()?,
                _ => return None,
            };
            char::from_u32(v)?
        }
    })
}

/// The character reference `s` starts with (`s` starts with `&`): its character and length.
/// Only names of up to ten bytes are looked at, which covers every one [`decode_entity`] knows.
pub fn entity_at(s: &str) -> Option<(char, usize)> {
    let semi = s.bytes().take(12).position(|b| b == b';')?;
    let name = s.get(1..semi)?;
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'#') {
        return None;
    }
    decode_entity(name).map(|c| (c, semi + 1))
}

/// Appends `s` to `out` with its character references decoded; `keep` decides which decoded
/// characters stay (the text part drops decoded control characters).
pub fn decode_entities_into(s: &str, out: &mut String, keep: impl Fn(char) -> bool) {
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        match entity_at(rest) {
            Some((c, n)) => {
                if keep(c) {
                    out.push(c);
                }
                rest = &rest[n..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
}

/// One piece of HTML as the tokenizer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token<'h> {
    /// Text between markup, character references not decoded.
    Text(&'h str),
    /// A start or end tag, or a `<!…>` / `<?…>` declaration (with an empty name).
    Tag(Tag<'h>),
    /// A `<!-- … -->` comment; `closed` is false when the input ended inside it.
    Comment { raw: &'h str, closed: bool },
    /// Markup that the end of the input cut short: from its `<` to the end.
    Unclosed(&'h str),
}

impl<'h> Token<'h> {
    /// The source text of the token.
    pub fn raw(&self) -> &'h str {
        match self {
            Token::Text(t) | Token::Unclosed(t) => t,
            Token::Tag(t) => t.raw,
            Token::Comment { raw, .. } => raw,
        }
    }
}

/// Every element name an HTML parser knows (HTML, including the obsolete elements browsers
/// still parse, and the SVG and MathML elements an inline figure uses), lower case, sorted.
const ELEMENTS: &[&str] = &[
    "a",
    "abbr",
    "acronym",
    "address",
    "animate",
    "animatemotion",
    "animatetransform",
    "annotation",
    "applet",
    "area",
    "article",
    "aside",
    "audio",
    "b",
    "base",
    "basefont",
    "bdi",
    "bdo",
    "bgsound",
    "big",
    "blink",
    "blockquote",
    "body",
    "br",
    "button",
    "canvas",
    "caption",
    "center",
    "circle",
    "cite",
    "clippath",
    "code",
    "col",
    "colgroup",
    "data",
    "datalist",
    "dd",
    "defs",
    "del",
    "desc",
    "details",
    "dfn",
    "dialog",
    "dir",
    "div",
    "dl",
    "dt",
    "ellipse",
    "em",
    "embed",
    "fieldset",
    "figcaption",
    "figure",
    "filter",
    "font",
    "footer",
    "foreignobject",
    "form",
    "frame",
    "frameset",
    "g",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "head",
    "header",
    "hgroup",
    "hr",
    "html",
    "i",
    "iframe",
    "image",
    "img",
    "input",
    "ins",
    "isindex",
    "kbd",
    "keygen",
    "label",
    "legend",
    "li",
    "line",
    "lineargradient",
    "link",
    "listing",
    "main",
    "map",
    "mark",
    "marker",
    "marquee",
    "mask",
    "math",
    "menu",
    "menuitem",
    "meta",
    "meter",
    "mfrac",
    "mi",
    "mn",
    "mo",
    "mover",
    "mroot",
    "mrow",
    "ms",
    "mspace",
    "msqrt",
    "mstyle",
    "msub",
    "msubsup",
    "msup",
    "mtable",
    "mtd",
    "mtext",
    "mtr",
    "multicol",
    "munder",
    "munderover",
    "nav",
    "nextid",
    "nobr",
    "noembed",
    "noframes",
    "noscript",
    "object",
    "ol",
    "optgroup",
    "option",
    "output",
    "p",
    "param",
    "path",
    "pattern",
    "picture",
    "plaintext",
    "polygon",
    "polyline",
    "pre",
    "progress",
    "q",
    "radialgradient",
    "rb",
    "rect",
    "rp",
    "rt",
    "rtc",
    "ruby",
    "s",
    "samp",
    "script",
    "search",
    "section",
    "select",
    "semantics",
    "slot",
    "small",
    "source",
    "spacer",
    "span",
    "stop",
    "strike",
    "strong",
    "style",
    "sub",
    "summary",
    "sup",
    "svg",
    "symbol",
    "table",
    "tbody",
    "td",
    "template",
    "text",
    "textarea",
    "textpath",
    "tfoot",
    "th",
    "thead",
    "time",
    "title",
    "tr",
    "track",
    "tspan",
    "tt",
    "u",
    "ul",
    "use",
    "var",
    "video",
    "view",
    "wbr",
    "xmp",
];

/// Whether `name` (any case) names an HTML element, or a custom element (a name with a `-`):
/// anything else in angle brackets (`<T>`, `<dyn Error>`, `<i32>`) is text, not a tag.
pub fn is_element_name(name: &str) -> bool {
    if name.contains('-') {
        return true;
    }
    let lower = name.to_ascii_lowercase();
    ELEMENTS.binary_search(&lower.as_str()).is_ok()
}

/// A tag: its source (`<a href="x">`), its name as written and whether it closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag<'h> {
    pub raw: &'h str,
    pub name: &'h str,
    pub closing: bool,
}

impl<'h> Tag<'h> {
    /// Whether the tag's name is `name` (ASCII lower case), in any case.
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// The inside of the tag after its name, up to (not including) `>`.
    fn attributes(&self) -> &'h str {
        let after = &self.raw[1 + usize::from(self.closing) + self.name.len()..];
        after.strip_suffix('>').unwrap_or(after)
    }

    /// The value of attribute `name` (ASCII lower case), quoted or not, entities not decoded.
    pub fn attr(&self, name: &str) -> Option<&'h str> {
        let tag = self.attributes();
        let mut from = 0;
        while let Some(i) = find_ignore_case(&tag[from..], name) {
            let at = from + i;
            from = at + name.len();
            let before_ok = tag[..at].ends_with(|c: char| c.is_ascii_whitespace());
            let rest = tag[from..].trim_start();
            let Some(v) = rest.strip_prefix('=') else {
                continue;
            };
            if !before_ok {
                continue;
            }
            let v = v.trim_start();
            return Some(match v.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let body = &v[1..];
                    &body[..body.find(q).unwrap_or(body.len())]
                }
                _ => &v[..v.find(|c: char| c.is_ascii_whitespace()).unwrap_or(v.len())],
            });
        }
        None
    }
}

fn find_ignore_case(hay: &str, needle: &str) -> Option<usize> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    if n.is_empty() || h.len() < n.len() {
        return None;
    }
    (0..=h.len() - n.len()).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

/// Whether `<` at the start of `rest` opens markup (a tag, an end tag, a comment or a
/// declaration) rather than being a literal character of text.
fn opens_markup(rest: &str) -> bool {
    rest.as_bytes()
        .get(1)
        .is_some_and(|&c| c.is_ascii_alphabetic() || matches!(c, b'/' | b'!' | b'?'))
}

/// The end (exclusive) of the markup starting at `start` (`<`), skipping quoted attribute
/// values; `None` when the input ends first.
pub fn tag_end(h: &str, start: usize) -> Option<usize> {
    let b = h.as_bytes();
    let mut quote = 0u8;
    for (i, &c) in b.iter().enumerate().skip(start + 1) {
        if quote != 0 {
            if c == quote {
                quote = 0;
            }
        } else if c == b'"' || c == b'\'' {
            quote = c;
        } else if c == b'>' {
            return Some(i + 1);
        }
    }
    None
}

/// The name of a tag whose `<` (and `/` of an end tag) is just before `name_start`: letters,
/// digits and `-`, `_`, `.`, `:`, starting with a letter. Empty when there is none.
fn name_at(h: &str, name_start: usize) -> &str {
    let rest = &h[name_start..];
    if !rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return "";
    }
    let len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
        .unwrap_or(rest.len());
    &rest[..len]
}

/// The start or end tag with a name at `start` (which holds `<`), if there is a whole one.
pub fn tag_at(h: &str, start: usize) -> Option<Tag<'_>> {
    let closing = h[start + 1..].starts_with('/');
    let name = name_at(h, start + 1 + usize::from(closing));
    if name.is_empty() {
        return None;
    }
    let end = tag_end(h, start)?;
    Some(Tag {
        raw: &h[start..end],
        name,
        closing,
    })
}

/// The tokens of a piece of HTML, each with its byte offset.
pub fn tokens(h: &str) -> Tokens<'_> {
    Tokens { h, pos: 0 }
}

/// Iterator of [`tokens`].
#[derive(Debug, Clone)]
pub struct Tokens<'h> {
    h: &'h str,
    pos: usize,
}

impl<'h> Iterator for Tokens<'h> {
    type Item = (usize, Token<'h>);

    fn next(&mut self) -> Option<(usize, Token<'h>)> {
        let h = self.h;
        let start = self.pos;
        let rest = &h[start..];
        if rest.is_empty() {
            return None;
        }
        if rest.starts_with('<') && opens_markup(rest) {
            let token = if let Some(body) = rest.strip_prefix("<!--") {
                match body.find("-->") {
                    Some(e) => Token::Comment {
                        raw: &rest[..4 + e + 3],
                        closed: true,
                    },
                    None => Token::Comment {
                        raw: rest,
                        closed: false,
                    },
                }
            } else {
                match tag_end(h, start) {
                    None => Token::Unclosed(rest),
                    Some(end) => {
                        let closing = rest[1..].starts_with('/');
                        Token::Tag(Tag {
                            raw: &h[start..end],
                            name: name_at(h, start + 1 + usize::from(closing)),
                            closing,
                        })
                    }
                }
            };
            self.pos += token.raw().len();
            return Some((start, token));
        }
        // Text runs to the next `<` that opens markup.
        let mut end = start + usize::from(rest.starts_with('<'));
        loop {
            match h[end..].find('<') {
                Some(i) if opens_markup(&h[end + i..]) => {
                    end += i;
                    break;
                }
                Some(i) => end += i + 1,
                None => {
                    end = h.len();
                    break;
                }
            }
        }
        self.pos = end;
        Some((start, Token::Text(&h[start..end])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_names_are_known_and_generics_are_not() {
        let mut sorted = ELEMENTS.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, ELEMENTS);
        for name in ["a", "DIV", "Span", "h1", "noscript", "svg", "my-widget"] {
            assert!(is_element_name(name), "{name}");
        }
        for name in ["T", "dyn", "i32", "u8", "str", "bool", "Result", "foo"] {
            assert!(!is_element_name(name), "{name}");
        }
    }

    /// The text of HTML: tags and comments dropped, character references decoded.
    fn text(h: &str) -> String {
        let mut out = String::new();
        for (_, t) in tokens(h) {
            if let Token::Text(s) = t {
                decode_entities_into(s, &mut out, |_| true);
            }
        }
        out
    }

    #[test]
    fn text_decodes_and_drops_markup() {
        assert_eq!(text("<p a=\"x>y\">a &amp; b&lt;</p>&#x1F600;"), "a & b<😀");
        assert_eq!(text("a<!-- c -->b < c <!-- open"), "ab < c ");
    }

    #[test]
    fn entities() {
        assert_eq!(entity_at("&amp;x"), Some(('&', 5)));
        assert_eq!(entity_at("&#39;"), Some(('\'', 5)));
        assert_eq!(entity_at("&#x1F600;"), Some(('😀', 9)));
        assert_eq!(entity_at("&#+65;"), None);
        assert_eq!(entity_at("&nope;"), None);
        assert_eq!(entity_at("& amp;"), None);
    }

    #[test]
    fn tokens_and_attributes() {
        let h = "x <a href='u v' title=\"a>b\">y</a><br/><!x>";
        let toks: Vec<_> = tokens(h).map(|(_, t)| t).collect();
        assert_eq!(toks.len(), 6, "{toks:?}");
        let Token::Tag(a) = &toks[1] else {
            panic!("{toks:?}")
        };
        assert!(a.is("A") && !a.closing);
        assert_eq!(a.attr("href"), Some("u v"));
        assert_eq!(a.attr("title"), Some("a>b"));
        assert!(matches!(&toks[3], Token::Tag(t) if t.closing && t.is("a")));
        assert!(matches!(&toks[5], Token::Tag(t) if t.name.is_empty()));
        assert_eq!(
            tokens("<a title=\"x").next().map(|(_, t)| t),
            Some(Token::Unclosed("<a title=\"x"))
        );
        assert_eq!(tag_at("</Foo >", 0).map(|t| t.name), Some("Foo"));
        assert_eq!(tag_at("<1>", 0), None);
    }

    #[test]
    fn escape_keeps_slashes() {
        assert_eq!(
            escape("https://a/b?x=1&y=\"<'>"),
            "https://a/b?x=1&amp;y=&quot;&lt;&#39;&gt;"
        );
    }
}
