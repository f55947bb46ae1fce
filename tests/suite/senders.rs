//! Cooperating senders and serve replicas on one PostgreSQL database: several `techshack send`
//! processes on one issue share its list (each address gets one copy), a SIGKILLed sender's
//! rows are taken over once its lease runs out, and unsubscribes through either of two `serve`
//! processes stop the mail at once. Real binary, real PostgreSQL, an aiosmtpd relay that takes
//! 20 ms per message.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::pg;
use crate::support::serve::{one_click, unsubscribe_token, Server as Serve};
use crate::support::smtp::{Server, ISSUE};
use crate::support::TestSite;

/// Recipients of each send: enough for every sender to take a page of its own.
const N: usize = 3000;
/// Sessions per sender.
const CONCURRENCY: usize = 4;
/// How long any send of these tests may take.
const BOUND: Duration = Duration::from_secs(90);

/// A site whose state is a fresh PostgreSQL database, mailing through a relay that answers
/// each message after 20 ms and records every RCPT with its time.
struct Shared {
    site: TestSite,
    smtp: Server,
    url: String,
    /// The relay's folder (its logs).
    _relay: tempfile::TempDir,
}

impl Shared {
    fn new(subscribers: usize) -> Shared {
        let relay = tempfile::tempdir().unwrap();
        let smtp = Server::start(
            relay.path(),
            serde_json::json!({"data_delay_ms": 20, "record_rcpt": true}),
        );
        let site = TestSite::for_send(
            &format!("smtp://127.0.0.1:{}", smtp.port),
            &format!("concurrency = {CONCURRENCY}"),
        );
        let url = pg::database_url();
        let text = std::fs::read_to_string(&site.config).unwrap();
        let text = text.replacen(
            "[state]\n",
            &format!("[state]\nurl = \"{url}\"\nlease_seconds = 3\n"),
            1,
        );
        std::fs::write(
            &site.config,
            format!(
                "{text}\n[serve]\nlisten = \"127.0.0.1:9\"\npublic_url = \"https://example.org\"\n"
            ),
        )
        .unwrap();
        site.subscribe(subscribers);
        Shared {
            site,
            smtp,
            url,
            _relay: relay,
        }
    }

    /// Starts `techshack send ISSUE`.
    fn send(&self) -> Child {
        self.site
            .cmd()
            .args(["send", ISSUE])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting techshack send")
    }

    fn db(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls)
            .expect("connecting to the test database")
    }

    /// Messages the relay received so far.
    fn received(&self) -> usize {
        std::fs::read_to_string(&self.smtp.log)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    /// Every RCPT the relay accepted: (Unix seconds, address), in order of arrival.
    fn rcpts(&self) -> Vec<(f64, String)> {
        let mut f = self.smtp.log.as_os_str().to_owned();
        f.push(".rcpt");
        std::fs::read_to_string(std::path::PathBuf::from(f))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let (t, a) = l.split_once('\t').expect("time<TAB>address");
                (t.parse().expect("a time"), a.to_string())
            })
            .collect()
    }

    /// The `https://` List-Unsubscribe URL of each message received so far, by address.
    fn unsubscribe_urls(&self) -> Vec<(String, String)> {
        let mut f = self.smtp.log.as_os_str().to_owned();
        f.push(".unsubscribe");
        std::fs::read_to_string(std::path::PathBuf::from(f))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let (a, h) = l.split_once('\t').expect("address<TAB>header");
                let url = h
                    .split(['<', '>'])
                    .find(|p| p.starts_with("https://"))
                    .unwrap_or_else(|| panic!("no https URL in List-Unsubscribe: {h}"));
                (a.to_string(), url.to_string())
            })
            .collect()
    }

    /// The ledger's rows per state, from `status ISSUE`.
    fn status(&self) -> HashMap<String, usize> {
        let mut s = self.site.status();
        assert_eq!(s.remove("total"), Some(s.values().sum()));
        s.retain(|_, n| *n > 0);
        s
    }
}

/// Waits for `child` within what is left of `deadline`; kills it and fails after that.
fn finish(mut child: Child, deadline: Instant) -> Output {
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "a send did not end in time:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What one sender's summary line says it sent.
fn sent_by(out: &Output) -> usize {
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.contains("this run sent "))
        .unwrap_or_else(|| panic!("no summary line in:\n{err}"));
    line.split("this run sent ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line}"))
}

