//! Starting and stopping an Adobe sandbox, and its routes: IMS sign-in, the User Management
//! API under `/v2/usermanagement`, and the sandbox's own `/sandbox/*` helpers.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::action;
use super::config::{AdobeConfig, DEFAULT_ORG_ID};
use super::limits::{Family, Limiter};
use super::seed;
use super::store::Store;
use crate::clock::Clock;
use crate::marketo::SandboxError;

/// Shared state of a running sandbox.
pub struct App {
    pub store: Store,
    pub clock: Clock,
    pub limiter: Limiter,
    pub config: AdobeConfig,
    pub org_id: String,
}

/// The seeded API client's credentials.
#[derive(Clone)]
pub struct AdobeCredentials {
    pub org_id: String,
    pub client_id: String,
    pub client_secret: roster_domain::Secret,
}

/// A sandbox serving in the background. Call [`RunningAdobe::shutdown`] to stop it.
pub struct RunningAdobe {
    base_url: String,
    credentials: AdobeCredentials,
    app: Arc<App>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    fresh: bool,
}

impl RunningAdobe {
    /// `http://127.0.0.1:PORT`: IMS at `/ims/token/v2`, UMAPI at `/v2/usermanagement`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn credentials(&self) -> &AdobeCredentials {
        &self.credentials
    }

    pub fn was_seeded(&self) -> bool {
        self.fresh
    }

    pub fn database_path(&self) -> &std::path::Path {
        &self.app.store.path
    }

    pub fn stats(&self) -> super::limits::StatsSnapshot {
        self.app.limiter.snapshot()
    }

    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
        self.app.store.close().await;
    }
}

const META_ORG: &str = "org_id";

/// Opens (seeding if new) the organization in `config.data_dir`, binds and serves.
pub async fn start(config: AdobeConfig) -> Result<RunningAdobe, SandboxError> {
    let (store, fresh) = Store::open(&config.data_dir).await?;
    let clock = Clock::default();
    let org_id = match store.meta(META_ORG).await? {
        Some(stored) => {
            if let Some(asked) = &config.org_id
                && asked != &stored
            {
                return Err(SandboxError::Invalid(format!(
                    "the sandbox in {} is organization {stored}, not {asked}; omit --org-id or use another --data directory",
                    config.data_dir.display()
                )));
            }
            stored
        }
        None => {
            let org = config
                .org_id
                .clone()
                .unwrap_or_else(|| DEFAULT_ORG_ID.into());
            if !org.ends_with("@AdobeOrg") || org.len() <= "@AdobeOrg".len() {
                return Err(SandboxError::Invalid(format!(
                    "--org-id {org} is not an organization id: it looks like 0A1B2C3D4E5F60718293A4B5@AdobeOrg"
                )));
            }
            let mut tx = store.pool.begin().await?;
            seed::seed(&mut tx, clock.now_ms()).await?;
            sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?)")
                .bind(META_ORG)
                .bind(&org)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            org
        }
    };
    let credentials = ensure_client(&store, &config, &org_id).await?;
    let (listener, base_url) = crate::listen(config.listen).await?;
    let app = Arc::new(App {
        store,
        clock,
        limiter: Limiter::new(config.limits.clone()),
        config,
        org_id,
    });
    let router = router(app.clone());
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(roster_http::serve(listener, router, async {
        let _ = stop_rx.await;
    }));
    tracing::info!(%base_url, data = %app.store.path.display(), "adobe sandbox listening");
    Ok(RunningAdobe {
        base_url,
        credentials,
        app,
        stop: Some(stop_tx),
        task,
        fresh,
    })
}

