//! The CSV side of `techshack subscribers`: reading an import file (the columns of techshack's
//! own export and of Mailchimp, Substack, Buttondown and listmonk exports, any of `,` `;` or
//! tab as the delimiter) and writing the lossless export.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use anyhow::Result;

use crate::diag::Diagnostic;
use crate::store::{
    normalize_name, Address, ImportRow, RestoreRow, StatusEvent, Store, SubscriberStatus,
};

/// The export's columns, in order.
pub const EXPORT_HEADER: [&str; 7] = [
    "email",
    "name",
    "status",
    "added_at",
    "updated_at",
    "reason",
    "history",
];
/// The status of an erased address's row in an export; its email cell is `erased:` and the
/// keyed hash.
const ERASED: &str = "erased";

/// What a file holds, or why not.
#[derive(Default)]
pub struct Parsed {
    pub rows: Vec<ImportRow>,
    pub restore: Vec<RestoreRow>,
    pub erased: Vec<(String, String)>,
    /// Bad rows, by line: the message without its place.
    pub problems: Vec<(usize, String)>,
}

/// Which columns hold what.
struct Columns {
    email: usize,
    name: Option<usize>,
    first: Option<usize>,
    last: Option<usize>,
    status: Option<usize>,
    reason: Option<usize>,
    added_at: Option<usize>,
    updated_at: Option<usize>,
    history: Option<usize>,
    /// Mailchimp's unsubscribed and cleaned exports: a time here means that status.
    unsub_time: Option<usize>,
    clean_time: Option<usize>,
}

/// A header cell compared loosely: `Email Address`, `email_address`, `E-mail address` agree.
fn header_key(h: &str) -> String {
    let h = h.trim_start_matches('\u{feff}').trim().to_lowercase();
    let h: String = h
        .chars()
        .map(|c| if matches!(c, '_' | '-') { ' ' } else { c })
        .collect();
    h.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Columns {
    fn find(headers: &csv::StringRecord) -> Result<Columns, String> {
        let keys: Vec<String> = headers.iter().map(header_key).collect();
        let col = |names: &[&str]| keys.iter().position(|k| names.contains(&k.as_str()));
        let Some(email) = col(&[
            "email",
            "email address",
            "e mail",
            "e mail address",
            "subscriber email",
        ]) else {
            let found = headers.iter().collect::<Vec<_>>().join(", ");
            return Err(format!("no `email` column in the header row (found: {found}); the first row must name the columns, e.g. `email,name` (also read: `Email Address`, `First Name`, `Last Name` as Mailchimp writes them)"));
        };
        Ok(Columns {
            email,
            name: col(&["name", "full name", "display name", "subscriber name"]),
            first: col(&["first name", "firstname", "fname", "given name"]),
            last: col(&["last name", "lastname", "lname", "surname", "family name"]),
            status: col(&["status", "subscriber type", "subscription status"]),
            reason: col(&["reason"]),
            added_at: col(&["added at"]),
            updated_at: col(&["updated at"]),
            history: col(&["history"]),
            unsub_time: col(&["unsub time"]),
            clean_time: col(&["clean time"]),
        })
    }

    fn name(&self, rec: &csv::StringRecord) -> Option<String> {
        let cell = |i: Option<usize>| i.and_then(|i| rec.get(i)).map(unneutralize);
        if let Some(n) = cell(self.name).filter(|n| !n.is_empty()) {
            return Some(n);
        }
        let parts: Vec<String> = [cell(self.first), cell(self.last)]
            .into_iter()
            .flatten()
            .filter(|p| !p.is_empty())
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    }

    /// The status a row gives, in any of the vocabularies of the export formats read.
    fn status(&self, rec: &csv::StringRecord) -> Result<Option<SubscriberStatus>, String> {
        let filled = |i: Option<usize>| i.and_then(|i| rec.get(i)).is_some_and(|v| !v.is_empty());
        if filled(self.clean_time) {
            return Ok(Some(SubscriberStatus::Bounced));
        }
        if filled(self.unsub_time) {
            return Ok(Some(SubscriberStatus::Unsubscribed));
        }
        let Some(raw) = self.status.and_then(|i| rec.get(i)) else {
            return Ok(None);
        };
        status_word(raw)
    }
}

/// A status word of techshack, Mailchimp, Buttondown or listmonk.
fn status_word(raw: &str) -> Result<Option<SubscriberStatus>, String> {
    use SubscriberStatus::*;
    let w = raw.trim().to_lowercase();
    Ok(Some(match w.as_str() {
        "" => return Ok(None),
        "active" | "subscribed" | "enabled" | "confirmed" | "regular" | "premium" | "paid"
        | "free" | "gifted" | "trialed" | "comped" => Active,
        "pending" | "unconfirmed" | "unactivated" => Pending,
        "unsubscribed" | "blocklisted" | "blacklisted" | "disabled" | "removed" | "churned" => {
            Unsubscribed
        }
        "bounced" | "cleaned" => Bounced,
        "complained" | "spam" => Complained,
        _ => {
            return Err(format!(
                "unknown status `{}`: use active, pending, unsubscribed, bounced or complained (Mailchimp's, Buttondown's and listmonk's words are read too)",
                raw.chars().take(40).collect::<String>()
            ))
        }
    }))
}

/// The delimiter of the header line: whichever of `,` `;` tab it has most of, outside quotes.
fn sniff_delimiter(text: &[u8]) -> u8 {
    let line = text.split(|b| *b == b'\n').next().unwrap_or_default();
    let mut counts = [0usize; 3];
    let mut quoted = false;
    for b in line {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => counts[0] += 1,
            b';' if !quoted => counts[1] += 1,
            b'\t' if !quoted => counts[2] += 1,
            _ => {}
        }
    }
    let best = (0..3).max_by_key(|i| (counts[*i], 3 - i)).unwrap_or(0);
    [b',', b';', b'\t'][best]
}

