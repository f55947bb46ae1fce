//! `[feeds]` once validated: the `[[feeds.extra]]` globs compiled, and the one rule that says
//! which feeds an issue belongs to.

use std::path::{Path, PathBuf};

use super::raw::{ExtraFeedConfig, FeedsConfig};
use super::FeedContent;

/// `[feeds]` with `path` ending in `/` and every extra feed's glob compiled.
#[derive(Debug, Clone)]
pub struct Feeds {
    pub out: PathBuf,
    pub path: String,
    pub limit: usize,
    pub content: FeedContent,
    /// In the order of the file: the first feed an issue matches speaks for its page.
    pub extra: Vec<ExtraFeed>,
}

/// One `[[feeds.extra]]`: a subset of the issues, by a glob on their file names.
#[derive(Debug, Clone)]
pub struct ExtraFeed {
    pub name: String,
    /// The glob as written.
    pub pattern: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub language: Option<String>,
    matcher: globset::GlobMatcher,
}

impl ExtraFeed {
    /// Whether the issue file at `path` belongs to this feed (its file name matches).
    pub fn matches(&self, path: &Path) -> bool {
        path.file_name().is_some_and(|n| self.matcher.is_match(n))
    }
}

impl Feeds {
    /// The feeds with the globs that compiled; `validate` reports the others, so a config
    /// holding this value never misses one.
    pub(super) fn new(raw: FeedsConfig) -> Feeds {
        let extra = raw
            .extra
            .into_iter()
            .filter_map(|x: ExtraFeedConfig| {
                let matcher = globset::Glob::new(&x.pattern).ok()?.compile_matcher();
                Some(ExtraFeed {
                    name: x.name,
                    pattern: x.pattern,
                    title: x.title,
                    description: x.description,
                    language: x.language,
                    matcher,
                })
            })
            .collect();
        Feeds {
            out: raw.out,
            path: raw.path,
            limit: raw.limit,
            content: raw.content,
            extra,
        }
    }

    /// The one rule of `[[feeds.extra]]`: an issue belongs to every extra feed whose glob
    /// matches its file name (in the file's order), and to the main feeds only when none does.
    pub fn extras_of<'f>(&'f self, path: &'f Path) -> impl Iterator<Item = &'f ExtraFeed> + 'f {
        self.extra.iter().filter(move |x| x.matches(path))
    }

    /// Whether the issue at `path` is in the main feeds (no extra feed takes it).
    pub fn in_main(&self, path: &Path) -> bool {
        self.extras_of(path).next().is_none()
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    #[test]
    fn an_issue_joins_every_extra_feed_it_matches_in_file_order() {
        let c = Config::parse(
            "[site]\ntitle = \"T\"\nbase_url = \"https://e.com\"\n\
             [[feeds.extra]]\nname = \"zh\"\nmatch = \"*-CN.*\"\n\
             [[feeds.extra]]\nname = \"special\"\nmatch = \"2019-0[12]*\"\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let names = |p: &str| -> Vec<String> {
            c.feeds
                .extras_of(Path::new(p))
                .map(|x| x.name.clone())
                .collect()
        };
        assert_eq!(names("issues/2019-01-CN.md"), ["zh", "special"]);
        assert_eq!(names("issues/2019-03-CN.md"), ["zh"]);
        assert_eq!(names("issues/2019-02.md"), ["special"]);
        assert!(names("issues/2019-03.md").is_empty());
        // The glob reads the file name only, not the folders above it.
        assert!(names("2019-01-CN/2019-03.md").is_empty());
        assert!(!c.feeds.in_main(Path::new("issues/2019-01-CN.md")));
        assert!(c.feeds.in_main(Path::new("issues/2019-03.md")));
    }
}
