//! The retry policy, pure: how a send paces and retries, and [`settle`], which turns the SMTP
//! outcome of one attempt into the ledger change to record and what the run does next.

use std::collections::HashMap;
use std::time::Duration;

use rand::Rng;

use super::reply::{self, Fault, Phase, Reply, Verdict};
use super::session::Outcome;
use crate::config::SmtpConfig;
use crate::store::Change;

/// Retries after a 421 or a dropped session; they do not count as attempts, but a message
/// that kills every session it is sent on must not loop forever.
pub const FREE_RETRIES: u32 = 3;

/// How a send paces and retries.
#[derive(Debug, Clone)]
pub struct Settings {
    pub concurrency: usize,
    pub per_connection: usize,
    /// Messages per second over all sessions.
    pub rate: f64,
    pub max_attempts: u32,
    /// The first backoff after a 4xx; it doubles with every attempt.
    pub retry_after: Duration,
    /// How long after its first attempt a deferred row is still retried.
    pub max_age_hours: i64,
    /// Messages per second per recipient domain (lowercase), from `[smtp.domains]`.
    pub domains: HashMap<String, f64>,
    /// Recipients in a row refused for a reason not theirs before the run stops.
    pub stop_after: usize,
}

impl Settings {
    pub fn from_config(c: &SmtpConfig) -> Settings {
        Settings {
            concurrency: c.concurrency.max(1),
            per_connection: c.per_connection.max(1),
            rate: c.rate,
            max_attempts: c.max_attempts.max(1),
            retry_after: Duration::from_secs(c.retry_after_secs),
            max_age_hours: c.max_age_hours.max(1),
            domains: c
                .domains
                .iter()
                .map(|(d, x)| (d.trim().to_ascii_lowercase(), x.rate))
                .collect(),
            stop_after: c.stop_after_refusals.max(1),
        }
    }

    /// Whether a retry at `next_attempt_at` would come after the age cap of a row first
    /// attempted at `first_attempt_at`. Such a row is failed at once: the run that reached
    /// it would fail it without trying, and until then it would only keep `send` exiting 75.
    pub fn past_age_cap(&self, first_attempt_at: i64, next_attempt_at: i64) -> bool {
        first_attempt_at < age_cutoff(next_attempt_at, self.max_age_hours)
    }

    /// When a row deferred for the `attempts`-th time is due again: `retry_after` doubled per
    /// earlier attempt, plus `jitter` (a fraction, see [`jitter`]) more so deferred rows do
    /// not return in a herd.
    pub fn next_attempt(&self, now: i64, attempts: u32, jitter: f64) -> i64 {
        let base =
            self.retry_after.as_secs_f64() * 2f64.powi(attempts.saturating_sub(1).min(20) as i32);
        now + (base * (1.0 + jitter)).ceil() as i64
    }
}

/// A fresh jitter for [`Settings::next_attempt`]: up to a quarter of the backoff.
pub fn jitter() -> f64 {
    rand::thread_rng().gen_range(0.0..=0.25)
}

/// The earliest first attempt a deferred row may have at `at` (Unix seconds) without being
/// older than `max_age_hours`: a row whose first attempt is before it is past the cap.
///
/// The start of a run (which fails such rows) and the scheduling of a retry (which fails a
/// row rather than schedule it past the cap) both ask this, so they agree on the boundary:
/// a retry scheduled exactly at the cap is still made.
pub fn age_cutoff(at: i64, max_age_hours: i64) -> i64 {
    at.saturating_sub(max_age_hours.saturating_mul(3600))
}

/// The reply recorded for a delivery given up by age.
pub fn gave_up_by_age(max_age_hours: i64, last_reply: &str) -> String {
    format!("gave up after {max_age_hours} h: {last_reply}")
}

/// What is known of a row when its attempt is settled.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// Attempts counted before this one.
    pub attempts: u32,
    /// The row's first attempt (this one's claim time if it had none), Unix seconds.
    pub first_attempt_at: i64,
    /// Free retries this run already spent on the row (see [`FREE_RETRIES`]).
    pub free_retries: u32,
    /// Drawn by the caller ([`jitter`]), so that settling stays a pure function.
    pub jitter: f64,
}

/// Which counter of the run's statistics a settled row adds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tally {
    Sent,
    Deferred,
    Failed,
    Unknown,
}

