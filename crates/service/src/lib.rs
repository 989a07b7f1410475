//! `roster serve`: Roster as a long-running service. One worker per app instance
//! reconciles it on a schedule and on demand, applies what policy allows unattended and
//! holds destructive steps for approval; a JSON API (bearer tokens with roles), webhooks,
//! health checks and Prometheus metrics let people and machines follow and steer it.

pub mod access;
pub mod admin;
pub mod api;
pub mod budget;
pub mod config;
pub mod console;
pub mod jobs;
pub mod magento_changes;
pub mod metrics;
pub mod reports;
pub mod request_log;
pub mod reviews;
pub mod roster_watch;
pub mod scim;
pub mod slack;
pub mod tokens;
pub mod views;
pub mod webhooks;
pub mod workers;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result};
use roster_store::StateStore;
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::config::ServeConfig;
use crate::metrics::Metrics;
use crate::webhooks::Notifier;
use crate::workers::Worker;

/// What every part of the service shares.
pub struct Shared {
    pub config: ServeConfig,
    pub state_dir: PathBuf,
    pub store: StateStore,
    pub metrics: Arc<Metrics>,
    pub notifier: Arc<Notifier>,
    /// Set at shutdown: an apply in progress stops before its next step.
    pub stop: AtomicBool,
    pub workers: BTreeMap<String, Worker>,
    pub started_at: OffsetDateTime,
    /// Failed console sign-ins per address.
    pub console_throttle: console::Throttle,
    /// The instances' access inventories, as last read.
    pub inventories: access::InventoryCache,
    /// Each campaign's items as of its revision, for the pages that show all of them.
    pub review_items: reviews::ItemCache,
    /// Where runs are queued.
    pub queue: Queue,
    /// Runs this process may work on at once (`parallel_runs`), for the in-process
    /// workers; the shared queue takes no more jobs than that instead.
    pub run_slots: tokio::sync::Semaphore,
    /// The newest audit-log row a `log.head` webhook was sent for.
    pub log_head_sent: std::sync::atomic::AtomicI64,
}

/// Where runs are queued: in this process (the SQLite state: one service), or in the
/// PostgreSQL job queue every `roster serve` on the database takes from.
pub enum Queue {
    InProcess,
    Shared(jobs::SharedQueue),
}

impl Queue {
    pub fn shared(&self) -> Option<&jobs::SharedQueue> {
        match self {
            Queue::InProcess => None,
            Queue::Shared(q) => Some(q),
        }
    }
}

impl Shared {
    /// The pending-approvals gauge, read from the state (other processes may decide too).
    pub async fn refresh_pending_gauge(&self) {
        if let Ok(pending) = self.store.held_plans(Some("pending")).await {
            self.metrics
                .set("roster_pending_approvals", &[], pending.len() as f64);
            // Per instance too, zeros included, so an alert can name the instance.
            for name in self.workers.keys() {
                let n = pending.iter().filter(|p| &p.instance == name).count();
                self.metrics
                    .set("roster_pending_approvals", &[("instance", name)], n as f64);
            }
        }
    }

    /// Applies `[service.retention]` once, logging what it removed.
    pub async fn prune(&self) {
        let cutoffs = self.config.retention.at(OffsetDateTime::now_utc());
        match self.store.prune(&cutoffs).await {
            Ok(p) if p == roster_store::Pruned::default() => {}
            Ok(p) => tracing::info!(
                runs = p.runs,
                run_events = p.run_events,
                sessions = p.sessions,
                deliveries = p.deliveries,
                access_history = p.access_history,
                "pruned what [service.retention] no longer keeps"
            ),
            Err(e) => tracing::warn!("cannot prune old records: {e}"),
        }
    }

