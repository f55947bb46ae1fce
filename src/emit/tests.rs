//! Unit tests of the emitters over issues built in code.

use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset};

use super::*;
use crate::config::Config;
use crate::model::{Issue, Item, Link};

pub(crate) fn config(extra: &str) -> Config {
    let text = format!(
        "[site]\ntitle = \"Shack & Co <Weekly>\"\ndescription = \"Links\"\nbase_url = \"https://example.com\"\n\
         issue_path = \"/weekly/{{slug}}.html\"\nauthor = {{ name = \"Ed\", email = \"ed@example.com\" }}\n\
         [feeds]\nlimit = 2\n[[feeds.extra]]\nname = \"zh\"\nmatch = \"*-CN.*\"\nlanguage = \"zh\"\n{extra}"
    );
    Config::parse(&text, Path::new("t/techshack.toml")).expect("test config")
}

pub(crate) fn date(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).expect("test date")
}

pub(crate) fn issue(config: &Config, slug: &str, when: &str, items: usize) -> Issue {
    let url = config.issue_url(slug);
    let mut i = Issue {
        path: PathBuf::from(format!("issues/{slug}.md")),
        slug: slug.into(),
        id: config.issue_id(slug),
        url: url.clone(),
        title: format!("Issue {slug}"),
        description: None,
        date: date(when),
        updated: date(when),
        draft: false,
        lang: None,
        tags: vec![],
        number: None,
        html: format!("<p>Body of {slug} with <a href=\"{url}\">a link</a>.</p>\n"),
        page_html: None,
        text: Some(format!("Body of {slug}")),
        feed: Default::default(),
        items: (0..items)
            .map(|k| Item {
                title: format!("Article {k} of {slug}"),
                anchor: format!("article-{k}"),
                links: vec![Link {
                    text: "example.org".into(),
                    url: format!("https://example.org/{slug}/{k}"),
                }],
                html: format!("<p>Notes {k}</p>"),
                text: Some(format!("Notes {k}")),
                feed: Default::default(),
            })
            .collect(),
    };
    crate::render::feed::settle(&mut i, crate::render::FeedFixes::ALL);
    i
}

fn build(config: &Config, issues: &[Issue]) -> (tempfile::TempDir, Written) {
    let dir = tempfile::tempdir().unwrap();
    let staging = Staging::new(dir.path()).unwrap();
    let refs: Vec<&Issue> = issues.iter().collect();
    let w = write_feeds(config, &refs, &staging).unwrap();
    staging.commit().unwrap();
    (dir, w)
}

