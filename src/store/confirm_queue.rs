//! The queue of confirmation mails: a sign-up is answered at once and its mail is queued here,
//! then sent by `serve` and retried with backoff until it is handed over or its link expires,
//! so no sign-up is lost to an SMTP server that is down for a while.

use super::db::{p, Row};
use super::Store;
use anyhow::Result;

/// How long a `serve` process holds the mails it took from the queue before another may take
/// them (it crashed, or its SMTP server hangs): longer than a send's SMTP timeouts.
const CLAIM_SECS: i64 = 300;

/// Which mail: the confirmation link, or the welcome after confirming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    Confirm,
    Welcome,
}

impl MailKind {
    fn as_str(self) -> &'static str {
        match self {
            MailKind::Confirm => "confirm",
            MailKind::Welcome => "welcome",
        }
    }
}

/// A mail of `serve` waiting to go out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedConfirmation {
    pub address: String,
    pub kind: MailKind,
    pub name: Option<String>,
    /// When it was queued: names this sign-up (a newer one replaces it).
    pub queued_at: i64,
    /// When its link stops working.
    pub expires_at: i64,
    pub attempts: u32,
}

/// A mail whose link expired before it could be sent: the address and the last error.
pub(crate) type Expired = (String, Option<String>);

impl Store {
    /// Queues the confirmation mail of a sign-up, replacing an older one for the address.
    pub(crate) fn queue_confirmation(
        &self,
        kind: MailKind,
        address: &str,
        name: Option<&str>,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO confirm_queue (address, kind, name, queued_at, expires_at, attempts, next_attempt_at)
             VALUES (?1, ?5, ?2, ?3, ?4, 0, ?3)
             ON CONFLICT (address, kind) DO UPDATE SET name = excluded.name,
                 queued_at = excluded.queued_at, expires_at = excluded.expires_at,
                 attempts = 0, next_attempt_at = excluded.next_attempt_at, last_error = NULL",
            p![address, name, now, expires_at, kind.as_str()],
        )?;
        Ok(())
    }

    /// Up to `limit` mails due at `now`, oldest first; mails whose link expired are dropped
    /// and returned apart, for the log.
    pub(crate) fn due_confirmations(
        &self,
        now: i64,
        limit: usize,
    ) -> Result<(Vec<QueuedConfirmation>, Vec<Expired>)> {
        let expired: Vec<Expired> = self
            .conn
            .query(
                "DELETE FROM confirm_queue WHERE expires_at <= ?1 RETURNING address, last_error",
                p![now],
            )?
            .iter()
            .map(|r| Ok((r.get(0)?, r.get(1)?)))
            .collect::<Result<_>>()?;
        // The mails are taken: pushed out of reach of another `serve` process for
        // [`CLAIM_SECS`]; sent ones are deleted and failed ones given their next attempt.
        let sql = format!(
            "UPDATE confirm_queue SET next_attempt_at = ?3
             WHERE (address, kind) IN (
                 SELECT address, kind FROM confirm_queue WHERE next_attempt_at <= ?1
                 ORDER BY next_attempt_at, address LIMIT ?2 {})
             RETURNING address, name, queued_at, expires_at, attempts, kind",
            if self.conn.is_postgres() {
                "FOR UPDATE SKIP LOCKED"
            } else {
                ""
            }
        );
        let mut due = self
            .conn
            .query(&sql, p![now, limit, now + CLAIM_SECS])?
            .iter()
            .map(queued_of_row)
            .collect::<Result<Vec<_>>>()?;
        due.sort_by(|a, b| (a.attempts, &a.address).cmp(&(b.attempts, &b.address)));
        Ok((due, expired))
    }

    /// The mail was handed over: it leaves the queue (unless a newer sign-up replaced it).
    pub(crate) fn confirmation_sent(&self, q: &QueuedConfirmation) -> Result<()> {
        self.conn.execute(
            "DELETE FROM confirm_queue WHERE address = ?1 AND kind = ?2 AND queued_at = ?3",
            p![&q.address, q.kind.as_str(), q.queued_at],
        )?;
        Ok(())
    }

    /// The mail could not be handed over: try again at `next_attempt_at`.
    pub(crate) fn confirmation_failed(
        &self,
        q: &QueuedConfirmation,
        next_attempt_at: i64,
        error: &str,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE confirm_queue SET attempts = attempts + 1, next_attempt_at = ?3,
                 last_error = ?4
             WHERE address = ?1 AND queued_at = ?2 AND kind = ?5",
            p![
                &q.address,
                q.queued_at,
                next_attempt_at,
                error,
                q.kind.as_str()
            ],
        )?;
        Ok(())
    }

    /// How many confirmation mails wait.
    pub fn queued_confirmations(&self) -> Result<usize> {
        self.conn
            .query_one("SELECT COUNT(*) FROM confirm_queue", p![])?
            .get(0)
    }
}

