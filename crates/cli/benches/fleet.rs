//! `cargo bench -p roster-cli --bench fleet`
//!
//! One `roster serve` process reconciling 20 Marketo instances of 2,000 users each (20
//! sandboxes, 20 ms of latency per call, each enforcing its own rate and concurrency
//! limits), measured against, in the same run:
//! - each instance's own bound: its calls paced at its rate limit (or at 10 in flight x
//!   latency, whichever is slower);
//! - a baseline: the same service reconciling one such instance alone.
//!
//! Marketo's window is 100 calls per 20 s; here it is 100 calls per 2 s (both the
//! sandboxes and the service's pacing), so a run takes about 40 s instead of 7 minutes. The
//! pacing code is the same; only the window is shorter. Memory is the service process's
//! peak resident set (VmHWM), read from /proc.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use roster_domain::Secret;
use roster_sandbox::marketo::admin::{Admin, RoleAt};
use roster_sandbox::marketo::{self, Limits, MarketoConfig, RunningSandbox};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const SEEDED: usize = 9;
const LATENCY: Duration = Duration::from_millis(20);
const RATE: u32 = 100;
const IN_FLIGHT: u32 = 10;
const JOINERS: usize = 10;
const SECRET: &str = "fleet-bench-secret-0123456789";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn window() -> Duration {
    Duration::from_millis(env_usize("ROSTER_BENCH_WINDOW_MS", 2_000) as u64)
}

async fn sandbox(dir: &Path, users: usize) -> RunningSandbox {
    let admin = Admin::open(dir).await.unwrap();
    let roles: Vec<RoleAt> = vec![
        "Standard User@Default".parse().unwrap(),
        "Marketing User@World".parse().unwrap(),
    ];
    admin
        .add_people("bench", "bench.example", users - SEEDED, &roles)
        .await
        .unwrap();
    admin.close().await;
    let mut config = MarketoConfig::new(dir);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.client_id = Some("fleet".into());
    config.client_secret = Some(Secret::new(SECRET));
    config.limits = Limits {
        rate_limit: RATE,
        rate_window: window(),
        max_concurrent: IN_FLIGHT,
        daily_quota: 50_000,
    };
    config.faults.latency = LATENCY;
    marketo::start(config).await.unwrap()
}

struct Fleet {
    wall: Duration,
    /// Per instance: (name, calls).
    calls: Vec<(String, u64)>,
    /// 606 and 615 answers at the sandboxes.
    limited: u64,
    peak_rss_kib: u64,
}

fn roster_bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_roster"));
    cmd.env_remove("ROSTER_LOG");
    cmd
}

