//! The SQLite state: schema, migrations, and the subscriber list.
//!
//! One file holds the subscribers and the delivery ledger (see `mail::ledger`). It is opened in
//! WAL mode with `synchronous=NORMAL`: a process crash loses nothing that was committed, and a
//! power loss may lose the last few commits (the SPEC's "last few deliveries may be repeated").

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension};

/// Each entry moves the schema from version `i` to `i + 1`; never edit one that shipped.
const MIGRATIONS: &[&str] = &[
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
];

/// A subscriber's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscriberStatus {
    /// Signed up, not confirmed yet (double opt-in): receives nothing.
    Pending,
    Active,
    Unsubscribed,
    Bounced,
}

impl SubscriberStatus {
    pub const ALL: [SubscriberStatus; 4] = [
        SubscriberStatus::Pending,
        SubscriberStatus::Active,
        SubscriberStatus::Unsubscribed,
        SubscriberStatus::Bounced,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SubscriberStatus::Pending => "pending",
            SubscriberStatus::Active => "active",
            SubscriberStatus::Unsubscribed => "unsubscribed",
            SubscriberStatus::Bounced => "bounced",
        }
    }

    /// Unsubscribed and bounced addresses stay so whatever an import or an `add` says.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            SubscriberStatus::Unsubscribed | SubscriberStatus::Bounced
        )
    }
}

impl fmt::Display for SubscriberStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SubscriberStatus {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        SubscriberStatus::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "unknown subscriber status `{s}`: use pending, active, unsubscribed or bounced"
                )
            })
    }
}

/// One row of the subscriber list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    pub address: String,
    pub name: Option<String>,
    pub status: SubscriberStatus,
    /// RFC 3339, UTC.
    pub added_at: String,
}

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("the address is empty")]
    Empty,
    #[error("`{0}` is not an email address: {1}")]
    Invalid(String, String),
}

/// Trims and lowercases an address and checks it is a plain `user@domain` mailbox.
///
/// The whole address is lowercased: providers treat local parts case-insensitively in
/// practice, and two rows for `Ann@x.org` and `ann@x.org` would mail one person twice.
pub fn normalize_address(raw: &str) -> Result<String, AddressError> {
    let a = raw.trim();
    if a.is_empty() {
        return Err(AddressError::Empty);
    }
    let shown = a.chars().take(80).collect::<String>();
    if a.chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';'))
    {
        return Err(AddressError::Invalid(
            shown.escape_debug().to_string(),
            "it contains spaces, control characters or one of < > , ;".into(),
        ));
    }
    let a = a.to_lowercase();
    let (_, domain) = a
        .rsplit_once('@')
        .ok_or_else(|| AddressError::Invalid(shown.clone(), "it has no `@`".into()))?;
    if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') {
        return Err(AddressError::Invalid(
            shown,
            "the domain needs a dot, as in example.com".into(),
        ));
    }
    a.parse::<lettre::Address>()
        .map_err(|e| AddressError::Invalid(shown, e.to_string()))?;
    Ok(a)
}

/// Cleans a display name: one line, trimmed; `None` when empty.
pub fn normalize_name(raw: Option<&str>) -> Option<String> {
    let n: String = raw?
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let n = n.split_whitespace().collect::<Vec<_>>().join(" ");
    (!n.is_empty()).then_some(n)
}

/// The current time as stored: RFC 3339 in UTC, whole seconds.
pub fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// What adding one address did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddOutcome {
    /// A new row.
    Added,
    /// The row existed; its name may have been updated, pending became active.
    Updated,
    /// The address is unsubscribed or bounced and stays so.
    KeptFinal(SubscriberStatus),
}

/// What a whole import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub added: usize,
    pub updated: usize,
    /// Rows whose address was already unsubscribed or bounced: left as they were.
    pub kept_final: usize,
    /// Rows that repeated an address earlier in the same file.
    pub merged: usize,
}

