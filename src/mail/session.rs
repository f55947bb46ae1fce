//! One SMTP session once it is open: mail transactions (pipelined when the server allows),
//! and the classification of every reply into an [`Outcome`] by phase.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use tokio::time::timeout;

use super::reply::{self, clean, Fault, Phase, Reply};

/// An open session.
pub struct Conn {
    pub(super) inner: AsyncSmtpConnection,
    /// Mail transactions begun on this session, whatever their outcome.
    pub transactions: usize,
    pub(super) broken: bool,
    /// A second handle on the socket, only to peek whether the server hung up.
    pub(super) probe: Option<std::net::TcpStream>,
    /// The server takes MAIL, RCPT and DATA in one write (RFC 2920).
    pub(super) pipelining: bool,
    /// What [`clean`] masks in the replies of this session (the password's forms).
    pub(super) secrets: std::sync::Arc<Vec<String>>,
}

/// Several commands written at once.
struct Batch(String);

impl std::fmt::Display for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
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
    /// A 5xx; `bounce` when the address itself is bad (see [`reply::classify`]), `fault`
    /// whose fault the refusal is.
    Fail {
        reply: String,
        bounce: bool,
        fault: Fault,
    },
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

/// `550 5.1.1 ...`: the reply code and text as the server wrote them, on one line, cleaned
/// (see [`clean`]).
pub fn reply_text(r: &Response, secrets: &[String]) -> String {
    let code: u16 = r.code().into();
    let text = r.message().collect::<Vec<_>>().join(" ");
    clean(format!("{code} {text}").trim(), secrets)
}

/// Classifies a reply to `phase` by the SPEC's classes; whose fault a 5xx is, is
/// [`reply::classify`]'s business. `text` must be cleaned already.
pub fn classify(code: u16, text: &str, phase: Phase) -> Outcome {
    let reply = format!("{code} {text}").trim().to_string();
    match code {
        200..=299 => Outcome::Sent(reply),
        421 => Outcome::Retry(reply),
        400..=499 => Outcome::Defer(reply),
        500..=599 => {
            let v = reply::classify(&Reply::new(code, text, phase));
            Outcome::Fail {
                bounce: v.bounce,
                fault: v.fault,
                reply,
            }
        }
        // Not a completion reply at all: the server is confused; let a later run retry.
        _ => Outcome::Defer(reply),
    }
}

