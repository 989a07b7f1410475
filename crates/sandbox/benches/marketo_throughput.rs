//! Throughput of the Marketo sandbox's reads, measured by an external load generator (wrk,
//! a separate process, so the client does not share this process's runtime or flatter the
//! baseline), against a bare axum handler measured in the same run: the same HTTP stack
//! answering a small JSON body with no token check, no state and no SQLite. Each target is
//! loaded three times; the median is reported, as a ratio to the bare handler's.
//!
//! Run: `cargo bench -p roster-sandbox --bench marketo_throughput` (needs `wrk`:
//! `apt-get install wrk`). Options: `-- --seconds S --connections C`.

use std::process::Command;

use roster_domain::Secret;
use roster_sandbox::marketo::{self, Limits, MarketoConfig};
use serde_json::json;

const RUNS: usize = 3;

struct Options {
    seconds: u64,
    connections: usize,
    users: usize,
}

fn options() -> Options {
    let mut opts = Options {
        seconds: 4,
        connections: 32,
        users: 400,
    };
    let args: Vec<String> = std::env::args().collect();
    for pair in args.windows(2) {
        match (pair[0].as_str(), pair[1].parse::<u64>()) {
            ("--seconds", Ok(v)) => opts.seconds = v,
            ("--connections", Ok(v)) => opts.connections = v as usize,
            ("--users", Ok(v)) => opts.users = v as usize,
            _ => {}
        }
    }
    opts
}

struct Load {
    per_second: f64,
    p50: String,
    p99: String,
}

/// Runs wrk against `url` and reads its report.
fn wrk(url: &str, token: &str, opts: &Options) -> Load {
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{}", opts.connections),
            &format!("-d{}s", opts.seconds),
            "--latency",
            "-H",
            &format!("Authorization: Bearer {token}"),
            url,
        ])
        .output()
        .expect("wrk runs (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "wrk failed: {text}");
    assert!(
        !text.contains("Non-2xx"),
        "{url} answered errors under load:\n{text}"
    );
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .map(|v| v.split_whitespace().next().unwrap_or("").to_string())
            .unwrap_or_else(|| panic!("no {prefix:?} in wrk's report:\n{text}"))
    };
    Load {
        per_second: field("Requests/sec:").parse().unwrap(),
        p50: field("50%"),
        p99: field("99%"),
    }
}

fn median(url: &str, token: &str, opts: &Options) -> Load {
    let mut runs: Vec<Load> = (0..RUNS).map(|_| wrk(url, token, opts)).collect();
    runs.sort_by(|a, b| a.per_second.total_cmp(&b.per_second));
    runs.swap_remove(RUNS / 2)
}

fn main() {
    let opts = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // Kept for the whole run: the sandbox's database lives in it.
    let dir = tempfile::tempdir().unwrap();
    let (sandbox, bare, token) = runtime.block_on(async {
        let mut config = MarketoConfig::new(dir.path());
        config.client_id = Some("bench".into());
        config.client_secret = Some(Secret::new("bench-secret"));
        config.limits = Limits::unlimited();
        let sandbox = marketo::start(config).await.unwrap();
        // The bare handler: the same axum and tokio, nothing else.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let bare = format!("http://{}/", listener.local_addr().unwrap());
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(|| async {
                axum::Json(json!({"id": 1, "userid": "bare@acme.example"}))
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let base = sandbox.base_url().to_owned();
        let http = roster_http::client();
        let token: serde_json::Value = http
            .get(format!("{base}/identity/oauth/token?grant_type=client_credentials&client_id=bench&client_secret=bench-secret"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = token["access_token"].as_str().unwrap().to_owned();
        let users = format!("{base}/userservice/management/v1/users");
        for i in 0..opts.users {
            let resp = http
                .post(format!("{users}/invite.json"))
                .bearer_auth(&token)
                .json(&json!({"emailAddress": format!("bench{i}@acme.example"), "firstName": "Bench", "lastName": "User",
                    "apiOnly": true, "userRoleWorkspaces": [{"accessRoleId": 2, "workspaceId": 1}, {"accessRoleId": 101, "workspaceId": 1010}]}))
                .send()
                .await
                .unwrap();
            assert!(resp.status().is_success());
        }
        (sandbox, bare, token)
    });
    let base = sandbox.base_url().to_owned();
    let users = format!("{base}/userservice/management/v1/users");
    println!(
        "Marketo sandbox throughput under wrk (separate process): 2 threads, {} connections, {} s per run, median of {RUNS} runs, {} users, {} cores",
        opts.connections,
        opts.seconds,
        opts.users + 9,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let targets = [
        ("bare axum handler (baseline)", bare.clone()),
        (
            "GET {userid}/user.json",
            format!("{users}/grace.hopper%40acme.example/user.json"),
        ),
        (
            "GET allusers.json (20 per page)",
            format!("{users}/allusers.json?pageOffset=100"),
        ),
    ];
    let results: Vec<(&str, Load)> = targets
        .iter()
        .map(|(name, url)| (*name, median(url, &token, &opts)))
        .collect();
    let baseline = results[0].1.per_second;
    println!("| target | req/s | vs bare handler | p50 | p99 |");
    println!("|---|---:|---:|---:|---:|");
    for (name, r) in &results {
        println!(
            "| {name} | {:.0} | {:.2}x | {} | {} |",
            r.per_second,
            r.per_second / baseline,
            r.p50,
            r.p99
        );
    }
    runtime.block_on(sandbox.shutdown());
    drop(dir);
}
