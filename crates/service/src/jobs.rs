//! Runs as jobs of a PostgreSQL job queue, so that several `roster serve` processes on one
//! database share the work (active/active) instead of one working while the rest stand by.
//!
//! The queue is graphile_worker's (a maintained Rust port of Graphile Worker, here on
//! sqlx like the state): jobs claimed with `SKIP LOCKED`, woken by `LISTEN/NOTIFY`, and three
//! things Roster needs and would otherwise build itself:
//! - a named queue runs its jobs one at a time across every process: each instance has one,
//!   so runs of one instance never overlap while different instances run in parallel
//!   wherever there is a free slot;
//! - job keys: one scheduled run per instance waiting at most, and SCIM changes that join
//!   the run already waiting instead of each starting one (the debounce);
//! - dead-worker recovery: each process beats a heartbeat; a sweeper hands the jobs of a
//!   process whose heartbeat stopped to the others (`LEASE` below).
//!
//! On top of that, a run holds its instance's session lock in PostgreSQL while it works (a
//! process whose heartbeat merely stalled cannot run beside the one that took its job
//! over), and the apply journal makes a resumed run skip the steps already done: each
//! plan step is executed once.
//!
//! One process, the holder of the scheduler lock, queues the scheduled runs; if it dies,
//! another takes the lock within `SCHEDULER_TICK`.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result};
use graphile_worker::{
    IntoTaskHandlerResult, JobKeyMode, JobSpec, TaskHandler, WorkerContext, WorkerOptions,
    WorkerUtils,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::Shared;
use crate::workers::{Job, WorkerStatus};

/// How long a process's jobs stay its own after its last heartbeat, and how soon after
/// that another process runs them: the time to resume after a process dies is at most
/// `LEASE + SWEEP` (plus the run's own start).
pub const LEASE: Duration = Duration::from_secs(5);
const HEARTBEAT: Duration = Duration::from_secs(1);
const SWEEP: Duration = Duration::from_secs(1);
/// How often an idle process looks for jobs due later (new jobs wake it at once).
const POLL: Duration = Duration::from_millis(500);
/// How often the scheduler checks what is due, and others ask for its lock.
pub const SCHEDULER_TICK: Duration = Duration::from_millis(500);
/// Attempts of a job whose handler failed (not a run that failed: that is recorded and
/// done; this is a process that could not run it, e.g. its database connection failed).
const MAX_ATTEMPTS: i16 = 5;

/// The graphile_worker queue of an instance.
fn queue_name(instance: &str) -> String {
    format!("roster:{instance}")
}

/// The job keys of scheduled runs start with this.
const SCHEDULED: &str = "schedule:";

/// The job keys of an instance's scheduled runs start with this; each ends with the time
/// it is due. A key per run, not one per instance: graphile_worker gives up retrying a
/// running job whose key a new job takes over, and a scheduled run cut short by a dead
/// process must be run again.
fn schedule_prefix(instance: &str) -> String {
    format!("{SCHEDULED}{instance}:")
}

/// A run of one instance, as queued.
#[derive(Debug, Serialize, Deserialize)]
pub struct InstanceRun {
    instance: String,
    job: Job,
}

/// The service the queue's handler runs jobs for; set once the service is built.
#[derive(Clone, Default)]
struct Handle(Arc<OnceLock<Arc<Shared>>>);

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handle")
    }
}

impl TaskHandler for InstanceRun {
    const IDENTIFIER: &'static str = "roster_instance_run";

    async fn run(self, ctx: WorkerContext) -> impl IntoTaskHandlerResult {
        run_queued(service(&ctx)?, self).await
    }
}

/// The service a job runs for (the queue may hand out a job before it is built).
fn service(ctx: &WorkerContext) -> Result<Arc<Shared>, String> {
    ctx.get_ext::<Handle>()
        .and_then(|h| h.0.get())
        .cloned()
        .ok_or_else(|| "this roster serve is still starting".to_string())
}

