//! The one pulldown-cmark pipeline.
//!
//! An issue body is parsed once into a vector of events that every output shares. While the
//! events are collected, filters replace component tags, make URLs absolute and reduce raw
//! HTML to an allow-list; afterwards a repeated leading H1 is dropped and headings get ids.
//! HTML and plain text of the whole body or of any range of it (an item) are rendered from
//! that one vector, so the Markdown is never parsed twice.
//!
//! Only raw HTML goes through the sanitizer (ammonia): block HTML as one fragment per block,
//! inline HTML tag by tag with open tags closed at the end of their block. Markdown itself
//! cannot produce active content, so sanitizing whole documents would cost time for nothing.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::sync::{Arc, Mutex};

use pulldown_cmark::{CowStr, Event, HeadingLevel, Options, Parser, Tag, TagEnd};

/// The Markdown extensions issues may use.
pub fn options() -> Options {
    Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
}

/// What the pipeline needs to know about the site and the page.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'c> {
    /// `site.base_url`, without a trailing slash.
    pub base_url: &'c str,
    /// The absolute URL of the issue's page, for relative paths and fragments.
    pub page_url: &'c str,
    /// Component tag name to replacement HTML (`""` strips the tag).
    pub components: &'c BTreeMap<String, String>,
}

/// Something found while rendering that `check` reports, at a byte offset of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// A component tag with no entry in `[components]`; it was stripped.
    UnknownComponent { offset: usize, name: String },
    /// An image with a site path (`/static/x.png`), to look for in `issues.static_dir`.
    SitePathImage { offset: usize, path: String },
}

/// One issue body as a vector of filtered events.
#[derive(Debug)]
pub struct Doc<'a> {
    pub events: Vec<Event<'a>>,
    /// The body's byte offset each event starts at.
    pub offsets: Vec<usize>,
    /// Paragraphs that carry an `id` (the `Start(Paragraph)` index and the id), sorted.
    pub para_ids: Vec<(usize, String)>,
    pub notes: Vec<Note>,
}

/// Schemes a link may use; anything else (`javascript:`, `data:`, `vbscript:`) is dropped.
const SAFE_SCHEMES: &[&str] = &[
    "http", "https", "mailto", "ftp", "ftps", "irc", "ircs", "tel", "sms", "xmpp", "news", "nntp",
    "git", "ssh", "magnet", "gemini",
];

/// Elements that take no closing tag.
const VOID: &[&str] = &[
    "area", "br", "col", "embed", "hr", "img", "input", "source", "track", "wbr",
];

/// Inline tags without attributes that pass without asking the sanitizer.
const PLAIN_INLINE: &[&str] = &[
    "abbr", "b", "br", "cite", "code", "del", "dfn", "em", "i", "ins", "kbd", "mark", "q", "s",
    "samp", "small", "span", "strike", "strong", "sub", "sup", "tt", "u", "var", "wbr",
];

/// Makes a URL from the Markdown absolute: site paths against `base_url`, relative paths and
/// fragments against the page. `None` means the URL must go (an unsafe scheme).
pub fn absolutize<'u>(url: &'u str, base_url: &str, page_url: &str) -> Option<Cow<'u, str>> {
    // Nearly every real link is already absolute.
    let head = url.as_bytes().get(..8).unwrap_or_default();
    if head.eq_ignore_ascii_case(b"https://")
        || head[..head.len().min(7)].eq_ignore_ascii_case(b"http://")
    {
        return Some(Cow::Borrowed(url));
    }
    // Read the URL the way browsers do: leading and trailing controls and spaces go, and so do
    // tabs and line breaks anywhere, so `java&#9;script:` is `javascript:` here as well.
    let trimmed = url.trim_matches(|c: char| c <= ' ');
    let u: Cow<'u, str> = if trimmed.contains(['\t', '\n', '\r']) {
        Cow::Owned(trimmed.replace(['\t', '\n', '\r'], ""))
    } else {
        Cow::Borrowed(trimmed)
    };
    if u.is_empty() {
        return Some(Cow::Borrowed(""));
    }
    let safe = |scheme: &str| SAFE_SCHEMES.iter().any(|s| s.eq_ignore_ascii_case(scheme));
    if let Some(scheme) = scheme_of(&u) {
        return safe(scheme).then_some(u);
    }
    if let Some(rest) = u.strip_prefix("//") {
        return Some(Cow::Owned(format!("https://{rest}")));
    }
    if u.starts_with('/') {
        return Some(Cow::Owned(format!("{base_url}{u}")));
    }
    if u.starts_with('#') {
        let page = page_url.split('#').next().unwrap_or(page_url);
        return Some(Cow::Owned(format!("{page}{u}")));
    }
    match url::Url::parse(page_url).and_then(|p| p.join(&u)) {
        // The join follows the URL standard, which may still find a scheme in what looked
        // relative: only a safe one passes.
        Ok(abs) => safe(abs.scheme()).then(|| Cow::Owned(abs.into())),
        Err(_) => Some(Cow::Owned(format!("{base_url}/{u}"))),
    }
}

