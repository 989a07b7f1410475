//! Hostile input gets the documented errors: never a 5xx, never a panic.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::harness::*;

fn assert_client_error(what: &str, status: StatusCode, body: &Value) {
    assert!(
        status.is_client_error(),
        "{what}: expected 4xx, got {status} {body}"
    );
    assert!(
        body["errors"][0]["code"].is_string(),
        "{what}: expected an error body, got {body}"
    );
}

#[tokio::test]
async fn odd_userids_round_trip_when_encoded() {
    let sb = Sandbox::start().await;
    let token = sb.token().await;
    let ids = [
        "o'brien+marketing@acme.example",
        "\"quoted\"@acme.example",
        "100%real@acme.example",
        "zoë.ünïcødé@bücher.example",
        "a/b@acme.example",
        "semi;colon&amp=x?y#z@acme.example",
    ];
    for id in ids {
        if id != "o'brien+marketing@acme.example" {
            assert_eq!(
                sb.invite_api_user(&token, id).await.0,
                StatusCode::OK,
                "{id}"
            );
        }
        let (status, user) = sb.get(&token, &format!("{}/user.json", enc(id))).await;
        assert_eq!(status, StatusCode::OK, "{id}: {user}");
        assert_eq!(user["userid"], id);
        let (status, _) = sb
            .post(
                &token,
                &format!("{}/update.json", enc(id)),
                json!({"lastName": "Renamed"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{id}");
    }
    // `+` left unencoded is still a plus, not a space.
    let (status, _) = sb
        .get(&token, "o'brien+marketing@acme.example/user.json")
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn hostile_paths_and_bodies_never_5xx() {
    let sb = Sandbox::start().await;
    let token = sb.token().await;
    let long = "x".repeat(5000);
    let paths = [
        "%zz/user.json".to_owned(),
        "%/user.json".to_owned(),
        "%25/user.json".to_owned(),
        "%FF%FE/user.json".to_owned(),
        "'%3B%20DROP%20TABLE%20users%3B--/user.json".to_owned(),
        "%20/user.json".to_owned(),
        format!("{long}@acme.example/user.json"),
        "..%2F..%2Froles.json/user.json".to_owned(),
        "a@b.co/nope.json".to_owned(),
    ];
    for path in &paths {
        let (status, body) = sb.get(&token, path).await;
        assert_client_error(path, status, &body);
    }
    let post_paths = [
        "%zz/update.json",
        "x@y.zz/roles/create.json",
        "x@y.zz/roles/delete.json",
        "x@y.zz/delete.json",
        "invite.json",
    ];
    let bodies = [
        json!(null),
        json!(1e308),
        json!("string"),
        json!({"input": {"accessRoleId": 1}}),
        json!([{"accessRoleId": "1; DROP TABLE roles", "workspaceId": 1}]),
        json!([{"accessRoleId": -1, "workspaceId": 1}]),
        json!([{"accessRoleId": 9_223_372_036_854_775_807u64, "workspaceId": 18_446_744_073_709_551_615u64}]),
        json!({"emailAddress": {"$ne": null}, "firstName": [], "lastName": true, "userRoleWorkspaces": "all"}),
        json!({"emailAddress": "a@b.co", "firstName": "\u{0000}", "lastName": "\u{202e}", "userRoleWorkspaces": [{}]}),
    ];
    for path in post_paths {
        for body in &bodies {
            let (status, resp) = sb.post(&token, path, body.clone()).await;
            assert_client_error(&format!("{path} {body}"), status, &resp);
        }
    }
    // Deeply nested JSON.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let (status, resp) = sb
        .post_raw(&token, "invite.json", "application/json", deep)
        .await;
    assert_eq!((status, code(&resp)), (StatusCode::BAD_REQUEST, "609"));
    // Over 1 MB.
    let huge = json!({"emailAddress": "big@acme.example", "firstName": "x".repeat(1_100_000), "lastName": "y",
                      "userRoleWorkspaces": [{"accessRoleId": 2, "workspaceId": 1}]});
    let (status, resp) = sb.post(&token, "invite.json", huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(message(&resp).contains("too large"), "{resp}");
    // Wrong method and unknown route.
    let resp = sb
        .http
        .get(sb.api("invite.json"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (status, body) = read(resp).await;
    assert_client_error("GET invite.json", status, &body);
    let resp = sb
        .http
        .get(format!("{}/rest/v1/leads.json", sb.url))
        .send()
        .await
        .unwrap();
    let (status, body) = read(resp).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "610"));
    // The sandbox is still healthy and its data intact.
    let (status, all) = sb.get(&token, "allusers.json?pageSize=200").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all.as_array().unwrap().len(), 9);
    assert_eq!(
        sb.get(&token, "roles.json")
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        10
    );
}
