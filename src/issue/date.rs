//! Issue dates: front matter values and dates held in file names.

use chrono::format::{parse_and_remainder, Parsed, StrftimeItems};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Weekday};

use crate::config::Timezone;

/// The forms a date may be written in, for error messages.
pub const FORMS: &str = "YYYY-MM-DD, YYYY-MM-DD HH:MM or RFC 3339 (2019-01-07T09:00:00+08:00)";

/// Parses a front matter date: RFC 3339, `YYYY-MM-DD HH:MM[:SS]` (also with `T`), or
/// `YYYY-MM-DD`, months and days padded or not. A date without a time gets `time`; a
/// date and time without an offset is local time in `tz`.
pub fn parse_date(raw: &str, time: NaiveTime, tz: &Timezone) -> Option<DateTime<FixedOffset>> {
    let s = raw.trim();
    if s.is_empty() || !s.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d);
    }
    // An offset written after a space or with a `T` but not quite RFC 3339.
    for f in [
        "%Y-%m-%d %H:%M:%S%:z",
        "%Y-%m-%d %H:%M%:z",
        "%Y-%m-%dT%H:%M%:z",
    ] {
        if let Ok(d) = DateTime::parse_from_str(s, f) {
            return Some(d);
        }
        if let Some(rest) = s.strip_suffix('Z') {
            let f = f.trim_end_matches("%:z");
            if let Ok(n) = NaiveDateTime::parse_from_str(rest, f) {
                return Some(n.and_utc().fixed_offset());
            }
        }
    }
    for f in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, f) {
            return Some(tz.localize(n));
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .map(|d| tz.localize(d.and_time(time)))
}

/// Reads a date from the start of a file name with `format` (a chrono format such as `%G-%V`
/// or `%Y-%m-%d`); the rest of the name is ignored, so `2019-31-CN` reads as `2019-31`. An ISO
/// week without a weekday means its Monday.
pub fn from_file_name(
    name: &str,
    format: &str,
    time: NaiveTime,
    tz: &Timezone,
) -> Option<DateTime<FixedOffset>> {
    let mut parsed = Parsed::new();
    parse_and_remainder(&mut parsed, name, StrftimeItems::new(format)).ok()?;
    if parsed.weekday().is_none() && parsed.isoweek().is_some() {
        parsed.set_weekday(Weekday::Mon).ok()?;
    }
    let date = parsed.to_naive_date().ok()?;
    let t = if parsed.hour_div_12().is_some() {
        parsed.to_naive_time().ok()?
    } else {
        time
    };
    let local = date.and_time(t);
    match parsed.offset() {
        Some(secs) => {
            let off = FixedOffset::east_opt(secs)?;
            local.and_local_timezone(off).single()
        }
        None => Some(tz.localize(local)),
    }
}

/// Formats a date in `format` as a file name prefix, the inverse of [`from_file_name`].
pub fn to_file_name(date: NaiveDate, format: &str) -> Option<String> {
    use std::fmt::Write;
    let mut s = String::new();
    write!(s, "{}", date.format(format)).ok()?;
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nine() -> NaiveTime {
        NaiveTime::from_hms_opt(9, 0, 0).unwrap()
    }

    #[test]
    fn iso_week_is_its_monday() {
        let tz = Timezone::default();
        let d = from_file_name("2019-01", "%G-%V", nine(), &tz).unwrap();
        assert_eq!(d.to_rfc3339(), "2018-12-31T09:00:00+00:00");
        let d = from_file_name("2019-31-CN", "%G-%V", nine(), &tz).unwrap();
        assert_eq!(d.to_rfc3339(), "2019-07-29T09:00:00+00:00");
        assert!(from_file_name("notes", "%G-%V", nine(), &tz).is_none());
        assert!(from_file_name("2019-54", "%G-%V", nine(), &tz).is_none());
    }

    #[test]
    fn calendar_file_names_in_a_zone() {
        let tz: Timezone = "Asia/Shanghai".parse().unwrap();
        let d = from_file_name("2013-06-07-this-week", "%Y-%m-%d", nine(), &tz).unwrap();
        assert_eq!(d.to_rfc3339(), "2013-06-07T09:00:00+08:00");
    }

    #[test]
    fn front_matter_forms() {
        let tz = Timezone::default();
        let p = |s| parse_date(s, nine(), &tz).map(|d| d.to_rfc3339());
        assert_eq!(p("2020-12-2").as_deref(), Some("2020-12-02T09:00:00+00:00"));
        assert_eq!(
            p("2013-06-07 18:46").as_deref(),
            Some("2013-06-07T18:46:00+00:00")
        );
        assert_eq!(
            p("2019-01-07T10:00:00+08:00").as_deref(),
            Some("2019-01-07T10:00:00+08:00")
        );
        assert_eq!(
            p("2019-01-07T10:00Z").as_deref(),
            Some("2019-01-07T10:00:00+00:00")
        );
        assert_eq!(p("last tuesday"), None);
        assert_eq!(p("2019-02-30"), None);
        assert_eq!(p(""), None);
    }

    #[test]
    fn offset_from_named_zone_follows_daylight_saving() {
        let tz: Timezone = "Europe/Berlin".parse().unwrap();
        let d = parse_date("2019-07-01", nine(), &tz).unwrap();
        assert_eq!(d.to_rfc3339(), "2019-07-01T09:00:00+02:00");
    }

    #[test]
    fn file_name_round_trip() {
        let tz = Timezone::default();
        let monday = NaiveDate::from_ymd_opt(2018, 12, 31).unwrap();
        let name = to_file_name(monday, "%G-%V").unwrap();
        assert_eq!(name, "2019-01");
        let back = from_file_name(&name, "%G-%V", nine(), &tz).unwrap();
        assert_eq!(back.date_naive(), monday);
    }
}
