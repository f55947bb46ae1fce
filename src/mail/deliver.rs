//! Delivering the due rows of a send: `concurrency` sessions, one global rate, the retry
//! policy by reply class, every state change through the ledger writer.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use indicatif::ProgressBar;
use lettre::address::Envelope;
use rand::Rng;
use tokio::time::Instant;

use super::compose::Recipient;
use super::ledger::{age_cutoff, Change, Row, WriterHandle};
use super::smtp::{Conn, ConnectError, Outcome, Target};
use crate::config::SmtpConfig;

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
        }
    }

    /// Whether a retry at `next_attempt_at` would come after the age cap of a row first
    /// attempted at `first_attempt_at`. Such a row is failed at once: the run that reached
    /// it would fail it without trying, and until then it would only keep `send` exiting 75.
    pub fn past_age_cap(&self, first_attempt_at: i64, next_attempt_at: i64) -> bool {
        first_attempt_at < age_cutoff(next_attempt_at, self.max_age_hours)
    }

    /// When a row deferred for the `attempts`-th time is due again: `retry_after` doubled per
    /// earlier attempt, plus up to a quarter more so deferred rows do not return in a herd.
    pub fn next_attempt(&self, now: i64, attempts: u32) -> i64 {
        let base =
            self.retry_after.as_secs_f64() * 2f64.powi(attempts.saturating_sub(1).min(20) as i32);
        let jitter = rand::thread_rng().gen_range(0.0..=0.25);
        now + (base * (1.0 + jitter)).ceil() as i64
    }
}

/// Builds the envelope and the wire bytes of one recipient's message.
pub type Build = dyn Fn(&Recipient) -> Result<(Envelope, Vec<u8>)> + Send + Sync;

/// What this run did, row by row.
#[derive(Debug, Default)]
pub struct Stats {
    pub sent: AtomicUsize,
    pub deferred: AtomicUsize,
    pub failed: AtomicUsize,
    pub unknown: AtomicUsize,
    pub skipped: AtomicUsize,
    /// Rows no session could take (the server went away); recorded deferred, due at once.
    pub not_attempted: AtomicUsize,
}

/// How a delivery run ended.
#[derive(Debug, Default)]
pub struct Report {
    pub stats: Stats,
    /// Why sessions could not be (re)opened, if they could not.
    pub connect_error: Option<String>,
}

/// One global pace for all sessions; every deferral halves it, every success wins a little
/// back, so a server that says "slow down" gets fewer messages per second.
struct Limiter {
    interval: Duration,
    state: Mutex<(Instant, f64)>,
}

impl Limiter {
    fn new(rate: f64) -> Limiter {
        Limiter {
            interval: Duration::from_secs_f64(1.0 / rate.max(0.001)),
            state: Mutex::new((Instant::now(), 1.0)),
        }
    }

    /// Waits for this session's next slot. Returns false, early, once `stop` is set: at a low
    /// rate a slot can be many seconds away, and a signal must not wait for it.
    async fn wait(&self, stop: &AtomicBool) -> bool {
        let slot = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let slot = s.0.max(now);
            s.0 = slot + self.interval.mul_f64(s.1);
            slot
        };
        loop {
            if stop.load(Ordering::Relaxed) {
                return false;
            }
            let now = Instant::now();
            if now >= slot {
                return true;
            }
            tokio::time::sleep_until(slot.min(now + STOP_POLL)).await;
        }
    }

    fn slow_down(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.1 = (s.1 * 2.0).min(64.0);
    }

    fn success(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.1 > 1.0 {
            s.1 = (s.1 * 0.95).max(1.0);
        }
    }
}

struct Job {
    row: Row,
    /// Retries after a 421 or a dropped session; they do not count as attempts, but a
    /// message that kills every session it is sent on must not loop forever.
    free_retries: u32,
}

const FREE_RETRIES: u32 = 3;
/// How often a wait looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);
const CONNECT_TRIES: u32 = 3;

struct Shared {
    queue: Mutex<VecDeque<Job>>,
    target: Arc<Target>,
    build: Arc<Build>,
    ledger: WriterHandle,
    settings: Settings,
    limiter: Limiter,
    stop: AtomicBool,
    fatal: Mutex<Option<String>>,
    connect_error: Mutex<Option<String>>,
    stats: Stats,
    progress: ProgressBar,
}

impl Shared {
    fn pop(&self) -> Option<Job> {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }

    fn push_back(&self, job: Job) {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(job);
    }

    fn push_front(&self, job: Job) {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_front(job);
    }

    fn done(&self, counter: &AtomicUsize) {
        counter.fetch_add(1, Ordering::Relaxed);
        self.progress.inc(1);
    }
}

/// What a delivery run works with.
pub struct Run {
    pub build: Arc<Build>,
    pub target: Arc<Target>,
    /// A session opened beforehand (it proved the server and the credentials work).
    pub first: Option<Conn>,
    pub ledger: WriterHandle,
    pub settings: Settings,
    pub progress: ProgressBar,
    /// Set by a signal: finish the messages in progress, then stop.
    pub stop: Arc<AtomicBool>,
}

