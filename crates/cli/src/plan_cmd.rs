//! `roster plan` and `roster log`: the front ends of the engine's planning and audit log.

use std::path::Path;

use anyhow::{Context, Result, bail};
use roster_domain::plan::Plan;
use roster_engine::Globals;
use roster_engine::live_read::Sessions;
use roster_engine::planning::{compute, save, short, summary, summary_line};
use roster_store::LogHead;
use serde_json::json;

use crate::args::Output;
use crate::output::{Table, rfc3339};

async fn open_state(g: &Globals) -> Result<roster_store::StateStore> {
    roster_engine::connect::open_state(g.state.as_deref(), g.database.as_deref()).await
}

/// What `plan --detailed-exitcode` exits with.
pub enum PlanOutcome {
    NothingToDo,
    Changes,
    Blocked,
}

pub async fn plan_cmd(
    roster: &Path,
    out: Option<&Path>,
    output: Output,
    resend_invites: bool,
    people: &[String],
    g: &Globals,
) -> Result<PlanOutcome> {
    for email in people {
        if let Some(why) = roster_domain::email::problem(&email.trim().to_lowercase()) {
            bail!(
                "--person {:?}: {why}; nothing was read",
                roster_engine::text::sanitize(email)
            );
        }
    }
    let mut sessions = Sessions::open(g).await?;
    let only = roster_engine::planning::only_of(g);
    let computed = if people.is_empty() {
        compute(roster, &sessions, resend_invites, only).await
    } else {
        roster_engine::planning::compute_for(roster, &sessions, resend_invites, people, only).await
    };
    sessions.finish().await?;
    let mut plan = computed?.plan;
    // Its author, inside the digest: an approver named in the roster's policy must be
    // someone else.
    plan.created_by = roster_engine::actor::Actor::resolve(g.actor.as_deref()).name;
    plan.digest = plan.content_digest();
    match output {
        Output::Json | Output::Yaml => {
            print!("{}", crate::output::document(output, &summary(&plan))?)
        }
        Output::Jsonl => println!("{}", serde_json::to_string(&summary(&plan))?),
        Output::Csv => plan_csv(&plan)?,
        Output::Table | Output::Wide => {
            let text = plan.to_string();
            if crate::output::colour(std::io::IsTerminal::is_terminal(&std::io::stdout())) {
                print!("{}", crate::output::coloured_plan(&text));
            } else {
                print!("{text}");
            }
            println!("{}", summary_line(&plan));
        }
    }
    if let Some(path) = out {
        let state = open_state(g).await?;
        save(&plan, path, state.keys()?)?;
        eprintln!(
            "saved {} ({} step{}) to {}; run `roster apply {}`",
            plan.id,
            plan.steps.len(),
            if plan.steps.len() == 1 { "" } else { "s" },
            path.display(),
            path.display()
        );
    }
    Ok(if !plan.blocked.is_empty() {
        PlanOutcome::Blocked
    } else if plan.steps.is_empty() {
        PlanOutcome::NothingToDo
    } else {
        PlanOutcome::Changes
    })
}

/// One row per step, for a spreadsheet.
fn plan_csv(plan: &Plan) -> Result<()> {
    let mut t = Table::new(&[
        "index",
        "app",
        "stage",
        "destructive",
        "account",
        "action",
        "reason",
    ]);
    for s in &plan.steps {
        t.push(vec![
            json!(s.index),
            json!(s.app.name()),
            json!(s.stage.label()),
            json!(s.destructive),
            json!(s.action.account_key()),
            json!(s.action.describe()),
            json!(s.reason),
        ]);
    }
    t.print(Output::Csv)
}

pub async fn log_cmd(plan: Option<&str>, output: Output, g: &Globals) -> Result<()> {
    let state = open_state(g).await?;
    let entries = state.log(plan).await?;
    let mut t = Table::new(&[
        "id", "at", "actor", "os user", "plan", "app", "instance", "action", "target", "outcome",
        "detail", "hash",
    ]);
    for e in entries {
        t.push(vec![
            json!(e.id),
            json!(rfc3339(e.at)),
            json!(e.actor),
            json!(e.os_user),
            json!(e.plan_id),
            json!(e.app),
            json!(e.instance),
            json!(e.action),
            json!(e.target),
            json!(e.outcome),
            json!(e.detail),
            json!(if output.is_table() {
                short(&e.hash).to_string()
            } else {
                e.hash
            }),
        ]);
    }
    t.print(output)
}

