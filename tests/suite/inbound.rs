//! Mail that comes back after a send, through a real Postfix relay: techshack sends through
//! Postfix, Postfix relays to the fault-injecting test server, and Postfix's own bounce daemon
//! writes the delivery reports, delivered to a Maildir for the sender's domain.

use std::process::Output;

use crate::support::postfix::Relay;
use crate::support::smtp::{Server, ISSUE};
use crate::support::{output_with_stdin, TestSite, SECRET};
use serde_json::json;
use techshack::inbound::{self, Action, Envelope, Kind};
use techshack::store::SubscriberStatus;
use techshack::token::{self, Purpose};

/// A site that sent the test issue to `n` subscribers through the fault-free test server.
fn sent_site(n: usize) -> (tempfile::TempDir, Server, TestSite, Vec<String>) {
    sent_site_with(n, "")
}

/// The same, with `email` lines added under `[email]`.
fn sent_site_with(n: usize, email: &str) -> (tempfile::TempDir, Server, TestSite, Vec<String>) {
    sent_site_of(n, email, false)
}

/// The same; `sqlite` keeps the state in the SQLite file whatever the run's backend.
fn sent_site_of(
    n: usize,
    email: &str,
    sqlite: bool,
) -> (tempfile::TempDir, Server, TestSite, Vec<String>) {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), json!({}));
    let mut site = TestSite::for_send(&format!("smtp://127.0.0.1:{}", server.port), "");
    if sqlite {
        site = site.on_sqlite();
    }
    add_email_lines(&site, email);
    let addrs = site.subscribe(n);
    let o = site.cmd().args(["send", ISSUE]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (tmp, server, site, addrs)
}

pub(crate) fn add_email_lines(site: &TestSite, lines: &str) {
    let c = std::fs::read_to_string(&site.config).unwrap();
    std::fs::write(
        &site.config,
        c.replace("[email]\n", &format!("[email]\n{lines}\n")),
    )
    .unwrap();
}

pub(crate) const RETURN_PATH: &str = "return_path = \"bounces+{token}@example.org\"";

fn delivery_id(site: &TestSite, address: &str) -> i64 {
    site.int("SELECT id FROM deliveries WHERE address = ?1", &[address])
}

fn inbound(site: &TestSite, args: &[&str], stdin: &[u8]) -> Output {
    let mut c = site.cmd();
    c.arg("inbound").args(args);
    output_with_stdin(c, stdin)
}

fn status_of(site: &TestSite, address: &str) -> SubscriberStatus {
    site.store().subscriber(address).unwrap().unwrap().status
}

fn unsubscribe_url(address: &str) -> String {
    let t = token::sign(SECRET.as_bytes(), Purpose::Unsubscribe, address);
    format!("https://example.org/unsubscribe?token={t}")
}

/// A delivery status notification in Postfix's shape for one recipient of the test issue;
/// `returned` says whether the original's headers (with its unsubscribe link) come back.
fn dsn(id: &str, address: &str, status: &str, reply: &str, returned: bool) -> Vec<u8> {
    dsn_to("digest@example.org", id, address, status, reply, returned)
}

