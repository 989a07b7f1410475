//! The "Create an API Only User" flow, done on a running sandbox's data directory.

use reqwest::StatusCode;
use roster_sandbox::marketo::admin::{Admin, RoleAt};

use super::harness::*;

#[tokio::test]
async fn create_role_user_and_service_while_running() {
    let sb = Sandbox::start().await;
    let admin = Admin::open(sb.dir.path()).await.unwrap();
    let role_id = admin
        .create_role(
            "Provisioning API",
            "For Roster",
            &[
                "Access API".into(),
                "Access Users".into(),
                "Access User Management Api".into(),
            ],
            false,
        )
        .await
        .unwrap();
    assert!(role_id >= 1000);
    let role: RoleAt = "Provisioning API@Default".parse().unwrap();
    admin
        .create_api_user("provisioner@acme.example", "Pro", "Visioner", &[role])
        .await
        .unwrap();
    let creds = admin
        .create_service("Provisioner", "provisioner@acme.example", None, None)
        .await
        .unwrap();
    assert!(
        admin
            .services()
            .await
            .unwrap()
            .iter()
            .any(|s| s.client_id == creds.client_id)
    );

    // The running server sees them at once.
    let token = sb
        .token_for(&creds.client_id, creds.client_secret.expose())
        .await;
    let (status, roles) = sb.get(&token, "roles.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        roles
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "Provisioning API" && r["type"] == "custom")
    );
    let (_, me) = sb.get(&token, "provisioner%40acme.example/user.json").await;
    assert_eq!(me["apiOnly"], true);

    // Clear refusals.
    let err = admin
        .create_service("Bad", "grace.hopper@acme.example", None, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not an API-only user"), "{err}");
    let err = admin
        .create_api_user(
            "x@acme.example",
            "X",
            "Y",
            &["Nope@Default".parse().unwrap()],
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no role \"Nope\""), "{err}");
    let err = admin
        .create_api_user(
            "y@acme.example",
            "X",
            "Y",
            &["Admin@Default".parse().unwrap()],
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("AllZones"), "{err}");
    let err = admin
        .create_role("Provisioning API", "", &[], false)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("already exists"), "{err}");
    assert!(
        "no-at-sign"
            .parse::<RoleAt>()
            .unwrap_err()
            .contains("ROLE@WORKSPACE")
    );
    admin.close().await;
}

#[tokio::test]
async fn secrets_do_not_leak_through_debug() {
    let sb = Sandbox::start().await;
    let creds = sb.server.as_ref().unwrap().credentials().clone();
    let shown = format!("{creds:?}");
    assert!(!shown.contains(CLIENT_SECRET), "{shown}");
    assert!(shown.contains(CLIENT_ID));
}

#[tokio::test]
async fn reads_served_from_memory_see_changes_made_by_another_process() {
    let sb = Sandbox::start().await;
    let token = sb.token().await;
    let path = "later00001%40acme.example/user.json";
    // Read twice: the "not found" is now cached.
    for _ in 0..2 {
        let (status, body) = sb.get(&token, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    }
    // Another process (the admin tool's own connection) adds the user.
    let admin = Admin::open(sb.dir.path()).await.unwrap();
    admin
        .add_people(
            "later",
            "acme.example",
            1,
            &["Standard User@Default".parse().unwrap()],
        )
        .await
        .unwrap();
    admin.close().await;
    let (status, user) = sb.get(&token, path).await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["emailAddress"], "later00001@acme.example");
    // And this server's own writes are seen by its next read.
    let (status, _) = sb
        .post(
            &token,
            "later00001%40acme.example/roles/delete.json",
            serde_json::json!({"input": [{"accessRoleId": 2, "workspaceId": 1}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, user) = sb.get(&token, path).await;
    assert_eq!(user["userRoleWorkspaces"], serde_json::json!([]), "{user}");
}
