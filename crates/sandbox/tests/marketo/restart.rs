use reqwest::StatusCode;
use roster_domain::Secret;
use roster_sandbox::marketo::Limits;
use serde_json::json;

use super::harness::*;

#[tokio::test]
async fn state_survives_a_restart() {
    let sb = Sandbox::start().await;
    let token = sb.token().await;
    sb.invite_and_accept(
        &token,
        "persist@acme.example",
        json!([{"accessRoleId": 2, "workspaceId": 1}]),
    )
    .await;
    sb.post(
        &token,
        "persist%40acme.example/roles/create.json",
        json!([{"accessRoleId": 101, "workspaceId": 1010}]),
    )
    .await;
    assert_eq!(
        sb.invite(
            &token,
            "waiting@acme.example",
            json!([{"accessRoleId": 2, "workspaceId": 1}])
        )
        .await
        .0,
        StatusCode::OK
    );
    sb.post(&token, "grace.hopper%40acme.example/delete.json", json!({}))
        .await;
    sb.advance_clock(3600 * 24).await;
    let token = sb.token().await;
    let (_, before) = sb.get(&token, "allusers.json?pageSize=200").await;

    // Restart without credentials: the stored service is reported and its token is still valid.
    let sb = sb
        .restart_with(|c| {
            c.client_id = None;
            c.client_secret = None;
        })
        .await;
    let (_, after) = sb.get(&token, "allusers.json?pageSize=200").await;
    assert_eq!(after, before);
    assert_eq!(sb.token().await, token, "the same token until it expires");
    let (_, roles) = sb.get(&token, "persist%40acme.example/roles.json").await;
    assert_eq!(pairs(&roles), vec![(2, 1), (101, 1010)]);
    assert_eq!(
        sb.get(&token, "waiting%40acme.example/invite.json").await.1["status"],
        "pending"
    );
    assert_eq!(
        sb.get(&token, "grace.hopper%40acme.example/user.json")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let mail = sb.mailbox("waiting@acme.example").await;
    assert_eq!(mail.len(), 1);
    assert!(
        mail[0]["acceptUrl"].as_str().unwrap().starts_with(&sb.url),
        "links point at the new address"
    );
    let clock: serde_json::Value = sb
        .http
        .get(format!("{}/sandbox/clock", sb.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(clock["offsetSeconds"], 86_400, "the clock offset is kept");
}

#[tokio::test]
async fn restart_with_a_new_secret_and_the_quota_count() {
    let sb = Sandbox::start_with(|c| {
        c.limits = Limits {
            daily_quota: 3,
            ..Limits::default()
        }
    })
    .await;
    let token = sb.token().await;
    assert_eq!(sb.get(&token, "roles.json").await.0, StatusCode::OK);
    assert_eq!(sb.get(&token, "roles.json").await.0, StatusCode::OK);

    let sb = sb
        .restart_with(|c| {
            c.client_secret = Some(Secret::new("rotated-secret"));
            c.limits = Limits {
                daily_quota: 3,
                ..Limits::default()
            };
        })
        .await;
    assert_eq!(
        sb.token_response(CLIENT_ID, CLIENT_SECRET).await.status(),
        StatusCode::UNAUTHORIZED,
        "the old secret is gone"
    );
    let (status, _) = sb.get(&token, "roles.json").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "tokens of the old secret are revoked"
    );
    let token = sb.token_for(CLIENT_ID, "rotated-secret").await;
    assert_eq!(
        sb.get(&token, "roles.json").await.0,
        StatusCode::OK,
        "third call of the day"
    );
    let (status, body) = sb.get(&token, "roles.json").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::TOO_MANY_REQUESTS, "607"),
        "the count survived the restart"
    );
}