/// The open state file.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating it and its folder on first use) and migrates the state file.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).with_context(|| {
                    format!(
                        "creating the state folder {} (state.db in the config)",
                        dir.display()
                    )
                })?;
            }
        }
        let conn = open_connection(path)?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store.migrate()?;
        Ok(store)
    }

    /// The state file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying connection, for the ledger.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    pub fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    fn migrate(&mut self) -> Result<()> {
        let path = self.path.display().to_string();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
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
        tx.commit()?;
        Ok(())
    }

    /// One subscriber by address (normalized here).
    pub fn subscriber(&self, address: &str) -> Result<Option<Subscriber>> {
        let Ok(a) = normalize_address(address) else {
            return Ok(None);
        };
        self.conn
            .query_row(
                "SELECT address, name, status, added_at FROM subscribers WHERE address = ?1",
                [a],
                row_to_subscriber,
            )
            .optional()?
            .transpose()
    }

    /// Every subscriber, or those in one status, by address.
    pub fn subscribers(&self, status: Option<SubscriberStatus>) -> Result<Vec<Subscriber>> {
        let mut st = self.conn.prepare(
            "SELECT address, name, status, added_at FROM subscribers
             WHERE ?1 IS NULL OR status = ?1 ORDER BY address",
        )?;
        let rows = st.query_map([status.map(|s| s.as_str())], row_to_subscriber)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r??);
        }
        Ok(out)
    }

    /// Number of subscribers per status.
    pub fn subscriber_counts(&self) -> Result<Vec<(SubscriberStatus, usize)>> {
        let mut out = Vec::new();
        for s in SubscriberStatus::ALL {
            let n: usize = self.conn.query_row(
                "SELECT count(*) FROM subscribers WHERE status = ?1",
                [s.as_str()],
                |r| r.get(0),
            )?;
            out.push((s, n));
        }
        Ok(out)
    }

    /// Adds an active subscriber, or activates a pending one; never reactivates an
    /// unsubscribed or bounced address.
    pub fn add_active(&mut self, address: &str, name: Option<&str>) -> Result<AddOutcome> {
        let a = normalize_address(address)?;
        let tx = self.conn.transaction()?;
        let out = upsert(&tx, &a, normalize_name(name), SubscriberStatus::Active)?;
        tx.commit()?;
        Ok(out)
    }

    /// Records a sign-up awaiting confirmation (double opt-in). An existing row is left as
    /// it is, whatever its status, so a sign-up form cannot change anyone's standing.
    pub fn add_pending(&mut self, address: &str, name: Option<&str>) -> Result<AddOutcome> {
        let a = normalize_address(address)?;
        let now = now_text();
        let n = self.conn.execute(
            "INSERT INTO subscribers (address, name, status, added_at, updated_at)
             VALUES (?1, ?2, 'pending', ?3, ?3) ON CONFLICT (address) DO NOTHING",
            params![a, normalize_name(name), now],
        )?;
        if n == 1 {
            return Ok(AddOutcome::Added);
        }
        let status = self
            .subscriber(&a)?
            .map(|s| s.status)
            .unwrap_or(SubscriberStatus::Pending);
        Ok(if status.is_final() {
            AddOutcome::KeptFinal(status)
        } else {
            AddOutcome::Updated
        })
    }

    /// Confirms a pending sign-up (the confirm link). Returns the status after the call, or
    /// `None` for an unknown address. Only `pending` moves; a confirm link cannot undo an
    /// unsubscribe or a bounce.
    pub fn confirm(&mut self, address: &str) -> Result<Option<SubscriberStatus>> {
        let Ok(a) = normalize_address(address) else {
            return Ok(None);
        };
        self.conn.execute(
            "UPDATE subscribers SET status = 'active', updated_at = ?2
             WHERE address = ?1 AND status = 'pending'",
            params![a, now_text()],
        )?;
        Ok(self.subscriber(&a)?.map(|s| s.status))
    }

    /// Sets a subscriber's status as given (an unsubscribe link, a bounce report, an operator).
    /// Returns false when the address is unknown.
    pub fn subscriber_set_status(
        &mut self,
        address: &str,
        status: SubscriberStatus,
    ) -> Result<bool> {
        let Ok(a) = normalize_address(address) else {
            return Ok(false);
        };
        let n = self.conn.execute(
            "UPDATE subscribers SET status = ?2, updated_at = ?3 WHERE address = ?1",
            params![a, status.as_str(), now_text()],
        )?;
        Ok(n == 1)
    }

    /// Marks an address unsubscribed, keeping the row. Returns false when it is unknown.
    pub fn unsubscribe(&mut self, address: &str) -> Result<bool> {
        self.subscriber_set_status(address, SubscriberStatus::Unsubscribed)
    }

    /// Imports already validated rows in one transaction.
    pub fn import(&mut self, rows: &[(String, Option<String>)]) -> Result<ImportReport> {
        let mut report = ImportReport::default();
        let mut seen = std::collections::HashSet::new();
        let tx = self.conn.transaction()?;
        for (address, name) in rows {
            let a = normalize_address(address)?;
            if !seen.insert(a.clone()) {
                report.merged += 1;
            }
            match upsert(
                &tx,
                &a,
                normalize_name(name.as_deref()),
                SubscriberStatus::Active,
            )? {
                AddOutcome::Added => report.added += 1,
                AddOutcome::Updated => report.updated += 1,
                AddOutcome::KeptFinal(_) => report.kept_final += 1,
            }
        }
        tx.commit()?;
        // A row merged into one added earlier in this file counted once as added already.
        report.updated = report.updated.saturating_sub(report.merged);
        Ok(report)
    }
}