fn read(dir: &tempfile::TempDir, rel: &str) -> String {
    std::fs::read_to_string(dir.path().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn week_issues(config: &Config, n: usize) -> Vec<Issue> {
    (0..n)
        .map(|k| {
            let d = date("2019-01-07T09:00:00+00:00") + Duration::weeks(k as i64);
            issue(config, &format!("w{k:02}"), &d.to_rfc3339(), 2)
        })
        .collect()
}

#[test]
fn file_names_and_archive_pages_count_from_the_oldest() {
    let c = config("");
    let (dir, w) = build(&c, &week_issues(&c, 5));
    let mut names: Vec<String> = Vec::new();
    for e in walk(dir.path()) {
        names.push(e);
    }
    names.sort();
    assert_eq!(
        names,
        [
            ".techshack-outputs",
            "archive/atom-1.xml",
            "archive/atom-2.xml",
            "archive/items.atom-1.xml",
            "archive/items.atom-2.xml",
            "archive/items.atom-3.xml",
            "archive/items.atom-4.xml",
            "archive/items.atom-5.xml",
            "archive/items.rss-1.xml",
            "archive/items.rss-2.xml",
            "archive/items.rss-3.xml",
            "archive/items.rss-4.xml",
            "archive/items.rss-5.xml",
            "archive/rss-1.xml",
            "archive/rss-2.xml",
            "atom.xml",
            "feed.json",
            "items.atom.xml",
            "items.json",
            "items.rss.xml",
            "rss.xml",
            "zh.atom.xml",
            "zh.json",
            "zh.rss.xml",
        ]
    );
    assert_eq!(w.issues, 5);
    assert_eq!(w.items, 10);
    // Page 1 holds the two oldest issues, newest first; the subscription document the newest two.
    let a1 =
        atom_syndication::Feed::read_from(read(&dir, "archive/atom-1.xml").as_bytes()).unwrap();
    let ids: Vec<&str> = a1.entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "https://example.com/weekly/w01.html",
            "https://example.com/weekly/w00.html"
        ]
    );
    let cur = atom_syndication::Feed::read_from(read(&dir, "atom.xml").as_bytes()).unwrap();
    let ids: Vec<&str> = cur.entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "https://example.com/weekly/w04.html",
            "https://example.com/weekly/w03.html"
        ]
    );
    let rel = |f: &atom_syndication::Feed, r: &str| {
        f.links.iter().find(|l| l.rel == r).map(|l| l.href.clone())
    };
    assert_eq!(
        rel(&cur, "prev-archive").as_deref(),
        Some("https://example.com/archive/atom-2.xml")
    );
    assert_eq!(
        rel(&cur, "self").as_deref(),
        Some("https://example.com/atom.xml")
    );
    assert_eq!(rel(&cur, "current"), None);
    let a2 =
        atom_syndication::Feed::read_from(read(&dir, "archive/atom-2.xml").as_bytes()).unwrap();
    assert_eq!(
        rel(&a2, "current").as_deref(),
        Some("https://example.com/atom.xml")
    );
    assert_eq!(
        rel(&a2, "prev-archive").as_deref(),
        Some("https://example.com/archive/atom-1.xml")
    );
    assert_eq!(rel(&a1, "prev-archive"), None);
    assert!(read(&dir, "archive/atom-2.xml").contains("<fh:archive"));
    assert!(!read(&dir, "atom.xml").contains("fh:archive"));
    let r1 = read(&dir, "archive/rss-1.xml");
    assert!(
        r1.contains("xmlns:fh=\"http://purl.org/syndication/history/1.0\""),
        "{r1}"
    );
    assert!(r1.contains("rel=\"current\""));
}

#[test]
fn a_full_archive_page_never_changes_when_issues_are_added() {
    let c = config("");
    let (d1, _) = build(&c, &week_issues(&c, 4));
    let (d2, _) = build(&c, &week_issues(&c, 7));
    for f in [
        "archive/atom-1.xml",
        "archive/rss-2.xml",
        "archive/items.atom-3.xml",
    ] {
        assert_eq!(read(&d1, f), read(&d2, f), "{f} changed");
    }
    assert_ne!(read(&d1, "atom.xml"), read(&d2, "atom.xml"));
}

#[test]
fn items_link_to_the_article_and_relate_to_the_page_anchor() {
    let c = config("");
    let (dir, _) = build(&c, &week_issues(&c, 1));
    let feed = atom_syndication::Feed::read_from(read(&dir, "items.atom.xml").as_bytes()).unwrap();
    let e = &feed.entries[0];
    assert_eq!(e.id, "https://example.com/weekly/w00.html#article-0");
    assert_eq!(e.title.value, "Article 0 of w00");
    let alt = e.links.iter().find(|l| l.rel == "alternate").unwrap();
    assert_eq!(alt.href, "https://example.org/w00/0");
    let rel = e.links.iter().find(|l| l.rel == "related").unwrap();
    assert_eq!(rel.href, "https://example.com/weekly/w00.html#article-0");
    // Items of one issue: each later one a second older, the issue's order kept.
    assert_eq!(feed.entries[0].updated, date("2019-01-07T09:00:00Z"));
    assert_eq!(feed.entries[1].updated, date("2019-01-07T08:59:59Z"));
    let rss = ::rss::Channel::read_from(read(&dir, "items.rss.xml").as_bytes()).unwrap();
    assert_eq!(rss.items[0].link(), Some("https://example.org/w00/0"));
    assert_eq!(
        rss.items[0].guid().unwrap().value(),
        "https://example.com/weekly/w00.html#article-0"
    );
    let json: serde_json::Value = serde_json::from_str(&read(&dir, "items.json")).unwrap();
    assert_eq!(json["items"][0]["url"], "https://example.org/w00/0");
    assert_eq!(
        json["items"][0]["id"],
        "https://example.com/weekly/w00.html#article-0"
    );
}

