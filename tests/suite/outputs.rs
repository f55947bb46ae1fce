//! What `build`, `preview` and `check` write for inputs a real site or a hostile contributor
//! gives them: links, raw HTML fallbacks, deep nesting, odd files in the issues folder.

use std::process::Stdio;
use std::time::{Duration, Instant};

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::support::{fixture, read, TestSite};

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

[state]
db = "state/techshack.sqlite3"

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

#[test]
fn lowercase_words_in_angle_brackets_stay_as_text_and_elements_still_work() {
    let s = site(
        "[Returning <dyn Error> from main](https://x.example/2)\n\n\
         A <T> for an <i32>, with <b>bold</b>, <em>em</em> and <span>span</span> kept.\n\n\
         <u8>\n\n<Wrapped>inside</Wrapped>\n",
    );
    let stderr = build(&s);
    let page = page(&s);
    for shown in [
        "Returning &lt;dyn Error&gt; from main",
        "A &lt;T&gt; for an &lt;i32&gt;, with <b>bold</b>, <em>em</em> and <span>span</span> kept.",
        "&lt;u8&gt;",
    ] {
        assert!(page.contains(shown), "{shown} in\n{page}");
    }
    // A paired unknown component is still a component: warned about, its tags dropped.
    assert!(
        !page.contains("Wrapped") && page.contains("inside"),
        "{page}"
    );
    assert!(stderr.contains("Wrapped"), "{stderr}");
    assert!(
        !stderr.contains("dyn") && !stderr.contains("i32"),
        "{stderr}"
    );
    // The feeds carry the same HTML.
    let feed = feed(&s);
    assert!(
        feed.contains("Returning &lt;dyn Error&gt; from main"),
        "{feed}"
    );
    let o = s
        .cmd()
        .env("TECHSHACK_NOW", NOW)
        .args(["preview", "2019-20", "--text", "m.txt"])
        .output()
        .expect("preview");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = read(&s.path("m.txt"));
    assert!(text.contains("Returning <dyn Error> from main"), "{text}");
    assert!(text.contains("A <T> for an <i32>"), "{text}");
}

