//! Admin and customer tokens: `POST /V1/integration/{admin,customer}/token` with
//! `{"username","password"}` answers a bare JSON string. Six failed sign-ins lock the
//! account for 30 minutes, with the same message as a wrong password.

use axum::http::{HeaderMap, StatusCode, header};
use serde_json::Value;
use sqlx::Row;

use super::error::{MagentoError, Result};
use super::server::App;

pub const SIGN_IN_FAILED: &str = "The account sign-in was incorrect or your account is disabled temporarily. Please wait and try again later.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Admin(i64),
    Customer(i64),
    /// An integration, by bearer token (where the store allows it) or OAuth 1.0a signature;
    /// it has the admin resources it was granted (here: all).
    Integration(i64),
}

pub fn hash_password(password: &str) -> String {
    use argon2::password_hash::PasswordHasher;
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .expect("argon2 hashes any password")
}

fn verify(hash: &str, password: &str) -> bool {
    use argon2::password_hash::PasswordVerifier;
    use argon2::password_hash::phc::PasswordHash;
    PasswordHash::new(hash).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

fn credentials(body: &Value) -> Result<(String, String)> {
    let field = |name: &str| {
        body.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| MagentoError::required(name))
    };
    Ok((field("username")?, field("password")?))
}

fn failed() -> MagentoError {
    MagentoError::new(StatusCode::UNAUTHORIZED, SIGN_IN_FAILED)
}

/// Checks the lock, then the password; counts failures; returns the subject id.
async fn sign_in(
    app: &App,
    kind: &str,
    username: &str,
    subject: Option<(i64, Option<String>)>,
    password: &str,
) -> Result<i64> {
    let now = app.clock.now_ms();
    let locked: Option<i64> = sqlx::query_scalar(
        "SELECT locked_until FROM login_failures WHERE kind = ? AND username = ?",
    )
    .bind(kind)
    .bind(username)
    .fetch_optional(&app.store.pool)
    .await?
    .flatten();
    if locked.is_some_and(|until| until > now) {
        return Err(failed());
    }
    if let Some((id, Some(hash))) = &subject
        && verify(hash, password)
    {
        sqlx::query("DELETE FROM login_failures WHERE kind = ? AND username = ?")
            .bind(kind)
            .bind(username)
            .execute(&app.store.pool)
            .await?;
        return Ok(*id);
    }
    let row = sqlx::query(
        "INSERT INTO login_failures (kind, username, failures, locked_until) VALUES (?, ?, 1, NULL)
         ON CONFLICT (kind, username) DO UPDATE SET failures = CASE WHEN locked_until IS NOT NULL THEN 1 ELSE failures + 1 END, locked_until = NULL
         RETURNING failures",
    )
    .bind(kind)
    .bind(username)
    .fetch_one(&app.store.pool)
    .await?;
    let failures: i64 = row.get(0);
    if failures >= i64::from(app.config.lock_after) {
        let until = now + app.config.lock_for.as_millis() as i64;
        sqlx::query("UPDATE login_failures SET locked_until = ? WHERE kind = ? AND username = ?")
            .bind(until)
            .bind(kind)
            .bind(username)
            .execute(&app.store.pool)
            .await?;
        tracing::info!(
            kind,
            username,
            "magento sandbox account locked after failed sign-ins"
        );
    }
    Err(failed())
}

async fn issue(app: &App, kind: &str, subject: i64, ttl_ms: i64) -> Result<String> {
    let token: String = (0..32)
        .map(|_| char::from_digit(fastrand::u32(0..36), 36).expect("a base-36 digit"))
        .collect();
    sqlx::query("INSERT INTO tokens (token, kind, subject_id, expires_at) VALUES (?, ?, ?, ?)")
        .bind(&token)
        .bind(kind)
        .bind(subject)
        .bind(app.clock.now_ms() + ttl_ms)
        .execute(&app.store.pool)
        .await?;
    Ok(token)
}

pub async fn admin_token(app: &App, body: &Value) -> Result<String> {
    let id = admin_password_ok(app, body).await?;
    if app.config.tfa {
        return Err(super::integrations::refuse_plain_token(app, id).await);
    }
    issue_admin_token(app, id).await
}

/// Checks an admin's user name and password (with the lock); answers the admin's id.
pub async fn admin_password_ok(app: &App, body: &Value) -> Result<i64> {
    let (username, password) = credentials(body)?;
    let row =
        sqlx::query("SELECT id, password_hash FROM admins WHERE username = ? AND is_active = 1")
            .bind(&username)
            .fetch_optional(&app.store.pool)
            .await?;
    let subject = row.map(|r| (r.get::<i64, _>(0), Some(r.get::<String, _>(1))));
    sign_in(app, "admin", &username, subject, &password).await
}

pub async fn issue_admin_token(app: &App, id: i64) -> Result<String> {
    issue(
        app,
        "admin",
        id,
        app.config.admin_token_ttl.as_millis() as i64,
    )
    .await
}

pub async fn customer_token(app: &App, body: &Value, website_id: i64) -> Result<String> {
    let (username, password) = credentials(body)?;
    let id = app
        .store
        .customer_id_by_email(&username, website_id)
        .await?;
    let subject = match id {
        Some(id) => Some((id, app.store.password_hash(id).await?)),
        None => None,
    };
    let id = sign_in(app, "customer", &username, subject, &password).await?;
    issue(
        app,
        "customer",
        id,
        app.config.customer_token_ttl.as_millis() as i64,
    )
    .await
}

/// The caller behind `Authorization: Bearer`, if the token is known and unexpired.
pub async fn caller(app: &App, headers: &HeaderMap) -> Result<Option<Caller>> {
    if let Some(id) = headers
        .get(super::integrations::VERIFIED_INTEGRATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
    {
        return Ok(Some(Caller::Integration(id)));
    }
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string())
    else {
        return Ok(None);
    };
    let row = sqlx::query("SELECT kind, subject_id, expires_at FROM tokens WHERE token = ?")
        .bind(&token)
        .fetch_optional(&app.store.pool)
        .await?;
    if row.is_none() {
        return Ok(super::integrations::by_bearer(app, &token)
            .await?
            .map(Caller::Integration));
    }
    Ok(row.and_then(|r| {
        let expires: i64 = r.get(2);
        (expires > app.clock.now_ms()).then(|| match r.get::<String, _>(0).as_str() {
            "admin" => Caller::Admin(r.get(1)),
            _ => Caller::Customer(r.get(1)),
        })
    }))
}

/// An admin caller, or the 401 Magento gives for `resources`.
pub async fn require_admin(app: &App, headers: &HeaderMap, resources: &str) -> Result<i64> {
    match caller(app, headers).await? {
        Some(Caller::Admin(id)) => Ok(id),
        // Not an admin user: no admin id (0 is none).
        Some(Caller::Integration(_)) => Ok(0),
        _ => Err(MagentoError::unauthorized(resources)),
    }
}
