//! Every table of the state file, as one numbered list of migrations, and the code that
//! brings a state file of any earlier schema up to the current one.

use std::path::Path;

use anyhow::{Context, Result};
use rusqlite::Connection;

/// Each entry moves the schema from version `i` to `i + 1`; never edit one that shipped.
pub(crate) const MIGRATIONS: &[&str] = &[
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
"#,
    // When a delivery was first handed to the server (Unix seconds): `smtp.max_age_hours`
    // counts from here. Rows of an earlier schema that were attempted get their send's
    // snapshot time, the latest moment known to precede their first attempt, so the cap can
    // only come early for them, by at most the length of that first run.
    r#"
ALTER TABLE deliveries ADD COLUMN first_attempt_at INTEGER;
UPDATE deliveries SET first_attempt_at =
    (SELECT CAST(strftime('%s', s.snapshot_at) AS INTEGER) FROM sends s
     WHERE s.issue = deliveries.issue)
WHERE attempts > 0 OR state IN ('in_flight', 'sent', 'failed', 'unknown');
"#,
    // When a confirmation mail last went to an address (`serve`). Earlier versions created
    // this table on `serve` start, outside the numbered list, so a schema 2 file may have it
    // already, with rows worth keeping: hence IF NOT EXISTS.
    r#"
CREATE TABLE IF NOT EXISTS serve_confirm_mails (
    address      TEXT PRIMARY KEY,
    last_sent_at INTEGER NOT NULL
);
"#,
    // A fifth status (`complained`), the reason of the latest change, every change of status
    // with when, how and why, and the keyed hashes of erased addresses. SQLite cannot change
    // a CHECK constraint in place, so the subscriber table is rebuilt, keyed by the address
    // alone (WITHOUT ROWID: one B-tree to write per row, not two). The history has no index
    // by address: it is read whole (export, `list -v`) and an erasure may scan it. The checks
    // are written with OR, not IN: SQLite builds a temporary table for an IN list on every
    // row written, which was a third of a large import's time.
    r#"
CREATE TABLE subscribers_rebuilt (
    address    TEXT PRIMARY KEY,
    name       TEXT,
    status     TEXT NOT NULL
               CHECK (status = 'pending' OR status = 'active' OR status = 'unsubscribed'
                      OR status = 'bounced' OR status = 'complained'),
    added_at   TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    reason     TEXT
) WITHOUT ROWID;
INSERT INTO subscribers_rebuilt (address, name, status, added_at, updated_at)
    SELECT address, name, status, added_at, updated_at FROM subscribers;
DROP TABLE subscribers;
ALTER TABLE subscribers_rebuilt RENAME TO subscribers;
CREATE INDEX subscribers_status ON subscribers (status);

CREATE TABLE subscriber_events (
    id          INTEGER PRIMARY KEY,
    address     TEXT NOT NULL,
    at          TEXT NOT NULL,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    path        TEXT NOT NULL
                CHECK (path = 'link' OR path = 'mail' OR path = 'bounce'
                       OR path = 'complaint' OR path = 'operator' OR path = 'import'
                       OR path = 'form'),
    reason      TEXT
);

CREATE TABLE erased_addresses (
    hash      TEXT PRIMARY KEY,
    erased_at TEXT NOT NULL
);
"#,
    r#"
CREATE TABLE inbound_messages (
    key     TEXT NOT NULL,
    address TEXT NOT NULL,
    at      INTEGER NOT NULL,
    PRIMARY KEY (key, address)
);
CREATE INDEX inbound_messages_address ON inbound_messages (address);

CREATE TABLE soft_bounces (
    id      INTEGER PRIMARY KEY,
    address TEXT NOT NULL,
    at      INTEGER NOT NULL,
    reply   TEXT
);
CREATE INDEX soft_bounces_address ON soft_bounces (address, at);
"#,
    r#"
CREATE TABLE confirm_queue (
    address         TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind = 'confirm' OR kind = 'welcome'),
    name            TEXT,
    queued_at       INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    PRIMARY KEY (address, kind)
);
CREATE INDEX confirm_queue_due ON confirm_queue (next_attempt_at);
"#,
    // Senders and their leases (see `lease.rs`): which sender holds a row it took. A
    // sender's id is never reused (AUTOINCREMENT), so a row left by one is nobody else's.
    r#"
