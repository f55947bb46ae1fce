//! Senders and their leases: how several `send` processes share one issue.
//!
//! A sender registers in `send_workers` and renews its lease while it works (a thread of its
//! own). It takes due rows a page at a time by writing its id into their `worker` column;
//! on PostgreSQL the page is locked with `FOR UPDATE SKIP LOCKED`, so two senders never take
//! the same row. A row is delivered only by the sender that holds it (the ledger's claim
//! checks `worker`). When a sender stops without finishing (killed, power, network), its
//! lease runs out; then another sender turns its `in_flight` rows into `unknown` and takes
//! its untried rows. On SQLite one send runs at a time (the send lock), which holds the only
//! lease.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::db::{p, Conn};
use super::ledger::{recover_in_flight, row_of, Row};
use super::Store;

/// How long a sender waits before it looks again for rows other senders still hold.
const POLL: Duration = Duration::from_millis(500);

impl Store {
    /// Rows left `in_flight` by a sender that stopped become `unknown`. On SQLite, call only
    /// while holding the send lock: then no other process can have a row in flight. On
    /// PostgreSQL only the rows of senders whose lease expired change.
    pub(crate) fn recover_in_flight(&mut self, issue: &str) -> Result<usize> {
        end_leases_of_dead_processes(&self.conn)?;
        let alive_after = self.lease_clock()?;
        recover_in_flight(&self.conn, issue, alive_after)
    }

    /// [`Store::recover_in_flight`] for every issue at once; returns the rows changed per issue.
    pub(crate) fn recover_all_in_flight(&mut self) -> Result<Vec<(String, usize)>> {
        end_leases_of_dead_processes(&self.conn)?;
        let alive_after = self.lease_clock()?;
        let tx = self.conn.write()?;
        let issues = tx
            .query(
                "SELECT DISTINCT issue FROM deliveries WHERE state = 'in_flight' ORDER BY issue",
                p![],
            )?
            .iter()
            .map(|r| r.get::<String>(0))
            .collect::<Result<Vec<_>>>()?;
        let mut out = Vec::new();
        for issue in issues {
            let n = recover_in_flight(&tx, &issue, alive_after)?;
            if n > 0 {
                out.push((issue, n));
            }
        }
        tx.commit()?;
        Ok(out)
    }

    /// The time leases are measured in, Unix seconds: the database server's clock on
    /// PostgreSQL (senders on several hosts agree on it), this host's on SQLite.
    pub(crate) fn lease_clock(&self) -> Result<i64> {
        lease_clock(&self.conn, false)
    }

