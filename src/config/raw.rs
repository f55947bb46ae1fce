//! The configuration file as written: serde structs, their defaults, and the located
//! diagnostics for unknown keys. [`super::Config`] is built from these once they parse.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use chrono::NaiveTime;
use serde::{Deserialize, Deserializer};

use super::{located, Timezone};
use crate::diag::Diagnostic;

/// One step of the path to a key: a table key or an index into an array of tables.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn segments(p: &serde_ignored::Path<'_>) -> Vec<Seg> {
    use serde_ignored::Path;
    match p {
        Path::Root => Vec::new(),
        Path::Seq { parent, index } => {
            let mut v = segments(parent);
            v.push(Seg::Index(*index));
            v
        }
        Path::Map { parent, key } => {
            let mut v = segments(parent);
            v.push(Seg::Key(key.clone()));
            v
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => segments(parent),
    }
}

/// `unknown key `colour` in [site]`, `unknown table [sites]`.
fn unknown_key_message(segs: &[Seg]) -> String {
    let name = |s: &Seg| match s {
        Seg::Key(k) => k.clone(),
        Seg::Index(i) => i.to_string(),
    };
    let Some((last, parents)) = segs.split_last() else {
        return "unknown key".to_string();
    };
    let tables: Vec<String> = parents
        .iter()
        .filter(|s| matches!(s, Seg::Key(_)))
        .map(name)
        .collect();
    let key = name(last);
    let hint = match located::did_you_mean(&key, located::known_keys(&tables.join("."))) {
        Some(k) => format!("did you mean `{k}`?"),
        None => "check its spelling against the README's configuration table".to_string(),
    };
    if tables.is_empty() {
        format!("unknown key or table `{key}`: {hint}")
    } else {
        format!("unknown key `{key}` in [{}]: {hint}", tables.join("."))
    }
}

/// The byte offset of the key at `segs` in the TOML text, to point the error at it.
fn key_offset(text: &str, segs: &[Seg]) -> Option<usize> {
    let doc = toml_edit::ImDocument::parse(text).ok()?;
    let mut table: &dyn toml_edit::TableLike = doc.as_table();
    let mut item: Option<&toml_edit::Item> = None;
    let mut span = None;
    for seg in segs {
        match seg {
            Seg::Key(k) => {
                if let Some(it) = item.take() {
                    table = it.as_table_like()?;
                }
                let (key, it) = table.get_key_value(k)?;
                span = key.span();
                item = Some(it);
            }
            Seg::Index(i) => {
                table = match item.take()? {
                    toml_edit::Item::ArrayOfTables(a) => a.get(*i)?,
                    toml_edit::Item::Value(toml_edit::Value::Array(a)) => {
                        a.get(*i)?.as_inline_table()?
                    }
                    _ => return None,
                };
            }
        }
    }
    span.map(|s| s.start)
}

/// The whole file, before validation.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct RawConfig {
    pub site: SiteConfig,
    #[serde(default)]
    pub issues: IssuesConfig,
    #[serde(default)]
    pub templates: TemplatesConfig,
    #[serde(default)]
    pub components: BTreeMap<String, String>,
    #[serde(default)]
    pub feeds: FeedsConfig,
    #[serde(default)]
    pub email: EmailConfig,
    #[serde(default)]
    pub smtp: SmtpConfig,
    #[serde(default)]
    pub state: StateConfig,
    #[serde(default)]
    pub serve: ServeConfig,
}

