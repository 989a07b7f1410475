//! Python client libraries written by others, which tests run against the sandboxes.
//!
//! `.ci/run` installs them (pinned) under `target/pyclients/...` and sets
//! ROSTER_REQUIRE_PYCLIENTS=1, so CI cannot skip them. Elsewhere, without them, a test says
//! so and checks nothing.

use std::path::PathBuf;

/// The directory the libraries are installed under, if every one of `paths` (relative to
/// it) is there.
pub fn installed(paths: &[&str]) -> Option<PathBuf> {
    let dir = std::env::var_os("ROSTER_PYCLIENTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/pyclients")
        });
    if paths.iter().all(|p| dir.join(p).is_dir()) {
        return Some(dir);
    }
    assert!(
        std::env::var_os("ROSTER_REQUIRE_PYCLIENTS").is_none(),
        "ROSTER_REQUIRE_PYCLIENTS is set but {} lacks {}",
        dir.display(),
        paths.join(", ")
    );
    eprintln!(
        "python client test not run: install the clients as .ci/run does (pip install --target target/pyclients/...)"
    );
    None
}
