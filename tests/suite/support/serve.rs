//! What the serve tests share: the SMTP sink of `tests/smtp/serve_sink.py`, sites that serve,
//! the running `techshack serve`, and an HTTP client.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use techshack::store::SubscriberStatus;

use super::python;

use super::{TestSite, SECRET};
/// Where the confirmation mails say the server is; tests map it to the real address.
pub const PUBLIC_URL: &str = "https://news.example.org";

/// The SMTP sink: every message kept as a file.
pub struct Sink {
    child: Child,
    pub port: u16,
    pub spool: PathBuf,
    pub log: PathBuf,
}

impl Sink {
    pub fn start(dir: &Path, delay_secs: f64) -> Sink {
        Sink::start_on(dir, delay_secs, 0)
    }

    /// The sink on `port` (0: any free port).
    pub fn start_on(dir: &Path, delay_secs: f64, port: u16) -> Sink {
        let port_file = dir.join("sink.port");
        let _ = std::fs::remove_file(&port_file);
        let spool = dir.join("spool");
        let log = dir.join("received.log");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/serve_sink.py");
        let child = Command::new(python())
            .arg(&script)
            .arg("--port-file")
            .arg(&port_file)
            .arg("--spool")
            .arg(&spool)
            .arg("--log")
            .arg(&log)
            .arg("--delay")
            .arg(delay_secs.to_string())
            .arg("--port")
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting tests/smtp/serve_sink.py");
        let t = Instant::now();
        let port = loop {
            if let Ok(s) = std::fs::read_to_string(&port_file) {
                break s.trim().parse::<u16>().expect("a port number");
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "the SMTP sink did not start"
            );
            std::thread::sleep(Duration::from_millis(30));
        };
        Sink {
            child,
            port,
            spool,
            log,
        }
    }

    /// Every message received so far, in order.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.spool)
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
            .iter()
            .map(|p| std::fs::read(p).expect("reading a received message"))
            .collect()
    }

    /// Waits until `n` messages have arrived; returns them all.
    pub fn wait_for(&self, n: usize) -> Vec<Vec<u8>> {
        self.wait_for_within(n, Duration::from_secs(20))
    }

    /// [`Sink::wait_for`] with a longer patience, for a mail that may wait out a backoff.
    pub fn wait_for_within(&self, n: usize, patience: Duration) -> Vec<Vec<u8>> {
        let t = Instant::now();
        loop {
            let m = self.messages();
            if m.len() >= n {
                return m;
            }
            assert!(
                t.elapsed() < patience,
                "expected {n} messages, the sink has {}",
                m.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Recipient lines of the log.
    pub fn recipients(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sites that serve: sign-up mails go to the SMTP sink on `smtp_port`.
impl TestSite {
    /// A site in `dir` mailing through `smtp_port`; `serve_extra` goes into `[serve]`,
    /// `extra` at the end of the config.
    pub fn for_serve(
        dir: tempfile::TempDir,
        smtp_port: u16,
        serve_extra: &str,
        extra: &str,
    ) -> TestSite {
        TestSite::in_dir(dir).folder("issues").config(&format!(
            r#"[site]
title = "Test Digest"
description = "Weekly notes"
base_url = "https://example.org"

[issues]
dir = "issues"

[email]
from = "Test Digest <digest@example.org>"
reply_to = "editor@example.org"
unsubscribe_url = "{PUBLIC_URL}/unsubscribe?token={{token}}"
unsubscribe_mailto = "unsubscribe@example.org"

[smtp]
url = "smtp://127.0.0.1:{smtp_port}"
timeout_secs = 5

[state]
db = "state/techshack.sqlite3"

[serve]
listen = "127.0.0.1:9"
public_url = "{PUBLIC_URL}"
{serve_extra}
{extra}"#
        ))
    }

    pub fn add_active(&self, addresses: &[&str]) {
        let mut s = self.store();
        for a in addresses {
            s.add_active(a, None).unwrap();
        }
    }

    pub fn subscriber_status(&self, address: &str) -> Option<SubscriberStatus> {
        self.store().subscriber(address).unwrap().map(|s| s.status)
    }

    /// Starts `techshack serve` on a free loopback port and waits until it listens.
    pub fn serve(&self) -> Server {
        self.serve_with(&[])
    }

    /// [`TestSite::serve`] with more environment variables (another secret, ...).
    pub fn serve_with(&self, env: &[(&str, &str)]) -> Server {
        let mut cmd = self.cmd();
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting techshack serve");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stderr);
            let mut line = String::new();
            let mut tx = Some(tx);
            while r.read_line(&mut line).unwrap_or(0) > 0 {
                if let Some(rest) = line.trim().strip_prefix("techshack serve: listening on ") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(rest.to_string());
                    }
                }
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(b) => b,
            Err(_) => {
                let _ = child.kill();
                let mut rest = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut rest);
                }
                panic!(
                    "techshack serve did not start: {}{rest}",
                    log.lock().unwrap()
                );
            }
        };
        Server { child, base, log }
    }
}

pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A link as mailed (under PUBLIC_URL), pointed at this server.
    pub fn local(&self, link: &str) -> String {
        let rest = link
            .strip_prefix(PUBLIC_URL)
            .unwrap_or_else(|| panic!("{link} is not under {PUBLIC_URL}"));
        self.url(rest)
    }

    /// What the server wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> &str {
        self.base.strip_prefix("http://").expect("an http base URL")
    }

    /// Sends SIGTERM without waiting.
    pub fn terminate(&self) {
        self.signal("-TERM");
    }

    /// Sends a signal (`-TERM`, `-INT`) without waiting.
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let st = Command::new("kill").args([name, &pid]).status();
        assert!(
            st.as_ref().is_ok_and(|s| s.success()),
            "kill {name} {pid}: {st:?}"
        );
    }

    /// Waits for the process to exit; fails the test after `bound`.
    pub fn wait_exit(mut self, bound: Duration) -> std::process::ExitStatus {
        let t = Instant::now();
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s;
            }
            assert!(
                t.elapsed() < bound,
                "serve did not exit within {bound:?} of SIGTERM; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server with SIGTERM and waits for it.
    pub fn stop(self) -> std::process::ExitStatus {
        self.terminate();
        self.wait_exit(Duration::from_secs(10))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response, whatever its status.
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .redirects(0)
        .timeout(Duration::from_secs(20))
        .build()
}

fn reply(r: Result<ureq::Response, ureq::Error>) -> Reply {
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("HTTP request failed: {e}"),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .map(|n| {
            let v = resp.header(&n).unwrap_or("").to_string();
            (n, v)
        })
        .collect();
    let body = resp.into_string().unwrap_or_default();
    Reply {
        status,
        body,
        headers,
    }
}

pub fn get(url: &str) -> Reply {
    reply(agent().get(url).call())
}

pub fn post_form(url: &str, fields: &[(&str, &str)]) -> Reply {
    reply(agent().post(url).send_form(fields))
}

pub fn post_form_from(url: &str, forwarded_for: &str, fields: &[(&str, &str)]) -> Reply {
    reply(
        agent()
            .post(url)
            .set("X-Forwarded-For", forwarded_for)
            .send_form(fields),
    )
}

pub fn post_raw(url: &str, content_type: &str, body: &[u8]) -> Reply {
    reply(
        agent()
            .post(url)
            .set("Content-Type", content_type)
            .send_bytes(body),
    )
}

pub fn post_raw_from(url: &str, forwarded_for: &str, content_type: &str, body: &[u8]) -> Reply {
    reply(
        agent()
            .post(url)
            .set("X-Forwarded-For", forwarded_for)
            .set("Content-Type", content_type)
            .send_bytes(body),
    )
}

/// The RFC 8058 request, as mailbox providers send it.
pub fn one_click(url: &str) -> Reply {
    post_raw(
        url,
        "application/x-www-form-urlencoded",
        b"List-Unsubscribe=One-Click",
    )
}

pub fn unsubscribe_token(address: &str) -> String {
    techshack::token::sign(
        SECRET.as_bytes(),
        techshack::token::Purpose::Unsubscribe,
        address,
    )
}

/// The `https://...` link in a message's text (the first line that starts with `prefix`).
pub fn link_in(message: &[u8], prefix: &str) -> String {
    let m = mail_parser::MessageParser::default()
        .parse(message)
        .expect("a parsable message");
    let text = m.body_text(0).expect("a text part").to_string();
    text.split_whitespace()
        .find(|w| w.starts_with(prefix))
        .unwrap_or_else(|| panic!("no link starting with {prefix} in:\n{text}"))
        .to_string()
}

/// A POST over a plain socket that keeps reading when the server answers before the whole
/// body is written (as it does for an oversize body); returns the status code.
pub fn post_oversize(base: &str, path: &str, content_type: &str, body: &[u8]) -> u16 {
    use std::io::Write;
    let host = base.strip_prefix("http://").expect("an http base URL");
    let mut s = std::net::TcpStream::connect(host).expect("connecting to serve");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"))
}

/// A plain TCP connection to `addr` that first sends `bytes` (for example half a request).
pub fn raw_client(addr: &str, bytes: &[u8]) -> std::net::TcpStream {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).expect("connecting to serve");
    s.write_all(bytes).expect("writing to serve");
    s
}

/// [`raw_client`] from another local address (`127.0.0.2`, say): another client on loopback.
pub fn raw_client_from(local: std::net::IpAddr, addr: &str, bytes: &[u8]) -> std::net::TcpStream {
    use std::io::Write;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let s = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(std::net::SocketAddr::new(local, 0))
            .expect("binding the client socket");
        sock.connect(addr.parse().unwrap())
            .await
            .expect("connecting to serve")
    });
    let mut s = s.into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    drop(rt);
    s.write_all(bytes).expect("writing to serve");
    s
}

/// Everything the server sends until it closes the connection, or `None` when it is still
/// open after `bound`.
pub fn read_until_closed(s: &mut std::net::TcpStream, bound: Duration) -> Option<Vec<u8>> {
    use std::io::ErrorKind;
    let deadline = Instant::now() + bound;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Some(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // A reset is the server closing too.
            Err(_) => return Some(out),
        }
    }
}

/// The status code of the first HTTP response in `bytes`.
pub fn status_of(bytes: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(bytes);
    let line = text.lines().next()?;
    let mut parts = line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.parse().ok()
}
