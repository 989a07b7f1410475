//! Adobe's own Python client, umapi-client 3.0.1, against the sandbox: user and group
//! queries, a Federated ID created and added to a product profile, test mode changing
//! nothing, a per-entry error reported on the right action, removal from the organization.
//!
//! `.ci/run` installs it (pinned) under `target/pyclients/umapi` and sets
//! ROSTER_REQUIRE_PYCLIENTS=1. Elsewhere, without it, this test says so and checks nothing.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use super::harness::{Adobe, CLIENT_ID, CLIENT_SECRET, ORG};

fn library() -> Option<PathBuf> {
    crate::python_libraries::installed(&["umapi/umapi_client"]).map(|dir| dir.join("umapi"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adobes_umapi_client_queries_creates_tests_and_removes() {
    let Some(dir) = library() else { return };
    let a = Adobe::start().await;
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/adobe_umapi_client.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script)
        .args([&a.url, ORG, CLIENT_ID, CLIENT_SECRET])
        .env("PYTHONPATH", &dir)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("python3 runs"))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(s["users"].as_array().unwrap().len(), 9);
    assert_eq!(
        s["groups"]["Marketo Engage - Production"],
        "PRODUCT_PROFILE"
    );
    assert_eq!(s["groups"]["_org_admin"], "SYSADMIN_GROUP");
    assert_eq!(s["production"].as_array().unwrap().len(), 7);
    assert_eq!(s["grace"]["email"], "grace.hopper@acme.example");
    assert_eq!(s["after_test_mode"], json!({}), "test mode created nobody");
    assert_eq!(s["created"]["type"], "federatedID");
    assert_eq!(
        s["created"]["groups"],
        json!(["Marketo Engage - Production"])
    );
    assert_eq!(
        s["batch_counts"],
        json!([0, 3, 2]),
        "three sent, two completed"
    );
    assert_eq!(
        s["batch_errors"],
        json!([[], ["error.group.not_found"], []]),
        "the error is the second action's"
    );
    assert_eq!(s["grace_after"], json!(["Marketo Engage - Production"]));
    assert_eq!(s["after_remove"], json!({}));
    assert_eq!(s["ghost_counts"], json!([0, 1, 1]));
    // And the sandbox agrees with what the client saw.
    assert!(a.user("new.hire@acme.example").await.is_none());
    assert_eq!(
        a.groups_of("linus.torvalds@acme.example").await,
        ["Marketo Engage - Production"]
    );
}
