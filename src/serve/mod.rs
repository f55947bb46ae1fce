//! `techshack serve`: one-click unsubscribe (RFC 8058) and double opt-in sign-up over HTTP,
//! on the same state file as `send`.
//!
//! Nothing changes state on a GET: mail scanners and link previewers follow GETs, so the
//! unsubscribe and confirm links open a page with one button that POSTs. The POST to an
//! unsubscribe link is also what mailbox providers send for one-click unsubscribe.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FormRejection, QueryRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Form, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Deserialize;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tower_service::Service as _;

use crate::config::Config;
use crate::secrets::Secrets;
use crate::store::{normalize_address, Store};
use crate::token::{self, Purpose};

pub mod limit;
pub mod mail;
pub mod pages;
pub mod state;

use limit::RateLimiter;
use mail::Mailer;
use pages::Pages;
use state::{Confirmed, SignUp, Unsubscribed};

/// The largest request body accepted; a sign-up form or a one-click POST is far smaller.
pub const BODY_LIMIT: usize = 8 * 1024;
/// How long a confirmation link works.
pub const CONFIRM_TTL_SECS: i64 = 48 * 3600;
/// At most one confirmation mail per address in this many seconds.
pub const CONFIRM_MAIL_GAP_SECS: i64 = 3600;
/// How long one request may take, its body included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Longer tokens are refused before any decoding.
const MAX_TOKEN_LEN: usize = 1024;

struct Inner {
    secret: Vec<u8>,
    store: Mutex<Store>,
    pages: Pages,
    limiter: RateLimiter,
    mailer: Mailer,
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
        let secret = secrets.signing_key()?.to_vec();
        let public_url = public_url(config)?;
        let pages = Pages::load(config)?;
        let mailer = Mailer::from_config(config, secrets.smtp_password())?;
        let store = Store::open(&config.state.db)?;
        store.serve_prepare()?;
        Ok(App(Arc::new(Inner {
            secret,
            store: Mutex::new(store),
            pages,
            limiter: RateLimiter::new(limit::SUBSCRIBE, limit::MAX_CLIENTS),
            mailer,
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
        token::verify(&self.0.secret, Purpose::Unsubscribe, t)
    }

    /// The address and expiry of a confirmation link.
    fn confirm_address(&self, q: &TokenQuery) -> Result<(String, i64), LinkError> {
        let t = q.token.as_deref().filter(|t| t.len() <= MAX_TOKEN_LEN);
        let expires = q.expires.as_deref().and_then(|e| e.parse::<i64>().ok());
        let (Some(t), Some(expires)) = (t, expires) else {
            return Err(LinkError::Invalid);
        };
        let Some(address) = token::verify(&self.0.secret, Purpose::Confirm { expires }, t) else {
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

#[derive(Debug, Deserialize)]
struct SignUpForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: Option<String>,
    /// Hidden from people; bots that fill every field fill this one too.
    #[serde(default)]
    website: Option<String>,
}

/// The routes, with the body limit and the response headers every page gets.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/unsubscribe", get(unsubscribe_page).post(unsubscribe))
        .route("/subscribe", get(subscribe_page).post(subscribe))
        .route("/confirm", get(confirm_page).post(confirm))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(harden))
        .with_state(app)
}

/// Security headers for every response, and a debug line per request without its query
/// (which holds tokens).
async fn harden(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path: String = req.uri().path().chars().take(80).collect();
    let start = Instant::now();
    // A client trickling its body in would otherwise hold a connection and a task for as
    // long as it likes; the reverse proxy usually buffers bodies, but this server may face
    // clients directly.
    let mut res = match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(r) => r,
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "The request took too long.\n",
        )
            .into_response(),
    };
    let h = res.headers_mut();
    let fixed = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        // The page's URL holds a token: never pass it on to another site.
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    for (k, v) in fixed {
        h.insert(k, HeaderValue::from_static(v));
    }
    tracing::debug!(
        "{method} {path} {} {:.1} ms",
        res.status().as_u16(),
        start.elapsed().as_secs_f64() * 1e3
    );
    res
}

async fn healthz(State(app): State<App>) -> Response {
    let r = app
        .db(|s| {
            s.conn().query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?;
            Ok(())
        })
        .await;
    match r {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => {
            tracing::error!("health check: {e:#}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the state file is not usable\n",
            )
                .into_response()
        }
    }
}

async fn not_found(State(app): State<App>) -> Response {
    app.notice(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no page here.",
        None,
    )
}

async fn unsubscribe_page(
    State(app): State<App>,
    q: Result<Query<TokenQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return app.bad_link("unsubscribe");
    };
    let Some(address) = app.unsubscribe_address(&q) else {
        return app.bad_link("unsubscribe");
    };
    let action = format!("unsubscribe?token={}", q.token.as_deref().unwrap_or(""));
    let html = app.0.pages.render(
        "unsubscribe.html",
        &[("address", &address), ("action", &action)],
    );
    app.page(StatusCode::OK, html)
}

