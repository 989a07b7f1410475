//! An access review of 10,000 items: how long starting it takes (the snapshot, a full read
//! of the instance, and its items), against a full scheduled run of the same instance in the
//! same process (the baseline: the same read, plus planning); then how fast its console
//! pages and a decision answer, with wrk (an external load generator, one connection)
//! against `/healthz` as the baseline.
//!
//! The instance: a Marketo sandbox of 5,000 people with two roles each (10,000 items), 100
//! managers of 50 people each; one manager's page holds 100 items, the owner's view all of
//! them. The sandbox and the client are not paced to Marketo's 100 calls per 20 s here (a
//! full read takes a call per user, so on Marketo itself 5,000 users take about 17 minutes
//! to read, for the campaign as for the baseline run): what is measured is Roster's own
//! cost on top of the calls.
//!
//! `cargo bench -p roster-service --bench reviews` (needs `wrk`: apt-get install wrk).
//! ROSTER_BENCH_SECONDS sets each page's measurement (default 5).

use std::time::{Duration, Instant};

use roster_domain::Secret;
use roster_sandbox::marketo::admin::{Admin, RoleAt};
use roster_sandbox::marketo::{self, Limits, MarketoConfig};
use roster_service::config::ServeConfig;
use roster_store::StateStore;
use serde_json::{Value, json};
use time::OffsetDateTime;

const PEOPLE: usize = 5_000;
const REPORTS: usize = 50;

