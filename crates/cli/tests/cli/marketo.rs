//! `roster marketo|audit|provision|offboard|tombstones|restore` against an in-process Marketo
//! sandbox, run as a user would run them: the real binary, real HTTP, a real state file.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use roster_domain::Secret;
use roster_sandbox::marketo::{self, Faults, Limits, MarketoConfig, RunningSandbox};
use serde_json::{Value, json};
use tempfile::TempDir;

use super::{Run, run_checked};
use crate::role_specs;

const ID: &str = "cli-test";
const SECRET: &str = "cli-test-secret-0123456789";

pub struct Env {
    sandbox: RunningSandbox,
    _data: TempDir,
    pub home: TempDir,
    http: reqwest::Client,
}

impl Env {
    pub async fn start(tune: impl FnOnce(&mut MarketoConfig)) -> Self {
        let data = tempfile::tempdir().unwrap();
        let mut config = MarketoConfig::new(data.path());
        config.client_id = Some(ID.into());
        config.client_secret = Some(Secret::new(SECRET));
        config.limits = Limits::unlimited();
        tune(&mut config);
        Self {
            sandbox: marketo::start(config).await.unwrap(),
            _data: data,
            home: tempfile::tempdir().unwrap(),
            http: roster_http::client(),
        }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_roster"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("USER", "not-the-actor")
            .env("ROSTER_ACTOR", "cli-tester")
            .env("ROSTER_STATE", self.home.path().join("state"))
            .env("ROSTER_MARKETO_URL", self.sandbox.base_url())
            .env("ROSTER_MARKETO_CLIENT_ID", ID)
            .env("ROSTER_MARKETO_CLIENT_SECRET", SECRET);
        cmd
    }

    /// Runs `roster ARGS` off the async runtime, so the in-process sandbox keeps serving.
    async fn run(&self, args: &[&str]) -> Run {
        self.run_cmd(self.command(), args).await
    }

    async fn run_cmd(&self, mut cmd: Command, args: &[&str]) -> Run {
        cmd.args(args);
        run_checked(cmd, &[SECRET]).await
    }

