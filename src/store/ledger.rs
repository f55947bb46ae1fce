//! The delivery ledger: one row per (issue, address), every state change of a send, and the
//! writer that commits the changes of a send in batches.
//!
//! The order of commits is what makes a send resumable: a row is committed `in_flight` before
//! `MAIL FROM` and `sent` only after the server's 250 to the final dot, so after a crash a row
//! still `in_flight` is exactly one whose fate is unknown.

use std::fmt;
use std::str::FromStr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::{Context, Result};

use super::db::{p, Conn, Row as DbRow};
use super::history::{current_status, record_status_change, ChangePath, StatusChange};
use super::{now_text, Address, Store, SubscriberStatus};

/// Where one delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum DeliveryState {
    Pending,
    InFlight,
    Sent,
    Deferred,
    Failed,
    Unknown,
    Skipped,
}

impl DeliveryState {
    /// In the order `status` prints them.
    pub const ALL: [DeliveryState; 7] = [
        DeliveryState::Pending,
        DeliveryState::InFlight,
        DeliveryState::Sent,
        DeliveryState::Deferred,
        DeliveryState::Failed,
        DeliveryState::Unknown,
        DeliveryState::Skipped,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::InFlight => "in_flight",
            DeliveryState::Sent => "sent",
            DeliveryState::Deferred => "deferred",
            DeliveryState::Failed => "failed",
            DeliveryState::Unknown => "unknown",
            DeliveryState::Skipped => "skipped",
        }
    }

    fn index(self) -> usize {
        DeliveryState::ALL
            .iter()
            .position(|s| *s == self)
            .unwrap_or_default()
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeliveryState {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        DeliveryState::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| anyhow::anyhow!("unknown delivery state `{s}` in the state file"))
    }
}

/// Rows per state for one issue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts([usize; 7]);

impl Counts {
    pub(crate) fn get(&self, s: DeliveryState) -> usize {
        self.0[s.index()]
    }

    pub(crate) fn total(&self) -> usize {
        self.0.iter().sum()
    }

    /// Nothing left to do in any run (unknown rows wait for `--retry-unknown`).
    pub(crate) fn is_complete(&self) -> bool {
        self.get(DeliveryState::Pending) == 0
            && self.get(DeliveryState::InFlight) == 0
            && self.get(DeliveryState::Deferred) == 0
    }

    /// `sent 2000, deferred 0, ...`: every state and the total on one line.
    pub(crate) fn one_line(&self) -> String {
        let mut s: Vec<String> = DeliveryState::ALL
            .iter()
            .map(|st| format!("{st} {}", self.get(*st)))
            .collect();
        s.push(format!("total {}", self.total()));
        s.join(", ")
    }
}

/// A row to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    pub id: i64,
    pub address: Address,
    pub name: Option<String>,
    pub attempts: u32,
    /// When the row was first handed to the server (Unix seconds); `None` before that.
    pub first_attempt_at: Option<i64>,
}

/// A row as `status --csv` writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReportRow {
    pub address: Address,
    pub state: DeliveryState,
    pub attempts: u32,
    pub last_reply: Option<String>,
    pub updated_at: String,
}

impl Store {
    /// Whether the issue's recipients were already snapshotted. A snapshot of nobody (which
    /// earlier versions recorded) does not count: it is taken again.
    pub(crate) fn has_snapshot(&self, issue: &str) -> Result<bool> {
        Ok(self
            .conn
            .query_opt(
                "SELECT 1 FROM sends s WHERE issue = ?1
                   AND EXISTS (SELECT 1 FROM deliveries d WHERE d.issue = s.issue)",
                p![issue],
            )?
            .is_some())
    }

