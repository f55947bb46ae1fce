//! STARTTLS, AUTH and the plaintext policy of `techshack send`, against the aiosmtpd test
//! server on this machine's non-loopback address with a certificate made at test time.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::smtp::{Server, ISSUE};
use crate::support::TestSite;
use predicates::prelude::*;
use serde_json::json;

/// This machine's first non-loopback IPv4 address.
fn public_ip() -> String {
    let out = Command::new("hostname")
        .arg("-I")
        .output()
        .expect("hostname -I");
    let s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.split_whitespace()
        .find(|a| {
            a.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| !ip.is_loopback())
        })
        .expect("the tests need a non-loopback IPv4 address on this machine")
        .to_string()
}

fn openssl(dir: &Path, args: &[&str]) {
    let st = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is needed to make the test certificates");
    assert!(
        st.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&st.stderr)
    );
}

/// A private CA and a server certificate for `ip` signed by it: (ca.pem, cert.pem, key.pem).
fn certificates(dir: &Path, ip: &str) -> (PathBuf, PathBuf, PathBuf) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=techshack test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.csr",
            "-subj",
            "/CN=techshack test server",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        format!("subjectAltName=IP:{ip},IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "cert.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
}

struct Tls {
    _tmp: tempfile::TempDir,
    server: Server,
    site: TestSite,
}

fn tls_setup(with_ca: bool) -> Tls {
    let tmp = tempfile::tempdir().unwrap();
    let ip = public_ip();
    let (ca, cert, key) = certificates(tmp.path(), &ip);
    let server = Server::start_on(
        tmp.path(),
        &ip,
        json!({
            "tls": {"cert": cert, "key": key},
            "auth": {"user": "bob", "password": "correct horse"}
        }),
    );
    let mut extra = String::from("username = \"bob\"");
    if with_ca {
        extra.push_str(&format!("\nca_file = {:?}", ca.display().to_string()));
    }
    let site = TestSite::for_send(&format!("smtp://{ip}:{}", server.port), &extra);
    site.subscribe(5);
    Tls {
        _tmp: tmp,
        server,
        site,
    }
}

#[test]
fn starttls_with_a_private_ca_and_auth_delivers() {
    let t = tls_setup(true);
    t.site
        .assert_cmd()
        .args(["send", ISSUE])
        .env("TECHSHACK_SMTP_PASSWORD", "correct horse")
        .assert()
        .code(0);
    let got = t.server.counts();
    assert_eq!(got.len(), 5);
    assert!(got.values().all(|n| *n == 1));
    assert_eq!(t.site.status()["sent"], 5);
}

#[test]
fn a_wrong_password_exits_1_without_printing_it_or_touching_the_ledger() {
    let t = tls_setup(true);
    let o = t
        .site
        .cmd()
        .args(["send", ISSUE])
        .env("TECHSHACK_SMTP_PASSWORD", "wrong-battery-staple")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("authentication as `bob` refused"), "{err}");
    assert!(err.contains("$TECHSHACK_SMTP_PASSWORD"), "{err}");
    assert!(
        !err.contains("wrong-battery-staple"),
        "password printed: {err}"
    );
    assert!(t.server.counts().is_empty());
    t.site
        .assert_cmd()
        .arg("status")
        .assert()
        .success()
        .stdout("");
    t.site.assert_no_send();
}

#[test]
fn an_untrusted_certificate_is_refused_and_names_ca_file() {
    let t = tls_setup(false);
    t.site
        .assert_cmd()
        .args(["send", ISSUE])
        .env("TECHSHACK_SMTP_PASSWORD", "correct horse")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("smtp.ca_file"));
    assert!(t.server.counts().is_empty());
    t.site.assert_no_send();
}

#[test]
fn a_username_without_password_is_refused_before_connecting() {
    let t = tls_setup(true);
    t.site
        .assert_cmd()
        .args(["send", ISSUE])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "$TECHSHACK_SMTP_PASSWORD is not set",
        ));
    assert_eq!(t.server.connections(), 0);
}

#[test]
fn plaintext_to_a_host_that_is_not_loopback_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let ip = public_ip();
    let server = Server::start_on(tmp.path(), &ip, json!({}));
    // Asked for plaintext explicitly: refused before any connection.
    let site = TestSite::for_send(&format!("smtp://{ip}:{}?tls=none", server.port), "");
    site.subscribe(3);
    site.assert_cmd()
        .args(["send", ISSUE])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("refusing to send in plaintext"));
    assert_eq!(server.connections(), 0, "nothing connected");
    // smtp:// to a server without STARTTLS: refused before any mail is handed over.
    TestSite::write_send_config(&site.config, &format!("smtp://{ip}:{}", server.port), "");
    site.assert_cmd()
        .args(["send", ISSUE])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("does not offer STARTTLS"));
    assert!(server.counts().is_empty());
    site.assert_no_send();
    // The same server on loopback is fine in plaintext.
    let local = Server::start(tmp.path(), json!({}));
    TestSite::write_send_config(
        &site.config,
        &format!("smtp://127.0.0.1:{}", local.port),
        "",
    );
    site.assert_cmd().args(["send", ISSUE]).assert().code(0);
    assert_eq!(local.counts().len(), 3);
}

#[test]
fn loopback_uses_starttls_only_with_a_ca_file_and_a_530_fails_no_recipient() {
    let tmp = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(tmp.path(), "127.0.0.1");
    let server = Server::start(tmp.path(), json!({"tls": {"cert": cert, "key": key}}));
    let url = format!("smtp://127.0.0.1:{}", server.port);
    let site = TestSite::for_send(&url, "");
    site.subscribe(5);
    // Without smtp.ca_file, loopback stays plaintext; this server insists on STARTTLS (530).
    site.assert_cmd()
        .args(["send", ISSUE])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("530").and(predicate::str::contains("smtp.ca_file")));
    let st = site.status();
    assert_eq!(
        (st["pending"], st["failed"], st["total"]),
        (5, 0, 5),
        "{st:?}"
    );
    TestSite::write_send_config(
        &site.config,
        &url,
        &format!("ca_file = {:?}", ca.display().to_string()),
    );
    site.assert_cmd().args(["send", ISSUE]).assert().code(0);
    assert_eq!(server.counts().len(), 5);
    assert_eq!(site.status()["sent"], 5);
}

#[test]
fn smtps_uses_implicit_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let ip = public_ip();
    let (ca, cert, key) = certificates(tmp.path(), &ip);
    let server = Server::start_on(
        tmp.path(),
        &ip,
        json!({"tls": {"cert": cert, "key": key}, "implicit_tls": true,
               "auth": {"user": "bob", "password": "pw"}}),
    );
    let site = TestSite::for_send(
        &format!("smtps://{ip}:{}", server.port),
        &format!(
            "username = \"bob\"\nca_file = {:?}",
            ca.display().to_string()
        ),
    );
    site.subscribe(4);
    site.assert_cmd()
        .args(["send", ISSUE])
        .env("TECHSHACK_SMTP_PASSWORD", "pw")
        .assert()
        .code(0);
    assert_eq!(server.counts().len(), 4);
    assert_eq!(site.status()["sent"], 4);
}