pub(crate) fn dsn_to(
    to: &str,
    id: &str,
    address: &str,
    status: &str,
    reply: &str,
    returned: bool,
) -> Vec<u8> {
    let original = if returned {
        format!(
            "--B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: digest@example.org\r\n\
             To: {address}\r\nSubject: Queues\r\n\
             List-Unsubscribe: <{}>, <mailto:unsubscribe@example.org>\r\n\r\n",
            unsubscribe_url(address)
        )
    } else {
        String::new()
    };
    format!(
        "From: MAILER-DAEMON@relay.test\r\nTo: {to}\r\n\
         Subject: Undelivered Mail Returned to Sender\r\nMessage-Id: <{id}@relay.test>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nNot delivered.\r\n\
         --B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; relay.test\r\n\r\n\
         Final-Recipient: rfc822; {address}\r\nAction: failed\r\nStatus: {status}\r\n\
         Diagnostic-Code: smtp; {reply}\r\n\r\n{original}--B--\r\n"
    )
    .into_bytes()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_reported_refusal_bounces_once_and_a_second_reading_changes_nothing() {
    let (_t, _s, site, addrs) = sent_site(3);
    let m = dsn(
        "r1",
        &addrs[0],
        "5.1.1",
        "550 5.1.1 <x>: Recipient address rejected: User unknown",
        true,
    );
    let o = inbound(&site, &["-v"], &m);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("is now bounced"), "{}", stderr(&o));
    assert_eq!(status_of(&site, &addrs[0]), SubscriberStatus::Bounced);
    assert_eq!(status_of(&site, &addrs[1]), SubscriberStatus::Active);
    let o = inbound(&site, &[], &m);
    assert_eq!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("1 already handled"), "{}", stderr(&o));
    let h = site.store().history(&addrs[0]).unwrap();
    assert_eq!(h.len(), 2, "{h:?}");
    assert_eq!(h[1].path.as_str(), "bounce");
    assert!(h[1].reason.as_deref().unwrap().contains("5.1.1"));
    // The ledger row of the delivery notes it, and `status` shows it.
    let o = site.cmd().args(["status", ISSUE]).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("bounced_later 1"), "{out}");
    let o = site
        .cmd()
        .args(["status", ISSUE, "--csv", "-"])
        .output()
        .unwrap();
    let csv = String::from_utf8_lossy(&o.stdout);
    let row = csv
        .lines()
        .find(|l| l.starts_with(&format!("{},sent,", addrs[0])));
    assert!(
        row.is_some_and(|r| r.contains(",bounced later: 550 5.1.1")),
        "{csv}"
    );
}

#[test]
fn a_refusal_that_is_not_the_recipients_marks_nobody() {
    let (_t, _s, site, addrs) = sent_site(2);
    for (i, reply) in [
        "550 5.1.0 <digest@example.org>: Sender address rejected: User unknown in local recipient table",
        "554 5.7.1 <x>: Relay access denied",
    ]
    .iter()
    .enumerate()
    {
        let status = &reply[4..9];
        let o = inbound(&site, &["-v"], &dsn(&format!("s{i}"), &addrs[0], status, reply, true));
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(stderr(&o).contains("not the recipient's"), "{}", stderr(&o));
    }
    assert_eq!(status_of(&site, &addrs[0]), SubscriberStatus::Active);
}

