//! `techshack send` over the real binary, a real SQLite ledger and a real SMTP server
//! (`tests/smtp/server.py`, aiosmtpd) that counts what it received per address.

use std::time::{Duration, Instant};

use crate::support::smtp::{counts, Server, ISSUE};
use crate::support::TestSite;
use predicates::prelude::*;
use serde_json::json;

fn site_for(server: &Server, smtp: &str) -> TestSite {
    TestSite::for_send(&format!("smtp://127.0.0.1:{}", server.port), smtp)
}

fn send(site: &TestSite) -> std::process::Output {
    site.cmd().args(["send", ISSUE]).output().unwrap()
}

fn code(o: &std::process::Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn wait_lines(log: &std::path::Path, n: usize, limit: Duration) {
    let t = Instant::now();
    while counts(log).values().sum::<usize>() < n {
        assert!(
            t.elapsed() < limit,
            "the server did not receive {n} messages in time"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn two_thousand_subscribers_get_exactly_one_message_each() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), json!({}));
    let site = site_for(&server, "");
    let addrs = site.subscribe(2000);
    let o = send(&site);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // Not a terminal: one summary line, no progress bar.
    let err = stderr(&o);
    assert!(err.contains("this run sent 2000"), "{err}");
    assert!(!err.contains('\r'), "no progress bar off a terminal");
    let got = server.counts();
    assert_eq!(got.len(), 2000);
    for a in &addrs {
        assert_eq!(got.get(a), Some(&1), "{a}");
    }
    let st = site.status();
    assert_eq!(st["sent"], 2000);
    assert_eq!(st["total"], 2000);
    // Run again: complete, nothing more sent.
    let o = send(&site);
    assert_eq!(code(&o), 0);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.starts_with(&format!("{ISSUE}: complete")), "{out}");
    assert_eq!(out.lines().count(), 1);
    assert_eq!(server.counts().values().sum::<usize>(), 2000);
}

#[test]
fn sigkill_midway_then_rerun_sends_everyone_once_and_reports_unknown() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), json!({}));
    let site = site_for(&server, "rate = 250");
    let addrs = site.subscribe(2000);
    let mut child = site
        .cmd()
        .args(["send", ISSUE])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_lines(&server.log, 300, Duration::from_secs(60));
    // On SQLite a second send on the same state exits at once (on PostgreSQL it would join
    // the first: tests/suite/senders.rs).
    if site.state_url.is_none() {
        let second = send(&site);
        assert_eq!(code(&second), 75, "a lock held is a temporary failure");
        assert!(
            stderr(&second).contains("another `techshack send` is running"),
            "{}",
            stderr(&second)
        );
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = server.counts().values().sum::<usize>();
    assert!(before < 2000, "killed partway ({before} received)");

    // No stale lock: the rerun starts and finishes.
    let o = send(&site);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("marked unknown") || !stderr(&o).contains("in flight"));
    let unknown: Vec<String> = site
        .status_csv()
        .into_iter()
        .filter(|(_, state, _)| state == "unknown")
        .map(|(a, _, _)| a)
        .collect();
    assert!(
        unknown.len() <= 4,
        "at most smtp.concurrency unknown: {unknown:?}"
    );
    let st = site.status();
    assert_eq!(st["sent"] + st["unknown"], 2000, "{st:?}");
    assert_eq!(
        st["pending"] + st["deferred"] + st["skipped"] + st["failed"],
        0
    );
    let got = server.counts();
    for a in &addrs {
        let n = got.get(a).copied().unwrap_or(0);
        if unknown.contains(a) {
            assert!(n <= 1, "{a} received {n}");
        } else {
            assert_eq!(n, 1, "{a} received {n}");
        }
    }
}

#[test]
fn tempfail_and_421_defer_exit_75_and_a_later_run_delivers() {
    tempfail_and_421(true);
}

#[test]
fn tempfail_and_421_without_pipelining() {
    tempfail_and_421(false);
}

fn tempfail_and_421(pipelining: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        tmp.path(),
        json!({
            "tempfail": {"regex": "^user00[0-2][0-9]@", "times": 1, "reply": "451 4.3.0 Try later"},
            "disconnect_after": 100,
            "no_pipelining": !pipelining
        }),
    );
    // A long backoff, so the run right after cannot find them due however slow the machine;
    // the test then moves the clock of those rows instead of sleeping.
    let site = site_for(&server, "retry_after_secs = 600");
    let addrs = site.subscribe(200);
    let started = chrono::Utc::now().timestamp();
    let o = send(&site);
    assert_eq!(code(&o), 75, "{}", stderr(&o));
    assert!(stderr(&o).contains("deferred 30"), "{}", stderr(&o));
    let st = site.status();
    assert_eq!((st["deferred"], st["sent"]), (30, 170), "{st:?}");
    let csv = site.status_csv();
    assert_eq!(csv.len(), 30);
    assert!(csv
        .iter()
        .all(|(_, s, r)| s == "deferred" && r.starts_with("451 4.3.0")));
    // Not due yet: no sleeping through the backoff, nothing sent.
    let o = send(&site);
    assert_eq!(code(&o), 75);
    assert!(String::from_utf8_lossy(&o.stdout).contains("nothing due"));
    let soonest = site.int(
        "SELECT min(next_attempt_at) FROM deliveries WHERE state = 'deferred'",
        &[],
    );
    let latest = site.int(
        "SELECT max(next_attempt_at) FROM deliveries WHERE state = 'deferred'",
        &[],
    );
    assert!(
        soonest >= started + 300 && latest <= chrono::Utc::now().timestamp() + 1200,
        "first backoff is retry_after_secs with jitter: {soonest}..{latest} from {started}"
    );
    site.age_deferred(1200);
    let o = send(&site);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let got = server.counts();
    for a in &addrs {
        assert_eq!(got.get(a), Some(&1), "{a}");
    }
    assert_eq!(site.status()["sent"], 200);
}

