use super::*;

const VERP: &str = "bounces+Tk1.sig@news.example";

fn dsn(action: &str, status: &str, diag: &str) -> String {
    format!(
        "Return-Path: <>\r\nFrom: MAILER-DAEMON@relay.example (Mail Delivery System)\r\n\
         To: {VERP}\r\nSubject: Undelivered Mail Returned to Sender\r\n\
         Auto-Submitted: auto-replied\r\nMessage-Id: <20261201.AB12@relay.example>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B1\"\r\n\r\n\
         --B1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n\
         This is the mail system at host relay.example.\r\n\r\n\
         I'm sorry to have to inform you that your message could not\r\nbe delivered.\r\n\r\n\
         --B1\r\nContent-Type: message/delivery-status\r\n\r\n\
         Reporting-MTA: dns; relay.example\r\nX-Postfix-Queue-ID: AB12\r\n\
         X-Postfix-Sender: rfc822; {VERP}\r\nArrival-Date: Tue,  1 Dec 2026 10:00:00 +0000\r\n\r\n\
         Final-Recipient: rfc822; bob@example.org\r\nOriginal-Recipient: rfc822;bob@example.org\r\n\
         Action: {action}\r\nStatus: {status}\r\nRemote-MTA: dns; mx.example.org\r\n\
         Diagnostic-Code: smtp; {diag}\r\n\r\n\
         --B1\r\nContent-Type: message/rfc822\r\n\r\n\
         From: News <news@news.example>\r\nTo: bob@example.org\r\nSubject: Issue 3\r\n\
         Message-ID: <issue-3.bob@news.example>\r\n\
         List-Unsubscribe: <https://news.example/unsubscribe?t=UT1>, <mailto:leave+UT2@news.example>\r\n\r\n\
         Hello.\r\n\r\n--B1--\r\n"
    )
}

#[test]
fn a_postfix_dsn_names_the_recipient_status_and_reply() {
    let raw = dsn(
        "failed",
        "5.1.1",
        "550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown",
    );
    let m = read(
        raw.as_bytes(),
        Envelope {
            recipient: Some(VERP),
            unsubscribe: None,
        },
    )
    .unwrap();
    let Kind::Bounce {
        recipients,
        standard,
    } = &m.kind
    else {
        panic!("{:?}", m.kind)
    };
    assert!(standard);
    assert_eq!(
        recipients,
        &[Recipient {
            address: Some("bob@example.org".into()),
            action: Action::Failed,
            status: Some("5.1.1".into()),
            reply: Some(
                "550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown".into()
            ),
        }]
    );
    assert_eq!(
        m.original_message_id.as_deref(),
        Some("issue-3.bob@news.example")
    );
    assert_eq!(m.token_carriers[0], VERP);
    assert!(m
        .token_carriers
        .contains(&"https://news.example/unsubscribe?t=UT1".to_string()));
    assert!(m
        .token_carriers
        .contains(&"mailto:leave+UT2@news.example".to_string()));
    assert_eq!(
        m.token_carriers.iter().filter(|c| *c == VERP).count(),
        1,
        "{:?}",
        m.token_carriers
    );
}

#[test]
fn a_delay_notice_is_a_delayed_bounce() {
    let raw = dsn(
        "delayed",
        "4.4.1",
        "X-Postfix; connect to mx.example.org: Connection timed out",
    );
    let m = read(raw.as_bytes(), Envelope::default()).unwrap();
    let Kind::Bounce { recipients, .. } = &m.kind else {
        panic!()
    };
    assert_eq!(recipients[0].action, Action::Delayed);
    assert_eq!(recipients[0].status.as_deref(), Some("4.4.1"));
}

