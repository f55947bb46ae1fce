//! `techshack check` over broken and hostile issue folders, through the real binary: each case
//! checks the exit code and the exact diagnostics on stderr.

use std::path::Path;

use crate::support::TestSite;

const CONFIG: &str = r#"[site]
title = "Test Shack"
base_url = "https://example.com"
issue_path = "/weekly/{slug}.html"

[issues]
dir = "issues"
filename_date = "%G-%V"
time = "09:00"
{issues_extra}
[components]
TechshackHeader = ""
"#;

/// A folder with `t.toml` (plus `extra` lines in its `[issues]` table) and the given issue
/// files.
fn folder(extra: &str, files: &[(&str, &[u8])]) -> TestSite {
    let mut site = TestSite::new()
        .config_as("t.toml", &CONFIG.replace("{issues_extra}", extra))
        .folder("issues");
    for (name, bytes) in files {
        site = site.issue(name, bytes);
    }
    site
}

/// Runs `techshack -c t.toml --issues issues check` in the site: exit code and stderr.
fn check(site: &TestSite) -> (i32, String) {
    let out = site
        .cmd()
        .args(["-c", "t.toml", "--issues", "issues", "check"])
        .output()
        .expect("run techshack");
    assert!(out.stdout.is_empty(), "check writes nothing on stdout");
    (
        out.status.code().expect("exit code"),
        String::from_utf8(out.stderr).expect("UTF-8 stderr"),
    )
}

const GOOD: &[u8] =
    b"---\ntitle: Fine\n---\n\n## An article\n\n[a.com](https://a.com/x)\n\nNotes.\n";

#[test]
fn clean_folder_passes() {
    let d = folder("", &[("2019-01.md", GOOD)]);
    assert_eq!(
        check(&d),
        (0, "checked 1 issue: 0 errors, 0 warnings\n".into())
    );
}

#[test]
fn malformed_yaml_is_reported_at_its_line_and_column() {
    let d = folder(
        "",
        &[
            (
                "2019-02.md",
                b"---\ntitle: A\nsidebar: auto\n  bad: indent\n---\nx\n",
            ),
            ("2019-03.md", b"---\ntitle: T\ntags: [a, b\n---\nx\n"),
            ("2019-04.md", GOOD),
        ],
    );
    assert_eq!(
        check(&d),
        (
            1,
            "issues/2019-02.md:4:6: error: malformed YAML front matter: mapping values are not allowed in this context\n\
             issues/2019-03.md:4:1: error: malformed YAML front matter: did not find expected ',' or ']'\n\
             checked 3 issues: 2 errors, 0 warnings\n"
                .into()
        )
    );
}

#[test]
fn malformed_toml_is_reported_at_its_line_and_column() {
    let d = folder(
        "",
        &[("2019-02.md", b"+++\ntitle = \"A\"\ndate = \n+++\nx\n")],
    );
    let (code, err) = check(&d);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("issues/2019-02.md:3:8: error: malformed TOML front matter: "),
        "{err}"
    );
}

#[test]
fn unclosed_front_matter() {
    let d = folder(
        "",
        &[(
            "2019-02.md",
            b"---\ntitle: A\n\nBody without a closing line.\n",
        )],
    );
    assert_eq!(
        check(&d),
        (
            1,
            "issues/2019-02.md:1:1: error: YAML front matter opened with `---` is never closed: add a `---` line after the last key\n\
             checked 1 issue: 1 error, 0 warnings\n"
                .into()
        )
    );
}

#[test]
fn non_utf8_file() {
    let d = folder("", &[("2019-02.md", b"---\ntitle: Caf\xe9\n---\nx\n")]);
    assert_eq!(
        check(&d),
        (
            1,
            "issues/2019-02.md:2:11: error: the file is not UTF-8 (byte 0xE9 at offset 14): save it as UTF-8\n\
             checked 1 issue: 1 error, 0 warnings\n"
                .into()
        )
    );
}

