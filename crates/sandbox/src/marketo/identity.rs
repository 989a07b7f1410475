//! `/identity/oauth/token`: the client-credentials grant. A service asking again before its
//! token expires gets the same token back with the remaining lifetime, as the real one does.
//! Identity calls are not counted against any limit.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::ApiError;
use super::server::App;

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

pub async fn token(
    State(app): State<Arc<App>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut params: Vec<(String, String)> =
        form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        params.extend(form_urlencoded::parse(&body).into_owned());
    }
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };

    match get("grant_type") {
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Missing grant type",
            );
        }
        Some("client_credentials") => {}
        Some(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Unsupported grant type",
            );
        }
    }
    let (Some(client_id), Some(secret)) = (get("client_id"), get("client_secret")) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Bad client credentials",
        );
    };
    match issue(&app, client_id, secret).await {
        Ok(Some(body)) => (StatusCode::OK, axum::Json(body)).into_response(),
        Ok(None) => oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Bad client credentials",
        ),
        Err(err) => err.into_response(),
    }
}

async fn issue(
    app: &App,
    client_id: &str,
    secret: &str,
) -> Result<Option<serde_json::Value>, ApiError> {
    let Some((service_id, scope)) = app.store.authenticate_service(client_id, secret).await? else {
        return Ok(None);
    };
    let _write = app.store.write_guard().await;
    let now = app.clock.now_ms();
    let token = match app.store.live_token(service_id, now).await? {
        Some(live) => live,
        None => {
            let token = format!("{}:ab", uuid::Uuid::new_v4());
            let expires_at = now + app.config.token_ttl.as_millis() as i64;
            app.store
                .insert_token(&token, service_id, now, expires_at)
                .await?;
            app.limiter
                .stats
                .tokens_issued
                .fetch_add(1, Ordering::Relaxed);
            super::store::TokenRow { token, expires_at }
        }
    };
    // A fresh 3600 s token reports 3599, as the real service does.
    let expires_in = ((token.expires_at - now) / 1000 - 1).max(0);
    Ok(Some(json!({
        "access_token": token.token,
        "token_type": "bearer",
        "expires_in": expires_in,
        "scope": scope,
    })))
}
