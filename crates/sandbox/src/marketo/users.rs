//! The twelve User Management endpoints under `/userservice/management/v1/users/`.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use roster_domain::marketo_time::{self, format_compact, format_dashed};
use serde_json::{Value, json};

use super::api_guard::ReadStamp;
use super::body::{
    self, object, optional_bool, optional_str, required_json, required_str, role_pairs,
};
use super::config::RoleBodyShapes;
use super::error::ApiError;
use super::server::App;
use super::store::{Caller, Grant, NewUser, UserRow};
use crate::clock::from_ms;

type ApiResult = Result<Response, ApiError>;

/// How long a pending invitation can be accepted.
pub const INVITE_LIFETIME_MS: i64 = 7 * 24 * 3600 * 1000;
const DEFAULT_PAGE_SIZE: i64 = 20;
const MAX_PAGE_SIZE: i64 = 200;
const ALL_ZONES: i64 = 0;

fn json_ok(value: Value) -> ApiResult {
    Ok((StatusCode::OK, axum::Json(value)).into_response())
}

/// A 200 with no body, as `delete.json` answers.
fn empty_ok() -> ApiResult {
    Ok(StatusCode::OK.into_response())
}

fn userid(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(id) = path.map_err(|e| {
        ApiError::invalid(format!(
            "Invalid data: the userid in the path is not valid: {e}"
        ))
    })?;
    if id.trim().is_empty() {
        return Err(ApiError::blank("userid"));
    }
    Ok(id)
}

/// A role in a workspace, as the API shows it (borrowed: serialised without copies).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct GrantView<'a> {
    access_role_id: i64,
    access_role_name: &'a str,
    workspace_id: i64,
    workspace_name: &'a str,
}

fn grant_views(grants: &[Grant]) -> Vec<GrantView<'_>> {
    grants
        .iter()
        .map(|g| GrantView {
            access_role_id: g.role_id,
            access_role_name: &g.role_name,
            workspace_id: g.workspace_id,
            workspace_name: &g.workspace_name,
        })
        .collect()
}

fn grants_json(grants: &[Grant]) -> Value {
    serde_json::to_value(grant_views(grants)).expect("grants serialise")
}

/// A user as `user.json` shows it, in the API's field order.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct UserView<'a> {
    userid: &'a str,
    first_name: &'a str,
    last_name: &'a str,
    email_address: &'a str,
    opted_in: bool,
    failed_logins: i64,
    failed_device_code: i64,
    is_locked: bool,
    locked_reason: Option<&'a str>,
    id: i64,
    api_only: bool,
    user_role_workspaces: Vec<GrantView<'a>>,
    expires_at: Option<String>,
    last_login_at: Option<String>,
}

fn user_view<'a>(user: &'a UserRow, grants: &'a [Grant]) -> UserView<'a> {
    UserView {
        userid: &user.userid,
        first_name: &user.first_name,
        last_name: &user.last_name,
        email_address: &user.email,
        opted_in: user.opted_in,
        failed_logins: user.failed_logins,
        failed_device_code: 0,
        is_locked: user.is_locked,
        locked_reason: user.locked_reason.as_deref(),
        id: user.id,
        api_only: user.api_only,
        user_role_workspaces: grant_views(grants),
        expires_at: user.expires_at.map(|t| format_dashed(from_ms(t))),
        last_login_at: user.last_login_at.map(|t| format_dashed(from_ms(t))),
    }
}

fn user_json(user: &UserRow, grants: &[Grant]) -> Value {
    serde_json::to_value(user_view(user, grants)).expect("a user serialises")
}

fn not_found(userid: &str) -> ApiError {
    ApiError::not_found(format!("User not found: {userid}"))
}