fn classify_error(
    e: &lettre::transport::smtp::Error,
    after_dot: bool,
    what: &str,
    phase: Phase,
    secrets: &[String],
) -> Outcome {
    if let Some(code) = e.status() {
        let text = std::error::Error::source(e)
            .map(|s| clean(&s.to_string(), secrets))
            .unwrap_or_default();
        let code = u16::from(code);
        if code == 530 {
            return Outcome::Abort(format!(
                "{code} {text}: the server wants authentication or TLS first; set smtp.username (and smtp.ca_file for STARTTLS on loopback)"
            ));
        }
        return classify(code, &text, phase);
    }
    let e = clean(&e.to_string(), secrets);
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
        if let Some(o) = self.content_at_once(step, body).await {
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
            Ok(Err(e)) => self.content_refused(&e, after_dot, step).await,
            Ok(Ok(resp)) => Outcome::Sent(reply_text(&resp, &self.secrets)),
        }
    }

    /// What an error while the content or its final dot went out means; after a refusal the
    /// session is reset for the next message.
    async fn content_refused(
        &mut self,
        e: &lettre::transport::smtp::Error,
        after_dot: bool,
        step: Duration,
    ) -> Outcome {
        let o = classify_error(
            e,
            after_dot,
            "sending the message",
            Phase::Content,
            &self.secrets,
        );
        match o {
            // A 421 to the dot: the message was refused, the session is over.
            Outcome::Retry(_) | Outcome::Unknown(_) => o,
            _ => self.reset_after(o, step).await,
        }
    }

    /// The content, dot-stuffed, and the final dot in one write, then the reply: lettre's
    /// own path stuffs the content a byte at a time, which was the largest cost of a send.
    /// `None` (nothing written) for content that is not UTF-8, is large enough that a server
    /// that stops reading could stall the write, or goes to a server that already hung up
    /// after its 354: lettre's path handles those.
    async fn content_at_once(&mut self, step: Duration, body: &[u8]) -> Option<Outcome> {
        const AT_ONCE: usize = 256 * 1024;
        if body.len() > AT_ONCE {
            return None;
        }
        let text = std::str::from_utf8(body).ok()?;
        if peer_closed(self.probe.as_ref()) {
            // Hung up after its 354: lettre's path finds it out and retries for free.
            return None;
        }
        Some(
            match timeout(step, self.inner.command(stuffed(text))).await {
                Err(_) => Outcome::Unknown(format!(
                    "no reply to the final dot within {} s",
                    step.as_secs()
                )),
                Ok(Ok(resp)) => Outcome::Sent(reply_text(&resp, &self.secrets)),
                Ok(Err(e)) => self.content_refused(&e, true, step).await,
            },
        )
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
                    self.mail_refused(
                        classify_error(&e, false, "MAIL FROM", Phase::Mail, &self.secrets),
                        step,
                    )
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
                        self.reset_after(
                            classify_error(&e, false, "RCPT TO", Phase::Rcpt, &self.secrets),
                            step,
                        )
                        .await,
                    )
                }
                Ok(Ok(_)) => {}
            }
        }
        match timeout(step, self.inner.command(Data)).await {
            Err(_) => Some(Outcome::Retry("no answer to DATA".into())),
            Ok(Err(e)) => Some(
                self.reset_after(
                    classify_error(&e, false, "DATA", Phase::Data, &self.secrets),
                    step,
                )
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
                    return Some(classify_error(
                        &e,
                        false,
                        "MAIL, RCPT or DATA",
                        Phase::Rcpt,
                        &self.secrets,
                    ))
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
                let phase = match i {
                    0 => Phase::Mail,
                    i if i == replies - 1 => Phase::Data,
                    _ => Phase::Rcpt,
                };
                let o = classify_error(&e, false, "MAIL, RCPT or DATA", phase, &self.secrets);
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

/// Message content as it goes after DATA: a `.` that starts a line doubled (RFC 5321
/// 4.5.2, lines ending in CRLF, as lettre's codec does), then the final dot. Built whole at
/// its final size: lettre copies a `String` command as it is, where a `Display` one would be
/// formatted into a string that grows as it goes.
fn stuffed(t: &str) -> String {
    let mut out = String::with_capacity(t.len() + t.len() / 64 + 6);
    if t.starts_with('.') {
        out.push('.');
    }
    let mut from = 0;
    for i in memchr::memmem::find_iter(t.as_bytes(), b"\r\n.") {
        // Up to and including the CRLF and the dot, then the dot again.
        out.push_str(&t[from..i + 3]);
        out.push('.');
        from = i + 3;
    }
    out.push_str(&t[from..]);
    out.push_str("\r\n.\r\n");
    out
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

    #[test]
    fn content_is_stuffed_as_lettre_stuffs_it() {
        for (body, want) in [
            ("a\r\n.b\r\n..c\r\n", "a\r\n..b\r\n...c\r\n"),
            (".dot\r\n.\r\nend", "..dot\r\n..\r\nend"),
            ("bare\n.lf\r\r\n.x", "bare\n.lf\r\r\n..x"),
            ("", ""),
            ("\r\n.", "\r\n.."),
        ] {
            assert_eq!(stuffed(body), format!("{want}\r\n.\r\n"), "{body:?}");
        }
    }

    #[test]
    fn reply_classes() {
        let rcpt = |c, t| classify(c, t, Phase::Rcpt);
        assert_eq!(rcpt(250, "ok"), Outcome::Sent("250 ok".into()));
        assert!(matches!(rcpt(421, "4.3.2 bye"), Outcome::Retry(_)));
        for c in [450, 451, 452, 454] {
            assert!(matches!(rcpt(c, "try later"), Outcome::Defer(_)));
        }
        assert!(matches!(rcpt(450, "4.7.1 greylisted"), Outcome::Defer(_)));
        assert_eq!(
            rcpt(550, "5.1.1 no such user"),
            Outcome::Fail {
                reply: "550 5.1.1 no such user".into(),
                bounce: true,
                fault: Fault::Recipient,
            }
        );
        assert!(matches!(
            rcpt(554, "5.7.1 spam"),
            Outcome::Fail { bounce: false, .. }
        ));
        // Postfix's reject_unlisted_sender, answered to RCPT: nobody's address is bad.
        assert!(matches!(
            rcpt(
                550,
                "5.1.0 <news@example.org>: Sender address rejected: User unknown"
            ),
            Outcome::Fail {
                bounce: false,
                fault: Fault::Sender,
                ..
            }
        ));
    }
}