/// The scheme of an absolute URL (`https` of `https://…`), if it has one.
fn scheme_of(u: &str) -> Option<&str> {
    let colon = u.find(':')?;
    let s = &u[..colon];
    let ok = s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    ok.then_some(s)
}

/// A tag found in raw HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RawTag<'h> {
    range: Range<usize>,
    name: &'h str,
    closing: bool,
}

impl<'h> RawTag<'h> {
    fn is_component(&self) -> bool {
        is_component_name(self.name)
    }
}

/// Component tags are PascalCase (`TechshackHeader`); HTML tag names are not.
fn is_component_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_uppercase())
        && name.chars().any(|c| c.is_ascii_lowercase())
}

/// The end (exclusive) of a tag starting at `start` (`<`), skipping quoted attribute values.
fn tag_end(h: &str, start: usize) -> Option<usize> {
    let b = h.as_bytes();
    let mut i = start + 1;
    let mut quote = 0u8;
    while i < b.len() {
        let c = b[i];
        if quote != 0 {
            if c == quote {
                quote = 0;
            }
        } else if c == b'"' || c == b'\'' {
            quote = c;
        } else if c == b'>' {
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

/// Parses the tag at `start` (which holds `<`).
fn raw_tag(h: &str, start: usize) -> Option<RawTag<'_>> {
    let rest = &h[start + 1..];
    let (closing, name_start) = match rest.strip_prefix('/') {
        Some(_) => (true, start + 2),
        None => (false, start + 1),
    };
    let name_len = h[name_start..]
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
        .unwrap_or(h.len() - name_start);
    if name_len == 0 || !h[name_start..].starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let end = tag_end(h, start)?;
    let name = &h[name_start..name_start + name_len];
    Some(RawTag {
        range: start..end,
        name,
        closing,
    })
}

/// Every component tag in a piece of raw HTML.
fn component_tags(h: &str) -> Vec<RawTag<'_>> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(j) = h[i..].find('<') {
        let at = i + j;
        if h[at..].starts_with("<!--") {
            i = h[at..].find("-->").map_or(h.len(), |e| at + e + 3);
            continue;
        }
        match raw_tag(h, at) {
            Some(t) if t.is_component() => {
                i = t.range.end;
                out.push(t);
            }
            _ => i = at + 1,
        }
    }
    out
}

/// The text of sanitized HTML: tags dropped, the entities a serializer writes decoded.
pub fn strip_tags(h: &str) -> String {
    let mut out = String::with_capacity(h.len());
    let mut i = 0;
    while i < h.len() {
        let rest = &h[i..];
        if rest.starts_with("<!--") {
            i += rest.find("-->").map_or(rest.len(), |e| e + 3);
        } else if rest.starts_with('<') {
            i = tag_end(h, i).unwrap_or(h.len());
        } else if rest.starts_with('&') {
            let semi = rest.bytes().take(12).position(|b| b == b';');
            let decoded = semi.and_then(|s| decode_entity(&rest[1..s]).map(|c| (c, s + 1)));
            match decoded {
                Some((c, n)) => {
                    out.push(c);
                    i += n;
                }
                None => {
                    out.push('&');
                    i += 1;
                }
            }
        } else {
            let n = rest.find(['<', '&']).unwrap_or(rest.len());
            out.push_str(&rest[..n]);
            i += n;
        }
    }
    out
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
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => n.parse().ok()?,
            };
            char::from_u32(v)?
        }
    })
}

