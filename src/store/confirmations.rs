//! What `serve` asks of the state file: unsubscribe and confirmation links, sign-ups, and
//! when a confirmation mail last went to an address (`serve_confirm_mails`).

use anyhow::Result;

use super::db::p;
use super::erase::{clear_erased, matcher};
use super::history::{current_status, record_status_change, ChangePath, StatusChange};
use super::{now_text, Store, SubscriberStatus, ToAddress};

/// What an unsubscribe link did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unsubscribed {
    /// A pending or active subscriber is now unsubscribed.
    Now,
    /// Already unsubscribed, bounced, complained or erased: nothing changed.
    Already,
    /// No such row (removed by hand): a row `unsubscribed` now keeps a later import from
    /// mailing the address again.
    Recorded,
}

/// What a sign-up asks of the server, decided from the address's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignUp {
    /// Mail a confirmation link (new, pending, erased, or unsubscribed and asking to come
    /// back).
    SendConfirmation,
    /// Already active: nothing to do.
    AlreadyActive,
    /// Bounced: mailing it again would only bounce again.
    Bounced,
    /// The address reported an issue as spam: only the operator reactivates it.
    Complained,
}

/// What a confirmation link did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Confirmed {
    /// Now active (it was pending, or unsubscribed or erased before this link was made).
    Activated,
    AlreadyActive,
    /// Unsubscribed or erased after this link was made: an old link does not undo that.
    UnsubscribedSince,
    /// Bounced addresses are only reactivated by an operator.
    Bounced,
    /// Nor are addresses that complained.
    Complained,
}

impl Store {
    /// Marks the address of a verified unsubscribe link unsubscribed. A bounced address stays
    /// bounced: both receive nothing, and the bounce says more.
    pub(crate) fn serve_unsubscribe(&mut self, address: impl ToAddress) -> Result<Unsubscribed> {
        let a = address.to_address()?;
        let at = now_text();
        let tx = self.conn.write()?;
        let from = current_status(&tx, &a)?;
        let change = |from| StatusChange {
            address: &a,
            name: None,
            from,
            to: SubscriberStatus::Unsubscribed,
            path: ChangePath::Link,
            reason: None,
            at: &at,
        };
        let out = match from {
            Some(SubscriberStatus::Pending | SubscriberStatus::Active) => {
                record_status_change(&tx, &change(from))?;
                Unsubscribed::Now
            }
            Some(_) => Unsubscribed::Already,
            // An erased address stays without a row: nothing is mailed to it anyway.
            None if matcher(&tx, &self.keys)?.matches(&a) => Unsubscribed::Already,
            None => {
                record_status_change(&tx, &change(None))?;
                Unsubscribed::Recorded
            }
        };
        tx.commit()?;
        Ok(out)
    }

    /// Records a sign-up (a new address becomes `pending`; an existing row keeps its status)
    /// and says whether a confirmation mail is called for.
    pub(crate) fn serve_sign_up(
        &mut self,
        address: impl ToAddress,
        name: Option<&str>,
    ) -> Result<SignUp> {
        let a = address.to_address()?;
        self.add_pending(&a, name)?;
        let status = self
            .subscriber(&a)?
            .map(|s| s.status)
            .unwrap_or(SubscriberStatus::Pending);
        Ok(match status {
            SubscriberStatus::Pending | SubscriberStatus::Unsubscribed => SignUp::SendConfirmation,
            SubscriberStatus::Active => SignUp::AlreadyActive,
            SubscriberStatus::Bounced => SignUp::Bounced,
            SubscriberStatus::Complained => SignUp::Complained,
        })
    }
    /// Takes the address's one confirmation mail per `min_gap_secs`. Returns `None` when one
    /// went out more recently, else the previous time (for [`Store::serve_release_mail`]).
    pub(crate) fn serve_claim_mail(
        &mut self,
        address: &str,
        now: i64,
        min_gap_secs: i64,
    ) -> Result<Option<Option<i64>>> {
        let tx = self.conn.write()?;
        // Rows older than the gap decide nothing any more; dropping them keeps the table small.
        tx.execute(
            "DELETE FROM serve_confirm_mails WHERE last_sent_at <= ?1",
            p![now - min_gap_secs],
        )?;
        let last: Option<i64> = tx
            .query_opt(
                "SELECT last_sent_at FROM serve_confirm_mails WHERE address = ?1",
                p![address],
            )?
            .map(|r| r.get(0))
            .transpose()?;
        if last.is_some_and(|t| now - t < min_gap_secs) {
            return Ok(None);
        }
        tx.execute(
            "INSERT INTO serve_confirm_mails (address, last_sent_at) VALUES (?1, ?2)
             ON CONFLICT (address) DO UPDATE SET last_sent_at = excluded.last_sent_at",
            p![address, now],
        )?;
        tx.commit()?;
        Ok(Some(last))
    }

