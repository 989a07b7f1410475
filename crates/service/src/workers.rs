//! One worker per instance: it runs that instance's jobs one at a time (so runs of one
//! instance never overlap) on a schedule and on demand; instances run concurrently.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result};
use roster_domain::inventory::Inventory;
use roster_domain::plan::{Action, Plan, Stage};
use roster_engine::Globals;
use roster_engine::actor::Actor;
use roster_engine::events::{Event, Progress, StepOutcome};
use roster_engine::live_read::Sessions;
use roster_engine::planning::{self, ApplyArgs, Computed, ToApply};
use roster_store::{RunEnd, ServicePlan};
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::Shared;
use crate::config::{AutoApply, Connection, Instance};

/// What a worker is asked to do.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// Re-read the roster and the apps, plan, apply what policy allows, hold the rest.
    /// `targeted`: for the people waiting in the state (`add_targets`) only, reading only
    /// what they need; a full reconcile verifies everyone.
    Reconcile {
        trigger: String,
        #[serde(default)]
        targeted: bool,
    },
    /// Apply a plan an approver approved (re-planned first: the approval covers its
    /// destructive steps, and the apps may have moved on since).
    ApplyApproved { plan_id: String, by: String },
    /// Restore an account from its tombstone, as an approver approved.
    Restore { request: i64, by: String },
    /// Read the snapshot of an access review that was just started.
    ReviewSnapshot { review: i64 },
}

impl Job {
    fn trigger(&self) -> String {
        match self {
            Job::Reconcile { trigger, .. } => trigger.clone(),
            Job::ApplyApproved { plan_id, by } => format!("approval:{plan_id} by {by}"),
            Job::Restore { request, by } => format!("restore:{request} by {by}"),
            Job::ReviewSnapshot { review } => format!("review:{review} snapshot"),
        }
    }
}

/// What `/api/v1/instances` shows of a worker.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkerStatus {
    /// The trigger of the run in progress.
    pub running: Option<String>,
    pub queued: usize,
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_run_at: Option<OffsetDateTime>,
    pub last_run_id: Option<i64>,
    pub last_outcome: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_finished_at: Option<OffsetDateTime>,
}

pub struct Worker {
    pub instance: Instance,
    tx: mpsc::UnboundedSender<Job>,
    pub status: Mutex<WorkerStatus>,
    /// A reconcile asked for by SCIM changes is waiting out the debounce.
    scim_pending: std::sync::atomic::AtomicBool,
    /// The same, for a targeted one.
    scim_targeted_pending: std::sync::atomic::AtomicBool,
    /// The roster file as the worker last saw it: a change to it plans for the people it
    /// touched.
    pub(crate) roster_seen: Mutex<Option<crate::roster_watch::Seen>>,
    /// When a Magento instance last looked for changed customers.
    pub(crate) changes_looked: Mutex<Option<std::time::Instant>>,
    /// The SCIM conflicts the last run reported: a `scim.conflict` webhook goes out for a
    /// new one only, not again at every run while it stands.
    scim_conflicts: Mutex<std::collections::BTreeSet<String>>,
}

impl Worker {
    pub fn new(instance: Instance) -> (Self, mpsc::UnboundedReceiver<Job>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Self {
                instance,
                tx,
                status: Mutex::new(WorkerStatus::default()),
                scim_pending: std::sync::atomic::AtomicBool::new(false),
                scim_targeted_pending: std::sync::atomic::AtomicBool::new(false),
                roster_seen: Mutex::default(),
                changes_looked: Mutex::default(),
                scim_conflicts: Mutex::default(),
            },
            rx,
        )
    }

    /// Queues a job in this process; it runs after the one in progress.
    fn submit_here(&self, job: Job) {
        self.status.lock().expect("status lock").queued += 1;
        let _ = self.tx.send(job);
    }

    /// Whether a (targeted or full) reconcile asked for by SCIM waits out the debounce.
    fn scim_waiting(&self, targeted: bool) -> &std::sync::atomic::AtomicBool {
        if targeted {
            &self.scim_targeted_pending
        } else {
            &self.scim_pending
        }
    }

    pub fn status(&self) -> WorkerStatus {
        self.status.lock().expect("status lock").clone()
    }
}

/// SCIM changed what a connection pushes: each instance it reaches reconciles once the
/// changes have stopped for the debounce time (an identity provider's full push is many
/// requests; it should start one run, not one per request). `people`: the emails the
/// changes touched, planned for alone (a targeted run); `None` when that cannot be told
/// (then everyone is).
pub async fn scim_changed(
    shared: &Arc<Shared>,
    connection: &roster_store::ScimConnection,
    people: Option<Vec<String>>,
) {
    if people.as_ref().is_some_and(Vec::is_empty) {
        return;
    }
    let trigger = format!("scim:{}", connection.name);
    for w in shared.workers.values() {
        if !connection.reaches(&w.instance.name) {
            continue;
        }
        let targeted = match &people {
            Some(emails) => match shared.store.add_targets(&w.instance.name, emails).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(instance = %w.instance.name, "cannot note who changed ({e}); everyone is planned for");
                    false
                }
            },
            None => false,
        };
        let job = Job::Reconcile {
            trigger: trigger.clone(),
            targeted,
        };
        if let Some(queue) = shared.queue.shared() {
            // One job per instance and kind under the key: later changes find it waiting
            // and join it, its time kept.
            let how = crate::jobs::Submit {
                key: Some((
                    format!(
                        "scim{}:{}",
                        if targeted { "-targeted" } else { "" },
                        w.instance.name
                    ),
                    graphile_worker::JobKeyMode::PreserveRunAt,
                )),
                run_at: Some(OffsetDateTime::now_utc() + shared.config.scim.debounce),
            };
            if let Err(e) = queue.add(&w.instance.name, job, how).await {
                tracing::error!(instance = %w.instance.name, "{e:#}");
            }
            continue;
        }
        if w.scim_waiting(targeted).swap(true, Ordering::SeqCst) {
            continue;
        }
        let shared = Arc::clone(shared);
        let name = w.instance.name.clone();
        tokio::spawn(async move {
            // The debounce is a wait by design: later changes join this run.
            tokio::time::sleep(shared.config.scim.debounce).await;
            if let Some(w) = shared.workers.get(&name) {
                w.scim_waiting(targeted).store(false, Ordering::SeqCst);
                w.submit_here(job);
            }
        });
    }
}