/// The client given on the command line (stored, or its secret updated), else the first one,
/// else a new one.
async fn ensure_client(
    store: &Store,
    config: &AdobeConfig,
    org_id: &str,
) -> Result<AdobeCredentials, SandboxError> {
    let clients = store.clients().await?;
    let (client_id, secret) = match (&config.client_id, clients.first()) {
        (Some(id), _) => {
            let stored = clients
                .iter()
                .find(|(c, _)| c == id)
                .map(|(_, s)| s.clone());
            let secret = match (&config.client_secret, stored) {
                (Some(s), _) => s.expose().to_owned(),
                (None, Some(s)) => s,
                (None, None) => uuid::Uuid::new_v4().simple().to_string(),
            };
            store.put_client(id, &secret).await?;
            (id.clone(), secret)
        }
        (None, Some((id, s))) => (id.clone(), s.clone()),
        (None, None) => {
            let id = uuid::Uuid::new_v4().simple().to_string();
            let secret = config
                .client_secret
                .as_ref()
                .map(|s| s.expose().to_owned())
                .unwrap_or_else(|| format!("p8e-{}", uuid::Uuid::new_v4().simple()));
            store.put_client(&id, &secret).await?;
            (id, secret)
        }
    };
    Ok(AdobeCredentials {
        org_id: org_id.to_owned(),
        client_id,
        client_secret: roster_domain::Secret::new(secret),
    })
}

pub const UMAPI: &str = "/v2/usermanagement";

fn router(app: Arc<App>) -> Router {
    let api = Router::new()
        .route(&format!("{UMAPI}/users/{{org}}/{{page}}"), get(users_page))
        .route(
            &format!("{UMAPI}/users/{{org}}/{{page}}/{{group}}"),
            get(group_users_page),
        )
        .route(
            &format!("{UMAPI}/organizations/{{org}}/users/{{user}}"),
            get(one_user),
        )
        .route(
            &format!("{UMAPI}/groups/{{org}}/{{page}}"),
            get(groups_page),
        )
        .route(&format!("{UMAPI}/action/{{org}}"), post(run_action))
        .route_layer(axum::middleware::from_fn_with_state(app.clone(), guard));
    Router::new()
        .route("/ims/token/v2", post(token))
        .route("/ims/token/v3", post(token))
        .route(
            "/status",
            get(|| async {
                axum::Json(json!({"build": "roster-sandbox", "version": env!("CARGO_PKG_VERSION"), "state": "LIVE"}))
            }),
        )
        .route(
            "/sandbox/health",
            get(|| async { axum::Json(json!({"status": "ok", "service": "adobe"})) }),
        )
        .route("/sandbox/stats", get(stats))
        .merge(api)
        .fallback(|uri: axum::http::Uri| async move {
            (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"result": "error.api.not_available", "message": format!("No such endpoint: {}", uri.path())})),
            )
        })
        .layer(axum::middleware::from_fn(echo_request_id))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(json!({"result": "error.internal.exceptionflys", "message": "Unknown error occurred"})),
            )
                .into_response()
        }))
        .with_state(app)
}

/// "If a header with this name is provided, the exact same header will be included in the
/// response."
async fn echo_request_id(req: Request, next: Next) -> Response {
    let id = req.headers().get("x-request-id").cloned();
    let mut response = next.run(req).await;
    if let Some(id) = id {
        response.headers_mut().insert("x-request-id", id);
    }
    response
}

async fn stats(State(app): State<Arc<App>>) -> Response {
    axum::Json(app.limiter.snapshot()).into_response()
}

