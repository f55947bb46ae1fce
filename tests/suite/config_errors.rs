//! A configuration file with several mistakes is reported in one run: every problem at its
//! line and column, with the key's name, in a user's words, and the likely intended key.

use crate::support::TestSite;

fn check(config: &str) -> (i32, String) {
    let site = TestSite::new().config(config).folder("issues");
    let o = site.cmd().arg("check").output().expect("run techshack");
    assert!(o.stdout.is_empty());
    (
        o.status.code().expect("exit code"),
        String::from_utf8(o.stderr).expect("UTF-8"),
    )
}

#[test]
fn four_mistakes_are_four_located_lines_in_one_run() {
    let (code, err) = check(
        "[site]\ntitle = \"T\"\nbaseurl = \"https://example.com\"\n\n\
         [feeds]\nlimit = \"20\"\n\n[feed]\npath = \"/\"\n\n[smtp]\nconcurency = 4\n",
    );
    assert_eq!(code, 1, "{err}");
    let lines: Vec<&str> = err.lines().collect();
    let path = lines[0].split(':').next().unwrap();
    assert!(path.ends_with("techshack.toml"), "{err}");
    let lines: Vec<String> = lines
        .iter()
        .map(|l| l.strip_prefix(path).unwrap_or(l).to_string())
        .collect();
    assert_eq!(
        lines,
        [
            ":3:1: error: site.base_url is missing: `baseurl` is not a key of [site]: did you mean `base_url`?",
            ":6:9: error: feeds.limit: expected a whole number, 0 or more, found the string \"20\"",
            ":8:2: error: unknown key or table `feed`: did you mean `feeds`?",
            ":12:1: error: unknown key `concurency` in [smtp]: did you mean `concurrency`?",
            "error: 4 errors found",
        ]
    );
}

#[test]
fn type_errors_missing_keys_and_bad_values_together() {
    let (code, err) = check(
        "[site]\ntitle = 3\nbase_url = \"https://e.com\"\nauthor = { email = \"a@e.com\" }\n\
         [issues]\ntime = \"9h\"\n[serve]\nmax_connections = -1\n\
         [[feeds.extra]]\nmatch = 4\n[feeds]\nlimit = 0\n",
    );
    assert_eq!(code, 1, "{err}");
    for want in [
        ":2:9: error: site.title: expected a string (in quotes), found the number 3",
        ":4:1: error: site.author.name is missing: it is required in [site.author]",
        ":6:8: error: issues.time: invalid time `9h`, expected HH:MM",
        ":8:19: error: serve.max_connections: expected a whole number, 0 or more, found the number -1",
        ":9:1: error: feeds.extra[0].name is missing: it is required in [feeds.extra]",
        ":10:9: error: feeds.extra[0].match: expected a string (in quotes), found the number 4",
        ":12:1: error: feeds.limit must be at least 1",
    ] {
        assert!(err.contains(want), "no `{want}` in\n{err}");
    }
    assert!(err.ends_with("error: 7 errors found\n"), "{err}");
    // A file that is not TOML is one error at its place.
    let (code, err) = check("[site\n");
    assert_eq!(code, 1);
    assert!(err.contains(":1:6: error: invalid table header"), "{err}");
}

#[test]
fn an_empty_inline_table_and_bad_extra_feeds_are_all_told_at_their_lines() {
    let (code, err) = check(
        "[site]\ntitle = \"T\"\nbase_url = \"https://e.com\"\nauthor = { }\n\
         [feeds]\nlimit = \"20\"\n\
         [[feeds.extra]]\nname = \"rust\"\nmatch = \"[abc\"\n\
         [[feeds.extra]]\nname = \"rust\"\nmatch = \"*-CN.md\"\n\
         [[feeds.extra]]\nname = \"items\"\nmatch = 5\n\
         [smtp]\nrate = \"fast\"\n",
    );
    assert_eq!(code, 1, "{err}");
    for want in [
        ":4:1: error: site.author.name is missing: it is required in [site.author]",
        ":6:9: error: feeds.limit: expected a whole number, 0 or more, found the string \"20\"",
        ":9:1: error: feeds.extra[0].match `[abc` (of the extra feed `rust`) is not a valid glob: ",
        ":11:1: error: feeds.extra[1].name `rust` appears twice",
        ":14:1: error: feeds.extra[2].name `items` must be letters, digits, `-` or `_`, and not a built-in feed's name",
        ":15:9: error: feeds.extra[2].match: expected a string (in quotes), found the number 5",
        ":17:8: error: smtp.rate: expected a number, found the string \"fast\"",
    ] {
        assert!(err.contains(want), "no `{want}` in\n{err}");
    }
    assert!(err.ends_with("error: 7 errors found\n"), "{err}");
}

#[test]
fn a_per_client_connection_cap_of_zero_is_refused() {
    let (code, err) = check(
        "[site]\ntitle = \"T\"\nbase_url = \"https://e.com\"\n\
         [serve]\nmax_connections_per_client = 0\n",
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("serve.max_connections_per_client must be between 1 and"),
        "{err}"
    );
    let (code, err) = check(
        "[site]\ntitle = \"T\"\nbase_url = \"https://e.com\"\n\
         [serve]\nmax_connections_per_client = 4\n",
    );
    assert_eq!(code, 0, "{err}");
}
