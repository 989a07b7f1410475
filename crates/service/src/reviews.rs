//! Access reviews in the service: `/api/v1/reviews`. Starting a campaign queues a full read
//! of the instance on its worker (the snapshot, with what proves it complete); reviewers
//! decide their items, each decision written with a signed audit-log row; closing brings
//! the revocations into force and queues a targeted reconcile of the people concerned,
//! requested by `review:ID`, which goes through the normal hold / four-eyes / apply path.
//! A fresh read after it marks each item `remediated` only when the access is gone.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use roster_domain::inventory::Inventory;
use roster_domain::review::{self, Assign, Completeness, Decided, Decision, Reviewers, Scope};
use roster_engine::actor::Actor;
use roster_engine::planning;
use roster_engine::text::rfc3339;
use roster_store::{NewDecision, NewReview, Review, ReviewItem};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::Shared;
use crate::api::{ApiError, ApiPath, ApiResult, Caller};
use crate::config::Instance;
use crate::tokens::Role;
use crate::views::ErrorBody;
use crate::workers::{Ended, Job, Recorder};

/// Each campaign's items as of its revision: a page of everyone's items need not read and
/// parse ten thousand rows again until a decision (or a delegation, a close, a
/// verification) moved the revision on.
#[derive(Default)]
pub struct ItemCache {
    held: std::sync::Mutex<std::collections::HashMap<i64, Revised>>,
}

/// A campaign's items at one revision.
type Revised = (i64, Arc<Vec<ReviewItem>>);

impl ItemCache {
    pub async fn get(
        &self,
        store: &roster_store::StateStore,
        id: i64,
    ) -> roster_store::Result<Arc<Vec<ReviewItem>>> {
        let revision = store.review_revision(id).await?.unwrap_or(-1);
        if let Some((r, items)) = self.held.lock().expect("review cache").get(&id)
            && *r == revision
        {
            return Ok(Arc::clone(items));
        }
        let items = Arc::new(store.review_items(id, None).await?);
        let mut held = self.held.lock().expect("review cache");
        // A handful of campaigns are looked at at once; an old one is read again if asked.
        if held.len() >= 8 && !held.contains_key(&id) {
            held.clear();
        }
        held.insert(id, (revision, Arc::clone(&items)));
        Ok(items)
    }
}

/// The campaign a run or plan was requested for: `review:ID` (and `review:ID ...`).
pub fn review_of_trigger(trigger: &str) -> Option<i64> {
    let rest = trigger.strip_prefix("review:")?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// What starting a campaign takes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartReview {
    /// The instance, as `/api/v1/instances` names it (`marketo.prod`).
    pub instance: String,
    /// `all` (default), `privileged`, `role=ROLE@WORKSPACE`, `group=NAME`.
    #[serde(default)]
    #[schema(pattern = r"^(all|privileged|(role|group)=.*\S.*)$")]
    pub scope: Option<String>,
    /// When reviewers must be done: a duration from now (`14d`, `36h`; an RFC 3339 time in
    /// the future is taken too).
    #[schema(pattern = r"^[1-9][0-9]{0,5}(ms|s|m|h|d)$")]
    pub due: String,
    /// `manager` (default: the person's manager, else the owner), `owner`, or a name.
    #[serde(default)]
    pub reviewer: Option<String>,
    /// What happens at the due date to items nobody decided: `keep` (default) or `revoke`
    /// (the campaign is closed), or `escalate` (they go to the instance's owner, else the
    /// starter, and the campaign stays open).
    #[serde(default)]
    #[schema(pattern = r"^(keep|revoke|escalate)$")]
    pub on_due: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ReviewerProgress {
    pub reviewer: String,
    pub items: usize,
    pub decided: usize,
}

/// A campaign with its progress.
#[derive(Serialize, ToSchema)]
pub struct ReviewView {
    pub id: i64,
    pub instance: String,
    pub app: String,
    pub scope: String,
    pub reviewers: String,
    pub on_due: String,
    pub due_at: String,
    /// `snapshotting`, `open`, `remediating`, `done` or `failed`.
    pub status: String,
    pub created_by: String,
    pub created_at: String,
    pub closed_by: Option<String>,
    pub closed_at: Option<String>,
    /// SHA-256 of the snapshot as kept; the signed `review.start` log row names it.
    pub snapshot_digest: Option<String>,
    /// The plan that carries out the campaign's revocations.
    pub plan_id: Option<String>,
    pub note: Option<String>,
    /// When the `review.due` reminder went out.
    pub reminded_at: Option<String>,
    /// When the due date was acted on (`review.overdue` and the `on_due` rule).
    pub due_handled_at: Option<String>,
    pub overdue: bool,
    pub items: usize,
    pub decided: usize,
    pub revoked: usize,
    pub remediated: usize,
    /// Revoked items whose access a fresh read has not yet found gone.
    pub pending_remediation: usize,
    /// What the snapshot's read covered (accounts by kind, pending invitations, API-only
    /// users, calls): the evidence that it is the whole population.
    #[schema(value_type = Option<Object>)]
    pub completeness: Option<Value>,
    pub by_reviewer: Vec<ReviewerProgress>,
}

#[derive(Serialize, ToSchema)]
pub struct Reviews {
    pub reviews: Vec<ReviewView>,
}

/// One item: a person's entitlement on one account, and what became of it.
#[derive(Serialize, ToSchema)]
pub struct ItemView {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub account_kind: String,
    pub account_id: String,
    pub role: String,
    pub scope: String,
    pub status: String,
    pub privileged: bool,
    pub api_only: bool,
    /// Whether the roster lists the person.
    pub listed: bool,
    pub reviewer: String,
    pub reviewer_because: String,
    /// `keep`, `revoke`, `reduce`, `not_decided`, or null while open.
    pub decision: Option<String>,
    pub keep_roles: Vec<String>,
    pub comment: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    pub bulk: bool,
    /// Seconds since the reviewer's previous decision in this campaign.
    pub seconds: Option<i64>,
    /// The signed audit-log row recording the decision.
    pub log_id: Option<i64>,
    /// `pending` or `remediated` for revoked access.
    pub remediation: Option<String>,
    pub remediated_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Items {
    pub items: Vec<ItemView>,
}

/// A decision on one item.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// `keep`, `revoke`, `reduce` or `not_decided`.
    #[schema(pattern = r"^(keep|revoke|reduce|not_decided)$")]
    pub decision: String,
    /// For `reduce`: the account's roles that stay, as `ROLE@WORKSPACE`.
    #[serde(default)]
    pub keep_roles: Vec<String>,
    /// Required to keep privileged access; at most 2,000 characters.
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub comment: Option<String>,
}

/// One decision on many items (recorded as a bulk decision).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    #[schema(min_items = 1, value_type = Vec<i64>)]
    pub items: Vec<serde_json::Number>,
    /// `keep`, `revoke` or `not_decided` (a reduce is per account).
    #[schema(pattern = r"^(keep|revoke|not_decided)$")]
    pub decision: String,
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub comment: Option<String>,
}

