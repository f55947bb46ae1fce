//! `techshack serve`: one-click unsubscribe (RFC 8058) and double opt-in sign-up over HTTP,
//! on the same state file as `send`.
//!
//! Nothing changes state on a GET: mail scanners and link previewers follow GETs, so the
//! unsubscribe and confirm links open a page with one button that POSTs. The POST to an
//! unsubscribe link is also what mailbox providers send for one-click unsubscribe.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::config::Config;
use crate::secrets::Secrets;
use crate::store::Store;
use crate::token::{self, Purpose};

mod conn;
pub mod limit;
pub mod mail;
pub mod outbox;
pub mod pages;
mod routes;

pub use conn::{run, Limits};
use limit::{HourlyBudget, RateLimiter};
use mail::Mailer;
use pages::Pages;
pub use routes::router;

/// The largest request body accepted; a sign-up form or a one-click POST is far smaller.
pub const BODY_LIMIT: usize = 8 * 1024;
/// How long a confirmation link works.
pub const CONFIRM_TTL_SECS: i64 = 48 * 3600;
/// How long a welcome mail is tried before it is given up.
pub const WELCOME_TTL_SECS: i64 = 7 * 24 * 3600;
/// At most one confirmation mail per address in this many seconds.
pub const CONFIRM_MAIL_GAP_SECS: i64 = 3600;
/// How long one request may take, its body included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Longer tokens are refused before any decoding.
const MAX_TOKEN_LEN: usize = 1024;

struct Inner {
    /// The signing secret first, then `$TECHSHACK_SECRET_PREVIOUS` during a rotation.
    keys: Vec<Vec<u8>>,
    store: Mutex<Store>,
    pages: Pages,
    limiter: RateLimiter,
    /// Confirmation mails per hour, from every client together.
    budget: HourlyBudget,
    mailer: Mailer,
    /// Wakes the sender of queued confirmation mails.
    wake: tokio::sync::Notify,
    /// Where the reverse proxy exposes this server, without a trailing slash.
    public_url: String,
    trust_forwarded_for: bool,
}

/// The shared state of every request.
#[derive(Clone)]
pub struct App(Arc<Inner>);

impl App {
    /// Opens the state file and loads templates, SMTP settings and the secret; every
    /// configuration problem is reported here, before the server listens.
    pub fn new(config: &Config, secrets: &Secrets) -> Result<App> {
        secrets.signing_key()?;
        let keys = secrets.verification_keys();
        let public_url = public_url(config)?;
        let pages = Pages::load(config)?;
        let mailer = Mailer::from_config(config, secrets.smtp_password())?;
        let mut store = Store::open_config(&config.state)?;
        store.set_keys(keys.clone());
        Ok(App(Arc::new(Inner {
            keys,
            store: Mutex::new(store),
            pages,
            limiter: RateLimiter::new(limit::SUBSCRIBE, limit::MAX_CLIENTS),
            budget: HourlyBudget::new(config.serve.confirm_mails_per_hour),
            mailer,
            wake: tokio::sync::Notify::new(),
            public_url,
            trust_forwarded_for: config.serve.trust_forwarded_for,
        })))
    }

