//! `site.timezone`: an IANA zone or a fixed offset, and local times in it.

use std::fmt;
use std::str::FromStr;

use chrono::{FixedOffset, TimeZone};
use serde::{Deserialize, Deserializer};

/// `site.timezone`: an IANA name or a fixed offset such as `+08:00`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Timezone {
    Named(chrono_tz::Tz),
    Fixed(FixedOffset),
}

impl Default for Timezone {
    fn default() -> Self {
        Timezone::Named(chrono_tz::UTC)
    }
}

impl Timezone {
    /// The offset in force at a local date and time (the earlier one when ambiguous,
    /// the one after the gap when the time does not exist).
    pub fn offset_at(&self, local: chrono::NaiveDateTime) -> FixedOffset {
        match self {
            Timezone::Fixed(o) => *o,
            Timezone::Named(tz) => {
                use chrono::offset::Offset;
                match tz.offset_from_local_datetime(&local) {
                    chrono::LocalResult::Single(o) => o.fix(),
                    chrono::LocalResult::Ambiguous(a, _) => a.fix(),
                    chrono::LocalResult::None => tz
                        .offset_from_local_datetime(&(local + chrono::Duration::hours(1)))
                        .earliest()
                        .map(|o| o.fix())
                        .unwrap_or_else(|| FixedOffset::east_opt(0).expect("zero offset")),
                }
            }
        }
    }

    /// A local date and time in this zone.
    pub fn localize(&self, local: chrono::NaiveDateTime) -> chrono::DateTime<FixedOffset> {
        let off = self.offset_at(local);
        off.from_local_datetime(&local)
            .single()
            .unwrap_or_else(|| off.from_utc_datetime(&local))
    }

    /// The current time in this zone.
    pub fn now(&self) -> chrono::DateTime<FixedOffset> {
        let utc = chrono::Utc::now();
        match self {
            Timezone::Fixed(o) => utc.with_timezone(o),
            Timezone::Named(tz) => utc.with_timezone(tz).fixed_offset(),
        }
    }
}

impl FromStr for Timezone {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if let Ok(tz) = s.parse::<chrono_tz::Tz>() {
            return Ok(Timezone::Named(tz));
        }
        let probe = format!("2000-01-01T00:00:00{s}");
        if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(&probe) {
            return Ok(Timezone::Fixed(*dt.offset()));
        }
        Err(format!("unknown time zone `{s}`: use an IANA name such as `Europe/Berlin` or an offset such as `+08:00`"))
    }
}

impl fmt::Display for Timezone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Timezone::Named(tz) => write!(f, "{}", tz.name()),
            Timezone::Fixed(o) => write!(f, "{o}"),
        }
    }
}

impl<'de> Deserialize<'de> for Timezone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
