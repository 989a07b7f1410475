//! How fast the console answers, measured with wrk (an external load generator, in its own
//! process) against a running service: the access page of an instance with 100,000 accounts
//! (first page, a text search, a role-and-workspace filter, a deep page), and the overview
//! of 50 instances. Each figure is wrk's latency over loopback with one connection, so it
//! is the server's time plus a few tens of microseconds; `/healthz` in the same run is the
//! baseline the ratios are against.
//!
//! `cargo bench -p roster-service --bench console` (needs `wrk`: apt-get install wrk).
//! ROSTER_BENCH_SECONDS sets each measurement's length (default 5).

use std::time::{Duration, Instant};

use roster_domain::desired::App;
use roster_domain::inventory::{Account, AccountKind, Grant, Inventory, Status};
use roster_domain::live::Facts;
use roster_service::config::ServeConfig;
use roster_store::StateStore;
use time::OffsetDateTime;

const ACCOUNTS: usize = 100_000;
const INSTANCES: usize = 50;

const ROLES: [&str; 10] = [
    "Admin",
    "Analytics User",
    "API Read-Only",
    "Marketing User",
    "RTP Editor",
    "Sales User",
    "Standard User",
    "Web Designer",
    "Email Author",
    "Program Owner",
];
const WORKSPACES: [&str; 6] = ["Default", "EMEA", "US", "APAC", "World", "Partners"];

/// 100,000 people, each with one to three roles in one to three workspaces, some locked,
/// some expired, some invited: the shape a large subscription has.
fn inventory(instance: &str) -> Inventory {
    let now = OffsetDateTime::now_utc();
    let accounts = (0..ACCOUNTS)
        .map(|i| {
            let grants = (0..1 + i % 3)
                .map(|k| Grant {
                    role: ROLES[(i * 7 + k * 3) % ROLES.len()].to_string(),
                    scope: WORKSPACES[(i + k) % WORKSPACES.len()].to_string(),
                })
                .collect();
            let email = format!("user{i:06}@corp{}.example", i % 40);
            Account {
                kind: if i % 50 == 0 {
                    AccountKind::MarketoInvite
                } else {
                    AccountKind::MarketoUser
                },
                id: email.clone(),
                name: format!("Person {i} Surname{}", i % 997),
                email,
                status: match i % 50 {
                    0 => Status::Pending,
                    1 => Status::Locked,
                    2 => Status::Expired,
                    _ => Status::Active,
                },
                api_only: i % 97 == 0,
                grants,
                expires_at: (i % 10 == 0).then(|| now + time::Duration::days(30)),
                facts: Facts {
                    locked: i % 50 == 1,
                    last_login_at: Some(now - time::Duration::hours((i % 2000) as i64)),
                    ..Facts::default()
                },
            }
        })
        .collect();
    let mut inv = Inventory {
        app: App::Marketo,
        instance: instance.to_string(),
        read_at: now,
        scope: "every Marketo user (10 roles, 6 workspaces)".into(),
        accounts,
        changes_since_read: 0,
    };
    inv.accounts.sort_by(|a, b| a.email.cmp(&b.email));
    inv
}

#[path = "common/wrk.rs"]
mod wrk;