    /// Gives the claim back after the mail could not be handed to the SMTP server.
    pub(crate) fn serve_release_mail(&self, address: &str, claimed_at: i64, previous: Option<i64>) {
        let r = match previous {
            Some(p) => self.conn.execute(
                "UPDATE serve_confirm_mails SET last_sent_at = ?3
                 WHERE address = ?1 AND last_sent_at = ?2",
                p![address, claimed_at, p],
            ),
            None => self.conn.execute(
                "DELETE FROM serve_confirm_mails WHERE address = ?1 AND last_sent_at = ?2",
                p![address, claimed_at],
            ),
        };
        if let Err(e) = r {
            tracing::warn!("could not release the confirmation mail limit: {e}");
        }
    }

    /// Applies a verified confirmation link made at `minted_at` (Unix time). A link made
    /// after an erasure is a new double opt-in: the address comes back and its erasure is
    /// forgotten.
    pub(crate) fn serve_confirm(
        &mut self,
        address: impl ToAddress,
        minted_at: i64,
    ) -> Result<Confirmed> {
        let a = address.to_address()?;
        let at = now_text();
        let tx = self.conn.write()?;
        let erased = matcher(&tx, &self.keys)?;
        if erased
            .erased_at(&a)
            .is_some_and(|t| timestamp(t) > minted_at)
        {
            return Ok(Confirmed::UnsubscribedSince);
        }
        let row: Option<(String, String)> = tx
            .query_opt(
                "SELECT status, updated_at FROM subscribers WHERE address = ?1",
                p![a.as_str()],
            )?
            .map(|r| Ok::<_, anyhow::Error>((r.get(0)?, r.get(1)?)))
            .transpose()?;
        let activate = |from| {
            record_status_change(
                &tx,
                &StatusChange {
                    address: &a,
                    name: None,
                    from,
                    to: SubscriberStatus::Active,
                    path: ChangePath::Link,
                    reason: None,
                    at: &at,
                },
            )
        };
        let out = match row {
            // The row was removed by hand after the link went out; the link still proves
            // the address asked to be subscribed.
            None => {
                activate(None)?;
                Confirmed::Activated
            }
            Some((status, updated_at)) => match status.parse::<SubscriberStatus>()? {
                from @ SubscriberStatus::Pending => {
                    activate(Some(from))?;
                    Confirmed::Activated
                }
                SubscriberStatus::Active => Confirmed::AlreadyActive,
                SubscriberStatus::Bounced => Confirmed::Bounced,
                SubscriberStatus::Complained => Confirmed::Complained,
                from @ SubscriberStatus::Unsubscribed => {
                    if timestamp(&updated_at) < minted_at {
                        activate(Some(from))?;
                        Confirmed::Activated
                    } else {
                        Confirmed::UnsubscribedSince
                    }
                }
            },
        };
        if out == Confirmed::Activated {
            clear_erased(&tx, &self.keys, &a)?;
        }
        tx.commit()?;
        Ok(out)
    }
}