/// Counts lines as the reader moves forward, so that each record costs only its own bytes.
struct Lines<'a> {
    bytes: &'a [u8],
    at: usize,
    line: usize,
}

impl Lines<'_> {
    /// The 1-based line of a byte offset at or after the previous one, counting LF (so CRLF
    /// and LF files agree).
    fn of(&mut self, offset: u64) -> usize {
        let mut end = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.bytes.len());
        // After a CRLF the reader may report the record as starting at the LF.
        while end < self.bytes.len() && matches!(self.bytes[end], b'\r' | b'\n') {
            end += 1;
        }
        if end < self.at {
            self.at = 0;
            self.line = 1;
        }
        self.line += memchr::memchr_iter(b'\n', &self.bytes[self.at..end]).count();
        self.at = end;
        self.line
    }
}

/// Reads an import file; `restore` asks for techshack's export columns and reads every one.
pub fn read(file: &Path, bytes: &[u8], restore: bool) -> Result<Parsed> {
    if let Err(e) = std::str::from_utf8(bytes) {
        let upto = &bytes[..e.valid_up_to()];
        let line = memchr::memchr_iter(b'\n', upto).count() + 1;
        let col = upto.len() - upto.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1) + 1;
        anyhow::bail!(Diagnostic::error(
            file,
            Some((line, col)),
            "this is not UTF-8 text (Latin-1 or Windows-1252, perhaps): save it as UTF-8 (in a spreadsheet: Save As, \"CSV UTF-8\") and import it again",
        ));
    }
    let body = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .delimiter(sniff_delimiter(body))
        .from_reader(body);
    let at1 = |m: String| Diagnostic::error(file, Some((1, 1)), m);
    let headers = match rdr.headers() {
        Ok(h) => h.clone(),
        Err(e) => anyhow::bail!(at1(format!("cannot read the header row: {e}"))),
    };
    let cols = match Columns::find(&headers) {
        Ok(c) => c,
        Err(m) => anyhow::bail!(at1(m)),
    };
    if restore {
        for (want, have) in [
            ("status", cols.status),
            ("added_at", cols.added_at),
            ("updated_at", cols.updated_at),
        ] {
            if have.is_none() {
                anyhow::bail!(at1(format!("--restore reads a file written by `techshack subscribers export`, and this one has no `{want}` column")));
            }
        }
    }
    let mut out = Parsed::default();
    let mut lines = Lines {
        bytes: body,
        at: 0,
        line: 1,
    };
    let mut seen = HashSet::new();
    let mut rec = csv::StringRecord::new();
    loop {
        let pos = rdr.position().byte();
        match rdr.read_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(lines.of(pos), |p| lines.of(p.byte()));
                out.problems.push((line, e.to_string()));
                continue;
            }
        }
        let line = rec.position().map_or(0, |p| lines.of(p.byte()));
        if rec.iter().all(str::is_empty) {
            continue;
        }
        let r = if restore {
            restore_row(&cols, &rec, &mut out, &mut seen)
        } else {
            import_row(&cols, &rec, line, &mut out)
        };
        if let Err(m) = r {
            out.problems.push((line, m));
        }
    }
    Ok(out)
}

fn import_row(
    cols: &Columns,
    rec: &csv::StringRecord,
    line: usize,
    out: &mut Parsed,
) -> Result<(), String> {
    let raw = unneutralize(rec.get(cols.email).unwrap_or(""));
    let cell = |i: Option<usize>| i.and_then(|i| rec.get(i)).map(unneutralize);
    if cell(cols.status).as_deref() == Some(ERASED) {
        let (hash, at) = erased_row(&raw, cell(cols.added_at))?;
        out.erased.push((hash, at));
        return Ok(());
    }
    let address = Address::parse(&raw).map_err(|e| e.to_string())?;
    let status = cols.status(rec)?;
    out.rows.push(ImportRow {
        line,
        address,
        name: cols.name(rec),
        status,
        reason: normalize_name(cell(cols.reason).as_deref()),
    });
    Ok(())
}