fn queued_of_row(r: &Row) -> Result<QueuedConfirmation> {
    Ok(QueuedConfirmation {
        address: r.get(0)?,
        name: r.get(1)?,
        queued_at: r.get(2)?,
        expires_at: r.get(3)?,
        attempts: r.get(4)?,
        kind: if r.get::<String>(5)? == "welcome" {
            MailKind::Welcome
        } else {
            MailKind::Confirm
        },
    })
}

/// Seconds before the next try after `attempts` failed ones: 5 s, 15 s, 1 min, 5 min, 15 min,
/// then every hour until the link expires.
pub(crate) fn retry_delay(attempts: u32) -> i64 {
    match attempts {
        0 | 1 => 5,
        2 => 15,
        3 => 60,
        4 => 300,
        5 => 900,
        _ => 3600,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::db::Backend;
    use crate::store::testing::on_both;

    fn a_queued_mail_is_due_retried_replaced_and_expires(backend: Backend) {
        let (_d, s) = crate::store::testing::store(backend);
        let c = MailKind::Confirm;
        s.queue_confirmation(c, "a@x.org", Some("Ann"), 100, 1000)
            .unwrap();
        let (due, _) = s.due_confirmations(100, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].name.as_deref(), Some("Ann"));
        let first = due[0].clone();
        s.confirmation_failed(&first, 100 + retry_delay(1), "down")
            .unwrap();
        assert!(s.due_confirmations(101, 10).unwrap().0.is_empty());
        let (due, _) = s.due_confirmations(105, 10).unwrap();
        assert_eq!(due[0].attempts, 1);
        // A newer sign-up replaces the mail; the old attempt's result changes nothing.
        s.queue_confirmation(c, "a@x.org", None, 200, 1100).unwrap();
        s.confirmation_sent(&first).unwrap();
        assert_eq!(s.queued_confirmations().unwrap(), 1);
        // The welcome mail of the same address waits beside it.
        s.queue_confirmation(MailKind::Welcome, "a@x.org", None, 200, 1100)
            .unwrap();
        assert_eq!(s.queued_confirmations().unwrap(), 2);
        for q in s.due_confirmations(200, 10).unwrap().0 {
            s.confirmation_sent(&q).unwrap();
        }
        assert_eq!(s.queued_confirmations().unwrap(), 0);
        s.queue_confirmation(c, "b@x.org", None, 300, 400).unwrap();
        let (due, expired) = s.due_confirmations(400, 10).unwrap();
        assert!(due.is_empty());
        assert_eq!(expired, [("b@x.org".to_string(), None)]);
        assert_eq!(s.queued_confirmations().unwrap(), 0);
    }

    /// Two `serve` processes polling the queue at once never take the same mail.
    fn two_pollers_take_each_mail_once(backend: Backend) {
        let (_d, s) = crate::store::testing::store(backend);
        for i in 0..40 {
            s.queue_confirmation(MailKind::Confirm, &format!("u{i}@x.org"), None, 100, 9999)
                .unwrap();
        }
        let other = Store::open_at(s.location()).unwrap();
        let (a, _) = s.due_confirmations(100, 25).unwrap();
        let (b, _) = other.due_confirmations(100, 25).unwrap();
        assert_eq!((a.len(), b.len()), (25, 15));
        let mut all: Vec<_> = a.iter().chain(&b).map(|q| q.address.clone()).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 40);
        // Taken mails come back when their taker never reports (it crashed).
        let (again, _) = s.due_confirmations(100 + CLAIM_SECS, 100).unwrap();
        assert_eq!(again.len(), 40);
    }

    on_both!(
        a_queued_mail_is_due_retried_replaced_and_expires,
        two_pollers_take_each_mail_once
    );
}