#[test]
fn a_feedback_report_is_a_complaint() {
    let raw = "From: feedback@mailbox.example\r\nTo: fbl@news.example\r\nSubject: complaint\r\n\
               MIME-Version: 1.0\r\n\
               Content-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\r\n\r\n\
               --F\r\nContent-Type: text/plain\r\n\r\nThis is an abuse report.\r\n\r\n\
               --F\r\nContent-Type: message/feedback-report\r\n\r\n\
               Feedback-Type: Abuse\r\nUser-Agent: mailbox-fbl/1.0\r\nVersion: 1\r\n\
               Original-Rcpt-To: <carol@mailbox.example>\r\n\r\n\
               --F\r\nContent-Type: text/rfc822-headers\r\n\r\n\
               Return-Path: <bounces+Tk2.sig@news.example>\r\nFrom: news@news.example\r\n\
               Message-ID: <issue-3.carol@news.example>\r\n\
               List-Unsubscribe: <https://news.example/unsubscribe?t=UT3>\r\n\r\n--F--\r\n";
    let m = read(raw.as_bytes(), Envelope::default()).unwrap();
    assert_eq!(
        m.kind,
        Kind::Complaint {
            feedback_type: "abuse".into(),
            recipient: Some("carol@mailbox.example".into())
        }
    );
    assert_eq!(
        m.original_message_id.as_deref(),
        Some("issue-3.carol@news.example")
    );
    assert!(m
        .token_carriers
        .contains(&"bounces+Tk2.sig@news.example".to_string()));
    assert!(m
        .token_carriers
        .contains(&"https://news.example/unsubscribe?t=UT3".to_string()));
}

#[test]
fn mail_to_the_unsubscribe_address_or_asking_to_leave() {
    let env = Envelope {
        recipient: Some("leave+UT9@news.example"),
        unsubscribe: Some("leave+{token}@news.example"),
    };
    let raw = "From: dave@example.org\r\nTo: leave+UT9@news.example\r\nSubject: \r\n\r\n\r\n";
    assert_eq!(
        read(raw.as_bytes(), env).unwrap().kind,
        Kind::Unsubscribe { asks: false }
    );
    let raw =
        "From: dave@example.org\r\nTo: news@news.example\r\nSubject: Unsubscribe\r\n\r\nthanks\r\n";
    assert_eq!(
        read(raw.as_bytes(), Envelope::default()).unwrap().kind,
        Kind::Unsubscribe { asks: true }
    );
    let raw = "From: dave@example.org\r\nTo: news@news.example\r\nSubject: hi\r\n\r\nPlease unsubscribe me.\r\n";
    assert_eq!(
        read(raw.as_bytes(), Envelope::default()).unwrap().kind,
        Kind::Unsubscribe { asks: true }
    );
}

#[test]
fn a_reply_quoting_the_footer_is_not_an_unsubscribe() {
    let raw = "From: erin@example.org\r\nTo: news@news.example\r\nSubject: Re: Issue 3\r\n\r\n\
               Great issue!\r\n\r\n> Unsubscribe: https://news.example/unsubscribe?t=x\r\n";
    assert_eq!(
        read(raw.as_bytes(), Envelope::default()).unwrap().kind,
        Kind::Other
    );
}

#[test]
fn automatic_replies_are_told_apart() {
    for head in [
        "Auto-Submitted: auto-replied\r\nSubject: Re: Issue 3\r\n",
        "X-Autoreply: yes\r\nSubject: Re: Issue 3\r\n",
        "Precedence: auto_reply\r\nSubject: Re: Issue 3\r\n",
        "Subject: Out of Office: Re: Issue 3\r\n",
        "Subject: Automatic reply: Issue 3\r\n",
    ] {
        let raw =
            format!("From: frank@example.org\r\nTo: news@news.example\r\n{head}\r\nI am away.\r\n");
        assert_eq!(
            read(raw.as_bytes(), Envelope::default()).unwrap().kind,
            Kind::AutoReply,
            "{head}"
        );
    }
}

