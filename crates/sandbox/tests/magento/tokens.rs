use reqwest::{Method, StatusCode};
use serde_json::json;

use super::harness::{ADMIN, Magento, PASSWORD};

const SIGN_IN: &str = "The account sign-in was incorrect or your account is disabled temporarily. Please wait and try again later.";

#[tokio::test]
async fn admin_tokens_and_the_lock_after_six_failures() {
    let m = Magento::start().await;
    let token = m.admin().await;
    assert_eq!(token.len(), 32);
    let (status, websites) = m.get(&token, "/rest/V1/store/websites").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(websites[1]["code"], "base");

    for _ in 0..6 {
        let (status, body) = m.token_for("admin", ADMIN, "wrong-password1").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body, json!({"message": SIGN_IN}));
    }
    let (status, _) = m.token_for("admin", ADMIN, PASSWORD).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "locked: even the right password fails"
    );
    m.advance_clock(1801).await;
    let (status, _) = m.token_for("admin", ADMIN, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "the lock lasts 30 minutes");

    let (status, body) = m
        .call(
            Method::POST,
            "/rest/V1/integration/admin/token",
            None,
            Some(json!({"username": ADMIN})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["parameters"]["fieldName"], "password");
}

#[tokio::test]
async fn tokens_expire_and_are_checked_for_their_kind() {
    let m = Magento::start().await;
    let admin = m.admin().await;
    let (status, token) = m
        .token_for("customer", "roni_cost@example.com", "Roni-Cost-2024")
        .await;
    assert_eq!(status, StatusCode::OK, "{token}");
    let customer = token.as_str().unwrap();
    let (status, me) = m.get(customer, "/rest/V1/customers/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["email"], "roni_cost@example.com");
    // A customer edits their own account; the address book survives the merge.
    let (status, edited) = m
        .call(
            Method::PUT,
            "/rest/V1/customers/me",
            Some(customer),
            Some(json!({"customer": {"middlename": "Q"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["middlename"], "Q");
    assert_eq!(edited["addresses"], me["addresses"]);
    let (status, body) = m.get(customer, "/rest/V1/customers/1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body["message"],
        "The consumer isn't authorized to access %resources."
    );
    // Reading a customer is the parent resource (Customer etc/webapi.xml); writing one is
    // Magento_Customer::manage.
    assert_eq!(
        body["parameters"]["resources"],
        "Magento_Customer::customer"
    );
    let (status, body) = m
        .call(
            Method::PUT,
            "/rest/V1/customers/1",
            Some(customer),
            Some(json!({"customer": {"id": 1}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["parameters"]["resources"], "Magento_Customer::manage");
    let (status, _) = m.get(&admin, "/rest/V1/customers/me").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "me needs a customer token"
    );
    let (status, _) = m.get("not-a-token", "/rest/V1/customers/1").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Customer tokens live an hour, admin tokens four.
    m.advance_clock(3601).await;
    assert_eq!(
        m.get(customer, "/rest/V1/customers/me").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        m.get(&admin, "/rest/V1/customers/1").await.0,
        StatusCode::OK
    );
    m.advance_clock(3 * 3600).await;
    assert_eq!(
        m.get(&admin, "/rest/V1/customers/1").await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// Request data is the body merged with the query string, and an empty body is no data: a
/// client that signs in with `?username=..&password=..` and nothing in the body gets its
/// token (Framework `Webapi/Rest/Request.php`). A body that is not JSON is `Decoding error.`
/// (production mode; `Webapi/Rest/Request/Deserializer/Json.php`).
#[tokio::test]
async fn sign_in_by_query_string_and_bodies_that_are_not_json() {
    let m = Magento::start().await;
    let http = roster_http::client();
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("username", ADMIN)
        .append_pair("password", PASSWORD)
        .finish();
    let resp = http
        .post(format!("{}/rest/V1/integration/admin/token?{query}", m.url))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let token: String = resp.json().await.unwrap();
    assert_eq!(token.len(), 32);

    let resp = http
        .post(format!("{}/rest/V1/integration/admin/token", m.url))
        .header("content-type", "application/json")
        .body("username=admin")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body, json!({"message": "Decoding error."}));
    let (status, _) = m
        .call(Method::GET, "/rest/V1/store/websites", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
}
