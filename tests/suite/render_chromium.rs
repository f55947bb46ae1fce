//! The email HTML in a real browser engine: Debian's headless Chromium at 375 px and 1200 px.
//! No horizontal scrolling on a phone, every image absolute. Screenshots are kept under
//! `target/artifacts/` to look at (they are not compared).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

/// Chromium, which `scripts/setup-test-deps` installs; the test fails without it.
fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser"] {
        for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!("chromium is not installed: run scripts/setup-test-deps");
}

fn run_chromium(args: &[String], page: &Path) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "--virtual-time-budget=2000",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(args)
    .arg(format!("file://{}", page.display()));
    let out = cmd.output().expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[derive(Debug, serde::Deserialize)]
struct Measure {
    sw: i64,
    cw: i64,
    imgs: Vec<String>,
    wide: Vec<String>,
}

// Runs inside the email (loaded in an iframe as wide as the phone, since a headless window
// is never narrower than 500 px) and reports to the harness page around it.
const PROBE: &str = r#"<script>
(function () {
  var d = document.documentElement, cw = d.clientWidth, wide = [];
  document.querySelectorAll('body *').forEach(function (e) {
    var r = e.getBoundingClientRect();
    if (r.right > cw + 1 && wide.length < 8) {
      wide.push(e.tagName + '.' + e.className + ' right=' + Math.round(r.right));
    }
  });
  var out = document.createElement('pre');
  out.id = 'measure';
  out.textContent = JSON.stringify({
    sw: d.scrollWidth, cw: cw, wide: wide,
    imgs: Array.prototype.map.call(document.images, function (i) { return i.getAttribute('src') || ''; })
  });
  window.parent.document.body.appendChild(out);
})();
</script>"#;

/// A page holding `html` in an iframe `width` px wide (and tall enough to show it all).
fn harness(html: &str, width: u32, height: u32) -> String {
    let escaped = html
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><style>body{{margin:0;background:#777}}iframe{{border:0;display:block}}</style></head>\
         <body><iframe width=\"{width}\" height=\"{height}\" srcdoc=\"{escaped}\"></iframe></body></html>"
    )
}

/// Loads `html` at `width` px and measures it.
fn measure(html: &str, width: u32, dir: &Path) -> Measure {
    let probe = dir.join(format!("probe-{width}.html"));
    let at = html.rfind("</body>").expect("the email has a body");
    let with_probe = format!("{}{PROBE}{}", &html[..at], &html[at..]);
    std::fs::write(&probe, harness(&with_probe, width, 900)).unwrap();
    let dom = run_chromium(
        &[
            format!("--window-size={},900", width.max(500)),
            "--dump-dom".into(),
        ],
        &probe,
    );
    let start = dom.find("<pre id=\"measure\">").expect("the probe ran") + 18;
    let end = start + dom[start..].find("</pre>").expect("probe output ends");
    let json = dom[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&json).expect("probe JSON")
}

fn screenshot(html: &str, dir: &Path, name: &str, width: u32, extra: &[&str]) {
    let shot = artifacts().join(format!("{name}-{width}.png"));
    let _ = std::fs::remove_file(&shot);
    let html_file = dir.join(format!("shot-{name}-{width}.html"));
    std::fs::write(&html_file, harness(html, width, 3000)).unwrap();
    let mut args = vec![
        format!("--window-size={width},3000"),
        format!("--screenshot={}", shot.display()),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    run_chromium(&args, &html_file);
    let len = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        len > 10_000,
        "screenshot {} was not written",
        shot.display()
    );
}

/// The checks every email HTML must pass in the browser.
pub fn check_in_browser(html: &str, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let narrow = measure(html, 375, dir.path());
    assert!(
        narrow.sw <= narrow.cw,
        "{name}: horizontal scrolling at 375 px: scrollWidth {} > clientWidth {}; too wide: {:?}",
        narrow.sw,
        narrow.cw,
        narrow.wide
    );
    let wide = measure(html, 1200, dir.path());
    assert!(
        wide.sw <= wide.cw,
        "{name}: horizontal scrolling at 1200 px"
    );
    for src in &narrow.imgs {
        assert!(
            src.starts_with("https://") || src.starts_with("http://"),
            "{name}: image with a relative URL: {src:?}"
        );
    }
    std::fs::write(artifacts().join(format!("{name}.html")), html).unwrap();
    screenshot(html, dir.path(), name, 375, &[]);
    screenshot(html, dir.path(), name, 1200, &[]);
    screenshot(
        html,
        dir.path(),
        &format!("{name}-dark"),
        375,
        &[
            "--force-dark-mode",
            "--blink-settings=preferredColorScheme=0",
        ],
    );
}

#[test]
fn seed_issue_email_fits_a_phone_and_a_desktop() {
    let html = seed_email_html();
    assert!(html.contains("<img"), "the seed issue has images to check");
    check_in_browser(&html, "techshack-2019-01");
}

#[test]
fn wide_content_does_not_widen_the_page() {
    let c = repo_config();
    let md = format!(
        "A long word {long} and a [long link](https://example.com/{long}).\n\n\
         ```\n{code}\n```\n\n| a | b |\n|---|---|\n| {long} | {long} |\n\n\
         ![pic](https://example.com/wide.png)\n\n<img src=\"https://example.com/x.png\" width=\"2000\" height=\"10\">\n\n\
         混合中文和English的一段很长的文字{zh}",
        long = "x".repeat(300),
        code = "y".repeat(400),
        zh = "汉字".repeat(200),
    );
    let issue = issue_from_markdown(&c, "wide", "Wide things", &md);
    let comp = techshack::mail::compose::Composer::new(&c, &issue, SECRET.as_bytes()).unwrap();
    let html = comp.html(&techshack::mail::compose::Recipient {
        address: "reader@example.org".parse().unwrap(),
        name: None,
    });
    check_in_browser(&html, "wide-content");
}

/// The HTML part `techshack preview` writes for `slug`.
fn preview_html(config: &Path, issues: Option<&Path>, slug: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("email.html");
    let mut cmd = techshack();
    cmd.env("TECHSHACK_SECRET", SECRET).arg("-c").arg(config);
    if let Some(i) = issues {
        cmd.arg("--issues").arg(i);
    }
    cmd.args(["preview", slug, "--html"])
        .arg(&html)
        .assert()
        .success();
    read(&html)
}

fn seed_email_html() -> String {
    preview_html(&repo().join("config/techshack.toml"), None, "2019-01")
}

#[test]
#[ignore = "reads $TECHSHACK_CORPORA"]
fn twir_email_fits_a_phone_and_a_desktop() {
    let twir = corpora().join("twir");
    // The shipped example is a complete configuration, [email] included.
    let cfg = repo().join("examples/twir/techshack.toml");
    // Issue 102 has a source line over 998 bytes; a recent issue has tables and images.
    for slug in ["2015-10-26-this-week-in-rust", newest_twir(&twir).as_str()] {
        let html = preview_html(&cfg, Some(&twir), slug);
        check_in_browser(&html, &format!("twir-{slug}"));
    }
}

fn newest_twir(dir: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.path().file_stem()?.to_str().map(str::to_string))
        .filter(|n| n.starts_with("20"))
        .collect();
    names.sort();
    names.pop().expect("twir issues")
}

