//! `techshack send` through a relay that refuses: a refusal that is not the recipients'
//! (the sender rejected, relaying denied) stops the send with nobody bounced, and after the
//! relay is mended `send` and `send --retry-failed` deliver to everyone exactly once.

use crate::support::smtp::{Server, ISSUE};
use crate::support::TestSite;
use serde_json::json;

fn url(server: &Server) -> String {
    format!("smtp://127.0.0.1:{}", server.port)
}

fn run(site: &TestSite, args: &[&str]) -> (i32, String) {
    let o = site.cmd().arg("send").args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn bounced(site: &TestSite) -> String {
    let o = site
        .cmd()
        .args(["subscribers", "list", "--status", "bounced"])
        .output()
        .unwrap();
    assert!(o.status.success());
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The relay mended: a new server without the faults (same log), and the config pointing
/// at it.
fn mend(tmp: &std::path::Path, site: &TestSite, faults: serde_json::Value) -> Server {
    let server = Server::start(tmp, faults);
    TestSite::write_send_config(&site.config, &url(&server), "");
    server
}

#[test]
fn a_relay_that_rejects_the_sender_stops_the_send_and_bounces_nobody() {
    let tmp = tempfile::tempdir().unwrap();
    let reply = "550 5.1.0 <digest@example.org>: Sender address rejected: User unknown in local recipient table";
    let server = Server::start(
        tmp.path(),
        json!({"reject": {"regex": ".", "reply": reply}}),
    );
    let site = TestSite::for_send(&url(&server), "");
    let addrs = site.subscribe(40);
    let (code, err) = run(&site, &[ISSUE]);
    assert_eq!(code, 1, "the operator must act: {err}");
    assert!(err.contains("stopped: 5 recipients in a row"), "{err}");
    assert!(err.contains("Sender address rejected"), "{err}");
    assert!(err.contains("check email.from"), "{err}");
    let st = site.status();
    assert_eq!(
        (st["pending"], st["failed"], st["sent"]),
        (40, 0, 0),
        "{st:?}"
    );
    assert_eq!(
        bounced(&site),
        "",
        "nobody is bounced for the sender's fault"
    );
    drop(server);

    let server = mend(tmp.path(), &site, json!({}));
    let (code, err) = run(&site, &[ISSUE]);
    assert_eq!(code, 0, "{err}");
    let (code, err) = run(&site, &[ISSUE, "--retry-failed"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("0 failed delivery(ies)"), "{err}");
    let got = server.counts();
    for a in &addrs {
        assert_eq!(got.get(a), Some(&1), "{a}");
    }
    assert_eq!(got.len(), 40);
    assert_eq!(site.status()["sent"], 40);
}

#[test]
fn a_relay_denial_stops_the_send_and_retry_failed_finishes_it_after_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let unknown_user = json!({"regex": "^user0003@", "reply": "550 5.1.1 <user0003@example.net>: Recipient address rejected: User unknown"});
    let server = Server::start(
        tmp.path(),
        json!({"reject": [
            unknown_user,
            {"regex": "^user0007@", "reply": "554 5.7.1 Message refused: content"},
            {"regex": "^user00[1-3][0-9]@", "reply": "554 5.7.1 <x@example.net>: Relay access denied"}
        ], "no_pipelining": true}),
    );
    // One session: the order of the replies is the order of the list.
    let site = TestSite::for_send(&url(&server), "concurrency = 1");
    let addrs = site.subscribe(40);
    let (code, err) = run(&site, &[ISSUE]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("Relay access denied"), "{err}");
    assert!(err.contains("mynetworks"), "{err}");
    let st = site.status();
    assert_eq!(
        (st["sent"], st["failed"], st["pending"]),
        (8, 2, 30),
        "{st:?}"
    );
    // Only the recipient whose mailbox does not exist is bounced.
    assert_eq!(bounced(&site), "user0003@example.net\tbounced\tUser 3\n");
    drop(server);

    let server = mend(tmp.path(), &site, json!({"reject": unknown_user}));
    let (code, err) = run(&site, &[ISSUE]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(site.status()["sent"], 38);
    let (code, err) = run(&site, &[ISSUE, "--retry-failed"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("1 failed delivery(ies)"), "{err}");
    let got = server.counts();
    for a in &addrs {
        let want = if a == "user0003@example.net" {
            None
        } else {
            Some(&1)
        };
        assert_eq!(got.get(a), want, "{a}");
    }
    let st = site.status();
    assert_eq!((st["sent"], st["failed"]), (39, 1), "{st:?}");
}

#[test]
fn a_transient_relay_denial_stops_with_75_and_the_threshold_is_configurable() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        tmp.path(),
        json!({"reject": {"regex": ".", "reply": "454 4.7.1 <x@example.net>: Relay access temporarily denied"}}),
    );
    let site = TestSite::for_send(&url(&server), "stop_after_refusals = 2\nconcurrency = 1");
    site.subscribe(10);
    let (code, err) = run(&site, &[ISSUE]);
    assert_eq!(code, 75, "{err}");
    assert!(err.contains("stopped: 2 recipients in a row"), "{err}");
    let st = site.status();
    assert_eq!((st["pending"], st["deferred"]), (10, 0), "{st:?}");
}

#[test]
fn retry_failed_needs_an_issue() {
    let site = TestSite::for_send("smtp://127.0.0.1:1", "");
    let (code, err) = run(&site, &["--latest", "--retry-failed"]);
    assert_eq!(code, 2, "{err}");
}

/// The rate the summary line reports (`(123 msg/s)`).
fn msg_per_s(err: &str) -> f64 {
    let end = err.find(" msg/s)").expect(err);
    let start = err[..end].rfind('(').expect(err) + 1;
    err[start..end].parse().unwrap()
}

/// One clean send and one with every tenth recipient greylisted once, run at the same time
/// (so that whatever else loads the machine loads both alike): their rates in msg/s.
fn clean_and_greylisted_rates(n: usize) -> (f64, f64) {
    let clean_tmp = tempfile::tempdir().unwrap();
    let clean_server = Server::start(clean_tmp.path(), json!({}));
    let clean = TestSite::for_send(&url(&clean_server), "rate = 500");
    clean.subscribe(n);
    let grey_tmp = tempfile::tempdir().unwrap();
    let grey_server = Server::start(
        grey_tmp.path(),
        json!({"tempfail": {"regex": "^user\\d{3}0@", "times": 1,
            "reply": "450 4.2.0 <x@example.net>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/example.net.html"}}),
    );
    let grey = TestSite::for_send(&url(&grey_server), "rate = 500");
    grey.subscribe(n);
    let spawn = |site: &TestSite| {
        site.cmd()
            .args(["send", ISSUE])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (c, g) = (spawn(&clean), spawn(&grey));
    let (c, g) = (c.wait_with_output().unwrap(), g.wait_with_output().unwrap());
    let (clean_err, err) = (
        String::from_utf8_lossy(&c.stderr).into_owned(),
        String::from_utf8_lossy(&g.stderr).into_owned(),
    );
    assert_eq!(c.status.code(), Some(0), "{clean_err}");
    assert_eq!(
        g.status.code(),
        Some(75),
        "the greylisted wait for a later run: {err}"
    );
    assert!(
        err.contains(&format!("sent {}, deferred {}", n * 9 / 10, n / 10)),
        "{err}"
    );
    (msg_per_s(&clean_err), msg_per_s(&err))
}

#[test]
fn greylisting_one_in_ten_leaves_the_others_at_the_clean_rate() {
    // Before, every deferral halved the pace of the whole send: the others crawled at a
    // fiftieth of the clean rate. On a loaded machine one round can be off by a fifth either
    // way, so the better of two rounds is judged.
    let mut best = 0.0f64;
    for _ in 0..2 {
        let (clean, grey) = clean_and_greylisted_rates(600);
        eprintln!("clean {clean:.0} msg/s, 10% greylisted: the others at {grey:.0} msg/s");
        best = best.max(grey / clean);
        if best >= 0.8 {
            break;
        }
    }
    assert!(best >= 0.8, "the other 90% at {best:.2} of the clean rate");
}

#[test]
fn a_domain_rate_from_the_config_paces_that_domain() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), json!({}));
    let site = TestSite::for_send(
        &url(&server),
        "rate = 5000\ndomains = { \"Example.NET\" = { rate = 10 } }",
    );
    site.subscribe(11);
    let t = std::time::Instant::now();
    let (code, err) = run(&site, &[ISSUE]);
    assert_eq!(code, 0, "{err}");
    assert!(
        t.elapsed() >= std::time::Duration::from_millis(950),
        "11 messages at 10 a second take a second: {:?}",
        t.elapsed()
    );
    let site = TestSite::for_send(&url(&server), "domains = { \"x.org\" = { rate = 0 } }");
    let (code, err) = run(&site, &[ISSUE]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("smtp.domains `x.org`: rate must be a positive"),
        "{err}"
    );
}