#[test]
fn plain_text_notices_are_bounces_without_a_report() {
    let raw = format!(
        "From: MAILER-DAEMON@mx.example.org\r\nTo: {VERP}\r\nSubject: failure notice\r\n\r\n\
         Hi. This is the qmail-send program at mx.example.org.\r\n\
         I'm afraid I wasn't able to deliver your message to the following addresses.\r\n\
         This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n\
         <gina@example.org>:\r\nRemote host said: 550 5.1.1 mailbox unavailable\r\n"
    );
    let m = read(raw.as_bytes(), Envelope::default()).unwrap();
    let Kind::Bounce {
        recipients,
        standard,
    } = m.kind
    else {
        panic!()
    };
    assert!(!standard);
    assert_eq!(recipients[0].address.as_deref(), Some("gina@example.org"));
    assert_eq!(recipients[0].status.as_deref(), Some("5.1.1"));
    assert_eq!(m.token_carriers, [VERP]);
}

#[test]
fn unreadable_input_is_an_error_and_junk_is_other() {
    assert_eq!(read(b"", Envelope::default()), Err(Unreadable));
    let m = read(b"hello there\r\n", Envelope::default());
    assert!(
        matches!(
            m,
            Err(Unreadable)
                | Ok(Inbound {
                    kind: Kind::Other,
                    ..
                })
        ),
        "{m:?}"
    );
}

#[test]
fn a_report_with_its_blocks_mangled_still_yields_what_it_has() {
    let raw = "From: MAILER-DAEMON@x\r\nSubject: Delivery Status Notification\r\n\
               Content-Type: multipart/report; report-type=delivery-status; boundary=Z\r\n\r\n\
               --Z\r\nContent-Type: message/delivery-status\r\n\r\n\
               Final-Recipient: rfc822; hal@example.org\r\nAction: failed\r\nStatus: 5.2.1 (disabled)\r\n\
               --Z--\r\n";
    let m = read(raw.as_bytes(), Envelope::default()).unwrap();
    let Kind::Bounce { recipients, .. } = m.kind else {
        panic!()
    };
    assert_eq!(recipients.len(), 1);
    assert_eq!(recipients[0].status.as_deref(), Some("5.2.1"));
    assert_eq!(recipients[0].reply, None);
}

#[test]
fn tokens_are_found_where_the_pattern_has_them() {
    assert_eq!(
        token_in(
            "bounces+{token}@news.example",
            "bounces+AbC.d-e@News.Example"
        ),
        Some("AbC.d-e")
    );
    assert_eq!(
        token_in("bounces+{token}@news.example", "bounces+@news.example"),
        None
    );
    assert_eq!(
        token_in("bounces+{token}@news.example", "other+AbC@news.example"),
        None
    );
    assert_eq!(
        token_in("bounces+{token}@news.example", "bounces+a@b@news.example"),
        None
    );
    assert_eq!(
        token_in("{token}@news.example", "x@news.example.evil"),
        None
    );
    assert_eq!(
        token_in("no-token@news.example", "no-token@news.example"),
        None
    );
    assert!(matches_pattern("leave@news.example", "LEAVE@news.example"));
    assert!(matches_pattern(
        "leave+{token}@news.example",
        "leave+t@news.example"
    ));
    assert!(!matches_pattern(
        "leave+{token}@news.example",
        "leave@news.example"
    ));
}

