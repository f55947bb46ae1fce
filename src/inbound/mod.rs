//! Mail that comes back after a send: delivery status notifications (RFC 3464 and the common
//! plain-text notices), feedback reports (RFC 5965), requests mailed to the unsubscribe
//! address (RFC 2369), automatic replies (RFC 3834) and everything else.
//!
//! [`read`] only reads: it never looks at the state. It returns what kind of message this is,
//! what it says about each recipient, and every address or URL in it that may carry one of
//! our tokens (the envelope recipient first), for the caller to verify and act on.

pub mod fields;
mod plain;
pub mod source;

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

/// What a report says happened to one recipient (RFC 3464 `Action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Failed,
    Delayed,
    Delivered,
    Relayed,
    Expanded,
    Other,
}

impl Action {
    fn parse(v: &str) -> Action {
        match v
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase()
            .as_str()
        {
            "failed" => Action::Failed,
            "delayed" => Action::Delayed,
            "delivered" => Action::Delivered,
            "relayed" => Action::Relayed,
            "expanded" => Action::Expanded,
            _ => Action::Other,
        }
    }
}

/// One recipient of a bounce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The address that failed (`Final-Recipient`, else `Original-Recipient`), if it is given.
    pub address: Option<String>,
    pub action: Action,
    /// The enhanced status code (RFC 3463), `5.1.1`.
    pub status: Option<String>,
    /// The remote server's reply (`Diagnostic-Code` without its type), `550 5.1.1 …`.
    pub reply: Option<String>,
}

/// What kind of message arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A delivery status notification; `standard` when it is an RFC 3464 report.
    Bounce {
        recipients: Vec<Recipient>,
        standard: bool,
    },
    /// An RFC 5965 feedback report (`abuse`, `fraud`, `not-spam`, …, lowercased).
    Complaint {
        feedback_type: String,
        recipient: Option<String>,
    },
    /// Mail to the unsubscribe address, or one whose subject or first line asks to leave.
    Unsubscribe { asks: bool },
    /// An automatic reply: an out-of-office notice, a vacation message.
    AutoReply,
    /// Nothing this tool acts on.
    Other,
}

/// A message read by [`read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    pub kind: Kind,
    /// The `From` address.
    pub from: Option<String>,
    pub subject: Option<String>,
    pub message_id: Option<String>,
    /// The `Message-ID` of the original message, when a copy or its headers came back.
    pub original_message_id: Option<String>,
    /// Addresses and URLs that may carry a token, most trustworthy first: the envelope
    /// recipient, `Delivered-To`, `X-Original-To`, `To`, then the returned original's
    /// envelope sender and its `List-Unsubscribe` targets.
    pub token_carriers: Vec<String>,
}

/// Where the message was delivered to and which address receives unsubscribe requests.
#[derive(Debug, Default, Clone, Copy)]
pub struct Envelope<'a> {
    /// The envelope recipient, as an MTA passes it (Postfix `pipe`'s `${original_recipient}`).
    pub recipient: Option<&'a str>,
    /// `email.unsubscribe_mailto`'s address; `{token}` stands for any token.
    pub unsubscribe: Option<&'a str>,
}

/// Why a message could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a mail message: no header could be read")]
pub struct Unreadable;

