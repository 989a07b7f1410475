use reqwest::StatusCode;
use serde_json::Value;

use super::harness::*;

#[tokio::test]
async fn token_by_get_and_post_is_the_same_token_until_it_expires() {
    let sb = Sandbox::start().await;
    let first: Value = sb
        .token_response(CLIENT_ID, CLIENT_SECRET)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["token_type"], "bearer");
    assert_eq!(first["scope"], "roster-api@acme.example");
    assert_eq!(first["expires_in"], 3599);
    let token = first["access_token"].as_str().unwrap();
    assert!(
        token.ends_with(":ab") && token.len() > 36,
        "uuid:pod, got {token}"
    );

    // POST with the parameters in the query string, then in a form body.
    let by_query: Value = sb
        .http
        .post(format!("{}/identity/oauth/token", sb.url))
        .query(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let by_form: Value = sb
        .http
        .post(format!("{}/identity/oauth/token", sb.url))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_query["access_token"], first["access_token"]);
    assert_eq!(by_form["access_token"], first["access_token"]);

    // An hour later the token is expired: API calls say 602 and identity issues a new one.
    sb.advance_clock(1800).await;
    let later: Value = sb
        .token_response(CLIENT_ID, CLIENT_SECRET)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(later["access_token"], first["access_token"]);
    let remaining = later["expires_in"].as_i64().unwrap();
    assert!(
        (1795..=1799).contains(&remaining),
        "remaining lifetime, got {remaining}"
    );
    sb.advance_clock(1800).await;
    let (status, body) = sb.get(token, "allusers.json").await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "602"));
    let renewed = sb.token().await;
    assert_ne!(renewed, token);
    assert_eq!(sb.get(&renewed, "allusers.json").await.0, StatusCode::OK);
}

#[tokio::test]
async fn bad_credentials_get_an_oauth_error() {
    let sb = Sandbox::start().await;
    for (id, secret) in [(CLIENT_ID, "wrong"), ("nobody", CLIENT_SECRET), ("", "")] {
        let resp = sb.token_response(id, secret).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");
        assert_eq!(body["error_description"], "Bad client credentials");
    }
    let missing = sb
        .http
        .get(format!("{}/identity/oauth/token", sb.url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );
    let wrong_grant = sb
        .http
        .get(format!("{}/identity/oauth/token", sb.url))
        .query(&[
            ("grant_type", "password"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_grant.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        wrong_grant.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
}

#[tokio::test]
async fn token_only_in_the_authorization_header() {
    let sb = Sandbox::start().await;
    let token = sb.token().await;
    let in_query = sb
        .http
        .get(sb.api("allusers.json"))
        .query(&[("access_token", &token)])
        .send()
        .await
        .unwrap();
    let (status, body) = read(in_query).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "601"));
    assert!(message(&body).contains("Authorization: Bearer"), "{body}");

    let no_header = sb.http.get(sb.api("allusers.json")).send().await.unwrap();
    let (status, body) = read(no_header).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "601"));

    let (status, body) = sb.get("not-a-token", "allusers.json").await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "601"));

    let basic = sb
        .http
        .get(sb.api("allusers.json"))
        .header("authorization", format!("Basic {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(sb.get(&token, "allusers.json").await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_caller_needs_both_permissions() {
    use roster_sandbox::marketo::admin::{Admin, RoleAt};
    let sb = Sandbox::start().await;
    let admin = Admin::open(sb.dir.path()).await.unwrap();
    // The seeded lead-export user's role has "Access API" but neither user permission.
    let export = admin
        .create_service(
            "Lead export",
            "lead-export@acme.example",
            Some("export"),
            None,
        )
        .await
        .unwrap();
    // A role with only one of the two.
    admin
        .create_role(
            "Half API",
            "",
            &["Access API".into(), "Access Users".into()],
            false,
        )
        .await
        .unwrap();
    let role: RoleAt = "Half API@Default".parse().unwrap();
    admin
        .create_api_user("half@acme.example", "Half", "Api", &[role])
        .await
        .unwrap();
    let half = admin
        .create_service("Half", "half@acme.example", Some("half"), None)
        .await
        .unwrap();
    admin.close().await;

    let token = sb.token_for("export", export.client_secret.expose()).await;
    let (status, body) = sb.get(&token, "roles.json").await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "603"));
    assert!(message(&body).contains("Access Users"), "{body}");

    let token = sb.token_for("half", half.client_secret.expose()).await;
    let (status, body) = sb.get(&token, "roles.json").await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "603"));
    assert!(
        message(&body).contains("Access User Management Api"),
        "{body}"
    );
}
