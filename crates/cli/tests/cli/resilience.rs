//! Deletions interrupted by `kill -9` and by failing calls: whatever stops an apply, the rerun
//! leaves one tombstone per deleted account holding its roles (so it can be restored), each
//! write in the audit log exactly once, and a log chain that verifies.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::Duration;

use roster_sandbox::marketo::Faults;
use serde_json::Value;

use super::Env;
use crate::role_specs;

/// Every managed Marketo account but the protected admin is unlisted, so each is deleted.
const LEAVERS: &str = "\
policies:
  marketo:
    managed_domains: [acme.example]
    protected: [ada.lovelace@acme.example]
    unlisted: delete
    max_destructive: 20
";

/// Seeded users the roster deletes, with their roles as `ROLE@WORKSPACE` specs.
async fn roles_before(env: &Env) -> BTreeMap<String, BTreeSet<String>> {
    let users = env.marketo_users().await;
    let mut out = BTreeMap::new();
    for u in users {
        let email = u["email"].as_str().unwrap().to_string();
        if email == "ada.lovelace@acme.example" || u["api_only"].as_bool() == Some(true) {
            continue;
        }
        let detail = env
            .ok_patient(&["marketo", "user", &email, "-o", "json"])
            .await
            .json();
        let roles = role_specs(&detail);
        out.insert(email, roles);
    }
    assert!(
        out.len() >= 5,
        "the seed has fewer users than expected: {out:?}"
    );
    out
}

/// The invariants every interrupted run must leave, once a rerun has finished.
/// The tombstone of `email`, as `roster tombstones` lists it.
async fn tombstone_of(env: &Env, email: &str) -> Value {
    let tombstones = env.ok(&["tombstones", "-o", "json"]).await.json();
    tombstones
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["email"].as_str() == Some(email))
        .unwrap()
        .clone()
}

/// Saves the log's signed head now, as an auditor would outside Roster.
pub(super) async fn keep_head(env: &Env) {
    let dir = env.home.path().join("heads");
    std::fs::create_dir_all(&dir).unwrap();
    let n = std::fs::read_dir(&dir).unwrap().count();
    let head = env.ok(&["log", "head", "-o", "json"]).await.stdout;
    std::fs::write(dir.join(format!("{n}.json")), head).unwrap();
}

/// Every head saved along the way still verifies: no line up to it was lost or changed,
/// whatever the kills and faults did.
pub(super) async fn check_heads(env: &Env) {
    let dir = env.home.path().join("heads");
    let heads: Vec<_> = std::fs::read_dir(&dir).expect("heads were saved").collect();
    assert!(!heads.is_empty());
    for head in heads {
        let path = head.unwrap().path();
        let run = env
            .ok(&["log", "verify", "--head", path.to_str().unwrap()])
            .await;
        assert!(run.stdout.contains("verifies"), "{}", run.stdout);
    }
}

