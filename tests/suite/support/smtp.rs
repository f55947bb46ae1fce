//! The fault-injecting SMTP server of `tests/smtp/server.py`, and the sites that send through
//! it (the send, status and subscribers tests).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::python;

use super::TestSite;

pub struct Server {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
    port_file: PathBuf,
}

impl Server {
    /// Starts the server on `host` with the given faults (a JSON object).
    pub fn start_on(dir: &Path, host: &str, faults: serde_json::Value) -> Server {
        let id = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let faults_file = dir.join(format!("faults-{id}.json"));
        std::fs::write(&faults_file, faults.to_string()).unwrap();
        let port_file = dir.join(format!("port-{id}"));
        let log = dir.join("received.log");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/server.py");
        let child = Command::new(python())
            .arg(&script)
            .args(["--host", host, "--port-file"])
            .arg(&port_file)
            .arg("--log")
            .arg(&log)
            .arg("--faults")
            .arg(&faults_file)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting tests/smtp/server.py");
        let t = Instant::now();
        let port = loop {
            if let Ok(s) = std::fs::read_to_string(&port_file) {
                break s.trim().parse::<u16>().unwrap();
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "the SMTP test server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Server {
            child,
            port,
            log,
            port_file,
        }
    }

    pub fn start(dir: &Path, faults: serde_json::Value) -> Server {
        Self::start_on(dir, "127.0.0.1", faults)
    }

    /// Messages received per address (the log survives server restarts).
    pub fn counts(&self) -> HashMap<String, usize> {
        counts(&self.log)
    }

    /// What the `drop_in_content` fault recorded: (address, bytes of content taken before the
    /// hang-up, or `whole` when the message was complete after all), in order.
    pub fn dropped(&self) -> Vec<(String, String)> {
        let mut f = self.log.as_os_str().to_owned();
        f.push(".dropped");
        std::fs::read_to_string(PathBuf::from(f))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(a, n)| (a.to_string(), n.to_string()))
            .collect()
    }

    /// Messages received per (address, subject): one issue's subject is its title.
    pub fn counts_by_subject(&self) -> HashMap<(String, String), usize> {
        let mut f = self.log.as_os_str().to_owned();
        f.push(".subjects");
        let mut m = HashMap::new();
        for l in std::fs::read_to_string(PathBuf::from(f))
            .unwrap_or_default()
            .lines()
        {
            let (a, s) = l.split_once('\t').unwrap_or((l, ""));
            *m.entry((a.to_string(), s.to_string())).or_insert(0) += 1;
        }
        m
    }

    pub fn connections(&self) -> usize {
        std::thread::sleep(Duration::from_millis(300));
        let mut f = self.port_file.as_os_str().to_owned();
        f.push(".connections");
        std::fs::read_to_string(PathBuf::from(f))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn counts(log: &Path) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    if let Ok(s) = std::fs::read_to_string(log) {
        for l in s.lines().filter(|l| !l.is_empty()) {
            *m.entry(l.to_string()).or_insert(0) += 1;
        }
    }
    m
}

pub const ISSUE: &str = "2026-11-20";

/// Sites that send: one issue dated yesterday, mailed through a test SMTP server.
impl TestSite {
    /// `smtp` holds the `[smtp]` keys beyond the defaults below, as TOML lines.
    pub fn for_send(smtp_url: &str, smtp: &str) -> TestSite {
        let yesterday = (chrono::Utc::now() - chrono::Duration::days(1))
            .format("%Y-%m-%d")
            .to_string();
        let site = TestSite::new().issue(
            &format!("{ISSUE}.md"),
            format!(
                "---\ntitle: \"Queues & <b>logs</b>\"\ndate: {yesterday}\ndescription: A test issue\n---\n\n\
                 ## [Kafka internals](https://example.com/kafka)\n\nNotes about <script>x</script> logs.\n"
            ),
        );
        TestSite::write_send_config(&site.config, smtp_url, smtp);
        site
    }

    pub fn write_send_config(config: &Path, smtp_url: &str, smtp: &str) {
        let mut smtp = smtp.to_string();
        for (k, v) in [
            ("concurrency", "4"),
            ("rate", "5000"),
            ("timeout_secs", "3"),
            ("retry_after_secs", "1"),
        ] {
            if !smtp.lines().any(|l| l.trim_start().starts_with(k)) {
                smtp.push_str(&format!("\n{k} = {v}"));
            }
        }
        std::fs::write(
            config,
            format!(
                r#"[site]
title = "Test Digest"
base_url = "https://example.org"

[issues]
dir = "issues"

[email]
from = "Test Digest <digest@example.org>"
unsubscribe_url = "https://example.org/unsubscribe?token={{token}}"
unsubscribe_mailto = "unsubscribe@example.org"

[smtp]
url = "{smtp_url}"
{smtp}

[state]
db = "state/techshack.sqlite3"
"#
            ),
        )
        .unwrap();
    }

    /// Moves every deferred row's next attempt `secs` into the past, as if that much time had
    /// passed, so tests need neither sleep nor race a short backoff.
    pub fn age_deferred(&self, secs: i64) {
        self.sql(
            "UPDATE deliveries SET next_attempt_at = next_attempt_at - ?1 WHERE state = 'deferred'",
            &[&secs.to_string()],
        );
    }

    /// Imports `n` subscribers `user0000@example.net`... through the CLI.
    pub fn subscribe(&self, n: usize) -> Vec<String> {
        let addrs: Vec<String> = (0..n).map(|i| format!("user{i:04}@example.net")).collect();
        let mut csv = String::from("email,name\n");
        for (i, a) in addrs.iter().enumerate() {
            csv.push_str(&format!("{a},User {i}\n"));
        }
        let f = self.path("subscribers.csv");
        std::fs::write(&f, csv).unwrap();
        self.assert_cmd()
            .args(["subscribers", "import"])
            .arg(&f)
            .assert()
            .success();
        addrs
    }

    /// `status ISSUE` as a map of state to count.
    pub fn status(&self) -> HashMap<String, usize> {
        let out = self.cmd().args(["status", ISSUE]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                let (k, v) = l.split_once(' ').unwrap();
                (k.to_string(), v.parse().unwrap())
            })
            .collect()
    }

    /// Asserts that the ledger has no send of `ISSUE`: `status ISSUE` says so and exits 1.
    pub fn assert_no_send(&self) {
        let out = self.cmd().args(["status", ISSUE]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!("no send recorded for {ISSUE}")),
            "{err}"
        );
        assert!(out.stdout.is_empty());
    }

    /// `status ISSUE --csv` rows (address, state).
    pub fn status_csv(&self) -> Vec<(String, String, String)> {
        let f = self.path("status.csv");
        let out = self
            .cmd()
            .args(["status", ISSUE, "--csv"])
            .arg(&f)
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = std::fs::read_to_string(&f).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("address,state,attempts,last_reply,updated_at")
        );
        let mut r = csv::Reader::from_path(&f).unwrap();
        r.records()
            .map(|x| {
                let x = x.unwrap();
                (x[0].to_string(), x[1].to_string(), x[3].to_string())
            })
            .collect()
    }
}
