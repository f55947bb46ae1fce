//! `[smtp]` once parsed: where to connect, how the session is protected, and the TLS
//! settings built from `smtp.ca_file`. The password is not here: it comes from the
//! environment of the command that connects (see [`crate::secrets::Secrets`]).

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use lettre::transport::smtp::client::{Certificate, TlsParameters};

use super::raw::SmtpConfig;

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

/// `smtp.url`, `smtp.ca_file`, `smtp.username` and `smtp.timeout_secs`, parsed.
#[derive(Clone)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// Trimmed; empty when the server takes mail without authentication.
    pub username: String,
    pub ca_file: Option<PathBuf>,
    /// Every step of a session must finish within this.
    pub timeout: Duration,
    /// STARTTLS parameters: the host name and the trusted roots (`None` in plaintext).
    pub tls: Option<TlsParameters>,
    /// For `smtps://`: the rustls configuration of the handshake we drive ourselves.
    pub implicit: Option<Arc<rustls::ClientConfig>>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
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

impl Endpoint {
    /// Reads `smtp.url` and `smtp.ca_file`. Refuses, before any connection, a plaintext
    /// session to a host that is not loopback.
    pub fn parse(c: &SmtpConfig) -> Result<Endpoint> {
        let (host, port, security) = parse_url(&c.url)?;
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
        Ok(Endpoint {
            host,
            port,
            security,
            username: c.username.trim().to_string(),
            ca_file: c.ca_file.clone(),
            timeout: Duration::from_secs(c.timeout_secs.max(1)),
            tls,
            implicit,
        })
    }

    /// The password to log in with, from the environment: required once `smtp.username` is
    /// set, and never sent in plaintext.
    pub fn credentials(&self, password: Option<&str>) -> Result<Option<String>> {
        let username = &self.username;
        let password = match (username.is_empty(), password) {
            (true, _) => None,
            (false, Some(p)) if !p.is_empty() => Some(p.to_string()),
            (false, _) => bail!(
                "smtp.username is `{username}` but $TECHSHACK_SMTP_PASSWORD is not set: export the password in the environment of the send"
            ),
        };
        self.refuse_plaintext_password()?;
        Ok(password)
    }

    /// A login over `tls=none` would send the password in the clear.
    pub fn refuse_plaintext_password(&self) -> Result<()> {
        if !self.username.is_empty() && self.security == Security::None {
            bail!("refusing to send the SMTP password in plaintext: drop tls=none from smtp.url");
        }
        Ok(())
    }
}

/// The host, port and protection `smtp.url` asks for.
fn parse_url(raw: &str) -> Result<(String, u16, Security)> {
    let url = url::Url::parse(raw).with_context(|| {
        format!("smtp.url `{raw}` is not a URL: write smtp://host:port or smtps://host:port")
    })?;
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .with_context(|| format!("smtp.url `{raw}` has no host"))?
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
                "smtp.url `{raw}`: unknown parameter `{k}={v}` (only tls=required or tls=none)"
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
            "smtp.url `{raw}`: unknown scheme `{s}`, use smtp:// (STARTTLS) or smtps:// (implicit TLS)"
        ),
    };
    Ok((host, url.port().unwrap_or(default_port), security))
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
