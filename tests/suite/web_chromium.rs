//! The web archive in headless Chromium (driven by chromedriver, as in `serve_browser`): the
//! index and an issue page at 375 px and 1200 px, light and dark, for a small site and both
//! corpora. No horizontal scrolling; on the index the subscribe box is in the first screen.
//! A reader signs up with the form of the static page and confirms from the mail. Screenshots
//! are kept under `target/artifacts/web/` (they are not compared).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use techshack::store::SubscriberStatus;

use crate::serve_browser::{wd, Driver};
use crate::support::serve::*;
use crate::support::{artifacts, repo};
use crate::web_archive;

fn shots() -> PathBuf {
    let p = artifacts().join("web");
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// Fails unless a Chinese font is installed, without which Chromium draws the Chinese pages
/// as empty boxes (`scripts/setup-test-deps` installs one).
fn assert_chinese_font() {
    let out = std::process::Command::new("fc-list")
        .arg(":lang=zh")
        .output()
        .expect("fc-list (fontconfig) runs");
    assert!(
        !out.stdout.is_empty(),
        "no Chinese font: run scripts/setup-test-deps"
    );
}

fn file_url(p: &Path) -> String {
    format!("file://{}", p.display())
}

/// The screen sizes a reader uses: a phone and a desktop.
const SCREENS: [(u32, u32); 2] = [(375, 740), (1200, 900)];

/// Opens `page` at every screen size in light and dark, checks it fits, keeps a screenshot
/// each time; with `index`, checks the subscribe box is on the first screen.
fn check_page(d: &Driver, page: &Path, name: &str, index: bool) {
    for (width, height) in SCREENS {
        for dark in [false, true] {
            d.cdp(
                "Emulation.setDeviceMetricsOverride",
                json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 500}),
            );
            let scheme = if dark { "dark" } else { "light" };
            d.cdp(
                "Emulation.setEmulatedMedia",
                json!({"features": [{"name": "prefers-color-scheme", "value": scheme}]}),
            );
            d.go(&file_url(page));
            let what = format!("{name} at {width} px, {scheme}");
            let m = d.script(
                "var d = document.documentElement, cw = d.clientWidth, wide = [];\
                 document.querySelectorAll('body *').forEach(function (e) {\
                   var r = e.getBoundingClientRect();\
                   if (r.right > cw + 1 && wide.length < 6) wide.push(e.tagName + '.' + e.className + ' ' + Math.round(r.right));\
                 });\
                 var s = document.getElementById('ts-subscribe');\
                 var b = s ? s.getBoundingClientRect() : null;\
                 return {sw: d.scrollWidth, cw: cw, wide: wide, bottom: b ? b.bottom : -1, top: b ? b.top : -1,\
                         bg: getComputedStyle(document.body).backgroundColor,\
                         boxes: document.querySelectorAll('#ts-subscribe').length};",
            );
            let n = |k: &str| m[k].as_f64().unwrap_or(-1.0);
            assert!(
                n("sw") <= n("cw") && n("cw") <= width as f64,
                "{what}: horizontal scrolling: {m}"
            );
            assert_eq!(m["boxes"], json!(1), "{what}: one subscribe box");
            let bg = if dark {
                "rgb(18, 18, 20)"
            } else {
                "rgb(243, 242, 238)"
            };
            assert_eq!(m["bg"], json!(bg), "{what}");
            if index {
                assert!(
                    n("top") >= 0.0 && n("bottom") <= height as f64,
                    "{what}: the subscribe box is not on the first screen: {m}"
                );
            }
            d.screenshot(&shots().join(format!("{name}-{width}-{scheme}.png")));
            if !index {
                // The end of the page: older/newer links and the subscribe box.
                d.script("document.getElementById('ts-subscribe').scrollIntoView({block: 'end'})");
                d.screenshot(&shots().join(format!("{name}-{width}-{scheme}-end.png")));
            }
        }
    }
}

#[test]
fn small_site_pages_fit_a_phone_and_a_desktop_light_and_dark() {
    assert_chinese_font();
    let s = web_archive::site("");
    web_archive::build(&s, "public");
    let d = Driver::start();
    check_page(
        &d,
        &s.path("public/weekly/index.html"),
        "fixture-index",
        true,
    );
    check_page(
        &d,
        &s.path("public/weekly/2018-52.html"),
        "fixture-2018-52",
        false,
    );
    check_page(
        &d,
        &s.path("public/weekly/2018-52-CN.html"),
        "fixture-2018-52-CN",
        false,
    );
}

