//! The Python of the test venv that `scripts/setup-test-deps` makes (aiosmtpd, dkimpy and
//! friends). Shared by every test crate that runs a Python helper.

use std::path::{Path, PathBuf};

/// The venv's Python: the tests fail, never skip, when `scripts/setup-test-deps` was not run.
pub fn python() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup-test-deps to install the Python test helpers (aiosmtpd, dkimpy)",
        p.display()
    );
    p
}
