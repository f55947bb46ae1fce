//! Mail that comes back after a send, through a real Postfix relay: techshack sends through
//! Postfix, Postfix relays to the fault-injecting test server, and Postfix's own bounce daemon
//! writes the delivery reports, delivered to a Maildir for the sender's domain.

use crate::support::postfix::Relay;
use crate::support::smtp::{Server, ISSUE};
use crate::support::TestSite;
use serde_json::json;
use techshack::inbound::{self, Action, Envelope, Kind};

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
        assert!(
            m.token_carriers.iter().any(|c| c == "digest@example.org"),
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
    let got = next_hop.counts();
    assert_eq!(got.get(&addrs[2]), Some(&1));
    assert_eq!(got.get(&addrs[3]), Some(&1));
    assert_eq!(got.get(&addrs[0]), None);
}
