//! Configuration: the TOML file, its defaults, and path resolution, resolved once into typed
//! values (mailboxes, the SMTP endpoint, compiled extra-feed globs) that commands read.
//!
//! Unknown keys are errors naming the key and its line. Relative paths in the file resolve
//! against the file's own folder. Values only some commands need (`[email]`, `[smtp]`,
//! `serve.public_url`) are checked here too, but their errors wait for those commands.

mod feeds;
mod located;
pub mod mail;
mod raw;
mod smtp;
mod timezone;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::diag::{Diagnostic, Diagnostics};
use crate::layout::Layout;

pub use feeds::{ExtraFeed, Feeds};
use mail::Checked;
pub use mail::{Email, Newsletter, DKIM_HEADERS};
use raw::RawConfig;
use raw::ServeConfig;
pub use raw::{
    Author, FeedContent, IssuesConfig, SiteConfig, SmtpConfig, StateConfig, TemplatesConfig,
};
pub use smtp::{is_loopback, Endpoint, Security};
pub use timezone::Timezone;

/// The default configuration file, relative to the current folder.
pub const DEFAULT_CONFIG: &str = "config/techshack.toml";

/// Above this, `serve.max_connections` is surely a typo: every connection is a file
/// descriptor, and the tokio semaphore behind the cap has a far higher ceiling.
pub const MAX_SERVE_CONNECTIONS: usize = 1_000_000;
/// A day: a longer header timeout would not protect anything.
pub const MAX_HEADER_TIMEOUT_SECS: u64 = 86_400;

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub site: SiteConfig,
    pub issues: IssuesConfig,
    pub templates: TemplatesConfig,
    pub components: BTreeMap<String, String>,
    pub feeds: Feeds,
    pub email: Email,
    /// The delivery settings as written; [`Config::smtp_endpoint`] is where to connect.
    pub smtp: SmtpConfig,
    /// `smtp.url`, `smtp.ca_file` and `smtp.username` parsed, or why they could not be.
    endpoint: Checked<Endpoint>,
    pub state: StateConfig,
    pub serve: Serve,
    /// The folder of the config file; relative paths were resolved against it.
    pub root: PathBuf,
}

/// `[serve]` with `public_url` checked.
#[derive(Debug, Clone)]
pub struct Serve {
    pub listen: String,
    /// Without a trailing slash; an error when not set, since `serve` cannot link without it.
    public_url: Checked<String>,
    /// Take the client's address from the last `X-Forwarded-For` entry (for the per-address
    /// limit on sign-ups); only behind a reverse proxy that sets that header.
    pub trust_forwarded_for: bool,
    /// A client must send a request's line and headers within this many seconds of starting
    /// it, or of the previous response on a kept-alive connection; otherwise it is closed.
    pub header_timeout_secs: u64,
    /// Connections served at once; further clients wait in the listen queue.
    pub max_connections: usize,
    /// Connections one client (its IPv4 address, or its IPv6 /64) may hold open at once, by
    /// the peer address: a connection beyond it is closed as soon as it is accepted.
    pub max_connections_per_client: usize,
    /// Confirmation mails per hour from all clients together: forged sources cannot turn the
    /// sign-up form into a mail cannon.
    pub confirm_mails_per_hour: u32,
}

impl Serve {
    /// `serve.public_url` without its trailing slash, or why it is not usable.
    pub fn public_url(&self) -> Result<&str> {
        mail::get(&self.public_url).map(String::as_str)
    }

    fn new(raw: ServeConfig) -> Serve {
        /// Behind a trusted proxy every connection comes from the proxy, so the default cap
        /// per client is then the whole `max_connections`: the proxy limits clients itself.
        fn per_client_cap(raw: &ServeConfig) -> usize {
            raw.max_connections_per_client
                .unwrap_or(if raw.trust_forwarded_for {
                    raw.max_connections
                } else {
                    16
                })
        }
        let cap = per_client_cap(&raw);
        Serve {
            public_url: mail::checked(public_url(raw.public_url.as_deref())),
            listen: raw.listen,
            trust_forwarded_for: raw.trust_forwarded_for,
            header_timeout_secs: raw.header_timeout_secs,
            max_connections: raw.max_connections,
            max_connections_per_client: cap,
            confirm_mails_per_hour: raw.confirm_mails_per_hour,
        }
    }
}

