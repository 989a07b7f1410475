//! What stands in front of every User Management call, in the order the real service applies
//! it: the concurrency limit (615), injected latency, the bearer token (601/602, never from the
//! query string), the caller's two permissions (603), the rate window (606), the daily quota
//! (607), and injected transient failures.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use roster_domain::marketo_time::quota_day;

use super::error::ApiError;
use super::limits::{Fault, pick_fault};
use super::server::App;
use super::store::Caller;
use super::{PERMISSION_ACCESS_USERS, PERMISSION_USER_MANAGEMENT_API};

pub async fn guard(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    // Only when debug logging is on: the copies cost more than the rest of a cached read.
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return guarded(&app, req, next).await;
    }
    let started = Instant::now();
    let method = req.method().clone();
    // The path only: a query string could carry credentials.
    let path = req.uri().path().to_owned();
    let response = guarded(&app, req, next).await;
    tracing::debug!(%method, %path, status = response.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "marketo api call");
    response
}

async fn guarded(app: &App, req: Request, next: Next) -> Response {
    let _slot = match app.limiter.enter() {
        Ok(slot) => slot,
        Err(err) => return err.into_response(),
    };
    // The answer leaves no sooner than `latency` after the call arrived: the injected delay
    // is the whole cost of a call, not a cost added on top of the work.
    let latency = app.config.faults.latency;
    let answer_at = tokio::time::Instant::now() + latency;
    let response = checked(app, req, next).await;
    if !latency.is_zero() {
        tokio::time::sleep_until(answer_at).await;
    }
    response
}

async fn checked(app: &App, mut req: Request, next: Next) -> Response {
    let query = req.uri().query().unwrap_or("").to_owned();
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    // One look at the database's state for the whole request: its reads come from memory
    // while nothing changed.
    let stamp = app.store.read_stamp();
    let caller = match authorize(app, &query, &auth, stamp).await {
        Ok(caller) => caller,
        Err(err) => return err.into_response(),
    };
    req.extensions_mut().insert(ReadStamp(stamp));
    if let Err(err) = app.limiter.count_call(quota_day(app.clock.now())) {
        return err.into_response();
    }
    req.extensions_mut().insert(caller);
    let timeout_rate = app.config.faults.write_timeout_rate;
    if req.method() == axum::http::Method::POST
        && timeout_rate > 0.0
        && fastrand::f64() < timeout_rate
    {
        app.limiter
            .stats
            .faults_injected
            .fetch_add(1, Ordering::Relaxed);
        let _ = next.run(req).await;
        return ApiError::new(604, "Request timed out").into_response();
    }
    let Some(fault) = pick_fault(app.config.faults.error_rate) else {
        return next.run(req).await;
    };
    app.limiter
        .stats
        .faults_injected
        .fetch_add(1, Ordering::Relaxed);
    match fault {
        Fault::BadGateway => (
            StatusCode::BAD_GATEWAY,
            [(header::CONTENT_TYPE, "text/html")],
            Html("<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>"),
        )
            .into_response(),
        Fault::SystemError => ApiError::new(611, "System error").into_response(),
        Fault::Unavailable => ApiError::new(608, "API Temporarily Unavailable").into_response(),
        Fault::TimeoutAfterRun => {
            let _ = next.run(req).await;
            ApiError::new(604, "Request timed out").into_response()
        }
    }
}

/// The database's state when a request arrived, for its reads.
#[derive(Debug, Clone, Copy)]
pub struct ReadStamp(pub Option<super::read_cache::Stamp>);

async fn authorize(
    app: &App,
    query: &str,
    header: &str,
    stamp: Option<super::read_cache::Stamp>,
) -> Result<Caller, ApiError> {
    if form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == "access_token") {
        return Err(ApiError::new(
            601,
            "Access token invalid: the User Management API does not accept access_token in the query string; send it as Authorization: Bearer <token>",
        ));
    }
    let token = match header.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            token.trim()
        }
        _ => {
            return Err(ApiError::new(
                601,
                "Access token invalid: send the token from /identity/oauth/token as Authorization: Bearer <token>",
            ));
        }
    };
    let Some((expires_at, caller)) = app.store.caller_as_of(stamp, token).await? else {
        return Err(ApiError::new(601, "Access token invalid"));
    };
    let now = app.clock.now_ms();
    if expires_at <= now {
        return Err(ApiError::new(602, "Access token expired"));
    }
    let rate = app.config.faults.token_expiry_rate;
    if rate > 0.0 && fastrand::f64() < rate {
        app.store.expire_token(token, now).await?;
        app.limiter
            .stats
            .tokens_expired_early
            .fetch_add(1, Ordering::Relaxed);
        return Err(ApiError::new(602, "Access token expired"));
    }
    if !caller.all_permissions {
        for needed in [PERMISSION_ACCESS_USERS, PERMISSION_USER_MANAGEMENT_API] {
            if !caller
                .permissions
                .iter()
                .any(|p| p.eq_ignore_ascii_case(needed))
            {
                return Err(ApiError::new(
                    603,
                    format!(
                        "Access denied: the role of API user {} lacks the \"{needed}\" permission",
                        caller.email
                    ),
                ));
            }
        }
    }
    Ok(caller)
}