fn item_view(i: ReviewItem) -> ItemView {
    ItemView {
        id: i.item.id,
        email: i.item.email,
        name: i.item.name,
        account_kind: i.item.account_kind.as_str().into(),
        account_id: i.item.account_id,
        role: i.item.role,
        scope: i.item.scope,
        status: i.item.status.as_str().into(),
        privileged: i.item.privileged,
        api_only: i.item.api_only,
        listed: i.item.listed,
        reviewer: i.item.reviewer,
        reviewer_because: i.item.reviewer_because,
        decision: i.decision,
        keep_roles: i.keep_roles,
        comment: i.comment,
        decided_by: i.decided_by,
        decided_at: i.decided_at.map(rfc3339),
        bulk: i.bulk,
        seconds: i.seconds,
        log_id: i.log_id,
        remediation: i.remediation,
        remediated_at: i.remediated_at.map(rfc3339),
    }
}

async fn view(shared: &Shared, r: Review) -> ApiResult<ReviewView> {
    let t = shared.store.review_tallies(r.id).await?;
    let by_reviewer = shared
        .store
        .review_progress(r.id)
        .await?
        .into_iter()
        .map(|(reviewer, items, decided)| ReviewerProgress {
            reviewer,
            items,
            decided,
        })
        .collect();
    let completeness = completeness_of(shared, r.id).await?;
    let now = OffsetDateTime::now_utc();
    Ok(ReviewView {
        overdue: r.status == "open" && (r.due_at < now || r.due_handled_at.is_some()),
        items: t.items,
        decided: t.decided,
        revoked: t.revoked,
        remediated: t.remediated,
        pending_remediation: t.pending,
        by_reviewer,
        completeness,
        id: r.id,
        instance: r.instance,
        app: r.app,
        scope: r.scope,
        reviewers: r.reviewers,
        on_due: r.on_due,
        due_at: rfc3339(r.due_at),
        status: r.status,
        created_by: r.created_by,
        created_at: rfc3339(r.created_at),
        closed_by: r.closed_by,
        closed_at: r.closed_at.map(rfc3339),
        snapshot_digest: r.snapshot_digest,
        plan_id: r.plan_id,
        note: r.note,
        reminded_at: r.reminded_at.map(rfc3339),
        due_handled_at: r.due_handled_at.map(rfc3339),
    })
}

/// A campaign's completeness figures: kept apart from the snapshot since schema step 20;
/// read from the snapshot for campaigns opened before.
pub(crate) async fn completeness_of(shared: &Shared, id: i64) -> ApiResult<Option<Value>> {
    if let Some(text) = shared.store.review_completeness(id).await? {
        return Ok(serde_json::from_str(&text).ok());
    }
    Ok(match shared.store.review_snapshot(id).await? {
        Some(s) => serde_json::from_str::<Value>(&s)
            .ok()
            .map(|v| v["completeness"].clone()),
        None => None,
    })
}

fn object<T: serde::de::DeserializeOwned>(body: &Bytes, example: &str) -> ApiResult<T> {
    if !serde_json::from_slice::<Value>(body).is_ok_and(|v| v.is_object()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("the body must be a JSON object such as {example}"),
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("the body must be JSON such as {example}: {e}"),
        )
    })
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
}

fn due_at(text: &str, now: OffsetDateTime) -> ApiResult<OffsetDateTime> {
    let t = text.trim();
    if let Ok(at) = OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339) {
        if at <= now {
            return Err(bad(format!("due {t} has passed; give a later time")));
        }
        return Ok(at);
    }
    let d = roster_engine::conn::parse_duration(t).map_err(|e| {
        bad(format!(
            "due {t:?} is neither a duration (14d, 36h) nor an RFC 3339 time: {e}"
        ))
    })?;
    if d.is_zero() {
        return Err(bad("due must be in the future: give for example 14d"));
    }
    time::Duration::try_from(d)
        .ok()
        .and_then(|d| now.checked_add(d))
        .filter(|at| at.year() <= 9999)
        .ok_or_else(|| bad(format!("due {t:?} is too far away; give for example 14d")))
}

async fn found(shared: &Shared, id: i64) -> ApiResult<Review> {
    shared.store.review(id).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("there is no review {id}; GET /api/v1/reviews lists them"),
        )
    })
}

fn not_open(r: &Review) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "not_open",
        format!(
            "review {} is {}, not open{}",
            r.id,
            r.status,
            match r.status.as_str() {
                "snapshotting" => ": its snapshot is being read; try again shortly",
                _ => "",
            }
        ),
    )
}

