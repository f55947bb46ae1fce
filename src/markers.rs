//! Every in-band marker of the crate: characters put into text so that a later step finds a
//! place in it again. Each scheme has its own characters (or its own stage, see [`slot`]), and
//! this module is the only one that knows them.
//!
//! | scheme        | characters            | lives in                                   |
//! |---------------|-----------------------|--------------------------------------------|
//! | [`component`] | U+F0001 n U+F0002     | raw HTML while it goes through the sanitizer |
//! | [`text`]      | U+0001, U+0002, U+0003 | HTML reduced to text for the text part     |
//! | [`body`]      | U+E000 n U+E001       | a feed document before its bodies go in    |
//! | [`slot`]      | U+E000 name U+E001    | a rendered email before its recipient      |
//!
//! `body` and `slot` share their characters but never a text: body marks exist only inside the
//! feed writers, slots only inside the mail composer, and each removes the characters from the
//! issue's own text before putting marks in.

use std::borrow::Cow;

/// Whether `s` holds any of `chars`.
fn holds(s: &str, chars: &[char]) -> bool {
    s.contains(chars)
}

/// `s` without any of `chars`, borrowed when it has none.
fn without<'s>(s: &'s str, chars: &[char]) -> Cow<'s, str> {
    if holds(s, chars) {
        Cow::Owned(s.replace(chars, ""))
    } else {
        Cow::Borrowed(s)
    }
}

/// The number between `open` and `close` at the start of `s` (which starts with `open`), and
/// the length of the whole mark.
fn numbered_at(s: &str, open: char, close: char) -> Option<(usize, usize)> {
    let after = s.strip_prefix(open)?;
    let end = after.find(close)?;
    let n = after[..end].parse().ok()?;
    Some((n, open.len_utf8() + end + close.len_utf8()))
}

/// Component HTML held out of the sanitizer: `U+F0001 n U+F0002` stands for the `n`-th
/// replacement. Characters of a Unicode private use plane, which survive sanitizing as text.
pub mod component {
    const OPEN: char = '\u{F0001}';
    const CLOSE: char = '\u{F0002}';

    /// Appends the mark of replacement `n`.
    pub fn push(out: &mut String, n: usize) {
        out.push(OPEN);
        out.push_str(&n.to_string());
        out.push(CLOSE);
    }

    /// Whether `s` is nothing but marks and whitespace.
    pub fn only_marks(s: &str) -> bool {
        s.chars()
            .all(|c| c.is_whitespace() || c == OPEN || c == CLOSE || c.is_ascii_digit())
    }

    /// `cleaned` with every mark replaced by its replacement (an unknown one by nothing).
    pub fn restore(cleaned: &str, replacements: &[String]) -> String {
        let mut out = String::with_capacity(cleaned.len());
        let mut rest = cleaned;
        while let Some(i) = rest.find(OPEN) {
            out.push_str(&rest[..i]);
            rest = &rest[i..];
            match super::numbered_at(rest, OPEN, CLOSE) {
                Some((n, len)) => {
                    if let Some(h) = replacements.get(n) {
                        out.push_str(h);
                    }
                    rest = &rest[len..];
                }
                None => {
                    // An open mark without its close: drop the character, keep the rest.
                    let after = &rest[OPEN.len_utf8()..];
                    match after.find(CLOSE) {
                        Some(j) => rest = &after[j + CLOSE.len_utf8()..],
                        None => rest = after,
                    }
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// Marks in HTML reduced to text: a `<br>` (where newlines are only spaces), and where a raw
/// `<a href>` opens and closes, so it gets a numbered reference like a Markdown link.
pub mod text {
    use std::borrow::Cow;

    pub const BREAK: char = '\u{1}';
    pub const LINK_OPEN: char = '\u{2}';
    pub const LINK_CLOSE: char = '\u{3}';
    const ALL: [char; 3] = [BREAK, LINK_OPEN, LINK_CLOSE];

    /// The position of the next mark in `s` and the mark.
    pub fn find(s: &str) -> Option<(usize, char)> {
        let i = s.find(ALL)?;
        s[i..].chars().next().map(|c| (i, c))
    }

    /// `s` without the mark characters, which mean something only when the reader put them in.
    pub fn strip(s: &str) -> Cow<'_, str> {
        super::without(s, &ALL)
    }
}

/// Where an entry's HTML goes in a feed document the crates wrote: `U+E000 n U+E001`. The
/// feeds' text cleaning removes both characters from every other text of a document, so a
/// mark cannot be forged.
pub mod body {
    pub const OPEN: char = '\u{E000}';
    pub const CLOSE: char = '\u{E001}';

    /// The mark of body `n`.
    pub fn mark(n: usize) -> String {
        format!("{OPEN}{n}{CLOSE}")
    }

    /// The next mark in a document: its byte range and body number. `Err` when a mark is
    /// broken (an open character without a number and a close after it).
    pub fn find(doc: &[u8]) -> Result<Option<(std::ops::Range<usize>, usize)>, ()> {
        let mut open = [0u8; 4];
        let open = OPEN.encode_utf8(&mut open).as_bytes();
        let mut close = [0u8; 4];
        let close = CLOSE.encode_utf8(&mut close).as_bytes();
        let Some(i) = memchr::memmem::find(doc, open) else {
            return Ok(None);
        };
        let after = &doc[i + open.len()..];
        let end = memchr::memmem::find(after, close).ok_or(())?;
        let n = std::str::from_utf8(&after[..end])
            .ok()
            .and_then(|d| d.parse::<usize>().ok())
            .ok_or(())?;
        Ok(Some((i..i + open.len() + end + close.len(), n)))
    }
}

/// Recipient slots in a rendered email: `U+E000 techshack-recipient-… U+E001`, private-use
/// characters around ASCII letters, which survive Tera's escaping and CSS inlining unchanged.
pub mod slot {
    pub const OPEN: char = '\u{E000}';
    pub const CLOSE: char = '\u{E001}';
    pub const ADDRESS: &str = "\u{E000}techshack-recipient-address\u{E001}";
    pub const NAME: &str = "\u{E000}techshack-recipient-name\u{E001}";
    pub const UNSUBSCRIBE: &str = "\u{E000}techshack-recipient-unsubscribe-url\u{E001}";
    /// How every slot starts: a mark character before it that is followed by this is a slot a
    /// template filter changed.
    pub const PREFIX: &str = "\u{E000}t";

    /// Whether `s` holds a slot character.
    pub fn has(s: &str) -> bool {
        super::holds(s, &[OPEN, CLOSE])
    }

    /// Removes the slot characters from `s`.
    pub fn strip(s: &mut String) {
        if has(s) {
            s.retain(|c| c != OPEN && c != CLOSE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_marks_round_trip() {
        let mut s = String::from("a ");
        component::push(&mut s, 1);
        s.push_str(" b\u{F0001}x");
        assert!(!component::only_marks(&s));
        assert_eq!(
            component::restore(&s, &["0".into(), "ONE".into()]),
            "a ONE bx"
        );
    }

    #[test]
    fn body_marks_are_found_or_broken() {
        let doc = format!("<a>{}</a>", body::mark(12));
        assert_eq!(body::find(doc.as_bytes()), Ok(Some((3..3 + 3 + 2 + 3, 12))));
        assert_eq!(body::find(b"plain"), Ok(None));
        assert_eq!(body::find("x\u{E000}y".as_bytes()), Err(()));
    }

    #[test]
    fn text_marks() {
        assert_eq!(text::find("ab\u{2}c"), Some((2, text::LINK_OPEN)));
        assert_eq!(text::strip("a\u{1}b\u{3}"), "ab");
    }
}
