//! SMTP connections we own: a tokio `TcpStream` with `TCP_NODELAY` handed to lettre's
//! `AsyncSmtpConnection`, every step under a timeout, and replies classified by phase.
//!
//! lettre writes the final `.` of a message as a write of its own; without `TCP_NODELAY`
//! Nagle's algorithm holds it until the server's delayed ACK, about 40 ms per message.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::Ehlo;
use lettre::transport::smtp::extension::{ClientId, Extension};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::reply::{self, clean, secret_forms, Phase, Reply};
use crate::config::Endpoint;
pub use crate::config::Security;

// `Conn` and `Outcome` are re-exported for the callers that name them by this module.
pub(crate) use super::session::{Conn, Outcome};

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
    /// The password's forms, masked in every reply text (see [`clean`]).
    secrets: Arc<Vec<String>>,
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
        let password = e.credentials(password)?;
        let secrets = password
            .as_deref()
            .map(|p| secret_forms(&e.username, p))
            .unwrap_or_default();
        let credentials = password.map(|p| Credentials::new(e.username.clone(), p));
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
            secrets: Arc::new(secrets),
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
            secrets: self.secrets.clone(),
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
        .map_err(|e| self.refused_greeting(e))
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
                    reply_of_error(&e, &self.secrets)
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
        let text = clean(&e.to_string(), &self.secrets);
        if e.is_tls() {
            return ConnectError::Fatal(format!(
                "TLS with {} failed: {text}; if the server uses a private CA, set smtp.ca_file",
                self.host
            ));
        }
        ConnectError::Transient(format!("{}:{} {what}: {text}", self.host, self.port))
    }

    /// A refused greeting or EHLO: a 5xx (`554 No SMTP service here`) refuses this client for
    /// good, so it is fatal; anything else may pass.
    fn refused_greeting(&self, e: lettre::transport::smtp::Error) -> ConnectError {
        match e.status().map(u16::from) {
            Some(code) if code >= 500 => {
                let reply = reply_of_error(&e, &self.secrets);
                let text = reply.get(3..).unwrap_or("").trim_start();
                let v = reply::classify(&Reply::new(code, text, Phase::Greeting));
                ConnectError::Fatal(format!(
                    "{}:{} refused the session: {reply}; {}",
                    self.host,
                    self.port,
                    v.fault.hint()
                ))
            }
            _ => self.classify_connect(e, "greeting"),
        }
    }
}

/// Why a connection could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// Retrying cannot help (authentication refused, TLS refused or untrusted).
    #[error("{0}")]
    Fatal(String),
    /// The server is down, busy or slow: a later run may succeed.
    #[error("{0}")]
    Transient(String),
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

fn reply_of_error(e: &lettre::transport::smtp::Error, secrets: &[String]) -> String {
    let text = std::error::Error::source(e)
        .map(|s| s.to_string())
        .unwrap_or_default();
    match e.status() {
        Some(code) => clean(format!("{} {text}", u16::from(code)).trim(), secrets),
        None => clean(&e.to_string(), secrets),
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
