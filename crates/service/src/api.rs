//! The HTTP side: `/api/v1` (JSON, bearer tokens), `/healthz`, `/readyz`, `/metrics`, and
//! the OpenAPI document at `/api/v1/openapi.json`, generated from the handlers below.
//! Every error is JSON: `{"error": {"code": "...", "message": "..."}}` with a stable code.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use roster_domain::plan::Plan;
use roster_engine::actor::Actor;
use roster_engine::text::rfc3339;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi};

use crate::Shared;
use crate::tokens::{self, Role};
use crate::views::*;
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

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub(crate) fn internal(e: impl std::fmt::Display) -> Self {
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
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        let mut r = (self.status, Json(body)).into_response();
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

pub type ApiResult<T> = Result<T, ApiError>;

/// The worker of instance `name`, or the 404 `unknown_instance` naming the instances this
/// service runs: every request that names an instance is refused the same way.
pub(crate) fn instance_worker<'a>(
    shared: &'a Shared,
    name: &str,
) -> ApiResult<&'a crate::workers::Worker> {
    shared.workers.get(name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_instance",
            format!(
                "no instance named {name:?}; this service runs {}",
                shared
                    .workers
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })
}

/// A query string, refused with a JSON error when it does not parse.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

/// A path parameter, refused with a JSON error when it does not parse.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

/// Who is asking, checked: an API token, or a console user.
#[derive(Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    /// `api` or `console`: with the name, what a run's `requested_by` records.
    pub via: &'static str,
}

impl Caller {
    /// What a run or a request asked for by this caller records as `requested_by`.
    pub fn key(&self) -> String {
        format!("{}:{}", self.via, self.name)
    }

