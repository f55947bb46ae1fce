//! Per-recipient cost of composing the newsletter: `cargo bench --bench compose`.
//!
//! Builds the seed issue's email once, then times `Composer::message` and
//! `Composer::message_bytes` (what `send` hands to SMTP) over many recipients and prints the
//! median of several rounds in microseconds per message, and the message size.

use std::time::Instant;

use chrono::DateTime;
use pulldown_cmark::{Options, Parser};
use techshack::config::Config;
use techshack::mail::compose::{Composer, Recipient};
use techshack::model::Issue;

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = Config::load(&root.join("config/techshack.toml")).expect("config");
    let md = std::fs::read_to_string(root.join("issues/2019-01.md")).expect("seed issue");
    let body = md.splitn(3, "---\n").nth(2).unwrap_or(&md);
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, Parser::new_ext(body, Options::ENABLE_TABLES));
    let date = DateTime::parse_from_rfc3339("2018-12-31T09:00:00+00:00").expect("date");
    let issue = Issue {
        path: "issues/2019-01.md".into(),
        slug: "2019-01".into(),
        id: config.issue_id("2019-01"),
        url: config.issue_url("2019-01"),
        title: "EnqueueZero Techshack 2019-01".into(),
        description: None,
        date,
        updated: date,
        draft: false,
        lang: None,
        tags: vec![],
        number: None,
        html,
        page_html: None,
        text: Some(techshack::render::text::render(Parser::new_ext(
            body,
            Options::ENABLE_TABLES,
        ))),
        feed: Default::default(),
        items: vec![],
    };
    let secret = b"benchmark secret, at least 16 bytes";
    let t0 = Instant::now();
    let composer = Composer::new(&config, &issue, secret).expect("composer");
    let setup = t0.elapsed();
    let recipients: Vec<Recipient> = (0..2000)
        .map(|i| Recipient {
            address: format!("subscriber{i}@example.org").parse().unwrap(),
            name: (i % 2 == 0).then(|| format!("Subscriber Number {i}")),
        })
        .collect();
    let size = composer
        .message_bytes(&recipients[0])
        .expect("message")
        .len();

    let mut msg_round = Vec::new();
    let mut bytes_round = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        for r in &recipients {
            std::hint::black_box(composer.message(r).expect("message"));
        }
        msg_round.push(t.elapsed().as_secs_f64() * 1e6 / recipients.len() as f64);
        let t = Instant::now();
        for r in &recipients {
            std::hint::black_box(composer.message_bytes(r).expect("bytes"));
        }
        bytes_round.push(t.elapsed().as_secs_f64() * 1e6 / recipients.len() as f64);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    println!(
        "composer setup (render + css-inline, once per issue): {:.1} ms",
        setup.as_secs_f64() * 1e3
    );
    println!("message size: {size} bytes");
    println!(
        "message():       median {:.1} us/message",
        median(&mut msg_round)
    );
    println!(
        "message_bytes(): median {:.1} us/message",
        median(&mut bytes_round)
    );
}