/// The people SCIM connections push for `inst`, as roster people, with what went wrong.
async fn scim_people(
    shared: &Shared,
    inst: &Instance,
) -> Result<(Vec<(String, roster_domain::desired::Person)>, Vec<String>)> {
    let mut people = Vec::new();
    let mut problems = Vec::new();
    for c in shared.store.scim_connections().await? {
        if c.revoked_at.is_some() || !c.reaches(&inst.name) {
            continue;
        }
        let users = shared.store.scim_resources(&c.name, "User").await?;
        let groups = shared.store.scim_resources(&c.name, "Group").await?;
        for u in &users {
            let in_groups: Vec<&str> = groups
                .iter()
                .filter(|g| {
                    g.body["members"]
                        .as_array()
                        .is_some_and(|m| m.iter().any(|m| m["value"].as_str() == Some(&u.id)))
                })
                .map(|g| g.name.as_str())
                .collect();
            let manager = roster_scim::people::manager_id(&u.body).and_then(|id| {
                users
                    .iter()
                    .find(|m| m.id == id)
                    .and_then(|m| roster_scim::people::email_of(&m.body))
            });
            let pushed = roster_scim::people::Pushed {
                connection: &c.name,
                user: &u.body,
                groups: in_groups,
                manager,
            };
            if let Some(p) =
                roster_scim::people::person_of(&pushed, &shared.config.scim.groups, &mut problems)
            {
                people.push((c.name.clone(), p));
            }
        }
    }
    Ok((people, problems))
}

/// The roster an instance follows: its file, with the people SCIM pushes added; what went
/// wrong in the merge (conflicts) comes back to be reported.
/// For a restore of `email` on `inst`: if the roster lists them as a leaver (or not at
/// all), what will happen once it is restored, for whoever asks and approves.
pub(crate) async fn restore_note(shared: &Shared, inst: &Instance, email: &str) -> Option<String> {
    let (roster, _) = roster_for(shared, inst).await.ok()?;
    let today = OffsetDateTime::now_utc().date();
    let listed = roster
        .people
        .iter()
        .find(|p| p.email.eq_ignore_ascii_case(email));
    let why = match listed {
        Some(p) if p.is_leaver(today) => "lists them as a leaver",
        Some(_) => return None,
        None => "does not list them",
    };
    Some(format!(
        "the roster ({}) {why}: once restored, {email} is kept for {} days (an exception every plan shows), then its removal is planned again, as a destructive step held for approval; change the roster to keep them for good",
        inst.roster.display(),
        roster_engine::lifecycle::RESTORE_KEEPS.whole_days()
    ))
}

pub(crate) async fn roster_for(
    shared: &Shared,
    inst: &Instance,
) -> Result<(roster_domain::desired::Roster, Vec<String>)> {
    let mut roster = roster_engine::live_read::load_roster(&inst.roster)?;
    let (people, mut problems) = scim_people(shared, inst).await?;
    problems.extend(roster_scim::people::merge(&mut roster, people));
    // Read where the plan is made (and again where an approved plan is re-planned),
    // never from a plan: what closed reviews took away stays away.
    roster.revocations = shared.store.revocations(&inst.name).await?;
    Ok((roster, problems))
}

/// The worker's loop: the next scheduled reconcile, or a submitted job, until shutdown.
pub async fn run_worker(
    shared: Arc<Shared>,
    name: String,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    mut shutdown: watch::Receiver<bool>,
) {
    let worker = &shared.workers[&name];
    let mut next = Instant::now();
    // Roster edits and (Magento) changed customers are looked for on one tick, each check
    // keeping its own pace.
    let mut roster_poll = tokio::time::interval(
        [shared.config.roster_watch, worker.instance.changes_every]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(std::time::Duration::from_secs(24 * 3600)),
    );
    roster_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let wall = OffsetDateTime::now_utc() + (next - Instant::now());
        worker.status.lock().expect("status lock").next_run_at = Some(wall);
        let job = tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            job = jobs.recv() => match job {
                Some(job) => {
                    let mut s = worker.status.lock().expect("status lock");
                    s.queued = s.queued.saturating_sub(1);
                    job
                }
                None => break,
            },
            _ = roster_poll.tick() => match crate::roster_watch::check(&shared, worker).await {
                Some(job) => job,
                None => match crate::magento_changes::check(&shared, worker).await {
                    Some(job) => job,
                    None => continue,
                },
            },
            _ = tokio::time::sleep_until(next) => {
                next = Instant::now() + crate::budget::full_interval(&shared, &worker.instance).await;
                Job::Reconcile { trigger: "schedule".into(), targeted: false }
            }
        };
        if *shutdown.borrow() {
            break;
        }
        // At most `parallel_runs` instances run at once; the others wait their turn here.
        let _slot = tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            slot = shared.run_slots.acquire() => slot.expect("the run slots are never closed"),
        };
        run_job(&shared, worker, job).await;
    }
    tracing::info!(instance = %name, "worker stopped");
}

/// How a run ended, before it is recorded.
pub(crate) struct Ended {
    outcome: &'static str,
    plan_id: Option<String>,
    summary: String,
    error: Option<String>,
}

impl Ended {
    pub(crate) fn ok(
        outcome: &'static str,
        plan_id: Option<String>,
        summary: impl Into<String>,
    ) -> Self {
        Self {
            outcome,
            plan_id,
            summary: summary.into(),
            error: None,
        }
    }

    pub(crate) fn err(
        outcome: &'static str,
        plan_id: Option<String>,
        summary: &str,
        e: &anyhow::Error,
    ) -> Self {
        Self {
            outcome,
            plan_id,
            summary: summary.into(),
            error: Some(roster_engine::text::sanitize(&format!("{e:#}"))),
        }
    }
}

