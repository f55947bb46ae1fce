//! One connection type over both backends: SQLite (the default state file) and PostgreSQL
//! (`[state] url`). Every statement of the store is written once, in the SQL both engines
//! accept, with `?1`, `?2`… placeholders; on PostgreSQL they are rewritten to `$1`, `$2`… and
//! each statement is prepared once per connection.
//!
//! Values cross the seam as [`Value`] (parameters) and [`Cell`] (results), so no other file
//! of the store names a driver type. Integers are 64-bit on both sides (PostgreSQL columns
//! are `BIGINT`); a parameter adapts to the type PostgreSQL infers for its placeholder.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;

use anyhow::{Context, Result};

/// A statement parameter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value<'a> {
    Null,
    Int(i64),
    Text(Cow<'a, str>),
    Bytes(&'a [u8]),
}

impl From<i64> for Value<'_> {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<i32> for Value<'_> {
    fn from(v: i32) -> Self {
        Value::Int(v.into())
    }
}
impl From<u32> for Value<'_> {
    fn from(v: u32) -> Self {
        Value::Int(v.into())
    }
}
impl From<usize> for Value<'_> {
    fn from(v: usize) -> Self {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<bool> for Value<'_> {
    fn from(v: bool) -> Self {
        Value::Int(v.into())
    }
}
impl<'a> From<&'a str> for Value<'a> {
    fn from(v: &'a str) -> Self {
        Value::Text(Cow::Borrowed(v))
    }
}
impl<'a> From<&'a String> for Value<'a> {
    fn from(v: &'a String) -> Self {
        Value::Text(Cow::Borrowed(v))
    }
}
impl From<String> for Value<'_> {
    fn from(v: String) -> Self {
        Value::Text(Cow::Owned(v))
    }
}
impl<'a> From<&'a [u8]> for Value<'a> {
    fn from(v: &'a [u8]) -> Self {
        Value::Bytes(v)
    }
}
impl<'a, T: Into<Value<'a>>> From<Option<T>> for Value<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}
impl<'a> From<&'a Option<String>> for Value<'a> {
    fn from(v: &'a Option<String>) -> Self {
        v.as_deref().map_or(Value::Null, Into::into)
    }
}

/// `p![a, b]`: the parameters of a statement.
macro_rules! p {
    () => { &[][..] };
    ($($v:expr),+ $(,)?) => { &[$($crate::store::db::Value::from($v)),+][..] };
}
pub(crate) use p;

/// A result column.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Bytes(Vec<u8>),
}

impl Cell {
    /// The cell as a parameter of another statement (a copy of the row elsewhere).
    pub(crate) fn as_value(&self) -> Result<Value<'_>> {
        Ok(match self {
            Cell::Null => Value::Null,
            Cell::Int(v) => Value::Int(*v),
            Cell::Text(t) => Value::Text(Cow::Borrowed(t)),
            Cell::Bytes(b) => Value::Bytes(b),
            Cell::Real(v) => {
                anyhow::bail!("a floating-point value ({v}) where the schema has none")
            }
        })
    }
}

/// A result row.
#[derive(Debug, Clone)]
pub(crate) struct Row(Vec<Cell>);

impl Row {
    /// How many columns the row has.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Every column, as read.
    pub(crate) fn cells(&self) -> &[Cell] {
        &self.0
    }

    /// Column `i` as a `T`.
    pub(crate) fn get<T: FromCell>(&self, i: usize) -> Result<T> {
        let cell = self.0.get(i).unwrap_or(&Cell::Null);
        T::from_cell(cell).with_context(|| format!("reading column {i} ({cell:?})"))
    }
}

/// Conversion from a result column.
pub(crate) trait FromCell: Sized {
    fn from_cell(c: &Cell) -> Result<Self>;
}