fn erased_row(email: &str, at: Option<String>) -> Result<(String, String), String> {
    let hash = email
        .strip_prefix("erased:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or("an `erased` row holds `erased:` and 64 hex digits in its email cell")?;
    let at = at.unwrap_or_default();
    check_time(&at, "added_at")?;
    Ok((hash.to_ascii_lowercase(), at))
}

fn check_time(t: &str, what: &str) -> Result<(), String> {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|_| ())
        .map_err(|_| {
            format!("`{t}` in {what} is not an RFC 3339 time such as 2026-11-20T08:00:00Z")
        })
}

fn restore_row(
    cols: &Columns,
    rec: &csv::StringRecord,
    out: &mut Parsed,
    seen: &mut HashSet<String>,
) -> Result<(), String> {
    let cell = |i: Option<usize>| i.and_then(|i| rec.get(i)).map(unneutralize);
    let raw = unneutralize(rec.get(cols.email).unwrap_or(""));
    let status_text = cell(cols.status).unwrap_or_default();
    let added_at = cell(cols.added_at).unwrap_or_default();
    if status_text == ERASED {
        out.erased.push(erased_row(&raw, Some(added_at))?);
        return Ok(());
    }
    let address = Address::parse(&raw).map_err(|e| e.to_string())?;
    if !seen.insert(address.as_str().to_string()) {
        return Err(format!(
            "{address} is on an earlier row too: an export lists each address once"
        ));
    }
    let status: SubscriberStatus = status_text.parse().map_err(|e| format!("{e}"))?;
    let updated_at = cell(cols.updated_at).unwrap_or_default();
    check_time(&added_at, "added_at")?;
    check_time(&updated_at, "updated_at")?;
    let history = match cell(cols.history).filter(|h| !h.is_empty()) {
        None => Vec::new(),
        Some(h) => serde_json::from_str::<Vec<StatusEvent>>(&h)
            .map_err(|e| format!("the history cell is not the JSON an export writes: {e}"))?,
    };
    out.restore.push(RestoreRow {
        address,
        name: normalize_name(cell(cols.name).as_deref()),
        status,
        reason: cell(cols.reason).filter(|r| !r.is_empty()),
        added_at,
        updated_at,
        history,
    });
    Ok(())
}

/// Undoes [`neutralize`]: a leading `'` before a character a spreadsheet would act on.
fn unneutralize(cell: &str) -> String {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@', '\t', '\r', '\'']) => rest.to_string(),
        _ => cell.to_string(),
    }
}

/// A cell a spreadsheet will not run as a formula (OWASP's CSV injection rule): one that
/// starts with `=`, `+`, `-`, `@`, tab or CR gets a leading `'`; so does one that starts with
/// `'` already, so that an import takes exactly one `'` off again.
fn neutralize(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r', '\'']) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// Writes every subscriber, then every erased hash, as CSV.
pub fn export(store: &Store, out: impl Write) -> Result<()> {
    let mut histories = store.all_histories()?;
    let mut w = csv::Writer::from_writer(out);
    w.write_record(EXPORT_HEADER)?;
    for s in store.subscribers(None)? {
        let history = match histories.remove(s.address.as_str()) {
            Some(h) => serde_json::to_string(&h)?,
            None => String::new(),
        };
        let cells = [
            s.address.as_str(),
            s.name.as_deref().unwrap_or(""),
            s.status.as_str(),
            &s.added_at,
            &s.updated_at,
            s.reason.as_deref().unwrap_or(""),
            &history,
        ];
        w.write_record(cells.iter().map(|c| neutralize(c).into_owned()))?;
    }
    for (hash, at) in store.erased_hashes()? {
        w.write_record([&format!("erased:{hash}"), "", ERASED, &at, &at, "", ""])?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters_are_sniffed_outside_quotes() {
        assert_eq!(sniff_delimiter(b"email;name\na;b"), b';');
        assert_eq!(sniff_delimiter(b"email\tname\tx"), b'\t');
        assert_eq!(sniff_delimiter(b"\"a;b;c\",email"), b',');
        assert_eq!(sniff_delimiter(b"email"), b',');
    }

    #[test]
    fn neutralized_cells_come_back_exactly() {
        for c in [
            "=HYPERLINK(\"x\")",
            "+1",
            "-2",
            "@SUM(A1)",
            "'=x",
            "'plain",
            "plain",
            "",
        ] {
            assert_eq!(unneutralize(&neutralize(c)), c, "{c}");
        }
        assert_eq!(neutralize("=1+1"), "'=1+1");
        assert_eq!(neutralize("Ann"), "Ann");
    }

    #[test]
    fn header_names_of_other_services() {
        assert_eq!(header_key("\u{feff}Email Address"), "email address");
        assert_eq!(header_key("E-mail_Address"), "e mail address");
        assert_eq!(
            status_word("cleaned").unwrap(),
            Some(SubscriberStatus::Bounced)
        );
        assert_eq!(
            status_word("Blocklisted").unwrap(),
            Some(SubscriberStatus::Unsubscribed)
        );
        assert!(status_word("weird").is_err());
    }
}
