//! `[email]` once parsed: mailboxes, the unsubscribe URL template, the List-Id and the DKIM
//! key, each checked once when the config loads.
//!
//! A site that only publishes feeds need not set any of it, so a bad value is kept as a
//! [`Problem`] and reported by the command that mails (`check`, `preview`, `send`, `serve`),
//! in the order those commands always reported them.

use std::fmt;
use std::sync::Arc;

use crate::dkim::Signer as DkimSigner;
use anyhow::{bail, Context as _, Result};
use lettre::message::Mailbox;

use super::raw::{DkimConfig, EmailConfig};

/// The headers DKIM signs (SPEC "Email").
pub const DKIM_HEADERS: [&str; 11] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Id",
    "Feedback-ID",
    "MIME-Version",
    "Content-Type",
];

/// A setting that did not check out: the error with its causes, kept until a command needs
/// the setting. Cloning keeps the whole chain, so the message reads as if just made.
#[derive(Clone)]
pub struct Problem(Arc<Vec<String>>);

impl Problem {
    pub(crate) fn new(e: &anyhow::Error) -> Problem {
        Problem(Arc::new(e.chain().map(|c| c.to_string()).collect()))
    }

    /// The error again, with the same causes.
    pub fn error(&self) -> anyhow::Error {
        let mut levels = self.0.iter().rev();
        let root = levels.next().cloned().unwrap_or_default();
        levels.fold(anyhow::anyhow!(root), |e, c| e.context(c.clone()))
    }
}

impl fmt::Debug for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(": "))
    }
}

/// A parsed value, or why it could not be.
pub type Checked<T> = std::result::Result<T, Problem>;

pub(crate) fn checked<T>(r: Result<T>) -> Checked<T> {
    r.map_err(|e| Problem::new(&e))
}

/// The value of a checked setting, or its error.
pub(crate) fn get<T>(c: &Checked<T>) -> Result<&T> {
    c.as_ref().map_err(Problem::error)
}

/// The loaded DKIM signer (lettre's is neither `Clone` nor cheap to rebuild).
#[derive(Clone)]
pub struct Dkim(Arc<DkimSigner>);

impl Dkim {
    pub fn signer(&self) -> &DkimSigner {
        &self.0
    }
}

impl fmt::Debug for Dkim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Dkim(..)")
    }
}

/// `[email]`, read through [`Email::newsletter`] and [`Email::confirmation_sender`], which
/// raise the first problem; `None` where a key is not set.
#[derive(Debug, Clone)]
pub struct Email {
    from: Option<Checked<Mailbox>>,
    reply_to: Option<Checked<Mailbox>>,
    /// With its `{token}`, https; an error when not set, since every mail needs it.
    pub unsubscribe_url: Checked<String>,
    /// The address, `mailto:` removed.
    pub unsubscribe_mailto: Option<Checked<String>>,
    /// `email.return_path`, with its `{token}` in the local part.
    pub return_path: Option<Checked<String>>,
    /// The whole `List-Id` value: `Site Title <list.id>`.
    pub list_id: Option<Checked<String>>,
    pub dkim: Option<Checked<Dkim>>,
}

/// What every newsletter message needs from `[email]`.
#[derive(Debug, Clone, Copy)]
pub struct Newsletter<'a> {
    pub from: &'a Mailbox,
    pub reply_to: Option<&'a Mailbox>,
    pub unsubscribe_url: &'a str,
    pub unsubscribe_mailto: Option<&'a str>,
    pub return_path: Option<&'a str>,
    pub list_id: Option<&'a str>,
    pub dkim: Option<&'a Dkim>,
}

impl Email {
    pub(super) fn new(raw: &EmailConfig, site_title: &str) -> Email {
        Email {
            from: raw
                .from
                .as_deref()
                .map(|r| checked(mailbox("email.from", r))),
            reply_to: raw
                .reply_to
                .as_deref()
                .map(|r| checked(mailbox("email.reply_to", r))),
            unsubscribe_url: checked(check_unsubscribe_url(raw.unsubscribe_url.as_deref())),
            unsubscribe_mailto: raw
                .unsubscribe_mailto
                .as_deref()
                .map(|m| checked(unsubscribe_mailto(m))),
            return_path: raw.return_path.as_deref().map(|r| checked(return_path(r))),
            list_id: raw
                .list_id
                .as_deref()
                .map(|id| checked(list_id_value(site_title, id))),
            dkim: raw.dkim.as_ref().map(|d| checked(load_dkim(d))),
        }
    }

    /// Whether the newsletter is mailed at all (`email.from` is set).
    pub fn is_mailed(&self) -> bool {
        self.from.is_some()
    }

