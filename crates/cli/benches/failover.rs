//! `cargo bench -p roster-cli --bench failover` (needs PostgreSQL: `ROSTER_TEST_POSTGRES`,
//! e.g. postgres://postgres@127.0.0.1:5432/test; a database is made for each run and
//! dropped after).
//!
//! Two `roster serve` processes on one PostgreSQL state, one working and one standing by,
//! against a Marketo sandbox of 2,000 users (20 ms a call): the worker is killed with
//! `kill -9` in the middle of an apply that invites 20 joiners. Measured, in the same run:
//! - the baseline: a `roster serve` starting cold on the same kind of state (spawn to its
//!   address), and its first reconcile (read 2,000 users, plan, invite the 20);
//! - the standby's takeover: from the kill to its address (the lock's session ends as the
//!   connection closes; the standby asks every 0.5 s), and from the kill to the end of the
//!   resumed run;
//! - PostgreSQL statements per reconciled account in a reconcile that changes nothing
//!   (counted from the service's own log of every statement, between the run's start and
//!   end lines).
//!
//! Each failover runs three times; medians.

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

/// A folder with the configuration and a roster of JOINERS joiners for `sandbox`.
fn configure(dir: &Path, sandbox: &RunningSandbox) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("secret"), SECRET).unwrap();
    let mut roster = String::from(
        "policies:\n  marketo:\n    managed_domains: [bench.example, joiners.example]\n    unlisted: report\npeople:\n",
    );
    for j in 0..JOINERS {
        roster.push_str(&format!(
            "  - email: joiner{j}@joiners.example\n    first_name: Joiner\n    last_name: N{j}\n    access:\n      marketo: [\"Standard User@Default\"]\n"
        ));
    }
    std::fs::write(dir.join("people.yaml"), roster).unwrap();
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
        .env("ROSTER_DATABASE_URL", db)
        .env("HOME", dir);
    cmd
}

/// Spawns `roster serve`; its stdout's lines come back through the channel.
fn serve(dir: &Path, db: &str, state: &str) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut child = roster(dir, db, state)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
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
            "serve", "token", "create", "--name", "bench", "--role", "admin",
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

async fn runs(base: &str, token: &str) -> Vec<Value> {
    let body: Value = reqwest::Client::new()
        .get(format!("{base}/api/v1/runs?limit=100"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["runs"].as_array().cloned().unwrap_or_default()
}

/// Waits until `base` reports `n` runs finished `done`.
async fn done_runs(base: &str, token: &str, n: usize) {
    loop {
        let finished = runs(base, token)
            .await
            .iter()
            .filter(|r| r["outcome"] == "done")
            .count();
        if finished >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn invited(sandbox: &RunningSandbox) -> usize {
    let mut n = 0;
    for j in 0..JOINERS {
        let mail: Value = reqwest::Client::new()
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
    takeover: Duration,
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
    let token = token(&dir, &db.url);
    let (mut first, first_lines) = serve(&dir, &db.url, "state-1");
    address(&first_lines);
    let (mut second, second_lines) = serve(&dir, &db.url, "state-2");
    while invited(&sandbox).await < 5 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let killed = Instant::now();
    first.kill().unwrap();
    first.wait().unwrap();
    let invited_before = invited(&sandbox).await;
    let base = address(&second_lines);
    let takeover = killed.elapsed();
    done_runs(&base, &token, 1).await;
    let finished = killed.elapsed();
    assert_eq!(invited(&sandbox).await, JOINERS);
    kill(&mut second, "-TERM");
    sandbox.shutdown().await;
    Failover {
        takeover,
        finished,
        invited_before,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    if roster_store::testing::server().is_none() {
        eprintln!(
            "set ROSTER_TEST_POSTGRES to a PostgreSQL server (e.g. postgres://postgres@127.0.0.1:5432/test)"
        );
        std::process::exit(2);
    }
    let root = tempfile::tempdir().unwrap();

    eprintln!("baseline: one roster serve, cold, and its first reconcile...");
    let dir = root.path().join("baseline");
    let sandbox_b = sandbox(&dir.join("marketo")).await;
    configure(&dir, &sandbox_b);
    let db = TestDatabase::create("baseline").await.unwrap();
    let token_b = token(&dir, &db.url);
    let spawned = Instant::now();
    // Its log: runs starting and ending, and every statement sent to PostgreSQL.
    let mut cmd = roster(&dir, &db.url, "state-1");
    let mut alone = cmd
        .env("ROSTER_LOG", "warn,roster_service=info,sqlx::query=debug")
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    for out in [
        Box::new(alone.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(alone.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let base = address(&lines);
    let cold = spawned.elapsed();
    let next = |what: &str| loop {
        let line = lines.recv_timeout(Duration::from_secs(300)).expect(what);
        if line.contains(what) {
            return;
        }
    };
    next("run ended");
    let first_reconcile = spawned.elapsed() - cold;
    // A reconcile that changes nothing: the statements it sends, per account.
    reqwest::Client::new()
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
    let per_account = statements as f64 / USERS as f64;
    kill(&mut alone, "-TERM");
    sandbox_b.shutdown().await;

    let mut takeovers = Vec::new();
    let mut finishes = Vec::new();
    let mut before_kill = Vec::new();
    for n in 0..3 {
        eprintln!("failover {}...", n + 1);
        let f = failover(root.path(), n).await;
        takeovers.push(f.takeover);
        finishes.push(f.finished);
        before_kill.push(f.invited_before);
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let takeover = median(takeovers.clone());
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
        "| kill -9 of the worker to the standby's address (median of 3: {:?}) | {:.0} ms | {:.2}x |",
        takeovers
            .iter()
            .map(|d| ms(*d).round() as u64)
            .collect::<Vec<_>>(),
        ms(takeover),
        ms(takeover) / ms(cold)
    );
    println!(
        "| kill -9 to the resumed run done (median of 3; {:?} invited before each kill) | {:.0} ms | {:.2}x |",
        before_kill,
        ms(finished),
        ms(finished) / ms(cold)
    );
    println!(
        "PostgreSQL statements in a reconcile of {USERS} accounts that changes nothing: {statements} ({per_account:.2} per account), of which {pacing} ({:.2} per account) pace the Marketo calls with the other processes",
        pacing as f64 / USERS as f64
    );
}
