//! The model `parse_issue` fills, over hostile and tricky issues written for these tests.

use std::path::Path;

use techshack::config::Config;
use techshack::issue::parse_issue;
use techshack::model::Issue;

fn config() -> Config {
    Config::parse(
        r#"[site]
title = "Test Shack"
base_url = "https://example.com/sub"
issue_path = "/weekly/{slug}.html"
timezone = "Asia/Shanghai"
[issues]
filename_date = "%G-%V"
time = "09:00"
[components]
TechshackHeader = ""
Subscribe = "<p class=\"subscribe\">Subscribe</p>"
"#,
        Path::new("t.toml"),
    )
    .expect("test config")
}

fn parse(name: &str, text: &str) -> (Issue, Vec<String>) {
    let (i, d) = parse_issue(&config(), Path::new(name), text.as_bytes());
    let d: Vec<String> = d.iter().map(ToString::to_string).collect();
    (
        i.unwrap_or_else(|| panic!("{name} did not parse: {d:?}")),
        d,
    )
}

/// Every rendered piece of the model (titles are plain text, escaped by each output).
fn all_text(i: &Issue) -> String {
    let text = |t: &Option<String>| t.clone().unwrap_or_default();
    let mut s = format!("{:?}\n{}\n{}\n", i.description, i.html, text(&i.text));
    for it in &i.items {
        s.push_str(&format!("{}\n{}\n{}\n", it.anchor, it.html, text(&it.text)));
        for l in &it.links {
            s.push_str(&format!("{} {}\n", l.text, l.url));
        }
    }
    s
}

#[test]
fn no_active_content_reaches_the_model() {
    let (i, _) = parse(
        "2019-02.md",
        "---\ntitle: \"<script>alert(1)</script> ]]> & co\"\ndescription: \"<img src=x onerror=alert(1)> **d**\"\n---\n\n\
         ## Item <script>x()</script>\n\n[a.com](https://a.com) | [js](javascript:alert(1))\n\n\
         <script>\nalert('block')\n</script>\n\n<iframe src=\"https://evil.example\"></iframe>\n\n\
         <div onclick=\"steal()\" style=\"x\"><form action=\"/f\"><input name=q></form>kept text</div>\n\n\
         Inline <span onmouseover=\"x()\">span</span> and <object data=\"x\"></object> end ]]> here.\n\n\
         <style>body{display:none}</style>\n\n<embed src=\"x.swf\">\n",
    );
    let all = all_text(&i);
    for bad in [
        "<script",
        "<iframe",
        "<object",
        "<embed",
        "<style",
        "<form",
        "<input",
        "onclick",
        "onmouseover",
        "onerror",
        "javascript:",
    ] {
        assert!(!all.to_lowercase().contains(bad), "`{bad}` leaked:\n{all}");
    }
    assert!(i.html.contains("kept text"), "{}", i.html);
    assert!(i.html.contains("<span>span</span>"), "{}", i.html);
    assert_eq!(i.title, "<script>alert(1)</script> ]]> & co");
    assert_eq!(i.description.as_deref(), Some("d"));
    assert_eq!(i.items[0].title, "Item x()");
    assert_eq!(i.items[0].links[0].url, "https://a.com");
}

#[test]
fn titles_never_carry_line_breaks() {
    for t in [
        "\"A\\r\\nB\"",
        "\"A\\nB\"",
        "\"A\\u2028B\"",
        "\"A\\tB\\u0000\"",
        "|\n  A\n  B",
    ] {
        let (i, _) = parse("2019-02.md", &format!("---\ntitle: {t}\n---\nx\n"));
        assert!(
            !i.title.chars().any(|c| c.is_control() || c == '\u{2028}'),
            "{t} -> {:?}",
            i.title
        );
        assert!(
            i.title.starts_with('A') && i.title.ends_with('B'),
            "{t} -> {:?}",
            i.title
        );
    }
    let (i, _) = parse("2019-02.md", "---\n---\nFirst\r\nline\r\n===\r\n\ntext\n");
    assert_eq!(i.title, "First line");
}

#[test]
fn urls_are_absolute_everywhere() {
    let (i, _) = parse(
        "2019-02.md",
        "---\ntitle: T\n---\n\n[Site path](/a/b.html) [relative](c/d.png) ![img](/static/i.png)\n\n\
         <img src=\"/static/raw.png\" srcset=\"/static/raw-2x.png 2x\"><a href=\"rel.html\">r</a>\n\n\
         <video poster=\"/p.png\" src=\"/v.mp4\"></video>\n",
    );
    assert!(
        i.html.contains("href=\"https://example.com/sub/a/b.html\""),
        "{}",
        i.html
    );
    assert!(
        i.html
            .contains("href=\"https://example.com/sub/weekly/c/d.png\""),
        "{}",
        i.html
    );
    assert!(
        i.html
            .contains("src=\"https://example.com/sub/static/i.png\""),
        "{}",
        i.html
    );
    assert!(
        i.html
            .contains("src=\"https://example.com/sub/static/raw.png\""),
        "{}",
        i.html
    );
    assert!(
        i.html
            .contains("href=\"https://example.com/sub/weekly/rel.html\""),
        "{}",
        i.html
    );
    for attr in [
        "href=\"/",
        "src=\"/",
        "srcset=\"/",
        "poster=\"/",
        "href=\"rel",
    ] {
        assert!(
            !i.html.contains(attr),
            "relative `{attr}` left in {}",
            i.html
        );
    }
}

