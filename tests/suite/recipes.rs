//! The README's scheduling recipes as one tested set: the cron line runs as written under
//! cron's environment, and the cron line and the systemd units use one user, one folder,
//! one config and one secrets file, read literally by `techshack --secrets`.

use std::path::Path;

use serde_json::json;

use crate::support::smtp::{Server, ISSUE};
use crate::support::{repo, TestSite};
use techshack::token::{verify, Purpose};

/// A secret and a password with every character a shell or systemd would treat specially.
const SECRET: &str = "s3cret&$HOME\"quoted' #not-a-comment `x` \\n";
const PASSWORD: &str = "p&ss$word\"with#anything";

fn readme() -> String {
    std::fs::read_to_string(repo().join("README.md")).expect("README.md")
}

/// The README's cron line, without its five time fields.
fn cron_command(readme: &str) -> String {
    let line = readme
        .lines()
        .find(|l| l.starts_with("0 * * * *"))
        .expect("the README has a cron line");
    let mut rest = line;
    for _ in 0..5 {
        rest = rest.trim_start();
        rest = &rest[rest.find(' ').expect("five time fields")..];
    }
    rest.trim().to_string()
}

/// The `ExecStart=` of the README's unit that runs `command`.
fn exec_start<'a>(readme: &'a str, command: &str) -> &'a str {
    readme
        .lines()
        .find(|l| l.starts_with("ExecStart=") && l.ends_with(command))
        .unwrap_or_else(|| panic!("no unit runs `{command}`"))
        .trim_start_matches("ExecStart=")
}

fn write_secrets(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        path,
        format!("# the secrets of techshack\nTECHSHACK_SECRET={SECRET}\nTECHSHACK_SMTP_PASSWORD={PASSWORD}\n"),
    )
    .unwrap();
}

#[test]
fn the_cron_line_works_under_crons_path_with_the_binary_installed() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), json!({}));
    // The site as the README lays it out, under a temporary root.
    let site = TestSite::for_send(&format!("smtp://127.0.0.1:{}", server.port), "");
    let srv = site.root();
    std::fs::create_dir_all(srv.join("config")).unwrap();
    let config = std::fs::read_to_string(&site.config)
        .unwrap()
        .replace("dir = \"issues\"", "dir = \"../issues\"")
        .replace("db = \"state/", "db = \"../state/");
    std::fs::write(srv.join("config/techshack.toml"), config).unwrap();
    std::fs::create_dir_all(srv.join("state")).unwrap();
    let etc = tmp.path().join("etc");
    write_secrets(&etc.join("secrets.env"));
    let prefix = tmp.path().join("prefix");
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    std::fs::copy(
        assert_cmd::cargo::cargo_bin("techshack"),
        prefix.join("bin/techshack"),
    )
    .unwrap();
    let add = std::process::Command::new(prefix.join("bin/techshack"))
        .arg("--config")
        .arg(srv.join("config/techshack.toml"))
        .args(["subscribers", "add", "reader@example.net"])
        .output()
        .unwrap();
    assert!(add.status.success(), "{add:?}");

    let readme = readme();
    let cron = cron_command(&readme)
        .replace("/usr/local/bin", prefix.join("bin").to_str().unwrap())
        .replace("/srv/techshack", srv.to_str().unwrap())
        .replace("/etc/techshack", etc.to_str().unwrap());
    let out = std::process::Command::new("/usr/bin/env")
        .args(["-i", "PATH=/usr/bin:/bin", "/bin/sh", "-c", &cron])
        .current_dir("/")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cron}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(server.counts().get("reader@example.net"), Some(&1));
    // A second hourly run finds the send complete and mails nobody again.
    let again = std::process::Command::new("/usr/bin/env")
        .args(["-i", "PATH=/usr/bin:/bin", "/bin/sh", "-c", &cron])
        .output()
        .unwrap();
    assert!(again.status.success(), "{again:?}");
    assert_eq!(server.counts().get("reader@example.net"), Some(&1));
}

