//! DKIM signing (RFC 6376, relaxed/relaxed, SHA-256; RSA or Ed25519 as RFC 8463) of a message
//! already on the wire, with the signature time `t=` given by the caller: the time a send
//! started, or the issue's date for `preview`, so two previews are the same bytes.

use anyhow::{bail, Context, Result};
use base64::Engine;
use sha2::{Digest, Sha256};

/// A signing key: PKCS#1 RSA, or an Ed25519 seed.
enum Key {
    Rsa(Box<rsa::RsaPrivateKey>),
    Ed25519(Box<ed25519_dalek::SigningKey>),
}

/// The loaded key with its domain, selector and the headers it signs.
pub struct Signer {
    domain: String,
    selector: String,
    headers: Vec<String>,
    key: Key,
}

impl Signer {
    /// `key` is the text of the key file: `-----BEGIN RSA PRIVATE KEY-----` PEM, or the
    /// base64 of a 32-byte Ed25519 seed. `headers` are signed in that order when present.
    pub fn new(key: &str, domain: &str, selector: &str, headers: &[&str]) -> Result<Signer> {
        let key = if key.contains("-----BEGIN RSA PRIVATE KEY-----") {
            use rsa::pkcs1::DecodeRsaPrivateKey;
            Key::Rsa(Box::new(
                rsa::RsaPrivateKey::from_pkcs1_pem(key.trim()).context("not a PKCS#1 RSA key")?,
            ))
        } else if key.contains("-----BEGIN") {
            bail!(
                "only PKCS#1 RSA keys (BEGIN RSA PRIVATE KEY) or a base64 Ed25519 seed are read; \
                 convert with `openssl rsa -in KEY -traditional -out KEY.pem`"
            );
        } else {
            let seed = base64::engine::general_purpose::STANDARD
                .decode(key.trim())
                .context("an Ed25519 key is the base64 of a 32-byte seed")?;
            let seed: [u8; 32] = seed
                .try_into()
                .map_err(|_| anyhow::anyhow!("an Ed25519 seed is 32 bytes"))?;
            Key::Ed25519(Box::new(ed25519_dalek::SigningKey::from_bytes(&seed)))
        };
        Ok(Signer {
            domain: domain.to_string(),
            selector: selector.to_string(),
            headers: headers.iter().map(|h| h.to_ascii_lowercase()).collect(),
            key,
        })
    }