    pub fn must_be(&self, role: Role, doing: &str) -> ApiResult<()> {
        if self.role >= role {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "{doing} needs the {} role; {:?} is {}",
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
        let token = tokens::bearer(&parts.headers).ok_or_else(missing)?;
        let now = OffsetDateTime::now_utc();
        let hash = tokens::hash(token);
        let Some(record) = shared.store.use_token(&hash, now).await? else {
            let message = match shared.store.expired_token(&hash, now).await? {
                Some((name, at)) => format!(
                    "the API token {name:?} expired at {}; make a new one (`roster serve token create`)",
                    roster_engine::text::rfc3339(at)
                ),
                None => "this API token is unknown or revoked".into(),
            };
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                message,
            ));
        };
        let role = Role::parse(&record.role).ok_or_else(|| {
            ApiError::internal(format!("token {} has an unknown role", record.name))
        })?;
        // A token made for a console account is that person: it carries the account's
        // name (so four-eyes sees one person, whichever way they come in) and never more
        // than the account's role now (a demoted or removed account takes its tokens along).
        let Some(account) = record.account else {
            let caller = Caller {
                name: tokens::identity(&record.name).to_string(),
                role,
                via: "api",
            };
            crate::request_log::Actor::tell(parts, caller.key());
            return Ok(caller);
        };
        let user = shared.store.console_user(&account).await?.ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                format!(
                    "API token {} acts for the console account {account:?}, which no longer exists; make a new token",
                    record.name
                ),
            )
        })?;
        let account_role = Role::parse(&user.role).unwrap_or(Role::Viewer);
        Ok(Caller {
            name: user.name,
            role: role.min(account_role),
            via: "api",
        })
        .inspect(|c: &Caller| crate::request_log::Actor::tell(parts, c.key()))
    }
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // Every operation answers 401 without a valid token and 400 for a malformed
        // parameter: said once here rather than on each handler.
        let error = |what: &str| {
            utoipa::openapi::ResponseBuilder::new()
                .description(what)
                .content(
                    "application/json",
                    utoipa::openapi::ContentBuilder::new()
                        .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            for op in [&mut item.get, &mut item.post].into_iter().flatten() {
                let responses = &mut op.responses.responses;
                responses
                    .entry("401".into())
                    .or_insert_with(|| error("no token, or an unknown or revoked one").into());
                responses
                    .entry("400".into())
                    .or_insert_with(|| error("a malformed parameter or body").into());
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Roster service API",
        description = "Roster keeps the user accounts of Marketo and Magento in line with a roster. This API follows and steers `roster serve`: instances, who has which access, runs, plans awaiting approval, the audit log, tombstones and webhook deliveries. Every request needs `Authorization: Bearer TOKEN` (`roster serve token create`); roles: viewer < operator < approver < admin."
    ),
    paths(instances, reconcile, runs, run, plans, plan, approve, reject, log, log_head, tombstones,
        restore_tombstone, restores, approve_restore, reject_restore, deliveries,
        crate::access::access_api, crate::access::person_api,
        crate::reviews::start, crate::reviews::list, crate::reviews::get_one, crate::reviews::items,
        crate::reviews::decide, crate::reviews::decide_many, crate::reviews::close,
        crate::reviews::evidence, crate::reviews::delegate, crate::reviews::revocations,
        crate::reviews::lift, crate::reports::get_report),
    components(schemas(PlanStatus, ErrorBody)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

pub fn router(shared: Arc<Shared>) -> Router {
    let api = Router::new()
        .route("/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
        .route("/instances", get(instances))
        .route("/instances/{name}/reconcile", post(reconcile))
        .route("/instances/{name}/access", get(crate::access::access_api))
        .route("/people/{email}", get(crate::access::person_api))
        .route("/runs", get(runs))
        .route("/runs/{id}", get(run))
        .route("/plans", get(plans))
        .route("/plans/{id}", get(plan))
        .route("/plans/{id}/approve", post(approve))
        .route("/plans/{id}/reject", post(reject))
        .route("/log", get(log))
        .route("/log/head", get(log_head))
        .route("/tombstones", get(tombstones))
        .route("/tombstones/{id}/restore", post(restore_tombstone))
        .route("/restores", get(restores))
        .route("/restores/{id}/approve", post(approve_restore))
        .route("/restores/{id}/reject", post(reject_restore))
        .route("/webhooks/deliveries", get(deliveries))
        .route(
            "/reviews",
            get(crate::reviews::list).post(crate::reviews::start),
        )
        .route("/reviews/{id}", get(crate::reviews::get_one))
        .route("/reviews/{id}/items", get(crate::reviews::items))
        .route(
            "/reviews/{id}/items/{item}/decision",
            post(crate::reviews::decide),
        )
        .route("/reviews/{id}/decisions", post(crate::reviews::decide_many))
        .route("/reviews/{id}/close", post(crate::reviews::close))
        .route("/reviews/{id}/evidence", get(crate::reviews::evidence))
        .route("/reviews/{id}/delegate", post(crate::reviews::delegate))
        .route("/revocations", get(crate::reviews::revocations))
        .route("/revocations/lift", post(crate::reviews::lift))
        .route("/reports/{kind}", get(crate::reports::get_report))
        .fallback(|| async { ApiError::not_found("no such API route; see /api/v1/openapi.json") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method; see /api/v1/openapi.json",
            )
        })
        .layer(axum::middleware::from_fn(json_errors));
    Router::new()
        .nest("/api/v1", api)
        .nest("/scim/v2", crate::scim::router())
        .merge(crate::console::router())
        .merge(crate::slack::routes())
        .route(
            "/",
            get(|| async { axum::response::Redirect::to("/console") }),
        )
        .fallback(not_found_page)
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn(crate::request_log::log))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .with_state(shared)
}

/// Every API error is JSON: an answer axum's extractors made in plain text (a body over the
/// limit, a wrong content type) is turned into the API's error shape, its message kept.
async fn json_errors(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let text = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = match (status, text.is_empty()) {
        (StatusCode::PAYLOAD_TOO_LARGE, _) => {
            "the request body is over 64 KiB; send less".to_string()
        }
        (_, true) => status.canonical_reason().unwrap_or("error").to_string(),
        (_, false) => text,
    };
    ApiError::new(status, code, message).into_response()
}

/// Anything else: a page saying so, with the way back (JSON for API clients that ask).
async fn not_found_page(headers: axum::http::HeaderMap) -> axum::response::Response {
    use axum::response::IntoResponse;
    let wants_json = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("json") && !a.contains("html"));
    if wants_json {
        return ApiError::not_found("nothing here; the API is under /api/v1").into_response();
    }
    (
        StatusCode::NOT_FOUND,
        axum::response::Html(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Not found · Roster</title></head><body><main><h1>Not found</h1><p>There is no page at this address.</p><p><a href=\"/console\">Go to the console</a> · the API is under <code>/api/v1</code> (<a href=\"/api/v1/openapi.json\">OpenAPI</a>).</p></main></body></html>\n",
        ),
    )
        .into_response()
}

/// The instances this service runs, with their state.
#[utoipa::path(get, path = "/api/v1/instances", tag = "instances",
    responses((status = 200, body = Instances), (status = 401, body = ErrorBody)))]
async fn instances(
    State(shared): State<Arc<Shared>>,
    _caller: Caller,
) -> ApiResult<Json<Instances>> {
    let pending = shared.store.held_plans(Some("pending")).await?;
    let mut statuses = shared.statuses().await;
    let mut instances = Vec::new();
    for w in shared.workers.values() {
        let i = &w.instance;
        instances.push(InstanceView {
            name: i.name.clone(),
            app: i.app.name(),
            roster: i.roster.display().to_string(),
            interval_seconds: i.interval.as_secs(),
            auto_apply: format!("{:?}", i.auto_apply).to_lowercase(),
            daily_budget: i.daily_budget,
            budget: crate::budget::view(&shared, i).await,
            pending_approvals: pending.iter().filter(|p| p.instance == i.name).count(),
            status: statuses.remove(&i.name).unwrap_or_default().into(),
        });
    }
    Ok(Json(Instances { instances }))
}

/// What a reconcile request may say: the people it is about (a targeted run, which reads
/// only what they need), or nothing (everyone).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ReconcileRequest {
    /// Emails of the people to plan for; absent: everyone.
    #[serde(default)]
    #[schema(value_type = Option<Vec<PersonEmail>>, min_items = 1)]
    people: Option<Vec<String>>,
}

