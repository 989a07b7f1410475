use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::harness::Magento;

/// Polls the bulk's status until no operation is open (status 4).
async fn settled(m: &Magento, token: &str, uuid: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = m.get(token, &format!("/rest/V1/bulk/{uuid}/status")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["operations_list"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["status"] != 4)
        {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "bulk {uuid} did not finish: {body}"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn bulk_create_reports_each_operation() {
    let m = Magento::start().await;
    let t = m.admin().await;
    let items = json!([
        {"customer": {"email": "bulk1@example.com", "firstname": "B", "lastname": "One"}},
        {"customer": {"email": "roni_cost@example.com", "firstname": "Dup", "lastname": "Licate"}},
        {"nope": true},
    ]);
    let (status, accepted) = m
        .call(
            Method::POST,
            "/rest/async/bulk/V1/customers",
            Some(&t),
            Some(items),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(accepted["errors"], true);
    let uuid = accepted["bulk_uuid"].as_str().unwrap().to_string();
    let statuses: Vec<&str> = accepted["request_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["accepted", "accepted", "rejected"]);
    assert_eq!(
        accepted["request_items"][0]["data_hash"]
            .as_str()
            .unwrap()
            .len(),
        16
    );

    let done = settled(&m, &t, &uuid).await;
    let ops = done["operations_list"].as_array().unwrap();
    assert_eq!(done["operation_count"], 3);
    assert_eq!(
        (
            ops[0]["status"].clone(),
            ops[1]["status"].clone(),
            ops[2]["status"].clone()
        ),
        (json!(1), json!(3), json!(5))
    );
    assert!(
        ops[1]["result_message"]
            .as_str()
            .unwrap()
            .contains("same email address"),
        "{done}"
    );
    let (_, detailed) = m
        .get(&t, &format!("/rest/V1/bulk/{uuid}/detailed-status"))
        .await;
    assert!(
        detailed["operations_list"][0]["topic_name"]
            .as_str()
            .unwrap()
            .contains("createaccount")
    );
    let (_, found) = m.get(&t, "/rest/V1/customers/search?searchCriteria[filter_groups][0][filters][0][field]=email&searchCriteria[filter_groups][0][filters][0][value]=bulk1@example.com").await;
    assert_eq!(found["total_count"], 1);

    let (status, body) = m.get(&t, "/rest/V1/bulk/no-such-uuid/status").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["parameters"]["bulkUuid"], "no-such-uuid");
    let (status, _) = m
        .call(
            Method::POST,
            "/rest/async/bulk/V1/customers",
            Some(&t),
            Some(json!({"customer": {}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the body must be an array");
    let (status, _) = m
        .call(
            Method::POST,
            "/rest/async/bulk/V1/nothing",
            Some(&t),
            Some(json!([])),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bulk_update_by_customer_id_regroups_and_keeps_addresses() {
    let m = Magento::start().await;
    let t = m.admin().await;
    let (_, general) = m
        .get(&t, "/rest/all/V1/customers/search?searchCriteria[filter_groups][0][filters][0][field]=group_id&searchCriteria[filter_groups][0][filters][0][value]=1")
        .await;
    let items: Vec<Value> = general["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| json!({"customerId": c["id"], "customer": {"group_id": 3}}))
        .collect();
    let n = items.len();
    assert!(n > 5);
    // Bulk routes write `:customerId` as `byCustomerId`; the path-style form is not a route.
    let (status, body) = m
        .call(
            Method::PUT,
            "/rest/all/async/bulk/V1/customers/by/customerId",
            Some(&t),
            Some(Value::Array(items.clone())),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["message"], "Request does not match any route.");
    let mut items = items;
    items.push(json!({"customerId": 99_999, "customer": {"group_id": 3}}));
    let (status, accepted) = m
        .call(
            Method::PUT,
            "/rest/all/async/bulk/V1/customers/byCustomerId",
            Some(&t),
            Some(Value::Array(items)),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let done = settled(&m, &t, accepted["bulk_uuid"].as_str().unwrap()).await;
    let ops = done["operations_list"].as_array().unwrap();
    assert!(ops[..n].iter().all(|o| o["status"] == 1), "{done}");
    assert_eq!(ops[n]["status"], 3);
    assert!(
        ops[n]["result_message"]
            .as_str()
            .unwrap()
            .contains("No such entity with customerId = 99999"),
        "{done}"
    );
    for c in general["items"].as_array().unwrap() {
        let (_, now) = m
            .get(&t, &format!("/rest/all/V1/customers/{}", c["id"]))
            .await;
        assert_eq!(now["group_id"], 3);
        assert_eq!(
            now["addresses"], c["addresses"],
            "a merge keeps the addresses"
        );
    }
}

/// `DELETE /async/bulk/V1/customers/byCustomerId` (Adobe's bulk-endpoints example) deletes
/// in the background; `operation-status/{status}` counts the operations in a status.
#[tokio::test]
async fn bulk_delete_is_routed_and_operations_are_counted_by_status() {
    let m = Magento::start().await;
    let t = m.admin().await;
    let (status, accepted) = m
        .call(
            Method::DELETE,
            "/rest/all/async/bulk/V1/customers/byCustomerId",
            Some(&t),
            Some(json!([{"customerId": 1}, {"customerId": 2}, {"customerId": 99999}, {"id": 3}])),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(accepted["request_items"][3]["status"], "rejected");
    let uuid = accepted["bulk_uuid"].as_str().unwrap().to_string();
    let done = settled(&m, &t, &uuid).await;
    assert_eq!(done["operations_list"][0]["status"], 1, "{done}");
    assert_eq!(done["operations_list"][2]["status"], 3, "{done}");
    let count = |s: u8| {
        let (m, t, uuid) = (&m, &t, &uuid);
        async move {
            let (status, n) = m
                .get(t, &format!("/rest/V1/bulk/{uuid}/operation-status/{s}"))
                .await;
            assert_eq!(status, StatusCode::OK, "{n}");
            n
        }
    };
    assert_eq!(count(1).await, json!(2));
    assert_eq!(count(3).await, json!(1));
    assert_eq!(count(5).await, json!(1));
    assert_eq!(count(4).await, json!(0));
    let (status, _) = m.get(&t, "/rest/all/V1/customers/1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = m.get(&t, "/rest/all/V1/customers/3").await;
    assert_eq!(status, StatusCode::OK, "the rejected item deleted nothing");
}