fn ims_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// `POST /ims/token/v2|v3`: OAuth Server-to-Server, parameters from the form body or the
/// query string (the body wins).
async fn token(State(app): State<Arc<App>>, uri: axum::http::Uri, body: Bytes) -> Response {
    let mut params: std::collections::HashMap<String, String> =
        form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    params.extend(form_urlencoded::parse(&body).into_owned());
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    match get("grant_type") {
        "client_credentials" => {}
        "" => {
            return ims_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "grant_type is missing: send grant_type=client_credentials",
            );
        }
        other => {
            return ims_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!("grant_type {other} is not supported; use client_credentials"),
            );
        }
    }
    let client_id = get("client_id");
    if client_id.is_empty() {
        return ims_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client_id is missing",
        );
    }
    let secret = match app.store.client_secret(client_id).await {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    let Some(secret) = secret else {
        return ims_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "invalid client_id parameter",
        );
    };
    let given = get("client_secret").as_bytes();
    if given.len() != secret.len() || !constant_eq(given, secret.as_bytes()) {
        return ims_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "invalid client_secret parameter",
        );
    }
    let scopes: Vec<&str> = get("scope").split([',', ' ']).map(str::trim).collect();
    if !scopes.contains(&"user_management_sdk") {
        return ims_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "the scope must include user_management_sdk (send openid,AdobeID,user_management_sdk)",
        );
    }
    let token = format!(
        "eyJ{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let ttl = app.config.token_ttl;
    let expires_ms = app.clock.now_ms() + ttl.as_millis() as i64;
    if let Err(e) = app.store.insert_token(&token, client_id, expires_ms).await {
        return internal(e);
    }
    app.limiter
        .stats
        .tokens_issued
        .fetch_add(1, Ordering::Relaxed);
    axum::Json(json!({
        "access_token": token,
        "token_type": "bearer",
        "expires_in": ttl.as_secs(),
    }))
    .into_response()
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn internal(err: impl std::fmt::Display) -> Response {
    tracing::error!(error = %err, "adobe sandbox storage failure");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(
            json!({"result": "error.internal.exceptionflys", "message": "Unknown error occurred"}),
        ),
    )
        .into_response()
}

fn unauthorized(description: &str) -> Response {
    let mut response = (
        StatusCode::UNAUTHORIZED,
        axum::Json(
            json!({"lastPage": false, "result": "error.unauthorized", "message": description}),
        ),
    )
        .into_response();
    let challenge = format!(
        "Bearer realm=\"JIL\", error=\"invalid_token\", error_description=\"{description}\""
    );
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

/// In front of every UMAPI call: latency, the bearer token (401), the API key (403), the
/// per-client limit of the endpoint's family (429) and injected gateway failures.
async fn guard(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let answer_at = tokio::time::Instant::now() + app.config.faults.latency;
    let response = guarded(&app, req, next).await;
    if !app.config.faults.latency.is_zero() {
        tokio::time::sleep_until(answer_at).await;
    }
    response
}

async fn guarded(app: &App, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    let Some(bearer) = bearer else {
        return unauthorized("Send the access token from IMS as Authorization: Bearer <token>");
    };
    let found = match app.store.token(&bearer).await {
        Ok(found) => found,
        Err(e) => return internal(e),
    };
    let Some((client, expires_ms)) = found else {
        return unauthorized("The access token is invalid");
    };
    if expires_ms <= app.clock.now_ms() {
        return unauthorized("The access token has expired");
    }
    let api_key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    match api_key {
        Some(key) if key == client => {}
        Some(_) => {
            return (
                StatusCode::FORBIDDEN,
                axum::Json(json!({"result": "error.apikey.invalid", "message": "The X-Api-Key is not the client id the access token was issued to"})),
            )
                .into_response();
        }
        None => {
            return (
                StatusCode::FORBIDDEN,
                axum::Json(json!({"result": "error.apikey.invalid", "message": "Send the client id as the X-Api-Key header"})),
            )
                .into_response();
        }
    }
    let path = req.uri().path();
    let family = if path.starts_with(&format!("{UMAPI}/action/")) {
        Family::Action
    } else if path.starts_with(&format!("{UMAPI}/groups/")) {
        Family::Groups
    } else {
        Family::Users
    };
    if let Err(wait) = app.limiter.count(&client, family) {
        let wait = app.config.faults.retry_after.unwrap_or(wait);
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(json!({"error_code": "429050", "message": "Too many requests"})),
        )
            .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        return response;
    }
    let rate = app.config.faults.error_rate;
    if rate > 0.0 && fastrand::f64() < rate {
        app.limiter
            .stats
            .faults_injected
            .fetch_add(1, Ordering::Relaxed);
        let status = [
            StatusCode::BAD_GATEWAY,
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::GATEWAY_TIMEOUT,
        ][fastrand::usize(0..3)];
        return (
            status,
            [(header::CONTENT_TYPE, "text/html")],
            format!("<html><body><h1>{status}</h1></body></html>"),
        )
            .into_response();
    }
    next.run(req).await
}

