use super::*;
use crate::mail::reply::{Fault, Phase};
use crate::mail::session;

/// A reply to RCPT, as the session classifies it.
fn classify(code: u16, text: &str) -> Outcome {
    session::classify(code, text, Phase::Rcpt)
}

const NOW: i64 = 1_000_000;

fn settings() -> Settings {
    Settings {
        concurrency: 1,
        per_connection: 1,
        rate: 1.0,
        max_attempts: 5,
        retry_after: Duration::from_secs(100),
        max_age_hours: 72,
        domains: HashMap::new(),
        stop_after: 5,
    }
}

fn first_try() -> Attempt {
    Attempt {
        attempts: 0,
        first_attempt_at: NOW,
        free_retries: 0,
        jitter: 0.0,
    }
}

fn done(change: Change, tally: Tally, slow_down: bool) -> Settlement {
    Settlement::Done {
        change,
        tally,
        slow_down,
        refusal: None,
    }
}

fn refused(settlement: Settlement, key: &str, fault: Fault, permanent: bool) -> Settlement {
    let Settlement::Done {
        change,
        tally,
        slow_down,
        refusal: None,
    } = settlement
    else {
        panic!("{settlement:?}")
    };
    let reply = match &change {
        Change::Failed { reply, .. } | Change::Deferred { reply, .. } => reply.clone(),
        c => panic!("{c:?}"),
    };
    Settlement::Done {
        change,
        tally,
        slow_down,
        refusal: Some(Refusal {
            key: key.into(),
            reply,
            fault,
            permanent,
        }),
    }
}

#[test]
fn a_2xx_is_sent() {
    assert_eq!(
        settle(classify(250, "2.0.0 ok"), &first_try(), &settings(), NOW),
        done(
            Change::Sent {
                reply: "250 2.0.0 ok".into()
            },
            Tally::Sent,
            false
        )
    );
}

#[test]
fn a_4xx_on_the_first_try_is_deferred_by_the_first_backoff() {
    assert_eq!(
        settle(classify(451, "4.3.0 later"), &first_try(), &settings(), NOW),
        done(
            Change::Deferred {
                reply: "451 4.3.0 later".into(),
                next_attempt_at: NOW + 100,
                attempts: 1,
            },
            Tally::Deferred,
            true
        )
    );
    // The third deferral waits four times as long, plus its jitter.
    let third = Attempt {
        attempts: 2,
        jitter: 0.25,
        ..first_try()
    };
    let Settlement::Done {
        change: Change::Deferred {
            next_attempt_at, ..
        },
        ..
    } = settle(classify(452, "full"), &third, &settings(), NOW)
    else {
        panic!("not deferred");
    };
    assert_eq!(next_attempt_at, NOW + 500);
}

#[test]
fn a_4xx_at_max_attempts_fails_without_bouncing() {
    let last = Attempt {
        attempts: 4,
        ..first_try()
    };
    assert_eq!(
        settle(classify(451, "4.3.0 later"), &last, &settings(), NOW),
        done(
            Change::Failed {
                reply: "gave up after 5 attempts: 451 4.3.0 later".into(),
                attempts: 5,
                bounce: false,
            },
            Tally::Failed,
            true
        )
    );
}

#[test]
fn a_4xx_whose_retry_would_pass_the_max_age_fails() {
    // First tried 71 h 59 min ago: the retry in 100 s would come after the 72 h cap.
    let old = Attempt {
        attempts: 1,
        first_attempt_at: NOW - 72 * 3600 + 60,
        ..first_try()
    };
    // Greylisting does not slow the domain down.
    assert_eq!(
        settle(classify(450, "4.7.1 greylisted"), &old, &settings(), NOW),
        done(
            Change::Failed {
                reply: "gave up: the next attempt would come more than 72 h after the first: 450 4.7.1 greylisted".into(),
                attempts: 2,
                bounce: false,
            },
            Tally::Failed,
            false
        )
    );
    // A retry landing exactly on the cap (the second backoff, 200 s) is still made.
    let edge = Attempt {
        attempts: 1,
        first_attempt_at: NOW + 200 - 72 * 3600,
        ..first_try()
    };
    assert!(matches!(
        settle(classify(450, "later"), &edge, &settings(), NOW),
        Settlement::Done {
            tally: Tally::Deferred,
            ..
        }
    ));
}

#[test]
fn a_5xx_for_the_recipient_fails_and_bounces() {
    assert_eq!(
        settle(
            classify(550, "5.1.1 no such user"),
            &first_try(),
            &settings(),
            NOW
        ),
        done(
            Change::Failed {
                reply: "550 5.1.1 no such user".into(),
                attempts: 1,
                bounce: true,
            },
            Tally::Failed,
            false
        )
    );
}

#[test]
fn a_5xx_at_data_fails_without_bouncing() {
    // The session classifies a 554 to DATA or to the dot like any 5xx: the message, not the
    // address, was refused.
    assert_eq!(
        settle(
            session::classify(554, "5.7.1 spam", Phase::Content),
            &first_try(),
            &settings(),
            NOW
        ),
        refused(
            done(
                Change::Failed {
                    reply: "554 5.7.1 spam".into(),
                    attempts: 1,
                    bounce: false,
                },
                Tally::Failed,
                false
            ),
            "554 5.7.1 Policy",
            Fault::Policy,
            true
        )
    );
}