/// Escapes text for HTML element content and attribute values, quoted either way.
pub fn escape_html(s: &str) -> Cow<'_, str> {
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

/// An anchor from a title: lower case letters and digits joined by `-` (`section` if none).
pub fn slugify(s: &str) -> String {
    slugify_events(&[Event::Text(CowStr::Borrowed(s))])
}

/// [`slugify`] of the text of some events, without collecting the text first.
fn slugify_events(events: &[Event]) -> String {
    let mut out = String::new();
    let mut dash = false;
    for e in events {
        let t = match e {
            Event::Text(t) | Event::Code(t) => t,
            Event::SoftBreak | Event::HardBreak => {
                dash = true;
                continue;
            }
            _ => continue,
        };
        for c in t.chars() {
            if c.is_alphanumeric() {
                if dash && !out.is_empty() {
                    out.push('-');
                }
                dash = false;
                if c.is_ascii() {
                    out.push(c.to_ascii_lowercase());
                } else {
                    out.extend(c.to_lowercase());
                }
            } else if c.is_whitespace() || matches!(c, '-' | '_' | '.' | '/' | ':') {
                dash = true;
            }
        }
    }
    if out.is_empty() {
        out.push_str("section");
    }
    out
}

/// Hands out anchors unique within one issue: `name`, `name-2`, `name-3`, ...
#[derive(Debug, Default)]
pub struct Anchors(HashSet<String>);

impl Anchors {
    pub fn unique(&mut self, base: String) -> String {
        if self.0.insert(base.clone()) {
            return base;
        }
        let mut n = 2;
        loop {
            let c = format!("{base}-{n}");
            if self.0.insert(c.clone()) {
                return c;
            }
            n += 1;
        }
    }
}

/// The plain text of inline events: text and code, breaks as spaces, whitespace and control
/// characters folded to single spaces.
pub fn inline_text<'e, 'a: 'e>(events: impl IntoIterator<Item = &'e Event<'a>>) -> String {
    let mut raw = String::new();
    for e in events {
        match e {
            Event::Text(t) | Event::Code(t) => raw.push_str(t),
            Event::SoftBreak | Event::HardBreak => raw.push(' '),
            _ => {}
        }
    }
    fold_line(&raw)
}

/// Folds runs of whitespace and control characters to one space and trims.
pub fn fold_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if c.is_whitespace() || c.is_control() {
            space = true;
        } else {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(c);
        }
    }
    out
}

/// The sanitizer for raw HTML, made once per issue, and the site paths it saw.
struct Sanitizer {
    builder: ammonia::Builder<'static>,
    site_paths: Arc<Mutex<Vec<String>>>,
}

impl Sanitizer {
    fn new(s: &Settings) -> Sanitizer {
        let base = s.base_url.to_string();
        let page = s.page_url.to_string();
        let site_paths = Arc::new(Mutex::new(Vec::new()));
        let mut builder = ammonia::Builder::default();
        // Responsive images and media players survive with their sources; `autoplay` does not.
        builder
            .add_tags(["picture", "source", "video", "audio"])
            .add_tag_attributes("img", ["srcset", "sizes", "loading"])
            .add_tag_attributes(
                "source",
                ["src", "srcset", "sizes", "media", "type", "width", "height"],
            )
            .add_tag_attributes(
                "video",
                [
                    "src",
                    "poster",
                    "controls",
                    "width",
                    "height",
                    "loop",
                    "muted",
                    "playsinline",
                    "preload",
                ],
            )
            .add_tag_attributes("audio", ["src", "controls", "loop", "muted", "preload"]);
        // ammonia rewrites `src`, `href` and `poster` through `url_relative`, but not the
        // candidate list of `srcset`.
        let srcset = Rewriter {
            base: base.clone(),
            page: page.clone(),
            seen: Arc::clone(&site_paths),
        };
        builder.attribute_filter(move |_, attr, value| {
            if attr == "srcset" {
                Some(Cow::Owned(srcset.srcset(value)))
            } else {
                Some(Cow::Borrowed(value))
            }
        });
        builder.url_relative(ammonia::UrlRelative::Custom(Box::new(Rewriter {
            base,
            page,
            seen: Arc::clone(&site_paths),
        })));
        Sanitizer {
            builder,
            site_paths,
        }
    }

