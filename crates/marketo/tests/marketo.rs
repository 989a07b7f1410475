//! The client against a real Marketo sandbox over HTTP: reads, writes, token handling,
//! pacing under the sandbox's limits, retries under injected faults, and the audit read.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use roster_domain::Secret;
use roster_domain::access::RoleAssignment;
use roster_marketo::audit::{self, Quiet};
use roster_marketo::{
    Client, ClientConfig, Deleted, Invitation, MarketoError, RetryPolicy, UserUpdate,
};
use roster_sandbox::marketo::{
    self, Faults, Limits, MarketoConfig, RoleBodyShapes, RunningSandbox,
};
use serde_json::{Value, json};
use tempfile::TempDir;

const CLIENT_ID: &str = "connector-test";
const CLIENT_SECRET: &str = "connector-secret-0123456789";

struct Sandbox {
    server: RunningSandbox,
    _dir: TempDir,
    http: reqwest::Client,
}

impl Sandbox {
    async fn start(tune: impl FnOnce(&mut MarketoConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = MarketoConfig::new(dir.path());
        config.client_id = Some(CLIENT_ID.into());
        config.client_secret = Some(Secret::new(CLIENT_SECRET));
        config.limits = Limits::unlimited();
        tune(&mut config);
        let server = marketo::start(config).await.unwrap();
        Self {
            server,
            _dir: dir,
            http: roster_http::client(),
        }
    }

    fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new(
            self.server.base_url(),
            CLIENT_ID,
            Secret::new(CLIENT_SECRET),
        );
        // Not about the limits unless a test says so.
        config.rate_limit = 100_000;
        config.rate_window = Duration::from_secs(1);
        config.retry = RetryPolicy {
            max_retries: 12,
            min_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(100),
        };
        config
    }

    fn client(&self) -> Client {
        Client::new(self.config(), 0).unwrap()
    }

    async fn sandbox_get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}/sandbox/{path}", self.server.base_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn stats(&self) -> Value {
        self.sandbox_get("stats").await
    }

    async fn mail_to(&self, to: &str) -> Vec<Value> {
        let all = self.sandbox_get("mailbox").await;
        all.as_array()
            .unwrap()
            .iter()
            .filter(|m| m["to"].as_str().is_some_and(|t| t.eq_ignore_ascii_case(to)))
            .cloned()
            .collect()
    }

    async fn advance_clock(&self, seconds: i64) {
        let resp = self
            .http
            .post(format!("{}/sandbox/clock", self.server.base_url()))
            .json(&json!({ "advanceSeconds": seconds }))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
    }
}

fn pair(role_id: i64, workspace_id: i64) -> RoleAssignment {
    RoleAssignment {
        workspace_id,
        workspace_name: String::new(),
        role_id,
        role_name: String::new(),
    }
}

fn ids(roles: &[RoleAssignment]) -> BTreeSet<(i64, i64)> {
    roles.iter().map(|r| (r.role_id, r.workspace_id)).collect()
}

fn invitation(email: &str, api_only: bool, roles: Vec<RoleAssignment>) -> Invitation {
    Invitation {
        email: email.into(),
        first_name: "Test".into(),
        last_name: "Person".into(),
        userid: None,
        roles,
        api_only,
        expires_at: None,
        reason: None,
    }
}

