//! `techshack inbound`: reads mail that came back after a send (bounces, feedback reports,
//! unsubscribe requests, automatic replies) and applies it to the list.
//!
//! Built for an MTA's pipe: one message on standard input, exit 0 when it was handled or
//! ignored (an unreadable message is a warning, never a bounce loop), 75 when the state is
//! busy or cannot be written (the MTA keeps the message and tries again). `--maildir` and
//! `--mbox` read many messages the same way.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use super::Ctx;
use crate::cli::InboundArgs;
use crate::diag::{self, Exit};
use crate::inbound::{self, source, Action, Envelope, Inbound, Kind, Recipient};
use crate::mail::reply::{self, Enhanced, Phase, Reply};
use crate::mail::verp;
use crate::store::{normalize_address, Act, Applied, Store};
use crate::token::{self, Purpose};

/// The largest message read; a bounce with its original attached is far smaller.
const MAX_MESSAGE: u64 = 32 * 1024 * 1024;

pub fn run(ctx: &Ctx, a: InboundArgs) -> Result<Exit> {
    let h = Handler::new(ctx, &a);
    let mut store = match Store::open_config(&ctx.config.state) {
        Ok(s) => s,
        Err(e) => {
            diag::error(format!(
                "{e:#}: the message is left for the mail system to retry"
            ));
            return Ok(Exit::TempFail);
        }
    };
    let mut tally = Tally::default();
    let exit = if let Some(dir) = &a.maildir {
        maildir(&h, &mut store, dir, &mut tally)?
    } else if let Some(file) = &a.mbox {
        mbox(&h, &mut store, file, &mut tally)?
    } else {
        let mut raw = Vec::new();
        std::io::stdin()
            .take(MAX_MESSAGE + 1)
            .read_to_end(&mut raw)
            .context("reading the message on standard input")?;
        if raw.len() as u64 > MAX_MESSAGE {
            diag::warning(format!(
                "the message is larger than {} MiB: ignored",
                MAX_MESSAGE >> 20
            ));
            tally.add("too large");
            h.keep(&raw);
            Exit::Ok
        } else {
            one(&h, &mut store, &raw, "standard input", &mut tally)
        }
    };
    if !ctx.quiet || exit != Exit::Ok {
        eprintln!("inbound: {}", tally.line());
    }
    Ok(exit)
}

/// Handles one message; a state error is reported and means "try again later".
fn one(h: &Handler, store: &mut Store, raw: &[u8], origin: &str, tally: &mut Tally) -> Exit {
    match h.handle(store, raw) {
        Ok(lines) => {
            for (what, detail) in lines {
                if h.verbose {
                    eprintln!("{origin}: {what}{detail}");
                }
                tally.add(what);
            }
            Exit::Ok
        }
        Err(e) => {
            diag::error(format!(
                "{origin}: {e:#}: the state could not be updated; nothing was lost, read it again later"
            ));
            Exit::TempFail
        }
    }
}