/// Runs `job` and records it; returns how it ended (`done`, `stopped`, ...).
pub(crate) async fn run_job(shared: &Arc<Shared>, worker: &Worker, job: Job) -> &'static str {
    let inst = &worker.instance;
    let trigger = job.trigger();
    let started = OffsetDateTime::now_utc();
    let clock = Instant::now();
    worker.status.lock().expect("status lock").running = Some(trigger.clone());
    let id = match shared.store.start_run(&inst.name, &trigger, started).await {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(instance = %inst.name, "cannot record the run: {e}");
            worker.status.lock().expect("status lock").running = None;
            return "failed";
        }
    };
    tracing::info!(instance = %inst.name, run = id, %trigger, "run started");
    let recorder = Arc::new(Recorder::new(Arc::clone(shared), inst.name.clone()));
    let ended = match &job {
        Job::Reconcile { trigger, targeted } => {
            reconcile(shared, inst, trigger, *targeted, &recorder).await
        }
        Job::ApplyApproved { plan_id, by } => {
            apply_approved(shared, inst, plan_id, by, &recorder).await
        }
        Job::Restore { request, by } => restore(shared, inst, *request, by, &recorder).await,
        Job::ReviewSnapshot { review } => {
            crate::reviews::snapshot(shared, inst, *review, &recorder).await
        }
    };
    // A review's plan is named on the review; steps that ran may have carried out
    // revocations, which a fresh read then verifies.
    if let (Some(review), Some(plan)) = (
        crate::reviews::review_of_trigger(&trigger),
        ended.plan_id.as_deref(),
    ) && matches!(&job, Job::Reconcile { .. })
        && !trigger.contains("verification")
        && matches!(ended.outcome, "awaiting_approval" | "done")
    {
        let held = shared.store.held_plans(Some("pending")).await.ok();
        let plan = held
            .iter()
            .flatten()
            .find(|h| h.instance == inst.name && h.requested_by == trigger)
            .map_or(plan, |h| h.plan_id.as_str());
        if let Err(e) = shared.store.set_review_plan(review, plan).await {
            tracing::warn!(review, "cannot name the review's plan: {e}");
        }
    }
    let ran_steps = match &job {
        Job::ApplyApproved { .. } => ended.outcome == "done",
        Job::Reconcile { trigger, .. } => {
            ended.outcome == "done"
                && crate::reviews::review_of_trigger(trigger).is_some()
                && !trigger.contains("verification")
        }
        _ => false,
    };
    if ran_steps {
        crate::reviews::after_apply(shared, inst).await;
    }
    let end = RunEnd {
        outcome: ended.outcome.into(),
        plan_id: ended.plan_id.clone(),
        summary: Some(ended.summary.clone()),
        error: ended.error.clone(),
        events: Value::Array(recorder.take()),
    };
    // Counted before the end is recorded: whoever sees the run finished (the API reads the
    // state) finds it in the metrics too.
    let m = &shared.metrics;
    m.add(
        "roster_runs_total",
        &[("instance", &inst.name), ("outcome", ended.outcome)],
        1.0,
    );
    if matches!(ended.outcome, "done" | "awaiting_approval" | "blocked") {
        m.set(
            "roster_last_success_timestamp_seconds",
            &[("instance", &inst.name)],
            OffsetDateTime::now_utc().unix_timestamp() as f64,
        );
    }
    m.set(
        "roster_run_duration_seconds",
        &[("instance", &inst.name)],
        clock.elapsed().as_secs_f64(),
    );
    m.observe(
        "roster_run_seconds",
        &[("instance", &inst.name)],
        clock.elapsed().as_secs_f64(),
    );
    // Notified (queued) before the end is recorded, as the metrics are: whoever sees the
    // run finished finds its webhooks on their way too.
    if matches!(ended.outcome, "failed" | "refused") {
        shared.notifier.notify(
            "run.failed",
            Some(&inst.name),
            format!(
                "run {id} {}: {}{}",
                ended.outcome,
                ended.summary,
                ended.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
            ),
            json!({"run": id, "outcome": ended.outcome, "summary": ended.summary, "error": ended.error}),
        );
    }
    shared.announce_log_head().await;
    let finished = OffsetDateTime::now_utc();
    if let Err(e) = shared.store.finish_run(id, &end, finished).await {
        tracing::error!(instance = %inst.name, run = id, "cannot record the run's end: {e}");
    }
    shared.refresh_pending_gauge().await;
    match &ended.error {
        Some(e) => {
            tracing::warn!(instance = %inst.name, run = id, outcome = ended.outcome, "run ended: {}: {e}", ended.summary)
        }
        None => {
            tracing::info!(instance = %inst.name, run = id, outcome = ended.outcome, "run ended: {}", ended.summary)
        }
    }
    let mut s = worker.status.lock().expect("status lock");
    s.running = None;
    s.last_run_id = Some(id);
    s.last_outcome = Some(ended.outcome.into());
    s.last_finished_at = Some(finished);
    ended.outcome
}

/// The engine's view of where this run works and who it acts as.
pub(crate) fn globals(shared: &Shared, actor: &str, recorder: &Arc<Recorder>) -> Globals {
    Globals {
        state: Some(shared.state_dir.clone()),
        database: shared.config.database.as_deref().map(String::from),
        config: None,
        actor: Some(actor.to_string()),
        events: Arc::clone(recorder) as Arc<dyn Progress>,
        no_config_file: true,
        instance: None,
        service_instances: None,
    }
}

pub(crate) async fn open_sessions(inst: &Instance, g: &Globals) -> Result<Sessions> {
    match &inst.connection {
        Connection::Marketo(c) => Sessions::connect(Some(c.clone()), None, g).await,
        Connection::Magento(c) => Sessions::connect(None, Some(c.clone()), g).await,
        Connection::Adobe {
            conn,
            people,
            reserved,
        } => {
            let mut sessions = Sessions::connect(None, None, g).await?;
            let mut adobe = roster_engine::apps::adobe::AdobeSession::open(conn, people, g).await?;
            adobe.reserved = reserved.clone();
            sessions.adobe = Some(adobe);
            Ok(sessions)
        }
    }
}

