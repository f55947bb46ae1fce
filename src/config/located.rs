//! Where a key of the configuration file is, what it is called, and what a serde error about
//! it means in a user's words. Lets [`super::raw::parse`] report every problem of a file in
//! one run: after each type error the offending `key = value` is blanked (same length, same
//! lines, so later positions stay true) and the file is read again.

use toml_edit::{Item, TableLike, Value};

/// A key (or table) of the document and the bytes it spans, `key = value` or the table.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    /// `feeds.limit`, `feeds.extra[1].name`.
    pub name: String,
    pub start: usize,
    pub end: usize,
    /// A table (`[feeds]`, `[[feeds.extra]]`, an inline `{ ... }`), not a plain value.
    pub table: bool,
}

/// Every key and table of the text, or `None` when it is not TOML at all.
pub(super) fn entries(text: &str) -> Option<Vec<Entry>> {
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let mut out = Vec::new();
    walk(doc.as_table(), "", &mut out);
    Some(out)
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Adds the entries under `table`; returns the end of the last byte they span.
fn walk(table: &dyn TableLike, prefix: &str, out: &mut Vec<Entry>) -> usize {
    let mut last = 0;
    for (k, _) in table.iter() {
        let Some((key, item)) = table.get_key_value(k) else {
            continue;
        };
        let name = join(prefix, k);
        let key_start = key.span().map(|s| s.start);
        let end = match item {
            Item::Value(v) => {
                if let Value::InlineTable(t) = v {
                    walk(t, &name, out);
                }
                v.span().map_or(0, |s| s.end)
            }
            Item::Table(t) => {
                let body = walk(t, &name, out);
                let head = t.span().map_or(0, |s| s.end);
                if let Some(s) = t.span() {
                    out.push(Entry {
                        name: name.clone(),
                        start: s.start,
                        end: body.max(head),
                        table: true,
                    });
                }
                body.max(head)
            }
            Item::ArrayOfTables(a) => {
                let mut end = 0;
                for (i, t) in a.iter().enumerate() {
                    let n = format!("{name}[{i}]");
                    let body = walk(t, &n, out);
                    if let Some(s) = t.span() {
                        let e = body.max(s.end);
                        out.push(Entry {
                            name: n,
                            start: s.start,
                            end: e,
                            table: true,
                        });
                        end = end.max(e);
                    }
                }
                end
            }
            Item::None => 0,
        };
        if let (Some(start), Item::Value(v)) = (key_start, item) {
            out.push(Entry {
                name,
                start,
                end,
                table: v.is_inline_table(),
            });
        }
        last = last.max(end);
    }
    last
}

/// The smallest entry holding byte `at`.
pub(super) fn at(entries: &[Entry], at: usize) -> Option<&Entry> {
    entries
        .iter()
        .filter(|e| e.start <= at && at < e.end.max(e.start + 1))
        .min_by_key(|e| e.end - e.start)
}

/// The smallest table holding all of `start..end`; `None` for the top level.
pub(super) fn table_around(entries: &[Entry], start: usize, end: usize) -> Option<&Entry> {
    entries
        .iter()
        .filter(|e| e.table && e.start <= start && end <= e.end)
        .min_by_key(|e| e.end - e.start)
}

/// `text` with the bytes of `e` replaced by spaces, line breaks kept.
pub(super) fn blank(text: &str, e: &Entry) -> String {
    let mut b = text.as_bytes().to_vec();
    for c in &mut b[e.start..e.end.min(text.len())] {
        if *c != b'\n' && *c != b'\r' {
            *c = b' ';
        }
    }
    // Only ASCII spaces replaced whole characters' bytes, so this stays UTF-8.
    String::from_utf8_lossy(&b).into_owned()
}

/// serde's wording (`invalid type: string "20", expected usize`) in a user's words
/// (`expected a whole number, found the string "20"`); other messages as they are.
pub(super) fn words(message: &str) -> String {
    let m = message.trim_end();
    let (found, expected) = if let Some(rest) = m.strip_prefix("invalid type: ") {
        match rest.split_once(", expected ") {
            Some(p) => p,
            None => return m.to_string(),
        }
    } else if let Some(rest) = m.strip_prefix("invalid value: ") {
        match rest.split_once(", expected ") {
            Some(p) => p,
            None => return m.to_string(),
        }
    } else {
        return m.to_string();
    };
    format!(
        "expected {}, found {}",
        expected_words(expected),
        found_words(found)
    )
}

fn expected_words(e: &str) -> String {
    match e {
        "usize" | "u64" | "u32" | "u16" | "u8" => "a whole number, 0 or more".into(),
        "isize" | "i64" | "i32" | "i16" | "i8" => "a whole number".into(),
        "f64" | "f32" => "a number".into(),
        "a boolean" => "true or false".into(),
        "a string" => "a string (in quotes)".into(),
        "a sequence" => "an array".into(),
        "a map" => "a table".into(),
        other if other.starts_with("struct ") => "a table".into(),
        other => other.to_string(),
    }
}

fn found_words(f: &str) -> String {
    let unquote = |s: &str| s.trim_matches('`').to_string();
    if let Some(s) = f.strip_prefix("string ") {
        format!("the string {s}")
    } else if let Some(n) = f.strip_prefix("integer ") {
        format!("the number {}", unquote(n))
    } else if let Some(n) = f.strip_prefix("floating point ") {
        format!("the number {}", unquote(n))
    } else if let Some(b) = f.strip_prefix("boolean ") {
        unquote(b)
    } else {
        match f {
            "sequence" => "an array".into(),
            "map" => "a table".into(),
            other => other.to_string(),
        }
    }
}

/// The known key `key` is most likely a misspelling of (see [`crate::spelling`]).
pub(super) fn did_you_mean<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    crate::spelling::did_you_mean(key, known)
}

