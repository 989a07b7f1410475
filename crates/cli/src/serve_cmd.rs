//! `roster serve` and `roster serve token ...`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use roster_engine::{connect, lock};
use roster_service::admin::{Admin, MIN_PASSWORD, NewToken};
use roster_service::config::ServeConfig;
use serde_json::json;
use time::OffsetDateTime;

use crate::args::{ScimTokenAction, TokenAction, UserAction};
use crate::output::{Table, rfc3339};

fn config_path(config: Option<&Path>) -> Result<&Path> {
    config.context(
        "roster serve needs its configuration: --config FILE (or ROSTER_CONFIG), a TOML file naming the instances; the README's \"Service configuration\" shows one",
    )
}

/// The state folder: --state, else the service config's [service] state, else the default.
fn state_dir(state: Option<&Path>, config: Option<&ServeConfig>) -> PathBuf {
    state
        .map(Path::to_path_buf)
        .or_else(|| config.and_then(|c| c.state.clone()))
        .unwrap_or_else(connect::default_state_dir)
}

pub async fn serve(
    state: Option<&Path>,
    database: Option<&str>,
    config: Option<&Path>,
    listen: Option<SocketAddr>,
    lock_wait: Duration,
) -> Result<()> {
    let path = config_path(config)?;
    let mut config = ServeConfig::load(path)?;
    config.database = database.map(roster_store::DatabaseUrl::from);
    if let Some(addr) = listen {
        config.listen = addr;
    }
    let dir = state_dir(state, Some(&config));
    // The service is this state's writer while it runs: CLI commands that change things
    // wait for it (and say who holds it) instead of racing it. On a shared PostgreSQL
    // state the lock is in the database and `roster serve` processes share it (on this
    // machine or others): they take runs from one job queue, each instance's runs one at a
    // time, and when one dies the others carry on with its work.
    lock::set_writer("roster serve", lock_wait);
    let stop = wait_for_stop();
    tokio::pin!(stop);
    let mut writer = None;
    let _held = match database {
        Some(url) => {
            // The state folder still matters with a database: the signing key is there.
            let store = connect::open_state(Some(&dir), Some(url)).await?;
            let me = lock::holder_name("roster serve");
            let mut said = false;
            writer = Some(loop {
                if let Some(held) = store.try_shared_writer_lock(&me).await? {
                    if said {
                        tracing::info!(target: "roster_service", "roster serve: starting: the state is free again");
                    }
                    break held;
                }
                if !said {
                    let who = match store.writer_lock_holder().await? {
                        Some((who, since)) => format!("{who}, since {since},"),
                        None => "another roster process".into(),
                    };
                    tracing::info!(
                        target: "roster_service",
                        "roster serve: waiting: {who} holds the state in {} alone; this one starts when it finishes",
                        store.path().display()
                    );
                    said = true;
                }
                tokio::select! {
                    stopped = &mut stop => {
                        stopped?;
                        tracing::info!(target: "roster_service", "roster serve: stopped while waiting");
                        return Ok(());
                    }
                    () = tokio::time::sleep(WRITER_POLL) => {}
                }
            });
            None
        }
        None => Some(lock::acquire(
            &lock::state_lock_path(&dir),
            "roster serve",
            lock_wait,
        )?),
    };
    let running = roster_service::start(config, dir.clone()).await?;
    println!(
        "roster serve: {}://{} ({} instance(s), state in {}{})",
        running.scheme,
        running.addr,
        running.shared.workers.len(),
        running.shared.store.path().display(),
        if writer.is_some() {
            ", runs shared with every roster serve on this database"
        } else {
            ""
        }
    );
    loop {
        tokio::select! {
            stopped = &mut stop => {
                stopped?;
                break;
            }
            () = tokio::time::sleep(LEASE_CHECK) => {
                // The writer lock lives in a database session; if the session ended (the
                // database restarted, the network parted), a CLI command may hold it alone
                // now, so this process stops writing at once (its jobs go to the others).
                if let Some(lock) = writer.as_mut()
                    && !lock.held().await
                {
                    tracing::error!(
                        target: "roster_service",
                        "roster serve: lost the state's writer lock (its database session ended); stopping"
                    );
                    running.shutdown().await;
                    bail!("lost the state's writer lock; start roster serve again");
                }
            }
        }
    }
    // Log lines (JSON with --json-logs), as every other line the service writes.
    tracing::info!(target: "roster_service", "roster serve: stopping (the step in progress finishes first)");
    running.shutdown().await;
    tracing::info!(target: "roster_service", "roster serve: stopped");
    Ok(())
}