#[test]
fn permanent_550_fails_bounces_and_is_never_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        tmp.path(),
        json!({"reject": {"regex": "^user0003@", "reply": "550 5.1.1 <user0003@example.net>: no such user"},
               "no_pipelining": true}),
    );
    let site = site_for(&server, "");
    site.subscribe(20);
    let o = send(&site);
    assert_eq!(
        code(&o),
        0,
        "failed rows do not make the run fail: {}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("failed 1"));
    let st = site.status();
    assert_eq!((st["sent"], st["failed"]), (19, 1));
    let csv = site.status_csv();
    assert_eq!(csv.len(), 1);
    assert_eq!(csv[0].0, "user0003@example.net");
    assert!(csv[0].2.starts_with("550 5.1.1"), "{:?}", csv[0]);
    site.assert_cmd()
        .args(["subscribers", "list", "--status", "bounced"])
        .assert()
        .stdout("user0003@example.net\tbounced\tUser 3\n");
    let o = send(&site);
    assert_eq!(code(&o), 0);
    assert!(String::from_utf8_lossy(&o.stdout).contains("complete"));
    assert_eq!(server.counts().get("user0003@example.net"), None);
}

#[test]
fn connection_dropped_in_data_is_retried_and_arrives_once() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        tmp.path(),
        json!({"drop_in_data": {"regex": "^user000[57]@", "times": 1}, "no_pipelining": true}),
    );
    let site = site_for(&server, "");
    let addrs = site.subscribe(20);
    let o = send(&site);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let got = server.counts();
    for a in &addrs {
        assert_eq!(got.get(a), Some(&1), "{a}");
    }
    let st = site.status();
    assert_eq!(st["sent"], 20);
    // A retry after a drop before the final dot is not an attempt.
    assert!(site.status_csv().is_empty());
}

#[test]
fn a_server_that_stops_answering_times_out_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), json!({"stall_after": 40}));
    let site = site_for(&server, "timeout_secs = 1");
    let addrs = site.subscribe(150);
    let t = Instant::now();
    let o = send(&site);
    assert!(t.elapsed() < Duration::from_secs(60));
    assert_eq!(code(&o), 75, "{}", stderr(&o));
    let st = site.status();
    assert_eq!(st["in_flight"] + st["pending"], 0, "{st:?}");
    assert!(st["unknown"] <= 4, "{st:?}");
    assert!(st["deferred"] > 0, "{st:?}");
    assert!(st["sent"] <= 40);
    drop(server);

    // The server is back (same log): the next run delivers the rest, nobody twice.
    let server = Server::start(tmp.path(), json!({}));
    TestSite::write_send_config(
        &site.config,
        &format!("smtp://127.0.0.1:{}", server.port),
        "",
    );
    let o = send(&site);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let unknown: Vec<String> = site
        .status_csv()
        .into_iter()
        .filter(|(_, s, _)| s == "unknown")
        .map(|(a, _, _)| a)
        .collect();
    let st = site.status();
    assert_eq!(st["sent"] + st["unknown"], 150, "{st:?}");
    let got = server.counts();
    for a in &addrs {
        let n = got.get(a).copied().unwrap_or(0);
        if unknown.contains(a) {
            assert!(n <= 1);
        } else {
            assert_eq!(n, 1, "{a}");
        }
    }
}

#[test]
fn unsubscribed_after_the_snapshot_is_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        tmp.path(),
        json!({"tempfail": {"regex": "^user000[12]@", "times": 1}}),
    );
    let site = site_for(&server, "retry_after_secs = 600");
    site.subscribe(5);
    assert_eq!(code(&send(&site)), 75);
    site.assert_cmd()
        .args(["subscribers", "remove", "user0001@example.net"])
        .assert()
        .success();
    site.assert_cmd()
        .args(["subscribers", "add", "late@example.net"])
        .assert()
        .success();
    site.age_deferred(1200);
    let o = send(&site);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let st = site.status();
    assert_eq!(
        (st["sent"], st["skipped"], st["total"]),
        (4, 1, 5),
        "{st:?}"
    );
    let got = server.counts();
    assert_eq!(got.get("user0001@example.net"), None);
    assert_eq!(got.get("user0002@example.net"), Some(&1));
    assert_eq!(got.get("late@example.net"), None, "not in the snapshot");
}

