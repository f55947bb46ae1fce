//! The parser never panics and never lets active content through, whatever the bytes.
//!
//! The two property tests run a few hundred cases with every `cargo test`. The long run is
//! ignored and stays out of CI; run it for, say, 15 minutes with
//! `TECHSHACK_FUZZ_SECS=900 cargo test --release --test parse_fuzz -- --ignored --nocapture`.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};
use techshack::config::Config;

fn config() -> Config {
    Config::parse(
        "[site]\ntitle = \"Fuzz\"\nbase_url = \"https://example.com\"\nissue_path = \"/w/{slug}.html\"\n\
         timezone = \"Europe/Berlin\"\n[issues]\nfilename_date = \"%G-%V\"\ntime = \"09:00\"\n\
         [components]\nTechshackHeader = \"\"\n",
        Path::new("t.toml"),
    )
    .expect("fuzz config")
}

/// Pieces real issues (and broken ones) are made of.
const TOKENS: &[&str] = &[
    "---\n",
    "+++\n",
    "...\n",
    "title: ",
    "date: ",
    "updated: ",
    "published: false\n",
    "draft: true\n",
    "slug: ",
    "id: ",
    "description: ",
    "tags: [a, b]\n",
    "Title: T\n",
    "Date: 2019-1-2\n",
    "Category: c\n",
    "2019-01-07",
    "2020-12-2 10:30",
    "T09:00:00+08:00",
    "\r\n",
    "\n",
    "\n\n",
    "# ",
    "## ",
    "### ",
    "[a.com](https://a.com)",
    "[](",
    "](/x)",
    "](rel/y)",
    ") | [",
    " | ",
    "|",
    "✨",
    "<TechshackHeader />",
    "<Unknown />",
    "<Comp>",
    "</Comp>",
    "<!--",
    "-->",
    "<script>",
    "</script>",
    "<img src=/a onerror=x>",
    "<small>",
    "</small>",
    "<b>",
    "</i>",
    "<br>",
    "<div style=\"x\">",
    "</div>",
    "<mermaid>\n",
    "A --> B\n",
    "</mermaid>\n",
    "```\n",
    "~~~",
    "    code\n",
    "* ",
    "1. ",
    "> ",
    "![i](/static/i.png)",
    "\u{feff}",
    "é",
    "中文",
    "\u{2028}",
    "\u{200b}",
    "\0",
    "\t",
    "&amp;",
    "&#0;",
    "[^1]",
    "[^1]: note\n",
    "| a | b |\n|---|---|\n| c | d |\n",
    "***\n",
    "___\n",
    "===\n",
    "<",
    ">",
    "\"",
    "'",
    "\\",
    "]]>",
    "javascript:alert(1)",
    "java&#9;script:",
    "java\tscript:",
    "&#1;javascript:",
    "vbscript:",
    "<a href=\"javascript:x\">",
    "<a href=\"/p?a=1&amp;b\">",
    "</a>",
    "<img srcset=\"a.png 1x, /b.png 2x, javascript:x 3x\">",
    "<source srcset=\"data:i/p;base64,QQ== 1x,, (\">",
    "<video poster=\"p.jpg\" autoplay src=\"//v.mp4\">",
    "</video>",
    "<picture>",
    "\u{F0001}",
    "0\u{F0002}",
];

fn markdownish() -> impl Strategy<Value = Vec<u8>> {
    pieces(1)
}

/// Tokens, words and (with weight `raw`) arbitrary bytes, which are rarely valid UTF-8.
fn pieces(raw: u32) -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        8 => proptest::sample::select(TOKENS).prop_map(|t| t.as_bytes().to_vec()),
        2 * raw => proptest::collection::vec(any::<u8>(), 0..8),
        2 => "[a-zA-Z0-9 ]{0,12}".prop_map(String::into_bytes),
        1 => any::<String>().prop_map(String::into_bytes),
    ];
    proptest::collection::vec(piece, 0..80).prop_map(|v| v.concat())
}

/// A valid head (YAML, TOML, Pelican or none) and a Markdown-like body, so most cases reach
/// the Markdown pipeline and the item finder.
fn issue_like() -> impl Strategy<Value = Vec<u8>> {
    let head = proptest::sample::select(
        &[
            "---\ntitle: T\ndate: 2019-01-07\n---\n",
            "+++\ntitle = \"T\"\n+++\n",
            "Title: T\nDate: 2019-1-7 10:00\n\n",
            "# T\n\n",
        ][..],
    );
    (head, pieces(0)).prop_map(|(h, b)| [h.as_bytes(), &b].concat())
}

/// Parses `bytes` under three file names and checks what must hold for any input; counts the
/// parses that gave an issue.
fn check(config: &Config, bytes: &[u8]) -> Result<(), TestCaseError> {
    check_counting(config, bytes, &AtomicU64::new(0))
}