    /// Copies the active subscribers into the ledger as `pending`, once per issue. Returns the
    /// number of rows written, or `None` when the snapshot was taken by an earlier run (or,
    /// on PostgreSQL, by another sender at the same time: this one joins it). A snapshot of
    /// nobody records nothing (`Some(0)`): the issue stays unsent, so subscribers who arrive
    /// later can still be sent it.
    pub(crate) fn snapshot(&mut self, issue: &str) -> Result<Option<usize>> {
        // Another sender's snapshot of a long list may hold the lock for a while.
        let tx = self.conn.write_waiting(Some(600))?;
        let now = now_text();
        // An empty snapshot an earlier version recorded is no snapshot.
        tx.execute(
            "DELETE FROM sends WHERE issue = ?1
               AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.issue = ?1)",
            p![issue],
        )?;
        let n = tx.execute(
            "INSERT INTO sends (issue, snapshot_at) VALUES (?1, ?2) ON CONFLICT (issue) DO NOTHING",
            p![issue, &now],
        )?;
        if n == 0 {
            return Ok(None);
        }
        let rows = tx.execute(
            "INSERT INTO deliveries (issue, address, name, state, attempts, updated_at)
             SELECT ?1, address, name, 'pending', 0, ?2 FROM subscribers WHERE status = 'active'
             ORDER BY address",
            p![issue, &now],
        )?;
        if rows == 0 {
            tx.rollback()?;
            return Ok(Some(0));
        }
        tx.commit()?;
        Ok(Some(rows))
    }

    /// Issues whose send was started and still has rows to deliver (pending, in flight or
    /// deferred), in the order first sent.
    pub(crate) fn unfinished_issues(&self) -> Result<Vec<String>> {
        self.conn
            .query(
                "SELECT issue FROM sends s WHERE EXISTS (
                     SELECT 1 FROM deliveries d WHERE d.issue = s.issue
                       AND d.state IN ('pending', 'in_flight', 'deferred'))
                 ORDER BY snapshot_at, issue",
                p![],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    /// `--retry-unknown`: unknown rows go back to `pending`.
    pub(crate) fn requeue_unknown(&mut self, issue: &str) -> Result<usize> {
        self.conn.execute(
            "UPDATE deliveries SET state = 'pending', worker = NULL, updated_at = ?2
             WHERE issue = ?1 AND state = 'unknown'",
            p![issue, now_text()],
        )
    }

    /// `--retry-failed`: failed rows whose subscriber is still active go back to `pending`,
    /// their attempts and age reset so the retry is a fresh start.
    pub(crate) fn requeue_failed(&mut self, issue: &str) -> Result<usize> {
        self.conn.execute(
            "UPDATE deliveries SET state = 'pending', attempts = 0, first_attempt_at = NULL,
                 next_attempt_at = NULL, worker = NULL, updated_at = ?2
             WHERE issue = ?1 AND state = 'failed'
               AND EXISTS (SELECT 1 FROM subscribers s
                           WHERE s.address = deliveries.address AND s.status = 'active')",
            p![issue, now_text()],
        )
    }

    /// Deferred rows first attempted before `first_attempt_before` (Unix seconds) become
    /// `failed`, their reply `reason` followed by the last reply. Rows never handed to the
    /// server are not aged, like pending ones. Returns the number of rows failed.
    pub(crate) fn expire_deferred(
        &mut self,
        issue: &str,
        first_attempt_before: i64,
        reason: &str,
    ) -> Result<usize> {
        self.conn.execute(
            "UPDATE deliveries SET state = 'failed',
                 last_reply = ?3 || coalesce(last_reply, 'no reply recorded'),
                 next_attempt_at = NULL, updated_at = ?4
             WHERE issue = ?1 AND state = 'deferred' AND first_attempt_at < ?2",
            p![issue, first_attempt_before, reason, now_text()],
        )
    }

    /// Rows to deliver now: pending, and deferred whose next attempt is due at `now` (Unix
    /// seconds). All of them at once: for tests; a send reads them a page at a time
    /// ([`Store::due_pages`]).
    #[cfg(test)]
    pub(crate) fn due(&self, issue: &str, now: i64) -> Result<Vec<Row>> {
        self.conn
            .query(
                "SELECT id, address, name, attempts, first_attempt_at FROM deliveries
                 WHERE issue = ?1
                   AND (state = 'pending' OR (state = 'deferred' AND next_attempt_at <= ?2))
                 ORDER BY id",
                p![issue, now],
            )?
            .iter()
            .map(row_of)
            .collect()
    }

    /// How many rows [`Store::due`] would return.
    pub(crate) fn due_count(&self, issue: &str, now: i64) -> Result<usize> {
        self.conn
            .query_one(
                "SELECT count(*) FROM deliveries
                 WHERE issue = ?1
                   AND (state = 'pending' OR (state = 'deferred' AND next_attempt_at <= ?2))",
                p![issue, now],
            )?
            .get(0)
    }

    /// The earliest next attempt of a deferred row, Unix seconds.
    pub(crate) fn next_due(&self, issue: &str) -> Result<Option<i64>> {
        self.conn
            .query_one(
                "SELECT min(next_attempt_at) FROM deliveries WHERE issue = ?1 AND state = 'deferred'",
                p![issue],
            )?
            .get(0)
    }

    /// Rows per state of one issue.
    pub(crate) fn counts(&self, issue: &str) -> Result<Counts> {
        let mut c = Counts::default();
        for r in self.conn.query(
            "SELECT state, count(*) FROM deliveries WHERE issue = ?1 GROUP BY state",
            p![issue],
        )? {
            let s: String = r.get(0)?;
            c.0[s.parse::<DeliveryState>()?.index()] = r.get(1)?;
        }
        Ok(c)
    }

    /// Every issue sent so far (in the order first sent) with its counts.
    pub(crate) fn all_counts(&self) -> Result<Vec<(String, Counts)>> {
        let issues = self
            .conn
            .query("SELECT issue FROM sends ORDER BY snapshot_at, issue", p![])?
            .iter()
            .map(|r| r.get::<String>(0))
            .collect::<Result<Vec<_>>>()?;
        issues
            .into_iter()
            .map(|i| {
                let c = self.counts(&i)?;
                Ok((i, c))
            })
            .collect()
    }

    /// Every row of an issue that is not `sent`, by address.
    pub(crate) fn not_sent(&self, issue: &str) -> Result<Vec<ReportRow>> {
        self.conn
            .query(
                "SELECT address, state, attempts, last_reply, updated_at FROM deliveries
                 WHERE issue = ?1 AND state <> 'sent' ORDER BY address",
                p![issue],
            )?
            .iter()
            .map(|r| {
                Ok(ReportRow {
                    address: Address::unchecked(r.get(0)?),
                    state: r.get::<String>(1)?.parse()?,
                    attempts: r.get(2)?,
                    last_reply: r.get(3)?,
                    updated_at: r.get(4)?,
                })
            })
            .collect()
    }

    /// Starts the one writer of the ledger for a send (on SQLite), or for this sender (on
    /// PostgreSQL), on its own connection; its claims hold only rows `worker` holds.
    pub(crate) fn writer(&self, worker: i64) -> Result<Writer> {
        let checkpoints = match self.conn.is_postgres() {
            false => Some(self.reconnect()?),
            true => None,
        };
        Writer::start(self.reconnect()?, worker, checkpoints)
    }
}

pub(super) fn row_of(r: &DbRow) -> Result<Row> {
    Ok(Row {
        id: r.get(0)?,
        address: Address::unchecked(r.get(1)?),
        name: r.get(2)?,
        attempts: r.get(3)?,
        first_attempt_at: r.get(4)?,
    })
}

/// `in_flight` rows of `issue` whose sender holds no lease at `alive_after` become `unknown`;
/// the registrations of such senders are dropped (rows they still hold become free).
pub(super) fn recover_in_flight(conn: &Conn, issue: &str, alive_after: i64) -> Result<usize> {
    let n = conn.execute(
        "UPDATE deliveries SET state = 'unknown',
             last_reply = 'the sending process stopped after handing the message to the server',
             updated_at = ?2
         WHERE issue = ?1 AND state = 'in_flight'
           AND (worker IS NULL
                OR worker NOT IN (SELECT id FROM send_workers WHERE lease_until >= ?3))",
        p![issue, now_text(), alive_after],
    )?;
    conn.execute(
        "DELETE FROM send_workers WHERE issue = ?1 AND lease_until < ?2",
        p![issue, alive_after],
    )?;
    Ok(n)
}

/// One state change of a delivery, as the delivery workers report them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    /// The 2xx reply to the final dot.
    Sent { reply: String },
    /// A 4xx: try again after `next_attempt_at` (Unix seconds); `attempts` counts this one.
    Deferred {
        reply: String,
        next_attempt_at: i64,
        attempts: u32,
    },
    /// A 5xx, or attempts exhausted; `bounce` also marks the subscriber bounced.
    Failed {
        reply: String,
        attempts: u32,
        bounce: bool,
    },
    /// No reply to the final dot: the server may or may not have the message.
    Unknown { reply: String },
    /// The message never reached the final dot (a 421, a dropped connection): back to pending
    /// without counting an attempt.
    Release { reply: String },
}