#[tokio::test]
async fn reads_users_roles_workspaces_and_encoded_ids() {
    let sb = Sandbox::start(|_| {}).await;
    let client = sb.client();
    let users = client.all_users().await.unwrap();
    let emails: BTreeSet<_> = users.iter().map(|u| u.email_address.as_str()).collect();
    assert!(emails.contains("grace.hopper@acme.example"));
    assert!(
        !emails.contains("new.hire@acme.example"),
        "pending invites are not listed"
    );
    let obrien = users
        .iter()
        .find(|u| u.userid.contains("o'brien"))
        .expect("the seeded o'brien+marketing user");
    let roles = client.user_roles(&obrien.userid).await.unwrap();
    let user = client.user(&obrien.userid).await.unwrap();
    assert_eq!(ids(&user.roles), ids(&roles));
    assert_eq!(user.raw["userid"], obrien.userid.as_str());

    let margaret = client.user("margaret.hamilton@acme.example").await.unwrap();
    assert_eq!(
        margaret.expires_at.map(|t| t.date().to_string()),
        Some("2027-06-30".to_string()),
        "dashed Marketo dates parse"
    );
    assert!(
        client
            .find_user("nobody@acme.example")
            .await
            .unwrap()
            .is_none()
    );
    let pending = client
        .invitation("new.hire@acme.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pending.status, "pending");
    assert!(pending.expires_at.is_some(), "compact Marketo dates parse");

    let dir = client.directory().await.unwrap();
    assert!(
        dir.roles
            .iter()
            .any(|r| r.name == "Admin" && r.only_all_zones)
    );
    let a = dir.resolve("Marketing User@World").unwrap();
    assert_eq!((a.role_id, a.workspace_id), (102, 1008));
    let stats = client.stats();
    assert_eq!(stats.token_refreshes, 1, "one token for every call");
    assert_eq!(stats.retries, 0);
}

#[tokio::test]
async fn invite_update_roles_and_delete() {
    let sb = Sandbox::start(|_| {}).await;
    let client = sb.client();
    let email = "zoë+new@acme.example";
    client
        .invite(&invitation(email, false, vec![pair(2, 1)]))
        .await
        .unwrap();
    assert_eq!(sb.mail_to(email).await.len(), 1);
    let invite = client.invitation(email).await.unwrap().unwrap();
    assert_eq!(invite.email_address, email);
    assert!(
        client.find_user(email).await.unwrap().is_none(),
        "pending is not active"
    );
    let again = client
        .invite(&invitation(email, false, vec![pair(2, 1)]))
        .await
        .unwrap_err();
    assert!(again.api().unwrap().code_is("709"), "{again}");
    assert_eq!(
        client.delete_invitation(email).await.unwrap(),
        Deleted::Deleted
    );
    assert!(client.invitation(email).await.unwrap().is_none());

    // API-only users are active at once: the rest of the lifecycle.
    let api = "bot@acme.example";
    client
        .invite(&invitation(api, true, vec![pair(104, 1)]))
        .await
        .unwrap();
    let now = client.add_roles(api, &[pair(102, 1008)]).await.unwrap();
    assert_eq!(ids(&now), BTreeSet::from([(104, 1), (102, 1008)]));
    let left = client.remove_roles(api, &[pair(104, 1)]).await.unwrap();
    assert_eq!(ids(&left), BTreeSet::from([(102, 1008)]));
    let expiry = time::macros::datetime!(2030-01-02 03:04:05 UTC);
    let updated = client
        .update(
            api,
            &UserUpdate {
                last_name: Some("Renamed".into()),
                expires_at: Some(Some(expiry)),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.last_name, "Renamed");
    assert_eq!(updated.expires_at, Some(expiry));
    assert_eq!(client.delete(api).await.unwrap(), Deleted::Deleted);
    let gone = client.delete(api).await.unwrap_err();
    assert!(gone.is_not_found(), "{gone}");
    assert!(
        gone.to_string().contains("deleting bot@acme.example"),
        "{gone}"
    );
}

#[tokio::test]
async fn role_bodies_fall_back_to_a_bare_array_once() {
    let sb = Sandbox::start(|c| c.role_body = RoleBodyShapes::BareArray).await;
    let client = sb.client();
    let user = "grace.hopper@acme.example";
    let before = client.stats().calls;
    client.add_roles(user, &[pair(103, 1)]).await.unwrap();
    assert_eq!(
        client.stats().calls - before,
        2,
        "the wrapped body, then the array"
    );
    let before = client.stats().calls;
    let left = client.remove_roles(user, &[pair(103, 1)]).await.unwrap();
    assert_eq!(client.stats().calls - before, 1, "the shape is remembered");
    assert!(!ids(&left).contains(&(103, 1)));

    let sb = Sandbox::start(|c| c.role_body = RoleBodyShapes::InputWrapper).await;
    let client = sb.client();
    client.add_roles(user, &[pair(103, 1)]).await.unwrap();
    assert_eq!(client.stats().calls, 1, "the spec's shape is sent first");
}

#[tokio::test]
async fn one_token_refresh_serves_concurrent_calls_and_expiry_is_handled() {
    let sb = Sandbox::start(|_| {}).await;
    let client = sb.client();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move { client.roles().await.unwrap() }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(client.stats().token_refreshes, 1);
    assert_eq!(sb.stats().await["tokensIssued"], 1);

    // The sandbox's clock moves past the token's hour: 602, one refresh, then success.
    sb.advance_clock(3700).await;
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let client = client.clone();
        tasks.push(tokio::spawn(
            async move { client.workspaces().await.unwrap() },
        ));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        client.stats().token_refreshes,
        2,
        "one refresh for ten callers"
    );
}

#[tokio::test]
async fn bad_credentials_say_so_without_the_secret() {
    let sb = Sandbox::start(|_| {}).await;
    let mut config = sb.config();
    config.client_secret = Secret::new("wrong-secret-value-xyz");
    let err = Client::new(config, 0).unwrap().roles().await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, MarketoError::Credentials { .. }), "{text}");
    assert!(text.contains("ROSTER_MARKETO_CLIENT_SECRET"), "{text}");
    assert!(!text.contains("wrong-secret-value-xyz"), "{text}");
    assert!(!format!("{err:?}").contains("wrong-secret-value-xyz"));

    let mut config = sb.config();
    config.base_url = "http://127.0.0.1:9".into();
    config.retry.max_retries = 1;
    let err = Client::new(config, 0).unwrap().roles().await.unwrap_err();
    assert!(err.to_string().contains("ROSTER_MARKETO_URL"), "{err}");
}