/// Start an access review of one instance (operator). Its snapshot is read by the
/// instance's worker; the campaign is `snapshotting` until then, `open` after.
#[utoipa::path(post, path = "/api/v1/reviews", tag = "reviews", request_body = StartReview,
    responses((status = 202, body = ReviewView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn start(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<ReviewView>)> {
    let req: StartReview = object(
        &body,
        r#"{"instance": "marketo.prod", "scope": "privileged", "due": "14d"}"#,
    )?;
    let id = start_review(&shared, &caller, &req).await?;
    let r = found(&shared, id).await?;
    Ok((StatusCode::ACCEPTED, Json(view(&shared, r).await?)))
}

/// Starts a campaign for `caller` (operator): gives back its id.
pub(crate) async fn start_review(
    shared: &Arc<Shared>,
    caller: &Caller,
    req: &StartReview,
) -> ApiResult<i64> {
    caller.must_be(Role::Operator, "starting an access review")?;
    let worker = crate::api::instance_worker(shared, &req.instance)?;
    let scope = Scope::parse(req.scope.as_deref().unwrap_or("all")).map_err(bad)?;
    let reviewers = Reviewers::parse(req.reviewer.as_deref().unwrap_or("manager"));
    let on_due = match req.on_due.as_deref().map(str::trim).unwrap_or("keep") {
        o @ ("keep" | "revoke" | "escalate") => o,
        other => {
            return Err(bad(format!(
                "on_due {other:?} is not keep, revoke or escalate (what the due date does with items nobody decided)"
            )));
        }
    };
    let now = OffsetDateTime::now_utc();
    let due = due_at(&req.due, now)?;
    let inst = &worker.instance;
    let id = shared
        .store
        .create_review(
            &NewReview {
                instance: &inst.name,
                app: inst.app,
                scope: &scope.to_string(),
                reviewers: &reviewers.to_string(),
                on_due,
                due_at: due,
                created_by: &caller.name,
            },
            now,
        )
        .await?;
    shared
        .submit(&inst.name, Job::ReviewSnapshot { review: id })
        .await
        .map_err(ApiError::internal)?;
    Ok(id)
}

/// Every access review, newest first.
#[utoipa::path(get, path = "/api/v1/reviews", tag = "reviews",
    responses((status = 200, body = Reviews)))]
pub async fn list(State(shared): State<Arc<Shared>>, _caller: Caller) -> ApiResult<Json<Reviews>> {
    let mut reviews = Vec::new();
    for r in shared.store.reviews().await? {
        reviews.push(view(&shared, r).await?);
    }
    Ok(Json(Reviews { reviews }))
}

/// One access review with its progress per reviewer and the snapshot's completeness.
#[utoipa::path(get, path = "/api/v1/reviews/{id}", tag = "reviews", params(("id" = i64, Path)),
    responses((status = 200, body = ReviewView), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(shared): State<Arc<Shared>>,
    _caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<ReviewView>> {
    let r = found(&shared, id).await?;
    Ok(Json(view(&shared, r).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ItemsQuery {
    /// Only this reviewer's items; `me` for the caller's own.
    reviewer: Option<String>,
}

/// A review's items with their reviewers and decisions.
#[utoipa::path(get, path = "/api/v1/reviews/{id}/items", tag = "reviews",
    params(("id" = i64, Path), ItemsQuery),
    responses((status = 200, body = Items), (status = 404, body = ErrorBody)))]
pub async fn items(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    crate::api::ApiQuery(q): crate::api::ApiQuery<ItemsQuery>,
) -> ApiResult<Json<Items>> {
    found(&shared, id).await?;
    let reviewer = q
        .reviewer
        .map(|r| if r == "me" { caller.name.clone() } else { r });
    let items = shared.store.review_items(id, reviewer.as_deref()).await?;
    Ok(Json(Items {
        items: items.into_iter().map(item_view).collect(),
    }))
}

/// Whether `caller` may decide `item`: its reviewer, never the person it is about.
fn may_decide(caller: &Caller, item: &ReviewItem) -> ApiResult<()> {
    if caller.name.eq_ignore_ascii_case(&item.item.email) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "own_access",
            format!(
                "item {} is {}'s own access; nobody reviews their own access",
                item.item.id, item.item.email
            ),
        ));
    }
    if !caller.name.eq_ignore_ascii_case(&item.item.reviewer) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_reviewer",
            format!(
                "item {} is for {} to review ({}), not {:?}",
                item.item.id,
                if item.item.reviewer.is_empty() {
                    "nobody yet"
                } else {
                    &item.item.reviewer
                },
                item.item.reviewer_because,
                caller.name
            ),
        ));
    }
    Ok(())
}

fn decision_log(
    caller: &Caller,
    r: &Review,
    item: &ReviewItem,
    d: Decision,
    keep_roles: &[String],
    comment: Option<&str>,
    bulk: bool,
) -> roster_store::NewLogEntry {
    let mut entry = Actor::resolve(Some(&caller.name)).log(
        &r.app,
        "review.decide",
        &format!("review {} item {}", r.id, item.item.id),
        d.as_str(),
    );
    entry.instance = Some(r.instance.clone());
    entry.detail = Some(
        json!({
            "review": r.id,
            "item": item.item.id,
            "email": item.item.email,
            "account": item.item.account_id,
            "role": item.item.role,
            "scope": item.item.scope,
            "decision": d.as_str(),
            "keep_roles": keep_roles,
            "comment": comment,
            "bulk": bulk,
        })
        .to_string(),
    );
    entry
}

fn comment_of(c: Option<&String>) -> ApiResult<Option<&str>> {
    let c = c.map(|c| c.trim()).filter(|c| !c.is_empty());
    if c.is_some_and(|c| c.chars().count() > 2000) {
        return Err(bad("the comment is longer than 2000 characters"));
    }
    Ok(c)
}

/// Decide one item (its reviewer only). Keeping privileged access needs a comment.
#[utoipa::path(post, path = "/api/v1/reviews/{id}/items/{item}/decision", tag = "reviews",
    params(("id" = i64, Path), ("item" = i64, Path)), request_body = DecisionBody,
    responses((status = 200, body = ItemView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn decide(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath((id, item_id)): ApiPath<(i64, i64)>,
    body: Bytes,
) -> ApiResult<Json<ItemView>> {
    let body: DecisionBody = object(&body, r#"{"decision": "keep", "comment": "why"}"#)?;
    let item = decide_item(&shared, &caller, id, item_id, &body).await?;
    Ok(Json(item_view(item)))
}

/// Records `caller`'s decision on one item (its reviewer only).
pub(crate) async fn decide_item(
    shared: &Arc<Shared>,
    caller: &Caller,
    id: i64,
    item_id: i64,
    body: &DecisionBody,
) -> ApiResult<ReviewItem> {
    let r = found(shared, id).await?;
    if r.status != "open" {
        return Err(not_open(&r));
    }
    let item = shared
        .store
        .review_item(id, item_id)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("review {id} has no item {item_id}"),
            )
        })?;
    let item = &item;
    may_decide(caller, item)?;
    let d = Decision::parse(&body.decision).ok_or_else(|| {
        bad(format!(
            "decision {:?} is not keep, revoke, reduce or not_decided",
            body.decision
        ))
    })?;
    let comment = comment_of(body.comment.as_ref())?;
    let person = shared.store.review_items_of(id, &item.item.email).await?;
    let siblings: Vec<&review::Item> = person
        .iter()
        .filter(|i| i.item.email == item.item.email && i.item.account_id == item.item.account_id)
        .map(|i| &i.item)
        .collect();
    review::check_decision(
        &item.item,
        &siblings,
        d,
        &body.keep_roles,
        comment.unwrap_or(""),
    )
    .map_err(bad)?;
    let keep_roles = if d == Decision::Reduce {
        body.keep_roles.clone()
    } else {
        Vec::new()
    };
    let log = decision_log(caller, &r, item, d, &keep_roles, comment, false);
    let recorded = shared
        .store
        .decide(
            id,
            &[(
                item_id,
                NewDecision {
                    decision: d.as_str(),
                    keep_roles: &keep_roles,
                    comment,
                    by: &caller.name,
                    bulk: false,
                },
                log,
            )],
            OffsetDateTime::now_utc(),
        )
        .await?;
    if !recorded {
        return Err(not_open(&found(shared, id).await?));
    }
    shared
        .store
        .review_item(id, item_id)
        .await?
        .ok_or_else(|| ApiError::internal("a decided item vanished"))
}