enum Op {
    /// Commit `in_flight`, or `skipped` when the subscriber is no longer active; `at` is the
    /// row's first attempt unless it had one.
    Claim {
        id: i64,
        at: i64,
        done: tokio::sync::oneshot::Sender<bool>,
    },
    Change {
        id: i64,
        change: Change,
    },
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// The one writer of the ledger during a send. Changes wait in a queue and are committed
/// together: with the next claim, or by the writer's thread once one is urgent or has waited
/// [`LINGER`]. On SQLite a claim commits on the caller's own thread, holding the connection
/// for that one transaction: the commit is short (no fsync in WAL mode), and handing it to
/// another thread and back cost more than the commit itself. (A claim that waits for the
/// file's write lock, held by another process, holds its runtime thread as long, up to the
/// busy timeout; the send waits for that claim either way, and SMTP servers wait minutes.)
/// On PostgreSQL, where a commit is
/// a round trip to the server, the caller queues its claim and the thread commits it, with
/// whatever else is queued, while the caller builds its message.
pub(crate) struct Writer {
    core: Arc<Core>,
    wake: Option<mpsc::Sender<Wake>>,
    thread: Option<JoinHandle<()>>,
    checkpoints: Option<Checkpointer>,
}

/// What the writer's handles share.
struct Core {
    /// The writer's connection, held for one transaction at a time. Always taken before
    /// `queue` when both are.
    conn: Mutex<Conn>,
    queue: Mutex<Queue>,
    worker: i64,
    /// Claims commit on the caller's thread (SQLite).
    inline: bool,
}

/// What waits for the next commit, and whether commits go on.
#[derive(Default)]
struct Queue {
    /// Changes, flushes and (on PostgreSQL) claims, in order.
    ops: Vec<Op>,
    /// Why nothing more is committed, once that is so: a failed commit, or the end of the
    /// send. Set under the same lock that queues, so nothing is queued after it.
    stopped: Option<String>,
    /// `stopped` is a failure, not the end of the send.
    failed: bool,
}

/// What wakes the writer's thread.
enum Wake {
    /// Something urgent was queued: commit now.
    Now,
    /// Commit what is queued and end the thread.
    Stop,
}

/// A cheap handle the delivery workers use.
#[derive(Clone)]
pub(crate) struct WriterHandle {
    core: Arc<Core>,
    wake: mpsc::Sender<Wake>,
}

impl Writer {
    /// Starts the writer on its own connection to the state file; `checkpoints`, on a
    /// second connection to a SQLite file, copies the log into the file meanwhile.
    fn start(conn: Conn, worker: i64, checkpoints: Option<Conn>) -> Result<Writer> {
        let checkpoints = match checkpoints {
            Some(c) => {
                // That thread copies the log into the file, so the writer's commits seldom
                // stop for it (a checkpoint syncs the file, for milliseconds, and every claim
                // waiting behind it would wait as long). Only a long log is checkpointed by
                // the writer itself, right after a commit: little is left to copy by then,
                // and only then does its next commit start the log over.
                conn.sqlite_pragma("wal_autocheckpoint", LOG_PAGES_RESTART)?;
                Some(Checkpointer::start(c)?)
            }
            None => None,
        };
        let core = Arc::new(Core {
            inline: !conn.is_postgres(),
            conn: Mutex::new(conn),
            queue: Mutex::new(Queue::default()),
            worker,
        });
        let (wake, woken) = mpsc::channel::<Wake>();
        let c = core.clone();
        let thread = std::thread::Builder::new()
            .name("ledger".into())
            .spawn(move || writer_loop(&c, &woken))
            .context("starting the ledger writer")?;
        Ok(Writer {
            core,
            wake: Some(wake),
            thread: Some(thread),
            checkpoints,
        })
    }

    pub(crate) fn handle(&self) -> WriterHandle {
        WriterHandle {
            core: self.core.clone(),
            wake: self.wake.clone().expect("writer running"),
        }
    }

    /// Commits everything queued so far and stops the thread.
    pub(crate) fn finish(mut self) -> Result<()> {
        if let Some(wake) = self.wake.take() {
            let _ = wake.send(Wake::Stop);
        }
        if let Some(t) = self.thread.take() {
            t.join()
                .map_err(|_| anyhow::anyhow!("the ledger writer panicked"))?;
        }
        if let Some(c) = self.checkpoints.take() {
            c.finish();
        }
        let q = self.core.lock_queue();
        match (&q.stopped, q.failed) {
            (Some(e), true) => anyhow::bail!("writing the delivery ledger: {e}"),
            _ => Ok(()),
        }
    }
}

impl Core {
    /// The queue, even after a panic elsewhere: its state is valid after any push or take.
    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn failed(&self) -> anyhow::Error {
        let e = self
            .lock_queue()
            .stopped
            .clone()
            .unwrap_or_else(|| "the writer stopped".into());
        anyhow::anyhow!("writing the delivery ledger: {e}")
    }

    /// Ends commits for good: everything still queued is dropped, so whoever waits for it
    /// gets an error, and nothing more can be queued.
    fn stop(&self, why: String, failed: bool) {
        let dropped = {
            let mut q = self.lock_queue();
            if q.stopped.is_none() {
                q.stopped = Some(why);
                q.failed = failed;
            }
            std::mem::take(&mut q.ops)
        };
        drop(dropped);
    }

    /// Queues `op` for the next commit.
    fn queue(&self, op: Op) -> Result<()> {
        let mut q = self.lock_queue();
        if q.stopped.is_some() {
            drop(q);
            return Err(self.failed());
        }
        q.ops.push(op);
        Ok(())
    }

    /// Queues a claim and commits it on this thread, with everything queued before it,
    /// unless a commit on another thread took it meanwhile (claims that wait for the
    /// connection together share one commit). Returns whether the row went in flight.
    fn claim_here(&self, id: i64, at: i64) -> Result<bool> {
        let (done, mut answer) = tokio::sync::oneshot::channel();
        self.queue(Op::Claim { id, at, done })?;
        loop {
            use tokio::sync::oneshot::error::TryRecvError;
            match answer.try_recv() {
                Ok(went) => return Ok(went),
                Err(TryRecvError::Closed) => return Err(self.failed()),
                // Answers are sent before the connection is let go: once this caller holds
                // it, its claim is either answered or still queued.
                Err(TryRecvError::Empty) => self.commit()?,
            }
        }
    }

