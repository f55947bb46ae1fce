//! A reader in headless Chromium (driven by chromedriver over WebDriver) opens the unsubscribe
//! link of a message, presses the button, and is unsubscribed in the state file. Screenshots
//! go to target/artifacts/.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::serve::*;
use crate::support::{artifacts, free_port, TestSite};
use base64::Engine;
use serde_json::{json, Value};
use techshack::store::SubscriberStatus;

pub(crate) struct Driver {
    child: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

pub(crate) fn wd(method: &str, url: &str, body: Option<Value>) -> Value {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build();
    let req = agent.request(method, url);
    let r = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(code, r)) => {
            panic!(
                "WebDriver {method} {url}: {code} {}",
                r.into_string().unwrap_or_default()
            )
        }
        Err(e) => panic!("WebDriver {method} {url}: {e}"),
    };
    resp.into_json::<Value>().expect("a JSON answer")
}

impl Driver {
    pub(crate) fn start() -> Driver {
        for bin in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: run scripts/setup-test-deps"
            );
        }
        let port = free_port();
        let child = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let t = Instant::now();
        loop {
            let ready = ureq::get(&format!("{base}/status"))
                .call()
                .ok()
                .and_then(|r| r.into_json::<Value>().ok())
                .is_some_and(|v| v["value"]["ready"] == json!(true));
            if ready {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=800,640",
                         format!("--user-data-dir={}", profile.path().display())]
            }
        }}});
        let v = wd("POST", &format!("{base}/session"), Some(caps));
        let session = v["value"]["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        Driver {
            child,
            base,
            session,
            _profile: profile,
        }
    }

    pub(crate) fn url(&self, rest: &str) -> String {
        format!("{}/session/{}{rest}", self.base, self.session)
    }

    pub(crate) fn go(&self, url: &str) {
        wd("POST", &self.url("/url"), Some(json!({ "url": url })));
    }

    pub(crate) fn element(&self, css: &str) -> String {
        let v = wd(
            "POST",
            &self.url("/element"),
            Some(json!({"using": "css selector", "value": css})),
        );
        v["value"]
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(|x| x.as_str())
            .expect("an element reference")
            .to_string()
    }

    pub(crate) fn click(&self, element: &str) {
        wd(
            "POST",
            &self.url(&format!("/element/{element}/click")),
            Some(json!({})),
        );
    }

    pub(crate) fn source(&self) -> String {
        wd("GET", &self.url("/source"), None)["value"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub(crate) fn script(&self, js: &str) -> Value {
        wd(
            "POST",
            &self.url("/execute/sync"),
            Some(json!({"script": js, "args": []})),
        )["value"]
            .clone()
    }

    /// Chromium's DevTools command through chromedriver.
    pub(crate) fn cdp(&self, cmd: &str, params: Value) {
        wd(
            "POST",
            &self.url("/goog/cdp/execute"),
            Some(json!({"cmd": cmd, "params": params})),
        );
    }

    pub(crate) fn screenshot(&self, file: &Path) {
        let v = wd("GET", &self.url("/screenshot"), None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(v["value"].as_str().expect("base64 PNG"))
            .expect("valid base64");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, png).unwrap();
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = ureq::delete(&self.url("")).call();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The https URL of a message's `List-Unsubscribe`, after checking it offers one-click.
fn list_unsubscribe_https(eml: &[u8]) -> String {
    let text = String::from_utf8_lossy(eml);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    let value = |name: &str| {
        unfolded
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
            .unwrap_or_else(|| panic!("no {name} header in:\n{head}"))
    };
    assert_eq!(value("List-Unsubscribe-Post"), "List-Unsubscribe=One-Click");
    let lu = value("List-Unsubscribe");
    lu.split(',')
        .map(|p| p.trim().trim_start_matches('<').trim_end_matches('>'))
        .find(|u| u.starts_with("https://"))
        .unwrap_or_else(|| panic!("no https link in List-Unsubscribe: {lu}"))
        .to_string()
}

#[test]
fn reader_unsubscribes_in_chromium_with_one_button() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(dir.path(), 0.0);
    let site = TestSite::for_serve(dir, sink.port, "", "");
    site.add_active(&["reader@example.net", "other@example.net"]);
    let srv = site.serve();

    // The link from the List-Unsubscribe header of the message `send` builds for the reader.
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).format("%Y-%m-%d");
    std::fs::write(
        site.path("issues/2026-11-20.md"),
        format!("---\ntitle: Queues\ndate: {yesterday}\n---\n\n## [Kafka](https://example.com/k)\n\nNotes.\n"),
    )
    .unwrap();
    let out = site
        .cmd()
        .args(["send", "2026-11-20", "--dry-run", "eml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let eml = std::fs::read(site.path("eml/2026-11-20-reader_example.net.eml")).unwrap();
    let link = list_unsubscribe_https(&eml);
    assert!(
        link.starts_with(&format!("{PUBLIC_URL}/unsubscribe?token=")),
        "{link}"
    );

    let d = Driver::start();
    d.go(&srv.local(&link));
    let before = d.source();
    assert!(before.contains("reader@example.net"), "{before}");
    d.screenshot(&artifacts().join("serve-unsubscribe-page.png"));
    assert_eq!(
        site.subscriber_status("reader@example.net"),
        Some(SubscriberStatus::Active),
        "opening the page changed nothing"
    );

    let button = d.element("#unsubscribe");
    d.click(&button);
    let t = Instant::now();
    while !d.source().contains("You are unsubscribed") {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no confirmation page: {}",
            d.source()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    d.screenshot(&artifacts().join("serve-unsubscribed.png"));
    assert_eq!(
        site.subscriber_status("reader@example.net"),
        Some(SubscriberStatus::Unsubscribed)
    );
    assert_eq!(
        site.subscriber_status("other@example.net"),
        Some(SubscriberStatus::Active)
    );

    // The pages follow the reader's colour scheme, and fit a phone.
    let background = "return getComputedStyle(document.body).backgroundColor";
    d.go(&srv.url("/subscribe"));
    assert_eq!(d.script(background), json!("rgb(251, 251, 248)"));
    d.cdp(
        "Emulation.setEmulatedMedia",
        json!({"features": [{"name": "prefers-color-scheme", "value": "dark"}]}),
    );
    d.cdp(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 375, "height": 640, "deviceScaleFactor": 1, "mobile": true}),
    );
    d.go(&srv.url("/subscribe"));
    assert_eq!(d.script(background), json!("rgb(23, 24, 26)"));
    let overflow = d.script("return document.documentElement.scrollWidth");
    assert!(
        overflow.as_i64().is_some_and(|w| w <= 375),
        "wider than the phone: {overflow}"
    );
    d.screenshot(&artifacts().join("serve-subscribe-dark-375.png"));
}
