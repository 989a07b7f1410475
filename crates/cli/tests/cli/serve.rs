//! `roster serve` as a process: tokens made with `roster serve token create`, a `kill -9`
//! in the middle of an apply, a restart that resumes from the journal (no step twice, no
//! invitation twice), and SIGTERM that stops it cleanly.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use roster_domain::Secret;
use roster_sandbox::marketo::{self, Limits, MarketoConfig, RunningSandbox};
use serde_json::Value;

use super::run_checked;

const SECRET: &str = "serve-test-secret-0123456789";
const JOINERS: usize = 6;

fn joiner(n: usize) -> String {
    format!("joiner{n}@acme.example")
}

fn roster_text() -> String {
    let mut text = String::from(
        "policies:\n  marketo:\n    managed_domains: [acme.example]\n    unlisted: report\n\
         rules:\n  - department: Marketing\n    access:\n      marketo: [\"Marketing User@Default\"]\npeople:\n",
    );
    for n in 1..=JOINERS {
        text.push_str(&format!(
            "  - email: {}\n    first_name: Joiner\n    last_name: Number{n}\n    department: Marketing\n",
            joiner(n)
        ));
    }
    text
}

pub(super) struct Env {
    pub(super) sandbox: RunningSandbox,
    pub(super) dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Env {
    /// A Marketo sandbox (calls slowed by `latency`) and a folder for the service.
    pub(super) async fn start(latency: Duration) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = MarketoConfig::new(dir.path().join("marketo"));
        config.client_id = Some("serve-test".into());
        config.client_secret = Some(Secret::new(SECRET));
        config.limits = Limits::unlimited();
        config.faults.latency = latency;
        let sandbox = marketo::start(config).await.unwrap();
        Self {
            sandbox,
            dir,
            http: reqwest::Client::new(),
        }
    }

    /// Writes the roster and a configuration with one instance, `marketo.acme`, following it.
    pub(super) fn configure(&self, roster: &str, extra: &str) {
        std::fs::write(self.dir.path().join("people.yaml"), roster).unwrap();
        std::fs::write(
            self.dir.path().join("roster.toml"),
            format!(
                "[service]\nlisten = \"127.0.0.1:0\"\n\n[marketo.acme]\nurl = \"{}\"\nclient_id = \"serve-test\"\nclient_secret_env = \"ROSTER_TEST_SERVE_SECRET\"\nroster = \"people.yaml\"\ninterval = \"1h\"\n{extra}",
                self.sandbox.base_url()
            ),
        )
        .unwrap();
    }

