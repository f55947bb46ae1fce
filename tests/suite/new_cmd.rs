//! `techshack new` through the real binary: the file it writes parses back to the date and
//! title asked for, and an existing issue is never overwritten.

use std::path::Path;

use crate::support::TestSite;
use techshack::config::Config;

fn folder(filename_date: &str) -> TestSite {
    TestSite::new()
        .config_as(
            "t.toml",
            &format!(
                "[site]\ntitle = \"Test Shack\"\nbase_url = \"https://example.com\"\ntimezone = \"+08:00\"\n\
                 [issues]\ndir = \"issues\"\nfilename_date = \"{filename_date}\"\ntime = \"09:00\"\n\
                 [templates]\ndir = \"templates\"\n"
            ),
        )
        // The folder the config names; a missing one is an error for `build` and `check`.
        .folder("templates")
        .folder("issues")
}

fn techshack(site: &TestSite, args: &[&str]) -> (i32, String, String) {
    let out = site
        .cmd()
        .args(["-c", "t.toml"])
        .args(args)
        .output()
        .expect("run techshack");
    (
        out.status.code().expect("exit code"),
        String::from_utf8(out.stdout).expect("UTF-8"),
        String::from_utf8(out.stderr).expect("UTF-8"),
    )
}

/// Parses the written file back with the same configuration.
fn read_back(dir: &Path, name: &str) -> techshack::model::Issue {
    let config = Config::load(&dir.join("t.toml")).expect("config");
    let path = dir.join("issues").join(name);
    let bytes = std::fs::read(&path).expect("new file");
    let (issue, diags) = techshack::issue::parse_issue(&config, &path, &bytes);
    assert!(diags.is_empty(), "{diags:?}");
    issue.expect("the new issue parses")
}

#[test]
fn iso_week_name_and_exact_date_round_trip() {
    let d = folder("%G-%V");
    let (code, out, err) = techshack(
        &d,
        &[
            "new",
            "--date",
            "2019-01-02",
            "--title",
            "Kafka: \"exactly once\" # 1",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "./issues/2019-01.md\n");
    assert_eq!(
        err,
        "wrote ./issues/2019-01.md: a draft until you set `published: true`\n"
    );
    let i = read_back(d.root(), "2019-01.md");
    assert_eq!(i.slug, "2019-01");
    assert_eq!(i.date.to_rfc3339(), "2019-01-02T09:00:00+08:00");
    assert_eq!(i.title, "Kafka: \"exactly once\" # 1");
    assert!(i.draft);
    assert_eq!(i.items.len(), 2);
    let (code, _, err) = techshack(&d, &["check"]);
    assert_eq!(
        (code, err.as_str()),
        (0, "checked 1 issue: 0 errors, 0 warnings\n")
    );
}

#[test]
fn a_name_that_holds_the_date_needs_no_date_line() {
    let d = folder("%G-%V");
    let (code, _, err) = techshack(&d, &["new", "--date", "2018-12-31"]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(d.root().join("issues/2019-01.md")).expect("file");
    assert!(!text.contains("\ndate:"), "{text}");
    let i = read_back(d.root(), "2019-01.md");
    assert_eq!(i.date.to_rfc3339(), "2018-12-31T09:00:00+08:00");
    assert_eq!(i.title, "Test Shack 2019-01");

    let d = folder("%Y-%m-%d");
    let (code, out, _) = techshack(&d, &["new", "--date", "2020-12-2"]);
    assert_eq!((code, out.as_str()), (0, "./issues/2020-12-02.md\n"));
    let i = read_back(d.root(), "2020-12-02.md");
    assert_eq!(i.date.to_rfc3339(), "2020-12-02T09:00:00+08:00");
}

#[test]
fn refuses_to_overwrite() {
    let d = folder("%G-%V");
    assert_eq!(techshack(&d, &["new", "--date", "2019-01-02"]).0, 0);
    let path = d.root().join("issues/2019-01.md");
    std::fs::write(&path, "---\ntitle: Mine\n---\nhand written\n").expect("edit");
    let (code, out, err) = techshack(&d, &["new", "--date", "2019-01-03"]);
    assert_eq!(code, 1);
    assert_eq!(out, "");
    assert_eq!(
        err,
        "error: ./issues/2019-01.md exists already: edit it, or pass --date for another issue\n"
    );
    assert_eq!(
        std::fs::read_to_string(&path).expect("file"),
        "---\ntitle: Mine\n---\nhand written\n"
    );

    std::fs::write(d.root().join("issues/2019-02.markdown"), "x").expect("markdown twin");
    let (code, _, err) = techshack(&d, &["new", "--date", "2019-01-07"]);
    assert_eq!(code, 1);
    assert!(err.contains("2019-02.markdown exists already"), "{err}");
    assert!(!d.root().join("issues/2019-02.md").exists());
}

#[test]
fn today_by_default() {
    let d = folder("%Y-%m-%d");
    let before =
        chrono::Utc::now().with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).expect("+8"));
    let (code, out, err) = techshack(&d, &["new"]);
    let after =
        chrono::Utc::now().with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).expect("+8"));
    assert_eq!(code, 0, "{err}");
    let names = [before, after].map(|t| format!("./issues/{}.md\n", t.format("%Y-%m-%d")));
    assert!(names.contains(&out), "{out} not in {names:?}");
}

#[test]
fn user_template_and_folded_title() {
    let d = folder("%G-%V").template(
        "issue.md",
        "---\ntitle: {{ title_yaml }}\n{% if date_line %}date: {{ date }}\n{% endif %}---\n\n# {{ title }}\n\nWeek {{ slug }} of {{ site_title }}.\n",
    );
    let (code, _, err) = techshack(
        &d,
        &["new", "--date", "2019-01-09", "--title", "Line\r\nBreak"],
    );
    assert_eq!(code, 0, "{err}");
    let i = read_back(d.root(), "2019-02.md");
    assert_eq!(i.title, "Line Break");
    assert!(!i.draft);
    assert_eq!(i.html, "<p>Week 2019-02 of Test Shack.</p>\n");
}

#[test]
fn bad_date_is_refused() {
    let d = folder("%G-%V");
    let (code, _, err) = techshack(&d, &["new", "--date", "01/02/2019"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: --date `01/02/2019` is not a date: write it as YYYY-MM-DD"),
        "{err}"
    );
    let written = std::fs::read_dir(d.root().join("issues")).expect("issues folder");
    assert_eq!(written.count(), 0, "a refused date wrote a file");
}

#[test]
fn a_missing_issues_folder_is_refused_not_created() {
    let d = folder("%Y-%m-%d");
    let typo = d.path("isues");
    let typo_arg = typo.to_str().expect("UTF-8 path");
    let (code, out, err) = techshack(&d, &["--issues", typo_arg, "new", "--date", "2019-01-02"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(out, "");
    assert!(
        err.contains(&format!("the issues folder {typo_arg} does not exist")),
        "{err}"
    );
    assert!(!typo.exists(), "new created the mistyped folder");
}
