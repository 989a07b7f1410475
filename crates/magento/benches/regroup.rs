//! `cargo bench -p roster-magento --bench regroup`
//!
//! Moves 10,000 customers from one group to another in a Magento sandbox, two ways, in the
//! same run: through the async bulk API (chunks of 500, polled to completion), and the
//! sequential baseline of one GET and one PUT per customer. Reports wall time and calls.

use std::time::Instant;

use roster_domain::Secret;
use roster_magento::{Client, ClientConfig, Criteria};
use roster_sandbox::magento::{self, MagentoConfig};
use serde_json::{Map, json};

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("ROSTER_BENCH_CUSTOMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let mut config = MagentoConfig::new(dir.path());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.admin_user = Some("bench".into());
    config.admin_password = Some(Secret::new("Bench-Pass-1"));
    config.customers = n;
    let seeded = Instant::now();
    let sandbox = magento::start(config).await.unwrap();
    eprintln!(
        "seeded {n} customers in {:.1} s",
        seeded.elapsed().as_secs_f64()
    );
    let client = |page| {
        let mut c = ClientConfig::new(sandbox.base_url(), "bench", Secret::new("Bench-Pass-1"));
        c.page_size = page;
        Client::new(c).unwrap()
    };

    // Every customer is moved, once by each method: bulk to Retailer (3), then the baseline
    // back to General (1).
    let bulk = client(300);
    let start = Instant::now();
    let mut members = bulk.customers(&Criteria::new(), |_, _| {}).await.unwrap();
    for c in &mut members {
        c["group_id"] = json!(3);
    }
    let outcome = bulk.bulk_update(&members, |_, _| {}).await.unwrap();
    let bulk_wall = start.elapsed();
    assert_eq!(outcome.complete, members.len());
    let bulk_calls = bulk.stats().calls;

    let seq = client(300);
    let start = Instant::now();
    let moved = seq.customers(&Criteria::new(), |_, _| {}).await.unwrap();
    let mut changes = Map::new();
    changes.insert("group_id".into(), json!(1));
    let ids: Vec<i64> = moved.iter().map(|c| c["id"].as_i64().unwrap()).collect();
    for id in &ids {
        seq.update_customer(*id, &changes).await.unwrap();
    }
    let seq_wall = start.elapsed();
    let seq_calls = seq.stats().calls;
    eprintln!(
        "baseline retries: {}, bulk retries: {}",
        seq.stats().retries,
        bulk.stats().retries
    );

    println!(
        "regroup of {} customers ({} in the sandbox)",
        members.len(),
        n
    );
    println!("| run | wall time | calls | vs baseline |");
    println!("|---|---:|---:|---:|");
    println!(
        "| sequential GET + PUT per customer (baseline) | {:.2} s | {seq_calls} | 1.00x |",
        seq_wall.as_secs_f64()
    );
    println!(
        "| async bulk, chunks of 500, polled | {:.2} s | {bulk_calls} | {:.2}x the time, {:.3}x the calls |",
        bulk_wall.as_secs_f64(),
        bulk_wall.as_secs_f64() / seq_wall.as_secs_f64(),
        bulk_calls as f64 / seq_calls as f64
    );
    sandbox.shutdown().await;
}