/// Parses config text into the raw structs, with every problem found on the way: each type
/// error and missing key at its line (reading on past it), and every unknown key with its
/// likely intended name. `None` when the text could not be read into the structs at all.
pub(super) fn parse(text: &str, path: &Path) -> (Option<RawConfig>, Vec<Diagnostic>) {
    let mut work = Work {
        text: text.to_string(),
        inserted: Vec::new(),
        problems: Vec::new(),
        blanked: Vec::new(),
    };
    let mut unknown: Vec<Vec<Seg>> = Vec::new();
    let mut config = None;
    // Each round fixes one problem (blanks a bad value, or fills a missing key), so a bound
    // on the rounds bounds the work on any file.
    for _ in 0..64 {
        unknown.clear();
        let parsed: std::result::Result<RawConfig, toml::de::Error> =
            serde_ignored::deserialize(toml::Deserializer::new(&work.text), |p| {
                unknown.push(segments(&p))
            });
        match parsed {
            Ok(c) => {
                config = Some(c);
                break;
            }
            Err(e) => {
                if !work.recover(&e) {
                    break;
                }
            }
        }
    }
    let mut problems = std::mem::take(&mut work.problems);
    let missing_near: Vec<(String, String)> =
        problems.iter().filter_map(|p| p.near.clone()).collect();
    for segs in &unknown {
        let offset = key_offset(text, segs);
        let (table, key) = table_and_key(segs);
        if missing_near
            .iter()
            .any(|(t, k)| *t == table && Some(k.as_str()) == key.as_deref())
        {
            continue; // said with the missing key it stands for
        }
        problems.push(Problem {
            offset,
            message: unknown_key_message(segs),
            near: None,
        });
    }
    problems.sort_by_key(|p| p.offset.unwrap_or(usize::MAX));
    let d = problems
        .into_iter()
        .map(|p| {
            let pos = p.offset.map(|o| crate::diag::line_col(text, o));
            Diagnostic::error(path, pos, p.message)
        })
        .collect();
    (config, d)
}

/// One problem: where (a byte offset of the original text) and what.
struct Problem {
    offset: Option<usize>,
    message: String,
    /// For a missing key: the table and the misspelled key found beside it.
    near: Option<(String, String)>,
}

/// The text being read, changed after each problem so that reading can go on.
struct Work {
    text: String,
    /// Insertions into `text` (offset in `text`, length), to map offsets back.
    inserted: Vec<(usize, usize)>,
    problems: Vec<Problem>,
    /// Keys whose bad value was blanked: their "missing" errors are not news.
    blanked: Vec<String>,
}

impl Work {
    /// An offset of `text` as an offset of the original file.
    fn original(&self, o: usize) -> usize {
        o - self
            .inserted
            .iter()
            .filter(|(at, _)| *at <= o)
            .map(|(_, len)| len)
            .sum::<usize>()
    }

    /// Records the problem of `e` and changes the text past it; false when it cannot.
    fn recover(&mut self, e: &toml::de::Error) -> bool {
        let Some(entries) = located::entries(&self.text) else {
            // Not TOML: the syntax error is the one problem.
            let offset = e.span().map(|s| self.original(s.start));
            self.problems.push(Problem {
                offset,
                message: e.message().trim_end().to_string(),
                near: None,
            });
            return false;
        };
        let start = e.span().map(|s| s.start);
        let entry = start.and_then(|s| located::at(&entries, s)).cloned();
        if let Some(field) = missing_field(e.message()) {
            let span = e.span().unwrap_or(0..self.text.len());
            let table = located::table_around(&entries, span.start, span.end).cloned();
            let name = table.as_ref().map(|t| t.name.clone()).unwrap_or_default();
            return self.fill_missing(&entries, &name, table.as_ref(), &field);
        }
        let message = located::words(e.message());
        match entry {
            Some(en) if !self.blanked.contains(&en.name) => {
                self.problems.push(Problem {
                    offset: start.map(|s| self.original(s)),
                    message: format!("{}: {message}", en.name),
                    near: None,
                });
                self.text = located::blank(&self.text, &en);
                self.blanked.push(en.name);
                true
            }
            _ => {
                self.problems.push(Problem {
                    offset: start.map(|s| self.original(s)),
                    message,
                    near: None,
                });
                false
            }
        }
    }