/// An email address as the roster names people: ASCII, one `@`, a domain of at least two
/// labels (what `roster_domain::email::problem` accepts, narrowed to a pattern).
struct PersonEmail;

const PERSON_EMAIL: &str = r"^[!-?A-~]+@([A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?\.)+[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?$";

impl utoipa::PartialSchema for PersonEmail {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(PERSON_EMAIL))
            .examples(["ada.lovelace@acme.example"])
            .into()
    }
}

impl utoipa::ToSchema for PersonEmail {}

fn reconcile_request(body: &Bytes) -> ApiResult<ReconcileRequest> {
    // No body, or JSON null (the OpenAPI document makes the body optional): everyone.
    if body.iter().all(u8::is_ascii_whitespace)
        || serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| v.is_null())
    {
        return Ok(ReconcileRequest::default());
    }
    // An object, as documented (serde alone would take `[]` for a struct of defaults).
    if !serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| v.is_object()) {
        return Err(ApiError::bad_request(
            "the body must be empty (everyone) or a JSON object such as {\"people\": [\"ada@example.com\"]}",
        ));
    }
    let r: ReconcileRequest = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be empty (everyone) or JSON such as {{\"people\": [\"ada@example.com\"]}}: {e}"
        ))
    })?;
    if let Some(people) = &r.people {
        if people.is_empty() {
            return Err(ApiError::bad_request(
                "people is empty: name at least one email, or send no body to plan for everyone",
            ));
        }
        if let Some((bad, why)) = people.iter().find_map(|e| {
            roster_domain::email::problem(&e.trim().to_lowercase()).map(|why| (e, why))
        }) {
            return Err(ApiError::bad_request(format!(
                "{:?} in people: {why}; nothing was queued",
                roster_engine::text::sanitize(bad)
            )));
        }
    }
    Ok(r)
}

/// Queue a reconcile of one instance now (operator). It runs after the job in progress.
/// With `{"people": [...]}` it is targeted: it plans for those people only and reads only
/// what they need (on Marketo: the user list and their roles).
#[utoipa::path(post, path = "/api/v1/instances/{name}/reconcile", tag = "instances",
    params(("name" = String, Path, description = "e.g. marketo.prod")),
    request_body(content = Option<ReconcileRequest>, content_type = "application/json"),
    responses((status = 202, body = Queued), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn reconcile(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Queued>)> {
    caller.must_be(Role::Operator, "asking for a reconcile")?;
    let worker = shared.workers.get(&name).ok_or_else(|| {
        ApiError::not_found(format!(
            "no instance {name:?}; GET /api/v1/instances lists them"
        ))
    })?;
    let request = reconcile_request(&body)?;
    let targeted = match &request.people {
        Some(people) => {
            shared
                .store
                .add_targets(&worker.instance.name, people)
                .await
                .map_err(ApiError::internal)?;
            true
        }
        None => false,
    };
    let job = Job::Reconcile {
        trigger: caller.key(),
        targeted,
    };
    shared
        .submit(&worker.instance.name, job)
        .await
        .map_err(ApiError::internal)?;
    let status = shared.worker_status(&worker.instance.name).await;
    Ok((
        StatusCode::ACCEPTED,
        Json(Queued {
            instance: name,
            queued: status.queued,
            running: status.running,
        }),
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RunsQuery {
    /// Only this instance's runs.
    instance: Option<String>,
    /// At most this many, newest first (1 to 1000, default 50).
    limit: Option<i64>,
    /// Only runs older than this one (the previous page's `next_before`).
    before: Option<i64>,
}

/// Runs, newest first.
#[utoipa::path(get, path = "/api/v1/runs", tag = "runs", params(RunsQuery),
    responses((status = 200, body = Runs), (status = 400, body = ErrorBody)))]
async fn runs(
    State(shared): State<Arc<Shared>>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<RunsQuery>,
) -> ApiResult<Json<Runs>> {
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let runs = shared
        .store
        .runs_before(q.instance.as_deref(), q.before.unwrap_or(i64::MAX), limit)
        .await?;
    // A full page may have more behind it.
    let next_before = (runs.len() as i64 == limit)
        .then(|| runs.last().map(|r| r.id))
        .flatten();
    Ok(Json(Runs {
        runs: runs.into_iter().map(Into::into).collect(),
        next_before,
    }))
}

/// One run, with its events.
#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "runs",
    params(("id" = i64, Path)),
    responses((status = 200, body = RunView), (status = 404, body = ErrorBody)))]
