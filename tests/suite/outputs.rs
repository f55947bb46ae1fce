//! What `build`, `preview` and `check` write for inputs a real site or a hostile contributor
//! gives them: links, raw HTML fallbacks, deep nesting, odd files in the issues folder.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{read, TestSite};

const NOW: &str = "2019-06-01T00:00:00+08:00";

const CONFIG: &str = r#"
[site]
title = "Outputs Weekly"
description = "A digest written for the tests"
base_url = "https://out.example"
issue_path = "/weekly/{slug}.html"
language = "en"
timezone = "+08:00"
author = { name = "Editors", email = "editors@out.example" }

[issues]
dir = "issues"
filename_date = "%G-%V"
time = "09:00"

[feeds]
path = "/"

[email]
from = "Outputs Weekly <news@out.example>"
list_id = "weekly.out.example"
unsubscribe_url = "https://out.example/unsubscribe?token={token}"
"#;

/// A site with the test configuration and one issue `2019-20.md` holding `body`.
fn site(body: &str) -> TestSite {
    TestSite::new().config(CONFIG).issue(
        "2019-20.md",
        format!("---\ntitle: Week 20\n---\n\n{body}\n"),
    )
}

/// Runs `build --out public` and returns its stderr; panics unless it succeeds.
fn build(site: &TestSite) -> String {
    let o = site
        .cmd()
        .env("TECHSHACK_NOW", NOW)
        .args(["build", "--out", "public"])
        .output()
        .expect("run build");
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "build failed:\n{stderr}");
    stderr
}

fn page(site: &TestSite) -> String {
    read(&site.path("public/weekly/2019-20.html"))
}

fn feed(site: &TestSite) -> String {
    read(&site.path("public/atom.xml"))
}

#[test]
fn an_email_autolink_is_a_mailto_link_everywhere() {
    let s = site("Write to <corey+blog@octayn.net> or [us](mailto:editors@out.example).");
    build(&s);
    let (page, feed) = (page(&s), feed(&s));
    assert!(
        page.contains(r#"href="mailto:corey+blog@octayn.net""#),
        "{page}"
    );
    assert!(
        page.contains(r#"href="mailto:editors@out.example""#),
        "{page}"
    );
    assert!(!page.contains("mailto:https"), "{page}");
    assert!(feed.contains("mailto:corey+blog@octayn.net"), "{feed}");
    assert!(!feed.contains("mailto:https"), "{feed}");
}

#[test]
fn bare_generics_in_link_text_stay_as_text() {
    let s = site(
        "[Tracking Issue for Result<Option> and Option<Result> Conversion](https://x.example/1)\n\n\
         A `Vec<T>` in prose.\n\n<Unknown />\n\n<Wrapped>inside</Wrapped>\n",
    );
    let stderr = build(&s);
    let page = page(&s);
    assert!(
        page.contains(
            "Tracking Issue for Result&lt;Option&gt; and Option&lt;Result&gt; Conversion"
        ),
        "{page}"
    );
    // A self-closing or paired unknown component is still a component: warned about, dropped.
    assert!(
        !page.contains("Unknown") && !page.contains("Wrapped"),
        "{page}"
    );
    assert!(page.contains("inside"), "{page}");
    assert!(
        stderr.contains("Unknown") && stderr.contains("Wrapped"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("Option") && !stderr.contains("Result"),
        "{stderr}"
    );
    let text = s
        .cmd()
        .env("TECHSHACK_NOW", NOW)
        .args(["preview", "2019-20", "--text", "m.txt"])
        .output()
        .expect("preview");
    assert!(
        text.status.success(),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );
    let text = read(&s.path("m.txt"));
    assert!(text.contains("Result<Option> and Option<Result>"), "{text}");
}

/// Runs `cmd` with `args` on `site` and returns (success, stderr), within a bound.
fn run_bounded(site: &TestSite, args: &[&str], bound: Duration) -> (bool, String) {
    let mut child = site
        .cmd()
        .env("TECHSHACK_NOW", NOW)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start techshack");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut err = String::new();
            use std::io::Read as _;
            child
                .stderr
                .take()
                .expect("stderr")
                .read_to_string(&mut err)
                .expect("read stderr");
            return (status.success(), err);
        }
        if start.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`techshack {}` did not finish within {bound:?}",
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(unix)]
#[test]
fn links_out_of_the_issues_folder_and_fifos_are_refused_with_their_place() {
    let s = site("A normal week.")
        .file("outside/secrets.env", "TECHSHACK_SECRET=do-not-publish\n")
        .issue(
            "2019-21.md",
            "---\ntitle: Week 21\n---\n\nLinked to from inside.\n",
        );
    std::os::unix::fs::symlink("../outside/secrets.env", s.path("issues/2019-45.md"))
        .expect("link");
    // A link that stays inside the folder is read like its target.
    std::os::unix::fs::symlink("2019-21.md", s.path("issues/2019-22.md")).expect("link");
    let fifo = s.path("issues/x.md");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let bound = Duration::from_secs(60);
    for args in [
        &["check"][..],
        &["build", "--out", "public"],
        &["send", "--latest", "--dry-run", "dry"],
    ] {
        let (ok, err) = run_bounded(&s, args, bound);
        assert!(!ok, "{args:?} succeeded:\n{err}");
        assert!(
            err.contains("issues/2019-45.md: error: is a link to")
                && err.contains("outside the issues folder"),
            "{args:?}:\n{err}"
        );
        assert!(
            err.contains("issues/x.md: error: is a named pipe (FIFO), not a regular file"),
            "{args:?}:\n{err}"
        );
        assert!(!err.contains("2019-22.md"), "{args:?}:\n{err}");
        assert!(!err.contains("do-not-publish"), "{err}");
    }
    assert!(!s.path("public").join("atom.xml").exists());
    assert!(!s.path("dry").exists() || std::fs::read_dir(s.path("dry")).unwrap().count() == 0);
    let (ok, err) = run_bounded(&s, &["preview", "2019-45", "--text", "m.txt"], bound);
    assert!(!ok && err.contains("outside the issues folder"), "{err}");
    assert!(!s.path("m.txt").exists());
    // Without them, the link inside the folder builds.
    std::fs::remove_file(s.path("issues/2019-45.md")).expect("rm");
    std::fs::remove_file(&fifo).expect("rm");
    build(&s);
    assert!(read(&s.path("public/weekly/2019-22.html")).contains("Linked to from inside."));
}
