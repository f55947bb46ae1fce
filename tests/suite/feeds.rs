//! The feeds `techshack build` writes, checked through the real binary: over the fixture
//! issues of `tests/fixtures/feeds` (snapshots, parse-back, ids, hostile content, URLs) and,
//! ignored by default, over the real corpora of `$TECHSHACK_CORPORA`.

use std::collections::BTreeSet;
use std::path::Path;

use crate::support::{corpora, fixture, repo, techshack};

/// The clock of every fixture build: after every fixture issue but `2099-01`.
const NOW: &str = "2019-06-01T00:00:00+08:00";

/// Runs `techshack -c CONFIG [--issues DIR] build --out OUT ARGS...` at the fixtures' clock
/// and returns stderr.
fn build(config: &Path, issues: Option<&Path>, out: &Path, args: &[&str]) -> String {
    build_at(Some(NOW), config, issues, out, args)
}

/// The same at a given clock (`None`: the real one).
fn build_at(
    now: Option<&str>,
    config: &Path,
    issues: Option<&Path>,
    out: &Path,
    args: &[&str],
) -> String {
    let mut cmd = techshack();
    match now {
        Some(n) => cmd.env("TECHSHACK_NOW", n),
        None => cmd.env_remove("TECHSHACK_NOW"),
    };
    cmd.arg("-c").arg(config);
    if let Some(i) = issues {
        cmd.arg("--issues").arg(i);
    }
    cmd.arg("build").arg("--out").arg(out).args(args);
    let o = cmd.output().expect("running techshack build");
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "build failed:\n{stderr}");
    stderr
}

fn build_fixture() -> tempfile::TempDir {
    let out = tempfile::tempdir().expect("temporary folder");
    build(
        &fixture("feeds").join("techshack.toml"),
        None,
        out.path(),
        &[],
    );
    out
}

