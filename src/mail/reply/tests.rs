use super::*;

fn at(phase: Phase, line: &str) -> Verdict {
    classify(&Reply::parse_line(line, phase))
}

fn rcpt(line: &str) -> Verdict {
    at(Phase::Rcpt, line)
}

fn v(fault: Fault, permanent: bool, bounce: bool) -> Verdict {
    Verdict {
        fault,
        permanent,
        bounce,
    }
}

#[test]
fn enhanced_codes_parse_only_at_the_start() {
    assert_eq!(
        Enhanced::parse("5.1.10 null MX"),
        Some(Enhanced {
            class: 5,
            subject: 1,
            detail: 10
        })
    );
    assert_eq!(
        Enhanced::parse("4.7.28 x").map(|e| e.to_string()),
        Some("4.7.28".into())
    );
    for bad in ["", "ok 5.1.1", "5.1", "5.1.1.1", "3.1.1 x", "5.a.1"] {
        assert_eq!(Enhanced::parse(bad), None, "{bad}");
    }
    let r = Reply::parse_line("550-5.1.1 gone", Phase::Rcpt);
    assert_eq!((r.code, r.enhanced.map(|e| e.detail)), (Some(550), Some(1)));
}

#[test]
fn x_1_1_no_such_mailbox_is_the_recipient_s_and_bounces() {
    assert_eq!(
        rcpt("550 5.1.1 <ann@example.net>: Recipient address rejected: User unknown"),
        v(Fault::Recipient, true, true)
    );
}

#[test]
fn x_1_2_x_1_3_x_1_6_x_1_10_bad_addresses_bounce() {
    for line in [
        "550 5.1.2 Host unknown",
        "553 5.1.3 Bad recipient address syntax",
        "550 5.1.6 Mailbox has moved",
        "550 5.1.10 Recipient address has null MX",
    ] {
        assert_eq!(rcpt(line), v(Fault::Recipient, true, true), "{line}");
    }
}

#[test]
fn x_2_1_mailbox_disabled_bounces() {
    assert_eq!(
        rcpt("550 5.2.1 The email account that you tried to reach is disabled"),
        v(Fault::Recipient, true, true)
    );
}

#[test]
fn a_5_1_0_naming_the_sender_is_the_sender_s() {
    // Postfix's reject_unlisted_sender, answered to RCPT.
    assert_eq!(
        rcpt("550 5.1.0 <news@example.org>: Sender address rejected: User unknown in local recipient table"),
        v(Fault::Sender, true, false)
    );
    // A 5.1.0 about the recipient fails the row but is too vague to bounce.
    assert_eq!(
        rcpt("550 5.1.0 <ann@example.net>: Recipient address rejected"),
        v(Fault::Recipient, true, false)
    );
    // At MAIL FROM, a 5.1.0 is always the sender's.
    assert_eq!(
        at(Phase::Mail, "550 5.1.0 Address rejected"),
        v(Fault::Sender, true, false)
    );
}

#[test]
fn x_1_7_and_x_1_8_are_the_sender_s() {
    assert_eq!(
        rcpt("553 5.1.7 The sender address is invalid"),
        v(Fault::Sender, true, false)
    );
    assert_eq!(
        rcpt("450 4.1.8 <news@example.org>: Sender address rejected: Domain not found"),
        v(Fault::Sender, false, false)
    );
    // A 5.1.1 whose text names the sender is not the recipient's either.
    assert_eq!(
        rcpt("550 5.1.1 <news@example.org>: Sender address rejected: User unknown"),
        v(Fault::Sender, true, false)
    );
}

#[test]
fn x_7_1_relay_access_denied_is_the_relay_s() {
    assert_eq!(
        rcpt("554 5.7.1 <ann@example.net>: Relay access denied"),
        v(Fault::Relay, true, false)
    );
    assert_eq!(
        rcpt("454 4.7.1 <ann@example.net>: Relay access denied"),
        v(Fault::Relay, false, false)
    );
}

#[test]
fn x_7_x_policy_denials_bounce_nobody() {
    for line in [
        "554 5.7.1 Service unavailable; Client host blocked using zen.spamhaus.org",
        "550 5.7.26 Unauthenticated email is not accepted from this domain",
        "550 5.7.25 The IP address sending this message does not have a PTR record",
    ] {
        assert_eq!(rcpt(line), v(Fault::Policy, true, false), "{line}");
    }
    // Content refused after the dot.
    assert_eq!(
        at(Phase::Content, "554 5.6.0 Message content rejected"),
        v(Fault::Content, true, false)
    );
    assert_eq!(
        at(Phase::Content, "552 5.3.4 Message size exceeds fixed limit"),
        v(Fault::Content, true, false)
    );
}

#[test]
fn auth_530_535_and_x_7_8_are_the_credentials() {
    assert_eq!(
        at(Phase::Mail, "530 5.7.0 Authentication required"),
        v(Fault::Auth, true, false)
    );
    assert_eq!(
        at(Phase::Auth, "535 5.7.8 Error: authentication failed"),
        v(Fault::Auth, true, false)
    );
    assert_eq!(
        rcpt("530 Must issue a STARTTLS command first"),
        v(Fault::Auth, true, false)
    );
    assert_eq!(
        rcpt("550 5.7.8 credentials invalid"),
        v(Fault::Auth, true, false)
    );
}