/// `serve.public_url`: set, absolute http(s), no query or fragment; without a trailing slash.
fn public_url(raw: Option<&str>) -> Result<String> {
    let Some(raw) = raw else {
        bail!("serve.public_url is not set: set it to where the reverse proxy exposes this server (for example https://example.com), so confirmation mails can link to it");
    };
    let u = url::Url::parse(raw)
        .with_context(|| format!("serve.public_url `{raw}` is not an absolute URL"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        bail!("serve.public_url `{raw}` must be an absolute http(s) URL");
    }
    if u.query().is_some() || u.fragment().is_some() {
        bail!("serve.public_url `{raw}` must not have a query or a fragment");
    }
    Ok(raw.trim_end_matches('/').to_string())
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
        let (raw, mut diagnostics) = raw::parse(text, path);
        let Some(mut raw) = raw else {
            return Err(Diagnostics(diagnostics).into());
        };
        let root = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let root = if root.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            root
        };
        resolve(&mut raw, &root);
        // Values are checked even when keys had problems, so one run reports them all; a
        // key with a problem holds its default or a stand-in, which passes these checks.
        let problems = validate(&mut raw);
        let entries = located::entries(text).unwrap_or_default();
        diagnostics.extend(problems.into_iter().map(|m| {
            // Each message starts with the key it is about (`feeds.limit must be ...`).
            let key: String = m
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']'))
                .collect();
            let pos = entries
                .iter()
                .find(|e| e.name == key)
                .map(|e| crate::diag::line_col(text, e.start));
            Diagnostic::error(path, pos, m)
        }));
        if !diagnostics.is_empty() {
            return Err(Diagnostics(diagnostics).into());
        }
        Ok(Config {
            email: Email::new(&raw.email, &raw.site.title),
            endpoint: mail::checked(Endpoint::parse(&raw.smtp)),
            site: raw.site,
            issues: raw.issues,
            templates: raw.templates,
            components: raw.components,
            feeds: Feeds::new(raw.feeds),
            smtp: raw.smtp,
            state: raw.state,
            serve: Serve::new(raw.serve),
            root,
        })
    }

    /// Replaces `site.base_url` (for `build --base-url`), checking it is absolute.
    pub fn set_base_url(&mut self, raw: &str) -> Result<()> {
        self.site.base_url = absolute_base_url(raw)?;
        Ok(())
    }

    /// Where every output and its URL go.
    pub fn layout(&self) -> Layout<'_> {
        Layout::new(
            &self.site.base_url,
            &self.site.issue_path,
            &self.feeds.path,
            self.site.id_prefix.as_deref(),
        )
    }

    /// Where to connect for mail, or why `[smtp]` does not say.
    pub fn smtp_endpoint(&self) -> Result<&Endpoint> {
        mail::get(&self.endpoint)
    }

    /// The absolute URL of a site path such as `/techshack.weekly/2019-01.html`.
    pub fn url(&self, site_path: &str) -> String {
        self.layout().url(site_path)
    }

    /// The site path of an issue's web page.
    pub fn issue_site_path(&self, slug: &str) -> String {
        self.layout().issue_site_path(slug)
    }

    /// The absolute URL of an issue's web page.
    pub fn issue_url(&self, slug: &str) -> String {
        self.layout().issue_url(slug)
    }

    /// The stable entry id of an issue without an `id` of its own.
    pub fn issue_id(&self, slug: &str) -> String {
        self.layout().issue_id(slug)
    }
}