fn read(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every file under `dir`, relative and `/`-separated, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("readable folder") {
            let p = e.expect("folder entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).expect("under dir");
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    out
}

fn feed_files(dir: &Path) -> Vec<String> {
    files(dir)
        .into_iter()
        // sitemap.xml lists the pages for crawlers; it is not a feed.
        .filter(|f| (f.ends_with(".xml") || f.ends_with(".json")) && f != "sitemap.xml")
        .collect()
}

/// One entry as read back: id, main link, HTML content, summary.
#[derive(Debug)]
struct Back {
    id: String,
    link: String,
    html: String,
    title: String,
}

/// Parses a feed file with its own crate (atom_syndication, rss or serde_json) and with
/// feed-rs; returns its entries.
fn parse_back(dir: &Path, rel: &str) -> Vec<Back> {
    let text = read(dir, rel);
    let n = feed_rs::parser::parse(text.as_bytes())
        .unwrap_or_else(|e| panic!("feed-rs cannot read {rel}: {e}"))
        .entries
        .len();
    let entries: Vec<Back> = if rel.ends_with(".json") {
        let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(v["version"], "https://jsonfeed.org/version/1.1", "{rel}");
        assert!(v["authors"][0]["name"].is_string(), "{rel}: no author");
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| Back {
                id: i["id"].as_str().expect("id").into(),
                link: i["url"].as_str().expect("url").into(),
                html: i["content_html"].as_str().unwrap_or_default().into(),
                title: i["title"].as_str().expect("title").into(),
            })
            .collect()
    } else if text.contains("<rss") {
        let ch = rss::Channel::read_from(text.as_bytes())
            .unwrap_or_else(|e| panic!("rss cannot read {rel}: {e}"));
        ch.items
            .iter()
            .map(|i| Back {
                id: i.guid().expect("guid").value().into(),
                link: i.link().expect("link").into(),
                html: i.content().unwrap_or_default().into(),
                title: i.title().expect("title").into(),
            })
            .collect()
    } else {
        let f = atom_syndication::Feed::read_from(text.as_bytes())
            .unwrap_or_else(|e| panic!("atom_syndication cannot read {rel}: {e}"));
        assert!(
            f.links.iter().any(|l| l.rel == "self"),
            "{rel}: no self link"
        );
        assert!(!f.authors.is_empty(), "{rel}: no author");
        f.entries
            .iter()
            .map(|e| Back {
                id: e.id.clone(),
                link: e
                    .links
                    .iter()
                    .find(|l| l.rel == "alternate")
                    .expect("alternate link")
                    .href
                    .clone(),
                html: e
                    .content
                    .as_ref()
                    .and_then(|c| c.value.clone())
                    .unwrap_or_default(),
                title: e.title.value.clone(),
            })
            .collect()
    };
    assert_eq!(
        entries.len(),
        n,
        "{rel}: feed-rs sees another number of entries"
    );
    entries
}

/// Every URL in `href`, `src`, `srcset` and `poster` attributes of HTML.
fn urls(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["href", "src", "srcset", "poster"] {
        for quote in ['"', '\''] {
            let pat = format!(" {attr}={quote}");
            let mut rest = html;
            while let Some(i) = rest.find(&pat) {
                rest = &rest[i + pat.len()..];
                let end = rest.find(quote).unwrap_or(rest.len());
                let value = &rest[..end];
                if attr == "srcset" {
                    for part in value.split(',') {
                        if let Some(u) = part.split_whitespace().next() {
                            out.push(u.to_string());
                        }
                    }
                } else {
                    out.push(value.to_string());
                }
            }
        }
    }
    out
}

fn assert_absolute(rel: &str, html: &str) {
    for u in urls(html) {
        let u = u.replace("&amp;", "&");
        let scheme = url::Url::parse(&u).map(|p| p.scheme().to_ascii_lowercase());
        match scheme {
            Ok(s) => assert!(
                !matches!(s.as_str(), "javascript" | "vbscript" | "data"),
                "{rel}: unsafe URL `{u}`"
            ),
            Err(e) => panic!("{rel}: relative URL `{u}` ({e})"),
        }
    }
}

fn assert_inactive(rel: &str, html: &str) {
    let lower = html.to_ascii_lowercase();
    for bad in [
        "<script",
        "<iframe",
        "<style",
        "<object",
        "<embed",
        "<form",
        "javascript:",
    ] {
        assert!(!lower.contains(bad), "{rel}: `{bad}` in content");
    }
    for (i, _) in lower.match_indices(" on") {
        let attr: String = lower[i + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        let after = &lower[i + 1 + attr.len()..];
        assert!(
            !(attr.len() > 2 && after.starts_with('=')),
            "{rel}: event handler `{attr}=` in content"
        );
    }
    for c in html.chars() {
        assert!(
            !c.is_control() || matches!(c, '\n' | '\t' | '\r'),
            "{rel}: control character {c:?}"
        );
    }
}

/// The checks every build must pass, fixtures and corpora alike.
fn check_all(dir: &Path) -> usize {
    let docs = feed_files(dir);
    assert!(!docs.is_empty(), "no feed written");
    let mut total = 0;
    for rel in &docs {
        let entries = parse_back(dir, rel);
        let ids: BTreeSet<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), entries.len(), "{rel}: duplicate ids");
        for e in &entries {
            assert!(!e.title.trim().is_empty(), "{rel}: empty title");
            assert!(
                !e.title.contains(['\n', '\r']),
                "{rel}: title on several lines"
            );
            assert!(e.link.starts_with("http"), "{rel}: link `{}`", e.link);
            assert_absolute(rel, &e.html);
            assert_inactive(rel, &e.html);
        }
        let text = read(dir, rel);
        assert!(
            !text.contains("&nbsp;"),
            "{rel}: a named HTML entity in XML or JSON"
        );
        assert!(
            !text.contains("<TechshackHeader") && !text.contains("&lt;TechshackHeader"),
            "{rel}: component tag"
        );
        if rel.ends_with(".xml") {
            assert_unique_updated(rel, &text);
        }
        total += entries.len();
    }
    total
}

/// No two entries of one Atom document share `updated`.
fn assert_unique_updated(rel: &str, text: &str) {
    if text.contains("<rss") {
        return;
    }
    let f = atom_syndication::Feed::read_from(text.as_bytes()).expect("atom");
    let all: Vec<_> = f.entries.iter().map(|e| e.updated).collect();
    let set: BTreeSet<_> = all.iter().collect();
    assert_eq!(set.len(), all.len(), "{rel}: two entries share updated");
    if let Some(max) = all.iter().max() {
        assert_eq!(
            &f.updated, max,
            "{rel}: feed updated is not its newest entry's"
        );
    }
}

fn all_ids(dir: &Path) -> BTreeSet<String> {
    feed_files(dir)
        .iter()
        .flat_map(|rel| parse_back(dir, rel).into_iter().map(|e| e.id))
        .collect()
}

#[test]
fn fixture_feeds_match_their_snapshots() {
    let out = build_fixture();
    let dir = out.path();
    insta::assert_snapshot!("files", files(dir).join("\n"));
    for rel in [
        "atom.xml",
        "rss.xml",
        "feed.json",
        "items.atom.xml",
        "items.rss.xml",
        "items.json",
        "zh.atom.xml",
        "archive/atom-1.xml",
        "archive/items.rss-1.xml",
    ] {
        let name = rel.replace('/', "_");
        insta::assert_snapshot!(name, read(dir, rel));
    }
}