#[path = "common/wrk.rs"]
mod wrk;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !wrk::available() {
        eprintln!("the reviews benchmark needs wrk: apt-get install wrk");
        std::process::exit(2);
    }
    let seconds: u64 = std::env::var("ROSTER_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().unwrap();
    let sandbox_dir = dir.path().join("marketo");
    let admin = Admin::open(&sandbox_dir).await.unwrap();
    let roles: Vec<RoleAt> = vec![
        "Standard User@Default".parse().unwrap(),
        "Marketing User@World".parse().unwrap(),
    ];
    admin
        .add_people("p", "bench.example", PEOPLE, &roles)
        .await
        .unwrap();
    admin.close().await;
    let mut sandbox_config = MarketoConfig::new(&sandbox_dir);
    sandbox_config.client_id = Some("bench".into());
    sandbox_config.client_secret = Some(Secret::new("bench-secret-value"));
    sandbox_config.limits = Limits::unlimited();
    let sandbox = marketo::start(sandbox_config).await.unwrap();
    // SAFETY: set before any thread reads the environment.
    unsafe { std::env::set_var("ROSTER_BENCH_REVIEW_SECRET", "bench-secret-value") };

    // The roster lists everyone with the roles they have and a manager: nothing to plan.
    let mut roster = String::from(
        "policies:\n  marketo:\n    managed_domains: [bench.example]\n    unlisted: report\npeople:\n",
    );
    for n in 1..=PEOPLE {
        roster.push_str(&format!(
            "  - email: p{n:05}@bench.example\n    first_name: p\n    last_name: Person {n}\n    manager: mgr{:03}@bench.example\n    access:\n      marketo: [\"Standard User@Default\", \"Marketing User@World\"]\n",
            (n - 1) / REPORTS
        ));
    }
    std::fs::write(dir.path().join("people.yaml"), roster).unwrap();
    let path = dir.path().join("roster.toml");
    std::fs::write(
        &path,
        format!(
            "[service]\nlisten = \"127.0.0.1:0\"\nroster_watch = \"off\"\n\n[marketo.bench]\nurl = \"{}\"\nclient_id = \"bench\"\nclient_secret_env = \"ROSTER_BENCH_REVIEW_SECRET\"\nroster = \"people.yaml\"\ninterval = \"24h\"\nauto_apply = \"none\"\nowner = \"owner\"\nrate_limit = 100000\nrate_window = \"1s\"\n",
            sandbox.base_url()
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let store = StateStore::open(&state).await.unwrap();
    let now = OffsetDateTime::now_utc();
    let mut tokens = std::collections::BTreeMap::new();
    let mut cookies = std::collections::BTreeMap::new();
    for (name, role) in [("owner", "approver"), ("mgr000@bench.example", "viewer")] {
        let token = roster_service::tokens::generate();
        store
            .add_token(name, role, &roster_service::tokens::hash(&token), now)
            .await
            .unwrap();
        tokens.insert(name, token);
        let user = store
            .add_console_user(
                name,
                role,
                &roster_service::console::hash_password("bench-password-1"),
                now,
            )
            .await
            .unwrap();
        let session = roster_service::tokens::generate();
        store
            .start_session(
                user,
                &roster_domain::sha256::hex(session.as_bytes()),
                "csrf",
                now,
            )
            .await
            .unwrap();
        cookies.insert(name, format!("roster_session={session}"));
    }
    let running = roster_service::start(ServeConfig::load(&path).unwrap(), state.clone())
        .await
        .unwrap();
    let base = format!("http://{}", running.addr);
    let http = roster_http::client();
    let owner = tokens["owner"].clone();
    let get = |path: String| {
        let (http, base, owner) = (&http, &base, &owner);
        async move {
            http.get(format!("{base}{path}"))
                .bearer_auth(owner)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let finished = |trigger: &'static str| {
        let get = &get;
        async move {
            let deadline = Instant::now() + Duration::from_secs(600);
            loop {
                let runs = get("/api/v1/runs?limit=20".into()).await;
                if let Some(r) = runs["runs"].as_array().unwrap().iter().find(|r| {
                    r["trigger"]
                        .as_str()
                        .is_some_and(|t| t.starts_with(trigger))
                        && r["outcome"] != "running"
                }) {
                    return r.clone();
                }
                assert!(Instant::now() < deadline, "no {trigger} run finished");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    // The service's first scheduled run; then the baseline, a full run asked for now.
    finished("schedule").await;
    let started = Instant::now();
    let r = http
        .post(format!("{base}/api/v1/instances/marketo.bench/reconcile"))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let run = finished("api:").await;
    let full_run = started.elapsed();
    assert_eq!(run["outcome"], "done", "{run:#}");

    // The campaign: snapshot and items.
    let started = Instant::now();
    let r: Value = http
        .post(format!("{base}/api/v1/reviews"))
        .bearer_auth(&owner)
        .header("content-type", "application/json")
        .body(json!({"instance": "marketo.bench", "due": "14d"}).to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = r["id"].as_i64().unwrap_or_else(|| panic!("{r:#}"));
    let review = loop {
        let v = get(format!("/api/v1/reviews/{id}")).await;
        if v["status"] != "snapshotting" {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let start_time = started.elapsed();
    assert_eq!(review["status"], "open", "{review:#}");
    let items = review["items"].as_u64().unwrap();
    assert!(items >= (2 * PEOPLE) as u64, "{review:#}");

    // A decision through the API, 200 times in a row (each its own signed log row).
    let mgr = tokens["mgr000@bench.example"].clone();
    let mine = http
        .get(format!("{base}/api/v1/reviews/{id}/items?reviewer=me"))
        .bearer_auth(&mgr)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let mine: Vec<i64> = mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    assert_eq!(mine.len(), 2 * REPORTS);
    let mut decide_ms = Vec::new();
    for k in 0..200 {
        let item = mine[k % mine.len()];
        let t = Instant::now();
        let r = http
            .post(format!("{base}/api/v1/reviews/{id}/items/{item}/decision"))
            .bearer_auth(&mgr)
            .header("content-type", "application/json")
            .body(json!({"decision": "keep", "comment": "bench"}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        decide_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    decide_ms.sort_by(f64::total_cmp);

    let cases = [
        (
            "baseline: GET /healthz",
            "owner",
            "/healthz".to_string(),
            None,
        ),
        (
            "campaign list",
            "owner",
            "/console/reviews".to_string(),
            Some(100.0),
        ),
        (
            "a manager's page (100 of 10,000)",
            "mgr000@bench.example",
            format!("/console/reviews/{id}?show=mine&state=all"),
            Some(100.0),
        ),
        (
            "the owner's view, first page of all",
            "owner",
            format!("/console/reviews/{id}?show=all&state=all"),
            Some(100.0),
        ),
        (
            "a text search over all items",
            "owner",
            format!("/console/reviews/{id}?show=all&state=all&q=person+4242"),
            Some(100.0),
        ),
    ];
    println!(
        "access review of {items} items ({PEOPLE} people x 2 roles, {} managers):",
        PEOPLE / REPORTS
    );
    println!(
        "| step | time | vs baseline |\n|---|---:|---:|\n| a full scheduled run of the instance (baseline) | {:.0} ms | 1x |\n| starting the campaign (snapshot + items, until open) | {:.0} ms | {:.2}x |",
        full_run.as_secs_f64() * 1e3,
        start_time.as_secs_f64() * 1e3,
        start_time.as_secs_f64() / full_run.as_secs_f64()
    );
    println!(
        "a decision through the API: p50 {:.1} ms, p99 {:.1} ms (200 in a row)",
        decide_ms[decide_ms.len() / 2],
        decide_ms[decide_ms.len() * 99 / 100]
    );
    println!(
        "\n| request | p50 ms | p99 ms | req/s | p50 vs baseline | bound |\n|---|---:|---:|---:|---:|---|"
    );
    let mut baseline = None;
    let mut over = Vec::new();
    for (label, who, path, bound) in cases {
        let m = wrk::run(
            &[
                "-t1",
                "-c1",
                &format!("-d{seconds}s"),
                "-H",
                &format!("Cookie: {}", cookies[who]),
            ],
            &format!("{base}{path}"),
        );
        let base_p50 = *baseline.get_or_insert(m.p50);
        println!(
            "| {label} | {:.2} | {:.2} | {:.0} | {:.1}x | {} |",
            m.p50,
            m.p99,
            m.rps,
            m.p50 / base_p50,
            bound.map_or(String::new(), |b| format!("< {b} ms"))
        );
        if let Some(b) = bound
            && m.p99 >= b
        {
            over.push(format!("{label}: p99 {:.1} ms over {b} ms", m.p99));
        }
    }
    running.shutdown().await;
    sandbox.shutdown().await;
    if !over.is_empty() {
        eprintln!("over the bound: {}", over.join("; "));
        std::process::exit(1);
    }
}
