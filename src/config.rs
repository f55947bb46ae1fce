//! Configuration: the TOML file, its defaults, and path resolution.
//!
//! Unknown keys are errors naming the key and its line. Relative paths in the file resolve
//! against the file's own folder.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use chrono::{FixedOffset, NaiveTime, TimeZone};
use serde::{Deserialize, Deserializer};

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

/// The default configuration file, relative to the current folder.
pub const DEFAULT_CONFIG: &str = "config/techshack.toml";

#[derive(Debug, Clone, Deserialize)]
pub struct Config {
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
    /// The folder of the config file; relative paths were resolved against it.
    #[serde(skip)]
    pub root: PathBuf,
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
    pub extra: Vec<ExtraFeed>,
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
pub struct ExtraFeed {
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

/// Above this, `serve.max_connections` is surely a typo: every connection is a file
/// descriptor, and the tokio semaphore behind the cap has a far higher ceiling.
pub const MAX_SERVE_CONNECTIONS: usize = 1_000_000;
/// A day: a longer header timeout would not protect anything.
pub const MAX_HEADER_TIMEOUT_SECS: u64 = 86_400;

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

/// `site.timezone`: an IANA name or a fixed offset such as `+08:00`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Timezone {
    Named(chrono_tz::Tz),
    Fixed(FixedOffset),
}

impl Default for Timezone {
    fn default() -> Self {
        Timezone::Named(chrono_tz::UTC)
    }
}

impl Timezone {
    /// The offset in force at a local date and time (the earlier one when ambiguous,
    /// the one after the gap when the time does not exist).
    pub fn offset_at(&self, local: chrono::NaiveDateTime) -> FixedOffset {
        match self {
            Timezone::Fixed(o) => *o,
            Timezone::Named(tz) => {
                use chrono::offset::Offset;
                match tz.offset_from_local_datetime(&local) {
                    chrono::LocalResult::Single(o) => o.fix(),
                    chrono::LocalResult::Ambiguous(a, _) => a.fix(),
                    chrono::LocalResult::None => tz
                        .offset_from_local_datetime(&(local + chrono::Duration::hours(1)))
                        .earliest()
                        .map(|o| o.fix())
                        .unwrap_or_else(|| FixedOffset::east_opt(0).expect("zero offset")),
                }
            }
        }
    }

    /// A local date and time in this zone.
    pub fn localize(&self, local: chrono::NaiveDateTime) -> chrono::DateTime<FixedOffset> {
        let off = self.offset_at(local);
        off.from_local_datetime(&local)
            .single()
            .unwrap_or_else(|| off.from_utc_datetime(&local))
    }

    /// The current time in this zone.
    pub fn now(&self) -> chrono::DateTime<FixedOffset> {
        let utc = chrono::Utc::now();
        match self {
            Timezone::Fixed(o) => utc.with_timezone(o),
            Timezone::Named(tz) => utc.with_timezone(tz).fixed_offset(),
        }
    }
}

impl FromStr for Timezone {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if let Ok(tz) = s.parse::<chrono_tz::Tz>() {
            return Ok(Timezone::Named(tz));
        }
        let probe = format!("2000-01-01T00:00:00{s}");
        if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(&probe) {
            return Ok(Timezone::Fixed(*dt.offset()));
        }
        Err(format!("unknown time zone `{s}`: use an IANA name such as `Europe/Berlin` or an offset such as `+08:00`"))
    }
}

impl fmt::Display for Timezone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Timezone::Named(tz) => write!(f, "{}", tz.name()),
            Timezone::Fixed(o) => write!(f, "{o}"),
        }
    }
}

impl<'de> Deserialize<'de> for Timezone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Config {
    /// Which file to read: the flag, else `$TECHSHACK_CONFIG`, else the default.
    pub fn locate(flag: Option<&Path>) -> PathBuf {
        if let Some(p) = flag {
            return p.to_path_buf();
        }
        match std::env::var_os("TECHSHACK_CONFIG") {
            Some(v) if !v.is_empty() => PathBuf::from(v),
            _ => PathBuf::from(DEFAULT_CONFIG),
        }
    }