#[test]
fn fixture_feeds_parse_back_with_unique_ids_absolute_urls_and_no_active_content() {
    let out = build_fixture();
    let n = check_all(out.path());
    assert!(n > 20, "only {n} entries in every document together");
}

#[test]
fn drafts_and_future_issues_stay_out_unless_asked() {
    let out = build_fixture();
    let all: String = feed_files(out.path())
        .iter()
        .map(|f| read(out.path(), f))
        .collect();
    assert!(!all.contains("unfinished draft"));
    assert!(!all.contains("letter from the future"));
    let with = tempfile::tempdir().expect("temporary folder");
    build(
        &fixture("feeds").join("techshack.toml"),
        None,
        with.path(),
        &["--drafts"],
    );
    let all: String = feed_files(with.path())
        .iter()
        .map(|f| read(with.path(), f))
        .collect();
    assert!(all.contains("A letter from the future"));
    assert!(all.contains("An unfinished draft"));
}

#[test]
fn chinese_issues_get_their_own_feed() {
    let out = build_fixture();
    let zh = read(out.path(), "zh.atom.xml");
    assert!(zh.contains("xml:lang=\"zh\""));
    assert!(zh.contains("2019-01-CN"));
    for main in ["atom.xml", "rss.xml", "feed.json", "items.atom.xml"] {
        assert!(
            !read(out.path(), main).contains("2019-01-CN"),
            "{main} holds a zh issue"
        );
    }
}