/// Mutates the messages above (flips, cuts, splices, repeated boundaries and field lines) and
/// reads each: nothing may panic. 10,000 rounds by default; `TECHSHACK_FUZZ_SECS=600` runs
/// for that long instead.
#[test]
fn arbitrary_bytes_never_panic() {
    let seeds: Vec<Vec<u8>> = vec![
        dsn("failed", "5.1.1", "550 5.1.1 x").into_bytes(),
        dsn("delayed", "4.4.1", "X-Postfix; timeout").into_bytes(),
        b"From: MAILER-DAEMON@x\r\nSubject: failure notice\r\n\r\n<a@b.c>:\r\n550 5.1.1 no\r\n".to_vec(),
        b"Content-Type: multipart/report; report-type=feedback-report; boundary=F\r\n\r\n--F\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n--F\r\nContent-Type: message/rfc822\r\n\r\nFrom: a@b\r\n\r\n--F--".to_vec(),
    ];
    const PIECES: &[&[u8]] = &[
        b"\r\n",
        b"\r\n\r\n",
        b"--B1\r\n",
        b"--B1--",
        b"Content-Type: message/rfc822\r\n\r\n",
        b"Content-Type: multipart/mixed; boundary=B1\r\n\r\n",
        b"Content-Transfer-Encoding: base64\r\n",
        b"=?utf-8?b?",
        b"Final-Recipient: ;",
        b"Status: ",
        b"<",
        b">",
        b"@",
        b"\0",
        b"\xff\xfe",
    ];
    let secs: u64 = std::env::var("TECHSHACK_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let mut x = 0x2545F4914F6CDD1Du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut rounds = 0u64;
    while rounds < 10_000 || std::time::Instant::now() < until {
        rounds += 1;
        let mut b = seeds[(next() as usize) % seeds.len()].clone();
        for _ in 0..(next() % 8 + 1) {
            let at = (next() as usize) % (b.len() + 1);
            match next() % 5 {
                0 if !b.is_empty() => {
                    let i = at.min(b.len() - 1);
                    b[i] = next() as u8;
                }
                1 => b.truncate(at),
                2 => {
                    let p = PIECES[(next() as usize) % PIECES.len()];
                    b.splice(at..at, p.iter().copied());
                }
                3 => {
                    let o = &seeds[(next() as usize) % seeds.len()];
                    let from = (next() as usize) % o.len();
                    b.splice(at..at, o[from..].iter().copied());
                }
                _ => {
                    let end = (at + (next() as usize) % 64).min(b.len());
                    let chunk = b[at..end].to_vec();
                    for _ in 0..(next() % 50) {
                        b.splice(at..at, chunk.iter().copied());
                    }
                }
            }
        }
        let _ = read(
            &b,
            Envelope {
                recipient: Some(VERP),
                unsubscribe: Some("l+{token}@x"),
            },
        );
    }
    eprintln!("{rounds} messages read");
    assert!(rounds >= 10_000);
}

fn fixture(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/inbound")
        .join(name);
    std::fs::read(p).unwrap()
}

/// Reports written by Postfix 3.7's bounce daemon for a relay whose next hop refused one
/// recipient and kept deferring another until the queue lifetime ran out.
#[test]
fn postfix_reports_of_a_refusal_and_an_expired_deferral() {
    let m = read(&fixture("postfix-rejected.eml"), Envelope::default()).unwrap();
    let Kind::Bounce {
        recipients,
        standard: true,
    } = &m.kind
    else {
        panic!("{:?}", m.kind)
    };
    assert_eq!(recipients.len(), 1);
    assert_eq!(recipients[0].address.as_deref(), Some("bob@example.org"));
    assert_eq!(recipients[0].action, Action::Failed);
    assert_eq!(recipients[0].status.as_deref(), Some("5.1.1"));
    assert_eq!(
        recipients[0].reply.as_deref(),
        Some("550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown")
    );
    assert_eq!(m.token_carriers[0], "bounces+TOKbob@news.example");
    assert_eq!(
        m.original_message_id.as_deref(),
        Some("i3.bob@news.example")
    );

    let m = read(
        &fixture("postfix-expired-deferral.eml"),
        Envelope::default(),
    )
    .unwrap();
    let Kind::Bounce { recipients, .. } = &m.kind else {
        panic!()
    };
    assert_eq!(recipients[0].action, Action::Failed);
    assert_eq!(recipients[0].status.as_deref(), Some("4.2.0"));
    assert!(m
        .token_carriers
        .contains(&"https://news.example/u?t=UTcarol".to_string()));
}