    /// `missing field `base_url`` in `table`: reported (naming a misspelled key beside it),
    /// then a stand-in value is put in so that the rest of the file is read too.
    fn fill_missing(
        &mut self,
        entries: &[located::Entry],
        table: &str,
        entry: Option<&located::Entry>,
        field: &str,
    ) -> bool {
        let full = if table.is_empty() {
            field.to_string()
        } else {
            format!("{table}.{field}")
        };
        let plain = strip_indexes(table);
        let prefix = if table.is_empty() {
            String::new()
        } else {
            format!("{table}.")
        };
        let near = entries.iter().find(|e| {
            e.name.strip_prefix(&prefix).is_some_and(|k| {
                !k.contains('.')
                    && !located::known_keys(&plain).contains(&k)
                    && located::did_you_mean(k, &[field]).is_some()
            })
        });
        if !self.blanked.contains(&full) {
            let (offset, message, n) = match near {
                Some(n) => {
                    let k = &n.name[prefix.len()..];
                    (
                        Some(self.original(n.start)),
                        format!("{full} is missing: `{k}` is not a key of [{plain}]: did you mean `{field}`?"),
                        Some((plain.clone(), k.to_string())),
                    )
                }
                None => (
                    entry.map(|e| self.original(e.start)),
                    if table.is_empty() {
                        format!("the [{field}] table is missing")
                    } else {
                        format!("{full} is missing: it is required in [{plain}]")
                    },
                    None,
                ),
            };
            self.problems.push(Problem {
                offset,
                message,
                near: n,
            });
        }
        // The stand-in: on the line after the table's header, or a new table at the end.
        let stand_in = if field == "base_url" {
            "\"https://example.invalid\""
        } else {
            "\"x\""
        };
        let (at, insert) = match entry {
            None if table.is_empty() => (
                self.text.len(),
                format!("\n[{field}]\ntitle = \"x\"\nbase_url = \"https://example.invalid\"\n"),
            ),
            Some(e) if self.text[e.start..].starts_with('[') => {
                let line_end = self.text[e.start..].find('\n').map(|i| e.start + i + 1);
                match line_end {
                    Some(at) => (at, format!("{field} = {stand_in}\n")),
                    None => (self.text.len(), format!("\n{field} = {stand_in}\n")),
                }
            }
            Some(e) => {
                // An inline table: first in its braces.
                let Some(brace) = self.text[e.start..e.end].find('{').map(|i| e.start + i + 1)
                else {
                    return false;
                };
                let empty = self.text[brace..e.end].trim_start().starts_with('}');
                let sep = if empty { " " } else { ", " };
                (brace, format!(" {field} = {stand_in}{sep}"))
            }
            None => return false,
        };
        self.text.insert_str(at, &insert);
        for (o, _) in &mut self.inserted {
            if *o >= at {
                *o += insert.len();
            }
        }
        self.inserted.push((at, insert.len()));
        self.blanked.push(full);
        true
    }
}

/// `feeds.extra[1]` → `feeds.extra`.
fn strip_indexes(name: &str) -> String {
    let mut out = String::new();
    let mut skip = false;
    for c in name.chars() {
        match c {
            '[' => skip = true,
            ']' => skip = false,
            c if !skip => out.push(c),
            _ => {}
        }
    }
    out
}

/// The field of serde's `missing field `x``.
fn missing_field(message: &str) -> Option<String> {
    let rest = message.trim().strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_string())
}

