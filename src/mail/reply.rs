//! What a negative SMTP reply means, and whose fault it is: the one table that decides
//! whether a refusal is about the recipient's mailbox (the row fails, the subscriber may be
//! bounced), about the sender, the relay, the credentials, the policy or the content (nobody
//! is bounced; repeated, it stops the send), or a request to slow down.
//!
//! [`classify`] is pure and needs no live session: a reply code, the RFC 3463 enhanced code,
//! the text and the phase it answered. A bounce that arrives by mail (a DSN's `Status:` and
//! `Diagnostic-Code:`) goes through the same function with [`Phase::Report`].
//!
//! [`clean`] is the other half: reply text comes from the server and is printed, logged and
//! stored, so control characters are dropped and secrets masked before any of that.

use std::fmt;

/// The step of the session a reply answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The server's banner.
    Greeting,
    /// EHLO or STARTTLS (lettre answers these with the greeting: judged as one).
    #[allow(dead_code)]
    Hello,
    Auth,
    /// `MAIL FROM`.
    Mail,
    /// `RCPT TO`.
    Rcpt,
    /// The `DATA` command itself.
    Data,
    /// The reply to the final dot.
    Content,
    /// A delivery status notification received later: the phase is not known. (Reading
    /// bounces that arrive by mail is to come; the table already takes them.)
    #[allow(dead_code)]
    Report,
}

/// An RFC 3463 enhanced status code, `class.subject.detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enhanced {
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl Enhanced {
    /// The code at the start of `text` (`5.1.1 ...`), if it starts with one.
    pub fn parse(text: &str) -> Option<Enhanced> {
        let first = text.split_whitespace().next()?;
        let mut parts = first.split('.');
        let class: u8 = parts.next()?.parse().ok()?;
        let subject: u16 = parts.next()?.parse().ok()?;
        let detail: u16 = parts.next()?.parse().ok()?;
        if parts.next().is_some() || !matches!(class, 2 | 4 | 5) || subject > 999 || detail > 999 {
            return None;
        }
        Some(Enhanced {
            class,
            subject,
            detail,
        })
    }
}

impl fmt::Display for Enhanced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// One reply to judge.
#[derive(Debug, Clone, Copy)]
pub struct Reply<'a> {
    /// The three-digit code; `None` for a report that gives only the enhanced code.
    pub code: Option<u16>,
    pub enhanced: Option<Enhanced>,
    /// The text after the code (the enhanced code may still lead it).
    pub text: &'a str,
    pub phase: Phase,
}

impl<'a> Reply<'a> {
    /// A reply as the session received it: the code and the text, whose first word may be
    /// the enhanced code.
    pub fn new(code: u16, text: &'a str, phase: Phase) -> Reply<'a> {
        Reply {
            code: Some(code),
            enhanced: Enhanced::parse(text),
            text,
            phase,
        }
    }

    /// `550 5.1.1 text` as one line (the form the ledger stores).
    pub fn parse_line(line: &'a str, phase: Phase) -> Reply<'a> {
        let line = line.trim_start();
        let (code, rest) = match line.get(..3).and_then(|c| c.parse::<u16>().ok()) {
            Some(c) => (Some(c), line[3..].trim_start_matches(['-', ' '])),
            None => (None, line),
        };
        Reply {
            code,
            enhanced: Enhanced::parse(rest),
            text: rest,
            phase,
        }
    }

    /// 2, 4 or 5: from the code, else from the enhanced code.
    fn class(&self) -> u8 {
        match (self.code, self.enhanced) {
            (Some(c), _) => (c / 100) as u8,
            (None, Some(e)) => e.class,
            (None, None) => 4,
        }
    }
}

/// Whose fault a refusal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The recipient's mailbox or domain.
    Recipient,
    /// The sender address (`email.from`).
    Sender,
    /// The relay will not relay for us.
    Relay,
    /// Authentication or TLS is required or was refused.
    Auth,
    /// A policy of the receiving side (reputation, DMARC, a block list, "access denied").
    Policy,
    /// The message itself (size, content, spam).
    Content,
    /// The server has a problem of its own.
    Server,
    /// The server asks for less traffic: a rate limit.
    Rate,
    /// Greylisting: the first try of a new sender is deferred, whatever the pace.
    Greylist,
}

impl Fault {
    /// What the operator should check when this refusal stops a send.
    pub fn hint(self) -> &'static str {
        match self {
            Fault::Recipient => "the recipient's address",
            Fault::Sender => {
                "the relay refuses the sender: check email.from and which senders the relay accepts (Postfix: smtpd_sender_restrictions, reject_unlisted_sender)"
            }
            Fault::Relay => {
                "the relay refuses to relay for this client: check smtp.url, smtp.username and $TECHSHACK_SMTP_PASSWORD, and that the relay allows this host (Postfix: mynetworks, smtpd_relay_restrictions)"
            }
            Fault::Auth => {
                "the server wants authentication or TLS: check smtp.username, $TECHSHACK_SMTP_PASSWORD and smtp.ca_file"
            }
            Fault::Policy => {
                "the receiving side's policy refuses this mail: check the sending host's reputation, SPF/DKIM/DMARC of email.from and the relay's logs"
            }
            Fault::Content => {
                "the server refuses the message itself: check the issue's size, links and spam score"
            }
            Fault::Server => "the server reports a problem of its own: see its logs",
            Fault::Rate => "the server asks for fewer messages: lower smtp.rate or [smtp.domains]",
            Fault::Greylist => "greylisting: a later run delivers",
        }
    }
}

