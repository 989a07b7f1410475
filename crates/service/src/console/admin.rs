//! The admin page: console accounts, API tokens, SCIM tokens and webhooks with their last
//! deliveries, for admins only. Every change goes through [`crate::admin::Admin`], as the
//! CLI's do, so it is checked and logged alike; destructive ones need a ticked box; a
//! change answers with a redirect (a reload does not repeat it), except a new token, which
//! is shown once on the page that made it and never stored.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use roster_engine::text::{moment, rfc3339};
use serde::Deserialize;
use time::OffsetDateTime;

use super::{Nav, message_page, nav, render, signed, signed_form, to_sign_in, when};
use crate::Shared;
use crate::admin::{Admin, AdminError, MIN_PASSWORD, NewToken};
use crate::tokens::Role;

pub(super) fn routes() -> axum::Router<Arc<Shared>> {
    axum::Router::new()
        .route("/console/admin", get(page))
        .route("/console/admin/users/add", post(add_user))
        .route("/console/admin/users/role", post(set_role))
        .route("/console/admin/users/unlock", post(unlock))
        .route("/console/admin/users/password", post(set_password))
        .route("/console/admin/users/remove", post(remove_user))
        .route("/console/admin/tokens/create", post(create_token))
        .route("/console/admin/tokens/rotate", post(rotate_token))
        .route("/console/admin/tokens/revoke", post(revoke_token))
        .route("/console/admin/scim/create", post(create_scim))
        .route("/console/admin/scim/revoke", post(revoke_scim))
}

struct UserRow {
    name: String,
    role: String,
    sign_in: &'static str,
    created: String,
    locked: bool,
    locked_until: String,
    is_you: bool,
}

struct TokenRow {
    name: String,
    role: String,
    acts_for: String,
    created: String,
    last_used: String,
    expires: String,
    /// `live`, `expired` or `revoked`.
    status: &'static str,
    /// The old token of a rotation, working until its overlap ends.
    retired: bool,
}

struct ScimRow {
    name: String,
    instances: String,
    created: String,
    last_used: String,
    status: &'static str,
}

struct LastDelivery {
    status: String,
    event: String,
    at: String,
    error: String,
}

struct HookRow {
    name: String,
    /// The receiver's host only: a webhook URL often carries its secret in its path.
    host: String,
    events: String,
    last: Option<LastDelivery>,
    failed: usize,
}

/// A token just made, shown once.
struct Shown {
    what: String,
    token: String,
}

#[derive(Template)]
#[template(path = "console/admin.html")]
struct AdminPage {
    nav: Nav,
    users: Vec<UserRow>,
    tokens: Vec<TokenRow>,
    scim: Vec<ScimRow>,
    hooks: Vec<HookRow>,
    instances: Vec<String>,
    roles: &'static [&'static str],
    min_password: usize,
    message: Option<String>,
    failed: bool,
    shown_token: Option<Shown>,
}

#[derive(Deserialize)]
struct Done {
    done: Option<String>,
    name: Option<String>,
}

fn status_of(
    revoked: Option<OffsetDateTime>,
    expires: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> &'static str {
    if revoked.is_some() {
        "revoked"
    } else if expires.is_some_and(|e| e <= now) {
        "expired"
    } else {
        "live"
    }
}

async fn admin_page(
    shared: &Shared,
    s: &super::Signed,
    status: StatusCode,
    message: Option<String>,
    failed: bool,
    shown_token: Option<Shown>,
) -> Response {
    let store = &shared.store;
    let now = OffsetDateTime::now_utc();
    let users = store
        .console_users()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|u| {
            let locked_until = u.locked_until.filter(|t| *t > now);
            UserRow {
                is_you: u.name == s.caller.name,
                sign_in: if u.password_hash == roster_store::OIDC_ACCOUNT {
                    "single sign-on"
                } else {
                    "password"
                },
                created: moment(u.created_at),
                locked: locked_until.is_some(),
                locked_until: when(locked_until),
                name: u.name,
                role: u.role,
            }
        })
        .collect();
    let tokens = store
        .tokens()
        .await
        .unwrap_or_default()
        .into_iter()
        .rev()
        .map(|t| TokenRow {
            status: status_of(t.revoked_at, t.expires_at, now),
            retired: crate::tokens::identity(&t.name) != t.name,
            acts_for: t
                .account
                .clone()
                .unwrap_or_else(|| "(service account)".into()),
            created: moment(t.created_at),
            last_used: t.last_used_at.map_or_else(|| "never".into(), moment),
            expires: t.expires_at.map(rfc3339).unwrap_or_else(|| "never".into()),
            name: t.name,
            role: t.role,
        })
        .collect();
    let scim = store
        .scim_connections()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|c| ScimRow {
            status: status_of(c.revoked_at, None, now),
            instances: c.reach(),
            created: moment(c.created_at),
            last_used: c.last_used_at.map_or_else(|| "never".into(), moment),
            name: c.name,
        })
        .collect();
    let deliveries = store.deliveries(500).await.unwrap_or_default();
    let hooks = shared
        .config
        .webhooks
        .iter()
        .map(|h| {
            let of: Vec<_> = deliveries.iter().filter(|d| d.hook == h.name).collect();
            HookRow {
                name: h.name.clone(),
                host: url::Url::parse(&h.url)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_string))
                    .unwrap_or_else(|| "(not a URL)".into()),
                events: if h.events.is_empty() {
                    "every event".into()
                } else {
                    h.events.join(", ")
                },
                // Deliveries come newest first.
                last: of.first().map(|d| LastDelivery {
                    status: d.status.clone(),
                    event: d.event.clone(),
                    at: moment(d.created_at),
                    error: d.last_error.clone().unwrap_or_default(),
                }),
                failed: of.iter().filter(|d| d.status == "failed").count(),
            }
        })
        .collect();
    let mut r = render(
        status,
        &AdminPage {
            nav: nav(s, "admin"),
            users,
            tokens,
            scim,
            hooks,
            instances: shared.workers.keys().cloned().collect(),
            roles: Role::NAMES,
            min_password: MIN_PASSWORD,
            message,
            failed,
            shown_token,
        },
    );
    // The page may carry a token shown once: no cache keeps it.
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The signed-in admin of a page request; else the sign-in page or the refusal.
async fn admin_of(shared: &Shared, headers: &HeaderMap) -> Result<super::Signed, Response> {
    let Some(s) = signed(shared, headers).await else {
        return Err(to_sign_in());
    };
    match refusal_unless_admin(&s) {
        Some(refused) => Err(refused),
        None => Ok(s),
    }
}

