//! `roster demo`: Roster's main job, offline and with no setup. Both sandboxes start
//! in-process on free ports with a temporary state; Roster plans `examples/roster.yaml`
//! against them, applies the plan, follows a joiner's invitation, plans again (nothing left
//! to do), and runs both audits.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use roster_domain::Secret;
use roster_sandbox::magento::{self as magento_sandbox, MagentoConfig};
use roster_sandbox::marketo::{self, MarketoConfig};

use crate::args::{MagentoConn, MarketoConn, Output, ReportFormat, TombstonesArgs};
use roster_engine::Globals;
use roster_engine::live_read::Sessions;
use roster_engine::planning::{self as plan_cmd, ApplyArgs, ToApply};

use crate::{audit_cmd, lifecycle_cmd as lifecycle, magento_cmd};

/// The example roster, built in so the demo runs from any directory.
const EXAMPLE: &str = include_str!("../../../examples/roster.yaml");
const JOINER: &str = "nia.okafor@acme.example";

fn step(text: &str) {
    println!("\n== {text}");
}

pub async fn run(dir: Option<PathBuf>, serve: bool, print_env: bool) -> Result<()> {
    let dir = match dir {
        Some(dir) => dir,
        None => {
            let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
            std::env::temp_dir().join(format!("roster-demo-{stamp}-{}", std::process::id()))
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut config = MarketoConfig::new(dir.join("marketo-sandbox"));
    config.listen = "127.0.0.1:0".parse().expect("a valid address");
    config.client_id = Some("roster-demo".into());
    config.client_secret = Some(Secret::new(format!("demo-{}", uuid_like())));
    let sandbox = marketo::start(config)
        .await
        .context("cannot start the Marketo sandbox")?;
    let mut config = MagentoConfig::new(dir.join("magento-sandbox"));
    config.listen = "127.0.0.1:0".parse().expect("a valid address");
    config.admin_users_api = true;
    let store = match magento_sandbox::start(config).await {
        Ok(store) => store,
        Err(e) => {
            sandbox.shutdown().await;
            return Err(anyhow::Error::new(e).context("cannot start the Magento sandbox"));
        }
    };
    println!(
        "Roster demo: a Marketo sandbox at {} and a Magento sandbox at {} (state in {})",
        sandbox.base_url(),
        store.base_url(),
        dir.display()
    );
    if serve {
        let result = serve_demo(&sandbox, &store, &dir, print_env).await;
        sandbox.shutdown().await;
        store.shutdown().await;
        return result;
    }
    let creds = sandbox.credentials();
    let marketo_conn = MarketoConn {
        url: Some(sandbox.base_url().to_string()),
        client_id: Some(creds.client_id.clone()),
        client_secret: Some(creds.client_secret.expose().to_string()),
        ..MarketoConn::default()
    };
    let magento_conn = MagentoConn {
        url: Some(store.base_url().to_string()),
        username: Some(store.admin_user().to_string()),
        password: Some(store.admin_password().expose().to_string()),
        scope: "all".into(),
        ..MagentoConn::default()
    };
    let state = dir.join("state");
    let g = Globals {
        state: Some(state),
        database: None,
        config: None,
        actor: None,
        events: std::sync::Arc::new(crate::render::Terminal),
        no_config_file: false,
        instance: None,
        service_instances: None,
    };
    let result = scenario(&sandbox, &marketo_conn, &magento_conn, &g, &dir).await;
    sandbox.shutdown().await;
    store.shutdown().await;
    result
}

async fn scenario(
    sandbox: &marketo::RunningSandbox,
    marketo_conn: &MarketoConn,
    magento_conn: &MagentoConn,
    g: &Globals,
    dir: &Path,
) -> Result<()> {
    let roster = dir.join("roster.yaml");
    std::fs::write(&roster, EXAMPLE)
        .with_context(|| format!("cannot write {}", roster.display()))?;
    let mut sessions =
        Sessions::connect(Some(marketo_conn.clone()), Some(magento_conn.clone()), g).await?;

    step(&format!(
        "Plan: what it takes for both apps to match {} (a copy of examples/roster.yaml)",
        roster.display()
    ));
    let plan = plan_cmd::compute(&roster, &sessions, false, None)
        .await?
        .plan;
    print!("{plan}");
    println!("{}", plan_cmd::summary_line(&plan));
    let saved = dir.join("plan.json");
    let state = roster_engine::connect::open_state(g.state.as_deref(), None).await?;
    plan_cmd::save(&plan, &saved, state.keys()?)?;

    step("Apply: every step journaled; destructive ones approved here with --approve");
    apply_file(&saved, &sessions, g).await?;

    step(&format!(
        "{JOINER} opens the invitation email and sets a password"
    ));
    accept_invitation(sandbox.base_url(), JOINER).await?;
    println!("accepted through the sandbox's invitation page");

    step("Plan again: the apps now match the roster");
    let again = plan_cmd::compute(&roster, &sessions, false, None)
        .await?
        .plan;
    print!("{again}");
    sessions.finish().await?;

    records("Tombstones: what Roster deleted, so it can be restored", g).await?;

    step("Audit, Magento: customers by website and group, and admin users");
    magento_cmd::audit(magento_conn, Output::Table, g).await?;

    step("Audit, Marketo: who has which role in which workspace");
    let html = dir.join("audit.html");
    audit_cmd::run(
        marketo_conn,
        ReportFormat::Table,
        Some(html.clone()),
        false,
        g,
    )
    .await?;
    println!("\nThe HTML report is at {}", html.display());
    Ok(())
}

/// What the invitee does in a browser: follow the emailed link and set a password twice.
async fn accept_invitation(base_url: &str, email: &str) -> Result<()> {
    let http = roster_http::client();
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

/// The IMS example roster, built in too.
const EXAMPLE_IMS: &str = include_str!("../../../examples/roster-ims.yaml");
const PROFILE: &str = "Marketo Engage - Production";

/// `roster demo --ims`: the tour on a Marketo subscription managed by Adobe Identity. An
/// Adobe Admin Console sandbox and a Marketo sandbox that follows its product profile start
/// in-process; Roster plans `examples/roster-ims.yaml` (Adobe steps, then Marketo's), applies
/// it, waits for Marketo's sync, grants the joiner's roles, and plans once more.
pub async fn run_ims(dir: Option<PathBuf>) -> Result<()> {
    let dir = match dir {
        Some(dir) => dir,
        None => {
            let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
            std::env::temp_dir().join(format!("roster-demo-ims-{stamp}-{}", std::process::id()))
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let adobe_dir = dir.join("adobe-sandbox");
    let mut config = roster_sandbox::adobe::AdobeConfig::new(&adobe_dir);
    config.client_id = Some("roster-demo".into());
    config.client_secret = Some(Secret::new(format!("demo-{}", uuid_like())));
    let adobe = roster_sandbox::adobe::start(config)
        .await
        .context("cannot start the Adobe sandbox")?;
    let mut config = MarketoConfig::new(dir.join("marketo-sandbox"));
    config.listen = "127.0.0.1:0".parse().expect("a valid address");
    config.client_id = Some("roster-demo".into());
    config.client_secret = Some(Secret::new(format!("demo-{}", uuid_like())));
    config.ims = true;
    config.adobe = Some(marketo::ims_sync::AdobeLink {
        data_dir: adobe_dir,
        sync_delay: std::time::Duration::from_secs(1),
    });
    let sandbox = match marketo::start(config).await {
        Ok(s) => s,
        Err(e) => {
            adobe.shutdown().await;
            return Err(anyhow::Error::new(e).context("cannot start the Marketo sandbox"));
        }
    };
    println!(
        "Roster demo on Adobe Identity: an Adobe Admin Console sandbox at {} and a Marketo sandbox at {} that follows its product profile {PROFILE:?} after a 1 s sync (state in {})",
        adobe.base_url(),
        sandbox.base_url(),
        dir.display()
    );
    let a = adobe.credentials();
    let adobe_conn = roster_engine::AdobeConn {
        url: Some(adobe.base_url().to_string()),
        ims_url: Some(adobe.base_url().to_string()),
        org_id: Some(a.org_id.clone()),
        client_id: Some(a.client_id.clone()),
        client_secret: Some(a.client_secret.expose().to_string()),
    };
    let creds = sandbox.credentials();
    let marketo_conn = MarketoConn {
        url: Some(sandbox.base_url().to_string()),
        client_id: Some(creds.client_id.clone()),
        client_secret: Some(creds.client_secret.expose().to_string()),
        ims: Some(roster_engine::ImsSettings {
            adobe: adobe_conn.clone(),
            profiles: vec![PROFILE.into()],
            identity_type: None,
            country: Some("US".into()),
            sync_timeout: None,
        }),
        ..MarketoConn::default()
    };
    let g = Globals {
        state: Some(dir.join("state")),
        database: None,
        config: None,
        actor: None,
        events: std::sync::Arc::new(crate::render::Terminal),
        no_config_file: false,
        instance: None,
        service_instances: None,
    };
    let result = ims_scenario(&marketo_conn, &adobe_conn, &g, &dir).await;
    sandbox.shutdown().await;
    adobe.shutdown().await;
    result
}

async fn ims_scenario(
    marketo_conn: &MarketoConn,
    adobe_conn: &roster_engine::AdobeConn,
    g: &Globals,
    dir: &Path,
) -> Result<()> {
    let roster = dir.join("roster-ims.yaml");
    std::fs::write(&roster, EXAMPLE_IMS)
        .with_context(|| format!("cannot write {}", roster.display()))?;
    let mut sessions = Sessions::connect(Some(marketo_conn.clone()), None, g).await?;
    let people = roster_engine::apps::adobe::NewPeople {
        identity_type: None,
        country: Some("US".into()),
    };
    sessions.adobe =
        Some(roster_engine::apps::adobe::AdobeSession::open(adobe_conn, &people, g).await?);
    sessions.reserve_ims_profiles();
    step(&format!(
        "Plan: {} (a copy of examples/roster-ims.yaml): Adobe Admin Console steps for the joiner and the leaver, Marketo's for the mover, and the Adobe app's for the joiner's Creative Cloud",
        roster.display()
    ));
    let computed = plan_cmd::compute(&roster, &sessions, false, None).await?;
    print!("{}", computed.plan);
    println!("{}", plan_cmd::summary_line(&computed.plan));
    let saved = dir.join("plan.json");
    let state = roster_engine::connect::open_state(g.state.as_deref(), None).await?;
    plan_cmd::save(&computed.plan, &saved, state.keys()?)?;

    step("Apply: the destructive step (the leaver's profile) approved here with --approve");
    apply_file(&saved, &sessions, g).await?;

    step("Marketo's sync with the Admin Console: the joiner arrives, the leaver goes");
    let start = std::time::Instant::now();
    loop {
        let users = sessions
            .marketo
            .as_ref()
            .context("the Marketo session")?
            .client
            .all_users()
            .await?;
        let has = |e: &str| {
            users
                .iter()
                .any(|u| u.email_address.eq_ignore_ascii_case(e))
        };
        if has("nia.okafor@acme.example") && !has("margaret.hamilton@acme.example") {
            println!("synced after {:.1} s", start.elapsed().as_secs_f64());
            break;
        }
        anyhow::ensure!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "Marketo did not sync with the Admin Console within 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    step("Plan again: the joiner's roles, now that Marketo shows her");
    let computed = plan_cmd::compute(&roster, &sessions, false, None).await?;
    print!("{}", computed.plan);
    let saved = dir.join("plan-2.json");
    plan_cmd::save(&computed.plan, &saved, state.keys()?)?;
    apply_file(&saved, &sessions, g).await?;

    step("Plan once more: both halves match the roster");
    let again = plan_cmd::compute(&roster, &sessions, false, None).await?;
    print!("{}", again.plan);
    sessions.finish().await?;

    records(
        "Tombstones: the leaver's Marketo roles and product profile",
        g,
    )
    .await?;

    step("Audit, Adobe: who holds which product profile");
    crate::adobe_cmd::audit(adobe_conn, Output::Table, g).await?;
    Ok(())
}

/// The tombstones and the audit log, as the tour ends with them.
async fn records(title: &str, g: &Globals) -> Result<()> {
    step(title);
    lifecycle::tombstones(
        TombstonesArgs {
            app: None,
            output: Output::Table,
        },
        g,
    )
    .await?;
    step("Audit log: who ran what, when, and how it went");
    crate::plan_cmd::log_cmd(None, Output::Table, g).await
}

async fn apply_file(saved: &Path, sessions: &Sessions, g: &Globals) -> Result<()> {
    plan_cmd::apply_with(
        ApplyArgs {
            plan: ToApply::File(saved),
            approve: true,
            by: Some("roster-demo"),
            resend_invites: false,
            stop: None,
        },
        sessions,
        g,
    )
    .await
}

fn uuid_like() -> String {
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    format!("{:x}{:x}", nanos, std::process::id())
}

/// `roster demo --serve`: `roster serve` against both sandboxes, with an admin API token,
/// until SIGTERM or Ctrl-C.
async fn serve_demo(
    sandbox: &marketo::RunningSandbox,
    store: &magento_sandbox::RunningMagento,
    dir: &Path,
    print_env: bool,
) -> Result<()> {
    let secrets = dir.join("secrets");
    roster_engine::private::create_dir(&secrets)?;
    let creds = sandbox.credentials();
    roster_engine::private::write(&secrets.join("marketo"), creds.client_secret.expose())?;
    roster_engine::private::write(&secrets.join("magento"), store.admin_password().expose())?;
    std::fs::write(dir.join("roster.yaml"), EXAMPLE)
        .with_context(|| format!("cannot write {}", dir.join("roster.yaml").display()))?;
    let config = format!(
        "# Written by `roster demo --serve`: both sandboxes, reconciled every minute.\n\
         [service]\nlisten = \"127.0.0.1:0\"\nstate = \"state\"\n\n\
         [marketo.demo]\nurl = \"{}\"\nclient_id = \"{}\"\nclient_secret_file = \"secrets/marketo\"\nroster = \"roster.yaml\"\ninterval = \"1m\"\n\n\
         [magento.demo]\nurl = \"{}\"\nusername = \"{}\"\npassword_file = \"secrets/magento\"\nroster = \"roster.yaml\"\ninterval = \"1m\"\n",
        sandbox.base_url(),
        creds.client_id,
        store.base_url(),
        store.admin_user()
    );
    let path = dir.join("roster.toml");
    std::fs::write(&path, config).with_context(|| format!("cannot write {}", path.display()))?;
    let config = roster_service::config::ServeConfig::load(&path)?;
    let state = dir.join("state");
    // A console account to try the web console with (sandbox only: the password is shown).
    let console_password = roster_service::tokens::generate()[7..27].to_string();
    let hash = roster_service::console::hash_password(&console_password);
    roster_engine::connect::open_state(Some(&state), None)
        .await?
        .add_console_user("demo", "admin", &hash, time::OffsetDateTime::now_utc())
        .await?;
    // Its API token: the same person, as four-eyes sees it.
    let token = roster_service::tokens::generate();
    roster_engine::connect::open_state(Some(&state), None)
        .await?
        .add_token_for(
            "demo-admin",
            "admin",
            Some("demo"),
            &roster_service::tokens::hash(&token),
            time::OffsetDateTime::now_utc(),
        )
        .await?;
    // A SCIM connection, so an identity provider's SCIM client can be pointed at the demo.
    let scim_token = roster_service::tokens::generate();
    roster_engine::connect::open_state(Some(&state), None)
        .await?
        .add_scim_connection(
            "demo",
            &roster_service::tokens::hash(&scim_token),
            &[],
            time::OffsetDateTime::now_utc(),
        )
        .await?;
    let running = roster_service::start(config, state).await?;
    let url = format!("http://{}", running.addr);
    println!("roster serve: {url} (configuration {})", path.display());
    println!("API token (admin): {token}");
    println!("web console: {url}/console (user demo, password {console_password})");
    println!("SCIM 2.0: {url}/scim/v2 (bearer token {scim_token})");
    println!(
        "try: curl -H \"Authorization: Bearer $ROSTER_SERVE_TOKEN\" {url}/api/v1/plans?status=pending"
    );
    if print_env {
        println!("ROSTER_SERVE_URL={url}");
        println!("ROSTER_SERVE_TOKEN={token}");
        println!("ROSTER_SCIM_URL={url}/scim/v2");
        println!("ROSTER_SCIM_TOKEN={scim_token}");
    }
    println!("Press Ctrl-C (or send SIGTERM) to stop.");
    crate::serve_cmd::wait_for_stop().await?;
    running.shutdown().await;
    Ok(())
}