async fn limited(sandboxes: &[&RunningSandbox]) -> u64 {
    let mut n = 0;
    for s in sandboxes {
        let stats: Value = roster_http::client()
            .get(format!("{}/sandbox/stats", s.base_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        n += stats["rateLimited"].as_u64().unwrap() + stats["concurrencyLimited"].as_u64().unwrap();
    }
    n
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Runs `roster serve` over `sandboxes` until each has finished one reconcile.
async fn run_fleet(dir: &Path, sandboxes: &[&RunningSandbox]) -> Fleet {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("secret"), SECRET).unwrap();
    let mut roster = String::from(
        "policies:\n  marketo:\n    managed_domains: [bench.example]\n    unlisted: report\npeople:\n",
    );
    for j in 0..JOINERS {
        roster.push_str(&format!(
            "  - email: joiner{j}@bench.example\n    first_name: Joiner\n    last_name: N{j}\n    access:\n      marketo: [\"Standard User@Default\"]\n"
        ));
    }
    std::fs::write(dir.join("people.yaml"), roster).unwrap();
    let mut config = String::from("[service]\nlisten = \"127.0.0.1:0\"\n");
    for (i, s) in sandboxes.iter().enumerate() {
        config.push_str(&format!(
            "\n[marketo.i{i:02}]\nurl = \"{}\"\nclient_id = \"fleet\"\nclient_secret_file = \"secret\"\nroster = \"people.yaml\"\ninterval = \"1h\"\nrate_limit = {RATE}\nrate_window = \"{}ms\"\nmax_in_flight = {IN_FLIGHT}\n",
            s.base_url(),
            window().as_millis()
        ));
    }
    std::fs::write(dir.join("roster.toml"), config).unwrap();
    let env = |cmd: &mut Command| {
        cmd.env("ROSTER_CONFIG", dir.join("roster.toml"))
            .env("ROSTER_STATE", dir.join("state"))
            .env("HOME", dir);
    };
    let mut create = roster_bin();
    create.args([
        "serve",
        "token",
        "create",
        "--name",
        "bench",
        "--role",
        "viewer",
        "--service",
    ]);
    env(&mut create);
    let token = String::from_utf8(create.output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string();
    let mut serve = roster_bin();
    // ROSTER_BENCH_VERBOSE=1 shows the service's log.
    let log = if std::env::var_os("ROSTER_BENCH_VERBOSE").is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    };
    serve.arg("serve").stdout(Stdio::piped()).stderr(log);
    env(&mut serve);
    let mut child = serve.spawn().unwrap();
    let mut banner = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut banner)
        .unwrap();
    let base = banner
        .strip_prefix("roster serve: ")
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {banner:?}"))
        .to_string();
    let http = roster_http::client();
    let runs = loop {
        let body: Value = http
            .get(format!("{base}/api/v1/runs?limit=1000"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let runs = body["runs"].as_array().cloned().unwrap_or_default();
        let finished = runs.iter().filter(|r| r["outcome"] != "running").count();
        if finished >= sandboxes.len() {
            break runs;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let at = |v: &Value| OffsetDateTime::parse(v.as_str().unwrap(), &Rfc3339).unwrap();
    for r in &runs {
        assert!(
            r["outcome"] == "done",
            "a run did not finish cleanly: {r:#}"
        );
    }
    let start = runs.iter().map(|r| at(&r["started_at"])).min().unwrap();
    let end = runs.iter().map(|r| at(&r["finished_at"])).max().unwrap();
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let calls = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("roster_api_calls_total{instance=\""))
        .filter_map(|l| {
            let (name, rest) = l.split_once("\"}")?;
            Some((name.to_string(), rest.trim().parse::<f64>().ok()? as u64))
        })
        .collect();
    let peak = peak_rss_kib(child.id());
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    Fleet {
        wall: (end - start).try_into().unwrap(),
        calls,
        limited: limited(sandboxes).await,
        peak_rss_kib: peak,
    }
}

/// The least time `calls` can take on one instance: paced at RATE per window (the first
/// RATE at once), or at IN_FLIGHT in flight x latency.
fn bound(calls: u64) -> Duration {
    let windows = calls.div_ceil(u64::from(RATE)).saturating_sub(1) as u32;
    let paced = window() * windows;
    let in_flight = LATENCY * (calls.div_ceil(u64::from(IN_FLIGHT)) as u32);
    paced.max(in_flight)
}

#[tokio::main]
async fn main() {
    let instances = env_usize("ROSTER_BENCH_INSTANCES", 20);
    let users = env_usize("ROSTER_BENCH_USERS", 2_000);
    let dir = tempfile::tempdir().unwrap();
    eprintln!("seeding {} sandboxes of {users} users...", instances + 1);
    let mut sandboxes = Vec::new();
    for i in 0..=instances {
        sandboxes.push(sandbox(&dir.path().join(format!("sandbox-{i}")), users).await);
    }
    let (alone, fleet) = sandboxes.split_at(1);
    eprintln!("baseline: one instance alone...");
    let single = run_fleet(&dir.path().join("single"), &[&alone[0]]).await;
    eprintln!("the fleet: {instances} instances in one service...");
    let many = run_fleet(&dir.path().join("fleet"), &fleet.iter().collect::<Vec<_>>()).await;

    let single_calls = single.calls[0].1;
    let slowest = many.calls.iter().map(|(_, c)| *c).max().unwrap();
    let slowest_bound = bound(slowest);
    let total_calls: u64 = many.calls.iter().map(|(_, c)| c).sum();
    let secs = |d: Duration| d.as_secs_f64();
    println!(
        "{instances} Marketo instances x {users} users, {} ms latency, {RATE} calls per {} ms and {IN_FLIGHT} in flight per instance",
        LATENCY.as_millis(),
        window().as_millis()
    );
    println!("| run | wall time | calls | own bound | vs bound | 606/615 | service peak RSS |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    println!(
        "| one instance alone (baseline) | {:.2} s | {single_calls} | {:.2} s | {:.2}x | {} | {:.1} MiB |",
        secs(single.wall),
        secs(bound(single_calls)),
        secs(single.wall) / secs(bound(single_calls)),
        single.limited,
        single.peak_rss_kib as f64 / 1024.0
    );
    println!(
        "| {instances} instances, one service | {:.2} s | {total_calls} ({slowest} on the busiest) | {:.2} s (busiest) | {:.2}x | {} | {:.1} MiB |",
        secs(many.wall),
        secs(slowest_bound),
        secs(many.wall) / secs(slowest_bound),
        many.limited,
        many.peak_rss_kib as f64 / 1024.0
    );
    println!(
        "the fleet took {:.2}x the baseline's wall time for {:.1}x its calls; memory {:.2}x",
        secs(many.wall) / secs(single.wall),
        total_calls as f64 / single_calls as f64,
        many.peak_rss_kib as f64 / single.peak_rss_kib.max(1) as f64
    );
    for s in sandboxes {
        s.shutdown().await;
    }
}
