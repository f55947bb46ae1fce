//! Output paths a user names (`status --csv`, `preview --eml/--html/--text`, `send --dry-run`):
//! `-` is standard output, and a target that is not a regular file (a symlink, a FIFO) is
//! written through, never replaced by a regular file.

use std::os::unix::fs::symlink;
use std::path::Path;

use serde_json::json;

use crate::support::smtp::{Server, ISSUE};
use crate::support::*;

fn is_symlink(p: &Path) -> bool {
    std::fs::symlink_metadata(p)
        .unwrap()
        .file_type()
        .is_symlink()
}

fn run(cmd: &mut std::process::Command) -> (String, String) {
    let o = cmd.output().unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(o.status.success(), "{err}");
    (out, err)
}

/// A site whose send left one failed row, so `status --csv` has a row to write.
fn sent_site() -> (tempfile::TempDir, Server, TestSite) {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        tmp.path(),
        json!({"reject": {"regex": "^user0001@", "reply": "550 5.1.1 no such user"}}),
    );
    let site = TestSite::for_send(&format!("smtp://127.0.0.1:{}", server.port), "");
    site.subscribe(3);
    site.cmd().args(["send", ISSUE]).output().unwrap();
    (tmp, server, site)
}

#[test]
fn status_csv_writes_through_a_symlink_and_dash_is_stdout() {
    let (_tmp, _server, site) = sent_site();
    let real = site.path("reports/real.csv");
    std::fs::create_dir_all(real.parent().unwrap()).unwrap();
    std::fs::write(&real, "old").unwrap();
    let link = site.path("report.csv");
    symlink(&real, &link).unwrap();
    run(site.cmd().args(["status", ISSUE, "--csv"]).arg(&link));
    assert!(is_symlink(&link), "the symlink was replaced by a file");
    let text = std::fs::read_to_string(&real).unwrap();
    assert!(
        text.starts_with("address,state,attempts,last_reply,updated_at\n")
            && text.contains("user0001@example.net,failed,1,550 5.1.1 no such user,"),
        "{text}"
    );
    // A dangling symlink is written through too: its target is created.
    let dangling = site.path("dangling.csv");
    symlink(site.path("reports/new.csv"), &dangling).unwrap();
    run(site.cmd().args(["status", ISSUE, "--csv"]).arg(&dangling));
    assert!(is_symlink(&dangling));
    assert_eq!(
        std::fs::read_to_string(site.path("reports/new.csv")).unwrap(),
        text
    );

    // `-`: the CSV alone on stdout, the counts on stderr, no file named `-`.
    let (out, err) = run(site.cmd().args(["status", ISSUE, "--csv", "-"]));
    assert_eq!(out, text);
    assert!(
        err.contains("failed 1\n") && err.contains("total 3\n"),
        "{err}"
    );
    assert!(!site.path("-").exists());
    // A regular file is still replaced whole, with no temporary file left beside it.
    run(site.cmd().args(["status", ISSUE, "--csv"]).arg(&real));
    assert_eq!(std::fs::read_to_string(&real).unwrap(), text);
    assert_eq!(
        std::fs::read_dir(real.parent().unwrap()).unwrap().count(),
        2
    );
}

#[test]
fn preview_writes_through_symlinks_and_fifos_and_dash_is_stdout() {
    let config = fixture("email").join("techshack.toml");
    let dir = tempfile::tempdir().unwrap();
    let preview = || {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("techshack"));
        c.env("TECHSHACK_SECRET", SECRET)
            .arg("-c")
            .arg(&config)
            .args(["preview", "2024-01-15-cjk"]);
        c
    };
    let (whole, _) = run(&mut preview());
    // --eml and --html through symlinks.
    let (eml_real, html_real) = (dir.path().join("m.eml"), dir.path().join("m.html"));
    let (eml_link, html_link) = (dir.path().join("eml"), dir.path().join("html"));
    symlink(&eml_real, &eml_link).unwrap();
    symlink(&html_real, &html_link).unwrap();
    run(preview()
        .arg("--eml")
        .arg(&eml_link)
        .arg("--html")
        .arg(&html_link));
    assert!(is_symlink(&eml_link) && is_symlink(&html_link));
    assert_eq!(std::fs::read_to_string(&eml_real).unwrap(), whole);
    let html = std::fs::read_to_string(&html_real).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"), "{}", &html[..80]);
    // `--text -` is stdout.
    let (out, _) = run(preview().args(["--text", "-"]));
    assert!(!out.is_empty() && !out.contains("<html"), "{out}");
    assert!(!Path::new("-").exists());
    // A FIFO stays a FIFO and its reader gets the message.
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    run(preview().arg("--eml").arg(&fifo));
    assert_eq!(reader.join().unwrap(), whole);
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
}

#[test]
fn send_dry_run_writes_through_symlinks_in_its_folder() {
    let site = TestSite::for_send("smtp://127.0.0.1:9", "");
    let addrs = site.subscribe(2);
    let out = site.path("eml");
    std::fs::create_dir_all(&out).unwrap();
    let name = format!("{ISSUE}-{}.eml", addrs[0].replace('@', "_"));
    let real = site.path("kept.eml");
    symlink(&real, out.join(&name)).unwrap();
    run(site.cmd().args(["send", ISSUE, "--dry-run"]).arg(&out));
    assert!(is_symlink(&out.join(&name)));
    let msg = std::fs::read_to_string(&real).unwrap();
    assert!(msg.contains(&format!("<{}>", addrs[0])), "{msg}");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 2);
    // `-` names no folder.
    let o = site
        .cmd()
        .args(["send", ISSUE, "--dry-run", "-"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("`-` is none"));
    assert!(!site.path("-").exists());
}