async fn check_every_deletion_is_recorded_once(
    env: &Env,
    before: &BTreeMap<String, BTreeSet<String>>,
) {
    keep_head(env).await;
    check_heads(env).await;
    for email in before.keys() {
        assert!(!env.has_marketo_user(email).await, "{email} is still there");
    }
    let tombstones = env.ok(&["tombstones", "-o", "json"]).await.json();
    let tombstones = tombstones.as_array().unwrap();
    for (email, roles) in before {
        let mine: Vec<&Value> = tombstones
            .iter()
            .filter(|t| t["email"].as_str() == Some(email))
            .collect();
        assert_eq!(mine.len(), 1, "one tombstone of {email}: {tombstones:?}");
        assert_eq!(mine[0]["status"], "deleted", "{:?}", mine[0]);
        assert_eq!(
            &role_specs(mine[0]),
            roles,
            "the tombstone of {email} keeps its roles"
        );
    }
    let log = env.ok(&["log", "-o", "json"]).await.json();
    let deletes: Vec<String> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["action"] == "delete" && l["outcome"] == "done")
        .map(|l| l["target"].as_str().unwrap().to_string())
        .collect();
    let distinct: BTreeSet<&String> = deletes.iter().collect();
    assert_eq!(
        deletes.len(),
        distinct.len(),
        "a deletion logged twice: {deletes:?}"
    );
    for email in before.keys() {
        assert!(
            distinct.contains(&format!("marketo user {email}")),
            "the deletion of {email} is not in the log: {deletes:?}"
        );
    }
    env.ok(&["log", "verify"]).await;
    // Each tombstone can be restored: the person is invited again with the same roles.
    let (email, roles) = before.iter().next().unwrap();
    // But not one rewritten in the database: its content is signed.
    let mine = tombstone_of(env, email).await;
    let id = mine["id"].as_i64().unwrap();
    let by = mine["deleted_by"].as_str().unwrap().to_string();
    env.raw_sql(&format!(
        "UPDATE tombstones SET deleted_by = 'mallory' WHERE id = {id}"
    ))
    .await;
    let refused = env
        .run_env(&["restore", "marketo", "--email", email], &[])
        .await;
    assert!(
        !refused.ok && refused.stderr.contains("was changed in the database"),
        "{}",
        refused.stderr
    );
    assert_eq!(env.invitations_to(email).await, 0);
    env.raw_sql(&format!(
        "UPDATE tombstones SET deleted_by = '{by}' WHERE id = {id}"
    ))
    .await;
    env.ok_patient(&["restore", "marketo", "--email", email])
        .await;
    let row = tombstone_of(env, email).await;
    assert_eq!(row["status"], "restored", "{row:?}");
    assert_eq!(env.invitations_to(email).await, 1);
    assert!(!roles.is_empty());
    // The roster still lists them as a leaver, yet the next plan does not take the restored
    // invitation back: the restore's exception keeps it, and the plan says until when.
    let plan = env
        .ok_patient(&[
            "plan",
            env.home.path().join("leavers.yaml").to_str().unwrap(),
            "-o",
            "json",
        ])
        .await
        .json();
    let mine = |v: &Value| v.to_string().to_lowercase().contains(&email.to_lowercase());
    assert!(
        !plan["steps"].as_array().unwrap().iter().any(mine),
        "the restored account is taken away again: {plan:#}"
    );
    assert!(
        plan["notes"].as_array().unwrap().iter().any(|n| mine(n)
            && n["message"]
                .as_str()
                .is_some_and(|m| m.contains("kept until"))),
        "{plan:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_killed_mid_way_leave_one_tombstone_each_with_its_roles() {
    // Slow calls, so each kill lands inside an offboarding (between its lookup, role
    // removal and deletion) rather than between steps.
    let env = Env::start(Duration::from_millis(120)).await;
    let before = roles_before(&env).await;
    let roster = env.write("leavers.yaml", LEAVERS);
    let roster = roster.to_str().unwrap();
    env.ok(&["plan", roster, "--out", "plan.json"]).await;

    // Kill twice, each time some way into the next step after a number of logged steps.
    for (logged, into_step_ms) in [(1, 150), (3, 330)] {
        let mut child = env
            .command()
            .args(["apply", "plan.json", "--approve"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut seen = 0;
        for _ in 0..1500 {
            seen = env.log_len().await;
            if seen >= logged {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(seen >= logged, "apply logged {seen} steps");
        // Fault injection: where in the next step the kill lands.
        tokio::time::sleep(Duration::from_millis(into_step_ms)).await;
        child.kill().unwrap();
        assert!(!child.wait().unwrap().success());
        keep_head(&env).await;
    }
    let finished = env.ok(&["apply", "plan.json", "--approve"]).await;
    assert!(finished.stderr.contains("resuming"), "{}", finished.stderr);
    check_every_deletion_is_recorded_once(&env, &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_that_happened_just_before_a_crash_closes_its_tombstone() {
    let env = Env::start(Duration::ZERO).await;
    let before = roles_before(&env).await;
    let roster = env.write("leavers.yaml", LEAVERS);
    let roster = roster.to_str().unwrap();
    // The first deletion happens, then the process dies before its tombstone says so.
    let crashed = env
        .run_env(
            &["apply", "--auto", roster, "--approve"],
            &[("ROSTER_TEST_CRASH_AFTER_DELETE", "1")],
        )
        .await;
    assert!(!crashed.ok);
    assert!(
        crashed.stderr.contains("ROSTER_TEST_CRASH_AFTER_DELETE"),
        "{}",
        crashed.stderr
    );
    let open = env.ok(&["tombstones", "-o", "json"]).await.json();
    assert_eq!(open[0]["status"], "deleting", "{open}");
    // The rerun re-plans (the account is gone, so no step for it), settles the interrupted
    // step from the apps, and closes its tombstone.
    let rerun = env.ok(&["apply", "--auto", roster, "--approve"]).await;
    assert!(
        rerun.stderr.contains("the deletion had finished"),
        "{}",
        rerun.stderr
    );
    check_every_deletion_is_recorded_once(&env, &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_under_failing_calls_converge_with_one_tombstone_each() {
    let env = Env::start_with(Faults {
        error_rate: 0.4,
        token_expiry_rate: 0.1,
        ..Faults::default()
    })
    .await;
    let before = roles_before(&env).await;
    let roster = env.write("leavers.yaml", LEAVERS);
    let roster = roster.to_str().unwrap();
    // Each run retries, and a step that still fails leaves its tombstone open for the next.
    let mut finished = false;
    for _ in 0..12 {
        let run = env
            .run_env(&["apply", "--auto", roster, "--approve"], &[])
            .await;
        keep_head(&env).await;
        if run.ok
            && env
                .plan_steps(&env.home.path().join("leavers.yaml"))
                .await
                .is_empty()
        {
            finished = true;
            break;
        }
    }
    assert!(finished, "the deletions never converged");
    check_every_deletion_is_recorded_once(&env, &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_rides_out_html_gateway_errors_in_front_of_magento() {
    // 40% of Magento calls get an nginx 502/503/504 page; before, every apply aborted on
    // the first one ("cannot reach Magento ... expected value").
    let env = Env::start_faulty(
        Faults::default(),
        roster_sandbox::magento::MagentoFaults {
            html_error_rate: 0.4,
            // And the first two, so that the apply meets some whatever the dice say.
            html_errors_first: 2,
            ..Default::default()
        },
    )
    .await;
    let example = super::example();
    let example = example.to_str().unwrap();
    let run = env
        .run_env(&["apply", "--auto", example, "--approve"], &[])
        .await;
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("from a proxy or web server in front of Magento")
            && run.stderr.contains("retrying in"),
        "the retries are shown as they happen: {}",
        run.stderr
    );
    assert_eq!(env.customers_with("nia.okafor@acme.example").await.len(), 1);
    assert_eq!(env.log_len().await, 9, "each step once");
    env.ok(&["log", "verify"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_every_answer_was_lost_is_settled_and_logged_by_the_next_run() {
    // Every Marketo write runs, then answers 604: the change lands, each answer is lost.
    let env = Env::start_with(Faults {
        write_timeout_rate: 1.0,
        ..Faults::default()
    })
    .await;
    // Grace (a mover) gains roles. (An offboarding is several calls, and the first one's
    // failure stops it before the deletion, so a single call shows the case.)
    let roster = env.write(
        "movers.yaml",
        "\
policies:
  marketo:
    managed_domains: [acme.example]
    unlisted: report
    max_destructive: 5
people:
  - email: grace.hopper@acme.example
    first_name: Grace
    last_name: Hopper
    access:
      marketo: [\"Standard User@Default\", \"Marketing User@World\", \"Standard User@EMEA\"]
",
    );
    let roster = roster.to_str().unwrap();
    let retries = [("ROSTER_MARKETO_MAX_RETRIES", "1")];
    let first = env
        .run_env(&["apply", "--auto", roster, "--approve"], &retries)
        .await;
    assert!(!first.ok, "{}\n{}", first.stdout, first.stderr);
    let log = env.ok(&["log", "-o", "json"]).await.json();
    let failed: Vec<Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["outcome"] == "failed")
        .cloned()
        .collect();
    assert!(!failed.is_empty(), "a failed step is logged: {log:#}");
    // The writes landed all the same, so the roster asks for nothing more...
    let steps = env.plan_steps(&env.home.path().join("movers.yaml")).await;
    assert!(
        steps
            .iter()
            .all(|s| !s.to_string().contains("grace.hopper")),
        "the failed write did land: {}\n{}",
        serde_json::to_string_pretty(&steps).unwrap(),
        first.stderr
    );
    // ...and the next run settles each failed step from the apps and logs it done.
    let next = env
        .run_env(&["apply", "--auto", roster, "--approve"], &retries)
        .await;
    assert!(next.ok, "{}\n{}", next.stdout, next.stderr);
    assert!(
        next.stderr
            .contains("every attempt failed, but the apps show it ran"),
        "{}",
        next.stderr
    );
    let log = env.ok(&["log", "-o", "json"]).await.json();
    for line in &failed {
        let same = |l: &&Value| {
            l["plan"] == line["plan"]
                && l["action"] == line["action"]
                && l["target"] == line["target"]
        };
        assert!(
            log.as_array()
                .unwrap()
                .iter()
                .filter(same)
                .any(|l| l["outcome"] == "done"),
            "the write of {line} is on record as done: {log:#}"
        );
    }
    // A third run has nothing left to settle.
    let third = env
        .run_env(&["apply", "--auto", roster, "--approve"], &retries)
        .await;
    assert!(third.ok, "{}", third.stderr);
    assert!(!third.stderr.contains("had failed"), "{}", third.stderr);
    env.ok(&["log", "verify"]).await;
}