/// An accepted user, or 610 that says where a pending one can be found.
/// An accepted user, or the API's answer for a pending or unknown one.
fn accepted(user: Option<UserRow>, userid: &str) -> Result<UserRow, ApiError> {
    match user {
        Some(user) if !user.pending => Ok(user),
        Some(_) => Err(ApiError::not_found(format!(
            "User not found: {userid} has a pending invitation and has not accepted it yet; read it with {userid}/invite.json"
        ))),
        None => Err(not_found(userid)),
    }
}

fn ims_refusal(app: &App, api_only: bool, action: &str) -> Result<(), ApiError> {
    if app.config.ims && !api_only {
        return Err(ApiError::rule(format!(
            "This subscription is managed by Adobe Identity (IMS): the API can {action} API-only users only; manage standard users in the Adobe Admin Console"
        )));
    }
    Ok(())
}

fn query_int(
    query: &Option<String>,
    name: &str,
    default: i64,
    min: i64,
    max: i64,
) -> Result<i64, ApiError> {
    let raw = query.as_deref().unwrap_or("");
    let Some((_, value)) = form_urlencoded::parse(raw.as_bytes()).find(|(k, _)| k == name) else {
        return Ok(default);
    };
    value
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "Invalid data: {name} must be an integer from {min} to {max}, not {value:?}"
            ))
        })
}

// ---- reads ----