/// One decision on many items of the caller's (recorded as bulk, each with its log row).
#[utoipa::path(post, path = "/api/v1/reviews/{id}/decisions", tag = "reviews",
    params(("id" = i64, Path)), request_body = BulkBody,
    responses((status = 200, body = Items), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn decide_many(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    body: Bytes,
) -> ApiResult<Json<Items>> {
    let body: BulkBody = object(
        &body,
        r#"{"items": [1, 2], "decision": "keep", "comment": "why"}"#,
    )?;
    if body.items.is_empty() {
        return Err(bad("items is empty: name the items to decide"));
    }
    // JSON's integers as any client writes them (`7` or `7.0`).
    let wanted: BTreeSet<i64> = body
        .items
        .iter()
        .map(|n| {
            n.as_i64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                        .map(|f| f as i64)
                })
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::NOT_FOUND,
                        "not_found",
                        format!("review {id} has no item {n}; nothing was recorded"),
                    )
                })
        })
        .collect::<ApiResult<_>>()?;
    let items = decide_bulk(
        &shared,
        &caller,
        id,
        &wanted,
        &body.decision,
        body.comment.as_ref(),
    )
    .await?
    .into_iter()
    .map(item_view)
    .collect();
    Ok(Json(Items { items }))
}

/// Records one decision of `caller`'s on many items (a bulk decision): all or none.
pub(crate) async fn decide_bulk(
    shared: &Arc<Shared>,
    caller: &Caller,
    id: i64,
    wanted: &BTreeSet<i64>,
    decision: &str,
    comment: Option<&String>,
) -> ApiResult<Vec<ReviewItem>> {
    if wanted.is_empty() {
        return Err(bad("no items chosen: choose the items to decide"));
    }
    let r = found(shared, id).await?;
    if r.status != "open" {
        return Err(not_open(&r));
    }
    let d = match Decision::parse(decision) {
        Some(Decision::Reduce) => return Err(bad("reduce is decided per account, not in bulk")),
        Some(d) => d,
        None => {
            return Err(bad(format!(
                "decision {:?} is not keep, revoke or not_decided",
                decision
            )));
        }
    };
    let comment = comment_of(comment)?;
    let all = shared.store.review_items(id, None).await?;
    let mut decisions = Vec::new();
    for item_id in wanted {
        let item = all.iter().find(|i| i.item.id == *item_id).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("review {id} has no item {item_id}; nothing was recorded"),
            )
        })?;
        may_decide(caller, item)?;
        review::check_decision(&item.item, &[], d, &[], comment.unwrap_or(""))
            .map_err(|e| bad(format!("item {item_id}: {e}; nothing was recorded")))?;
        let log = decision_log(caller, &r, item, d, &[], comment, true);
        decisions.push((
            *item_id,
            NewDecision {
                decision: d.as_str(),
                keep_roles: &[],
                comment,
                by: &caller.name,
                bulk: true,
            },
            log,
        ));
    }
    if !shared
        .store
        .decide(id, &decisions, OffsetDateTime::now_utc())
        .await?
    {
        return Err(not_open(&found(shared, id).await?));
    }
    // Read back only the items decided, not the whole campaign again.
    let mut items = Vec::with_capacity(wanted.len());
    for item in wanted {
        if let Some(i) = shared.store.review_item(id, *item).await? {
            items.push(i);
        }
    }
    Ok(items)
}

