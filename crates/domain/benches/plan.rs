//! Planning 100,000 people across both apps from in-memory state: time and peak memory.
//!
//! Run: `cargo bench -p roster-domain --bench plan`. The baseline, measured in the same run,
//! is the least any planner must do: index both apps' accounts by email and look every
//! person up once. Figures are reported as ratios against it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeSet, HashMap};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use roster_domain::desired::{
    Access, Cap, MagentoAccess, Person, Policies, Policy, RoleRef, Roster, Status, Unlisted,
};
use roster_domain::live::{Live, MagentoCustomer, MagentoLive, MarketoLive, MarketoUser, Named};
use roster_domain::plan::{PlanOptions, plan};
use time::OffsetDateTime;

/// Counts live and peak heap bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const PEOPLE: usize = 100_000;
const ROLES: [&str; 4] = [
    "Standard User",
    "Marketing User",
    "Analytics User",
    "Web Designer",
];
const WORKSPACES: [&str; 3] = ["Default", "US", "EMEA"];
const GROUPS: [&str; 3] = ["General", "Wholesale", "Retailer"];

fn email(i: usize) -> String {
    format!("person{i:06}@acme.example")
}

fn roles(i: usize) -> BTreeSet<RoleRef> {
    [
        RoleRef::new(ROLES[i % 4], WORKSPACES[i % 3]),
        RoleRef::new(ROLES[(i / 4) % 4], WORKSPACES[(i / 12) % 3]),
    ]
    .into_iter()
    .collect()
}

/// A roster of 100,000 people, and live state where 90% have accounts, a tenth of them with
/// other roles or groups, and 5,000 accounts nobody listed.
fn fixture() -> (Roster, Live) {
    let people = (0..PEOPLE)
        .map(|i| Person {
            email: email(i),
            first_name: format!("First{i}"),
            last_name: format!("Last{i}"),
            status: if i.is_multiple_of(50) {
                Status::Leaver
            } else {
                Status::Active
            },
            end_date: None,
            department: None,
            title: None,
            access: Access {
                marketo: roles(i).into_iter().collect(),
                magento: MagentoAccess {
                    group: Some(GROUPS[i % 3].into()),
                    admin_role: None,
                },
                ..Access::default()
            },
            manager: None,
            line: i + 1,
        })
        .collect();
    let policy = Policy {
        unlisted: Unlisted::Delete,
        max_destructive: Cap::Percent(100),
        ..Policy::default()
    };
    let roster = Roster {
        source: "bench.yaml".into(),
        digest: String::new(),
        people,
        rules: Vec::new(),
        exceptions: Vec::new(),
        target: None,
        revocations: Vec::new(),
        policies: Policies {
            adobe: Default::default(),
            marketo: policy.clone(),
            magento: policy,
            approvers: Vec::new(),
        },
    };
    let existing = |i: usize| !i.is_multiple_of(10);
    let extra = PEOPLE..PEOPLE + 5_000;
    let users = (0..PEOPLE)
        .filter(|i| existing(*i))
        .chain(extra.clone())
        .map(|i| MarketoUser {
            userid: email(i),
            email: email(i),
            first_name: format!("First{i}"),
            last_name: format!("Last{i}"),
            api_only: false,
            roles: if i % 10 == 1 { roles(i + 1) } else { roles(i) },
            expires_at: None,
            pending: None,
            facts: Default::default(),
        })
        .collect();
    let customers = (0..PEOPLE)
        .filter(|i| existing(*i))
        .chain(extra)
        .map(|i| MagentoCustomer {
            id: i as i64 + 1,
            email: email(i),
            first_name: format!("First{i}"),
            last_name: format!("Last{i}"),
            group_id: ((if i % 10 == 2 { i + 1 } else { i }) % 3) as i64 + 1,
            website_id: 1,
            facts: Default::default(),
        })
        .collect();
    let named = |list: &[&str]| -> Vec<Named> {
        list.iter()
            .enumerate()
            .map(|(i, n)| Named {
                id: i as i64 + 1,
                name: n.to_string(),
            })
            .collect()
    };
    let live = Live {
        adobe: None,
        marketo: Some(MarketoLive {
            roles: ROLES.iter().map(ToString::to_string).collect(),
            workspaces: WORKSPACES.iter().map(ToString::to_string).collect(),
            users,
            unread: Vec::new(),
            ims: None,
        }),
        magento: Some(MagentoLive {
            domains: Vec::new(),
            unread: 0,
            groups: named(&GROUPS),
            websites: named(&["base"]),
            admin_roles: None,
            website: "base".into(),
            customers,
            admins: None,
        }),
    };
    (roster, live)
}

/// The floor: index both apps by email and find each person's accounts once.
fn baseline(roster: &Roster, live: &Live) -> usize {
    let users: HashMap<&str, &MarketoUser> = live
        .marketo
        .as_ref()
        .unwrap()
        .users
        .iter()
        .map(|u| (u.email.as_str(), u))
        .collect();
    let customers: HashMap<&str, &MagentoCustomer> = live
        .magento
        .as_ref()
        .unwrap()
        .customers
        .iter()
        .map(|c| (c.email.as_str(), c))
        .collect();
    roster
        .people
        .iter()
        .filter(|p| {
            users.contains_key(p.email.as_str()) && customers.contains_key(p.email.as_str())
        })
        .count()
}

fn measure<T>(f: impl FnOnce() -> T) -> (T, f64, usize) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let start = Instant::now();
    let out = f();
    let secs = start.elapsed().as_secs_f64();
    (out, secs, PEAK.load(Ordering::Relaxed) - base)
}

fn main() {
    let before = LIVE.load(Ordering::Relaxed);
    let (roster, live) = fixture();
    let input = LIVE.load(Ordering::Relaxed) - before;
    let options = PlanOptions {
        now: OffsetDateTime::now_utc(),
        resend_invites: false,
    };
    // Best of three for both, so a scheduling hiccup does not decide the ratio.
    let mut best_base = (f64::MAX, 0);
    let mut best_plan = (f64::MAX, 0);
    let mut steps = 0;
    for _ in 0..3 {
        let (found, secs, peak) = measure(|| black_box(baseline(&roster, &live)));
        black_box(found);
        if secs < best_base.0 {
            best_base = (secs, peak);
        }
        let (p, secs, peak) = measure(|| plan(&roster, &live, options));
        steps = p.steps.len();
        drop(black_box(p));
        if secs < best_plan.0 {
            best_plan = (secs, peak);
        }
    }
    let mb = |b: usize| b as f64 / (1024.0 * 1024.0);
    println!("planning {PEOPLE} people across Marketo and Magento ({steps} steps)");
    println!("  input (roster + live state): {:.1} MiB", mb(input));
    println!(
        "  baseline (index by email, one lookup each): {:.3} s, peak {:.1} MiB",
        best_base.0,
        mb(best_base.1)
    );
    println!(
        "  plan: {:.3} s, peak {:.1} MiB above the input",
        best_plan.0,
        mb(best_plan.1)
    );
    println!(
        "  ratios: time {:.1}x the baseline; peak memory {:.2}x the input",
        best_plan.0 / best_base.0,
        best_plan.1 as f64 / input as f64
    );
}
