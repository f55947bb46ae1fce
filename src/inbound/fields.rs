//! The field blocks of `message/delivery-status` (RFC 3464) and `message/feedback-report`
//! (RFC 5965): header-like `Name: value` lines, folded with leading white space, in groups
//! separated by blank lines. Names are matched case-insensitively.

/// One group of fields, in the order they appear.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Block(Vec<(String, String)>);

impl Block {
    /// The first value of the field `name`, trimmed.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of the field `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Splits `text` into its blocks. Lines that are neither a field nor a continuation are
/// ignored, so a mangled report still yields the fields it has. Empty blocks are dropped.
pub fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut cur = Block::default();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = cur.0.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim();
            if !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic()) {
                cur.0.push((name.to_string(), value.trim().to_string()));
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The value of a typed field such as `rfc822; bob@example.org` or `smtp; 550 5.1.1 …`:
/// what follows the first `;`, trimmed, or the whole value when there is no type.
pub fn typed(value: &str) -> &str {
    match value.split_once(';') {
        Some((_, rest)) => rest.trim(),
        None => value.trim(),
    }
}

/// An address as it appears in a field: without angle brackets, a `mailto:` or comments.
pub fn address(value: &str) -> Option<String> {
    let v = typed(value);
    let v = v.split('(').next().unwrap_or(v).trim();
    let v = v.trim_start_matches('<').trim_end_matches('>').trim();
    let v = v.strip_prefix("mailto:").unwrap_or(v);
    (v.contains('@') && !v.contains(char::is_whitespace) && v.len() <= 320).then(|| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_unfold_and_split_on_blank_lines() {
        let t = "Reporting-MTA: dns; mx.example.org\r\nArrival-Date: Tue,\r\n 1 Dec 2026\r\n\r\n\
                 Final-Recipient: rfc822; bob@example.org\r\nAction: failed\r\n\r\n\r\n\
                 Final-Recipient: rfc822;carol@example.org\nACTION: delayed\n";
        let b = blocks(t);
        assert_eq!(b.len(), 3);
        assert_eq!(b[0].get("arrival-date"), Some("Tue, 1 Dec 2026"));
        assert_eq!(b[1].get("action"), Some("failed"));
        assert_eq!(b[2].get("Action"), Some("delayed"));
        assert_eq!(
            address(b[2].get("final-recipient").unwrap()).as_deref(),
            Some("carol@example.org")
        );
    }

    #[test]
    fn junk_lines_are_ignored() {
        let b = blocks("garbage without colon\n: no name\nStatus: 5.1.1\n bad name : x\n");
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].get("status"), Some("5.1.1 bad name : x"));
        assert!(blocks("").is_empty());
    }

    #[test]
    fn addresses_lose_brackets_comments_and_types() {
        assert_eq!(
            address("rfc822; <Bob@Example.org>").as_deref(),
            Some("Bob@Example.org")
        );
        assert_eq!(
            address("rfc822;bob@example.org (bob)").as_deref(),
            Some("bob@example.org")
        );
        assert_eq!(
            address("mailto:u@example.org").as_deref(),
            Some("u@example.org")
        );
        assert_eq!(address("rfc822; no address here"), None);
        assert_eq!(address(""), None);
    }
}