/// Close a review (approver): its revokes and reduces come into force and a plan of them,
/// requested by `review:ID`, is made for the people concerned; it waits for approval like
/// any destructive plan. Items nobody decided follow the campaign's `on_due`.
#[utoipa::path(post, path = "/api/v1/reviews/{id}/close", tag = "reviews",
    params(("id" = i64, Path)),
    responses((status = 202, body = ReviewView), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn close(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<(StatusCode, Json<ReviewView>)> {
    close_as(&shared, &caller, id).await?;
    let r = found(&shared, id).await?;
    Ok((StatusCode::ACCEPTED, Json(view(&shared, r).await?)))
}

/// Closes campaign `id` for `caller` (an approver).
pub(crate) async fn close_as(shared: &Arc<Shared>, caller: &Caller, id: i64) -> ApiResult<()> {
    caller.must_be(Role::Approver, "closing an access review")?;
    let r = found(shared, id).await?;
    if r.status != "open" {
        return Err(not_open(&r));
    }
    close_now(shared, &r, &caller.name).await
}

/// Closes open campaign `r` as `closer`: its revokes and reduces (and, with `on_due =
/// revoke`, what nobody decided) come into force and a targeted run of the people
/// concerned makes their plan, which waits for approval like any destructive plan.
async fn close_now(shared: &Arc<Shared>, r: &Review, closer: &str) -> ApiResult<()> {
    let id = r.id;
    let app = roster_domain::desired::App::parse(&r.app)
        .ok_or_else(|| ApiError::internal(format!("review {id} of unknown app {}", r.app)))?;
    let items = shared.store.review_items(id, None).await?;
    let undecided = items
        .iter()
        .filter(|i| matches!(i.decision.as_deref(), None | Some("not_decided")))
        .count();
    let decided: Vec<Decided> = items
        .iter()
        .map(|i| Decided {
            item: i.item.clone(),
            decision: match i.decision.as_deref().and_then(Decision::parse) {
                Some(d) if d != Decision::NotDecided => d,
                _ if r.on_due == "revoke" => Decision::Revoke,
                _ => Decision::NotDecided,
            },
            keep_roles: i.keep_roles.clone(),
        })
        .collect();
    let revocations = review::revocations(app, id, &decided)
        .into_iter()
        .map(|mut rv| {
            let by = items
                .iter()
                .find(|i| i.item.id == rv.item)
                .and_then(|i| i.decided_by.clone())
                .unwrap_or_else(|| format!("on_due = {}", r.on_due));
            rv.reason = format!("{} (decided by {by})", rv.reason);
            rv
        })
        .collect::<Vec<_>>();
    let mut log =
        Actor::resolve(Some(closer)).log(&r.app, "review.close", &format!("review {id}"), "done");
    log.instance = Some(r.instance.clone());
    log.detail = Some(
        json!({
            "review": id,
            "items": items.len(),
            "undecided": undecided,
            "on_due": r.on_due,
            "revocations": revocations.iter().map(|rv| json!({"item": rv.item, "email": rv.email, "role": rv.role, "scope": rv.scope})).collect::<Vec<_>>(),
        })
        .to_string(),
    );
    let now = OffsetDateTime::now_utc();
    if !shared
        .store
        .close_review(id, closer, &revocations, &r.instance, &log, now)
        .await?
    {
        return Err(not_open(&found(shared, id).await?));
    }
    shared.announce_log_head().await;
    if !revocations.is_empty() {
        let people: Vec<String> = revocations
            .iter()
            .map(|rv| rv.email.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        shared.store.add_targets(&r.instance, &people).await?;
        shared
            .submit(
                &r.instance,
                Job::Reconcile {
                    trigger: format!("review:{id}"),
                    targeted: true,
                },
            )
            .await
            .map_err(ApiError::internal)?;
    }
    shared.notifier.notify(
        "review.closed",
        Some(&r.instance),
        format!(
            "review {id} closed by {closer}: {} item(s), {} revocation(s), {undecided} undecided ({}){}",
            items.len(),
            revocations.len(),
            r.on_due,
            link(shared, &format!("/console/reviews/{id}"))
                .map(|l| format!(" {l}"))
                .unwrap_or_default()
        ),
        json!({"review": id, "items": items.len(), "revocations": revocations.len(), "undecided": undecided}),
    );
    Ok(())
}

/// `path` under the service's public URL, when `[service] public_url` names it.
fn link(shared: &Shared, path: &str) -> Option<String> {
    shared
        .config
        .public_url
        .as_deref()
        .map(|base| format!("{}{path}", base.trim_end_matches('/')))
}

/// Who takes over an item at the due date: the instance's owner, else the campaign's
/// starter; never the person whose access it is.
fn fallback_for(inst_owner: Option<&str>, r: &Review, item: &ReviewItem) -> Option<String> {
    [inst_owner, Some(r.created_by.as_str())]
        .into_iter()
        .flatten()
        .map(str::to_lowercase)
        .find(|who| !who.eq_ignore_ascii_case(&item.item.email) && *who != item.item.reviewer)
}

/// Reminders and due dates of open campaigns, as of `now` (the service calls it every
/// minute; each campaign's reminder and due date are claimed in the state, so of many
/// processes one acts). A reminder (`review.due`) goes out once when less than a quarter
/// of the campaign's time, at most two days, is left; at the due date `review.overdue`
/// goes out and the campaign's rule runs: `keep` and `revoke` close it (undecided items
/// kept, or revoked through the approved plan), `escalate` hands its open items to the
/// instance's owner (else the starter) and leaves it open.
pub async fn check_due(shared: &Arc<Shared>, now: OffsetDateTime) -> anyhow::Result<()> {
    for r in shared.store.reviews().await? {
        if r.status != "open" {
            continue;
        }
        let span: time::Duration = r.due_at - r.created_at;
        let window = std::cmp::min(span / 4_i32, time::Duration::days(2));
        // The items are read only when something is due: this runs every minute.
        if now < r.due_at {
            if now < r.due_at - window || r.reminded_at.is_some() {
                continue;
            }
            let items = shared.store.review_items(r.id, None).await?;
            let open: Vec<&ReviewItem> = items.iter().filter(|i| i.decision.is_none()).collect();
            if !open.is_empty() && shared.store.claim_review_reminder(r.id, now).await? {
                let by = per_reviewer(shared, r.id, &open);
                shared.notifier.notify(
                    "review.due",
                    Some(&r.instance),
                    format!(
                        "review {} is due {}: {} item(s) still open ({})",
                        r.id,
                        rfc3339(r.due_at),
                        open.len(),
                        by.iter()
                            .map(|b| format!("{}: {} {}", b["reviewer"].as_str().unwrap_or(""), b["open"], b["link"].as_str().unwrap_or("")))
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                    json!({"review": r.id, "due_at": rfc3339(r.due_at), "open": open.len(), "reviewers": by, "items": first_items(r.id, &open)}),
                );
            }
            continue;
        }
        if r.due_handled_at.is_some() || !shared.store.claim_review_due(r.id, now).await? {
            continue;
        }
        let items = shared.store.review_items(r.id, None).await?;
        let open: Vec<&ReviewItem> = items.iter().filter(|i| i.decision.is_none()).collect();
        let by = per_reviewer(shared, r.id, &open);
        shared.notifier.notify(
            "review.overdue",
            Some(&r.instance),
            format!(
                "review {} passed its due date {} with {} item(s) open; on_due = {}",
                r.id,
                rfc3339(r.due_at),
                open.len(),
                r.on_due
            ),
            json!({"review": r.id, "due_at": rfc3339(r.due_at), "open": open.len(), "on_due": r.on_due, "reviewers": by}),
        );
        match r.on_due.as_str() {
            "escalate" => {
                let owner = shared
                    .workers
                    .get(&r.instance)
                    .and_then(|w| w.instance.owner.clone());
                let moves: Vec<(i64, String, String)> = open
                    .iter()
                    .filter_map(|i| {
                        fallback_for(owner.as_deref(), &r, i).map(|to| {
                            (
                                i.item.id,
                                to,
                                format!("escalated at the due date (was {})", i.item.reviewer),
                            )
                        })
                    })
                    .collect();
                if moves.is_empty() {
                    continue;
                }
                let mut log = Actor::resolve(Some("roster")).log(
                    &r.app,
                    "review.escalate",
                    &format!("review {}", r.id),
                    "done",
                );
                log.instance = Some(r.instance.clone());
                log.detail = Some(
                    json!({
                        "review": r.id,
                        "items": moves.iter().map(|(i, to, _)| json!({"item": i, "to": to})).collect::<Vec<_>>(),
                    })
                    .to_string(),
                );
                let n = shared.store.reassign_items(r.id, &moves, &log, now).await?;
                shared.announce_log_head().await;
                let to: BTreeSet<&str> = moves.iter().map(|(_, to, _)| to.as_str()).collect();
                shared.notifier.notify(
                    "review.escalated",
                    Some(&r.instance),
                    format!(
                        "review {}: {n} open item(s) escalated to {}{}",
                        r.id,
                        to.into_iter().collect::<Vec<_>>().join(", "),
                        link(shared, &format!("/console/reviews/{}", r.id))
                            .map(|l| format!(" {l}"))
                            .unwrap_or_default()
                    ),
                    json!({"review": r.id, "items": n}),
                );
            }
            _ => {
                if let Err(e) = close_now(shared, &r, "roster (due date)").await {
                    tracing::warn!(
                        review = r.id,
                        "cannot close the overdue review: {}",
                        e.message()
                    );
                }
            }
        }
    }
    Ok(())
}

/// The first open items, for a message that lets their reviewers decide them there.
fn first_items(review: i64, open: &[&ReviewItem]) -> Vec<Value> {
    open.iter()
        .take(10)
        .map(|i| {
            json!({
                "review": review,
                "item": i.item.id,
                "email": i.item.email,
                "entitlement": if i.item.scope.is_empty() { i.item.role.clone() } else { format!("{}@{}", i.item.role, i.item.scope) },
                "reviewer": i.item.reviewer,
                "privileged": i.item.privileged,
            })
        })
        .collect()
}

/// Open items per reviewer, with a link to each one's page in the console.
fn per_reviewer(shared: &Shared, review: i64, open: &[&ReviewItem]) -> Vec<Value> {
    let mut by: BTreeMap<&str, usize> = BTreeMap::new();
    for i in open {
        *by.entry(i.item.reviewer.as_str()).or_default() += 1;
    }
    by.into_iter()
        .map(|(reviewer, n)| {
            json!({
                "reviewer": reviewer,
                "open": n,
                "link": link(shared, &format!("/console/reviews/{review}")),
            })
        })
        .collect()
}

/// A revocation in force: the planner removes this role wherever it finds it and never
/// grants it again, whatever the roster says, until it is lifted.
#[derive(Serialize, ToSchema)]
pub struct RevocationView {
    pub instance: String,
    pub email: String,
    pub account_kind: String,
    pub role: String,
    pub scope: String,
    pub review: i64,
    pub item: i64,
    pub reason: String,
}

#[derive(Serialize, ToSchema)]
pub struct Revocations {
    pub revocations: Vec<RevocationView>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RevocationsQuery {
    /// The instance (`marketo.prod`); every instance when absent.
    instance: Option<String>,
}

/// The revocations in force, made by closed access reviews.
#[utoipa::path(get, path = "/api/v1/revocations", tag = "reviews", params(RevocationsQuery),
    responses((status = 200, body = Revocations), (status = 404, body = ErrorBody)))]
pub async fn revocations(
    State(shared): State<Arc<Shared>>,
    _caller: Caller,
    crate::api::ApiQuery(q): crate::api::ApiQuery<RevocationsQuery>,
) -> ApiResult<Json<Revocations>> {
    let names: Vec<String> = match q.instance {
        Some(i) => vec![
            crate::api::instance_worker(&shared, &i)?
                .instance
                .name
                .clone(),
        ],
        None => shared.workers.keys().cloned().collect(),
    };
    let mut out = Vec::new();
    for instance in names {
        for r in shared.store.revocations(&instance).await? {
            out.push(RevocationView {
                instance: instance.clone(),
                email: r.email,
                account_kind: r.account_kind.as_str().into(),
                role: r.role,
                scope: r.scope,
                review: r.review,
                item: r.item,
                reason: r.reason,
            });
        }
    }
    Ok(Json(Revocations { revocations: out }))
}

/// Lifting a revocation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LiftBody {
    pub instance: String,
    pub email: String,
    /// The role as the revocation names it (`Standard User`, a Magento group ...).
    pub role: String,
    /// Its workspace or website (empty where the app has none).
    #[serde(default)]
    pub scope: String,
    /// Why it may be granted again (required).
    #[schema(min_length = 1, max_length = 2000, pattern = r"\S")]
    pub comment: String,
}

#[derive(Serialize, ToSchema)]
pub struct Lifted {
    pub lifted: usize,
}

/// Lift a revocation (approver, with a comment): the planner may grant the role again
/// where the roster gives it. Recorded with a signed log row.
#[utoipa::path(post, path = "/api/v1/revocations/lift", tag = "reviews", request_body = LiftBody,
    responses((status = 200, body = Lifted), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn lift(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<Json<Lifted>> {
    caller.must_be(Role::Approver, "lifting a revocation")?;
    let b: LiftBody = object(
        &body,
        r#"{"instance": "marketo.prod", "email": "a@example.com", "role": "Standard User", "scope": "Default", "comment": "why"}"#,
    )?;
    let comment = comment_of(Some(&b.comment))?
        .ok_or_else(|| bad("a comment is required: say why the role may be granted again"))?;
    let worker = crate::api::instance_worker(&shared, &b.instance)?;
    let mut log = Actor::resolve(Some(&caller.name)).log(
        worker.instance.app.name(),
        "review.lift",
        &b.email.to_lowercase(),
        "done",
    );
    log.instance = Some(b.instance.clone());
    log.detail = Some(json!({"role": b.role, "scope": b.scope, "comment": comment}).to_string());
    let n = shared
        .store
        .lift_revocation(
            &b.instance,
            b.email.trim(),
            &b.role,
            &b.scope,
            &log,
            OffsetDateTime::now_utc(),
        )
        .await?;
    if n == 0 {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "{} has no revocation of {}{} on {}; GET /api/v1/revocations lists them",
                b.email,
                b.role,
                if b.scope.is_empty() {
                    String::new()
                } else {
                    format!("@{}", b.scope)
                },
                b.instance
            ),
        ));
    }
    shared.announce_log_head().await;
    Ok(Json(Lifted { lifted: n }))
}

/// Handing one's items to someone else.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DelegateBody {
    /// Who reviews them instead (a name or email as they sign in).
    #[schema(pattern = r"^[A-Za-z0-9._@-]{1,64}$")]
    pub to: String,
    /// Which of the caller's open items; all of them when absent.
    #[serde(default)]
    #[schema(value_type = Option<Vec<i64>>)]
    pub items: Option<Vec<serde_json::Number>>,
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub comment: Option<String>,
}

