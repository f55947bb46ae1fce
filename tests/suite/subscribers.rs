//! `techshack subscribers` over the real binary and a real SQLite file.

use crate::support::TestSite;
use predicates::prelude::*;

fn site() -> TestSite {
    TestSite::for_send("smtp://127.0.0.1:1", "")
}

fn list(s: &TestSite, status: Option<&str>) -> String {
    let mut c = s.assert_cmd();
    c.args(["subscribers", "list"]);
    if let Some(st) = status {
        c.args(["--status", st]);
    }
    String::from_utf8(c.assert().success().get_output().stdout.clone()).unwrap()
}

#[test]
fn import_normalizes_merges_and_creates_the_state_folder() {
    let s = site();
    assert!(!s.path("state").exists());
    let f = s.path("in.csv");
    std::fs::write(
        &f,
        "\u{feff}Name,Email,extra\n\"Lee, Ann\", Ann@Example.COM ,x\nBo,bo@example.org,\n,ann@example.com,\n\n",
    )
    .unwrap();
    s.assert_cmd()
        .args(["subscribers", "import"])
        .arg(&f)
        .assert()
        .success()
        .stderr(predicate::str::contains("2 added").and(predicate::str::contains("1 duplicate")));
    assert!(s.db().exists(), "database created on first use");
    assert_eq!(
        list(&s, None),
        "ann@example.com\tactive\tLee, Ann\nbo@example.org\tactive\tBo\n"
    );
}

#[test]
fn a_bad_row_imports_nothing_and_names_its_line() {
    let s = site();
    let f = s.path("in.csv");
    std::fs::write(
        &f,
        "email,name\ngood@example.com,G\nnot-an-address,N\nx@example.com\r\nBcc: y@example.com,Z\n",
    )
    .unwrap();
    s.assert_cmd()
        .args(["subscribers", "import"])
        .arg(&f)
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("in.csv:3:1: error:")
                .and(predicate::str::contains("not-an-address"))
                .and(predicate::str::contains("in.csv:5:1: error:"))
                .and(predicate::str::contains("nothing imported")),
        );
    assert_eq!(list(&s, None), "");
    s.assert_cmd()
        .args(["subscribers", "import", "--skip-invalid"])
        .arg(&f)
        .assert()
        .success();
    assert_eq!(
        list(&s, None),
        "good@example.com\tactive\tG\nx@example.com\tactive\t\n"
    );
}

#[test]
fn missing_email_column_is_an_error() {
    let s = site();
    let f = s.path("in.csv");
    std::fs::write(&f, "mail,name\na@example.com,A\n").unwrap();
    s.assert_cmd()
        .args(["subscribers", "import"])
        .arg(&f)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no `email` column"));
}

