//! Bounces that are not RFC 3464 reports: the plain-text notices of qmail, Exim, Gmail and
//! Exchange. They are recognized by who sends them and what their subject says, and read for
//! the failed address and the remote server's reply. What they yield is a hint: the delivery is
//! identified by the token in the address the notice was sent to, never by the text alone.

use super::{Action, Recipient};
use regex::Regex;
use std::sync::OnceLock;

/// Whether a message that is not a report is still a delivery failure notice.
pub(super) fn is_bounce(from: Option<&str>, subject: Option<&str>, null_sender: bool) -> bool {
    let from = from.unwrap_or("").to_ascii_lowercase();
    let local = from.split('@').next().unwrap_or("");
    let daemon = matches!(
        local,
        "mailer-daemon" | "postmaster" | "mail-daemon" | "mailerdaemon"
    );
    let subject = subject.unwrap_or("").to_lowercase();
    const SUBJECTS: &[&str] = &[
        "undelivered mail",
        "undeliverable",
        "delivery status notification",
        "delivery failure",
        "delivery has failed",
        "mail delivery failed",
        "mail delivery system",
        "failure notice",
        "returned mail",
        "returned to sender",
        "could not be delivered",
        "delivery delayed",
        "delayed mail",
        "warning: message",
        "nondeliverable",
    ];
    let says = SUBJECTS.iter().any(|s| subject.contains(s));
    says && (daemon || null_sender)
        || daemon && !subject.is_empty() && !is_auto_reply_subject(&subject)
}

/// Subjects of vacation and out-of-office replies (lowercased).
pub(super) fn is_auto_reply_subject(subject_lower: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "auto:",
        "automatic reply",
        "autoreply",
        "auto-reply",
        "auto reply",
    ];
    const ANYWHERE: &[&str] = &[
        "out of office",
        "out of the office",
        "vacation",
        "away from",
    ];
    let s = subject_lower.trim_start();
    PREFIXES.iter().any(|p| s.starts_with(p)) || ANYWHERE.iter().any(|p| s.contains(p))
}

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("a valid pattern"))
}

/// A reply code with its enhanced status: `550 5.1.1 …`, `550-5.1.1 …`, `#550 5.1.1 …`.
fn full_reply(text: &str) -> Option<(String, String)> {
    static R: OnceLock<Regex> = OnceLock::new();
    let r = re(
        &R,
        r"(?m)\b([45][0-9]{2})[ -]#?([45]\.[0-9]{1,3}\.[0-9]{1,3})\b[^\r\n]*",
    );
    r.captures(text).map(|c| {
        (
            c[2].to_string(),
            c[0].trim().trim_end_matches(['\'', '"']).to_string(),
        )
    })
}

/// An enhanced status code on its own (`Status: 5.1.1`, `#5.1.1`).
fn status_only(text: &str) -> Option<String> {
    static R: OnceLock<Regex> = OnceLock::new();
    let r = re(&R, r"(?:^|[\s#(])([45]\.[0-9]{1,3}\.[0-9]{1,3})\b");
    r.captures(text).map(|c| c[1].to_string())
}

/// A basic reply code that a server "said" or "returned", without an enhanced code.
fn basic_reply(text: &str) -> Option<String> {
    static R: OnceLock<Regex> = OnceLock::new();
    let r = re(
        &R,
        r"(?mi)(?:said|returned|error|response|reply|server)[^0-9\r\n]{0,40}\b([45][0-9]{2}\b[^\r\n]*)",
    );
    static LINE: OnceLock<Regex> = OnceLock::new();
    let line = re(&LINE, r"(?m)^[ \t]*([45][0-9]{2}[ -][A-Za-z][^\r\n]*)$");
    r.captures(text)
        .or_else(|| line.captures(text))
        .map(|c| c[1].trim().trim_end_matches(['\'', '"']).to_string())
}

fn addresses(text: &str) -> impl Iterator<Item = &str> {
    static R: OnceLock<Regex> = OnceLock::new();
    let r = re(
        &R,
        r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+",
    );
    r.find_iter(text).map(|m| m.as_str().trim_matches('.'))
}

