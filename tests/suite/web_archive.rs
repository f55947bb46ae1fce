//! The web archive `build` writes, as a reader and a crawler meet it: twins linked to each
//! other, summaries, the subscribe box, years, older/newer links, `sitemap.xml` and
//! `robots.txt`; over small sites and the real corpora.

use std::path::Path;

use crate::support::{corpora, read, repo, TestSite};

pub(crate) const NOW: &str = "2019-06-01T00:00:00Z";

fn config(extra: &str) -> String {
    format!(
        r#"
[site]
title = "Twin Weekly"
base_url = "https://twin.example"
issue_path = "/weekly/{{slug}}.html"
{extra}
[issues]
dir = "issues"
filename_date = "%G-%V"
time = "09:00"

[feeds]
path = "/"

[[feeds.extra]]
name = "zh"
match = "*-CN.*"
title = "Twin Weekly 中文"
language = "zh"

[serve]
public_url = "https://twin.example/list"
"#
    )
}

/// Three weeks in English, the first two with a Chinese twin; a draft and a future issue.
pub(crate) fn site(extra: &str) -> TestSite {
    let issue = |title: &str, body: &str| format!("---\ntitle: {title}\n---\n\n{body}\n");
    TestSite::new()
        .config(&config(extra))
        .issue(
            "2018-52.md",
            issue("Week 52", "## Alpha things\n\n[a.example](https://a.example/)\n\nNotes.\n\n## Beta things\n\n[b.example](https://b.example/)\n\nMore."),
        )
        .issue("2018-52-CN.md", issue("第 52 周", "大家好。这是第五十二周。"))
        .issue("2019-01.md", issue("Week 1", "## Gamma\n\n[g.example](https://g.example/)\n\nG."))
        .issue("2019-01-CN.md", issue("第 1 周", "第一周的内容。"))
        .issue("2019-02.md", "---\ntitle: Week 2 draft\npublished: false\n---\n\nDraft.\n")
        .issue("2019-03.md", issue("Week 3", "## Delta\n\n[d.example](https://d.example/)\n\nD."))
        .issue("2030-01.md", issue("Future", "Later."))
}

