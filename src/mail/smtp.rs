//! SMTP connections we own: a tokio `TcpStream` with `TCP_NODELAY` handed to lettre's
//! `AsyncSmtpConnection`, every step under a timeout, and replies classified by phase.
//!
//! lettre writes the final `.` of a message as a write of its own; without `TCP_NODELAY`
//! Nagle's algorithm holds it until the server's delayed ACK, about 40 ms per message.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::config::Endpoint;
pub use crate::config::{is_loopback, Security};

/// Where and how to connect, from `[smtp]` and `$TECHSHACK_SMTP_PASSWORD`.
#[derive(Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub security: Security,
    tls: Option<TlsParameters>,
    credentials: Option<Credentials>,
    username: String,
    pub timeout: Duration,
    hello: ClientId,
    private_ca: bool,
    /// For `smtps://`: the handshake is ours, so the socket keeps `TCP_NODELAY`.
    implicit: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password never appears, not even in debug output.
        f.debug_struct("Target")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .finish()
    }
}

impl Target {
    /// The target of a parsed endpoint; `password` is `$TECHSHACK_SMTP_PASSWORD`, needed
    /// once `smtp.username` is set.
    pub fn new(e: &Endpoint, password: Option<&str>) -> Result<Target> {
        let credentials = e
            .credentials(password)?
            .map(|p| Credentials::new(e.username.clone(), p));
        Ok(Target {
            host: e.host.clone(),
            port: e.port,
            security: e.security,
            tls: e.tls.clone(),
            credentials,
            username: e.username.clone(),
            timeout: e.timeout,
            hello: ClientId::default(),
            private_ca: e.ca_file.is_some(),
            implicit: e.implicit.clone(),
        })
    }

    /// Opens a ready connection: greeting, EHLO, TLS, AUTH.
    pub async fn connect(&self) -> Result<Conn, ConnectError> {
        let tcp = self.tcp().await?;
        let probe = probe_of(&tcp);
        let mut conn = self.greet(tcp).await?;
        self.starttls(&mut conn).await?;
        self.authenticate(&mut conn).await?;
        let pipelining = self.pipelining(&mut conn).await?;
        Ok(Conn {
            inner: conn,
            transactions: 0,
            broken: false,
            probe,
            pipelining,
        })
    }

    /// The TCP connection, with `TCP_NODELAY` (see the module's comment).
    async fn tcp(&self) -> Result<TcpStream, ConnectError> {
        let tcp = timeout(
            self.timeout,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| {
            ConnectError::Transient(format!(
                "connecting to {}:{} timed out",
                self.host, self.port
            ))
        })?
        .map_err(|e| {
            ConnectError::Transient(format!("connecting to {}:{}: {e}", self.host, self.port))
        })?;
        tcp.set_nodelay(true)
            .map_err(|e| ConnectError::Transient(format!("setting TCP_NODELAY: {e}")))?;
        Ok(tcp)
    }

    /// The session up to the server's EHLO reply, inside TLS for `smtps://`.
    async fn greet(&self, tcp: TcpStream) -> Result<AsyncSmtpConnection, ConnectError> {
        let step = self.timeout;
        let stream: Box<dyn lettre::transport::smtp::client::AsyncTokioStream> = match self.security
        {
            Security::Implicit => Box::new(TlsTcp(self.implicit_tls(tcp).await?)),
            _ => Box::new(tcp),
        };
        timeout(
            step,
            AsyncSmtpConnection::connect_with_transport(stream, &self.hello),
        )
        .await
        .map_err(|_| self.timed_out("the greeting and EHLO"))?
        .map_err(|e| self.classify_connect(e, "greeting"))
    }

