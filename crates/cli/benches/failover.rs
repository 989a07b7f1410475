//! `cargo bench -p roster-cli --bench failover` (needs PostgreSQL: `ROSTER_TEST_POSTGRES`,
//! e.g. postgres://postgres@127.0.0.1:5432/test; a database is made for each run and
//! dropped after).
//!
//! `roster serve` processes sharing one PostgreSQL state (active/active: they take runs
//! from one job queue). Measured, in the same run:
//! - the baseline: one `roster serve` starting cold (spawn to its address) against a
//!   Marketo sandbox of 2,000 users (20 ms a call), and its first reconcile (read the
//!   2,000 users, plan, invite 20 joiners);
//! - PostgreSQL statements per reconciled account in a reconcile that changes nothing
//!   (counted from the service's own log of every statement, between the run's start and
//!   end lines), and the job queue's operations per run;
//! - throughput: 24 instances (each its own sandbox, 100 ms a call, 10 joiners) reconciled
//!   by 1, 2 and 3 processes started together, from spawn to every instance's run done;
//! - shared pacing: one Marketo subscription with its limits scaled down (60 calls per 2 s,
//!   4 in flight, 20 ms a call) audited by one process, then by three at once, each with a
//!   state folder of its own on the one database: wall time against the least the limits
//!   allow for the calls made, and the 606/615 the sandbox answered;
//! - failover: two processes, one instance; the process running it is killed with
//!   `kill -9` in the middle of its apply; the time until the other resumes the run (the
//!   dead process's heartbeat goes stale, a sweep hands its job on) and until the run is
//!   done. Three times; medians.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use roster_domain::Secret;
use roster_sandbox::marketo::admin::{Admin, RoleAt};
use roster_sandbox::marketo::{self, Limits, MarketoConfig, RunningSandbox};
use roster_store::testing::TestDatabase;
use serde_json::Value;

const USERS: usize = 2_000;
const SEEDED: usize = 9;
const JOINERS: usize = 20;
const SECRET: &str = "failover-bench-secret-0123456789";

async fn sandbox(dir: &Path) -> RunningSandbox {
    let admin = Admin::open(dir).await.unwrap();
    let roles: Vec<RoleAt> = vec!["Standard User@Default".parse().unwrap()];
    admin
        .add_people("bench", "bench.example", USERS - SEEDED, &roles)
        .await
        .unwrap();
    admin.close().await;
    let mut config = MarketoConfig::new(dir);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.client_id = Some("failover".into());
    config.client_secret = Some(Secret::new(SECRET));
    config.limits = Limits::unlimited();
    config.faults.latency = Duration::from_millis(20);
    marketo::start(config).await.unwrap()
}

/// `people.yaml` in `dir`: `joiners` joiners, each given Standard User, with `domains` managed.
fn write_joiners(dir: &Path, domains: &str, joiners: usize) {
    let mut roster = format!(
        "policies:\n  marketo:\n    managed_domains: {domains}\n    unlisted: report\npeople:\n"
    );
    for j in 0..joiners {
        roster.push_str(&format!(
            "  - email: joiner{j}@joiners.example\n    first_name: Joiner\n    last_name: N{j}\n    access:\n      marketo: [\"Standard User@Default\"]\n"
        ));
    }
    std::fs::write(dir.join("people.yaml"), roster).unwrap();
}

/// A folder with the configuration and a roster of JOINERS joiners for `sandbox`.
fn configure(dir: &Path, sandbox: &RunningSandbox) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("secret"), SECRET).unwrap();
    write_joiners(dir, "[bench.example, joiners.example]", JOINERS);
    std::fs::write(
        dir.join("roster.toml"),
        format!(
            "[service]\nlisten = \"127.0.0.1:0\"\n\n[marketo.bench]\nurl = \"{}\"\nclient_id = \"failover\"\nclient_secret_file = \"secret\"\nroster = \"people.yaml\"\ninterval = \"1h\"\nrate_limit = 100000\n",
            sandbox.base_url()
        ),
    )
    .unwrap();
}

fn roster(dir: &Path, db: &str, state: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_roster"));
    cmd.env_remove("ROSTER_LOG")
        .env("ROSTER_CONFIG", dir.join("roster.toml"))
        .env("ROSTER_STATE", dir.join(state))
        // One key for the fleet, as on hosts sharing a database.
        .env("ROSTER_SIGNING_KEY_FILE", dir.join("signing.key"))
        .env("ROSTER_DATABASE_URL", db)
        .env("HOME", dir);
    cmd
}

