use reqwest::StatusCode;
use serde_json::{Value, json};

use super::harness::*;

#[tokio::test]
async fn update_attributes() {
    let sb = Sandbox::start().await;
    let token = sb.token().await;
    let id = "alan.turing%40acme.example";
    let (status, user) = sb
        .post(
            &token,
            &format!("{id}/update.json"),
            json!({"firstName": "ALAN", "expiresAt": "20301231T08:00:00.000t+0000"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["firstName"], "ALAN");
    assert_eq!(user["lastName"], "Turing", "absent fields are kept");
    assert_eq!(user["expiresAt"], "2030-12-31T08:00:00.000t+0000");
    assert_eq!(pairs(&user["userRoleWorkspaces"]), vec![(101, 1010)]);
    assert_eq!(
        sb.get(&token, &format!("{id}/user.json")).await.1,
        user,
        "stored as answered"
    );

    let (_, user) = sb
        .post(
            &token,
            &format!("{id}/update.json"),
            json!({"expiresAt": null, "emailAddress": "alan@turing.example"}),
        )
        .await;
    assert_eq!(user["expiresAt"], Value::Null, "null clears the expiry");
    assert_eq!(user["emailAddress"], "alan@turing.example");
    assert_eq!(
        user["userid"], "alan.turing@acme.example",
        "userid is unchanged"
    );

    let cases = [
        (json!({}), "701"),
        (json!({"firstName": ""}), "701"),
        (json!({"expiresAt": "31/12/2030"}), "704"),
        (json!({"apiOnly": true}), "709"),
        (json!({"userid": "other@acme.example"}), "709"),
        (json!({"emailAddress": "nope"}), "1003"),
    ];
    for (body, want) in cases {
        let (status, resp) = sb
            .post(&token, &format!("{id}/update.json"), body.clone())
            .await;
        assert_eq!(
            (status, code(&resp)),
            (StatusCode::BAD_REQUEST, want),
            "{body} -> {resp}"
        );
    }
    let (status, resp) = sb
        .post(
            &token,
            "ghost%40acme.example/update.json",
            json!({"firstName": "G"}),
        )
        .await;
    assert_eq!((status, code(&resp)), (StatusCode::NOT_FOUND, "610"));
}

#[tokio::test]
async fn add_and_remove_roles_in_both_body_shapes() {
    let sb = Sandbox::start().await;
    let token = sb.token().await;
    let id = "katherine.johnson%40acme.example";
    let (status, list) = sb
        .post(
            &token,
            &format!("{id}/roles/create.json"),
            json!({"input": [{"accessRoleId": 1, "workspaceId": 0}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(
        pairs(&list),
        vec![(1, 0), (25, 1), (103, 1)],
        "the full list comes back"
    );
    assert_eq!(list[0]["accessRoleName"], "Admin");
    assert_eq!(list[0]["workspaceName"], "AllZones");

    let (status, list) = sb.post(&token, &format!("{id}/roles/create.json"), json!([{"accessRoleId": 2, "workspaceId": 1008}, {"accessRoleId": 1, "workspaceId": 0}])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        pairs(&list),
        vec![(1, 0), (25, 1), (103, 1), (2, 1008)],
        "granting a held role changes nothing"
    );

    let (status, resp) = sb
        .post(
            &token,
            &format!("{id}/roles/create.json"),
            json!([{"accessRoleId": 1, "workspaceId": 1010}]),
        )
        .await;
    assert_eq!((status, code(&resp)), (StatusCode::BAD_REQUEST, "709"));
    let (status, resp) = sb
        .post(
            &token,
            &format!("{id}/roles/create.json"),
            json!({"roles": [{"roleId": 2, "workspaceId": 1}]}),
        )
        .await;
    assert_eq!(
        (status, code(&resp)),
        (StatusCode::BAD_REQUEST, "701"),
        "{resp}"
    );

    let (status, list) = sb
        .post(
            &token,
            &format!("{id}/roles/delete.json"),
            json!({"input": [{"accessRoleId": 1, "workspaceId": 0}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        pairs(&list),
        vec![(25, 1), (103, 1), (2, 1008)],
        "the remaining pairs come back"
    );
    let (_, list) = sb.post(&token, &format!("{id}/roles/delete.json"), json!([{"accessRoleId": 25, "workspaceId": 1}, {"accessRoleId": 103, "workspaceId": 1}, {"accessRoleId": 2, "workspaceId": 1008}])).await;
    assert_eq!(list, json!([]));
    // With no roles the user is still there.
    let (status, user) = sb.get(&token, &format!("{id}/user.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(user["userRoleWorkspaces"], json!([]));
}

#[tokio::test]
async fn role_changes_on_a_pending_user_do_not_persist() {
    let sb = Sandbox::start().await;
    let token = sb.token().await;
    let id = "new.hire%40acme.example";
    let (status, list) = sb
        .post(
            &token,
            &format!("{id}/roles/create.json"),
            json!([{"accessRoleId": 102, "workspaceId": 1}]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        pairs(&list),
        vec![(2, 1), (102, 1)],
        "the answer shows the grant..."
    );
    let (_, roles) = sb.get(&token, &format!("{id}/roles.json")).await;
    assert_eq!(pairs(&roles), vec![(2, 1)], "...but it did not persist");

    let url = sb.mailbox("new.hire@acme.example").await[0]["acceptUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        sb.accept(&url, "Sunshine42", "Sunshine42").await.0,
        StatusCode::OK
    );
    let (_, user) = sb.get(&token, &format!("{id}/user.json")).await;
    assert_eq!(pairs(&user["userRoleWorkspaces"]), vec![(2, 1)]);
    let (_, list) = sb
        .post(
            &token,
            &format!("{id}/roles/create.json"),
            json!([{"accessRoleId": 102, "workspaceId": 1}]),
        )
        .await;
    assert_eq!(pairs(&list), vec![(2, 1), (102, 1)]);
    assert_eq!(
        pairs(&sb.get(&token, &format!("{id}/roles.json")).await.1),
        vec![(2, 1), (102, 1)],
        "after acceptance it persists"
    );
}

#[tokio::test]
async fn delete_is_immediate_and_permanent() {
    let sb = Sandbox::start().await;
    let token = sb.token().await;
    let id = "linus.torvalds%40acme.example";
    let resp = sb
        .http
        .post(sb.api(&format!("{id}/delete.json")))
        .bearer_auth(&token)
        .json(&json!({"reason": "Offboarding"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), "", "no body");
    assert_eq!(
        sb.get(&token, &format!("{id}/user.json")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        sb.get(&token, &format!("{id}/roles.json")).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, all) = sb.get(&token, "allusers.json?pageSize=200").await;
    assert!(
        !all.as_array()
            .unwrap()
            .iter()
            .any(|u| u["userid"] == "linus.torvalds@acme.example")
    );
    let (status, resp) = sb
        .post(&token, &format!("{id}/delete.json"), json!({}))
        .await;
    assert_eq!((status, code(&resp)), (StatusCode::NOT_FOUND, "610"));

    // A body-less delete works too; the caller cannot delete itself.
    let resp = sb
        .http
        .post(sb.api("alan.turing%40acme.example/delete.json"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (status, resp) = sb
        .post(&token, "roster-api%40acme.example/delete.json", json!({}))
        .await;
    assert_eq!((status, code(&resp)), (StatusCode::BAD_REQUEST, "709"));
}

#[tokio::test]
async fn ims_subscriptions_manage_api_only_users_only() {
    let sb = Sandbox::start_with(|c| c.ims = true).await;
    let token = sb.token().await;
    let (status, resp) = sb
        .invite(
            &token,
            "std@acme.example",
            json!([{"accessRoleId": 2, "workspaceId": 1}]),
        )
        .await;
    assert_eq!((status, code(&resp)), (StatusCode::BAD_REQUEST, "709"));
    assert!(message(&resp).contains("Adobe Admin Console"), "{resp}");
    let (status, resp) = sb
        .post(
            &token,
            "grace.hopper%40acme.example/update.json",
            json!({"firstName": "G"}),
        )
        .await;
    assert_eq!((status, code(&resp)), (StatusCode::BAD_REQUEST, "709"));
    let (status, resp) = sb
        .post(&token, "grace.hopper%40acme.example/delete.json", json!({}))
        .await;
    assert_eq!((status, code(&resp)), (StatusCode::BAD_REQUEST, "709"));

    assert_eq!(
        sb.invite_api_user(&token, "svc@acme.example").await.0,
        StatusCode::OK
    );
    assert_eq!(
        sb.post(
            &token,
            "svc%40acme.example/update.json",
            json!({"lastName": "Service"})
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        sb.post(&token, "svc%40acme.example/delete.json", json!({}))
            .await
            .0,
        StatusCode::OK
    );
    // Reads and role changes still work for everyone.
    assert_eq!(
        sb.get(&token, "grace.hopper%40acme.example/user.json")
            .await
            .0,
        StatusCode::OK
    );
    let (status, _) = sb
        .post(
            &token,
            "grace.hopper%40acme.example/roles/create.json",
            json!([{"accessRoleId": 101, "workspaceId": 1}]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_server_can_be_restricted_to_one_role_body_shape() {
    use roster_sandbox::marketo::RoleBodyShapes;
    for (shape, refused, accepted) in [
        (
            RoleBodyShapes::BareArray,
            json!({"input": [{"accessRoleId": 101, "workspaceId": 1}]}),
            json!([{"accessRoleId": 101, "workspaceId": 1}]),
        ),
        (
            RoleBodyShapes::InputWrapper,
            json!([{"accessRoleId": 101, "workspaceId": 1}]),
            json!({"input": [{"accessRoleId": 101, "workspaceId": 1}]}),
        ),
    ] {
        let sb = Sandbox::start_with(|c| c.role_body = shape).await;
        let token = sb.token().await;
        let path = "grace.hopper%40acme.example/roles/create.json";
        let (status, resp) = sb.post(&token, path, refused).await;
        assert_eq!(
            (status, code(&resp)),
            (StatusCode::BAD_REQUEST, "1003"),
            "{shape:?}: {resp}"
        );
        assert_eq!(
            pairs(
                &sb.get(&token, "grace.hopper%40acme.example/roles.json")
                    .await
                    .1
            ),
            vec![(2, 1), (102, 1008)],
            "nothing changed"
        );
        let (status, list) = sb.post(&token, path, accepted).await;
        assert_eq!(status, StatusCode::OK, "{shape:?}");
        assert_eq!(pairs(&list), vec![(2, 1), (101, 1), (102, 1008)]);
    }
}
