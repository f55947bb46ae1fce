//! `techshack build` as a site build uses it: deterministic, atomic, loud on bad input.

use std::collections::BTreeMap;
use std::path::Path;

use assert_cmd::Command;

use crate::support::{self, fixture};

const NOW: &str = "2019-06-01T00:00:00+08:00";

fn techshack(issues: &Path, out: &Path) -> Command {
    let mut cmd = support::techshack();
    cmd.env("TECHSHACK_NOW", NOW)
        .arg("-c")
        .arg(fixture("feeds").join("techshack.toml"))
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
    for (rel, bytes) in snapshot(&fixture("feeds").join("issues")) {
        std::fs::write(dir.path().join(rel), bytes).expect("copy");
    }
    dir
}

#[test]
fn two_builds_write_identical_bytes() {
    let issues = fixture("feeds").join("issues");
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
    // The manifest too: it records sizes and content hashes, never a time.
    assert!(sa.contains_key(MANIFEST));
    assert_eq!(sa, snapshot(b.path()));
    let listing = String::from_utf8_lossy(&sa[MANIFEST]).into_owned();
    assert!(
        listing.contains("atom.xml\t") && listing.contains("\tsha256:"),
        "{listing}"
    );
    // Rebuilding over the same folder changes nothing either, the manifest included, and
    // leaves no temporary file.
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
    let issues = fixture("feeds").join("issues");
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
    let issues = fixture("feeds").join("issues");
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
    let issues = fixture("feeds").join("issues");
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
    let config = std::fs::read_to_string(fixture("feeds").join("techshack.toml")).expect("config");
    let config = config.replace("[issues]", "[templates]\ndir = \"templates\"\n\n[issues]");
    std::fs::write(work.path().join("techshack.toml"), config).expect("config");
    let o = support::techshack()
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
    let issues = fixture("feeds").join("issues");
    let work = tempfile::tempdir().expect("temporary folder");
    let templates = work.path().join("templates");
    std::fs::create_dir(&templates).expect("templates folder");
    std::fs::write(
        templates.join("issue.html"),
        "<pre>{{ issue.text }}</pre>{% for i in issue.items %}<pre>{{ i.text }}</pre>{% endfor %}",
    )
    .expect("template");
    let config = std::fs::read_to_string(fixture("feeds").join("techshack.toml")).expect("config");
    let config = config.replace("[issues]", "[templates]\ndir = \"templates\"\n\n[issues]");
    std::fs::write(work.path().join("techshack.toml"), config).expect("config");
    let out = work.path().join("out");
    support::techshack()
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

const MANIFEST: &str = ".techshack-outputs";

/// `techshack build` over `issues` into `out` with the config at `config`, then `args`.
fn build_with(config: &Path, issues: &Path, out: &Path, args: &[&str]) -> std::process::Output {
    support::techshack()
        .env("TECHSHACK_NOW", NOW)
        .arg("-c")
        .arg(config)
        .arg("--issues")
        .arg(issues)
        .arg("build")
        .arg("--out")
        .arg(out)
        .args(args)
        .output()
        .expect("run")
}

/// Builds with the fixture config; panics on failure; returns stderr.
fn build_ok(issues: &Path, out: &Path, args: &[&str]) -> String {
    let o = build_with(&fixture("feeds").join("techshack.toml"), issues, out, args);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "build failed:\n{stderr}");
    stderr
}

/// An issue of the ISO week `slug` with one article, published unless `draft`.
fn write_issue(dir: &Path, slug: &str, draft: bool) {
    let text = format!(
        "---\ntitle: Week {slug}\ndraft: {draft}\n---\n\n## Story of {slug}\n\n\
         [story-{slug}.example](https://story-{slug}.example/post)\n\nNotes on {slug}.\n"
    );
    std::fs::write(dir.join(format!("{slug}.md")), text).expect("issue");
}

fn three_issues() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary folder");
    for slug in ["2019-01", "2019-02", "2019-03"] {
        write_issue(dir.path(), slug, false);
    }
    dir
}

