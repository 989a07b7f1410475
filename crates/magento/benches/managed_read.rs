//! `cargo bench -p roster-magento --bench managed_read`
//!
//! What a plan's customer read costs when Roster manages a few of a large store's
//! customers, in the same run, against the same sandbox settings (100 ms per REST call,
//! what PHP's bootstrap costs a real store; pages of 300):
//!
//! - the managed read: `email like %@acme.example` as one filter group, only the fields
//!   planning uses (`fields=items[...],total_count`), against a store of
//!   ROSTER_BENCH_STORE (default 100,000) customers of which ROSTER_BENCH_MANAGED (default
//!   1,000) are managed;
//! - its baseline: the same read against a store holding only the managed customers;
//! - a read of every customer of the large store, page by page (the sequential baseline),
//!   and with pages after the first read four at a time.
//!
//! Each read runs three times (ROSTER_BENCH_RUNS), alternating, and the median is reported
//! with its calls.
//! Memory is not reported: the sandbox runs in the same process.

use std::time::{Duration, Instant};

use roster_domain::Secret;
use roster_magento::{Client, ClientConfig, Condition, Criteria};
use roster_sandbox::magento::{self, MagentoConfig, MagentoFaults, RunningMagento};
use serde_json::json;

/// Runs of each read (ROSTER_BENCH_RUNS, default 3; a million-customer store takes one).
fn runs() -> usize {
    std::env::var("ROSTER_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1)
}
const LATENCY: Duration = Duration::from_millis(100);
const FIELDS: [&str; 6] = [
    "id",
    "email",
    "firstname",
    "lastname",
    "group_id",
    "website_id",
];

/// A store of `unmanaged` seeded customers (example.com) and `managed` ones at
/// acme.example, served with `latency` per call once set up.
async fn store(dir: &std::path::Path, unmanaged: usize, managed: usize) -> RunningMagento {
    let config = |latency: Duration| {
        let mut c = MagentoConfig::new(dir);
        c.listen = "127.0.0.1:0".parse().unwrap();
        c.admin_user = Some("bench".into());
        c.admin_password = Some(Secret::new("Bench-Pass-1"));
        c.customers = unmanaged;
        c.faults = MagentoFaults {
            latency,
            ..MagentoFaults::default()
        };
        c
    };
    // Set up without latency, then served again from the same files with it.
    let setup = magento::start(config(Duration::ZERO)).await.unwrap();
    let c = client(&setup, 300);
    let bodies: Vec<serde_json::Value> = (0..managed)
        .map(|i| json!({"email": format!("staff{i:05}@acme.example"), "firstname": "Staff", "lastname": format!("{i}"), "website_id": 1, "group_id": 1}))
        .collect();
    for chunk in bodies.chunks(16) {
        let creations = chunk.iter().map(|b| c.create_customer(b.clone(), None));
        for r in futures_util::future::join_all(creations).await {
            r.unwrap();
        }
    }
    setup.shutdown().await;
    magento::start(config(LATENCY)).await.unwrap()
}

fn client(s: &RunningMagento, page_size: usize) -> Client {
    let mut c = ClientConfig::new(s.base_url(), "bench", Secret::new("Bench-Pass-1"));
    c.page_size = page_size;
    Client::new(c).unwrap()
}

struct Figures {
    wall: Duration,
    calls: u64,
    customers: usize,
}

fn median(mut runs: Vec<Figures>) -> Figures {
    runs.sort_by_key(|f| f.wall);
    let middle = runs.len() / 2;
    runs.swap_remove(middle)
}

async fn read(s: &RunningMagento, criteria: &Criteria, concurrency: usize) -> Figures {
    let c = client(s, 300);
    // Signing in is not the read's cost: once, before the clock starts.
    c.groups().await.unwrap();
    let before = c.stats().calls;
    let start = Instant::now();
    let customers = c
        .customers_mapped(
            criteria,
            Some(&FIELDS),
            concurrency,
            |v| v["id"].as_i64(),
            |_, _| {},
        )
        .await
        .unwrap();
    Figures {
        wall: start.elapsed(),
        calls: c.stats().calls - before,
        customers: customers.len(),
    }
}

#[tokio::main]
async fn main() {
    let env = |k: &str, default: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (store_size, managed) = (
        env("ROSTER_BENCH_STORE", 100_000),
        env("ROSTER_BENCH_MANAGED", 1_000),
    );
    let big_dir = tempfile::tempdir().unwrap();
    let small_dir = tempfile::tempdir().unwrap();
    let seeding = Instant::now();
    let big = store(big_dir.path(), store_size, managed).await;
    let seeded = seeding.elapsed();
    let small = store(small_dir.path(), 0, managed).await;
    let managed_only = Criteria::new().any(vec![(
        "email".into(),
        Condition::Like,
        "%@acme.example".into(),
    )]);
    let everyone = Criteria::new();
    let (mut filtered, mut baseline, mut sequential, mut concurrent) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs() {
        filtered.push(read(&big, &managed_only, 4).await);
        baseline.push(read(&small, &everyone, 4).await);
        sequential.push(read(&big, &everyone, 1).await);
        concurrent.push(read(&big, &everyone, 4).await);
    }
    let (filtered, baseline, sequential, concurrent) = (
        median(filtered),
        median(baseline),
        median(sequential),
        median(concurrent),
    );
    assert_eq!(filtered.customers, managed);
    assert_eq!(baseline.customers, managed);
    assert_eq!(sequential.customers, store_size + managed);
    assert_eq!(concurrent.customers, store_size + managed);
    println!(
        "customer reads, {} ms per REST call, pages of 300; a store of {} customers, {managed} managed (seeded in {:.1} s); median of {} runs",
        LATENCY.as_millis(),
        store_size + managed,
        seeded.as_secs_f64(),
        runs()
    );
    println!("| read | customers | calls | wall time | vs its baseline |");
    println!("|---|---:|---:|---:|---:|");
    let row = |name: &str, f: &Figures, base: &Figures| {
        println!(
            "| {name} | {} | {} | {:.2} s | {:.2}x |",
            f.customers,
            f.calls,
            f.wall.as_secs_f64(),
            f.wall.as_secs_f64() / base.wall.as_secs_f64()
        );
    };
    row(
        "a store of only the managed customers, all read (baseline)",
        &baseline,
        &baseline,
    );
    row(
        "the large store, managed_domains filter",
        &filtered,
        &baseline,
    );
    row(
        "the large store, every customer, page by page (baseline)",
        &sequential,
        &sequential,
    );
    row(
        "the large store, every customer, 4 pages at a time",
        &concurrent,
        &sequential,
    );
    big.shutdown().await;
    small.shutdown().await;
}
