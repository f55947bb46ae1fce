//! `techshack serve` over real HTTP: the binary on a loopback port, a real SQLite state file
//! and a real SMTP server (aiosmtpd) for the confirmation mails.

use std::time::{Duration, Instant};

use crate::support::serve::*;
use crate::support::{TestSite, SECRET};
use techshack::store::SubscriberStatus;
use techshack::token::{sign, Purpose};

fn site() -> (Sink, TestSite) {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(dir.path(), 0.0);
    let site = TestSite::for_serve(dir, sink.port, "", "");
    (sink, site)
}

#[test]
fn one_click_post_unsubscribes_once_and_for_all() {
    let (_sink, site) = site();
    site.add_active(&["ann@example.net", "bo@example.net", "cy@example.net"]);
    let srv = site.serve();

    let r = one_click(&srv.url(&format!(
        "/unsubscribe?token={}",
        unsubscribe_token("ann@example.net")
    )));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("location").is_none(), "no redirect");
    assert!(r.body.contains("You are unsubscribed"), "{}", r.body);
    assert_eq!(
        site.subscriber_status("ann@example.net"),
        Some(SubscriberStatus::Unsubscribed)
    );
    // Idempotent: the same request again is still a 200 and changes nothing.
    let again = one_click(&srv.url(&format!(
        "/unsubscribe?token={}",
        unsubscribe_token("ann@example.net")
    )));
    assert_eq!(again.status, 200);
    assert_eq!(
        site.subscriber_status("ann@example.net"),
        Some(SubscriberStatus::Unsubscribed)
    );

    // Some providers send the one-click body as multipart/form-data.
    let boundary = "XyZ123";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--{boundary}--\r\n"
    );
    let r = post_raw(
        &srv.url(&format!(
            "/unsubscribe?token={}",
            unsubscribe_token("bo@example.net")
        )),
        &format!("multipart/form-data; boundary={boundary}"),
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        site.subscriber_status("bo@example.net"),
        Some(SubscriberStatus::Unsubscribed)
    );
    assert_eq!(
        site.subscriber_status("cy@example.net"),
        Some(SubscriberStatus::Active)
    );

    // A valid link for an address no longer on the list is remembered, so a later import
    // cannot mail it.
    let r = one_click(&srv.url(&format!(
        "/unsubscribe?token={}",
        unsubscribe_token("gone@example.net")
    )));
    assert_eq!(r.status, 200);
    assert_eq!(
        site.subscriber_status("gone@example.net"),
        Some(SubscriberStatus::Unsubscribed)
    );

    // The log says what happened without saying to whom, and never shows a token.
    let log = srv.log();
    assert!(log.contains("unsubscribed …@example.net"), "{log}");
    assert!(!log.contains("ann@") && !log.contains("bo@"), "{log}");
    assert!(
        !log.contains(&unsubscribe_token("ann@example.net")),
        "{log}"
    );

    // Security headers: the URL carries a token, so no Referer may leak it.
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(r
        .header("content-security-policy")
        .is_some_and(|c| c.contains("default-src 'none'")));
}

#[test]
fn forged_truncated_and_other_purpose_tokens_change_nothing() {
    let (_sink, site) = site();
    site.add_active(&["ann@example.net", "eve@example.net"]);
    let srv = site.serve();
    let good = unsubscribe_token("ann@example.net");
    // The old form, which links mailed before still carry: forgeries of it fail too.
    let old = old_form_token("ann@example.net");
    let (addr_part, mac_part) = old.split_once('.').unwrap();
    let eve_old = old_form_token("eve@example.net");
    let eve_addr = eve_old.split_once('.').unwrap().0;
    // The sealed form: Ann's tag on Eve's sealed address, and one flipped bit.
    let eve = unsubscribe_token("eve@example.net");
    let spliced = format!("{}{}", &good[..22], &eve[22..]);
    let mut flipped = good.clone().into_bytes();
    flipped[30] = if flipped[30] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let other_secret = sign(
        b"another secret that is long enough",
        Purpose::Unsubscribe,
        "ann@example.net",
    );
    let confirm = sign(
        SECRET.as_bytes(),
        Purpose::Confirm {
            expires: chrono::Utc::now().timestamp() + 3600,
        },
        "ann@example.net",
    );
    let long = "A".repeat(5000);
    let bad: Vec<String> = vec![
        format!("{eve_addr}.{mac_part}"),   // Ann's MAC on Eve's address
        old[..old.len() - 3].to_string(),   // truncated
        addr_part.to_string(),              // no MAC at all
        spliced,                            // Ann's tag on Eve's sealed address
        flipped,                            // one character changed
        good[..good.len() - 3].to_string(), // truncated
        good[..20].to_string(),             // the tag alone
        other_secret,                       // another server's secret
        confirm.clone(),                    // a confirm token
        "%%%".to_string(),                  // not even base64
        long,                               // absurdly long
        String::new(),
    ];
    for t in &bad {
        for r in [
            one_click(&srv.url(&format!("/unsubscribe?token={t}"))),
            get(&srv.url(&format!("/unsubscribe?token={t}"))),
        ] {
            assert_eq!(r.status, 400, "token {t:?} got {}", r.status);
            assert!(r.body.contains("This link does not work"));
        }
    }
    let r = one_click(&srv.url("/unsubscribe"));
    assert_eq!(r.status, 400);
    // An unsubscribe token does not confirm anything either.
    let r = post_form(
        &srv.url(&format!("/confirm?token={good}&expires=9999999999")),
        &[],
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        site.subscriber_status("ann@example.net"),
        Some(SubscriberStatus::Active)
    );
    assert_eq!(
        site.subscriber_status("eve@example.net"),
        Some(SubscriberStatus::Active)
    );
}

