//! The sanitizer for raw HTML (ammonia with the crate's allow-list), which also makes the
//! URLs in it absolute and remembers the site-path images it saw.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use super::url::absolutize;
use super::Settings;

/// The sanitizer for raw HTML, made once per issue, and the site paths it saw.
pub(super) struct Sanitizer {
    builder: ammonia::Builder<'static>,
    site_paths: Arc<Mutex<Vec<String>>>,
}

impl Sanitizer {
    pub(super) fn new(s: &Settings) -> Sanitizer {
        let base = s.base_url.to_string();
        let page = s.page_url.to_string();
        let site_paths = Arc::new(Mutex::new(Vec::new()));
        let mut builder = ammonia::Builder::default();
        // Responsive images and media players survive with their sources; `autoplay` does not.
        builder
            .add_tags(["picture", "source", "video", "audio"])
            .add_tag_attributes("img", ["srcset", "sizes", "loading"])
            .add_tag_attributes(
                "source",
                ["src", "srcset", "sizes", "media", "type", "width", "height"],
            )
            .add_tag_attributes(
                "video",
                [
                    "src",
                    "poster",
                    "controls",
                    "width",
                    "height",
                    "loop",
                    "muted",
                    "playsinline",
                    "preload",
                ],
            )
            .add_tag_attributes("audio", ["src", "controls", "loop", "muted", "preload"]);
        // ammonia rewrites `src`, `href` and `poster` through `url_relative`, but not the
        // candidate list of `srcset`.
        let srcset = Rewriter {
            base: base.clone(),
            page: page.clone(),
            seen: Arc::clone(&site_paths),
        };
        builder.attribute_filter(move |_, attr, value| {
            if attr == "srcset" {
                Some(Cow::Owned(srcset.srcset(value)))
            } else {
                Some(Cow::Borrowed(value))
            }
        });
        builder.url_relative(ammonia::UrlRelative::Custom(Box::new(Rewriter {
            base,
            page,
            seen: Arc::clone(&site_paths),
        })));
        Sanitizer {
            builder,
            site_paths,
        }
    }

    pub(super) fn clean(&self, h: &str) -> String {
        self.builder.clean(h).to_string()
    }

    pub(super) fn take_site_paths(&self) -> Vec<String> {
        self.site_paths
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}

/// Makes the relative URLs of raw HTML absolute and remembers the site paths it saw.
struct Rewriter {
    base: String,
    page: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Rewriter {
    fn rewrite<'u>(&self, u: &'u str) -> Option<Cow<'u, str>> {
        if u.starts_with('/') && !u.starts_with("//") {
            if let Ok(mut v) = self.seen.lock() {
                v.push(u.to_string());
            }
        }
        absolutize(u, &self.base, &self.page)
    }

    /// A `srcset` with every candidate's URL made absolute; candidates that are not http(s)
    /// after that (`data:`, `javascript:`) are dropped.
    fn srcset(&self, value: &str) -> String {
        let mut out = String::with_capacity(value.len() + 32);
        for (url, descriptor) in srcset_candidates(value) {
            let Some(abs) = self.rewrite(url) else {
                continue;
            };
            let head = abs.get(..8).unwrap_or(&abs).to_ascii_lowercase();
            if !(head.starts_with("https://") || head.starts_with("http://")) {
                continue;
            }
            if !out.is_empty() {
                out.push_str(", ");
            }
            out.push_str(&abs);
            if !descriptor.is_empty() {
                out.push(' ');
                out.push_str(descriptor);
            }
        }
        out
    }
}

impl<'a> ammonia::UrlRelativeEvaluate<'a> for Rewriter {
    fn evaluate<'url>(&self, u: &'url str) -> Option<Cow<'url, str>> {
        self.rewrite(u)
    }
}

/// The (URL, descriptors) candidates of a `srcset` value, split the way HTML does: a URL is a
/// run of non-space characters (trailing commas end the candidate), the descriptors run to the
/// next comma outside parentheses. A comma inside a URL (`data:…;base64,…`) stays in it.
pub(super) fn srcset_candidates(value: &str) -> Vec<(&str, &str)> {
    let is_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c');
    let mut out = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches(|c: char| is_space(c) || c == ',');
        if rest.is_empty() {
            return out;
        }
        let end = rest.find(is_space).unwrap_or(rest.len());
        let (raw_url, after) = rest.split_at(end);
        let url = raw_url.trim_end_matches(',');
        if url.len() < raw_url.len() {
            out.push((url, ""));
            rest = after;
            continue;
        }
        let mut depth = 0usize;
        let mut stop = after.len();
        for (i, c) in after.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                ',' if depth == 0 => {
                    stop = i;
                    break;
                }
                _ => {}
            }
        }
        out.push((url, after[..stop].trim_matches(is_space)));
        rest = &after[stop..];
    }
}
