//! `techshack state copy`: the whole state, table by table, from one store into an empty one
//! (SQLite file to PostgreSQL database and back, or between two of a kind).
//!
//! The source is read in one snapshot, a page of rows at a time in key order, so a list of
//! any length moves in the memory of one page. The target is written in one transaction
//! that first checks it holds nothing: a copy lands whole or not at all. Every row keeps its
//! id (a VERP return path names a delivery by its id), and on PostgreSQL each identity
//! sequence then moves past the highest id copied, so rows added later get new ones.
//!
//! Senders' registrations (`send_workers`) stay behind: a lease is a live process's claim on
//! the state it runs against, and means nothing elsewhere. The rows they held lose their
//! `worker`, so a row copied `in_flight` is reported `unknown` by the next send on the target.

use std::os::unix::fs::MetadataExt;

use anyhow::{bail, Context, Result};

use super::db::{p, Conn, Value};
use super::lease::lease_clock;
use super::{Location, Store};

/// A table that is copied: its columns (all but those the copy clears) and its key, the
/// order it is read in.
pub(crate) struct Table {
    pub(crate) name: &'static str,
    columns: &'static [&'static str],
    key: &'static [&'static str],
    /// An `id` column PostgreSQL numbers from a sequence.
    identity: bool,
}

/// Every copied table, parents before the rows that refer to them.
pub(crate) const TABLES: &[Table] = &[
    Table {
        name: "subscribers",
        columns: &[
            "address",
            "name",
            "status",
            "added_at",
            "updated_at",
            "reason",
        ],
        key: &["address"],
        identity: false,
    },
    Table {
        name: "sends",
        columns: &["issue", "snapshot_at"],
        key: &["issue"],
        identity: false,
    },
    Table {
        name: "deliveries",
        columns: &[
            "id",
            "issue",
            "address",
            "name",
            "state",
            "attempts",
            "next_attempt_at",
            "last_reply",
            "updated_at",
            "first_attempt_at",
        ],
        key: &["id"],
        identity: true,
    },
    Table {
        name: "subscriber_events",
        columns: &[
            "id",
            "address",
            "at",
            "from_status",
            "to_status",
            "path",
            "reason",
        ],
        key: &["id"],
        identity: true,
    },
    Table {
        name: "erased_addresses",
        columns: &["hash", "erased_at"],
        key: &["hash"],
        identity: false,
    },
    Table {
        name: "serve_confirm_mails",
        columns: &["address", "last_sent_at"],
        key: &["address"],
        identity: false,
    },
    Table {
        name: "inbound_messages",
        columns: &["key", "address", "at"],
        key: &["key", "address"],
        identity: false,
    },
    Table {
        name: "soft_bounces",
        columns: &["id", "address", "at", "reply"],
        key: &["id"],
        identity: true,
    },
    Table {
        name: "confirm_queue",
        columns: &[
            "address",
            "kind",
            "name",
            "queued_at",
            "expires_at",
            "attempts",
            "next_attempt_at",
            "last_error",
        ],
        key: &["address", "kind"],
        identity: false,
    },
];

/// The tables of the schema that are not copied.
pub(crate) const NOT_COPIED: &[&str] = &["send_workers"];

/// Rows read, and written, per statement.
const PAGE: usize = 500;

/// One table's rows on both sides after a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    pub table: &'static str,
    pub source: u64,
    pub target: u64,
}

impl Store {
    /// Copies every table into `target`, which must hold nothing (else an error naming it
    /// and its first table with rows); `done` hears of each table as it is copied, with its
    /// row count. The target commits once, at the end.
    pub fn copy_into(&self, target: &Store, done: &mut dyn FnMut(&str, u64)) -> Result<()> {
        copy(&self.conn, &target.conn, target.location(), PAGE, done)
    }

    /// The rows of every copied table, in the order of [`TABLES`].
    pub fn table_counts(&self) -> Result<Vec<(&'static str, u64)>> {
        TABLES
            .iter()
            .map(|t| Ok((t.name, count(&self.conn, t.name)?)))
            .collect()
    }

    /// Row counts of both states, table by table.
    pub fn compare_counts(&self, target: &Store) -> Result<Vec<TableCount>> {
        let (a, b) = (self.table_counts()?, target.table_counts()?);
        Ok(a.into_iter()
            .zip(b)
            .map(|((table, source), (_, target))| TableCount {
                table,
                source,
                target,
            })
            .collect())
    }

