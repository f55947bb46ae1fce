//! The subscriber list: statuses, adding, confirming, and the operator's status changes.

use std::fmt;
use std::str::FromStr;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::db::{p, Conn, Row};
use super::history::{current_status, record_status_change, ChangePath, StatusChange};
use super::{now_text, Address, Store, ToAddress};

/// A subscriber's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubscriberStatus {
    /// Signed up, not confirmed yet (double opt-in): receives nothing.
    Pending,
    Active,
    Unsubscribed,
    Bounced,
    /// The subscriber reported an issue as spam.
    Complained,
}

impl SubscriberStatus {
    pub const ALL: [SubscriberStatus; 5] = [
        SubscriberStatus::Pending,
        SubscriberStatus::Active,
        SubscriberStatus::Unsubscribed,
        SubscriberStatus::Bounced,
        SubscriberStatus::Complained,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SubscriberStatus::Pending => "pending",
            SubscriberStatus::Active => "active",
            SubscriberStatus::Unsubscribed => "unsubscribed",
            SubscriberStatus::Bounced => "bounced",
            SubscriberStatus::Complained => "complained",
        }
    }

    /// The suppressions: unsubscribed, bounced and complained addresses stay so whatever an
    /// import or an `add` says; only `subscribers reactivate` (or a new double opt-in, for an
    /// unsubscribe) brings them back.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            SubscriberStatus::Unsubscribed
                | SubscriberStatus::Bounced
                | SubscriberStatus::Complained
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
                    "unknown subscriber status `{s}`: use pending, active, unsubscribed, bounced or complained"
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
    /// When the row last changed, RFC 3339, UTC.
    pub updated_at: String,
    /// Why the status is what it is (the latest change's reason), when one was given.
    pub reason: Option<String>,
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
    /// The address is unsubscribed, bounced or complained and stays so.
    KeptFinal(SubscriberStatus),
    /// The address was erased: only a new double opt-in brings it back.
    Erased,
}

/// What a whole import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub added: usize,
    pub updated: usize,
    /// Rows whose address was already unsubscribed, bounced or complained: left as they were.
    pub kept_final: usize,
    /// Rows that repeated an address earlier in the same file.
    pub merged: usize,
    /// Existing addresses that the file marks unsubscribed, bounced or complained: applied.
    pub suppressed: usize,
    /// Lines (1-based) of rows refused because their address was erased.
    pub erased: Vec<usize>,
}

const SELECT: &str = "SELECT address, name, status, added_at, updated_at, reason FROM subscribers";

impl Store {
    /// One subscriber by address; `None` also for text that is no address at all.
    pub fn subscriber(&self, address: impl ToAddress) -> Result<Option<Subscriber>> {
        let Ok(a) = address.to_address() else {
            return Ok(None);
        };
        self.conn
            .query_opt(&format!("{SELECT} WHERE address = ?1"), p![a.as_str()])?
            .map(|r| row_to_subscriber(&r))
            .transpose()
    }

    /// Every subscriber, or those in one status, by address.
    pub fn subscribers(&self, status: Option<SubscriberStatus>) -> Result<Vec<Subscriber>> {
        let rows = match status {
            Some(s) => self.conn.query(
                &format!("{SELECT} WHERE status = ?1 ORDER BY address"),
                p![s.as_str()],
            )?,
            None => self
                .conn
                .query(&format!("{SELECT} ORDER BY address"), p![])?,
        };
        rows.iter().map(row_to_subscriber).collect()
    }

    /// Adds an active subscriber (the operator's `add`), or activates a pending one; never
    /// reactivates an unsubscribed, bounced or complained address, nor an erased one.
    pub fn add_active(
        &mut self,
        address: impl ToAddress,
        name: Option<&str>,
    ) -> Result<AddOutcome> {
        let a = address.to_address()?;
        let tx = self.conn.write()?;
        if super::erase::matcher(&tx, &self.keys)?.matches(&a) {
            return Ok(AddOutcome::Erased);
        }
        let out = upsert(
            &tx,
            &a,
            normalize_name(name),
            SubscriberStatus::Active,
            ChangePath::Operator,
            None,
            &now_text(),
        )?;
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
        let tx = self.conn.write()?;
        let out = match current_status(&tx, &a)? {
            None => {
                let at = now_text();
                let name = normalize_name(name);
                record_status_change(
                    &tx,
                    &StatusChange {
                        address: &a,
                        name: name.as_deref(),
                        from: None,
                        to: SubscriberStatus::Pending,
                        path: ChangePath::Form,
                        reason: None,
                        at: &at,
                    },
                )?;
                AddOutcome::Added
            }
            Some(s) if s.is_final() => AddOutcome::KeptFinal(s),
            Some(_) => AddOutcome::Updated,
        };
        tx.commit()?;
        Ok(out)
    }