impl FromCell for i64 {
    fn from_cell(c: &Cell) -> Result<Self> {
        match c {
            Cell::Int(v) => Ok(*v),
            Cell::Text(t) => t.parse().context("not a number"),
            _ => anyhow::bail!("not an integer"),
        }
    }
}
impl FromCell for u32 {
    fn from_cell(c: &Cell) -> Result<Self> {
        Ok(u32::try_from(i64::from_cell(c)?)?)
    }
}
impl FromCell for usize {
    fn from_cell(c: &Cell) -> Result<Self> {
        Ok(usize::try_from(i64::from_cell(c)?)?)
    }
}
impl FromCell for bool {
    fn from_cell(c: &Cell) -> Result<Self> {
        Ok(i64::from_cell(c)? != 0)
    }
}
impl FromCell for f64 {
    fn from_cell(c: &Cell) -> Result<Self> {
        match c {
            Cell::Real(v) => Ok(*v),
            Cell::Int(v) => Ok(*v as f64),
            _ => anyhow::bail!("not a number"),
        }
    }
}
impl FromCell for String {
    fn from_cell(c: &Cell) -> Result<Self> {
        match c {
            Cell::Text(t) => Ok(t.clone()),
            Cell::Int(v) => Ok(v.to_string()),
            _ => anyhow::bail!("not text"),
        }
    }
}
impl FromCell for Vec<u8> {
    fn from_cell(c: &Cell) -> Result<Self> {
        match c {
            Cell::Bytes(b) => Ok(b.clone()),
            Cell::Text(t) => Ok(t.as_bytes().to_vec()),
            _ => anyhow::bail!("not bytes"),
        }
    }
}
impl<T: FromCell> FromCell for Option<T> {
    fn from_cell(c: &Cell) -> Result<Self> {
        match c {
            Cell::Null => Ok(None),
            c => T::from_cell(c).map(Some),
        }
    }
}

/// Which engine a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// A connection to the state, on either backend.
pub(crate) enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(Box<RefCell<Pg>>),
}

/// A PostgreSQL client and the statements it prepared.
pub(crate) struct Pg {
    /// Always `Some` until dropped.
    client: Option<postgres::Client>,
    statements: HashMap<String, postgres::Statement>,
}

impl Drop for Pg {
    /// Closing the client blocks on its runtime too: off any asynchronous runtime.
    fn drop(&mut self) {
        self.statements.clear();
        if let Some(c) = self.client.take() {
            off_runtime(move || drop(c));
        }
    }
}

impl Pg {
    pub(crate) fn new(client: postgres::Client) -> Pg {
        Pg {
            client: Some(client),
            statements: HashMap::new(),
        }
    }

    fn client(&mut self) -> &mut postgres::Client {
        self.client.as_mut().expect("an open client")
    }

    fn statement(&mut self, sql: &str) -> Result<postgres::Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let text = dollar_placeholders(sql);
        let client = self.client();
        let st = off_runtime(|| client.prepare(&text))
            .map_err(pg_error)
            .with_context(|| format!("preparing {}", one_line(sql)))?;
        self.statements.insert(sql.to_string(), st.clone());
        Ok(st)
    }
}

/// Runs `f`, a call of the blocking PostgreSQL client, on a thread of its own when this
/// thread runs asynchronous tasks (a send's workers, `serve`): that client drives a runtime
/// of its own, which cannot start inside another.
pub(crate) fn off_runtime<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| {
        s.spawn(f)
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// `?1` → `$1`, outside quoted text.
fn dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted && chars.peek().is_some_and(char::is_ascii_digit) => out.push('$'),
            c => out.push(c),
        }
    }
    out
}

fn one_line(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether `e` is a lock wait that gave up (PostgreSQL's `lock_timeout`, or a deadlock it
/// broke): the transaction may be tried again.
pub(crate) fn is_lock_wait(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<LockWait>().is_some()
            || c.downcast_ref::<postgres::Error>()
                .and_then(|e| e.code())
                .is_some_and(|code| {
                    *code == postgres::error::SqlState::LOCK_NOT_AVAILABLE
                        || *code == postgres::error::SqlState::T_R_DEADLOCK_DETECTED
                })
    })
}