#[test]
fn unknown_date_and_no_date() {
    let d = folder(
        "",
        &[
            ("2019-02.md", b"---\ntitle: A\ndate: next tuesday\n---\nx\n"),
            (
                "2019-03.md",
                b"---\ntitle: A\nupdated: 2019-13-45\n---\nx\n",
            ),
            ("notes.md", b"---\ntitle: A\n---\nx\n"),
        ],
    );
    assert_eq!(
        check(&d),
        (
            1,
            "issues/2019-02.md:3:1: error: unknown date `next tuesday`: write it as YYYY-MM-DD, YYYY-MM-DD HH:MM or RFC 3339 (2019-01-07T09:00:00+08:00)\n\
             issues/2019-03.md:3:1: error: unknown date `2019-13-45` in `updated`: write it as YYYY-MM-DD, YYYY-MM-DD HH:MM or RFC 3339 (2019-01-07T09:00:00+08:00)\n\
             issues/notes.md: error: no date: add `date: YYYY-MM-DD` to the front matter, or start the file name with a date in the form `%G-%V` (issues.filename_date)\n\
             checked 3 issues: 3 errors, 0 warnings\n"
                .into()
        )
    );
}

#[test]
fn two_files_with_one_slug() {
    let d = folder("", &[("2019-01.md", GOOD), ("2019-01.markdown", GOOD)]);
    assert_eq!(
        check(&d),
        (
            1,
            "issues/2019-01.md: error: slug `2019-01` is also the slug of issues/2019-01.markdown: rename one of the files or give one a `slug:` of its own\n\
             checked 2 issues: 1 error, 0 warnings\n"
                .into()
        )
    );
}

#[test]
fn front_matter_slug_clashing_with_a_file_name() {
    let d = folder(
        "",
        &[
            ("2019-01.md", GOOD),
            ("2019-02.md", b"---\ntitle: B\nslug: 2019-01\n---\nx\n"),
        ],
    );
    assert_eq!(
        check(&d),
        (
            1,
            "issues/2019-02.md:3:1: error: slug `2019-01` is also the slug of issues/2019-01.md: rename one of the files or give one a `slug:` of its own\n\
             checked 2 issues: 1 error, 0 warnings\n"
                .into()
        )
    );
}

#[test]
fn hidden_files_are_not_issues() {
    let d = folder(
        "",
        &[
            ("2019-01.md", GOOD),
            ("._2019-01.md", b"\x00\x05\x16\x07\xff"),
            (".#2019-02.md", b"x"),
        ],
    );
    assert_eq!(
        check(&d),
        (0, "checked 1 issue: 0 errors, 0 warnings\n".into())
    );
}

#[test]
fn two_files_with_one_id() {
    let d = folder(
        "",
        &[
            ("2019-01.md", b"---\ntitle: A\nid: urn:issue:1\n---\nx\n"),
            ("2019-02.md", b"---\ntitle: B\nid: urn:issue:1\n---\ny\n"),
        ],
    );
    assert_eq!(
        check(&d),
        (
            1,
            "issues/2019-02.md:3:1: error: id `urn:issue:1` is also the id of issues/2019-01.md: every issue needs an id of its own\n\
             checked 2 issues: 1 error, 0 warnings\n"
                .into()
        )
    );
}

#[test]
fn bom_and_crlf_parse_fine() {
    let crlf = GOOD
        .split(|b| *b == b'\n')
        .map(|l| [l, b"\r\n"].concat())
        .collect::<Vec<_>>()
        .concat();
    let bom = [b"\xEF\xBB\xBF".as_slice(), GOOD].concat();
    let both = [b"\xEF\xBB\xBF".as_slice(), &crlf].concat();
    let d = folder(
        "",
        &[
            ("2019-01.md", &crlf),
            ("2019-02.md", &bom),
            ("2019-03.md", &both),
        ],
    );
    assert_eq!(
        check(&d),
        (0, "checked 3 issues: 0 errors, 0 warnings\n".into())
    );
}