#[test]
fn an_item_without_a_source_points_at_its_anchor() {
    let c = config("");
    let mut i = issue(&c, "2019-01", "2019-01-07T09:00:00Z", 1);
    i.items[0].links.clear();
    let (dir, _) = build(&c, &[i]);
    let rss = ::rss::Channel::read_from(read(&dir, "items.rss.xml").as_bytes()).unwrap();
    assert_eq!(
        rss.items[0].link(),
        Some("https://example.com/weekly/2019-01.html#article-0")
    );
}

#[test]
fn no_two_entries_share_updated_and_the_feed_takes_the_newest() {
    let c = config("");
    let mut a = issue(&c, "a", "2019-01-07T09:00:00Z", 0);
    let b = issue(&c, "b", "2019-01-07T09:00:00Z", 0);
    a.updated = date("2019-02-01T10:00:00+08:00");
    let (dir, _) = build(&c, &[a, b]);
    let feed = atom_syndication::Feed::read_from(read(&dir, "atom.xml").as_bytes()).unwrap();
    let ups: Vec<_> = feed.entries.iter().map(|e| e.updated).collect();
    let mut uniq = ups.clone();
    uniq.dedup();
    assert_eq!(ups.len(), uniq.len());
    assert_eq!(feed.updated, date("2019-02-01T10:00:00+08:00"));
    assert!(read(&dir, "atom.xml").contains("<updated>2019-02-01T10:00:00+08:00</updated>"));
}

#[test]
fn unique_updated_is_deterministic_one_second_less() {
    let c = config("");
    let x = issue(&c, "x", "2019-01-07T09:00:00Z", 0);
    let mut es: Vec<Entry> = (0..3).map(|_| issue_entry(&x, "en")).collect();
    unique_updated(&mut es);
    let ups: Vec<String> = es.iter().map(|e| e.updated.to_rfc3339()).collect();
    assert_eq!(
        ups,
        [
            "2019-01-07T09:00:00+00:00",
            "2019-01-07T08:59:59+00:00",
            "2019-01-07T08:59:58+00:00"
        ]
    );
    assert!(es.iter().all(|e| e.published <= e.updated));
}

#[test]
fn extra_feeds_take_their_issues_out_of_the_main_ones() {
    let c = config("");
    let en = issue(&c, "2019-01", "2019-01-07T09:00:00Z", 1);
    let mut cn = issue(&c, "2019-01-CN", "2019-01-07T09:00:00Z", 1);
    cn.path = PathBuf::from("issues/2019-01-CN.md");
    let (dir, _) = build(&c, &[en, cn]);
    let main = read(&dir, "atom.xml");
    assert!(main.contains("2019-01.html"));
    assert!(!main.contains("2019-01-CN"));
    let items = read(&dir, "items.atom.xml");
    assert!(!items.contains("2019-01-CN"));
    let zh = read(&dir, "zh.atom.xml");
    assert!(zh.contains("2019-01-CN.html"));
    assert!(zh.contains("xml:lang=\"zh\""));
    let zh = ::rss::Channel::read_from(read(&dir, "zh.rss.xml").as_bytes()).unwrap();
    assert_eq!(zh.language(), Some("zh"));
    assert_eq!(zh.items.len(), 1);
}

#[test]
fn an_empty_feed_takes_the_newest_published_issue_date() {
    let c = config("");
    let (dir, _) = build(&c, &[issue(&c, "2019-01", "2019-01-07T09:00:00Z", 0)]);
    let zh = atom_syndication::Feed::read_from(read(&dir, "zh.atom.xml").as_bytes()).unwrap();
    assert!(zh.entries.is_empty());
    assert_eq!(zh.updated, date("2019-01-07T09:00:00Z"));
    // The rss crate declares `content` only when an item has content: an empty full feed
    // declares it all the same.
    let items_xml = read(&dir, "items.rss.xml");
    assert!(items_xml.contains("xmlns:content=\"http://purl.org/rss/1.0/modules/content/\""));
    let items = ::rss::Channel::read_from(items_xml.as_bytes()).unwrap();
    assert!(items.items.is_empty());
    assert_eq!(items.pub_date(), Some("Mon, 07 Jan 2019 09:00:00 +0000"));
}

