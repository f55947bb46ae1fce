//! What returned mail changes on the list: bounces, soft bounces counted over a window,
//! complaints and mailed unsubscribes, each message applied once (a report read twice changes
//! nothing the second time).

use anyhow::Result;

use super::db::{p, Conn};
use super::history::{current_status, record_status_change, ChangePath, StatusChange};
use super::{now_text, Store, SubscriberStatus};

/// What a message asks of the list, for one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act<'a> {
    /// A permanent failure of the recipient's mailbox.
    HardBounce { reply: &'a str },
    /// A delay or a transient failure: counted; `limit` of them within `window_secs` bounce.
    SoftBounce {
        reply: &'a str,
        limit: u32,
        window_secs: i64,
    },
    /// A feedback-loop complaint: the address is suppressed for good.
    Complaint { reason: &'a str },
    /// An unsubscribe request by mail.
    Unsubscribe { reason: &'a str },
}

/// What applying a message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// This message was applied before: nothing changed now.
    AlreadyHandled,
    /// The address is not on the list.
    NotOnList,
    /// The status changed.
    Changed {
        from: SubscriberStatus,
        to: SubscriberStatus,
    },
    /// A soft bounce was counted: `count` within the window, fewer than the limit.
    Counted { count: u32 },
    /// The address already had a status this message would not change.
    Unchanged(SubscriberStatus),
}

impl Store {
    /// Whether the message with `key` (its Message-ID, else a hash of its bytes) was applied.
    pub fn inbound_handled(&self, key: &str) -> Result<bool> {
        Ok(self
            .conn
            .query_opt("SELECT 1 FROM inbound_messages WHERE key = ?1", p![key])?
            .is_some())
    }

    /// Applies what message `key` says about `address` in one transaction, and remembers the
    /// key, so that the same message applied again changes nothing. `issue`, when known, names
    /// the delivery whose ledger row gets the report's reply.
    pub fn apply_inbound(
        &mut self,
        key: &str,
        address: &str,
        issue: Option<&str>,
        act: Act<'_>,
        now: i64,
    ) -> Result<Applied> {
        let tx = self.conn.write()?;
        let fresh = tx.execute(
            "INSERT INTO inbound_messages (key, address, at) VALUES (?1, ?2, ?3)
             ON CONFLICT (key, address) DO NOTHING",
            p![key, address, now],
        )? == 1;
        if !fresh {
            return Ok(Applied::AlreadyHandled);
        }
        let Some(from) = current_status(&tx, address)? else {
            tx.commit()?;
            return Ok(Applied::NotOnList);
        };
        let change = |to: SubscriberStatus, path: ChangePath, reason: &str| -> Result<Applied> {
            record_status_change(
                &tx,
                &StatusChange {
                    address,
                    name: None,
                    from: Some(from),
                    to,
                    path,
                    reason: Some(reason),
                    at: &now_text(),
                },
            )?;
            Ok(Applied::Changed { from, to })
        };
        let receives = matches!(from, SubscriberStatus::Active | SubscriberStatus::Pending);
        let out = match act {
            Act::HardBounce { reply } => {
                note_on_delivery(&tx, address, issue, &format!("bounced later: {reply}"))?;
                if receives {
                    change(SubscriberStatus::Bounced, ChangePath::Bounce, reply)?
                } else {
                    Applied::Unchanged(from)
                }
            }
            Act::SoftBounce {
                reply,
                limit,
                window_secs,
            } => {
                note_on_delivery(&tx, address, issue, &format!("delayed later: {reply}"))?;
                tx.execute(
                    "INSERT INTO soft_bounces (address, at, reply) VALUES (?1, ?2, ?3)",
                    p![address, now, reply],
                )?;
                let count: u32 = tx
                    .query_one(
                        "SELECT COUNT(*) FROM soft_bounces WHERE address = ?1 AND at > ?2",
                        p![address, now - window_secs],
                    )?
                    .get(0)?;
                if !receives {
                    Applied::Unchanged(from)
                } else if count >= limit {
                    let days = window_secs / 86_400;
                    let why = format!("{count} soft bounces in {days} days; the last: {reply}");
                    change(SubscriberStatus::Bounced, ChangePath::Bounce, &why)?
                } else {
                    Applied::Counted { count }
                }
            }
            Act::Complaint { reason } => {
                note_on_delivery(&tx, address, issue, &format!("complained later: {reason}"))?;
                if from == SubscriberStatus::Complained {
                    Applied::Unchanged(from)
                } else {
                    change(SubscriberStatus::Complained, ChangePath::Complaint, reason)?
                }
            }
            Act::Unsubscribe { reason } => {
                if receives {
                    change(SubscriberStatus::Unsubscribed, ChangePath::Mail, reason)?
                } else {
                    Applied::Unchanged(from)
                }
            }
        };
        tx.commit()?;
        Ok(out)
    }

    /// Remembers a message that named nobody on the list, so a second reading is known.
    pub fn note_inbound(&mut self, key: &str, now: i64) -> Result<bool> {
        Ok(self.conn.execute(
            "INSERT INTO inbound_messages (key, address, at) VALUES (?1, '', ?2)
             ON CONFLICT (key, address) DO NOTHING",
            p![key, now],
        )? == 1)
    }

    /// The issue and address of delivery row `id` (a VERP token names it).
    pub fn delivery(&self, id: i64) -> Result<Option<(String, String)>> {
        self.conn
            .query_opt(
                "SELECT issue, address FROM deliveries WHERE id = ?1",
                p![id],
            )?
            .map(|r| Ok((r.get(0)?, r.get(1)?)))
            .transpose()
    }

    /// Whether `address` was ever sent an issue: a report naming an address that never got
    /// mail from us is not trusted without a token.
    pub fn was_sent_to(&self, address: &str) -> Result<bool> {
        Ok(self
            .conn
            .query_opt(
                "SELECT 1 FROM deliveries WHERE address = ?1 AND state IN ('sent', 'unknown', 'in_flight') LIMIT 1",
                p![address],
            )?
            .is_some())
    }

    /// The later bounces, delays and complaints of one issue, as noted on its sent rows:
    /// (address, attempts, note, updated_at), by address.
    pub fn later_reports(&self, issue: &str) -> Result<Vec<(String, u32, String, String)>> {
        self.conn
            .query(
                "SELECT address, attempts, last_reply, updated_at FROM deliveries
                 WHERE issue = ?1 AND state = 'sent'
                 AND (last_reply LIKE 'bounced later: %' OR last_reply LIKE 'delayed later: %'
                      OR last_reply LIKE 'complained later: %')
                 ORDER BY address",
                p![issue],
            )?
            .iter()
            .map(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .collect()
    }
}

/// Writes the report's reply on the delivery it answers: that issue's row when the issue is
/// known, else the address's latest sent row.
fn note_on_delivery(tx: &Conn, address: &str, issue: Option<&str>, note: &str) -> Result<()> {
    let n = match issue {
        Some(issue) => tx.execute(
            "UPDATE deliveries SET last_reply = ?3 WHERE address = ?1 AND issue = ?2 AND state = 'sent'",
            p![address, issue, note],
        )?,
        None => 0,
    };
    if n == 0 {
        tx.execute(
            "UPDATE deliveries SET last_reply = ?2 WHERE id =
             (SELECT id FROM deliveries WHERE address = ?1 AND state = 'sent' ORDER BY id DESC LIMIT 1)",
            p![address, note],
        )?;
    }
    Ok(())
}