#[test]
fn a_send_to_nobody_records_nothing_and_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), json!({}));
    let site = TestSite::for_send(&url(&server), "");
    let (code, err) = run(&site, &[ISSUE]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("no active subscriber: nothing sent, nothing recorded"),
        "{err}"
    );
    site.assert_no_send();
    let (code, err) = run(&site, &["--latest"]);
    assert_eq!(code, 1, "{err}");
    site.assert_no_send();
    // Subscribers who arrive later get the issue.
    let addrs = site.subscribe(3);
    let (code, err) = run(&site, &["--latest"]);
    assert_eq!(code, 0, "{err}");
    let got = server.counts();
    for a in &addrs {
        assert_eq!(got.get(a), Some(&1), "{a}");
    }
}

#[test]
fn an_empty_send_an_earlier_version_recorded_does_not_close_the_issue() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), json!({}));
    let site = TestSite::for_send(&url(&server), "");
    site.subscribe(2);
    drop(site.store());
    site.sql(
        "INSERT INTO sends (issue, snapshot_at) VALUES (?1, '2026-11-21T00:00:00Z')",
        &[ISSUE],
    );
    let (code, err) = run(&site, &[ISSUE]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("2 subscriber(s) snapshotted; this run sent 2"),
        "{err}"
    );
    assert_eq!(server.counts().len(), 2);
}

