//! The access pages: each instance's accounts (a user x role x workspace matrix for Marketo,
//! customers by website and group and admin users for Magento), searched, filtered and paged;
//! their CSV and JSON exports; and one person's accounts across every instance.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use roster_domain::inventory::{AccountKind, Status};
use roster_engine::text::rfc3339;
use serde::Deserialize;
use std::sync::Arc;

use super::{Nav, message_page, nav, render, signed, to_sign_in};
use crate::Shared;
use crate::access::{self, AccessQuery, AccountView, Indexed};
use crate::api::ApiError;

/// More scopes than this and the matrix gives way to one "Access" column.
const MATRIX_COLUMNS: usize = 12;
const PEOPLE_PER_PAGE: usize = 50;

pub(super) fn routes() -> axum::Router<Arc<Shared>> {
    use axum::routing::get;
    axum::Router::new()
        .route("/console/access", get(index))
        .route("/console/access/{name}", get(instance_page))
        .route("/console/access/{name}/export.csv", get(export_csv))
        .route("/console/access/{name}/export.json", get(export_json))
        .route("/console/people", get(people_page))
        .route("/console/person", get(person_page))
}

fn href(path: &str, pairs: &[(&str, String)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if !v.is_empty() {
            q.append_pair(k, v);
        }
    }
    let q = q.finish();
    if q.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{q}")
    }
}

/// An RFC 3339 time to the second, for reading (exports keep the full precision).
fn to_second(t: &str) -> String {
    match t.find('.') {
        Some(dot) => match t[dot..].find(['Z', '+', '-']) {
            Some(end) => format!("{}{}", &t[..dot], &t[dot + end..]),
            None => t.to_string(),
        },
        None => t.to_string(),
    }
}

fn shown(t: &Option<String>) -> String {
    t.as_deref().map(to_second).unwrap_or_default()
}

fn person_href(email: &str) -> String {
    href("/console/person", &[("email", email.to_string())])
}

fn api_error_page(e: ApiError) -> Response {
    message_page(
        if e.status() == StatusCode::NOT_FOUND {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        },
        "Access",
        e.message(),
        Some(("/console/access", "Back to Access")),
    )
}

struct InstanceLink {
    name: String,
    app: &'static str,
    accounts: Option<i64>,
    read_at: String,
}

#[derive(Template)]
#[template(path = "console/access_index.html")]
struct IndexPage {
    nav: Nav,
    instances: Vec<InstanceLink>,
}

async fn index(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let Some(s) = signed(&shared, &headers).await else {
        return to_sign_in();
    };
    let summaries = shared.store.inventory_summaries().await.unwrap_or_default();
    let instances = shared
        .workers
        .values()
        .map(|w| {
            let found = summaries.iter().find(|i| i.instance == w.instance.name);
            InstanceLink {
                name: w.instance.name.clone(),
                app: w.instance.app.name(),
                accounts: found.map(|i| i.accounts),
                read_at: found.map_or_else(|| "—".into(), |i| to_second(&rfc3339(i.read_at))),
            }
        })
        .collect();
    render(
        StatusCode::OK,
        &IndexPage {
            nav: nav(&s, "access"),
            instances,
        },
    )
}

struct Row {
    email: String,
    person: String,
    name: String,
    id: String,
    kind: &'static str,
    status: &'static str,
    /// One cell per matrix column: the roles held in that scope.
    cells: Vec<String>,
    /// Every grant as `role @ scope` (when there is no matrix).
    access: String,
    expires: String,
    last_login: String,
    created: String,
}

