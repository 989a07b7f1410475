//! `roster plan`, `roster approve`, `roster apply` and `roster log`: desired state made so.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result, bail};
use roster_domain::desired::{App, Roster};
use roster_domain::live::{Live, differences};
use roster_domain::plan::{self, Action, Plan, PlanOptions, Step};
use roster_domain::safety::{self, OwnAccounts};
use roster_keys::{Keyring, Purpose};
use roster_store::{NewLogEntry, StateStore, StepStatus};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::Globals;
use crate::actor::Actor;
use crate::apps::StepContext;
use crate::events::{Event, Events, StepOutcome};
use crate::lifecycle::close_finished_deletions;
use crate::live_read::{self, Sessions};

/// A plan with the roster and the live state it was computed from.
pub struct Computed {
    pub plan: Plan,
    pub roster: Roster,
    pub live: Live,
}

/// Loads a roster (by absolute path, so a saved plan finds it again from any directory),
/// reads the apps it needs, and computes the plan.
///
/// `only` restricts the plan to one service instance (`(App::Marketo, "emea")`): the
/// roster's access to the other app is dropped, and access named for this instance
/// (`marketo.emea: [...]`) replaces the plain access. Without it, named access is not used.
pub async fn compute(
    roster_path: &Path,
    sessions: &Sessions,
    resend_invites: bool,
    only: Option<(App, &str)>,
) -> Result<Computed> {
    let roster_path = std::path::absolute(roster_path)
        .with_context(|| format!("cannot resolve {}", roster_path.display()))?;
    let roster = live_read::load_roster(&roster_path)?;
    compute_from(roster, sessions, resend_invites, only).await
}

/// The instance a command was pointed at (`--instance`), as `compute`'s `only`.
pub fn only_of(g: &Globals) -> Option<(App, &str)> {
    g.instance.as_ref().map(|c| (c.app, c.name.as_str()))
}

/// [`compute`] for `people` only: a targeted plan (see `roster_domain::plan::Targeted`).
pub async fn compute_for(
    roster_path: &Path,
    sessions: &Sessions,
    resend_invites: bool,
    people: &[String],
    only: Option<(App, &str)>,
) -> Result<Computed> {
    let roster_path = std::path::absolute(roster_path)
        .with_context(|| format!("cannot resolve {}", roster_path.display()))?;
    let mut roster = live_read::load_roster(&roster_path)?;
    roster.target(people.iter().cloned());
    compute_from(roster, sessions, resend_invites, only).await
}

/// [`compute`] from a roster already read (by absolute path, as `compute` reads it).
pub async fn compute_from(
    mut roster: Roster,
    sessions: &Sessions,
    resend_invites: bool,
    only: Option<(App, &str)>,
) -> Result<Computed> {
    scope_roster(&mut roster, sessions, only).await?;
    let live = live_read::read(sessions, &roster).await?;
    resolve(&mut roster, &live)?;
    let plan = plan::plan(
        &roster,
        &live,
        PlanOptions {
            now: OffsetDateTime::now_utc(),
            resend_invites,
        },
    );
    Ok(Computed { plan, roster, live })
}

/// The exceptions in force on the sessions' instances (approved restores), which the
/// planner honours before the roster's word: read from the state where the plan is made
/// and again where it is applied, never from a plan file.
async fn with_exceptions(roster: &mut Roster, sessions: &Sessions) -> Result<()> {
    let now = OffsetDateTime::now_utc();
    for c in sessions.apps() {
        roster
            .exceptions
            .extend(c.state().exceptions(c.app(), c.instance(), now).await?);
    }
    Ok(())
}

/// The roster as a plan for `only` (or for the plain access) reads it: named access picked
/// or dropped, every app it mentions configured, Roster's own Magento admin protected, and
/// the instances' exceptions in force.
async fn scope_roster(
    roster: &mut Roster,
    sessions: &Sessions,
    only: Option<(App, &str)>,
) -> Result<()> {
    match only {
        Some((app, instance)) => roster.for_instance(app, Some(instance)),
        None => {
            let named = roster.named_instances();
            if let Some(((app, name), line)) = named.iter().next()
                && let Some(events) = sessions.events()
            {
                events.emit(Event::Note(format!(
                    "{}:{line}: access for named instances ({app}.{name}{}) is used by `roster serve`, whose configuration names them; this command uses the plain marketo and magento access",
                    roster.source,
                    if named.len() > 1 { ", ..." } else { "" }
                )));
            }
            roster.drop_named();
        }
    }
    for app in App::ALL {
        if roster.mentions(app) && !sessions.configured(app) {
            if let (App::Adobe, Some(why)) = (app, &sessions.adobe_error) {
                bail!(
                    "{} gives people adobe access, but the Adobe organization configured cannot be used: {why}",
                    roster.source
                );
            }
            return Err(crate::problem::Problem::not_configured(format!(
                "{} gives people {app} access, but no {app} connection is configured: set ROSTER_{}_URL and its credentials (or a [{app}] section in the config file)",
                roster.source,
                app.name().to_uppercase()
            )));
        }
    }
    protect_own_admin(roster, sessions);
    with_exceptions(roster, sessions).await
}

