//! The plan of a send: which issue the command line means, which unfinished sends
//! `--latest` finishes (and why it leaves the others), and whether a started send has
//! anything due. The command prints what these decide.

use anyhow::{bail, Result};
use chrono::{DateTime, FixedOffset};

use super::policy::{age_cutoff, gave_up_by_age};
use crate::config::Config;
use crate::model::Issue;
use crate::store::{Counts, Store};

/// The issue `slug`, and a warning when it is a draft or dated in the future. Those are only
/// for a test copy (`testing`); a real send refuses them.
pub fn pick_slug(
    config: &Config,
    issues: &[Issue],
    slug: &str,
    now: DateTime<FixedOffset>,
    testing: bool,
) -> Result<(Issue, Option<String>)> {
    let Some(issue) = issues.iter().find(|i| i.slug == slug) else {
        bail!(
            "no issue `{slug}` in {}: give the file name without extension, as `techshack send 2019-01`",
            config.issues.dir.display()
        );
    };
    let mut warning = None;
    if !issue.is_published(now) {
        let what = if issue.draft {
            "a draft".to_string()
        } else {
            format!("dated in the future ({})", issue.date.to_rfc3339())
        };
        if !testing {
            bail!(
                "{} is {what}: publish it before sending (`--to ADDR` or `--dry-run DIR` make a test copy)",
                issue.path.display()
            );
        }
        warning = Some(format!(
            "{} is {what}: this is a test copy; publish it before sending to subscribers",
            issue.path.display()
        ));
    }
    Ok((issue.clone(), warning))
}

/// The newest published issue of the main feeds: issues a `[[feeds.extra]]` matches leave them.
pub fn pick_latest(
    config: &Config,
    issues: &[Issue],
    now: DateTime<FixedOffset>,
) -> Result<Option<Issue>> {
    let mut b = globset::GlobSetBuilder::new();
    for x in &config.feeds.extra {
        b.add(globset::Glob::new(&x.pattern)?);
    }
    let extra = b.build()?;
    Ok(issues
        .iter()
        .filter(|i| i.is_published(now))
        .filter(|i| {
            let name = i.path.file_name().map(|n| n.to_string_lossy().into_owned());
            !name.is_some_and(|n| extra.is_match(n))
        })
        .max_by(|a, b| a.date.cmp(&b.date).then_with(|| a.slug.cmp(&b.slug)))
        .cloned())
}

/// Whole days between `issue`'s date and `now`, when that is more than `max_age_days`.
pub fn older_than(issue: &Issue, now: DateTime<FixedOffset>, max_age_days: u32) -> Option<i64> {
    let age = now.signed_duration_since(issue.date);
    (age > chrono::Duration::days(i64::from(max_age_days))).then(|| age.num_days())
}

/// What `--latest` does with a send that was started and not finished.
#[derive(Debug, Clone, PartialEq)]
pub enum Unfinished<'a> {
    /// Nothing left to do after all (the age cap failed what was deferred).
    Complete,
    /// The issue's file is gone from the folder.
    Missing,
    /// The issue is a draft again, or dated in the future.
    NotPublished(&'a Issue),
    /// The issue is older than `--max-age` days (`days` old).
    TooOld { issue: &'a Issue, days: i64 },
    /// Finish it in this run.
    Finish(&'a Issue),
}

/// One unfinished send as `--latest` found it.
#[derive(Debug, Clone, PartialEq)]
pub struct UnfinishedSend<'a> {
    pub slug: String,
    /// Deferred rows failed by the age cap just before (see [`expire`]).
    pub expired: usize,
    pub counts: Counts,
    pub verdict: Unfinished<'a>,
}

/// Decides one unfinished send from its counts and the issue of that slug, if any.
pub fn judge<'a>(
    counts: &Counts,
    issue: Option<&'a Issue>,
    now: DateTime<FixedOffset>,
    max_age_days: u32,
) -> Unfinished<'a> {
    if counts.is_complete() {
        return Unfinished::Complete;
    }
    let Some(issue) = issue else {
        return Unfinished::Missing;
    };
    if !issue.is_published(now) {
        return Unfinished::NotPublished(issue);
    }
    match older_than(issue, now, max_age_days) {
        Some(days) => Unfinished::TooOld { issue, days },
        None => Unfinished::Finish(issue),
    }
}

/// Every send started and not finished, oldest first, except `newest` (the caller handles
/// it), each judged after the age cap has failed its expired rows.
pub fn unfinished<'a>(
    store: &mut Store,
    issues: &'a [Issue],
    newest: Option<&str>,
    now: DateTime<FixedOffset>,
    unix_now: i64,
    max_age_days: u32,
    max_age_hours: i64,
) -> Result<Vec<UnfinishedSend<'a>>> {
    let mut out = Vec::new();
    for slug in store.unfinished_issues()? {
        if Some(slug.as_str()) == newest {
            continue;
        }
        let expired = expire(store, &slug, unix_now, max_age_hours)?;
        let counts = store.counts(&slug)?;
        let issue = issues.iter().find(|i| i.slug == slug);
        let verdict = judge(&counts, issue, now, max_age_days);
        out.push(UnfinishedSend {
            slug,
            expired,
            counts,
            verdict,
        });
    }
    Ok(out)
}

/// The issues a `--latest` run sends, by date then slug; `true` marks the newest.
pub fn order<'a>(older: Vec<&'a Issue>, newest: Option<&'a Issue>) -> Vec<(&'a Issue, bool)> {
    let mut all: Vec<(&Issue, bool)> = older.into_iter().map(|i| (i, false)).collect();
    if let Some(n) = newest {
        all.push((n, true));
    }
    all.sort_by(|(a, _), (b, _)| a.date.cmp(&b.date).then_with(|| a.slug.cmp(&b.slug)));
    all
}

/// Fails the deferred rows of `slug` first attempted more than `max_age_hours` before
/// `unix_now`: such rows are final, not due, so this runs before anything is selected.
/// Returns how many failed.
pub fn expire(store: &mut Store, slug: &str, unix_now: i64, max_age_hours: i64) -> Result<usize> {
    store.expire_deferred(
        slug,
        age_cutoff(unix_now, max_age_hours),
        &gave_up_by_age(max_age_hours, ""),
    )
}

/// Where a send that was started stands at the start of this run.
#[derive(Debug, Clone, PartialEq)]
pub enum Resume {
    Complete(Counts),
    /// Rows wait, none due yet; `next` is the earliest retry (Unix seconds).
    NothingDue {
        next: i64,
        counts: Counts,
    },
    Deliver,
}

/// Applies the age cap to a started send, then says whether anything is due at `unix_now`.
/// Returns the rows the cap failed too.
pub fn resume(
    store: &mut Store,
    slug: &str,
    unix_now: i64,
    max_age_hours: i64,
) -> Result<(usize, Resume)> {
    let expired = expire(store, slug, unix_now, max_age_hours)?;
    let counts = store.counts(slug)?;
    if counts.is_complete() {
        return Ok((expired, Resume::Complete(counts)));
    }
    if store.due_count(slug, unix_now)? == 0 {
        let next = store.next_due(slug)?.unwrap_or(unix_now);
        return Ok((expired, Resume::NothingDue { next, counts }));
    }
    Ok((expired, Resume::Deliver))
}

#[cfg(test)]
mod tests;
