//! The circuit breaker of a send: when the server refuses several different recipients in a
//! row with the same refusal that is not theirs (the sender rejected, relaying denied, the
//! content refused), the send as a whole is refused. It stops at once, and the rows it
//! refused for that reason go back to pending, so that nobody loses the issue to a relay's
//! misconfiguration.

use std::sync::Mutex;

use super::policy::{Refusal, Tally};

/// What the run does with a settled row, as the breaker sees it.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Record the change as settled.
    Record,
    /// The breaker already tripped on this refusal: the row goes back to pending.
    Requeue,
    /// This row trips the breaker: it and the rows listed (recorded before, with the tally
    /// they were counted in) go back to pending, and the send stops.
    Trip(Vec<(i64, Tally)>),
}

/// Why the breaker stopped the send.
#[derive(Debug, Clone, PartialEq)]
pub struct Tripped {
    pub refusal: Refusal,
    /// Recipients refused in a row.
    pub recipients: usize,
}

#[derive(Default)]
struct State {
    /// The refusal of the current streak and its rows so far.
    streak: Option<Refusal>,
    rows: Vec<(i64, Tally)>,
    tripped: Option<Tripped>,
}

pub struct Breaker {
    threshold: usize,
    state: Mutex<State>,
}

impl Breaker {
    /// Trips after `threshold` recipients in a row (at least 1).
    pub fn new(threshold: usize) -> Breaker {
        Breaker {
            threshold: threshold.max(1),
            state: Mutex::new(State::default()),
        }
    }

    /// Notes row `id`'s settlement: counted as `tally`, refused for `refusal` if not the
    /// recipient's fault. A delivery breaks the streak; another refusal starts a new one.
    pub fn note(&self, id: i64, tally: Tally, refusal: Option<&Refusal>) -> Step {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(r) = refusal else {
            if tally == Tally::Sent {
                s.streak = None;
                s.rows.clear();
            }
            return Step::Record;
        };
        if s.tripped.as_ref().is_some_and(|t| t.refusal.key == r.key) {
            return Step::Requeue;
        }
        if s.streak.as_ref().map(|x| &x.key) != Some(&r.key) {
            s.streak = Some(r.clone());
            s.rows.clear();
        }
        if s.rows.len() + 1 < self.threshold {
            s.rows.push((id, tally));
            return Step::Record;
        }
        let rows = std::mem::take(&mut s.rows);
        s.tripped = Some(Tripped {
            refusal: r.clone(),
            recipients: rows.len() + 1,
        });
        s.streak = None;
        Step::Trip(rows)
    }

    pub fn tripped(&self) -> Option<Tripped> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .tripped
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::reply::Fault;

    fn refusal(key: &str) -> Refusal {
        Refusal {
            key: key.into(),
            reply: format!("{key} no"),
            fault: Fault::Sender,
            permanent: true,
        }
    }

    #[test]
    fn the_same_refusal_for_n_recipients_in_a_row_trips() {
        let b = Breaker::new(3);
        let a = refusal("550 5.1.0 Sender");
        assert_eq!(b.note(1, Tally::Failed, Some(&a)), Step::Record);
        // Not a delivery: greylisting and the like do not break the streak.
        assert_eq!(b.note(2, Tally::Deferred, None), Step::Record);
        assert_eq!(b.note(3, Tally::Failed, Some(&a)), Step::Record);
        assert_eq!(
            b.note(4, Tally::Failed, Some(&a)),
            Step::Trip(vec![(1, Tally::Failed), (3, Tally::Failed)])
        );
        assert_eq!(b.tripped().map(|t| t.recipients), Some(3));
        // Replies to messages already on their way go back to pending too.
        assert_eq!(b.note(5, Tally::Failed, Some(&a)), Step::Requeue);
    }

    #[test]
    fn a_delivery_or_another_refusal_starts_over() {
        let b = Breaker::new(2);
        let a = refusal("550 5.1.0 Sender");
        let other = refusal("554 5.7.1 Relay");
        assert_eq!(b.note(1, Tally::Failed, Some(&a)), Step::Record);
        assert_eq!(b.note(2, Tally::Sent, None), Step::Record);
        assert_eq!(b.note(3, Tally::Failed, Some(&a)), Step::Record);
        assert_eq!(b.note(4, Tally::Failed, Some(&other)), Step::Record);
        assert_eq!(b.tripped(), None);
        assert_eq!(
            b.note(5, Tally::Failed, Some(&other)),
            Step::Trip(vec![(4, Tally::Failed)])
        );
    }
}
