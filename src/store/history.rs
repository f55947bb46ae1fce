//! Every change of a subscriber's status, with when, from what, to what, how (the path) and
//! why: [`record_status_change`] is the one place a status changes, so the history is whole.

use std::fmt;
use std::str::FromStr;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::db::{p, Conn, Row};
use super::{now_text, Store, SubscriberStatus, ToAddress};

/// How a status change reached the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangePath {
    /// An unsubscribe or confirmation link (including the one-click POST of a mailbox).
    Link,
    /// A mail from the subscriber (an unsubscribe request by mail).
    Mail,
    /// A bounce report.
    Bounce,
    /// A complaint (a feedback-loop report).
    Complaint,
    /// The operator, with `techshack subscribers`.
    Operator,
    /// `techshack subscribers import`.
    Import,
    /// The sign-up form of `serve`.
    Form,
}

impl ChangePath {
    pub const ALL: [ChangePath; 7] = [
        ChangePath::Link,
        ChangePath::Mail,
        ChangePath::Bounce,
        ChangePath::Complaint,
        ChangePath::Operator,
        ChangePath::Import,
        ChangePath::Form,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChangePath::Link => "link",
            ChangePath::Mail => "mail",
            ChangePath::Bounce => "bounce",
            ChangePath::Complaint => "complaint",
            ChangePath::Operator => "operator",
            ChangePath::Import => "import",
            ChangePath::Form => "form",
        }
    }
}

impl fmt::Display for ChangePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ChangePath {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        ChangePath::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| anyhow::anyhow!("unknown change path `{s}`: use link, mail, bounce, complaint, operator, import or form"))
    }
}

/// One change of status, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusEvent {
    /// RFC 3339, UTC.
    pub at: String,
    /// `None` when the change created the row.
    pub from: Option<SubscriberStatus>,
    pub to: SubscriberStatus,
    pub path: ChangePath,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A change about to be recorded. `from` is the status the caller read inside the same
/// transaction (`None`: there is no row, and one is made with `name`).
pub(crate) struct StatusChange<'a> {
    pub address: &'a str,
    pub name: Option<&'a str>,
    pub from: Option<SubscriberStatus>,
    pub to: SubscriberStatus,
    pub path: ChangePath,
    pub reason: Option<&'a str>,
    pub at: &'a str,
}

/// Sets the status (creating the row when `from` is `None`) and appends the event: the one
/// function through which every status change goes. Returns false, recording nothing, when
/// `from` is `None` and the row exists after all (an import's first guess).
pub(crate) fn record_status_change(conn: &Conn, c: &StatusChange<'_>) -> Result<bool> {
    let changed = match c.from {
        None => conn.execute(
            "INSERT INTO subscribers (address, name, status, added_at, updated_at, reason)
             VALUES (?1, ?2, ?3, ?4, ?4, ?5) ON CONFLICT (address) DO NOTHING",
            p![c.address, c.name, c.to.as_str(), c.at, c.reason],
        )?,
        Some(_) => conn.execute(
            "UPDATE subscribers SET status = ?2, reason = ?3, updated_at = ?4
             WHERE address = ?1",
            p![c.address, c.to.as_str(), c.reason, c.at],
        )?,
    };
    if changed == 0 {
        return Ok(false);
    }
    conn.execute(
        "INSERT INTO subscriber_events (address, at, from_status, to_status, path, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        p![
            c.address,
            c.at,
            c.from.map(|s| s.as_str()),
            c.to.as_str(),
            c.path.as_str(),
            c.reason
        ],
    )?;
    Ok(true)
}

/// The status of `address` as stored, read inside the caller's transaction.
pub(crate) fn current_status(conn: &Conn, address: &str) -> Result<Option<SubscriberStatus>> {
    conn.query_opt(
        "SELECT status FROM subscribers WHERE address = ?1",
        p![address],
    )?
    .map(|r| r.get::<String>(0)?.parse())
    .transpose()
}

impl Store {
    /// Moves a known address to `to` by `path`, recording why. Returns the status before, or
    /// `None` when the address is not on the list (nothing is recorded then). A change to the
    /// status it already has is not recorded either.
    pub fn change_status(
        &mut self,
        address: impl ToAddress,
        to: SubscriberStatus,
        path: ChangePath,
        reason: Option<&str>,
    ) -> Result<Option<SubscriberStatus>> {
        let a = address.to_address()?;
        let tx = self.conn.write()?;
        let Some(from) = current_status(&tx, &a)? else {
            return Ok(None);
        };
        if from != to {
            let at = now_text();
            record_status_change(
                &tx,
                &StatusChange {
                    address: &a,
                    name: None,
                    from: Some(from),
                    to,
                    path,
                    reason,
                    at: &at,
                },
            )?;
        }
        tx.commit()?;
        Ok(Some(from))
    }

    /// The recorded changes of one address, oldest first.
    pub fn history(&self, address: impl ToAddress) -> Result<Vec<StatusEvent>> {
        let a = address.to_address()?;
        self.conn
            .query(
                "SELECT at, from_status, to_status, path, reason FROM subscriber_events
                 WHERE address = ?1 ORDER BY id",
                p![a.as_str()],
            )?
            .iter()
            .map(event_of_row)
            .collect()
    }

    /// Every address's history, oldest first within each address: one query, for export.
    pub(crate) fn all_histories(
        &self,
    ) -> Result<std::collections::HashMap<String, Vec<StatusEvent>>> {
        let rows = self.conn.query(
            "SELECT at, from_status, to_status, path, reason, address FROM subscriber_events
             ORDER BY id",
            p![],
        )?;
        let mut out: std::collections::HashMap<String, Vec<StatusEvent>> = Default::default();
        for r in &rows {
            let address: String = r.get(5)?;
            out.entry(address).or_default().push(event_of_row(r)?);
        }
        Ok(out)
    }
}

/// Appends events read from an export (a restore), as they were.
pub(crate) fn insert_events(conn: &Conn, address: &str, events: &[StatusEvent]) -> Result<()> {
    for e in events {
        conn.execute(
            "INSERT INTO subscriber_events (address, at, from_status, to_status, path, reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            p![
                address,
                &e.at,
                e.from.map(|s| s.as_str()),
                e.to.as_str(),
                e.path.as_str(),
                &e.reason
            ],
        )?;
    }
    Ok(())
}

fn event_of_row(r: &Row) -> Result<StatusEvent> {
    Ok(StatusEvent {
        at: r.get(0)?,
        from: r.get::<Option<String>>(1)?.map(|f| f.parse()).transpose()?,
        to: r.get::<String>(2)?.parse()?,
        path: r.get::<String>(3)?.parse()?,
        reason: r.get(4)?,
    })
}