async fn run(
    State(shared): State<Arc<Shared>>,
    _caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<RunView>> {
    let run = shared
        .store
        .run(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no run {id}")))?;
    Ok(Json(run.into()))
}

/// Where a held plan is in its life.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
enum PlanStatus {
    Pending,
    Approved,
    Rejected,
    Applied,
    Failed,
    Superseded,
    /// Nobody decided within `[service] approval_expiry`; the next run asks again.
    Expired,
}

impl PlanStatus {
    fn as_str(self) -> &'static str {
        match self {
            PlanStatus::Pending => "pending",
            PlanStatus::Approved => "approved",
            PlanStatus::Rejected => "rejected",
            PlanStatus::Applied => "applied",
            PlanStatus::Failed => "failed",
            PlanStatus::Superseded => "superseded",
            PlanStatus::Expired => "expired",
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct PlansQuery {
    /// Only plans in this state.
    status: Option<PlanStatus>,
}

/// Plans the service holds, newest first.
#[utoipa::path(get, path = "/api/v1/plans", tag = "plans", params(PlansQuery),
    responses((status = 200, body = Plans), (status = 400, body = ErrorBody)))]
async fn plans(
    State(shared): State<Arc<Shared>>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<PlansQuery>,
) -> ApiResult<Json<Plans>> {
    let plans = shared
        .store
        .held_plans(q.status.map(PlanStatus::as_str))
        .await?;
    Ok(Json(Plans {
        plans: plans.into_iter().map(Into::into).collect(),
    }))
}

async fn held_body(shared: &Shared, id: &str) -> ApiResult<(roster_store::ServicePlan, String)> {
    shared.store.held_plan(id).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "no plan {id:?} held by the service; GET /api/v1/plans lists them"
        ))
    })
}

/// The service's record of a held plan (its status and who asked), without its body.
async fn held_record(shared: &Shared, id: &str) -> ApiResult<roster_store::ServicePlan> {
    Ok(held_body(shared, id).await?.0)
}

/// A held plan, checked against the signature the service gave it when it held it.
pub(crate) async fn held(
    shared: &Shared,
    id: &str,
) -> ApiResult<(roster_store::ServicePlan, Plan)> {
    let (held, body) = held_body(shared, id).await?;
    let plan: Plan = serde_json::from_str(&body).map_err(ApiError::internal)?;
    // Shown and approved only as the service signed it when it held it.
    let keys = shared.store.keys().map_err(ApiError::internal)?;
    roster_engine::planning::verify_signature(&plan, keys, &format!("the held plan {id}"))
        .map_err(|e| {
            ApiError::new(
                StatusCode::CONFLICT,
                "plan_not_trusted",
                format!("{e:#} (its record in the database was changed)"),
            )
        })?;
    Ok((held, plan))
}

/// One plan in full.
#[utoipa::path(get, path = "/api/v1/plans/{id}", tag = "plans",
    params(("id" = String, Path)),
    responses((status = 200, body = PlanDetail), (status = 404, body = ErrorBody)))]
async fn plan(
    State(shared): State<Arc<Shared>>,
    _caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<PlanDetail>> {
    let (held, plan) = held(&shared, &id).await?;
    let summary = roster_engine::planning::summary(&plan);
    Ok(Json(PlanDetail {
        summary_line: roster_engine::planning::summary_line(&plan),
        id: plan.id,
        roster: plan.roster,
        created_at: rfc3339(plan.created_at),
        fingerprint: plan.fingerprint,
        digest: plan.digest,
        steps: summary["steps"].clone(),
        notes: summary["notes"].clone(),
        summary: summary["summary"].clone(),
        blocked: plan.blocked,
        targeted: plan.targeted.as_ref().map(|t| serde_json::json!(t)),
        held: held.into(),
    }))
}

fn decision(body: &Bytes) -> ApiResult<Decision> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Decision::default());
    }
    // An object, as documented (serde alone would take `[]` for a struct of defaults).
    if !serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| v.is_object()) {
        return Err(ApiError::bad_request(
            "the body must be empty or a JSON object such as {\"comment\": \"why\"}",
        ));
    }
    let d: Decision = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be JSON such as {{\"comment\": \"why\"}}: {e}"
        ))
    })?;
    if d.comment.as_ref().is_some_and(|c| c.chars().count() > 2000) {
        return Err(ApiError::bad_request(
            "the comment is longer than 2000 characters",
        ));
    }
    Ok(d)
}

fn not_pending(id: &str, status: &str) -> ApiError {
    if status == "expired" {
        return ApiError::new(
            StatusCode::CONFLICT,
            "expired",
            format!(
                "{id} expired: nobody decided within [service] approval_expiry, so it can no longer be approved; the instance's next run makes a fresh plan to decide on (POST /api/v1/instances/NAME/reconcile asks for one now)"
            ),
        );
    }
    ApiError::new(
        StatusCode::CONFLICT,
        "not_pending",
        format!("{id} is {status}, not pending; only a pending plan can be approved or rejected"),
    )
}

