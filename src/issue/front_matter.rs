//! Front matter: YAML between `---` lines, TOML between `+++` lines, or Pelican /
//! MultiMarkdown `Key: value` lines. The fences are found line by line, never by searching for
//! `---` in the text, so code blocks holding `---` are safe.

/// A value with the byte offset of the line its key is on.
#[derive(Debug, Clone, PartialEq)]
pub struct Field<T> {
    pub value: T,
    pub offset: usize,
}

/// The known keys of one issue's metadata; unknown keys are ignored.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FrontMatter {
    pub title: Option<Field<String>>,
    pub date: Option<Field<String>>,
    pub updated: Option<Field<String>>,
    pub description: Option<Field<String>>,
    /// `false` from `published: false`, `draft: true` or Pelican's `Status: draft`.
    pub published: Option<Field<bool>>,
    pub id: Option<Field<String>>,
    pub slug: Option<Field<String>>,
    pub lang: Option<String>,
    pub tags: Vec<String>,
    pub number: Option<String>,
}

/// A problem in the front matter, at a byte offset of the file's text or an exact position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FmError {
    pub at: At,
    pub message: String,
    /// The front matter could not be read at all (a syntax error).
    pub fatal: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    Offset(usize),
    LineCol(usize, usize),
}

/// The metadata, where the Markdown body starts, and any problems.
#[derive(Debug, Default)]
pub struct Split {
    pub meta: FrontMatter,
    pub body_offset: usize,
    pub errors: Vec<FmError>,
    /// Unknown keys that look like a misspelled known one (`pubished`).
    pub warnings: Vec<FmError>,
}

/// A value of any front matter format, reduced to what the known keys need.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Str(String),
    Bool(bool),
    Num(String),
    List(Vec<Val>),
    Null,
    Other,
}

/// Lines of `text` with the byte offset each starts at; the line excludes `\n` and `\r`.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= text.len() {
            return None;
        }
        let start = pos;
        let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        pos = end + 1;
        let line = &text[start..end];
        Some((start, line.strip_suffix('\r').unwrap_or(line)))
    })
}

/// Splits the metadata off the body.
pub fn split(text: &str) -> Split {
    let Some((_, first)) = lines(text).next() else {
        return Split::default();
    };
    let fence = first.trim_end();
    if fence == "---" || fence == "+++" {
        let yaml = fence == "---";
        let start = line_end(text, 0);
        for (off, line) in lines(text).skip(1) {
            let t = line.trim_end();
            if t == fence || (yaml && t == "...") {
                let inner = &text[start..off];
                let body_offset = line_end(text, off);
                let (pairs, errors) = if yaml {
                    read_yaml(inner, start, text)
                } else {
                    read_toml(inner, start)
                };
                let mut s = Split {
                    meta: FrontMatter::default(),
                    body_offset,
                    errors,
                    warnings: Vec::new(),
                };
                if !s.errors.iter().any(|e| e.fatal) {
                    interpret(pairs, &mut s);
                }
                return s;
            }
        }
        let kind = if yaml { "YAML" } else { "TOML" };
        return Split {
            meta: FrontMatter::default(),
            body_offset: text.len(),
            errors: vec![FmError {
                at: At::LineCol(1, 1),
                message: format!(
                    "{kind} front matter opened with `{fence}` is never closed: add a `{fence}` line after the last key"
                ),
                fatal: true,
            }],
            warnings: Vec::new(),
        };
    }
    if pelican_key(first).is_some_and(|(k, _)| is_known(&k.to_ascii_lowercase())) {
        return read_pelican(text);
    }
    Split::default()
}

/// Offset just after the line that starts at `off`.
fn line_end(text: &str, off: usize) -> usize {
    text[off..].find('\n').map_or(text.len(), |i| off + i + 1)
}

/// Every key the metadata reads, lower case.
const KNOWN: [&str; 15] = [
    "title",
    "date",
    "updated",
    "modified",
    "description",
    "summary",
    "published",
    "draft",
    "status",
    "id",
    "slug",
    "lang",
    "tags",
    "category",
    "number",
];

fn is_known(key: &str) -> bool {
    KNOWN.contains(&key)
}

/// The known key an unknown one is most likely a misspelling of (see [`crate::spelling`]).
/// Unknown keys stay allowed; this only names the likely typo.
pub fn near_miss(key: &str) -> Option<&'static str> {
    if is_known(key) {
        return None;
    }
    crate::spelling::did_you_mean(key, &KNOWN)
}