    pub(super) fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_roster"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("ROSTER_TEST_SERVE_SECRET", SECRET)
            .env("ROSTER_CONFIG", self.dir.path().join("roster.toml"))
            .env("ROSTER_STATE", self.dir.path().join("state"))
            .current_dir(self.dir.path());
        cmd
    }

    /// Starts `roster serve` and reads its address from the banner.
    pub(super) fn serve(&self) -> (Child, String) {
        let mut child = self
            .command()
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .strip_prefix("roster serve: ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        (child, addr)
    }

    async fn mails(&self, to: &str) -> usize {
        let mail: Value = self
            .http
            .get(format!("{}/sandbox/mailbox", self.sandbox.base_url()))
            .query(&[("to", to)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        mail.as_array().map_or(0, Vec::len)
    }

    async fn invited(&self) -> usize {
        let mut n = 0;
        for i in 1..=JOINERS {
            n += self.mails(&joiner(i)).await.min(1);
        }
        n
    }

    async fn runs(&self, base: &str, token: &str) -> Vec<Value> {
        let body: Value = self
            .http
            .get(format!("{base}/api/v1/runs"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["runs"].as_array().cloned().unwrap_or_default()
    }
}

/// The audit log (read by the commands `command` makes) holds each joiner's invitation done
/// once, and its chain verifies.
async fn each_invitation_logged_once(command: impl Fn() -> Command) {
    let mut log = command();
    log.args(["log", "-o", "json"]);
    let log = run_checked(log, &[SECRET]).await.json();
    for n in 1..=JOINERS {
        let done = log
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| {
                l["action"] == "invite"
                    && l["outcome"] == "done"
                    && l["target"]
                        .as_str()
                        .is_some_and(|t| t.ends_with(&joiner(n)))
            })
            .count();
        assert_eq!(done, 1, "{} in {log:#}", joiner(n));
    }
    let mut verify = command();
    verify.args(["log", "verify"]);
    let verified = run_checked(verify, &[]).await;
    assert!(verified.ok, "{}", verified.stderr);
}

/// Polls `check` every 20 ms until it holds, for at most 60 s.
async fn until<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_killed_mid_apply_resumes_without_repeating_a_step() {
    // Slow calls, so the kill lands in the middle of the apply.
    let env = Env::start(Duration::from_millis(150)).await;
    env.configure(&roster_text(), "");

    // A token, printed once; the secret never shows.
    let mut create = env.command();
    create.args([
        "serve", "token", "create", "--name", "ops", "--role", "admin",
    ]);
    let made = run_checked(create, &[SECRET]).await;
    assert!(made.ok, "{}", made.stderr);
    let token = made.stdout.trim().to_string();
    assert!(token.starts_with("roster_"), "{}", made.stdout);
    let mut list = env.command();
    list.args(["serve", "token", "list", "-o", "json"]);
    let listed = run_checked(list, &[]).await;
    assert!(!listed.stdout.contains(&token));
    assert!(listed.stdout.contains("\"ops\""), "{}", listed.stdout);

    // The first run starts inviting; kill -9 once two invitations are out.
    let (mut first, _) = env.serve();
    until("two invitations", || async { env.invited().await >= 2 }).await;
    first.kill().unwrap();
    first.wait().unwrap();
    let before = env.invited().await;
    assert!(
        before < JOINERS,
        "the kill came too late to test anything ({before} invited)"
    );

    // Restarted: the interrupted run is on record, the next one finishes the job.
    let (mut second, addr) = env.serve();
    let base = addr;
    until("a finished run after the restart", || async {
        env.runs(&base, &token)
            .await
            .iter()
            .any(|r| r["outcome"] == "done")
    })
    .await;
    let runs = env.runs(&base, &token).await;
    assert!(
        runs.iter().any(|r| r["outcome"] == "interrupted"),
        "{runs:#?}"
    );
    for n in 1..=JOINERS {
        assert_eq!(
            env.mails(&joiner(n)).await,
            1,
            "{} was invited once",
            joiner(n)
        );
    }

    // SIGTERM: a clean stop.
    let status = Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(second.wait().unwrap().success());

    // The audit log: each invitation done once, and the chain verifies.
    each_invitation_logged_once(|| env.command()).await;
    env.sandbox.shutdown().await;
}

/// Three `roster serve` processes share one PostgreSQL state: one works, two stand by.
/// The worker is killed with `kill -9` in the middle of its apply, then the one that took
/// over as well; the third finishes. Every joiner is invited exactly once, each invitation
/// is logged once, the interrupted runs are on record, the log chain verifies, and the
/// sandbox (with Marketo's real limits) saw no 606 and no 615.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standbys_take_over_a_killed_service_and_finish_its_apply() {
    let Some(db) = roster_store::testing::TestDatabase::create("failover").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = MarketoConfig::new(dir.path().join("marketo"));
    config.client_id = Some("serve-test".into());
    config.client_secret = Some(Secret::new(SECRET));
    config.faults.latency = Duration::from_millis(150);
    let env = Env {
        sandbox: marketo::start(config).await.unwrap(),
        dir,
        http: reqwest::Client::new(),
    };
    env.configure(&roster_text(), "");
    let on_db = |mut cmd: Command| {
        cmd.env("ROSTER_DATABASE_URL", &db.url);
        cmd
    };
    let mut create = on_db(env.command());
    create.args([
        "serve", "token", "create", "--name", "ops", "--role", "admin",
    ]);
    let made = run_checked(create, &[SECRET]).await;
    assert!(made.ok, "{}", made.stderr);
    let token = made.stdout.trim().to_string();

    // Three processes, each with a state folder of its own (as on three machines); every
    // line they print comes back tagged with who printed it.
    let (lines_tx, lines) = std::sync::mpsc::channel::<(usize, String)>();
    let mut children: Vec<Child> = (0..3)
        .map(|i| {
            let mut cmd = on_db(env.command());
            cmd.env("ROSTER_STATE", env.dir.path().join(format!("state-{i}")))
                .arg("serve")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = cmd.spawn().unwrap();
            for out in [
                Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
                Box::new(child.stderr.take().unwrap()),
            ] {
                let tx = lines_tx.clone();
                std::thread::spawn(move || {
                    for line in BufReader::new(out).lines().map_while(Result::ok) {
                        let _ = tx.send((i, line));
                    }
                });
            }
            child
        })
        .collect();
    let mut seen: Vec<(usize, String)> = Vec::new();
    // The next process to print its address: the one that holds the state now.
    let next_leader = |seen: &mut Vec<(usize, String)>| -> (usize, String) {
        loop {
            let (i, line) = lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no process took over: {seen:#?}"));
            seen.push((i, line.clone()));
            if let Some(addr) = line
                .strip_prefix("roster serve: ")
                .and_then(|rest| rest.split_whitespace().next())
                .filter(|a| a.starts_with("http"))
            {
                return (i, addr.to_string());
            }
        }
    };

    let (first, _) = next_leader(&mut seen);
    until("two invitations", || async { env.invited().await >= 2 }).await;
    children[first].kill().unwrap();
    children[first].wait().unwrap();
    let before = env.invited().await;
    assert!(
        before < JOINERS,
        "the kill came too late ({before} invited)"
    );

    let (second, _) = next_leader(&mut seen);
    assert_ne!(second, first);
    until("an invitation by the second", || async {
        env.invited().await > before
    })
    .await;
    children[second].kill().unwrap();
    children[second].wait().unwrap();
    let midway = env.invited().await;
    assert!(
        midway < JOINERS,
        "the second kill came too late ({midway} invited)"
    );

    let (third, base) = next_leader(&mut seen);
    assert!(third != first && third != second);
    until("every joiner invited and a finished run", || async {
        env.invited().await == JOINERS
            && env
                .runs(&base, &token)
                .await
                .iter()
                .any(|r| r["outcome"] == "done")
    })
    .await;
    // The two that stood by said so, naming the holder.
    for i in [second, third] {
        assert!(
            seen.iter()
                .any(|(who, l)| *who == i && l.contains("standing by: roster serve (")),
            "{seen:#?}"
        );
    }
    let runs = env.runs(&base, &token).await;
    assert!(
        runs.iter()
            .filter(|r| r["outcome"] == "interrupted")
            .count()
            >= 2,
        "{runs:#?}"
    );
    for n in 1..=JOINERS {
        assert_eq!(
            env.mails(&joiner(n)).await,
            1,
            "{} was invited once",
            joiner(n)
        );
    }
    let stats = crate::get_json(
        env.http
            .get(format!("{}/sandbox/stats", env.sandbox.base_url())),
    )
    .await;
    assert_eq!(stats["rateLimited"], 0, "{stats}");
    assert_eq!(stats["concurrencyLimited"], 0, "{stats}");

    // A CLI command that writes, on any machine, waits for the service and says who it is.
    let mut writer = on_db(env.command());
    writer.args(["--lock-wait", "200ms", "state", "import", "nothing.jsonl"]);
    let refused = run_checked(writer, &[]).await;
    assert!(
        !refused.ok
            && refused.stderr.contains("another roster serve (")
            && refused.stderr.contains("holds the state in postgres://"),
        "{}",
        refused.stderr
    );

    // SIGTERM: a clean stop.
    let status = Command::new("kill")
        .args(["-TERM", &children[third].id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(children[third].wait().unwrap().success());

    each_invitation_logged_once(|| on_db(env.command())).await;
    env.sandbox.shutdown().await;
}

/// A Python tool .ci/run installs (`pip install --target target/pytools/NAME`), if there:
/// `ROSTER_<VAR>` points elsewhere, `ROSTER_REQUIRE_<VAR>` makes its absence a failure.
fn pytool(name: &str, bin: &str, var: &str) -> Option<PathBuf> {
    let dir = std::env::var_os(format!("ROSTER_{var}"))
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../target/pytools/{name}"))
        });
    if dir.join("bin").join(bin).is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var_os(format!("ROSTER_REQUIRE_{var}")).is_none(),
        "ROSTER_REQUIRE_{var} is set but {} has no {name}",
        dir.display()
    );
    eprintln!("{name} test not run: install it as .ci/run does");
    None
}

/// `roster demo --serve --print-env` running, and the lines it printed as `NAME=value`.
fn demo(
    home: &tempfile::TempDir,
) -> (
    std::process::Child,
    std::collections::HashMap<String, String>,
) {
    let mut demo = Command::new(env!("CARGO_BIN_EXE_roster"))
        .args(["demo", "--serve", "--print-env", "--dir"])
        .arg(home.path().join("demo"))
        .env("HOME", home.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(demo.stdout.take().unwrap());
    let mut env = std::collections::HashMap::new();
    while !env.contains_key("ROSTER_SCIM_TOKEN") {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the demo ended early"
        );
        if let Some((k, v)) = line.trim().split_once('=')
            && k.starts_with("ROSTER_")
        {
            env.insert(k.to_string(), v.to_string());
        }
    }
    // Keep reading what it prints: a closed pipe would end the demo at its next line.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    (demo, env)
}

fn stop(mut demo: std::process::Child) -> std::process::ExitStatus {
    Command::new("kill")
        .args(["-TERM", &demo.id().to_string()])
        .status()
        .unwrap();
    demo.wait().unwrap()
}

/// schemathesis (written by others, from PyPI) fuzzes every operation of the OpenAPI
/// document against `roster demo --serve`: no server error, every answer as documented.
#[test]
fn the_api_holds_up_to_schemathesis() {
    let Some(tool) = pytool("schemathesis", "st", "SCHEMATHESIS") else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let (demo, env) = demo(&home);
    // The SCIM lines work as printed: the curl a newcomer would try.
    let scim = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .args([
            "-H",
            &format!("Authorization: Bearer {}", env["ROSTER_SCIM_TOKEN"]),
        ])
        .arg(format!("{}/ServiceProviderConfig", env["ROSTER_SCIM_URL"]))
        .output()
        .expect("curl runs");
    assert_eq!(String::from_utf8_lossy(&scim.stdout), "200");
    let run = Command::new("python3")
        .arg(tool.join("bin/st"))
        .args([
            "run",
            &format!("{}/api/v1/openapi.json", env["ROSTER_SERVE_URL"]),
        ])
        .args([
            "-H",
            &format!("Authorization: Bearer {}", env["ROSTER_SERVE_TOKEN"]),
        ])
        .args(["--checks", "all", "--max-examples", "25", "--no-color"])
        .env("PYTHONPATH", &tool)
        .env("HOME", home.path())
        // schemathesis keeps a cache in its working folder: not in the source tree.
        .current_dir(home.path())
        .output()
        .unwrap();
    let stopped = stop(demo);
    let report = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(report.contains("passed"), "{report}");
    assert!(stopped.success(), "the demo stops cleanly on SIGTERM");
}

/// scim2-tester (written by others, from PyPI, run through scim2-cli's `scim2 test`) checks
/// the SCIM endpoint of `roster demo --serve`: discovery, every resource type's creation,
/// query, attribute selection, search, replacement, PATCH add/remove/replace of every
/// attribute, deletion. Every check passes.
#[test]
fn the_scim_endpoint_passes_scim2_tester() {
    let Some(tool) = pytool("scim2", "scim2", "SCIM2_TESTER") else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let (demo, env) = demo(&home);
    let run = Command::new("python3")
        .arg(tool.join("bin/scim2"))
        .args(["--url", &env["ROSTER_SCIM_URL"]])
        .env(
            "SCIM_CLI_HEADERS",
            format!("Authorization: Bearer {}", env["ROSTER_SCIM_TOKEN"]),
        )
        .arg("test")
        .env("PYTHONPATH", &tool)
        .env("HOME", home.path())
        .current_dir(home.path())
        .output()
        .unwrap();
    stop(demo);
    let report = String::from_utf8_lossy(&run.stdout);
    let passed = report.lines().filter(|l| l.starts_with("SUCCESS")).count();
    let failed: Vec<&str> = report.lines().filter(|l| l.starts_with("ERROR")).collect();
    assert!(
        failed.is_empty() && passed > 100,
        "scim2-tester: {passed} passed, {} failed:\n{report}\n{}",
        failed.len(),
        String::from_utf8_lossy(&run.stderr)
    );
}
