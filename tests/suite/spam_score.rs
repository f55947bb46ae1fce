//! SpamAssassin (local tests only, `spamassassin -L -t`) over the messages `preview` writes:
//! every message scores 0.0. `scripts/setup-test-deps` installs it; a missing one fails the
//! test instead of skipping it.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::*;

/// The score and the rules that scored, from SpamAssassin's report.
struct Score {
    points: f64,
    rules: Vec<String>,
}

fn spamassassin(eml: &[u8]) -> Score {
    use std::io::Write;
    let mut child = Command::new("spamassassin")
        .args(["-L", "-t"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spamassassin runs (install it with scripts/setup-test-deps)");
    child.stdin.take().unwrap().write_all(eml).unwrap();
    let out = child.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = report
        .lines()
        .find(|l| l.starts_with("Content analysis details:"))
        .unwrap_or_else(|| panic!("no SpamAssassin report in:\n{report}"));
    let points: f64 = line
        .split('(')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no score in {line:?}"));
    // Rule lines of the table: ` 0.7 RULE_NAME  description`.
    let rules = report
        .lines()
        .skip_while(|l| !l.starts_with("----"))
        .skip(1)
        .filter_map(|l| {
            // Continuation lines of a description are indented far; a rule line is not.
            if l.starts_with("  ") {
                return None;
            }
            let mut w = l.split_whitespace();
            let pts = w.next().filter(|p| p.contains('.'))?;
            let pts: f64 = pts.parse().ok()?;
            let name = w.next()?;
            let is_rule = name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            (is_rule && pts != 0.0).then(|| format!("{name} ({pts})"))
        })
        .collect();
    Score { points, rules }
}

fn preview(config: &Path, issues: Option<&Path>, slug: &str) -> Vec<u8> {
    let mut cmd = techshack();
    cmd.env("TECHSHACK_SECRET", SECRET)
        .arg("-q")
        .arg("-c")
        .arg(config);
    if let Some(i) = issues {
        cmd.arg("--issues").arg(i);
    }
    let out = cmd.args(["preview", slug]).output().unwrap();
    assert!(
        out.status.success(),
        "preview {slug}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Scores every `(label, message)` (two at a time) and fails with the rules of each message
/// that scored.
fn assert_all_zero(messages: Vec<(String, Vec<u8>)>) {
    assert_zero_but(messages, |_, _| false);
}

/// The same, with `allowed(label, rule)` naming the rules a message may score.
fn assert_zero_but(messages: Vec<(String, Vec<u8>)>, allowed: impl Fn(&str, &str) -> bool) {
    let mut bad = Vec::new();
    for pair in messages.chunks(2) {
        let scores: Vec<(String, Score)> = std::thread::scope(|s| {
            let handles: Vec<_> = pair
                .iter()
                .map(|(label, eml)| s.spawn(move || (label.clone(), spamassassin(eml))))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (label, score) in scores {
            let unexpected = score.rules.iter().any(|r| !allowed(&label, r));
            let stray_points = score.rules.is_empty() && score.points != 0.0;
            if unexpected || stray_points {
                bad.push(format!(
                    "{label}: {} points: {}",
                    score.points,
                    score.rules.join(", ")
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "SpamAssassin scored {} message(s):\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn the_seed_issue_and_a_cjk_issue_score_zero() {
    let seed = preview(&repo().join("config/techshack.toml"), None, "2019-01");
    let cjk = preview(
        &fixture("email").join("techshack.toml"),
        None,
        "2024-01-15-cjk",
    );
    assert_all_zero(vec![
        ("seed 2019-01".into(), seed),
        ("2024-01-15-cjk".into(), cjk),
    ]);
}

#[test]
fn the_report_reader_sees_a_scoring_rule() {
    // The check above is only worth something if a rule that fires is seen: text in the
    // background colour is what the preheader used to trip.
    let eml = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>Hello there, a short note.</p><div style=\"color: transparent\">hidden words here</div></body></html>\r\n";
    let s = spamassassin(eml);
    assert!(
        s.rules
            .iter()
            .any(|r| r.starts_with("HTML_FONT_LOW_CONTRAST"))
            && s.points > 0.0,
        "{} {:?}",
        s.points,
        s.rules
    );
}

/// The slugs of the issue files (`.md`, `.markdown`) in `dir`, every `step`th one.
fn slugs(dir: &Path, step: usize) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "md" || e == "markdown"))
        .filter_map(|p| p.file_stem().and_then(|s| s.to_str()).map(str::to_string))
        .collect();
    names.sort();
    names.into_iter().step_by(step).collect()
}

#[test]
#[ignore = "corpus: TECHSHACK_CORPORA=/work/shared/corpora; a few minutes"]
fn every_techshack_issue_and_a_sample_of_twir_score_zero_but_a_cjk_rule() {
    let corpora = corpora();
    let mut messages = Vec::new();
    let ts = corpora.join("techshack");
    let config = repo().join("config/techshack.toml");
    for slug in slugs(&ts, 1) {
        messages.push((
            format!("techshack {slug}"),
            preview(&config, Some(&ts), &slug),
        ));
    }
    // This Week in Rust with an [email] section of its own when the example has none.
    let dir = tempfile::tempdir().unwrap();
    let mut text = std::fs::read_to_string(repo().join("examples/twir/techshack.toml")).unwrap();
    if !text.contains("[email]") {
        text.push_str(
            "\n[email]\nfrom = \"This Week in Rust <editors@this-week-in-rust.org>\"\n\
             unsubscribe_url = \"https://this-week-in-rust.org/unsubscribe?token={token}\"\n\
             unsubscribe_mailto = \"unsubscribe@this-week-in-rust.org\"\n",
        );
    }
    let twir_config = dir.path().join("twir.toml");
    std::fs::write(&twir_config, text).unwrap();
    let twir = corpora.join("twir");
    for slug in slugs(&twir, 60) {
        messages.push((
            format!("twir {slug}"),
            preview(&twir_config, Some(&twir), &slug),
        ));
    }
    assert!(messages.len() > 30, "{} messages", messages.len());
    // One rule is left on some Chinese issues: HTML_OBFUSCATE_* counts a link whose text starts
    // or ends with a Latin letter right beside full-width punctuation (`：<a>github.com</a>。`)
    // as a word split by tags. Only a space there would avoid it, which Chinese typography
    // does not put beside full-width punctuation; so that rule, and only on `-CN` issues, is
    // allowed here.
    assert_zero_but(messages, |label, rule| {
        label.ends_with("-CN") && rule.starts_with("HTML_OBFUSCATE_")
    });
}