/// Pending plans older than `[service] approval_expiry` expire (each with a signed log row
/// and a `plan.expired` webhook): an approval given weeks later would approve a picture of
/// the apps nobody looked at when it mattered. Gives back how many expired.
pub async fn expire_plans(shared: &Shared, now: OffsetDateTime) -> anyhow::Result<usize> {
    let Some(after) = shared
        .config
        .approval_expiry
        .and_then(|d| time::Duration::try_from(d).ok())
    else {
        return Ok(0);
    };
    let mut n = 0;
    for p in shared.store.held_plans(Some("pending")).await? {
        if p.created_at + after > now {
            continue;
        }
        if !shared
            .store
            .set_held_plan_status(&p.plan_id, &["pending"], "expired", None, None, now)
            .await?
        {
            continue;
        }
        let why = format!(
            "expired: nobody decided within {} h of {}; the next run asks again",
            after.whole_hours(),
            rfc3339(p.created_at)
        );
        shared
            .store
            .set_held_plan_outcome(&p.plan_id, "expired", &why)
            .await?;
        let mut entry = Actor::resolve(Some("roster")).log("roster", "expire", &p.plan_id, "done");
        entry.plan_id = Some(p.plan_id.clone());
        entry.instance = Some(p.instance.clone());
        entry.detail = Some(why.clone());
        shared.store.append_log(&entry, now).await?;
        shared.notifier.notify(
            "plan.expired",
            Some(&p.instance),
            format!("{} {why}", p.plan_id),
            serde_json::json!({"plan_id": p.plan_id, "created_at": rfc3339(p.created_at), "destructive": p.destructive}),
        );
        n += 1;
    }
    if n > 0 {
        shared.announce_log_head().await;
    }
    Ok(n)
}

/// With `four_eyes = true`, whoever asked for something cannot approve it.
/// Who asked for a plan, for four-eyes: a review's plan was asked for by whoever closed
/// the review.
async fn requester(shared: &Shared, requested_by: &str) -> ApiResult<String> {
    if let Some(id) = crate::reviews::review_of_trigger(requested_by) {
        let closer = shared.store.review(id).await?.and_then(|r| r.closed_by);
        return Ok(closer.unwrap_or_else(|| requested_by.to_string()));
    }
    Ok(requested_by.to_string())
}

/// Whether four-eyes keeps `caller` from approving what `requested_by` asked for: the
/// console says so before anyone clicks.
pub(crate) async fn four_eyes_applies(
    shared: &Shared,
    requested_by: &str,
    caller: &Caller,
) -> bool {
    match requester(shared, requested_by).await {
        Ok(r) => four_eyes(shared, &r, caller, "it").is_err(),
        Err(_) => false,
    }
}

fn four_eyes(shared: &Shared, requested_by: &str, caller: &Caller, what: &str) -> ApiResult<()> {
    // By name, whichever way each came in (an API token and a console account of the same
    // name are taken to be the same person).
    let requester = requested_by
        .split_once(':')
        .map_or(requested_by, |(_, n)| n);
    if shared.config.four_eyes && requester.eq_ignore_ascii_case(&caller.name) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "four_eyes",
            format!(
                "{:?} asked for {what}; with four_eyes = true another approver must approve it",
                caller.name
            ),
        ));
    }
    Ok(())
}

fn comment_text(d: &Decision) -> String {
    d.comment
        .as_deref()
        .map(|c| format!("; comment: {}", roster_engine::text::sanitize(c)))
        .unwrap_or_default()
}

