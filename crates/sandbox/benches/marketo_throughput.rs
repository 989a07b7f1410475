//! Throughput of the Marketo sandbox for `user.json` reads and `allusers.json` pages, with
//! latency injection off and limits lifted, against a baseline measured in the same run:
//! `/sandbox/health`, which goes through the same HTTP stack but touches neither the token
//! check nor SQLite. Figures are reported as ratios to that baseline.
//!
//! Run: `cargo bench -p roster-sandbox --bench marketo_throughput [-- --requests N --concurrency C]`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use roster_domain::Secret;
use roster_sandbox::marketo::{self, Limits, MarketoConfig};
use serde_json::json;

struct Options {
    requests: usize,
    concurrency: usize,
    users: usize,
}

fn options() -> Options {
    let mut opts = Options {
        requests: 20_000,
        concurrency: 8,
        users: 400,
    };
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let value = args.get(i + 1).and_then(|v| v.parse().ok());
        match (args[i].as_str(), value) {
            ("--requests", Some(v)) => opts.requests = v,
            ("--concurrency", Some(v)) => opts.concurrency = v,
            ("--users", Some(v)) => opts.users = v,
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    opts
}

struct Result {
    name: &'static str,
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

async fn measure(name: &'static str, url: String, token: Arc<String>, opts: &Options) -> Result {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.concurrency)
        .build()
        .unwrap();
    // Warm up connections and caches.
    for _ in 0..opts.concurrency * 4 {
        assert!(
            client
                .get(&url)
                .bearer_auth(token.as_str())
                .send()
                .await
                .unwrap()
                .status()
                .is_success()
        );
    }
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..opts.concurrency {
        let (client, url, token, next) = (client.clone(), url.clone(), token.clone(), next.clone());
        let total = opts.requests;
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let t = Instant::now();
                let resp = client
                    .get(&url)
                    .bearer_auth(token.as_str())
                    .send()
                    .await
                    .unwrap();
                assert!(resp.status().is_success(), "{url}: {}", resp.status());
                let _ = resp.bytes().await.unwrap();
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    Result {
        name,
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: pct(0.5),
        p99: pct(0.99),
    }
}

fn main() {
    let opts = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut config = MarketoConfig::new(dir.path());
        config.client_id = Some("bench".into());
        config.client_secret = Some(Secret::new("bench-secret"));
        config.limits = Limits::unlimited();
        let sandbox = marketo::start(config).await.unwrap();
        let base = sandbox.base_url().to_owned();
        let http = reqwest::Client::new();
        let token: serde_json::Value = http
            .get(format!("{base}/identity/oauth/token?grant_type=client_credentials&client_id=bench&client_secret=bench-secret"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = Arc::new(token["access_token"].as_str().unwrap().to_owned());
        let users = format!("{base}/userservice/management/v1/users");
        for i in 0..opts.users {
            let resp = http
                .post(format!("{users}/invite.json"))
                .bearer_auth(token.as_str())
                .json(&json!({"emailAddress": format!("bench{i}@acme.example"), "firstName": "Bench", "lastName": "User",
                    "apiOnly": true, "userRoleWorkspaces": [{"accessRoleId": 2, "workspaceId": 1}, {"accessRoleId": 101, "workspaceId": 1010}]}))
                .send()
                .await
                .unwrap();
            assert!(resp.status().is_success());
        }
        println!(
            "Marketo sandbox throughput: {} requests per target, {} concurrent clients, {} users, latency injection off, {} cores",
            opts.requests,
            opts.concurrency,
            opts.users + 9,
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        );
        let results = vec![
            measure("baseline GET /sandbox/health", format!("{base}/sandbox/health"), token.clone(), &opts).await,
            measure("GET {userid}/user.json", format!("{users}/grace.hopper%40acme.example/user.json"), token.clone(), &opts).await,
            measure("GET allusers.json (20 per page)", format!("{users}/allusers.json?pageOffset=100"), token.clone(), &opts).await,
            measure("GET allusers.json?pageSize=200", format!("{users}/allusers.json?pageSize=200&pageOffset=200"), token.clone(), &opts).await,
        ];
        let baseline = results[0].per_second;
        println!("{:<34} {:>10} {:>12} {:>10} {:>10}", "target", "req/s", "vs baseline", "p50", "p99");
        for r in &results {
            println!(
                "{:<34} {:>10.0} {:>11.2}x {:>8.2}ms {:>8.2}ms",
                r.name,
                r.per_second,
                r.per_second / baseline,
                r.p50.as_secs_f64() * 1000.0,
                r.p99.as_secs_f64() * 1000.0
            );
        }
        sandbox.shutdown().await;
    });
}
