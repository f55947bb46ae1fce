//! The SQLite state file: every table, every statement, behind the methods of [`Store`].
//!
//! One file holds the subscribers, the delivery ledger and what `serve` remembers. It is
//! opened in WAL mode with `synchronous=NORMAL`: a process crash loses nothing that was
//! committed, and a power loss may lose the last few commits (the SPEC's "last few
//! deliveries may be repeated").
//!
//! Nothing outside this module writes SQL or holds a connection, and no method takes or
//! returns a `rusqlite` type: the method list of `Store` (and of the ledger writer) is
//! the whole contract a second backend has to meet. It is kept as plain methods rather than
//! a trait while there is one backend, so the trait can be drawn from the list once the
//! second backend says what it needs (a pool, async calls).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::Connection;

mod address;
mod confirm_queue;
mod confirmations;
mod erase;
mod history;
mod import;
mod inbound;
mod ledger;
mod migrations;
/// The throwaway PostgreSQL cluster of the tests (the PostgreSQL backend's tests call it).
#[cfg(test)]
#[allow(dead_code)]
mod pg_cluster;
mod subscribers;

pub(crate) use address::normalize_address;
pub use address::{Address, AddressError, ToAddress};
pub(crate) use confirm_queue::{retry_delay, MailKind, QueuedConfirmation};
pub(crate) use confirmations::{Confirmed, SignUp, Unsubscribed};
pub use erase::Erased;
pub use history::{ChangePath, StatusEvent};
pub use import::{ImportRow, RestoreRow};
pub use inbound::{Act, Applied};
pub(crate) use ledger::{Change, Counts, DeliveryState, DuePages, Row, WriterHandle};
pub(crate) use subscribers::normalize_name;
pub use subscribers::{AddOutcome, ImportReport, Subscriber, SubscriberStatus};

/// The schema version this techshack migrates state files to (for tests and diagnostics:
/// migrations are appended, so no number is written anywhere else).
pub fn schema_version() -> usize {
    migrations::MIGRATIONS.len()
}

/// The open state file.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// The keys erased addresses are hashed with ([`Store::set_keys`]).
    keys: Vec<Vec<u8>>,
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
        let mut conn = open_connection(path)?;
        migrations::migrate(&mut conn, path)?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            keys: Vec::new(),
        })
    }

    /// The state file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The SQLite connection, for tests that set up a state no command reaches (an old
    /// timestamp, a hand-edited row). Nothing in `src/` outside this module calls it.
    #[doc(hidden)]
    pub fn conn(&self) -> &Connection {
        &self.conn
    }
}

/// Opens a connection with the pragmas every user of the state file needs.
fn open_connection(path: &Path) -> Result<Connection> {
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

/// The current time as stored: RFC 3339 in UTC, whole seconds.
fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