/// Spawns `roster serve` (with `log` as ROSTER_LOG, if given); the lines it prints, on
/// stdout and stderr, come back through the channel.
fn serve_logging(
    dir: &Path,
    db: &str,
    state: &str,
    log: Option<&str>,
) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut cmd = roster(dir, db, state);
    if let Some(log) = log {
        cmd.env("ROSTER_LOG", log);
    }
    let mut child = cmd
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    for out in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    (child, rx)
}

fn serve(dir: &Path, db: &str, state: &str) -> (Child, std::sync::mpsc::Receiver<String>) {
    serve_logging(dir, db, state, None)
}

/// Waits for a line containing `what`.
fn line_with(lines: &std::sync::mpsc::Receiver<String>, what: &str) {
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(300))
            .unwrap_or_else(|_| panic!("no line with {what:?}"));
        if line.contains(what) {
            return;
        }
    }
}

fn address(lines: &std::sync::mpsc::Receiver<String>) -> String {
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(120))
            .expect("roster serve printed its address");
        if let Some(addr) = line
            .strip_prefix("roster serve: ")
            .and_then(|r| r.split_whitespace().next())
        {
            return addr.to_string();
        }
    }
}

fn token(dir: &Path, db: &str) -> String {
    let out = roster(dir, db, "state-0")
        .args([
            "serve",
            "token",
            "create",
            "--name",
            "bench",
            "--role",
            "admin",
            "--service",
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

async fn invited(sandbox: &RunningSandbox) -> usize {
    let mut n = 0;
    for j in 0..JOINERS {
        let mail: Value = roster_http::client()
            .get(format!("{}/sandbox/mailbox", sandbox.base_url()))
            .query(&[("to", format!("joiner{j}@joiners.example"))])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        n += mail.as_array().map_or(0, |m| m.len().min(1));
    }
    n
}

fn kill(child: &mut Child, signal: &str) {
    Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
}

struct Failover {
    resumed: Duration,
    finished: Duration,
    invited_before: usize,
}

async fn failover(root: &Path, n: usize) -> Failover {
    let dir = root.join(format!("failover-{n}"));
    let sandbox = sandbox(&dir.join("marketo")).await;
    configure(&dir, &sandbox);
    let db = TestDatabase::create("failover")
        .await
        .expect("a PostgreSQL server");
    let (mut a, a_lines) = serve(&dir, &db.url, "state-1");
    address(&a_lines);
    let (mut b, b_lines) = serve(&dir, &db.url, "state-2");
    address(&b_lines);
    // Who runs the instance: the one that logs its run's start.
    let (tx, started) = std::sync::mpsc::channel();
    let watch = |lines: std::sync::mpsc::Receiver<String>, who: usize| {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in lines.iter() {
                if line.contains("run started") {
                    let _ = tx.send((who, Instant::now()));
                }
                if line.contains("run ended") && line.contains("outcome=\"done\"") {
                    let _ = tx.send((who + 10, Instant::now()));
                }
            }
        });
    };
    watch(a_lines, 0);
    watch(b_lines, 1);
    let (runner, _) = started.recv_timeout(Duration::from_secs(120)).unwrap();
    while invited(&sandbox).await < 5 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let killed = Instant::now();
    let (victim, survivor) = if runner == 0 {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    victim.kill().unwrap();
    victim.wait().unwrap();
    let invited_before = invited(&sandbox).await;
    let resumed = loop {
        let (who, at) = started.recv_timeout(Duration::from_secs(120)).unwrap();
        if who == 1 - runner {
            break at - killed;
        }
    };
    let finished = loop {
        let (who, at) = started.recv_timeout(Duration::from_secs(120)).unwrap();
        if who == 11 - runner {
            break at - killed;
        }
    };
    assert_eq!(invited(&sandbox).await, JOINERS);
    kill(survivor, "-TERM");
    sandbox.shutdown().await;
    Failover {
        resumed,
        finished,
        invited_before,
    }
}

/// Instances in the throughput runs, each its own sandbox.
const FLEET: usize = 24;
/// Joiners per instance in the throughput runs.
const FLEET_JOINERS: usize = 10;

/// `processes` `roster serve` started together on FLEET instances: spawn to every
/// instance's run done, and whether any sandbox answered 606 or 615.
async fn throughput(root: &Path, processes: usize) -> (Duration, u64) {
    let dir = root.join(format!("fleet-{processes}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("secret"), SECRET).unwrap();
    write_joiners(&dir, "[joiners.example]", FLEET_JOINERS);
    let mut sandboxes = Vec::new();
    let mut toml = String::from("[service]\nlisten = \"127.0.0.1:0\"\n");
    for i in 0..FLEET {
        let mut config = MarketoConfig::new(dir.join(format!("marketo-{i}")));
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.client_id = Some("failover".into());
        config.client_secret = Some(Secret::new(SECRET));
        config.faults.latency = Duration::from_millis(100);
        let sb = marketo::start(config).await.unwrap();
        toml.push_str(&format!(
            "\n[marketo.i{i:02}]\nurl = \"{}\"\nclient_id = \"failover\"\nclient_secret_file = \"secret\"\nroster = \"people.yaml\"\ninterval = \"1h\"\n",
            sb.base_url()
        ));
        sandboxes.push(sb);
    }
    std::fs::write(dir.join("roster.toml"), toml).unwrap();
    let db = TestDatabase::create("fleet").await.unwrap();
    // The job queue's tables exist before the clock starts, as in a deployment.
    let migrated = roster(&dir, &db.url, "state-0")
        .args(["serve", "migrate"])
        .output()
        .unwrap();
    assert!(migrated.status.success());
    let (tx, done) = std::sync::mpsc::channel();
    let spawned = Instant::now();
    let mut children = Vec::new();
    for p in 0..processes {
        let (child, lines) = serve(&dir, &db.url, &format!("state-{p}"));
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in lines.iter() {
                if line.contains("run ended") && line.contains("outcome=\"done\"") {
                    let _ = tx.send(());
                }
            }
        });
        children.push(child);
    }
    for _ in 0..FLEET {
        done.recv_timeout(Duration::from_secs(600))
            .expect("every instance's run is done");
    }
    let took = spawned.elapsed();
    for mut c in children {
        kill(&mut c, "-TERM");
    }
    let mut limited = 0;
    for sb in sandboxes {
        let stats = stats(&sb).await;
        limited += stats["rateLimited"].as_u64().unwrap_or(0)
            + stats["concurrencyLimited"].as_u64().unwrap_or(0);
        sb.shutdown().await;
    }
    (took, limited)
}

const P_RATE: u32 = 60;
const P_WINDOW: Duration = Duration::from_secs(2);
const P_IN_FLIGHT: u32 = 4;
const P_LATENCY: Duration = Duration::from_millis(20);
/// Users in the pacing sandbox (with the SEEDED ones): an audit makes 3 calls and one per user.
const P_USERS: usize = 150;

/// The least time `calls` can take on the scaled-down subscription: RATE per window (the
/// first RATE at once), or IN_FLIGHT in flight x latency.
fn pacing_bound(calls: u64) -> Duration {
    let windows = calls.div_ceil(u64::from(P_RATE)).saturating_sub(1) as u32;
    let in_flight = P_LATENCY * (calls.div_ceil(u64::from(P_IN_FLIGHT)) as u32);
    (P_WINDOW * windows).max(in_flight)
}

async fn stats(sandbox: &RunningSandbox) -> Value {
    roster_http::client()
        .get(format!("{}/sandbox/stats", sandbox.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `processes` audits of the one subscription at once, on one database: wall time, calls,
/// and 606/615 answered.
async fn shared_audits(
    root: &Path,
    sandbox: &RunningSandbox,
    processes: usize,
) -> (Duration, u64, u64) {
    let db = TestDatabase::create("pacing").await.unwrap();
    let before = stats(sandbox).await;
    let started = Instant::now();
    let children: Vec<Child> = (0..processes)
        .map(|p| {
            Command::new(env!("CARGO_BIN_EXE_roster"))
                .env_remove("ROSTER_LOG")
                .env("HOME", root)
                .env("ROSTER_STATE", root.join(format!("pacing-{processes}-{p}")))
                .env(
                    "ROSTER_SIGNING_KEY_FILE",
                    root.join(format!("pacing-{processes}.key")),
                )
                .env("ROSTER_DATABASE_URL", &db.url)
                .env("ROSTER_MARKETO_URL", sandbox.base_url())
                .env("ROSTER_MARKETO_CLIENT_ID", "failover")
                .env("ROSTER_MARKETO_CLIENT_SECRET", SECRET)
                .args([
                    "audit",
                    "marketo",
                    "-o",
                    "json",
                    "--rate-limit",
                    &P_RATE.to_string(),
                    "--rate-window",
                    "2s",
                    "--max-in-flight",
                    &P_IN_FLIGHT.to_string(),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "an audit failed");
    }
    let wall = started.elapsed();
    let after = stats(sandbox).await;
    let delta = |k: &str| after[k].as_u64().unwrap_or(0) - before[k].as_u64().unwrap_or(0);
    (
        wall,
        delta("calls"),
        delta("rateLimited") + delta("concurrencyLimited"),
    )
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The baseline, the statements per account, and failover: one table.
async fn failover_part(root: &Path) {
    eprintln!("baseline: one roster serve, cold, and its first reconcile...");
    let dir = root.join("baseline");
    let sandbox_b = sandbox(&dir.join("marketo")).await;
    configure(&dir, &sandbox_b);
    let db = TestDatabase::create("baseline").await.unwrap();
    let token_b = token(&dir, &db.url);
    let spawned = Instant::now();
    // Its log: runs starting and ending, every statement sent to PostgreSQL, and the job
    // queue's operations.
    let (mut alone, lines) = serve_logging(
        &dir,
        &db.url,
        "state-1",
        Some("warn,roster_service=info,sqlx::query=debug,graphile_worker=debug"),
    );
    let base = address(&lines);
    let cold = spawned.elapsed();
    let next = |what: &str| line_with(&lines, what);
    next("run ended");
    let first_reconcile = spawned.elapsed() - cold;
    // A reconcile that changes nothing: the statements it sends, per account.
    roster_http::client()
        .post(format!("{base}/api/v1/instances/marketo.bench/reconcile"))
        .bearer_auth(&token_b)
        .send()
        .await
        .unwrap();
    next("run started");
    let (mut statements, mut pacing) = (0usize, 0usize);
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(300))
            .expect("the run ends");
        if line.contains("run ended") {
            break;
        }
        if line.contains("db.statement=") {
            statements += 1;
            pacing += usize::from(line.contains("pacing"));
        }
    }
    // The job's own life in the queue: added (the API's request), taken, completed.
    let queue_ops = 3;
    let per_account = statements as f64 / USERS as f64;
    kill(&mut alone, "-TERM");
    sandbox_b.shutdown().await;

    let mut resumes = Vec::new();
    let mut finishes = Vec::new();
    let mut before_kill = Vec::new();
    for n in 0..3 {
        eprintln!("failover {}...", n + 1);
        let f = failover(root, n).await;
        resumes.push(f.resumed);
        finishes.push(f.finished);
        before_kill.push(f.invited_before);
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let resumed = median(resumes.clone());
    let finished = median(finishes.clone());
    println!(
        "roster serve on PostgreSQL, Marketo sandbox of {USERS} users (20 ms a call), {JOINERS} joiners to invite"
    );
    println!("| what | time | vs a cold start |");
    println!("|---|---:|---:|");
    println!(
        "| baseline: a cold start, spawn to address | {:.0} ms | 1.00x |",
        ms(cold)
    );
    println!(
        "| baseline: its first reconcile (read, plan, {JOINERS} invitations) | {:.0} ms | {:.2}x |",
        ms(first_reconcile),
        ms(first_reconcile) / ms(cold)
    );
    println!(
        "| kill -9 of the process running the instance to the other resuming the run (median of 3: {:?}) | {:.0} ms | {:.2}x |",
        resumes
            .iter()
            .map(|d| ms(*d).round() as u64)
            .collect::<Vec<_>>(),
        ms(resumed),
        ms(resumed) / ms(cold)
    );
    println!(
        "| kill -9 to the resumed run done (median of 3; {:?} invited before each kill) | {:.0} ms | {:.2}x |",
        before_kill,
        ms(finished),
        ms(finished) / ms(cold)
    );
    println!(
        "PostgreSQL statements in a reconcile of {USERS} accounts that changes nothing: {statements} ({per_account:.2} per account), of which {pacing} ({:.2} per account) pace the Marketo calls with the other processes; the job queue adds {queue_ops} per run (add, take, complete) besides each process's heartbeat (1 a second) and idle poll (2 a second)",
        pacing as f64 / USERS as f64
    );
}

/// One subscription audited by one process, then by three at once.
async fn pacing_part(root: &Path) {
    eprintln!("shared pacing: one audit, then three at once...");
    let pacing_dir = root.join("pacing");
    let admin = Admin::open(&pacing_dir).await.unwrap();
    let roles: Vec<RoleAt> = vec!["Standard User@Default".parse().unwrap()];
    admin
        .add_people("paced", "paced.example", P_USERS - SEEDED, &roles)
        .await
        .unwrap();
    admin.close().await;
    let mut config = MarketoConfig::new(&pacing_dir);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.client_id = Some("failover".into());
    config.client_secret = Some(Secret::new(SECRET));
    config.limits = Limits {
        rate_limit: P_RATE,
        rate_window: P_WINDOW,
        max_concurrent: P_IN_FLIGHT,
        daily_quota: 50_000,
    };
    config.faults.latency = P_LATENCY;
    let paced = marketo::start(config).await.unwrap();
    let one = shared_audits(root, &paced, 1).await;
    // The next audits' database knows nothing of these calls, which the sandbox still counts
    // for one window: let it pass, as between two separate deployments.
    tokio::time::sleep(P_WINDOW + Duration::from_millis(200)).await;
    let three = shared_audits(root, &paced, 3).await;
    paced.shutdown().await;

    println!(
        "One Marketo subscription, limits scaled down to {P_RATE} calls per {}s and {P_IN_FLIGHT} in flight ({} ms a call), {P_USERS} users; each audit its own process and state folder, one database",
        P_WINDOW.as_secs(),
        P_LATENCY.as_millis()
    );
    println!("| audits at once | wall time | calls | least the limits allow | vs that | 606/615 |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for (n, (wall, calls, limited)) in [(1, one), (3, three)] {
        let bound = pacing_bound(calls);
        println!(
            "| {n} | {:.2} s | {calls} | {:.2} s | {:.2}x | {limited} |",
            wall.as_secs_f64(),
            bound.as_secs_f64(),
            wall.as_secs_f64() / bound.as_secs_f64()
        );
    }
}

/// Throughput with 1, 2 and 3 processes.
async fn fleet_part(root: &Path) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut fleet = Vec::new();
    for processes in 1..=3 {
        eprintln!("throughput: {processes} process(es), {FLEET} instances...");
        fleet.push((processes, throughput(root, processes).await));
    }

    println!(
        "{FLEET} instances (each its own sandbox, 100 ms a call, {FLEET_JOINERS} joiners), processes started together, on this 2-core machine"
    );
    println!(
        "| processes | spawn to every run done | runs a second | vs 1 process | 606/615 seen |"
    );
    println!("|---:|---:|---:|---:|---:|");
    let one = fleet[0].1.0;
    for (processes, (took, limited)) in &fleet {
        println!(
            "| {processes} | {:.0} ms | {:.2} | {:.2}x | {limited} |",
            ms(*took),
            FLEET as f64 / took.as_secs_f64(),
            one.as_secs_f64() / took.as_secs_f64()
        );
    }
}

/// `ROSTER_BENCH_ONLY=failover,pacing,fleet` (any of them) runs those parts only.
#[tokio::main]
async fn main() {
    if roster_store::testing::server().is_none() {
        eprintln!(
            "set ROSTER_TEST_POSTGRES to a PostgreSQL server (e.g. postgres://postgres@127.0.0.1:5432/test)"
        );
        std::process::exit(2);
    }
    let only = std::env::var("ROSTER_BENCH_ONLY").ok();
    let wanted = |part: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|p| p == part))
    };
    let root = tempfile::tempdir().unwrap();
    if wanted("failover") {
        failover_part(root.path()).await;
        println!();
    }
    if wanted("pacing") {
        pacing_part(root.path()).await;
        println!();
    }
    if wanted("fleet") {
        fleet_part(root.path()).await;
    }
}