/// Approve a pending plan (approver). The service plans again before applying: the
/// approval covers the plan's destructive steps; if new ones appeared, a new plan waits.
/// With `four_eyes = true` the token that asked for the run cannot approve its plan.
#[utoipa::path(post, path = "/api/v1/plans/{id}/approve", tag = "plans",
    params(("id" = String, Path)), request_body(content = Decision, description = "optional"),
    responses((status = 202, body = Decided), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn approve(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Decided>)> {
    let d = decision(&body)?;
    let decided = approve_plan(&shared, &caller, &id, &d).await?;
    Ok((StatusCode::ACCEPTED, Json(decided)))
}

/// An approver approves a pending plan (four-eyes checked): recorded with its audit-log
/// line, and the apply queued on the plan's instance. Shared by the API and the console.
pub(crate) async fn approve_plan(
    shared: &Shared,
    caller: &Caller,
    id: &str,
    d: &Decision,
) -> ApiResult<Decided> {
    caller.must_be(Role::Approver, "approving a plan")?;
    let (held, plan) = held(shared, id).await?;
    if held.status == "pending" {
        // Past its time, it expires now rather than when the clock next looks.
        expire_plans(shared, OffsetDateTime::now_utc())
            .await
            .map_err(ApiError::internal)?;
        let (now_held, _) = self::held(shared, id).await?;
        if now_held.status != "pending" {
            return Err(not_pending(id, &now_held.status));
        }
    }
    if held.status != "pending" {
        return Err(not_pending(id, &held.status));
    }
    four_eyes(
        shared,
        &requester(shared, &held.requested_by).await?,
        caller,
        id,
    )?;
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
    let now = OffsetDateTime::now_utc();
    if !shared
        .store
        .set_held_plan_status(
            id,
            &["pending"],
            "approved",
            Some(&caller.name),
            d.comment.as_deref(),
            now,
        )
        .await?
    {
        return Err(not_pending(id, "no longer pending"));
    }
    let detail = format!(
        "approved through the {}: content {}, {} destructive step(s){}",
        if caller.via == "api" {
            "API"
        } else {
            "console"
        },
        roster_engine::planning::short(&plan.digest),
        held.destructive,
        comment_text(d)
    );
    roster_engine::planning::record_approval(
        &shared.store,
        &Actor::resolve(Some(&caller.name)),
        &plan,
        detail,
    )
    .await
    .map_err(ApiError::internal)?;
    let job = Job::ApplyApproved {
        plan_id: id.to_string(),
        by: caller.name.clone(),
    };
    shared
        .submit(&worker.instance.name, job)
        .await
        .map_err(ApiError::internal)?;
    shared.refresh_pending_gauge().await;
    Ok(Decided {
        plan: id.to_string(),
        status: "approved",
        by: caller.name.clone(),
        instance: held.instance,
        note: None,
    })
}

/// Reject a pending plan (approver): nothing of it runs; the next run plans again.
#[utoipa::path(post, path = "/api/v1/plans/{id}/reject", tag = "plans",
    params(("id" = String, Path)), request_body(content = Decision, description = "optional"),
    responses((status = 200, body = Decided), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn reject(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    body: Bytes,
) -> ApiResult<Json<Decided>> {
    let d = decision(&body)?;
    Ok(Json(reject_plan(&shared, &caller, &id, &d).await?))
}

/// An approver rejects a pending plan: recorded with its audit-log line; nothing of it runs.
pub(crate) async fn reject_plan(
    shared: &Shared,
    caller: &Caller,
    id: &str,
    d: &Decision,
) -> ApiResult<Decided> {
    caller.must_be(Role::Approver, "rejecting a plan")?;
    // A plan that no longer verifies can still be turned down: refusing is always safe.
    let held = held_record(shared, id).await?;
    if held.status != "pending" {
        return Err(not_pending(id, &held.status));
    }
    let now = OffsetDateTime::now_utc();
    if !shared
        .store
        .set_held_plan_status(
            id,
            &["pending"],
            "rejected",
            Some(&caller.name),
            d.comment.as_deref(),
            now,
        )
        .await?
    {
        return Err(not_pending(id, "no longer pending"));
    }
    let mut entry = Actor::resolve(Some(&caller.name)).log("roster", "reject", id, "done");
    entry.plan_id = Some(id.to_string());
    entry.detail = Some(format!(
        "rejected through the {}{}",
        if caller.via == "api" {
            "API"
        } else {
            "console"
        },
        comment_text(d)
    ));
    shared.store.append_log(&entry, now).await?;
    shared.refresh_pending_gauge().await;
    Ok(Decided {
        plan: id.to_string(),
        status: "rejected",
        by: caller.name.clone(),
        instance: held.instance,
        note: None,
    })
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct LogQuery {
    /// Only this plan's lines.
    plan: Option<String>,
    /// Only lines after this one, oldest first (the previous page's `next_after`).
    after: Option<i64>,
    /// At most this many lines (1 to 5000). Without `after` or `limit`: the whole log.
    limit: Option<i64>,
}

/// The audit log: every change, approval and refusal, hash-chained.
#[utoipa::path(get, path = "/api/v1/log", tag = "audit", params(LogQuery),
    responses((status = 200, body = Log)))]
async fn log(
    State(shared): State<Arc<Shared>>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> ApiResult<Json<Log>> {
    let paged = q.after.is_some() || q.limit.is_some();
    let limit = q.limit.unwrap_or(500).clamp(1, 5000);
    let entries = if paged {
        shared
            .store
            .log_page(q.plan.as_deref(), q.after.unwrap_or(0), limit)
            .await?
    } else {
        shared.store.log(q.plan.as_deref()).await?
    };
    let next_after = (paged && entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    Ok(Json(Log {
        log: entries.into_iter().map(Into::into).collect(),
        next_after,
    }))
}

/// The log's head: kept outside Roster (by an auditor, a SIEM), `roster log verify --head`
/// later proves no line up to it was removed or changed.
#[utoipa::path(get, path = "/api/v1/log/head", tag = "audit",
    responses((status = 200, body = LogHeadView)))]
async fn log_head(
    State(shared): State<Arc<Shared>>,
    _caller: Caller,
) -> ApiResult<Json<LogHeadView>> {
    let head = shared.store.log_head(OffsetDateTime::now_utc()).await?;
    // The store's own form (the time as `time` writes RFC 3339, to the millisecond the
    // signature covers), so a saved response is a head file `log verify --head` reads.
    let signed_at = head
        .signed_at
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(ApiError::internal)?;
    Ok(Json(LogHeadView {
        id: head.id,
        hash: head.hash,
        signed_at,
        key_id: head.key_id,
        signature: head.signature,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct TombstoneQuery {
    /// marketo or magento.
    app: Option<String>,
}

/// Every account Roster deleted, with what it had.
#[utoipa::path(get, path = "/api/v1/tombstones", tag = "audit", params(TombstoneQuery),
    responses((status = 200, body = Tombstones)))]
async fn tombstones(
    State(shared): State<Arc<Shared>>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<TombstoneQuery>,
) -> ApiResult<Json<Tombstones>> {
    let list = shared.store.tombstones(q.app.as_deref()).await?;
    Ok(Json(Tombstones {
        tombstones: list.into_iter().map(Into::into).collect(),
    }))
}

/// Ask for an account to be restored from its tombstone (operator). Nothing happens until
/// an approver approves the request (`POST /api/v1/restores/{id}/approve`).
#[utoipa::path(post, path = "/api/v1/tombstones/{id}/restore", tag = "audit",
    params(("id" = i64, Path, description = "the tombstone")),
    responses((status = 202, body = RestoreAsked), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn restore_tombstone(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<(StatusCode, Json<RestoreAsked>)> {
    Ok((
        StatusCode::ACCEPTED,
        Json(ask_restore(&shared, &caller, id).await?),
    ))
}

/// An operator asks for tombstone `id` to be restored: a request that waits for an approver
/// (or the one already waiting). Shared by the API and the console.
pub(crate) async fn ask_restore(
    shared: &Shared,
    caller: &Caller,
    id: i64,
) -> ApiResult<RestoreAsked> {
    caller.must_be(Role::Operator, "asking for a restore")?;
    let t = shared.store.tombstone(id).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "no tombstone #{id}; GET /api/v1/tombstones lists them"
        ))
    })?;
    let conflict = |message: String| ApiError::new(StatusCode::CONFLICT, "not_restorable", message);
    if t.restored_at.is_some() {
        return Err(conflict(format!("tombstone #{id} was restored already")));
    }
    if t.status != roster_store::TombstoneStatus::Deleted {
        return Err(conflict(format!(
            "tombstone #{id} says the deletion did not finish ({}); check the account in the app first",
            t.status.as_str()
        )));
    }
    let worker = shared
        .workers
        .values()
        .find(|w| w.instance.app.name() == t.app && w.instance.state_key() == t.instance)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "unknown_instance",
                format!(
                    "tombstone #{id} is of {} on {}, which this service does not run",
                    t.app, t.instance
                ),
            )
        })?;
    let now = OffsetDateTime::now_utc();
    let (request, created) = shared
        .store
        .request_restore(id, &worker.instance.name, &caller.key(), now)
        .await?;
    if created {
        shared.notifier.notify(
            "plan.pending",
            Some(&worker.instance.name),
            format!(
                "restoring {} from tombstone #{id} awaits approval (request {request})",
                t.email
            ),
            serde_json::json!({"restore": request, "tombstone": id, "email": t.email}),
        );
    }
    let view = shared
        .store
        .restore_request(request)
        .await?
        .ok_or_else(|| ApiError::internal(format!("restore request {request} vanished")))?;
    let note = crate::workers::restore_note(shared, &worker.instance, &t.email).await;
    Ok(RestoreAsked {
        request: view.into(),
        created,
        note,
    })
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RestoresQuery {
    /// pending, approved, rejected, restored or failed.
    status: Option<String>,
}