    /// The TLS handshake of `smtps://`, driven by us so the socket keeps its options.
    async fn implicit_tls(
        &self,
        tcp: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ConnectError> {
        let config = self
            .implicit
            .clone()
            .ok_or_else(|| ConnectError::Fatal("TLS configuration missing".into()))?;
        let name = rustls::pki_types::ServerName::try_from(self.host.clone())
            .map_err(|e| ConnectError::Fatal(format!("`{}`: {e}", self.host)))?;
        timeout(
            self.timeout,
            tokio_rustls::TlsConnector::from(config).connect(name, tcp),
        )
        .await
        .map_err(|_| self.timed_out("the TLS handshake"))?
        .map_err(|e| {
            ConnectError::Fatal(format!(
                "TLS with {} failed: {e}; if the server uses a private CA, set smtp.ca_file",
                self.host
            ))
        })
    }

    /// STARTTLS when `security` wants it; refuses a server that does not offer it when it
    /// is required.
    async fn starttls(&self, conn: &mut AsyncSmtpConnection) -> Result<(), ConnectError> {
        let offered = conn.server_info().supports_feature(Extension::StartTls);
        let want_tls = match self.security {
            Security::StartTlsRequired => {
                if !offered {
                    conn.abort().await;
                    return Err(ConnectError::Fatal(format!(
                        "{}:{} does not offer STARTTLS: refusing to send in plaintext to a host that is not loopback; use smtps:// or a server with STARTTLS",
                        self.host, self.port
                    )));
                }
                true
            }
            Security::StartTlsIfOffered => offered && self.private_ca,
            Security::Implicit | Security::None => false,
        };
        if !want_tls {
            return Ok(());
        }
        let tls = self
            .tls
            .clone()
            .ok_or_else(|| ConnectError::Fatal("TLS parameters missing".into()))?;
        timeout(self.timeout, conn.starttls(tls, &self.hello))
            .await
            .map_err(|_| self.timed_out("STARTTLS"))?
            .map_err(|e| {
                if e.is_tls() || e.to_string().contains("certificate") {
                    ConnectError::Fatal(format!(
                        "TLS with {} failed: {e}; if the server uses a private CA, set smtp.ca_file",
                        self.host
                    ))
                } else {
                    self.classify_connect(e, "STARTTLS")
                }
            })
    }

    /// AUTH with the credentials, when there are any.
    async fn authenticate(&self, conn: &mut AsyncSmtpConnection) -> Result<(), ConnectError> {
        let Some(cred) = &self.credentials else {
            return Ok(());
        };
        let r = timeout(
            self.timeout,
            conn.auth(&[Mechanism::Plain, Mechanism::Login], cred),
        )
        .await
        .map_err(|_| self.timed_out("AUTH"))?;
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() || e.is_client() => {
                conn.abort().await;
                Err(ConnectError::Fatal(format!(
                    "SMTP authentication as `{}` refused by {}: {}; check smtp.username and $TECHSHACK_SMTP_PASSWORD",
                    self.username,
                    self.host,
                    reply_of_error(&e)
                )))
            }
            Err(e) => Err(self.classify_connect(e, "AUTH")),
        }
    }

    /// Whether the server pipelines: lettre keeps only the EHLO keywords it knows,
    /// PIPELINING not among them, so EHLO is asked again.
    async fn pipelining(&self, conn: &mut AsyncSmtpConnection) -> Result<bool, ConnectError> {
        match timeout(self.timeout, conn.command(Ehlo::new(self.hello.clone()))).await {
            Ok(Ok(r)) => Ok(r.message().any(|l| {
                l.split_whitespace()
                    .next()
                    .is_some_and(|k| k.eq_ignore_ascii_case("PIPELINING"))
            })),
            Ok(Err(e)) => Err(self.classify_connect(e, "EHLO")),
            Err(_) => Err(self.timed_out("EHLO")),
        }
    }

    fn timed_out(&self, what: &str) -> ConnectError {
        ConnectError::Transient(format!(
            "{}:{}: no answer to {what} within {} s",
            self.host,
            self.port,
            self.timeout.as_secs()
        ))
    }

    fn classify_connect(&self, e: lettre::transport::smtp::Error, what: &str) -> ConnectError {
        if e.is_tls() {
            return ConnectError::Fatal(format!(
                "TLS with {} failed: {e}; if the server uses a private CA, set smtp.ca_file",
                self.host
            ));
        }
        ConnectError::Transient(format!("{}:{} {what}: {e}", self.host, self.port))
    }
}

/// Why a connection could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectError {
    /// Retrying cannot help (authentication refused, TLS refused or untrusted).
    Fatal(String),
    /// The server is down, busy or slow: a later run may succeed.
    Transient(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Fatal(s) | ConnectError::Transient(s) => f.write_str(s),
        }
    }
}

/// An open session.
pub struct Conn {
    inner: AsyncSmtpConnection,
    /// Mail transactions begun on this session, whatever their outcome.
    pub transactions: usize,
    broken: bool,
    /// A second handle on the socket, only to peek whether the server hung up.
    probe: Option<std::net::TcpStream>,
    /// The server takes MAIL, RCPT and DATA in one write (RFC 2920).
    pipelining: bool,
}

