//! `roster plan|approve|apply|log` against both sandboxes in-process: the real binary, real
//! HTTP, a real state file. Crashes are real too: a test hook aborts the process between
//! steps, and a `kill -9` stops it wherever it is.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use roster_domain::Secret;
use roster_sandbox::magento::{self as magento_sandbox, MagentoConfig, RunningMagento};
use roster_sandbox::marketo::{self, Limits, MarketoConfig, RunningSandbox};
use serde_json::Value;
use tempfile::TempDir;

use super::{Run, run_checked};

const ID: &str = "desired-test";
const SECRET: &str = "desired-test-secret-0123456789";
const MAGENTO_PASSWORD: &str = "Sandbox-Admin-2024";
const ADOBE_ID: &str = "desired-adobe";
const ADOBE_SECRET: &str = "desired-adobe-secret-0123";

struct Env {
    /// The Adobe Admin Console a Marketo subscription on Adobe Identity follows
    /// (`Env::start_ims`).
    adobe: Option<roster_sandbox::adobe::RunningAdobe>,
    marketo: RunningSandbox,
    magento: RunningMagento,
    _data: TempDir,
    home: TempDir,
    http: reqwest::Client,
    /// The PostgreSQL database every command keeps its state in, when the suite runs on
    /// PostgreSQL (`ROSTER_TEST_BACKEND=postgres`); the SQLite file otherwise.
    database: Option<roster_store::testing::TestDatabase>,
}

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/roster.yaml")
}

impl Env {
    async fn start(latency: Duration) -> Self {
        Self::start_with(marketo::Faults {
            latency,
            ..marketo::Faults::default()
        })
        .await
    }

    /// Both sandboxes, with these faults injected into Marketo's calls.
    async fn start_with(faults: marketo::Faults) -> Self {
        Self::start_faulty(faults, magento_sandbox::MagentoFaults::default()).await
    }

    /// Both sandboxes, with faults injected into each.
    async fn start_faulty(
        faults: marketo::Faults,
        magento_faults: magento_sandbox::MagentoFaults,
    ) -> Self {
        Self::start_all(faults, magento_faults, None).await
    }

    /// A Marketo subscription on Adobe Identity that follows an Adobe sandbox's product
    /// profiles after `sync_delay`, and Magento; commands are configured for all three.
    async fn start_ims(sync_delay: Duration) -> Self {
        Self::start_all(
            marketo::Faults::default(),
            magento_sandbox::MagentoFaults::default(),
            Some(sync_delay),
        )
        .await
    }

    async fn start_all(
        faults: marketo::Faults,
        magento_faults: magento_sandbox::MagentoFaults,
        ims: Option<Duration>,
    ) -> Self {
        let data = tempfile::tempdir().unwrap();
        let adobe = match ims {
            Some(_) => {
                let mut config = roster_sandbox::adobe::AdobeConfig::new(data.path().join("adobe"));
                config.client_id = Some(ADOBE_ID.into());
                config.client_secret = Some(Secret::new(ADOBE_SECRET));
                config.limits = roster_sandbox::adobe::AdobeLimits::unlimited();
                Some(roster_sandbox::adobe::start(config).await.unwrap())
            }
            None => None,
        };
        let mut config = MarketoConfig::new(data.path().join("marketo"));
        config.client_id = Some(ID.into());
        config.client_secret = Some(Secret::new(SECRET));
        config.limits = Limits::unlimited();
        config.faults = faults;
        if let Some(delay) = ims {
            config.ims = true;
            config.adobe = Some(marketo::ims_sync::AdobeLink {
                data_dir: data.path().join("adobe"),
                sync_delay: delay,
            });
        }
        let marketo = marketo::start(config).await.unwrap();
        let mut config = MagentoConfig::new(data.path().join("magento"));
        config.admin_password = Some(Secret::new(MAGENTO_PASSWORD));
        config.admin_users_api = true;
        config.customers = 30;
        config.faults = magento_faults;
        config.listen = "127.0.0.1:0".parse().unwrap();
        let magento = magento_sandbox::start(config).await.unwrap();
        let database = if std::env::var("ROSTER_TEST_BACKEND").as_deref() == Ok("postgres") {
            Some(
                roster_store::testing::TestDatabase::create("desired")
                    .await
                    .expect("ROSTER_TEST_BACKEND=postgres needs ROSTER_TEST_POSTGRES"),
            )
        } else {
            None
        };
        Self {
            adobe,
            marketo,
            magento,
            _data: data,
            home: tempfile::tempdir().unwrap(),
            http: roster_http::client(),
            database,
        }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_roster"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("USER", "not-the-actor")
            .env("ROSTER_ACTOR", "desired-tester")
            .env("ROSTER_STATE", self.home.path().join("state"))
            .env("ROSTER_MARKETO_URL", self.marketo.base_url())
            .env("ROSTER_MARKETO_CLIENT_ID", ID)
            .env("ROSTER_MARKETO_CLIENT_SECRET", SECRET)
            .env("ROSTER_MAGENTO_URL", self.magento.base_url())
            .env("ROSTER_MAGENTO_USERNAME", self.magento.admin_user())
            .env("ROSTER_MAGENTO_PASSWORD", MAGENTO_PASSWORD)
            .current_dir(self.home.path());
        if let Some(db) = &self.database {
            cmd.env("ROSTER_DATABASE_URL", &db.url);
        }
        if let Some(adobe) = &self.adobe {
            cmd.env("ROSTER_MARKETO_IDENTITY", "adobe")
                .env(
                    "ROSTER_MARKETO_PRODUCT_PROFILES",
                    "Marketo Engage - Production",
                )
                .env("ROSTER_ADOBE_URL", adobe.base_url())
                .env("ROSTER_ADOBE_IMS_URL", adobe.base_url())
                .env("ROSTER_ADOBE_ORG_ID", &adobe.credentials().org_id)
                .env("ROSTER_ADOBE_CLIENT_ID", ADOBE_ID)
                .env("ROSTER_ADOBE_CLIENT_SECRET", ADOBE_SECRET)
                .env("ROSTER_ADOBE_COUNTRY", "US");
        }
        cmd
    }