/// `Key: value` with a key of letters, digits, `_` or `-`.
fn pelican_key(line: &str) -> Option<(&str, &str)> {
    let (k, v) = line.split_once(':')?;
    if k.is_empty()
        || !k.starts_with(|c: char| c.is_ascii_alphabetic())
        || !k
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return None;
    }
    if !(v.is_empty() || v.starts_with([' ', '\t'])) {
        return None;
    }
    Some((k, v.trim()))
}

/// Pelican metadata: `Key: value` lines up to the first blank line. A blank line followed by
/// more lines with known keys (a real corpus has one before `Category:`) continues the block.
fn read_pelican(text: &str) -> Split {
    let mut pairs = Vec::new();
    let mut body_offset = text.len();
    let mut blank_at: Option<usize> = None;
    for (off, line) in lines(text) {
        if line.trim().is_empty() {
            blank_at.get_or_insert(off);
            continue;
        }
        match pelican_key(line) {
            Some((k, v)) if blank_at.is_none() || is_known(&k.to_ascii_lowercase()) => {
                blank_at = None;
                let key = k.to_ascii_lowercase();
                let val = if v.is_empty() {
                    Val::Null
                } else {
                    Val::Str(v.to_string())
                };
                pairs.push((key, val, off));
            }
            _ => {
                body_offset = blank_at.unwrap_or(off);
                break;
            }
        }
    }
    let mut s = Split {
        meta: FrontMatter::default(),
        body_offset,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    interpret(pairs, &mut s);
    s
}

/// The offset of the line holding `key` at its start, else `fallback`.
fn key_offset(inner: &str, base: usize, key: &str, sep: &[char], fallback: usize) -> usize {
    for (off, line) in lines(inner) {
        if let Some(rest) = line.strip_prefix(key) {
            let rest = rest.trim_start_matches([' ', '\t']);
            if rest.starts_with(sep) {
                return base + off;
            }
        }
        let q = format!("\"{key}\"");
        if line.starts_with(&q) {
            return base + off;
        }
    }
    fallback
}

type Pairs = Vec<(String, Val, usize)>;

fn read_yaml(inner: &str, base: usize, text: &str) -> (Pairs, Vec<FmError>) {
    if inner.trim().is_empty() {
        return (Vec::new(), Vec::new());
    }
    let value: serde_yaml::Value = match serde_yaml::from_str(inner) {
        Ok(v) => v,
        Err(e) => {
            let at = match e.location() {
                Some(l) => {
                    let (line0, _) = crate::diag::line_col(text, base);
                    At::LineCol(line0 + l.line() - 1, l.column())
                }
                None => At::Offset(base),
            };
            let msg = e.to_string();
            // serde_yaml appends " at line L column C", which would repeat the position.
            let msg = match msg.find(" at line ") {
                Some(i) => msg[..i].to_string(),
                None => msg,
            };
            return (
                Vec::new(),
                vec![FmError {
                    at,
                    message: format!("malformed YAML front matter: {msg}"),
                    fatal: true,
                }],
            );
        }
    };
    let map = match value {
        serde_yaml::Value::Mapping(m) => m,
        serde_yaml::Value::Null => return (Vec::new(), Vec::new()),
        _ => {
            return (
                Vec::new(),
                vec![FmError {
                    at: At::Offset(base),
                    message: "front matter is not a list of `key: value` lines".into(),
                    fatal: true,
                }],
            )
        }
    };
    let mut pairs = Vec::new();
    for (k, v) in map {
        let serde_yaml::Value::String(k) = k else {
            continue;
        };
        let key = k.to_ascii_lowercase();
        if !is_known(&key) && near_miss(&key).is_none() {
            continue;
        }
        let off = key_offset(inner, base, &k, &[':'], base);
        pairs.push((key, from_yaml(v), off));
    }
    (pairs, Vec::new())
}

fn from_yaml(v: serde_yaml::Value) -> Val {
    use serde_yaml::Value as Y;
    match v {
        Y::Null => Val::Null,
        Y::Bool(b) => Val::Bool(b),
        Y::Number(n) => Val::Num(n.to_string()),
        Y::String(s) => Val::Str(s),
        Y::Sequence(s) => Val::List(s.into_iter().map(from_yaml).collect()),
        Y::Tagged(t) => from_yaml(t.value),
        Y::Mapping(_) => Val::Other,
    }
}

fn read_toml(inner: &str, base: usize) -> (Pairs, Vec<FmError>) {
    let table: toml::Table = match inner.parse() {
        Ok(t) => t,
        Err(e) => {
            let at = At::Offset(base + e.span().map_or(0, |s| s.start));
            return (
                Vec::new(),
                vec![FmError {
                    at,
                    message: format!("malformed TOML front matter: {}", e.message()),
                    fatal: true,
                }],
            );
        }
    };
    let mut pairs = Vec::new();
    for (k, v) in table {
        let key = k.to_ascii_lowercase();
        if !is_known(&key) && near_miss(&key).is_none() {
            continue;
        }
        let off = key_offset(inner, base, &k, &['='], base);
        pairs.push((key, from_toml(v), off));
    }
    (pairs, Vec::new())
}

fn from_toml(v: toml::Value) -> Val {
    use toml::Value as T;
    match v {
        T::String(s) => Val::Str(s),
        T::Integer(i) => Val::Num(i.to_string()),
        T::Float(f) => Val::Num(f.to_string()),
        T::Boolean(b) => Val::Bool(b),
        T::Datetime(d) => Val::Str(d.to_string()),
        T::Array(a) => Val::List(a.into_iter().map(from_toml).collect()),
        T::Table(_) => Val::Other,
    }
}

/// Text of a scalar; `None` for null, lists and tables.
fn scalar(v: Val) -> Option<String> {
    match v {
        Val::Str(s) | Val::Num(s) => Some(s),
        Val::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn boolean(v: &Val) -> Option<bool> {
    match v {
        Val::Bool(b) => Some(*b),
        Val::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" => Some(true),
            "false" | "no" | "off" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Fills the known keys; an empty value is absent, not an error.
fn interpret(pairs: Pairs, s: &mut Split) {
    let m = &mut s.meta;
    let mut draft: Option<Field<bool>> = None;
    let mut published: Option<Field<bool>> = None;
    for (key, val, offset) in pairs {
        if matches!(val, Val::Null) || matches!(&val, Val::Str(x) if x.trim().is_empty()) {
            continue;
        }
        let text_field = |v: Val, errors: &mut Vec<FmError>| -> Option<Field<String>> {
            match scalar(v) {
                Some(value) => Some(Field { value, offset }),
                None => {
                    errors.push(FmError {
                        at: At::Offset(offset),
                        message: format!("`{key}` must be a single value, not a list or table"),
                        fatal: false,
                    });
                    None
                }
            }
        };
        match key.as_str() {
            "title" => m.title = text_field(val, &mut s.errors),
            "date" => m.date = text_field(val, &mut s.errors),
            "updated" | "modified" => m.updated = text_field(val, &mut s.errors),
            "description" | "summary" => m.description = text_field(val, &mut s.errors),
            "id" => m.id = text_field(val, &mut s.errors),
            "slug" => m.slug = text_field(val, &mut s.errors),
            "lang" => m.lang = text_field(val, &mut s.errors).map(|f| f.value),
            "number" => m.number = text_field(val, &mut s.errors).map(|f| f.value),
            "published" | "draft" => match boolean(&val) {
                Some(b) => {
                    let f = Field { value: b, offset };
                    if key == "published" {
                        published = Some(f);
                    } else {
                        draft = Some(f);
                    }
                }
                None => s.errors.push(FmError {
                    at: At::Offset(offset),
                    message: format!("`{key}` must be true or false"),
                    fatal: false,
                }),
            },
            "status" => {
                if let Some(v) = scalar(val) {
                    if v.trim().eq_ignore_ascii_case("draft") {
                        draft = Some(Field {
                            value: true,
                            offset,
                        });
                    }
                }
            }
            "tags" | "category" => match val {
                Val::List(items) => m.tags.extend(items.into_iter().filter_map(scalar)),
                other => {
                    if let Some(v) = scalar(other) {
                        m.tags.extend(
                            v.split(',')
                                .map(str::trim)
                                .filter(|t| !t.is_empty())
                                .map(String::from),
                        );
                    }
                }
            },
            other => {
                if let Some(known) = near_miss(other) {
                    s.warnings.push(FmError {
                        at: At::Offset(offset),
                        message: format!("unknown key `{other}`: did you mean `{known}`?"),
                        fatal: false,
                    });
                }
            }
        }
    }
    // A draft flag wins over `published: true`.
    m.published = match (published, draft) {
        (_, Some(d)) if d.value => Some(Field {
            value: false,
            offset: d.offset,
        }),
        (Some(p), _) => Some(p),
        (None, Some(d)) => Some(Field {
            value: true,
            offset: d.offset,
        }),
        (None, None) => None,
    };
    let mut seen = std::collections::HashSet::new();
    m.tags.retain(|t| seen.insert(t.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses_of_known_keys() {
        assert_eq!(near_miss("pubished"), Some("published"));
        assert_eq!(near_miss("publsihed"), Some("published"));
        assert_eq!(near_miss("tilte"), Some("title"));
        assert_eq!(near_miss("dat"), Some("date"));
        assert_eq!(near_miss("drafts"), Some("draft"));
        for far in [
            "published",
            "id",
            "to",
            "url",
            "series",
            "sidebar",
            "source",
            "author",
            "layout",
        ] {
            assert_eq!(near_miss(far), None, "{far}");
        }
    }

    #[test]
    fn a_misspelled_key_warns_at_its_line_in_every_format() {
        for t in [
            "---\ntitle: A\npubished: false\n---\nbody\n",
            "+++\ntitle = \"A\"\npubished = false\n+++\nbody\n",
            "Title: A\nPubished: false\n\nbody\n",
        ] {
            let s = split(t);
            assert!(s.errors.is_empty(), "{:?}", s.errors);
            assert!(s.meta.published.is_none());
            let w: Vec<_> = s
                .warnings
                .iter()
                .map(|w| (w.at, w.message.as_str()))
                .collect();
            let off = t.find(['p', 'P']).unwrap();
            assert_eq!(
                w,
                [(
                    At::Offset(off),
                    "unknown key `pubished`: did you mean `published`?"
                )],
                "{t}"
            );
        }
    }

    #[test]
    fn yaml_with_code_fence_dashes_in_body() {
        let t =
            "---\ntitle: A\npublished: false\ndescription:\n---\n\n```go\nSplit(\"---\")\n```\n";
        let s = split(t);
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        assert_eq!(s.meta.title.as_ref().unwrap().value, "A");
        assert_eq!(s.meta.title.as_ref().unwrap().offset, 4);
        assert!(!s.meta.published.as_ref().unwrap().value);
        assert!(s.meta.description.is_none());
        assert_eq!(&t[s.body_offset..], "\n```go\nSplit(\"---\")\n```\n");
    }

    #[test]
    fn yaml_error_position_is_in_the_file() {
        let t = "---\ntitle: A\ndate: [2019\n---\nbody\n";
        let s = split(t);
        assert_eq!(s.errors.len(), 1);
        assert!(s.errors[0].fatal);
        assert!(
            matches!(s.errors[0].at, At::LineCol(4, _)),
            "{:?}",
            s.errors
        );
    }

    #[test]
    fn toml_front_matter() {
        let t =
            "+++\ntitle = \"T\"\ndate = 2019-01-07\ntags = [\"a\", \"b\"]\ndraft = true\n+++\nBody";
        let s = split(t);
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        assert_eq!(s.meta.date.as_ref().unwrap().value, "2019-01-07");
        assert_eq!(s.meta.tags, ["a", "b"]);
        assert!(!s.meta.published.unwrap().value);
        assert_eq!(&t[s.body_offset..], "Body");
    }

    #[test]
    fn pelican_with_blank_line_inside() {
        let t = "Title: T\nNumber: 604\nDate: 2025-06-18\n\nCategory: This Week\n\nHello: world\n";
        let s = split(t);
        assert_eq!(s.meta.number.as_deref(), Some("604"));
        assert_eq!(s.meta.tags, ["This Week"]);
        assert_eq!(&t[s.body_offset..], "\nHello: world\n");
    }

    #[test]
    fn no_front_matter() {
        let t = "Note: this is prose\n\nmore";
        let s = split(t);
        assert_eq!(s.body_offset, 0);
        assert_eq!(s.meta, FrontMatter::default());
    }

    #[test]
    fn crlf_front_matter() {
        let t = "---\r\ntitle: A\r\n---\r\nBody\r\n";
        let s = split(t);
        assert_eq!(s.meta.title.unwrap().value, "A");
        assert_eq!(&t[s.body_offset..], "Body\r\n");
    }

    #[test]
    fn unclosed_fence() {
        let s = split("---\ntitle: A\n");
        assert!(s.errors[0].message.contains("never closed"));
    }

    #[test]
    fn wrong_types() {
        let s = split("---\ntitle: [a, b]\npublished: maybe\n---\n");
        assert_eq!(s.errors.len(), 2, "{:?}", s.errors);
        assert_eq!(s.errors[1].message, "`published` must be true or false");
    }
}
