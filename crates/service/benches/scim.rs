//! A full SCIM push and what it costs: 10,000 users POSTed by a client here (four at a
//! time, as an identity provider's sync does), 200 groups of 50 members, then the reconcile that turns them into a plan (10,000 Marketo invitations
//! against the Marketo sandbox); and the lookup identity providers make before every create,
//! `GET /Users?filter=userName eq "..."`, measured by wrk against `/healthz` as the baseline.
//!
//! `cargo bench -p roster-service --bench scim` (needs `wrk`: apt-get install wrk).

use std::time::{Duration, Instant};

use roster_domain::Secret;
use roster_sandbox::marketo::{self, Limits, MarketoConfig};
use roster_service::config::ServeConfig;
use roster_store::StateStore;
use serde_json::{Value, json};
use time::OffsetDateTime;

const USERS: usize = 10_000;
const GROUPS: usize = 200;

fn lua(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[path = "common/wrk.rs"]
mod wrk;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !wrk::available() {
        eprintln!("the SCIM benchmark needs wrk: apt-get install wrk");
        std::process::exit(2);
    }
    let dir = tempfile::tempdir().unwrap();
    let mut sandbox_config = MarketoConfig::new(dir.path().join("marketo"));
    sandbox_config.client_id = Some("bench".into());
    sandbox_config.client_secret = Some(Secret::new("bench-secret-value"));
    sandbox_config.limits = Limits::unlimited();
    let sandbox = marketo::start(sandbox_config).await.unwrap();
    // SAFETY: set before any thread reads the environment.
    unsafe { std::env::set_var("ROSTER_BENCH_SCIM_SECRET", "bench-secret-value") };
    std::fs::write(
        dir.path().join("people.yaml"),
        "policies:\n  marketo:\n    managed_domains: [bench.example]\n    unlisted: report\n    max_destructive: 100%\npeople: []\n",
    )
    .unwrap();
    let mut config = format!(
        "[service]\nlisten = \"127.0.0.1:0\"\n\n[marketo.bench]\nurl = \"{}\"\nclient_id = \"bench\"\nclient_secret_env = \"ROSTER_BENCH_SCIM_SECRET\"\nroster = \"people.yaml\"\ninterval = \"24h\"\nauto_apply = \"none\"\n\n[scim]\ndebounce = \"1h\"\n",
        sandbox.base_url()
    );
    for g in 0..GROUPS {
        config.push_str(&format!(
            "[scim.groups.g{g:03}]\nmarketo = [\"Marketing User@Default\"]\n"
        ));
    }
    let path = dir.path().join("roster.toml");
    std::fs::write(&path, config).unwrap();
    let state = dir.path().join("state");
    let store = StateStore::open(&state).await.unwrap();
    let now = OffsetDateTime::now_utc();
    let scim_token = roster_service::tokens::generate();
    store
        .add_scim_connection(
            "bench",
            &roster_service::tokens::hash(&scim_token),
            &[],
            now,
        )
        .await
        .unwrap();
    let api_token = roster_service::tokens::generate();
    store
        .add_token(
            "bench",
            "operator",
            &roster_service::tokens::hash(&api_token),
            now,
        )
        .await
        .unwrap();
    let running = roster_service::start(ServeConfig::load(&path).unwrap(), state.clone())
        .await
        .unwrap();
    let base = format!("http://{}", running.addr);
    let http = roster_http::client();
    let runs = || async {
        let v: Value = http
            .get(format!("{base}/api/v1/runs?limit=10"))
            .bearer_auth(&api_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["runs"].as_array().cloned().unwrap_or_default()
    };
    // The first scheduled run (nothing to do yet) finishes before the push.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !runs().await.iter().any(|r| r["outcome"] != "running") {
        assert!(Instant::now() < deadline, "the first run did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // 10,000 users, by a client here: four at a time, as an identity provider's sync does.
    let pushed = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for lane in 0..4 {
        let (http, base, token) = (http.clone(), base.clone(), scim_token.clone());
        tasks.spawn(async move {
            for n in (lane..USERS).step_by(4) {
                let email = format!("user{n:05}@bench.example");
                let body = json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": email,
                    "name": {"givenName": "User", "familyName": format!("N{n:05}")},
                    "emails": [{"value": email, "type": "work", "primary": true}],
                    "active": true
                });
                let r = http
                    .post(format!("{base}/scim/v2/Users"))
                    .bearer_auth(&token)
                    .header("content-type", "application/scim+json")
                    .body(body.to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let users_time = pushed.elapsed();
    let stored = store.scim_resources("bench", "User").await.unwrap();
    assert_eq!(stored.len(), USERS);

    // 200 groups of 50 members, by a client here.
    let ids: Vec<String> = stored.iter().map(|r| r.id.clone()).collect();
    let groups_started = Instant::now();
    for (g, members) in ids.chunks(USERS / GROUPS).enumerate() {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": format!("g{g:03}"),
            "members": members.iter().map(|id| json!({"value": id})).collect::<Vec<_>>(),
        });
        let r = http
            .post(format!("{base}/scim/v2/Groups"))
            .bearer_auth(&scim_token)
            .header("content-type", "application/scim+json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let groups_time = groups_started.elapsed();

    // The reconcile that turns them into a plan.
    let before = runs().await.len();
    let planned = Instant::now();
    let r = http
        .post(format!("{base}/api/v1/instances/marketo.bench/reconcile"))
        .bearer_auth(&api_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(600);
    let run = loop {
        let list = runs().await;
        if list.len() > before
            && let Some(r) = list.iter().find(|r| {
                r["trigger"].as_str().is_some_and(|t| t.starts_with("api:"))
                    && r["outcome"] != "running"
            })
        {
            break r.clone();
        }
        assert!(Instant::now() < deadline, "the reconcile did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let plan_time = planned.elapsed();
    let summary = run["summary"].as_str().unwrap_or_default().to_string();
    assert!(
        summary.contains("10000 to create"),
        "the plan invites everyone: {run:#}"
    );

    // The lookup before each create, by wrk, against the baseline.
    let lookup = lua(
        dir.path(),
        "lookup.lua",
        &format!(
            r#"
wrk.headers["Authorization"] = "Bearer {scim_token}"
local i = 0
request = function()
  i = (i % {USERS}) + 1
  return wrk.format("GET", "/scim/v2/Users?filter=userName%20eq%20%22user" .. string.format("%05d", i) .. "%40bench.example%22")
end
"#
        ),
    );
    let scan = lua(
        dir.path(),
        "scan.lua",
        &format!(
            r#"
wrk.headers["Authorization"] = "Bearer {scim_token}"
request = function()
  return wrk.format("GET", "/scim/v2/Users?filter=name.familyName%20eq%20%22N04242%22")
end
"#
        ),
    );
    let baseline = wrk::run(&["-t1", "-c4", "-d5s"], &format!("{base}/healthz"));
    let by_name = wrk::run(&["-t1", "-c4", "-d5s", "-s", &lookup], &base);
    let scanned = wrk::run(&["-t1", "-c4", "-d5s", "-s", &scan], &base);
    println!(
        "push: {USERS} users in {:.1} s ({:.0} POST/s, 4 at a time); {GROUPS} groups of {} members in {:.1} s",
        users_time.as_secs_f64(),
        USERS as f64 / users_time.as_secs_f64(),
        USERS / GROUPS,
        groups_time.as_secs_f64()
    );
    println!(
        "plan: the reconcile after the push took {:.1} s: {summary}",
        plan_time.as_secs_f64()
    );
    println!(
        "{:<46} {:>10} {:>9} {:>9} {:>10}",
        "request (wrk, 4 connections, 5 s)", "req/s", "p50 ms", "p99 ms", "vs base"
    );
    for (label, m) in [
        ("baseline: GET /healthz", &baseline),
        ("GET /Users?filter=userName eq (indexed)", &by_name),
        ("GET /Users?filter=name.familyName eq (scan)", &scanned),
    ] {
        println!(
            "{label:<46} {:>10.0} {:>9.2} {:>9.2} {:>9.3}x",
            m.rps,
            m.p50,
            m.p99,
            m.rps / baseline.rps
        );
    }
    running.shutdown().await;
    sandbox.shutdown().await;
}
