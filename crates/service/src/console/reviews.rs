//! Access reviews in the console: the campaigns (and a form to start one), and a
//! campaign's page: progress per reviewer, the signed-in reviewer's items with filters,
//! keep and revoke per item or for the ones ticked (a bulk decision), close for approvers,
//! and the printable evidence summary. Plain forms, no script; each post redirects back
//! (a reload never posts twice). Items are paged, so a 10,000-item campaign renders fast.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use roster_engine::text::rfc3339;
use roster_store::ReviewItem;
use serde::Deserialize;
use time::OffsetDateTime;

use super::{Nav, csrf_refused, nav, render, same, signed, to_sign_in};
use crate::Shared;
use crate::reviews::{self as api, DecisionBody, StartReview};
use crate::tokens::Role;

/// Items shown on one page of a campaign.
const PAGE: usize = 100;

pub(super) fn routes() -> axum::Router<Arc<Shared>> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/console/reviews", get(list).post(start))
        .route("/console/reviews/{id}", get(campaign))
        .route("/console/reviews/{id}/decide", post(decide))
        .route("/console/reviews/{id}/close", post(close))
        .route("/console/reviews/{id}/summary", get(summary))
}

struct ReviewRow {
    id: i64,
    instance: String,
    scope: String,
    status: String,
    overdue: bool,
    due_at: String,
    items: usize,
    decided: usize,
    mine_open: usize,
}

#[derive(Template)]
#[template(path = "console/reviews.html")]
struct ListPage {
    nav: Nav,
    reviews: Vec<ReviewRow>,
    instances: Vec<String>,
    can_start: bool,
    message: Option<String>,
    failed: bool,
}

async fn list_page(
    shared: &Shared,
    s: &super::Signed,
    status: StatusCode,
    message: Option<String>,
    failed: bool,
) -> Response {
    let now = OffsetDateTime::now_utc();
    let mut reviews = Vec::new();
    for r in shared.store.reviews().await.unwrap_or_default() {
        let counts = shared
            .store
            .review_counts(r.id, &s.caller.name)
            .await
            .unwrap_or_default();
        reviews.push(ReviewRow {
            overdue: r.status == "open" && (r.due_at < now || r.due_handled_at.is_some()),
            id: r.id,
            instance: r.instance,
            scope: r.scope,
            status: r.status,
            due_at: rfc3339(r.due_at),
            items: counts.items,
            decided: counts.decided,
            mine_open: counts.mine_open,
        });
    }
    render(
        status,
        &ListPage {
            nav: nav(s, "reviews"),
            reviews,
            instances: shared.workers.keys().cloned().collect(),
            can_start: s.caller.role >= Role::Operator,
            message,
            failed,
        },
    )
}

#[derive(Deserialize)]
struct Done {
    done: Option<String>,
}

async fn list(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(done): Query<Done>,
) -> Response {
    let Some(s) = signed(&shared, &headers).await else {
        return to_sign_in();
    };
    let message = done
        .done
        .as_deref()
        .filter(|d| *d == "started")
        .map(|_| "Started: the service reads the instance's access as the campaign's snapshot; its items appear once it is read.".to_string());
    list_page(&shared, &s, StatusCode::OK, message, false).await
}

/// A form body's fields; `item` may repeat.
fn fields(body: &Bytes) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(body) {
        out.entry(k.into_owned()).or_default().push(v.into_owned());
    }
    out
}

fn one<'a>(f: &'a BTreeMap<String, Vec<String>>, name: &str) -> Option<&'a str> {
    f.get(name).and_then(|v| v.first()).map(String::as_str)
}

/// The session of a posted form, its CSRF token checked.
async fn posted(
    shared: &Shared,
    headers: &HeaderMap,
    f: &BTreeMap<String, Vec<String>>,
) -> Result<super::Signed, Response> {
    let Some(s) = signed(shared, headers).await else {
        return Err(to_sign_in());
    };
    if !same(&s.csrf, one(f, "csrf").unwrap_or_default()) {
        return Err(csrf_refused());
    }
    Ok(s)
}

async fn start(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let f = fields(&body);
    let s = match posted(&shared, &headers, &f).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let req = StartReview {
        instance: one(&f, "instance").unwrap_or_default().to_string(),
        scope: one(&f, "scope").map(str::to_string),
        due: one(&f, "due").unwrap_or_default().to_string(),
        reviewer: one(&f, "reviewer").map(str::to_string),
        on_due: one(&f, "on_due").map(str::to_string),
    };
    match api::start_review(&shared, &s.caller, &req).await {
        Ok(id) => Redirect::to(&format!("/console/reviews/{id}?done=started")).into_response(),
        Err(e) => list_page(&shared, &s, e.status(), Some(e.message().to_string()), true).await,
    }
}

