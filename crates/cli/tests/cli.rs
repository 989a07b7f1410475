//! The `roster` binary, run as a user would run it.

#[path = "cli/browser.rs"]
mod browser;
#[path = "cli/desired.rs"]
mod desired;
#[path = "cli/magento.rs"]
mod magento;
#[path = "cli/marketo.rs"]
mod marketo;
#[path = "cli/postgres_tls.rs"]
mod postgres_tls;
#[path = "cli/serve.rs"]
mod serve;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

fn roster() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_roster"));
    cmd.env_remove("ROSTER_LOG");
    cmd
}

/// Starts `roster sandbox marketo` and reads its banner up to the base URL.
fn start_sandbox(args: &[&str]) -> (Child, Vec<String>) {
    start_app_sandbox("marketo", args)
}

fn start_app_sandbox(app: &str, args: &[&str]) -> (Child, Vec<String>) {
    let mut child = roster()
        .args(["sandbox", app, "--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("roster runs");
    let mut lines = Vec::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    loop {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("roster exited before it was ready: {lines:?} {err}");
        }
        let done = line.starts_with("Press Ctrl-C");
        lines.push(line.trim_end().to_owned());
        if done {
            break;
        }
    }
    (child, lines)
}

fn field<'a>(lines: &'a [String], label: &str) -> &'a str {
    lines
        .iter()
        .find_map(|l| l.trim().strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label} in {lines:?}"))
        .trim()
}

fn stop(mut child: Child) -> String {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        exit.success(),
        "SIGTERM stops the sandbox cleanly: {exit:?} {err}"
    );
    err
}

/// What one run of the `roster` binary printed.
pub struct Run {
    pub ok: bool,
    /// The exit code, when the process exited rather than died of a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.stdout, self.stderr))
    }
}

/// Runs `cmd` off the async runtime, so in-process sandboxes keep serving, and checks that
/// none of `secrets` appears in what it printed.
async fn run_checked(mut cmd: Command, secrets: &[&'static str]) -> Run {
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let run = Run {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    for secret in secrets {
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "a secret leaked: {} {}",
            run.stdout,
            run.stderr
        );
    }
    run
}

/// GETs `request` and reads its JSON body.
async fn get_json(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

async fn token(url: &str, id: &str, secret: &str) -> String {
    let body = get_json(
        roster_http::client()
            .get(format!("{url}/identity/oauth/token"))
            .query(&[
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
            ]),
    )
    .await;
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {body}"))
        .to_owned()
}

#[tokio::test]
async fn sandbox_starts_prints_credentials_serves_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let (child, lines) = start_sandbox(&["--data", data]);
    assert!(lines[0].contains("seeded a new subscription"), "{lines:?}");
    let url = field(&lines, "Base URL:").to_owned();
    let id = field(&lines, "Client ID:").to_owned();
    let secret = field(&lines, "Client secret:").to_owned();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("export ROSTER_MARKETO_URL={url}")))
    );

    let token = token(&url, &id, &secret).await;
    let users = get_json(
        roster_http::client()
            .get(format!(
                "{url}/userservice/management/v1/users/allusers.json"
            ))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(users.as_array().unwrap().len(), 9);
    let log = stop(child);
    assert!(!log.contains(&secret), "the secret is not logged: {log}");

    // Started again on the same data it reports the same, stored credentials.
    let (child, lines) = start_sandbox(&["--data", data]);
    assert!(lines[0].contains("reopened"), "{lines:?}");
    assert_eq!(field(&lines, "Client ID:"), id);
    assert_eq!(field(&lines, "Client secret:"), secret);
    stop(child);
}