pub async fn list_users(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> ApiResult {
    let size = query_int(&query, "pageSize", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)?;
    let offset = query_int(&query, "pageOffset", 0, 0, i64::from(i32::MAX))?;
    let users = app.store.active_user_summaries(offset, size).await?;
    Ok((StatusCode::OK, axum::Json(users)).into_response())
}

pub async fn get_user(
    State(app): State<Arc<App>>,
    Extension(ReadStamp(stamp)): Extension<ReadStamp>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let id = userid(path)?;
    app.limiter
        .stats
        .users_read
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // A pure read: everything as of the request's arrival.
    let user = accepted(app.store.user_as_of(stamp, &id).await?, &id)?;
    let grants = app.store.grants_as_of(stamp, user.id).await?;
    Ok((StatusCode::OK, axum::Json(user_view(&user, &grants))).into_response())
}

pub async fn get_invite(
    State(app): State<Arc<App>>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let id = userid(path)?;
    let user = match app.store.user(&id).await? {
        Some(user) if user.pending => user,
        Some(_) => {
            return Err(ApiError::not_found(format!(
                "No pending invitation for {id}: the user has accepted it; read the user with {id}/user.json"
            )));
        }
        None => {
            return Err(ApiError::not_found(format!(
                "No pending invitation for {id}"
            )));
        }
    };
    let expires_at = user
        .invite_expires_at
        .unwrap_or(user.created_at + INVITE_LIFETIME_MS);
    let status = if expires_at <= app.clock.now_ms() {
        "expired"
    } else {
        "pending"
    };
    json_ok(json!({
        "id": user.id,
        "firstName": user.first_name,
        "lastName": user.last_name,
        "emailAddress": user.email,
        "userid": user.userid,
        "subscriptionId": app.subscription_id,
        "status": status,
        "expiresAt": format_compact(from_ms(expires_at)),
        "createdAt": format_compact(from_ms(user.created_at)),
        "updatedAt": format_compact(from_ms(user.updated_at)),
    }))
}

pub async fn get_user_roles(
    State(app): State<Arc<App>>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let id = userid(path)?;
    app.limiter
        .stats
        .users_read
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let user = app.store.user(&id).await?.ok_or_else(|| not_found(&id))?;
    json_ok(grants_json(&app.store.grants(user.id).await?))
}

pub async fn list_roles(State(app): State<Arc<App>>) -> ApiResult {
    let roles = app.store.roles().await?;
    json_ok(Value::Array(
        roles
            .iter()
            .map(|r| {
                json!({
                    "id": r.id,
                    "name": r.name,
                    "description": r.description,
                    "type": r.kind,
                    "hidden": r.hidden,
                    "onlyAllZones": r.only_all_zones,
                    "createdAt": format_compact(from_ms(r.created_at)),
                    "updatedAt": format_compact(from_ms(r.updated_at)),
                })
            })
            .collect(),
    ))
}

pub async fn list_workspaces(State(app): State<Arc<App>>) -> ApiResult {
    let workspaces = app.store.workspaces().await?;
    json_ok(Value::Array(
        workspaces
            .iter()
            .map(|w| {
                json!({
                    "id": w.id,
                    "name": w.name,
                    "description": w.description,
                    "globalViz": w.global_viz,
                    "status": w.status,
                    "currencyInfo": null,
                    "createdAt": format_compact(from_ms(w.created_at)),
                    "updatedAt": format_compact(from_ms(w.updated_at)),
                })
            })
            .collect(),
    ))
}

// ---- role checks shared by invite and the role endpoints ----

/// Checks that every role and workspace exists and that `onlyAllZones` roles are granted in
/// workspace 0 only; returns the pairs with their names.
async fn resolve_pairs(app: &App, pairs: &[(i64, i64)]) -> Result<Vec<Grant>, ApiError> {
    let mut grants = Vec::with_capacity(pairs.len());
    for &(role_id, workspace_id) in pairs {
        let role = app.store.role(role_id).await?.ok_or_else(|| {
            ApiError::invalid(format!(
                "Invalid data: accessRoleId {role_id} does not exist; roles.json lists the roles"
            ))
        })?;
        let workspace_name = app.store.workspace_name(workspace_id).await?.ok_or_else(|| {
            ApiError::invalid(format!(
                "Invalid data: workspaceId {workspace_id} does not exist; workspaces.json lists the workspaces"
            ))
        })?;
        if role.only_all_zones && workspace_id != ALL_ZONES {
            return Err(ApiError::rule(format!(
                "Role '{}' ({role_id}) is onlyAllZones: it can only be granted in workspace {ALL_ZONES} (AllZones), not in '{workspace_name}' ({workspace_id})",
                role.name
            )));
        }
        grants.push(Grant {
            role_id,
            role_name: role.name,
            workspace_id,
            workspace_name,
        });
    }
    Ok(grants)
}

fn parse_expiry(value: Option<&str>, now_ms: i64) -> Result<Option<i64>, ApiError> {
    let Some(raw) = value else { return Ok(None) };
    let at = marketo_time::parse(raw)
        .map_err(|e| ApiError::new(704, format!("Invalid date format for expiresAt: {e}")))?;
    let ms = (at.unix_timestamp_nanos() / 1_000_000) as i64;
    if ms <= now_ms {
        return Err(ApiError::rule(format!(
            "expiresAt {raw} is in the past; give a future date or leave it out"
        )));
    }
    Ok(Some(ms))
}

// ---- writes ----

pub async fn invite(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    // Run to its end even if the client goes away mid-request, as Marketo does: hyper drops
    // a handler when its connection closes, which could leave a pending user stored without
    // the invitation email that goes with it.
    tokio::spawn(invite_whole(app, caller, headers, body))
        .await
        .unwrap_or_else(|e| Err(ApiError::internal(format!("the invitation stopped: {e}"))))
}

async fn invite_whole(
    app: Arc<App>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let value = required_json(&headers, body)?;
    let obj = object(&value)?;
    let email = required_str(obj, "emailAddress")?;
    body::email("emailAddress", email)?;
    let first_name = required_str(obj, "firstName")?;
    let last_name = required_str(obj, "lastName")?;
    let pairs = match obj.get("userRoleWorkspaces") {
        None | Some(Value::Null) => return Err(ApiError::blank("userRoleWorkspaces")),
        Some(Value::Array(items)) => body::pairs_from(items, "userRoleWorkspaces")?,
        Some(_) => {
            return Err(ApiError::invalid(
                "Invalid data: userRoleWorkspaces must be an array of {accessRoleId, workspaceId}",
            ));
        }
    };
    let userid = optional_str(obj, "userid")?.unwrap_or(email);
    body::email("userid", userid)?;
    let api_only = optional_bool(obj, "apiOnly")?.unwrap_or(false);
    let reason = optional_str(obj, "reason")?;
    let now = app.clock.now_ms();
    let expires_at = parse_expiry(optional_str(obj, "expiresAt")?, now)?;
    ims_refusal(&app, api_only, "invite")?;
    let grants = resolve_pairs(&app, &pairs).await?;

    let _write = app.store.write_guard().await;
    if let Some(existing) = app.store.user(userid).await? {
        let invite_live = existing.invite_expires_at.is_some_and(|t| t > now);
        if !existing.pending {
            return Err(ApiError::rule(format!("User {userid} already exists")));
        }
        if invite_live {
            return Err(ApiError::rule(format!(
                "User {userid} has already been invited and the invitation is pending; delete it with {userid}/invite/delete.json to invite again"
            )));
        }
        // An expired invitation is replaced by the new one.
        app.store.delete_user(existing.id).await?;
    }
    let token = (!api_only).then(|| uuid::Uuid::new_v4().simple().to_string());
    let invite_expires_at = (!api_only).then_some(now + INVITE_LIFETIME_MS);
    let new_user = NewUser {
        userid,
        email,
        first_name,
        last_name,
        api_only,
        pending: !api_only,
        expires_at,
        reason,
        invite_token: token.as_deref(),
        invite_expires_at,
        now,
    };
    let pairs: Vec<(i64, i64)> = grants.iter().map(|g| (g.role_id, g.workspace_id)).collect();
    app.store.insert_user(&new_user, &pairs).await?;
    if let (Some(token), Some(expires)) = (token.as_deref(), invite_expires_at) {
        super::invites::send_invitation(&app, &caller, &new_user, token, expires).await?;
    }
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        "true",
    )
        .into_response())
}