/// RFC 8058 one-click: the token alone authorizes. The body (`List-Unsubscribe=One-Click`,
/// urlencoded or multipart as providers differ) is read for the size limit but not required.
async fn unsubscribe(
    State(app): State<App>,
    q: Result<Query<TokenQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(e) = body {
        return app.rejected(e.status(), "request");
    }
    let Ok(Query(q)) = q else {
        return app.bad_link("unsubscribe");
    };
    let Some(address) = app.unsubscribe_address(&q) else {
        tracing::info!("refused an unsubscribe request with an invalid token");
        return app.bad_link("unsubscribe");
    };
    let shown = masked(&address);
    match app.db(move |s| s.serve_unsubscribe(&address)).await {
        Ok(outcome) => {
            match outcome {
                Unsubscribed::Now => tracing::info!("unsubscribed {shown}"),
                Unsubscribed::Already => tracing::info!("{shown} was already unsubscribed"),
                Unsubscribed::Recorded => {
                    tracing::info!("unsubscribed {shown}, which was not on the list")
                }
            }
            app.notice(
                StatusCode::OK,
                "You are unsubscribed",
                &format!(
                    "No more issues of {} will be sent to this address.",
                    app.0.pages.site_title()
                ),
                Some("Changed your mind? You can subscribe again at any time."),
            )
        }
        Err(e) => {
            tracing::error!("unsubscribing {shown}: {e:#}");
            internal_error()
        }
    }
}

async fn subscribe_page(State(app): State<App>) -> Response {
    let html = app
        .0
        .pages
        .render("subscribe.html", &[("action", "subscribe")]);
    app.page(StatusCode::OK, html)
}

async fn subscribe(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<SignUpForm>, FormRejection>,
) -> Response {
    let ip = app.client_ip(peer, &headers);
    if !app.0.limiter.check(ip, Instant::now()) {
        tracing::info!("sign-up rate limit reached for a client");
        let mut r = app.notice(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many sign-ups",
            "Too many sign-ups came from your network in a short time.",
            Some("Please wait a few minutes and try again."),
        );
        r.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(limit::SUBSCRIBE.refill.as_secs()),
        );
        return r;
    }
    let form = match form {
        Ok(Form(f)) => f,
        Err(e) => return app.rejected(e.status(), "form"),
    };
    let done = || {
        app.notice(
            StatusCode::OK,
            "Check your inbox",
            "If this address can receive our mail, a message with a confirmation link is on its way.",
            Some("Nothing will be sent until you confirm. The link works for two days."),
        )
    };
    if form
        .website
        .as_deref()
        .is_some_and(|w| !w.trim().is_empty())
    {
        tracing::info!("ignored a sign-up that filled the hidden field");
        return done();
    }
    if form.email.len() > 254
        || form
            .name
            .as_deref()
            .is_some_and(|n| n.chars().count() > 100)
    {
        return app.notice(
            StatusCode::BAD_REQUEST,
            "Please check the form",
            "The address or the name is too long.",
            None,
        );
    }
    let address = match normalize_address(&form.email) {
        Ok(a) => a,
        Err(_) => {
            return app.notice(
                StatusCode::BAD_REQUEST,
                "Please check the address",
                "That does not look like an email address, such as ann@example.com.",
                Some("Go back and correct it."),
            )
        }
    };
    let now = chrono::Utc::now().timestamp();
    let a = address.clone();
    let name = form.name;
    let decided = app
        .db(move |s| {
            let action = s.serve_sign_up(&a, name.as_deref())?;
            let claim = match action {
                SignUp::SendConfirmation => s.serve_claim_mail(&a, now, CONFIRM_MAIL_GAP_SECS)?,
                SignUp::AlreadyActive | SignUp::Bounced => None,
            };
            Ok((action, claim))
        })
        .await;
    let shown = masked(&address);
    match decided {
        Ok((action, claim)) => {
            match (action, claim) {
                (SignUp::SendConfirmation, Some(previous)) => {
                    tracing::info!("sign-up from {shown}: mailing a confirmation link");
                    // The answer must not wait for SMTP: a slower reply for new addresses
                    // would tell which addresses are subscribed already.
                    tokio::spawn(send_confirmation(app.clone(), address, now, previous));
                }
                (SignUp::SendConfirmation, None) => {
                    tracing::info!("sign-up from {shown}: a confirmation link went out within the hour, none sent")
                }
                (SignUp::AlreadyActive, _) => {
                    tracing::info!("sign-up from {shown}: already subscribed")
                }
                (SignUp::Bounced, _) => {
                    tracing::info!("sign-up from {shown}: the address bounced before, none sent")
                }
            }
            done()
        }
        Err(e) => {
            tracing::error!("recording the sign-up of {shown}: {e:#}");
            internal_error()
        }
    }
}