#[test]
fn reply_text_is_stored_and_printed_without_escapes() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        tmp.path(),
        json!({"reject": {"regex": "^user0001@", "reply": "550 5.1.1 \u{1b}[2J\u{1b}]0;owned\u{7}gone\u{1b}[0m"}}),
    );
    let site = TestSite::for_send(&url(&server), "");
    site.subscribe(3);
    let (code, err) = run(&site, &[ISSUE]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains('\u{1b}'), "{err:?}");
    let csv = site.status_csv();
    assert_eq!(csv.len(), 1);
    assert_eq!(csv[0].2, "550 5.1.1 gone");
}

#[test]
fn a_relay_that_echoes_the_auth_exchange_gets_neither_printed() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        tmp.path(),
        json!({"auth": {"user": "bob", "password": "correct horse", "echo": true}}),
    );
    let site = TestSite::for_send(&url(&server), "username = \"bob\"");
    site.subscribe(2);
    let o = site
        .cmd()
        .args(["send", ISSUE])
        .env("TECHSHACK_SMTP_PASSWORD", "wrong-battery-staple")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("authentication as `bob` refused"), "{err}");
    assert!(
        err.contains("Authentication failed for password ***: AUTH ***"),
        "{err}"
    );
    assert!(!err.contains("wrong-battery-staple"), "{err}");
    assert!(!err.contains("AGJvYgB3cm9uZy1iYXR0ZXJ5LXN0YXBsZQ"), "{err}");
    assert!(!err.contains('\u{1b}'), "{err:?}");
}

/// Puts `a@[127.0.0.1]` in the state as an active subscriber, as earlier versions of import let
/// it in.
fn add_ip_literal(site: &TestSite) {
    drop(site.store());
    site.sql(
        "INSERT INTO subscribers (address, status, added_at, updated_at)
         VALUES ('a@[127.0.0.1]', 'active', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
        &[],
    );
}

#[test]
fn dry_run_writes_one_file_per_address_and_fails_only_the_unroutable_one() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), json!({}));
    let site = TestSite::for_send(&url(&server), "");
    let addrs = [
        "a=b@x.org",
        "a_b@x.org",
        "a&b@x.org",
        "a+b@x.org",
        "a.b@x.org",
        "a-b@x.org",
        "a'b@x.org",
        "a!b@x.org",
        "a#b@x.org",
        "a$b@x.org",
        "a*b@x.org",
        "a/b@x.org",
        "a?b@x.org",
        "a^b@x.org",
        "a{b@x.org",
        "a|b@x.org",
        "a~b@x.org",
        "josé@bücher.example",
        "jose@bücher.example",
    ];
    let mut csv = String::from("email\n");
    for a in addrs {
        csv.push_str(a);
        csv.push('\n');
    }
    std::fs::write(site.path("subs.csv"), csv).unwrap();
    site.assert_cmd()
        .args(["subscribers", "import"])
        .arg(site.path("subs.csv"))
        .assert()
        .success();
    let active = site.store().subscribers(None).unwrap().len();
    assert_eq!(active, addrs.len());
    add_ip_literal(&site);
    let out = site.path("eml");
    let o = site
        .cmd()
        .args(["send", ISSUE, "--dry-run"])
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("a@[127.0.0.1]`: has an IP address for a domain")
            || err.contains("`a@[127.0.0.1]` has an IP address for a domain"),
        "{err}"
    );
    let files = std::fs::read_dir(&out).unwrap().count();
    assert_eq!(files, active, "one file per address: {err}");
    assert!(err.contains(&format!("wrote {active} message(s)")), "{err}");
}

#[test]
fn a_real_send_fails_only_the_unroutable_row() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), json!({}));
    let site = TestSite::for_send(&url(&server), "");
    site.subscribe(3);
    add_ip_literal(&site);
    let (code, err) = run(&site, &[ISSUE]);
    assert_eq!(code, 0, "{err}");
    let st = site.status();
    assert_eq!((st["sent"], st["failed"]), (3, 1), "{st:?}");
    let csv = site.status_csv();
    assert!(csv[0].2.contains("an address literal"), "{csv:?}");
    assert_eq!(bounced(&site), "");
}
