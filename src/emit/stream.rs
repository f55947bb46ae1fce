//! Every feed and archive written while the issues arrive, oldest first: an archive page as
//! soon as it fills, the subscription documents at the end. Only the newest `feeds.limit`
//! entries of each family are held, so memory does not grow with the archive.

use std::borrow::Borrow;
use std::collections::VecDeque;

use anyhow::Result;
use chrono::{DateTime, FixedOffset};
use rayon::prelude::*;

use super::{
    base_meta, extra_meta, issue_entry, item_entry, write_job, Entry, Family, Format, Job, Staging,
};
use super::{FeedMeta, Written};
use crate::config::Config;
use crate::model::Issue;

/// One entry still held: an issue, or its `k`-th item.
enum Unit<I> {
    Issue(I),
    Item(I, usize),
}

impl<I: Borrow<Issue>> Unit<I> {
    fn entry(&self, lang: &str) -> Entry<'_> {
        match self {
            Unit::Issue(i) => issue_entry(i.borrow(), lang),
            Unit::Item(i, k) => {
                let i = i.borrow();
                item_entry(i, *k, &i.items[*k], lang)
            }
        }
    }
}

/// One family of documents: its newest entries and how many it has had.
struct Stream<I> {
    name: String,
    items: bool,
    meta: FeedMeta,
    id: String,
    newest: VecDeque<Unit<I>>,
    count: usize,
}

impl<I> Stream<I> {
    /// The documents this stream writes, as the feed plan names them.
    fn family<'a>(&'a self, config: &'a Config) -> Family<'a, 'a> {
        Family {
            config,
            meta: &self.meta,
            feed_id: &self.id,
            stem_name: &self.name,
            items: self.items,
        }
    }
}

/// Writes the feeds of issues pushed oldest first (see [`super::write_feeds`]).
pub struct FeedWriter<'c, I> {
    config: &'c Config,
    limit: usize,
    /// The main issues, the main articles, then one per `[[feeds.extra]]`.
    streams: Vec<Stream<I>>,
    written: Written,
    newest_updated: Option<DateTime<FixedOffset>>,
}

