//! `techshack state copy --to`: a state with every kind of row (subscribers in every status,
//! their history, an erased address, a send with rows sent, deferred and failed, returned
//! mail, queued confirmation mails) moves from its SQLite file into a real PostgreSQL database
//! and back into a new SQLite file, and reads the same through every command on all three.

use std::path::Path;
use std::process::{Command, Output};

use crate::inbound::{add_email_lines, dsn_to, RETURN_PATH};
use crate::support::smtp::{Server, ISSUE};
use crate::support::{output_with_stdin, pg, TestSite, SECRET};
use serde_json::json;

/// Where a command finds its state: the site's SQLite file, a database, or another file.
#[derive(Clone, Copy)]
enum Side<'a> {
    Site,
    Pg(&'a str),
    /// A configuration naming another SQLite file.
    Config(&'a Path),
}

fn on(site: &TestSite, side: Side<'_>) -> Command {
    let mut c = site.cmd();
    c.env_remove("TECHSHACK_STATE_URL");
    match side {
        Side::Site => {}
        Side::Pg(url) => {
            c.env("TECHSHACK_STATE_URL", url);
        }
        Side::Config(config) => {
            c.env("TECHSHACK_CONFIG", config);
        }
    }
    c
}

fn run(site: &TestSite, side: Side<'_>, args: &[&str], stdin: &[u8]) -> Output {
    let mut c = on(site, side);
    c.args(args);
    output_with_stdin(c, stdin)
}

/// Runs a command that must succeed (exit 0, or 75 for a send that left rows deferred).
fn ok(site: &TestSite, side: Side<'_>, args: &[&str]) -> String {
    let o = run(site, side, args, b"");
    assert!(
        matches!(o.status.code(), Some(0 | 75)),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new(pg::server_bin_dir().join("psql"))
        .args([url, "-XqtA", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql runs");
    assert!(out.status.success(), "psql: {}", stderr(&out));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn sqlite_rows(db: &Path, sql: &str) -> String {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut st = c.prepare(sql).unwrap();
    let n = st.column_count();
    let rows = st
        .query_map([], |r| {
            (0..n)
                .map(|i| {
                    Ok(match r.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => String::new(),
                        rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                        v => v.as_str().unwrap().to_string(),
                    })
                })
                .collect::<rusqlite::Result<Vec<_>>>()
                .map(|v| v.join("|"))
        })
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap();
    rows.join("\n")
}

const DELIVERIES: &str = "SELECT id, address, state, attempts FROM deliveries ORDER BY id";

/// The per-table lines of a copy: every table of the state, each equal on both sides and,
/// as the state was made, none empty.
fn assert_counts_equal(stdout: &str) {
    let tables: Vec<&str> = stdout
        .lines()
        .map(|l| {
            let parts: Vec<&str> = l.split(' ').collect();
            assert_eq!(parts.len(), 4, "{l}");
            assert_eq!((parts[2], parts[1]), ("=", parts[3]), "{l}");
            assert_ne!(parts[1], "0", "{l}: the test state fills every table");
            parts[0]
        })
        .collect();
    assert_eq!(
        tables,
        [
            "subscribers",
            "sends",
            "deliveries",
            "subscriber_events",
            "erased_addresses",
            "serve_confirm_mails",
            "inbound_messages",
            "soft_bounces",
            "confirm_queue"
        ]
    );
}

/// The site after a send through a server that defers one address and refuses another, then
/// an unsubscribe, a bounce, an erasure, a pending and a complained import, a delayed report
/// by mail, and rows of serve's confirmation-mail queue.
fn filled_site(tmp: &Path) -> (Server, TestSite) {
    let server = Server::start(
        tmp,
        json!({"tempfail": {"regex": "^user0001@", "times": 99, "reply": "451 4.3.0 Try later"},
               "reject": {"regex": "^user0002@", "reply": "550 5.1.1 no such user"}}),
    );
    let site = TestSite::for_send(&format!("smtp://127.0.0.1:{}", server.port), "");
    add_email_lines(&site, RETURN_PATH);
    let addrs = site.subscribe(6);
    ok(&site, Side::Site, &["send", ISSUE]);
    ok(
        &site,
        Side::Site,
        &["subscribers", "remove", &addrs[3], "--reason", "asked"],
    );
    ok(
        &site,
        Side::Site,
        &["subscribers", "bounce", &addrs[4], "--reason", "gone"],
    );
    ok(&site, Side::Site, &["subscribers", "erase", &addrs[5]]);
    let csv = site.path("more.csv");
    std::fs::write(
        &csv,
        "email,name,status\npend@example.net,=Pending,pending\ncompl@example.net,Cé,complained\n",
    )
    .unwrap();
    ok(
        &site,
        Side::Site,
        &["subscribers", "import", csv.to_str().unwrap()],
    );
    // A delay reported by mail for the first address, to its delivery's VERP return path.
    let o = run(
        &site,
        Side::Site,
        &["inbound"],
        &dsn_to(
            &verp(&site.db(), &addrs[0]),
            "d1",
            &addrs[0],
            "4.2.2",
            "452 4.2.2 mailbox full",
            false,
        ),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let c = rusqlite::Connection::open(site.db()).unwrap();
    c.execute_batch(
        "INSERT INTO serve_confirm_mails VALUES ('pend@example.net', 1763625000);
         INSERT INTO confirm_queue VALUES ('pend@example.net', 'confirm', '=Pending', 1763625000,
             1763711400, 2, 1763625600, '421 4.3.2 busy');
         INSERT INTO confirm_queue VALUES ('user0000@example.net', 'welcome', NULL, 1763625000,
             1763711400, 0, 1763625000, NULL);",
    )
    .unwrap();
    (server, site)
}

/// The VERP return path of `address`'s delivery in the SQLite state `db`.
fn verp(db: &Path, address: &str) -> String {
    let id: i64 = sqlite_rows(
        db,
        &format!("SELECT id FROM deliveries WHERE address = '{address}'"),
    )
    .parse()
    .unwrap();
    techshack::mail::verp::address(
        "bounces+{token}@example.org",
        SECRET.as_bytes(),
        id,
        address,
    )
}

/// What every command that reads the list shows of a state.
fn views(site: &TestSite, side: Side<'_>) -> Vec<String> {
    let csv = site.path("status.csv");
    let _ = std::fs::remove_file(&csv);
    let counts = ok(
        site,
        side,
        &["status", ISSUE, "--csv", csv.to_str().unwrap()],
    );
    vec![
        ok(site, side, &["subscribers", "export"]),
        ok(site, side, &["subscribers", "list"]),
        ok(site, side, &["status"]),
        counts,
        std::fs::read_to_string(&csv).unwrap(),
    ]
}

#[test]
fn a_state_moves_to_postgres_and_back_and_reads_the_same_on_all_three() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, site) = filled_site(tmp.path());
    let before = views(&site, Side::Site);
    assert!(before[0].contains("erased:"), "{}", before[0]);
    assert!(
        before[3].starts_with("pending 0\nin_flight 0\nsent 3\ndeferred 1\nfailed 1\n"),
        "{}",
        before[3]
    );
    let url = pg::database_url();

    let o = run(&site, Side::Site, &["state", "copy", "--to", &url], b"");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_counts_equal(&String::from_utf8_lossy(&o.stdout));
    assert!(stderr(&o).contains("[state]"), "{}", stderr(&o));
    assert_eq!(views(&site, Side::Pg(&url)), before);
    let lite_ids = sqlite_rows(&site.db(), DELIVERIES);
    assert_eq!(psql(&url, DELIVERIES), lite_ids);

    // And back, into a new SQLite file that another configuration names.
    let back_db = site.path("back/state.sqlite3");
    let back_config = site.path("back.toml");
    std::fs::write(
        &back_config,
        std::fs::read_to_string(&site.config)
            .unwrap()
            .replace("state/techshack.sqlite3", back_db.to_str().unwrap()),
    )
    .unwrap();
    let o = run(
        &site,
        Side::Pg(&url),
        &["state", "copy", "--to", back_db.to_str().unwrap()],
        b"",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_counts_equal(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(views(&site, Side::Config(&back_config)), before);
    assert_eq!(sqlite_rows(&back_db, DELIVERIES), lite_ids);

    // A report returned to a VERP address mailed from the SQLite state finds its delivery in
    // the database: user0000 bounces there, and only there.
    let report = dsn_to(
        &verp(&site.db(), "user0000@example.net"),
        "b1",
        "someone@forwarded.example",
        "5.1.1",
        "550 5.1.1 unknown",
        false,
    );
    let o = run(&site, Side::Pg(&url), &["inbound", "-v"], &report);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let status = |side| {
        ok(&site, side, &["subscribers", "list", "--status", "bounced"])
            .contains("user0000@example.net")
    };
    assert!(status(Side::Pg(&url)), "{}", stderr(&o));
    assert!(!status(Side::Site));
    // Rows added to the copy get new ids, past the copied ones.
    ok(
        &site,
        Side::Pg(&url),
        &["subscribers", "add", "new@example.net"],
    );
    let max: i64 = psql(&url, "SELECT max(id) FROM subscriber_events")
        .parse()
        .unwrap();
    let copied: i64 = sqlite_rows(&site.db(), "SELECT max(id) FROM subscriber_events")
        .parse()
        .unwrap();
    assert!(max > copied, "{max} {copied}");
}

#[test]
fn a_target_with_rows_the_state_itself_and_bad_urls_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, site) = filled_site(tmp.path());
    let url = pg::database_url();
    ok(
        &site,
        Side::Pg(&url),
        &["subscribers", "add", "kept@example.net"],
    );
    let target_before = ok(&site, Side::Pg(&url), &["subscribers", "export"]);
    let o = run(&site, Side::Site, &["state", "copy", "--to", &url], b"");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "{url} is not empty (its subscribers table holds rows)"
        )),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        ok(&site, Side::Pg(&url), &["subscribers", "export"]),
        target_before
    );
    assert!(o.stdout.is_empty());

    // The state itself, by another path.
    let db = site.db();
    let other_path = db.parent().unwrap().join("../state/techshack.sqlite3");
    let o = run(
        &site,
        Side::Site,
        &["state", "copy", "--to", other_path.to_str().unwrap()],
        b"",
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is the configured state itself"),
        "{}",
        stderr(&o)
    );

    // A server that is not there, and a URL of another engine: named, password hidden.
    for (to, says) in [
        (
            "postgres://news:s3cret@127.0.0.1:1/list".to_string(),
            "postgres://news:***@127.0.0.1:1/list",
        ),
        (
            "mysql://news:s3cret@db.example/list".to_string(),
            "not a postgres:// URL",
        ),
    ] {
        let o = run(&site, Side::Site, &["state", "copy", "--to", &to], b"");
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains(says) && !err.contains("s3cret"), "{err}");
    }
    // Nothing to copy without a state file.
    let empty =
        TestSite::new().config("[site]\ntitle = \"T\"\nbase_url = \"https://example.org\"\n");
    let o = run(&empty, Side::Site, &["state", "copy", "--to", &url], b"");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("nothing to copy"), "{}", stderr(&o));
}

