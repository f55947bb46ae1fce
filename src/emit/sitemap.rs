//! `sitemap.xml` (the sitemaps.org protocol) listing the archive index and every issue page,
//! and the `robots.txt` that names it. Both are made from the issues alone (no clock), so they
//! are byte-identical between builds of the same issues.

use chrono::{DateTime, FixedOffset, SecondsFormat};

use crate::html::escape;

/// The sitemap of the index at `index_url` and the issue `pages` (URL, `updated`), in that
/// order. The index's `lastmod` is the newest page's.
pub fn sitemap(index_url: &str, pages: &[(&str, DateTime<FixedOffset>)]) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\n",
    );
    let url = |out: &mut String, loc: &str, lastmod: Option<DateTime<FixedOffset>>| {
        out.push_str("<url><loc>");
        out.push_str(&escape(loc));
        out.push_str("</loc>");
        if let Some(m) = lastmod {
            out.push_str("<lastmod>");
            out.push_str(&m.to_rfc3339_opts(SecondsFormat::Secs, false));
            out.push_str("</lastmod>");
        }
        out.push_str("</url>\n");
    };
    url(&mut out, index_url, pages.iter().map(|p| p.1).max());
    for (loc, updated) in pages {
        url(&mut out, loc, Some(*updated));
    }
    out.push_str("</urlset>\n");
    out
}

/// A `robots.txt` that lets every crawler in and names the sitemap.
pub fn robots(sitemap_url: &str) -> String {
    format!("User-agent: *\nAllow: /\n\nSitemap: {sitemap_url}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_the_index_and_every_page_with_its_lastmod() {
        let d = |s| DateTime::parse_from_rfc3339(s).unwrap();
        let map = sitemap(
            "https://example.com/weekly/",
            &[
                (
                    "https://example.com/weekly/b.html?x=1&y=2",
                    d("2019-01-14T09:00:00+08:00"),
                ),
                (
                    "https://example.com/weekly/a.html",
                    d("2019-01-07T09:00:00Z"),
                ),
            ],
        );
        assert_eq!(
            map,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\n\
             <url><loc>https://example.com/weekly/</loc><lastmod>2019-01-14T09:00:00+08:00</lastmod></url>\n\
             <url><loc>https://example.com/weekly/b.html?x=1&amp;y=2</loc><lastmod>2019-01-14T09:00:00+08:00</lastmod></url>\n\
             <url><loc>https://example.com/weekly/a.html</loc><lastmod>2019-01-07T09:00:00+00:00</lastmod></url>\n\
             </urlset>\n"
        );
        assert_eq!(
            robots("https://example.com/sitemap.xml"),
            "User-agent: *\nAllow: /\n\nSitemap: https://example.com/sitemap.xml\n"
        );
    }
}
