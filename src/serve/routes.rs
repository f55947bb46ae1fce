//! The routes of `serve`: the router with its security headers and request timeout, and one
//! handler per page (health check, unsubscribe, sign-up, confirmation).

use std::net::SocketAddr;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FormRejection, QueryRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Form, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use super::{
    internal_error, limit, masked, App, TokenQuery, BODY_LIMIT, CONFIRM_MAIL_GAP_SECS,
    CONFIRM_TTL_SECS, REQUEST_TIMEOUT, WELCOME_TTL_SECS,
};
use crate::store::normalize_address;
use crate::store::{Confirmed, MailKind, SignUp, Unsubscribed};

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
    let r = app.db(|s| s.check()).await;
    match r {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => {
            tracing::error!("health check: {e:#}");
            (StatusCode::SERVICE_UNAVAILABLE, "the state is not usable\n").into_response()
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
    button_page(&app, "unsubscribe.html", &address, &action)
}

/// A page whose one button POSTs `action` for `address`: opening it changes nothing, since
/// mail scanners follow links.
fn button_page(app: &App, template: &str, address: &str, action: &str) -> Response {
    let html = app
        .0
        .pages
        .render(template, &[("address", address), ("action", action)]);
    app.page(StatusCode::OK, html)
}

/// The query of a POST whose body is read only for the size limit, or the answer that
/// refuses it: a body over the limit, or a query that does not parse.
fn post_query(
    app: &App,
    q: Result<Query<TokenQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
    what: &str,
) -> Result<TokenQuery, Box<Response>> {
    if let Err(e) = body {
        return Err(Box::new(app.rejected(e.status(), "request")));
    }
    match q {
        Ok(Query(q)) => Ok(q),
        Err(_) => Err(Box::new(app.bad_link(what))),
    }
}

/// RFC 8058 one-click: the token alone authorizes. The body (`List-Unsubscribe=One-Click`,
/// urlencoded or multipart as providers differ) is read for the size limit but not required.
async fn unsubscribe(
    State(app): State<App>,
    q: Result<Query<TokenQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let q = match post_query(&app, q, body, "unsubscribe") {
        Ok(q) => q,
        Err(refused) => return *refused,
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
    let n = name.clone();
    let decided = app
        .db(move |s| {
            let action = s.serve_sign_up(&a, n.as_deref())?;
            let claim = match action {
                SignUp::SendConfirmation => s.serve_claim_mail(&a, now, CONFIRM_MAIL_GAP_SECS)?,
                SignUp::AlreadyActive | SignUp::Bounced | SignUp::Complained => None,
            };
            Ok((action, claim))
        })
        .await;
    match decided {
        Ok((action, claim)) => {
            act_on_sign_up(&app, address, name, now, action, claim).await;
            done()
        }
        Err(e) => {
            tracing::error!("recording the sign-up of {}: {e:#}", masked(&address));
            internal_error()
        }
    }
}

/// Mails the confirmation link a recorded sign-up calls for (within the hourly budget), or
/// logs why none goes out.
async fn act_on_sign_up(
    app: &App,
    address: String,
    name: Option<String>,
    now: i64,
    action: SignUp,
    claim: Option<Option<i64>>,
) {
    let shown = masked(&address);
    match (action, claim) {
        (SignUp::SendConfirmation, Some(previous)) if !app.0.budget.take(Instant::now()) => {
            // The same answer: a flood must not learn that it hit the cap.
            tracing::warn!("sign-up from {shown}: this hour's confirmation mails (serve.confirm_mails_per_hour) are spent, none sent");
            let _ = app
                .db(move |s| {
                    s.serve_release_mail(&address, now, previous);
                    Ok(())
                })
                .await;
        }
        (SignUp::SendConfirmation, Some(previous)) => {
            tracing::info!("sign-up from {shown}: queueing a confirmation link");
            // The answer must not wait for SMTP: a slower reply for new addresses would tell
            // which addresses are subscribed already. The queue retries until the mail is
            // handed over or its link expires, so an SMTP server that is down loses nothing.
            let a = address.clone();
            let queued = app
                .db(move |s| {
                    let name = crate::store::normalize_name(name.as_deref());
                    s.queue_confirmation(
                        MailKind::Confirm,
                        &a,
                        name.as_deref(),
                        now,
                        now + CONFIRM_TTL_SECS,
                    )
                })
                .await;
            match queued {
                Ok(()) => app.0.wake.notify_one(),
                Err(e) => {
                    tracing::error!("queueing the confirmation mail of {shown}: {e:#}");
                    let _ = app
                        .db(move |s| {
                            s.serve_release_mail(&address, now, previous);
                            Ok(())
                        })
                        .await;
                }
            }
        }
        (SignUp::SendConfirmation, None) => {
            tracing::info!(
                "sign-up from {shown}: a confirmation link went out within the hour, none sent"
            )
        }
        (SignUp::AlreadyActive, _) => tracing::info!("sign-up from {shown}: already subscribed"),
        (SignUp::Bounced, _) => {
            tracing::info!("sign-up from {shown}: the address bounced before, none sent")
        }
        (SignUp::Complained, _) => {
            tracing::info!("sign-up from {shown}: the address complained before, none sent")
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
    button_page(&app, "confirm.html", &address, &action)
}

async fn confirm(
    State(app): State<App>,
    q: Result<Query<TokenQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let q = match post_query(&app, q, body, "confirmation") {
        Ok(q) => q,
        Err(refused) => return *refused,
    };
    let (address, expires) = match app.confirm_address(&q) {
        Ok(x) => x,
        Err(e) => return app.refuse_confirm(e),
    };
    let shown = masked(&address);
    let minted = expires - CONFIRM_TTL_SECS;
    let a = address.clone();
    let welcome = app.0.pages.has("welcome.txt");
    let confirmed = app
        .db(move |s| {
            let c = s.serve_confirm(&a, minted)?;
            if welcome && matches!(c, Confirmed::Activated) {
                // The welcome mail goes out through the same queue as confirmations.
                let now = chrono::Utc::now().timestamp();
                let name = s.subscriber(&a)?.and_then(|x| x.name);
                s.queue_confirmation(
                    MailKind::Welcome,
                    &a,
                    name.as_deref(),
                    now,
                    now + WELCOME_TTL_SECS,
                )?;
            }
            Ok(c)
        })
        .await;
    if welcome && matches!(confirmed, Ok(Confirmed::Activated)) {
        app.0.wake.notify_one();
    }
    match confirmed {
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
        Ok(Confirmed::Complained) => {
            tracing::info!("refused a confirmation of {shown}, which complained before");
            app.notice(
                StatusCode::CONFLICT,
                "We cannot subscribe this address",
                "An earlier issue sent to this address was reported as spam, so it stays off the list.",
                Some("Reply to any issue or write to the sender to be added again."),
            )
        }
        Err(e) => {
            tracing::error!("confirming {shown}: {e:#}");
            internal_error()
        }
    }
}