#[test]
fn retry_unknown_resends_only_unknown_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), json!({"stall_after": 3}));
    let site = site_for(&server, "timeout_secs = 1\nconcurrency = 1");
    site.subscribe(6);
    assert_eq!(code(&send(&site)), 75);
    let st = site.status();
    assert_eq!(st["unknown"], 1, "{st:?}");
    drop(server);
    let server = Server::start(tmp.path(), json!({}));
    TestSite::write_send_config(
        &site.config,
        &format!("smtp://127.0.0.1:{}", server.port),
        "concurrency = 1",
    );
    assert_eq!(code(&send(&site)), 0);
    assert_eq!(site.status()["unknown"], 1);
    let o = site
        .cmd()
        .args(["send", ISSUE, "--retry-unknown"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let st = site.status();
    assert_eq!((st["sent"], st["unknown"]), (6, 0));
    // The unknown one was in fact received before the stall: now twice, as SPEC allows only
    // with --retry-unknown; everyone else once.
    let got = server.counts();
    assert_eq!(got.len(), 6, "{got:?}");
    assert_eq!(got.values().filter(|n| **n == 1).count(), 5, "{got:?}");
    assert_eq!(got.values().filter(|n| **n == 2).count(), 1, "{got:?}");
}

#[test]
fn dry_run_and_test_copy_record_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), json!({}));
    let site = site_for(&server, "");
    site.subscribe(3);
    let out = site.path("eml");
    site.assert_cmd()
        .args(["send", ISSUE, "--dry-run"])
        .arg(&out)
        .assert()
        .success();
    let mut files: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            format!("{ISSUE}-user0000_example.net.eml"),
            format!("{ISSUE}-user0001_example.net.eml"),
            format!("{ISSUE}-user0002_example.net.eml"),
        ]
    );
    let eml = std::fs::read(out.join(&files[1])).unwrap();
    let msg = mail_parser::MessageParser::default().parse(&eml).unwrap();
    assert_eq!(
        msg.to().unwrap().first().unwrap().address(),
        Some("user0001@example.net")
    );
    site.assert_cmd()
        .args(["send", ISSUE, "--to", "Editor@Example.org"])
        .assert()
        .success();
    assert_eq!(server.counts().get("editor@example.org"), Some(&1));
    assert_eq!(server.counts().len(), 1);
    site.assert_cmd()
        .arg("status")
        .assert()
        .success()
        .stdout("");
    site.assert_cmd()
        .args(["status", ISSUE])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "no send recorded for {ISSUE}"
        )));
}

#[test]
fn latest_picks_the_newest_main_issue_and_refuses_old_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), json!({}));
    let site = site_for(&server, "");
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let old = (chrono::Utc::now() - chrono::Duration::days(30))
        .format("%Y-%m-%d")
        .to_string();
    std::fs::write(
        site.path("issues/2026-11-21-CN.md"),
        format!("---\ntitle: 中文\ndate: {today}\n---\n\nText.\n"),
    )
    .unwrap();
    std::fs::write(
        site.path("issues/2026-10-01.md"),
        format!("---\ntitle: Old\ndate: {old}\n---\n\nText.\n"),
    )
    .unwrap();
    let mut cfg = std::fs::read_to_string(&site.config).unwrap();
    cfg.push_str("\n[[feeds.extra]]\nname = \"zh\"\nmatch = \"*-CN.*\"\n");
    std::fs::write(&site.config, cfg).unwrap();
    site.subscribe(4);
    site.assert_cmd()
        .args(["send", "--latest"])
        .assert()
        .code(0);
    assert_eq!(site.status()["sent"], 4, "the main feeds' newest issue");
    let o = site.cmd().args(["send", "--latest"]).output().unwrap();
    assert_eq!(code(&o), 0);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(out.lines().count(), 1);
    assert!(out.starts_with(&format!("{ISSUE}: complete")), "{out}");
    assert_eq!(server.counts().values().sum::<usize>(), 4);

    // Only an old issue: the first cron run over an archive mails nothing.
    std::fs::remove_file(site.path(&format!("issues/{ISSUE}.md"))).unwrap();
    let o = site.cmd().args(["send", "--latest"]).output().unwrap();
    assert_eq!(code(&o), 0);
    assert!(
        stderr(&o).contains("older than --max-age 7"),
        "{}",
        stderr(&o)
    );
    let o = site
        .cmd()
        .args(["send", "--latest", "--max-age", "40"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let all = site.cmd().arg("status").output().unwrap();
    let all = String::from_utf8_lossy(&all.stdout).into_owned();
    assert_eq!(all.lines().count(), 2, "{all}");
    assert!(
        all.contains("2026-10-01 pending 0 in_flight 0 sent 4"),
        "{all}"
    );
}

#[test]
fn unknown_or_draft_issue_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), json!({}));
    let site = site_for(&server, "");
    site.assert_cmd()
        .args(["send", "1999-01"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no issue `1999-01`"));
    std::fs::write(
        site.path("issues/2026-11-22.md"),
        "---\ntitle: Draft\ndate: 2026-11-22\ndraft: true\n---\n\nText.\n",
    )
    .unwrap();
    site.assert_cmd()
        .args(["send", "2026-11-22"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("draft"));
    site.assert_cmd()
        .args(["send", ISSUE])
        .env_remove("TECHSHACK_SECRET")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("TECHSHACK_SECRET"));
}

/// `send ISSUE` started in the background, its stderr kept for the test to read.
fn spawn_send(site: &TestSite) -> std::process::Child {
    site.cmd()
        .args(["send", ISSUE])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Sends a signal (`-TERM`, `-INT`) to the process, as an operator or systemd would.
fn signal(child: &std::process::Child, sig: &str) {
    let st = std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill {sig}");
}

#[test]
fn sigterm_finishes_the_messages_in_progress_and_defers_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), json!({}));
    let site = site_for(&server, "rate = 100");
    let addrs = site.subscribe(400);
    let child = spawn_send(&site);
    wait_lines(&server.log, 40, Duration::from_secs(60));
    signal(&child, "-TERM");
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 75, "{}", stderr(&o));
    assert!(stderr(&o).contains("interrupted"), "{}", stderr(&o));
    let st = site.status();
    assert_eq!(st["in_flight"] + st["unknown"] + st["pending"], 0, "{st:?}");
    assert_eq!(st["sent"] + st["deferred"], 400, "{st:?}");
    assert!(st["deferred"] > 0);
    let o = send(&site);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let got = server.counts();
    for a in &addrs {
        assert_eq!(got.get(a), Some(&1), "{a}");
    }
}