/// Records what the connections cost: quota, metrics and the estimate for the next run of
/// the same kind (full or targeted).
async fn close_sessions(
    shared: &Shared,
    inst: &Instance,
    sessions: &mut Sessions,
    before: u64,
    targeted: bool,
) {
    let m = &shared.metrics;
    let labels = [("instance", inst.name.as_str())];
    if let Some(s) = &sessions.marketo {
        let st = s.client.stats();
        m.add("roster_api_calls_total", &labels, st.calls as f64);
        m.add("roster_api_retries_total", &labels, st.retries as f64);
        m.add("roster_rate_limited_total", &labels, st.rate_limited as f64);
        let q = s.client.quota();
        m.set("roster_quota_remaining", &labels, q.remaining() as f64);
        let spent = st.calls.saturating_sub(before);
        if spent > 0 {
            crate::budget::record(shared, inst, &s.instance, q.limit(), targeted, spent).await;
        }
        let budget = inst.daily_budget.unwrap_or(q.limit()).min(q.limit());
        let left = budget.saturating_sub(q.used());
        if left < budget / 10 {
            shared.notifier.notify(
                "quota.low",
                Some(&inst.name),
                format!("{left} of the {budget} API calls budgeted today are left"),
                json!({"left": left, "budget": budget, "used": q.used()}),
            );
        }
    }
    if let Some(s) = &sessions.magento {
        let st = s.client.stats();
        m.add("roster_api_calls_total", &labels, st.calls as f64);
        m.add("roster_api_retries_total", &labels, st.retries as f64);
    }
    if let Some(s) = &sessions.adobe {
        let st = s.client.stats();
        m.add("roster_api_calls_total", &labels, st.calls as f64);
    }
    if let Err(e) = sessions.finish().await {
        tracing::error!(instance = %inst.name, "cannot record the quota used: {e:#}");
    }
}

/// Whether this run fits in today's budget; the reason it is deferred if not. A full run
/// leaves the targeted reserve alone; a targeted run is deferred only when the whole
/// budget cannot take its own cost, never for a full run's.
async fn over_budget(
    shared: &Shared,
    inst: &Instance,
    sessions: &Sessions,
    targeted: bool,
) -> Result<Option<String>> {
    let Some(s) = &sessions.marketo else {
        return Ok(None);
    };
    let q = s.client.quota();
    let measured = crate::budget::measured(shared, inst)
        .await
        .unwrap_or_else(|| crate::budget::Measured {
            quota_key: s.instance.clone(),
            limit: q.limit(),
            ..Default::default()
        });
    let m = crate::budget::Measured {
        limit: q.limit(),
        ..measured
    };
    let b = crate::budget::budget_of(inst, &m, q.used(), OffsetDateTime::now_utc());
    if targeted {
        let cost = m.targeted_cost();
        if b.defers_targeted_run(cost) {
            return Ok(Some(format!(
                "deferred: a targeted run costs about {cost} API calls and {} of today's budget of {} are left ({} used); the people it was for are planned again after Marketo's quota day resets (midnight US Central)",
                b.budget.saturating_sub(b.used),
                b.budget,
                b.used
            )));
        }
    } else if b.defers_full_run() {
        return Ok(Some(format!(
            "deferred: a full run costs about {} API calls and {} of today's budget of {} are left for full runs ({} kept for targeted runs, {} used); the next full run after Marketo's quota day resets (midnight US Central) goes ahead, and changes to people are still planned for meanwhile",
            b.full_cost,
            b.for_full_runs(),
            b.budget,
            b.reserve(),
            b.used
        )));
    }
    Ok(None)
}

fn destructive_actions(plan: &Plan) -> Vec<&Action> {
    plan.destructive().map(|s| &s.action).collect()
}