    /// The settings of a newsletter message, or the first one missing or wrong.
    pub fn newsletter(&self) -> Result<Newsletter<'_>> {
        let from = self.from.as_ref().context(
            "email.from is not set: add e.g. from = \"Name <news@example.com>\" under [email]",
        )?;
        Ok(Newsletter {
            from: get(from)?,
            reply_to: self.reply_to.as_ref().map(get).transpose()?,
            unsubscribe_url: get(&self.unsubscribe_url)?,
            unsubscribe_mailto: self
                .unsubscribe_mailto
                .as_ref()
                .map(get)
                .transpose()?
                .map(String::as_str),
            return_path: self
                .return_path
                .as_ref()
                .map(get)
                .transpose()?
                .map(String::as_str),
            list_id: self
                .list_id
                .as_ref()
                .map(get)
                .transpose()?
                .map(String::as_str),
            dkim: self.dkim.as_ref().map(get).transpose()?,
        })
    }

    /// The sender and reply-to of `serve`'s confirmation mails.
    pub fn confirmation_sender(&self) -> Result<(&Mailbox, Option<&Mailbox>)> {
        let from = self.from.as_ref().context(
            "email.from is not set: the confirmation mails of `serve` need a sender address",
        )?;
        Ok((get(from)?, self.reply_to.as_ref().map(get).transpose()?))
    }
}

fn mailbox(key: &str, raw: &str) -> Result<Mailbox> {
    raw.parse()
        .with_context(|| format!("{key} `{raw}` is not a valid mailbox"))
}

fn unsubscribe_mailto(raw: &str) -> Result<String> {
    let m = raw.strip_prefix("mailto:").unwrap_or(raw);
    m.parse::<lettre::Address>()
        .with_context(|| format!("email.unsubscribe_mailto `{m}` is not an email address"))?;
    Ok(m.to_string())
}

/// `email.return_path`: an address with `{token}` in its local part, which stays within 64
/// octets with the longest token.
fn return_path(raw: &str) -> Result<String> {
    let Some((local, _)) = raw.rsplit_once('@') else {
        bail!("email.return_path `{raw}` is not an email address");
    };
    if !local.contains("{token}") || raw.matches("{token}").count() != 1 {
        bail!("email.return_path `{raw}` needs one `{{token}}` in its local part (before the @), e.g. bounces+{{token}}@example.com");
    }
    let room = 64usize.saturating_sub(local.len() - "{token}".len());
    if room < crate::mail::verp::MAX_TOKEN {
        bail!(
            "email.return_path `{raw}`: its local part leaves {room} octets for the token, which needs {}: shorten the part before the @",
            crate::mail::verp::MAX_TOKEN
        );
    }
    let longest = "9".repeat(crate::mail::verp::MAX_TOKEN);
    let probe = raw.replace("{token}", &longest);
    probe
        .parse::<lettre::Address>()
        .with_context(|| format!("email.return_path `{raw}` is not an email address"))?;
    Ok(raw.to_string())
}

/// `email.unsubscribe_url`: set, with `{token}`, an absolute https URL without spaces.
pub fn check_unsubscribe_url(raw: Option<&str>) -> Result<String> {
    let raw = raw.context(
        "email.unsubscribe_url is not set: mail needs a one-click unsubscribe link, e.g. \
         unsubscribe_url = \"https://example.com/unsubscribe?token={token}\" under [email]",
    )?;
    if !raw.contains("{token}") {
        bail!(
            "email.unsubscribe_url `{raw}` has no `{{token}}`: add it where the signed token goes"
        );
    }
    let probe = raw.replace("{token}", "t");
    let u = url::Url::parse(&probe)
        .with_context(|| format!("email.unsubscribe_url `{raw}` is not an absolute URL"))?;
    if u.scheme() != "https" {
        bail!("email.unsubscribe_url `{raw}` must be an https URL (one-click unsubscribe requires it)");
    }
    if raw
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '<' || c == '>')
    {
        bail!("email.unsubscribe_url `{raw}` contains spaces or angle brackets");
    }
    Ok(raw.to_string())
}

/// `List-Id: Site Title <list.id>` (RFC 2919); the phrase keeps letters, digits and spaces.
fn list_id_value(title: &str, id: &str) -> Result<String> {
    let ok = !id.is_empty()
        && id.contains('.')
        && id
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if !ok {
        bail!("email.list_id `{id}` must be a dotted name such as `news.example.com`");
    }
    let phrase: String = title
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    let phrase = one_line(&phrase);
    Ok(if phrase.is_empty() {
        format!("<{id}>")
    } else {
        format!("{phrase} <{id}>")
    })
}

fn load_dkim(d: &DkimConfig) -> Result<Dkim> {
    let key = std::fs::read_to_string(&d.key_file).with_context(|| {
        format!(
            "reading the DKIM key {} (email.dkim.key_file)",
            d.key_file.display()
        )
    })?;
    let signer = DkimSigner::new(&key, &d.domain, &d.selector, &DKIM_HEADERS)
        .map_err(|e| anyhow::anyhow!("DKIM key {}: {e:#}", d.key_file.display()))?;
    Ok(Dkim(Arc::new(signer)))
}

/// Control characters (CR, LF, tabs...) become spaces; runs of spaces collapse.
pub(crate) fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        out.push(c);
    }
    out.trim_end().to_string()
}