/// Opens a connection with the pragmas every user of the state file needs.
pub fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)
        .with_context(|| format!("opening the state file {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(10))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .with_context(|| format!("setting WAL mode on {}", path.display()))?;
    if !mode.eq_ignore_ascii_case("wal") {
        anyhow::bail!(
            "{} cannot use WAL mode (journal_mode is {mode}): put the state file on a local disk",
            path.display()
        );
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

fn upsert(
    tx: &rusqlite::Transaction<'_>,
    address: &str,
    name: Option<String>,
    status: SubscriberStatus,
) -> Result<AddOutcome> {
    let current: Option<String> = tx
        .query_row(
            "SELECT status FROM subscribers WHERE address = ?1",
            [address],
            |r| r.get(0),
        )
        .optional()?;
    let now = now_text();
    match current {
        None => {
            tx.execute(
                "INSERT INTO subscribers (address, name, status, added_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?4)",
                params![address, name, status.as_str(), now],
            )?;
            Ok(AddOutcome::Added)
        }
        Some(s) => {
            let s: SubscriberStatus = s.parse()?;
            if s.is_final() {
                return Ok(AddOutcome::KeptFinal(s));
            }
            tx.execute(
                "UPDATE subscribers SET name = coalesce(?2, name), status = ?3, updated_at = ?4
                 WHERE address = ?1",
                params![address, name, status.as_str(), now],
            )?;
            Ok(AddOutcome::Updated)
        }
    }
}

fn row_to_subscriber(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Subscriber>> {
    let status: String = r.get(2)?;
    Ok(status.parse().map(|status| Subscriber {
        address: r.get(0).unwrap_or_default(),
        name: r.get(1).unwrap_or_default(),
        status,
        added_at: r.get(3).unwrap_or_default(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(&d.path().join("a/b/state.sqlite3")).unwrap();
        (d, s)
    }

    #[test]
    fn creates_folder_wal_and_schema_once() {
        let (d, s) = store();
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
        let s = Store::open(&d.path().join("a/b/state.sqlite3")).unwrap();
        let v: usize = s
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len());
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
        let v: usize = s
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len());
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
    fn newer_schema_is_refused() {
        let (d, s) = store();
        s.conn().pragma_update(None, "user_version", 99).unwrap();
        drop(s);
        let e = Store::open(&d.path().join("a/b/state.sqlite3"))
            .err()
            .unwrap();
        assert!(format!("{e:#}").contains("newer"), "{e:#}");
    }

    #[test]
    fn addresses_normalize_and_validate() {
        assert_eq!(
            normalize_address("  Ann@Example.COM ").unwrap(),
            "ann@example.com"
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@x.org",
            "ann@localhost",
            "a b@x.org",
            "a@x.org\r\nBcc: e@vil.org",
            "<a@x.org>",
            "a@@x.org",
            "a@x..org",
        ] {
            assert!(normalize_address(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            normalize_name(Some(" Ann\r\nBcc: x  Lee ")).as_deref(),
            Some("Ann Bcc: x Lee")
        );
        assert_eq!(normalize_name(Some("  ")), None);
    }

    #[test]
    fn final_statuses_are_never_reactivated() {
        let (_d, mut s) = store();
        assert_eq!(s.add_active("a@x.org", None).unwrap(), AddOutcome::Added);
        assert!(s.unsubscribe("A@x.org").unwrap());
        assert_eq!(
            s.add_active("a@x.org", Some("Ann")).unwrap(),
            AddOutcome::KeptFinal(SubscriberStatus::Unsubscribed)
        );
        s.add_active("b@x.org", None).unwrap();
        s.subscriber_set_status("b@x.org", SubscriberStatus::Bounced)
            .unwrap();
        let r = s
            .import(&[
                ("b@x.org".into(), None),
                ("a@x.org".into(), None),
                ("c@x.org".into(), Some("Cy".into())),
                ("C@X.org".into(), None),
            ])
            .unwrap();
        assert_eq!(
            r,
            ImportReport {
                added: 1,
                updated: 0,
                kept_final: 2,
                merged: 1
            }
        );
        let all = s.subscribers(None).unwrap();
        let st: Vec<_> = all
            .iter()
            .map(|x| (x.address.as_str(), x.status, x.name.as_deref()))
            .collect();
        assert_eq!(
            st,
            [
                ("a@x.org", SubscriberStatus::Unsubscribed, None),
                ("b@x.org", SubscriberStatus::Bounced, None),
                ("c@x.org", SubscriberStatus::Active, Some("Cy")),
            ]
        );
        assert_eq!(
            s.confirm("a@x.org").unwrap(),
            Some(SubscriberStatus::Unsubscribed)
        );
    }

    #[test]
    fn double_opt_in() {
        let (_d, mut s) = store();
        assert_eq!(
            s.add_pending("p@x.org", Some("P")).unwrap(),
            AddOutcome::Added
        );
        assert_eq!(
            s.subscribers(Some(SubscriberStatus::Active)).unwrap().len(),
            0
        );
        assert_eq!(
            s.confirm("p@x.org").unwrap(),
            Some(SubscriberStatus::Active)
        );
        s.unsubscribe("p@x.org").unwrap();
        assert_eq!(
            s.add_pending("p@x.org", None).unwrap(),
            AddOutcome::KeptFinal(SubscriberStatus::Unsubscribed)
        );
        assert_eq!(s.confirm("nobody@x.org").unwrap(), None);
    }
}
