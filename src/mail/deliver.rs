//! Delivering the due rows of a send: `concurrency` sessions, one global rate, every state
//! change through the ledger writer. The sessions come from a [`Transport`] (SMTP in
//! production, a scripted fake in tests); what a reply means is [`settle`]'s business.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use indicatif::ProgressBar;
use lettre::address::Envelope;
use tokio::time::Instant;

use super::breaker::{Breaker, Step, Tripped};
use super::compose::Recipient;
use super::pace::{domain_of, wait_until, Domains, Limiter, STOP_POLL};
use super::policy::{jitter, settle, Attempt, Settings, Settlement, Tally};
use super::session::{Conn, Outcome};
use super::smtp::{ConnectError, Target};
use crate::store::{Change, DuePages, Row, WriterHandle};

/// Where sessions come from: connect (greeting, EHLO, TLS, AUTH) and the time one protocol
/// step may take.
pub trait Transport: Send + Sync + 'static {
    type Session: Session;
    fn connect(&self) -> impl Future<Output = Result<Self::Session, ConnectError>> + Send;
    fn step(&self) -> Duration;
}

/// One open session: send messages, then quit.
pub trait Session: Send + 'static {
    /// Whether the session can carry another message.
    fn is_usable(&self) -> bool;
    /// Mail transactions begun on this session, whatever their outcome.
    fn transactions(&self) -> usize;
    /// Runs one mail transaction.
    fn send(
        &mut self,
        step: Duration,
        envelope: &Envelope,
        body: &[u8],
    ) -> impl Future<Output = Outcome> + Send;
    /// Ends the session politely; errors do not matter any more.
    fn quit(self, step: Duration) -> impl Future<Output = ()> + Send;
}

impl Transport for Target {
    type Session = Conn;
    fn connect(&self) -> impl Future<Output = Result<Conn, ConnectError>> + Send {
        Target::connect(self)
    }
    fn step(&self) -> Duration {
        self.timeout
    }
}

impl Session for Conn {
    fn is_usable(&self) -> bool {
        Conn::is_usable(self)
    }
    fn transactions(&self) -> usize {
        self.transactions
    }
    fn send(
        &mut self,
        step: Duration,
        envelope: &Envelope,
        body: &[u8],
    ) -> impl Future<Output = Outcome> + Send {
        Conn::send(self, step, envelope, body)
    }
    fn quit(self, step: Duration) -> impl Future<Output = ()> + Send {
        Conn::quit(self, step)
    }
}

/// Why a run stopped before its queue was empty, when retrying cannot help.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// A session could not be opened: authentication or TLS refused, or untrusted.
    #[error(transparent)]
    Connect(ConnectError),
    /// The server refused the session rather than a recipient (a 5xx to MAIL FROM, a 530).
    #[error("{0}")]
    Refused(String),
}

/// Builds the envelope and the wire bytes of one recipient's message.
/// The second argument is the delivery's row id (for a VERP return path).
pub type Build = dyn Fn(&Recipient, i64) -> Result<(Envelope, Vec<u8>)> + Send + Sync;

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
    /// Rows the circuit breaker put back to pending.
    pub requeued: AtomicUsize,
}

impl Stats {
    fn of(&self, tally: Tally) -> &AtomicUsize {
        match tally {
            Tally::Sent => &self.sent,
            Tally::Deferred => &self.deferred,
            Tally::Failed => &self.failed,
            Tally::Unknown => &self.unknown,
        }
    }
}

/// How a delivery run ended.
#[derive(Debug, Default)]
pub struct Report {
    pub stats: Stats,
    /// Why sessions could not be (re)opened, if they could not.
    pub connect_error: Option<ConnectError>,
    /// The refusal that stopped the run, if the circuit breaker did.
    pub stopped: Option<Tripped>,
}

struct Job {
    row: Row,
    /// Free retries spent (see [`super::policy::FREE_RETRIES`]).
    free_retries: u32,
}

const CONNECT_TRIES: u32 = 3;

/// Rows read from the state file at a time, and the queue length that reads the next page:
/// what a send holds in memory, whatever the size of the list.
const PAGE: usize = 1000;
const LOW: usize = 250;

