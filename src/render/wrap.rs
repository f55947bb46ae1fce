//! Line wrapping of the text part by display width: East Asian wide characters count two
//! columns and a line may break between them, never inside one or before closing punctuation.

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// Width the text part is wrapped at.
pub const WIDTH: usize = 72;

/// The narrowest a wrapped line gets, however deep the nesting.
pub(super) const MIN_WIDTH: usize = 24;

/// Wraps one paragraph of plain text at [`WIDTH`], each line starting with `indent`.
pub fn wrap_paragraph(text: &str, indent: &str) -> String {
    let mut out = String::new();
    let lines = wrap(text, WIDTH.saturating_sub(indent.width()).max(MIN_WIDTH));
    for (i, l) in lines.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(indent);
        out.push_str(l);
    }
    out
}

/// Characters that must not begin a line (closing punctuation, CJK and Latin).
fn no_break_before(c: char) -> bool {
    matches!(
        c,
        ',' | '.'
            | ';'
            | ':'
            | '!'
            | '?'
            | ')'
            | ']'
            | '}'
            | '，'
            | '。'
            | '、'
            | '；'
            | '：'
            | '？'
            | '！'
            | '）'
            | '」'
            | '』'
            | '》'
            | '〉'
            | '】'
            | '〕'
            | '”'
            | '’'
            | '…'
            | '・'
            | 'ー'
    )
}

/// Characters that must not end a line (opening punctuation).
fn no_break_after(c: char) -> bool {
    matches!(
        c,
        '（' | '「' | '『' | '《' | '〈' | '【' | '〔' | '“' | '‘' | '(' | '['
    )
}

fn is_wide(c: char) -> bool {
    c.width().unwrap_or(0) >= 2
}

/// One unbreakable piece of a line and whether a space comes before it.
struct Piece<'a> {
    text: &'a str,
    space_before: bool,
}

/// Splits text into pieces between which a line may break: at spaces, and around wide
/// (CJK) characters, keeping closing punctuation with what it follows.
fn pieces(text: &str) -> Vec<Piece<'_>> {
    let mut out: Vec<Piece<'_>> = Vec::new();
    for (wi, word) in text.split(' ').enumerate() {
        if word.is_empty() {
            continue;
        }
        let space_before = wi > 0 && !out.is_empty();
        if word.is_ascii() {
            // No wide characters: the word is one piece.
            out.push(Piece {
                text: word,
                space_before,
            });
            continue;
        }
        let mut start = 0;
        let mut first = true;
        let mut prev: Option<char> = None;
        for (i, c) in word.char_indices() {
            let breakable = match prev {
                None => false,
                Some(p) => (is_wide(c) || is_wide(p)) && !no_break_before(c) && !no_break_after(p),
            };
            if breakable {
                out.push(Piece {
                    text: &word[start..i],
                    space_before: first && space_before,
                });
                first = false;
                start = i;
            }
            prev = Some(c);
        }
        out.push(Piece {
            text: &word[start..],
            space_before: first && space_before,
        });
    }
    out
}

/// Greedy wrapping at `width` display columns. A piece wider than the line (a long URL)
/// gets a line of its own rather than being cut.
pub(super) fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut w = 0;
    for p in pieces(text) {
        let pw = if p.text.is_ascii() {
            p.text.len()
        } else {
            p.text.width()
        };
        let sep = usize::from(p.space_before && !line.is_empty());
        if !line.is_empty() && w + sep + pw > width {
            lines.push(std::mem::take(&mut line));
            w = 0;
        } else if sep == 1 {
            line.push(' ');
            w += 1;
        }
        line.push_str(p.text);
        w += pw;
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn wrapping_keeps_every_character_and_the_width(
            words in proptest::collection::vec("[a-z]{1,12}|[一-龥]{1,30}|[，。]|https://x\\.example/[a-z]{60,90}", 1..80)
        ) {
            let text = words.join(" ");
            let lines = wrap(&text, WIDTH);
            for l in &lines {
                // Only an unbreakable piece (a long URL) may be wider than the line.
                proptest::prop_assert!(l.width() <= WIDTH || pieces(l).len() == 1, "{l}");
            }
            let strip = |s: &str| s.chars().filter(|c| *c != ' ').collect::<String>();
            proptest::prop_assert_eq!(strip(&lines.concat()), strip(&text));
        }
    }

    #[test]
    fn wrap_paragraph_indents() {
        let t = wrap_paragraph(&"word ".repeat(30), "  ");
        assert!(t
            .lines()
            .all(|l| l.starts_with("  word") && l.width() <= WIDTH));
    }
}
