//! The Magento client against the Magento sandbox over HTTP.

use std::collections::BTreeSet;

use roster_domain::Secret;
use roster_magento::{
    AdminUsers, Client, ClientConfig, Condition, Criteria, MagentoError, OAuth1Credentials,
    TokenAuth,
};
use roster_sandbox::magento::{self, MagentoConfig, RunningMagento};
use serde_json::{Map, Value, json};
use tempfile::TempDir;

const USER: &str = "connector";
const PASSWORD: &str = "Connector-Pass-1";

struct Sandbox {
    server: RunningMagento,
    _dir: TempDir,
}

impl Sandbox {
    async fn start(admin_api: bool) -> Self {
        Self::start_with(|c| c.admin_users_api = admin_api).await
    }

    async fn start_with(change: impl FnOnce(&mut MagentoConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut c = MagentoConfig::new(dir.path());
        c.listen = "127.0.0.1:0".parse().unwrap();
        c.admin_user = Some(USER.into());
        c.admin_password = Some(Secret::new(PASSWORD));
        c.customers = 40;
        change(&mut c);
        Self {
            server: magento::start(c).await.unwrap(),
            _dir: dir,
        }
    }

    fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new(self.server.base_url(), USER, Secret::new(PASSWORD));
        c.page_size = 7;
        c.bulk_chunk = 9;
        c.poll_interval = std::time::Duration::from_millis(10);
        c
    }

    fn client(&self) -> Client {
        Client::new(self.config()).unwrap()
    }