async fn send_confirmation(app: App, address: String, now: i64, previous: Option<i64>) {
    let shown = masked(&address);
    let r = async {
        let expires = now + CONFIRM_TTL_SECS;
        let t = token::sign(&app.0.secret, Purpose::Confirm { expires }, &address);
        let link = format!("{}/confirm?token={t}&expires={expires}", app.0.public_url);
        let until = chrono::DateTime::from_timestamp(expires, 0)
            .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default();
        let body = app.0.pages.render(
            "confirm_email.txt",
            &[
                ("address", &address),
                ("confirm_url", &link),
                ("expires", &until),
            ],
        )?;
        let subject = format!("Confirm your subscription to {}", app.0.pages.site_title());
        let message = app.0.mailer.message(&address, &subject, body)?;
        app.0.mailer.send(&message).await
    }
    .await;
    match r {
        Ok(reply) => tracing::info!("confirmation link for {shown} handed over: {reply}"),
        Err(e) => {
            tracing::warn!("could not mail the confirmation link to {shown}: {e:#}");
            let a = address.clone();
            let _ = app
                .db(move |s| {
                    s.serve_release_mail(&a, now, previous);
                    Ok(())
                })
                .await;
        }
    }
}

async fn confirm_page(
    State(app): State<App>,
    q: Result<Query<TokenQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return app.bad_link("confirmation");
    };
    let (address, expires) = match app.confirm_address(&q) {
        Ok(x) => x,
        Err(e) => return app.refuse_confirm(e),
    };
    let action = format!(
        "confirm?token={}&expires={expires}",
        q.token.as_deref().unwrap_or("")
    );
    let html = app.0.pages.render(
        "confirm.html",
        &[("address", &address), ("action", &action)],
    );
    app.page(StatusCode::OK, html)
}

async fn confirm(
    State(app): State<App>,
    q: Result<Query<TokenQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(e) = body {
        return app.rejected(e.status(), "request");
    }
    let Ok(Query(q)) = q else {
        return app.bad_link("confirmation");
    };
    let (address, expires) = match app.confirm_address(&q) {
        Ok(x) => x,
        Err(e) => return app.refuse_confirm(e),
    };
    let shown = masked(&address);
    let minted = expires - CONFIRM_TTL_SECS;
    match app.db(move |s| s.serve_confirm(&address, minted)).await {
        Ok(Confirmed::Activated) | Ok(Confirmed::AlreadyActive) => {
            tracing::info!("confirmed {shown}");
            app.notice(
                StatusCode::OK,
                "You are subscribed",
                &format!(
                    "The next issue of {} will come to this address.",
                    app.0.pages.site_title()
                ),
                Some("Every issue carries a link to unsubscribe."),
            )
        }
        Ok(Confirmed::UnsubscribedSince) => {
            tracing::info!("refused an old confirmation link of {shown}, unsubscribed since");
            app.notice(
                StatusCode::CONFLICT,
                "This link is older than your unsubscribe",
                "You unsubscribed after this link was sent, so it no longer subscribes you.",
                Some("To subscribe again, sign up once more and use the new link."),
            )
        }
        Ok(Confirmed::Bounced) => {
            tracing::info!("refused a confirmation of {shown}, which bounced before");
            app.notice(
                StatusCode::CONFLICT,
                "We cannot subscribe this address",
                "Mail to this address was returned as undeliverable before, so it stays off the list.",
                Some("Reply to any issue or write to the sender to be added again."),
            )
        }
        Err(e) => {
            tracing::error!("confirming {shown}: {e:#}");
            internal_error()
        }
    }
}

/// How `run` treats connections, from `[serve]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time for a request's line and headers, counted from the connection's start or from the
    /// previous response, so it also ends idle kept-alive connections.
    pub header_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Limits {
    pub fn from_config(config: &Config) -> Limits {
        Limits {
            header_timeout: Duration::from_secs(config.serve.header_timeout_secs),
            max_connections: config.serve.max_connections,
        }
    }
}

/// After SIGTERM, how long requests already under way may take to finish: REQUEST_TIMEOUT
/// bounds the handler, the rest is for writing the answer to a slow reader.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(REQUEST_TIMEOUT.as_secs() + 5);
/// At most one warning per this long that all connection slots are taken.
const FULL_WARNING_GAP: Duration = Duration::from_secs(60);

