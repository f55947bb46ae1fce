//! The state: every table, every statement, behind the methods of [`Store`], on SQLite (the
//! default: one file) or PostgreSQL (`[state] url`: shared by several hosts).
//!
//! The SQLite file holds the subscribers, the delivery ledger and what `serve` remembers. It
//! is opened in WAL mode with `synchronous=NORMAL`: a process crash loses nothing that was
//! committed, and a power loss may lose the last few commits (the SPEC's "last few
//! deliveries may be repeated"). A PostgreSQL database holds the same tables.
//!
//! Nothing outside this module writes SQL or holds a connection, and no method takes or
//! returns a driver type. Every statement is written once, in SQL both engines accept, and
//! runs through [`db::Conn`]; the few that differ say so where they are.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::Connection;

use db::Conn;

mod address;
mod confirm_queue;
mod confirmations;
mod copy;
pub(crate) mod db;
mod erase;
mod history;
mod import;
mod inbound;
mod lease;
mod ledger;
mod migrations;
/// The throwaway PostgreSQL cluster of the tests (some of its helpers serve only the
/// integration suite).
#[cfg(test)]
#[allow(dead_code)]
pub(crate) mod pg_cluster;
mod postgres;
mod subscribers;
#[cfg(test)]
pub(crate) mod testing;

pub(crate) use address::normalize_address;
pub use address::{Address, AddressError, ToAddress};
pub(crate) use confirm_queue::{retry_delay, MailKind, QueuedConfirmation};
pub(crate) use confirmations::{Confirmed, SignUp, Unsubscribed};
pub use copy::TableCount;
pub use erase::Erased;
pub use history::{ChangePath, StatusEvent};
pub use import::{ImportRow, RestoreRow};
pub use inbound::{Act, Applied};
pub(crate) use lease::DuePages;
pub(crate) use ledger::{Change, Counts, DeliveryState, Row, WriterHandle};
pub(crate) use subscribers::normalize_name;
pub use subscribers::{AddOutcome, ImportReport, Subscriber, SubscriberStatus};

/// The schema version this techshack migrates SQLite state files to (for tests and
/// diagnostics: migrations are appended, so no number is written anywhere else).
pub fn schema_version() -> usize {
    migrations::MIGRATIONS.len()
}

/// Where the state lives: a SQLite file, or a PostgreSQL database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    File(PathBuf),
    /// A `postgres://` URL (its password, if any, is never printed).
    Postgres(String),
}

/// The environment variable that names a PostgreSQL state, over `[state] url`.
pub const STATE_URL_ENV: &str = "TECHSHACK_STATE_URL";

impl Location {
    /// `$TECHSHACK_STATE_URL`, else `[state] url`, else the SQLite file `[state] db`.
    pub fn of(state: &crate::config::StateConfig) -> Result<Location> {
        let env = std::env::var(STATE_URL_ENV)
            .ok()
            .filter(|u| !u.trim().is_empty());
        match env.or_else(|| state.url.clone()) {
            Some(url) => {
                postgres::check_url(&url)?;
                Ok(Location::Postgres(url))
            }
            None => Ok(Location::File(state.db.clone())),
        }
    }

    /// A state named on the command line: a `postgres://` URL, else a SQLite file's path.
    pub fn parse(text: &str) -> Result<Location> {
        if text.trim().is_empty() {
            anyhow::bail!("no state named: give a postgres:// URL or a SQLite file's path");
        }
        if text.contains("://") {
            postgres::check_url(text)?;
            return Ok(Location::Postgres(text.to_string()));
        }
        Ok(Location::File(PathBuf::from(text)))
    }

    /// The state as messages name it: the file's path, or the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Location::File(p) => p.display().to_string(),
            Location::Postgres(url) => postgres::redact(url),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Location::Postgres(_))
    }

    /// The SQLite file's path while the file does not exist yet; `None` for a database.
    pub fn missing_file(&self) -> Option<&Path> {
        match self {
            Location::File(p) if !p.exists() => Some(p),
            _ => None,
        }
    }
}

/// The open state.
pub struct Store {
    conn: Conn,
    location: Location,
    /// The keys erased addresses are hashed with ([`Store::set_keys`]).
    keys: Vec<Vec<u8>>,
}

impl Store {
    /// Opens (creating it and its folder on first use) and migrates a SQLite state file.
    pub fn open(path: &Path) -> Result<Store> {
        Store::open_at(&Location::File(path.to_path_buf()))
    }

    /// Opens and migrates the state the config names (`[state]`, `$TECHSHACK_STATE_URL`).
    pub fn open_config(state: &crate::config::StateConfig) -> Result<Store> {
        Store::open_at(&Location::of(state)?)
    }

    /// Opens and migrates the state where `location` says.
    pub fn open_at(location: &Location) -> Result<Store> {
        let conn = connect(location, true)?;
        Ok(Store {
            conn,
            location: location.clone(),
            keys: Vec::new(),
        })
    }

    /// Where the state lives.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The SQLite connection, for tests that set up a state no command reaches (an old
    /// timestamp, a hand-edited row). Nothing in `src/` outside this module calls it.
    ///
    /// # Panics
    /// On a PostgreSQL state.
    #[doc(hidden)]
    pub fn conn(&self) -> &Connection {
        match &self.conn {
            Conn::Sqlite(c) => c,
            Conn::Postgres(_) => panic!("Store::conn is for SQLite state files"),
        }
    }

    /// Runs one statement on either backend, for tests that set up a state no command
    /// reaches; `?1`… placeholders take `params` as text.
    #[doc(hidden)]
    pub fn execute_for_tests(&self, sql: &str, params: &[&str]) -> Result<usize> {
        let values: Vec<db::Value> = params.iter().map(|p| db::Value::from(*p)).collect();
        self.conn.execute(sql, &values)
    }

    /// Runs one query on either backend, for tests that read what no command prints; every
    /// cell as text (numbers in decimal), `None` for NULL.
    #[doc(hidden)]
    pub fn query_for_tests(&self, sql: &str, params: &[&str]) -> Result<Vec<Vec<Option<String>>>> {
        let values: Vec<db::Value> = params.iter().map(|p| db::Value::from(*p)).collect();
        self.conn
            .query(sql, &values)?
            .iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| r.get::<Option<String>>(i))
                    .collect::<Result<Vec<_>>>()
            })
            .collect()
    }

    /// Whether the state answers (`serve`'s health check).
    pub fn check(&self) -> Result<()> {
        self.conn.query_one("SELECT 1", db::p![])?;
        Ok(())
    }

    /// Opens a new connection when the one held broke (the database server restarted): a
    /// long-running `serve` recovers without a restart of its own.
    pub fn revive(&mut self) -> Result<()> {
        if self.conn.is_closed() {
            tracing::warn!(
                "the connection to {} broke: connecting again",
                self.location.describe()
            );
            self.conn = self.reconnect()?;
        }
        Ok(())
    }

    /// A second connection to the same state (a send's page reader and ledger writer).
    fn reconnect(&self) -> Result<Conn> {
        connect(&self.location, false)
    }
}

/// Opens a connection; `migrate` also creates and migrates the schema.
fn connect(location: &Location, migrate: bool) -> Result<Conn> {
    match location {
        Location::File(path) => {
            if migrate {
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
            }
            let mut conn = open_connection(path)?;
            if migrate {
                migrations::migrate(&mut conn, path)?;
            }
            Ok(Conn::Sqlite(conn))
        }
        Location::Postgres(url) => {
            let conn = postgres::connect(url)?;
            if migrate {
                postgres::migrate(&conn, url)?;
            }
            Ok(conn)
        }
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
