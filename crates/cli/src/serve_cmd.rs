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

use crate::args::{Output, TokenAction};
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
    config: Option<&Path>,
    listen: Option<SocketAddr>,
    lock_wait: Duration,
) -> Result<()> {
    let path = config_path(config)?;
    let mut config = ServeConfig::load(path)?;
    if let Some(addr) = listen {
        config.listen = addr;
    }
    let dir = state_dir(state, Some(&config));
    // The service is this state's writer while it runs: CLI commands that change things
    // wait for it (and say who holds it) instead of racing it.
    lock::set_writer("roster serve", lock_wait);
    let _held = lock::acquire(&lock::state_lock_path(&dir), "roster serve", lock_wait)?;
    let running = roster_service::start(config, dir.clone()).await?;
    println!(
        "roster serve: http://{} ({} instance(s), state in {})",
        running.addr,
        running.shared.workers.len(),
        dir.display()
    );
    wait_for_stop().await?;
    eprintln!("roster serve: stopping (the step in progress finishes first)");
    running.shutdown().await;
    eprintln!("roster serve: stopped");
    Ok(())
}

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

pub async fn token(action: TokenAction, state: Option<&Path>, config: Option<&Path>) -> Result<()> {
    let config = match config {
        Some(p) => Some(ServeConfig::load(p)?),
        None => None,
    };
    let dir = state_dir(state, config.as_ref());
    let store = connect::open_state(Some(&dir)).await?;
    let now = OffsetDateTime::now_utc();
    match action {
        TokenAction::Create { name, role } => {
            tokens::check_name(&name).map_err(anyhow::Error::msg)?;
            let token = tokens::generate();
            store
                .add_token(&name, &role, &tokens::hash(&token), now)
                .await?;
            eprintln!(
                "API token {name:?} ({role}) created in {}; it is shown once, here:",
                dir.display()
            );
            println!("{token}");
        }
        TokenAction::List { output } => {
            let mut t = Table::new(&["name", "role", "created at", "last used", "revoked at"]);
            for k in store.tokens().await? {
                t.push(vec![
                    json!(k.name),
                    json!(k.role),
                    json!(rfc3339(k.created_at)),
                    json!(k.last_used_at.map(rfc3339)),
                    json!(k.revoked_at.map(rfc3339)),
                ]);
            }
            if t.rows.is_empty() && output == Output::Table {
                eprintln!(
                    "no API tokens in {}; `roster serve token create --name NAME --role ROLE` makes one",
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
