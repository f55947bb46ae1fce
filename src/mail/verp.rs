//! VERP return paths: each message's envelope sender carries a signed token naming its
//! delivery, so a bounce that comes back later is matched to the row it answers even when the
//! report itself is mangled. `email.return_path = "bounces+{token}@example.com"`.
//!
//! The token is the delivery's row id and 80 bits of HMAC-SHA256 over the id and the
//! recipient's address: `1234-0f3a…` (decimal and lowercase hex, so a mail system that folds
//! the case of local parts does not break it). At most 40 characters, so a local part of at
//! most 64 octets has room for a prefix of 24.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The longest token: a 19-digit id, a dash and 20 hex digits.
pub const MAX_TOKEN: usize = 40;

fn mac(key: &[u8], id: i64, address: &str) -> [u8; 10] {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(b"verp\0");
    m.update(id.to_string().as_bytes());
    m.update(b"\0");
    m.update(address.to_ascii_lowercase().as_bytes());
    let full = m.finalize().into_bytes();
    let mut out = [0u8; 10];
    out.copy_from_slice(&full[..10]);
    out
}

/// The token of delivery `id` to `address`.
pub fn token(key: &[u8], id: i64, address: &str) -> String {
    format!("{id}-{}", crate::token::hex(&mac(key, id, address)))
}

/// The delivery id a token names, before it is checked against the delivery's address.
pub fn id_of(token: &str) -> Option<i64> {
    let (id, hex) = token.split_once('-')?;
    (hex.len() == 20 && hex.bytes().all(|b| b.is_ascii_hexdigit()) && !id.starts_with('+'))
        .then(|| id.parse::<i64>().ok())
        .flatten()
        .filter(|id| *id > 0)
}

/// Whether `token` was made by one of `keys` for delivery `id` to `address`.
pub fn verify(keys: &[Vec<u8>], token: &str, id: i64, address: &str) -> bool {
    let Some((_, hex)) = token.split_once('-') else {
        return false;
    };
    let hex = hex.to_ascii_lowercase();
    let given: Vec<u8> = (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok())
        .collect();
    given.len() == 10
        && keys
            .iter()
            .any(|k| bool::from(mac(k, id, address).ct_eq(&given)))
}

/// `email.return_path` with the delivery's token in place of `{token}`.
pub fn address(pattern: &str, key: &[u8], id: i64, address: &str) -> String {
    pattern.replace("{token}", &token(key, id, address))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_for_their_delivery_only() {
        let k = b"0123456789abcdef0123456789abcdef".to_vec();
        let ks = vec![k.clone()];
        let t = token(&k, 42, "Bob@Example.org");
        assert!(t.starts_with("42-") && t.len() == 23, "{t}");
        assert_eq!(id_of(&t), Some(42));
        assert!(verify(&ks, &t, 42, "bob@example.org"));
        assert!(verify(&ks, &t.to_ascii_uppercase(), 42, "bob@example.org"));
        assert!(!verify(&ks, &t, 43, "bob@example.org"));
        assert!(!verify(&ks, &t, 42, "carol@example.org"));
        assert!(!verify(
            &[b"another key".to_vec()],
            &t,
            42,
            "bob@example.org"
        ));
        assert!(verify(
            &[b"another key".to_vec(), k.clone()],
            &t,
            42,
            "bob@example.org"
        ));
        let longest = token(&k, i64::MAX, "x@y");
        assert_eq!(longest.len(), MAX_TOKEN);
        for bad in [
            "",
            "42",
            "42-",
            "x-00112233445566778899",
            "-1-00112233445566778899",
            "0-00112233445566778899",
            "42-0011",
        ] {
            assert_eq!(id_of(bad), None, "{bad}");
        }
    }
}