/// The web archive page and index of the seed issue, written by `emit::web`.
fn seed_pages() -> Vec<(String, String)> {
    let config = repo_config();
    let loaded = techshack::issue::load_all(&config).expect("the seed issue parses");
    let issues: Vec<&techshack::model::Issue> = loaded.issues.iter().collect();
    let templates = techshack::templates::Templates::load(&config).unwrap();
    let files = std::sync::Mutex::new(Vec::new());
    techshack::emit::web::write(&config, &templates, &issues, |rel, bytes| {
        files
            .lock()
            .unwrap()
            .push((rel.to_string(), String::from_utf8(bytes.to_vec())?));
        Ok(())
    })
    .unwrap();
    let mut files = files.into_inner().unwrap();
    files.sort();
    files
}

#[test]
fn seed_issue_web_page_and_index_fit_a_phone() {
    let files = seed_pages();
    let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "robots.txt",
            "sitemap.xml",
            "techshack.weekly/2019-01.html",
            "techshack.weekly/index.html"
        ]
    );
    let files = &files[2..];
    let page = &files[0].1;
    for (kind, file) in [
        ("application/atom+xml", "atom.xml"),
        ("application/rss+xml", "rss.xml"),
        ("application/feed+json", "feed.json"),
    ] {
        assert!(
            page.contains(&format!("type=\"{kind}\""))
                && page.contains(&format!("href=\"https://enqueuezero.com/{file}\"")),
            "autodiscovery of {file}"
        );
    }
    let config = repo_config();
    let loaded = techshack::issue::load_all(&config).unwrap();
    for item in &loaded.issues[0].items {
        assert!(
            page.contains(&format!(" id=\"{}\"", item.anchor)),
            "anchor {}",
            item.anchor
        );
    }
    assert!(page.contains("<style>"), "the page carries its stylesheet");
    assert!(
        !page.contains("{token}") && !page.contains("Unsubscribe"),
        "no recipient parts"
    );
    check_in_browser(page, "page-2019-01");
    check_in_browser(&files[1].1, "index");
}