#[test]
fn get_never_changes_state() {
    let (_sink, site) = site();
    site.add_active(&["ann@example.net"]);
    let mut store = site.store();
    store.add_pending("pat@example.net", None).unwrap();
    drop(store);
    let srv = site.serve();

    let token = unsubscribe_token("ann@example.net");
    for _ in 0..3 {
        let r = get(&srv.url(&format!("/unsubscribe?token={token}")));
        assert_eq!(r.status, 200);
        assert!(r.body.contains("method=\"post\""), "{}", r.body);
        assert!(r.body.contains("ann@example.net"));
        assert!(r
            .body
            .contains(&format!("action=\"unsubscribe?token={token}\"")));
        assert!(!r.body.contains("<script"), "no JavaScript needed");
    }
    assert_eq!(
        site.subscriber_status("ann@example.net"),
        Some(SubscriberStatus::Active)
    );

    let expires = chrono::Utc::now().timestamp() + 3600;
    let t = sign(
        SECRET.as_bytes(),
        Purpose::Confirm { expires },
        "pat@example.net",
    );
    let r = get(&srv.url(&format!("/confirm?token={t}&expires={expires}")));
    assert_eq!(r.status, 200);
    assert!(r.body.contains("method=\"post\""));
    assert_eq!(
        site.subscriber_status("pat@example.net"),
        Some(SubscriberStatus::Pending)
    );
    let r = get(&srv.url("/subscribe"));
    assert_eq!(r.status, 200);
    assert!(r.body.contains("name=\"email\""));
    let r = get(&srv.url("/healthz"));
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    assert_eq!(get(&srv.url("/nothing-here")).status, 404);
}

