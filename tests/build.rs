//! `techshack build` as a site build uses it: deterministic, atomic, loud on bad input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use assert_cmd::Command;

const NOW: &str = "2019-06-01T00:00:00+08:00";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/feeds")
}

fn techshack(issues: &Path, out: &Path) -> Command {
    let mut cmd = Command::cargo_bin("techshack").expect("the techshack binary");
    cmd.env("TECHSHACK_NOW", NOW)
        .arg("-c")
        .arg(fixture().join("techshack.toml"))
        .arg("--issues")
        .arg(issues)
        .arg("build")
        .arg("--out")
        .arg(out);
    cmd
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("readable folder") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(dir)
                    .expect("under dir")
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, std::fs::read(&p).expect("readable file"));
            }
        }
    }
    out
}

/// A copy of the fixture issues that a test may change.
fn issues_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary folder");
    for (rel, bytes) in snapshot(&fixture().join("issues")) {
        std::fs::write(dir.path().join(rel), bytes).expect("copy");
    }
    dir
}

#[test]
fn two_builds_write_identical_bytes() {
    let issues = fixture().join("issues");
    let a = tempfile::tempdir().expect("temporary folder");
    let b = tempfile::tempdir().expect("temporary folder");
    techshack(&issues, a.path()).assert().success();
    techshack(&issues, b.path()).assert().success();
    let sa = snapshot(a.path());
    assert!(
        sa.contains_key("atom.xml") && sa.contains_key("archive/atom-1.xml"),
        "{:?}",
        sa.keys()
    );
    assert_eq!(sa, snapshot(b.path()));
    // Rebuilding over the same folder changes nothing either, and leaves no temporary file.
    techshack(&issues, a.path()).assert().success();
    assert_eq!(sa, snapshot(a.path()));
}

#[test]
fn a_bad_issue_fails_the_build_and_leaves_old_outputs_untouched() {
    let issues = issues_copy();
    let out = tempfile::tempdir().expect("temporary folder");
    techshack(issues.path(), out.path()).assert().success();
    let before = snapshot(out.path());
    std::fs::write(
        issues.path().join("2019-06.md"),
        "---\ntitle: [unclosed\ndate: 2019-02-11\n---\n\n## A\n\n[a.example](https://a.example/)\n",
    )
    .expect("bad issue");
    std::fs::write(
        issues.path().join("no-date-here.md"),
        "# No date anywhere\n",
    )
    .expect("bad issue");
    let o = techshack(issues.path(), out.path()).output().expect("run");
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("2019-06.md:"),
        "the bad file is not named:\n{stderr}"
    );
    assert!(
        stderr.contains("no-date-here.md"),
        "only the first problem was reported:\n{stderr}"
    );
    assert!(stderr.contains("error:"), "{stderr}");
    assert_eq!(
        before,
        snapshot(out.path()),
        "a failed build changed the outputs"
    );
}

#[test]
fn an_unwritable_output_fails_loudly_and_writes_nothing() {
    let issues = fixture().join("issues");
    let dir = tempfile::tempdir().expect("temporary folder");
    let out = dir.path().join("public");
    std::fs::write(&out, b"a file where the folder should be").expect("blocker");
    let o = techshack(&issues, &out).output().expect("run");
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("public"), "{stderr}");
    assert_eq!(snapshot(dir.path()).len(), 1);
}

#[test]
fn no_published_issue_writes_no_feed_and_says_so() {
    let issues = tempfile::tempdir().expect("temporary folder");
    std::fs::write(
        issues.path().join("2019-01.md"),
        "---\ntitle: Draft\npublished: false\n---\n\nNot yet.\n",
    )
    .expect("draft");
    let out = tempfile::tempdir().expect("temporary folder");
    let o = techshack(issues.path(), out.path()).output().expect("run");
    assert!(o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("no published issue"), "{stderr}");
    assert!(snapshot(out.path()).is_empty());
}

#[test]
fn the_clock_is_read_from_the_environment_and_checked() {
    let issues = fixture().join("issues");
    let out = tempfile::tempdir().expect("temporary folder");
    let o = techshack(&issues, out.path())
        .env("TECHSHACK_NOW", "next tuesday")
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("TECHSHACK_NOW"));
    // At the real clock the issue of 2099 is still in the future.
    techshack(&issues, out.path())
        .env_remove("TECHSHACK_NOW")
        .assert()
        .success();
    let atom = std::fs::read_to_string(out.path().join("atom.xml")).expect("atom.xml");
    assert!(!atom.contains("2099-01"));
}

#[test]
fn a_template_that_fails_to_render_leaves_old_outputs_untouched() {
    let issues = fixture().join("issues");
    let out = tempfile::tempdir().expect("temporary folder");
    techshack(&issues, out.path()).assert().success();
    let before = snapshot(out.path());
    assert!(
        before.contains_key("weekly/2019-01.html"),
        "{:?}",
        before.keys()
    );
    // The feeds are staged before the pages: a page that cannot be rendered must take them
    // back too.
    let work = tempfile::tempdir().expect("temporary folder");
    let templates = work.path().join("templates");
    std::fs::create_dir(&templates).expect("templates folder");
    std::fs::write(templates.join("issue.html"), "{{ no_such_thing.at_all }}").expect("template");
    let config = std::fs::read_to_string(fixture().join("techshack.toml")).expect("config");
    let config = config.replace("[issues]", "[templates]\ndir = \"templates\"\n\n[issues]");
    std::fs::write(work.path().join("techshack.toml"), config).expect("config");
    let o = Command::cargo_bin("techshack")
        .expect("the techshack binary")
        .env("TECHSHACK_NOW", NOW)
        .arg("-c")
        .arg(work.path().join("techshack.toml"))
        .arg("--issues")
        .arg(&issues)
        .arg("build")
        .arg("--out")
        .arg(out.path())
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("issue.html"), "{stderr}");
    assert_eq!(
        before,
        snapshot(out.path()),
        "a failed build changed the outputs"
    );
}

#[test]
fn a_page_template_that_reads_the_plain_text_gets_it() {
    let issues = fixture().join("issues");
    let work = tempfile::tempdir().expect("temporary folder");
    let templates = work.path().join("templates");
    std::fs::create_dir(&templates).expect("templates folder");
    std::fs::write(
        templates.join("issue.html"),
        "<pre>{{ issue.text }}</pre>{% for i in issue.items %}<pre>{{ i.text }}</pre>{% endfor %}",
    )
    .expect("template");
    let config = std::fs::read_to_string(fixture().join("techshack.toml")).expect("config");
    let config = config.replace("[issues]", "[templates]\ndir = \"templates\"\n\n[issues]");
    std::fs::write(work.path().join("techshack.toml"), config).expect("config");
    let out = work.path().join("out");
    Command::cargo_bin("techshack")
        .expect("the techshack binary")
        .env("TECHSHACK_NOW", NOW)
        .arg("-c")
        .arg(work.path().join("techshack.toml"))
        .arg("--issues")
        .arg(&issues)
        .arg("build")
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let page = std::fs::read_to_string(out.join("weekly/2019-01.html")).expect("the page");
    // Links of the text part are numbered references listed at the end.
    assert!(page.contains("Queues Without Tears\n---"), "{page}");
    assert!(
        page.contains("[1] https://queues.example/without-tears"),
        "{page}"
    );
    assert!(
        !page.contains("<pre></pre>"),
        "an item without text: {page}"
    );
}
