//! Starting and stopping a Marketo sandbox, and its routes.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use roster_domain::marketo_time::{format_dashed, quota_day};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::body::MAX_BODY_BYTES;
use super::config::MarketoConfig;
use super::error::{ApiError, SandboxError};
use super::limits::Limiter;
use super::store::{ServiceCredentials, Store};
use super::{api_guard, identity, invites, seed, users};
use crate::clock::Clock;

/// Shared state of a running sandbox.
pub struct App {
    pub store: Store,
    pub clock: Clock,
    pub limiter: Limiter,
    pub config: MarketoConfig,
    pub base_url: String,
    pub subscription_id: i64,
}

/// A sandbox serving in the background. Dropping it does not stop it; call [`RunningSandbox::shutdown`].
pub struct RunningSandbox {
    base_url: String,
    credentials: ServiceCredentials,
    app: Arc<App>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    fresh: bool,
}

impl RunningSandbox {
    /// `http://127.0.0.1:PORT`, the instance URL clients are configured with.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn credentials(&self) -> &ServiceCredentials {
        &self.credentials
    }

    /// Whether this start created and seeded the database.
    pub fn was_seeded(&self) -> bool {
        self.fresh
    }

    pub fn database_path(&self) -> &std::path::Path {
        &self.app.store.path
    }

    /// Stops accepting connections, lets in-flight calls finish, saves the quota count.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
        persist_quota(&self.app).await;
        self.app.store.close().await;
    }
}

const META_CLOCK: &str = "clock_offset_ms";
const META_QUOTA: &str = "quota";

async fn persist_quota(app: &App) {
    let (day, used) = app.limiter.quota();
    if let Err(err) = app
        .store
        .set_meta(META_QUOTA, &format!("{day} {used}"))
        .await
    {
        tracing::warn!(error = %err, "could not save the quota count");
    }
}

/// Opens (seeding if new) the state in `config.data_dir`, binds `config.listen` and serves.
pub async fn start(config: MarketoConfig) -> Result<RunningSandbox, SandboxError> {
    let (store, fresh) = Store::open(&config.data_dir).await?;
    let offset: i64 = store
        .meta(META_CLOCK)
        .await?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let clock = Clock::with_offset_ms(offset);
    let credentials = if fresh {
        seed::seed(
            &store,
            config.client_id.as_deref(),
            config.client_secret.as_ref(),
            clock.now_ms(),
        )
        .await?
    } else {
        ensure_credentials(&store, &config, clock.now_ms()).await?
    };
    let today = quota_day(clock.now());
    let used = match store
        .meta(META_QUOTA)
        .await?
        .as_deref()
        .and_then(|v| v.split_once(' '))
    {
        Some((day, used)) if day == today.to_string() => used.parse().unwrap_or(0),
        _ => 0,
    };
    let (listener, base_url) = crate::listen(config.listen).await?;
    let app = Arc::new(App {
        store,
        clock,
        limiter: Limiter::new(config.limits.clone(), today, used),
        config,
        base_url: base_url.clone(),
        subscription_id: seed::SUBSCRIPTION_ID,
    });
    let router = router(app.clone());
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let flusher = app.clone();
    let link = app.config.adobe.clone().filter(|_| app.config.ims);
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        let mut sync_tick = tokio::time::interval(
            link.as_ref()
                .map_or(Duration::from_secs(3600), super::ims_sync::poll_interval),
        );
        let mut sync = super::ims_sync::SyncState::default();
        let serve = roster_http::serve(listener, router, async {
            let _ = stop_rx.await;
        });
        let mut serve = std::pin::pin!(serve);
        loop {
            tokio::select! {
                () = &mut serve => break,
                _ = tick.tick() => persist_quota(&flusher).await,
                _ = sync_tick.tick(), if link.is_some() => {
                    let link = link.as_ref().expect("checked by the guard");
                    if let Err(e) = super::ims_sync::sync_once(&flusher, link, &mut sync).await {
                        tracing::warn!(error = %e, "could not sync users from the Adobe Admin Console");
                    }
                }
            }
        }
    });
    tracing::info!(%base_url, data = %app.store.path.display(), "marketo sandbox listening");
    Ok(RunningSandbox {
        base_url,
        credentials,
        app,
        stop: Some(stop_tx),
        task,
        fresh,
    })
}