#[tokio::test]
async fn the_daily_budget_stops_calls_before_they_are_sent() {
    let sb = Sandbox::start(|_| {}).await;
    let mut config = sb.config();
    config.daily_quota = 10;
    let client = Client::new(config, 7).unwrap();
    assert!(client.quota().ensure(4, "this job").is_err());
    for _ in 0..3 {
        client.roles().await.unwrap();
    }
    let err = client.roles().await.unwrap_err();
    assert!(matches!(err, MarketoError::QuotaBudget { .. }), "{err}");
    assert!(err.to_string().contains("midnight US Central"), "{err}");
    assert_eq!(
        sb.stats().await["calls"],
        3,
        "the refused call was never sent"
    );
}

#[tokio::test]
async fn pacing_keeps_under_the_sandbox_limits() {
    let sb = Sandbox::start(|c| {
        c.limits = Limits {
            rate_limit: 15,
            rate_window: Duration::from_secs(1),
            max_concurrent: 3,
            daily_quota: 1_000,
        };
        c.faults.latency = Duration::from_millis(20);
    })
    .await;
    let mut config = sb.config();
    config.max_in_flight = 3;
    config.rate_limit = 15;
    config.rate_window = Duration::from_secs(1);
    let client = Client::new(config, 0).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move { client.roles().await.unwrap() }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stats = sb.stats().await;
    assert_eq!(stats["rateLimited"], 0, "{stats}");
    assert_eq!(stats["concurrencyLimited"], 0, "{stats}");
    assert_eq!(stats["calls"], 40);
    let mine = client.stats();
    assert_eq!((mine.calls, mine.rate_limited, mine.retries), (40, 0, 0));
    assert!(mine.paced_waits > 0, "40 calls at 15/s must have waited");
}

#[tokio::test]
async fn the_same_final_state_under_faults_with_no_duplicated_writes() {
    let sb = Sandbox::start(|c| {
        c.faults = Faults {
            latency: Duration::from_millis(2),
            error_rate: 0.3,
            token_expiry_rate: 0.1,
            ..Faults::default()
        };
    })
    .await;
    let client = sb.client();
    let people: Vec<String> = (0..8).map(|n| format!("faulty{n}@acme.example")).collect();
    let bots: Vec<String> = (0..8).map(|n| format!("bot{n}@acme.example")).collect();
    for email in &people {
        client
            .invite(&invitation(email, false, vec![pair(2, 1)]))
            .await
            .unwrap();
    }
    for bot in &bots {
        client
            .invite(&invitation(bot, true, vec![pair(104, 1)]))
            .await
            .unwrap();
        client.add_roles(bot, &[pair(102, 1008)]).await.unwrap();
        client.remove_roles(bot, &[pair(104, 1)]).await.unwrap();
    }
    for bot in &bots[..4] {
        client.delete(bot).await.unwrap();
    }
    for email in &people[..4] {
        client.delete_invitation(email).await.unwrap();
    }

    // Exactly one invitation email per person, despite retried invites.
    for email in &people {
        assert_eq!(sb.mail_to(email).await.len(), 1, "{email}");
    }
    let stats = client.stats();
    assert!(
        stats.retries > 0,
        "faults were injected and retried: {stats:?}"
    );
    assert!(sb.stats().await["faultsInjected"].as_u64().unwrap() > 0);

    // The final state, read by a fault-free server on the same data.
    let clean = sb.client();
    for (n, email) in people.iter().enumerate() {
        assert_eq!(
            clean.invitation(email).await.unwrap().is_some(),
            n >= 4,
            "{email}"
        );
    }
    for (n, bot) in bots.iter().enumerate() {
        let found = clean.find_user(bot).await.unwrap();
        assert_eq!(found.is_some(), n >= 4, "{bot}");
        if let Some(user) = found {
            assert_eq!(ids(&user.roles), BTreeSet::from([(102, 1008)]), "{bot}");
        }
    }
}

