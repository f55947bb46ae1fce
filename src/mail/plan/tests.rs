use std::path::Path;

use super::*;
use crate::store::db::Backend;
use crate::store::testing::on_both;
use crate::store::DeliveryState;

fn config() -> Config {
    Config::parse(
        "[site]\ntitle = \"T\"\ndescription = \"D\"\nbase_url = \"https://example.com\"\n\
         author = { name = \"Ed\", email = \"ed@example.com\" }\n\
         [[feeds.extra]]\nname = \"zh\"\nmatch = \"*-CN.*\"\nlanguage = \"zh\"\n",
        Path::new("t/techshack.toml"),
    )
    .expect("test config")
}

fn at(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

const NOW: &str = "2026-06-01T12:00:00+00:00";

/// An issue through the real parser: `front` is extra front matter.
fn issue(config: &Config, slug: &str, date: &str, front: &str) -> Issue {
    let md = format!("---\ntitle: Issue {slug}\ndate: {date}\n{front}---\n\nBody.\n");
    let path = config.issues.dir.join(format!("{slug}.md"));
    let (issue, diagnostics) = crate::issue::parse_issue(config, &path, md.as_bytes());
    issue.unwrap_or_else(|| panic!("{slug}: {diagnostics:?}"))
}

fn issues(config: &Config) -> Vec<Issue> {
    vec![
        issue(config, "2026-04", "2026-04-01", ""),
        issue(config, "2026-05", "2026-05-01", ""),
        issue(config, "2026-05-CN", "2026-05-20", ""),
        issue(config, "2026-06-draft", "2026-05-25", "draft: true\n"),
        issue(config, "2026-07", "2026-07-01", ""),
    ]
}

#[test]
fn latest_is_the_newest_published_issue_of_the_main_feeds() {
    let c = config();
    let all = issues(&c);
    let latest = pick_latest(&c, &all, at(NOW)).unwrap().unwrap();
    assert_eq!(latest.slug, "2026-05");
    assert_eq!(pick_latest(&c, &all[..0], at(NOW)).unwrap(), None);
}

#[test]
fn a_draft_by_name_is_only_a_test_copy() {
    let c = config();
    let all = issues(&c);
    let (i, warning) = pick_slug(&c, &all, "2026-04", at(NOW), false).unwrap();
    assert_eq!((i.slug.as_str(), warning), ("2026-04", None));
    let e = pick_slug(&c, &all, "2026-06-draft", at(NOW), false).unwrap_err();
    assert!(e.to_string().contains("is a draft: publish it"), "{e}");
    let (_, warning) = pick_slug(&c, &all, "2026-07", at(NOW), true).unwrap();
    assert!(warning.unwrap().contains("dated in the future"));
    let e = pick_slug(&c, &all, "1999-01", at(NOW), true).unwrap_err();
    assert!(e.to_string().starts_with("no issue `1999-01`"), "{e}");
}

fn store_with_sends(backend: Backend, slugs: &[&str]) -> (crate::store::testing::Keep, Store) {
    let (d, mut s) = crate::store::testing::store(backend);
    s.add_active("a@x.org", None).unwrap();
    for slug in slugs {
        s.snapshot(slug).unwrap();
    }
    (d, s)
}

fn an_unfinished_send_is_judged_by_its_counts_and_its_issue(backend: Backend) {
    let c = config();
    let all = issues(&c);
    let (_d, s) = store_with_sends(backend, &["x"]);
    let waiting = s.counts("x").unwrap();
    assert_eq!(waiting.get(DeliveryState::Pending), 1);
    let now = at(NOW);
    assert_eq!(
        judge(&Counts::default(), None, now, 30),
        Unfinished::Complete
    );
    assert_eq!(judge(&waiting, None, now, 30), Unfinished::Missing);
    assert_eq!(
        judge(&waiting, Some(&all[3]), now, 30),
        Unfinished::NotPublished(&all[3])
    );
    assert_eq!(
        judge(&waiting, Some(&all[0]), now, 30),
        Unfinished::TooOld {
            issue: &all[0],
            days: 61
        }
    );
    assert_eq!(
        judge(&waiting, Some(&all[0]), now, 62),
        Unfinished::Finish(&all[0])
    );
}

fn latest_finishes_older_sends_oldest_first_and_skips_the_newest(backend: Backend) {
    let c = config();
    let all = issues(&c);
    let (_d, mut s) = store_with_sends(backend, &["2026-05", "gone", "2026-04"]);
    let found = unfinished(&mut s, &all, Some("2026-05"), at(NOW), 0, 90, 72).unwrap();
    let verdicts: Vec<_> = found
        .iter()
        .map(|u| (u.slug.as_str(), u.expired, u.verdict.clone()))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("2026-04", 0, Unfinished::Finish(&all[0])),
            ("gone", 0, Unfinished::Missing),
        ],
        "by snapshot time, then slug"
    );
    let plan = order(vec![&all[1], &all[0]], Some(&all[2]));
    let slugs: Vec<_> = plan.iter().map(|(i, n)| (i.slug.as_str(), *n)).collect();
    assert_eq!(
        slugs,
        [("2026-04", false), ("2026-05", false), ("2026-05-CN", true)]
    );
}

fn a_started_send_resumes_only_when_something_is_due(backend: Backend) {
    let (_d, mut s) = store_with_sends(backend, &["i"]);
    assert_eq!(resume(&mut s, "i", 0, 72).unwrap(), (0, Resume::Deliver));
    let lease = s.lease("i", 30, Default::default()).unwrap();
    let mut pages = s.due_pages("i", 0, lease.id()).unwrap();
    let id = pages.next_page(1).unwrap()[0].id;
    let w = s.writer(lease.id()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        assert!(w.handle().claim(id, 1_000).await.unwrap());
    });
    w.handle()
        .record(
            id,
            crate::store::Change::Deferred {
                reply: "451 later".into(),
                next_attempt_at: 5_000,
                attempts: 1,
            },
        )
        .unwrap();
    w.finish().unwrap();
    let (expired, r) = resume(&mut s, "i", 2_000, 72).unwrap();
    assert_eq!(expired, 0);
    assert!(matches!(r, Resume::NothingDue { next: 5_000, .. }), "{r:?}");
    // Past the age cap the deferred row fails, and the send is complete.
    let (expired, r) = resume(&mut s, "i", 1_000 + 73 * 3600, 72).unwrap();
    assert_eq!(expired, 1);
    assert!(matches!(r, Resume::Complete(_)), "{r:?}");
}

on_both!(
    an_unfinished_send_is_judged_by_its_counts_and_its_issue,
    latest_finishes_older_sends_oldest_first_and_skips_the_newest,
    a_started_send_resumes_only_when_something_is_due
);