#[test]
fn a_fresh_session_every_per_connection_messages() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), json!({}));
    let site = site_for(&server, "concurrency = 1\nper_connection = 5");
    site.subscribe(20);
    let o = send(&site);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(server.counts().len(), 20);
    assert_eq!(server.connections(), 4);
}

/// `(state, attempts, last_reply)` of one address's row, straight from the ledger.
fn row_of(site: &TestSite, address: &str) -> (String, u32, Option<String>) {
    let rows = site.rows(
        "SELECT state, attempts, last_reply FROM deliveries WHERE address = ?1",
        &[address],
    );
    let r = &rows[0];
    (
        r[0].clone().unwrap(),
        r[1].as_deref().unwrap().parse().unwrap(),
        r[2].clone(),
    )
}

#[test]
fn deferred_rows_past_max_age_fail_on_the_next_send_and_fresh_ones_are_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        tmp.path(),
        json!({"tempfail": {"regex": "^user000[12]@", "times": 1, "reply": "451 4.3.0 Try later"}}),
    );
    let site = site_for(&server, "retry_after_secs = 600");
    site.subscribe(5);
    let o = send(&site);
    assert_eq!(code(&o), 75, "{}", stderr(&o));
    assert_eq!(site.status()["deferred"], 2);

    // user0001 was first attempted 73 hours ago; its next attempt is still in the future, as
    // for a cron run that comes back days later. user0002 is as fresh as it was.
    let moved = site.sql(
        "UPDATE deliveries SET first_attempt_at = first_attempt_at - 73 * 3600
         WHERE address = 'user0001@example.net' AND state = 'deferred'
           AND first_attempt_at IS NOT NULL",
        &[],
    );
    assert_eq!(moved, 1, "the deferred row records its first attempt");
    let o = send(&site);
    assert_eq!(code(&o), 75, "user0002 is still deferred: {}", stderr(&o));
    assert!(
        stderr(&o).contains("warning: 1 deferred delivery(ies) of 2026-11-20 failed"),
        "{}",
        stderr(&o)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("nothing due"));
    let st = site.status();
    assert_eq!(
        (st["sent"], st["deferred"], st["failed"]),
        (3, 1, 1),
        "{st:?}"
    );
    let csv = site.status_csv();
    let failed: Vec<_> = csv.iter().filter(|(_, s, _)| s == "failed").collect();
    assert_eq!(failed.len(), 1, "{csv:?}");
    assert_eq!(failed[0].0, "user0001@example.net");
    assert_eq!(failed[0].2, "gave up after 72 h: 451 4.3.0 Try later");

    // The fresh one comes due and is retried; the failed one is not.
    site.age_deferred(1200);
    let o = send(&site);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let got = server.counts();
    assert_eq!(got.get("user0001@example.net"), None);
    assert_eq!(got.get("user0002@example.net"), Some(&1));
    let st = site.status();
    assert_eq!((st["sent"], st["failed"], st["total"]), (4, 1, 5), "{st:?}");
    let o = send(&site);
    assert_eq!(code(&o), 0);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with(&format!("{ISSUE}: complete")));
}

#[test]
fn only_aged_deferred_rows_left_means_exit_0() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        tmp.path(),
        json!({"tempfail": {"regex": "^user0002@", "times": 1, "reply": "451 4.7.1 Greylisted"}}),
    );
    let site = site_for(&server, "retry_after_secs = 600\nmax_age_hours = 2");
    site.subscribe(3);
    assert_eq!(code(&send(&site)), 75);
    // Three hours later, and the row is due: it is given up instead of retried.
    site.sql(
        "UPDATE deliveries SET first_attempt_at = first_attempt_at - 3 * 3600,
             next_attempt_at = next_attempt_at - 3 * 3600
         WHERE state = 'deferred'",
        &[],
    );
    let o = send(&site);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with(&format!("{ISSUE}: complete")));
    assert_eq!(server.counts().get("user0002@example.net"), None);
    let (state, attempts, reply) = row_of(&site, "user0002@example.net");
    assert_eq!(
        (state.as_str(), attempts, reply.as_deref()),
        ("failed", 1, Some("gave up after 2 h: 451 4.7.1 Greylisted"))
    );
}

#[test]
fn a_retry_that_would_fall_past_max_age_fails_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        tmp.path(),
        json!({"tempfail": {"regex": "^user000[03]@", "times": 1, "reply": "451 4.3.0 Try later"}}),
    );
    // The first backoff alone (two hours) is beyond the one-hour cap.
    let site = site_for(&server, "retry_after_secs = 7200\nmax_age_hours = 1");
    site.subscribe(5);
    let o = send(&site);
    assert_eq!(code(&o), 0, "nothing is left deferred: {}", stderr(&o));
    assert!(stderr(&o).contains("failed 2"), "{}", stderr(&o));
    let st = site.status();
    assert_eq!((st["sent"], st["failed"], st["deferred"]), (3, 2, 0));
    for (_, state, reply) in site.status_csv() {
        assert_eq!(state, "failed");
        assert_eq!(
            reply,
            "gave up: the next attempt would come more than 1 h after the first: 451 4.3.0 Try later"
        );
    }
}