/// The paths the manifest lists (without the size and time of each), in its order.
fn manifest(out: &Path) -> Vec<String> {
    std::fs::read_to_string(out.join(MANIFEST))
        .expect("the manifest")
        .lines()
        .map(|l| l.split('\t').next().unwrap_or(l).to_string())
        .collect()
}

/// The outputs of `before` that are not in `after`.
fn gone(before: &BTreeMap<String, Vec<u8>>, after: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    before
        .keys()
        .filter(|k| !after.contains_key(*k))
        .cloned()
        .collect()
}

#[test]
fn an_issue_set_back_to_draft_leaves_no_page_or_feed_entry_and_user_files_stay() {
    let issues = three_issues();
    let work = tempfile::tempdir().expect("temporary folder");
    let out = work.path().join("public");
    build_ok(issues.path(), &out, &[]);
    let first = snapshot(&out);
    assert!(
        first.contains_key("weekly/2019-02.html"),
        "{:?}",
        first.keys()
    );
    let outputs: Vec<String> = first.keys().filter(|k| *k != MANIFEST).cloned().collect();
    assert_eq!(
        manifest(&out),
        outputs,
        "the manifest lists every output, sorted"
    );
    let mentions = |snap: &BTreeMap<String, Vec<u8>>| -> Vec<String> {
        snap.iter()
            .filter(|(_, bytes)| {
                let text = String::from_utf8_lossy(bytes);
                text.contains("2019-02") || text.contains("story-2019-02")
            })
            .map(|(k, _)| k.clone())
            .collect()
    };
    assert!(mentions(&first).contains(&"weekly/index.html".to_string()));
    assert!(mentions(&first).contains(&"items.atom.xml".to_string()));
    // The site's own files in the same folder.
    std::fs::write(out.join("CNAME"), "weekly.fixture.example\n").expect("CNAME");
    std::fs::write(out.join("weekly/custom.css"), "body { color: teal }\n").expect("css");

    write_issue(issues.path(), "2019-02", true);
    let stderr = build_ok(issues.path(), &out, &["-v"]);
    let second = snapshot(&out);
    assert!(!out.join("weekly/2019-02.html").exists());
    assert_eq!(
        mentions(&second),
        Vec::<String>::new(),
        "outputs still mention the draft"
    );
    assert_eq!(second["CNAME"], b"weekly.fixture.example\n");
    assert_eq!(second["weekly/custom.css"], b"body { color: teal }\n");
    let removed = gone(&first, &second);
    assert!(removed.contains(&"weekly/2019-02.html".to_string()));
    let summary = match removed.len() {
        1 => ", removed 1 stale file\n".to_string(),
        n => format!(", removed {n} stale files\n"),
    };
    assert!(
        stderr.contains("articles in the main feeds)") && stderr.contains(&summary),
        "{stderr}"
    );
    for rel in &removed {
        let line = format!("removed {}\n", out.join(rel).display());
        assert!(stderr.contains(&line), "-v does not list {rel}:\n{stderr}");
    }
    assert!(
        !manifest(&out)
            .iter()
            .any(|l| l == "CNAME" || l.ends_with("custom.css")),
        "the user's files were listed as outputs"
    );

    // Nothing more to remove: the line is as it always was, and `-q` prints nothing.
    let stderr = build_ok(issues.path(), &out, &[]);
    assert!(!stderr.contains("removed"), "{stderr}");
    write_issue(issues.path(), "2019-03", true);
    let stderr = build_ok(issues.path(), &out, &["-q"]);
    assert_eq!(stderr, "");
    assert!(!out.join("weekly/2019-03.html").exists());
    assert!(out.join("weekly/custom.css").exists());
}

#[test]
fn a_renamed_issue_leaves_no_page_under_its_old_slug() {
    let issues = three_issues();
    let out = tempfile::tempdir().expect("temporary folder");
    build_ok(issues.path(), out.path(), &[]);
    assert!(out.path().join("weekly/2019-03.html").exists());
    std::fs::rename(
        issues.path().join("2019-03.md"),
        issues.path().join("2019-03-queues.md"),
    )
    .expect("rename");
    let stderr = build_ok(issues.path(), out.path(), &[]);
    assert!(stderr.contains(", removed 1 stale file\n"), "{stderr}");
    assert!(!out.path().join("weekly/2019-03.html").exists());
    assert!(out.path().join("weekly/2019-03-queues.html").exists());
    assert!(manifest(out.path()).contains(&"weekly/2019-03-queues.html".to_string()));
}