#[test]
fn a_sender_rejection_at_rcpt_fails_without_bouncing_and_counts_for_the_breaker() {
    let reply =
        "5.1.0 <news@example.org>: Sender address rejected: User unknown in local recipient table";
    assert_eq!(
        settle(classify(550, reply), &first_try(), &settings(), NOW),
        refused(
            done(
                Change::Failed {
                    reply: format!("550 {reply}"),
                    attempts: 1,
                    bounce: false,
                },
                Tally::Failed,
                false
            ),
            "550 5.1.0 Sender",
            Fault::Sender,
            true
        )
    );
}

#[test]
fn a_transient_relay_denial_is_deferred_and_counts_for_the_breaker() {
    assert_eq!(
        settle(
            classify(454, "4.7.1 <a@x.org>: Relay access denied"),
            &first_try(),
            &settings(),
            NOW
        ),
        refused(
            done(
                Change::Deferred {
                    reply: "454 4.7.1 <a@x.org>: Relay access denied".into(),
                    next_attempt_at: NOW + 100,
                    attempts: 1,
                },
                Tally::Deferred,
                true
            ),
            "454 4.7.1 Relay",
            Fault::Relay,
            false
        )
    );
}

#[test]
fn a_rate_limit_slows_the_domain_and_greylisting_does_not() {
    let slows = |code, text| match settle(classify(code, text), &first_try(), &settings(), NOW) {
        Settlement::Done {
            slow_down,
            refusal: None,
            tally: Tally::Deferred,
            ..
        } => slow_down,
        s => panic!("{s:?}"),
    };
    assert!(slows(
        450,
        "4.2.1 receiving mail at a rate that prevents additional messages"
    ));
    assert!(slows(451, "4.7.0 Try again later"));
    assert!(!slows(
        450,
        "4.2.0 <a@x.org>: Recipient address rejected: Greylisted"
    ));
}

#[test]
fn a_5xx_at_mail_from_aborts_the_run_and_releases_the_row() {
    let reason = "the server refused MAIL FROM: 550 5.7.1 relaying denied";
    assert_eq!(
        settle(
            Outcome::Abort(reason.into()),
            &first_try(),
            &settings(),
            NOW
        ),
        Settlement::Abort {
            change: Change::Release {
                reply: reason.into()
            },
            reason: reason.into(),
        }
    );
}

#[test]
fn a_421_or_a_connection_lost_before_the_dot_is_retried_for_free() {
    for outcome in [
        classify(421, "4.3.2 shutting down"),
        Outcome::Retry("sending the message: connection reset".into()),
    ] {
        let Outcome::Retry(reply) = outcome.clone() else {
            panic!("{outcome:?}")
        };
        assert_eq!(
            settle(outcome, &first_try(), &settings(), NOW),
            Settlement::Again {
                change: Change::Release { reply }
            }
        );
    }
    // Once the free retries are spent, it counts as a 4xx.
    let spent = Attempt {
        free_retries: FREE_RETRIES,
        ..first_try()
    };
    assert_eq!(
        settle(Outcome::Retry("421 bye".into()), &spent, &settings(), NOW),
        done(
            Change::Deferred {
                reply: "421 bye".into(),
                next_attempt_at: NOW + 100,
                attempts: 1,
            },
            Tally::Deferred,
            true
        )
    );
}

#[test]
fn a_connection_lost_after_the_dot_is_unknown() {
    let reply = "no reply to the final dot within 30 s";
    assert_eq!(
        settle(
            Outcome::Unknown(reply.into()),
            &first_try(),
            &settings(),
            NOW
        ),
        done(
            Change::Unknown {
                reply: reply.into()
            },
            Tally::Unknown,
            false
        )
    );
}

#[test]
fn backoff_doubles_with_jitter() {
    let s = settings();
    for (attempts, base) in [(1, 100), (2, 200), (3, 400)] {
        assert_eq!(s.next_attempt(1000, attempts, 0.0) - 1000, base);
        assert_eq!(s.next_attempt(1000, attempts, 0.25) - 1000, base + base / 4);
    }
    for _ in 0..100 {
        assert!((0.0..=0.25).contains(&jitter()));
    }
}

#[test]
fn a_retry_past_the_age_cap_is_not_scheduled() {
    let s = Settings {
        max_age_hours: 2,
        ..settings()
    };
    let first = 10_000;
    let cap = 2 * 3600;
    assert!(!s.past_age_cap(first, first + 100));
    // Exactly at the cap: the run then is still allowed to try (it is not older).
    assert!(!s.past_age_cap(first, first + cap));
    assert!(s.past_age_cap(first, first + cap + 1));
}

#[test]
fn age_cutoff_is_the_cap_before_the_given_time() {
    let now = 1_000_000;
    assert_eq!(age_cutoff(now, 72), now - 72 * 3600);
    assert_eq!(age_cutoff(now, 1), now - 3600);
    // A huge cap saturates instead of wrapping around into the future.
    assert_eq!(age_cutoff(now, i64::MAX), now - i64::MAX);
    assert_eq!(age_cutoff(i64::MIN + 5, 1), i64::MIN);
    assert_eq!(
        gave_up_by_age(72, "451 4.3.0 later"),
        "gave up after 72 h: 451 4.3.0 later"
    );
}
