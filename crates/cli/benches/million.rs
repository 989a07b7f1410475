//! `cargo bench -p roster-cli --bench million`
//!
//! `roster plan` (the real binary, its own process) against a Magento sandbox holding
//! ROSTER_BENCH_STORE (default 1,000,000) storefront customers plus ROSTER_BENCH_MANAGED
//! (default 1,000) staff at acme.example, which the roster lists with
//! `policies.magento.managed_domains: [acme.example]`; 100 ms per REST call. Measured in the
//! same run against the same plan on a store holding only the staff (the baseline): wall
//! time, the calls the sandbox served, and the plan's peak memory (`/usr/bin/time -f %M`,
//! where it exists). Each plan runs three times, alternating; medians. Also reported: how
//! long the sandbox took to seed the store, and one managed search against it.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use roster_domain::Secret;
use roster_sandbox::magento::{self, MagentoConfig, MagentoFaults, RunningMagento};
use serde_json::{Value, json};

const RUNS: usize = 3;
const LATENCY: Duration = Duration::from_millis(100);

fn env(k: &str, default: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config(dir: &Path, customers: usize, latency: Duration) -> MagentoConfig {
    let mut c = MagentoConfig::new(dir);
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.admin_user = Some("bench".into());
    c.admin_password = Some(Secret::new("Bench-Pass-1"));
    c.customers = customers;
    c.faults = MagentoFaults {
        latency,
        ..MagentoFaults::default()
    };
    c
}

/// A store of `unmanaged` seeded customers and `managed` staff, served with the latency;
/// how long seeding took.
async fn store(dir: &Path, unmanaged: usize, managed: usize) -> (RunningMagento, Duration) {
    let seeding = Instant::now();
    let setup = magento::start(config(dir, unmanaged, Duration::ZERO))
        .await
        .unwrap();
    let seeded = seeding.elapsed();
    let mut c =
        roster_magento::ClientConfig::new(setup.base_url(), "bench", Secret::new("Bench-Pass-1"));
    c.allow_insecure_http = true;
    let client = roster_magento::Client::new(c).unwrap();
    let bodies: Vec<Value> = (0..managed)
        .map(|i| json!({"email": format!("staff{i:05}@acme.example"), "firstname": "Staff", "lastname": format!("Number{i}"), "website_id": 1, "group_id": 1}))
        .collect();
    for chunk in bodies.chunks(16) {
        let made = chunk
            .iter()
            .map(|b| client.create_customer(b.clone(), None));
        for r in futures_util::future::join_all(made).await {
            r.unwrap();
        }
    }
    setup.shutdown().await;
    let served = magento::start(config(dir, unmanaged, LATENCY))
        .await
        .unwrap();
    (served, seeded)
}

fn roster_file(dir: &Path, managed: usize) -> std::path::PathBuf {
    let mut text = String::from(
        "policies:\n  magento:\n    managed_domains: [acme.example]\n    unlisted: report\npeople:\n",
    );
    for i in 0..managed {
        text.push_str(&format!(
            "  - email: staff{i:05}@acme.example\n    first_name: Staff\n    last_name: Number{i}\n    access:\n      magento: {{ group: General }}\n"
        ));
    }
    let path = dir.join("staff.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

struct Figures {
    wall: Duration,
    calls: u64,
    peak_kib: Option<u64>,
}

async fn served(s: &RunningMagento) -> u64 {
    let v: Value = roster_http::client()
        .get(format!("{}/sandbox/stats", s.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["rest_calls"]
        .as_u64()
        .expect("the sandbox counts its REST calls")
}

async fn plan(s: &RunningMagento, roster: &Path, state: &Path) -> Figures {
    let timed = Path::new("/usr/bin/time").exists();
    let mut cmd = if timed {
        let mut c = Command::new("/usr/bin/time");
        c.args(["-f", "peak-kib %M"])
            .arg(env!("CARGO_BIN_EXE_roster"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_roster"))
    };
    cmd.arg("--state")
        .arg(state)
        .args(["--allow-insecure-http", "plan"])
        .arg(roster)
        .env("ROSTER_MAGENTO_URL", s.base_url())
        .env("ROSTER_MAGENTO_USERNAME", "bench")
        .env("ROSTER_MAGENTO_PASSWORD", "Bench-Pass-1")
        .env("NO_COLOR", "1");
    let before = served(s).await;
    let start = Instant::now();
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let wall = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "roster plan failed: {stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Nothing to do"), "{stdout}");
    let peak_kib = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak-kib "))
        .and_then(|n| n.trim().parse().ok());
    Figures {
        wall,
        calls: served(s).await - before,
        peak_kib,
    }
}

fn median(mut runs: Vec<Figures>) -> Figures {
    runs.sort_by_key(|f| f.wall);
    runs.swap_remove(RUNS / 2)
}

#[tokio::main]
async fn main() {
    let (size, managed) = (
        env("ROSTER_BENCH_STORE", 1_000_000),
        env("ROSTER_BENCH_MANAGED", 1_000),
    );
    let (big_dir, small_dir, work) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (big, seeded) = store(big_dir.path(), size, managed).await;
    let (small, _) = store(small_dir.path(), 0, managed).await;
    let roster = roster_file(work.path(), managed);
    // One managed search page against the large store, timed alone (latency included).
    let search = Instant::now();
    let page: Value = roster_http::client()
        .get(format!("{}/rest/all/V1/customers/search", big.base_url()))
        .query(&[
            (
                "searchCriteria[filterGroups][0][filters][0][field]",
                "email",
            ),
            (
                "searchCriteria[filterGroups][0][filters][0][value]",
                "%@acme.example",
            ),
            (
                "searchCriteria[filterGroups][0][filters][0][conditionType]",
                "like",
            ),
            ("searchCriteria[pageSize]", "300"),
        ])
        .bearer_auth(admin_token(&big).await)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let searched = search.elapsed();
    assert_eq!(page["total_count"], managed);
    let (mut on_big, mut on_small) = (Vec::new(), Vec::new());
    for run in 0..RUNS {
        let state = work.path().join(format!("state{run}"));
        on_big.push(plan(&big, &roster, &state.join("big")).await);
        on_small.push(plan(&small, &roster, &state.join("small")).await);
    }
    let (on_big, on_small) = (median(on_big), median(on_small));
    let mib = |f: &Figures| {
        f.peak_kib.map_or("not measured".into(), |k| {
            format!("{:.0} MiB", k as f64 / 1024.0)
        })
    };
    println!(
        "roster plan of {managed} managed customers, {} ms per REST call, pages of 300; median of {RUNS} runs",
        LATENCY.as_millis()
    );
    println!(
        "the sandbox seeded {size} customers in {:.0} s; one managed search page (LIKE %@acme.example) against them answered in {:.2} s",
        seeded.as_secs_f64(),
        searched.as_secs_f64()
    );
    println!("| store | calls served | wall time | vs the baseline | peak memory of roster plan |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| only the {managed} managed customers (baseline) | {} | {:.2} s | 1.00x | {} |",
        on_small.calls,
        on_small.wall.as_secs_f64(),
        mib(&on_small)
    );
    println!(
        "| {} customers, {managed} managed | {} | {:.2} s | {:.2}x | {} |",
        size + managed,
        on_big.calls,
        on_big.wall.as_secs_f64(),
        on_big.wall.as_secs_f64() / on_small.wall.as_secs_f64(),
        mib(&on_big)
    );
    big.shutdown().await;
    small.shutdown().await;
}

async fn admin_token(s: &RunningMagento) -> String {
    roster_http::client()
        .post(format!("{}/rest/V1/integration/admin/token", s.base_url()))
        .json(&json!({"username": "bench", "password": "Bench-Pass-1"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}
