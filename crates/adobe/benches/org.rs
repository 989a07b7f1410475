//! `cargo bench -p roster-adobe --bench org`
//!
//! An Adobe organization of 20,000 users, all holding the Marketo Engage production profile,
//! read as a plan of an IMS subscription reads it (the profile's members) and as an audit
//! reads it (every user), with 20 ms of latency on every call, measured in the same run
//! against two figures:
//! - the minimum number of calls: one per page of 2,000 (Adobe's page size);
//! - the bound: the same pages fetched by a bare HTTP client (one GET each, no retries,
//!   pacing or decoding into users), plus the waiting the per-client limit (user reads: 25
//!   a minute) forces, a whole minute for each 25 calls past the first 25.
//!
//! Each read runs three times with a fresh client; medians are reported (call counts are
//! exact). The sandbox's own limits are lifted: the client paces itself under Adobe's.

use std::time::{Duration, Instant};

use roster_adobe::{AdobeConfig, Client};
use roster_domain::Secret;
use roster_sandbox::adobe::{self, AdobeConfig as SandboxConfig, AdobeLimits};

const USERS: usize = 20_000;
const PAGE: usize = 2_000;
const LATENCY: Duration = Duration::from_millis(20);
const RUNS: usize = 3;
const PROFILE: &str = "Marketo Engage - Production";
const SECRET: &str = "bench-secret-0123";

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let users: usize = std::env::var("ROSTER_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(USERS);
    let dir = tempfile::tempdir().unwrap();
    let mut config = SandboxConfig::new(dir.path());
    config.client_id = Some("bench".into());
    config.client_secret = Some(Secret::new(SECRET));
    config.limits = AdobeLimits::unlimited();
    let sandbox = adobe::start(config).await.unwrap();
    let seeded = {
        let admin = adobe::admin::Admin::open(dir.path()).await.unwrap();
        let seeded = admin.list().await.unwrap().len();
        admin
            .add_people(
                "bench",
                "acme.example",
                users - seeded,
                &[PROFILE.to_string()],
            )
            .await
            .unwrap();
        admin.close().await;
        seeded
    };
    sandbox.shutdown().await;
    // Restarted with latency on every call.
    let mut config = SandboxConfig::new(dir.path());
    config.client_id = Some("bench".into());
    config.client_secret = Some(Secret::new(SECRET));
    config.limits = AdobeLimits::unlimited();
    config.faults.latency = LATENCY;
    let sandbox = adobe::start(config).await.unwrap();
    let client = || {
        let mut c = AdobeConfig::new(
            sandbox.credentials().org_id.clone(),
            "bench",
            Secret::new(SECRET),
        );
        c.umapi_url = sandbox.base_url().to_string();
        c.ims_url = sandbox.base_url().to_string();
        Client::new(c).unwrap()
    };
    let limit = roster_adobe::AdobeConfig::new("o", "c", Secret::new("s"))
        .limits
        .users as u64;
    let minimum = users.div_ceil(PAGE) as u64;
    // The baseline: each page fetched with a bare client, timed per read.
    let http = roster_http::client();
    let token: serde_json::Value = http
        .post(format!("{}/ims/token/v3", sandbox.base_url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "bench"),
            ("client_secret", SECRET),
            ("scope", "openid,AdobeID,user_management_sdk"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_string();
    let org = sandbox.credentials().org_id.clone();
    let bare = |profile_only: bool| {
        let (http, token, org, base) = (
            http.clone(),
            token.clone(),
            org.clone(),
            sandbox.base_url().to_string(),
        );
        async move {
            let start = Instant::now();
            for page in 0..minimum {
                let url = if profile_only {
                    format!("{base}/v2/usermanagement/users/{org}/{page}/{PROFILE}")
                } else {
                    format!("{base}/v2/usermanagement/users/{org}/{page}?directOnly=true")
                };
                let body = http
                    .get(url)
                    .bearer_auth(&token)
                    .header("X-Api-Key", "bench")
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                assert!(body.len() > 1000);
            }
            start.elapsed()
        }
    };
    let limit_wait = |calls: u64| Duration::from_secs(60 * (calls.saturating_sub(1) / limit));

    println!(
        "Adobe organization of {users} users ({} seeded), {} ms latency per call, pages of {PAGE}, user reads limited to {limit} a minute",
        seeded,
        LATENCY.as_millis()
    );
    println!("| read | calls | minimum | wall (median of {RUNS}) | bound | wall / bound |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, profile_only) in [
        ("a plan's read: the profile's members", true),
        ("an audit's read: every user", false),
    ] {
        let mut walls = Vec::new();
        let mut bares = Vec::new();
        let mut calls = 0;
        for _ in 0..RUNS {
            bares.push(bare(profile_only).await);
            let c = client();
            let start = Instant::now();
            let read = if profile_only {
                c.group_members(PROFILE).await.unwrap().unwrap()
            } else {
                c.users().await.unwrap()
            };
            walls.push(start.elapsed());
            assert!(read.len() >= users - seeded, "{} read", read.len());
            calls = c.stats().calls;
        }
        assert_eq!(calls, minimum, "{name}: {calls} calls, minimum {minimum}");
        let wall = median(walls);
        let b = median(bares) + limit_wait(calls);
        println!(
            "| {name} | {calls} | {minimum} | {:.2} s | {:.2} s | {:.2}x |",
            wall.as_secs_f64(),
            b.as_secs_f64(),
            wall.as_secs_f64() / b.as_secs_f64()
        );
    }
    sandbox.shutdown().await;
}