#[test]
fn a_state_file_of_the_previous_schema_is_migrated_and_its_old_deferred_rows_fail() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), json!({}));
    // A SQLite file of an old schema, whatever backend the other tests run on.
    let site = site_for(&server, "").on_sqlite();
    // Schema version 1 exactly as it shipped, with a send snapshotted four days ago: one row
    // deferred since then, one still pending.
    std::fs::create_dir_all(site.path("state")).unwrap();
    let db = rusqlite::Connection::open(site.db()).unwrap();
    let four_days_ago = (chrono::Utc::now() - chrono::Duration::days(4))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    db.execute_batch(&format!(
        r#"
CREATE TABLE subscribers (
    address    TEXT PRIMARY KEY,
    name       TEXT,
    status     TEXT NOT NULL
               CHECK (status IN ('pending', 'active', 'unsubscribed', 'bounced')),
    added_at   TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX subscribers_status ON subscribers (status);
CREATE TABLE sends (
    issue       TEXT PRIMARY KEY,
    snapshot_at TEXT NOT NULL
);
CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY,
    issue           TEXT NOT NULL REFERENCES sends (issue),
    address         TEXT NOT NULL,
    name            TEXT,
    state           TEXT NOT NULL
                    CHECK (state IN ('pending', 'in_flight', 'sent', 'deferred', 'failed',
                                     'unknown', 'skipped')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    last_reply      TEXT,
    updated_at      TEXT NOT NULL,
    UNIQUE (issue, address)
);
CREATE INDEX deliveries_state ON deliveries (issue, state);
PRAGMA user_version = 1;
INSERT INTO subscribers VALUES
    ('old@example.net', NULL, 'active', '{t}', '{t}'),
    ('new@example.net', NULL, 'active', '{t}', '{t}');
INSERT INTO sends VALUES ('{ISSUE}', '{t}');
INSERT INTO deliveries (issue, address, state, attempts, next_attempt_at, last_reply, updated_at)
VALUES ('{ISSUE}', 'old@example.net', 'deferred', 2, 0, '452 4.2.2 Mailbox full', '{t}'),
       ('{ISSUE}', 'new@example.net', 'pending', 0, NULL, NULL, '{t}');
"#,
        t = four_days_ago
    ))
    .unwrap();
    drop(db);
    let o = send(&site);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let db = rusqlite::Connection::open(site.db()).unwrap();
    let version: i64 = db
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version as usize, techshack::store::schema_version());
    drop(db);
    let (state, _, reply) = row_of(&site, "old@example.net");
    assert_eq!(state, "failed");
    assert_eq!(
        reply.as_deref(),
        Some("gave up after 72 h: 452 4.2.2 Mailbox full")
    );
    assert_eq!(row_of(&site, "new@example.net").0, "sent");
    let got = server.counts();
    assert_eq!(got.get("old@example.net"), None);
    assert_eq!(got.get("new@example.net"), Some(&1));
}

#[test]
fn connection_dropped_mid_content_is_retried_without_an_attempt() {
    dropped_mid_content(true);
}

#[test]
fn connection_dropped_mid_content_without_pipelining() {
    dropped_mid_content(false);
}

fn dropped_mid_content(pipelining: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        tmp.path(),
        json!({"drop_in_content": {"regex": "^user000[49]@", "times": 1, "bytes": 300},
               "no_pipelining": !pipelining}),
    );
    let site = site_for(&server, "");
    let addrs = site.subscribe(12);
    let o = send(&site);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // The server did take part of each message before hanging up.
    let mut dropped = server.dropped();
    dropped.sort();
    assert_eq!(
        dropped.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(),
        ["user0004@example.net", "user0009@example.net"]
    );
    for (a, taken) in &dropped {
        let n: usize = taken
            .parse()
            .unwrap_or_else(|_| panic!("{a}: the server took `{taken}`"));
        assert!(n > 0 && n <= 300, "{a}: {n} bytes taken");
    }
    // Then delivered exactly once, sent, no attempt counted.
    let got = server.counts();
    for a in &addrs {
        assert_eq!(got.get(a), Some(&1), "{a}");
    }
    assert_eq!(site.status()["sent"], 12);
    assert!(site.status_csv().is_empty());
    for a in ["user0004@example.net", "user0009@example.net"] {
        let (state, attempts, reply) = row_of(&site, a);
        assert_eq!((state.as_str(), attempts), ("sent", 0), "{a}");
        assert!(reply.is_some_and(|r| r.starts_with("250")), "{a}");
    }
}