/// Reads a plain-text notice: the first failed address that is not a mail system's own or in
/// `exclude`, and the reply. The action is `Failed` unless the notice only speaks of delay.
pub(super) fn recipient(text: &str, exclude: &[&str]) -> Recipient {
    let lower = text.to_lowercase();
    const DELAY: &[&str] = &[
        "delayed",
        "has not yet been delivered",
        "will be retried",
        "will retry",
        "still trying",
        "temporary failure",
        "temporarily",
    ];
    const PERMANENT: &[&str] = &["permanent", "giving up", "given up", "has failed"];
    let (status, reply) = match full_reply(text) {
        Some((s, r)) => (Some(s), Some(r)),
        None => (status_only(text), basic_reply(text)),
    };
    let code_class = status
        .as_deref()
        .or(reply.as_deref())
        .and_then(|s| s.chars().next());
    let delayed = match code_class {
        Some('4') => !PERMANENT.iter().any(|p| lower.contains(p)),
        Some(_) => false,
        None => {
            DELAY.iter().any(|p| lower.contains(p)) && !PERMANENT.iter().any(|p| lower.contains(p))
        }
    };
    let address = addresses(text)
        .find(|a| {
            let l = a.to_ascii_lowercase();
            let local = l.split('@').next().unwrap_or("");
            !matches!(local, "mailer-daemon" | "postmaster" | "mail-daemon")
                && !exclude.iter().any(|e| e.eq_ignore_ascii_case(a))
        })
        .map(str::to_string);
    Recipient {
        address,
        action: if delayed {
            Action::Delayed
        } else {
            Action::Failed
        },
        status,
        reply,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qmail_notice() {
        let t = "Hi. This is the qmail-send program at mx.example.org.\n\
                 I'm afraid I wasn't able to deliver your message to the following addresses.\n\
                 This is a permanent error; I've given up. Sorry it didn't work out.\n\n\
                 <bob@example.org>:\n192.0.2.7 does not like recipient.\n\
                 Remote host said: 550 5.1.1 <bob@example.org>... User unknown\n\
                 Giving up on 192.0.2.7.\n";
        let r = recipient(t, &[]);
        assert_eq!(r.address.as_deref(), Some("bob@example.org"));
        assert_eq!(r.action, Action::Failed);
        assert_eq!(r.status.as_deref(), Some("5.1.1"));
        assert_eq!(
            r.reply.as_deref(),
            Some("550 5.1.1 <bob@example.org>... User unknown")
        );
    }

    #[test]
    fn exim_notice_without_enhanced_code() {
        let t = "This message was created automatically by mail delivery software.\n\n\
                 A message that you sent could not be delivered to one or more of its\n\
                 recipients. This is a permanent error. The following address(es) failed:\n\n\
                 \x20 carol@example.net\n    host mx.example.net [192.0.2.9]\n\
                 \x20   SMTP error from remote mail server after RCPT TO:<carol@example.net>:\n\
                 \x20   550 No such user here\n";
        let r = recipient(t, &[]);
        assert_eq!(r.address.as_deref(), Some("carol@example.net"));
        assert_eq!(r.action, Action::Failed);
        assert_eq!(r.status, None);
        assert_eq!(r.reply.as_deref(), Some("550 No such user here"));
    }

    #[test]
    fn gmail_and_exchange_notices() {
        let g = "Delivery to the following recipient failed permanently:\n\n     dave@example.com\n\n\
                 Technical details of permanent failure:\nThe email account that you tried to reach \
                 does not exist. 550-5.1.1 The email account that you tried to reach does not exist.\n";
        let r = recipient(g, &[]);
        assert_eq!(r.address.as_deref(), Some("dave@example.com"));
        assert_eq!(r.status.as_deref(), Some("5.1.1"));
        let x = "Delivery has failed to these recipients or groups:\n\nerin@example.com (erin@example.com)\n\
                 The email address you entered couldn't be found.\n\n\
                 Diagnostic information for administrators:\nGenerating server: mx.example.com\n\
                 Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found'\n";
        let r = recipient(x, &["bounces@news.example"]);
        assert_eq!(r.address.as_deref(), Some("erin@example.com"));
        assert_eq!(r.status.as_deref(), Some("5.1.10"));
        assert_eq!(r.action, Action::Failed);
        assert!(r.reply.unwrap().ends_with("Recipient not found"));
    }

    #[test]
    fn delays_are_told_from_failures() {
        let t = "This is the mail system at host relay.example.\n\n####################\n\
                 # THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n\n\
                 Your message could not be delivered for 4 hours.\nIt will be retried until it is 5 days old.\n\n\
                 <frank@example.org>: host mx.example.org said: 450 4.2.0 Greylisted, try later\n";
        let r = recipient(t, &[]);
        assert_eq!(r.action, Action::Delayed);
        assert_eq!(r.status.as_deref(), Some("4.2.0"));
        let r = recipient("Your message has been delayed and will be retried.", &[]);
        assert_eq!(r.action, Action::Delayed);
        assert_eq!(r.address, None);
    }

    #[test]
    fn mail_systems_own_and_excluded_addresses_are_skipped() {
        let t =
            "From MAILER-DAEMON@mx.example: to bounces+abc@news.example, failed: gina@example.org";
        let r = recipient(t, &["bounces+abc@news.example"]);
        assert_eq!(r.address.as_deref(), Some("gina@example.org"));
    }

    #[test]
    fn who_sends_a_notice() {
        assert!(is_bounce(
            Some("MAILER-DAEMON@mx.example"),
            Some("failure notice"),
            false
        ));
        assert!(is_bounce(
            Some("x@y"),
            Some("Undelivered Mail Returned to Sender"),
            true
        ));
        assert!(is_bounce(
            Some("postmaster@outlook.example"),
            Some("Undeliverable: Issue 3"),
            false
        ));
        assert!(!is_bounce(
            Some("alice@example.org"),
            Some("Undeliverable thoughts"),
            false
        ));
        assert!(!is_bounce(
            Some("postmaster@x"),
            Some("Automatic reply: hi"),
            false
        ));
        assert!(is_auto_reply_subject("out of office: back monday"));
        assert!(!is_auto_reply_subject("re: kubernetes in a nutshell"));
    }
}