/// A refusal that is not the recipient's and that, repeated for several recipients in a row,
/// stops the send (see [`Verdict::stops_the_send`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// What makes two refusals the same: the reply code, the enhanced code and the fault,
    /// not the text (it often names the recipient).
    pub key: String,
    pub reply: String,
    pub fault: Fault,
    pub permanent: bool,
}

impl Refusal {
    fn of(reply: &str, v: Verdict) -> Option<Refusal> {
        if !v.stops_the_send() {
            return None;
        }
        let r = Reply::parse_line(reply, Phase::Rcpt);
        let code = r.code.map(|c| c.to_string()).unwrap_or_default();
        let enhanced = r.enhanced.map(|e| e.to_string()).unwrap_or_default();
        Some(Refusal {
            key: format!("{code} {enhanced} {:?}", v.fault),
            reply: reply.to_string(),
            fault: v.fault,
            permanent: v.permanent,
        })
    }
}

/// What to do with a row after one attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Settlement {
    /// Record `change`; the row is done for this run. `slow_down` when the server asked
    /// for less (a 4xx other than greylisting): the pace of the recipient's domain halves.
    /// `refusal` when the server refused something that is not the recipient's.
    Done {
        change: Change,
        tally: Tally,
        slow_down: bool,
        refusal: Option<Refusal>,
    },
    /// Record `change` (back to pending) and queue the row again at the back, one free retry
    /// spent: the server never got the message.
    Again { change: Change },
    /// Record `change` (back to pending), put the row back at the front and stop the run:
    /// the server refused the session itself, so no recipient is at fault.
    Abort { change: Change, reason: String },
}

/// The retry policy: maps the outcome of one attempt to the ledger change and the next step.
/// `now` (Unix seconds) is when the outcome came in.
pub fn settle(outcome: Outcome, job: &Attempt, settings: &Settings, now: i64) -> Settlement {
    let attempts = job.attempts + 1;
    let failed =
        |reply: String, bounce: bool, slow_down: bool, refusal: Option<Refusal>| Settlement::Done {
            change: Change::Failed {
                reply,
                attempts,
                bounce,
            },
            tally: Tally::Failed,
            slow_down,
            refusal,
        };
    match outcome {
        Outcome::Sent(reply) => Settlement::Done {
            change: Change::Sent { reply },
            tally: Tally::Sent,
            slow_down: false,
            refusal: None,
        },
        Outcome::Retry(reply) if job.free_retries < FREE_RETRIES => Settlement::Again {
            change: Change::Release { reply },
        },
        Outcome::Retry(reply) | Outcome::Defer(reply) => {
            let verdict = reply::classify(&Reply::parse_line(&reply, Phase::Rcpt));
            let slow_down = verdict.fault != Fault::Greylist;
            let refusal = Refusal::of(&reply, verdict);
            if attempts >= settings.max_attempts {
                return failed(
                    format!("gave up after {attempts} attempts: {reply}"),
                    false,
                    slow_down,
                    refusal,
                );
            }
            let next_attempt_at = settings.next_attempt(now, attempts, job.jitter);
            if settings.past_age_cap(job.first_attempt_at, next_attempt_at) {
                let hours = settings.max_age_hours;
                return failed(
                    format!(
                        "gave up: the next attempt would come more than {hours} h after the first: {reply}"
                    ),
                    false,
                    slow_down,
                    refusal,
                );
            }
            Settlement::Done {
                change: Change::Deferred {
                    reply,
                    next_attempt_at,
                    attempts,
                },
                tally: Tally::Deferred,
                slow_down,
                refusal,
            }
        }
        Outcome::Fail {
            reply,
            bounce,
            fault,
        } => {
            let verdict = Verdict {
                fault,
                permanent: true,
                bounce,
            };
            let refusal = Refusal::of(&reply, verdict);
            failed(reply, bounce, false, refusal)
        }
        Outcome::Unknown(reply) => Settlement::Done {
            change: Change::Unknown { reply },
            tally: Tally::Unknown,
            slow_down: false,
            refusal: None,
        },
        Outcome::Abort(reply) => Settlement::Abort {
            change: Change::Release {
                reply: reply.clone(),
            },
            reason: reply,
        },
    }
}

#[cfg(test)]
mod tests;