/// Roster's own Magento admin account is never planned against.
fn protect_own_admin(roster: &mut Roster, sessions: &Sessions) {
    if let Some(me) = sessions.magento_username() {
        roster.policies.magento.protected.insert(me);
    }
}

fn resolve(roster: &mut Roster, live: &Live) -> Result<()> {
    roster.resolve(&live.names()).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        crate::problem::Problem::invalid(format!(
            "the roster does not match the apps ({} problem{}); nothing was changed:\n  {}",
            lines.len(),
            if lines.len() == 1 { "" } else { "s" },
            lines.join("\n  ")
        ))
    })
}

/// The plan as `--output json` prints it: everything but the saved snapshot.
pub fn summary(plan: &Plan) -> Value {
    json!({
        "id": plan.id,
        "roster": plan.roster,
        "created_at": rfc3339(plan.created_at),
        "fingerprint": plan.fingerprint,
        "digest": plan.digest,
        "summary": counts(plan),
        "steps": plan.steps,
        "notes": plan.notes,
        "blocked": plan.blocked,
        "targeted": plan.targeted,
    })
}

fn rfc3339(at: OffsetDateTime) -> String {
    crate::text::rfc3339(at)
}

/// How many steps create, change and remove, and how many are destructive.
pub fn counts(plan: &Plan) -> Value {
    let (mut create, mut change, mut remove) = (0, 0, 0);
    for s in &plan.steps {
        match s.stage {
            plan::Stage::Invite => create += 1,
            plan::Stage::DeleteInvite | plan::Stage::Delete => remove += 1,
            _ => change += 1,
        }
    }
    json!({
        "create": create,
        "change": change,
        "remove": remove,
        "destructive": plan.destructive().count(),
    })
}

/// "N to create, N to change, N to remove (N destructive)".
pub fn summary_line(plan: &Plan) -> String {
    let c = counts(plan);
    format!(
        "{} to create, {} to change, {} to remove ({} destructive){}",
        c["create"],
        c["change"],
        c["remove"],
        c["destructive"],
        match &plan.targeted {
            Some(t) => format!("; {}", t.describe()),
            None => String::new(),
        }
    )
}

/// Signs the plan's digest with the state's key: see [`verify_signature`].
pub fn sign(plan: &mut Plan, keys: &Keyring) -> Result<()> {
    plan.signature = Some(keys.sign(Purpose::Plan, plan.digest.as_bytes())?);
    Ok(())
}

/// Checks that the plan's digest is its content's and is signed by one of `keys`: only a
/// process holding the signing key can have made it, whoever edited the file since.
pub fn verify_signature(plan: &Plan, keys: &Keyring, what: &str) -> Result<()> {
    let actual = plan.content_digest();
    if actual != plan.digest {
        bail!(
            "{what} does not match its digest: it was changed after `roster plan` saved it (recorded {}, content {}); nothing was changed. Make a new plan with `roster plan ROSTER --out FILE`",
            short(&plan.digest),
            short(&actual)
        );
    }
    keys.verify(
        Purpose::Plan,
        plan.digest.as_bytes(),
        plan.signature.as_deref(),
        what,
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "{e}; nothing was changed. Only `roster plan --out` with this state's signing key ({}) makes plans `apply` runs: make a new plan",
            keys.source()
        )
    })?;
    Ok(())
}

/// Saves the plan (0600) with the state's signature.
pub fn save(plan: &Plan, path: &Path, keys: &Keyring) -> Result<()> {
    let mut plan = plan.clone();
    sign(&mut plan, keys)?;
    let body = serde_json::to_string_pretty(&plan)?;
    crate::private::write(path, body)
}