/// The page refusing someone who is not an admin.
fn refusal_unless_admin(s: &super::Signed) -> Option<Response> {
    s.caller
        .must_be(Role::Admin, "administering Roster")
        .err()
        .map(|e| {
            message_page(
                e.status(),
                "Refused",
                e.message(),
                Some(("/console", "Overview")),
            )
        })
}

async fn page(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(done): Query<Done>,
) -> Response {
    let s = match admin_of(&shared, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let name = done.name.unwrap_or_default();
    let message = done.done.as_deref().and_then(|d| {
        Some(match d {
            "added" => format!("Console account {name} added."),
            "role" => format!("Console account {name} has its new role."),
            "unlocked" => format!("Console account {name} unlocked."),
            "password" => format!(
                "Console account {name} has a new password; it is unlocked and signed out everywhere."
            ),
            "removed" => {
                format!("Console account {name} removed: signed out, its tokens no longer work.")
            }
            "revoked" => format!("API token {name} revoked."),
            "scim-revoked" => format!("SCIM token {name} revoked."),
            _ => return None,
        })
    });
    admin_page(&shared, &s, StatusCode::OK, message, false, None).await
}

/// Runs a change as the signed-in admin of a form; a refusal shows the page with why.
async fn change<F>(shared: &Shared, headers: &HeaderMap, csrf: &str, act: F) -> Response
where
    F: AsyncFnOnce(Admin<'_>, &super::Signed) -> Result<Response, AdminError>,
{
    let s = match signed_form(shared, headers, csrf).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Some(refused) = refusal_unless_admin(&s) {
        return refused;
    }
    match act(Admin::new(&shared.store, Some(&s.caller.name)), &s).await {
        Ok(r) => r,
        Err(e) if e.is_refusal() => {
            admin_page(
                shared,
                &s,
                StatusCode::CONFLICT,
                Some(e.to_string()),
                true,
                None,
            )
            .await
        }
        Err(e) => {
            tracing::error!("{e}");
            admin_page(
                shared,
                &s,
                StatusCode::INTERNAL_SERVER_ERROR,
                Some(e.to_string()),
                true,
                None,
            )
            .await
        }
    }
}

/// The page after a token was made: the token shown once, on a page no cache keeps.
async fn token_page(
    shared: &Shared,
    s: &super::Signed,
    message: Option<String>,
    what: String,
    token: String,
) -> Response {
    let shown = Some(Shown { what, token });
    admin_page(shared, s, StatusCode::OK, message, false, shown).await
}

fn done(what: &str, name: &str) -> Response {
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("done", what)
        .append_pair("name", name)
        .finish();
    Redirect::to(&format!("/console/admin?{q}")).into_response()
}

fn confirmed(confirm: &Option<String>, what: &str) -> Result<(), AdminError> {
    if confirm.as_deref() == Some("yes") {
        Ok(())
    } else {
        Err(AdminError::Refused(format!(
            "tick the box to confirm that {what}; nothing was changed"
        )))
    }
}

#[derive(Deserialize)]
struct UserForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
    confirm: Option<String>,
}

async fn add_user(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<UserForm>,
) -> Response {
    change(&shared, &headers, &f.csrf, async |a, _| {
        a.add_user(f.name.trim(), &f.role, f.password.clone())
            .await?;
        Ok(done("added", f.name.trim()))
    })
    .await
}

async fn set_role(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<UserForm>,
) -> Response {
    change(&shared, &headers, &f.csrf, async |a, _| {
        a.set_role(&f.name, &f.role).await?;
        Ok(done("role", &f.name))
    })
    .await
}

async fn set_password(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<UserForm>,
) -> Response {
    change(&shared, &headers, &f.csrf, async |a, _| {
        a.set_password(&f.name, f.password.clone()).await?;
        Ok(done("password", &f.name))
    })
    .await
}

async fn unlock(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<UserForm>,
) -> Response {
    change(&shared, &headers, &f.csrf, async |a, _| {
        a.unlock_user(&f.name).await?;
        Ok(done("unlocked", &f.name))
    })
    .await
}

async fn remove_user(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<UserForm>,
) -> Response {
    change(&shared, &headers, &f.csrf, async |a, _| {
        confirmed(&f.confirm, &format!("{} is to be removed", f.name))?;
        a.remove_user(&f.name).await?;
        Ok(done("removed", &f.name))
    })
    .await
}

#[derive(Deserialize)]
struct TokenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    account: String,
    #[serde(default)]
    expires: String,
    #[serde(default)]
    overlap: String,
    confirm: Option<String>,
}