    /// Reads, parses and validates a config file, resolving its relative paths.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "reading config {}: check the path or set --config / $TECHSHACK_CONFIG",
                path.display()
            )
        })?;
        Self::parse(&text, path)
    }

    /// Parses config text; `path` names the file in errors and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        // Unknown keys are collected, all of them, rather than stopping at the first.
        let mut unknown: Vec<Vec<Seg>> = Vec::new();
        let parsed: std::result::Result<Config, toml::de::Error> =
            serde_ignored::deserialize(toml::Deserializer::new(text), |p| {
                unknown.push(segments(&p))
            });
        let mut config = parsed.map_err(|e| {
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
        let root = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let root = if root.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            root
        };
        config.resolve(&root);
        let problems = config.validate();
        if !problems.is_empty() {
            let d = problems
                .into_iter()
                .map(|m| Diagnostic::error(path, None, m))
                .collect();
            return Err(Diagnostics(d).into());
        }
        Ok(config)
    }

    fn resolve(&mut self, root: &Path) {
        let r = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = root.join(&*p);
            }
        };
        r(&mut self.issues.dir);
        if let Some(p) = self.issues.static_dir.as_mut() {
            r(p);
        }
        if let Some(p) = self.templates.dir.as_mut() {
            r(p);
        }
        r(&mut self.feeds.out);
        if let Some(d) = self.email.dkim.as_mut() {
            r(&mut d.key_file);
        }
        if let Some(p) = self.smtp.ca_file.as_mut() {
            r(p);
        }
        r(&mut self.state.db);
        self.root = root.to_path_buf();
    }

    /// Every problem of the values, one message each (all of them, not only the first).
    fn validate(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(e) = self.set_base_url(&self.site.base_url.clone()) {
            problems.push(format!("{e:#}"));
        }
        if !self.site.issue_path.starts_with('/') || !self.site.issue_path.contains("{slug}") {
            problems.push(format!(
                "site.issue_path `{}` must start with `/` and contain `{{slug}}`",
                self.site.issue_path
            ));
        }
        if !self.feeds.path.starts_with('/') {
            problems.push(format!(
                "feeds.path `{}` must start with `/`",
                self.feeds.path
            ));
        }
        if !self.feeds.path.ends_with('/') {
            self.feeds.path.push('/');
        }
        if !self.site.issue_path.starts_with(&self.feeds.path) {
            problems.push(format!(
                "site.issue_path `{}` is not under feeds.path `{}`: the pages could not be written under the feeds' folder",
                self.site.issue_path,
                self.feeds.path
            ));
        }
        if self.feeds.limit == 0 {
            problems.push("feeds.limit must be at least 1".to_string());
        }
        if self.site.title.trim().is_empty() {
            problems.push("site.title is empty".to_string());
        }
        let mut names = std::collections::BTreeSet::new();
        for x in &self.feeds.extra {
            let ok = !x.name.is_empty()
                && x.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                && !matches!(x.name.as_str(), "atom" | "rss" | "feed" | "items");
            if !ok {
                problems.push(format!("feeds.extra name `{}` must be letters, digits, `-` or `_`, and not a built-in feed's name", x.name));
            }
            if !names.insert(x.name.clone()) {
                problems.push(format!("feeds.extra name `{}` appears twice", x.name));
            }
            if let Err(e) = globset::Glob::new(&x.pattern) {
                problems.push(format!(
                    "feeds.extra `{}`: invalid glob `{}`: {e}",
                    x.name, x.pattern
                ));
            }
        }
        if self.smtp.concurrency == 0
            || self.smtp.per_connection == 0
            || self.smtp.max_attempts == 0
        {
            problems.push(
                "smtp.concurrency, smtp.per_connection and smtp.max_attempts must be at least 1"
                    .to_string(),
            );
        }
        if self.smtp.rate.is_nan() || self.smtp.rate <= 0.0 {
            problems.push("smtp.rate must be a positive number of messages per second".to_string());
        }
        if self.smtp.max_age_hours <= 0 {
            problems.push(format!(
                "smtp.max_age_hours is {}: it must be at least 1 (hours after the first attempt that a deferred delivery is given up)",
                self.smtp.max_age_hours
            ));
        }
        if !(1..=MAX_HEADER_TIMEOUT_SECS).contains(&self.serve.header_timeout_secs) {
            problems.push(format!(
                "serve.header_timeout_secs must be between 1 and {MAX_HEADER_TIMEOUT_SECS} (seconds a client may take to send its request headers), not {}",
                self.serve.header_timeout_secs
            ));
        }
        if !(1..=MAX_SERVE_CONNECTIONS).contains(&self.serve.max_connections) {
            problems.push(format!(
                "serve.max_connections must be between 1 and {MAX_SERVE_CONNECTIONS}, not {}",
                self.serve.max_connections
            ));
        }
        problems
    }

    /// Replaces `site.base_url` (for `build --base-url`), checking it is absolute.
    pub fn set_base_url(&mut self, raw: &str) -> Result<()> {
        let u = url::Url::parse(raw)
            .with_context(|| format!("site.base_url `{raw}` is not an absolute URL"))?;
        if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
            bail!("site.base_url `{raw}` must be an absolute http(s) URL");
        }
        self.site.base_url = raw.trim_end_matches('/').to_string();
        Ok(())
    }

    /// The absolute URL of a site path such as `/techshack.weekly/2019-01.html`.
    pub fn url(&self, site_path: &str) -> String {
        format!("{}{}", self.site.base_url, site_path)
    }

    /// The site path of an issue's web page.
    pub fn issue_site_path(&self, slug: &str) -> String {
        self.site.issue_path.replace("{slug}", slug)
    }

    /// The absolute URL of an issue's web page.
    pub fn issue_url(&self, slug: &str) -> String {
        self.url(&self.issue_site_path(slug))
    }

    /// The stable entry id of an issue without an `id` of its own.
    pub fn issue_id(&self, slug: &str) -> String {
        match &self.site.id_prefix {
            Some(p) => format!("{}/{slug}", p.trim_end_matches('/')),
            None => self.issue_url(slug),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_lines_are_enough() {
        let c = Config::parse(
            "[site]\ntitle = \"T\"\nbase_url = \"https://example.com/\"\n",
            Path::new("c/t.toml"),
        )
        .unwrap();
        assert_eq!(c.site.base_url, "https://example.com");
        assert_eq!(c.issue_url("a"), "https://example.com/a.html");
        assert_eq!(c.issues.dir, Path::new("c/issues"));
        assert_eq!(c.feeds.limit, 20);
        assert_eq!(c.serve.header_timeout_secs, 10);
        assert_eq!(c.serve.max_connections, 512);
    }

    #[test]
    fn serve_limits_must_be_positive() {
        let parse = |serve: &str| {
            Config::parse(
                &format!("[site]\ntitle = \"T\"\nbase_url = \"https://e.com\"\n[serve]\n{serve}\n"),
                Path::new("t.toml"),
            )
        };
        let c = parse("header_timeout_secs = 3\nmax_connections = 7").unwrap();
        assert_eq!(c.serve.header_timeout_secs, 3);
        assert_eq!(c.serve.max_connections, 7);
        for (bad, key) in [
            ("header_timeout_secs = 0", "serve.header_timeout_secs"),
            ("header_timeout_secs = 86401", "serve.header_timeout_secs"),
            ("max_connections = 0", "serve.max_connections"),
            ("max_connections = 1000001", "serve.max_connections"),
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(key), "{bad}: {e}");
        }
        // Negative numbers fail in parsing, which points at the line.
        let e = parse("max_connections = -1").unwrap_err().to_string();
        assert!(e.starts_with("t.toml:5:"), "{e}");
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = Config::parse(
            "[site]\ntitle = \"T\"\nbase_url = \"https://e.com\"\ncolour = 1\n",
            Path::new("t.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("t.toml:4:1: error: unknown key `colour` in [site]"),
            "{e}"
        );
    }

    #[test]
    fn every_unknown_key_is_reported_with_its_line() {
        let e = Config::parse(
            "[site]\ntitle = \"T\"\nbase_url = \"https://e.com\"\ncolour = 1\n\
             author = { name = \"A\", emial = \"a@e.com\" }\n[sitez]\nx = 1\n\
             [[feeds.extra]]\nname = \"zh\"\nmatch = \"*\"\nlang = \"zh\"\n\
             [components]\nAnything = \"\"\n",
            Path::new("t.toml"),
        )
        .unwrap_err();
        let d = e.downcast_ref::<Diagnostics>().expect("diagnostics");
        let got: Vec<(Option<(usize, usize)>, &str)> =
            d.0.iter()
                .map(|x| (x.pos, x.message.split(':').next().unwrap_or("")))
                .collect();
        assert_eq!(
            got,
            [
                (Some((4, 1)), "unknown key `colour` in [site]"),
                (Some((5, 24)), "unknown key `emial` in [site.author]"),
                (Some((6, 2)), "unknown key or table `sitez`"),
                (Some((11, 1)), "unknown key `lang` in [feeds.extra]"),
            ]
        );
    }

    #[test]
    fn every_bad_value_is_reported_at_once() {
        let e = Config::parse(
            "[site]\ntitle = \" \"\nbase_url = \"ftp://e.com\"\n[feeds]\nlimit = 0\n\
             [[feeds.extra]]\nname = \"rss\"\nmatch = \"[\"\n[smtp]\nrate = 0.0\n",
            Path::new("t.toml"),
        )
        .unwrap_err();
        let d = e.downcast_ref::<Diagnostics>().expect("diagnostics");
        assert_eq!(d.errors(), 6, "{d}");
        let lines: Vec<String> = d.0.iter().map(|x| x.to_string()).collect();
        assert_eq!(
            lines[..3],
            [
                "t.toml: error: site.base_url `ftp://e.com` must be an absolute http(s) URL",
                "t.toml: error: feeds.limit must be at least 1",
                "t.toml: error: site.title is empty",
            ]
        );
        assert!(lines[3].contains("feeds.extra name `rss`"), "{d}");
        assert!(
            lines[4].starts_with("t.toml: error: feeds.extra `rss`: invalid glob `[`"),
            "{d}"
        );
        assert!(lines[5].contains("smtp.rate"), "{d}");
    }

    #[test]
    fn issue_path_must_be_under_feeds_path() {
        let e = Config::parse(
            "[site]\ntitle = \"T\"\nbase_url = \"https://e.com\"\nissue_path = \"/a/{slug}.html\"\n[feeds]\npath = \"/b/\"\n",
            Path::new("t.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not under feeds.path"), "{e}");
    }

    #[test]
    fn max_age_hours_defaults_to_72_and_must_be_positive() {
        let base = "[site]\ntitle = \"T\"\nbase_url = \"https://e.com\"\n";
        let c = Config::parse(base, Path::new("t.toml")).unwrap();
        assert_eq!(c.smtp.max_age_hours, 72);
        let c = Config::parse(
            &format!("{base}[smtp]\nmax_age_hours = 1\n"),
            Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(c.smtp.max_age_hours, 1);
        for bad in ["0", "-5"] {
            let e = Config::parse(
                &format!("{base}[smtp]\nmax_age_hours = {bad}\n"),
                Path::new("t.toml"),
            )
            .unwrap_err()
            .to_string();
            assert!(
                e.starts_with("t.toml: error: smtp.max_age_hours is") && e.contains("at least 1"),
                "{e}"
            );
        }
    }

    #[test]
    fn timezones() {
        assert_eq!(
            "+08:00".parse::<Timezone>().unwrap(),
            Timezone::Fixed(FixedOffset::east_opt(8 * 3600).unwrap())
        );
        assert!(matches!(
            "Asia/Shanghai".parse::<Timezone>().unwrap(),
            Timezone::Named(_)
        ));
        assert!("Mars/Base".parse::<Timezone>().is_err());
    }
}