    /// Registers this process as a sender of `issue` under a lease of `secs` seconds, renewed
    /// by a thread until [`Lease::finish`]. When the lease cannot be renewed (the database
    /// is unreachable, or other senders took it over after it ran out), `lost` is set: the
    /// send must stop, as its rows may already be someone else's.
    pub(crate) fn lease(&self, issue: &str, secs: u64, lost: Arc<AtomicBool>) -> Result<Lease> {
        let secs = i64::try_from(secs.max(2)).unwrap_or(i64::MAX / 4);
        let now = lease_clock(&self.conn, true)?;
        let host = hostname();
        let id: i64 = self
            .conn
            .query_one(
                "INSERT INTO send_workers (issue, host, pid, started_at, lease_until)
                 VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
                p![issue, host, i64::from(std::process::id()), now, now + secs],
            )?
            .get(0)?;
        let conn = self.reconnect()?;
        let (stop, rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("lease".into())
            .spawn(move || renew(conn, id, secs, rx, lost))
            .context("starting the lease thread")?;
        Ok(Lease {
            id,
            conn: Some(self.reconnect()?),
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The rows of `issue` due at `now`, taken for `worker` a page at a time on a connection
    /// of their own, so a send holds one page of the list in memory, not the list.
    pub(crate) fn due_pages(&self, issue: &str, now: i64, worker: i64) -> Result<DuePages> {
        Ok(DuePages {
            conn: self.reconnect()?,
            issue: issue.to_string(),
            now,
            worker,
            after: i64::MIN,
            done: false,
            next_look: None,
        })
    }
}

/// The clock leases are compared with; `strict` asks for the real time on SQLite too (for a
/// lease's own times), where recovery otherwise treats every lease as run out.
pub(super) fn lease_clock(conn: &Conn, strict: bool) -> Result<i64> {
    if conn.is_postgres() {
        conn.query_one("SELECT extract(epoch FROM clock_timestamp())::bigint", p![])?
            .get(0)
    } else if strict {
        Ok(chrono::Utc::now().timestamp())
    } else {
        // Under the send lock no other SQLite sender is alive.
        Ok(i64::MAX)
    }
}

/// This host as a sender's registration names it: the host name, the boot (two machines may
/// share a name) and the PID namespace (so may two containers), so that a PID means one
/// process.
fn hostname() -> &'static str {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(host_identity)
}

/// What [`hostname`] returns, read from the system once per process.
fn host_identity() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|b| b.trim().to_string())
        .unwrap_or_default();
    match std::fs::read_link("/proc/self/ns/pid") {
        Ok(ns) => format!("{name} {boot} {}", ns.display()),
        Err(_) => name,
    }
}

/// Whether process `pid` of this host is running; `true` when that cannot be told.
fn running(pid: i64) -> bool {
    if !std::path::Path::new("/proc/self").exists() {
        return true;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses; Z is a zombie, X dead.
        Ok(stat) => !matches!(
            stat.rsplit(')')
                .next()
                .map(str::trim_start)
                .and_then(|s| s.chars().next()),
            Some('Z') | Some('X')
        ),
        Err(_) => false,
    }
}

/// Ends at once the leases of this host's senders whose process is gone (a killed cron
/// run): their rows need not wait for the lease to run out.
pub(super) fn end_leases_of_dead_processes(conn: &Conn) -> Result<()> {
    if !conn.is_postgres() {
        return Ok(());
    }
    let me = i64::from(std::process::id());
    for r in conn.query(
        "SELECT id, pid FROM send_workers WHERE host = ?1 AND lease_until >= 0",
        p![hostname()],
    )? {
        let (id, pid): (i64, i64) = (r.get(0)?, r.get(1)?);
        if pid != me && !running(pid) {
            conn.execute(
                "UPDATE send_workers SET lease_until = -1 WHERE id = ?1",
                p![id],
            )?;
        }
    }
    Ok(())
}

fn renew(conn: Conn, id: i64, secs: i64, stop: mpsc::Receiver<()>, lost: Arc<AtomicBool>) {
    let every = Duration::from_millis(u64::try_from(secs).unwrap_or(30) * 1000 / 3);
    let mut failing_since: Option<Instant> = None;
    loop {
        match stop.recv_timeout(every) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        // One statement, on the server's clock: a lease another sender found run out stays
        // run out.
        let renewed = if conn.is_postgres() {
            conn.execute(
                "UPDATE send_workers
                 SET lease_until = extract(epoch FROM clock_timestamp())::bigint + ?2
                 WHERE id = ?1 AND lease_until >= extract(epoch FROM clock_timestamp())::bigint",
                p![id, secs],
            )
        } else {
            let now = chrono::Utc::now().timestamp();
            conn.execute(
                "UPDATE send_workers SET lease_until = ?2 WHERE id = ?1 AND lease_until >= ?3",
                p![id, now + secs, now],
            )
        };
        match renewed {
            Ok(1) => failing_since = None,
            Ok(_) => {
                tracing::error!("the send lease ran out and other senders took it over: stopping");
                lost.store(true, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                let since = *failing_since.get_or_insert_with(Instant::now);
                tracing::warn!("renewing the send lease: {e:#}");
                // Before the lease runs out, stop: the rows may soon be another sender's.
                if since.elapsed() >= every * 2 {
                    lost.store(true, Ordering::Relaxed);
                    return;
                }
            }
        }
    }
}

/// This process's registration as a sender.
pub(crate) struct Lease {
    id: i64,
    conn: Option<Conn>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Lease {
    pub(crate) fn id(&self) -> i64 {
        self.id
    }

    /// Gives back the rows this sender took and did not try (they stay due, for any
    /// sender), and ends the lease.
    pub(crate) fn finish(mut self) -> Result<()> {
        self.end()
    }

    fn end(&mut self) -> Result<()> {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let Some(conn) = self.conn.take() else {
            return Ok(());
        };
        let tx = conn.begin()?;
        tx.execute(
            "UPDATE deliveries SET worker = NULL
             WHERE worker = ?1 AND state IN ('pending', 'deferred')",
            p![self.id],
        )?;
        tx.execute("DELETE FROM send_workers WHERE id = ?1", p![self.id])?;
        tx.commit()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Err(e) = self.end() {
            tracing::warn!("ending the send lease: {e:#}");
        }
    }
}

/// The due rows of one issue, taken for one sender a page at a time (see
/// [`Store::due_pages`]).
pub(crate) struct DuePages {
    conn: Conn,
    issue: String,
    /// Rows deferred past this time are not due in this run.
    now: i64,
    worker: i64,
    /// The last id taken; pages go forward from it.
    after: i64,
    done: bool,
    /// While other senders still hold due rows: when to look again.
    next_look: Option<Instant>,
}

impl DuePages {
    /// The next `limit` rows this sender took, by id; empty once no due row is left that
    /// another live sender holds, or (without [`DuePages::is_done`]) while other senders
    /// still hold some: they may give them back.
    pub(crate) fn next_page(&mut self, limit: usize) -> Result<Vec<Row>> {
        if self.done {
            return Ok(Vec::new());
        }
        if self.next_look.is_some_and(|t| Instant::now() < t) {
            return Ok(Vec::new());
        }
        self.next_look = None;
        let rows = self.take(limit)?;
        if !rows.is_empty() {
            self.after = rows.last().map_or(self.after, |r| r.id);
            return Ok(rows);
        }
        // The pass from `after` found nothing: look again from the start, for rows another
        // sender gave back, left behind when it died, or had locked a moment ago.
        self.after = i64::MIN;
        let rows = self.take(limit)?;
        if let Some(last) = rows.last() {
            self.after = last.id;
            return Ok(rows);
        }
        if self.held_by_others()? {
            self.next_look = Some(Instant::now() + POLL);
        } else {
            self.done = true;
        }
        Ok(Vec::new())
    }

    /// Whether every due row was taken.
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    fn take(&mut self, limit: usize) -> Result<Vec<Row>> {
        let postgres = self.conn.is_postgres();
        if postgres {
            // Rows a stopped sender left in flight: unknown, once its lease ran out. Under
            // the write lock, as the ledger writers change rows.
            let tx = self.conn.write()?;
            end_leases_of_dead_processes(&tx)?;
            let alive_at = lease_clock(&tx, false)?;
            recover_in_flight(&tx, &self.issue, alive_at)?;
            tx.commit()?;
        }
        let tx = self.conn.begin()?;
        // On SQLite, under the send lock, no other sender is alive.
        let alive_at = lease_clock(&tx, false)?;
        // Pending rows and due deferred ones are read as two runs of the index on (issue,
        // state), each in id order and cut at the page: a page costs its own rows, not the
        // rows still due after it (one condition over both states made SQLite collect and
        // sort every due row, for every page).
        let lock = if postgres {
            "FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let free = "(worker IS NULL
                     OR (worker <> ?3
                         AND worker NOT IN (SELECT id FROM send_workers
                                            WHERE lease_until >= ?5)))";
        let sql = format!(
            "UPDATE deliveries SET worker = ?3
             WHERE id IN (
                 SELECT id FROM (
                     SELECT id FROM (
                         SELECT id FROM deliveries
                         WHERE issue = ?1 AND state = 'pending' AND id > ?4 AND {free}
                         ORDER BY id LIMIT ?6 {lock}) pending
                     UNION ALL
                     SELECT id FROM (
                         SELECT id FROM deliveries
                         WHERE issue = ?1 AND state = 'deferred' AND id > ?4
                           AND next_attempt_at <= ?2 AND {free}
                         ORDER BY id LIMIT ?6 {lock}) deferred) due
                 ORDER BY id LIMIT ?6)
             RETURNING id, address, name, attempts, first_attempt_at"
        );
        let mut rows = tx
            .query(
                &sql,
                p![
                    &self.issue,
                    self.now,
                    self.worker,
                    self.after,
                    alive_at,
                    limit
                ],
            )?
            .iter()
            .map(row_of)
            .collect::<Result<Vec<_>>>()?;
        tx.commit()?;
        rows.sort_by_key(|r| r.id);
        Ok(rows)
    }

    /// Whether due rows of the issue are held by another sender, or are being taken: a row
    /// another sender's page has locked (`SKIP LOCKED` passed it over) still shows no
    /// `worker` until that sender commits.
    fn held_by_others(&self) -> Result<bool> {
        if !self.conn.is_postgres() {
            return Ok(false);
        }
        Ok(self
            .conn
            .query_opt(
                "SELECT 1 FROM deliveries
                 WHERE issue = ?1 AND (worker IS NULL OR worker <> ?3)
                   AND (state = 'pending' OR (state = 'deferred' AND next_attempt_at <= ?2))
                 LIMIT 1",
                p![&self.issue, self.now, self.worker],
            )?
            .is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Location;

    /// Three senders start at once: while the first two take their pages, every row is locked
    /// and none shows a sender yet. The third must look again, not end with rows unsent.
    #[test]
    fn rows_being_taken_by_another_sender_are_waited_for() {
        let url = crate::store::pg_cluster::database_url();
        let mut s = Store::open_at(&Location::Postgres(url)).unwrap();
        let rows: Vec<_> = (0..3).map(|i| (format!("u{i}@x.org"), None)).collect();
        s.import(&rows).unwrap();
        s.snapshot("i").unwrap();
        let other = s.reconnect().unwrap();
        let taking = other.begin().unwrap();
        let locked = taking
            .query("SELECT id FROM deliveries FOR UPDATE", p![])
            .unwrap();
        assert_eq!(locked.len(), 3);
        let lease = s.lease("i", 30, Arc::new(AtomicBool::new(false))).unwrap();
        let mut pages = s.due_pages("i", 0, lease.id()).unwrap();
        assert!(pages.next_page(1000).unwrap().is_empty());
        assert!(
            !pages.is_done(),
            "gave up on rows another sender was taking"
        );
        // The other sender let them go (it stopped before committing).
        taking.rollback().unwrap();
        std::thread::sleep(POLL + Duration::from_millis(100));
        assert_eq!(pages.next_page(1000).unwrap().len(), 3);
        assert!(pages.next_page(1000).unwrap().is_empty());
        assert!(pages.is_done());
        lease.finish().unwrap();
    }

    /// A sender stopped past its lease (paused, cut off) comes back: what it then records
    /// for rows another sender took over changes nothing, and its in-flight row, reported
    /// unknown meanwhile, takes the server's answer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sender_whose_lease_ran_out_writes_nothing_over_the_rows_taken_from_it() {
        let url = crate::store::pg_cluster::database_url();
        let mut s = Store::open_at(&Location::Postgres(url)).unwrap();
        let rows: Vec<_> = (0..3).map(|i| (format!("u{i}@x.org"), None)).collect();
        s.import(&rows).unwrap();
        s.snapshot("i").unwrap();
        let a = s.lease("i", 30, Arc::new(AtomicBool::new(false))).unwrap();
        let taken = s.due_pages("i", 0, a.id()).unwrap().next_page(10).unwrap();
        assert_eq!(taken.len(), 3);
        let wa = s.writer(a.id()).unwrap();
        let h = wa.handle();
        assert!(h.claim(taken[0].id, 100).await.unwrap());
        // A's lease runs out; B recovers A's in-flight row and takes the other two.
        s.conn
            .execute(
                "UPDATE send_workers SET lease_until = 0 WHERE id = ?1",
                p![a.id()],
            )
            .unwrap();
        let b = s.lease("i", 30, Arc::new(AtomicBool::new(false))).unwrap();
        let got = s.due_pages("i", 0, b.id()).unwrap().next_page(10).unwrap();
        let got: Vec<i64> = got.iter().map(|r| r.id).collect();
        assert_eq!(got, [taken[1].id, taken[2].id]);
        assert_eq!(
            s.counts("i")
                .unwrap()
                .get(super::super::DeliveryState::Unknown),
            1
        );
        // A, back, defers what it still had queued and hears its server's 250.
        use super::super::Change;
        for r in &taken[1..] {
            h.record(
                r.id,
                Change::Deferred {
                    reply: "not attempted".into(),
                    next_attempt_at: 0,
                    attempts: 0,
                },
            )
            .unwrap();
        }
        assert!(!h.claim(taken[1].id, 100).await.unwrap(), "B holds it");
        h.record(
            taken[0].id,
            Change::Sent {
                reply: "250 ok".into(),
            },
        )
        .unwrap();
        h.flush().await.unwrap();
        wa.finish().unwrap();
        let c = s.counts("i").unwrap();
        use super::super::DeliveryState::{Pending, Sent};
        assert_eq!((c.get(Sent), c.get(Pending)), (1, 2), "{}", c.one_line());
        let held: Vec<i64> = s
            .conn
            .query(
                "SELECT id FROM deliveries WHERE worker = ?1 ORDER BY id",
                p![b.id()],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0).unwrap())
            .collect();
        assert_eq!(held, [taken[1].id, taken[2].id], "still B's");
        drop(a);
        b.finish().unwrap();
    }
}