    /// Runs `f` on the state file on a blocking thread: SQLite may wait on a running send's
    /// write lock (busy timeout), which must not stall the async workers.
    async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let app = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut s = match app.0.store.lock() {
                Ok(s) => s,
                Err(poisoned) => poisoned.into_inner(),
            };
            s.revive()?;
            f(&mut s)
        })
        .await
        .context("the database task stopped")?
    }

    fn page(&self, status: StatusCode, html: Result<String>) -> Response {
        match html {
            Ok(h) => (
                status,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                h,
            )
                .into_response(),
            Err(e) => {
                tracing::error!("{e:#}");
                internal_error()
            }
        }
    }

    fn notice(
        &self,
        status: StatusCode,
        heading: &str,
        message: &str,
        hint: Option<&str>,
    ) -> Response {
        self.page(status, self.0.pages.notice(heading, message, hint))
    }

    fn bad_link(&self, what: &str) -> Response {
        self.notice(
            StatusCode::BAD_REQUEST,
            "This link does not work",
            &format!("The {what} link is incomplete or was changed on the way."),
            Some("Open the link from the message again, or copy the whole link into the address bar."),
        )
    }

    fn rejected(&self, status: StatusCode, what: &str) -> Response {
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!("The request is larger than {} KiB.", BODY_LIMIT / 1024)
        } else if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
            "Send the form as application/x-www-form-urlencoded.".to_string()
        } else {
            format!("The {what} could not be read.")
        };
        self.notice(status, "Request refused", &message, None)
    }

    /// The key new links are signed with.
    fn signing_key(&self) -> &[u8] {
        &self.0.keys[0]
    }

    fn client_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        if self.0.trust_forwarded_for {
            if let Some(ip) = forwarded_for(headers) {
                return ip;
            }
        }
        peer.ip()
    }

    fn unsubscribe_address(&self, q: &TokenQuery) -> Option<String> {
        let t = q.token.as_deref().filter(|t| t.len() <= MAX_TOKEN_LEN)?;
        token::verify_any(&self.0.keys, Purpose::Unsubscribe, t)
    }

    /// The address and expiry of a confirmation link.
    fn confirm_address(&self, q: &TokenQuery) -> Result<(String, i64), LinkError> {
        let t = q.token.as_deref().filter(|t| t.len() <= MAX_TOKEN_LEN);
        let expires = q.expires.as_deref().and_then(|e| e.parse::<i64>().ok());
        let (Some(t), Some(expires)) = (t, expires) else {
            return Err(LinkError::Invalid);
        };
        let Some(address) = token::verify_any(&self.0.keys, Purpose::Confirm { expires }, t) else {
            return Err(LinkError::Invalid);
        };
        if chrono::Utc::now().timestamp() > expires {
            return Err(LinkError::Expired);
        }
        Ok((address, expires))
    }

    fn refuse_confirm(&self, e: LinkError) -> Response {
        match e {
            LinkError::Invalid => self.bad_link("confirmation"),
            LinkError::Expired => self.notice(
                StatusCode::GONE,
                "This link has expired",
                "Confirmation links work for two days.",
                Some("Sign up again to get a new one."),
            ),
        }
    }
}

/// Why a confirmation link was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkError {
    /// Missing parts, a bad MAC, another purpose.
    Invalid,
    /// Genuine but past its expiry.
    Expired,
}

fn internal_error() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Something went wrong on our side; please try again later.\n",
    )
        .into_response()
}

fn public_url(config: &Config) -> Result<String> {
    config.serve.public_url().map(str::to_string)
}

/// The address the nearest proxy saw: the last `X-Forwarded-For` entry. Earlier entries are
/// whatever the client chose to send.
fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let last = headers.get_all("x-forwarded-for").iter().next_back()?;
    let entry = last.to_str().ok()?.rsplit(',').next()?.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// `…@example.com`: enough for an operator to see what happens, not who.
fn masked(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((_, d)) => format!("…@{d}"),
        None => "…".into(),
    }
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    token: Option<String>,
    expires: Option<String>,
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn forwarded_for_takes_the_proxy_entry() {
        let mut h = HeaderMap::new();
        assert_eq!(forwarded_for(&h), None);
        h.append(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.9"),
        );
        assert_eq!(forwarded_for(&h), "203.0.113.9".parse().ok());
        h.append("x-forwarded-for", HeaderValue::from_static("2001:db8::1"));
        assert_eq!(forwarded_for(&h), "2001:db8::1".parse().ok());
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("junk"));
        assert_eq!(forwarded_for(&h), None);
    }

    #[test]
    fn logs_show_only_the_domain() {
        assert_eq!(masked("ann.lee@example.com"), "…@example.com");
        assert_eq!(masked("nonsense"), "…");
    }

    #[test]
    fn public_url_is_checked() {
        let c = |u: &str| {
            Config::parse(
                &format!("[site]\ntitle = \"T\"\nbase_url = \"https://e.org\"\n[serve]\npublic_url = \"{u}\"\n"),
                std::path::Path::new("t.toml"),
            )
            .unwrap()
        };
        assert_eq!(
            public_url(&c("https://e.org/news/")).unwrap(),
            "https://e.org/news"
        );
        assert!(public_url(&c("e.org")).is_err());
        assert!(public_url(&c("ftp://e.org")).is_err());
        assert!(public_url(&c("https://e.org/?a=b")).is_err());
    }
}