pub(crate) fn build(site: &TestSite, out: &str) {
    let o = site
        .cmd()
        .env("TECHSHACK_NOW", NOW)
        .args(["build", "--out", out])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn build_links_twins_and_neighbours_and_writes_a_stable_sitemap() {
    let s = site("");
    build(&s, "public");
    let page = |slug: &str| read(&s.path(&format!("public/weekly/{slug}.html")));
    let w52 = page("2018-52");
    assert!(w52.contains("<link rel=\"alternate\" hreflang=\"zh\" href=\"https://twin.example/weekly/2018-52-CN.html\">"), "{w52}");
    assert!(w52.contains(">中文</a>"));
    assert!(
        !w52.contains("rel=\"prev\""),
        "the oldest issue has no older one"
    );
    assert!(w52.contains("<link rel=\"next\" href=\"https://twin.example/weekly/2019-01.html\">"));
    let w1 = page("2019-01");
    // The draft between is skipped, the future issue is not linked.
    assert!(
        w1.contains(
            "<a class=\"next\" rel=\"next\" href=\"https://twin.example/weekly/2019-03.html\">"
        ),
        "{w1}"
    );
    let w3 = page("2019-03");
    assert!(!w3.contains("rel=\"next\""), "{w3}");
    assert!(!w3.contains("hreflang"), "no twin: {w3}");
    let cn = page("2018-52-CN");
    assert!(cn.contains("<html lang=\"zh\">"));
    assert!(cn.contains("<span class=\"here\" lang=\"zh\">中文</span> / <a href=\"https://twin.example/weekly/2018-52.html\" hreflang=\"en\" lang=\"en\">English</a>"), "{cn}");
    assert!(cn.contains("<link rel=\"next\" href=\"https://twin.example/weekly/2019-01-CN.html\">"));
    for p in [&w52, &w1, &w3, &cn] {
        assert!(p.contains("<form class=\"signup\" method=\"post\" action=\"https://twin.example/list/subscribe\">"));
    }
    assert!(
        cn.contains("href=\"https://twin.example/zh.atom.xml\">Atom</a>"),
        "its own feeds"
    );

    let index = read(&s.path("public/weekly/index.html"));
    assert!(
        index.contains("<p class=\"summary\" lang=\"en\">Alpha things · Beta things</p>"),
        "{index}"
    );
    assert!(
        index.contains("<p class=\"summary\" lang=\"zh\">大家好。这是第五十二周。</p>"),
        "{index}"
    );
    assert!(index.contains("<span class=\"lang\" lang=\"zh\">中文</span>"));
    assert!(index.contains("<a href=\"#y2019\">2019</a><a href=\"#y2018\">2018</a>"));
    assert!(!index.contains("Week 2 draft") && !index.contains("Future"));

    let sitemap = read(&s.path("public/sitemap.xml"));
    let locs: Vec<&str> = sitemap
        .split("<loc>")
        .skip(1)
        .map(|l| &l[..l.find("</loc>").unwrap()])
        .collect();
    assert_eq!(
        locs,
        [
            "https://twin.example/weekly/",
            "https://twin.example/weekly/2019-03.html",
            "https://twin.example/weekly/2019-01-CN.html",
            "https://twin.example/weekly/2019-01.html",
            "https://twin.example/weekly/2018-52-CN.html",
            "https://twin.example/weekly/2018-52.html",
        ]
    );
    assert!(sitemap.contains("<loc>https://twin.example/weekly/2019-03.html</loc><lastmod>2019-01-14T09:00:00+00:00</lastmod>"), "{sitemap}");
    assert_eq!(
        read(&s.path("public/robots.txt")),
        "User-agent: *\nAllow: /\n\nSitemap: https://twin.example/sitemap.xml\n"
    );

    // Byte-identical in a second folder, the list of outputs included.
    build(&s, "again");
    for rel in [
        "sitemap.xml",
        "robots.txt",
        "weekly/index.html",
        "weekly/2019-01.html",
        ".techshack-outputs",
    ] {
        assert_eq!(
            std::fs::read(s.path(&format!("public/{rel}"))).unwrap(),
            std::fs::read(s.path(&format!("again/{rel}"))).unwrap(),
            "{rel}"
        );
    }
}

#[test]
fn sitemap_off_writes_neither_file_and_removes_the_old_ones() {
    let s = site("");
    build(&s, "public");
    assert!(s.path("public/sitemap.xml").is_file());
    let s = s.config(&config("sitemap = false"));
    build(&s, "public");
    assert!(!s.path("public/sitemap.xml").exists());
    assert!(!s.path("public/robots.txt").exists());
    assert!(s.path("public/weekly/index.html").is_file());
}

#[test]
fn a_bad_sitemap_value_is_a_config_error() {
    let s = site("sitemap = \"yes\"");
    let o = s.cmd().args(["build", "--out", "public"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("site.sitemap") && err.contains("true or false"),
        "{err}"
    );
}

/// Builds a corpus with the configuration that ships for it; the output folder.
pub(crate) fn build_corpus(config: &Path, corpus: &str) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    crate::support::techshack()
        .env("TECHSHACK_SECRET", crate::support::SECRET)
        .arg("-q")
        .arg("-c")
        .arg(config)
        .arg("--issues")
        .arg(corpora().join(corpus))
        .arg("build")
        .arg("--out")
        .arg(out.path())
        .assert()
        .success();
    out
}

#[test]
#[ignore = "reads $TECHSHACK_CORPORA"]
fn techshack_twins_point_at_each_other_and_the_index_tells_them_apart() {
    let out = build_corpus(&repo().join("config/techshack.toml"), "techshack");
    let page = |slug: &str| read(&out.path().join(format!("techshack.weekly/{slug}.html")));
    for week in 1..=7 {
        let en = page(&format!("2019-{week:02}"));
        let zh = page(&format!("2019-{week:02}-CN"));
        assert!(en.contains(&format!("hreflang=\"zh\" href=\"https://enqueuezero.com/techshack.weekly/2019-{week:02}-CN.html\"")), "week {week}");
        assert!(zh.contains(&format!("hreflang=\"en\" href=\"https://enqueuezero.com/techshack.weekly/2019-{week:02}.html\"")), "week {week}");
    }
    let index = read(&out.path().join("techshack.weekly/index.html"));
    assert_eq!(
        index
            .matches("<span class=\"lang\" lang=\"zh\">中文</span>")
            .count(),
        7
    );
    assert_eq!(
        index
            .matches("<span class=\"lang\" lang=\"en\">English</span>")
            .count(),
        16
    );
    assert!(
        index.contains("Kubernetes as an API standard · Writing Docs at Amazon"),
        "item titles summarise an issue"
    );
    assert_eq!(
        index.matches("<p class=\"summary\"").count(),
        23,
        "every issue has a summary"
    );
    let sitemap = read(&out.path().join("sitemap.xml"));
    assert_eq!(sitemap.matches("<url>").count(), 24);
}

#[test]
#[ignore = "reads $TECHSHACK_CORPORA"]
fn twir_index_is_grouped_by_year_and_every_page_links_its_neighbours() {
    let out = build_corpus(&repo().join("examples/twir/techshack.toml"), "twir");
    let index = read(&out.path().join("blog/index.html"));
    for year in 2013..=2026 {
        assert!(
            index.contains(&format!("<a href=\"#y{year}\">{year}</a>")),
            "{year}"
        );
        assert!(
            index.contains(&format!("<h2 class=\"year\" id=\"y{year}\">{year}</h2>")),
            "{year}"
        );
    }
    assert_eq!(index.matches("<p class=\"summary\"").count(), 667);
    // Each issue is told by its own links, not by the greeting every issue opens with.
    let summaries: std::collections::BTreeSet<&str> = index
        .split("<p class=\"summary\">")
        .skip(1)
        .map(|s| &s[..s.find("</p>").unwrap()])
        .collect();
    assert!(
        summaries.len() >= 660,
        "{} distinct summaries",
        summaries.len()
    );
    assert!(index.matches("Hello and welcome").count() < 5);
    let mut ends = 0;
    for e in std::fs::read_dir(out.path().join("blog")).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap() == "index.html" {
            continue;
        }
        let html = read(&p);
        let links = html.contains("rel=\"prev\"") as usize + html.contains("rel=\"next\"") as usize;
        assert!(links >= 1, "{}", p.display());
        if links == 1 {
            ends += 1;
        }
    }
    assert_eq!(
        ends, 2,
        "only the oldest and the newest issue lack a neighbour"
    );
    assert_eq!(
        read(&out.path().join("sitemap.xml"))
            .matches("<url>")
            .count(),
        668
    );
}
