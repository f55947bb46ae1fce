//! What the integration tests share: `TestSite` (a site in a temporary folder and the
//! binary run on it), the repository's fixtures and corpora, and the checks of a message.

use std::path::{Path, PathBuf};
use std::process::Command;

use techshack::config::Config;
use techshack::model::Issue;
use techshack::store::{Location, Store};

pub mod pg;
pub mod postfix;
pub mod serve;
pub mod smtp;

/// `$TECHSHACK_SECRET` of every test run, and the key its tokens are checked with.
pub const SECRET: &str = "0123456789abcdef0123456789abcdef";

/// The repository's own folder.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/fixtures/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures").join(name)
}

/// `$TECHSHACK_CORPORA`, failing loudly when unset (corpus tests must not pass silently).
pub fn corpora() -> PathBuf {
    let v = std::env::var_os("TECHSHACK_CORPORA").expect(
        "TECHSHACK_CORPORA is not set: corpus tests need it (TECHSHACK_CORPORA=../shared/corpora)",
    );
    let p = PathBuf::from(v);
    assert!(
        p.is_dir(),
        "TECHSHACK_CORPORA={} is not a folder",
        p.display()
    );
    for corpus in ["techshack", "twir"] {
        assert!(p.join(corpus).is_dir(), "{} has no {corpus}/", p.display());
    }
    p
}

/// The venv's Python: the tests fail, never skip, when `scripts/setup-test-deps` was not run.
pub fn python() -> PathBuf {
    let p = repo().join("target/test-venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup-test-deps to install the Python test helpers (aiosmtpd, dkimpy)",
        p.display()
    );
    p
}

/// The default configuration of the repository.
pub fn repo_config() -> Config {
    Config::load(&repo().join("config/techshack.toml")).expect("config/techshack.toml loads")
}

/// An issue from Markdown through the real parser, as if `<slug>.md` held `md` under a front
/// matter with `title` and a fixed date. Fails the test on any error diagnostic.
pub fn issue_from_markdown(config: &Config, slug: &str, title: &str, md: &str) -> Issue {
    // A JSON string is a YAML double-quoted scalar: any title survives as written.
    let title = serde_json::to_string(title).expect("a JSON string");
    let text = format!("---\ntitle: {title}\ndate: \"2018-12-31T09:00:00+00:00\"\n---\n\n{md}");
    let path = PathBuf::from(format!("{slug}.md"));
    let (issue, diags) = techshack::issue::parse_issue(config, &path, text.as_bytes());
    let errors: Vec<String> = diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.to_string())
        .collect();
    assert!(errors.is_empty(), "{slug}.md does not parse: {errors:?}");
    issue.unwrap_or_else(|| panic!("{slug}.md makes no issue"))
}

/// A loopback port free at the time of asking, for a server the test starts on it.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The built binary, with nothing of the environment changed.
pub fn techshack() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("techshack").expect("the techshack binary is built")
}

/// A site in a temporary folder, written file by file, and the binary run in it with a known
/// environment, so each test states only what it is about.
pub struct TestSite {
    pub dir: tempfile::TempDir,
    /// The configuration file `cmd` names in `$TECHSHACK_CONFIG`.
    pub config: PathBuf,
    /// The PostgreSQL database of this site's state, when the tests run on PostgreSQL
    /// ([`STATE_ENV`]); `None`: the SQLite file [`TestSite::db`].
    pub state_url: Option<String>,
}

/// `TECHSHACK_TEST_STATE=postgres` runs every test site's state on a fresh database of the
/// tests' PostgreSQL cluster instead of its SQLite file.
pub const STATE_ENV: &str = "TECHSHACK_TEST_STATE";

/// Whether this test run keeps the sites' state in PostgreSQL.
pub fn on_postgres() -> bool {
    match std::env::var(STATE_ENV).as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Ok("") | Err(_) => false,
        Ok(other) => panic!("{STATE_ENV}={other}: use postgres or sqlite"),
    }
}

impl TestSite {
    /// An empty folder; the configuration goes to `techshack.toml` there.
    pub fn new() -> TestSite {
        TestSite::in_dir(tempfile::tempdir().expect("a temporary folder"))
    }

    /// The same in a folder the caller made.
    pub fn in_dir(dir: tempfile::TempDir) -> TestSite {
        let config = dir.path().join("techshack.toml");
        let state_url = on_postgres().then(pg::database_url);
        TestSite {
            dir,
            config,
            state_url,
        }
    }

    /// Writes the configuration file.
    pub fn config(self, text: &str) -> TestSite {
        write(&self.config, text.as_bytes());
        self
    }

