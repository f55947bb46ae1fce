//! The sender of queued confirmation mails: `serve` answers a sign-up at once and this task
//! mails its link, retrying with backoff (`store::retry_delay`) until the SMTP server takes it
//! or the link expires. It wakes when a sign-up is queued and every few seconds.

use std::time::Duration;

use anyhow::Result;

use super::{masked, App};
use crate::store::{retry_delay, MailKind, QueuedConfirmation};
use crate::token::{self, Purpose};

/// How often the queue is looked at when nothing wakes the task.
const POLL: Duration = Duration::from_secs(2);
/// Mails taken from the queue at a time.
const BATCH: usize = 20;

/// Runs for as long as `serve` does.
pub async fn run(app: App) {
    loop {
        tokio::select! {
            _ = app.0.wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
        if let Err(e) = drain(&app).await {
            tracing::warn!("reading the confirmation mail queue: {e:#}");
        }
    }
}

async fn drain(app: &App) -> Result<()> {
    loop {
        let now = chrono::Utc::now().timestamp();
        let (due, expired) = app.db(move |s| s.due_confirmations(now, BATCH)).await?;
        for (address, last_error) in expired {
            tracing::warn!(
                "a mail to {} was given up (its link expired) before the SMTP server took it; last error: {}",
                masked(&address),
                last_error.as_deref().unwrap_or("none")
            );
        }
        if due.is_empty() {
            return Ok(());
        }
        for q in due {
            let shown = masked(&q.address);
            match mail(app, &q).await {
                Ok(reply) => {
                    tracing::info!("{} mail for {shown} handed over: {reply}", what(q.kind));
                    let q = q.clone();
                    app.db(move |s| s.confirmation_sent(&q)).await?;
                }
                Err(e) => {
                    let wait = retry_delay(q.attempts + 1);
                    tracing::warn!(
                        "could not mail the {} to {shown} (try {}), again in {wait} s: {e:#}",
                        what(q.kind),
                        q.attempts + 1
                    );
                    let (q, err) = (q.clone(), format!("{e:#}"));
                    let next = chrono::Utc::now().timestamp() + wait;
                    app.db(move |s| s.confirmation_failed(&q, next, &err))
                        .await?;
                }
            }
        }
    }
}

fn what(kind: MailKind) -> &'static str {
    match kind {
        MailKind::Confirm => "confirmation link",
        MailKind::Welcome => "welcome",
    }
}

/// Renders and hands over one mail, greeting the subscriber by name.
async fn mail(app: &App, q: &QueuedConfirmation) -> Result<String> {
    if q.kind == MailKind::Welcome {
        return welcome(app, q).await;
    }
    let expires = q.expires_at;
    let t = token::sign(app.signing_key(), Purpose::Confirm { expires }, &q.address);
    let link = format!("{}/confirm?token={t}&expires={expires}", app.0.public_url);
    let until = chrono::DateTime::from_timestamp(expires, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default();
    let name = q.name.as_deref().unwrap_or("");
    let body = app.0.pages.render(
        "confirm_email.txt",
        &[
            ("address", &q.address),
            ("name", name),
            ("confirm_url", &link),
            ("expires", &until),
        ],
    )?;
    let subject = format!("Confirm your subscription to {}", app.0.pages.site_title());
    let message = app.0.mailer.message(&q.address, &subject, body)?;
    app.0.mailer.send(&message).await
}

/// The welcome mail after a confirmation: `welcome.txt` of `templates.dir`, with
/// `welcome.html` as its HTML alternative when there is one; `name`, `address` and
/// `unsubscribe_url` in the context besides `site`.
async fn welcome(app: &App, q: &QueuedConfirmation) -> Result<String> {
    let t = token::sign(app.signing_key(), Purpose::Unsubscribe, &q.address);
    let unsubscribe = format!("{}/unsubscribe?token={t}", app.0.public_url);
    let name = q.name.as_deref().unwrap_or("");
    let values = [
        ("address", q.address.as_str()),
        ("name", name),
        ("unsubscribe_url", unsubscribe.as_str()),
    ];
    let text = app.0.pages.render("welcome.txt", &values)?;
    let html = if app.0.pages.has("welcome.html") {
        Some(app.0.pages.render("welcome.html", &values)?)
    } else {
        None
    };
    let subject = format!("Welcome to {}", app.0.pages.site_title());
    let message = app
        .0
        .mailer
        .message_with(&q.address, &subject, text, html)?;
    app.0.mailer.send(&message).await
}