#[test]
fn a_failed_build_removes_nothing() {
    let issues = three_issues();
    let out = tempfile::tempdir().expect("temporary folder");
    build_ok(issues.path(), out.path(), &[]);
    let before = snapshot(out.path());
    write_issue(issues.path(), "2019-02", true);
    std::fs::write(
        issues.path().join("2019-03.md"),
        "---\ntitle: [unclosed\n---\n\nBody.\n",
    )
    .expect("malformed issue");
    let o = build_with(
        &fixture("feeds").join("techshack.toml"),
        issues.path(),
        out.path(),
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("2019-03.md:"));
    assert_eq!(
        before,
        snapshot(out.path()),
        "a failed build changed the outputs"
    );
    // Once fixed, the draft's page goes.
    write_issue(issues.path(), "2019-03", false);
    build_ok(issues.path(), out.path(), &[]);
    assert!(!out.path().join("weekly/2019-02.html").exists());
}

#[test]
fn a_tampered_manifest_removes_nothing_outside_the_output_folder() {
    let issues = three_issues();
    let work = tempfile::tempdir().expect("temporary folder");
    let out = work.path().join("public");
    build_ok(issues.path(), &out, &[]);
    let outside = work.path().join("outside.txt");
    std::fs::write(&outside, "next to the output folder").expect("outside file");
    let abs = outside.canonicalize().expect("absolute path");
    let mut tampered = std::fs::read_to_string(out.join(MANIFEST)).expect("manifest");
    tampered.push_str(&format!(
        "../outside.txt\n{}\n/{}\nweekly/../../outside.txt\n\n./../outside.txt\n",
        abs.display(),
        abs.display()
    ));
    std::fs::write(out.join(MANIFEST), tampered).expect("tampered manifest");
    let before = snapshot(&out);
    let stderr = build_ok(issues.path(), &out, &[]);
    assert!(!stderr.contains("removed"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&outside).expect("the outside file survives"),
        "next to the output folder"
    );
    let after = snapshot(&out);
    assert_eq!(gone(&before, &after), Vec::<String>::new());
    assert!(
        !manifest(&out).iter().any(|l| l.contains("outside")),
        "invalid lines are not carried over"
    );
}

#[test]
fn a_drafts_build_is_listed_so_the_next_build_removes_the_draft_pages() {
    let issues = issues_copy();
    let out = tempfile::tempdir().expect("temporary folder");
    build_ok(issues.path(), out.path(), &[]);
    assert!(!out.path().join("weekly/2019-04.html").exists());
    build_ok(issues.path(), out.path(), &["--drafts"]);
    assert!(out.path().join("weekly/2019-04.html").exists());
    assert!(out.path().join("weekly/2099-01.html").exists());
    assert!(manifest(out.path()).contains(&"weekly/2019-04.html".to_string()));
    build_ok(issues.path(), out.path(), &[]);
    assert!(!out.path().join("weekly/2019-04.html").exists());
    assert!(!out.path().join("weekly/2099-01.html").exists());
    assert!(out.path().join("weekly/2019-05.html").exists());
}

