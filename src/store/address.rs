//! The `Address` newtype: a mailbox normalized once where it enters (a command line, a CSV
//! row, a form) and carried as is through subscribers, ledger rows and recipients.

use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("the address is empty")]
    Empty,
    #[error("`{0}` is not an email address: {1}")]
    Invalid(String, String),
}

/// A trimmed, lowercased, plain `user@domain` mailbox.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(String);

impl Address {
    /// Trims and lowercases `raw` and checks it is a plain `user@domain` mailbox.
    ///
    /// The whole address is lowercased: providers treat local parts case-insensitively in
    /// practice, and two rows for `Ann@x.org` and `ann@x.org` would mail one person twice.
    pub fn parse(raw: &str) -> Result<Address, AddressError> {
        let a = raw.trim();
        if a.is_empty() {
            return Err(AddressError::Empty);
        }
        let shown = a.chars().take(80).collect::<String>();
        if a.chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';'))
        {
            return Err(AddressError::Invalid(
                shown.escape_debug().to_string(),
                "it contains spaces, control characters or one of < > , ;".into(),
            ));
        }
        let a = a.to_lowercase();
        let (_, domain) = a
            .rsplit_once('@')
            .ok_or_else(|| AddressError::Invalid(shown.clone(), "it has no `@`".into()))?;
        if domain.starts_with('[') {
            return Err(AddressError::Invalid(
                shown,
                "an IP-literal domain such as [127.0.0.1] cannot be routed by the sender: use the domain name".into(),
            ));
        }
        if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') {
            return Err(AddressError::Invalid(
                shown,
                "the domain needs a dot, as in example.com".into(),
            ));
        }
        a.parse::<lettre::Address>()
            .map_err(|e| AddressError::Invalid(shown, e.to_string()))?;
        Ok(Address(a))
    }

    /// An address that was normalized before it was written: one read back from the state
    /// file, or one lettre has just parsed. Not checked again, so a row edited by hand into
    /// something else still reaches the message builder and fails there, as a failed delivery.
    pub(crate) fn unchecked(s: String) -> Address {
        Address(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl Deref for Address {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Address {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Address, AddressError> {
        Address::parse(s)
    }
}

/// What the store's methods take as an address: an [`Address`] as it is, or text, which is
/// normalized on the way in (`serve` and tests hand over plain strings).
pub trait ToAddress {
    fn to_address(&self) -> Result<Address, AddressError>;
}

impl ToAddress for Address {
    fn to_address(&self) -> Result<Address, AddressError> {
        Ok(self.clone())
    }
}

impl ToAddress for str {
    fn to_address(&self) -> Result<Address, AddressError> {
        Address::parse(self)
    }
}

impl ToAddress for String {
    fn to_address(&self) -> Result<Address, AddressError> {
        Address::parse(self)
    }
}

impl<T: ToAddress + ?Sized> ToAddress for &T {
    fn to_address(&self) -> Result<Address, AddressError> {
        (**self).to_address()
    }
}

/// [`Address::parse`] as a plain string, for callers that only pass it on as text.
pub(crate) fn normalize_address(raw: &str) -> Result<String, AddressError> {
    Address::parse(raw).map(Address::into_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_normalize_and_validate() {
        assert_eq!(
            Address::parse("  Ann@Example.COM ").unwrap().as_str(),
            "ann@example.com"
        );
        assert_eq!(
            normalize_address("  Ann@Example.COM ").unwrap(),
            "ann@example.com"
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@x.org",
            "ann@localhost",
            "a b@x.org",
            "a@x.org\r\nBcc: e@vil.org",
            "<a@x.org>",
            "a@@x.org",
            "a@x..org",
            "a@[127.0.0.1]",
            "a@[IPv6:::1]",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn an_address_is_not_normalized_twice() {
        let a = Address::parse("Bo@X.org").unwrap();
        assert_eq!(a.to_address().unwrap(), a);
        assert_eq!("BO@x.ORG".to_address().unwrap(), a);
        assert_eq!(
            "nope".to_address().unwrap_err().to_string(),
            "`nope` is not an email address: it has no `@`"
        );
    }
}