/// A console page under wrk: one connection, signed in.
fn measure(url: &str, cookie: &str, seconds: u64) -> wrk::Measured {
    wrk::run(
        &[
            "-t1",
            "-c1",
            &format!("-d{seconds}s"),
            "-H",
            &format!("Cookie: {cookie}"),
        ],
        url,
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !wrk::available() {
        eprintln!("the console benchmark needs wrk: apt-get install wrk");
        std::process::exit(2);
    }
    let seconds: u64 = std::env::var("ROSTER_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().unwrap();
    // Fifty instances that cannot be reached (a closed local port): each run fails fast
    // and is recorded, as a fleet with trouble would be.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // SAFETY: set before any thread reads the environment.
    unsafe { std::env::set_var("ROSTER_BENCH_SECRET", "bench-secret-value") };
    std::fs::write(dir.path().join("people.yaml"), "people: []\n").unwrap();
    let mut config = String::from("[service]\nlisten = \"127.0.0.1:0\"\n");
    for i in 0..INSTANCES {
        config.push_str(&format!(
            "\n[marketo.i{i:02}]\nurl = \"http://{closed}\"\nclient_id = \"bench\"\nclient_secret_env = \"ROSTER_BENCH_SECRET\"\nroster = \"people.yaml\"\ninterval = \"1h\"\n"
        ));
    }
    let path = dir.path().join("roster.toml");
    std::fs::write(&path, config).unwrap();
    let state = dir.path().join("state");
    let store = StateStore::open(&state).await.unwrap();
    let big = inventory("marketo.i00");
    let started = Instant::now();
    store.save_inventory(&big).await.unwrap();
    let stored_in = started.elapsed();
    for i in 1..INSTANCES {
        let mut small = inventory(&format!("marketo.i{i:02}"));
        small.accounts.truncate(200);
        store.save_inventory(&small).await.unwrap();
    }
    let now = OffsetDateTime::now_utc();
    let user = store
        .add_console_user(
            "bench",
            "viewer",
            &roster_service::console::hash_password("bench-password-1"),
            now,
        )
        .await
        .unwrap();
    let session = roster_service::tokens::generate();
    store
        .start_session(
            user,
            &roster_domain::sha256::hex(session.as_bytes()),
            "csrf",
            now,
        )
        .await
        .unwrap();
    let cookie = format!("roster_session={session}");
    let running = roster_service::start(ServeConfig::load(&path).unwrap(), state.clone())
        .await
        .unwrap();
    let base = format!("http://{}", running.addr);
    // Wait for every instance's first (failing) run, so the runs do not overlap the figures.
    let deadline = Instant::now() + Duration::from_secs(120);
    while store.failed_runs_since(now).await.unwrap().len() < INSTANCES {
        assert!(
            Instant::now() < deadline,
            "the instances' first runs did not finish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The first request reads and indexes the stored inventory; later ones reuse it.
    let http = roster_http::client();
    let cold = Instant::now();
    let first = http
        .get(format!("{base}/console/access/marketo.i00"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let page = first.text().await.unwrap();
    let cold = cold.elapsed();
    assert!(
        page.contains("of 100000 accounts"),
        "the page shows the whole inventory"
    );
    let overview = http
        .get(format!("{base}/console"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(overview.contains("marketo.i49"));

    let cases = [
        ("baseline: GET /healthz", "/healthz".to_string(), None),
        (
            "access, first page of 100,000",
            "/console/access/marketo.i00".to_string(),
            Some(100.0),
        ),
        (
            "access, text search (scans all)",
            "/console/access/marketo.i00?q=surname42".to_string(),
            Some(100.0),
        ),
        (
            "access, role + workspace filter",
            "/console/access/marketo.i00?role=Web+Designer&scope=EMEA&status=active".to_string(),
            Some(100.0),
        ),
        (
            "access, page at offset 90,000",
            "/console/access/marketo.i00?offset=90000".to_string(),
            Some(100.0),
        ),
        ("overview, 50 instances", "/console".to_string(), Some(50.0)),
    ];
    let (store_ms, cold_ms) = (stored_in.as_secs_f64() * 1e3, cold.as_secs_f64() * 1e3);
    println!(
        "inventory of {ACCOUNTS} accounts: stored in {store_ms:.0} ms; first page after a new inventory (read + index + render) {cold_ms:.0} ms"
    );
    println!(
        "{:<36} {:>9} {:>9} {:>9} {:>12} {:>8}",
        "request", "p50 ms", "p99 ms", "req/s", "p50/baseline", "bound"
    );
    let mut baseline = None;
    let mut over = Vec::new();
    for (label, path, bound) in cases {
        let m = measure(&format!("{base}{path}"), &cookie, seconds);
        let base_p50 = *baseline.get_or_insert(m.p50);
        println!(
            "{label:<36} {:>9.2} {:>9.2} {:>9.0} {:>11.1}x {:>8}",
            m.p50,
            m.p99,
            m.rps,
            m.p50 / base_p50,
            bound.map_or("—".to_string(), |b| format!("< {b} ms"))
        );
        if let Some(b) = bound
            && m.p99 >= b
        {
            over.push(format!("{label}: p99 {:.1} ms over {b} ms", m.p99));
        }
    }
    running.shutdown().await;
    if !over.is_empty() {
        eprintln!("over the bound: {}", over.join("; "));
        std::process::exit(1);
    }
}
