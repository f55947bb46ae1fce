//! The subscriber list: statuses, adding, importing, and status changes.

use std::fmt;
use std::str::FromStr;

use anyhow::Result;
use rusqlite::{params, OptionalExtension};

use super::{now_text, Address, Store, ToAddress};

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
    pub address: Address,
    pub name: Option<String>,
    pub status: SubscriberStatus,
    /// RFC 3339, UTC.
    pub added_at: String,
}

/// Cleans a display name: one line, trimmed; `None` when empty.
pub(crate) fn normalize_name(raw: Option<&str>) -> Option<String> {
    let n: String = raw?
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let n = n.split_whitespace().collect::<Vec<_>>().join(" ");
    (!n.is_empty()).then_some(n)
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

impl Store {
    /// One subscriber by address; `None` also for text that is no address at all.
    pub fn subscriber(&self, address: impl ToAddress) -> Result<Option<Subscriber>> {
        let Ok(a) = address.to_address() else {
            return Ok(None);
        };
        self.conn
            .query_row(
                "SELECT address, name, status, added_at FROM subscribers WHERE address = ?1",
                [a.as_str()],
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

    /// Adds an active subscriber, or activates a pending one; never reactivates an
    /// unsubscribed or bounced address.
    pub fn add_active(
        &mut self,
        address: impl ToAddress,
        name: Option<&str>,
    ) -> Result<AddOutcome> {
        let a = address.to_address()?;
        let tx = self.conn.transaction()?;
        let out = upsert(&tx, &a, normalize_name(name), SubscriberStatus::Active)?;
        tx.commit()?;
        Ok(out)
    }

    /// Records a sign-up awaiting confirmation (double opt-in). An existing row is left as
    /// it is, whatever its status, so a sign-up form cannot change anyone's standing.
    pub fn add_pending(
        &mut self,
        address: impl ToAddress,
        name: Option<&str>,
    ) -> Result<AddOutcome> {
        let a = address.to_address()?;
        let now = now_text();
        let n = self.conn.execute(
            "INSERT INTO subscribers (address, name, status, added_at, updated_at)
             VALUES (?1, ?2, 'pending', ?3, ?3) ON CONFLICT (address) DO NOTHING",
            params![a.as_str(), normalize_name(name), now],
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
    pub fn confirm(&mut self, address: impl ToAddress) -> Result<Option<SubscriberStatus>> {
        let Ok(a) = address.to_address() else {
            return Ok(None);
        };
        self.conn.execute(
            "UPDATE subscribers SET status = 'active', updated_at = ?2
             WHERE address = ?1 AND status = 'pending'",
            params![a.as_str(), now_text()],
        )?;
        Ok(self.subscriber(&a)?.map(|s| s.status))
    }

    /// Sets a subscriber's status as given (an unsubscribe link, a bounce report, an operator).
    /// Returns false when the address is unknown.
    pub fn subscriber_set_status(
        &mut self,
        address: impl ToAddress,
        status: SubscriberStatus,
    ) -> Result<bool> {
        let Ok(a) = address.to_address() else {
            return Ok(false);
        };
        let n = self.conn.execute(
            "UPDATE subscribers SET status = ?2, updated_at = ?3 WHERE address = ?1",
            params![a.as_str(), status.as_str(), now_text()],
        )?;
        Ok(n == 1)
    }

    /// Marks an address unsubscribed, keeping the row. Returns false when it is unknown.
    pub fn unsubscribe(&mut self, address: impl ToAddress) -> Result<bool> {
        self.subscriber_set_status(address, SubscriberStatus::Unsubscribed)
    }

    /// Imports already validated rows in one transaction.
    pub fn import<A: ToAddress>(&mut self, rows: &[(A, Option<String>)]) -> Result<ImportReport> {
        let mut report = ImportReport::default();
        let mut seen = std::collections::HashSet::new();
        let tx = self.conn.transaction()?;
        for (address, name) in rows {
            let a = address.to_address()?;
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

fn upsert(
    tx: &rusqlite::Transaction<'_>,
    address: &Address,
    name: Option<String>,
    status: SubscriberStatus,
) -> Result<AddOutcome> {
    let current: Option<String> = tx
        .query_row(
            "SELECT status FROM subscribers WHERE address = ?1",
            [address.as_str()],
            |r| r.get(0),
        )
        .optional()?;
    let now = now_text();
    match current {
        None => {
            tx.execute(
                "INSERT INTO subscribers (address, name, status, added_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?4)",
                params![address.as_str(), name, status.as_str(), now],
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
                params![address.as_str(), name, status.as_str(), now],
            )?;
            Ok(AddOutcome::Updated)
        }
    }
}

fn row_to_subscriber(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Subscriber>> {
    let status: String = r.get(2)?;
    Ok(status.parse().map(|status| Subscriber {
        address: Address::unchecked(r.get(0).unwrap_or_default()),
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
    fn names_are_one_trimmed_line() {
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
                ("b@x.org".to_string(), None),
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
