//! `roster demo`: Roster's weekly jobs against an in-process Marketo sandbox, offline and with
//! no setup. A joiner is provisioned (and accepts the invitation, as they would by email),
//! a leaver is offboarded with a tombstone, and an audit writes its HTML report.

use std::path::PathBuf;

use anyhow::{Context, Result};
use roster_domain::Secret;
use roster_sandbox::marketo::{self, MarketoConfig};

use crate::args::{Confirm, MarketoConn, Output, ProvisionCommand, ReportFormat, TombstonesArgs};
use crate::marketo_cmd::Globals;
use crate::{audit_cmd, lifecycle};

const JOINER: &str = "sam.lee@acme.example";
const LEAVER: &str = "alan.turing@acme.example";

fn step(text: &str) {
    println!("\n== {text}");
}

pub async fn run(dir: Option<PathBuf>) -> Result<()> {
    let dir = match dir {
        Some(dir) => dir,
        None => {
            let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
            std::env::temp_dir().join(format!("roster-demo-{stamp}-{}", std::process::id()))
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut config = MarketoConfig::new(dir.join("sandbox"));
    config.listen = "127.0.0.1:0".parse().expect("a valid address");
    config.client_id = Some("roster-demo".into());
    config.client_secret = Some(Secret::new(format!("demo-{}", uuid_like())));
    let sandbox = marketo::start(config)
        .await
        .context("cannot start the Marketo sandbox")?;
    let creds = sandbox.credentials();
    println!(
        "Roster demo: a Marketo sandbox is running at {} (state in {})",
        sandbox.base_url(),
        dir.display()
    );
    let conn = MarketoConn {
        url: Some(sandbox.base_url().to_string()),
        client_id: Some(creds.client_id.clone()),
        client_secret: Some(creds.client_secret.expose().to_string()),
        max_in_flight: None,
        rate_limit: None,
        rate_window: None,
        daily_quota: None,
    };
    let state = dir.join("state");
    let g = Globals {
        state: Some(&state),
        config: None,
    };
    let result = scenario(&sandbox, &conn, &g, &dir).await;
    sandbox.shutdown().await;
    result
}

async fn scenario(
    sandbox: &marketo::RunningSandbox,
    conn: &MarketoConn,
    g: &Globals<'_>,
    dir: &std::path::Path,
) -> Result<()> {
    step(&format!(
        "Joiner: provision {JOINER} as Standard User in Default and Marketing User in World"
    ));
    lifecycle::provision(
        ProvisionCommand::Marketo {
            conn: conn.clone(),
            email: Some(JOINER.into()),
            first: Some("Sam".into()),
            last: Some("Lee".into()),
            roles: vec![
                "Standard User@Default".into(),
                "Marketing User@World".into(),
            ],
            api_only: false,
            expires_at: None,
            wait: false,
            wait_timeout: std::time::Duration::from_secs(60),
            poll_interval: std::time::Duration::from_secs(1),
            resend: false,
            check_pending: false,
        },
        g,
    )
    .await?;

    step(&format!(
        "{JOINER} opens the invitation email and sets a password"
    ));
    accept_invitation(sandbox.base_url(), JOINER).await?;
    println!("accepted through the sandbox's invitation page");

    step("Roster checks the invitations it is tracking and grants any role that did not persist");
    lifecycle::provision(
        ProvisionCommand::Marketo {
            conn: conn.clone(),
            email: None,
            first: None,
            last: None,
            roles: Vec::new(),
            api_only: false,
            expires_at: None,
            wait: false,
            wait_timeout: std::time::Duration::from_secs(60),
            poll_interval: std::time::Duration::from_secs(1),
            resend: false,
            check_pending: true,
        },
        g,
    )
    .await?;

    step(&format!(
        "Leaver: offboard {LEAVER} (first the dry run, then for real)"
    ));
    let mut confirm = Confirm {
        yes: false,
        reason: Some("left the company (demo)".into()),
        by: Some("roster-demo".into()),
    };
    lifecycle::offboard_cmd(conn, LEAVER, false, &confirm, g).await?;
    confirm.yes = true;
    lifecycle::offboard_cmd(conn, LEAVER, false, &confirm, g).await?;

    step("Tombstones: what Roster deleted, so it can be restored");
    lifecycle::tombstones(
        TombstonesArgs {
            app: None,
            output: Output::Table,
        },
        g,
    )
    .await?;

    step("Audit: who has which role in which workspace");
    let html = dir.join("audit.html");
    audit_cmd::run(conn, ReportFormat::Table, Some(html.clone()), g).await?;
    println!("\nThe HTML report is at {}", html.display());
    Ok(())
}

/// What the invitee does in a browser: follow the emailed link and set a password twice.
async fn accept_invitation(base_url: &str, email: &str) -> Result<()> {
    let http = reqwest::Client::new();
    let mail: serde_json::Value = http
        .get(format!("{base_url}/sandbox/mailbox"))
        .query(&[("to", email)])
        .send()
        .await?
        .json()
        .await?;
    let url = mail
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["acceptUrl"].as_str())
        .context("the sandbox sent no invitation email")?
        .to_string();
    let page = http
        .post(url)
        .form(&[
            ("password", "Demo-Passw0rd"),
            ("confirmPassword", "Demo-Passw0rd"),
        ])
        .send()
        .await?;
    anyhow::ensure!(
        page.status().is_success(),
        "the invitation page answered {}",
        page.status()
    );
    Ok(())
}

fn uuid_like() -> String {
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    format!("{:x}{:x}", nanos, std::process::id())
}