async fn run_queued(shared: Arc<Shared>, queued: InstanceRun) -> Result<(), String> {
    let Some(worker) = shared.workers.get(&queued.instance) else {
        let e = format!(
            "this roster serve's configuration has no instance {:?}; every roster serve on one database needs the same configuration",
            queued.instance
        );
        tracing::error!("{e}");
        return Err(e);
    };
    let holder =
        roster_engine::lock::holder_name(&format!("roster serve run of {}", queued.instance));
    tracing::debug!(instance = %queued.instance, "job taken; waiting for the instance's lock");
    let lock = shared
        .store
        .lock_instance(&holder, &queued.instance)
        .await
        .map_err(|e| format!("cannot take the instance's lock: {e}"))?;
    // Holding the lock, any run of this instance still marked running is an orphan: its
    // process died (or lost its lease) mid-run.
    match shared
        .store
        .interrupt_running_runs(Some(&queued.instance), OffsetDateTime::now_utc())
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            instance = %queued.instance,
            "{n} run(s) of this instance were cut short by a process that stopped; this run resumes from the journal"
        ),
        Err(e) => return Err(format!("cannot record interrupted runs: {e}")),
    }
    let outcome = crate::workers::run_job(&shared, worker, queued.job).await;
    drop(lock);
    if outcome == "stopped"
        && let Some(queue) = shared.queue.shared()
    {
        // This process is stopping in the middle of an apply: another one carries on now
        // (from the journal), not at the next scheduled run.
        let how = Submit {
            key: Some((
                format!("resume:{}", queued.instance),
                JobKeyMode::UnsafeDedupe,
            )),
            run_at: None,
        };
        let job = Job::Reconcile {
            trigger: "resume after a stop".into(),
            targeted: false,
        };
        if let Err(e) = queue.add(&queued.instance, job, how).await {
            tracing::warn!(instance = %queued.instance, "{e:#}");
        }
    }
    Ok(())
}

/// A webhook delivery, as queued: its record in the state says what and where.
#[derive(Debug, Serialize, Deserialize)]
pub struct WebhookDelivery {
    id: i64,
}

impl TaskHandler for WebhookDelivery {
    const IDENTIFIER: &'static str = "roster_webhook_delivery";

    async fn run(self, ctx: WorkerContext) -> impl IntoTaskHandlerResult {
        service(&ctx)?.notifier.deliver_queued(self.id).await
    }
}

/// The job queue as the service sees it: where submitted runs go.
#[derive(Clone)]
pub struct SharedQueue {
    utils: WorkerUtils,
}

/// What a submitted run is keyed and timed by.
pub struct Submit {
    pub key: Option<(String, JobKeyMode)>,
    pub run_at: Option<OffsetDateTime>,
}

fn chrono_of(at: OffsetDateTime) -> chrono::DateTime<chrono::Utc> {
    let ms = (at.unix_timestamp_nanos() / 1_000_000) as i64;
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_else(chrono::Utc::now)
}

impl SharedQueue {
    /// Queues webhook delivery `id`, unless a job for it is queued or running already.
    pub async fn add_delivery(&self, id: i64) -> Result<()> {
        let spec = JobSpec::builder()
            .job_key(format!("delivery:{id}"))
            .job_key_mode(JobKeyMode::UnsafeDedupe)
            .max_attempts(MAX_ATTEMPTS)
            .build();
        self.utils
            .add_job(WebhookDelivery { id }, spec)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("queueing webhook delivery {id} in the job queue"))?;
        Ok(())
    }

    /// Queues `job` for `instance`.
    pub async fn add(&self, instance: &str, job: Job, how: Submit) -> Result<()> {
        let mut spec = JobSpec::builder()
            .queue_name(queue_name(instance))
            .max_attempts(MAX_ATTEMPTS);
        if let Some((key, mode)) = how.key {
            spec = spec.job_key(key).job_key_mode(mode);
        }
        if let Some(at) = how.run_at {
            spec = spec.run_at(chrono_of(at));
        }
        self.utils
            .add_job(
                InstanceRun {
                    instance: instance.to_string(),
                    job,
                },
                spec.build(),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("queueing a run of {instance} in the job queue"))?;
        Ok(())
    }
}

/// The job queue's worker in this process, before the service it runs jobs for exists.
pub struct Starting {
    worker: graphile_worker::Worker,
    handle: Handle,
}