#[test]
fn title_with_line_breaks_is_folded_with_a_warning() {
    let d = folder(
        "",
        &[(
            "2019-02.md",
            b"---\ntitle: \"Evil\\r\\nBcc: victim@example.com\"\n---\nx\n",
        )],
    );
    assert_eq!(
        check(&d),
        (
            0,
            "issues/2019-02.md:2:1: warning: the title has line breaks or control characters: they were replaced by spaces\n\
             checked 1 issue: 0 errors, 1 warning\n"
                .into()
        )
    );
}

#[test]
fn warnings_for_components_items_and_empty_issues() {
    let d = folder(
        "",
        &[
            ("2019-02.md", b"---\ntitle: A\n---\n\n<TechshackHeader />\n\n<SubscribeList />\n\nText.\n"),
            (
                "2019-03.md",
                b"---\ntitle: B\n---\n\n## One\n\n[a.com](https://a.com)\n\n## Two\n\nNo link here.\n",
            ),
            ("2019-04.md", b"---\ntitle: C\n---\n"),
        ],
    );
    assert_eq!(
        check(&d),
        (
            0,
            "issues/2019-02.md:7:1: warning: unknown component `<SubscribeList>` was stripped: map it in [components] (`SubscribeList = \"\"` to strip it quietly)\n\
             issues/2019-03.md:9:1: warning: item `Two` has no source link: put `[site](url)` on the line under the heading\n\
             issues/2019-04.md: warning: the issue is empty: it has front matter but no body\n\
             checked 3 issues: 0 errors, 3 warnings\n"
                .into()
        )
    );
}

#[test]
fn missing_static_image_is_reported() {
    let d = folder(
        "static_dir = \"static\"\n",
        &[(
            "2019-02.md",
            b"---\ntitle: A\n---\n\n![ok](/static/ok.png)\n\n![gone](/static/gone.png)\n",
        )],
    );
    let st = d.root().join("static");
    std::fs::create_dir(&st).expect("static dir");
    std::fs::write(st.join("ok.png"), b"png").expect("image");
    assert_eq!(
        check(&d),
        (
            0,
            format!(
                "issues/2019-02.md:7:1: warning: image `/static/gone.png` is not in issues.static_dir {}\n\
                 checked 1 issue: 0 errors, 1 warning\n",
                Path::new(".").join("static").display()
            )
        )
    );
}

#[test]
fn missing_static_dir_is_one_warning() {
    let d = folder(
        "static_dir = \"nowhere\"\n",
        &[(
            "2019-02.md",
            b"---\ntitle: A\n---\n\n![a](/a.png) ![b](/b.png)\n",
        )],
    );
    assert_eq!(
        check(&d),
        (
            0,
            "./nowhere: warning: issues.static_dir does not exist, so 2 site-path image(s) were not checked: create the folder or remove static_dir from the config\n\
             checked 1 issue: 0 errors, 1 warning\n"
                .into()
        )
    );
}

#[test]
fn a_five_megabyte_issue() {
    let mut big = b"---\ntitle: Big\n---\n".to_vec();
    let mut n = 0;
    while big.len() < 5 * 1024 * 1024 {
        n += 1;
        big.extend_from_slice(
            format!(
                "\n## Article {n}\n\n[site{n}.com](https://site{n}.com/a) |\n\nSome notes with **bold**, `code` and a [link](/x/{n}).\n\n- a point\n- another <b>point</b>\n"
            )
            .as_bytes(),
        );
    }
    let d = folder("", &[("2019-02.md", &big)]);
    assert_eq!(
        check(&d),
        (0, "checked 1 issue: 0 errors, 0 warnings\n".into())
    );
}

