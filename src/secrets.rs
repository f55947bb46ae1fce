//! What a command reads from its environment besides the config: the signing secret
//! (`$TECHSHACK_SECRET`), the SMTP password (`$TECHSHACK_SMTP_PASSWORD`) and the clock
//! (`$TECHSHACK_NOW`, for tests). Each is read here once and carried by the command context.

use anyhow::{bail, Context as _, Result};
use chrono::{DateTime, FixedOffset};

use crate::config::Timezone;

/// The environment variable of the signing secret.
pub const SECRET_ENV: &str = "TECHSHACK_SECRET";
/// The secret that signed links before a rotation: still accepted for verification (and for
/// recognizing erased addresses) while set, never used to sign.
pub const SECRET_PREVIOUS_ENV: &str = "TECHSHACK_SECRET_PREVIOUS";
/// The environment variable of the SMTP password.
pub const SMTP_PASSWORD_ENV: &str = "TECHSHACK_SMTP_PASSWORD";
/// A hidden clock for tests and reproducible builds: an RFC 3339 time that stands for "now"
/// (which issues are in the future, the date of a new issue). Not meant for users.
pub const NOW_ENV: &str = "TECHSHACK_NOW";

/// The secrets of the environment, unchecked until a command needs them.
#[derive(Clone, Default)]
pub struct Secrets {
    /// Whether `$TECHSHACK_SECRET` is set at all, even to something unusable.
    secret_set: bool,
    secret: Option<String>,
    previous: Option<String>,
    smtp_password: Option<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the values, not even in debug output.
        f.debug_struct("Secrets")
            .field("secret_set", &self.secret_set)
            .field("previous_set", &self.previous.is_some())
            .field("smtp_password_set", &self.smtp_password.is_some())
            .finish()
    }
}

impl Secrets {
    /// Reads both variables of the process environment.
    pub fn from_env() -> Secrets {
        Secrets {
            secret_set: std::env::var_os(SECRET_ENV).is_some(),
            secret: std::env::var(SECRET_ENV).ok(),
            previous: std::env::var(SECRET_PREVIOUS_ENV)
                .ok()
                .filter(|v| !v.is_empty()),
            smtp_password: std::env::var(SMTP_PASSWORD_ENV).ok(),
        }
    }

    /// The environment's values, replaced by those of a secrets file (`--secrets FILE`):
    /// `KEY=value` lines, `#` comments and blank lines. A value is every byte after the first
    /// `=` to the end of the line, exactly: no quotes, no escapes, no `$` expansion, so a
    /// password holding `&`, `$`, `"` or `#` needs no care. Only the two keys are allowed;
    /// anything else is an error at its line (a typo would otherwise go unnoticed).
    pub fn from_file(path: &std::path::Path) -> Result<Secrets> {
        use crate::diag::{Diagnostic, Diagnostics};
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the secrets file {}", path.display()))?;
        let mut s = Secrets::from_env();
        let mut problems = Vec::new();
        for (i, line) in text.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let at = Some((i + 1, 1));
            match line.split_once('=') {
                Some((SECRET_ENV, v)) => {
                    s.secret_set = true;
                    s.secret = Some(v.to_string());
                }
                Some((SMTP_PASSWORD_ENV, v)) => s.smtp_password = Some(v.to_string()),
                Some((SECRET_PREVIOUS_ENV, v)) => {
                    s.previous = Some(v.to_string()).filter(|v| !v.is_empty())
                }
                Some((k, _)) => problems.push(Diagnostic::error(
                    path,
                    at,
                    format!("unknown key `{}`: a secrets file holds only {SECRET_ENV}=..., {SECRET_PREVIOUS_ENV}=... and {SMTP_PASSWORD_ENV}=... lines, without quotes or `export`", k.trim()),
                )),
                None => problems.push(Diagnostic::error(
                    path,
                    at,
                    format!("not a KEY=value line: write {SECRET_ENV}=... or {SMTP_PASSWORD_ENV}=..."),
                )),
            }
        }
        if !problems.is_empty() {
            return Err(Diagnostics(problems).into());
        }
        Ok(s)
    }

    /// Whether `$TECHSHACK_SECRET` is set (preview signs with a fixed secret otherwise).
    pub fn has_secret(&self) -> bool {
        self.secret_set
    }

    /// The key that signs unsubscribe and confirm links, or an error saying how to set it.
    pub fn signing_key(&self) -> Result<&[u8]> {
        match &self.secret {
            Some(s) if s.len() >= 16 => Ok(s.as_bytes()),
            Some(_) => bail!("$TECHSHACK_SECRET is shorter than 16 bytes: use a long random value (openssl rand -hex 32)"),
            None => bail!("$TECHSHACK_SECRET is not set: it signs unsubscribe links; set it to a long random value (openssl rand -hex 32)"),
        }
    }

    /// The keys a link or an erased address may have been made with: the signing key, then
    /// `$TECHSHACK_SECRET_PREVIOUS` during a rotation. Empty without a usable secret.
    pub fn verification_keys(&self) -> Vec<Vec<u8>> {
        let mut keys: Vec<Vec<u8>> = self
            .signing_key()
            .ok()
            .map(<[u8]>::to_vec)
            .into_iter()
            .collect();
        if let Some(p) = self.previous.as_deref().filter(|p| p.len() >= 16) {
            keys.push(p.as_bytes().to_vec());
        }
        keys
    }

    /// `$TECHSHACK_SMTP_PASSWORD`, when set.
    pub fn smtp_password(&self) -> Option<&str> {
        self.smtp_password.as_deref()
    }
}