fn bad_org(app: &App, org: &str) -> Option<Response> {
    (org != app.org_id).then(|| {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"result": "error.organization.invalid_id", "message": "Bad organization Id"})),
        )
            .into_response()
    })
}

/// A query parameter read as a boolean the way Adobe's servers do: case-insensitively, so
/// Python's `True` counts.
fn flag(query: &std::collections::HashMap<String, String>, key: &str, default: bool) -> bool {
    query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.eq_ignore_ascii_case("true"))
        .unwrap_or(default)
}

fn parse_page(page: &str) -> Result<usize, Box<Response>> {
    page.parse().map_err(|_| {
        Box::new((
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"result": "error", "message": format!("The page {page} is not a number; pages count from 0")})),
        )
            .into_response())
    })
}

/// Which page to serve: pages past the last serve the last (getUsersWithPage).
fn clamp(page: usize, total: usize, size: usize) -> (usize, usize) {
    let pages = total.div_ceil(size).max(1);
    (page.min(pages - 1), pages)
}

fn paged(body: Value, total: usize, pages: usize, page: usize, size: usize) -> Response {
    let mut response = axum::Json(body).into_response();
    let h = response.headers_mut();
    for (name, value) in [
        ("x-total-count", total),
        ("x-page-count", pages),
        ("x-current-page", page),
        ("x-page-size", size),
    ] {
        h.insert(name, HeaderValue::from(value));
    }
    response
}

type Params = Query<std::collections::HashMap<String, String>>;

async fn users_page(
    State(app): State<Arc<App>>,
    Path((org, page)): Path<(String, String)>,
    Query(q): Params,
) -> Response {
    if let Some(r) = bad_org(&app, &org) {
        return r;
    }
    let page = match parse_page(&page) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let domain = q.get("domain").map(String::as_str);
    let direct_only = flag(&q, "directOnly", true);
    let result: Result<Response, sqlx::Error> = async {
        let size = app.config.page_size;
        let total = app.store.count_users(domain).await?;
        let (page, pages) = clamp(page, total, size);
        let users = app.store.users_page(page * size, size, domain).await?;
        let users = users_json(&app, &users, Some(direct_only)).await?;
        let body = json!({"lastPage": page + 1 >= pages, "result": "success", "users": users});
        Ok(paged(body, total, pages, page, size))
    }
    .await;
    result.unwrap_or_else(internal)
}

async fn group_users_page(
    State(app): State<Arc<App>>,
    Path((org, page, group)): Path<(String, String, String)>,
    Query(q): Params,
) -> Response {
    if let Some(r) = bad_org(&app, &org) {
        return r;
    }
    let page = match parse_page(&page) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let exclude_groups = flag(&q, "excludeGroups", false);
    let direct_only = flag(&q, "directOnly", true);
    let inactive = q
        .get("status")
        .is_some_and(|s| s.eq_ignore_ascii_case("inactive"));
    let result: Result<Response, sqlx::Error> = async {
        let Some(g) = app.store.group(&group).await? else {
            return Ok((
                StatusCode::NOT_FOUND,
                axum::Json(json!({"lastPage": false, "result": "error.group.not_found", "message": format!("Not found: Group {group}")})),
            )
                .into_response());
        };
        let size = app.config.page_size;
        let through_groups = !direct_only && g.kind == "PRODUCT_PROFILE";
        // Every licence is granted in the sandbox: nobody is `inactive`.
        let total = if inactive {
            0
        } else {
            app.store.count_group_members(g.id, through_groups).await?
        };
        let (page, pages) = clamp(page, total, size);
        let members = if inactive {
            Vec::new()
        } else {
            app.store
                .group_members_page(g.id, through_groups, page * size, size)
                .await?
        };
        let groups = (!exclude_groups).then_some(direct_only);
        let users = users_json(&app, &members, groups).await?;
        let body = json!({"lastPage": page + 1 >= pages, "result": "success", "groupName": g.name, "users": users});
        Ok(paged(body, total, pages, page, size))
    }
    .await;
    result.unwrap_or_else(internal)
}

