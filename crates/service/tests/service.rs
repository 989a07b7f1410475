//! `roster serve` over real HTTP against the Marketo sandbox (real sockets, a real SQLite
//! state): scheduled and on-demand reconciles, approvals with four-eyes, webhooks with
//! signatures, metrics, and a roster that turns invalid.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
// An HMAC of its own (RustCrypto's, the versions sqlx already brings), not the service's
// ring: signatures are checked as a receiver would, by another implementation.
use hmac::{Hmac, KeyInit, Mac};
use roster_domain::Secret;
use roster_sandbox::marketo::{self, MarketoConfig, RunningSandbox};
use roster_service::config::ServeConfig;
use roster_service::{Running, tokens};
use roster_store::StateStore;
use serde_json::{Value, json};
use sha2_for_hmac::Sha256;
use time::OffsetDateTime;

const EXAMPLE: &str = include_str!("../../../examples/roster.yaml");

const JOINER: &str = "
  - email: grace.new@acme.example
    first_name: Grace
    last_name: Newton
    department: Marketing
";

async fn sandbox(dir: &Path) -> RunningSandbox {
    sandbox_with(dir, |_| {}).await
}

/// The Marketo sandbox the service tests use, `adjust`ed first.
async fn sandbox_with(dir: &Path, adjust: impl FnOnce(&mut MarketoConfig)) -> RunningSandbox {
    let mut config = MarketoConfig::new(dir.join("marketo"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.client_id = Some("svc-test".into());
    config.client_secret = Some(Secret::new("svc-test-secret-value"));
    adjust(&mut config);
    marketo::start(config).await.expect("the sandbox starts")
}

/// A Magento sandbox (admin users API on) in `dir`, and the `[magento.shop]` section of a
/// service configuration that runs it (its password in a file beside, `people.yaml` every
/// hour), with `settings` added to the section.
async fn shop(dir: &Path, settings: &str) -> (roster_sandbox::magento::RunningMagento, String) {
    use roster_sandbox::magento::{self as magento_sandbox, MagentoConfig};
    let mut config = MagentoConfig::new(dir.join("magento"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.admin_users_api = true;
    config.admin_password = Some(Secret::new("Shop-Admin-2024"));
    let shop = magento_sandbox::start(config).await.unwrap();
    std::fs::write(dir.join("shop-password"), "Shop-Admin-2024\n").unwrap();
    let section = format!(
        "\n[magento.shop]\nurl = \"{}\"\nusername = \"{}\"\npassword_file = \"shop-password\"\nroster = \"people.yaml\"\ninterval = \"1h\"\n{}",
        shop.base_url(),
        shop.admin_user(),
        // Looking for changed customers is off unless a test asks for it.
        if settings.contains("changes_every") {
            settings.to_string()
        } else {
            format!("changes_every = \"off\"\n{settings}")
        }
    );
    (shop, section)
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
    /// The PostgreSQL database the state is in, when the suite runs on PostgreSQL
    /// (`ROSTER_TEST_BACKEND=postgres`); the SQLite file in `state` otherwise.
    database: Option<roster_store::testing::TestDatabase>,
}

/// Whether this run of the suite keeps the service's state in PostgreSQL.
fn on_postgres() -> bool {
    std::env::var("ROSTER_TEST_BACKEND").as_deref() == Ok("postgres")
}

impl Service {
    async fn start(dir: &Path, config: &str, secret_var: &str) -> Self {
        let database = if on_postgres() {
            Some(
                roster_store::testing::TestDatabase::create(secret_var)
                    .await
                    .expect("ROSTER_TEST_BACKEND=postgres needs ROSTER_TEST_POSTGRES"),
            )
        } else {
            None
        };
        Self::start_on(dir, config, secret_var, database).await
    }

    /// Stops this service and starts another on the same state, as after a restart.
    async fn restart(self, dir: &Path, config: &str, secret_var: &str) -> Self {
        self.running.shutdown().await;
        Self::start_on(dir, config, secret_var, self.database).await
    }

    async fn start_on(
        dir: &Path,
        config: &str,
        secret_var: &str,
        database: Option<roster_store::testing::TestDatabase>,
    ) -> Self {
        // SAFETY: each test uses its own variable name; nothing else reads it.
        unsafe { std::env::set_var(secret_var, "svc-test-secret-value") };
        let path = dir.join("roster.toml");
        std::fs::write(&path, config).unwrap();
        let mut config = ServeConfig::load(&path).expect("the config is valid");
        config.database = database.as_ref().map(|db| db.url.as_str().into());
        let state = dir.join("state");
        let running = roster_service::start(config, state.clone())
            .await
            .expect("the service starts");
        let base = format!("http://{}", running.addr);
        Self {
            running,
            base,
            http: roster_http::client(),
            state,
            database,
        }
    }

    /// Another service on this one's PostgreSQL database (as on another machine), with a
    /// state folder of its own in `dir`; it leaves the database to this one to drop.
    async fn beside(&self, dir: &Path, config: &str, secret_var: &str) -> Self {
        let db = self.database.as_ref().expect("a service on PostgreSQL");
        let path = dir.join("roster.toml");
        std::fs::write(&path, config).unwrap();
        let mut config = ServeConfig::load(&path).expect("the config is valid");
        config.database = Some(db.url.as_str().into());
        // SAFETY: each test uses its own variable name; nothing else reads it.
        unsafe { std::env::set_var(secret_var, "svc-test-secret-value") };
        let state = dir.join("state");
        let running = roster_service::start(config, state.clone())
            .await
            .expect("the service starts");
        Self {
            base: format!("http://{}", running.addr),
            running,
            http: roster_http::client(),
            state,
            database: None,
        }
    }

    /// Asks for a reconcile of `instance` through the API and waits for that run to finish.
    async fn reconcile_now(&self, operator: &str, viewer: &str, instance: &str) -> Value {
        let path = format!("/api/v1/instances/{instance}/reconcile");
        let (status, _) = self.post(operator, &path, json!({})).await;
        assert_eq!(status, 202);
        self.run_where(viewer, "the reconcile asked for", |r| {
            r["instance"] == instance
                && r["trigger"].as_str().is_some_and(|t| t.starts_with("api:"))
        })
        .await
    }

    /// The state's database itself, as someone with write access to it (and not to the
    /// service's signing key) would open it.
    async fn raw_pool(&self) -> sqlx::AnyPool {
        sqlx::any::install_default_drivers();
        let url = match &self.database {
            Some(db) => db.url.clone(),
            None => format!("sqlite://{}", self.state.join("roster.sqlite").display()),
        };
        sqlx::AnyPool::connect(&url).await.unwrap()
    }

    /// The service's state, opened as another process would.
    async fn store(&self) -> StateStore {
        let url = self.database.as_ref().map(|d| d.url.as_str());
        StateStore::open_at(&self.state, url).await.unwrap()
    }

    /// Stops the service and drops its database, if it has one.
    async fn stop(self) {
        drop(self.stop_keeping_database().await);
    }

    /// Stops the service and hands back its database, for another service on it to carry
    /// on: drop it once the last one has stopped.
    async fn stop_keeping_database(self) -> Option<roster_store::testing::TestDatabase> {
        self.running.shutdown().await;
        self.database
    }

    async fn token(&self, name: &str, role: &str) -> String {
        let store = self.store().await;
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
    let mail: Value = roster_http::client()
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
        "[service]\nlisten = \"127.0.0.1:0\"\nroster_watch = \"off\"\n\n[marketo.acme]\nurl = \"{}\"\nclient_id = \"svc-test\"\nclient_secret_env = \"{var}\"\nroster = \"people.yaml\"\ninterval = \"{interval}\"\nauto_apply = \"safe\"\n{extra}",
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
    // Katherine is a leaver in the roster: whoever asks is told what will follow.
    assert!(
        asked["note"]
            .as_str()
            .is_some_and(|n| n.contains("lists them as a leaver") && n.contains("kept for 30 days")),
        "{asked:#}"
    );
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
    let (status, approved) = svc
        .post(
            &bob,
            &format!("/api/v1/restores/{request}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(status, 202);
    assert!(
        approved["note"]
            .as_str()
            .is_some_and(|n| n.contains("lists them as a leaver")),
        "and whoever approves: {approved:#}"
    );
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
    // The next run does not take the restored invitation back behind the approval (the
    // roster still says leaver): the restore's exception keeps it, held or not.
    let run = svc.reconcile_now(&alice, &viewer, "marketo.acme").await;
    assert!(
        !run.to_string().contains("invitation of katherine"),
        "{run:#}"
    );
    let (_, pending) = svc.get(&viewer, "/api/v1/plans?status=pending").await;
    for p in pending["plans"].as_array().unwrap() {
        let id = p["plan_id"].as_str().or(p["id"].as_str()).unwrap();
        let (_, detail) = svc.get(&viewer, &format!("/api/v1/plans/{id}")).await;
        assert!(
            !detail["steps"].to_string().contains("katherine"),
            "{detail:#}"
        );
    }

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
    let refused_runs = metrics
        .lines()
        .find(|l| l.starts_with("roster_runs_total{instance=\"marketo.acme\",outcome=\"refused\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok());
    assert!(refused_runs.is_some_and(|n| n >= 1.0), "{metrics}");
    assert!(
        metrics.contains(&format!(
            "roster_build_info{{version=\"{}\",commit=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION"),
            option_env!("ROSTER_COMMIT").unwrap_or("unknown")
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("roster_last_success_timestamp_seconds{instance=\"marketo.acme\"} "),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("roster_pending_approvals{instance=\"marketo.acme\"} ")),
        "{metrics}"
    );
    // The log and the runs page with cursors that hold while lines are added.
    let (_, all) = svc.get(&viewer, "/api/v1/log").await;
    let all: Vec<i64> = all["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_i64().unwrap())
        .collect();
    assert!(all.len() > 3, "{all:?}");
    let (_, first) = svc.get(&viewer, "/api/v1/log?limit=2").await;
    let next = first["next_after"]
        .as_i64()
        .expect("a full page has a next");
    assert_eq!(next, all[1]);
    let (_, rest) = svc
        .get(&viewer, &format!("/api/v1/log?after={next}&limit=5000"))
        .await;
    let rest: Vec<i64> = rest["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_i64().unwrap())
        .collect();
    assert_eq!(rest, all[2..].to_vec());
    let (_, newest) = svc.get(&viewer, "/api/v1/runs?limit=1").await;
    let before = newest["next_before"].as_i64().unwrap();
    let (_, older) = svc
        .get(&viewer, &format!("/api/v1/runs?before={before}"))
        .await;
    assert!(
        older["runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["id"].as_i64().unwrap() < before),
        "{older:#}"
    );
    assert!(older["next_before"].is_null(), "{older:#}");
    // The root leads to the console; an unknown page is a real 404 page; the API answers a
    // wrong method and an unknown route in JSON.
    let root = roster_http::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/", svc.base))
        .send()
        .await
        .unwrap();
    assert_eq!(root.status(), 303, "{root:?}");
    assert_eq!(root.headers()["location"], "/console");
    let missing = svc
        .http
        .get(format!("{}/no/such/page", svc.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.text().await.unwrap().contains("Go to the console"));
    let wrong = svc
        .http
        .delete(format!("{}/api/v1/instances", svc.base))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 405);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
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
    let wanted = [
        "plan.pending",
        "account.created",
        "account.removed",
        "run.failed",
    ];
    // On PostgreSQL deliveries are jobs of the shared queue, taken up after the run that
    // queued them: awaited until each has arrived (bounded), not assumed at once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (got, events) = loop {
        let got = received.lock().unwrap().clone();
        let events: Vec<String> = got
            .iter()
            .map(|(h, _)| h["x-roster-event"].to_str().unwrap().to_string())
            .collect();
        if wanted.iter().all(|w| events.iter().any(|e| e == w))
            || tokio::time::Instant::now() >= deadline
        {
            break (got, events);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for wanted in wanted {
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

    svc.stop().await;
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_plan_rewritten_in_the_database_is_neither_shown_nor_approved() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(dir.path()).await;
    let (hook_addr, received) = receiver().await;
    // SAFETY: this test's own variable.
    unsafe { std::env::set_var("ROSTER_TEST_HOOK_SECRET_HELD", "hook-secret") };
    std::fs::write(dir.path().join("people.yaml"), EXAMPLE).unwrap();
    let extra = format!(
        "\n[webhook.heads]\nurl = \"http://{hook_addr}/hook\"\nsecret_env = \"ROSTER_TEST_HOOK_SECRET_HELD\"\nevents = [\"log.head\"]\n"
    );
    let svc = Service::start(
        dir.path(),
        &config(&sandbox, "ROSTER_TEST_SECRET_HELD", "1h", &extra).replacen(
            "[service]\n",
            "[service]\nlog_head_interval = \"200ms\"\n",
            1,
        ),
        "ROSTER_TEST_SECRET_HELD",
    )
    .await;
    let viewer = svc.token("auditor", "viewer").await;
    let bob = svc.token("bob", "approver").await;
    let first = svc
        .run_where(&viewer, "scheduled at start", |r| {
            r["trigger"] == "schedule"
        })
        .await;
    assert_eq!(first["outcome"], "awaiting_approval", "{first:#}");
    let id = first["plan_id"].as_str().unwrap().to_string();

    // Someone with write access to the database (not to the service's key) adds the
    // deletion of the protected admin to the held plan, its digest made anew.
    let store = svc.store().await;
    let (_, signed_body) = store.held_plan(&id).await.unwrap().unwrap();
    let mut plan: roster_domain::plan::Plan = serde_json::from_str(&signed_body).unwrap();
    assert!(plan.signature.is_some(), "held plans are signed");
    // Its "before" is the state the approval will meet: after the safe steps that ran
    // (nia was invited by one), not the read before them.
    assert!(
        plan.live
            .marketo
            .as_ref()
            .unwrap()
            .users
            .iter()
            .any(|u| u.email.eq_ignore_ascii_case("nia.okafor@acme.example")),
        "the held plan's snapshot predates the safe steps"
    );
    assert!(mailbox(&sandbox, "nia.okafor@acme.example").await >= 1);
    let mut step = plan.steps[0].clone();
    step.index = plan.steps.len() + 1;
    step.key = format!("{}/{}/forged", plan.id, step.index);
    step.action = roster_domain::plan::Action::MarketoDelete {
        userid: "ada.lovelace@acme.example".into(),
    };
    plan.steps.push(step);
    plan.digest = plan.content_digest();
    let pool = svc.raw_pool().await;
    sqlx::query("UPDATE plans SET body = $1 WHERE id = $2")
        .bind(serde_json::to_string(&plan).unwrap())
        .bind(&id)
        .execute(&pool)
        .await
        .unwrap();

    let (status, shown) = svc.get(&viewer, &format!("/api/v1/plans/{id}")).await;
    assert_eq!(
        (status, shown["error"]["code"].as_str()),
        (409, Some("plan_not_trusted")),
        "{shown:#}"
    );
    assert!(
        shown["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("does not match its signature")),
        "{shown:#}"
    );
    let (status, body) = svc
        .post(&bob, &format!("/api/v1/plans/{id}/approve"), json!({}))
        .await;
    assert_eq!(status, 409, "{body:#}");
    let (_, held) = svc.get(&viewer, "/api/v1/plans?status=pending").await;
    assert!(held.to_string().contains(&id), "still pending: {held:#}");
    assert!(marketo_has(&sandbox, "ada.lovelace@acme.example").await);
    assert!(marketo_has(&sandbox, "katherine.johnson@acme.example").await);

    // Put back as the service signed it, the plan is shown and approved again.
    sqlx::query("UPDATE plans SET body = $1 WHERE id = $2")
        .bind(&signed_body)
        .bind(&id)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let (status, _) = svc.get(&viewer, &format!("/api/v1/plans/{id}")).await;
    assert_eq!(status, 200);
    let (status, body) = svc
        .post(&bob, &format!("/api/v1/plans/{id}/approve"), json!({}))
        .await;
    assert_eq!(status, 202, "{body:#}");
    let applied = svc
        .run_where(&viewer, "applying the approval", |r| {
            r["trigger"]
                .as_str()
                .is_some_and(|t| t.starts_with(&format!("approval:{id}")))
        })
        .await;
    assert_eq!(applied["outcome"], "done", "{applied:#}");
    assert!(!marketo_has(&sandbox, "katherine.johnson@acme.example").await);
    assert!(marketo_has(&sandbox, "ada.lovelace@acme.example").await);

    // The log's head, signed: it proves every line up to it, and nothing else verifies.
    let (status, head) = svc.get(&viewer, "/api/v1/log/head").await;
    assert_eq!(status, 200, "{head:#}");
    let head: roster_store::LogHead = serde_json::from_value(head).unwrap();
    let store = &svc.running.shared.store;
    let keys = store.keys().unwrap();
    let lines = store.log(None).await.unwrap().len() as i64;
    assert!(head.id >= lines - 1 && head.id > 0, "{head:?} of {lines}");
    assert!(
        store
            .verify_log_with(keys, Some(&head))
            .await
            .unwrap()
            .is_ok()
    );
    let mut moved = head.clone();
    moved.id -= 1;
    assert!(
        store
            .verify_log_with(keys, Some(&moved))
            .await
            .unwrap()
            .is_err()
    );
    // And each run that wrote lines sent its head to the receiver that asked for them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let sent = loop {
        let got = received.lock().unwrap().clone();
        let heads: Vec<roster_store::LogHead> = got
            .iter()
            .filter_map(|(_, b)| serde_json::from_str::<Value>(b).ok())
            .filter(|v| v["event"] == "log.head")
            .filter_map(|v| serde_json::from_value(v["data"].clone()).ok())
            .collect();
        if heads.iter().any(|h| h.id >= head.id) {
            break heads;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no log.head for {}: {got:?}",
            head.id
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for h in &sent {
        assert!(h.verify(keys).is_ok(), "{h:?}");
    }
    // A line written outside any run (as an approval or a token is) reaches the receiver
    // too: the head is published on a clock as well.
    let mut line = roster_store::NewLogEntry {
        actor: "auditor".into(),
        app: "roster".into(),
        action: "note".into(),
        target: "outside a run".into(),
        outcome: "done".into(),
        ..Default::default()
    };
    line.detail = Some("a line no run wrote".into());
    store
        .append_log(&line, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    let newest = store
        .log_head(time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert!(newest.id > head.id);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = received.lock().unwrap().clone();
        let published = got
            .iter()
            .filter_map(|(_, b)| serde_json::from_str::<Value>(b).ok())
            .filter(|v| v["event"] == "log.head")
            .any(|v| v["data"]["id"].as_i64() == Some(newest.id));
        if published {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no log.head for {} within 30 s: {got:?}",
            newest.id
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    svc.stop().await;
}

/// A token made for a console account is that person: four-eyes sees one person whichever
/// way they come in, and the token never has more than the account's role now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_a_console_account_carries_its_identity_and_role() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(dir.path()).await;
    std::fs::write(dir.path().join("people.yaml"), EXAMPLE).unwrap();
    let svc = Service::start(
        dir.path(),
        &config(&sandbox, "ROSTER_TEST_SECRET_BOUND", "1h", ""),
        "ROSTER_TEST_SECRET_BOUND",
    )
    .await;
    let store = svc.store().await;
    let now = OffsetDateTime::now_utc();
    store
        .add_console_user(
            "carol",
            "approver",
            &roster_service::console::hash_password("a-long-password-1"),
            now,
        )
        .await
        .unwrap();
    let bound = |name: &'static str| {
        let store = &store;
        async move {
            let token = tokens::generate();
            store
                .add_token_for(name, "approver", Some("carol"), &tokens::hash(&token), now)
                .await
                .unwrap();
            token
        }
    };
    let (laptop, phone) = (bound("carol-laptop").await, bound("carol-phone").await);
    let viewer = svc.token("auditor", "viewer").await;
    let bob = svc.token("bob", "approver").await;
    let first = svc
        .run_where(&viewer, "scheduled at start", |r| {
            r["trigger"] == "schedule"
        })
        .await;
    // Turned down, so that carol's reconcile holds a plan of its own.
    let scheduled = first["plan_id"].as_str().unwrap();
    let (status, _) = svc
        .post(
            &bob,
            &format!("/api/v1/plans/{scheduled}/reject"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let run = svc.reconcile_now(&laptop, &viewer, "marketo.acme").await;
    assert_eq!(
        run["trigger"], "api:carol",
        "the token acts as carol: {run:#}"
    );
    let (_, pending) = svc.get(&viewer, "/api/v1/plans?status=pending").await;
    let held = pending["plans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["requested_by"] == "api:carol")
        .unwrap_or_else(|| panic!("no plan carol asked for: {pending:#}"));
    let id = held["plan_id"].as_str().unwrap().to_string();
    // Her other token is still carol: four-eyes refuses it. Another person approves.
    let (status, body) = svc
        .post(&phone, &format!("/api/v1/plans/{id}/approve"), json!({}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("four_eyes")),
        "{body:#}"
    );
    let (status, body) = svc
        .post(&bob, &format!("/api/v1/plans/{id}/approve"), json!({}))
        .await;
    assert_eq!(status, 202, "{body:#}");

    // Demoted to viewer, her tokens are viewers; removed, they stop working.
    let pool = svc.raw_pool().await;
    sqlx::query("UPDATE console_users SET role = 'viewer' WHERE name = 'carol'")
        .execute(&pool)
        .await
        .unwrap();
    let (status, body) = svc
        .post(
            &laptop,
            "/api/v1/instances/marketo.acme/reconcile",
            json!({}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{body:#}"
    );
    sqlx::query("DELETE FROM console_users WHERE name = 'carol'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let (status, body) = svc.get(&laptop, "/api/v1/runs").await;
    assert_eq!(status, 401, "{body:#}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("no longer exists")),
        "{body:#}"
    );
    svc.stop().await;
}

/// What a Marketo sandbox has served so far (`GET /sandbox/stats`).
async fn sandbox_stats(sandbox: &RunningSandbox) -> Value {
    roster_http::client()
        .get(format!("{}/sandbox/stats", sandbox.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// An edit of the roster file is planned for at once, for the person it touched only: the
/// joiner is invited by a targeted run that reads no other user's roles, once; later full
/// runs do not invite again. An edit of the policies plans for everyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roster_edit_plans_for_the_people_it_touched_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(dir.path()).await;
    std::fs::write(dir.path().join("people.yaml"), EXAMPLE).unwrap();
    let config = config(&sandbox, "ROSTER_TEST_SECRET_2", "1h", "")
        .replace("roster_watch = \"off\"", "roster_watch = \"200ms\"");
    let svc = Service::start(dir.path(), &config, "ROSTER_TEST_SECRET_2").await;
    let viewer = svc.token("viewer", "viewer").await;
    let operator = svc.token("op", "operator").await;
    let first = svc.run_where(&viewer, "at start", |_| true).await;
    let first_id = first["id"].as_i64().unwrap();
    let read_before = sandbox_stats(&sandbox).await["usersRead"].as_u64().unwrap();
    std::fs::write(dir.path().join("people.yaml"), format!("{EXAMPLE}{JOINER}")).unwrap();
    let invited = svc
        .run_where(&viewer, "planned for the edit", |r| {
            r["id"].as_i64().unwrap() > first_id && r["trigger"] == "roster file: 1 person"
        })
        .await;
    assert_eq!(invited["outcome"], "done", "{invited:#}");
    assert!(
        invited["summary"]
            .as_str()
            .unwrap()
            .contains("targeted at 1 person (grace.new@acme.example)"),
        "{invited:#}"
    );
    assert!(
        invited["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "step"
                && e["stage"] == "invite"
                && e["account"]
                    .as_str()
                    .is_some_and(|a| a.ends_with("grace.new@acme.example"))),
        "{invited:#}"
    );
    // Grace has no user yet: not one user's roles was read.
    let read_after = sandbox_stats(&sandbox).await["usersRead"].as_u64().unwrap();
    assert_eq!(
        read_after, read_before,
        "a targeted run read other users' roles"
    );
    assert_eq!(mailbox(&sandbox, "grace.new@acme.example").await, 1);
    // A full run afterwards finds her invited: no second invitation.
    let full = svc.reconcile_now(&operator, &viewer, "marketo.acme").await;
    assert!(
        !full["summary"].as_str().unwrap().contains("targeted"),
        "{full:#}"
    );
    assert!(
        sandbox_stats(&sandbox).await["usersRead"].as_u64().unwrap() > read_after,
        "a full run reads every user's roles"
    );
    assert_eq!(mailbox(&sandbox, "grace.new@acme.example").await, 1);
    // Grace Hopper leaves: her removal waits for approval in a plan of its own, beside the
    // full run's pending plan (about others), which it does not replace.
    let (_, pending) = svc.get(&viewer, "/api/v1/plans?status=pending").await;
    let before: Vec<Value> = pending["plans"].as_array().unwrap().clone();
    assert_eq!(before.len(), 1, "{pending:#}");
    let leaving = format!("{EXAMPLE}{JOINER}").replacen(
        "    last_name: Hopper\n",
        "    last_name: Hopper\n    status: leaver\n",
        1,
    );
    std::fs::write(dir.path().join("people.yaml"), &leaving).unwrap();
    let held = svc
        .run_where(&viewer, "planned for the leaver", |r| {
            r["trigger"] == "roster file: 1 person" && r["outcome"] == "awaiting_approval"
        })
        .await;
    assert!(
        held["summary"]
            .as_str()
            .unwrap()
            .contains("grace.hopper@acme.example"),
        "{held:#}"
    );
    let (_, pending) = svc.get(&viewer, "/api/v1/plans?status=pending").await;
    let now: Vec<&str> = pending["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["plan_id"].as_str().unwrap())
        .collect();
    assert_eq!(now.len(), 2, "{pending:#}");
    assert!(
        now.contains(&before[0]["plan_id"].as_str().unwrap()),
        "{pending:#}"
    );
    let (_, detail) = svc
        .get(
            &viewer,
            &format!("/api/v1/plans/{}", held["plan_id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(
        detail["targeted"]["people"],
        json!(["grace.hopper@acme.example"]),
        "{detail:#}"
    );
    // An edit of the policies (not of one person): everyone is planned for.
    let edited = leaving.replacen("max_destructive: 3", "max_destructive: 4", 1);
    assert_ne!(edited, leaving, "the example caps at 3");
    std::fs::write(dir.path().join("people.yaml"), &edited).unwrap();
    let everyone = svc
        .run_where(&viewer, "planned for a policy edit", |r| {
            r["trigger"] == "roster file (rules or policies)"
        })
        .await;
    assert!(
        !everyone["summary"].as_str().unwrap().contains("targeted"),
        "{everyone:#}"
    );
    svc.stop().await;
    sandbox.shutdown().await;
}

/// An admin's REST call to a Magento sandbox, as someone editing the store by hand.
async fn shop_call(
    shop: &roster_sandbox::magento::RunningMagento,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let http = roster_http::client();
    let token: String = http
        .post(format!(
            "{}/rest/V1/integration/admin/token",
            shop.base_url()
        ))
        .json(&json!({"username": shop.admin_user(), "password": "Shop-Admin-2024"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut req = http
        .request(method, format!("{}/rest/all/V1/{path}", shop.base_url()))
        .bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let r = req.send().await.unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap_or(Value::Null)
}

/// Between full reads, a Magento instance looks for customers changed since (`updated_at`):
/// one moved to another group by hand is planned for alone and moved back; one deleted by
/// hand (which `updated_at` cannot show) lowers the managed count and starts a full run,
/// which makes the account again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn magento_changes_between_full_reads_are_planned_for_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (shop, section) = shop(dir.path(), "changes_every = \"1s\"\n").await;
    std::fs::write(dir.path().join("people.yaml"), EXAMPLE).unwrap();
    let config = format!("[service]\nlisten = \"127.0.0.1:0\"\nroster_watch = \"off\"\n{section}");
    let svc = Service::start(dir.path(), &config, "ROSTER_TEST_SECRET_22").await;
    let viewer = svc.token("viewer", "viewer").await;
    let first = svc.run_where(&viewer, "at start", |_| true).await;
    assert_eq!(first["outcome"], "done", "{first:#}");
    let nia = "nia.okafor@acme.example";
    let find = || async {
        let found = shop_call(
            &shop,
            reqwest::Method::GET,
            &format!(
                "customers/search?searchCriteria[filterGroups][0][filters][0][field]=email&searchCriteria[filterGroups][0][filters][0][value]={nia}"
            ),
            None,
        )
        .await;
        found["items"].as_array().unwrap().first().cloned()
    };
    let customer = find().await.expect("the first run made Nia's account");
    let wholesale = customer["group_id"].as_i64().unwrap();
    let id = customer["id"].as_i64().unwrap();
    let mut moved = customer.clone();
    moved["group_id"] = json!(1);
    assert_ne!(wholesale, 1);
    shop_call(
        &shop,
        reqwest::Method::PUT,
        &format!("customers/{id}"),
        Some(json!({"customer": moved})),
    )
    .await;
    let back = svc
        .run_where(&viewer, "planned for the change", |r| {
            r["trigger"]
                .as_str()
                .is_some_and(|t| t.starts_with("magento changes:"))
                && r["events"].as_array().unwrap().iter().any(|e| {
                    e["kind"] == "step"
                        && e["outcome"] == "done"
                        && e["account"].as_str().is_some_and(|a| a.ends_with(nia))
                })
        })
        .await;
    assert!(
        back["summary"].as_str().unwrap().contains("targeted at"),
        "{back:#}"
    );
    assert_eq!(find().await.unwrap()["group_id"], wholesale);
    // Deleted by hand: the count tells, and a full run makes the account again.
    shop_call(
        &shop,
        reqwest::Method::DELETE,
        &format!("customers/{id}"),
        None,
    )
    .await;
    let full = svc
        .run_where(&viewer, "started by the deletion", |r| {
            r["trigger"].as_str().is_some_and(|t| {
                t.starts_with("magento changes:") && t.ends_with("(some were deleted)")
            })
        })
        .await;
    assert!(
        !full["summary"].as_str().unwrap().contains("targeted"),
        "{full:#}"
    );
    assert!(find().await.is_some(), "{full:#}");
    svc.stop().await;
}

/// The day's budget: once full runs would eat into the share kept for targeted runs they
/// are deferred, and a targeted run (an API request about one person) still goes ahead,
/// reading that person's roles alone; `/api/v1/instances` shows what each kind costs and
/// how many full runs fit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_run_over_budget_is_deferred_but_a_targeted_run_goes_ahead() {
    let dir = tempfile::tempdir().unwrap();
    // Forty more users than the seed: a full run reads each one's roles.
    let admin = roster_sandbox::marketo::admin::Admin::open(&dir.path().join("marketo"))
        .await
        .unwrap();
    let roles: Vec<roster_sandbox::marketo::admin::RoleAt> =
        vec!["Standard User@Default".parse().unwrap()];
    admin
        .add_people("staff", "partner.example", 40, &roles)
        .await
        .unwrap();
    admin.close().await;
    let sandbox = sandbox(dir.path()).await;
    std::fs::write(dir.path().join("people.yaml"), EXAMPLE).unwrap();
    let svc = Service::start(
        dir.path(),
        &config(&sandbox, "ROSTER_TEST_SECRET_21", "1h", ""),
        "ROSTER_TEST_SECRET_21",
    )
    .await;
    let viewer = svc.token("viewer", "viewer").await;
    svc.run_where(&viewer, "at start", |_| true).await;
    let (_, instances) = svc.get(&viewer, "/api/v1/instances").await;
    let budget = &instances["instances"][0]["budget"];
    let full = budget["full_run_calls"].as_u64().expect("measured");
    let used = budget["used_today"].as_u64().unwrap();
    assert!(full > 40 && used >= full, "{budget:#}");
    assert!(
        budget["full_runs_fit_today"].as_u64().unwrap() > 100,
        "{budget:#}"
    );
    // Started again with a day's budget that leaves room for a targeted run (estimated at
    // 20 calls before one ran) but not for another full run beside the 10% reserve.
    let daily = used + 20;
    let svc = svc
        .restart(
            dir.path(),
            &config(
                &sandbox,
                "ROSTER_TEST_SECRET_21",
                "1h",
                &format!("daily_budget = {daily}\n"),
            ),
            "ROSTER_TEST_SECRET_21",
        )
        .await;
    let viewer = svc.token("viewer2", "viewer").await;
    let operator = svc.token("op", "operator").await;
    let deferred = svc.reconcile_now(&operator, &viewer, "marketo.acme").await;
    assert_eq!(deferred["outcome"], "deferred", "{deferred:#}");
    assert!(
        deferred["summary"]
            .as_str()
            .unwrap()
            .contains("kept for targeted runs"),
        "{deferred:#}"
    );
    let (_, instances) = svc.get(&viewer, "/api/v1/instances").await;
    let budget = &instances["instances"][0]["budget"];
    assert_eq!(budget["full_runs_fit_today"], 0, "{budget:#}");
    assert_eq!(budget["daily_budget"], daily, "{budget:#}");
    // A request about one person: not deferred, and only her roles are read.
    let read_before = sandbox_stats(&sandbox).await["usersRead"].as_u64().unwrap();
    let (status, body) = svc
        .post(
            &operator,
            "/api/v1/instances/marketo.acme/reconcile",
            json!({"people": ["Ada.Lovelace@acme.example"]}),
        )
        .await;
    assert_eq!(status, 202, "{body:#}");
    let targeted = svc
        .run_where(&viewer, "targeted", |r| {
            r["trigger"] == "api:op" && r["outcome"] != "deferred"
        })
        .await;
    assert_eq!(targeted["outcome"], "done", "{targeted:#}");
    assert!(
        targeted["summary"]
            .as_str()
            .unwrap()
            .contains("targeted at 1 person (ada.lovelace@acme.example)"),
        "{targeted:#}"
    );
    let read = sandbox_stats(&sandbox).await["usersRead"].as_u64().unwrap() - read_before;
    assert_eq!(
        read, 1,
        "a targeted run reads the roles of its person alone"
    );
    let (_, instances) = svc.get(&viewer, "/api/v1/instances").await;
    let budget = &instances["instances"][0]["budget"];
    let targeted_calls = budget["targeted_run_calls"].as_u64().unwrap();
    assert!(targeted_calls < full, "{budget:#}");
    // A request that names no one, or not an email, is refused with what to send.
    for bad in [
        json!({"people": []}),
        json!({"people": ["not an email"]}),
        json!({"who": 1}),
    ] {
        let (status, body) = svc
            .post(&operator, "/api/v1/instances/marketo.acme/reconcile", bad)
            .await;
        assert_eq!(status, 400, "{body:#}");
    }
    svc.stop().await;
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_run_side_by_side_and_a_run_over_budget_is_deferred() {
    let dir = tempfile::tempdir().unwrap();
    let marketo = sandbox(dir.path()).await;
    let (shop, section) = shop(dir.path(), "").await;
    std::fs::write(dir.path().join("people.yaml"), EXAMPLE).unwrap();
    let extra = format!("daily_budget = 5\n{section}");
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
    svc.stop().await;
    shop.shutdown().await;
    marketo.shutdown().await;
}

/// `parallel_runs = 1`: three instances due at once run one after another, never two at a
/// time (on PostgreSQL, the job queue takes one job at a time; in process, a slot each).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_runs_bound_the_runs_a_process_works_on_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut sandboxes = Vec::new();
    for i in 0..3 {
        let at = dir.path().join(format!("s{i}"));
        std::fs::create_dir_all(&at).unwrap();
        // Slow calls, so runs left free to overlap would.
        sandboxes.push(sandbox_with(&at, |c| c.faults.latency = Duration::from_millis(100)).await);
    }
    std::fs::write(dir.path().join("people.yaml"), EXAMPLE).unwrap();
    let mut text = String::from("[service]\nlisten = \"127.0.0.1:0\"\nparallel_runs = 1\n");
    for (i, sb) in sandboxes.iter().enumerate() {
        text.push_str(&format!(
            "\n[marketo.a{i}]\nurl = \"{}\"\nclient_id = \"svc-test\"\nclient_secret_env = \"ROSTER_TEST_SECRET_SLOTS\"\nroster = \"people.yaml\"\ninterval = \"1h\"\nauto_apply = \"safe\"\n",
            sb.base_url()
        ));
    }
    let svc = Service::start(dir.path(), &text, "ROSTER_TEST_SECRET_SLOTS").await;
    let viewer = svc.token("viewer", "viewer").await;
    for i in 0..3 {
        let name = format!("marketo.a{i}");
        let run = svc
            .run_where(&viewer, &name, |r| r["instance"] == name.as_str())
            .await;
        assert!(run["error"].is_null(), "{run:#}");
    }
    let mut runs = svc.store().await.runs(None, 100).await.unwrap();
    assert_eq!(runs.len(), 3, "{runs:#?}");
    runs.sort_by_key(|r| r.started_at);
    for pair in runs.windows(2) {
        let ended = pair[0].finished_at.expect("finished");
        assert!(
            ended <= pair[1].started_at,
            "two runs at once with parallel_runs = 1: {pair:#?}"
        );
    }
    svc.stop().await;
    for sb in sandboxes {
        sb.shutdown().await;
    }
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
    svc.stop().await;
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
    let store = svc.store().await;
    let hash = roster_service::console::hash_password("right-password-123");
    store
        .add_console_user("ann", "approver", &hash, OffsetDateTime::now_utc())
        .await
        .unwrap();
    let http = roster_http::client_builder()
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
    assert_eq!(
        sign_in(t.clone(), "right-password-123", false)
            .await
            .status(),
        403
    );
    // A token the attacker chose, sent as both cookie and field (a sibling subdomain can
    // set the cookie): refused, as is a real one with its time or nonce changed.
    let (nonce, sig) = t.split_once('|').expect("a signed form token");
    let (_, rest) = nonce.split_once('.').unwrap();
    let stale = format!(
        "{}.{rest}|{sig}",
        OffsetDateTime::now_utc().unix_timestamp() + 5
    );
    for chosen in [
        "attacker-chosen".to_string(),
        format!("{nonce}x|{sig}"),
        stale,
    ] {
        let r = sign_in(chosen.clone(), "right-password-123", true).await;
        assert_eq!(r.status(), 403, "{chosen}");
        assert!(r.text().await.unwrap().contains("The sign-in form expired"));
    }
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
    let said = "Wrong name or password, or the account is locked after repeated failed sign-ins.";
    for _ in 0..3 {
        let t = form_token().await;
        let wrong = sign_in(t, "wrong", true).await;
        assert_eq!(wrong.status(), 401);
        assert!(wrong.text().await.unwrap().contains(said));
    }
    // Locked, it answers exactly as for a wrong password (or a name that does not exist):
    // nothing tells a guesser which names are real.
    let t = form_token().await;
    let locked = sign_in(t, "right-password-123", true).await;
    assert_eq!(locked.status(), 401);
    let page = locked.text().await.unwrap();
    assert!(page.contains(said), "{page}");
    let user = store.console_user("ann").await.unwrap().unwrap();
    assert!(
        user.locked_until
            .is_some_and(|t| t > OffsetDateTime::now_utc())
    );
    svc.stop().await;
    sandbox.shutdown().await;
}

/// A console session for a new user `name`, made in the state directly (the sign-in form is
/// tested above): the cookie header to send.
async fn console_cookie(svc: &Service, name: &str, role: &str) -> String {
    let store = svc.store().await;
    let now = OffsetDateTime::now_utc();
    let id = store
        .add_console_user(
            name,
            role,
            &roster_service::console::hash_password("a-long-password-1"),
            now,
        )
        .await
        .unwrap();
    let session = tokens::generate();
    store
        .start_session(
            id,
            &roster_domain::sha256::hex(session.as_bytes()),
            "csrf",
            now,
        )
        .await
        .unwrap();
    format!("roster_session={session}")
}

/// Each run keeps its instance's access inventory: searched, filtered and exported without
/// calling the apps, joined by email across a Marketo and a Magento instance, with the
/// changes the run applied after its read already in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_keep_an_access_inventory_that_is_searched_and_joined_by_person() {
    let dir = tempfile::tempdir().unwrap();
    let marketo = sandbox(dir.path()).await;
    let (shop, extra) = shop(dir.path(), "auto_apply = \"safe\"\n").await;
    std::fs::write(dir.path().join("people.yaml"), EXAMPLE).unwrap();
    let svc = Service::start(
        dir.path(),
        &config(&marketo, "ROSTER_TEST_SECRET_6", "1h", &extra),
        "ROSTER_TEST_SECRET_6",
    )
    .await;
    let viewer = svc.token("viewer", "viewer").await;
    // Before any run: the instance is known, its inventory not read yet.
    let (status, body) = svc
        .get(&viewer, "/api/v1/instances/marketo.acme/access")
        .await;
    assert!(
        status == 404 && body["error"]["code"] == "not_read_yet" || status == 200,
        "{status} {body:#}"
    );
    svc.run_where(&viewer, "of marketo", |r| r["instance"] == "marketo.acme")
        .await;
    svc.run_where(&viewer, "of the shop", |r| r["instance"] == "magento.shop")
        .await;

    let (status, all) = svc
        .get(&viewer, "/api/v1/instances/marketo.acme/access?limit=1000")
        .await;
    assert_eq!(status, 200, "{all:#}");
    assert_eq!(all["report"]["generated_by"], "api:viewer");
    assert!(
        all["report"]["scope"]
            .as_str()
            .unwrap()
            .contains("every Marketo user")
    );
    // The run invited Nia after its read: in the inventory already, as a pending invitation.
    assert!(
        all["report"]["changes_since_read"].as_u64().unwrap() > 0,
        "{all:#}"
    );
    let accounts = all["accounts"].as_array().unwrap();
    assert_eq!(all["matched"], all["total"]);
    assert_eq!(accounts.len() as u64, all["total"].as_u64().unwrap());
    let nia = accounts
        .iter()
        .find(|a| a["email"] == "nia.okafor@acme.example")
        .expect("the invited joiner");
    assert_eq!(
        (&nia["kind"], &nia["status"]),
        (&json!("invitation"), &json!("pending"))
    );
    let emails: Vec<&str> = accounts
        .iter()
        .map(|a| a["email"].as_str().unwrap())
        .collect();
    assert!(emails.windows(2).all(|w| w[0] <= w[1]), "sorted by email");

    // Search: someone with roles in two workspaces, found by part of their email in any
    // case, with their last login.
    let two = accounts
        .iter()
        .find(|a| {
            let g = a["access"].as_array().unwrap();
            g.iter().any(|x| {
                g.iter().any(|y| {
                    !g.iter()
                        .any(|z| z["role"] == x["role"] && z["scope"] == y["scope"])
                })
            })
        })
        .expect("a user with roles in two workspaces");
    let email = two["email"].as_str().unwrap();
    let local = email.split('@').next().unwrap();
    let (_, found) = svc
        .get(
            &viewer,
            &format!(
                "/api/v1/instances/marketo.acme/access?q={}",
                local.to_uppercase()
            ),
        )
        .await;
    assert_eq!(found["matched"], 1, "{found:#}");
    let g = &found["accounts"][0];
    assert_eq!((&g["kind"], &g["email"]), (&json!("user"), &json!(email)));
    assert!(g["last_login_at"].is_string(), "{g:#}");
    let grants = g["access"].as_array().unwrap();
    // A role held in one workspace and a workspace where it is not held.
    let (role, scope) = grants
        .iter()
        .flat_map(|x| grants.iter().map(move |y| (x, y)))
        .find(|(x, y)| {
            !grants
                .iter()
                .any(|z| z["role"] == x["role"] && z["scope"] == y["scope"])
        })
        .map(|(x, y)| (x["role"].as_str().unwrap(), y["scope"].as_str().unwrap()))
        .expect("a role not held in one of the workspaces");
    // Role and scope filter the same grant: the first role in another workspace is no match.
    let crossed = format!(
        "/api/v1/instances/marketo.acme/access?q={local}&role={}&scope={}",
        role.replace(' ', "%20"),
        scope.replace(' ', "%20"),
    );
    let (_, none) = svc.get(&viewer, &crossed).await;
    assert_eq!(none["matched"], 0, "{none:#}");
    // Paging: two rows from the second.
    let (_, page) = svc
        .get(
            &viewer,
            "/api/v1/instances/marketo.acme/access?offset=1&limit=2",
        )
        .await;
    assert_eq!(page["accounts"].as_array().unwrap().len(), 2);
    assert_eq!(page["accounts"][0]["email"], accounts[1]["email"]);
    // A bad filter says what is allowed; an unknown instance names the known ones.
    let (status, bad) = svc
        .get(&viewer, "/api/v1/instances/marketo.acme/access?status=gone")
        .await;
    assert_eq!(status, 400);
    assert!(
        bad["error"]["message"]
            .as_str()
            .unwrap()
            .contains("active, pending"),
        "{bad:#}"
    );
    let (status, unknown) = svc
        .get(&viewer, "/api/v1/instances/marketo.nope/access")
        .await;
    assert_eq!(
        (status, &unknown["error"]["code"]),
        (404, &json!("unknown_instance"))
    );
    assert!(
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .contains("magento.shop")
    );

    // Magento: customers by group and website, admin users by role.
    let (_, shop_all) = svc
        .get(&viewer, "/api/v1/instances/magento.shop/access?limit=1000")
        .await;
    let shop_accounts = shop_all["accounts"].as_array().unwrap();
    assert!(
        shop_accounts
            .iter()
            .any(|a| a["kind"] == "admin" && a["access"][0]["scope"] == "admin")
    );
    let nia_customer = shop_accounts
        .iter()
        .find(|a| a["email"] == "nia.okafor@acme.example" && a["kind"] == "customer")
        .expect("the joiner's customer account");
    assert_eq!(
        nia_customer["access"][0]["role"], "Wholesale",
        "{nia_customer:#}"
    );

    // One person across both apps.
    let (_, person) = svc
        .get(&viewer, "/api/v1/people/Nia.Okafor@acme.example")
        .await;
    let instances: Vec<&str> = person["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["instance"].as_str().unwrap())
        .collect();
    assert!(
        instances.contains(&"marketo.acme") && instances.contains(&"magento.shop"),
        "{person:#}"
    );
    assert!(person["not_read"].as_array().unwrap().is_empty());

    // The console: the page, its export, the person.
    let cookie = console_cookie(&svc, "auditor", "viewer").await;
    let http = roster_http::client();
    let get = |path: String| {
        let req = http
            .get(format!("{}{path}", svc.base))
            .header("cookie", &cookie);
        async move { req.send().await.unwrap() }
    };
    let page = get(format!("/console/access/marketo.acme?q={local}")).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains(email) && html.contains(&format!("matching &#34;{local}&#34;")),
        "{html}"
    );
    assert!(!html.contains("nia.okafor@acme.example"));
    let csv = get(format!("/console/access/marketo.acme/export.csv?q={local}")).await;
    assert!(
        csv.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("roster-access-marketo.acme-")
    );
    let csv = csv.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("instance,kind,id,email"));
    assert_eq!(lines.len(), 1 + grants.len(), "one row per grant: {csv}");
    let json_export: Value = get("/console/access/magento.shop/export.json".into())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(json_export["report"]["generated_by"], "console:auditor");
    assert_eq!(
        json_export["accounts"].as_array().unwrap().len(),
        shop_accounts.len()
    );
    let person_page = get("/console/person?email=nia.okafor%40acme.example".into())
        .await
        .text()
        .await
        .unwrap();
    assert!(
        person_page.contains("marketo.acme") && person_page.contains("Wholesale @ base"),
        "{person_page}"
    );
    let people = get("/console/people?q=okafor".into())
        .await
        .text()
        .await
        .unwrap();
    assert!(people.contains("nia.okafor@acme.example"), "{people}");
    let overview = get("/console".into()).await.text().await.unwrap();
    assert!(
        overview.contains("/console/access/marketo.acme") && overview.contains("of 50000"),
        "{overview}"
    );
    svc.stop().await;
    shop.shutdown().await;
    marketo.shutdown().await;
}

fn set_cookie_value(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(|c| c.split(';').next().unwrap().to_string())
}

/// Single sign-on through an OpenID Connect provider (the sandbox one, over real HTTP): the
/// code flow with PKCE gives a session with the role the person's groups map to; a forged
/// state, a replayed code and a person with no mapped group are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_signs_in_through_openid_connect() {
    use roster_sandbox::oidc::{self as idp, IdpUser};
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(dir.path()).await;
    std::fs::write(dir.path().join("people.yaml"), EXAMPLE).unwrap();
    // The service's address is only known once it listens: reserve a port for it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let callback = format!("http://127.0.0.1:{port}/console/oidc/callback");
    let user = |name: &str, groups: &[&str]| IdpUser {
        username: name.into(),
        password: format!("{name}-password"),
        email: format!("{name}@Acme.example"),
        name: name.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    };
    let provider = idp::start(idp::OidcConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        client_id: "roster-console".into(),
        client_secret: "idp secret/with+symbols".into(),
        redirect_uris: vec![callback.clone()],
        users: vec![
            user("ann", &["staff", "it-approvers"]),
            user("eve", &["contractors"]),
        ],
    })
    .await
    .unwrap();
    // SAFETY: this test's own variable.
    unsafe { std::env::set_var("ROSTER_TEST_OIDC_SECRET", "idp secret/with+symbols") };
    let extra = format!(
        "\n[console.oidc]\nissuer = \"{}\"\nclient_id = \"roster-console\"\nclient_secret_env = \"ROSTER_TEST_OIDC_SECRET\"\nredirect_url = \"{callback}\"\nlabel = \"Sandbox IdP\"\n[console.oidc.roles]\nit-approvers = \"approver\"\nstaff = \"viewer\"\n",
        provider.issuer()
    );
    let cfg = config(&sandbox, "ROSTER_TEST_SECRET_7", "1h", &extra).replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    let svc = Service::start(dir.path(), &cfg, "ROSTER_TEST_SECRET_7").await;
    let http = roster_http::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let sign_in_page = http
        .get(format!("{}/console/sign-in", svc.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        sign_in_page.contains("Sign in with Sandbox IdP"),
        "{sign_in_page}"
    );

    // Up to the provider's answer: the redirect to the callback and the flow cookie.
    let authorize = |name: &'static str| {
        let http = http.clone();
        let base = svc.base.clone();
        let callback = callback.clone();
        async move {
            let start = http
                .get(format!("{base}/console/oidc/start"))
                .send()
                .await
                .unwrap();
            assert_eq!(start.status(), 303);
            let flow = set_cookie_value(&start, "roster_oidc").expect("a flow cookie");
            let to = start.headers()["location"].to_str().unwrap().to_string();
            assert!(
                to.contains("code_challenge_method=S256") && to.contains("nonce="),
                "{to}"
            );
            let query: Vec<(String, String)> = url_query(&to);
            let mut form = query.clone();
            form.push(("username".into(), name.into()));
            form.push(("password".into(), format!("{name}-password")));
            let idp_form = http.get(&to).send().await.unwrap();
            assert_eq!(idp_form.status(), 200);
            let back = http
                .post(to.split('?').next().unwrap())
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(back.status(), 303, "{:?}", back.text().await);
            let location = back.headers()["location"].to_str().unwrap().to_string();
            assert!(location.starts_with(&callback), "{location}");
            (flow, location)
        }
    };
    let (flow, location) = authorize("ann").await;
    // A forged state: refused, and no session.
    let forged = location.replace("state=", "state=x");
    let r = http
        .get(&forged)
        .header("cookie", &flow)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(set_cookie_value(&r, "roster_session").is_none());
    // The real one: a session, with the role of ann's highest mapped group.
    let r = http
        .get(&location)
        .header("cookie", &flow)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let session = set_cookie_value(&r, "roster_session").expect("a session");
    let page = http
        .get(format!("{}/console", svc.base))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("ann@acme.example (approver)"), "{page}");
    // The same code again (a replay): the provider refuses it, so does Roster.
    let r = http
        .get(&location)
        .header("cookie", &flow)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("invalid_grant"));
    // Eve's groups map to no role: she is told why, and gets no session.
    let (flow, location) = authorize("eve").await;
    let r = http
        .get(&location)
        .header("cookie", &flow)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(set_cookie_value(&r, "roster_session").is_none());
    assert!(r.text().await.unwrap().contains("[console.oidc.roles]"));
    // The account exists for the audit trail, and cannot be signed into with a password.
    let store = svc.store().await;
    let ann = store
        .console_user("ann@acme.example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (ann.role.as_str(), ann.password_hash.as_str()),
        ("approver", roster_store::OIDC_ACCOUNT)
    );
    svc.stop().await;
    provider.shutdown().await;
    sandbox.shutdown().await;
}

fn url_query(url: &str) -> Vec<(String, String)> {
    let q = url.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The SCIM endpoint over HTTP, as identity providers use it: create, find by filter, PATCH
/// the Entra way and PUT the Okta way, ETags with If-Match, groups whose members follow a
/// deleted user, and every mistake a SCIM error with its scimType (never a 500).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_users_and_groups_with_filters_patch_and_etags() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(dir.path()).await;
    std::fs::write(dir.path().join("people.yaml"), EXAMPLE).unwrap();
    let svc = Service::start(
        dir.path(),
        &config(&sandbox, "ROSTER_TEST_SECRET_8", "1h", ""),
        "ROSTER_TEST_SECRET_8",
    )
    .await;
    let store = svc.store().await;
    let token = tokens::generate();
    store
        .add_scim_connection(
            "entra",
            &tokens::hash(&token),
            &[],
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    let http = roster_http::client();
    let url = |p: &str| format!("{}/scim/v2{p}", svc.base);
    let send =
        |method: reqwest::Method, path: &str, body: Option<Value>, if_match: Option<&str>| {
            let mut req = http.request(method, url(path)).bearer_auth(&token);
            if let Some(b) = body {
                req = req
                    .header("content-type", "application/scim+json")
                    .body(b.to_string());
            }
            if let Some(m) = if_match {
                req = req.header("if-match", m);
            }
            async move {
                let r = req.send().await.unwrap();
                let status = r.status().as_u16();
                let etag = r
                    .headers()
                    .get("etag")
                    .map(|v| v.to_str().unwrap().to_string());
                let ct = r
                    .headers()
                    .get("content-type")
                    .map(|v| v.to_str().unwrap().to_string());
                let body: Value = r.json().await.unwrap_or(Value::Null);
                (status, body, etag, ct)
            }
        };
    use reqwest::Method;
    let ann = json!({
        "schemas": [roster_scim::USER, roster_scim::ENTERPRISE_USER],
        "userName": "Ann.Lee@acme.example",
        "externalId": "00u1",
        "name": {"givenName": "Ann", "familyName": "Lee"},
        "emails": [{"value": "ann.lee@acme.example", "type": "work", "primary": true}],
        "active": "True",
        roster_scim::ENTERPRISE_USER: {"department": "Marketing"},
        "x-unknown": {"kept": true}
    });
    let (status, created, etag, ct) = send(Method::POST, "/Users", Some(ann.clone()), None).await;
    assert_eq!(status, 201, "{created:#}");
    assert_eq!(ct.as_deref(), Some("application/scim+json"));
    assert_eq!(created["active"], true, "a boolean sent as a string");
    assert_eq!(etag.as_deref(), Some("W/\"1\""));
    assert_eq!(created["meta"]["version"], "W/\"1\"");
    let id = created["id"].as_str().unwrap().to_string();
    // The same userName in another case: 409 uniqueness.
    let mut dup = ann.clone();
    dup["userName"] = json!("ann.lee@ACME.example");
    let (status, err, _, _) = send(Method::POST, "/Users", Some(dup), None).await;
    assert_eq!(
        (status, &err["scimType"]),
        (409, &json!("uniqueness")),
        "{err:#}"
    );
    // Addresses a roster file refuses are refused here too, before anyone is invited:
    // a Cyrillic a, a zero-width space, a bidi override, a byte-order mark.
    for bad in [
        "\u{0430}nn@acme.example",
        "ann\u{200b}@acme.example",
        "\u{202e}ann@acme.example",
        "\u{feff}ann@acme.example",
    ] {
        let mut lookalike = ann.clone();
        lookalike["userName"] = json!(format!("x{bad}"));
        lookalike["externalId"] = json!("00u9");
        lookalike["emails"] = json!([{"value": bad, "type": "work", "primary": true}]);
        let (status, err, _, _) = send(Method::POST, "/Users", Some(lookalike), None).await;
        assert_eq!(
            (status, &err["scimType"]),
            (400, &json!("invalidValue")),
            "{bad:?}: {err:#}"
        );
    }
    // What IdPs look up by.
    for f in [
        "userName eq \"ann.lee@acme.example\"",
        "externalId eq \"00u1\"",
        "emails[type eq \"work\" and value co \"acme\"]",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq \"Marketing\"",
    ] {
        let q = form_urlencoded::Serializer::new(String::new())
            .append_pair("filter", f)
            .finish();
        let (status, list, _, _) = send(Method::GET, &format!("/Users?{q}"), None, None).await;
        assert_eq!(
            (status, &list["totalResults"]),
            (200, &json!(1)),
            "{f}: {list:#}"
        );
    }
    let (_, none, _, _) = send(
        Method::GET,
        "/Users?filter=userName%20eq%20%22nobody%22",
        None,
        None,
    )
    .await;
    assert_eq!(none["totalResults"], 0);
    let (status, bad, _, _) = send(Method::GET, "/Users?filter=userName%20eq", None, None).await;
    assert_eq!((status, &bad["scimType"]), (400, &json!("invalidFilter")));
    // Entra: a capitalised Replace with a string boolean.
    let off = json!({"schemas": [roster_scim::PATCH_OP],
        "Operations": [{"op": "Replace", "path": "active", "value": "False"}]});
    let (status, patched, etag2, _) = send(
        Method::PATCH,
        &format!("/Users/{id}"),
        Some(off.clone()),
        Some("W/\"1\""),
    )
    .await;
    assert_eq!(
        (status, &patched["active"]),
        (200, &json!(false)),
        "{patched:#}"
    );
    assert_eq!(etag2.as_deref(), Some("W/\"2\""));
    assert_eq!(patched["x-unknown"]["kept"], true);
    // A stale If-Match: 412, nothing changes.
    let (status, _, _, _) = send(
        Method::PATCH,
        &format!("/Users/{id}"),
        Some(off),
        Some("W/\"1\""),
    )
    .await;
    assert_eq!(status, 412);
    // Okta: a PUT of the whole user.
    let mut put = ann.clone();
    put["active"] = json!(true);
    put["name"]["familyName"] = json!("Lee-Smith");
    let (status, replaced, _, _) =
        send(Method::PUT, &format!("/Users/{id}"), Some(put), None).await;
    assert_eq!(status, 200);
    assert_eq!(replaced["name"]["familyName"], "Lee-Smith");
    assert_eq!(replaced["meta"]["version"], "W/\"3\"");
    // Sorting: by userName (without regard to case) both ways, and in a search body.
    let bob = json!({"schemas": [roster_scim::USER], "userName": "bob@acme.example"});
    let (status, _, _, _) = send(Method::POST, "/Users", Some(bob), None).await;
    assert_eq!(status, 201);
    let names = |list: &Value| -> Vec<String> {
        list["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["userName"].as_str().unwrap().to_lowercase())
            .collect()
    };
    let (_, list, _, _) = send(Method::GET, "/Users?sortBy=userName", None, None).await;
    assert_eq!(names(&list), ["ann.lee@acme.example", "bob@acme.example"]);
    let search = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "sortBy": "userName", "sortOrder": "descending"});
    let (status, list, _, _) = send(Method::POST, "/Users/.search", Some(search), None).await;
    assert_eq!(status, 200, "{list:#}");
    assert_eq!(names(&list), ["bob@acme.example", "ann.lee@acme.example"]);
    let (status, e, _, _) = send(
        Method::GET,
        "/Users?sortBy=userName&sortOrder=sideways",
        None,
        None,
    )
    .await;
    assert_eq!((status, &e["scimType"]), (400, &json!("invalidValue")));
    // A group, its members PATCHed in a batch.
    let (status, group, _, _) = send(
        Method::POST,
        "/Groups",
        Some(
            json!({"schemas": [roster_scim::GROUP], "displayName": "Marketing Ops", "members": []}),
        ),
        None,
    )
    .await;
    assert_eq!(status, 201);
    let gid = group["id"].as_str().unwrap().to_string();
    let add = json!({"schemas": [roster_scim::PATCH_OP],
        "Operations": [{"op": "Add", "path": "members", "value": [{"value": id}]}]});
    let (status, group, _, _) =
        send(Method::PATCH, &format!("/Groups/{gid}"), Some(add), None).await;
    assert_eq!(
        (status, group["members"].as_array().unwrap().len()),
        (200, 1)
    );
    // Deleting the user takes them out of the group.
    let (status, _, _, _) = send(Method::DELETE, &format!("/Users/{id}"), None, None).await;
    assert_eq!(status, 204);
    let (status, gone, _, _) = send(Method::GET, &format!("/Users/{id}"), None, None).await;
    assert_eq!(status, 404, "{gone:#}");
    let (_, group, _, _) = send(Method::GET, &format!("/Groups/{gid}"), None, None).await;
    assert_eq!(group["members"], json!([]));
    // Hostile input: SCIM errors, never a 500.
    let (status, e, _, _) = send(
        Method::POST,
        "/Users",
        Some(json!({"schemas": [roster_scim::USER]})),
        None,
    )
    .await;
    assert_eq!((status, &e["scimType"]), (400, &json!("invalidValue")));
    let huge = json!({"schemas": [roster_scim::USER], "userName": "x", "pad": "a".repeat(2 * 1024 * 1024)});
    // On a connection of its own: a server that refuses a body unread closes the
    // connection, and a pooled one could be picked for the next request before the close
    // is seen.
    let r = roster_http::client_builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
        .post(url("/Users"))
        .bearer_auth(&token)
        .header("content-type", "application/scim+json")
        .body(huge.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let e: Value = r.json().await.unwrap();
    assert_eq!(status, 413, "{e:#}");
    assert_eq!(e["schemas"][0], roster_scim::ERROR);
    let deep = format!(
        "/Users?filter={}",
        "not%20(".repeat(300) + "title%20pr" + &")".repeat(300)
    );
    let (status, e, _, _) = send(Method::GET, &deep, None, None).await;
    assert_eq!((status, &e["scimType"]), (400, &json!("invalidFilter")));
    let (status, e, _, _) = send(
        Method::PATCH,
        &format!("/Groups/{gid}"),
        Some(json!({"schemas": [roster_scim::PATCH_OP], "Operations": [{"op": "replace", "path": "id", "value": "x"}]})),
        None,
    )
    .await;
    assert_eq!((status, &e["scimType"]), (400, &json!("mutability")));
    // Discovery, and a wrong token.
    let (status, spc, _, _) = send(Method::GET, "/ServiceProviderConfig", None, None).await;
    assert_eq!((status, &spc["patch"]["supported"]), (200, &json!(true)));
    let (_, schemas, _, _) = send(Method::GET, "/Schemas", None, None).await;
    assert_eq!(schemas["totalResults"], 3);
    let r = http
        .get(url("/Users"))
        .bearer_auth("roster_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    svc.stop().await;
    sandbox.shutdown().await;
}

/// SCIM drives the apps: a user pushed into a mapped group is invited to Marketo with the
/// group's role by a reconcile the push starts (one email); deactivated (`active: "False"`,
/// as Entra sends it) they become a leaver whose deletion waits for approval, and is done once
/// approved; a person in both the file and SCIM with other access is reported as a conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_pushes_become_invitations_and_leavers_through_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    // Eight runs read the instance in a few seconds, more than Marketo's 100 calls per 20 s
    // allow; pacing is tested elsewhere, so here the limit is lifted on both sides.
    let sandbox = sandbox_with(dir.path(), |c| c.limits.rate_limit = 10_000).await;
    std::fs::write(dir.path().join("people.yaml"), EXAMPLE).unwrap();
    let (hook_addr, received) = receiver().await;
    // SAFETY: this test's own variable.
    unsafe { std::env::set_var("ROSTER_TEST_HOOK_SECRET_9", "hook-secret-9") };
    let extra = format!(
        "rate_limit = 10000\n\n[scim]\ndebounce = \"200ms\"\n[scim.groups.\"Marketing Ops\"]\nmarketo = [\"Marketing User@Default\"]\n[scim.groups.\"Analytics\"]\nmarketo = [\"Analytics User@Default\"]\n\n[webhook.idp]\nurl = \"http://{hook_addr}/hook\"\nsecret_env = \"ROSTER_TEST_HOOK_SECRET_9\"\nevents = [\"scim.conflict\"]\n"
    );
    let svc = Service::start(
        dir.path(),
        &config(&sandbox, "ROSTER_TEST_SECRET_9", "1h", &extra),
        "ROSTER_TEST_SECRET_9",
    )
    .await;
    let viewer = svc.token("auditor", "viewer").await;
    let approver = svc.token("ann", "approver").await;
    svc.run_where(&viewer, "at start", |r| r["trigger"] == "schedule")
        .await;
    let store = svc.store().await;
    let token = tokens::generate();
    store
        .add_scim_connection(
            "entra",
            &tokens::hash(&token),
            &[],
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    let http = roster_http::client();
    let scim = |method: reqwest::Method, path: String, body: Value| {
        let req = http
            .request(method, format!("{}/scim/v2{path}", svc.base))
            .bearer_auth(&token)
            .header("content-type", "application/scim+json")
            .body(body.to_string());
        async move {
            let r = req.send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    use reqwest::Method;
    let email = "lena.scim@acme.example";
    let (status, lena) = scim(
        Method::POST,
        "/Users".into(),
        json!({"schemas": [roster_scim::USER], "userName": email,
            "name": {"givenName": "Lena", "familyName": "Scim"},
            "emails": [{"value": email, "type": "work", "primary": true}], "active": true}),
    )
    .await;
    assert_eq!(status, 201, "{lena:#}");
    let id = lena["id"].as_str().unwrap().to_string();
    // Also Ada, who is in the file with other access: a conflict, reported.
    let (_, ada) = scim(
        Method::POST,
        "/Users".into(),
        json!({"schemas": [roster_scim::USER], "userName": "ada.lovelace@acme.example"}),
    )
    .await;
    let (status, ops) = scim(
        Method::POST,
        "/Groups".into(),
        json!({"schemas": [roster_scim::GROUP], "displayName": "Marketing Ops",
            "members": [{"value": id}, {"value": ada["id"]}]}),
    )
    .await;
    assert_eq!(status, 201);
    let ops_id = ops["id"].as_str().unwrap().to_string();
    let run = svc
        .run_where(&viewer, "started by SCIM", |r| r["trigger"] == "scim:entra")
        .await;
    assert_eq!(mailbox(&sandbox, email).await, 1, "{run:#}");
    // Planned for the people the pushes touched only.
    assert!(
        run["summary"].as_str().unwrap().contains("targeted at"),
        "{run:#}"
    );
    let notes: Vec<&str> = run["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["message"].as_str().or(e["text"].as_str()))
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("conflict") && n.contains("ada.lovelace@acme.example")),
        "{run:#}"
    );
    // The console's SCIM page: the connection, the mapping with its member, the conflict.
    let cookie = console_cookie(&svc, "auditor", "viewer").await;
    let page = http
        .get(format!("{}/console/scim", svc.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("entra")
            && page.contains("Marketing Ops")
            && page.contains("marketo: Marketing User@Default")
            && page.contains("conflict: ada.lovelace@acme.example"),
        "{page}"
    );
    // Lena accepts, setting her password on the invitation page.
    let mail: Value = http
        .get(format!("{}/sandbox/mailbox", sandbox.base_url()))
        .query(&[("to", email)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let accept = mail[0]["acceptUrl"].as_str().unwrap().to_string();
    let accepted = http
        .post(accept)
        .form(&[
            ("password", "Sunshine42!"),
            ("confirmPassword", "Sunshine42!"),
        ])
        .send()
        .await
        .unwrap();
    assert!(accepted.status().is_success());
    // With the role the group maps to.
    let creds = sandbox.credentials();
    let mut client_config = roster_marketo::ClientConfig::new(
        sandbox.base_url().to_string(),
        creds.client_id.clone(),
        creds.client_secret.clone(),
    );
    client_config.allow_insecure_http = true;
    let client = roster_marketo::Client::new(client_config, 0).unwrap();
    let roles: Vec<String> = client
        .user(email)
        .await
        .unwrap()
        .roles
        .iter()
        .map(|r| format!("{}@{}", r.role_name, r.workspace_name))
        .collect();
    assert_eq!(roles, ["Marketing User@Default"]);

    // Moved to another group, as an identity provider does it (one PATCH out of the old
    // group, one into the new): the new role is granted unattended, and taking the old one
    // away waits for an approval.
    let (status, analytics) = scim(
        Method::POST,
        "/Groups".into(),
        json!({"schemas": [roster_scim::GROUP], "displayName": "Analytics", "members": []}),
    )
    .await;
    assert_eq!(status, 201);
    let analytics_id = analytics["id"].as_str().unwrap().to_string();
    let (status, _) = scim(
        Method::PATCH,
        format!("/Groups/{ops_id}"),
        json!({"schemas": [roster_scim::PATCH_OP],
            "Operations": [{"op": "remove", "path": format!("members[value eq \"{id}\"]")}]}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = scim(
        Method::PATCH,
        format!("/Groups/{analytics_id}"),
        json!({"schemas": [roster_scim::PATCH_OP],
            "Operations": [{"op": "add", "path": "members", "value": [{"value": id}]}]}),
    )
    .await;
    assert_eq!(status, 200);
    // Followed through the service's runs, which cost no API calls (polling Marketo would
    // spend the subscription's rate limit the service itself needs).
    let did = |run: &Value, what: &str| {
        run["events"].as_array().into_iter().flatten().any(|e| {
            e["kind"] == "step"
                && e["outcome"] == "done"
                && e["action"].as_str().is_some_and(|a| a.starts_with(what))
        })
    };
    let granted = svc
        .run_where(&viewer, "granting the new group's role", |r| {
            r["trigger"] == "scim:entra" && did(r, "grant Analytics User@Default")
        })
        .await;
    assert_eq!(granted["outcome"], "awaiting_approval", "{granted:#}");
    let roles_of = || async {
        let mut roles: Vec<String> = client
            .user(email)
            .await
            .unwrap()
            .roles
            .iter()
            .map(|r| format!("{}@{}", r.role_name, r.workspace_name))
            .collect();
        roles.sort();
        roles
    };
    assert_eq!(
        roles_of().await,
        ["Analytics User@Default", "Marketing User@Default"]
    );
    // Approving what is held takes the old role. The two PATCHes may each have started a
    // run that holds a plan, and a plan a later one supersedes is refused, so each pending
    // plan is tried once until an approved apply has revoked the role.
    let mut tried = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let moved = loop {
        let (_, runs) = svc.get(&viewer, "/api/v1/runs?limit=100").await;
        if let Some(run) = runs["runs"].as_array().unwrap().iter().find(|r| {
            r["trigger"]
                .as_str()
                .is_some_and(|t| t.starts_with("approval:"))
                && did(r, "revoke Marketing User@Default")
        }) {
            break run.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the old role was never revoked: {runs:#}"
        );
        let (_, pending) = svc.get(&viewer, "/api/v1/plans?status=pending").await;
        for p in pending["plans"].as_array().unwrap() {
            let pid = p["plan_id"].as_str().unwrap().to_string();
            if tried.insert(pid.clone()) {
                svc.post(
                    &approver,
                    &format!("/api/v1/plans/{pid}/approve"),
                    json!({}),
                )
                .await;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(moved["outcome"], "done", "{moved:#}");
    assert_eq!(roles_of().await, ["Analytics User@Default"]);
    let run_id = moved["id"].as_i64().unwrap();

    // Deactivated: a leaver, held for approval.
    let (status, _) = scim(
        Method::PATCH,
        format!("/Users/{id}"),
        json!({"schemas": [roster_scim::PATCH_OP],
            "Operations": [{"op": "Replace", "path": "active", "value": "False"}]}),
    )
    .await;
    assert_eq!(status, 200);
    let held = svc
        .run_where(&viewer, "after the deactivation", |r| {
            r["trigger"] == "scim:entra" && r["id"].as_i64() > Some(run_id)
        })
        .await;
    assert_eq!(held["outcome"], "awaiting_approval", "{held:#}");
    let plan_id = held["plan_id"].as_str().unwrap().to_string();
    let (_, plan) = svc.get(&viewer, &format!("/api/v1/plans/{plan_id}")).await;
    assert!(plan.to_string().contains(email), "{plan:#}");
    let (status, _) = svc
        .post(
            &approver,
            &format!("/api/v1/plans/{plan_id}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(status, 202);
    let applied = svc
        .run_where(&viewer, "the approved apply", |r| {
            r["trigger"]
                .as_str()
                .is_some_and(|t| t.starts_with("approval:"))
                && r["id"].as_i64() > held["id"].as_i64()
        })
        .await;
    assert_eq!(applied["outcome"], "done", "{applied:#}");
    assert!(!marketo_has(&sandbox, email).await);
    // With a tombstone holding the role she had.
    let (_, tombs) = svc.get(&viewer, "/api/v1/tombstones").await;
    let tomb = tombs["tombstones"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["email"] == email && t["status"] == "deleted")
        .unwrap_or_else(|| panic!("no tombstone: {tombs:#}"))
        .clone();
    assert!(tomb.to_string().contains("Analytics User"), "{tomb:#}");
    svc.stop().await;
    // Ada's conflict stood through every run since, and was announced once, signed.
    let got = received.lock().unwrap().clone();
    let conflicts: Vec<Value> = got
        .iter()
        .map(|(headers, body)| {
            assert!(verify_signature("hook-secret-9", headers, body));
            serde_json::from_str::<Value>(body).unwrap()
        })
        .filter(|b| b["event"] == "scim.conflict")
        .collect();
    assert_eq!(conflicts.len(), 1, "{conflicts:#?}");
    assert!(
        conflicts[0]["text"]
            .as_str()
            .unwrap()
            .contains("ada.lovelace@acme.example"),
        "{conflicts:#?}"
    );
    assert_eq!(conflicts[0]["instance"], "marketo.acme");
    sandbox.shutdown().await;
}

/// Whether `have` holds everything `want` says (objects by key, arrays element by element).
fn holds(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Object(h), Value::Object(w)) => w
            .iter()
            .all(|(k, v)| h.get(k).is_some_and(|hv| holds(hv, v))),
        (Value::Array(h), Value::Array(w)) => {
            h.len() == w.len() && h.iter().zip(w).all(|(a, b)| holds(a, b))
        }
        _ => have == want,
    }
}

/// Entra ID and Okta as they talk SCIM: their request sequences, kept as fixtures
/// (`tests/fixtures/scim/*.json`), replayed in order with the statuses and answers each step
/// expects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_requests_shaped_like_entra_and_okta_replay_from_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(dir.path()).await;
    std::fs::write(dir.path().join("people.yaml"), EXAMPLE).unwrap();
    let svc = Service::start(
        dir.path(),
        &config(&sandbox, "ROSTER_TEST_SECRET_10", "1h", ""),
        "ROSTER_TEST_SECRET_10",
    )
    .await;
    let store = svc.store().await;
    let http = roster_http::client();
    for (idp, fixture) in [
        ("entra", include_str!("fixtures/scim/entra.json")),
        ("okta", include_str!("fixtures/scim/okta.json")),
    ] {
        let token = tokens::generate();
        store
            .add_scim_connection(idp, &tokens::hash(&token), &[], OffsetDateTime::now_utc())
            .await
            .unwrap();
        let fixture: Value = serde_json::from_str(fixture).unwrap();
        let mut saved: Vec<(String, String)> = Vec::new();
        let fill = |text: &str, saved: &[(String, String)]| {
            saved.iter().fold(text.to_string(), |t, (k, v)| {
                t.replace(&format!("${{{k}}}"), v)
            })
        };
        for (n, step) in fixture["steps"].as_array().unwrap().iter().enumerate() {
            let method: reqwest::Method = step["method"].as_str().unwrap().parse().unwrap();
            let path = fill(step["path"].as_str().unwrap(), &saved);
            let mut req = http
                .request(method, format!("{}/scim/v2{path}", svc.base))
                .bearer_auth(&token);
            if let Some(body) = step.get("body") {
                req = req
                    .header("content-type", "application/scim+json")
                    .body(fill(&body.to_string(), &saved));
            }
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let answer: Value = r.json().await.unwrap_or(Value::Null);
            let what = format!("{idp} step {}: {} {path}", n + 1, step["method"]);
            assert_eq!(
                status,
                step["expect"].as_u64().unwrap() as u16,
                "{what}: {answer:#}"
            );
            if let Some(want) = step.get("expect_body") {
                let want: Value = serde_json::from_str(&fill(&want.to_string(), &saved)).unwrap();
                assert!(
                    holds(&answer, &want),
                    "{what}: expected {want:#}, got {answer:#}"
                );
            }
            for absent in step["expect_absent"].as_array().into_iter().flatten() {
                assert!(
                    answer.get(absent.as_str().unwrap()).is_none(),
                    "{what}: {answer:#}"
                );
            }
            if let Some(name) = step["save"].as_str() {
                saved.push((name.to_string(), answer["id"].as_str().unwrap().to_string()));
            }
        }
    }
    svc.stop().await;
    sandbox.shutdown().await;
}

/// Deliveries a process left pending when it stopped or died are sent when the service
/// starts again (on this machine, or another process on the database): under their own ids, signed
/// afresh, with the attempts they have left; one whose webhook has gone from the
/// configuration is ended as failed, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_left_pending_are_sent_when_the_service_starts_again() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(dir.path()).await;
    let (hook_addr, received) = receiver().await;
    // SAFETY: this test's own variable.
    unsafe { std::env::set_var("ROSTER_TEST_HOOK_SECRET_10", "hook-secret-10") };
    std::fs::write(dir.path().join("people.yaml"), EXAMPLE).unwrap();
    let extra = format!(
        "\n[webhook.ops]\nurl = \"http://{hook_addr}/hook\"\nsecret_env = \"ROSTER_TEST_HOOK_SECRET_10\"\nevents = [\"quota.low\"]\n"
    );
    let config = config(&sandbox, "ROSTER_TEST_SECRET_10", "1h", &extra);
    let svc = Service::start(dir.path(), &config, "ROSTER_TEST_SECRET_10").await;
    let viewer = svc.token("auditor", "viewer").await;
    // As a process that died mid-way leaves them: one tried once, one for a webhook that is
    // about to leave the configuration.
    let store = svc.store().await;
    let at = OffsetDateTime::now_utc();
    let body = json!({"event": "plan.pending", "text": "left pending"}).to_string();
    let left = store
        .add_delivery("ops", "plan.pending", &body, at)
        .await
        .unwrap();
    store
        .record_attempt(left, "pending", None, Some("cannot reach the receiver"), at)
        .await
        .unwrap();
    let orphan = store
        .add_delivery("chat", "run.failed", "{}", at)
        .await
        .unwrap();
    let svc = svc
        .restart(dir.path(), &config, "ROSTER_TEST_SECRET_10")
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (headers, got) = loop {
        let found = received.lock().unwrap().iter().find_map(|(h, b)| {
            (h["x-roster-delivery"] == left.to_string().as_str()).then(|| (h.clone(), b.clone()))
        });
        if let Some(found) = found {
            break found;
        }
        assert!(tokio::time::Instant::now() < deadline, "never re-sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(got, body);
    assert_eq!(headers["x-roster-event"], "plan.pending");
    assert!(verify_signature("hook-secret-10", &headers, &got));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, list) = svc.get(&viewer, "/api/v1/webhooks/deliveries").await;
        let of = |id: i64| {
            list["deliveries"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["id"] == id)
                .cloned()
                .unwrap_or_default()
        };
        let (done, ended) = (of(left), of(orphan));
        // Both settle (on PostgreSQL they are separate jobs, in either order).
        if done["status"] == "delivered" && ended["status"] != "pending" {
            assert_eq!(done["attempts"], 2, "{done:#}");
            assert_eq!(ended["status"], "failed", "{ended:#}");
            assert!(
                ended["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("no longer in the configuration")),
                "{ended:#}"
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{list:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    svc.stop().await;
    sandbox.shutdown().await;
}

/// Two services on one PostgreSQL database (as on two machines) take runs from one job queue:
/// both instances' first runs are done once between them, each reports the other's runs and
/// the next scheduled run waiting in the queue, a reconcile asked of one may run in either,
/// and when one stops the other carries on alone. (The queue is PostgreSQL's: this runs in
/// the suite's PostgreSQL rerun, `the_whole_suite_on_postgres`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_services_on_one_database_share_the_runs() {
    if !on_postgres() {
        return;
    }
    const VAR: &str = "ROSTER_TEST_SECRET_SHARED";
    // The example's leavers wait for approval; the rest of each run is done.
    let ran = |outcome: &Value| outcome == "done" || outcome == "awaiting_approval";
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let acme = sandbox(&dir.path().join("acme")).await;
    let beta = sandbox(&dir.path().join("beta")).await;
    for d in [dir.path(), other.path()] {
        std::fs::write(d.join("people.yaml"), format!("{EXAMPLE}{JOINER}")).unwrap();
    }
    let extra = format!(
        "\n[marketo.beta]\nurl = \"{}\"\nclient_id = \"svc-test\"\nclient_secret_env = \"{VAR}\"\nroster = \"people.yaml\"\ninterval = \"1h\"\n",
        beta.base_url()
    );
    let text = config(&acme, VAR, "1h", &extra);
    let a = Service::start(dir.path(), &text, VAR).await;
    let b = a.beside(other.path(), &text, VAR).await;
    let viewer = a.token("viewer", "viewer").await;
    let operator = a.token("ops", "operator").await;
    for name in ["marketo.acme", "marketo.beta"] {
        let run = b.run_where(&viewer, name, |r| r["instance"] == name).await;
        assert!(ran(&run["outcome"]), "{run:#}");
    }
    // The scheduler queues each instance's next run as the last one starts; B shows it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let body = loop {
        let (status, body) = b.get(&viewer, "/api/v1/instances").await;
        assert_eq!(status, 200);
        let queued = body["instances"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["status"]["next_run_at"].is_string());
        if queued {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no next run in the queue: {body:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let soon = OffsetDateTime::now_utc() + time::Duration::minutes(50);
    for inst in body["instances"].as_array().unwrap() {
        let s = &inst["status"];
        assert!(ran(&s["last_outcome"]), "{inst:#}");
        let next = OffsetDateTime::parse(
            s["next_run_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        assert!(
            next > soon,
            "the next scheduled run is an interval away: {inst:#}"
        );
    }

    // Asked of B, run by whichever is free.
    let asked = b.reconcile_now(&operator, &viewer, "marketo.acme").await;
    assert!(ran(&asked["outcome"]), "{asked:#}");

    // A stops (its database stays); B carries on alone, as scheduler and worker.
    let database = a.stop_keeping_database().await;
    let alone = b.reconcile_now(&operator, &viewer, "marketo.beta").await;
    assert!(ran(&alone["outcome"]), "{alone:#}");
    for sb in [&acme, &beta] {
        assert_eq!(mailbox(sb, "grace.new@acme.example").await, 1);
    }
    b.stop().await;
    drop(database);
    acme.shutdown().await;
    beta.shutdown().await;
}

/// A service stopped (SIGTERM) in the middle of an apply stops between two steps and hands
/// the rest to another service on the database at once, not at the next scheduled run: the
/// other resumes from the journal, and no one is invited twice. (PostgreSQL's queue: runs in
/// the suite's PostgreSQL rerun.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_stopping_mid_apply_hands_the_rest_to_another() {
    if !on_postgres() {
        return;
    }
    const VAR: &str = "ROSTER_TEST_SECRET_HANDOVER";
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    // Slow calls, so the stop lands between the apply's steps.
    let sandbox = sandbox_with(dir.path(), |c| {
        c.faults.latency = Duration::from_millis(300)
    })
    .await;
    for d in [dir.path(), other.path()] {
        std::fs::write(d.join("people.yaml"), format!("{EXAMPLE}{JOINER}")).unwrap();
    }
    let text = config(&sandbox, VAR, "1h", "");
    let a = Service::start(dir.path(), &text, VAR).await;
    let viewer = a.token("viewer", "viewer").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while mailbox(&sandbox, "nia.okafor@acme.example").await == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no invitation");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let b = a.beside(other.path(), &text, VAR).await;
    let database = a.stop_keeping_database().await;
    let resumed = b
        .run_where(&viewer, "resumed by B", |r| {
            r["trigger"] == "resume after a stop"
        })
        .await;
    assert!(
        resumed["outcome"] == "done" || resumed["outcome"] == "awaiting_approval",
        "{resumed:#}"
    );
    let (_, runs) = b.get(&viewer, "/api/v1/runs?limit=100").await;
    assert!(
        runs["runs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["outcome"] == "stopped"),
        "A's run stopped between steps: {runs:#}"
    );
    for to in ["nia.okafor@acme.example", "grace.new@acme.example"] {
        assert_eq!(mailbox(&sandbox, to).await, 1, "{to}");
    }
    b.stop().await;
    drop(database);
    sandbox.shutdown().await;
}

/// Every test above once more, with the service's state in PostgreSQL (when
/// `ROSTER_TEST_POSTGRES` names a server; CI sets it).
#[test]
fn the_whole_suite_on_postgres() {
    roster_store::testing::rerun_on_postgres("", "the_whole_suite_on_postgres");
}

/// A Marketo subscription on Adobe Identity, reconciled by the service: the joiner's
/// product profile is given in the Admin Console (unattended: it takes nothing away), and
/// once Marketo's sync shows them, the next run grants the roster's roles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_on_adobe_identity_is_reconciled_through_the_admin_console() {
    let dir = tempfile::tempdir().unwrap();
    let mut org = roster_sandbox::adobe::AdobeConfig::new(dir.path().join("adobe"));
    org.client_id = Some("svc-adobe".into());
    org.client_secret = Some(Secret::new("svc-adobe-secret"));
    org.limits = roster_sandbox::adobe::AdobeLimits::unlimited();
    let adobe = roster_sandbox::adobe::start(org).await.unwrap();
    let adobe_data = dir.path().join("adobe");
    let sandbox = sandbox_with(dir.path(), |c| {
        c.ims = true;
        c.adobe = Some(marketo::ims_sync::AdobeLink {
            data_dir: adobe_data,
            sync_delay: Duration::from_millis(300),
        });
    })
    .await;
    std::fs::write(dir.path().join("adobe-secret"), "svc-adobe-secret\n").unwrap();
    std::fs::write(
        dir.path().join("people.yaml"),
        "policies:\n  marketo:\n    managed_domains: [acme.example]\n    unlisted: report\npeople:\n  - email: new.joiner@acme.example\n    first_name: New\n    last_name: Joiner\n    access:\n      marketo: [\"Standard User@Default\", \"Standard User@EMEA\"]\n  - email: new.designer@acme.example\n    first_name: New\n    last_name: Designer\n    access:\n      adobe: { profiles: [\"Creative Cloud All Apps\"] }\n",
    )
    .unwrap();
    let extra = format!(
        "identity = \"adobe.corp\"\nproduct_profiles = [\"Marketo Engage - Production\"]\n\n[adobe.corp]\nurl = \"{url}\"\nims_url = \"{url}\"\norg_id = \"{org}\"\nclient_id = \"svc-adobe\"\nclient_secret_file = \"adobe-secret\"\ncountry = \"US\"\nroster = \"people.yaml\"\ninterval = \"1h\"\n",
        url = adobe.base_url(),
        org = adobe.credentials().org_id
    );
    let svc = Service::start(
        dir.path(),
        &config(&sandbox, "ROSTER_TEST_SECRET_IMS", "1h", &extra),
        "ROSTER_TEST_SECRET_IMS",
    )
    .await;
    let viewer = svc.token("auditor", "viewer").await;
    let operator = svc.token("ops", "operator").await;
    let first = svc
        .run_where(&viewer, "scheduled at start", |r| {
            r["trigger"] == "schedule"
        })
        .await;
    assert_eq!(first["outcome"], "done", "{first:#}");
    // Marketo's sync adds them; the service's next run grants the rest.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !marketo_has(&sandbox, "new.joiner@acme.example").await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "Marketo never showed the joiner"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = svc.reconcile_now(&operator, &viewer, "marketo.acme").await;
    assert_eq!(second["outcome"], "done", "{second:#}");
    let (_, log) = svc.get(&viewer, "/api/v1/log").await;
    let text = log.to_string();
    assert!(
        text.contains("adobe user new.joiner@acme.example")
            && text.contains("grant Standard User@EMEA to Marketo user new.joiner@acme.example"),
        "{log:#}"
    );
    // The organization is an instance of its own too: its run gives the designer the
    // Creative Cloud profile (a grant, applied unattended), and its access page shows who
    // holds the profiles the roster names, the Marketo subscription's own left out.
    let run = svc
        .run_where(&viewer, "the Adobe instance's first run", |r| {
            r["instance"] == "adobe.corp" && r["outcome"] == "done"
        })
        .await;
    assert_eq!(run["trigger"], "schedule", "{run:#}");
    let (_, log) = svc.get(&viewer, "/api/v1/log").await;
    assert!(
        log.to_string()
            .contains("give new.designer@acme.example Creative Cloud All Apps"),
        "{log:#}"
    );
    let (status, access) = svc
        .get(&viewer, "/api/v1/instances/adobe.corp/access")
        .await;
    assert_eq!(status, 200, "{access:#}");
    let text = access.to_string();
    assert!(
        text.contains("new.designer@acme.example")
            && text.contains("it.admin@acme.example")
            && text.contains("_org_admin")
            && !text.contains("Marketo Engage - Production"),
        "{access:#}"
    );
    // The console shows the organization like the other apps: its accounts with their
    // profiles, and the person's page joins their Adobe account to the rest.
    let cookie = console_cookie(&svc, "auditor2", "viewer").await;
    let html = roster_http::client()
        .get(format!("{}/console/access/adobe.corp", svc.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("new.designer@acme.example")
            && html.contains("Creative Cloud All Apps")
            && html.contains("product profile"),
        "{html}"
    );
    let (_, person) = svc
        .get(&viewer, "/api/v1/people/new.designer@acme.example")
        .await;
    assert!(person.to_string().contains("adobe.corp"), "{person:#}");
    svc.stop().await;
    sandbox.shutdown().await;
    adobe.shutdown().await;
}

#[test]
fn an_adobe_identity_must_name_its_organization_and_profiles() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("people.yaml"), EXAMPLE).unwrap();
    let base = "[service]\nlisten = \"127.0.0.1:0\"\n\n[marketo.acme]\nurl = \"http://127.0.0.1:9\"\nclient_id = \"c\"\nclient_secret_env = \"PATH\"\nroster = \"people.yaml\"\n";
    let load = |text: &str| {
        let path = dir.path().join("roster.toml");
        std::fs::write(&path, text).unwrap();
        ServeConfig::load(&path).unwrap_err().to_string()
    };
    let missing = load(&format!(
        "{base}identity = \"adobe.corp\"\nproduct_profiles = [\"P\"]\n"
    ));
    assert!(missing.contains("no [adobe.corp] section"), "{missing}");
    let no_profiles = load(&format!(
        "{base}identity = \"adobe.corp\"\n\n[adobe.corp]\norg_id = \"o@AdobeOrg\"\nclient_id = \"c\"\nclient_secret_env = \"PATH\"\n"
    ));
    assert!(
        no_profiles.contains("names no product profile"),
        "{no_profiles}"
    );
    let unused = load(&format!(
        "{base}\n[adobe.corp]\norg_id = \"o@AdobeOrg\"\nclient_id = \"c\"\nclient_secret_env = \"PATH\"\n"
    ));
    assert!(unused.contains("named by no Marketo instance"), "{unused}");
}

/// The roles `email` holds in the Marketo sandbox, as `ROLE@WORKSPACE`.
async fn marketo_roles(sandbox: &RunningSandbox, email: &str) -> Vec<String> {
    let creds = sandbox.credentials();
    let mut config = roster_marketo::ClientConfig::new(
        sandbox.base_url().to_string(),
        creds.client_id.clone(),
        creds.client_secret.clone(),
    );
    config.allow_insecure_http = true;
    let client = roster_marketo::Client::new(config, 0).unwrap();
    let mut roles: Vec<String> = client
        .user_roles(email)
        .await
        .unwrap()
        .iter()
        .map(|r| format!("{}@{}", r.role_name, r.workspace_name))
        .collect();
    roles.sort();
    roles
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_review_revokes_through_an_approved_plan_and_verifies_it_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(dir.path()).await;
    let roster = EXAMPLE
        .replace(
            "    department: Analytics\n",
            "    department: Analytics\n    manager: mia@acme.example\n",
        )
        .replace(
            "    department: Field Marketing\n",
            "    department: Field Marketing\n    manager: mia@acme.example\n",
        )
        .replace(
            "    end_date: 2027-03-31\n",
            "    end_date: 2027-03-31\n    manager: mia@acme.example\n",
        );
    std::fs::write(dir.path().join("people.yaml"), &roster).unwrap();
    let config = config(
        &sandbox,
        "ROSTER_TEST_SECRET_REVIEW",
        "1h",
        "owner = \"owner@acme.example\"\n",
    );
    let svc = Service::start(dir.path(), &config, "ROSTER_TEST_SECRET_REVIEW").await;
    let viewer = svc.token("viewer", "viewer").await;
    let operator = svc.token("op", "operator").await;
    let mia = svc.token("mia@acme.example", "viewer").await;
    let owner = svc.token("owner@acme.example", "approver").await;
    let second = svc.token("bo", "approver").await;
    svc.run_where(&viewer, "at start", |_| true).await;
    assert_eq!(
        marketo_roles(&sandbox, "margaret.hamilton@acme.example").await,
        vec!["Standard User@EMEA", "Standard User@US"]
    );

    // Bad requests say what is wrong; a viewer cannot start one.
    let (status, body) = svc
        .post(
            &operator,
            "/api/v1/reviews",
            json!({"instance": "marketo.nope", "due": "14d"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_instance"))
    );
    let (status, body) = svc
        .post(
            &operator,
            "/api/v1/reviews",
            json!({"instance": "marketo.acme", "due": "soon"}),
        )
        .await;
    assert_eq!(status, 400, "{body:#}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("14d"),
        "{body:#}"
    );
    let (status, _) = svc
        .post(
            &viewer,
            "/api/v1/reviews",
            json!({"instance": "marketo.acme", "due": "14d"}),
        )
        .await;
    assert_eq!(status, 403);

    let (status, started) = svc
        .post(
            &operator,
            "/api/v1/reviews",
            json!({"instance": "marketo.acme", "due": "14d"}),
        )
        .await;
    assert_eq!(status, 202, "{started:#}");
    let id = started["id"].as_i64().unwrap();
    let review = loop {
        let (_, r) = svc.get(&viewer, &format!("/api/v1/reviews/{id}")).await;
        if r["status"] != "snapshotting" {
            break r;
        }
        svc.run_where(&viewer, "the snapshot", |r| {
            r["trigger"] == format!("review:{id} snapshot")
        })
        .await;
    };
    assert_eq!(review["status"], "open", "{review:#}");
    let completeness = &review["completeness"];
    assert!(
        completeness["accounts"].as_u64().unwrap() >= 8,
        "{review:#}"
    );
    assert!(
        completeness["api_only"].as_u64().unwrap() >= 1,
        "{review:#}"
    );
    assert_eq!(completeness["unread"], 0);
    assert!(completeness["calls"].as_u64().unwrap() > 0, "{review:#}");
    assert_eq!(review["snapshot_digest"].as_str().unwrap().len(), 64);

    // Mia reviews her three reports: five items, nobody else's.
    let (_, mine) = svc
        .get(&mia, &format!("/api/v1/reviews/{id}/items?reviewer=me"))
        .await;
    let mine = mine["items"].as_array().unwrap().clone();
    let mut people: Vec<&str> = mine.iter().map(|i| i["email"].as_str().unwrap()).collect();
    people.dedup();
    assert_eq!(
        people,
        vec![
            "alan.turing@acme.example",
            "linus.torvalds@acme.example",
            "margaret.hamilton@acme.example"
        ],
        "{mine:#?}"
    );
    assert!(mine.iter().all(|i| i["reviewer_because"] == "manager"));
    let item = |email: &str, role: &str| -> i64 {
        mine.iter()
            .find(|i| i["email"] == email && i["role"] == role)
            .unwrap_or_else(|| panic!("no item {email} {role}: {mine:#?}"))["id"]
            .as_i64()
            .unwrap()
    };
    let alan = item("alan.turing@acme.example", "Analytics User");
    let linus = item("linus.torvalds@acme.example", "RTP Launcher");
    let margaret_emea = mine
        .iter()
        .find(|i| i["email"] == "margaret.hamilton@acme.example" && i["scope"] == "EMEA")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    // Ada (no manager) is the owner's; her admin role is privileged: keeping it needs a why.
    let (_, all) = svc
        .get(&viewer, &format!("/api/v1/reviews/{id}/items"))
        .await;
    let ada = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["email"] == "ada.lovelace@acme.example")
        .unwrap()
        .clone();
    assert_eq!(ada["reviewer"], "owner@acme.example");
    assert_eq!(ada["privileged"], true);
    let decide = |item: i64| format!("/api/v1/reviews/{id}/items/{item}/decision");
    let (status, body) = svc
        .post(
            &owner,
            &decide(ada["id"].as_i64().unwrap()),
            json!({"decision": "keep"}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("needs a comment"),
        "{body:#}"
    );
    let (status, _) = svc
        .post(
            &owner,
            &decide(ada["id"].as_i64().unwrap()),
            json!({"decision": "keep", "comment": "break-glass admin"}),
        )
        .await;
    assert_eq!(status, 200);
    // Only the reviewer decides an item.
    let (status, body) = svc
        .post(&second, &decide(alan), json!({"decision": "revoke"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("not_reviewer"))
    );

    let (status, kept) = svc
        .post(
            &mia,
            &decide(alan),
            json!({"decision": "keep", "comment": "runs the reports"}),
        )
        .await;
    assert_eq!(status, 200, "{kept:#}");
    assert_eq!(kept["decision"], "keep");
    assert!(kept["log_id"].as_i64().is_some());
    let (status, body) = svc
        .post(
            &mia,
            &decide(linus),
            json!({"decision": "reduce", "keep_roles": ["Owner@EMEA"]}),
        )
        .await;
    assert_eq!(status, 400, "{body:#}");
    let (status, reduced) = svc
        .post(
            &mia,
            &decide(linus),
            json!({"decision": "reduce", "keep_roles": ["Marketing User@EMEA"]}),
        )
        .await;
    assert_eq!(status, 200, "{reduced:#}");
    let (status, revoked) = svc
        .post(
            &mia,
            &decide(margaret_emea),
            json!({"decision": "revoke", "comment": "moved to the US team"}),
        )
        .await;
    assert_eq!(status, 200, "{revoked:#}");
    assert!(
        revoked["seconds"].as_i64().is_some(),
        "a second decision measures the time since the first"
    );

    // The owner closes it; the plan of its revocations waits for a second approver.
    let (status, closed) = svc
        .post(&owner, &format!("/api/v1/reviews/{id}/close"), json!({}))
        .await;
    assert_eq!(status, 202, "{closed:#}");
    assert_eq!(closed["status"], "remediating");
    assert_eq!(closed["pending_remediation"], 2, "{closed:#}");
    let run = svc
        .run_where(&viewer, "of the review's plan", |r| {
            r["trigger"] == format!("review:{id}")
        })
        .await;
    assert_eq!(run["outcome"], "awaiting_approval", "{run:#}");
    let (_, plans) = svc.get(&viewer, "/api/v1/plans?status=pending").await;
    let plan = plans["plans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["review"] == id)
        .unwrap_or_else(|| panic!("no pending plan of the review: {plans:#}"))
        .clone();
    let plan_id = plan["plan_id"].as_str().unwrap();
    assert_eq!(plan["requested_by"], format!("review:{id}"));
    assert_eq!(plan["destructive"], 2, "{plan:#}");
    let (_, r) = svc.get(&viewer, &format!("/api/v1/reviews/{id}")).await;
    assert_eq!(r["plan_id"], plan_id);
    // Nothing is gone before the approval.
    assert_eq!(
        marketo_roles(&sandbox, "margaret.hamilton@acme.example").await,
        vec!["Standard User@EMEA", "Standard User@US"]
    );
    let approve = format!("/api/v1/plans/{plan_id}/approve");
    let (status, body) = svc.post(&owner, &approve, json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("four_eyes"))
    );
    let (status, _) = svc
        .post(&second, &approve, json!({"comment": "per review"}))
        .await;
    assert_eq!(status, 202);

    // The apply runs, a fresh read sees the access gone, and the items are remediated.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let done = loop {
        let (_, r) = svc.get(&viewer, &format!("/api/v1/reviews/{id}")).await;
        if r["status"] == "done" {
            break r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never remediated: {r:#}"
        );
        svc.run_where(&viewer, "verifying the review", |r| {
            r["trigger"] == format!("review:{id} verification")
        })
        .await;
    };
    assert_eq!(
        (
            done["remediated"].as_u64(),
            done["pending_remediation"].as_u64()
        ),
        (Some(2), Some(0))
    );
    assert_eq!(
        marketo_roles(&sandbox, "margaret.hamilton@acme.example").await,
        vec!["Standard User@US"]
    );
    assert_eq!(
        marketo_roles(&sandbox, "linus.torvalds@acme.example").await,
        vec!["Marketing User@EMEA"]
    );
    assert_eq!(
        marketo_roles(&sandbox, "alan.turing@acme.example").await,
        vec!["Analytics User@US"]
    );
    let (_, items) = svc
        .get(&viewer, &format!("/api/v1/reviews/{id}/items"))
        .await;
    for i in items["items"].as_array().unwrap() {
        let want = if [linus, margaret_emea].contains(&i["id"].as_i64().unwrap()) {
            json!("remediated")
        } else {
            Value::Null
        };
        assert_eq!(i["remediation"], want, "{i:#}");
    }
    // The roster still grants both roles: the revocations hold over it at the next full run.
    let full = svc.reconcile_now(&operator, &viewer, "marketo.acme").await;
    assert_ne!(full["outcome"], "failed", "{full:#}");
    assert_eq!(
        marketo_roles(&sandbox, "margaret.hamilton@acme.example").await,
        vec!["Standard User@US"]
    );
    // Every decision and the close are rows of the signed log, which verifies.
    let store = &svc.running.shared.store;
    let counts = store.review_counts(id, "MIA@acme.example").await.unwrap();
    assert_eq!(
        (counts.items, counts.decided, counts.mine_open),
        (items["items"].as_array().unwrap().len(), 4, 2),
        "Mia decided three of her five"
    );
    let log = store.log(None).await.unwrap();
    assert_eq!(
        log.iter().filter(|l| l.action == "review.decide").count(),
        4,
        "the four decisions recorded, not the refused ones"
    );
    assert!(log.iter().any(|l| l.action == "review.close"));
    assert!(log.iter().any(|l| {
        l.action == "review.start"
            && l.detail
                .as_deref()
                .is_some_and(|d| d.contains(review["snapshot_digest"].as_str().unwrap()))
    }));
    assert!(log.iter().any(|l| l.action == "review.verify"));
    assert!(
        store
            .verify_log_with(store.keys().unwrap(), None)
            .await
            .unwrap()
            .is_ok()
    );

    // The evidence bundle: written to a directory, it verifies with the public key alone;
    // one byte changed anywhere, or a file added, and it does not.
    use roster_engine::evidence;
    let (status, bundle) = svc
        .get(&viewer, &format!("/api/v1/reviews/{id}/evidence"))
        .await;
    assert_eq!(status, 200, "{bundle:#}");
    let files: std::collections::BTreeMap<String, Vec<u8>> = bundle["files"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().as_bytes().to_vec()))
        .collect();
    for name in [
        "manifest.json",
        "manifest.sig",
        "review.json",
        "snapshot.json",
        "items.json",
        "log.json",
        "plan.json",
        "verification.json",
        "summary.html",
    ] {
        assert!(files.contains_key(name), "no {name} in the bundle");
    }
    let out = dir.path().join("evidence");
    evidence::write_dir(
        &evidence::Bundle {
            files: files.clone(),
        },
        &out,
    )
    .unwrap();
    assert!(
        evidence::write_dir(
            &evidence::Bundle {
                files: files.clone()
            },
            &out
        )
        .is_err(),
        "a bundle is never written over another"
    );
    let public =
        roster_keys::Keyring::from_public_file(&write_public_keys(dir.path(), store)).unwrap();
    let read = evidence::read_dir(&out).unwrap();
    let verified = evidence::verify(&read, &public).unwrap_or_else(|p| panic!("{p:#?}"));
    assert_eq!(
        (
            verified.review,
            verified.items,
            verified.revoked,
            verified.remediated
        ),
        (id, items["items"].as_array().unwrap().len(), 2, 2)
    );
    assert_eq!(verified.decided, 4);
    let summary = String::from_utf8(read["summary.html"].clone()).unwrap();
    for text in [
        "Sign-off",
        "break-glass admin",
        "moved to the US team",
        plan_id,
    ] {
        assert!(summary.contains(text), "the summary lacks {text:?}");
    }
    // Another key's bundle does not verify with this one.
    assert!(evidence::verify(&read, &roster_keys::Keyring::ephemeral()).is_err());
    for name in ["items.json", "manifest.json", "log.json", "snapshot.json"] {
        let mut edited = read.clone();
        let bytes = edited.get_mut(name).unwrap();
        let at = bytes.iter().position(|b| b.is_ascii_digit()).unwrap();
        bytes[at] = if bytes[at] == b'9' {
            b'8'
        } else {
            bytes[at] + 1
        };
        let problems = evidence::verify(&edited, &public).unwrap_err();
        assert!(!problems.is_empty(), "an edit of {name} went unseen");
    }
    let mut added = read.clone();
    added.insert("notes.txt".into(), b"approved".to_vec());
    let problems = evidence::verify(&added, &public).unwrap_err();
    assert!(problems[0].contains("notes.txt"), "{problems:?}");
    // A revocation holds until an approver lifts it, with a reason; then the roster's grant
    // comes back at the next run.
    let (_, rv) = svc
        .get(&viewer, "/api/v1/revocations?instance=marketo.acme")
        .await;
    let mut held: Vec<(String, String, String)> = rv["revocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["email"].as_str().unwrap().to_string(),
                r["role"].as_str().unwrap().to_string(),
                r["scope"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    held.sort();
    assert_eq!(
        held,
        vec![
            (
                "linus.torvalds@acme.example".into(),
                "RTP Launcher".into(),
                "EMEA".into()
            ),
            (
                "margaret.hamilton@acme.example".into(),
                "Standard User".into(),
                "EMEA".into()
            ),
        ]
    );
    let lift = json!({"instance": "marketo.acme", "email": "margaret.hamilton@acme.example", "role": "Standard User", "scope": "EMEA", "comment": "back on the EMEA team"});
    let (status, _) = svc
        .post(&viewer, "/api/v1/revocations/lift", lift.clone())
        .await;
    assert_eq!(status, 403);
    let mut no_reason = lift.clone();
    no_reason["comment"] = json!(" ");
    let (status, _) = svc
        .post(&owner, "/api/v1/revocations/lift", no_reason)
        .await;
    assert_eq!(status, 400);
    let (status, body) = svc
        .post(&owner, "/api/v1/revocations/lift", lift.clone())
        .await;
    assert_eq!(
        (status, body["lifted"].as_u64()),
        (200, Some(1)),
        "{body:#}"
    );
    let (status, _) = svc.post(&owner, "/api/v1/revocations/lift", lift).await;
    assert_eq!(status, 404, "lifted once only");
    let before = full["id"].as_i64().unwrap();
    let (status, _) = svc
        .post(
            &operator,
            "/api/v1/instances/marketo.acme/reconcile",
            json!({}),
        )
        .await;
    assert_eq!(status, 202);
    let again = svc
        .run_where(&viewer, "the reconcile after the lift", |r| {
            r["trigger"] == "api:op" && r["id"].as_i64().is_some_and(|id| id > before)
        })
        .await;
    assert!(
        again["summary"]
            .as_str()
            .unwrap()
            .contains("the non-destructive steps ran"),
        "{again:#}"
    );
    assert_eq!(
        marketo_roles(&sandbox, "margaret.hamilton@acme.example").await,
        vec!["Standard User@EMEA", "Standard User@US"]
    );
    assert_eq!(
        marketo_roles(&sandbox, "linus.torvalds@acme.example").await,
        vec!["Marketing User@EMEA"],
        "the revocation not lifted still holds"
    );
    assert!(
        store
            .log(None)
            .await
            .unwrap()
            .iter()
            .any(|l| l.action == "review.lift")
    );

    // A decision edited in the database, behind the signed log's back: no evidence is
    // given, and the answer says which item.
    let pool = svc.raw_pool().await;
    sqlx::query(
        "UPDATE review_items SET comment = 'approved by the CFO' WHERE review_id = $1 AND id = $2",
    )
    .bind(id)
    .bind(margaret_emea)
    .execute(&pool)
    .await
    .unwrap();
    let (status, body) = svc
        .get(&viewer, &format!("/api/v1/reviews/{id}/evidence"))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("evidence_mismatch")),
        "{body:#}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("item {margaret_emea}")),
        "{body:#}"
    );
    svc.stop().await;
}

/// The state's public keys in a file, as `roster keys public` writes them.
fn write_public_keys(dir: &Path, store: &StateStore) -> PathBuf {
    let path = dir.join("roster.pub");
    std::fs::write(&path, store.keys().unwrap().public_file()).unwrap();
    path
}

/// A campaign's reminder and due date, each acted on once: `review.due` with a link to the
/// console, then `review.overdue` and (`on_due = escalate`) the open items handed to the
/// owner; `on_due = revoke` closes a campaign at its due date, its plan still held for
/// approval. A reviewer delegates items, never to the person they are about.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_reminds_escalates_and_closes_at_its_due_date_and_delegation_is_recorded() {
    use roster_service::reviews::check_due;
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(dir.path()).await;
    let (hook_addr, received) = receiver().await;
    // SAFETY: this test's own variable.
    unsafe { std::env::set_var("ROSTER_TEST_HOOK_SECRET_DUE", "hook-secret") };
    let roster = EXAMPLE
        .replace(
            "    department: Analytics\n",
            "    department: Analytics\n    manager: mia@acme.example\n",
        )
        .replace(
            "    department: Field Marketing\n",
            "    department: Field Marketing\n    manager: mia@acme.example\n",
        );
    std::fs::write(dir.path().join("people.yaml"), &roster).unwrap();
    let extra = format!(
        "owner = \"owner@acme.example\"\n\n[webhook.reviews]\nurl = \"http://{hook_addr}/hook\"\nsecret_env = \"ROSTER_TEST_HOOK_SECRET_DUE\"\nevents = [\"review.due\", \"review.overdue\", \"review.escalated\", \"review.closed\"]\n"
    );
    let config = config(&sandbox, "ROSTER_TEST_SECRET_DUE", "1h", &extra).replace(
        "roster_watch = \"off\"\n",
        "roster_watch = \"off\"\npublic_url = \"http://127.0.0.1:9/roster/\"\n",
    );
    let svc = Service::start(dir.path(), &config, "ROSTER_TEST_SECRET_DUE").await;
    let viewer = svc.token("viewer", "viewer").await;
    let operator = svc.token("op", "operator").await;
    let mia = svc.token("mia@acme.example", "viewer").await;
    svc.run_where(&viewer, "at start", |_| true).await;

    let start = |due: &str, on_due: &str, scope: &str| json!({"instance": "marketo.acme", "due": due, "on_due": on_due, "scope": scope});
    let (status, body) = svc
        .post(&operator, "/api/v1/reviews", start("14d", "later", "all"))
        .await;
    assert_eq!(status, 400, "{body:#}");
    let open = |id: i64| {
        let svc = &svc;
        let viewer = &viewer;
        async move {
            loop {
                let (_, r) = svc.get(viewer, &format!("/api/v1/reviews/{id}")).await;
                if r["status"] != "snapshotting" {
                    assert_eq!(r["status"], "open", "{r:#}");
                    return r;
                }
                svc.run_where(viewer, "the snapshot", |r| {
                    r["trigger"] == format!("review:{id} snapshot")
                })
                .await;
            }
        }
    };
    let (status, a) = svc
        .post(
            &operator,
            "/api/v1/reviews",
            start("14d", "escalate", "all"),
        )
        .await;
    assert_eq!(status, 202, "{a:#}");
    let a = a["id"].as_i64().unwrap();
    let review_a = open(a).await;
    let created = OffsetDateTime::parse(
        review_a["created_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();

    // Mia hands Alan's items to Kim; not to Alan himself.
    let (_, mine) = svc
        .get(&mia, &format!("/api/v1/reviews/{a}/items?reviewer=me"))
        .await;
    let mine = mine["items"].as_array().unwrap().clone();
    let alans: Vec<i64> = mine
        .iter()
        .filter(|i| i["email"] == "alan.turing@acme.example")
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    assert!(!alans.is_empty(), "{mine:#?}");
    let delegate = format!("/api/v1/reviews/{a}/delegate");
    let (status, body) = svc
        .post(
            &mia,
            &delegate,
            json!({"to": "alan.turing@acme.example", "items": alans}),
        )
        .await;
    assert_eq!(status, 409, "{body:#}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("own access")
    );
    let (status, moved) = svc
        .post(
            &mia,
            &delegate,
            json!({"to": "Kim@acme.example", "items": alans, "comment": "Kim runs analytics now"}),
        )
        .await;
    assert_eq!(status, 200, "{moved:#}");
    for i in moved["items"].as_array().unwrap() {
        assert_eq!(i["reviewer"], "kim@acme.example");
        assert_eq!(i["reviewer_because"], "delegated by mia@acme.example");
    }
    // Mia decides one of hers; the rest stay open.
    let other = mine
        .iter()
        .find(|i| i["email"] != "alan.turing@acme.example")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let (status, _) = svc
        .post(
            &mia,
            &format!("/api/v1/reviews/{a}/items/{other}/decision"),
            json!({"decision": "keep", "comment": "still on the team"}),
        )
        .await;
    assert_eq!(status, 200);

    let events = |name: &str| -> Vec<Value> {
        received
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(_, b)| serde_json::from_str::<Value>(b).ok())
            .filter(|v| v["event"] == name)
            .collect()
    };
    let until = |name: &'static str, n: usize| {
        let events = &events;
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                let got = events(name);
                if got.len() >= n {
                    return got;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no {name} webhook came"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    // Too early for a reminder; then one, however often it is checked.
    check_due(&svc.running.shared, created + time::Duration::days(5))
        .await
        .unwrap();
    check_due(&svc.running.shared, created + time::Duration::days(13))
        .await
        .unwrap();
    check_due(&svc.running.shared, created + time::Duration::days(13))
        .await
        .unwrap();
    let due = until("review.due", 1).await;
    assert_eq!(due[0]["data"]["review"], a);
    let reviewers = due[0]["data"]["reviewers"].as_array().unwrap();
    let kim = reviewers
        .iter()
        .find(|r| r["reviewer"] == "kim@acme.example")
        .unwrap_or_else(|| panic!("{due:#?}"));
    assert_eq!(kim["open"], alans.len());
    assert_eq!(
        kim["link"],
        format!("http://127.0.0.1:9/roster/console/reviews/{a}")
    );

    // At the due date: overdue, and every open item goes to the owner.
    check_due(&svc.running.shared, created + time::Duration::days(15))
        .await
        .unwrap();
    check_due(&svc.running.shared, created + time::Duration::days(16))
        .await
        .unwrap();
    let overdue = until("review.overdue", 1).await;
    assert_eq!(overdue[0]["data"]["on_due"], "escalate");
    until("review.escalated", 1).await;
    let (_, items) = svc
        .get(&viewer, &format!("/api/v1/reviews/{a}/items"))
        .await;
    for i in items["items"].as_array().unwrap() {
        let was = i["reviewer_because"].as_str().unwrap();
        if i["id"] == other {
            assert_eq!(i["reviewer"], "mia@acme.example");
        } else if was.ends_with("(was owner@acme.example)") {
            // The owner's own open items go one further: to the campaign's starter.
            assert_eq!(i["reviewer"], "op", "{i:#}");
        } else {
            assert_eq!(i["reviewer"], "owner@acme.example", "{i:#}");
            assert!(
                i["reviewer_because"]
                    .as_str()
                    .unwrap()
                    .starts_with("escalated at the due date"),
                "{i:#}"
            );
        }
    }
    let (_, r) = svc.get(&viewer, &format!("/api/v1/reviews/{a}")).await;
    assert_eq!(r["status"], "open", "escalation leaves the campaign open");
    assert_eq!(r["overdue"], true);

    // A campaign whose undecided items are revoked at the due date closes itself there;
    // its plan waits for an approver like any other.
    let (status, b) = svc
        .post(
            &operator,
            "/api/v1/reviews",
            start("1d", "revoke", "role=Analytics User@US"),
        )
        .await;
    assert_eq!(status, 202, "{b:#}");
    let b = b["id"].as_i64().unwrap();
    let review_b = open(b).await;
    assert!(review_b["items"].as_u64().unwrap() >= 1, "{review_b:#}");
    check_due(&svc.running.shared, created + time::Duration::days(2))
        .await
        .unwrap();
    let (_, r) = svc.get(&viewer, &format!("/api/v1/reviews/{b}")).await;
    assert_eq!(r["status"], "remediating", "{r:#}");
    assert_eq!(r["closed_by"], "roster (due date)");
    assert_eq!(r["revoked"], review_b["items"]);
    let run = svc
        .run_where(&viewer, "of the overdue review's plan", |r| {
            r["trigger"] == format!("review:{b}")
        })
        .await;
    assert_eq!(run["outcome"], "awaiting_approval", "{run:#}");
    assert_eq!(
        marketo_roles(&sandbox, "alan.turing@acme.example").await,
        vec!["Analytics User@US"],
        "nothing is taken before an approval"
    );
    let closed = until("review.closed", 1).await;
    assert_eq!(closed[0]["data"]["review"], b);
    assert!(
        closed[0]["text"]
            .as_str()
            .unwrap()
            .contains(&format!("http://127.0.0.1:9/roster/console/reviews/{b}"))
    );

    let store = &svc.running.shared.store;
    let log = store.log(None).await.unwrap();
    for action in ["review.delegate", "review.escalate", "review.close"] {
        assert!(
            log.iter().any(|l| l.action == action),
            "no {action} row in the log"
        );
    }
    assert!(
        store
            .verify_log_with(store.keys().unwrap(), None)
            .await
            .unwrap()
            .is_ok()
    );
    svc.stop().await;
}

/// The audit reports from the stored inventory and roster (privileged, dormant, orphaned,
/// leavers still active), and "who had access then" from the access history after a
/// leaver's account is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_show_privileged_orphaned_and_leaver_accounts_and_who_had_access_before() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(dir.path()).await;
    std::fs::write(dir.path().join("people.yaml"), EXAMPLE).unwrap();
    let config = config(&sandbox, "ROSTER_TEST_SECRET_REPORTS", "1h", "");
    let svc = Service::start(dir.path(), &config, "ROSTER_TEST_SECRET_REPORTS").await;
    let viewer = svc.token("viewer", "viewer").await;
    let alice = svc.token("alice", "approver").await;
    let bob = svc.token("bob", "approver").await;
    let (status, body) = svc
        .get(&viewer, "/api/v1/reports/privileged?instance=marketo.acme")
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_read_yet")),
        "{body:#}"
    );
    let first = svc.run_where(&viewer, "at start", |_| true).await;
    let before_delete = OffsetDateTime::now_utc();
    let report = |kind: &str, query: &str| {
        let (svc, viewer) = (&svc, &viewer);
        let path = format!("/api/v1/reports/{kind}?instance=marketo.acme{query}");
        async move {
            let (status, body) = svc.get(viewer, &path).await;
            assert_eq!(status, 200, "{path}: {body:#}");
            body
        }
    };
    let emails = |r: &Value| -> Vec<String> {
        r["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["email"].as_str().unwrap().to_string())
            .collect()
    };
    let privileged = report("privileged", "").await;
    let p = emails(&privileged);
    assert!(
        p.contains(&"ada.lovelace@acme.example".to_string()),
        "{p:?}"
    );
    assert!(
        privileged["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["why"] == "API-only user"),
        "{privileged:#}"
    );
    assert!(
        !p.contains(&"alan.turing@acme.example".to_string()),
        "{p:?}"
    );
    let leavers = report("leavers", "").await;
    assert_eq!(emails(&leavers), vec!["katherine.johnson@acme.example"]);
    let orphaned = emails(&report("orphaned", "").await);
    assert!(
        orphaned
            .iter()
            .all(|e| !EXAMPLE.contains(&format!("email: {e}\n"))),
        "an orphan is nobody the roster lists: {orphaned:?}"
    );
    let dormant = report("dormant", "&days=1").await;
    for row in dormant["rows"].as_array().unwrap() {
        assert_eq!(row["account_kind"], "user", "{row:#}");
        let why = row["why"].as_str().unwrap();
        assert!(
            why == "never signed in" || why.starts_with("last signed in"),
            "{row:#}"
        );
    }
    let (status, _) = svc
        .get(&viewer, "/api/v1/reports/everything?instance=marketo.acme")
        .await;
    assert_eq!(status, 404);
    let (status, body) = svc
        .get(
            &viewer,
            "/api/v1/reports/access?instance=marketo.acme&at=yesterday",
        )
        .await;
    assert_eq!(status, 400, "{body:#}");

    // The leaver's deletion is approved and runs; the history remembers her account.
    let plan_id = first["plan_id"].as_str().unwrap().to_string();
    let (status, _) = svc
        .post(
            &alice,
            &format!("/api/v1/plans/{plan_id}/approve"),
            json!({}),
        )
        .await;
    let approver = if status == 403 { &bob } else { &alice };
    if status == 403 {
        let (status, _) = svc
            .post(
                approver,
                &format!("/api/v1/plans/{plan_id}/approve"),
                json!({}),
            )
            .await;
        assert_eq!(status, 202);
    }
    let applied = svc
        .run_where(&viewer, "applying the approval", |r| {
            r["trigger"]
                .as_str()
                .is_some_and(|t| t.starts_with(&format!("approval:{plan_id}")))
        })
        .await;
    assert_eq!(applied["outcome"], "done", "{applied:#}");
    let at = |t: OffsetDateTime| {
        form_urlencoded::byte_serialize(
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap()
                .as_bytes(),
        )
        .collect::<String>()
    };
    let then = report("access", &format!("&at={}", at(before_delete))).await;
    assert!(
        emails(&then).contains(&"katherine.johnson@acme.example".to_string()),
        "{then:#}"
    );
    let now = report("access", "").await;
    assert!(
        !emails(&now).contains(&"katherine.johnson@acme.example".to_string()),
        "{now:#}"
    );
    let admins_then = report(
        "access",
        &format!("&role=Admin&scope=AllZones&at={}", at(before_delete)),
    )
    .await;
    assert_eq!(emails(&admins_then), vec!["ada.lovelace@acme.example"]);
    let (_, leavers) = svc
        .get(&viewer, "/api/v1/reports/leavers?instance=marketo.acme")
        .await;
    assert!(emails(&leavers).is_empty(), "{leavers:#}");
    svc.stop().await;
}

/// A held plan nobody decides within `approval_expiry` expires: a signed log row, a
/// `plan.expired` webhook, approving it is refused and says why, and the next run asks
/// again with a fresh plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_request_expires_and_the_next_run_asks_again() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(dir.path()).await;
    let (hook_addr, received) = receiver().await;
    // SAFETY: this test's own variable.
    unsafe { std::env::set_var("ROSTER_TEST_HOOK_SECRET_EXPIRY", "hook-secret") };
    std::fs::write(dir.path().join("people.yaml"), EXAMPLE).unwrap();
    let extra = format!(
        "\n[webhook.ops]\nurl = \"http://{hook_addr}/hook\"\nsecret_env = \"ROSTER_TEST_HOOK_SECRET_EXPIRY\"\nevents = [\"plan.expired\"]\n"
    );
    let config = config(&sandbox, "ROSTER_TEST_SECRET_EXPIRY", "1h", &extra).replace(
        "roster_watch = \"off\"\n",
        "roster_watch = \"off\"\napproval_expiry = \"2h\"\n",
    );
    let svc = Service::start(dir.path(), &config, "ROSTER_TEST_SECRET_EXPIRY").await;
    let viewer = svc.token("viewer", "viewer").await;
    let operator = svc.token("op", "operator").await;
    let bob = svc.token("bob", "approver").await;
    let first = svc.run_where(&viewer, "at start", |_| true).await;
    assert_eq!(first["outcome"], "awaiting_approval", "{first:#}");
    let plan_id = first["plan_id"].as_str().unwrap().to_string();
    let shared = &svc.running.shared;
    // Not yet: an hour on, it still waits.
    let (_, held) = svc.get(&viewer, &format!("/api/v1/plans/{plan_id}")).await;
    let created = OffsetDateTime::parse(
        held["held"]["created_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(
        roster_service::api::expire_plans(shared, created + time::Duration::hours(1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        roster_service::api::expire_plans(shared, created + time::Duration::hours(3))
            .await
            .unwrap(),
        1
    );
    let (status, body) = svc
        .post(&bob, &format!("/api/v1/plans/{plan_id}/approve"), json!({}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("expired")),
        "{body:#}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("next run"),
        "{body:#}"
    );
    assert!(marketo_has(&sandbox, "katherine.johnson@acme.example").await);
    let (_, plans) = svc.get(&viewer, "/api/v1/plans?status=expired").await;
    assert_eq!(plans["plans"][0]["plan_id"], plan_id.as_str());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = received.lock().unwrap().clone();
        if got.iter().any(|(_, b)| {
            serde_json::from_str::<Value>(b).is_ok_and(|v| {
                v["event"] == "plan.expired" && v["data"]["plan_id"] == plan_id.as_str()
            })
        }) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no plan.expired webhook"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let store = &shared.store;
    assert!(
        store
            .log(Some(&plan_id))
            .await
            .unwrap()
            .iter()
            .any(|l| l.action == "expire")
    );
    // The next run asks again, with a plan of its own.
    let again = svc.reconcile_now(&operator, &viewer, "marketo.acme").await;
    assert_eq!(again["outcome"], "awaiting_approval", "{again:#}");
    assert_ne!(again["plan_id"], plan_id.as_str());
    let (status, _) = svc
        .post(
            &bob,
            &format!(
                "/api/v1/plans/{}/approve",
                again["plan_id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(status, 202);
    svc.stop().await;
}

/// A pending plan's Slack message carries Approve and Reject and a link to the console;
/// Slack's signed request approves it as the Roster account the Slack user is linked to.
/// Unsigned, stale or altered requests are refused; an unlinked user or a viewer decides
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_plan_is_approved_from_slack_by_a_linked_approver() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(dir.path()).await;
    let (hook_addr, received) = receiver().await;
    // SAFETY: this test's own variables.
    unsafe {
        std::env::set_var("ROSTER_TEST_HOOK_SECRET_SLACK", "hook-secret");
        std::env::set_var("ROSTER_TEST_SLACK_SIGNING", "slack-signing-secret");
    }
    std::fs::write(dir.path().join("people.yaml"), EXAMPLE).unwrap();
    let extra = format!(
        "\n[webhook.chat]\nurl = \"http://{hook_addr}/hook\"\nsecret_env = \"ROSTER_TEST_HOOK_SECRET_SLACK\"\nevents = [\"plan.pending\", \"review.due\"]\nformat = \"slack\"\n\n[slack]\nsigning_secret_env = \"ROSTER_TEST_SLACK_SIGNING\"\n[slack.users]\nU0ALICE = \"alice\"\nU0VERA = \"vera\"\nU0GHOST = \"ghost\"\nU0OP = \"op\"\n"
    );
    let config = config(&sandbox, "ROSTER_TEST_SECRET_SLACK", "1h", &extra).replace(
        "roster_watch = \"off\"\n",
        "roster_watch = \"off\"\npublic_url = \"http://127.0.0.1:9\"\n",
    );
    let svc = Service::start(dir.path(), &config, "ROSTER_TEST_SECRET_SLACK").await;
    let store = &svc.running.shared.store;
    let now = OffsetDateTime::now_utc();
    for (name, role) in [
        ("alice", "approver"),
        ("vera", "viewer"),
        ("op", "operator"),
    ] {
        store
            .add_console_user(
                name,
                role,
                &roster_service::console::hash_password("slack-test-pass"),
                now,
            )
            .await
            .unwrap();
    }
    let viewer = svc.token("viewer", "viewer").await;
    let first = svc.run_where(&viewer, "at start", |_| true).await;
    assert_eq!(first["outcome"], "awaiting_approval", "{first:#}");
    let plan = first["plan_id"].as_str().unwrap().to_string();

    // The message: a link to the plan, and the two buttons naming it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let message = loop {
        let got = received.lock().unwrap().clone();
        if let Some(m) = got
            .iter()
            .filter_map(|(_, b)| serde_json::from_str::<Value>(b).ok())
            .find(|v| v["blocks"].is_array())
        {
            break m;
        }
        assert!(tokio::time::Instant::now() < deadline, "no Slack message");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        message["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .contains(&format!("http://127.0.0.1:9/console/plans/{plan}")),
        "{message:#}"
    );
    let buttons = message["blocks"][1]["elements"].as_array().unwrap();
    assert_eq!(
        buttons
            .iter()
            .map(|b| (
                b["action_id"].as_str().unwrap(),
                b["value"].as_str().unwrap()
            ))
            .collect::<Vec<_>>(),
        vec![
            ("roster_approve", plan.as_str()),
            ("roster_reject", plan.as_str())
        ]
    );

    // Slack's side: a block_actions payload, signed as Slack signs it.
    let (answer_addr, answers) = receiver().await;
    let body = |user: &str, action: &str| {
        let payload = json!({
            "type": "block_actions",
            "user": {"id": user, "username": user},
            "actions": [{"type": "button", "action_id": action, "value": plan}],
            "response_url": format!("http://{answer_addr}/hook"),
        });
        form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish()
    };
    let sign = |ts: i64, body: &str, secret: &str| {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("v0:{ts}:{body}").as_bytes());
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("v0={hex}")
    };
    let post = |body: String, ts: i64, sig: String| {
        let (http, base) = (svc.http.clone(), svc.base.clone());
        async move {
            let r = http
                .post(format!("{base}/slack/actions"))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-slack-request-timestamp", ts.to_string())
                .header("x-slack-signature", sig)
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let ts = OffsetDateTime::now_utc().unix_timestamp();
    let approve = body("U0ALICE", "roster_approve");
    let status = |plan: &str| {
        let (svc, viewer, plan) = (&svc, &viewer, plan.to_string());
        async move {
            let (_, p) = svc.get(viewer, &format!("/api/v1/plans/{plan}")).await;
            p["held"]["status"].as_str().unwrap().to_string()
        }
    };
    // Not Slack's: wrong secret, stale, altered after signing, unsigned.
    let (code, _) = post(approve.clone(), ts, sign(ts, &approve, "guessed")).await;
    assert_eq!(code, 401);
    let old = ts - 600;
    let (code, text) = post(
        approve.clone(),
        old,
        sign(old, &approve, "slack-signing-secret"),
    )
    .await;
    assert_eq!(code, 401, "{text}");
    assert!(text.contains("five minutes"), "{text}");
    let altered = body("U0ALICE", "roster_reject");
    let (code, _) = post(altered, ts, sign(ts, &approve, "slack-signing-secret")).await;
    assert_eq!(code, 401);
    let (code, _) = post(approve.clone(), ts, String::new()).await;
    assert_eq!(code, 401);
    assert_eq!(status(&plan).await, "pending");
    // Linked to nobody, linked to a missing account, linked to a viewer: nothing decided.
    for (user, says) in [
        ("U0NOBODY", "not linked"),
        ("U0GHOST", "does not exist"),
        ("U0VERA", "approver"),
    ] {
        let b = body(user, "roster_approve");
        let (code, text) = post(b.clone(), ts, sign(ts, &b, "slack-signing-secret")).await;
        assert_eq!(code, 200);
        assert!(text.contains(says), "{user}: {text}");
        assert_eq!(status(&plan).await, "pending");
    }
    // Alice, an approver who did not ask for it: approved, and told so in Slack.
    let (code, text) = post(
        approve.clone(),
        ts,
        sign(ts, &approve, "slack-signing-secret"),
    )
    .await;
    assert_eq!(
        (code, text.contains("approved by alice")),
        (200, true),
        "{text}"
    );
    let applied = svc
        .run_where(&viewer, "applying the approval", |r| {
            r["trigger"]
                .as_str()
                .is_some_and(|t| t.starts_with(&format!("approval:{plan}")))
        })
        .await;
    assert_eq!(applied["outcome"], "done", "{applied:#}");
    assert!(!marketo_has(&sandbox, "katherine.johnson@acme.example").await);
    let (_, p) = svc.get(&viewer, &format!("/api/v1/plans/{plan}")).await;
    assert_eq!(p["held"]["decided_by"], "alice");
    let told = answers.lock().unwrap().clone();
    assert!(
        told.iter()
            .any(|(_, b)| b.contains("approved by alice") && b.contains("ephemeral")),
        "{told:?}"
    );
    // The same click again: the plan is decided already, and nothing runs twice.
    let (code, text) = post(
        approve.clone(),
        ts,
        sign(ts, &approve, "slack-signing-secret"),
    )
    .await;
    assert_eq!(code, 200);
    assert!(text.contains("not decided"), "{text}");

    // A review's reminder in Slack: its first open items, each with Keep and Revoke for
    // its reviewer (here the campaign's starter, op: the roster names no managers).
    let operator = svc.token("op", "operator").await;
    let (status, r) = svc
        .post(
            &operator,
            "/api/v1/reviews",
            json!({"instance": "marketo.acme", "due": "14d"}),
        )
        .await;
    assert_eq!(status, 202, "{r:#}");
    let id = r["id"].as_i64().unwrap();
    let created = loop {
        let (_, r) = svc.get(&viewer, &format!("/api/v1/reviews/{id}")).await;
        if r["status"] == "open" {
            break OffsetDateTime::parse(
                r["created_at"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
        }
        svc.run_where(&viewer, "the snapshot", |r| {
            r["trigger"] == format!("review:{id} snapshot")
        })
        .await;
    };
    roster_service::reviews::check_due(&svc.running.shared, created + time::Duration::days(13))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let reminder = loop {
        let got = received.lock().unwrap().clone();
        if let Some(m) = got
            .iter()
            .filter_map(|(_, b)| serde_json::from_str::<Value>(b).ok())
            .find(|v| v["text"].as_str().is_some_and(|t| t.contains("is due")))
        {
            break m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no review.due message"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let buttons: Vec<String> = reminder["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
        .map(|e| e["value"].as_str().unwrap().to_string())
        .collect();
    assert!(!buttons.is_empty(), "{reminder:#}");
    let (_, items) = svc
        .get(&viewer, &format!("/api/v1/reviews/{id}/items"))
        .await;
    let items = items["items"].as_array().unwrap().clone();
    let pick = |privileged: bool| {
        items
            .iter()
            .find(|i| {
                i["privileged"] == privileged
                    && buttons.iter().any(|v| *v == format!("{id}:{}", i["id"]))
            })
            .unwrap_or_else(|| panic!("no button for a privileged={privileged} item"))["id"]
            .as_i64()
            .unwrap()
    };
    let (plain, admin) = (pick(false), pick(true));
    let click = |user: &str, action: &str, item: i64| {
        let payload = json!({
            "type": "block_actions",
            "user": {"id": user},
            "actions": [{"type": "button", "action_id": action, "value": format!("{id}:{item}")}],
        });
        form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish()
    };
    let b = click("U0ALICE", "roster_revoke", plain);
    let (_, text) = post(b.clone(), ts, sign(ts, &b, "slack-signing-secret")).await;
    assert!(
        text.contains("not decided"),
        "only the reviewer decides: {text}"
    );
    let b = click("U0OP", "roster_keep", admin);
    let (_, text) = post(b.clone(), ts, sign(ts, &b, "slack-signing-secret")).await;
    assert!(
        text.contains("comment"),
        "a privileged keep needs a reason: {text}"
    );
    let b = click("U0OP", "roster_revoke", plain);
    let (_, text) = post(b.clone(), ts, sign(ts, &b, "slack-signing-secret")).await;
    assert!(text.contains(": revoke, by op"), "{text}");
    let (_, items) = svc
        .get(&viewer, &format!("/api/v1/reviews/{id}/items"))
        .await;
    let decided: Vec<(i64, String)> = items["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| !i["decision"].is_null())
        .map(|i| {
            (
                i["id"].as_i64().unwrap(),
                i["decision"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(decided, vec![(plain, "revoke".to_string())]);
    svc.stop().await;
}

/// The admin page administers Roster itself, for admins only: console accounts (added,
/// given a role, never the last admin removed or demoted), API tokens made, rotated
/// without downtime (both work during the overlap, as one identity) and revoked behind a
/// ticked box, SCIM tokens, and each webhook's last delivery (its receiver's host, never
/// the URL's secret path). Every change answers with a redirect and is a signed log line
/// naming the admin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_page_manages_accounts_and_tokens_and_logs_each_change() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = sandbox(dir.path()).await;
    std::fs::write(dir.path().join("people.yaml"), EXAMPLE).unwrap();
    // SAFETY: this test's own variable, set before the service reads it.
    unsafe { std::env::set_var("ROSTER_TEST_HOOK_SECRET_ADMIN", "hook-secret") };
    let svc = Service::start(
        dir.path(),
        &config(
            &sandbox,
            "ROSTER_TEST_SECRET_ADMIN",
            "1h",
            "\n[webhook.chat]\nurl = \"http://127.0.0.1:1/services/T000/B000/secretpath\"\nsecret_env = \"ROSTER_TEST_HOOK_SECRET_ADMIN\"\n",
        ),
        "ROSTER_TEST_SECRET_ADMIN",
    )
    .await;
    let root = console_cookie(&svc, "root", "admin").await;
    let vera = console_cookie(&svc, "vera", "viewer").await;
    let http = roster_http::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = |cookie: &str| {
        let r = http
            .get(format!("{}/console/admin", svc.base))
            .header("cookie", cookie);
        async move {
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let post = |cookie: &str, path: &str, form: Vec<(&str, &str)>| {
        let mut form = form;
        form.push(("csrf", "csrf"));
        let r = http
            .post(format!("{}{path}", svc.base))
            .header("cookie", cookie)
            .form(&form);
        async move { r.send().await.unwrap() }
    };
    let token_on = |html: &str| {
        let at = html.find("id=\"token-text\"").expect("a token shown");
        let rest = &html[at..];
        let v = rest.find("value=\"").unwrap() + 7;
        rest[v..v + rest[v..].find('"').unwrap()].to_string()
    };

    // A viewer is refused the page and is not shown the link.
    let (status, _) = page(&vera).await;
    assert_eq!(status, 403);
    let overview = http
        .get(format!("{}/console", svc.base))
        .header("cookie", &vera)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!overview.contains("/console/admin"));
    let r = post(
        &vera,
        "/console/admin/users/role",
        vec![("name", "vera"), ("role", "admin")],
    )
    .await;
    assert_eq!(r.status(), 403, "a viewer cannot make itself admin");

    let (status, html) = page(&root).await;
    assert_eq!(status, 200);
    assert!(html.contains("Console accounts") && html.contains("vera"));
    assert!(
        html.contains("127.0.0.1") && !html.contains("secretpath"),
        "only the receiver's host"
    );

    // Accounts: a short password is refused and nothing is added; a good one is.
    let r = post(
        &root,
        "/console/admin/users/add",
        vec![
            ("name", "dana"),
            ("role", "approver"),
            ("password", "short"),
        ],
    )
    .await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("at least 12 characters"));
    let store = svc.store().await;
    assert!(store.console_user("dana").await.unwrap().is_none());
    let r = post(
        &root,
        "/console/admin/users/add",
        vec![
            ("name", "dana"),
            ("role", "approver"),
            ("password", "a-long-password-2"),
        ],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/console/admin?done=added&name=dana"
    );
    assert_eq!(
        store.console_user("dana").await.unwrap().unwrap().role,
        "approver"
    );
    let r = post(
        &root,
        "/console/admin/users/role",
        vec![("name", "vera"), ("role", "operator")],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        store.console_user("vera").await.unwrap().unwrap().role,
        "operator"
    );
    // A new password for dana: too short refused, then set (and logged).
    let r = post(
        &root,
        "/console/admin/users/password",
        vec![("name", "dana"), ("password", "short")],
    )
    .await;
    assert_eq!(r.status(), 409);
    let before = store
        .console_user("dana")
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    let r = post(
        &root,
        "/console/admin/users/password",
        vec![("name", "dana"), ("password", "another-long-password")],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_ne!(
        store
            .console_user("dana")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        before
    );
    // The last admin is neither demoted nor removed.
    let r = post(
        &root,
        "/console/admin/users/role",
        vec![("name", "root"), ("role", "viewer")],
    )
    .await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("last admin"));
    let r = post(
        &root,
        "/console/admin/users/remove",
        vec![("name", "root"), ("confirm", "yes")],
    )
    .await;
    assert_eq!(r.status(), 409);
    assert_eq!(
        store.console_user("root").await.unwrap().unwrap().role,
        "admin"
    );
    // A form without the session's CSRF token changes nothing.
    let r = http
        .post(format!("{}/console/admin/users/remove", svc.base))
        .header("cookie", &root)
        .form(&[("name", "dana"), ("confirm", "yes"), ("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(store.console_user("dana").await.unwrap().is_some());

    // A service token, shown once on an uncached page; it works on the API.
    let r = post(
        &root,
        "/console/admin/tokens/create",
        vec![
            ("name", "ci"),
            ("role", "operator"),
            ("account", ""),
            ("expires", "90d"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let old = token_on(&r.text().await.unwrap());
    assert!(old.starts_with("roster_"));
    let (status, _) = svc.get(&old, "/api/v1/instances").await;
    assert_eq!(status, 200);
    let (_, html) = page(&root).await;
    assert!(
        !html.contains(&old),
        "a token is shown once, not on the page after"
    );
    // Rotated: the new one works at once and the old one for the overlap, as `ci` still.
    let r = post(
        &root,
        "/console/admin/tokens/rotate",
        vec![("name", "ci"), ("overlap", "1h")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let new = token_on(&r.text().await.unwrap());
    assert_ne!(new, old);
    for t in [&old, &new] {
        let (status, _) = svc.get(t, "/api/v1/instances").await;
        assert_eq!(status, 200);
    }
    let listed = store.tokens().await.unwrap();
    let retired = listed
        .iter()
        .find(|t| t.name.starts_with("ci#rotated-"))
        .expect("the old token listed under its rotated name");
    let until = retired.expires_at.unwrap() - OffsetDateTime::now_utc();
    assert!(
        until <= time::Duration::hours(1) && until > time::Duration::minutes(55),
        "{until}"
    );
    let current = listed.iter().find(|t| t.name == "ci").unwrap();
    assert_eq!(
        (current.role.as_str(), current.account.as_deref()),
        ("operator", None)
    );
    let lifetime = current.expires_at.unwrap() - current.created_at;
    assert!(
        lifetime > time::Duration::days(89),
        "the new token lives as long as the old was made to: {lifetime}"
    );
    let run = svc.reconcile_now(&old, &new, "marketo.acme").await;
    assert_eq!(
        run["trigger"], "api:ci",
        "the old token acts as ci: {run:#}"
    );
    // Revoking needs the box ticked; then the token stops at once.
    let r = post(&root, "/console/admin/tokens/revoke", vec![("name", "ci")]).await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("tick the box"));
    assert_eq!(svc.get(&new, "/api/v1/instances").await.0, 200);
    let r = post(
        &root,
        "/console/admin/tokens/revoke",
        vec![("name", "ci"), ("confirm", "yes")],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(svc.get(&new, "/api/v1/instances").await.0, 401);
    // A name in use is refused, saying so.
    let r = post(
        &root,
        "/console/admin/tokens/create",
        vec![
            ("name", "ci"),
            ("role", "viewer"),
            ("account", ""),
            ("expires", ""),
        ],
    )
    .await;
    assert_eq!(r.status(), 409);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("already an API token named")
    );
    // A token for a person never above their role.
    let r = post(
        &root,
        "/console/admin/tokens/create",
        vec![
            ("name", "dana-laptop"),
            ("role", "admin"),
            ("account", "dana"),
            ("expires", ""),
        ],
    )
    .await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("cannot be admin"));

    // SCIM: made for one instance (an unknown one refused), then revoked.
    let r = post(
        &root,
        "/console/admin/scim/create",
        vec![("name", "okta"), ("instances", "marketo.nowhere")],
    )
    .await;
    assert_eq!(r.status(), 409);
    let r = post(
        &root,
        "/console/admin/scim/create",
        vec![("name", "okta"), ("instances", "marketo.acme")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let scim = token_on(&r.text().await.unwrap());
    let scim_status = || {
        let r = http
            .get(format!("{}/scim/v2/Users", svc.base))
            .bearer_auth(&scim);
        async move { r.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(scim_status().await, 200);
    let r = post(
        &root,
        "/console/admin/scim/revoke",
        vec![("name", "okta"), ("confirm", "yes")],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(scim_status().await, 401);

    // Each change is in the signed log, made by root.
    let log = store.log(None).await.unwrap();
    for action in [
        "add console user",
        "set console password",
        "set console role",
        "create token",
        "rotate token",
        "revoke token",
        "create SCIM token",
        "revoke SCIM token",
    ] {
        assert!(
            log.iter().any(|l| l.action == action && l.actor == "root"),
            "{action} logged as root"
        );
    }
    assert!(!log.iter().any(|l| l.action == "remove console user"));
    svc.stop().await;
    sandbox.shutdown().await;
}