struct ItemRow {
    id: i64,
    person: String,
    email: String,
    account: String,
    entitlement: String,
    privileged: bool,
    listed: bool,
    reviewer: String,
    because: String,
    decision: String,
    /// The decision as a CSS class name (`keep`, `revoke`, `reduce`, `not_decided`, `open`).
    decision_class: String,
    decided: String,
    comment: String,
    remediation: String,
    mine: bool,
    open: bool,
}

struct ProgressRow {
    reviewer: String,
    items: usize,
    decided: usize,
    percent: usize,
}

#[derive(Template)]
#[template(path = "console/review.html")]
struct CampaignPage {
    nav: Nav,
    id: i64,
    instance: String,
    scope: String,
    reviewers: String,
    on_due: String,
    status: String,
    overdue: bool,
    due_at: String,
    created: String,
    closed: String,
    plan_id: Option<String>,
    snapshot_digest: String,
    completeness: Vec<(String, String)>,
    items_total: usize,
    decided_total: usize,
    percent: usize,
    progress: Vec<ProgressRow>,
    items: Vec<ItemRow>,
    /// The filters, as the form shows them and links carry them.
    show: String,
    state: String,
    q: String,
    privileged_only: bool,
    page: usize,
    pages: usize,
    shown: usize,
    query: String,
    can_decide: bool,
    can_close: bool,
    message: Option<String>,
    failed: bool,
}

#[derive(Deserialize, Default, Clone)]
struct Filters {
    /// `mine` (default) or `all`.
    show: Option<String>,
    /// `open` (default), `decided` or `all`.
    state: Option<String>,
    q: Option<String>,
    privileged: Option<String>,
    page: Option<usize>,
    done: Option<String>,
    n: Option<usize>,
}

impl Filters {
    fn from_form(f: &BTreeMap<String, Vec<String>>) -> Filters {
        Filters {
            show: one(f, "show").map(str::to_string),
            state: one(f, "state").map(str::to_string),
            q: one(f, "q").map(str::to_string),
            privileged: one(f, "privileged").map(str::to_string),
            page: one(f, "page").and_then(|p| p.parse().ok()),
            done: None,
            n: None,
        }
    }

    fn show(&self) -> &str {
        match self.show.as_deref() {
            Some("all") => "all",
            _ => "mine",
        }
    }

    fn state(&self) -> &str {
        match self.state.as_deref() {
            Some(s @ ("decided" | "all")) => s,
            _ => "open",
        }
    }

    /// The query string that shows the same items again.
    fn query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("show", self.show());
        q.append_pair("state", self.state());
        if let Some(text) = self.q.as_deref().filter(|t| !t.trim().is_empty()) {
            q.append_pair("q", text.trim());
        }
        if self.privileged.is_some() {
            q.append_pair("privileged", "1");
        }
        q.finish()
    }
}

fn item_row(i: &ReviewItem, me: &str) -> ItemRow {
    ItemRow {
        id: i.item.id,
        person: if i.item.name.is_empty() {
            i.item.email.clone()
        } else {
            i.item.name.clone()
        },
        email: i.item.email.clone(),
        account: format!("{} {}", i.item.account_kind.as_str(), i.item.account_id),
        entitlement: if i.item.scope.is_empty() {
            i.item.role.clone()
        } else {
            format!("{}@{}", i.item.role, i.item.scope)
        },
        privileged: i.item.privileged,
        listed: i.item.listed,
        reviewer: if i.item.reviewer.is_empty() {
            "nobody".into()
        } else {
            i.item.reviewer.clone()
        },
        because: i.item.reviewer_because.clone(),
        decision: match (&i.decision, i.keep_roles.is_empty()) {
            (Some(d), true) => d.replace('_', " "),
            (Some(d), false) => format!("{d}: keep {}", i.keep_roles.join(", ")),
            (None, _) => "open".into(),
        },
        decision_class: i.decision.clone().unwrap_or_else(|| "open".into()),
        decided: match (&i.decided_by, i.decided_at) {
            (Some(by), Some(at)) => format!(
                "{by}, {}{}",
                rfc3339(at),
                if i.bulk { " (bulk)" } else { "" }
            ),
            _ => String::new(),
        },
        comment: i.comment.clone().unwrap_or_default(),
        remediation: i.remediation.clone().unwrap_or_default(),
        mine: i.item.reviewer.eq_ignore_ascii_case(me) && !i.item.email.eq_ignore_ascii_case(me),
        open: i.decision.is_none(),
    }
}

