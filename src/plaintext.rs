//! The plain-text rendering of Markdown events: what the email's text part is written from.

use pulldown_cmark::Event;

/// Width the text part is wrapped at.
pub const WIDTH: usize = 72;

/// Renders Markdown events as plain text.
pub fn render<'a>(events: impl Iterator<Item = Event<'a>>) -> String {
    let mut out = String::new();
    for e in events {
        match e {
            Event::Text(t) | Event::Code(t) => out.push_str(&t),
            Event::SoftBreak | Event::HardBreak => out.push('\n'),
            Event::End(_) => out.push('\n'),
            _ => {}
        }
    }
    out
}