/// What a refusal means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub fault: Fault,
    /// A 5xx: retrying the same message cannot help.
    pub permanent: bool,
    /// The address itself is bad: the subscriber may be marked bounced.
    pub bounce: bool,
}

impl Verdict {
    /// Whether this refusal, repeated for several recipients in a row, means the send as a
    /// whole is refused (see the circuit breaker of `deliver`). A permanent refusal that is
    /// not the recipient's counts; so does a transient one that names the sender, the relay,
    /// the credentials, the policy or the content. Greylisting, rate limits and a server's
    /// own temporary trouble do not: they are paced and retried.
    pub fn stops_the_send(&self) -> bool {
        match self.fault {
            Fault::Recipient | Fault::Rate | Fault::Greylist => false,
            Fault::Server => self.permanent,
            Fault::Sender | Fault::Relay | Fault::Auth | Fault::Policy | Fault::Content => true,
        }
    }
}

fn has(text: &str, words: &[&str]) -> bool {
    let t = text.to_ascii_lowercase();
    words.iter().any(|w| t.contains(w))
}

/// A text that is about the sender: Postfix's `Sender address rejected`, "sender domain",
/// "MAIL FROM".
fn names_sender(text: &str) -> bool {
    has(
        text,
        &["sender", "mail from", "envelope from", "from address"],
    )
}

fn names_relay(text: &str) -> bool {
    has(text, &["relay", "relaying"])
}

fn names_rate(text: &str) -> bool {
    has(
        text,
        &[
            " rate",
            "too many",
            "throttl",
            "slow down",
            "too fast",
            "exceeded",
            "try again later",
            "flood",
        ],
    )
}

fn names_greylist(text: &str) -> bool {
    has(text, &["greylist", "graylist", "grey-list", "gray-list"])
}

/// Whose fault a negative reply is. Positive replies (2xx) are nobody's: they come back as
/// [`Fault::Recipient`], not permanent, no bounce, and callers never ask.
pub fn classify(r: &Reply<'_>) -> Verdict {
    let class = r.class();
    let permanent = class == 5;
    let verdict = |fault: Fault, bounce: bool| Verdict {
        fault,
        permanent,
        bounce: bounce && permanent,
    };
    // Greylisting and rate limits first: their enhanced codes vary between servers.
    if !permanent && names_greylist(r.text) {
        return verdict(Fault::Greylist, false);
    }
    // The reply code alone settles the session-level refusals.
    match r.code {
        Some(530 | 534 | 535 | 538 | 454) if r.phase == Phase::Auth => {
            return verdict(Fault::Auth, false)
        }
        Some(530 | 535) => return verdict(Fault::Auth, false),
        _ => {}
    }
    match r.phase {
        Phase::Greeting | Phase::Hello => {
            return verdict(
                if r.code == Some(421) && names_rate(r.text) {
                    Fault::Rate
                } else if permanent {
                    Fault::Policy
                } else {
                    Fault::Server
                },
                false,
            )
        }
        Phase::Auth => return verdict(Fault::Auth, false),
        _ => {}
    }
    if let Some(e) = r.enhanced {
        if let Some(v) = by_enhanced(r, e, permanent) {
            return v;
        }
    }
    by_code(r, permanent)
}

