//! `techshack preview` through the real binary: the .eml it writes, read back with MIME parsers.

use std::path::{Path, PathBuf};

use crate::support::*;
use techshack::commands::preview::{PREVIEW_SECRET, SAMPLE_ADDRESS};
use techshack::token::{verify, Purpose};

fn fixture_config() -> PathBuf {
    fixture("email").join("techshack.toml")
}

fn fixture_expect(secret: &[u8]) -> Expect<'_> {
    Expect {
        address: SAMPLE_ADDRESS,
        from: "news@fixture.example",
        domain: "fixture.example",
        list_id: "<weekly.fixture.example>",
        unsubscribe_prefix: "https://fixture.example/unsubscribe?token=",
        mailto: "unsubscribe@fixture.example",
        reply_to: "editor@fixture.example",
        secret,
    }
}

/// Runs preview with every output flag and returns (eml, html, text).
fn preview(config: &Path, issues: Option<&Path>, slug: &str) -> (Vec<u8>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (eml, html, text) = (
        dir.path().join("m.eml"),
        dir.path().join("m.html"),
        dir.path().join("m.txt"),
    );
    let mut cmd = techshack();
    cmd.env("TECHSHACK_SECRET", SECRET).arg("-c").arg(config);
    if let Some(i) = issues {
        cmd.arg("--issues").arg(i);
    }
    cmd.args(["preview", slug, "--eml"])
        .arg(&eml)
        .arg("--html")
        .arg(&html)
        .arg("--text")
        .arg(&text)
        .assert()
        .success();
    (std::fs::read(&eml).unwrap(), read(&html), read(&text))
}

#[test]
fn seed_issue_preview_is_a_complete_message() {
    let config = repo().join("config/techshack.toml");
    let (eml, html, text) = preview(&config, None, "2019-01");
    let (t, h) = check_message(&eml, &Expect::repo(SAMPLE_ADDRESS, SECRET.as_bytes()));
    assert_eq!(t.trim_end(), text.trim_end(), "--text is the text part");
    assert_eq!(h.trim_end(), html.trim_end(), "--html is the HTML part");
    assert!(text.contains("Kubernetes In a Nutshell\n------------------------\n"));
    assert!(text.contains("[1] https://enqueuezero.com/kubernetes-in-a-nutshell.html"));
    for l in text.lines() {
        assert!(
            l.starts_with("    ")
                || l.starts_with('[')
                || unicode_width::UnicodeWidthStr::width(l) <= 72
                || !l.trim().contains(' '),
            "prose wider than 72 columns: {l}"
        );
    }
    assert!(
        html.contains("id=\"kubernetes-in-a-nutshell\""),
        "item anchors"
    );
    assert!(html.contains("In this issue"), "the list of items");
    // Hidden preheader: the first item's title (the issue has no description).
    let pre = html.find("display: none").expect("preheader");
    assert!(html[pre..pre + 400].contains("Kubernetes In a Nutshell"));
    let raw = String::from_utf8(eml).unwrap();
    assert!(
        raw.contains("\r\nDate: Mon, 31 Dec 2018 09:00:00 +0000\r\n"),
        "the issue's date"
    );
    assert!(raw.contains("Subject: EnqueueZero Techshack 2019-01\r\n"));
}

#[test]
fn preview_without_flags_prints_the_same_eml_every_time() {
    let config = repo().join("config/techshack.toml");
    let run = || {
        techshack()
            .env("TECHSHACK_SECRET", SECRET)
            .arg("-c")
            .arg(&config)
            .args(["preview", "2019-01"])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone()
    };
    let a = run();
    assert!(a == run(), "two previews differ");
    let (eml, _, _) = preview(&config, None, "2019-01");
    assert!(a == eml, "stdout and --eml differ");
}