/// `roster log verify`: walks the keyed chain, up to a saved head if one is given.
pub async fn log_verify(
    head: Option<&Path>,
    public_keys: Option<&Path>,
    g: &Globals,
) -> Result<()> {
    let (state, keys) = match public_keys {
        Some(file) => {
            let keys = roster_store::Keyring::from_public_file(file)?;
            let dir = roster_engine::connect::state_dir(g.state.as_deref());
            let state = roster_store::StateStore::open_at(&dir, g.database.as_deref()).await?;
            (state, keys)
        }
        None => {
            let state = open_state(g).await?;
            let keys = state.keys()?.clone();
            (state, keys)
        }
    };
    let head = match head {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the saved head {}", file.display()))?;
            Some(serde_json::from_str::<LogHead>(&text).with_context(|| {
                format!(
                    "{} is not a head saved by `roster log head -o json`",
                    file.display()
                )
            })?)
        }
        None => None,
    };
    match state.verify_log_with(&keys, head.as_ref()).await? {
        Ok(rows) => {
            println!(
                "the audit log in {} verifies: {rows} line{} chained from the first and signed ({}){}",
                state.path().display(),
                if rows == 1 { "" } else { "s" },
                keys.source(),
                head.map_or(String::new(), |h| format!(
                    "; every line up to the saved head (line {}, signed {}) is there, unchanged",
                    h.id,
                    rfc3339(h.signed_at)
                ))
            );
            Ok(())
        }
        Err(b) => bail!(
            "the audit log in {} is broken at line {}: {}. Lines before it verify; restore the state from a backup and investigate who changed it",
            state.path().display(),
            b.id,
            b.why
        ),
    }
}

/// `roster log head`: the newest line, signed now.
pub async fn log_head(output: Output, g: &Globals) -> Result<()> {
    let state = open_state(g).await?;
    let head = state.log_head(time::OffsetDateTime::now_utc()).await?;
    match output {
        Output::Json | Output::Jsonl => println!("{}", serde_json::to_string(&head)?),
        Output::Yaml => print!("{}", crate::output::document(output, &head)?),
        Output::Table | Output::Wide | Output::Csv => {
            println!("id         {}", head.id);
            println!("hash       {}", head.hash);
            println!("signed at  {}", rfc3339(head.signed_at));
            println!("key        {}", head.key_id);
            println!("signature  {}", head.signature);
        }
    }
    Ok(())
}

/// `roster keys public|rotate`.
pub async fn keys_cmd(action: crate::args::KeysAction, g: &Globals) -> Result<()> {
    let state = open_state(g).await?;
    match action {
        crate::args::KeysAction::Public => print!("{}", state.keys()?.public_file()),
        crate::args::KeysAction::Rotate => {
            let dir = std::path::absolute(roster_engine::connect::state_dir(g.state.as_deref()))?;
            let path = roster_store::Keyring::default_path(&dir);
            let old = state.keys()?.current().map(|k| k.id().to_string());
            let new = roster_store::Keyring::rotate(&path)?;
            let new_id = new
                .current()
                .map(|k| k.id().to_string())
                .unwrap_or_default();
            let actor = roster_engine::actor::Actor::resolve(g.actor.as_deref());
            let mut line = actor.log("roster", "rotate key", &new_id, "done");
            line.detail = Some(format!(
                "key {} retired (kept in {} to verify what it signed); {new_id} signs from now on",
                old.unwrap_or_default(),
                roster_keys_retired(&path)
            ));
            state
                .clone()
                .with_keys(new)
                .append_log(&line, time::OffsetDateTime::now_utc())
                .await?;
            println!(
                "signing key {} rotated: {new_id} signs from now on; processes started before this keep the old key until they restart. Give auditors the new public keys: `roster keys public`",
                path.display()
            );
        }
    }
    Ok(())
}

fn roster_keys_retired(path: &Path) -> String {
    let mut name = path.as_os_str().to_os_string();
    name.push(".retired");
    std::path::PathBuf::from(name).display().to_string()
}
