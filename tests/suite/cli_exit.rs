//! Exit codes a scheduler acts on and the quiet mode of `send`: a send that overlaps a running
//! one is a temporary failure (75), a bad flag value is a usage error (2), and `send --latest
//! -q` says nothing when nothing failed or waits.

use fs4::fs_std::FileExt;
use serde_json::json;

use crate::support::smtp::{Server, ISSUE};
use crate::support::TestSite;

fn out(o: &std::process::Output) -> (i32, String, String) {
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn a_send_lock_held_by_another_send_exits_75() {
    // The send lock is SQLite's (senders on PostgreSQL cooperate instead).
    let site = TestSite::for_send("smtp://127.0.0.1:9", "").on_sqlite();
    std::fs::create_dir_all(site.path("state")).unwrap();
    let lock = std::fs::File::create(site.path("state/techshack.sqlite3.lock")).unwrap();
    lock.try_lock_exclusive().unwrap();
    for args in [vec!["send", ISSUE], vec!["send", "--latest"]] {
        let (code, stdout, stderr) = out(&site.cmd().args(&args).output().unwrap());
        assert_eq!(code, 75, "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        assert!(
            stderr.contains("another `techshack send` is running") && !stderr.contains("error"),
            "{stderr}"
        );
    }
    // With the lock released the same command goes on (to the closed port this time).
    FileExt::unlock(&lock).unwrap();
    let (_, _, stderr) = out(&site.cmd().args(["send", ISSUE]).output().unwrap());
    assert!(!stderr.contains("another `techshack send`"), "{stderr}");
    assert!(stderr.contains("127.0.0.1:9"), "{stderr}");
}

#[test]
fn a_bad_subscriber_status_is_a_usage_error() {
    let site = TestSite::for_send("smtp://127.0.0.1:9", "");
    let (code, stdout, stderr) = out(&site
        .cmd()
        .args(["subscribers", "list", "--status", "foo"])
        .output()
        .unwrap());
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("--status") && stderr.contains("unknown subscriber status `foo`"),
        "{stderr}"
    );
    // Nothing was opened or created for a command line that cannot work.
    assert!(!site.db().exists());
    let (code, _, stderr) = out(&site
        .cmd()
        .args(["subscribers", "list", "--status", "active"])
        .output()
        .unwrap());
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn a_listen_address_without_host_or_port_is_a_usage_error() {
    let site = TestSite::for_send("smtp://127.0.0.1:9", "");
    for bad in [
        "8089",
        ":8089",
        "localhost",
        "127.0.0.1:",
        "127.0.0.1:99999",
        "a b:80",
    ] {
        let (code, _, stderr) = out(&site
            .cmd()
            .args(["serve", "--listen", bad])
            .output()
            .unwrap());
        assert_eq!(code, 2, "--listen {bad}: {stderr}");
        assert!(stderr.contains("is not HOST:PORT"), "{stderr}");
    }
}

#[test]
fn send_latest_quiet_prints_nothing_when_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), json!({}));
    let site = TestSite::for_send(&format!("smtp://127.0.0.1:{}", server.port), "");
    site.subscribe(3);
    // The first run delivers; quiet, it says nothing either.
    for run in ["first", "second", "third"] {
        let (code, stdout, stderr) = out(&site
            .cmd()
            .args(["send", "--latest", "-q"])
            .output()
            .unwrap());
        assert_eq!(code, 0, "{run}: {stderr}");
        assert_eq!(stdout, "", "{run}: stdout");
        assert_eq!(stderr, "", "{run}: stderr");
    }
    assert_eq!(server.counts().values().sum::<usize>(), 3);
    // Not quiet, the same run says it is complete.
    let (code, stdout, _) = out(&site.cmd().args(["send", "--latest"]).output().unwrap());
    assert_eq!(code, 0);
    assert!(
        stdout.starts_with(&format!("{ISSUE}: complete")),
        "{stdout}"
    );
}

#[test]
fn send_quiet_still_reports_what_waits() {
    // Every delivery deferred: the quiet run says so, and exits 75.
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(
        tmp.path(),
        json!({"tempfail": {"regex": ".*", "times": 100, "reply": "451 4.3.0 try later"}}),
    );
    let site = TestSite::for_send(
        &format!("smtp://127.0.0.1:{}", server.port),
        "retry_after_secs = 3600",
    );
    site.subscribe(2);
    let (code, stdout, stderr) = out(&site
        .cmd()
        .args(["send", "--latest", "-q"])
        .output()
        .unwrap());
    assert_eq!(code, 75, "{stderr}");
    assert!(
        format!("{stdout}{stderr}").contains("deferred"),
        "{stdout}{stderr}"
    );
}
