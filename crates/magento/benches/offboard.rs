//! `cargo bench -p roster-magento --bench offboard`
//!
//! Deleting ROSTER_BENCH_LEAVERS (default 300) customers, two ways, in the same run against
//! the same sandbox settings (100 ms per REST call, the bulk consumer at 100 operations per
//! second): through the async bulk API (`DELETE /async/bulk/V1/customers/byCustomerId`,
//! chunks of 300, polled by the count of open operations), and the baseline of one `DELETE
//! /V1/customers/{id}` each. Each way runs three times on a fresh store; the median is
//! reported with its calls.

use std::time::{Duration, Instant};

use roster_domain::Secret;
use roster_magento::{Client, ClientConfig, Criteria};
use roster_sandbox::magento::{self, MagentoConfig, MagentoFaults, RunningMagento};

const RUNS: usize = 3;

async fn store(dir: &std::path::Path, n: usize) -> RunningMagento {
    let mut c = MagentoConfig::new(dir);
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.admin_user = Some("bench".into());
    c.admin_password = Some(Secret::new("Bench-Pass-1"));
    c.customers = n;
    c.bulk_rate = Some(100.0);
    c.faults = MagentoFaults {
        latency: Duration::from_millis(100),
        ..MagentoFaults::default()
    };
    magento::start(c).await.unwrap()
}

fn client(s: &RunningMagento) -> Client {
    let mut c = ClientConfig::new(s.base_url(), "bench", Secret::new("Bench-Pass-1"));
    c.page_size = 300;
    c.bulk_chunk = 300;
    c.poll_interval = Duration::from_millis(100);
    Client::new(c).unwrap()
}

struct Figures {
    wall: Duration,
    calls: u64,
}

fn median(mut runs: Vec<Figures>) -> Figures {
    runs.sort_by_key(|f| f.wall);
    runs.swap_remove(RUNS / 2)
}

/// Deletes every customer of a fresh store of `n`, in bulk or one by one.
async fn offboard(n: usize, bulk: bool) -> Figures {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), n).await;
    let c = client(&s);
    let ids: Vec<i64> = c
        .customers(&Criteria::new(), |_, _| {})
        .await
        .unwrap()
        .iter()
        .map(|x| x["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), n);
    let before = c.stats().calls;
    let start = Instant::now();
    if bulk {
        let outcome = c.bulk_delete(&ids, |_, _| {}).await.unwrap();
        assert_eq!(
            outcome.complete,
            n,
            "{:?}",
            &outcome.failed[..outcome.failed.len().min(3)]
        );
    } else {
        for id in &ids {
            c.delete_customer(*id).await.unwrap();
        }
    }
    let figures = Figures {
        wall: start.elapsed(),
        calls: c.stats().calls - before,
    };
    s.shutdown().await;
    figures
}

#[tokio::main]
async fn main() {
    let n = std::env::var("ROSTER_BENCH_LEAVERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let (mut bulk, mut one) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        bulk.push(offboard(n, true).await);
        one.push(offboard(n, false).await);
    }
    let (bulk, one) = (median(bulk), median(one));
    println!(
        "deleting {n} customers, 100 ms per REST call, bulk consumer 100 ops/s; median of {RUNS} runs"
    );
    println!("| way | wall time | calls | vs baseline |");
    println!("|---|---:|---:|---:|");
    println!(
        "| one DELETE per customer (baseline) | {:.2} s | {} | 1.00x |",
        one.wall.as_secs_f64(),
        one.calls
    );
    println!(
        "| bulk DELETE, chunks of 300, polled by open count | {:.2} s | {} | {:.1}x faster, {:.3}x the calls |",
        bulk.wall.as_secs_f64(),
        bulk.calls,
        one.wall.as_secs_f64() / bulk.wall.as_secs_f64(),
        bulk.calls as f64 / one.calls as f64
    );
}
