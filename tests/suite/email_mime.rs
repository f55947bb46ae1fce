//! The composed message, read back with real MIME parsers (mail-parser and Python's `email`).

use std::process::Command;

use crate::support::*;
use techshack::mail::compose::{Composer, Recipient};

fn seed_issue(config: &techshack::config::Config) -> techshack::model::Issue {
    let md = read(&repo().join("issues/2019-01.md"));
    let body = md.splitn(3, "---\n").nth(2).expect("front matter");
    let body = body
        .replace("<TechshackHeader />", "")
        .replace("# EnqueueZero Techshack 2019-01\n", "")
        .replace("](/static/", "](https://enqueuezero.com/static/");
    issue_from_markdown(config, "2019-01", "EnqueueZero Techshack 2019-01", &body)
}

/// The repository's config with `[email.dkim]` signing with the key at `key_file`.
fn config_with_dkim(key_file: &std::path::Path) -> techshack::config::Config {
    let path = repo().join("config/techshack.toml");
    let text = format!(
        "{}\n[email.dkim]\ndomain = \"enqueuezero.com\"\nselector = \"mail\"\nkey_file = {:?}\n",
        read(&path),
        key_file
    );
    techshack::config::Config::parse(&text, &path).expect("config with DKIM")
}

fn reader() -> Recipient {
    Recipient {
        address: "reader@example.org".parse().unwrap(),
        name: Some("Ada Lovelace".into()),
    }
}

#[test]
fn seed_issue_message_has_every_header_part_and_valid_token() {
    let c = repo_config();
    let issue = seed_issue(&c);
    let comp = Composer::new(&c, &issue, SECRET.as_bytes()).unwrap();
    let raw = comp.message_bytes(&reader()).unwrap();
    let (text, html) = check_message(&raw, &Expect::repo("reader@example.org", SECRET.as_bytes()));
    // The parts decode to exactly what the composer renders for this reader.
    assert_eq!(text.trim_end(), comp.text(&reader()).trim_end());
    assert_eq!(html.trim_end(), comp.html(&reader()).trim_end());
    assert!(text.contains("Kubernetes In a Nutshell\n------------------------"));
    assert!(text
        .contains("View in your browser:\nhttps://enqueuezero.com/techshack.weekly/2019-01.html"));
    assert!(html.contains("View in browser</a>"));
    assert!(html.contains("href=\"https://enqueuezero.com/techshack.weekly/2019-01.html\""));
    assert!(
        html.contains("@media (prefers-color-scheme: dark)"),
        "dark mode kept"
    );
    assert!(
        html.contains("@media (max-width: 480px)"),
        "narrow screens kept"
    );
    // Outlook on Windows ignores max-width: a fixed-width table only it reads holds the column.
    let open = html
        .find("<!--[if mso]><table role=\"presentation\" width=\"680\"")
        .expect("Outlook column opens");
    let close = html
        .find("<!--[if mso]></td></tr></table><![endif]-->")
        .expect("Outlook column closes");
    // The preheader before the column may quote the first item too: look inside it.
    let body = open
        + html[open..]
            .find("Kubernetes In a Nutshell")
            .expect("first item");
    assert!(body < close, "the column wraps the content");
}