/// How often a waiting `roster serve` asks for the writer lock: the longest it waits after
/// a CLI command holding it alone finishes.
const WRITER_POLL: Duration = Duration::from_millis(500);
/// How often the holder checks that its lock's session still stands.
const LEASE_CHECK: Duration = Duration::from_secs(2);

/// SIGTERM or Ctrl-C.
pub async fn wait_for_stop() -> Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot watch for SIGTERM")?;
        tokio::select! {
            _ = term.recv() => {},
            r = tokio::signal::ctrl_c() => r.context("cannot watch for Ctrl-C")?,
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("cannot watch for Ctrl-C")?;
    Ok(())
}

pub async fn token(
    action: TokenAction,
    state: Option<&Path>,
    database: Option<&str>,
    config: Option<&Path>,
) -> Result<()> {
    let (dir, store) = state_for(state, database, config).await?;
    let admin = Admin::new(&store, None);
    match action {
        TokenAction::Create {
            name,
            role,
            account,
            service,
            expires,
        } => {
            if account.is_none() && !service {
                bail!(
                    "say whom the token acts for: --for CONSOLE_USER (a person; four-eyes then knows the token and the account are one) or --service (a service account such as CI, known by --name)"
                );
            }
            let made = admin
                .create_token(NewToken {
                    name: &name,
                    role: &role,
                    account: account.as_deref(),
                    expires,
                })
                .await?;
            eprintln!(
                "API token {name:?} ({role}{}{}) created in {}; it is shown once, here:",
                account
                    .as_deref()
                    .map(|a| format!(", acting for {a}"))
                    .unwrap_or_else(|| ", service account".into()),
                made.expires_at
                    .map(|at| format!(", expires {}", rfc3339(at)))
                    .unwrap_or_default(),
                dir.display()
            );
            println!("{}", made.token);
        }
        TokenAction::Rotate {
            name,
            overlap,
            expires,
        } => {
            let made = admin.rotate_token(&name, overlap, expires).await?;
            eprintln!(
                "API token {name:?} rotated in {}: the new one below works now{}; the old one keeps working for {} (listed as {name}#rotated-...), then stops",
                dir.display(),
                made.expires_at
                    .map(|at| format!(" and expires {}", rfc3339(at)))
                    .unwrap_or_default(),
                humantime::format_duration(overlap)
            );
            println!("{}", made.token);
        }
        TokenAction::List { output } => {
            let mut t = Table::new(&[
                "name",
                "role",
                "acts for",
                "created at",
                "last used",
                "expires at",
                "revoked at",
            ]);
            for k in store.tokens().await? {
                t.push(vec![
                    json!(k.name),
                    json!(k.role),
                    json!(k.account.as_deref().unwrap_or("(service account)")),
                    json!(rfc3339(k.created_at)),
                    json!(k.last_used_at.map(rfc3339)),
                    json!(k.expires_at.map(rfc3339)),
                    json!(k.revoked_at.map(rfc3339)),
                ]);
            }
            if t.rows.is_empty() && output.is_table() {
                eprintln!(
                    "no API tokens in {}; `roster serve token create --name NAME --role ROLE --for CONSOLE_USER` (or `--service`) makes one",
                    dir.display()
                );
            }
            t.print(output)?;
        }
        TokenAction::Revoke { name } => {
            admin.revoke_token(&name).await?;
            eprintln!("revoked the API token {name:?}");
        }
    }
    Ok(())
}

