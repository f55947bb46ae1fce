//! Signed tokens for unsubscribe and confirm links:
//! `b64url(address) "." b64url(HMAC-SHA256(secret, purpose "\0" address ["\0" expiry]))`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// What a token is for; a token made for one purpose never verifies for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Unsubscribe,
    /// Confirming a subscription, valid until the Unix time given.
    Confirm {
        expires: i64,
    },
}

impl Purpose {
    fn message(&self, address: &str) -> Vec<u8> {
        let mut m = Vec::with_capacity(address.len() + 32);
        match self {
            Purpose::Unsubscribe => m.extend_from_slice(b"unsubscribe"),
            Purpose::Confirm { .. } => m.extend_from_slice(b"confirm"),
        }
        m.push(0);
        m.extend_from_slice(address.as_bytes());
        if let Purpose::Confirm { expires } = self {
            m.push(0);
            m.extend_from_slice(expires.to_string().as_bytes());
        }
        m
    }
}

fn mac(secret: &[u8], purpose: Purpose, address: &str) -> [u8; 32] {
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(&purpose.message(address));
    m.finalize().into_bytes().into()
}

/// Makes the token for `address` and `purpose`.
pub fn sign(secret: &[u8], purpose: Purpose, address: &str) -> String {
    format!(
        "{}.{}",
        B64.encode(address),
        B64.encode(mac(secret, purpose, address))
    )
}

/// Returns the address a token was made for, if it verifies for `purpose`.
/// For `Confirm`, the caller passes the expiry it reads from the link and checks it against now.
pub fn verify(secret: &[u8], purpose: Purpose, token: &str) -> Option<String> {
    let (a, m) = token.split_once('.')?;
    let address = String::from_utf8(B64.decode(a).ok()?).ok()?;
    let given = B64.decode(m).ok()?;
    let want = mac(secret, purpose, &address);
    if given.len() == want.len() && bool::from(given.ct_eq(&want)) {
        Some(address)
    } else {
        None
    }
}

/// The keyed hash an erased address is remembered by: hex HMAC-SHA256 under `secret`.
pub fn address_hash(secret: &[u8], address: &str) -> String {
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(b"erased\0");
    m.update(address.as_bytes());
    m.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn round_trip_and_purpose_bound() {
        let t = sign(S, Purpose::Unsubscribe, "a@example.com");
        assert_eq!(
            verify(S, Purpose::Unsubscribe, &t).as_deref(),
            Some("a@example.com")
        );
        assert_eq!(verify(S, Purpose::Confirm { expires: 0 }, &t), None);
        assert_eq!(
            verify(b"another secret, also long", Purpose::Unsubscribe, &t),
            None
        );
    }

    #[test]
    fn forged_and_truncated_fail() {
        let t = sign(S, Purpose::Unsubscribe, "a@example.com");
        let (_, m) = t.split_once('.').unwrap();
        let forged = format!("{}.{m}", B64.encode("b@example.com"));
        assert_eq!(verify(S, Purpose::Unsubscribe, &forged), None);
        assert_eq!(verify(S, Purpose::Unsubscribe, &t[..t.len() - 2]), None);
        assert_eq!(verify(S, Purpose::Unsubscribe, "garbage"), None);
        let c = sign(S, Purpose::Confirm { expires: 10 }, "a@example.com");
        assert!(verify(S, Purpose::Confirm { expires: 10 }, &c).is_some());
        assert!(verify(S, Purpose::Confirm { expires: 11 }, &c).is_none());
    }
}