    /// After a run and every `log_head_interval`: the log's newest row, signed, as a gauge
    /// and (when it moved on) a `log.head` webhook, so that a receiver outside this host
    /// keeps heads that `roster log verify --head` checks a cut tail against.
    pub async fn announce_log_head(&self) {
        let head = match self.store.log_head(OffsetDateTime::now_utc()).await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!("cannot sign the audit log's head: {e}");
                return;
            }
        };
        self.metrics
            .set("roster_audit_log_rows", &[], head.id as f64);
        let before = self
            .log_head_sent
            .fetch_max(head.id, std::sync::atomic::Ordering::SeqCst);
        if head.id > before {
            self.notifier.notify(
                "log.head",
                None,
                format!(
                    "the audit log's newest line is {} (hash {})",
                    head.id,
                    roster_engine::planning::short(&head.hash)
                ),
                serde_json::to_value(&head).unwrap_or_default(),
            );
        }
    }
}

/// A running service: its address, and how to stop it.
pub struct Running {
    pub addr: std::net::SocketAddr,
    /// `https` when the service serves TLS itself, else `http`.
    pub scheme: &'static str,
    pub shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    tasks: tokio::task::JoinSet<()>,
}

impl Running {
    /// Stops taking work, lets each worker finish the step in progress (an apply stops
    /// between steps, the journal consistent), waits for webhook deliveries in flight (a
    /// few seconds at most), and closes the listener.
    pub async fn shutdown(mut self) {
        self.shared
            .stop
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
        self.shared.notifier.drain(Duration::from_secs(5)).await;
    }
}