/// Every `<word` of the issues of This Week in Rust that is not an element or component name
/// (`<u8>`, `<dyn Error>`, `<T>`) shows on the issue's page as text.
#[test]
#[ignore]
fn no_word_in_angle_brackets_vanishes_from_a_corpus_page() {
    const ELEMENTS: &[&str] = &[
        "a", "b", "body", "br", "code", "div", "em", "i", "img", "li", "meta", "noscript",
        "object", "p", "pre", "script", "small", "span", "strong", "sub", "sup", "wbr",
    ];
    let corpus = crate::support::corpora().join("twir");
    let out = tempfile::tempdir().expect("temporary folder");
    crate::support::techshack()
        .arg("-q")
        .arg("-c")
        .arg(crate::support::repo().join("examples/twir/techshack.toml"))
        .arg("--issues")
        .arg(&corpus)
        .arg("build")
        .arg("--out")
        .arg(out.path())
        .assert()
        .success();
    let (mut words, mut missing) = (0, Vec::new());
    for e in std::fs::read_dir(&corpus).expect("corpus") {
        let path = e.expect("entry").path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let Ok(source) = std::fs::read_to_string(&path) else {
            continue;
        };
        let page = out.path().join(format!("blog/{stem}.html"));
        if !page.is_file() {
            continue;
        }
        let page = read(&page);
        // Comments are not shown at all.
        let mut source = source.as_str();
        let mut shown = String::new();
        while let Some(i) = source.find("<!--") {
            shown.push_str(&source[..i]);
            source = source[i..].find("-->").map_or("", |e| &source[i + e + 3..]);
        }
        shown.push_str(source);
        let source = shown;
        for (i, _) in source.match_indices('<') {
            let rest = &source[i + 1..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let tag_like = rest[name.len()..].starts_with([' ', '>']);
            // `Name` is a component's; `u8`, `dyn` and `T` are words.
            let component = name.starts_with(|c: char| c.is_ascii_uppercase())
                && name.chars().any(|c| c.is_ascii_lowercase());
            let word = name.starts_with(|c: char| c.is_ascii_alphabetic());
            if !tag_like || !word || component {
                continue;
            }
            if ELEMENTS.contains(&name.to_ascii_lowercase().as_str()) {
                continue;
            }
            words += 1;
            if !page.contains(&format!("&lt;{name}")) {
                missing.push(format!("{stem}: <{name}"));
            }
        }
    }
    assert!(words > 50, "only {words} words in angle brackets");
    assert!(missing.is_empty(), "{}", missing.join("\n"));
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

#[test]
fn noscript_and_other_fallbacks_come_out_as_markup_in_page_feed_and_email() {
    let s = site(
        "A chart:\n\n<noscript>\n<img src=\"/static/chart.png\" alt=\"chart\" />\n\
         <p>(static chart)</p>\n</noscript>\n\n<div>\n<noembed><p>(no embed)</p></noembed>\
         <noframes><p><b>no frames</b></p></noframes><xmp><em>xmp</em></xmp>\
         <textarea><strong>area</strong></textarea><title><i>t</i></title>\n</div>\n\n\
         <div><noscript><script>alert(1)</script><p onclick=\"x()\">safe</p></noscript></div>\n",
    );
    build(&s);
    let (ok, err) = run_bounded(
        &s,
        &["preview", "2019-20", "--html", "m.html", "--text", "m.txt"],
        Duration::from_secs(60),
    );
    assert!(ok, "{err}");
    // The email's elements carry inlined styles; the markup is what is checked.
    let email = without_styles(&read(&s.path("m.html")));
    let feed = feed(&s);
    let page = page(&s);
    for (what, html) in [("page", &page), ("email", &email)] {
        assert!(
            html.contains(r#"<img src="https://out.example/static/chart.png" alt="chart""#),
            "{what}: {html}"
        );
        for frag in [
            "<p>(static chart)</p>",
            "<p>(no embed)</p>",
            "<b>no frames</b>",
            "<em>xmp</em>",
            "<strong>area</strong>",
            "<i>t</i>",
            "<p>safe</p>",
        ] {
            assert!(html.contains(frag), "{what} lacks {frag}: {html}");
        }
        assert!(!html.contains("&lt;"), "{what} has escaped markup: {html}");
        for gone in [
            "<noscript",
            "<textarea",
            "<title><i>",
            "<xmp",
            "alert(1)",
            "onclick",
        ] {
            assert!(!html.contains(gone), "{what} has {gone}: {html}");
        }
    }
    // The feed carries the same markup (in CDATA), never escaped markup.
    assert!(feed.contains("<p>(static chart)</p>"), "{feed}");
    assert!(feed.contains("<b>no frames</b>"), "{feed}");
    assert!(
        !feed.contains("&lt;p&gt;") && !feed.contains("&amp;lt;"),
        "{feed}"
    );
    let text = read(&s.path("m.txt"));
    assert!(
        text.contains("(static chart)") && !text.contains("<p>"),
        "{text}"
    );
}

/// `html` without its ` style="…"` attributes.
fn without_styles(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(i) = rest.find(" style=\"") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 8..];
        rest = after.find('"').map_or("", |e| &after[e + 1..]);
    }
    out.push_str(rest);
    out
}

/// `&lt;` before an HTML element's name, outside `<code>` and `<pre>`: markup shown as text.
fn escaped_markup(html: &str) -> Vec<String> {
    const ELEMENTS: &[&str] = &[
        "a",
        "abbr",
        "audio",
        "b",
        "blockquote",
        "br",
        "div",
        "em",
        "figure",
        "h1",
        "h2",
        "h3",
        "h4",
        "hr",
        "i",
        "iframe",
        "img",
        "li",
        "noscript",
        "ol",
        "p",
        "picture",
        "script",
        "source",
        "span",
        "strong",
        "table",
        "td",
        "tr",
        "ul",
        "video",
    ];
    let mut found = Vec::new();
    let mut depth = 0usize;
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        let (text, tail) = rest.split_at(i);
        if depth == 0 {
            for (j, _) in text.match_indices("&lt;") {
                let after = text[j + 4..].trim_start_matches('/');
                let name: String = after
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect();
                let next = after[name.len()..].chars().next();
                let tag_like = matches!(next, Some(' ' | '/') | None)
                    || after[name.len()..].starts_with("&gt;");
                if tag_like && ELEMENTS.contains(&name.to_ascii_lowercase().as_str()) {
                    found.push(text[j..].chars().take(60).collect());
                }
            }
        }
        let end = tail.find('>').map_or(tail.len(), |e| e + 1);
        let tag = &tail[..end];
        let lower = tag.to_ascii_lowercase();
        if lower.starts_with("<code") || lower.starts_with("<pre") {
            depth += 1;
        } else if lower.starts_with("</code") || lower.starts_with("</pre") {
            depth = depth.saturating_sub(1);
        }
        rest = &tail[end..];
    }
    found
}

