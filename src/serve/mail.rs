//! The confirmation mail of a sign-up, sent through the same `[smtp]` settings and session
//! code as `send`.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use lettre::message::header::{ContentType, MIME_VERSION_1_0};
use lettre::message::Mailbox;
use lettre::message::MultiPart;
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
    /// The sender of `email.from` and `email.reply_to`, over the `[smtp]` endpoint;
    /// `password` is `$TECHSHACK_SMTP_PASSWORD`.
    pub fn from_config(config: &Config, password: Option<&str>) -> Result<Mailer> {
        let (from, reply_to) = config.email.confirmation_sender()?;
        let target = Target::new(config.smtp_endpoint()?, password)?;
        Ok(Mailer {
            step: target.timeout,
            target,
            domain: from.email.domain().to_string(),
            from: from.clone(),
            reply_to: reply_to.cloned(),
        })
    }

    /// The message for `to`, with `subject` and the plain-text `body`.
    pub fn message(&self, to: &str, subject: &str, body: String) -> Result<Message> {
        self.message_with(to, subject, body, None)
    }

    /// The same, with an HTML alternative to the text when `html` is given.
    pub fn message_with(
        &self,
        to: &str,
        subject: &str,
        body: String,
        html: Option<String>,
    ) -> Result<Message> {
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
            .header(MIME_VERSION_1_0);
        if let Some(r) = &self.reply_to {
            b = b.reply_to(r.clone());
        }
        Ok(match html {
            Some(html) => b.multipart(MultiPart::alternative_plain_html(body, html))?,
            None => b.header(ContentType::TEXT_PLAIN).body(body)?,
        })
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
