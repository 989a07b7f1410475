use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::json;

use super::harness::*;

#[tokio::test]
async fn allusers_pages_over_active_users_only() {
    let sb = Sandbox::start().await;
    let token = sb.token().await;
    for i in 0..25 {
        assert_eq!(
            sb.invite_api_user(&token, &format!("bot{i:02}@acme.example"))
                .await
                .0,
            StatusCode::OK
        );
    }
    let (status, first) = sb.get(&token, "allusers.json").await;
    assert_eq!(status, StatusCode::OK);
    let first = first.as_array().unwrap().clone();
    assert_eq!(first.len(), 20, "default page size");
    let keys: Vec<&str> = first[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "userid",
            "firstName",
            "lastName",
            "emailAddress",
            "id",
            "apiOnly"
        ]
    );

    let mut seen = HashSet::new();
    let mut offset = 0;
    loop {
        let (status, page) = sb
            .get(
                &token,
                &format!("allusers.json?pageSize=7&pageOffset={offset}"),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let page = page.as_array().unwrap().clone();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 7);
        for user in &page {
            assert!(
                seen.insert(user["userid"].as_str().unwrap().to_owned()),
                "duplicate across pages"
            );
        }
        offset += page.len();
    }
    // 7 people + 2 API users seeded, 25 invited API users; the seeded pending invite is not listed.
    assert_eq!(seen.len(), 34);
    assert!(!seen.contains("new.hire@acme.example"));

    let (_, all) = sb.get(&token, "allusers.json?pageSize=200").await;
    assert_eq!(all.as_array().unwrap().len(), 34);
    for bad in [
        "pageSize=201",
        "pageSize=0",
        "pageSize=abc",
        "pageOffset=-1",
    ] {
        let (status, body) = sb.get(&token, &format!("allusers.json?{bad}")).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "1003"),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn user_by_id_has_roles_and_documented_dates() {
    let sb = Sandbox::start().await;
    let token = sb.token().await;
    let (status, user) = sb
        .get(&token, "margaret.hamilton%40acme.example/user.json")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(user["userid"], "margaret.hamilton@acme.example");
    assert_eq!(user["apiOnly"], false);
    assert_eq!(user["expiresAt"], "2027-06-30T23:59:59.000t+0000");
    assert!(user["lastLoginAt"].as_str().unwrap().ends_with("t+0000"));
    assert_eq!(
        user["userRoleWorkspaces"],
        json!([
            {"accessRoleId": 2, "accessRoleName": "Standard User", "workspaceId": 1010, "workspaceName": "US"},
            {"accessRoleId": 2, "accessRoleName": "Standard User", "workspaceId": 1011, "workspaceName": "EMEA"},
        ])
    );
    for field in [
        "optedIn",
        "failedLogins",
        "failedDeviceCode",
        "isLocked",
        "lockedReason",
        "id",
        "firstName",
        "lastName",
        "emailAddress",
    ] {
        assert!(user.get(field).is_some(), "user.json lacks {field}");
    }
    let (status, roles) = sb
        .get(&token, "margaret.hamilton%40acme.example/roles.json")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(roles, user["userRoleWorkspaces"]);

    let (status, body) = sb.get(&token, "nobody%40acme.example/user.json").await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "610"));
    let (status, body) = sb.get(&token, "nobody%40acme.example/roles.json").await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "610"));
}

#[tokio::test]
async fn pending_users_are_read_with_invite_json_only() {
    let sb = Sandbox::start().await;
    let token = sb.token().await;
    let (status, body) = sb.get(&token, "new.hire%40acme.example/user.json").await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "610"));
    assert!(
        message(&body).contains("invite.json"),
        "the error says where to look: {body}"
    );

    let (status, invite) = sb.get(&token, "new.hire%40acme.example/invite.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(invite["status"], "pending");
    assert_eq!(invite["userid"], "new.hire@acme.example");
    assert_eq!(invite["subscriptionId"], 3381);
    let created =
        roster_domain::marketo_time::parse(invite["createdAt"].as_str().unwrap()).unwrap();
    let expires =
        roster_domain::marketo_time::parse(invite["expiresAt"].as_str().unwrap()).unwrap();
    assert_eq!(expires - created, time::Duration::days(7));
    assert!(
        invite["createdAt"].as_str().unwrap().contains("T")
            && !invite["createdAt"].as_str().unwrap()[..8].contains('-')
    );
    // The pending user's roles are those of the invitation.
    let (_, roles) = sb.get(&token, "new.hire%40acme.example/roles.json").await;
    assert_eq!(pairs(&roles), vec![(2, 1)]);

    let (status, body) = sb
        .get(&token, "grace.hopper%40acme.example/invite.json")
        .await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "610"));
}

#[tokio::test]
async fn roles_and_workspaces_reference_data() {
    let sb = Sandbox::start().await;
    let token = sb.token().await;
    let (status, roles) = sb.get(&token, "roles.json").await;
    assert_eq!(status, StatusCode::OK);
    let roles = roles.as_array().unwrap();
    let admin = roles.iter().find(|r| r["name"] == "Admin").unwrap();
    assert_eq!(admin["id"], 1);
    assert_eq!(admin["onlyAllZones"], true);
    assert_eq!(admin["type"], "system");
    assert_eq!(admin["createdAt"], "20100327T18:27:42.0t+0000");
    let standard = roles.iter().find(|r| r["name"] == "Standard User").unwrap();
    assert_eq!(standard["onlyAllZones"], false);
    assert!(roles.iter().any(|r| r["type"] == "custom"));
    let keys: Vec<&str> = admin
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "name",
            "description",
            "type",
            "hidden",
            "onlyAllZones",
            "createdAt",
            "updatedAt"
        ]
    );

    let (status, workspaces) = sb.get(&token, "workspaces.json").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<(i64, &str)> = workspaces
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["id"].as_i64().unwrap(), w["name"].as_str().unwrap()))
        .collect();
    assert_eq!(names[0], (0, "AllZones"));
    assert_eq!(names[1], (1, "Default"));
    assert!(names.len() >= 4);
    let w = &workspaces[1];
    for field in [
        "description",
        "globalViz",
        "status",
        "currencyInfo",
        "createdAt",
        "updatedAt",
    ] {
        assert!(w.get(field).is_some(), "workspace lacks {field}");
    }
}
