//! Tokens for unsubscribe and confirm links. They carry the address sealed, so a link in a
//! proxy's or CDN's log does not tell whose it is:
//!
//! `b64url(iv || address XOR keystream)`, where `iv` is the first 16 bytes of
//! `HMAC-SHA256(K_iv, purpose "\0" address ["\0" expiry])` and the keystream is
//! `HMAC-SHA256(K_stream, iv || counter)` block after block: a deterministic authenticated
//! encryption in the SIV manner (the synthetic IV is the tag), built from HMAC-SHA256 alone.
//! `K_iv` and `K_stream` are derived from the secret with HMAC under fixed labels.
//!
//! Links mailed before carry the old form, `b64url(address) "." b64url(HMAC-SHA256(secret,
//! message))`, and keep verifying. [`verify_any`] tries every key given: the secret, then
//! `$TECHSHACK_SECRET_PREVIOUS` during a rotation.

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

/// Bytes of the synthetic IV (and tag) of a sealed token.
const IV_LEN: usize = 16;

fn derive(secret: &[u8], label: &[u8]) -> [u8; 32] {
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(label);
    m.finalize().into_bytes().into()
}

fn synthetic_iv(secret: &[u8], purpose: Purpose, address: &str) -> [u8; IV_LEN] {
    let k = derive(secret, b"techshack token iv");
    let full = mac(&k, purpose, address);
    let mut iv = [0u8; IV_LEN];
    iv.copy_from_slice(&full[..IV_LEN]);
    iv
}

/// XORs `data` with the keystream of `iv`.
fn apply_stream(secret: &[u8], iv: &[u8], data: &mut [u8]) {
    let k = derive(secret, b"techshack token stream");
    for (i, chunk) in data.chunks_mut(32).enumerate() {
        let mut m = HmacSha256::new_from_slice(&k).expect("HMAC takes any key length");
        m.update(iv);
        m.update(&u32::try_from(i).unwrap_or(u32::MAX).to_be_bytes());
        let block = m.finalize().into_bytes();
        for (b, k) in chunk.iter_mut().zip(block.iter()) {
            *b ^= k;
        }
    }
}

/// Makes the token for `address` and `purpose`: the address sealed, unreadable without the
/// secret.
pub fn sign(secret: &[u8], purpose: Purpose, address: &str) -> String {
    let iv = synthetic_iv(secret, purpose, address);
    let mut out = Vec::with_capacity(IV_LEN + address.len());
    out.extend_from_slice(&iv);
    out.extend_from_slice(address.as_bytes());
    apply_stream(secret, &iv, &mut out[IV_LEN..]);
    B64.encode(out)
}

/// Returns the address a token was made for, if it verifies for `purpose` under any of
/// `keys` (the signing secret first, then the previous one during a rotation).
pub fn verify_any<K: AsRef<[u8]>>(keys: &[K], purpose: Purpose, token: &str) -> Option<String> {
    keys.iter().find_map(|k| verify(k.as_ref(), purpose, token))
}

/// Returns the address a token was made for, if it verifies for `purpose`: a sealed token,
/// or one of the old form (address in clear) that links mailed before still carry.
/// For `Confirm`, the caller passes the expiry it reads from the link and checks it against now.
pub fn verify(secret: &[u8], purpose: Purpose, token: &str) -> Option<String> {
    if !token.contains('.') {
        let mut raw = B64.decode(token).ok()?;
        if raw.len() <= IV_LEN {
            return None;
        }
        let (iv, sealed) = raw.split_at_mut(IV_LEN);
        apply_stream(secret, iv, sealed);
        let address = std::str::from_utf8(sealed).ok()?;
        let want = synthetic_iv(secret, purpose, address);
        return bool::from(want.ct_eq(iv)).then(|| address.to_string());
    }
    verify_old_form(secret, purpose, token)
}

/// The form of the links mailed before tokens were sealed.
fn verify_old_form(secret: &[u8], purpose: Purpose, token: &str) -> Option<String> {
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
    hex(&m.finalize().into_bytes())
}

/// `bytes` as lowercase hexadecimal, two digits a byte.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
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

    /// A token of the form mailed before sealing.
    fn old_form(secret: &[u8], purpose: Purpose, address: &str) -> String {
        format!(
            "{}.{}",
            B64.encode(address),
            B64.encode(mac(secret, purpose, address))
        )
    }

    #[test]
    fn tokens_carry_no_readable_address() {
        let t = sign(S, Purpose::Unsubscribe, "ann.lee@example.com");
        assert!(!t.contains('.'), "{t}");
        let raw = B64.decode(&t).unwrap();
        let text = String::from_utf8_lossy(&raw);
        assert!(!text.contains("ann") && !text.contains("example"), "{text}");
        // Deterministic, so a message is reproducible; another address gives another token.
        assert_eq!(t, sign(S, Purpose::Unsubscribe, "ann.lee@example.com"));
        assert_ne!(t, sign(S, Purpose::Unsubscribe, "ann.lea@example.com"));
    }

    #[test]
    fn old_links_and_the_previous_secret_keep_working() {
        let old = old_form(S, Purpose::Unsubscribe, "a@example.com");
        assert_eq!(
            verify(S, Purpose::Unsubscribe, &old).as_deref(),
            Some("a@example.com")
        );
        let previous: &[u8] = b"the previous secret, also long";
        let t = sign(previous, Purpose::Unsubscribe, "a@example.com");
        assert_eq!(verify(S, Purpose::Unsubscribe, &t), None);
        assert_eq!(
            verify_any(&[S, previous], Purpose::Unsubscribe, &t).as_deref(),
            Some("a@example.com")
        );
        let old_prev = old_form(previous, Purpose::Unsubscribe, "a@example.com");
        assert!(verify_any(&[S, previous], Purpose::Unsubscribe, &old_prev).is_some());
        assert!(verify_any(&[S], Purpose::Unsubscribe, &old_prev).is_none());
    }

    #[test]
    fn forged_and_truncated_fail() {
        let t = old_form(S, Purpose::Unsubscribe, "a@example.com");
        let (_, m) = t.split_once('.').unwrap();
        let forged = format!("{}.{m}", B64.encode("b@example.com"));
        assert_eq!(verify(S, Purpose::Unsubscribe, &forged), None);
        let sealed = sign(S, Purpose::Unsubscribe, "a@example.com");
        let mut raw = B64.decode(&sealed).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert_eq!(verify(S, Purpose::Unsubscribe, &B64.encode(&raw)), None);
        assert_eq!(
            verify(S, Purpose::Unsubscribe, &sealed[..sealed.len() - 2]),
            None
        );
        assert_eq!(verify(S, Purpose::Unsubscribe, ""), None);
        assert_eq!(verify(S, Purpose::Unsubscribe, &t[..t.len() - 2]), None);
        assert_eq!(verify(S, Purpose::Unsubscribe, "garbage"), None);
        let c = sign(S, Purpose::Confirm { expires: 10 }, "a@example.com");
        assert!(verify(S, Purpose::Confirm { expires: 10 }, &c).is_some());
        assert!(verify(S, Purpose::Confirm { expires: 11 }, &c).is_none());
    }
}