/// Reads a saved plan and checks it against its own digest and the state's signature: a
/// plan edited by hand (a step added, a `destructive` flag cleared, `blocked` emptied), even
/// with its digest recomputed, is refused here.
pub fn load(path: &Path, keys: &Keyring) -> Result<Plan> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the plan {}", path.display()))?;
    let plan: Plan = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a plan saved by `roster plan --out`; make one again",
            path.display()
        )
    })?;
    if plan.digest.is_empty() {
        bail!(
            "{} has no content digest (an older Roster saved it); nothing was changed. Make a new plan with `roster plan ROSTER --out FILE`",
            path.display()
        );
    }
    verify_signature(&plan, keys, &path.display().to_string())?;
    Ok(plan)
}

pub fn short(digest: &str) -> &str {
    &digest[..digest.len().min(16)]
}

async fn open_state(g: &Globals) -> Result<StateStore> {
    crate::connect::open_state(g.state.as_deref(), g.database.as_deref()).await
}

/// Records a refusal in the audit log, then returns it as the command's error.
pub async fn refuse(
    state: &StateStore,
    actor: &Actor,
    plan_id: Option<&str>,
    target: &str,
    why: anyhow::Error,
) -> anyhow::Error {
    let mut entry = actor.log("roster", "apply", target, "refused");
    entry.plan_id = plan_id.map(str::to_string);
    // One line per log row: the message's own lines are joined.
    let text = format!("{why:#}");
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    entry.detail = Some(lines.join("; "));
    if let Err(e) = state.append_log(&entry, OffsetDateTime::now_utc()).await {
        return why.context(format!("(and the refusal could not be logged: {e})"));
    }
    why
}

/// Records `actor`'s approval of this plan's content, with its audit-log line.
pub async fn record_approval(
    state: &StateStore,
    actor: &Actor,
    plan: &Plan,
    detail: String,
) -> Result<()> {
    let mut entry = actor.log("roster", "approve", &plan.id, "done");
    entry.plan_id = Some(plan.id.clone());
    entry.detail = Some(detail);
    let approval = roster_store::Approval {
        by: actor.name.clone(),
        os_user: actor.os_user.clone(),
        at: OffsetDateTime::now_utc(),
    };
    state
        .approve_plan(&plan.id, &plan.digest, &approval, &entry)
        .await?;
    Ok(())
}

/// How `roster approve` approves: by name (`--by`), or with an approver's SSH signature.
pub enum Approve<'a> {
    ByName,
    Signed(crate::approvers::Signer<'a>),
    /// Print the digest an approver signs with `ssh-keygen -Y sign`; record nothing.
    PrintDigest,
}

pub async fn approve(path: &Path, by: Option<&str>, how: Approve<'_>, g: &Globals) -> Result<()> {
    let state = open_state(g).await?;
    let mut actor = Actor::resolve(by.or(g.actor.as_deref()));
    let plan = match load(path, state.keys()?) {
        Ok(plan) => plan,
        Err(e) => {
            let target = path.display().to_string();
            return Err(refuse(&state, &actor, None, &target, e).await);
        }
    };
    if let Approve::PrintDigest = how {
        print!(
            "{}",
            String::from_utf8_lossy(crate::approvers::message(&plan))
        );
        return Ok(());
    }
    state
        .save_plan(&plan.id, plan.created_at, &serde_json::to_string(&plan)?)
        .await?;
    if let Approve::Signed(signer) = how {
        // The approvers are the roster's, as the plan was made from it: re-read and
        // checked against the plan's digest of it, as apply does.
        let roster = live_read::load_roster(Path::new(&plan.roster))?;
        if roster.digest != plan.roster_digest {
            bail!(
                "{} changed since {} was made from it; nothing was recorded. Run `roster plan` again",
                crate::text::sanitize(&plan.roster),
                plan.id
            );
        }
        match crate::approvers::sign_plan(&state, &actor, &plan, &roster, signer).await {
            Ok(name) => actor.name = name,
            Err(e) => {
                let target = plan.id.clone();
                return Err(refuse(&state, &actor, Some(&plan.id), &target, e).await);
            }
        }
    }
    let destructive: Vec<&Step> = plan.destructive().collect();
    let detail = format!(
        "approved content {} ({} steps, {} destructive as planned)",
        short(&plan.digest),
        plan.steps.len(),
        destructive.len()
    );
    record_approval(&state, &actor, &plan, detail).await?;
    g.emit(Event::Said(format!(
        "{} approved by {}: {} destructive step{} (this content only: any edit to the plan needs a new approval)",
        plan.id,
        actor.name,
        destructive.len(),
        if destructive.len() == 1 { "" } else { "s" }
    )));
    for s in destructive {
        g.emit(Event::Said(format!(
            "  {}. {}",
            s.index,
            crate::text::sanitize(&s.action.describe())
        )));
    }
    Ok(())
}

