//! The HTTP side: `/api/v1` (JSON, bearer tokens), `/healthz`, `/readyz`, `/metrics`.
//! Every error is JSON: `{"error": {"code": "...", "message": "..."}}` with a stable code.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use roster_domain::plan::Plan;
use roster_engine::actor::Actor;
use roster_engine::text::rfc3339;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::Shared;
use crate::tokens::{self, Role};
use crate::workers::Job;

/// An API error: HTTP status, stable code, message for a person.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!("API request failed: {e}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the service could not complete the request; its log says why",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

impl From<roster_store::StoreError> for ApiError {
    fn from(e: roster_store::StoreError) -> Self {
        Self::internal(e)
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The token a request came with, checked.
pub struct Caller {
    pub name: String,
    pub role: Role,
}

impl Caller {
    fn must_be(&self, role: Role, doing: &str) -> ApiResult<()> {
        if self.role >= role {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "{doing} needs the {} role; the token {:?} is {}",
                role.as_str(),
                self.name,
                self.role.as_str()
            ),
        ))
    }
}

impl FromRequestParts<Arc<Shared>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, shared: &Arc<Shared>) -> ApiResult<Self> {
        let missing = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send an API token as `Authorization: Bearer TOKEN` (`roster serve token create` makes one)",
            )
        };
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(missing)?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(missing)?;
        let record = shared
            .store
            .use_token(&tokens::hash(token), OffsetDateTime::now_utc())
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "this API token is unknown or revoked",
                )
            })?;
        let role = Role::parse(&record.role).ok_or_else(|| {
            ApiError::internal(format!("token {} has an unknown role", record.name))
        })?;
        Ok(Caller {
            name: record.name,
            role,
        })
    }
}

pub fn router(shared: Arc<Shared>) -> Router {
    let api = Router::new()
        .route("/instances", get(instances))
        .route("/instances/{name}/reconcile", post(reconcile))
        .route("/runs", get(runs))
        .route("/runs/{id}", get(run))
        .route("/plans", get(plans))
        .route("/plans/{id}", get(plan))
        .route("/plans/{id}/approve", post(approve))
        .route("/plans/{id}/reject", post(reject))
        .route("/log", get(log))
        .route("/tombstones", get(tombstones))
        .route("/webhooks/deliveries", get(deliveries))
        .fallback(|| async { ApiError::not_found("no such API route; see /api/v1/openapi.json") });
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .with_state(shared)
}

fn time_opt(at: Option<OffsetDateTime>) -> Value {
    at.map_or(Value::Null, |t| json!(rfc3339(t)))
}

async fn instances(State(shared): State<Arc<Shared>>, _caller: Caller) -> ApiResult<Json<Value>> {
    let mut out = Vec::new();
    for w in shared.workers.values() {
        let i = &w.instance;
        let pending = shared
            .store
            .held_plans(Some("pending"))
            .await?
            .into_iter()
            .filter(|p| p.instance == i.name)
            .count();
        out.push(json!({
            "name": i.name,
            "app": i.app.name(),
            "roster": i.roster.display().to_string(),
            "interval_seconds": i.interval.as_secs(),
            "auto_apply": i.auto_apply,
            "daily_budget": i.daily_budget,
            "pending_approvals": pending,
            "status": w.status(),
        }));
    }
    Ok(Json(json!({"instances": out})))
}

async fn reconcile(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    caller.must_be(Role::Operator, "asking for a reconcile")?;
    let worker = shared.workers.get(&name).ok_or_else(|| {
        ApiError::not_found(format!(
            "no instance {name:?}; GET /api/v1/instances lists them"
        ))
    })?;
    worker.submit(Job::Reconcile {
        trigger: format!("api:{}", caller.name),
    });
    let status = worker.status();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"instance": name, "queued": status.queued, "running": status.running})),
    ))
}

#[derive(Deserialize)]
struct RunsQuery {
    instance: Option<String>,
    limit: Option<i64>,
}

