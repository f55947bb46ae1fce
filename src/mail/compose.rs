//! Composing one `lettre::Message` per recipient from an issue.
//!
//! Everything that is the same for every recipient happens once, in [`Composer::new`]: the
//! templates are rendered with placeholder recipient values, the HTML is CSS-inlined, and both
//! bodies are cut into literal pieces and recipient slots. [`Composer::message`] only joins the
//! pieces with one recipient's values (escaped for HTML) and builds the headers, so it costs
//! microseconds, not a template render or a CSS inlining per subscriber.
//!
//! `Date` is the time the composer was made (the send's start), so an issue mailed a week late
//! is not sorted a week down the inbox; [`Composer::with_date`] fixes it (preview uses the issue's
//! date, which makes its output byte-identical between runs).

use std::time::SystemTime;

use anyhow::{bail, Context as _, Result};
use chrono::{DateTime, FixedOffset};
use lettre::message::header::{
    ContentTransferEncoding, ContentType, Header, HeaderName, HeaderValue, MIME_VERSION_1_0,
};
use lettre::message::{Body, Mailbox};
use lettre::Message;
use sha2::{Digest, Sha256};

use crate::config::mail::{one_line, Dkim};
use crate::config::Config;
pub use crate::config::DKIM_HEADERS;
use crate::html::escape as escape_html;
use crate::model::Issue;
use crate::store::Address;
use crate::templates::{issue_context, SiteCtx, Templates};
use crate::token::{hex, sign, Purpose};

/// Who a message goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub address: Address,
    pub name: Option<String>,
}

#[cfg(test)]
use crate::markers::slot::CLOSE as MARK_END;
use crate::markers::slot::{
    ADDRESS as PH_ADDRESS, NAME as PH_NAME, OPEN as MARK, PREFIX as SLOT_PREFIX,
    UNSUBSCRIBE as PH_UNSUBSCRIBE,
};

/// Gmail shows only the first 102 KB of a message's HTML.
pub const GMAIL_CLIP_BYTES: usize = 102 * 1024;

fn has_marks(s: &str) -> bool {
    crate::markers::slot::has(s)
}

/// Whether any text of the issue that a template can show holds a slot marker.
fn mentions_marks(issue: &Issue) -> bool {
    has_marks(&issue.title)
        || issue.description.as_deref().is_some_and(has_marks)
        || has_marks(&issue.html)
        || issue.text.as_deref().is_some_and(has_marks)
        || issue.tags.iter().any(|t| has_marks(t))
        || issue.items.iter().any(|it| {
            has_marks(&it.title)
                || has_marks(&it.html)
                || it.text.as_deref().is_some_and(has_marks)
                || it
                    .links
                    .iter()
                    .any(|l| has_marks(&l.text) || has_marks(&l.url))
        })
}

/// The issue with every slot marker removed from its text.
fn without_marks(issue: &Issue) -> Issue {
    let clean = crate::markers::slot::strip;
    let mut i = issue.clone();
    clean(&mut i.title);
    if let Some(d) = i.description.as_mut() {
        clean(d);
    }
    clean(&mut i.html);
    i.page_html.iter_mut().for_each(clean);
    i.text.iter_mut().for_each(clean);
    i.tags.iter_mut().for_each(clean);
    for it in &mut i.items {
        clean(&mut it.title);
        clean(&mut it.html);
        it.text.iter_mut().for_each(clean);
        for l in &mut it.links {
            clean(&mut l.text);
            clean(&mut l.url);
        }
    }
    i
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Address,
    Name,
    Unsubscribe,
}

/// A rendered body cut at the recipient slots.
#[derive(Debug, Clone)]
struct Filled {
    text: String,
    /// Byte ranges of `text` and the slots between them, in order.
    parts: Vec<Part>,
    /// The same pieces, quoted-printable encoded once. A soft line break closes each piece
    /// before a slot and each slot value, so every piece starts at column 0 whatever the
    /// recipient's values are: the encoding of the literal pieces never changes.
    encoded: Vec<EncPart>,
    encoded_len: usize,
}