pub async fn update(
    State(app): State<Arc<App>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let id = userid(path)?;
    let value = required_json(&headers, body)?;
    let obj = object(&value)?;
    let _write = app.store.write_guard().await;
    let user = match app.store.user(&id).await? {
        Some(user) if user.pending => {
            return Err(ApiError::rule(format!(
                "User {id} has not accepted the invitation yet; a pending user cannot be edited"
            )));
        }
        Some(user) => user,
        None => return Err(not_found(&id)),
    };
    ims_refusal(&app, user.api_only, "update")?;
    if let Some(new_id) = optional_str(obj, "userid")?
        && !new_id.eq_ignore_ascii_case(&user.userid)
    {
        return Err(ApiError::rule("userid cannot be changed"));
    }
    if let Some(api_only) = optional_bool(obj, "apiOnly")?
        && api_only != user.api_only
    {
        return Err(ApiError::rule(
            "apiOnly cannot be changed after the user is created",
        ));
    }
    let email = optional_str(obj, "emailAddress")?;
    if let Some(email) = email {
        body::email("emailAddress", email)?;
    }
    let first_name = optional_str(obj, "firstName")?;
    let last_name = optional_str(obj, "lastName")?;
    let now = app.clock.now_ms();
    let expires_at = match obj.get("expiresAt") {
        Some(Value::Null) => None,
        None => user.expires_at,
        Some(_) => parse_expiry(optional_str(obj, "expiresAt")?, now)?,
    };
    let touched = email.is_some()
        || first_name.is_some()
        || last_name.is_some()
        || obj.contains_key("expiresAt");
    if !touched {
        return Err(ApiError::blank(
            "emailAddress, firstName, lastName or expiresAt",
        ));
    }
    app.store
        .update_user(
            user.id,
            email.unwrap_or(&user.email),
            first_name.unwrap_or(&user.first_name),
            last_name.unwrap_or(&user.last_name),
            expires_at,
            now,
        )
        .await?;
    let updated = app.store.user(&id).await?.ok_or_else(|| not_found(&id))?;
    let grants = app.store.grants(updated.id).await?;
    json_ok(user_json(&updated, &grants))
}