#[test]
fn subscribe_mails_a_link_that_confirms() {
    let (sink, site) = site();
    let srv = site.serve();
    let r = post_form(
        &srv.url("/subscribe"),
        &[
            ("email", " New.Reader@Example.NET "),
            ("name", "New Reader"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Check your inbox"));
    assert_eq!(
        site.subscriber_status("new.reader@example.net"),
        Some(SubscriberStatus::Pending)
    );

    let msgs = sink.wait_for(1);
    assert_eq!(sink.recipients(), ["new.reader@example.net"]);
    let parsed = mail_parser::MessageParser::default()
        .parse(&msgs[0])
        .unwrap();
    assert_eq!(
        parsed.subject(),
        Some("Confirm your subscription to Test Digest")
    );
    assert_eq!(
        parsed
            .from()
            .and_then(|f| f.first())
            .and_then(|a| a.address()),
        Some("digest@example.org")
    );
    assert!(parsed
        .message_id()
        .is_some_and(|id| id.ends_with("@example.org")));
    // A MIME message: without MIME-Version the charset of the text part is not defined.
    let raw = String::from_utf8_lossy(&msgs[0]);
    let head = &raw[..raw.find("\r\n\r\n").expect("a header block")];
    let has = |h: &str| head.lines().any(|l| l.eq_ignore_ascii_case(h));
    let mime = head
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("mime-version:"))
        .count();
    assert_eq!(mime, 1, "{head}");
    assert!(has("MIME-Version: 1.0"), "{head}");
    assert!(has("Content-Type: text/plain; charset=utf-8"), "{head}");
    let link = link_in(&msgs[0], &format!("{PUBLIC_URL}/confirm?"));
    assert!(link.contains("&expires="), "{link}");

    // Opening the link shows a button; pressing it activates.
    let page = get(&srv.local(&link));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("new.reader@example.net"));
    assert_eq!(
        site.subscriber_status("new.reader@example.net"),
        Some(SubscriberStatus::Pending)
    );
    let done = post_form(&srv.local(&link), &[]);
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("You are subscribed"));
    assert_eq!(
        site.subscriber_status("new.reader@example.net"),
        Some(SubscriberStatus::Active)
    );
    // Pressing it twice is harmless.
    assert_eq!(post_form(&srv.local(&link), &[]).status, 200);

    // A changed expiry breaks the MAC; an expired link is gone.
    let tampered = link.replace("&expires=", "&expires=9");
    assert_eq!(post_form(&srv.local(&tampered), &[]).status, 400);
    let past = chrono::Utc::now().timestamp() - 10;
    let t = sign(
        SECRET.as_bytes(),
        Purpose::Confirm { expires: past },
        "late@example.net",
    );
    let r = post_form(&srv.url(&format!("/confirm?token={t}&expires={past}")), &[]);
    assert_eq!(r.status, 410);
    assert_eq!(site.subscriber_status("late@example.net"), None);

    // Logs name no full address and no token.
    let log = srv.log();
    assert!(log.contains("…@example.net"), "{log}");
    assert!(!log.contains("new.reader@"), "{log}");
    let token = link
        .split("token=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    assert!(!log.contains(token), "{log}");
}

#[test]
fn same_answer_for_new_pending_active_and_bounced() {
    let (sink, site) = site();
    site.add_active(&["act@example.net", "bounce@example.net"]);
    let mut s = site.store();
    s.subscriber_set_status("bounce@example.net", SubscriberStatus::Bounced)
        .unwrap();
    s.add_pending("pend@example.net", None).unwrap();
    drop(s);
    let srv = site.serve();
    let bodies: Vec<(u16, String)> = [
        "act@example.net",
        "bounce@example.net",
        "pend@example.net",
        "fresh@example.net",
    ]
    .iter()
    .map(|a| {
        let r = post_form(&srv.url("/subscribe"), &[("email", a)]);
        (r.status, r.body)
    })
    .collect();
    assert!(bodies.iter().all(|b| *b == bodies[0]), "{bodies:?}");
    assert_eq!(bodies[0].0, 200);

    // Mail only for the pending and the new address; a bounced one is not mailed again.
    sink.wait_for(2);
    std::thread::sleep(Duration::from_millis(500));
    let mut got = sink.recipients();
    got.sort();
    assert_eq!(got, ["fresh@example.net", "pend@example.net"]);
    assert_eq!(
        site.subscriber_status("act@example.net"),
        Some(SubscriberStatus::Active)
    );
    assert_eq!(
        site.subscriber_status("bounce@example.net"),
        Some(SubscriberStatus::Bounced)
    );
}

#[test]
fn unsubscribed_reader_can_come_back_but_old_links_cannot_bring_them_back() {
    let (sink, site) = site();
    let srv = site.serve();
    post_form(&srv.url("/subscribe"), &[("email", "ann@example.net")]);
    let first = link_in(&sink.wait_for(1)[0], &format!("{PUBLIC_URL}/confirm?"));
    assert_eq!(post_form(&srv.local(&first), &[]).status, 200);
    // The token's MAC covers only whole seconds: let the unsubscribe fall in a later one.
    std::thread::sleep(Duration::from_millis(1100));
    one_click(&srv.url(&format!(
        "/unsubscribe?token={}",
        unsubscribe_token("ann@example.net")
    )));
    let r = post_form(&srv.local(&first), &[]);
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(
        site.subscriber_status("ann@example.net"),
        Some(SubscriberStatus::Unsubscribed)
    );
    drop(srv);

    // A new sign-up an hour later mails a new link, and that one does subscribe again.
    site.sql(
        "UPDATE serve_confirm_mails SET last_sent_at = last_sent_at - 3601",
        &[],
    );
    std::thread::sleep(Duration::from_millis(1100));
    let srv = site.serve();
    post_form(&srv.url("/subscribe"), &[("email", "ann@example.net")]);
    let second = link_in(&sink.wait_for(2)[1], &format!("{PUBLIC_URL}/confirm?"));
    assert_ne!(first, second);
    assert_eq!(post_form(&srv.local(&second), &[]).status, 200);
    assert_eq!(
        site.subscriber_status("ann@example.net"),
        Some(SubscriberStatus::Active)
    );
}

#[test]
fn one_confirmation_mail_per_address_per_hour_across_restarts() {
    let (sink, site) = site();
    let srv = site.serve();
    for _ in 0..3 {
        let r = post_form(&srv.url("/subscribe"), &[("email", "ann@example.net")]);
        assert_eq!(r.status, 200);
    }
    sink.wait_for(1);
    drop(srv);
    let srv = site.serve();
    let r = post_form(&srv.url("/subscribe"), &[("email", "ann@example.net")]);
    assert_eq!(r.status, 200);
    // A second address after it proves the server got that far and mailed only that one.
    post_form(&srv.url("/subscribe"), &[("email", "bo@example.net")]);
    sink.wait_for(2);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.recipients(), ["ann@example.net", "bo@example.net"]);
}

