//! `techshack build` writing the web archive beside the feeds.

use std::path::Path;

use crate::support::*;

fn build(config: &Path, out: &Path) -> assert_cmd::assert::Assert {
    techshack()
        .env("TECHSHACK_NOW", "2024-06-01T00:00:00Z")
        .arg("-c")
        .arg(config)
        .arg("build")
        .arg("--out")
        .arg(out)
        .assert()
}

fn fixture_config_in(dir: &Path, templates: Option<&Path>) -> std::path::PathBuf {
    let mut cfg = read(&fixture("email").join("techshack.toml")).replace(
        "dir = \"issues\"",
        &format!("dir = {:?}", fixture("email").join("issues")),
    );
    if let Some(t) = templates {
        cfg = cfg.replace("[templates]", &format!("[templates]\ndir = {t:?}"));
    }
    let p = dir.join("t.toml");
    std::fs::write(&p, cfg).unwrap();
    p
}

#[test]
fn build_writes_each_page_and_the_index_beside_the_feeds() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fixture_config_in(dir.path(), None);
    let out = dir.path().join("public");
    build(&cfg, &out).success();
    for slug in ["2024-01-01-crlf", "2024-01-08-hostile", "2024-01-15-cjk"] {
        let page = read(&out.join(format!("weekly/{slug}.html")));
        assert!(page.contains("<link rel=\"alternate\" type=\"application/atom+xml\""));
        assert!(page.contains("href=\"https://fixture.example/atom.xml\""));
        assert!(page.contains("href=\"https://fixture.example/rss.xml\""));
        assert!(page.contains("href=\"https://fixture.example/feed.json\""));
        assert!(page.contains(&format!(
            "<link rel=\"canonical\" href=\"https://fixture.example/weekly/{slug}.html\">"
        )));
        assert!(!page.to_ascii_lowercase().contains("<script"), "{slug}");
    }
    let hostile = read(&out.join("weekly/2024-01-08-hostile.html"));
    assert!(hostile.contains("id=\"first-item\"") && hostile.contains("id=\"second-item\""));
    let index = read(&out.join("weekly/index.html"));
    let (a, b) = (
        index.find("2024-01-15-cjk.html").unwrap(),
        index.find("2024-01-01-crlf.html").unwrap(),
    );
    assert!(a < b, "newest first");
    assert!(out.join("atom.xml").is_file(), "the feeds are there too");

    // A second build writes the same bytes.
    let out2 = dir.path().join("public2");
    build(&cfg, &out2).success();
    for f in ["weekly/index.html", "weekly/2024-01-15-cjk.html"] {
        assert!(
            std::fs::read(out.join(f)).unwrap() == std::fs::read(out2.join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn a_broken_page_template_fails_the_build_and_keeps_the_old_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("public");
    build(&fixture_config_in(dir.path(), None), &out).success();
    let before = std::fs::read(out.join("weekly/index.html")).unwrap();
    let tpl = dir.path().join("templates");
    std::fs::create_dir(&tpl).unwrap();
    std::fs::write(
        tpl.join("issue.html"),
        "{% extends \"base.html\" %}{% block main %}{{ issue.nope | upper }}{% endblock main %}",
    )
    .unwrap();
    let cfg = fixture_config_in(dir.path(), Some(&tpl));
    build(&cfg, &out)
        .code(1)
        .stderr(predicates::str::contains("issue.html"));
    assert!(std::fs::read(out.join("weekly/index.html")).unwrap() == before);
}