pub async fn delete_user(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let id = userid(path)?;
    // The body, if any, carries an optional reason; it must still be valid JSON.
    let _ = body::optional_json(&headers, body)?;
    let _write = app.store.write_guard().await;
    let user = match app.store.user(&id).await? {
        Some(user) if user.pending => {
            return Err(ApiError::rule(format!(
                "User {id} is a pending invitation; delete it with {id}/invite/delete.json"
            )));
        }
        Some(user) => user,
        None => return Err(not_found(&id)),
    };
    ims_refusal(&app, user.api_only, "delete")?;
    if user.id == caller.user_id {
        return Err(ApiError::rule("An API user cannot delete itself"));
    }
    app.store.delete_user(user.id).await?;
    tracing::info!(userid = %user.userid, "marketo sandbox user deleted");
    empty_ok()
}

pub async fn delete_invite(
    State(app): State<Arc<App>>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let id = userid(path)?;
    let _write = app.store.write_guard().await;
    match app.store.user(&id).await? {
        Some(user) if user.pending => {
            app.store.delete_user(user.id).await?;
            empty_ok()
        }
        Some(_) => Err(ApiError::not_found(format!(
            "No pending invitation for {id}: the user has accepted it; delete the user with {id}/delete.json"
        ))),
        None => Err(ApiError::not_found(format!(
            "No pending invitation for {id}"
        ))),
    }
}

pub async fn add_roles(
    State(app): State<Arc<App>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    change_roles(app, path, headers, body, true).await
}

pub async fn remove_roles(
    State(app): State<Arc<App>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    change_roles(app, path, headers, body, false).await
}

/// Adds or removes role/workspace pairs and answers with the user's resulting list.
///
/// For a pending user the answer shows the change but nothing is stored: the guide warns
/// that "role assignment before invitation acceptance may not persist", and clients must
/// be able to see that happen here.
async fn change_roles(
    app: Arc<App>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    add: bool,
) -> ApiResult {
    let id = userid(path)?;
    let value = required_json(&headers, body)?;
    match (app.config.role_body, &value) {
        (RoleBodyShapes::BareArray, Value::Object(_)) => {
            return Err(ApiError::invalid(
                "Invalid data: expected a JSON array of {accessRoleId, workspaceId}",
            ));
        }
        (RoleBodyShapes::InputWrapper, Value::Array(_)) => {
            return Err(ApiError::invalid(
                "Invalid data: expected {\"input\": [{accessRoleId, workspaceId}, ...]}",
            ));
        }
        _ => {}
    }
    let pairs = role_pairs(&value, "input")?;
    let requested = resolve_pairs(&app, &pairs).await?;
    let _write = app.store.write_guard().await;
    let user = app.store.user(&id).await?.ok_or_else(|| not_found(&id))?;
    let mut grants = app.store.grants(user.id).await?;
    if user.pending {
        tracing::info!(userid = %id, "role change on a pending user answered but not stored");
    } else if add {
        app.store
            .add_grants(user.id, &pairs, app.clock.now_ms())
            .await?;
    } else {
        app.store
            .remove_grants(user.id, &pairs, app.clock.now_ms())
            .await?;
    }
    if user.pending {
        if add {
            for g in requested {
                if !grants
                    .iter()
                    .any(|h| h.role_id == g.role_id && h.workspace_id == g.workspace_id)
                {
                    grants.push(g);
                }
            }
        } else {
            grants.retain(|g| !pairs.contains(&(g.role_id, g.workspace_id)));
        }
        grants.sort_by_key(|g| (g.workspace_id, g.role_id));
    } else {
        grants = app.store.grants(user.id).await?;
    }
    json_ok(grants_json(&grants))
}
