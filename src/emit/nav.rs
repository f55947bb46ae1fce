//! The links between issue pages: the previous and next issue of the same feed set, and the
//! twins (the issues of the same day in another language).
//!
//! Pages arrive oldest first (the order `build` reads the issues in). A page is ready when
//! its day is over (every twin has arrived) and the next issue of its set has arrived, so at
//! most one page per set and the issues of one day wait: memory does not grow with the archive.

use chrono::NaiveDate;
use serde::Serialize;

/// Another issue, as a link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NavLink {
    pub title: String,
    pub url: String,
    pub date_display: String,
}

/// An issue of the same day in another language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Twin {
    /// The language tag (`zh`).
    pub lang: String,
    /// The language's own name (`中文`).
    pub label: String,
    pub url: String,
}

/// `nav` in `issue.html`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Nav {
    /// The page's own language tag and its name.
    pub lang: String,
    pub lang_label: String,
    /// The older issue of the same feed set.
    pub prev: Option<NavLink>,
    /// The newer issue of the same feed set.
    pub next: Option<NavLink>,
    /// The same day's issues in other languages, by language tag.
    pub twins: Vec<Twin>,
}

/// What the queue needs to know of an issue to place it.
#[derive(Debug, Clone)]
pub struct Placed {
    /// 0 for the main feeds, else 1 + the index of the first `[[feeds.extra]]` it is in.
    pub set: usize,
    pub day: NaiveDate,
    pub lang: String,
    pub link: NavLink,
}

/// A page whose links are all known.
pub struct Ready<P> {
    pub payload: P,
    pub nav: Nav,
}

struct Waiting<P> {
    payload: P,
    nav: Nav,
}

#[derive(Default)]
struct Set<P> {
    last: Option<NavLink>,
    waiting: Option<Waiting<P>>,
}

/// Pages waiting for their links, pushed oldest first.
pub struct NavQueue<P> {
    day: Vec<(Placed, P)>,
    sets: Vec<Set<P>>,
}

impl<P> NavQueue<P> {
    /// A queue for the main feeds and `extras` extra feeds.
    pub fn new(extras: usize) -> NavQueue<P> {
        NavQueue {
            day: Vec::new(),
            sets: (0..=extras)
                .map(|_| Set {
                    last: None,
                    waiting: None,
                })
                .collect(),
        }
    }

    /// Adds the next issue (none older may follow); the pages it completes.
    pub fn push(&mut self, placed: Placed, payload: P) -> Vec<Ready<P>> {
        let mut ready = Vec::new();
        if self.day.first().is_some_and(|(d, _)| d.day != placed.day) {
            self.close_day(&mut ready);
        }
        self.day.push((placed, payload));
        ready
    }

    /// Every page still waiting.
    pub fn finish(mut self) -> Vec<Ready<P>> {
        let mut ready = Vec::new();
        self.close_day(&mut ready);
        for set in &mut self.sets {
            if let Some(w) = set.waiting.take() {
                ready.push(Ready {
                    payload: w.payload,
                    nav: w.nav,
                });
            }
        }
        ready
    }

    fn close_day(&mut self, ready: &mut Vec<Ready<P>>) {
        let day = std::mem::take(&mut self.day);
        let twins_of = |k: usize| -> Vec<Twin> {
            let mut twins: Vec<Twin> = day
                .iter()
                .filter(|(p, _)| p.lang != day[k].0.lang)
                .map(|(p, _)| Twin {
                    lang: p.lang.clone(),
                    label: language_name(&p.lang),
                    url: p.link.url.clone(),
                })
                .collect();
            twins.sort_by(|a, b| a.lang.cmp(&b.lang).then_with(|| a.url.cmp(&b.url)));
            twins.dedup_by(|a, b| a.lang == b.lang);
            twins
        };
        let twins: Vec<Vec<Twin>> = (0..day.len()).map(twins_of).collect();
        let last = self.sets.len() - 1;
        for ((placed, payload), twins) in day.into_iter().zip(twins) {
            let set = &mut self.sets[placed.set.min(last)];
            if let Some(mut w) = set.waiting.take() {
                w.nav.next = Some(placed.link.clone());
                ready.push(Ready {
                    payload: w.payload,
                    nav: w.nav,
                });
            }
            let nav = Nav {
                lang_label: language_name(&placed.lang),
                lang: placed.lang,
                prev: set.last.replace(placed.link),
                next: None,
                twins,
            };
            set.waiting = Some(Waiting { payload, nav });
        }
    }
}