#[derive(Debug, Clone)]
enum EncPart {
    Lit(Vec<u8>),
    Slot(Slot),
}

#[derive(Debug, Clone)]
enum Part {
    Lit(usize, usize),
    Slot(Slot),
}

impl Filled {
    fn parse(text: String, what: &str) -> Result<Filled> {
        let mut parts = Vec::new();
        let mut lit_start = 0;
        let mut i = 0;
        while let Some(off) = text[i..].find(MARK) {
            let at = i + off;
            let rest = &text[at..];
            let found = [
                (PH_ADDRESS, Slot::Address),
                (PH_NAME, Slot::Name),
                (PH_UNSUBSCRIBE, Slot::Unsubscribe),
            ]
            .into_iter()
            .find(|(ph, _)| rest.starts_with(ph));
            match found {
                Some((ph, slot)) => {
                    if at > lit_start {
                        parts.push(Part::Lit(lit_start, at));
                    }
                    parts.push(Part::Slot(slot));
                    i = at + ph.len();
                    lit_start = i;
                }
                None if rest.starts_with(SLOT_PREFIX) => bail!(
                    "{what}: a filter changed a `recipient` value; use recipient.address, \
                     recipient.name and recipient.unsubscribe_url as they are"
                ),
                None => i = at + MARK.len_utf8(),
            }
        }
        if lit_start < text.len() {
            parts.push(Part::Lit(lit_start, text.len()));
        }
        let mut encoded = Vec::with_capacity(parts.len());
        for (i, p) in parts.iter().enumerate() {
            match *p {
                Part::Lit(a, b) => {
                    let mut enc = quoted_printable::encode(crlf(&text[a..b]));
                    if i + 1 < parts.len() && !enc.ends_with(b"\r\n") {
                        enc.extend_from_slice(b"=\r\n");
                    }
                    encoded.push(EncPart::Lit(enc));
                }
                Part::Slot(s) => encoded.push(EncPart::Slot(s)),
            }
        }
        let encoded_len = encoded
            .iter()
            .map(|p| match p {
                EncPart::Lit(v) => v.len(),
                EncPart::Slot(_) => 0,
            })
            .sum();
        Ok(Filled {
            text,
            parts,
            encoded,
            encoded_len,
        })
    }

    /// The quoted-printable body for one recipient, appended to `out`.
    fn fill_encoded(&self, values: &Values<'_>, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len + 512);
        let last = self.encoded.len().saturating_sub(1);
        for (i, p) in self.encoded.iter().enumerate() {
            match p {
                EncPart::Lit(v) => out.extend_from_slice(v),
                EncPart::Slot(slot) => {
                    let v = match slot {
                        Slot::Address => values.address,
                        Slot::Name => values.name,
                        Slot::Unsubscribe => values.unsubscribe,
                    };
                    out.extend_from_slice(&quoted_printable::encode(v));
                    if i < last {
                        out.extend_from_slice(b"=\r\n");
                    }
                }
            }
        }
        if !out.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
    }

    fn has(&self, slot: Slot) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Slot(s) if *s == slot))
    }

    fn fill(&self, values: &Values<'_>) -> String {
        let mut out = String::with_capacity(self.text.len() + 256);
        for p in &self.parts {
            match *p {
                Part::Lit(a, b) => out.push_str(&self.text[a..b]),
                Part::Slot(Slot::Address) => out.push_str(values.address),
                Part::Slot(Slot::Name) => out.push_str(values.name),
                Part::Slot(Slot::Unsubscribe) => out.push_str(values.unsubscribe),
            }
        }
        out
    }
}

/// One recipient's values, cleaned, and the token signed once.
struct RecipientValues {
    address: String,
    name: Option<String>,
    has_name: bool,
    token: String,
    unsubscribe: String,
    html_address: String,
    html_name: String,
    html_unsubscribe: String,
}