/// Opens the state, starts one worker per instance and the HTTP listener.
pub async fn start(config: ServeConfig, state_dir: PathBuf) -> Result<Running> {
    // The process's one store for this state (the one `roster serve` took its lock through,
    // and that runs share), not a second pool beside it.
    let store = roster_engine::connect::open_state(Some(&state_dir), config.database.as_deref())
        .await
        .with_context(|| match &config.database {
            Some(url) => format!("opening the state in {}", roster_store::redact_url(url)),
            None => format!("opening the state in {}", state_dir.display()),
        })?;
    let now = OffsetDateTime::now_utc();
    let (shutdown, watch_rx) = watch::channel(false);
    // On PostgreSQL, runs are jobs in the database's queue, shared with every other
    // `roster serve` there; a run cut short is found by whoever runs that instance next.
    let (queue, starting) = match (&config.database, store.backend()) {
        (Some(url), roster_store::Backend::Postgres) => {
            let (starting, queue) = jobs::prepare(
                &store,
                url,
                config.parallel_runs.min(config.instances.len()),
                watch_rx.clone(),
            )
            .await?;
            (Queue::Shared(queue), Some(starting))
        }
        _ => {
            let interrupted = store.interrupt_running_runs(None, now).await?;
            if interrupted > 0 {
                tracing::warn!(
                    "{interrupted} run(s) were in progress when the service last stopped; the next run of each instance resumes from the journal"
                );
            }
            (Queue::InProcess, None)
        }
    };
    let metrics = Arc::new(Metrics::default());
    metrics.set(
        "roster_build_info",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            // Packagers set ROSTER_COMMIT when they build.
            ("commit", option_env!("ROSTER_COMMIT").unwrap_or("unknown")),
        ],
        1.0,
    );
    let notifier = Arc::new(
        Notifier::new(
            config.webhooks.clone(),
            store.clone(),
            Arc::clone(&metrics),
            queue.shared().cloned(),
        )
        .with_links(config.public_url.clone(), config.slack.is_some()),
    );
    if queue.shared().is_none() {
        // On the shared queue, the scheduler does this (other processes may be sending).
        notifier.resume_pending().await;
    }
    let mut workers = BTreeMap::new();
    let mut queues = Vec::new();
    for inst in &config.instances {
        let (worker, rx) = Worker::new(inst.clone());
        workers.insert(inst.name.clone(), worker);
        queues.push((inst.name.clone(), rx));
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}; is another `roster serve` running? Pass --listen ADDRESS",
                config.listen
            )
        })?;
    let addr = listener.local_addr()?;
    let tls = match &config.tls {
        Some((cert, key)) => Some(roster_http::Tls::load(cert, key).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let parallel_runs = config.parallel_runs;
    let shared = Arc::new(Shared {
        config,
        state_dir,
        store,
        metrics,
        notifier,
        stop: AtomicBool::new(false),
        workers,
        started_at: now,
        console_throttle: console::Throttle::default(),
        inventories: access::InventoryCache::default(),
        review_items: reviews::ItemCache::default(),
        queue,
        run_slots: tokio::sync::Semaphore::new(parallel_runs),
        log_head_sent: std::sync::atomic::AtomicI64::new(0),
    });
    shared.refresh_pending_gauge().await;
    let mut tasks = tokio::task::JoinSet::new();
    match starting {
        Some(starting) => {
            // The scheduler (one process at a time) also queues approved applies again.
            tasks.spawn(starting.run(Arc::clone(&shared)));
            tasks.spawn(jobs::schedule(Arc::clone(&shared), watch_rx.clone()));
        }
        None => {
            let resumed = workers::resume_approved(&shared).await?;
            if resumed > 0 {
                tracing::info!(
                    "{resumed} approved plan(s) whose apply did not finish are queued again"
                );
            }
            for (name, rx) in queues {
                tasks.spawn(workers::run_worker(
                    Arc::clone(&shared),
                    name,
                    rx,
                    watch_rx.clone(),
                ));
            }
        }
    }
    // Retention: what the service keeps for operators is pruned hourly (never the evidence).
    let pruning = Arc::clone(&shared);
    let mut stop_pruning = watch_rx.clone();
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop_pruning.changed() => break,
                _ = tick.tick() => pruning.prune().await,
            }
        }
    });
    // Access reviews' reminders and due dates; held plans' expiry.
    let due = Arc::clone(&shared);
    let mut stop_reviews = watch_rx.clone();
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop_reviews.changed() => break,
                _ = tick.tick() => {
                    let now = time::OffsetDateTime::now_utc();
                    if let Err(e) = reviews::check_due(&due, now).await {
                        tracing::warn!("cannot check the access reviews' due dates: {e:#}");
                    }
                    if let Err(e) = api::expire_plans(&due, now).await {
                        tracing::warn!("cannot expire held plans: {e:#}");
                    }
                }
            }
        }
    });
    // The log's signed head, published on a clock as well as after runs.
    let every = shared.config.log_head_interval;
    let heads = Arc::clone(&shared);
    let mut stop_heads = watch_rx.clone();
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop_heads.changed() => break,
                _ = tick.tick() => heads.announce_log_head().await,
            }
        }
    });
    let app = api::router(Arc::clone(&shared));
    let mut stop_http = watch_rx.clone();
    if let Some(tls) = tls.clone() {
        // SIGHUP: the certificate and key are read again (a renewal needs no restart). The
        // handler is installed here, before the service says it listens: a SIGHUP sent
        // right after must find it (by default the signal ends the process).
        let mut stop_reload = watch_rx.clone();
        let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
        tasks.spawn(async move {
            let Ok(mut hangups) = hangups else {
                return;
            };
            loop {
                tokio::select! {
                    _ = stop_reload.changed() => break,
                    _ = hangups.recv() => match tls.reload() {
                        Ok(()) => tracing::info!("SIGHUP: the TLS certificate and key were read again"),
                        Err(e) => tracing::error!("SIGHUP: kept the TLS certificate in use: {e}"),
                    },
                }
            }
        });
    }
    tasks.spawn(async move {
        roster_http::serve_with(
            listener,
            app,
            async move {
                let _ = stop_http.changed().await;
            },
            roster_http::HEADER_READ_TIMEOUT,
            tls,
        )
        .await;
    });
    tracing::info!(
        "roster serve listening on {scheme}://{addr} with {} instance(s)",
        shared.workers.len()
    );
    Ok(Running {
        addr,
        scheme,
        shared,
        shutdown,
        tasks,
    })
}