/// Several commands written at once.
struct Batch(String);

impl std::fmt::Display for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A duplicate of the socket's descriptor for `peek`; tokio already made it non-blocking.
fn probe_of(tcp: &TcpStream) -> Option<std::net::TcpStream> {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        let fd = tcp.as_fd().try_clone_to_owned().ok()?;
        Some(std::net::TcpStream::from(fd))
    }
    #[cfg(not(unix))]
    {
        let _ = tcp;
        None
    }
}

/// A TLS stream lettre can drive as if it were the plain socket.
#[derive(Debug)]
struct TlsTcp(tokio_rustls::client::TlsStream<TcpStream>);

impl tokio::io::AsyncRead for TlsTcp {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TlsTcp {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl lettre::transport::smtp::client::AsyncTokioStream for TlsTcp {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

/// Whether the server has closed the connection: end of stream or reset, without blocking.
fn peer_closed(probe: Option<&std::net::TcpStream>) -> bool {
    let Some(p) = probe else { return false };
    let mut b = [0u8; 1];
    match p.peek(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
        ),
    }
}

/// What one message's transaction came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx to the final dot.
    Sent(String),
    /// 421, or the connection failed before the final dot: the server does not have the
    /// message; reconnect and retry without counting an attempt.
    Retry(String),
    /// A 4xx for this message: try again in a later run.
    Defer(String),
    /// A 5xx; `bounce` when the address itself is bad (5.1.x).
    Fail { reply: String, bounce: bool },
    /// No reply to the final dot: the server may have the message.
    Unknown(String),
    /// A permanent refusal of the session rather than of the recipient (a 5xx to MAIL FROM,
    /// 530 authentication required): retrying cannot help and no recipient is at fault.
    Abort(String),
}

impl Outcome {
    /// Whether the session can carry another message.
    pub fn keeps_connection(&self) -> bool {
        matches!(
            self,
            Outcome::Sent(_) | Outcome::Defer(_) | Outcome::Fail { .. }
        )
    }
}

/// `550 5.1.1 ...`: the reply code and text as the server wrote them, on one line.
pub fn reply_text(r: &Response) -> String {
    let code: u16 = r.code().into();
    let text = r.message().collect::<Vec<_>>().join(" ");
    format!("{code} {text}").trim().to_string()
}

fn reply_of_error(e: &lettre::transport::smtp::Error) -> String {
    let text = std::error::Error::source(e)
        .map(|s| s.to_string())
        .unwrap_or_default();
    match e.status() {
        Some(code) => format!("{} {text}", u16::from(code)).trim().to_string(),
        None => e.to_string(),
    }
}

/// Classifies a negative reply by the SPEC's classes.
pub fn classify(code: u16, text: &str) -> Outcome {
    let reply = format!("{code} {text}").trim().to_string();
    let enhanced = text.split_whitespace().next().unwrap_or("");
    match code {
        200..=299 => Outcome::Sent(reply),
        421 => Outcome::Retry(reply),
        400..=499 => Outcome::Defer(reply),
        500..=599 => Outcome::Fail {
            bounce: enhanced.starts_with("5.1."),
            reply,
        },
        // Not a completion reply at all: the server is confused; let a later run retry.
        _ => Outcome::Defer(reply),
    }
}

fn classify_error(e: &lettre::transport::smtp::Error, after_dot: bool, what: &str) -> Outcome {
    if let Some(code) = e.status() {
        let text = std::error::Error::source(e)
            .map(|s| s.to_string())
            .unwrap_or_default();
        let code = u16::from(code);
        if code == 530 {
            return Outcome::Abort(format!(
                "{code} {text}: the server wants authentication or TLS first; set smtp.username (and smtp.ca_file for STARTTLS on loopback)"
            ));
        }
        return classify(code, &text);
    }
    if after_dot {
        Outcome::Unknown(format!("no reply to the final dot: {e}"))
    } else {
        Outcome::Retry(format!("{what}: {e}"))
    }
}

impl Conn {
    /// Whether the session can carry another message.
    pub fn is_usable(&self) -> bool {
        !self.broken && !self.inner.has_broken()
    }