impl RecipientValues {
    fn new(c: &Composer, r: &Recipient) -> RecipientValues {
        let address = one_line(&r.address);
        let name = clean_name(r.name.as_deref());
        let token = sign(&c.secret, Purpose::Unsubscribe, &address);
        let unsubscribe = c.unsubscribe_url.replace("{token}", &token);
        RecipientValues {
            html_address: escape_html(&address).into_owned(),
            html_name: escape_html(name.as_deref().unwrap_or("")).into_owned(),
            html_unsubscribe: escape_html(&unsubscribe).into_owned(),
            has_name: name.is_some(),
            address,
            name,
            token,
            unsubscribe,
        }
    }

    fn html(&self) -> Values<'_> {
        Values {
            address: &self.html_address,
            name: &self.html_name,
            unsubscribe: &self.html_unsubscribe,
        }
    }

    fn text(&self) -> Values<'_> {
        Values {
            address: &self.address,
            name: self.name.as_deref().unwrap_or(""),
            unsubscribe: &self.unsubscribe,
        }
    }
}

struct Values<'a> {
    address: &'a str,
    name: &'a str,
    unsubscribe: &'a str,
}

/// The two renderings of a body: for a recipient with a name, and without one (templates may
/// branch on `recipient.name`). Equal when the template does not use the name.
#[derive(Debug, Clone)]
struct Bodies {
    named: Filled,
    unnamed: Option<Filled>,
}

impl Bodies {
    fn pick(&self, has_name: bool) -> &Filled {
        match (&self.unnamed, has_name) {
            (Some(u), false) => u,
            _ => &self.named,
        }
    }
}

/// Everything per issue done once; `message` only fills in a recipient.
pub struct Composer {
    from: Mailbox,
    reply_to: Option<Mailbox>,
    subject: String,
    list_id: Option<String>,
    unsubscribe_url: String,
    unsubscribe_mailto: Option<String>,
    secret: Vec<u8>,
    domain: String,
    msgid_left: String,
    issue_id: String,
    date: SystemTime,
    html: Bodies,
    text: Bodies,
    dkim: Option<Dkim>,
}

impl Composer {
    /// Renders the issue's email once (templates, CSS inlining).
    pub fn new(config: &Config, issue: &Issue, secret: &[u8]) -> Result<Composer> {
        let templates = Templates::load(config)?;
        Self::with_templates(config, &templates, issue, secret)
    }