    /// Confirms a pending sign-up (the confirm link). Returns the status after the call, or
    /// `None` for an unknown address. Only `pending` moves; a confirm link cannot undo an
    /// unsubscribe or a bounce.
    pub fn confirm(&mut self, address: impl ToAddress) -> Result<Option<SubscriberStatus>> {
        let Ok(a) = address.to_address() else {
            return Ok(None);
        };
        let tx = self.conn.write()?;
        let now = current_status(&tx, &a)?;
        if now == Some(SubscriberStatus::Pending) {
            let at = now_text();
            record_status_change(
                &tx,
                &StatusChange {
                    address: &a,
                    name: None,
                    from: now,
                    to: SubscriberStatus::Active,
                    path: ChangePath::Link,
                    reason: None,
                    at: &at,
                },
            )?;
        }
        tx.commit()?;
        Ok(self.subscriber(&a)?.map(|s| s.status))
    }

    /// Sets a subscriber's status as the operator says. Returns false when the address is
    /// unknown.
    pub fn subscriber_set_status(
        &mut self,
        address: impl ToAddress,
        status: SubscriberStatus,
    ) -> Result<bool> {
        let Ok(a) = address.to_address() else {
            return Ok(false);
        };
        Ok(self
            .change_status(&a, status, ChangePath::Operator, None)?
            .is_some())
    }

    /// Marks an address unsubscribed (the operator's `remove`), keeping the row. Returns false
    /// when it is unknown.
    pub fn unsubscribe(&mut self, address: impl ToAddress) -> Result<bool> {
        self.subscriber_set_status(address, SubscriberStatus::Unsubscribed)
    }
}

/// Adds `address` in `status` or brings an existing row to it, never out of a suppression.
/// `at` is the time recorded (one per transaction).
pub(crate) fn upsert(
    tx: &Conn,
    address: &Address,
    name: Option<String>,
    status: SubscriberStatus,
    path: ChangePath,
    reason: Option<&str>,
    at: &str,
) -> Result<AddOutcome> {
    let change = |from| StatusChange {
        address,
        name: name.as_deref(),
        from,
        to: status,
        path,
        reason,
        at,
    };
    // Most rows of an import are new: try that first, one statement instead of two.
    if record_status_change(tx, &change(None))? {
        return Ok(AddOutcome::Added);
    }
    match current_status(tx, address)? {
        None => anyhow::bail!("{address} vanished during the transaction"),
        Some(s) if s.is_final() => Ok(AddOutcome::KeptFinal(s)),
        Some(s) => {
            if name.is_some() {
                tx.execute(
                    "UPDATE subscribers SET name = ?2, updated_at = ?3 WHERE address = ?1",
                    p![address.as_str(), &name, at],
                )?;
            }
            // Pending only moves up to what is asked; active stays active for a pending row.
            let to = if s == SubscriberStatus::Active && status == SubscriberStatus::Pending {
                s
            } else {
                status
            };
            if to != s {
                record_status_change(
                    tx,
                    &StatusChange {
                        to,
                        ..change(Some(s))
                    },
                )?;
            }
            Ok(AddOutcome::Updated)
        }
    }
}

fn row_to_subscriber(r: &Row) -> Result<Subscriber> {
    Ok(Subscriber {
        address: Address::unchecked(r.get(0)?),
        name: r.get(1)?,
        status: r.get::<String>(2)?.parse()?,
        added_at: r.get(3)?,
        updated_at: r.get(4)?,
        reason: r.get(5)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::db::Backend;
    use crate::store::testing::on_both;

    fn store(backend: Backend) -> (crate::store::testing::Keep, Store) {
        crate::store::testing::store(backend)
    }

    #[test]
    fn names_are_one_trimmed_line() {
        assert_eq!(
            normalize_name(Some(" Ann\r\nBcc: x  Lee ")).as_deref(),
            Some("Ann Bcc: x Lee")
        );
        assert_eq!(normalize_name(Some("  ")), None);
    }

    fn final_statuses_are_never_reactivated(backend: Backend) {
        let (_d, mut s) = store(backend);
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
                merged: 1,
                ..Default::default()
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

    fn double_opt_in(backend: Backend) {
        let (_d, mut s) = store(backend);
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

    on_both!(final_statuses_are_never_reactivated, double_opt_in);
}