/// Reads one message. Anything with at least one header field is read; a message that is
/// not understood is `Kind::Other`, never an error.
pub fn read(raw: &[u8], env: Envelope<'_>) -> Result<Inbound, Unreadable> {
    let msg = MessageParser::default().parse(raw).ok_or(Unreadable)?;
    // The parser's accessors read the first part: a message without one has nothing to read.
    if msg.parts.is_empty() || msg.headers().is_empty() {
        return Err(Unreadable);
    }
    let from = msg
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .map(str::to_string);
    let subject = msg.subject().map(str::to_string);
    let mut carriers = Vec::new();
    carriers.extend(env.recipient.map(str::to_string));
    for name in ["Delivered-To", "X-Original-To"] {
        for v in msg.header_values(name) {
            carriers.extend(v.as_text().and_then(fields::address));
        }
    }
    if let Some(to) = msg.to() {
        carriers.extend(to.iter().filter_map(|a| a.address()).map(str::to_string));
    }
    let report = Report::of(&msg);
    if let Some(orig) = &report.original {
        carriers.extend(orig.carriers.iter().cloned());
    }
    carriers.extend(report.sender.iter().cloned());
    dedup(&mut carriers);
    let kind = kind(
        &msg,
        &report,
        env,
        &carriers,
        from.as_deref(),
        subject.as_deref(),
    );
    Ok(Inbound {
        kind,
        from,
        subject,
        message_id: msg.message_id().map(str::to_string),
        original_message_id: report.original.and_then(|o| o.message_id),
        token_carriers: carriers,
    })
}

fn dedup(v: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    v.retain(|s| seen.insert(s.clone()));
}

fn kind(
    msg: &Message<'_>,
    report: &Report,
    env: Envelope<'_>,
    carriers: &[String],
    from: Option<&str>,
    subject: Option<&str>,
) -> Kind {
    if let Some(fb) = &report.feedback {
        return Kind::Complaint {
            feedback_type: fb.get("feedback-type").unwrap_or("").to_ascii_lowercase(),
            recipient: fb.get("original-rcpt-to").and_then(fields::address),
        };
    }
    if !report.recipients.is_empty() {
        return Kind::Bounce {
            recipients: report.recipients.clone(),
            standard: true,
        };
    }
    let null_sender = msg
        .return_address()
        .is_some_and(|r| r.trim().trim_matches(['<', '>']).is_empty())
        || matches!(msg.header_raw("Return-Path").map(str::trim), Some("<>"));
    let body = first_text(msg);
    if plain::is_bounce(from, subject, null_sender) {
        let exclude: Vec<&str> = carriers.iter().map(String::as_str).collect();
        return Kind::Bounce {
            recipients: vec![plain::recipient(&body, &exclude)],
            standard: false,
        };
    }
    let subject_lower = subject.unwrap_or("").to_lowercase();
    let auto = msg
        .header_raw("Auto-Submitted")
        .is_some_and(|v| !v.trim().eq_ignore_ascii_case("no"))
        || ["X-Autoreply", "X-Autorespond"]
            .iter()
            .any(|h| msg.header_raw(*h).is_some())
        || msg
            .header_raw("Precedence")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("auto_reply"))
        || plain::is_auto_reply_subject(&subject_lower);
    if auto {
        return Kind::AutoReply;
    }
    let asks = subject_lower.contains("unsubscribe") || first_line_asks(&body);
    let to_unsubscribe = env
        .unsubscribe
        .is_some_and(|pattern| carriers.iter().any(|c| matches_pattern(pattern, c)));
    if to_unsubscribe || asks {
        return Kind::Unsubscribe { asks };
    }
    Kind::Other
}

/// Whether the first line a person wrote (not quoted, not blank) asks to unsubscribe.
fn first_line_asks(body: &str) -> bool {
    body.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .is_some_and(|l| {
            !l.starts_with('>') && l.len() <= 200 && l.to_lowercase().contains("unsubscribe")
        })
}

/// The text of the first text part (HTML reduced to its text by the parser).
fn first_text(msg: &Message<'_>) -> String {
    msg.body_text(0).map(|t| t.into_owned()).unwrap_or_default()
}

/// Whether `address` fits `pattern`, where `{token}` stands for a non-empty token; the domain
/// is compared without regard to case.
pub fn matches_pattern(pattern: &str, address: &str) -> bool {
    token_in(pattern, address).is_some()
        || (!pattern.contains("{token}") && pattern.eq_ignore_ascii_case(address))
}