    /// Writes the configuration under another name, which `cmd` names from then on.
    pub fn config_as(mut self, name: &str, text: &str) -> TestSite {
        self.config = self.path(name);
        self.config(text)
    }

    /// Writes `issues/<name>`.
    pub fn issue(self, name: &str, text: impl AsRef<[u8]>) -> TestSite {
        self.file(&format!("issues/{name}"), text)
    }

    /// Writes `templates/<name>`.
    pub fn template(self, name: &str, text: impl AsRef<[u8]>) -> TestSite {
        self.file(&format!("templates/{name}"), text)
    }

    /// Writes any file under the site's folder, making its folders.
    pub fn file(self, rel: &str, bytes: impl AsRef<[u8]>) -> TestSite {
        write(&self.path(rel), bytes.as_ref());
        self
    }

    /// Makes an empty folder under the site's folder.
    pub fn folder(self, rel: &str) -> TestSite {
        std::fs::create_dir_all(self.path(rel)).expect("making a folder");
        self
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The state file every test configuration names (unused while the state is in
    /// PostgreSQL).
    pub fn db(&self) -> PathBuf {
        self.path("state/techshack.sqlite3")
    }

    /// Where this site's state is.
    pub fn location(&self) -> Location {
        match &self.state_url {
            Some(url) => Location::Postgres(url.clone()),
            None => Location::File(self.db()),
        }
    }

    /// The site's state, opened as the commands open it.
    pub fn store(&self) -> Store {
        Store::open_at(&self.location()).expect("opening the state")
    }

    /// Runs one statement on the site's state, whichever backend holds it; `?1`… take
    /// `params` as text.
    pub fn sql(&self, sql: &str, params: &[&str]) -> usize {
        self.store()
            .execute_for_tests(sql, params)
            .unwrap_or_else(|e| panic!("{sql}: {e:#}"))
    }

    /// The rows of one query on the site's state, every cell as text.
    pub fn rows(&self, sql: &str, params: &[&str]) -> Vec<Vec<Option<String>>> {
        self.store()
            .query_for_tests(sql, params)
            .unwrap_or_else(|e| panic!("{sql}: {e:#}"))
    }

    /// The one integer a query returns.
    pub fn int(&self, sql: &str, params: &[&str]) -> i64 {
        let rows = self.rows(sql, params);
        rows.first()
            .and_then(|r| r.first().cloned().flatten())
            .unwrap_or_else(|| panic!("{sql}: no value"))
            .parse()
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The site with its state in the SQLite file whatever the run's backend: for tests of
    /// the file itself.
    pub fn on_sqlite(mut self) -> TestSite {
        self.state_url = None;
        self
    }

    /// The binary in the site's folder, with its configuration and the secret set and no SMTP
    /// password or log filter inherited from the caller.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(assert_cmd::cargo::cargo_bin("techshack"));
        c.current_dir(self.dir.path())
            .env("TECHSHACK_CONFIG", &self.config)
            .env("TECHSHACK_SECRET", SECRET)
            .env_remove("TECHSHACK_SMTP_PASSWORD")
            .env_remove("RUST_LOG");
        match &self.state_url {
            Some(url) => c.env("TECHSHACK_STATE_URL", url),
            None => c.env_remove("TECHSHACK_STATE_URL"),
        };
        c
    }

    pub fn assert_cmd(&self) -> assert_cmd::Command {
        assert_cmd::Command::from_std(self.cmd())
    }
}

/// Runs `c` with `stdin` as its standard input; its exit status and both outputs.
pub fn output_with_stdin(mut c: Command, stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the command");
    child
        .stdin
        .take()
        .expect("a piped stdin")
        .write_all(stdin)
        .expect("writing its standard input");
    child.wait_with_output().expect("waiting for the command")
}

fn write(path: &Path, bytes: &[u8]) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("making {}: {e}", dir.display()));
    }
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// A folder for artifacts kept after the tests (screenshots), under `target/`.
pub fn artifacts() -> PathBuf {
    let p = repo().join("target/artifacts");
    std::fs::create_dir_all(&p).expect("create target/artifacts");
    p
}

/// Every raw line of a message longer than 998 bytes (without its CRLF).
pub fn long_lines(raw: &[u8]) -> Vec<usize> {
    raw.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l).len())
        .filter(|&n| n > 998)
        .collect()
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// What a parsed message must look like, whatever issue it carries.
pub struct Expect<'a> {
    pub address: &'a str,
    pub from: &'a str,
    pub domain: &'a str,
    pub list_id: &'a str,
    pub unsubscribe_prefix: &'a str,
    pub mailto: &'a str,
    pub reply_to: &'a str,
    pub secret: &'a [u8],
}

