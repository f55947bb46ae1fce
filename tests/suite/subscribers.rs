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
    if s.state_url.is_none() {
        assert!(s.db().exists(), "database created on first use");
    }
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

#[test]
fn reactivate_bounce_and_the_history_they_leave() {
    let s = site();
    run_ok(
        &s,
        &["subscribers", "add", "ann@example.com", "--name", "Ann"],
    );
    let said = run_ok(
        &s,
        &[
            "subscribers",
            "bounce",
            "ann@example.com",
            "--reason",
            "550 no such user",
        ],
    );
    assert!(said.contains("bounced (was active)"), "{said}");
    // Neither add nor import brings it back ...
    run_ok(&s, &["subscribers", "add", "ann@example.com"]);
    assert_eq!(list(&s, Some("bounced")), "ann@example.com\tbounced\tAnn\n");
    // ... the operator's reactivate does, recorded with its reason.
    run_ok(
        &s,
        &[
            "subscribers",
            "reactivate",
            "ann@example.com",
            "--reason",
            "fixed her mailbox",
        ],
    );
    assert_eq!(list(&s, Some("active")), "ann@example.com\tactive\tAnn\n");
    let out = s
        .assert_cmd()
        .args(["subscribers", "list", "-v"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[1].contains("(new) -> active\tby operator"), "{out}");
    assert!(
        lines[2].contains("active -> bounced\tby operator\t550 no such user"),
        "{out}"
    );
    assert!(
        lines[3].contains("bounced -> active\tby operator\tfixed her mailbox"),
        "{out}"
    );

    // A complaint needs --force.
    import_text(&s, "email,status\nspam@example.com,complained\n", &[]).success();
    s.assert_cmd()
        .args(["subscribers", "reactivate", "spam@example.com"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--force"));
    run_ok(
        &s,
        &["subscribers", "reactivate", "spam@example.com", "--force"],
    );
    assert_eq!(
        s.store()
            .subscriber("spam@example.com")
            .unwrap()
            .unwrap()
            .status,
        techshack::store::SubscriberStatus::Active
    );
    s.assert_cmd()
        .args(["subscribers", "reactivate", "nobody@example.com"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("not on the subscriber list"));
}

/// Every cell of every table of the state file, as text.
fn every_cell(s: &TestSite) -> String {
    let list = if s.state_url.is_some() {
        "SELECT table_name FROM information_schema.tables
         WHERE table_schema = 'public' AND table_name <> 'techshack_schema'"
    } else {
        "SELECT name FROM sqlite_master WHERE type = 'table'"
    };
    let mut out = String::new();
    for t in s.rows(list, &[]) {
        let t = t[0].clone().unwrap();
        for row in s.rows(&format!("SELECT * FROM {t}"), &[]) {
            for v in row {
                out.push_str(&format!("{t}:{v:?}\n"));
            }
        }
    }
    out
}

#[test]
fn erase_leaves_no_trace_and_refuses_a_later_import_or_add() {
    let s = site();
    run_ok(
        &s,
        &[
            "subscribers",
            "add",
            "gone@example.com",
            "--name",
            "Gonzo Person",
        ],
    );
    run_ok(&s, &["subscribers", "add", "kept@example.com"]);
    run_ok(
        &s,
        &[
            "subscribers",
            "remove",
            "gone@example.com",
            "--reason",
            "asked",
        ],
    );
    s.sql(
        "INSERT INTO sends VALUES ('2024-01', '2024-01-01T00:00:00Z')",
        &[],
    );
    s.sql(
        "INSERT INTO deliveries (issue, address, name, state, updated_at) VALUES
           ('2024-01', 'gone@example.com', 'Gonzo Person', 'sent', '2024-01-01T00:00:00Z'),
           ('2024-01', 'kept@example.com', NULL, 'sent', '2024-01-01T00:00:00Z')",
        &[],
    );
    s.sql(
        "INSERT INTO serve_confirm_mails VALUES ('gone@example.com', 1)",
        &[],
    );
    assert!(every_cell(&s).contains("gone@example.com"));
    let said = run_ok(&s, &["subscribers", "erase", "GONE@example.com"]);
    assert!(said.contains("1 delivery row(s)"), "{said}");
    let cells = every_cell(&s);
    assert!(!cells.contains("gone@"), "{cells}");
    assert!(!cells.contains("Gonzo"), "{cells}");
    assert!(cells.contains("kept@example.com"), "{cells}");

    s.assert_cmd()
        .args(["subscribers", "add", "gone@example.com"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("double opt-in"));
    import_text(&s, "email\nnew@example.com\ngone@example.com\n", &[])
        .success()
        .stderr(
            predicate::str::contains("in.csv:3:1: warning: this address was erased")
                .and(predicate::str::contains("1 erased refused")),
        );
    assert!(!every_cell(&s).contains("gone@"));
    // Without the secret the hashes cannot be checked, so nothing is added blindly.
    s.assert_cmd()
        .env_remove("TECHSHACK_SECRET")
        .args(["subscribers", "add", "other@example.com"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("$TECHSHACK_SECRET"));
}

#[test]
fn an_erased_address_comes_back_only_through_double_opt_in() {
    use crate::support::serve::{link_in, post_form, Sink, PUBLIC_URL};
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(dir.path(), 0.0);
    let s = TestSite::for_serve(dir, sink.port, "", "");
    run_ok(&s, &["subscribers", "add", "back@example.net"]);
    run_ok(&s, &["subscribers", "erase", "back@example.net"]);
    let srv = s.serve();
    let r = post_form(&srv.url("/subscribe"), &[("email", "back@example.net")]);
    assert_eq!(r.status, 200, "{}", r.body);
    let msgs = sink.wait_for(1);
    let link = link_in(&msgs[0], &format!("{PUBLIC_URL}/confirm?"));
    let done = post_form(&srv.local(&link), &[]);
    assert!(done.body.contains("You are subscribed"), "{}", done.body);
    drop(srv);
    assert_eq!(list(&s, None), "back@example.net\tactive\t\n");
    // Confirmed again, the erasure no longer stands in the way.
    run_ok(&s, &["subscribers", "remove", "back@example.net"]);
    assert!(s.store().erased_hashes().unwrap().is_empty());
}

#[test]
fn ip_literal_domains_are_refused_with_their_line() {
    let s = site();
    s.assert_cmd()
        .args(["subscribers", "add", "a@[127.0.0.1]"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("IP-literal"));
    import_text(&s, "email\nok@example.com\nb@[192.0.2.1]\n", &[])
        .code(1)
        .stderr(
            predicate::str::contains("in.csv:3:1: error:")
                .and(predicate::str::contains("IP-literal")),
        );
}

#[test]
fn a_large_import_takes_linear_time() {
    // The line of every row was once counted from the start of the file: 50,000 rows took
    // minutes in a debug build. Counted as the reader moves on, they take seconds.
    let s = site();
    let mut csv = String::from("email,name\n");
    for i in 0..50_000 {
        csv.push_str(&format!("reader{i}@example{}.org,Reader {i}\n", i % 7));
    }
    csv.push_str("broken,row\n");
    let t = std::time::Instant::now();
    import_text(&s, &csv, &["--skip-invalid"])
        .success()
        .stderr(predicate::str::contains("in.csv:50002:1: warning:"));
    let took = t.elapsed();
    assert!(took < std::time::Duration::from_secs(30), "{took:?}");
    assert_eq!(
        s.store()
            .subscribers(Some(techshack::store::SubscriberStatus::Active))
            .unwrap()
            .len(),
        50_000
    );
}

#[test]
fn exports_of_other_services_and_other_delimiters_are_read() {
    let s = site();
    // Mailchimp: `Email Address`, `First Name`, `Last Name`; its cleaned export has CLEAN_TIME.
    import_text(
        &s,
        "\"Email Address\",\"First Name\",\"Last Name\",MEMBER_RATING,CLEAN_TIME\nmc@example.com,Mary,Chimp,2,\ngone@example.com,Gone,,1,2024-01-01 10:00:00\n",
        &[],
    )
    .success();
    // Semicolons (a European spreadsheet) and a listmonk status.
    import_text(
        &s,
        "uuid;email;name;attributes;status\nx;lm@example.com;List Monk;{};enabled\ny;bl@example.com;;{};blocklisted\n",
        &[],
    )
    .success();
    // Tabs, Buttondown's words.
    import_text(
        &s,
        "email\tnotes\tsubscriber_type\nbd@example.com\t\tregular\nun@example.com\t\tunsubscribed\n",
        &[],
    )
    .success();
    assert_eq!(
        list(&s, None),
        "bd@example.com\tactive\t\nbl@example.com\tunsubscribed\t\ngone@example.com\tbounced\tGone\nlm@example.com\tactive\tList Monk\nmc@example.com\tactive\tMary Chimp\nun@example.com\tunsubscribed\t\n"
    );
    import_text(&s, "email,status\nq@example.com,maybe\n", &[])
        .code(1)
        .stderr(predicate::str::contains(
            "in.csv:2:1: error: unknown status `maybe`",
        ));
}

#[test]
fn latin1_files_and_skipped_rows_say_what_to_do() {
    let s = site();
    import_text(
        &s,
        b"email,name\nok@example.com,Ok\nrene@example.com,Ren\xe9\n",
        &[],
    )
    .code(1)
    .stderr(
        predicate::str::contains("in.csv:3:").and(predicate::str::contains("save it as UTF-8")),
    );
    assert_eq!(list(&s, None), "");
    // With --skip-invalid a bad row is a warning, never an error.
    import_text(&s, "email\nok@example.com\nnope\n", &["--skip-invalid"])
        .success()
        .stderr(
            predicate::str::contains("in.csv:3:1: warning:")
                .and(predicate::str::contains("error:").not()),
        );
}

#[test]
fn export_neutralizes_formulas_and_imports_them_back_as_written() {
    let s = site();
    for (a, n) in [
        (
            "f1@example.com",
            "=HYPERLINK(\"https://evil.example\",\"x\")",
        ),
        ("f2@example.com", "+1+1"),
        ("f3@example.com", "-2"),
        ("f4@example.com", "@SUM(A1)"),
        ("f5@example.com", "'quoted"),
    ] {
        run_ok(&s, &["subscribers", "add", a, &format!("--name={n}")]);
    }
    let text = export(&s);
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    for rec in rdr.records() {
        let rec = rec.unwrap();
        for cell in rec.iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{cell:?} would run in a spreadsheet"
            );
        }
    }
    let other = site();
    import_text(&other, &text, &["--restore"]).success();
    assert_eq!(list(&other, None), list(&s, None));
}
