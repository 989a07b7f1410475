//! Reads that follow what Roster manages, not the size of the store: a plan with
//! `managed_domains` asks Magento only for the managed customers (and the roster's people
//! outside those domains, by exact email), which the sandbox counts as it serves them.

use std::time::Duration;

use serde_json::Value;

use super::Env;

/// Customers the Magento sandbox has returned so far.
async fn served(env: &Env) -> u64 {
    let stats: Value = env
        .http
        .get(format!("{}/sandbox/stats", env.magento.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    stats["customers_served"]
        .as_u64()
        .expect("the sandbox counts")
}

fn roster(managed: &str) -> String {
    format!(
        "\
policies:
  magento:
{managed}    unlisted: report
people:
  - email: grace.hopper@acme.example
    first_name: Grace
    last_name: Hopper
    access:
      magento: {{ group: General }}
  - email: pat.partner@partner.example
    first_name: Pat
    last_name: Partner
    access:
      magento: {{ group: General }}
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_with_managed_domains_reads_only_the_managed_customers() {
    let env = Env::start(Duration::ZERO).await;
    // Both people become customers of the main website, next to the store's 24 others
    // there (example.com).
    let everyone = env.write("everyone.yaml", &roster(""));
    env.ok(&["apply", "--auto", everyone.to_str().unwrap()])
        .await;

    // Without managed_domains every customer of the website is read.
    let before = served(&env).await;
    let all = env
        .ok(&["plan", everyone.to_str().unwrap(), "-o", "json"])
        .await
        .json();
    assert!(all["steps"].as_array().unwrap().is_empty(), "{all:#}");
    let read_all = served(&env).await - before;
    assert!(read_all >= 26, "every customer of the website: {read_all}");

    // With them: Grace (acme.example) and Pat, whom the roster lists outside them, and no
    // one else.
    let managed = env.write(
        "managed.yaml",
        &roster("    managed_domains: [acme.example]\n"),
    );
    let before = served(&env).await;
    let plan = env
        .ok(&["plan", managed.to_str().unwrap(), "-o", "json"])
        .await
        .json();
    assert_eq!(served(&env).await - before, 2, "{plan:#}");
    assert!(plan["steps"].as_array().unwrap().is_empty(), "{plan:#}");
    // The unmanaged customers the full read reported are out of view, as they should be.
    assert!(all["notes"].to_string().contains("@example.com"), "{all:#}");
    assert!(
        !plan["notes"].to_string().contains("@example.com"),
        "{plan:#}"
    );
}

/// Offboarding many customers goes through Magento's bulk deletion: each keeps its
/// tombstone and its own log line, in far fewer calls than one deletion each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_leavers_are_deleted_through_the_bulk_api_each_with_its_tombstone() {
    let env = Env::start(Duration::ZERO).await;
    let roster = env.write(
        "cleanup.yaml",
        "\
policies:
  magento:
    managed_domains: [example.com]
    unlisted: delete
    max_destructive: 100%
people:
  - email: someone@acme.example
    first_name: Some
    last_name: One
",
    );
    let path = roster.to_str().unwrap();
    let stats = |env: &Env| {
        let url = format!("{}/sandbox/stats", env.magento.base_url());
        let http = env.http.clone();
        async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let before = stats(&env).await["customers"].as_u64().unwrap();
    let steps = env.plan_steps(&roster).await;
    let deletions = steps
        .iter()
        .filter(|s| s["action"]["kind"] == "magento_delete_customer")
        .count();
    assert!(deletions >= 20, "{steps:#?}");
    let applied = env.ok(&["apply", "--auto", path, "--approve"]).await;
    assert!(
        applied.stdout.contains("through Magento's bulk API")
            || applied.stderr.contains("through Magento's bulk API"),
        "{}\n{}",
        applied.stdout,
        applied.stderr
    );
    let calls: u64 = applied
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("magento: "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no cost line: {}", applied.stderr));
    assert!(
        calls < deletions as u64,
        "{calls} calls for {deletions} deletions"
    );
    let after = stats(&env).await["customers"].as_u64().unwrap();
    assert_eq!(before - after, deletions as u64);
    let tombstones = env.ok(&["tombstones", "-o", "json"]).await.json();
    let deleted = tombstones
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["app"] == "magento" && t["status"] == "deleted")
        .count();
    assert_eq!(deleted, deletions);
    let log = env.ok(&["log", "-o", "json"]).await.json();
    let done = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["app"] == "magento" && l["outcome"] == "done")
        .count();
    assert_eq!(done, deletions, "one line per step");
    assert!(env.plan_steps(&roster).await.is_empty(), "nothing left");
    env.ok(&["log", "verify"]).await;
}

/// `roster plan --person`: a plan for one person reads their accounts alone (their
/// customer and a count from Magento, one user's roles from Marketo), plans nothing for anyone else, says so,
/// and `roster apply` of it checks the same person again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_for_one_person_reads_and_changes_only_their_accounts() {
    let env = Env::start(Duration::ZERO).await;
    let first = env.write("first.yaml", &roster(""));
    env.ok(&["apply", "--auto", first.to_str().unwrap()]).await;
    // Both move to another group in the roster; Grace alone is planned for.
    let moved = env.write("moved.yaml", &roster("").replace("General", "Wholesale"));
    let path = moved.to_str().unwrap();
    let marketo_reads = |env: &Env| {
        let url = format!("{}/sandbox/stats", env.marketo.base_url());
        let http = env.http.clone();
        async move {
            let v: Value = http.get(url).send().await.unwrap().json().await.unwrap();
            v["usersRead"].as_u64().unwrap()
        }
    };
    let (customers, users) = (served(&env).await, marketo_reads(&env).await);
    let plan = env
        .ok(&[
            "plan",
            path,
            "--person",
            "Grace.Hopper@acme.example",
            "-o",
            "json",
        ])
        .await
        .json();
    // Grace's customer, and the one row Magento loads for the managed count (a page of one
    // asking for `total_count`): not the store's other customers.
    assert_eq!(served(&env).await - customers, 2, "{plan:#}");
    // Grace has a Marketo user in the sandbox: hers alone is read.
    assert_eq!(marketo_reads(&env).await - users, 1, "{plan:#}");
    let steps = plan["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{plan:#}");
    assert!(
        steps[0]["action"]
            .to_string()
            .contains("grace.hopper@acme.example"),
        "{plan:#}"
    );
    assert_eq!(
        plan["targeted"]["people"],
        serde_json::json!(["grace.hopper@acme.example"])
    );
    let table = env
        .ok(&["plan", path, "--person", "grace.hopper@acme.example"])
        .await
        .stdout;
    assert!(table.contains("targeted at 1 person"), "{table}");
    // Saved and applied: the apply reads Grace again, and Pat is still to do afterwards.
    env.ok(&[
        "plan",
        path,
        "--person",
        "grace.hopper@acme.example",
        "--out",
        "grace.json",
    ])
    .await;
    env.ok(&["apply", "grace.json"]).await;
    let rest = env.plan_steps(&moved).await;
    assert_eq!(rest.len(), 1, "{rest:#?}");
    assert!(
        rest[0]["action"]
            .to_string()
            .contains("pat.partner@partner.example"),
        "{rest:#?}"
    );
    let bad = env.fails(&["plan", path, "--person", "not an email"]).await;
    assert!(bad.stderr.contains("--person"), "{}", bad.stderr);
}