impl<'c, I: Borrow<Issue> + Clone> FeedWriter<'c, I> {
    pub fn new(config: &'c Config) -> FeedWriter<'c, I> {
        let layout = config.layout();
        let base = base_meta(config);
        let stream = |name: &str, items: bool, meta: FeedMeta| Stream {
            name: name.to_string(),
            items,
            id: layout.feed_id(&layout.feed_file(name, items, Format::Atom)),
            meta,
            newest: VecDeque::new(),
            count: 0,
        };
        let mut articles = base.clone();
        articles.title = format!("{} (articles)", articles.title);
        let mut streams = vec![stream("", false, base.clone()), stream("", true, articles)];
        for x in &config.feeds.extra {
            streams.push(stream(&x.name, false, extra_meta(config, &base, x)));
        }
        FeedWriter {
            config,
            limit: config.feeds.limit.max(1),
            streams,
            written: Written::default(),
            newest_updated: None,
        }
    }

    /// Adds the next published issue (none older may follow), writing every archive page it
    /// fills. An issue matched by an extra feed is in every extra feed it matches and not in
    /// the main ones (see [`crate::config::Feeds::extras_of`]).
    pub fn push(&mut self, issue: I, staging: &Staging) -> Result<()> {
        let i: &Issue = issue.borrow();
        self.newest_updated = self.newest_updated.max(Some(i.updated));
        let mut matched = false;
        for (k, x) in self.config.feeds.extra.iter().enumerate() {
            if x.matches(&i.path) {
                matched = true;
                self.add(2 + k, Unit::Issue(issue.clone()), staging)?;
            }
        }
        if !matched {
            let items = i.items.len();
            self.add(0, Unit::Issue(issue.clone()), staging)?;
            // Oldest first overall, so each issue's items go in reverse: newest-first
            // documents then list them in the issue's own order.
            for k in (0..items).rev() {
                self.add(1, Unit::Item(issue.clone(), k), staging)?;
            }
        }
        Ok(())
    }

    fn add(&mut self, stream: usize, unit: Unit<I>, staging: &Staging) -> Result<()> {
        let limit = self.limit;
        let s = &mut self.streams[stream];
        if s.newest.len() == limit {
            s.newest.pop_front();
        }
        s.newest.push_back(unit);
        s.count += 1;
        if s.count % limit != 0 {
            return Ok(());
        }
        let lang = s.meta.language.as_str();
        let entries: Vec<Entry<'_>> = s.newest.iter().map(|u| u.entry(lang)).collect();
        let jobs = s.family(self.config).archive(s.count / limit, &entries);
        self.written.archives += jobs.len();
        write_jobs(&jobs, staging)
    }

    /// Writes the subscription documents of every family; what was written in all.
    ///
    /// With no issue pushed nothing is written (the caller says so).
    pub fn finish(self, staging: &Staging) -> Result<Written> {
        let Some(newest) = self.newest_updated else {
            return Ok(Written::default());
        };
        let mut written = self.written;
        let mut jobs = Vec::new();
        let mut all: Vec<(&Stream<I>, Vec<Entry<'_>>)> = Vec::new();
        for s in &self.streams {
            let lang = s.meta.language.as_str();
            all.push((s, s.newest.iter().map(|u| u.entry(lang)).collect()));
            match (s.name.is_empty(), s.items) {
                (true, false) => written.issues = s.count,
                (true, true) => written.items = s.count,
                _ => {}
            }
        }
        for (s, entries) in &all {
            jobs.extend(
                s.family(self.config)
                    .current(s.count / self.limit, entries, newest),
            );
        }
        written.documents = jobs.len();
        write_jobs(&jobs, staging)?;
        Ok(written)
    }
}

fn write_jobs(jobs: &[Job<'_, '_>], staging: &Staging) -> Result<()> {
    jobs.par_iter()
        .try_for_each(|job| staging.add(&job.path, |w| write_job(job, w)))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::emit::tests::{config, issue};

    #[test]
    fn an_archive_page_is_written_as_it_fills_and_only_the_newest_entries_stay() {
        let c = config("");
        let dir = tempfile::tempdir().unwrap();
        let staging = Staging::new(dir.path()).unwrap();
        let layout = c.layout();
        let page = |p: usize, items: bool, f: Format| {
            PathBuf::from(layout.archive_file(&layout.feed_file("", items, f), p))
        };
        let issues: Vec<Issue> = (1..=5)
            .map(|k| {
                let when = format!("2019-0{k}-07T09:00:00Z");
                issue(&c, &format!("2019-0{k}"), &when, 3)
            })
            .collect();
        let mut feeds = FeedWriter::new(&c);
        feeds.push(&issues[0], &staging).unwrap();
        let staged = staging.paths();
        assert!(
            !staged.contains(&page(1, false, Format::Atom)),
            "{staged:?}"
        );
        // Three articles fill the first page of the articles (limit 2) at once.
        assert!(staged.contains(&page(1, true, Format::Atom)), "{staged:?}");
        feeds.push(&issues[1], &staging).unwrap();
        let staged = staging.paths();
        assert!(staged.contains(&page(1, false, Format::Atom)), "{staged:?}");
        assert!(staged.contains(&page(1, false, Format::Rss)), "{staged:?}");
        assert!(
            !staged.contains(&page(2, false, Format::Atom)),
            "{staged:?}"
        );
        for i in &issues[2..] {
            feeds.push(i, &staging).unwrap();
            assert!(feeds.streams.iter().all(|s| s.newest.len() <= 2));
        }
        assert!(staging.paths().contains(&page(2, false, Format::Rss)));
        let written = feeds.finish(&staging).unwrap();
        assert_eq!(written.issues, 5);
        assert_eq!(written.items, 15);
        // Issues: pages 1 and 2; articles: 7 pages; each in Atom and RSS.
        assert_eq!(written.archives, 2 * (2 + 7));
        // Three documents for the main issues, the articles and the extra feed.
        assert_eq!(written.documents, 9);
    }
}