pub async fn scim_token(
    action: ScimTokenAction,
    state: Option<&Path>,
    database: Option<&str>,
    config: Option<&Path>,
) -> Result<()> {
    let (dir, store) = state_for(state, database, config).await?;
    match action {
        ScimTokenAction::Create { name, instances } => {
            if let Some(path) = config {
                let cfg = ServeConfig::load(path)?;
                if let Some(bad) = instances.iter().find(|i| cfg.instance(i).is_none()) {
                    bail!(
                        "{} runs no instance {bad:?}; it runs {}",
                        path.display(),
                        cfg.instances
                            .iter()
                            .map(|i| i.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
            }
            let token = Admin::new(&store, None)
                .create_scim_token(&name, &instances)
                .await?;
            eprintln!(
                "SCIM connection {name:?} ({}) created in {}; its token is shown once, here:",
                roster_store::ScimConnection::reach_of(&instances),
                dir.display()
            );
            println!("{token}");
        }
        ScimTokenAction::List { output } => {
            let mut t = Table::new(&["name", "instances", "created at", "last used", "revoked at"]);
            for c in store.scim_connections().await? {
                t.push(vec![
                    json!(c.name),
                    json!(c.reach()),
                    json!(rfc3339(c.created_at)),
                    json!(c.last_used_at.map(rfc3339)),
                    json!(c.revoked_at.map(rfc3339)),
                ]);
            }
            if t.rows.is_empty() && output.is_table() {
                eprintln!(
                    "no SCIM connections in {}; `roster serve scim-token create --name NAME` makes one",
                    dir.display()
                );
            }
            t.print(output)?;
        }
        ScimTokenAction::Revoke { name } => {
            Admin::new(&store, None).revoke_scim_token(&name).await?;
            eprintln!("revoked the SCIM connection {name:?}");
        }
    }
    Ok(())
}

/// `roster serve migrate`: opens the service's state, which brings its schema up to date,
/// and says where it stands.
pub async fn migrate(
    state: Option<&Path>,
    database: Option<&str>,
    config: Option<&Path>,
) -> Result<()> {
    let (place, store) = state_for(state, database, config).await?;
    println!(
        "the state in {} is up to date (schema step {}, {:?})",
        place.display(),
        store.schema_version().await?,
        store.backend()
    );
    if let Some(url) = database {
        roster_service::jobs::set_up(&store, url).await?;
        println!(
            "the job queue in {} (schema {}) is up to date",
            place.display(),
            roster_store::JOB_SCHEMA
        );
    }
    Ok(())
}

/// The state of `roster serve ...` subcommands: --database, else the folder --state names,
/// else the config's, else the default; with where it is, to say so.
async fn state_for(
    state: Option<&Path>,
    database: Option<&str>,
    config: Option<&Path>,
) -> Result<(PathBuf, roster_store::StateStore)> {
    let config = match config {
        Some(p) => Some(ServeConfig::load(p)?),
        None => None,
    };
    let dir = state_dir(state, config.as_ref());
    let store = connect::open_state(Some(&dir), database).await?;
    Ok((store.path().to_path_buf(), store))
}

pub async fn user(
    action: UserAction,
    state: Option<&Path>,
    database: Option<&str>,
    config: Option<&Path>,
) -> Result<()> {
    let (dir, store) = state_for(state, database, config).await?;
    let admin = Admin::new(&store, None);
    match action {
        UserAction::Add { name, role } => {
            let password = new_password(&name)?;
            admin.add_user(&name, &role, password).await?;
            eprintln!("console user {name:?} ({role}) added in {}", dir.display());
        }
        UserAction::List { output } => {
            let mut t = Table::new(&["name", "role", "sign-in", "created at", "locked until"]);
            let now = OffsetDateTime::now_utc();
            for u in store.console_users().await? {
                t.push(vec![
                    json!(u.name),
                    json!(u.role),
                    json!(if u.password_hash == roster_store::OIDC_ACCOUNT {
                        "single sign-on"
                    } else {
                        "password"
                    }),
                    json!(rfc3339(u.created_at)),
                    json!(u.locked_until.filter(|t| *t > now).map(rfc3339)),
                ]);
            }
            t.print(output)?;
        }
        UserAction::Remove { name } => {
            admin.remove_user(&name).await?;
            eprintln!(
                "console user {name:?} removed: signed out, and its API tokens no longer work"
            );
        }
        UserAction::Passwd { name } => {
            if store
                .console_user(&name)
                .await?
                .is_some_and(|u| u.password_hash == roster_store::OIDC_ACCOUNT)
            {
                bail!(
                    "{name:?} signs in through single sign-on; its password is the identity provider's"
                );
            }
            let password = new_password(&name)?;
            admin.set_password(&name, password).await?;
            eprintln!(
                "console user {name:?} has a new password, is unlocked and signed out everywhere"
            );
        }
        UserAction::Unlock { name } => {
            admin.unlock_user(&name).await?;
            eprintln!("console user {name:?} unlocked");
        }
        UserAction::SetRole { name, role } => {
            let before = admin.set_role(&name, &role).await?;
            eprintln!("console user {name:?} is now {role} (was {before})");
        }
    }
    Ok(())
}

/// ROSTER_NEW_PASSWORD, else asked for twice on the terminal without echo.
fn new_password(name: &str) -> Result<String> {
    let password = match std::env::var("ROSTER_NEW_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            let first = prompt_hidden(&format!("password for {name}: "))?;
            let again = prompt_hidden("again: ")?;
            if first != again {
                bail!("the two passwords differ; nothing was added");
            }
            first
        }
    };
    if password.chars().count() < MIN_PASSWORD {
        bail!("a console password has at least {MIN_PASSWORD} characters; nothing was changed");
    }
    Ok(password)
}

/// Reads a line from the terminal with echo off (rpassword); refuses when stdin is no
/// terminal, where a password would have to come from ROSTER_NEW_PASSWORD.
fn prompt_hidden(prompt: &str) -> Result<String> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        bail!("no password: set ROSTER_NEW_PASSWORD, or run this on a terminal to be asked");
    }
    rpassword::prompt_password(prompt).context("cannot read the password")
}
