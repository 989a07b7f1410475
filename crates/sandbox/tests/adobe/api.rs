//! The Adobe sandbox over HTTP: IMS sign-in, the headers UMAPI demands, paging, the action
//! endpoint's rules and answers, limits, faults and persistence.

use std::time::Duration;

use serde_json::{Value, json};

use super::harness::{Adobe, CLIENT_ID, CLIENT_SECRET, ORG, sign_in};

fn codes(answer: &Value) -> Vec<(u64, u64, String)> {
    answer["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    (
                        e["index"].as_u64().unwrap(),
                        e["step"].as_u64().unwrap(),
                        e["errorCode"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn create(email: &str) -> Value {
    json!({"createFederatedID": {"email": email, "firstname": "New", "lastname": "Person", "country": "US", "option": "ignoreIfAlreadyExists"}})
}

#[tokio::test]
async fn ims_issues_tokens_from_form_or_query_on_v2_and_v3_and_refuses_bad_requests() {
    let a = Adobe::start().await;
    for path in ["/ims/token/v2", "/ims/token/v3"] {
        let resp = a
            .http
            .post(format!("{}{path}", a.url))
            .query(&[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
                ("scope", "openid,AdobeID,user_management_sdk"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["token_type"], "bearer");
        assert_eq!(body["expires_in"], 86399, "seconds, as S2S answers");
        assert!(body["access_token"].as_str().unwrap().starts_with("ey"));
    }
    let wrong = |secret: &'static str, scope: &'static str| {
        a.http.post(format!("{}/ims/token/v3", a.url)).form(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", secret),
            ("scope", scope),
        ])
    };
    let resp = wrong("nope", "openid,AdobeID,user_management_sdk")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert!(body["error_description"].is_string());
    let resp = wrong(CLIENT_SECRET, "openid,AdobeID").send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_scope"
    );
}

#[tokio::test]
async fn umapi_needs_a_bearer_token_and_the_matching_api_key_and_echoes_the_request_id() {
    let a = Adobe::start().await;
    let url = a.api(&format!("/users/{ORG}/0"));
    let resp = a
        .http
        .get(&url)
        .header("X-Api-Key", CLIENT_ID)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.starts_with("Bearer realm=\"JIL\""), "{challenge}");
    let resp = a
        .http
        .get(&url)
        .bearer_auth("ey-not-issued")
        .header("X-Api-Key", CLIENT_ID)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = a.http.get(&url).bearer_auth(&a.token).send().await.unwrap();
    assert_eq!(resp.status(), 403, "no API key");
    let resp = a
        .http
        .get(&url)
        .bearer_auth(&a.token)
        .header("x-api-key", "someone-else")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "another client's key");
    let resp = a
        .http
        .get(&url)
        .bearer_auth(&a.token)
        .header("X-API-KEY", CLIENT_ID)
        .header("X-Request-Id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "header names are case-insensitive");
    assert_eq!(resp.headers()["x-request-id"], "trace-42");
    let resp = a.get("/users/0000@AdobeOrg/0").await;
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["result"],
        "error.organization.invalid_id"
    );
}

#[tokio::test]
async fn users_come_in_pages_with_counts_and_a_page_past_the_last_is_the_last() {
    let a = Adobe::start_with(|c| c.page_size = 4).await;
    let mut seen = Vec::new();
    for page in 0..3 {
        let resp = a.get(&format!("/users/{ORG}/{page}?directOnly=True")).await;
        assert_eq!(resp.status(), 200);
        let h = resp.headers().clone();
        assert_eq!(h["x-total-count"], "9");
        assert_eq!(h["x-page-count"], "3");
        assert_eq!(h["x-current-page"], page.to_string().as_str());
        assert_eq!(h["x-page-size"], "4");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["result"], "success");
        assert_eq!(body["lastPage"], page == 2);
        for u in body["users"].as_array().unwrap() {
            seen.push(u["email"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(seen.len(), 9);
    let past = a.get_json(&format!("/users/{ORG}/7")).await;
    assert_eq!(past["lastPage"], true);
    assert_eq!(past["users"].as_array().unwrap().len(), 1, "the last page");
    // directOnly (read case-insensitively) decides whether profiles given by user groups show.
    let find = |body: &Value, email: &str| {
        body["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == email)
            .cloned()
    };
    let direct = a.get_json(&format!("/users/{ORG}/0?directOnly=TRUE")).await;
    let all = a
        .get_json(&format!("/users/{ORG}/0?directOnly=false"))
        .await;
    let k = "katherine.johnson@acme.example";
    assert_eq!(
        find(&direct, k).unwrap()["groups"],
        json!(["Marketing Ops"])
    );
    assert_eq!(
        find(&all, k).unwrap()["groups"],
        json!(["Marketo Engage - Production", "Marketing Ops"])
    );
    // One user, looked up case-insensitively; an unknown one is a 404 with Adobe's body.
    let grace = a.user("Grace.Hopper@ACME.example").await.unwrap();
    assert_eq!(grace["email"], "grace.hopper@acme.example");
    assert_eq!(grace["type"], "federatedID");
    let resp = a
        .get(&format!("/organizations/{ORG}/users/nobody@acme.example"))
        .await;
    assert_eq!(resp.status(), 404);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["result"],
        "error.user.not_found"
    );
}

#[tokio::test]
async fn groups_and_their_members_are_listed_and_unknown_groups_are_404() {
    let a = Adobe::start_with(|c| c.group_page_size = 5).await;
    let first = a.get_json(&format!("/groups/{ORG}/0")).await;
    let second = a.get_json(&format!("/groups/{ORG}/1")).await;
    assert_eq!(first["lastPage"], false);
    assert_eq!(second["lastPage"], true);
    let groups: Vec<Value> = [first, second]
        .iter()
        .flat_map(|b| b["groups"].as_array().unwrap().clone())
        .collect();
    let production = groups
        .iter()
        .find(|g| g["groupName"] == "Marketo Engage - Production")
        .unwrap();
    assert_eq!(production["type"], "PRODUCT_PROFILE");
    assert_eq!(
        production["memberCount"], 8,
        "seven direct, one through Marketing Ops"
    );
    assert!(
        production["productName"]
            .as_str()
            .unwrap()
            .starts_with("Marketo Engage")
    );
    let resp = a.get(&format!("/groups/{ORG}/9")).await;
    assert_eq!(resp.status(), 404);
    let members = a.get_json(&format!("/users/{ORG}/0/_org_admin")).await;
    assert_eq!(members["groupName"], "_org_admin");
    let emails: Vec<&str> = members["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        ["ada.lovelace@acme.example", "it.admin@acme.example"]
    );
    let bare = a
        .get_json(&format!("/users/{ORG}/0/Acrobat%20Pro?excludeGroups=true"))
        .await;
    assert!(bare["users"][0].get("groups").is_none());
    let resp = a.get(&format!("/users/{ORG}/0/No%20Such%20Group")).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["result"],
        "error.group.not_found"
    );
}

#[tokio::test]
async fn actions_create_add_remove_and_report_each_failed_entry_and_step() {
    let a = Adobe::start().await;
    let answer = a
        .action(json!([
            {"user": "New.Hire@acme.example", "requestID": "r1", "do": [create("New.Hire@acme.example"), {"add": {"group": ["Marketo Engage - Production"]}}]},
            {"user": "grace.hopper@acme.example", "do": [{"add": {"group": ["No Such Profile"]}}, {"remove": {"group": ["Marketo Engage - Sandbox"]}}]},
            {"user": "x@unclaimed.example", "requestID": "r3", "do": [create("x@unclaimed.example")]},
        ]))
        .await;
    assert_eq!(answer["result"], "partial");
    assert_eq!(answer["completed"], 1);
    assert_eq!(answer["notCompleted"], 2);
    assert_eq!(
        codes(&answer),
        [
            (1, 0, "error.group.not_found".to_owned()),
            (2, 0, "error.domain.trust.nonexistent".to_owned())
        ]
    );
    assert_eq!(answer["errors"][1]["requestID"], "r3");
    assert_eq!(answer["errors"][0]["user"], "grace.hopper@acme.example");
    // The failed step did nothing; the step after it still ran.
    assert_eq!(
        a.groups_of("grace.hopper@acme.example").await,
        ["Marketo Engage - Production"]
    );
    // Case kept as given, compared without case.
    let hire = a.user("new.hire@acme.example").await.unwrap();
    assert_eq!(hire["email"], "New.Hire@acme.example");
    assert_eq!(hire["groups"], json!(["Marketo Engage - Production"]));
    // A retried create with ignoreIfAlreadyExists is a success; without an option it is not.
    let again = a
        .action(json!([{"user": "new.hire@acme.example", "do": [create("new.hire@acme.example")]}]))
        .await;
    assert_eq!(again["result"], "success");
    let dup = a
        .action(json!([{"user": "new.hire@acme.example", "do": [{"createFederatedID": {"email": "new.hire@acme.example", "firstname": "N", "lastname": "H", "country": "US"}}]}]))
        .await;
    assert_eq!(
        codes(&dup),
        [(0, 0, "error.user.already_in_org".to_owned())]
    );
    // A letter-case-only change of the email is refused.
    let case = a
        .action(json!([{"user": "new.hire@acme.example", "do": [{"update": {"email": "new.hire@ACME.example"}}]}]))
        .await;
    assert_eq!(codes(&case), [(0, 0, "error.update.no".to_owned())]);
    // remove "all" keeps _org_admin, which UMAPI cannot remove (nor assign).
    let all = a
        .action(json!([
            {"user": "ada.lovelace@acme.example", "do": [{"remove": "all"}]},
            {"user": "alan.turing@acme.example", "do": [{"add": {"group": ["_org_admin"]}}]},
        ]))
        .await;
    assert_eq!(codes(&all), [(1, 0, "error.group.not_found".to_owned())]);
    assert_eq!(
        a.groups_of("ada.lovelace@acme.example").await,
        ["_org_admin"]
    );
    // removeFromOrg is last, and succeeds for someone who is not there.
    let gone = a
        .action(json!([
            {"user": "new.hire@acme.example", "do": [{"remove": "all"}, {"removeFromOrg": {"deleteAccount": false}}]},
            {"user": "ghost@acme.example", "do": [{"removeFromOrg": {}}]},
        ]))
        .await;
    assert_eq!(gone["result"], "success");
    assert!(a.user("new.hire@acme.example").await.is_none());
}

#[tokio::test]
async fn malformed_requests_and_entries_are_refused_with_adobes_codes() {
    let a = Adobe::start().await;
    let eleven: Vec<Value> = (0..11)
        .map(|n| json!({"user": format!("p{n}@acme.example"), "do": [create(&format!("p{n}@acme.example"))]}))
        .collect();
    let resp = a.action_response("", &Value::Array(eleven)).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["result"], "error.command.malformed");
    assert!(body["message"].as_str().unwrap().contains("at most 10"));
    let resp = a.action_response("", &json!({"user": "x"})).await;
    assert_eq!(resp.status(), 400, "not an array");
    let profiles: Vec<String> = (0..11).map(|n| format!("Profile {n}")).collect();
    let answer = a
        .action(json!([
            {"user": "grace.hopper@acme.example", "do": [{"add": {"group": ["Acrobat Pro"]}}, create("grace.hopper@acme.example")]},
            {"user": "grace.hopper@acme.example", "do": [{"removeFromOrg": {}}, {"add": {"group": ["Acrobat Pro"]}}]},
            {"user": "grace.hopper@acme.example", "do": [{"add": {"group": profiles}}]},
            {"user": "grace.hopper@acme.example", "do": [{"createFederatedID": {"email": "grace.hopper@acme.example", "option": "sometimes"}}]},
            {"usergroup": "Marketo Engage - Production", "do": [{"createUserGroup": {"option": "ignoreIfAlreadyExists"}}]},
            {"user": "grace.hopper@acme.example", "do": [{"resetPassword": {}}]},
        ]))
        .await;
    assert_eq!(answer["result"], "error");
    assert_eq!(
        codes(&answer),
        [
            (0, 1, "error.command.create.not_first".to_owned()),
            (1, 0, "error.command.removefromorg.not_last".to_owned()),
            (2, 0, "error.command.add_remove.list_too_long".to_owned()),
            (3, 0, "error.option.illegal".to_owned()),
            (4, 0, "error.usergroup.already_exists".to_owned()),
            (5, 0, "error.command.step.unknown".to_owned()),
        ]
    );
    // Nothing of it happened: grace is still in the org and not in Acrobat Pro.
    assert_eq!(
        a.groups_of("grace.hopper@acme.example").await,
        ["Marketo Engage - Production", "Marketo Engage - Sandbox"]
    );
}

#[tokio::test]
async fn test_mode_checks_but_changes_nothing_and_ignores_users_it_cannot_know() {
    let a = Adobe::start().await;
    let body = json!([
        {"user": "trial@acme.example", "do": [create("trial@acme.example"), {"add": {"group": ["Marketo Engage - Production"]}}]},
        {"user": "trial@acme.example", "do": [create("trial@acme.example")]},
        {"user": "nobody@acme.example", "do": [{"add": {"group": ["Acrobat Pro"]}}]},
        {"user": "nobody@acme.example", "do": [{"add": {"group": ["Nope"]}}]},
        {"user": "grace.hopper@acme.example", "do": [{"remove": "all"}]},
    ]);
    let resp = a.action_response("?testOnly=True", &body).await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["completed"], 0);
    assert_eq!(answer["completedInTestMode"], 4);
    assert_eq!(codes(&answer), [(3, 0, "error.group.not_found".to_owned())]);
    assert!(a.user("trial@acme.example").await.is_none());
    assert_eq!(a.groups_of("grace.hopper@acme.example").await.len(), 2);
}

#[tokio::test]
async fn user_groups_are_made_filled_and_give_their_profiles() {
    let a = Adobe::start().await;
    let answer = a
        .action(json!([{"usergroup": "Field Marketing", "do": [
            {"createUserGroup": {"description": "EMEA", "option": "ignoreIfAlreadyExists"}},
            {"add": {"user": ["alan.turing@acme.example"], "productConfiguration": ["Marketo Engage - Sandbox"]}},
        ]}]))
        .await;
    assert_eq!(answer["result"], "success", "{answer}");
    let alan = a
        .get_json(&format!(
            "/users/{ORG}/0/Marketo%20Engage%20-%20Sandbox?directOnly=false"
        ))
        .await;
    assert!(
        alan["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["email"] == "alan.turing@acme.example")
    );
    let gone = a
        .action(json!([{"usergroup": "Field Marketing", "do": [{"deleteUserGroup": {}}, {"add": {"user": ["nobody"]}}]}]))
        .await;
    assert_eq!(gone["result"], "success", "no step runs after a delete");
    assert_eq!(
        a.get(&format!("/users/{ORG}/0/Field%20Marketing"))
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn each_endpoint_family_is_limited_per_client_with_retry_after() {
    let a = Adobe::start_with(|c| {
        c.limits = roster_sandbox::adobe::AdobeLimits {
            action: 2,
            users: 3,
            groups: 1,
            window: Duration::from_secs(60),
        }
    })
    .await;
    for _ in 0..3 {
        assert_eq!(a.get(&format!("/users/{ORG}/0")).await.status(), 200);
    }
    let resp = a
        .get(&format!(
            "/organizations/{ORG}/users/grace.hopper@acme.example"
        ))
        .await;
    assert_eq!(resp.status(), 429, "one user counts as a user read");
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((55..=60).contains(&wait), "{wait}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error_code"], "429050");
    assert_eq!(a.get(&format!("/groups/{ORG}/0")).await.status(), 200);
    assert_eq!(a.get(&format!("/groups/{ORG}/0")).await.status(), 429);
    let noop = json!([{"user": "ghost@acme.example", "do": [{"removeFromOrg": {}}]}]);
    assert_eq!(a.action_response("", &noop).await.status(), 200);
    assert_eq!(a.action_response("", &noop).await.status(), 200);
    assert_eq!(a.action_response("", &noop).await.status(), 429);
    assert_eq!(a.server.as_ref().unwrap().stats().throttled, 3);
}

#[tokio::test]
async fn a_long_retry_after_and_gateway_faults_are_injected() {
    let a = Adobe::start_with(|c| {
        c.limits.users = 1;
        c.faults.retry_after = Some(Duration::from_secs(1938));
    })
    .await;
    a.get(&format!("/users/{ORG}/0")).await;
    let resp = a.get(&format!("/users/{ORG}/0")).await;
    assert_eq!(resp.headers()["retry-after"], "1938");
    let f = Adobe::start_with(|c| c.faults.error_rate = 1.0).await;
    for _ in 0..6 {
        let status = f.get(&format!("/users/{ORG}/0")).await.status().as_u16();
        assert!([502, 503, 504].contains(&status), "{status}");
    }
}

#[tokio::test]
async fn the_organization_survives_a_restart_and_keeps_its_client() {
    let a = Adobe::start().await;
    a.action(json!([{"user": "kept@acme.example", "do": [create("kept@acme.example"), {"add": {"group": ["Acrobat Pro"]}}]}]))
        .await;
    let a = a.restart().await;
    assert_eq!(a.groups_of("kept@acme.example").await, ["Acrobat Pro"]);
    assert!(!a.server.as_ref().unwrap().was_seeded());
    let again = sign_in(&a.http, &a.url).await;
    assert_ne!(again, a.token, "a new token, the old still valid");
}