#[tokio::test]
async fn audit_reads_everyone_for_the_minimum_calls() {
    let dir = tempfile::tempdir().unwrap();
    let admin = marketo::admin::Admin::open(dir.path()).await.unwrap();
    let roles = vec!["Marketing User@World".parse().unwrap()];
    admin
        .add_people("bulk", "audit.example", 450, &roles)
        .await
        .unwrap();
    admin.close().await;
    let sb = {
        let mut config = MarketoConfig::new(dir.path());
        config.client_id = Some(CLIENT_ID.into());
        config.client_secret = Some(Secret::new(CLIENT_SECRET));
        config.limits = Limits::unlimited();
        Sandbox {
            server: marketo::start(config).await.unwrap(),
            _dir: dir,
            http: roster_http::client(),
        }
    };
    let client = sb.client();
    let audit = audit::run(&client, Arc::new(Quiet)).await.unwrap();
    let n = audit.users.len();
    assert_eq!(n, 450 + 9, "450 added, 7 people and 2 API users seeded");
    assert_eq!(audit.stats.calls, audit::minimum_calls(n));
    assert_eq!(
        sb.stats().await["calls"].as_u64().unwrap(),
        audit::minimum_calls(n)
    );
    let bulk = audit
        .users
        .iter()
        .find(|u| u.user.email_address == "bulk00450@audit.example")
        .unwrap();
    assert_eq!(ids(&bulk.roles), BTreeSet::from([(102, 1008)]));
    let grace = audit
        .users
        .iter()
        .find(|u| u.user.email_address == "grace.hopper@acme.example")
        .unwrap();
    assert_eq!(ids(&grace.roles), BTreeSet::from([(2, 1), (102, 1008)]));
    assert!(audit.directory.workspaces.iter().any(|w| w.name == "World"));
}

/// Under concurrency a token can expire and be replaced (and the old one purged, so it is
/// answered 601) while other calls still carry it: that is not a credentials problem.
/// (At 40% of calls expiring the shared token, ten calls in flight on a loaded machine can
/// starve one of them past its retries; 15% still forces many replacements.)
#[tokio::test]
async fn tokens_replaced_under_concurrent_calls_are_not_mistaken_for_bad_credentials() {
    let sb = Sandbox::start(|c| c.faults.token_expiry_rate = 0.15).await;
    let client = sb.client();
    let mut tasks = Vec::new();
    for _ in 0..60 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move { client.roles().await }));
    }
    for t in tasks {
        let result = t.await.unwrap();
        assert!(result.is_ok(), "{:?}", result.err());
    }
    assert!(client.stats().token_refreshes > 1);
}

#[tokio::test]
async fn urls_pasted_from_web_services_work_and_a_closed_local_port_fails_at_once() {
    let sb = Sandbox::start(|_| {}).await;
    for suffix in ["/rest", "/identity/", "/"] {
        let mut config = sb.config();
        config = ClientConfig::new(
            format!("{}{suffix}", config.base_url),
            config.client_id.clone(),
            config.client_secret.clone(),
        );
        let c = Client::new(config, 0).unwrap();
        assert!(!c.roles().await.unwrap().is_empty(), "{suffix}");
    }

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = sb.config();
    config.base_url = format!("http://127.0.0.1:{port}");
    let c = Client::new(config, 0).unwrap();
    let e = c.roles().await.unwrap_err();
    assert!(
        matches!(e, MarketoError::Unreachable { .. }),
        "not retried: {e}"
    );
    assert!(e.to_string().contains("did not retry"), "{e}");
    assert_eq!(c.stats().retries, 0);
}