#[test]
fn nothing_published_writes_nothing() {
    let c = config("");
    let dir = tempfile::tempdir().unwrap();
    let staging = Staging::new(dir.path()).unwrap();
    assert_eq!(write_feeds(&c, &[], &staging).unwrap(), Written::default());
    assert!(staging.paths().is_empty());
}

#[test]
fn rss_titles_use_character_references_and_cdata_survives_its_end_marker() {
    let c = config("");
    let mut i = issue(&c, "x", "2019-01-07T09:00:00Z", 0);
    i.title = "R&D <T> \u{1F980}".into();
    i.html = "<pre><code>a]]&gt;b ]]> c</code></pre><p>x\u{b}y</p>".into();
    crate::render::feed::settle(&mut i, crate::render::FeedFixes::ALL);
    let (dir, _) = build(&c, &[i]);
    let xml = read(&dir, "rss.xml");
    assert!(
        xml.contains("<title>R&#x26;D &#x3C;T&gt; \u{1F980}</title>"),
        "{xml}"
    );
    assert!(
        xml.contains("<title>Shack &#x26; Co &#x3C;Weekly&gt;</title>"),
        "{xml}"
    );
    assert!(!xml.contains('\u{b}'));
    let ch = ::rss::Channel::read_from(xml.as_bytes()).unwrap();
    assert_eq!(ch.items[0].title(), Some("R&D <T> \u{1F980}"));
    assert_eq!(
        ch.items[0].content(),
        Some("<pre><code>a]]&gt;b ]]> c</code></pre><p>xy</p>")
    );
    let atom = atom_syndication::Feed::read_from(read(&dir, "atom.xml").as_bytes()).unwrap();
    assert_eq!(atom.entries[0].title.value, "R&D <T> \u{1F980}");
}

#[test]
fn rss_has_description_before_content_and_declares_content() {
    let c = config("");
    let (dir, _) = build(&c, &week_issues(&c, 1));
    let xml = read(&dir, "rss.xml");
    assert!(xml.contains("xmlns:content=\"http://purl.org/rss/1.0/modules/content/\""));
    assert!(xml.contains("xmlns:atom=\"http://www.w3.org/2005/Atom\""));
    let d = xml
        .find("<description><![CDATA[Body of w00")
        .expect("item description");
    let ce = xml.find("<content:encoded>").expect("content:encoded");
    assert!(d < ce);
    assert!(xml.contains("<atom:link href=\"https://example.com/rss.xml\" rel=\"self\""));
    assert!(xml.contains("<managingEditor>ed@example.com (Ed)</managingEditor>"));
}

#[test]
fn summary_mode_writes_no_content() {
    let c = config("");
    let mut c = c;
    c.feeds.content = crate::config::FeedContent::Summary;
    let mut i = issue(&c, "x", "2019-01-07T09:00:00Z", 0);
    i.description = Some("What this week holds".into());
    let (dir, _) = build(&c, &[i]);
    let atom = read(&dir, "atom.xml");
    assert!(!atom.contains("<content"));
    assert!(
        atom.contains("<summary type=\"html\">What this week holds</summary>"),
        "{atom}"
    );
    let rss = read(&dir, "rss.xml");
    assert!(!rss.contains("content:encoded"));
    assert!(!rss.contains("xmlns:content"));
    let json: serde_json::Value = serde_json::from_str(&read(&dir, "feed.json")).unwrap();
    assert_eq!(json["items"][0]["content_text"], "What this week holds");
    assert!(json["items"][0].get("content_html").is_none());
}

