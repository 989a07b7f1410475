//! `cargo bench -p roster-marketo --bench audit`
//!
//! An audit of a sandbox holding 2,000 users with 20 ms of latency injected into every call,
//! measured three ways in the same run:
//! - the lower bound: calls / 10 in flight x latency;
//! - Roster's audit (10 in flight, pipelined pages and role lookups);
//! - a sequential baseline: the same client with one call in flight.
//!
//! The rate limit is lifted on both sides here (the bound ignores it); under Marketo's real
//! 100 calls per 20 s an audit is rate-bound instead, and that figure is printed too. Each
//! way runs three times, alternating; the medians are reported (the call counts are exact).

use std::sync::Arc;
use std::time::{Duration, Instant};

use roster_domain::Secret;
use roster_marketo::audit::{self, Quiet};
use roster_marketo::{Client, ClientConfig};
use roster_sandbox::marketo::admin::{Admin, RoleAt};
use roster_sandbox::marketo::{self, Limits, MarketoConfig};

const USERS: usize = 2_000;
const SEEDED: usize = 9;
const LATENCY: Duration = Duration::from_millis(20);
const RUNS: usize = 3;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let users = env_usize("ROSTER_BENCH_USERS", USERS);
    let dir = tempfile::tempdir().unwrap();
    let admin = Admin::open(dir.path()).await.unwrap();
    let roles: Vec<RoleAt> = vec![
        "Standard User@Default".parse().unwrap(),
        "Marketing User@World".parse().unwrap(),
    ];
    admin
        .add_people("bench", "bench.example", users - SEEDED, &roles)
        .await
        .unwrap();
    admin.close().await;

    let mut config = MarketoConfig::new(dir.path());
    config.client_id = Some("bench".into());
    config.client_secret = Some(Secret::new("bench-secret-0123456789"));
    config.limits = Limits::unlimited();
    config.faults.latency = LATENCY;
    let sandbox = marketo::start(config).await.unwrap();

    let client_with = |in_flight: usize| {
        let mut c = ClientConfig::new(
            sandbox.base_url(),
            "bench",
            Secret::new("bench-secret-0123456789"),
        );
        c.max_in_flight = in_flight;
        c.rate_limit = u32::MAX;
        c.rate_window = Duration::from_secs(1);
        c.daily_quota = u64::MAX;
        Client::new(c, 0).unwrap()
    };

    let minimum = audit::minimum_calls(users);
    let (mut walls, mut seq_walls) = (Vec::new(), Vec::new());
    let (mut calls, mut seq_calls) = (0, 0);
    for _ in 0..RUNS {
        // Roster's audit.
        let client = client_with(10);
        let start = Instant::now();
        let result = audit::run(&client, Arc::new(Quiet)).await.unwrap();
        walls.push(start.elapsed());
        assert_eq!(result.users.len(), users);
        calls = result.stats.calls;
        assert_eq!(
            calls, minimum,
            "the audit must make exactly the minimum calls"
        );

        // The sequential baseline, same client code, one call in flight.
        let sequential = client_with(1);
        let start = Instant::now();
        let base = audit::run(&sequential, Arc::new(Quiet)).await.unwrap();
        seq_walls.push(start.elapsed());
        assert_eq!(base.users.len(), users);
        seq_calls = base.stats.calls;
    }
    walls.sort();
    seq_walls.sort();
    let (wall, seq_wall) = (walls[RUNS / 2], seq_walls[RUNS / 2]);
    let bound = LATENCY.mul_f64(calls as f64 / 10.0);

    let rate_bound = Duration::from_secs_f64(calls as f64 / 100.0 * 20.0);
    println!(
        "audit of {users} users, {} ms latency per call; median of {RUNS} runs (Roster: {:.2} to {:.2} s)",
        LATENCY.as_millis(),
        walls[0].as_secs_f64(),
        walls[RUNS - 1].as_secs_f64()
    );
    println!("| run | wall time | calls | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| lower bound (calls / 10 x latency) | {:.2} s | {calls} | 1.00x |",
        bound.as_secs_f64()
    );
    println!(
        "| roster audit, 10 in flight | {:.2} s | {calls} (minimum {minimum}) | {:.2}x the bound |",
        wall.as_secs_f64(),
        wall.as_secs_f64() / bound.as_secs_f64()
    );
    println!(
        "| sequential baseline, 1 in flight | {:.2} s | {} | {:.2}x the bound; roster is {:.1}x faster |",
        seq_wall.as_secs_f64(),
        seq_calls,
        seq_wall.as_secs_f64() / bound.as_secs_f64(),
        seq_wall.as_secs_f64() / wall.as_secs_f64()
    );
    println!(
        "under Marketo's real 100 calls / 20 s, the same audit is rate-bound: at least {:.0} s",
        rate_bound.as_secs_f64()
    );
    sandbox.shutdown().await;
}