/// Restore requests, newest first.
#[utoipa::path(get, path = "/api/v1/restores", tag = "audit", params(RestoresQuery),
    responses((status = 200, body = Restores)))]
async fn restores(
    State(shared): State<Arc<Shared>>,
    _caller: Caller,
    ApiQuery(q): ApiQuery<RestoresQuery>,
) -> ApiResult<Json<Restores>> {
    let list = shared.store.restore_requests(q.status.as_deref()).await?;
    Ok(Json(Restores {
        restores: list.into_iter().map(Into::into).collect(),
    }))
}

async fn restore_request(shared: &Shared, id: i64) -> ApiResult<roster_store::RestoreRequest> {
    let r = shared
        .store
        .restore_request(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no restore request {id}")))?;
    if r.status != "pending" {
        return Err(not_pending(&format!("restore request {id}"), &r.status));
    }
    Ok(r)
}

/// Records `caller`'s decision (`approved` or `rejected`) on a pending restore request,
/// with its audit-log line.
async fn decide_restore(
    shared: &Shared,
    caller: &Caller,
    r: &roster_store::RestoreRequest,
    d: &Decision,
    to: &'static str,
) -> ApiResult<()> {
    let what = format!("restore request {}", r.id);
    let now = OffsetDateTime::now_utc();
    if !shared
        .store
        .set_restore_status(
            r.id,
            &["pending"],
            to,
            Some(&caller.name),
            d.comment.as_deref(),
            now,
        )
        .await?
    {
        return Err(not_pending(&what, "no longer pending"));
    }
    let verb = if to == "approved" {
        "approve"
    } else {
        "reject"
    };
    let mut entry = Actor::resolve(Some(&caller.name)).log("roster", verb, &what, "done");
    entry.detail = Some(format!(
        "{to} the restore of tombstone #{}{}",
        r.tombstone_id,
        comment_text(d)
    ));
    shared.store.append_log(&entry, now).await?;
    Ok(())
}

/// Approve a restore request (approver; four-eyes as for plans): it runs at once.
#[utoipa::path(post, path = "/api/v1/restores/{id}/approve", tag = "audit",
    params(("id" = i64, Path)), request_body(content = Decision, description = "optional"),
    responses((status = 202, body = Decided), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn approve_restore(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Decided>)> {
    let d = decision(&body)?;
    let decided = approve_restore_request(&shared, &caller, id, &d).await?;
    Ok((StatusCode::ACCEPTED, Json(decided)))
}

/// An approver approves a restore request (four-eyes checked); the restore is queued.
pub(crate) async fn approve_restore_request(
    shared: &Shared,
    caller: &Caller,
    id: i64,
    d: &Decision,
) -> ApiResult<Decided> {
    caller.must_be(Role::Approver, "approving a restore")?;
    let r = restore_request(shared, id).await?;
    four_eyes(
        shared,
        &r.requested_by,
        caller,
        &format!("restore request {id}"),
    )?;
    let worker = shared.workers.get(&r.instance).ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "unknown_instance",
            format!("{} is no longer run by this service", r.instance),
        )
    })?;
    decide_restore(shared, caller, &r, d, "approved").await?;
    let job = Job::Restore {
        request: id,
        by: caller.name.clone(),
    };
    shared
        .submit(&worker.instance.name, job)
        .await
        .map_err(ApiError::internal)?;
    let email = shared
        .store
        .tombstone(r.tombstone_id)
        .await?
        .map(|t| t.email);
    let note = match email {
        Some(email) => crate::workers::restore_note(shared, &worker.instance, &email).await,
        None => None,
    };
    Ok(Decided {
        plan: format!("restore-{id}"),
        status: "approved",
        by: caller.name.clone(),
        instance: r.instance,
        note,
    })
}