    async fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.command();
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        run_checked(cmd, &[SECRET, MAGENTO_PASSWORD, ADOBE_SECRET]).await
    }

    async fn ok(&self, args: &[&str]) -> Run {
        let run = self.run_env(args, &[]).await;
        assert!(
            run.ok,
            "roster {args:?} failed:\n{}\n{}",
            run.stdout, run.stderr
        );
        run
    }

    /// As `ok`, with twice the retries: for the checks a test makes of an app it injects
    /// faults into, which are not what it tests and must not fail on a run of bad luck.
    async fn ok_patient(&self, args: &[&str]) -> Run {
        let run = self
            .run_env(args, &[("ROSTER_MARKETO_MAX_RETRIES", "12")])
            .await;
        assert!(
            run.ok,
            "roster {args:?} failed:\n{}\n{}",
            run.stdout, run.stderr
        );
        run
    }

    async fn fails(&self, args: &[&str]) -> Run {
        let run = self.run_env(args, &[]).await;
        assert!(
            !run.ok,
            "roster {args:?} should fail:\n{}\n{}",
            run.stdout, run.stderr
        );
        run
    }

    /// Runs `sql` on the state's database directly, as someone with write access to it
    /// (and not to the signing key) would.
    async fn raw_sql(&self, sql: &str) {
        sqlx::any::install_default_drivers();
        let url = match &self.database {
            Some(db) => db.url.clone(),
            None => format!(
                "sqlite://{}",
                self.home.path().join("state/roster.sqlite").display()
            ),
        };
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.home.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    async fn plan_steps(&self, roster: &Path) -> Vec<Value> {
        let run = self
            .ok_patient(&["plan", roster.to_str().unwrap(), "-o", "json"])
            .await;
        run.json()["steps"].as_array().cloned().unwrap()
    }

    async fn marketo_users(&self) -> Vec<Value> {
        self.ok_patient(&["marketo", "users", "-o", "json"])
            .await
            .json()
            .as_array()
            .cloned()
            .unwrap()
    }

    async fn has_marketo_user(&self, email: &str) -> bool {
        self.marketo_users().await.iter().any(|u| {
            u["emailAddress"].as_str() == Some(email) || u["email"].as_str() == Some(email)
        })
    }

    async fn invitations_to(&self, email: &str) -> usize {
        let mail: Value = self
            .http
            .get(format!("{}/sandbox/mailbox", self.marketo.base_url()))
            .query(&[("to", email)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        mail.as_array().map_or(0, Vec::len)
    }

    async fn customers_with(&self, email: &str) -> Vec<Value> {
        let run = self
            .ok(&[
                "magento",
                "customers",
                "--filter",
                &format!("email={email}"),
                "-o",
                "json",
            ])
            .await;
        run.json().as_array().cloned().unwrap_or_default()
    }

    /// Log lines of changes to the apps (approvals and refusals of whole plans left out).
    async fn log_len(&self) -> usize {
        self.ok(&["log", "-o", "json"])
            .await
            .json()
            .as_array()
            .map_or(0, |lines| {
                lines
                    .iter()
                    .filter(|l| l["action"] != "approve" && l["action"] != "apply")
                    .count()
            })
    }
}

fn kinds(steps: &[Value]) -> Vec<(String, String)> {
    steps
        .iter()
        .map(|s| {
            (
                s["action"]["kind"].as_str().unwrap().to_string(),
                s["action"]["userid"]
                    .as_str()
                    .or(s["action"]["email"].as_str())
                    .or(s["action"]["username"].as_str())
                    .unwrap()
                    .to_string(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

const FIRST_PLAN: &[(&str, &str)] = &[
    ("marketo_invite", "nia.okafor@acme.example"),
    ("magento_create_customer", "grace.hopper@acme.example"),
    ("magento_create_customer", "o'brien+marketing@acme.example"),
    ("magento_create_customer", "nia.okafor@acme.example"),
    ("magento_create_admin", "sam.lee@acme.example"),
    ("marketo_grant", "grace.hopper@acme.example"),
    ("marketo_revoke", "grace.hopper@acme.example"),
    ("marketo_set_expiry", "margaret.hamilton@acme.example"),
    ("marketo_delete", "katherine.johnson@acme.example"),
];

/// The plan/apply, log and tombstone tests of this module once more, with every command's
/// state in PostgreSQL (`--database` through ROSTER_DATABASE_URL), when
/// `ROSTER_TEST_POSTGRES` names a server (CI sets it).
#[test]
fn the_lifecycle_suite_on_postgres() {
    roster_store::testing::rerun_on_postgres("desired::", "the_lifecycle_suite_on_postgres");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_apply_provisions_the_example_and_a_second_plan_is_empty() {
    let env = Env::start(Duration::ZERO).await;
    let roster = example();
    let r = roster.to_str().unwrap();
    assert_eq!(kinds(&env.plan_steps(&roster).await), pairs(FIRST_PLAN));

    env.ok(&["plan", r, "--out", "plan.json"]).await;
    // Destructive steps need an approval: nothing runs without one.
    let refused = env.fails(&["apply", "plan.json"]).await;
    assert!(
        refused
            .stderr
            .contains("2 destructive steps and no approval"),
        "{}",
        refused.stderr
    );
    assert!(
        refused
            .stderr
            .contains("delete Marketo user katherine.johnson@acme.example")
    );
    assert!(env.has_marketo_user("katherine.johnson@acme.example").await);
    // The refusal is on record, and no change.
    assert_eq!(env.log_len().await, 0);
    assert_eq!(
        env.ok(&["log", "-o", "json"]).await.json()[0]["outcome"],
        "refused"
    );

    let approved = env.ok(&["approve", "plan.json", "--by", "ana"]).await;
    assert!(
        approved
            .stdout
            .contains("approved by ana: 2 destructive steps"),
        "{}",
        approved.stdout
    );
    let applied = env.ok(&["apply", "plan.json"]).await;
    assert!(
        applied
            .stdout
            .contains("9 steps done now, 0 done before, 0 failed"),
        "{}",
        applied.stdout
    );

    assert!(!env.has_marketo_user("katherine.johnson@acme.example").await);
    assert_eq!(env.invitations_to("nia.okafor@acme.example").await, 1);
    let nia = env.customers_with("nia.okafor@acme.example").await;
    assert_eq!(nia.len(), 1);
    assert_eq!(nia[0]["group_id"], 2, "Wholesale");
    let admins = env.ok(&["magento", "admins", "-o", "json"]).await.json();
    assert!(admins.to_string().contains("sam.lee@acme.example"));

    // The audit log holds the refusal, the approval and every step; the tombstone the
    // deleted account.
    let log = env.ok(&["log", "-o", "json"]).await.json();
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 11);
    assert_eq!(log[0]["outcome"], "refused");
    assert_eq!(
        (log[1]["action"].as_str(), log[1]["actor"].as_str()),
        (Some("approve"), Some("ana"))
    );
    assert!(
        log[2..]
            .iter()
            .all(|e| e["outcome"] == "done" && e["actor"] == "desired-tester")
    );
    let csv = env.ok(&["log", "-o", "csv"]).await.stdout;
    assert!(
        csv.lines().count() == 12 && csv.starts_with("id,at,actor"),
        "{csv}"
    );
    let tombstones = env.ok(&["tombstones", "-o", "json"]).await.stdout;
    assert!(tombstones.contains("katherine.johnson@acme.example"));

    // The same plan again: every step is done, nothing is repeated.
    let again = env.ok(&["apply", "plan.json"]).await;
    assert!(
        again.stdout.contains("0 steps done now, 9 done before"),
        "{}",
        again.stdout
    );
    assert_eq!(env.invitations_to("nia.okafor@acme.example").await, 1);
    assert_eq!(env.log_len().await, 9);

    // A fresh plan finds nothing to do.
    assert_eq!(env.plan_steps(&roster).await, Vec::<Value>::new());
    let table = env.ok(&["plan", r]).await.stdout;
    assert!(table.contains("Nothing to do"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn movers_and_leavers_give_exactly_the_expected_plan() {
    let env = Env::start(Duration::ZERO).await;
    let text = std::fs::read_to_string(example()).unwrap();
    let first = env.write("roster.yaml", &text);
    env.ok(&["apply", "--auto", first.to_str().unwrap(), "--approve"])
        .await;

    // Alan moves to marketing in the US, Linus leaves, O'Brien is dropped from the roster.
    let text = text
        .replace(
            "marketo: [\"Analytics User@US\"]",
            "marketo: [\"Marketing User@US\"]",
        )
        .replace(
            "    department: Field Marketing\n",
            "    department: Field Marketing\n    status: leaver\n",
        );
    let start = text.find("  - email: \"o'brien").unwrap();
    let end = text[start..].find("\n\n").unwrap() + start;
    let text = format!("{}{}", &text[..start], &text[end + 2..]);
    let next = env.write("roster.yaml", &text);
    let steps = env.plan_steps(&next).await;
    assert_eq!(
        kinds(&steps),
        pairs(&[
            ("magento_update_customer", "o'brien+marketing@acme.example"),
            ("marketo_grant", "alan.turing@acme.example"),
            ("marketo_revoke", "alan.turing@acme.example"),
            ("marketo_delete", "linus.torvalds@acme.example"),
            ("marketo_delete", "o'brien+marketing@acme.example"),
        ])
    );
    assert_eq!(
        steps[0]["action"]["group"], "General",
        "disabled customers move to General"
    );
    assert!(steps[0]["reason"].as_str().unwrap().contains(
        "not in the roster (policy unlisted=disable: moved to General; they can still sign in)"
    ));
    // The plan says plainly what "disable" does not do.
    let table = env.ok(&["plan", next.to_str().unwrap()]).await.stdout;
    assert!(
        table.contains("they can still sign in and their sessions and tokens stay valid"),
        "{table}"
    );
    assert!(
        steps[3]["reason"]
            .as_str()
            .unwrap()
            .contains("leaver (line")
    );
    let destructive: Vec<bool> = steps
        .iter()
        .map(|s| s["destructive"].as_bool().unwrap())
        .collect();
    assert_eq!(destructive, vec![true, false, true, true, true]);

    env.ok(&["apply", "--auto", next.to_str().unwrap(), "--approve"])
        .await;
    assert_eq!(env.plan_steps(&next).await, Vec::<Value>::new());
    assert!(!env.has_marketo_user("linus.torvalds@acme.example").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_stops_a_run_that_would_delete_too_much_and_drift_is_refused() {
    let env = Env::start(Duration::ZERO).await;
    // Only Ada listed: everyone else at acme.example would be deleted.
    let roster = env.write(
        "small.yaml",
        "policies:\n  marketo:\n    managed_domains: [acme.example]\n    unlisted: delete\n    max_destructive: 20%\npeople:\n  - email: ada.lovelace@acme.example\n    first_name: Ada\n    last_name: Lovelace\n    access:\n      marketo: [\"Admin@AllZones\"]\n",
    );
    let before = env.marketo_users().await.len();
    let plan = env.ok(&["plan", roster.to_str().unwrap()]).await.stdout;
    assert!(
        plan.contains(
            "BLOCKED: marketo: 6 destructive steps, above the cap of 2 (20% of 7 managed accounts"
        ),
        "{plan}"
    );
    let run = env
        .fails(&["apply", "--auto", roster.to_str().unwrap(), "--approve"])
        .await;
    assert!(
        run.stderr.contains("is blocked; nothing was changed"),
        "{}",
        run.stderr
    );
    assert_eq!(env.marketo_users().await.len(), before);

    // Unknown names are reported with their line, before anything changes.
    let bad = env.write(
        "bad.yaml",
        "people:\n  - email: ada.lovelace@acme.example\n    first_name: Ada\n    last_name: Lovelace\n    access:\n      marketo: [\"Admin@Narnia\"]\n",
    );
    let run = env.fails(&["plan", bad.to_str().unwrap()]).await;
    assert!(
        run.stderr.contains(
            "bad.yaml:2: ada.lovelace@acme.example: unknown Marketo workspace \"Narnia\""
        ),
        "{}",
        run.stderr
    );

    // A saved plan whose apps changed since is refused.
    let example = example();
    env.ok(&["plan", example.to_str().unwrap(), "--out", "plan.json"])
        .await;
    env.ok(&[
        "marketo",
        "grant",
        "alan.turing@acme.example",
        "--role",
        "Web Designer@Default",
    ])
    .await;
    let run = env.fails(&["apply", "plan.json", "--approve"]).await;
    assert!(
        run.stderr.contains("the apps changed since"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("marketo user alan.turing@acme.example"),
        "{}",
        run.stderr
    );
    // Only the grant made by hand is a change on record; the refusals are logged as such.
    assert_eq!(env.log_len().await, 1);
    let log = env.ok(&["log", "-o", "json"]).await.json();
    let refused = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["outcome"] == "refused")
        .count();
    assert_eq!(refused, 2, "the blocked plan and the drifted one: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_steps_resumes_without_repeating_a_step() {
    let env = Env::start(Duration::ZERO).await;
    let example = example();
    env.ok(&["plan", example.to_str().unwrap(), "--out", "plan.json"])
        .await;

    // Step 1 (the invitation) runs, and the process dies before recording it.
    let crashed = env
        .run_env(
            &["apply", "plan.json", "--approve"],
            &[("ROSTER_TEST_CRASH", "1:unrecorded")],
        )
        .await;
    assert!(!crashed.ok);
    assert!(
        crashed.stderr.contains("ROSTER_TEST_CRASH"),
        "{}",
        crashed.stderr
    );
    assert_eq!(env.invitations_to("nia.okafor@acme.example").await, 1);
    assert_eq!(env.log_len().await, 0);

    // The rerun crashes again, this time right after step 4 is recorded.
    let crashed = env
        .run_env(
            &["apply", "plan.json", "--approve"],
            &[("ROSTER_TEST_CRASH", "4")],
        )
        .await;
    assert!(!crashed.ok);
    assert!(crashed.stderr.contains("resuming"), "{}", crashed.stderr);
    // The interrupted invitation is found done in Marketo, recorded and logged once; it is
    // not sent again.
    assert!(
        crashed.stderr.contains("step 1 (invite nia.okafor@acme.example to Marketo with Marketing User@Default) was interrupted: interrupted by a crash; the apps show it ran"),
        "{}",
        crashed.stderr
    );
    assert!(!crashed.stdout.contains("[1/9]"), "{}", crashed.stdout);
    assert_eq!(env.log_len().await, 4);

    let finished = env.ok(&["apply", "plan.json", "--approve"]).await;
    assert!(
        finished
            .stdout
            .contains("5 steps done now, 4 done before, 0 failed"),
        "{}",
        finished.stdout
    );
    assert_eq!(
        env.invitations_to("nia.okafor@acme.example").await,
        1,
        "one invitation, not two"
    );
    assert_eq!(env.customers_with("nia.okafor@acme.example").await.len(), 1);
    assert_eq!(env.log_len().await, 9);
    assert_eq!(env.plan_steps(&example).await, Vec::<Value>::new());
}

/// Instances share the state's journal: a step a crash cut short on one Marketo instance is
/// settled by that instance's next apply, from its own accounts, not by an apply of another
/// instance (whose accounts say nothing about it: before the fix it marked the step "not
/// run", and the invitation went out twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_step_waits_for_its_own_instance() {
    let env = Env::start(Duration::ZERO).await;
    std::fs::write(
        env.home.path().join("nia.yaml"),
        "policies:\n  marketo:\n    managed_domains: [acme.example]\n    unlisted: report\n\
         people:\n  - email: nia.okafor@acme.example\n    first_name: Nia\n    last_name: Okafor\n\
         \x20   access:\n      marketo: [\"Marketing User@Default\"]\n",
    )
    .unwrap();
    // Marketo only: this test is about two Marketo instances.
    let on = |url: &str, args: &[&str]| {
        let mut cmd = env.command();
        cmd.env("ROSTER_MARKETO_URL", url)
            .env_remove("ROSTER_MAGENTO_URL")
            .args(args);
        cmd
    };
    let first = env.marketo.base_url();
    let planned = run_checked(
        on(first, &["plan", "nia.yaml", "--out", "plan.json"]),
        &[SECRET],
    )
    .await;
    assert!(planned.ok, "{}\n{}", planned.stdout, planned.stderr);
    let mut crash = on(first, &["apply", "plan.json", "--approve"]);
    crash.env("ROSTER_TEST_CRASH", "1:unrecorded");
    let crashed = run_checked(crash, &[SECRET]).await;
    assert!(!crashed.ok, "{}", crashed.stderr);
    assert_eq!(env.invitations_to("nia.okafor@acme.example").await, 1);

    // Another Marketo instance, on the same state, without Nia yet: its apply must leave
    // the first instance's step alone.
    let other_dir = tempfile::tempdir().unwrap();
    let mut config = MarketoConfig::new(other_dir.path().join("marketo"));
    config.client_id = Some(ID.into());
    config.client_secret = Some(Secret::new(SECRET));
    config.limits = Limits::unlimited();
    let other = marketo::start(config).await.unwrap();
    let planned = run_checked(
        on(
            other.base_url(),
            &["plan", "nia.yaml", "--out", "other.json"],
        ),
        &[SECRET],
    )
    .await;
    assert!(planned.ok, "{}\n{}", planned.stdout, planned.stderr);
    let applied = run_checked(
        on(other.base_url(), &["apply", "other.json", "--approve"]),
        &[SECRET],
    )
    .await;
    assert!(applied.ok, "{}\n{}", applied.stdout, applied.stderr);
    assert!(
        !applied.stderr.contains("was interrupted"),
        "{}",
        applied.stderr
    );

    // The first instance's rerun finds its invitation sent and does not send it again.
    let finished = run_checked(on(first, &["apply", "plan.json", "--approve"]), &[SECRET]).await;
    assert!(finished.ok, "{}\n{}", finished.stdout, finished.stderr);
    assert!(
        finished
            .stderr
            .contains("was interrupted: interrupted by a crash; the apps show it ran"),
        "{}",
        finished.stderr
    );
    assert_eq!(
        env.invitations_to("nia.okafor@acme.example").await,
        1,
        "one invitation, not two"
    );
    // The audit log says on which instance each invitation was made.
    let log = env.ok(&["log", "-o", "json"]).await.json();
    let invited_on: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["action"] == "invite" && l["outcome"] == "done")
        .map(|l| l["instance"].as_str().unwrap_or("(none)"))
        .collect();
    assert_eq!(invited_on, [other.base_url(), first], "{log:#}");
    other.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_apply_then_rerun_finishes_the_plan() {
    // Slow Marketo calls, so the kill lands while steps are running.
    let env = Env::start(Duration::from_millis(150)).await;
    let example = example();
    env.ok(&["plan", example.to_str().unwrap(), "--out", "plan.json"])
        .await;
    let mut cmd = env.command();
    cmd.args(["apply", "plan.json", "--approve"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    // Wait until some steps are recorded (the log is written as each step finishes).
    let mut recorded = 0;
    for _ in 0..600 {
        recorded = env.log_len().await;
        if recorded >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(recorded >= 2, "apply recorded no steps");
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success());
    let killed_at = env.log_len().await;
    assert!(
        killed_at < 9,
        "the kill came too late to test anything ({killed_at} steps)"
    );
    resilience::keep_head(&env).await;

    let finished = env.ok(&["apply", "plan.json", "--approve"]).await;
    assert!(finished.stderr.contains("resuming"), "{}", finished.stderr);
    // The kill may land after a step's write and before its record: the rerun then finds
    // the effect in the apps and settles that step as done (and logs it) instead of re-running it.
    let settled = finished.stderr.contains("the apps show it ran");
    let done_before = killed_at + usize::from(settled);
    assert!(
        finished
            .stdout
            .contains(&format!("{done_before} done before, 0 failed")),
        "killed after {killed_at} logged steps:\n{}\n{}",
        finished.stdout,
        finished.stderr
    );
    assert_eq!(env.log_len().await, 9, "each step recorded once");
    assert_eq!(env.invitations_to("nia.okafor@acme.example").await, 1);
    assert_eq!(env.plan_steps(&example).await, Vec::<Value>::new());
    env.ok(&["log", "verify"]).await;
    // The head saved just after the kill still verifies: the rerun lost and rewrote nothing.
    resilience::check_heads(&env).await;
}

/// The state moves to a database of the other kind (SQLite to PostgreSQL, or back when the
/// suite runs on PostgreSQL; another SQLite file where no server is configured) with its
/// history: the log verifies there with the same lines, the tombstones are the same, and
/// neither an export nor an import ever overwrites anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_moves_to_another_database_with_its_history() {
    let env = Env::start(Duration::ZERO).await;
    let roster = example();
    let r = roster.to_str().unwrap();
    env.ok(&["plan", r, "--out", "plan.json"]).await;
    env.ok(&["approve", "plan.json", "--by", "ana"]).await;
    env.ok(&["apply", "plan.json"]).await;
    let lines = env.ok(&["log", "-o", "json"]).await.json();
    let lines = lines.as_array().unwrap().len();
    let tombstones = env.ok(&["tombstones", "-o", "json"]).await.json();
    assert!(!tombstones.as_array().unwrap().is_empty());

    let exported = env.ok(&["state", "export", "--out", "moved.jsonl"]).await;
    assert!(exported.stderr.contains("exported"), "{}", exported.stderr);
    assert!(
        exported.stdout.contains("audit_log\t"),
        "{}",
        exported.stdout
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let file = env.home.path().join("moved.jsonl");
        let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let again = env
        .fails(&["state", "export", "--out", "moved.jsonl"])
        .await;
    assert!(
        again.stderr.contains("never overwrites"),
        "{}",
        again.stderr
    );

    // The target: the other kind of database where there is one.
    let target_db = if env.database.is_none() {
        roster_store::testing::TestDatabase::create("moved").await
    } else {
        None
    };
    let target_dir = env.home.path().join("moved-state");
    let on_target = |args: &[&str]| {
        let mut cmd = env.command();
        cmd.env_remove("ROSTER_DATABASE_URL")
            .env("ROSTER_STATE", &target_dir)
            .args(args);
        if let Some(db) = &target_db {
            cmd.env("ROSTER_DATABASE_URL", &db.url);
        }
        run_checked(cmd, &[SECRET, MAGENTO_PASSWORD])
    };
    // Made ready ahead, as before starting services on a shared database.
    let migrated = on_target(&["serve", "migrate"]).await;
    assert!(migrated.ok, "{}", migrated.stderr);
    let kind = if target_db.is_some() {
        "Postgres"
    } else {
        "Sqlite"
    };
    assert!(
        migrated.stdout.contains("is up to date (schema step") && migrated.stdout.contains(kind),
        "{}",
        migrated.stdout
    );
    // The target made its own signing key, which cannot vouch for the source's history:
    // refused whole, and the target stays empty for the next try.
    let refused = on_target(&["state", "import", "moved.jsonl"]).await;
    assert!(!refused.ok, "{}", refused.stdout);
    assert!(
        refused.stderr.contains("nothing was imported")
            && refused.stderr.contains("copy signing.key"),
        "{}",
        refused.stderr
    );
    // With the source's key beside it (as the README says to move it), it goes in.
    let key = roster_keys::KEY_FILE;
    std::fs::copy(
        env.home.path().join("state").join(key),
        target_dir.join(key),
    )
    .unwrap();
    // Edited exports are refused whole: the log's last line gone (its chain still whole),
    // a tombstone's roles changed, an export cut short.
    let text = std::fs::read_to_string(env.home.path().join("moved.jsonl")).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    let last_log = rows
        .iter()
        .rposition(|l| l.contains(r#""table":"audit_log""#))
        .expect("the export holds the log");
    let tombstone = rows
        .iter()
        .position(|l| l.contains(r#""table":"tombstones""#))
        .expect("the export holds a tombstone");
    let edits: Vec<(&str, Vec<String>)> = vec![
        (
            "the log's last line removed",
            rows.iter()
                .enumerate()
                .filter(|(i, _)| *i != last_log)
                .map(|(_, l)| l.to_string())
                .collect(),
        ),
        (
            "a tombstone edited",
            rows.iter()
                .enumerate()
                .map(|(i, l)| {
                    if i == tombstone {
                        l.replace("acme.example", "evil.example")
                    } else {
                        l.to_string()
                    }
                })
                .collect(),
        ),
        (
            "cut short",
            rows[..rows.len() - 1]
                .iter()
                .map(|l| l.to_string())
                .collect(),
        ),
    ];
    for (what, edited) in edits {
        std::fs::write(
            env.home.path().join("edited.jsonl"),
            edited.join("\n") + "\n",
        )
        .unwrap();
        let refused = on_target(&["state", "import", "edited.jsonl"]).await;
        assert!(!refused.ok, "{what}: {}", refused.stderr);
        assert!(
            refused.stderr.contains("nothing was imported"),
            "{what}: {}",
            refused.stderr
        );
    }
    let imported = on_target(&["state", "import", "moved.jsonl"]).await;
    assert!(imported.ok, "{}\n{}", imported.stdout, imported.stderr);
    assert!(
        imported
            .stderr
            .contains(&format!("the audit log verifies ({lines} lines)")),
        "{}",
        imported.stderr
    );
    let verified = on_target(&["log", "verify"]).await;
    assert!(verified.ok, "{}", verified.stderr);
    let moved = on_target(&["tombstones", "-o", "json"]).await.json();
    assert_eq!(moved, tombstones);
    let twice = on_target(&["state", "import", "moved.jsonl"]).await;
    assert!(!twice.ok);
    assert!(
        twice.stderr.contains("empty state only"),
        "{}",
        twice.stderr
    );
}

#[path = "ims.rs"]
mod ims;
#[path = "resilience.rs"]
mod resilience;
#[path = "scale.rs"]
mod scale;
#[path = "trust.rs"]
mod trust;

/// The conventions of a CLI people script: completions for each shell and a manual page
/// from the real command tree, and log colour that follows NO_COLOR and CLICOLOR_FORCE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_man_page_and_colour_follow_the_conventions() {
    let env = Env::start(Duration::ZERO).await;
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let run = env.ok(&["completions", shell]).await;
        assert!(
            run.stdout.contains("roster") && run.stdout.contains("person"),
            "{shell}: {}",
            run.stdout
        );
    }
    let bad = env.fails(&["completions", "tcsh"]).await;
    assert!(bad.stderr.contains("possible values"), "{}", bad.stderr);
    let man = env.ok(&["man"]).await.stdout;
    assert!(
        man.contains(".TH roster 1") && man.contains("completions"),
        "{man}"
    );
    let example = example();
    let example = example.to_str().unwrap();
    let forced = env
        .run_env(&["-vv", "plan", example], &[("CLICOLOR_FORCE", "1")])
        .await;
    assert!(forced.stderr.contains('\u{1b}'), "{}", forced.stderr);
    let plain = env
        .run_env(
            &["-vv", "plan", example],
            &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")],
        )
        .await;
    assert!(!plain.stderr.is_empty());
    assert!(!plain.stderr.contains('\u{1b}'), "{}", plain.stderr);
    // A plan on a terminal (forced here): destructive steps red, invitations green.
    let coloured = env
        .run_env(&["plan", example], &[("CLICOLOR_FORCE", "1")])
        .await
        .stdout;
    let red = coloured
        .lines()
        .find(|l| l.contains("(destructive)"))
        .unwrap_or_else(|| panic!("{coloured}"));
    assert!(red.starts_with("\u{1b}[31m"), "{coloured}");
    assert!(
        coloured
            .lines()
            .any(|l| l.starts_with("\u{1b}[32m") && l.contains("invite")),
        "{coloured}"
    );
    let piped = env.ok(&["plan", example]).await.stdout;
    assert!(!piped.contains('\u{1b}'), "{piped}");
    // -o yaml: the document -o json prints, as YAML.
    let json = env.ok(&["plan", example, "-o", "json"]).await.json();
    let yaml = env.ok(&["plan", example, "-o", "yaml"]).await.stdout;
    assert!(
        yaml.contains("\nsteps:\n") && yaml.contains("summary:"),
        "{yaml}"
    );
    let steps = json["steps"].as_array().unwrap().len();
    assert_eq!(
        yaml.matches("\n- index: ").count() + yaml.matches("\n  - index: ").count(),
        steps,
        "{yaml}"
    );
    let log = env.ok(&["log", "-o", "yaml"]).await.stdout;
    assert!(
        log.is_empty() || log.starts_with("- ") || log.starts_with("[]"),
        "{log}"
    );
}

/// `roster validate`: rosters and a service configuration checked offline (its secret named
/// but not in the environment), each problem with its line, exit codes a CI job can use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_checks_rosters_and_configuration_offline() {
    let env = Env::start(Duration::ZERO).await;
    let people = env.write("people.yaml", &std::fs::read_to_string(example()).unwrap());
    let config = env.write(
        "roster.toml",
        "[service]\nlisten = \"127.0.0.1:0\"\n\n[marketo.prod]\nurl = \"https://123-ABC-456.mktorest.com\"\nclient_id = \"x\"\nclient_secret_env = \"ROSTER_TEST_NEVER_SET\"\nroster = \"people.yaml\"\n",
    );
    let (people, config) = (people.to_str().unwrap(), config.to_str().unwrap());
    let ok = env.ok(&["validate", config, people]).await;
    assert!(
        ok.stdout
            .contains("valid service configuration (1 instance)")
            && ok.stdout.contains("valid roster (9 people, 1 rule)"),
        "{}",
        ok.stdout
    );
    // A typo'd instance name, a bad email: both named with their line; exit 2.
    let text = std::fs::read_to_string(people).unwrap()
        + "  - email: bad@@acme.example\n    first_name: B\n    last_name: Ad\n";
    env.write("people.yaml", &text);
    let named = env.write(
        "named.yaml",
        "people:\n  - email: lena@acme.example\n    first_name: Lena\n    last_name: Berg\n    access:\n      marketo.prd: [\"Standard User@Default\"]\n",
    );
    let bad = env
        .run_env(&["validate", config, named.to_str().unwrap()], &[])
        .await;
    assert_eq!(bad.code, Some(2), "{}\n{}", bad.stdout, bad.stderr);
    assert!(bad.stdout.contains("people.yaml:88"), "{}", bad.stdout);
    assert!(
        bad.stdout.contains("named.yaml:2: access for marketo.prd"),
        "{}",
        bad.stdout
    );
    let missing = env.run_env(&["validate", "nowhere.yaml"], &[]).await;
    assert_eq!(missing.code, Some(1), "{}", missing.stderr);
}

/// `apply --auto` refused for want of an approval keeps the plan it made and names it, so
/// `roster approve` and `roster apply` have a file to work on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_automatic_apply_that_needs_an_approval_saves_its_plan() {
    let env = Env::start(Duration::ZERO).await;
    let example = example();
    let refused = env
        .fails(&["apply", "--auto", example.to_str().unwrap()])
        .await;
    let saved = refused
        .stderr
        .lines()
        .find_map(|l| l.split("The plan is saved as ").nth(1))
        .and_then(|rest| rest.split(": review it").next())
        .unwrap_or_else(|| panic!("{}", refused.stderr))
        .to_string();
    assert!(std::path::Path::new(&saved).is_file(), "{saved}");
    env.ok(&["approve", &saved, "--by", "ana"]).await;
    env.ok(&["apply", &saved]).await;
    assert!(
        !env.has_marketo_user("katherine.johnson@acme.example").await,
        "the approved leaver is gone"
    );
}

/// Exit codes tell problems apart: usage, an invalid roster, an app nobody answers at, an
/// app that refuses the credentials, a connection not configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_tell_problems_apart() {
    let env = Env::start(Duration::ZERO).await;
    let example = example();
    let example = example.to_str().unwrap();
    let usage = env.run_env(&["plan"], &[]).await;
    assert_eq!(usage.code, Some(2), "{}", usage.stderr);
    let bad = env.write(
        "bad.yaml",
        "people:\n  - email: bad@@acme.example\n    first_name: B\n    last_name: Ad\n",
    );
    let invalid = env.run_env(&["plan", bad.to_str().unwrap()], &[]).await;
    assert_eq!(invalid.code, Some(65), "{}", invalid.stderr);
    // A closed port on this machine: nothing answers.
    let unreachable = env
        .run_env(
            &["plan", example],
            &[("ROSTER_MARKETO_URL", "http://127.0.0.1:1")],
        )
        .await;
    assert_eq!(unreachable.code, Some(69), "{}", unreachable.stderr);
    let refused = env
        .run_env(
            &["plan", example],
            &[("ROSTER_MARKETO_CLIENT_SECRET", "not-the-secret-at-all")],
        )
        .await;
    assert_eq!(refused.code, Some(77), "{}", refused.stderr);
    let unconfigured = env
        .run_env(&["plan", example], &[("ROSTER_MAGENTO_URL", "")])
        .await;
    assert_eq!(unconfigured.code, Some(78), "{}", unconfigured.stderr);
}
