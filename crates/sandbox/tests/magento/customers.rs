use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::harness::Magento;

async fn create(
    m: &Magento,
    token: &str,
    customer: Value,
    password: Option<&str>,
) -> (StatusCode, Value) {
    let mut body = json!({ "customer": customer });
    if let Some(p) = password {
        body["password"] = json!(p);
    }
    m.call(Method::POST, "/rest/V1/customers", Some(token), Some(body))
        .await
}

#[tokio::test]
async fn create_with_and_without_password_and_email_uniqueness_per_website() {
    let m = Magento::start().await;
    let t = m.admin().await;
    let (status, c) = create(&m, &t, json!({"email": "new@example.com", "firstname": "New", "lastname": "User", "website_id": 1}), None).await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert!(c["id"].as_i64().unwrap() > 40);
    assert_eq!(c["group_id"], 1);
    assert_eq!(c["created_in"], "Default Store View");
    assert!(
        c["created_at"].as_str().unwrap().len() == 19,
        "Magento's 'YYYY-MM-DD HH:MM:SS'"
    );
    let mail: Value = m
        .http
        .get(format!("{}/sandbox/mailbox", m.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        mail.as_array()
            .unwrap()
            .iter()
            .any(|x| x["to"] == "new@example.com"),
        "a welcome email with a set-password link"
    );

    let (status, body) = create(
        &m,
        &t,
        json!({"email": "NEW@example.com", "firstname": "A", "lastname": "B", "website_id": 1}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["message"],
        "A customer with the same email address already exists in an associated website."
    );
    let (status, _) = create(
        &m,
        &t,
        json!({"email": "new@example.com", "firstname": "A", "lastname": "B", "website_id": 2}),
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the same email in another website is another customer"
    );

    let (status, body) = create(
        &m,
        &t,
        json!({"email": "p@example.com", "firstname": "A", "lastname": "B"}),
        Some("short1A"),
    )
    .await;
    assert_eq!(
        (status, body["parameters"][0].clone()),
        (StatusCode::BAD_REQUEST, json!("8"))
    );
    let (status, body) = create(
        &m,
        &t,
        json!({"email": "p@example.com", "firstname": "A", "lastname": "B"}),
        Some("alllowercase1"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Minimum of different classes")
    );
    let (status, c) = create(
        &m,
        &t,
        json!({"email": "p@example.com", "firstname": "A", "lastname": "B"}),
        Some("Str0ng!Pass"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    let (status, token) = m
        .token_for("customer", "p@example.com", "Str0ng!Pass")
        .await;
    assert_eq!(status, StatusCode::OK, "{token}");

    let (status, body) = create(
        &m,
        &t,
        json!({"email": "x@example.com", "firstname": "A"}),
        None,
    )
    .await;
    assert_eq!(
        (status, body["parameters"]["fieldName"].clone()),
        (StatusCode::BAD_REQUEST, json!("lastname"))
    );
    let (status, _) = create(
        &m,
        &t,
        json!({"email": "not-an-email", "firstname": "A", "lastname": "B"}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = create(
        &m,
        &t,
        json!({"email": "w@example.com", "firstname": "A", "lastname": "B", "website_id": 9}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = create(
        &m,
        &t,
        json!({"email": "g@example.com", "firstname": "A", "lastname": "B", "group_id": "x"}),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn put_merges_and_addresses_are_replaced_only_when_given() {
    let m = Magento::start().await;
    let t = m.admin().await;
    let (_, before) = m.get(&t, "/rest/V1/customers/1").await;
    let addresses = before["addresses"].as_array().unwrap().clone();
    assert!(!addresses.is_empty());

    let (status, after) = m
        .call(
            Method::PUT,
            "/rest/V1/customers/1",
            Some(&t),
            Some(json!({"customer": {"group_id": 3}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(after["group_id"], 3);
    assert_eq!(
        after["addresses"],
        json!(addresses),
        "2.4 merges: omitted addresses stay"
    );
    assert_eq!(after["firstname"], before["firstname"]);
    assert_eq!(after["created_at"], before["created_at"]);

    let new_address = json!({"street": ["9 New Road"], "city": "Lyon", "country_id": "FR", "postcode": "69001", "telephone": "1", "firstname": "V", "lastname": "C"});
    let (_, replaced) = m
        .call(
            Method::PUT,
            "/rest/V1/customers/1",
            Some(&t),
            Some(json!({"customer": {"addresses": [addresses[0].clone(), new_address]}})),
        )
        .await;
    let list = replaced["addresses"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(
        list[0]["id"], addresses[0]["id"],
        "a kept address keeps its id"
    );
    assert!(list[1]["id"].as_i64().unwrap() > 0);
    assert_eq!(list[1]["customer_id"], 1);
    let (_, emptied) = m
        .call(
            Method::PUT,
            "/rest/V1/customers/1",
            Some(&t),
            Some(json!({"customer": {"addresses": []}})),
        )
        .await;
    assert_eq!(emptied["addresses"], json!([]), "[] deletes every address");

    let (status, body) = m
        .call(
            Method::PUT,
            "/rest/V1/customers/1",
            Some(&t),
            Some(json!({"nope": 1})),
        )
        .await;
    assert_eq!(
        (status, body["parameters"]["fieldName"].clone()),
        (StatusCode::BAD_REQUEST, json!("customer"))
    );
}

#[tokio::test]
async fn delete_get_404_and_restart_keeps_everything() {
    let m = Magento::start().await;
    let t = m.admin().await;
    let (status, body) = m
        .call(Method::DELETE, "/rest/V1/customers/2", Some(&t), None)
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!(true)));
    let (status, body) = m.get(&t, "/rest/V1/customers/2").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"message": "No such entity with %fieldName = %fieldValue", "parameters": {"fieldName": "customerId", "fieldValue": 2}})
    );
    let (status, _) = m.get(&t, "/rest/V1/customers/abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    m.call(
        Method::PUT,
        "/rest/V1/customers/3",
        Some(&t),
        Some(json!({"customer": {"lastname": "Renamed"}})),
    )
    .await;

    let m = m.restart().await;
    let t = m.admin().await;
    assert_eq!(
        m.get(&t, "/rest/V1/customers/2").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        m.get(&t, "/rest/V1/customers/3").await.1["lastname"],
        "Renamed"
    );
}

#[tokio::test]
async fn store_codes_routes_groups_and_hostile_input() {
    let m = Magento::start().await;
    let t = m.admin().await;
    // Customer 5 (index 4) is in the wholesale website: invisible from the default store.
    assert_eq!(
        m.get(&t, "/rest/V1/customers/5").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        m.get(&t, "/rest/all/V1/customers/5").await.1["website_id"],
        2
    );
    assert_eq!(
        m.get(&t, "/rest/b2b_en/V1/customers/5").await.0,
        StatusCode::OK
    );
    let (status, body) = m.get(&t, "/rest/nowhere/V1/customers/1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body["message"],
        "The store that was requested wasn't found. Verify the store and try again."
    );
    let (status, body) = m.get(&t, "/rest/V1/no/such/route").await;
    assert_eq!(
        (status, body),
        (
            StatusCode::NOT_FOUND,
            json!({"message": "Request does not match any route."})
        )
    );

    let (status, group) = m.get(&t, "/rest/V1/customerGroups/2").await;
    assert_eq!(
        (status, group["code"].clone()),
        (StatusCode::OK, json!("Wholesale"))
    );
    let (_, groups) = m
        .get(
            &t,
            "/rest/V1/customerGroups/search?searchCriteria[sortOrders][0][field]=code",
        )
        .await;
    assert_eq!(groups["total_count"], 4);
    assert_eq!(
        groups["items"][0]["code"], "Wholesale",
        "no direction sorts descending, as Magento's SortingProcessor does"
    );
    let (_, groups) = m
        .get(
            &t,
            "/rest/V1/customerGroups/search?searchCriteria[sortOrders][0][field]=code&searchCriteria[sortOrders][0][direction]=asc",
        )
        .await;
    assert_eq!(groups["items"][0]["code"], "General");
    let (status, refused) = m
        .get(
            &t,
            "/rest/V1/customerGroups/search?searchCriteria[sortOrders][0][field]=code&searchCriteria[sortOrders][0][direction]=up",
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(refused["parameters"], json!(["ASC", "DESC"]));
    let (_, views) = m.get(&t, "/rest/V1/store/storeViews").await;
    assert!(views.as_array().unwrap().iter().any(|v| v["code"] == "fr"));

    let resp = m
        .http
        .post(format!("{}/rest/all/V1/customers", m.url))
        .bearer_auth(&t)
        .header("content-type", "application/json")
        .body("{\"customer\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.text().await.unwrap().contains("Decoding error"));
    let resp = m
        .http
        .post(format!("{}/rest/all/V1/customers", m.url))
        .bearer_auth(&t)
        .header("content-type", "text/plain")
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let huge = vec![b' '; 33 * 1024 * 1024];
    let resp = m
        .http
        .post(format!("{}/rest/all/V1/customers", m.url))
        .bearer_auth(&t)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let (status, _) = m
        .call(Method::POST, "/rest/V1/customers", Some(&t), Some(json!({"customer": {"email": "a'; DROP TABLE customers;--@x.example", "firstname": "{{7*7}}", "lastname": [1]}})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        m.get(&t, "/rest/V1/customers/1").await.0,
        StatusCode::OK,
        "still there"
    );
}
