use reqwest::{Method, StatusCode};
use serde_json::json;

use super::harness::{Magento, config};

#[tokio::test]
async fn admin_users_exist_only_with_the_extension() {
    let m = Magento::start().await;
    let t = m.admin().await;
    let (status, body) = m.get(&t, "/rest/V1/users").await;
    assert_eq!(
        (status, body),
        (
            StatusCode::NOT_FOUND,
            json!({"message": "Request does not match any route."})
        )
    );
    assert_eq!(m.get(&t, "/rest/V1/roles").await.0, StatusCode::NOT_FOUND);

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&dir);
    cfg.admin_users_api = true;
    let m = Magento::start_in(dir, cfg).await;
    let t = m.admin().await;
    let (_, roles) = m.get(&t, "/rest/V1/roles").await;
    assert_eq!(roles["items"][1]["name"], "Customer Service");
    let new = json!({"user": {"username": "helpdesk", "firstname": "Help", "lastname": "Desk", "email": "help@example.com", "password": "Helpdesk1", "role_id": 2, "is_active": true}});
    let (status, user) = m
        .call(Method::POST, "/rest/V1/users", Some(&t), Some(new.clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["role_id"], 2);
    assert!(user.get("password").is_none());
    let (status, body) = m
        .call(Method::POST, "/rest/V1/users", Some(&t), Some(new))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("already exists"));
    let weak = json!({"user": {"username": "weak", "firstname": "W", "lastname": "K", "email": "w@example.com", "password": "onlyletters", "role_id": 2}});
    assert_eq!(
        m.call(Method::POST, "/rest/V1/users", Some(&t), Some(weak))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    let bad_role = json!({"user": {"username": "r", "firstname": "R", "lastname": "R", "email": "r@example.com", "password": "Passw0rd", "role_id": 77}});
    assert_eq!(
        m.call(Method::POST, "/rest/V1/users", Some(&t), Some(bad_role))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );

    let (_, list) = m
        .get(&t, "/rest/V1/users?searchCriteria[pageSize]=20")
        .await;
    assert_eq!(list["total_count"], 2);
    let id = user["id"].as_i64().unwrap();
    let (_, moved) = m
        .call(
            Method::PUT,
            &format!("/rest/V1/users/{id}"),
            Some(&t),
            Some(json!({"user": {"role_id": 1}})),
        )
        .await;
    assert_eq!(
        (moved["role_id"].clone(), moved["email"].clone()),
        (json!(1), json!("help@example.com"))
    );
    let (status, ok) = m
        .call(
            Method::DELETE,
            &format!("/rest/V1/users/{id}"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!((status, ok), (StatusCode::OK, json!(true)));
    assert_eq!(
        m.get(&t, &format!("/rest/V1/users/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, me) = m.get(&t, "/rest/V1/users?searchCriteria[filter_groups][0][filters][0][field]=username&searchCriteria[filter_groups][0][filters][0][value]=roster-admin").await;
    let my_id = me["items"][0]["id"].as_i64().unwrap();
    assert_eq!(
        m.call(
            Method::DELETE,
            &format!("/rest/V1/users/{my_id}"),
            Some(&t),
            None
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
}