#[test]
fn escaped_markup_is_found_only_outside_code() {
    assert_eq!(
        escaped_markup("<p>&lt;img src=x&gt; and &lt;p&gt;</p><code>&lt;div&gt;</code><pre><span>&lt;b&gt;</span></pre> Vec&lt;T&gt;"),
        ["&lt;img src=x&gt; and &lt;p&gt;", "&lt;p&gt;"]
    );
}

#[test]
#[ignore]
fn no_built_corpus_page_shows_escaped_markup() {
    let dir = crate::support::corpora();
    for (config, corpus) in [
        ("config/techshack.toml", "techshack"),
        ("examples/twir/techshack.toml", "twir"),
    ] {
        let out = tempfile::tempdir().expect("temporary folder");
        crate::support::techshack()
            .arg("-q")
            .arg("-c")
            .arg(crate::support::repo().join(config))
            .arg("--issues")
            .arg(dir.join(corpus))
            .arg("build")
            .arg("--out")
            .arg(out.path())
            .assert()
            .success();
        let mut pages = 0;
        let mut bad = Vec::new();
        let mut stack = vec![out.path().to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).expect("folder") {
                let p = e.expect("entry").path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "html") {
                    pages += 1;
                    for f in escaped_markup(&read(&p)) {
                        bad.push(format!("{}: {f}", p.display()));
                    }
                }
            }
        }
        assert!(pages > 20, "{corpus}: only {pages} pages");
        assert!(bad.is_empty(), "{corpus}:\n{}", bad.join("\n"));
    }
}

/// Every file under `dir` (relative, `/`-separated) with its bytes.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("folder") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(dir)
                    .expect("under")
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(&p).expect("file"));
            }
        }
    }
    out
}