/// Delivers `rows`. Returns an error for what retrying cannot fix (authentication, TLS,
/// the ledger); rows not reached then stay pending.
pub async fn deliver(rows: Vec<Row>, run: Run) -> Result<Report> {
    let Run {
        build,
        target,
        first,
        ledger,
        settings,
        progress,
        stop,
    } = run;
    let workers = settings.concurrency.min(rows.len()).max(1);
    let shared = Arc::new(Shared {
        queue: Mutex::new(
            rows.into_iter()
                .map(|row| Job {
                    row,
                    free_retries: 0,
                })
                .collect(),
        ),
        target,
        build,
        ledger,
        limiter: Limiter::new(settings.rate),
        settings,
        stop: AtomicBool::new(false),
        fatal: Mutex::new(None),
        connect_error: Mutex::new(None),
        stats: Stats::default(),
        progress,
    });
    let watcher = {
        let shared = shared.clone();
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if shared.stop.load(Ordering::Relaxed) {
                    return;
                }
                tokio::time::sleep(STOP_POLL).await;
            }
            shared.stop.store(true, Ordering::Relaxed);
        })
    };
    let mut first = first;
    let mut handles = Vec::new();
    for _ in 0..workers {
        let s = shared.clone();
        let c = first.take();
        handles.push(tokio::spawn(async move { worker(s, c).await }));
    }
    let mut ledger_error = None;
    for h in handles {
        match h.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => ledger_error = Some(e),
            Err(e) => ledger_error = Some(anyhow::anyhow!("a delivery worker failed: {e}")),
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    let _ = watcher.await;
    if let Some(e) = ledger_error {
        return Err(e);
    }
    let fatal = shared
        .fatal
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let Some(f) = fatal {
        shared.ledger.flush().await?;
        anyhow::bail!(f);
    }
    // Rows no session could take: deferred, due at once, so the exit code says "later".
    let now = chrono::Utc::now().timestamp();
    let connect_error = shared
        .connect_error
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    while let Some(job) = shared.pop() {
        let reply = match &connect_error {
            Some(e) => format!("not attempted: {e}"),
            None => "not attempted: the send was interrupted".into(),
        };
        shared.ledger.record(
            job.row.id,
            Change::Deferred {
                reply,
                next_attempt_at: now,
                attempts: job.row.attempts,
            },
        )?;
        shared.stats.not_attempted.fetch_add(1, Ordering::Relaxed);
    }
    shared.ledger.flush().await?;
    let shared =
        Arc::try_unwrap(shared).map_err(|_| anyhow::anyhow!("delivery workers still running"))?;
    Ok(Report {
        stats: shared.stats,
        connect_error,
    })
}

async fn connect(s: &Shared) -> Option<Conn> {
    let mut failures = 0;
    loop {
        if s.stop.load(Ordering::Relaxed) {
            return None;
        }
        match s.target.connect().await {
            Ok(c) => return Some(c),
            Err(ConnectError::Fatal(e)) => {
                *s.fatal.lock().unwrap_or_else(|x| x.into_inner()) = Some(e);
                s.stop.store(true, Ordering::Relaxed);
                return None;
            }
            Err(ConnectError::Transient(e)) => {
                failures += 1;
                tracing::debug!("connect failed ({failures}): {e}");
                *s.connect_error.lock().unwrap_or_else(|x| x.into_inner()) = Some(e);
                if failures >= CONNECT_TRIES {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(250 * u64::from(failures))).await;
            }
        }
    }
}