#[test]
fn removing_an_extra_feed_removes_its_feeds_and_archives() {
    let issues = tempfile::tempdir().expect("temporary folder");
    for slug in ["2019-01-CN", "2019-02-CN", "2019-03-CN", "2019-02"] {
        write_issue(issues.path(), slug, false);
    }
    let out = tempfile::tempdir().expect("temporary folder");
    build_ok(issues.path(), out.path(), &[]);
    let first = snapshot(out.path());
    for rel in [
        "zh.atom.xml",
        "zh.rss.xml",
        "zh.json",
        "archive/zh.atom-1.xml",
        "archive/zh.rss-1.xml",
    ] {
        assert!(first.contains_key(rel), "{rel} missing: {:?}", first.keys());
    }
    let work = tempfile::tempdir().expect("temporary folder");
    let config = std::fs::read_to_string(fixture("feeds").join("techshack.toml")).expect("config");
    let (without, _) = config
        .split_once("[[feeds.extra]]")
        .expect("the fixture has an extra feed");
    std::fs::write(work.path().join("techshack.toml"), without).expect("config");
    let o = build_with(
        &work.path().join("techshack.toml"),
        issues.path(),
        out.path(),
        &[],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let second = snapshot(out.path());
    let removed = gone(&first, &second);
    assert!(
        removed
            .iter()
            .all(|r| r.starts_with("zh.") || r.starts_with("archive/zh.")),
        "{removed:?}"
    );
    assert_eq!(second.keys().filter(|k| k.contains("zh.")).count(), 0);
    assert!(
        stderr.contains(&format!(", removed {} stale files\n", removed.len())),
        "{stderr}"
    );
    assert!(second.contains_key("archive/atom-1.xml"));
}

#[test]
fn a_page_the_user_put_at_an_old_output_path_survives_and_stale_pages_still_go() {
    let issues = three_issues();
    let work = tempfile::tempdir().expect("temporary folder");
    let out = work.path().join("public");
    build_ok(issues.path(), &out, &[]);
    let first = manifest(&out);
    assert!(
        first.contains(&"weekly/2019-02.html".to_string()),
        "{first:?}"
    );
    assert!(
        first.contains(&"weekly/2019-03.html".to_string()),
        "{first:?}"
    );
    std::fs::remove_file(issues.path().join("2019-02.md")).expect("delete issue");
    std::fs::remove_file(issues.path().join("2019-03.md")).expect("delete issue");
    // A redirect for the old URL, written over build's page.
    let redirect = "<!doctype html><meta http-equiv=\"refresh\" content=\"0; url=2019-01.html\">\n";
    std::fs::write(out.join("weekly/2019-02.html"), redirect).expect("redirect page");

    let stderr = build_ok(issues.path(), &out, &["-v"]);
    assert_eq!(
        std::fs::read_to_string(out.join("weekly/2019-02.html")).expect("the redirect survives"),
        redirect
    );
    assert!(
        !out.join("weekly/2019-03.html").exists(),
        "the untouched stale page stayed"
    );
    let page = |name: &str| out.join("weekly").join(name).display().to_string();
    assert!(
        stderr.contains(&format!("removed {}\n", page("2019-03.html"))),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "kept {}: it changed since build wrote it\n",
            page("2019-02.html")
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains(&format!("removed {}", page("2019-02.html"))),
        "{stderr}"
    );
    let listed = manifest(&out);
    assert!(
        !listed
            .iter()
            .any(|l| l.starts_with("weekly/2019-0") && l != "weekly/2019-01.html"),
        "{listed:?}"
    );
    // The next build leaves the redirect alone too, and says nothing about it.
    let stderr = build_ok(issues.path(), &out, &["-v"]);
    assert!(!stderr.contains("2019-02.html"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(out.join("weekly/2019-02.html")).expect("the redirect survives"),
        redirect
    );
}

#[test]
fn an_unreadable_manifest_is_kept_with_a_warning_and_the_build_succeeds() {
    let issues = three_issues();
    let out = tempfile::tempdir().expect("temporary folder");
    build_ok(issues.path(), out.path(), &[]);
    let manifest_path = out.path().join(MANIFEST);
    std::fs::remove_file(&manifest_path).expect("remove manifest");
    std::fs::create_dir(&manifest_path).expect("manifest folder");
    std::fs::remove_file(issues.path().join("2019-03.md")).expect("delete issue");
    let stderr = build_ok(issues.path(), out.path(), &[]);
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains(&manifest_path.display().to_string()),
        "{stderr}"
    );
    assert!(manifest_path.is_dir(), "the manifest was overwritten");
    assert!(out.path().join("weekly/2019-03.html").exists());
    assert!(!stderr.contains("stale file"), "{stderr}");
}