impl Row {
    fn new(a: &AccountView, columns: &[String]) -> Self {
        let roles_in = |scope: &str| {
            a.access
                .iter()
                .filter(|g| g.scope == scope)
                .map(|g| g.role.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        Row {
            email: a.email.clone(),
            person: person_href(&a.email),
            name: a.name.clone(),
            id: a.id.clone(),
            kind: a.kind,
            status: a.status,
            cells: columns.iter().map(|c| roles_in(c)).collect(),
            access: a
                .access
                .iter()
                .map(|g| format!("{} @ {}", g.role, g.scope))
                .collect::<Vec<_>>()
                .join("; "),
            expires: shown(&a.expires_at),
            last_login: shown(&a.last_login_at),
            created: shown(&a.created_at),
        }
    }
}

#[derive(Template)]
#[template(path = "console/access.html")]
struct AccessPage {
    nav: Nav,
    instance: String,
    app: &'static str,
    read_at: String,
    scope_text: String,
    changes_since_read: usize,
    filter_text: String,
    total: usize,
    matched: usize,
    first: usize,
    last: usize,
    q: String,
    role_filter: String,
    scope_filter: String,
    status_filter: String,
    kind_filter: String,
    roles: Vec<String>,
    scopes: Vec<String>,
    statuses: Vec<&'static str>,
    kinds: Vec<&'static str>,
    /// Matrix columns (scopes); empty when there are too many for a matrix.
    columns: Vec<String>,
    scope_label: &'static str,
    rows: Vec<Row>,
    previous: Option<String>,
    next: Option<String>,
    export_csv: String,
    export_json: String,
    error: Option<String>,
}

fn filter_pairs(q: &AccessQuery) -> Vec<(&'static str, String)> {
    let v = |o: &Option<String>| o.clone().unwrap_or_default();
    vec![
        ("q", v(&q.q)),
        ("role", v(&q.role)),
        ("scope", v(&q.scope)),
        ("status", v(&q.status)),
        ("kind", v(&q.kind)),
    ]
}

async fn instance_page(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<AccessQuery>,
) -> Response {
    let Some(s) = signed(&shared, &headers).await else {
        return to_sign_in();
    };
    let indexed = match access::inventory_of(&shared, &name).await {
        Ok(i) => i,
        Err(e) => return api_error_page(e),
    };
    let (report, error) = match access::report(&s.caller.key(), &indexed, &q, false) {
        Ok(r) => (r, None),
        // A bad filter shows the whole inventory with the reason, not an error page.
        Err(why) => (
            access::report(&s.caller.key(), &indexed, &AccessQuery::default(), false)
                .expect("the empty filter is valid"),
            Some(why),
        ),
    };
    render(
        StatusCode::OK,
        &access_page(&s, &name, &indexed, &q, report, error),
    )
}

fn access_page(
    s: &super::Signed,
    name: &str,
    indexed: &Indexed,
    q: &AccessQuery,
    report: access::AccessReport,
    error: Option<String>,
) -> AccessPage {
    let inv = &indexed.inventory;
    let columns: Vec<String> = if indexed.scopes.len() <= MATRIX_COLUMNS {
        indexed.scopes.clone()
    } else {
        Vec::new()
    };
    let base = format!("/console/access/{name}");
    let pairs = filter_pairs(q);
    let page_at = |offset: usize| {
        let mut p = pairs.clone();
        p.push(("offset", offset.to_string()));
        href(&base, &p)
    };
    let limit = q.limit();
    let first = if report.accounts.is_empty() {
        0
    } else {
        report.offset + 1
    };
    let last = report.offset + report.accounts.len();
    AccessPage {
        nav: nav(s, "access"),
        instance: name.to_string(),
        app: inv.app.name(),
        read_at: to_second(&rfc3339(inv.read_at)),
        scope_text: inv.scope.clone(),
        changes_since_read: inv.changes_since_read,
        filter_text: report.report.filter.clone(),
        total: report.total,
        matched: report.matched,
        first,
        last,
        q: q.q.clone().unwrap_or_default(),
        role_filter: q.role.clone().unwrap_or_default(),
        scope_filter: q.scope.clone().unwrap_or_default(),
        status_filter: q.status.clone().unwrap_or_default(),
        kind_filter: q.kind.clone().unwrap_or_default(),
        roles: indexed.roles.clone(),
        scopes: indexed.scopes.clone(),
        statuses: Status::ALL.iter().map(|s| s.as_str()).collect(),
        kinds: AccountKind::of(inv.app)
            .iter()
            .map(|k| k.as_str())
            .collect(),
        scope_label: roster_domain::inventory::scope_label(inv.app),
        rows: report
            .accounts
            .iter()
            .map(|a| Row::new(a, &columns))
            .collect(),
        columns,
        previous: (report.offset > 0).then(|| page_at(report.offset.saturating_sub(limit))),
        next: (last < report.matched).then(|| page_at(last)),
        export_csv: href(&format!("{base}/export.csv"), &pairs),
        export_json: href(&format!("{base}/export.json"), &pairs),
        error,
    }
}

/// The export's file name: instance and time, so saved reports do not overwrite each other.
fn export_name(name: &str, ext: &str) -> String {
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
    format!("roster-access-{name}-{stamp}.{ext}")
}

async fn export(
    shared: &Shared,
    headers: &HeaderMap,
    name: &str,
    q: &AccessQuery,
) -> Result<access::AccessReport, Response> {
    let Some(s) = signed(shared, headers).await else {
        return Err(to_sign_in());
    };
    let indexed = access::inventory_of(shared, name)
        .await
        .map_err(api_error_page)?;
    access::report(&s.caller.key(), &indexed, q, true).map_err(|why| {
        message_page(
            StatusCode::BAD_REQUEST,
            "Access",
            &why,
            Some(("/console/access", "Back to Access")),
        )
    })
}

async fn export_csv(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<AccessQuery>,
) -> Response {
    match export(&shared, &headers, &name, &q).await {
        Ok(report) => super::download(
            access::csv(&report),
            "text/csv; charset=utf-8",
            &export_name(&name, "csv"),
        ),
        Err(r) => r,
    }
}

async fn export_json(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<AccessQuery>,
) -> Response {
    match export(&shared, &headers, &name, &q).await {
        Ok(report) => super::download(
            serde_json::to_string_pretty(&report).unwrap_or_default(),
            "application/json",
            &export_name(&name, "json"),
        ),
        Err(r) => r,
    }
}

struct PersonRow {
    instance: String,
    kind: &'static str,
    id: String,
    name: String,
    status: &'static str,
    access: String,
    expires: String,
    last_login: String,
    locked: bool,
}

#[derive(Template)]
#[template(path = "console/person.html")]
struct PersonPage {
    nav: Nav,
    email: String,
    scope_text: String,
    read_at: String,
    rows: Vec<PersonRow>,
    not_read: Vec<String>,
}

#[derive(Deserialize)]
struct PersonQuery {
    email: String,
}

async fn person_page(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<PersonQuery>,
) -> Response {
    let Some(s) = signed(&shared, &headers).await else {
        return to_sign_in();
    };
    let report = match access::person(&shared, &s.caller.key(), &q.email).await {
        Ok(r) => r,
        Err(e) => return api_error_page(e),
    };
    render(
        StatusCode::OK,
        &PersonPage {
            nav: nav(&s, "people"),
            scope_text: report.report.scope.clone(),
            read_at: report
                .report
                .read_at
                .as_deref()
                .map_or_else(|| "—".into(), to_second),
            rows: report
                .accounts
                .iter()
                .map(|a| PersonRow {
                    instance: a.instance.clone(),
                    kind: a.kind,
                    id: a.id.clone(),
                    name: a.name.clone(),
                    status: a.status,
                    access: a
                        .access
                        .iter()
                        .map(|g| format!("{} @ {}", g.role, g.scope))
                        .collect::<Vec<_>>()
                        .join("; "),
                    expires: shown(&a.expires_at),
                    last_login: shown(&a.last_login_at),
                    locked: a.locked,
                })
                .collect(),
            email: report.email,
            not_read: report.not_read,
        },
    )
}

struct PersonSummary {
    email: String,
    href: String,
    names: String,
    /// `instance: role @ scope; ...`
    access: String,
}

#[derive(Template)]
#[template(path = "console/people.html")]
struct PeoplePage {
    nav: Nav,
    q: String,
    matched: usize,
    first: usize,
    last: usize,
    people: Vec<PersonSummary>,
    previous: Option<String>,
    next: Option<String>,
}

#[derive(Deserialize)]
struct PeopleQuery {
    q: Option<String>,
    offset: Option<usize>,
}

async fn people_page(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<PeopleQuery>,
) -> Response {
    let Some(s) = signed(&shared, &headers).await else {
        return to_sign_in();
    };
    let text = q.q.unwrap_or_default();
    let offset = q.offset.unwrap_or(0);
    let (page_of_people, matched) =
        match access::people(&shared, &text, offset, PEOPLE_PER_PAGE).await {
            Ok(p) => p,
            Err(e) => return api_error_page(e),
        };
    let last = offset + page_of_people.len();
    let at = |o: usize| {
        href(
            "/console/people",
            &[("q", text.clone()), ("offset", o.to_string())],
        )
    };
    let people = page_of_people
        .into_iter()
        .map(|(email, accounts)| {
            let mut names: Vec<&str> = accounts.iter().map(|a| a.name.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            PersonSummary {
                href: person_href(&email),
                names: names.join(" / "),
                access: accounts
                    .iter()
                    .map(|a| {
                        let grants: Vec<String> = a
                            .access
                            .iter()
                            .map(|g| format!("{} @ {}", g.role, g.scope))
                            .collect();
                        format!("{} ({}): {}", a.instance, a.status, grants.join(", "))
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
                email,
            }
        })
        .collect();
    render(
        StatusCode::OK,
        &PeoplePage {
            nav: nav(&s, "people"),
            first: if last > offset { offset + 1 } else { 0 },
            last,
            matched,
            people,
            previous: (offset > 0).then(|| at(offset.saturating_sub(PEOPLE_PER_PAGE))),
            next: (last < matched).then(|| at(last)),
            q: text,
        },
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_shown_to_the_second() {
        assert_eq!(
            super::to_second("2026-12-01T00:14:36.814459636Z"),
            "2026-12-01T00:14:36Z"
        );
        assert_eq!(
            super::to_second("2026-12-01T00:14:36.5+02:00"),
            "2026-12-01T00:14:36+02:00"
        );
        assert_eq!(
            super::to_second("2026-12-01T00:14:36Z"),
            "2026-12-01T00:14:36Z"
        );
    }
}