fn maildir(h: &Handler, store: &mut Store, dir: &Path, tally: &mut Tally) -> Result<Exit> {
    for path in source::maildir_pending(dir)? {
        let raw = match std::fs::read(&path) {
            Ok(r) => r,
            // Another reader took it first.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let exit = one(h, store, &raw, &path.display().to_string(), tally);
        if exit != Exit::Ok {
            return Ok(exit);
        }
        source::maildir_mark_seen(dir, &path)?;
    }
    Ok(Exit::Ok)
}

fn mbox(h: &Handler, store: &mut Store, file: &Path, tally: &mut Tally) -> Result<Exit> {
    let meta = std::fs::metadata(file).with_context(|| format!("reading {}", file.display()))?;
    anyhow::ensure!(meta.is_file(), "{} is not a regular file", file.display());
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let messages = source::mbox_messages(&bytes);
    anyhow::ensure!(
        !messages.is_empty() || bytes.is_empty(),
        "{} is not an mbox file: no line starts with `From ` where a message would begin",
        file.display()
    );
    for (i, raw) in messages.iter().enumerate() {
        let exit = one(
            h,
            store,
            raw,
            &format!("{} message {}", file.display(), i + 1),
            tally,
        );
        if exit != Exit::Ok {
            return Ok(exit);
        }
    }
    Ok(Exit::Ok)
}

/// Counts per kind of outcome, for the summary line.
#[derive(Default)]
struct Tally(BTreeMap<&'static str, usize>);

impl Tally {
    fn add(&mut self, what: &'static str) {
        *self.0.entry(what).or_default() += 1;
    }

    fn line(&self) -> String {
        if self.0.is_empty() {
            return "no message".into();
        }
        let parts: Vec<String> = self.0.iter().map(|(k, n)| format!("{n} {k}")).collect();
        parts.join(", ")
    }
}

struct Handler {
    recipient: Option<String>,
    return_path: Option<String>,
    unsubscribe_url: Option<String>,
    unsubscribe_mailto: Option<String>,
    keys: Vec<Vec<u8>>,
    soft_limit: u32,
    soft_window: i64,
    keep: Option<PathBuf>,
    verbose: bool,
}

type Lines = Vec<(&'static str, String)>;

/// One message read, with what identifies it and whom it concerns.
struct Found<'a> {
    /// The message's Message-ID, else a hash of its bytes: applied once.
    key: &'a str,
    msg: &'a Inbound,
    /// The subscriber a verified token names.
    token_address: Option<&'a str>,
    issue: Option<&'a str>,
    now: i64,
}

impl Handler {
    fn new(ctx: &Ctx, a: &InboundArgs) -> Handler {
        let n = ctx.config.email.newsletter().ok();
        Handler {
            recipient: a.recipient.clone().filter(|r| !r.is_empty()),
            unsubscribe_url: n.map(|n| n.unsubscribe_url.to_string()),
            return_path: n.and_then(|n| n.return_path.map(str::to_string)),
            unsubscribe_mailto: n.and_then(|n| n.unsubscribe_mailto.map(str::to_string)),
            keys: ctx.secrets.verification_keys(),
            soft_limit: ctx.config.smtp.soft_bounces,
            soft_window: i64::from(ctx.config.smtp.soft_bounce_days) * 86_400,
            keep: a.keep.clone(),
            verbose: ctx.verbose,
        }
    }

    fn handle(&self, store: &mut Store, raw: &[u8]) -> Result<Lines> {
        let env = Envelope {
            recipient: self.recipient.as_deref(),
            unsubscribe: self.unsubscribe_mailto.as_deref(),
        };
        let Ok(msg) = inbound::read(raw, env) else {
            diag::warning(format!(
                "a message of {} bytes has no header that could be read: ignored{}",
                raw.len(),
                if self.keep.is_some() {
                    " (kept)"
                } else {
                    "; --keep DIR keeps such messages"
                }
            ));
            self.keep(raw);
            return Ok(vec![("unreadable", String::new())]);
        };
        let key = match &msg.message_id {
            Some(id) if !id.trim().is_empty() => format!("id:{}", id.trim()),
            _ => format!("sha256:{:x}", Sha256::digest(raw)),
        };
        let now = chrono::Utc::now().timestamp();
        // A VERP return path names the delivery; else the unsubscribe link of the returned
        // original names the subscriber, and its Message-ID the issue.
        let (token_address, verp_issue) = match self.verp(store, &msg)? {
            Some((address, issue)) => (Some(address), Some(issue)),
            None => (self.token_address(&msg), None),
        };
        let issue = verp_issue.or_else(|| {
            msg.original_message_id
                .as_deref()
                .and_then(issue_of_message_id)
        });
        let f = Found {
            key: &key,
            msg: &msg,
            token_address: token_address.as_deref(),
            issue: issue.as_deref(),
            now,
        };
        let mut lines = Lines::new();
        match &msg.kind {
            Kind::Bounce { recipients, .. } => {
                for r in recipients {
                    lines.push(self.bounce(store, &f, r)?);
                }
                if recipients.is_empty() {
                    lines.push(("bounce naming nobody", String::new()));
                }
            }
            Kind::Complaint {
                feedback_type,
                recipient,
            } => lines.push(self.complaint(store, &f, feedback_type, recipient.as_deref())?),
            Kind::Unsubscribe { asks } => lines.push(self.unsubscribe(store, &f, *asks)?),
            Kind::AutoReply => lines.push(("automatic reply ignored", String::new())),
            Kind::Other => {
                self.keep(raw);
                lines.push(("not understood", String::new()));
            }
        }
        Ok(lines)
    }

    fn complaint(
        &self,
        store: &mut Store,
        f: &Found<'_>,
        feedback_type: &str,
        recipient: Option<&str>,
    ) -> Result<(&'static str, String)> {
        if !matches!(feedback_type, "abuse" | "fraud" | "virus" | "") {
            return Ok(("feedback report ignored", format!(" ({feedback_type})")));
        }
        let who = match f.token_address {
            Some(a) => Some(a.to_string()),
            None => self.trusted(store, recipient)?,
        };
        let reason = format!(
            "complaint ({}) reported by {}",
            if feedback_type.is_empty() {
                "abuse"
            } else {
                feedback_type
            },
            f.msg.from.as_deref().unwrap_or("an unnamed sender")
        );
        self.apply(
            store,
            f,
            who,
            f.issue,
            Act::Complaint { reason: &reason },
            "complaint",
        )
    }

    fn unsubscribe(
        &self,
        store: &mut Store,
        f: &Found<'_>,
        asks: bool,
    ) -> Result<(&'static str, String)> {
        let from = f.msg.from.as_deref();
        let who = match f
            .token_address
            .map(str::to_string)
            .or_else(|| self.subject_token(f.msg))
        {
            Some(a) => Some(a),
            None if asks || self.to_unsubscribe_address(f.msg) => {
                from.and_then(|a| normalize_address(a).ok())
            }
            None => None,
        };
        let reason = format!(
            "unsubscribe mailed from {}",
            from.unwrap_or("an unnamed sender")
        );
        self.apply(
            store,
            f,
            who,
            None,
            Act::Unsubscribe { reason: &reason },
            "unsubscribe",
        )
    }

    fn bounce(
        &self,
        store: &mut Store,
        f: &Found<'_>,
        r: &Recipient,
    ) -> Result<(&'static str, String)> {
        if !matches!(r.action, Action::Failed | Action::Delayed) {
            return Ok(("delivery report ignored", format!(" ({:?})", r.action)));
        }
        // With one recipient, the token names it; a report listing several is matched by the
        // addresses it names.
        let who = match (f.token_address, r.address.as_deref()) {
            (Some(t), Some(a)) if !t.eq_ignore_ascii_case(a) && msg_recipients(f.msg) > 1 => {
                self.trusted(store, Some(a))?
            }
            (Some(t), _) => Some(t.to_string()),
            (None, a) => self.trusted(store, a)?,
        };
        let reply_text = r
            .reply
            .clone()
            .or_else(|| r.status.clone())
            .unwrap_or_else(|| "no reply given".into());
        let reply_text = reply::clean(&reply_text, &[]);
        let verdict = verdict(r);
        let act = if r.action == Action::Failed && verdict.bounce {
            Act::HardBounce { reply: &reply_text }
        } else if matches!(
            verdict.fault,
            reply::Fault::Recipient
                | reply::Fault::Greylist
                | reply::Fault::Rate
                | reply::Fault::Server
        ) {
            Act::SoftBounce {
                reply: &reply_text,
                limit: self.soft_limit,
                window_secs: self.soft_window,
            }
        } else {
            store.note_inbound(f.key, f.now)?;
            return Ok((
                "bounce not the recipient's",
                format!(": {reply_text} ({})", verdict.fault.hint()),
            ));
        };
        let kind = if matches!(act, Act::HardBounce { .. }) {
            "bounce"
        } else {
            "soft bounce"
        };
        self.apply(store, f, who, f.issue, act, kind)
    }

    fn apply(
        &self,
        store: &mut Store,
        f: &Found<'_>,
        who: Option<String>,
        issue: Option<&str>,
        act: Act<'_>,
        kind: &'static str,
    ) -> Result<(&'static str, String)> {
        let Some(address) = who else {
            store.note_inbound(f.key, f.now)?;
            return Ok(("naming nobody on the list", format!(" ({kind})")));
        };
        Ok(
            match store.apply_inbound(f.key, &address, issue, act, f.now)? {
                Applied::AlreadyHandled => ("already handled", format!(": {address}")),
                Applied::NotOnList => ("naming nobody on the list", format!(": {address}")),
                Applied::Changed { to, .. } => (
                    match kind {
                        "complaint" => "complaint",
                        "unsubscribe" => "unsubscribe",
                        _ => "bounce",
                    },
                    format!(": {address} is now {to}"),
                ),
                Applied::Counted { count } => {
                    ("soft bounce", format!(": {address}, {count} so far"))
                }
                Applied::Unchanged(s) => ("no change", format!(": {address} is {s}")),
            },
        )
    }

    /// An address named in a report is trusted only if it was sent an issue, and never when
    /// VERP is on (`email.return_path`): then every genuine report carries a token, and
    /// anyone can mail a report naming anybody.
    fn trusted(&self, store: &Store, address: Option<&str>) -> Result<Option<String>> {
        let Some(a) = address.and_then(|a| normalize_address(a).ok()) else {
            return Ok(None);
        };
        if self.return_path.is_some() {
            return Ok(None);
        }
        Ok(store.was_sent_to(&a)?.then_some(a))
    }

    /// The delivery a VERP return path in the message names, checked: (address, issue).
    fn verp(&self, store: &Store, msg: &Inbound) -> Result<Option<(String, String)>> {
        let Some(pattern) = self.return_path.as_deref() else {
            return Ok(None);
        };
        for c in &msg.token_carriers {
            let Some(t) = inbound::token_in(pattern, c) else {
                continue;
            };
            let Some(id) = verp::id_of(t) else { continue };
            if let Some((issue, address)) = store.delivery(id)? {
                if verp::verify(&self.keys, t, id, &address) {
                    return Ok(Some((address, issue)));
                }
            }
        }
        Ok(None)
    }

    /// The subscriber named by a verified token in the message (the unsubscribe link of the
    /// returned original), if any.
    fn token_address(&self, msg: &Inbound) -> Option<String> {
        let pattern = self.unsubscribe_url.as_deref()?;
        msg.token_carriers.iter().find_map(|c| {
            let t = inbound::token_in(pattern, c)?;
            let t = t.split(['&', '#']).next().unwrap_or(t);
            self.keys
                .iter()
                .find_map(|k| token::verify(k, Purpose::Unsubscribe, t))
        })
    }

    /// The subscriber named by the token in the subject of a mailed unsubscribe: the
    /// `mailto:` of `List-Unsubscribe` sets the subject to `unsubscribe TOKEN`.
    fn subject_token(&self, msg: &Inbound) -> Option<String> {
        let subject = msg.subject.as_deref()?;
        subject.split_whitespace().find_map(|w| {
            let w = w.trim_matches(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)));
            (w.len() <= 600).then_some(())?;
            self.keys
                .iter()
                .find_map(|k| token::verify(k, Purpose::Unsubscribe, w))
        })
    }

    fn to_unsubscribe_address(&self, msg: &Inbound) -> bool {
        self.unsubscribe_mailto.as_deref().is_some_and(|u| {
            msg.token_carriers
                .iter()
                .any(|c| inbound::matches_pattern(u, c))
        })
    }

    /// Keeps a copy of a message that was not understood, when `--keep` says where.
    fn keep(&self, raw: &[u8]) {
        let Some(dir) = &self.keep else { return };
        let name = format!(
            "{}.{:.16x}.eml",
            chrono::Utc::now().format("%Y%m%dT%H%M%S"),
            Sha256::digest(raw)
        );
        let written = std::fs::create_dir_all(dir)
            .with_context(|| format!("creating {}", dir.display()))
            .and_then(|()| super::output::write(&dir.join(&name), raw));
        if let Err(e) = written {
            diag::warning(format!(
                "cannot keep the message in {}: {e:#}",
                dir.display()
            ));
        }
    }
}