fn same_actions(a: &[&Action], b: &[&Action]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

/// Holds `plan` for approval, unless a pending plan of this instance asks for exactly the
/// same destructive steps (then that one stays, so approvers are not asked twice).
async fn hold(shared: &Shared, inst: &Instance, plan: &Plan, requested_by: &str) -> Result<String> {
    let store = &shared.store;
    let wanted = destructive_actions(plan);
    let now = OffsetDateTime::now_utc();
    for held in store.held_plans(Some("pending")).await? {
        if held.instance != inst.name {
            continue;
        }
        let Some((_, body)) = store.held_plan(&held.plan_id).await? else {
            continue;
        };
        let old: Plan = serde_json::from_str(&body).context("reading a held plan")?;
        if same_actions(&destructive_actions(&old), &wanted) {
            return Ok(held.plan_id);
        }
        // A targeted plan speaks for its people only: it replaces a pending plan about the
        // same people (or some of them), never one about others or everyone.
        if let Some(new) = &plan.targeted {
            let about_them = old
                .targeted
                .as_ref()
                .is_some_and(|t| t.people.iter().all(|p| new.people.contains(p)));
            if !about_them {
                continue;
            }
        }
        store
            .set_held_plan_status(&held.plan_id, &["pending"], "superseded", None, None, now)
            .await?;
        store
            .set_held_plan_outcome(
                &held.plan_id,
                "superseded",
                &format!("superseded by {}", plan.id),
            )
            .await?;
    }
    // Signed as `roster plan --out` signs a file: what approvers see and what runs once
    // they approve must be this plan, not one rewritten in the database meanwhile.
    let mut signed = plan.clone();
    planning::sign(&mut signed, store.keys()?)?;
    store
        .save_plan(&plan.id, plan.created_at, &serde_json::to_string(&signed)?)
        .await?;
    store
        .hold_plan(&ServicePlan {
            plan_id: plan.id.clone(),
            instance: inst.name.clone(),
            status: "pending".into(),
            requested_by: requested_by.into(),
            created_at: plan.created_at,
            destructive: wanted.len() as i64,
            decided_by: None,
            decided_at: None,
            comment: None,
            outcome: None,
        })
        .await?;
    let steps: Vec<String> = plan
        .destructive()
        .map(|s| roster_engine::text::sanitize(&s.action.describe()))
        .collect();
    shared.notifier.notify(
        "plan.pending",
        Some(&inst.name),
        format!(
            "{} awaits approval: {} destructive step{}",
            plan.id,
            steps.len(),
            if steps.len() == 1 { "" } else { "s" }
        ),
        json!({"plan": plan.id, "destructive": steps}),
    );
    Ok(plan.id.clone())
}

fn stop_flag(shared: &Shared) -> Option<&std::sync::atomic::AtomicBool> {
    Some(&shared.stop)
}

async fn reconcile(
    shared: &Arc<Shared>,
    inst: &Instance,
    trigger: &str,
    targeted: bool,
    recorder: &Arc<Recorder>,
) -> Ended {
    // An invalid roster refuses the run before anything is read: never plan from a
    // partial roster.
    let (mut roster, scim_problems) = match roster_for(shared, inst).await {
        Ok(r) => r,
        Err(e) => {
            return Ended::err(
                "refused",
                None,
                "the roster is not valid; nothing was read or changed",
                &e,
            );
        }
    };
    // Access for an instance this service does not run is a typo or a missing section:
    // planning without it would take that access away.
    let unknown: Vec<String> = roster
        .named_instances()
        .into_iter()
        .filter(|((app, name), _)| !shared.workers.contains_key(&format!("{app}.{name}")))
        .map(|((app, name), line)| format!("{}:{line}: access for {app}.{name}", roster.source))
        .collect();
    if !unknown.is_empty() {
        let runs: Vec<&str> = shared.workers.keys().map(String::as_str).collect();
        let e = anyhow::anyhow!(
            "the roster names instances this service does not run ({}); fix the names or add the sections to the configuration:\n  {}",
            runs.join(", "),
            unknown.join("\n  ")
        );
        return Ended::err(
            "refused",
            None,
            "the roster names an unknown instance; nothing was read or changed",
            &e,
        );
    }
    let actor = format!("roster serve ({trigger})");
    let g = globals(shared, &actor, recorder);
    let fresh: Vec<String> = {
        let worker = &shared.workers[&inst.name];
        let mut known = worker.scim_conflicts.lock().expect("conflicts lock");
        let now: std::collections::BTreeSet<String> = scim_problems.iter().cloned().collect();
        let fresh = now.difference(&known).cloned().collect();
        *known = now;
        fresh
    };
    for problem in fresh {
        shared.notifier.notify(
            "scim.conflict",
            Some(&inst.name),
            problem.clone(),
            json!({"problem": problem}),
        );
    }
    for problem in scim_problems {
        recorder.emit(Event::Note(problem));
    }
    // The people waiting for a targeted run: its own, or covered by this full run.
    let waiting = match shared.store.take_targets(&inst.name).await {
        Ok(w) => w,
        Err(e) => return Ended::err("failed", None, "cannot read who changed", &e.into()),
    };
    if targeted {
        if waiting.is_empty() {
            return Ended::ok(
                "done",
                None,
                "nobody waits for a targeted run: an earlier run planned for them; nothing was read",
            );
        }
        roster.target(waiting.iter().cloned());
    }
    let started = OffsetDateTime::now_utc();
    let ended = match open_sessions(inst, &g).await {
        Ok(mut sessions) => {
            let before = sessions
                .marketo
                .as_ref()
                .map_or(0, |s| s.client.stats().calls);
            let ended = reconcile_with(shared, inst, trigger, roster, &sessions, &g).await;
            close_sessions(shared, inst, &mut sessions, before, targeted).await;
            ended
        }
        Err(e) => Ended::err("failed", None, "cannot connect", &e),
    };
    let read = matches!(ended.outcome, "done" | "awaiting_approval" | "blocked");
    if read && !targeted && inst.changes_every.is_some() {
        // Every customer was read as of the run's start: changes are looked for from then.
        crate::magento_changes::read_all_at(shared, &inst.name, started).await;
    }
    if !read && !waiting.is_empty() {
        // Not planned for after all: they wait for the next run.
        let back: Vec<String> = waiting.into_iter().collect();
        if let Err(e) = shared.store.add_targets(&inst.name, &back).await {
            tracing::warn!(instance = %inst.name, "cannot keep who changed for the next run: {e}");
        }
    }
    ended
}

async fn reconcile_with(
    shared: &Arc<Shared>,
    inst: &Instance,
    trigger: &str,
    roster: roster_domain::desired::Roster,
    sessions: &Sessions,
    g: &Globals,
) -> Ended {
    let targeted = roster.target.is_some();
    match over_budget(shared, inst, sessions, targeted).await {
        Ok(Some(why)) => return Ended::ok("deferred", None, why),
        Ok(None) => {}
        Err(e) => return Ended::err("failed", None, "cannot read the quota used", &e),
    }
    // The roster checked above, not read a second time.
    let computed = match planning::compute_from(
        roster,
        sessions,
        inst.resend_invites,
        Some((inst.app, inst.short_name())),
    )
    .await
    {
        Ok(c) => c,
        Err(e) => return Ended::err("failed", None, "cannot plan", &e),
    };
    let read_at = OffsetDateTime::now_utc();
    let target = computed.roster.target.clone();
    keep_inventory(shared, inst, &computed.live, &[], read_at, target.as_ref()).await;
    crate::reviews::verify(shared, inst, &computed.live, read_at, target.as_ref()).await;
    for note in &computed.plan.notes {
        if note.message.contains("expire") {
            shared.notifier.notify(
                "invitation.expiring",
                Some(&inst.name),
                format!("{}: {}", note.account, note.message),
                json!({"account": note.account, "message": note.message}),
            );
        }
    }
    let unfinished = match shared.store.unfinished_steps().await {
        Ok(u) => !u.is_empty(),
        Err(e) => return Ended::err("failed", None, "cannot read the journal", &e.into()),
    };
    let plan_id = computed.plan.id.clone();
    let summary = planning::summary_line(&computed.plan);
    let targeted_note = computed.plan.targeted.as_ref().map(|t| t.describe());
    let steps_total = computed.plan.steps.len();
    let destructive = computed.plan.destructive().count();
    let blocked = computed.plan.blocked.clone();
    // What waits for approval: everything under `none`; otherwise the destructive steps
    // (the rest ran, or runs, unattended).
    let mut to_hold = match inst.auto_apply {
        AutoApply::None => computed.plan.clone(),
        AutoApply::Safe | AutoApply::All => computed.plan.only_destructive(),
    };
    let apply = |c: Computed, approve: bool| async move {
        planning::apply_with(
            ApplyArgs {
                plan: ToApply::Fresh(Box::new(c)),
                approve,
                by: None,
                resend_invites: inst.resend_invites,
                stop: stop_flag(shared),
            },
            sessions,
            g,
        )
        .await
    };
    // What runs now, unattended.
    let unattended = match inst.auto_apply {
        AutoApply::None => None,
        AutoApply::All if blocked.is_empty() => Some((computed, true)),
        AutoApply::Safe | AutoApply::All => {
            let safe = computed.plan.without_destructive();
            Some((
                Computed {
                    plan: safe,
                    ..computed
                },
                false,
            ))
        }
    };
    let mut applied = false;
    if let Some((c, approve)) = unattended
        && (!c.plan.steps.is_empty() || unfinished)
    {
        applied = true;
        let id = c.plan.id.clone();
        let (live, actions) = (c.live.clone(), actions_of(&c.plan));
        let result = apply(c, approve).await;
        if result.is_ok() && !actions.is_empty() {
            keep_inventory(shared, inst, &live, &actions, read_at, target.as_ref()).await;
            // What approvers see as each held step's "before" is the state it will meet:
            // after the safe steps that just ran, not the read before them.
            to_hold.live =
                roster_domain::plan::simulate(&live, &actions, OffsetDateTime::now_utc());
            to_hold.digest = to_hold.content_digest();
        }
        if let Err(e) = result {
            let outcome = if shared.stop.load(std::sync::atomic::Ordering::SeqCst) {
                "stopped"
            } else {
                "failed"
            };
            return Ended::err(outcome, Some(id), &summary, &e);
        }
    }
    let needs_approval =
        destructive > 0 && !(inst.auto_apply == AutoApply::All && blocked.is_empty());
    let non_destructive_left = inst.auto_apply == AutoApply::None && !to_hold.steps.is_empty();
    if !blocked.is_empty() {
        return Ended::ok(
            "blocked",
            Some(plan_id),
            format!(
                "{summary}; blocked, nothing destructive runs: {}",
                blocked.join("; ")
            ),
        );
    }
    if needs_approval || non_destructive_left {
        return match hold(shared, inst, &to_hold, trigger).await {
            Ok(held) => Ended::ok(
                "awaiting_approval",
                Some(held.clone()),
                format!(
                    "{summary}; {held} awaits approval{}",
                    if applied {
                        " (the non-destructive steps ran)"
                    } else {
                        ""
                    }
                ),
            ),
            Err(e) => Ended::err(
                "failed",
                Some(plan_id),
                "cannot hold the plan for approval",
                &e,
            ),
        };
    }
    if steps_total == 0 {
        Ended::ok(
            "done",
            Some(plan_id),
            format!(
                "nothing to do: the apps match the roster{}",
                targeted_note.map(|t| format!("; {t}")).unwrap_or_default()
            ),
        )
    } else {
        Ended::ok("done", Some(plan_id), summary)
    }
}

fn actions_of(plan: &Plan) -> Vec<Action> {
    plan.steps.iter().map(|s| s.action.clone()).collect()
}

/// Keeps the instance's access inventory for the console: what `live` holds (read at
/// `read_at`), with `applied` (the steps that ran since) played onto it. A store that
/// cannot take it is logged, not fatal: the run's own work is done.
async fn keep_inventory(
    shared: &Shared,
    inst: &Instance,
    live: &roster_domain::live::Live,
    applied: &[Action],
    read_at: OffsetDateTime,
    target: Option<&std::collections::BTreeSet<String>>,
) {
    let now = OffsetDateTime::now_utc();
    let after = roster_domain::plan::simulate(live, applied, now);
    let mut inventory = Inventory::from_live(inst.app, &inst.name, &after, read_at);
    inventory.changes_since_read = applied.len();
    if let Some(target) = target {
        // A targeted read knows its people's accounts only: they replace theirs in the
        // inventory the last full read kept (none kept: the next full read makes one).
        let Ok(Some((_, mut kept))) = shared.store.inventory(&inst.name).await else {
            return;
        };
        kept.replace_people(target, inventory.accounts);
        kept.changes_since_read += applied.len();
        inventory = kept;
    }
    if let Err(e) = shared.store.save_inventory(&inventory).await {
        tracing::warn!(instance = %inst.name, "cannot keep the access inventory: {e}");
    }
}

/// The approved plan, only if the database's word for it can be checked: the plan is
/// the one the service signed when it held it, and its approval is a signed record of
/// someone other than whoever asked for it. A `status` set to approved in the database,
/// or a job queued by hand, approves nothing.
async fn trusted_approved(
    store: &roster_store::StateStore,
    plan_id: &str,
    body: &str,
) -> Result<Plan> {
    let plan: Plan = serde_json::from_str(body).context("reading the held plan")?;
    planning::verify_signature(&plan, store.keys()?, &format!("the held plan {plan_id}"))?;
    match store.approval(plan_id, &plan.digest).await {
        Ok(Some(_)) => Ok(plan),
        Ok(None) => anyhow::bail!(
            "{plan_id} is marked approved, but no approval of its content ({}) is on record: the database was changed by hand; approve it again through the API or the console",
            planning::short(&plan.digest)
        ),
        Err(e) => Err(anyhow::Error::new(e).context(format!(
            "the approval of {plan_id} on record cannot be trusted"
        ))),
    }
}

async fn apply_approved(
    shared: &Arc<Shared>,
    inst: &Instance,
    plan_id: &str,
    by: &str,
    recorder: &Arc<Recorder>,
) -> Ended {
    let store = &shared.store;
    let approved: Plan = match store.held_plan(plan_id).await {
        Ok(Some((held, body))) if held.status == "approved" => {
            match trusted_approved(store, plan_id, &body).await {
                Ok(p) => p,
                Err(e) => {
                    return Ended::err(
                        "refused",
                        Some(plan_id.into()),
                        "refused to apply it; nothing was changed",
                        &e,
                    );
                }
            }
        }
        Ok(_) => {
            return Ended::ok(
                "done",
                Some(plan_id.into()),
                format!("{plan_id} is no longer approved and waiting; nothing to do"),
            );
        }
        Err(e) => {
            return Ended::err(
                "failed",
                Some(plan_id.into()),
                "cannot read the plan",
                &e.into(),
            );
        }
    };
    let g = globals(shared, by, recorder);
    let mut sessions = match open_sessions(inst, &g).await {
        Ok(s) => s,
        Err(e) => return Ended::err("failed", Some(plan_id.into()), "cannot connect", &e),
    };
    let before = sessions
        .marketo
        .as_ref()
        .map_or(0, |s| s.client.stats().calls);
    let ended = apply_approved_with(shared, inst, &approved, by, &sessions, &g).await;
    close_sessions(
        shared,
        inst,
        &mut sessions,
        before,
        approved.targeted.is_some(),
    )
    .await;
    let (status, outcome) = match ended.outcome {
        "done" => ("applied", ended.summary.clone()),
        "awaiting_approval" => ("superseded", ended.summary.clone()),
        _ => (
            "failed",
            format!(
                "{}: {}",
                ended.summary,
                ended.error.clone().unwrap_or_default()
            ),
        ),
    };
    if let Err(e) = store.set_held_plan_outcome(plan_id, status, &outcome).await {
        tracing::error!(plan = plan_id, "cannot record the plan's outcome: {e}");
    }
    ended
}

async fn apply_approved_with(
    shared: &Arc<Shared>,
    inst: &Instance,
    approved: &Plan,
    by: &str,
    sessions: &Sessions,
    g: &Globals,
) -> Ended {
    let id = Some(approved.id.clone());
    // The same roster a scheduled run follows: the file and the SCIM people (for the
    // approved plan's people only, if it was targeted).
    let mut roster = match roster_for(shared, inst).await {
        Ok((r, _)) => r,
        Err(e) => return Ended::err("failed", id, "cannot read the roster before applying", &e),
    };
    if let Some(t) = &approved.targeted {
        roster.target(t.people.iter().cloned());
    }
    let target = roster.target.clone();
    let fresh = match planning::compute_from(
        roster,
        sessions,
        inst.resend_invites,
        Some((inst.app, inst.short_name())),
    )
    .await
    {
        Ok(c) => c,
        Err(e) => return Ended::err("failed", id, "cannot plan again before applying", &e),
    };
    let covered = destructive_actions(approved);
    let new: Vec<String> = fresh
        .plan
        .destructive()
        .filter(|s| !covered.contains(&&s.action))
        .map(|s| roster_engine::text::sanitize(&s.action.describe()))
        .collect();
    if !new.is_empty() {
        let summary = format!(
            "the apps or the roster changed after {} was approved: {} destructive step{} it did not cover ({})",
            approved.id,
            new.len(),
            if new.len() == 1 { "" } else { "s" },
            new.join("; ")
        );
        return match hold(
            shared,
            inst,
            &fresh.plan,
            &format!("approval of {}", approved.id),
        )
        .await
        {
            Ok(held) => Ended::ok(
                "awaiting_approval",
                Some(held.clone()),
                format!("{summary}; {held} awaits approval"),
            ),
            Err(e) => Ended::err("failed", id, &summary, &e),
        };
    }
    // The approver's approval, carried over to the plan computed now (its destructive steps
    // are among the approved ones), and recorded in the audit log.
    let state = match roster_engine::connect::open_state(
        Some(&shared.state_dir),
        shared.config.database.as_deref(),
    )
    .await
    {
        Ok(s) => s,
        Err(e) => return Ended::err("failed", id, "cannot open the state", &e),
    };
    let actor = Actor::resolve(Some(by));
    if fresh.plan.destructive().count() > 0
        && let Err(e) = planning::record_approval(
            &state,
            &actor,
            &fresh.plan,
            format!(
                "approval of {} (content {}) carried over to {}, planned again just before applying",
                approved.id,
                planning::short(&approved.digest),
                fresh.plan.id
            ),
        )
        .await
    {
        return Ended::err("failed", id, "cannot record the approval", &e);
    }
    let summary = planning::summary_line(&fresh.plan);
    let read_at = OffsetDateTime::now_utc();
    let (live, actions) = (fresh.live.clone(), actions_of(&fresh.plan));
    let result = planning::apply_with(
        ApplyArgs {
            plan: ToApply::Fresh(Box::new(fresh)),
            approve: false,
            by: Some(by),
            resend_invites: inst.resend_invites,
            stop: stop_flag(shared),
        },
        sessions,
        g,
    )
    .await;
    if result.is_ok() {
        keep_inventory(shared, inst, &live, &actions, read_at, target.as_ref()).await;
    }
    match result {
        Ok(()) => Ended::ok("done", id, format!("{summary} (approved by {by})")),
        Err(e) => Ended::err("failed", id, &summary, &e),
    }
}

async fn restore(
    shared: &Arc<Shared>,
    inst: &Instance,
    request: i64,
    by: &str,
    recorder: &Arc<Recorder>,
) -> Ended {
    let store = &shared.store;
    let req = match store.restore_request(request).await {
        Ok(Some(r)) if r.status == "approved" => r,
        Ok(_) => {
            return Ended::ok(
                "done",
                None,
                format!("restore request {request} is not approved and waiting; nothing to do"),
            );
        }
        Err(e) => return Ended::err("failed", None, "cannot read the restore request", &e.into()),
    };
    let g = globals(shared, by, recorder);
    let mut sessions = match open_sessions(inst, &g).await {
        Ok(s) => s,
        Err(e) => return Ended::err("failed", None, "cannot connect", &e),
    };
    let before = sessions
        .marketo
        .as_ref()
        .map_or(0, |s| s.client.stats().calls);
    let result = roster_engine::lifecycle::restore_tombstone(&sessions, req.tombstone_id).await;
    close_sessions(shared, inst, &mut sessions, before, false).await;
    let what = format!("tombstone #{}", req.tombstone_id);
    let now = OffsetDateTime::now_utc();
    let (status, text) = match &result {
        Ok(()) => ("restored", format!("restored from {what}")),
        Err(e) => ("failed", roster_engine::text::sanitize(&format!("{e:#}"))),
    };
    if let Err(e) = store
        .set_restore_status(request, &["approved"], status, None, Some(&text), now)
        .await
    {
        tracing::error!(request, "cannot record the restore's outcome: {e}");
    }
    let logged = roster_engine::actor::record(
        store,
        &Actor::resolve(Some(by)),
        inst.app.name(),
        "restore",
        &what,
        Some(format!("restore request {request}, approved by {by}")),
        &result,
    )
    .await;
    if let Err(e) = logged {
        tracing::error!(request, "cannot write the restore's audit-log line: {e:#}");
    }
    match result {
        Ok(()) => {
            shared.notifier.notify(
                "account.created",
                Some(&inst.name),
                format!("restored {what} (request {request}, approved by {by})"),
                json!({"request": request, "tombstone": req.tombstone_id}),
            );
            Ended::ok("done", None, format!("restored {what}"))
        }
        Err(e) => Ended::err("failed", None, &format!("restoring {what}"), &e),
    }
}

/// Keeps a run's events (as JSON, for `/api/v1/runs`), counts steps, and turns account
/// changes into notifications.
pub struct Recorder {
    shared: Arc<Shared>,
    instance: String,
    events: Mutex<Vec<Value>>,
}

impl Recorder {
    pub(crate) fn new(shared: Arc<Shared>, instance: String) -> Self {
        Self {
            shared,
            instance,
            events: Mutex::new(Vec::new()),
        }
    }

    fn take(&self) -> Vec<Value> {
        std::mem::take(&mut *self.events.lock().expect("events lock"))
    }
}

fn step_kind(outcome: &StepOutcome) -> &'static str {
    match outcome {
        StepOutcome::Done { .. } => "done",
        StepOutcome::Failed { .. } => "failed",
        StepOutcome::Skipped => "skipped",
    }
}

