//! `roster serve` over real HTTP against the Marketo sandbox (real sockets, a real SQLite
//! state): scheduled and on-demand reconciles, approvals with four-eyes, webhooks with
//! signatures, metrics, and a roster that turns invalid.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use roster_domain::Secret;
use roster_sandbox::marketo::{self, MarketoConfig, RunningSandbox};
use roster_service::config::ServeConfig;
use roster_service::{Running, tokens};
use roster_store::StateStore;
use serde_json::{Value, json};
use sha2::Sha256;
use time::OffsetDateTime;

const EXAMPLE: &str = include_str!("../../../examples/roster.yaml");

const JOINER: &str = "
  - email: grace.new@acme.example
    first_name: Grace
    last_name: Newton
    department: Marketing
";

async fn sandbox(dir: &Path) -> RunningSandbox {
    let mut config = MarketoConfig::new(dir.join("marketo"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.client_id = Some("svc-test".into());
    config.client_secret = Some(Secret::new("svc-test-secret-value"));
    marketo::start(config).await.expect("the sandbox starts")
}

/// A receiver that keeps every webhook delivery: headers and body.
type Received = Arc<Mutex<Vec<(HeaderMap, String)>>>;

/// `/hook` takes everything; `/flaky` answers 500 to its first two requests.
async fn receiver() -> (SocketAddr, Received) {
    let got: Received = Arc::default();
    let failures = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |State(got): State<Received>, headers: HeaderMap, body: String| async move {
                    got.lock().unwrap().push((headers, body));
                    "ok"
                },
            ),
        )
        .route(
            "/flaky",
            axum::routing::post(
                move |State(got): State<Received>, headers: HeaderMap, body: String| {
                    let failures = Arc::clone(&failures);
                    async move {
                        if failures.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
                            return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                        }
                        got.lock().unwrap().push((headers, body));
                        axum::http::StatusCode::OK
                    }
                },
            ),
        )
        .with_state(Arc::clone(&got));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, got)
}

struct Service {
    running: Running,
    base: String,
    http: reqwest::Client,
    state: PathBuf,
}

impl Service {
    async fn start(dir: &Path, config: &str, secret_var: &str) -> Self {
        // SAFETY: each test uses its own variable name; nothing else reads it.
        unsafe { std::env::set_var(secret_var, "svc-test-secret-value") };
        let path = dir.join("roster.toml");
        std::fs::write(&path, config).unwrap();
        let config = ServeConfig::load(&path).expect("the config is valid");
        let state = dir.join("state");
        let running = roster_service::start(config, state.clone())
            .await
            .expect("the service starts");
        let base = format!("http://{}", running.addr);
        Self {
            running,
            base,
            http: reqwest::Client::new(),
            state,
        }
    }

    async fn token(&self, name: &str, role: &str) -> String {
        let store = StateStore::open(&self.state).await.unwrap();
        let token = tokens::generate();
        store
            .add_token(name, role, &tokens::hash(&token), OffsetDateTime::now_utc())
            .await
            .unwrap();
        token
    }

