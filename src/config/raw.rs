//! The configuration file as written: serde structs, their defaults, and the located
//! diagnostics for unknown keys. [`super::Config`] is built from these once they parse.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use chrono::NaiveTime;
use serde::{Deserialize, Deserializer};

use super::Timezone;
use crate::diag::{Diagnostic, Diagnostics};

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
    if tables.is_empty() {
        format!("unknown key or table `{}`: check its spelling against the README's configuration table", name(last))
    } else {
        format!(
            "unknown key `{}` in [{}]: check its spelling against the README's configuration table",
            name(last),
            tables.join(".")
        )
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

/// Parses config text into the raw structs; every unknown key is an error at its line.
pub(super) fn parse(text: &str, path: &Path) -> Result<RawConfig> {
    // Unknown keys are collected, all of them, rather than stopping at the first.
    let mut unknown: Vec<Vec<Seg>> = Vec::new();
    let parsed: std::result::Result<RawConfig, toml::de::Error> =
        serde_ignored::deserialize(toml::Deserializer::new(text), |p| {
            unknown.push(segments(&p))
        });
    let config = parsed.map_err(|e| {
        let pos = e.span().map(|s| crate::diag::line_col(text, s.start));
        Diagnostics(vec![Diagnostic::error(path, pos, e.message().trim_end())])
    })?;
    if !unknown.is_empty() {
        let d = unknown
            .iter()
            .map(|segs| {
                let pos = key_offset(text, segs).map(|o| crate::diag::line_col(text, o));
                Diagnostic::error(path, pos, unknown_key_message(segs))
            })
            .collect();
        return Err(Diagnostics(d).into());
    }
    Ok(config)
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
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct StateConfig {
    pub db: PathBuf,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            db: PathBuf::from("state/techshack.sqlite3"),
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
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: "127.0.0.1:8080".into(),
            public_url: None,
            trust_forwarded_for: false,
            header_timeout_secs: 10,
            max_connections: 512,
        }
    }
}

fn default_issue_path() -> String {
    "/{slug}.html".into()
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
