//! SMTP connections we own: a tokio `TcpStream` with `TCP_NODELAY` handed to lettre's
//! `AsyncSmtpConnection`, every step under a timeout, and replies classified by phase.
//!
//! lettre writes the final `.` of a message as a write of its own; without `TCP_NODELAY`
//! Nagle's algorithm holds it until the server's delayed ACK, about 40 ms per message.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::Ehlo;
use lettre::transport::smtp::extension::{ClientId, Extension};
use tokio::net::TcpStream;
use tokio::time::timeout;

// `Outcome` is re-exported for the callers that name it by this module.
pub(crate) use super::session::{Conn, Outcome};
use crate::config::SmtpConfig;

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `smtps://`: TLS from the first byte.
    Implicit,
    /// `smtp://` to another host: STARTTLS or nothing is sent.
    StartTlsRequired,
    /// `smtp://` to a loopback host: STARTTLS when the server offers it and `smtp.ca_file`
    /// says which certificate to trust (a local relay's certificate rarely matches
    /// `127.0.0.1`, and loopback traffic needs no encryption).
    StartTlsIfOffered,
    /// `smtp://...?tls=none` to a loopback host: plaintext.
    None,
}

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

/// Whether a host name or address is this machine's loopback.
pub fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if h.eq_ignore_ascii_case("localhost") {
        return true;
    }
    h.parse::<IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

impl Target {
    /// Reads `smtp.url`, `smtp.ca_file`, `smtp.username` and the password. Refuses, before any
    /// connection, a plaintext session to a host that is not loopback.
    pub fn from_config(c: &SmtpConfig, password: Option<String>) -> Result<Target> {
        let url = url::Url::parse(&c.url).with_context(|| {
            format!(
                "smtp.url `{}` is not a URL: write smtp://host:port or smtps://host:port",
                c.url
            )
        })?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .with_context(|| format!("smtp.url `{}` has no host", c.url))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let loopback = is_loopback(&host);
        let mut plaintext = false;
        for (k, v) in url.query_pairs() {
            match (k.as_ref(), v.as_ref()) {
                ("tls", "none") => plaintext = true,
                ("tls", "required") => {}
                _ => bail!(
                    "smtp.url `{}`: unknown parameter `{k}={v}` (only tls=required or tls=none)",
                    c.url
                ),
            }
        }
        let (security, default_port) = match url.scheme() {
            "smtps" => (Security::Implicit, 465),
            "smtp" if plaintext && !loopback => bail!(
                "refusing to send in plaintext to {host}: smtp.url asks for tls=none, which is allowed only for a loopback host; use STARTTLS (drop tls=none) or smtps://"
            ),
            "smtp" if plaintext => (Security::None, 25),
            "smtp" if loopback => (Security::StartTlsIfOffered, 25),
            "smtp" => (Security::StartTlsRequired, 25),
            s => bail!(
                "smtp.url `{}`: unknown scheme `{s}`, use smtp:// (STARTTLS) or smtps:// (implicit TLS)",
                c.url
            ),
        };
        let port = url.port().unwrap_or(default_port);
        let ca_pem = match &c.ca_file {
            Some(ca) => Some(
                std::fs::read(ca)
                    .with_context(|| format!("reading smtp.ca_file {}", ca.display()))?,
            ),
            None => None,
        };
        let implicit = match security {
            Security::Implicit => Some(rustls_config(ca_pem.as_deref()).with_context(|| {
                format!(
                    "smtp.ca_file {}",
                    c.ca_file.as_deref().unwrap_or(Path::new("")).display()
                )
            })?),
            _ => None,
        };
        let tls = if security == Security::None {
            None
        } else {
            let mut b = TlsParameters::builder(host.clone());
            if let (Some(ca), Some(pem)) = (&c.ca_file, &ca_pem) {
                let cert = Certificate::from_pem(pem).map_err(|e| {
                    anyhow::anyhow!("smtp.ca_file {}: not a PEM certificate: {e}", ca.display())
                })?;
                b = b.add_root_certificate(cert);
            }
            Some(
                b.build()
                    .map_err(|e| anyhow::anyhow!("setting up TLS for {host}: {e}"))?,
            )
        };
        let username = c.username.trim().to_string();
        let credentials = match (username.is_empty(), password) {
            (true, _) => None,
            (false, Some(p)) if !p.is_empty() => Some(Credentials::new(username.clone(), p)),
            (false, _) => bail!(
                "smtp.username is `{username}` but $TECHSHACK_SMTP_PASSWORD is not set: export the password in the environment of the send"
            ),
        };
        if credentials.is_some() && security == Security::None {
            bail!("refusing to send the SMTP password in plaintext: drop tls=none from smtp.url");
        }
        Ok(Target {
            host,
            port,
            security,
            tls,
            credentials,
            username,
            timeout: Duration::from_secs(c.timeout_secs.max(1)),
            hello: ClientId::default(),
            private_ca: c.ca_file.is_some(),
            implicit,
        })
    }

