//! The confirmation mail of a sign-up, sent through the same `[smtp]` settings and session
//! code as `send`.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use lettre::message::{header::ContentType, Mailbox};
use lettre::Message;

use crate::config::Config;
use crate::mail::smtp::{Outcome, Target};

/// Everything needed to mail a confirmation link.
pub struct Mailer {
    target: Target,
    from: Mailbox,
    reply_to: Option<Mailbox>,
    domain: String,
    step: Duration,
}

impl Mailer {
    /// Reads `email.from`, `email.reply_to` and `[smtp]`; the password comes from
    /// `$TECHSHACK_SMTP_PASSWORD`.
    pub fn from_config(config: &Config) -> Result<Mailer> {
        let from_raw = config.email.from.as_deref().context(
            "email.from is not set: the confirmation mails of `serve` need a sender address",
        )?;
        let from: Mailbox = from_raw
            .parse()
            .with_context(|| format!("email.from `{from_raw}` is not a mailbox"))?;
        let reply_to = match config.email.reply_to.as_deref() {
            Some(r) => Some(
                r.parse()
                    .with_context(|| format!("email.reply_to `{r}` is not a mailbox"))?,
            ),
            None => None,
        };
        let domain = from.email.domain().to_string();
        let password = std::env::var("TECHSHACK_SMTP_PASSWORD").ok();
        let target = Target::from_config(&config.smtp, password)?;
        Ok(Mailer {
            step: target.timeout,
            target,
            from,
            reply_to,
            domain,
        })
    }

    /// The message for `to`, with `subject` and the plain-text `body`.
    pub fn message(&self, to: &str, subject: &str, body: String) -> Result<Message> {
        let to_box = Mailbox::new(None, to.parse().context("the recipient address")?);
        let id = format!(
            "<confirm.{:016x}{:016x}@{}>",
            rand::random::<u64>(),
            rand::random::<u64>(),
            self.domain
        );
        let mut b = Message::builder()
            .from(self.from.clone())
            .to(to_box)
            .subject(subject)
            .message_id(Some(id))
            .header(ContentType::TEXT_PLAIN);
        if let Some(r) = &self.reply_to {
            b = b.reply_to(r.clone());
        }
        Ok(b.body(body)?)
    }

    /// Hands one message to the SMTP server; returns the server's reply.
    pub async fn send(&self, message: &Message) -> Result<String> {
        let mut conn = self
            .target
            .connect()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let out = conn
            .send(self.step, message.envelope(), &message.formatted())
            .await;
        conn.quit(self.step).await;
        match out {
            Outcome::Sent(reply) => Ok(reply),
            Outcome::Retry(r) | Outcome::Defer(r) | Outcome::Unknown(r) => {
                bail!("the SMTP server did not take the message: {r}")
            }
            Outcome::Fail { reply, .. } => bail!("the SMTP server refused the message: {reply}"),
            Outcome::Abort(r) => bail!("the SMTP server refused the session: {r}"),
        }
    }
}