impl Progress for Recorder {
    fn emit(&self, event: Event) {
        let at = roster_engine::text::rfc3339(OffsetDateTime::now_utc());
        let value = match &event {
            Event::Planned(plan) => {
                json!({"at": at, "kind": "planned", "plan": plan.id, "summary": planning::summary_line(plan)})
            }
            Event::Resuming {
                plan_id,
                done,
                total,
            } => {
                json!({"at": at, "kind": "resuming", "plan": plan_id, "done": done, "total": total})
            }
            Event::Step {
                plan_id,
                index,
                total,
                description,
                account,
                app,
                stage,
                destructive,
                outcome,
            } => {
                let kind = step_kind(outcome);
                self.shared.metrics.add(
                    "roster_steps_total",
                    &[("instance", &self.instance), ("outcome", kind)],
                    1.0,
                );
                if let StepOutcome::Done { .. } = outcome {
                    let change = match stage {
                        Stage::Invite => Some(("account.created", "created")),
                        Stage::Delete | Stage::DeleteInvite => Some(("account.removed", "removed")),
                        _ => None,
                    };
                    if let Some((name, verb)) = change {
                        self.shared.notifier.notify(
                            name,
                            Some(&self.instance),
                            format!("{verb} {account}: {description}"),
                            json!({"plan": plan_id, "step": index, "account": account, "app": app.name(), "action": description}),
                        );
                    }
                }
                let detail = match outcome {
                    StepOutcome::Done { note } => json!(note),
                    StepOutcome::Failed { error } => json!(error),
                    StepOutcome::Skipped => Value::Null,
                };
                json!({"at": at, "kind": "step", "plan": plan_id, "index": index, "total": total,
                       "app": app.name(), "stage": stage.label(), "account": account, "action": description,
                       "destructive": destructive, "outcome": kind, "detail": detail})
            }
            Event::Applied {
                plan_id,
                ran,
                before,
                failed,
                skipped,
            } => json!({"at": at, "kind": "applied", "plan": plan_id,
                "ran": ran, "before": before, "failed": failed, "skipped": skipped}),
            Event::Invited {
                email,
                roles,
                api_only,
            } => {
                json!({"at": at, "kind": "invited", "email": email, "roles": roles, "api_only": api_only})
            }
            Event::DryRun { steps } => json!({"at": at, "kind": "dry_run", "steps": steps}),
            Event::TombstoneSaved { id } => json!({"at": at, "kind": "tombstone", "id": id}),
            Event::Cost { app, line } => {
                json!({"at": at, "kind": "cost", "app": app, "text": line})
            }
            Event::Said(text) => json!({"at": at, "kind": "said", "text": text}),
            Event::Note(text) => json!({"at": at, "kind": "note", "text": text}),
        };
        self.events.lock().expect("events lock").push(value);
    }
}

