//! A Marketo subscription on Adobe Identity, linked to the Adobe sandbox: who is in the
//! subscription's product profile decides who its standard users are, after a sync delay.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use roster_sandbox::marketo::ims_sync::AdobeLink;
use serde_json::{Value, json};

use super::harness::Adobe;
use crate::marketo::harness::Sandbox;

const DELAY: Duration = Duration::from_millis(1500);
const PROFILE: &str = "Marketo Engage - Production";

/// Waits until `check` holds, up to 15 s (the delay plus ample slack), polling.
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within 15 s");
}

async fn marketo_user(sb: &Sandbox, token: &str, email: &str) -> Option<Value> {
    let (status, body) = sb.get(token, &format!("{email}/user.json")).await;
    (status == StatusCode::OK && body.get("errors").is_none()).then_some(body)
}

#[tokio::test]
async fn the_product_profile_decides_who_the_standard_users_are() {
    let adobe = Adobe::start().await;
    let link = AdobeLink {
        data_dir: adobe.dir.path().to_path_buf(),
        sync_delay: DELAY,
    };
    let sb = Sandbox::start_with(|c| {
        c.ims = true;
        c.adobe = Some(link);
    })
    .await;
    let token = sb.token().await;

    // The seeds agree: everyone in the profile (directly or through a user group) is a
    // Marketo user already, and stays through the syncs below.
    assert!(
        marketo_user(&sb, &token, "katherine.johnson@acme.example")
            .await
            .is_some(),
        "in the profile through a user group"
    );

    // A joiner: created in the Admin Console and added to the profile; not in Marketo
    // before the delay, in it after.
    let joiner = "new.joiner@acme.example";
    let added_at = Instant::now();
    let answer = adobe
        .action(json!([{"user": joiner, "do": [
            {"createFederatedID": {"email": joiner, "firstname": "New", "lastname": "Joiner", "country": "US"}},
            {"add": {"group": [PROFILE]}}
        ]}]))
        .await;
    assert_eq!(answer["result"], "success", "{answer}");
    assert!(marketo_user(&sb, &token, joiner).await.is_none());
    until("the joiner's arrival", || async {
        marketo_user(&sb, &token, joiner).await.is_some()
    })
    .await;
    assert!(
        added_at.elapsed() >= DELAY,
        "arrived after {:?}, before the sync delay",
        added_at.elapsed()
    );
    // With the default role, as Adobe documents for users added in the Admin Console.
    let (_, roles) = sb.get(&token, &format!("{joiner}/roles.json")).await;
    let pairs: Vec<(String, String)> = roles
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["accessRoleName"].as_str().unwrap_or_default().to_string(),
                r["workspaceName"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        vec![("Standard User".to_string(), "Default".to_string())],
        "{roles}"
    );
    // Roles are then Marketo's business, through its API.
    let (status, _) = sb
        .post(
            &token,
            &format!("{joiner}/roles/create.json"),
            json!([{"accessRoleId": 2, "workspaceId": 1008}]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // But inviting or deleting a standard user there is refused, as on a real one.
    let (_, refused) = sb
        .post(&token, &format!("{joiner}/delete.json"), json!({}))
        .await;
    assert!(refused.to_string().contains("Adobe Identity"), "{refused}");

    // An API-only user is Marketo's own, in no profile, and stays.
    let (status, _) = sb.invite_api_user(&token, "api.bot@acme.example").await;
    assert_eq!(status, StatusCode::OK);

    // A leaver: out of the profile; gone from Marketo after the delay.
    let answer = adobe
        .action(json!([{"user": joiner, "do": [{"remove": {"group": [PROFILE]}}]}]))
        .await;
    assert_eq!(answer["result"], "success", "{answer}");
    until("the leaver's removal", || async {
        marketo_user(&sb, &token, joiner).await.is_none()
    })
    .await;
    assert!(
        marketo_user(&sb, &token, "api.bot@acme.example")
            .await
            .is_some(),
        "API-only users stay"
    );
    for seeded in [
        "ada.lovelace@acme.example",
        "o'brien+marketing@acme.example",
        "katherine.johnson@acme.example",
    ] {
        assert!(
            marketo_user(&sb, &token, seeded).await.is_some(),
            "{seeded}"
        );
    }
}