fn assert_ok(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until the relay has received `n` messages.
fn wait_received(s: &Shared, n: usize, senders: &mut [Child]) {
    let t = Instant::now();
    while s.received() < n {
        for c in senders.iter_mut() {
            if let Some(st) = c.try_wait().unwrap() {
                panic!(
                    "a sender ended ({st}) before the relay had {n} messages ({})",
                    s.received()
                );
            }
        }
        assert!(t.elapsed() < BOUND, "the send did not get going");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn addresses() -> Vec<String> {
    addresses_of(N)
}

fn addresses_of(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("user{i:04}@example.net")).collect()
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn three_senders_share_one_issue_and_each_address_gets_one_copy() {
    let s = Shared::new(N);
    let deadline = Instant::now() + BOUND;
    let senders: Vec<Child> = (0..3).map(|_| s.send()).collect();
    let outs: Vec<Output> = senders.into_iter().map(|c| finish(c, deadline)).collect();
    for o in &outs {
        assert_ok(o);
    }
    let shares: Vec<usize> = outs.iter().map(sent_by).collect();
    assert_eq!(shares.iter().sum::<usize>(), N, "shares {shares:?}");
    assert!(
        shares.iter().all(|&n| n > 0),
        "a sender sent nothing: {shares:?}"
    );
    let counts = s.smtp.counts();
    assert_eq!(counts.len(), N);
    for a in addresses() {
        assert_eq!(counts.get(&a), Some(&1), "{a}");
    }
    assert_eq!(s.status(), HashMap::from([("sent".to_string(), N)]));
    // Every sender's registration is gone, and no row is still held.
    let mut db = s.db();
    let workers: i64 = db
        .query_one("SELECT count(*) FROM send_workers", &[])
        .unwrap()
        .get(0);
    assert_eq!(workers, 0);
}

#[test]
fn a_killed_sender_leaves_only_its_in_flight_rows_unknown() {
    let s = Shared::new(N);
    let deadline = Instant::now() + BOUND;
    let mut senders: Vec<Child> = (0..3).map(|_| s.send()).collect();
    wait_received(&s, N / 3, &mut senders);
    let victim = senders.remove(0);
    let pid = i64::from(victim.id());
    let mut db = s.db();
    let lease: i64 = db
        .query_one("SELECT id FROM send_workers WHERE pid = $1", &[&pid])
        .expect("the sender to kill is registered")
        .get(0);
    let mut victim = victim;
    victim.kill().unwrap();
    victim.wait().unwrap();
    // Its connections are gone (an open transaction rolled back) once the server saw the
    // sockets close; its lease still runs for a few seconds.
    std::thread::sleep(Duration::from_millis(300));
    let in_flight: HashSet<String> = db
        .query(
            "SELECT address FROM deliveries WHERE worker = $1 AND state = 'in_flight'",
            &[&lease],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let held: i64 = db
        .query_one(
            "SELECT count(*) FROM deliveries WHERE worker = $1 AND state = 'pending'",
            &[&lease],
        )
        .unwrap()
        .get(0);
    assert!(
        in_flight.len() <= CONCURRENCY,
        "{} rows in flight for {CONCURRENCY} sessions",
        in_flight.len()
    );
    assert!(
        held > 0,
        "the killed sender held no untried rows: kill it earlier"
    );

    let outs: Vec<Output> = senders.into_iter().map(|c| finish(c, deadline)).collect();
    for o in &outs {
        assert_ok(o);
        assert!(sent_by(o) > 0);
    }
    let unknown: HashSet<String> = s
        .site
        .status_csv()
        .into_iter()
        .filter(|(_, st, _)| st == "unknown")
        .map(|(a, _, _)| a)
        .collect();
    assert_eq!(
        unknown, in_flight,
        "unknown rows are the killed sender's in-flight rows"
    );
    let mut want = HashMap::from([("sent".to_string(), N - unknown.len())]);
    if !unknown.is_empty() {
        want.insert("unknown".to_string(), unknown.len());
    }
    assert_eq!(s.status(), want, "nobody pending, skipped or deferred");
    let counts = s.smtp.counts();
    for a in addresses() {
        let got = counts.get(&a).copied().unwrap_or(0);
        if unknown.contains(&a) {
            assert!(got <= 1, "{a}: {got} copies");
        } else {
            assert_eq!(got, 1, "{a}");
        }
    }
    let workers: i64 = db
        .query_one("SELECT count(*) FROM send_workers", &[])
        .unwrap()
        .get(0);
    assert_eq!(workers, 0, "the dead sender's registration was cleared");
}

#[test]
fn unsubscribes_through_two_serve_replicas_during_a_three_sender_send_are_honoured() {
    let s = Shared::new(N);
    let replicas: [Serve; 2] = [s.site.serve(), s.site.serve()];
    assert_ne!(replicas[0].base, replicas[1].base);
    let deadline = Instant::now() + BOUND;
    let mut senders: Vec<Child> = (0..3).map(|_| s.send()).collect();
    wait_received(&s, 300, &mut senders);

    // Addresses far ahead of every sender, by the signed link; and addresses that got the
    // issue already, by the one-click URL their message carries.
    let ahead: Vec<String> = (0..3)
        .flat_map(|page| [700, 850].map(|k| format!("user{:04}@example.net", page * 1000 + k)))
        .collect();
    let mut requests: Vec<(String, String)> = ahead
        .iter()
        .map(|a| {
            (
                a.clone(),
                format!("/unsubscribe?token={}", unsubscribe_token(a)),
            )
        })
        .collect();
    let received: Vec<(String, String)> = s.unsubscribe_urls().into_iter().take(6).collect();
    assert_eq!(received.len(), 6);
    for (a, url) in &received {
        let path = url
            .strip_prefix("https://example.org")
            .unwrap_or_else(|| panic!("{url} is not under the public URL"));
        requests.push((a.clone(), path.to_string()));
    }
    let mut answered: Vec<(String, f64)> = Vec::new();
    for (i, (a, path)) in requests.iter().enumerate() {
        let replica = &replicas[i % 2];
        let r = one_click(&replica.url(path));
        assert_eq!(r.status, 200, "{a} through {}: {}", replica.base, r.body);
        answered.push((a.clone(), unix_now()));
    }
    assert!(
        s.received() < N - 300,
        "the send was nearly done ({} received) before the last unsubscribe",
        s.received()
    );

    let outs: Vec<Output> = senders.into_iter().map(|c| finish(c, deadline)).collect();
    for o in &outs {
        assert_ok(o);
    }
    let rcpts = s.rcpts();
    for (a, at) in &answered {
        let late: Vec<f64> = rcpts
            .iter()
            .filter(|(t, r)| r == a && t > at)
            .map(|(t, _)| *t)
            .collect();
        assert!(
            late.is_empty(),
            "{a} was mailed at {late:?}, after its 200 at {at}"
        );
    }
    let counts = s.smtp.counts();
    for a in &ahead {
        assert_eq!(counts.get(a), None, "{a} was mailed after unsubscribing");
    }
    for (a, _) in &received {
        assert_eq!(counts.get(a), Some(&1), "{a}");
    }
    assert_eq!(counts.len(), N - ahead.len());
    assert!(counts.values().all(|&n| n == 1), "someone got two copies");
    assert_eq!(
        s.status(),
        HashMap::from([
            ("sent".to_string(), N - ahead.len()),
            ("skipped".to_string(), ahead.len())
        ])
    );

    let out = s.site.cmd().args(["subscribers", "list"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = String::from_utf8(out.stdout).unwrap();
    let status: HashMap<&str, &str> = list
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            Some((f.next()?, f.next()?))
        })
        .collect();
    assert_eq!(status.len(), N);
    for (a, _) in &answered {
        assert_eq!(status.get(a.as_str()), Some(&"unsubscribed"), "{a}");
    }
    assert_eq!(
        status.values().filter(|s| **s == "unsubscribed").count(),
        answered.len()
    );
    for r in replicas {
        assert!(r.stop().success());
    }
}

#[test]
fn two_senders_started_at_once_on_a_fresh_issue_snapshot_it_once() {
    const FEW: usize = 300;
    let s = Shared::new(FEW);
    let deadline = Instant::now() + BOUND;
    let senders = [s.send(), s.send()];
    let outs: Vec<Output> = senders.into_iter().map(|c| finish(c, deadline)).collect();
    for o in &outs {
        assert_ok(o);
    }
    let took: Vec<bool> = outs
        .iter()
        .map(|o| {
            String::from_utf8_lossy(&o.stderr).contains(&format!("{FEW} subscriber(s) snapshotted"))
        })
        .collect();
    assert_eq!(
        took.iter().filter(|t| **t).count(),
        1,
        "one sender snapshots, the other joins: {took:?}"
    );
    assert_eq!(outs.iter().map(sent_by).sum::<usize>(), FEW);
    assert_eq!(s.status(), HashMap::from([("sent".to_string(), FEW)]));
    let counts = s.smtp.counts();
    assert_eq!(counts.len(), FEW);
    for a in addresses_of(FEW) {
        assert_eq!(counts.get(&a), Some(&1), "{a}");
    }
}