#[tokio::test]
async fn admin_commands_create_a_working_service() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let admin = |args: &[&str]| {
        let out = roster()
            .args(["sandbox", "marketo", "admin", "--data", data])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = admin(&[
        "create-role",
        "--name",
        "Okta API",
        "--permission",
        "Access API",
        "--permission",
        "Access Users",
        "--permission",
        "Access User Management Api",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("created role \"Okta API\""), "{out}");
    let (ok, _, err) = admin(&[
        "create-api-user",
        "--email",
        "okta@acme.example",
        "--role",
        "Okta API@Default",
    ]);
    assert!(ok, "{err}");
    let (ok, out, err) = admin(&[
        "create-service",
        "--name",
        "Okta",
        "--user",
        "okta@acme.example",
        "--client-id",
        "okta-client",
    ]);
    assert!(ok, "{err}");
    let secret = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Client secret:"))
        .unwrap()
        .trim()
        .to_owned();
    let (ok, out, _) = admin(&["services"]);
    assert!(
        ok && out.contains("okta-client") && out.contains("okta@acme.example"),
        "{out}"
    );

    let (ok, _, err) = admin(&[
        "create-service",
        "--name",
        "Bad",
        "--user",
        "grace.hopper@acme.example",
    ]);
    assert!(!ok);
    assert!(err.contains("not an API-only user"), "{err}");
    let (ok, _, err) = admin(&[
        "create-api-user",
        "--email",
        "z@acme.example",
        "--role",
        "Admin",
    ]);
    assert!(!ok);
    assert!(err.contains("ROLE@WORKSPACE"), "{err}");

    let (child, lines) = start_sandbox(&["--data", data]);
    let url = field(&lines, "Base URL:").to_owned();
    let token = token(&url, "okta-client", &secret).await;
    let status = roster_http::client()
        .get(format!("{url}/userservice/management/v1/users/roles.json"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    stop(child);
}

#[test]
fn bad_flags_say_what_is_wrong() {
    let out = roster()
        .args(["sandbox", "marketo", "--error-rate", "2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a fraction between 0 and 1"), "{err}");

    let out = roster()
        .args(["sandbox", "marketo", "--latency", "soon"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a duration"));

    // A port already in use.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = roster()
        .args([
            "sandbox",
            "marketo",
            "--listen",
            &addr,
            "--data",
            dir.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot listen on") && err.contains("--listen"),
        "{err}"
    );
}

#[tokio::test]
async fn magento_sandbox_starts_logs_in_and_keeps_its_admin() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let (child, lines) = start_app_sandbox(
        "magento",
        &["--data", data, "--admin-user", "ops", "--customers", "25"],
    );
    let rest = field(&lines, "REST base:").to_owned();
    let password = field(&lines, "Admin password:").to_owned();
    assert_eq!(field(&lines, "Admin user:"), "ops");
    let http = roster_http::client();
    let token: Value = http
        .post(format!("{rest}/V1/integration/admin/token"))
        .json(&serde_json::json!({"username": "ops", "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let found = get_json(
        http.get(format!("{rest}/all/V1/customers/search?searchCriteria"))
            .bearer_auth(token.as_str().unwrap()),
    )
    .await;
    assert_eq!(found["total_count"], 25);
    stop(child);

    // Restarted without flags, the generated password is kept.
    let (child, lines) = start_app_sandbox("magento", &["--data", data]);
    assert!(
        lines.iter().any(|l| l.contains("reopened its store")),
        "{lines:?}"
    );
    assert_eq!(field(&lines, "Admin password:"), password);
    stop(child);
}

/// The `ROLE@WORKSPACE` specs of an object's `roles` (a user or a tombstone, as JSON).
fn role_specs(record: &Value) -> std::collections::BTreeSet<String> {
    record["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}@{}",
                r["role_name"].as_str().unwrap(),
                r["workspace_name"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn magento_sign_in_with_two_factor_and_with_an_integration() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let state = dir.path().join("state");
    let (child, lines) = start_app_sandbox("magento", &["--data", data, "--tfa"]);
    let url = field(&lines, "export ROSTER_MAGENTO_URL=").to_owned();
    let user = field(&lines, "Admin user:").to_owned();
    let password: &'static str = field(&lines, "Admin password:").to_owned().leak();
    let totp: &'static str = field(&lines, "export ROSTER_MAGENTO_TOTP_SECRET=")
        .to_owned()
        .leak();
    let groups = |env: &[(&str, &str)]| {
        let mut cmd = roster();
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env("ROSTER_STATE", &state)
            .env("ROSTER_MAGENTO_URL", &url)
            .args(["magento", "groups", "-o", "json"]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    };
    let admin = [
        ("ROSTER_MAGENTO_USERNAME", user.as_str()),
        ("ROSTER_MAGENTO_PASSWORD", password),
    ];
    let refused = run_checked(groups(&admin), &[password, totp]).await;
    assert!(!refused.ok);
    assert!(
        refused
            .stderr
            .contains("requires two-factor authentication for admins (providers: google)"),
        "{}",
        refused.stderr
    );
    // The secret from a file, as a service would keep it.
    let secret_file = dir.path().join("totp");
    std::fs::write(&secret_file, format!("{totp}\n")).unwrap();
    let mut with_file = admin.to_vec();
    let file = secret_file.to_str().unwrap();
    with_file.push(("ROSTER_MAGENTO_TOTP_SECRET_FILE", file));
    let signed_in = run_checked(groups(&with_file), &[password, totp]).await;
    assert!(signed_in.ok, "{}", signed_in.stderr);
    assert!(signed_in.json().as_array().unwrap().len() >= 4);

    // An integration, created while the store runs.
    let out = roster()
        .args(["sandbox", "magento", "admin", "--data", data])
        .args(["create-integration", "--name", "roster-ci"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let made: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let value = |label: &str| -> &'static str { field(&made, label).to_owned().leak() };
    let (key, secret, token, token_secret) = (
        value("export ROSTER_MAGENTO_CONSUMER_KEY="),
        value("export ROSTER_MAGENTO_CONSUMER_SECRET="),
        value("export ROSTER_MAGENTO_ACCESS_TOKEN="),
        value("export ROSTER_MAGENTO_ACCESS_TOKEN_SECRET="),
    );
    let secrets = [secret, token, token_secret];
    let oauth = [
        ("ROSTER_MAGENTO_CONSUMER_KEY", key),
        ("ROSTER_MAGENTO_CONSUMER_SECRET", secret),
        ("ROSTER_MAGENTO_ACCESS_TOKEN", token),
        ("ROSTER_MAGENTO_ACCESS_TOKEN_SECRET", token_secret),
    ];
    let signed = run_checked(groups(&oauth), &secrets).await;
    assert!(signed.ok, "{}", signed.stderr);
    assert!(signed.json().as_array().unwrap().len() >= 4);
    // Three of the four: says which is missing.
    let partial = run_checked(groups(&oauth[..3]), &secrets).await;
    assert!(
        partial
            .stderr
            .contains("missing: ROSTER_MAGENTO_ACCESS_TOKEN_SECRET"),
        "{}",
        partial.stderr
    );
    // The token alone as a bearer token: this store does not allow it, and says how to.
    let bearer = run_checked(groups(&[("ROSTER_MAGENTO_TOKEN", token)]), &secrets).await;
    assert!(!bearer.ok);
    assert!(
        bearer
            .stderr
            .contains("Allow OAuth Access Tokens to be used as standalone Bearer tokens"),
        "{}",
        bearer.stderr
    );
    stop(child);
}

/// The Adobe and Marketo sandboxes as two processes, linked through the Adobe data
/// directory: someone a third process adds to the Marketo Engage product profile becomes a
/// Marketo user after the sync delay.
#[tokio::test]
async fn an_ims_marketo_sandbox_follows_the_adobe_sandbox_in_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let adobe_data = dir.path().join("adobe");
    let adobe_data = adobe_data.to_str().unwrap();
    let marketo_data = dir.path().join("marketo");
    let (adobe, _) = start_app_sandbox("adobe", &["--data", adobe_data]);
    let (marketo, lines) = start_sandbox(&[
        "--data",
        marketo_data.to_str().unwrap(),
        "--ims",
        "--adobe",
        adobe_data,
        "--adobe-sync-delay",
        "200ms",
    ]);
    let url = field(&lines, "Base URL:").to_owned();
    let token = token(
        &url,
        field(&lines, "Client ID:"),
        field(&lines, "Client secret:"),
    )
    .await;
    let added = roster()
        .args(["sandbox", "adobe", "admin", "--data", adobe_data])
        .args(["add-people", "--count", "1", "--prefix", "joiner"])
        .args(["--domain", "acme.example", "--group"])
        .arg("Marketo Engage - Production")
        .output()
        .unwrap();
    assert!(added.status.success(), "{added:?}");
    let user = format!("{url}/userservice/management/v1/users/joiner00001@acme.example/user.json");
    let mut seen = Value::Null;
    for _ in 0..300 {
        seen = get_json(roster_http::client().get(&user).bearer_auth(&token)).await;
        if seen["userid"] == "joiner00001@acme.example" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(seen["userid"], "joiner00001@acme.example", "{seen}");
    stop(marketo);
    stop(adobe);
}

/// `roster audit adobe` against the Adobe sandbox: each person's product profiles (those a
/// user group gives marked), admin roles, the holders of each profile, at the minimum cost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_adobe_audit_shows_who_holds_each_product_profile() {
    const SECRET: &str = "adobe-audit-secret-0123";
    let dir = tempfile::tempdir().unwrap();
    let mut config = roster_sandbox::adobe::AdobeConfig::new(dir.path());
    config.client_id = Some("adobe-audit".into());
    config.client_secret = Some(roster_domain::Secret::new(SECRET));
    let adobe = roster_sandbox::adobe::start(config).await.unwrap();
    let org = adobe.credentials().org_id.clone();
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str], with_org: bool| {
        let mut cmd = roster();
        cmd.env("HOME", home.path())
            .env("ROSTER_STATE", home.path().join("state"))
            .env("ROSTER_ADOBE_URL", adobe.base_url())
            .env("ROSTER_ADOBE_IMS_URL", adobe.base_url())
            .env("ROSTER_ADOBE_CLIENT_ID", "adobe-audit")
            .env("ROSTER_ADOBE_CLIENT_SECRET", SECRET)
            .args(args);
        if with_org {
            cmd.env("ROSTER_ADOBE_ORG_ID", &org);
        }
        run_checked(cmd, &[SECRET])
    };
    let missing = run(&["audit", "adobe"], false).await;
    assert!(
        !missing.ok && missing.stderr.contains("set ROSTER_ADOBE_ORG_ID"),
        "{}",
        missing.stderr
    );
    let audit = run(&["audit", "adobe", "-o", "json"], true).await;
    assert!(audit.ok, "{}", audit.stderr);
    let report = audit.json();
    let user = |email: &str| {
        report["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == email)
            .unwrap_or_else(|| panic!("{email} in {report:#}"))
            .clone()
    };
    assert_eq!(
        user("katherine.johnson@acme.example")["product_profiles"],
        serde_json::json!(["Marketo Engage - Production (through a user group)"])
    );
    assert_eq!(
        user("ada.lovelace@acme.example")["admin_roles"],
        serde_json::json!(["_org_admin"])
    );
    assert_eq!(user("contractor@freelance.example")["type"], "adobeID");
    let production = report["product_profiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["product_profile"] == "Marketo Engage - Production")
        .unwrap()
        .clone();
    let holders = production["users"].as_array().unwrap();
    assert!(
        holders
            .iter()
            .any(|u| u == "katherine.johnson@acme.example")
    );
    assert!(!holders.iter().any(|u| u == "it.admin@acme.example"));
    // One page of groups and one of users, read twice (direct and through groups).
    assert_eq!(report["calls"], 3, "{report:#}");
    let table = run(&["audit", "adobe"], true).await;
    assert!(
        table.stdout.contains("PRODUCT PROFILE") && table.stderr.contains("3 UMAPI calls"),
        "{}{}",
        table.stdout,
        table.stderr
    );
    adobe.shutdown().await;
}