    pub async fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args).await;
        assert!(
            run.ok,
            "roster {args:?} failed:\n{}\n{}",
            run.stdout, run.stderr
        );
        run
    }

    async fn fails(&self, args: &[&str]) -> Run {
        let run = self.run(args).await;
        assert!(
            !run.ok,
            "roster {args:?} should fail:\n{}\n{}",
            run.stdout, run.stderr
        );
        run
    }

    /// Adds `count` accepted users with Standard User@Default, as the sandbox's admin would.
    async fn add_people(&self, prefix: &str, count: usize) {
        let admin = roster_sandbox::marketo::admin::Admin::open(self._data.path())
            .await
            .unwrap();
        admin
            .add_people(
                prefix,
                "acme.example",
                count,
                &["Standard User@Default".parse().unwrap()],
            )
            .await
            .unwrap();
        admin.close().await;
    }

    async fn sandbox_json(&self, path: &str) -> Value {
        self.http
            .get(format!("{}/sandbox/{path}", self.sandbox.base_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn mail_to(&self, to: &str) -> Vec<Value> {
        let all = self.sandbox_json("mailbox").await;
        all.as_array()
            .unwrap()
            .iter()
            .filter(|m| m["to"].as_str().is_some_and(|t| t.eq_ignore_ascii_case(to)))
            .cloned()
            .collect()
    }

    /// Accepts the newest invitation mailed to `to`, setting a password as the invitee would.
    async fn accept(&self, to: &str) {
        let mail = self.mail_to(to).await;
        let url = mail.last().expect("an invitation email")["acceptUrl"]
            .as_str()
            .unwrap()
            .to_owned();
        let resp = self
            .http
            .post(url)
            .form(&[
                ("password", "Sunshine42!"),
                ("confirmPassword", "Sunshine42!"),
            ])
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
    }

    /// A direct API call, for setting up situations the commands must cope with.
    async fn api_post(&self, path: &str, body: Value) {
        let resp = self.api_post_answer(path, body).await;
        assert!(
            resp.status().is_success(),
            "{path}: {}",
            resp.text().await.unwrap()
        );
    }

    async fn api_post_answer(&self, path: &str, body: Value) -> reqwest::Response {
        let token = crate::token(self.sandbox.base_url(), ID, SECRET).await;
        self.http
            .post(format!(
                "{}/userservice/management/v1/users/{path}",
                self.sandbox.base_url()
            ))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn user_json(&self, email: &str) -> Value {
        self.ok(&["marketo", "user", email, "-o", "json"])
            .await
            .json()
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thin_commands_read_and_write() {
    let env = Env::start(|_| {}).await;
    let users = env.ok(&["marketo", "users", "-o", "json"]).await.json();
    assert_eq!(users.as_array().unwrap().len(), 9);
    let csv = env.ok(&["marketo", "roles", "-o", "csv"]).await.stdout;
    assert!(
        csv.starts_with("id,name,type,only all zones,hidden,description\n"),
        "{csv}"
    );
    assert!(
        !csv.contains("Marketo Support"),
        "hidden roles only with --all"
    );
    assert!(
        env.ok(&["marketo", "roles", "--all"])
            .await
            .stdout
            .contains("Marketo Support")
    );
    let ws = env.ok(&["marketo", "workspaces"]).await.stdout;
    assert!(
        ws.lines().next().unwrap().starts_with("ID") && ws.contains("World"),
        "{ws}"
    );

    let obrien = env.user_json("o'brien+marketing@acme.example").await;
    assert_eq!(obrien["first_name"], "Siobhán");

    env.ok(&[
        "marketo",
        "invite",
        "--email",
        "bot@acme.example",
        "--first",
        "Build",
        "--last",
        "Bot",
        "--role",
        "API Role@Default",
        "--api-only",
    ])
    .await;
    let granted = env
        .ok(&[
            "marketo",
            "grant",
            "bot@acme.example",
            "--role",
            "Marketing User@World",
            "--role",
            "API Role@Default",
            "-o",
            "json",
        ])
        .await;
    assert!(
        granted.stderr.contains("already has API Role@Default"),
        "{}",
        granted.stderr
    );
    assert_eq!(
        role_specs(&granted.json()),
        set(&["API Role@Default", "Marketing User@World"])
    );
    let revoked = env
        .ok(&[
            "marketo",
            "revoke",
            "bot@acme.example",
            "--role",
            "API Role@Default",
            "--role",
            "Web Designer@Default",
        ])
        .await;
    assert!(
        revoked.stderr.contains("already revoked"),
        "{}",
        revoked.stderr
    );
    assert_eq!(
        role_specs(&env.user_json("bot@acme.example").await),
        set(&["Marketing User@World"])
    );
    let updated = env
        .ok(&[
            "marketo",
            "update",
            "bot@acme.example",
            "--last",
            "Robot",
            "--expires-at",
            "2031-01-01",
            "-o",
            "json",
        ])
        .await
        .json();
    assert_eq!(updated["last_name"], "Robot");
    assert!(
        updated["expires_at"]
            .as_str()
            .unwrap()
            .starts_with("2031-01-01"),
        "{updated}"
    );

    // Deleting is a dry run unless --yes.
    let dry = env.ok(&["marketo", "delete", "bot@acme.example"]).await;
    assert!(dry.stdout.contains("dry run"), "{}", dry.stdout);
    env.user_json("bot@acme.example").await;
    env.ok(&["marketo", "delete", "bot@acme.example", "--yes"])
        .await;
    let gone = env.fails(&["marketo", "user", "bot@acme.example"]).await;
    assert!(
        gone.stderr.contains("no user or pending invitation"),
        "{}",
        gone.stderr
    );

    let bad = env
        .fails(&[
            "marketo",
            "grant",
            "alan.turing@acme.example",
            "--role",
            "Boss@Default",
            "--role",
            "Admin@World",
        ])
        .await;
    assert!(
        bad.stderr.contains("no role \"Boss\"") && bad.stderr.contains("Admin@AllZones"),
        "{}",
        bad.stderr
    );
    let missing = env
        .fails(&["marketo", "update", "nobody@acme.example", "--first", "X"])
        .await;
    assert!(
        missing.stderr.contains("no user nobody@acme.example"),
        "{}",
        missing.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_prints_every_format_and_its_cost() {
    let env = Env::start(|_| {}).await;
    let html = env.home.path().join("report.html");
    let run = env
        .ok(&[
            "audit",
            "marketo",
            "-o",
            "json",
            "--html",
            html.to_str().unwrap(),
        ])
        .await;
    let report = run.json();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&html).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the HTML report is private");
    }
    let users = report["users"].as_array().unwrap();
    assert_eq!(users.len(), 9);
    assert_eq!(report["cost"]["calls"], report["cost"]["minimum_calls"]);
    assert_eq!(report["cost"]["calls"], 2 + 1 + 9);
    let grace = users
        .iter()
        .find(|u| u["email_address"] == "grace.hopper@acme.example")
        .unwrap();
    assert_eq!(
        role_specs(grace),
        set(&["Standard User@Default", "Marketing User@World"])
    );
    assert!(
        run.stderr.contains("minimum possible: 12") && run.stderr.contains("daily quota left"),
        "{}",
        run.stderr
    );
    assert_eq!(env.sandbox_json("stats").await["calls"], 12);

    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("grace.hopper@acme.example") && page.contains("Marketing User@World"));
    assert!(
        page.contains("O&#39;Brien") || page.contains("O&#x27;Brien"),
        "names are escaped"
    );
    assert!(
        !page.contains("src=\"http") && !page.contains("href=\"http"),
        "self-contained"
    );

    let csv = env.ok(&["audit", "marketo", "-o", "csv"]).await.stdout;
    assert!(
        csv.starts_with("email,first name,last name,api only,workspace,role,"),
        "{csv}"
    );
    assert!(
        csv.contains("grace.hopper@acme.example,Grace,Hopper,false,World,Marketing User,"),
        "{csv}"
    );
    let table = env.ok(&["audit", "marketo"]).await.stdout;
    assert!(
        table.lines().next().unwrap().starts_with("EMAIL"),
        "{table}"
    );

    // The quota used so far is persisted; a budget too small for the next audit stops it first.
    let before = env.sandbox_json("stats").await["calls"].clone();
    let refused = env
        .fails(&["audit", "marketo", "--daily-quota", "40"])
        .await;
    assert!(
        refused.stderr.contains("needs 12 calls but only 4"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        env.sandbox_json("stats").await["calls"],
        before,
        "nothing was sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_waits_for_acceptance_and_converges_roles() {
    let env = Env::start(|_| {}).await;
    let email = "joiner@acme.example";
    let mut cmd = env.command();
    cmd.args([
        "provision",
        "marketo",
        "--email",
        email,
        "--first",
        "Jo",
        "--last",
        "Iner",
        "--role",
        "Standard User@Default",
        "--role",
        "Marketing User@World",
        "--wait",
        "--poll-interval",
        "50ms",
        "--wait-timeout",
        "60s",
    ]);
    let waiting = tokio::task::spawn_blocking(move || cmd.output().unwrap());
    // The invitee gets exactly one email and accepts it while provision waits.
    let mail = loop {
        let mail = env.mail_to(email).await;
        if !mail.is_empty() {
            break mail;
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(mail.len(), 1);
    env.accept(email).await;
    let out = waiting.await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("accepted the invitation"), "{stderr}");
    let user = env.user_json(email).await;
    assert_eq!(
        role_specs(&user),
        set(&["Standard User@Default", "Marketing User@World"])
    );

    // Provisioning again is convergent: no second invitation, nothing to do.
    let again = env
        .ok(&[
            "provision",
            "marketo",
            "--email",
            email,
            "--first",
            "Jo",
            "--last",
            "Iner",
            "--role",
            "Standard User@Default",
        ])
        .await;
    assert!(
        again.stderr.contains("already has an account"),
        "{}",
        again.stderr
    );
    assert_eq!(env.mail_to(email).await.len(), 1);

    // A role that did not persist through acceptance is granted by --check-pending.
    let late = "late.joiner@acme.example";
    env.ok(&[
        "provision",
        "marketo",
        "--email",
        late,
        "--first",
        "La",
        "--last",
        "Te",
        "--role",
        "Standard User@Default",
        "--role",
        "Web Designer@Default",
    ])
    .await;
    let pending = env.ok(&["provision", "marketo", "--check-pending"]).await;
    assert!(pending.stdout.contains("pending"), "{}", pending.stdout);
    env.accept(late).await;
    env.api_post(
        &format!("{}/roles/delete.json", "late.joiner%40acme.example"),
        json!({"input": [{"accessRoleId": 103, "workspaceId": 1}]}),
    )
    .await;
    let checked = env.ok(&["provision", "marketo", "--check-pending"]).await;
    assert!(checked.stdout.contains("accepted"), "{}", checked.stdout);
    assert!(
        checked.stderr.contains("granted Web Designer@Default"),
        "{}",
        checked.stderr
    );
    assert_eq!(
        role_specs(&env.user_json(late).await),
        set(&["Standard User@Default", "Web Designer@Default"])
    );
    let none = env.ok(&["provision", "marketo", "--check-pending"]).await;
    assert!(
        none.stderr.contains("no pending invitation"),
        "{}",
        none.stderr
    );

    let existing = env
        .fails(&[
            "marketo",
            "invite",
            "--email",
            "alan.turing@acme.example",
            "--first",
            "A",
            "--last",
            "T",
            "--role",
            "Standard User@Default",
        ])
        .await;
    assert!(
        existing.stderr.contains("already has a Marketo account"),
        "{}",
        existing.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ims_subscriptions_are_explained() {
    let env = Env::start(|c| c.ims = true).await;
    let run = env
        .fails(&[
            "provision",
            "marketo",
            "--email",
            "n@acme.example",
            "--first",
            "N",
            "--last",
            "M",
            "--role",
            "Standard User@Default",
        ])
        .await;
    assert!(
        run.stderr.contains("Adobe Admin Console") && run.stderr.contains("--api-only"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offboard_keeps_a_tombstone_and_restore_reinvites() {
    let env = Env::start(|_| {}).await;
    let email = "grace.hopper@acme.example";
    let dry = env.ok(&["offboard", "marketo", "--email", email]).await;
    assert!(
        dry.stdout.contains("dry run") && dry.stdout.contains("remove 2 role(s)"),
        "{}",
        dry.stdout
    );
    env.user_json(email).await;
    let empty = env.ok(&["tombstones", "-o", "json"]).await.json();
    assert_eq!(empty, json!([]));

    env.ok(&[
        "offboard",
        "marketo",
        "--email",
        email,
        "--yes",
        "--reason",
        "left the company",
    ])
    .await;
    env.fails(&["marketo", "user", email]).await;
    let stones = env.ok(&["tombstones", "-o", "json"]).await.json();
    let stone = &stones[0];
    assert_eq!(stone["email"], email);
    assert_eq!(stone["status"], "deleted");
    assert_eq!(stone["deleted_by"], "cli-tester");
    assert_eq!(stone["reason"], "left the company");
    assert_eq!(stone["roles"].as_array().unwrap().len(), 2);
    let again = env
        .ok(&["offboard", "marketo", "--email", email, "--yes"])
        .await;
    assert!(again.stdout.contains("nothing to do"), "{}", again.stdout);

    env.ok(&["restore", "marketo", "--email", email]).await;
    assert_eq!(env.mail_to(email).await.len(), 1);
    env.accept(email).await;
    let back = env.user_json(email).await;
    assert_eq!(
        role_specs(&back),
        set(&["Standard User@Default", "Marketing User@World"])
    );
    let stones = env.ok(&["tombstones"]).await.stdout;
    assert!(
        stones.contains(" restored ") && stones.lines().count() == 2,
        "{stones}"
    );

    // A pending invitation is withdrawn through the invitation endpoint.
    env.ok(&[
        "offboard",
        "marketo",
        "--email",
        "new.hire@acme.example",
        "--yes",
    ])
    .await;
    let gone = env
        .fails(&["marketo", "user", "new.hire@acme.example"])
        .await;
    assert!(
        gone.stderr.contains("no user or pending invitation"),
        "{}",
        gone.stderr
    );

    let refused = env
        .fails(&[
            "offboard",
            "marketo",
            "--email",
            "lead-export@acme.example",
            "--yes",
        ])
        .await;
    assert!(
        refused.stderr.contains("--include-api-only"),
        "{}",
        refused.stderr
    );
    env.ok(&[
        "offboard",
        "marketo",
        "--email",
        "lead-export@acme.example",
        "--yes",
        "--include-api-only",
    ])
    .await;
    let none = env
        .fails(&["restore", "marketo", "--email", "never@acme.example"])
        .await;
    assert!(none.stderr.contains("no tombstone"), "{}", none.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_reach_the_same_state_under_faults_and_limits() {
    let env = Env::start(|c| {
        c.limits = Limits {
            rate_limit: 20,
            rate_window: Duration::from_secs(1),
            max_concurrent: 3,
            daily_quota: 10_000,
        };
        c.faults = Faults {
            latency: Duration::from_millis(5),
            error_rate: 0.2,
            token_expiry_rate: 0.1,
            ..Faults::default()
        };
    })
    .await;
    let paced = [
        "--max-in-flight",
        "3",
        "--rate-limit",
        "20",
        "--rate-window",
        "1s",
    ];
    let with = |args: &[&'static str]| -> Vec<&'static str> {
        args.iter().chain(paced.iter()).copied().collect()
    };
    for n in 0..3 {
        let email: &'static str = Box::leak(format!("faulty{n}@acme.example").into_boxed_str());
        env.ok(&with(&[
            "provision",
            "marketo",
            "--email",
            email,
            "--first",
            "F",
            "--last",
            "T",
            "--role",
            "Standard User@Default",
        ]))
        .await;
    }
    env.ok(&with(&[
        "offboard",
        "marketo",
        "--email",
        "alan.turing@acme.example",
        "--yes",
    ]))
    .await;
    env.ok(&with(&[
        "offboard",
        "marketo",
        "--email",
        "faulty0@acme.example",
        "--yes",
    ]))
    .await;
    env.ok(&with(&[
        "marketo",
        "grant",
        "linus.torvalds@acme.example",
        "--role",
        "Web Designer@Default",
    ]))
    .await;
    let audit = env
        .ok(&with(&["audit", "marketo", "-o", "json"]))
        .await
        .json();

    let stats = env.sandbox_json("stats").await;
    assert!(stats["faultsInjected"].as_u64().unwrap() > 0, "{stats}");
    assert_eq!(stats["rateLimited"], 0, "{stats}");
    assert_eq!(stats["concurrencyLimited"], 0, "{stats}");
    for n in 0..3 {
        assert_eq!(
            env.mail_to(&format!("faulty{n}@acme.example")).await.len(),
            1,
            "one invitation each"
        );
    }
    let emails: BTreeSet<String> = audit["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email_address"].as_str().unwrap().to_string())
        .collect();
    assert!(!emails.contains("alan.turing@acme.example"));
    assert_eq!(emails.len(), 8);
    let linus = audit["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email_address"] == "linus.torvalds@acme.example")
        .unwrap();
    assert!(role_specs(linus).contains("Web Designer@Default"));
    let pending: BTreeSet<&str> = audit["pending_invites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        pending,
        BTreeSet::from(["faulty1@acme.example", "faulty2@acme.example"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_comes_from_flags_env_or_file_and_errors_say_what_to_set() {
    let env = Env::start(|_| {}).await;
    let mut bare = env.command();
    bare.env_remove("ROSTER_MARKETO_URL");
    let run = env.run_cmd(bare, &["marketo", "users"]).await;
    assert!(
        !run.ok && run.stderr.contains("ROSTER_MARKETO_URL"),
        "{}",
        run.stderr
    );

    let config = env.home.path().join("roster.toml");
    std::fs::write(
        &config,
        format!(
            "[marketo]\nurl = \"{}\"\nclient_id = \"{ID}\"\nclient_secret = \"{SECRET}\"\n",
            env.sandbox.base_url()
        ),
    )
    .unwrap();
    let mut from_file = Command::new(env!("CARGO_BIN_EXE_roster"));
    from_file
        .env_clear()
        .env("HOME", env.home.path())
        .env("ROSTER_STATE", env.home.path().join("s2"));
    let run = env
        .run_cmd(
            from_file,
            &[
                "--config",
                config.to_str().unwrap(),
                "marketo",
                "workspaces",
                "-o",
                "json",
            ],
        )
        .await;
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.json().as_array().unwrap().len(), 6);

    let mut wrong = env.command();
    wrong.env("ROSTER_MARKETO_CLIENT_SECRET", "not-the-secret-at-all");
    let run = env.run_cmd(wrong, &["marketo", "users"]).await;
    assert!(
        !run.ok && run.stderr.contains("refused the client id or secret"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("not-the-secret-at-all"));

    std::fs::write(&config, "[marketo]\nurll = \"x\"\n").unwrap();
    let run = env
        .fails(&["--config", config.to_str().unwrap(), "marketo", "users"])
        .await;
    assert!(
        run.stderr.contains("is not valid") && run.stderr.contains("unknown field"),
        "{}",
        run.stderr
    );
    let missing = Path::new("/nonexistent/roster.toml");
    let run = env
        .fails(&["--config", missing.to_str().unwrap(), "marketo", "users"])
        .await;
    assert!(
        run.stderr.contains("cannot read the configuration file"),
        "{}",
        run.stderr
    );
}

#[test]
fn demo_runs_offline_and_writes_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_roster"))
        .env_clear()
        .env("HOME", dir.path())
        .args(["demo", "--dir", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    // The narration is on stdout, each command's own messages on stderr.
    let stdout = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{stdout}");
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The example roster's plan, applied; then nothing left to do.
    assert!(
        stdout.contains("invite nia.okafor@acme.example to Marketo with Marketing User@Default"),
        "{stdout}"
    );
    assert!(
        stdout.contains("9 steps done now, 0 done before, 0 failed"),
        "{stdout}"
    );
    assert!(stdout.contains("Nothing to do: the apps match"), "{stdout}");
    assert!(
        stdout.contains("sam.lee@acme.example  Customer Service"),
        "{stdout}"
    );
    let report = std::fs::read_to_string(dir.path().join("audit.html")).unwrap();
    assert!(
        report.contains("nia.okafor@acme.example")
            && !report.contains("katherine.johnson@acme.example")
    );
    assert!(stdout.contains(&format!(
        "The HTML report is at {}",
        dir.path().join("audit.html").display()
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_whose_every_attempt_timed_out_is_tracked_then_settled() {
    // Every write runs, then answers 604: the email goes out, the answer is lost.
    let env = Env::start(|c| c.faults.write_timeout_rate = 1.0).await;
    let invite = |email: &'static str| {
        [
            "provision",
            "marketo",
            "--max-retries",
            "2",
            "--email",
            email,
            "--first",
            "Ti",
            "--last",
            "Med",
            "--role",
            "Standard User@Default",
        ]
    };
    let sent = "timed.out@acme.example";
    let run = env.fails(&invite(sent)).await;
    assert!(
        run.stderr.contains("may have been sent") && run.stderr.contains("unconfirmed"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("retrying in"),
        "retries are shown: {}",
        run.stderr
    );
    assert_eq!(
        env.mail_to(sent).await.len(),
        1,
        "the first attempt sent it"
    );

    // A second one, whose invitation then disappears (as if it never arrived).
    let lost = "never.arrived@acme.example";
    env.fails(&invite(lost)).await;
    // (The deletion runs, then answers 604 like every write here.)
    env.api_post_answer("never.arrived%40acme.example/invite/delete.json", json!({}))
        .await;

    // The next run asks invite.json: one was sent (now pending), the other was not.
    let checked = env.ok(&["provision", "marketo", "--check-pending"]).await;
    let line = |email: &str| {
        checked
            .stdout
            .lines()
            .find(|l| l.contains(email))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line(sent).contains("confirmed"), "{}", checked.stdout);
    assert!(line(lost).contains("not sent"), "{}", checked.stdout);
    // The confirmed one is followed as pending from now on, and is not invited twice.
    let again = env.ok(&invite(sent)).await;
    assert!(again.stderr.contains("pending"), "{}", again.stderr);
    assert_eq!(env.mail_to(sent).await.len(), 1);
}

/// A subscription with its limits scaled down (30 calls per 2 s, 4 in flight, 20 ms a
/// call) holding 39 users, for audits run side by side.
async fn scaled_down_subscription() -> Env {
    let env = Env::start(|c| {
        c.limits = Limits {
            rate_limit: 30,
            rate_window: Duration::from_secs(2),
            max_concurrent: 4,
            daily_quota: 10_000,
        };
        c.faults.latency = Duration::from_millis(20);
    })
    .await;
    env.add_people("shared", 30).await;
    env
}

/// Each audit read all 39 users, and the subscription answered none of them 606 or 615;
/// its counters, for more checks.
async fn all_read_within_the_limits(env: &Env, runs: [&Run; 3]) -> Value {
    for run in runs {
        assert!(run.ok, "{}", run.stderr);
        assert_eq!(run.json()["users"].as_array().unwrap().len(), 39);
    }
    let stats = env.sandbox_json("stats").await;
    assert_eq!(stats["rateLimited"], 0, "{stats}");
    assert_eq!(stats["concurrencyLimited"], 0, "{stats}");
    stats
}

/// An audit told the scaled-down limits, as each process keeps them by itself.
const SCALED_AUDIT: [&str; 10] = [
    "audit",
    "marketo",
    "-o",
    "json",
    "--rate-limit",
    "30",
    "--rate-window",
    "2s",
    "--max-in-flight",
    "4",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_audits_share_the_subscription_limits() {
    // The subscription's limits, scaled down: 30 calls per 2 s, 4 in flight.
    let env = scaled_down_subscription().await;
    let args = SCALED_AUDIT;
    // Three processes at once, each keeping the limits by itself: together they would send
    // three times too much, unless they pace together.
    let (a, b, c) = tokio::join!(env.run(&args), env.run(&args), env.run(&args));
    all_read_within_the_limits(&env, [&a, &b, &c]).await;

    // Another integration spends the whole window: Roster's first call gets 606 and waits for
    // the window to move instead of burning its retries (here: none) on a short backoff.
    let token = crate::token(env.sandbox.base_url(), ID, SECRET).await;
    let mut spent = 0;
    while spent < 30 {
        let status = env
            .http
            .get(format!(
                "{}/userservice/management/v1/users/roles.json",
                env.sandbox.base_url()
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status();
        spent += usize::from(status.is_success());
    }
    let mut waiting = args.to_vec();
    waiting.extend(["--max-retries", "0"]);
    let run = env.run(&waiting).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stderr.contains("rate limit is spent") && run.stderr.contains("waiting"),
        "{}",
        run.stderr
    );
}

/// Processes on different machines (each with a state folder, and so a ledger file, of its
/// own) share one subscription's limits through the PostgreSQL state they share: together
/// they draw no 606 and no 615. Without a PostgreSQL server configured there is nothing to
/// share through, and the test says so by passing trivially (CI requires the server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audits_on_several_machines_share_the_limits_through_postgres() {
    let Some(db) = roster_store::testing::TestDatabase::create("pacing").await else {
        return;
    };
    let env = scaled_down_subscription().await;
    let args = SCALED_AUDIT;
    let on_machine = |n: u32| {
        let mut cmd = env.command();
        cmd.env("ROSTER_STATE", env.home.path().join(format!("machine-{n}")))
            .env("ROSTER_DATABASE_URL", &db.url);
        env.run_cmd(cmd, &args)
    };
    let (a, b, c) = tokio::join!(on_machine(1), on_machine(2), on_machine(3));
    let stats = all_read_within_the_limits(&env, [&a, &b, &c]).await;
    // Each audit's 42 calls, and no more (no retry was needed).
    assert_eq!(stats["calls"], 3 * 42, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_the_quota_cannot_cover_is_refused_or_resumed_after_midnight() {
    // 39 users: an audit needs 2 + 1 + 39 = 42 calls.
    let env = Env::start(|c| c.limits.daily_quota = 30).await;
    env.add_people("quota", 30).await;

    // Roster's budget knows the quota: the first page shows 39 users to read, more than the
    // 17 calls left, so no per-user call is made.
    let refused = env
        .fails(&["audit", "marketo", "--daily-quota", "20"])
        .await;
    assert!(
        refused
            .stderr
            .contains("reading the roles of 39 users needs 39 calls but only 17"),
        "{}",
        refused.stderr
    );
    assert_eq!(env.sandbox_json("stats").await["calls"], 3);

    // The subscription's quota is spent by others (Roster's budget does not know): 607
    // part-way. What was read is kept, and the message says when and how to finish.
    let cut = env.fails(&["audit", "marketo"]).await;
    assert!(
        cut.stderr.contains("the daily quota ran out after")
            && cut.stderr.contains("roster audit marketo --resume"),
        "{}",
        cut.stderr
    );
    let read_before: usize = cut
        .stderr
        .split("ran out after ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(read_before > 0 && read_before < 39, "{}", cut.stderr);

    // After midnight US Central the quota is back; the resumed audit reads only the rest.
    env.http
        .post(format!("{}/sandbox/clock", env.sandbox.base_url()))
        .json(&json!({"advanceSeconds": 26 * 3600}))
        .send()
        .await
        .unwrap();
    let calls_before = env.sandbox_json("stats").await["calls"].as_u64().unwrap();
    let resumed = env
        .ok(&["audit", "marketo", "--resume", "-o", "json"])
        .await;
    assert!(resumed.stderr.contains("resuming"), "{}", resumed.stderr);
    assert_eq!(resumed.json()["users"].as_array().unwrap().len(), 39);
    let spent = env.sandbox_json("stats").await["calls"].as_u64().unwrap() - calls_before;
    assert_eq!(
        spent as usize,
        2 + 1 + (39 - read_before),
        "only the users not read before"
    );
    // Done: nothing left to resume.
    let again = env.run(&["audit", "marketo", "--resume"]).await;
    assert!(
        !again.ok && again.stderr.contains("no interrupted audit"),
        "{}",
        again.stderr
    );
}

/// Issue 21's load: another process adds 3,000 people while the sandbox serves reads and
/// invitations, then every page of users is read. Every invitation is found right after
/// it is answered, and every person the other process added is served: the read cache
/// never serves a state older than the database's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_serves_what_another_process_wrote_under_load() {
    let env = Env::start(|_| {}).await;
    let base = env.sandbox.base_url().to_string();
    let token = crate::token(&base, ID, SECRET).await;
    let users = format!("{base}/userservice/management/v1/users");
    let get = |path: String| {
        let (http, token) = (env.http.clone(), token.clone());
        async move {
            let body: Value = http
                .get(path)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body
        }
    };
    let invite = |email: String| {
        let (http, token, url) = (
            env.http.clone(),
            token.clone(),
            format!("{users}/invite.json"),
        );
        async move {
            let answer: Value = http
                .post(url)
                .bearer_auth(token)
                .json(&json!({
                    "emailAddress": email, "firstName": "Lo", "lastName": "Ad",
                    "userRoleWorkspaces": [{"accessRoleId": 2, "workspaceId": 1}]
                }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            answer
        }
    };
    let found = |v: &Value| v.get("errors").is_none() && v.get("userid").is_some();
    let data = env._data.path().to_str().unwrap().to_string();
    let adder = tokio::task::spawn_blocking(move || {
        crate::roster()
            .args(["sandbox", "marketo", "admin", "--data", &data])
            .args(["add-people", "--count", "3000", "--prefix", "load"])
            .args(["--domain", "acme.example"])
            .output()
            .unwrap()
    });
    // Invitations and reads while the other process writes (bounded: 200 rounds).
    let mut invited = Vec::new();
    for i in 0..200 {
        if adder.is_finished() && i >= 20 {
            break;
        }
        let email = format!("during{i}@acme.example");
        let answer = invite(email.clone()).await;
        assert_eq!(answer, json!(true), "{email}: {answer}");
        let invite = get(format!("{users}/{email}/invite.json")).await;
        assert!(
            invite.get("errors").is_none(),
            "round {i}: {email} was invited, then not found: {invite}"
        );
        let _ = get(format!(
            "{users}/allusers.json?pageSize=200&pageOffset={}",
            (i % 15) * 200
        ))
        .await;
        invited.push(email);
    }
    let out = adder.await.unwrap();
    assert!(out.status.success(), "{out:?}");
    // Every person the other process added is served (first, a sample, last).
    for n in [1, 2, 750, 1500, 2250, 2999, 3000] {
        let user = get(format!("{users}/load{n:05}@acme.example/user.json")).await;
        assert!(found(&user), "load{n:05}: {user}");
    }
    // Everything read page by page, as an audit's user list does; every person is there,
    // and afterwards invitations are still found at once.
    let mut listed = 0;
    for page in 0.. {
        let users = get(format!(
            "{users}/allusers.json?pageSize=200&pageOffset={}",
            page * 200
        ))
        .await;
        let n = users.as_array().map_or(0, Vec::len);
        listed += n;
        if n < 200 {
            break;
        }
    }
    assert!(
        listed >= 3000 + invited.len().min(1),
        "{listed} users listed"
    );
    for i in 0..20 {
        let email = format!("after{i}@acme.example");
        let answer = invite(email.clone()).await;
        assert_eq!(answer, json!(true));
        let invite = get(format!("{users}/{email}/invite.json")).await;
        assert!(invite.get("errors").is_none(), "{email}: {invite}");
    }
    assert!(!invited.is_empty());
}