    /// Runs one mail transaction. After a negative reply to MAIL or RCPT the transaction is
    /// reset so the session can go on.
    pub async fn send(&mut self, step: Duration, envelope: &Envelope, body: &[u8]) -> Outcome {
        let mut opts = Vec::new();
        if !body.is_ascii() {
            opts.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        if envelope
            .from()
            .into_iter()
            .chain(envelope.to())
            .any(|a: &lettre::Address| !AsRef::<str>::as_ref(a).is_ascii())
        {
            opts.push(MailParameter::SmtpUtfEight);
        }
        let mail = Mail::new(envelope.from().cloned(), opts);
        self.transactions += 1;
        if self.pipelining {
            if let Some(o) = self.envelope_pipelined(step, mail, envelope).await {
                return o;
            }
        } else if let Some(o) = self.envelope_one_by_one(step, mail, envelope).await {
            return o;
        }
        // lettre writes each part, then the final dot, then reads the reply. Between the two
        // the iterator notes that the content is out and whether the server has already hung
        // up: a server that closed before the dot was written cannot have the message.
        let content_written = AtomicBool::new(false);
        let closed_before_dot = AtomicBool::new(false);
        let parts = Parts {
            body: Some(body),
            done: &content_written,
            closed: &closed_before_dot,
            probe: self.probe.as_ref(),
        };
        let r = timeout(step, self.inner.message_iter(parts)).await;
        let after_dot =
            content_written.load(Ordering::SeqCst) && !closed_before_dot.load(Ordering::SeqCst);
        match r {
            Err(_) if after_dot => Outcome::Unknown(format!(
                "no reply to the final dot within {} s",
                step.as_secs()
            )),
            Err(_) => Outcome::Retry("the server stopped reading the message".into()),
            Ok(Err(e)) => {
                let o = classify_error(&e, after_dot, "sending the message");
                match o {
                    // A 421 to the dot: the message was refused, the session is over.
                    Outcome::Retry(_) | Outcome::Unknown(_) => o,
                    _ => self.reset_after(o, step).await,
                }
            }
            Ok(Ok(resp)) => Outcome::Sent(reply_text(&resp)),
        }
    }

    /// MAIL, RCPT and DATA, each awaiting its reply. `None` once DATA got its 354.
    async fn envelope_one_by_one(
        &mut self,
        step: Duration,
        mail: Mail,
        envelope: &Envelope,
    ) -> Option<Outcome> {
        match timeout(step, self.inner.command(mail)).await {
            Err(_) => return Some(Outcome::Retry("no answer to MAIL FROM".into())),
            Ok(Err(e)) => {
                return Some(
                    self.mail_refused(classify_error(&e, false, "MAIL FROM"), step)
                        .await,
                )
            }
            Ok(Ok(_)) => {}
        }
        for to in envelope.to() {
            match timeout(step, self.inner.command(Rcpt::new(to.clone(), vec![]))).await {
                Err(_) => return Some(Outcome::Retry("no answer to RCPT TO".into())),
                Ok(Err(e)) => {
                    return Some(
                        self.reset_after(classify_error(&e, false, "RCPT TO"), step)
                            .await,
                    )
                }
                Ok(Ok(_)) => {}
            }
        }
        match timeout(step, self.inner.command(Data)).await {
            Err(_) => Some(Outcome::Retry("no answer to DATA".into())),
            Ok(Err(e)) => Some(
                self.reset_after(classify_error(&e, false, "DATA"), step)
                    .await,
            ),
            Ok(Ok(_)) => None,
        }
    }

    /// MAIL, RCPT and DATA in one write, then their replies in order: one round trip.
    async fn envelope_pipelined(
        &mut self,
        step: Duration,
        mail: Mail,
        envelope: &Envelope,
    ) -> Option<Outcome> {
        let mut batch = mail.to_string();
        for to in envelope.to() {
            batch.push_str(&Rcpt::new(to.clone(), vec![]).to_string());
        }
        batch.push_str(&Data.to_string());
        let replies = envelope.to().len() + 2;
        let mut first_error: Option<(usize, lettre::transport::smtp::Error)> = None;
        let mut data_ok = false;
        for i in 0..replies {
            let r = if i == 0 {
                timeout(step, self.inner.command(Batch(std::mem::take(&mut batch)))).await
            } else {
                timeout(step, self.inner.read_response()).await
            };
            match r {
                Err(_) => return Some(Outcome::Retry("no answer to MAIL, RCPT or DATA".into())),
                Ok(Ok(_)) => data_ok = i == replies - 1,
                Ok(Err(e)) if e.status().is_none() => {
                    return Some(classify_error(&e, false, "MAIL, RCPT or DATA"))
                }
                Ok(Err(e)) => {
                    if first_error.is_none() {
                        first_error = Some((i, e));
                    }
                }
            }
        }
        match first_error {
            None => None,
            Some((i, e)) => {
                if data_ok {
                    // DATA was accepted after all although an earlier command failed: the
                    // session is in an odd state, so it ends here.
                    self.broken = true;
                }
                let o = classify_error(&e, false, "MAIL, RCPT or DATA");
                Some(if i == 0 {
                    self.mail_refused(o, step).await
                } else {
                    self.reset_after(o, step).await
                })
            }
        }
    }

    async fn mail_refused(&mut self, o: Outcome, step: Duration) -> Outcome {
        match o {
            Outcome::Fail { reply, .. } => Outcome::Abort(format!(
                "the server refused MAIL FROM: {reply}; check email.from and the relay's sender rules"
            )),
            o => self.reset_after(o, step).await,
        }
    }

    async fn reset_after(&mut self, o: Outcome, step: Duration) -> Outcome {
        if o.keeps_connection() && !self.broken && !self.inner.has_broken() {
            match timeout(step, self.inner.command(Rset)).await {
                Ok(Ok(_)) => {}
                _ => self.broken = true,
            }
        }
        o
    }

    /// Ends the session politely; errors do not matter any more.
    pub async fn quit(mut self, step: Duration) {
        let _ = timeout(step, self.inner.quit()).await;
    }
}

struct Parts<'a> {
    body: Option<&'a [u8]>,
    done: &'a AtomicBool,
    closed: &'a AtomicBool,
    probe: Option<&'a std::net::TcpStream>,
}

impl<'a> Iterator for Parts<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let b = self.body.take();
        if b.is_none() {
            if peer_closed(self.probe) {
                self.closed.store(true, Ordering::SeqCst);
            }
            self.done.store(true, Ordering::SeqCst);
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SmtpConfig;

    /// The target of `[smtp]` as the config parses it.
    fn target(c: &SmtpConfig, password: Option<&str>) -> Result<Target> {
        Target::new(&Endpoint::parse(c)?, password)
    }

    fn cfg(url: &str) -> SmtpConfig {
        SmtpConfig {
            url: url.into(),
            ..SmtpConfig::default()
        }
    }

    #[test]
    fn reply_classes() {
        assert_eq!(classify(250, "ok"), Outcome::Sent("250 ok".into()));
        assert!(matches!(classify(421, "4.3.2 bye"), Outcome::Retry(_)));
        for c in [450, 451, 452, 454] {
            assert!(matches!(classify(c, "try later"), Outcome::Defer(_)));
        }
        assert!(matches!(
            classify(450, "4.7.1 greylisted"),
            Outcome::Defer(_)
        ));
        assert_eq!(
            classify(550, "5.1.1 no such user"),
            Outcome::Fail {
                reply: "550 5.1.1 no such user".into(),
                bounce: true
            }
        );
        assert!(matches!(
            classify(554, "5.7.1 spam"),
            Outcome::Fail { bounce: false, .. }
        ));
    }

    #[test]
    fn plaintext_to_another_host_is_refused_before_connecting() {
        let e = target(&cfg("smtp://mail.example.org:25?tls=none"), None)
            .err()
            .unwrap();
        assert!(e.to_string().contains("refusing"), "{e}");
        let t = target(&cfg("smtp://mail.example.org"), None).unwrap();
        assert_eq!((t.security, t.port), (Security::StartTlsRequired, 25));
        let t = target(&cfg("smtp://127.0.0.1:2525"), None).unwrap();
        assert_eq!((t.security, t.port), (Security::StartTlsIfOffered, 2525));
        let t = target(&cfg("smtp://[::1]:2525?tls=none"), None).unwrap();
        assert_eq!(t.security, Security::None);
        let t = target(&cfg("smtps://mail.example.org"), None).unwrap();
        assert_eq!((t.security, t.port), (Security::Implicit, 465));
        assert!(target(&cfg("http://x.org"), None).is_err());
    }

    #[test]
    fn username_needs_the_password_and_debug_hides_it() {
        let mut c = cfg("smtp://mail.example.org");
        c.username = "bob".into();
        let e = target(&c, None).err().unwrap();
        assert!(e.to_string().contains("TECHSHACK_SMTP_PASSWORD"));
        let t = target(&c, Some("hunter2-secret")).unwrap();
        assert!(!format!("{t:?}").contains("hunter2"));
    }
}