async fn runs(
    State(shared): State<Arc<Shared>>,
    _caller: Caller,
    Query(q): Query<RunsQuery>,
) -> ApiResult<Json<Value>> {
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let runs = shared.store.runs(q.instance.as_deref(), limit).await?;
    Ok(Json(json!({"runs": runs})))
}

async fn run(
    State(shared): State<Arc<Shared>>,
    _caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let run = shared
        .store
        .run(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no run {id}")))?;
    Ok(Json(json!(run)))
}

#[derive(Deserialize)]
struct PlansQuery {
    status: Option<String>,
}

const PLAN_STATUSES: &[&str] = &[
    "pending",
    "approved",
    "rejected",
    "applied",
    "failed",
    "superseded",
];

async fn plans(
    State(shared): State<Arc<Shared>>,
    _caller: Caller,
    Query(q): Query<PlansQuery>,
) -> ApiResult<Json<Value>> {
    if let Some(s) = &q.status
        && !PLAN_STATUSES.contains(&s.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "status {s:?} is not one of {}",
            PLAN_STATUSES.join(", ")
        )));
    }
    let plans = shared.store.held_plans(q.status.as_deref()).await?;
    Ok(Json(json!({"plans": plans})))
}

async fn held(shared: &Shared, id: &str) -> ApiResult<(roster_store::ServicePlan, Plan)> {
    let (held, body) = shared.store.held_plan(id).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "no plan {id:?} held by the service; GET /api/v1/plans lists them"
        ))
    })?;
    let plan: Plan = serde_json::from_str(&body).map_err(ApiError::internal)?;
    Ok((held, plan))
}

async fn plan(
    State(shared): State<Arc<Shared>>,
    _caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (held, plan) = held(&shared, &id).await?;
    let mut summary = roster_engine::planning::summary(&plan);
    summary["held"] = json!(held);
    summary["summary_line"] = json!(roster_engine::planning::summary_line(&plan));
    Ok(Json(summary))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Decision {
    comment: Option<String>,
}

fn decision(body: &Bytes) -> ApiResult<Decision> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Decision::default());
    }
    let d: Decision = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be JSON such as {{\"comment\": \"why\"}}: {e}"
        ))
    })?;
    if d.comment.as_ref().is_some_and(|c| c.len() > 2000) {
        return Err(ApiError::bad_request(
            "the comment is longer than 2000 characters",
        ));
    }
    Ok(d)
}

fn not_pending(id: &str, status: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "not_pending",
        format!("{id} is {status}, not pending; only a pending plan can be approved or rejected"),
    )
}

async fn approve(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    caller.must_be(Role::Approver, "approving a plan")?;
    let d = decision(&body)?;
    let (held, plan) = held(&shared, &id).await?;
    if held.status != "pending" {
        return Err(not_pending(&id, &held.status));
    }
    if shared.config.four_eyes && held.requested_by == format!("api:{}", caller.name) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "four_eyes",
            format!(
                "the token {:?} asked for the run that made {id}; with four_eyes = true another approver must approve it",
                caller.name
            ),
        ));
    }
    if plan.content_digest() != plan.digest {
        return Err(ApiError::internal(format!(
            "{id} does not match its digest"
        )));
    }
    let worker = shared.workers.get(&held.instance).ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "unknown_instance",
            format!(
                "{id} belongs to {}, which this service no longer runs",
                held.instance
            ),
        )
    })?;
    let actor = Actor::resolve(Some(&caller.name));
    let now = OffsetDateTime::now_utc();
    if !shared
        .store
        .set_held_plan_status(
            &id,
            &["pending"],
            "approved",
            Some(&caller.name),
            d.comment.as_deref(),
            now,
        )
        .await?
    {
        return Err(not_pending(&id, "no longer pending"));
    }
    let detail = format!(
        "approved through the API: content {}, {} destructive step(s){}",
        roster_engine::planning::short(&plan.digest),
        held.destructive,
        d.comment
            .as_deref()
            .map(|c| format!("; comment: {}", c.replace('\n', " ")))
            .unwrap_or_default()
    );
    roster_engine::planning::record_approval(&shared.store, &actor, &plan, detail)
        .await
        .map_err(ApiError::internal)?;
    worker.submit(Job::ApplyApproved {
        plan_id: id.clone(),
        by: caller.name.clone(),
    });
    shared.refresh_pending_gauge().await;
    Ok((
        StatusCode::ACCEPTED,
        Json(
            json!({"plan": id, "status": "approved", "approved_by": caller.name, "instance": held.instance}),
        ),
    ))
}

