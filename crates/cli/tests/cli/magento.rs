//! `roster magento|audit magento|provision magento|offboard magento` against an in-process
//! Magento sandbox, run as a user would run them.

use std::process::Command;

use roster_domain::Secret;
use roster_sandbox::magento::{self, MagentoConfig, RunningMagento};
use serde_json::Value;
use tempfile::TempDir;

use super::{Run, run_checked};

const USER: &str = "cli-admin";
const PASSWORD: &str = "Cli-Admin-Pass-1";

struct Env {
    sandbox: RunningMagento,
    _data: TempDir,
    home: TempDir,
}

impl Env {
    async fn start(admin_api: bool) -> Self {
        let data = tempfile::tempdir().unwrap();
        let mut c = MagentoConfig::new(data.path());
        c.listen = "127.0.0.1:0".parse().unwrap();
        c.admin_user = Some(USER.into());
        c.admin_password = Some(Secret::new(PASSWORD));
        c.customers = 30;
        c.admin_users_api = admin_api;
        Self {
            sandbox: magento::start(c).await.unwrap(),
            _data: data,
            home: tempfile::tempdir().unwrap(),
        }
    }

    async fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_roster"));
        cmd.env_clear()
            .env("HOME", self.home.path())
            .env("USER", "not-the-actor")
            .env("ROSTER_ACTOR", "cli-tester")
            .env("ROSTER_STATE", self.home.path().join("state"))
            .env("ROSTER_MAGENTO_URL", self.sandbox.base_url())
            .env("ROSTER_MAGENTO_USERNAME", USER)
            .env("ROSTER_MAGENTO_PASSWORD", PASSWORD)
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        run_checked(cmd, &[PASSWORD]).await
    }

    async fn ok(&self, args: &[&str]) -> Run {
        let run = self.run_with(args, &[]).await;
        assert!(
            run.ok,
            "roster {args:?} failed:\n{}\n{}",
            run.stdout, run.stderr
        );
        run
    }

    /// Creates the admin user `ops` (Customer Service) with a first password.
    async fn provision_ops_admin(&self) -> Run {
        self.provision_ops_admin_with(&[("ROSTER_MAGENTO_NEW_ADMIN_PASSWORD", "Opsie12345")])
            .await
    }

    async fn provision_ops_admin_with(&self, env: &[(&str, &str)]) -> Run {
        self.run_with(
            &[
                "provision",
                "magento",
                "--email",
                "ops@shop.example",
                "--first",
                "O",
                "--last",
                "P",
                "--admin",
                "ops",
                "--role",
                "Customer Service",
            ],
            env,
        )
        .await
    }

    async fn json(&self, args: &[&str]) -> Value {
        self.ok(args).await.json()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_commands_and_the_audit() {
    let env = Env::start(true).await;
    let all = env.json(&["magento", "customers", "-o", "json"]).await;
    assert_eq!(all.as_array().unwrap().len(), 30);
    let wholesale = env
        .json(&[
            "magento",
            "customers",
            "--filter",
            "group_id=2",
            "-o",
            "json",
        ])
        .await;
    assert!(
        wholesale
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["group_id"] == 2)
    );
    let liked = env
        .json(&[
            "magento",
            "customers",
            "--filter",
            "email:like:roni%",
            "-o",
            "json",
        ])
        .await;
    assert_eq!(liked.as_array().unwrap().len(), 1);
    let csv = env.ok(&["magento", "groups", "-o", "csv"]).await.stdout;
    assert!(
        csv.starts_with("id,code,tax class\n") && csv.contains("Wholesale"),
        "{csv}"
    );
    let one = env
        .json(&["magento", "customer", "roni_cost@example.com", "-o", "json"])
        .await;
    assert!(!one["addresses"].as_array().unwrap().is_empty());
    assert!(env.ok(&["magento", "admins"]).await.stdout.contains(USER));

    let audit = env.json(&["audit", "magento", "-o", "json"]).await;
    let total: u64 = audit["by_website_and_group"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["customers"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 30);
    assert_eq!(audit["customers"], 30);
    assert_eq!(audit["admin_users"][0]["role_name"], "Administrators");
    // The printable audit report, against a roster that lists one customer with another
    // group: every account, the difference named, a content hash, the log head, a sign-off.
    let roster = env.home.path().join("people.yaml");
    std::fs::write(
        &roster,
        "people:\n  - email: roni_cost@example.com\n    first_name: Veronica\n    last_name: Costello\n    access:\n      magento: { group: Wholesale }\n",
    )
    .unwrap();
    let report = env.home.path().join("audit.html");
    env.ok(&[
        "audit",
        "magento",
        "--html",
        report.to_str().unwrap(),
        "--roster",
        roster.to_str().unwrap(),
    ])
    .await;
    let html = std::fs::read_to_string(&report).unwrap();
    for text in [
        "Magento access audit",
        "roni_cost@example.com",
        "roster gives, app lacks: Wholesale",
        "not in the roster",
        "Content SHA-256",
        "Sign-off",
        "counter(page)",
        "by cli-tester",
    ] {
        assert!(html.contains(text), "the report lacks {text:?}");
    }
    // Every customer of the website read (`base`, Magento's first, id 1) and the admin user.
    assert!(html.contains("the customers of website base"));
    let website_customers: u64 = audit["by_website_and_group"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["website_id"] == 1)
        .map(|x| x["customers"].as_u64().unwrap())
        .sum();
    assert!(website_customers > 0 && website_customers < 30);
    assert_eq!(
        html.matches("<tr><td>").count() as u64,
        website_customers + 1 + 3,
        "the website's customers, the admin, 3 sign-off rows"
    );
    // JSON lines: every customer as its page arrives, with its website and group by name.
    let lines = env.ok(&["audit", "magento", "-o", "jsonl"]).await.stdout;
    let rows: Vec<serde_json::Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 30, "{lines}");
    assert!(
        rows.iter()
            .any(|r| r["email"] == "roni_cost@example.com" && r["group"] == "General"),
        "{lines}"
    );
    assert!(rows.iter().all(|r| r["website"].is_string()), "{lines}");

    let bad = env
        .run_with(
            &["magento", "groups"],
            &[("ROSTER_MAGENTO_PASSWORD", "Wrong-Pass-77")],
        )
        .await;
    assert!(
        !bad.ok
            && bad.stderr.contains("refused the admin sign-in")
            && !bad.stderr.contains("Wrong-Pass-77"),
        "{}",
        bad.stderr
    );

    let core = Env::start(false).await;
    let run = core.ok(&["audit", "magento"]).await;
    assert!(
        run.stderr.contains("no REST endpoints for admin users")
            && run.stderr.contains("admin:user:create"),
        "{}",
        run.stderr
    );
    let admins = core.run_with(&["magento", "admins"], &[]).await;
    assert!(
        !admins.ok && admins.stderr.contains("System > Permissions"),
        "{}",
        admins.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regroup_is_a_dry_run_until_yes_and_keeps_addresses() {
    let env = Env::start(false).await;
    let before = env
        .json(&[
            "magento",
            "customers",
            "--filter",
            "group_id=1",
            "-o",
            "json",
        ])
        .await;
    let n = before.as_array().unwrap().len();
    let dry = env
        .ok(&[
            "magento", "regroup", "--from", "General", "--to", "retailer",
        ])
        .await;
    assert!(
        dry.stdout
            .contains(&format!("{n} customer(s) in General match"))
            && dry.stdout.contains("dry run"),
        "{}",
        dry.stdout
    );
    assert_eq!(
        env.json(&[
            "magento",
            "customers",
            "--filter",
            "group_id=1",
            "-o",
            "json"
        ])
        .await
        .as_array()
        .unwrap()
        .len(),
        n
    );

    let done = env
        .ok(&[
            "magento", "regroup", "--from", "General", "--to", "Retailer", "--chunk", "4", "--yes",
        ])
        .await;
    assert!(
        done.stdout.contains(&format!(
            "{n} of {n} operations complete in {} bulk(s)",
            n.div_ceil(4)
        )),
        "{}",
        done.stdout
    );
    assert!(
        env.json(&[
            "magento",
            "customers",
            "--filter",
            "group_id=1",
            "-o",
            "json"
        ])
        .await
        .as_array()
        .unwrap()
        .is_empty()
    );
    for c in before.as_array().unwrap() {
        let now = env
            .json(&["magento", "customer", &c["id"].to_string(), "-o", "json"])
            .await;
        assert_eq!(now["group_id"], 3);
        assert_eq!(now["addresses"], c["addresses"]);
    }
    let same = env
        .run_with(
            &["magento", "regroup", "--from", "1", "--to", "General"],
            &[],
        )
        .await;
    assert!(!same.ok && same.stderr.contains("same group"));
    let unknown = env
        .run_with(
            &["magento", "regroup", "--from", "Gold", "--to", "General"],
            &[],
        )
        .await;
    assert!(
        !unknown.ok && unknown.stderr.contains("no customer group \"Gold\""),
        "{}",
        unknown.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_and_offboard_customers_and_admins() {
    let env = Env::start(true).await;
    let made = env
        .ok(&[
            "provision",
            "magento",
            "--email",
            "new@shop.example",
            "--first",
            "New",
            "--last",
            "Buyer",
            "--group",
            "Wholesale",
        ])
        .await;
    assert!(
        made.stdout.contains("created customer new@shop.example"),
        "{}",
        made.stdout
    );
    let again = env
        .ok(&[
            "provision",
            "magento",
            "--email",
            "new@shop.example",
            "--first",
            "New",
            "--last",
            "Buyer",
            "--group",
            "Wholesale",
        ])
        .await;
    assert!(again.stdout.contains("nothing to do"), "{}", again.stdout);
    let c = env
        .json(&["magento", "customer", "new@shop.example", "-o", "json"])
        .await;
    assert_eq!(c["group_id"], 2);

    let dry = env
        .ok(&["offboard", "magento", "--email", "new@shop.example"])
        .await;
    assert!(dry.stdout.contains("dry run"), "{}", dry.stdout);
    env.ok(&["magento", "customer", "new@shop.example"]).await;
    env.ok(&[
        "offboard",
        "magento",
        "--email",
        "new@shop.example",
        "--yes",
        "--reason",
        "closed account",
    ])
    .await;
    assert!(
        !env.run_with(&["magento", "customer", "new@shop.example"], &[])
            .await
            .ok
    );
    let stones = env
        .json(&["tombstones", "--app", "magento", "-o", "json"])
        .await;
    assert_eq!(stones[0]["email"], "new@shop.example");
    assert_eq!(stones[0]["status"], "deleted");
    assert_eq!(stones[0]["reason"], "closed account");
    let gone = env
        .ok(&[
            "offboard",
            "magento",
            "--email",
            "new@shop.example",
            "--yes",
        ])
        .await;
    assert!(gone.stdout.contains("nothing to do"));

    let no_pw = env.provision_ops_admin_with(&[]).await;
    assert!(
        !no_pw.ok && no_pw.stderr.contains("ROSTER_MAGENTO_NEW_ADMIN_PASSWORD"),
        "{}",
        no_pw.stderr
    );
    let admin = env.provision_ops_admin().await;
    assert!(
        admin.ok && admin.stdout.contains("created admin user ops"),
        "{}{}",
        admin.stdout,
        admin.stderr
    );
    assert!(!admin.stdout.contains("Opsie12345"));
    env.ok(&["offboard", "magento", "--admin", "ops", "--yes"])
        .await;
    assert!(
        !env.ok(&["magento", "admins"])
            .await
            .stdout
            .contains("ops@shop.example")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offboarded_customers_and_admins_are_restored_from_their_tombstones() {
    let env = Env::start(true).await;
    // A seeded customer with addresses, in a group other than the default.
    let all = env.json(&["magento", "customers", "-o", "json"]).await;
    let email = all
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["email"].as_str().unwrap().to_string())
        .find(|e| e.ends_with("@example.com"))
        .unwrap();
    let before = env
        .json(&["magento", "customer", &email, "-o", "json"])
        .await;
    let addresses = before["addresses"].as_array().unwrap().clone();
    assert!(!addresses.is_empty(), "{before}");
    env.ok(&["offboard", "magento", "--email", &email, "--yes"])
        .await;
    assert!(!env.run_with(&["magento", "customer", &email], &[]).await.ok);

    let restored = env.ok(&["restore", "magento", "--email", &email]).await;
    assert!(
        restored.stdout.contains("restored customer") && restored.stdout.contains("set a password"),
        "{}",
        restored.stdout
    );
    let after = env
        .json(&["magento", "customer", &email, "-o", "json"])
        .await;
    assert_ne!(after["id"], before["id"], "a new account");
    for field in ["firstname", "lastname", "group_id", "website_id"] {
        assert_eq!(after[field], before[field], "{field}");
    }
    let place = |list: &Value| -> Vec<(Value, Value, Value, Value)> {
        let mut v: Vec<_> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["street"].clone(),
                    a["city"].clone(),
                    a["postcode"].clone(),
                    a["default_billing"].clone(),
                )
            })
            .collect();
        v.sort_by_key(|t| t.0.to_string());
        v
    };
    assert_eq!(place(&after["addresses"]), place(&before["addresses"]));
    let stones = env
        .json(&["tombstones", "--app", "magento", "-o", "json"])
        .await;
    assert_eq!(stones[0]["status"], "restored", "{stones}");
    let twice = env
        .run_with(&["restore", "magento", "--email", &email], &[])
        .await;
    assert!(!twice.ok);
    assert!(
        twice.stderr.contains("not restored yet"),
        "{}",
        twice.stderr
    );

    // An admin user comes back with its role.
    env.provision_ops_admin().await;
    let ops = |admins: Value| {
        admins
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["username"] == "ops")
            .unwrap_or_else(|| panic!("{admins}"))
            .clone()
    };
    let was = ops(env.ok(&["magento", "admins", "-o", "json"]).await.json());
    env.ok(&["offboard", "magento", "--admin", "ops", "--yes"])
        .await;
    let back = env.ok(&["restore", "magento", "--admin", "ops"]).await;
    assert!(
        back.stdout.contains("restored admin user ops"),
        "{}",
        back.stdout
    );
    let now = ops(env.ok(&["magento", "admins", "-o", "json"]).await.json());
    for field in ["email", "first_name", "last_name", "role_id", "active"] {
        assert_eq!(now[field], was[field], "{field}");
    }
    let log = env.json(&["log", "-o", "json"]).await;
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|l| l["action"] == "restore" && l["target"] == "admin user ops"),
        "{log}"
    );
}