/// Reject a restore request (approver).
#[utoipa::path(post, path = "/api/v1/restores/{id}/reject", tag = "audit",
    params(("id" = i64, Path)), request_body(content = Decision, description = "optional"),
    responses((status = 200, body = Decided), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn reject_restore(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    body: Bytes,
) -> ApiResult<Json<Decided>> {
    let d = decision(&body)?;
    Ok(Json(
        reject_restore_request(&shared, &caller, id, &d).await?,
    ))
}

/// An approver rejects a restore request.
pub(crate) async fn reject_restore_request(
    shared: &Shared,
    caller: &Caller,
    id: i64,
    d: &Decision,
) -> ApiResult<Decided> {
    caller.must_be(Role::Approver, "rejecting a restore")?;
    let r = restore_request(shared, id).await?;
    decide_restore(shared, caller, &r, d, "rejected").await?;
    Ok(Decided {
        plan: format!("restore-{id}"),
        status: "rejected",
        by: caller.name.clone(),
        instance: r.instance,
        note: None,
    })
}

/// Webhook deliveries, newest first (the last 200).
#[utoipa::path(get, path = "/api/v1/webhooks/deliveries", tag = "audit",
    responses((status = 200, body = Deliveries)))]
async fn deliveries(
    State(shared): State<Arc<Shared>>,
    _caller: Caller,
) -> ApiResult<Json<Deliveries>> {
    let list = shared.store.deliveries(200).await?;
    Ok(Json(Deliveries {
        deliveries: list.into_iter().map(Into::into).collect(),
    }))
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let store_ok = shared.store.runs(None, 1).await.is_ok();
    let mut statuses = shared.statuses().await;
    let instances = shared
        .workers
        .values()
        .map(|w| {
            let s = statuses.remove(&w.instance.name).unwrap_or_default();
            ReadyInstance {
                name: w.instance.name.clone(),
                running: s.running,
                last_outcome: s.last_outcome,
                last_finished_at: s.last_finished_at.map(rfc3339),
            }
        })
        .collect();
    let status = if store_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Ready {
        ready: store_ok,
        state_store: if store_ok { "reachable" } else { "unreachable" },
        started_at: rfc3339(shared.started_at),
        instances,
    };
    (status, Json(body)).into_response()
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    shared.refresh_pending_gauge().await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        shared.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_reconcile_body_is_documented_as_the_handler_checks_it() {
        let doc = serde_json::to_string(&ApiDoc::openapi()).unwrap();
        assert!(doc.contains("\"minItems\":1"), "{doc}");
        assert!(
            doc.contains(&serde_json::to_string(PERSON_EMAIL).unwrap()),
            "{doc}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// Whatever the documented pattern allows, the handler takes: a client following
        /// the OpenAPI document is never refused (schemathesis checks the same from outside).
        #[test]
        fn only_an_object_or_nothing_is_a_reconcile_body(text in prop_oneof![
            Just("[]".to_string()),
            Just("[1]".to_string()),
            Just("\"x\"".to_string()),
            Just("7".to_string()),
            Just("true".to_string()),
        ]) {
            prop_assert!(reconcile_request(&Bytes::from(text.clone())).is_err(), "{text}");
            prop_assert!(decision(&Bytes::from(text.clone())).is_err(), "{text}");
        }

        #[test]
        fn every_email_the_pattern_allows_is_accepted(email in proptest::string::string_regex(PERSON_EMAIL.trim_start_matches('^').trim_end_matches('$')).unwrap()) {
            let body = Bytes::from(serde_json::to_vec(&serde_json::json!({"people": [email]})).unwrap());
            prop_assert!(reconcile_request(&body).is_ok(), "{email:?}");
        }
    }
}