#[test]
fn without_secret_preview_signs_with_the_preview_secret_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let eml = dir.path().join("m.eml");
    let out = techshack()
        .env_remove("TECHSHACK_SECRET")
        .arg("-c")
        .arg(fixture_config())
        .args(["preview", "2024-01-15-cjk", "--eml"])
        .arg(&eml)
        .assert()
        .success()
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("$TECHSHACK_SECRET is not set"), "{err}");
    let raw = std::fs::read(&eml).unwrap();
    check_message(&raw, &fixture_expect(PREVIEW_SECRET));
    let text = String::from_utf8_lossy(&raw).to_string();
    let t = text.split("token=").nth(1).unwrap();
    let token: String = t.chars().take_while(|c| *c != '>').collect();
    assert!(verify(SECRET.as_bytes(), Purpose::Unsubscribe, &token).is_none());
}

#[test]
fn short_secret_is_an_error() {
    techshack()
        .env("TECHSHACK_SECRET", "short")
        .arg("-c")
        .arg(fixture_config())
        .args(["preview", "2024-01-15-cjk"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("shorter than 16 bytes"));
}

#[test]
fn unknown_issue_is_an_error_naming_it() {
    techshack()
        .env("TECHSHACK_SECRET", SECRET)
        .arg("-c")
        .arg(fixture_config())
        .args(["preview", "1999-01"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains("no issue `1999-01`"));
}

#[test]
fn title_with_crlf_from_yaml_escapes_is_one_subject_and_no_bcc() {
    let (eml, _, _) = preview(&fixture_config(), None, "2024-01-01-crlf");
    check_message(&eml, &fixture_expect(SECRET.as_bytes()));
    let raw = String::from_utf8(eml.clone()).unwrap();
    let head = &raw[..raw.find("\r\n\r\n").unwrap()];
    let subjects: Vec<_> = head
        .split("\r\n")
        .filter(|l| l.to_ascii_lowercase().starts_with("subject:"))
        .collect();
    assert_eq!(subjects, ["Subject: Hello Bcc: victim@example.com"]);
    assert!(!head.to_ascii_lowercase().contains("\r\nbcc:"));
    let msg = mail_parser::MessageParser::default().parse(&eml).unwrap();
    assert!(msg.bcc().is_none());
    assert_eq!(msg.subject(), Some("Hello Bcc: victim@example.com"));
}

#[test]
fn hostile_issue_has_no_active_content_and_only_absolute_urls() {
    let (eml, html, text) = preview(&fixture_config(), None, "2024-01-08-hostile");
    check_message(&eml, &fixture_expect(SECRET.as_bytes()));
    check_html(&html);
    let lower = html.to_ascii_lowercase();
    // SPEC: dangerous elements go, their text stays as text; handlers and their code go.
    assert!(!lower.contains("<script") && !lower.contains("steal()"));
    assert!(html.contains("https://fixture.example/weekly/images/pic.png"));
    assert!(html.contains("https://fixture.example/static/img.png"));
    assert!(
        html.contains("<title>Hostile &lt;script&gt;alert(1)&lt;/script&gt; &amp; ]]&gt; issue")
    );
    // The description is the preheader, as plain text.
    assert!(html.contains("What markup in a description becomes"));
    assert!(text.contains("What markup in a description becomes"));
    assert!(text.contains("[2] https://fixture.example/mirror/a"));
    assert!(!text.contains("alert(1)") || text.contains("Hostile <script>alert(1)</script>"));
}

#[test]
fn cjk_issue_text_wraps_by_width_without_splitting_characters() {
    let (eml, html, text) = preview(&fixture_config(), None, "2024-01-15-cjk");
    check_message(&eml, &fixture_expect(SECRET.as_bytes()));
    assert!(html.contains("<html lang=\"zh\">"));
    for l in text.lines() {
        assert!(
            unicode_width::UnicodeWidthStr::width(l) <= 72
                || l.starts_with('[')
                || !l.contains(' ') && l.is_ascii(),
            "line wider than 72 columns: {l}"
        );
    }
    assert!(text.contains("Kubernetes 是一个用于自动部署"));
    let msg = mail_parser::MessageParser::default().parse(&eml).unwrap();
    assert_eq!(msg.subject(), Some("容器编排周刊 第一期"));
}

/// The shipped configuration for This Week in Rust, complete as it is: [email], [smtp] and
/// [serve] included, nothing added by the test.
fn twir_config() -> PathBuf {
    repo().join("examples/twir/techshack.toml")
}

fn twir_expect(secret: &[u8]) -> Expect<'_> {
    Expect {
        address: SAMPLE_ADDRESS,
        from: "twir@this-week-in-rust.org",
        domain: "this-week-in-rust.org",
        list_id: "<twir.this-week-in-rust.org>",
        unsubscribe_prefix: "https://this-week-in-rust.org/unsubscribe?token=",
        mailto: "unsubscribe@this-week-in-rust.org",
        reply_to: "editors@this-week-in-rust.org",
        secret,
    }
}

/// The example configuration previews a This Week in Rust issue on its own: `check` is clean and
/// the message is complete (From, List-Id, unsubscribe headers and token, Reply-To).
#[test]
fn twir_example_config_previews_a_fixture_issue() {
    let issues = fixture("twir");
    let out = techshack()
        .arg("-c")
        .arg(twir_config())
        .arg("--issues")
        .arg(&issues)
        .arg("check")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "checked 1 issue: 0 errors, 0 warnings\n"
    );
    let (eml, html, text) = preview(
        &twir_config(),
        Some(&issues),
        "2026-11-24-this-week-in-rust",
    );
    let (t, _) = check_message(&eml, &twir_expect(SECRET.as_bytes()));
    assert_eq!(t.trim_end(), text.trim_end());
    check_html(&html);
    assert!(
        text.contains("A test that cannot fail tells you nothing."),
        "{text}"
    );
    let msg = mail_parser::MessageParser::default().parse(&eml).unwrap();
    assert_eq!(msg.subject(), Some("This Week in Rust 600"));
}