#[test]
fn python_email_package_reads_the_same_structure() {
    let c = repo_config();
    let comp = Composer::new(&c, &seed_issue(&c), SECRET.as_bytes()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let eml = dir.path().join("m.eml");
    std::fs::write(&eml, comp.message_bytes(&reader()).unwrap()).unwrap();
    let v = python_check(&eml);
    assert_eq!(v["type"], "multipart/alternative");
    assert_eq!(
        v["defects"].as_array().unwrap().len(),
        0,
        "{:?}",
        v["defects"]
    );
    let parts = v["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0]["type"], "text/plain");
    assert_eq!(parts[1]["type"], "text/html");
    assert_eq!(parts[0]["charset"], "utf-8");
    assert_eq!(parts[1]["charset"], "utf-8");
    assert_eq!(v["subject"].as_array().unwrap().len(), 1);
    assert_eq!(v["to"][0], "Ada Lovelace <reader@example.org>");
    assert!(parts[0]["content"]
        .as_str()
        .unwrap()
        .contains("“tombstone.”"));
}

pub fn python_check(eml: &std::path::Path) -> serde_json::Value {
    let out = Command::new(python())
        .arg(repo().join("tests/fixtures/email/check_eml.py"))
        .arg(eml)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json from check_eml.py")
}

#[test]
fn crlf_in_title_and_name_never_makes_a_header() {
    let c = repo_config();
    let mut issue = seed_issue(&c);
    issue.title = "Hello\r\nBcc: victim@example.com".into();
    let comp = Composer::new(&c, &issue, SECRET.as_bytes()).unwrap();
    let r = Recipient {
        address: "reader@example.org".parse().unwrap(),
        name: Some("Eve\r\nBcc: other@example.com\r\n\r\n<b>x</b>".into()),
    };
    let raw = comp.message_bytes(&r).unwrap();
    check_message(&raw, &Expect::repo("reader@example.org", SECRET.as_bytes()));
    let dir = tempfile::tempdir().unwrap();
    let eml = dir.path().join("m.eml");
    std::fs::write(&eml, &raw).unwrap();
    let v = python_check(&eml);
    assert_eq!(v["subject"].as_array().unwrap().len(), 1);
    assert_eq!(v["subject"][0], "Hello Bcc: victim@example.com");
    assert_eq!(v["bcc"].as_array().unwrap().len(), 0);
    let html = v["parts"][1]["content"].as_str().unwrap();
    assert!(!html.contains("<b>x</b>"));
}

#[test]
fn lines_over_998_bytes_are_encoded() {
    let c = repo_config();
    let long_para = "word ".repeat(400) + &"x".repeat(1500);
    let long_code = format!("```\n{}\n```\n", "y".repeat(3000));
    let md = format!(
        "Intro [link](https://example.com/{})\n\n{long_para}\n\n{long_code}\n\n日本語の長い行。{}",
        "z".repeat(1200),
        "漢字".repeat(600)
    );
    let issue = issue_from_markdown(&c, "long", "Long lines", &md);
    let comp = Composer::new(&c, &issue, SECRET.as_bytes()).unwrap();
    let raw = comp.message_bytes(&reader()).unwrap();
    let (text, html) = check_message(&raw, &Expect::repo("reader@example.org", SECRET.as_bytes()));
    assert!(
        text.contains(&"y".repeat(3000)),
        "the code line survives whole"
    );
    assert!(html.contains(&"x".repeat(1500)));
    assert!(text.contains(&"漢字".repeat(30)[..60]));
}

#[test]
fn preview_date_makes_identical_bytes_and_recipients_differ() {
    let c = repo_config();
    let issue = seed_issue(&c);
    let a = Composer::new(&c, &issue, SECRET.as_bytes())
        .unwrap()
        .with_date(issue.date);
    let b = Composer::new(&c, &issue, SECRET.as_bytes())
        .unwrap()
        .with_date(issue.date);
    let r = reader();
    let ra = a.message_bytes(&r).unwrap();
    assert!(ra == b.message_bytes(&r).unwrap(), "two previews differ");
    let head =
        String::from_utf8_lossy(&ra[..ra.windows(4).position(|w| w == b"\r\n\r\n").unwrap()])
            .to_string();
    assert!(head.contains("Date: Mon, 31 Dec 2018 09:00:00"), "{head}");
    let other = Recipient {
        address: "other@example.org".parse().unwrap(),
        name: None,
    };
    let ro = a.message_bytes(&other).unwrap();
    check_message(&ro, &Expect::repo("other@example.org", SECRET.as_bytes()));
    assert_ne!(a.message_id(&r.address), a.message_id(&other.address));
}

#[test]
fn dkim_signature_verifies() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let seed: [u8; 32] = rand::random();
    let seed_b64 = base64::engine::general_purpose::STANDARD.encode(seed);
    let key = dir.path().join("dkim.key");
    std::fs::write(&key, &seed_b64).unwrap();
    let c = config_with_dkim(&key);
    let comp = Composer::new(&c, &seed_issue(&c), SECRET.as_bytes()).unwrap();
    let raw = comp.message_bytes(&reader()).unwrap();
    check_message(&raw, &Expect::repo("reader@example.org", SECRET.as_bytes()));
    let text = String::from_utf8(raw.clone()).unwrap();
    let sig = text
        .split("\r\n")
        .skip_while(|l| !l.starts_with("DKIM-Signature:"))
        .take_while(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("");
    assert!(sig.starts_with("DKIM-Signature:"), "signed");
    let h: String = sig
        .split(';')
        .find_map(|t| t.trim().strip_prefix("h="))
        .expect("h= tag")
        .split_whitespace()
        .collect();
    assert_eq!(
        h.to_ascii_lowercase(),
        "from:to:subject:date:message-id:list-unsubscribe:list-unsubscribe-post:list-id:feedback-id:mime-version:content-type"
    );
    let eml = dir.path().join("m.eml");
    std::fs::write(&eml, &raw).unwrap();
    let out = Command::new(python())
        .arg(repo().join("tests/fixtures/email/dkim_verify.py"))
        .arg(&eml)
        .arg(&seed_b64)
        .output()
        .expect("run python (scripts/setup-test-deps makes the venv)");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ok",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A changed subject breaks it.
    let tampered = text.replacen("Subject: EnqueueZero", "Subject: Enqueuezero", 1);
    std::fs::write(&eml, tampered).unwrap();
    let out = Command::new(python())
        .arg(repo().join("tests/fixtures/email/dkim_verify.py"))
        .arg(&eml)
        .arg(&seed_b64)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "fail");
}

#[test]
fn unreadable_dkim_key_is_a_clear_error() {
    let c = config_with_dkim(std::path::Path::new("/nonexistent/dkim.pem"));
    let e = Composer::new(&c, &seed_issue(&c), SECRET.as_bytes())
        .err()
        .unwrap();
    assert!(format!("{e:#}").contains("email.dkim.key_file"), "{e:#}");
}

/// `preview` of the CJK fixture with `[email.dkim]` signing with `key` (a file in `dir`).
fn dkim_preview(dir: &std::path::Path, key: &std::path::Path) -> Vec<u8> {
    let base = std::fs::read_to_string(fixture("email").join("techshack.toml")).unwrap();
    let config = dir.join("techshack.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[email.dkim]\ndomain = \"fixture.example\"\nselector = \"mail\"\nkey_file = {:?}\n",
            base.replace("dir = \"issues\"", &format!("dir = {:?}", fixture("email").join("issues"))),
            key
        ),
    )
    .unwrap();
    let out = techshack()
        .env("TECHSHACK_SECRET", SECRET)
        .arg("-c")
        .arg(&config)
        .args(["preview", "2024-01-15-cjk"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn dkim_verifies(dir: &std::path::Path, raw: &[u8], key_args: &[&str]) -> String {
    let eml = dir.join("m.eml");
    std::fs::write(&eml, raw).unwrap();
    let out = Command::new(python())
        .arg(repo().join("tests/fixtures/email/dkim_verify.py"))
        .arg(&eml)
        .args(key_args)
        .output()
        .expect("run python (scripts/setup-test-deps makes the venv)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn signed_previews_are_identical_and_sign_at_the_issue_date() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let seed = base64::engine::general_purpose::STANDARD.encode([42u8; 32]);
    let key = dir.path().join("ed25519.key");
    std::fs::write(&key, &seed).unwrap();
    let first = dkim_preview(dir.path(), &key);
    // `t=` has a one-second resolution: a clock-based one would differ now.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = dkim_preview(dir.path(), &key);
    assert!(first == second, "two signed previews differ");
    let text = String::from_utf8_lossy(&first);
    // 2024-01-15 in the fixture's time zone and publication time, as the Date header says.
    let date = text
        .lines()
        .find_map(|l| l.strip_prefix("Date: "))
        .expect("a Date header");
    let t = chrono::DateTime::parse_from_rfc2822(date)
        .unwrap()
        .timestamp();
    assert!(text.contains(&format!("t={t};")), "{text}");
    assert_eq!(dkim_verifies(dir.path(), &first, &[&seed]), "ok");
}

#[test]
fn an_rsa_key_signs_verifiably() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("rsa.pem");
    let ok = Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(&key)
        .arg("2048")
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(ok.success());
    let public = Command::new("openssl")
        .args(["rsa", "-pubout", "-outform", "DER", "-in"])
        .arg(&key)
        .stderr(std::process::Stdio::null())
        .output()
        .unwrap();
    use base64::Engine;
    let public = base64::engine::general_purpose::STANDARD.encode(public.stdout);
    let raw = dkim_preview(dir.path(), &key);
    assert!(String::from_utf8_lossy(&raw).contains("a=rsa-sha256;"));
    assert_eq!(dkim_verifies(dir.path(), &raw, &["rsa", &public]), "ok");
    // The signature's own lines stay within 76 bytes.
    let text = String::from_utf8_lossy(&raw);
    let sig: Vec<&str> = text
        .split("\r\n")
        .skip_while(|l| !l.starts_with("DKIM-Signature:"))
        .enumerate()
        .take_while(|(i, l)| *i == 0 || l.starts_with('\t'))
        .map(|(_, l)| l)
        .collect();
    assert!(sig.len() > 3, "{sig:?}");
    assert!(sig.iter().all(|l| l.len() <= 76), "{sig:#?}");
}