/// Connects to the job queue in the state's database (making its tables the first time,
/// one process at a time) and builds this process's worker.
pub async fn prepare(
    store: &roster_store::StateStore,
    url: &str,
    parallel_runs: usize,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(Starting, SharedQueue)> {
    let handle = Handle::default();
    // graphile_worker migrates its schema at init; processes starting together take turns.
    let turn = store
        .lock_job_queue_setup(&roster_engine::lock::holder_name("roster serve"))
        .await?;
    let tls = roster_store::PgTls::of(url)?;
    let worker = WorkerOptions::default()
        .pg_pool(queue_database(url, &tls).await?)
        .schema(roster_store::JOB_SCHEMA)
        .concurrency(parallel_runs.max(1))
        .poll_interval(POLL)
        .listen_os_shutdown_signals(false)
        .shutdown_signal(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .heartbeat_interval(HEARTBEAT)
        .sweep_interval(SWEEP)
        .sweep_threshold(LEASE)
        .recovery_delay(Duration::ZERO)
        .add_extension(handle.clone())
        .define_job::<InstanceRun>()
        .define_job::<WebhookDelivery>()
        .init()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "{e}; check that the server runs and that the user may connect{}",
                tls.hint()
            )
        })
        .with_context(|| {
            format!(
                "starting the job queue in {}",
                roster_store::redact_url(url)
            )
        })?;
    drop(turn);
    let utils = worker.create_utils();
    Ok((Starting { worker, handle }, SharedQueue { utils }))
}

/// The job queue's connections to the state's database: sqlx, as the state's own, with the
/// same TLS rule (`roster_store::PgTls`: checked TLS when the URL asks for it, with its
/// `sslrootcert` and client certificate, else plaintext). Four connections for jobs and
/// one more it opens to listen for new ones.
async fn queue_database(url: &str, tls: &roster_store::PgTls) -> Result<sqlx::PgPool> {
    use std::str::FromStr;
    let shown = roster_store::redact_url(url);
    let options = sqlx::postgres::PgConnectOptions::from_str(&tls.sqlx_url(url))
        .with_context(|| format!("reading {shown} for the job queue"))?;
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "{e}; check that the server runs and that the user may connect{}",
                tls.hint()
            )
        })
        .with_context(|| format!("connecting the job queue to {shown}"))
}

/// Makes (or brings up to date) the job queue's tables in the state's database, as
/// `roster serve migrate` does before the first process starts.
pub async fn set_up(store: &roster_store::StateStore, url: &str) -> Result<()> {
    let (_, never) = watch::channel(false);
    prepare(store, url, 1, never).await.map(drop)
}

impl Starting {
    /// Starts taking jobs for `shared`; returns when the service shuts down.
    pub async fn run(self, shared: Arc<Shared>) {
        let _ = self.handle.0.set(shared);
        if let Err(e) = self.worker.run().await {
            tracing::error!("the job queue's worker stopped: {e}");
        }
    }
}

/// What `/api/v1/instances` shows of the instances (or of one) whose runs are queued in
/// PostgreSQL: read from the state, as any process may have run or queued them; two
/// statements for all the instances.
pub async fn statuses(shared: &Shared, only: Option<&str>) -> BTreeMap<String, WorkerStatus> {
    let mut all: BTreeMap<String, WorkerStatus> = shared
        .workers
        .keys()
        .filter(|name| only.is_none_or(|o| o == name.as_str()))
        .map(|name| (name.clone(), WorkerStatus::default()))
        .collect();
    let mut runs: BTreeMap<String, Vec<roster_store::Run>> = BTreeMap::new();
    for r in shared.store.recent_runs(only, 2).await.unwrap_or_default() {
        runs.entry(r.instance.clone()).or_default().push(r);
    }
    let queue = only.map(queue_name);
    let mut queued = shared
        .store
        .queued_jobs(queue.as_deref(), SCHEDULED)
        .await
        .unwrap_or_default();
    for (name, s) in &mut all {
        // Newest first: the run in progress, if any, then the last one.
        let mut newest = runs.remove(name).unwrap_or_default().into_iter().peekable();
        if let Some(r) = newest.next_if(|r| r.outcome == "running") {
            s.running = Some(r.trigger);
        }
        if let Some(r) = newest.next() {
            s.last_run_id = Some(r.id);
            s.last_outcome = Some(r.outcome);
            s.last_finished_at = r.finished_at;
        }
        if let Some(q) = queued.remove(&queue_name(name)) {
            s.queued = q.waiting as usize;
            s.next_run_at = q.due;
        }
    }
    all
}