async fn campaign_page(
    shared: &Arc<Shared>,
    s: &super::Signed,
    id: i64,
    filters: &Filters,
    status: StatusCode,
    message: Option<String>,
    failed: bool,
) -> Response {
    let r = match shared.store.review(id).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return super::message_page(
                StatusCode::NOT_FOUND,
                "Not found",
                &format!("There is no access review {id}."),
                Some(("/console/reviews", "Access reviews")),
            );
        }
        Err(e) => {
            tracing::error!("cannot read review {id}: {e}");
            return super::message_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Error",
                "The review could not be read; the service's log says why.",
                Some(("/console/reviews", "Access reviews")),
            );
        }
    };
    let me = s.caller.name.as_str();
    // A reviewer's own items are read alone (a hundred rows of ten thousand); everyone's
    // come from the cache, read again only when a change moved the campaign's revision.
    let all: Arc<Vec<ReviewItem>> = if filters.show() == "all" {
        shared
            .review_items
            .get(&shared.store, id)
            .await
            .unwrap_or_default()
    } else {
        Arc::new(
            shared
                .store
                .review_items(id, Some(me))
                .await
                .unwrap_or_default(),
        )
    };
    let pct = |d: usize, n: usize| (d * 100).checked_div(n).unwrap_or(100);
    let progress = shared
        .store
        .review_progress(id)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|(reviewer, items, decided)| ProgressRow {
            reviewer: if reviewer.is_empty() {
                "nobody".into()
            } else {
                reviewer
            },
            items,
            decided,
            percent: pct(decided, items),
        })
        .collect();
    let tallies = shared.store.review_tallies(id).await.unwrap_or_default();
    let q = filters
        .q
        .as_deref()
        .map(|t| t.trim().to_lowercase())
        .unwrap_or_default();
    let chosen: Vec<&ReviewItem> = all
        .iter()
        .filter(|i| filters.show() == "all" || i.item.reviewer.eq_ignore_ascii_case(me))
        .filter(|i| match filters.state() {
            "open" => i.decision.is_none(),
            "decided" => i.decision.is_some(),
            _ => true,
        })
        .filter(|i| filters.privileged.is_none() || i.item.privileged)
        .filter(|i| {
            q.is_empty()
                || i.item.email.to_lowercase().contains(&q)
                || i.item.name.to_lowercase().contains(&q)
                || i.item.role.to_lowercase().contains(&q)
        })
        .collect();
    let pages = chosen.len().div_ceil(PAGE).max(1);
    let page = filters.page.unwrap_or(1).clamp(1, pages);
    let items: Vec<ItemRow> = chosen
        .iter()
        .skip((page - 1) * PAGE)
        .take(PAGE)
        .map(|i| item_row(i, me))
        .collect();
    let completeness = crate::reviews::completeness_of(shared, id)
        .await
        .ok()
        .flatten()
        .and_then(|v| v.as_object().cloned())
        .map(|c| {
            c.into_iter()
                .filter(|(k, _)| k != "by_kind")
                .map(|(k, v)| {
                    (
                        k.replace('_', " "),
                        v.as_str().map_or_else(|| v.to_string(), str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let now = OffsetDateTime::now_utc();
    let t = CampaignPage {
        nav: nav(s, "reviews"),
        id,
        instance: r.instance.clone(),
        scope: r.scope.clone(),
        reviewers: r.reviewers.clone(),
        on_due: r.on_due.clone(),
        overdue: r.status == "open" && (r.due_at < now || r.due_handled_at.is_some()),
        status: r.status.clone(),
        due_at: rfc3339(r.due_at),
        created: format!("{} by {}", rfc3339(r.created_at), r.created_by),
        closed: match (r.closed_at, &r.closed_by) {
            (Some(at), Some(by)) => format!("{} by {by}", rfc3339(at)),
            _ => String::new(),
        },
        plan_id: r.plan_id.clone(),
        snapshot_digest: r.snapshot_digest.clone().unwrap_or_default(),
        completeness,
        items_total: tallies.items,
        decided_total: tallies.decided,
        percent: pct(tallies.decided, tallies.items),
        progress,
        shown: chosen.len(),
        items,
        show: filters.show().to_string(),
        state: filters.state().to_string(),
        q: filters.q.clone().unwrap_or_default(),
        privileged_only: filters.privileged.is_some(),
        page,
        pages,
        query: filters.query(),
        can_decide: r.status == "open",
        can_close: r.status == "open" && s.caller.role >= Role::Approver,
        message,
        failed,
    };
    render(status, &t)
}

async fn campaign(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(filters): Query<Filters>,
) -> Response {
    let Some(s) = signed(&shared, &headers).await else {
        return to_sign_in();
    };
    let message = match filters.done.as_deref() {
        Some("started") => Some("Started: the service reads the instance's access as the snapshot; reload to see the items once it is open.".to_string()),
        Some("decided") => Some(format!(
            "Recorded {} decision(s), each a signed line of the audit log.",
            filters.n.unwrap_or(0)
        )),
        Some("closed") => Some("Closed: revocations are in force; their plan waits for a second approver under Plans, and items turn remediated once a fresh read finds the access gone.".to_string()),
        _ => None,
    };
    campaign_page(&shared, &s, id, &filters, StatusCode::OK, message, false).await
}

async fn decide(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Bytes,
) -> Response {
    let f = fields(&body);
    let s = match posted(&shared, &headers, &f).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let filters = Filters::from_form(&f);
    let decision = one(&f, "decision").unwrap_or_default().to_string();
    let comment = one(&f, "comment")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    let items: BTreeSet<i64> = f
        .get("item")
        .into_iter()
        .flatten()
        .filter_map(|i| i.parse().ok())
        .collect();
    let result = if items.len() == 1 && one(&f, "single").is_some() {
        let item = *items.iter().next().expect("one item");
        api::decide_item(
            &shared,
            &s.caller,
            id,
            item,
            &DecisionBody {
                decision,
                keep_roles: Vec::new(),
                comment,
            },
        )
        .await
        .map(|_| 1)
    } else {
        api::decide_bulk(&shared, &s.caller, id, &items, &decision, comment.as_ref())
            .await
            .map(|d| d.len())
    };
    match result {
        Ok(n) => Redirect::to(&format!(
            "/console/reviews/{id}?{}&page={}&done=decided&n={n}",
            filters.query(),
            filters.page.unwrap_or(1)
        ))
        .into_response(),
        Err(e) => refused(&shared, &s, id, &filters, "Nothing was recorded", &e).await,
    }
}

/// The campaign's page again, saying why a form was refused.
async fn refused(
    shared: &Arc<Shared>,
    s: &super::Signed,
    id: i64,
    filters: &Filters,
    what: &str,
    e: &crate::api::ApiError,
) -> Response {
    campaign_page(
        shared,
        s,
        id,
        filters,
        e.status(),
        Some(format!("{what}: {}", e.message())),
        true,
    )
    .await
}

async fn close(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    body: Bytes,
) -> Response {
    let f = fields(&body);
    let s = match posted(&shared, &headers, &f).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let filters = Filters::from_form(&f);
    if one(&f, "confirm").is_none() {
        return campaign_page(
            &shared,
            &s,
            id,
            &filters,
            StatusCode::BAD_REQUEST,
            Some(
                "Not closed: tick the box to confirm that its revocations come into force.".into(),
            ),
            true,
        )
        .await;
    }
    match api::close_as(&shared, &s.caller, id).await {
        Ok(()) => Redirect::to(&format!(
            "/console/reviews/{id}?show=all&state=all&done=closed"
        ))
        .into_response(),
        Err(e) => refused(&shared, &s, id, &filters, "Not closed", &e).await,
    }
}

/// The evidence bundle's printable summary, as the bundle holds it.
async fn summary(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Response {
    let Some(s) = signed(&shared, &headers).await else {
        return to_sign_in();
    };
    match roster_engine::evidence::build(
        &shared.store,
        id,
        &s.caller.name,
        OffsetDateTime::now_utc(),
    )
    .await
    {
        Ok(mut bundle) => super::page(
            StatusCode::OK,
            String::from_utf8_lossy(&bundle.files.remove("summary.html").unwrap_or_default())
                .into_owned(),
        ),
        Err(e) => super::message_page(
            StatusCode::CONFLICT,
            "No summary",
            &e.to_string(),
            Some(("/console/reviews", "Access reviews")),
        ),
    }
}