    /// Senders whose lease still runs: a `send` at work on this state.
    pub fn live_senders(&self) -> Result<u64> {
        let now = lease_clock(&self.conn, true)?;
        self.conn
            .query_one(
                "SELECT count(*) FROM send_workers WHERE lease_until >= ?1",
                p![now],
            )?
            .get::<i64>(0)
            .map(|n| u64::try_from(n).unwrap_or(0))
    }

    /// Rows `in_flight`, per issue.
    pub fn in_flight_rows(&self) -> Result<Vec<(String, u64)>> {
        self.conn
            .query(
                "SELECT issue, count(*) FROM deliveries WHERE state = 'in_flight'
                 GROUP BY issue ORDER BY issue",
                p![],
            )?
            .iter()
            .map(|r| Ok((r.get(0)?, u64::try_from(r.get::<i64>(1)?).unwrap_or(0))))
            .collect()
    }

    /// Whether `other` is this very state (the same file, or the same database however
    /// its URL spells the host).
    pub fn is_same_state(&self, other: &Store) -> Result<bool> {
        match (&self.location, &other.location) {
            (Location::File(a), Location::File(b)) => {
                let (a, b) = (std::fs::metadata(a)?, std::fs::metadata(b)?);
                Ok(a.dev() == b.dev() && a.ino() == b.ino())
            }
            (Location::Postgres(_), Location::Postgres(_)) => {
                // Advisory locks are shared by the sessions of one database: a lock this
                // session holds is one the other can take only in another database.
                let key: i64 = rand::random();
                self.conn.execute("SELECT pg_advisory_lock(?1)", p![key])?;
                let free: Result<bool> = other
                    .conn
                    .query_one("SELECT pg_try_advisory_lock(?1)", p![key])
                    .and_then(|r| r.get(0));
                if let Ok(true) = free {
                    other
                        .conn
                        .execute("SELECT pg_advisory_unlock(?1)", p![key])?;
                }
                self.conn
                    .execute("SELECT pg_advisory_unlock(?1)", p![key])?;
                Ok(!free?)
            }
            _ => Ok(false),
        }
    }
}

fn count(conn: &Conn, table: &str) -> Result<u64> {
    let n: i64 = conn
        .query_one(&format!("SELECT count(*) FROM {table}"), p![])?
        .get(0)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The first table of the schema, copied or not, that holds a row.
fn first_table_with_rows(conn: &Conn) -> Result<Option<&'static str>> {
    for name in TABLES
        .iter()
        .map(|t| t.name)
        .chain(NOT_COPIED.iter().copied())
    {
        let any = conn.query_opt(&format!("SELECT 1 FROM {name} LIMIT 1"), p![])?;
        if any.is_some() {
            return Ok(Some(name));
        }
    }
    Ok(None)
}

fn copy(
    from: &Conn,
    to: &Conn,
    target: &Location,
    page: usize,
    done: &mut dyn FnMut(&str, u64),
) -> Result<()> {
    let read = from.snapshot()?;
    let write = to.write()?;
    if let Some(table) = first_table_with_rows(&write)? {
        bail!(
            "{} is not empty (its {table} table holds rows): copy into a new SQLite file or an empty database",
            target.describe()
        );
    }
    for t in TABLES {
        let n = copy_table(&read, &write, t, page)
            .with_context(|| format!("copying the table {}", t.name))?;
        if t.identity && write.is_postgres() {
            write.query_one(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{0}', 'id'), coalesce(max(id), 0) + 1, false)
                     FROM {0}",
                    t.name
                ),
                p![],
            )?;
        }
        done(t.name, n);
    }
    write
        .commit()
        .with_context(|| format!("committing the copy into {}", target.describe()))?;
    read.rollback()?;
    Ok(())
}

