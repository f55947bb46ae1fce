//! `techshack send` over the real binary, a real SQLite ledger and a real SMTP server
//! (`tests/smtp/server.py`, aiosmtpd) that counts what it received per address.

#[path = "smtp/support.rs"]
mod support;

use std::time::{Duration, Instant};

use predicates::prelude::*;
use serde_json::json;
use support::{counts, Server, Site, ISSUE};

fn site_for(server: &Server, smtp: &str) -> Site {
    Site::new(&format!("smtp://127.0.0.1:{}", server.port), smtp)
}

fn send(site: &Site) -> std::process::Output {
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
    // A second send on the same state exits at once.
    let second = send(&site);
    assert_eq!(code(&second), 1);
    assert!(
        stderr(&second).contains("another `techshack send` is running"),
        "{}",
        stderr(&second)
    );
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
    let db = rusqlite::Connection::open(site.db()).unwrap();
    let (soonest, latest): (i64, i64) = db
        .query_row(
            "SELECT min(next_attempt_at), max(next_attempt_at) FROM deliveries WHERE state = 'deferred'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(
        soonest >= started + 300 && latest <= chrono::Utc::now().timestamp() + 1200,
        "first backoff is retry_after_secs with jitter: {soonest}..{latest} from {started}"
    );
    drop(db);
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
    Site::write_config(
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
    Site::write_config(
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
    assert_eq!(site.status()["total"], 0);
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

#[test]
fn sigterm_finishes_the_messages_in_progress_and_defers_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), json!({}));
    let site = site_for(&server, "rate = 100");
    let addrs = site.subscribe(400);
    let child = site
        .cmd()
        .args(["send", ISSUE])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_lines(&server.log, 40, Duration::from_secs(60));
    let st = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
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