/// Serves until SIGINT or SIGTERM. `announce` prints the bound address (also with port 0).
///
/// Connections are served by hyper directly rather than `axum::serve`, which sets no timer and
/// so no header timeout: a client trickling its headers in a byte at a time would hold its
/// socket for ever. Beyond `max_connections`, new clients are not accepted and wait in the
/// kernel's listen queue: that costs this process no file descriptor, and the header timeout
/// frees a slot held by a stalled client within `header_timeout`.
pub async fn run(app: App, listen: &str, limits: Limits, announce: bool) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}: check serve.listen or --listen"))?;
    let addr = listener.local_addr()?;
    let signal = shutdown_signal()?;
    if announce {
        eprintln!("techshack serve: listening on http://{addr}");
    }
    tracing::info!(
        "listening on {addr} (header timeout {} s, at most {} connections)",
        limits.header_timeout.as_secs(),
        limits.max_connections
    );
    let router = router(app);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    let mut warned_full: Option<Instant> = None;
    tokio::pin!(signal);
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(s) => s,
            Err(_) => {
                if warned_full.map_or(true, |t| t.elapsed() >= FULL_WARNING_GAP) {
                    tracing::warn!(
                        "all {} connection slots are in use; new clients wait (serve.max_connections)",
                        limits.max_connections
                    );
                    warned_full = Some(Instant::now());
                }
                tokio::select! {
                    s = slots.clone().acquire_owned() => s.context("the connection slots were closed")?,
                    _ = &mut signal => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    if !is_connection_error(&e) {
                        // Most likely out of file descriptors: retrying at once would spin.
                        tracing::error!("accepting a connection: {e}; retrying in 1 s (raise the open-files limit or lower serve.max_connections)");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            _ = &mut signal => break,
                        }
                    }
                    continue;
                }
            },
            _ = &mut signal => break,
        };
        // Reap finished connections so the set stays as large as the open ones.
        while conns.try_join_next().is_some() {}
        // A client that stops reading its responses leaves hyper blocked in a write, where no
        // header timer runs: a write that makes no progress for the header timeout ends the
        // connection, so such a client cannot keep its slot.
        let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
        stream.set_write_timeout(Some(limits.header_timeout));
        conns.spawn(serve_connection(
            http.clone(),
            Box::pin(stream),
            peer,
            router.clone(),
            stop_rx.clone(),
            slot,
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while conns.try_join_next().is_some() {}
    if !conns.is_empty() {
        tracing::info!(
            "stopping: waiting up to {} s for {} open connection(s)",
            SHUTDOWN_GRACE.as_secs(),
            conns.len()
        );
    }
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "closing {} connection(s) still busy after {} s",
            conns.len(),
            SHUTDOWN_GRACE.as_secs()
        );
        conns.shutdown().await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// One client connection, until it closes, times out, or shutdown ends it. `_slot` is held
/// for as long as the connection is open.
async fn serve_connection(
    http: hyper::server::conn::http1::Builder,
    stream: std::pin::Pin<Box<tokio_io_timeout::TimeoutStream<tokio::net::TcpStream>>>,
    peer: SocketAddr,
    router: Router,
    mut stop: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let started = Arc::new(AtomicBool::new(false));
    let seen = started.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        seen.store(true, Ordering::Relaxed);
        // What axum's `ConnectInfo<SocketAddr>` extractor reads.
        req.extensions_mut().insert(ConnectInfo(peer));
        let mut router = router.clone();
        router.call(req)
    });
    let conn = http.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => return log_connection_end(r),
        _ = stop.wait_for(|&s| s) => {}
    }
    if !started.load(Ordering::Relaxed) {
        // No request was ever read whole, so none is under way: hyper would keep reading
        // headers until the header timeout, which only delays the stop.
        return;
    }
    // Lets a request under way finish and closes the connection after its response; an idle
    // kept-alive connection closes at once.
    conn.as_mut().graceful_shutdown();
    log_connection_end(conn.await);
}

fn log_connection_end(r: std::result::Result<(), hyper::Error>) {
    if let Err(e) = r {
        if e.is_timeout() {
            tracing::debug!("closed a connection that sent no complete request headers in time");
        } else {
            tracing::debug!("connection ended: {e}");
        }
    }
}

/// Errors of one connection that `accept` reports; the listener itself is fine.
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// Resolves on the first SIGINT or SIGTERM. The handlers are installed before this returns, so
/// a signal sent as soon as the address is announced stops the server cleanly instead of
/// killing it.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

#[cfg(test)]
mod tests {
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
