//! An unsubscribe that lands while `techshack send` mails 2,000 recipients through a slow SMTP
//! server: from that moment the address gets nothing, and its ledger row is `skipped`.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::serve::*;
use crate::support::TestSite;
use techshack::store::SubscriberStatus;

const ISSUE: &str = "2026-11-20";
const N: usize = 2000;

#[test]
fn unsubscribe_during_a_2000_recipient_send_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    // 5 ms per message over 2 sessions: the send takes several seconds.
    let sink = Sink::start(dir.path(), 0.005);
    let site = TestSite::for_serve(dir, sink.port, "", "");
    let text = std::fs::read_to_string(&site.config).unwrap();
    std::fs::write(
        &site.config,
        text.replacen(
            "[smtp]\n",
            "[smtp]\nconcurrency = 2\nrate = 5000\nretry_after_secs = 1\n",
            1,
        ),
    )
    .unwrap();
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).format("%Y-%m-%d");
    std::fs::write(
        site.path(&format!("issues/{ISSUE}.md")),
        format!(
            "---\ntitle: Queues\ndate: {yesterday}\n---\n\n## [Kafka internals](https://example.com/kafka)\n\nNotes.\n"
        ),
    )
    .unwrap();
    let rows: Vec<(String, Option<String>)> = (0..N)
        .map(|i| (format!("user{i:04}@example.net"), None))
        .collect();
    site.store().import(&rows).unwrap();
    let target = "user1999@example.net";

    let srv = site.serve();
    let mut send = site
        .cmd()
        .args(["send", ISSUE])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting techshack send");

    let t = Instant::now();
    while sink.recipients().len() < 300 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the send did not get going"
        );
        assert!(
            send.try_wait().unwrap().is_none(),
            "the send ended before the unsubscribe"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = one_click(&srv.url(&format!("/unsubscribe?token={}", unsubscribe_token(target))));
    assert_eq!(r.status, 200, "{}", r.body);
    let received_by_then = sink.recipients();
    assert!(
        received_by_then.len() < N - 100,
        "the send was nearly done ({} received): slow the sink down",
        received_by_then.len()
    );
    assert!(!received_by_then.iter().any(|a| a == target));
    assert_eq!(
        site.subscriber_status(target),
        Some(SubscriberStatus::Unsubscribed)
    );

    let out = send.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut got: HashMap<String, usize> = HashMap::new();
    for a in sink.recipients() {
        *got.entry(a).or_default() += 1;
    }
    assert_eq!(got.get(target), None, "mailed after unsubscribing");
    assert_eq!(got.len(), N - 1);
    assert!(got.values().all(|&n| n == 1), "someone got two copies");

    let state = site.rows(
        "SELECT state FROM deliveries WHERE issue = ?1 AND address = ?2",
        &[ISSUE, target],
    )[0][0]
        .clone()
        .unwrap();
    assert_eq!(state, "skipped");
    let counts: Vec<(String, i64)> = site
        .rows(
            "SELECT state, count(*) FROM deliveries WHERE issue = ?1 GROUP BY state ORDER BY state",
            &[ISSUE],
        )
        .into_iter()
        .map(|r| {
            (
                r[0].clone().unwrap(),
                r[1].as_deref().unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [
            ("sent".to_string(), (N - 1) as i64),
            ("skipped".to_string(), 1)
        ]
    );
}