/// The keys each table of the file may hold, by its name without array indexes.
pub(super) fn known_keys(table: &str) -> &'static [&'static str] {
    match table {
        "" => &[
            "site",
            "issues",
            "templates",
            "components",
            "feeds",
            "email",
            "smtp",
            "state",
            "serve",
        ],
        "site" => &[
            "title",
            "description",
            "base_url",
            "issue_path",
            "language",
            "timezone",
            "author",
            "id_prefix",
            "sitemap",
        ],
        "site.author" => &["name", "email"],
        "issues" => &["dir", "filename_date", "time", "static_dir"],
        "templates" => &["dir"],
        "feeds" => &["out", "path", "limit", "content", "extra"],
        "feeds.extra" => &["name", "match", "title", "description", "language"],
        "email" => &[
            "from",
            "reply_to",
            "list_id",
            "unsubscribe_url",
            "unsubscribe_mailto",
            "return_path",
            "dkim",
        ],
        "email.dkim" => &["domain", "selector", "key_file"],
        "smtp" => &[
            "url",
            "username",
            "concurrency",
            "rate",
            "per_connection",
            "timeout_secs",
            "max_attempts",
            "retry_after_secs",
            "max_age_hours",
            "ca_file",
            "stop_after_refusals",
            "soft_bounces",
            "soft_bounce_days",
            "domains",
        ],
        "state" => &["db"],
        "serve" => &[
            "listen",
            "public_url",
            "trust_forwarded_for",
            "header_timeout_secs",
            "max_connections",
            "max_connections_per_client",
            "confirm_mails_per_hour",
        ],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_words_become_user_words() {
        assert_eq!(
            words("invalid type: string \"20\", expected usize"),
            "expected a whole number, 0 or more, found the string \"20\""
        );
        assert_eq!(
            words("invalid type: integer `1`, expected a string"),
            "expected a string (in quotes), found the number 1"
        );
        assert_eq!(
            words("invalid value: integer `-1`, expected usize"),
            "expected a whole number, 0 or more, found the number -1"
        );
        assert_eq!(
            words("invalid time `9h`, expected HH:MM"),
            "invalid time `9h`, expected HH:MM"
        );
        assert_eq!(
            did_you_mean("baseurl", known_keys("site")),
            Some("base_url")
        );
        assert_eq!(did_you_mean("feed", known_keys("")), Some("feeds"));
        assert_eq!(did_you_mean("colour", known_keys("site")), None);
    }

    #[test]
    fn entries_span_keys_tables_and_arrays() {
        let t = "[site]\ntitle = \"T\"\n[[feeds.extra]]\nname = 1\n";
        let e = entries(t).unwrap();
        let name = |o: usize| at(&e, o).map(|x| x.name.clone());
        assert_eq!(name(t.find("\"T\"").unwrap()), Some("site.title".into()));
        assert_eq!(
            name(t.find("1").unwrap()),
            Some("feeds.extra[0].name".into())
        );
        let b = blank(t, at(&e, t.find("1").unwrap()).unwrap());
        assert_eq!(b.len(), t.len());
        assert!(b.ends_with("\n        \n"), "{b:?}");
    }
}