#[test]
fn a_554_greeting_refuses_the_client() {
    assert_eq!(
        at(Phase::Greeting, "554 5.7.1 No SMTP service here"),
        v(Fault::Policy, true, false)
    );
    assert_eq!(
        at(Phase::Greeting, "554 Access denied"),
        v(Fault::Policy, true, false)
    );
    assert_eq!(
        at(
            Phase::Greeting,
            "421 4.7.0 Too many connections, try again later"
        ),
        v(Fault::Rate, false, false)
    );
}

#[test]
fn rate_limits_slow_down() {
    for line in [
        "421 4.7.28 Our system has detected an unusual rate of unsolicited mail",
        "450 4.2.1 The user you are trying to contact is receiving mail at a rate that prevents additional messages",
        "451 4.7.0 Try again later",
        "452 Too many recipients received this hour",
    ] {
        assert_eq!(rcpt(line), v(Fault::Rate, false, false), "{line}");
    }
}

#[test]
fn greylisting_is_neither_a_rate_limit_nor_a_refusal() {
    for line in [
        "450 4.2.0 <ann@example.net>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/",
        "451 4.7.1 Greylisting in action, please come back later",
    ] {
        let verdict = rcpt(line);
        assert_eq!(verdict, v(Fault::Greylist, false, false), "{line}");
        assert!(!verdict.stops_the_send());
    }
}

#[test]
fn mailbox_full_and_routing_fail_without_bouncing() {
    assert_eq!(
        rcpt("552 5.2.2 Mailbox full"),
        v(Fault::Recipient, true, false)
    );
    assert_eq!(
        rcpt("550 5.4.4 Unable to route"),
        v(Fault::Recipient, true, false)
    );
}

#[test]
fn server_trouble_is_retried_and_paced_not_a_stop() {
    let verdict = rcpt("451 4.3.0 Try later");
    assert_eq!(verdict, v(Fault::Server, false, false));
    assert!(!verdict.stops_the_send());
    assert!(rcpt("554 5.3.2 System not accepting network messages").stops_the_send());
}

#[test]
fn replies_without_an_enhanced_code_go_by_code_and_phase() {
    assert_eq!(rcpt("550 No such user"), v(Fault::Recipient, true, false));
    assert_eq!(
        at(Phase::Mail, "553 sorry, that domain isn't allowed"),
        v(Fault::Sender, true, false)
    );
    assert_eq!(rcpt("554 relaying denied"), v(Fault::Relay, true, false));
    assert_eq!(at(Phase::Data, "554 no"), v(Fault::Content, true, false));
    assert_eq!(rcpt("451 local error"), v(Fault::Server, false, false));
}

#[test]
fn a_report_with_only_a_status_is_judged_by_it() {
    // A DSN's `Status: 5.1.1` without a diagnostic code.
    let r = Reply {
        code: None,
        enhanced: Enhanced::parse("5.1.1"),
        text: "",
        phase: Phase::Report,
    };
    assert_eq!(classify(&r), v(Fault::Recipient, true, true));
}

#[test]
fn which_refusals_stop_a_send() {
    assert!(!rcpt("550 5.1.1 no such user").stops_the_send());
    assert!(rcpt("550 5.1.0 <n@x.org>: Sender address rejected").stops_the_send());
    assert!(rcpt("554 5.7.1 Relay access denied").stops_the_send());
    assert!(!rcpt("421 4.7.28 rate").stops_the_send());
}

#[test]
fn clean_drops_control_characters_and_escape_sequences() {
    assert_eq!(
        clean("550 \u{1b}[31mred\u{1b}[0m text", &[]),
        "550 red text"
    );
    assert_eq!(
        clean(
            "550 \u{1b}]0;owned title\u{7}x \u{1b}]8;;http://e\u{1b}\\link",
            &[]
        ),
        "550 x link"
    );
    assert_eq!(clean("a\u{0}b\u{7f}c\u{9b}2Jd\r\ne", &[]), "abcd  e");
    assert_eq!(clean("x\u{202e}y", &[]), "xy");
}

#[test]
fn clean_masks_what_follows_auth_and_the_password_anywhere() {
    let secrets = secret_forms("bob", "hunter2-secret");
    assert_eq!(
        clean(
            "535 5.7.8 Error: authentication failed: AUTH PLAIN AGJvYgBodW50ZXIyLXNlY3JldA==",
            &secrets
        ),
        "535 5.7.8 Error: authentication failed: AUTH ***"
    );
    assert_eq!(
        clean("535 bad password hunter2-secret for bob", &secrets),
        "535 bad password *** for bob"
    );
    let b64 = secret_forms("bob", "hunter2-secret")[1].clone();
    assert_eq!(clean(&format!("535 got {b64}"), &secrets), "535 got ***");
    assert_eq!(clean("250 2.0.0 Ok", &secrets), "250 2.0.0 Ok");
    // "Authentication" is not the AUTH command.
    assert_eq!(
        clean("530 5.7.0 Authentication required", &secrets),
        "530 5.7.0 Authentication required"
    );
}
