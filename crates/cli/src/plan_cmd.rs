//! `roster plan` and `roster log`: the front ends of the engine's planning and audit log.

use std::path::Path;

use anyhow::{Result, bail};
use roster_domain::plan::Plan;
use roster_engine::Globals;
use roster_engine::live_read::Sessions;
use roster_engine::planning::{compute, save, short, summary, summary_line};
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
    g: &Globals,
) -> Result<PlanOutcome> {
    let mut sessions = Sessions::open(g).await?;
    let computed = compute(roster, &sessions, resend_invites, None).await;
    sessions.finish().await?;
    let plan = computed?.plan;
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&summary(&plan))?),
        Output::Jsonl => println!("{}", serde_json::to_string(&summary(&plan))?),
        Output::Csv => plan_csv(&plan)?,
        Output::Table => {
            print!("{}", plan);
            println!("{}", summary_line(&plan));
        }
    }
    if let Some(path) = out {
        save(&plan, path)?;
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
            json!(if output == Output::Table {
                short(&e.hash).to_string()
            } else {
                e.hash
            }),
        ]);
    }
    t.print(output)
}

/// `roster log verify`: walks the hash chain.
pub async fn log_verify(g: &Globals) -> Result<()> {
    let state = open_state(g).await?;
    match state.verify_log().await? {
        Ok(rows) => {
            println!(
                "the audit log in {} verifies: {rows} line{} chained from the first",
                state.path().display(),
                if rows == 1 { "" } else { "s" }
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