/// Delegate the caller's open items of a review to someone else (recorded with a signed
/// log row; an item never goes to the person it is about).
#[utoipa::path(post, path = "/api/v1/reviews/{id}/delegate", tag = "reviews",
    params(("id" = i64, Path)), request_body = DelegateBody,
    responses((status = 200, body = Items), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delegate(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    body: Bytes,
) -> ApiResult<Json<Items>> {
    let body: DelegateBody = object(
        &body,
        r#"{"to": "kim@acme.example", "comment": "on leave"}"#,
    )?;
    let to = body.to.trim().to_lowercase();
    crate::tokens::check_name(&to).map_err(|e| {
        bad(format!(
            "to: {e}; name who reviews the items instead, as they sign in"
        ))
    })?;
    if to.eq_ignore_ascii_case(&caller.name) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "nothing_to_delegate",
            "the items are yours already: delegate to someone else",
        ));
    }
    let comment = comment_of(body.comment.as_ref())?;
    let r = found(&shared, id).await?;
    if r.status != "open" {
        return Err(not_open(&r));
    }
    let all = shared.store.review_items(id, None).await?;
    let chosen: Vec<&ReviewItem> = match &body.items {
        None => all
            .iter()
            .filter(|i| i.decision.is_none() && i.item.reviewer.eq_ignore_ascii_case(&caller.name))
            .collect(),
        Some(ids) => {
            let mut out = Vec::new();
            for n in ids {
                let item = n
                    .as_i64()
                    .and_then(|n| all.iter().find(|i| i.item.id == n))
                    .ok_or_else(|| {
                        ApiError::new(
                            StatusCode::NOT_FOUND,
                            "not_found",
                            format!("review {id} has no item {n}; nothing was delegated"),
                        )
                    })?;
                may_decide(&caller, item)?;
                if item.decision.is_some() {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "decided",
                        format!(
                            "item {} is decided already; nothing was delegated",
                            item.item.id
                        ),
                    ));
                }
                out.push(item);
            }
            out
        }
    };
    if chosen.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "nothing_to_delegate",
            format!(
                "{} has no open items in review {id} to delegate",
                caller.name
            ),
        ));
    }
    if let Some(own) = chosen
        .iter()
        .find(|i| i.item.email.eq_ignore_ascii_case(&to))
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "own_access",
            format!(
                "item {} is {}'s own access: nobody reviews their own access; nothing was delegated",
                own.item.id, own.item.email
            ),
        ));
    }
    let because = format!("delegated by {}", caller.name);
    let moves: Vec<(i64, String, String)> = chosen
        .iter()
        .map(|i| (i.item.id, to.clone(), because.clone()))
        .collect();
    let mut log = Actor::resolve(Some(&caller.name)).log(
        &r.app,
        "review.delegate",
        &format!("review {id}"),
        "done",
    );
    log.instance = Some(r.instance.clone());
    log.detail = Some(
        json!({"review": id, "to": to, "items": moves.iter().map(|m| m.0).collect::<Vec<_>>(), "comment": comment})
            .to_string(),
    );
    shared
        .store
        .reassign_items(id, &moves, &log, OffsetDateTime::now_utc())
        .await?;
    shared.announce_log_head().await;
    let moved: BTreeSet<i64> = moves.iter().map(|m| m.0).collect();
    let items = shared
        .store
        .review_items(id, None)
        .await?
        .into_iter()
        .filter(|i| moved.contains(&i.item.id))
        .map(item_view)
        .collect();
    Ok(Json(Items { items }))
}