async fn worker(s: Arc<Shared>, mut conn: Option<Conn>) -> Result<()> {
    let step = s.target.timeout;
    while !s.stop.load(Ordering::Relaxed) {
        let Some(mut job) = s.pop() else { break };
        let fresh = match &conn {
            Some(c) => !c.is_usable() || c.transactions >= s.settings.per_connection,
            None => true,
        };
        if fresh {
            if let Some(c) = conn.take() {
                if c.is_usable() {
                    c.quit(step).await;
                }
            }
            match connect(&s).await {
                Some(c) => conn = Some(c),
                None => {
                    s.push_front(job);
                    return Ok(());
                }
            }
        }
        let Some(c) = conn.as_mut() else {
            s.push_front(job);
            return Ok(());
        };
        let recipient = Recipient {
            address: job.row.address.clone(),
            name: job.row.name.clone(),
        };
        let (envelope, body) = match (s.build)(&recipient) {
            Ok(m) => m,
            Err(e) => {
                s.ledger.record(
                    job.row.id,
                    Change::Failed {
                        reply: format!("the message could not be built: {e:#}"),
                        attempts: job.row.attempts + 1,
                        bounce: false,
                    },
                )?;
                s.done(&s.stats.failed);
                continue;
            }
        };
        if !s.limiter.wait(&s.stop).await {
            // Stopped while waiting for the pace: the row was never claimed, so it goes back
            // and is recorded as not attempted with the rest of the queue.
            s.push_front(job);
            break;
        }
        // Re-checks the subscriber and commits in_flight before MAIL FROM.
        let claimed_at = chrono::Utc::now().timestamp();
        let first_attempt_at = job.row.first_attempt_at.unwrap_or(claimed_at);
        if !s.ledger.claim(job.row.id, claimed_at).await? {
            s.done(&s.stats.skipped);
            continue;
        }
        let outcome = c.send(step, &envelope, &body).await;
        if !outcome.keeps_connection() {
            conn = None;
        }
        match outcome {
            Outcome::Sent(reply) => {
                s.ledger.record(job.row.id, Change::Sent { reply })?;
                s.limiter.success();
                s.done(&s.stats.sent);
            }
            Outcome::Retry(reply) if job.free_retries < FREE_RETRIES => {
                s.ledger.record(job.row.id, Change::Release { reply })?;
                job.free_retries += 1;
                s.push_back(job);
            }
            Outcome::Retry(reply) | Outcome::Defer(reply) => {
                let attempts = job.row.attempts + 1;
                s.limiter.slow_down();
                if attempts >= s.settings.max_attempts {
                    s.ledger.record(
                        job.row.id,
                        Change::Failed {
                            reply: format!("gave up after {attempts} attempts: {reply}"),
                            attempts,
                            bounce: false,
                        },
                    )?;
                    s.done(&s.stats.failed);
                } else {
                    let now = chrono::Utc::now().timestamp();
                    let next_attempt_at = s.settings.next_attempt(now, attempts);
                    if s.settings.past_age_cap(first_attempt_at, next_attempt_at) {
                        let hours = s.settings.max_age_hours;
                        s.ledger.record(
                            job.row.id,
                            Change::Failed {
                                reply: format!(
                                    "gave up: the next attempt would come more than {hours} h after the first: {reply}"
                                ),
                                attempts,
                                bounce: false,
                            },
                        )?;
                        s.done(&s.stats.failed);
                    } else {
                        s.ledger.record(
                            job.row.id,
                            Change::Deferred {
                                reply,
                                next_attempt_at,
                                attempts,
                            },
                        )?;
                        s.done(&s.stats.deferred);
                    }
                }
            }
            Outcome::Fail { reply, bounce } => {
                s.ledger.record(
                    job.row.id,
                    Change::Failed {
                        reply,
                        attempts: job.row.attempts + 1,
                        bounce,
                    },
                )?;
                s.done(&s.stats.failed);
            }
            Outcome::Unknown(reply) => {
                s.ledger.record(job.row.id, Change::Unknown { reply })?;
                s.done(&s.stats.unknown);
            }
            Outcome::Abort(reply) => {
                s.ledger.record(
                    job.row.id,
                    Change::Release {
                        reply: reply.clone(),
                    },
                )?;
                s.push_front(job);
                *s.fatal.lock().unwrap_or_else(|x| x.into_inner()) = Some(reply);
                s.stop.store(true, Ordering::Relaxed);
            }
        }
    }
    if let Some(c) = conn {
        if c.is_usable() {
            c.quit(step).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter() {
        let s = Settings {
            concurrency: 1,
            per_connection: 1,
            rate: 1.0,
            max_attempts: 5,
            retry_after: Duration::from_secs(100),
            max_age_hours: 72,
        };
        for (attempts, base) in [(1, 100), (2, 200), (3, 400)] {
            let d = s.next_attempt(1000, attempts) - 1000;
            assert!(d >= base && d <= base + base / 4 + 1, "{attempts}: {d}");
        }
    }

    #[test]
    fn a_retry_past_the_age_cap_is_not_scheduled() {
        let s = Settings {
            concurrency: 1,
            per_connection: 1,
            rate: 1.0,
            max_attempts: 5,
            retry_after: Duration::from_secs(100),
            max_age_hours: 2,
        };
        let first = 10_000;
        let cap = 2 * 3600;
        assert!(!s.past_age_cap(first, first + 100));
        // Exactly at the cap: the run then is still allowed to try (it is not older).
        assert!(!s.past_age_cap(first, first + cap));
        assert!(s.past_age_cap(first, first + cap + 1));
    }

    #[tokio::test]
    async fn limiter_paces_and_slows() {
        let l = Limiter::new(100.0);
        let go = AtomicBool::new(false);
        let t = Instant::now();
        for _ in 0..11 {
            assert!(l.wait(&go).await);
        }
        assert!(t.elapsed() >= Duration::from_millis(95));
        l.slow_down();
        l.slow_down();
        assert_eq!(l.state.lock().unwrap().1, 4.0);
        l.success();
        assert!(l.state.lock().unwrap().1 < 4.0);
    }

    #[tokio::test]
    async fn a_stop_ends_the_wait_for_a_distant_slot() {
        // One message a day: the second slot is a day away.
        let l = Limiter::new(1.0 / 86_400.0);
        let stop = Arc::new(AtomicBool::new(false));
        assert!(l.wait(&stop).await);
        let setter = {
            let stop = stop.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                stop.store(true, Ordering::Relaxed);
            })
        };
        // Only the stop can end this wait before the timeout does.
        let waited = tokio::time::timeout(Duration::from_secs(30), l.wait(&stop)).await;
        assert_eq!(waited.ok(), Some(false), "the stop ends the wait");
        setter.await.unwrap();
    }
}