/// The token that `address` carries where `pattern` has `{token}`:
/// `token_in("bounces+{token}@news.example", "bounces+AbC@News.Example") == Some("AbC")`.
pub fn token_in<'a>(pattern: &str, address: &'a str) -> Option<&'a str> {
    let (prefix, suffix) = pattern.split_once("{token}")?;
    if address.len() < prefix.len() + suffix.len() + 1 {
        return None;
    }
    let (head, rest) = address.split_at_checked(prefix.len())?;
    let (token, tail) = rest.split_at_checked(rest.len() - suffix.len())?;
    let same_prefix =
        head == prefix || (!prefix.contains('@') && head.eq_ignore_ascii_case(prefix));
    (same_prefix && tail.eq_ignore_ascii_case(suffix) && !token.contains(['@', ' ', '<', '>']))
        .then_some(token)
}

/// The machine-readable parts of a report and the original message it returns.
#[derive(Default)]
struct Report {
    recipients: Vec<Recipient>,
    feedback: Option<fields::Block>,
    /// The envelope sender of the original, from the report's per-message fields.
    sender: Option<String>,
    original: Option<Original>,
}

struct Original {
    message_id: Option<String>,
    carriers: Vec<String>,
}

impl Report {
    fn of(msg: &Message<'_>) -> Report {
        let mut r = Report::default();
        for part in &msg.parts {
            let Some(ct) = part.content_type() else {
                continue;
            };
            let ty = ct.ctype().to_ascii_lowercase();
            let sub = ct.subtype().unwrap_or("").to_ascii_lowercase();
            match (ty.as_str(), sub.as_str()) {
                ("message", "delivery-status" | "global-delivery-status") => {
                    r.delivery_status(&String::from_utf8_lossy(part.contents()))
                }
                ("message", "feedback-report") => {
                    let text = String::from_utf8_lossy(part.contents());
                    r.feedback = fields::blocks(&text).into_iter().next();
                }
                ("message", "rfc822" | "global") if r.original.is_none() => {
                    if let PartType::Message(inner) = &part.body {
                        r.original = Original::of(inner);
                    }
                }
                ("text" | "message", "rfc822-headers" | "global-headers")
                    if r.original.is_none() =>
                {
                    if let Some(inner) = MessageParser::default().parse_headers(part.contents()) {
                        r.original = Original::of(&inner);
                    }
                }
                _ => {}
            }
        }
        r
    }

    fn delivery_status(&mut self, text: &str) {
        let mut blocks = fields::blocks(text).into_iter();
        let Some(first) = blocks.next() else { return };
        // The per-message block comes first; a mangled report may have lost it.
        let mut rest: Vec<fields::Block> = blocks.collect();
        if first.get("final-recipient").is_some() || first.get("original-recipient").is_some() {
            rest.insert(0, first);
        } else if let Some(s) = first.get("x-postfix-sender").and_then(fields::address) {
            self.sender = Some(s);
        }
        for b in rest {
            let address = b
                .get("final-recipient")
                .or(b.get("original-recipient"))
                .and_then(fields::address);
            if address.is_none() && b.get("action").is_none() {
                continue;
            }
            self.recipients.push(Recipient {
                address,
                action: b.get("action").map(Action::parse).unwrap_or(Action::Other),
                status: b
                    .get("status")
                    .and_then(|s| s.split_whitespace().next())
                    .map(str::to_string),
                reply: b
                    .get("diagnostic-code")
                    .map(|d| fields::typed(d).to_string())
                    .filter(|d| !d.is_empty()),
            });
        }
    }
}

impl Original {
    fn of(m: &Message<'_>) -> Option<Original> {
        if m.parts.is_empty() {
            return None;
        }
        let mut carriers = Vec::new();
        if let Some(rp) = m.return_address() {
            carriers.extend(fields::address(rp));
        }
        for (name, value) in m.headers_raw() {
            if !name.eq_ignore_ascii_case("List-Unsubscribe") {
                continue;
            }
            for item in value.split(',') {
                let item = item
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .trim();
                if !item.is_empty() {
                    carriers.push(item.to_string());
                }
            }
        }
        Some(Original {
            message_id: m.message_id().map(str::to_string),
            carriers,
        })
    }
}

#[cfg(test)]
mod tests;