ALTER TABLE deliveries ADD COLUMN worker INTEGER;
CREATE TABLE send_workers (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    issue       TEXT NOT NULL,
    host        TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    lease_until INTEGER NOT NULL
);
"#,
    // The same rule on a delivery's state, written as a chain of comparisons: SQLite checks
    // `state IN (seven values)` by building a temporary index of the values on every update
    // of a row's state, about a fifth of each ledger commit. Only the schema's text changes,
    // the way SQLite documents for a CHECK constraint (no row is rewritten, and every row
    // meets the new text, which allows exactly the same states); `migrate` then bumps the
    // schema cookie so every connection reads the new text.
    r#"
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
   SET sql = replace(sql,
       'CHECK (state IN (''pending'', ''in_flight'', ''sent'', ''deferred'', ''failed'',
                                     ''unknown'', ''skipped''))',
       'CHECK (state = ''pending'' OR state = ''in_flight'' OR state = ''sent''
                           OR state = ''deferred'' OR state = ''failed'' OR state = ''unknown''
                           OR state = ''skipped'')')
 WHERE type = 'table' AND name = 'deliveries';
PRAGMA writable_schema = OFF;
"#,
];

/// Runs the migrations `conn` has not seen, in one transaction; refuses a newer schema.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let path = path.display().to_string();
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: usize = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > MIGRATIONS.len() {
        anyhow::bail!(
            "{path} has schema version {version}, newer than this techshack knows ({}): use a newer techshack",
            MIGRATIONS.len()
        );
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        tx.execute_batch(sql)
            .with_context(|| format!("migrating {path} to schema version {}", i + 1))?;
        tx.pragma_update(None, "user_version", i + 1)?;
    }
    if version < MIGRATIONS.len() {
        // A migration that edits the schema's text needs the cookie moved by hand; after the
        // others, moving it once more only makes other connections read the schema anew.
        let cookie: i64 = tx.query_row("PRAGMA schema_version", [], |r| r.get(0))?;
        tx.pragma_update(None, "schema_version", cookie + 1)?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{open_connection, Store};

    fn user_version(s: &Store) -> usize {
        s.conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    }

    /// A state file as an older techshack left it: the first `version` migrations, plus the
    /// table `serve` used to create on start when `serve_table`.
    fn old_file(dir: &Path, version: usize, serve_table: bool) -> std::path::PathBuf {
        let path = dir.join(format!("v{version}-{serve_table}.sqlite3"));
        let c = open_connection(&path).unwrap();
        for sql in &MIGRATIONS[..version] {
            c.execute_batch(sql).unwrap();
        }
        c.pragma_update(None, "user_version", version).unwrap();
        c.execute_batch(
            "INSERT INTO subscribers VALUES
                 ('a@x.org', NULL, 'active', '2026-11-20T08:00:00Z', '2026-11-20T08:00:00Z');",
        )
        .unwrap();
        if serve_table {
            // What `serve` ran on every start before the table joined the migrations.
            c.execute_batch(
                "CREATE TABLE IF NOT EXISTS serve_confirm_mails (
                     address      TEXT PRIMARY KEY,
                     last_sent_at INTEGER NOT NULL
                 );
                 INSERT INTO serve_confirm_mails VALUES ('a@x.org', 1000);",
            )
            .unwrap();
        }
        path
    }

    #[test]
    fn creates_folder_wal_and_schema_once() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("a/b/state.sqlite3");
        let s = Store::open(&path).unwrap();
        let mode: String = s
            .conn()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = s
            .conn()
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 1, "NORMAL");
        drop(s);
        let s = Store::open(&path).unwrap();
        assert_eq!(user_version(&s), MIGRATIONS.len());
    }

    #[test]
    fn the_state_check_becomes_comparisons_and_keeps_its_rule() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("old.sqlite3");
        {
            let c = open_connection(&path).unwrap();
            for sql in &MIGRATIONS[..MIGRATIONS.len() - 1] {
                c.execute_batch(sql).unwrap();
            }
            c.pragma_update(None, "user_version", MIGRATIONS.len() - 1)
                .unwrap();
            c.execute_batch(
                "INSERT INTO sends VALUES ('i', '2026-11-20T08:00:00Z');
                 INSERT INTO deliveries (issue, address, state, updated_at)
                   VALUES ('i', 'a@x.org', 'pending', '2026-11-20T08:00:00Z');",
            )
            .unwrap();
        }
        let plan = |c: &Connection| -> Vec<String> {
            c.prepare("EXPLAIN UPDATE deliveries SET state = 'sent' WHERE id = 1")
                .unwrap()
                .query_map([], |r| r.get(1))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        // Another process's connection, open across the migration, reads the new text. Before
        // it, an update of the state builds a temporary index of the seven values.
        let other = open_connection(&path).unwrap();
        assert!(plan(&other).iter().any(|op| op == "OpenEphemeral"));
        let s = Store::open(&path).unwrap();
        assert_eq!(user_version(&s), MIGRATIONS.len());
        let sql = |c: &Connection| -> String {
            c.query_row(
                "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'deliveries'",
                [],
                |r| r.get(0),
            )
            .unwrap()
        };
        let text = sql(s.conn());
        assert!(
            text.contains("CHECK (state = 'pending' OR state = 'in_flight'"),
            "{text}"
        );
        assert!(!text.contains("state IN"), "{text}");
        let ok: String = s
            .conn()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        // The same rule, on this connection and on the one opened before.
        for c in [s.conn(), &other] {
            for state in [
                "pending",
                "in_flight",
                "sent",
                "deferred",
                "failed",
                "unknown",
                "skipped",
            ] {
                c.execute("UPDATE deliveries SET state = ?1", [state])
                    .unwrap();
            }
            let e = c
                .execute("UPDATE deliveries SET state = 'lost'", [])
                .unwrap_err();
            assert!(e.to_string().contains("CHECK constraint failed"), "{e}");
        }
        // Now it does not, on either connection.
        for c in [s.conn(), &other] {
            let ops = plan(c);
            assert!(!ops.iter().any(|op| op == "OpenEphemeral"), "{ops:?}");
        }
        // A new state file gets the same text.
        let fresh = Store::open(&d.path().join("new.sqlite3")).unwrap();
        assert_eq!(sql(fresh.conn()), text);
    }

    #[test]
    fn a_state_file_of_schema_1_gains_first_attempt_times() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("old.sqlite3");
        {
            let c = open_connection(&path).unwrap();
            c.execute_batch(MIGRATIONS[0]).unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
            c.execute_batch(
                "INSERT INTO sends VALUES ('i', '2026-11-20T08:00:00Z');
                 INSERT INTO deliveries (issue, address, state, attempts, next_attempt_at,
                                         last_reply, updated_at) VALUES
                   ('i', 'a@x.org', 'deferred', 2, 1, '451 later', '2026-11-20T09:00:00Z'),
                   ('i', 'b@x.org', 'sent', 0, NULL, '250 ok', '2026-11-20T09:00:00Z'),
                   ('i', 'c@x.org', 'pending', 0, NULL, NULL, '2026-11-20T08:00:00Z'),
                   ('i', 'd@x.org', 'deferred', 0, 1, 'not attempted', '2026-11-20T09:00:00Z');",
            )
            .unwrap();
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(user_version(&s), MIGRATIONS.len());
        let rows: Vec<(String, Option<i64>)> = s
            .conn()
            .prepare("SELECT address, first_attempt_at FROM deliveries ORDER BY address")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let snapshot = chrono::DateTime::parse_from_rfc3339("2026-11-20T08:00:00Z")
            .unwrap()
            .timestamp();
        assert_eq!(
            rows,
            [
                ("a@x.org".to_string(), Some(snapshot)),
                ("b@x.org".to_string(), Some(snapshot)),
                ("c@x.org".to_string(), None),
                ("d@x.org".to_string(), None),
            ]
        );
        // Opening again runs nothing twice.
        drop(s);
        Store::open(&path).unwrap();
    }

    #[test]
    fn old_state_files_with_or_without_the_serve_table_migrate() {
        let d = tempfile::tempdir().unwrap();
        for (version, serve_table) in [(1, false), (1, true), (2, false), (2, true)] {
            let path = old_file(d.path(), version, serve_table);
            let mut s = Store::open(&path).unwrap();
            assert_eq!(
                user_version(&s),
                MIGRATIONS.len(),
                "{version} {serve_table}"
            );
            assert!(s.subscriber("a@x.org").unwrap().is_some());
            // A mail recorded by the old `serve` still holds its gap; a new file has none.
            let claim = s.serve_claim_mail("a@x.org", 2000, 3600).unwrap();
            let want = if serve_table { None } else { Some(None) };
            assert_eq!(claim, want, "{version} {serve_table}");
            drop(s);
            Store::open(&path).unwrap();
        }
    }

    #[test]
    fn newer_schema_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("state.sqlite3");
        let s = Store::open(&path).unwrap();
        s.conn().pragma_update(None, "user_version", 99).unwrap();
        drop(s);
        let e = Store::open(&path).err().unwrap();
        assert!(format!("{e:#}").contains("newer"), "{e:#}");
    }
}
