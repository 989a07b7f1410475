//! Audit reports beside access reviews, from each instance's stored inventory and roster:
//! privileged access, dormant accounts, orphaned accounts, leavers still active; and "who
//! had this access on that date" from the access history the inventories leave. As JSON
//! here, as pages and CSV in the console, as tables, CSV or JSON with `roster report`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use roster_domain::report::{self, Kind, Row};
use roster_engine::text::rfc3339;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::Shared;
use crate::api::{ApiError, ApiPath, ApiQuery, ApiResult, Caller};
use crate::views::ErrorBody;

/// One account in a report.
#[derive(Serialize, ToSchema)]
pub struct ReportRow {
    pub email: String,
    pub name: String,
    pub account_kind: String,
    pub account_id: String,
    pub status: String,
    pub roles: Vec<String>,
    pub last_login_at: Option<String>,
    /// Why the account is in the report.
    pub why: String,
}

/// A report over one instance.
#[derive(Serialize, ToSchema)]
pub struct ReportView {
    /// `privileged`, `dormant`, `orphaned`, `leavers` or `access`.
    pub report: String,
    pub title: String,
    pub instance: String,
    /// When the inventory it is made from was read (for `access`: the date asked about).
    pub as_of: String,
    pub generated_at: String,
    pub generated_by: String,
    /// What it covers, in words.
    pub scope: String,
    pub rows: Vec<ReportRow>,
}

fn view_row(r: Row) -> ReportRow {
    ReportRow {
        email: r.email,
        name: r.name,
        account_kind: r.account_kind,
        account_id: r.account_id,
        status: r.status,
        roles: r.roles,
        last_login_at: r.last_login_at.map(rfc3339),
        why: r.why,
    }
}

#[derive(Deserialize, utoipa::IntoParams, Default)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// The instance, as `/api/v1/instances` names it.
    pub instance: String,
    /// `dormant`: days without a sign-in (default 90).
    #[param(minimum = 1, maximum = 3650)]
    pub days: Option<u32>,
    /// `access`: the role (`Admin`, a Magento group ...); absent: any account at all.
    pub role: Option<String>,
    /// `access`: the role's workspace or website.
    pub scope: Option<String>,
    /// `access`: the moment asked about, RFC 3339 (default now).
    pub at: Option<String>,
}

/// Makes report `kind` (or `access`) of `q.instance` for `caller`.
pub(crate) async fn make(
    shared: &Arc<Shared>,
    caller: &Caller,
    kind: &str,
    q: &ReportQuery,
) -> ApiResult<ReportView> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", m);
    let now = OffsetDateTime::now_utc();
    let worker = crate::api::instance_worker(shared, &q.instance)?;
    if kind == "access" {
        let at = match q.at.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
            None => now,
            Some(text) => {
                OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| {
                        bad(format!(
                            "at {text:?} is not an RFC 3339 time such as 2026-09-30T23:59:59Z: {e}"
                        ))
                    })?
            }
        };
        let role = q.role.as_deref().map(str::trim).filter(|r| !r.is_empty());
        let scope = q.scope.as_deref().map(str::trim).filter(|s| !s.is_empty());
        let since = shared.store.history_since(&q.instance).await?;
        let held = shared.store.access_at(&q.instance, role, scope, at).await?;
        let what = match (role, scope) {
            (Some(r), Some(s)) => format!("{r}@{s}"),
            (Some(r), None) => r.to_string(),
            (None, _) => "an account".to_string(),
        };
        return Ok(ReportView {
            report: "access".into(),
            title: format!("Who had {what} on {}", rfc3339(at)),
            instance: q.instance.clone(),
            as_of: rfc3339(at),
            generated_at: rfc3339(now),
            generated_by: caller.name.clone(),
            scope: match since {
                Some(s) if s <= at => format!(
                    "as the stored inventories showed it; the history begins {}",
                    rfc3339(s)
                ),
                Some(s) => format!(
                    "before the history begins ({}): nothing is known of that time",
                    rfc3339(s)
                ),
                None => "no inventory has been stored yet".into(),
            },
            rows: held
                .into_iter()
                .map(|h| ReportRow {
                    why: format!(
                        "held from {}{}",
                        rfc3339(h.since),
                        h.until
                            .map(|u| format!(" until {}", rfc3339(u)))
                            .unwrap_or_else(|| " (still held)".into())
                    ),
                    roles: if h.role.is_empty() {
                        Vec::new()
                    } else if h.scope.is_empty() {
                        vec![h.role]
                    } else {
                        vec![format!("{}@{}", h.role, h.scope)]
                    },
                    email: h.email,
                    name: h.name,
                    account_kind: h.account_kind,
                    account_id: h.account_id,
                    status: String::new(),
                    last_login_at: None,
                })
                .collect(),
        });
    }
    let kind = Kind::parse(kind).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("there is no report {kind:?}; there are privileged, dormant, orphaned, leavers and access"),
        )
    })?;
    let indexed = crate::access::inventory_of(shared, &q.instance).await?;
    let inv = &indexed.inventory;
    let days = q.days.unwrap_or(90);
    if !(1..=3650).contains(&days) {
        return Err(bad(format!("days {days} is not between 1 and 3650")));
    }
    let rows = match kind {
        Kind::Privileged => report::privileged(inv),
        Kind::Dormant => report::dormant(inv, now, days),
        Kind::Orphaned | Kind::Leavers => {
            let (roster, _) = crate::workers::roster_for(shared, &worker.instance)
                .await
                .map_err(|e| {
                    ApiError::new(
                        StatusCode::CONFLICT,
                        "roster_unreadable",
                        format!("the instance's roster cannot be read: {e:#}"),
                    )
                })?;
            if kind == Kind::Orphaned {
                report::orphaned(inv, &roster)
            } else {
                report::leavers(inv, &roster, now.date())
            }
        }
    };
    Ok(ReportView {
        report: kind.as_str().into(),
        title: match kind {
            Kind::Dormant => format!("Dormant accounts: no sign-in for {days} days"),
            other => other.title().into(),
        },
        instance: q.instance.clone(),
        as_of: rfc3339(inv.read_at),
        generated_at: rfc3339(now),
        generated_by: caller.name.clone(),
        scope: match kind {
            Kind::Dormant => format!(
                "{} (only where the app gives the last sign-in: Marketo users, Magento admin users)",
                inv.scope
            ),
            _ => inv.scope.clone(),
        },
        rows: rows.into_iter().map(view_row).collect(),
    })
}

/// A report over an instance: `privileged`, `dormant` (`days`), `orphaned`, `leavers`
/// (from the stored inventory and the roster), or `access` (`role`, `scope`, `at`: who held
/// it at that moment, from the access history).
#[utoipa::path(get, path = "/api/v1/reports/{kind}", tag = "reviews",
    params(("kind" = String, Path, pattern = "^(privileged|dormant|orphaned|leavers|access)$"), ReportQuery),
    responses((status = 200, body = ReportView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn get_report(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiPath(kind): ApiPath<String>,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> ApiResult<Json<ReportView>> {
    Ok(Json(make(&shared, &caller, &kind, &q).await?))
}