/// The `updated …` lines of `build -v`, as paths relative to `out`.
fn updated_lines(stderr: &str, out: &Path) -> BTreeSet<String> {
    let prefix = format!("updated {}/", out.display());
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_back_dated_issue_rewrites_only_the_archive_pages_from_its_date_on_and_build_names_them() {
    let issues = tempfile::tempdir().expect("folder");
    for e in std::fs::read_dir(fixture("feeds").join("issues")).expect("fixture") {
        let p = e.expect("entry").path();
        std::fs::copy(&p, issues.path().join(p.file_name().expect("name"))).expect("copy");
    }
    let out = tempfile::tempdir().expect("folder");
    let build = || {
        let o = crate::support::techshack()
            .env("TECHSHACK_NOW", NOW)
            .arg("-v")
            .arg("-c")
            .arg(fixture("feeds").join("techshack.toml"))
            .arg("--issues")
            .arg(issues.path())
            .arg("build")
            .arg("--out")
            .arg(out.path())
            .output()
            .expect("run build");
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{err}");
        err
    };
    build();
    let before = tree(out.path());
    // A rebuild of the same issues changes nothing and names nothing.
    let err = build();
    assert!(updated_lines(&err, out.path()).is_empty(), "{err}");
    assert_eq!(before, tree(out.path()));
    // Published late: an issue dated between 2019-03 and 2019-04.
    std::fs::write(
        issues.path().join("late.md"),
        "---\ntitle: Late week\ndate: 2019-01-16\n---\n\n## Late story\n\n\
         [late.example](https://late.example/post)\n\nNotes.\n",
    )
    .expect("issue");
    let err = build();
    let after = tree(out.path());
    let changed: BTreeSet<String> = before
        .iter()
        .filter(|(p, b)| after.get(*p).is_some_and(|a| a != *b))
        .map(|(p, _)| p.clone())
        .filter(|p| p != ".techshack-outputs")
        .collect();
    assert_eq!(updated_lines(&err, out.path()), changed, "{err}");
    // In each archive series, the changed pages are the newest ones from some page on; the
    // older pages keep their bytes.
    let mut kept_somewhere = false;
    for stem in ["atom", "rss", "items.atom", "items.rss"] {
        let pages: Vec<String> = (1..)
            .map(|n| format!("archive/{stem}-{n}.xml"))
            .take_while(|p| before.contains_key(p))
            .collect();
        assert!(pages.len() >= 2, "{stem}: {pages:?}");
        let first = pages.iter().position(|p| changed.contains(p));
        let first = first.unwrap_or(pages.len());
        for (i, p) in pages.iter().enumerate() {
            assert_eq!(
                changed.contains(p),
                i >= first,
                "{stem}: {p} in {changed:?}"
            );
        }
        kept_somewhere |= first > 0;
    }
    assert!(
        kept_somewhere,
        "no archive page kept its bytes: {changed:?}"
    );
}

#[test]
fn deep_nesting_is_flattened_with_a_warning_and_crashes_no_command() {
    let inputs = [
        ("quotes", ">".repeat(12_000) + " deep quote\n"),
        (
            "inline tags",
            format!(
                "x {}deep inline{} y\n",
                "<span>".repeat(100_000),
                "</span>".repeat(100_000)
            ),
        ),
        ("stars", "*".repeat(200_000) + "\n"),
        (
            "divs",
            format!(
                "{}deep div\n{}",
                "<div>\n".repeat(100_000),
                "</div>\n".repeat(100_000)
            ),
        ),
        ("lists", "- ".repeat(5_000) + "deep item\n"),
    ];
    let bound = Duration::from_secs(300);
    for (what, body) in inputs {
        let s = site(&body);
        let (ok, err) = run_bounded(&s, &["subscribers", "add", "reader@example.net"], bound);
        assert!(ok, "{err}");
        for args in [
            &["check"][..],
            &["build", "--out", "public"],
            &["preview", "2019-20", "--html", "m.html", "--text", "m.txt"],
            &["send", "2019-20", "--dry-run", "dry"],
        ] {
            let (ok, err) = run_bounded(&s, args, bound);
            assert!(ok, "{what}: {args:?} failed:\n{err}");
        }
        let (_, err) = run_bounded(&s, &["check"], bound);
        if what != "stars" {
            assert!(
                err.contains("issues/2019-20.md:") && err.contains("was flattened"),
                "{what}: {err}"
            );
        }
        let words = what.split(' ').next().unwrap_or(what);
        let page = page(&s);
        let text = read(&s.path("m.txt"));
        if what != "stars" {
            let word = match words {
                "quotes" => "deep quote",
                "inline" => "deep inline",
                "divs" => "deep div",
                _ => "deep item",
            };
            assert!(page.contains(word), "{what}: the text is kept");
            assert!(text.contains(word), "{what}: the text part keeps it");
        }
        assert!(
            std::fs::read_dir(s.path("dry"))
                .expect("dry-run folder")
                .count()
                == 1,
            "{what}: one message"
        );
    }
}