#[test]
fn a_hang_up_after_the_final_dot_is_unknown_and_resent_only_with_retry_unknown() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        tmp.path(),
        json!({"drop_after_dot": {"regex": "^user000[36]@", "times": 1}}),
    );
    let site = site_for(&server, "");
    let addrs = site.subscribe(10);
    let o = send(&site);
    assert_eq!(code(&o), 0, "unknown rows are not deferred: {}", stderr(&o));
    assert!(stderr(&o).contains("unknown 2"), "{}", stderr(&o));
    let st = site.status();
    assert_eq!((st["sent"], st["unknown"]), (8, 2), "{st:?}");
    let mut csv = site.status_csv();
    csv.sort();
    assert_eq!(
        csv.iter()
            .map(|(a, s, _)| (a.as_str(), s.as_str()))
            .collect::<Vec<_>>(),
        [
            ("user0003@example.net", "unknown"),
            ("user0006@example.net", "unknown"),
        ]
    );
    for (a, _, reply) in &csv {
        assert!(
            reply.starts_with("no reply to the final dot"),
            "{a}: {reply}"
        );
    }
    // The server did store them: one copy each so far.
    let got = server.counts();
    for a in &addrs {
        assert_eq!(got.get(a), Some(&1), "{a}");
    }

    // A plain send leaves unknown rows alone.
    let o = send(&site);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with(&format!("{ISSUE}: complete")));
    assert_eq!(server.counts().values().sum::<usize>(), 10);
    assert_eq!(site.status()["unknown"], 2);

    // --retry-unknown resends exactly those.
    let o = site
        .cmd()
        .args(["send", ISSUE, "--retry-unknown"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let st = site.status();
    assert_eq!((st["sent"], st["unknown"]), (10, 0), "{st:?}");
    let got = server.counts();
    for a in &addrs {
        let want = if a == "user0003@example.net" || a == "user0006@example.net" {
            2
        } else {
            1
        };
        assert_eq!(got.get(a), Some(&want), "{a}");
    }
}

/// Waits up to `limit` for the child to exit; kills it and fails when it does not.
fn wait_exit(mut child: std::process::Child, limit: Duration) -> std::process::Output {
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > limit {
            let _ = child.kill();
            panic!("the send did not stop within {limit:?} of the signal");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn sigint_stops_a_slow_send_without_claiming_another_row() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), json!({}));
    // One message every ten seconds: a run that waits for its next slot after the signal, or
    // sends in it, is seconds late and one message over.
    let site = site_for(&server, "rate = 0.1\nconcurrency = 2");
    let addrs = site.subscribe(30);
    let child = spawn_send(&site);
    wait_lines(&server.log, 1, Duration::from_secs(60));
    let at_signal = server.counts().values().sum::<usize>();
    signal(&child, "-INT");
    // Well before the next slot, ten seconds after the first.
    let o = wait_exit(child, Duration::from_secs(8));
    assert_eq!(code(&o), 75, "{}", stderr(&o));
    assert!(stderr(&o).contains("interrupted"), "{}", stderr(&o));
    let received = server.counts().values().sum::<usize>();
    // Only a message already handed to a session when the signal came may follow it, and at
    // this pace at most one can be.
    assert!(
        received <= at_signal + 1,
        "{received} received, {at_signal} when the signal was sent"
    );
    let st = site.status();
    assert_eq!(st["in_flight"] + st["unknown"] + st["pending"], 0, "{st:?}");
    assert_eq!(st["sent"], received, "{st:?}");
    assert_eq!(st["sent"] + st["deferred"], 30, "{st:?}");

    // The rest goes out on the next run, everyone exactly once.
    TestSite::write_send_config(
        &site.config,
        &format!("smtp://127.0.0.1:{}", server.port),
        "",
    );
    let o = send(&site);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let got = server.counts();
    for a in &addrs {
        assert_eq!(got.get(a), Some(&1), "{a}");
    }
    assert_eq!(site.status()["sent"], 30);
}

/// Writes `issues/{slug}.md` titled `title`, dated `days_ago` days back.
fn write_issue(site: &TestSite, slug: &str, title: &str, days_ago: i64) {
    let date = (chrono::Utc::now() - chrono::Duration::days(days_ago))
        .format("%Y-%m-%d")
        .to_string();
    std::fs::write(
        site.path(&format!("issues/{slug}.md")),
        format!("---\ntitle: {title}\ndate: {date}\n---\n\n## [A link](https://example.com/{slug})\n\nNotes.\n"),
    )
    .unwrap();
}