/// Which plan an apply runs.
pub enum ToApply<'a> {
    /// A plan file saved by `roster plan --out`, checked against its digest.
    File(&'a Path),
    /// Computed now from this roster (`apply --auto`).
    Auto(&'a Path),
    /// Computed by the caller just now, from the live state it read through the same sessions.
    Fresh(Box<Computed>),
}

pub struct ApplyArgs<'a> {
    pub plan: ToApply<'a>,
    pub approve: bool,
    pub by: Option<&'a str>,
    pub resend_invites: bool,
    /// Set when the process is shutting down: the apply stops before its next step.
    pub stop: Option<&'a std::sync::atomic::AtomicBool>,
}

pub async fn apply(a: ApplyArgs<'_>, g: &Globals) -> Result<()> {
    let mut sessions = Sessions::open(g).await?;
    let result = apply_with(a, &sessions, g).await;
    sessions.finish().await?;
    result
}

/// Roster's own accounts, as the apps know them now.
async fn own_accounts(sessions: &Sessions) -> Result<OwnAccounts> {
    let marketo_api_user = match &sessions.marketo {
        Some(s) => s.client.api_user().await?,
        None => None,
    };
    Ok(OwnAccounts {
        marketo_api_user,
        magento_admin: sessions.magento_username(),
    })
}

/// A saved plan, made ready to run again: its roster read again (it must be the one the
/// plan was computed from: its policies decide what is safe) and the apps read now.
async fn reread(
    plan: Plan,
    sessions: &Sessions,
    state: &StateStore,
    actor: &Actor,
    only: Option<(App, &str)>,
) -> Result<(Plan, Roster, Live)> {
    let mut roster = live_read::load_roster(Path::new(&plan.roster)).with_context(|| {
        format!(
            "{} was made from {}, which must still be there to apply it",
            plan.id, plan.roster
        )
    })?;
    if roster.digest != plan.roster_digest {
        let why = anyhow::anyhow!(
            "the roster {} changed since {} was made (its policies decide what is safe); nothing was changed. Run `roster plan` again",
            plan.roster,
            plan.id
        );
        return Err(refuse(state, actor, Some(&plan.id), &plan.id, why).await);
    }
    scope_roster(&mut roster, sessions, only).await?;
    // A targeted plan is checked for its people again (its signed content names them).
    if let Some(t) = &plan.targeted {
        roster.target(t.people.iter().cloned());
    }
    let live = live_read::read(sessions, &roster).await?;
    if let Err(e) = resolve(&mut roster, &live) {
        return Err(refuse(state, actor, Some(&plan.id), &plan.id, e).await);
    }
    Ok((plan, roster, live))
}

/// The saved plan's pending steps that the roster does not call for now: each step must be
/// one the plan computed afresh (from the roster at the plan's path and the apps as just
/// read) contains, whatever the file says. A step added to a file, with its digest
/// recomputed or not, is refused here by name.
fn not_called_for<'a>(pending: &[&'a Step], roster: &Roster, live: &Live) -> Vec<&'a Step> {
    let fresh = plan::plan(
        roster,
        live,
        PlanOptions {
            now: OffsetDateTime::now_utc(),
            // Re-sending an invitation is asked for at plan time; allowing it here lets a
            // plan that asked for it through, and adds nothing to one that did not.
            resend_invites: true,
        },
    );
    pending
        .iter()
        .copied()
        .filter(|s| !fresh.steps.iter().any(|f| f.action == s.action))
        .collect()
}

/// `apply --auto` refused for want of an approval: the plan it made is saved (signed,
/// 0600) in the state's `plans` folder, so the approval it asks for has a file to name.
fn kept_for_review(
    automatic: bool,
    plan: &Plan,
    g: &Globals,
    state: &StateStore,
) -> Result<String> {
    if !automatic {
        return Ok(String::new());
    }
    let dir = crate::connect::state_dir(g.state.as_deref()).join("plans");
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot make {} to keep the plan", dir.display()))?;
    let path = dir.join(format!("{}.json", plan.id));
    save(plan, &path, state.keys()?)?;
    let shown = path.display();
    Ok(format!(
        "\nThe plan is saved as {shown}: review it (`roster plan` shows the same), then `roster approve {shown}` (another approver, where the roster asks for one) and `roster apply {shown}`, or `roster apply {shown} --approve`"
    ))
}

