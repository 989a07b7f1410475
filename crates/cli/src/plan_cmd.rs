//! `roster plan`, `roster approve`, `roster apply` and `roster log`: desired state made so.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result, bail};
use roster_domain::desired::{App, Roster};
use roster_domain::live::{Live, differences};
use roster_domain::plan::{self, Action, Plan, PlanOptions, Step};
use roster_magento::AdminUsers;
use roster_marketo::{Invitation, UserUpdate};
use roster_store::{NewLogEntry, StateStore, StepStatus};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::args::{Confirm, Output};
use crate::connect::{MarketoSession, actor};
use crate::live_read::{self, Sessions};
use crate::magento_cmd::MagentoSession;
use crate::marketo_cmd::{Globals, record_invitation};
use crate::output::Table;

/// Loads a roster, reads the apps it needs, and computes the plan.
pub async fn compute(
    roster_path: &Path,
    sessions: &Sessions,
    resend_invites: bool,
) -> Result<Plan> {
    let mut roster = live_read::load_roster(roster_path)?;
    for app in App::ALL {
        if roster.mentions(app) && !sessions.configured(app) {
            bail!(
                "{} gives people {app} access, but no {app} connection is configured: set ROSTER_{}_URL and its credentials (or a [{app}] section in the config file)",
                roster.source,
                app.name().to_uppercase()
            );
        }
    }
    if let Some(me) = sessions.magento_username() {
        // Roster's own admin account is never planned against.
        roster.policies.magento.protected.insert(me);
    }
    let live = live_read::read(sessions, &roster.policies.magento.website).await?;
    resolve(&mut roster, &live)?;
    Ok(plan::plan(
        &roster,
        &live,
        PlanOptions {
            now: OffsetDateTime::now_utc(),
            resend_invites,
        },
    ))
}

fn resolve(roster: &mut Roster, live: &Live) -> Result<()> {
    roster.resolve(&live.names()).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        anyhow::anyhow!(
            "the roster does not match the apps ({} problem{}); nothing was changed:\n  {}",
            lines.len(),
            if lines.len() == 1 { "" } else { "s" },
            lines.join("\n  ")
        )
    })
}

/// The plan as `--output json` prints it: everything but the saved snapshot.
fn summary(plan: &Plan) -> Value {
    json!({
        "id": plan.id,
        "roster": plan.roster,
        "created_at": plan.created_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "fingerprint": plan.fingerprint,
        "steps": plan.steps,
        "notes": plan.notes,
        "blocked": plan.blocked,
    })
}

pub async fn plan_cmd(
    roster: &Path,
    out: Option<&Path>,
    output: Output,
    resend_invites: bool,
    g: &Globals<'_>,
) -> Result<()> {
    let mut sessions = Sessions::open(g).await?;
    let plan = compute(roster, &sessions, resend_invites).await;
    sessions.finish().await?;
    let plan = plan?;
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&summary(&plan))?),
        Output::Table | Output::Csv => print!("{plan}"),
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
    Ok(())
}

fn save(plan: &Plan, path: &Path) -> Result<()> {
    let body = serde_json::to_string_pretty(plan)?;
    std::fs::write(path, body).with_context(|| format!("cannot write {}", path.display()))
}

fn load(path: &Path) -> Result<Plan> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the plan {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a plan saved by `roster plan --out`; make one again",
            path.display()
        )
    })
}

async fn open_state(g: &Globals<'_>) -> Result<StateStore> {
    crate::connect::open_state(g.state).await
}

pub async fn approve(path: &Path, by: Option<&str>, g: &Globals<'_>) -> Result<()> {
    let plan = load(path)?;
    let state = open_state(g).await?;
    state
        .save_plan(&plan.id, plan.created_at, &serde_json::to_string(&plan)?)
        .await?;
    let who = actor(by);
    state
        .approve_plan(&plan.id, &who, OffsetDateTime::now_utc())
        .await?;
    let destructive: Vec<&Step> = plan.destructive().collect();
    println!(
        "{} approved by {who}: {} destructive step{}",
        plan.id,
        destructive.len(),
        if destructive.len() == 1 { "" } else { "s" }
    );
    for s in destructive {
        println!("  {}. {}", s.index, s.action.describe());
    }
    Ok(())
}