#[test]
fn unsubscribed_and_bounced_are_never_reactivated() {
    let s = site();
    s.assert_cmd()
        .args(["subscribers", "add", "Ann@example.com", "--name", "Ann"])
        .assert()
        .success();
    s.assert_cmd()
        .args(["subscribers", "remove", "ann@EXAMPLE.com"])
        .assert()
        .success();
    s.assert_cmd()
        .args(["subscribers", "add", "ann@example.com"])
        .assert()
        .success()
        .stderr(predicate::str::contains("unsubscribed and stays so"));
    let f = s.path("in.csv");
    std::fs::write(&f, "email\nann@example.com\nnew@example.com\n").unwrap();
    s.assert_cmd()
        .args(["subscribers", "import"])
        .arg(&f)
        .assert()
        .success()
        .stderr(predicate::str::contains("1 kept unsubscribed or bounced"));
    assert_eq!(
        list(&s, Some("unsubscribed")),
        "ann@example.com\tunsubscribed\tAnn\n"
    );
    assert_eq!(list(&s, Some("active")), "new@example.com\tactive\t\n");
    s.assert_cmd()
        .args(["subscribers", "remove", "nobody@example.com"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("not on the subscriber list"));
    s.assert_cmd()
        .args(["subscribers", "list", "--status", "gone"])
        .assert()
        .code(2) // a usage error, reported by the argument parser
        .stderr(predicate::str::contains("unknown subscriber status"));
    s.assert_cmd()
        .args(["subscribers", "add", "no at sign"])
        .assert()
        .code(1);
}

#[test]
fn export_round_trips_through_import() {
    let s = site();
    s.assert_cmd()
        .args([
            "subscribers",
            "add",
            "a@example.com",
            "--name",
            "Quote \"Q\", Comma",
        ])
        .assert()
        .success();
    s.assert_cmd()
        .args(["subscribers", "add", "b@example.com"])
        .assert()
        .success();
    s.assert_cmd()
        .args(["subscribers", "remove", "b@example.com"])
        .assert()
        .success();
    let out = s
        .assert_cmd()
        .args(["subscribers", "export"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with("email,name,status,added_at,updated_at,reason,history\n"),
        "{text}"
    );
    assert!(
        text.contains("a@example.com,\"Quote \"\"Q\"\", Comma\",active,"),
        "{text}"
    );
    let other = site();
    let f = other.path("export.csv");
    std::fs::write(&f, &text).unwrap();
    other
        .assert_cmd()
        .args(["subscribers", "import"])
        .arg(&f)
        .assert()
        .success();
    // The unsubscribe travels with the file: a move never re-subscribes anyone.
    assert_eq!(
        list(&other, None),
        "a@example.com\tactive\tQuote \"Q\", Comma\nb@example.com\tunsubscribed\t\n"
    );
}

fn export(s: &TestSite) -> String {
    let out = s
        .assert_cmd()
        .args(["subscribers", "export"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap()
}

fn run_ok(s: &TestSite, args: &[&str]) -> String {
    let out = s.assert_cmd().args(args).assert().success();
    String::from_utf8(out.get_output().stderr.clone()).unwrap()
}

fn import_text(s: &TestSite, text: impl AsRef<[u8]>, extra: &[&str]) -> assert_cmd::assert::Assert {
    let f = s.path("in.csv");
    std::fs::write(&f, text).unwrap();
    s.assert_cmd()
        .args(["subscribers", "import"])
        .args(extra)
        .arg(&f)
        .assert()
}

/// A list holding every status, a reason, a history and an erased address.
fn mixed_list() -> TestSite {
    let s = site();
    import_text(
        &s,
        "email,name,status,reason\nact@example.com,Act,,\nspam@example.com,,complained,feedback loop\n",
        &[],
    )
    .success();
    run_ok(
        &s,
        &[
            "subscribers",
            "add",
            "unsub@example.com",
            "--name",
            "=HYPERLINK(\"http://evil\")",
        ],
    );
    run_ok(
        &s,
        &[
            "subscribers",
            "remove",
            "unsub@example.com",
            "--reason",
            "asked by mail",
        ],
    );
    run_ok(&s, &["subscribers", "add", "bounce@example.com"]);
    run_ok(
        &s,
        &[
            "subscribers",
            "bounce",
            "bounce@example.com",
            "--reason",
            "550 5.1.1 no such user",
        ],
    );
    s.store()
        .add_pending("pend@example.com", Some("Pat"))
        .unwrap();
    run_ok(&s, &["subscribers", "add", "gone@example.com"]);
    run_ok(&s, &["subscribers", "erase", "gone@example.com"]);
    s
}

#[test]
fn a_restore_reproduces_the_export_and_an_import_never_reactivates() {
    let s = mixed_list();
    let text = export(&s);
    assert!(!text.contains("gone@example.com"), "{text}");
    assert!(text.contains(",erased,"), "{text}");
    assert!(
        text.contains("'=HYPERLINK"),
        "a formula is neutralized for spreadsheets: {text}"
    );
    assert!(text.contains("550 5.1.1 no such user"), "{text}");

    // A plain import into a new state keeps every suppression.
    let plain = site();
    import_text(&plain, &text, &[]).success();
    assert_eq!(
        list(&plain, None),
        "act@example.com\tactive\tAct\nbounce@example.com\tbounced\t\npend@example.com\tpending\tPat\nspam@example.com\tcomplained\t\nunsub@example.com\tunsubscribed\t=HYPERLINK(\"http://evil\")\n"
    );
    // ... and refuses the erased address.
    plain
        .assert_cmd()
        .args(["subscribers", "add", "gone@example.com"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("erased"));

    // A restore reproduces the file byte for byte.
    let restored = site();
    import_text(&restored, &text, &["--restore"]).success();
    assert_eq!(export(&restored), text);
    // Only into an empty state.
    import_text(&restored, &text, &["--restore"])
        .code(1)
        .stderr(predicate::str::contains("is not empty"));
    // An import of the export over the old list changes nothing either.
    import_text(&s, &text, &[]).success();
    assert_eq!(list(&s, Some("active")), "act@example.com\tactive\tAct\n");
}
