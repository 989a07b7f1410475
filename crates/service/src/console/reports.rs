//! The reports page: an instance's privileged access, dormant and orphaned accounts,
//! leavers still active, and who had some access on a date; each printable and as CSV.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::{Nav, nav, render, signed, to_sign_in};
use crate::Shared;
use crate::reports::{ReportQuery, ReportView, make};

pub(super) fn routes() -> axum::Router<Arc<Shared>> {
    use axum::routing::get;
    axum::Router::new()
        .route("/console/reports", get(page))
        .route("/console/reports.csv", get(csv))
        .route("/console/audit/{instance}", get(audit))
}

#[derive(serde::Deserialize, Default)]
struct Form {
    instance: Option<String>,
    report: Option<String>,
    days: Option<String>,
    role: Option<String>,
    scope: Option<String>,
    at: Option<String>,
}

impl Form {
    fn query(&self, default_instance: &str) -> (String, ReportQuery) {
        let blank = |v: &Option<String>| v.clone().filter(|t| !t.trim().is_empty());
        (
            self.report.clone().unwrap_or_else(|| "privileged".into()),
            ReportQuery {
                instance: blank(&self.instance).unwrap_or_else(|| default_instance.to_string()),
                days: self.days.as_deref().and_then(|d| d.trim().parse().ok()),
                role: blank(&self.role),
                scope: blank(&self.scope),
                at: blank(&self.at),
            },
        )
    }

    fn link(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("instance", &self.instance),
            ("report", &self.report),
            ("days", &self.days),
            ("role", &self.role),
            ("scope", &self.scope),
            ("at", &self.at),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.trim().is_empty()) {
                q.append_pair(k, v.trim());
            }
        }
        q.finish()
    }
}

#[derive(Template)]
#[template(path = "console/reports.html")]
struct ReportsPage {
    nav: Nav,
    instances: Vec<String>,
    reports: Vec<(&'static str, &'static str)>,
    chosen_instance: String,
    chosen: String,
    days: String,
    role: String,
    scope: String,
    at: String,
    report: Option<ReportView>,
    error: Option<String>,
    csv_link: String,
}

async fn page(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(f): Query<Form>,
) -> Response {
    let Some(s) = signed(&shared, &headers).await else {
        return to_sign_in();
    };
    let instances: Vec<String> = shared.workers.keys().cloned().collect();
    let first = instances.first().cloned().unwrap_or_default();
    let (kind, q) = f.query(&first);
    let (report, error, status) = match make(&shared, &s.caller, &kind, &q).await {
        Ok(r) => (Some(r), None, StatusCode::OK),
        Err(e) => (None, Some(e.message().to_string()), e.status()),
    };
    render(
        status,
        &ReportsPage {
            nav: nav(&s, "reports"),
            // The domain's reports, in its words, then access on a date (the history's).
            reports: roster_domain::report::Kind::ALL
                .iter()
                .map(|k| (k.as_str(), k.title()))
                .chain([("access", "Who had access on a date")])
                .collect(),
            chosen_instance: q.instance.clone(),
            chosen: kind,
            days: q.days.map(|d| d.to_string()).unwrap_or_else(|| "90".into()),
            role: q.role.clone().unwrap_or_default(),
            scope: q.scope.clone().unwrap_or_default(),
            at: q.at.clone().unwrap_or_default(),
            instances,
            report,
            error,
            csv_link: format!("/console/reports.csv?{}", f.link()),
        },
    )
}

async fn csv(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(f): Query<Form>,
) -> Response {
    let Some(s) = signed(&shared, &headers).await else {
        return to_sign_in();
    };
    let first = shared.workers.keys().next().cloned().unwrap_or_default();
    let (kind, q) = f.query(&first);
    match make(&shared, &s.caller, &kind, &q).await {
        Ok(r) => {
            let comment = format!(
                "{} | {} | as of {} | generated {} by {}",
                r.title, r.instance, r.as_of, r.generated_at, r.generated_by
            );
            let rows = r.rows.iter().map(|row| {
                [
                    row.email.clone(),
                    row.name.clone(),
                    row.account_kind.clone(),
                    row.account_id.clone(),
                    row.status.clone(),
                    row.roles.join("; "),
                    row.last_login_at.clone().unwrap_or_default(),
                    row.why.clone(),
                ]
            });
            let body = super::csv_document(
                Some(&comment),
                "email,name,account_kind,account_id,status,roles,last_login_at,why",
                rows,
            );
            super::download(
                body,
                "text/csv; charset=utf-8",
                &format!("roster-{}-{}.csv", r.report, r.instance),
            )
        }
        Err(e) => super::message_page(
            e.status(),
            "No report",
            e.message(),
            Some(("/console/reports", "Reports")),
        ),
    }
}

/// The printable audit report of an instance: its stored inventory against its roster,
/// tied to the audit log's signed head.
async fn audit(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    axum::extract::Path(instance): axum::extract::Path<String>,
) -> Response {
    let Some(s) = signed(&shared, &headers).await else {
        return to_sign_in();
    };
    let back = Some(("/console/reports", "Reports"));
    let indexed = match crate::access::inventory_of(&shared, &instance).await {
        Ok(i) => i,
        Err(e) => return super::message_page(e.status(), "No audit report", e.message(), back),
    };
    let roster = match shared.workers.get(&instance) {
        Some(w) => crate::workers::roster_for(&shared, &w.instance)
            .await
            .ok()
            .map(|(r, _)| r),
        None => None,
    };
    let now = time::OffsetDateTime::now_utc();
    let head = shared.store.log_head(now).await.ok();
    match roster_engine::audit_report::html(
        &indexed.inventory,
        roster.as_ref(),
        &s.caller.name,
        head.as_ref(),
        now,
    ) {
        Ok(html) => super::page(StatusCode::OK, html),
        Err(e) => super::message_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "No audit report",
            &format!("the report could not be made: {e:#}"),
            back,
        ),
    }
}