#[test]
fn hostile_issue_is_well_formed_and_inert() {
    let out = build_fixture();
    let rss = read(out.path(), "rss.xml");
    // `&` and `<` in an RSS title as character references, the emoji as itself.
    assert!(
        rss.contains("<title>Tips &#x26; tricks &#x3C;for&gt; you \u{1F980}</title>"),
        "{rss}"
    );
    let ch = rss::Channel::read_from(rss.as_bytes()).expect("rss");
    let hostile = ch
        .items
        .iter()
        .find(|i| i.title().is_some_and(|t| t.starts_with("Tips")))
        .expect("the hostile issue");
    let html = hostile.content().expect("content");
    // Markdown text `]]>` is HTML text `]]&gt;`: it must come back as written.
    assert!(
        html.contains("a CDATA end ]]&gt; in prose"),
        "the CDATA end marker in the text was lost: {html}"
    );
    let items =
        rss::Channel::read_from(read(out.path(), "items.rss.xml").as_bytes()).expect("items rss");
    assert!(
        items
            .items
            .iter()
            .any(|i| i.title() == Some("Escaping ]]> Safely")),
        "the item title with `]]>` did not survive"
    );
    assert!(html.contains("Unknown tags keep their text"));
    assert_inactive("rss.xml", html);
    let atom =
        atom_syndication::Feed::read_from(read(out.path(), "atom.xml").as_bytes()).expect("atom");
    let e = atom
        .entries
        .iter()
        .find(|e| e.title.value.starts_with("Tips"))
        .expect("hostile entry");
    assert_eq!(e.title.value, "Tips & tricks <for> you \u{1F980}");
    assert_eq!(e.title.r#type, atom_syndication::TextType::Text);
    let summary = e.summary.as_ref().expect("summary").value.clone();
    assert!(
        !summary.contains("<b>"),
        "markup in the description survived: {summary}"
    );
}

#[test]
fn relative_and_site_paths_come_out_absolute() {
    let out = build_fixture();
    let mut all = String::new();
    for rel in feed_files(out.path()) {
        for e in parse_back(out.path(), &rel) {
            assert_absolute(&rel, &e.html);
            all.push_str(&e.html);
        }
    }
    let found = urls(&all);
    for want in [
        "https://fixture.example/static/images/queue.png",
        "https://fixture.example/notes/hashing.html",
        "https://fixture.example/weekly/img/local.png",
        "https://fixture.example/static/images/crash.png",
        "https://fixture.example/changelog.html",
    ] {
        assert!(found.iter().any(|u| u == want), "{want} not in {found:?}");
    }
}

#[test]
fn base_url_flag_moves_every_url() {
    let out = tempfile::tempdir().expect("temporary folder");
    build(
        &fixture("feeds").join("techshack.toml"),
        None,
        out.path(),
        &["--base-url", "https://staging.example/"],
    );
    let atom = read(out.path(), "atom.xml");
    let all: String = feed_files(out.path())
        .iter()
        .map(|f| read(out.path(), f))
        .collect();
    assert!(
        atom.contains("href=\"https://staging.example/atom.xml\" rel=\"self\""),
        "{atom}"
    );
    assert!(all.contains("https://staging.example/static/images/crash.png"));
    assert!(!all.contains("https://fixture.example/"));
    check_all(out.path());
}

#[test]
fn ids_survive_a_new_title_and_an_edited_body() {
    let work = tempfile::tempdir().expect("temporary folder");
    let issues = work.path().join("issues");
    std::fs::create_dir(&issues).expect("issues folder");
    for f in files(&fixture("feeds").join("issues")) {
        std::fs::copy(fixture("feeds").join("issues").join(&f), issues.join(&f)).expect("copy");
    }
    let config = fixture("feeds").join("techshack.toml");
    let before = tempfile::tempdir().expect("temporary folder");
    build(&config, Some(&issues), before.path(), &[]);
    for (file, from, to) in [
        (
            "2019-01.md",
            "title: Fixture Weekly 2019-01",
            "title: Fixture Weekly, renamed",
        ),
        (
            "2019-01.md",
            "A queue decouples",
            "A queue, as it turns out, decouples",
        ),
        (
            "2019-02.md",
            "Invalidation is one",
            "Cache invalidation is one",
        ),
        (
            "2019-03.md",
            "Title: Fixture Weekly 3, in Pelican form",
            "Title: Renamed",
        ),
    ] {
        let p = issues.join(file);
        let text = std::fs::read_to_string(&p).expect("fixture");
        assert!(text.contains(from), "{file} lacks `{from}`");
        std::fs::write(&p, text.replace(from, to)).expect("edit");
    }
    let after = tempfile::tempdir().expect("temporary folder");
    build(&config, Some(&issues), after.path(), &[]);
    assert_ne!(
        read(before.path(), "atom.xml"),
        read(after.path(), "atom.xml")
    );
    assert_eq!(all_ids(before.path()), all_ids(after.path()));
}

#[test]
#[ignore = "reads the real corpora from $TECHSHACK_CORPORA"]
fn techshack_corpus_feeds_are_sound() {
    let issues = corpora().join("techshack");
    let out = tempfile::tempdir().expect("temporary folder");
    let config = repo().join("config/techshack.toml");
    build_at(None, &config, Some(&issues), out.path(), &[]);
    let n = check_all(out.path());
    assert!(n > 50, "{n} entries");
    let zh = read(out.path(), "zh.atom.xml");
    assert!(zh.contains("-CN"), "no -CN issue in the zh feed");
    assert!(!read(out.path(), "atom.xml").contains("-CN.html"));
    // Site paths of images come out absolute.
    let all: String = feed_files(out.path())
        .iter()
        .map(|f| read(out.path(), f))
        .collect();
    assert!(
        all.contains("https://enqueuezero.com/static/images/"),
        "no absolute /static image"
    );
    assert!(!all.contains("src=\"/static") && !all.contains("src=&quot;/static"));
}

#[test]
#[ignore = "reads the real corpora from $TECHSHACK_CORPORA"]
fn twir_corpus_feeds_are_sound() {
    let issues = corpora().join("twir");
    let out = tempfile::tempdir().expect("temporary folder");
    let root = repo();
    let config = root.join("examples/twir/techshack.toml");
    build_at(None, &config, Some(&issues), out.path(), &[]);
    check_all(out.path());
    let archives = files(out.path())
        .iter()
        .filter(|f| f.starts_with("archive/atom-"))
        .count();
    assert!(
        archives >= 30,
        "{archives} archive pages of the issue feed for 667 issues"
    );
}

#[test]
fn a_title_with_line_breaks_comes_out_on_one_line() {
    let issues = tempfile::tempdir().expect("temporary folder");
    std::fs::write(
        issues.path().join("2019-02.md"),
        "---\ntitle: \"Breaking\\r\\nnews & <more>\\u0007\"\n---\n\n## A\n\n[a.example](https://a.example/)\n\nNotes.\n",
    )
    .expect("issue");
    let out = tempfile::tempdir().expect("temporary folder");
    build(
        &fixture("feeds").join("techshack.toml"),
        Some(issues.path()),
        out.path(),
        &[],
    );
    check_all(out.path());
    let rss = read(out.path(), "rss.xml");
    let line = rss
        .lines()
        .find(|l| l.contains("Breaking"))
        .expect("the title");
    assert!(line.trim_start().starts_with("<title>Breaking"), "{line}");
    assert!(line.ends_with("&#x3C;more&gt;</title>"), "{line}");
    let atom =
        atom_syndication::Feed::read_from(read(out.path(), "atom.xml").as_bytes()).expect("atom");
    let t = &atom.entries[0].title.value;
    assert!(!t.contains(['\r', '\n', '\u{7}']), "{t:?}");
    assert!(
        t.starts_with("Breaking") && t.ends_with("news & <more>"),
        "{t:?}"
    );
}