    async fn advance_clock(&self, seconds: i64) {
        roster_http::client()
            .post(format!("{}/sandbox/clock", self.server.base_url()))
            .json(&json!({"advanceSeconds": seconds}))
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn pages_until_total_count_and_reads_reference_data() {
    let sb = Sandbox::start(false).await;
    let c = sb.client();
    let mut seen = Vec::new();
    let all = c
        .customers(&Criteria::new(), |got, total| seen.push((got, total)))
        .await
        .unwrap();
    assert_eq!(all.len(), 40);
    let ids: BTreeSet<i64> = all.iter().map(|x| x["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 40, "every customer exactly once");
    assert_eq!(seen.len(), 6, "pages of 7: {seen:?}");
    assert_eq!(seen.last(), Some(&(40, 40)));
    let wholesale = c
        .customers(
            &Criteria::new().and("group_id", Condition::Eq, 2),
            |_, _| {},
        )
        .await
        .unwrap();
    assert!(!wholesale.is_empty() && wholesale.iter().all(|x| x["group_id"] == 2));
    let groups = c.groups().await.unwrap();
    assert!(groups.iter().any(|g| g["code"] == "Retailer"));
    assert_eq!(c.websites().await.unwrap().len(), 3);
    assert_eq!(c.stats().logins, 1, "one sign-in for every call");
}

#[tokio::test]
async fn updates_fetch_merge_and_write_keeping_addresses() {
    let sb = Sandbox::start(false).await;
    let c = sb.client();
    let before = c.customer(1).await.unwrap();
    let mut changes = Map::new();
    changes.insert("group_id".into(), json!(3));
    changes.insert("lastname".into(), json!("Costello-Smith"));
    let after = c.update_customer(1, &changes).await.unwrap();
    assert_eq!(after["group_id"], 3);
    assert_eq!(after["lastname"], "Costello-Smith");
    assert_eq!(after["addresses"], before["addresses"]);
    assert_eq!(after["email"], before["email"]);

    let created = c
        .create_customer(json!({"email": "conn@example.com", "firstname": "Con", "lastname": "Nector", "website_id": 1, "group_id": 2}), None)
        .await
        .unwrap();
    let id = created["id"].as_i64().unwrap();
    assert_eq!(
        c.customers_by_email("conn@example.com")
            .await
            .unwrap()
            .len(),
        1
    );
    let dup = c.create_customer(json!({"email": "conn@example.com", "firstname": "A", "lastname": "B", "website_id": 1}), None).await.unwrap_err();
    assert!(
        dup.to_string()
            .contains("same email address already exists"),
        "{dup}"
    );
    c.delete_customer(id).await.unwrap();
    let gone = c.customer(id).await.unwrap_err();
    assert!(gone.is_not_found());
    assert!(
        gone.to_string()
            .contains(&format!("No such entity with customerId = {id}")),
        "{gone}"
    );
}

#[tokio::test]
async fn sign_in_failures_and_token_renewal() {
    let sb = Sandbox::start(false).await;
    let mut bad = sb.config();
    bad.password = Secret::new("Not-The-Password-9");
    let err = Client::new(bad).unwrap().groups().await.unwrap_err();
    assert!(matches!(err, MagentoError::SignIn { .. }), "{err}");
    let text = format!("{err} {err:?}");
    assert!(
        text.contains("ROSTER_MAGENTO_PASSWORD") && !text.contains("Not-The-Password-9"),
        "{text}"
    );

    let c = sb.client();
    c.groups().await.unwrap();
    // Past the token's 4 hours the server refuses it; the client signs in again and carries on.
    sb.advance_clock(4 * 3600 + 10).await;
    c.groups().await.unwrap();
    assert_eq!(c.stats().logins, 2);
}

#[tokio::test]
async fn bulk_updates_are_chunked_polled_and_report_each_failure() {
    let sb = Sandbox::start(false).await;
    let c = sb.client();
    let general = c
        .customers(
            &Criteria::new().and("group_id", Condition::Eq, 1),
            |_, _| {},
        )
        .await
        .unwrap();
    let mut changed: Vec<Value> = general
        .iter()
        .map(|x| {
            let mut x = x.clone();
            x["group_id"] = json!(3);
            x
        })
        .collect();
    let mut ghost = changed[0].clone();
    ghost["id"] = json!(99_999);
    changed.push(ghost);
    let mut reports = Vec::new();
    let outcome = c
        .bulk_update(&changed, |done, total| reports.push((done, total)))
        .await
        .unwrap();
    assert_eq!(outcome.operations, general.len() + 1);
    assert_eq!(outcome.complete, general.len());
    assert_eq!(outcome.failed.len(), 1);
    assert_eq!(outcome.failed[0].0, 99_999);
    assert!(
        outcome.failed[0].1.contains("No such entity"),
        "{:?}",
        outcome.failed
    );
    assert_eq!(outcome.bulk_uuids.len(), changed.len().div_ceil(9));
    assert_eq!(reports.last(), Some(&(changed.len(), changed.len())));
    for x in &general {
        let now = c.customer(x["id"].as_i64().unwrap()).await.unwrap();
        assert_eq!(now["group_id"], 3);
        assert_eq!(now["addresses"], x["addresses"]);
    }
}

#[tokio::test]
async fn bulk_deletions_are_chunked_polled_by_count_and_report_who_was_gone() {
    let sb = Sandbox::start(false).await;
    let c = sb.client();
    let all = c.customers(&Criteria::new(), |_, _| {}).await.unwrap();
    let mut ids: Vec<i64> = all[..12]
        .iter()
        .map(|x| x["id"].as_i64().unwrap())
        .collect();
    ids.push(99_999);
    let polls = c.stats().polls;
    let outcome = c.bulk_delete(&ids, |_, _| {}).await.unwrap();
    assert_eq!(outcome.operations, 13);
    assert_eq!(outcome.complete, 12);
    assert_eq!(outcome.failed.len(), 1);
    assert_eq!(outcome.failed[0].0, 99_999);
    assert!(
        outcome.failed[0].1.contains("No such entity"),
        "{:?}",
        outcome.failed
    );
    assert_eq!(outcome.bulk_uuids.len(), 13usize.div_ceil(9));
    assert!(c.stats().polls > polls);
    for id in &ids[..12] {
        assert!(c.customer(*id).await.unwrap_err().is_not_found());
    }
    let left = c.customers(&Criteria::new(), |_, _| {}).await.unwrap();
    assert_eq!(left.len(), all.len() - 12);
}

#[tokio::test]
async fn admin_users_are_detected_where_the_api_exists() {
    let core = Sandbox::start(false).await;
    let c = core.client();
    assert!(matches!(
        c.admin_users().await.unwrap(),
        AdminUsers::Unavailable
    ));
    let err = c.admin_roles().await.unwrap_err();
    assert!(err.to_string().contains("admin:user:create"), "{err}");

    let ext = Sandbox::start(true).await;
    let c = ext.client();
    let AdminUsers::Available(users) = c.admin_users().await.unwrap() else {
        panic!("the extension's API is there")
    };
    assert_eq!(users.len(), 1);
    let roles = c.admin_roles().await.unwrap();
    let made = c
        .create_admin_user(json!({"username": "ops2", "firstname": "O", "lastname": "P", "email": "ops2@example.com", "password": "Opsie1234", "role_id": roles[1]["id"], "is_active": true}))
        .await
        .unwrap();
    c.delete_admin_user(made["id"].as_i64().unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn html_gateway_errors_are_retried_like_any_5xx_and_named_as_a_proxy() {
    // 40% of calls, sign-ins included, get an nginx HTML 502/503/504 page.
    let sb = Sandbox::start_with(|c| {
        c.faults.html_error_rate = 0.4;
        c.faults.html_errors_first = 2;
    })
    .await;
    let mut config = sb.config();
    config.max_retries = 12;
    let c = Client::new(config).unwrap();
    // The first two calls get the page for certain, 40% of the rest by chance; read three
    // times (some twenty calls), each read coming back whole.
    let mut all = Vec::new();
    for _ in 0..3 {
        all = c.customers(&Criteria::new(), |_, _| {}).await.unwrap();
        assert_eq!(all.len(), 40);
    }
    let moved: Vec<Value> = all[..10]
        .iter()
        .map(|x| {
            let mut x = x.clone();
            x["group_id"] = json!(3);
            x
        })
        .collect();
    let outcome = c.bulk_update(&moved, |_, _| {}).await.unwrap();
    assert_eq!(outcome.complete, 10, "{:?}", outcome.failed);
    assert!(c.stats().retries > 0, "the faults were injected");

    // Always failing: the error says a proxy answered, not that Magento is unreachable.
    let sb = Sandbox::start_with(|c| c.faults.html_error_rate = 1.0).await;
    let mut config = sb.config();
    config.max_retries = 1;
    let e = Client::new(config).unwrap().groups().await.unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("from a proxy or web server in front of Magento (an HTML page")
            && text.contains("try again later"),
        "{text}"
    );
    assert!(!text.contains("cannot reach"), "{text}");
}

#[tokio::test]
async fn a_bulk_that_never_moves_names_the_consumer_to_start() {
    let sb = Sandbox::start_with(|c| c.bulk_consumer = false).await;
    let mut config = sb.config();
    config.bulk_stall_timeout = std::time::Duration::from_millis(600);
    let c = Client::new(config).unwrap();
    let all = c.customers(&Criteria::new(), |_, _| {}).await.unwrap();
    let e = c.bulk_update(&all[..3], |_, _| {}).await.unwrap_err();
    assert!(
        matches!(
            e,
            MagentoError::BulkStalled {
                open: 3,
                total: 3,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("bin/magento queue:consumers:start async.operations.all"),
        "{e}"
    );
}

#[tokio::test]
async fn a_refused_connection_on_this_machine_fails_at_once() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = ClientConfig::new(
        format!("http://127.0.0.1:{port}"),
        USER,
        Secret::new(PASSWORD),
    );
    let c = Client::new(config).unwrap();
    let e = c.groups().await.unwrap_err();
    assert!(e.to_string().contains("did not retry"), "{e}");
    assert_eq!(c.stats().logins, 1, "one attempt, no retries");
}

#[tokio::test]
async fn two_factor_sign_in_computes_the_code_from_the_secret() {
    let sb = Sandbox::start_with(|c| c.tfa = true).await;
    // A password alone: the store says to use the provider's endpoint.
    let e = sb.client().groups().await.unwrap_err();
    assert!(
        matches!(&e, MagentoError::TwoFactorRequired { providers } if providers == "google"),
        "{e}"
    );
    assert!(e.to_string().contains("ROSTER_MAGENTO_TOTP_SECRET"), "{e}");

    // A wrong secret: the code is refused, and the message says what to check.
    let mut config = sb.config();
    config.totp_secret = Some(Secret::new("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"));
    let e = Client::new(config).unwrap().groups().await.unwrap_err();
    assert!(matches!(e, MagentoError::TwoFactorCode { .. }), "{e}");
    assert!(
        !e.to_string().contains("JBSWY3DP"),
        "the secret is never printed: {e}"
    );

    // The admin's secret (lower case and spaced, as people paste it): signed in.
    let secret = sb.server.totp_secret().unwrap().expose().to_lowercase();
    let spaced: String = secret
        .chars()
        .enumerate()
        .flat_map(|(i, c)| (i > 0 && i % 4 == 0).then_some(' ').into_iter().chain([c]))
        .collect();
    let mut config = sb.config();
    config.totp_secret = Some(Secret::new(spaced));
    let c = Client::new(config).unwrap();
    assert!(!c.groups().await.unwrap().is_empty());
    assert!(!format!("{c:?}").contains(&secret));
}

#[tokio::test]
async fn integration_tokens_work_as_the_store_allows() {
    // Since 2.4.4 a store refuses integration tokens as bearer tokens unless allowed.
    let sb = Sandbox::start(false).await;
    let made = sb.server.create_integration("roster").await.unwrap();
    let bearer = |sb: &Sandbox, token: &str| {
        Client::new(ClientConfig::with_token(
            sb.server.base_url(),
            TokenAuth::Bearer(Secret::new(token)),
        ))
        .unwrap()
    };
    let e = bearer(&sb, &made.access_token).groups().await.unwrap_err();
    assert!(matches!(e, MagentoError::BearerRefused { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("Allow OAuth Access Tokens to be used as standalone Bearer tokens"),
        "{e}"
    );

    // OAuth 1.0a works whatever the setting: searchCriteria with brackets, spaces and
    // percent signs in the signed query, a write, and a bulk.
    let oauth = Client::new(ClientConfig::with_token(
        sb.server.base_url(),
        TokenAuth::OAuth1(OAuth1Credentials {
            consumer_key: made.consumer_key.clone(),
            consumer_secret: Secret::new(made.consumer_secret.clone()),
            access_token: Secret::new(made.access_token.clone()),
            access_token_secret: Secret::new(made.token_secret.clone()),
        }),
    ))
    .unwrap();
    let like = oauth
        .customers(
            &Criteria::new().and("email", Condition::Like, "%@example.com"),
            |_, _| {},
        )
        .await
        .unwrap();
    assert!(!like.is_empty());
    let first = like[0]["id"].as_i64().unwrap();
    let mut changed = Map::new();
    changed.insert("lastname".into(), json!("Signed O'Brien & Co"));
    oauth.update_customer(first, &changed).await.unwrap();
    let outcome = oauth.bulk_update(&like[..2], |_, _| {}).await.unwrap();
    assert_eq!(outcome.complete, 2);
    assert_eq!(oauth.stats().logins, 0, "an integration never signs in");

    // A wrong secret is refused with Magento's message.
    let forged = Client::new(ClientConfig::with_token(
        sb.server.base_url(),
        TokenAuth::OAuth1(OAuth1Credentials {
            consumer_key: made.consumer_key.clone(),
            consumer_secret: Secret::new("not-the-secret"),
            access_token: Secret::new(made.access_token.clone()),
            access_token_secret: Secret::new(made.token_secret.clone()),
        }),
    ))
    .unwrap();
    let e = forged.groups().await.unwrap_err();
    assert!(e.to_string().contains("The signature is invalid"), "{e}");

    // A replayed request (same nonce) is refused.
    let creds = OAuth1Credentials {
        consumer_key: made.consumer_key.clone(),
        consumer_secret: Secret::new(made.consumer_secret.clone()),
        access_token: Secret::new(made.access_token.clone()),
        access_token_secret: Secret::new(made.token_secret.clone()),
    };
    let url = format!("{}/rest/all/V1/store/websites", sb.server.base_url());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = roster_magento::oauth1::authorization(&creds, "GET", &url, &[], "once", now);
    let http = roster_http::client();
    let send = || http.get(&url).header("authorization", &header).send();
    assert_eq!(send().await.unwrap().status(), 200);
    let again = send().await.unwrap();
    assert_eq!(again.status(), 401);
    assert!(
        again
            .text()
            .await
            .unwrap()
            .contains("nonce is already being used")
    );

    // Where the store allows bearer tokens, the access token alone works.
    let allowed = Sandbox::start_with(|c| c.integration_as_bearer = true).await;
    let made = allowed.server.create_integration("roster").await.unwrap();
    assert!(
        !bearer(&allowed, &made.access_token)
            .groups()
            .await
            .unwrap()
            .is_empty()
    );
}
