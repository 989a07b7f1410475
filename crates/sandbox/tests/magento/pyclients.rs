//! Two Python Magento clients written by others, PyMagento and my-magento, log in, page the
//! customers and read one against the sandbox: evidence that it behaves like Magento to code
//! that was written against the real thing.
//!
//! `.ci/run` installs them (pinned) under `target/pyclients/{pymagento,my-magento}` and sets
//! ROSTER_REQUIRE_PYCLIENTS=1. Elsewhere, without them, this test says so and checks nothing.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use super::harness::{ADMIN, Magento, PASSWORD};

fn libraries() -> Option<PathBuf> {
    crate::python_libraries::installed(&["pymagento/magento", "my-magento/magento"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pymagento_and_my_magento_log_in_page_and_read_customers() {
    let Some(dir) = libraries() else { return };
    let m = Magento::start().await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/magento_clients.py");
    // my-magento writes log files into its working directory: keep them out of the source tree.
    let scratch = tempfile::tempdir().unwrap();
    for library in ["pymagento", "my-magento"] {
        let mut cmd = Command::new("python3");
        cmd.current_dir(scratch.path())
            .arg(&script)
            .args([library, &m.url, ADMIN, PASSWORD])
            .env("PYTHONPATH", dir.join(library))
            .env("PYTHONDONTWRITEBYTECODE", "1");
        let out = tokio::task::spawn_blocking(move || cmd.output().expect("python3 runs"))
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{library}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary: Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("{library}: {e}: {stdout}"));
        assert_eq!(summary["customers"], 40, "{library}: {summary}");
        let ids: Vec<i64> = summary["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert_eq!(
            ids,
            (1..=40).collect::<Vec<_>>(),
            "{library}: every customer once"
        );
        assert_eq!(summary["first_email"], "roni_cost@example.com", "{library}");
    }
}