/// A language's name in that language, for the tags a newsletter is likely to use; else the
/// tag itself.
pub fn language_name(tag: &str) -> String {
    let primary = tag.split(['-', '_']).next().unwrap_or(tag);
    let name = match primary.to_ascii_lowercase().as_str() {
        "en" => "English",
        "zh" => "中文",
        "ja" => "日本語",
        "ko" => "한국어",
        "de" => "Deutsch",
        "fr" => "Français",
        "es" => "Español",
        "it" => "Italiano",
        "pt" => "Português",
        "nl" => "Nederlands",
        "ru" => "Русский",
        "uk" => "Українська",
        "pl" => "Polski",
        "sv" => "Svenska",
        "tr" => "Türkçe",
        _ => return tag.to_string(),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placed(set: usize, day: u32, lang: &str, slug: &str) -> Placed {
        Placed {
            set,
            day: NaiveDate::from_ymd_opt(2019, 1, day).unwrap(),
            lang: lang.into(),
            link: NavLink {
                title: slug.into(),
                url: format!("https://example.com/{slug}.html"),
                date_display: format!("{day} January 2019"),
            },
        }
    }

    fn titles(l: &Option<NavLink>) -> Option<&str> {
        l.as_ref().map(|l| l.title.as_str())
    }

    #[test]
    fn neighbours_stay_in_their_set_and_twins_are_the_same_day() {
        let mut q = NavQueue::new(1);
        let mut ready = Vec::new();
        for (set, day, lang, slug) in [
            (1, 1, "zh", "01-CN"),
            (0, 1, "en", "01"),
            (0, 8, "en", "02"),
            (0, 8, "en", "02b"),
            (1, 15, "zh", "03-CN"),
            (0, 15, "en", "03"),
            (0, 22, "en", "04"),
        ] {
            ready.extend(q.push(placed(set, day, lang, slug), slug));
            // Never more than one page per set besides the current day's.
            assert!(q.day.len() <= 2);
        }
        ready.extend(q.finish());
        let mut got: Vec<_> = ready
            .iter()
            .map(|r| {
                (
                    r.payload,
                    titles(&r.nav.prev),
                    titles(&r.nav.next),
                    r.nav
                        .twins
                        .iter()
                        .map(|t| t.label.as_str())
                        .collect::<Vec<_>>(),
                )
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("01", None, Some("02"), vec!["中文"]),
                ("01-CN", None, Some("03-CN"), vec!["English"]),
                ("02", Some("01"), Some("02b"), vec![]),
                ("02b", Some("02"), Some("03"), vec![]),
                ("03", Some("02b"), Some("04"), vec!["中文"]),
                ("03-CN", Some("01-CN"), None, vec!["English"]),
                ("04", Some("03"), None, vec![]),
            ]
        );
        let en = ready.iter().find(|r| r.payload == "01").unwrap();
        assert_eq!(en.nav.twins[0].url, "https://example.com/01-CN.html");
        assert_eq!(
            (en.nav.lang.as_str(), en.nav.lang_label.as_str()),
            ("en", "English")
        );
    }

    #[test]
    fn language_names() {
        assert_eq!(language_name("zh-CN"), "中文");
        assert_eq!(language_name("EN"), "English");
        assert_eq!(language_name("x-klingon"), "x-klingon");
    }
}