impl<'a> Expect<'a> {
    /// The repository's configuration and a recipient.
    pub fn repo(address: &'a str, secret: &'a [u8]) -> Expect<'a> {
        Expect {
            address,
            from: "techshack@enqueuezero.com",
            domain: "enqueuezero.com",
            list_id: "<techshack.enqueuezero.com>",
            unsubscribe_prefix: "https://enqueuezero.com/unsubscribe?token=",
            mailto: "unsubscribe@enqueuezero.com",
            reply_to: "hello@enqueuezero.com",
            secret,
        }
    }
}

/// Parses a message with mail-parser and checks every property SPEC "Email" asks of it.
/// Returns the decoded text and HTML parts.
pub fn check_message(raw: &[u8], want: &Expect<'_>) -> (String, String) {
    use mail_parser::{HeaderValue, MessageParser, MimeHeaders};
    use techshack::token::{verify, Purpose};

    assert_eq!(long_lines(raw), Vec::<usize>::new(), "lines over 998 bytes");
    assert!(
        raw.is_ascii(),
        "8-bit bytes on the wire: the body must be encoded"
    );
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block ending in CRLF CRLF");
    let head = std::str::from_utf8(&raw[..head_end]).unwrap();
    assert!(
        !head.replace("\r\n", "").contains('\n') && !head.replace("\r\n", "").contains('\r'),
        "bare CR or LF in the header block"
    );
    let msg = MessageParser::default()
        .parse(raw)
        .expect("mail-parser reads the message");
    assert_eq!(
        msg.header_raw("Content-Transfer-Encoding").map(str::trim),
        Some("7bit"),
        "a multipart message is 7bit at the top"
    );

    // One of each header, and no header we did not set.
    let mut names: Vec<String> = msg
        .headers()
        .iter()
        .map(|h| h.name().to_ascii_lowercase())
        .collect();
    names.sort();
    let mut expected: Vec<String> = [
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "reply-to",
        "list-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "feedback-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if names.iter().any(|n| n == "dkim-signature") {
        expected.push("dkim-signature".into());
    }
    expected.sort();
    assert_eq!(names, expected, "the header set");

    let from = msg.from().and_then(|a| a.first()).expect("From");
    assert_eq!(from.address(), Some(want.from));
    let to = msg.to().and_then(|a| a.first()).expect("To");
    assert_eq!(to.address(), Some(want.address));
    let reply = msg.reply_to().and_then(|a| a.first()).expect("Reply-To");
    assert_eq!(reply.address(), Some(want.reply_to));
    assert!(msg.date().is_some(), "Date parses");
    let mid = msg.message_id().expect("Message-ID");
    assert!(
        mid.ends_with(&format!("@{}", want.domain)),
        "Message-ID {mid} is of the From domain"
    );
    assert_eq!(
        msg.header_raw("MIME-Version").map(str::trim),
        Some("1.0"),
        "MIME-Version"
    );
    let list_id = msg.header_raw("List-Id").expect("List-Id");
    assert!(list_id.trim().ends_with(want.list_id), "List-Id {list_id}");
    assert_eq!(
        msg.header_raw("List-Unsubscribe-Post").map(str::trim),
        Some("List-Unsubscribe=One-Click")
    );
    let lu = msg
        .header_raw("List-Unsubscribe")
        .expect("List-Unsubscribe");
    let lu: String = lu.split_whitespace().collect();
    let mut urls = lu.split(',').map(|u| {
        u.trim()
            .strip_prefix('<')
            .and_then(|u| u.strip_suffix('>'))
            .unwrap_or_else(|| panic!("List-Unsubscribe entry {u} not in <>"))
            .to_string()
    });
    let https = urls.next().expect("an https URL first");
    let mailto = urls.next().expect("then a mailto");
    assert!(https.starts_with(want.unsubscribe_prefix), "{https}");
    assert!(
        mailto.starts_with(&format!("mailto:{}", want.mailto)),
        "{mailto}"
    );
    let token = &https[want.unsubscribe_prefix.len()..];
    assert_eq!(
        verify(want.secret, Purpose::Unsubscribe, token).as_deref(),
        Some(want.address),
        "the token verifies for its address"
    );
    assert_eq!(
        verify(want.secret, Purpose::Confirm { expires: 0 }, token),
        None,
        "and not for another purpose"
    );
    assert_ne!(
        verify(want.secret, Purpose::Unsubscribe, token).as_deref(),
        Some("someone.else@example.com")
    );
    assert!(verify(
        b"another secret of at least 16 bytes",
        Purpose::Unsubscribe,
        token
    )
    .is_none());

    // multipart/alternative: text first, then HTML, both UTF-8.
    let root = msg.root_part();
    let ct = root.content_type().expect("Content-Type");
    assert_eq!(
        (ct.ctype(), ct.subtype()),
        ("multipart", Some("alternative"))
    );
    let kids = match &root.body {
        mail_parser::PartType::Multipart(k) => k.clone(),
        other => panic!("root is not multipart: {other:?}"),
    };
    assert_eq!(kids.len(), 2, "two alternatives");
    let part = |i: usize| msg.part(kids[i]).expect("part");
    for (i, sub) in [(0, "plain"), (1, "html")] {
        let ct = part(i).content_type().expect("part Content-Type");
        assert_eq!((ct.ctype(), ct.subtype()), ("text", Some(sub)));
        assert_eq!(
            ct.attribute("charset").map(|c| c.to_ascii_lowercase()),
            Some("utf-8".into())
        );
        let cte = part(i)
            .headers
            .iter()
            .find(|h| h.name().eq_ignore_ascii_case("Content-Transfer-Encoding"))
            .map(|h| match h.value() {
                HeaderValue::Text(t) => t.to_string(),
                v => format!("{v:?}"),
            });
        assert!(
            matches!(
                cte.as_deref().map(str::trim),
                Some("7bit" | "quoted-printable" | "base64")
            ),
            "Content-Transfer-Encoding {cte:?}"
        );
    }
    let text = part(0)
        .text_contents()
        .expect("text part")
        .replace("\r\n", "\n");
    let html = part(1)
        .text_contents()
        .expect("html part")
        .replace("\r\n", "\n");
    assert!(
        text.contains(&https),
        "the text part has the unsubscribe link"
    );
    check_html(&html);
    assert!(
        html.contains(&format!("href=\"{}\"", https.replace('&', "&amp;"))),
        "the HTML has the unsubscribe link"
    );
    (text, html)
}

/// Every URL absolute, no active content, no styling left to a `<style>` block but `@media`.
pub fn check_html(html: &str) {
    let lower = html.to_ascii_lowercase();
    for tag in [
        "<script", "<iframe", "<object", "<embed", "<form", "<applet", "<link ",
    ] {
        assert!(!lower.contains(tag), "active content: {tag}");
    }
    assert!(!lower.contains("javascript:"), "javascript: URL");
    for (i, _) in lower.match_indices(" on") {
        let rest = &lower[i + 3..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        let after = &rest[name.len()..];
        assert!(
            !(name.len() > 2 && after.starts_with('=') && is_in_tag(&lower, i)),
            "event handler attribute on{name}"
        );
    }
    for attr in [
        " href=\"",
        " src=\"",
        " poster=\"",
        " background=\"",
        " action=\"",
    ] {
        for (i, _) in html.match_indices(attr) {
            let v = &html[i + attr.len()..];
            let v = &v[..v.find('"').expect("closed attribute")];
            assert!(
                v.starts_with("https://") || v.starts_with("http://") || v.starts_with("mailto:"),
                "relative or odd URL in{attr}{v}\""
            );
        }
    }
    for (i, _) in html.match_indices(" srcset=\"") {
        let v = &html[i + 9..];
        let v = &v[..v.find('"').expect("closed attribute")];
        for cand in v.split(',') {
            let u = cand.split_whitespace().next().unwrap_or("");
            assert!(
                u.starts_with("https://") || u.starts_with("http://"),
                "srcset {u}"
            );
        }
    }
    // What remains in <style> blocks: only @media rules.
    let mut rest = lower.as_str();
    let mut blocks = 0;
    while let Some(i) = rest.find("<style") {
        let body_start = i + rest[i..].find('>').expect("style tag closes") + 1;
        let end = body_start + rest[body_start..].find("</style>").expect("</style>");
        let css = &rest[body_start..end];
        assert_eq!(
            strip_media(css).trim(),
            "",
            "non-@media CSS left in <style>: {css}"
        );
        blocks += 1;
        rest = &rest[end..];
    }
    assert!(blocks <= 1, "one @media block at most");
    assert!(lower.contains("<body style=\""), "body styles are inlined");
}

fn is_in_tag(s: &str, i: usize) -> bool {
    let lt = s[..i].rfind('<');
    let gt = s[..i].rfind('>');
    match (lt, gt) {
        (Some(l), Some(g)) => l > g,
        (Some(_), None) => true,
        _ => false,
    }
}

/// CSS with every `@media ... { ... }` block removed.
pub fn strip_media(css: &str) -> String {
    let mut out = String::new();
    let mut rest = css;
    while let Some(i) = rest.find("@media") {
        out.push_str(&rest[..i]);
        let open = i + rest[i..].find('{').expect("@media has a block");
        let mut depth = 0;
        let mut end = rest.len();
        for (j, c) in rest[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + j + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}