/// The table (without indexes) and the key a path of segments names.
fn table_and_key(segs: &[Seg]) -> (String, Option<String>) {
    let keys: Vec<&str> = segs
        .iter()
        .filter_map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::Index(_) => None,
        })
        .collect();
    match keys.split_last() {
        Some((last, parents)) => (parents.join("."), Some(last.to_string())),
        None => (String::new(), None),
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct SiteConfig {
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// Absolute, without a trailing slash once loaded.
    pub base_url: String,
    #[serde(default = "default_issue_path")]
    pub issue_path: String,
    #[serde(default = "default_language")]
    pub language: String,
    #[serde(default)]
    pub timezone: Timezone,
    #[serde(default)]
    pub author: Option<Author>,
    #[serde(default)]
    pub id_prefix: Option<String>,
    /// Write `sitemap.xml` and `robots.txt` beside the pages.
    #[serde(default = "default_true")]
    pub sitemap: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Author {
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct IssuesConfig {
    pub dir: PathBuf,
    pub filename_date: String,
    #[serde(deserialize_with = "de_time")]
    pub time: NaiveTime,
    pub static_dir: Option<PathBuf>,
}

impl Default for IssuesConfig {
    fn default() -> Self {
        IssuesConfig {
            dir: PathBuf::from("issues"),
            filename_date: "%Y-%m-%d".into(),
            time: NaiveTime::from_hms_opt(0, 0, 0).expect("midnight"),
            static_dir: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct TemplatesConfig {
    /// A user's templates; a file missing here falls back to the built-in one.
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FeedContent {
    #[default]
    Full,
    Summary,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct FeedsConfig {
    pub out: PathBuf,
    pub path: String,
    pub limit: usize,
    pub content: FeedContent,
    pub extra: Vec<ExtraFeedConfig>,
}

impl Default for FeedsConfig {
    fn default() -> Self {
        FeedsConfig {
            out: PathBuf::from("public"),
            path: "/".into(),
            limit: 20,
            content: FeedContent::Full,
            extra: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ExtraFeedConfig {
    pub name: String,
    /// Glob on the issue's file name; matched issues leave the main feeds.
    #[serde(rename = "match")]
    pub pattern: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub language: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct EmailConfig {
    pub from: Option<String>,
    pub reply_to: Option<String>,
    pub list_id: Option<String>,
    pub unsubscribe_url: Option<String>,
    pub unsubscribe_mailto: Option<String>,
    /// VERP: the envelope sender of each message, with `{token}` naming its delivery.
    pub return_path: Option<String>,
    pub dkim: Option<DkimConfig>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DkimConfig {
    pub domain: String,
    pub selector: String,
    pub key_file: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SmtpConfig {
    pub url: String,
    pub username: String,
    pub concurrency: usize,
    pub rate: f64,
    pub per_connection: usize,
    pub timeout_secs: u64,
    pub max_attempts: u32,
    pub retry_after_secs: u64,
    /// Hours after its first attempt that a deferred delivery is given up. Signed so that a
    /// negative value reaches validation and its message rather than a type error.
    pub max_age_hours: i64,
    pub ca_file: Option<PathBuf>,
    /// Stop a send when this many recipients in a row get the same refusal that is not
    /// theirs (the sender or relaying refused).
    pub stop_after_refusals: usize,
    /// Delays and transient failures reported by mail (`techshack inbound`) within
    /// `soft_bounce_days` that mark a subscriber bounced.
    pub soft_bounces: u32,
    pub soft_bounce_days: u32,
    /// `[smtp.domains] "gmail.com" = { rate = 20 }`: a recipient domain's own rate.
    pub domains: std::collections::BTreeMap<String, DomainConfig>,
}

/// One entry of `[smtp.domains]`.
#[derive(Debug, Clone, Deserialize)]
pub struct DomainConfig {
    /// Messages per second to this domain, at most.
    pub rate: f64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            url: "smtp://127.0.0.1:25".into(),
            username: String::new(),
            concurrency: 4,
            rate: 50.0,
            per_connection: 100,
            timeout_secs: 30,
            max_attempts: 5,
            retry_after_secs: 300,
            max_age_hours: 72,
            ca_file: None,
            stop_after_refusals: 5,
            soft_bounces: 3,
            soft_bounce_days: 14,
            domains: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct StateConfig {
    pub db: PathBuf,
    /// A PostgreSQL database (`postgres://user@host:port/db`) instead of the SQLite file.
    pub url: Option<String>,
    /// Seconds a sender's lease on its rows lasts without renewal (it is renewed every third
    /// of it): after a sender dies, others take over its rows this long after.
    pub lease_seconds: u64,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            db: PathBuf::from("state/techshack.sqlite3"),
            url: None,
            lease_seconds: 30,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ServeConfig {
    pub listen: String,
    pub public_url: Option<String>,
    /// Take the client's address from the last `X-Forwarded-For` entry (for the per-address
    /// limit on sign-ups); only behind a reverse proxy that sets that header.
    pub trust_forwarded_for: bool,
    /// A client must send a request's line and headers within this many seconds of starting
    /// it, or of the previous response on a kept-alive connection; otherwise it is closed.
    pub header_timeout_secs: u64,
    /// Connections served at once; further clients wait in the listen queue.
    pub max_connections: usize,
    /// Connections one client (an IPv4 address, an IPv6 /64) may hold open at once.
    /// `None`: 16, or `max_connections` behind a trusted proxy (every client is the proxy).
    pub max_connections_per_client: Option<usize>,
    /// Confirmation mails sent per hour, from all clients together.
    pub confirm_mails_per_hour: u32,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: "127.0.0.1:8080".into(),
            public_url: None,
            trust_forwarded_for: false,
            header_timeout_secs: 10,
            max_connections: 512,
            max_connections_per_client: None,
            confirm_mails_per_hour: 200,
        }
    }
}

fn default_issue_path() -> String {
    "/{slug}.html".into()
}

fn default_true() -> bool {
    true
}

fn default_language() -> String {
    "en".into()
}

fn de_time<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveTime, D::Error> {
    let s = String::deserialize(d)?;
    NaiveTime::parse_from_str(&s, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(&s, "%H:%M:%S"))
        .map_err(|_| serde::de::Error::custom(format!("invalid time `{s}`, expected HH:MM")))
}