/// Copies one table a page at a time, in key order; returns the rows copied.
fn copy_table(from: &Conn, to: &Conn, t: &Table, page: usize) -> Result<u64> {
    let columns = t.columns.join(", ");
    let key = t.key.join(", ");
    let key_at: Vec<usize> = t
        .key
        .iter()
        .map(|k| {
            t.columns
                .iter()
                .position(|c| c == k)
                .expect("key columns are copied")
        })
        .collect();
    let first = format!(
        "SELECT {columns} FROM {} ORDER BY {key} LIMIT {page}",
        t.name
    );
    let after = placeholders(1, t.key.len());
    let next = format!(
        "SELECT {columns} FROM {} WHERE ({key}) > ({after}) ORDER BY {key} LIMIT {page}",
        t.name
    );
    let mut copied = 0u64;
    let mut rows = from.query(&first, p![])?;
    while !rows.is_empty() {
        let mut values = Vec::with_capacity(rows.len() * t.columns.len());
        for r in &rows {
            for c in r.cells() {
                values.push(c.as_value()?);
            }
        }
        let tuples: Vec<String> = (0..rows.len())
            .map(|i| {
                format!(
                    "({})",
                    placeholders(i * t.columns.len() + 1, t.columns.len())
                )
            })
            .collect();
        let insert = format!(
            "INSERT INTO {} ({columns}) VALUES {}",
            t.name,
            tuples.join(", ")
        );
        to.execute(&insert, &values)?;
        copied += rows.len() as u64;
        if rows.len() < page {
            break;
        }
        let last = rows.last().expect("a full page").cells();
        let bound: Vec<Value> = key_at
            .iter()
            .map(|&i| last[i].as_value())
            .collect::<Result<_>>()?;
        let more = from.query(&next, &bound)?;
        rows = more;
    }
    Ok(copied)
}

