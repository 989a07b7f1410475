//! `roster serve` and `roster serve token ...`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use roster_engine::{connect, lock};
use roster_service::config::ServeConfig;
use roster_service::tokens;
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
    let now = OffsetDateTime::now_utc();
    match action {
        TokenAction::Create {
            name,
            role,
            account,
            service,
            expires,
        } => {
            tokens::check_name(&name).map_err(anyhow::Error::msg)?;
            if account.is_none() && !service {
                bail!(
                    "say whom the token acts for: --for CONSOLE_USER (a person; four-eyes then knows the token and the account are one) or --service (a service account such as CI, known by --name)"
                );
            }
            if let Some(a) = &account {
                let Some(user) = store.console_user(a).await? else {
                    bail!(
                        "no console account {a:?} to make a token for; `roster serve user add` makes one, or give --service for a service account"
                    );
                };
                let (want, has) = (tokens::Role::parse(&role), tokens::Role::parse(&user.role));
                if want > has {
                    bail!(
                        "{a:?} is a console {}; a token acting for them cannot be {role}",
                        user.role
                    );
                }
            } else if store.console_user(&name).await?.is_some() {
                bail!(
                    "{name:?} is a console account: a service token of that name would pass for them; give --for {name} to make a token that acts for that person, or another --name"
                );
            }
            let token = tokens::generate();
            let expires_at = match expires {
                Some(d) => Some(
                    time::Duration::try_from(d)
                        .ok()
                        .and_then(|d| now.checked_add(d))
                        .ok_or_else(|| anyhow::anyhow!("--expires is too far away"))?,
                ),
                None => None,
            };
            store
                .add_token_until(
                    &name,
                    &role,
                    account.as_deref(),
                    &tokens::hash(&token),
                    now,
                    expires_at,
                )
                .await?;
            // Who made which credential is on record, as every change is.
            let actor = roster_engine::actor::Actor::resolve(None);
            let mut line = actor.log("roster", "create token", &name, "done");
            line.detail = Some(format!(
                "{}{}",
                match &account {
                    Some(a) => format!("API token {name} ({role}) acting for console account {a}"),
                    None => format!("API token {name} ({role}), a service account"),
                },
                expires_at
                    .map(|at| format!(", expires {}", rfc3339(at)))
                    .unwrap_or_default()
            ));
            store.append_log(&line, now).await?;
            eprintln!(
                "API token {name:?} ({role}{}) created in {}; it is shown once, here:",
                account
                    .as_deref()
                    .map(|a| format!(", acting for {a}"))
                    .unwrap_or_else(|| ", service account".into()),
                dir.display()
            );
            println!("{token}");
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
            if !store.revoke_token(&name, now).await? {
                bail!("no live API token named {name:?}; `roster serve token list` shows them");
            }
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
    let now = OffsetDateTime::now_utc();
    match action {
        ScimTokenAction::Create { name, instances } => {
            tokens::check_name(&name).map_err(anyhow::Error::msg)?;
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
            let token = tokens::generate();
            store
                .add_scim_connection(&name, &tokens::hash(&token), &instances, now)
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
            if !store.revoke_scim_connection(&name, now).await? {
                bail!(
                    "no live SCIM connection named {name:?}; `roster serve scim-token list` shows them"
                );
            }
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
    match action {
        UserAction::Add { name, role } => {
            tokens::check_name(&name).map_err(anyhow::Error::msg)?;
            let password = new_password(&name)?;
            let hash = tokio::task::spawn_blocking(move || {
                roster_service::console::hash_password(&password)
            })
            .await?;
            store
                .add_console_user(&name, &role, &hash, OffsetDateTime::now_utc())
                .await?;
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
            if !store.remove_console_user(&name).await? {
                bail!("no console account {name:?}; `roster serve user list` shows them");
            }
            log_admin(
                &store,
                "remove console user",
                &name,
                format!("console account {name} removed"),
            )
            .await?;
            eprintln!(
                "console user {name:?} removed: signed out, and its API tokens no longer work"
            );
        }
        UserAction::Passwd { name } => {
            let user = store.console_user(&name).await?.ok_or_else(|| {
                anyhow::anyhow!("no console account {name:?}; `roster serve user list` shows them")
            })?;
            if user.password_hash == roster_store::OIDC_ACCOUNT {
                bail!(
                    "{name:?} signs in through single sign-on; its password is the identity provider's"
                );
            }
            let password = new_password(&name)?;
            let hash = tokio::task::spawn_blocking(move || {
                roster_service::console::hash_password(&password)
            })
            .await?;
            store.set_console_password(&name, &hash).await?;
            log_admin(
                &store,
                "set console password",
                &name,
                format!("a new password for console account {name}"),
            )
            .await?;
            eprintln!(
                "console user {name:?} has a new password, is unlocked and signed out everywhere"
            );
        }
        UserAction::Unlock { name } => {
            if !store.unlock_console_user(&name).await? {
                bail!("no console account {name:?}; `roster serve user list` shows them");
            }
            log_admin(
                &store,
                "unlock console user",
                &name,
                format!("console account {name} unlocked"),
            )
            .await?;
            eprintln!("console user {name:?} unlocked");
        }
        UserAction::SetRole { name, role } => {
            let before = store.console_user(&name).await?.ok_or_else(|| {
                anyhow::anyhow!("no console account {name:?}; `roster serve user list` shows them")
            })?;
            store.set_console_role(&name, &role).await?;
            log_admin(
                &store,
                "set console role",
                &name,
                format!("console account {name}: {} -> {role}", before.role),
            )
            .await?;
            eprintln!("console user {name:?} is now {role} (was {})", before.role);
        }
    }
    Ok(())
}

/// A change to who may use the service, in the audit log as every change is.
async fn log_admin(
    store: &roster_store::StateStore,
    action: &str,
    target: &str,
    detail: String,
) -> Result<()> {
    let actor = roster_engine::actor::Actor::resolve(None);
    let mut line = actor.log("roster", action, target, "done");
    line.detail = Some(detail);
    store.append_log(&line, OffsetDateTime::now_utc()).await?;
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
    if password.chars().count() < 12 {
        bail!("a console password has at least 12 characters; nothing was added");
    }
    Ok(password)
}

/// Reads a line from the terminal with echo off (stdin as is when it is not a terminal).
fn prompt_hidden(prompt: &str) -> Result<String> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    if !tty {
        bail!("no password: set ROSTER_NEW_PASSWORD, or run this on a terminal to be asked");
    }
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    #[cfg(unix)]
    let saved = {
        // SAFETY: termios calls on stdin's descriptor with a zeroed struct they fill in.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            libc::tcgetattr(0, &mut t);
            let saved = t;
            t.c_lflag &= !libc::ECHO;
            libc::tcsetattr(0, libc::TCSANOW, &t);
            saved
        }
    };
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    #[cfg(unix)]
    // SAFETY: restores the settings read above.
    unsafe {
        libc::tcsetattr(0, libc::TCSANOW, &saved);
    }
    eprintln!();
    read.context("cannot read the password")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}