/// How far into the queue a session looks for a row whose domain may take a message now.
const SCAN: usize = 1024;

/// What the queue has for a session.
enum Next {
    Job(Job, String),
    /// Rows wait, none of their domains is ready before this.
    Wait(Instant),
    Empty,
}

struct Shared<T: Transport> {
    queue: Mutex<VecDeque<Job>>,
    /// Where the queue is refilled from, and whether every due row was read.
    pages: Mutex<DuePages>,
    exhausted: AtomicBool,
    target: Arc<T>,
    build: Arc<Build>,
    ledger: WriterHandle,
    settings: Settings,
    limiter: Limiter,
    domains: Domains,
    breaker: Breaker,
    stop: AtomicBool,
    fatal: Mutex<Option<DeliveryError>>,
    connect_error: Mutex<Option<ConnectError>>,
    stats: Stats,
    progress: ProgressBar,
}

impl Job {
    fn new(row: Row) -> Job {
        Job {
            row,
            free_retries: 0,
        }
    }
}

impl<T: Transport> Shared<T> {
    /// Reads the next page of due rows once the queue runs low. One session reads while the
    /// others go on with what is queued.
    fn refill(&self) -> Result<()> {
        if self.exhausted.load(Ordering::Relaxed) || self.queued() >= LOW {
            return Ok(());
        }
        let Ok(mut pages) = self.pages.try_lock() else {
            return Ok(());
        };
        if self.queued() >= LOW {
            return Ok(());
        }
        let rows = pages.next_page(PAGE)?;
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(rows.into_iter().map(Job::new));
        if pages.is_done() {
            self.exhausted.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    fn queued(&self) -> usize {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The first row (of the first [`SCAN`]) whose domain may take a message now; its
    /// domain's slot is taken.
    fn next(&self) -> Next {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.is_empty() {
            return Next::Empty;
        }
        let now = Instant::now();
        let mut soonest: Option<Instant> = None;
        for i in 0..q.len().min(SCAN) {
            let domain = domain_of(q[i].row.address.as_str());
            match self.domains.take(&domain, now) {
                Ok(()) => {
                    if let Some(job) = q.remove(i) {
                        return Next::Job(job, domain);
                    }
                }
                Err(at) => soonest = Some(soonest.map_or(at, |s| s.min(at))),
            }
        }
        Next::Wait(soonest.unwrap_or(now))
    }

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

    /// A row the breaker gives back: pending again, the refusal kept as its last reply.
    fn requeue(&self, id: i64, change: &Change) -> Result<()> {
        let reply = match change {
            Change::Failed { reply, .. } | Change::Deferred { reply, .. } => reply.clone(),
            Change::Sent { reply } | Change::Unknown { reply } | Change::Release { reply } => {
                reply.clone()
            }
        };
        self.ledger.record(id, Change::Release { reply })?;
        self.stats.requeued.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Stops every session after this message: retrying cannot help.
    fn fail(&self, e: DeliveryError) {
        *self.fatal.lock().unwrap_or_else(|x| x.into_inner()) = Some(e);
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Records what [`settle`] decided and queues the row again if it said so; the breaker
    /// may turn it (and the refusals before it) back to pending and stop the run.
    fn apply(&self, mut job: Job, domain: &str, settlement: Settlement) -> Result<()> {
        match settlement {
            Settlement::Done {
                change,
                tally,
                slow_down,
                refusal,
            } => {
                if slow_down {
                    self.domains.slow_down(domain);
                }
                match self.breaker.note(job.row.id, tally, refusal.as_ref()) {
                    Step::Record => {
                        self.ledger.record(job.row.id, change)?;
                        if tally == Tally::Sent {
                            self.domains.success(domain);
                        }
                        self.done(self.stats.of(tally));
                    }
                    Step::Requeue => self.requeue(job.row.id, &change)?,
                    Step::Trip(rows) => {
                        for (id, counted) in rows {
                            self.requeue(id, &change)?;
                            self.stats.of(counted).fetch_sub(1, Ordering::Relaxed);
                        }
                        self.requeue(job.row.id, &change)?;
                        self.stop.store(true, Ordering::Relaxed);
                    }
                }
            }
            Settlement::Again { change } => {
                self.ledger.record(job.row.id, change)?;
                job.free_retries += 1;
                self.push_back(job);
            }
            Settlement::Abort { change, reason } => {
                self.ledger.record(job.row.id, change)?;
                self.push_front(job);
                self.fail(DeliveryError::Refused(reason));
            }
        }
        Ok(())
    }
}

/// What a delivery run works with.
pub struct Run<T: Transport> {
    pub build: Arc<Build>,
    pub target: Arc<T>,
    /// A session opened beforehand (it proved the server and the credentials work).
    pub first: Option<T::Session>,
    pub ledger: WriterHandle,
    pub settings: Settings,
    pub progress: ProgressBar,
    /// Set by a signal: finish the messages in progress, then stop.
    pub stop: Arc<AtomicBool>,
}

/// Delivers the rows of `pages`, read a page at a time. Returns an error for what retrying
/// cannot fix (a [`DeliveryError`], or the ledger); rows not reached then stay pending.
pub async fn deliver<T: Transport>(mut pages: DuePages, run: Run<T>) -> Result<Report> {
    let Run {
        build,
        target,
        first,
        ledger,
        settings,
        progress,
        stop,
    } = run;
    let first_page = pages.next_page(PAGE)?;
    let workers = settings.concurrency.min(first_page.len()).max(1);
    let shared = Arc::new(Shared {
        queue: Mutex::new(first_page.into_iter().map(Job::new).collect()),
        exhausted: AtomicBool::new(pages.is_done()),
        pages: Mutex::new(pages),
        target,
        build,
        ledger,
        limiter: Limiter::new(settings.rate),
        domains: Domains::new(
            Limiter::new(settings.rate).interval(),
            settings.domains.clone(),
        ),
        breaker: Breaker::new(settings.stop_after),
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
        return Err(f.into());
    }
    let stopped = shared.breaker.tripped();
    let connect_error = match stopped {
        // The rows not reached stay pending: the next run after the fix takes them.
        Some(_) => {
            shared.ledger.flush().await?;
            None
        }
        None => not_attempted(&shared).await?,
    };
    let shared =
        Arc::try_unwrap(shared).map_err(|_| anyhow::anyhow!("delivery workers still running"))?;
    Ok(Report {
        stats: shared.stats,
        connect_error,
        stopped,
    })
}

/// Records the rows no session could take as deferred and due at once, so the exit code says
/// "later"; returns why sessions could not be opened, if that was the reason.
async fn not_attempted<T: Transport>(shared: &Shared<T>) -> Result<Option<ConnectError>> {
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
    Ok(connect_error)
}

async fn connect<T: Transport>(s: &Shared<T>) -> Option<T::Session> {
    let mut failures = 0;
    loop {
        if s.stop.load(Ordering::Relaxed) {
            return None;
        }
        match s.target.connect().await {
            Ok(c) => return Some(c),
            Err(e @ ConnectError::Fatal(_)) => {
                s.fail(DeliveryError::Connect(e));
                return None;
            }
            Err(e @ ConnectError::Transient(_)) => {
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

/// Makes `conn` a session that can take the next message: a new one when there is none, it
/// broke, or it carried `per_connection` messages. False when none could be opened.
async fn ready<T: Transport>(s: &Shared<T>, conn: &mut Option<T::Session>) -> bool {
    let fresh = match conn {
        Some(c) => !c.is_usable() || c.transactions() >= s.settings.per_connection,
        None => true,
    };
    if !fresh {
        return true;
    }
    if let Some(c) = conn.take() {
        if c.is_usable() {
            c.quit(s.target.step()).await;
        }
    }
    *conn = connect(s).await;
    conn.is_some()
}

async fn worker<T: Transport>(s: Arc<Shared<T>>, mut conn: Option<T::Session>) -> Result<()> {
    let step = s.target.step();
    while !s.stop.load(Ordering::Relaxed) {
        s.refill()?;
        let (job, domain) = match s.next() {
            Next::Job(job, domain) => (job, domain),
            Next::Wait(at) => {
                if !wait_until(at, &s.stop).await {
                    break;
                }
                continue;
            }
            Next::Empty if s.exhausted.load(Ordering::Relaxed) => break,
            // Another session is reading the next page.
            Next::Empty => {
                tokio::time::sleep(Duration::from_millis(2)).await;
                continue;
            }
        };
        if !ready(&s, &mut conn).await {
            s.push_front(job);
            return Ok(());
        }
        let Some(c) = conn.as_mut() else {
            s.push_front(job);
            return Ok(());
        };
        if !s.limiter.wait(&s.stop).await {
            // Stopped while waiting for the pace: the row was never claimed, so it goes back
            // and is recorded as not attempted with the rest of the queue.
            s.push_front(job);
            break;
        }
        // Re-checks the subscriber and commits in_flight before MAIL FROM (on PostgreSQL
        // the message is built while that commits; on SQLite it has committed on return).
        let claimed_at = chrono::Utc::now().timestamp();
        let claim = s.ledger.claim(job.row.id, claimed_at);
        let recipient = Recipient {
            address: job.row.address.clone(),
            name: job.row.name.clone(),
        };
        // A panic in there is a bug, not a reason to leave the claimed row in flight (it
        // would become unknown): the row fails with the reason, `--retry-failed` takes it.
        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            (s.build)(&recipient, job.row.id)
        }))
        .unwrap_or_else(|_| Err(anyhow::anyhow!("building it panicked")));
        if !claim.await? {
            s.done(&s.stats.skipped);
            continue;
        }
        let (envelope, body) = match built {
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
        let outcome = c.send(step, &envelope, &body).await;
        if !outcome.keeps_connection() {
            conn = None;
        }
        let attempt = Attempt {
            attempts: job.row.attempts,
            first_attempt_at: job.row.first_attempt_at.unwrap_or(claimed_at),
            free_retries: job.free_retries,
            jitter: jitter(),
        };
        let now = chrono::Utc::now().timestamp();
        s.apply(job, &domain, settle(outcome, &attempt, &s.settings, now))?;
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
    use crate::store::db::Backend;
    use crate::store::testing::on_both_async;
    use crate::store::{DeliveryState, Store, SubscriberStatus};

    /// What the fake server does: per connection, a refusal or the outcomes of its messages.
    type Script = VecDeque<Result<Vec<Outcome>, ConnectError>>;

    struct FakeTransport {
        script: Mutex<Script>,
        /// Every recipient a session was handed, in order.
        log: Arc<Mutex<Vec<String>>>,
    }

    struct FakeSession {
        outcomes: VecDeque<Outcome>,
        transactions: usize,
        broken: bool,
        log: Arc<Mutex<Vec<String>>>,
    }

    impl Transport for FakeTransport {
        type Session = FakeSession;
        fn connect(&self) -> impl Future<Output = Result<FakeSession, ConnectError>> + Send {
            let next = self.script.lock().unwrap().pop_front();
            let log = self.log.clone();
            async move {
                let outcomes = next.unwrap_or_else(|| {
                    Err(ConnectError::Transient("no more connections".into()))
                })?;
                Ok(FakeSession {
                    outcomes: outcomes.into(),
                    transactions: 0,
                    broken: false,
                    log,
                })
            }
        }
        fn step(&self) -> Duration {
            Duration::from_secs(1)
        }
    }

    impl Session for FakeSession {
        fn is_usable(&self) -> bool {
            !self.broken
        }
        fn transactions(&self) -> usize {
            self.transactions
        }
        fn send(
            &mut self,
            _step: Duration,
            envelope: &Envelope,
            _body: &[u8],
        ) -> impl Future<Output = Outcome> + Send {
            self.transactions += 1;
            let to = envelope.to()[0].to_string();
            self.log.lock().unwrap().push(to);
            let o = self
                .outcomes
                .pop_front()
                .unwrap_or_else(|| Outcome::Retry("the script ran out".into()));
            self.broken = !o.keeps_connection();
            async move { o }
        }
        async fn quit(self, _step: Duration) {}
    }

    fn build() -> Arc<Build> {
        Arc::new(|r: &Recipient, _id: i64| {
            let to: lettre::Address = r.address.parse()?;
            let from: lettre::Address = "news@example.org".parse()?;
            Ok((Envelope::new(Some(from), vec![to])?, b"body".to_vec()))
        })
    }

    fn settings() -> Settings {
        Settings {
            concurrency: 1,
            per_connection: 100,
            rate: 10_000.0,
            max_attempts: 5,
            retry_after: Duration::from_secs(100),
            max_age_hours: 72,
            domains: Default::default(),
            stop_after: 3,
        }
    }

    /// Delivers issue `i` to `n` subscribers over the scripted server.
    async fn run(
        backend: Backend,
        n: usize,
        script: Script,
    ) -> (
        crate::store::testing::Keep,
        Store,
        Result<Report>,
        Vec<String>,
    ) {
        let (d, mut store) = crate::store::testing::store(backend);
        let rows: Vec<_> = (0..n).map(|i| (format!("u{i}@x.org"), None)).collect();
        store.import(&rows).unwrap();
        store.snapshot("i").unwrap();
        let lease = store.lease("i", 30, Arc::default()).unwrap();
        let due = store.due_pages("i", 0, lease.id()).unwrap();
        let writer = store.writer(lease.id()).unwrap();
        let target = Arc::new(FakeTransport {
            script: Mutex::new(script),
            log: Arc::default(),
        });
        let report = deliver(
            due,
            Run {
                build: build(),
                target: target.clone(),
                first: None,
                ledger: writer.handle(),
                settings: settings(),
                progress: ProgressBar::hidden(),
                stop: Arc::default(),
            },
        )
        .await;
        writer.finish().unwrap();
        let log = target.log.lock().unwrap().clone();
        (d, store, report, log)
    }

    fn states(store: &Store) -> Vec<(String, DeliveryState, Option<String>)> {
        store
            .not_sent("i")
            .unwrap()
            .into_iter()
            .map(|r| (r.address.into_string(), r.state, r.last_reply))
            .collect()
    }

    async fn every_outcome_lands_in_the_ledger_and_a_421_is_retried_on_a_new_session(
        backend: Backend,
    ) {
        let script = VecDeque::from([
            Ok(vec![
                Outcome::Sent("250 ok".into()),
                Outcome::Defer("451 later".into()),
                Outcome::Fail {
                    reply: "550 5.1.1 nobody".into(),
                    bounce: true,
                    fault: crate::mail::reply::Fault::Recipient,
                },
                Outcome::Retry("421 bye".into()),
            ]),
            Ok(vec![
                Outcome::Sent("250 ok".into()),
                Outcome::Unknown("no reply to the final dot".into()),
            ]),
        ]);
        let (_d, store, report, log) = run(backend, 5, script).await;
        let report = report.unwrap();
        assert_eq!(
            log,
            ["u0@x.org", "u1@x.org", "u2@x.org", "u3@x.org", "u4@x.org", "u3@x.org"],
            "the released row goes to the back of the queue"
        );
        let st = &report.stats;
        let n = |c: &AtomicUsize| c.load(Ordering::Relaxed);
        assert_eq!(
            (n(&st.sent), n(&st.deferred), n(&st.failed), n(&st.unknown)),
            (2, 1, 1, 1)
        );
        assert!(report.connect_error.is_none());
        assert_eq!(
            states(&store),
            [
                (
                    "u1@x.org".into(),
                    DeliveryState::Deferred,
                    Some("451 later".into())
                ),
                (
                    "u2@x.org".into(),
                    DeliveryState::Failed,
                    Some("550 5.1.1 nobody".into())
                ),
                (
                    "u3@x.org".into(),
                    DeliveryState::Unknown,
                    Some("no reply to the final dot".into())
                ),
            ]
        );
        assert_eq!(
            store.subscriber("u2@x.org").unwrap().unwrap().status,
            SubscriberStatus::Bounced
        );
    }

    async fn a_refused_session_stops_the_run_and_leaves_the_rest_pending(backend: Backend) {
        let script = VecDeque::from([Ok(vec![
            Outcome::Sent("250 ok".into()),
            Outcome::Abort("the server refused MAIL FROM: 550 no".into()),
        ])]);
        let (_d, store, report, log) = run(backend, 3, script).await;
        let e = report.unwrap_err();
        assert_eq!(format!("{e:#}"), "the server refused MAIL FROM: 550 no");
        assert!(matches!(
            e.downcast_ref::<DeliveryError>(),
            Some(DeliveryError::Refused(_))
        ));
        assert_eq!(log.len(), 2);
        let c = store.counts("i").unwrap();
        assert_eq!(
            (c.get(DeliveryState::Sent), c.get(DeliveryState::Pending)),
            (1, 2)
        );
    }

    async fn rows_beyond_one_page_are_read_as_the_queue_runs_low_and_sent_once(backend: Backend) {
        let n = PAGE * 2 + 10;
        // per_connection is 100: a session per hundred.
        let script = (0..=n / 100)
            .map(|_| Ok(vec![Outcome::Sent("250 ok".into()); 100]))
            .collect();
        let (_d, store, report, log) = run(backend, n, script).await;
        assert_eq!(report.unwrap().stats.sent.load(Ordering::Relaxed), n);
        let unique: std::collections::HashSet<_> = log.iter().collect();
        assert_eq!((log.len(), unique.len()), (n, n));
        assert_eq!(store.counts("i").unwrap().get(DeliveryState::Sent), n);
    }

    async fn the_same_relay_refusal_for_three_recipients_stops_and_requeues_them(backend: Backend) {
        let denied = || Outcome::Fail {
            reply: "554 5.7.1 <x@x.org>: Relay access denied".into(),
            bounce: false,
            fault: crate::mail::reply::Fault::Relay,
        };
        let script = VecDeque::from([Ok(vec![
            Outcome::Sent("250 ok".into()),
            denied(),
            denied(),
            denied(),
            Outcome::Sent("250 ok".into()),
        ])]);
        let (_d, store, report, log) = run(backend, 6, script).await;
        let report = report.unwrap();
        let t = report.stopped.expect("the breaker tripped");
        assert_eq!(t.recipients, 3);
        assert_eq!(log.len(), 4, "nothing is sent after the stop");
        let st = &report.stats;
        assert_eq!(
            (
                st.sent.load(Ordering::Relaxed),
                st.failed.load(Ordering::Relaxed),
                st.requeued.load(Ordering::Relaxed)
            ),
            (1, 0, 3)
        );
        let c = store.counts("i").unwrap();
        assert_eq!(
            (c.get(DeliveryState::Sent), c.get(DeliveryState::Pending)),
            (1, 5)
        );
    }

    async fn a_fatal_connect_error_is_the_run_s_error(backend: Backend) {
        let script = VecDeque::from([Err(ConnectError::Fatal("TLS refused".into()))]);
        let (_d, store, report, log) = run(backend, 2, script).await;
        let e = report.unwrap_err();
        assert_eq!(format!("{e:#}"), "TLS refused");
        assert!(log.is_empty());
        assert_eq!(store.counts("i").unwrap().get(DeliveryState::Pending), 2);
    }

    async fn rows_no_session_could_take_are_deferred_and_due_at_once(backend: Backend) {
        // The first session dies on its first message; no other can be opened.
        let script = VecDeque::from([Ok(vec![Outcome::Unknown("reset after the dot".into())])]);
        let (_d, store, report, _log) = run(backend, 3, script).await;
        let report = report.unwrap();
        assert_eq!(report.stats.not_attempted.load(Ordering::Relaxed), 2);
        assert_eq!(
            report.connect_error.map(|e| e.to_string()).as_deref(),
            Some("no more connections")
        );
        let c = store.counts("i").unwrap();
        assert_eq!(
            (
                c.get(DeliveryState::Unknown),
                c.get(DeliveryState::Deferred)
            ),
            (1, 2)
        );
        assert_eq!(
            states(&store)[1].2.as_deref(),
            Some("not attempted: no more connections")
        );
        assert_eq!(
            store
                .due("i", chrono::Utc::now().timestamp())
                .unwrap()
                .len(),
            2
        );
    }

    on_both_async!(
        every_outcome_lands_in_the_ledger_and_a_421_is_retried_on_a_new_session,
        a_refused_session_stops_the_run_and_leaves_the_rest_pending,
        rows_beyond_one_page_are_read_as_the_queue_runs_low_and_sent_once,
        the_same_relay_refusal_for_three_recipients_stops_and_requeues_them,
        a_fatal_connect_error_is_the_run_s_error,
        rows_no_session_could_take_are_deferred_and_due_at_once
    );
}
