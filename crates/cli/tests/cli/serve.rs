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
pub(super) const JOINERS: usize = 6;

fn joiner(n: usize) -> String {
    format!("joiner{n}@acme.example")
}

pub(super) fn roster_text() -> String {
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
            http: roster_http::client(),
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

    pub(super) async fn invited(&self) -> usize {
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
/// once in each of `instances` instances (each line names its instance), and its chain
/// verifies.
async fn each_invitation_logged_once(command: impl Fn() -> Command, instances: usize) {
    let mut log = command();
    log.args(["log", "-o", "json"]);
    let log = run_checked(log, &[SECRET]).await.json();
    let invited: Vec<(String, String)> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| {
            l["action"] == "invite"
                && l["outcome"] == "done"
                && l["target"]
                    .as_str()
                    .is_some_and(|t| (1..=JOINERS).any(|n| t.ends_with(&joiner(n))))
        })
        .map(|l| {
            let instance = l["instance"]
                .as_str()
                .expect("each line names its instance");
            (instance.to_string(), l["target"].to_string())
        })
        .collect();
    let distinct: std::collections::BTreeSet<_> = invited.iter().collect();
    assert_eq!(invited.len(), JOINERS * instances, "{log:#}");
    assert_eq!(
        distinct.len(),
        invited.len(),
        "an invitation logged twice: {invited:#?}"
    );
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

    // A token says whom it acts for: a console account (which must exist) or a service.
    let mut unsaid = env.command();
    unsaid.args([
        "serve", "token", "create", "--name", "ops", "--role", "admin",
    ]);
    let unsaid = run_checked(unsaid, &[]).await;
    assert!(
        !unsaid.ok && unsaid.stderr.contains("--service"),
        "{}",
        unsaid.stderr
    );
    let mut nobody = env.command();
    nobody.args([
        "serve", "token", "create", "--name", "ops", "--role", "admin", "--for", "nobody",
    ]);
    let nobody = run_checked(nobody, &[]).await;
    assert!(
        !nobody.ok && nobody.stderr.contains("no console account \"nobody\""),
        "{}",
        nobody.stderr
    );
    // A token, printed once; the secret never shows.
    let mut create = env.command();
    create.args([
        "serve",
        "token",
        "create",
        "--name",
        "ops",
        "--role",
        "admin",
        "--service",
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
    // Its making is on record.
    let mut log = env.command();
    log.args(["log", "-o", "json"]);
    let log = run_checked(log, &[]).await;
    assert!(
        log.stdout.contains("\"create token\"") && log.stdout.contains("a service account"),
        "{}",
        log.stdout
    );

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
    each_invitation_logged_once(|| env.command(), 1).await;
    env.sandbox.shutdown().await;
}

/// How many Marketo instances the fleet fault test runs, each its own sandbox.
const FLEET: usize = 20;

/// Three `roster serve` processes share one PostgreSQL state and 20 Marketo instances (each
/// its own sandbox, with latency and Marketo's real limits): they all take runs from the
/// job queue. One is killed with `kill -9` in the middle of its applies, then a second;
/// the last finishes every run. Every joiner is invited exactly once in every instance,
/// each invitation is logged once, the cut-short runs are on record, the log chain
/// verifies, and no sandbox saw a 606 or a 615.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_services_share_twenty_instances_and_survive_two_kills() {
    let Some(db) = roster_store::testing::TestDatabase::create("fleet").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut sandboxes = Vec::new();
    for i in 0..FLEET {
        let mut config = MarketoConfig::new(dir.path().join(format!("marketo-{i}")));
        config.client_id = Some("serve-test".into());
        config.client_secret = Some(Secret::new(SECRET));
        // Slow enough that the kills land in the middle of the applies.
        config.faults.latency = Duration::from_millis(300);
        sandboxes.push(marketo::start(config).await.unwrap());
    }
    let http = roster_http::client();
    std::fs::write(dir.path().join("people.yaml"), roster_text()).unwrap();
    let mut toml = String::from("[service]\nlisten = \"127.0.0.1:0\"\n");
    for (i, sb) in sandboxes.iter().enumerate() {
        toml.push_str(&format!(
            "\n[marketo.i{i:02}]\nurl = \"{}\"\nclient_id = \"serve-test\"\nclient_secret_env = \"ROSTER_TEST_SERVE_SECRET\"\nroster = \"people.yaml\"\ninterval = \"1h\"\n",
            sb.base_url()
        ));
    }
    std::fs::write(dir.path().join("roster.toml"), toml).unwrap();
    let command = |state: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_roster"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env("ROSTER_TEST_SERVE_SECRET", SECRET)
            .env("ROSTER_CONFIG", dir.path().join("roster.toml"))
            .env("ROSTER_STATE", dir.path().join(state))
            // One key for the fleet, as on hosts sharing a database.
            .env("ROSTER_SIGNING_KEY_FILE", dir.path().join("signing.key"))
            .env("ROSTER_DATABASE_URL", &db.url)
            .current_dir(dir.path());
        cmd
    };
    // The invitations each sandbox sent to the joiners, by recipient.
    let sent = |sb: usize| {
        let url = format!("{}/sandbox/mailbox", sandboxes[sb].base_url());
        let http = http.clone();
        async move {
            let mail: Value = crate::get_json(http.get(url)).await;
            let mut to = std::collections::BTreeMap::<String, usize>::new();
            for m in mail.as_array().unwrap() {
                let addr = m["to"].as_str().unwrap();
                if (1..=JOINERS).any(|j| joiner(j) == addr) {
                    *to.entry(addr.to_string()).or_default() += 1;
                }
            }
            to
        }
    };
    // Joiners invited, counted once per sandbox.
    let invited = || async {
        let mut n = 0;
        for sb in 0..FLEET {
            n += sent(sb).await.len();
        }
        n
    };
    let all = FLEET * JOINERS;

    let mut create = command("state");
    create.args([
        "serve",
        "token",
        "create",
        "--name",
        "ops",
        "--role",
        "admin",
        "--service",
    ]);
    let made = run_checked(create, &[SECRET]).await;
    assert!(made.ok, "{}", made.stderr);
    let token = made.stdout.trim().to_string();

    // Three processes, each with a state folder of its own (as on three machines); every
    // line they print comes back tagged with who printed it.
    let (lines_tx, lines) = std::sync::mpsc::channel::<(usize, String)>();
    let mut children: Vec<Child> = (0..3)
        .map(|i| {
            let mut cmd = command(&format!("state-{i}"));
            cmd.arg("serve")
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
    let seen = std::sync::Mutex::new(Vec::<(usize, String)>::new());
    let drain = || {
        let mut seen = seen.lock().unwrap();
        while let Ok(line) = lines.try_recv() {
            seen.push(line);
        }
        seen.clone()
    };
    // Which processes started runs, by the "run started" lines they logged.
    let workers_seen = || -> std::collections::BTreeSet<usize> {
        drain()
            .iter()
            .filter(|(_, l)| l.contains("run started"))
            .map(|(i, _)| *i)
            .collect()
    };
    let banner = |i: usize| {
        drain().iter().find_map(|(who, l)| {
            (*who == i)
                .then(|| l.strip_prefix("roster serve: http://"))
                .flatten()
                .and_then(|rest| rest.split_whitespace().next())
                .map(|a| format!("http://{a}"))
        })
    };

    until("a fifth of the invitations", || async {
        invited().await >= all / 5
    })
    .await;
    // The work is shared: more than one process has started runs.
    let working = workers_seen();
    assert!(working.len() >= 2, "{:#?}", drain());
    let first = *working.iter().next().unwrap();
    children[first].kill().unwrap();
    children[first].wait().unwrap();
    let before = invited().await;
    assert!(before < all, "the kill came too late ({before} invited)");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while invited().await < before + all / 10 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no more invitations after the first kill ({} of {all}); the processes said: {:#?}",
            invited().await,
            drain()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = (0..3).find(|i| *i != first).unwrap();
    children[second].kill().unwrap();
    children[second].wait().unwrap();
    let midway = invited().await;
    assert!(
        midway < all,
        "the second kill came too late ({midway} invited)"
    );

    let third = (0..3).find(|i| *i != first && *i != second).unwrap();
    let mut base = None;
    until("the survivor's address", || {
        base = base.clone().or_else(|| banner(third));
        std::future::ready(base.is_some())
    })
    .await;
    let base = base.unwrap();
    let runs = |instance: String| {
        let http = http.clone();
        let url = format!("{base}/api/v1/runs");
        let token = token.clone();
        async move {
            let body: Value = crate::get_json(
                http.get(url)
                    .bearer_auth(token)
                    .query(&[("instance", instance.as_str()), ("limit", "100")]),
            )
            .await;
            body["runs"].as_array().cloned().unwrap_or_default()
        }
    };
    let finished = || async {
        let mut unfinished = Vec::new();
        for i in 0..FLEET {
            if !runs(format!("marketo.i{i:02}"))
                .await
                .iter()
                .any(|r| r["outcome"] == "done")
            {
                unfinished.push(i);
            }
        }
        unfinished
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let (n, unfinished) = (invited().await, finished().await);
        if n == all && unfinished.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} of {all} invited, instances without a finished run: {unfinished:?}; the processes said: {:#?}",
            drain()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut interrupted = 0;
    for i in 0..FLEET {
        interrupted += runs(format!("marketo.i{i:02}"))
            .await
            .iter()
            .filter(|r| r["outcome"] == "interrupted")
            .count();
    }
    assert!(interrupted >= 2, "each kill cut a run short: {interrupted}");
    for (sb, sandbox) in sandboxes.iter().enumerate() {
        let to = sent(sb).await;
        let once: std::collections::BTreeMap<String, usize> =
            (1..=JOINERS).map(|j| (joiner(j), 1)).collect();
        assert_eq!(to, once, "i{sb:02}: each joiner invited once");
        let stats =
            crate::get_json(http.get(format!("{}/sandbox/stats", sandbox.base_url()))).await;
        assert_eq!(stats["rateLimited"], 0, "i{sb:02}: {stats}");
        assert_eq!(stats["concurrencyLimited"], 0, "i{sb:02}: {stats}");
    }

    // A CLI command that writes, on any machine, waits for the services and names one.
    let mut writer = command("state");
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

    each_invitation_logged_once(|| command("state"), FLEET).await;
    for sb in sandboxes {
        sb.shutdown().await;
    }
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

/// `roster serve --json-logs`: every line on stderr is JSON, the ones it writes as it stops
/// included, and each HTTP request has its line (method, path, status, who).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_json_to_the_last_line_and_each_request_is_logged() {
    let env = Env::start(Duration::ZERO).await;
    env.configure(&roster_text(), "");
    let mut create = env.command();
    create.args([
        "serve",
        "token",
        "create",
        "--name",
        "approver",
        "--role",
        "approver",
        "--service",
    ]);
    let made = run_checked(create, &[SECRET]).await;
    assert!(made.ok, "{}", made.stderr);
    let token = made.stdout.trim().to_string();
    // A token made to expire (here at once): refused, saying so.
    let mut create = env.command();
    create.args([
        "serve",
        "token",
        "create",
        "--name",
        "brief",
        "--role",
        "viewer",
        "--service",
        "--expires",
        "1ms",
    ]);
    let brief = run_checked(create, &[SECRET]).await;
    assert!(brief.ok, "{}", brief.stderr);
    let brief = brief.stdout.trim().to_string();
    let mut list = env.command();
    list.args(["serve", "token", "list", "-o", "json"]);
    let listed = run_checked(list, &[]).await;
    let listed: Value = serde_json::from_str(&listed.stdout).unwrap();
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "brief")
        .unwrap();
    assert!(row["expires_at"].is_string(), "{listed:#}");
    let log_path = env.dir.path().join("serve.log");
    let mut child = env
        .command()
        .args(["serve", "--json-logs"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
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
    let unauthorised = env
        .http
        .get(format!("{addr}/api/v1/instances"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorised.status(), 401);
    let expired = env
        .http
        .get(format!("{addr}/api/v1/instances"))
        .bearer_auth(&brief)
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status(), 401);
    let why: Value = expired.json().await.unwrap();
    assert!(
        why["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the API token \"brief\" expired at"),
        "{why}"
    );
    let fine = env
        .http
        .get(format!("{addr}/api/v1/instances"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(fine.status(), 200);
    // A body over the limit: a JSON error too.
    let big = env
        .http
        .post(format!("{addr}/api/v1/plans/p/approve"))
        .bearer_auth(&token)
        .body(vec![b'x'; 100 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    let body: Value = big.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_large", "{body}");
    let status = stop(child);
    assert!(status.success(), "{status:?}");
    let text = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["path"] == "/api/v1/instances"
                && l["fields"]["status"] == 401
                && l["fields"]["method"] == "GET"
                && l["fields"]["actor"] == "-"),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["path"] == "/api/v1/plans/p/approve"
                && l["fields"]["status"] == 413
                && l["fields"]["actor"] == "api:approver"),
        "{text}"
    );
    assert!(
        lines
            .last()
            .is_some_and(|l| l["fields"]["message"] == "roster serve: stopped"),
        "{text}"
    );
}

/// Console accounts are administered from the command line: a role changed, a lock lifted,
/// a password replaced, an account removed, each in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_accounts_are_administered_and_each_change_is_logged() {
    let env = Env::start(Duration::ZERO).await;
    env.configure(&roster_text(), "");
    let run = |args: &[&str], password: Option<&str>| {
        let mut cmd = env.command();
        cmd.args(args);
        if let Some(p) = password {
            cmd.env("ROSTER_NEW_PASSWORD", p);
        }
        run_checked(cmd, &[])
    };
    let added = run(
        &["serve", "user", "add", "--name", "ana", "--role", "viewer"],
        Some("ana-first-password"),
    )
    .await;
    assert!(added.ok, "{}", added.stderr);
    let made = run(
        &[
            "serve", "token", "create", "--name", "ana-cli", "--role", "viewer", "--for", "ana",
        ],
        None,
    )
    .await;
    assert!(made.ok, "{}", made.stderr);
    // Rotated from the command line: a new token printed, the old one listed under its
    // rotation mark until the overlap ends; rotating that one is refused.
    let rotated = run(
        &[
            "serve",
            "token",
            "rotate",
            "--name",
            "ana-cli",
            "--overlap",
            "1h",
        ],
        None,
    )
    .await;
    assert!(rotated.ok, "{}", rotated.stderr);
    assert!(
        rotated.stdout.trim().starts_with("roster_"),
        "{}",
        rotated.stdout
    );
    assert_ne!(rotated.stdout.trim(), made.stdout.trim());
    let tokens = run(&["serve", "token", "list", "-o", "json"], None).await;
    assert!(
        tokens.stdout.contains("ana-cli#rotated-"),
        "{}",
        tokens.stdout
    );
    let old_name = tokens
        .stdout
        .split('"')
        .find(|s| s.starts_with("ana-cli#rotated-"))
        .unwrap()
        .to_string();
    let again = run(&["serve", "token", "rotate", "--name", &old_name], None).await;
    assert!(
        !again.ok && again.stderr.contains("old token of a rotation"),
        "{}",
        again.stderr
    );
    let role = run(
        &[
            "serve", "user", "set-role", "--name", "ana", "--role", "approver",
        ],
        None,
    )
    .await;
    assert!(
        role.ok && role.stderr.contains("was viewer"),
        "{}",
        role.stderr
    );
    let listed = run(&["serve", "user", "list", "-o", "json"], None).await;
    assert!(listed.stdout.contains("\"approver\""), "{}", listed.stdout);
    assert!(
        run(&["serve", "user", "unlock", "--name", "ana"], None)
            .await
            .ok
    );
    let passwd = run(
        &["serve", "user", "passwd", "--name", "ana"],
        Some("ana-second-password"),
    )
    .await;
    assert!(passwd.ok, "{}", passwd.stderr);
    let short = run(&["serve", "user", "passwd", "--name", "ana"], Some("short")).await;
    assert!(!short.ok, "{}", short.stderr);
    let missing = run(&["serve", "user", "unlock", "--name", "nobody"], None).await;
    assert!(
        !missing.ok && missing.stderr.contains("no console account \"nobody\""),
        "{}",
        missing.stderr
    );
    let removed = run(&["serve", "user", "remove", "--name", "ana"], None).await;
    assert!(removed.ok, "{}", removed.stderr);
    let listed = run(&["serve", "user", "list", "-o", "json"], None).await;
    assert!(!listed.stdout.contains("\"ana\""), "{}", listed.stdout);
    let log = run(&["log", "-o", "json"], None).await;
    for action in [
        "set console role",
        "unlock console user",
        "set console password",
        "remove console user",
    ] {
        assert!(log.stdout.contains(action), "{action}: {}", log.stdout);
    }
    assert!(!log.stdout.contains("ana-second-password"));
}

/// One configuration, one state: every command given the service's configuration reads
/// the state its `[service] state` names (the log, the tokens), not the default one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_reads_the_state_the_configuration_names() {
    let env = Env::start(Duration::ZERO).await;
    env.configure(&roster_text(), "");
    let config = env.dir.path().join("roster.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[service]\n", "[service]\nstate = \"named-state\"\n");
    std::fs::write(&config, text).unwrap();
    let command = |args: &[&str]| {
        let mut cmd = env.command();
        cmd.env_remove("ROSTER_STATE").args(args);
        cmd
    };
    let made = run_checked(
        command(&[
            "serve",
            "token",
            "create",
            "--name",
            "ci",
            "--role",
            "viewer",
            "--service",
        ]),
        &[SECRET],
    )
    .await;
    assert!(made.ok, "{}", made.stderr);
    assert!(env.dir.path().join("named-state").is_dir());
    let log = run_checked(command(&["log", "-o", "json"]), &[]).await;
    assert!(log.ok, "{}", log.stderr);
    assert!(log.stdout.contains("create token"), "{}", log.stdout);
    let verify = run_checked(command(&["log", "verify"]), &[]).await;
    assert!(
        verify.ok && verify.stdout.contains("1 "),
        "{}\n{}",
        verify.stdout,
        verify.stderr
    );
    // --state still wins.
    let other = env.dir.path().join("other-state");
    let elsewhere = run_checked(
        command(&["--state", other.to_str().unwrap(), "log", "-o", "json"]),
        &[],
    )
    .await;
    assert!(
        !elsewhere.stdout.contains("create token"),
        "{}",
        elsewhere.stdout
    );
}

/// The service's configuration serves the CLI too: `plan` works on its instance (the only
/// one, or `--instance`), connecting as the service does, with no other settings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_works_on_an_instance_of_the_service_configuration() {
    let env = Env::start(Duration::ZERO).await;
    env.configure(&roster_text(), "");
    let run = |args: &[&str]| {
        let mut cmd = env.command();
        cmd.args(args);
        run_checked(cmd, &[SECRET])
    };
    let plan = run(&["plan", "people.yaml", "-o", "json"]).await;
    assert!(plan.ok, "{}", plan.stderr);
    let steps: Value = serde_json::from_str(&plan.stdout).unwrap();
    assert!(
        !steps["steps"].as_array().unwrap().is_empty(),
        "{}",
        plan.stdout
    );
    // The thin commands connect to the only Marketo instance as the service does.
    let users = run(&["marketo", "users", "-o", "json"]).await;
    assert!(users.ok, "{}", users.stderr);
    let listed: Value = serde_json::from_str(&users.stdout).unwrap();
    assert!(!listed.as_array().unwrap().is_empty(), "{}", users.stdout);
    let no_shop = run(&["magento", "groups"]).await;
    assert_eq!(no_shop.code, Some(78), "{}", no_shop.stderr);
    assert!(
        no_shop.stderr.contains("runs no magento instances"),
        "{}",
        no_shop.stderr
    );
    // A second instance: which one must be said.
    let config = env.dir.path().join("roster.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[marketo.two]\nurl = \"{}\"\nclient_id = \"serve-test\"\nclient_secret_env = \"ROSTER_TEST_SERVE_SECRET\"\nroster = \"people.yaml\"\n",
        env.sandbox.base_url()
    ));
    std::fs::write(&config, text).unwrap();
    let which = run(&["plan", "people.yaml"]).await;
    assert_eq!(which.code, Some(78), "{}", which.stderr);
    assert!(
        which.stderr.contains("marketo.acme, marketo.two") && which.stderr.contains("--instance"),
        "{}",
        which.stderr
    );
    let chosen = run(&["plan", "people.yaml", "--instance", "marketo.two"]).await;
    assert!(chosen.ok, "{}", chosen.stderr);
    let which = run(&["marketo", "users"]).await;
    assert_eq!(which.code, Some(78), "{}", which.stderr);
    assert!(
        which.stderr.contains("marketo.acme, marketo.two") && which.stderr.contains("--instance"),
        "{}",
        which.stderr
    );
    let chosen = run(&[
        "marketo",
        "users",
        "--instance",
        "marketo.two",
        "-o",
        "json",
    ])
    .await;
    assert!(chosen.ok, "{}", chosen.stderr);
    let audit = run(&[
        "audit",
        "marketo",
        "--instance",
        "marketo.acme",
        "-o",
        "json",
    ])
    .await;
    assert!(audit.ok, "{}", audit.stderr);
    let wrong_app = run(&["magento", "groups", "--instance", "marketo.two"]).await;
    assert_eq!(wrong_app.code, Some(78), "{}", wrong_app.stderr);
    assert!(
        wrong_app.stderr.contains("not a magento instance"),
        "{}",
        wrong_app.stderr
    );
    let unknown = run(&["plan", "people.yaml", "--instance", "marketo.nope"]).await;
    assert_eq!(unknown.code, Some(78), "{}", unknown.stderr);
    // Commands that read no app take the file as it is.
    let log = run(&["log", "-o", "json"]).await;
    assert!(log.ok, "{}", log.stderr);
}

/// `roster serve` with `tls_cert_file` and `tls_key_file` serves HTTPS (its banner says
/// so) and reads them again on SIGHUP; one of the two alone is refused at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_speaks_tls_and_rereads_its_certificate_on_sighup() {
    let env = Env::start(Duration::ZERO).await;
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../http/tests/fixtures");
    std::fs::copy(fixtures.join("leaf1.pem"), env.dir.path().join("cert.pem")).unwrap();
    std::fs::copy(fixtures.join("leaf1.key"), env.dir.path().join("key.pem")).unwrap();
    env.configure(&roster_text(), "");
    let config = env.dir.path().join("roster.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("[service]\n", "[service]\ntls_cert_file = \"cert.pem\"\n"),
    )
    .unwrap();
    let mut half = env.command();
    half.arg("serve");
    let refused = run_checked(half, &[SECRET]).await;
    assert!(
        !refused.ok && refused.stderr.contains("tls_key_file"),
        "{}",
        refused.stderr
    );
    std::fs::write(
        &config,
        text.replace(
            "[service]\n",
            "[service]\ntls_cert_file = \"cert.pem\"\ntls_key_file = \"key.pem\"\n",
        ),
    )
    .unwrap();
    let log_path = env.dir.path().join("serve.log");
    let mut child = env
        .command()
        .args(["serve", "--json-logs"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("roster serve: https://127.0.0.1:"),
        "{line}"
    );
    // A renewed certificate, then SIGHUP: read again, and said.
    std::fs::copy(fixtures.join("leaf2.pem"), env.dir.path().join("cert.pem")).unwrap();
    std::fs::copy(fixtures.join("leaf2.key"), env.dir.path().join("key.pem")).unwrap();
    Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    until("the reload is logged", || {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        async move { text.contains("the TLS certificate and key were read again") }
    })
    .await;
    let status = stop(child);
    assert!(status.success(), "{status:?}");
}

/// `roster review` against `roster demo --serve`, as an operator and reviewer would run it:
/// start, items, decide one and several, close, the evidence written to a directory, and
/// `review verify` with the public keys alone; one byte changed and it fails.
#[test]
fn review_commands_run_a_campaign_and_its_evidence_verifies_offline() {
    let home = tempfile::tempdir().unwrap();
    let (demo, env) = demo(&home);
    let review = |args: &[&str]| {
        let out = super::roster()
            .arg("review")
            .args(args)
            .env("ROSTER_SERVE_URL", &env["ROSTER_SERVE_URL"])
            .env("ROSTER_SERVE_TOKEN", &env["ROSTER_SERVE_TOKEN"])
            .env("HOME", home.path())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let json = |args: &[&str]| -> Value {
        let (code, out, err) = review(args);
        assert_eq!(code, Some(0), "roster review {args:?}: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    };
    // No token: says how to get one.
    let out = super::roster()
        .args(["review", "list"])
        .env("ROSTER_SERVE_URL", &env["ROSTER_SERVE_URL"])
        .env_remove("ROSTER_SERVE_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ROSTER_SERVE_TOKEN"));
    let (code, _, err) = review(&["start", "--instance", "marketo.nope", "--due", "14d"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("marketo.demo"), "{err}");

    let started = json(&[
        "start",
        "--instance",
        "marketo.demo",
        "--due",
        "14d",
        "-o",
        "json",
    ]);
    let id = started["id"].as_i64().unwrap().to_string();
    let mut shown = json(&["show", &id, "-o", "json"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while shown["status"] == "snapshotting" {
        assert!(std::time::Instant::now() < deadline, "{shown:#}");
        std::thread::sleep(Duration::from_millis(100));
        shown = json(&["show", &id, "-o", "json"]);
    }
    assert_eq!(shown["status"], "open", "{shown:#}");
    let items = json(&["items", &id, "--mine", "-o", "json"]);
    let items = items.as_array().unwrap();
    assert!(
        items.len() >= 3,
        "the demo's admin reviews everyone: {items:#?}"
    );
    let ids: Vec<String> = items.iter().map(|i| i["id"].to_string()).collect();
    let (code, out, err) = review(&[
        "decide",
        &id,
        &ids[0],
        "--decision",
        "revoke",
        "--comment",
        "left the team",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("revoke"), "{out}");
    let mut bulk = vec!["decide", id.as_str()];
    bulk.extend(ids[1..3].iter().map(String::as_str));
    bulk.extend(["--decision", "keep", "--comment", "quarterly check"]);
    let (code, out, err) = review(&bulk);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    let (code, out, err) = review(&["close", &id]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("closed"), "{out}");
    let (code, table, _) = review(&["list"]);
    assert_eq!(code, Some(0));
    assert!(table.contains("marketo.demo"), "{table}");

    let bundle = home.path().join("evidence");
    let (code, out, err) = review(&["evidence", &id, "--out", bundle.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("roster review verify"), "{out}");
    let keys = super::roster()
        .args(["--config"])
        .arg(home.path().join("demo/roster.toml"))
        .args(["keys", "public"])
        .output()
        .unwrap();
    assert!(
        keys.status.success(),
        "{}",
        String::from_utf8_lossy(&keys.stderr)
    );
    let public = home.path().join("roster.pub");
    std::fs::write(&public, &keys.stdout).unwrap();
    let verify = || {
        super::roster()
            .args(["review", "verify"])
            .arg(&bundle)
            .arg("--public-keys")
            .arg(&public)
            .output()
            .unwrap()
    };
    let ok = verify();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("verifies"));
    let items_file = bundle.join("items.json");
    let mut bytes = std::fs::read(&items_file).unwrap();
    let at = bytes.iter().position(|b| *b == b'k').unwrap();
    bytes[at] = b'K';
    std::fs::write(&items_file, bytes).unwrap();
    let bad = verify();
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("items.json"), "{err}");
    assert!(err.contains("does not verify"), "{err}");
    assert!(stop(demo).success());
}