    /// As [`Composer::new`], with templates already loaded.
    pub fn with_templates(
        config: &Config,
        templates: &Templates,
        issue: &Issue,
        secret: &[u8],
    ) -> Result<Composer> {
        let email = config.email.newsletter()?;
        // The slot markers are private-use characters; an issue that holds them (an icon-font
        // glyph pasted from a web page) loses them here, so no text of an issue can pass for
        // a recipient slot.
        let scrubbed;
        let issue = if mentions_marks(issue) {
            scrubbed = without_marks(issue);
            &scrubbed
        } else {
            issue
        };
        let (html, text) = render_bodies(config, templates, issue)?;
        Ok(Composer {
            domain: email.from.email.domain().to_string(),
            from: email.from.clone(),
            reply_to: email.reply_to.cloned(),
            subject: one_line(&issue.title),
            list_id: email.list_id.map(str::to_string),
            unsubscribe_url: email.unsubscribe_url.to_string(),
            unsubscribe_mailto: email.unsubscribe_mailto.map(str::to_string),
            secret: secret.to_vec(),
            msgid_left: msgid_part(&issue.slug),
            issue_id: issue.id.clone(),
            date: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(d.as_secs()))
                .unwrap_or(SystemTime::UNIX_EPOCH),
            html,
            text,
            dkim: email.dkim.cloned(),
        })
    }

    /// Sets the `Date` of every message (preview uses the issue's date).
    pub fn with_date(mut self, date: DateTime<FixedOffset>) -> Composer {
        let secs = date.timestamp();
        self.date = if secs >= 0 {
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64)
        } else {
            SystemTime::UNIX_EPOCH
        };
        self
    }

    /// `Feedback-ID` for the feedback loops of mailbox providers (Gmail's): the issue, the
    /// list, the sending program and the sender's domain, colon-separated, so complaints are
    /// counted per issue and per list.
    fn feedback_id(&self) -> String {
        let list = self
            .list_id
            .as_deref()
            .and_then(|v| v.rsplit_once('<'))
            .map(|(_, id)| id.trim_end_matches('>'))
            .unwrap_or(&self.domain);
        let part = |s: &str| -> String {
            s.chars()
                .filter(|c| c.is_ascii_graphic() && *c != ':')
                .collect()
        };
        format!(
            "{}:{}:techshack:{}",
            part(&self.msgid_left),
            part(list),
            part(&self.domain)
        )
    }

    /// The deterministic `Message-ID` of this issue for `address`, with angle brackets.
    pub fn message_id(&self, address: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.issue_id.as_bytes());
        h.update([0]);
        h.update(address.to_ascii_lowercase().as_bytes());
        let d = h.finalize();
        format!("<{}.{}@{}>", self.msgid_left, hex(&d[..12]), self.domain)
    }

    /// The MIME boundary of the message to `address`: fixed per issue and recipient, and
    /// starting with `=_`, which quoted-printable and base64 parts cannot contain.
    fn boundary(&self, address: &str) -> String {
        let mut h = Sha256::new();
        h.update(b"boundary\0");
        h.update(self.issue_id.as_bytes());
        h.update([0]);
        h.update(address.as_bytes());
        let d = h.finalize();
        format!("=_{}", hex(&d[..16]))
    }

    /// The HTML body for one recipient.
    pub fn html(&self, r: &Recipient) -> String {
        let v = RecipientValues::new(self, r);
        self.html.pick(v.has_name).fill(&v.html())
    }

    /// A warning when the HTML body is over the size at which Gmail cuts a message short and
    /// hides the rest (the unsubscribe footer included) behind "View entire message".
    pub fn size_warning(&self) -> Option<String> {
        let sample = Recipient {
            address: Address::unchecked("subscriber@example.com".into()),
            name: Some("Subscriber".into()),
        };
        let len = self.html(&sample).len();
        (len > GMAIL_CLIP_BYTES).then(|| {
            format!(
                "the email's HTML is {} KB, over the {} KB at which Gmail clips a message and hides its end, unsubscribe link included: split the issue or shorten it",
                len / 1024,
                GMAIL_CLIP_BYTES / 1024
            )
        })
    }

    /// The plain-text body for one recipient.
    pub fn text(&self, r: &Recipient) -> String {
        let v = RecipientValues::new(self, r);
        self.text.pick(v.has_name).fill(&v.text())
    }

    /// The `multipart/alternative` body for one recipient: text, then HTML, both
    /// quoted-printable, so no line on the wire is longer than 76 bytes.
    fn multipart_body(&self, v: &RecipientValues, boundary: &str) -> Vec<u8> {
        let text = self.text.pick(v.has_name);
        let html = self.html.pick(v.has_name);
        let mut out = Vec::with_capacity(text.encoded_len + html.encoded_len + 1024);
        for (ctype, body, values) in [
            ("text/plain", text, v.text()),
            ("text/html", html, v.html()),
        ] {
            out.extend_from_slice(b"--");
            out.extend_from_slice(boundary.as_bytes());
            out.extend_from_slice(b"\r\nContent-Type: ");
            out.extend_from_slice(ctype.as_bytes());
            out.extend_from_slice(
                b"; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n",
            );
            body.fill_encoded(&values, &mut out);
        }
        out.extend_from_slice(b"--");
        out.extend_from_slice(boundary.as_bytes());
        out.extend_from_slice(b"--\r\n");
        out
    }

    /// The complete message for one recipient.
    pub fn message(&self, r: &Recipient) -> Result<Message> {
        let address: lettre::Address = r.address.trim().parse().with_context(|| {
            format!(
                "recipient `{}` is not a valid email address",
                r.address.escape_debug()
            )
        })?;
        let recipient = Recipient {
            address: Address::unchecked(address.to_string()),
            name: r.name.clone(),
        };
        let v = RecipientValues::new(self, &recipient);
        let mut list_unsub = format!("<{}>", v.unsubscribe);
        if let Some(m) = &self.unsubscribe_mailto {
            list_unsub.push_str(&format!(", <mailto:{m}?subject=unsubscribe%20{}>", v.token));
        }
        // The envelope lettre would derive from From and To, given so it does not parse
        // them back out of the headers.
        let envelope =
            lettre::address::Envelope::new(Some(self.from.email.clone()), vec![address.clone()])
                .context("the message's envelope")?;
        let mut b = Message::builder()
            .envelope(envelope)
            .from(self.from.clone())
            .to(Mailbox::new(v.name.clone(), address.clone()))
            .subject(self.subject.clone())
            .date(self.date)
            .message_id(Some(self.message_id(address.as_ref())))
            .header(ListUnsubscribe(list_unsub))
            .header(ListUnsubscribePost);
        if let Some(rt) = &self.reply_to {
            b = b.reply_to(rt.clone());
        }
        if let Some(id) = &self.list_id {
            b = b.header(ListId(id.clone()));
        }
        b = b.header(FeedbackId(self.feedback_id()));
        // The multipart body is written here and handed to the message as its body, so the
        // top-level Content-Type is one of the message's own headers: lettre's DKIM signer
        // only sees those, and SPEC's list of signed headers includes Content-Type.
        let boundary = self.boundary(address.as_ref());
        let body = self.multipart_body(&v, &boundary);
        let content_type =
            ContentType::parse(&format!("multipart/alternative; boundary=\"{boundary}\""))
                .context("the multipart Content-Type")?;
        let msg = b
            .header(MIME_VERSION_1_0)
            .header(content_type)
            .body(Body::dangerous_pre_encoded(
                body,
                ContentTransferEncoding::SevenBit,
            ))
            .context("building the message")?;
        Ok(msg)
    }

    /// The envelope and the message as it goes on the wire (CRLF line ends), DKIM-signed when
    /// `[email.dkim]` is set, with `t=` the message's `Date` (so a preview is reproducible).
    pub fn wire(&self, r: &Recipient) -> Result<(lettre::address::Envelope, Vec<u8>)> {
        let address = r.address.as_str();
        if address
            .rsplit_once('@')
            .is_some_and(|(_, d)| d.starts_with('['))
        {
            anyhow::bail!(
                "`{address}` has an IP address for a domain (an address literal), which mail is not routed to: remove it with `techshack subscribers remove`"
            );
        }
        let msg = self.message(r)?;
        let bytes = msg.formatted();
        let bytes = match &self.dkim {
            Some(d) => {
                let t = self
                    .date
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                d.signer()
                    .sign(&bytes, t)
                    .context("DKIM-signing the message")?
            }
            None => bytes,
        };
        Ok((msg.envelope().clone(), bytes))
    }

    /// The message as it goes on the wire (CRLF line ends).
    pub fn message_bytes(&self, r: &Recipient) -> Result<Vec<u8>> {
        Ok(self.wire(r)?.1)
    }
}