#[test]
fn rfc822_has_the_right_weekday_and_a_numeric_offset() {
    assert_eq!(
        rfc822(&date("2018-12-31T09:00:00+08:00")),
        "Mon, 31 Dec 2018 09:00:00 +0800"
    );
    assert_eq!(
        rfc822(&date("2024-02-29T23:59:59-05:30")),
        "Thu, 29 Feb 2024 23:59:59 -0530"
    );
}

#[test]
fn xml_clean_removes_forbidden_characters_only() {
    assert!(matches!(
        xml_clean("plain é 中文 \u{1F980}\t\n"),
        Cow::Borrowed(_)
    ));
    assert_eq!(
        xml_clean("a\u{0}b\u{1b}c\u{85}d\u{fffe}e\u{a0}f"),
        "abcde\u{a0}f"
    );
}

#[test]
fn title_char_refs_leaves_cdata_and_other_text_alone() {
    let xml = b"<rss><title>a &amp; b &lt; c</title><description><![CDATA[<title>&amp;</title>]]></description><x>&amp;</x></rss>";
    assert_eq!(
        String::from_utf8(super::rss::title_char_refs(xml)).unwrap(),
        "<rss><title>a &#x26; b &#x3C; c</title><description><![CDATA[<title>&amp;</title>]]></description><x>&amp;</x></rss>"
    );
}

fn walk(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(
                    p.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
    }
    out
}

#[test]
fn an_item_without_notes_links_to_its_article() {
    let c = config("");
    let mut i = issue(&c, "x", "2019-01-07T09:00:00Z", 1);
    i.items[0].html = "\n".into();
    i.items[0].title = "A & B".into();
    crate::render::feed::settle(&mut i, crate::render::FeedFixes::ALL);
    let e = item_entry(&i, 0, &i.items[0], "en");
    assert_eq!(
        e.html,
        "<p><a href=\"https://example.org/x/0\">A &amp; B</a></p>"
    );
    assert_eq!(e.summary, "A & B");
}

#[test]
fn spliced_bodies_split_cdata_ends_and_marks_cannot_be_forged() {
    let bodies = ["x ]]> y", "<p>]]></p>"];
    let splice = |doc: String, wrap: bool, bodies: &[&str]| {
        let mut out = Vec::new();
        splice_bodies(doc.as_bytes(), bodies, wrap, &mut out)
            .map(|()| String::from_utf8(out).unwrap())
    };
    // Atom: the whole section is written.
    assert_eq!(
        splice(format!("<a>{}</a>", body_mark(0)), true, &bodies).unwrap(),
        "<a><![CDATA[x ]]]]><![CDATA[> y]]></a>"
    );
    // RSS: the crate opened the section already.
    assert_eq!(
        splice(
            format!("<b><![CDATA[{}]]></b>", body_mark(1)),
            false,
            &bodies
        )
        .unwrap(),
        "<b><![CDATA[<p>]]]]><![CDATA[></p>]]></b>"
    );
    assert!(splice(body_mark(1), true, &bodies[..1]).is_err());
    // Authors cannot write a mark into any text of a document.
    assert_eq!(xml_clean(&format!("t{}", body_mark(3))), "t3");
}

#[test]
fn xml_clean_finds_forbidden_characters_in_any_block() {
    let long = "é\u{a0}，".repeat(100);
    assert!(matches!(xml_clean(&long), Cow::Borrowed(_)));
    for bad in [
        '\u{1}', '\u{7f}', '\u{80}', '\u{9f}', '\u{e000}', '\u{e001}', '\u{fffe}', '\u{ffff}',
    ] {
        let s = format!("{long}{bad}{long}");
        assert_eq!(xml_clean(&s), format!("{long}{long}"), "{bad:?}");
    }
}

#[test]
fn the_home_link_is_the_archive_index_that_build_writes() {
    let mut c = config("");
    assert_eq!(base_meta(&c).home_url, "https://example.com/weekly/");
    for (path, want) in [
        ("/{slug}.html", "https://example.com/archive/"),
        ("/news/{slug}/index.html", "https://example.com/news/"),
        ("/blog/{slug}.html", "https://example.com/blog/"),
    ] {
        c.site.issue_path = path.to_string();
        assert_eq!(base_meta(&c).home_url, want, "{path}");
    }
}
