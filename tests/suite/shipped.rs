//! What ships with the repository works as the README says: the default configuration, the
//! recipes, the man page and the example configurations.

use crate::support::{self, repo};

/// The README's first command, `techshack build` in the repository with its own config,
/// prints its one line of progress and no warning; `-q` prints nothing at all.
#[test]
fn the_shipped_config_builds_without_a_warning() {
    let out = tempfile::tempdir().expect("temp dir");
    let run = |quiet: bool| {
        let mut cmd = support::techshack();
        cmd.current_dir(repo())
            .env_remove("TECHSHACK_CONFIG")
            .args(quiet.then_some("-q"))
            .arg("build")
            .arg("--out")
            .arg(out.path().join("public"));
        let o = cmd.output().expect("run techshack");
        assert!(o.status.success(), "{o:?}");
        String::from_utf8(o.stderr).expect("UTF-8")
    };
    let err = run(false);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("wrote "), "{err}");
    assert!(!err.contains("warning"), "{err}");
    assert_eq!(run(true), "");

    let o = support::techshack()
        .current_dir(repo())
        .env_remove("TECHSHACK_CONFIG")
        .arg("check")
        .output()
        .expect("run techshack");
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        String::from_utf8(o.stderr).expect("UTF-8"),
        "checked 1 issue: 0 errors, 0 warnings\n"
    );
}

/// `techshack man` is one page: every command (subcommands of `subscribers` too) with its
/// flags, and the sections a man page reader looks for; `man -l` renders it without a
/// warning, and it names no page that does not exist.
#[test]
fn the_man_page_has_every_command_and_renders_cleanly() {
    let o = support::techshack()
        .arg("man")
        .output()
        .expect("run techshack");
    assert!(o.status.success(), "{o:?}");
    let roff = String::from_utf8(o.stdout).expect("UTF-8");
    for section in [
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH OPTIONS",
        ".SH COMMANDS",
        ".SH \"EXIT STATUS\"",
        ".SH ENVIRONMENT",
        ".SH FILES",
    ] {
        assert!(roff.contains(section), "missing {section}");
    }
    assert!(
        !roff.contains("techshack-build(1)"),
        "names a page that does not exist"
    );
    let cmd = <techshack::cli::Cli as clap::CommandFactory>::command();
    let mut names = Vec::new();
    for sub in cmd.get_subcommands() {
        names.push(format!("techshack {}", sub.get_name()));
        for s in sub.get_subcommands() {
            names.push(format!("techshack {} {}", sub.get_name(), s.get_name()));
        }
        for a in sub.get_arguments().filter_map(|a| a.get_long()) {
            let flag = format!("\\fB\\-\\-{}\\fR", a.replace('-', "\\-"));
            assert!(roff.contains(&flag), "{} has no {flag}", sub.get_name());
        }
    }
    assert!(names.len() >= 15, "{names:?}");
    for n in &names {
        assert!(roff.contains(&format!(".SS \"{n}")), "no section for {n}");
    }
    for var in [
        "TECHSHACK_CONFIG",
        "TECHSHACK_SECRET",
        "TECHSHACK_SMTP_PASSWORD",
    ] {
        assert!(roff.contains(var), "{var}");
    }
    for code in ["\\fB0\\fR", "\\fB1\\fR", "\\fB2\\fR", "\\fB75\\fR"] {
        assert!(roff.contains(code), "exit status {code}");
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let page = dir.path().join("techshack.1");
    std::fs::write(&page, &roff).unwrap();
    // `man` is in scripts/setup-test-deps (Debian's man-db); --warnings asks groff for every
    // warning it has.
    let o = std::process::Command::new("man")
        .env("MANWIDTH", "80")
        .env("MAN_KEEP_STDERR", "1")
        .args(["--warnings", "-l"])
        .arg(&page)
        .output()
        .expect("man (man-db) is installed");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(err, "", "man -l warned");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("EXIT STATUS"), "{text}");
    assert!(text.contains("techshack subscribers import"), "{text}");
}