/// The HTML and text bodies of the issue, rendered with placeholder recipient values: once
/// with a name and, when a template shows the name, once more without one.
fn render_bodies(
    config: &Config,
    templates: &Templates,
    issue: &Issue,
) -> Result<(Bodies, Bodies)> {
    let site = SiteCtx::new(config);
    let mut ctx = issue_context(&site, issue);
    let mut render = |name: Option<&str>| -> Result<(Filled, Filled)> {
        ctx.insert(
            "recipient",
            &serde_json::json!({
                "address": PH_ADDRESS,
                "name": name,
                "unsubscribe_url": PH_UNSUBSCRIBE,
            }),
        );
        let html = templates.render("email.html", &ctx)?;
        let html = inline_css(&html)?;
        let text = templates.render("email.txt", &ctx)?;
        Ok((
            Filled::parse(html, "email.html")?,
            Filled::parse(normalize_text(&text), "email.txt")?,
        ))
    };
    let (html_named, text_named) = render(Some(PH_NAME))?;
    let (html_unnamed, text_unnamed) = if html_named.has(Slot::Name) || text_named.has(Slot::Name) {
        let (h, t) = render(None)?;
        (Some(h), Some(t))
    } else {
        (None, None)
    };
    Ok((
        Bodies {
            named: html_named,
            unnamed: html_unnamed,
        },
        Bodies {
            named: text_named,
            unnamed: text_unnamed,
        },
    ))
}