    async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// Waits for a finished run that `matches`, newest first; the condition is polled, the
    /// wait bounded.
    async fn run_where(&self, token: &str, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (_, body) = self.get(token, "/api/v1/runs?limit=100").await;
            if let Some(run) = body["runs"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| r["outcome"] != "running" && matches(r))
            {
                return run.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no run {what}: {body:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn mailbox(sandbox: &RunningSandbox, to: &str) -> usize {
    let mail: Value = reqwest::Client::new()
        .get(format!("{}/sandbox/mailbox", sandbox.base_url()))
        .query(&[("to", to)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    mail.as_array().map_or(0, Vec::len)
}

async fn marketo_has(sandbox: &RunningSandbox, email: &str) -> bool {
    let creds = sandbox.credentials();
    let mut config = roster_marketo::ClientConfig::new(
        sandbox.base_url().to_string(),
        creds.client_id.clone(),
        creds.client_secret.clone(),
    );
    config.allow_insecure_http = true;
    let client = roster_marketo::Client::new(config, 0).unwrap();
    client.find_user(email).await.unwrap().is_some()
}

fn config(sandbox: &RunningSandbox, var: &str, interval: &str, extra: &str) -> String {
    format!(
        "[service]\nlisten = \"127.0.0.1:0\"\n\n[marketo.acme]\nurl = \"{}\"\nclient_id = \"svc-test\"\nclient_secret_env = \"{var}\"\nroster = \"people.yaml\"\ninterval = \"{interval}\"\nauto_apply = \"safe\"\n{extra}",
        sandbox.base_url()
    )
}

fn verify_signature(secret: &str, headers: &HeaderMap, body: &str) -> bool {
    let ts = headers["x-roster-timestamp"].to_str().unwrap();
    let sig = headers["x-roster-signature"].to_str().unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}.{body}").as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    sig == format!("sha256={expected}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leavers_wait_for_a_second_approver_and_joiners_are_invited() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(dir.path()).await;
    let (hook_addr, received) = receiver().await;
    // SAFETY: this test's own variable.
    unsafe { std::env::set_var("ROSTER_TEST_HOOK_SECRET_1", "hook-secret") };
    std::fs::write(dir.path().join("people.yaml"), EXAMPLE).unwrap();
    // Retries a few milliseconds apart, not seconds, in this test process.
    // SAFETY: set before any service starts; every test here is fine with fast retries.
    unsafe { std::env::set_var("ROSTER_WEBHOOK_RETRY_MS", "20") };
    let extra = format!(
        "\n[webhook.ops]\nurl = \"http://{hook_addr}/hook\"\nsecret_env = \"ROSTER_TEST_HOOK_SECRET_1\"\n\n[webhook.chat]\nurl = \"http://{hook_addr}/flaky\"\nsecret_env = \"ROSTER_TEST_HOOK_SECRET_1\"\nevents = [\"plan.pending\"]\nformat = \"slack\"\n"
    );
    let svc = Service::start(
        dir.path(),
        &config(&sandbox, "ROSTER_TEST_SECRET_1", "1h", &extra),
        "ROSTER_TEST_SECRET_1",
    )
    .await;
    let viewer = svc.token("auditor", "viewer").await;
    let alice = svc.token("alice", "approver").await;
    let bob = svc.token("bob", "approver").await;

    // No token, a wrong one: refused with a JSON error.
    let r = svc
        .http
        .get(format!("{}/api/v1/runs", svc.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    assert_eq!(svc.get("roster_not_a_token", "/api/v1/runs").await.0, 401);

    // The first run starts at once: safe steps run, the leaver waits for approval.
    let first = svc
        .run_where(&viewer, "scheduled at start", |r| {
            r["trigger"] == "schedule"
        })
        .await;
    assert_eq!(first["outcome"], "awaiting_approval", "{first:#}");
    let p1 = first["plan_id"].as_str().unwrap().to_string();
    assert!(marketo_has(&sandbox, "katherine.johnson@acme.example").await);
    let (_, plan) = svc.get(&viewer, &format!("/api/v1/plans/{p1}")).await;
    assert_eq!(plan["held"]["status"], "pending");
    // It holds what waits: the destructive steps (the others ran).
    assert!(
        plan["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["destructive"] == true),
        "{plan:#}"
    );
    assert!(
        plan["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["destructive"] == true
                && s["action"]["userid"]
                    .as_str()
                    .is_some_and(|u| u.contains("katherine"))),
        "{plan:#}"
    );
    // A viewer cannot decide.
    let (status, body) = svc
        .post(&viewer, &format!("/api/v1/plans/{p1}/approve"), json!({}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );

    // Rejected: nothing is deleted.
    let (status, _) = svc
        .post(
            &alice,
            &format!("/api/v1/plans/{p1}/reject"),
            json!({"comment": "not yet"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = svc
        .post(&bob, &format!("/api/v1/plans/{p1}/approve"), json!({}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("not_pending"))
    );

    // A joiner, and a reconcile asked for by alice: the joiner is invited at once (one
    // email), the leaver waits in a plan alice requested.
    let roster = format!("{EXAMPLE}{JOINER}");
    std::fs::write(dir.path().join("people.yaml"), &roster).unwrap();
    let (status, _) = svc
        .post(&alice, "/api/v1/instances/acme/reconcile", json!({}))
        .await;
    assert_eq!(status, 404, "instances are named app.name");
    let (status, _) = svc
        .post(
            &alice,
            "/api/v1/instances/marketo.acme/reconcile",
            json!({}),
        )
        .await;
    assert_eq!(status, 202);
    let second = svc
        .run_where(&viewer, "asked by alice", |r| r["trigger"] == "api:alice")
        .await;
    assert_eq!(second["outcome"], "awaiting_approval", "{second:#}");
    assert_eq!(mailbox(&sandbox, "grace.new@acme.example").await, 1);
    assert!(
        second["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "step"
                && e["stage"] == "invite"
                && e["account"]
                    .as_str()
                    .is_some_and(|a| a.ends_with("grace.new@acme.example"))
                && e["outcome"] == "done"),
        "{second:#}"
    );
    let p2 = second["plan_id"].as_str().unwrap().to_string();
    assert_ne!(p2, p1);

    // Four eyes: alice asked for it, so alice cannot approve it; bob can.
    let (status, body) = svc
        .post(&alice, &format!("/api/v1/plans/{p2}/approve"), json!({}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("four_eyes")),
        "{body}"
    );
    assert!(marketo_has(&sandbox, "katherine.johnson@acme.example").await);
    let (status, body) = svc
        .post(
            &bob,
            &format!("/api/v1/plans/{p2}/approve"),
            json!({"comment": "HR ticket 42"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let applied = svc
        .run_where(&viewer, "applying the approval", |r| {
            r["trigger"]
                .as_str()
                .is_some_and(|t| t.starts_with(&format!("approval:{p2}")))
        })
        .await;
    assert_eq!(applied["outcome"], "done", "{applied:#}");
    assert!(!marketo_has(&sandbox, "katherine.johnson@acme.example").await);
    let (_, plan) = svc.get(&viewer, &format!("/api/v1/plans/{p2}")).await;
    assert_eq!(plan["held"]["status"], "applied");
    assert_eq!(plan["held"]["decided_by"], "bob");
    let (_, tombs) = svc.get(&viewer, "/api/v1/tombstones").await;
    assert!(
        tombs["tombstones"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["email"] == "katherine.johnson@acme.example" && t["status"] == "deleted"),
        "{tombs:#}"
    );
    let (_, log) = svc.get(&viewer, "/api/v1/log").await;
    let log = log["log"].as_array().unwrap().clone();
    assert!(
        log.iter()
            .any(|l| l["action"] == "approve" && l["actor"] == "bob")
    );
    assert!(
        log.iter()
            .any(|l| l["action"] == "reject" && l["actor"] == "alice")
    );
    assert!(
        log.iter()
            .any(|l| l["action"] == "delete" && l["actor"] == "bob" && l["outcome"] == "done")
    );
    // Still one invitation for the joiner.
    assert_eq!(mailbox(&sandbox, "grace.new@acme.example").await, 1);

    // A restore is asked for, refused to its asker (four eyes), approved by another.
    let tomb = tombs["tombstones"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["email"] == "katherine.johnson@acme.example")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let (status, asked) = svc
        .post(
            &viewer,
            &format!("/api/v1/tombstones/{tomb}/restore"),
            json!({}),
        )
        .await;
    assert_eq!(status, 403, "{asked}");
    let (status, asked) = svc
        .post(
            &alice,
            &format!("/api/v1/tombstones/{tomb}/restore"),
            json!({}),
        )
        .await;
    assert_eq!(status, 202, "{asked}");
    assert_eq!(asked["created"], true);
    let request = asked["request"]["id"].as_i64().unwrap();
    let (_, again) = svc
        .post(
            &alice,
            &format!("/api/v1/tombstones/{tomb}/restore"),
            json!({}),
        )
        .await;
    assert_eq!(
        (again["created"].as_bool(), again["request"]["id"].as_i64()),
        (Some(false), Some(request))
    );
    let (status, body) = svc
        .post(
            &alice,
            &format!("/api/v1/restores/{request}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("four_eyes"))
    );
    assert_eq!(mailbox(&sandbox, "katherine.johnson@acme.example").await, 0);
    let (status, _) = svc
        .post(
            &bob,
            &format!("/api/v1/restores/{request}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(status, 202);
    let restored = svc
        .run_where(&viewer, "restoring", |r| {
            r["trigger"] == format!("restore:{request} by bob")
        })
        .await;
    assert_eq!(restored["outcome"], "done", "{restored:#}");
    assert_eq!(mailbox(&sandbox, "katherine.johnson@acme.example").await, 1);
    let (_, list) = svc.get(&viewer, "/api/v1/restores").await;
    assert_eq!(list["restores"][0]["status"], "restored", "{list:#}");
    let (_, tombs) = svc.get(&viewer, "/api/v1/tombstones").await;
    assert!(
        tombs["tombstones"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == tomb && t["restored_at"].is_string())
    );
    let (status, _) = svc
        .post(
            &alice,
            &format!("/api/v1/tombstones/{tomb}/restore"),
            json!({}),
        )
        .await;
    assert_eq!(status, 409, "a restored tombstone cannot be restored twice");

    // An invalid roster: the run is refused with the file and line, nothing changes.
    std::fs::write(
        dir.path().join("people.yaml"),
        format!("{roster}\n  - email: [broken\n"),
    )
    .unwrap();
    let (status, _) = svc
        .post(
            &alice,
            "/api/v1/instances/marketo.acme/reconcile",
            json!({}),
        )
        .await;
    assert_eq!(status, 202);
    let refused = svc
        .run_where(&viewer, "refused", |r| r["outcome"] == "refused")
        .await;
    let error = refused["error"].as_str().unwrap();
    assert!(error.contains("people.yaml:"), "{error}");
    assert!(refused["events"].as_array().unwrap().is_empty());

    // Metrics reflect the calls; nothing was rate-limited.
    let metrics = svc
        .http
        .get(format!("{}/metrics", svc.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let calls = metrics
        .lines()
        .find(|l| l.starts_with("roster_api_calls_total{instance=\"marketo.acme\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(calls > 5.0, "{metrics}");
    assert!(
        metrics.contains("roster_rate_limited_total{instance=\"marketo.acme\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("roster_runs_total{instance=\"marketo.acme\",outcome=\"refused\"} 1"),
        "{metrics}"
    );
    let ready: Value = svc
        .http
        .get(format!("{}/readyz", svc.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["ready"], true);

    // Webhooks: signed, and they said what happened.
    svc.running
        .shared
        .notifier
        .drain(Duration::from_secs(10))
        .await;
    let got = received.lock().unwrap().clone();
    let events: Vec<String> = got
        .iter()
        .map(|(h, _)| h["x-roster-event"].to_str().unwrap().to_string())
        .collect();
    for wanted in [
        "plan.pending",
        "account.created",
        "account.removed",
        "run.failed",
    ] {
        assert!(
            events.iter().any(|e| e == wanted),
            "no {wanted} in {events:?}"
        );
    }
    for (headers, body) in &got {
        assert!(
            verify_signature("hook-secret", headers, body),
            "bad signature on {body}"
        );
        assert!(!verify_signature("another-secret", headers, body));
    }
    // The Slack-shaped hook got only what it asked for, as {"text"}, after two failures
    // that were retried and recorded.
    let slack: Vec<Value> = got
        .iter()
        .filter(|(h, _)| h["x-roster-event"] == "plan.pending")
        .map(|(_, b)| serde_json::from_str::<Value>(b).unwrap())
        .filter(|v| v.get("event").is_none())
        .collect();
    assert!(!slack.is_empty());
    assert!(slack.iter().all(|v| {
        v.as_object().unwrap().len() == 1
            && v["text"]
                .as_str()
                .unwrap()
                .starts_with("Roster [marketo.acme]")
    }));
    let (_, deliveries) = svc.get(&viewer, "/api/v1/webhooks/deliveries").await;
    let deliveries = deliveries["deliveries"].as_array().unwrap().clone();
    assert!(
        deliveries.iter().all(|d| d["status"] == "delivered"),
        "{deliveries:#?}"
    );
    assert!(
        deliveries
            .iter()
            .all(|d| d["hook"] == "ops" || d["event"] == "plan.pending")
    );
    let retried: i64 = deliveries
        .iter()
        .filter(|d| d["hook"] == "chat")
        .map(|d| d["attempts"].as_i64().unwrap() - 1)
        .sum();
    assert_eq!(retried, 2, "{deliveries:#?}");
    assert!(deliveries.iter().any(|d| {
        d["hook"] == "chat"
            && d["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("HTTP 500"))
    }));

    svc.running.shutdown().await;
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joiner_is_invited_by_the_next_scheduled_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(dir.path()).await;
    std::fs::write(dir.path().join("people.yaml"), EXAMPLE).unwrap();
    let svc = Service::start(
        dir.path(),
        &config(&sandbox, "ROSTER_TEST_SECRET_2", "1s", ""),
        "ROSTER_TEST_SECRET_2",
    )
    .await;
    let viewer = svc.token("viewer", "viewer").await;
    let first = svc.run_where(&viewer, "at start", |_| true).await;
    let first_id = first["id"].as_i64().unwrap();
    std::fs::write(dir.path().join("people.yaml"), format!("{EXAMPLE}{JOINER}")).unwrap();
    // A scheduled run after the edit invites them.
    let invited = svc
        .run_where(&viewer, "inviting the joiner", |r| {
            r["trigger"] == "schedule"
                && r["id"].as_i64().unwrap() > first_id
                && r["events"].as_array().unwrap().iter().any(|e| {
                    e["account"]
                        .as_str()
                        .is_some_and(|a| a.ends_with("grace.new@acme.example"))
                })
        })
        .await;
    let invited_id = invited["id"].as_i64().unwrap();
    // Two more scheduled runs: no second invitation.
    svc.run_where(&viewer, "two runs later", |r| {
        r["id"].as_i64().unwrap() >= invited_id + 2
    })
    .await;
    assert_eq!(mailbox(&sandbox, "grace.new@acme.example").await, 1);
    let (_, instances) = svc.get(&viewer, "/api/v1/instances").await;
    let inst = &instances["instances"][0];
    assert_eq!(inst["name"], "marketo.acme");
    assert_eq!(inst["pending_approvals"], 1, "{inst:#}");
    svc.running.shutdown().await;
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_run_side_by_side_and_a_run_over_budget_is_deferred() {
    use roster_sandbox::magento::{self as magento_sandbox, MagentoConfig};
    let dir = tempfile::tempdir().unwrap();
    let marketo = sandbox(dir.path()).await;
    let mut shop_config = MagentoConfig::new(dir.path().join("magento"));
    shop_config.listen = "127.0.0.1:0".parse().unwrap();
    shop_config.admin_users_api = true;
    shop_config.admin_password = Some(Secret::new("Shop-Admin-2024"));
    let shop = magento_sandbox::start(shop_config).await.unwrap();
    std::fs::write(dir.path().join("people.yaml"), EXAMPLE).unwrap();
    std::fs::write(dir.path().join("shop-password"), "Shop-Admin-2024\n").unwrap();
    let extra = format!(
        "daily_budget = 5\n\n[magento.shop]\nurl = \"{}\"\nusername = \"{}\"\npassword_file = \"shop-password\"\nroster = \"people.yaml\"\ninterval = \"1h\"\n",
        shop.base_url(),
        shop.admin_user()
    );
    let svc = Service::start(
        dir.path(),
        &config(&marketo, "ROSTER_TEST_SECRET_3", "1h", &extra),
        "ROSTER_TEST_SECRET_3",
    )
    .await;
    let viewer = svc.token("viewer", "viewer").await;
    let deferred = svc
        .run_where(&viewer, "of marketo", |r| r["instance"] == "marketo.acme")
        .await;
    assert_eq!(deferred["outcome"], "deferred", "{deferred:#}");
    assert!(
        deferred["summary"]
            .as_str()
            .unwrap()
            .contains("budget of 5"),
        "{deferred:#}"
    );
    let shop_run = svc
        .run_where(&viewer, "of the shop", |r| r["instance"] == "magento.shop")
        .await;
    assert_eq!(shop_run["outcome"], "done", "{shop_run:#}");
    // The Magento instance follows only the roster's Magento access: Nia's wholesale
    // customer account and Sam's admin user, none of the Marketo roles.
    let steps: Vec<&Value> = shop_run["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "step")
        .collect();
    assert!(!steps.is_empty());
    assert!(
        steps
            .iter()
            .all(|e| e["app"] == "magento" && e["outcome"] == "done"),
        "{steps:#?}"
    );
    assert!(
        steps
            .iter()
            .any(|e| e["account"].as_str().unwrap().contains("nia.okafor"))
    );
    // No call reached Marketo: the deferred run did not read anything.
    assert_eq!(mailbox(&marketo, "nia.okafor@acme.example").await, 0);
    svc.running.shutdown().await;
    shop.shutdown().await;
    marketo.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roster_gives_access_on_named_instances() {
    let dir = tempfile::tempdir().unwrap();
    let acme = sandbox(&dir.path().join("acme")).await;
    let emea = sandbox(&dir.path().join("emea")).await;
    let named = "
  - email: lena.berg@acme.example
    first_name: Lena
    last_name: Berg
    access:
      marketo.emea: [\"Marketing User@Default\"]
";
    std::fs::write(dir.path().join("people.yaml"), format!("{EXAMPLE}{named}")).unwrap();
    let extra = format!(
        "\n[marketo.emea]\nurl = \"{}\"\nclient_id = \"svc-test\"\nclient_secret_env = \"ROSTER_TEST_SECRET_4\"\nroster = \"people.yaml\"\ninterval = \"1h\"\nauto_apply = \"safe\"\n",
        emea.base_url()
    );
    let svc = Service::start(
        dir.path(),
        &config(&acme, "ROSTER_TEST_SECRET_4", "1h", &extra),
        "ROSTER_TEST_SECRET_4",
    )
    .await;
    let viewer = svc.token("viewer", "viewer").await;
    svc.run_where(&viewer, "of acme", |r| r["instance"] == "marketo.acme")
        .await;
    svc.run_where(&viewer, "of emea", |r| r["instance"] == "marketo.emea")
        .await;
    assert_eq!(mailbox(&emea, "lena.berg@acme.example").await, 1);
    assert_eq!(mailbox(&acme, "lena.berg@acme.example").await, 0);
    // Both follow the plain access too: the joiner Nia is invited on each.
    assert_eq!(mailbox(&emea, "nia.okafor@acme.example").await, 1);
    assert_eq!(mailbox(&acme, "nia.okafor@acme.example").await, 1);

    // A name the service does not run: refused, with the roster line.
    let typo = named.replace("marketo.emea", "marketo.emae");
    std::fs::write(dir.path().join("people.yaml"), format!("{EXAMPLE}{typo}")).unwrap();
    let operator = svc.token("op", "operator").await;
    let (status, _) = svc
        .post(
            &operator,
            "/api/v1/instances/marketo.acme/reconcile",
            json!({}),
        )
        .await;
    assert_eq!(status, 202);
    let refused = svc
        .run_where(&viewer, "refused", |r| r["outcome"] == "refused")
        .await;
    let error = refused["error"].as_str().unwrap();
    assert!(
        error.contains("access for marketo.emae") && error.contains("people.yaml:"),
        "{error}"
    );
    svc.running.shutdown().await;
    acme.shutdown().await;
    emea.shutdown().await;
}

/// The console's sign-in over plain HTTP: a form without its pre-session token is refused,
/// repeated failures lock the account (even the right password is then refused), and a
/// signed-in session cookie is HttpOnly and SameSite=Strict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_sign_in_locks_after_repeated_failures() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(dir.path()).await;
    std::fs::write(dir.path().join("people.yaml"), EXAMPLE).unwrap();
    let svc = Service::start(
        dir.path(),
        &config(
            &sandbox,
            "ROSTER_TEST_SECRET_5",
            "1h",
            "\n[console]\nlockout_after = 3\n",
        ),
        "ROSTER_TEST_SECRET_5",
    )
    .await;
    let store = StateStore::open(&svc.state).await.unwrap();
    let hash = roster_service::console::hash_password("right-password-123");
    store
        .add_console_user("ann", "approver", &hash, OffsetDateTime::now_utc())
        .await
        .unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form_token = || async {
        let r = http
            .get(format!("{}/console/sign-in", svc.base))
            .send()
            .await
            .unwrap();
        let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        cookie
            .split(';')
            .next()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1
            .to_string()
    };
    let sign_in = |token: String, password: &'static str, with_cookie: bool| {
        let mut req = http.post(format!("{}/console/sign-in", svc.base)).form(&[
            ("csrf", token.as_str()),
            ("name", "ann"),
            ("password", password),
        ]);
        if with_cookie {
            req = req.header("cookie", format!("roster_signin={token}"));
        }
        async move { req.send().await.unwrap() }
    };
    // Without the pre-session cookie: refused before the password is looked at.
    let t = form_token().await;
    assert_eq!(sign_in(t, "right-password-123", false).await.status(), 403);
    // The right password signs in: a session cookie, then a redirect to the console.
    let t = form_token().await;
    let ok = sign_in(t, "right-password-123", true).await;
    assert_eq!(ok.status(), 303);
    let session = ok
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("roster_session="))
        .unwrap();
    assert!(
        session.contains("HttpOnly")
            && session.contains("SameSite=Strict")
            && session.contains("Path=/console")
    );
    let cookie = session.split(';').next().unwrap().to_string();
    let page = http
        .get(format!("{}/console", svc.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert!(page.text().await.unwrap().contains("marketo.acme"));
    // A state-changing form without its CSRF field at all: refused, not half-parsed.
    let no_token = http
        .post(format!("{}/console/plans/plan-x/approve", svc.base))
        .header("cookie", &cookie)
        .form(&[("comment", "no token")])
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 403);
    assert!(no_token.text().await.unwrap().contains("refused"));
    // Three failures lock the account: the right password is refused after them.
    for _ in 0..3 {
        let t = form_token().await;
        assert_eq!(sign_in(t, "wrong", true).await.status(), 401);
    }
    let t = form_token().await;
    let locked = sign_in(t, "right-password-123", true).await;
    assert_eq!(locked.status(), 403);
    assert!(locked.text().await.unwrap().contains("locked"));
    let user = store.console_user("ann").await.unwrap().unwrap();
    assert!(
        user.locked_until
            .is_some_and(|t| t > OffsetDateTime::now_utc())
    );
    svc.running.shutdown().await;
    sandbox.shutdown().await;
}
