//! `cargo bench -p roster-marketo --bench targeted`
//!
//! What a change to one person costs on a 2,000-user subscription (sandbox, 20 ms latency
//! per call), measured in the same run:
//! - a full read (every user's roles: what a full reconcile reads);
//! - a targeted read for one person (the user list and that user's roles: what a SCIM
//!   change, a roster edit or an API request about one person reads).
//!
//! Then a day of a busy identity provider is played through the service's schedule
//! (`roster_domain::budget`) with the measured costs: 100 changes spread over the day, each
//! a targeted run, and full reconciles as often as a 20,000-call budget allows with 10% kept
//! for targeted runs. It reports the calls spent and the longest time between full runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use roster_domain::Secret;
use roster_domain::budget::Budget;
use roster_marketo::audit::{self, Quiet};
use roster_marketo::{Client, ClientConfig};
use roster_sandbox::marketo::admin::{Admin, RoleAt};
use roster_sandbox::marketo::{self, Limits, MarketoConfig};

const USERS: usize = 2_000;
const SEEDED: usize = 9;
const LATENCY: Duration = Duration::from_millis(20);
const RUNS: usize = 3;
const DAY_BUDGET: u64 = 20_000;
const CHANGES: usize = 100;

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let admin = Admin::open(dir.path()).await.unwrap();
    let roles: Vec<RoleAt> = vec!["Standard User@Default".parse().unwrap()];
    admin
        .add_people("bench", "bench.example", USERS - SEEDED, &roles)
        .await
        .unwrap();
    admin.close().await;
    let mut config = MarketoConfig::new(dir.path());
    config.client_id = Some("bench".into());
    config.client_secret = Some(Secret::new("bench-secret-0123456789"));
    config.limits = Limits::unlimited();
    config.faults.latency = LATENCY;
    let sandbox = marketo::start(config).await.unwrap();
    let client = || {
        let mut c = ClientConfig::new(
            sandbox.base_url(),
            "bench",
            Secret::new("bench-secret-0123456789"),
        );
        c.max_in_flight = 10;
        c.rate_limit = u32::MAX;
        c.rate_window = Duration::from_secs(1);
        c.daily_quota = u64::MAX;
        Client::new(c, 0).unwrap()
    };
    // The person who changed: somewhere in the middle of the list.
    let person = "bench01000@bench.example".to_string();

    let (mut full_walls, mut targeted_walls) = (Vec::new(), Vec::new());
    let (mut full_calls, mut targeted_calls) = (0, 0);
    for _ in 0..RUNS {
        let c = client();
        let start = Instant::now();
        let full = audit::run(&c, Arc::new(Quiet)).await.unwrap();
        full_walls.push(start.elapsed());
        assert_eq!(full.users.len(), USERS);
        full_calls = full.stats.calls;

        let c = client();
        let who = person.clone();
        let start = Instant::now();
        let targeted = audit::run_only(&c, Arc::new(Quiet), move |u| {
            u.email_address.eq_ignore_ascii_case(&who)
        })
        .await
        .unwrap();
        targeted_walls.push(start.elapsed());
        assert_eq!(targeted.users.len(), 1, "the person is read");
        assert_eq!(targeted.unread.len(), USERS - 1);
        targeted_calls = targeted.stats.calls;
    }
    full_walls.sort();
    targeted_walls.sort();
    let (full_wall, targeted_wall) = (full_walls[RUNS / 2], targeted_walls[RUNS / 2]);
    let pages = (USERS / 200 + 1) as u64;
    assert_eq!(
        targeted_calls,
        pages + 2 + 1,
        "pages, roles, workspaces, one user"
    );
    assert!(targeted_calls < 20);

    println!(
        "one person changed on a {USERS}-user subscription, {} ms latency per call; median of {RUNS} runs",
        LATENCY.as_millis()
    );
    println!("| read | calls | wall time | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| full (every user's roles) | {full_calls} | {:.2} s | 1.00x |",
        full_wall.as_secs_f64()
    );
    println!(
        "| targeted (user list + 1 user's roles) | {targeted_calls} ({pages} list pages + 2 reference + 1) | {:.2} s | {:.3}x the calls, {:.3}x the time |",
        targeted_wall.as_secs_f64(),
        targeted_calls as f64 / full_calls as f64,
        targeted_wall.as_secs_f64() / full_wall.as_secs_f64()
    );

    // A day: full runs as the budget schedules them, and CHANGES targeted runs spread evenly.
    let day = time::Duration::hours(24);
    let mut b = Budget {
        budget: DAY_BUDGET,
        used: 0,
        full_cost: full_calls,
        until_reset: day,
        configured: time::Duration::minutes(15),
    };
    let every = day / CHANGES as f64;
    let (mut elapsed, mut next_change) = (time::Duration::ZERO, time::Duration::ZERO);
    let (mut fulls, mut targeted, mut deferred_targeted) = (0, 0, 0);
    let mut longest = time::Duration::ZERO;
    while elapsed < day {
        if !b.defers_full_run() {
            b.used += b.full_cost;
            fulls += 1;
        }
        let gap = b.schedule().interval;
        let until = (elapsed + gap).min(day);
        longest = longest.max(if elapsed + gap > day {
            day - elapsed
        } else {
            gap
        });
        while next_change < until {
            if b.defers_targeted_run(targeted_calls) {
                deferred_targeted += 1;
            } else {
                b.used += targeted_calls;
                targeted += 1;
            }
            next_change += every;
        }
        elapsed = until;
        b.until_reset = day - elapsed;
    }
    assert_eq!(deferred_targeted, 0, "no targeted run is deferred");
    assert_eq!(targeted, CHANGES);
    assert!(b.used <= DAY_BUDGET);
    println!();
    println!(
        "a day with {CHANGES} changes and a budget of {DAY_BUDGET} calls (10% kept for targeted runs):"
    );
    println!(
        "{fulls} full runs ({} calls) + {targeted} targeted runs ({} calls) = {} calls ({:.0}% of the budget); longest time between full runs {:.1} h; targeted runs deferred: {deferred_targeted}",
        fulls as u64 * full_calls,
        targeted as u64 * targeted_calls,
        b.used,
        b.used as f64 * 100.0 / DAY_BUDGET as f64,
        longest.as_seconds_f64() / 3600.0
    );
    println!(
        "the same day with a full reconcile per change (no targeting) would cost {} calls: {:.1}x the budget",
        CHANGES as u64 * full_calls,
        (CHANGES as u64 * full_calls) as f64 / DAY_BUDGET as f64
    );
    sandbox.shutdown().await;
}