/// CSS inlining of the rendered email: no network, no `<link>` stylesheets, `@media` rules
/// kept in their `data-css-inline="keep"` block.
fn inline_css(html: &str) -> Result<String> {
    let inliner = css_inline::CSSInliner::options()
        .load_remote_stylesheets(false)
        .keep_style_tags(false)
        .keep_link_tags(false)
        .build();
    inliner
        .inline(html)
        .map_err(|e| anyhow::anyhow!("inlining the email's CSS: {e}"))
}

/// CRLF and stray CR to LF; lettre writes CRLF on the wire. No trailing spaces (they are
/// lost or mangled in transit) except the `-- ` signature separator.
fn normalize_text(t: &str) -> String {
    let t = t.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::with_capacity(t.len());
    for line in t.split('\n') {
        if line == "-- " {
            out.push_str(line);
        } else {
            out.push_str(line.trim_end_matches([' ', '\t']));
        }
        out.push('\n');
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

/// LF line ends as CRLF, as quoted-printable and SMTP want them.
fn crlf(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 32);
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
    }
    out
}

fn clean_name(name: Option<&str>) -> Option<String> {
    name.map(one_line).filter(|n| !n.is_empty())
}

/// The left part of a Message-ID from a slug: dot-atom text only.
fn msgid_part(slug: &str) -> String {
    let s: String = slug
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches('-');
    if s.is_empty() {
        "issue".into()
    } else {
        s.to_string()
    }
}

/// `List-Unsubscribe` (RFC 2369): the https URL, then the mailto.
#[derive(Debug, Clone)]
struct ListUnsubscribe(String);

impl Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }
    fn parse(s: &str) -> std::result::Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ListUnsubscribe(s.to_string()))
    }
    fn display(&self) -> HeaderValue {
        // HeaderValue::new encodes anything but printable ASCII, so no CR or LF gets through.
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058).
#[derive(Debug, Clone)]
struct ListUnsubscribePost;

impl Header for ListUnsubscribePost {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }
    fn parse(_: &str) -> std::result::Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ListUnsubscribePost)
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "List-Unsubscribe=One-Click".into())
    }
}

/// `Feedback-ID` (Gmail's feedback loop).
#[derive(Debug, Clone)]
struct FeedbackId(String);

impl Header for FeedbackId {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Feedback-ID")
    }
    fn parse(s: &str) -> std::result::Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(FeedbackId(s.to_string()))
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// `List-Id` (RFC 2919).
#[derive(Debug, Clone)]
struct ListId(String);