    /// Opens a ready connection: greeting, EHLO, TLS, AUTH.
    pub async fn connect(&self) -> Result<Conn, ConnectError> {
        let step = self.timeout;
        let tcp = timeout(step, TcpStream::connect((self.host.as_str(), self.port)))
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
        let probe = probe_of(&tcp);
        let (mut conn, probe) = match self.security {
            Security::Implicit => {
                let config = self
                    .implicit
                    .clone()
                    .ok_or_else(|| ConnectError::Fatal("TLS configuration missing".into()))?;
                let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| ConnectError::Fatal(format!("`{}`: {e}", self.host)))?;
                let tls = timeout(
                    step,
                    tokio_rustls::TlsConnector::from(config).connect(name, tcp),
                )
                .await
                .map_err(|_| self.timed_out("the TLS handshake"))?
                .map_err(|e| {
                    ConnectError::Fatal(format!(
                        "TLS with {} failed: {e}; if the server uses a private CA, set smtp.ca_file",
                        self.host
                    ))
                })?;
                let c = timeout(
                    step,
                    AsyncSmtpConnection::connect_with_transport(Box::new(TlsTcp(tls)), &self.hello),
                )
                .await
                .map_err(|_| self.timed_out("the greeting and EHLO"))?
                .map_err(|e| self.classify_connect(e, "greeting"))?;
                (c, probe)
            }
            _ => (
                timeout(
                    step,
                    AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello),
                )
                .await
                .map_err(|_| self.timed_out("the greeting and EHLO"))?
                .map_err(|e| self.classify_connect(e, "greeting"))?,
                probe,
            ),
        };
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
        if want_tls {
            let tls = self
                .tls
                .clone()
                .ok_or_else(|| ConnectError::Fatal("TLS parameters missing".into()))?;
            timeout(step, conn.starttls(tls, &self.hello))
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
                })?;
        }
        if let Some(cred) = &self.credentials {
            let r = timeout(step, conn.auth(&[Mechanism::Plain, Mechanism::Login], cred))
                .await
                .map_err(|_| self.timed_out("AUTH"))?;
            match r {
                Ok(_) => {}
                Err(e) if e.is_permanent() || e.is_client() => {
                    conn.abort().await;
                    return Err(ConnectError::Fatal(format!(
                        "SMTP authentication as `{}` refused by {}: {}; check smtp.username and $TECHSHACK_SMTP_PASSWORD",
                        self.username,
                        self.host,
                        reply_of_error(&e)
                    )));
                }
                Err(e) => return Err(self.classify_connect(e, "AUTH")),
            }
        }
        // lettre keeps only the EHLO keywords it knows, PIPELINING not among them: ask again.
        let pipelining = match timeout(step, conn.command(Ehlo::new(self.hello.clone()))).await {
            Ok(Ok(r)) => r.message().any(|l| {
                l.split_whitespace()
                    .next()
                    .is_some_and(|k| k.eq_ignore_ascii_case("PIPELINING"))
            }),
            Ok(Err(e)) => return Err(self.classify_connect(e, "EHLO")),
            Err(_) => return Err(self.timed_out("EHLO")),
        };
        Ok(Conn {
            inner: conn,
            transactions: 0,
            broken: false,
            probe,
            pipelining,
        })
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

/// The rustls client configuration of `smtps://`: the web PKI roots plus `smtp.ca_file`.
fn rustls_config(ca_pem: Option<&[u8]>) -> Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = ca_pem {
        let mut n = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| anyhow::anyhow!("not a PEM certificate: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| anyhow::anyhow!("unusable certificate: {e}"))?;
            n += 1;
        }
        if n == 0 {
            bail!("no PEM certificate in the file");
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
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

fn reply_of_error(e: &lettre::transport::smtp::Error) -> String {
    let text = std::error::Error::source(e)
        .map(|s| s.to_string())
        .unwrap_or_default();
    match e.status() {
        Some(code) => format!("{} {text}", u16::from(code)).trim().to_string(),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> SmtpConfig {
        SmtpConfig {
            url: url.into(),
            ..SmtpConfig::default()
        }
    }

    #[test]
    fn plaintext_to_another_host_is_refused_before_connecting() {
        let e = Target::from_config(&cfg("smtp://mail.example.org:25?tls=none"), None)
            .err()
            .unwrap();
        assert!(e.to_string().contains("refusing"), "{e}");
        let t = Target::from_config(&cfg("smtp://mail.example.org"), None).unwrap();
        assert_eq!((t.security, t.port), (Security::StartTlsRequired, 25));
        let t = Target::from_config(&cfg("smtp://127.0.0.1:2525"), None).unwrap();
        assert_eq!((t.security, t.port), (Security::StartTlsIfOffered, 2525));
        let t = Target::from_config(&cfg("smtp://[::1]:2525?tls=none"), None).unwrap();
        assert_eq!(t.security, Security::None);
        let t = Target::from_config(&cfg("smtps://mail.example.org"), None).unwrap();
        assert_eq!((t.security, t.port), (Security::Implicit, 465));
        assert!(Target::from_config(&cfg("http://x.org"), None).is_err());
    }

    #[test]
    fn username_needs_the_password_and_debug_hides_it() {
        let mut c = cfg("smtp://mail.example.org");
        c.username = "bob".into();
        let e = Target::from_config(&c, None).err().unwrap();
        assert!(e.to_string().contains("TECHSHACK_SMTP_PASSWORD"));
        let t = Target::from_config(&c, Some("hunter2-secret".into())).unwrap();
        assert!(!format!("{t:?}").contains("hunter2"));
    }
}