/// A lock wait that gave up, kept through [`pg_error`]'s message.
#[derive(Debug)]
pub(crate) struct LockWait(String);

impl std::fmt::Display for LockWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LockWait {}

/// A PostgreSQL error with its server message (the driver's `Display` says only "db error").
pub(crate) fn pg_error(e: postgres::Error) -> anyhow::Error {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                s.push_str(&format!(" ({d})"));
            }
            let code = db.code();
            if *code == postgres::error::SqlState::LOCK_NOT_AVAILABLE
                || *code == postgres::error::SqlState::T_R_DEADLOCK_DETECTED
            {
                return anyhow::Error::new(LockWait(s));
            }
            anyhow::anyhow!(s)
        }
        None => anyhow::Error::new(e),
    }
}

impl Conn {
    pub(crate) fn backend(&self) -> Backend {
        match self {
            Conn::Sqlite(_) => Backend::Sqlite,
            Conn::Postgres(_) => Backend::Postgres,
        }
    }

    pub(crate) fn is_postgres(&self) -> bool {
        self.backend() == Backend::Postgres
    }

    /// Whether the connection is gone for good (PostgreSQL only: a SQLite file stays open).
    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Conn::Sqlite(_) => false,
            Conn::Postgres(pg) => pg.borrow_mut().client().is_closed(),
        }
    }

    /// Runs one statement; returns the rows it changed.
    pub(crate) fn execute(&self, sql: &str, params: &[Value]) -> Result<usize> {
        match self {
            Conn::Sqlite(c) => {
                let mut st = c.prepare_cached(sql)?;
                Ok(st.execute(rusqlite::params_from_iter(params.iter()))?)
            }
            Conn::Postgres(pg) => {
                let mut pg = pg.borrow_mut();
                let st = pg.statement(sql)?;
                let client = pg.client();
                let n =
                    off_runtime(|| client.execute(&st, &pg_params(params))).map_err(pg_error)?;
                Ok(usize::try_from(n).unwrap_or(usize::MAX))
            }
        }
    }

    /// Every row of a query.
    pub(crate) fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        match self {
            Conn::Sqlite(c) => {
                let mut st = c.prepare_cached(sql)?;
                let n = st.column_count();
                let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    let mut cells = Vec::with_capacity(n);
                    for i in 0..n {
                        cells.push(lite_cell(r.get_ref(i)?));
                    }
                    out.push(Row(cells));
                }
                Ok(out)
            }
            Conn::Postgres(pg) => {
                let mut pg = pg.borrow_mut();
                let st = pg.statement(sql)?;
                let client = pg.client();
                let rows =
                    off_runtime(|| client.query(&st, &pg_params(params))).map_err(pg_error)?;
                rows.iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|i| r.try_get::<_, Cell>(i).map_err(pg_error))
                            .collect::<Result<Vec<_>>>()
                            .map(Row)
                    })
                    .collect()
            }
        }
    }

    /// The first row of a query, if any.
    pub(crate) fn query_opt(&self, sql: &str, params: &[Value]) -> Result<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// The one row a query returns.
    pub(crate) fn query_one(&self, sql: &str, params: &[Value]) -> Result<Row> {
        self.query_opt(sql, params)?
            .with_context(|| format!("no row from {}", one_line(sql)))
    }

    /// Statements without parameters or results (schema changes).
    pub(crate) fn batch(&self, sql: &str) -> Result<()> {
        match self {
            Conn::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Conn::Postgres(pg) => {
                let mut pg = pg.borrow_mut();
                let client = pg.client();
                off_runtime(|| client.batch_execute(sql)).map_err(pg_error)
            }
        }
    }

    /// A transaction's own statement (`BEGIN IMMEDIATE`, `COMMIT`, `ROLLBACK`): on SQLite
    /// prepared once per connection, as the ledger writer runs one per batch.
    fn control(&self, sql: &str) -> Result<()> {
        match self {
            Conn::Sqlite(c) => {
                c.prepare_cached(sql)?.execute([])?;
                Ok(())
            }
            Conn::Postgres(_) => self.batch(sql),
        }
    }

    /// Sets a SQLite pragma; nothing on PostgreSQL.
    pub(crate) fn sqlite_pragma(&self, name: &str, value: i64) -> Result<()> {
        match self {
            Conn::Sqlite(c) => Ok(c.pragma_update(None, name, value)?),
            Conn::Postgres(_) => Ok(()),
        }
    }

    /// Starts a write transaction. On SQLite it takes the file's write lock at once
    /// (`BEGIN IMMEDIATE`); on PostgreSQL it takes the state's one write lock (a transaction
    /// advisory lock), so writers of either backend run one after another and a
    /// read-then-write inside a transaction sees no other writer's change.
    pub(crate) fn write(&self) -> Result<Tx<'_>> {
        self.write_waiting(None)
    }

    /// [`Conn::write`], waiting up to `secs` for the write lock on PostgreSQL rather than the
    /// connection's 10 s (a send's snapshot of a long list waits for another sender's).
    pub(crate) fn write_waiting(&self, secs: Option<u32>) -> Result<Tx<'_>> {
        match self {
            Conn::Sqlite(_) => self.control("BEGIN IMMEDIATE")?,
            Conn::Postgres(_) => {
                self.batch("BEGIN")?;
                if let Some(secs) = secs {
                    if let Err(e) = self.batch(&format!("SET LOCAL lock_timeout = '{secs}s'")) {
                        let _ = self.batch("ROLLBACK");
                        return Err(e);
                    }
                }
                if let Err(e) = self.execute("SELECT pg_advisory_xact_lock(?1)", p![WRITE_LOCK]) {
                    let _ = self.batch("ROLLBACK");
                    return Err(e);
                }
            }
        }
        Ok(Tx {
            conn: self,
            done: false,
        })
    }

    /// Starts a read-only transaction that sees one snapshot of the state throughout,
    /// whatever other connections commit meanwhile (SQLite in WAL mode: a read transaction;
    /// PostgreSQL: `REPEATABLE READ`).
    pub(crate) fn snapshot(&self) -> Result<Tx<'_>> {
        match self {
            Conn::Sqlite(_) => self.batch("BEGIN DEFERRED")?,
            Conn::Postgres(_) => self.batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?,
        }
        Ok(Tx {
            conn: self,
            done: false,
        })
    }

    /// Starts a transaction that does not take the write lock (PostgreSQL row locks do the
    /// work: `FOR UPDATE SKIP LOCKED`). On SQLite it is [`Conn::write`].
    pub(crate) fn begin(&self) -> Result<Tx<'_>> {
        match self {
            Conn::Sqlite(_) => self.write(),
            Conn::Postgres(_) => {
                self.batch("BEGIN")?;
                Ok(Tx {
                    conn: self,
                    done: false,
                })
            }
        }
    }
}