#[test]
fn components_are_replaced_and_never_reach_the_model() {
    let (i, d) = parse(
        "2019-02.md",
        "---\ntitle: T\n---\n\n# T\n\n<TechshackHeader />\n\nIntro <Subscribe /> inline.\n\n<Subscribe />\n\n<Mystery>\ninside\n</Mystery>\n",
    );
    assert!(
        !i.html.contains("Techshack") && !i.html.contains("Mystery"),
        "{}",
        i.html
    );
    assert!(
        i.html.contains("<p class=\"subscribe\">Subscribe</p>"),
        "{}",
        i.html
    );
    assert!(
        !i.html.contains("<h1"),
        "the repeated title stays out: {}",
        i.html
    );
    assert!(i.html.contains("inside"), "{}", i.html);
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].contains("unknown component `<Mystery>`"), "{d:?}");
}

#[test]
fn item_anchors_are_ids_on_the_page_and_unique() {
    let (i, _) = parse(
        "2019-02.md",
        "---\ntitle: T\n---\n\n## Same\n\n[a.com](https://a.com)\n\nOne.\n\n## Same\n\n[b.com](https://b.com)\n\nTwo.\n\n### Same\n\nsub\n",
    );
    let anchors: Vec<&str> = i.items.iter().map(|it| it.anchor.as_str()).collect();
    assert_eq!(anchors, ["same", "same-2"]);
    for a in anchors {
        assert!(
            i.html.contains(&format!("id=\"{a}\"")),
            "{a} missing in {}",
            i.html
        );
    }
    assert!(i.html.contains("id=\"same-3\""), "{}", i.html);
    assert_eq!(
        i.items[1].html,
        "<p>Two.</p>\n<h3 id=\"same-3\">Same</h3>\n<p>sub</p>\n"
    );
    let text = i.items[1].text.as_deref().unwrap_or_default();
    assert!(text.contains("Two."), "{text}");
    assert!(!text.contains("b.com"), "{text}");
}

#[test]
fn dates_from_metadata_and_names() {
    let (i, _) = parse("2019-01.md", "---\ntitle: T\n---\nx\n");
    assert_eq!(i.date.to_rfc3339(), "2018-12-31T09:00:00+08:00");
    assert_eq!(i.updated, i.date);
    let (i, _) = parse(
        "2019-01-CN.md",
        "---\ntitle: T\ndate: 2020-12-2\nupdated: 2020-12-03 10:30\n---\nx\n",
    );
    assert_eq!(i.date.to_rfc3339(), "2020-12-02T09:00:00+08:00");
    assert_eq!(i.updated.to_rfc3339(), "2020-12-03T10:30:00+08:00");
    assert_eq!(i.slug, "2019-01-CN");
    assert_eq!(i.url, "https://example.com/sub/weekly/2019-01-CN.html");
    let (i, _) = parse(
        "whatever.md",
        "Title: P\nDate: 2013-06-07 18:46\nTags: a, b\n\nBody\n",
    );
    assert_eq!(i.date.to_rfc3339(), "2013-06-07T18:46:00+08:00");
    assert_eq!(i.tags, ["a", "b"]);
}

#[test]
fn slug_and_id_from_front_matter() {
    let (i, _) = parse(
        "2019-02.md",
        "---\ntitle: T\nslug: launch\nid: urn:x:1\nlang: zh\nnumber: 7\n---\nx\n",
    );
    assert_eq!(i.slug, "launch");
    assert_eq!(i.id, "urn:x:1");
    assert_eq!(i.url, "https://example.com/sub/weekly/launch.html");
    assert_eq!(i.lang.as_deref(), Some("zh"));
    assert_eq!(i.number.as_deref(), Some("7"));
    let (i, d) = parse_issue(
        &config(),
        Path::new("2019-02.md"),
        b"---\ntitle: T\nslug: ../../etc\n---\nx\n",
    );
    assert!(i.is_none());
    assert!(
        d[0].to_string()
            .starts_with("2019-02.md:3:1: error: slug `../../etc`"),
        "{d:?}"
    );
}

#[test]
fn text_keeps_only_the_text_of_raw_html() {
    let (i, _) = parse(
        "2019-02.md",
        "---\ntitle: T\n---\n\n<div class=\"x\"><b>Bold</b> &amp; plain</div>\n\nPara <small>small</small>.\n",
    );
    let text = i.text.as_deref().unwrap_or_default();
    assert!(text.contains("Bold & plain"), "{text}");
    assert!(text.contains("small"), "{text}");
    assert!(!text.contains('<'), "{text}");
}
