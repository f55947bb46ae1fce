//! `techshack status`: the exact lines SPEC "Sending" gives, and the CSV of rows not sent.

use crate::support::smtp::{Server, ISSUE};
use crate::support::TestSite;
use serde_json::json;

#[test]
fn status_prints_every_state_in_order_and_the_csv_lists_rows_not_sent() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        tmp.path(),
        json!({
            "tempfail": {"regex": "^user0001@", "times": 9, "reply": "452 4.2.2 Mailbox full"},
            "reject": {"regex": "^user0002@", "reply": "550 5.1.1 \"no\", such user"}
        }),
    );
    let site = TestSite::for_send(&format!("smtp://127.0.0.1:{}", server.port), "");
    site.subscribe(10);
    site.assert_cmd().args(["send", ISSUE]).assert().code(75);
    site.assert_cmd()
        .args(["status", ISSUE])
        .assert()
        .success()
        .stdout("pending 0\nin_flight 0\nsent 8\ndeferred 1\nfailed 1\nunknown 0\nskipped 0\ntotal 10\n");
    site.assert_cmd()
        .arg("status")
        .assert()
        .success()
        .stdout(format!(
        "{ISSUE} pending 0 in_flight 0 sent 8 deferred 1 failed 1 unknown 0 skipped 0 total 10\n"
    ));
    let f = site.path("out/report.csv");
    std::fs::create_dir_all(f.parent().unwrap()).unwrap();
    site.assert_cmd()
        .args(["status", ISSUE, "--csv"])
        .arg(&f)
        .assert()
        .success();
    let text = std::fs::read_to_string(&f).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("address,state,attempts,last_reply,updated_at")
    );
    let mut r = csv::Reader::from_path(&f).unwrap();
    let rows: Vec<Vec<String>> = r
        .records()
        .map(|x| x.unwrap().iter().map(str::to_string).collect())
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert_eq!(
        &rows[0][..4],
        [
            "user0001@example.net",
            "deferred",
            "1",
            "452 4.2.2 Mailbox full"
        ]
    );
    assert_eq!(
        &rows[1][..4],
        [
            "user0002@example.net",
            "failed",
            "1",
            "550 5.1.1 \"no\", such user"
        ]
    );
    for row in &rows {
        assert!(
            chrono::DateTime::parse_from_rfc3339(&row[4]).is_ok(),
            "updated_at {:?}",
            row[4]
        );
    }
}

#[test]
fn csv_needs_an_issue() {
    let site = TestSite::for_send("smtp://127.0.0.1:1", "");
    site.assert_cmd()
        .args(["status", "--csv", "x.csv"])
        .assert()
        .code(2);
}

#[test]
fn an_issue_never_sent_is_an_error_and_looking_creates_no_state_file() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), json!({}));
    let site = TestSite::for_send(&format!("smtp://127.0.0.1:{}", server.port), "");
    // No state file at all.
    site.assert_cmd()
        .arg("status")
        .assert()
        .success()
        .stdout("")
        .stderr(predicates::str::contains("nothing sent yet"));
    site.assert_cmd()
        .args(["status", "nosuch"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicates::str::contains("no send recorded for nosuch"));
    assert!(!site.db().exists(), "status created the state file");
    assert!(
        !site.path("state").exists(),
        "status created the state folder"
    );

    // A state file with subscribers but no send yet.
    site.subscribe(3);
    site.assert_cmd()
        .arg("status")
        .assert()
        .success()
        .stdout("")
        .stderr(predicates::str::contains("nothing sent yet"));
    site.assert_cmd()
        .args(["status", ISSUE])
        .assert()
        .code(1)
        .stderr(predicates::str::contains(format!(
            "no send recorded for {ISSUE}"
        )));

    // After a send: the issue has its counts, a typo is still an error.
    site.assert_cmd().args(["send", ISSUE]).assert().success();
    site.assert_cmd()
        .args(["status", ISSUE])
        .assert()
        .success()
        .stdout(
            "pending 0\nin_flight 0\nsent 3\ndeferred 0\nfailed 0\nunknown 0\nskipped 0\ntotal 3\n",
        );
    site.assert_cmd()
        .args(["status", "2026-11-02"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicates::str::contains("no send recorded for 2026-11-02"));
    site.assert_cmd()
        .args(["status", "nosuch", "--csv", "x.csv"])
        .assert()
        .code(1);
    assert!(!site.path("x.csv").exists());
}