#[test]
fn sign_ups_per_client_are_limited() {
    let (_sink, site) = site();
    let srv = site.serve();
    for i in 0..5 {
        let r = post_form(
            &srv.url("/subscribe"),
            &[("email", &format!("r{i}@example.net"))],
        );
        assert_eq!(r.status, 200, "sign-up {i}");
    }
    let r = post_form(&srv.url("/subscribe"), &[("email", "r5@example.net")]);
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("120"));
    assert_eq!(site.subscriber_status("r5@example.net"), None);
    // Without trust_forwarded_for a client cannot dodge the limit with a header.
    let r = post_form_from(
        &srv.url("/subscribe"),
        "198.51.100.7",
        &[("email", "r6@example.net")],
    );
    assert_eq!(r.status, 429);
}

#[test]
fn behind_a_proxy_the_forwarded_address_is_limited() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(dir.path(), 0.0);
    let site = TestSite::for_serve(dir, sink.port, "trust_forwarded_for = true", "");
    let srv = site.serve();
    for i in 0..5 {
        // A client-supplied first entry does not matter; the proxy's last one does.
        let r = post_form_from(
            &srv.url("/subscribe"),
            &format!("10.{i}.0.1, 203.0.113.5"),
            &[("email", &format!("p{i}@example.net"))],
        );
        assert_eq!(r.status, 200);
    }
    let r = post_form_from(
        &srv.url("/subscribe"),
        "203.0.113.5",
        &[("email", "p5@example.net")],
    );
    assert_eq!(r.status, 429);
    let r = post_form_from(
        &srv.url("/subscribe"),
        "203.0.113.6",
        &[("email", "p6@example.net")],
    );
    assert_eq!(r.status, 200);
}