impl Header for ListId {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Id")
    }
    fn parse(s: &str) -> std::result::Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ListId(s.to_string()))
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Item, Link};
    use std::path::{Path, PathBuf};

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    const CONFIG: &str = r#"[site]
title = "Example Weekly"
base_url = "https://example.com"
issue_path = "/weekly/{slug}.html"
[email]
from = "Example Weekly <news@example.com>"
reply_to = "hello@example.com"
list_id = "weekly.example.com"
unsubscribe_url = "https://example.com/unsubscribe?token={token}"
unsubscribe_mailto = "unsubscribe@example.com"
"#;

    fn config() -> Config {
        Config::parse(CONFIG, Path::new("t.toml")).unwrap()
    }

    fn issue(title: &str) -> Issue {
        let date = DateTime::parse_from_rfc3339("2018-12-31T09:00:00+00:00").unwrap();
        Issue {
            path: PathBuf::from("issues/2019-01.md"),
            slug: "2019-01".into(),
            id: "tag:example.com,2018:weekly/2019-01".into(),
            url: "https://example.com/weekly/2019-01.html".into(),
            title: title.into(),
            description: None,
            date,
            updated: date,
            draft: false,
            lang: None,
            tags: vec![],
            number: None,
            html: "<h2 id=\"a\">A</h2><p><a href=\"https://a.example/\">a.example</a></p><p>Notes &amp; more.</p>".into(),
            page_html: None,
            text: Some("A\n-\n\nNotes & more.\n".into()),
            feed: Default::default(),
            items: vec![Item {
                title: "A".into(),
                anchor: "a".into(),
                links: vec![Link {
                    text: "a.example".into(),
                    url: "https://a.example/".into(),
                }],
                html: "<p>Notes &amp; more.</p>".into(),
                text: Some("Notes & more.\n".into()),
                feed: Default::default(),
            }],
        }
    }

    #[test]
    fn recipient_values_are_escaped_into_the_inlined_html() {
        let c = Composer::new(&config(), &issue("T"), SECRET).unwrap();
        let r = Recipient {
            address: "o'brien+x@example.org".parse().unwrap(),
            name: Some("<b>Evil</b> & Co".into()),
        };
        let html = c.html(&r);
        assert!(html.contains("o&#39;brien+x@example.org"), "{html}");
        assert!(!html.contains(MARK));
        let token = sign(SECRET, Purpose::Unsubscribe, "o'brien+x@example.org");
        assert!(html.contains(&format!("https://example.com/unsubscribe?token={token}")));
        // Inlined: the main rules are in style attributes, only @media is left in a block.
        assert!(html.contains("style=\""), "{html}");
        let text = c.text(&r);
        assert!(text.contains(&token) && text.contains("o'brien+x@example.org"));
    }

    #[test]
    fn subject_with_crlf_stays_one_header() {
        let c = Composer::new(
            &config(),
            &issue("Hello\r\nBcc: victim@example.com"),
            SECRET,
        )
        .unwrap();
        let r = Recipient {
            address: "a@example.org".parse().unwrap(),
            name: Some("Eve\r\nBcc: x@example.com".into()),
        };
        let raw = String::from_utf8(c.message_bytes(&r).unwrap()).unwrap();
        let head = raw.split("\r\n\r\n").next().unwrap();
        assert_eq!(
            head.matches("\r\nSubject:").count() + usize::from(head.starts_with("Subject:")),
            1,
            "{head}"
        );
        assert!(!head.to_ascii_lowercase().contains("\r\nbcc:"), "{head}");
    }

    #[test]
    fn composer_can_be_shared_between_sending_tasks() {
        fn shared<T: Send + Sync>() {}
        shared::<Composer>();
    }

    #[test]
    fn feedback_id_names_issue_list_program_and_sender() {
        let c = Composer::new(&config(), &issue("T"), SECRET).unwrap();
        let m = String::from_utf8(
            c.message_bytes(&Recipient {
                address: Address::unchecked("a@example.org".into()),
                name: None,
            })
            .unwrap(),
        )
        .unwrap();
        assert!(
            m.contains("\r\nFeedback-ID: 2019-01:weekly.example.com:techshack:example.com\r\n"),
            "{m}"
        );
    }

    #[test]
    fn message_id_is_deterministic_per_issue_and_recipient() {
        let c = Composer::new(&config(), &issue("T"), SECRET).unwrap();
        let a = c.message_id("a@example.org");
        assert_eq!(a, c.message_id("A@example.org"));
        assert_ne!(a, c.message_id("b@example.org"));
        assert!(
            a.starts_with("<2019-01.") && a.ends_with("@example.com>"),
            "{a}"
        );
    }

    #[test]
    fn missing_unsubscribe_url_is_a_clear_error() {
        let with = |line: &str| {
            let text = CONFIG.replace(
                "unsubscribe_url = \"https://example.com/unsubscribe?token={token}\"\n",
                line,
            );
            Config::parse(&text, Path::new("t.toml")).unwrap()
        };
        let e = Composer::new(&with(""), &issue("T"), SECRET)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("email.unsubscribe_url is not set"), "{e}");
        let cfg = with("unsubscribe_url = \"http://example.com/u?t={token}\"\n");
        let e = Composer::new(&cfg, &issue("T"), SECRET)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("https"), "{e}");
    }

    #[test]
    fn invalid_recipient_is_an_error_not_a_panic() {
        let c = Composer::new(&config(), &issue("T"), SECRET).unwrap();
        let r = Recipient {
            address: Address::unchecked("not an address\r\n".into()),
            name: None,
        };
        assert!(c.message(&r).is_err());
    }

    #[test]
    fn name_branch_in_template_renders_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("email.txt"),
            "{% if recipient.name %}Hi {{ recipient.name }},{% else %}Hi there,{% endif %}\n",
        )
        .unwrap();
        let mut cfg = config();
        cfg.templates.dir = Some(dir.path().to_path_buf());
        let c = Composer::new(&cfg, &issue("T"), SECRET).unwrap();
        let named = Recipient {
            address: "a@example.org".parse().unwrap(),
            name: Some("Ada".into()),
        };
        let unnamed = Recipient {
            address: "a@example.org".parse().unwrap(),
            name: None,
        };
        assert_eq!(c.text(&named), "Hi Ada,\n");
        assert_eq!(c.text(&unnamed), "Hi there,\n");
    }

    #[test]
    fn private_use_characters_in_an_issue_are_not_slots() {
        let mut i = issue("Icons \u{E000}t and \u{E001}");
        i.html = format!(
            "<p>glyph \u{E000}t {PH_ADDRESS} {}</p>",
            PH_UNSUBSCRIBE.replace('\u{E001}', "")
        );
        i.text = Some(format!("glyph \u{E000}t {PH_NAME}"));
        i.items[0].title = "\u{E000}techshack".into();
        let c = Composer::new(&config(), &i, SECRET).expect("composes");
        let r = Recipient {
            address: "reader@example.org".parse().unwrap(),
            name: None,
        };
        let (html, text) = (c.html(&r), c.text(&r));
        for body in [&html, &text] {
            assert!(!body.contains([MARK, MARK_END]), "{body}");
        }
        // The issue's own text never becomes a recipient value.
        assert_eq!(html.matches("reader@example.org").count(), 1, "{html}");
        assert!(html.contains("techshack-recipient-address"), "{html}");
        let m = c.message(&r).expect("message");
        let subject = m
            .headers()
            .get_raw("Subject")
            .unwrap_or_default()
            .to_string();
        assert!(subject.contains("Icons t and"), "{subject}");
    }

    #[test]
    fn an_email_gmail_would_clip_is_warned_about() {
        let c = Composer::new(&config(), &issue("T"), SECRET).unwrap();
        assert_eq!(c.size_warning(), None);
        let mut big = issue("T");
        big.html = format!("<p>{}</p>", "word ".repeat(GMAIL_CLIP_BYTES / 5));
        let c = Composer::new(&config(), &big, SECRET).unwrap();
        let w = c.size_warning().expect("a warning");
        assert!(
            w.starts_with("the email's HTML is 10") && w.contains("over the 102 KB"),
            "{w}"
        );
    }

    #[test]
    fn filter_on_recipient_value_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("email.txt"),
            "{{ recipient.address | truncate(length=5) }}\n",
        )
        .unwrap();
        let mut cfg = config();
        cfg.templates.dir = Some(dir.path().to_path_buf());
        assert!(Composer::new(&cfg, &issue("T"), SECRET).is_err());
    }
}