/// A review's evidence bundle: its files by name, `manifest.json` signed in
/// `manifest.sig`. `roster review evidence ID --out DIR` writes them to a directory.
#[derive(Serialize, ToSchema)]
pub struct EvidenceView {
    pub review: i64,
    /// Each file's text by name.
    pub files: BTreeMap<String, String>,
}

/// The evidence bundle of a review (an auditor's copy): the campaign, its snapshot with
/// its completeness, every item and decision, the remediation plan, its journal and runs,
/// the audit-log rows of all of it and a printable summary, under a signed manifest. The
/// service checks the bundle as an auditor would before giving it; a state edited behind
/// the log's back is refused with what does not match.
#[utoipa::path(get, path = "/api/v1/reviews/{id}/evidence", tag = "reviews",
    params(("id" = i64, Path)),
    responses((status = 200, body = EvidenceView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn evidence(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<EvidenceView>> {
    use roster_engine::evidence::{self, EvidenceError};
    let bundle = evidence::build(&shared.store, id, &caller.name, OffsetDateTime::now_utc())
        .await
        .map_err(|e| match e {
            EvidenceError::NoReview(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            EvidenceError::NotReady { .. } => {
                ApiError::new(StatusCode::CONFLICT, "not_open", e.to_string())
            }
            other => ApiError::internal(other),
        })?;
    let keys = shared.store.keys()?;
    if let Err(problems) = evidence::verify(&bundle.files, keys) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "evidence_mismatch",
            format!(
                "review {id}'s records in the state do not match the signed audit log, so no evidence is given: {}; check the state with `roster log verify`",
                problems.join("; ")
            ),
        ));
    }
    Ok(Json(EvidenceView {
        review: id,
        files: bundle
            .files
            .into_iter()
            .map(|(name, bytes)| (name, String::from_utf8_lossy(&bytes).into_owned()))
            .collect(),
    }))
}

/// The worker's half of starting a campaign: a full read of the instance, kept as the
/// snapshot with what it covered, turned into items; the signed `review.start` log row
/// names the snapshot's digest.
pub(crate) async fn snapshot(
    shared: &Arc<Shared>,
    inst: &Instance,
    id: i64,
    recorder: &Arc<Recorder>,
) -> Ended {
    match take_snapshot(shared, inst, id, recorder).await {
        Ok(summary) => Ended::ok("done", None, summary),
        Err(e) => {
            let note = format!("the snapshot could not be read: {e:#}");
            if let Err(e) = shared.store.fail_review(id, &note).await {
                tracing::warn!(review = id, "cannot record the failed snapshot: {e}");
            }
            Ended::err(
                "failed",
                None,
                "the review's snapshot could not be read",
                &e,
            )
        }
    }
}

async fn take_snapshot(
    shared: &Arc<Shared>,
    inst: &Instance,
    id: i64,
    recorder: &Arc<Recorder>,
) -> anyhow::Result<String> {
    use anyhow::Context;
    let r = shared
        .store
        .review(id)
        .await?
        .context("the review is gone")?;
    let (roster, _) = crate::workers::roster_for(shared, inst).await?;
    let g = crate::workers::globals(shared, &format!("review {id}"), recorder);
    let sessions = crate::workers::open_sessions(inst, &g).await?;
    let calls = || {
        sessions
            .marketo
            .as_ref()
            .map_or(0, |s| s.client.stats().calls)
    };
    let before = calls();
    let computed = planning::compute_from(
        roster,
        &sessions,
        inst.resend_invites,
        Some((inst.app, inst.short_name())),
    )
    .await?;
    let read_at = OffsetDateTime::now_utc();
    let inventory = Inventory::from_live(inst.app, &inst.name, &computed.live, read_at);
    let mut completeness = Completeness::of(&inventory, calls() - before);
    completeness.unread = computed.live.marketo.as_ref().map_or(0, |m| m.unread.len())
        + computed.live.magento.as_ref().map_or(0, |m| m.unread);
    let scope = Scope::parse(&r.scope).map_err(anyhow::Error::msg)?;
    let reviewers = Reviewers::parse(&r.reviewers);
    let items = review::items(
        &inventory,
        &scope,
        &Assign {
            roster: &computed.roster,
            reviewers: &reviewers,
            owner: inst.owner.as_deref(),
            fallback: &r.created_by,
        },
    );
    let snapshot = serde_json::to_string(&json!({
        "inventory": inventory,
        "completeness": completeness,
    }))?;
    let digest = roster_domain::sha256::hex(snapshot.as_bytes());
    let mut log = Actor::resolve(Some(&r.created_by)).log(
        inst.app.name(),
        "review.start",
        &format!("review {id}"),
        "done",
    );
    log.instance = Some(inst.name.clone());
    log.detail = Some(
        json!({
            "review": id,
            "snapshot_sha256": digest,
            "scope": r.scope,
            "reviewers": r.reviewers,
            "due": rfc3339(r.due_at),
            "accounts": completeness.accounts,
            "items": items.len(),
        })
        .to_string(),
    );
    shared
        .store
        .open_review(
            id,
            &roster_store::Snapshot {
                text: &snapshot,
                digest: &digest,
                completeness: &serde_json::to_string(&completeness)?,
            },
            &items,
            &log,
            read_at,
        )
        .await?;
    shared.announce_log_head().await;
    Ok(format!(
        "review {id}: snapshot of {} account(s) in {} call(s), {} item(s) to review",
        completeness.accounts,
        completeness.calls,
        items.len()
    ))
}

/// After a fresh read (`target`: the people it covered; `None`: everyone): revoked items
/// whose access is gone are marked remediated. Logged, not fatal.
pub(crate) async fn verify(
    shared: &Shared,
    inst: &Instance,
    live: &roster_domain::live::Live,
    read_at: OffsetDateTime,
    target: Option<&BTreeSet<String>>,
) {
    let pending = match shared.store.pending_remediations(&inst.name).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(instance = %inst.name, "cannot read the reviews' pending remediations: {e}");
            return;
        }
    };
    if pending.is_empty() {
        // Every run comes here: the accounts are listed only when something waits.
        return;
    }
    let inventory = Inventory::from_live(inst.app, &inst.name, live, read_at);
    let mut gone: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for rv in &pending {
        if target.is_some_and(|t| !t.contains(&rv.email)) {
            continue;
        }
        if review::gone(rv, &inventory.accounts) {
            gone.entry(rv.review).or_default().push(rv.item);
        }
    }
    for (review, items) in gone {
        let mut log = Actor::resolve(Some("roster")).log(
            inst.app.name(),
            "review.verify",
            &format!("review {review}"),
            "remediated",
        );
        log.instance = Some(inst.name.clone());
        log.detail = Some(
            json!({
                "review": review,
                "items": items,
                "read_at": rfc3339(read_at),
                "read": if target.is_some() { "targeted" } else { "full" },
            })
            .to_string(),
        );
        match shared
            .store
            .mark_remediated(review, &items, &log, OffsetDateTime::now_utc())
            .await
        {
            Ok(n) => {
                tracing::info!(instance = %inst.name, review, "{n} item(s) remediated: a fresh read found the revoked access gone")
            }
            Err(e) => {
                tracing::warn!(instance = %inst.name, review, "cannot mark items remediated: {e}")
            }
        }
    }
}

/// After steps ran on `inst`: if revoked access waits to be seen gone, a targeted read of
/// those people is queued (the verification read).
pub(crate) async fn after_apply(shared: &Shared, inst: &Instance) {
    let Ok(pending) = shared.store.pending_remediations(&inst.name).await else {
        return;
    };
    if pending.is_empty() {
        return;
    }
    let people: Vec<String> = pending
        .iter()
        .map(|rv| rv.email.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let review = pending[0].review;
    if let Err(e) = shared.store.add_targets(&inst.name, &people).await {
        tracing::warn!(instance = %inst.name, "cannot queue the verification read: {e}");
        return;
    }
    if let Err(e) = shared
        .submit(
            &inst.name,
            Job::Reconcile {
                trigger: format!("review:{review} verification"),
                targeted: true,
            },
        )
        .await
    {
        tracing::warn!(instance = %inst.name, "cannot queue the verification read: {e}");
    }
}