/// `status SLUG` as a map of state to count.
fn status_of(site: &TestSite, slug: &str) -> std::collections::HashMap<String, usize> {
    let o = site.cmd().args(["status", slug]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

/// How many copies of the issue titled `title` each of `addrs` received.
fn copies(server: &Server, title: &str, addrs: &[String]) -> Vec<usize> {
    let got = server.counts_by_subject();
    addrs
        .iter()
        .map(|a| {
            got.get(&(a.clone(), title.to_string()))
                .copied()
                .unwrap_or(0)
        })
        .collect()
}

#[test]
fn latest_finishes_an_interrupted_older_issue_before_the_newer_one() {
    let tmp = tempfile::tempdir().unwrap();
    // The fifth message gets no reply: the send hangs with that row in flight until killed.
    let server = Server::start(tmp.path(), json!({"stall_after": 5}));
    let site = site_for(&server, "concurrency = 1\ntimeout_secs = 60");
    std::fs::remove_file(site.path(&format!("issues/{ISSUE}.md"))).unwrap();
    write_issue(&site, "2019-04", "Never sent", 4);
    write_issue(&site, "2019-05", "Interrupted", 3);
    let addrs = site.subscribe(20);
    let mut child = site
        .cmd()
        .args(["send", "2019-05"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_lines(&server.log, 5, Duration::from_secs(60));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    drop(server);
    let st = status_of(&site, "2019-05");
    assert_eq!(
        (st["sent"], st["in_flight"], st["pending"]),
        (4, 1, 15),
        "{st:?}"
    );

    // A newer issue is published; the server is back (same log).
    let server = Server::start(tmp.path(), json!({}));
    TestSite::write_send_config(
        &site.config,
        &format!("smtp://127.0.0.1:{}", server.port),
        "",
    );
    write_issue(&site, "2019-06", "Newer", 1);
    let o = site.cmd().args(["send", "--latest"]).output().unwrap();
    let err = stderr(&o);
    assert_eq!(code(&o), 0, "{err}");
    assert!(
        err.contains("warning: 1 delivery(ies) of 2019-05 were in flight"),
        "{err}"
    );
    // One summary line per issue, the older first.
    let older = err.find("2019-05: this run sent 15").expect(&err);
    let newer = err
        .find("2019-06: 20 subscriber(s) snapshotted; this run sent 20")
        .expect(&err);
    assert!(older < newer, "{err}");
    assert_eq!(copies(&server, "Interrupted", &addrs), vec![1; 20]);
    assert_eq!(copies(&server, "Newer", &addrs), vec![1; 20]);
    assert_eq!(copies(&server, "Never sent", &addrs), vec![0; 20]);
    let st = status_of(&site, "2019-05");
    assert_eq!(
        (st["sent"], st["unknown"], st["in_flight"], st["pending"]),
        (19, 1, 0, 0),
        "{st:?}"
    );
    assert_eq!(status_of(&site, "2019-06")["sent"], 20);

    // Nothing left anywhere: the next run says so for the newest and sends nothing.
    let o = site.cmd().args(["send", "--latest"]).output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with("2019-06: complete"), "{out}");
    assert_eq!(server.counts().values().sum::<usize>(), 5 + 15 + 20);
    // The issue never sent was not snapshotted by the runs that passed it.
    let all = site.cmd().arg("status").output().unwrap();
    let all = String::from_utf8_lossy(&all.stdout).into_owned();
    assert_eq!(all.lines().count(), 2, "{all}");
    assert!(!all.contains("2019-04"), "{all}");
}

#[test]
fn latest_warns_about_an_unfinished_issue_past_max_age_and_exits_75() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        tmp.path(),
        json!({"tempfail": {"regex": "^user000[12]@", "times": 1, "reply": "451 4.3.0 Try later"}}),
    );
    let site = site_for(&server, "retry_after_secs = 600");
    std::fs::remove_file(site.path(&format!("issues/{ISSUE}.md"))).unwrap();
    write_issue(&site, "2019-05", "Old and unfinished", 30);
    let addrs = site.subscribe(6);
    // Sent by name a while ago: two rows deferred, and by now due.
    assert_eq!(
        code(&site.cmd().args(["send", "2019-05"]).output().unwrap()),
        75
    );
    site.age_deferred(1200);
    write_issue(&site, "2019-06", "Newer", 1);
    let o = site.cmd().args(["send", "--latest"]).output().unwrap();
    let err = stderr(&o);
    assert_eq!(code(&o), 75, "{err}");
    let warnings: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("warning:") && l.contains("2019-05"))
        .collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(
        warnings[0].contains("older than --max-age 7")
            && warnings[0].contains("`techshack send 2019-05`"),
        "{err}"
    );
    assert_eq!(copies(&server, "Newer", &addrs), vec![1; 6]);
    let old = copies(&server, "Old and unfinished", &addrs);
    assert_eq!(old, [1, 0, 0, 1, 1, 1], "the old issue was not sent");
    assert_eq!(status_of(&site, "2019-05")["deferred"], 2);

    // Every later run keeps saying so, until the operator finishes it by name.
    let o = site.cmd().args(["send", "--latest"]).output().unwrap();
    assert_eq!(code(&o), 75, "{}", stderr(&o));
    let o = site.cmd().args(["send", "2019-05"]).output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(copies(&server, "Old and unfinished", &addrs), vec![1; 6]);
    let o = site.cmd().args(["send", "--latest"]).output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    assert_eq!(copies(&server, "Newer", &addrs), vec![1; 6]);
}

#[test]
fn an_error_in_any_issue_file_stops_every_send_and_warnings_wait_for_verbose() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), json!({}));
    let site = site_for(&server, "");
    site.subscribe(3);
    std::fs::write(
        site.path("issues/2019-04.md"),
        "---\ntitle: [broken\ndate: 2019-01-21\n---\n\nText.\n",
    )
    .unwrap();
    let eml = site.path("eml");
    for args in [
        vec!["send", "--latest"],
        vec!["send", ISSUE],
        vec!["send", ISSUE, "--to", "editor@example.org"],
        vec!["send", ISSUE, "--dry-run", eml.to_str().unwrap()],
    ] {
        let o = site.cmd().args(&args).output().unwrap();
        let err = stderr(&o);
        assert_eq!(code(&o), 1, "{args:?}: {err}");
        assert!(
            err.contains("/issues/2019-04.md:3:5: error: malformed YAML front matter"),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("error: not sending: 1 error(s) in the issues folder")
                && err.contains("/issues/2019-04.md):"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(server.counts().len(), 0);
    assert!(!eml.exists());
    site.assert_cmd()
        .arg("status")
        .assert()
        .success()
        .stdout("");

    // Fixed, with a warning elsewhere: the send goes ahead; the warning is shown only with
    // --verbose, so it does not fill every cron mail.
    std::fs::remove_file(site.path("issues/2019-04.md")).unwrap();
    std::fs::write(
        site.path("issues/2019-03.md"),
        "---\ntitle: Older\ndate: 2019-01-14\n---\n\n<Mystery />\n\nText.\n",
    )
    .unwrap();
    let o = site.cmd().args(["send", "--latest"]).output().unwrap();
    let err = stderr(&o);
    assert_eq!(code(&o), 0, "{err}");
    assert!(!err.contains("warning"), "{err}");
    assert_eq!(server.counts().len(), 3);
    let o = site
        .cmd()
        .args(["-v", "send", "--latest"])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(code(&o), 0, "{err}");
    assert!(
        err.contains("/issues/2019-03.md:6:1: warning: unknown component `<Mystery>`"),
        "{err}"
    );
    assert_eq!(server.counts().len(), 3, "complete: nothing sent again");
}

#[test]
fn two_files_of_one_slug_are_an_error_not_a_choice() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), json!({}));
    let site = site_for(&server, "");
    site.subscribe(2);
    write_issue(&site, "2019-05", "From md", 2);
    std::fs::write(
        site.path("issues/2019-05.markdown"),
        "---\ntitle: From markdown\ndate: 2019-02-04\n---\n\nText.\n",
    )
    .unwrap();
    let o = site.cmd().args(["send", "2019-05"]).output().unwrap();
    let err = stderr(&o);
    assert_eq!(code(&o), 1, "{err}");
    assert!(
        err.contains(": error: slug `2019-05` is also the slug of /"),
        "{err}"
    );
    assert!(
        err.contains("not sending") && err.contains("/issues/2019-05.md"),
        "{err}"
    );
    assert_eq!(server.counts().len(), 0);
    let o = site.cmd().args(["send", "--latest"]).output().unwrap();
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert_eq!(server.counts().len(), 0);
}

