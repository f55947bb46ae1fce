//! Link destinations made absolute, and the one rule for which schemes a link may use.

use std::borrow::Cow;

/// Schemes a link may use; anything else (`javascript:`, `data:`, `vbscript:`) is dropped.
const SAFE_SCHEMES: &[&str] = &[
    "http", "https", "mailto", "ftp", "ftps", "irc", "ircs", "tel", "sms", "xmpp", "news", "nntp",
    "git", "ssh", "magnet", "gemini",
];

/// Makes a URL from the Markdown absolute: site paths against `base_url`, relative paths and
/// fragments against the page. `None` means the URL must go (an unsafe scheme).
pub fn absolutize<'u>(url: &'u str, base_url: &str, page_url: &str) -> Option<Cow<'u, str>> {
    // Nearly every real link is already absolute.
    let head = url.as_bytes().get(..8).unwrap_or_default();
    if head.eq_ignore_ascii_case(b"https://")
        || head[..head.len().min(7)].eq_ignore_ascii_case(b"http://")
    {
        return Some(Cow::Borrowed(url));
    }
    // Read the URL the way browsers do: leading and trailing controls and spaces go, and so do
    // tabs and line breaks anywhere, so `java&#9;script:` is `javascript:` here as well.
    let trimmed = url.trim_matches(|c: char| c <= ' ');
    let u: Cow<'u, str> = if trimmed.contains(['\t', '\n', '\r']) {
        Cow::Owned(trimmed.replace(['\t', '\n', '\r'], ""))
    } else {
        Cow::Borrowed(trimmed)
    };
    if u.is_empty() {
        return Some(Cow::Borrowed(""));
    }
    let safe = |scheme: &str| SAFE_SCHEMES.iter().any(|s| s.eq_ignore_ascii_case(scheme));
    if let Some(scheme) = scheme_of(&u) {
        return safe(scheme).then_some(u);
    }
    if let Some(rest) = u.strip_prefix("//") {
        return Some(Cow::Owned(format!("https://{rest}")));
    }
    if u.starts_with('/') {
        return Some(Cow::Owned(format!("{base_url}{u}")));
    }
    if u.starts_with('#') {
        let page = page_url.split('#').next().unwrap_or(page_url);
        return Some(Cow::Owned(format!("{page}{u}")));
    }
    match url::Url::parse(page_url).and_then(|p| p.join(&u)) {
        // The join follows the URL standard, which may still find a scheme in what looked
        // relative: only a safe one passes.
        Ok(abs) => safe(abs.scheme()).then(|| Cow::Owned(abs.into())),
        Err(_) => Some(Cow::Owned(format!("{base_url}/{u}"))),
    }
}

/// The scheme of an absolute URL (`https` of `https://…`), if it has one.
fn scheme_of(u: &str) -> Option<&str> {
    let colon = u.find(':')?;
    let s = &u[..colon];
    let ok = s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    ok.then_some(s)
}