#[test]
fn a_send_at_work_on_the_source_is_refused_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, site) = filled_site(tmp.path());
    let url = pg::database_url();
    // A send on the SQLite state holds its send lock.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(site.path("state/techshack.sqlite3.lock"))
        .unwrap();
    fs4::fs_std::FileExt::try_lock_exclusive(&lock).unwrap();
    let o = run(&site, Side::Site, &["state", "copy", "--to", &url], b"");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("another `techshack send` is running"),
        "{}",
        stderr(&o)
    );
    drop(lock);
    // Nothing written: the database has no schema yet, and takes the copy now.
    assert_eq!(
        psql(
            &url,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        "0"
    );
    let o = run(&site, Side::Site, &["state", "copy", "--to", &url], b"");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // A row a stopped send left in flight is copied as it is, with a warning, and the next
    // send on the copy reports it unknown (and does not send it again). The killed send's
    // lease has not run out yet, but on SQLite its free send lock says it is gone.
    rusqlite::Connection::open(site.db())
        .unwrap()
        .execute_batch(
            "INSERT INTO send_workers (issue, host, pid, started_at, lease_until)
                 VALUES ('2026-11-20', 'here', 1, 0, CAST(strftime('%s', 'now') AS INTEGER) + 600);
             UPDATE deliveries SET state = 'in_flight', worker = last_insert_rowid()
                 WHERE address = 'user0003@example.net';",
        )
        .unwrap();
    let moved_db = site.path("moved.sqlite3");
    let moved = Side::Config(&site.path("moved.toml"));
    std::fs::write(
        site.path("moved.toml"),
        std::fs::read_to_string(&site.config)
            .unwrap()
            .replace("state/techshack.sqlite3", moved_db.to_str().unwrap()),
    )
    .unwrap();
    let o = run(
        &site,
        Side::Site,
        &["state", "copy", "--to", moved_db.to_str().unwrap()],
        b"",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o)
            .contains("warning: 1 row(s) of 2026-11-20 are in flight from a send that stopped"),
        "{}",
        stderr(&o)
    );
    assert!(ok(&site, moved, &["status", ISSUE]).contains("in_flight 1\n"));
    let sent_before = server.counts().get("user0003@example.net").copied();
    ok(&site, moved, &["send", ISSUE]);
    let status = ok(&site, moved, &["status", ISSUE]);
    assert!(
        status.contains("in_flight 0\n") && status.contains("unknown 1\n"),
        "{status}"
    );
    assert_eq!(
        server.counts().get("user0003@example.net").copied(),
        sent_before
    );

    // A sender with a live lease on a database refuses a copy out of it.
    psql(
        &url,
        "INSERT INTO send_workers (issue, host, pid, started_at, lease_until)
         VALUES ('2026-11-20', 'elsewhere', 1, 0, extract(epoch FROM now())::bigint + 600)",
    );
    let back = site.path("back.sqlite3");
    let o = run(
        &site,
        Side::Pg(&url),
        &["state", "copy", "--to", back.to_str().unwrap()],
        b"",
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("a `techshack send` is running on"),
        "{}",
        stderr(&o)
    );
    assert!(!back.exists(), "the target is not even created");
}