pub async fn apply_with(a: ApplyArgs<'_>, sessions: &Sessions, g: &Globals) -> Result<()> {
    let state = open_state(g).await?;
    let actor = Actor::resolve(a.by.or(g.actor.as_deref()));
    let from_caller = matches!(a.plan, ToApply::Fresh(_));
    let automatic = matches!(a.plan, ToApply::Auto(_));
    let (plan, roster, live, fresh) = match a.plan {
        ToApply::File(path) => {
            let plan = match load(path, state.keys()?) {
                Ok(plan) => plan,
                Err(e) => {
                    let target = path.display().to_string();
                    return Err(refuse(&state, &actor, None, &target, e).await);
                }
            };
            let (plan, roster, live) = reread(plan, sessions, &state, &actor, only_of(g)).await?;
            (plan, roster, live, false)
        }
        ToApply::Auto(roster) => {
            let c = compute(roster, sessions, a.resend_invites, only_of(g)).await?;
            g.emit(Event::Planned(Box::new(c.plan.clone())));
            (c.plan, c.roster, c.live, true)
        }
        ToApply::Fresh(c) => {
            let c = *c;
            (c.plan, c.roster, c.live, true)
        }
    };
    // Steps a crash interrupted or whose every attempt failed, in any plan: find out from
    // the apps whether they ran, and log the outcome, before anything else is decided.
    reconcile_unfinished(&g.events, &state, &live, &actor, sessions).await?;
    state
        .save_plan(&plan.id, plan.created_at, &serde_json::to_string(&plan)?)
        .await?;
    state.set_plan_scope(&plan.id, &scope(sessions)).await?;
    let journal = state.journal(&plan.id).await?;
    let done: BTreeSet<usize> = journal
        .iter()
        .filter(|e| e.status == StepStatus::Done)
        .map(|e| e.step)
        .collect();
    g.emit(Event::Said(format!(
        "{}: following the roster {} (digest {})",
        plan.id,
        crate::text::sanitize(&plan.roster),
        short(&roster.digest)
    )));
    if !fresh && let Err(e) = check_drift(&plan, &journal, &done, &live) {
        return Err(refuse(&state, &actor, Some(&plan.id), &plan.id, e).await);
    }
    if !fresh {
        let pending: Vec<&Step> = plan
            .steps
            .iter()
            .filter(|s| !done.contains(&s.index))
            .collect();
        let extra = not_called_for(&pending, &roster, &live);
        if !extra.is_empty() {
            let lines: Vec<String> = extra
                .iter()
                .map(|s| {
                    format!(
                        "step {}, {}, is not called for by {}",
                        s.index,
                        crate::text::sanitize(&s.action.describe()),
                        crate::text::sanitize(&plan.roster)
                    )
                })
                .collect();
            let why = anyhow::anyhow!(
                "{} has {} step{} that the roster and the apps as read now do not call for; nothing was changed. Run `roster plan` again:\n  {}",
                plan.id,
                lines.len(),
                if lines.len() == 1 { "" } else { "s" },
                lines.join("\n  ")
            );
            return Err(refuse(&state, &actor, Some(&plan.id), &plan.id, why).await);
        }
    }
    // Safety, recomputed from the actions against the state just read and the roster's
    // policies; the file's `destructive` and `blocked` are not consulted.
    let own = own_accounts(sessions).await?;
    let pending: Vec<&Step> = plan
        .steps
        .iter()
        .filter(|s| !done.contains(&s.index))
        .collect();
    let verdict = safety::verdict(
        pending.iter().copied(),
        &live,
        &roster.policies,
        &own,
        OffsetDateTime::now_utc(),
    );
    if !verdict.refused.is_empty() {
        let lines: Vec<String> = verdict
            .refused
            .iter()
            .map(|(i, why)| format!("step {i}: {why}"))
            .collect();
        let why = anyhow::anyhow!(
            "{} has {} step{} Roster never runs; nothing was changed:\n  {}",
            plan.id,
            lines.len(),
            if lines.len() == 1 { "" } else { "s" },
            lines.join("\n  ")
        );
        return Err(refuse(&state, &actor, Some(&plan.id), &plan.id, why).await);
    }
    if !verdict.blocked.is_empty() {
        let why = anyhow::anyhow!(
            "{} is blocked; nothing was changed:\n  {}",
            plan.id,
            verdict.blocked.join("\n  ")
        );
        return Err(refuse(&state, &actor, Some(&plan.id), &plan.id, why).await);
    }
    // A roster that lists approvers wants a signature only they can make, not a name.
    // The service's held plans are approved by signed-in accounts instead (four-eyes).
    if !verdict.destructive.is_empty()
        && !from_caller
        && let Some(why) = crate::approvers::missing(&state, &plan, &roster, &actor).await?
    {
        let why = anyhow::anyhow!("{why}{}", kept_for_review(automatic, &plan, g, &state)?);
        return Err(refuse(&state, &actor, Some(&plan.id), &plan.id, why).await);
    }
    if !verdict.destructive.is_empty() && state.approval(&plan.id, &plan.digest).await?.is_none() {
        if a.approve {
            let detail = format!(
                "approved at apply (--approve): content {}, {} destructive steps",
                short(&plan.digest),
                verdict.destructive.len()
            );
            record_approval(&state, &actor, &plan, detail).await?;
        } else {
            let list: Vec<String> = pending
                .iter()
                .filter(|s| verdict.is_destructive(s.index))
                .map(|s| {
                    format!(
                        "{}. {}",
                        s.index,
                        crate::text::sanitize(&s.action.describe())
                    )
                })
                .collect();
            let why = anyhow::anyhow!(
                "{} has {} destructive step{} and no approval of this content; nothing was changed. Review them, then pass --approve or run `roster approve PLAN`:\n  {}{}",
                plan.id,
                list.len(),
                if list.len() == 1 { "" } else { "s" },
                list.join("\n  "),
                kept_for_review(automatic, &plan, g, &state)?
            );
            return Err(refuse(&state, &actor, Some(&plan.id), &plan.id, why).await);
        }
    }
    if !journal.is_empty() {
        g.emit(Event::Resuming {
            plan_id: plan.id.clone(),
            done: done.len(),
            total: plan.steps.len(),
        });
    }
    let who = actor.name.clone();
    let crash = crash_hook();
    let mut failed_accounts: BTreeSet<String> = BTreeSet::new();
    let (mut ran, mut failed, mut skipped) = (0, 0, 0);
    let exec = Executor {
        sessions,
        who: &who,
        plan_id: &plan.id,
    };
    let report = |step: &Step, outcome: StepOutcome| {
        g.emit(Event::Step {
            plan_id: plan.id.clone(),
            index: step.index,
            total: plan.steps.len(),
            description: crate::text::sanitize(&step.action.describe()),
            account: step.action.account_key(),
            app: step.app,
            stage: step.stage,
            destructive: verdict.is_destructive(step.index),
            outcome,
        });
    };
    let total_pending = pending.len();
    // Steps an app runs in bulk, once the first of them comes up: their outcomes by index.
    let mut bulk_outcomes: std::collections::HashMap<usize, Result<Option<String>>> =
        std::collections::HashMap::new();
    let mut bulk_ran: BTreeSet<App> = BTreeSet::new();
    for (n, step) in pending.iter().copied().enumerate() {
        // A step a bulk already ran is recorded even while shutting down.
        if a.stop
            .is_some_and(|stop| stop.load(std::sync::atomic::Ordering::SeqCst))
            && !bulk_outcomes.contains_key(&step.index)
        {
            bail!(
                "{} stopped before step {} ({} of {} steps left) because Roster is shutting down; the journal is consistent, and the next apply of this plan resumes where it stopped",
                plan.id,
                step.index,
                total_pending - n,
                plan.steps.len()
            );
        }
        let account = step.action.account_key();
        if failed_accounts.contains(&account) {
            report(step, StepOutcome::Skipped);
            skipped += 1;
            continue;
        }
        if !bulk_ran.contains(&step.app) && exec.bulk(step) {
            bulk_ran.insert(step.app);
            let group: Vec<&Step> = pending[n..]
                .iter()
                .copied()
                .filter(|s| {
                    s.app == step.app
                        && exec.bulk(s)
                        && !failed_accounts.contains(&s.action.account_key())
                })
                .collect();
            if group.len() >= crate::apps::BULK_MIN {
                let now = OffsetDateTime::now_utc();
                for s in &group {
                    state.step_started(&plan.id, s.index, &s.key, now).await?;
                }
                match exec.run_bulk(step.app, &group).await {
                    Ok(outcomes) => bulk_outcomes.extend(outcomes),
                    // The batch stopped as a whole: each of its steps failed with it (the
                    // next run reads the store and settles what did happen).
                    Err(e) => bulk_outcomes.extend(
                        group
                            .iter()
                            .map(|s| (s.index, Err(anyhow::anyhow!("{e:#}")))),
                    ),
                }
            }
        }
        let outcome = match bulk_outcomes.remove(&step.index) {
            Some(outcome) => outcome,
            None => {
                let now = OffsetDateTime::now_utc();
                state
                    .step_started(&plan.id, step.index, &step.key, now)
                    .await?;
                exec.run(step).await
            }
        };
        if crash == Some((step.index, false)) {
            eprintln!(
                "ROSTER_TEST_CRASH: stopping after step {} ran, before it is recorded",
                step.index
            );
            std::process::abort();
        }
        let (status, detail) = match &outcome {
            Ok(note) => (StepStatus::Done, note.clone()),
            // Failed, but perhaps written: the next run reads the apps and settles it.
            Err(e) => (StepStatus::Unsettled, Some(format!("{e:#}"))),
        };
        let log = step_log(
            &actor,
            &plan.id,
            step,
            if outcome.is_ok() { "done" } else { "failed" },
            detail.as_deref(),
            instance_of(sessions, step.app),
        );
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
                let note = note.map(|n| crate::text::sanitize(&n));
                report(step, StepOutcome::Done { note });
            }
            Err(e) => {
                failed += 1;
                failed_accounts.insert(account);
                let error = crate::text::sanitize(&format!("{e:#}"));
                report(step, StepOutcome::Failed { error });
            }
        }
        if crash == Some((step.index, true)) {
            eprintln!("ROSTER_TEST_CRASH: stopping after step {}", step.index);
            std::process::abort();
        }
    }
    g.emit(Event::Applied {
        plan_id: plan.id.clone(),
        ran,
        before: done.len(),
        failed,
        skipped,
    });
    if failed > 0 {
        bail!(
            "{failed} step{} failed (see above); fix the cause and run the same apply again: done steps are not repeated",
            if failed == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

/// The audit-log line of one step.
fn step_log(
    actor: &Actor,
    plan_id: &str,
    step: &Step,
    outcome: &str,
    detail: Option<&str>,
    instance: Option<&str>,
) -> NewLogEntry {
    let mut log = actor.log(
        step.app.name(),
        step.stage.label(),
        &step.action.account_key(),
        outcome,
    );
    log.plan_id = Some(plan_id.to_string());
    log.step_key = Some(step.key.clone());
    log.instance = instance.map(str::to_string);
    log.detail = Some(match detail {
        Some(d) => format!("{}: {d}", step.action.describe()),
        None => step.action.describe(),
    });
    log
}

/// The instance of `app` that `sessions` reach (its base URL), as log lines record it.
fn instance_of(sessions: &Sessions, app: App) -> Option<&str> {
    sessions.app(app).map(|c| c.instance())
}

/// The app instances `sessions` reach, as a plan's scope records them.
fn scope(sessions: &Sessions) -> String {
    sessions
        .apps()
        .map(|c| format!("{}={}", c.app().name(), c.instance()))
        .collect::<Vec<_>>()
        .join(";")
}

/// Settles journal rows left `started` by a crash or `unsettled` by failed attempts, on
/// this run's instances (another instance's are its own runs' to settle): if the apps show
/// the step's effect, it ran, and it is recorded done with its audit-log line, so a write
/// that happened is on record even when the next run re-plans (and a deletion's tombstone
/// is closed). Otherwise nothing was written: it is recorded as not done (no new log line),
/// and a rerun of that plan runs it.
async fn reconcile_unfinished(
    events: &Events,
    state: &StateStore,
    live: &Live,
    actor: &Actor,
    sessions: &Sessions,
) -> Result<()> {
    let now = OffsetDateTime::now_utc();
    let before = live.accounts();
    for u in state.unfinished_steps().await? {
        let Ok(plan) = serde_json::from_str::<Plan>(&u.plan_body) else {
            continue;
        };
        let Some(step) = plan.steps.iter().find(|s| s.index == u.step) else {
            continue;
        };
        // Another instance's step is settled by that instance's runs: these accounts say
        // nothing about it (and that instance may be running it right now).
        let (app, ours) = (step.app.name(), instance_of(sessions, step.app));
        if !live.has(step.app)
            || u.instance_of(app)
                .is_some_and(|theirs| Some(theirs) != ours)
        {
            continue;
        }
        let key = step.action.account_key();
        let after = plan::simulate(live, [&step.action], now).accounts();
        let ran = after.get(&key) == before.get(&key);
        let detail = match (u.crashed, ran) {
            (true, true) => "interrupted by a crash; the apps show it ran",
            (true, false) => "interrupted by a crash before it ran; not done",
            (false, true) => "every attempt failed, but the apps show it ran",
            (false, false) => "every attempt failed, and the apps show it did not run",
        };
        let what = if u.crashed {
            "was interrupted"
        } else {
            "had failed"
        };
        events.emit(Event::Note(format!(
            "{} step {} ({}) {what}: {detail}",
            u.plan_id,
            u.step,
            crate::text::sanitize(&step.action.describe())
        )));
        if ran {
            // A deletion that finished before the crash leaves its tombstone open: close it.
            if let Some((app, instance, userid)) = deleted_account(&step.action, sessions) {
                close_finished_deletions(events, state, app, &instance, &userid).await?;
            }
            let log = step_log(actor, &u.plan_id, step, "done", Some(detail), ours);
            state
                .finish_step(
                    &u.plan_id,
                    u.step,
                    StepStatus::Done,
                    Some(detail),
                    &log,
                    now,
                )
                .await?;
        } else {
            state.step_not_run(&u.plan_id, u.step, detail, now).await?;
        }
    }
    Ok(())
}

/// The account a deleting action removes, as its tombstone names it: (app, instance, userid).
fn deleted_account(action: &Action, sessions: &Sessions) -> Option<(&'static str, String, String)> {
    let c = sessions.app(action.app())?;
    let userid = c.tombstoned(action)?;
    Some((c.app().name(), c.instance().to_string(), userid))
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
fn check_drift(
    plan: &Plan,
    journal: &[roster_store::JournalEntry],
    done: &BTreeSet<usize>,
    live: &Live,
) -> Result<()> {
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
    let mut diffs = differences(&expected, live, &unsettled);
    // Apps the plan did not read are not compared.
    diffs.retain(|d| roster_domain::live::key_app(d).is_none_or(|app| plan.live.has(app)));
    if !diffs.is_empty() {
        let shown: Vec<&String> = diffs.iter().take(10).collect();
        bail!(
            "the apps changed since {} was made ({} account{} differ); nothing was changed. Run `roster plan` again:\n  {}{}",
            plan.id,
            diffs.len(),
            if diffs.len() == 1 { "" } else { "s" },
            shown
                .iter()
                .map(|s| crate::text::sanitize(s))
                .collect::<Vec<_>>()
                .join("\n  "),
            if diffs.len() > 10 { "\n  ..." } else { "" }
        );
    }
    Ok(())
}

/// Runs steps, each through its app's connector. Every action counts "already so" as
/// success, which is what makes a rerun after a crash safe.
struct Executor<'a> {
    sessions: &'a Sessions,
    who: &'a str,
    plan_id: &'a str,
}

impl Executor<'_> {
    /// Runs one step; `Ok(Some(note))` when it turned out to be done already.
    async fn run(&self, step: &Step) -> Result<Option<String>> {
        let app = self.sessions.app(step.app).with_context(|| {
            format!(
                "the plan has {} steps but no {} connection is configured",
                step.app, step.app
            )
        })?;
        let ctx = StepContext {
            plan_id: self.plan_id,
            who: self.who,
        };
        app.execute(step, &ctx).await
    }

    /// Whether `step`'s app runs it in bulk with others like it.
    fn bulk(&self, step: &Step) -> bool {
        self.sessions
            .app(step.app)
            .is_some_and(|c| c.bulk(&step.action))
    }

    /// Runs `steps` of `app` together through its bulk route.
    async fn run_bulk(
        &self,
        app: App,
        steps: &[&Step],
    ) -> Result<Vec<(usize, Result<Option<String>>)>> {
        let connector = self
            .sessions
            .app(app)
            .with_context(|| format!("no {app} connection is configured"))?;
        let ctx = StepContext {
            plan_id: self.plan_id,
            who: self.who,
        };
        connector.execute_bulk(steps, &ctx).await
    }
}