/// Unix seconds of a stored RFC 3339 time; an unreadable one counts as the far future.
fn timestamp(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|t| t.timestamp())
        .unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::db::Backend;
    use crate::store::testing::on_both;

    fn store(backend: Backend) -> (crate::store::testing::Keep, Store) {
        crate::store::testing::store(backend)
    }

    fn status(s: &Store, a: &str) -> Option<SubscriberStatus> {
        s.subscriber(a).unwrap().map(|x| x.status)
    }

    fn unsubscribe_is_idempotent_and_keeps_bounces(backend: Backend) {
        let (_d, mut s) = store(backend);
        s.add_active("a@x.org", None).unwrap();
        assert_eq!(s.serve_unsubscribe("A@x.org").unwrap(), Unsubscribed::Now);
        assert_eq!(
            s.serve_unsubscribe("a@x.org").unwrap(),
            Unsubscribed::Already
        );
        assert_eq!(status(&s, "a@x.org"), Some(SubscriberStatus::Unsubscribed));
        s.add_active("b@x.org", None).unwrap();
        s.subscriber_set_status("b@x.org", SubscriberStatus::Bounced)
            .unwrap();
        assert_eq!(
            s.serve_unsubscribe("b@x.org").unwrap(),
            Unsubscribed::Already
        );
        assert_eq!(status(&s, "b@x.org"), Some(SubscriberStatus::Bounced));
        assert_eq!(
            s.serve_unsubscribe("gone@x.org").unwrap(),
            Unsubscribed::Recorded
        );
        assert_eq!(
            s.add_active("gone@x.org", None).unwrap(),
            crate::store::AddOutcome::KeptFinal(SubscriberStatus::Unsubscribed)
        );
    }

    fn sign_up_never_changes_standing(backend: Backend) {
        let (_d, mut s) = store(backend);
        assert_eq!(
            s.serve_sign_up("n@x.org", Some("N")).unwrap(),
            SignUp::SendConfirmation
        );
        assert_eq!(status(&s, "n@x.org"), Some(SubscriberStatus::Pending));
        s.add_active("act@x.org", None).unwrap();
        assert_eq!(
            s.serve_sign_up("act@x.org", None).unwrap(),
            SignUp::AlreadyActive
        );
        s.add_active("b@x.org", None).unwrap();
        s.subscriber_set_status("b@x.org", SubscriberStatus::Bounced)
            .unwrap();
        assert_eq!(s.serve_sign_up("b@x.org", None).unwrap(), SignUp::Bounced);
        assert_eq!(status(&s, "b@x.org"), Some(SubscriberStatus::Bounced));
        s.add_active("u@x.org", None).unwrap();
        s.unsubscribe("u@x.org").unwrap();
        assert_eq!(
            s.serve_sign_up("u@x.org", None).unwrap(),
            SignUp::SendConfirmation
        );
        assert_eq!(status(&s, "u@x.org"), Some(SubscriberStatus::Unsubscribed));
        assert!(s.serve_sign_up("not an address", None).is_err());
    }

    fn one_mail_per_gap_and_release(backend: Backend) {
        let (_d, mut s) = store(backend);
        assert_eq!(
            s.serve_claim_mail("a@x.org", 1000, 3600).unwrap(),
            Some(None)
        );
        assert_eq!(s.serve_claim_mail("a@x.org", 1001, 3600).unwrap(), None);
        assert_eq!(s.serve_claim_mail("a@x.org", 4599, 3600).unwrap(), None);
        assert_eq!(
            s.serve_claim_mail("b@x.org", 4599, 3600).unwrap(),
            Some(None)
        );
        assert_eq!(
            s.serve_claim_mail("a@x.org", 4600, 3600).unwrap(),
            Some(None)
        );
        // A failed send gives the slot back.
        s.serve_release_mail("a@x.org", 4600, None);
        assert_eq!(
            s.serve_claim_mail("a@x.org", 4601, 3600).unwrap(),
            Some(None)
        );
        // Released to an earlier mail's time, that mail's hour holds again.
        s.serve_release_mail("a@x.org", 4601, Some(1500));
        assert_eq!(s.serve_claim_mail("a@x.org", 4602, 3600).unwrap(), None);
        assert_eq!(
            s.serve_claim_mail("a@x.org", 5100, 3600).unwrap(),
            Some(None)
        );
    }

    fn confirm_rules(backend: Backend) {
        let (_d, mut s) = store(backend);
        let now = chrono::Utc::now().timestamp();
        s.serve_sign_up("p@x.org", None).unwrap();
        assert_eq!(
            s.serve_confirm("p@x.org", now).unwrap(),
            Confirmed::Activated
        );
        assert_eq!(status(&s, "p@x.org"), Some(SubscriberStatus::Active));
        assert_eq!(
            s.serve_confirm("p@x.org", now).unwrap(),
            Confirmed::AlreadyActive
        );
        // Unsubscribed now: a link made before that does not bring the address back ...
        s.unsubscribe("p@x.org").unwrap();
        assert_eq!(
            s.serve_confirm("p@x.org", now - 10).unwrap(),
            Confirmed::UnsubscribedSince
        );
        assert_eq!(status(&s, "p@x.org"), Some(SubscriberStatus::Unsubscribed));
        // ... one made after it, from a new sign-up, does.
        assert_eq!(
            s.serve_confirm("p@x.org", now + 10).unwrap(),
            Confirmed::Activated
        );
        s.subscriber_set_status("p@x.org", SubscriberStatus::Bounced)
            .unwrap();
        assert_eq!(
            s.serve_confirm("p@x.org", now + 3600).unwrap(),
            Confirmed::Bounced
        );
        assert_eq!(status(&s, "p@x.org"), Some(SubscriberStatus::Bounced));
    }

    on_both!(
        unsubscribe_is_idempotent_and_keeps_bounces,
        sign_up_never_changes_standing,
        one_mail_per_gap_and_release,
        confirm_rules
    );
}