/// Users as UMAPI shows them; with `Some(direct_only)` each with its groups (none listed
/// when it has none), with `None` without (`excludeGroups`).
async fn users_json(
    app: &App,
    users: &[super::store::UserRow],
    groups: Option<bool>,
) -> Result<Vec<Value>, sqlx::Error> {
    let mut of = match groups {
        Some(direct_only) => {
            let ids: Vec<String> = users.iter().map(|u| u.id.clone()).collect();
            app.store.groups_of(&ids, direct_only).await?
        }
        None => Default::default(),
    };
    Ok(users
        .iter()
        .map(|u| u.to_json(of.remove(&u.id).filter(|g| !g.is_empty())))
        .collect())
}

async fn one_user(
    State(app): State<Arc<App>>,
    Path((org, user)): Path<(String, String)>,
) -> Response {
    if let Some(r) = bad_org(&app, &org) {
        return r;
    }
    let result: Result<Response, sqlx::Error> = async {
        let Some(u) = app.store.user(&user).await?.filter(|u| u.status == "active") else {
            return Ok((
                StatusCode::NOT_FOUND,
                axum::Json(json!({"result": "error.user.not_found", "message": format!("User not found {user}")})),
            )
                .into_response());
        };
        let user = users_json(&app, std::slice::from_ref(&u), Some(true)).await?;
        Ok(axum::Json(json!({"result": "success", "user": user[0]})).into_response())
    }
    .await;
    result.unwrap_or_else(internal)
}

async fn groups_page(
    State(app): State<Arc<App>>,
    Path((org, page)): Path<(String, String)>,
) -> Response {
    if let Some(r) = bad_org(&app, &org) {
        return r;
    }
    let page = match parse_page(&page) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let result: Result<Response, sqlx::Error> = async {
        let size = app.config.group_page_size;
        let total = app.store.count_groups().await?;
        let pages = total.div_ceil(size).max(1);
        if page >= pages {
            // The groups page documents this answer for a page past the last.
            return Ok((
                StatusCode::NOT_FOUND,
                axum::Json(json!({"lastPage": true, "result": "Not found"})),
            )
                .into_response());
        }
        let groups: Vec<Value> = app
            .store
            .groups_page(page * size, size)
            .await?
            .iter()
            .map(|(g, n)| g.to_json(*n))
            .collect();
        let body = json!({"lastPage": page + 1 >= pages, "result": "success", "groups": groups});
        Ok(paged(body, total, pages, page, size))
    }
    .await;
    result.unwrap_or_else(internal)
}

async fn run_action(
    State(app): State<Arc<App>>,
    Path(org): Path<String>,
    Query(q): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = bad_org(&app, &org) {
        return r;
    }
    if let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        && !ct.to_ascii_lowercase().starts_with("application/json")
    {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"result": "error.command.malformed", "message": format!("Content-Type must be application/json, not {ct}")})),
        )
            .into_response();
    }
    let test_mode = flag(&q, "testOnly", false);
    let entries = match action::entries(&body) {
        Ok(e) => e,
        Err(action::Malformed(message)) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"result": "error.command.malformed", "message": message})),
            )
                .into_response();
        }
    };
    let now = app.clock.now_ms();
    let result: Result<Value, sqlx::Error> = async {
        let mut outcomes = Vec::with_capacity(entries.len());
        for entry in &entries {
            let mut tx = app.store.pool.begin().await?;
            let outcome = action::run_entry(&mut tx, entry, test_mode, now).await?;
            if test_mode {
                tx.rollback().await?;
            } else {
                tx.commit().await?;
            }
            outcomes.push(outcome);
        }
        Ok(action::answer(&outcomes, test_mode))
    }
    .await;
    match result {
        Ok(body) => axum::Json(body).into_response(),
        Err(e) => internal(e),
    }
}