    /// Commits everything queued in one transaction. An error (or a panic in an earlier
    /// commit) stops the writer for good.
    fn commit(&self) -> Result<()> {
        let Ok(conn) = self.conn.lock() else {
            self.stop("a commit of the ledger panicked".into(), true);
            return Err(self.failed());
        };
        // Taken only once the connection is ours, so commits keep the order of the queue;
        // and checked then, so no commit follows a failed one.
        let mut batch = {
            let mut q = self.lock_queue();
            if q.stopped.is_some() {
                drop(q);
                return Err(self.failed());
            }
            std::mem::take(&mut q.ops)
        };
        if batch.is_empty() {
            return Ok(());
        }
        match apply(&conn, self.worker, &mut batch) {
            Ok(replies) => {
                for r in replies {
                    r();
                }
                Ok(())
            }
            Err(e) => {
                // What this batch held is dropped with it, and the rest of the queue with
                // `stop`: every flush and claim waiting on either fails.
                self.stop(format!("{e:#}"), true);
                Err(self.failed())
            }
        }
    }
}

impl WriterHandle {
    /// Commits the row `in_flight` (true) or, when its subscriber is no longer active,
    /// `skipped` (false). `at` (Unix seconds) becomes the row's first attempt time unless it
    /// has one. The answer is ready only once committed, with every change queued before.
    ///
    /// On SQLite the claim is committed here, before this returns; on PostgreSQL it is queued
    /// at once, not when the answer is first awaited, so the caller can do other work while
    /// it commits.
    pub(crate) fn claim(
        &self,
        id: i64,
        at: i64,
    ) -> impl std::future::Future<Output = Result<bool>> + Send + 'static {
        enum Answer {
            Known(Result<bool>),
            Coming(tokio::sync::oneshot::Receiver<bool>),
        }
        let answer = if self.core.inline {
            Answer::Known(self.core.claim_here(id, at))
        } else {
            let (done, rx) = tokio::sync::oneshot::channel();
            match self.queue_now(Op::Claim { id, at, done }) {
                Ok(()) => Answer::Coming(rx),
                Err(e) => Answer::Known(Err(e)),
            }
        };
        let core = self.core.clone();
        async move {
            match answer {
                Answer::Known(r) => r,
                Answer::Coming(rx) => rx.await.map_err(|_| core.failed()),
            }
        }
    }

    /// Queues `op` and wakes the writer's thread to commit it now.
    fn queue_now(&self, op: Op) -> Result<()> {
        self.core.queue(op)?;
        self.wake.send(Wake::Now).map_err(|_| self.core.failed())
    }

    /// Queues a change; it is committed with the next batch, before any later claim.
    pub(crate) fn record(&self, id: i64, change: Change) -> Result<()> {
        let op = Op::Change { id, change };
        match op.urgent() {
            true => self.queue_now(op),
            false => self.core.queue(op),
        }
    }

    /// Waits until everything queued is committed.
    pub(crate) async fn flush(&self) -> Result<()> {
        let (done, rx) = tokio::sync::oneshot::channel();
        self.queue_now(Op::Flush(done))?;
        rx.await.map_err(|_| self.core.failed())
    }
}

/// How long a `sent` may wait for company before the writer's thread commits it. A claim
/// commits it at once, with it: while messages go out there is one commit per claim, not one
/// per claim and one per reply. A crash within this time leaves those rows `in_flight`, so
/// they become `unknown`, as after a crash just before the reply: never sent twice. Every
/// other change is committed at once, since `unknown` would hide that the message was not
/// taken (a deferral, a release) and keep it from being sent again.
const LINGER: std::time::Duration = std::time::Duration::from_millis(50);

impl Op {
    /// Whether this op's commit should not wait for company: someone waits for it, or it
    /// says the message was not taken.
    fn urgent(&self) -> bool {
        !matches!(
            self,
            Op::Change {
                change: Change::Sent { .. },
                ..
            }
        )
    }
}

/// The writer's thread: commits what is queued when woken, and at least every [`LINGER`]
/// while anything is queued; ends on [`Wake::Stop`] (after a last commit), when every handle
/// is gone, or at the first failed commit.
fn writer_loop(core: &Core, woken: &mpsc::Receiver<Wake>) {
    loop {
        let stop = match woken.recv_timeout(LINGER) {
            Ok(Wake::Now) | Err(mpsc::RecvTimeoutError::Timeout) => false,
            Ok(Wake::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => true,
        };
        // Wake-ups that came meanwhile are served by this one commit.
        while let Ok(w) = woken.try_recv() {
            if matches!(w, Wake::Stop) {
                return finish_loop(core);
            }
        }
        if stop {
            return finish_loop(core);
        }
        if core.commit().is_err() {
            return;
        }
    }
}

fn finish_loop(core: &Core) {
    if core.commit().is_ok() {
        core.stop("the send has ended".into(), false);
    }
}

type Reply = Box<dyn FnOnce() + Send>;

/// How often the checkpointer copies the committed log into a SQLite state file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Log pages past which the writer checkpoints after its commit (32 MiB), as SQLite's own
/// automatic checkpoint does at 1,000. The checkpointer's PASSIVE copies the log but cannot
/// start it over: only a writer does, at a moment no page is left to copy, and commits
/// hundreds of times a second never leave one. A RESTART from the checkpointer's thread
/// lost the write lock to those commits under load, for long enough to let the log double.
const LOG_PAGES_RESTART: i64 = 8192;

/// A thread that copies a SQLite file's write-ahead log into the file while a send commits,
/// so that no claim waits behind a checkpoint; when the send ends, the log is emptied.
struct Checkpointer {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Checkpointer {
    fn start(conn: Conn) -> Result<Checkpointer> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || checkpoint_loop(&conn, &stopped))
            .context("starting the checkpointer")?;
        Ok(Checkpointer { stop, thread })
    }

    fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

fn checkpoint_loop(conn: &Conn, stopped: &mpsc::Receiver<()>) {
    let mut warned = false;
    let mut warn = |e: anyhow::Error| {
        if !std::mem::replace(&mut warned, true) {
            tracing::warn!("copying the state's write-ahead log into the file: {e:#}");
        }
    };
    // PASSIVE never waits for the writer or a reader: it copies what it can.
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
        if let Err(e) = checkpoint(conn, "PASSIVE") {
            warn(e);
        }
    }
    // The send is over: the log goes into the file and is emptied, so the state file is its
    // own size again. A reader in another process (a backup tool, a shell) would make this
    // wait while holding the write lock: it does not wait, the log then stays as it is.
    let _ = conn.sqlite_pragma("busy_timeout", 0);
    if let Err(e) = checkpoint(conn, "TRUNCATE") {
        tracing::debug!("the last checkpoint of the send: {e:#}");
    }
}

/// Runs one checkpoint of the given mode.
fn checkpoint(conn: &Conn, mode: &str) -> Result<()> {
    conn.query_opt(&format!("PRAGMA wal_checkpoint({mode})"), p![])?;
    Ok(())
}

/// How long the writer goes on retrying a batch that waited too long for the write lock
/// (another sender's snapshot, a large import) before the send stops.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(600);