fn check_counting(config: &Config, bytes: &[u8], parsed: &AtomicU64) -> Result<(), TestCaseError> {
    for name in ["2019-01.md", "notes.markdown", "2019-01-07-x.md"] {
        let (issue, diags) = techshack::issue::parse_issue(config, Path::new(name), bytes);
        for d in &diags {
            let s = d.to_string();
            prop_assert!(!s.contains('\n'), "diagnostic on one line: {s:?}");
        }
        let Some(i) = issue else {
            prop_assert!(diags.iter().any(|d| d.is_error()), "no issue and no error");
            continue;
        };
        parsed.fetch_add(1, Ordering::Relaxed);
        prop_assert!(!i.title.is_empty());
        prop_assert!(
            !i.title.chars().any(char::is_control),
            "title {:?}",
            i.title
        );
        let mut html = i.html.to_ascii_lowercase();
        for it in &i.items {
            prop_assert!(!it.title.chars().any(char::is_control));
            prop_assert!(!it.anchor.is_empty());
            html.push_str(&it.html.to_ascii_lowercase());
        }
        for bad in ["<script", "<iframe", "<style", "<object", "<embed", "<form"] {
            prop_assert!(!html.contains(bad), "{bad} in {html}");
        }
        if let Some(bad) = active_attribute(&html) {
            return Err(TestCaseError::fail(format!("{bad} in {html}")));
        }
        let mut anchors: Vec<&str> = i.items.iter().map(|x| x.anchor.as_str()).collect();
        anchors.sort_unstable();
        let n = anchors.len();
        anchors.dedup();
        prop_assert_eq!(anchors.len(), n, "anchors unique");
    }
    Ok(())
}

/// An event handler attribute or a `javascript:` URL in any real tag of `html` (escaped text
/// holds no raw `<`, so every `<` starts markup).
fn active_attribute(html: &str) -> Option<String> {
    let b = html.as_bytes();
    let mut i = 0;
    while let Some(p) = html[i..].find('<') {
        let mut j = i + p + 1;
        if html[j..].starts_with("!--") {
            i = html[j..].find("-->").map_or(b.len(), |e| j + e + 3);
            continue;
        }
        // Tag name.
        while j < b.len() && !b[j].is_ascii_whitespace() && b[j] != b'>' {
            j += 1;
        }
        // Attributes up to the closing `>`.
        loop {
            while j < b.len() && (b[j].is_ascii_whitespace() || b[j] == b'/') {
                j += 1;
            }
            if j >= b.len() || b[j] == b'>' {
                break;
            }
            let start = j;
            while j < b.len() && !b[j].is_ascii_whitespace() && !matches!(b[j], b'=' | b'>') {
                j += 1;
            }
            let name = &html[start..j];
            let mut value = "";
            if j < b.len() && b[j] == b'=' {
                j += 1;
                let q = b.get(j).copied().filter(|c| *c == b'"' || *c == b'\'');
                if let Some(q) = q {
                    j += 1;
                    let vs = j;
                    while j < b.len() && b[j] != q {
                        j += 1;
                    }
                    value = &html[vs..j.min(b.len())];
                    j += 1;
                } else {
                    let vs = j;
                    while j < b.len() && !b[j].is_ascii_whitespace() && b[j] != b'>' {
                        j += 1;
                    }
                    value = &html[vs..j];
                }
            }
            let url_list = name == "srcset" && value.contains("javascript:");
            if name.starts_with("on")
                || name == "autoplay"
                || url_list
                || value.trim_start().starts_with("javascript:")
                || value.trim_start().starts_with("vbscript:")
            {
                return Some(format!("{name}={value}"));
            }
        }
        i = j.min(b.len());
    }
    None
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        check(&config(), &bytes)?;
    }

    #[test]
    fn markdown_like_bytes(bytes in markdownish()) {
        check(&config(), &bytes)?;
    }

    #[test]
    fn issue_like_bytes(bytes in issue_like()) {
        check(&config(), &bytes)?;
    }
}

#[test]
#[ignore]
fn fuzz_for_a_while() {
    let secs: u64 = std::env::var("TECHSHACK_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let config = config();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut cases = 0u64;
    let parsed = AtomicU64::new(0);
    while Instant::now() < deadline {
        let rc = RunnerConfig {
            cases: 2000,
            failure_persistence: None,
            ..RunnerConfig::default()
        };
        let mut r = TestRunner::new(rc.clone());
        r.run(&markdownish(), |b| check_counting(&config, &b, &parsed))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut r = TestRunner::new(rc.clone());
        r.run(&issue_like(), |b| check_counting(&config, &b, &parsed))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut r = TestRunner::new(rc);
        r.run(&proptest::collection::vec(any::<u8>(), 0..4096), |b| {
            check_counting(&config, &b, &parsed)
        })
        .unwrap_or_else(|e| panic!("{e}"));
        cases += 6000;
    }
    println!(
        "fuzzed {cases} inputs (3 file names each, {} parses gave an issue) in {secs} s without a failure",
        parsed.load(Ordering::Relaxed)
    );
}