/// The table of RFC 3463 codes (and the registry's later ones, RFC 5248), with the text and
/// phase where a code alone does not say whose fault it is.
fn by_enhanced(r: &Reply<'_>, e: Enhanced, permanent: bool) -> Option<Verdict> {
    let v = |fault: Fault, bounce: bool| {
        Some(Verdict {
            fault,
            permanent,
            bounce: bounce && permanent,
        })
    };
    match (e.subject, e.detail) {
        // X.1.7 bad sender mailbox syntax, X.1.8 bad sender's system address.
        (1, 7 | 8) => v(Fault::Sender, false),
        // X.1.0 other address status: whoever the text names; at MAIL FROM, the sender.
        (1, 0) if r.phase == Phase::Mail || names_sender(r.text) => v(Fault::Sender, false),
        (1, 0) => v(Fault::Recipient, false),
        // X.1.1 no such mailbox, X.1.2 no such domain, X.1.3 bad address syntax, X.1.6
        // mailbox moved, X.1.10 null MX: the address is bad.
        (1, 1 | 2 | 3 | 6 | 10) if names_sender(r.text) => v(Fault::Sender, false),
        (1, 1 | 2 | 3 | 6 | 10) => v(Fault::Recipient, true),
        (1, _) => v(Fault::Recipient, false),
        // X.2.1 mailbox disabled; as a 4xx (Gmail's 4.2.1) the mailbox receives too fast.
        (2, 1) if !permanent => v(Fault::Rate, false),
        (2, 1) => v(Fault::Recipient, true),
        // X.2.3 message too long for the mailbox.
        (2, 3) => v(Fault::Content, false),
        // X.2.2 mailbox full and the rest: the recipient's, but not for good.
        (2, _) => v(Fault::Recipient, false),
        // X.3.4 message too big for the system.
        (3, 4) => v(Fault::Content, false),
        (3, _) => v(Fault::Server, false),
        // X.4.4 unable to route: the recipient's domain.
        (4, 4) => v(Fault::Recipient, false),
        (4, _) => v(Fault::Server, false),
        (5, _) => v(Fault::Server, false),
        (6, _) => v(Fault::Content, false),
        (7, 28) => v(Fault::Rate, false),
        (7, 0) if !permanent && names_rate(r.text) => v(Fault::Rate, false),
        // X.7.1 delivery not authorized: "Relay access denied" is the relay's; otherwise the
        // receiving side's policy (never the address's: it may be a block list).
        (7, 1) if names_relay(r.text) => v(Fault::Relay, false),
        (7, 1) if names_sender(r.text) => v(Fault::Sender, false),
        // X.7.0 auth required, X.7.8 credentials invalid, X.7.9 mechanism too weak, X.7.11
        // encryption required, X.7.14 trust relationship required.
        (7, 0) if has(r.text, &["auth"]) => v(Fault::Auth, false),
        (7, 8 | 9 | 11 | 14) => v(Fault::Auth, false),
        // X.7.12 password transition needed, X.7.13 user account disabled: ours.
        (7, 12 | 13) => v(Fault::Auth, false),
        // X.7.15 priority, X.7.17/18/19 mailbox owner/RRVS: recipient's.
        (7, 17..=19) => v(Fault::Recipient, false),
        (7, _) => v(Fault::Policy, false),
        _ => None,
    }
}