pub struct ApplyArgs<'a> {
    pub plan: Option<&'a Path>,
    pub auto: Option<&'a Path>,
    pub approve: bool,
    pub by: Option<&'a str>,
    pub resend_invites: bool,
}

pub async fn apply(a: ApplyArgs<'_>, g: &Globals<'_>) -> Result<()> {
    let mut sessions = Sessions::open(g).await?;
    let result = apply_with(&a, &sessions, g).await;
    sessions.finish().await?;
    result
}

pub async fn apply_with(a: &ApplyArgs<'_>, sessions: &Sessions, g: &Globals<'_>) -> Result<()> {
    let state = open_state(g).await?;
    let (plan, fresh) = match (a.plan, a.auto) {
        (Some(path), None) => (load(path)?, false),
        (None, Some(roster)) => {
            let plan = compute(roster, sessions, a.resend_invites).await?;
            print!("{plan}");
            (plan, true)
        }
        _ => bail!("give a saved plan (`roster apply plan.json`) or a roster with --auto"),
    };
    if !plan.blocked.is_empty() {
        bail!(
            "{} is blocked; nothing was changed:\n  {}",
            plan.id,
            plan.blocked.join("\n  ")
        );
    }
    let destructive: Vec<&Step> = plan.destructive().collect();
    if !destructive.is_empty() && !a.approve && state.approval(&plan.id).await?.is_none() {
        let list: Vec<String> = destructive
            .iter()
            .map(|s| format!("{}. {}", s.index, s.action.describe()))
            .collect();
        bail!(
            "{} has {} destructive step{} and no approval; nothing was changed. Review them, then pass --approve or run `roster approve PLAN`:\n  {}",
            plan.id,
            list.len(),
            if list.len() == 1 { "" } else { "s" },
            list.join("\n  ")
        );
    }
    state
        .save_plan(&plan.id, plan.created_at, &serde_json::to_string(&plan)?)
        .await?;
    let journal = state.journal(&plan.id).await?;
    let done: BTreeSet<usize> = journal
        .iter()
        .filter(|e| e.status == StepStatus::Done)
        .map(|e| e.step)
        .collect();
    if !fresh {
        check_drift(&plan, &journal, &done, sessions).await?;
    }
    if !journal.is_empty() {
        eprintln!(
            "resuming {}: {} of {} steps already done",
            plan.id,
            done.len(),
            plan.steps.len()
        );
    }
    let who = actor(a.by);
    let crash = crash_hook();
    let mut failed_accounts: BTreeSet<String> = BTreeSet::new();
    let (mut ran, mut failed, mut skipped) = (0, 0, 0);
    let exec = Executor {
        sessions,
        who: &who,
        plan_id: &plan.id,
        directory: tokio::sync::OnceCell::new(),
    };
    for step in &plan.steps {
        if done.contains(&step.index) {
            continue;
        }
        let account = step.action.account_key();
        let label = format!(
            "[{}/{}] {}",
            step.index,
            plan.steps.len(),
            step.action.describe()
        );
        if failed_accounts.contains(&account) {
            println!("{label}: skipped, an earlier step for this account failed");
            skipped += 1;
            continue;
        }
        let now = OffsetDateTime::now_utc();
        state
            .step_started(&plan.id, step.index, &step.key, now)
            .await?;
        let outcome = exec.run(step).await;
        if crash == Some((step.index, false)) {
            eprintln!(
                "ROSTER_TEST_CRASH: stopping after step {} ran, before it is recorded",
                step.index
            );
            std::process::abort();
        }
        let (status, detail) = match &outcome {
            Ok(note) => (StepStatus::Done, note.clone()),
            Err(e) => (StepStatus::Failed, Some(format!("{e:#}"))),
        };
        let log = NewLogEntry {
            actor: who.clone(),
            plan_id: Some(plan.id.clone()),
            step_key: Some(step.key.clone()),
            app: step.app.name().into(),
            action: step.stage.label().into(),
            target: account.clone(),
            outcome: if outcome.is_ok() { "done" } else { "failed" }.into(),
            detail: Some(match &detail {
                Some(d) => format!("{}: {d}", step.action.describe()),
                None => step.action.describe(),
            }),
        };
        state
            .finish_step(
                &plan.id,
                step.index,
                status,
                detail.as_deref(),
                &log,
                OffsetDateTime::now_utc(),
            )
            .await?;
        match outcome {
            Ok(note) => {
                ran += 1;
                match note {
                    Some(n) => println!("{label}: done ({n})"),
                    None => println!("{label}: done"),
                }
            }
            Err(e) => {
                failed += 1;
                failed_accounts.insert(account);
                println!("{label}: FAILED: {e:#}");
            }
        }
        if crash == Some((step.index, true)) {
            eprintln!("ROSTER_TEST_CRASH: stopping after step {}", step.index);
            std::process::abort();
        }
    }
    println!(
        "{}: {ran} step{} done now, {} done before, {failed} failed, {skipped} skipped",
        plan.id,
        if ran == 1 { "" } else { "s" },
        done.len()
    );
    if failed > 0 {
        bail!(
            "{failed} step{} failed (see above); fix the cause and run the same apply again: done steps are not repeated",
            if failed == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

/// `ROSTER_TEST_CRASH=N` aborts the process right after step N is recorded;
/// `N:unrecorded` aborts after step N ran but before its outcome is recorded.
fn crash_hook() -> Option<(usize, bool)> {
    let raw = std::env::var("ROSTER_TEST_CRASH").ok()?;
    match raw.split_once(':') {
        Some((n, "unrecorded")) => Some((n.parse().ok()?, false)),
        _ => Some((raw.parse().ok()?, true)),
    }
}

/// Refuses a plan whose apps changed since it was made. When resuming, the expected state
/// is the saved one with the done steps applied; accounts of steps that started but did not
/// finish may be either way.
async fn check_drift(
    plan: &Plan,
    journal: &[roster_store::JournalEntry],
    done: &BTreeSet<usize>,
    sessions: &Sessions,
) -> Result<()> {
    let website = plan
        .live
        .magento
        .as_ref()
        .map_or("", |m| m.website.as_str());
    let live = live_read::read(sessions, website).await?;
    let done_actions = plan
        .steps
        .iter()
        .filter(|s| done.contains(&s.index))
        .map(|s| &s.action);
    let expected = plan::simulate(&plan.live, done_actions, plan.created_at);
    let unsettled: BTreeSet<String> = journal
        .iter()
        .filter(|e| e.status != StepStatus::Done)
        .filter_map(|e| plan.steps.iter().find(|s| s.index == e.step))
        .map(|s| s.action.account_key())
        .collect();
    let mut diffs = differences(&expected, &live, &unsettled);
    // Apps the plan did not read are not compared.
    if plan.live.marketo.is_none() {
        diffs.retain(|d| !d.starts_with("marketo"));
    }
    if plan.live.magento.is_none() {
        diffs.retain(|d| !d.starts_with("magento"));
    }
    if !diffs.is_empty() {
        let shown: Vec<&String> = diffs.iter().take(10).collect();
        bail!(
            "the apps changed since {} was made ({} account{} differ); nothing was changed. Run `roster plan` again:\n  {}{}",
            plan.id,
            diffs.len(),
            if diffs.len() == 1 { "" } else { "s" },
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n  "),
            if diffs.len() > 10 { "\n  ..." } else { "" }
        );
    }
    Ok(())
}

/// Runs steps. Every action counts "already so" as success, which is what makes a rerun
/// after a crash safe.
struct Executor<'a> {
    sessions: &'a Sessions,
    who: &'a str,
    plan_id: &'a str,
    /// Marketo's roles and workspaces, read once for the whole apply, on first need.
    directory: tokio::sync::OnceCell<roster_marketo::Directory>,
}

impl Executor<'_> {
    fn marketo(&self) -> Result<&MarketoSession> {
        self.sessions
            .marketo
            .as_ref()
            .context("the plan has Marketo steps but no Marketo connection is configured")
    }

    fn magento(&self) -> Result<&MagentoSession> {
        self.sessions
            .magento
            .as_ref()
            .context("the plan has Magento steps but no Magento connection is configured")
    }

    fn confirm(&self, step: &Step) -> Confirm {
        Confirm {
            yes: true,
            reason: Some(format!("{}: {}", self.plan_id, step.reason)),
            by: Some(self.who.to_string()),
        }
    }

    async fn roles(
        &self,
        s: &MarketoSession,
        roles: &[roster_domain::desired::RoleRef],
    ) -> Result<Vec<roster_domain::access::RoleAssignment>> {
        let dir = self
            .directory
            .get_or_try_init(|| s.client.directory())
            .await?;
        let specs: Vec<String> = roles.iter().map(ToString::to_string).collect();
        crate::marketo_cmd::resolve(dir, &specs)
    }

    /// Runs one step; `Ok(Some(note))` when it turned out to be done already.
    async fn run(&self, step: &Step) -> Result<Option<String>> {
        match &step.action {
            Action::MarketoInvite {
                email,
                first_name,
                last_name,
                roles,
                expires_at,
            }
            | Action::MarketoResendInvite {
                email,
                first_name,
                last_name,
                roles,
                expires_at,
                ..
            } => {
                let s = self.marketo()?;
                if let Action::MarketoResendInvite { userid, .. } = &step.action {
                    match s.client.delete_invitation(userid).await {
                        Ok(_) => {}
                        Err(e) if e.is_not_found() => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                let invitation = Invitation {
                    email: email.clone(),
                    first_name: first_name.clone(),
                    last_name: last_name.clone(),
                    userid: None,
                    roles: self.roles(s, roles).await?,
                    api_only: false,
                    expires_at: *expires_at,
                    reason: Some(step.reason.clone()),
                };
                match s.client.invite(&invitation).await {
                    Ok(_) => {}
                    Err(e) if e.api().is_some_and(|f| f.code_is("709")) => {
                        // Already invited or already a user (a rerun after a crash, or
                        // someone else): the next plan settles any difference.
                        if s.client.find_user(email).await?.is_some()
                            || s.client.invitation(email).await?.is_some()
                        {
                            record_invitation(s, &invitation, self.who).await?;
                            return Ok(Some("already invited".into()));
                        }
                        return Err(e.into());
                    }
                    Err(e) => return Err(e.into()),
                }
                record_invitation(s, &invitation, self.who).await?;
                Ok(None)
            }
            Action::MarketoUpdate {
                userid,
                first_name,
                last_name,
            } => {
                let update = UserUpdate {
                    first_name: Some(first_name.clone()),
                    last_name: Some(last_name.clone()),
                    ..UserUpdate::default()
                };
                self.marketo()?.client.update(userid, &update).await?;
                Ok(None)
            }
            Action::MarketoSetExpiry { userid, expires_at } => {
                let update = UserUpdate {
                    expires_at: Some(*expires_at),
                    ..UserUpdate::default()
                };
                self.marketo()?.client.update(userid, &update).await?;
                Ok(None)
            }
            Action::MarketoGrant { userid, roles } => {
                let s = self.marketo()?;
                let roles = self.roles(s, roles).await?;
                s.client.add_roles(userid, &roles).await?;
                Ok(None)
            }
            Action::MarketoRevoke { userid, roles } => {
                let s = self.marketo()?;
                let roles = self.roles(s, roles).await?;
                s.client.remove_roles(userid, &roles).await?;
                Ok(None)
            }
            Action::MarketoDeleteInvite { userid } | Action::MarketoDelete { userid } => {
                let s = self.marketo()?;
                crate::lifecycle::offboard(s, userid, false, true, &self.confirm(step)).await?;
                Ok(None)
            }
            Action::MagentoCreateCustomer {
                email,
                first_name,
                last_name,
                group_id,
                website_id,
                ..
            } => {
                let s = self.magento()?;
                let body = json!({"email": email, "firstname": first_name, "lastname": last_name, "website_id": website_id, "group_id": group_id});
                match s.client.create_customer(body, None).await {
                    Ok(_) => Ok(None),
                    Err(e) => {
                        let exists = s
                            .client
                            .customers_by_email(email)
                            .await?
                            .iter()
                            .any(|c| c["website_id"].as_i64() == Some(*website_id));
                        if exists {
                            Ok(Some("the customer already exists".into()))
                        } else {
                            Err(e.into())
                        }
                    }
                }
            }
            Action::MagentoUpdateCustomer {
                id,
                first_name,
                last_name,
                group_id,
                ..
            } => {
                let mut changes = serde_json::Map::new();
                changes.insert("firstname".into(), json!(first_name));
                changes.insert("lastname".into(), json!(last_name));
                changes.insert("group_id".into(), json!(group_id));
                self.magento()?
                    .client
                    .update_customer(*id, &changes)
                    .await?;
                Ok(None)
            }
            Action::MagentoDeleteCustomer { id, email } => {
                let s = self.magento()?;
                let customer = match s.client.customer(*id).await {
                    Ok(c) => c,
                    Err(e) if e.is_not_found() => return Ok(Some("already deleted".into())),
                    Err(e) => return Err(e.into()),
                };
                let t = crate::magento_cmd::tombstone(
                    s,
                    id.to_string(),
                    email,
                    &customer,
                    Vec::new(),
                    self.who,
                    &self.confirm(step),
                )
                .await?;
                let result = s.client.delete_customer(*id).await.map_err(Into::into);
                crate::magento_cmd::finish(s, t, result, &format!("customer {email}")).await?;
                Ok(None)
            }
            Action::MagentoCreateAdmin {
                username,
                email,
                first_name,
                last_name,
                role_id,
                ..
            } => {
                let s = self.magento()?;
                if let AdminUsers::Available(users) = s.client.admin_users().await?
                    && users.iter().any(|u| {
                        u["username"]
                            .as_str()
                            .is_some_and(|n| n.eq_ignore_ascii_case(username))
                    })
                {
                    return Ok(Some("the admin user already exists".into()));
                }
                // A first password nobody knows: the person sets their own through
                // "Forgot your password?" on the admin sign-in page. It is never shown.
                let password = format!("Rr7{}", uuid::Uuid::new_v4().simple());
                s.client
                    .create_admin_user(json!({"username": username, "firstname": first_name, "lastname": last_name, "email": email, "password": password, "role_id": role_id, "is_active": true}))
                    .await?;
                Ok(Some(
                    "they set a password with \"Forgot your password?\" on the admin sign-in page"
                        .into(),
                ))
            }
            Action::MagentoUpdateAdmin {
                id,
                first_name,
                last_name,
                role_id,
                is_active,
                ..
            } => {
                let mut fields =
                    json!({"firstname": first_name, "lastname": last_name, "is_active": is_active});
                if let Some(role) = role_id {
                    fields["role_id"] = json!(role);
                }
                self.magento()?
                    .client
                    .update_admin_user(*id, fields)
                    .await?;
                Ok(None)
            }
            Action::MagentoDeleteAdmin { id, username } => {
                let s = self.magento()?;
                let AdminUsers::Available(users) = s.client.admin_users().await? else {
                    bail!("{}", roster_magento::MagentoError::NoAdminApi);
                };
                let Some(user) = users.iter().find(|u| u["id"].as_i64() == Some(*id)) else {
                    return Ok(Some("already deleted".into()));
                };
                let email = user["email"].as_str().unwrap_or_default().to_string();
                let t = crate::magento_cmd::tombstone(
                    s,
                    id.to_string(),
                    &email,
                    user,
                    Vec::new(),
                    self.who,
                    &self.confirm(step),
                )
                .await?;
                let result = s.client.delete_admin_user(*id).await.map_err(Into::into);
                crate::magento_cmd::finish(s, t, result, &format!("admin user {username}")).await?;
                Ok(None)
            }
        }
    }
}

pub async fn log_cmd(plan: Option<&str>, output: Output, g: &Globals<'_>) -> Result<()> {
    let state = open_state(g).await?;
    let entries = state.log(plan).await?;
    let mut t = Table::new(&[
        "id", "at", "actor", "plan", "app", "action", "target", "outcome", "detail",
    ]);
    for e in entries {
        t.push(vec![
            json!(e.id),
            json!(
                e.at.format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            ),
            json!(e.actor),
            json!(e.plan_id),
            json!(e.app),
            json!(e.action),
            json!(e.target),
            json!(e.outcome),
            json!(e.detail),
        ]);
    }
    t.print(output)
}
