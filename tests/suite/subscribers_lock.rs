//! Writers of the state file while `techshack send` runs: every `subscribers add` and
//! `import` takes its write lock up front (BEGIN IMMEDIATE), so the busy timeout covers it
//! and none fails with `database is locked`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::serve::*;
use crate::support::TestSite;

const ISSUE: &str = "2026-11-20";

#[test]
fn adds_and_imports_during_a_send_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    // 3 ms per message over 2 sessions: the send lasts a few seconds and commits often.
    let sink = Sink::start(dir.path(), 0.003);
    let site = TestSite::for_serve(dir, sink.port, "", "");
    let text = std::fs::read_to_string(&site.config).unwrap();
    std::fs::write(
        &site.config,
        text.replacen("[smtp]\n", "[smtp]\nconcurrency = 2\nrate = 5000\n", 1),
    )
    .unwrap();
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).format("%Y-%m-%d");
    std::fs::write(
        site.path(&format!("issues/{ISSUE}.md")),
        format!("---\ntitle: Locks\ndate: {yesterday}\n---\n\n## [A](https://example.com/a)\n\nNotes.\n"),
    )
    .unwrap();
    let rows: Vec<(String, Option<String>)> = (0..1500)
        .map(|i| (format!("user{i:04}@example.net"), None))
        .collect();
    site.store().import(&rows).unwrap();

    let mut send = site
        .cmd()
        .args(["send", ISSUE])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting techshack send");
    let t = Instant::now();
    while sink.recipients().len() < 50 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the send did not get going"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut failures = Vec::new();
    let mut runs = 0;
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..3)
            .map(|w| {
                let site = &site;
                scope.spawn(move || {
                    let mut failed = Vec::new();
                    for i in 0..12 {
                        let out = if i % 4 == 3 {
                            let f = site.path(&format!("in-{w}-{i}.csv"));
                            let csv: String = (0..200)
                                .map(|j| format!("imp{w}-{i}-{j}@example.org\n"))
                                .collect();
                            std::fs::write(&f, format!("email\n{csv}")).unwrap();
                            site.cmd()
                                .args(["subscribers", "import"])
                                .arg(&f)
                                .output()
                                .unwrap()
                        } else {
                            site.cmd()
                                .args(["subscribers", "add", &format!("add{w}-{i}@example.org")])
                                .output()
                                .unwrap()
                        };
                        if !out.status.success() {
                            failed.push(String::from_utf8_lossy(&out.stderr).into_owned());
                        }
                    }
                    failed
                })
            })
            .collect();
        for w in workers {
            runs += 12;
            failures.extend(w.join().unwrap());
        }
    });
    let during = send.try_wait().unwrap().is_none();
    let out = send.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        failures.is_empty(),
        "{} of {runs} failed: {failures:?}",
        failures.len()
    );
    assert!(
        during,
        "the send ended before the writers did: slow the sink down"
    );
    let active = site
        .store()
        .subscribers(Some(techshack::store::SubscriberStatus::Active))
        .unwrap()
        .len();
    assert_eq!(active, 1500 + 3 * 9 + 3 * 3 * 200);
}