#[test]
fn oversize_and_malformed_requests_get_clear_4xx() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(dir.path(), 0.0);
    // Every request comes "from" another client, so the sign-up limit stays out of the way.
    let site = TestSite::for_serve(dir, sink.port, "trust_forwarded_for = true", "");
    site.add_active(&["ann@example.net"]);
    let srv = site.serve();
    let n = std::cell::Cell::new(0u32);
    let post = |path: &str, ct: &str, body: &[u8]| {
        n.set(n.get() + 1);
        post_raw_from(&srv.url(path), &format!("192.0.2.{}", n.get()), ct, body)
    };
    let form = "application/x-www-form-urlencoded";
    let enc = |fields: &[(&str, &str)]| {
        fields
            .iter()
            .map(|(k, v)| format!("{k}={}", url_encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    };

    let big = format!("email=a%40example.net&name={}", "x".repeat(9000));
    assert_eq!(
        post_oversize(&srv.base, "/subscribe", form, big.as_bytes()),
        413
    );
    let path = format!(
        "/unsubscribe?token={}",
        unsubscribe_token("ann@example.net")
    );
    assert_eq!(
        post_oversize(&srv.base, &path, form, &vec![b'a'; 100_000]),
        413
    );
    assert_eq!(
        site.subscriber_status("ann@example.net"),
        Some(SubscriberStatus::Active)
    );

    let r = post(
        "/subscribe",
        "application/json",
        br#"{"email":"a@example.net"}"#,
    );
    assert_eq!(r.status, 415);
    for bad in [
        "not-an-address",
        "a@b",
        "<script>alert(1)</script>@example.net",
        "a@example.net\r\nBcc: victim@example.com",
        "",
    ] {
        let r = post("/subscribe", form, enc(&[("email", bad)]).as_bytes());
        assert_eq!(r.status, 400, "{bad:?}");
        assert!(!r.body.contains("<script>alert"), "echoed: {}", r.body);
    }
    let long_name = "n".repeat(101);
    let r = post(
        "/subscribe",
        form,
        enc(&[("email", "ok@example.net"), ("name", &long_name)]).as_bytes(),
    );
    assert_eq!(r.status, 400);
    assert_eq!(post("/healthz", "text/plain", b"").status, 405);
    assert_eq!(site.subscriber_status("ok@example.net"), None);
    // The hidden field catches form-filling bots: same answer, nothing recorded or mailed.
    let r = post(
        "/subscribe",
        form,
        enc(&[
            ("email", "bot@example.net"),
            ("website", "http://spam.example"),
        ])
        .as_bytes(),
    );
    assert_eq!(r.status, 200);
    assert_eq!(site.subscriber_status("bot@example.net"), None);
    std::thread::sleep(Duration::from_millis(300));
    assert!(sink.messages().is_empty());
}

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[test]
fn configuration_problems_stop_the_server_before_it_listens() {
    let (_sink, site) = site();
    let text = std::fs::read_to_string(&site.config).unwrap();
    std::fs::write(
        &site.config,
        text.replace(&format!("public_url = \"{PUBLIC_URL}\""), ""),
    )
    .unwrap();
    let out = site.cmd().args(["serve"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("serve.public_url is not set"));

    let out = site
        .cmd()
        .env_remove("TECHSHACK_SECRET")
        .args(["serve"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TECHSHACK_SECRET"));
}

#[test]
fn stops_cleanly_on_sigterm() {
    let (_sink, site) = site();
    let srv = site.serve();
    assert_eq!(get(&srv.url("/healthz")).status, 200);
    let st = srv.stop();
    assert!(st.success(), "{st:?}");
    // Ctrl-C in a terminal: the same clean stop.
    let srv = site.serve();
    srv.signal("-INT");
    let st = srv.wait_exit(Duration::from_secs(10));
    assert!(st.success(), "{st:?}");
}

/// The start of a request whose headers never end.
const HALF_REQUEST: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: news.example.org\r\nX-Slow: ";

#[test]
fn clients_that_never_finish_their_headers_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(dir.path(), 0.0);
    let site = TestSite::for_serve(dir, sink.port, "header_timeout_secs = 1", "");
    let srv = site.serve();

    // Stops after half a request line.
    let mut stalled = raw_client(srv.addr(), b"GET /heal");
    // Sends nothing at all.
    let mut silent = raw_client(srv.addr(), b"");
    // Slowloris: a byte of header every 100 ms, which never completes the headers.
    let mut trickle = raw_client(srv.addr(), HALF_REQUEST);
    let mut writer = trickle.try_clone().unwrap();
    let dripping = std::thread::spawn(move || {
        use std::io::Write;
        let t = std::time::Instant::now();
        while t.elapsed() < Duration::from_secs(30) {
            if writer.write_all(b"a").is_err() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    });
    // Kept alive after one answered request, then idle.
    let mut idle = raw_client(
        srv.addr(),
        b"GET /healthz HTTP/1.1\r\nHost: news.example.org\r\n\r\n",
    );

    for (name, s) in [
        ("stalled", &mut stalled),
        ("silent", &mut silent),
        ("trickling", &mut trickle),
    ] {
        let got = read_until_closed(s, Duration::from_secs(15));
        assert_eq!(
            got.as_deref(),
            Some(&b""[..]),
            "the {name} client should be closed without an answer"
        );
    }
    assert!(dripping.join().unwrap(), "writes should fail once closed");
    let got = read_until_closed(&mut idle, Duration::from_secs(15))
        .expect("the idle kept-alive connection should be closed");
    assert_eq!(
        status_of(&got),
        Some(200),
        "{}",
        String::from_utf8_lossy(&got)
    );

    // The server itself carries on.
    assert_eq!(get(&srv.url("/healthz")).status, 200);
    assert!(srv.stop().success());
}

#[test]
fn stalled_clients_do_not_hold_up_others() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(dir.path(), 0.0);
    // All from one address here: above the per-client cap, the server's own limits show.
    let site = TestSite::for_serve(
        dir,
        sink.port,
        "header_timeout_secs = 60\nmax_connections_per_client = 64",
        "",
    );
    let srv = site.serve();
    let mut stalled: Vec<_> = (0..20)
        .map(|_| raw_client(srv.addr(), HALF_REQUEST))
        .collect();
    for _ in 0..5 {
        let r = get(&srv.url("/healthz"));
        assert_eq!(r.status, 200);
        assert_eq!(r.body, "ok\n");
    }
    // Still open: the requests above were served alongside them, not after them.
    for s in &mut stalled {
        assert_eq!(read_until_closed(s, Duration::from_millis(200)), None);
    }
    // The header timeout is not a request timeout: a client that finishes in time is
    // answered.
    {
        use std::io::Write;
        let s = &mut stalled[0];
        s.write_all(b"1\r\nConnection: close\r\n\r\n").unwrap();
        let got = read_until_closed(s, Duration::from_secs(15)).expect("an answer, then close");
        assert_eq!(
            status_of(&got),
            Some(200),
            "{}",
            String::from_utf8_lossy(&got)
        );
    }
    assert!(srv.stop().success());
}

#[test]
fn beyond_max_connections_new_clients_wait_for_a_free_slot() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(dir.path(), 0.0);
    let site = TestSite::for_serve(
        dir,
        sink.port,
        "header_timeout_secs = 60\nmax_connections = 1",
        "",
    );
    let srv = site.serve();
    let mut first = raw_client(srv.addr(), HALF_REQUEST);
    let mut second = raw_client(
        srv.addr(),
        b"GET /healthz HTTP/1.1\r\nHost: news.example.org\r\nConnection: close\r\n\r\n",
    );
    // The only slot is taken, so the complete request is not even accepted yet.
    assert_eq!(
        read_until_closed(&mut second, Duration::from_secs(2)),
        None,
        "the second connection was served beyond max_connections"
    );
    first.write_all(b"1\r\nConnection: close\r\n\r\n").unwrap();
    let got = read_until_closed(&mut first, Duration::from_secs(15)).expect("an answer");
    assert_eq!(
        status_of(&got),
        Some(200),
        "{}",
        String::from_utf8_lossy(&got)
    );
    // Its slot is free now.
    let got = read_until_closed(&mut second, Duration::from_secs(15)).expect("an answer");
    assert_eq!(
        status_of(&got),
        Some(200),
        "{}",
        String::from_utf8_lossy(&got)
    );
    let log = srv.log();
    assert!(log.contains("all 1 connection slots are in use"), "{log}");
    assert!(srv.stop().success());
}

const GET_CLOSE: &[u8] =
    b"GET /healthz HTTP/1.1\r\nHost: news.example.org\r\nConnection: close\r\n\r\n";

#[test]
fn one_client_cannot_hold_more_than_its_share_of_connections() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(dir.path(), 0.0);
    let site = TestSite::for_serve(
        dir,
        sink.port,
        "header_timeout_secs = 60\nmax_connections = 9\nmax_connections_per_client = 8",
        "",
    );
    let srv = site.serve();
    // One slot beyond that client's eight: connections it is refused must not take it.
    let one: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    // Eight connections of one client: four kept alive after an answer, four mid-headers.
    let mut held: Vec<_> = (0..8)
        .map(|i| {
            if i % 2 == 0 {
                let mut s = raw_client_from(
                    one,
                    srv.addr(),
                    b"GET /healthz HTTP/1.1\r\nHost: news.example.org\r\n\r\n",
                );
                let mut buf = [0u8; 1024];
                s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
                let n = std::io::Read::read(&mut s, &mut buf).expect("an answer");
                assert_eq!(status_of(&buf[..n]), Some(200));
                s
            } else {
                raw_client_from(one, srv.addr(), HALF_REQUEST)
            }
        })
        .collect();
    // A ninth from the same address is closed unanswered, at once.
    for _ in 0..3 {
        let mut ninth = raw_client_from(one, srv.addr(), GET_CLOSE);
        let got = read_until_closed(&mut ninth, Duration::from_secs(5));
        assert_eq!(
            got.as_deref(),
            Some(&b""[..]),
            "the ninth connection of one client was served"
        );
    }
    // Another client is answered promptly, more than once.
    let other: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    for _ in 0..3 {
        let t = Instant::now();
        let mut s = raw_client_from(other, srv.addr(), GET_CLOSE);
        let got = read_until_closed(&mut s, Duration::from_secs(5)).expect("an answer");
        assert_eq!(
            status_of(&got),
            Some(200),
            "{}",
            String::from_utf8_lossy(&got)
        );
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }
    // The held connections keep working.
    for (i, s) in held.iter_mut().enumerate() {
        let rest: &[u8] = if i % 2 == 0 {
            GET_CLOSE
        } else {
            b"1\r\nConnection: close\r\n\r\n"
        };
        s.write_all(rest).unwrap();
        let got = read_until_closed(s, Duration::from_secs(15)).expect("an answer, then close");
        let text = String::from_utf8_lossy(&got);
        assert_eq!(status_of(&got), Some(200), "connection {i}: {text}");
        assert!(text.ends_with("ok\n"), "connection {i}: {text}");
    }
    // Closed, they free the client's places.
    let t = Instant::now();
    loop {
        let mut s = raw_client_from(one, srv.addr(), GET_CLOSE);
        let got = read_until_closed(&mut s, Duration::from_secs(5)).unwrap_or_default();
        if status_of(&got) == Some(200) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "still capped after closing"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The warning may be written just after the refused connection closed.
    let t = Instant::now();
    while !srv.log().contains("serve.max_connections_per_client") {
        assert!(t.elapsed() < Duration::from_secs(5), "{}", srv.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(srv.stop().success());
}

#[test]
fn sigterm_finishes_requests_under_way_and_drops_stalled_clients() {
    use std::io::Write;
    let (_sink, site) = {
        let dir = tempfile::tempdir().unwrap();
        let sink = Sink::start(dir.path(), 0.0);
        let site = TestSite::for_serve(dir, sink.port, "header_timeout_secs = 60", "");
        (sink, site)
    };
    site.add_active(&["ann@example.net"]);
    let srv = site.serve();
    let addr = srv.addr().to_string();

    let mut stalled = raw_client(&addr, HALF_REQUEST);
    // A one-click POST whose headers are in but whose body is still coming.
    let body = b"List-Unsubscribe=One-Click";
    let head = format!(
        "POST /unsubscribe?token={} HTTP/1.1\r\nHost: news.example.org\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        unsubscribe_token("ann@example.net"),
        body.len()
    );
    let mut under_way = raw_client(&addr, head.as_bytes());
    under_way.write_all(&body[..4]).unwrap();
    // A kept-alive connection between requests.
    let mut idle = raw_client(
        &addr,
        b"GET /healthz HTTP/1.1\r\nHost: news.example.org\r\n\r\n",
    );
    // Wait for the answer so that the connection is idle, not mid-request, at SIGTERM.
    {
        let mut buf = [0u8; 1024];
        idle.set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let n = std::io::Read::read(&mut idle, &mut buf).expect("an answer on the idle connection");
        assert_eq!(status_of(&buf[..n]), Some(200));
    }

    srv.terminate();
    // New connections are refused once the listener is closed.
    let t = std::time::Instant::now();
    while std::net::TcpStream::connect(&addr).is_ok() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "serve still accepts connections after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The stalled and the idle client are closed at once, not after the 60 s header timeout.
    for (name, s) in [("stalled", &mut stalled), ("idle", &mut idle)] {
        assert_eq!(
            read_until_closed(s, Duration::from_secs(10)).as_deref(),
            Some(&b""[..]),
            "the {name} connection should close on SIGTERM"
        );
    }
    // The request under way completes.
    under_way.write_all(&body[4..]).unwrap();
    let got =
        read_until_closed(&mut under_way, Duration::from_secs(15)).expect("an answer, then close");
    let text = String::from_utf8_lossy(&got);
    assert_eq!(status_of(&got), Some(200), "{text}");
    assert!(text.contains("You are unsubscribed"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    let st = srv.wait_exit(Duration::from_secs(10));
    assert!(st.success(), "{st:?}");
    assert_eq!(
        site.subscriber_status("ann@example.net"),
        Some(SubscriberStatus::Unsubscribed)
    );
}

#[test]
fn a_client_that_never_reads_its_responses_loses_its_slot() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(dir.path(), 0.0);
    let site = TestSite::for_serve(
        dir,
        sink.port,
        "header_timeout_secs = 1\nmax_connections = 1",
        "",
    );
    let srv = site.serve();
    // Pipelined requests whose answers fill every socket buffer on the way back, since this
    // client reads nothing: the server ends up blocked in a write.
    let mut hog = std::net::TcpStream::connect(srv.addr()).unwrap();
    let mut hog_writer = hog.try_clone().unwrap();
    std::thread::spawn(move || {
        let req = b"GET /subscribe HTTP/1.1\r\nHost: news.example.org\r\n\r\n";
        for _ in 0..40_000 {
            if hog_writer.write_all(req).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_secs(2));
    let mut next = raw_client(
        srv.addr(),
        b"GET /healthz HTTP/1.1\r\nHost: news.example.org\r\nConnection: close\r\n\r\n",
    );
    let got = read_until_closed(&mut next, Duration::from_secs(30))
        .expect("served once the stalled writer lost its slot");
    assert_eq!(
        status_of(&got),
        Some(200),
        "{}",
        String::from_utf8_lossy(&got)
    );
    // Reading now drains what was sent before the server gave up, then finds the end.
    let answers = read_until_closed(&mut hog, Duration::from_secs(30))
        .expect("the server closed the connection of the client that did not read");
    assert!(answers.starts_with(b"HTTP/1.1 200"));
    assert!(srv.stop().success());
}

/// An unsubscribe token of the form mailed before tokens were sealed, under `SECRET`.
fn old_form_token(address: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;
    use hmac::Mac;
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    m.update(b"unsubscribe\0");
    m.update(address.as_bytes());
    format!(
        "{}.{}",
        B64.encode(address),
        B64.encode(m.finalize().into_bytes())
    )
}

#[test]
fn links_carry_no_address_and_survive_a_secret_rotation() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;
    let (_sink, site) = site();
    site.add_active(&["ann@example.net", "bo@example.net", "cy@example.net"]);
    // Rotated: the new secret signs, the one that signed the mails already sent still verifies.
    let srv = site.serve_with(&[
        ("TECHSHACK_SECRET", "a brand new secret, long enough"),
        ("TECHSHACK_SECRET_PREVIOUS", SECRET),
    ]);
    let t = unsubscribe_token("ann@example.net");
    assert!(
        !t.contains(&B64.encode("ann@example.net")[..12]) && !t.contains("ann"),
        "{t}"
    );
    let r = one_click(&srv.url(&format!("/unsubscribe?token={t}")));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        site.subscriber_status("ann@example.net"),
        Some(SubscriberStatus::Unsubscribed)
    );
    // A link of the old form (the address in base64, then the MAC) keeps working.
    let old = old_form_token("bo@example.net");
    let r = one_click(&srv.url(&format!("/unsubscribe?token={old}")));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        site.subscriber_status("bo@example.net"),
        Some(SubscriberStatus::Unsubscribed)
    );
    // A token of a secret never configured is refused.
    let stranger = sign(
        b"some other secret, also long",
        Purpose::Unsubscribe,
        "cy@example.net",
    );
    let r = one_click(&srv.url(&format!("/unsubscribe?token={stranger}")));
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        site.subscriber_status("cy@example.net"),
        Some(SubscriberStatus::Active)
    );
}

#[test]
fn forged_sources_cannot_exceed_the_hourly_mail_budget() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(dir.path(), 0.0);
    let site = TestSite::for_serve(
        dir,
        sink.port,
        "trust_forwarded_for = true\nconfirm_mails_per_hour = 3",
        "",
    );
    let srv = site.serve();
    // Each from its own forged IPv6 /64: the per-client limit never applies.
    for i in 0..8 {
        let r = post_form_from(
            &srv.url("/subscribe"),
            &format!("2001:db8:{i:x}::1"),
            &[("email", &format!("f{i}@example.net"))],
        );
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body.contains("Check your inbox"));
    }
    sink.wait_for(3);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.recipients().len(), 3, "{:?}", sink.recipients());
    assert!(
        srv.log().contains("confirm_mails_per_hour"),
        "{}",
        srv.log()
    );
    // The budget spent, a real client still gets its answer at once.
    let t = std::time::Instant::now();
    let r = post_form_from(
        &srv.url("/subscribe"),
        "192.0.2.10",
        &[("email", "real@example.net")],
    );
    assert_eq!(r.status, 200);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

/// A sign-up made while the SMTP server is down is not lost: its mail waits in the state,
/// goes out once the server is back (after the restart of `serve` too), and greets by name.
#[test]
fn a_sign_up_while_smtp_is_down_is_mailed_once_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let spool_dir = dir.path().join("sink");
    std::fs::create_dir_all(&spool_dir).unwrap();
    // Take a free port for the SMTP server, then leave it closed.
    let port = crate::support::free_port();
    let site = TestSite::for_serve(dir, port, "", "");
    let srv = site.serve();
    let r = post_form(
        &srv.url("/subscribe"),
        &[("email", "late@example.net"), ("name", "Late Reader")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Check your inbox"));
    // The first try fails: the mail stays queued.
    let t = std::time::Instant::now();
    while !srv.log().contains("could not mail the confirmation link") {
        assert!(t.elapsed().as_secs() < 15, "{}", srv.log());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(site.store().queued_confirmations().unwrap(), 1);
    // serve restarts while the mail waits; then the SMTP server comes up.
    drop(srv);
    let srv = site.serve();
    let sink = Sink::start_on(&spool_dir, 0.0, port);
    // A try made while the sink was still starting backs off again (5 s, then 15 s, then
    // 60 s): on a loaded machine the mail may wait out two more backoffs.
    let msgs = sink.wait_for_within(1, Duration::from_secs(100));
    assert_eq!(sink.recipients(), ["late@example.net"], "{}", srv.log());
    let text = String::from_utf8_lossy(&msgs[0]);
    assert!(text.contains("Hello Late Reader,"), "{text}");
    let link = link_in(&msgs[0], &format!("{PUBLIC_URL}/confirm?"));
    assert_eq!(post_form(&srv.local(&link), &[]).status, 200);
    assert_eq!(
        site.subscriber_status("late@example.net"),
        Some(SubscriberStatus::Active)
    );
    let t = std::time::Instant::now();
    while site.store().queued_confirmations().unwrap() != 0 {
        assert!(t.elapsed().as_secs() < 10, "the sent mail stays queued");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Exactly one mail: nothing is sent twice.
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(sink.messages().len(), 1);
}

/// With `welcome.txt` (and `welcome.html`) in `templates.dir`, a confirmed subscriber gets a
/// welcome mail, once, greeting them by name and carrying a working unsubscribe link.
#[test]
fn a_confirmed_subscriber_is_welcomed_when_the_site_has_a_welcome_template() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(dir.path(), 0.0);
    let site = TestSite::for_serve(dir, sink.port, "", "[templates]\ndir = \"tpl\"\n")
        .file(
            "tpl/welcome.txt",
            "Hello {{ name }}, welcome to {{ site.title }}.\nLeave: {{ unsubscribe_url }}\n",
        )
        .file(
            "tpl/welcome.html",
            "<p>Hello {{ name }}, welcome to {{ site.title }}.</p>",
        );
    let srv = site.serve();
    let r = post_form(
        &srv.url("/subscribe"),
        &[("email", "new@example.net"), ("name", "Ann <b>")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let link = link_in(&sink.wait_for(1)[0], &format!("{PUBLIC_URL}/confirm?"));
    assert_eq!(post_form(&srv.local(&link), &[]).status, 200);
    let msgs = sink.wait_for(2);
    let welcome = mail_parser::MessageParser::default()
        .parse(&msgs[1])
        .unwrap();
    assert_eq!(welcome.subject(), Some("Welcome to Test Digest"));
    let text = welcome.body_text(0).unwrap().to_string();
    assert!(
        text.contains("Hello Ann <b>, welcome to Test Digest."),
        "{text}"
    );
    let html = welcome.body_html(0).unwrap().to_string();
    assert!(html.contains("Hello Ann &lt;b&gt;"), "{html}");
    // The link in it unsubscribes.
    let leave = link_in(&msgs[1], &format!("{PUBLIC_URL}/unsubscribe?"));
    assert_eq!(post_form(&srv.local(&leave), &[]).status, 200);
    assert_eq!(
        site.subscriber_status("new@example.net"),
        Some(SubscriberStatus::Unsubscribed)
    );
    // Pressing the confirmation again welcomes nobody twice.
    post_form(&srv.local(&link), &[]);
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(sink.messages().len(), 2);
}