/// The key of the advisory lock every write transaction on PostgreSQL holds.
pub(crate) const WRITE_LOCK: i64 = 0x7465_6368_7368_0001;
/// The key of the advisory lock the migrations run under.
pub(crate) const MIGRATE_LOCK: i64 = 0x7465_6368_7368_0002;

/// An open transaction: rolled back when dropped without [`Tx::commit`].
pub(crate) struct Tx<'a> {
    conn: &'a Conn,
    done: bool,
}

impl Tx<'_> {
    pub(crate) fn commit(mut self) -> Result<()> {
        self.done = true;
        self.conn.control("COMMIT")
    }

    pub(crate) fn rollback(mut self) -> Result<()> {
        self.done = true;
        self.conn.control("ROLLBACK")
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.conn.control("ROLLBACK");
        }
    }
}

fn lite_cell(v: rusqlite::types::ValueRef<'_>) -> Cell {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(i) => Cell::Int(i),
        ValueRef::Real(f) => Cell::Real(f),
        ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Cell::Bytes(b.to_vec()),
    }
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
            Value::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

fn pg_params<'a>(params: &'a [Value<'a>]) -> Vec<&'a (dyn postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|v| v as &(dyn postgres::types::ToSql + Sync))
        .collect()
}

mod pg_types {
    use super::{Cell, Value};
    use postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};
    use std::error::Error;

    type BoxError = Box<dyn Error + Sync + Send>;

    impl ToSql for Value<'_> {
        fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, BoxError> {
            match self {
                Value::Null => Ok(IsNull::Yes),
                Value::Int(i) => match *ty {
                    Type::INT8 => i.to_sql(ty, out),
                    Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                    Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                    Type::BOOL => (*i != 0).to_sql(ty, out),
                    Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                    _ => i.to_string().as_str().to_sql(&Type::TEXT, out),
                },
                // Text where the column is a number (what SQLite's loose typing may hold): the
                // number it spells, or an error, never its bytes read as binary.
                Value::Text(t) => match *ty {
                    Type::INT8 | Type::INT4 | Type::INT2 => {
                        Value::Int(t.trim().parse::<i64>()?).to_sql(ty, out)
                    }
                    _ => t.as_ref().to_sql(&Type::TEXT, out),
                },
                Value::Bytes(b) => b.to_sql(ty, out),
            }
        }

        fn accepts(_: &Type) -> bool {
            true
        }

        to_sql_checked!();
    }

    impl<'a> FromSql<'a> for Cell {
        fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
            Ok(match *ty {
                Type::INT8 => Cell::Int(i64::from_sql(ty, raw)?),
                Type::INT4 => Cell::Int(i32::from_sql(ty, raw)?.into()),
                Type::INT2 => Cell::Int(i16::from_sql(ty, raw)?.into()),
                Type::OID => Cell::Int(u32::from_sql(ty, raw)?.into()),
                Type::BOOL => Cell::Int(bool::from_sql(ty, raw)?.into()),
                Type::FLOAT8 => Cell::Real(f64::from_sql(ty, raw)?),
                Type::FLOAT4 => Cell::Real(f32::from_sql(ty, raw)?.into()),
                Type::BYTEA => Cell::Bytes(raw.to_vec()),
                Type::VOID => Cell::Null,
                _ => String::from_utf8(raw.to_vec())
                    .map(Cell::Text)
                    .unwrap_or_else(|e| Cell::Bytes(e.into_bytes())),
            })
        }

        fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
            Ok(Cell::Null)
        }

        fn accepts(ty: &Type) -> bool {
            // Numbers of arbitrary precision have a binary form of their own: the store
            // casts them (`sum(...)::bigint`) rather than reading them.
            *ty != Type::NUMERIC
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollars_outside_quotes() {
        assert_eq!(
            dollar_placeholders("SELECT '?1', x FROM t WHERE a = ?1 AND b = ?12 AND c = '?'"),
            "SELECT '?1', x FROM t WHERE a = $1 AND b = $12 AND c = '?'"
        );
    }

    #[test]
    fn cells_convert_to_what_the_store_reads() {
        let r = Row(vec![
            Cell::Int(3),
            Cell::Null,
            Cell::Text("a".into()),
            Cell::Int(1),
        ]);
        assert_eq!(r.get::<i64>(0).unwrap(), 3);
        assert_eq!(r.get::<u32>(0).unwrap(), 3);
        assert_eq!(r.get::<Option<String>>(1).unwrap(), None);
        assert_eq!(r.get::<String>(2).unwrap(), "a");
        assert!(r.get::<bool>(3).unwrap());
        assert!(r.get::<i64>(2).is_err());
        assert!(r.get::<String>(1).is_err());
        assert!(r.get::<u32>(5).is_err(), "a missing column is NULL");
    }
}