#[test]
fn the_secrets_file_is_read_literally() {
    let site = TestSite::for_send("smtp://127.0.0.1:9", "");
    site.subscribe(1);
    let secrets = site.path("etc/secrets.env");
    write_secrets(&secrets);
    let eml = site.path("eml");
    let out = site
        .cmd()
        .env_remove("TECHSHACK_SECRET")
        .arg("--secrets")
        .arg(&secrets)
        .args(["send", ISSUE, "--dry-run"])
        .arg(&eml)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let file = std::fs::read_dir(&eml).unwrap().next().unwrap().unwrap();
    let raw = std::fs::read(file.path()).unwrap();
    let msg = mail_parser::MessageParser::default().parse(&raw).unwrap();
    let header = msg
        .header_raw("List-Unsubscribe")
        .expect("List-Unsubscribe");
    let token = header
        .split("token=")
        .nth(1)
        .and_then(|t| t.split('>').next())
        .expect("a token");
    assert_eq!(
        verify(SECRET.as_bytes(), Purpose::Unsubscribe, token).as_deref(),
        Some("user0000@example.net"),
        "the link is signed with the secret exactly as written in the file"
    );
    // A line that is not KEY=value, or a misspelled key, is an error at its line.
    std::fs::write(
        &secrets,
        "TECHSHACK_SECRET=0123456789abcdef0123\nTECHSHACK_SMTP_PASWORD=x\n",
    )
    .unwrap();
    let out = site
        .cmd()
        .arg("--secrets")
        .arg(&secrets)
        .arg("check")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("secrets.env:2:1: error: unknown key `TECHSHACK_SMTP_PASWORD`"),
        "{err}"
    );
}

#[test]
fn cron_and_the_units_use_one_user_folder_config_and_secrets_file() {
    let readme = readme();
    let cron = cron_command(&readme);
    let (cd, run) = cron
        .split_once(" && ")
        .expect("cron changes to the folder first");
    assert_eq!(cd, "cd /srv/techshack");
    assert!(
        run.starts_with("/usr/local/bin/techshack "),
        "absolute path: {run}"
    );
    let common = run.trim_end_matches("send --latest");
    assert!(
        common.contains("--config /srv/techshack/config/techshack.toml"),
        "{run}"
    );
    assert!(
        common.contains("--secrets /etc/techshack/secrets.env"),
        "{run}"
    );
    let send = exec_start(&readme, "send --latest");
    let serve = exec_start(&readme, "serve");
    assert_eq!(send, run, "the send unit runs what cron runs");
    assert_eq!(serve.trim_end_matches("serve"), common);
    for unit in ["techshack-send.service", "techshack-serve.service"] {
        let at = readme.find(&format!("/etc/systemd/system/{unit}")).unwrap();
        let block = &readme[at..];
        let start = block.find("```ini\n").expect("a unit block") + 7;
        let block = &block[start..start + block[start..].find("```").unwrap()];
        assert!(block.contains("User=techshack"), "{unit}: {block}");
        assert!(block.contains("WorkingDirectory=/srv/techshack"), "{unit}");
        assert!(!block.contains("EnvironmentFile"), "{unit}");
    }
    assert!(!readme.contains("/srv/newsletter"), "one folder");
    assert!(!cron.contains(". /etc"), "no shell-sourced secrets: {cron}");
    assert!(
        !readme.lines().any(|l| l.starts_with("EnvironmentFile=")),
        "no unit reads the secrets another way"
    );
}

/// The unit file the README gives for `/etc/systemd/system/{name}`.
fn unit(readme: &str, name: &str) -> String {
    let at = readme
        .find(&format!("/etc/systemd/system/{name}`"))
        .unwrap_or_else(|| panic!("no {name} in the README"));
    let block = &readme[at..];
    let start = block.find("```ini\n").expect("a unit block") + 7;
    block[start..start + block[start..].find("```").unwrap()].to_string()
}

#[test]
fn the_units_pass_systemd_analyze_verify() {
    let readme = readme();
    let dir = tempfile::tempdir().unwrap();
    let bin = assert_cmd::cargo::cargo_bin("techshack");
    let names = [
        "techshack-send.service",
        "techshack-send.timer",
        "techshack-serve.service",
    ];
    for name in names {
        let text = unit(&readme, name).replace("/usr/local/bin/techshack", bin.to_str().unwrap());
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    for name in names {
        // systemd-analyze is in scripts/setup-test-deps (Debian's systemd).
        let out = std::process::Command::new("systemd-analyze")
            .arg("verify")
            .arg(dir.path().join(name))
            .output()
            .expect("systemd-analyze is installed");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {err}");
        assert_eq!(err, "", "{name} has warnings");
    }
}