/// Approved plans whose apply never finished (the process died): queued again at start
/// (with the shared queue, by the process that becomes the scheduler).
pub async fn resume_approved(shared: &Shared) -> Result<usize> {
    let mut n = 0;
    for held in shared.store.held_plans(Some("approved")).await? {
        if shared.workers.contains_key(&held.instance) {
            let by = held.decided_by.clone().unwrap_or_else(|| "unknown".into());
            let job = Job::ApplyApproved {
                plan_id: held.plan_id.clone(),
                by,
            };
            shared.submit(&held.instance, job).await?;
            n += 1;
        }
    }
    Ok(n)
}

impl Shared {
    /// Queues `job` for `instance`: in this process, or in the queue every process on the
    /// shared database takes from. An apply or restore is keyed by what it applies, so
    /// queueing it again while it waits does not run it twice.
    pub async fn submit(&self, instance: &str, job: Job) -> Result<()> {
        let worker = self
            .workers
            .get(instance)
            .with_context(|| format!("no instance {instance:?} in this service"))?;
        let Some(queue) = self.queue.shared() else {
            worker.submit_here(job);
            return Ok(());
        };
        let key = match &job {
            Job::Reconcile { .. } => None,
            Job::ApplyApproved { plan_id, .. } => Some(format!("apply:{plan_id}")),
            Job::Restore { request, .. } => Some(format!("restore:{request}")),
            Job::ReviewSnapshot { review } => Some(format!("review:{review}")),
        };
        let how = crate::jobs::Submit {
            // Not added where a job for it is queued or running: taking over the key of a
            // running job would stop it being retried if its process died.
            key: key.map(|k| (k, graphile_worker::JobKeyMode::UnsafeDedupe)),
            run_at: None,
        };
        queue.add(instance, job, how).await
    }

    /// Every instance's worker status, by instance name.
    pub async fn statuses(&self) -> std::collections::BTreeMap<String, WorkerStatus> {
        if self.queue.shared().is_some() {
            return crate::jobs::statuses(self, None).await;
        }
        self.workers
            .iter()
            .map(|(name, w)| (name.clone(), w.status()))
            .collect()
    }

    /// What an instance's worker is doing and did; with the shared queue, across processes.
    pub async fn worker_status(&self, instance: &str) -> WorkerStatus {
        if self.queue.shared().is_some() {
            let mut one = crate::jobs::statuses(self, Some(instance)).await;
            return one.remove(instance).unwrap_or_default();
        }
        self.workers
            .get(instance)
            .map(Worker::status)
            .unwrap_or_default()
    }
}