/// On restart: makes sure the credentials given on the command line work, or reports the
/// first existing service's credentials.
async fn ensure_credentials(
    store: &Store,
    config: &MarketoConfig,
    now: i64,
) -> Result<ServiceCredentials, SandboxError> {
    let services = store.services().await?;
    if let Some(client_id) = &config.client_id {
        if let Some(existing) = services.iter().find(|s| &s.client_id == client_id) {
            if let Some(secret) = &config.client_secret
                && secret != &existing.client_secret
            {
                store.set_service_secret(client_id, secret).await?;
                return Ok(ServiceCredentials {
                    client_secret: secret.clone(),
                    ..existing.clone()
                });
            }
            return Ok(existing.clone());
        }
        let owner = store.user(seed::SEED_API_USER).await?.filter(|u| u.api_only).ok_or_else(|| {
            SandboxError::Invalid(format!(
                "client id {client_id} is new and the seeded API user {} is gone; create a service with `roster sandbox marketo admin create-service`",
                seed::SEED_API_USER
            ))
        })?;
        let secret = config
            .client_secret
            .clone()
            .unwrap_or_else(super::admin::generate_secret);
        store
            .insert_service(seed::SEED_SERVICE, "", client_id, &secret, owner.id, now)
            .await?;
        return Ok(ServiceCredentials {
            service: seed::SEED_SERVICE.into(),
            client_id: client_id.clone(),
            client_secret: secret,
            api_user: owner.email,
        });
    }
    services.into_iter().next().ok_or_else(|| {
        SandboxError::Invalid("the sandbox has no custom service; create one with `roster sandbox marketo admin create-service`".into())
    })
}

fn router(app: Arc<App>) -> Router {
    const USERS: &str = "/userservice/management/v1/users";
    let api = Router::new()
        .route(&format!("{USERS}/allusers.json"), get(users::list_users))
        .route(&format!("{USERS}/roles.json"), get(users::list_roles))
        .route(
            &format!("{USERS}/workspaces.json"),
            get(users::list_workspaces),
        )
        .route(&format!("{USERS}/invite.json"), post(users::invite))
        .route(
            &format!("{USERS}/{{userid}}/user.json"),
            get(users::get_user),
        )
        .route(
            &format!("{USERS}/{{userid}}/invite.json"),
            get(users::get_invite),
        )
        .route(
            &format!("{USERS}/{{userid}}/roles.json"),
            get(users::get_user_roles),
        )
        .route(
            &format!("{USERS}/{{userid}}/update.json"),
            post(users::update),
        )
        .route(
            &format!("{USERS}/{{userid}}/delete.json"),
            post(users::delete_user),
        )
        .route(
            &format!("{USERS}/{{userid}}/invite/delete.json"),
            post(users::delete_invite),
        )
        .route(
            &format!("{USERS}/{{userid}}/roles/create.json"),
            post(users::add_roles),
        )
        .route(
            &format!("{USERS}/{{userid}}/roles/delete.json"),
            post(users::remove_roles),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            api_guard::guard,
        ));
    Router::new()
        .route(
            "/identity/oauth/token",
            get(identity::token).post(identity::token),
        )
        .route(
            "/sandbox/health",
            get(|| async { axum::Json(json!({"status": "ok", "service": "marketo"})) }),
        )
        .route("/sandbox/mailbox", get(invites::mailbox))
        .route(
            "/sandbox/accept/{token}",
            get(invites::show).post(invites::accept),
        )
        .route("/sandbox/clock", get(clock_now).post(clock_advance))
        .route("/sandbox/stats", get(stats))
        .merge(api)
        .fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            ApiError::new(611, "System error").into_response()
        }))
        .with_state(app)
}

async fn unknown_route(uri: Uri) -> Response {
    ApiError::not_found(format!("Requested resource not found: {}", uri.path())).into_response()
}

async fn wrong_method(uri: Uri) -> Response {
    ApiError::not_found(format!(
        "Requested resource not found: {} does not accept this HTTP method",
        uri.path()
    ))
    .with_status(StatusCode::METHOD_NOT_ALLOWED)
    .into_response()
}

async fn stats(State(app): State<Arc<App>>) -> Response {
    axum::Json(app.limiter.snapshot()).into_response()
}

fn clock_json(app: &App) -> serde_json::Value {
    json!({ "now": format_dashed(app.clock.now()), "offsetSeconds": app.clock.offset_ms() / 1000 })
}

async fn clock_now(State(app): State<Arc<App>>) -> Response {
    axum::Json(clock_json(&app)).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Advance {
    advance_seconds: i64,
}

/// `POST /sandbox/clock {"advanceSeconds": N}`: moves the sandbox's clock forward (never back).
async fn clock_advance(
    State(app): State<Arc<App>>,
    body: Result<axum::Json<Advance>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(axum::Json(advance)) = body else {
        return ApiError::invalid("Invalid data: send {\"advanceSeconds\": N} with N >= 0")
            .into_response();
    };
    if advance.advance_seconds < 0 || advance.advance_seconds > 10 * 365 * 86_400 {
        return ApiError::invalid("Invalid data: advanceSeconds must be between 0 and ten years")
            .into_response();
    }
    let offset = app.clock.advance_ms(advance.advance_seconds * 1000);
    if let Err(err) = app.store.set_meta(META_CLOCK, &offset.to_string()).await {
        return ApiError::from(err).into_response();
    }
    axum::Json(clock_json(&app)).into_response()
}