/// `?first, ?first+1, …` for `n` parameters.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::db::Cell;
    use crate::store::pg_cluster::database_url;

    /// The columns of copied tables that are left empty (NULL) in the copy.
    const CLEARED: &[(&str, &str)] = &[("deliveries", "worker")];

    /// Every table of `conn`'s schema and its columns, sorted.
    fn schema(conn: &Conn) -> Vec<(String, Vec<String>)> {
        let tables: Vec<String> = if conn.is_postgres() {
            conn.query(
                "SELECT table_name::text FROM information_schema.tables
                 WHERE table_schema = 'public' AND table_name <> 'techshack_schema'
                 ORDER BY 1",
                p![],
            )
        } else {
            conn.query(
                "SELECT name FROM sqlite_master WHERE type = 'table'
                 AND name NOT LIKE 'sqlite_%' ORDER BY 1",
                p![],
            )
        }
        .unwrap()
        .iter()
        .map(|r| r.get(0).unwrap())
        .collect();
        tables
            .into_iter()
            .map(|t| {
                let mut cols: Vec<String> = if conn.is_postgres() {
                    conn.query(
                        "SELECT column_name::text FROM information_schema.columns
                         WHERE table_schema = 'public' AND table_name = ?1",
                        p![&t],
                    )
                } else {
                    conn.query(&format!("SELECT name FROM pragma_table_info('{t}')"), p![])
                }
                .unwrap()
                .iter()
                .map(|r| r.get(0).unwrap())
                .collect();
                cols.sort();
                (t, cols)
            })
            .collect()
    }

    /// What the copy covers, in the shape of [`schema`].
    fn covered() -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = TABLES
            .iter()
            .map(|t| {
                let mut cols: Vec<String> = t.columns.iter().map(|c| c.to_string()).collect();
                cols.extend(
                    CLEARED
                        .iter()
                        .filter(|(table, _)| *table == t.name)
                        .map(|(_, c)| c.to_string()),
                );
                cols.sort();
                (t.name.to_string(), cols)
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn every_table_and_column_of_both_schemas_is_copied_or_named_as_left_out() {
        let d = tempfile::tempdir().unwrap();
        let lite = Store::open(&d.path().join("s.sqlite3")).unwrap();
        let pg = Store::open_at(&Location::Postgres(database_url())).unwrap();
        for store in [&lite, &pg] {
            let all = schema(&store.conn);
            for t in NOT_COPIED {
                assert!(all.iter().any(|(n, _)| n == t), "{t}");
            }
            let copied: Vec<_> = all
                .into_iter()
                .filter(|(t, _)| !NOT_COPIED.contains(&t.as_str()))
                .collect();
            assert_eq!(copied, covered(), "{:?}", store.location());
        }
    }

    /// A state with rows in every table, set up through SQL (the suite's tests make theirs
    /// through the commands).
    fn fill(s: &Store) {
        let sql = [
            "INSERT INTO subscribers VALUES ('a@x.org', 'Ann', 'active', '2026-11-01T08:00:00Z', '2026-11-01T08:00:00Z', NULL)",
            "INSERT INTO subscribers VALUES ('b@x.org', NULL, 'bounced', '2026-11-01T08:00:00Z', '2026-11-02T08:00:00Z', '550 gone')",
            "INSERT INTO subscribers VALUES ('c@x.org', 'Ç ''quoted''', 'pending', '2026-11-01T08:00:00Z', '2026-11-01T08:00:00Z', NULL)",
            "INSERT INTO sends VALUES ('2026-11-20', '2026-11-20T08:00:00Z')",
            "INSERT INTO deliveries (id, issue, address, name, state, attempts, next_attempt_at, last_reply, updated_at, first_attempt_at, worker)
             VALUES (7, '2026-11-20', 'a@x.org', 'Ann', 'sent', 1, NULL, '250 ok', '2026-11-20T08:01:00Z', 1763625660, 3)",
            "INSERT INTO deliveries (id, issue, address, name, state, attempts, next_attempt_at, last_reply, updated_at, first_attempt_at, worker)
             VALUES (9, '2026-11-20', 'b@x.org', NULL, 'in_flight', 1, NULL, NULL, '2026-11-20T08:01:00Z', 1763625660, 3)",
            "INSERT INTO deliveries (id, issue, address, name, state, attempts, next_attempt_at, last_reply, updated_at, first_attempt_at, worker)
             VALUES (12, '2026-11-20', 'c@x.org', NULL, 'deferred', 2, 1763629000, '451 later', '2026-11-20T08:01:00Z', 1763625660, NULL)",
            "INSERT INTO send_workers (id, issue, host, pid, started_at, lease_until) VALUES (3, '2026-11-20', 'h', 1, 1, 2)",
            "INSERT INTO subscriber_events VALUES (4, 'a@x.org', '2026-11-01T08:00:00Z', NULL, 'active', 'import', NULL)",
            "INSERT INTO subscriber_events VALUES (5, 'b@x.org', '2026-11-02T08:00:00Z', 'active', 'bounced', 'bounce', '550 gone')",
            "INSERT INTO erased_addresses VALUES ('00ff', '2026-11-03T08:00:00Z')",
            "INSERT INTO serve_confirm_mails VALUES ('c@x.org', 1763625000)",
            "INSERT INTO inbound_messages VALUES ('k1', 'b@x.org', 1763626000)",
            "INSERT INTO inbound_messages VALUES ('k1', 'a@x.org', 1763626000)",
            "INSERT INTO inbound_messages VALUES ('k0', 'c@x.org', 1763626000)",
            "INSERT INTO inbound_messages VALUES ('k2', 'a@x.org', 1763626000)",
            "INSERT INTO soft_bounces VALUES (2, 'b@x.org', 1763626000, '452 full')",
            "INSERT INTO confirm_queue VALUES ('c@x.org', 'confirm', 'C', 1, 2, 0, 1, NULL)",
            "INSERT INTO confirm_queue VALUES ('c@x.org', 'welcome', NULL, 1, 2, 3, 4, '421 busy')",
            "INSERT INTO confirm_queue VALUES ('a@x.org', 'welcome', NULL, 1, 2, 3, 4, NULL)",
        ];
        for q in sql {
            s.conn.execute(q, p![]).unwrap();
        }
        // More rows than a few pages, the parts of a composite key interleaved.
        for i in 0..20 {
            s.conn
                .execute(
                    "INSERT INTO inbound_messages VALUES (?1, ?2, 1)",
                    p![format!("m{}", i % 3), format!("u{i:02}@y.org")],
                )
                .unwrap();
        }
    }

    /// Every copied table's rows, in key order, as read.
    fn dump(s: &Store) -> Vec<(&'static str, Vec<Vec<Cell>>)> {
        TABLES
            .iter()
            .map(|t| {
                let sql = format!(
                    "SELECT {} FROM {} ORDER BY {}",
                    t.columns.join(", "),
                    t.name,
                    t.key.join(", ")
                );
                let rows = s.conn.query(&sql, p![]).unwrap();
                (t.name, rows.iter().map(|r| r.cells().to_vec()).collect())
            })
            .collect()
    }

    fn copy_paged(from: &Store, to: &Store, page: usize) -> Result<Vec<(String, u64)>> {
        let mut seen = Vec::new();
        copy(&from.conn, &to.conn, to.location(), page, &mut |t, n| {
            seen.push((t.to_string(), n))
        })?;
        Ok(seen)
    }

    fn has_rows(s: &Store, sql: &str) -> bool {
        s.conn.query_opt(sql, p![]).unwrap().is_some()
    }

    fn new_id(s: &Store, insert: &str) -> i64 {
        s.conn.query_one(insert, p![]).unwrap().get(0).unwrap()
    }

    #[test]
    fn a_state_goes_to_postgres_and_back_row_for_row_with_its_ids() {
        let d = tempfile::tempdir().unwrap();
        let lite = Store::open(&d.path().join("a.sqlite3")).unwrap();
        fill(&lite);
        let pg = Store::open_at(&Location::Postgres(database_url())).unwrap();
        let seen = copy_paged(&lite, &pg, 3).unwrap();
        assert_eq!(seen.len(), TABLES.len());
        assert!(
            seen.contains(&("inbound_messages".to_string(), 24)),
            "{seen:?}"
        );
        let back = Store::open(&d.path().join("b.sqlite3")).unwrap();
        copy_paged(&pg, &back, 2).unwrap();
        let want = dump(&lite);
        assert_eq!(dump(&pg), want);
        assert_eq!(dump(&back), want);
        for s in [&pg, &back] {
            let counts = s.compare_counts(&lite).unwrap();
            assert_eq!(counts.len(), TABLES.len());
            assert!(counts.iter().all(|c| c.source == c.target), "{counts:?}");
            // Leases stay behind, and so does every row's sender.
            assert!(!has_rows(
                s,
                "SELECT 1 FROM deliveries WHERE worker IS NOT NULL"
            ));
            assert!(!has_rows(s, "SELECT 1 FROM send_workers"));
            assert_eq!(s.in_flight_rows().unwrap(), [("2026-11-20".to_string(), 1)]);
        }
        // New rows get ids past the copied ones (PostgreSQL's sequences were moved).
        for s in [&pg, &back] {
            let id = new_id(
                s,
                "INSERT INTO deliveries (issue, address, state, updated_at)
                 VALUES ('2026-11-20', 'z@x.org', 'pending', 'now') RETURNING id",
            );
            assert_eq!(id, 13);
            let id = new_id(
                s,
                "INSERT INTO soft_bounces (address, at) VALUES ('z@x.org', 1) RETURNING id",
            );
            assert_eq!(id, 3);
        }
    }

    #[test]
    fn a_target_with_rows_is_refused_and_left_as_it_was() {
        let d = tempfile::tempdir().unwrap();
        let lite = Store::open(&d.path().join("a.sqlite3")).unwrap();
        fill(&lite);
        for target in [
            Location::File(d.path().join("t.sqlite3")),
            Location::Postgres(database_url()),
        ] {
            let t = Store::open_at(&target).unwrap();
            t.conn
                .execute(
                    "INSERT INTO erased_addresses VALUES ('ab', '2026-11-03T08:00:00Z')",
                    p![],
                )
                .unwrap();
            let before = dump(&t);
            let e = copy_paged(&lite, &t, 3).unwrap_err().to_string();
            assert!(
                e.contains("is not empty (its erased_addresses table holds rows)")
                    && e.contains(&target.describe()),
                "{e}"
            );
            assert_eq!(dump(&t), before);
            assert!(!lite.is_same_state(&t).unwrap());
        }
        assert!(lite.is_same_state(&lite).unwrap());
    }

    #[test]
    fn a_value_the_target_cannot_hold_fails_the_copy_whole_and_says_where() {
        let d = tempfile::tempdir().unwrap();
        let lite = Store::open(&d.path().join("a.sqlite3")).unwrap();
        fill(&lite);
        // SQLite keeps text that spells no number in a number column; PostgreSQL does not.
        lite.conn
            .execute(
                "INSERT INTO serve_confirm_mails VALUES ('z@x.org', 'soon')",
                p![],
            )
            .unwrap();
        let pg = Store::open_at(&Location::Postgres(database_url())).unwrap();
        let e = format!("{:#}", copy_paged(&lite, &pg, 3).unwrap_err());
        assert!(e.contains("copying the table serve_confirm_mails"), "{e}");
        assert!(first_table_with_rows(&pg.conn).unwrap().is_none());
        // Text that spells a number goes in as the number.
        let n: i64 = pg
            .conn
            .query_one("SELECT ?1::bigint + 1", p!["41"])
            .unwrap()
            .get(0)
            .unwrap();
        assert_eq!(n, 42);
    }

    #[test]
    fn two_urls_of_one_database_are_the_same_state() {
        let url = database_url();
        let a = Store::open_at(&Location::Postgres(url.clone())).unwrap();
        let b = Store::open_at(&Location::Postgres(url.replace("127.0.0.1", "localhost"))).unwrap();
        let c = Store::open_at(&Location::Postgres(database_url())).unwrap();
        assert!(a.is_same_state(&b).unwrap());
        assert!(!a.is_same_state(&c).unwrap());
        // The lock taken to find out is let go.
        assert!(a.is_same_state(&b).unwrap());
    }
}