/// Queues each instance's scheduled runs while this process holds the scheduler lock;
/// asks for the lock while another holds it. Returns at shutdown.
pub async fn schedule(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let me = roster_engine::lock::holder_name("roster serve scheduler");
    let mut lock = None;
    let mut due: BTreeMap<String, OffsetDateTime> = BTreeMap::new();
    loop {
        match lock.as_mut() {
            None => match shared.store.try_scheduler_lock(&me).await {
                Ok(Some(l)) => {
                    lock = Some(l);
                    due = take_over(&shared).await;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!("cannot ask for the scheduler lock: {e}"),
            },
            Some(l) => {
                if !l.held().await {
                    tracing::warn!(
                        "lost the scheduler lock (its database session ended); another process schedules now"
                    );
                    lock = None;
                    continue;
                }
                queue_due(&shared, &mut due).await;
            }
        }
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            () = tokio::time::sleep(SCHEDULER_TICK) => {}
        }
    }
}

/// Queues the next scheduled run of each instance that has none waiting. `due` holds when
/// each instance's next one is due: an interval after the one waiting (or, with none
/// known, after the one queued last).
async fn queue_due(shared: &Arc<Shared>, due: &mut BTreeMap<String, OffsetDateTime>) {
    let waiting = match shared.store.waiting_jobs(SCHEDULED).await {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!("cannot read the job queue: {e}");
            return;
        }
    };
    let now = OffsetDateTime::now_utc();
    for (name, at) in due.iter_mut() {
        let worker = &shared.workers[name];
        let job = match crate::roster_watch::check(shared, worker).await {
            Some(job) => Some(job),
            None => crate::magento_changes::check(shared, worker).await,
        };
        if let Some(job) = job
            && let Err(e) = shared.submit(name, job).await
        {
            tracing::warn!(instance = %name, "cannot queue the run a roster edit asks for: {e:#}");
        }
        let interval = crate::budget::full_interval(shared, &worker.instance).await;
        let prefix = schedule_prefix(name);
        if let Some((_, run_at)) = waiting.iter().find(|(k, _)| k.starts_with(&prefix)) {
            *at = *run_at + interval;
            continue;
        }
        if queue_scheduled(shared, name, *at).await {
            *at = (*at).max(now) + interval;
        }
    }
}

/// Becoming the scheduler: each instance's next run is due an interval after its last one
/// started (at once if that is past or it never ran); approved plans whose apply did not
/// finish and webhook deliveries left pending are queued again (their job keys make that a
/// no-op where a job for them is queued or running).
async fn take_over(shared: &Arc<Shared>) -> BTreeMap<String, OffsetDateTime> {
    tracing::info!("this process schedules the state's runs");
    let now = OffsetDateTime::now_utc();
    let mut due = BTreeMap::new();
    for (name, w) in &shared.workers {
        let last = shared
            .store
            .runs(Some(name), 1)
            .await
            .ok()
            .and_then(|r| r.into_iter().next());
        let at = last
            .map(|r| r.started_at + w.instance.interval)
            .filter(|at| *at > now)
            .unwrap_or(now);
        due.insert(name.clone(), at);
    }
    shared.notifier.resume_pending().await;
    match crate::workers::resume_approved(shared).await {
        Ok(0) => {}
        Ok(n) => tracing::info!("{n} approved plan(s) whose apply did not finish are queued again"),
        Err(e) => tracing::warn!("cannot look for approved plans to resume: {e:#}"),
    }
    queue_due(shared, &mut due).await;
    due
}

/// Queues `instance`'s scheduled run for `at`; false (logged) if the queue refused it.
async fn queue_scheduled(shared: &Shared, instance: &str, at: OffsetDateTime) -> bool {
    let Some(queue) = shared.queue.shared() else {
        return false;
    };
    let key = format!(
        "{}{}",
        schedule_prefix(instance),
        at.unix_timestamp_nanos() / 1_000_000
    );
    let how = Submit {
        key: Some((key, JobKeyMode::PreserveRunAt)),
        run_at: Some(at),
    };
    let job = Job::Reconcile {
        trigger: "schedule".into(),
        targeted: false,
    };
    match queue.add(instance, job, how).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(instance, "cannot queue the scheduled run: {e:#}");
            false
        }
    }
}