/// The time commands take as "now": the system clock, or a fixed time for tests.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// `Some(Err)` for an unreadable `$TECHSHACK_NOW`, reported by the first command that
    /// asks the time.
    fixed: Option<std::result::Result<DateTime<FixedOffset>, (String, String)>>,
}

impl Clock {
    /// The system clock unless `$TECHSHACK_NOW` is set (and not empty).
    pub fn from_env() -> Clock {
        match std::env::var(NOW_ENV) {
            Ok(v) if !v.is_empty() => Clock {
                fixed: Some(DateTime::parse_from_rfc3339(&v).map_err(|e| (v, e.to_string()))),
            },
            _ => Clock::default(),
        }
    }

    /// Always `at`.
    pub fn fixed(at: DateTime<FixedOffset>) -> Clock {
        Clock {
            fixed: Some(Ok(at)),
        }
    }

    /// Now: in `tz` from the system clock, or the fixed time as it was given.
    pub fn now(&self, tz: &Timezone) -> Result<DateTime<FixedOffset>> {
        match &self.fixed {
            None => Ok(tz.now()),
            Some(Ok(t)) => Ok(*t),
            Some(Err((v, why))) => Err(anyhow::anyhow!("{why}")).with_context(|| {
                format!("${NOW_ENV} `{v}` is not an RFC 3339 time such as 2019-04-15T09:00:00Z")
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secrets_file_is_read_literally() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secrets.env");
        std::fs::write(
            &p,
            "# comment\n\nTECHSHACK_SECRET=a&b$c\"d'e#f g=h \r\nTECHSHACK_SMTP_PASSWORD=p&w$(x)\\\n",
        )
        .unwrap();
        let s = Secrets::from_file(&p).unwrap();
        assert_eq!(s.signing_key().unwrap(), b"a&b$c\"d'e#f g=h ");
        assert_eq!(s.smtp_password(), Some("p&w$(x)\\"));
        std::fs::write(
            &p,
            "export TECHSHACK_SECRET=x\nTECHSHACK_SECRE=y\nnonsense\n",
        )
        .unwrap();
        let e = Secrets::from_file(&p).unwrap_err().to_string();
        assert!(
            e.contains(":1:1: error: unknown key `export TECHSHACK_SECRET`"),
            "{e}"
        );
        assert!(
            e.contains(":2:1: error: unknown key `TECHSHACK_SECRE`"),
            "{e}"
        );
        assert!(e.contains(":3:1: error: not a KEY=value line"), "{e}");
        assert!(!e.contains("=y"), "a value is never printed: {e}");
    }

    #[test]
    fn the_secret_is_checked_when_a_command_signs() {
        let s = |v: Option<&str>| Secrets {
            secret_set: v.is_some(),
            secret: v.map(str::to_string),
            previous: None,
            smtp_password: Some("hunter2".into()),
        };
        assert_eq!(
            s(Some("0123456789abcdef")).signing_key().unwrap(),
            b"0123456789abcdef"
        );
        let e = s(Some("short")).signing_key().unwrap_err().to_string();
        assert!(e.contains("shorter than 16 bytes"), "{e}");
        let e = s(None).signing_key().unwrap_err().to_string();
        assert!(e.starts_with("$TECHSHACK_SECRET is not set"), "{e}");
        assert!(!format!("{:?}", s(Some("0123456789abcdef"))).contains("hunter2"));
    }

    #[test]
    fn a_fixed_clock_ignores_the_zone_and_a_bad_one_says_why() {
        let at = DateTime::parse_from_rfc3339("2019-04-15T09:00:00+08:00").unwrap();
        let tz: Timezone = "Europe/Berlin".parse().unwrap();
        assert_eq!(Clock::fixed(at).now(&tz).unwrap(), at);
        let bad = Clock {
            fixed: Some(Err((
                "next tuesday".into(),
                "input contains invalid characters".into(),
            ))),
        };
        let e = format!("{:#}", bad.now(&tz).unwrap_err());
        assert!(
            e.starts_with("$TECHSHACK_NOW `next tuesday` is not an RFC 3339 time"),
            "{e}"
        );
    }
}
