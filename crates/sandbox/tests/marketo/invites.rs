use reqwest::StatusCode;
use serde_json::json;

use super::harness::*;

#[tokio::test]
async fn invite_pending_accept_active() {
    let sb = Sandbox::start().await;
    let token = sb.token().await;
    let resp = sb
        .http
        .post(sb.api("invite.json"))
        .bearer_auth(&token)
        .json(&json!({
            "emailAddress": "daenerys@acme.example", "firstName": "Daenerys", "lastName": "Targaryen",
            "expiresAt": "2030-12-31T23:59:59-05:00", "reason": "Keeper of dragons",
            "userRoleWorkspaces": [{"accessRoleId": 1, "workspaceId": 0}, {"accessRoleId": 102, "workspaceId": 1008}]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), "true");

    // The same invitation again is a business-rule violation while it is pending.
    let (status, body) = sb
        .invite(
            &token,
            "daenerys@acme.example",
            json!([{"accessRoleId": 2, "workspaceId": 1}]),
        )
        .await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "709"));

    let mail = sb.mailbox("daenerys@acme.example").await;
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0]["subject"], "Marketo Login Information");
    assert_eq!(mail[0]["from"], "roster-api@acme.example");
    let url = mail[0]["acceptUrl"].as_str().unwrap().to_owned();
    assert!(
        mail[0]["body"].as_str().unwrap().contains(&url),
        "the email body carries the link"
    );

    // Pending: no user.json, not editable, not deletable by delete.json.
    let id = "daenerys%40acme.example";
    assert_eq!(
        sb.get(&token, &format!("{id}/user.json")).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, body) = sb
        .post(
            &token,
            &format!("{id}/update.json"),
            json!({"firstName": "Dany"}),
        )
        .await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "709"));
    assert!(message(&body).contains("pending"), "{body}");
    let (status, body) = sb
        .post(&token, &format!("{id}/delete.json"), json!({}))
        .await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "709"));
    assert!(message(&body).contains("invite/delete.json"), "{body}");

    // The page the email links to.
    let page = sb.http.get(&url).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Create Password")
            && html.contains("confirmPassword")
            && html.contains("daenerys@acme.example")
    );

    let (status, html) = sb.accept(&url, "Dracarys123", "Dracarys124").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("do not match"), "{html}");
    let (status, html) = sb.accept(&url, "Dra1", "Dra1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("too short"), "{html}");
    assert_eq!(
        sb.get(&token, &format!("{id}/invite.json")).await.1["status"],
        "pending",
        "a failed attempt changes nothing"
    );

    let (status, html) = sb.accept(&url, "Dracarys123", "Dracarys123").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("password has been created"), "{html}");

    let (status, user) = sb.get(&token, &format!("{id}/user.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(user["expiresAt"], "2031-01-01T04:59:59.000t+0000");
    assert_eq!(
        pairs(&user["userRoleWorkspaces"]),
        vec![(1, 0), (102, 1008)]
    );
    assert_eq!(
        sb.get(&token, &format!("{id}/invite.json")).await.0,
        StatusCode::NOT_FOUND
    );
    let again = sb.http.get(&url).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert!(
        again
            .text()
            .await
            .unwrap()
            .contains("already been accepted")
    );
    let (status, _) = sb
        .invite(
            &token,
            "daenerys@acme.example",
            json!([{"accessRoleId": 2, "workspaceId": 1}]),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "an active user cannot be invited again"
    );
}

#[tokio::test]
async fn invitations_expire_after_seven_days() {
    let sb = Sandbox::start().await;
    let token = sb.token().await;
    assert_eq!(
        sb.invite(
            &token,
            "late@acme.example",
            json!([{"accessRoleId": 2, "workspaceId": 1}])
        )
        .await
        .0,
        StatusCode::OK
    );
    let url = sb.mailbox("late@acme.example").await[0]["acceptUrl"]
        .as_str()
        .unwrap()
        .to_owned();

    sb.advance_clock(7 * 86_400 - 60).await;
    let token = sb.token().await; // the old one expired hours ago
    assert_eq!(
        sb.get(&token, "late%40acme.example/invite.json").await.1["status"],
        "pending"
    );
    sb.advance_clock(120).await;
    let token = sb.token().await;
    assert_eq!(
        sb.get(&token, "late%40acme.example/invite.json").await.1["status"],
        "expired"
    );
    let (status, html) = sb.accept(&url, "Sunshine42", "Sunshine42").await;
    assert_eq!(status, StatusCode::GONE);
    assert!(html.contains("expired"));

    // An expired invitation can be sent again, with a new link.
    assert_eq!(
        sb.invite(
            &token,
            "late@acme.example",
            json!([{"accessRoleId": 2, "workspaceId": 1}])
        )
        .await
        .0,
        StatusCode::OK
    );
    let mail = sb.mailbox("late@acme.example").await;
    assert_eq!(mail.len(), 2);
    let new_url = mail[1]["acceptUrl"].as_str().unwrap();
    assert_ne!(new_url, url);
    assert_eq!(
        sb.accept(new_url, "Sunshine42", "Sunshine42").await.0,
        StatusCode::OK
    );
    assert_eq!(
        sb.get(&token, "late%40acme.example/user.json").await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn withdrawn_invitations_and_their_links() {
    let sb = Sandbox::start().await;
    let token = sb.token().await;
    let url = sb.mailbox("new.hire@acme.example").await[0]["acceptUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = sb
        .post(
            &token,
            "new.hire%40acme.example/invite/delete.json",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, serde_json::Value::Null, "no body");
    assert_eq!(
        sb.get(&token, "new.hire%40acme.example/invite.json")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        sb.accept(&url, "Sunshine42", "Sunshine42").await.0,
        StatusCode::NOT_FOUND
    );
    let (status, body) = sb
        .post(
            &token,
            "new.hire%40acme.example/invite/delete.json",
            json!({}),
        )
        .await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "610"));
    let (status, body) = sb
        .post(
            &token,
            "grace.hopper%40acme.example/invite/delete.json",
            json!({}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "610"),
        "accepted users are not invitations"
    );
}

#[tokio::test]
async fn invite_fields_userid_and_api_only() {
    let sb = Sandbox::start().await;
    let token = sb.token().await;
    // userid defaults to emailAddress; a distinct userid is the key.
    let (status, _) = sb
        .post(&token, "invite.json", json!({"emailAddress": "jamie@lannister.example", "userid": "jamie@houselannister.example",
            "firstName": "Jamie", "lastName": "Lannister", "userRoleWorkspaces": [{"accessRoleId": 2, "workspaceId": 1}]}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, invite) = sb
        .get(&token, "jamie%40houselannister.example/invite.json")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(invite["emailAddress"], "jamie@lannister.example");
    assert_eq!(
        sb.mailbox("jamie@lannister.example").await.len(),
        1,
        "the email goes to emailAddress"
    );

    // API-only users are active at once and get no email.
    assert_eq!(
        sb.invite_api_user(&token, "etl@acme.example").await.0,
        StatusCode::OK
    );
    let (status, user) = sb.get(&token, "etl%40acme.example/user.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(user["apiOnly"], true);
    assert!(sb.mailbox("etl@acme.example").await.is_empty());
}

#[tokio::test]
async fn invite_validation_errors() {
    let sb = Sandbox::start().await;
    let token = sb.token().await;
    let base = json!({"emailAddress": "v@acme.example", "firstName": "V", "lastName": "W",
                      "userRoleWorkspaces": [{"accessRoleId": 2, "workspaceId": 1}]});
    let with = |key: &str, value: serde_json::Value| {
        let mut b = base.clone();
        if value.is_null() {
            b.as_object_mut().unwrap().remove(key);
        } else {
            b[key] = value;
        }
        b
    };
    let cases = [
        (
            with("firstName", serde_json::Value::Null),
            "701",
            "firstName cannot be blank",
        ),
        (
            with("lastName", json!("   ")),
            "701",
            "lastName cannot be blank",
        ),
        (
            with("emailAddress", serde_json::Value::Null),
            "701",
            "emailAddress cannot be blank",
        ),
        (
            with("userRoleWorkspaces", serde_json::Value::Null),
            "701",
            "userRoleWorkspaces cannot be blank",
        ),
        (
            with("userRoleWorkspaces", json!([])),
            "701",
            "userRoleWorkspaces cannot be blank",
        ),
        (
            with("userRoleWorkspaces", json!([{"workspaceId": 1}])),
            "701",
            "accessRoleId cannot be blank",
        ),
        (
            with(
                "userRoleWorkspaces",
                json!([{"roleId": 2, "workspaceId": 1}]),
            ),
            "1003",
            "accessRoleId",
        ),
        (
            with(
                "userRoleWorkspaces",
                json!([{"accessRoleId": 999, "workspaceId": 1}]),
            ),
            "1003",
            "accessRoleId 999 does not exist",
        ),
        (
            with(
                "userRoleWorkspaces",
                json!([{"accessRoleId": 2, "workspaceId": 4242}]),
            ),
            "1003",
            "workspaceId 4242 does not exist",
        ),
        (
            with(
                "userRoleWorkspaces",
                json!([{"accessRoleId": 1, "workspaceId": 1}]),
            ),
            "709",
            "onlyAllZones",
        ),
        (with("expiresAt", json!("next tuesday")), "704", "expiresAt"),
        (
            with("expiresAt", json!("2001-01-01T00:00:00Z")),
            "709",
            "in the past",
        ),
        (
            with("emailAddress", json!("not-an-email")),
            "1003",
            "not an email address",
        ),
        (with("userid", json!("no at sign")), "1003", "userid"),
        (with("apiOnly", json!("yes")), "1003", "apiOnly"),
        (with("firstName", json!(42)), "1003", "must be a string"),
        (
            with("firstName", json!("x".repeat(300))),
            "1003",
            "limit is 255",
        ),
        (json!([base.clone()]), "1003", "JSON object"),
    ];
    for (body, want_code, want_text) in cases {
        let (status, resp) = sb.post(&token, "invite.json", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {resp}");
        assert_eq!(code(&resp), want_code, "{body} -> {resp}");
        assert!(message(&resp).contains(want_text), "{body} -> {resp}");
    }
    // Nothing was created by any of them.
    assert_eq!(
        sb.get(&token, "v%40acme.example/invite.json").await.0,
        StatusCode::NOT_FOUND
    );
    assert!(sb.mailbox("v@acme.example").await.is_empty());

    let (status, resp) = sb
        .post_raw(
            &token,
            "invite.json",
            "application/json",
            "{\"emailAddress\": ",
        )
        .await;
    assert_eq!((status, code(&resp)), (StatusCode::BAD_REQUEST, "609"));
    let (status, resp) = sb
        .post_raw(&token, "invite.json", "text/plain", base.to_string())
        .await;
    assert_eq!(
        (status, code(&resp)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "612")
    );
    let (status, resp) = sb
        .post_raw(&token, "invite.json", "application/json", "")
        .await;
    assert_eq!((status, code(&resp)), (StatusCode::BAD_REQUEST, "609"));
    let (status, _) = sb
        .post_raw(
            &token,
            "invite.json",
            "application/json; charset=utf-8",
            base.to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "a charset parameter is fine");
}