fn msg_recipients(msg: &Inbound) -> usize {
    match &msg.kind {
        Kind::Bounce { recipients, .. } => recipients.len(),
        _ => 0,
    }
}

/// Whose fault a reported failure is, through the table the sender uses.
fn verdict(r: &Recipient) -> reply::Verdict {
    let status = r.status.as_deref().and_then(Enhanced::parse);
    let mut rep = match r.reply.as_deref() {
        Some(text) => Reply::parse_line(text, Phase::Report),
        None => Reply {
            code: None,
            enhanced: status,
            text: r.status.as_deref().unwrap_or(""),
            phase: Phase::Report,
        },
    };
    if rep.enhanced.is_none() {
        rep.enhanced = status;
    }
    if rep.code.is_none() && rep.enhanced.is_none() {
        // A failure with neither code: the report's action is all there is.
        rep.enhanced = Enhanced::parse(if r.action == Action::Failed {
            "5.0.0"
        } else {
            "4.0.0"
        });
    }
    reply::classify(&rep)
}

/// The issue a message of ours was for: the left part of its Message-ID,
/// `<slug.hash@domain>`.
fn issue_of_message_id(id: &str) -> Option<String> {
    let id = id.trim().trim_start_matches('<').trim_end_matches('>');
    let (left, _) = id.split_once('@')?;
    let (slug, hash) = left.rsplit_once('.')?;
    (hash.len() == 24 && hash.bytes().all(|b| b.is_ascii_hexdigit()) && !slug.is_empty())
        .then(|| slug.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_are_read_from_our_message_ids_only() {
        assert_eq!(
            issue_of_message_id("<2026-11-20.0123456789abcdef01234567@example.org>").as_deref(),
            Some("2026-11-20")
        );
        assert_eq!(issue_of_message_id("i3.bob@news.example"), None);
        assert_eq!(issue_of_message_id("<x@y>"), None);
    }

    #[test]
    fn reported_failures_are_judged_by_the_senders_table() {
        let r = |action, status: &str, reply: Option<&str>| Recipient {
            address: None,
            action,
            status: Some(status.into()),
            reply: reply.map(Into::into),
        };
        let v = verdict(&r(
            Action::Failed,
            "5.1.1",
            Some("550 5.1.1 <b@x>: User unknown"),
        ));
        assert!(v.bounce);
        let v = verdict(&r(
            Action::Failed,
            "5.1.0",
            Some("550 5.1.0 <news@x>: Sender address rejected"),
        ));
        assert!(!v.bounce);
        let v = verdict(&r(Action::Failed, "4.2.0", Some("450 4.2.0 Greylisted")));
        assert!(!v.bounce && !v.permanent);
        let v = verdict(&r(Action::Failed, "5.2.1", None));
        assert!(v.bounce, "{v:?}");
    }
}