#[test]
fn drafts_and_future_issues_get_test_copies_but_no_real_send() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), json!({}));
    let site = site_for(&server, "");
    site.subscribe(2);
    std::fs::write(
        site.path("issues/2026-11-22.md"),
        "---\ntitle: Draft\ndate: 2026-11-22\ndraft: true\n---\n\nText.\n",
    )
    .unwrap();
    let future = (chrono::Utc::now() + chrono::Duration::days(10))
        .format("%Y-%m-%d")
        .to_string();
    std::fs::write(
        site.path("issues/2099-01.md"),
        format!("---\ntitle: Future\ndate: {future}\n---\n\nText.\n"),
    )
    .unwrap();
    for (slug, what) in [
        ("2026-11-22", "is a draft"),
        ("2099-01", "is dated in the future"),
    ] {
        let o = site
            .cmd()
            .args(["send", slug, "--to", "editor@example.org"])
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(code(&o), 0, "{err}");
        let warning = err
            .lines()
            .find(|l| l.starts_with("warning: "))
            .unwrap_or_else(|| panic!("{slug}: no warning in {err}"));
        assert!(
            warning.contains(&format!("/issues/{slug}.md {what}")) && warning.contains("test copy"),
            "{warning}"
        );

        let dir = site.path(&format!("eml-{slug}"));
        let o = site
            .cmd()
            .args(["send", slug, "--dry-run"])
            .arg(&dir)
            .output()
            .unwrap();
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert!(stderr(&o).contains(what), "{}", stderr(&o));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);

        let o = site.cmd().args(["send", slug]).output().unwrap();
        assert_eq!(code(&o), 1, "{}", stderr(&o));
        assert!(
            stderr(&o).contains("publish it before sending"),
            "{}",
            stderr(&o)
        );
    }
    let got = server.counts_by_subject();
    assert_eq!(
        got.get(&("editor@example.org".to_string(), "Draft".to_string())),
        Some(&1)
    );
    assert_eq!(
        got.get(&("editor@example.org".to_string(), "Future".to_string())),
        Some(&1)
    );
    assert_eq!(server.counts().len(), 1, "only the test address");
    site.assert_cmd()
        .arg("status")
        .assert()
        .success()
        .stdout("");
}

#[test]
fn latest_retries_the_deferred_rows_of_an_older_issue_when_they_come_due() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        tmp.path(),
        json!({"tempfail": {"regex": "^user000[12]@", "times": 1, "reply": "451 4.3.0 Try later"}}),
    );
    let site = site_for(&server, "retry_after_secs = 600");
    std::fs::remove_file(site.path(&format!("issues/{ISSUE}.md"))).unwrap();
    write_issue(&site, "2019-05", "Deferred", 3);
    let addrs = site.subscribe(5);
    assert_eq!(
        code(&site.cmd().args(["send", "--latest"]).output().unwrap()),
        75
    );
    write_issue(&site, "2019-06", "Newer", 1);
    // The older issue's rows are not due yet: the newer one goes out, the run says "later".
    let o = site.cmd().args(["send", "--latest"]).output().unwrap();
    assert_eq!(code(&o), 75, "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains("2019-05: nothing due before"), "{out}");
    assert_eq!(copies(&server, "Newer", &addrs), vec![1; 5]);
    assert_eq!(copies(&server, "Deferred", &addrs), [1, 0, 0, 1, 1]);
    // Due now: the same call delivers them.
    site.age_deferred(1200);
    let o = site.cmd().args(["send", "--latest"]).output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("2019-05: this run sent 2"),
        "{}",
        stderr(&o)
    );
    assert_eq!(copies(&server, "Deferred", &addrs), vec![1; 5]);
    assert_eq!(copies(&server, "Newer", &addrs), vec![1; 5]);
    assert_eq!(status_of(&site, "2019-05")["sent"], 5);
    let o = site.cmd().args(["send", "--latest"]).output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).lines().count(),
        1,
        "only the newest's complete line"
    );
}