    /// `message` (CRLF line ends) with a `DKIM-Signature` header in front, signed at `t`
    /// (seconds since the epoch).
    pub fn sign(&self, message: &[u8], t: i64) -> Result<Vec<u8>> {
        let split = find(message, b"\r\n\r\n").context("a message without a header block")?;
        let (head, body) = (&message[..split + 2], &message[split + 4..]);
        let fields = header_fields(head);
        let mut signed = Vec::new();
        let mut names = Vec::new();
        let mut used = vec![false; fields.len()];
        for name in &self.headers {
            // The last unused instance of each name, as a verifier picks them.
            if let Some(i) = (0..fields.len())
                .rev()
                .find(|&i| !used[i] && fields[i].0.eq_ignore_ascii_case(name))
            {
                used[i] = true;
                signed.extend_from_slice(relaxed_header(fields[i].0, fields[i].1).as_bytes());
                signed.extend_from_slice(b"\r\n");
                names.push(name.as_str());
            }
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let bh = b64.encode(Sha256::digest(relaxed_body(body)));
        let algo = match self.key {
            Key::Rsa(_) => "rsa-sha256",
            Key::Ed25519(_) => "ed25519-sha256",
        };
        // Folded so that no line is over 76 bytes (FWS is allowed between `h=` names).
        let mut h = String::from("\th=");
        let mut line = h.len();
        for (i, name) in names.iter().enumerate() {
            let sep = if i == 0 { "" } else { ":" };
            if line + sep.len() + name.len() > 74 {
                h.push_str(sep);
                h.push_str("\r\n\t");
                line = 1;
            } else {
                h.push_str(sep);
                line += sep.len();
            }
            h.push_str(name);
            line += name.len();
        }
        let value = format!(
            "v=1; a={algo}; d={}; s={};\r\n\tc=relaxed/relaxed; q=dns/txt; t={t};\r\n{h};\r\n\tbh={bh};\r\n\tb=",
            self.domain, self.selector,
        );
        signed.extend_from_slice(relaxed_header("DKIM-Signature", &value).as_bytes());
        let sig = match &self.key {
            Key::Rsa(k) => {
                let hashed = Sha256::digest(&signed);
                k.sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &hashed)
                    .context("RSA signing")?
            }
            Key::Ed25519(k) => {
                use ed25519_dalek::Signer as _;
                k.sign(&Sha256::digest(&signed)).to_bytes().to_vec()
            }
        };
        let sig = b64.encode(sig);
        let mut out = format!("DKIM-Signature: {value}").into_bytes();
        for (i, chunk) in sig.as_bytes().chunks(64).enumerate() {
            if i > 0 {
                out.extend_from_slice(b"\r\n\t");
            }
            out.extend_from_slice(chunk);
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(message);
        Ok(out)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `(name, value)` of every field of a header block, folded lines joined.
fn header_fields(head: &[u8]) -> Vec<(&str, &str)> {
    let text = std::str::from_utf8(head).unwrap_or("");
    let mut fields: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    for (i, _) in text.match_indices("\r\n") {
        let next = text.as_bytes().get(i + 2);
        if !matches!(next, Some(b' ' | b'\t')) {
            fields.push((start, i));
            start = i + 2;
        }
    }
    fields
        .into_iter()
        .filter_map(|(a, b)| text[a..b].split_once(':'))
        .collect()
}

/// RFC 6376 3.4.2: lowercase name, unfolded value with whitespace runs as one space, trimmed.
fn relaxed_header(name: &str, value: &str) -> String {
    let mut v = String::with_capacity(value.len());
    for word in value.split([' ', '\t', '\r', '\n']) {
        if word.is_empty() {
            continue;
        }
        if !v.is_empty() {
            v.push(' ');
        }
        v.push_str(word);
    }
    format!("{}:{v}", name.trim().to_ascii_lowercase())
}

/// RFC 6376 3.4.4: whitespace runs as one space, none at line ends, no trailing empty lines.
fn relaxed_body(body: &[u8]) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for line in body.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut out = Vec::with_capacity(line.len());
        let mut space = false;
        for &b in line {
            if b == b' ' || b == b'\t' {
                space = true;
            } else {
                if space {
                    out.push(b' ');
                }
                space = false;
                out.push(b);
            }
        }
        lines.push(out);
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(&l);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms_follow_rfc_6376() {
        assert_eq!(relaxed_header("Subject ", " A  b\r\n\tc "), "subject:A b c");
        assert_eq!(relaxed_body(b" a  b \r\nc\t\r\n\r\n\r\n"), b" a b\r\nc\r\n");
        assert_eq!(relaxed_body(b"\r\n\r\n"), b"");
    }

    #[test]
    fn the_same_message_and_time_sign_the_same_bytes() {
        let seed = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let s = Signer::new(&seed, "example.org", "mail", &["From", "Subject"]).unwrap();
        let m = b"From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n";
        let a = s.sign(m, 1_700_000_000).unwrap();
        assert_eq!(a, s.sign(m, 1_700_000_000).unwrap());
        assert_ne!(a, s.sign(m, 1_700_000_001).unwrap());
        let text = String::from_utf8(a).unwrap();
        assert!(
            text.contains("t=1700000000;") && text.contains("h=from:subject;"),
            "{text}"
        );
        assert!(Signer::new("-----BEGIN PRIVATE KEY-----", "d", "s", &[]).is_err());
    }
}
