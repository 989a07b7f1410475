//! One roster drives both halves of a Marketo subscription on Adobe Identity: joiners get
//! the subscription's product profile in the Adobe Admin Console and their roles once
//! Marketo's sync shows them; movers' roles change in Marketo; leavers lose the profile,
//! with a tombstone, and Marketo removes them at its sync.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Env, kinds};

const ROSTER: &str = "\
policies:
  marketo:
    managed_domains: [acme.example]
    protected: [ada.lovelace@acme.example]
    unlisted: report
    max_destructive: 5
    adobe_leaver: delete_account
people:
  - email: new.joiner@acme.example
    first_name: New
    last_name: Joiner
    access:
      marketo: [\"Standard User@Default\", \"Standard User@EMEA\"]
  - email: grace.hopper@acme.example
    first_name: Grace
    last_name: Hopper
    access:
      marketo: [\"Standard User@Default\", \"Marketing User@World\", \"Standard User@EMEA\"]
  - email: margaret.hamilton@acme.example
    first_name: Margaret
    last_name: Hamilton
    status: leaver
";

const DELAY: Duration = Duration::from_millis(800);

/// Waits (polling the Marketo sandbox through Roster) until `check` holds, up to 20 s.
async fn until_marketo(env: &Env, what: &str, check: impl Fn(&[Value]) -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if check(&env.marketo_users().await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 20 s");
}

fn has(users: &[Value], email: &str) -> bool {
    users.iter().any(|u| u["email"] == email)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_roster_drives_the_adobe_and_the_marketo_half() {
    let env = Env::start_ims(DELAY).await;
    let roster = env.write("ims.yaml", ROSTER);
    let path = roster.to_str().unwrap();

    // Adobe steps for the joiner and the leaver, a Marketo step for the mover.
    let steps = env.plan_steps(&roster).await;
    assert_eq!(
        kinds(&steps),
        super::pairs(&[
            ("adobe_add_profile", "new.joiner@acme.example"),
            ("marketo_grant", "grace.hopper@acme.example"),
            ("adobe_remove_profile", "margaret.hamilton@acme.example"),
        ]),
        "{steps:#?}"
    );
    let remove = steps
        .iter()
        .find(|s| s["action"]["kind"] == "adobe_remove_profile")
        .unwrap();
    assert_eq!(remove["destructive"], true);
    assert_eq!(remove["action"]["leave"], "delete_account", "{remove:#}");

    // Unapproved, the removal waits; approved, everything runs.
    let refused = env.run_env(&["apply", "--auto", path], &[]).await;
    assert!(
        !refused.ok && refused.stderr.contains("no approval"),
        "{}",
        refused.stderr
    );
    let applied = env.ok(&["apply", "--auto", path, "--approve"]).await;
    assert!(
        applied
            .stderr
            .contains("Marketo adds them at its next sync")
            || applied
                .stdout
                .contains("Marketo adds them at its next sync"),
        "{}{}",
        applied.stdout,
        applied.stderr
    );

    // Before Marketo's sync: the joiner is waited for, nothing is asked twice.
    let waiting = env.ok_patient(&["plan", path, "-o", "json"]).await.json();
    let notes = waiting["notes"].to_string();
    assert!(
        waiting["steps"].as_array().unwrap().is_empty() || notes.contains("waiting"),
        "{waiting:#}"
    );
    assert!(
        !waiting["steps"].to_string().contains("adobe_add_profile"),
        "{waiting:#}"
    );

    // After it: the joiner is a Marketo user, the leaver is not.
    until_marketo(&env, "Marketo's sync", |users| {
        has(users, "new.joiner@acme.example") && !has(users, "margaret.hamilton@acme.example")
    })
    .await;
    let steps = env.plan_steps(&roster).await;
    assert_eq!(
        kinds(&steps),
        super::pairs(&[("marketo_grant", "new.joiner@acme.example")]),
        "the roster's roles once the joiner appears: {steps:#?}"
    );
    env.ok(&["apply", "--auto", path]).await;
    assert!(
        env.plan_steps(&roster).await.is_empty(),
        "nothing left to do"
    );

    // The leaver's tombstone keeps her roles and the profile.
    let tombstones = env.ok(&["tombstones", "-o", "json"]).await.json();
    let margaret = tombstones
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["email"] == "margaret.hamilton@acme.example")
        .expect("a tombstone");
    assert_eq!(margaret["status"], "deleted", "{margaret}");
    assert!(
        !margaret["roles"].as_array().unwrap().is_empty(),
        "{margaret}"
    );
    // Per adobe_leaver, the leaver's Federated ID (the organization's own) is gone too.
    let adobe = env.ok(&["audit", "adobe", "-o", "json"]).await.json();
    assert!(
        !adobe["users"]
            .to_string()
            .contains("margaret.hamilton@acme.example"),
        "{adobe:#}"
    );
    let log = env.ok(&["log", "-o", "json"]).await.json();
    let done: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["outcome"] == "done" && l["app"] == "marketo")
        .collect();
    assert_eq!(done.len(), 4, "each step once: {log:#}");

    // Restored: the profile given back (her account made again), Marketo's sync, then the
    // roles her tombstone recorded; the roster still says leaver, and the restore's
    // exception keeps her.
    let restored = env
        .ok(&[
            "restore",
            "marketo",
            "--email",
            "margaret.hamilton@acme.example",
        ])
        .await;
    assert!(
        format!("{}{}", restored.stdout, restored.stderr)
            .contains("again in the Adobe Admin Console"),
        "{}{}",
        restored.stdout,
        restored.stderr
    );
    until_marketo(&env, "Marketo's sync of the restored account", |users| {
        has(users, "margaret.hamilton@acme.example")
    })
    .await;
    let steps = env.plan_steps(&roster).await;
    assert_eq!(
        kinds(&steps),
        super::pairs(&[("marketo_grant", "margaret.hamilton@acme.example")]),
        "{steps:#?}"
    );
    let mut granted: Vec<&str> = steps[0]["action"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["workspace"].as_str().unwrap())
        .collect();
    granted.sort();
    assert_eq!(granted, vec!["EMEA", "US"], "{steps:#?}");
    env.ok(&["apply", "--auto", path]).await;
    let after = env.ok_patient(&["plan", path, "-o", "json"]).await.json();
    assert!(after["steps"].as_array().unwrap().is_empty(), "{after:#}");
    assert!(
        after["notes"].to_string().contains("kept until"),
        "{after:#}"
    );
    // The restore is finished once its roles are there: a role taken away by hand
    // afterwards is not granted again behind the person who took it.
    let us = steps[0]["action"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["workspace"] == "US")
        .unwrap();
    let spec = format!("{}@US", us["role"].as_str().unwrap());
    env.ok(&[
        "marketo",
        "revoke",
        "margaret.hamilton@acme.example",
        "--role",
        &spec,
    ])
    .await;
    let later = env.ok_patient(&["plan", path, "-o", "json"]).await.json();
    assert!(later["steps"].as_array().unwrap().is_empty(), "{later:#}");
    env.ok(&["log", "verify"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_adobe_step_converges_with_one_account_and_one_log_line() {
    let env = Env::start_ims(DELAY).await;
    let roster = env.write(
        "joiner.yaml",
        "\
policies:
  marketo:
    managed_domains: [acme.example]
    unlisted: report
people:
  - email: new.joiner@acme.example
    first_name: New
    last_name: Joiner
    access:
      marketo: [\"Standard User@Default\", \"Standard User@EMEA\"]
",
    );
    let path = roster.to_str().unwrap();
    // The profile is given, then the process dies before the step is recorded.
    let crashed = env
        .run_env(
            &["apply", "--auto", path],
            &[("ROSTER_TEST_CRASH", "1:unrecorded")],
        )
        .await;
    assert!(
        !crashed.ok && crashed.stderr.contains("ROSTER_TEST_CRASH"),
        "{}",
        crashed.stderr
    );
    // The rerun finds the profile given, records the step done once, and asks nothing more
    // of the Admin Console; after Marketo's sync the roles follow.
    let rerun = env.ok(&["apply", "--auto", path]).await;
    assert!(
        rerun.stderr.contains("the apps show it ran"),
        "{}",
        rerun.stderr
    );
    until_marketo(&env, "Marketo's sync", |users| {
        has(users, "new.joiner@acme.example")
    })
    .await;
    env.ok(&["apply", "--auto", path]).await;
    assert!(env.plan_steps(&roster).await.is_empty());
    let log = env.ok(&["log", "-o", "json"]).await.json();
    let lines = |target: &str| {
        log.as_array()
            .unwrap()
            .iter()
            .filter(|l| l["outcome"] == "done" && l["target"] == target)
            .count()
    };
    assert_eq!(lines("adobe user new.joiner@acme.example"), 1, "{log:#}");
    assert_eq!(lines("marketo user new.joiner@acme.example"), 1, "{log:#}");
    let audit = env.ok(&["audit", "adobe", "-o", "json"]).await.json();
    let accounts = audit["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["email"] == "new.joiner@acme.example")
        .count();
    assert_eq!(accounts, 1, "one Adobe account");
    // The Marketo audit shows each user's Adobe identity and profiles, and calls out
    // those Marketo shows without a profile of their own (Katherine has it through a user
    // group).
    let audit = env.ok(&["audit", "marketo", "-o", "json"]).await.json();
    let adobe = &audit["adobe"];
    assert!(
        adobe["in_marketo_without_profile"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "katherine.johnson@acme.example"),
        "{adobe:#}"
    );
    assert!(
        adobe["holders"].as_array().unwrap().iter().any(|h| h["email"]
            == "new.joiner@acme.example"
            && h["identity_type"] == "federatedID"),
        "{adobe:#}"
    );
    let table = env.ok(&["audit", "marketo"]).await.stdout;
    assert!(
        table.contains("ADOBE PROFILES")
            && table.contains("standard users in none of those profiles"),
        "{table}"
    );
    // The HTML report too: the columns, and the call-outs with their people.
    let report = env.home.path().join("audit.html");
    env.ok(&["audit", "marketo", "--html", report.to_str().unwrap()])
        .await;
    let html = std::fs::read_to_string(&report).unwrap();
    let without = html
        .split("id=\"adobe-without-profile\"")
        .nth(1)
        .and_then(|rest| rest.split("</p>").next())
        .unwrap_or_default();
    assert!(
        html.contains("<th>Adobe product profiles</th>")
            && html.contains("federatedID")
            && without.contains("katherine.johnson@acme.example"),
        "{html}"
    );
    env.ok(&["log", "verify"]).await;
}

#[test]
fn the_demo_runs_on_adobe_identity_offline() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_roster"))
        .env_clear()
        .env("HOME", dir.path())
        .args(["demo", "--ims", "--dir", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{all}");
    // The Adobe steps, then the Marketo role steps; the sync; the joiner's roles; nothing left.
    for expected in [
        "give nia.okafor@acme.example the Adobe product profile Marketo Engage - Production",
        "take the Adobe product profile Marketo Engage - Production from margaret.hamilton@acme.example",
        "give nia.okafor@acme.example Creative Cloud All Apps in the Adobe Admin Console",
        "4 steps done now, 0 done before, 0 failed",
        "grant Marketing User@Default to Marketo user nia.okafor@acme.example: done",
        "Nothing to do: the apps match",
    ] {
        assert!(all.contains(expected), "{expected:?} missing:\n{all}");
    }
    let tombstone = all
        .lines()
        .find(|l| l.contains("margaret.hamilton@acme.example") && l.contains("deleted"))
        .unwrap_or_else(|| panic!("no tombstone line:\n{all}"));
    assert!(tombstone.contains("Standard User@US"), "{tombstone}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joiner_marketo_never_shows_is_reported_after_the_sync_timeout() {
    // Marketo's sync takes an hour here; Roster is told to wait no time at all.
    let env = Env::start_ims(Duration::from_secs(3600)).await;
    let roster = env.write(
        "late.yaml",
        "\
policies:
  marketo:
    managed_domains: [acme.example]
    unlisted: report
people:
  - email: late.joiner@acme.example
    first_name: Late
    last_name: Joiner
    access:
      marketo: [\"Standard User@Default\"]
",
    );
    let path = roster.to_str().unwrap();
    env.ok(&["apply", "--auto", path]).await;
    let timeout = [("ROSTER_MARKETO_SYNC_TIMEOUT", "0s")];
    let plan = env
        .run_env(&["plan", path, "-o", "json"], &timeout)
        .await
        .json();
    let notes = plan["notes"].to_string();
    assert!(
        notes.contains(
            "has not appeared in Marketo although Roster gave them Marketo Engage - Production"
        ),
        "{plan:#}"
    );
    assert!(
        plan["steps"].as_array().unwrap().is_empty(),
        "asked once only: {plan:#}"
    );
    // Within the timeout, it is a wait.
    let plan = env.ok(&["plan", path, "-o", "json"]).await.json();
    assert!(
        plan["notes"]
            .to_string()
            .contains("waiting for Marketo's sync"),
        "{plan:#}"
    );
}

/// The Admin Console as an app of its own: the roster's product profiles and user groups
/// given and taken, nothing else in the organization touched, an organization admin kept,
/// a leaver offboarded with a tombstone and restored from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_console_is_an_app_of_its_own() {
    const ADOBE_ROSTER: &str = "\
policies:
  marketo:
    managed_domains: [nobody.example]
  adobe:
    managed_domains: [acme.example]
    unlisted: delete
    adobe_leaver: remove_from_org
    max_destructive: 5
people:
  - email: new.designer@acme.example
    first_name: New
    last_name: Designer
    access:
      adobe: { profiles: [\"creative cloud all apps\"] }
  - email: alan.turing@acme.example
    first_name: Alan
    last_name: Turing
    access:
      adobe: { groups: [\"Marketing Ops\"] }
  - email: katherine.johnson@acme.example
    first_name: Katherine
    last_name: Johnson
    status: leaver
";
    let env = Env::start_ims(DELAY).await;
    let roster = env.write("adobe.yaml", ADOBE_ROSTER);
    let path = roster.to_str().unwrap();

    let plan = env.ok_patient(&["plan", path, "-o", "json"]).await.json();
    let steps = plan["steps"].as_array().cloned().unwrap();
    assert_eq!(
        kinds(&steps),
        super::pairs(&[
            ("adobe_grant", "new.designer@acme.example"),
            ("adobe_grant", "alan.turing@acme.example"),
            ("adobe_revoke", "alan.turing@acme.example"),
            ("adobe_offboard", "katherine.johnson@acme.example"),
        ]),
        "{plan:#}"
    );
    // Names as the organization spells them; what nobody manages is left alone (Alan's
    // Marketo profile, Linus's Acrobat); the organization admin keeps what they hold.
    assert_eq!(steps[0]["action"]["names"][0], "Creative Cloud All Apps");
    assert_eq!(steps[2]["action"]["names"].as_array().unwrap().len(), 1);
    assert_eq!(steps[3]["action"]["leave"], "remove_from_org");
    assert!(steps[2]["destructive"] == true && steps[3]["destructive"] == true);
    assert!(steps[0]["app"] == "adobe" && steps[0]["destructive"] == false);
    assert!(
        plan["notes"].to_string().contains("it.admin@acme.example")
            && plan["notes"].to_string().contains("_org_admin"),
        "{plan:#}"
    );

    env.ok(&["apply", "--auto", path, "--approve"]).await;
    let audit = env.ok(&["audit", "adobe", "-o", "json"]).await.json();
    let user = |email: &str| {
        audit["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"].as_str().map(str::to_lowercase).as_deref() == Some(email))
            .cloned()
    };
    let designer = user("new.designer@acme.example").expect("created");
    assert_eq!(designer["type"], "federatedID", "{designer}");
    assert!(
        designer["product_profiles"]
            .to_string()
            .contains("Creative Cloud All Apps")
    );
    let group = audit["user_groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["user_group"] == "Marketing Ops")
        .cloned()
        .unwrap();
    assert_eq!(
        group["users"],
        json!(["alan.turing@acme.example"]),
        "{group}"
    );
    let alan = user("alan.turing@acme.example").unwrap();
    assert!(
        alan["user_groups"].to_string().contains("Marketing Ops"),
        "{alan}"
    );
    assert!(
        !alan["product_profiles"]
            .to_string()
            .contains("Creative Cloud"),
        "{alan}"
    );
    assert!(
        alan["product_profiles"]
            .to_string()
            .contains("Marketo Engage - Production"),
        "{alan}"
    );
    assert!(
        user("katherine.johnson@acme.example").is_none(),
        "removed from the organization"
    );
    assert!(
        user("it.admin@acme.example").unwrap()["product_profiles"]
            .to_string()
            .contains("Creative Cloud")
    );
    assert!(
        env.plan_steps(&roster).await.is_empty(),
        "a second plan has nothing to do"
    );

    // Restored from the tombstone: back in the organization with the group.
    let tombstones = env.ok(&["tombstones", "-o", "json"]).await.json();
    let katherine = tombstones
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["email"] == "katherine.johnson@acme.example")
        .cloned()
        .expect("a tombstone");
    assert_eq!(katherine["app"], "adobe", "{katherine}");
    assert_eq!(katherine["status"], "deleted", "{katherine}");
    // A tombstone rewritten in the database restores nothing (every path to a restore goes
    // through the connector's check); put back, it restores.
    let id = katherine["id"].as_i64().unwrap();
    let by = katherine["deleted_by"].as_str().unwrap().to_string();
    env.raw_sql(&format!(
        "UPDATE tombstones SET deleted_by = 'mallory' WHERE id = {id}"
    ))
    .await;
    let refused = env
        .fails(&[
            "restore",
            "adobe",
            "--email",
            "katherine.johnson@acme.example",
        ])
        .await;
    assert!(
        refused.stderr.contains("was changed in the database"),
        "{}",
        refused.stderr
    );
    env.raw_sql(&format!(
        "UPDATE tombstones SET deleted_by = '{by}' WHERE id = {id}"
    ))
    .await;
    env.ok(&[
        "restore",
        "adobe",
        "--email",
        "katherine.johnson@acme.example",
    ])
    .await;
    let audit = env.ok(&["audit", "adobe", "-o", "json"]).await.json();
    assert!(
        audit["users"].as_array().unwrap().iter().any(|u| u["email"]
            .as_str()
            .is_some_and(|e| e.eq_ignore_ascii_case("katherine.johnson@acme.example"))
            && u["user_groups"].to_string().contains("Marketing Ops")),
        "{audit:#}"
    );
    // The roster still says leaver: the restore's exception keeps her, and says so.
    let after = env.ok_patient(&["plan", path, "-o", "json"]).await.json();
    assert!(after["steps"].as_array().unwrap().is_empty(), "{after:#}");
    assert!(
        after["notes"].to_string().contains("kept until"),
        "{after:#}"
    );

    // The Marketo subscription's own profile is Marketo's access, and admin roles are not
    // the API's to give: both refused with what to do instead.
    let wrong = env.write(
        "wrong.yaml",
        "people:\n  - email: x@acme.example\n    first_name: X\n    last_name: Y\n    access:\n      adobe: { profiles: [\"Marketo Engage - Production\", \"_org_admin\", \"Photoshop\"] }\n",
    );
    let refused = env.fails(&["plan", wrong.to_str().unwrap()]).await;
    for expected in [
        "list Marketo roles under marketo:",
        "administrative role",
        "unknown Adobe product profile \"Photoshop\"",
    ] {
        assert!(
            refused.stderr.contains(expected),
            "{expected}: {}",
            refused.stderr
        );
    }
}

/// An Adobe organization configured only halfway (an org id, no credential) stops only the
/// rosters that give Adobe access, and says what is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_configured_adobe_organization_stops_only_rosters_that_use_it() {
    let env = Env::start(Duration::ZERO).await;
    let half = [("ROSTER_ADOBE_ORG_ID", "0A1B2C3D4E5F60718293A4B5@AdobeOrg")];
    let plain = env.write(
        "plain.yaml",
        "people:\n  - email: a@acme.example\n    first_name: A\n    last_name: B\n    access:\n      magento: { group: General }\n",
    );
    let run = env
        .run_env(&["plan", plain.to_str().unwrap(), "-o", "json"], &half)
        .await;
    assert!(run.ok, "{}", run.stderr);
    let adobe = env.write(
        "adobe.yaml",
        "people:\n  - email: a@acme.example\n    first_name: A\n    last_name: B\n    access:\n      adobe: { profiles: [\"Acrobat Pro\"] }\n",
    );
    let run = env.run_env(&["plan", adobe.to_str().unwrap()], &half).await;
    assert!(
        !run.ok
            && run.stderr.contains("cannot be used")
            && run.stderr.contains("ROSTER_ADOBE_CLIENT_ID"),
        "{}",
        run.stderr
    );
}
