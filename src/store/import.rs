//! Importing a CSV file's rows (`subscribers import`) and restoring an export into an empty
//! state file (`subscribers import --restore`), each in one transaction.

use std::collections::HashSet;

use anyhow::{bail, Result};

use super::db::{p, Conn, Value};
use super::erase::{insert_erased, matcher, ErasedMatcher};
use super::history::{
    current_status, insert_events, record_status_change, ChangePath, StatusChange, StatusEvent,
};
use super::subscribers::{normalize_name, upsert};
use super::{now_text, AddOutcome, Address, ImportReport, Store, SubscriberStatus, ToAddress};

/// One valid row of an import file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRow {
    /// Its line in the file, for what is reported about it.
    pub line: usize,
    pub address: Address,
    pub name: Option<String>,
    /// The status the file gives (`None`: active). Unsubscribed, bounced and complained
    /// are applied as suppressions; nothing is reactivated.
    pub status: Option<SubscriberStatus>,
    pub reason: Option<String>,
}

/// One row of an export, restored as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreRow {
    pub address: Address,
    pub name: Option<String>,
    pub status: SubscriberStatus,
    pub reason: Option<String>,
    pub added_at: String,
    pub updated_at: String,
    pub history: Vec<StatusEvent>,
}

impl Store {
    /// Imports plain rows (address and name), as active subscribers.
    pub fn import<A: ToAddress>(&mut self, rows: &[(A, Option<String>)]) -> Result<ImportReport> {
        let rows = rows
            .iter()
            .map(|(a, name)| {
                Ok(ImportRow {
                    line: 0,
                    address: a.to_address()?,
                    name: name.clone(),
                    status: None,
                    reason: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        self.import_rows(&rows, &[])
    }

    /// Imports already validated rows, and erased hashes (`erased` rows of an export), in one
    /// transaction that takes the write lock first.
    pub fn import_rows(
        &mut self,
        rows: &[ImportRow],
        erased: &[(String, String)],
    ) -> Result<ImportReport> {
        let mut report = ImportReport::default();
        let mut seen = HashSet::with_capacity(rows.len());
        let tx = self.conn.write()?;
        for (hash, at) in erased {
            insert_erased(&tx, hash, at)?;
        }
        let matcher = matcher(&tx, &self.keys)?;
        if !erased.is_empty() {
            erase_matching(&tx, &matcher)?;
        }
        // A large page cache and rows in key order keep the B-tree inserts cheap: a million
        // rows would otherwise spill the cache to the WAL again and again. The sort is
        // stable, so repeated addresses keep the file's order.
        tx.sqlite_pragma("cache_size", -262_144)?;
        let mut sorted: Vec<&ImportRow> = rows.iter().collect();
        sorted.sort_by(|a, b| a.address.cmp(&b.address));
        let at = now_text();
        for chunk in sorted.chunks(INSERT_ROWS) {
            // Most rows of an import are new: they are inserted a chunk per statement (one
            // round trip to a database server instead of two per row); the rest, one by one.
            let mut added = insert_new(&tx, chunk, &matcher, &at)?;
            for row in chunk {
                if matcher.matches(&row.address) {
                    report.erased.push(row.line);
                    continue;
                }
                if !seen.insert(row.address.as_str()) {
                    report.merged += 1;
                }
                if added.remove(row.address.as_str()) {
                    report.added += 1;
                    continue;
                }
                match import_one(&tx, row, &at)? {
                    Imported::Outcome(AddOutcome::Added) => report.added += 1,
                    Imported::Outcome(AddOutcome::Updated) => report.updated += 1,
                    Imported::Outcome(AddOutcome::KeptFinal(_)) => report.kept_final += 1,
                    Imported::Outcome(AddOutcome::Erased) => report.erased.push(row.line),
                    Imported::Suppressed => report.suppressed += 1,
                }
            }
        }
        tx.commit()?;
        self.conn.sqlite_pragma("cache_size", -2000)?;
        report.erased.sort_unstable();
        // A row merged into one added earlier in this file counted once as added already.
        report.updated = report.updated.saturating_sub(report.merged);
        Ok(report)
    }

    /// Restores an export into an empty state: every row, status, reason, time and history
    /// as it was, and the erased hashes.
    pub fn restore(&mut self, rows: &[RestoreRow], erased: &[(String, String)]) -> Result<()> {
        let tx = self.conn.write()?;
        let held: i64 = tx
            .query_one(
                "SELECT (SELECT count(*) FROM subscribers) + (SELECT count(*) FROM subscriber_events)
                      + (SELECT count(*) FROM erased_addresses)",
                p![],
            )?
            .get(0)?;
        if held > 0 {
            bail!(
                "{} is not empty: --restore reproduces an export exactly and only into a state file without subscribers; use a new state.db, or import without --restore to merge",
                self.location.describe()
            );
        }
        for r in rows {
            tx.execute(
                "INSERT INTO subscribers (address, name, status, added_at, updated_at, reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                p![
                    r.address.as_str(),
                    &r.name,
                    r.status.as_str(),
                    &r.added_at,
                    &r.updated_at,
                    &r.reason
                ],
            )?;
            insert_events(&tx, &r.address, &r.history)?;
        }
        for (hash, at) in erased {
            insert_erased(&tx, hash, at)?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// Rows per insert statement: 6 parameters each, far below either engine's limit.
const INSERT_ROWS: usize = 500;

/// Inserts the rows of `chunk` whose address is new (the first of each address, erased ones
/// left out), each with its history event, as [`record_status_change`] would; returns the
/// addresses inserted.
fn insert_new<'a>(
    tx: &Conn,
    chunk: &[&'a ImportRow],
    matcher: &ErasedMatcher,
    at: &str,
) -> Result<HashSet<&'a str>> {
    let mut firsts: Vec<(&ImportRow, Option<String>, SubscriberStatus)> = Vec::new();
    let mut in_chunk = HashSet::new();
    for row in chunk {
        if !matcher.matches(&row.address) && in_chunk.insert(row.address.as_str()) {
            let status = row.status.unwrap_or(SubscriberStatus::Active);
            firsts.push((row, normalize_name(row.name.as_deref()), status));
        }
    }
    if firsts.is_empty() {
        return Ok(HashSet::new());
    }
    let values = |rows: usize, width: usize| {
        (0..rows)
            .map(|i| {
                let cols: Vec<String> =
                    (1..=width).map(|c| format!("?{}", i * width + c)).collect();
                format!("({})", cols.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut params: Vec<Value> = Vec::with_capacity(firsts.len() * 6);
    for (row, name, status) in &firsts {
        params.push(row.address.as_str().into());
        params.push(name.as_deref().into());
        params.push(status.as_str().into());
        params.push(at.into());
        params.push(at.into());
        params.push(row.reason.as_deref().into());
    }
    let inserted: HashSet<String> = tx
        .query(
            &format!(
                "INSERT INTO subscribers (address, name, status, added_at, updated_at, reason)
                 VALUES {} ON CONFLICT (address) DO NOTHING RETURNING address",
                values(firsts.len(), 6)
            ),
            &params,
        )?
        .iter()
        .map(|r| r.get(0))
        .collect::<Result<_>>()?;
    let new: Vec<_> = firsts
        .iter()
        .filter(|(row, _, _)| inserted.contains(row.address.as_str()))
        .collect();
    if !new.is_empty() {
        let mut params: Vec<Value> = Vec::with_capacity(new.len() * 5);
        for (row, _, status) in &new {
            params.push(row.address.as_str().into());
            params.push(at.into());
            params.push(status.as_str().into());
            params.push(ChangePath::Import.as_str().into());
            params.push(row.reason.as_deref().into());
        }
        let rows: Vec<String> = (0..new.len())
            .map(|i| {
                let b = i * 5;
                format!(
                    "(?{}, ?{}, NULL, ?{}, ?{}, ?{})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5
                )
            })
            .collect();
        tx.execute(
            &format!(
                "INSERT INTO subscriber_events (address, at, from_status, to_status, path, reason)
                 VALUES {}",
                rows.join(", ")
            ),
            &params,
        )?;
    }
    Ok(new.iter().map(|(row, _, _)| row.address.as_str()).collect())
}

enum Imported {
    Outcome(AddOutcome),
    /// An existing pending or active address that the file marks as a suppression.
    Suppressed,
}

fn import_one(tx: &Conn, row: &ImportRow, at: &str) -> Result<Imported> {
    let status = row.status.unwrap_or(SubscriberStatus::Active);
    let name = normalize_name(row.name.as_deref());
    if !status.is_final() {
        return Ok(Imported::Outcome(upsert(
            tx,
            &row.address,
            name,
            status,
            ChangePath::Import,
            row.reason.as_deref(),
            at,
        )?));
    }
    let current = current_status(tx, &row.address)?;
    if current.is_some_and(SubscriberStatus::is_final) {
        return Ok(Imported::Outcome(AddOutcome::KeptFinal(
            current.unwrap_or(status),
        )));
    }
    record_status_change(
        tx,
        &StatusChange {
            address: &row.address,
            name: name.as_deref(),
            from: current,
            to: status,
            path: ChangePath::Import,
            reason: row.reason.as_deref(),
            at,
        },
    )?;
    Ok(match current {
        None => Imported::Outcome(AddOutcome::Added),
        Some(_) => Imported::Suppressed,
    })
}

/// Erases the subscribers an imported `erased` row names.
fn erase_matching(tx: &Conn, matcher: &ErasedMatcher) -> Result<()> {
    let addresses: Vec<String> = tx
        .query("SELECT address FROM subscribers", p![])?
        .iter()
        .map(|r| r.get(0))
        .collect::<Result<_>>()?;
    for a in addresses {
        if matcher.matches(&Address::unchecked(a.clone())) {
            for table in [
                "subscribers",
                "subscriber_events",
                "deliveries",
                "serve_confirm_mails",
            ] {
                tx.execute(&format!("DELETE FROM {table} WHERE address = ?1"), p![&a])?;
            }
        }
    }
    Ok(())
}