/// Replies without an enhanced code: the basic code and the phase.
fn by_code(r: &Reply<'_>, permanent: bool) -> Verdict {
    let v = |fault: Fault, bounce: bool| Verdict {
        fault,
        permanent,
        bounce: bounce && permanent,
    };
    let code = r.code.unwrap_or(if permanent { 550 } else { 450 });
    if !permanent {
        return match code {
            _ if names_rate(r.text) => v(Fault::Rate, false),
            _ if r.phase == Phase::Mail && names_sender(r.text) => v(Fault::Sender, false),
            _ => v(Fault::Server, false),
        };
    }
    match r.phase {
        Phase::Mail => v(Fault::Sender, false),
        Phase::Data | Phase::Content if code == 552 => v(Fault::Content, false),
        Phase::Data | Phase::Content => v(Fault::Content, false),
        _ if names_relay(r.text) => v(Fault::Relay, false),
        _ if names_sender(r.text) => v(Fault::Sender, false),
        // 550/551/553 to RCPT: the mailbox is unavailable, not local, or its name not
        // allowed. Without an enhanced code the text may be a policy's, so no bounce.
        _ if matches!(code, 550 | 551 | 553) => v(Fault::Recipient, false),
        _ if code == 552 => v(Fault::Recipient, false),
        _ => v(Fault::Policy, false),
    }
}

/// What stands for a masked secret.
const MASK: &str = "***";

/// Reply text as it may be printed, logged and stored: control characters (and whole
/// terminal escape sequences) dropped, anything after `AUTH` masked, and every `secret`
/// (the SMTP password, and its base64 forms) masked wherever it appears.
pub fn clean(text: &str, secrets: &[String]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => skip_escape(&mut chars),
            // C1 CSI and OSC: the rest of the sequence goes too.
            '\u{9b}' => skip_until_final(&mut chars),
            '\u{9d}' => skip_string(&mut chars),
            '\t' | '\r' | '\n' => out.push(' '),
            c if c.is_control() => {}
            // Bidirectional overrides reorder what the terminal shows.
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {}
            c => out.push(c),
        }
    }
    for s in secrets.iter().filter(|s| s.len() >= 3) {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), MASK);
        }
    }
    if let Some(at) = find_auth(&out) {
        out.truncate(at + 4);
        out.push(' ');
        out.push_str(MASK);
    }
    out
}

/// The byte offset of a word `AUTH` (any case) in `s`.
fn find_auth(s: &str) -> Option<usize> {
    let lower = s.to_ascii_lowercase();
    let b = lower.as_bytes();
    let mut from = 0;
    while let Some(i) = lower[from..].find("auth") {
        let at = from + i;
        let before = at == 0 || !b[at - 1].is_ascii_alphanumeric();
        let after = !matches!(b.get(at + 4), Some(c) if c.is_ascii_alphabetic());
        if before && after {
            return Some(at);
        }
        from = at + 4;
    }
    None
}

/// After ESC: a CSI (`ESC [ ... final`), an OSC or other string (`ESC ] ... BEL|ST`), or a
/// two-character sequence.
fn skip_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    match chars.next() {
        Some('[') => skip_until_final(chars),
        Some(']' | 'P' | '_' | '^' | 'X') => skip_string(chars),
        _ => {}
    }
}

fn skip_until_final(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for c in chars.by_ref() {
        if ('\u{40}'..='\u{7e}').contains(&c) {
            break;
        }
    }
}

fn skip_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let Some(c) = chars.next() {
        match c {
            '\u{7}' | '\u{9c}' => break,
            '\u{1b}' => {
                if chars.peek() == Some(&'\\') {
                    chars.next();
                }
                break;
            }
            _ => {}
        }
    }
}

/// The forms a password can take in a reply that echoes the AUTH exchange: itself, and base64
/// of it and of the PLAIN response for `username`.
pub fn secret_forms(username: &str, password: &str) -> Vec<String> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    if password.is_empty() {
        return Vec::new();
    }
    vec![
        password.to_string(),
        b64.encode(password),
        b64.encode(format!("\0{username}\0{password}")),
    ]
}

#[cfg(test)]
mod tests;