async fn reject(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    caller.must_be(Role::Approver, "rejecting a plan")?;
    let d = decision(&body)?;
    let (held, _) = held(&shared, &id).await?;
    if held.status != "pending" {
        return Err(not_pending(&id, &held.status));
    }
    let now = OffsetDateTime::now_utc();
    if !shared
        .store
        .set_held_plan_status(
            &id,
            &["pending"],
            "rejected",
            Some(&caller.name),
            d.comment.as_deref(),
            now,
        )
        .await?
    {
        return Err(not_pending(&id, "no longer pending"));
    }
    let actor = Actor::resolve(Some(&caller.name));
    let mut entry = actor.log("roster", "reject", &id, "done");
    entry.plan_id = Some(id.clone());
    entry.detail = Some(format!(
        "rejected through the API{}",
        d.comment
            .as_deref()
            .map(|c| format!("; comment: {}", c.replace('\n', " ")))
            .unwrap_or_default()
    ));
    shared.store.append_log(&entry, now).await?;
    shared.refresh_pending_gauge().await;
    Ok(Json(
        json!({"plan": id, "status": "rejected", "rejected_by": caller.name}),
    ))
}

#[derive(Deserialize)]
struct LogQuery {
    plan: Option<String>,
}

async fn log(
    State(shared): State<Arc<Shared>>,
    _caller: Caller,
    Query(q): Query<LogQuery>,
) -> ApiResult<Json<Value>> {
    let entries: Vec<Value> = shared
        .store
        .log(q.plan.as_deref())
        .await?
        .into_iter()
        .map(|e| {
            json!({
                "id": e.id, "at": rfc3339(e.at), "actor": e.actor, "os_user": e.os_user,
                "plan": e.plan_id, "step_key": e.step_key, "app": e.app, "action": e.action,
                "target": e.target, "outcome": e.outcome, "detail": e.detail, "hash": e.hash,
            })
        })
        .collect();
    Ok(Json(json!({"log": entries})))
}

#[derive(Deserialize)]
struct TombstoneQuery {
    app: Option<String>,
}

async fn tombstones(
    State(shared): State<Arc<Shared>>,
    _caller: Caller,
    Query(q): Query<TombstoneQuery>,
) -> ApiResult<Json<Value>> {
    let list: Vec<Value> = shared
        .store
        .tombstones(q.app.as_deref())
        .await?
        .into_iter()
        .map(|t| {
            json!({
                "id": t.id, "app": t.app, "instance": t.instance, "userid": t.userid, "email": t.email,
                "first_name": t.first_name, "last_name": t.last_name, "api_only": t.api_only,
                "roles": t.roles, "deleted_at": rfc3339(t.deleted_at), "deleted_by": t.deleted_by,
                "reason": t.reason, "status": t.status.as_str(), "restored_at": time_opt(t.restored_at),
            })
        })
        .collect();
    Ok(Json(json!({"tombstones": list})))
}

async fn deliveries(State(shared): State<Arc<Shared>>, _caller: Caller) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"deliveries": shared.store.deliveries(200).await?}),
    ))
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let store_ok = shared.store.runs(None, 1).await.is_ok();
    let instances: Vec<Value> = shared
        .workers
        .values()
        .map(|w| {
            let s = w.status();
            json!({"name": w.instance.name, "last_outcome": s.last_outcome,
                   "last_finished_at": time_opt(s.last_finished_at), "running": s.running})
        })
        .collect();
    let status = if store_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(
            json!({"ready": store_ok, "state_store": if store_ok {"reachable"} else {"unreachable"},
                    "started_at": rfc3339(shared.started_at), "instances": instances}),
        ),
    )
        .into_response()
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    shared.refresh_pending_gauge().await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        shared.metrics.render(),
    )
        .into_response()
}