/// The two This Week in Rust issues with a source line over 998 bytes.
pub const TWIR_LONG_LINES: [&str; 2] = [
    "2014-01-12-the-state-of-rust-0-dot-9",
    "2015-10-26-this-week-in-rust",
];

#[test]
#[ignore = "reads $TECHSHACK_CORPORA"]
fn twir_issues_with_lines_over_998_bytes_make_valid_messages() {
    let twir = corpora().join("twir");
    let cfg = twir_config();
    for slug in TWIR_LONG_LINES {
        let src = std::fs::read(
            std::fs::read_dir(&twir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.file_stem().and_then(|s| s.to_str()) == Some(slug))
                .unwrap_or_else(|| panic!("{slug} is in the corpus")),
        )
        .unwrap();
        assert!(
            !long_lines(&src).is_empty(),
            "{slug} has a line over 998 bytes in its source"
        );
        let (eml, html, text) = preview(&cfg, Some(&twir), slug);
        let (t, _) = check_message(&eml, &twir_expect(SECRET.as_bytes()));
        assert_eq!(t.trim_end(), text.trim_end());
        check_html(&html);
        assert!(
            !html.to_ascii_lowercase().contains("gviz"),
            "{slug}: script content removed"
        );
    }
}

#[test]
fn a_template_in_the_templates_dir_replaces_the_built_in_one() {
    let dir = tempfile::tempdir().unwrap();
    let tpl = dir.path().join("templates");
    std::fs::create_dir(&tpl).unwrap();
    std::fs::write(
        tpl.join("email.txt"),
        "{% if recipient.name %}Dear {{ recipient.name }},{% else %}Hello,{% endif %}\n\n{{ issue.text }}\nLeave: {{ recipient.unsubscribe_url }}\n",
    )
    .unwrap();
    let cfg = read(&fixture_config())
        .replace(
            "dir = \"issues\"",
            &format!("dir = {:?}", repo().join("tests/fixtures/email/issues")),
        )
        .replace("[templates]", &format!("[templates]\ndir = {:?}", tpl));
    let cfg_path = dir.path().join("t.toml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let (eml, html, text) = preview(&cfg_path, None, "2024-01-15-cjk");
    check_message(&eml, &fixture_expect(SECRET.as_bytes()));
    assert!(text.starts_with("Dear Sample Subscriber,\n\n"), "{text}");
    assert!(text.contains("\nLeave: https://fixture.example/unsubscribe?token="));
    assert!(html.contains("View in browser"), "the HTML stays built in");
}
