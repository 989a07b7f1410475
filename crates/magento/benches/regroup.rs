//! `cargo bench -p roster-magento --bench regroup`
//!
//! Moves every customer of a Magento sandbox to another group, two ways, in the same run:
//! through the async bulk API (each search page of 300 submitted as one bulk as soon as it is
//! read, three submissions in flight, polled with backoff until every operation is final),
//! and the sequential baseline of one PUT per
//! customer (the search already returned each whole customer, so no GET). Each way runs
//! three times, alternating, and the median is reported.
//!
//! Two settings: no latency, 10,000 customers (ROSTER_BENCH_CUSTOMERS); and 100 ms per REST
//! call (what PHP's bootstrap costs a real store) with the bulk consumer at 100 operations per
//! second (10 ms per repository save), 300 customers (ROSTER_BENCH_LATENCY_CUSTOMERS), since
//! the baseline then takes 100 ms per customer.

use std::time::{Duration, Instant};

use roster_domain::Secret;
use roster_magento::{Client, ClientConfig, Criteria};
use roster_sandbox::magento::{self, MagentoConfig, MagentoFaults};
use serde_json::json;

const RUNS: usize = 3;

struct Figures {
    wall: Duration,
    calls: u64,
    polls: u64,
}

fn median(mut runs: Vec<Figures>) -> Figures {
    runs.sort_by_key(|f| f.wall);
    runs.swap_remove(RUNS / 2)
}

async fn measure(n: usize, latency: Duration, consumer_rate: Option<f64>) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = MagentoConfig::new(dir.path());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.admin_user = Some("bench".into());
    config.admin_password = Some(Secret::new("Bench-Pass-1"));
    config.customers = n;
    config.bulk_rate = consumer_rate;
    config.faults = MagentoFaults {
        latency,
        ..MagentoFaults::default()
    };
    let sandbox = magento::start(config).await.unwrap();
    let client = || {
        let mut c = ClientConfig::new(sandbox.base_url(), "bench", Secret::new("Bench-Pass-1"));
        c.page_size = 300;
        c.poll_interval = Duration::from_millis(100);
        Client::new(c).unwrap()
    };
    let (mut bulk_runs, mut seq_runs) = (Vec::new(), Vec::new());
    let mut group = 1;
    for _ in 0..RUNS {
        // Bulk: everyone to the other group.
        group = if group == 3 { 1 } else { 3 };
        let c = client();
        let start = Instant::now();
        let outcome = c
            .bulk_update_matching(
                &Criteria::new(),
                |m| m["group_id"] = json!(group),
                |_, _| {},
            )
            .await
            .unwrap();
        assert_eq!(
            outcome.complete,
            n,
            "{:?}",
            &outcome.failed[..outcome.failed.len().min(3)]
        );
        bulk_runs.push(Figures {
            wall: start.elapsed(),
            calls: c.stats().calls,
            polls: c.stats().polls,
        });

        // Baseline: everyone back, one PUT each.
        group = if group == 3 { 1 } else { 3 };
        let c = client();
        let start = Instant::now();
        let members = c.customers(&Criteria::new(), |_, _| {}).await.unwrap();
        for mut m in members {
            let id = m["id"].as_i64().unwrap();
            m["group_id"] = json!(group);
            c.put_customer(id, m).await.unwrap();
        }
        seq_runs.push(Figures {
            wall: start.elapsed(),
            calls: c.stats().calls,
            polls: 0,
        });
    }
    let (bulk, seq) = (median(bulk_runs), median(seq_runs));
    let consumer = consumer_rate.map_or("unlimited".to_string(), |r| format!("{r:.0} ops/s"));
    println!(
        "regroup of {n} customers, {} ms per REST call, bulk consumer {consumer}; median of {RUNS} runs",
        latency.as_millis()
    );
    println!("| run | wall time | calls (of which status polls) | vs baseline |");
    println!("|---|---:|---:|---:|");
    println!(
        "| sequential PUT per customer (baseline) | {:.2} s | {} | 1.00x |",
        seq.wall.as_secs_f64(),
        seq.calls
    );
    println!(
        "| async bulk, a bulk per search page of 300, 3 submits in flight | {:.2} s | {} ({} polls) | {:.1}x faster, {:.4}x the calls |",
        bulk.wall.as_secs_f64(),
        bulk.calls,
        bulk.polls,
        seq.wall.as_secs_f64() / bulk.wall.as_secs_f64(),
        bulk.calls as f64 / seq.calls as f64
    );
    println!();
    sandbox.shutdown().await;
}

#[tokio::main]
async fn main() {
    let env = |k: &str, default: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    measure(env("ROSTER_BENCH_CUSTOMERS", 10_000), Duration::ZERO, None).await;
    measure(
        env("ROSTER_BENCH_LATENCY_CUSTOMERS", 300),
        Duration::from_millis(100),
        Some(100.0),
    )
    .await;
}