/// Commits `batch` in one transaction and returns the answers to send once it is committed;
/// a batch that lost a lock wait (PostgreSQL) is rolled back and tried again.
fn apply(conn: &Conn, worker: i64, batch: &mut Vec<Op>) -> Result<Vec<Reply>> {
    let started = std::time::Instant::now();
    let claimed = loop {
        match apply_once(conn, worker, batch) {
            Ok(claimed) => break claimed,
            Err(e) if super::db::is_lock_wait(&e) && started.elapsed() < LOCK_PATIENCE => {
                tracing::warn!("the ledger waited too long for the state's write lock: again");
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(e) => return Err(e),
        }
    };
    let mut claimed = claimed.into_iter();
    let mut replies: Vec<Reply> = Vec::new();
    for op in batch.drain(..) {
        match op {
            Op::Claim { done, .. } => {
                let go = claimed.next().unwrap_or(false);
                replies.push(Box::new(move || {
                    let _ = done.send(go);
                }));
            }
            Op::Flush(done) => replies.push(Box::new(move || {
                let _ = done.send(());
            })),
            Op::Change { .. } => {}
        }
    }
    Ok(replies)
}

/// One try of [`apply`]: whether each claim of `batch` went in flight, in order.
fn apply_once(conn: &Conn, worker: i64, batch: &[Op]) -> Result<Vec<bool>> {
    let tx = conn.write()?;
    let now = now_text();
    let mut claimed = Vec::new();
    // A claim takes only a row this sender holds: one whose lease expired (the sender was
    // stopped for longer than its lease) may have gone to another sender since.
    // The subscriber is checked in the claim itself, so nobody who left since the snapshot
    // gets the message; a row whose subscriber left is marked skipped by the second
    // statement, which runs only then.
    let claim = "UPDATE deliveries SET state = 'in_flight',
             first_attempt_at = coalesce(first_attempt_at, ?3), updated_at = ?2
         WHERE id = ?1 AND state IN ('pending', 'deferred') AND worker = ?4
           AND EXISTS (SELECT 1 FROM subscribers s
                       WHERE s.address = deliveries.address AND s.status = 'active')";
    let skip = "UPDATE deliveries SET state = 'skipped',
             last_reply = 'the subscriber is no longer active', updated_at = ?2
         WHERE id = ?1 AND state IN ('pending', 'deferred') AND worker = ?3";
    // A change too is written only while no other sender holds the row: after this one's
    // lease ran out another may have taken, sent or deferred it. A deferred row leaves its
    // sender (any sender may take it once it is due), and may still be given back to
    // pending by the one that deferred it (the breaker).
    let set = "UPDATE deliveries SET state = ?2, last_reply = ?3,
             attempts = coalesce(?4, attempts), next_attempt_at = ?5, updated_at = ?6,
             worker = CASE WHEN ?2 = 'deferred' THEN NULL ELSE worker END
         WHERE id = ?1 AND (worker = ?7 OR worker IS NULL)";
    for op in batch {
        match op {
            Op::Claim { id, at, .. } => {
                let taken = tx.execute(claim, p![*id, &now, *at, worker])? == 1;
                if !taken {
                    tx.execute(skip, p![*id, &now, worker])?;
                }
                claimed.push(taken);
            }
            Op::Change { id, change } => {
                let (state, reply, attempts, next) = match change {
                    Change::Sent { reply } => (DeliveryState::Sent, reply, None, None),
                    Change::Deferred {
                        reply,
                        next_attempt_at,
                        attempts,
                    } => (
                        DeliveryState::Deferred,
                        reply,
                        Some(*attempts),
                        Some(*next_attempt_at),
                    ),
                    Change::Failed {
                        reply, attempts, ..
                    } => (DeliveryState::Failed, reply, Some(*attempts), None),
                    Change::Unknown { reply } => (DeliveryState::Unknown, reply, None, None),
                    Change::Release { reply } => (DeliveryState::Pending, reply, None, None),
                };
                let held = tx.execute(
                    set,
                    p![*id, state.as_str(), reply, attempts, next, &now, worker],
                )? == 1;
                if let (true, Change::Failed { bounce: true, .. }) = (held, change) {
                    bounce_subscriber(&tx, *id, reply, &now)?;
                }
            }
            Op::Flush(_) => {}
        }
    }
    tx.commit()?;
    Ok(claimed)
}

/// Marks the subscriber of delivery `id` bounced, if they still receive mail, through the
/// one status-change function, so their history says why.
fn bounce_subscriber(tx: &Conn, id: i64, reply: &str, now: &str) -> Result<()> {
    let address: String = tx
        .query_one("SELECT address FROM deliveries WHERE id = ?1", p![id])?
        .get(0)?;
    let from = current_status(tx, &address)?;
    if let Some(from @ (SubscriberStatus::Active | SubscriberStatus::Pending)) = from {
        record_status_change(
            tx,
            &StatusChange {
                address: &address,
                name: None,
                from: Some(from),
                to: SubscriberStatus::Bounced,
                path: ChangePath::Bounce,
                reason: Some(reply),
                at: now,
            },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::policy::{age_cutoff, gave_up_by_age};
    use crate::store::db::Backend;
    use crate::store::testing::{on_both, on_both_async};
    use crate::store::SubscriberStatus;
    use std::sync::atomic::AtomicBool;

    /// What `send` runs before it selects rows: deferred rows past the age cap fail.
    fn expire(s: &mut Store, now: i64, max_age_hours: i64) -> usize {
        s.expire_deferred(
            "i",
            age_cutoff(now, max_age_hours),
            &gave_up_by_age(max_age_hours, ""),
        )
        .unwrap()
    }

    /// A sender of `issues` that took every row due at 0, and its ledger writer.
    fn sender(s: &Store, issues: &[&str]) -> (crate::store::lease::Lease, Writer) {
        let lease = s
            .lease(issues[0], 30, Arc::new(AtomicBool::new(false)))
            .unwrap();
        for issue in issues {
            let mut pages = s.due_pages(issue, 0, lease.id()).unwrap();
            while !pages.next_page(1000).unwrap().is_empty() {}
        }
        let w = s.writer(lease.id()).unwrap();
        (lease, w)
    }

    fn setup(backend: Backend, n: usize) -> (crate::store::testing::Keep, Store) {
        let (d, mut s) = crate::store::testing::store(backend);
        let rows: Vec<_> = (0..n).map(|i| (format!("u{i}@x.org"), None)).collect();
        s.import(&rows).unwrap();
        (d, s)
    }

    fn a_snapshot_of_nobody_records_nothing_and_an_old_one_is_taken_again(backend: Backend) {
        let (_d, mut s) = setup(backend, 0);
        assert_eq!(s.snapshot("i").unwrap(), Some(0));
        assert!(!s.has_snapshot("i").unwrap());
        assert!(s.all_counts().unwrap().is_empty());
        // What earlier versions left: a send of nobody, complete for ever.
        s.conn
            .execute(
                "INSERT INTO sends (issue, snapshot_at) VALUES ('i', 'x')",
                p![],
            )
            .unwrap();
        assert!(!s.has_snapshot("i").unwrap());
        s.add_active("late@x.org", None).unwrap();
        assert_eq!(s.snapshot("i").unwrap(), Some(1));
        assert!(s.has_snapshot("i").unwrap());
    }

    fn due_rows_come_a_page_at_a_time_in_id_order(backend: Backend) {
        let (_d, mut s) = setup(backend, 5);
        s.snapshot("i").unwrap();
        assert_eq!(s.due_count("i", 0).unwrap(), 5);
        let lease = s.lease("i", 30, Arc::new(AtomicBool::new(false))).unwrap();
        let mut pages = s.due_pages("i", 0, lease.id()).unwrap();
        let mut seen = Vec::new();
        loop {
            let page = pages.next_page(2).unwrap();
            assert!(page.len() <= 2);
            if page.is_empty() {
                break;
            }
            seen.extend(page.into_iter().map(|r| r.id));
        }
        assert!(pages.is_done());
        let all: Vec<i64> = s.due("i", 0).unwrap().into_iter().map(|r| r.id).collect();
        assert_eq!(seen, all);
    }

    fn snapshot_is_taken_once(backend: Backend) {
        let (_d, mut s) = setup(backend, 3);
        assert_eq!(s.snapshot("i1").unwrap(), Some(3));
        s.add_active("late@x.org", None).unwrap();
        assert_eq!(s.snapshot("i1").unwrap(), None);
        assert_eq!(s.counts("i1").unwrap().get(DeliveryState::Pending), 3);
        assert_eq!(s.snapshot("i2").unwrap(), Some(4));
        let all = s.all_counts().unwrap();
        assert_eq!(all.len(), 2);
    }

    async fn claims_skip_unsubscribed_and_changes_commit_in_order(backend: Backend) {
        let (_d, mut s) = setup(backend, 3);
        s.snapshot("i").unwrap();
        s.unsubscribe("u1@x.org").unwrap();
        let rows = s.due("i", 0).unwrap();
        let (_lease, w) = sender(&s, &["i"]);
        let h = w.handle();
        assert!(h.claim(rows[0].id, 100).await.unwrap());
        assert!(
            !h.claim(rows[1].id, 100).await.unwrap(),
            "unsubscribed after the snapshot"
        );
        assert!(h.claim(rows[2].id, 100).await.unwrap());
        // Claimed twice: the second claim finds it in flight and refuses.
        assert!(!h.claim(rows[2].id, 100).await.unwrap());
        h.record(
            rows[0].id,
            Change::Sent {
                reply: "250 ok".into(),
            },
        )
        .unwrap();
        h.record(
            rows[2].id,
            Change::Failed {
                reply: "550 5.1.1 nobody".into(),
                attempts: 1,
                bounce: true,
            },
        )
        .unwrap();
        h.flush().await.unwrap();
        w.finish().unwrap();
        let c = s.counts("i").unwrap();
        assert_eq!(c.get(DeliveryState::Sent), 1);
        assert_eq!(c.get(DeliveryState::Skipped), 1);
        assert_eq!(c.get(DeliveryState::Failed), 1);
        assert_eq!(c.total(), 3);
        assert_eq!(
            s.subscriber("u2@x.org").unwrap().unwrap().status,
            SubscriberStatus::Bounced
        );
        let last = s.history("u2@x.org").unwrap().pop().unwrap();
        assert_eq!(last.to, SubscriberStatus::Bounced);
        assert_eq!(last.path.as_str(), "bounce");
        assert_eq!(last.reason.as_deref(), Some("550 5.1.1 nobody"));
        let report = s.not_sent("i").unwrap();
        assert_eq!(report.len(), 2);
        assert_eq!(report[1].last_reply.as_deref(), Some("550 5.1.1 nobody"));
    }

    async fn in_flight_becomes_unknown_and_deferred_waits(backend: Backend) {
        let (_d, mut s) = setup(backend, 2);
        s.snapshot("i").unwrap();
        let rows = s.due("i", 0).unwrap();
        let (lease, w) = sender(&s, &["i"]);
        let h = w.handle();
        assert!(h.claim(rows[0].id, 100).await.unwrap());
        assert!(h.claim(rows[1].id, 100).await.unwrap());
        h.record(
            rows[1].id,
            Change::Deferred {
                reply: "451 later".into(),
                next_attempt_at: 1000,
                attempts: 1,
            },
        )
        .unwrap();
        w.finish().unwrap();
        // The sender stops: its lease ends with it.
        drop(lease);
        assert_eq!(s.recover_in_flight("i").unwrap(), 1);
        assert!(s.due("i", 999).unwrap().is_empty());
        assert_eq!(s.due("i", 1000).unwrap().len(), 1);
        assert_eq!(s.next_due("i").unwrap(), Some(1000));
        assert_eq!(s.requeue_unknown("i").unwrap(), 1);
        assert_eq!(s.due("i", 1000).unwrap().len(), 2);
        let c = s.counts("i").unwrap();
        assert!(!c.is_complete());
        assert_eq!(
            c.one_line(),
            "pending 1, in_flight 0, sent 0, deferred 1, failed 0, unknown 0, skipped 0, total 2"
        );
    }

    async fn every_issue_in_flight_is_recovered_and_unfinished_ones_are_listed(backend: Backend) {
        let (_d, mut s) = setup(backend, 2);
        for issue in ["a", "b", "c"] {
            s.snapshot(issue).unwrap();
        }
        let (lease, w) = sender(&s, &["a", "c"]);
        let h = w.handle();
        for issue in ["a", "c"] {
            for r in s.due(issue, 0).unwrap() {
                assert!(h.claim(r.id, 100).await.unwrap());
            }
        }
        // c: every row sent but one, which stays in flight.
        let c_rows: Vec<i64> = s
            .conn
            .query(
                "SELECT id FROM deliveries WHERE issue = 'c' ORDER BY id",
                p![],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0).unwrap())
            .collect();
        h.record(
            c_rows[0],
            Change::Sent {
                reply: "250 ok".into(),
            },
        )
        .unwrap();
        w.finish().unwrap();
        drop(lease);
        assert_eq!(
            s.unfinished_issues().unwrap(),
            ["a", "b", "c"],
            "in flight and pending rows are unfinished work"
        );
        assert_eq!(
            s.recover_all_in_flight().unwrap(),
            [("a".to_string(), 2), ("c".to_string(), 1)]
        );
        assert_eq!(s.counts("a").unwrap().get(DeliveryState::Unknown), 2);
        assert_eq!(s.counts("b").unwrap().get(DeliveryState::Pending), 2);
        // Unknown rows wait for --retry-unknown: a and c are finished, b is not.
        assert_eq!(s.unfinished_issues().unwrap(), ["b"]);
        assert!(s.recover_all_in_flight().unwrap().is_empty());
    }

    async fn claims_record_the_first_attempt_once(backend: Backend) {
        let (_d, mut s) = setup(backend, 2);
        s.snapshot("i").unwrap();
        s.unsubscribe("u1@x.org").unwrap();
        let rows = s.due("i", 0).unwrap();
        assert_eq!(rows[0].first_attempt_at, None);
        let (_lease, w) = sender(&s, &["i"]);
        let h = w.handle();
        assert!(h.claim(rows[0].id, 500).await.unwrap());
        // A 421: back to pending, then claimed again later; the first attempt stays.
        h.record(
            rows[0].id,
            Change::Release {
                reply: "421 bye".into(),
            },
        )
        .unwrap();
        assert!(h.claim(rows[0].id, 900).await.unwrap());
        // Skipped is not an attempt.
        assert!(!h.claim(rows[1].id, 900).await.unwrap());
        w.finish().unwrap();
        let firsts: Vec<Option<i64>> = s
            .conn
            .query("SELECT first_attempt_at FROM deliveries ORDER BY id", p![])
            .unwrap()
            .iter()
            .map(|r| r.get(0).unwrap())
            .collect();
        assert_eq!(firsts, [Some(500), None]);
    }

    fn deferred_rows_older_than_the_cap_fail_with_their_last_reply(backend: Backend) {
        let (_d, mut s) = setup(backend, 6);
        s.snapshot("i").unwrap();
        s.snapshot("other").unwrap();
        let now = 1_000_000;
        let cap = 72;
        let edge = now - cap * 3600;
        // (address, state, first_attempt_at)
        for (a, state, first) in [
            ("u0@x.org", "deferred", Some(edge - 1)),
            ("u1@x.org", "deferred", Some(edge)),
            ("u2@x.org", "deferred", Some(now - 60)),
            ("u3@x.org", "deferred", None),
            ("u4@x.org", "unknown", Some(edge - 100)),
            ("u5@x.org", "pending", Some(edge - 100)),
        ] {
            s.conn
                .execute(
                    "UPDATE deliveries SET state = ?2, first_attempt_at = ?3,
                         last_reply = '451 4.3.0 later', next_attempt_at = ?4
                     WHERE issue = 'i' AND address = ?1",
                    p![a, state, first, now + 10],
                )
                .unwrap();
        }
        assert_eq!(expire(&mut s, now, cap), 1);
        let report = s.not_sent("i").unwrap();
        let states: Vec<(&str, DeliveryState)> = report
            .iter()
            .map(|r| (r.address.as_str(), r.state))
            .collect();
        assert_eq!(
            states,
            [
                ("u0@x.org", DeliveryState::Failed),
                ("u1@x.org", DeliveryState::Deferred),
                ("u2@x.org", DeliveryState::Deferred),
                ("u3@x.org", DeliveryState::Deferred),
                ("u4@x.org", DeliveryState::Unknown),
                ("u5@x.org", DeliveryState::Pending),
            ]
        );
        assert_eq!(
            report[0].last_reply.as_deref(),
            Some("gave up after 72 h: 451 4.3.0 later")
        );
        // The failed row is no longer due nor waited for; the other issue is untouched.
        assert_eq!(s.next_due("i").unwrap(), Some(now + 10));
        assert!(s
            .due("i", now + 10)
            .unwrap()
            .iter()
            .all(|r| r.address.as_str() != "u0@x.org"));
        assert_eq!(s.counts("other").unwrap().get(DeliveryState::Pending), 6);
        // One second later the row at the edge is past the cap too.
        assert_eq!(expire(&mut s, now + 1, cap), 1);
    }

    fn rows_an_interrupted_send_left_untried_are_never_aged(backend: Backend) {
        let (_d, mut s) = setup(backend, 2);
        s.snapshot("i").unwrap();
        // A stop writes the rest of the queue as deferred without a first attempt; however old
        // the send, those people were never tried and must still get the issue.
        s.conn
            .batch(
                "UPDATE sends SET snapshot_at = '2001-01-01T00:00:00Z';
                 UPDATE deliveries SET state = 'deferred', next_attempt_at = 0,
                     last_reply = 'not attempted: the send was interrupted';",
            )
            .unwrap();
        let later = chrono::Utc::now().timestamp();
        assert_eq!(expire(&mut s, later, 72), 0);
        assert_eq!(s.due("i", later).unwrap().len(), 2);
    }

    /// The SQLite test state's write-ahead log.
    fn log_of(d: &crate::store::testing::Keep) -> std::path::PathBuf {
        d.path().unwrap().join("state.sqlite3-wal")
    }

    /// The size of a write-ahead log, 0 when there is none.
    fn log_size(wal: &std::path::Path) -> u64 {
        std::fs::metadata(wal).map_or(0, |m| m.len())
    }

    /// Claims and sends every row of a snapshot of `n`, one claim at a time, as a send does.
    async fn send_all(s: &Store, w: &Writer, n: usize) {
        let h = w.handle();
        for r in s.due("i", 0).unwrap().iter().take(n) {
            assert!(h.claim(r.id, 1).await.unwrap());
            h.record(
                r.id,
                Change::Sent {
                    reply: "250 ok".into(),
                },
            )
            .unwrap();
        }
        h.flush().await.unwrap();
    }

    /// Thousands of small commits, as a fast send makes: the checkpointer rewinds the log
    /// while they go on, and empties it when the send ends.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sqlite_send_s_log_stays_short_and_is_emptied_at_the_end() {
        let (d, mut s) = setup(Backend::Sqlite, 10_000);
        s.snapshot("i").unwrap();
        let (lease, w) = sender(&s, &["i"]);
        // The log's length, looked at every 10 ms while the commits go on without a pause.
        let wal = log_of(&d);
        let done = Arc::new(AtomicBool::new(false));
        let watcher = {
            let done = done.clone();
            let wal = wal.clone();
            std::thread::spawn(move || {
                let mut longest = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    longest = longest.max(log_size(&wal));
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                longest
            })
        };
        send_all(&s, &w, 10_000).await;
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let longest = watcher.join().unwrap();
        w.finish().unwrap();
        assert_eq!(log_size(&wal), 0, "the log is emptied when the send ends");
        lease.finish().unwrap();
        // 8192 pages of 4 KiB, and the commits of one round of the checkpointer.
        assert!(
            longest < 64 << 20,
            "the log grew to {longest} bytes during the send"
        );
        assert_eq!(s.counts("i").unwrap().get(DeliveryState::Sent), 10_000);
    }

    /// A reader in another process holds the log: the send's last checkpoint gives up at
    /// once instead of holding the write lock for the busy timeout, and nothing is lost.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_last_checkpoint_does_not_wait_for_a_reader() {
        let (d, mut s) = setup(Backend::Sqlite, 50);
        s.snapshot("i").unwrap();
        let reader = rusqlite::Connection::open(d.path().unwrap().join("state.sqlite3")).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let n: i64 = reader
            .query_row("SELECT count(*) FROM deliveries", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 50);
        let (lease, w) = sender(&s, &["i"]);
        send_all(&s, &w, 50).await;
        let started = std::time::Instant::now();
        w.finish().unwrap();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "the writer took {:?} to finish",
            started.elapsed()
        );
        // Another process may write while the reader still reads.
        s.unsubscribe("u0@x.org").unwrap();
        reader.execute_batch("COMMIT").unwrap();
        lease.finish().unwrap();
        assert_eq!(s.counts("i").unwrap().get(DeliveryState::Sent), 50);
    }

    /// Once a commit fails, every claim, change and flush after it fails with its reason (a
    /// flush queued before the failure too, instead of waiting for ever), and `finish` says
    /// why; once the send has ended, a late claim is refused rather than committed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_commit_stops_the_writer_and_every_waiter_hears_why() {
        let limit = std::time::Duration::from_secs(30);
        let (_d, mut s) = setup(Backend::Sqlite, 4);
        s.snapshot("i").unwrap();
        let rows = s.due("i", 0).unwrap();
        let (_lease, w) = sender(&s, &["i"]);
        let h = w.handle();
        assert!(h.claim(rows[0].id, 100).await.unwrap());
        // A `sent` waits for company; the table is gone before it commits.
        h.record(
            rows[0].id,
            Change::Sent {
                reply: "250".into(),
            },
        )
        .unwrap();
        s.conn
            .batch("ALTER TABLE deliveries RENAME TO gone")
            .unwrap();
        let flushed = tokio::time::timeout(limit, h.flush()).await;
        let e = flushed.expect("the flush returns").unwrap_err();
        assert!(format!("{e:#}").contains("no such table"), "{e:#}");
        let e = tokio::time::timeout(limit, h.claim(rows[1].id, 100))
            .await
            .expect("the claim returns")
            .unwrap_err();
        assert!(format!("{e:#}").contains("no such table"), "{e:#}");
        assert!(h
            .record(
                rows[1].id,
                Change::Sent {
                    reply: "250".into()
                }
            )
            .is_err());
        let e = w.finish().unwrap_err();
        assert!(format!("{e:#}").contains("no such table"), "{e:#}");
        s.conn
            .batch("ALTER TABLE gone RENAME TO deliveries")
            .unwrap();
        // Nothing after the failure was committed.
        let c = s.counts("i").unwrap();
        assert_eq!(c.get(DeliveryState::InFlight), 1);
        assert_eq!(c.get(DeliveryState::Pending), 3);

        // A writer that ended cleanly refuses a late claim and still says it ended well.
        let (_lease, w) = sender(&s, &["i"]);
        let h = w.handle();
        assert!(h.claim(rows[1].id, 100).await.unwrap());
        w.finish().unwrap();
        let e = h.claim(rows[2].id, 100).await.unwrap_err();
        assert!(format!("{e:#}").contains("the send has ended"), "{e:#}");
        assert_eq!(s.counts("i").unwrap().get(DeliveryState::InFlight), 2);
    }

    /// Many sending tasks on two runtime threads claim at once, so claims meet at the
    /// connection (and may share a commit): every answer matches what the row holds
    /// afterwards, a row claimed twice goes in flight once, and every `sent` is committed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_claims_share_commits_and_each_answer_matches_its_row() {
        const ROWS: usize = 600;
        const TASKS: usize = 8;
        let (_d, mut s) = setup(Backend::Sqlite, ROWS);
        s.snapshot("i").unwrap();
        // Every seventh subscriber leaves after the snapshot.
        for i in (0..ROWS).step_by(7) {
            s.unsubscribe(format!("u{i}@x.org").as_str()).unwrap();
        }
        let rows = s.due("i", 0).unwrap();
        let (_lease, w) = sender(&s, &["i"]);
        let mut tasks = Vec::new();
        for t in 0..TASKS {
            let h = w.handle();
            // Each task takes its own rows, and every fifth row of the next task's too.
            let mine: Vec<i64> = rows
                .iter()
                .enumerate()
                .filter(|(k, _)| k % TASKS == t || (k % TASKS == (t + 1) % TASKS && k % 5 == 0))
                .map(|(_, r)| r.id)
                .collect();
            tasks.push(tokio::spawn(async move {
                let mut went = Vec::new();
                for id in mine {
                    if h.claim(id, 100).await.unwrap() {
                        h.record(
                            id,
                            Change::Sent {
                                reply: "250".into(),
                            },
                        )
                        .unwrap();
                        went.push(id);
                    }
                    tokio::task::yield_now().await;
                }
                went
            }));
        }
        let mut went = Vec::new();
        for t in tasks {
            went.extend(t.await.unwrap());
        }
        w.handle().flush().await.unwrap();
        w.finish().unwrap();
        let unique: std::collections::BTreeSet<i64> = went.iter().copied().collect();
        assert_eq!(unique.len(), went.len(), "a row went in flight twice");
        let left = ROWS.div_ceil(7);
        assert_eq!(went.len(), ROWS - left);
        let c = s.counts("i").unwrap();
        assert_eq!(c.get(DeliveryState::Sent), ROWS - left);
        assert_eq!(c.get(DeliveryState::Skipped), left);
        assert_eq!(c.total(), ROWS);
    }

    on_both!(
        a_snapshot_of_nobody_records_nothing_and_an_old_one_is_taken_again,
        due_rows_come_a_page_at_a_time_in_id_order,
        snapshot_is_taken_once,
        deferred_rows_older_than_the_cap_fail_with_their_last_reply,
        rows_an_interrupted_send_left_untried_are_never_aged
    );

    on_both_async!(
        claims_skip_unsubscribed_and_changes_commit_in_order,
        in_flight_becomes_unknown_and_deferred_waits,
        every_issue_in_flight_is_recovered_and_unfinished_ones_are_listed,
        claims_record_the_first_attempt_once
    );
}
