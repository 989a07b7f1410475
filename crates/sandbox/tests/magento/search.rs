use reqwest::StatusCode;
use serde_json::json;

use super::harness::Magento;

fn filter(g: usize, f: usize, field: &str, value: &str, cond: &str) -> String {
    let p = format!("searchCriteria[filter_groups][{g}][filters][{f}]");
    let value: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
    format!("{p}[field]={field}&{p}[value]={value}&{p}[condition_type]={cond}")
}

#[tokio::test]
async fn search_criteria_in_full() {
    let m = Magento::start().await;
    let t = m.admin().await;
    let (status, body) = m.get(&t, "/rest/all/V1/customers/search").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"message": "\"%fieldName\" is required. Enter and try again.", "parameters": {"fieldName": "searchCriteria"}})
    );

    let (_, all) = m
        .get(&t, "/rest/all/V1/customers/search?searchCriteria")
        .await;
    assert_eq!(all["total_count"], 40);
    assert_eq!(all["items"].as_array().unwrap().len(), 40);
    let (_, default) = m.get(&t, "/rest/V1/customers/search?searchCriteria").await;
    assert_eq!(
        default["total_count"], 32,
        "the default store sees its own website only"
    );

    let (_, page) = m.get(&t, "/rest/all/V1/customers/search?searchCriteria[pageSize]=15&searchCriteria[currentPage]=3").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 10);
    assert_eq!(
        page["search_criteria"],
        json!({"filter_groups": [], "page_size": 15, "current_page": 3})
    );
    let (_, past) = m.get(&t, "/rest/all/V1/customers/search?searchCriteria[pageSize]=15&searchCriteria[currentPage]=9").await;
    assert_eq!(
        (past["items"].clone(), past["total_count"].clone()),
        (json!([]), json!(40))
    );

    // OR inside a group, AND across groups.
    let q = format!(
        "{}&{}&{}",
        filter(0, 0, "group_id", "2", "eq"),
        filter(0, 1, "group_id", "3", "eq"),
        filter(1, 0, "email", "%example.com", "like")
    );
    let (_, found) = m
        .get(&t, &format!("/rest/all/V1/customers/search?{q}"))
        .await;
    let items = found["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(
        items
            .iter()
            .all(|c| c["group_id"] == 2 || c["group_id"] == 3)
    );
    assert_eq!(
        found["search_criteria"]["filter_groups"][0]["filters"][1]["value"],
        "3"
    );

    for (cond, value, check) in [
        ("in", "1,2,3", 3usize),
        ("nin", "1,2", 38),
        ("gt", "37", 3),
        ("gteq", "37", 4),
        ("from", "37", 4),
        ("moreq", "37", 4),
        ("lt", "3", 2),
        ("lteq", "3", 3),
        ("to", "3", 3),
        ("neq", "1", 39),
        ("finset", "7", 1),
        ("nfinset", "7", 39),
    ] {
        let (status, r) = m
            .get(
                &t,
                &format!(
                    "/rest/all/V1/customers/search?{}",
                    filter(0, 0, "id", value, cond)
                ),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{cond}: {r}");
        assert_eq!(r["total_count"], check, "{cond} {value}");
    }
    // Partial responses: only the fields asked for, in each item; total_count only if asked.
    let (_, partial) = m
        .get(
            &t,
            "/rest/all/V1/customers/search?searchCriteria[pageSize]=3&fields=items[id,email],total_count",
        )
        .await;
    assert_eq!(partial["total_count"], 40, "{partial}");
    assert!(partial.get("search_criteria").is_none(), "{partial}");
    for item in partial["items"].as_array().unwrap() {
        let keys: Vec<&String> = item.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["id", "email"], "{item}");
    }
    let (_, one) = m.get(&t, "/rest/all/V1/customers/1?fields=email").await;
    assert_eq!(one.as_object().unwrap().len(), 1, "{one}");

    // `like` is MySQL's: `%` and `_` are wildcards, a backslash makes them literal.
    let (_, underscores) = m
        .get(
            &t,
            &format!(
                "/rest/all/V1/customers/search?{}",
                filter(0, 0, "email", "%\\_%", "like")
            ),
        )
        .await;
    let items = underscores["items"].as_array().unwrap();
    assert!(!items.is_empty() && items.len() < 40, "{underscores}");
    assert!(
        items
            .iter()
            .all(|c| c["email"].as_str().unwrap().contains('_')),
        "{underscores}"
    );
    let (_, percent) = m
        .get(
            &t,
            &format!(
                "/rest/all/V1/customers/search?{}",
                filter(0, 0, "email", "%\\%%", "like")
            ),
        )
        .await;
    assert_eq!(percent["total_count"], 0, "{percent}");
    let (_, nulls) = m
        .get(
            &t,
            &format!(
                "/rest/all/V1/customers/search?{}",
                filter(0, 0, "dob", "", "null")
            ),
        )
        .await;
    let (_, notnulls) = m
        .get(
            &t,
            &format!(
                "/rest/all/V1/customers/search?{}",
                filter(0, 0, "dob", "", "notnull")
            ),
        )
        .await;
    assert_eq!(
        nulls["total_count"].as_i64().unwrap() + notnulls["total_count"].as_i64().unwrap(),
        40
    );
    let (_, nlike) = m
        .get(
            &t,
            &format!(
                "/rest/all/V1/customers/search?{}",
                filter(0, 0, "email", "roni%", "nlike")
            ),
        )
        .await;
    assert_eq!(nlike["total_count"], 39);

    let (_, sorted) = m.get(&t, "/rest/all/V1/customers/search?searchCriteria[sortOrders][0][field]=email&searchCriteria[sortOrders][0][direction]=DESC&searchCriteria[pageSize]=5").await;
    let emails: Vec<&str> = sorted["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["email"].as_str().unwrap())
        .collect();
    let mut expected = emails.clone();
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(emails, expected);

    // Hostile filters are data, never SQL; unknown fields and conditions are 400s.
    let (status, r) = m
        .get(
            &t,
            &format!(
                "/rest/all/V1/customers/search?{}",
                filter(0, 0, "email", "x' OR '1'='1", "eq")
            ),
        )
        .await;
    assert_eq!(
        (status, r["total_count"].clone()),
        (StatusCode::OK, json!(0))
    );
    let (status, _) = m
        .get(
            &t,
            &format!(
                "/rest/all/V1/customers/search?{}",
                filter(0, 0, "password_hash", "x", "eq")
            ),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = m
        .get(
            &t,
            &format!(
                "/rest/all/V1/customers/search?{}",
                filter(0, 0, "id; DROP TABLE customers", "x", "eq")
            ),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = m
        .get(
            &t,
            &format!(
                "/rest/all/V1/customers/search?{}",
                filter(0, 0, "id", "1", "regexp")
            ),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = m
        .get(
            &t,
            "/rest/all/V1/customers/search?searchCriteria[pageSize]=lots",
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        m.get(&t, "/rest/all/V1/customers/search?searchCriteria")
            .await
            .1["total_count"],
        40
    );
}