#[test]
#[ignore = "reads $TECHSHACK_CORPORA"]
fn techshack_pages_fit_a_phone_and_a_desktop_light_and_dark() {
    assert_chinese_font();
    let out = web_archive::build_corpus(&repo().join("config/techshack.toml"), "techshack");
    let d = Driver::start();
    let dir = out.path().join("techshack.weekly");
    check_page(&d, &dir.join("index.html"), "techshack-index", true);
    check_page(&d, &dir.join("2019-07.html"), "techshack-2019-07", false);
    check_page(
        &d,
        &dir.join("2019-07-CN.html"),
        "techshack-2019-07-CN",
        false,
    );
}

#[test]
#[ignore = "reads $TECHSHACK_CORPORA"]
fn twir_pages_fit_a_phone_and_a_desktop_light_and_dark() {
    let out = web_archive::build_corpus(&repo().join("examples/twir/techshack.toml"), "twir");
    let d = Driver::start();
    let dir = out.path().join("blog");
    check_page(&d, &dir.join("index.html"), "twir-index", true);
    check_page(
        &d,
        &dir.join("2025-10-29-this-week-in-rust.html"),
        "twir-2025-10-29",
        false,
    );
}

/// Types `text` into the element `css`.
fn type_into(d: &Driver, css: &str, text: &str) {
    let e = d.element(css);
    wd(
        "POST",
        &d.url(&format!("/element/{e}/value")),
        Some(json!({ "text": text })),
    );
}

fn wait_for_text(d: &Driver, text: &str) -> String {
    let t = Instant::now();
    loop {
        let s = d.source();
        if s.contains(text) {
            return s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no page saying {text:?}: {s}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A reader fills the sign-up form of the built archive (a `file://` page, so the form posts
/// to `serve` from another origin), gets the confirmation mail, opens its link and confirms:
/// `subscribers list` then shows the address active.
#[test]
fn reader_signs_up_from_the_archive_page_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(dir.path(), 0.0);
    let site = crate::support::TestSite::for_serve(dir, sink.port, "", "").issue(
        "2019-01-07.md",
        "---\ntitle: Queues\n---\n\n## [Kafka](https://example.com/k)\n\nNotes.\n",
    );
    let srv = site.serve();
    // The pages' form posts to serve.public_url: here, where serve really listens.
    let config = std::fs::read_to_string(&site.config).unwrap();
    let local = site.path("local.toml");
    std::fs::write(&local, config.replace(PUBLIC_URL, &srv.base)).unwrap();
    let o = site
        .cmd()
        .env("TECHSHACK_CONFIG", &local)
        .args(["build", "--out", "public"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let index = site.path("public/archive/index.html");
    assert!(crate::support::read(&index).contains(&format!("action=\"{}/subscribe\"", srv.base)));

    let d = Driver::start();
    d.go(&file_url(&index));
    type_into(&d, "#ts-email", "Reader@Example.net");
    type_into(&d, "#ts-name", "Ann Reader");
    d.screenshot(&shots().join("signup-filled.png"));
    let button = d.element("#ts-subscribe-button");
    d.click(&button);
    wait_for_text(&d, "Check your inbox");
    d.screenshot(&shots().join("signup-check-inbox.png"));
    assert_eq!(
        site.subscriber_status("reader@example.net"),
        Some(SubscriberStatus::Pending)
    );

    let mail = sink.wait_for(1);
    let link = link_in(&mail[0], &format!("{PUBLIC_URL}/confirm"));
    d.go(&srv.local(&link));
    wait_for_text(&d, "Confirm your subscription");
    let confirm = d.element("#confirm");
    d.click(&confirm);
    wait_for_text(&d, "You are subscribed");
    d.screenshot(&shots().join("signup-confirmed.png"));
    let list = site.cmd().args(["subscribers", "list"]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    let line = list
        .lines()
        .find(|l| l.contains("reader@example.net"))
        .unwrap_or_else(|| panic!("not listed: {list}"));
    assert!(
        line.contains("active") && line.contains("Ann Reader"),
        "{line}"
    );
}
