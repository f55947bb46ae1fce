//! Mistakes an editor makes in an issue that parse fine: a misspelled front matter key
//! (`pubished: false` would publish and mail a draft) and the placeholder text `new` writes.

use std::process::Output;

use crate::support::TestSite;

fn site(issue: &str) -> TestSite {
    // Port 9 (discard) is never reached: every case here stops or writes files before that.
    TestSite::for_serve(tempfile::tempdir().expect("temp dir"), 9, "", "")
        .issue("2026-11-23.md", issue)
}

fn run(site: &TestSite, args: &[&str]) -> (i32, String) {
    let o: Output = site.cmd().args(args).output().expect("run techshack");
    (
        o.status.code().expect("exit code"),
        String::from_utf8(o.stderr).expect("UTF-8"),
    )
}

const TYPO: &str = "---\ntitle: Typo\npubished: false\n---\n\n## An article\n\n[a.org](https://a.org/x)\n\nNotes.\n";
const WARNING: &str =
    "2026-11-23.md:3:1: warning: unknown key `pubished`: did you mean `published`?";

#[test]
fn a_misspelled_key_is_a_located_warning_in_check_build_and_send() {
    let s = site(TYPO);
    let (code, err) = run(&s, &["check"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(WARNING), "{err}");
    assert!(err.ends_with(", 1 warning\n"), "{err}");

    let out = s.path("out");
    let (code, err) = run(&s, &["build", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(WARNING), "{err}");

    let eml = s.path("eml");
    let (code, err) = run(
        &s,
        &["send", "2026-11-23", "--dry-run", eml.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(WARNING), "{err}");
    // A key far from every known one stays allowed and silent.
    let s = site("---\ntitle: Fine\nseries: infra\n---\n\n## An article\n\n[a.org](https://a.org/x)\n\nNotes.\n");
    let (code, err) = run(&s, &["check"]);
    assert_eq!(
        (code, err.as_str()),
        (0, "checked 1 issue: 0 errors, 0 warnings\n")
    );
}

#[test]
fn send_refuses_an_issue_that_still_holds_the_template_text() {
    let s = TestSite::for_serve(tempfile::tempdir().expect("temp dir"), 9, "", "");
    let (code, err) = run(
        &s,
        &["new", "--date", "2026-11-23", "--title", "Placeholder"],
    );
    assert_eq!(code, 0, "{err}");
    let path = s.path("issues/2026-11-23.md");
    let text = std::fs::read_to_string(&path).expect("the new issue");
    std::fs::write(&path, text.replace("published: false", "published: true")).unwrap();

    let (code, err) = run(&s, &["check"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("2026-11-23.md:7:4: warning: the issue still holds the placeholder text of templates/issue.md (`The title of the first article`)"),
        "{err}"
    );
    let (code, err) = run(&s, &["send", "2026-11-23"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("issues/2026-11-23.md: the issue still holds the placeholder text of templates/issue.md"),
        "{err}"
    );
    let (code, err) = run(&s, &["send", "--latest"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("error: not sending "), "{err}");
    assert!(
        err.contains("issues/2026-11-23.md: the issue still holds"),
        "{err}"
    );
    assert!(!s.db().exists(), "a refused send opened the state file");
}