    fn clean(&self, h: &str) -> String {
        self.builder.clean(h).to_string()
    }

    fn take_site_paths(&self) -> Vec<String> {
        self.site_paths
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}

/// Makes the relative URLs of raw HTML absolute and remembers the site paths it saw.
struct Rewriter {
    base: String,
    page: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Rewriter {
    fn rewrite<'u>(&self, u: &'u str) -> Option<Cow<'u, str>> {
        if u.starts_with('/') && !u.starts_with("//") {
            if let Ok(mut v) = self.seen.lock() {
                v.push(u.to_string());
            }
        }
        absolutize(u, &self.base, &self.page)
    }

    /// A `srcset` with every candidate's URL made absolute; candidates that are not http(s)
    /// after that (`data:`, `javascript:`) are dropped.
    fn srcset(&self, value: &str) -> String {
        let mut out = String::with_capacity(value.len() + 32);
        for (url, descriptor) in srcset_candidates(value) {
            let Some(abs) = self.rewrite(url) else {
                continue;
            };
            let head = abs.get(..8).unwrap_or(&abs).to_ascii_lowercase();
            if !(head.starts_with("https://") || head.starts_with("http://")) {
                continue;
            }
            if !out.is_empty() {
                out.push_str(", ");
            }
            out.push_str(&abs);
            if !descriptor.is_empty() {
                out.push(' ');
                out.push_str(descriptor);
            }
        }
        out
    }
}

impl<'a> ammonia::UrlRelativeEvaluate<'a> for Rewriter {
    fn evaluate<'url>(&self, u: &'url str) -> Option<Cow<'url, str>> {
        self.rewrite(u)
    }
}

/// The (URL, descriptors) candidates of a `srcset` value, split the way HTML does: a URL is a
/// run of non-space characters (trailing commas end the candidate), the descriptors run to the
/// next comma outside parentheses. A comma inside a URL (`data:…;base64,…`) stays in it.
fn srcset_candidates(value: &str) -> Vec<(&str, &str)> {
    let is_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c');
    let mut out = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches(|c: char| is_space(c) || c == ',');
        if rest.is_empty() {
            return out;
        }
        let end = rest.find(is_space).unwrap_or(rest.len());
        let (raw_url, after) = rest.split_at(end);
        let url = raw_url.trim_end_matches(',');
        if url.len() < raw_url.len() {
            out.push((url, ""));
            rest = after;
            continue;
        }
        let mut depth = 0usize;
        let mut stop = after.len();
        for (i, c) in after.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                ',' if depth == 0 => {
                    stop = i;
                    break;
                }
                _ => {}
            }
        }
        out.push((url, after[..stop].trim_matches(is_space)));
        rest = &after[stop..];
    }
}

/// Placeholders for component HTML while a block goes through the sanitizer: characters of a
/// Unicode private use area, which survive sanitizing as text.
const PH_OPEN: char = '\u{F0001}';
const PH_CLOSE: char = '\u{F0002}';

struct Builder<'a, 's> {
    settings: &'s Settings<'s>,
    events: Vec<Event<'a>>,
    offsets: Vec<usize>,
    notes: Vec<Note>,
    sanitizer: Option<Sanitizer>,
    /// Inline tags opened by raw HTML and the nesting depth they were opened at.
    open_inline: Vec<(String, usize)>,
    depth: usize,
}