fn duration_field(text: &str, what: &str) -> Result<Option<std::time::Duration>, AdminError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    roster_engine::conn::parse_duration(text)
        .map(Some)
        .map_err(|e| AdminError::Refused(format!("{what}: {e}")))
}

async fn create_token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<TokenForm>,
) -> Response {
    change(&shared, &headers, &f.csrf, async |a, s| {
        let account = Some(f.account.trim()).filter(|a| !a.is_empty());
        let made = a
            .create_token(NewToken {
                name: f.name.trim(),
                role: &f.role,
                account,
                expires: duration_field(&f.expires, "expires after")?,
            })
            .await?;
        Ok(token_page(
            &shared,
            s,
            None,
            format!(
                "API token {} ({}{}){}",
                f.name.trim(),
                f.role,
                account
                    .map(|a| format!(", acting for {a}"))
                    .unwrap_or_else(|| ", service account".into()),
                made.expires_at
                    .map(|e| format!(", expires {}", rfc3339(e)))
                    .unwrap_or_default()
            ),
            made.token,
        )
        .await)
    })
    .await
}

async fn rotate_token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<TokenForm>,
) -> Response {
    change(&shared, &headers, &f.csrf, async |a, s| {
        let overlap = duration_field(&f.overlap, "the old token's overlap")?
            .unwrap_or(std::time::Duration::from_secs(86_400));
        let made = a.rotate_token(&f.name, overlap, None).await?;
        let message = format!(
            "API token {} rotated: give its clients the new token below; the old one keeps working for {} more.",
            f.name, f.overlap
        );
        let what = format!("The new API token {}", f.name);
        Ok(token_page(&shared, s, Some(message), what, made.token).await)
    })
    .await
}

async fn revoke_token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<TokenForm>,
) -> Response {
    change(&shared, &headers, &f.csrf, async |a, _| {
        confirmed(
            &f.confirm,
            &format!("the token {} is to be revoked", f.name),
        )?;
        a.revoke_token(&f.name).await?;
        Ok(done("revoked", &f.name))
    })
    .await
}

#[derive(Deserialize)]
struct ScimForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    /// Gathered by hand from repeated fields (see `create_scim`).
    #[serde(skip)]
    instances: Vec<String>,
    confirm: Option<String>,
}

async fn create_scim(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    // Repeated `instances` fields: serde_urlencoded cannot gather them into a list.
    let mut f = ScimForm {
        csrf: String::new(),
        name: String::new(),
        instances: Vec::new(),
        confirm: None,
    };
    for (k, v) in form_urlencoded::parse(&body) {
        match &*k {
            "csrf" => f.csrf = v.into_owned(),
            "name" => f.name = v.into_owned(),
            "instances" => f.instances.push(v.into_owned()),
            _ => {}
        }
    }
    change(&shared, &headers, &f.csrf, async |a, s| {
        if let Some(bad) = f
            .instances
            .iter()
            .find(|i| !shared.workers.contains_key(*i))
        {
            return Err(AdminError::Refused(format!(
                "this service runs no instance {bad:?}"
            )));
        }
        let token = a.create_scim_token(f.name.trim(), &f.instances).await?;
        let what = format!(
            "SCIM token {} ({})",
            f.name.trim(),
            roster_store::ScimConnection::reach_of(&f.instances)
        );
        Ok(token_page(&shared, s, None, what, token).await)
    })
    .await
}

async fn revoke_scim(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<ScimForm>,
) -> Response {
    change(&shared, &headers, &f.csrf, async |a, _| {
        confirmed(
            &f.confirm,
            &format!("the SCIM token {} is to be revoked", f.name),
        )?;
        a.revoke_scim_token(&f.name).await?;
        Ok(done("scim-revoked", &f.name))
    })
    .await
}