#[test]
fn errors_in_one_file_do_not_hide_the_others() {
    let d = folder(
        "",
        &[
            ("2019-02.md", b"---\ntitle: [\n---\n"),
            (
                "2019-03.md",
                b"---\ntitle: A\ndate: nope\n---\n\n<Widget />\n\nx\n",
            ),
            ("2019-04.md", b"\xff\xfe"),
        ],
    );
    let (code, err) = check(&d);
    assert_eq!(code, 1);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 5, "{err}");
    assert!(
        lines[0].starts_with("issues/2019-02.md:3:1: error: malformed YAML"),
        "{err}"
    );
    assert!(
        lines[1].starts_with("issues/2019-03.md:3:1: error: unknown date `nope`"),
        "{err}"
    );
    assert!(
        lines[2].starts_with("issues/2019-03.md:6:1: warning: unknown component `<Widget>`"),
        "{err}"
    );
    assert!(
        lines[3].starts_with("issues/2019-04.md:1:1: error: the file is not UTF-8"),
        "{err}"
    );
    assert_eq!(lines[4], "checked 3 issues: 3 errors, 1 warning");
}

#[test]
fn missing_issues_folder_is_an_error() {
    let d = folder("", &[]);
    let out = d
        .cmd()
        .args(["-c", "t.toml", "--issues", "nope", "check"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: reading the issues folder nope: check issues.dir in the config or pass --issues DIR"),
        "{err}"
    );
}

#[test]
fn mail_settings_that_would_fail_a_send_are_errors() {
    let bad = "[email]\nfrom = \"not an address\"\nunsubscribe_url = \"https://example.com/u?token={token}\"\n\
               [smtp]\nurl = \"smtp//oops\"\n";
    let d = folder(bad, &[("2019-01.md", GOOD)]);
    let (code, err) = check(&d);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        err,
        "t.toml: error: composing the email of 2019-01: email.from `not an address` is not a valid mailbox: Invalid input\n\
         t.toml: error: smtp.url `smtp//oops` is not a URL: write smtp://host:port or smtps://host:port: relative URL without a base\n\
         checked 1 issue: 2 errors, 0 warnings\n"
    );
    // A template that does not parse is found without mailing anything.
    let d = folder("[templates]\ndir = \"tpl\"\n", &[("2019-01.md", GOOD)]);
    std::fs::create_dir(d.root().join("tpl")).expect("templates dir");
    std::fs::write(d.root().join("tpl/issue.html"), "{% block x %}").expect("template");
    let (code, err) = check(&d);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.starts_with("t.toml: error: ") && err.contains("issue.html"),
        "{err}"
    );
    // Good mail settings, and none at all (a site that only publishes feeds), pass.
    let good = "[email]\nfrom = \"Shack <news@example.com>\"\nunsubscribe_url = \"https://example.com/u?token={token}\"\n";
    for extra in [good, ""] {
        let d = folder(extra, &[("2019-01.md", GOOD)]);
        let (code, err) = check(&d);
        assert_eq!(
            (code, err.as_str()),
            (0, "checked 1 issue: 0 errors, 0 warnings\n")
        );
    }
}

#[test]
fn an_issue_too_large_for_gmail_is_a_warning() {
    let mail = "[email]\nfrom = \"Shack <news@example.com>\"\nunsubscribe_url = \"https://example.com/u?token={token}\"\n";
    let mut big = b"---\ntitle: Long\n---\n\n".to_vec();
    for i in 0..1500 {
        big.extend_from_slice(
            format!("Paragraph {i} says a good deal about queues and logs.\n\n").as_bytes(),
        );
    }
    let d = folder(mail, &[("2019-01.md", &big)]);
    let (code, err) = check(&d);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with("issues/2019-01.md: warning: the email's HTML is ")
            && lines[0].contains("over the 102 KB at which Gmail clips a message"),
        "{err}"
    );
    assert_eq!(lines[1], "checked 1 issue: 0 errors, 1 warning");
}