/// `site.base_url` checked to be absolute http(s), without its trailing slash.
fn absolute_base_url(raw: &str) -> Result<String> {
    let u = url::Url::parse(raw)
        .with_context(|| format!("site.base_url `{raw}` is not an absolute URL"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        bail!("site.base_url `{raw}` must be an absolute http(s) URL");
    }
    Ok(raw.trim_end_matches('/').to_string())
}

fn resolve(raw: &mut RawConfig, root: &Path) {
    let r = |p: &mut PathBuf| {
        if p.is_relative() {
            *p = root.join(&*p);
        }
    };
    r(&mut raw.issues.dir);
    if let Some(p) = raw.issues.static_dir.as_mut() {
        r(p);
    }
    if let Some(p) = raw.templates.dir.as_mut() {
        r(p);
    }
    r(&mut raw.feeds.out);
    if let Some(d) = raw.email.dkim.as_mut() {
        r(&mut d.key_file);
    }
    if let Some(p) = raw.smtp.ca_file.as_mut() {
        r(p);
    }
    r(&mut raw.state.db);
}

/// Every problem of the values, one message each (all of them, not only the first).
fn validate(raw: &mut RawConfig) -> Vec<String> {
    let mut problems = Vec::new();
    match absolute_base_url(&raw.site.base_url) {
        Ok(u) => raw.site.base_url = u,
        Err(e) => problems.push(format!("{e:#}")),
    }
    if !raw.site.issue_path.starts_with('/') || !raw.site.issue_path.contains("{slug}") {
        problems.push(format!(
            "site.issue_path `{}` must start with `/` and contain `{{slug}}`",
            raw.site.issue_path
        ));
    }
    if !raw.feeds.path.starts_with('/') {
        problems.push(format!(
            "feeds.path `{}` must start with `/`",
            raw.feeds.path
        ));
    }
    if !raw.feeds.path.ends_with('/') {
        raw.feeds.path.push('/');
    }
    if !raw.site.issue_path.starts_with(&raw.feeds.path) {
        problems.push(format!(
            "site.issue_path `{}` is not under feeds.path `{}`: the pages could not be written under the feeds' folder",
            raw.site.issue_path,
            raw.feeds.path
        ));
    }
    if raw.feeds.limit == 0 {
        problems.push("feeds.limit must be at least 1".to_string());
    }
    if raw.site.title.trim().is_empty() {
        problems.push("site.title is empty".to_string());
    }
    let mut names = std::collections::BTreeSet::new();
    // Named by their place (`feeds.extra[1].match`), so each is told at its line.
    for (i, x) in raw.feeds.extra.iter().enumerate() {
        let ok = !x.name.is_empty()
            && x.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && !matches!(x.name.as_str(), "atom" | "rss" | "feed" | "items");
        if !ok {
            problems.push(format!("feeds.extra[{i}].name `{}` must be letters, digits, `-` or `_`, and not a built-in feed's name", x.name));
        }
        if !names.insert(x.name.clone()) {
            problems.push(format!(
                "feeds.extra[{i}].name `{}` appears twice: every extra feed needs a name of its own",
                x.name
            ));
        }
        if let Err(e) = globset::Glob::new(&x.pattern) {
            let why = e.kind().to_string();
            problems.push(format!(
                "feeds.extra[{i}].match `{}` (of the extra feed `{}`) is not a valid glob: {why}",
                x.pattern, x.name
            ));
        }
    }
    if raw.smtp.concurrency == 0 || raw.smtp.per_connection == 0 || raw.smtp.max_attempts == 0 {
        problems.push(
            "smtp.concurrency, smtp.per_connection and smtp.max_attempts must be at least 1"
                .to_string(),
        );
    }
    if raw.smtp.rate.is_nan() || raw.smtp.rate <= 0.0 {
        problems.push("smtp.rate must be a positive number of messages per second".to_string());
    }
    if raw.smtp.soft_bounces == 0 || raw.smtp.soft_bounce_days == 0 {
        problems.push(
            "smtp.soft_bounces and smtp.soft_bounce_days must be at least 1 (delays reported by mail within that many days that mark a subscriber bounced)".to_string(),
        );
    }
    if raw.smtp.stop_after_refusals == 0 {
        problems.push(
            "smtp.stop_after_refusals must be at least 1 (recipients in a row refused for a reason not theirs before a send stops)".to_string(),
        );
    }
    for (domain, d) in &raw.smtp.domains {
        if d.rate.is_nan() || d.rate <= 0.0 {
            problems.push(format!(
                "smtp.domains `{domain}`: rate must be a positive number of messages per second"
            ));
        }
    }
    if raw.smtp.max_age_hours <= 0 {
        problems.push(format!(
            "smtp.max_age_hours is {}: it must be at least 1 (hours after the first attempt that a deferred delivery is given up)",
            raw.smtp.max_age_hours
        ));
    }
    if !(1..=MAX_HEADER_TIMEOUT_SECS).contains(&raw.serve.header_timeout_secs) {
        problems.push(format!(
            "serve.header_timeout_secs must be between 1 and {MAX_HEADER_TIMEOUT_SECS} (seconds a client may take to send its request headers), not {}",
            raw.serve.header_timeout_secs
        ));
    }
    if raw.serve.confirm_mails_per_hour == 0 {
        problems.push(
            "serve.confirm_mails_per_hour must be at least 1 (confirmation mails sent per hour, from all clients together)".to_string(),
        );
    }
    if !(1..=MAX_SERVE_CONNECTIONS).contains(&raw.serve.max_connections) {
        problems.push(format!(
            "serve.max_connections must be between 1 and {MAX_SERVE_CONNECTIONS}, not {}",
            raw.serve.max_connections
        ));
    }
    if let Some(n) = raw.serve.max_connections_per_client {
        if !(1..=MAX_SERVE_CONNECTIONS).contains(&n) {
            problems.push(format!(
                "serve.max_connections_per_client must be between 1 and {MAX_SERVE_CONNECTIONS} (connections one IPv4 address or IPv6 /64 may hold open at once), not {n}"
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

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
        assert_eq!(c.serve.max_connections_per_client, 16);
    }

    #[test]
    fn serve_limits_must_be_positive() {
        let parse = |serve: &str| {
            Config::parse(
                &format!("[site]\ntitle = \"T\"\nbase_url = \"https://e.com\"\n[serve]\n{serve}\n"),
                Path::new("t.toml"),
            )
        };
        let proxied = parse("trust_forwarded_for = true\nmax_connections = 100").unwrap();
        assert_eq!(proxied.serve.max_connections_per_client, 100);
        let c =
            parse("header_timeout_secs = 3\nmax_connections = 7\nmax_connections_per_client = 2")
                .unwrap();
        assert_eq!(c.serve.header_timeout_secs, 3);
        assert_eq!(c.serve.max_connections, 7);
        assert_eq!(c.serve.max_connections_per_client, 2);
        for (bad, key) in [
            ("header_timeout_secs = 0", "serve.header_timeout_secs"),
            ("header_timeout_secs = 86401", "serve.header_timeout_secs"),
            ("max_connections = 0", "serve.max_connections"),
            ("max_connections = 1000001", "serve.max_connections"),
            (
                "max_connections_per_client = 0",
                "serve.max_connections_per_client",
            ),
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
                "t.toml:3:1: error: site.base_url `ftp://e.com` must be an absolute http(s) URL",
                "t.toml:5:1: error: feeds.limit must be at least 1",
                "t.toml:2:1: error: site.title is empty",
            ]
        );
        assert!(
            lines[3].starts_with("t.toml:7:1: error: feeds.extra[0].name `rss` must be"),
            "{d}"
        );
        assert!(
            lines[4].starts_with(
                "t.toml:8:1: error: feeds.extra[0].match `[` (of the extra feed `rss`) is not a valid glob: "
            ),
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
                e.starts_with("t.toml:5:1: error: smtp.max_age_hours is")
                    && e.contains("at least 1"),
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

    #[test]
    fn mail_settings_are_parsed_once_and_their_errors_wait_for_mail() {
        let base = "[site]\ntitle = \"The Shack!\"\nbase_url = \"https://e.com\"\n";
        let c = Config::parse(
            &format!("{base}[email]\nfrom = \"not an address\"\n[smtp]\nurl = \"smtp//oops\"\n"),
            Path::new("t.toml"),
        )
        .expect("a site that builds feeds loads whatever [email] says");
        let e = c.email.newsletter().unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "email.from `not an address` is not a valid mailbox: Invalid input"
        );
        assert_eq!(
            e.to_string(),
            "email.from `not an address` is not a valid mailbox"
        );
        let e = c.smtp_endpoint().unwrap_err();
        assert!(
            format!("{e:#}").starts_with("smtp.url `smtp//oops` is not a URL"),
            "{e:#}"
        );
        let c = Config::parse(
            &format!(
                "{base}[email]\nfrom = \"Shack <news@e.com>\"\nlist_id = \"news.e.com\"\n\
                 unsubscribe_url = \"https://e.com/u?t={{token}}\"\nunsubscribe_mailto = \"mailto:u@e.com\"\n\
                 [smtp]\nurl = \"smtps://mail.e.com\"\n"
            ),
            Path::new("t.toml"),
        )
        .unwrap();
        let n = c.email.newsletter().unwrap();
        assert_eq!(n.from.email.to_string(), "news@e.com");
        assert_eq!(n.list_id, Some("The Shack <news.e.com>"));
        assert_eq!(n.unsubscribe_mailto, Some("u@e.com"));
        let e = c.smtp_endpoint().unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.security),
            ("mail.e.com", 465, Security::Implicit)
        );
        // `serve` names itself when the sender is missing.
        let c = Config::parse(base, Path::new("t.toml")).unwrap();
        assert!(!c.email.is_mailed());
        let e = c.email.confirmation_sender().unwrap_err().to_string();
        assert!(e.contains("confirmation mails of `serve`"), "{e}");
        let e = c.email.newsletter().unwrap_err().to_string();
        assert!(e.starts_with("email.from is not set: add e.g."), "{e}");
        let e = c.serve.public_url().unwrap_err().to_string();
        assert!(e.starts_with("serve.public_url is not set"), "{e}");
    }
}