#[test]
fn soft_bounces_mark_a_subscriber_bounced_at_the_limit() {
    let (_t, _s, site, addrs) = sent_site(1);
    for i in 0..2 {
        let o = inbound(
            &site,
            &[],
            &dsn(
                &format!("d{i}"),
                &addrs[0],
                "4.2.2",
                "452 4.2.2 Mailbox full",
                false,
            ),
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert_eq!(
            status_of(&site, &addrs[0]),
            SubscriberStatus::Active,
            "after {}",
            i + 1
        );
    }
    let o = inbound(
        &site,
        &["-v"],
        &dsn("d2", &addrs[0], "4.2.2", "452 4.2.2 Mailbox full", false),
    );
    assert!(stderr(&o).contains("is now bounced"), "{}", stderr(&o));
    assert_eq!(status_of(&site, &addrs[0]), SubscriberStatus::Bounced);
}

#[test]
fn a_report_naming_someone_never_mailed_changes_nothing() {
    let (_t, _s, site, _addrs) = sent_site(1);
    site.cmd()
        .args(["subscribers", "add", "never@example.net"])
        .output()
        .unwrap();
    let o = inbound(
        &site,
        &["-v"],
        &dsn(
            "f1",
            "never@example.net",
            "5.1.1",
            "550 5.1.1 unknown",
            false,
        ),
    );
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("naming nobody on the list"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        status_of(&site, "never@example.net"),
        SubscriberStatus::Active
    );
}

fn complaint(address: &str) -> Vec<u8> {
    format!(
        "From: fbl@mailbox.example\r\nTo: abuse@example.org\r\nSubject: complaint\r\n\
         Message-ID: <c1@mailbox.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=feedback-report; boundary=F\r\n\r\n\
         --F\r\nContent-Type: text/plain\r\n\r\nAn abuse report.\r\n\
         --F\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n\
         User-Agent: fbl/1\r\nVersion: 1\r\n\r\n\
         --F\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: digest@example.org\r\n\
         To: redacted@mailbox.example\r\nList-Unsubscribe: <{}>\r\n\r\n--F--\r\n",
        unsubscribe_url(address)
    )
    .into_bytes()
}

#[test]
fn a_complaint_suppresses_for_good() {
    let (_t, _s, site, addrs) = sent_site(2);
    let o = inbound(&site, &["-v"], &complaint(&addrs[1]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(status_of(&site, &addrs[1]), SubscriberStatus::Complained);
    // No add or import brings the address back.
    site.cmd()
        .args(["subscribers", "add", &addrs[1]])
        .output()
        .unwrap();
    assert_eq!(status_of(&site, &addrs[1]), SubscriberStatus::Complained);
    assert_eq!(status_of(&site, &addrs[0]), SubscriberStatus::Active);
}

#[test]
fn a_mailed_unsubscribe_is_applied_and_nothing_is_replied() {
    let (_t, server, site, addrs) = sent_site(2);
    let before = server.counts().values().sum::<usize>();
    let m = format!(
        "From: {}\r\nTo: unsubscribe@example.org\r\nSubject: unsubscribe\r\nMessage-ID: <u1@x>\r\n\r\n\r\n",
        addrs[0]
    );
    let o = inbound(
        &site,
        &["--recipient", "unsubscribe@example.org"],
        m.as_bytes(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(status_of(&site, &addrs[0]), SubscriberStatus::Unsubscribed);
    assert_eq!(
        site.store()
            .history(&addrs[0])
            .unwrap()
            .last()
            .unwrap()
            .path
            .as_str(),
        "mail"
    );
    assert_eq!(
        server.counts().values().sum::<usize>(),
        before,
        "nothing is mailed back"
    );
}

#[test]
fn replies_and_junk_change_nothing_and_junk_is_kept() {
    let (_t, _s, site, addrs) = sent_site(1);
    let keep = site.path("kept");
    let keep_arg = keep.to_str().unwrap().to_string();
    let auto = format!(
        "From: {}\r\nTo: digest@example.org\r\nAuto-Submitted: auto-replied\r\nSubject: Out of office\r\n\r\nAway.\r\n",
        addrs[0]
    );
    let o = inbound(&site, &["--keep", &keep_arg], auto.as_bytes());
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("1 automatic reply ignored"),
        "{}",
        stderr(&o)
    );
    for junk in [&b""[..], b"\xff\xfe\x00garbage", b"just words, no header\n"] {
        let o = inbound(&site, &["--keep", &keep_arg], junk);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let o = inbound(&site, &[], b"");
    assert!(
        stderr(&o).contains("warning: a message of 0 bytes has no header"),
        "{}",
        stderr(&o)
    );
    assert_eq!(status_of(&site, &addrs[0]), SubscriberStatus::Active);
    let kept = std::fs::read_dir(&keep).map(|d| d.count()).unwrap_or(0);
    assert!(kept >= 2, "{kept} kept");
}

fn unsubscribe_mail(from: &str, id: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: unsubscribe@example.org\r\nSubject: unsubscribe\r\n\
         Message-ID: <{id}@x>\r\n\r\n\r\n"
    )
    .into_bytes()
}

fn auto_reply(from: &str, id: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: digest@example.org\r\nAuto-Submitted: auto-replied\r\n\
         Subject: Out of office\r\nMessage-ID: <{id}@x>\r\n\r\nAway until Monday.\r\n"
    )
    .into_bytes()
}

/// Every kind of message, read from a Maildir and from an mbox file.
#[test]
fn maildir_and_mbox_read_every_kind_of_message_once() {
    let (_t, _s, site, a) = sent_site(6);
    let md = site.path("Maildir");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(md.join(sub)).unwrap();
    }
    let files: [(&str, Vec<u8>); 5] = [
        ("1.a", dsn("m1", &a[0], "5.1.1", "550 5.1.1 unknown", true)),
        ("2.b", complaint(&a[1])),
        ("3.c", unsubscribe_mail(&a[2], "m3")),
        ("4.d", auto_reply(&a[3], "m4")),
        ("5.e", b"\xff\xfe no header at all".to_vec()),
    ];
    for (name, bytes) in &files {
        std::fs::write(md.join("new").join(name), bytes).unwrap();
    }
    let o = site
        .cmd()
        .args(["inbound", "--maildir", md.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    for part in [
        "1 bounce",
        "1 complaint",
        "1 unsubscribe",
        "1 automatic reply ignored",
    ] {
        assert!(err.contains(part), "{part}: {err}");
    }
    assert_eq!(status_of(&site, &a[0]), SubscriberStatus::Bounced);
    assert_eq!(status_of(&site, &a[1]), SubscriberStatus::Complained);
    assert_eq!(status_of(&site, &a[2]), SubscriberStatus::Unsubscribed);
    assert_eq!(status_of(&site, &a[3]), SubscriberStatus::Active);
    assert_eq!(std::fs::read_dir(md.join("new")).unwrap().count(), 0);
    for (name, _) in &files {
        assert!(md.join(format!("cur/{name}:2,S")).is_file(), "{name}");
    }

    let mut mbox = Vec::new();
    for m in [
        dsn("m1", &a[0], "5.1.1", "550 5.1.1 unknown", true),
        dsn("m6", &a[4], "5.1.1", "550 5.1.1 unknown", true),
        unsubscribe_mail(&a[5], "m7"),
        auto_reply(&a[3], "m8"),
    ] {
        mbox.extend_from_slice(b"From MAILER-DAEMON Tue Dec  1 10:00:00 2026\n");
        let text = String::from_utf8(m).unwrap().replace("\r\n", "\n");
        mbox.extend_from_slice(text.as_bytes());
        mbox.extend_from_slice(b"\n");
    }
    let file = site.path("bounces.mbox");
    std::fs::write(&file, mbox).unwrap();
    let o = site
        .cmd()
        .args(["inbound", "-v", "--mbox", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    for part in [
        "1 already handled",
        "1 bounce",
        "1 unsubscribe",
        "1 automatic reply ignored",
    ] {
        assert!(err.contains(part), "{part}: {err}");
    }
    assert_eq!(status_of(&site, &a[4]), SubscriberStatus::Bounced);
    assert_eq!(status_of(&site, &a[5]), SubscriberStatus::Unsubscribed);
    assert_eq!(status_of(&site, &a[3]), SubscriberStatus::Active);
    // Not a Maildir, not an mbox: an error, exit 1.
    for args in [["--maildir", "issues"], ["--mbox", "techshack.toml"]] {
        let o = site.cmd().arg("inbound").args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(stderr(&o).contains("is not a"), "{}", stderr(&o));
    }
}

#[test]
fn a_busy_state_exits_75_for_the_mail_system_to_retry() {
    // SQLite's write lock, held by another process (PostgreSQL: see the next test).
    let (_t, _s, site, addrs) = sent_site_of(1, "", true);
    let db = rusqlite::Connection::open(site.db()).unwrap();
    db.execute_batch("BEGIN IMMEDIATE").unwrap();
    let o = inbound(
        &site,
        &[],
        &dsn("b1", &addrs[0], "5.1.1", "550 5.1.1 unknown", true),
    );
    db.execute_batch("ROLLBACK").unwrap();
    assert_eq!(o.status.code(), Some(75), "{}", stderr(&o));
    let o = inbound(
        &site,
        &[],
        &dsn("b1", &addrs[0], "5.1.1", "550 5.1.1 unknown", true),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(status_of(&site, &addrs[0]), SubscriberStatus::Bounced);
}

#[test]
fn an_unreachable_database_exits_75_and_names_it_without_its_password() {
    let (_t, _s, site, addrs) = sent_site(1);
    // Nothing listens on port 1.
    let mut c = site.cmd();
    c.arg("inbound").env(
        "TECHSHACK_STATE_URL",
        "postgres://news:s3cret@127.0.0.1:1/list?connect_timeout=2",
    );
    let o = output_with_stdin(c, &dsn("b1", &addrs[0], "5.1.1", "550 5.1.1 unknown", true));
    assert_eq!(o.status.code(), Some(75), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("postgres://news:***@127.0.0.1:1/list"), "{e}");
    assert!(!e.contains("s3cret"), "{e}");
}

#[test]
fn postfix_returns_a_report_for_each_refused_and_expired_recipient() {
    let tmp = tempfile::tempdir().unwrap();
    let next_hop = Server::start(
        tmp.path(),
        json!({
            "reject": {"regex": "^user0000@", "reply": "550 5.1.1 <user0000@example.net>: Recipient address rejected: User unknown"},
            "tempfail": {"regex": "^user0001@", "times": 1000, "reply": "450 4.2.0 Greylisted, try again later"},
        }),
    );
    let relay = Relay::start(tmp.path(), next_hop.port, "example.org");
    let site = TestSite::for_send(&format!("smtp://127.0.0.1:{}", relay.port), "");
    add_email_lines(&site, RETURN_PATH);
    let addrs = site.subscribe(4);
    let o = site.cmd().args(["send", ISSUE]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The relay accepts everyone: the refusals come back later, as mail.
    assert_eq!(site.status()["sent"], 4);
    let reports = relay.wait_for(2, 60);
    let mut seen = Vec::new();
    for path in &reports {
        let raw = std::fs::read(path).unwrap();
        let m = inbound::read(&raw, Envelope::default()).unwrap();
        let Kind::Bounce {
            recipients,
            standard: true,
        } = m.kind
        else {
            panic!("{}: {:?}", path.display(), m.kind)
        };
        assert_eq!(recipients.len(), 1);
        let r = &recipients[0];
        assert_eq!(r.action, Action::Failed);
        seen.push((r.address.clone().unwrap(), r.status.clone().unwrap()));
        // Postfix returned it to the VERP address of the delivery.
        assert!(
            m.token_carriers[0].starts_with("bounces+"),
            "{:?}",
            m.token_carriers
        );
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            (addrs[0].clone(), "5.1.1".to_string()),
            (addrs[1].clone(), "4.2.0".to_string())
        ]
    );
    // Postfix relays on its own time: wait for the two it delivers.
    let t = std::time::Instant::now();
    while next_hop.counts().values().sum::<usize>() < 2 {
        assert!(
            t.elapsed().as_secs() < 60,
            "Postfix relayed {:?}",
            next_hop.counts()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let got = next_hop.counts();
    assert_eq!(got.get(&addrs[2]), Some(&1));
    assert_eq!(got.get(&addrs[3]), Some(&1));
    assert_eq!(got.get(&addrs[0]), None);

    // `techshack inbound` reads Postfix's reports from the Maildir: the refused subscriber is
    // bounced, the deferred one has one soft bounce counted, everyone else is untouched.
    let md = relay.maildir.to_str().unwrap().to_string();
    let o = site
        .cmd()
        .args(["inbound", "-v", "--maildir", &md])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("1 bounce, 1 soft bounce"), "{err}");
    assert_eq!(status_of(&site, &addrs[0]), SubscriberStatus::Bounced);
    for a in &addrs[1..] {
        assert_eq!(status_of(&site, a), SubscriberStatus::Active, "{a}");
    }
    assert!(relay.delivered().is_empty(), "every report moved to cur/");
    // Read again (as a cron job would): nothing pending, nothing changes.
    let o = site
        .cmd()
        .args(["inbound", "--maildir", &md])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(status_of(&site, &addrs[1]), SubscriberStatus::Active);
}

#[test]
fn a_verp_return_path_names_the_delivery_when_the_report_does_not() {
    let (_t, _s, site, addrs) = sent_site_with(2, RETURN_PATH);
    let key = SECRET.as_bytes();
    let id = delivery_id(&site, &addrs[1]);
    let verp = techshack::mail::verp::address("bounces+{token}@example.org", key, id, &addrs[1]);
    assert!(verp.len() <= 64 + "@example.org".len());
    // A forwarded address: the report names where the mail went, not the subscriber.
    let report = dsn_to(
        &verp,
        "v1",
        "someone@forwarded.example",
        "5.1.1",
        "550 5.1.1 unknown",
        false,
    );
    let o = inbound(&site, &["-v"], &report);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        status_of(&site, &addrs[1]),
        SubscriberStatus::Bounced,
        "{}",
        stderr(&o)
    );
    assert_eq!(status_of(&site, &addrs[0]), SubscriberStatus::Active);
    // A token that does not verify names nobody.
    let forged = verp.replacen(
        &format!("{id}-"),
        &format!("{}-", delivery_id(&site, &addrs[0])),
        1,
    );
    let report = dsn_to(
        &forged,
        "v2",
        "someone@forwarded.example",
        "5.1.1",
        "550 5.1.1 unknown",
        false,
    );
    let o = inbound(&site, &["-v"], &report);
    assert!(stderr(&o).contains("naming nobody"), "{}", stderr(&o));
    assert_eq!(status_of(&site, &addrs[0]), SubscriberStatus::Active);
    // With VERP on, a report that names a subscriber but carries no token is not believed.
    let report = dsn("v3", &addrs[0], "5.1.1", "550 5.1.1 unknown", false);
    let o = inbound(&site, &["-v"], &report);
    assert!(stderr(&o).contains("naming nobody"), "{}", stderr(&o));
    assert_eq!(status_of(&site, &addrs[0]), SubscriberStatus::Active);
}

#[test]
fn a_return_path_without_room_for_the_token_is_refused() {
    let site = TestSite::for_send("smtp://127.0.0.1:9", "");
    add_email_lines(
        &site,
        &format!("return_path = \"{}+{{token}}@example.org\"", "b".repeat(30)),
    );
    let o = site
        .cmd()
        .args(["send", ISSUE, "--dry-run", "out"])
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("leaves 33 octets for the token"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn the_token_in_a_mailed_unsubscribes_subject_names_the_subscriber() {
    let (_t, _s, site, addrs) = sent_site(2);
    let t = token::sign(SECRET.as_bytes(), Purpose::Unsubscribe, &addrs[1]);
    // Sent from another address of theirs: the token, not the sender, names them.
    let m = format!(
        "From: other@elsewhere.example\r\nTo: unsubscribe@example.org\r\n\
         Subject: unsubscribe {t}\r\nMessage-ID: <u2@x>\r\n\r\n\r\n"
    );
    let o = inbound(&site, &["-v"], m.as_bytes());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        status_of(&site, &addrs[1]),
        SubscriberStatus::Unsubscribed,
        "{}",
        stderr(&o)
    );
    assert_eq!(status_of(&site, &addrs[0]), SubscriberStatus::Active);
    // A forged token and a stranger's address name nobody.
    let m = "From: stranger@elsewhere.example\r\nTo: unsubscribe@example.org\r\n\
             Subject: unsubscribe dXNlcjAwMDBAZXhhbXBsZS5uZXQ.AAAA\r\nMessage-ID: <u3@x>\r\n\r\n\r\n";
    let o = inbound(&site, &["-v"], m.as_bytes());
    assert!(stderr(&o).contains("naming nobody"), "{}", stderr(&o));
    assert_eq!(status_of(&site, &addrs[0]), SubscriberStatus::Active);
}