impl<'a, 's> Builder<'a, 's> {
    fn sanitizer(&mut self) -> &Sanitizer {
        self.sanitizer
            .get_or_insert_with(|| Sanitizer::new(self.settings))
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
            Some(h) => Some(h.clone()),
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
        let comps = component_tags(raw);
        let mut replacements: Vec<String> = Vec::new();
        let mut pre = String::with_capacity(raw.len());
        let mut last = 0;
        for t in &comps {
            pre.push_str(&raw[last..t.range.start]);
            last = t.range.end;
            if let Some(h) = self.component_html(t, offset) {
                if !h.is_empty() {
                    pre.push(PH_OPEN);
                    pre.push_str(&replacements.len().to_string());
                    pre.push(PH_CLOSE);
                    replacements.push(h);
                }
            }
        }
        pre.push_str(&raw[last..]);
        // Most raw HTML in real issues is comments, which would only be removed: skip the
        // sanitizer for them.
        if pre.contains("<!--") {
            pre = without_comments(&pre);
        }
        let out = if pre.trim().is_empty() {
            String::new()
        } else if pre
            .chars()
            .all(|c| c.is_whitespace() || c == PH_OPEN || c == PH_CLOSE || c.is_ascii_digit())
            && !replacements.is_empty()
        {
            replacements.concat()
        } else {
            let cleaned = self.sanitizer().clean(&pre);
            for p in self.sanitizer().take_site_paths() {
                self.notes.push(Note::SitePathImage { offset, path: p });
            }
            if replacements.is_empty() {
                cleaned
            } else {
                restore_placeholders(&cleaned, &replacements)
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
        let Some(tag) = raw_tag(t, 0).filter(|tag| tag.range.end == t.len()) else {
            return;
        };
        if tag.is_component() {
            if let Some(h) = self.component_html(&tag, offset) {
                if !h.is_empty() {
                    self.push(Event::InlineHtml(CowStr::from(h)), offset);
                }
            }
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
            for p in self.sanitizer().take_site_paths() {
                self.notes.push(Note::SitePathImage { offset, path: p });
            }
            let prefix = format!("<{name}");
            if !cleaned.starts_with(&prefix) {
                return;
            }
            match tag_end(&cleaned, 0) {
                Some(end) => cleaned[..end].to_string(),
                None => return,
            }
        };
        // Browsers read `<span/>` as an open tag, so it is closed like one.
        if !VOID.contains(&name.as_str()) {
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
        let abs = match absolutize(u, self.settings.base_url, self.settings.page_url) {
            Some(Cow::Borrowed(b)) if b.len() == u.len() => return url,
            Some(c) => c.into_owned(),
            None => "#".to_string(),
        };
        CowStr::from(abs)
    }

    fn event(&mut self, e: Event<'a>, offset: usize) {
        match e {
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => {
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

/// `h` without its `<!-- … -->` comments (an unclosed one runs to the end).
fn without_comments(h: &str) -> String {
    let mut out = String::with_capacity(h.len());
    let mut rest = h;
    while let Some(i) = rest.find("<!--") {
        out.push_str(&rest[..i]);
        rest = rest[i + 4..]
            .find("-->")
            .map_or("", |e| &rest[i + 4 + e + 3..]);
    }
    out.push_str(rest);
    out
}

fn restore_placeholders(cleaned: &str, replacements: &[String]) -> String {
    let mut out = String::with_capacity(cleaned.len());
    let mut rest = cleaned;
    while let Some(i) = rest.find(PH_OPEN) {
        out.push_str(&rest[..i]);
        let after = &rest[i + PH_OPEN.len_utf8()..];
        let Some(j) = after.find(PH_CLOSE) else {
            rest = after;
            continue;
        };
        if let Some(h) = after[..j]
            .parse::<usize>()
            .ok()
            .and_then(|n| replacements.get(n))
        {
            out.push_str(h);
        }
        rest = &after[j + PH_CLOSE.len_utf8()..];
    }
    out.push_str(rest);
    out
}

/// A top-level block: its kind's first event index and the index after its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub start: usize,
    pub end: usize,
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
        }
    }

    /// The top-level blocks, in order.
    pub fn blocks(&self) -> Vec<Block> {
        let mut out = Vec::new();
        let mut depth = 0usize;
        let mut start = 0;
        for (i, e) in self.events.iter().enumerate() {
            match e {
                Event::Start(_) => {
                    if depth == 0 {
                        start = i;
                    }
                    depth += 1;
                }
                Event::End(_) => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        out.push(Block { start, end: i + 1 });
                    }
                }
                _ => {
                    if depth == 0 {
                        out.push(Block {
                            start: i,
                            end: i + 1,
                        });
                    }
                }
            }
        }
        out
    }

    /// The plain text of the events in `range`.
    pub fn range_text(&self, range: Range<usize>) -> String {
        inline_text(&self.events[range])
    }

    /// The text of the first H1 anywhere in the body.
    pub fn first_h1(&self) -> Option<String> {
        let blocks = self.blocks();
        blocks.iter().find_map(|b| match &self.events[b.start] {
            Event::Start(Tag::Heading {
                level: HeadingLevel::H1,
                ..
            }) => Some(self.range_text(b.start..b.end)),
            _ => None,
        })
    }

    /// Drops the leading H1 (the first block that is not raw HTML) when `repeats` says its
    /// text repeats the title.
    pub fn drop_leading_h1(&mut self, repeats: impl Fn(&str) -> bool) {
        let Some(b) = self.leading_block() else {
            return;
        };
        if let Event::Start(Tag::Heading {
            level: HeadingLevel::H1,
            ..
        }) = self.events[b.start]
        {
            if repeats(&self.range_text(b.start..b.end)) {
                self.events.drain(b.start..b.end);
                self.offsets.drain(b.start..b.end);
            }
        }
    }

    /// The first top-level block that is not raw HTML.
    fn leading_block(&self) -> Option<Block> {
        let mut i = 0;
        while i < self.events.len() {
            let end = match &self.events[i] {
                Event::Start(_) => {
                    let mut depth = 0usize;
                    let mut j = i;
                    loop {
                        match self.events.get(j) {
                            Some(Event::Start(_)) => depth += 1,
                            Some(Event::End(_)) => {
                                depth -= 1;
                                if depth == 0 {
                                    break j + 1;
                                }
                            }
                            Some(_) => {}
                            None => break j,
                        }
                        j += 1;
                    }
                }
                _ => i + 1,
            };
            if !matches!(self.events[i], Event::Start(Tag::HtmlBlock)) {
                return Some(Block { start: i, end });
            }
            i = end;
        }
        None
    }

    /// Gives every heading an `id` unique within the body.
    pub fn assign_heading_ids(&mut self, anchors: &mut Anchors) {
        let mut i = 0;
        while i < self.events.len() {
            if let Event::Start(Tag::Heading { .. }) = self.events[i] {
                let end = self.events[i..]
                    .iter()
                    .position(|e| matches!(e, Event::End(TagEnd::Heading(_))))
                    .map_or(self.events.len(), |p| i + p);
                let id = anchors.unique(slugify_events(&self.events[i..end]));
                if let Event::Start(Tag::Heading { id: slot, .. }) = &mut self.events[i] {
                    *slot = Some(CowStr::from(id));
                }
                i = end;
            }
            i += 1;
        }
    }

    /// The `id` of the heading starting at `i`, if it is one.
    pub fn heading_id(&self, i: usize) -> Option<&str> {
        match &self.events.get(i)? {
            Event::Start(Tag::Heading { id: Some(id), .. }) => Some(id),
            _ => None,
        }
    }

    /// Appends the HTML of the events in `range`.
    pub fn push_html(&self, range: Range<usize>, out: &mut String) {
        let ids = &self.para_ids;
        let mut k = ids.partition_point(|(i, _)| *i < range.start);
        let start = range.start;
        let iter = self.events[range].iter().enumerate().map(move |(j, e)| {
            if k < ids.len() && ids[k].0 == start + j {
                let id = &ids[k].1;
                k += 1;
                return Event::Html(CowStr::from(format!("<p id=\"{}\">", escape_html(id))));
            }
            e.clone()
        });
        pulldown_cmark::html::push_html(out, iter);
    }

    /// The HTML of the events in `range`.
    pub fn html(&self, range: Range<usize>) -> String {
        let mut s = String::with_capacity(range.len() * 24);
        self.push_html(range, &mut s);
        s
    }

    /// The HTML of several ranges, one after the other.
    pub fn html_of(&self, ranges: &[Range<usize>]) -> String {
        let mut s = String::with_capacity(ranges.iter().map(|r| r.len() * 24).sum());
        for r in ranges {
            self.push_html(r.clone(), &mut s);
        }
        // Every issue's HTML is kept until the outputs are written: no spare capacity.
        s.shrink_to_fit();
        s
    }

    /// The plain text of several ranges, rendered as one run of events.
    pub fn text_of(&self, ranges: &[Range<usize>]) -> String {
        let events = ranges.iter().flat_map(|r| self.events[r.clone()].iter());
        // Raw HTML goes through as it is: the text renderer keeps its text and turns `<br>`
        // and block tags into line breaks.
        let mut text = crate::plaintext::render(events.cloned());
        text.shrink_to_fit();
        text
    }

    /// Whether the body has no content at all.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(md: &str) -> (String, Vec<Note>) {
        let mut comps = BTreeMap::new();
        comps.insert("TechshackHeader".to_string(), String::new());
        comps.insert(
            "Subscribe".to_string(),
            "<form action=\"/s\"></form>".to_string(),
        );
        let s = Settings {
            base_url: "https://example.com",
            page_url: "https://example.com/weekly/2019-01.html",
            components: &comps,
        };
        let d = Doc::parse(md, &s);
        (d.html(0..d.events.len()), d.notes)
    }

    #[test]
    fn urls_become_absolute() {
        let (h, notes) =
            render("[a](/x) [b](y.html) [c](#f) ![i](/static/i.png) [d](https://o.org/)");
        assert!(h.contains("href=\"https://example.com/x\""), "{h}");
        assert!(
            h.contains("href=\"https://example.com/weekly/y.html\""),
            "{h}"
        );
        assert!(
            h.contains("href=\"https://example.com/weekly/2019-01.html#f\""),
            "{h}"
        );
        assert!(
            h.contains("src=\"https://example.com/static/i.png\""),
            "{h}"
        );
        assert!(h.contains("href=\"https://o.org/\""), "{h}");
        assert_eq!(
            notes,
            vec![Note::SitePathImage {
                offset: 28,
                path: "/static/i.png".into()
            }]
        );
    }

    #[test]
    fn srcset_and_poster_become_absolute() {
        let (h, notes) = render(
            "<picture><source srcset=\"a.webp 1x, /b.webp 2x\" type=\"image/webp\">\
             <img src=\"a.png\" srcset=\"a.png, /s/b.png 640w,c.png 2x,data:image/png;base64,QQ== 3x, \
             javascript:x 4x\" sizes=\"50vw\"></picture>\n\n\
             <video poster=\"p.jpg\" src=\"/v.mp4\" controls autoplay></video>\n",
        );
        assert!(
            h.contains(
                "srcset=\"https://example.com/weekly/a.webp 1x, https://example.com/b.webp 2x\""
            ),
            "{h}"
        );
        assert!(
            h.contains(
                "srcset=\"https://example.com/weekly/a.png, https://example.com/s/b.png 640w, \
                 https://example.com/weekly/c.png 2x\""
            ),
            "{h}"
        );
        assert!(
            h.contains("poster=\"https://example.com/weekly/p.jpg\""),
            "{h}"
        );
        assert!(h.contains("src=\"https://example.com/v.mp4\""), "{h}");
        assert!(
            h.contains("sizes=\"50vw\"") && h.contains("controls"),
            "{h}"
        );
        assert!(
            !h.contains("autoplay") && !h.contains("data:") && !h.contains("javascript"),
            "{h}"
        );
        let paths: Vec<_> = notes
            .iter()
            .filter_map(|n| match n {
                Note::SitePathImage { path, .. } => Some(path.as_str()),
                _ => None,
            })
            .collect();
        assert!(
            paths.contains(&"/s/b.png") && paths.contains(&"/b.webp"),
            "{paths:?}"
        );
    }

    #[test]
    fn srcset_candidates_split_like_html() {
        assert_eq!(
            srcset_candidates(" a.png 1x,b.png,, c.png (x, y) 2x , d.png,"),
            vec![
                ("a.png", "1x"),
                ("b.png", ""),
                ("c.png", "(x, y) 2x"),
                ("d.png", "")
            ]
        );
        assert_eq!(
            srcset_candidates("data:i/p;base64,QQ== 1x"),
            vec![("data:i/p;base64,QQ==", "1x")]
        );
        assert!(srcset_candidates(" , ").is_empty());
    }

    #[test]
    fn javascript_links_are_dropped() {
        let (h, _) = render("[x](javascript:alert(1))");
        assert!(!h.contains("javascript"), "{h}");
        // Browsers drop tabs and line breaks inside URLs and controls around them.
        for md in [
            "[a](java&#x09;script:alert(1))",
            "[b](java&#10;script:alert(2))",
            "[c](javascript&#13;:alert(3))",
            "[d](&#1;javascript:alert(4))",
            "[e](&#32;JaVa&#9;Script:alert(5))",
            "[f][r]\n\n[r]: jav&#x09;ascript:alert(6)",
            "![g](java&#x09;script:alert(7))",
            "[h](&#x0B;vbscript:msgbox(8))",
        ] {
            let (h, _) = render(md);
            let lower = h.to_ascii_lowercase();
            assert!(
                !lower.contains("script:") && !lower.contains("alert("),
                "{md} gave {h}"
            );
        }
        assert_eq!(
            absolutize("java\tscript:x", "https://e.com", "https://e.com/p.html"),
            None
        );
        assert_eq!(
            absolutize(" rel\n/x.png ", "https://e.com", "https://e.com/w/p.html").as_deref(),
            Some("https://e.com/w/rel/x.png")
        );
        assert_eq!(
            absolutize("\tmailto:a@b.c", "https://e.com", "https://e.com/p.html").as_deref(),
            Some("mailto:a@b.c")
        );
    }

    #[test]
    fn components_are_replaced_or_stripped() {
        let (h, notes) = render("<TechshackHeader />\n\ntext\n\n<Subscribe />\n\n<Unknown />\n");
        assert_eq!(h, "<p>text</p>\n<form action=\"/s\"></form>");
        assert!(matches!(&notes[0], Note::UnknownComponent { name, .. } if name == "Unknown"));
    }

    #[test]
    fn raw_html_is_reduced_to_the_allow_list() {
        let (h, _) = render(
            "<div onclick=\"x()\"><script>alert(1)</script><iframe src=\"e\"></iframe>ok <img src=\"/a.png\" style=\"w\"></div>\n",
        );
        assert!(
            !h.contains("script") && !h.contains("iframe") && !h.contains("onclick"),
            "{h}"
        );
        assert!(h.contains("ok"), "{h}");
        assert!(h.contains("src=\"https://example.com/a.png\""), "{h}");
    }

    #[test]
    fn inline_html_is_balanced_and_clean() {
        let (h, _) = render("a <small>b <b onmouseover=\"x\">c\n\nnext");
        assert_eq!(h, "<p>a <small>b <b>c</b></small></p>\n<p>next</p>\n");
        let (h, _) = render("a <span/> b");
        assert_eq!(h, "<p>a <span> b</span></p>\n");
        let (h, _) = render("x </b> <br> <img src=\"i.png\" onerror=\"x\"> <script>y</script>");
        assert!(
            !h.contains("</b>") && !h.contains("onerror") && !h.contains("<script"),
            "{h}"
        );
        assert!(h.contains("<br>"), "{h}");
        assert!(
            h.contains("src=\"https://example.com/weekly/i.png\""),
            "{h}"
        );
    }

    #[test]
    fn mermaid_and_comments_do_not_leak() {
        let (h, _) = render("<mermaid>\ngraph LR\nA --> B<script>x</script>\n</mermaid>\n\n<!--\n\n* [hidden](/h)\n\n-->\n\nafter\n");
        assert!(
            !h.contains("<mermaid") && !h.contains("<script") && !h.contains("hidden"),
            "{h}"
        );
        assert!(h.contains("A --&gt; B"), "{h}");
        assert!(h.ends_with("<p>after</p>\n"), "{h}");
    }

    #[test]
    fn slugs_and_anchors() {
        assert_eq!(slugify("What is HTTP/3 ?"), "what-is-http-3");
        assert_eq!(
            slugify("Clojure’s stability: lessons"),
            "clojures-stability-lessons"
        );
        assert_eq!(slugify("!!!"), "section");
        let mut a = Anchors::default();
        assert_eq!(a.unique("x".into()), "x");
        assert_eq!(a.unique("x".into()), "x-2");
        assert_eq!(a.unique("x".into()), "x-3");
    }

    #[test]
    fn comments_are_removed_whole() {
        assert_eq!(without_comments("a<!-- x -->b<!--c--><!-- open"), "ab");
        let (h, _) = render("<!-- <script>x</script> -->\n\n<!--\n* [a](b)\n\n-->\n<p>after</p>\n");
        assert_eq!(h, "<p>after</p>\n");
    }

    #[test]
    fn strip_tags_decodes() {
        assert_eq!(
            strip_tags("<p a=\"x>y\">a &amp; b&lt;</p>&#x1F600;"),
            "a & b<😀"
        );
    }
}
