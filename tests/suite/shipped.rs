//! What ships with the repository works as the README says: the default configuration, the
//! recipes, the man page and the example configurations.

use crate::support::{self, repo};

/// The README's first command, `techshack build` in the repository with its own config,
/// prints its one line of progress and no warning; `-q` prints nothing at all.
#[test]
fn the_shipped_config_builds_without_a_warning() {
    let out = tempfile::tempdir().expect("temp dir");
    let run = |quiet: bool| {
        let mut cmd = support::techshack();
        cmd.current_dir(repo())
            .env_remove("TECHSHACK_CONFIG")
            .args(quiet.then_some("-q"))
            .arg("build")
            .arg("--out")
            .arg(out.path().join("public"));
        let o = cmd.output().expect("run techshack");
        assert!(o.status.success(), "{o:?}");
        String::from_utf8(o.stderr).expect("UTF-8")
    };
    let err = run(false);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("wrote "), "{err}");
    assert!(!err.contains("warning"), "{err}");
    assert_eq!(run(true), "");

    let o = support::techshack()
        .current_dir(repo())
        .env_remove("TECHSHACK_CONFIG")
        .arg("check")
        .output()
        .expect("run techshack");
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        String::from_utf8(o.stderr).expect("UTF-8"),
        "checked 1 issue: 0 errors, 0 warnings\n"
    );
}
